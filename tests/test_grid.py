"""The imagery grid: tile covers checked against mercantile + pyproj.Geod, clip, metric squares,
guards, re-gridding, grids from files (Tasking Manager and any polygons), and split."""

from __future__ import annotations

import json

import fiona
import mercantile
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Transformer
from shapely.geometry import mapping

from conftest import LIECHTENSTEIN, Cli
from foundation_helpers import (
    aoi_geom,
    assert_error,
    copy_project,
    expected_tile_cover,
    geod_area,
    query,
    snapshot,
    task_events,
    task_geoms,
    village_template,
    write_geojson,
)
from mapathon.tasks import grid as grid_mod

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)

TO_UTM = Transformer.from_crs("EPSG:4326", "EPSG:32629", always_xy=True)
FROM_UTM = Transformer.from_crs("EPSG:32629", "EPSG:4326", always_xy=True)


def _tf(tr, g):
    return shapely.transform(g, lambda c: np.column_stack(tr.transform(c[:, 0], c[:, 1])))


@pytest.fixture
def villages(tmp_path_factory, tmp_path):
    """The Dianguirdé project without a grid."""
    return copy_project(village_template(tmp_path_factory, None), tmp_path / "v")


@pytest.fixture
def z16(tmp_path_factory, tmp_path):
    """The Dianguirdé project gridded at zoom 16."""
    return copy_project(village_template(tmp_path_factory, 16), tmp_path / "g")


@pytest.fixture
def small(tmp_path):
    """A project on a small irregular polygon (~1.5 km²) near Dianguirdé."""
    ring = [[-9.020, 14.490], [-9.008, 14.488], [-9.004, 14.497], [-9.012, 14.503], [-9.019, 14.499], [-9.020, 14.490]]
    f = write_geojson(tmp_path / "small.geojson", [({"type": "Polygon", "coordinates": [ring]}, {"name": "Quartier"})])
    Cli()("init", tmp_path / "s", "--name", "Small", "--aoi", f)
    return tmp_path / "s"


def is_box(g, bounds, tol=1e-12, rel=1e-6) -> bool:
    """*g* is exactly the lon/lat box *bounds* (whatever its vertex order or single/multi type)."""
    b = shapely.box(*bounds)
    return np.allclose(g.bounds, b.bounds, rtol=0, atol=tol) and abs(g.area - b.area) <= b.area * rel \
        and g.symmetric_difference(b).area <= b.area * rel


def keys(project) -> set[str]:
    return set(task_geoms(project))


# -- tile grid --------------------------------------------------------------------------------------------


def test_zoom16_cover_equals_independent_tile_cover(z16):
    aoi = aoi_geom(z16)
    expected = expected_tile_cover(aoi, 16)
    assert keys(z16) == expected
    assert len(expected) > 500
    rows = query(z16, "SELECT key, z, x, y, area_m2, geom FROM tasks")
    for r in rows:
        t = mercantile.Tile(r["x"], r["y"], r["z"])
        assert r["key"] == f"16/{t.x}/{t.y}"
        g = shapely.from_wkb(r["geom"])
        assert is_box(g, mercantile.bounds(t))
        assert r["area_m2"] == pytest.approx(geod_area(g), rel=0.002)
    # every task is assigned the villages whose circle it overlaps
    tasks = {t["key"]: set(t["villages"]) for t in json.loads(Cli(z16)("tasks", "--json").stdout)}
    vs = {r["name"]: shapely.from_wkb(r["geom"]) for r in query(z16, "SELECT name, geom FROM areas WHERE kind = 'village'")}
    for r in rows[::7]:
        g = shapely.from_wkb(r["geom"])
        assert tasks[r["key"]] == {n for n, v in vs.items() if g.intersection(v).area > 0}


