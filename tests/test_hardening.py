"""Bad files never crash or exhaust the machine: bombs, broken caches, absurd values."""

from __future__ import annotations

import bz2
import gzip
import time
import tracemalloc
from pathlib import Path

import pytest

from mapathon.errors import MapathonError
from mapathon.osm.readers import read_osm_file

HEAD = b"<?xml version='1.0' encoding='UTF-8'?>\n<osm version='0.6' generator='JOSM'>\n"


def _bomb(path: Path, megabytes: int) -> Path:
    """A small compressed OSM file that expands to *megabytes* MB (concatenated members, 10 MB each)."""
    block = b" " * 10_000_000
    comp = gzip.compress if path.name.endswith(".gz") else bz2.compress
    member = comp(block, 9)
    path.write_bytes(comp(HEAD) + member * (megabytes // 10))
    return path


@pytest.mark.parametrize("name", ["bomb.osm.gz", "bomb.osm.bz2"])
def test_a_decompression_bomb_is_refused_without_expanding_it(tmp_path, name):
    f = _bomb(tmp_path / name, 200)
    assert f.stat().st_size < 300_000
    tracemalloc.start()
    try:
        with pytest.raises(MapathonError, match=rf"{name}: refused: it expands to more than .*MAPATHON_MAX"):
            read_osm_file(f)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 60_000_000  # the ratio limit stops it at 16 MB, never 200


def test_the_absolute_cap_is_configurable(tmp_path, monkeypatch):
    data = HEAD + b"".join(b"<node id='-%d' lat='14.5' lon='-9.1'/>\n" % i for i in range(1, 60_000)) + b"</osm>\n"
    f = tmp_path / "real.osm.gz"
    f.write_bytes(gzip.compress(data))
    assert read_osm_file(f).count() == 59_999
    monkeypatch.setenv("MAPATHON_MAX_UNCOMPRESSED_MB", "0.5")
    with pytest.raises(MapathonError, match=r"real.osm.gz: refused: it expands to more than 0.5 MB"):
        read_osm_file(f)
    monkeypatch.setenv("MAPATHON_MAX_UNCOMPRESSED_MB", "lots")
    with pytest.raises(MapathonError, match=r"MAPATHON_MAX_UNCOMPRESSED_MB='lots': must be a positive number"):
        read_osm_file(f)


def test_a_pbf_with_too_many_objects_is_refused(tmp_path, monkeypatch):
    import osmium

    f = tmp_path / "many.osm.pbf"
    w = osmium.SimpleWriter(str(f))
    for i in range(1, 20_001):
        w.add_node(osmium.osm.mutable.Node(id=-i, location=(-9.0, 14.5)))
    w.close()
    assert read_osm_file(f).count() == 20_000
    monkeypatch.setenv("MAPATHON_MAX_UNCOMPRESSED_MB", "1")
    with pytest.raises(MapathonError, match=r"many.osm.pbf: refused: more than 10,000 objects"):
        read_osm_file(f)


def test_a_bomb_is_refused_at_submit_with_one_line(pcli, tmp_path):
    f = _bomb(tmp_path / "awa.osm.bz2", 100)
    r = pcli("submit", f, "--as", "Awa", ok=False)
    assert "awa.osm.bz2: refused: it expands" in r.stdout + r.stderr


@pytest.mark.parametrize("body, what", [
    (b"<node id='9223372036854775808' version='1' lat='14.5' lon='-9.1'/>",
     "node 9223372036854775808: id out of range"),
    (b"<node id='-1' lat='14.5' lon='-9.1'/><way id='-2'><nd ref='-1'/><nd ref='18446744073709551616'/></way>",
     "a node reference is out of range"),
    (b"<node id='5' version='99999999999' lat='14.5' lon='-9.1'/>", "version 99999999999 is out of range"),
])
def test_ids_beyond_64_bits_are_refused_at_submit(pcli, tmp_path, body, what):
    f = tmp_path / "huge.osm"
    f.write_bytes(HEAD + body + b"</osm>\n")
    r = pcli("submit", f, "--as", "Awa", ok=False)
    assert "huge.osm: line" in r.stdout + r.stderr and what in r.stdout + r.stderr
    assert not (pcli.project / "contributions").exists() or not any((pcli.project / "contributions").iterdir())


def test_absurd_user_ids_and_changesets_are_dropped_not_stored(tmp_path):
    f = tmp_path / "meta.osm"
    f.write_bytes(HEAD + b"<node id='5' version='2' lat='14.5' lon='-9.1' uid='99999999999999999999' "
                  b"changeset='-3' user='x' timestamp='2024-01-01T00:00:00Z'/></osm>")
    (o,) = read_osm_file(f).objects["n"].values()
    assert o.meta == ("2024-01-01T00:00:00Z", None, "x", None)


# -- imagery caches left empty or half-made ------------------------------------------------------------------

from test_imagery_fetch import FAST, project_with_source, server  # noqa: E402,F401  (fixtures)


def _half_made(path: Path, how: str) -> None:
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    if how == "empty":
        path.write_bytes(b"")
    else:
        with sqlite3.connect(path) as c:  # killed after the first statement of the schema
            c.execute("CREATE TABLE metadata (name TEXT NOT NULL, value TEXT)")


@pytest.mark.parametrize("how", ["empty", "metadata-only"])
def test_a_half_made_imagery_cache_is_repaired_by_the_next_fetch(pcli, project_with_source, server, how):
    import json

    from mapathon.imagery import mbtiles

    path = mbtiles.cache_path(project_with_source, "local")
    _half_made(path, how)
    r = pcli("imagery", "plan", "--zoom", "16", "--source", "local", "--tasks", "1")
    assert "Traceback" not in r.stdout
    assert mbtiles.Reader(path).summary()["tiles"] == 0 and mbtiles.Reader(path).tile(16, 1, 1) is None
    res = json.loads(pcli("imagery", "fetch", "--tasks", "1", "--zoom", "16-17", "--json").stdout)
    assert res["stored"] == 5 and not res["failed"]
    assert mbtiles.Reader(path).summary()["tiles"] == 5


def test_a_new_cache_appears_whole(tmp_path):
    from mapathon.imagery import mbtiles

    path = tmp_path / "imagery" / "x.mbtiles"
    conn = mbtiles.connect(path, create=True)
    conn.close()
    assert mbtiles.Reader(path).summary()["tiles"] == 0
    assert [p.name for p in path.parent.iterdir()] == ["x.mbtiles"]  # no temporary file left
    (tmp_path / "bad.mbtiles").write_bytes(b"this is no database" * 100)
    with pytest.raises(MapathonError, match=r"bad.mbtiles: not a usable MBTiles file .*delete it"):
        mbtiles.Reader(tmp_path / "bad.mbtiles").summary()


# -- areas of interest: NaN, the whole world, the antimeridian, the poles, KML, NUL, huge files ------------------


def _geojson(path: Path, *geoms: dict, raw: str | None = None) -> Path:
    import json

    text = raw or json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": f"a{i}"}, "geometry": g} for i, g in enumerate(geoms)]})
    path.write_text(text)
    return path


def _init_refused(tmp_path, aoi, *needles):
    from conftest import Cli

    r = Cli()("init", tmp_path / "p", "--name", "T", "--aoi", aoi, "--max-area", "1e12", "--radius", "500", ok=False)
    out = r.stdout + r.stderr
    for n in needles:
        assert n in out, out
    assert not (tmp_path / "p" / "mapathon.sqlite").exists()
    return out


def _box(w, s, e, n) -> dict:
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


@pytest.mark.parametrize("geom, needles", [
    (_box(-180, -85, 180, 85), ["world.geojson", "spans 360° of longitude", "split it"]),
    (_box(-180, -90, 180, 90), ["world.geojson", "spans 360° of longitude"]),
    ({"type": "Polygon", "coordinates": [[[179, -1], [-179, -1], [-179, 1], [179, 1], [179, -1]]]},
     ["spans 358° of longitude", "180° meridian"]),
    (_box(-9, 80, -8, 90), ["reaches latitude 90°", "map tiles"]),
])
def test_world_antimeridian_and_polar_areas_are_refused(tmp_path, geom, needles):
    _init_refused(tmp_path, _geojson(tmp_path / "world.geojson", geom), *needles)


def test_nan_coordinates_are_refused(tmp_path):
    text = ('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": '
            '{"type": "Polygon", "coordinates": [[[-9, 14], [NaN, 14], [-9, 14.1], [-9, 14]]]}}]}')
    _init_refused(tmp_path, _geojson(tmp_path / "nan.geojson", raw=text), "nan.geojson", "not numbers")


def test_kml_is_refused_with_what_to_do(tmp_path):
    f = tmp_path / "area.kml"
    f.write_text('<?xml version="1.0"?><kml xmlns="http://www.opengis.net/kml/2.2"></kml>')
    _init_refused(tmp_path, f, "area.kml: KML files cannot be read here", "GeoJSON")


def test_a_nul_anywhere_in_a_csv_is_refused(tmp_path):
    f = tmp_path / "villages.csv"
    rows = "".join(f"village {i},14.{i:04d},-9.0\n" for i in range(300))
    f.write_bytes(b"name,lat,lon\n" + rows.encode() + b"Tor\0odo,14.5,-9.0\n")
    assert f.stat().st_size > 4096
    _init_refused(tmp_path, f, "villages.csv, line 302: a NUL byte")
    f.write_text("name,lat,lon\nA,14.5,-9.0\nB\x01x,14.51,-9.0\n")
    _init_refused(tmp_path, f, "line 3: the village name 'B\\x01x' holds control characters")


def test_too_many_villages_or_corners_are_refused_fast(tmp_path):
    f = tmp_path / "many.csv"
    f.write_text("name,lat,lon\n" + "".join(f"v{i},{14 + i * 1e-5:.5f},-9.0\n" for i in range(100_000)))
    _init_refused(tmp_path, f, "many.csv: more than 2,000 villages (line 2002)")
    import math

    ring = [[-9 + 0.01 * math.cos(a / 1e5), 14 + 0.01 * math.sin(a / 1e5)] for a in range(0, 628_319, 1)]
    ring.append(ring[0])
    g = _geojson(tmp_path / "fine.geojson", {"type": "Polygon", "coordinates": [ring]})
    _init_refused(tmp_path, g, "fine.geojson: 628,320 points and corners, over the limit of 500,000", "Simplify")


# -- grid --from: tasks outside the area, world-sized, repeated, absurd zooms, NaN ------------------------------


@pytest.mark.parametrize("geoms, props, needles", [
    ([_box(-9.02, 14.49, -9.01, 14.50), _box(2.0, 48.0, 2.01, 48.01)], [{}, {}],
     ["1 of its 2 polygons lie outside the project's area of interest (polygon 2 first)"]),
    ([_box(-9.5, 14.0, -8.5, 15.0)], [{}], ["polygon 1 covers 11,927 km²", "more than the whole area of interest"]),
    ([_box(-180, -80, 180, 80)], [{}], ["polygon 1 is not a usable task: it spans 360° of longitude"]),
    ([_box(-9.02, 14.49, -9.01, 14.50), _box(-9.02, 14.49, -9.01, 14.50)], [{}, {}],
     ["polygons 1 and 2 are the same"]),
])
def test_grid_from_refuses_tasks_that_are_no_tasks(village_project, tmp_path, geoms, props, needles):
    from conftest import Cli

    f = _geojson(tmp_path / "tasks.geojson", *geoms)
    r = Cli(village_project)("grid", "--from", f, ok=False)
    out = r.stdout + r.stderr
    assert "tasks.geojson: " in out and all(n in out for n in needles), out


@pytest.mark.parametrize("zoom", ["abc", None, -1, 1_000_000, 100, "1e400"])
def test_grid_from_absurd_zooms_are_plain_polygons(village_project, tmp_path, zoom):
    import json

    from conftest import Cli
    from foundation_helpers import query

    f = tmp_path / "z.geojson"
    f.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"zoom": zoom}, "geometry": _box(-9.02, 14.49, -9.01, 14.50)}]}))
    Cli(village_project)("grid", "--from", f)
    assert [r["key"] for r in query(village_project, "SELECT key FROM tasks")] == ["poly/1"]


