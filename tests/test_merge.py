"""The merge engine: collecting rules, outputs re-read with independent readers, bad input.

Hand-written JOSM files are made by the tests; real data (Andorra with its
change file, Liechtenstein, Dianguirdé) comes from tests/data. Outputs are
re-read with pyosmium (libosmium) and, where installed, osmium-tool.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import osmium
import pytest

from mapathon.errors import MapathonError
from mapathon.osm.merge import InputSpec, merge, plan_merge
from mapathon.osm.readers import read_osm_file

from conftest import ANDORRA, ANDORRA_OSC, DIANGUIRDE_POIS, LIECHTENSTEIN, have

needs_osmium = pytest.mark.skipif(not have("osmium"), reason="osmium-tool is not installed: comparison skipped")


# -- helpers -------------------------------------------------------------------------------------------


def _attrs(oid, version, action, extra=""):
    a = f"id='{oid}'"
    if action:
        a += f" action='{action}'"
    a += " visible='true'"
    if version is not None:
        a += f" version='{version}' timestamp='2019-06-01T10:00:00Z' user='mapper' uid='42' changeset='7'"
    return a + extra


def _tags(tags):
    return "".join(f"\n    <tag k='{k}' v='{v}' />" for k, v in (tags or {}).items())


def node(oid, lat, lon, tags=None, version=None, action=None):
    if oid <= 0 and action is None:
        action = "modify"
    body = _tags(tags)
    a = _attrs(oid, version, action, f" lat='{lat}' lon='{lon}'")
    return f"  <node {a}>{body}\n  </node>" if body else f"  <node {a} />"


def way(oid, refs, tags=None, version=None, action=None):
    if oid <= 0 and action is None:
        action = "modify"
    nds = "".join(f"\n    <nd ref='{r}' />" for r in refs)
    return f"  <way {_attrs(oid, version, action)}>{nds}{_tags(tags)}\n  </way>"


def josm(path: Path, *objects: str) -> Path:
    path.write_text("<?xml version='1.0' encoding='UTF-8'?>\n<osm version='0.6' generator='JOSM'>\n"
                    + "\n".join(objects) + "\n</osm>\n", encoding="utf-8")
    return path


def building(first_node: int, way_id: int, lat: float, lon: float, tags=None, size=0.0001):
    ids = [first_node - i for i in range(4)]
    corners = [(lat, lon), (lat + size, lon), (lat + size, lon + size), (lat, lon + size)]
    return [node(i, la, lo) for i, (la, lo) in zip(ids, corners)] + \
        [way(way_id, ids + [ids[0]], tags or {"building": "yes"})]


def make_pbf(path: Path, opl: str) -> Path:
    """A small sorted .osm.pbf from OPL text (written by libosmium)."""
    mr = osmium.MergeInputReader()
    mr.add_buffer(opl.encode(), "opl")
    with osmium.SimpleWriter(str(path)) as w:
        mr.apply(w)
    return path


def read_objects(path: Path) -> dict:
    """Every object of an OSM file as libosmium (pyosmium) reads it: (type, id) -> (version, visible, tags, data)."""
    out = {}
    for o in osmium.FileProcessor(str(path)):
        if o.is_node():
            data = (round(o.location.lat, 7), round(o.location.lon, 7)) if o.location.valid() else None
        elif o.is_way():
            data = tuple(n.ref for n in o.nodes)
        else:
            data = tuple((m.type, m.ref, m.role) for m in o.members)
        out[(o.type_str(), o.id)] = (o.version, o.visible, dict(o.tags), data)
    return out


def josm_actions(path: Path) -> dict:
    """(type, id) -> action attribute, parsed with the standard library (independently of our reader)."""
    root = ET.parse(path).getroot()
    return {(el.tag[0], int(el.get("id"))): el.get("action") for el in root if el.tag in ("node", "way", "relation")}


def osc_sections(path: Path) -> dict:
    root = ET.parse(path).getroot()
    assert root.tag == "osmChange"
    return {(el.tag[0], int(el.get("id"))): sec.tag for sec in root for el in sec}


def osmium_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["osmium", *map(str, args)], capture_output=True, text=True)


def check_snapshot(path: Path) -> None:
    """The snapshot is sorted and reference-complete, as osmium-tool sees it."""
    if not have("osmium"):
        return
    r = osmium_tool("check-refs", path)
    assert r.returncode == 0 and "Nodes in ways missing: 0" in r.stdout + r.stderr, r.stdout + r.stderr
    r = osmium_tool("fileinfo", "-e", path)
    assert "Objects ordered (by type and id): yes" in r.stdout, r.stdout
    assert "Multiple versions of same object: no" in r.stdout, r.stdout


BASE_OPL = """\
n100 v3 dV c1 t2019-01-01T00:00:00Z i1 ubase T x-9.1 y14.5
n101 v2 dV c1 t2019-01-01T00:00:00Z i1 ubase Tman_made=water_well x-9.2 y14.6
n102 v1 dV c1 t2019-01-01T00:00:00Z i1 ubase T x-9.1001 y14.5
n103 v1 dV c1 t2019-01-01T00:00:00Z i1 ubase T x-9.1001 y14.5001
n104 v5 dV c1 t2019-01-01T00:00:00Z i1 ubase Tamenity=school x-9.3 y14.7
w200 v4 dV c1 t2019-01-01T00:00:00Z i1 ubase Tbuilding=yes Nn100,n102,n103,n100
"""


@pytest.fixture
def base(tmp_path) -> Path:
    return make_pbf(tmp_path / "base.osm.pbf", BASE_OPL)


# -- collecting rules --------------------------------------------------------------------------------------


def test_two_files_creating_node_and_way_minus_one_both_survive(tmp_path, cli):
    a = josm(tmp_path / "awa.osm", node(-1, 14.50, -9.10), node(-2, 14.5001, -9.10), node(-3, 14.5001, -9.1001),
             way(-1, [-1, -2, -3, -1], {"building": "yes"}))
    b = josm(tmp_path / "bakary.osm", node(-1, 14.60, -9.20), node(-2, 14.6001, -9.20), node(-3, 14.6001, -9.2001),
             way(-1, [-1, -2, -3, -1], {"building": "hut"}))
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (a, b)}
    out, osc, jo = tmp_path / "merged.osm.pbf", tmp_path / "up.osc", tmp_path / "up.osm"
    r = cli("merge", a, b, "-o", out, "--upload", osc, "--josm", jo, "--json")
    summary = json.loads(r.stdout)
    assert summary["stats"]["new"] == 8 and summary["stats"]["renumbered"] == 4
    objs = read_objects(out)
    ways = {k: v for k, v in objs.items() if k[0] == "w"}
    assert len(ways) == 2 and all(k[1] < 0 for k in ways)
    shapes = {}
    for (_t, wid), (_v, _vis, tags, refs) in ways.items():
        shapes[tags["building"]] = [objs[("n", r)][3] for r in refs]
    assert shapes["yes"][0] == (14.5, -9.1) and shapes["hut"][0] == (14.6, -9.2)
    assert len({r for (_t, _i), v in ways.items() for r in v[3]}) == 6  # six distinct nodes
    check_snapshot(out)
    # the upload files hold the same 8 new objects with negative ids and consistent references
    sections = osc_sections(osc)
    assert set(sections.values()) == {"create"} and len(sections) == 8 and all(i < 0 for _t, i in sections)
    up = read_objects(osc)
    for (t, i), (_v, _vis, _tags, refs) in up.items():
        if t == "w":
            assert all(("n", r) in up for r in refs)
    actions = josm_actions(jo)
    assert set(actions.values()) == {"modify"} and len(actions) == 8
    assert read_objects(jo).keys() == up.keys()
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (a, b)} == before  # inputs untouched


def test_same_version_modified_differently_is_a_conflict_with_a_deterministic_rule(tmp_path, base):
    a = josm(tmp_path / "a.osm", node(104, 14.7, -9.3, {"amenity": "school", "name": "École A"}, 5, "modify"))
    b = josm(tmp_path / "b.osm", node(104, 14.7, -9.3, {"amenity": "school", "name": "École B"}, 5, "modify"))
    r1 = merge([a, b], tmp_path / "ab.osm.pbf", base=base, upload=tmp_path / "ab.osc")
    merge([b, a], tmp_path / "ba.osm.pbf", base=base)
    assert [c.kind for c in r1.conflicts] == ["edit"]
    c = r1.conflicts[0]
    assert (c.type, c.id) == ("node", 104)
    assert c.kept["file"].endswith("a.osm") and [o["file"] for o in c.others] == [str(b)]
    assert read_objects(tmp_path / "ab.osm.pbf")[("n", 104)][2]["name"] == "École A"  # the first input wins
    assert read_objects(tmp_path / "ba.osm.pbf")[("n", 104)][2]["name"] == "École B"
    assert read_objects(tmp_path / "ab.osc")[("n", 104)][2]["name"] == "École A"
    ch = r1.change("node", 104)
    assert ch.action == "modify" and ch.origin.input.path == a and ch.obj.version == 5


def test_modification_beats_deletion_and_identical_edits_merge_silently(tmp_path, base):
    mod = node(104, 14.7, -9.3, {"amenity": "school", "name": "Dianguirdé"}, 5, "modify")
    a = josm(tmp_path / "a.osm", node(104, 14.7, -9.3, {"amenity": "school"}, 5, "delete"))
    b = josm(tmp_path / "b.osm", mod)
    c = josm(tmp_path / "c.osm", mod, node(-1, 14.71, -9.31, {"amenity": "toilets"}))  # not the same bytes as b
    r = merge([a, b, c], tmp_path / "m.osm.pbf", base=base)
    assert len(r.conflicts) == 1 and "modification beats a deletion" in r.conflicts[0].message
    assert read_objects(tmp_path / "m.osm.pbf")[("n", 104)][2] == {"amenity": "school", "name": "Dianguirdé"}
    ch = r.change("n", 104)
    assert ch.origin.input.path == b and [o.input.path for o in ch.also] == [c]  # identical edit of c merged
    r = merge([b, c], tmp_path / "m2.osm.pbf", base=base)
    assert r.conflicts == [] and r.stats["identical_edits_merged"] == 1 and r.stats["modified"] == 1


def test_delete_is_gone_from_snapshot_and_a_delete_in_the_upload(tmp_path, base, cli):
    a = josm(tmp_path / "a.osm", node(101, 14.6, -9.2, {"man_made": "water_well"}, 2, "delete"))
    out, osc, jo = tmp_path / "m.osm.pbf", tmp_path / "m.osc", tmp_path / "m.osm"
    cli("merge", "--base", base, a, "-o", out, "--upload", osc, "--josm", jo)
    objs = read_objects(out)
    assert ("n", 101) not in objs and ("n", 100) in objs and ("w", 200) in objs
    assert osc_sections(osc) == {("n", 101): "delete"}
    deleted = read_objects(osc)[("n", 101)]
    assert deleted[0] == 2 and deleted[1] is False  # version 2, deleted
    assert josm_actions(jo) == {("n", 101): "delete"}
    check_snapshot(out)


def test_deleting_a_node_a_surviving_way_uses_is_refused_as_a_conflict(tmp_path, base):
    # node 102 is a corner of the base's building 200, which nobody changed
    a = josm(tmp_path / "a.osm", node(102, 14.5, -9.1001, None, 1, "delete"))
    r = merge([a], tmp_path / "m.osm.pbf", base=base, upload=tmp_path / "m.osc")
    assert [c.kind for c in r.conflicts] == ["deleted-but-used"]
    assert "way 200" in r.conflicts[0].message
    assert ("n", 102) in read_objects(tmp_path / "m.osm.pbf")
    assert r.stats["deleted"] == 0 and r.stats["deletions_refused"] == 1
    assert ("n", 102) not in osc_sections(tmp_path / "m.osc")
    check_snapshot(tmp_path / "m.osm.pbf")
    # deleting the way and its nodes together is fine
    b = josm(tmp_path / "b.osm", node(100, 14.5, -9.1, None, 3, "delete"), node(102, 14.5, -9.1001, None, 1, "delete"),
             node(103, 14.5001, -9.1001, None, 1, "delete"), way(200, [100, 102, 103, 100], {"building": "yes"}, 4,
                                                                 "delete"))
    r = merge([b], tmp_path / "m2.osm.pbf", base=base, upload=tmp_path / "m2.osc")
    assert r.conflicts == [] and r.stats["deleted"] == 4
    objs = read_objects(tmp_path / "m2.osm.pbf")
    assert not any(k in objs for k in (("n", 100), ("n", 102), ("n", 103), ("w", 200)))
    # the upload deletes the way before its nodes
    order = [(el.tag, el.get("id")) for el in ET.parse(tmp_path / "m2.osc").getroot().find("delete")]
    assert order[0] == ("way", "200")
    check_snapshot(tmp_path / "m2.osm.pbf")


def test_exact_duplicates_collapse(tmp_path):
    well = {"man_made": "water_well", "name": "Puits"}
    a = josm(tmp_path / "a.osm", node(-9, 14.55, -9.05, well), *building(-1, -1, 14.5, -9.1))
    b = josm(tmp_path / "b.osm", *building(-1, -1, 14.5, -9.1), node(-5, 14.55, -9.05, well),
             *building(-11, -2, 14.52, -9.12))
    r = merge([a, b], tmp_path / "m.osm.pbf", upload=tmp_path / "m.osc")
    objs = read_objects(tmp_path / "m.osm.pbf")
    wells = [k for k, v in objs.items() if v[2].get("man_made") == "water_well"]
    buildings = [k for k, v in objs.items() if k[0] == "w"]
    assert len(wells) == 1 and len(buildings) == 2
    assert len([k for k in objs if k[0] == "n"]) == 1 + 4 + 4
    assert r.stats["duplicates_collapsed"] == 1 + 1 + 4  # the well, the building and its 4 corners
    kept_well = r.change("node", wells[0][1])
    assert {o.input.path.name for o in kept_well.sources} == {"a.osm", "b.osm"}
    kept_building = r.change("way", -1)
    assert [(o.input.path.name, o.id) for o in kept_building.also] == [("b.osm", -1)]
    check_snapshot(tmp_path / "m.osm.pbf")
    assert len(osc_sections(tmp_path / "m.osc")) == 1 + 8 + 2


def test_missing_node_reference_is_an_error_naming_file_and_way(tmp_path, base, cli):
    good = josm(tmp_path / "good.osm", *building(-1, -1, 14.5, -9.1))
    bad = josm(tmp_path / "broken.osm", node(-1, 14.6, -9.2), way(-1, [-1, 999999, -1], {"building": "yes"}))
    out = tmp_path / "m.osm.pbf"
    r = cli("merge", "--base", base, good, bad, "-o", out, "--upload", tmp_path / "m.osc", ok=False)
    assert "broken.osm" in r.stderr and "way -1" in r.stderr and "999999" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "m.osc").exists()
    assert list(tmp_path.glob(".m*")) == []  # no temporary file left behind
    r = cli("merge", "--base", base, good, bad, "-o", out, "--skip-bad")
    assert "Skipped" in r.stdout and "broken.osm" in r.stdout
    assert len([k for k in read_objects(out) if k[0] == "w" and k[1] < 0]) == 1
    # a reference to a new node that is not in the same file
    bad2 = josm(tmp_path / "broken2.osm", node(-1, 14.6, -9.2), way(-1, [-1, -7, -1]))
    with pytest.raises(MapathonError, match=r"broken2\.osm: way -1 uses node -7"):
        merge([bad2], tmp_path / "x.osm.pbf")


# -- three-way merge of edits of the same version ----------------------------------------------

WELL = {"man_made": "water_well"}  # node 101 version 2 of the base, at 14.6, -9.2


def test_two_volunteers_editing_different_tags_of_the_same_well_keep_both(tmp_path, cli):
    """A real 2019 well of Dianguirdé (node 4561949658 version 1, name=forage), edited by two volunteers."""
    from mapathon.quality.credit import compute_credit

    well = {"man_made": "water_well", "name": "forage"}
    at = (14.4931327, -9.0139489)
    a = josm(tmp_path / "awa.osm", node(4561949658, *at, {**well, "name": "Puits Nord", "pump": "manual"}, 1, "modify"))
    b = josm(tmp_path / "bakary.osm",
             node(4561949658, *at, {**well, "pump": "manual", "drinking_water": "yes"}, 1, "modify"))
    out, osc, jo = tmp_path / "m.osm.pbf", tmp_path / "m.osc", tmp_path / "m.osm"
    r = cli("merge", "--base", DIANGUIRDE_POIS, a, b, "-o", out, "--upload", osc, "--josm", jo, "--json")
    summary = json.loads(r.stdout)
    assert summary["conflicts"] == [] and summary["stats"]["edits_combined"] == 1
    assert summary["stats"]["modified"] == 1 and summary["stats"]["identical_edits_merged"] == 0
    want = {"man_made": "water_well", "name": "Puits Nord", "pump": "manual", "drinking_water": "yes"}
    for path in (out, osc, jo):  # the common version: it uploads as a modification of version 1
        assert read_objects(path)[("n", 4561949658)][:3] == (1, True, want), path
    assert osc_sections(osc) == {("n", 4561949658): "modify"} and josm_actions(jo) == {("n", 4561949658): "modify"}
    assert len(read_objects(out)) == len(read_objects(DIANGUIRDE_POIS))
    check_snapshot(out)
    # provenance lists both volunteers, and the credit counts the modification for each
    res = plan_merge([InputSpec(a, volunteer="Awa"), InputSpec(b, volunteer="Bakary")], base=DIANGUIRDE_POIS)
    ch = res.change("node", 4561949658)
    assert [o.input.volunteer for o in ch.sources] == ["Awa", "Bakary"] and ch.obj.version == 1
    credit = compute_credit(res)
    assert credit.volunteers["Awa"].modified == credit.volunteers["Bakary"].modified == 1
    assert credit.total.modified == 1
    # the printed summary says so
    text = " ".join(cli("merge", "--base", DIANGUIRDE_POIS, a, b, "-o", tmp_path / "again.osm.pbf").stdout.split())
    assert "compatible edits combined: 1" in text and "conflicts: 0" in text


def test_the_same_key_changed_differently_is_a_conflict_naming_the_key_and_both_values(tmp_path, base, cli):
    a = josm(tmp_path / "awa.osm", node(101, 14.6, -9.2, {**WELL, "name": "Puits Nord", "pump": "manual"}, 2, "modify"))
    b = josm(tmp_path / "bakary.osm",
             node(101, 14.6, -9.2, {**WELL, "pump": "powered", "drinking_water": "yes"}, 2, "modify"))
    out = tmp_path / "m.osm.pbf"
    summary = json.loads(cli("merge", "--base", base, a, b, "-o", out, "--json").stdout)
    (c,) = summary["conflicts"]
    assert (c["kind"], c["type"], c["id"]) == ("edit", "node", 101)
    assert "pump: manual ≠ powered" in c["message"] and "the first input wins" in c["message"]
    assert [(d["what"], d["key"], d["kept"], d["other"]) for d in c["differences"]] == \
        [("tag", "pump", "manual", "powered")]
    assert c["differences"][0]["kept_file"] == str(a) and c["differences"][0]["other_file"] == str(b)
    # the other tags of both sides are kept; the clashing key keeps the first input's value
    assert read_objects(out)[("n", 101)][2] == {**WELL, "name": "Puits Nord", "pump": "manual", "drinking_water": "yes"}
    text = cli("merge", "--base", base, b, a, "-o", tmp_path / "ba.osm.pbf").stdout
    assert "pump: powered ≠ manual" in " ".join(text.split())
    assert read_objects(tmp_path / "ba.osm.pbf")[("n", 101)][2]["pump"] == "powered"
    # values are printed as they are, even with brackets (no console markup)
    c = josm(tmp_path / "coumba.osm", node(101, 14.6, -9.2, {**WELL, "name": "Puits [nord] [/b]"}, 2, "modify"))
    text = cli("merge", "--base", base, a, c, "-o", tmp_path / "ac.osm.pbf").stdout
    assert "name: Puits Nord ≠ Puits [nord] [/b]" in " ".join(text.split())


def test_geometry_edits_are_combined_or_conflict(tmp_path, base):
    # way 200 (version 4): one side retags it, the other adds a node; node 100 (version 3): moved by one side
    a = josm(tmp_path / "a.osm", way(200, [100, 102, 103, 100], {"building": "house"}, 4, "modify"),
             node(100, 14.4999, -9.1, None, 3, "modify"))
    b = josm(tmp_path / "b.osm", node(-1, 14.5002, -9.1, {"entrance": "yes"}),
             way(200, [100, 102, 103, -1, 100], {"building": "yes", "roof:shape": "flat"}, 4, "modify"),
             node(100, 14.5, -9.1, {"survey:date": "2026"}, 3, "modify"))
    r = merge([a, b], tmp_path / "m.osm.pbf", base=base, upload=tmp_path / "m.osc")
    assert r.conflicts == [] and r.stats["edits_combined"] == 2
    objs = read_objects(tmp_path / "m.osm.pbf")
    assert objs[("w", 200)] == (4, True, {"building": "house", "roof:shape": "flat"}, (100, 102, 103, -1, 100))
    assert objs[("n", 100)] == (3, True, {"survey:date": "2026"}, (14.4999, -9.1))
    check_snapshot(tmp_path / "m.osm.pbf")
    # both change the node list, and both move the node, differently: conflicts that say so
    c = josm(tmp_path / "c.osm", way(200, [100, 103, 102, 100], {"building": "yes"}, 4, "modify"),
             node(100, 14.5001, -9.1, None, 3, "modify"))
    r = merge([a, b, c], tmp_path / "m2.osm.pbf", base=base)
    by = {(x.type, x.id): x for x in r.conflicts}
    assert set(by) == {("way", 200), ("node", 100)}
    assert "node list: 100,102,103,-1,100 ≠ 100,103,102,100" in by[("way", 200)].message
    assert [d["what"] for d in by[("way", 200)].as_dict()["differences"]] == ["nodes"]
    assert "position: 14.4999,-9.1 ≠ 14.5001,-9.1" in by[("node", 100)].message
    objs = read_objects(tmp_path / "m2.osm.pbf")
    assert objs[("w", 200)][2:] == ({"building": "house", "roof:shape": "flat"}, (100, 102, 103, -1, 100))
    assert objs[("n", 100)][2:] == ({"survey:date": "2026"}, (14.4999, -9.1))
    assert [o.input.path for o in r.change("way", 200).sources] == [a, b]  # c gave nothing that was kept


def relation(oid, members, tags, version, action="modify"):
    body = "".join(f"\n    <member type='{t}' ref='{r}' role='{role}' />" for t, r, role in members)
    return f"  <relation {_attrs(oid, version, action)}>{body}{_tags(tags)}\n  </relation>"


def test_relation_members_are_combined_or_conflict(tmp_path):
    base = make_pbf(tmp_path / "base.osm.pbf", BASE_OPL + "r300 v2 dV c1 t2019-01-01T00:00:00Z i1 ubase "
                                                          "Ttype=multipolygon,landuse=farmland Mw200@outer\n")
    mp = {"type": "multipolygon", "landuse": "farmland"}
    a = josm(tmp_path / "a.osm", relation(300, [("way", 200, "outer")], {**mp, "crop": "millet"}, 2))
    b = josm(tmp_path / "b.osm", *building(-1, -1, 14.5, -9.1, size=0.00002),
             relation(300, [("way", 200, "outer"), ("way", -1, "inner")], mp, 2))
    r = merge([a, b], tmp_path / "m.osm.pbf", base=base)
    assert r.conflicts == [] and r.stats["edits_combined"] == 1
    assert read_objects(tmp_path / "m.osm.pbf")[("r", 300)] == \
        (2, True, {**mp, "crop": "millet"}, (("w", 200, "outer"), ("w", -1, "inner")))
    c = josm(tmp_path / "c.osm", relation(300, [("way", 200, "inner")], mp, 2))
    r = merge([a, b, c], tmp_path / "m2.osm.pbf", base=base)
    (conflict,) = r.conflicts
    assert "members: way 200 outer, way -1 inner ≠ way 200 inner" in conflict.message
    assert conflict.differences[0]["other"] == [["way", 200, "inner"]]


def test_deletion_against_combined_modifications(tmp_path, base):
    d = josm(tmp_path / "d.osm", node(104, 14.7, -9.3, {"amenity": "school"}, 5, "delete"))
    e = josm(tmp_path / "e.osm", node(104, 14.7, -9.3, {"amenity": "school", "name": "École"}, 5, "modify"))
    f = josm(tmp_path / "f.osm", node(104, 14.7, -9.3, {"amenity": "school", "isced:level": "1"}, 5, "modify"))
    r = merge([d, e, f], tmp_path / "m.osm.pbf", base=base, upload=tmp_path / "m.osc")
    (c,) = r.conflicts
    assert "a modification beats a deletion" in c.message and "deleted in " + str(d) in c.message
    assert [x["what"] for x in c.as_dict()["differences"]] == ["deleted"]
    assert read_objects(tmp_path / "m.osm.pbf")[("n", 104)][:3] == \
        (5, True, {"amenity": "school", "name": "École", "isced:level": "1"})
    assert osc_sections(tmp_path / "m.osc") == {("n", 104): "modify"}
    assert [o.input.path for o in r.change("n", 104).sources] == [e, f]


def test_without_a_base_copy_compatible_edits_are_not_combined_and_the_line_says_why(tmp_path, base, cli):
    a = josm(tmp_path / "awa.osm", node(101, 14.6, -9.2, {**WELL, "name": "Puits Nord"}, 2, "modify"))
    b = josm(tmp_path / "bakary.osm", node(101, 14.6, -9.2, {**WELL, "drinking_water": "yes"}, 2, "modify"))
    out = tmp_path / "m.osm.pbf"
    text = " ".join(cli("merge", a, b, "-o", out).stdout.split())
    assert "compatible edits not combined: no base copy of version 2 (give --base)" in text
    assert "name: Puits Nord ≠ (none)" in text and "drinking_water: (none) ≠ yes" in text
    assert read_objects(out)[("n", 101)][2] == {**WELL, "name": "Puits Nord"}  # today's rule: the first input wins
    # a base without that version of the object: the same rule, and the line says what the base has
    old = make_pbf(tmp_path / "old.osm.pbf", "n101 v1 dV c1 t2018-01-01T00:00:00Z i1 ubase Tman_made=water_well "
                                             "x-9.2 y14.6\n")
    r = merge([a, b], tmp_path / "m2.osm.pbf", base=old)
    (c,) = r.conflicts
    assert "compatible edits not combined: no base copy of version 2 (the base extract has version 1)" in c.message
    assert {(d["key"], d["kept"], d["other"]) for d in c.as_dict()["differences"]} == \
        {("name", "Puits Nord", None), ("drinking_water", None, "yes")}
    # with the base, the same two files combine
    r = merge([a, b], tmp_path / "m3.osm.pbf", base=base)
    assert r.conflicts == [] and read_objects(tmp_path / "m3.osm.pbf")[("n", 101)][2] == \
        {**WELL, "name": "Puits Nord", "drinking_water": "yes"}


def test_edit_of_an_older_version_loses_to_the_base_and_is_reported(tmp_path, base):
    old = josm(tmp_path / "old.osm", node(104, 14.7, -9.3, {"amenity": "school", "name": "old"}, 4, "modify"))
    r = merge([old], tmp_path / "m.osm.pbf", base=base, upload=tmp_path / "m.osc")
    assert [c.kind for c in r.conflicts] == ["outdated"]
    assert read_objects(tmp_path / "m.osm.pbf")[("n", 104)][:3] == (5, True, {"amenity": "school"})
    assert osc_sections(tmp_path / "m.osc") == {}


def test_new_way_on_existing_nodes_and_modified_base_way(tmp_path, base):
    """A new way using base nodes, and a base way modified with a new node: the JOSM file carries the context."""
    a = josm(tmp_path / "a.osm", node(-1, 14.5002, -9.1, {"entrance": "yes"}),
             way(200, [100, 102, 103, -1, 100], {"building": "house"}, 4, "modify"),
             way(-2, [102, 103], {"barrier": "wall"}))
    r = merge([a], tmp_path / "m.osm.pbf", base=base, upload=tmp_path / "m.osc", josm=tmp_path / "m.osm")
    objs = read_objects(tmp_path / "m.osm.pbf")
    assert objs[("w", 200)][2] == {"building": "house"} and objs[("w", 200)][3] == (100, 102, 103, -1, 100)
    assert objs[("w", 200)][0] == 4
    check_snapshot(tmp_path / "m.osm.pbf")
    actions = josm_actions(tmp_path / "m.osm")
    assert actions[("w", 200)] == "modify" and actions[("n", -1)] == "modify"
    assert actions[("n", 100)] is None and actions[("n", 102)] is None  # unchanged nodes, for JOSM to draw
    assert r.way_coords(200)[0] == (-9.1, 14.5)


def test_compressed_inputs_and_osc_input(tmp_path, base):
    text = josm(tmp_path / "plain.osm", *building(-1, -1, 14.5, -9.1)).read_bytes()
    gz = tmp_path / "a.osm.gz"
    gz.write_bytes(gzip.compress(text))
    osc = tmp_path / "b.osc.bz2"
    osc.write_bytes(bz2.compress(b"""<?xml version='1.0' encoding='UTF-8'?>
