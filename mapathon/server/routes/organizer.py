"""Organizer actions (the organizer token in ``X-Organizer-Token``): reset, force-release, split,
validator rights, freeing a name, the sync conflicts."""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...project import Project
from ...tasks import lifecycle, volunteers
from ..room import room_of, session_of
from .tasks import CommentIn, exists


class GrantIn(BaseModel):
    name: str = Field(..., max_length=200)


router = APIRouter(tags=["organizer"])


def _orgreq(request: Request) -> tuple[bool, str]:
    return room_of(request).is_organizer_request(request), session_of(request)


@router.post("/api/organizer/check", summary="Check the organizer token")
async def organizer_check(request: Request):
    room = room_of(request)
    ok, token = _orgreq(request)
    return JSONResponse({"organizer": await room.read(room.sessions.organizer, ok, token)})


async def _org(fn_name: str, task_id: int, request: Request, comment: str | None):
    room = room_of(request)
    ok, token = _orgreq(request)

    def do(p: Project):
        who = room.sessions.organizer(p, ok, token)
        exists(p, task_id)
        r = getattr(lifecycle, fn_name)(p, task_id, who, comment=comment)
        return [t.as_dict() for t in r] if isinstance(r, list) else r.as_dict()

    return JSONResponse(await room.change(do))


@router.post("/api/organizer/tasks/{task_id}/reset", summary="Put a task back to READY")
async def org_reset(task_id: int, request: Request, body: Optional[CommentIn] = None):
    return await _org("reset", task_id, request, body.comment if body else None)


@router.post("/api/organizer/tasks/{task_id}/release", summary="Force-release anyone's lock")
async def org_release(task_id: int, request: Request, body: Optional[CommentIn] = None):
    return await _org("release", task_id, request, body.comment if body else None)


@router.post("/api/organizer/tasks/{task_id}/split", summary="Split a task into four")
async def org_split(task_id: int, request: Request, body: Optional[CommentIn] = None):
    return await _org("split", task_id, request, body.comment if body else None)


@router.post("/api/organizer/validators", summary="Give a volunteer the validator role")
async def org_grant(body: GrantIn, request: Request):
    room = room_of(request)
    ok, token = _orgreq(request)

    def do(p: Project):
        who = room.sessions.organizer(p, ok, token)
        v, created = volunteers.add(p, body.name, validator=True, actor=who)
        return v.as_dict() | {"created": created}

    return JSONResponse(await room.change(do))


@router.post("/api/organizer/free-name",
             summary="Sign a name out everywhere (a volunteer changed device or cleared their browser)")
async def org_free(body: GrantIn, request: Request):
    room = room_of(request)
    ok, token = _orgreq(request)

    def do(p: Project):
        room.sessions.organizer(p, ok, token)
        return room.sessions.sign_out_name(p, body.name)

    return JSONResponse(await room.change(do))


@router.get("/api/organizer/conflicts", summary="Changes from other sites that could not be applied (see docs/sync.md)")
async def org_conflicts(request: Request):
    from ...sync import list_conflicts

    room = room_of(request)
    ok, token = _orgreq(request)

    def do(p: Project):
        room.sessions.organizer(p, ok, token)
        return list_conflicts(p)

    return JSONResponse(await room.read(do))
