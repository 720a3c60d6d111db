"""Fetching into the MBTiles cache against a local fault-injecting tile server (127.0.0.1 only)."""

from __future__ import annotations

import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import mercantile
import pytest
from PIL import Image

from mapathon.errors import MapathonError
from mapathon.imagery import coverage, fetch, mbtiles, sources
from mapathon.project import open_project

sys.path.insert(0, str(Path(__file__).parent))
from conftest import have  # noqa: E402
from tileserver import TileServer  # noqa: E402

FAST = dict(backoff=0.05, connect_timeout=2.0, read_timeout=5.0)


@pytest.fixture
def server():
    with TileServer() as srv:
        yield srv


@pytest.fixture
def project_with_source(gridded, server):
    """The gridded project with a 'local' source on the test server as its default."""
    from conftest import Cli

    cli = Cli(gridded)
    cli("imagery", "add", "local", f"tms[0,20]:{server.template('jpg')}", "--attribution", "test tiles", "--default")
    return gridded


def cache(project: Path, name: str = "local") -> Path:
    return mbtiles.cache_path(project, name)


def stored(path: Path) -> dict[tuple[int, int, int], bytes]:
    """Tiles of an MBTiles file read with plain sqlite, keyed by XYZ address."""
    with sqlite3.connect(path) as c:
        return {(z, x, (1 << z) - 1 - row): bytes(d) for z, x, row, d in
                c.execute("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles")}


def missing(path: Path) -> dict[tuple[int, int, int], str]:
    with sqlite3.connect(path) as c:
        return {(z, x, (1 << z) - 1 - row): why for z, x, row, why in
                c.execute("SELECT zoom_level, tile_column, tile_row, reason FROM mapathon_missing")}


def task_tiles(project: Path, ids, zooms):
    """Independent list of the tiles of tasks (z16 tiles): their mercantile descendants."""
    from mapathon.tasks.lifecycle import get_task

    out = set()
    with open_project(project) as p:
        for i in ids:
            t = get_task(p, i)
            for z in zooms:
                out.update((c.z, c.x, c.y) for c in mercantile.children(mercantile.Tile(t.x, t.y, t.z), zoom=z)) \
                    if z > t.z else out.add((t.z, t.x, t.y))
    return out


def path_of(t) -> str:
    return f"/{t[0]}/{t[1]}/{t[2]}.jpg"


# -- the happy path, the file format, resume -----------------------------------------------------------------


def test_fetch_stores_valid_mbtiles_and_resumes(pcli, project_with_source, server):
    proj = project_with_source
    r = pcli("imagery", "fetch", "--tasks", "1-3", "--zoom", "16-18", "--workers", "4", "--json")
    res = json.loads(r.stdout)
    want = task_tiles(proj, [1, 2, 3], [16, 17, 18])
    assert res["planned"] == len(want) == 3 * 21 and res["stored"] == len(want) and not res["failed"]
    tiles = stored(cache(proj))
    assert set(tiles) == want
    for t, data in tiles.items():  # the exact bytes served, at the TMS-flipped row
        assert data == server.body_for(path_of(t))
    assert all(server.counts[path_of(t)] == 1 for t in want)
    assert "python-requests" in fetch.USER_AGENT and "mapathon" in fetch.USER_AGENT

    # the spec's tables and metadata, read with plain sqlite
    with sqlite3.connect(cache(proj)) as c:
        cols = [r[1] for r in c.execute("PRAGMA table_info(tiles)")]
        assert cols == ["zoom_level", "tile_column", "tile_row", "tile_data"]
        assert [r[1] for r in c.execute("PRAGMA table_info(metadata)")] == ["name", "value"]
        meta = dict(c.execute("SELECT name, value FROM metadata"))
        assert c.execute("SELECT COUNT(*) FROM sqlite_master WHERE type='index' AND name='tile_index'").fetchone()[0]
    assert meta["format"] == "jpg" and meta["minzoom"] == "16" and meta["maxzoom"] == "18"
    assert meta["type"] == "baselayer" and meta["attribution"] == "test tiles" and meta["name"]
    w, s, e, n = map(float, meta["bounds"].split(","))
    lo = [mercantile.bounds(mercantile.Tile(x, y, z)) for z, x, y in want]
    assert w == pytest.approx(min(b.west for b in lo)) and n == pytest.approx(max(b.north for b in lo))
    lon, lat, z = meta["center"].split(",")
    assert w < float(lon) < e and s < float(lat) < n and z == "18"

    # resume: nothing stored is asked again
    before = server.requests_total()
    res2 = json.loads(pcli("imagery", "fetch", "--tasks", "1-3", "--zoom", "16-18", "--json").stdout)
    assert server.requests_total() == before and res2["already"] == len(want) and res2["stored"] == 0
    # a few tiles lost: only those are fetched again
    with sqlite3.connect(cache(proj)) as c:
        c.execute("DELETE FROM tiles WHERE zoom_level = 18 AND tile_column % 2 = 0 AND tile_row % 2 = 0")
    gone = want - set(stored(cache(proj)))
    res3 = json.loads(pcli("imagery", "fetch", "--tasks", "1-3", "--zoom", "16-18", "--json").stdout)
    assert res3["stored"] == len(gone) > 0 and server.requests_total() == before + len(gone)
    assert set(stored(cache(proj))) == want


