"""The room server under 200 concurrent clients: requests per second and claim latency.

A Dianguirdé project (14 villages, zoom 16: 643 tasks) is served by ``mapathon serve``
(uvicorn, one process) on 127.0.0.1; 200 clients, each with its own keep-alive connection and
signed in as its own volunteer:

1. burst:      all 200 ask "give me a task" at the same instant — the worst moment of an evening,
               when the organizer says "go" (ROUNDS times, the samples pooled);
2. contention: all 200 claim one of 5 squares at the same instant (195 refusals; ROUNDS times);
   distinct:   all 200 claim 200 different squares, named, at the same instant (200 successes): the
               burst without the choice of a task, i.e. what the server adds to the task rules;
3. room:       for DURATION seconds every client behaves like the page in a busy room, only faster:
               it polls the task states every 5 s (as the page does) and claims ("give me one") then
               releases with random pauses (exponential, mean THINK seconds; a real volunteer claims
               once every 20 minutes or so);
4. saturation: for DURATION seconds every client loops claim then release with no pause: the
               server is saturated, so latency = 200 x service time; this gives requests per second.

5. mixed:      (``--phases mixed``) for DURATION seconds every client loops "give me a task", then
               "done" (one time in ``--done-every``) or release, with no pause: claims, releases and
               "done" at saturation, as a room where some squares get finished.

Goal: p99 claim latency under 100 ms with 200 concurrent clients, on SQLite and on PostgreSQL.

Several processes: ``--processes N`` starts N ``mapathon serve`` processes on N ports,
all on the same project (PostgreSQL: ``--db``), and spreads the clients over them (client i talks to
process i mod N), as a reverse proxy would. No proxy is started: it would take CPU from the servers.
Claims per second at saturation (``saturation``, ``mixed``) then show what a second or a fourth
process adds; the CPU given is that of all the server processes together.

The clients run on the same 2-core machine as the server and take CPU from it; in a room they are
200 browsers on 200 other computers. Two client implementations (``--client``):

* ``async`` (the default figures): one process, asyncio, 200 connections, requests written by hand
  (a few lines of HTTP/1.1, no library), so that the clients cost the server's cores as little as
  possible. A burst writes the 200 requests one after the other in one turn of the event loop
  (about 3 ms for all); each latency is measured from the moment its own request was written.
* ``threads`` (the first figures published): 200 threads with ``requests`` in one process. Their
  CPU (about 0.4 ms a request, serialised by the client's GIL) competes with the server on the two
  cores, which inflates the latencies measured, most in the bursts.

Run:  .venv/bin/python benchmarks/bench_server.py [--client async|threads|both] [--duration 10] [--clients 200]
      [--rounds 3] [--phases burst,contention,distinct,room,saturation,mixed] [--zoom 16]
      .venv/bin/python benchmarks/bench_server.py --db postgresql://127.0.0.1/test   (the same on PostgreSQL)
      .venv/bin/python benchmarks/bench_server.py --db postgresql://127.0.0.1/test --client async --processes 4 \
          --phases saturation,mixed --zoom 17      (4 server processes on one PostgreSQL project)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).parent))
from _util import out  # noqa: E402

ROOT = Path(__file__).parent.parent
VILLAGES = ROOT / "tests" / "data" / "dianguirde-villages.csv"
TOKEN = "bench"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * q))] * 1000


def line(label: str, lat: list[float], seconds: float | None = None, requests_n: int | None = None) -> None:
    if not lat:
        out(f"{label:<34} no samples")
        return
    extra = f", {requests_n / seconds:,.0f} requests/s" if seconds else ""
    out(f"{label:<40} n={len(lat):>6}  p50 {statistics.median(lat) * 1000:7.1f} ms  "
        f"p99 {pct(lat, 0.99):7.1f} ms  max {max(lat) * 1000:7.1f} ms{extra}")


def make_project(folder: Path, db: str | None = None, zoom: int = 16) -> Path:
    """A gridded Dianguirdé project; with *db* (postgresql://…), in a new schema there."""
    mapathon = [str(Path(sys.executable).parent / "mapathon")]
    subprocess.run([*mapathon, *(["--db", db] if db else []), "init", str(folder), "--name", "Dianguirdé",
                    "--aoi", str(VILLAGES), "--radius", "2000", "--organizer", "Mariam"], check=True, capture_output=True)
    subprocess.run([*mapathon, "--project", str(folder), "grid", "--zoom", str(zoom)], check=True, capture_output=True)
    return folder


def start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    """``mapathon serve`` on a free port of 127.0.0.1, once it answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mapathon"), "--project", str(folder), "serve",
                             "--host", "127.0.0.1", "--port", str(port)],
                            env=dict(os.environ, MAPATHON_ORGANIZER_TOKEN=TOKEN),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if requests.get(url + "/api/project", timeout=1).ok:
                return proc, url
        except requests.ConnectionError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    raise SystemExit(f"server did not start: {proc.stderr.read().decode()}")


def cpu_all(procs: list[subprocess.Popen]) -> float:
    return sum(cpu_seconds(p.pid) for p in procs)


def check_burst(codes: list[int], ids: list[int]) -> None:
    assert all(c == 200 for c in codes), set(codes)
    assert len(set(ids)) == len(ids), "a task was given twice"


def check_contention(codes: list[int], n: int) -> None:
    assert codes.count(200) == 5 and codes.count(409) == n - 5, codes


# -- the first client: 200 threads with requests ----------------------------------------------------------------------


class Client:
    def __init__(self, url: str, name: str):
        self.url = url
        self.s = requests.Session()
        self.s.headers["X-Session"] = self.s.post(url + "/api/join", json={"name": name}, timeout=60).json()["token"]

    def post(self, path: str, **kw):
        t0 = time.perf_counter()
        r = self.s.post(self.url + path, timeout=120, **kw)
        return r, time.perf_counter() - t0


def run_all(clients: list[Client], fn) -> list:
    barrier = threading.Barrier(len(clients))
    results: list = [None] * len(clients)

    def work(i):
        barrier.wait()
        try:
            results[i] = fn(i, clients[i])
        except Exception as e:  # noqa: BLE001
            results[i] = e

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [r for r in results if isinstance(r, Exception)]
    if errors:
        raise SystemExit(f"{len(errors)} client errors, e.g. {errors[0]!r}")
    return results


def thread_phases(url: str, proc: subprocess.Popen, a) -> None:
    t0 = time.perf_counter()
    clients = [None] * a.clients

    def join(i):
        clients[i] = Client(url, f"Bench{i:03d}")

    ts = [threading.Thread(target=join, args=(i,)) for i in range(a.clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out(f"{a.clients} volunteers signed in in {time.perf_counter() - t0:.2f} s "
        f"({'PostgreSQL' if a.db else 'SQLite'}, {a.tasks} tasks, server pid {proc.pid})")

    # 1. burst
    if "burst" in a.phases:
        lat = []
        for _ in range(a.rounds):
            res = run_all(clients, lambda i, c: c.post("/api/claim-next", json={}))
            ids = [r.json()["id"] for r, _ in res]
            check_burst([r.status_code for r, _ in res], ids)
            lat += [dt for _, dt in res]
            run_all(clients, lambda i, c: c.post(f"/api/tasks/{ids[i]}/release", json={}))
        line(f"burst: {a.clients} x 'give me one' at once", lat)

    # 2. contention
    if "contention" in a.phases:
        lat = []
        for _ in range(a.rounds):
            res = run_all(clients, lambda i, c: c.post(f"/api/tasks/{600 + i % 5}/claim"))
            check_contention([r.status_code for r, _ in res], a.clients)
            lat += [dt for _, dt in res]
            for i, (r, _) in enumerate(res):
                if r.status_code == 200:
                    clients[i].post(f"/api/tasks/{r.json()['id']}/release", json={})
        line(f"contention: {a.clients} x 5 squares at once", lat)

    # 2b. distinct squares
    if "distinct" in a.phases:
        lat = []
        for _ in range(a.rounds):
            res = run_all(clients, lambda i, c: c.post(f"/api/tasks/{1 + 3 * i}/claim"))
            assert all(r.status_code == 200 for r, _ in res), {r.status_code for r, _ in res}
            lat += [dt for _, dt in res]
            run_all(clients, lambda i, c: c.post(f"/api/tasks/{1 + 3 * i}/release", json={}))
        line(f"distinct: {a.clients} x {a.clients} squares at once", lat)

    # 3. room
    if "room" in a.phases:
        stop = time.perf_counter() + a.duration
        lock = threading.Lock()
        room_claims: list[float] = []
        room_polls: list[float] = []
        n_requests = [0]

        def room_loop(i, c):
            rnd = random.Random(i)
            version, next_poll = None, time.perf_counter() + rnd.uniform(0, 5)
            next_claim = time.perf_counter() + rnd.expovariate(1 / a.think)
            holding, mine_c, mine_p, n = None, [], [], 0
            while True:
                now = time.perf_counter()
                if now >= stop:
                    break
                if now >= next_poll:
                    t0 = time.perf_counter()
                    r = c.s.get(url + "/api/states" + (f"?since={version}" if version else ""), timeout=120)
                    mine_p.append(time.perf_counter() - t0)
                    version = r.json()["version"]
                    next_poll += 5
                    n += 1
                elif now >= next_claim:
                    if holding is None:
                        r, dt = c.post("/api/claim-next", json={})
                        assert r.status_code == 200, r.text
                        holding = r.json()["id"]
                        mine_c.append(dt)
                    else:
                        r, dt = c.post(f"/api/tasks/{holding}/release", json={})
                        assert r.status_code == 200, r.text
                        holding = None
                    next_claim = time.perf_counter() + rnd.expovariate(1 / a.think)
                    n += 1
                else:
                    time.sleep(max(0.0, min(next_poll, next_claim, stop) - now))
            if holding is not None:
                c.post(f"/api/tasks/{holding}/release", json={})
            with lock:
                room_claims.extend(mine_c)
                room_polls.extend(mine_p)
                n_requests[0] += n

        t0 = time.perf_counter()
        run_all(clients, room_loop)
        took = time.perf_counter() - t0
        line(f"room {a.duration:g} s (think {a.think:g} s): claim", room_claims, took, n_requests[0])
        line(f"room {a.duration:g} s: poll states", room_polls)

    # 4. saturation
    if "saturation" in a.phases:
        stop = time.perf_counter() + a.duration
        lock = threading.Lock()
        claims: list[float] = []
        releases: list[float] = []

        def loop(i, c):
            mine_c, mine_r = [], []
            while time.perf_counter() < stop:
                r, dt = c.post("/api/claim-next", json={})
                if r.status_code != 200:
                    raise RuntimeError(f"claim: HTTP {r.status_code} {r.text[:200]}")
                mine_c.append(dt)
                r2, dt2 = c.post(f"/api/tasks/{r.json()['id']}/release", json={})
                if r2.status_code != 200:
                    raise RuntimeError(f"release: HTTP {r2.status_code} {r2.text[:200]}")
                mine_r.append(dt2)
            with lock:
                claims.extend(mine_c)
                releases.extend(mine_r)

        t0, cpu0, me0 = time.perf_counter(), cpu_seconds(proc.pid), time.process_time()
        run_all(clients, loop)
        took = time.perf_counter() - t0
        cpu = (cpu_seconds(proc.pid) - cpu0) / took * 100
        mine = (time.process_time() - me0) / took * 100
        line(f"saturation {a.duration:g} s: claim", claims, took, len(claims) + len(releases))
        line(f"saturation {a.duration:g} s: release", releases)
        out(f"claims per second (saturation): {len(claims) / took:,.0f}; CPU: server {cpu:.0f}% of a core, "
            f"the {a.clients} clients {mine:.0f}%")


# -- the second client: one asyncio process, HTTP/1.1 by hand ---------------------------------------------------------

_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


class AsyncClient:
    """One browser: one keep-alive connection, one request at a time on it."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.session = ""

    async def open(self, name: str) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        status, body, _ = await self.request("POST", "/api/join", json.dumps({"name": name}).encode())
        assert status == 200, body
        self.session = json.loads(body)["token"]

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, float]:
        """(status, body, seconds from writing the request to having read the whole answer)."""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if self.session:
            head += f"X-Session: {self.session}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        data = (head + "\r\n").encode() + (body or b"")
        t0 = time.perf_counter()
        self.writer.write(data)
        answer = await self.reader.readuntil(b"\r\n\r\n")
        m = _LENGTH.search(answer)
        if m is None:
            raise RuntimeError(f"{method} {path}: no Content-Length in the answer: {answer[:200]!r}")
        payload = await self.reader.readexactly(int(m.group(1)))
        return int(answer[9:12]), payload, time.perf_counter() - t0

    async def post(self, path: str, body: bytes = b"{}") -> tuple[int, dict, float]:
        status, payload, dt = await self.request("POST", path, body)
        return status, json.loads(payload), dt

    def close(self) -> None:
        self.writer.close()


