"""Serving the cache, editor URLs (JOSM, iD) and importing tiles from a disk."""

from __future__ import annotations

import io
import json
import math
import sqlite3
import subprocess
import sys
import threading
import urllib.request
import warnings
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

import mercantile
import pytest
from PIL import Image

from mapathon.imagery import mbtiles
from mapathon.imagery.serve import TileService, make_server
from mapathon.project import open_project
from mapathon.tasks.lifecycle import get_task

sys.path.insert(0, str(Path(__file__).parent))
from conftest import have  # noqa: E402
from test_imagery import no_network  # noqa: E402,F401
from tileserver import TileServer, make_images  # noqa: E402

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)


@pytest.fixture
def cached(gridded, pcli):
    """The project with tasks 1-2 fetched at zooms 16-17 from a local tile server, and that server."""
    with TileServer() as srv:
        pcli("imagery", "add", "local", f"tms[0,20]:{srv.template('jpg')}", "--default")
        pcli("imagery", "fetch", "--tasks", "1-2", "--zoom", "16-17")
        yield gridded, srv


@pytest.fixture
def served(cached):
    project, srv = cached
    httpd = make_server(project, "127.0.0.1", 0)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield project, srv, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def get(url: str, method: str = "GET"):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


# -- serve -----------------------------------------------------------------------------------------------------