<osmChange version="0.6" generator="JOSM">
  <create><node id="-1" lat="14.61" lon="-9.21"><tag k="amenity" v="clinic"/></node></create>
  <modify><node id="104" version="5" lat="14.7" lon="-9.3"><tag k="amenity" v="school"/><tag k="name" v="X"/></node>
  </modify>
  <delete><node id="101" version="2"/></delete>
</osmChange>"""))
    r = merge([gz, osc], tmp_path / "m.osm.pbf", base=base, upload=tmp_path / "m.osc")
    objs = read_objects(tmp_path / "m.osm.pbf")
    assert ("n", 101) not in objs and objs[("n", 104)][2]["name"] == "X"
    assert [v[2] for k, v in objs.items() if k[0] == "n" and k[1] < 0].count({"amenity": "clinic"}) == 1
    assert r.stats["new"] == 6 and r.stats["modified"] == 1 and r.stats["deleted"] == 1
    secs = osc_sections(tmp_path / "m.osc")
    assert secs[("n", 101)] == "delete" and secs[("n", 104)] == "modify"


def test_a_snapshot_used_as_base_keeps_its_new_objects_apart(tmp_path):
    first = josm(tmp_path / "day1.osm", *building(-1, -1, 14.5, -9.1))
    merge([first], tmp_path / "day1.osm.pbf")
    second = josm(tmp_path / "day2.osm", *building(-1, -1, 14.6, -9.2))
    merge([second], tmp_path / "day2.osm.pbf", base=tmp_path / "day1.osm.pbf")
    objs = read_objects(tmp_path / "day2.osm.pbf")
    assert sorted(k[1] for k in objs if k[0] == "w") == [-2, -1]
    assert len([k for k in objs if k[0] == "n"]) == 8
    check_snapshot(tmp_path / "day2.osm.pbf")


def test_relations_and_awkward_tag_values_survive_every_output(tmp_path):
    tricky = {"name": 'Puits "Nord" & <école>, 1=2 @ 50% ok', "note": "ligne 1\nligne 2\tfin", "name:ar": "بئر"}
    members = "".join(f"\n    <member type='way' ref='{r}' role='{role}' />" for r, role in ((-1, "outer"), (-2, "inner")))
    rel = ("  <relation id='-1' action='modify' visible='true'>" + members
           + "\n    <tag k='type' v='multipolygon' />\n    <tag k='landuse' v='farmland' />\n  </relation>")
    body = [*building(-1, -1, 14.5, -9.1, size=0.001), *building(-11, -2, 14.5002, -9.0998), rel]
    a = josm(tmp_path / "a.osm", *body)
    xml_tricky = (tricky["name"].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                  .replace('"', "&quot;"))
    b = josm(tmp_path / "b.osm", *body, f"  <node id='-50' action='modify' visible='true' lat='14.6' lon='-9.2'>"
             f"\n    <tag k='name' v=\"{xml_tricky}\" />\n    <tag k='note' v='ligne 1&#10;ligne 2&#9;fin' />"
             f"\n    <tag k='name:ar' v='{tricky['name:ar']}' />\n  </node>")
    out, osc, jo = tmp_path / "m.osm.pbf", tmp_path / "m.osc", tmp_path / "m.osm"
    r = merge([a, b], out, upload=osc, josm=jo)
    assert r.stats["duplicates_by_type"] == {"node": 8, "way": 2, "relation": 1}
    for path in (out, osc, jo):
        objs = read_objects(path)
        rels = [v for k, v in objs.items() if k[0] == "r"]
        assert len(rels) == 1 and rels[0][3] == (("w", -1, "outer"), ("w", -2, "inner")), path
        (well,) = [v for v in objs.values() if "note" in v[2]]
        assert well[2] == tricky, path
    check_snapshot(out)


@needs_osmium
def test_negative_ids_are_checked_by_osmium_check_refs(tmp_path):
    """Our snapshot id scheme keeps negative ids: osmium tells -5 from 5 (so check-refs means something)."""
    p = make_pbf(tmp_path / "x.osm.pbf", "n5 v1 x1 y1\nn-1 v0 x1 y1\nw-1 v0 Nn-1,n-5\n")
    r = osmium_tool("check-refs", p)
    assert "Nodes in ways missing: 1" in r.stdout + r.stderr


# -- bad input ---------------------------------------------------------------------------------------------------


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    bad = {}
    bad["malformed"] = tmp_path / "malformed.osm"
    bad["malformed"].write_text("<osm version='0.6'><node id='-1' lat='1' lon='1'></osm>")
    bad["truncated_pbf"] = tmp_path / "truncated.osm.pbf"
    bad["truncated_pbf"].write_bytes(ANDORRA.read_bytes()[:300_000])
    bad["not_pbf"] = tmp_path / "random.osm.pbf"
    bad["not_pbf"].write_bytes(bytes(range(256)) * 64)
    bad["wrong_ext"] = tmp_path / "edits.txt"
    bad["wrong_ext"].write_text("<osm version='0.6'/>")
    bad["gzip_as_osm"] = tmp_path / "zipped.osm"
    bad["gzip_as_osm"].write_bytes(gzip.compress(b"<osm version='0.6'/>"))
    bad["billion_laughs"] = tmp_path / "laughs.osm"
    bad["billion_laughs"].write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
        ' <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n'
        ' <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">\n]>\n'
        '<osm version="0.6"><node id="-1" lat="1" lon="1"><tag k="a" v="&lol3;"/></node></osm>\n')
    bad["external_entity"] = tmp_path / "xxe.osm"
    bad["external_entity"].write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE osm [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        '<osm version="0.6"><node id="-1" lat="1" lon="1"><tag k="a" v="&xxe;"/></node></osm>\n')
    bad["task_grid"] = tmp_path / "grid.osm"
    bad["task_grid"].write_text("<osm version='0.6' upload='never'><node id='-1' lat='1' lon='1'/></osm>")
    bad["pbf_as_osm"] = tmp_path / "really-pbf.osm"
    bad["pbf_as_osm"].write_bytes(DIANGUIRDE_POIS.read_bytes())
    return bad


def test_each_bad_input_is_one_line_naming_the_file_and_nothing_is_written(tmp_path, cli):
    good = josm(tmp_path / "good.osm", *building(-1, -1, 14.5, -9.1))
    out = tmp_path / "m.osm.pbf"
    for what, path in _bad_files(tmp_path).items():
        before = path.read_bytes()
        r = cli("merge", good, path, "-o", out, "--upload", tmp_path / "m.osc", ok=False)
        err = r.stderr.strip()
        assert len(err.splitlines()) == 1 and path.name in err and err.startswith("Error:"), (what, err)
        assert not out.exists() and not (tmp_path / "m.osc").exists(), what
        assert path.read_bytes() == before
    r = cli("merge", good, *_bad_files(tmp_path).values(), "-o", out, "--skip-bad", "--json")
    summary = json.loads(r.stdout)
    assert len(summary["skipped"]) == len(_bad_files(tmp_path)) and summary["stats"]["new"] == 5
    assert {Path(s["file"]).name for s in summary["skipped"]} == {p.name for p in _bad_files(tmp_path).values()}
    assert out.exists()


def test_entity_expansion_is_refused_not_expanded(tmp_path):
    bad = _bad_files(tmp_path)
    for key in ("billion_laughs", "external_entity"):
        with pytest.raises(MapathonError, match="refused"):
            read_osm_file(bad[key])


def test_outputs_must_not_overwrite_inputs_and_need_the_right_names(tmp_path, cli):
    good = josm(tmp_path / "good.osm", *building(-1, -1, 14.5, -9.1))
    r = cli("merge", good, "-o", tmp_path / "m.osm", ok=False)
    assert ".osm.pbf" in r.stderr
    r = cli("merge", good, "-o", tmp_path / "m.osm.pbf", "--josm", good, ok=False)
    assert "is an input" in r.stderr
    r = cli("merge", good, "-o", tmp_path / "m.osm.pbf", "--upload", tmp_path / "m.osm", ok=False)
    assert ".osc" in r.stderr


def test_a_bad_base_is_an_error_and_nothing_is_written(tmp_path, cli):
    good = josm(tmp_path / "good.osm", *building(-1, -1, 14.5, -9.1))
    broken = tmp_path / "extract.osm.pbf"
    broken.write_bytes(ANDORRA.read_bytes()[:200_000])
    out = tmp_path / "m.osm.pbf"
    r = cli("merge", "--base", broken, good, "-o", out, "--skip-bad", ok=False)
    assert "extract.osm.pbf" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()
    r = cli("merge", "--base", tmp_path / "nowhere.osm.pbf", good, "-o", out, ok=False)
    assert "nowhere.osm.pbf" in r.stderr


def test_many_files_are_read_in_parallel_with_the_same_result(tmp_path, monkeypatch):
    files = [josm(tmp_path / f"v{i:02d}.osm", *building(-1, -1, 14.5 + i / 100, -9.1),
                  node(-7, 14.55, -9.05, {"man_made": "water_well"}))  # the same well everywhere
             for i in range(20)]
    bad = tmp_path / "v99.osm"
    bad.write_text("<osm>")
    specs = files[:15] + [bad] + files[15:]
    r1 = merge(specs, tmp_path / "parallel.osm.pbf", skip_bad=True)
    monkeypatch.setenv("MAPATHON_JOBS", "1")
    r2 = merge(specs, tmp_path / "sequential.osm.pbf", skip_bad=True)
    assert read_objects(tmp_path / "parallel.osm.pbf") == read_objects(tmp_path / "sequential.osm.pbf")
    for r in (r1, r2):
        assert [s["file"] for s in r.skipped] == [str(bad)] and r.stats["duplicates_collapsed"] == 19
        assert [i.path for i in r.inputs] == files
        assert {c.origin.input.path for c in r.changes} == set(files)
    assert [(c.kind, c.id, c.origin.input.path, c.origin.id) for c in r1.changes] == \
        [(c.kind, c.id, c.origin.input.path, c.origin.id) for c in r2.changes]


def test_helper_processes_give_the_same_result(tmp_path, base, monkeypatch):
    """Big merges read files and the base in forked helpers: force them on a small case, compare."""
    from mapathon.osm.merge import base as base_mod
    from mapathon.osm.merge import reading as reading_mod

    a = josm(tmp_path / "a.osm", *building(-1, -1, 14.5, -9.1),
             node(104, 14.7, -9.3, {"amenity": "school", "name": "A"}, 5, "modify"),
             node(102, 14.5, -9.1001, None, 1, "delete"), node(101, 14.6, -9.2, {"man_made": "water_well"}, 2, "delete"))
    b = josm(tmp_path / "b.osm", *building(-1, -1, 14.5, -9.1), *building(-11, -2, 14.6, -9.2),
             node(104, 14.7, -9.3, {"amenity": "school", "name": "B"}, 5, "modify"))
    results = {}
    for mode in ("forked", "inline"):
        if mode == "forked":
            monkeypatch.setattr(base_mod, "_FORK_MIN_NEW", 0)
            monkeypatch.setattr(reading_mod, "_PARALLEL_MIN_FILES", 1)
        else:
            monkeypatch.setenv("MAPATHON_JOBS", "1")
        out = tmp_path / f"{mode}.osm.pbf"
        r = merge([a, b], out, base=base, upload=tmp_path / f"{mode}.osc")
        results[mode] = (read_objects(out), read_objects(tmp_path / f"{mode}.osc"),
                         sorted((c.kind, c.id) for c in r.conflicts), r.stats["duplicates_collapsed"],
                         r.stats["deleted"])
        check_snapshot(out)
    assert results["forked"] == results["inline"]
    objs, _osc, conflicts, dups, deleted = results["inline"]
    assert conflicts == [("deleted-but-used", 102), ("edit", 104)] and dups == 5 and deleted == 1
    assert ("n", 101) not in objs and ("n", 102) in objs


# -- real data ------------------------------------------------------------------------------------------------


def test_andorra_with_its_change_file(tmp_path, cli):
    """The real change file is a 2016 planet diff: its ways use nodes that are not in the Andorra extract."""
    out = tmp_path / "m.osm.pbf"
    r = cli("merge", "--base", ANDORRA, ANDORRA_OSC, "-o", out, ok=False)
    assert ANDORRA_OSC.name in r.stderr and "way " in r.stderr and "not in the base" in r.stderr
    assert not out.exists()
    # reading it gives what libosmium reads
    ours = read_osm_file(ANDORRA_OSC)
    theirs = read_objects(ANDORRA_OSC)
    assert ours.count() == len(theirs) == 641
    for (t, i), (version, visible, tags, data) in theirs.items():
        o = ours.objects[t][i]
        assert (o.version, o.visible, o.tags) == (version, visible, tags)
        if t == "w":
            assert o.refs == data
        elif t == "n" and visible:
            assert (round(o.lat / 1e7, 7), round(o.lon / 1e7, 7)) == data


@pytest.fixture(scope="module")
def andorra_complete(tmp_path_factory) -> Path:
    """Andorra plus stand-in nodes for the ones the change file's ways use but the extract lacks."""
    folder = tmp_path_factory.mktemp("andorra")
    diff = read_osm_file(ANDORRA_OSC)
    have_nodes = set(diff.objects["n"])
    wanted = {r for w in diff.objects["w"].values() for r in w.refs if r not in have_nodes}
    present = {o.id for o in osmium.FileProcessor(str(ANDORRA), osmium.osm.NODE)}
    lines = [f"n{r} v1 dV c1 t2016-01-01T00:00:00Z i1 ustandin T x1.5 y42.5" for r in sorted(wanted - present)]
    extra = make_pbf(folder / "extra.osm.pbf", "\n".join(lines) + "\n")
    mr = osmium.MergeInputReader()
    mr.add_file(str(ANDORRA))
    mr.add_file(str(extra))
    base = folder / "andorra-complete.osm.pbf"
    with osmium.SimpleWriter(str(base)) as w:
        mr.apply(w)
    return base


