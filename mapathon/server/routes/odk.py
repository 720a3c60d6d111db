"""The OpenRosa API for ODK Collect (``/odk``): the laptop as the survey server.

ODK Collect's server setting is the room server's address followed by ``/odk``. Every request signs in
with the surveyor's name and the room's survey password (HTTP Digest over the room's plain HTTP; Basic
is accepted too). What is read and stored is decided in mapathon/survey (openrosa.py, store.py).
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ...errors import MapathonError
from ...survey import forms, openrosa, store
from ..refusal import error_status
from ..room import base_url, room_of, session_of

router = APIRouter(prefix="/odk", tags=["survey"], include_in_schema=True)
XML = "text/xml; charset=utf-8"


def request_limit(room) -> int:
    """The most one submission request may carry (the middleware refuses more before reading it)."""
    return 3 * room.max_upload


def photo_limit(room) -> int:
    return min(openrosa.MAX_PHOTO_BYTES, room.max_upload)


def _headers(extra: dict | None = None) -> dict:
    return {"X-OpenRosa-Version": openrosa.OPENROSA_VERSION, **(extra or {})}


def _xml(text: str, status: int = 200, extra: dict | None = None) -> Response:
    return Response(text, status_code=status, media_type=XML, headers=_headers(extra))


def _refuse(status: int, message: str, extra: dict | None = None) -> Response:
    return _xml(openrosa.error_xml(message), status, extra)


async def _digest(request: Request) -> openrosa.Digest:
    room = room_of(request)
    digest = getattr(room, "odk_digest", None)
    if digest is None:
        password = await room.write(lambda p: openrosa.survey_password(p))
        digest = room.odk_digest = openrosa.Digest(password)
    return digest


async def _surveyor(request: Request) -> tuple[str | None, Response | None]:
    """The signed-in surveyor's name, or the 401 answer that asks ODK Collect to sign in."""
    digest = await _digest(request)
    name, stale = digest.check(request.headers.get("authorization", ""), request.method)
    if name:
        return name, None
    return None, _refuse(401, "sign in with your name and the survey password",
                         {"WWW-Authenticate": digest.challenge(stale)})


def _base(request: Request) -> str:
    return base_url(request) + "/odk"


@router.get("/formList", summary="OpenRosa form list")
async def form_list(request: Request):
    name, refused = await _surveyor(request)
    if refused:
        return refused
    room = room_of(request)
    published = await room.read(forms.published)
    return _xml(openrosa.form_list_xml(published, _base(request)))


async def _form(request: Request, form_id: str) -> dict | None:
    published = await room_of(request).read(forms.published)
    return next((f for f in published if f["id"] == form_id), None)


async def _asked_form(request: Request, form_id: str):
    """The form a surveyor asks for: (form, None), or (None, the refusal to answer: not signed in, no such form)."""
    _name, refused = await _surveyor(request)
    if refused:
        return None, refused
    f = await _form(request, form_id)
    if f is None:
        return None, _refuse(404, f"no survey form {form_id!r} on this server")
    return f, None


@router.get("/forms/{form_id}.xml", summary="One form (XForm XML)")
async def form_xml(request: Request, form_id: str):
    f, refused = await _asked_form(request, form_id)
    if refused:
        return refused
    return Response(f["xml"].read_bytes(), media_type=XML, headers=_headers())


@router.get("/forms/{form_id}/manifest", summary="The form's media files (OpenRosa manifest)")
async def manifest(request: Request, form_id: str):
    f, refused = await _asked_form(request, form_id)
    if refused:
        return refused
    return _xml(openrosa.manifest_xml(f, _base(request)))


@router.get("/forms/{form_id}/media/{filename}", summary="One media file of a form")
async def media(request: Request, form_id: str, filename: str):
    name, refused = await _surveyor(request)
    if refused:
        return refused
    f = await _form(request, form_id)
    found = next((m for m in (f or {}).get("media", []) if m.name == filename), None)  # by name, never a path
    if found is None:
        return _refuse(404, f"no file {filename!r} for form {form_id!r}")
    return Response(found.read_bytes(), media_type="text/csv" if found.suffix == ".csv" else "application/octet-stream",
                    headers=_headers())


@router.head("/submission", summary="OpenRosa pre-flight: 204 and the largest request accepted")
async def submission_head(request: Request):
    name, refused = await _surveyor(request)
    if refused:
        return refused
    return Response(status_code=204, headers=_headers(
        {"X-OpenRosa-Accept-Content-Length": str(request_limit(room_of(request)))}))


_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))', re.I)
MAX_PARTS = 100  # the instance XML and its photos; taking apart a body of 700,000 tiny parts took 4 s
MAX_PART_HEAD = 8 * 1024  # a part's header lines (a few hundred bytes from ODK Collect)
_DISPOSITION = re.compile(r'(?<![\w*])(name|filename)=(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))', re.I)


