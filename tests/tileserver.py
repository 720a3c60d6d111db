"""A tile server for tests and benchmarks: 127.0.0.1 only, faults on demand, requests counted.

    with TileServer() as srv:
        url = srv.template("jpg")            # http://127.0.0.1:PORT/{z}/{x}/{y}.jpg
        srv.add_fault("/16/1/2.jpg", "500", times=2)
        srv.add_fault(None, "429", times=1, retry_after=1)   # None: any path
        ...
        srv.counts["/16/1/2.jpg"], srv.log   # requests per path; (time, path, status) per request

Every path gets a deterministic, non-blank image (one of a few pre-made ones, picked from
the path), JPEG unless the path ends in .png; ``body_for(path)`` gives the exact bytes.
Fault kinds: "404", "500", "503", "403", "429" (with retry_after), "delay" (seconds, then
the tile), "truncated" (connection closed before Content-Length bytes), "cut" (an image
cut in half, consistent length), "corrupt" (random bytes labelled image/jpeg), "html"
(an HTML page with status 200), "blank" (a one-colour image), "empty" (200 with no body),
"gzip" (the tile gzipped, with Content-Encoding: gzip), "redirect" (302 to ``to``, a path or
URL), "close" (the tile, then the kept-alive connection is closed without warning), "chunked"
(the tile in chunks, Transfer-Encoding: chunked), "no-length" (the tile with no Content-Length,
ended by closing the connection), "continue" (a 100 Continue before the answer).
``TileServer(tls=(certfile, keyfile))`` serves https. ``headers[path]`` holds the request
headers of the last request for each path. As a proxy, it answers requests for absolute URLs
itself (as if it had fetched them) and opens CONNECT tunnels to 127.0.0.1 only (counted as
``"CONNECT host:port"``).

Run as a script (``python tests/tileserver.py``) it serves until killed and prints its port.
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import io
import os
import random
import selectors
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

N_IMAGES = 16


def make_images(kind: str, n: int = N_IMAGES, size: int = 256) -> list[bytes]:
    rng = random.Random(42)
    out = []
    for i in range(n):
        noise = Image.effect_noise((size, size), 30 + i).convert("L")
        tint = (rng.randrange(60, 200), rng.randrange(60, 200), rng.randrange(40, 160))
        im = Image.merge("RGB", [noise.point(lambda v, t=t: (v + t) // 2) for t in tint])
        buf = io.BytesIO()
        if kind == "png":
            im.save(buf, "PNG")
        else:
            im.save(buf, "JPEG", quality=80)
        out.append(buf.getvalue())
    return out


def _blank(kind: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (256, 256), (255, 255, 255)).save(buf, "PNG" if kind == "png" else "JPEG")
    return buf.getvalue()


class Fault:
    def __init__(self, match, kind: str, times: int | None = None, **kw):
        self.match, self.kind, self.times, self.kw = match, kind, times, kw

    def applies(self, path: str) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.match is None:
            return True
        if callable(self.match):
            return bool(self.match(path))
        return path == self.match


class TileServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0, slots: int | None = None,
                 tls: tuple[str, str] | None = None):
        if host != "127.0.0.1":
            raise ValueError("the test tile server listens on 127.0.0.1 only")
        self.images = {"jpg": make_images("jpg"), "png": make_images("png")}
        self.blank = {"jpg": _blank("jpg"), "png": _blank("png")}
        self.counts: collections.Counter = collections.Counter()
        self.log: list[tuple[float, str, int]] = []
        self.headers: dict[str, dict[str, str]] = {}
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self.quiet_log = False
        # capacity model of a real tile server: each request takes `latency` seconds (no CPU) and at
        # most `slots` requests are served at once; the rest wait their turn
        self.latency = latency
        self.slots = threading.BoundedSemaphore(slots) if slots else None
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def do_GET(self):
                server._handle(self)

            def do_CONNECT(self):
                server._tunnel(self)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.scheme = "http"
        if tls is not None:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.thread: threading.Thread | None = None

    # -- helpers -------------------------------------------------------------------------------
    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def template(self, ext: str = "jpg", prefix: str = "") -> str:
        return f"{self.base}{prefix}/{{zoom}}/{{x}}/{{y}}.{ext}"

    def body_for(self, path: str) -> bytes:
        kind = "png" if path.split("?")[0].endswith(".png") else "jpg"
        h = int.from_bytes(hashlib.blake2s(path.encode(), digest_size=4).digest(), "big")
        return self.images[kind][h % N_IMAGES]

    def add_fault(self, match, kind: str, times: int | None = None, **kw) -> Fault:
        f = Fault(match, kind, times, **kw)
        with self.lock:
            self.faults.append(f)
        return f

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()
            self.counts.clear()
            self.log.clear()

    def requests_total(self) -> int:
        return sum(self.counts.values())

    # -- serving ---------------------------------------------------------------------------------
    def _fault_for(self, path: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.applies(path):
                    if f.times is not None:
                        f.times -= 1
                    return f
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        if self.slots is not None:
            with self.slots:
                if self.latency:
                    time.sleep(self.latency)
        elif self.latency:
            time.sleep(self.latency)
        path = h.path
        fault = self._fault_for(path)
        kind = "png" if path.split("?")[0].endswith(".png") else "jpg"
        ctype = "image/png" if kind == "png" else "image/jpeg"
        status, body, headers, cut_at, close = 200, None, {}, None, False
        if fault is not None:
            k = fault.kind
            if k in ("404", "500", "503", "403"):
                status, body, ctype = int(k), f"error {k}\n".encode(), "text/plain"
            elif k == "429":
                status, body, ctype = 429, b"slow down\n", "text/plain"
                headers["Retry-After"] = str(fault.kw.get("retry_after", 1))
            elif k == "delay":
                time.sleep(fault.kw.get("seconds", 1.0))
            elif k == "truncated":
                body = self.body_for(path)
                cut_at = len(body) // 2
            elif k == "cut":
                body = self.body_for(path)[: len(self.body_for(path)) // 2]
            elif k == "corrupt":
                body = os.urandom(4000)
            elif k == "html":
                body, ctype = b"<html><body>Service temporarily unavailable</body></html>", "text/html"
            elif k == "blank":
                body = self.blank[kind]
            elif k == "empty":
                body = b""
            elif k == "gzip":
                body = gzip.compress(self.body_for(path))
                headers["Content-Encoding"] = "gzip"
            elif k == "redirect":
                status, body, ctype = 302, b"moved\n", "text/plain"
                headers["Location"] = fault.kw["to"]
            elif k == "close":
                close = True
            elif k in ("chunked", "no-length", "continue"):
                self._count(h, path, status)
                self._send_special(h, k, self.body_for(path), ctype)
                return
        if body is None:
            body = self.body_for(path)
        self._count(h, path, status)
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(body)))
            for k2, v in headers.items():
                h.send_header(k2, v)
            h.end_headers()
            if cut_at is not None:
                h.wfile.write(body[:cut_at])
                h.wfile.flush()
                h.close_connection = True
                return
            h.wfile.write(body)
            if close:
                h.wfile.flush()
                h.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True

    def _count(self, h: BaseHTTPRequestHandler, path: str, status: int) -> None:
        with self.lock:
            self.counts[path] += 1
            self.headers[path] = dict(h.headers)
            if not self.quiet_log:
                self.log.append((time.monotonic(), path, status))

    @staticmethod
    def _send_special(h: BaseHTTPRequestHandler, kind: str, body: bytes, ctype: str) -> None:
        w = h.wfile
        if kind == "continue":
            w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype.encode() + b"\r\nContent-Length: "
                    + str(len(body)).encode() + b"\r\n\r\n" + body)
        elif kind == "chunked":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
            third = len(body) // 3
            for i, part in enumerate((body[:third], body[third:2 * third], body[2 * third:])):
                w.write(f"{len(part):x}".encode() + (b";ext=1" if i == 1 else b"") + b"\r\n" + part + b"\r\n")
                w.flush()
            w.write(b"0\r\nX-Trailer: yes\r\n\r\n")
        else:  # no-length: the body ends when the connection closes
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype.encode() + b"\r\nConnection: close\r\n\r\n" + body)
            h.close_connection = True
        w.flush()

    def _tunnel(self, h: BaseHTTPRequestHandler) -> None:
        """CONNECT host:port as a proxy does, to 127.0.0.1 only; bytes are relayed until either side closes."""
        host, _, port = h.path.rpartition(":")
        self._count(h, f"CONNECT {h.path}", 200)
        if host not in ("127.0.0.1", "localhost"):
            h.send_error(403, "tunnels to 127.0.0.1 only")
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
        except OSError:
            h.send_error(502)
            return
        h.send_response(200, "Connection established")
        h.end_headers()
        h.close_connection = True
        client = h.connection
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, client)
        try:
            while True:
                for key, _ in sel.select(timeout=30):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            pass
        finally:
            sel.close()
            upstream.close()

    def start(self) -> "TileServer":
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "TileServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Test tile server on 127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    ap.add_argument("--slots", type=int, default=None, help="requests served at once")
    args = ap.parse_args()
    srv = TileServer(port=args.port, latency=args.latency, slots=args.slots)
    print(f"PORT {srv.port}", flush=True)
    try:
        srv.quiet_log = True
        srv.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