@needs_osmium
def test_andorra_change_file_merged_like_osmium_apply_changes(tmp_path, andorra_complete, cli):
    out, osc = tmp_path / "m.osm.pbf", tmp_path / "m.osc"
    cli("merge", "--base", andorra_complete, ANDORRA_OSC, "-o", out, "--upload", osc)
    ref = tmp_path / "applied.osm.pbf"
    r = osmium_tool("apply-changes", andorra_complete, ANDORRA_OSC, "-o", ref)
    assert r.returncode == 0, r.stderr
    assert osmium_tool("cat", "-f", "opl", out).stdout == osmium_tool("cat", "-f", "opl", ref).stdout
    check_snapshot(out)
    diff = read_objects(ANDORRA_OSC)
    assert read_objects(osc).keys() == diff.keys()


@pytest.mark.slow
@needs_osmium
def test_disjoint_real_files_give_what_osmium_merge_gives(tmp_path, cli):
    out = tmp_path / "ours.osm.pbf"
    cli("merge", DIANGUIRDE_POIS, ANDORRA, "-o", out)
    ref = tmp_path / "osmium.osm.pbf"
    assert osmium_tool("merge", DIANGUIRDE_POIS, ANDORRA, "-o", ref).returncode == 0
    assert osmium_tool("cat", "-f", "opl", out).stdout == osmium_tool("cat", "-f", "opl", ref).stdout
    # and with a base: Liechtenstein streamed by libosmium, Dianguirdé's points as the contribution
    out2 = tmp_path / "ours2.osm.pbf"
    cli("merge", "--base", LIECHTENSTEIN, DIANGUIRDE_POIS, "-o", out2)
    ref2 = tmp_path / "osmium2.osm.pbf"
    assert osmium_tool("merge", LIECHTENSTEIN, DIANGUIRDE_POIS, "-o", ref2).returncode == 0
    assert osmium_tool("cat", "-f", "opl", out2).stdout == osmium_tool("cat", "-f", "opl", ref2).stdout


