"""Exports re-read with independent readers: fiona, ogrinfo, gpxpy, gpsbabel, pyosmium, the raw XML."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import xml.etree.ElementTree as ET

import fiona
import gpxpy
import osmium
import pytest
import shapely
from shapely.geometry import shape

from conftest import Cli, have
from foundation_helpers import assert_error, copy_project, query, tasks_json, village_template

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)

FIELDS = ["id", "state", "tile", "village", "mapped_by", "validated_by"]


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    """Dianguirdé at zoom 16 with mapped, validated, locked and split tasks; its tasks as the CLI lists them."""
    folder = copy_project(village_template(tmp_path_factory, 16), tmp_path_factory.mktemp("exp") / "p")
    cli = Cli(folder)
    cli("volunteer", "add", "Vera", "--validator", "--as", "Mariam")
    cli("claim", "1", "--as", "Awa"); cli("done", "1", "--as", "Awa")            # noqa: E702
    cli("validate", "1", "--as", "Vera", "--accept")
    cli("claim", "2", "--as", "Bakary"); cli("done", "2", "--as", "Bakary")      # noqa: E702
    cli("claim", "3", "--as", "Awa")
    cli("split", "50", "--as", "Mariam")
    live = {t["id"]: t for t in tasks_json(cli) if t["state"] != "SPLIT"}
    return folder, cli, live


@pytest.fixture(scope="module")
def out(played, tmp_path_factory):
    folder, cli, _ = played
    d = tmp_path_factory.mktemp("out")
    files = {}
    for fmt in ("geojson", "gpkg", "shp", "csv", "gpx", "osm"):
        f = d / f"tasks.{fmt}"
        r = cli("export", "tasks", "--format", fmt, "-o", f)
        files[fmt] = (f, r.stdout)
    return files


def _geoms(folder):
    return {r["id"]: shapely.from_wkb(r["geom"]) for r in query(folder, "SELECT id, geom FROM tasks")}


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp", "csv"])
def test_fiona_formats(played, out, fmt):
    folder, _, live = played
    f, stdout = out[fmt]
    assert f"Wrote {len(live)} tasks" in stdout
    valid = "valid_by" if fmt == "shp" else "validated_by"
    with fiona.open(f, layer="tasks" if fmt == "gpkg" else None) as src:
        assert len(src) == len(live)
        names = list(src.schema["properties"])
        for k in FIELDS:
            assert (valid if k == "validated_by" else k) in names
        if fmt != "csv":
            assert src.crs.to_epsg() == 4326
        feats = list(src)
    geoms = _geoms(folder)
    seen = set()
    for feat in feats:
        p = feat.properties
        tid = int(p["id"])
        t = live[tid]
        seen.add(tid)
        assert p["state"] == t["state"]
        assert p["tile"] == t["key"]  # every task is a tile here
        assert p["village"] == "; ".join(t["village"])
        assert (p["mapped_by"] or "") == (t["mapped_by"] or "")
        assert (p[valid] or "") == (t["validated_by"] or "")
        g = shape(feat.geometry)
        assert g.geom_type == ("Polygon" if fmt == "shp" else "MultiPolygon")  # shapefiles do not tell them apart
        assert g.symmetric_difference(geoms[tid]).area <= 1e-6 * geoms[tid].area
    assert seen == set(live)
    one = next(f for f in feats if int(f.properties["id"]) == 1).properties
    assert (one["state"], one["mapped_by"], one[valid]) == ("VALIDATED", "Awa", "Vera")
    if fmt == "gpkg":
        assert fiona.listlayers(f) == ["tasks", "villages"]
        with fiona.open(f, layer="villages") as v:
            assert len(v) == 14 and "Dianguirdé" in {x.properties["name"] for x in v}
    if fmt == "shp":
        for ext in (".shx", ".dbf", ".prj"):
            assert f.with_suffix(ext).exists()


def test_csv_is_a_plain_spreadsheet(played, out):
    _, _, live = played
    f, _ = out["csv"]
    rows = list(csv.DictReader(io.StringIO(f.read_text(encoding="utf-8"))))
    assert len(rows) == len(live)
    assert rows[0]["WKT"].startswith("MULTIPOLYGON")
    assert {r["id"] for r in rows} == {str(i) for i in live}


@pytest.mark.skipif(not have("ogrinfo"), reason="GDAL's ogrinfo is not installed")
@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp", "csv", "gpx", "osm"])
def test_ogrinfo_opens_every_file(played, out, fmt):
    _, _, live = played
    f, _ = out[fmt]
    layer = {"gpkg": ["tasks"], "gpx": ["tracks"], "osm": ["multipolygons"]}.get(fmt, [])
    r = subprocess.run(["ogrinfo", "-ro", "-so", str(f), *layer] if layer else ["ogrinfo", "-ro", "-so", "-al", str(f)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    if fmt == "osm":
        return  # GDAL's OSM driver cannot count features without reading them
    m = re.search(r"Feature Count: (\d+)", r.stdout)
    assert m and int(m.group(1)) == len(live), r.stdout
    if fmt in ("gpkg", "geojson"):
        assert "Multi Polygon" in r.stdout
    if fmt != "csv":
        assert "WGS 84" in r.stdout


def test_gpx_with_gpxpy(played, out):
    folder, _, live = played
    f, _ = out["gpx"]
    doc = gpxpy.parse(f.read_text(encoding="utf-8"))
    villages = {r["name"]: (r["lon"], r["lat"]) for r in query(folder, "SELECT name, lon, lat FROM areas WHERE kind = 'village'")}
    assert {w.name for w in doc.waypoints} == set(villages)
    for w in doc.waypoints:
        assert (w.longitude, w.latitude) == pytest.approx(villages[w.name], abs=1e-7)
    assert len(doc.tracks) == len(live)
    geoms = _geoms(folder)
    for trk in doc.tracks:
        tid = int(trk.name.removeprefix("Task "))
        assert live[tid]["key"] in trk.description and live[tid]["state"] in trk.description
        (seg,) = trk.segments
        pts = [(p.longitude, p.latitude) for p in seg.points]
        assert pts[0] == pts[-1] and len(pts) == 5  # a closed square
        assert shapely.Polygon(pts).symmetric_difference(geoms[tid]).area <= 1e-6 * geoms[tid].area


@pytest.mark.skipif(not have("gpsbabel"), reason="gpsbabel is not installed")
def test_gpx_with_gpsbabel(played, out):
    folder, _, live = played
    f, _ = out["gpx"]
    r = subprocess.run(["gpsbabel", "-i", "gpx", "-f", str(f), "-o", "csv", "-F", "-"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    names = {r["name"] for r in query(folder, "SELECT name FROM areas WHERE kind = 'village'")}
    waypoint_lines = [ln for ln in lines if ln.split(",", 2)[-1].strip() in names]
    assert len(waypoint_lines) == 14
    lat, lon, name = (x.strip() for x in waypoint_lines[0].split(",", 2))
    assert 14.1 < float(lat) < 14.7 and -9.2 < float(lon) < -8.8
    # the tracks: 5 points per square task
    r = subprocess.run(["gpsbabel", "-t", "-i", "gpx", "-f", str(f), "-o", "unicsv", "-F", "-"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) - 1 == 5 * len(live)


def test_osm_xml_with_pyosmium(played, out):
    folder, _, live = played
    f, _ = out["osm"]
    root = ET.parse(f).getroot()
    assert root.tag == "osm" and root.get("upload") == "never" and root.get("version") == "0.6"
    nodes, ways = {}, []
    for obj in osmium.FileProcessor(str(f)):
        if obj.is_node():
            nodes[obj.id] = (obj.location.lon, obj.location.lat)
        elif obj.is_way():
            ways.append((obj.id, [n.ref for n in obj.nodes], dict(obj.tags)))
        else:
            pytest.fail(f"unexpected object {obj}")
    assert nodes and all(i < 0 for i in nodes)
    assert len(ways) == len(live) and all(w[0] < 0 for w in ways)
    assert len({w[0] for w in ways} | set(nodes)) == len(ways) + len(nodes)  # unique ids
    geoms = _geoms(folder)
    by_key = {t["key"]: t for t in live.values()}
    for wid, refs, tags in ways:
        assert refs[0] == refs[-1] and len(refs) == 5  # closed
        t = by_key[tags["mapathon:task"]]
        assert tags["mapathon:state"] == t["state"] and tags["name"] == f"Task {t['id']}"
        assert tags.get("mapathon:village", "") == "; ".join(t["village"])
        ring = shapely.Polygon([nodes[r] for r in refs])
        assert ring.symmetric_difference(geoms[t["id"]]).area <= 1e-4 * geoms[t["id"]].area
    # neighbouring squares share their corner nodes
    assert len(nodes) < 4 * len(ways)


def test_include_split(played, tmp_path):
    _, cli, live = played
    f = tmp_path / "all.geojson"
    assert f"Wrote {len(live) + 1} tasks" in cli("export", "tasks", "-o", f, "--include-split").stdout
    with fiona.open(f) as src:
        assert sum(1 for x in src if x.properties["state"] == "SPLIT") == 1


def test_format_from_extension_and_overwrite(played, tmp_path):
    _, cli, live = played
    f = tmp_path / "t.json"
    f.write_text("old")
    cli("export", "tasks", "-o", f)
    with fiona.open(f) as src:
        assert len(src) == len(live)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_export_errors(played, tmp_path, tmp_path_factory):
    folder, cli, _ = played
    assert_error(cli("export", "tasks", "-o", tmp_path / "t.xyz", ok=False), "t.xyz", "--format")
    assert_error(cli("export", "tasks", "-o", tmp_path / "t.geojson", "--format", "kml", ok=False), "--format kml")
    assert_error(cli("export", "tasks", "-o", tmp_path / "nope" / "t.geojson", ok=False), "nope")
    assert_error(cli("export", "tasks", "-o", tmp_path / "nope" / "t.shp", ok=False), "nope")
    assert_error(cli("export", "tasks", "-o", tmp_path / "t.dat", "--format", "shp", ok=False), "t.dat", ".shp")
    assert list(tmp_path.iterdir()) == []
    bare = copy_project(village_template(tmp_path_factory, None), tmp_path_factory.mktemp("bare") / "p")
    assert_error(Cli(bare)("export", "tasks", "-o", tmp_path / "t.geojson", ok=False), "no tasks", "grid")
    assert list(tmp_path.iterdir()) == []


def test_format_and_extension_must_agree(played, tmp_path):
    r = Cli(played[0])("export", "tasks", "--format", "gpx", "-o", tmp_path / "t.gpkg", ok=False)
    assert_error(r, "t.gpkg", ".gpkg", "gpx")
    assert not (tmp_path / "t.gpkg").exists()
    r = Cli(played[0])("status", "--map", tmp_path / "p.jpg", ok=False)
    assert_error(r, "p.jpg", ".png")
    assert not (tmp_path / "p.jpg").exists()


def test_geojson_layer_is_named_tasks(played, tmp_path):
    dest = tmp_path / "t.geojson"
    Cli(played[0])("export", "tasks", "-o", dest)
    import json

    assert json.loads(dest.read_text())["name"] == "tasks"  # not the temporary file's name
