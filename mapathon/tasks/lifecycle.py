"""The task lifecycle, as in HOT's Tasking Manager.

States and who may move a task between them::

    READY / INVALIDATED --claim--> LOCKED_FOR_MAPPING --done--> MAPPED
                                          |--release--> (back to READY / INVALIDATED)
                                          |--badimagery--> BADIMAGERY
    MAPPED --claim (validator)--> LOCKED_FOR_VALIDATION --validate--> VALIDATED | INVALIDATED
    READY / INVALIDATED / own lock --split--> SPLIT (+ 4 new READY tasks)
    any (organizer) --reset--> READY

Every change is one transaction that updates the task and appends its
event(s). Locks expire (2 hours by default); expired locks are released
at the start of every change, by the actor ``system``.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import shapely

from .. import events, geo
from ..errors import ForbiddenTransition, MapathonError
from ..project import Project
from . import volunteers
from .grid import DEFAULT_MIN_OVERLAP_M2, Grid, split_cells

READY = "READY"
LOCKED_FOR_MAPPING = "LOCKED_FOR_MAPPING"
MAPPED = "MAPPED"
LOCKED_FOR_VALIDATION = "LOCKED_FOR_VALIDATION"
VALIDATED = "VALIDATED"
INVALIDATED = "INVALIDATED"
BADIMAGERY = "BADIMAGERY"
SPLIT = "SPLIT"
STATES = (READY, LOCKED_FOR_MAPPING, MAPPED, LOCKED_FOR_VALIDATION, VALIDATED, INVALIDATED, BADIMAGERY, SPLIT)
LOCKED = (LOCKED_FOR_MAPPING, LOCKED_FOR_VALIDATION)
MAPPABLE = (READY, INVALIDATED)
DEFAULT_LOCK_HOURS = 2.0
MAX_LOCK_HOURS = 24 * 7
SYSTEM = "system"


@dataclass(frozen=True)
class Task:
    id: int
    key: str
    z: int | None
    x: int | None
    y: int | None
    parent_id: int | None
    state: str
    locked_by: str | None
    lock_expires: str | None
    mapped_by: str | None
    validated_by: str | None
    area_m2: float
    geom: object  # shapely geometry
    villages: tuple[str, ...] = ()

    @property
    def tile(self) -> str | None:
        return f"{self.z}/{self.x}/{self.y}" if self.z is not None else None


_TASK_SELECT = """
    SELECT t.*, lv.name AS locked_name, mv.name AS mapped_name, vv.name AS validated_name,
           (SELECT string_agg(a.name, '|') FROM task_areas ta JOIN areas a ON a.id = ta.area_id
             WHERE ta.task_id = t.id) AS village_names
      FROM tasks t
      LEFT JOIN volunteers lv ON lv.id = t.locked_by
      LEFT JOIN volunteers mv ON mv.id = t.mapped_by
      LEFT JOIN volunteers vv ON vv.id = t.validated_by
