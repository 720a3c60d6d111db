"""Credit and progress from a merge: who added what, where (``mapathon report``, ``merge --report``).

For every new, modified or deleted object of a merge (its ``changes``, each
with the input file, volunteer and task it came from) this counts, per
volunteer, per task and per village:

* buildings added (new ways and multipolygons tagged ``building=*``);
* kilometres of roads and of tracks/paths added (new ``highway=*`` lines,
  lengths in the local UTM zone);
* points of interest added, **water points first**, by kind:

  ============== =====================================================================
  borehole       ``man_made=borehole``, ``water_well=borehole`` or ``water_source=borehole``
  well with pump ``man_made=water_well`` (or ``well``) with ``pump=*`` other than ``no``
  well           any other ``man_made=water_well`` (or ``well``): a dug well
  tap            ``man_made=water_tap`` or ``amenity=water_tap``
  water point    ``amenity=water_point``
  drinking water ``amenity=drinking_water``
  spring         ``natural=spring``
  water tower    ``man_made=water_tower``
  water tank     ``man_made=storage_tank`` (or ``reservoir_covered``) holding water
  ============== =====================================================================

  then other points of interest (``amenity``, ``shop``, ``healthcare``...);
* objects modified and deleted. An existing object edited by several
  volunteers (the same edit, or edits the merge combined) counts for each of
  them, and once in the totals.

An object counts for the task and the village its position falls in (a way:
a point on it); an object without a known position (a deletion from an
``.osc`` file) counts for the task its file was submitted for. The report
also lists the tasks that received data but are still READY (someone forgot
``mapathon done``), and those marked MAPPED (or validated) that received
none (a file not handed in yet).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely

from .. import geo
from .where import Locator, MergeProvenance, change_positions

NOT_MAPPED = "(no task)"
OUTSIDE = "(outside the villages)"

TRACK_VALUES = frozenset({"track", "path", "footway", "bridleway", "cycleway", "steps"})
WATER_ORDER = ("borehole", "well with pump", "well", "tap", "water point", "drinking water", "spring", "water tower", "water tank")
POI_KEYS = ("amenity", "shop", "healthcare", "office", "craft", "tourism", "leisure", "historic", "emergency",
            "man_made", "public_transport", "sport")
NOT_POI = {"man_made": {"embankment", "dyke", "cutline", "pipeline", "breakwater", "groyne", "bridge", "pier"},
           "leisure": {"garden", "park", "nature_reserve", "track"}}


def water_kind(tags: dict) -> str | None:
    """The kind of water point an object is (see the module text), or None."""
    mm = tags.get("man_made")
    am = tags.get("amenity")
    if mm == "borehole" or "borehole" in (tags.get("water_well"), tags.get("water_well:type"), tags.get("water_source")) \
            or (mm in ("water_well", "well") and tags.get("borehole") == "yes"):
        return "borehole"
    if mm in ("water_well", "well"):  # a dug well; a pump on it does not make it a borehole
        pump = tags.get("pump")
        return "well with pump" if pump is not None and pump != "no" else "well"
    if mm == "water_tap" or am == "water_tap":
        return "tap"
    if am == "water_point":
        return "water point"
    if am == "drinking_water":
        return "drinking water"
    if tags.get("natural") == "spring":
        return "spring"
    if mm == "water_tower":
        return "water tower"
    if mm in ("storage_tank", "reservoir_covered") and tags.get("content", "water") == "water":
        return "water tank"
    return None


def poi_type(tags: dict) -> str | None:
    """'amenity=school' for a point of interest that is not a water point, else None."""
    for k in POI_KEYS:
        v = tags.get(k)
        if v and v != "no" and v not in NOT_POI.get(k, ()):
            return f"{k}={v}"
    return None


@dataclass
class Tally:
    """What one volunteer (or task, or village) contributed."""

    buildings: int = 0
    roads_m: float = 0.0
    tracks_m: float = 0.0
    water: dict = field(default_factory=dict)  # kind -> count
    pois: dict = field(default_factory=dict)  # "amenity=school" -> count (not water)
    created: int = 0  # all new objects, nodes included
    modified: int = 0
    deleted: int = 0
    findings: int = 0
    tasks: set = field(default_factory=set)
    volunteers: set = field(default_factory=set)

    @property
    def water_total(self) -> int:
        return sum(self.water.values())

    @property
    def poi_total(self) -> int:
        return sum(self.pois.values())

    def water_sorted(self) -> list[tuple[str, int]]:
        return [(k, self.water[k]) for k in WATER_ORDER if self.water.get(k)]

    def as_dict(self) -> dict:
        return {"buildings": self.buildings, "roads_km": round(self.roads_m / 1000, 3),
                "tracks_km": round(self.tracks_m / 1000, 3),
                "water_points": self.water_total, "water": dict(self.water_sorted()),
                "other_pois": self.poi_total, "pois": dict(sorted(self.pois.items(), key=lambda kv: (-kv[1], kv[0]))),
                "created": self.created, "modified": self.modified, "deleted": self.deleted,
                "findings": self.findings, "tasks": sorted(self.tasks, key=str),
                "volunteers": sorted(self.volunteers)}


@dataclass
class Credit:
    volunteers: dict[str, Tally]
    tasks: dict  # task id (or NOT_MAPPED) -> Tally
    villages: dict[str, Tally]
    total: Tally
    task_info: dict  # task id -> {"key", "state", "villages"}
    ready_with_data: list[dict]
    mapped_without_data: list[dict]
    inputs: list[dict]
    conflicts: list[dict]
    skipped: list[dict]
    utm_epsg: int | None = None
    features_xy: list = field(default_factory=list)  # (lon, lat, village, category) of each new/changed feature
    # who brought paper pages back and the marks found on them (mapathon.scan.marks.field_team)
    field_team: list = field(default_factory=list)

    def count_findings(self, checks) -> None:
        """Add the findings of *checks* (a CheckResult) on the volunteers' work to their tallies."""
        _count_findings(checks, self.total, self.volunteers, self.tasks, self.villages)

    def as_dict(self) -> dict:
        return {
            "total": self.total.as_dict(),
            "volunteers": {k: v.as_dict() for k, v in self.volunteers.items()},
            "tasks": {str(k): {**self.task_info.get(k, {}), **v.as_dict()} for k, v in self.tasks.items()},
            "villages": {k: v.as_dict() for k, v in self.villages.items()},
            "ready_with_data": self.ready_with_data,
            "mapped_without_data": self.mapped_without_data,
            "inputs": self.inputs,
            "conflicts": self.conflicts,
            "skipped": self.skipped,
            "field_team": self.field_team,
        }


