"""Volunteers: mappers, validators and organizers of a project."""

from __future__ import annotations

import sqlite3
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

from .. import events, names
from ..errors import MapathonError, UnknownVolunteer, UsageMistake, only_outcome
from ..project import Project

SIMILAR = 85.0  # names.suggest's cutoff for volunteers' names: closer than this is probably a typo


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

    def name_key_is(self, name: str) -> bool:
        """Whether *name* is this volunteer's current name (no case, accents or extra spaces)."""
        return names.key(name) == names.key(self.name)

    @property
    def can_validate(self) -> bool:
        return self.is_validator or self.is_organizer

    @property
    def roles(self) -> str:
        return ", ".join(r for r, on in (("organizer", self.is_organizer), ("validator", self.is_validator)) if on) or "mapper"

    def as_dict(self) -> dict:
        """The one JSON shape of a volunteer (the room server's answers). ``validator``: may validate
        (a validator or an organizer); ``roles`` says which."""
        return {"name": self.name, "osm_user": self.osm_user, "roles": self.roles, "validator": self.can_validate,
                "organizer": self.is_organizer}


def check_name(name: str) -> str:
    name = names.clean(name)
    if not name:
        raise MapathonError("--as: a volunteer name is needed")
    if len(name) > 80 or any(unicodedata.category(c) == "Cc" for c in name):
        raise MapathonError(f"volunteer name {name[:40]!r}: at most 80 printable characters")
    return name


def check_new_name(project: Project, name: str, *, but: int | None = None, rows: list | None = None) -> None:
    """Refuse a new name (a volunteer created or renamed) that would pass on screen for a volunteer's
    name, current or former (:func:`mapathon.names.skeleton`: 'Mаriam' with a Cyrillic 'а' for
    'Mariam'), or that mixes Latin letters with look-alike letters of another script. *but*: the
    volunteer being renamed, who may look like themselves. *rows*: the names as (name, volunteer id),
    read once for many new names (:func:`_all_names`)."""
    look = names.skeleton(name)
    mine = names.key(name)
    for other, vid in (rows if rows is not None else _all_names(project)):
        if vid != but and names.key(other) != mine and names.skeleton(other) == look:
            scripts = sorted({s for _, s in names.lookalikes(name)})
            if scripts:
                raise MapathonError(f"name {name!r} looks like the volunteer {other!r} (it has a "
                                    f"{' and '.join(scripts)} letter): type it with Latin letters")
            raise MapathonError(f"name {name!r} looks like the volunteer {other!r} on screen: "
                                "choose a name that differs (add a family name or a number)")
    if names.mixes_lookalikes(name):
        found = names.lookalikes(name)
        letters = ", ".join(f"{c} ({s})" for c, s in found)
        raise MapathonError(f"name {name!r} mixes Latin letters with look-alike letters of another alphabet "
                            f"({letters}): type it with Latin letters")


def find(project: Project, name: str) -> Volunteer | None:
    """The volunteer called *name* (no case, accents or extra spaces), or who was called so before a
    rename or a merge (their former names stay theirs)."""
    k = names.key(name)
    row = project.conn.execute(
        "SELECT * FROM volunteers WHERE name_key = ? OR id = (SELECT volunteer_id FROM volunteer_aliases "
        "WHERE name_key = ?)", (k, k)).fetchone()
    return Volunteer.from_row(row) if row else None


def find_many(project: Project, keys: list[str]) -> dict[str, Volunteer]:
    """The volunteers known by these name keys (:func:`mapathon.names.key`), current or former names,
    read with one statement: {key asked: volunteer}."""
    if not keys:
        return {}
    marks = ",".join("?" * len(keys))
    rows = project.conn.execute(
        f"""SELECT v.*, v.name_key AS asked FROM volunteers v WHERE v.name_key IN ({marks})
            UNION ALL
            SELECT v.*, a.name_key AS asked FROM volunteer_aliases a JOIN volunteers v ON v.id = a.volunteer_id
             WHERE a.name_key IN ({marks})""", [*keys, *keys]).fetchall()
    return {r["asked"]: Volunteer.from_row(r) for r in rows}