"""


def _task(row: sqlite3.Row) -> Task:
    return Task(
        row["id"],
        row["key"],
        row["z"],
        row["x"],
        row["y"],
        row["parent_id"],
        row["state"],
        row["locked_name"],
        row["lock_expires"],
        row["mapped_name"],
        row["validated_name"],
        row["area_m2"],
        shapely.from_wkb(row["geom"]),
        tuple(sorted(row["village_names"].split("|"))) if row["village_names"] else (),
    )


def get_task(project: Project, ref: str | int) -> Task:
    """A task by its number (``12``) or its address (``16/31098/30153``)."""
    text = str(ref).strip()
    if text.isdigit():
        row = project.conn.execute(_TASK_SELECT + " WHERE t.id = ?", (int(text),)).fetchone()
    else:
        row = project.conn.execute(_TASK_SELECT + " WHERE t.key = ?", (text,)).fetchone()
    if row is None:
        if not project.conn.execute("SELECT 1 FROM tasks LIMIT 1").fetchone():
            raise MapathonError(f"task {text}: the project has no tasks yet; run 'mapathon grid' first")
        raise MapathonError(f"task {text}: no such task (give its number or its z/x/y address)")
    return _task(row)


def list_tasks(project: Project, state: str | None = None, village: str | None = None) -> list[Task]:
    sql, args = _TASK_SELECT + " WHERE 1 = 1", []
    if state:
        sql += " AND t.state = ?"
        args.append(state)
    if village:
        sql += " AND t.id IN (SELECT task_id FROM task_areas WHERE area_id = ?)"
        args.append(project.village(village)["id"])
    return [_task(r) for r in project.conn.execute(sql + " ORDER BY t.id", args)]


# -- the grid -----------------------------------------------------------------


def has_work(project: Project) -> bool:
    """True when a task of the current grid has a recorded change (claims, splits, ...)."""
    return project.conn.execute(
        """SELECT 1 FROM events WHERE task IS NOT NULL
            AND seq > COALESCE((SELECT MAX(seq) FROM events WHERE action = 'grid.create'), 0) LIMIT 1"""
    ).fetchone() is not None


def save_grid(project: Project, grid: Grid, *, actor: str, description: dict, force: bool = False) -> int:
    """Replace the project's tasks by *grid*, assigning villages. Returns the number of tasks."""
    with project.transaction():
        if has_work(project) and not force:
            raise MapathonError(
                "the project already has recorded work on its tasks; re-gridding would orphan it "
                "(use --force to replace the grid anyway; the history is kept)"
            )
        conn = project.conn
        old = conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
        conn.execute("DELETE FROM task_areas")
        conn.execute("UPDATE tasks SET parent_id = NULL")
        conn.execute("DELETE FROM tasks")
        n = len(grid)
        ids = np.arange(1, n + 1)
        wkb = shapely.to_wkb(grid.geoms)
        bounds = shapely.bounds(grid.geoms)
        tile = grid.z >= 0
        zs = [int(v) if t else None for v, t in zip(grid.z, tile)]
        xs = [int(v) if t else None for v, t in zip(grid.x, tile)]
        ys = [int(v) if t else None for v, t in zip(grid.y, tile)]
        conn.executemany(
            "INSERT INTO tasks (id, key, z, x, y, area_m2, minx, miny, maxx, maxy, geom)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            zip(ids.tolist(), grid.keys.tolist(), zs, xs, ys, grid.area_m2.tolist(), bounds[:, 0].tolist(),
                bounds[:, 1].tolist(), bounds[:, 2].tolist(), bounds[:, 3].tolist(), wkb.tolist()),
        )
        _assign_villages(project, ids, grid.geoms)
        project.record(actor=actor, action="grid.create", data={**description, "tasks": n, "replaced": old})
    return n


def _assign_villages(project: Project, ids: np.ndarray, geoms: np.ndarray) -> None:
    areas = project.conn.execute("SELECT id, geom FROM areas WHERE kind != 'aoi'").fetchall()
    if not areas or len(geoms) == 0:
        return
    area_ids = np.array([a[0] for a in areas])
    area_geoms = shapely.from_wkb([a[1] for a in areas])
    tree = shapely.STRtree(geoms)
    vi, ti = tree.query(area_geoms, predicate="intersects")
    real = ~shapely.touches(area_geoms[vi], geoms[ti])  # sharing only a border is not overlapping
    project.conn.executemany(
        "INSERT INTO task_areas (task_id, area_id) VALUES (?, ?)",
        zip(ids[ti[real]].tolist(), area_ids[vi[real]].tolist()),
    )


# -- changes --------------------------------------------------------------------


def _now(now: datetime | None) -> datetime:
    return now or events.utcnow()


def expire_locks(project: Project, now: datetime | None = None) -> list[str]:
    """Release the locks whose time is over (inside the caller's transaction). Returns their task keys."""
    stamp = events.iso(_now(now))
    rows = project.conn.execute(
        """SELECT t.id, t.key, t.state, t.unlock_state, t.lock_expires, v.name
             FROM tasks t JOIN volunteers v ON v.id = t.locked_by
            WHERE t.lock_expires IS NOT NULL AND t.lock_expires < ?""",
        (stamp,),
    ).fetchall()
    for r in rows:
        to_state = r["unlock_state"] or (READY if r["state"] == LOCKED_FOR_MAPPING else MAPPED)
        project.conn.execute(
            "UPDATE tasks SET state = ?, locked_by = NULL, lock_expires = NULL, unlock_state = NULL WHERE id = ?",
            (to_state, r["id"]),
        )
        project.record(
            actor=SYSTEM, action="lock.expire", task=r["key"], from_state=r["state"], to_state=to_state,
            comment=f"lock of {r['name']} expired", ts=events.parse_iso(r["lock_expires"]),  # when it ran out
        )
    return [r["key"] for r in rows]


