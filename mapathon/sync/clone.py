"""A copy of the project for another site (``mapathon sync clone``).

The copy holds everything the project folder holds (the database, submitted
contributions and, unless left out, the imagery cache) and gets a site id of
its own, so that its changes can later be told apart from the original's and
merged with them (:mod:`.bundle`). Copy a project after gridding it: sites can
only exchange changes about the same grid.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from pathlib import Path

from .. import store
from ..errors import MapathonError
from ..project import DB_NAME, Project, open_project

IMAGERY_DIR = "imagery"


def clone_project(project: Project, dest: str | os.PathLike, *, imagery: bool = True,
                  site_name: str | None = None) -> Project:
    """Copy *project* into the folder *dest* (new or empty) with a new site id; returns the copy, open."""
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise MapathonError(f"{dest}: exists and is not an empty folder; give a new folder for the copy")
    if dest.resolve() == project.path.resolve() or project.path.resolve() in dest.resolve().parents:
        raise MapathonError(f"{dest}: the copy cannot go inside the project folder {project.path}")
    made = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        for item in sorted(project.path.iterdir()):
            if item.name.startswith(DB_NAME) or item.name.startswith(f".{DB_NAME}"):
                continue
            if item.name == IMAGERY_DIR and not imagery:
                continue
            if item.is_dir():
                shutil.copytree(item, dest / item.name, symlinks=True)
            elif item.is_file():
                shutil.copy2(item, dest / item.name)
        tmp = dest / f".{DB_NAME}.clone"
        target = sqlite3.connect(tmp)
        try:
            project.conn.backup(target)  # a consistent copy, even while others write
        finally:
            target.close()
        conn = store.connect(tmp)
        try:
            new_site = str(uuid.uuid4())
            old_site = project.site
            with store.transaction(conn):
                conn.execute("UPDATE meta SET value = ? WHERE key = 'site_id'", (new_site,))
                conn.execute("DELETE FROM meta WHERE key = 'site_name'")
                if site_name:
                    conn.execute("INSERT INTO meta (key, value) VALUES ('site_name', ?)", (site_name.strip(),))
                if _has_table(conn, "room_sessions"):
                    conn.execute("DELETE FROM room_sessions")  # sign-ins belong to the original's room server
                from .. import events

                events.record(conn, site=new_site, actor="organizer", action="site.clone",
                              data={"from_site": old_site, "site_name": site_name})
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        for suffix in ("-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
        os.replace(tmp, dest / DB_NAME)
    except BaseException:
        if made:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            for item in dest.iterdir():
                shutil.rmtree(item) if item.is_dir() else item.unlink()
        raise
    return open_project(dest)


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None
