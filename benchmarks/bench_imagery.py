"""Imagery fetch throughput and cache serving speed, all on 127.0.0.1.

1. The test tile server (tests/tileserver.py) runs in its own process. Its maximum rate is
   measured first with a minimal client (raw http.client, keep-alive, no checks, no storage)
   at 8 and 16 connections in one process, as before, and also split over 2 and 4 client
   processes (no shared interpreter lock on the client side), each measurement repeated: the
   best of all is "the server's max".
2. ``mapathon.imagery.fetch`` then downloads the same kind of tiles (a fresh cache each time,
   every tile checked and committed to MBTiles) with 1, 4, 8 and 16 workers, each run repeated:
   the median run's tiles/s and its fraction of the server's max, and the fetcher's CPU per tile
   (and the server's). Goal: >= 80 % with
   8 workers.
3. Serving: 10,000 distinct tiles from an MBTiles cache, through ``imagery serve``'s HTTP server
   (its own process, 8 keep-alive client connections), and through ``TileService.respond``
   in-process (the lookup alone).

Run:  .venv/bin/python benchmarks/bench_imagery.py [--repeat N]   (default 3)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT / "tests"))
from _util import out  # noqa: E402

from mapathon.imagery import coverage, fetch, mbtiles, sources  # noqa: E402
from mapathon.imagery.serve import TileService  # noqa: E402

CENTRE = (-9.0162, 14.4932)  # Dianguirdé
FETCH_ZOOM = 19
SERVE_TILES = 10_000


def start_process(args: list[str]) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, int(line.split()[1])


def hammer(port: int, paths: list[str], connections: int) -> float:
    """Fetch every path once over *connections* keep-alive connections; returns seconds."""
    chunks = [paths[i::connections] for i in range(connections)]
    errors = []

    def run(chunk):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for p in chunk:
                conn.request("GET", p)
                r = conn.getresponse()
                body = r.read()
                if r.status != 200 or not body:
                    errors.append((p, r.status))
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(c,)) for c in chunks]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"{len(errors)} failed requests, e.g. {errors[0]}")
    return time.perf_counter() - t0


HAMMER_CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from bench_imagery import hammer
port, conns = int(sys.argv[2]), int(sys.argv[3])
paths = json.loads(sys.stdin.readline())
print("ready", flush=True)
sys.stdin.readline()  # go
t0 = time.monotonic()
hammer(port, paths, conns)
print(t0, time.monotonic(), flush=True)
"""


