"""The project's store: SQLite (the default, one file in the project folder) or PostgreSQL.

Every table and index of the project is defined here, in versioned
migrations (``MIGRATIONS[i]`` upgrades the schema from version ``i`` to
``i + 1``), written once in SQLite's dialect and translated for PostgreSQL
by :func:`pg_ddl`. Other modules hold the queries of their own concept and
write them once for both backends: ``?`` and ``:name`` parameters, standard
SQL (``string_agg``, ``greatest`` and ``COUNT(*) FILTER`` work on both; the
SQLite connection provides the first two as functions).

A PostgreSQL project lives in a schema of its own (``?schema=NAME`` in the
URL), so one database can hold many projects. A connection to it behaves like
a ``sqlite3`` connection in autocommit mode: ``execute``/``executemany`` with
the same placeholders, rows readable by index and by column name, and
``BEGIN IMMEDIATE`` (a write transaction serialised against every other
writer of the project, as SQLite does) taken with an advisory lock.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import urllib.parse
import zlib
from pathlib import Path
from typing import Any, Iterator

from .errors import MapathonError

BUSY_TIMEOUT_MS = 30_000
PG_SCHEMES = ("postgresql://", "postgres://")

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
    # 4 -> 5: volunteers' former names, kept by 'volunteer rename' and 'volunteer merge' (mapathon/tasks/volunteers.py)
    """
    CREATE TABLE volunteer_aliases (
        name_key     TEXT PRIMARY KEY,    -- names.key of a former name: typing it means this volunteer
        name         TEXT NOT NULL,       -- that name as it was written
        volunteer_id INTEGER NOT NULL REFERENCES volunteers (id)
    );
    CREATE INDEX volunteer_aliases_volunteer ON volunteer_aliases (volunteer_id);
    """,
    # 5 -> 6: field survey submissions (ODK Collect, imports), photos in <project>/survey/ (mapathon/survey/store.py)
    """
    CREATE TABLE survey_submissions (
        id             INTEGER PRIMARY KEY,      -- order of arrival
        instance_id    TEXT NOT NULL UNIQUE,     -- ODK's instanceID (uuid:...): sent twice, stored once
        form_id        TEXT NOT NULL,
        form_version   TEXT NOT NULL,
        surveyor       TEXT NOT NULL,
        received       TEXT NOT NULL,            -- UTC, ISO 8601
        lon REAL, lat REAL, accuracy_m REAL,     -- the GPS point, where given
        answers        TEXT NOT NULL DEFAULT '{}',  -- JSON: field -> answer
        tags           TEXT NOT NULL DEFAULT '{}',  -- JSON: the OpenStreetMap tags the answers map to
        picked_feature TEXT,                     -- "node/123": the existing feature the surveyor picked
        photos         TEXT NOT NULL DEFAULT '[]',  -- JSON: paths relative to the project folder
        village        TEXT
    );
    CREATE INDEX survey_submissions_village ON survey_submissions (village);
    """,
    # 6 -> 7: marks drawn on paper atlas pages and found on their photos (mapathon/scan/marks.py)
    """
    CREATE TABLE marks (
        id          INTEGER PRIMARY KEY,
        page        TEXT NOT NULL,        -- the atlas page (QR code's page id); a new photo of it replaces its marks
        village     TEXT,                 -- the village the mark lies in (or the page's)
        kind        TEXT NOT NULL,        -- point, line or polygon
        colour      TEXT NOT NULL,        -- the ink's name on the page's colour strip
        square      TEXT,                 -- reference square on the page, e.g. B3
        geom        BLOB NOT NULL,        -- WKB, lon/lat
        brought_by  TEXT,                 -- who brought the page back ('scan --as NAME')
        source      TEXT,                 -- the photo's file name
        scanned     TEXT NOT NULL         -- when (UTC)
    );
    CREATE INDEX marks_page ON marks (page);
    CREATE INDEX marks_village ON marks (village);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

# Every table of the schema, in an order that satisfies the foreign keys (see copy_data).
TABLES = ("meta", "areas", "volunteers", "volunteer_aliases", "tasks", "task_areas", "events", "contributions", "sync_conflicts",
          "room_sessions", "survey_submissions", "marks")
_ORDER = {"volunteer_aliases": "name_key", "tasks": "id", "task_areas": "task_id, area_id", "events": "seq", "meta": "key",
          "room_sessions": "token_hash"}


def copy_data(src, dst) -> dict[str, int]:
    """Copy every row of a project into an empty one of the same schema version (either backend).

    *src* is read in one snapshot; *dst* is written in one transaction. Returns rows per table.
    """
    if schema_version(src) != schema_version(dst):
        raise MapathonError("copy between projects of different schema versions")
    counts = {}
    src.execute("BEGIN")
    try:
        with transaction(dst):
            for table in TABLES:
                cur = src.execute(f"SELECT * FROM {table} ORDER BY {_ORDER.get(table, 'id')}")
                cols = [c[0] for c in cur.description]
                rows = [tuple(r) for r in cur.fetchall()]
                if rows:
                    dst.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                                    rows)
                counts[table] = len(rows)
            if dialect(dst) == "postgresql":  # identity columns continue after the copied ids
                for table, col in dst.execute(
                        "SELECT table_name, column_name FROM information_schema.columns "
                        "WHERE table_schema = current_schema() AND is_identity = 'YES'").fetchall():
                    dst.execute(f"SELECT setval(pg_get_serial_sequence(?, ?), "
                                f"COALESCE((SELECT MAX({col}) FROM {table}), 0) + 1, false)", (table, col))
    finally:
        src.execute("COMMIT")
    return counts


def is_url(target: str | Path | None) -> bool:
    """True for a PostgreSQL connection URL (``postgresql://…``)."""
    return isinstance(target, str) and target.startswith(PG_SCHEMES)


def dialect(conn) -> str:
    """``"sqlite"`` or ``"postgresql"``."""
    return "postgresql" if isinstance(conn, PgConnection) else "sqlite"


def connect(target: str | Path, *, create: bool = False):
    """Open the project database: a SQLite file path or a ``postgresql://`` URL.

    Transactions are explicit (see :func:`transaction`); the connection is in
    autocommit mode otherwise. An older schema is upgraded; a newer one is refused.
    """
    if is_url(target):
        return connect_pg(str(target), create=create)
    path = Path(target)
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
    conn.create_function("greatest", -1, _greatest, deterministic=True)
    conn.create_aggregate("string_agg", 2, _StringAgg)
    _check_version(conn, version, str(path))
    return conn


def _check_version(conn, version: int, label: str) -> None:
    if version > SCHEMA_VERSION:
        conn.close()
        raise MapathonError(
            f"{label}: made by a newer mapathon (schema {version}, this one knows {SCHEMA_VERSION}); upgrade mapathon"
        )
    if version < SCHEMA_VERSION:
        migrate(conn, version)


def _greatest(*values):
    present = [v for v in values if v is not None]
    return max(present) if present else None


class _StringAgg:
    """PostgreSQL's ``string_agg(value, separator)`` for SQLite."""

    def __init__(self):
        self.parts: list[str] = []
        self.sep = ","

    def step(self, value, sep):
        if value is not None:
            self.parts.append(str(value))
            self.sep = sep

    def finalize(self):
        return self.sep.join(self.parts) if self.parts else None


def schema_version(conn) -> int:
    """The schema version of an open project database."""
    if dialect(conn) == "sqlite":
        return conn.execute("PRAGMA user_version").fetchone()[0]
    return conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]


