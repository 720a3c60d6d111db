"""Areas of interest: every accepted format, projected inputs, repair, and every refusal through `init`."""

from __future__ import annotations

import json
import math

import fiona
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Transformer
from shapely.geometry import mapping

from conftest import LIECHTENSTEIN, VILLAGES_CSV, Cli
from foundation_helpers import GEOD, aoi_geom, assert_error, geod_area, query, write_geojson

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)

UTM29 = "EPSG:32629"
TO_WGS84 = Transformer.from_crs(UTM29, "EPSG:4326", always_xy=True)


def init(tmp_path, aoi, *extra, ok=True, folder="p"):
    return Cli()("init", tmp_path / folder, "--name", "Test", "--aoi", aoi, *extra, ok=ok)


def refused(tmp_path, aoi, *extra, needles=()):
    """init must fail with one error line naming the AOI file, and leave no project behind."""
    r = init(tmp_path, aoi, *extra, ok=False)
    line = assert_error(r, *needles)
    assert not (tmp_path / "p" / "mapathon.sqlite").exists()
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").iterdir())
    return line


def villages(folder):
    return {r["name"]: r for r in query(folder, "SELECT * FROM areas WHERE kind != 'aoi'")}


# -- villages CSV -----------------------------------------------------------------------------------------


def test_villages_csv_circles_have_the_area_of_a_circle(tmp_path):
    init(tmp_path, VILLAGES_CSV, "--radius", "2000")
    vs = villages(tmp_path / "p")
    assert len(vs) == 14
    expected = math.pi * 2000**2
    for name, v in vs.items():
        g = shapely.from_wkb(v["geom"])
        assert v["kind"] == "village"
        assert geod_area(g) == pytest.approx(expected, rel=0.005), name
        # the circle is centred on the village: every vertex is 2 km away (geodesic distance)
        lon, lat = v["lon"], v["lat"]
        assert g.contains(shapely.Point(lon, lat))
        xs, ys = zip(*g.exterior.coords)
        _, _, dist = GEOD.inv([lon] * len(xs), [lat] * len(ys), xs, ys)
        assert min(dist) == pytest.approx(2000, rel=1e-3) and max(dist) == pytest.approx(2000, rel=1e-3)
    # Dianguirdé's own row from the CSV
    assert vs["Dianguirdé"]["lat"] == pytest.approx(14.4931945) and vs["Dianguirdé"]["lon"] == pytest.approx(-9.0161968)
    assert json.loads(vs["Dianguirdé"]["props"])["osm_id"] == "2466018729"
    # the AOI is the union of the circles (some overlap: Dabara/M'Beidi, Méréla/N'Gabanigoro...)
    union = shapely.union_all([shapely.from_wkb(v["geom"]) for v in vs.values()])
    aoi = aoi_geom(tmp_path / "p")
    assert geod_area(aoi) == pytest.approx(geod_area(union), rel=1e-6)
    assert geod_area(aoi) < 14 * expected


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lat=st.floats(-60, 60), lon=st.floats(-179, 179), radius=st.floats(50, 20_000))
def test_buffer_is_metric_anywhere(lat, lon, radius):
    """Circles are built in metres, never degrees: the area is π r² at any latitude."""
    from mapathon.geo import buffer_point_m

    assert geod_area(buffer_point_m(lon, lat, radius)) == pytest.approx(math.pi * radius**2, rel=0.005)


def test_csv_needs_radius(tmp_path):
    refused(tmp_path, VILLAGES_CSV, needles=("dianguirde-villages.csv", "--radius"))


@pytest.mark.parametrize("radius", ["0", "-5"])
def test_csv_radius_must_be_positive(tmp_path, radius):
    refused(tmp_path, VILLAGES_CSV, "--radius", radius, needles=("--radius",))


@pytest.mark.parametrize(
    "content, needles",
    [
        ("name,lat,lon\nA,14.5,-9.0\nB,abc,-9.1\n", ("line 3", "abc")),
        ("name,lat,lon\nA,95,-9.0\n", ("line 2", "outside")),
        ("name,lat,lon\n,14.5,-9.0\n", ("line 2", "no name")),
        ("name,altitude,lon\nA,14.5,-9.0\n", ("lat", "found: name, altitude, lon")),
        ("name,lat,lon\n", ("no village",)),
        ("name,lat,lon\nA,14.5,-9.0\nA,14.6,-9.0\n", ("unique", "A")),
    ],
    ids=["bad-lat", "outside-world", "no-name", "missing-column", "no-rows", "duplicate"],
)
def test_bad_villages_csv(tmp_path, content, needles):
    f = tmp_path / "v.csv"
    f.write_text(content, encoding="utf-8")
    refused(tmp_path, f, "--radius", "1000", needles=("v.csv", *needles))


