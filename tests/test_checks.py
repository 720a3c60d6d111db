"""Quality checks: each check on small hand-written OSM files with known answers.

Shapes are laid out in metres in UTM zone 29N (around Dianguirdé) and
written as JOSM XML, so the expected overlaps, angles and areas are exact.
The findings layer is re-read with fiona; Liechtenstein gives plausible counts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import fiona
import pytest
import shapely
from pyproj import Transformer

from mapathon.errors import MapathonError
from mapathon.quality.checks import check_file

from conftest import LIECHTENSTEIN, Cli

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)

TO_LL = Transformer.from_crs(32629, 4326, always_xy=True)
TO_M = Transformer.from_crs(4326, 32629, always_xy=True)
X0, Y0 = TO_M.transform(-9.0162, 14.4932)


class Osm:
    """A JOSM file drawn in metres from (X0, Y0); new ids from -1 as JOSM numbers them."""

    def __init__(self):
        self.next = -1
        self.lines: list[str] = []

    def _id(self) -> int:
        i = self.next
        self.next -= 1
        return i

    def node(self, x, y, tags=None, oid=None, action="modify", version=None) -> int:
        oid = oid if oid is not None else self._id()
        lon, lat = TO_LL.transform(X0 + x, Y0 + y)
        v = f" version='{version}'" if version else ""
        body = "".join(f"<tag k='{k}' v='{val}'/>" for k, val in (tags or {}).items())
        self.lines.append(f"<node id='{oid}' action='{action}'{v} visible='true' lat='{lat:.9f}' lon='{lon:.9f}'>"
                          f"{body}</node>")
        return oid

    def way(self, pts, tags, closed=True, action="modify") -> int:
        ids = [self.node(x, y) for x, y in pts]
        if closed:
            ids.append(ids[0])
        wid = self._id()
        nds = "".join(f"<nd ref='{r}'/>" for r in ids)
        body = "".join(f"<tag k='{k}' v='{val}'/>" for k, val in (tags or {}).items())
        self.lines.append(f"<way id='{wid}' action='{action}' visible='true'>{nds}{body}</way>")
        return wid

    def relation(self, members, tags) -> int:
        rid = self._id()
        ms = "".join(f"<member type='{t}' ref='{r}' role='{role}'/>" for t, r, role in members)
        body = "".join(f"<tag k='{k}' v='{val}'/>" for k, val in tags.items())
        self.lines.append(f"<relation id='{rid}' action='modify' visible='true'>{ms}{body}</relation>")
        return rid

    def square(self, x, y, w, h=None, tags=None, angle=0.0, skew=0.0, **kw) -> int:
        """A w x h rectangle with its first corner at (x, y), turned by *angle*; *skew* degrees off square."""
        h = w if h is None else h
        a, b = math.radians(angle), math.radians(angle + 90 + skew)
        u = (w * math.cos(a), w * math.sin(a))
        v = (h * math.cos(b), h * math.sin(b))
        pts = [(x, y), (x + u[0], y + u[1]), (x + u[0] + v[0], y + u[1] + v[1]), (x + v[0], y + v[1])]
        return self.way(pts, tags or {"building": "yes"}, **kw)

    def write(self, path: Path) -> Path:
        path.write_text("<?xml version='1.0' encoding='UTF-8'?>\n<osm version='0.6' generator='JOSM'>\n"
                        + "\n".join(self.lines) + "\n</osm>\n", encoding="utf-8")
        return path


def kinds(result) -> dict:
    out: dict = {}
    for f in result.findings:
        out.setdefault(f.kind, []).append(f)
    return out


# -- buildings against buildings ------------------------------------------------------------------------


def test_duplicates_and_overlaps_by_share_of_the_smaller_building(tmp_path):
    o = Osm()
    a = o.square(0, 0, 10)
    b = o.square(1, 0, 10)  # 90 % overlap: duplicate
    c = o.square(100, 0, 10)
    d = o.square(105, 0, 10)  # 50 %: overlap
    o.square(200, 0, 10)
    o.square(209.5, 0, 10)  # 5 %: fine
    o.square(300, 0, 10)
    o.square(310, 0, 10)  # touching: fine
    e = o.square(400, 0, 20)
    f = o.square(405, 5, 4)  # a hut wholly inside a big building: an overlap, not the same house twice
    r = check_file(o.write(tmp_path / "a.osm"))
    k = kinds(r)
    dups = sorted((sorted(i for _t, i in x.objects), round(x.value)) for x in k["duplicate_building"])
    assert dups == [(sorted([a, b]), 90)]
    ovs = {tuple(sorted(i for _t, i in x.objects)): x for x in k["overlapping_buildings"]}
    assert set(ovs) == {tuple(sorted([c, d])), tuple(sorted([e, f]))}
    assert ovs[tuple(sorted([c, d]))].value == pytest.approx(50, abs=0.5)
    assert ovs[tuple(sorted([e, f]))].value == pytest.approx(100, abs=0.5)
    assert "16 m² lies 100 % inside one of 400 m²" in ovs[tuple(sorted([e, f]))].message
    assert set(k) == {"duplicate_building", "overlapping_buildings"}
    ov = ovs[tuple(sorted([c, d]))]
    # the location is inside the overlap
    lon, lat = ov.lon, ov.lat
    x, y = TO_M.transform(lon, lat)
    assert 105 <= x - X0 <= 110 and 0 <= y - Y0 <= 10


def _turned(o: Osm, cx, cy, w, angle):
    """A w x w square centred on (cx, cy), turned by *angle* degrees."""
    r = w / math.sqrt(2)
    turns = [math.radians(angle + 45 + 90 * k) for k in range(4)]
    return o.way([(cx + r * math.cos(a), cy + r * math.sin(a)) for a in turns], {"building": "yes"})


def test_the_typical_duplicate_is_an_error(tmp_path):
    """The same 9 m house drawn twice by two volunteers: a duplicate however it was drawn again."""
    o = Osm()
    pairs = {
        "offset 1 m": (o.square(0, 0, 9), o.square(1, 1, 9)),  # 79 % of the smaller one: was only an overlap
        "offset 1.7 m": (o.square(50, 0, 9), o.square(51.5, 0.7, 9)),  # 77 %, as reported in the issue
        "turned 5 degrees": (_turned(o, 104.5, 4.5, 9, 0), _turned(o, 104.5, 4.5, 9, 5)),
        "turned and moved": (_turned(o, 154.5, 4.5, 9, 0), _turned(o, 155.3, 5.1, 9.4, 6)),
        "a bit smaller": (o.square(200, 0, 9), o.square(200.5, 0.5, 8)),
    }
    shared = (o.square(300, 0, 9), o.square(309, 0, 9))  # two houses sharing a wall
    o.square(350, 0, 9)
    o.square(358.7, 0, 9)  # a wall drawn 30 cm into the neighbour: 3 %, fine
    hut = (o.square(400, 0, 30), o.square(410, 10, 4))  # a small hut in a big compound building
    half = (o.square(500, 0, 10), o.square(500, 0, 10, 5))  # one house drawn over half of another
    r = check_file(o.write(tmp_path / "twice.osm"))
    k = kinds(r)
    dups = {tuple(sorted(i for _t, i in x.objects)): x for x in k["duplicate_building"]}
    for what, pair in pairs.items():
        assert tuple(sorted(pair)) in dups, what
    assert len(dups) == len(pairs)
    assert dups[tuple(sorted(pairs["offset 1 m"]))].value == pytest.approx(64 / 81 * 100, abs=0.5)
    assert dups[tuple(sorted(pairs["offset 1.7 m"]))].value == pytest.approx(7.5 * 8.3 / 81 * 100, abs=0.5)
    assert "drawn twice" in dups[tuple(sorted(pairs["offset 1 m"]))].message
    ovs = {tuple(sorted(i for _t, i in x.objects)) for x in k["overlapping_buildings"]}
    assert ovs == {tuple(sorted(hut)), tuple(sorted(half))}
    assert all(tuple(sorted(shared)) not in d for d in (dups, ovs))
    assert set(k) == {"duplicate_building", "overlapping_buildings"}


def test_not_square_uses_josm_thresholds(tmp_path):
    o = Osm()
    five = o.square(0, 0, 10, 6, skew=5)
    o.square(50, 0, 10, 6, skew=0.5)  # within 1 degree: square enough
    o.square(100, 0, 10, 6, skew=15)  # 15 degrees: drawn on purpose, not "almost square"
    o.square(150, 0, 10, 6, angle=33)  # a turned rectangle
    o.way([(200, 0), (220, 0), (220, 10), (210, 10), (210, 20), (200, 20)], {"building": "yes"})  # L: a 270 corner
    o.way([(250 + 3 * math.cos(t * math.pi / 6), 3 * math.sin(t * math.pi / 6)) for t in range(12)],
          {"building": "hut"})  # round hut
    nine = o.square(300, 0, 10, 6, skew=9.5)
    r = check_file(o.write(tmp_path / "sq.osm"))
    k = kinds(r)
    found = {x.objects[0][1]: x for x in k["building_not_square"]}
    assert set(found) == {five, nine}
    assert found[five].value == pytest.approx(5, abs=0.15)  # OSM keeps 7 decimals: ~1 cm on a 6 m wall
    assert found[nine].value == pytest.approx(9.5, abs=0.15)
    assert set(k) == {"building_not_square"}


def test_tiny_unclosed_untagged_and_self_intersecting(tmp_path):
    o = Osm()
    tiny = o.square(0, 0, 0.4)  # 0.16 m2
    o.square(10, 0, 0.6)  # 0.36 m2: fine
    open_way = o.way([(20, 0), (28, 0), (28, 6), (20, 6)], {"building": "yes"}, closed=False)
    stray = o.way([(40, 0), (45, 5)], {}, closed=False)
    o.way([(50, 0), (55, 5)], {"source": "Bing"}, closed=False)  # only an uninteresting tag: untagged too
    member = o.way([(60, 0), (70, 0), (70, 10), (60, 10)], {})
    o.relation([("way", member, "outer")], {"type": "multipolygon", "building": "yes"})  # a building relation
    bowtie = o.way([(80, 0), (88, 6), (88, 0), (80, 6)], {"building": "yes"})
    field_ = o.way([(100, 0), (130, 30), (130, 0), (100, 30)], {"landuse": "farmland"})
    bad_outer = o.way([(150, 0), (160, 10), (160, 0), (150, 10)], {})
    bad_rel = o.relation([("way", bad_outer, "outer")], {"type": "multipolygon", "building": "yes"})
    r = check_file(o.write(tmp_path / "t.osm"))
    k = kinds(r)
    assert [f.objects for f in k["tiny_building"]] == [[("way", tiny)]]
    assert k["tiny_building"][0].value == pytest.approx(0.16, rel=0.01)
    assert [f.objects for f in k["unclosed_building"]] == [[("way", open_way)]]
    assert sorted(f.objects[0][1] for f in k["untagged_way"]) == sorted([stray, stray - 3])
    assert {f.objects[0] for f in k["self_intersecting_area"]} == {("way", bowtie), ("way", field_),
                                                                   ("relation", bad_rel)}
    assert all(f.lon is not None for f in r.findings)
    assert r.stats["building_relations"] == 1  # the good multipolygon was assembled as a building
    assert "duplicate_building" not in k  # the relation and its untagged outer way are one building


def test_buildings_crossing_highways_in_the_same_layer(tmp_path):
    o = Osm()
    b0 = o.square(0, 0, 10)
    road = o.way([(-10, 5), (20, 5)], {"highway": "track"}, closed=False)
    o.square(50, 0, 10)
    o.way([(40, 5), (70, 5)], {"highway": "footway", "layer": "1"}, closed=False)  # a bridge over it
    b2 = o.square(100, 0, 10, tags={"building": "yes", "layer": "1"})
    high = o.way([(90, 5), (120, 5)], {"highway": "footway", "layer": "1"}, closed=False)
    o.square(150, 0, 10)
    o.way([(140, 5), (150, 5)], {"highway": "path"}, closed=False)  # ends at the wall
    o.square(200, 0, 10)
    o.way([(190, 5), (220, 5)], {"highway": "service", "tunnel": "building_passage"}, closed=False)
    r = check_file(o.write(tmp_path / "x.osm"))
    found = sorted(tuple(f.objects) for f in r.findings if f.kind == "building_crosses_highway")
    assert found == sorted([(("way", b0), ("way", road)), (("way", b2), ("way", high))])
    assert all(f.kind == "building_crosses_highway" for f in r.findings)


def test_deleted_objects_are_not_checked_and_edits_are_attributed(tmp_path):
    o = Osm()
    o.square(0, 0, 10)
    o.square(0.5, 0, 10, action="delete")  # drawn twice, then deleted in JOSM: gone
    o.square(50, 0, 10, skew=4)
    r = check_file(o.write(tmp_path / "awa.osm"))
    assert [f.kind for f in r.findings] == ["building_not_square"]
    assert r.findings[0].contributed and r.findings[0].volunteers == ["awa.osm"]


def test_geojson_layer_reads_back_with_fiona(tmp_path, cli):
    o = Osm()
    o.square(0, 0, 10)
    o.square(1, 0, 10)
    o.square(50, 0, 10, skew=3)
    o.square(100, 0, 0.3)
    src = o.write(tmp_path / "v.osm")
    out = tmp_path / "findings.geojson"
    res = cli("check", src, "--geojson", out, "--json")
    data = json.loads(res.stdout)
    assert data["counts"]["duplicate_building"] == 1 and data["counts"]["building_not_square"] == 1
    with fiona.open(out) as layer:
        feats = list(layer)
        assert layer.crs.to_epsg() == 4326
    assert len(feats) == len(data["findings"]) == 3
    # the layer is named "findings" (not after the temporary file it was written to)
    assert fiona.listlayers(out) == ["findings"] and json.loads(out.read_text())["name"] == "findings"
    props = {f.properties["kind"]: f.properties for f in feats}
    assert set(props) == {"duplicate_building", "building_not_square", "tiny_building"}
    assert props["duplicate_building"]["josm"].startswith("w-") and props["duplicate_building"]["value"] > 80
    for f, d in zip(sorted(feats, key=lambda f: f.properties["kind"]), sorted(data["findings"], key=lambda d: d["kind"])):
        lon, lat = f.geometry.coordinates
        assert lon == pytest.approx(d["lon"], abs=1e-6) and lat == pytest.approx(d["lat"], abs=1e-6)
        assert abs(lon + 9.0162) < 0.01 and abs(lat - 14.4932) < 0.01
    # human output names the findings and says where the layer went
    res = cli("check", src, "--geojson", tmp_path / "again.geojson")
    assert "Duplicate building" in res.stdout and "again.geojson" in res.stdout


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, cli):
    bad = tmp_path / "cut.osm"
    bad.write_text("<?xml version='1.0'?><osm version='0.6'><node id='-1' lat='1' lon='1'", encoding="utf-8")
    out = tmp_path / "f.geojson"
    res = cli("check", bad, "--geojson", out, ok=False)
    assert "cut.osm" in res.stderr and "not well-formed" in res.stderr
    assert not out.exists()
    with pytest.raises(MapathonError, match="no such file"):
        check_file(tmp_path / "missing.osm.pbf")
    good = Osm()
    good.square(0, 0, 10)
    res = cli("check", good.write(tmp_path / "g.osm"), "--geojson", tmp_path / "f.txt", ok=False)
    assert "GeoJSON" in res.stderr


NEW_IDS_OPL = """\
n5 v1 dV x-9.0 y14.5
n-1 v0 dV x-9.0001 y14.5
n-2 v0 dV x-9.0001 y14.5001
n-3 v0 dV x-9.0 y14.5001
w-1 v0 dV Tbuilding=yes Nn5,n-1,n-2,n-3,n5
n-4 v0 dV x-9.00001 y14.5
n-5 v0 dV x-9.00011 y14.5
n-6 v0 dV x-9.00011 y14.5001
n-7 v0 dV x-9.00001 y14.5001
w-2 v0 dV Tbuilding=yes Nn-4,n-5,n-6,n-7,n-4
"""


@pytest.mark.parametrize("sort", [True, False])
def test_pbf_with_new_negative_ids_sorted_or_not(tmp_path, sort):
    """libosmium keeps no locations for negative node ids: they are found by mapathon, in either order."""
    import osmium

    path = tmp_path / "new.osm.pbf"
    if sort:
        mr = osmium.MergeInputReader()
        mr.add_buffer(NEW_IDS_OPL.encode(), "opl")
        with osmium.SimpleWriter(str(path)) as w:
            mr.apply(w)
    else:
        with osmium.SimpleWriter(str(path)) as w:
            for o in osmium.FileProcessor(osmium.io.FileBuffer(NEW_IDS_OPL.encode(), "opl")):
                (w.add_node if o.is_node() else w.add_way)(o)
    r = check_file(path)
    assert r.stats["buildings"] == 2 and r.stats["ways_not_checked"] == 0
    assert [(f.kind, sorted(f.objects)) for f in r.findings] == [("duplicate_building", [("way", -2), ("way", -1)])]


# -- in a project: tasks, villages and volunteers; merged snapshots -------------------------------------


def _task_containing(project_dir: Path, lon: float, lat: float):
    from mapathon.project import open_project
    from mapathon.tasks.lifecycle import list_tasks

    with open_project(project_dir) as p:
        hits = [t for t in list_tasks(p) if t.geom.covers(shapely.Point(lon, lat))]
    return min(hits, key=lambda t: t.id)


def test_duplicate_across_a_task_border_between_volunteers_in_a_merge(tmp_path, gridded):
    pcli = Cli(gridded)
    north = _task_containing(gridded, -9.0162, 14.4935)
    minx, miny, maxx, maxy = north.geom.bounds
    south = _task_containing(gridded, (minx + maxx) / 2, miny - 0.001)
    bx, by = TO_M.transform((minx + maxx) / 2, miny)  # on the border between the two tasks
    awa, fanta = Osm(), Osm()
    a = awa.square(bx - X0, by - Y0 - 3, 8, 6)
    awa.square(bx - X0 - 60, by - Y0 + 40, 8, 6)
    f = fanta.square(bx - X0 + 0.4, by - Y0 - 3.2, 8, 6)  # the same house, drawn again
    fanta.square(bx - X0 + 60, by - Y0 - 40, 8, 6, skew=6)
    pa, pf = awa.write(tmp_path / "awa.osm"), fanta.write(tmp_path / "fanta.osm")
    assert a == f == -5  # JOSM numbering: both files use the same ids
    pcli("claim", north.id, "--as", "Awa")  # only a task's holder or mapper hands in files for it
    pcli("claim", south.id, "--as", "Fanta")
    pcli("submit", pa, "--as", "Awa", "--task", north.id)
    pcli("submit", pf, "--as", "Fanta", "--task", south.id)
    merged = tmp_path / "merged.osm.pbf"
    res = pcli("merge", "-o", merged, "--json")
    summary = json.loads(res.stdout)
    assert summary["stats"]["new"] > 0
    res = pcli("check", merged, "--json")
    data = json.loads(res.stdout)
    assert data["provenance"] == "merge"
    (dup,) = [d for d in data["findings"] if d["kind"] == "duplicate_building"]
    assert sorted(dup["volunteers"]) == ["Awa", "Fanta"]
    assert dup["detail"]["across_tasks"] and dup["detail"]["between_volunteers"]
    assert dup["task"] in (north.id, south.id) and dup["village"] == "Dianguirdé"
    (sq,) = [d for d in data["findings"] if d["kind"] == "building_not_square"]
    assert sq["volunteers"] == ["Fanta"] and sq["task"] == south.id and sq["contributed"]
    # a submitted file checked on its own is its volunteer's
    data = json.loads(pcli("check", pf, "--json").stdout)
    assert data["provenance"] == "contribution" and data["findings"][0]["volunteers"] == ["Fanta"]


def test_liechtenstein_has_plausible_counts():
    r = check_file(LIECHTENSTEIN)
    c = r.counts()
    assert 17_500 <= r.stats["buildings"] <= 17_800
    assert r.stats["highways"] > 5_000
    assert 1 <= c["duplicate_building"] <= 200
    assert 300 <= c["building_not_square"] <= 6_000  # JOSM flags some thousands of hand-drawn buildings
    assert c["tiny_building"] <= 20 and c["building_crosses_highway"] <= 300
    assert r.stats["ways_not_checked"] == 0
    assert all(f.lon is not None and 9.4 < f.lon < 9.7 and 47.0 < f.lat < 47.3 for f in r.findings)
    assert r.seconds < 15


# -- checks scoped to a merge's changes ------------------------------------------------------


def _moved_base_node(path: Path) -> tuple[Path, int, int]:
    """A JOSM file moving one corner of a Liechtenstein building by ~4 m (the way itself is not in the file)
    and drawing another building of the extract again, 30 cm off. Returns it, the two base buildings' ids."""
    import osmium

    found = []
    for w in osmium.FileProcessor(str(LIECHTENSTEIN), osmium.osm.WAY):
        if w.tags.get("building") and len(w.nodes) == 5 and w.nodes[0].ref == w.nodes[-1].ref:
            found.append((w.id, [n.ref for n in w.nodes]))
            if len(found) == 2:
                break
    (wid, refs), (twin, twin_refs) = found
    loc = {n.id: (n.location.lon, n.location.lat, n.version) for n in osmium.FileProcessor(
        str(LIECHTENSTEIN), osmium.osm.NODE).with_filter(osmium.filter.IdFilter(refs + twin_refs))}
    lon, lat, version = loc[refs[1]]
    lines = [f"<node id='{refs[1]}' action='modify' version='{version}' visible='true' lat='{lat + 0.00002:.7f}' "
             f"lon='{lon + 0.00005:.7f}'/>"]
    for k, r in enumerate(twin_refs[:4]):
        lines.append(f"<node id='{-1 - k}' action='modify' visible='true' lat='{loc[r][1] + 0.0000027:.7f}' "
                     f"lon='{loc[r][0]:.7f}'/>")
    lines.append("<way id='-10' action='modify' visible='true'>" + "".join(f"<nd ref='{-1 - k}'/>" for k in
                 (0, 1, 2, 3, 0)) + "<tag k='building' v='yes'/></way>")
    path.write_text("<?xml version='1.0' encoding='UTF-8'?>\n<osm version='0.6' generator='JOSM'>\n"
                    + "\n".join(lines) + "\n</osm>\n", encoding="utf-8")
    return path, wid, twin


