"""Volunteers as sync sees them: matched by name (the same way as mapathon.tasks.volunteers does).

Sync registers volunteers made at another site without writing events of its own
(their ``volunteer.add`` event travels in the bundle), so it inserts rows itself.
"""

from __future__ import annotations

from ..names import clean, key as name_key


def find_id(conn, name: str) -> int | None:
    """The local id of the volunteer called *name*, or once called so (renamed, merged)."""
    k = name_key(name)
    row = conn.execute("SELECT id FROM volunteers WHERE name_key = ? UNION ALL "
                       "SELECT volunteer_id FROM volunteer_aliases WHERE name_key = ?", (k, k)).fetchone()
    return row[0] if row else None


def insert(conn, name: str, *, created: str, osm_user: str | None = None,
           validator: bool = False, organizer: bool = False) -> int:
    """Register *name* (no event: the caller has the other site's event). Returns the local id."""
    name = clean(name)
    conn.execute("INSERT INTO volunteers (name, name_key, osm_user, is_validator, is_organizer, created)"
                 " VALUES (?, ?, ?, ?, ?, ?)",
                 (name, name_key(name), osm_user, int(validator), int(organizer), created))
    return find_id(conn, name)


def ids_by_key(conn) -> dict[str, int]:
    """Name key -> local volunteer id, for current and former names (renamed, merged)."""
    ids = {name_key(name): vid for vid, name in conn.execute("SELECT id, name FROM volunteers")}
    for k, vid in conn.execute("SELECT name_key, volunteer_id FROM volunteer_aliases"):
        ids.setdefault(k, vid)
    return ids