def test_csv_from_french_excel_is_read(tmp_path, cli):
    """Windows-1252, ';' separators, decimal commas and Latitude/Longitude headers: read, with a warning."""
    f = tmp_path / "excel.csv"
    f.write_bytes("Nom;Latitude;Longitude\r\nDianguirdé;14,4931945;-9,0161968\r\nTorodo;14,5113;-8,8428\r\n"
                  .encode("cp1252"))
    r = cli("init", tmp_path / "p", "--name", "T", "--aoi", f, "--radius", "1000")
    assert "Windows-1252" in r.stderr and "CSV UTF-8" in r.stderr
    info = json.loads(Cli(tmp_path / "p")("info", "--json").stdout)
    assert info["villages"] == ["Dianguirdé", "Torodo"]
    assert info["aoi_bounds"][0] == pytest.approx(-9.0161968 - 0.0093, abs=0.001)


def test_csv_decimal_comma_with_comma_separator_is_refused(tmp_path):
    f = tmp_path / "v.csv"
    f.write_text("name,lat,lon\nDianguirdé,14,49,-9.01\n", encoding="utf-8")
    refused(tmp_path, f, "--radius", "1000", needles=("v.csv", "line 2", "decimal comma"))


def test_far_village_is_refused_unless_force(tmp_path, cli):
    """A swapped lat/lon puts a village thousands of km away: refused (no project), kept with --force."""
    f = tmp_path / "v.csv"
    f.write_text("name,lat,lon\nA,14.49,-9.01\nB,14.51,-8.84\nC,-9.02,14.42\n", encoding="utf-8")
    line = refused(tmp_path, f, "--radius", "1000", needles=("v.csv", "C (lat -9.02, lon 14.42) is", "swapped",
                                                               "--force"))
    assert "km from the other villages" in line
    r = cli("init", tmp_path / "p", "--name", "T", "--aoi", f, "--radius", "1000", "--force")
    assert "C (lat -9.02, lon 14.42) is" in r.stderr and "swapped" in r.stderr
    assert set(villages(tmp_path / "p")) == {"A", "B", "C"}


def test_village_between_300_and_500_km_only_warns(tmp_path, cli):
    f = tmp_path / "v.csv"  # D is about 400 km north of the others
    f.write_text("name,lat,lon\nA,14.49,-9.01\nB,14.51,-8.84\nC,14.42,-9.0\nD,18.1,-9.0\n", encoding="utf-8")
    r = cli("init", tmp_path / "p", "--name", "T", "--aoi", f, "--radius", "1000")
    assert "D (lat 18.1, lon -9.0) is" in r.stderr and "Warning" in r.stderr
    assert set(villages(tmp_path / "p")) == {"A", "B", "C", "D"}


def test_far_point_in_a_geojson_is_refused_too(tmp_path):
    pts = [((-9.01, 14.49), "A"), ((-8.84, 14.51), "B"), ((14.42, -9.02), "C")]
    f = write_geojson(tmp_path / "v.geojson", [({"type": "Point", "coordinates": xy}, {"name": n}) for xy, n in pts])
    refused(tmp_path, f, "--radius", "1000", needles=("v.geojson", "C (lat -9.02, lon 14.42)", "--force"))


def test_gpx_track_points_do_not_become_villages(tmp_path, pcli):
    """Our own GPX export (task outlines as tracks, villages as waypoints) as an AOI: the thousands of
    track points are left out with a warning; the waypoints are the villages."""
    gpx = tmp_path / "tasks.gpx"
    pcli("export", "tasks", "-o", gpx)
    with fiona.open(gpx, layer="track_points") as src:
        assert sum(1 for _ in src) > 1000
    r = init(tmp_path, gpx, "--radius", "2000", folder="again")
    assert "track/route points" in r.stderr and "waypoints" in r.stderr
    with fiona.open(gpx, layer="waypoints") as src:
        waypoints = sum(1 for _ in src)
    assert 0 < len(villages(tmp_path / "again")) == waypoints < 100


