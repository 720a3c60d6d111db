"""Exports re-read with independent readers: fiona, ogrinfo, gpxpy, gpsbabel, pyosmium, the raw XML, csv."""

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

from conftest import DIANGUIRDE_POIS, Cli, have
from foundation_helpers import aoi_geom, assert_error, copy_project, query, tasks_json, village_template
from test_merge import building, josm, node

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
        assert p["village"] == "; ".join(t["villages"])
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
        assert tags.get("mapathon:village", "") == "; ".join(t["villages"])
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


# -- export data: water points and buildings for phones, GPS units and spreadsheets --------------------------

DATA_FORMATS = ("geojson", "gpkg", "csv", "gpx", "kml")
KML = "{http://www.opengis.net/kml/2.2}"


def _osmium_counts(path) -> dict:
    """Water points and buildings of an OSM file, counted from its tags with pyosmium alone."""
    c = {"water_well": 0, "borehole": 0, "water_tower": 0, "building": 0}
    for o in osmium.FileProcessor(str(path)):
        t = dict(o.tags)
        if t.get("man_made") == "water_well" and o.is_node():
            c["water_well"] += 1
            c["borehole"] += t.get("water_well") == "borehole"
        if t.get("man_made") == "water_tower" and o.is_way():
            c["water_tower"] += 1
        if "building" in t and o.is_way():
            c["building"] += 1
    return c


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    """The Dianguirdé project after a merge: the 2019 POIs (59 wells) plus a volunteer's new objects."""
    folder = copy_project(village_template(tmp_path_factory, 16), tmp_path_factory.mktemp("data") / "p")
    cli = Cli(folder)
    d = tmp_path_factory.mktemp("josm")
    f = josm(d / "awa.osm",
             *building(-1, -1, 14.5125, -8.8420),                                    # in Torodo
             *building(-5, -2, 14.5128, -8.8412, {"building": "school"}),
             *building(-9, -3, 14.5000, -8.7800),                                    # outside every village
             *building(-13, -4, 14.5118, -8.8431, {"man_made": "water_tower"}),     # a water point drawn as a way
             node(-20, 14.5120, -8.8425, {"man_made": "water_well", "water_well": "borehole", "pump": "manual",
                                          "drinking_water": "yes",
                                          "name": "Forage du marché"}),
             node(-21, 14.5121, -8.8426, {"man_made": "water_well", "name": "Puits"}),
             node(-22, 14.5122, -8.8427, {"man_made": "water_well", "name": "Puits"}))
    cli("submit", f, "--as", "Awa")
    cli("merge", "--base", DIANGUIRDE_POIS, "-o", d / "merged.osm.pbf")
    latest = folder / "merged" / "latest.osm.pbf"
    assert latest.is_file()
    return folder, cli, latest, _osmium_counts(latest)


@pytest.fixture(scope="module")
def data_out(merged, tmp_path_factory):
    _, cli, _, _ = merged
    d = tmp_path_factory.mktemp("dataout")
    files = {}
    for fmt in DATA_FORMATS:
        f = d / f"all.{fmt}"
        files[fmt] = (f, cli("export", "data", "--kind", "all", "-o", f).stdout)
    return files


def _villages(folder) -> dict:
    return {r["name"]: shapely.from_wkb(r["geom"]) for r in query(folder, "SELECT name, geom FROM areas WHERE kind = 'village'")}


def _where(folder, lon, lat) -> tuple[str, int | None]:
    """(village, task) of a point from the project's tables: the village holding it, else inside the project's
    area the nearest, else none; its task."""
    p = shapely.Point(lon, lat)
    villages = _villages(folder)
    inside = [n for n, g in villages.items() if g.intersects(p)]
    if len(inside) == 1:
        village = inside[0]
    elif aoi_geom(folder).intersects(p):
        village = min(villages, key=lambda n: villages[n].distance(p))
    else:
        village = ""
    tasks = sorted(r["id"] for r in query(folder, "SELECT id, geom FROM tasks WHERE state != 'SPLIT'")
                   if shapely.from_wkb(r["geom"]).intersects(p))
    return village, (tasks[0] if tasks else None)


