"""The append-only event log.

Every change of project state is recorded as an event in the same
transaction as the change itself. Events carry a globally unique id, the
site that made them and a Lamport clock, so that copies of a project kept
at different sites can later exchange and merge their logs.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: datetime) -> str:
    """UTC ISO 8601 with microseconds and a Z: sortable as text."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Event:
    seq: int
    id: str
    site: str
    lamport: int
    ts: str
    actor: str
    action: str
    task: str | None
    from_state: str | None
    to_state: str | None
    comment: str | None
    data: dict | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Event":
        d = dict(row)
        d["data"] = json.loads(d["data"]) if d["data"] else None
        return cls(**d)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def record(
    conn: sqlite3.Connection,
    *,
    site: str,
    actor: str,
    action: str,
    task: str | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    comment: str | None = None,
    data: dict | None = None,
    ts: datetime | None = None,
) -> str:
    """Append one event; the caller holds the write transaction. Returns the event id."""
    eid = str(uuid.uuid4())
    conn.execute(
        """INSERT INTO events (id, site, lamport, ts, actor, action, task, from_state, to_state, comment, data)
           VALUES (?, ?, (SELECT COALESCE(MAX(lamport), 0) + 1 FROM events), ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            eid,
            site,
            iso(ts or utcnow()),
            actor,
            action,
            task,
            from_state,
            to_state,
            comment,
            json.dumps(data, ensure_ascii=False, sort_keys=True) if data else None,
        ),
    )
    return eid


def record_many(conn: sqlite3.Connection, rows: list[dict], *, site: str) -> None:
    """Append many events at once (same fields as :func:`record`), in order."""
    if not rows:
        return
    start = conn.execute("SELECT COALESCE(MAX(lamport), 0) FROM events").fetchone()[0]
    now = iso(utcnow())
    conn.executemany(
        """INSERT INTO events (id, site, lamport, ts, actor, action, task, from_state, to_state, comment, data)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            (
                str(uuid.uuid4()),
                site,
                start + i + 1,
                r.get("ts") or now,
                r["actor"],
                r["action"],
                r.get("task"),
                r.get("from_state"),
                r.get("to_state"),
                r.get("comment"),
                json.dumps(r["data"], ensure_ascii=False, sort_keys=True) if r.get("data") else None,
            )
            for i, r in enumerate(rows)
        ],
    )


def task_events(conn: sqlite3.Connection, keys: list[str]) -> list[Event]:
    """The events of some tasks, oldest first."""
    marks = ",".join("?" * len(keys))
    rows = conn.execute(f"SELECT * FROM events WHERE task IN ({marks}) ORDER BY seq", keys).fetchall()
    return [Event.from_row(r) for r in rows]
