"""The room server's application (:class:`RoomApp`): FastAPI, with the requests of the claim path
answered without FastAPI's routing and pydantic when they are plain; and the request size limits
(:class:`BodyLimit`). See writer.py for what happens behind them."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse

from .. import i18n
from ..errors import MapathonError
from .refusal import MAX_JSON_DEPTH, MAX_TASK_ID, json_bytes, too_deep

if TYPE_CHECKING:
    from .room import Room

MAX_JSON_BODY = 64 * 1024


def _replay(body: bytes, receive):
    """An ASGI receive that gives *body* (already read) first, then what *receive* gives."""
    done = False

    async def replay():
        nonlocal done
        if not done:
            done = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class BodyLimit:
    """Refuses request bodies larger than allowed before they are read (pure ASGI: cheap per request)."""

    def __init__(self, app, room: Room):
        self.app, self.room = app, room

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope["headers"])
            upload = scope["path"].endswith(("/upload", "/odk/submission"))
            limit = self.room.max_upload if upload else MAX_JSON_BODY
            if scope["path"].endswith("/odk/submission"):  # the instance XML and its photos (routes/odk.py)
                from .routes.odk import request_limit
                limit = request_limit(self.room)
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


_FAST_TASK = re.compile(r"/api/tasks/(0|[1-9][0-9]{0,18})/(claim|release|done|badimagery)")
_FAST_FIELD = {"claim_next": ("village", 200), "claim": None, "release": ("comment", 2000),
               "done": ("comment", 2000), "badimagery": ("comment", 2000)}  # the body each route takes


class RoomApp(FastAPI):
    """The room server's application: FastAPI, except for the requests of the claim path.

    Claims, "give me a task", release, done and bad imagery are most of a room's changes and all of
    its bursts. FastAPI's middleware, routing, dependency solving and pydantic cost about 0.2 ms of
    the event loop's time for each, time the writer thread then waits for Python's GIL: so these
    requests are answered here, by the same function as their FastAPI routes (``fast_act``) and
    with the same answers. Only the plain cases are: no path prefix, a task number written plainly,
    no body or a JSON object of the route's one field as a string or null (within its length), a
    body within the size limit. Anything else goes to the FastAPI route, which stays the reference
    (and describes the API), with the body already read handed on unchanged.

    ODK Collect's submissions (``POST /odk/submission``, 50 phones may send at once) are answered
    here too when they say their Content-Length within the limit: by the route's own function
    (routes/odk.py, ``answer_plain``), with FastAPI's middleware and routing left out.
    """

    fast_act = None  # set by create_app: async (fn_name, task_id, session token, **kw) -> JSON content

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await super().__call__(scope, receive, send)
        path = scope["path"]
        if self.fast_act is None or scope.get("root_path"):
            fn_name = None
        elif path == "/api/claim-next":
            fn_name, task_id = "claim_next", None
        else:
            m = _FAST_TASK.fullmatch(path)
            fn_name, task_id = (m[2], int(m[1])) if m else (None, None)
        if fn_name is None:
            if path == "/odk/submission" and self.fast_act is not None and not scope.get("root_path"):
                from .routes.odk import answer_plain  # ODK Collect's forms: 50 phones may send at once

                if await answer_plain(self, scope, receive, send):
                    return
                return await super().__call__(scope, receive, send)
            if path.endswith("/upload"):
                return await super().__call__(scope, receive, send)
            return await self._not_too_deep(scope, receive, send)
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
        if too_deep(body):
            return await self._refuse_deep(scope, receive, send, seen.get(b"x-lang"))
        if task_id is not None and not 1 <= task_id <= MAX_TASK_ID:
            kw = None  # the FastAPI route answers its 404
        else:
            kw = self._fast_body(fn_name, body, seen.get(b"content-type"))
        if kw is None:
            return await super().__call__(scope, _replay(body, receive), send)
        extra: list = []
        try:
            content, status = await self.fast_act(fn_name, task_id, seen.get(b"x-session", b"").decode("latin-1"),
                                                  **kw), 200
        except (HTTPException, MapathonError) as e:
            status, content, extra = self.state.room.refusal(e, seen.get(b"x-lang"))
        data = json_bytes(content)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(data)).encode()), (b"content-type", b"application/json"),
                                *extra]})
        await send({"type": "http.response.body", "body": data})

    async def _not_too_deep(self, scope, receive, send):
        """Any other POST: a JSON body nested too deep is refused (400) before FastAPI parses it (its
        parser would recurse until RecursionError); the body read is handed on unchanged."""
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is None or not length.isdigit() or int(length) > MAX_JSON_BODY:
            return await super().__call__(scope, receive, send)  # the size checks answer
        ctype = headers.get(b"content-type")
        if ctype is not None and b"json" not in ctype.lower():  # a form, a file: never parsed as JSON
            return await super().__call__(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if too_deep(body):
            return await self._refuse_deep(scope, receive, send, headers.get(b"x-lang"))
        return await super().__call__(scope, _replay(body, receive), send)

    async def _refuse_deep(self, scope, receive, send, lang) -> None:
        words = i18n.Words(self.state.room.lang_of(lang))
        await JSONResponse({"detail": words("err.too_deep", most=MAX_JSON_DEPTH)}, status_code=400)(
            scope, receive, send)

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