def known(project: Project, name: str, option: str = "--as") -> Volunteer:
    """The registered volunteer *name*; else an error naming the close one, if there is one."""
    name = check_name(name)
    vol = find(project, name)
    if vol is None:
        close = _close(project, name)
        hint = f"did you mean {close!r}? " if close else ""
        raise UnknownVolunteer(f"{option} {name}: no such volunteer in this project; {hint}"
                               "(see 'mapathon volunteer list')", name=name, suggestion=close)
    return vol


def _all_names(project: Project) -> list[tuple[str, int]]:
    """Every name a volunteer has or had, with their id."""
    return [tuple(r) for r in project.conn.execute(
        "SELECT name, id FROM volunteers UNION ALL SELECT name, volunteer_id FROM volunteer_aliases").fetchall()]


def _current_names(project: Project) -> dict[str, str]:
    """Every name a volunteer has or had -> their current name."""
    current = {r[0]: r[0] for r in project.conn.execute("SELECT name FROM volunteers")}
    for before, now in project.conn.execute(
            "SELECT a.name, v.name FROM volunteer_aliases a JOIN volunteers v ON v.id = a.volunteer_id"):
        current.setdefault(before, now)
    return current


def _close(project: Project, name: str, current: dict[str, str] | None = None) -> str | None:
    """The registered volunteer whose name, or a former name, is close to *name* (a typo?): their current name.
    *current*: :func:`_current_names`, read once for many names."""
    current = current if current is not None else _current_names(project)
    close = names.suggest(name, list(current), cutoff=SIMILAR)
    return current[close] if close else None


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
                raise MapathonError("no such volunteer in this project (see 'mapathon volunteer list')", field="as", value=actor)
            if has_org and not (boss and boss.is_organizer):
                role = "organizer" if organizer else "validator"
                who = f"{actor} is not an organizer" if actor else "say who grants it with --as ORGANIZER"
                raise MapathonError(f"{name}: only an organizer may give the {role} role ({who})")
        existing = find(project, name)
        if existing is None:
            check_new_name(project, name)
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


def ensure(project: Project, name: str, *, new: bool = False) -> tuple[Volunteer, bool]:
    """The volunteer called *name*, registered as a mapper on first use (inside the caller's transaction).

    A name close to a registered volunteer's (``Mousa Konate`` for ``Moussa Konaté``) is refused with
    :class:`UnknownVolunteer` naming that one, unless *new* says it is indeed someone new.
    """
    return only_outcome(ensure_many(project, [name], new=new))


def ensure_many(project: Project, wanted: list[str], *, new: bool = False) -> list:
    """:func:`ensure` for many names (the room server registers the surveyors of 50 phones at once this
    way): the volunteers read with one statement, and for the names not known yet, the names and former
    names read once, then those written with one statement and their events with one. One outcome per
    name, in order: (volunteer, whether registered now), or the MapathonError that refuses that name,
    having written nothing for it. A name given twice is registered once."""
    out: list = [None] * len(wanted)
    clean: list[tuple[int, str]] = []
    for i, name in enumerate(wanted):
        try:
            clean.append((i, check_name(name)))
        except MapathonError as e:
            out[i] = e
    found = find_many(project, list({names.key(n) for _, n in clean}))
    added: dict[str, str] = {}  # key -> the name registered now
    rows = current = None
    for i, name in clean:
        k = names.key(name)
        if k in found or k in added:
            continue
        if rows is None:
            rows, current = _all_names(project), _current_names(project)
        try:
            check_new_name(project, name, rows=rows)  # a look-alike is refused, --new or not
            close = None if new else _close(project, name, current)
            if close:
                raise UnknownVolunteer(f"no volunteer {name!r}; did you mean {close!r}? (add --new to create a "
                                       "new volunteer)", name=name, suggestion=close)
        except MapathonError as e:
            out[i] = e
            continue
        added[k] = name
        rows.append((name, -1))  # the next new names are told apart from this one too
        current[name] = name
    if added:
        stamp = events.iso(events.utcnow())
        project.conn.executemany("INSERT INTO volunteers (name, name_key, created) VALUES (?, ?, ?)",
                                 [(name, k, stamp) for k, name in added.items()])
        events.record_many(project.conn, project.site, [
            dict(actor=name, action="volunteer.add", data={"name": name, "validator": False, "organizer": False})
            for name in added.values()])
        found.update(find_many(project, list(added)))
    created = set(added)
    for i, name in clean:
        if out[i] is None:
            k = names.key(name)
            out[i] = (found[k], k in created)
            created.discard(k)
    return out


