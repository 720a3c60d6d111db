"""The ODK Collect submission endpoint with 50 phones sending at once: p99 under 200 ms.

A Dianguirdé project with the water form is served by ``python -m mapathon.server`` on 127.0.0.1.
50 phones send, ROUNDS times, one filled form each with a 300 KB photo, all at the same instant.
Each latency runs from the first byte of the request written to the last byte of the OpenRosa 201 read.

The phones are cheap, so that the figures are the server's: one asyncio client in this process
(the server is another), one keep-alive connection per phone for the whole run, as ODK Collect keeps
its connection. Each phone signs in with Digest as Collect does: a HEAD pre-flight answered 401 with
the challenge, the HEAD again signed (204), then every submission signed at once with the same nonce
and the next nonce count (``nc``). The multipart bodies (the instance XML, then the photo) are built
before the clock starts; a request is its header lines with a fresh Digest answer (three MD5s),
written with the body parts as they are. The client's own CPU time is printed too: it shares the
2 cores with the server.

    python benchmarks/bench_odk.py [--rounds 5] [--phones 50] [--db postgresql://...] [--profile out.svg]

``--profile`` records the server with py-spy (sampling; all its threads) while the phones send.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import out  # noqa: E402

ROOT = Path(__file__).parent.parent
VILLAGES = ROOT / "tests" / "data" / "dianguirde-villages.csv"
BASE = ROOT / "tests" / "data" / "dianguirde-area-pois-osm2019.osm.pbf"
PASSWORD = "bench-survey"
PHOTO = b"\xff\xd8\xff\xe0" + os.urandom(300 * 1024)
PATH = "/odk/submission"


def instance(name: str, i: int) -> bytes:
    return f"""<?xml version='1.0' ?><data id="water_points" version="2026120701"><username>{name}</username>
