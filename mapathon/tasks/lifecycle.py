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
import dataclasses
import itertools
import math
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import shapely

from .. import events, geo, names
from ..errors import ForbiddenTransition, MapathonError, UsageMistake
from ..project import Project
from . import volunteers
from .grid import DEFAULT_MIN_OVERLAP_M2, split_cells

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

    def as_dict(self) -> dict:
        """The one JSON shape of a task (``--json`` of the commands, the room server's API)."""
        return {"id": self.id, "key": self.key, "state": self.state, "villages": list(self.villages),
                "locked_by": self.locked_by, "lock_expires": self.lock_expires, "mapped_by": self.mapped_by,
                "validated_by": self.validated_by, "parent_id": self.parent_id,
                "bounds": [round(v, 7) for v in self.geom.bounds]}


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


def get_tasks(project: Project, ids: list[int]) -> dict[int, Task]:
    """Tasks by number, read with one statement: {id: Task} (numbers that are not tasks are left out)."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    return {r["id"]: _task(r) for r in project.conn.execute(_TASK_SELECT + f" WHERE t.id IN ({marks})", list(ids))}


def list_tasks(project: Project, state: str | None = None, village: str | None = None) -> list[Task]:
    sql, args = _TASK_SELECT + " WHERE 1 = 1", []
    if state:
        sql += " AND t.state = ?"
        args.append(state)
    if village:
        sql += " AND t.id IN (SELECT task_id FROM task_areas WHERE area_id = ?)"
        args.append(project.village(village)["id"])
    return [_task(r) for r in project.conn.execute(sql + " ORDER BY t.id", args)]


# -- the villages of tasks (gridding.save_grid stores a grid) ------------------


def _assign_villages(project: Project, ids: np.ndarray, geoms) -> None:
    """Link tasks to the villages they overlap. *geoms*: the tasks' shapes, or a function making them."""
    areas = project.conn.execute("SELECT id, geom FROM areas WHERE kind != 'aoi'").fetchall()
    if not areas or len(ids) == 0:
        return
    if callable(geoms):
        geoms = geoms()
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
        raise UsageMistake(f"a lock lasts more than 0 and at most {MAX_LOCK_HOURS} hours", field="hours", value=f"{hours:g}")
    return hours


def _holder_or_organizer(task: Task, vol: volunteers.Volunteer, what: str) -> None:
    if task.locked_by is None:
        raise _forbid(task, f"it is not locked, so there is nothing to {what}")
    if task.locked_by.casefold() != vol.name.casefold() and not vol.is_organizer:
        raise _forbid(task, f"it is locked by {task.locked_by}; only they or an organizer may {what} it")


def claim(
    project: Project,
    ref: str | int,
    actor: str,
    *,
    hours: float = DEFAULT_LOCK_HOURS,
    comment: str | None = None,
    now: datetime | None = None,
    new: bool = False,
) -> Task:
    """Lock a task: for mapping when READY/INVALIDATED, for validation when MAPPED.

    An unknown *actor* is registered, unless the name is close to a volunteer's (a typo?) and
    *new* does not say it is someone new (:func:`volunteers.ensure`)."""
    hours = _lock_hours(hours)
    with project.transaction():
        got = _claim_many(project, [(ref, actor)], hours, comment, now, new)[0]
        if isinstance(got, Exception):
            raise got
        return got


def claim_many(
    project: Project,
    asks: list[tuple[str | int, str]],
    *,
    hours: float = DEFAULT_LOCK_HOURS,
    now: datetime | None = None,
    new: bool = False,
) -> list[Task | MapathonError]:
    """:func:`claim` for several (task, volunteer) at once, in this order, with one statement for
    each kind of read and write: what a room server needs when a room claims at the same moment.
    Returns, for each ask, its task or the error that refused it (a refused ask changes nothing;
    locks whose time is over are released all the same, as at the start of every change)."""
    hours = _lock_hours(hours)
    with project.transaction():
        return _claim_many(project, asks, hours, None, now, new)