def test_grid_from_nan_is_refused(village_project, tmp_path):
    from conftest import Cli

    text = ('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": '
            '{"type": "Polygon", "coordinates": [[[-9.02, 14.49], [NaN, 14.49], [-9.01, 14.5], [-9.02, 14.49]]]}}]}')
    r = Cli(village_project)("grid", "--from", _geojson(tmp_path / "nan.geojson", raw=text), ok=False)
    assert "nan.geojson: layer nan: some coordinates are not numbers" in r.stdout + r.stderr


# -- imagery import: absurd MBTiles rows, FIFOs, zoom 100, GeoTIFFs reaching the poles ---------------------------


def _jpeg(colour=(90, 140, 60)) -> bytes:
    import io

    from PIL import Image, ImageDraw

    im = Image.new("RGB", (256, 256), colour)
    ImageDraw.Draw(im).rectangle((20, 20, 120, 200), fill=(200, 30, 30))
    buf = io.BytesIO()
    im.save(buf, "JPEG")
    return buf.getvalue()


def test_mbtiles_rows_with_absurd_addresses_are_skipped_and_named(pcli, tmp_path):
    import json
    import sqlite3

    f = tmp_path / "odd.mbtiles"
    with sqlite3.connect(f) as c:
        c.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
        c.execute("CREATE TABLE tiles (zoom_level, tile_column, tile_row, tile_data)")  # no types: anything goes
        good = _jpeg()
        c.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)", [
            (16, 31128, 35385, good), ("abc", 1, 1, good), (None, 1, 1, good), (-1, 0, 0, good),
            (10 ** 6, 0, 0, good), (100, 0, 0, good), (16, -5, 3, good), (16, 1 << 16, 3, good), (2.5, 1, 1, good),
            (16, 31129, 35385, "text, not bytes")])
    out = json.loads(pcli("imagery", "import", f, "--json").stdout)
    assert out["stored"] == 1 and out["bad_count"] == 9
    assert any("'abc'/1/1" in b and "not a tile address" in b for b in out["bad"])