def _change_rows(result) -> list:
    """(change, volunteers, declared task, coordinates) per change; no coordinates for a new building corner."""
    vol_of = MergeProvenance.volunteer_of
    rows = []  # (change, volunteers, declared task, coords)
    for c, cs in zip(result.changes, change_positions(result)):
        vols = [vol_of(c.input)]
        if c.action != "create" and c.also:  # an edit of an existing object made (or combined) from several inputs
            vols = list(dict.fromkeys(vol_of(o.input) for o in c.sources))
        # a new corner node of a building is not a feature: no position used (most of a merge's objects)
        corner = c.kind == "node" and c.action == "create" and not c.obj.tags
        rows.append((c, vols, c.input.task, None if corner else cs))
    return rows


def _representative_points(rows: list) -> list:
    """One point per change, for tasks and villages: a point on the area (closed ways) or on the line, in bulk."""
    points: list = [None] * len(rows)
    multi = []
    for i, (_c, _v, _t, cs) in enumerate(rows):
        if cs and len(cs) == 1:
            points[i] = cs[0]
        elif cs:
            multi.append(i)
    if multi:
        lens = np.array([len(rows[i][3]) for i in multi])
        xy = np.array([p for i in multi for p in rows[i][3]], dtype=float)
        idx = np.repeat(np.arange(len(multi)), lens)
        lines = shapely.linestrings(xy, indices=idx)
        geoms = lines.copy()
        starts = np.cumsum(lens) - lens
        ring = (lens >= 4) & np.all(xy[starts] == xy[starts + lens - 1], axis=1)
        if ring.any():
            polys = shapely.polygons(shapely.linearrings(shapely.get_coordinates(lines[ring]),
                                                         indices=np.repeat(np.arange(ring.sum()), lens[ring])))
            ok = shapely.is_valid(polys)
            sel = np.nonzero(ring)[0][ok]
            geoms[sel] = polys[ok]
        reps = shapely.point_on_surface(geoms)
        for i, x, y in zip(multi, shapely.get_x(reps).tolist(), shapely.get_y(reps).tolist()):
            points[i] = (x, y)
    return points