def list_all(project: Project) -> list[Volunteer]:
    return [Volunteer.from_row(r) for r in project.conn.execute("SELECT * FROM volunteers ORDER BY name")]


# -- renaming, merging and removing -----------------------------------------------------------------------------
#
# Events keep the names they were recorded with (the log is append-only and travels between sites as
# it is): a former name is kept in ``volunteer_aliases`` and means the same volunteer everywhere
# (``find``, status, sync's replay). The row changes below are written by the commands here and,
# with the same functions, by sync when another site's ``volunteer.rename`` / ``volunteer.merge`` /
# ``volunteer.remove`` event comes in (mapathon/sync/bundle.py), so that both copies agree.


def _organizer_only(project: Project, actor: str | None, what: str) -> str:
    """The name to record as who did *what*: once the project has an organizer, it must be one."""
    has_org = project.conn.execute("SELECT 1 FROM volunteers WHERE is_organizer = 1 LIMIT 1").fetchone()
    if not has_org:
        return check_name(actor) if actor else "organizer"
    if not actor:
        raise MapathonError(f"only an organizer may {what}: say who with --as ORGANIZER")
    boss = known(project, actor)
    if not boss.is_organizer:
        raise MapathonError(f"only an organizer may {what}; {boss.name} is not one")
    return boss.name


def _alias(project: Project, former: str, vid: int) -> None:
    """Keep *former* as a name of volunteer *vid* (unless it is their current name's key)."""
    k = names.key(former)
    if project.conn.execute("SELECT 1 FROM volunteers WHERE name_key = ?", (k,)).fetchone():
        return
    project.conn.execute(
        "INSERT INTO volunteer_aliases (name_key, name, volunteer_id) VALUES (?, ?, ?) "
        "ON CONFLICT (name_key) DO UPDATE SET volunteer_id = excluded.volunteer_id", (k, names.clean(former), vid))


def apply_rename(project: Project, vol: Volunteer, new: str) -> Volunteer:
    """Rows only (no event): *vol* is called *new* from now on; their former name stays theirs."""
    conn = project.conn
    conn.execute("DELETE FROM volunteer_aliases WHERE name_key = ?", (names.key(new),))  # a name given back
    conn.execute("UPDATE volunteers SET name = ?, name_key = ? WHERE id = ?", (new, names.key(new), vol.id))
    _alias(project, vol.name, vol.id)
    conn.execute("UPDATE room_sessions SET volunteer = ? WHERE volunteer = ?", (new, vol.name))
    return find(project, new)


def apply_merge(project: Project, keep: Volunteer, gone: Volunteer) -> Volunteer:
    """Rows only (no event): everything of *gone* becomes *keep*'s (tasks they hold, mapped or validated,
    their contributions, roles, former names, browser sign-ins); *gone*'s name becomes one of *keep*'s."""
    conn = project.conn
    for col in ("locked_by", "mapped_by", "validated_by"):
        conn.execute(f"UPDATE tasks SET {col} = ? WHERE {col} = ?", (keep.id, gone.id))
    conn.execute("UPDATE contributions SET volunteer_id = ? WHERE volunteer_id = ?", (keep.id, gone.id))
    conn.execute("""UPDATE volunteers SET is_validator = greatest(is_validator, ?), is_organizer = greatest(is_organizer, ?),
                    osm_user = COALESCE(osm_user, ?) WHERE id = ?""",
                 (int(gone.is_validator), int(gone.is_organizer), gone.osm_user, keep.id))
    conn.execute("UPDATE volunteer_aliases SET volunteer_id = ? WHERE volunteer_id = ?", (keep.id, gone.id))
    conn.execute("UPDATE room_sessions SET volunteer = ? WHERE volunteer = ?", (keep.name, gone.name))
    conn.execute("DELETE FROM volunteers WHERE id = ?", (gone.id,))
    _alias(project, gone.name, keep.id)
    return find(project, keep.name)


