"""The room server's web application (FastAPI): pages, static files, imagery tiles and the JSON API.

Every change goes through the project's own modules (``tasks.lifecycle``,
``tasks.volunteers``, ``osm.submit``): the rules that say who may do what live
there, not here. What the server adds is *who is asking*:

* a volunteer signs in by typing a name and gets a token kept by their browser
  (``X-Session`` header); the name is then bound to that browser: nobody else
  can act under it from another device (an organizer can free it);
* organizer actions (reset, force-release, split, validator rights, freeing a
  name, signing in under an organizer's name) need the organizer token printed
  when the server starts (``X-Organizer-Token`` header).

Database work runs off the event loop, in threads that each keep their own
connection to the project database: every change in one writer thread (so
changes queue in order inside the process instead of spinning on SQLite's busy
handler; across processes the lifecycle's ``BEGIN IMMEDIATE`` serialises them),
reads in two reader threads (WAL lets them read while the writer writes).

Group commit: when changes queue up (200 people pressing "give me a task" at
once), the writer runs those waiting, one after the other and each in a
``SAVEPOINT`` of its own, inside one transaction with one ``COMMIT`` (see
:meth:`Room.change`). A change refused by the rules is rolled back to its
savepoint and answers with its own error; the others are unaffected. Answers
go out only once the ``COMMIT`` has succeeded; if anything fails below the
rules (the database itself, the ``COMMIT``), the whole group is rolled back and
its changes are run again one by one, each in a transaction of its own, exactly
as without grouping. Claims ("give me a task", claim a square) queued one behind
the other go further: they are handed together to the lifecycle's functions for
many volunteers (``claim_next_many``, ``claim_many``), which read the tasks and
locks once and write all the locks and events with one statement each
(:meth:`Room.change_batched`).

The requests of the claim path (claim, "give me a task", release, done, bad
imagery) are answered without FastAPI's routing and pydantic when they are
plain (see :class:`_RoomApp`): same function, same answers, a fifth of the
event loop's time, which the writer would otherwise spend waiting for the GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
import queue
import re
import secrets
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import shapely
from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from .. import __version__, events, i18n, store
from ..errors import ForbiddenTransition, MapathonError, NotPermitted, UnknownVolunteer
from ..project import Project, open_project

STATIC = Path(__file__).parent / "static"
DEFAULT_MAX_UPLOAD = 20 * 1024 * 1024
MAX_JSON_BODY = 64 * 1024
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml", ".txt": "text/plain",
          "": "text/plain; charset=utf-8"}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")
_HOST = re.compile(r"^[A-Za-z0-9.\-\[\]:]{1,255}$")


# -- request and answer models (they make the OpenAPI description) -----------------------------------------


class JoinIn(BaseModel):
    name: str = Field(..., max_length=200, description="The volunteer's name, as they want to appear.")
    new: bool = Field(False, description="A new volunteer, though the name is close to a registered one's "
                                         "(without it, such a name is refused with the close name).")


class NextIn(BaseModel):
    village: Optional[str] = Field(None, max_length=200, description="Only a task in this village.")


class CommentIn(BaseModel):
    comment: Optional[str] = Field(None, max_length=2000)


class ValidateIn(BaseModel):
    accept: bool = Field(..., description="true: VALIDATED; false: INVALIDATED (sent back to mapping).")
    comment: Optional[str] = Field(None, max_length=2000)


class GrantIn(BaseModel):
    name: str = Field(..., max_length=200)


class _WriterProject(Project):
    """The writer thread's project. Inside a group of changes, the transactions that the project's
    modules open (``project.transaction()``) are savepoints of the group's transaction."""

    grouped = False

    def transaction(self):
        return store.savepoint(self.conn, "mapathon_tx") if self.grouped else super().transaction()


class _Change:
    """A change waiting for the writer thread, then its outcome."""

    __slots__ = ("fn", "args", "kw", "grouped", "batch", "loop", "future", "ok", "value")

    def __init__(self, fn, args, kw, grouped, loop, future, batch=None):
        self.fn, self.args, self.kw, self.grouped, self.loop, self.future = fn, args, kw, grouped, loop, future
        self.batch = batch  # see Room.change_batched
        self.ok, self.value = False, None


def _one_of(p, batch, arg):
    """A batched change run on its own: its outcome, raised when it is an error."""
    got = batch(p, [arg])[0]
    if isinstance(got, BaseException):
        raise got
    return got


_STOP = object()
GROUP_SECONDS = 0.010  # a group takes in changes for at most this long before its COMMIT
GROUP_MAX = 100  # and at most this many


def _settle(items: list[_Change]) -> None:
    """In the event loop: hand each change's outcome to the request waiting for it."""
    for it in items:
        if it.future.done():  # the request went away
            continue
        if it.ok:
            it.future.set_result(it.value)
        else:
            it.future.set_exception(it.value)


