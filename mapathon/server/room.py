"""The room server's state (:class:`Room`): the project's writer and readers (writer.py), the
organizer token, the sign-ins (sessions.py), the pages' language, the imagery cache; and how a
refusal is said to a browser."""

from __future__ import annotations

import contextlib
import hmac
import re
import secrets
import sqlite3
from pathlib import Path

from fastapi import HTTPException, Request

from .. import i18n
from ..errors import MapathonError, UnknownVolunteer
from ..project import Project, open_project
from .refusal import Refusal, error_status
from .sessions import DEFAULT_HOURS, DEFAULT_PER_MINUTE, Sessions
from .writer import Writer

DEFAULT_MAX_UPLOAD = 20 * 1024 * 1024
_HOST = re.compile(r"^[A-Za-z0-9.\-\[\]:]{1,255}$")


class Room(Writer):
    """The server's state: the project folder, per-thread connections, the writer, the organizer token."""

    refusals = (MapathonError, HTTPException)

    def __init__(self, folder: str | Path, token: str | None = None, max_upload: int = DEFAULT_MAX_UPLOAD,
                 lang: str | None = None, session_hours: float = DEFAULT_HOURS,
                 sign_ins_per_minute: int = DEFAULT_PER_MINUTE):
        with open_project(Path(folder)) as p:  # fails early, with the project's own message
            self.name = p.name
            self.lang = i18n.resolve_lang(p, lang)  # the pages' language unless they ask for another
        super().__init__(folder)
        self.token = token or secrets.token_urlsafe(9)
        self.max_upload = max_upload
        self.sessions = Sessions(session_hours, sign_ins_per_minute)
        self.geoms: dict[str | None, str] = {}  # task key -> GeoJSON geometry text (None -> the grid's event id)
        self.villages_json: str | None = None
        self.tiles = _tile_service(self.folder)

    def is_organizer_request(self, request: Request) -> bool:
        given = request.headers.get("x-organizer-token", "")
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def lang_of(self, asked: str | bytes | None) -> str:
        """The language a request asks for (its ``X-Lang`` header, sent by the pages), else the room's."""
        if isinstance(asked, bytes):
            asked = asked.decode("latin-1")
        asked = (asked or "").strip().lower()[:2]
        return asked if asked in i18n.LANGS else self.lang

    def refusal(self, e: Exception, asked: str | bytes | None) -> tuple[int, dict, list]:
        """A refusal as the browser gets it: (status, JSON content, extra headers), its words in plain
        sentences of the request's language: never a command-line flag (see i18n.plain_error)."""
        lang = self.lang_of(asked)
        if isinstance(e, Refusal):
            detail, status = i18n.Words(lang)(e.key, **e.fields), e.status_code
        elif isinstance(e, HTTPException):
            detail, status = e.detail, e.status_code
        else:
            detail, status = i18n.plain_error(str(e), lang), error_status(e)
        content = {"detail": detail}
        if isinstance(e, UnknownVolunteer):  # the page asks: that volunteer, or someone new?
            words = i18n.Words(lang)
            content["detail"] = words("err.unknown_volunteer", name=e.name)
            if e.suggestion:
                content["detail"] += " " + words("err.did_you_mean", close=e.suggestion)
                content["suggestion"] = e.suggestion
        headers = getattr(e, "headers", None) or {}
        return status, content, [(k.lower().encode("latin-1"), v.encode("latin-1"))
                                            for k, v in headers.items()]


def room_of(request: Request) -> Room:
    """The room of the application answering *request* (for the routers)."""
    return request.app.state.room


def session_of(request: Request) -> str:
    return request.headers.get("x-session", "")


def _tile_service(folder: Path):
    """The imagery cache server of mapathon.imagery, when this installation has it."""
    try:
        from ..imagery.serve import TileService
    except ImportError:  # pragma: no cover - the imagery module is optional for the room server
        return None
    return TileService(folder)


def imagery_sources(p: Project, tiles, base: str) -> list[dict]:
    """The imagery caches the pages may show, the project's default source first (the pages use the
    first one as the map's background). A cache without a single tile (a fetch that failed or never
    ran) or that cannot be read is left out."""
    if tiles is None:
        return []
    from ..imagery import sources

    default = sources.default_name(p)
    out = []
    for name in sorted(tiles.sources(), key=lambda n: n != default):
        try:
            uri = (tiles.folder / f"{name}.mbtiles").resolve().as_uri() + "?mode=ro"
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
                if conn.execute("SELECT 1 FROM tiles LIMIT 1").fetchone() is None:
                    continue
            out.append(tiles.tilejson(name, base))
        except Exception:  # noqa: BLE001 - an unreadable cache is left out, not fatal
            continue
    return out


def base_url(request: Request) -> str:
    host = request.headers.get("host", "")
    if not _HOST.match(host):
        host = f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"
