"""Progress of a project, computed as HOT's Tasking Manager does.

``mapped %`` = (MAPPED + LOCKED_FOR_VALIDATION + VALIDATED) / (tasks - BADIMAGERY)
``validated %`` = VALIDATED / (tasks - BADIMAGERY)

Split tasks are replaced by their children and are not counted.
A task that lies in two villages counts in both villages' rows, once overall.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime

from .. import events
from ..project import Project
from .lifecycle import BADIMAGERY, LOCKED_FOR_VALIDATION, MAPPED, SPLIT, STATES, VALIDATED, sweep

COUNTED_STATES = tuple(s for s in STATES if s != SPLIT)
NO_VILLAGE = "(outside villages)"


@dataclass
class Counts:
    name: str
    states: dict[str, int] = field(default_factory=lambda: {s: 0 for s in COUNTED_STATES})
    area_km2: float = 0.0
    marks: int = 0  # marks drawn on paper pages and brought back (mapathon.scan.marks)

    @property
    def total(self) -> int:
        return sum(self.states.values())

    @property
    def mappable(self) -> int:
        return self.total - self.states[BADIMAGERY]

    @property
    def mapped_pct(self) -> float:
        done = self.states[MAPPED] + self.states[LOCKED_FOR_VALIDATION] + self.states[VALIDATED]
        return 100.0 * done / self.mappable if self.mappable else 0.0

    @property
    def validated_pct(self) -> float:
        return 100.0 * self.states[VALIDATED] / self.mappable if self.mappable else 0.0

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "tasks": self.total,
            "area_km2": round(self.area_km2, 3),
            "states": dict(self.states),
            "mapped_pct": round(self.mapped_pct, 1),
            "validated_pct": round(self.validated_pct, 1),
            "marks": self.marks,
        }


@dataclass
class VolunteerStats:
    name: str
    roles: str
    mapped: int = 0  # tasks credited to them as mapper (MAPPED, under or after validation)
    validated: int = 0  # tasks they validated (accepted)
    invalidated: int = 0  # tasks they sent back
    locked_hours: float = 0.0  # total time they held locks
    holding: str | None = None  # the task they hold now


@dataclass
class Status:
    project: str
    generated: str
    overall: Counts
    villages: list[Counts]
    volunteers: list[VolunteerStats]
    expired: list[str]
    # sync between sites (mapathon/sync): changes from another site that lost when the logs were merged
    conflicts: list[dict] = field(default_factory=list)
    # tasks lying in two villages or more: counted in each of their rows, so the rows add up to more than overall
    shared: int = 0

    def as_dict(self) -> dict:
        return {
            "project": self.project,
            "generated": self.generated,
            "overall": self.overall.as_dict(),
            "villages": [v.as_dict() for v in self.villages],
            "volunteers": [asdict(v) | {"locked_hours": round(v.locked_hours, 2)} for v in self.volunteers],
            "expired_locks_released": self.expired,
            "sync_conflicts": self.conflicts,
            "tasks_in_several_villages": self.shared,
        }


def status(project: Project, now: datetime | None = None) -> Status:
    """Counts per state, per village and overall, and per-volunteer work."""
    expired = sweep(project, now)
    conn = project.conn
    overall = Counts("all")
    for state, n, area in conn.execute(
        "SELECT state, COUNT(*), SUM(area_m2) FROM tasks WHERE state != 'SPLIT' GROUP BY state"
    ):
        overall.states[state] = n
        overall.area_km2 += (area or 0) / 1e6
    villages: dict[str, Counts] = {v["name"]: Counts(v["name"]) for v in project.villages()}
    shared = 0
    if villages:
        for name, state, n, area in conn.execute(
            """SELECT a.name, t.state, COUNT(*), SUM(t.area_m2) FROM task_areas ta
                 JOIN tasks t ON t.id = ta.task_id JOIN areas a ON a.id = ta.area_id
                WHERE t.state != 'SPLIT' GROUP BY a.name, t.state"""
        ):
            villages[name].states[state] = n
            villages[name].area_km2 += (area or 0) / 1e6
        outside = Counts(NO_VILLAGE)
        for state, n, area in conn.execute(
            """SELECT state, COUNT(*), SUM(area_m2) FROM tasks t WHERE state != 'SPLIT'
                AND NOT EXISTS (SELECT 1 FROM task_areas ta WHERE ta.task_id = t.id) GROUP BY state"""
        ):
            outside.states[state] = n
            outside.area_km2 += (area or 0) / 1e6
        if outside.total:
            villages[NO_VILLAGE] = outside
        shared = conn.execute(
            """SELECT COUNT(*) FROM (SELECT ta.task_id FROM task_areas ta JOIN tasks t ON t.id = ta.task_id
                WHERE t.state != 'SPLIT' GROUP BY ta.task_id HAVING COUNT(*) > 1) AS several"""
        ).fetchone()[0]
    from ..scan.marks import marks_per_village

    for name, n in marks_per_village(conn).items():
        overall.marks += n
        if name in villages:
            villages[name].marks += n
    return Status(
        project.name,
        events.iso(now or events.utcnow()),
        overall,
        list(villages.values()),
        volunteer_stats(project, now),
        expired,
        _sync_conflicts(project),
        shared,
    )


def _sync_conflicts(project: Project) -> list[dict]:
    """Sync conflicts, listed by mapathon/sync (see docs/sync.md)."""
    from ..sync import list_conflicts

    return list_conflicts(project)


def volunteer_stats(project: Project, now: datetime | None = None) -> list[VolunteerStats]:
    conn = project.conn
    from .. import names
    from .volunteers import current_names, list_all

    stats = {v.name: VolunteerStats(v.name, v.roles) for v in list_all(project)}
    now_called = current_names(conn)  # the log keeps the names changes were made under (renames, merges)

    def who(actor: str) -> str | None:
        return now_called.get(names.key(actor))

    for name, n in conn.execute(
        """SELECT v.name, COUNT(*) FROM tasks t JOIN volunteers v ON v.id = t.mapped_by
            WHERE t.state IN ('MAPPED', 'LOCKED_FOR_VALIDATION', 'VALIDATED') GROUP BY v.name"""
    ):
        stats[name].mapped = n
    for actor, action, n in conn.execute(
        "SELECT actor, action, COUNT(*) FROM events WHERE action IN ('validate', 'invalidate') GROUP BY actor, action"
    ):
        name = who(actor)
        if name in stats:
            if action == "validate":
                stats[name].validated += n
            else:
                stats[name].invalidated += n
    stamp = events.iso(now or events.utcnow())
    hours: dict[str, float] = defaultdict(float)
    for actor, ts, next_ts, data in conn.execute(
        # a lock ends at the task's next event, but never after it expired (the expiry is only
        # recorded by the next command, possibly hours later)
        """SELECT actor, ts, next_ts, data FROM (
               SELECT actor, action, ts, data,
                      LEAD(ts) OVER (PARTITION BY task ORDER BY ts, lamport, site, id) AS next_ts
                 FROM events e WHERE task IS NOT NULL
                  -- in the order the logs are replayed (mapathon.sync), leaving out changes that lost there
                  AND NOT EXISTS (SELECT 1 FROM sync_conflicts c WHERE c.event_id = e.id)) AS ordered
            WHERE action LIKE 'claim.%'"""
    ):
        name = who(actor)
        if name in stats:
            expires = (json.loads(data).get("expires") if data else None) or stamp
            end = min(datetime.fromisoformat(next_ts or stamp), datetime.fromisoformat(expires))
            hours[name] += max(0.0, (end - datetime.fromisoformat(ts)).total_seconds() / 3600)
    for name, h in hours.items():
        stats[name].locked_hours = h
    for name, key, tid in conn.execute(
        "SELECT v.name, t.key, t.id FROM tasks t JOIN volunteers v ON v.id = t.locked_by"
    ):
        stats[name].holding = f"{tid} ({key})"
    return sorted(stats.values(), key=lambda s: (-s.mapped, -s.validated, s.name.casefold()))



def summary(project: Project) -> dict:
    """The project in one dict (``mapathon info --json``): name, folder, area, villages, grid, tasks."""
    from .. import geo
    from .lifecycle import count_tasks

    aoi = project.aoi_geom()
    grid = project.conn.execute(
        "SELECT data FROM events WHERE action = 'grid.create' ORDER BY seq DESC LIMIT 1").fetchone()
    return {
        "name": project.name,
        "folder": str(project.path),
        "project_id": project.id,
        "created": project.meta("created"),
        "aoi_km2": round(geo.area_m2(aoi) / 1e6, 2),
        "aoi_bounds": [round(v, 6) for v in aoi.bounds],
        "villages": [v["name"] for v in project.villages()],
        "grid": json.loads(grid[0]) if grid else None,
        "tasks": count_tasks(project),
    }