def test_gdalinfo_reads_the_cache(pcli, project_with_source):
    pcli("imagery", "fetch", "--tasks", "1", "--zoom", "16-18")
    if not have("gdalinfo"):
        pytest.skip("gdalinfo is not installed: the sqlite checks of test_fetch_stores_valid_mbtiles_and_resumes stand")
    out = subprocess.run(["gdalinfo", str(cache(project_with_source))], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Driver: MBTiles/MBTiles" in out.stdout
    assert "Size is 1024, 1024" in out.stdout  # one z16 tile at zoom 18: 4 x 256 pixels
    assert "Pseudo-Mercator" in out.stdout
    assert "ZOOM_LEVEL=18" in out.stdout or "Overviews" in out.stdout


def test_interrupted_run_loses_nothing(project_with_source, server):
    src = sources.parse(f"tms[0,20]:{server.template('jpg')}", "local")
    path = cache(project_with_source)
    from shapely import box

    geom = box(*mercantile.bounds(mercantile.Tile(31129, 30150, 16)))
    tiles = coverage.tiles(geom, [16, 17, 18, 19])
    total = sum(len(v[0]) for v in tiles.values())
    server.add_fault(None, "delay", seconds=0.03)

    calls = {"n": 0}

    def progress(done, todo, nbytes):
        if done >= 30 and not calls["n"]:
            calls["n"] += 1
            raise KeyboardInterrupt

    res = fetch.fetch(src, path, tiles, fetch.FetchOptions(workers=4, batch=10, **FAST), progress=progress)
    assert res.interrupted and 30 <= res.stored < total
    assert len(stored(path)) == res.stored  # the file is valid and holds every tile received
    res2 = fetch.fetch(src, path, tiles, fetch.FetchOptions(workers=4, **FAST))
    assert res2.already == res.stored and res2.stored == total - res.stored
    assert len(stored(path)) == total
    assert max(server.counts.values()) == 1  # no tile downloaded twice across the two runs


# -- faults ----------------------------------------------------------------------------------------------------


def run(server, project, zooms=(16, 17), tile=(31129, 30150, 16), estimate=None, **opts):
    from shapely import box

    src = sources.parse(f"tms[0,20]:{server.template('jpg')}", "local")
    geom = box(*mercantile.bounds(mercantile.Tile(tile[0], tile[1], tile[2])))
    tiles = coverage.tiles(geom, list(zooms))
    o = {**FAST, "workers": 4, **opts}
    return fetch.fetch(src, cache(project), tiles, fetch.FetchOptions(**o), estimate_bytes=estimate), tiles


def test_429_retry_after_is_honoured(project_with_source, server):
    p = "/17/62258/60300.jpg"
    server.add_fault(p, "429", times=1, retry_after=1)
    res, _ = run(server, project_with_source)
    hits = [(t, s) for t, path, s in server.log if path == p]
    assert [s for _, s in hits] == [429, 200]
    assert hits[1][0] - hits[0][0] >= 0.95  # waited Retry-After (1 s) before asking again
    assert res.throttled == 1 and not res.failed and res.stored == 5
    # the pause holds every worker: nothing was asked in the second after the 429
    after = [t for t, path, s in server.log if hits[0][0] + 0.2 < t < hits[0][0] + 0.95]
    assert after == []


def test_retry_after_too_long_aborts(project_with_source, server):
    server.add_fault(None, "429", retry_after=3600)
    res, _ = run(server, project_with_source)
    assert res.aborted and "3,600 s" in res.aborted and res.stored == 0


def test_server_errors_are_retried_with_backoff(project_with_source, server):
    flaky, dead = "/17/62258/60300.jpg", "/17/62259/60301.jpg"
    server.add_fault(flaky, "500", times=2)
    server.add_fault(dead, "500")
    res, _ = run(server, project_with_source, retries=3)
    assert server.counts[flaky] == 3 and server.counts[dead] == 4
    times = [t for t, path, _ in server.log if path == dead]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[2] > gaps[0]  # exponential backoff
    assert res.stored == 4 and res.failed == {"HTTP 500 (server error)": 1}
    tiles = stored(cache(project_with_source))
    assert (17, 62258, 60300) in tiles and (17, 62259, 60301) not in tiles
    assert (17, 62259, 60301) not in missing(cache(project_with_source))
    # a failed tile is asked again by the next run, and only it
    server.clear()
    res2, _ = run(server, project_with_source)
    assert dict(server.counts) == {dead: 1} and res2.stored == 1


@pytest.mark.parametrize("kind", ["corrupt", "cut", "truncated", "html", "empty"])
def test_bad_bodies_never_land(project_with_source, server, kind):
    bad = "/17/62258/60300.jpg"
    server.add_fault(bad, kind)
    res, tiles = run(server, project_with_source, retries=1)
    assert server.counts[bad] == 2  # retried once, then given up
    assert res.failed_total == 1 and res.stored == 4
    got = stored(cache(project_with_source))
    assert (17, 62258, 60300) not in got
    for t, data in got.items():
        Image.open(io.BytesIO(data)).load()
        assert data == server.body_for(path_of(t))


def test_404_and_blank_are_recorded_not_refetched(project_with_source, server):
    server.add_fault("/17/62258/60300.jpg", "404")
    server.add_fault("/17/62259/60300.jpg", "blank")
    res, _ = run(server, project_with_source)
    assert res.missing == {"not-found": 1, "blank": 1} and res.stored == 3 and not res.failed
    assert missing(cache(project_with_source)) == {(17, 62258, 60300): "not-found", (17, 62259, 60300): "blank"}
    server.clear()
    res2, _ = run(server, project_with_source)
    assert server.requests_total() == 0 and res2.already == 5


def test_slow_server_times_out(project_with_source, server):
    server.add_fault("/16/31129/30150.jpg", "delay", seconds=1.5)
    res, _ = run(server, project_with_source, zooms=(16,), read_timeout=0.3, retries=0)
    assert res.failed == {"no answer within 0.3 s (slow server)": 1}


def test_unreachable_server_clear_message(pcli, gridded):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    pcli("imagery", "add", "gone", f"tms[0,20]:http://127.0.0.1:{port}/{{z}}/{{x}}/{{y}}.png")
    r = pcli("imagery", "fetch", "--tasks", "1-5", "--zoom", "16-17", "--source", "gone", ok=False)
    assert f"cannot reach 127.0.0.1:{port}" in r.stderr and "connection refused" in r.stderr
    assert "resume" in r.stderr


def test_disk_full_keeps_a_valid_resumable_cache(project_with_source, server):
    def tiny_disk(path):
        conn = mbtiles.connect(path, create=True)
        conn.execute("PRAGMA max_page_count = 40")  # about 160 KB: SQLite then reports 'database or disk is full'
        return conn

    src = sources.parse(f"tms[0,20]:{server.template('jpg')}", "local")
    from shapely import box

    geom = box(*mercantile.bounds(mercantile.Tile(31129, 30150, 16)))
    tiles = coverage.tiles(geom, [16, 17, 18])
    path = cache(project_with_source)
    res = fetch.fetch(src, path, tiles, fetch.FetchOptions(workers=2, batch=2, **FAST), connect=tiny_disk)
    assert res.aborted and "disk" in res.aborted and "full" in res.aborted
    kept = stored(path)
    assert 0 < len(kept) < 21
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    res2 = fetch.fetch(src, path, tiles, fetch.FetchOptions(workers=2, **FAST))
    assert res2.already == len(kept) and len(stored(path)) == 21


def test_max_size_guard(pcli, project_with_source, server):
    r = pcli("imagery", "fetch", "--tasks", "1-3", "--zoom", "16-18", "--max-size", "100KB", ok=False)
    assert "--max-size" in r.stderr and server.requests_total() == 0
    # estimate passes (1 KB a tile) but real tiles are bigger: stops at the limit, keeps what fits
    res, _ = run(server, project_with_source, zooms=(16, 17, 18), max_size=150_000, batch=1, workers=1,
                 estimate=1000)
    assert res.aborted and "--max-size" in res.aborted
    size = sum(len(d) for d in stored(cache(project_with_source)).values())
    assert 0 < size <= 150_000


def test_fetch_cli_bad_input(pcli, project_with_source):
    assert "--workers" in pcli("imagery", "fetch", "--tasks", "1", "--zoom", "16", "--workers", "0", ok=False).stderr
    assert "zooms 0-20 only" in pcli("imagery", "fetch", "--tasks", "1", "--zoom", "21", ok=False).stderr
    assert "--max-size" in pcli("imagery", "fetch", "--tasks", "1", "--zoom", "16", "--max-size", "lots",
                                ok=False).stderr


def test_fetch_progress_and_event(pcli, project_with_source):
    r = pcli("imagery", "fetch", "--village", "Torodo", "--zoom", "16")
    assert "tiles stored" in r.stdout
    with open_project(project_with_source) as p:
        ev = p.conn.execute("SELECT data FROM events WHERE action = 'imagery.fetch'").fetchone()
    assert json.loads(ev[0])["area"] == "Torodo"


def test_wms_source_fetch(project_with_source, server):
    src = sources.parse(f"wms:{server.base}/wms?LAYERS=a&SRS={{proj}}&BBOX={{bbox}}&WIDTH={{width}}&HEIGHT={{height}}",
                        "wmslocal")
    from shapely import box

    geom = box(*mercantile.bounds(mercantile.Tile(31129, 30150, 16)))
    path = cache(project_with_source, "wmslocal")
    res = fetch.fetch(src, path, coverage.tiles(geom, [16, 17]), fetch.FetchOptions(workers=2, **FAST))
    assert res.stored == 5
    b = mercantile.xy_bounds(mercantile.Tile(31129, 30150, 16))
    want = f"/wms?LAYERS=a&SRS=EPSG:3857&BBOX={b.left:.6f},{b.bottom:.6f},{b.right:.6f},{b.top:.6f}&WIDTH=256&HEIGHT=256"
    assert server.counts[want] == 1
    assert stored(path)[(16, 31129, 30150)] == server.body_for(want)


def test_inspect_image_rejects_non_images():
    with pytest.raises(fetch.BadBody, match="text"):
        fetch.inspect_image(b"<html>error</html>")
    with pytest.raises(fetch.BadBody):
        fetch.inspect_image(b"")
    buf = io.BytesIO()
    Image.new("RGBA", (256, 256), (0, 0, 0, 0)).save(buf, "PNG")
    assert fetch.inspect_image(buf.getvalue()) == ("png", True)
    assert fetch.retry_after_seconds("2", 9) == 2.0 and fetch.retry_after_seconds("soon", 9) == 9
    assert 0 <= fetch.retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 9) <= 0.01