class Room:
    """The server's state: the project folder, per-thread connections, the writer, the organizer token."""

    def __init__(self, folder: str | Path, token: str | None = None, max_upload: int = DEFAULT_MAX_UPLOAD,
                 lang: str | None = None):
        self.folder = Path(folder)
        with open_project(self.folder) as p:  # fails early, with the project's own message
            self.name = p.name
            self.lang = i18n.resolve_lang(p, lang)  # the pages' language unless they ask for another
        self.token = token or secrets.token_urlsafe(9)
        self.max_upload = max_upload
        self._local = threading.local()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._readers = ThreadPoolExecutor(2, thread_name_prefix="mapathon-read")
        self.stats: Counter = Counter()  # groups of changes committed together (or redone one by one)
        self._geoms: dict[str | None, str] = {}  # task key -> GeoJSON geometry text (None -> the grid's event id)
        self._villages: dict | None = None
        self.tiles = _tile_service(self.folder)

    def project(self) -> Project:
        p = getattr(self._local, "project", None)
        if p is None:
            p = self._local.project = open_project(self.folder)
        return p

    def _call(self, fn, args, kw):
        return fn(self.project(), *args, **kw)

    async def write(self, fn, *args, **kw):
        """``fn(project, ...)`` in the writer thread, alone in its transactions: one change at a time,
        in arrival order. For changes that do more than write to the database (files)."""
        return await self._submit(False, fn, args, kw)

    async def change(self, fn, *args, **kw):
        """Like :meth:`write`, for changes that only touch the database: they may share one COMMIT
        with the changes queued around them (group commit), each in its own savepoint.
        ``fn`` may run a second time, alone, if its group had to be rolled back."""
        return await self._submit(True, fn, args, kw)

    async def change_batched(self, batch, arg):
        """Like :meth:`change`, for a change that many people ask for at once ("give me a task"):
        ``batch(project, [arg, ...])`` takes the *arg* of every such change queued one behind the
        other and returns, in the same order, each one's outcome (a value, or the exception that
        refuses it, having changed nothing for it). They share one savepoint; *batch* must be the
        same function object for all the changes that may go together."""
        return await self._submit(True, _one_of, (batch, arg), {}, batch)

    async def read(self, fn, *args, **kw):
        """``fn(project, ...)`` in a reader thread."""
        return await asyncio.wrap_future(self._readers.submit(self._call, fn, args, kw))

    async def _submit(self, grouped: bool, fn, args, kw, batch=None):
        if self._writer is None:
            with self._writer_lock:
                if self._writer is None:
                    self._writer = threading.Thread(target=self._write_loop, name="mapathon-write", daemon=True)
                    self._writer.start()
        loop = asyncio.get_running_loop()
        item = _Change(fn, args, kw, grouped, loop, loop.create_future(), batch)
        self._queue.put(item)
        return await item.future

    def close(self) -> None:
        if self._writer is not None:
            self._queue.put(_STOP)
            self._writer.join()
        self._readers.shutdown(wait=True)

    # -- the writer thread ---------------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        p: _WriterProject | None = None
        held = None
        while True:
            item = held if held is not None else self._queue.get()
            held = None
            if item is _STOP:
                break
            if item.future.cancelled():  # the request went away before its turn
                continue
            if p is None:
                try:
                    base = open_project(self.folder)
                    p = _WriterProject(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base) if f.init})
                except BaseException as e:  # noqa: BLE001 - the request gets the error
                    item.value = e
                    self._deliver([item])
                    continue
            if item.grouped:
                batch, held = self._run_group(p, item)
            else:
                self._run_alone(p, item)
                batch = [item]
            self._deliver(batch)
        if p is not None:
            p.close()

    @staticmethod
    def _run_alone(p: _WriterProject, item: _Change) -> None:
        try:
            item.value, item.ok = item.fn(p, *item.args, **item.kw), True
        except BaseException as e:  # noqa: BLE001 - handed to the request
            item.value, item.ok = e, False
            # a transaction left open (a COMMIT that failed) would refuse every later change
            with contextlib.suppress(Exception):
                p.conn.execute("ROLLBACK")

    def _run_group(self, p: _WriterProject, first: _Change) -> tuple[list[_Change], object]:
        """Run *first* and the grouped changes queued behind it in one transaction.
        Returns the changes run and the next item taken from the queue but not run."""
        try:
            p.conn.execute("BEGIN IMMEDIATE")
        except Exception as e:  # noqa: BLE001 - e.g. another process held the database past the busy timeout
            first.value = e
            return [first], None
        batch: list[_Change] = []
        held, ok, item = None, True, first
        deadline = time.perf_counter() + GROUP_SECONDS
        while True:
            if item.batch is None:
                batch.append(item)
                ran = self._run_in_savepoint(p, [item])
            else:  # the same kind of change queued behind it goes with it, in one call
                run = [item]
                while len(batch) + len(run) < GROUP_MAX:
                    nxt = self._next_queued()
                    if nxt is None:
                        break
                    if nxt is _STOP or nxt.batch is not item.batch:
                        held = nxt
                        break
                    run.append(nxt)
                batch.extend(run)
                ran = self._run_in_savepoint(p, run)
            if not ran:
                ok = False
                break
            if len(batch) >= GROUP_MAX or time.perf_counter() >= deadline:
                break
            if held is None:
                held = self._next_queued()
            if held is None or held is _STOP or not held.grouped:
                break
            item, held = held, None
        if ok:
            try:
                p.conn.execute("COMMIT")
            except Exception:  # noqa: BLE001
                ok = False
        self.stats["groups"] += 1
        self.stats["grouped changes"] += len(batch)
        if not ok:
            self.stats["groups redone"] += 1
            # below the rules something failed: nothing of the group is kept, and every change of it
            # runs again alone, in its own transaction, so that each gets the outcome it would have had
            with contextlib.suppress(Exception):
                p.conn.execute("ROLLBACK")
            for item in batch:
                self._run_alone(p, item)
        return batch, held

    def _next_queued(self) -> object:
        """The next item waiting in the queue that is still wanted, or None when there is none."""
        while True:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                return None
            if nxt is _STOP or not nxt.future.cancelled():
                return nxt

    @staticmethod
    def _run_in_savepoint(p: _WriterProject, run: list[_Change]) -> bool:
        """Run a change inside the group, in a savepoint of its own, or changes of one kind together (see
        :meth:`change_batched`) in one. A refused change is undone alone (a batch function writes nothing
        for the changes it refuses). False when the group must be given up: an error that is not a refusal
        (the database, a bug) or a savepoint that cannot be released or rolled back."""
        try:
            p.conn.execute("SAVEPOINT mapathon_change")
        except Exception:  # noqa: BLE001
            return False
        p.grouped = True
        refused = False
        try:
            if run[0].batch is not None:
                outcomes = run[0].batch(p, [it.args[1] for it in run])
                if len(outcomes) != len(run):
                    return False
                oks = [not isinstance(got, BaseException) for got in outcomes]
            else:
                item = run[0]
                try:
                    outcomes, oks = [item.fn(p, *item.args, **item.kw)], [True]
                except (MapathonError, HTTPException) as e:  # refused: this change only is undone
                    outcomes, oks, refused = [e], [False], True
        except BaseException:  # noqa: BLE001 - run again alone, where each gets its error
            return False
        finally:
            p.grouped = False
        for it, got, ok in zip(run, outcomes, oks):
            it.value, it.ok = got, ok
        try:
            if refused:
                p.conn.execute("ROLLBACK TO SAVEPOINT mapathon_change")
            p.conn.execute("RELEASE SAVEPOINT mapathon_change")
        except Exception:  # noqa: BLE001 - e.g. the database rolled the whole transaction back
            return False
        return True

    @staticmethod
    def _deliver(items: list[_Change]) -> None:
        loops: dict = {}
        for it in items:
            loops.setdefault(it.loop, []).append(it)
        for loop, its in loops.items():
            with contextlib.suppress(RuntimeError):  # the event loop has already stopped
                loop.call_soon_threadsafe(_settle, its)

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
        if isinstance(e, _Refusal):
            detail, status = i18n.Words(lang)(e.key, **e.fields), e.status_code
        elif isinstance(e, HTTPException):
            detail, status = e.detail, e.status_code
        else:
            detail, status = i18n.plain_error(str(e), lang), _error_status(e)
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


