"""A copy of the project for another site (``mapathon sync clone``).

The copy holds everything the project folder holds (the database, submitted
contributions and, unless left out, the imagery cache) and gets a site id of
its own, so that its changes can later be told apart from the original's and
merged with them (:mod:`.bundle`). Copy a project after gridding it: sites can
only exchange changes about the same grid.

Either side may be on PostgreSQL: a shared server's project copied to a folder
(SQLite) for a site without internet, or a folder's project copied to a shared
server (``to_db``).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from .. import events, store
from ..errors import MapathonError, UsageMistake
from ..project import DB_NAME, POINTER, Project, new_pg_schema, open_project, write_pointer
from . import reservations

IMAGERY_DIR = "imagery"
_EVENT_COLUMNS = ("id", "site", "lamport", "ts", "actor", "action", "task", "from_state", "to_state", "comment", "data")


def clone_project(project: Project, dest: str | os.PathLike, *, imagery: bool = True,
                  site_name: str | None = None, to_db: str | None = None, villages: list[str] = (),
                  tasks: list[str] = ()) -> Project:
    """Copy *project* into the folder *dest* (new or empty) with a new site id; returns the copy, open.

    With *to_db* (a ``postgresql://`` URL) the copy's state goes to PostgreSQL, in the URL's
    schema or a new one; else to ``dest/mapathon.sqlite``. *villages* and *tasks* are reserved
    for the new site, in both copies (:mod:`.reservations`).
    """
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise MapathonError(f"{dest}: exists and is not an empty folder; give a new folder for the copy")
    if dest.resolve() == project.path.resolve() or project.path.resolve() in dest.resolve().parents:
        raise MapathonError(f"{dest}: the copy cannot go inside the project folder {project.path}")
    if to_db is not None and not store.is_url(to_db):
        raise UsageMistake("expected a PostgreSQL URL, postgresql://host/database[?schema=NAME]", field="to_db", value=to_db)
    new_site = str(uuid.uuid4())
    from .bundle import sync_key

    sync_key(project)  # made now for a project older than signed bundles: the copy gets the same key
    keys, village_names = reservations.resolve(project, villages, tasks)
    reservations.check_free(project, keys, new_site)
    made = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    url = None
    try:
        for item in sorted(project.path.iterdir()):
            if item.name.startswith((DB_NAME, f".{DB_NAME}", POINTER, f".{POINTER}")):
                continue
            if item.name == IMAGERY_DIR and not imagery:
                continue
            if item.is_dir():
                shutil.copytree(item, dest / item.name, symlinks=True)
            elif item.is_file():
                shutil.copy2(item, dest / item.name)
        if to_db:
            url = new_pg_schema(to_db, project.name)
            conn = store.connect(url, create=True)
        else:
            tmp = dest / f".{DB_NAME}.clone"
            conn = store.connect(tmp, create=True)
        try:
            store.copy_data(project.conn, conn)
            with store.transaction(conn):
                conn.execute("UPDATE meta SET value = ? WHERE key = 'site_id'", (new_site,))
                conn.execute("DELETE FROM meta WHERE key = 'site_name'")
                if site_name:
                    conn.execute("INSERT INTO meta (key, value) VALUES ('site_name', ?)", (site_name.strip(),))
                conn.execute("DELETE FROM room_sessions")  # sign-ins belong to the original's room server
                events.record(conn, site=new_site, actor="organizer", action="site.clone",
                              data={"from_site": project.site, "site_name": site_name})
                reserved = None
                if keys:  # made at the original site; the same event goes into the original below
                    eid = reservations.reserve_event(conn, author_site=project.site, site=new_site,
                                                     site_name=site_name.strip() if site_name else None,
                                                     keys=keys, villages=village_names)
                    reserved = tuple(conn.execute(f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events WHERE id = ?",
                                                  (eid,)).fetchone())
        finally:
            conn.close()
        if to_db:
            write_pointer(dest, url)
        else:
            for suffix in ("-wal", "-shm"):
                Path(str(tmp) + suffix).unlink(missing_ok=True)
            os.replace(tmp, dest / DB_NAME)
        if reserved:
            with project.transaction():
                project.conn.execute(f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) "
                                     f"VALUES ({', '.join('?' * len(_EVENT_COLUMNS))})", reserved)
    except BaseException:
        if url:
            store.drop_pg_project(url)
        if made:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            for item in dest.iterdir():
                shutil.rmtree(item) if item.is_dir() else item.unlink()
        raise
    return open_project(dest, url)