def test_serve_returns_the_stored_bytes(served):
    project, srv, base = served
    with open_project(project) as p:
        t = get_task(p, 1)
    for z, x, y in [(16, t.x, t.y), (17, t.x * 2 + 1, t.y * 2)]:
        status, headers, body = get(f"{base}/tiles/local/{z}/{x}/{y}.jpg")
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        assert body == srv.body_for(f"/{z}/{x}/{y}.jpg")
        assert headers["Access-Control-Allow-Origin"] == "*"
    assert get(f"{base}/tiles/local/16/{t.x}/{t.y}")[2] == srv.body_for(f"/16/{t.x}/{t.y}.jpg")  # no extension
    status, headers, body = get(f"{base}/tiles/local/16/{t.x}/{t.y}.jpg", "HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 1000
    assert get(f"{base}/tiles/local/18/{t.x * 4}/{t.y * 4}.jpg")[0] == 404  # not fetched
    assert get(f"{base}/tiles/nope/16/{t.x}/{t.y}.jpg")[0] == 404
    assert get(f"{base}/tiles/local/16/99999999/1.jpg")[0] == 404
    assert get(f"{base}/../../etc/passwd")[0] == 404
    tj = json.loads(get(f"{base}/tiles/local.json")[2])
    assert tj["minzoom"] == 16 and tj["maxzoom"] == 17 and tj["tiles"][0].endswith("/tiles/local/{z}/{x}/{y}.jpg")
    assert "local" in json.loads(get(f"{base}/")[2])["sources"]
    gpx = ET.fromstring(get(f"{base}/tasks/1.gpx")[2])
    pts = gpx.findall(".//{http://www.topografix.com/GPX/1/1}trkpt")
    b = mercantile.bounds(mercantile.Tile(t.x, t.y, 16))
    assert {round(float(p.get("lon")), 6) for p in pts} == {round(b.west, 6), round(b.east, 6)}
    assert get(f"{base}/tasks/99999.gpx")[0] == 404


def test_service_is_mountable_without_http(cached):
    project, srv = cached
    svc = TileService(project)
    with open_project(project) as p:
        t = get_task(p, 2)
    status, headers, body = svc.respond(f"/tiles/local/16/{t.x}/{t.y}.jpg?cache=1")
    assert status == 200 and body == srv.body_for(f"/16/{t.x}/{t.y}.jpg")
    assert svc.sources() == ["local"]


def test_serve_port_in_use(cached):
    project, _ = cached
    httpd = make_server(project, "127.0.0.1", 0)
    try:
        from mapathon.errors import MapathonError

        with pytest.raises(MapathonError, match="another --port"):
            make_server(project, "127.0.0.1", httpd.server_address[1])
    finally:
        httpd.server_close()


# -- editors -----------------------------------------------------------------------------------------------------


def test_josm_urls(pcli, cached, no_network):  # noqa: F811
    project, _ = cached
    lines = pcli("josm", "1", "--tiles-url", "http://192.168.1.10:8001").stdout.split()
    assert len(lines) == 4
    parts = [urlsplit(u) for u in lines]
    assert all(p.scheme == "http" and p.netloc == "127.0.0.1:8111" for p in parts)
    assert [p.path for p in parts] == ["/imagery", "/load_data", "/load_data", "/zoom"]
    imagery = dict(parse_qsl(parts[0].query))
    assert parts[0].query.rsplit("&", 1)[1].startswith("url=")  # url last, as JOSM wants
    assert imagery["type"] == "tms" and imagery["url"] == "http://192.168.1.10:8001/tiles/local/{zoom}/{x}/{y}.jpg"
    boundary = dict(parse_qsl(parts[1].query))
    assert boundary["layer_locked"] == "true" and boundary["upload_policy"] == "never"
    assert boundary["new_layer"] == "true" and "do not edit" in boundary["layer_name"]
    osm = ET.fromstring(boundary["data"])
    way = osm.find("way")
    refs = [nd.get("ref") for nd in way.findall("nd")]
    assert refs[0] == refs[-1] and len(refs) == 5
    with open_project(project) as p:
        t = get_task(p, 1)
    b = mercantile.bounds(mercantile.Tile(t.x, t.y, 16))
    lats = {round(float(n.get("lat")), 6) for n in osm.findall("node")}
    assert lats == {round(b.south, 6), round(b.north, 6)}
    edit = dict(parse_qsl(parts[2].query))
    assert edit["new_layer"] == "true" and "layer_locked" not in edit
    zoom = dict(parse_qsl(parts[3].query))
    assert float(zoom["left"]) == pytest.approx(b.west) and float(zoom["right"]) == pytest.approx(b.east)
    assert float(zoom["top"]) == pytest.approx(b.north) and float(zoom["bottom"]) == pytest.approx(b.south)
    # checked against JOSM 18646: hashtags only in the comment (JOSM would append changeset_hashtags to it
    # again), and no mime_type on load_data (a wrong one gives an empty layer)
    assert "changeset_hashtags" not in zoom
    assert "#mapathon #dianguirde" in zoom["changeset_comment"] and "task 1" in zoom["changeset_comment"]
    assert all("mime_type" not in dict(parse_qsl(parts[i].query)) for i in (1, 2))
    # --download: one load_and_zoom in a new layer instead of the empty layer and zoom
    dl = [urlsplit(u) for u in pcli("josm", "1", "--download").stdout.split()]
    assert [p.path for p in dl] == ["/imagery", "/load_data", "/load_and_zoom"]
    assert dict(parse_qsl(dl[2].query))["new_layer"] == "true"


def test_hashtags_are_remembered(pcli, cached, no_network):  # noqa: F811
    project, _ = cached
    out = pcli("josm", "2", "--hashtags", "#MissingMaps, cartong;#mapathon", "--json").stdout
    zoom = dict(parse_qsl(urlsplit(json.loads(out)[-1]["url"]).query))
    assert zoom["changeset_comment"].endswith("#MissingMaps #cartong #mapathon")
    with open_project(project) as p:
        assert p.meta("hashtags") == "#MissingMaps #cartong #mapathon"
    url = pcli("id-url", "2").stdout.strip()
    assert dict(parse_qsl(urlsplit(url).fragment))["hashtags"] == "#MissingMaps,#cartong,#mapathon"
    assert "hashtag" in pcli("josm", "2", "--hashtags", "not a tag!", ok=False).stderr


def test_id_url(pcli, cached, no_network):  # noqa: F811
    project, _ = cached
    url = pcli("id-url", "16/" + _task_key_xy(project, 1)).stdout.strip()
    u = urlsplit(url)
    assert (u.scheme, u.netloc, u.path) == ("https", "www.openstreetmap.org", "/edit")
    assert parse_qs(u.query) == {"editor": ["id"]}
    frag = dict(parse_qsl(u.fragment))
    z, lat, lon = frag["map"].split("/")
    with open_project(project) as p:
        t = get_task(p, 1)
    b = mercantile.bounds(mercantile.Tile(t.x, t.y, 16))
    assert int(z) == 17 and b.south < float(lat) < b.north and b.west < float(lon) < b.east
    assert frag["background"] == "custom:http://127.0.0.1:8001/tiles/local/{zoom}/{x}/{y}.jpg"
    assert frag["gpx"] == "http://127.0.0.1:8001/tasks/1.gpx"
    assert frag["hashtags"] == "#mapathon,#dianguirde" and "task 1" in frag["comment"]
    assert "{zoom}" in unquote(u.fragment) and "{" not in u.fragment  # the template is percent-encoded


def _task_key_xy(project, i):
    with open_project(project) as p:
        t = get_task(p, i)
    return f"{t.x}/{t.y}"


def test_josm_open_sends_requests_in_order(pcli, cached):
    got = []

    class Josm(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            got.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Josm)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        port = httpd.server_address[1]
        r = pcli("josm", "1", "--open", "--josm-url", f"http://127.0.0.1:{port}")
        assert [urlsplit(p).path for p in got] == ["/imagery", "/load_data", "/load_data", "/zoom"]
        assert "Sent 4 requests" in r.stderr
    finally:
        httpd.shutdown()
        httpd.server_close()
    r = pcli("josm", "1", "--open", "--josm-url", f"http://127.0.0.1:{port}", ok=False)
    assert "JOSM is not answering" in r.stderr and "Remote Control" in r.stderr


def test_editor_warns_without_cache(pcli, gridded, no_network):  # noqa: F811
    r = pcli("id-url", "1")
    assert "no imagery cache for esri-world-imagery" in r.stderr
    assert "background=custom%3A" in r.stdout


# -- import ----------------------------------------------------------------------------------------------------


def _write_folder(folder: Path, tiles, images, tms=False):
    for i, (z, x, y) in enumerate(tiles):
        row = (1 << z) - 1 - y if tms else y
        f = folder / str(z) / str(x) / f"{row}.jpg"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(images[i % len(images)])
    if tms:
        (folder / "tilemapresource.xml").write_text("<TileMap/>")


@pytest.mark.parametrize("tms", [False, True])
def test_import_folder(pcli, gridded, tmp_path, tms, no_network):  # noqa: F811
    images = make_images("jpg", 4)
    tiles = [(17, 62258 + i, 60300 + j) for i in range(2) for j in range(2)]
    _write_folder(tmp_path / "delivery", tiles, images, tms=tms)
    bad = tmp_path / "delivery" / "17" / "62258" / "1.jpg"
    bad.write_bytes(b"not a jpeg")
    out = json.loads(pcli("imagery", "import", tmp_path / "delivery", "--source", "vendor", "--attribution",
                          "Vendor 2025", "--json").stdout)
    assert out["stored"] == 4 and out["bad_count"] == 1 and "17/62258/1.jpg" in out["bad"][0]
    path = mbtiles.cache_path(gridded, "vendor")
    with sqlite3.connect(path) as c:
        rows = {(z, x, (1 << z) - 1 - r): bytes(d) for z, x, r, d in c.execute("SELECT * FROM tiles")}
    assert set(rows) == set(tiles)
    assert rows[tiles[0]] == images[0]
    listed = {r["name"]: r for r in json.loads(pcli("imagery", "list", "--json").stdout)}
    assert listed["vendor"]["type"] == "local" and listed["vendor"]["cached_tiles"] == 4
    assert listed["vendor"]["attribution"] == "Vendor 2025"
    assert "no URL" in pcli("imagery", "fetch", "--source", "vendor", "--tasks", "1", "--zoom", "16", ok=False).stderr


def test_import_mbtiles_and_bad_files(pcli, cached, tmp_path, no_network):  # noqa: F811
    project, srv = cached
    src = mbtiles.cache_path(project, "local")
    copy = tmp_path / "from-usb.mbtiles"
    copy.write_bytes(src.read_bytes())
    out = json.loads(pcli("imagery", "import", copy, "--json").stdout)
    assert out["source"] == "from-usb" and out["stored"] == 10
    a, b = (sqlite3.connect(p).execute("SELECT * FROM tiles ORDER BY 1, 2, 3").fetchall()
            for p in (src, mbtiles.cache_path(project, "from-usb")))
    assert a == b
    junk = tmp_path / "junk.mbtiles"
    junk.write_bytes(b"hello")
    assert "not a readable MBTiles" in pcli("imagery", "import", junk, ok=False).stderr
    assert "no such file" in pcli("imagery", "import", tmp_path / "nope.tif", ok=False).stderr
    txt = tmp_path / "a.txt"
    txt.write_text("x")
    assert "not a z/x/y folder" in pcli("imagery", "import", txt, ok=False).stderr


def test_import_geotiff(pcli, gridded, tmp_path, no_network):  # noqa: F811
    rasterio = pytest.importorskip("rasterio", reason="rasterio is needed to slice GeoTIFFs")
    import numpy as np
    from rasterio.transform import from_origin

    # 600 x 600 pixels of 0.6 m in UTM 29N around Dianguirdé: left half red, right half blue
    from mapathon import geo

    tr = geo.transformer(geo.WGS84, 32629)
    x0, y0 = tr.transform(-9.0162, 14.4932)
    data = np.zeros((3, 600, 600), dtype=np.uint8)
    data[0, :, :300] = 200
    data[2, :, 300:] = 180
    data[1] = 40
    tif = tmp_path / "vendor.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(tif, "w", driver="GTiff", width=600, height=600, count=3, dtype="uint8",
                           crs="EPSG:32629", transform=from_origin(x0 - 180, y0 + 180, 0.6, 0.6)) as ds:
            ds.write(data)
    out = json.loads(pcli("imagery", "import", tif, "--attribution", "Vendor 2025", "--json").stdout)
    assert out["zooms"] == [15, 16, 17, 18] and out["stored"] > 4  # 0.6 m pixels: native zoom 18
    path = mbtiles.cache_path(gridded, "vendor")
    west_tile = mercantile.tile(-9.0162 - 0.0008, 14.4932, 18)
    east_tile = mercantile.tile(-9.0162 + 0.0008, 14.4932, 18)
    with sqlite3.connect(path) as c:
        def pixel(t):
            row = c.execute("SELECT tile_data FROM tiles WHERE zoom_level=? AND tile_column=? AND tile_row=?",
                            (t.z, t.x, (1 << t.z) - 1 - t.y)).fetchone()
            im = Image.open(io.BytesIO(row[0])).convert("RGB")
            return im.getpixel((128, 128))
        r, g, b = pixel(west_tile)
        assert r > 150 and b < 60
        r, g, b = pixel(east_tile)
        assert b > 130 and r < 60
    if have("gdalinfo"):
        info = subprocess.run(["gdalinfo", str(path)], capture_output=True, text=True, timeout=60)
        assert info.returncode == 0 and "MBTiles" in info.stdout
    bad = tmp_path / "nocrs.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(bad, "w", driver="GTiff", width=8, height=8, count=3, dtype="uint8") as ds:
            ds.write(np.full((3, 8, 8), 100, dtype=np.uint8))
        assert "no coordinate reference system" in pcli("imagery", "import", bad, ok=False).stderr
    assert "good for zoom 18 at most" in pcli("imagery", "import", tif, "--zoom", "21", ok=False).stderr


