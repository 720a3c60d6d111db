"""Rebuild the ``tasks`` table from the event log, the same way at every site.

After another site's events are imported, a task's state must not depend on
which bundle arrived first. So the state is not patched event by event: it is
recomputed from *all* task events of the current grid, sorted in one total
order that every site computes identically::

    (ts, lamport, site, id)

— the time of day the change was made (UTC), then the Lamport clock, then the
site id and the event id as tie-breakers. Every event is replayed with the
lifecycle's rules (``mapathon/tasks/lifecycle.py``):

* an event applies only if, at its place in the merged log, the task is in the
  state the event started from (``from_state``);
* an event that ends a lock (release, done, bad imagery, split of a locked task,
  validation of a task locked for validation) also needs the lock to be held by
  the same volunteer (``done`` names the mapper; the others need the actor, or an
  organizer); an expiry needs the very lock that expired (same expiry time).

An event that does not apply is kept in the log and, unless it was made by the
system (lock expiry) or repeats a change already made (the same split twice),
recorded in ``sync_conflicts`` with the reason: typically two sites claimed the
same task while apart — the earlier claim wins the task, and the later
volunteer's claim, "done" and uploads are kept and listed for the organizer.

Two rules of the local lifecycle are *not* re-checked, because they were
checked where the change was made: roles (validator, organizer) and "one
mapping lock per volunteer" (two people with the same name at two sites may
each hold a task).

Tasks are identified by their ``key`` everywhere; ``id`` numbers are local.
Split children that the replay creates get the next free local numbers, in
replay order; children of a split that lost are removed (their events stay in
the log, as conflicts).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field

import numpy as np
import shapely

from .. import events
from ..project import Project
from ..tasks import lifecycle as lc
from ..tasks.grid import split_cells
from ..tasks.volunteers import current_names
from . import people
from .people import name_key

ORDER_SQL = "ts, lamport, site, id"

TASK_ACTIONS = (
    "claim.mapping", "claim.validation", "release", "done", "badimagery", "validate", "invalidate", "split",
    "reset", "lock.expire",
)
# events made by the program itself: when they do not apply, the change they describe already happened
_SILENT = ("lock.expire",)
_LOCK_ENDING = ("release", "badimagery", "split", "validate", "invalidate")


@dataclass
class TState:
    key: str
    parent: str | None = None
    state: str = lc.READY
    unlock_state: str | None = None
    locked_by: str | None = None
    lock_expires: str | None = None
    mapped_by: str | None = None
    validated_by: str | None = None
    children: tuple[str, ...] = ()

    def row(self) -> tuple:
        """What must be identical at every site (names casefolded: ids and spelling are local)."""
        f = (lambda s: name_key(s) if s else None)
        return (self.key, self.parent, self.state, self.unlock_state, f(self.locked_by), self.lock_expires,
                f(self.mapped_by), f(self.validated_by))

    def clear_lock(self) -> None:
        self.locked_by = self.lock_expires = self.unlock_state = None


@dataclass
class Conflict:
    event_id: str
    task: str
    actor: str
    action: str
    site: str
    ts: str
    reason: str
    winner: str | None = None


@dataclass
class ReplayResult:
    tasks: dict[str, TState]
    conflicts: list[Conflict] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # split children made here by the replay (keys)
    removed: list[str] = field(default_factory=list)  # split children of a split that lost (keys)
    changed: list[str] = field(default_factory=list)  # tasks whose row changed (keys)
    events: int = 0


def current_grid_event(conn: sqlite3.Connection) -> sqlite3.Row | None:
    """The grid.create event of the current grid (the last one made here)."""
    return conn.execute(
        "SELECT id, lamport FROM events WHERE action = 'grid.create' ORDER BY seq DESC LIMIT 1").fetchone()


def _same(a: str | None, b: str | None) -> bool:
    return name_key(a or "") == name_key(b or "")


def compute(conn: sqlite3.Connection) -> ReplayResult:
    """Replay every task event of the current grid; no writes."""
    grid = current_grid_event(conn)
    tasks: dict[str, TState] = {}
    for key, in conn.execute("SELECT key FROM tasks WHERE parent_id IS NULL"):
        tasks[key] = TState(key)
    result = ReplayResult(tasks)
    if grid is None:
        return result
    organizers = {name_key(r[0]) for r in conn.execute("SELECT name FROM volunteers WHERE is_organizer = 1")}
    marks = ",".join("?" * len(TASK_ACTIONS))
    rows = conn.execute(
        f"""SELECT id, site, lamport, ts, actor, action, task, from_state, to_state, data FROM events
             WHERE task IS NOT NULL AND lamport > ? AND action IN ({marks}) ORDER BY {ORDER_SQL}""",
        (grid["lamport"], *TASK_ACTIONS),
    ).fetchall()
    result.events = len(rows)
    last_change: dict[str, str] = {}  # task key -> actor of the last applied change (the "winner")
    now_called = current_names(conn)
    for e in rows:
        data = json.loads(e["data"]) if e["data"] else {}
        e = _as_now(e, data, now_called)
        t = tasks.get(e["task"])
        why = _check(e, data, t, organizers)
        if why is None:
            _apply(e, data, t, tasks, result)
            if e["action"] != "lock.expire":
                last_change[t.key] = e["actor"]
            continue
        if e["action"] in _SILENT or why == "":
            continue
        winner = (t.locked_by or last_change.get(t.key)) if t is not None else None
        result.conflicts.append(Conflict(e["id"], e["task"], e["actor"], e["action"], e["site"], e["ts"], why,
                                         winner))
    return result


def _as_now(e, data: dict, now_called: dict[str, str]) -> dict:
    """The event with its volunteers under their names now (a renamed or merged volunteer's events
    are theirs: mapathon/tasks/volunteers.py); *data* is changed in place."""
    e = {k: e[k] for k in e.keys()}
    e["actor"] = now_called.get(name_key(e["actor"]), e["actor"])
    if isinstance(data.get("mapper"), str):
        data["mapper"] = now_called.get(name_key(data["mapper"]), data["mapper"])
    return e


def _check(e, data: dict, t: TState | None, organizers: set[str]) -> str | None:
    """None when the event applies; else why not ("" for a harmless repeat)."""
    action, actor = e["action"], e["actor"]
    if t is None:
        return "the task does not exist once both sites' changes are merged (the split that made it lost)"
    if action == "split" and t.state == lc.SPLIT and tuple(data.get("children") or ()) == t.children:
        return ""  # the same split made twice
    if t.state != e["from_state"]:
        who = f" by {t.locked_by}" if t.locked_by else (f" (mapped by {t.mapped_by})" if t.mapped_by else "")
        return f"the task was already {t.state}{who} when this {action} came in the merged order"
    if action == "lock.expire":
        return None if t.lock_expires == e["ts"] else "another lock"
    if action == "done":
        return None if _same(data.get("mapper"), t.locked_by) else \
            f"the task was locked by {t.locked_by}, not by {data.get('mapper')}"
    if action in _LOCK_ENDING and t.state in lc.LOCKED:
        if not (_same(actor, t.locked_by) or name_key(actor) in organizers):
            return f"the task was locked by {t.locked_by}, not by {actor}"
    if action in ("validate", "invalidate") and not _same(data.get("mapper"), t.mapped_by):
        return f"the task had been mapped again, by {t.mapped_by}"
    if action == "claim.validation" and _same(actor, t.mapped_by):
        return f"{actor} mapped it; nobody validates their own work"
    return None


def _apply(e, data: dict, t: TState, tasks: dict[str, TState], result: ReplayResult) -> None:
    action = e["action"]
    if action in ("claim.mapping", "claim.validation"):
        t.unlock_state = t.state
        t.state = e["to_state"]
        t.locked_by = e["actor"]
        t.lock_expires = data.get("expires")
    elif action in ("release", "lock.expire"):
        back = t.unlock_state or (lc.READY if t.state == lc.LOCKED_FOR_MAPPING else lc.MAPPED)
        t.state = back
        t.clear_lock()
    elif action == "done":
        t.mapped_by = t.locked_by
        t.validated_by = None
        t.state = lc.MAPPED
        t.clear_lock()
    elif action == "badimagery":
        t.state = lc.BADIMAGERY
        t.clear_lock()
    elif action in ("validate", "invalidate"):
        t.state = lc.VALIDATED if action == "validate" else lc.INVALIDATED
        t.validated_by = e["actor"] if action == "validate" else None
        t.clear_lock()
    elif action == "reset":
        t.state = lc.READY
        t.mapped_by = t.validated_by = None
        t.clear_lock()
    elif action == "split":
        t.state = lc.SPLIT
        t.clear_lock()
        t.children = tuple(data.get("children") or ())
        for k in t.children:
            if k not in tasks:
                tasks[k] = TState(k, parent=t.key)
    else:  # pragma: no cover - TASK_ACTIONS lists what is handled
        raise AssertionError(action)


# -- writing the result ---------------------------------------------------------------------------


def apply(project: Project, *, noticed: str | None = None) -> ReplayResult:
    """Make the tasks table and ``sync_conflicts`` match the replay (inside the caller's transaction)."""
    conn = project.conn
    result = compute(conn)
    ids = _volunteer_ids(project, result)
    rows = {r["key"]: r for r in conn.execute(
        """SELECT t.*, p.key AS parent_key, lv.name AS locked_name, mv.name AS mapped_name, vv.name AS validated_name
             FROM tasks t LEFT JOIN tasks p ON p.id = t.parent_id
             LEFT JOIN volunteers lv ON lv.id = t.locked_by LEFT JOIN volunteers mv ON mv.id = t.mapped_by
             LEFT JOIN volunteers vv ON vv.id = t.validated_by""")}

    # 1. split children the replay made that this site does not have yet, parents first (replay order)
    for t in result.tasks.values():
        if t.key not in rows and t.parent is not None:
            _create_child(project, t, rows)
            result.created.append(t.key)
            rows[t.key] = conn.execute(
                "SELECT t.*, p.key AS parent_key, NULL AS locked_name, NULL AS mapped_name, NULL AS validated_name"
                " FROM tasks t LEFT JOIN tasks p ON p.id = t.parent_id WHERE t.key = ?", (t.key,)).fetchone()

    # 2. children of splits that did not happen in the merged order
    gone = [k for k, r in rows.items() if k not in result.tasks]
    if gone:
        gone_ids = [rows[k]["id"] for k in gone]
        marks = ",".join("?" * len(gone_ids))
        conn.execute(f"UPDATE tasks SET parent_id = NULL WHERE id IN ({marks})", gone_ids)
        conn.execute(f"DELETE FROM task_areas WHERE task_id IN ({marks})", gone_ids)
        conn.execute(f"DELETE FROM tasks WHERE id IN ({marks})", gone_ids)
        result.removed = sorted(gone)

    # 3. states
    updates = []
    for t in result.tasks.values():
        r = rows[t.key]
        have = TState(t.key, r["parent_key"], r["state"], r["unlock_state"], r["locked_name"], r["lock_expires"],
                      r["mapped_name"], r["validated_name"])
        if have.row() != t.row():
            updates.append((t.state, t.unlock_state, ids.get(name_key(t.locked_by or "")), t.lock_expires,
                            ids.get(name_key(t.mapped_by or "")), ids.get(name_key(t.validated_by or "")), r["id"]))
            result.changed.append(t.key)
    conn.executemany(
        """UPDATE tasks SET state = ?, unlock_state = ?, locked_by = ?, lock_expires = ?, mapped_by = ?,
                            validated_by = ? WHERE id = ?""", updates)

    # 4. conflicts: the table holds exactly the replay's conflicts (when first noticed here is kept)
    stamp = noticed or events.iso(events.utcnow())
    keep = {c.event_id for c in result.conflicts}
    known = {r[0] for r in conn.execute("SELECT event_id FROM sync_conflicts")}
    stale = known - keep
    if stale:
        conn.executemany("DELETE FROM sync_conflicts WHERE event_id = ?", [(s,) for s in stale])
    conn.executemany(
        """INSERT INTO sync_conflicts (event_id, task, actor, action, site, ts, reason, winner, noticed)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [(c.event_id, c.task, c.actor, c.action, c.site, c.ts, c.reason, c.winner, stamp)
         for c in result.conflicts if c.event_id not in known])
    conn.executemany(
        "UPDATE sync_conflicts SET reason = ?, winner = ? WHERE event_id = ?",
        [(c.reason, c.winner, c.event_id) for c in result.conflicts if c.event_id in known])
    return result


def _volunteer_ids(project: Project, result: ReplayResult) -> dict[str, int]:
    """name (casefolded) -> local volunteer id; anyone named by a task but unknown here is registered."""
    conn = project.conn
    ids = people.ids_by_key(conn)
    needed = {n for t in result.tasks.values() for n in (t.locked_by, t.mapped_by, t.validated_by) if n}
    for name in sorted(needed, key=name_key):
        if name_key(name) not in ids:
            ids[name_key(name)] = people.insert(conn, name, created=events.iso(events.utcnow()))
    return ids


def _create_child(project: Project, t: TState, rows: dict[str, sqlite3.Row]) -> None:
    """Insert split child *t* under its parent, with the next local number."""
    conn = project.conn
    parent = rows[t.parent]
    keys, zs, xs, ys, geoms = split_cells(parent["key"], parent["z"], parent["x"], parent["y"],
                                          shapely.from_wkb(parent["geom"]))
    i = keys.index(t.key)
    g = geoms[i]
    from .. import geo

    area = float(geo.areas_m2(np.array([g], dtype=object))[0])
    new_id = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM tasks").fetchone()[0]
    conn.execute(
        "INSERT INTO tasks (id, key, z, x, y, parent_id, area_m2, minx, miny, maxx, maxy, geom)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (new_id, t.key, zs[i], xs[i], ys[i], parent["id"], area, *g.bounds, shapely.to_wkb(g)))
    lc._assign_villages(project, np.array([new_id]), np.array([g], dtype=object))


def task_states(conn: sqlite3.Connection) -> dict[str, tuple]:
    """Every task's site-independent state, by key (for comparing sites)."""
    out = {}
    for r in conn.execute(
        """SELECT t.key, p.key AS parent_key, t.state, t.unlock_state, lv.name AS l, t.lock_expires,
                  mv.name AS m, vv.name AS v
             FROM tasks t LEFT JOIN tasks p ON p.id = t.parent_id
             LEFT JOIN volunteers lv ON lv.id = t.locked_by LEFT JOIN volunteers mv ON mv.id = t.mapped_by
             LEFT JOIN volunteers vv ON vv.id = t.validated_by"""):
        out[r["key"]] = TState(r["key"], r["parent_key"], r["state"], r["unlock_state"], r["l"], r["lock_expires"],
                               r["m"], r["v"]).row()
    return out