class _BodyLimit:
    """Refuses request bodies larger than allowed before they are read (pure ASGI: cheap per request)."""

    def __init__(self, app, room: Room):
        self.app, self.room = app, room

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope["headers"])
            upload = scope["path"].endswith("/upload")
            limit = self.room.max_upload if upload else MAX_JSON_BODY
            length = headers.get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > limit):
                what = f"{limit / (1024 * 1024):g} MB" if upload else f"{limit // 1024} KiB"
                words = i18n.Words(self.room.lang_of(headers.get(b"x-lang")))
                await JSONResponse({"detail": words("err.too_large", what=what)}, status_code=413)(
                    scope, receive, send)
                return
            if length is None and not upload and b"chunked" in headers.get(b"transfer-encoding", b""):
                await JSONResponse({"detail": "send a Content-Length"}, status_code=411)(scope, receive, send)
                return
        await self.app(scope, receive, send)


# -- the claim path without FastAPI ---------------------------------------------------------------------------


_FAST_TASK = re.compile(r"/api/tasks/(0|[1-9][0-9]{0,17})/(claim|release|done|badimagery)")
_FAST_FIELD = {"claim_next": ("village", 200), "claim": None, "release": ("comment", 2000),
               "done": ("comment", 2000), "badimagery": ("comment", 2000)}  # the body each route takes