def _claim_many(project: Project, asks: list, hours: float, comment: str | None, now, new: bool = False) -> list:
    """:func:`claim_many` inside the caller's transaction."""
    out: list = [None] * len(asks)
    expire_locks(project, now)
    refs = [str(ref).strip() for ref, _ in asks]
    numbers = sorted({int(r) for r in refs if r.isdigit()})
    tasks = get_tasks(project, numbers)
    addresses = sorted({r for r in refs if not r.isdigit()})
    if addresses:
        marks = ",".join("?" * len(addresses))
        tasks.update({r["key"]: _task(r) for r in project.conn.execute(
            _TASK_SELECT + f" WHERE t.key IN ({marks})", addresses)})
    known = _known_volunteers(project, [actor for _, actor in asks])
    held = _held(project, [v.id for v in known.values()])
    from ..sync import reservations  # (not at the top: mapathon.sync imports this module)

    reserved = reservations.blocked(project)  # task id -> the other site it is kept for
    claims: list[tuple[int, Task, str, str, volunteers.Volunteer]] = []
    expires = _expires(hours, now)
    for i, (ref, actor) in enumerate(asks):
        try:
            name = volunteers.check_name(actor)
            task = tasks.get(int(refs[i]) if refs[i].isdigit() else refs[i])
            if task is None:
                task = get_task(project, refs[i])  # raises the error that says why
            vol = known.get(names.key(name))
            to_state, action = _claim_rule(task, vol, name, held.get(vol.id) if vol else None)
            if action == "claim.mapping" and task.id in reserved:
                raise reservations.refusal(task, reserved[task.id])
            if vol is None:
                vol = known[names.key(name)] = volunteers.ensure(project, name, new=new)[0]
            claims.append((i, task, to_state, action, vol))
            # later asks see this claim
            taken = dataclasses.replace(task, state=to_state, locked_by=vol.name, lock_expires=expires)
            tasks[task.id] = tasks[task.key] = taken
            if to_state == LOCKED_FOR_MAPPING:
                held[vol.id] = (task.id, task.key)
        except MapathonError as e:
            out[i] = e
    done = _write_claims(project, [(t.id, t.key, t.state, s, a, v) for _, t, s, a, v in claims], expires,
                         comment, now)
    for (i, *_), t in zip(claims, done):
        out[i] = t
    return out


def _known_volunteers(project: Project, actors: list[str]) -> dict[str, volunteers.Volunteer]:
    """The registered volunteers among *actors*, by name key (names that are not valid are left out)."""
    wanted = {}
    for actor in actors:
        with contextlib.suppress(MapathonError):
            wanted[names.key(volunteers.check_name(actor))] = None
    return volunteers.find_many(project, list(wanted))


def _held(project: Project, volunteer_ids: list[int]) -> dict[int, tuple[int, str]]:
    """Volunteer id -> (task id, key) of the task each holds for mapping."""
    if not volunteer_ids:
        return {}
    marks = ",".join("?" * len(volunteer_ids))
    rows = project.conn.execute(f"SELECT locked_by, id, key FROM tasks WHERE state = ? AND locked_by IN ({marks}) "
                                "ORDER BY id DESC", (LOCKED_FOR_MAPPING, *volunteer_ids)).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def _expires(hours: float, now: datetime | None) -> str:
    return events.iso(_now(now) + timedelta(hours=hours))


def _claim_rule(task: Task, vol: volunteers.Volunteer | None, name: str, held: tuple[int, str] | None
                ) -> tuple[str, str]:
    """The state a claim by *name* (registered as *vol*, holding *held* for mapping) takes *task*
    to, and the event's action; raises when the claim is not allowed."""
    if task.state in MAPPABLE:
        if held:
            raise ForbiddenTransition(
                f"{vol.name} already holds task {held[0]} ({held[1]}) for mapping; "
                "finish it ('done') or 'release' it first"
            )
        return LOCKED_FOR_MAPPING, "claim.mapping"
    if task.state == MAPPED:
        if vol is None or not vol.can_validate:
            raise _forbid(task, f"it waits for validation and {vol.name if vol else name} is not a validator")
        if task.mapped_by and task.mapped_by.casefold() == vol.name.casefold():
            raise _forbid(task, f"{vol.name} mapped it; nobody validates their own work")
        return LOCKED_FOR_VALIDATION, "claim.validation"
    if task.state in LOCKED:
        raise _forbid(task, f"already locked by {task.locked_by} until {task.lock_expires[:16].replace('T', ' ')} UTC")
    raise _forbid(task, "there is nothing to claim (finished, split or bad imagery)")


