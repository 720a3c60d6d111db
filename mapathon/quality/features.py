"""Reading an OSM file into the arrays the quality checks work on.

Any file the merge accepts is read: JOSM ``.osm`` XML (negative ids,
``action="delete"`` honoured), ``.osc`` change files and ``.osm.pbf``, each
optionally compressed. libosmium (pyosmium) does the heavy work in C++:
node locations for ways, and the assembly of multipolygon relations into
areas (its area handler). Python sees only ways and areas, never the
hundreds of thousands of nodes of an extract.

Two wrinkles of libosmium are handled here:

* its node-location handler ignores negative ids (new objects). XML files
  are therefore handed to libosmium with their negative ids moved to a
  positive range (``NEG_BASE`` and above) and mapped back afterwards; a
  PBF with negative ids (a mapathon merge snapshot keeps them) has them
  sorted first, so they are read once before the main pass and the few
  ways that use them get their coordinates in Python.
* a multipolygon whose rings cannot be assembled (self-intersecting or not
  closed) comes out as an *empty* area; one with missing members or nodes
  does not come out at all. The first is a finding, the second is counted
  as not checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely

from ..errors import MapathonError
# new objects (id <= 0) go to libosmium as NEG_BASE - id
from ..osm.readers import KIND_NAMES, NEG_BASE, NODE, RELATION, WAY, file_format, read_osm_file

#: Keys that do not make a way "tagged" (JOSM's "uninteresting" keys).
UNINTERESTING = frozenset({"created_by", "source", "source_ref", "note", "fixme", "FIXME", "description", "odbl",
                           "attribution", "comment"})
_UNINTERESTING_PREFIX = ("source:", "note:", "odbl:")

#: Closed ways with one of these keys are areas (unless area=no).
AREA_KEYS = ("building", "building:part", "landuse", "leisure", "amenity", "shop", "place", "natural", "water",
             "tourism", "aeroway", "military")
#: ... except these values, which are lines even when closed.
LINEAR_VALUES = {"natural": {"coastline", "tree_row", "cliff", "ridge", "arete", "earth_bank", "gully", "valley"},
                 "leisure": {"track", "slipway"}}

#: Highways left out of the crossing check (not built, or not a line on the ground).
HIGHWAY_IGNORED = frozenset({"proposed", "construction", "abandoned", "razed", "disused", "platform", "rest_area",
                             "services", "corridor", "elevator"})
#: Highways explicitly mapped through or under a building.
PASSAGE_TUNNELS = frozenset({"building_passage", "yes", "culvert"})


def _uninteresting(k: str) -> bool:
    return k in UNINTERESTING or k.startswith(_UNINTERESTING_PREFIX)


def _layer(v: str | None) -> int:
    if not v:
        return 0
    try:
        return int(float(v.split(";")[0].strip()))
    except ValueError:
        return 0


def _is_building(v: str | None) -> bool:
    return v is not None and v != "no"


def _is_area(tags) -> bool:
    a = tags.get("area")
    if a == "no":
        return False
    if a == "yes":
        return True
    for k in AREA_KEYS:
        v = tags.get(k)
        if v is not None and v != "no" and v not in LINEAR_VALUES.get(k, ()):
            return True
    return False


class _Lines:
    """Ids, users and geometries (WKB bytes, or coordinates) of one class of ways, filled while reading."""

    __slots__ = ("ids", "users", "wkb", "extra")

    def __init__(self):
        self.ids: list[int] = []
        self.users: list[str] = []
        self.wkb: list = []  # WKB bytes (from libosmium) or a list of (lon, lat)
        self.extra: list = []

    def add(self, oid: int, user: str, geom, extra=None) -> None:
        self.ids.append(oid)
        self.users.append(user)
        self.wkb.append(geom)
        self.extra.append(extra)

    def geoms(self) -> np.ndarray:
        return _geoms(self.wkb)


#: Size of the cells (degrees) of a scope's quick test of building ways; CELL_E7 in osmium's units (1e-7 deg).
CELL = 0.01
CELL_E7 = 100_000
#: At most this many cells for the prefilter (about 600,000 km² near the equator); wider areas turn it off.
MAX_CELLS = 500_000


class Scope:
    """What part of a file to check: the objects a merge touched and the area around them, or an area.

    *ids* are ``(type, id)`` pairs ("way", -12) of the file's objects that were
    created or modified (their ways, areas and relations are read whatever
    they are); *areas* are shapely geometries in degrees (boxes around the
    changes, a task, a village). Of the other ways, only those whose line
    meets an area are read: with ids, only buildings and highways (the
    neighbours a duplicate, an overlap or a crossing needs); without ids
    (``check --bbox``, ``--tasks``, ``--village``), everything. *nodes* are
    modified nodes of the file: the ways that use them changed shape, and are
    read as changed.
    """

    def __init__(self, areas, ids: set | None = None, nodes: set | None = None, label: str = "changes",
                 new_nodes: dict | None = None, way_coords: dict | None = None):
        self.areas = np.asarray(areas, dtype=object).reshape(-1)  # shapely geometries, WGS84
        self.ids = set(ids or ())
        self.nodes = set(nodes or ())
        self.label = label
        self.new_nodes = new_nodes  # {id: (lon, lat)} of the file's nodes with negative ids, when known
        self.way_coords = way_coords or {}  # {id: [(lon, lat), ...]} of the file's new ways, when known
        self.tree = shapely.STRtree(self.areas) if len(self.areas) else None
        # cells of CELL degrees that the areas cover, and their neighbours: a building way whose first node
        # lies in none of them is far from every area (unless it is wider than a cell)
        # (an area wider than MAX_CELLS cells, e.g. a change file's way from one continent to another, turns this
        # prefilter off: every node is then "near", and only the exact test below decides)
        self.cells: set | None = set()
        for x0, y0, x1, y1 in shapely.bounds(self.areas).tolist() if len(self.areas) else []:
            xs = range(int(x0 // CELL) - 1, int(x1 // CELL) + 2)
            ys = range(int(y0 // CELL) - 1, int(y1 // CELL) + 2)
            if len(xs) * len(ys) + len(self.cells) > MAX_CELLS:
                self.cells = None
                break
            self.cells.update((cx, cy) for cx in xs for cy in ys)

    def far(self, loc) -> bool:
        """Is this node location (an osmium Location) in no cell near the areas?"""
        return self.cells is not None and (loc.x // CELL_E7, loc.y // CELL_E7) not in self.cells

    @property
    def area_only(self) -> bool:
        return not self.ids

    def hits(self, geoms: np.ndarray) -> np.ndarray:
        """For each geometry: does it meet one of the areas?"""
        out = np.zeros(len(geoms), dtype=bool)
        if self.tree is not None and len(geoms):
            qi, _ = self.tree.query(geoms, predicate="intersects")
            out[qi] = True
        return out


#: libosmium's WKB of a line (little-endian, type 2): then the number of points and the coordinates.
_WKB_LINE = b"\x01\x02\x00\x00\x00"


def _line_boxes(wkbs: list[bytes]) -> np.ndarray:
    """(minx, miny, maxx, maxy) of lines given as libosmium's WKB, without making geometries."""
    raw = [w[9:] for w in wkbs]
    if not raw:
        return np.empty((0, 4))
    lengths = np.fromiter((len(r) // 16 for r in raw), dtype=np.int64, count=len(raw))
    xy = np.frombuffer(b"".join(raw), dtype="<f8").reshape(-1, 2)
    starts = np.cumsum(lengths) - lengths
    return np.column_stack([np.minimum.reduceat(xy[:, 0], starts), np.minimum.reduceat(xy[:, 1], starts),
                            np.maximum.reduceat(xy[:, 0], starts), np.maximum.reduceat(xy[:, 1], starts)])


def _geoms(items: list) -> np.ndarray:
    """Geometries from WKB bytes and coordinate lists, in bulk (GEOS reads bytes several times faster than hex)."""
    out = np.empty(len(items), dtype=object)
    wkbs = [i for i, g in enumerate(items) if isinstance(g, bytes)]
    lists = [i for i, g in enumerate(items) if not isinstance(g, bytes)]
    if wkbs:
        out[wkbs] = shapely.from_wkb([items[i] for i in wkbs])
    if lists:
        out[lists] = _linestrings([items[i] for i in lists])
    return out


def _linestrings(coord_lists: list) -> np.ndarray:
    """Lines from lists of (lon, lat), in one call to shapely."""
    lengths = np.fromiter((len(c) for c in coord_lists), dtype=np.int64, count=len(coord_lists))
    xy = np.array([p for c in coord_lists for p in c], dtype=float).reshape(-1, 2)
    return shapely.linestrings(xy, indices=np.repeat(np.arange(len(coord_lists)), lengths))


@dataclass
class Features:
    """What the checks need from one file. Geometries are WGS84 (x = lon); ids are the file's own ids."""

    source: str
    # buildings: closed ways and multipolygon relations tagged building=*
    b_type: np.ndarray  # "way" | "relation"
    b_id: np.ndarray
    b_geom: np.ndarray  # polygons (ways: the way's ring as drawn, possibly invalid)
    b_layer: np.ndarray
    b_user: list
    b_value: list  # the building=* value
    # highways (lines)
    h_id: np.ndarray
    h_geom: np.ndarray
    h_layer: np.ndarray
    h_user: list
    h_value: list
    # other closed area ways (landuse, ...), checked for self-intersection
    a_id: np.ndarray
    a_geom: np.ndarray
    a_user: list
    # building ways not closed, untagged ways: (id, first point, user)
    unclosed: list
    untagged: list
    # building multipolygons whose rings could not be assembled: (id, point or None, user)
    broken_relations: list
    stats: dict = field(default_factory=dict)
    edited: set | None = None  # (type, id) of objects the file itself marks as edited (JOSM/osc), else None
    touched: set | None = None  # with a Scope of changes: (type, id) of the changed objects read

    @property
    def n_buildings(self) -> int:
        return len(self.b_id)


# -- reading -------------------------------------------------------------------------------------------


def _file_to_opl(path: Path, label: str) -> tuple[bytes, set, int]:
    """A JOSM/.osc (or compressed) file as OPL bytes for libosmium, read by the project's reader.

    Deletions are dropped (libosmium would ignore JOSM's action="delete"); new
    ids move to NEG_BASE - id. Returns (opl, edited (type, id) pairs, deletions).
    """
    data = read_osm_file(path, name=label)
    edited = set()
    rows = []
    deleted = 0
    for k in (NODE, WAY, RELATION):
        for o in data.objects[k].values():
            if o.action is not None:
                edited.add((KIND_NAMES[k], o.id))
            if not o.visible:
                deleted += 1
                continue
            rows.append(o)
    return _remap_objects(rows), edited, deleted


def _back(ids: list[int] | np.ndarray) -> np.ndarray:
    a = np.asarray(ids, dtype=np.int64)
    return np.where(a >= NEG_BASE, NEG_BASE - a, a)


def _leading_negative_nodes(src) -> dict[int, tuple[float, float]]:
    """Nodes with negative ids at the start of a sorted PBF (where osmium sorts them)."""
    import osmium

    out = {}
    for o in osmium.FileProcessor(src, osmium.osm.NODE):
        if o.id > 0:
            break
        loc = o.location
        if loc.valid():
            out[o.id] = (loc.lon, loc.lat)
    return out


def _all_negative_nodes(src, wanted: set[int]) -> dict[int, tuple[float, float]]:
    import osmium

    out = {}
    for o in osmium.FileProcessor(src, osmium.osm.NODE):
        if o.id in wanted and o.location.valid():
            out[o.id] = (o.location.lon, o.location.lat)
    return out


class _FirstPass:
    """What one pass over the ways and relations collects before the main pass (python handler).

    Every relation is seen: the ways that are members of any relation, the member ways and tags of
    building multipolygons. Ways reach it only through libosmium's filter of the ways using a
    modified node (*moved*), when there is one."""

    def __init__(self):
        self.members: set[int] = set()
        self.mp_members: set[int] = set()
        self.buildings: dict[int, dict] = {}
        self.moved: set[int] = set()

    def way(self, w) -> None:
        self.moved.add(w.id)

    def relation(self, r) -> None:
        ways = [m.ref for m in r.members if m.type == "w"]
        self.members.update(ways)
        tags = r.tags
        if tags.get("type") == "multipolygon" and _is_building(tags.get("building")):
            self.mp_members.update(ways)
            self.buildings[r.id] = {"layer": _layer(tags.get("layer")), "user": r.user or "",
                                    "value": tags.get("building")}


def _first_pass(src, moved_nodes: set[int] | None, areas) -> _FirstPass:
    """One pass over the ways and relations: the relations (:class:`_FirstPass`), the ways using
    *moved_nodes* (found by libosmium), and the first pass of libosmium's area assembly (*areas*)."""
    import osmium

    seen = _FirstPass()
    handlers: list = []
    bits = osmium.osm.RELATION
    if moved_nodes:
        tracker = osmium.IdTracker()
        for n in moved_nodes:
            tracker.add_node(n)
        ways = tracker.contains_filter()  # a way passes if it uses one of the nodes
        ways.enable_for(osmium.osm.WAY)
        handlers.append(ways)
        bits |= osmium.osm.WAY
    only_rel = osmium.filter.EntityFilter(osmium.osm.RELATION)
    pool = osmium.io.ThreadPool()  # a pool of its own, like FileProcessor's (libosmium's shared pool has
    # no threads in a forked helper)
    with osmium.io.Reader(src, bits, thread_pool=pool) as rd:
        osmium.apply(rd, *handlers, seen, only_rel, osmium.filter.KeyFilter("building"), areas.first_pass_handler())
    return seen


#: libosmium's id filter keeps a bit set in chunks of 2**22 ids (about 0.7 MB each): ids spread over more
#: chunks than this (ids shifted by 10**10 per copy in the benchmarks' bases) let every area through instead.
AREA_FILTER_MAX_CHUNKS = 128


def _area_filter(relation_ids: list[int]) -> list:
    """An id filter passing only the areas libosmium assembles from *relation_ids* (it numbers the area of
    relation r 2r + 1), so the area it also makes of every closed way (40 % of what would reach Python,
    to be thrown away) stays in C++; none when an id is not positive (new relations of a merge snapshot)
    or the ids are too spread for the filter's bit set."""
    import osmium

    ids = [2 * r + 1 for r in relation_ids]
    if any(r <= 0 for r in relation_ids) or len({i >> 22 for i in ids}) > AREA_FILTER_MAX_CHUNKS:
        return []
    return [osmium.filter.IdFilter(ids)]


def _main_pass(src, areas, relation_ids: list[int]):
    """Ways with node locations, and the areas of the building multipolygons *relation_ids*, as
    osmium.FileProcessor(...).with_areas() gives them after its first pass (done by _first_pass),
    without the areas of closed ways where :func:`_area_filter` can keep them out."""
    import osmium

    store = osmium.index.create_map("flex_mem")  # referenced here: the handler does not keep it alive
    lh = osmium.NodeLocationsForWays(store)
    lh.ignore_errors()
    filters = (osmium.filter.EntityFilter(osmium.osm.WAY | osmium.osm.AREA),)
    only = _area_filter(relation_ids)  # referenced here: the C++ side uses it
    buffer_it = osmium.BufferIterator(*only)
    second = areas.second_pass_to_buffer(buffer_it)  # referenced here too
    pool = osmium.io.ThreadPool()
    with osmium.io.Reader(src, osmium.osm.NODE | osmium.osm.WAY | osmium.osm.RELATION, thread_pool=pool) as rd:
        for o in osmium.OsmFileIterator(rd, lh, second, *filters):
            yield o
            if buffer_it:
                yield from buffer_it
    if buffer_it:
        yield from buffer_it


def read_features(path: str | Path, *, name: str | None = None, scope: Scope | None = None) -> Features:
    """Read *path* (any accepted OSM file) into :class:`Features`; a MapathonError names a bad file.

    With a *scope*, only the changed objects and the ways near them are read (see :class:`Scope`)."""
    import osmium

    path = Path(path)
    label = name or str(path)
    if not path.is_file():
        raise MapathonError(f"{label}: no such file")
    kind, comp, _ending = file_format(path, name=label)
    edited = None
    stats: dict = {}
    remapped = False
    if kind == "pbf" and comp is None:
        src = str(path)
    else:
        # XML, osmChange and compressed PBF: read by the project's reader (actions honoured), handed over as OPL.
        raw, edited, deleted = _file_to_opl(path, label)
        stats["deleted_in_file"] = deleted
        src = osmium.io.FileBuffer(raw, "opl")
        remapped = True
    try:
        return _read(src, label, remapped, edited, stats, scope)
    except MapathonError:
        raise
    except RuntimeError as e:
        raise MapathonError(f"{label}: cannot read ({e})") from None


def _remap_objects(rows) -> bytes:
    from ..osm.writers import opl_bytes

    out = []
    for o in rows:
        if o.id <= 0 or any(r <= 0 for r in o.refs) or any(m[1] <= 0 for m in o.members):
            o = o.copy()
            if o.id <= 0:
                o.id = NEG_BASE - o.id
            o.refs = tuple(NEG_BASE - r if r <= 0 else r for r in o.refs)
            o.members = tuple((t, NEG_BASE - r if r <= 0 else r, role) for t, r, role in o.members)
        out.append(o)
    out.sort(key=lambda o: ("nwr".index(o.kind), o.id))
    return opl_bytes(out)


#: In a scoped read, the ways waiting for the test "near the changes?" are tested this many at a time.
SCOPE_BATCH = 50_000


def _scope_ids(scope: Scope, remapped: bool) -> tuple[set[int], set[int], set[int] | None]:
    """(way ids, relation ids) of the scope's changed objects, as the reader sees them (new ids moved for an
    XML file), and the modified nodes whose ways changed too (None: none to look for)."""

    def mv(i: int) -> int:
        return NEG_BASE - i if remapped and i <= 0 else i

    ways = {mv(i) for t, i in scope.ids if t == "way"}
    rels = {mv(i) for t, i in scope.ids if t == "relation"}
    return ways, rels, (scope.nodes if scope.nodes and not remapped else None)


def _resolve_pending(src, pending: list, member_wkb: dict) -> int:
    """Build the ways whose negative node ids came after them (one more pass over the nodes); how many stay missing."""
    missing = 0
    wanted = {r for refs, coords, *_ in pending for r, c in zip(refs, coords) if c is None}
    more = _all_negative_nodes(src, wanted)
    for refs, coords, target, wid, user, extra, is_member in pending:
        cs = [c if c is not None else more.get(r) for r, c in zip(refs, coords)]
        if any(c is None for c in cs):
            missing += 1
            continue
        if target is not None:
            target.add(wid, user, cs, extra)
        if is_member:
            member_wkb[wid] = cs
    return missing


def _broken_relations(mp_buildings: dict, rel_polys: list, rel_seen: set, scope: Scope | None,
                      s_rels: set) -> tuple[list, int]:
    """Building relations not assembled: (id, user) of the broken ones (empty), and how many are incomplete."""
    assembled = {rid for rid, _ in rel_polys}
    broken = []
    incomplete = 0
    for rid, info in mp_buildings.items():
        if rid in assembled or (scope is not None and rid not in s_rels):
            continue
        if rid in rel_seen:
            broken.append((rid, info["user"]))
        else:
            incomplete += 1
    return broken, incomplete


def _building_arrays(bw: _Lines, rel_polys: list, mp_buildings: dict) -> tuple:
    """(type, id, geometry, layer, value, user) arrays of the building ways then the building relations."""
    b_way_geoms = bw.geoms()
    if len(b_way_geoms):
        coords, idx = shapely.get_coordinates(b_way_geoms, return_index=True)
        rings = shapely.linearrings(coords, indices=idx)
        b_way_polys = shapely.polygons(rings)
    else:
        b_way_polys = np.empty(0, dtype=object)
    rel_geoms = shapely.from_wkb([w for _, w in rel_polys]) if rel_polys else np.empty(0, dtype=object)
    nb, nr = len(bw.ids), len(rel_polys)
    b_type = np.array(["way"] * nb + ["relation"] * nr, dtype=object)
    b_id = _back(list(bw.ids) + [r for r, _ in rel_polys])
    b_geom = np.concatenate([b_way_polys, rel_geoms]) if (nb or nr) else np.empty(0, dtype=object)
    b_layer = np.array([e[0] for e in bw.extra] + [mp_buildings[r]["layer"] for r, _ in rel_polys], dtype=np.int64)
    b_value = [e[1] for e in bw.extra] + [mp_buildings[r]["value"] for r, _ in rel_polys]
    b_user = bw.users + [mp_buildings[r]["user"] for r, _ in rel_polys]
    return b_type, b_id, b_geom, b_layer, b_value, b_user


def _area_polygons(aw: _Lines):
    """The closed area ways as polygons."""
    a_geoms = aw.geoms()
    if len(a_geoms):
        coords, idx = shapely.get_coordinates(a_geoms, return_index=True)
        a_polys = shapely.polygons(shapely.linearrings(coords, indices=idx))
    else:
        a_polys = np.empty(0, dtype=object)
    return a_polys


def _firsts(lines: _Lines) -> list:
    """(id, first point or None, user) of each way: where a finding on it is shown."""
    gs = lines.geoms()
    out = []
    pts = shapely.get_point(gs, 0) if len(gs) else []
    for oid, user, p in zip(_back(lines.ids), lines.users, pts):
        out.append((int(oid), (p.x, p.y) if p is not None and not p.is_empty else None, user))
    return out


def _keep_near(maybe: list, scope: Scope, rel_polys: list) -> int:
    """Keep the waiting ways (and building areas) that meet the scope's areas: their boxes are tested
    first, read straight from the WKB bytes; only the ways near the changes become shapely geometries."""
    near = 0
    if not maybe:
        return 0
    n = len(maybe)
    lines = [i for i, m in enumerate(maybe) if isinstance(m[3], bytes) and m[3].startswith(_WKB_LINE)]
    boxes = np.empty((n, 4))
    boxes[lines] = _line_boxes([maybe[i][3] for i in lines])
    rest = np.setdiff1d(np.arange(n), lines)
    if len(rest):
        boxes[rest] = shapely.bounds(_geoms([maybe[i][3] for i in rest]))
    close = np.nonzero(scope.hits(shapely.box(*boxes.T)))[0]
    geoms = _geoms([maybe[i][3] for i in close])
    keep = scope.hits(geoms)
    for i, ok in zip(close.tolist(), keep.tolist()):
        if ok:
            target, oid, user, g, extra = maybe[i]
            near += 1
            if target is rel_polys:
                rel_polys.append((oid, g))
            else:
                target.add(oid, user, g, extra)
    maybe.clear()
    return near


# Long on purpose: one pass over the file, the hot path (every way of a country's extract). Its per-way steps
# share a dozen values (the scope's ids, the negative nodes, the targets) through geom_of and the loop's
# locals; split, each way would pass them all. What comes before and after the loop is in the helpers above.
def _read(src, label: str, remapped: bool, edited, stats: dict, scope: Scope | None = None) -> Features:
    import osmium

    if scope is not None and not scope.area_only:
        s_ways, s_rels, moved_nodes = _scope_ids(scope, remapped)
    else:
        s_ways, s_rels, moved_nodes = set(), set(), None
    areas = osmium.area.AreaManager()
    first = _first_pass(src, moved_nodes, areas)
    members, mp_members, mp_buildings = first.members, first.mp_members, first.buildings
    moved = first.moved if moved_nodes else None
    neighbours_only = scope is not None and not scope.area_only
    maybe: list = []  # scoped read: (target, id, user, geometry, extra) of ways not changed, to test in bulk
    near = 0

    if remapped:
        neg = {}
    elif scope is not None and scope.new_nodes is not None:  # a merge's new nodes: known already
        neg = scope.new_nodes
    else:
        neg = None  # read when the first way needs them (most files have none: no extra pass)
    wkbf = osmium.geom.WKBFactory()
    line = wkbf.create_linestring
    ALL = osmium.geom.use_nodes.ALL

    bw, hw, aw, unclosed, untagged = _Lines(), _Lines(), _Lines(), _Lines(), _Lines()
    member_wkb: dict[int, object] = {}
    rel_polys: list = []  # (id, wkb)
    rel_seen: set[int] = set()
    pending: list = []  # (refs, coords, target, id, user, extra, is_member): ways with unresolved negative node ids
    n_ways = 0
    missing = 0
    degenerate = 0

    known = scope.way_coords if scope is not None and not remapped else {}

    def negatives() -> dict:
        nonlocal neg
        if neg is None:
            neg = _leading_negative_nodes(src)
        return neg

    def geom_of(w):
        """WKB of the way's line, a coordinate list (negative node ids resolved), or None."""
        cs = known.get(w.id)
        if cs is not None:  # a merge's new way: its points are known already
            return cs
        nodes = w.nodes
        # a new way (negative first node) cannot be built by libosmium when the file has negative nodes
        if not len(nodes) or nodes[0].ref > 0 or not negatives():
            try:
                return bytes.fromhex(line(w, ALL))
            except Exception:
                pass
        negs = negatives()
        refs, coords, unresolved = [], [], False
        for n in w.nodes:
            refs.append(n.ref)
            loc = n.location
            if loc.valid():
                coords.append((loc.lon, loc.lat))
            else:
                p = negs.get(n.ref)
                if p is None:
                    unresolved = True
                    coords.append(None)
                else:
                    coords.append(p)
        if unresolved:
            return ("pending", refs, coords) if any(r < 0 for r in refs) and not remapped else None
        return coords if len(coords) >= 2 else None

    cells = scope.cells if scope is not None else None  # Scope.far, inlined: once per building of the file
    for o in _main_pass(src, areas, list(mp_buildings)):
        if o.is_way():
            n_ways += 1
            wid = o.id
            tags = o.tags
            if moved is not None and wid > 0 and wid in moved:
                s_ways.add(wid)  # a way whose node was moved: changed too
            b = tags.get("building")
            h = tags.get("highway")
            if neighbours_only and b is None and h is None and wid not in s_ways:
                continue  # near the changes, only buildings and highways are read
            if b is not None and cells is not None and wid not in s_ways:
                first = o.nodes
                if len(first):
                    loc = first[0].location
                    if (loc.x // CELL_E7, loc.y // CELL_E7) not in cells:
                        continue  # a building far from the changes (or the area): its first node tells (Scope.far)
            target = None
            extra = None
            if _is_building(b):
                if not o.is_closed():
                    target = unclosed
                elif len(o.nodes) >= 4:
                    target, extra = bw, (_layer(tags.get("layer")), b)
                else:  # closed with one or two corners: no outline to check
                    degenerate += 1
                    continue
            elif h is not None:
                if h not in HIGHWAY_IGNORED and tags.get("area") != "yes" and \
                        tags.get("tunnel") not in PASSAGE_TUNNELS and tags.get("covered") != "yes":
                    target, extra = hw, (_layer(tags.get("layer")), h)
            elif len(tags) == 0 or all(_uninteresting(t.k) for t in tags):
                if wid not in members:
                    target = untagged
            elif o.is_closed() and len(o.nodes) >= 4 and _is_area(tags):
                target = aw
            is_member = wid in mp_members
            if scope is not None and wid not in s_ways:
                # not changed: a neighbour (building, highway) near the changes, or anything in the area
                if target is None or not (scope.area_only or target is bw or target is hw):
                    continue
                g = geom_of(o)
                if g is None or isinstance(g, tuple):  # not counted as not checked: it may lie far away
                    continue
                maybe.append((target, wid, o.user or "", g, extra))
                if len(maybe) >= SCOPE_BATCH:
                    near += _keep_near(maybe, scope, rel_polys)
                continue
            if target is None and not is_member:
                continue
            g = geom_of(o)
            if g is None:
                missing += 1
                continue
            if isinstance(g, tuple):
                pending.append((g[1], g[2], target, wid, o.user or "", extra, is_member))
                continue
            if target is not None:
                target.add(wid, o.user or "", g, extra)
            if is_member:
                member_wkb[wid] = g
        elif o.is_area():
            if o.from_way():
                continue
            rid = o.orig_id()
            if rid not in mp_buildings:
                continue
            rel_seen.add(rid)
            try:
                wkb = bytes.fromhex(wkbf.create_multipolygon(o))
            except Exception:  # an empty area: rings not assembled
                if scope is not None and rid not in s_rels:
                    rel_seen.discard(rid)  # not checked here: neither broken nor incomplete
                continue
            if scope is not None and rid not in s_rels:
                maybe.append((rel_polys, rid, "", wkb, None))
            else:
                rel_polys.append((rid, wkb))
    if scope is not None:
        near += _keep_near(maybe, scope, rel_polys)

    if pending:  # negative node ids not at the start of the file: one more pass over the nodes
        missing += _resolve_pending(src, pending, member_wkb)

    # building relations: assembled, empty (broken) or missing (incomplete: not checked)
    broken, incomplete = _broken_relations(mp_buildings, rel_polys, rel_seen, scope, s_rels)
    b_type, b_id, b_geom, b_layer, b_value, b_user = _building_arrays(bw, rel_polys, mp_buildings)
    nb, nr = len(bw.ids), len(rel_polys)
    a_polys = _area_polygons(aw)

    broken_out = _locate_broken(src, broken, member_wkb) if broken else []

    stats.update({
        "ways": n_ways,
        "buildings": nb + nr,
        "building_relations": nr,
        "highways": len(hw.ids),
        "area_ways": len(aw.ids),
        "ways_not_checked": missing,
        "degenerate_buildings": degenerate,
        "relations_not_checked": incomplete,
        **({"scope": scope.label, "neighbours_read": near} if scope is not None else {}),
    })
    return Features(
        source=label,
        b_type=b_type, b_id=b_id, b_geom=b_geom, b_layer=b_layer, b_user=b_user, b_value=b_value,
        h_id=_back(hw.ids), h_geom=hw.geoms(), h_layer=np.array([e[0] for e in hw.extra], dtype=np.int64),
        h_user=hw.users, h_value=[e[1] for e in hw.extra],
        a_id=_back(aw.ids), a_geom=a_polys, a_user=aw.users,
        unclosed=_firsts(unclosed), untagged=_firsts(untagged), broken_relations=broken_out,
        stats=stats, edited=edited,
        touched=None if scope is None or scope.area_only else
        {*scope.ids, *(("way", int(i)) for i in _back(list(s_ways))),
         *(("relation", int(i)) for i in _back(list(s_rels)))},
    )


def _locate_broken(src, broken: list, member_wkb: dict) -> list:
    """A point for each broken building relation: the first node of its first member way we have."""
    import osmium

    wanted = {rid: i for i, (rid, _u) in enumerate(broken)}
    out = [(int(_back([rid])[0]), None, user) for rid, user in broken]
    for r in osmium.FileProcessor(src, osmium.osm.RELATION):
        i = wanted.get(r.id)
        if i is None:
            continue
        for m in r.members:
            if m.type == "w" and m.ref in member_wkb:
                g = member_wkb[m.ref]
                if isinstance(g, bytes):
                    p = shapely.get_point(shapely.from_wkb(g), 0)
                    pt = (p.x, p.y)
                else:
                    pt = tuple(g[0])
                rid, _pt, user = out[i]
                out[i] = (rid, pt, user)
                break
    return out


_REASON_POINT = re.compile(r"\[\s*(-?[\d.eE+-]+)\s+(-?[\d.eE+-]+)\s*\]")


def reason_point(reason: str) -> tuple[float, float] | None:
    """The (x, y) that GEOS names in an is_valid_reason text, if any."""
    m = _REASON_POINT.search(reason or "")
    return (float(m.group(1)), float(m.group(2))) if m else None
