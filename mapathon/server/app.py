"""The room server's web application (FastAPI), assembled from its parts:

* room.py      the server's state (:class:`~.room.Room`): the project, the organizer token, the language;
* writer.py    the project's database work off the event loop, changes grouped in one COMMIT;
* sessions.py  who is asking: volunteers' sign-ins (expiry, a limit on new names per address), organizers;
* fastpath.py  the claim path answered without FastAPI's routing, and the request size limits;
* routes/      the routes, one ``APIRouter`` per part of the API.

Every change goes through the project's own modules (``tasks.lifecycle``, ``tasks.volunteers``,
``osm.submit``): the rules that say who may do what live there, not here. What the server adds is
*who is asking*: a volunteer's name bound to their browser (``X-Session`` header), the organizer
token (``X-Organizer-Token`` header) for reset, force-release, split, roles and freeing a name.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .. import __version__, i18n
from ..errors import MapathonError
from .fastpath import MAX_JSON_BODY, BodyLimit, RoomApp
from .room import DEFAULT_MAX_UPLOAD, Room
from .routes import odk, organizer, pages, progress, project, tasks, uploads, volunteers
from .sessions import DEFAULT_HOURS, DEFAULT_PER_MINUTE

__all__ = ["create_app", "Room", "DEFAULT_MAX_UPLOAD", "MAX_JSON_BODY"]


def create_app(folder: str | Path, *, token: str | None = None, max_upload: int = DEFAULT_MAX_UPLOAD,
               lang: str | None = None, session_hours: float = DEFAULT_HOURS,
               sign_ins_per_minute: int = DEFAULT_PER_MINUTE) -> FastAPI:
    """The room server for the project in *folder*. ``app.state.room.token`` is the organizer token.
    *lang*: the pages' language (default: the project's, see i18n.resolve_lang); a page may ask for another.
    *session_hours*: a sign-in unused this long expires; *sign_ins_per_minute*: new names one address
    may sign in a minute (0: no limit); see sessions.py."""
    room = Room(folder, token, max_upload, lang, session_hours, sign_ins_per_minute)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        room.close()

    app = RoomApp(
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

    app.add_middleware(BodyLimit, room=room)
    app.include_router(pages.router())
    for part in (project, tasks, volunteers, uploads, progress, organizer):
        app.include_router(part.router)
    app.include_router(odk.router)  # ODK Collect's OpenRosa API under /odk (field surveys)

    async def fast_act(fn_name: str, task_id: int | None, token: str, **kw) -> dict:
        return await tasks.act(room, fn_name, task_id, token, **kw)

    app.fast_act = fast_act
    return app