def history_of(project: Project, vol: Volunteer) -> str | None:
    """What *vol* has done in the project, in a few words, or None when nothing (only being registered)."""
    conn = project.conn
    n = conn.execute("SELECT COUNT(*) FROM tasks WHERE ? IN (locked_by, mapped_by, validated_by)", (vol.id,)).fetchone()[0]
    if n:
        return f"{n} task(s) held, mapped or validated"
    n = conn.execute("SELECT COUNT(*) FROM contributions WHERE volunteer_id = ?", (vol.id,)).fetchone()[0]
    if n:
        return f"{n} contribution(s)"
    mine = {names.key(vol.name)} | {r[0] for r in conn.execute(
        "SELECT name_key FROM volunteer_aliases WHERE volunteer_id = ?", (vol.id,))}
    for actor, n in conn.execute("SELECT actor, COUNT(*) FROM events WHERE action NOT IN "
                                 "('volunteer.add', 'volunteer.update') GROUP BY actor").fetchall():
        if names.key(actor) in mine:
            return f"{n} recorded change(s)"
    return None


def rename(project: Project, name: str, new: str, *, actor: str | None = None) -> tuple[str, Volunteer]:
    """Give a volunteer another name (a typo, a full name). Their former name stays theirs: typing
    it still means them, and their history keeps the name each change was made under.
    Returns (their name before, the volunteer now)."""
    new = check_name(new)
    with project.transaction():
        who = _organizer_only(project, actor, "rename a volunteer")
        vol = known(project, name, "volunteer")
        other = find(project, new)
        if other is not None and other.id != vol.id:
            raise MapathonError(f"{new!r} is already a volunteer ({other.name}); to make them one person, "
                                f"use 'mapathon volunteer merge \"{other.name}\" \"{vol.name}\"'")
        if new == vol.name:
            raise MapathonError(f"volunteer {vol.name}: already called {new!r}")
        check_new_name(project, new, but=vol.id)
        before = vol.name
        vol = apply_rename(project, vol, new)
        project.record(actor=who, action="volunteer.rename", data={"from": before, "name": vol.name})
    return before, vol


def merge(project: Project, name: str, other: str, *, actor: str | None = None) -> tuple[Volunteer, str]:
    """Make *other* (a second entry for the same person) one with *name*: their tasks, contributions,
    credit and roles become *name*'s, and *other* stays a name of theirs. One transaction, one event.
    Returns (the volunteer kept, the merged one's name)."""
    with project.transaction():
        who = _organizer_only(project, actor, "merge volunteers")
        keep = known(project, name, "volunteer")
        gone = known(project, other, "volunteer")
        if keep.id == gone.id:
            raise MapathonError(f"{name!r} and {other!r} are already the same volunteer ({keep.name})")
        held = project.conn.execute(
            "SELECT id, key, locked_by FROM tasks WHERE state = 'LOCKED_FOR_MAPPING' AND locked_by IN (?, ?) ORDER BY id",
            (keep.id, gone.id)).fetchall()
        if len({r[2] for r in held}) == 2:
            a, b = (next(r for r in held if r[2] == v.id) for v in (keep, gone))
            raise MapathonError(f"{keep.name} holds task {a[0]} and {gone.name} holds task {b[0]} for mapping; one "
                                "person holds one task at a time: finish ('done') or 'release' one of them first")
        vol = apply_merge(project, keep, gone)
        project.record(actor=who, action="volunteer.merge", data={"name": vol.name, "merged": gone.name})
    return vol, gone.name


def remove(project: Project, name: str, *, actor: str | None = None) -> Volunteer:
    """Remove a volunteer registered by mistake, only if they have done nothing yet (else: merge or rename)."""
    with project.transaction():
        who = _organizer_only(project, actor, "remove a volunteer")
        vol = known(project, name, "volunteer")
        done = history_of(project, vol)
        if done:
            raise MapathonError(f"volunteer {vol.name}: has a history ({done}), which would lose its author; "
                                "rename them, or merge them into the right volunteer, instead")
        apply_remove(project, vol)
        project.record(actor=who, action="volunteer.remove", data={"name": vol.name})
    return vol


