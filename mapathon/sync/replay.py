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
  organizer); an expiry needs a lock that had run out by the time of the expiry event.

When sites were apart, one task's changes can part ways: Ivry's claim and
Bamako's claim of the same square both started from READY. The replay follows
each line (a *branch*), one task at a time:

* an event applies to the leading branch if it can, else to another branch it
  fits; but first to a branch whose every change its site knew when it made the
  event (:class:`Knowledge`: its own changes, what its copy was made from, and
  what it imported — each import records a ``sync.import`` event);
* an event that fits no branch, but fits the state the task had before changes
  its site did not know (none of them a split or a reset), starts a branch
  there: its site went another way;
* in the end the branch that went furthest wins: the furthest state reached
  since the branches parted, by :data:`PROGRESS`
  (validated > invalidated > mapped = locked for validation > bad imagery >
  locked for mapping > ready). On a tie the branch whose first change is the
  earlier wins. So Mamadou's claim and "done" at Bamako beat Ibrahim's earlier
  bare claim at Ivry, and a validated square beats one only mapped.
* a split and a reset are organizers' decisions: they never start a branch, and
  no branch parts before one; they are settled by time (the earlier wins).

The state is a function of the set of events only (the order is total, and
the branches are built from it), so every site computes the same.

An event that does not apply is kept in the log and, unless it was made by the
system (lock expiry) or repeats a change already made (the same split twice),
recorded in ``sync_conflicts`` with the reason and the winner: every change of
a branch that lost (the reason names who went further, and at which site), and
every change that fits nowhere. The volunteers' uploads are kept.

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
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field, replace

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
IMPORT = "sync.import"  # what a site learnt from a bundle (see Knowledge)

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


# -- the order of progress: when two sites' changes of one task part ways, the branch that went further wins
# (a lock is not progress; bad imagery is a finding; mapped work more; a review more still; validated most).
# A split and a reset are organizers' decisions: they are settled by time, as before (the earlier wins).
PROGRESS = {
    lc.READY: 0, lc.SPLIT: 0, lc.LOCKED_FOR_MAPPING: 1, lc.BADIMAGERY: 2, lc.MAPPED: 3, lc.LOCKED_FOR_VALIDATION: 3,
    lc.INVALIDATED: 4, lc.VALIDATED: 5,
}
_BY_TIME = ("split", "reset")  # never part of a branch that wins by progress


@dataclass
class _Branch:
    """One line of a task's changes: the events applied, and the task's state after each."""
    start: TState
    events: list = field(default_factory=list)
    states: list = field(default_factory=list)
    last_actor: str | None = None

    @property
    def state(self) -> TState:
        return self.states[-1] if self.states else self.start

    def before(self, k: int) -> TState:
        return self.states[k - 1] if k else self.start

    def furthest(self, common: int) -> str:
        """The furthest state the task reached after the first *common* changes (not the state now: a lock
        that ran out later, or a square rejected and claimed again, does not undo the work done, nor hand
        the square back to a line that lost)."""
        after = self.states[common:] or [self.before(common)]
        return max((s.state for s in after), key=PROGRESS.__getitem__)

    def score(self, common: int) -> int:
        return PROGRESS[self.furthest(common)]

    def knew(self, e, known: "Knowledge", k: int | None = None) -> bool:
        """Whether *e*'s site knew the first *k* changes (all by default) when it made *e*."""
        return all(known(e, f) for f in self.events[:k])

    def push(self, e, data: dict) -> None:
        t = replace(self.state)
        _apply(e, data, t)
        self.events.append(e)
        self.states.append(t)
        if e["action"] != "lock.expire":
            self.last_actor = e["actor"]


def site_labels(conn) -> dict[str, str]:
    """site id -> the name given with 'sync clone --site-name' (sites without one are not listed)."""
    names = {}
    for site, data in conn.execute("SELECT site, data FROM events WHERE action = 'site.clone'"):
        name = json.loads(data or "{}").get("site_name")
        if name:
            names[site] = name
    return names


class Knowledge:
    """What a site knew when it made a change: ``known(e, f)`` is True when *e*'s site held event *f*
    when it made *e*.

    A site knows its own earlier events; everything its copy was made from (``site.clone``: every
    event with a clock value below the clone's); and what it imported (every ``sync.import`` event
    notes, for each site, the highest clock value of the bundle's events from that site).
    """

    def __init__(self, conn):
        self._clone: dict[str, int] = {}
        self._imports: dict[str, tuple[list[int], list[dict[str, int]]]] = {}
        for site, lamport, action, data in conn.execute(
                "SELECT site, lamport, action, data FROM events WHERE action IN ('site.clone', ?) ORDER BY lamport, id",
                (IMPORT,)):
            if action == "site.clone":
                self._clone[site] = max(self._clone.get(site, 0), lamport)
                continue
            clocks, seen = self._imports.setdefault(site, ([], []))
            upto = dict(seen[-1]) if seen else {}
            for s, m in ((json.loads(data or "{}")).get("known") or {}).items():
                if isinstance(m, int):
                    upto[s] = max(upto.get(s, 0), m)
            clocks.append(lamport)
            seen.append(upto)

    def __call__(self, e, f) -> bool:
        if f["site"] == e["site"]:
            return f["lamport"] < e["lamport"]
        clone = self._clone.get(e["site"], 0)
        if f["lamport"] < clone <= e["lamport"]:
            return True
        clocks, seen = self._imports.get(e["site"], ((), ()))
        i = bisect_left(clocks, e["lamport"])  # the imports made before e
        return bool(i) and f["lamport"] <= seen[i - 1].get(f["site"], 0)


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
    by_task: dict[str, list] = {}
    now_called = current_names(conn)  # a renamed or merged volunteer's events are theirs
    for e in rows:
        by_task.setdefault(e["task"], []).append(e)
    labels = site_labels(conn)
    known = Knowledge(conn)
    queue = deque(tasks)  # parents before their split children
    while queue:
        key = queue.popleft()
        t = _resolve(tasks[key], by_task.pop(key, []), organizers, labels, known, result, now_called)
        tasks[key] = t
        if t.state == lc.SPLIT:
            for k in t.children:
                if k not in tasks:
                    tasks[k] = TState(k, parent=key)
                    queue.append(k)
    for key, evs in by_task.items():  # tasks that do not exist once all changes are merged
        for e in evs:
            if e["action"] not in _SILENT:
                result.conflicts.append(Conflict(
                    e["id"], key, e["actor"], e["action"], e["site"], e["ts"],
                    "the task does not exist once both sites' changes are merged (the split that made it lost)"))
    result.conflicts.sort(key=lambda c: (c.ts, c.event_id))
    return result