def _forbid(task: Task, why: str) -> ForbiddenTransition:
    return ForbiddenTransition(f"task {task.id} ({task.key}) is {task.state}: {why}")


def _set(project: Project, task: Task, **cols) -> None:
    sets = ", ".join(f"{k} = ?" for k in cols)
    project.conn.execute(f"UPDATE tasks SET {sets} WHERE id = ?", (*cols.values(), task.id))


def _lock_hours(hours: float) -> float:
    if not 0 < hours <= MAX_LOCK_HOURS:
        raise MapathonError(f"--hours {hours:g}: a lock lasts more than 0 and at most {MAX_LOCK_HOURS} hours")
    return hours


def _holder_or_organizer(task: Task, vol: volunteers.Volunteer, what: str) -> None:
    if task.locked_by is None:
        raise _forbid(task, f"it is not locked, so there is nothing to {what}")
    if task.locked_by.casefold() != vol.name.casefold() and not vol.is_organizer:
        raise _forbid(task, f"it is locked by {task.locked_by}; only they or an organizer may {what} it")


def _vol_id(project: Project, name: str) -> int:
    return volunteers.find(project, name).id


def claim(
    project: Project,
    ref: str | int,
    actor: str,
    *,
    hours: float = DEFAULT_LOCK_HOURS,
    comment: str | None = None,
    now: datetime | None = None,
) -> Task:
    """Lock a task: for mapping when READY/INVALIDATED, for validation when MAPPED."""
    hours = _lock_hours(hours)
    with project.transaction():
        expire_locks(project, now)
        vol, _ = volunteers.ensure(project, actor)
        task = get_task(project, ref)
        return _claim(project, task, vol, hours, comment, now)


def _claim(project, task: Task, vol: volunteers.Volunteer, hours: float, comment, now) -> Task:
    when = _now(now)
    expires = events.iso(when + timedelta(hours=hours))
    if task.state in MAPPABLE:
        held = project.conn.execute(
            "SELECT id, key FROM tasks WHERE locked_by = ? AND state = ?", (vol.id, LOCKED_FOR_MAPPING)
        ).fetchone()
        if held:
            raise ForbiddenTransition(
                f"{vol.name} already holds task {held['id']} ({held['key']}) for mapping; "
                "finish it ('done') or 'release' it first"
            )
        to_state, action = LOCKED_FOR_MAPPING, "claim.mapping"
    elif task.state == MAPPED:
        if not vol.can_validate:
            raise _forbid(task, f"it waits for validation and {vol.name} is not a validator")
        if task.mapped_by and task.mapped_by.casefold() == vol.name.casefold():
            raise _forbid(task, f"{vol.name} mapped it; nobody validates their own work")
        to_state, action = LOCKED_FOR_VALIDATION, "claim.validation"
    elif task.state in LOCKED:
        raise _forbid(task, f"already locked by {task.locked_by} until {task.lock_expires[:16].replace('T', ' ')} UTC")
    else:
        raise _forbid(task, "there is nothing to claim (finished, split or bad imagery)")
    _set(project, task, state=to_state, locked_by=vol.id, lock_expires=expires, unlock_state=task.state)
    project.record(
        actor=vol.name, action=action, task=task.key, from_state=task.state, to_state=to_state,
        comment=comment, data={"expires": expires}, ts=now,
    )
    return get_task(project, task.id)


def claim_next(
    project: Project,
    actor: str,
    *,
    village: str | None = None,
    hours: float = DEFAULT_LOCK_HOURS,
    now: datetime | None = None,
) -> Task:
    """Lock a task for mapping, chosen for the volunteer.

    INVALIDATED tasks first, then READY ones; in the given village, or else village by
    village from the least advanced, each from its centre outwards, then tasks outside
    villages in number order. Tasks that touch a locked task are skipped (so that two volunteers do
    not map the same border) unless nothing else is left."""
    hours = _lock_hours(hours)
    with project.transaction():
        expire_locks(project, now)
        area_id = project.village(village)["id"] if village else None
        vol, _ = volunteers.ensure(project, actor)
        chosen = _pick(project, area_id)
        if chosen is None:
            where = f" in {village}" if village else ""
            raise MapathonError(f"no task left to map{where}: every task is locked, mapped or finished")
        return _claim(project, get_task(project, chosen), vol, hours, None, now)