def _json_bytes(content) -> bytes:
    """JSON exactly as Starlette's JSONResponse writes it."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


def _error_status(e: MapathonError) -> int:
    return 409 if isinstance(e, ForbiddenTransition) else 403 if isinstance(e, NotPermitted) else 400


class _RoomApp(FastAPI):
    """The room server's application: FastAPI, except for the requests of the claim path.

    Claims, "give me a task", release, done and bad imagery are most of a room's changes and all of
    its bursts. FastAPI's middleware, routing, dependency solving and pydantic cost about 0.2 ms of
    the event loop's time for each, time the writer thread then waits for Python's GIL: so these
    requests are answered here, by the same function as their FastAPI routes (``fast_act``) and
    with the same answers. Only the plain cases are: no path prefix, a task number written plainly,
    no body or a JSON object of the route's one field as a string or null (within its length), a
    body within the size limit. Anything else goes to the FastAPI route, which stays the reference
    (and describes the API), with the body already read handed on unchanged.
    """

    fast_act = None  # set by create_app: async (fn_name, task_id, session token, **kw) -> JSON content

    async def __call__(self, scope, receive, send):
        if (self.fast_act is None or scope["type"] != "http" or scope["method"] != "POST"
                or scope.get("root_path")):
            return await super().__call__(scope, receive, send)
        path = scope["path"]
        if path == "/api/claim-next":
            fn_name, task_id = "claim_next", None
        else:
            m = _FAST_TASK.fullmatch(path)
            if m is None:
                return await super().__call__(scope, receive, send)
            fn_name, task_id = m[2], int(m[1])
        seen: dict[bytes, bytes] = {}
        for k, v in scope["headers"]:
            if k in (b"content-length", b"transfer-encoding", b"content-type", b"x-session", b"x-lang"):
                if k in seen:  # repeated: FastAPI decides
                    return await super().__call__(scope, receive, send)
                seen[k] = v
        length = seen.get(b"content-length")
        if b"transfer-encoding" in seen or (length is not None and (not length.isdigit()
                                                                    or int(length) > MAX_JSON_BODY)):
            return await super().__call__(scope, receive, send)  # its size checks answer
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        kw = self._fast_body(fn_name, body, seen.get(b"content-type"))
        if kw is None:
            done = False

            async def replay():
                nonlocal done
                if not done:
                    done = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            return await super().__call__(scope, replay, send)
        extra: list = []
        try:
            content, status = await self.fast_act(fn_name, task_id, seen.get(b"x-session", b"").decode("latin-1"),
                                                  **kw), 200
        except (HTTPException, MapathonError) as e:
            status, content, extra = self.state.room.refusal(e, seen.get(b"x-lang"))
        data = _json_bytes(content)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(data)).encode()), (b"content-type", b"application/json"),
                                *extra]})
        await send({"type": "http.response.body", "body": data})

    @staticmethod
    def _fast_body(fn_name: str, body: bytes, ctype: bytes | None) -> dict | None:
        """The route's keyword arguments from a plain body, or None: let FastAPI read it."""
        field = _FAST_FIELD[fn_name]
        if field is None:  # POST .../claim reads no body
            return {}
        name, most = field
        if not body:
            value = None
        else:
            if ctype is not None and ctype.split(b";")[0].strip().lower() != b"application/json":
                return None
            try:
                data = json.loads(body)
            except ValueError:
                return None
            if not isinstance(data, dict) or not set(data) <= {name}:
                return None
            value = data.get(name)
            if value is not None and not (isinstance(value, str) and len(value) <= most):
                return None
        if fn_name == "claim_next":
            return {"village": value or None}
        return {"comment": value}


def _tile_service(folder: Path):
    """The imagery cache server of mapathon.imagery, when this installation has it."""
    try:
        from ..imagery.serve import TileService
    except ImportError:  # pragma: no cover - the imagery module is optional for the room server
        return None
    return TileService(folder)


class _Refusal(HTTPException):
    """A refusal by the server itself: a catalog entry (i18n.WORDS), said in the request's language."""

    def __init__(self, status: int, key: str, **fields):
        super().__init__(status_code=status, detail=i18n.Words()(key, **fields))
        self.key, self.fields = key, fields


def _no_task(task_id: int) -> HTTPException:
    return _Refusal(404, "err.no_task", id=task_id)