def _read_data(fmt, f) -> list[dict]:
    """Every exported object as {props..., 'lon', 'lat', 'geom'} through an independent reader."""
    out = []
    if fmt in ("geojson", "gpkg"):
        for layer in fiona.listlayers(f):
            with fiona.open(f, layer=layer) as src:
                assert src.crs.to_epsg() == 4326
                for feat in src:
                    g = shape(feat.geometry)
                    p = g if g.geom_type == "Point" else g.representative_point()
                    out.append({**dict(feat.properties), "lon": p.x, "lat": p.y, "geom": g, "layer": layer})
    elif fmt == "csv":
        with fiona.open(f, X_POSSIBLE_NAMES="lon", Y_POSSIBLE_NAMES="lat") as src:  # GDAL's CSV reader
            for feat in src:
                x, y = feat.geometry.coordinates
                out.append({**dict(feat.properties), "lon": x, "lat": y})
        rows = list(csv.DictReader(io.StringIO(f.read_text(encoding="utf-8"))))
        assert [(float(r["lon"]), float(r["lat"])) for r in rows] == [(o["lon"], o["lat"]) for o in out]
    elif fmt == "gpx":
        doc = gpxpy.parse(f.read_text(encoding="utf-8"))
        assert not doc.tracks and not doc.routes
        for w in doc.waypoints:
            out.append({"label": w.name, "kind": w.type, "desc": w.description, "sym": w.symbol,
                        "lon": w.longitude, "lat": w.latitude})
    elif fmt == "kml":
        root = ET.parse(f).getroot()
        assert root.tag == f"{KML}kml"
        for folder in root.iter(f"{KML}Folder"):
            for pm in folder.iter(f"{KML}Placemark"):
                x, y = (float(v) for v in pm.find(f"{KML}Point/{KML}coordinates").text.split(","))
                data = {d.get("name"): d.find(f"{KML}value").text for d in pm.iter(f"{KML}Data")}
                assert data["kind"] == folder.find(f"{KML}name").text
                out.append({**data, "label": pm.find(f"{KML}name").text, "desc": pm.find(f"{KML}description").text,
                            "lon": x, "lat": y})
    return out


@pytest.mark.parametrize("fmt", DATA_FORMATS)
def test_data_export_counts_match_osmium(merged, data_out, fmt):
    folder, _, latest, c = merged
    f, stdout = data_out[fmt]
    objs = _read_data(fmt, f)
    water = [o for o in objs if o["kind"] != "building"]
    buildings = [o for o in objs if o["kind"] == "building"]
    assert c == {"water_well": 62, "borehole": 1, "water_tower": 1, "building": 3}
    assert len(water) == c["water_well"] + c["water_tower"] and len(buildings) == c["building"]
    kinds = {k: sum(1 for o in objs if o["kind"] == k) for k in ("borehole", "well", "water tower")}
    assert kinds == {"borehole": c["borehole"], "well": c["water_well"] - c["borehole"], "water tower": 1}
    assert f"Wrote {len(objs)} objects" in stdout and "61 well" in stdout and str(latest) in stdout
    labels = [o["label"] for o in objs]
    assert len(set(labels)) == len(labels)  # GPS units keep one waypoint per name
    assert {"Puits", "Puits 2", "Forage du marché"} <= set(labels)
    # every object where the project says it is
    for o in objs:
        village, task = _where(folder, o["lon"], o["lat"])
        if fmt in ("gpx", "kml"):
            assert (f"village {village};" in o["desc"]) == bool(village)
            assert (f"task {task};" in o["desc"]) == (task is not None)
        else:
            assert o["village"] == village
            assert (int(o["task"]) if o["task"] not in (None, "") else None) == task
    borehole = next(o for o in objs if o["kind"] == "borehole")
    assert (borehole["lon"], borehole["lat"]) == pytest.approx((-8.8425, 14.5120), abs=1e-7)
    assert borehole["label"] == "Forage du marché"
    if fmt in ("gpx", "kml"):
        assert "pump=manual" in borehole["desc"] and "drinking_water=yes" in borehole["desc"]
        assert "OSM node/-" in borehole["desc"]  # not uploaded yet: the merge's new id
    else:
        assert (borehole["pump"], borehole["drinking_water"], borehole["village"]) == ("manual", "yes", "Torodo")
        assert borehole["osm_id"].startswith("node/-")
        school = next(o for o in buildings if o["building"] == "school")
        assert school["village"] == "Torodo"
    outside = next(o for o in buildings if o["lon"] > -8.79)
    assert _where(folder, outside["lon"], outside["lat"]) == ("", None)  # outside the project: no village, no task
    assert "Outside the project's area (no village): 1;" in stdout
    if fmt in ("geojson", "gpkg"):  # buildings as their outlines, water points as points
        assert {o["geom"].geom_type for o in buildings} <= {"Polygon", "MultiPolygon"}
        assert all(o["geom"].geom_type == "Point" for o in water)
        assert all(o["geom"].area == pytest.approx(1e-8, rel=1e-3) for o in buildings)
    if fmt == "gpkg":
        assert fiona.listlayers(f) == ["water_points", "buildings"]
    if fmt == "gpx":
        assert {o["sym"] for o in water} == {"Drinking Water"} and {o["sym"] for o in buildings} == {"Building"}