@pytest.mark.slow
def test_disjoint_real_files_same_objects_by_pyosmium(tmp_path):
    """The same comparison without osmium-tool: every object of both inputs, as pyosmium reads them."""
    out = tmp_path / "ours.osm.pbf"
    merge([InputSpec(DIANGUIRDE_POIS), InputSpec(ANDORRA)], out)
    expected = read_objects(DIANGUIRDE_POIS) | read_objects(ANDORRA)
    assert read_objects(out) == expected


# -- extracts among the inputs: merged by libosmium, never read into Python ---------------------


@pytest.fixture
def no_python_reading_of(monkeypatch):
    """Make reading the given files into Python objects fail the test."""
    import mapathon.osm.merge.reading as reading

    refused: set[Path] = set()
    real = reading.read_osm_file

    def guarded(path, **kw):
        assert Path(path).resolve() not in refused, f"{path} was read into Python objects"
        return real(path, **kw)

    monkeypatch.setattr(reading, "read_osm_file", guarded)
    return lambda *paths: refused.update(Path(p).resolve() for p in paths)


@pytest.mark.slow
@needs_osmium
def test_overlapping_extracts_give_what_osmium_merge_gives_newest_version_kept(tmp_path, no_python_reading_of):
    no_python_reading_of(LIECHTENSTEIN, ANDORRA)
    out = tmp_path / "ours.osm.pbf"
    result = merge([InputSpec(LIECHTENSTEIN), InputSpec(ANDORRA)], out)
    ref = tmp_path / "osmium.osm.pbf"
    assert osmium_tool("merge", LIECHTENSTEIN, ANDORRA, "-o", ref).returncode == 0
    # osmium merge keeps both versions of the relation the extracts share; we keep the newest only
    theirs = osmium_tool("cat", "-f", "opl", ref).stdout.splitlines()
    ours = osmium_tool("cat", "-f", "opl", out).stdout.splitlines()
    both = [line for line in theirs if line.startswith("r2668952 ")]
    assert len(both) == 2
    newest = max(both, key=lambda line: int(line.split()[1][1:]))
    assert set(theirs) - set(ours) == set(both) - {newest}
    assert set(ours) <= set(theirs) and len(ours) == len(theirs) - 1
    check_snapshot(out)
    assert [i.name for i in result.inputs] == [str(LIECHTENSTEIN), str(ANDORRA)]
    assert result.stats["conflicts"] == 0 and result.changes == []