# -- the task's existing data in JOSM ------------------------------------------------------------------


def _osm_objects(data: bytes) -> dict:
    """(type, id) -> (version, tags, location or refs) of OSM XML bytes, as osmium reads them."""
    import osmium

    out = {}
    for o in osmium.FileProcessor(osmium.io.FileBuffer(data, "osm")):
        if o.is_node():
            what = (round(o.location.lon, 7), round(o.location.lat, 7))
        elif o.is_way():
            what = tuple(n.ref for n in o.nodes)
        else:
            what = tuple((m.type, m.ref) for m in o.members)
        out[(o.type_str(), o.id)] = (o.version, dict(o.tags), what)
    return out


def _task_with_poi(project):
    """A task with at least one point of the Dianguirdé extract inside, and those points."""
    import osmium
    from shapely.geometry import Point

    from conftest import DIANGUIRDE_POIS

    pois = {o.id: (o.location.lon, o.location.lat, o.version) for o in osmium.FileProcessor(str(DIANGUIRDE_POIS))}
    with open_project(project) as p:
        ids = [r[0] for r in p.conn.execute("SELECT id FROM tasks ORDER BY id")]
        for i in ids:
            t = get_task(p, i)
            inside = [k for k, (lon, lat, _) in pois.items() if t.geom.contains(Point(lon, lat))]
            if inside:
                return t, inside, pois
    raise AssertionError("no task with a point of interest")