def _pick(project: Project, area_id: int | None) -> int | None:
    """The task to give next (see :func:`claim_next`); None when nothing is left."""
    conn = project.conn
    # Locked tasks are few (one per volunteer at most): compare bounding boxes against them.
    eps = 1e-9
    locked = np.array(conn.execute(
        "SELECT minx - :e, miny - :e, maxx + :e, maxy + :e FROM tasks WHERE state IN (:m, :v)",
        {"e": eps, "m": LOCKED_FOR_MAPPING, "v": LOCKED_FOR_VALIDATION}).fetchall(), dtype=float).reshape(-1, 4)

    if area_id is not None:
        areas = [area_id]
    else:
        # The least advanced village first (the one listed first on ties), so that villages
        # are finished one after the other and can go to print.
        areas = [r[0] for r in conn.execute(
            """SELECT a.id FROM areas a LEFT JOIN task_areas ta ON ta.area_id = a.id
                 LEFT JOIN tasks t ON t.id = ta.task_id AND t.state NOT IN ('SPLIT', 'BADIMAGERY')
                WHERE a.kind != 'aoi'
                GROUP BY a.id
               HAVING COUNT(t.id) FILTER (WHERE t.state IN ('READY', 'INVALIDATED')) > 0
                ORDER BY 1.0 * COUNT(t.id) FILTER (WHERE t.state NOT IN ('READY', 'INVALIDATED', 'LOCKED_FOR_MAPPING'))
                         / COUNT(t.id), a.id""")]
    fallback = None
    for state in (INVALIDATED, READY):
        for aid in areas:
            clean, first = _pick_in_area(project, aid, state, locked)
            if clean is not None:
                return clean
            fallback = fallback or first
        if area_id is not None:
            continue
        # Tasks outside every village (or a project without villages): in number order.
        last = 0
        while True:
            rows = conn.execute(
                """SELECT t.id, t.minx, t.miny, t.maxx, t.maxy FROM tasks t
                    WHERE t.state = :state AND t.id > :last ORDER BY t.id LIMIT 256""",
                {"state": state, "last": last},
            ).fetchall()
            if not rows:
                break
            clean, first = _first_clear(rows, locked)
            if clean is not None:
                return clean
            fallback = fallback or first
            last = rows[-1][0]
    return fallback


def _first_clear(rows: list, locked: np.ndarray) -> tuple[int | None, int | None]:
    """Of candidate rows (id, minx, miny, maxx, maxy) in order of preference: the first whose
    box touches no locked box (vectorised over rows x locks), and the first at all."""
    if not rows:
        return None, None
    a = np.array(rows, dtype=float)
    if len(locked) == 0:
        return int(a[0, 0]), int(a[0, 0])
    touch = ((a[:, None, 1] <= locked[None, :, 2]) & (a[:, None, 3] >= locked[None, :, 0])
             & (a[:, None, 2] <= locked[None, :, 3]) & (a[:, None, 4] >= locked[None, :, 1])).any(axis=1)
    free = np.flatnonzero(~touch)
    return (int(a[free[0], 0]) if len(free) else None), int(a[0, 0])


def _pick_in_area(project: Project, area_id: int, state: str, locked: np.ndarray) -> tuple[int | None, int | None]:
    """In a village, from its centre (where the houses are) outwards: the first task that
    touches no locked task, and the first task at all."""
    row = project.conn.execute("SELECT lon, lat, geom FROM areas WHERE id = ?", (area_id,)).fetchone()
    if row["lon"] is not None:
        lon, lat = row["lon"], row["lat"]
    else:
        p = shapely.from_wkb(row["geom"]).representative_point()
        lon, lat = p.x, p.y
    k = math.cos(math.radians(lat)) ** 2
    rows = project.conn.execute(
        """SELECT t.id, t.minx, t.miny, t.maxx, t.maxy FROM tasks t
             JOIN task_areas ta ON ta.task_id = t.id AND ta.area_id = :area
            WHERE t.state = :state
            ORDER BY ((t.minx + t.maxx) / 2 - :lon) * ((t.minx + t.maxx) / 2 - :lon) * :k
                   + ((t.miny + t.maxy) / 2 - :lat) * ((t.miny + t.maxy) / 2 - :lat), t.id""",
        {"area": area_id, "state": state, "lon": lon, "lat": lat, "k": k},
    ).fetchall()
    return _first_clear(rows, locked)