def purge(project: Project, *, older_than: float | None = None, actor: str | None = None,
          dry_run: bool = False) -> list[Volunteer]:
    """Remove the volunteers who only signed in: no role, nothing claimed, mapped, validated or handed in
    (:func:`history_of`), with their room sessions. *older_than*: only those registered and last signed
    in more than that many days ago. Each removal is one ``volunteer.remove`` event, as with
    :func:`remove`, so it travels to the other sites the same way; their sign-in events stay in the log.
    *dry_run*: say who, remove nobody. Returns the volunteers removed (or that would be)."""
    if older_than is not None and older_than < 0:
        raise UsageMistake("a number of days, 0 or more", field="older_than", value=f"{older_than:g}")
    with project.transaction():
        who = _organizer_only(project, actor, "purge volunteers")
        cutoff = events.iso(events.utcnow() - timedelta(days=older_than)) if older_than is not None else None
        seen = dict(project.conn.execute("SELECT volunteer, MAX(created) FROM room_sessions GROUP BY volunteer"))
        gone = []
        for vol, created in ((Volunteer.from_row(r), r["created"]) for r in project.conn.execute(
                "SELECT * FROM volunteers WHERE is_organizer = 0 AND is_validator = 0 ORDER BY name").fetchall()):
            last = max(filter(None, (str(created or ""), seen.get(vol.name))), default="")
            if cutoff is not None and last > cutoff:
                continue
            if history_of(project, vol) is None:
                gone.append(vol)
        if not dry_run:
            for vol in gone:
                apply_remove(project, vol)
                project.record(actor=who, action="volunteer.remove", data={"name": vol.name, "purge": True})
    return gone


def apply_remove(project: Project, vol: Volunteer) -> None:
    """Rows only (no event): *vol* and their former names are gone."""
    conn = project.conn
    conn.execute("DELETE FROM volunteer_aliases WHERE volunteer_id = ?", (vol.id,))
    conn.execute("DELETE FROM room_sessions WHERE volunteer = ?", (vol.name,))
    conn.execute("DELETE FROM volunteers WHERE id = ?", (vol.id,))


def current_names(conn) -> dict[str, str]:
    """Name key (current or former name) -> the volunteer's current name: who a name in the log is now.
    *conn* is the project's connection (sync's replay has only that)."""
    out = {r[0]: r[1] for r in conn.execute("SELECT name_key, name FROM volunteers")}
    for k, now in conn.execute(
            "SELECT a.name_key, v.name FROM volunteer_aliases a JOIN volunteers v ON v.id = a.volunteer_id"):
        out.setdefault(k, now)
    return out


IDENTITY_ACTIONS = ("volunteer.rename", "volunteer.merge", "volunteer.remove")


def apply_identity_event(project: Project, action: str, data: dict, ts: str) -> None:
    """Another site's rename, merge or removal (one of :data:`IDENTITY_ACTIONS`, its event's *data*),
    applied to the rows here, in the merged order of the logs (mapathon/sync). What this copy has
    that the other did not (a volunteer created here meanwhile under the new name, work done here by a
    removed volunteer) is settled the way that keeps everyone's work: a merge, or no removal."""
    def text(k):
        v = data.get(k)
        return names.clean(v) if isinstance(v, str) and names.clean(v) else None

    name = text("name")
    if name is None:
        return
    conn = project.conn
    if action == "volunteer.remove":
        vol = find(project, name)
        if vol is not None and vol.name_key_is(name) and history_of(project, vol) is None:
            apply_remove(project, vol)
        return
    before = text("from") if action == "volunteer.rename" else text("merged")
    if before is None:
        return
    target, other = find(project, name), find(project, before)
    if target is None and other is None:
        conn.execute("INSERT INTO volunteers (name, name_key, created) VALUES (?, ?, ?)", (name, names.key(name), ts))
        _alias(project, before, find(project, name).id)
    elif target is None:
        apply_rename(project, other, name)
    elif other is None:
        _alias(project, before, target.id)
    elif other.id != target.id:
        apply_merge(project, target, other)
    elif target.name != name:  # a change of spelling only (same key)
        apply_rename(project, target, name)


def first_organizer(project: Project) -> str | None:
    """The name of the project's first organizer (the one who acts when an organizer gives no name)."""
    row = project.conn.execute("SELECT name FROM volunteers WHERE is_organizer = 1 ORDER BY id LIMIT 1").fetchone()
    return row[0] if row else None
