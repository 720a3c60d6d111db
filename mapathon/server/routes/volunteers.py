"""Volunteers: signing in with a name, and who this browser is (see sessions.py)."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...project import Project
from ...tasks import lifecycle, volunteers
from ..room import room_of, session_of


class JoinIn(BaseModel):
    name: str = Field(..., max_length=200, description="The volunteer's name, as they want to appear.")
    new: bool = Field(False, description="A new volunteer, though the name is close to a registered one's "
                                         "(without it, such a name is refused with the close name).")


router = APIRouter(tags=["volunteers"])


@router.post("/api/join", summary="Sign in with a name; returns the token to send as X-Session")
async def join(body: JoinIn, request: Request):
    room = room_of(request)
    name = volunteers.check_name(body.name)
    is_org = room.is_organizer_request(request)
    address = request.client.host if request.client else None
    token = secrets.token_urlsafe(24)
    vol = await room.change(room.sessions.sign_in, name, token, organizer=is_org, new=body.new, address=address)
    return JSONResponse(vol.as_dict() | {"token": token})


@router.get("/api/me", summary="Who this browser is signed in as, and the task they hold")
async def me(request: Request):
    room, token = room_of(request), session_of(request)

    def do(p: Project):
        v = volunteers.find(p, room.sessions.name_of(p, token))
        return v.as_dict() | {"holding": lifecycle.held_by(p, v.id)}

    return JSONResponse(await room.read(do))