@contextlib.contextmanager
def _acting(project: Project, ref: str | int, actor: str, now: datetime | None):
    """The prologue of every change by a known volunteer on one task: a write transaction,
    expired locks released, then the task and the volunteer looked up."""
    with project.transaction():
        expire_locks(project, now)
        task = get_task(project, ref)
        yield task, _known(project, actor)


def release(project: Project, ref: str | int, actor: str, *, comment: str | None = None, now=None) -> Task:
    """End a lock without a result: the task returns to the state it had."""
    with _acting(project, ref, actor, now) as (task, vol):
        _holder_or_organizer(task, vol, "release")
        back = project.conn.execute("SELECT unlock_state FROM tasks WHERE id = ?", (task.id,)).fetchone()[0]
        back = back or (READY if task.state == LOCKED_FOR_MAPPING else MAPPED)
        _set(project, task, state=back, locked_by=None, lock_expires=None, unlock_state=None)
        project.record(actor=vol.name, action="release", task=task.key, from_state=task.state, to_state=back,
                       comment=comment, ts=now)
        return get_task(project, task.id)


def done(project: Project, ref: str | int, actor: str, *, comment: str | None = None, now=None) -> Task:
    """Mark a task locked for mapping as MAPPED."""
    with _acting(project, ref, actor, now) as (task, vol):
        if task.state != LOCKED_FOR_MAPPING:
            raise _forbid(task, "only a task locked for mapping can be marked done (claim it first)")
        _holder_or_organizer(task, vol, "finish")
        mapper = _vol_id(project, task.locked_by)
        _set(project, task, state=MAPPED, locked_by=None, lock_expires=None, unlock_state=None,
             mapped_by=mapper, validated_by=None)
        project.record(actor=vol.name, action="done", task=task.key, from_state=task.state, to_state=MAPPED,
                       comment=comment, data={"mapper": task.locked_by}, ts=now)
        return get_task(project, task.id)


def badimagery(project: Project, ref: str | int, actor: str, *, comment: str | None = None, now=None) -> Task:
    """Mark a task as impossible to map from the imagery (clouds, blur, no coverage)."""
    with _acting(project, ref, actor, now) as (task, vol):
        if task.state == LOCKED_FOR_MAPPING:
            _holder_or_organizer(task, vol, "mark as bad imagery")
        elif not (vol.is_organizer and task.state in MAPPABLE):
            raise _forbid(task, "claim it for mapping first (an organizer may also mark a READY task)")
        _set(project, task, state=BADIMAGERY, locked_by=None, lock_expires=None, unlock_state=None)
        project.record(actor=vol.name, action="badimagery", task=task.key, from_state=task.state,
                       to_state=BADIMAGERY, comment=comment, ts=now)
        return get_task(project, task.id)


def validate(
    project: Project, ref: str | int, actor: str, *, accept: bool, comment: str | None = None, now=None
) -> Task:
    """Accept (VALIDATED) or reject (INVALIDATED) a mapped task."""
    with _acting(project, ref, actor, now) as (task, vol):
        if not vol.can_validate:
            raise _forbid(task, f"{vol.name} is not a validator (an organizer can grant it: "
                                f"'mapathon volunteer add \"{vol.name}\" --validator --as ORGANIZER')")
        if task.mapped_by and task.mapped_by.casefold() == vol.name.casefold():
            raise _forbid(task, f"{vol.name} mapped it; nobody validates their own work")
        if task.state == MAPPED or (task.state == VALIDATED and not accept):
            pass  # validated in one step, no lock needed
        elif task.state == LOCKED_FOR_VALIDATION:
            if task.locked_by.casefold() != vol.name.casefold() and not vol.is_organizer:
                raise _forbid(task, f"{task.locked_by} is validating it")
        else:
            raise _forbid(task, "only a MAPPED task (or a VALIDATED one, to reject it) can be validated")
        to_state = VALIDATED if accept else INVALIDATED
        _set(project, task, state=to_state, locked_by=None, lock_expires=None, unlock_state=None,
             validated_by=vol.id if accept else None)
        project.record(actor=vol.name, action="validate" if accept else "invalidate", task=task.key,
                       from_state=task.state, to_state=to_state, comment=comment,
                       data={"mapper": task.mapped_by}, ts=now)
        return get_task(project, task.id)


