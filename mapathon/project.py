"""A mapathon project: a folder holding one SQLite file of state.

The folder travels on a USB stick: everything the project knows is inside
it (``mapathon.sqlite``, and later ``contributions/`` and ``imagery/``).

On a shared server the state can live in PostgreSQL instead (``--db`` /
``$MAPATHON_DB``, see :mod:`.store`): the folder then holds the files
(contributions, imagery, merged data) and ``mapathon.postgresql``, one line
naming the database and schema, so later commands in the folder find it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

import shapely

from . import events, fsutil, names, store
from .aoi import AOI
from .errors import MapathonError, UsageMistake

DB_NAME = "mapathon.sqlite"
ENV_VAR = "MAPATHON_PROJECT"
DB_ENV = "MAPATHON_DB"
POINTER = "mapathon.postgresql"  # in a project folder whose state lives in PostgreSQL: the URL (no password)


@dataclass
class Project:
    path: Path
    conn: sqlite3.Connection  # or a store.PgConnection, which speaks the same way
    site: str
    db_url: str | None = None  # the PostgreSQL project (no password), None for the folder's SQLite file

    # -- metadata ---------------------------------------------------------
    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @property
    def name(self) -> str:
        return self.meta("name", self.path.name)

    @property
    def lang(self) -> str:
        """The language of what volunteers and the commune see ('en' or 'fr', see :mod:`.i18n`)."""
        return self.meta("lang", "en")

    @property
    def id(self) -> str:
        return self.meta("project_id")

    @property
    def db_path(self) -> Path:
        """The SQLite file (see :attr:`db_url` for a PostgreSQL project)."""
        return self.path / DB_NAME

    @property
    def db_label(self) -> str:
        """Where the state is, for messages: the SQLite file or the PostgreSQL URL."""
        return self.db_url or str(self.db_path)

    def transaction(self):
        return store.transaction(self.conn)

    def record(self, **kw) -> str:
        """Append an event (inside the caller's transaction)."""
        return events.record(self.conn, site=self.site, **kw)

    # -- areas --------------------------------------------------------------
    def aoi_geom(self):
        row = self.conn.execute("SELECT geom FROM areas WHERE kind = 'aoi'").fetchone()
        return shapely.from_wkb(row[0])

    def villages(self) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM areas WHERE kind != 'aoi' ORDER BY name").fetchall()

    def areas(self) -> list[sqlite3.Row]:
        """Every area (the area of interest and the villages): kind, name, geom (WKB), by kind and name."""
        return self.conn.execute("SELECT kind, name, geom FROM areas ORDER BY kind, name").fetchall()

    def village(self, name: str) -> sqlite3.Row:
        """A village (named sub-area) by name: see :func:`mapathon.selection.match_village`."""
        from .selection import match_village

        rows = self.villages()
        found = match_village([r["name"] for r in rows], name)
        return next(r for r in rows if r["name"] == found)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def resolve_dir(option: str | os.PathLike | None) -> Path:
    """The project folder: --project, else $MAPATHON_PROJECT, else the current folder."""
    if option:
        return Path(option)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return Path.cwd()


def db_option(db: str | None = None) -> str | None:
    """The PostgreSQL URL asked for: *db* (``--db``), else ``$MAPATHON_DB``, else None (SQLite)."""
    url = db or os.environ.get(DB_ENV) or None
    if url and not store.is_url(url):
        raise UsageMistake("expected a PostgreSQL URL, postgresql://[user@]host[:port]/database"
                           f"[?schema=NAME] (leave it out to use the project folder's {DB_NAME})", field="db", value=url)
    return url


def locate(path: str | os.PathLike | None = None, db: str | None = None) -> tuple[Path, str | None]:
    """The project folder and, for a PostgreSQL project, its URL (else None).

    A URL naming a schema is used as it is. Otherwise the folder decides: its
    ``mapathon.postgresql`` names the schema (on the URL's server when one is given), else
    its ``mapathon.sqlite`` is the project. A URL without a schema only matters to ``init``.
    """
    folder = resolve_dir(path)
    url = db_option(db)
    if url and store.split_url(url)[1] is not None:
        return folder, url
    pointer = folder / POINTER
    if pointer.is_file():
        noted = pointer.read_text(encoding="utf-8").strip()
        if not store.is_url(noted) or store.split_url(noted)[1] is None:
            raise MapathonError(f"{pointer}: expected one line, a postgresql:// URL with ?schema=NAME")
        return folder, store.with_schema(url, store.split_url(noted)[1]) if url else noted
    return folder, None


def is_project(path: str | os.PathLike | None = None, db: str | None = None) -> bool:
    """Whether *path* (see :func:`resolve_dir`) is a project: its SQLite file, or a PostgreSQL project."""
    folder, url = locate(path, db)
    return url is not None or (folder / DB_NAME).is_file()


def open_project(path: str | os.PathLike | None = None, db: str | None = None) -> Project:
    """Open an existing project (see :func:`locate`)."""
    folder, url = locate(path, db)
    if url:
        conn = store.connect(url)
        label = conn.label
    else:
        dbfile = folder / DB_NAME
        if not dbfile.is_file():
            raise MapathonError(
                f"{folder}: not a mapathon project (no {DB_NAME}); create one with 'mapathon init' "
                f"or point to it with --project / ${ENV_VAR} (or, for PostgreSQL, --db URL?schema=NAME)"
            )
        conn = store.connect(dbfile)
        label = str(dbfile)
    site = conn.execute("SELECT value FROM meta WHERE key = 'site_id'").fetchone()
    if site is None:
        conn.close()
        raise MapathonError(f"{label}: incomplete project database (no site id)")
    return Project(folder, conn, site[0], conn.label if url else None)


def init_project(path: str | os.PathLike, name: str, aoi: AOI, *, actor: str = "organizer",
                 db: str | None = None, lang: str = "en") -> Project:
    """Create a project folder from an AOI. Refuses a folder that already holds a project.

    With *db* (or ``$MAPATHON_DB``) the state goes to PostgreSQL, in the URL's schema or
    in a new one named after the project.
    """
    folder = Path(path)
    url = db_option(db)
    if (folder / DB_NAME).exists() or (folder / POINTER).exists():
        raise MapathonError(f"{folder}: already a mapathon project "
                            f"({DB_NAME if (folder / DB_NAME).exists() else POINTER} exists)")
    if folder.exists() and not folder.is_dir():
        raise MapathonError(f"{folder}: exists and is not a folder")
    if not name.strip():
        raise UsageMistake("the project needs a name", field="name", value=None)
    if url:
        return _init_pg(folder, url, name, aoi, actor, lang)
    folder.mkdir(parents=True, exist_ok=True)
    tmp_db = folder / f".{DB_NAME}.init"
    if tmp_db.exists():
        tmp_db.unlink()
    conn = store.connect(tmp_db, create=True)
    try:
        _fill(conn, name, aoi, actor, lang)
        conn.close()
        # WAL side files belong to the temporary name; checkpointed on close, so a rename is safe.
        for suffix in ("-wal", "-shm"):
            side = Path(str(tmp_db) + suffix)
            if side.exists():
                side.unlink()
        os.replace(tmp_db, folder / DB_NAME)
    except BaseException:
        conn.close()
        for f in (tmp_db, Path(str(tmp_db) + "-wal"), Path(str(tmp_db) + "-shm")):
            if f.exists():
                f.unlink()
        raise
    return open_project(folder)


def new_pg_schema(url: str, name: str) -> str:
    """*url* naming a schema for a new project: the URL's own, else a new one named after *name*.

    Refuses a schema that exists: a project is never created over another.
    """
    schema = store.split_url(url)[1]
    if schema is None:
        base = names.slug(name).replace("-", "_")[:50]
        base = base if base[0].isalpha() else f"p_{base}"
        schema = f"{base}_{uuid.uuid4().hex[:6]}"
    url = store.with_schema(url, schema)
    if store.schema_exists(url, schema):
        raise MapathonError(f"{store.redact(url)}: schema {schema} already exists; choose another ?schema=NAME")
    return url


def write_pointer(folder: Path, url: str) -> None:
    """Note in *folder* where its PostgreSQL project is (no password), for the next commands."""
    with fsutil.atomic_path(folder / POINTER) as tmp:
        tmp.write_text(store.redact(url) + "\n", encoding="utf-8")


def _init_pg(folder: Path, url: str, name: str, aoi: AOI, actor: str, lang: str = "en") -> Project:
    url = new_pg_schema(url, name)
    conn = store.connect(url, create=True)
    try:
        _fill(conn, name, aoi, actor, lang)
        conn.close()
        folder.mkdir(parents=True, exist_ok=True)
        write_pointer(folder, url)
    except BaseException:
        conn.close()
        store.drop_pg_project(url)
        raise
    return open_project(folder, url)


def _fill(conn, name: str, aoi: AOI, actor: str, lang: str = "en") -> None:
    """The new project's metadata, area and villages, and its first event, in one transaction."""
    site = str(uuid.uuid4())
    project = Project(Path("."), conn, site)
    with project.transaction():
        for k, v in {
            "name": name.strip(),
            "project_id": str(uuid.uuid4()),
            "site_id": site,
            "created": events.iso(events.utcnow()),
            "aoi_source": Path(aoi.source).name,
            "lang": lang,
            "sync_key": os.urandom(32).hex(),  # signs sync bundles (mapathon/sync/bundle.py); copied by sync clone
        }.items():
            project.set_meta(k, v)
        conn.execute("INSERT INTO areas (kind, name, geom) VALUES ('aoi', NULL, ?)", (shapely.to_wkb(aoi.geom),))
        conn.executemany(
            "INSERT INTO areas (kind, name, lon, lat, props, geom) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    v.kind,
                    v.name,
                    v.point[0] if v.point else None,
                    v.point[1] if v.point else None,
                    json.dumps(v.props, ensure_ascii=False, default=str),
                    shapely.to_wkb(v.geom),
                )
                for v in aoi.villages
            ],
        )
        project.record(
            actor=actor,
            action="project.init",
            data={"name": name.strip(), "aoi": Path(aoi.source).name, "villages": [v.name for v in aoi.villages]},
        )