def _resolve(start: TState, evs: list, organizers: set[str], labels: dict[str, str], known: "Knowledge",
             result: ReplayResult, now_called: dict[str, str]) -> TState:
    """Replay one task's events (in the merged order); returns its final state.

    The events are applied to the leading branch when they can; an event that cannot, but fits the
    state the task had before changes its site did not know (none a split or reset), starts a branch
    of its own there: the sites parted ways. At the end the branch that went furthest wins (ties: the
    branch whose first change is the earlier); the changes of the others are conflicts."""
    branches = [_Branch(start)]
    common = 0  # changes that every branch shares

    def ranked() -> list[_Branch]:
        order = sorted(range(len(branches)), key=lambda i: (branches[i].score(common), -i), reverse=True)
        return [branches[i] for i in order]

    lost: list[tuple] = []
    for e in evs:
        data = json.loads(e["data"]) if e["data"] else {}
        e = _as_now(e, data, now_called)
        order = ranked()
        why = _check(e, data, order[0].state, organizers)
        # the leading branch first, but a branch holding a change this one's site did not know is not the
        # line that site was on: try the others first
        fits = [b for b in order if (why if b is order[0] else _check(e, data, b.state, organizers)) is None]
        # (and an expiry goes to the lock of that very expiry time first)
        fits.sort(key=lambda b: (not b.knew(e, known),
                                 e["action"] == "lock.expire" and b.state.lock_expires != e["ts"]))
        if fits:
            fits[0].push(e, data)
        else:
            fork = None if e["action"] in _BY_TIME + _SILENT or why == "" else _fork(e, data, order, organizers, known)
            if fork is not None:
                b, k = fork
                nb = _Branch(start, b.events[:k], b.states[:k])
                nb.push(e, data)
                branches.append(nb)
                common = k if len(branches) == 2 else min(common, k)
                continue
            if e["action"] in _SILENT or why == "":
                continue
            lead = order[0]
            lost.append((e, why, lead.state.locked_by or lead.last_actor))
    win = ranked()[0]
    for e, why, winner in lost:
        result.conflicts.append(Conflict(e["id"], e["task"], e["actor"], e["action"], e["site"], e["ts"], why,
                                         winner))
    kept = {e["id"] for e in win.events}
    seen = set()
    for b in branches:
        if b is win:
            continue
        cp = 0
        while cp < min(len(b.events), len(win.events)) and b.events[cp]["id"] == win.events[cp]["id"]:
            cp += 1
        first = win.events[cp] if cp < len(win.events) else None
        who = first["actor"] if first else win.last_actor
        where = (labels.get(first["site"]) or f"site {first['site'][:8]}") if first else "another site"
        mine, theirs = b.furthest(common), win.furthest(common)
        if PROGRESS[theirs] > PROGRESS[mine]:
            why = (f"{who} at {where} took the task further while the sites were apart (to {theirs}; this line "
                   f"only got to {mine}): the work that went furthest wins")
        else:
            why = (f"{who} at {where} changed the task first while the sites were apart, and this line went no "
                   f"further ({mine}; theirs {theirs}): the earlier change wins")
        for e in b.events[cp:]:
            if e["id"] in kept or e["id"] in seen or e["action"] in _SILENT:
                continue
            seen.add(e["id"])
            result.conflicts.append(Conflict(
                e["id"], e["task"], e["actor"], e["action"], e["site"], e["ts"], why, who))
    return win.state


def _fork(e, data: dict, order: list[_Branch], organizers: set[str], known: "Knowledge"
          ) -> tuple[_Branch, int] | None:
    """Where *e* parts from a branch: (branch, k) when *e* applies to the state before its k-th change,
    *e*'s site knew the changes before it and none from there on (:class:`Knowledge`), and none of
    those is a split or reset; the latest such place of the leading branch first."""
    for b in order:
        for k in range(len(b.events) - 1, -1, -1):
            later = b.events[k]
            if known(e, later) or later["action"] in _BY_TIME:
                break
            if _check(e, data, b.before(k), organizers) is None and b.knew(e, known, k):
                return b, k
    return None


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
        # the lock that ran out (its time can be pushed a microsecond later, after a change made at that very time)
        return None if t.lock_expires is not None and t.lock_expires <= e["ts"] else "another lock"
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


def _apply(e, data: dict, t: TState) -> None:
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
        t.children = tuple(data.get("children") or ())  # made once the task's branches are settled
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