@pytest.mark.slow
def test_volunteer_edits_beat_an_extract_given_as_input(tmp_path, no_python_reading_of):
    no_python_reading_of(ANDORRA)
    def first(key):
        for o in osmium.FileProcessor(str(ANDORRA), osmium.osm.NODE):
            if key in o.tags and not any(set("&<>'\"") & set(t.k + t.v) for t in o.tags):
                return o.id, o.version, o.location.lat, o.location.lon, dict(o.tags)

    tid, tversion, tlat, tlon, ttags = first("amenity")
    lid, lversion, llat, llon, ltags = first("shop")
    edit = josm(tmp_path / "v.osm", node(tid, tlat, tlon, {**ttags, "name": "Edited"}, tversion, "modify"),
                node(lid, llat, llon, ltags, lversion, "delete"), *building(-1, -10, 42.5, 1.5))
    out, osc = tmp_path / "m.osm.pbf", tmp_path / "m.osc"
    result = merge([InputSpec(edit), InputSpec(ANDORRA)], out, upload=osc)
    got = read_objects(out)
    expected = read_objects(ANDORRA)
    assert got[("n", tid)][2]["name"] == "Edited" and got[("n", tid)][0] == tversion
    assert ("n", lid) not in got
    assert got[("w", -1)][2] == {"building": "yes"} and ("n", -4) in got
    changed = {("n", tid), ("n", lid)}
    assert {k: v for k, v in got.items() if k[1] > 0 and k not in changed} == \
        {k: v for k, v in expected.items() if k not in changed}
    assert osc_sections(osc) == {("n", tid): "modify", ("n", lid): "delete", ("n", -1): "create",
                                 ("n", -2): "create", ("n", -3): "create", ("n", -4): "create", ("w", -1): "create"}
    assert result.stats["new"] == 5 and result.stats["modified"] == 1 and result.stats["deleted"] == 1
    check_snapshot(out)