def test_folder_import_skips_fifos_and_zoom_100(pcli, tmp_path):
    import json
    import os

    d = tmp_path / "delivery"
    (d / "16" / "31128").mkdir(parents=True)
    (d / "16" / "31128" / "30150.jpg").write_bytes(_jpeg())
    os.mkfifo(d / "16" / "31128" / "30151.jpg")  # reading it would wait forever
    (d / "100" / "0").mkdir(parents=True)
    (d / "100" / "0" / "0.jpg").write_bytes(_jpeg())
    out = json.loads(pcli("imagery", "import", d, "--source", "usb", "--json").stdout)
    assert out["stored"] == 1 and out["zooms"] == [16]
    assert any("30151.jpg: not a regular file" in b for b in out["bad"])
    assert any("zoom 100 is beyond 22" in b for b in out["bad"])


def test_a_geotiff_reaching_the_poles_is_cut_at_the_tiles_limit(pcli, tmp_path):
    import json
    import warnings

    rasterio = pytest.importorskip("rasterio")
    import numpy as np
    from rasterio.transform import from_origin

    tif = tmp_path / "world.tif"
    data = np.random.default_rng(1).integers(0, 255, (3, 90, 180), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(tif, "w", driver="GTiff", width=180, height=90, count=3, dtype="uint8",
                           crs="EPSG:4326", transform=from_origin(-180, 90, 2.0, 2.0)) as ds:
            ds.write(data)
    out = json.loads(pcli("imagery", "import", tif, "--zoom", "0-1", "--json").stdout)
    assert out["zooms"] == [0, 1] and out["stored"] == 5


# -- temporary files left by killed runs -------------------------------------------------------------------------


def test_a_killed_merge_leaves_a_temporary_file_that_the_next_run_removes(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from mapathon.fsutil import atomic_path

    out = tmp_path / "merged.osm.pbf"
    code = ("import os, sys, time\nfrom mapathon.fsutil import atomic_path\n"
            f"with atomic_path({str(out)!r}) as tmp:\n    tmp.write_bytes(b'half')\n    print(tmp, flush=True)\n"
            "    time.sleep(600)\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    left = Path(p.stdout.readline().strip())
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert left.exists() and left.name.startswith(".merged.osm.mapathon-") and left.name.endswith(".tmp.osm.pbf")
    young = tmp_path / ".merged.osm.mapathon-young.tmp.osm.pbf"  # another run writing right now: kept
    young.write_bytes(b"x")
    other = tmp_path / ".other.osm.mapathon-abc.tmp.osm.pbf"  # another output's: kept
    other.write_bytes(b"x")
    old_style = tmp_path / ".merged.osm.ab12cd_9.tmp.osm.pbf"  # an earlier version's name
    old_style.write_bytes(b"x")
    for f in (left, other, old_style):
        os.utime(f, (time.time() - 7200, time.time() - 7200))
    with atomic_path(out) as tmp:
        tmp.write_bytes(b"whole")
    assert out.read_bytes() == b"whole"
    assert not left.exists() and not old_style.exists() and young.exists() and other.exists()


def test_write_bytes_is_whole_or_nothing_with_one_file_created(tmp_path):
    """fsutil.write_bytes (survey photos): the bytes land whole, with the usual permissions, the
    leftovers of a killed run are removed, and a failed write leaves the old file and no temporary."""
    import os
    import time

    from mapathon import fsutil

    out = tmp_path / "well.jpg"
    left = tmp_path / ".well.mapathon-killed.tmp.jpg"
    left.write_bytes(b"half")
    os.utime(left, (time.time() - 7200, time.time() - 7200))
    fsutil.write_bytes(out, memoryview(b"0123456789")[2:8])
    assert out.read_bytes() == b"234567" and not left.exists()
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["well.jpg"]

    with pytest.raises(TypeError):  # fails once the temporary file is there
        fsutil.write_bytes(out, 12345)
    assert out.read_bytes() == b"234567" and sorted(p.name for p in tmp_path.iterdir()) == ["well.jpg"]
    with pytest.raises(MapathonError, match="does not exist"):
        fsutil.write_bytes(tmp_path / "no" / "x.jpg", b"x")


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- quality checks: mutually overlapping buildings ---------------------------------------------------------------


def _stacked(tmp_path: Path, n: int, name: str = "stack.osm") -> Path:
    """*n* buildings of 10 m x 10 m, each 1 cm from the previous: every one overlaps every other."""
    from test_checks import Osm

    o = Osm()
    for i in range(n):
        o.square(i * 0.01, 0.0, 10.0)
    o.square(5000.0, 0.0, 10.0)  # a lone building far away, with a highway across it
    o.way([(4990.0, 5.0), (5020.0, 5.0)], {"highway": "residential"}, closed=False)
    return o.write(tmp_path / name)


def test_overlapping_pairs_are_the_same_whatever_the_chunks(tmp_path, monkeypatch):
    from mapathon.quality import checks

    f = _stacked(tmp_path, 120)
    whole = checks.check_file(f)
    monkeypatch.setattr(checks, "CHUNK_PAIRS", 37)  # many small chunks
    chunked = checks.check_file(f)
    pairs = lambda r: sorted(tuple(sorted(x.objects)) for x in r.findings if x.kind.endswith("building")
                             or x.kind == "overlapping_buildings")
    assert len(pairs(whole)) == 120 * 119 // 2 == len(pairs(chunked)) and pairs(whole) == pairs(chunked)
    assert whole.stats["pairs_compared"] == chunked.stats["pairs_compared"] == 120 * 119 // 2 + 0
    assert not whole.warnings and [x.kind for x in whole.findings].count("building_crosses_highway") == 1


def test_thousands_of_mutually_overlapping_buildings_are_cut_short_and_said(tmp_path, monkeypatch):
    from mapathon.quality import checks

    monkeypatch.setattr(checks, "MAX_PAIRS", 5_000)
    monkeypatch.setattr(checks, "MAX_PAIR_FINDINGS", 2_000)
    f = _stacked(tmp_path, 1500)  # 1,124,250 overlapping pairs
    tracemalloc.start()
    try:
        r = checks.check_file(f)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    n = sum(x.kind in ("duplicate_building", "overlapping_buildings") for x in r.findings)
    assert n == 2_000 and r.stats["buildings_not_compared"] > 1000
    assert any("building(s) not compared with their neighbours" in w for w in r.warnings)
    assert peak < 400_000_000


def test_control_characters_in_zone_names_become_spaces(tmp_path):
    from mapathon.aoi import read_aoi

    g = _box(-9.02, 14.49, -9.01, 14.50)
    import json

    f = tmp_path / "zones.geojson"
    f.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "Toro\u0001do\u001f  Nord"}, "geometry": g}]}))
    assert [v.name for v in read_aoi(f).villages] == ["Toro do Nord"]