def test_josm_layer_to_map_in_holds_the_existing_data(pcli, served, tmp_path):
    from conftest import DIANGUIRDE_POIS
    from mapathon.imagery.editors import DATA_MARGIN_M, data_box
    from test_merge import building, josm, node, way

    project, _, base = served
    t, inside, pois = _task_with_poi(project)
    # no merge yet: an empty layer to map in, and the command says why
    r = pcli("josm", str(t.id), "--tiles-url", base)
    assert "no merged data yet" in r.stderr and "layer to map in is empty" in r.stderr
    assert [urlsplit(u).path for u in r.stdout.split()] == ["/imagery", "/load_data", "/load_data", "/zoom"]
    assert b"<node" not in get(f"{base}/tasks/{t.id}/data.osm")[2]

    # a volunteer maps a house and a track leaving the task, and a well just outside it; the organizer merges
    west, south, east, north = t.geom.bounds
    lat, lon = (south + north) / 2, (west + east) / 2
    m_lon = 1 / (111_320 * math.cos(math.radians(lat)))  # one metre of longitude, in degrees
    near, far = east + 30 * m_lon, east + 200 * m_lon
    poi = inside[0]
    plon, plat, pver = pois[poi]
    vol = josm(tmp_path / "awa.osm", *building(-1, -1, lat, lon),
               node(-10, lat, lon + 0.001), node(-11, lat, east + 1000 * m_lon),
               way(-2, [-10, -11], {"highway": "track"}),
               node(-20, lat, near, {"man_made": "water_well"}), node(-21, lat, far, {"man_made": "water_well"}),
               node(poi, plat, plon, {"name": "Fixed by Awa", "place": "hamlet"}, version=pver, action="modify"))
    pcli("claim", t.id, "--as", "Awa")
    pcli("submit", vol, "--as", "Awa", "--task", t.id)
    pcli("merge", "--base", DIANGUIRDE_POIS, "-o", tmp_path / "merged.osm.pbf")

    r = pcli("josm", str(t.id), "--tiles-url", base, "--json")
    assert "no merged data" not in r.stderr
    reqs = json.loads(r.stdout)
    parts = [urlsplit(q["url"]) for q in reqs]
    assert [p.path for p in parts] == ["/imagery", "/load_data", "/import", "/import", "/zoom"]
    new_q, edit_q = dict(parse_qsl(parts[2].query)), dict(parse_qsl(parts[3].query))
    assert all(parts[i].query.rsplit("&", 1)[1].startswith("url=") for i in (2, 3))  # url last
    assert new_q["layer_locked"] == "true" and new_q["upload_policy"] == "never"
    assert "do not edit" in new_q["layer_name"]
    assert edit_q["new_layer"] == "true" and "layer_locked" not in edit_q and "upload_policy" not in edit_q
    assert edit_q["layer_name"] == f"Task {t.id} ({t.key}) edits"
    assert edit_q["url"] == f"{base}/tasks/{t.id}/data.osm" and new_q["url"] == f"{base}/tasks/{t.id}/new.osm"

    # the layer to map in: the extract's points in the task and the margin, real ids and versions
    status, headers, body = get(edit_q["url"])
    assert status == 200 and headers["Content-Type"] == "application/x-osm+xml"
    edit = _osm_objects(body)
    w, s, e, n = data_box(t)
    expected = {k for k, (lo, la, _) in pois.items() if w <= lo <= e and s <= la <= n}
    assert {k for kind, k in edit if kind == "n"} == expected and poi in expected
    assert all(oid > 0 and v >= 1 for (_, oid), (v, _, _) in edit.items())
    assert edit[("n", poi)][:2] == (pver, {"name": "Fixed by Awa", "place": "hamlet"})  # the merged version
    assert ET.fromstring(body).get("upload") is None
    # what the project mapped and did not upload yet: a locked layer of its own, complete ways
    status, _, body = get(new_q["url"])
    new = _osm_objects(body)
    assert ET.fromstring(body).get("upload") == "never"
    assert all(oid < 0 for _, oid in new)
    ways = {v[1].get("building") or v[1].get("highway"): v[2] for (kind, _), v in new.items() if kind == "w"}
    assert set(ways) == {"yes", "track"} and len(ways["yes"]) == 5 and ways["yes"][0] == ways["yes"][-1]
    track_far = new[("n", ways["track"][1])][2]
    assert track_far[0] == pytest.approx(east + 1000 * m_lon, abs=1e-6)  # a node far outside comes with its way
    wells = sorted(v[2][0] for v in new.values() if v[1].get("man_made") == "water_well")
    assert wells == [pytest.approx(near, abs=1e-6)]  # 30 m outside: in the margin; 200 m outside: not
    assert DATA_MARGIN_M < 200

    # a volunteer saves the layer with one more house: merged again, nothing is doubled
    pcli("release", t.id, "--as", "Awa")
    pcli("claim", t.id, "--as", "Bakary")
    text = get(edit_q["url"])[2].decode()
    more = "\n".join(building(-1, -1, lat + 0.0003, lon))
    saved = tmp_path / "bakary.osm"
    saved.write_text(text.replace("</osm>", more + "\n</osm>"), encoding="utf-8")
    pcli("submit", saved, "--as", "Bakary", "--task", t.id)
    r = pcli("merge", "--base", DIANGUIRDE_POIS, "-o", tmp_path / "merged2.osm.pbf", "--json")
    summary = json.loads(r.stdout)
    assert summary["conflicts"] == []
    import osmium

    kinds = {}
    for o in osmium.FileProcessor(str(tmp_path / "merged2.osm.pbf")):
        kinds.setdefault(o.type_str(), []).append((o.id, dict(o.tags)))
    assert len([1 for _, tags in kinds["w"] if tags.get("building")]) == 2
    assert [tags for oid, tags in kinds["n"] if oid == poi] == [{"name": "Fixed by Awa", "place": "hamlet"}]
    assert len([1 for oid, _ in kinds["n"] if oid > 0]) == len(pois)
    # the room server serves the same files through the same service
    svc = TileService(project)
    assert svc.respond(f"/tasks/{t.id}/data.osm")[2] == get(f"{base}/tasks/{t.id}/data.osm")[2]
    assert svc.respond("/tasks/99999/data.osm")[0] == 404