@pytest.mark.parametrize("zoom", [14, 17, 18])
def test_other_zooms_on_an_irregular_polygon(small, zoom):
    out = Cli(small)("grid", "--zoom", str(zoom))
    expected = expected_tile_cover(aoi_geom(small), zoom)
    assert keys(small) == expected
    assert f"Grid of {len(expected):,} tasks" in out.stdout
    assert json.loads(Cli(small)("info", "--json").stdout)["grid"]["zoom"] == zoom


def test_osm_boundary_cover(tmp_path):
    """Liechtenstein's boundary relation (a real, ragged multipolygon) at zoom 15."""
    Cli()("init", tmp_path / "li", "--name", "LI", "--aoi", LIECHTENSTEIN, "--relation", "1155955")
    Cli(tmp_path / "li")("grid", "--zoom", "15")
    aoi = aoi_geom(tmp_path / "li")
    assert keys(tmp_path / "li") == expected_tile_cover(aoi, 15)
    union = shapely.union_all(list(task_geoms(tmp_path / "li").values()))
    assert geod_area(aoi.difference(union)) < 1000  # only slivers under 1 m² per dropped cell


def test_min_overlap_drops_small_border_cells(small):
    Cli(small)("grid", "--zoom", "17")
    all_cells = keys(small)
    Cli(small)("grid", "--zoom", "17", "--min-overlap", "20000")
    big = keys(small)
    assert big == expected_tile_cover(aoi_geom(small), 17, 20000)
    assert big < all_cells and len(big) < len(all_cells) - 3
    for k in all_cells - big:  # the dropped ones really overlap by 20,000 m² or less
        t = mercantile.Tile(*map(int, k.split("/")[1:]), 17)
        assert geod_area(shapely.box(*mercantile.bounds(t)).intersection(aoi_geom(small))) <= 20000 * 1.005
    assert_error(Cli(small)("grid", "--zoom", "17", "--min-overlap", "-1", ok=False), "--min-overlap")
    assert_error(Cli(small)("grid", "--zoom", "17", "--min-overlap", "1e9", ok=False), "no task")


def test_clip_keeps_cells_inside_and_sums_to_the_aoi(villages):
    Cli(villages)("grid", "--zoom", "16", "--clip")
    aoi = aoi_geom(villages)
    geoms = task_geoms(villages)
    assert set(geoms) == expected_tile_cover(aoi, 16)
    within = aoi.buffer(1e-9)
    for k, g in geoms.items():
        assert g.geom_type in ("Polygon", "MultiPolygon"), k
        assert g.is_valid and within.contains(g), k
    total = sum(geod_area(g) for g in geoms.values())
    assert total == pytest.approx(geod_area(aoi), rel=0.005)
    # stored areas are the clipped areas
    stored = {r["key"]: r["area_m2"] for r in query(villages, "SELECT key, area_m2 FROM tasks")}
    for k in list(geoms)[::13]:
        assert stored[k] == pytest.approx(geod_area(geoms[k]), rel=0.003, abs=5)


def test_clip_where_the_aoi_touches_a_cell_side_gives_polygons(tmp_path):
    """An AOI running along a tile's side from outside: the clipped cell must be a polygon, not a
    geometry collection with a line (which no export format could write)."""
    c = mercantile.tile(-9.0, 14.5, 16)

    def box(dx, dy):
        return shapely.box(*mercantile.bounds(mercantile.Tile(c.x + dx, c.y + dy, 16)))

    w, s, e, n = box(0, 0).bounds
    aoi = shapely.union_all([shapely.box(w, s, (w + e) / 2, n), box(0, 1), box(1, 1), box(1, 0)])
    f = write_geojson(tmp_path / "notch.geojson", [(mapping(aoi), {})])
    Cli()("init", tmp_path / "n", "--name", "Notch", "--aoi", f)
    Cli(tmp_path / "n")("grid", "--zoom", "16", "--clip")
    geoms = task_geoms(tmp_path / "n")
    assert len(geoms) == 4
    assert all(g.geom_type in ("Polygon", "MultiPolygon") for g in geoms.values())
    notch = geoms[f"16/{c.x}/{c.y}"]
    assert geod_area(notch) == pytest.approx(geod_area(box(0, 0)) / 2, rel=0.001)
    for fmt in ("gpkg", "osm", "gpx"):
        Cli(tmp_path / "n")("export", "tasks", "-o", tmp_path / f"notch.{fmt}")
    Cli(tmp_path / "n")("volunteer", "add", "Org", "--organizer")
    Cli(tmp_path / "n")("split", f"16/{c.x}/{c.y}", "--as", "Org")
    kids = task_geoms(tmp_path / "n")
    assert all(g.geom_type in ("Polygon", "MultiPolygon") for g in kids.values())
    assert len(kids) == 3 + 2


