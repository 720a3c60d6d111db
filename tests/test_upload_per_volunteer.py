"""One upload file per volunteer: credit, self-contained files, an order that uploads.

Every upload file is re-read with pyosmium (libosmium) and the standard library's XML parser,
and replayed onto the base in its numbered order the way the OSM API applies a changeset: each
object in document order, a created or modified object must find every object it uses, a deleted
object must be used by nothing left. The replay must give the merged snapshot's objects, and so
must libosmium applying the files one after the other (and ``osmium apply-changes``, where
osmium-tool is installed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import osmium
import pytest

from mapathon.osm.merge import InputSpec, merge
from mapathon.osm.upload import GuideInfo, MARK

from conftest import DIANGUIRDE_POIS, VILLAGES_CSV, Cli, have
from test_merge import building, josm, make_pbf, node, osmium_tool, read_objects, way

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dianguirde"
needs_osmium = pytest.mark.skipif(not have("osmium"), reason="osmium-tool is not installed: comparison skipped")


# -- reading and replaying ----------------------------------------------------------------------------


def objects(path: Path) -> dict:
    """(type, id) -> (visible, tags, data) as pyosmium reads a file (data: location, node refs or members)."""
    return {k: v[1:] for k, v in read_objects(path).items()}  # without the version


def osc_actions(path: Path) -> list[tuple[str, tuple[str, int]]]:
    """(action, (type, id)) in document order, parsed with the standard library."""
    root = ET.parse(path).getroot()
    assert root.tag == "osmChange"
    return [(sec.tag, (el.tag[0], int(el.get("id")))) for sec in root for el in sec]


def uses(entry) -> set:
    visible, _tags, data = entry
    if not visible or data is None or not data or isinstance(data[0], float):
        return set()
    if isinstance(data[0], int):
        return {("n", r) for r in data}
    return {(t, r) for t, r, _role in data}


def replay(base: Path, files: list[Path]) -> dict:
    """Apply upload files to the base, in order, checking each operation as the OSM API would."""
    state = {k: v for k, v in objects(base).items() if v[0]}
    for f in files:
        read = objects(f)
        for action, key in osc_actions(f):
            if action == "delete":
                assert key in state, f"{f.name}: deletes {key}, which does not exist yet"
                users = [k for k, v in state.items() if key in uses(v)]
                assert not users, f"{f.name}: deletes {key}, still used by {users}"
                del state[key]
            else:
                entry = read[key]
                missing = [r for r in uses(entry) if r not in state]
                assert not missing, f"{f.name}: {action} {key} uses {missing}, which do not exist"
                if action == "modify":
                    assert key in state, f"{f.name}: modifies {key}, which does not exist"
                else:
                    assert key not in state, f"{f.name}: creates {key} a second time"
                state[key] = entry
    return state


def osmium_apply(base: Path, files: list[Path], work: Path) -> Path:
    """The files applied one after the other by libosmium (pyosmium's MergeInputReader, as
    ``pyosmium-up-to-date`` applies change files): the last result."""
    work.mkdir(exist_ok=True)
    prev = base
    for i, f in enumerate(files):
        out = work / f"after-{i + 1:02d}.osm.pbf"
        mr = osmium.MergeInputReader()
        mr.add_file(str(f))
        reader, writer = osmium.io.Reader(str(prev)), osmium.io.Writer(str(out), osmium.io.Header())
        try:
            mr.apply_to_reader(reader, writer, False)
        finally:
            writer.close()
            reader.close()
        prev = out
    return prev


def upload_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.osc"))


def check_upload_folder(folder: Path, base: Path, snapshot: Path, one_osc: Path | None = None) -> list[Path]:
    """The files partition the changes, each is self-contained, and in order they give the snapshot."""
    files = upload_files(folder)
    assert files and [f.name[:2] for f in files] == [f"{i:02d}" for i in range(1, len(files) + 1)]
    seen: dict = {}
    for f in files:
        assert (folder / (f.stem + ".md")).is_file()
        keys = {k for _a, k in osc_actions(f)}
        read = objects(f)
        assert set(read) == keys
        for k in keys:
            assert k not in seen, f"{k} is in {seen.get(k)} and {f.name}"
            seen[k] = f.name
        for k, entry in read.items():  # every new object a file uses is in that file
            assert all(r in keys for r in uses(entry) if r[1] < 0), (f.name, k)
    if one_osc is not None:
        assert set(seen) == {k for _a, k in osc_actions(one_osc)}
    state = replay(base, files)
    snap = {k: v for k, v in objects(snapshot).items() if v[0]}
    assert state == snap
    applied = osmium_apply(base, files, folder.parent / "applied")
    assert {k: v for k, v in objects(applied).items() if v[0]} == snap
    return files


# -- the Dianguirdé demo ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    """A project, three volunteers' JOSM files made by the demo's script, submitted and merged."""
    tmp = tmp_path_factory.mktemp("demo")
    proj = tmp / "proj"
    cli = Cli(proj)
    cli("init", proj, "--name", "Dianguirdé", "--aoi", VILLAGES_CSV, "--radius", "2000", "--organizer", "Mariam")
    cli("grid", "--zoom", "16")
    cli("volunteer", "add", "Awa Traoré", "--osm-user", "awa_t", "--as", "Mariam")
    cli("volunteer", "add", "Fanta Sissoko", "--osm-user", "fanta_s", "--as", "Mariam")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLE.parent.parent), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, EXAMPLE / "make_contributions.py", tmp / "contrib", "--project", proj],
                   check=True, env=env, capture_output=True)
    for line in (tmp / "contrib" / "contributions.tsv").read_text(encoding="utf-8").splitlines():
        path, who, task = line.split("\t")
        cli("claim", task, "--as", who, ok=None)  # only the holder (or mapper) of a task hands in files for it
        cli("submit", path, "--as", who, "--task", task)
    from mapathon.imagery import editors
    from mapathon.project import open_project

    with open_project(proj) as p:
        editors.set_hashtags(p, "#missingmaps #dianguirde")
    out = {"proj": proj, "snapshot": tmp / "merged.osm.pbf", "osc": tmp / "changes.osc", "dir": tmp / "upload"}
    r = cli("merge", "--base", DIANGUIRDE_POIS, "-o", out["snapshot"], "--upload", out["osc"],
            "--upload-per-volunteer", out["dir"], "--json")
    out["summary"] = json.loads(r.stdout)
    return out


def test_demo_one_file_per_volunteer_that_replays_to_the_snapshot(demo):
    files = check_upload_folder(demo["dir"], DIANGUIRDE_POIS, demo["snapshot"], demo["osc"])
    assert [f.name for f in files] == ["01-awa-traore.osc", "02-fanta-sissoko.osc", "03-bakary-coulibaly.osc"]
    pv = demo["summary"]["outputs"]["per_volunteer"]
    assert [f["volunteer"] for f in pv["files"]] == ["Awa Traoré", "Fanta Sissoko", "Bakary Coulibaly"]
    assert all(not f["after"] for f in pv["files"])  # nothing to wait for: any order uploads


def test_demo_each_change_goes_to_who_made_it(demo):
    d = demo["dir"]
    awa, fanta, bakary = (dict((k, a) for a, k in osc_actions(f)) for f in upload_files(d))
    assert awa[("n", 4561949658)] == "modify"  # the borehole both edited: Awa's copy won, so it is hers
    assert fanta[("n", 4734684404)] == "delete"  # the kiosk mapped twice, deleted by Fanta
    assert ("n", 4561949658) not in fanta
    school = [k for k, v in objects(d / "03-bakary-coulibaly.osc").items() if v[1].get("amenity") == "school"]
    assert len(school) == 1
    # every building is in one file, its volunteer's
    buildings = {f.name: sum(1 for k, v in objects(f).items() if k[0] == "w" and "building" in v[1])
                 for f in upload_files(d)}
    assert sum(buildings.values()) == sum(1 for k, v in objects(demo["osc"]).items()
                                          if k[0] == "w" and "building" in v[1])
    assert buildings["01-awa-traore.osc"] == 10 and buildings["02-fanta-sissoko.osc"] == 8


def test_demo_guides_and_readme(demo):
    d = demo["dir"]
    readme = (d / "README.md").read_text(encoding="utf-8")
    assert readme.splitlines()[0] == MARK
    assert "| 1 | `01-awa-traore.osc` | Awa Traoré | awa_t |" in readme
    assert "| 3 | `03-bakary-coulibaly.osc` | Bakary Coulibaly | ? |" in readme
    assert "OSM accounts not known: Bakary Coulibaly" in readme
    guide = (d / "01-awa-traore.md").read_text(encoding="utf-8")
    assert "**File > Open** `01-awa-traore.osc`" in guide and "awa_t" in guide
    task = demo["summary"]["inputs"][0]
    from mapathon.project import open_project
    from mapathon.osm.submit import list_contributions

    with open_project(demo["proj"]) as p:
        number = list_contributions(p)[0].task_id
    assert task["volunteer"] == "Awa Traoré"
    assert f"Changeset comment: `Dianguirdé: task {number} #missingmaps #dianguirde`" in guide
    assert "only once" in guide


@needs_osmium
def test_demo_osmium_apply_changes_in_order_gives_the_snapshot(demo, tmp_path):
    prev = DIANGUIRDE_POIS
    for i, f in enumerate(upload_files(demo["dir"])):
        out = tmp_path / f"step{i}.osm.pbf"
        r = osmium_tool("apply-changes", prev, f, "-o", out)
        assert r.returncode == 0, r.stderr
        prev = out
    r = osmium_tool("check-refs", prev)
    assert r.returncode == 0 and "Nodes in ways missing: 0" in r.stdout + r.stderr
    snap = {k: v for k, v in objects(demo["snapshot"]).items() if v[0]}
    assert {k: v for k, v in objects(prev).items() if v[0]} == snap


# -- the rules on hand-made files -------------------------------------------------------------------


BASE_OPL = """\
n100 v3 dV c1 t2019-01-01T00:00:00Z i1 ubase T x-9.1 y14.5
n102 v1 dV c1 t2019-01-01T00:00:00Z i1 ubase T x-9.1001 y14.5
n103 v1 dV c1 t2019-01-01T00:00:00Z i1 ubase T x-9.1001 y14.5001
n105 v1 dV c1 t2019-01-01T00:00:00Z i1 ubase T x-9.2 y14.6
n106 v1 dV c1 t2019-01-01T00:00:00Z i1 ubase T x-9.2001 y14.6
n107 v1 dV c1 t2019-01-01T00:00:00Z i1 ubase T x-9.2001 y14.6001
w200 v4 dV c1 t2019-01-01T00:00:00Z i1 ubase Tbuilding=yes Nn100,n102,n103,n100
w201 v2 dV c1 t2019-01-01T00:00:00Z i1 ubase Tbuilding=yes Nn105,n106,n107,n105
"""


@pytest.fixture
def base(tmp_path) -> Path:
    return make_pbf(tmp_path / "base.osm.pbf", BASE_OPL)


def _merge(tmp_path, base, specs, guide=None):
    out = tmp_path / "merged.osm.pbf"
    result = merge(specs, out, base=base, upload=tmp_path / "all.osc", upload_dir=tmp_path / "up", guide=guide)
    return result, out


def test_work_joined_to_another_volunteers_new_object_goes_in_the_first_ones_file(tmp_path, base):
    # Awa maps a well; Fanta maps the same well (collapsed into Awa's) and a fence through it
    a = josm(tmp_path / "awa.osm", node(-1, 14.7, -9.3, {"man_made": "water_well"}),
             *building(-2, -1, 14.71, -9.31))
    f = josm(tmp_path / "fanta.osm", node(-1, 14.7, -9.3, {"man_made": "water_well"}),
             node(-2, 14.7, -9.301), node(-3, 14.701, -9.301),
             way(-1, [-2, -1, -3], {"barrier": "fence"}), *building(-4, -2, 14.72, -9.32))
    result, out = _merge(tmp_path, base, [InputSpec(a, volunteer="Awa Traoré"), InputSpec(f, volunteer="Fanta Sissoko")])
    assert result.stats["duplicates_collapsed"] == 1
    files = check_upload_folder(tmp_path / "up", base, out, tmp_path / "all.osc")
    awa, fanta = (objects(p) for p in files)
    fence = [k for k, v in awa.items() if v[1].get("barrier") == "fence"]
    assert len(fence) == 1 and not any(v[1].get("barrier") for v in fanta.values())
    assert all(("n", r) in awa for r in awa[fence[0]][2])  # with its nodes
    assert sum(1 for k, v in fanta.items() if v[1].get("building")) == 1  # her own house stays hers
    awa_guide = (tmp_path / "up" / "01-awa-traore.md").read_text(encoding="utf-8")
    fanta_guide = (tmp_path / "up" / "02-fanta-sissoko.md").read_text(encoding="utf-8")
    assert "also holds 2 points, 1 way of Fanta Sissoko" in awa_guide
    assert "2 points, 1 way of your work are in `01-awa-traore.osc`" in fanta_guide
    pv = result.outputs["per_volunteer"]["files"]
    assert pv[0]["joined"] == 3 and pv[1]["elsewhere"] == 3


def test_a_deletion_waits_for_the_change_that_stops_using_the_object(tmp_path, base):
    # Fanta (submitted first) deletes node 102; Awa takes node 102 out of building 200
    f = josm(tmp_path / "fanta.osm", node(102, 14.5, -9.1001, version=1, action="delete"),
             *building(-1, -1, 14.72, -9.32))
    a = josm(tmp_path / "awa.osm", node(100, 14.5, -9.1, version=3), node(103, 14.5001, -9.1001, version=1),
             way(200, [100, 103, 100], {"building": "yes"}, version=4, action="modify"))
    result, out = _merge(tmp_path, base, [InputSpec(f, volunteer="Fanta Sissoko"), InputSpec(a, volunteer="Awa Traoré")])
    assert result.stats["deleted"] == 1 and not result.conflicts
    files = check_upload_folder(tmp_path / "up", base, out, tmp_path / "all.osc")
    assert [p.name for p in files] == ["01-awa-traore.osc", "02-fanta-sissoko.osc"]
    pv = result.outputs["per_volunteer"]["files"]
    assert pv[0]["after"] == [] and pv[1]["after"] == [1]
    with pytest.raises(AssertionError, match="still used by"):  # the other way round, the API refuses
        replay(base, files[::-1])
    guide = (tmp_path / "up" / "02-fanta-sissoko.md").read_text(encoding="utf-8")
    assert "**Wait** until this file is uploaded first: `01-awa-traore.osc` (Awa Traoré)" in guide
    assert "| 2 | `02-fanta-sissoko.osc` | Fanta Sissoko | ? | 5 | 0 | 1 | 01-awa-traore.osc |" in \
        (tmp_path / "up" / "README.md").read_text(encoding="utf-8")


def test_files_that_would_wait_for_each_other_still_upload_in_order(tmp_path, base):
    # each deletes a node the other takes out of a building
    f = josm(tmp_path / "fanta.osm", node(102, 14.5, -9.1001, version=1, action="delete"),
             node(105, 14.6, -9.2, version=1), node(106, 14.6, -9.2001, version=1),
             way(201, [105, 106, 105], {"building": "yes"}, version=2, action="modify"))
    a = josm(tmp_path / "awa.osm", node(107, 14.6001, -9.2001, version=1, action="delete"),
             node(100, 14.5, -9.1, version=3), node(103, 14.5001, -9.1001, version=1),
             way(200, [100, 103, 100], {"building": "yes"}, version=4, action="modify"))
    result, out = _merge(tmp_path, base, [InputSpec(f, volunteer="Fanta Sissoko"), InputSpec(a, volunteer="Awa Traoré")])
    assert result.stats["deleted"] == 2 and not result.conflicts
    files = check_upload_folder(tmp_path / "up", base, out, tmp_path / "all.osc")
    pv = result.outputs["per_volunteer"]["files"]
    assert all(n < f["number"] for f in pv for n in f["after"])
    assert sum(f["joined"] for f in pv) == 1  # one deletion moved to the file of the change it needs
    assert len(files) == 2


def test_changes_of_no_volunteer_get_a_file_of_their_own_in_french(tmp_path, base):
    o = josm(tmp_path / "fixes.osm", node(105, 14.6, -9.2, {"name": "Puits"}, version=1, action="modify"))
    a = josm(tmp_path / "awa.osm", *building(-1, -1, 14.72, -9.32))
    guide = GuideInfo(project="Dianguirdé", hashtags=["#missingmaps"], osm_users={"awa traore": "awa_t"}, lang="fr")
    result, out = _merge(tmp_path, base, [InputSpec(o), InputSpec(a, volunteer="Awa Traoré", task="12")], guide)
    files = check_upload_folder(tmp_path / "up", base, out, tmp_path / "all.osc")
    assert [p.name for p in files] == ["01-organizer.osc", "02-awa-traore.osc"]
    assert [k for _a, k in osc_actions(files[0])] == [("n", 105)]
    text = (tmp_path / "up" / "02-awa-traore.md").read_text(encoding="utf-8")
    assert "**Fichier > Ouvrir** `02-awa-traore.osc`" in text and "awa_t" in text
    assert "Commentaire du groupe de modifications : `Dianguirdé: tâche 12 #missingmaps`" in text
    assert "l'organisateur" in (tmp_path / "up" / "README.md").read_text(encoding="utf-8")


def test_a_foreign_folder_is_refused_and_an_earlier_upload_folder_replaced(tmp_path, base, cli):
    a = josm(tmp_path / "awa.osm", *building(-1, -1, 14.72, -9.32))
    up = tmp_path / "up"
    up.mkdir()
    (up / "notes.txt").write_text("mine")
    out = tmp_path / "merged.osm.pbf"
    r = cli("merge", a, "--base", base, "-o", out, "--upload-per-volunteer", up, ok=False)
    assert "up: is not empty" in r.stdout + r.stderr and not out.exists()
    assert (up / "notes.txt").read_text() == "mine" and len(list(up.iterdir())) == 1
    r = cli("merge", a, "--base", base, "-o", out, "--upload-per-volunteer", tmp_path, ok=False)
    assert "holds" in r.stdout + r.stderr
    r = cli("merge", a, "-o", out, "--upload-per-volunteer", tmp_path / "new", "--lang", "de", ok=False)
    assert "--lang de: unknown language; choose one of en, fr" in r.stdout + r.stderr
    (up / "notes.txt").unlink()
    cli("merge", a, "--base", base, "-o", out, "--upload-per-volunteer", up, "--lang", "fr")
    assert sorted(p.name for p in up.iterdir()) == ["01-organizer.md", "01-organizer.osc", "README.md"]
    assert "**Fichier > Ouvrir** `01-organizer.osc`" in (up / "01-organizer.md").read_text(encoding="utf-8")
    (up / "01-old-file.osc").write_text("from an earlier merge")
    r = cli("merge", a, "--base", base, "-o", out, "--upload-per-volunteer", up)
    assert "one per volunteer" in r.stdout
    assert sorted(p.name for p in up.iterdir()) == ["01-organizer.md", "01-organizer.osc", "README.md"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_a_relation_on_another_volunteers_new_way_goes_with_it(tmp_path, base):
    # both draw the same pond outline (collapsed into Awa's); Fanta makes it a multipolygon
    def pond(first):
        pts = [(14.73, -9.33), (14.731, -9.33), (14.731, -9.331)]
        return [node(first - i, la, lo) for i, (la, lo) in enumerate(pts)] + \
            [way(-1, [first, first - 1, first - 2, first], {"natural": "water"})]
    a = josm(tmp_path / "awa.osm", *pond(-1))
    rel = ("  <relation id='-1' action='modify' visible='true'>\n    <member type='way' ref='-1' role='outer'/>\n"
           "    <tag k='type' v='multipolygon'/>\n    <tag k='natural' v='water'/>\n  </relation>")
    f = josm(tmp_path / "fanta.osm", *pond(-1), rel, *building(-10, -2, 14.72, -9.32))
    result, out = _merge(tmp_path, base, [InputSpec(a, volunteer="Awa Traoré"), InputSpec(f, volunteer="Fanta Sissoko")])
    assert result.stats["duplicates_by_type"]["way"] == 1
    files = check_upload_folder(tmp_path / "up", base, out, tmp_path / "all.osc")
    awa, fanta = (objects(p) for p in files)
    assert [k[0] for k in awa if k[0] == "r"] == ["r"] and not [k for k in fanta if k[0] == "r"]
    assert "1 relation of your work is in `01-awa-traore.osc`" in \
        (tmp_path / "up" / "02-fanta-sissoko.md").read_text(encoding="utf-8")
