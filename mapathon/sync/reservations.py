"""Villages and tasks kept for one site, so that two sites do not map the same ground.

An organizer reserves them when copying the project for a site
(``mapathon sync clone DEST --villages "A,B" --tasks 12,40``) and can lift a
reservation later (``mapathon sync unreserve``). Both are events
(``site.reserve`` / ``site.unreserve``), recorded in both copies at clone time
and carried by bundles like every change, so every copy agrees: a task belongs
to the site named by the last of these events about it, in the merged order of
the logs (:data:`.replay.ORDER_SQL`). A task split from a reserved task is
reserved too.

At any other site, a claim of a reserved task for mapping is refused with a
message naming the site, and ``claim --next`` does not hand it out. Validation
stays open to every site.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .. import events
from ..errors import ForbiddenTransition, MapathonError
from ..names import key as name_key
from ..project import Project
from . import replay

RESERVE = "site.reserve"
UNRESERVE = "site.unreserve"


@dataclass
class Reserved:
    """The tasks reserved for one site."""
    site: str
    site_name: str | None
    keys: list[str]
    villages: list[str]

    @property
    def label(self) -> str:
        return self.site_name or f"site {self.site[:8]}"


def current(conn) -> dict[str, tuple[str, str | None]]:
    """Task key -> (site id, site name) of every reservation of the current grid in force."""
    grid = replay.current_grid_event(conn)
    owner: dict[str, tuple[str, str | None]] = {}
    for action, data in conn.execute(
            f"SELECT action, data FROM events WHERE action IN (?, ?) AND lamport > ? ORDER BY {replay.ORDER_SQL}",
            (RESERVE, UNRESERVE, grid["lamport"] if grid else 0)):
        d = json.loads(data or "{}")
        for k in d.get("tasks") or ():
            if action == RESERVE:
                owner[k] = (d.get("site"), d.get("site_name"))
            else:
                owner.pop(k, None)
    return owner


def by_site(project: Project) -> list[Reserved]:
    """The reservations in force, one entry per site (its tasks in number order, and its whole villages)."""
    owner = current(project.conn)
    if not owner:
        return []
    ids = {r[0]: r[1] for r in project.conn.execute("SELECT key, id FROM tasks")}
    sites: dict[str, Reserved] = {}
    for k, (site, name) in owner.items():
        sites.setdefault(site, Reserved(site, name, [], [])).keys.append(k)
    for r in sites.values():
        r.keys.sort(key=lambda k: (ids.get(k, 1 << 62), k))
        mine = set(r.keys)
        for v in project.villages():
            keys = _village_keys(project, v["id"])
            if keys and keys <= mine:
                r.villages.append(v["name"])
    return sorted(sites.values(), key=lambda r: r.label.casefold())


def blocked(project: Project) -> dict[int, str]:
    """Task id -> the name of the site it is reserved for, for the tasks reserved for *another* site
    than this copy's (split children of a reserved task included)."""
    others = {k: (name or f"site {site[:8]}") for k, (site, name) in current(project.conn).items()
              if site != project.site}
    if not others:
        return {}
    keys = sorted(others)
    out: dict[int, str] = {}
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        for tid, root in project.conn.execute(
                f"""WITH RECURSIVE r (id, root) AS (
                        SELECT id, key FROM tasks WHERE key IN ({','.join('?' * len(chunk))})
                        UNION ALL SELECT t.id, r.root FROM tasks t JOIN r ON t.parent_id = r.id)
                    SELECT id, root FROM r""", chunk):
            out[tid] = others[root]
    return out


def refusal(task, site_label: str) -> ForbiddenTransition:
    """The error for a claim of *task* (a lifecycle Task) reserved for the site *site_label*."""
    return ForbiddenTransition(
        f"task {task.id} ({task.key}) is reserved for site {site_label}: it is mapped there. Choose another "
        "task, or an organizer can lift the reservation ('mapathon sync unreserve')")


def _village_keys(project: Project, area_id: int) -> set[str]:
    return {r[0] for r in project.conn.execute(
        "SELECT t.key FROM tasks t JOIN task_areas ta ON ta.task_id = t.id WHERE ta.area_id = ?", (area_id,))}


def resolve(project: Project, villages: list[str] = (), tasks: list[str] = ()) -> tuple[list[str], list[str]]:
    """The task keys of *villages* (names, matched as ``--village`` is) and *tasks* (numbers, ranges or z/x/y),
    and the villages' names as the project spells them."""
    from ..selection import resolve_tasks

    keys: set[str] = set()
    names = []
    for v in villages:
        row = project.village(v)
        names.append(row["name"])
        got = _village_keys(project, row["id"])
        if not got:
            raise MapathonError("the village has no tasks (run 'mapathon grid' first)", field="villages", value=v)
        keys |= got
    if tasks:  # numbers, ranges or z/x/y, as every --tasks reads them
        keys.update(t.key for t in resolve_tasks(project, ",".join(tasks)))
    return sorted(keys), names


def check_free(project: Project, keys: list[str], site: str) -> None:
    """Refuse to reserve for *site* a task already reserved for another site."""
    owner = current(project.conn)
    for k in keys:
        if k in owner and owner[k][0] != site:
            other = owner[k][1] or f"site {owner[k][0][:8]}"
            raise MapathonError(f"task {k} is already reserved for site {other}; lift that first "
                                f"('mapathon sync unreserve --site {other}')")


def reserve_event(conn, *, author_site: str, site: str, site_name: str | None, keys: list[str],
                  villages: list[str]) -> str:
    """Record the reservation of *keys* for *site* (inside the caller's transaction); returns the event id."""
    return events.record(conn, site=author_site, actor="organizer", action=RESERVE,
                         comment=f"reserved for {site_name or site[:8]}",
                         data={"site": site, "site_name": site_name, "tasks": keys, "villages": villages})


def unreserve(project: Project, actor: str, *, villages: list[str] = (), tasks: list[str] = (),
              site: str | None = None) -> tuple[list[str], list[str]]:
    """Organizer only: lift the reservations of these villages and tasks, or of every task of *site* (its name,
    or the start of its id). Returns (the keys set free, the sites they were reserved for)."""
    from ..tasks import volunteers

    vol = volunteers.find(project, volunteers.check_name(actor))
    if vol is None:
        raise MapathonError("no such volunteer in this project (see 'mapathon volunteer list')", field="as", value=actor)
    if not vol.is_organizer:
        raise ForbiddenTransition(f"--as {vol.name}: only an organizer can lift a reservation")
    if not (villages or tasks or site):
        raise MapathonError("say what to set free: --villages, --tasks or --site")
    with project.transaction():
        owner = current(project.conn)
        wanted, _ = resolve(project, villages, tasks)
        if site:
            sites = {s for s, name in owner.values()
                     if (name and name_key(name) == name_key(site)) or s.startswith(site.strip())}
            if not sites:
                known = sorted({name or s[:8] for s, name in owner.values()})
                raise MapathonError(f"--site {site}: no task is reserved for such a site "
                                    f"(reserved for: {', '.join(known) or 'none'})")
            wanted = sorted(set(wanted) | {k for k, (s, _) in owner.items() if s in sites})
        keys = [k for k in wanted if k in owner]
        if not keys:
            raise MapathonError("none of these tasks is reserved; nothing to lift (see 'mapathon sync reservations')")
        freed = sorted({owner[k][1] or owner[k][0][:8] for k in keys})
        project.record(actor=vol.name, action=UNRESERVE, comment=f"reservation lifted ({', '.join(freed)})",
                       data={"tasks": keys})
    return keys, freed