def _write_claims(project: Project, claims: list[tuple[int, str, str, str, str, volunteers.Volunteer]],
                  expires: str, comment: str | None, now) -> list[Task]:
    """Lock the tasks of *claims* (task id, key, state, new state, action, volunteer): one UPDATE and one
    INSERT of events for all. Returns the tasks as they are now."""
    if not claims:
        return []
    project.conn.executemany(
        "UPDATE tasks SET state = ?, locked_by = ?, lock_expires = ?, unlock_state = ? WHERE id = ?",
        [(to_state, vol.id, expires, state, tid) for tid, _, state, to_state, _, vol in claims])
    events.record_many(project.conn, project.site, [
        dict(actor=vol.name, action=action, task=key, from_state=state, to_state=to_state, comment=comment,
             data={"expires": expires}) for _, key, state, to_state, action, vol in claims], now)
    got = get_tasks(project, [c[0] for c in claims])
    return [got[c[0]] for c in claims]


def claim_next(
    project: Project,
    actor: str,
    *,
    village: str | None = None,
    hours: float = DEFAULT_LOCK_HOURS,
    now: datetime | None = None,
    new: bool = False,
) -> Task:
    """Lock a task for mapping, chosen for the volunteer (registered as :func:`claim` does).

    INVALIDATED tasks first, then READY ones; in the given village, or else village by
    village from the least advanced, each from its centre outwards, then tasks outside
    villages in number order. Tasks that touch a locked task are skipped (so that two volunteers do
    not map the same border) unless nothing else is left."""
    hours = _lock_hours(hours)
    with project.transaction():
        got = _claim_next(project, [(actor, village)], hours, now, new)[0]
        if isinstance(got, Exception):
            raise got
        return got


def claim_next_many(
    project: Project,
    asks: list[tuple[str, str | None]],
    *,
    hours: float = DEFAULT_LOCK_HOURS,
    now: datetime | None = None,
    new: bool = False,
) -> list[Task | MapathonError]:
    """:func:`claim_next` for several volunteers at once, in this order: *asks* are
    (volunteer, village or None). The open tasks are read once and ranked in memory, the
    locks written and recorded with one statement each: what a room server needs when a
    whole room asks at the same moment. Returns, for each ask, its task or the error that
    refused it (a refused ask changes nothing)."""
    hours = _lock_hours(hours)
    with project.transaction():
        return _claim_next(project, asks, hours, now, new)


def _claim_next(project: Project, asks: list[tuple[str, str | None]], hours: float, now, new: bool = False) -> list:
    """:func:`claim_next_many` inside the caller's transaction."""
    out: list = [None] * len(asks)
    expire_locks(project, now)
    chooser = _Chooser(project)
    known = _known_volunteers(project, [actor for actor, _ in asks])
    areas: dict[str, int] = {}
    chosen: list[tuple[int, tuple[int, str, str], volunteers.Volunteer]] = []  # (ask, (id, key, state), volunteer)
    for i, (actor, village) in enumerate(asks):
        try:
            if village and village not in areas:
                areas[village] = project.village(village)["id"]
            name = volunteers.check_name(actor)
            row = chooser.pick(areas[village] if village else None)
            if row is None:
                where = f" in {village}" if village else ""
                raise MapathonError(f"no task left to map{where}: every task is locked, mapped or finished"
                                   + (" (or reserved for another site)" if chooser.reserved else ""))
            vol = known.get(names.key(name))
            held = chooser.held.get(vol.id) if vol else None
            if held:
                raise ForbiddenTransition(
                    f"{vol.name} already holds task {held[0]} ({held[1]}) for mapping; "
                    "finish it ('done') or 'release' it first")
            if vol is None:
                vol = known[names.key(name)] = volunteers.ensure(project, name, new=new)[0]
            chooser.take(row, vol.id)
            chosen.append((i, (row[0], row[1], row[2]), vol))
        except MapathonError as e:
            out[i] = e
    done = _write_claims(project, [(*t, LOCKED_FOR_MAPPING, "claim.mapping", v) for _, t, v in chosen],
                         _expires(hours, now), None, now)
    for (i, _, _), t in zip(chosen, done):
        out[i] = t
    return out