def test_gpx_of_only_a_track_is_refused(tmp_path):
    gpx = tmp_path / "walk.gpx"
    pts = "".join(f'<trkpt lat="{14.49 + i / 1000}" lon="{-9.01 + i / 1000}"/>' for i in range(500))
    gpx.write_text('<?xml version="1.0"?><gpx version="1.1" creator="t" xmlns="http://www.topografix.com/GPX/1/1">'
                   f"<trk><name>walk</name><trkseg>{pts}</trkseg></trk></gpx>", encoding="utf-8")
    refused(tmp_path, gpx, "--radius", "2000", needles=("walk.gpx", "only lines"))


def test_over_5000_km2_refused_unless_max_area(tmp_path):
    f = tmp_path / "big.csv"
    f.write_text("name,lat,lon\nKayes,14.45,-11.44\n")  # π·40² ≈ 5,027 km²
    line = refused(tmp_path, f, "--radius", "40000", needles=("big.csv", "--max-area", "5,000"))
    covers = float(line.split("covers ")[1].split(" km²")[0].replace(",", ""))  # says how big the area is
    assert covers == pytest.approx(math.pi * 40**2, rel=0.005)
    init(tmp_path, f, "--radius", "40000", "--max-area", "6000")
    assert geod_area(aoi_geom(tmp_path / "p")) / 1e6 == pytest.approx(math.pi * 40**2, rel=0.005)
    # and --max-area also lowers the limit
    refused_dir = tmp_path / "small"
    refused_dir.mkdir()
    r = init(refused_dir, VILLAGES_CSV, "--radius", "2000", "--max-area", "100", ok=False)
    assert_error(r, "100 km²")


# -- GeoJSON, GeoPackage, Shapefile ------------------------------------------------------------------------


SQUARE = [[-9.05, 14.45], [-8.95, 14.45], [-8.95, 14.55], [-9.05, 14.55], [-9.05, 14.45]]


def test_geojson_polygon_in_wgs84(tmp_path):
    hole = [[-9.01, 14.49], [-8.99, 14.49], [-8.99, 14.51], [-9.01, 14.51], [-9.01, 14.49]]
    f = write_geojson(tmp_path / "a.geojson", [
        ({"type": "Polygon", "coordinates": [SQUARE, hole]}, {"name": "Zone A"}),
        ({"type": "Polygon", "coordinates": [[[-8.9, 14.4], [-8.85, 14.4], [-8.85, 14.45], [-8.9, 14.4]]]}, {}),
    ])
    r = init(tmp_path, f)
    assert r.stderr.strip() == ""
    expected = shapely.union_all([shapely.Polygon(SQUARE, [hole]),
                                  shapely.Polygon([(-8.9, 14.4), (-8.85, 14.4), (-8.85, 14.45)])])
    got = aoi_geom(tmp_path / "p")
    assert got.symmetric_difference(expected).area < 1e-12
    assert geod_area(got) == pytest.approx(geod_area(expected), rel=1e-9)
    vs = villages(tmp_path / "p")
    assert list(vs) == ["Zone A"] and vs["Zone A"]["kind"] == "zone"


def test_geojson_points_with_radius_become_villages(tmp_path):
    f = write_geojson(tmp_path / "pts.geojson", [
        ({"type": "Point", "coordinates": [-9.0161968, 14.4931945]}, {"name": "Dianguirdé"}),
        ({"type": "Point", "coordinates": [-8.8428466, 14.5113209]}, {"nom": "Torodo"}),
    ])
    refused(tmp_path, f, needles=("pts.geojson", "--radius"))
    init(tmp_path, f, "--radius", "1500")
    vs = villages(tmp_path / "p")
    assert sorted(vs) == ["Dianguirdé", "Torodo"]
    for v in vs.values():
        assert geod_area(shapely.from_wkb(v["geom"])) == pytest.approx(math.pi * 1500**2, rel=0.005)


def _utm_polygon():
    """An irregular 6 km × 4 km polygon near Dianguirdé, in UTM 29N metres."""
    x0, y0 = 498_000, 1_602_000
    return shapely.Polygon([(x0, y0), (x0 + 6000, y0), (x0 + 6000, y0 + 2500), (x0 + 3000, y0 + 4000), (x0, y0 + 4000)])


def _to_wgs84(g):
    dense = shapely.segmentize(g, 50)
    return shapely.transform(dense, lambda c: np.column_stack(TO_WGS84.transform(c[:, 0], c[:, 1])))