def _highway_lengths(rows: list) -> tuple[dict, int | None]:
    """Metres of each new highway (row index -> length), measured in its UTM zone, and that zone's EPSG code."""
    hw = [i for i, (c, _v, _t, cs) in enumerate(rows)
          if c.action == "create" and c.kind == "way" and cs and len(cs) >= 2 and "highway" in c.obj.tags
          and c.obj.tags.get("area") != "yes"]
    lengths = {}
    epsg = None
    if hw:
        coords = np.array([p for i in hw for p in rows[i][3]], dtype=float)
        idx = np.repeat(np.arange(len(hw)), [len(rows[i][3]) for i in hw])
        lines = shapely.linestrings(coords, indices=idx)
        minx, miny, maxx, maxy = shapely.total_bounds(lines)
        epsg = geo.utm_epsg((minx + maxx) / 2, (miny + maxy) / 2)
        ls = shapely.length(geo.reproject(lines, geo.WGS84, epsg))
        lengths = dict(zip(hw, ls.tolist()))
    return lengths, epsg


def _count_findings(checks, total: Tally, by_vol: dict, by_task: dict, by_village: dict) -> None:
    """Add the findings on the volunteers' work to the tallies of their volunteers, task and village."""
    for fi in checks.findings:
        if not fi.contributed:
            continue
        for v in fi.volunteers:
            if v in by_vol:
                by_vol[v].findings += 1
        total.findings += 1
        tk = fi.task if fi.task is not None else NOT_MAPPED
        if tk in by_task:
            by_task[tk].findings += 1
        vk = fi.village.split(", ")[0] if fi.village else OUTSIDE
        if vk in by_village:
            by_village[vk].findings += 1


def _tasks_to_look_at(locator: Locator, with_data: set, by_task: dict) -> tuple[list, list]:
    """READY tasks that received data, and mapped or validated tasks that received none."""
    from ..tasks.lifecycle import LOCKED_FOR_VALIDATION, MAPPED, READY, VALIDATED

    ready, mapped_none = [], []
    for t in locator.tasks:
        entry = {"id": t.id, "key": t.key, "state": t.state, "villages": list(t.villages),
                 "mapped_by": t.mapped_by}
        if t.state == READY and t.id in with_data:
            got = by_task.get(t.id)
            entry["objects"] = (got.created + got.modified + got.deleted) if got else 0
            ready.append(entry)
        elif t.state in (MAPPED, LOCKED_FOR_VALIDATION, VALIDATED) and t.id not in with_data:
            mapped_none.append(entry)
    return ready, mapped_none


def _order_tallies(d: dict) -> dict:
    """Tallies with the most buildings (then water points) first, the '(...)' rows last."""
    return dict(sorted(d.items(), key=lambda kv: (str(kv[0]).startswith("("), -kv[1].buildings,
                                                  -kv[1].water_total, str(kv[0]))))