def hammer_processes(port: int, paths: list[str], processes: int, conns: int) -> float:
    """Like hammer, with the paths split over *processes* client processes of *conns* connections each;
    seconds from the first start to the last end (CLOCK_MONOTONIC is shared by all processes)."""
    procs = [subprocess.Popen([sys.executable, "-c", HAMMER_CHILD, str(Path(__file__).parent), str(port), str(conns)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
             for _ in range(processes)]
    try:
        for i, p in enumerate(procs):
            p.stdin.write(json.dumps(paths[i::processes]) + "\n")
            p.stdin.flush()
        for p in procs:
            if p.stdout.readline().strip() != "ready":
                raise SystemExit("a client process did not start")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        spans = [tuple(map(float, p.stdout.readline().split())) for p in procs]
        for p in procs:
            if p.wait(timeout=60):
                raise SystemExit("a client process failed")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return max(e for _, e in spans) - min(s for s, _ in spans)


def cpu_seconds() -> float:
    """CPU (user + system) of this process so far."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def process_cpu_seconds(pid: int) -> float | None:
    """CPU (user + system) of another process so far (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tile_set(n_min: int) -> dict:
    """At least *n_min* zoom-19 tiles around Dianguirdé, as coverage.tiles gives them."""
    from mapathon import geo

    r = 200.0
    while True:
        area = geo.buffer_point_m(*CENTRE, r)
        tiles = coverage.tiles(area, [FETCH_ZOOM])
        if len(tiles[FETCH_ZOOM][0]) >= n_min:
            return tiles
        r *= 1.3


def paths_of(tiles: dict, ext: str = "jpg", prefix: str = "") -> list[str]:
    return [f"{prefix}/{z}/{x}/{y}.{ext}" for z, (xs, ys) in tiles.items() for x, y in zip(xs.tolist(), ys.tolist())]


def measure(label: str, server_args: list[str], n_min: int, repeat: int) -> dict:
    """Server max (raw clients) then fetch with 1, 4, 8, 16 workers, against one server profile."""
    proc, port = start_process([str(ROOT / "tests" / "tileserver.py"), *server_args])
    try:
        tiles = tile_set(n_min)
        n = sum(len(v[0]) for v in tiles.values())
        paths = paths_of(tiles)
        hammer(port, paths[:200], 8)  # warm up
        ways = {"1 process x 8 conns": lambda: hammer(port, paths, 8),
                "1 process x 16 conns": lambda: hammer(port, paths, 16),
                "2 processes x 4 conns": lambda: hammer_processes(port, paths, 2, 4),
                "2 processes x 8 conns": lambda: hammer_processes(port, paths, 2, 8),
                "4 processes x 4 conns": lambda: hammer_processes(port, paths, 4, 4)}
        server_rates: dict[str, float] = {}
        server_cpu: dict[str, float | None] = {}  # the server's CPU per request in the best run of each way
        for k, way in ways.items():
            for _ in range(repeat):
                s0 = process_cpu_seconds(proc.pid)
                rate = n / way()
                s1 = process_cpu_seconds(proc.pid)
                if rate > server_rates.get(k, 0.0):
                    server_rates[k] = rate
                    server_cpu[k] = (s1 - s0) / n if s0 is not None and s1 is not None else None
        one = max(r for k, r in server_rates.items() if k.startswith("1 process"))
        best = max(server_rates, key=server_rates.get)
        server_max = server_rates[best]
        out(f"[{label}] server max with raw http.client clients (no checks, no storage), {n:,} JPEG tiles of ~23 KB, "
            f"best of {repeat}: " + ", ".join(f"{k} {r:,.0f}/s" for k, r in server_rates.items())
            + f" -> max {server_max:,.0f} tiles/s (one client process: {one:,.0f})"
            + (f"; server CPU {server_cpu[best] * 1e6:,.0f} us/request at its max" if server_cpu[best] else ""))
        src = sources.parse(f"tms[0,22]:http://127.0.0.1:{port}/{{zoom}}/{{x}}/{{y}}.jpg", "bench")
        results = {"server_max": server_max, "server_max_one_process": one, "fetch": {}}
        with tempfile.TemporaryDirectory() as d:
            for w in (1, 4, 8, 16):
                rates, cpus, server_cpus = [], [], []
                opts = fetch.FetchOptions(workers=w)
                for k in range(repeat):
                    c0, s0 = cpu_seconds(), process_cpu_seconds(proc.pid)
                    res = fetch.fetch(src, Path(d) / f"w{w}-{k}.mbtiles", tiles, opts)
                    cpus.append((cpu_seconds() - c0) / n)
                    s1 = process_cpu_seconds(proc.pid)
                    if s0 is not None and s1 is not None:
                        server_cpus.append((s1 - s0) / n)
                    if res.stored != n or res.failed:
                        raise SystemExit(f"fetch with {w} workers stored {res.stored}/{n}: {res.failed} {res.aborted}")
                    rates.append(n / res.seconds)
                rate = statistics.median(rates)
                results["fetch"][w] = rate
                out(f"[{label}] fetch {w:>2} worker(s): {rate:,.0f} tiles/s"
                    f" = {rate / server_max:.0%} of the server's max ({rate / one:.0%} of one raw client process's); "
                    "median of " + ", ".join(f"{r:,.0f}" for r in rates) + "; fetcher CPU "
                    f"{statistics.median(cpus) * 1e6:,.0f} us/tile"
                    + (f", server {statistics.median(server_cpus) * 1e6:,.0f} us/tile" if server_cpus else "")
                    + " (every tile checked and committed to MBTiles)")
        return results
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs of each measurement (default 3)")
    args = ap.parse_args()
    out(f"bench_imagery: {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}, load average "
        + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    # A real tile server is the bottleneck: it answers each request in some milliseconds and serves a
    # few requests at once. Modelled here as 4 slots x 10 ms = at most 400 tiles/s.
    capped = measure("server 4 slots x 10 ms", ["--latency", "0.01", "--slots", "4"], 1500, args.repeat)
    goal = capped["fetch"][8] / capped["server_max"]
    out(f"goal >= 80 % of the server's max with 8 workers: {goal:.0%} -> {'OK' if goal >= 0.8 else 'MISSED'}")
    # The same code against a zero-latency loopback server: this measures the client's CPU cost
    # per tile (HTTP, checking the body, SQLite), shared with the server on this machine.
    loop = measure("loopback, no latency", [], 3000, args.repeat)
    goal = loop["fetch"][8] / loop["server_max"]
    out(f"loopback: 8 workers reach {goal:.0%} of the server's max -> {'OK' if goal >= 0.8 else 'MISSED'}")

    # -- serving 10,000 tiles --------------------------------------------------------------------
    from tileserver import make_images

    images = make_images("jpg", 16)
    with tempfile.TemporaryDirectory() as d:
        project = Path(d)
        cache = mbtiles.cache_path(project, "bench")
        conn = mbtiles.connect(cache, create=True)
        t19 = tile_set(SERVE_TILES)
        xs, ys = t19[FETCH_ZOOM]
        rows = [(FETCH_ZOOM, x, (1 << FETCH_ZOOM) - 1 - y, images[i % 16])
                for i, (x, y) in enumerate(zip(xs.tolist()[:SERVE_TILES], ys.tolist()[:SERVE_TILES]))]
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        mbtiles.refresh_metadata(conn, None, "jpg")
        conn.close()
        paths = [f"/tiles/bench/{z}/{x}/{(1 << z) - 1 - r}.jpg" for z, x, r, _ in rows]
        svc = TileService(project)
        t0 = time.perf_counter()
        for p in paths:
            status, _, body = svc.respond(p)
            assert status == 200 and body
        t_lookup = time.perf_counter() - t0
        code = ("import sys; from mapathon.imagery.serve import make_server; "
                "h = make_server(sys.argv[1], '127.0.0.1', 0); print('PORT', h.server_address[1], flush=True); "
                "h.serve_forever()")
        proc, sport = start_process(["-c", code, str(project)])
        try:
            hammer(sport, paths[:200], 8)
            t_http = hammer(sport, paths, 8)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    out(f"serve {len(paths):,} distinct tiles from the cache: {t_http:.2f} s over HTTP (8 keep-alive connections, "
        f"{len(paths) / t_http:,.0f} tiles/s); TileService lookups alone {t_lookup:.2f} s "
        f"({len(paths) / t_lookup:,.0f} tiles/s)")


if __name__ == "__main__":
    main()