def test_data_export_defaults_to_wells_and_reads_data(merged, tmp_path):
    _, cli, latest, c = merged
    f = tmp_path / "wells.gpx"
    r = cli("export", "data", "-o", f)
    assert f"Wrote {c['water_well'] + c['water_tower']} objects" in r.stdout
    assert all(w.type != "building" for w in gpxpy.parse(f.read_text(encoding="utf-8")).waypoints)
    b = tmp_path / "b.geojson"
    cli("export", "data", "--kind", "buildings", "-o", b)
    with fiona.open(b) as src:
        assert len(src) == c["building"] and src.name == "buildings"
    # --data: the 2019 extract alone, its 59 wells as osmium counts them
    base = _osmium_counts(DIANGUIRDE_POIS)
    r = cli("export", "data", "--data", DIANGUIRDE_POIS, "-o", f)
    assert base["water_well"] == 59 and "Wrote 59 objects (59 well)" in r.stdout
    assert len(gpxpy.parse(f.read_text(encoding="utf-8")).waypoints) == 59


def test_data_export_one_village(merged, tmp_path):
    folder, cli, latest, _ = merged
    torodo = _villages(folder)["Torodo"]
    expected = []
    for o in osmium.FileProcessor(str(latest), osmium.osm.NODE):
        if o.tags.get("man_made") == "water_well" and torodo.intersects(shapely.Point(o.location.lon, o.location.lat)):
            expected.append(o.id)
    f = tmp_path / "torodo.kml"
    cli("export", "data", "--village", "  TORODO ", "-o", f)  # the project's village matching
    objs = _read_data("kml", f)
    assert sorted(int(o["osm_id"].split("/")[1]) for o in objs if o["osm_id"].startswith("node/")) == sorted(expected)
    assert len(expected) > 50 and {o["village"] for o in objs} == {"Torodo"}
    assert ET.parse(f).getroot().find(f"{KML}Document/{KML}name").text == "Dianguirdé - Torodo"


def test_csv_for_a_french_excel(merged, tmp_path):
    _, cli, _, _ = merged
    plain, fr = tmp_path / "plain.csv", tmp_path / "fr.csv"
    cli("export", "data", "--kind", "all", "-o", plain)
    cli("export", "data", "--kind", "all", "-o", fr, "--csv-dialect", "excel-fr")
    raw = fr.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw  # UTF-8 with BOM, Windows lines: what Excel expects
    a = list(csv.DictReader(io.StringIO(plain.read_text(encoding="utf-8"))))
    b = list(csv.DictReader(io.StringIO(fr.read_text(encoding="utf-8-sig"), newline=""), delimiter=";"))
    assert len(a) == len(b) > 60
    for x, y in zip(a, b):
        assert "." not in y["lon"] + y["lat"] and "," in y["lon"]
        assert float(y["lon"].replace(",", ".")) == float(x["lon"])
        assert float(y["lat"].replace(",", ".")) == float(x["lat"])
        assert {k: v for k, v in y.items() if k not in ("lon", "lat")} == \
            {k: v for k, v in x.items() if k not in ("lon", "lat")}
    assert "Forage du marché" in {r["name"] for r in b}
    # the same writer for the tasks: WKT keeps its dots, numbers get commas
    t = tmp_path / "tasks.csv"
    cli("export", "tasks", "-o", t, "--csv-dialect", "excel-fr")
    rows = list(csv.DictReader(io.StringIO(t.read_text(encoding="utf-8-sig"), newline=""), delimiter=";"))
    assert rows[0]["WKT"].startswith("MULTIPOLYGON (((-") and "," in rows[0]["area_m2"]
    assert float(rows[0]["area_m2"].replace(",", ".")) > 100_000