def test_merge_checks_the_changes_and_what_is_around_them_as_the_whole_file_does(tmp_path):
    """On the real Liechtenstein extract with generated volunteers' files (new buildings, duplicates across
    volunteers, modified and deleted buildings, a moved corner of a base building): the scoped checks find
    exactly the whole snapshot's findings that concern a changed object, while reading a fraction of it."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import bench_merge

    from mapathon.osm.merge import merge
    from mapathon.osm.submit import with_provenance
    from mapathon.quality.where import MergeProvenance, merge_scope

    files = bench_merge.generate(tmp_path, 12, 600)
    moved, moved_way, twin = _moved_base_node(tmp_path / "moved.osm")
    out = tmp_path / "merged.osm.pbf"
    result = merge(with_provenance(None, [*files, moved]), out, base=LIECHTENSTEIN)
    scope = merge_scope(result)
    assert ("way", moved_way) not in scope.ids and scope.nodes  # only the node is a change
    scoped = check_file(out, provenance=MergeProvenance(result), scope=scope)
    whole = check_file(out, provenance=MergeProvenance(result))
    touched = scope.ids | {("way", moved_way)}

    def key(f):
        return (f.kind, tuple(f.objects), f.message, round(f.lon, 7), round(f.lat, 7), tuple(f.volunteers))

    expected = sorted(key(f) for f in whole.findings if touched & set(f.objects))
    assert sorted(key(f) for f in scoped.findings) == expected
    got = {f.kind for f in scoped.findings}
    assert {"duplicate_building", "overlapping_buildings"} <= got
    assert any(("way", twin) in f.objects for f in scoped.findings if f.kind == "duplicate_building")  # the base's
    assert any(("way", moved_way) in f.objects for f in scoped.findings)  # the base building whose corner moved
    assert all(f.contributed or ("way", moved_way) in f.objects for f in scoped.findings)
    assert len(whole.findings) > 2 * len(scoped.findings)  # the base's own problems are left out
    assert scoped.stats["buildings"] < whole.stats["buildings"] / 5
    assert scoped.stats["scope"] == "changes" and not scoped.warnings


def test_merge_checks_in_a_helper_process_as_here(tmp_path, monkeypatch):
    """The merge command checks the snapshot in a forked helper while it counts the credit: the findings,
    their attribution and the credit are those of doing both here (MAPATHON_JOBS=1)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import bench_merge

    from mapathon.osm.merge import merge
    from mapathon.osm.submit import with_provenance
    from mapathon.parallel import can_fork
    from mapathon.quality.commands import after_merge

    if not can_fork():
        pytest.skip("no fork or a single core")
    files = bench_merge.generate(tmp_path, 6, 400)
    moved, _moved_way, _twin = _moved_base_node(tmp_path / "moved.osm")
    out = tmp_path / "merged.osm.pbf"
    result = merge(with_provenance(None, [*files, moved]), out, base=LIECHTENSTEIN)
    reports = []
    for jobs in ("", "1"):
        monkeypatch.setenv("MAPATHON_JOBS", jobs)
        d = after_merge(None, result, out, geojson=tmp_path / f"findings{jobs}.geojson").as_dict()
        d["checks"].pop("seconds")
        d["checks"]["checked"].pop("timings")
        d["checks"]["checked"].pop("geojson")
        d.pop("findings_geojson")
        reports.append(d)
    assert reports[0] == reports[1]
    assert reports[0]["checks"]["findings"] and reports[0]["credit"]["total"]["findings"] > 0
    with fiona.open(tmp_path / "findings.geojson") as a, fiona.open(tmp_path / "findings1.geojson") as b:
        assert [dict(f["properties"]) for f in a] == [dict(f["properties"]) for f in b]