@pytest.mark.parametrize("driver, name", [("GPKG", "zone.gpkg"), ("ESRI Shapefile", "zone.shp")])
def test_projected_gpkg_and_shapefile_are_reprojected(tmp_path, driver, name):
    poly = _utm_polygon()
    f = tmp_path / name
    schema = {"geometry": "Polygon", "properties": {"name": "str", "pop": "int"}}
    with fiona.open(f, "w", driver=driver, crs=UTM29, schema=schema) as dst:
        dst.write({"geometry": mapping(poly), "properties": {"name": "Bérélé", "pop": 1200}})
    r = init(tmp_path, f)
    assert "1 named area(s): Bérélé" in r.stdout
    got = aoi_geom(tmp_path / "p")
    # coordinates are degrees now, around Dianguirdé
    minx, miny, maxx, maxy = got.bounds
    assert -9.1 < minx < maxx < -8.9 and 14.4 < miny < maxy < 14.6
    expected = _to_wgs84(poly)
    assert geod_area(got) == pytest.approx(geod_area(expected), rel=0.001)
    # the UTM plane area differs from the true area only by the scale factor (k ≈ 0.9996 near the meridian)
    assert geod_area(got) == pytest.approx(poly.area, rel=0.005)
    assert got.symmetric_difference(expected).area / expected.area < 1e-4
    v = villages(tmp_path / "p")["Bérélé"]
    assert json.loads(v["props"])["pop"] == 1200


def test_self_intersecting_polygon_is_repaired_with_a_warning(tmp_path):
    bowtie = [[-9.0, 14.4], [-8.9, 14.5], [-8.9, 14.4], [-9.0, 14.5], [-9.0, 14.4]]
    f = write_geojson(tmp_path / "bowtie.geojson", [({"type": "Polygon", "coordinates": [bowtie]}, {})])
    r = init(tmp_path, f)
    assert "Warning:" in r.stderr and "bowtie.geojson" in r.stderr and "repaired" in r.stderr
    got = aoi_geom(tmp_path / "p")
    assert got.is_valid
    two_triangles = shapely.union_all([shapely.Polygon([(-9.0, 14.4), (-8.95, 14.45), (-9.0, 14.5)]),
                                       shapely.Polygon([(-8.9, 14.4), (-8.95, 14.45), (-8.9, 14.5)])])
    assert geod_area(got) == pytest.approx(geod_area(two_triangles), rel=1e-6)


def test_named_invalid_polygon_warns_once(tmp_path):
    bowtie = [[-9.0, 14.4], [-8.9, 14.5], [-8.9, 14.4], [-9.0, 14.5], [-9.0, 14.4]]
    f = write_geojson(tmp_path / "b.geojson", [({"type": "Polygon", "coordinates": [bowtie]}, {"name": "Nœud"})])
    r = init(tmp_path, f)
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("Warning:")]
    assert len(warnings) == 1 and "Nœud" in warnings[0]
    assert shapely.from_wkb(villages(tmp_path / "p")["Nœud"]["geom"]).is_valid


def test_duplicate_zone_names_are_renamed_with_a_warning(tmp_path):
    a = [[-9.0, 14.4], [-8.99, 14.4], [-8.99, 14.41], [-9.0, 14.4]]
    b = [[-8.9, 14.4], [-8.89, 14.4], [-8.89, 14.41], [-8.9, 14.4]]
    f = write_geojson(tmp_path / "d.geojson", [({"type": "Polygon", "coordinates": [a]}, {"name": "Kita"}),
                                               ({"type": "Polygon", "coordinates": [b]}, {"name": "Kita"})])
    r = init(tmp_path, f)
    assert "Kita (2)" in r.stderr
    assert sorted(villages(tmp_path / "p")) == ["Kita", "Kita (2)"]


def test_empty_file(tmp_path):
    f = tmp_path / "empty.geojson"
    f.write_bytes(b"")
    refused(tmp_path, f, needles=("empty.geojson",))


def test_no_features(tmp_path):
    f = write_geojson(tmp_path / "none.geojson", [])
    refused(tmp_path, f, needles=("none.geojson", "no geometry"))


def test_only_lines(tmp_path):
    f = write_geojson(tmp_path / "roads.geojson", [
        ({"type": "LineString", "coordinates": [[-9.0, 14.4], [-8.9, 14.5]]}, {"highway": "track"}),
        ({"type": "MultiLineString", "coordinates": [[[-9.0, 14.3], [-8.9, 14.3]]]}, {}),
    ])
    refused(tmp_path, f, needles=("roads.geojson", "lines", "polygon"))