<existing/><location>14.49{i % 100:02d} -9.01{i % 97:02d} 300 5</location><kind>well</kind><pump>manual</pump>
<operational>working</operational><seasonal>no</seasonal><drinking>yes</drinking><access>yes</access><depth/>
<name/><contact/><photo>p.jpg</photo><meta><instanceID>uuid:{uuid.uuid4()}</instanceID></meta></data>""".encode()


def multipart(xml: bytes, boundary: str) -> list[bytes]:
    """The body of one submission as ODK Collect sends it: the instance XML part, then the photo part."""
    b = boundary.encode()
    return [b"--" + b + b'\r\nContent-Disposition: form-data; name="xml_submission_file"; filename="submission.xml"'
            b"\r\nContent-Type: text/xml\r\n\r\n" + xml + b"\r\n--" + b
            + b'\r\nContent-Disposition: form-data; name="p.jpg"; filename="p.jpg"\r\nContent-Type: image/jpeg\r\n\r\n',
            PHOTO, b"\r\n--" + b + b"--\r\n"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): what the figures cost the laptop,
    whatever else the machine runs meanwhile."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


class Phone:
    """One phone: one connection, signed in with Digest (RFC 7616, qop=auth) as ODK Collect is."""

    def __init__(self, name: str, host: str, port: int):
        self.name, self.host, self.port = name, host, port
        self.nc = 0
        self.nonce = self.realm = self.opaque = ""

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        status, headers, _ = await self.request("HEAD", [], signed=False)
        assert status == 401, status
        challenge = dict(re.findall(r'(\w+)="([^"]*)"', headers["www-authenticate"]))
        self.nonce, self.realm, self.opaque = challenge["nonce"], challenge["realm"], challenge.get("opaque", "")
        status, _, _ = await self.request("HEAD", [])
        assert status == 204, status

    def authorization(self, method: str) -> str:
        self.nc += 1
        nc, cnonce = f"{self.nc:08x}", secrets.token_hex(8)
        ha1 = _md5(f"{self.name}:{self.realm}:{PASSWORD}")
        answer = _md5(f"{ha1}:{self.nonce}:{nc}:{cnonce}:auth:{_md5(f'{method}:{PATH}')}")
        return (f'Digest username="{self.name}", realm="{self.realm}", nonce="{self.nonce}", uri="{PATH}", '
                f'algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}", response="{answer}", opaque="{self.opaque}"')

    async def request(self, method: str, body: list[bytes], ctype: str = "", signed: bool = True):
        """Send one request on the phone's connection; its status, headers and body."""
        lines = [f"{method} {PATH} HTTP/1.1", f"Host: {self.host}:{self.port}", "X-OpenRosa-Version: 1.0",
                 f"Content-Length: {sum(map(len, body))}"]
        if ctype:
            lines.append(f"Content-Type: {ctype}")
        if signed:
            lines.append(f"Authorization: {self.authorization(method)}")
        self.writer.writelines([("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), *body])
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        size = 0 if method == "HEAD" else int(headers.get("content-length", 0))
        return int(status_line.split()[1]), headers, await self.reader.readexactly(size)


async def phones_send(port: int, phones: int, rounds: int, server_pid: int) -> tuple[list[float], float, float]:
    """Latencies (s), the server's and the client's CPU seconds during the sending."""
    crew = [Phone(f"Surveyor {i}", "127.0.0.1", port) for i in range(phones)]
    await asyncio.gather(*(p.connect() for p in crew))
    boundary = uuid.uuid4().hex
    ctype = f"multipart/form-data; boundary={boundary}"
    bodies = [[multipart(instance(p.name, r * phones + i), boundary) for i, p in enumerate(crew)]
              for r in range(rounds)]
    lat: list[float] = []

    async def send(p: Phone, body: list[bytes]) -> None:
        t0 = time.perf_counter()
        status, _, text = await p.request("POST", body, ctype)
        lat.append(time.perf_counter() - t0)
        assert status == 201, (status, text)

    cpu0, mine0 = cpu_seconds(server_pid), time.process_time()
    for r in range(rounds):
        await asyncio.gather(*(send(p, body) for p, body in zip(crew, bodies[r])))
    cpu, mine = cpu_seconds(server_pid) - cpu0, time.process_time() - mine0
    for p in crew:
        p.writer.close()
    return lat, cpu, mine


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--phones", type=int, default=50)
    ap.add_argument("--db", default=None)
    ap.add_argument("--profile", default=None,
                    help="record the server with py-spy into this file (.svg: a flame graph, else collapsed stacks)")
    a = ap.parse_args()
    mapathon = str(Path(sys.executable).parent / "mapathon")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "p"
        subprocess.run([mapathon, *(["--db", a.db] if a.db else []), "init", str(folder), "--name", "Bench",
                        "--aoi", str(VILLAGES), "--radius", "2000", "--organizer", "Mariam"], check=True,
                       capture_output=True)
        subprocess.run([mapathon, "--project", str(folder), "survey", "form", "--data", str(BASE)], check=True,
                       capture_output=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = dict(os.environ, MAPATHON_SURVEY_PASSWORD=PASSWORD)
        proc = subprocess.Popen([sys.executable, "-m", "mapathon.server", str(folder), "--host", "127.0.0.1",
                                 "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        spy = None
        try:
            for _ in range(600):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/odk/formList", timeout=1)
                except urllib.error.HTTPError:  # 401: it answers
                    break
                except OSError:
                    time.sleep(0.1)
            if a.profile:
                spy = subprocess.Popen([shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                                        "record", "-r", "200", "--gil", "-o", a.profile, "--pid", str(proc.pid),
                                        "--format", "flamegraph" if a.profile.endswith(".svg") else "raw"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1)
            lat, cpu, mine = asyncio.run(phones_send(port, a.phones, a.rounds, proc.pid))
            ms = sorted(x * 1000 for x in lat)
            p95, p99 = (ms[min(len(ms) - 1, int(len(ms) * q))] for q in (0.95, 0.99))
            out(f"{a.phones} phones at once, {a.rounds} rounds ({'PostgreSQL' if a.db else 'SQLite'}): "
                f"n={len(ms)} p50 {statistics.median(ms):.1f} ms  p95 {p95:.1f} ms  p99 {p99:.1f} ms  "
                f"max {ms[-1]:.1f} ms (goal: p99 under 200 ms); CPU a submission: the server "
                f"{cpu / len(ms) * 1000:.2f} ms, the phones (this client) {mine / len(ms) * 1000:.2f} ms")
        finally:
            if spy is not None:
                spy.send_signal(2)
                spy.wait(30)
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