def test_merge_check_option(tmp_path, cli):
    """--check changes (the default) / all / none on the command line; a bad value is one line."""
    import shutil

    awa = Osm()
    awa.square(0, 0, 8, 6)
    awa.square(0.4, -0.2, 8, 6)  # drawn twice
    awa.square(300, 0, 8, 6, skew=6)
    pa = awa.write(tmp_path / "awa.osm")
    base = tmp_path / "base.osm.pbf"
    shutil.copy(Path(__file__).parent / "data" / "dianguirde-area-pois-osm2019.osm.pbf", base)
    counts = {}
    for mode in ("changes", "all", "none"):
        out = tmp_path / f"{mode}.osm.pbf"
        data = json.loads(cli("merge", pa, "--base", base, "-o", out, "--check", mode, "--json").stdout)
        counts[mode] = data["checks"]["counts"] if data["checks"] else None
    assert counts["changes"] == counts["all"]
    assert counts["changes"]["duplicate_building"] == 1 and counts["changes"]["building_not_square"] == 1
    assert counts["none"] is None
    res = cli("merge", pa, "-o", tmp_path / "x.osm.pbf", "--check", "some", ok=False)
    assert "--check some" in res.stdout + res.stderr
    assert not (tmp_path / "x.osm.pbf").exists()  # refused before merging