def _parts(body: bytes, content_type: str) -> dict[str, tuple[str | None, memoryview]]:
    """The parts of a multipart/form-data body: field name -> (file name, its bytes as a view of *body*, not
    a copy). Written with ``bytes.find`` (the standard library's email parser takes 20 ms for one photo:
    too slow for 50 phones at once); 0.05 ms for a 300 KB photo."""
    m = _BOUNDARY.search(content_type)
    if not m:
        raise MapathonError("submission: multipart/form-data without a boundary")
    delim = b"--" + (m.group(1) or m.group(2)).encode("latin-1")
    pos = body.find(delim)
    if pos < 0:
        raise MapathonError("submission: no part in the multipart body (cut short?)")
    view = memoryview(body)
    out: dict[str, tuple[str | None, memoryview]] = {}
    for _ in range(MAX_PARTS + 1):  # the parts are taken apart in the event loop: a bounded time
        pos += len(delim)
        if body[pos:pos + 2] == b"--":
            return out
        if body[pos:pos + 2] == b"\r\n":
            pos += 2
        head_end = body.find(b"\r\n\r\n", pos, pos + MAX_PART_HEAD + 4)
        if head_end < 0 and len(body) >= pos + MAX_PART_HEAD + 4:  # else cut short (below)
            raise MapathonError(f"submission: a part with headers over {MAX_PART_HEAD // 1024} KiB")
        nxt = body.find(b"\r\n" + delim, head_end + 4) if head_end >= 0 else -1
        if nxt < 0:
            raise MapathonError("submission: the multipart body is cut short (truncated)")
        head = body[pos:head_end].decode("utf-8", "replace")
        fields: dict[str, str] = {}
        for line in head.split("\r\n"):
            if line.lower().startswith("content-disposition:"):
                for key, quoted, plain in _DISPOSITION.findall(line):
                    fields[key.lower()] = quoted.replace('\\"', '"') if quoted or not plain else plain
        if fields.get("name"):
            out[fields["name"]] = (fields.get("filename") or None, view[head_end + 4:nxt])
        pos = nxt + 2
    raise MapathonError(f"submission: more than {MAX_PARTS} parts (the form and its photos)")


@router.post("/submission", summary="An ODK submission: the instance XML and its photos (multipart)")
async def submission(request: Request):
    """Also answered without FastAPI's routing when plain (:func:`answer_plain`), by this same function.
    The body is read and taken apart here, then the writer thread does the rest in one go (its photos
    written, its row recorded: :func:`openrosa.receive_many`), with the forms queued with it."""
    name, refused = await _surveyor(request)
    if refused:
        return refused
    room = room_of(request)
    limit = request_limit(room)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return _refuse(413, f"submission over {limit / 1048576:g} MB; send fewer photos at once")
        chunks.append(chunk)
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        return _refuse(400, "submission: expected multipart/form-data with xml_submission_file")
    try:
        parts = _parts(chunks[0] if len(chunks) == 1 else b"".join(chunks), ctype)
        if "xml_submission_file" not in parts:
            raise MapathonError("submission: no xml_submission_file part")
        label = parts["xml_submission_file"][0] or "submission.xml"
        inst = openrosa.read_instance(bytes(parts["xml_submission_file"][1]), label)
        # by the name the answers give (a path is cut off); stored under a safe name (store.store_photos)
        files = {fn.replace("\\", "/").rsplit("/", 1)[-1]: data for field, (fn, data) in parts.items()
                 if field != "xml_submission_file" and fn}
        # with the forms queued with it, in one call (openrosa.receive_many): 50 phones may send at once
        sub, stored, added = await room.change_batched(openrosa.receive_many, (inst, name, label, files,
                                                                               photo_limit(room)))
        if stored is None:
            return _xml(openrosa.response_xml(
                f"already received{f'; {added} more photo(s) kept' if added else ''}: thank you"), 202)
    except MapathonError as e:
        return _refuse(413 if isinstance(e, openrosa.TooLarge) else error_status(e), str(e))
    if not stored:
        return _xml(openrosa.response_xml("already received: thank you"), 202)
    return _xml(openrosa.response_xml(f"received, thank you {sub.surveyor}"), 201,
                {"Location": f"{_base(request)}/submission"})


async def answer_plain(app, scope, receive, send) -> bool:
    """``POST /odk/submission`` answered by :func:`submission` without FastAPI's middleware, routing and
    dependency solving (a third of the server's time for a submission before): for a request that says
    its Content-Length, within the limit (else False, nothing read: FastAPI's middleware answers)."""
    room = app.state.room
    length = None
    for k, v in scope["headers"]:
        if k == b"content-length":
            if length is not None:
                return False
            length = v
        elif k == b"transfer-encoding":
            return False
    if length is None or not length.isdigit() or int(length) > request_limit(room):
        return False
    scope["app"] = app  # what Starlette sets for request.app
    response = await submission(Request(scope, receive))
    await response(scope, receive, send)
    return True


@router.get("/settings", summary="ODK Collect settings for the signed-in volunteer (and the QR code text)",
            include_in_schema=True)
async def settings(request: Request):
    """For the room page: the server address, the volunteer's name and the survey password, as ODK Collect's
    settings QR code (zlib-compressed JSON, base64) and as an SVG picture of that code."""
    import segno

    room = room_of(request)
    who = await room.read(lambda p: room.sessions.name_of(p, session_of(request)))
    await _digest(request)
    url = _base(request)
    conf = openrosa.collect_settings(url, who, room.odk_digest.password, f"{room.name} (mapathon)")
    text = openrosa.collect_qr_text(conf)
    svg = segno.make(text, error="l").svg_inline(scale=3)
    published = await room.read(forms.published)
    return JSONResponse({"server_url": url, "username": who, "password": room.odk_digest.password,
                         "forms": [f["id"] for f in published], "qr": text, "svg": svg})
