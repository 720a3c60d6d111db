"""Serve the project's imagery cache as XYZ tiles over HTTP (for JOSM and iD on the local network).

Routes:

* ``/tiles/<source>/<z>/<x>/<y>[.jpg|.png|.webp]``  a tile (XYZ numbering), 404 where the cache has none
* ``/tiles/<source>.json``                          TileJSON of one cache
* ``/tasks/<task>.gpx`` and ``/tasks/<task>.osm``    a task boundary (iD's ``gpx=``, JOSM's ``/import``)
* ``/tasks/<task>/data.osm``, ``/tasks/<task>/new.osm`` the task's existing data for JOSM's ``/import``: the
  layer to map in, and what the project mapped but did not upload yet (see ``editors.josm_urls``)
* ``/``                                             what is served, as JSON

:class:`TileService` holds the logic as ``respond(path) -> (status, headers, body)`` so that
the future room server can mount it; :func:`make_server` wraps it in the standard library's
``ThreadingHTTPServer`` for ``mapathon imagery serve``.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import MapathonError
from . import mbtiles

_TILE = re.compile(r"^/tiles/([a-z0-9][a-z0-9._-]{0,62})/(\d{1,2})/(\d{1,8})/(\d{1,8})(?:\.(?:jpe?g|png|webp|img))?$")
_TILEJSON = re.compile(r"^/tiles/([a-z0-9][a-z0-9._-]{0,62})\.json$")
_TASK = re.compile(r"^/tasks/(\d+)\.(gpx|osm)$")
_TASK_DATA = re.compile(r"^/tasks/(\d+)/(data|new)\.osm$")
CACHE_CONTROL = "public, max-age=86400"


class TileService:
    """Framework-free request logic over ``<project>/imagery/*.mbtiles``."""

    def __init__(self, project_path: str | Path):
        self.project_path = Path(project_path)
        self.folder = mbtiles.cache_dir(self.project_path)
        self._readers: dict[str, mbtiles.Reader] = {}
        self._lock = threading.Lock()

    def sources(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.mbtiles")) if self.folder.is_dir() else []

    def reader(self, name: str) -> mbtiles.Reader | None:
        r = self._readers.get(name)
        if r is None:
            path = self.folder / f"{name}.mbtiles"
            if not path.is_file():
                return None
            with self._lock:
                r = self._readers.get(name)
                if r is None:
                    r = mbtiles.Reader(path)
                    self._readers[name] = r
        return r

    def respond(self, path: str, base_url: str = "") -> tuple[int, dict[str, str], bytes]:
        path = unquote(urlsplit(path).path)
        m = _TILE.match(path)
        if m:
            name, z, x, y = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
            r = self.reader(name)
            if r is None:
                return _text(404, f"no imagery cache named {name}")
            if z > 30 or x >= 1 << z or y >= 1 << z:
                return _text(404, "no such tile")
            data = r.tile(z, x, y)
            if data is None:
                return _text(404, "tile not in the cache")
            return 200, {"Content-Type": mbtiles.MIME[mbtiles.sniff_format(data)],
                         "Cache-Control": CACHE_CONTROL, "Access-Control-Allow-Origin": "*"}, data
        m = _TILEJSON.match(path)
        if m:
            r = self.reader(m.group(1))
            if r is None:
                return _text(404, f"no imagery cache named {m.group(1)}")
            return _json(self.tilejson(m.group(1), base_url))
        m = _TASK.match(path)
        if m:
            return self._task(int(m.group(1)), m.group(2))
        m = _TASK_DATA.match(path)
        if m:
            return self._task(int(m.group(1)), m.group(2))
        if path in ("/", "/index.json"):
            return _json({"sources": {n: self.tilejson(n, base_url) for n in self.sources()}})
        return _text(404, "not found")

    def tilejson(self, name: str, base_url: str = "") -> dict:
        r = self.reader(name)
        meta = r.metadata()
        fmt = meta.get("format", "jpg")
        out = {"tilejson": "2.2.0", "name": meta.get("name", name), "attribution": meta.get("attribution", ""),
               "scheme": "xyz", "format": fmt,
               "tiles": [f"{base_url}/tiles/{name}/{{z}}/{{x}}/{{y}}.{fmt}"]}
        if "bounds" in meta:
            out["bounds"] = [float(v) for v in meta["bounds"].split(",")]
        for k in ("minzoom", "maxzoom"):
            if k in meta:
                out[k] = int(meta[k])
        return out

    def _task(self, task_id: int, kind: str):
        from ..project import open_project
        from ..tasks.lifecycle import get_task
        from .editors import boundary_gpx, boundary_osm, existing_data_osm

        try:
            with open_project(self.project_path) as p:
                t = get_task(p, task_id)
                name = p.name
                if kind in ("data", "new"):
                    body = existing_data_osm(p, t, kind)
                    return 200, {"Content-Type": "application/x-osm+xml", "Access-Control-Allow-Origin": "*"}, body
        except MapathonError as e:
            return _text(404, str(e))
        if kind == "gpx":
            return 200, {"Content-Type": "application/gpx+xml", "Access-Control-Allow-Origin": "*"}, \
                boundary_gpx(t, name).encode()
        return 200, {"Content-Type": "application/x-osm+xml", "Access-Control-Allow-Origin": "*"}, \
            boundary_osm(t, name).encode()


def _text(status: int, text: str):
    return status, {"Content-Type": "text/plain; charset=utf-8", "Access-Control-Allow-Origin": "*"}, \
        (text + "\n").encode()


def _json(obj):
    return 200, {"Content-Type": "application/json", "Access-Control-Allow-Origin": "*"}, \
        json.dumps(obj, ensure_ascii=False, indent=1).encode()


def make_handler(service: TileService, base_url: str = "") -> type[BaseHTTPRequestHandler]:
    """A ``BaseHTTPRequestHandler`` class answering with *service* (keep-alive, no Nagle delay)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        server_version = "mapathon-imagery"

        def log_message(self, *a):
            pass

        def _answer(self, body_too: bool):
            try:
                status, headers, body = service.respond(self.path, base_url)
            except Exception as e:  # a broken cache file must not kill the server
                status, headers, body = _text(500, f"error: {type(e).__name__}: {e}")
            head = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}\r\n",
                    f"Server: {self.server_version}\r\n", f"Content-Length: {len(body)}\r\n"]
            head += [f"{k}: {v}\r\n" for k, v in headers.items()]
            head.append("\r\n")
            data = "".join(head).encode("latin-1") + (body if body_too else b"")
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def do_GET(self):
            self._answer(True)

        def do_HEAD(self):
            self._answer(False)

    return Handler


def make_server(project_path: str | Path, host: str = "127.0.0.1", port: int = 8001) -> ThreadingHTTPServer:
    service = TileService(project_path)
    try:
        httpd = ThreadingHTTPServer((host, port), make_handler(service))
    except OSError as e:
        raise MapathonError(f"cannot listen on {host}:{port} ({e.strerror or e}); try another --port") from None
    httpd.daemon_threads = True
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    httpd.RequestHandlerClass = make_handler(service, f"http://{shown}:{httpd.server_address[1]}")
    httpd.service = service  # type: ignore[attr-defined]
    return httpd