def test_check_bbox_is_the_whole_files_findings_in_the_box(tmp_path, cli):
    bbox = (9.50, 47.12, 9.54, 47.16)
    whole = check_file(LIECHTENSTEIN)
    data = json.loads(cli("check", LIECHTENSTEIN, "--bbox", ",".join(map(str, bbox)), "--json").stdout)
    got = {(d["kind"], tuple((o["type"], o["id"]) for o in d["objects"])) for d in data["findings"]}
    all_keys = {(f.kind, tuple(f.objects)) for f in whole.findings}
    assert got and got <= all_keys
    m = 0.002  # well inside the box: every finding of the whole file there is found
    inside = {(f.kind, tuple(f.objects)) for f in whole.findings if f.lon is not None
              and bbox[0] + m < f.lon < bbox[2] - m and bbox[1] + m < f.lat < bbox[3] - m}
    assert inside <= got
    assert data["checked"]["buildings"] < whole.stats["buildings"] / 2
    res = cli("check", LIECHTENSTEIN, "--bbox", "9.5,47.1,9.4,47.2", ok=False)
    assert "--bbox 9.5,47.1,9.4,47.2" in res.stdout + res.stderr
    res = cli("check", LIECHTENSTEIN, "--tasks", "3", ok=False)
    assert "needs a project" in res.stdout + res.stderr


