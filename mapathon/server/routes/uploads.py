"""Handing in the .osm file saved from JOSM (osm.submit decides what is accepted)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ...errors import MapathonError
from ...project import Project
from ..refusal import err
from ..room import room_of, session_of
from .tasks import exists

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")

router = APIRouter(tags=["tasks"])


@router.post("/api/tasks/{task_id}/upload",
             summary="Hand in the .osm file saved from JOSM (the request body is the file)",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def upload(task_id: int, request: Request, filename: str = "task.osm"):
    from ...osm.readers import file_format
    from ...osm.submit import submit

    room, token = room_of(request), session_of(request)

    def who(p: Project):
        name = room.sessions.name_of(p, token)
        exists(p, task_id)
        return name

    name = await room.read(who)
    # the file name only gives the file type and the name shown later: reduced to safe characters,
    # it names a file in a fresh temporary folder, nowhere else
    safe = _SAFE_NAME.sub("_", Path(filename.replace("\\", "/")).name).strip(" .") or "task.osm"
    safe = safe[-120:]
    file_format(safe)  # refuses other file types with submit's own message
    if request.headers.get("content-type", "").startswith("multipart/"):
        raise err(415, "err.upload_form", file=safe)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > room.max_upload:
            raise err(413, "err.upload_large", file=safe, mb=f"{room.max_upload / (1024 * 1024):g}")
        chunks.append(chunk)
    if not size:
        raise err(400, "err.upload_empty", file=safe)

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
