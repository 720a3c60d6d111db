"""Tasks: the grid and its states for the map, one task, its editor links, and the volunteers'
changes (claim, "give me a task", release, done, bad imagery, validate). :func:`act` also answers
the fast path's requests (see fastpath.py)."""

from __future__ import annotations

import json
from typing import Optional

import shapely
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from ... import store
from ...errors import MapathonError
from ...project import Project
from ...tasks import lifecycle
from ..refusal import MAX_TASK_ID, no_task, task_id_in_range
from ..room import Room, base_url, room_of, session_of
from .project import geometry


class NextIn(BaseModel):
    village: Optional[str] = Field(None, max_length=200, description="Only a task in this village.")


class CommentIn(BaseModel):
    comment: Optional[str] = Field(None, max_length=2000)


class ValidateIn(BaseModel):
    accept: bool = Field(..., description="true: VALIDATED; false: INVALIDATED (sent back to mapping).")
    comment: Optional[str] = Field(None, max_length=2000)


def exists(p: Project, task_id: int) -> None:
    """Refuse (404) a task number that is no task."""
    if not lifecycle.existing(p, [task_id_in_range(task_id)]):
        raise no_task(task_id)


# -- the changes (in the writer thread) -------------------------------------------------------------------------


def _for_signed_in(room: Room, p: Project, asks: list[tuple[str, object]], many) -> list:
    """[(session token, x)] -> for each, the task JSON from ``many(p, [(name, x), ...])`` (a
    lifecycle function for many volunteers at once) or the error that refuses it."""
    who = room.sessions.names_of(p, [token for token, _ in asks])
    mine = [i for i, w in enumerate(who) if isinstance(w, str)]
    got = many(p, [(who[i], asks[i][1]) for i in mine])
    out = list(who)
    for i, t in zip(mine, got):
        out[i] = t if isinstance(t, BaseException) else t.as_dict()
    return out


def _named_tasks(room: Room, p: Project, asks: list[tuple[str, object]], task_of, many) -> list:
    """:func:`_for_signed_in` for changes of named tasks: [(session token, x)], ``task_of(x)`` the task
    number. A number that is no task is refused (404) before the volunteer's rights are looked at,
    as one change alone does; the others go to ``many(p, [(name, x), ...])``."""
    there = lifecycle.existing(p, [task_of(x) for _, x in asks if 1 <= task_of(x) <= MAX_TASK_ID])

    def named_many(p: Project, named: list[tuple[str, object]]) -> list:
        out: list = [no_task(task_of(x)) for _, x in named]
        keep = [j for j, (_, x) in enumerate(named) if task_of(x) in there]
        for j, t in zip(keep, many(p, [named[j] for j in keep])):
            out[j] = t
        return out

    return _for_signed_in(room, p, asks, named_many)


def _batches(room: Room):
    """The room's batch functions for Room.change_batched (one function object each per room)."""
    got = getattr(room, "_claim_batches", None)
    if got is not None:
        return got

    def claim_next_batch(p: Project, asks: list[tuple[str, str | None]]) -> list:
        """ "Give me a task" for several browsers at once: [(session token, village)]."""
        return _for_signed_in(room, p, asks, lifecycle.claim_next_many)

    def claim_batch(p: Project, asks: list[tuple[str, int]]) -> list:
        """Claims of named tasks for several browsers at once: [(session token, task id)]."""
        return _named_tasks(room, p, asks, lambda tid: tid,
                            lambda p, named: lifecycle.claim_many(p, [(tid, name) for name, tid in named]))

    def ending(lifecycle_many):
        def end_batch(p: Project, asks: list[tuple[str, tuple[int, str | None]]]) -> list:
            """Releases (or "done") for several browsers at once: [(session token, (task id, comment))]."""
            return _named_tasks(room, p, asks, lambda x: x[0], lambda p, named: lifecycle_many(
                p, [(tid, name, comment) for name, (tid, comment) in named]))

        return end_batch

    room._claim_batches = (claim_next_batch, claim_batch, ending(lifecycle.release_many),
                           ending(lifecycle.done_many))
    return room._claim_batches


async def act(room: Room, fn_name: str, task_id: int | None, token: str, **kw) -> dict:
    """A lifecycle change by the volunteer signed in with *token* (the lifecycle decides whether
    they may). Also answers the fast path's requests (see fastpath.RoomApp)."""
    if task_id is not None:
        task_id_in_range(task_id)
    claim_next_batch, claim_batch, release_batch, done_batch = _batches(room)
    # what a whole room asks at once: run together (Room.change_batched)
    if fn_name == "claim_next":
        return await room.change_batched(claim_next_batch, (token, kw.get("village")))
    if fn_name == "claim":
        return await room.change_batched(claim_batch, (token, task_id))
    if fn_name in ("release", "done"):
        return await room.change_batched(release_batch if fn_name == "release" else done_batch,
                                          (token, (task_id, kw.get("comment"))))

    def do(p: Project):
        name = room.sessions.name_of(p, token)
        if task_id is None:
            return getattr(lifecycle, fn_name)(p, name, **kw).as_dict()
        exists(p, task_id)
        return getattr(lifecycle, fn_name)(p, task_id, name, **kw).as_dict()

    return await room.change(do)