def _h(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _err(status: int, key: str, **fields) -> HTTPException:
    return _Refusal(status, key, **fields)


def _imagery(p: Project, tiles, base: str) -> list[dict]:
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


def _base_url(request: Request) -> str:
    host = request.headers.get("host", "")
    if not _HOST.match(host):
        host = f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"


# -- JSON views ---------------------------------------------------------------------------------------------------


def _round(obj):
    if isinstance(obj, float):
        return round(obj, 7)
    if isinstance(obj, (list, tuple)):
        return [_round(v) for v in obj]
    return obj


def _geometry(geom) -> dict:
    g = shapely.geometry.mapping(geom)
    return {"type": g["type"], "coordinates": _round(g["coordinates"])}


def create_app(folder: str | Path, *, token: str | None = None, max_upload: int = DEFAULT_MAX_UPLOAD,
               lang: str | None = None) -> FastAPI:
    """The room server for the project in *folder*. ``app.state.room.token`` is the organizer token.
    *lang*: the pages' language (default: the project's, see i18n.resolve_lang); a page may ask for another."""
    room = Room(folder, token, max_upload, lang)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        room.close()

    app = _RoomApp(
        title=f"mapathon room server — {room.name}",
        version=__version__,
        description="Claim, map, hand in and validate the tasks of a mapathon project from a browser. "
                    "Volunteers sign in with POST /api/join and send the token they get as `X-Session`; "
                    "organizer actions need the token printed when the server started, as `X-Organizer-Token`. "
                    "Refusals by the task rules are HTTP 409 with the reason in `detail`.",
        docs_url=None, redoc_url=None,  # their pages load scripts from CDNs: the room may have no internet
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
    )
    app.state.room = room
    static = _static_files()

    @app.exception_handler(MapathonError)
    @app.exception_handler(HTTPException)
    async def _refused(request: Request, e: Exception):
        status, content, extra = room.refusal(e, request.headers.get("x-lang"))
        return JSONResponse(content, status_code=status,
                            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in extra} or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        asked = request.headers.get("x-lang")
        if not asked:  # API clients get FastAPI's list of errors
            return await request_validation_exception_handler(request, e)
        words = i18n.Words(room.lang_of(asked))
        where = [str(err.get("loc", ["", ""])[-1]) for err in e.errors()]
        detail = words("err.name_long") if "name" in where else words("err.invalid", field=", ".join(where))
        return JSONResponse({"detail": detail}, status_code=422)

    app.add_middleware(_BodyLimit, room=room)

    # -- pages and files ---------------------------------------------------------------------------------------

    def _file(name: str) -> Response:
        body, ctype = static[name]
        return Response(body, media_type=ctype, headers={"Cache-Control": "no-cache"})

    @app.get("/", include_in_schema=False)
    async def index():
        return _file("index.html")

    @app.get("/board", include_in_schema=False)
    async def board():
        return _file("board.html")

    @app.get("/static/states.js", include_in_schema=False)
    async def states_js():
        from ..render.palette import states_js as make

        return Response(make(), media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    @app.get("/static/{path:path}", include_in_schema=False)
    async def static_file(path: str):
        if path not in static:  # only the files shipped with mapathon, looked up by name
            raise _err(404, "err.no_file")
        return _file(path)

    @app.api_route("/tiles/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
    @app.api_route("/tasks/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def imagery(request: Request):
        if room.tiles is None:
            raise _err(404, "err.no_imagery_support")
        status, headers, body = await room.read(lambda p: room.tiles.respond(request.url.path, _base_url(request)))
        return Response(body if request.method == "GET" else b"", status_code=status, headers=headers)

    # -- who is asking (these run in the database threads) -----------------------------------------------------

    def volunteer(p: Project, token: str) -> str:
        got = volunteers_of(p, [token])[0]
        if isinstance(got, HTTPException):
            raise got
        return got

    def volunteers_of(p: Project, tokens: list[str]) -> list:
        """For each session token, the name it is signed in as, or the HTTP error that refuses it."""
        hashes = sorted({_h(t) for t in tokens if t})
        known = dict(p.conn.execute(f"SELECT token_hash, volunteer FROM room_sessions WHERE token_hash IN "
                                    f"({','.join('?' * len(hashes))})", hashes).fetchall()) if hashes else {}
        return [_err(401, "err.sign_in") if not t else known.get(_h(t)) or _err(401, "err.sign_in_again")
                for t in tokens]

    def organizer(p: Project, org_ok: bool, token: str) -> str:
        from ..tasks import volunteers

        if not org_ok:
            raise _err(403, "err.organizer_only")
        if token:
            row = p.conn.execute("SELECT volunteer FROM room_sessions WHERE token_hash = ?", (_h(token),)).fetchone()
            if row:
                v = volunteers.find(p, row[0])
                if v and v.is_organizer:
                    return v.name
        row = p.conn.execute("SELECT name FROM volunteers WHERE is_organizer = 1 ORDER BY id LIMIT 1").fetchone()
        if row is None:
            raise _err(409, "err.no_organizer")
        return row[0]

    def exists(p: Project, task_id: int) -> None:
        if not p.conn.execute("SELECT 1 FROM tasks WHERE id = ?", (task_id,)).fetchone():
            raise _no_task(task_id)

    def sess(request: Request) -> str:
        return request.headers.get("x-session", "")

    # -- the project -----------------------------------------------------------------------------------------------

    @app.get("/api/project", tags=["project"], summary="The project: name, villages, area, imagery, limits")
    async def project_info(request: Request):
        base = _base_url(request)

        def do(p: Project):
            aoi = p.aoi_geom()
            return {
                "name": p.name, "project_id": p.id, "site": p.site, "bounds": [round(v, 6) for v in aoi.bounds],
                "lang": room.lang,
                "villages": [{"name": v["name"], "lon": v["lon"], "lat": v["lat"]} for v in p.villages()],
                "imagery": _imagery(p, room.tiles, base), "max_upload_bytes": room.max_upload,
                "tasks": p.conn.execute("SELECT COUNT(*) FROM tasks WHERE state != 'SPLIT'").fetchone()[0],
            }

        return JSONResponse(await room.read(do))

    @app.get("/api/i18n", tags=["project"],
             summary="Every word of the pages in one language: ?lang=fr|en, else the room's language")
    async def words(lang: Optional[str] = None):
        chosen = room.lang_of(lang)
        return JSONResponse({"lang": chosen, "langs": list(i18n.LANGS), "words": i18n.catalog(chosen)})

    @app.get("/api/villages", tags=["project"], summary="Village outlines and the area of interest, as GeoJSON")
    async def villages():
        def do(p: Project):
            if room._villages is None:
                feats = [{"type": "Feature", "properties": {"kind": r["kind"], "name": r["name"]},
                          "geometry": _geometry(shapely.from_wkb(r["geom"]))}
                         for r in p.conn.execute("SELECT kind, name, geom FROM areas ORDER BY kind, name")]
                room._villages = json.dumps({"type": "FeatureCollection", "features": feats}, ensure_ascii=False)
            return room._villages

        return Response(await room.read(do), media_type="application/json")

    def _version(p: Project) -> int:
        return p.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]

    _STATE_SQL = """SELECT t.id, t.key, t.state, lv.name, mv.name, vv.name, t.lock_expires FROM tasks t
                      LEFT JOIN volunteers lv ON lv.id = t.locked_by LEFT JOIN volunteers mv ON mv.id = t.mapped_by
                      LEFT JOIN volunteers vv ON vv.id = t.validated_by WHERE t.state != 'SPLIT' ORDER BY t.id"""

    def _snapshot(p: Project):
        """The event-log version and the task rows, read in one transaction."""
        p.conn.execute("BEGIN")
        try:
            return _version(p), p.conn.execute(_STATE_SQL).fetchall()
        finally:
            p.conn.execute("COMMIT")

    @app.get("/api/tasks", tags=["tasks"], summary="Every task (not split ones) with its state, as GeoJSON")
    async def tasks_geojson():
        def do(p: Project):
            grid = p.conn.execute(
                "SELECT id FROM events WHERE action = 'grid.create' ORDER BY seq DESC LIMIT 1").fetchone()
            if (grid[0] if grid else None) != room._geoms.get(None):  # gridded again: shapes may differ
                room._geoms = {None: grid[0] if grid else None}
            geoms = room._geoms  # this request's reference, whatever other threads do
            p.conn.execute("BEGIN")  # states and shapes from the same moment
            try:
                version = _version(p)
                rows = p.conn.execute(_STATE_SQL).fetchall()
                missing = [r[1] for r in rows if r[1] not in geoms]
                for i in range(0, len(missing), 500):
                    chunk = missing[i:i + 500]
                    for key, geom in p.conn.execute(
                            f"SELECT key, geom FROM tasks WHERE key IN ({','.join('?' * len(chunk))})", chunk):
                        # a key's geometry never changes within a grid: kept as JSON text
                        geoms[key] = json.dumps(_geometry(shapely.from_wkb(geom)))
            finally:
                p.conn.execute("COMMIT")
            parts = [f'{{"type":"Feature","id":{r[0]},"geometry":{geoms[r[1]]},"properties":'
                     + json.dumps({"id": r[0], "key": r[1], "state": r[2], "locked_by": r[3], "mapped_by": r[4],
                                   "validated_by": r[5], "lock_expires": r[6]}, ensure_ascii=False) + "}"
                     for r in rows]
            return f'{{"type":"FeatureCollection","version":{version},"features":[{",".join(parts)}]}}'

        return Response(await room.read(do), media_type="application/json")

    @app.get("/api/states", tags=["tasks"],
             summary="Compact task states for refreshing the map: [id, key, state, locked by, mapped by, validated by]")
    async def states(since: Optional[int] = None):
        def do(p: Project):
            if since is not None and since == _version(p):
                return {"version": since, "unchanged": True}
            version, rows = _snapshot(p)
            return {"version": version, "unchanged": False, "tasks": [list(r[:6]) for r in rows]}

        return JSONResponse(await room.read(do))

    @app.get("/api/tasks/{task_id}", tags=["tasks"], summary="One task")
    async def task(task_id: int):
        from ..tasks import lifecycle

        def do(p: Project):
            exists(p, task_id)
            return lifecycle.get_task(p, task_id).as_dict()

        return JSONResponse(await room.read(do))

    @app.get("/api/tasks/{task_id}/editors", tags=["tasks"],
             summary="Links that open the task in JOSM (remote control, in order) and in iD")
    async def editors(task_id: int, request: Request):
        from ..tasks import lifecycle

        base = _base_url(request)

        def do(p: Project):
            exists(p, task_id)
            t = lifecycle.get_task(p, task_id)
            west, south, east, north = t.geom.bounds
            out = {"josm": [], "id": None, "warnings": []}
            try:
                from ..imagery import editors as ed

                s = ed.setup(p, t, tiles_url=base)
                out["josm"] = [{"what": w, "url": u} for w, u in ed.josm_urls(p, s)]
                out["id"] = ed.id_url(p, s, tiles_url=base)
                out["warnings"] = s.warnings
            except (ImportError, MapathonError) as e:
                out["warnings"].append(str(e) if isinstance(e, MapathonError) else "no imagery support installed")
                out["josm"] = [{"what": "zoom", "url": "http://127.0.0.1:8111/load_and_zoom?"
                                f"left={west:.7f}&right={east:.7f}&top={north:.7f}&bottom={south:.7f}&new_layer=true"}]
                c = t.geom.centroid
                out["id"] = f"https://www.openstreetmap.org/edit?editor=id#map=17/{c.y:.6f}/{c.x:.6f}"
            return out

        return JSONResponse(await room.read(do))

    # -- volunteers ------------------------------------------------------------------------------------------------

    @app.post("/api/join", tags=["volunteers"],
              summary="Sign in with a name; returns the token to send as X-Session")
    async def join(body: JoinIn, request: Request):
        from ..tasks import volunteers

        name = volunteers.check_name(body.name)
        is_org = room.is_organizer_request(request)
        token = secrets.token_urlsafe(24)

        def do(p: Project):
            with p.transaction():
                vol = volunteers.find(p, name)
                if vol is not None and vol.is_organizer and not is_org:
                    raise _err(403, "err.is_organizer", name=vol.name)
                canonical = vol.name if vol else name
                if not is_org and p.conn.execute("SELECT 1 FROM room_sessions WHERE volunteer = ?",
                                                 (canonical,)).fetchone():
                    raise _err(409, "err.signed_in_elsewhere", name=canonical)
                vol, _created = volunteers.ensure(p, name, new=body.new)
                p.conn.execute("INSERT INTO room_sessions (token_hash, volunteer, created) VALUES (?, ?, ?)",
                               (_h(token), vol.name, events.iso(events.utcnow())))
                return vol

        vol = await room.change(do)
        return JSONResponse({"name": vol.name, "token": token, "roles": vol.roles, "validator": vol.can_validate,
                             "organizer": vol.is_organizer})

    @app.get("/api/me", tags=["volunteers"], summary="Who this browser is signed in as, and the task they hold")
    async def me(request: Request):
        from ..tasks import volunteers

        token = sess(request)

        def do(p: Project):
            v = volunteers.find(p, volunteer(p, token))
            held = p.conn.execute("SELECT id FROM tasks WHERE locked_by = ? ORDER BY id", (v.id,)).fetchall()
            return {"name": v.name, "roles": v.roles, "validator": v.can_validate, "organizer": v.is_organizer,
                    "holding": [r[0] for r in held]}

        return JSONResponse(await room.read(do))

    def for_signed_in(p: Project, asks: list[tuple[str, object]], many) -> list:
        """[(session token, x)] -> for each, the task JSON from ``many(p, [(name, x), ...])`` (a
        lifecycle function for many volunteers at once) or the error that refuses it."""
        who = volunteers_of(p, [token for token, _ in asks])
        mine = [i for i, w in enumerate(who) if isinstance(w, str)]
        got = many(p, [(who[i], asks[i][1]) for i in mine])
        out = list(who)
        for i, t in zip(mine, got):
            out[i] = t if isinstance(t, BaseException) else t.as_dict()
        return out

    def claim_next_batch(p: Project, asks: list[tuple[str, str | None]]) -> list:
        """ "Give me a task" for several browsers at once: [(session token, village)]."""
        from ..tasks import lifecycle

        return for_signed_in(p, asks, lifecycle.claim_next_many)

    def claim_batch(p: Project, asks: list[tuple[str, int]]) -> list:
        """Claims of named tasks for several browsers at once: [(session token, task id)]."""
        from ..tasks import lifecycle

        ids = sorted({tid for _, tid in asks})
        there = {r[0] for r in p.conn.execute(f"SELECT id FROM tasks WHERE id IN ({','.join('?' * len(ids))})", ids)}

        def many(p: Project, named: list[tuple[str, int]]) -> list:
            out: list = [_no_task(tid) for _, tid in named]
            keep = [j for j, (_, tid) in enumerate(named) if tid in there]
            for j, t in zip(keep, lifecycle.claim_many(p, [(named[j][1], named[j][0]) for j in keep])):
                out[j] = t
            return out

        return for_signed_in(p, asks, many)

    async def act(fn_name: str, task_id: int | None, token: str, **kw) -> dict:
        """A lifecycle change by the volunteer signed in with *token* (the lifecycle decides whether
        they may). Also answers the fast path's requests (see _RoomApp)."""
        from ..tasks import lifecycle

        # what a whole room asks at once: run together (Room.change_batched)
        if fn_name == "claim_next":
            return await room.change_batched(claim_next_batch, (token, kw.get("village")))
        if fn_name == "claim":
            return await room.change_batched(claim_batch, (token, task_id))

        def do(p: Project):
            name = volunteer(p, token)
            if task_id is None:
                return getattr(lifecycle, fn_name)(p, name, **kw).as_dict()
            exists(p, task_id)
            return getattr(lifecycle, fn_name)(p, task_id, name, **kw).as_dict()

        return await room.change(do)

    app.fast_act = act

    async def _act(fn_name: str, task_id: int | None, request: Request, **kw):
        return JSONResponse(await act(fn_name, task_id, sess(request), **kw))

    @app.post("/api/tasks/{task_id}/claim", tags=["tasks"],
              summary="Lock a task: for mapping (READY/INVALIDATED) or, for validators, for validation (MAPPED)")
    async def claim(task_id: int, request: Request):
        return await _act("claim", task_id, request)

    @app.post("/api/claim-next", tags=["tasks"], summary="Give me a task: lock the best next task for mapping")
    async def claim_next(request: Request, body: Optional[NextIn] = None):
        return await _act("claim_next", None, request, village=(body.village if body else None) or None)

    @app.post("/api/tasks/{task_id}/release", tags=["tasks"], summary="Give your task back without a result")
    async def release(task_id: int, request: Request, body: Optional[CommentIn] = None):
        return await _act("release", task_id, request, comment=body.comment if body else None)

    @app.post("/api/tasks/{task_id}/done", tags=["tasks"], summary="Mark the task you are mapping as MAPPED")
    async def done(task_id: int, request: Request, body: Optional[CommentIn] = None):
        return await _act("done", task_id, request, comment=body.comment if body else None)

    @app.post("/api/tasks/{task_id}/badimagery", tags=["tasks"],
              summary="The imagery does not allow mapping your task (clouds, blur)")
    async def badimagery(task_id: int, request: Request, body: Optional[CommentIn] = None):
        return await _act("badimagery", task_id, request, comment=body.comment if body else None)

    @app.post("/api/tasks/{task_id}/validate", tags=["tasks"],
              summary="Validators: accept or reject a mapped task (never one's own)")
    async def validate(task_id: int, body: ValidateIn, request: Request):
        return await _act("validate", task_id, request, accept=body.accept, comment=body.comment)

    @app.post("/api/tasks/{task_id}/upload", tags=["tasks"],
              summary="Hand in the .osm file saved from JOSM (the request body is the file)",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def upload(task_id: int, request: Request, filename: str = "task.osm"):
        from ..osm.readers import file_format
        from ..osm.submit import submit

        token = sess(request)

        def who(p: Project):
            name = volunteer(p, token)
            exists(p, task_id)
            return name

        name = await room.read(who)
        # the file name only gives the file type and the name shown later: reduced to safe characters,
        # it names a file in a fresh temporary folder, nowhere else
        safe = _SAFE_NAME.sub("_", Path(filename.replace("\\", "/")).name).strip(" .") or "task.osm"
        safe = safe[-120:]
        file_format(safe)  # refuses other file types with submit's own message
        if request.headers.get("content-type", "").startswith("multipart/"):
            raise _err(415, "err.upload_form", file=safe)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > room.max_upload:
                raise _err(413, "err.upload_large", file=safe, mb=f"{room.max_upload / (1024 * 1024):g}")
            chunks.append(chunk)
        if not size:
            raise _err(400, "err.upload_empty", file=safe)

        def do(p: Project):
            with tempfile.TemporaryDirectory(prefix="mapathon-upload-") as tmp:
                path = Path(tmp) / safe
                path.write_bytes(b"".join(chunks))
                try:
                    return submit(p, [path], name, str(task_id))
                except MapathonError as e:  # name the volunteer's file, not the temporary copy
                    if str(path) not in str(e):
                        raise
                    raise MapathonError(str(e).replace(str(path), safe)) from None

        subs = await room.write(do)
        return JSONResponse([c.as_dict() | {"stored": c.path.name} for c in subs])

    # -- progress --------------------------------------------------------------------------------------------------

    @app.get("/api/status", tags=["progress"],
             summary="Progress overall and per village, and the volunteers' leaderboard")
    async def status():
        from ..tasks import progress

        st = await room.change(progress.status)  # status releases expired locks first: a change
        out = st.as_dict()
        out["outside"] = progress.NO_VILLAGE  # the row of tasks outside every village (named in the page's words)
        out["board"] = sorted(({"name": v.name, "mapped": v.mapped, "validated": v.validated}
                               for v in st.volunteers if v.mapped or v.validated),
                              key=lambda v: (-v["mapped"], -v["validated"], v["name"].casefold()))
        return JSONResponse(out)

    # -- organizers ----------------------------------------------------------------------------------------------

    def _orgreq(request: Request) -> tuple[bool, str]:
        return room.is_organizer_request(request), sess(request)

    @app.post("/api/organizer/check", tags=["organizer"], summary="Check the organizer token")
    async def organizer_check(request: Request):
        ok, token = _orgreq(request)
        return JSONResponse({"organizer": await room.read(organizer, ok, token)})

    async def _org(fn_name: str, task_id: int, request: Request, comment: str | None):
        from ..tasks import lifecycle

        ok, token = _orgreq(request)

        def do(p: Project):
            who = organizer(p, ok, token)
            exists(p, task_id)
            r = getattr(lifecycle, fn_name)(p, task_id, who, comment=comment)
            return [t.as_dict() for t in r] if isinstance(r, list) else r.as_dict()

        return JSONResponse(await room.change(do))

    @app.post("/api/organizer/tasks/{task_id}/reset", tags=["organizer"], summary="Put a task back to READY")
    async def org_reset(task_id: int, request: Request, body: Optional[CommentIn] = None):
        return await _org("reset", task_id, request, body.comment if body else None)

    @app.post("/api/organizer/tasks/{task_id}/release", tags=["organizer"], summary="Force-release anyone's lock")
    async def org_release(task_id: int, request: Request, body: Optional[CommentIn] = None):
        return await _org("release", task_id, request, body.comment if body else None)

    @app.post("/api/organizer/tasks/{task_id}/split", tags=["organizer"], summary="Split a task into four")
    async def org_split(task_id: int, request: Request, body: Optional[CommentIn] = None):
        return await _org("split", task_id, request, body.comment if body else None)

    @app.post("/api/organizer/validators", tags=["organizer"], summary="Give a volunteer the validator role")
    async def org_grant(body: GrantIn, request: Request):
        from ..tasks import volunteers

        ok, token = _orgreq(request)

        def do(p: Project):
            who = organizer(p, ok, token)
            v, created = volunteers.add(p, body.name, validator=True, actor=who)
            return {"name": v.name, "roles": v.roles, "created": created}

        return JSONResponse(await room.change(do))

    @app.post("/api/organizer/free-name", tags=["organizer"],
              summary="Sign a name out everywhere (a volunteer changed device or cleared their browser)")
    async def org_free(body: GrantIn, request: Request):
        from ..tasks import volunteers

        ok, token = _orgreq(request)

        def do(p: Project):
            organizer(p, ok, token)
            v = volunteers.find(p, body.name)
            if v is None:
                raise _err(404, "err.no_volunteer", name=body.name)
            with p.transaction():
                n = p.conn.execute("DELETE FROM room_sessions WHERE volunteer = ?", (v.name,)).rowcount
            return {"name": v.name, "signed_out": n}

        return JSONResponse(await room.change(do))

    @app.get("/api/organizer/conflicts", tags=["organizer"],
             summary="Changes from other sites that could not be applied (see docs/sync.md)")
    async def org_conflicts(request: Request):
        from ..sync import list_conflicts

        ok, token = _orgreq(request)

        def do(p: Project):
            organizer(p, ok, token)
            return list_conflicts(p)

        return JSONResponse(await room.read(do))

    return app


def _static_files() -> dict[str, tuple[bytes, str]]:
    """The files under static/, read once: requests pick one by name, never build a path."""
    out = {}
    for f in sorted(STATIC.rglob("*")):
        if f.is_file() and not f.name.startswith("."):
            rel = f.relative_to(STATIC).as_posix()
            out[rel] = (f.read_bytes(), _TYPES.get(f.suffix, _TYPES[""]))
    return out


def openapi_json(folder: str | Path) -> str:
    return json.dumps(create_app(folder).openapi(), indent=1)