def compute_credit(result, locator: Locator | None = None, checks=None) -> Credit:
    """Credit for a :class:`~mapathon.osm.merge.MergeResult`; *checks* (a CheckResult) adds findings counts."""
    rows = _change_rows(result)
    points = _representative_points(rows)
    if locator is not None:
        tasks, villages = locator.locate(points)
    else:
        tasks, villages = [None] * len(rows), [None] * len(rows)
    lengths, epsg = _highway_lengths(rows)

    total = Tally()
    by_vol: dict[str, Tally] = {}
    by_task: dict = {}
    by_village: dict[str, Tally] = {}
    task_info: dict = {}
    with_data: set = set()
    features_xy: list = []

    def tally_for(d: dict, key) -> Tally:
        t = d.get(key)
        if t is None:
            t = d[key] = Tally()
        return t

    for i, (c, vols, declared, _cs) in enumerate(rows):
        if c.kind == "node" and c.action == "create" and not c.obj.tags:  # a new corner node: created, no more
            for t in (total, *(tally_for(by_vol, v) for v in vols)):
                t.created += 1
                t.volunteers.update(vols)
            continue
        task = tasks[i]
        if task is None and locator is not None and points[i] is None:
            task = locator.task_of_key(declared)
        village = villages[i]
        if village is None and task is not None and points[i] is None and task.villages:
            village = task.villages[0]
        if task is not None:
            tkey = task.id
        elif locator is None:
            tkey = declared or NOT_MAPPED  # no project: the task the file was given for, as written
        else:
            tkey = NOT_MAPPED
        vkey = village or OUTSIDE
        tags = c.obj.tags
        # a new corner node of a building counts with its volunteer, not in a task or village of its own
        feature = not (c.kind == "node" and c.action == "create" and not tags)
        if feature:
            targets = (total, *(tally_for(by_vol, v) for v in vols), tally_for(by_task, tkey),
                       tally_for(by_village, vkey))
            if task is not None:
                with_data.add(task.id)
                task_info[task.id] = {"key": task.key, "state": task.state, "villages": list(task.villages)}
            if points[i] is not None:
                features_xy.append((points[i][0], points[i][1], vkey, _category(c, tags)))
        else:
            targets = (total, *(tally_for(by_vol, v) for v in vols))
        b = c.action == "create" and c.kind in ("way", "relation") and tags.get("building", "no") != "no"
        length = lengths.get(i, 0.0)
        is_track = tags.get("highway") in TRACK_VALUES
        wk = water_kind(tags) if c.action == "create" else None
        pt = poi_type(tags) if c.action == "create" and wk is None else None
        for t in targets:
            if c.action == "create":
                t.created += 1
            elif c.action == "modify":
                t.modified += 1
            else:
                t.deleted += 1
            if b:
                t.buildings += 1
            if length:
                if is_track:
                    t.tracks_m += length
                else:
                    t.roads_m += length
            if wk:
                t.water[wk] = t.water.get(wk, 0) + 1
            if pt:
                t.pois[pt] = t.pois.get(pt, 0) + 1
            t.volunteers.update(vols)
            if task is not None and feature:
                t.tasks.add(task.id)

    # the tasks files were submitted for received data too
    if locator is not None:
        for inp in result.inputs:
            t = locator.task_of_key(inp.task)
            if t is not None:
                with_data.add(t.id)
                task_info.setdefault(t.id, {"key": t.key, "state": t.state, "villages": list(t.villages)})

    ready, mapped_none = _tasks_to_look_at(locator, with_data, by_task) if locator is not None else ([], [])

    credit = Credit(
        volunteers=_order_tallies(by_vol),
        tasks=dict(sorted(by_task.items(), key=lambda kv: (not isinstance(kv[0], int), str(kv[0]).zfill(12)))),
        villages=_order_tallies(by_village),
        total=total,
        task_info=task_info,
        ready_with_data=ready,
        mapped_without_data=mapped_none,
        inputs=[i.as_dict() for i in result.inputs],
        conflicts=[c.as_dict() for c in result.conflicts],
        skipped=list(result.skipped),
        utm_epsg=epsg,
        features_xy=features_xy,
    )
    if checks is not None:
        credit.count_findings(checks)
    return credit


def _category(c, tags: dict) -> str:
    if c.action == "delete":
        return "deleted"
    if tags.get("building", "no") != "no":
        return "building"
    if "highway" in tags:
        return "highway"
    if water_kind(tags):
        return "water"
    if poi_type(tags):
        return "poi"
    return "other"
