"""Imagery sources, coverage and plan figures (no network at all)."""

from __future__ import annotations

import json
import socket

import mercantile
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from mapathon.errors import MapathonError
from mapathon.imagery import coverage, sources
from mapathon.project import open_project

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(self, *a, **kw):
        raise AssertionError(f"network access attempted: {a}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **kw: refuse(None, *a))


# -- sources ---------------------------------------------------------------------------------------------


def test_parse_tms_max_zoom_and_placeholders():
    s = sources.parse("tms[19]:https://img.example.org/{zoom}/{x}/{y}.jpg", "ex")
    assert (s.type, s.min_zoom, s.max_zoom) == ("tms", 0, 19)
    assert s.tile_url(16, 31128, 30150) == "https://img.example.org/16/31128/30150.jpg"


def test_parse_zoom_range_flipped_y_and_quadkey():
    s = sources.parse("tms[12,20]:https://t.example.org/{z}/{x}/{-y}.png", "flip")
    assert (s.min_zoom, s.max_zoom) == (12, 20)
    assert s.tile_url(16, 31128, 30150) == f"https://t.example.org/16/31128/{2**16 - 1 - 30150}.png"
    q = sources.parse("https://ecn.{switch:t0,t1}.example.net/a{quadkey}.jpeg", "qk")
    url = q.tile_url(17, 62257, 60300)
    assert mercantile.quadkey(mercantile.Tile(62257, 60300, 17)) in url
    assert url.startswith(("https://ecn.t0.", "https://ecn.t1."))


def test_parse_wms_bbox_is_the_tile_in_web_mercator():
    s = sources.parse("wms:https://w.example.org/wms?SERVICE=WMS&REQUEST=GetMap&LAYERS=a&SRS={proj}"
                      "&WIDTH={width}&HEIGHT={height}&BBOX={bbox}&FORMAT=image/jpeg", "w")
    url = s.tile_url(16, 31128, 30150)
    from urllib.parse import parse_qs, urlsplit

    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert q["SRS"] == "EPSG:3857" and q["WIDTH"] == q["HEIGHT"] == "256"
    got = [float(v) for v in q["BBOX"].split(",")]
    want = mercantile.xy_bounds(mercantile.Tile(31128, 30150, 16))
    assert got == pytest.approx([want.left, want.bottom, want.right, want.top], abs=1e-3)


@pytest.mark.parametrize("spec, words", [
    ("tms[19]:https://x.org/{zoom}/{x}/{y}/{apikey}.jpg", "unsupported placeholder {apikey}"),
    ("ftp://x.org/{z}/{x}/{y}", "not an imagery string"),
    ("tms[25]:https://x.org/{z}/{x}/{y}", "within 0-22"),
    ("tms[a,b]:https://x.org/{z}/{x}/{y}", "must be [MAX] or [MIN,MAX]"),
    ("tms:https://x.org/tiles.png", "needs {zoom}"),
    ("wms:https://x.org/wms?LAYERS=a", "needs {bbox}"),
    ("bing:https://x.org/{quadkey}", "not supported"),
])
def test_bad_imagery_strings_are_refused(spec, words):
    with pytest.raises(MapathonError, match=None) as e:
        sources.parse(spec, "bad")
    assert words in str(e.value)


def test_bad_source_name():
    with pytest.raises(MapathonError, match="lowercase"):
        sources.parse("tms:https://x.org/{z}/{x}/{y}", "Bad Name/..")


def test_add_list_default_remembered(pcli, gridded, no_network):
    pcli("imagery", "add", "drone-2025", "tms[14,21]:https://drone.example.org/{zoom}/{x}/{y}.png",
         "--attribution", "Drone survey 2025", "--licence", "CC BY 4.0")
    rows = json.loads(pcli("imagery", "list", "--json").stdout)
    by = {r["name"]: r for r in rows}
    assert by["drone-2025"]["min_zoom"] == 14 and by["drone-2025"]["max_zoom"] == 21
    assert by["drone-2025"]["licence"] == "CC BY 4.0"
    assert by["esri-world-imagery"]["builtin"] and by["esri-world-imagery"]["default"]
    assert all(r["licence"] and r["attribution"] for r in rows if r["builtin"])
    assert "esri-world-imagery" in pcli("imagery", "default").stdout
    pcli("imagery", "default", "drone-2025")
    with open_project(gridded) as p:
        assert p.meta("imagery.default") == "drone-2025"
        assert sources.get(p).name == "drone-2025"
    assert "drone-2025" in pcli("imagery", "default").stdout
    # same name, other URL: refused without --replace; a built-in name is refused
    r = pcli("imagery", "add", "drone-2025", "tms:https://other.example.org/{z}/{x}/{y}.png", ok=False)
    assert "--replace" in r.stderr
    r = pcli("imagery", "add", "bing", "tms:https://other.example.org/{z}/{x}/{y}.png", ok=False)
    assert "built-in" in r.stderr
    r = pcli("imagery", "default", "nope", ok=False)
    assert "unknown" in r.stderr


# -- coverage --------------------------------------------------------------------------------------------


def brute_count(geom, z: int) -> int:
    """Independent count: every mercantile tile of the bounding box tested one by one."""
    n = 0
    for t in mercantile.tiles(*geom.bounds, zooms=z):
        box = shapely.box(*mercantile.bounds(t))
        if geom.intersects(box) and not geom.touches(box):
            n += 1
    return n


@settings(max_examples=25, deadline=None)
@given(lon=st.floats(-9.5, -8.5), lat=st.floats(14.0, 15.0), r=st.floats(0.002, 0.03),
       sides=st.integers(3, 12), z=st.integers(12, 16))
def test_count_tiles_matches_brute_force(lon, lat, r, sides, z):
    poly = shapely.Point(lon, lat).buffer(r, quad_segs=max(1, sides // 4))
    assert coverage.count_tiles(poly, [z]) == {z: brute_count(poly, z)}
    xs, ys = coverage.tiles(poly, [z])[z]
    assert len(set(zip(xs.tolist(), ys.tolist()))) == len(xs) == brute_count(poly, z)


def test_parse_zooms():
    assert coverage.parse_zooms("16-19") == [16, 17, 18, 19]
    assert coverage.parse_zooms("18") == [18]
    assert coverage.parse_zooms("16,18") == [16, 18]
    for bad in ("19-16", "x", "30", ""):
        with pytest.raises(MapathonError):
            coverage.parse_zooms(bad)


# -- plan ------------------------------------------------------------------------------------------------


def geod_km2(geom) -> float:
    return abs(Geod(ellps="WGS84").geometry_area_perimeter(geom)[0]) / 1e6


def test_plan_figures_match_independent_counts(pcli, gridded, no_network):
    out = json.loads(pcli("imagery", "plan", "--village", "Dianguirdé", "--zoom", "16-18", "--json").stdout)
    with open_project(gridded) as p:
        v = [r for r in p.villages() if r["name"] == "Dianguirdé"][0]
        geom = shapely.from_wkb(v["geom"])
    row = out["rows"][0]
    assert row["label"] == "Dianguirdé"
    for z in (16, 17, 18):
        assert row["tiles"][str(z)] == brute_count(geom, z)
    assert row["area_km2"] == pytest.approx(geod_km2(geom), rel=1e-3)
    assert row["area_km2"] == pytest.approx(3.14159 * 4, rel=0.01)  # a 2 km circle
    assert row["cost"] == pytest.approx(8 * row["area_km2"], abs=0.01)
    assert row["bytes"] == row["total_tiles"] * 20_000
    assert out["total"]["cost"] == row["cost"]


def test_plan_whole_project_total_is_the_union(pcli, gridded, no_network):
    out = json.loads(pcli("imagery", "plan", "--zoom", "16", "--price-per-km2", "10", "--json").stdout)
    assert len(out["rows"]) == 14
    with open_project(gridded) as p:
        aoi = p.aoi_geom()
        n_tasks = p.conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
    assert out["total"]["area_km2"] == pytest.approx(geod_km2(aoi), rel=1e-3)
    assert out["total"]["tiles"]["16"] == brute_count(aoi, 16) == n_tasks  # the zoom-16 grid is the same cover
    assert out["total"]["cost"] == pytest.approx(10 * out["total"]["area_km2"], abs=0.01)
    assert sum(r["area_km2"] for r in out["rows"]) >= out["total"]["area_km2"]
    text = pcli("imagery", "plan", "--zoom", "16-19").stdout
    assert "Purchase estimate" in text and "total" in text


def test_plan_tasks_and_min_order(pcli, no_network):
    out = json.loads(pcli("imagery", "plan", "--tasks", "1,2", "--zoom", "16-19", "--min-order-km2", "25",
                          "--price-per-km2", "8", "--json").stdout)
    assert [r["tiles"] for r in out["rows"]] == [{"16": 1, "17": 4, "18": 16, "19": 64}] * 2
    assert out["total"]["tiles"] == {"16": 2, "17": 8, "18": 32, "19": 128}
    assert out["total"]["cost"] == 200.0  # under the minimum order: 25 km² x 8 €
    assert any("minimum order" in n for n in out["notes"])


@pytest.mark.parametrize("args, words", [
    (["--village", "Nowhere"], "no such village"),
    (["--tasks", "9999"], "no such task"),
    (["--tasks", "1", "--village", "Torodo"], "not both"),
    (["--zoom", "12-40"], "between"),
    (["--price-per-km2", "-1"], "zero or more"),
])
def test_plan_bad_input(pcli, args, words):
    r = pcli("imagery", "plan", *args, ok=False)
    assert words in r.stderr