def _boxes(rows: list, first: int) -> np.ndarray:
    """The bounding boxes in columns first..first+3 of *rows*, as an n x 4 array (read by column,
    which spares a Python call per value on PostgreSQL's rows)."""
    if not rows:
        return np.zeros((0, 4))
    return np.column_stack([np.array(c, dtype=float) for c in list(zip(*rows))[first:first + 4]])


def _touching(boxes: np.ndarray, locked: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    """For each of *boxes* (n x 4): does it touch (share at least an edge or a corner with) one of *locked*?"""
    b, lk = boxes[:, None, :], locked[None, :, :]
    return ((b[..., 0] <= lk[..., 2] + eps) & (b[..., 2] >= lk[..., 0] - eps)
            & (b[..., 1] <= lk[..., 3] + eps) & (b[..., 3] >= lk[..., 1] - eps)).any(axis=1)


class _Candidates:
    """The open tasks for one kind of ask (all villages, or one), in order of preference, read from
    the database a page at a time and only as far as needed."""

    def __init__(self, pages):
        self._pages = pages  # an iterator of lists of rows (id, key, state, minx, miny, maxx, maxy)
        self.rows: list = []
        self.id = np.zeros(0, dtype=np.int64)
        self.box = np.zeros((0, 4))
        self.taken = np.zeros(0, dtype=bool)
        self.touch = np.zeros(0, dtype=bool)

    def more(self, taken: set[int], locked: np.ndarray) -> bool:
        """Read the next page; False when there is no more."""
        page = next(self._pages, None)
        while page is not None and not page:  # a part with nothing in it
            page = next(self._pages, None)
        if page is None:
            return False
        ids = np.array([r[0] for r in page], dtype=np.int64)
        box = _boxes(page, 3)
        self.rows += page
        self.id = np.concatenate([self.id, ids])
        self.box = np.concatenate([self.box, box])
        self.taken = np.concatenate([self.taken, np.isin(ids, list(taken))])
        self.touch = np.concatenate([self.touch, _touching(box, locked)])
        return True


class _Chooser:
    """Which task to give next (the rules of :func:`claim_next`), for a run of asks in one
    transaction: the locks and the villages are read once, the candidates a page at a time as the
    asks need them, and each task given is counted as locked for the asks after it."""

    PAGE = 256

    def __init__(self, project: Project):
        self._conn = conn = project.conn
        self.held: dict[int, tuple[int, str]] = {}  # volunteer id -> (task id, key) locked for mapping
        locked = conn.execute("SELECT id, key, state, locked_by, minx, miny, maxx, maxy FROM tasks "
                              "WHERE state IN (?, ?)", LOCKED).fetchall()
        for r in locked:
            if r[2] == LOCKED_FOR_MAPPING and r[3] is not None:
                self.held.setdefault(r[3], (r[0], r[1]))
        self._locked = _boxes(locked, 4)
        from ..sync import reservations  # (not at the top: mapathon.sync imports this module)

        self.reserved = set(reservations.blocked(project))  # reserved for another site: never given
        self._taken: set[int] = set(self.reserved)
        # villages with open tasks, the least advanced first (the one listed first on ties), so that
        # villages are finished one after the other and can go to print; each from its centre
        self._villages: list[tuple[int, float, float]] = []  # (area id, lon, lat) in that order
        for r in conn.execute(
                """SELECT a.id, a.lon, a.lat, CASE WHEN a.lon IS NULL THEN a.geom END
                     FROM areas a JOIN task_areas ta ON ta.area_id = a.id
                     JOIN tasks t ON t.id = ta.task_id AND t.state NOT IN ('SPLIT', 'BADIMAGERY')
                    WHERE a.kind != 'aoi'
                    GROUP BY a.id
                   HAVING COUNT(t.id) FILTER (WHERE t.state IN ('READY', 'INVALIDATED')) > 0
                    ORDER BY 1.0 * COUNT(t.id) FILTER (WHERE t.state NOT IN ('READY', 'INVALIDATED',
                                                                             'LOCKED_FOR_MAPPING'))
                             / COUNT(t.id), a.id""").fetchall():
            if r[1] is not None:
                self._villages.append((r[0], r[1], r[2]))
            else:
                p = shapely.from_wkb(r[3]).representative_point()
                self._villages.append((r[0], p.x, p.y))
        self._sources: dict[int | None, _Candidates] = {}

    def _in_villages(self, villages: list[tuple[int, float, float]], state: str):
        """Pages of the tasks in *state* of these villages: village by village in this order, each from
        its centre outwards (squared distance, longitudes scaled by cos² of the latitude)."""
        if not villages:
            return
        values = ", ".join(["(CAST(? AS INTEGER), CAST(? AS INTEGER), CAST(? AS DOUBLE PRECISION), "
                            "CAST(? AS DOUBLE PRECISION), CAST(? AS DOUBLE PRECISION))"] * len(villages))
        args = [v for rank, (aid, lon, lat) in enumerate(villages)
                for v in (aid, rank, lon, lat, math.cos(math.radians(lat)) ** 2)]
        sql = f"""WITH v (area_id, rank, lon, lat, k) AS (VALUES {values})
                  SELECT t.id, t.key, t.state, t.minx, t.miny, t.maxx, t.maxy
                    FROM v JOIN task_areas ta ON ta.area_id = v.area_id JOIN tasks t ON t.id = ta.task_id
                   WHERE t.state = ?
                   ORDER BY v.rank, ((t.minx + t.maxx) / 2 - v.lon) * ((t.minx + t.maxx) / 2 - v.lon) * v.k
                            + ((t.miny + t.maxy) / 2 - v.lat) * ((t.miny + t.maxy) / 2 - v.lat), t.id
                   LIMIT ? OFFSET ?"""
        offset, size = 0, self.PAGE
        while True:
            rows = self._conn.execute(sql, [*args, state, size, offset]).fetchall()
            yield rows
            if len(rows) < size:
                return
            offset, size = offset + size, size * 2  # each page sorts them all again: fewer, larger pages

    def _by_number(self, state: str):
        """Pages of all the tasks in *state*, in number order (for the tasks outside villages)."""
        last = 0
        while True:
            rows = self._conn.execute(
                "SELECT id, key, state, minx, miny, maxx, maxy FROM tasks WHERE state = ? AND id > ? "
                "ORDER BY id LIMIT ?", (state, last, self.PAGE)).fetchall()
            yield rows
            if len(rows) < self.PAGE:
                return
            last = rows[-1][0]

    def _source(self, area_id: int | None) -> _Candidates:
        """INVALIDATED before READY; for all villages, village by village, then every task in number
        order (which adds those outside villages); for one village, that village's."""
        src = self._sources.get(area_id)
        if src is None:
            if area_id is None:
                parts = [part for state in (INVALIDATED, READY)
                         for part in (self._in_villages(self._villages, state), self._by_number(state))]
            else:
                mine = [v for v in self._villages if v[0] == area_id]
                parts = [self._in_villages(mine, state) for state in (INVALIDATED, READY)]
            src = self._sources[area_id] = _Candidates(itertools.chain.from_iterable(parts))
        return src

    def pick(self, area_id: int | None) -> tuple | None:
        """The task to give, as its row (id, key, state, minx, miny, maxx, maxy): the first in order that
        touches no locked task, else the first at all; None when nothing is left."""
        src = self._source(area_id)
        while True:
            clean = np.flatnonzero(~src.taken & ~src.touch)
            if len(clean):
                return src.rows[clean[0]]
            if not src.more(self._taken, self._locked):
                break
        free = np.flatnonzero(~src.taken)
        return src.rows[free[0]] if len(free) else None

    def take(self, row: tuple, volunteer_id: int) -> None:
        """Count the task of *row* (from :meth:`pick`) as locked by the volunteer."""
        self._taken.add(row[0])
        box = np.array([row[3:7]], dtype=float)
        self._locked = np.concatenate([self._locked, box])
        for src in self._sources.values():
            src.taken |= src.id == row[0]
            src.touch |= _touching(src.box, box)
        self.held[volunteer_id] = (row[0], row[1])


@contextlib.contextmanager
def _acting(project: Project, ref: str | int, actor: str, now: datetime | None):
    """The prologue of every change by a known volunteer on one task: a write transaction,
    expired locks released, then the task and the volunteer looked up."""
    with project.transaction():
        expire_locks(project, now)
        task = get_task(project, ref)
        yield task, _known(project, actor)


def _lock_expired(project: Project, task: Task, vol: volunteers.Volunteer, what: str) -> None:
    """When *vol* may not *what* *task* because the lock they held on it ran out (released by the
    system, maybe claimed by someone else since), raise a refusal that says so."""
    if task.locked_by and names.key(task.locked_by) == names.key(vol.name):
        return
    evs = [e for e in events.task_events(project.conn, [task.key]) if e.from_state != e.to_state]
    now_called = volunteers.current_names(project.conn)  # claims made under a former name are theirs too
    mine = [i for i, e in enumerate(evs) if e.action.startswith("claim.")
            and now_called.get(names.key(e.actor)) == vol.name]
    if not mine or mine[-1] + 1 >= len(evs) or evs[mine[-1] + 1].action != "lock.expire":
        return
    ended = evs[mine[-1] + 1]
    when = events.parse_iso(ended.ts).strftime("%Y-%m-%d %H:%M UTC")
    now = f"locked by {task.locked_by} now" if task.locked_by else f"{task.state} again: claim it again to go on"
    raise ForbiddenTransition(f"task {task.id} ({task.key}): {vol.name}'s lock on it expired at {when}, so there is "
                              f"nothing to {what}; it is {now}")


def release(project: Project, ref: str | int, actor: str, *, comment: str | None = None, now=None) -> Task:
    """End a lock without a result: the task returns to the state it had."""
    return _one(project, ref, actor, comment, "release", now)


def done(project: Project, ref: str | int, actor: str, *, comment: str | None = None, now=None) -> Task:
    """Mark a task locked for mapping as MAPPED."""
    return _one(project, ref, actor, comment, "done", now)


def _one(project: Project, ref, actor: str, comment: str | None, action: str, now) -> Task:
    """One release or done, alone: refused, it changes nothing at all (not even expired locks)."""
    with project.transaction():
        got = _end_many(project, [(ref, actor, comment)], action, now)[0]
        if isinstance(got, Exception):
            raise got
        return got


def release_many(project: Project, asks: list[tuple[str | int, str, str | None]], *,
                 now: datetime | None = None) -> list[Task | MapathonError]:
    """:func:`release` for several (task, volunteer, comment) at once, in this order, with one statement
    for each kind of read and write (as :func:`claim_many`). Returns, for each ask, its task or the error
    that refused it (a refused ask changes nothing; locks whose time is over are released all the same,
    as at the start of every change)."""
    with project.transaction():
        return _end_many(project, asks, "release", now)


def done_many(project: Project, asks: list[tuple[str | int, str, str | None]], *,
              now: datetime | None = None) -> list[Task | MapathonError]:
    """:func:`done` for several (task, volunteer, comment) at once: as :func:`release_many`."""
    with project.transaction():
        return _end_many(project, asks, "done", now)


def _end_many(project: Project, asks: list, action: str, now) -> list:
    """:func:`release_many` or :func:`done_many` (*action*) inside the caller's transaction: the same
    rules, refusals and events as one ask after the other, each seeing the asks before it."""
    out: list = [None] * len(asks)
    expire_locks(project, now)
    refs = [str(ref).strip() for ref, _, _ in asks]
    tasks = get_tasks(project, sorted({int(r) for r in refs if r.isdigit()}))
    addresses = sorted({r for r in refs if not r.isdigit()})
    if addresses:
        marks = ",".join("?" * len(addresses))
        tasks.update({r["key"]: _task(r) for r in project.conn.execute(
            _TASK_SELECT + f" WHERE t.key IN ({marks})", addresses)})
    ids = sorted({t.id for t in tasks.values()})
    # what Task does not say: the state a lock returns to, and the id of the volunteer holding it
    locks = {r[0]: (r[1], r[2]) for r in project.conn.execute(
        f"SELECT id, unlock_state, locked_by FROM tasks WHERE id IN ({','.join('?' * len(ids))})", ids)} if ids else {}
    known = _known_volunteers(project, [actor for _, actor, _ in asks])
    ends: list[tuple[int, Task, str, volunteers.Volunteer, str | None, int | None]] = []
    for i, (ref, actor, comment) in enumerate(asks):
        try:
            task = tasks.get(int(refs[i]) if refs[i].isdigit() else refs[i])
            if task is None:
                task = get_task(project, refs[i])  # raises the error that says why
            vol = known.get(names.key(volunteers.check_name(actor)))
            if vol is None:
                vol = volunteers.known(project, actor)  # raises the error that says why
            try:
                if action == "done":
                    if task.state != LOCKED_FOR_MAPPING:
                        raise _forbid(task, "only a task locked for mapping can be marked done (claim it first)")
                    _holder_or_organizer(task, vol, "finish")
                else:
                    _holder_or_organizer(task, vol, "release")
            except ForbiddenTransition:
                _lock_expired(project, task, vol, "finish" if action == "done" else "release")
                raise
            back, holder = locks[task.id]
            to_state = MAPPED if action == "done" else back or (READY if task.state == LOCKED_FOR_MAPPING else MAPPED)
            ends.append((i, task, to_state, vol, comment, holder))
            # later asks see this change
            after = dataclasses.replace(task, state=to_state, locked_by=None, lock_expires=None)
            if action == "done":
                after = dataclasses.replace(after, mapped_by=task.locked_by, validated_by=None)
            tasks[task.id] = tasks[task.key] = after
            locks[task.id] = (None, None)
        except MapathonError as e:
            out[i] = e
    if not ends:
        return out
    if action == "done":
        project.conn.executemany(
            "UPDATE tasks SET state = ?, locked_by = NULL, lock_expires = NULL, unlock_state = NULL, mapped_by = ?, "
            "validated_by = NULL WHERE id = ?", [(s, holder, t.id) for _, t, s, _, _, holder in ends])
    else:
        project.conn.executemany(
            "UPDATE tasks SET state = ?, locked_by = NULL, lock_expires = NULL, unlock_state = NULL WHERE id = ?",
            [(s, t.id) for _, t, s, _, _, _ in ends])
    events.record_many(project.conn, project.site, [
        dict(actor=vol.name, action=action, task=t.key, from_state=t.state, to_state=s, comment=comment,
             data={"mapper": t.locked_by} if action == "done" else None)
        for _, t, s, vol, comment, _ in ends], now)
    got = get_tasks(project, [t.id for _, t, *_ in ends])
    for i, t, *_ in ends:
        out[i] = got[t.id]
    return out


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
    return volunteers.known(project, actor)


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


# -- what the room server's pages read ---------------------------------------------------------------------------


def existing(project: Project, ids: list[int]) -> set[int]:
    """Which of these task numbers are tasks (one statement)."""
    ids = sorted(set(ids))
    if not ids:
        return set()
    return {r[0] for r in project.conn.execute(f"SELECT id FROM tasks WHERE id IN ({','.join('?' * len(ids))})", ids)}


def held_by(project: Project, volunteer_id: int) -> list[int]:
    """The numbers of the tasks a volunteer holds locked."""
    return [r[0] for r in project.conn.execute("SELECT id FROM tasks WHERE locked_by = ? ORDER BY id",
                                               (volunteer_id,))]


def count_tasks(project: Project) -> int:
    """The tasks of the grid (split ones left out)."""
    return project.conn.execute("SELECT COUNT(*) FROM tasks WHERE state != 'SPLIT'").fetchone()[0]


def grid_event(project: Project) -> str | None:
    """The id of the event that made the current grid (None before any grid): it changes when gridded again."""
    row = project.conn.execute("SELECT id FROM events WHERE action = 'grid.create' ORDER BY seq DESC LIMIT 1").fetchone()
    return row[0] if row else None


def log_version(project: Project) -> int:
    """The event log's last number: it changes whenever a task does."""
    return project.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]


_STATES_SQL = """SELECT t.id, t.key, t.state, lv.name, mv.name, vv.name, t.lock_expires FROM tasks t
                   LEFT JOIN volunteers lv ON lv.id = t.locked_by LEFT JOIN volunteers mv ON mv.id = t.mapped_by
                   LEFT JOIN volunteers vv ON vv.id = t.validated_by WHERE t.state != 'SPLIT' ORDER BY t.id"""


def state_rows(project: Project) -> list[tuple]:
    """Every task (not split ones), compactly: (id, key, state, locked by, mapped by, validated by, lock expires)."""
    return project.conn.execute(_STATES_SQL).fetchall()


def geometries(project: Project, keys: list[str]):
    """(key, WKB geometry) of the tasks with these keys, 500 per statement."""
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        yield from project.conn.execute(f"SELECT key, geom FROM tasks WHERE key IN ({','.join('?' * len(chunk))})",
                                        chunk)