def test_metric_grid_squares(villages):
    out = Cli(villages)("grid", "--size", "1000")
    assert "UTM zone 29N" in out.stdout
    aoi = aoi_geom(villages)
    local = _tf(TO_UTM, shapely.segmentize(aoi, 0.001))
    minx, miny, maxx, maxy = local.bounds
    expected = set()
    for i in range(int(minx // 1000), int(maxx // 1000) + 1):
        for j in range(int(miny // 1000), int(maxy // 1000) + 1):
            sq = shapely.box(i * 1000, j * 1000, (i + 1) * 1000, (j + 1) * 1000)
            if sq.intersection(local).area > 1:
                expected.add(f"utm29N/1000/{i}/{j}")
    geoms = task_geoms(villages)
    assert set(geoms) == expected
    for k, g in geoms.items():
        i, j = map(int, k.split("/")[2:])
        utm = _tf(TO_UTM, g)
        assert np.allclose(utm.bounds, (i * 1000, j * 1000, (i + 1) * 1000, (j + 1) * 1000), atol=0.01), k
        # a 1 km UTM square is 1 km² on the ground within the UTM scale factor
        assert geod_area(g) == pytest.approx(1e6, rel=0.005), k
    assert query(villages, "SELECT COUNT(*) FROM tasks WHERE z IS NOT NULL")[0][0] == 0
    assert_error(Cli(villages)("grid", "--size", "5", ok=False), "--size 5")


def test_metric_grid_clipped(villages):
    Cli(villages)("grid", "--size", "750", "--clip")
    aoi = aoi_geom(villages)
    geoms = task_geoms(villages)
    assert sum(geod_area(g) for g in geoms.values()) == pytest.approx(geod_area(aoi), rel=0.005)
    assert all(aoi.buffer(1e-9).contains(g) for g in geoms.values())


def test_max_tasks_guard(small, z16):
    for project in (small, z16):
        before = snapshot(project)
        # the candidate cells are far over the limit: refused before any work
        assert_error(Cli(project)("grid", "--zoom", "18", "--max-tasks", "5", ok=False), "--max-tasks 5")
        assert snapshot(project) == before
    # few candidate cells but still more tasks than allowed
    n17 = len(expected_tile_cover(aoi_geom(small), 17))
    assert_error(Cli(small)("grid", "--zoom", "17", "--max-tasks", str(n17 - 1), ok=False),
                 f"gives {n17} tasks", f"--max-tasks {n17 - 1}")
    Cli(small)("grid", "--zoom", "17", "--max-tasks", str(n17))
    assert len(keys(small)) == n17
    assert_error(Cli(small)("grid", "--zoom", "17", "--max-tasks", "0", ok=False), "--max-tasks")
    # a mistyped zoom over the whole commune is refused by the default limit
    assert_error(Cli(z16)("grid", "--zoom", "21", ok=False), "--max-tasks 300,000")


@pytest.mark.parametrize("zoom", ["0", "23", "-1"])
def test_bad_zoom(small, zoom):
    before = snapshot(small)
    assert_error(Cli(small)("grid", f"--zoom={zoom}", ok=False), f"--zoom {zoom}")
    assert snapshot(small) == before


def test_zoom_not_a_number_is_a_usage_error(small):
    r = Cli(small)("grid", "--zoom", "sixteen", ok=False)
    assert r.exit_code == 2


@pytest.mark.parametrize("args", [[], ["--zoom", "16", "--size", "500"], ["--zoom", "16", "--from", "x.geojson"]])
def test_exactly_one_grid_kind(small, args):
    assert_error(Cli(small)("grid", *args, ok=False), "exactly one")


def test_regrid_without_work_is_allowed(z16):
    Cli(z16)("grid", "--zoom", "15")
    assert keys(z16) == expected_tile_cover(aoi_geom(z16), 15)
    assert query(z16, "SELECT MAX(id) FROM tasks")[0][0] == len(keys(z16))


def test_regrid_after_work_needs_force_and_keeps_history(z16):
    cli = Cli(z16)
    cli("claim", "5", "--as", "Awa")
    key5 = query(z16, "SELECT key FROM tasks WHERE id = 5")[0][0]
    before = snapshot(z16)
    assert_error(cli("grid", "--zoom", "17", ok=False), "--force")
    assert snapshot(z16) == before
    assert query(z16, "SELECT state FROM tasks WHERE id = 5")[0][0] == "LOCKED_FOR_MAPPING"
    cli("grid", "--zoom", "17", "--force", "--as", "Mariam")
    assert keys(z16) == expected_tile_cover(aoi_geom(z16), 17)
    assert [e["action"] for e in task_events(z16, key5)] == ["claim.mapping"]  # the log is append-only
    last = query(z16, "SELECT actor, action, data FROM events ORDER BY seq DESC LIMIT 1")[0]
    assert (last["actor"], last["action"]) == ("Mariam", "grid.create")
    assert json.loads(last["data"])["replaced"] == len(before[0])


# -- grid from files ---------------------------------------------------------------------------------------


def _tm_features(tiles, style):
    feats = []
    for i, t in enumerate(tiles, 1):
        w, s, e, n = mercantile.bounds(t)
        ring = [[round(x, 9), round(y, 9)] for x, y in [(w, s), (e, s), (e, n), (w, n), (w, s)]]
        tms_y = 2**t.z - 1 - t.y
        if style == "grid":  # TM's task grid (project creation): x, y from the south, zoom
            props = {"x": t.x, "y": tms_y, "zoom": t.z, "isSquare": True}
        else:  # TM's "download tasks" GeoJSON
            props = {"taskId": i, "taskX": t.x, "taskY": tms_y, "taskZoom": t.z, "taskIsSquare": True,
                     "taskStatus": "READY"}
        feats.append(({"type": "MultiPolygon", "coordinates": [[ring]]}, props))
    return feats


@pytest.mark.parametrize("style, zoom", [("grid", 16), ("download", 16), ("grid", 18)])
def test_from_tasking_manager_geojson_gives_xyz_addresses(villages, tmp_path, style, zoom):
    centre = mercantile.tile(-9.0161968, 14.4931945, zoom)
    tiles = [mercantile.Tile(centre.x + dx, centre.y + dy, zoom) for dx in range(-2, 2) for dy in range(-1, 2)]
    f = write_geojson(tmp_path / "tm-tasks.geojson", _tm_features(tiles, style))
    out = Cli(villages)("grid", "--from", f)
    assert f"{len(tiles)} of them tiles" in out.stdout
    rows = query(villages, "SELECT key, z, x, y, area_m2, geom FROM tasks ORDER BY id")
    assert {r["key"] for r in rows} == {f"{zoom}/{t.x}/{t.y}" for t in tiles}
    for r in rows:
        assert (r["z"], r["x"], r["y"]) == tuple(map(int, r["key"].split("/")))
        t = mercantile.Tile(r["x"], r["y"], r["z"])
        assert is_box(shapely.from_wkb(r["geom"]), mercantile.bounds(t), 1e-9, rel=1e-5)  # 9 decimals, as TM
        assert r["area_m2"] == pytest.approx(geod_area(shapely.from_wkb(r["geom"])), rel=0.002)
    # tasks near the seat belong to Dianguirdé; a split of an imported tile gives tile children
    assert "Dianguirdé" in Cli(villages)("tasks", "--village", "Dianguirdé").stdout
    kids = Cli(villages)("split", f"{zoom}/{centre.x}/{centre.y}", "--as", "Mariam").stdout
    assert f"{zoom + 1}/{centre.x * 2}/{centre.y * 2}" in kids


def test_from_any_polygon_file_in_a_projected_crs(villages, tmp_path):
    x0, y0 = 498_000, 1_602_000
    polys = [shapely.box(x0, y0, x0 + 800, y0 + 600),
             shapely.Polygon([(x0 + 800, y0), (x0 + 1500, y0), (x0 + 1200, y0 + 600), (x0 + 800, y0 + 600)]),
             shapely.box(x0, y0 + 600, x0 + 1500, y0 + 1000)]
    f = tmp_path / "blocks.gpkg"
    schema = {"geometry": "Polygon", "properties": {"name": "str"}}
    with fiona.open(f, "w", driver="GPKG", crs="EPSG:32629", schema=schema) as dst:
        for i, p in enumerate(polys):
            dst.write({"geometry": mapping(p), "properties": {"name": f"bloc {i}"}})
    Cli(villages)("grid", "--from", f)
    rows = query(villages, "SELECT key, z, area_m2, geom FROM tasks ORDER BY id")
    assert [r["key"] for r in rows] == ["poly/1", "poly/2", "poly/3"]
    assert all(r["z"] is None for r in rows)
    for r, p in zip(rows, polys):
        expected = _tf(FROM_UTM, shapely.segmentize(p, 50))
        g = shapely.from_wkb(r["geom"])
        assert geod_area(g) == pytest.approx(geod_area(expected), rel=0.001)
        assert r["area_m2"] == pytest.approx(geod_area(expected), rel=0.003)
    # quadrants for a non-tile task
    out = Cli(villages)("split", "poly/3", "--as", "Mariam").stdout
    assert "poly/3.0" in out


def test_from_file_errors(villages, tmp_path):
    cli = Cli(villages)
    before = snapshot(villages)
    assert_error(cli("grid", "--from", tmp_path / "nope.geojson", ok=False), "nope.geojson", "no such file")
    lines = write_geojson(tmp_path / "lines.geojson",
                          [({"type": "LineString", "coordinates": [[-9.0, 14.4], [-8.9, 14.5]]}, {})])
    assert_error(cli("grid", "--from", lines, ok=False), "lines.geojson", "no polygon")
    junk = tmp_path / "junk.gpkg"
    junk.write_bytes(b"\x00\x01junk" * 50)
    assert_error(cli("grid", "--from", junk, ok=False), "junk.gpkg")
    t = mercantile.tile(-9.0, 14.5, 16)
    twice = write_geojson(tmp_path / "twice.geojson", _tm_features([t, t], "grid"))
    assert_error(cli("grid", "--from", twice, ok=False), "same tile twice")
    assert snapshot(villages) == before


# -- split -------------------------------------------------------------------------------------------------


def _tile(key):
    z, x, y = map(int, key.split("/"))
    return mercantile.Tile(x, y, z)


def test_split_interior_tile_gives_its_four_children_and_keeps_history(z16):
    cli = Cli(z16)
    aoi = aoi_geom(z16)
    geoms = task_geoms(z16)
    inner = next(k for k, g in geoms.items() if aoi.contains(g))
    cli("claim", inner, "--as", "Awa")
    cli("release", inner, "--as", "Awa")
    cli("claim", inner, "--as", "Awa")
    out = cli("split", inner, "--as", "Awa", "--comment", "too many buildings")
    kids = {f"{c.z}/{c.x}/{c.y}" for c in mercantile.children(_tile(inner))}
    rows = query(z16, "SELECT id, key, state, parent_id, z, x, y, geom FROM tasks WHERE parent_id IS NOT NULL")
    assert {r["key"] for r in rows} == kids
    parent = query(z16, "SELECT id, state, locked_by FROM tasks WHERE key = ?", (inner,))[0]
    assert (parent["state"], parent["locked_by"]) == ("SPLIT", None)
    for r in rows:
        assert r["state"] == "READY" and r["parent_id"] == parent["id"] and r["key"] in out.stdout
        assert is_box(shapely.from_wkb(r["geom"]), mercantile.bounds(_tile(r["key"])))
    child = sorted(kids)[0]
    hist = json.loads(cli("history", child, "--json").stdout)
    assert hist["key"] == child and hist["state"] == "READY"
    assert [(e["task"], e["action"]) for e in hist["events"]] == [
        (inner, "claim.mapping"), (inner, "release"), (inner, "claim.mapping"), (inner, "split")]
    assert hist["events"][-1]["comment"] == "too many buildings"
    assert sorted(hist["events"][-1]["data"]["children"]) == sorted(kids)
    text = cli("history", child).stdout
    assert "split" in text and inner in text
    # split tasks are not listed as live work, and a child can be split again (zoom 18)
    assert not any(t["key"] == inner for t in json.loads(cli("tasks", "--json", "--state", "READY").stdout))
    cli("split", child, "--as", "Mariam")
    grand = query(z16, "SELECT key FROM tasks WHERE parent_id = (SELECT id FROM tasks WHERE key = ?)", (child,))
    assert {r[0] for r in grand} == {f"{c.z}/{c.x}/{c.y}" for c in mercantile.children(_tile(child))}
    assert len(json.loads(cli("history", grand[0][0], "--json").stdout)["events"]) == 5


def test_split_border_tile_keeps_only_children_over_the_aoi(z16):
    aoi = aoi_geom(z16)
    geoms = task_geoms(z16)
    # a border tile with at least one child outside the AOI
    for key, g in geoms.items():
        kids = mercantile.children(_tile(key))
        over = {f"{c.z}/{c.x}/{c.y}" for c in kids
                if geod_area(shapely.box(*mercantile.bounds(c)).intersection(aoi)) > 1}
        if 0 < len(over) < 4:
            break
    else:
        pytest.fail("no border tile found")
    Cli(z16)("split", key, "--as", "Mariam")
    got = {r[0] for r in query(z16, "SELECT key FROM tasks WHERE parent_id = (SELECT id FROM tasks WHERE key = ?)", (key,))}
    assert got == over


def test_split_a_clipped_task_gives_clipped_children(villages):
    Cli(villages)("grid", "--zoom", "16", "--clip")
    aoi = aoi_geom(villages)
    geoms = task_geoms(villages)
    key = next(k for k, g in geoms.items() if geod_area(g) < 0.6 * geod_area(shapely.box(*mercantile.bounds(_tile(k)))))
    Cli(villages)("split", key, "--as", "Mariam")
    kids = query(villages, "SELECT key, area_m2, geom FROM tasks WHERE parent_id = (SELECT id FROM tasks WHERE key = ?)",
                 (key,))
    assert kids
    total = 0.0
    for r in kids:
        g = shapely.from_wkb(r["geom"])
        assert aoi.buffer(1e-9).contains(g) and geoms[key].buffer(1e-9).contains(g)
        assert r["key"] in {f"{c.z}/{c.x}/{c.y}" for c in mercantile.children(_tile(key))}
        total += geod_area(g)
    assert total == pytest.approx(geod_area(geoms[key]), rel=0.001)


def test_split_refusals_change_nothing(z16):
    cli = Cli(z16)
    cli("volunteer", "add", "Vera", "--validator", "--as", "Mariam")
    cli("claim", "1", "--as", "Awa")
    cli("claim", "2", "--as", "Bakary")
    cli("done", "2", "--as", "Bakary")
    before = snapshot(z16)
    r = cli("split", "1", "--as", "Bakary", ok=False)  # locked by Awa; Bakary is no organizer
    assert r.exit_code == 3
    assert_error(r, "task 1", "Awa")
    assert_error(cli("split", "2", "--as", "Mariam", ok=False), "task 2", "MAPPED")
    assert_error(cli("split", "3", "--as", "Nobody", ok=False), "--as Nobody", "no such volunteer")
    assert_error(cli("split", "99999", "--as", "Mariam", ok=False), "task 99999", "no such task")
    assert snapshot(z16) == before
    cli("split", "3", "--as", "Mariam")
    assert_error(cli("split", "3", "--as", "Mariam", ok=False), "SPLIT")


def test_split_refused_when_no_part_would_overlap_the_aoi(tmp_path):
    """A 2 m² AOI at a tile's centre: each quarter overlaps it by 0.5 m², under the 1 m² rule; splitting
    must not leave the area without any task."""
    w, s, e, n = mercantile.bounds(mercantile.tile(-9.016, 14.493, 16))
    cx, cy = (w + e) / 2, (s + n) / 2
    d = 0.0000066  # about 1.4 m × 1.4 m
    f = write_geojson(tmp_path / "dot.geojson", [(mapping(shapely.box(cx - d, cy - d, cx + d, cy + d)), {})])
    Cli()("init", tmp_path / "d", "--name", "Dot", "--aoi", f, "--organizer", "Org")
    cli = Cli(tmp_path / "d")
    cli("grid", "--zoom", "16")
    assert 1 < geod_area(aoi_geom(tmp_path / "d")) < 4
    before = snapshot(tmp_path / "d")
    assert_error(cli("split", "1", "--as", "Org", ok=False), "task 1", "cannot be split")
    assert snapshot(tmp_path / "d") == before


# -- properties --------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(z=st.integers(0, 22), data=st.data())
def test_tile_bounds_equals_mercantile(z, data):
    x = data.draw(st.integers(0, 2**z - 1))
    y = data.draw(st.integers(0, 2**z - 1))
    got = [float(v[0]) for v in grid_mod.tile_bounds(z, np.array([x]), np.array([y]))]
    assert got == pytest.approx(list(mercantile.bounds(x, y, z)), abs=1e-9)


@st.composite
def small_polygons(draw):
    cx = draw(st.floats(-12.0, -5.0))
    cy = draw(st.floats(10.0, 16.0))
    n = draw(st.integers(3, 8))
    pts = [(cx + draw(st.floats(-0.02, 0.02)), cy + draw(st.floats(-0.02, 0.02))) for _ in range(n)]
    hull = shapely.MultiPoint(pts).convex_hull
    if draw(st.booleans()):  # a concave notch
        hull = hull.difference(shapely.Point(cx, cy).buffer(draw(st.floats(0.0005, 0.008))))
    return hull


@settings(max_examples=30, deadline=None)
@given(aoi=small_polygons(), zoom=st.integers(13, 17))
def test_random_tile_grids_cover_the_polygon(aoi, zoom):
    if aoi.geom_type not in ("Polygon", "MultiPolygon") or geod_area(aoi) < 5000:
        return
    g = grid_mod.tile_grid(aoi, zoom)
    assert set(g.keys) == expected_tile_cover(aoi, zoom)
    union = shapely.union_all(g.geoms)
    # only slivers under 1 m² per dropped cell may stay uncovered
    dropped = sum(1 for t in mercantile.tiles(*aoi.bounds, zoom)) - len(g)
    assert geod_area(aoi.difference(union)) <= max(dropped, 0) * 1.0 + 1e-3
    clipped = grid_mod.tile_grid(aoi, zoom, clip=True)
    assert sum(geod_area(c) for c in clipped.geoms) == pytest.approx(geod_area(aoi), rel=0.001)


@settings(max_examples=15, deadline=None)
@given(aoi=small_polygons(), size=st.sampled_from([250.0, 500.0, 1000.0]))
def test_random_metric_grids_cover_the_polygon(aoi, size):
    if aoi.geom_type not in ("Polygon", "MultiPolygon") or geod_area(aoi) < 5000:
        return
    g = grid_mod.metric_grid(aoi, size)
    union = shapely.union_all(g.geoms)
    assert geod_area(aoi.difference(union)) <= 1.0 * 400
    assert all(geod_area(c) == pytest.approx(size * size, rel=0.005) for c in g.geoms)


# -- the fast tile cover: only tiles near the boundary are tested as geometries ------------------


def _reference_tile_grid(aoi, zoom, **kw):
    """Every tile of the bounding box made and tested (the simple reference algorithm)."""
    from mapathon.tasks import grid as g

    x0, y0, x1, y1 = g.tile_range(aoi.bounds, zoom)
    xs, ys = np.meshgrid(np.arange(x0, x1 + 1), np.arange(y0, y1 + 1), indexing="ij")
    xs, ys = xs.ravel(), ys.ravel()
    idx, geoms, areas = g._select(aoi, shapely.box(*g.tile_bounds(zoom, xs, ys)),
                                  kw.get("min_overlap_m2", g.DEFAULT_MIN_OVERLAP_M2), kw.get("clip", False))
    return xs[idx], ys[idx], geoms, areas


def _awkward_aoi():
    """Concave, with a hole, two parts, and sides lying exactly on tile edges at zoom 16."""
    w, s, e, n = mercantile.bounds(mercantile.Tile(30000, 30500, 16))
    dx, dy = e - w, n - s
    main = shapely.Polygon([(w, s), (w + 20 * dx, s + 0.3 * dy), (w + 14.5 * dx, s + 9 * dy), (w + 7 * dx, s + 4 * dy),
                            (w + 2 * dx, s + 12 * dy), (w - 3.3 * dx, s + 5 * dy)],
                           [[(w + 8 * dx, s + dy), (w + 11 * dx, s + dy), (w + 11 * dx, s + 3 * dy)]])
    other = shapely.box(w + 25 * dx, s, w + 28 * dx, s + 2 * dy)  # whole tiles
    return shapely.MultiPolygon([main, other])


@pytest.mark.parametrize("kw", [{}, {"clip": True}, {"min_overlap_m2": 50_000}, {"clip": True, "min_overlap_m2": 0}])
def test_tile_cover_is_the_same_as_testing_every_tile(kw):
    from mapathon.tasks.grid import tile_grid

    aoi = _awkward_aoi()
    got = tile_grid(aoi, 16, **kw)
    xs, ys, geoms, areas = _reference_tile_grid(aoi, 16, **kw)
    assert got.x.tolist() == xs.tolist() and got.y.tolist() == ys.tolist()
    assert got.keys.tolist() == [f"16/{x}/{y}" for x, y in zip(xs.tolist(), ys.tolist())]
    assert shapely.to_wkb(got.geoms).tolist() == shapely.to_wkb(geoms).tolist()
    assert np.allclose(got.area_m2, areas, rtol=1e-9, atol=0)
    wkb, bounds = got.wkb()
    assert wkb == shapely.to_wkb(got.geoms).tolist() and np.array_equal(bounds, shapely.bounds(got.geoms))


def test_box_wkb_is_byte_for_byte_what_shapely_writes():
    from mapathon.tasks.grid import box_wkb

    b = np.array([[-9.1, 14.2, -9.0, 14.3], [0.0, -0.0, 1.0, 0.0], [-180.0, -85.0511, 180.0, 85.0511]])
    assert box_wkb(b) == shapely.to_wkb(shapely.box(*b.T)).tolist()
