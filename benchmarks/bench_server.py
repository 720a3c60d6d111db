"""The room server under 200 concurrent clients (issue 6): requests per second and claim latency.

A Dianguirdé project (14 villages, zoom 16: 643 tasks) is served by ``python -m mapathon.server``
(uvicorn, one process) on 127.0.0.1; 200 client threads (requests, keep-alive), each signed in
as its own volunteer:

1. burst:      all 200 ask "give me a task" at the same instant (a barrier) — the worst moment
               of an evening, when the organizer says "go";
2. contention: all 200 claim one of 5 squares at the same instant (195 refusals);
3. room:       for DURATION seconds every client behaves like the page in a busy room, only faster:
               it polls the task states every 5 s (as the page does) and claims ("give me one") then
               releases with random pauses (exponential, mean THINK seconds; a real volunteer claims
               once every 20 minutes or so);
4. saturation: for DURATION seconds every client loops claim then release with no pause: the
               server is saturated, so latency = 200 x service time; this gives requests per second.

Goal: p99 claim latency under 100 ms with 200 concurrent clients on SQLite. In a burst or at
saturation, one writer serves the 200 claims one after the other, so p99 is about 200 times the
service time of a claim; the goal is met when the load is that of a room (3).
The clients run on the same 2-core machine as the server and take CPU from it.

Run:  .venv/bin/python benchmarks/bench_server.py [--duration 10] [--clients 200]
"""

from __future__ import annotations

import argparse
import os
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


def make_project(folder: Path) -> Path:
    mapathon = [str(Path(sys.executable).parent / "mapathon")]
    subprocess.run([*mapathon, "init", str(folder), "--name", "Dianguirdé", "--aoi", str(VILLAGES), "--radius", "2000",
                    "--organizer", "Mariam"], check=True, capture_output=True)
    subprocess.run([*mapathon, "--project", str(folder), "grid", "--zoom", "16"], check=True, capture_output=True)
    return folder


def start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "mapathon.server", str(folder), "--host", "127.0.0.1",
                             "--port", str(port)], env=dict(os.environ, MAPATHON_ORGANIZER_TOKEN=TOKEN),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if requests.get(url + "/api/project", timeout=1).ok:
                return proc, url
        except requests.ConnectionError:
            time.sleep(0.1)
    raise SystemExit(f"server did not start: {proc.stderr.read().decode()}")


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--think", type=float, default=2.0, help="mean pause between a client's claims (room load)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_project(Path(tmp) / "p")
        proc, url = start_server(folder)
        try:
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
                f"(SQLite, 643 tasks, server pid {proc.pid})")

            # 1. burst
            res = run_all(clients, lambda i, c: c.post("/api/claim-next", json={}))
            assert all(r.status_code == 200 for r, _ in res), {r.status_code for r, _ in res}
            line(f"burst: {a.clients} x 'give me one' at once", [dt for _, dt in res])
            ids = [r.json()["id"] for r, _ in res]
            assert len(set(ids)) == len(ids), "a task was given twice"
            run_all(clients, lambda i, c: c.post(f"/api/tasks/{ids[i]}/release", json={}))

            # 2. contention
            res = run_all(clients, lambda i, c: c.post(f"/api/tasks/{600 + i % 5}/claim"))
            codes = [r.status_code for r, _ in res]
            assert codes.count(200) == 5 and codes.count(409) == a.clients - 5, codes
            line(f"contention: {a.clients} x 5 squares at once", [dt for _, dt in res])
            for i, (r, _) in enumerate(res):
                if r.status_code == 200:
                    clients[i].post(f"/api/tasks/{r.json()['id']}/release", json={})

            # 3. room
            import random

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
                f"the 200 clients {mine:.0f}%")
            r = requests.get(url + "/api/tasks", timeout=60)
            t0 = time.perf_counter()
            for _ in range(20):
                requests.get(url + "/api/tasks", timeout=60)
            out(f"GET /api/tasks (643 features, {len(r.content) / 1024:.0f} KiB): "
                f"{(time.perf_counter() - t0) / 20 * 1000:.1f} ms each")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
