"""The pages and their files: the volunteers' page, the progress board, static files, imagery tiles."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..refusal import err
from ..room import base_url, room_of

STATIC = Path(__file__).parent.parent / "static"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml", ".txt": "text/plain",
          "": "text/plain; charset=utf-8"}


def _static_files() -> dict[str, tuple[bytes, str]]:
    """The files under static/, read once: requests pick one by name, never build a path."""
    out = {}
    for f in sorted(STATIC.rglob("*")):
        if f.is_file() and not f.name.startswith("."):
            rel = f.relative_to(STATIC).as_posix()
            out[rel] = (f.read_bytes(), _TYPES.get(f.suffix, _TYPES[""]))
    return out


def router() -> APIRouter:
    r = APIRouter()
    static = _static_files()

    def _file(name: str) -> Response:
        body, ctype = static[name]
        return Response(body, media_type=ctype, headers={"Cache-Control": "no-cache"})

    @r.get("/", include_in_schema=False)
    async def index():
        return _file("index.html")

    @r.get("/board", include_in_schema=False)
    async def board():
        return _file("board.html")

    @r.get("/static/states.js", include_in_schema=False)
    async def states_js():
        from ...render.palette import states_js as make

        return Response(make(), media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    @r.get("/static/{path:path}", include_in_schema=False)
    async def static_file(path: str):
        if path not in static:  # only the files shipped with mapathon, looked up by name
            raise err(404, "err.no_file")
        return _file(path)

    @r.api_route("/tiles/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
    @r.api_route("/tasks/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def imagery(request: Request):
        room = room_of(request)
        if room.tiles is None:
            raise err(404, "err.no_imagery_support")
        status, headers, body = await room.read(lambda p: room.tiles.respond(request.url.path, base_url(request)))
        return Response(body if request.method == "GET" else b"", status_code=status, headers=headers)

    return r