async def _act(fn_name: str, task_id: int | None, request: Request, **kw):
    room = room_of(request)
    return JSONResponse(await act(room, fn_name, task_id, session_of(request), **kw))


router = APIRouter(tags=["tasks"])


@router.post("/api/tasks/{task_id}/claim",
             summary="Lock a task: for mapping (READY/INVALIDATED) or, for validators, for validation (MAPPED)")
async def claim(task_id: int, request: Request):
    return await _act("claim", task_id, request)


@router.post("/api/claim-next", summary="Give me a task: lock the best next task for mapping")
async def claim_next(request: Request, body: Optional[NextIn] = None):
    return await _act("claim_next", None, request, village=(body.village if body else None) or None)


@router.post("/api/tasks/{task_id}/release", summary="Give your task back without a result")
async def release(task_id: int, request: Request, body: Optional[CommentIn] = None):
    return await _act("release", task_id, request, comment=body.comment if body else None)


@router.post("/api/tasks/{task_id}/done", summary="Mark the task you are mapping as MAPPED")
async def done(task_id: int, request: Request, body: Optional[CommentIn] = None):
    return await _act("done", task_id, request, comment=body.comment if body else None)


@router.post("/api/tasks/{task_id}/badimagery", summary="The imagery does not allow mapping your task (clouds, blur)")
async def badimagery(task_id: int, request: Request, body: Optional[CommentIn] = None):
    return await _act("badimagery", task_id, request, comment=body.comment if body else None)


@router.post("/api/tasks/{task_id}/validate", summary="Validators: accept or reject a mapped task (never one's own)")
async def validate(task_id: int, body: ValidateIn, request: Request):
    return await _act("validate", task_id, request, accept=body.accept, comment=body.comment)


# -- reading -------------------------------------------------------------------------------------------------


def _snapshot(p: Project):
    """The event-log version and the task rows, read in one transaction."""
    with store.transaction(p.conn, immediate=False):
        return lifecycle.log_version(p), lifecycle.state_rows(p)


@router.get("/api/tasks", summary="Every task (not split ones) with its state, as GeoJSON")
async def tasks_geojson(request: Request):
    room = room_of(request)

    def do(p: Project):
        grid = lifecycle.grid_event(p)
        if grid != room.geoms.get(None):  # gridded again: shapes may differ
            room.geoms = {None: grid}
        geoms = room.geoms  # this request's reference, whatever other threads do
        with store.transaction(p.conn, immediate=False):  # states and shapes from the same moment
            version = lifecycle.log_version(p)
            rows = lifecycle.state_rows(p)
            for key, geom in lifecycle.geometries(p, [r[1] for r in rows if r[1] not in geoms]):
                # a key's geometry never changes within a grid: kept as JSON text
                geoms[key] = json.dumps(geometry(shapely.from_wkb(geom)))
        parts = [f'{{"type":"Feature","id":{r[0]},"geometry":{geoms[r[1]]},"properties":'
                 + json.dumps({"id": r[0], "key": r[1], "state": r[2], "locked_by": r[3], "mapped_by": r[4],
                               "validated_by": r[5], "lock_expires": r[6]}, ensure_ascii=False) + "}"
                 for r in rows]
        return f'{{"type":"FeatureCollection","version":{version},"features":[{",".join(parts)}]}}'

    return Response(await room.read(do), media_type="application/json")


@router.get("/api/states",
            summary="Compact task states for refreshing the map: [id, key, state, locked by, mapped by, validated by]")
async def states(request: Request, since: Optional[int] = None):
    def do(p: Project):
        if since is not None and since == lifecycle.log_version(p):
            return {"version": since, "unchanged": True}
        version, rows = _snapshot(p)
        return {"version": version, "unchanged": False, "tasks": [list(r[:6]) for r in rows]}

    return JSONResponse(await room_of(request).read(do))


@router.get("/api/tasks/{task_id}", summary="One task")
async def task(task_id: int, request: Request):
    def do(p: Project):
        exists(p, task_id)
        return lifecycle.get_task(p, task_id).as_dict()

    return JSONResponse(await room_of(request).read(do))


@router.get("/api/tasks/{task_id}/editors", summary="Links that open the task in JOSM (remote control, in order) and in iD")
async def editors(task_id: int, request: Request):
    base = base_url(request)

    def do(p: Project):
        exists(p, task_id)
        t = lifecycle.get_task(p, task_id)
        west, south, east, north = t.geom.bounds
        out = {"josm": [], "id": None, "warnings": []}
        try:
            from ...imagery import editors as ed

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

    return JSONResponse(await room_of(request).read(do))
