"""Where a place is (task, village) and who contributed an object (volunteer, the task they mapped for).

* :class:`Locator` puts points in the project's tasks (split tasks left out:
  their children cover them) and villages, in bulk with STRtrees.
* A *provenance* answers "which volunteer contributed this object": from a
  merge result (every new, modified or deleted object knows its input file,
  volunteer and task), from a submitted contribution (the whole file is one
  volunteer's), else nothing (the checks then fall back on the object's
  OpenStreetMap ``user`` attribute, the last editor on the server).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely


@dataclass(frozen=True)
class Contributor:
    """Who contributed an object: volunteers (the kept copy's first), their files and the tasks they named."""

    volunteers: tuple[str, ...]
    tasks: tuple[str | None, ...] = ()
    files: tuple[str, ...] = ()


class Provenance:
    """No provenance known: every lookup answers None."""

    label = "none"

    def lookup(self, kind: str, oid: int) -> Contributor | None:  # kind: "node" | "way" | "relation"
        return None


def _uniq(xs) -> tuple:
    return tuple(dict.fromkeys(x for x in xs if x is not None))


class MergeProvenance(Provenance):
    """Provenance from a :class:`mapathon.osm.merge.MergeResult` (its changes and their origins)."""

    label = "merge"

    def __init__(self, result):
        self.result = result

    @staticmethod
    def volunteer_of(inp) -> str:
        """A volunteer's name, or the file's name in brackets for files merged without one."""
        return inp.volunteer or f"({inp.display or Path(str(inp.path)).name})"

    def lookup(self, kind: str, oid: int) -> Contributor | None:
        c = self.result.change(kind, oid)
        if c is None:
            return None
        srcs = c.sources
        return Contributor(_uniq(self.volunteer_of(o.input) for o in srcs), _uniq(o.input.task for o in srcs),
                           _uniq(o.input.display or o.input.name for o in srcs))


class FileProvenance(Provenance):
    """Everything a submitted file marks as edited (or everything in it) is its volunteer's."""

    label = "contribution"

    def __init__(self, volunteer: str, task: str | None, file: str, edited: set | None):
        self.who = Contributor((volunteer,), (task,), (file,))
        self.edited = edited

    def lookup(self, kind: str, oid: int) -> Contributor | None:
        if self.edited is None or (kind, oid) in self.edited:
            return self.who
        return None


def change_position(result, c) -> list | None:
    """Coordinates of a change: [(lon, lat)] for a node, the way's points, or a relation's first member's."""
    k = c.kind
    if k == "node":
        o = c.obj
        if o.lon is not None:
            return [(o.lon / 1e7, o.lat / 1e7)]
        p = result.node_location(c.id)
        return [p] if p else None
    if k == "way":
        if not c.obj.visible:
            return None
        return result.way_coords(c.id) or None
    for t, r, _role in c.obj.members:
        if t == "w":
            cs = result.way_coords(r)
            if cs:
                return cs
        elif t == "n":
            p = result.node_location(r)
            if p:
                return [p]
    return None


def change_positions(result) -> list:
    """:func:`change_position` of every change of *result* (in ``result.changes`` order), computed once and
    kept on the result: the scope of the checks and the credit both place the changes."""
    if result._positions is None:
        result._positions = [change_position(result, c) for c in result.changes]
    return result._positions


def area_scope(project, *, bbox: str | None = None, tasks: str | None = None, village: str | None = None):
    """The :class:`~mapathon.quality.features.Scope` of ``check --bbox/--tasks/--village`` (None: the whole
    file); tasks and villages are the project's, chosen as ``imagery plan`` and ``print`` choose them."""
    from ..errors import MapathonError, UsageMistake
    from ..selection import parse_bbox
    from .features import Scope

    given = [n for n, v in (("bbox", bbox), ("tasks", tasks), ("village", village)) if v]
    if not given:
        return None
    if len(given) > 1:
        raise UsageMistake(f"give one of bbox, tasks and village, not {' and '.join(given)}")
    if bbox:
        return Scope([shapely.box(*parse_bbox(bbox))], label=f"bbox {bbox}")
    if project is None:
        raise MapathonError("needs a project (--project, or run it in the project's folder)", field=given[0],
                            value=tasks or village)
    from ..imagery.plan import select_areas

    _rows, whole = select_areas(project, village, tasks)
    return Scope([whole.geom], label=whole.label)


#: How far around the changes of a merge the base is read for the checks (duplicates across task borders,
#: overlaps, crossings), in metres.
NEAR_M = 50.0


def merge_scope(result, distance_m: float = NEAR_M):
    """The :class:`~mapathon.quality.features.Scope` of a merge: what the contributions created or modified,
    and the boxes around them (*distance_m* wider) where the base's buildings and highways are read."""
    from .features import Scope

    placed = [(c, cs) for c, cs in zip(result.changes, change_positions(result)) if c.action != "delete"]
    changes = [c for c, _cs in placed]
    ids = {(c.kind, c.id) for c in changes}
    nodes = {c.id for c in changes if c.kind == "node" and c.id > 0}  # modified nodes: their ways moved
    in_ways = {r for c in changes if c.kind == "way" for r in c.obj.refs}
    boxes = []
    way_coords = {}
    for c, cs in placed:
        if c.kind == "node" and c.id in in_ways:  # inside its way's box
            continue
        if cs and c.kind == "way" and c.id < 0 and len(cs) >= 2:
            way_coords[c.id] = cs
        if cs:
            xs = [p[0] for p in cs]
            ys = [p[1] for p in cs]
            boxes.append((min(xs), min(ys), max(xs), max(ys)))
    b = np.asarray(boxes, dtype=float).reshape(-1, 4)
    if len(b):
        dy = distance_m / 111_320.0
        dx = dy / np.maximum(np.cos(np.radians((b[:, 1] + b[:, 3]) / 2)), 0.01)
        b = b + np.stack([-dx, np.full_like(dx, -dy), dx, np.full_like(dx, dy)], axis=1)
    new_nodes = {c.id: (c.obj.lon / 1e7, c.obj.lat / 1e7) for c in changes
                 if c.kind == "node" and c.id < 0 and c.obj.lon is not None}
    return Scope(shapely.box(*b.T) if len(b) else [], ids, nodes, label="changes", new_nodes=new_nodes,
                 way_coords=way_coords)


_NEW_IDS = re.compile(r"new ids down to n(-?\d+) w(-?\d+) r(-?\d+)")


def _lowest_new_ids(result) -> tuple[int, int, int]:
    low = {"node": 0, "way": 0, "relation": 0}
    for c in result.changes:
        if c.id < 0 and c.id < low[c.kind]:
            low[c.kind] = c.id
    return low["node"], low["way"], low["relation"]


def provenance_for_file(project, path: Path, edited: set | None, warnings: list[str]) -> Provenance:
    """The provenance of a file checked inside a project.

    A submitted contribution (same bytes) is its volunteer's. A merge snapshot
    written by mapathon is matched with the project's contributions merged
    again (without writing): its header notes the lowest new ids, which must
    agree, else the snapshot came from other files and no volunteer is named.
    """
    from ..osm.submit import find_by_sha, list_contributions

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    c = find_by_sha(project, h.hexdigest())
    if c is not None:
        return FileProvenance(c.volunteer, c.task, c.original_name, edited)
    if not path.name.lower().endswith(".pbf"):
        return Provenance()
    import osmium

    try:
        with osmium.io.Reader(str(path), osmium.osm.NOTHING) as rd:
            gen = rd.header().get("generator", "")
    except Exception:
        return Provenance()
    m = _NEW_IDS.search(gen)
    if not gen.startswith("mapathon") or not m or not list_contributions(project):
        return Provenance()
    from ..osm.merge import plan_merge
    from ..osm.submit import merge_inputs

    result = plan_merge(merge_inputs(project), skip_bad=True)
    want = tuple(int(v) for v in m.groups())
    got = _lowest_new_ids(result)
    if want != got:
        warnings.append(f"{path}: this snapshot was not merged from the project's current contributions (new ids "
                        f"down to {want}, the contributions give {got}); volunteers are named from the OSM 'user' "
                        "attribute only")
        return Provenance()
    return MergeProvenance(result)


class Locator:
    """Tasks and villages of a project, for putting points in them."""

    def __init__(self, project):
        from ..tasks.lifecycle import SPLIT, list_tasks

        all_tasks = list_tasks(project)
        self.by_key = {t.key: t for t in all_tasks}
        self.by_id = {t.id: t for t in all_tasks}
        self.tasks = [t for t in all_tasks if t.state != SPLIT]
        self.task_tree = shapely.STRtree([t.geom for t in self.tasks]) if self.tasks else None
        rows = project.villages()
        self.village_names = [r["name"] for r in rows]
        self.village_geoms = np.array([shapely.from_wkb(r["geom"]) for r in rows], dtype=object)
        self.village_centres = [(r["lon"], r["lat"]) if r["lon"] is not None else None for r in rows]
        self.village_tree = shapely.STRtree(self.village_geoms) if rows else None

    def task_of_key(self, key: str | None):
        if key is None:
            return None
        t = self.by_key.get(key)
        if t is None and str(key).isdigit():
            t = self.by_id.get(int(key))
        return t

    def locate(self, lonlat) -> tuple[list, list[str | None]]:
        """For each (lon, lat) (None allowed): the task it falls in (or None) and the village (or None).

        A point on a task border goes to the task with the lower number; a
        point in two villages' areas to the village whose centre is nearer.
        """
        n = len(lonlat)
        tasks: list = [None] * n
        villages: list[str | None] = [None] * n
        ok = [i for i, p in enumerate(lonlat) if p is not None]
        if not ok:
            return tasks, villages
        xy = np.array([lonlat[i] for i in ok], dtype=float)
        pts = shapely.points(xy)
        if self.task_tree is not None:
            pi, tj = self.task_tree.query(pts, predicate="intersects")
            for a, b in zip(pi.tolist(), tj.tolist()):
                t = self.tasks[b]
                cur = tasks[ok[a]]
                if cur is None or t.id < cur.id:
                    tasks[ok[a]] = t
        if self.village_tree is not None:
            pi, vj = self.village_tree.query(pts, predicate="intersects")
            best: dict[int, tuple[float, str]] = {}
            for a, b in zip(pi.tolist(), vj.tolist()):
                c = self.village_centres[b]
                d = (xy[a, 0] - c[0]) ** 2 + (xy[a, 1] - c[1]) ** 2 if c else float("inf")
                if a not in best or d < best[a][0]:
                    best[a] = (d, self.village_names[b])
            for a, (_d, name) in best.items():
                villages[ok[a]] = name
        return tasks, villages