def test_degenerate_polygon_is_empty(tmp_path):
    flat = [[-9.0, 14.4], [-8.9, 14.4], [-8.8, 14.4], [-9.0, 14.4]]
    f = write_geojson(tmp_path / "flat.geojson", [({"type": "Polygon", "coordinates": [flat]}, {})])
    refused(tmp_path, f, needles=("flat.geojson", "empty"))


@pytest.mark.parametrize("name", ["garbage.geojson", "garbage.gpkg", "garbage.shp", "garbage.osm.pbf"])
def test_garbage_bytes(tmp_path, name):
    f = tmp_path / name
    f.write_bytes(bytes(range(256)) * 8)
    extra = ("--relation", "1") if name.endswith(".pbf") else ()
    refused(tmp_path, f, *extra, needles=(name,))


def test_projected_file_without_crs_is_refused(tmp_path):
    f = tmp_path / "nocrs.geojson"
    poly = _utm_polygon()
    f.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": mapping(poly)}]}))
    # GeoJSON is WGS84 by definition; coordinates in metres are not degrees
    r = init(tmp_path, f, ok=False)
    assert_error(r, "nocrs.geojson", "degrees")
    assert not (tmp_path / "p").exists()


def test_shapefile_in_metres_without_its_prj_is_refused(tmp_path):
    f = tmp_path / "noprj.shp"
    with fiona.open(f, "w", driver="ESRI Shapefile", crs=UTM29,
                    schema={"geometry": "Polygon", "properties": {"name": "str"}}) as dst:
        dst.write({"geometry": mapping(_utm_polygon()), "properties": {"name": "x"}})
    f.with_suffix(".prj").unlink()
    refused(tmp_path, f, needles=("noprj.shp", "no CRS"))


# -- OpenStreetMap boundary relations -----------------------------------------------------------------------


def test_osm_pbf_boundary_relation_liechtenstein(tmp_path):
    r = init(tmp_path, LIECHTENSTEIN, "--relation", "1155955")
    assert "Liechtenstein" in r.stdout
    got = aoi_geom(tmp_path / "p")
    assert got.is_valid and got.geom_type in ("Polygon", "MultiPolygon")
    assert geod_area(got) / 1e6 == pytest.approx(160.5, abs=2.0)
    vaduz, schaan, feldkirch = shapely.Point(9.5209, 47.1410), shapely.Point(9.5095, 47.1651), shapely.Point(9.5981, 47.2370)
    assert got.contains(vaduz) and got.contains(schaan) and not got.contains(feldkirch)
    (zone,) = villages(tmp_path / "p").values()
    assert zone["name"] == "Liechtenstein" and json.loads(zone["props"])["osm_relation"] == 1155955


def test_osm_missing_relation(tmp_path):
    refused(tmp_path, LIECHTENSTEIN, "--relation", "999999999", needles=("999999999", "not found"))


def test_osm_needs_relation(tmp_path):
    refused(tmp_path, LIECHTENSTEIN, needles=("--relation",))


# -- progress while a large file is read ---------------------------------------------------------------------


def test_a_large_area_file_reports_its_progress(tmp_path, monkeypatch):
    from mapathon import aoi as aoi_mod

    corners = [(-9.1 + i * 0.01, 14.4) for i in range(7)]
    f = write_geojson(tmp_path / "v.geojson", [({"type": "Point", "coordinates": xy}, {"name": f"V{i}"})
                                               for i, xy in enumerate(corners)])
    rows = tmp_path / "v.csv"
    rows.write_text("name,lat,lon\n" + "".join(f"V{i},{lat},{lon}\n" for i, (lon, lat) in enumerate(corners)))
    calls: list[tuple[int, int | None]] = []
    # a small file says nothing
    aoi_mod.read_aoi(f, radius=500, progress=lambda d, t: calls.append((d, t)))
    assert calls == []
    monkeypatch.setattr(aoi_mod, "PROGRESS_MIN_BYTES", 100)
    monkeypatch.setattr(aoi_mod, "PROGRESS_EVERY", 3)
    for path in (f, rows):
        calls.clear()
        area = aoi_mod.read_aoi(path, radius=500, progress=lambda d, t: calls.append((d, t)))
        assert len(area.villages) == 7
        assert calls == [(0, 7), (3, 7), (6, 7), (7, 7)], path
    # the command shows it as a bar on stderr, gone when reading ends; the project is made as usual
    r = init(tmp_path, f, "--radius", "500")
    assert "Created project" in r.stdout and "Reading" not in r.stdout
    assert len(villages(tmp_path / "p")) == 7
