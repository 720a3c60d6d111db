"""The project's SQLite store: connection settings, schema and migrations.

Every table and index of the project is defined here, in versioned
migrations (``MIGRATIONS[i]`` upgrades the schema from version ``i`` to
``i + 1``). Other modules hold the queries of their own concept.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Iterator

from .errors import MapathonError

BUSY_TIMEOUT_MS = 30_000

MIGRATIONS: list[str] = [
    # 0 -> 1: the foundation.
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    -- The AOI outline and its named sub-areas (villages).
    CREATE TABLE areas (
        id     INTEGER PRIMARY KEY,
        kind   TEXT NOT NULL CHECK (kind IN ('aoi', 'village', 'zone')),
        name   TEXT,
        lon    REAL,            -- village centre, where known
        lat    REAL,
        props  TEXT NOT NULL DEFAULT '{}',
        geom   BLOB NOT NULL    -- WKB, WGS84
    );
    CREATE UNIQUE INDEX areas_name ON areas (name) WHERE kind != 'aoi';

    CREATE TABLE volunteers (
        id           INTEGER PRIMARY KEY,
        name         TEXT NOT NULL,
        name_key     TEXT NOT NULL UNIQUE,         -- names.key(name): no case, accents or extra spaces
        osm_user     TEXT,
        is_validator INTEGER NOT NULL DEFAULT 0,
        is_organizer INTEGER NOT NULL DEFAULT 0,
        created      TEXT NOT NULL
    );

    CREATE TABLE tasks (
        id           INTEGER PRIMARY KEY,          -- the number shown to people
        key          TEXT NOT NULL UNIQUE,         -- stable address: z/x/y, or grid/i/j, or parent key + quadrant
        z INTEGER, x INTEGER, y INTEGER,           -- tile address where the task is a tile
        parent_id    INTEGER REFERENCES tasks (id),
        state        TEXT NOT NULL DEFAULT 'READY',
        unlock_state TEXT,                         -- state to return to when the lock ends without a result
        locked_by    INTEGER REFERENCES volunteers (id),
        lock_expires TEXT,
        mapped_by    INTEGER REFERENCES volunteers (id),
        validated_by INTEGER REFERENCES volunteers (id),
        area_m2      REAL NOT NULL,
        minx REAL NOT NULL, miny REAL NOT NULL,    -- bounding box, WGS84
        maxx REAL NOT NULL, maxy REAL NOT NULL,
        geom         BLOB NOT NULL                 -- WKB, WGS84
    );
    CREATE INDEX tasks_state ON tasks (state);
    CREATE INDEX tasks_lock ON tasks (lock_expires) WHERE lock_expires IS NOT NULL;
    CREATE INDEX tasks_locked_by ON tasks (locked_by) WHERE locked_by IS NOT NULL;
    CREATE INDEX tasks_tile ON tasks (z, x, y) WHERE z IS NOT NULL;
    CREATE INDEX tasks_parent ON tasks (parent_id) WHERE parent_id IS NOT NULL;  -- foreign-key checks on delete
    CREATE TABLE task_areas (
        task_id INTEGER NOT NULL REFERENCES tasks (id),
        area_id INTEGER NOT NULL REFERENCES areas (id),
        PRIMARY KEY (task_id, area_id)
    ) WITHOUT ROWID;
    CREATE INDEX task_areas_area ON task_areas (area_id);

    -- Append-only log: every state change, written in the same transaction as the state.
    CREATE TABLE events (
        seq        INTEGER PRIMARY KEY,   -- local order of arrival
        id         TEXT NOT NULL UNIQUE,  -- globally unique (uuid4)
        site       TEXT NOT NULL,         -- the site (project copy) that made it
        lamport    INTEGER NOT NULL,      -- logical clock, for ordering across sites
        ts         TEXT NOT NULL,         -- UTC, ISO 8601
        actor      TEXT NOT NULL,
        action     TEXT NOT NULL,
        task       TEXT,                  -- task key, when about a task
        from_state TEXT,
        to_state   TEXT,
        comment    TEXT,
        data       TEXT                   -- JSON, action-specific
    );
    CREATE INDEX events_task ON events (task, seq);
    CREATE INDEX events_actor ON events (actor);
    """,
    # 1 -> 2: volunteers' OSM files collected with 'mapathon submit' (mapathon/osm/submit.py).
    """
    CREATE TABLE contributions (
        id            INTEGER PRIMARY KEY,          -- submission order (the merge's input order)
        sha256        TEXT NOT NULL UNIQUE,         -- of the bytes; the same bytes are recorded once
        volunteer_id  INTEGER NOT NULL REFERENCES volunteers (id),
        task_id       INTEGER,                      -- the task number at submission (no FK: grids can be redone)
        task_key      TEXT,                         -- and its stable address
        submitted     TEXT NOT NULL,                -- UTC, ISO 8601
        size          INTEGER NOT NULL,             -- bytes
        original_name TEXT NOT NULL,                -- the file name as the volunteer gave it
        format        TEXT NOT NULL,                -- osm, osc or pbf, with .gz / .bz2
        stored_name   TEXT NOT NULL,                -- file in <project>/contributions/
        objects       INTEGER NOT NULL,
        counts        TEXT NOT NULL DEFAULT '{}'    -- JSON: create / modify / delete / unchanged objects
    );
    CREATE INDEX contributions_volunteer ON contributions (volunteer_id);
    CREATE INDEX contributions_task ON contributions (task_key) WHERE task_key IS NOT NULL;
    """,
    # 2 -> 3: sync between sites and the room server (mapathon/sync, mapathon/server).
    """
    -- the next event's clock value is MAX(lamport) + 1: keep that a lookup
    CREATE INDEX events_lamport ON events (lamport);
    -- changes another site made that could not be applied once the logs were merged (mapathon/sync/replay.py)
    CREATE TABLE sync_conflicts (
        id        INTEGER PRIMARY KEY,
        event_id  TEXT NOT NULL UNIQUE,   -- the change that lost (it stays in the events table)
        task      TEXT NOT NULL,          -- task key
        actor     TEXT NOT NULL,
        action    TEXT NOT NULL,
        site      TEXT NOT NULL,          -- where it was made
        ts        TEXT NOT NULL,          -- when it was made (UTC)
        reason    TEXT NOT NULL,
        winner    TEXT,                   -- the volunteer whose change holds the task, where there is one
        noticed   TEXT NOT NULL           -- when this site found it (UTC)
    );
    -- room server sign-ins: a name typed in a browser is bound to that browser (mapathon/server)
    CREATE TABLE room_sessions (
        token_hash TEXT PRIMARY KEY,      -- sha256 of the browser's token (the token itself is not stored)
        volunteer  TEXT NOT NULL,
        created    TEXT NOT NULL
    );
    CREATE INDEX room_sessions_volunteer ON room_sessions (volunteer);
    """,
    # 3 -> 4: event times are hybrid logical clocks (events.record): the newest time is looked up often.
    """
    CREATE INDEX events_task_ts ON events (ts) WHERE task IS NOT NULL;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: str | Path, *, create: bool = False) -> sqlite3.Connection:
    """Open the project database with the project's settings (WAL, busy timeout, FKs).

    Transactions are explicit (see :func:`transaction`); the connection is in
    autocommit mode otherwise.
    """
    path = Path(path)
    if not create and not path.exists():
        raise MapathonError(f"{path}: no project database")
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as e:
        raise MapathonError(f"{path}: not a mapathon project database ({e})") from None
    if version > SCHEMA_VERSION:
        conn.close()
        raise MapathonError(
            f"{path}: made by a newer mapathon (schema {version}, this one knows {SCHEMA_VERSION}); upgrade mapathon"
        )
    if version < SCHEMA_VERSION:
        migrate(conn, version)
    return conn


def migrate(conn: sqlite3.Connection, version: int) -> None:
    """Apply the migrations after *version*, each in its own transaction."""
    for i in range(version, SCHEMA_VERSION):
        with transaction(conn):
            for stmt in _statements(MIGRATIONS[i]):
                conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {i + 1}")


def _statements(script: str) -> list[str]:
    out, buf = [], []
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        buf.append(line)
        joined = "\n".join(buf)
        if sqlite3.complete_statement(joined):
            if joined.strip():
                out.append(joined.strip())
            buf = []
    return out


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, immediate: bool = True) -> Iterator[sqlite3.Connection]:
    """A write transaction (``BEGIN IMMEDIATE``): all or nothing, serialised across processes."""
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")
