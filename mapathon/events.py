"""The append-only event log.

Every change of project state is recorded as an event in the same
transaction as the change itself. Events carry a globally unique id, the
site that made them and a Lamport clock, so that copies of a project kept
at different sites can later exchange and merge their logs.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: datetime) -> str:
    """UTC ISO 8601 with microseconds and a Z: sortable as text."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,6}Z")


def parse_iso(text: str) -> datetime:
    """The moment written by :func:`iso` (a ValueError for any other text). Checked by a pattern and read
    by ``fromisoformat``: ten times faster than ``strptime``, which a busy room server called for every
    event it wrote."""
    if not isinstance(text, str) or not _ISO.fullmatch(text):
        raise ValueError(f"time data {text!r} does not match format '%Y-%m-%dT%H:%M:%S.%fZ'")
    return datetime.fromisoformat(text)


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


def causal_ts(conn: sqlite3.Connection, ts: datetime | None = None) -> str:
    """The time stamp of a new event: *ts* (default now), but always after every task change
    this copy of the project already holds (a hybrid logical clock).

    Sites' clocks disagree: a validation made in Bamako on a clock running an hour late,
    right after importing Paris's "done", must still come after that "done" when the logs
    are merged and replayed in time order (mapathon.sync).
    """
    stamp = iso(ts or utcnow())
    # task changes are what sites replay in time order (mapathon.sync), so those set the clock
    row = conn.execute("SELECT MAX(ts) FROM events WHERE task IS NOT NULL").fetchone()
    if row and row[0] and row[0] >= stamp:
        stamp = iso(parse_iso(row[0]) + timedelta(microseconds=1))
    return stamp


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
    return record_many(conn, site, [dict(actor=actor, action=action, task=task, from_state=from_state,
                                         to_state=to_state, comment=comment, data=data)], ts)[0]


def record_many(conn: sqlite3.Connection, site: str, items: list[dict], ts: datetime | None = None) -> list[str]:
    """Append events in this order, one statement for all (the caller holds the write transaction).
    Each item has the keyword arguments of :func:`record` but *ts*; their time stamps follow one another
    from :func:`causal_ts`. Returns the event ids."""
    if not items:
        return []
    stamp = causal_ts(conn, ts)
    rows, ids = [], []
    for i, it in enumerate(items):
        if i:  # strictly after the one before, as if recorded one by one
            stamp = iso(parse_iso(stamp) + timedelta(microseconds=1))
        eid = str(uuid.uuid4())
        ids.append(eid)
        data = it.get("data")
        rows.append((eid, site, stamp, it["actor"], it["action"], it.get("task"), it.get("from_state"),
                     it.get("to_state"), it.get("comment"),
                     json.dumps(data, ensure_ascii=False, sort_keys=True) if data else None))
    conn.executemany(
        """INSERT INTO events (id, site, lamport, ts, actor, action, task, from_state, to_state, comment, data)
           VALUES (?, ?, (SELECT COALESCE(MAX(lamport), 0) + 1 FROM events), ?, ?, ?, ?, ?, ?, ?, ?)""",
        rows,
    )
    return ids


def task_events(conn: sqlite3.Connection, keys: list[str]) -> list[Event]:
    """The events of some tasks, oldest first."""
    marks = ",".join("?" * len(keys))
    rows = conn.execute(f"SELECT * FROM events WHERE task IN ({marks}) ORDER BY seq", keys).fetchall()
    return [Event.from_row(r) for r in rows]