async def async_phases(urls: list[str], procs: list[subprocess.Popen], a) -> None:
    """The phases with the async clients; client i talks to the server at urls[i mod len(urls)]."""
    addresses = [url.split("//")[1].split(":") for url in urls]
    clients = [AsyncClient(addresses[i % len(urls)][0], int(addresses[i % len(urls)][1])) for i in range(a.clients)]
    t0 = time.perf_counter()
    await asyncio.gather(*(c.open(f"Bench{i:03d}") for i, c in enumerate(clients)))
    out(f"{a.clients} volunteers signed in in {time.perf_counter() - t0:.2f} s "
        f"({'PostgreSQL' if a.db else 'SQLite'}, {a.tasks} tasks, {len(procs)} server process(es), "
        f"pids {' '.join(str(p.pid) for p in procs)})")

    async def all_at_once(make_path, body=b"{}"):
        """Every client sends one request in the same turn of the event loop."""
        res = await asyncio.gather(*(c.post(make_path(i), body) for i, c in enumerate(clients)))
        errors = [r for r in res if r[0] not in (200, 409)]
        if errors:
            raise SystemExit(f"{len(errors)} request errors, e.g. HTTP {errors[0][0]} {errors[0][1]}")
        return res

    # 1. burst
    if "burst" in a.phases:
        lat: list[float] = []
        cpu0, me0 = cpu_all(procs), time.process_time()
        for _ in range(a.rounds):
            res = await all_at_once(lambda i: "/api/claim-next")
            ids = [r[1]["id"] for r in res]
            check_burst([r[0] for r in res], ids)
            lat += [r[2] for r in res]
            await all_at_once(lambda i: f"/api/tasks/{ids[i]}/release")
        line(f"burst: {a.clients} x 'give me one' at once", lat)
        out(f"  CPU per round ({a.clients} claims + {a.clients} releases): "
            f"server {(cpu_all(procs) - cpu0) / a.rounds * 1000:.0f} ms, "
            f"the clients {(time.process_time() - me0) / a.rounds * 1000:.0f} ms")

    # 2. contention
    if "contention" in a.phases:
        lat = []
        for _ in range(a.rounds):
            res = await all_at_once(lambda i: f"/api/tasks/{600 + i % 5}/claim", None)
            check_contention([r[0] for r in res], a.clients)
            lat += [r[2] for r in res]
            await asyncio.gather(*(clients[i].post(f"/api/tasks/{r[1]['id']}/release")
                                   for i, r in enumerate(res) if r[0] == 200))
        line(f"contention: {a.clients} x 5 squares at once", lat)

    # 2b. distinct squares
    if "distinct" in a.phases:
        lat = []
        for _ in range(a.rounds):
            res = await all_at_once(lambda i: f"/api/tasks/{1 + 3 * i}/claim", None)
            assert all(r[0] == 200 for r in res), {r[0] for r in res}
            lat += [r[2] for r in res]
            await all_at_once(lambda i: f"/api/tasks/{1 + 3 * i}/release")
        line(f"distinct: {a.clients} x {a.clients} squares at once", lat)

    # 3. room
    if "room" in a.phases:
        stop = time.perf_counter() + a.duration
        room_claims: list[float] = []
        room_polls: list[float] = []
        n_requests = [0]

        async def room_loop(i: int, c: AsyncClient):
            rnd = random.Random(i)
            version, next_poll = None, time.perf_counter() + rnd.uniform(0, 5)
            next_claim = time.perf_counter() + rnd.expovariate(1 / a.think)
            holding = None
            while True:
                now = time.perf_counter()
                if now >= stop:
                    break
                if now >= next_poll:
                    status, body, dt = await c.request("GET", "/api/states" + (f"?since={version}" if version else ""))
                    assert status == 200, body
                    room_polls.append(dt)
                    version = json.loads(body)["version"]
                    next_poll += 5
                    n_requests[0] += 1
                elif now >= next_claim:
                    if holding is None:
                        status, body, dt = await c.post("/api/claim-next")
                        assert status == 200, body
                        holding = body["id"]
                        room_claims.append(dt)
                    else:
                        status, body, dt = await c.post(f"/api/tasks/{holding}/release")
                        assert status == 200, body
                        holding = None
                    next_claim = time.perf_counter() + rnd.expovariate(1 / a.think)
                    n_requests[0] += 1
                else:
                    await asyncio.sleep(max(0.0, min(next_poll, next_claim, stop) - now))
            if holding is not None:
                await c.post(f"/api/tasks/{holding}/release")

        t0 = time.perf_counter()
        await asyncio.gather(*(room_loop(i, c) for i, c in enumerate(clients)))
        took = time.perf_counter() - t0
        line(f"room {a.duration:g} s (think {a.think:g} s): claim", room_claims, took, n_requests[0])
        line(f"room {a.duration:g} s: poll states", room_polls)

    # 4. saturation
    if "saturation" in a.phases:
        stop = time.perf_counter() + a.duration
        claims: list[float] = []
        releases: list[float] = []

        async def loop(c: AsyncClient):
            while time.perf_counter() < stop:
                status, body, dt = await c.post("/api/claim-next")
                if status != 200:
                    raise RuntimeError(f"claim: HTTP {status} {body}")
                claims.append(dt)
                status, body, dt = await c.post(f"/api/tasks/{body['id']}/release")
                if status != 200:
                    raise RuntimeError(f"release: HTTP {status} {body}")
                releases.append(dt)

        t0, cpu0, me0 = time.perf_counter(), cpu_all(procs), time.process_time()
        await asyncio.gather(*(loop(c) for c in clients))
        took = time.perf_counter() - t0
        cpu = (cpu_all(procs) - cpu0) / took * 100
        mine = (time.process_time() - me0) / took * 100
        line(f"saturation {a.duration:g} s: claim", claims, took, len(claims) + len(releases))
        line(f"saturation {a.duration:g} s: release", releases)
        out(f"claims per second (saturation, {len(procs)} process(es)): {len(claims) / took:,.0f}; "
            f"CPU: server(s) {cpu:.0f}% of a core, the {a.clients} clients {mine:.0f}%")

    # 5. mixed: claims, releases and "done" at saturation
    if "mixed" in a.phases:
        stop = time.perf_counter() + a.duration
        lat: dict[str, list[float]] = {"claim": [], "release": [], "done": []}
        ran_out = [0]

        async def mixed(i: int, c: AsyncClient):
            rnd = random.Random(i)
            while time.perf_counter() < stop:
                status, body, dt = await c.post("/api/claim-next")
                if status == 400 and "no task left" in str(body.get("detail")):
                    ran_out[0] += 1
                    return
                if status != 200:
                    raise RuntimeError(f"claim: HTTP {status} {body}")
                lat["claim"].append(dt)
                what = "done" if rnd.randrange(a.done_every) == 0 else "release"
                status, body, dt = await c.post(f"/api/tasks/{body['id']}/{what}")
                if status != 200:
                    raise RuntimeError(f"{what}: HTTP {status} {body}")
                lat[what].append(dt)

        t0, cpu0, me0 = time.perf_counter(), cpu_all(procs), time.process_time()
        await asyncio.gather(*(mixed(i, c) for i, c in enumerate(clients)))
        took = time.perf_counter() - t0
        cpu = (cpu_all(procs) - cpu0) / took * 100
        mine = (time.process_time() - me0) / took * 100
        line(f"mixed {a.duration:g} s: claim", lat["claim"], took, sum(len(v) for v in lat.values()))
        line(f"mixed {a.duration:g} s: release", lat["release"])
        line(f"mixed {a.duration:g} s: done", lat["done"])
        if ran_out[0]:
            out(f"  {ran_out[0]} clients stopped early: no task left (use a larger --zoom)")
        out(f"claims per second (mixed, {len(procs)} process(es)): {len(lat['claim']) / took:,.0f}; "
            f"CPU: server(s) {cpu:.0f}% of a core, the {a.clients} clients {mine:.0f}%")

    for c in clients:
        c.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", choices=("async", "threads", "both"), default="both")
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3, help="bursts (and contention rounds) measured, samples pooled")
    ap.add_argument("--think", type=float, default=2.0, help="mean pause between a client's claims (room load)")
    ap.add_argument("--phases", default="burst,contention,distinct,room,saturation",
                    help="which to run (comma-separated; 'mixed' too)")
    ap.add_argument("--processes", type=int, default=1,
                    help="server processes on the same project, the clients spread over them (async clients only)")
    ap.add_argument("--zoom", type=int, default=16, help="the grid's zoom (17: 4 times the tasks, for 'mixed')")
    ap.add_argument("--done-every", type=int, default=5, help="mixed: one claim in this many ends with 'done'")
    ap.add_argument("--db", default=None, help="run on PostgreSQL: postgresql://127.0.0.1/test (a schema per run, "
                    "dropped at the end); default: the folder's SQLite file")
    a = ap.parse_args()
    a.phases = set(a.phases.split(","))
    if a.processes > 1 and a.client != "async":
        ap.error("--processes needs --client async")
    made: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        template = None if a.db else make_project(Path(tmp) / "template", zoom=a.zoom)
        out(f"backend: {'PostgreSQL ' + a.db if a.db else 'SQLite'}")
        for mode in (("async", "threads") if a.client == "both" else (a.client,)):
            folder = Path(tmp) / mode
            if a.db:  # each client on a fresh project and a fresh server
                make_project(folder, a.db, a.zoom)
                made.append((folder / "mapathon.postgresql").read_text().strip())
            else:
                shutil.copytree(template, folder)
            servers = [start_server(folder) for _ in range(a.processes)]
            procs, urls = [s[0] for s in servers], [s[1] for s in servers]
            proc, url = servers[0]
            a.tasks = len(requests.get(url + "/api/states", timeout=60).json()["tasks"])
            try:
                out(f"-- {a.clients} clients: " + ("one asyncio process, HTTP by hand" if mode == "async"
                                                   else "threads with requests, in one process"))
                if mode == "async":
                    try:
                        import uvloop
                    except ImportError:
                        asyncio.run(async_phases(urls, procs, a))
                    else:
                        uvloop.run(async_phases(urls, procs, a))
                else:
                    thread_phases(url, proc, a)
                if mode == a.client or mode == "async":
                    r = requests.get(url + "/api/tasks", timeout=60)
                    t0 = time.perf_counter()
                    for _ in range(20):
                        requests.get(url + "/api/tasks", timeout=60)
                    out(f"GET /api/tasks (643 features, {len(r.content) / 1024:.0f} KiB): "
                        f"{(time.perf_counter() - t0) / 20 * 1000:.1f} ms each")
            finally:
                for p in procs:
                    p.terminate()
                    p.wait(10)
    if made:
        from mapathon import store

        for url in made:
            store.drop_pg_project(url)


if __name__ == "__main__":
    main()
