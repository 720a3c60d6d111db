"""Volunteers: mappers, validators and organizers of a project."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from .. import events, names
from ..errors import MapathonError
from ..project import Project


@dataclass(frozen=True)
class Volunteer:
    id: int
    name: str
    osm_user: str | None
    is_validator: bool
    is_organizer: bool

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> "Volunteer":
        return cls(r["id"], r["name"], r["osm_user"], bool(r["is_validator"]), bool(r["is_organizer"]))

    @property
    def can_validate(self) -> bool:
        return self.is_validator or self.is_organizer

    @property
    def roles(self) -> str:
        return ", ".join(r for r, on in (("organizer", self.is_organizer), ("validator", self.is_validator)) if on) or "mapper"


def check_name(name: str) -> str:
    name = names.clean(name)
    if not name:
        raise MapathonError("--as: a volunteer name is needed")
    if len(name) > 80 or any(ord(c) < 32 for c in name):
        raise MapathonError(f"volunteer name {name[:40]!r}: at most 80 printable characters")
    return name


def find(project: Project, name: str) -> Volunteer | None:
    row = project.conn.execute("SELECT * FROM volunteers WHERE name_key = ?", (names.key(name),)).fetchone()
    return Volunteer.from_row(row) if row else None


def find_many(project: Project, keys: list[str]) -> dict[str, Volunteer]:
    """The volunteers known by these name keys (:func:`mapathon.names.key`), read with one statement."""
    if not keys:
        return {}
    marks = ",".join("?" * len(keys))
    rows = project.conn.execute(f"SELECT * FROM volunteers WHERE name_key IN ({marks})", list(keys)).fetchall()
    return {r["name_key"]: Volunteer.from_row(r) for r in rows}


def add(
    project: Project,
    name: str,
    *,
    osm_user: str | None = None,
    validator: bool = False,
    organizer: bool = False,
    actor: str | None = None,
) -> tuple[Volunteer, bool]:
    """Register a volunteer, or grant roles to an existing one. Returns (volunteer, created).

    Once a project has an organizer, only an organizer (*actor*) may grant the
    validator or organizer role.
    """
    name = check_name(name)
    with project.transaction():
        if validator or organizer:
            has_org = project.conn.execute("SELECT 1 FROM volunteers WHERE is_organizer = 1 LIMIT 1").fetchone()
            boss = find(project, actor) if actor else None
            if has_org and actor and boss is None:
                raise MapathonError(f"--as {actor}: no such volunteer in this project (see 'mapathon volunteer list')")
            if has_org and not (boss and boss.is_organizer):
                role = "organizer" if organizer else "validator"
                who = f"{actor} is not an organizer" if actor else "say who grants it with --as ORGANIZER"
                raise MapathonError(f"{name}: only an organizer may give the {role} role ({who})")
        existing = find(project, name)
        if existing is None:
            project.conn.execute(
                "INSERT INTO volunteers (name, name_key, osm_user, is_validator, is_organizer, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (name, names.key(name), osm_user, int(validator), int(organizer), events.iso(events.utcnow())),
            )
            created = True
        else:
            project.conn.execute(
                """UPDATE volunteers SET osm_user = COALESCE(?, osm_user),
                   is_validator = greatest(is_validator, ?), is_organizer = greatest(is_organizer, ?) WHERE id = ?""",
                (osm_user, int(validator), int(organizer), existing.id),
            )
            created = False
        vol = find(project, name)
        project.record(
            actor=actor or name,
            action="volunteer.add" if created else "volunteer.update",
            data={"name": vol.name, "osm_user": vol.osm_user, "validator": vol.is_validator, "organizer": vol.is_organizer},
        )
    return vol, created


def ensure(project: Project, name: str) -> tuple[Volunteer, bool]:
    """The volunteer called *name*, registered as a mapper on first use (inside the caller's transaction)."""
    name = check_name(name)
    vol = find(project, name)
    if vol is not None:
        return vol, False
    project.conn.execute(
        "INSERT INTO volunteers (name, name_key, created) VALUES (?, ?, ?)",
        (name, names.key(name), events.iso(events.utcnow())),
    )
    project.record(actor=name, action="volunteer.add", data={"name": name, "validator": False, "organizer": False})
    return find(project, name), True


def list_all(project: Project) -> list[Volunteer]:
    return [Volunteer.from_row(r) for r in project.conn.execute("SELECT * FROM volunteers ORDER BY name")]