def test_check_village_and_tasks_limit_the_file_to_their_area(tmp_path, gridded):
    from mapathon.project import open_project

    pcli = Cli(gridded)
    with open_project(gridded) as p:
        (v,) = [r for r in p.villages() if r["name"] == "Dianguirdé"]
    minx, miny, maxx, maxy = shapely.from_wkb(v["geom"]).bounds
    o = Osm()
    inside = o.square(0, 0, 10, 8, skew=5)  # at Dianguirdé
    far_x, far_y = TO_M.transform(maxx + 0.02, (miny + maxy) / 2)
    outside = o.square(far_x - X0, far_y - Y0, 10, 8, skew=5)
    path = o.write(tmp_path / "two.osm")
    objects = lambda data: {tuple((x["type"], x["id"]) for x in d["objects"]) for d in data["findings"]}  # noqa: E731
    assert objects(json.loads(pcli("check", path, "--json").stdout)) == {(("way", inside),), (("way", outside),)}
    data = json.loads(pcli("check", path, "--village", "Dianguirdé", "--json").stdout)
    assert objects(data) == {(("way", inside),)} and data["checked"]["scope"] == "Dianguirdé"
    task = _task_containing(gridded, -9.0162, 14.4932)
    data = json.loads(pcli("check", path, "--tasks", str(task.id), "--json").stdout)
    assert objects(data) == {(("way", inside),)}
    res = pcli("check", path, "--tasks", str(task.id), "--village", "Dianguirdé", ok=False)
    assert "not tasks and village" in res.stdout + res.stderr