def test_data_export_errors(merged, tmp_path, tmp_path_factory):
    folder, cli, _, _ = merged
    assert_error(cli("export", "data", "-o", tmp_path / "w.shp", ok=False), "w.shp", "--format", "kml")
    assert_error(cli("export", "data", "-o", tmp_path / "w.gpx", "--kind", "trees", ok=False), "--kind trees")
    assert_error(cli("export", "data", "-o", tmp_path / "w.gpx", "--village", "Torrodo", ok=False),
                 "Torrodo", "did you mean 'Torodo'")
    assert_error(cli("export", "data", "-o", tmp_path / "w.gpx", "--csv-dialect", "excel-fr", ok=False),
                 "--csv-dialect", ".csv")
    assert_error(cli("export", "data", "-o", tmp_path / "w.csv", "--csv-dialect", "excel-de", ok=False),
                 "excel-de", "excel-fr")
    josm_file = josm(tmp_path_factory.mktemp("j") / "a.osm", node(-1, 14.5, -8.8, {"man_made": "water_well"}))
    assert_error(cli("export", "data", "-o", tmp_path / "w.gpx", "--data", josm_file, ok=False), "a.osm", ".osm.pbf")
    assert_error(cli("export", "data", "-o", tmp_path / "w.gpx", "--data", tmp_path / "no.osm.pbf", ok=False),
                 "no.osm.pbf", "no such file")
    damaged = tmp_path_factory.mktemp("d") / "damaged.osm.pbf"
    damaged.write_bytes(DIANGUIRDE_POIS.read_bytes()[:3000])
    for k in ("wells", "buildings"):
        assert_error(cli("export", "data", "-o", tmp_path / "w.gpx", "--data", damaged, "--kind", k, ok=False),
                     "damaged.osm.pbf")
    assert_error(cli("export", "data", "-o", tmp_path / "b.gpx", "--kind", "buildings", "--village", "Dianguirdé",
                     ok=False), "no buildings", "Dianguirdé", "nothing written")
    assert_error(cli("export", "data", "-o", tmp_path / "nope" / "w.gpx", ok=False), "nope")
    assert list(tmp_path.iterdir()) == []
    fresh = copy_project(village_template(tmp_path_factory, 16), tmp_path_factory.mktemp("fresh") / "p")
    assert_error(Cli(fresh)("export", "data", "-o", tmp_path / "w.gpx", ok=False),
                 "latest.osm.pbf", "mapathon merge", "--data")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not have("ogrinfo"), reason="GDAL's ogrinfo is not installed")
@pytest.mark.parametrize("fmt", ["gpx", "kml"])
def test_ogrinfo_reads_phone_files(merged, data_out, fmt):
    _, _, _, c = merged
    f, _ = data_out[fmt]
    r = subprocess.run(["ogrinfo", "-ro", "-so", "-al", str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    counts = [int(n) for n in re.findall(r"Feature Count: (\d+)", r.stdout)]
    assert sum(counts) == c["water_well"] + c["water_tower"] + c["building"], r.stdout


def test_kml_with_gdal(merged, data_out, monkeypatch):
    """GDAL's own KML reader (not enabled in fiona by default) sees one layer per kind, with names and points."""
    _, _, _, c = merged
    f, _ = data_out["kml"]
    monkeypatch.setitem(fiona.supported_drivers, "KML", "r")
    layers = fiona.listlayers(f)
    assert set(layers) == {"borehole", "well", "water tower", "building"}
    counts = {}
    for layer in layers:
        with fiona.open(f, layer=layer) as src:
            assert src.crs.to_epsg() == 4326
            feats = list(src)
            counts[layer] = len(feats)
            assert all(x.geometry.type == "Point" and x.properties["Name"] for x in feats)
    assert counts == {"borehole": c["borehole"], "well": c["water_well"] - c["borehole"], "water tower": 1,
                      "building": c["building"]}