def test_interrupt_is_not_needed_for_errors(project_with_source):
    with pytest.raises(MapathonError, match="no URL"):
        fetch.Fetcher(sources.Source("x", "x", "local", None), cache(project_with_source)).run({})


# -- the cheap body checks: as strict as a full decode ----------------------------------------------------------


def _webp(im) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "WEBP", quality=80)
    return buf.getvalue()


def test_inspect_image_refuses_every_truncation():
    from tileserver import make_images

    jpg, png = make_images("jpg", 1)[0], make_images("png", 1)[0]
    webp = _webp(Image.open(io.BytesIO(jpg)))
    for body, fmt in ((jpg, "jpg"), (png, "png"), (webp, "webp")):
        assert fetch.inspect_image(body) == (fmt, False)
        for n in list(range(1, 64)) + list(range(64, len(body), 97)) + [len(body) - 2, len(body) - 1]:
            with pytest.raises(fetch.BadBody):
                fetch.inspect_image(body[:n])
    # a cut JPEG followed by a whole other one (its end marker included) is refused too
    with pytest.raises(fetch.BadBody, match="boundary"):
        fetch.inspect_image(jpg[: len(jpg) // 2] + jpg)
    # any changed byte of a PNG fails its chunk's CRC
    for k in range(8, len(png), 211):
        bad = bytearray(png)
        bad[k] ^= 0x10
        with pytest.raises(fetch.BadBody):
            fetch.inspect_image(bytes(bad))
    # padding after the end marker is allowed, as decoders allow it
    assert fetch.inspect_image(jpg + b"\x00\x00\r\n") == ("jpg", False)
    with pytest.raises(fetch.BadBody, match="GIF"):
        fetch.inspect_image(b"GIF89a" + bytes(100))
    with pytest.raises(fetch.BadBody, match="not an image"):
        fetch.inspect_image(os.urandom(3000).replace(b"\xff", b"\x00"))


def test_inspect_image_blank_tiles():
    def encode(im, fmt, **kw):
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        return buf.getvalue()

    for size in (256, 512):
        for im in (Image.new("RGB", (size, size), (250, 250, 250)), Image.new("L", (size, size), 3)):
            assert fetch.inspect_image(encode(im, "JPEG", quality=100, subsampling=0))[1] is True
            assert fetch.inspect_image(encode(im, "PNG"))[1] is True
            assert fetch.inspect_image(encode(im, "PNG", compress_level=0))[1] is True  # big but uncompressed
            assert fetch.inspect_image(encode(im, "WEBP", lossless=True))[1] is True
        clear = Image.new("RGBA", (size, size), (10, 20, 30, 0))
        assert fetch.inspect_image(encode(clear, "PNG", compress_level=0)) == ("png", True)
        # small bodies that are not one colour: decoded, and not blank
        two = Image.new("RGB", (size, size), (250, 250, 250))
        two.paste((0, 0, 0), (0, 0, 16, 16))
        assert fetch.inspect_image(encode(two, "JPEG"))[1] is False
        assert fetch.inspect_image(encode(two, "PNG", compress_level=0))[1] is False
        half = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        half.paste((9, 9, 9, 255), (0, 0, 1, 1))
        assert fetch.inspect_image(encode(half, "PNG"))[1] is False


# -- the HTTP client: what requests did for us, kept -------------------------------------------------------------


def test_gzip_redirect_and_idle_close(project_with_source, server):
    zipped, moved, closing = "/17/62258/60300.jpg", "/17/62259/60300.jpg", "/17/62258/60301.jpg"
    server.add_fault(zipped, "gzip")
    server.add_fault(moved, "redirect", to="/elsewhere/tile.jpg")
    server.add_fault(closing, "close")
    server.add_fault("/16/31129/30150.jpg", "close")
    res, _ = run(server, project_with_source, workers=1)
    assert res.stored == 5 and not res.failed and res.retries == 0
    got = stored(cache(project_with_source))
    assert got[(17, 62258, 60300)] == server.body_for(zipped)  # stored decompressed
    assert got[(17, 62259, 60300)] == server.body_for("/elsewhere/tile.jpg")
    assert server.counts[moved] == 1 and server.counts["/elsewhere/tile.jpg"] == 1
    # the server closed the kept-alive connection twice: the next request went on a new one, silently
    assert all(n == 1 for n in server.counts.values())
    ua = server.headers[zipped]["User-Agent"]
    assert ua == fetch.USER_AGENT and server.headers[zipped]["Accept"] == "image/*"


@pytest.mark.parametrize("kind", ["chunked", "no-length", "continue"])
def test_other_body_framings(project_with_source, server, kind):
    for p in ("/17/62258/60300.jpg", "/17/62259/60301.jpg"):
        server.add_fault(p, kind)
    res, _ = run(server, project_with_source, workers=1)
    assert res.stored == 5 and not res.failed and res.retries == 0
    for t, data in stored(cache(project_with_source)).items():
        assert data == server.body_for(path_of(t))


def test_proxy_from_the_environment(project_with_source, server, monkeypatch):
    """http_proxy is honoured: the test server plays the proxy and gets absolute URLs, with the credentials."""
    for var in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("http_proxy", f"http://user:p%40ss@127.0.0.1:{server.port}")
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    src = sources.parse("tms[0,20]:http://tiles.example.invalid/{zoom}/{x}/{y}.jpg", "viaproxy")
    from shapely import box

    geom = box(*mercantile.bounds(mercantile.Tile(31129, 30150, 16)))
    res = fetch.fetch(src, cache(project_with_source, "viaproxy"), coverage.tiles(geom, [16]),
                      fetch.FetchOptions(workers=1, **FAST))
    want = "http://tiles.example.invalid/16/31129/30150.jpg"
    assert res.stored == 1 and server.counts[want] == 1
    import base64

    assert server.headers[want]["Proxy-Authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()
    monkeypatch.setenv("no_proxy", "tiles.example.invalid")  # bypassed: the made-up host cannot be reached
    res = fetch.fetch(src, cache(project_with_source, "viaproxy2"), coverage.tiles(geom, [16]),
                      fetch.FetchOptions(workers=1, retries=0, **FAST))
    assert res.stored == 0 and "cannot reach" in next(iter(res.failed))


def test_https_checks_the_certificate(project_with_source, tmp_path, monkeypatch):
    if not have("openssl"):
        pytest.skip("openssl is not installed: cannot make a certificate for a local https server")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    from shapely import box

    geom = box(*mercantile.bounds(mercantile.Tile(31129, 30150, 16)))
    tiles = coverage.tiles(geom, [16, 17])
    with TileServer(tls=(str(cert), str(key))) as srv:
        src = sources.parse(f"tms[0,20]:{srv.template('jpg')}", "tls")
        assert srv.base.startswith("https://")
        # a self-signed certificate is not trusted by default: refused, nothing stored
        res = fetch.fetch(src, cache(project_with_source, "tls"), tiles,
                          fetch.FetchOptions(workers=2, retries=0, **FAST))
        assert res.stored == 0 and all("secure connection" in k and "CERTIFICATE_VERIFY_FAILED" in k
                                       for k in res.failed)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # trusted: fetched
        res = fetch.fetch(src, cache(project_with_source, "tls"), tiles, fetch.FetchOptions(workers=2, **FAST))
        assert res.stored == 5 and not res.failed
        assert stored(cache(project_with_source, "tls"))[(16, 31129, 30150)] == srv.body_for("/16/31129/30150.jpg")
        # through an https_proxy: a CONNECT tunnel (the plain test server plays the proxy), TLS inside it
        with TileServer() as proxy:
            monkeypatch.setenv("https_proxy", f"http://u:pw@127.0.0.1:{proxy.port}")
            monkeypatch.delenv("no_proxy", raising=False)
            monkeypatch.delenv("NO_PROXY", raising=False)
            res = fetch.fetch(src, cache(project_with_source, "tls2"), tiles, fetch.FetchOptions(workers=1, **FAST))
            assert res.stored == 5 and not res.failed
            tunnel = f"CONNECT 127.0.0.1:{srv.port}"
            assert dict(proxy.counts) == {tunnel: 1}  # one kept-alive tunnel for the five tiles
            assert proxy.headers[tunnel]["Proxy-Authorization"].startswith("Basic ")
        assert srv.counts["/16/31129/30150.jpg"] == 2  # direct, then through the tunnel (never untrusted)


# -- the environment read once per run; kept-alive connections closed by the server --------------------------


def test_environment_read_once_per_host_and_honoured(project_with_source, server, monkeypatch):
    """Proxies are resolved once per tile host and run (not on every request), no_proxy per host: with a
    {switch:a,b} template, host a goes through the proxy and host b (in no_proxy) does not."""
    import requests.utils

    for var in ("NO_PROXY", "all_proxy", "ALL_PROXY", "https_proxy", "HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{server.port}")
    monkeypatch.setenv("no_proxy", "b.example.invalid")
    calls = []
    real = requests.utils.should_bypass_proxies
    monkeypatch.setattr(requests.utils, "should_bypass_proxies", lambda url, no_proxy: calls.append(url)
                        or real(url, no_proxy))
    src = sources.parse("tms[0,20]:http://{switch:a,b}.example.invalid/{zoom}/{x}/{y}.jpg", "switch")
    from shapely import box

    tiles = coverage.tiles(box(*mercantile.bounds(mercantile.Tile(31129, 30150, 16))), [16, 17])
    res = fetch.fetch(src, cache(project_with_source, "switch"), tiles,
                      fetch.FetchOptions(workers=2, retries=0, **FAST))
    on_a = {f"http://a.example.invalid/{z}/{x}/{y}.jpg" for z, (xs, ys) in tiles.items()
            for x, y in zip(xs.tolist(), ys.tolist()) if (x + y) % 2 == 0}  # {switch:a,b} picks by x + y
    assert len(on_a) == 2 and set(server.counts) == on_a and res.stored == 2  # host a: through the proxy
    assert sum(res.failed.values()) == 3 and all(k.startswith("cannot reach b.example.invalid") for k in res.failed)  # host b: direct, named
    assert sorted({u.split("/")[2] for u in calls}) == ["a.example.invalid", "b.example.invalid"]
    assert len(calls) == 2  # once per host for the whole run, not once per request (5 requests here)


def test_stale_kept_alive_connection_is_retried_silently(project_with_source):
    """A server that closes a kept-alive connection when the next request arrives (the race of a close not yet
    seen): the request goes again at once on a new connection, not counted as a retry."""
    import threading

    from tileserver import make_images

    image = make_images("jpg", 1)[0]
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    served = []

    def handle(conn):
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                while f.readline() not in (b"\r\n", b""):
                    pass
                if served and served[-1][0] is conn:  # a second request on this connection: close, no answer
                    return
                served.append((conn, line.split()[1].decode()))
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: "
                             + str(len(image)).encode() + b"\r\n\r\n" + image)
        finally:
            f.close()
            conn.close()

    def accept():
        while True:
            try:
                c, _ = lsock.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(c,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        src = sources.parse(f"tms[0,20]:http://127.0.0.1:{port}/{{zoom}}/{{x}}/{{y}}.jpg", "stale")
        from shapely import box

        tiles = coverage.tiles(box(*mercantile.bounds(mercantile.Tile(31129, 30150, 16))), [16, 17])
        res = fetch.fetch(src, cache(project_with_source, "stale"), tiles,
                          fetch.FetchOptions(workers=1, **FAST))
        assert res.stored == 5 and not res.failed and res.retries == 0
        assert len(served) == 5 and len({c for c, _ in served}) == 5  # each tile on a new connection
    finally:
        lsock.close()