def test_box_data_keeps_ways_whole_with_real_ids(tmp_path):
    """Liechtenstein: the ways through a box come with all their nodes, as osmium itself finds them."""
    import osmium

    from conftest import LIECHTENSTEIN
    from mapathon.osm.josm import box_data

    box = (9.520, 47.135, 9.524, 47.138)
    w, s, e, n = box
    inside = lambda loc: w <= loc.lon <= e and s <= loc.lat <= n  # noqa: E731
    expected = set()
    for o in osmium.FileProcessor(str(LIECHTENSTEIN), osmium.osm.NODE | osmium.osm.WAY).with_locations():
        if o.is_way() and any(inside(nd.location) for nd in o.nodes):
            expected.add(o.id)
    data = box_data(LIECHTENSTEIN, box)
    assert data.total("new") == 0 and b"<node" not in data.new
    objs = _osm_objects(data.editable)
    ways = {oid: v for (kind, oid), v in objs.items() if kind == "w"}
    assert set(ways) == expected and len(expected) > 50
    nodes = {oid: v[2] for (kind, oid), v in objs.items() if kind == "n"}
    assert all(r in nodes for v in ways.values() for r in v[2])  # complete ways
    outside = [ll for ll in nodes.values() if not (w <= ll[0] <= e and s <= ll[1] <= n)]
    assert outside  # some nodes of those ways lie outside the box
    assert all(v[0] >= 1 for v in objs.values())  # the real versions, for JOSM to upload modifications
    assert data.counts["editable"]["ways"] == len(ways)