# -- the room server: a bomb upload is refused quickly, and claims go on ---------------------------------------


def test_a_bomb_upload_to_the_room_server_is_refused_and_claims_go_on(tmp_path_factory, tmp_path):
    from test_server import RoomServer, make_project

    folder = make_project(tmp_path_factory, "bomb")
    bomb = _bomb(tmp_path / "bomb.osm.bz2", 1000).read_bytes()
    assert len(bomb) < 1024 * 1024
    with RoomServer(folder) as srv:
        sira = srv.join("Sira")
        assert srv.post("/api/tasks/12/claim", headers=sira).status_code == 200
        r = srv.post("/api/tasks/12/upload?filename=bomb.osm.bz2", headers=sira, data=bomb)
        assert r.status_code == 400 and "bomb.osm.bz2" in r.json()["detail"], r.text
        rss_kb = int(next(line.split()[1] for line in open(f"/proc/{srv.proc.pid}/status")
                          if line.startswith("VmHWM:")))
        assert rss_kb < 500_000, rss_kb  # the server's peak memory (2 GB before the limit): never expanded
        awa = srv.join("Awa")
        assert srv.post("/api/tasks/13/claim", headers=awa).status_code == 200


def test_a_million_point_geojson_is_refused_before_reading_its_features(tmp_path):
    f = tmp_path / "points.geojson"
    feat = '{"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [-9.0, 14.5]}}'
    f.write_text('{"type": "FeatureCollection", "features": [' + ", ".join([feat] * 600_000) + "]}")
    _init_refused(tmp_path, f, "points.geojson: layer points has 600,000 features, over the limit of 500,000")