def test_report_merged_checks_the_changes_all_or_nothing(tmp_path, gridded):
    pcli = Cli(gridded)
    task = _task_containing(gridded, -9.0162, 14.4932)
    o = Osm()
    o.square(0, 0, 8, 6)
    o.square(0.4, -0.2, 8, 6)  # drawn twice
    pcli("claim", task.id, "--as", "Awa")
    pcli("submit", o.write(tmp_path / "awa.osm"), "--as", "Awa", "--task", task.id)
    merged = tmp_path / "merged.osm.pbf"
    pcli("merge", "-o", merged, "--check", "none")
    data = {m: json.loads(pcli("report", "--merged", merged, "--check", m, "--json").stdout) for m in
            ("changes", "all", "none")}
    assert data["none"]["checks"] is None
    ch, al = data["changes"]["checks"], data["all"]["checks"]
    assert ch["checked"]["scope"] == "changes" and "scope" not in al["checked"]
    assert ch["counts"] == al["counts"] and ch["counts"]["duplicate_building"] == 1
    assert data["changes"]["credit"]["volunteers"]["Awa"]["findings"] == 1
    res = pcli("report", "--merged", merged, "--check", "none", "--geojson", tmp_path / "f.geojson", ok=False)
    assert "--geojson" in res.stdout + res.stderr