def migrate(conn, version: int) -> None:
    """Apply the migrations after *version*, each in its own transaction."""
    pg = dialect(conn) == "postgresql"
    for i in range(version, SCHEMA_VERSION):
        with transaction(conn):
            if pg and schema_version(conn) > i:  # another process upgraded it while we waited for the lock
                continue
            for stmt in _statements(pg_ddl(MIGRATIONS[i]) if pg else MIGRATIONS[i]):
                conn.execute(stmt)
            if pg:
                conn.execute("INSERT INTO schema_migrations (version, applied) VALUES (?, now()::text)", (i + 1,))
            else:
                conn.execute(f"PRAGMA user_version = {i + 1}")


def pg_ddl(script: str) -> str:
    """A migration written for SQLite, in PostgreSQL's dialect.

    Integer keys become identity columns (an explicit id, as tasks get, is still
    accepted), integers 64-bit, REAL double precision, BLOB bytea, and text compares
    byte by byte (``COLLATE "C"``), as in SQLite, so that time stamps, ids and names
    sort the same way on both backends.
    """
    script = re.sub(r"\bINTEGER PRIMARY KEY\b", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", script)
    script = re.sub(r"\bINTEGER\b", "BIGINT", script)
    script = re.sub(r"\bREAL\b", "DOUBLE PRECISION", script)
    script = re.sub(r"\bBLOB\b", "BYTEA", script)
    script = re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', script)
    return script.replace(" WITHOUT ROWID", "")


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
def transaction(conn, immediate: bool = True) -> Iterator[Any]:
    """A write transaction (``BEGIN IMMEDIATE``): all or nothing, serialised across processes."""
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


@contextlib.contextmanager
def savepoint(conn, name: str) -> Iterator[Any]:
    """All or nothing inside an open transaction (``SAVEPOINT``), as :func:`transaction` is for a whole one."""
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield conn
    except BaseException:
        conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
        conn.execute(f"RELEASE SAVEPOINT {name}")
        raise
    else:
        conn.execute(f"RELEASE SAVEPOINT {name}")


# -- PostgreSQL ------------------------------------------------------------------------------------

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def split_url(url: str) -> tuple[str, str | None]:
    """A ``postgresql://`` URL without its ``schema`` parameter, and that schema (or None)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    schema = None
    kept = []
    for k, v in query:
        if k == "schema":
            schema = v
        else:
            kept.append((k, v))
    if schema is not None and not _SCHEMA_RE.match(schema):
        raise MapathonError(f"{redact(url)}: schema {schema!r} must be lower-case letters, digits and _ "
                            f"(at most 63, not starting with a digit)")
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(kept))), schema


def with_schema(url: str, schema: str) -> str:
    """*url* naming the project's *schema*."""
    base, _ = split_url(url)
    parts = urllib.parse.urlsplit(base)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + [("schema", schema)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def redact(url: str) -> str:
    """*url* without its password (to print, or to write to a file)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))


def _pg_connect(url: str):
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        raise MapathonError("PostgreSQL needs the psycopg package: pip install 'psycopg[binary]'") from None
    base, _ = split_url(url)
    try:
        return psycopg.connect(base, autocommit=True, connect_timeout=10, application_name="mapathon")
    except psycopg.Error as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MapathonError(f"{redact(url)}: cannot connect to PostgreSQL ({first})") from None


def project_schemas(url: str) -> list[str]:
    """The schemas of the database at *url* that hold a mapathon project."""
    raw = _pg_connect(url)
    try:
        rows = raw.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'schema_migrations' "
            "ORDER BY table_schema").fetchall()
        return [r[0] for r in rows]
    finally:
        raw.close()


def schema_exists(url: str, schema: str) -> bool:
    raw = _pg_connect(url)
    try:
        return raw.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is not None
    finally:
        raw.close()


def connect_pg(url: str, *, create: bool = False) -> "PgConnection":
    """Open (with *create*: make) the project in the schema named by *url* (``?schema=NAME``)."""
    base, schema = split_url(url)
    if schema is None:
        found = project_schemas(url)
        what = f"this database holds {', '.join(found)}" if found else "this database holds no mapathon project"
        raise MapathonError(f"{redact(url)}: name the project with ?schema=NAME ({what})")
    raw = _pg_connect(url)
    conn = PgConnection(raw, schema, redact(with_schema(base, schema)))
    try:
        exists = raw.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is not None
        if not exists and not create:
            raise MapathonError(f"{conn.label}: no such project (no schema {schema}); "
                                f"create it with 'mapathon --db URL init'")
        if create:
            raw.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        raw.execute(f'SET search_path TO "{schema}"')
        raw.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied TEXT NOT NULL)")
        _check_version(conn, schema_version(conn), conn.label)
    except BaseException:
        raw.close()
        raise
    return conn


def drop_pg_project(url: str) -> None:
    """Remove a PostgreSQL project (its schema and everything in it)."""
    _, schema = split_url(url)
    if schema is None:
        raise MapathonError(f"{redact(url)}: name the project to drop with ?schema=NAME")
    raw = _pg_connect(url)
    try:
        raw.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        raw.close()


_TOKEN = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|\?|(?<!:):([A-Za-z_]\w*)|%""")
_translated: dict[str, str] = {}


def pg_sql(sql: str) -> str:
    """A query with SQLite's ``?`` / ``:name`` parameters in psycopg's ``%s`` / ``%(name)s`` style."""
    out = _translated.get(sql)
    if out is None:
        def sub(m: re.Match) -> str:
            t = m.group(0)
            if t == "?":
                return "%s"
            if t == "%" or t[0] == "'":
                return t.replace("%", "%%")
            if m.group(1):
                return f"%({m.group(1)})s"
            return t
        out = _translated[sql] = _TOKEN.sub(sub, sql)
    return out


class Row(tuple):
    """A result row readable by position and by column name, like ``sqlite3.Row``."""

    __slots__ = ()
    _index: dict[str, int] = {}

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                key = self._index[key]
            except KeyError:
                raise IndexError(f"No item with that key: {key}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


_row_classes: dict[tuple[str, ...], type] = {}


def _row_factory(cursor):
    names = tuple(c.name for c in cursor.description or ())
    cls = _row_classes.get(names)
    if cls is None:
        index: dict[str, int] = {}
        for i, n in enumerate(names):
            index.setdefault(n, i)
        cls = _row_classes[names] = type("Row", (Row,), {"__slots__": (), "_index": index})
    return cls


def _number_loader():
    from psycopg.adapt import Loader

    class NumericLoader(Loader):
        """numeric (what SUM of integers gives) as int or float, as SQLite gives them, not Decimal."""

        def load(self, data):
            text = bytes(data)
            return int(text) if text.lstrip(b"-").isdigit() else float(text)

    return NumericLoader


class PgConnection:
    """A PostgreSQL connection that speaks like the project's SQLite connection (see the module's text)."""

    dialect = "postgresql"

    def __init__(self, raw, schema: str, label: str):
        self.raw = raw
        self.schema = schema
        self.label = label
        raw.row_factory = _row_factory
        raw.adapters.register_loader("numeric", _number_loader())
        # one lock per project: writers queue for it as SQLite writers do for its file
        self._lock_key = zlib.crc32(schema.encode()) - (1 << 31)

    def execute(self, sql: str, params: Any = ()):
        head = sql.lstrip()[:16].upper()
        if head.startswith("BEGIN"):
            if head.startswith("BEGIN IMMEDIATE"):
                self.raw.execute("BEGIN")
                self.raw.execute("SELECT pg_advisory_xact_lock(%s, %s)", (0x6D61, self._lock_key))
            else:  # a read: every statement sees the same moment, as in a SQLite read transaction
                self.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            return self.raw.cursor()
        if head.startswith("PRAGMA"):
            raise MapathonError(f"{self.label}: SQLite-only statement on PostgreSQL: {sql.strip()[:60]}")
        return self.raw.execute(pg_sql(sql), params if params is not None else ())

    def executemany(self, sql: str, seq):
        cur = self.raw.cursor()
        cur.executemany(pg_sql(sql), list(seq) if not isinstance(seq, list) else seq)
        return cur

    def close(self) -> None:
        self.raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
