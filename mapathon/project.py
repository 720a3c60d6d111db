"""A mapathon project: a folder holding one SQLite file of state.

The folder travels on a USB stick: everything the project knows is inside
it (``mapathon.sqlite``, and later ``contributions/`` and ``imagery/``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

import shapely

from . import events, names, store
from .aoi import AOI
from .errors import MapathonError

DB_NAME = "mapathon.sqlite"
ENV_VAR = "MAPATHON_PROJECT"


@dataclass
class Project:
    path: Path
    conn: sqlite3.Connection
    site: str

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
    def id(self) -> str:
        return self.meta("project_id")

    @property
    def db_path(self) -> Path:
        return self.path / DB_NAME

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

    def village(self, name: str) -> sqlite3.Row:
        """A village (named sub-area) by name, ignoring case, accents and extra spaces."""
        rows = self.villages()
        wanted = names.key(name)
        for row in rows:
            if names.key(row["name"]) == wanted:
                return row
        if not rows:
            raise MapathonError(f"--village {name}: this project has no named villages")
        close = names.suggest(name, [r["name"] for r in rows])
        hint = f"did you mean {close}? " if close else ""
        raise MapathonError(f"--village {name}: no such village; {hint}(villages: {', '.join(r['name'] for r in rows)})")

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


def open_project(path: str | os.PathLike | None = None) -> Project:
    """Open an existing project folder (see :func:`resolve_dir`)."""
    folder = resolve_dir(path)
    db = folder / DB_NAME
    if not db.is_file():
        raise MapathonError(
            f"{folder}: not a mapathon project (no {DB_NAME}); create one with 'mapathon init' "
            f"or point to it with --project / ${ENV_VAR}"
        )
    conn = store.connect(db)
    site = conn.execute("SELECT value FROM meta WHERE key = 'site_id'").fetchone()
    if site is None:
        conn.close()
        raise MapathonError(f"{db}: incomplete project database (no site id)")
    return Project(folder, conn, site[0])


def init_project(path: str | os.PathLike, name: str, aoi: AOI, *, actor: str = "organizer") -> Project:
    """Create a project folder from an AOI. Refuses a folder that already holds a project."""
    folder = Path(path)
    if (folder / DB_NAME).exists():
        raise MapathonError(f"{folder}: already a mapathon project ({DB_NAME} exists)")
    if folder.exists() and not folder.is_dir():
        raise MapathonError(f"{folder}: exists and is not a folder")
    if not name.strip():
        raise MapathonError("--name: the project needs a name")
    folder.mkdir(parents=True, exist_ok=True)
    tmp_db = folder / f".{DB_NAME}.init"
    if tmp_db.exists():
        tmp_db.unlink()
    conn = store.connect(tmp_db, create=True)
    site = str(uuid.uuid4())
    project = Project(folder, conn, site)
    try:
        with project.transaction():
            for k, v in {
                "name": name.strip(),
                "project_id": str(uuid.uuid4()),
                "site_id": site,
                "created": events.iso(events.utcnow()),
                "aoi_source": Path(aoi.source).name,
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
