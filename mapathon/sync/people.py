"""Volunteers as sync sees them: matched by name (the same way as mapathon.tasks.volunteers does).

Sync registers volunteers made at another site without writing events of its own
(their ``volunteer.add`` event travels in the bundle), so it inserts rows itself.
"""

from __future__ import annotations

import sqlite3

try:  # names typed by people: case, accents and spaces do not matter
    from ..names import clean as _clean, key as name_key
except ImportError:  # pragma: no cover - older foundation
    def _clean(name: str) -> str:
        return " ".join((name or "").split())

    def name_key(name: str) -> str:
        return _clean(name).casefold()


def _has_key_column(conn: sqlite3.Connection) -> bool:
    return any(r[1] == "name_key" for r in conn.execute("PRAGMA table_info(volunteers)"))


def find_id(conn: sqlite3.Connection, name: str) -> int | None:
    if _has_key_column(conn):
        row = conn.execute("SELECT id FROM volunteers WHERE name_key = ?", (name_key(name),)).fetchone()
    else:
        row = conn.execute("SELECT id FROM volunteers WHERE name = ?", (_clean(name),)).fetchone()
    return row[0] if row else None


def insert(conn: sqlite3.Connection, name: str, *, created: str, osm_user: str | None = None,
           validator: bool = False, organizer: bool = False) -> int:
    """Register *name* (no event: the caller has the other site's event). Returns the local id."""
    name = _clean(name)
    if _has_key_column(conn):
        conn.execute("INSERT INTO volunteers (name, name_key, osm_user, is_validator, is_organizer, created)"
                     " VALUES (?, ?, ?, ?, ?, ?)",
                     (name, name_key(name), osm_user, int(validator), int(organizer), created))
    else:
        conn.execute("INSERT INTO volunteers (name, osm_user, is_validator, is_organizer, created)"
                     " VALUES (?, ?, ?, ?, ?)", (name, osm_user, int(validator), int(organizer), created))
    return find_id(conn, name)


def ids_by_key(conn: sqlite3.Connection) -> dict[str, int]:
    return {name_key(name): vid for vid, name in conn.execute("SELECT id, name FROM volunteers")}