def split(project: Project, ref: str | int, actor: str, *, comment: str | None = None, now=None) -> list[Task]:
    """Replace a task by its four children (tiles at zoom+1, or quadrants). Returns the children."""
    with _acting(project, ref, actor, now) as (task, vol):
        if task.state == LOCKED_FOR_MAPPING:
            _holder_or_organizer(task, vol, "split")
        elif task.state not in MAPPABLE:
            raise _forbid(task, "only a READY or INVALIDATED task, or one you hold for mapping, can be split")
        keys, zs, xs, ys, geoms = split_cells(task.key, task.z, task.x, task.y, task.geom)
        # as for the grid, keep only the children that overlap the area of interest
        overlap = geo.areas_m2(shapely.intersection(np.array(geoms, dtype=object), project.aoi_geom()))
        keep = [i for i in range(len(keys)) if overlap[i] > DEFAULT_MIN_OVERLAP_M2]
        keys, zs, xs, ys, geoms = ([seq[i] for i in keep] for seq in (keys, zs, xs, ys, geoms))
        if not keys:  # splitting would leave the task's sliver of the AOI with no task at all
            raise MapathonError(f"task {task.id} ({task.key}): none of its four parts overlaps the area of "
                                f"interest by more than {DEFAULT_MIN_OVERLAP_M2:g} m²; it cannot be split")
        clash = project.conn.execute(
            f"SELECT key FROM tasks WHERE key IN ({','.join('?' * len(keys))})", keys
        ).fetchone()
        if clash:
            raise MapathonError(f"task {task.id}: a task {clash[0]} already exists")
        areas = geo.areas_m2(np.array(geoms, dtype=object))
        first = project.conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM tasks").fetchone()[0]
        ids = list(range(first, first + len(keys)))
        conn = project.conn
        conn.executemany(
            "INSERT INTO tasks (id, key, z, x, y, parent_id, area_m2, minx, miny, maxx, maxy, geom)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(i, k, z, x, y, task.id, float(a), *g.bounds, shapely.to_wkb(g))
             for i, k, z, x, y, a, g in zip(ids, keys, zs, xs, ys, areas, geoms)],
        )
        _assign_villages(project, np.array(ids), np.array(geoms, dtype=object))
        _set(project, task, state=SPLIT, locked_by=None, lock_expires=None, unlock_state=None)
        project.record(actor=vol.name, action="split", task=task.key, from_state=task.state, to_state=SPLIT,
                       comment=comment, data={"children": keys}, ts=now)
        return [get_task(project, i) for i in ids]


def reset(project: Project, ref: str | int, actor: str, *, comment: str | None = None, now=None) -> Task:
    """Organizer only: put a task back to READY, forgetting who mapped and validated it."""
    with _acting(project, ref, actor, now) as (task, vol):
        if not vol.is_organizer:
            raise _forbid(task, f"{vol.name} is not an organizer; only organizers reset tasks")
        if task.state == SPLIT:
            raise _forbid(task, "a split task is replaced by its children; reset those instead")
        _set(project, task, state=READY, locked_by=None, lock_expires=None, unlock_state=None,
             mapped_by=None, validated_by=None)
        project.record(actor=vol.name, action="reset", task=task.key, from_state=task.state, to_state=READY,
                       comment=comment, ts=now)
        return get_task(project, task.id)


def _known(project: Project, actor: str) -> volunteers.Volunteer:
    name = volunteers.check_name(actor)
    vol = volunteers.find(project, name)
    if vol is None:
        raise MapathonError(f"--as {name}: no such volunteer in this project (see 'mapathon volunteer list')")
    return vol


def history(project: Project, ref: str | int) -> tuple[Task, list[events.Event]]:
    """A task and its events, including those of the tasks it was split from."""
    task = get_task(project, ref)
    keys, parent = [task.key], task.parent_id
    while parent is not None:
        row = project.conn.execute("SELECT key, parent_id FROM tasks WHERE id = ?", (parent,)).fetchone()
        keys.append(row["key"])
        parent = row["parent_id"]
    return task, events.task_events(project.conn, keys)


def sweep(project: Project, now: datetime | None = None) -> list[str]:
    """Release expired locks in a transaction of its own (used before reports)."""
    with project.transaction():
        return expire_locks(project, now)
