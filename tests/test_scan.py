"""mapathon scan: photos of real atlas pages (rendered by 'mapathon print'), tilted, rotated, badly lit,
crumpled or spoiled, placed again offline; GeoTIFFs read back by GDAL and rasterio; the scans layer
served by 'imagery serve' and referenced by 'josm TASK'."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import DIANGUIRDE_POIS, LIECHTENSTEIN, Cli, have
from scan_photos import error_mm, make_photo, on_screen, page_raster, paint_mm, stroke_mm

from mapathon.scan import register
from mapathon.scan.register import ScanRefused

BBOX = "9.515,47.138,9.522,47.143"  # one map page of Vaduz at 1:5000
DPI = 300


@pytest.fixture(scope="module")
def atlas(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scan")
    out = folder / "vaduz.pdf"
    Cli()("--project", folder / "no-project", "print", "--data", LIECHTENSTEIN, "--bbox", BBOX, "--scale", "1:5000",
          "-o", out)
    return out


@pytest.fixture(scope="module")
def page(atlas) -> np.ndarray:
    return page_raster(atlas, 1, DPI)


@pytest.fixture(scope="module")
def meta(page) -> dict:
    metas = register.read_qr(register.to_gray(page))
    assert len(metas) == 1
    return metas[0]


def save(tmp_path: Path, name: str, rgb: np.ndarray, quality: int = 92) -> Path:
    p = tmp_path / name
    cv2.imwrite(str(p), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return p


def test_qr_payload_is_self_contained(meta):
    fx, fy, fw, fh = meta["frame_mm"]
    assert meta["reg"] == 1 and meta["epsg"] == 32632 and meta["atlas"] and meta["page"].startswith(meta["atlas"])
    minx, miny, maxx, maxy = meta["box"]
    assert (maxx - minx) == pytest.approx(fw * 5, abs=0.5) and (maxy - miny) == pytest.approx(fh * 5, abs=0.5)
    # the four marks are outside the frame, one per corner, inside the sheet
    s = meta["mark_mm"]
    for (x, y), (cx, cy) in zip(meta["marks"], [(fx, fy), (fx + fw, fy), (fx + fw, fy + fh), (fx, fy + fh)]):
        assert abs(x + s / 2 - cx) < s and abs(y + s / 2 - cy) < s
        assert not (fx < x + s / 2 < fx + fw and fy < y + s / 2 < fy + fh)
        assert 5 <= x and x + s <= meta["sheet"][0] - 5
    assert [i[0] for i in meta["inks"]] == ["red", "blue", "green", "black"]


def test_printed_marks_and_ink_strip_are_where_the_qr_says(page, meta):
    k = DPI / 25.4
    marks = register.find_marks(register.to_gray(page))
    assert sorted(marks) == [0, 1, 2, 3]
    for i, (x, y) in enumerate(meta["marks"]):
        assert np.allclose(marks[i][0][0], (x * k, y * k), atol=2)  # 2 px = 0.17 mm
    for name, x, y, w, h in meta["inks"]:
        patch = page[int((y + 0.5) * k): int((y + h - 0.5) * k), int((x + 0.5) * k): int((x + w - 0.5) * k)]
        want = {"red": (215, 25, 28), "blue": (31, 79, 214), "green": (26, 150, 65), "black": (17, 17, 17)}[name]
        assert np.abs(patch.reshape(-1, 3).mean(axis=0) - want).max() < 12, name


FLAT = {
    "straight": {},
    "tilt 35°": {"tilt": 35},
    "rotated 90°": {"rot": 90},
    "rotated 180°": {"rot": 180},
    "rotated 17°, tilt 25°": {"rot": 17, "tilt": 25},
    "shadow, noise, blur, JPEG 50": {"light": True, "noise": 6, "blur": 1.2, "jpeg": 50, "tilt": 15},
}


@pytest.mark.parametrize("kw", FLAT.values(), ids=FLAT.keys())
def test_flat_photos_placed_within_1_mm(page, kw):
    photo = make_photo(page, DPI, **kw)
    placed = register.place(photo.rgb, "photo.jpg")
    err = error_mm(placed, photo)
    assert np.median(err) <= 1.0 and err.max() <= 2.0, (np.median(err), err.max())
    assert placed.method == "4 marks" and placed.residual_mm < 0.5
    assert placed.control_points == {"marks": [0, 1, 2, 3], "qr_corners": 0}
    assert placed.rectified.shape == (round(placed.frame_mm[3] * 10), round(placed.frame_mm[2] * 10), 3)


@pytest.mark.parametrize("crumple,seed", [(1.5, 0), (2.5, 3)])
def test_crumpled_photo_within_2_mm(page, crumple, seed):
    photo = make_photo(page, DPI, crumple_mm=crumple, tilt=10, seed=seed)
    placed = register.place(photo.rgb, "crumpled.jpg")
    err = error_mm(placed, photo)
    assert "+ grid" in placed.method and np.median(err) <= min(2.0, crumple / 2), (placed.method, np.median(err))
    assert placed.correction is not None and placed.residual_mm < 0.5


def hide_mark(page, meta, i: int) -> np.ndarray:
    """A thumb over corner mark *i* (the bottom right one is just above the QR code: a smaller thumb)."""
    x, y = meta["marks"][i]
    pad = 1 if i == 2 else 3
    return paint_mm(page, DPI, (x - pad, y - pad, 5 + 2 * pad, 5 + 2 * pad), (200, 160, 140))


@pytest.mark.parametrize("hidden", [3, 2])
def test_one_hidden_corner_mark_placed_with_the_qr_corners(page, meta, hidden, tmp_path):
    photo = make_photo(hide_mark(page, meta, hidden), DPI, tilt=20)
    placed = register.place(photo.rgb, "thumb.jpg")
    err = error_mm(placed, photo)
    assert placed.method.startswith("3 marks + QR") and np.median(err) <= 0.5 and err.max() <= 1.0, \
        (placed.method, np.median(err), err.max())
    assert placed.control_points == {"marks": sorted({0, 1, 2, 3} - {hidden}), "qr_corners": 4}
    if hidden == 3:  # the JSON sidecar says what the page was placed with
        r = Cli()("--project", tmp_path / "none", "scan", save(tmp_path, "thumb.jpg", photo.rgb), "-o", tmp_path,
                  "--json")
        side = json.loads(Path(json.loads(r.stdout)[0]["sidecar"]).read_text())
        assert side["control_points"] == {"marks": [0, 1, 2], "qr_corners": 4} and side["residual_max_mm"] < 1


def test_hidden_mark_and_pen_strokes_over_the_qr(page, meta):
    """A hidden mark and a thin stroke across the QR code: still placed, within 1 mm; a thick one
    hides the QR code: refused as before."""
    hidden = hide_mark(page, meta, 3)
    qr_centre = (meta["inks"][0][1] + 10, meta["inks"][0][2] - 14)
    thin = stroke_mm(hidden, DPI, (qr_centre[0] - 15, qr_centre[1] - 6), (qr_centre[0] + 15, qr_centre[1] + 6), 0.5,
                     (30, 60, 200))
    photo = make_photo(thin, DPI, tilt=15)
    placed = register.place(photo.rgb, "pen.jpg")
    err = error_mm(placed, photo)
    assert placed.method.startswith("3 marks") and np.median(err) <= 1.0 and err.max() <= 2.0
    x, y = meta["inks"][0][1:3]
    with pytest.raises(ScanRefused, match="QR code not found"):
        register.place(make_photo(paint_mm(hidden, DPI, (x - 2, y - 26, 30, 9), (20, 20, 20)), DPI).rgb, "stroke.jpg")


def test_thin_pen_stroke_across_the_qr_is_read(page, meta):
    fx, fy, fw, fh = meta["frame_mm"]
    qr_centre = (meta["inks"][0][1] + 10, meta["inks"][0][2] - 14)
    inked = stroke_mm(page, DPI, (qr_centre[0] - 15, qr_centre[1] - 6), (qr_centre[0] + 15, qr_centre[1] + 6), 0.5,
                      (30, 60, 200))
    placed = register.place(make_photo(inked, DPI).rgb, "pen.jpg")
    assert placed.page_id == meta["page"]


REFUSED = {
    "blurry": ({"blur": 9}, "too blurry"),
    "dark": ({"dark": 0.08}, "too dark"),
}


@pytest.mark.parametrize("kw,why", REFUSED.values(), ids=REFUSED.keys())
def test_bad_photos_refused(page, kw, why):
    with pytest.raises(ScanRefused, match=why):
        register.place(make_photo(page, DPI, **kw).rgb, "bad.jpg")


def test_partial_page_refused(page, meta):
    fx, fy, fw, fh = meta["frame_mm"]
    k = DPI / 25.4
    top = page[: int((fy + fh / 2) * k)]  # the top half of the page only: 2 marks, no QR
    with pytest.raises(ScanRefused, match="QR code not found|only 2 of 4"):
        register.place(make_photo(top, DPI).rgb, "half.jpg")
    # the QR code and 2 marks: says to photograph the whole page
    bottom = page[int((fy + fh / 2) * k):]
    padded = np.full_like(page, 255)
    padded[-bottom.shape[0]:] = bottom
    with pytest.raises(ScanRefused, match="only 2 of 4 corner marks are visible: photograph the whole page"):
        register.place(make_photo(padded, DPI).rgb, "half.jpg")


def test_thick_stroke_across_the_qr_refused(page, meta):
    x, y = meta["inks"][0][1:3]
    inked = paint_mm(page, DPI, (x - 2, y - 26, 30, 9), (20, 20, 20))
    with pytest.raises(ScanRefused, match="QR code not found"):
        register.place(make_photo(inked, DPI).rgb, "stroke.jpg")


def test_two_pages_and_not_a_page_refused(page, atlas):
    both = np.concatenate([page, page], axis=1)
    with pytest.raises(ScanRefused, match="several pages"):
        register.place(make_photo(both, DPI, fill=0.95).rgb, "two.jpg")
    cover = page_raster(atlas, 0, DPI)
    with pytest.raises(ScanRefused, match="no atlas page found"):
        register.place(make_photo(cover, DPI).rgb, "cover.jpg")


def test_photo_of_a_screen_refused(page):
    shown = on_screen(page, 1000)
    with pytest.raises(ScanRefused, match="QR code not found"):
        register.place(make_photo(shown, DPI * shown.shape[0] / page.shape[0], tilt=10).rgb, "screen.jpg")


def test_old_atlas_without_marks_refused(meta):
    old = {k: meta[k] for k in ("mapathon", "project", "page", "bbox", "paper", "orientation", "scale")}
    with pytest.raises(ScanRefused, match="reprint it"):
        register.check_meta(old, "old.jpg")


def test_cli_batch_geotiff_and_sidecar(page, atlas, tmp_path):
    good = save(tmp_path, "IMG_0001.jpg", make_photo(page, DPI, tilt=20, rot=180).rgb)
    blurry = save(tmp_path, "IMG_0002.jpg", make_photo(page, DPI, blur=9).rgb)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    out = tmp_path / "out"
    r = Cli()("--project", tmp_path / "none", "scan", good, blurry, notes, atlas, "-o", out, "--json", ok=False)
    res = {Path(d["source"].split("#")[0]).name + ("#" + d["source"].split("#")[1] if "#" in d["source"] else ""): d
           for d in json.loads(r.stdout)}
    assert res["IMG_0001.jpg"]["ok"] and res["vaduz.pdf#page2"]["ok"]
    assert not res["IMG_0002.jpg"]["ok"] and "too blurry" in res["IMG_0002.jpg"]["message"]
    assert not res["notes.txt"]["ok"] and not res["vaduz.pdf#page1"]["ok"]
    assert "could not be placed" in r.stderr and "Traceback" not in r.stderr
    tif = Path(res["IMG_0001.jpg"]["geotiff"])
    # nothing half-written; no marks without a project to tell the printed map from the ink
    assert sorted(p.name for p in out.iterdir()) == [tif.stem + ".json", tif.name]
    side = json.loads((out / (tif.stem + ".json")).read_text())
    assert side["source"].endswith("vaduz.pdf#page2") and side["epsg"] == 32632 and side["residual_mm"] < 0.5

    import rasterio

    with rasterio.open(tif) as ds:
        assert ds.crs.to_epsg() == 32632 and ds.overviews(1) and ds.profile["tiled"]
        assert ds.bounds.left == pytest.approx(side["corners"][0][0], abs=0.01)
        assert ds.bounds.top == pytest.approx(side["corners"][0][1], abs=0.01)
        assert ds.res[0] == pytest.approx(0.5, rel=0.01)  # 0.1 mm at 1:5000
    if have("gdalinfo"):
        info = json.loads(subprocess.run(["gdalinfo", "-json", str(tif)], capture_output=True, text=True,
                                         check=True).stdout)
        assert "32632" in info["coordinateSystem"]["wkt"].split("ID[")[-1]
        assert info["cornerCoordinates"]["lowerRight"] == pytest.approx(
            [side["corners"][2][0], side["corners"][2][1]], abs=0.01)


def test_heic_and_exif_orientation(page, tmp_path):
    from PIL import Image

    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    photo = make_photo(page, DPI, tilt=15, megapixels=8)
    heic = tmp_path / "IMG_0003.HEIC"
    Image.fromarray(photo.rgb).save(heic, quality=85)
    # a phone held sideways: the pixels are stored turned, the EXIF says how to show them
    sideways = tmp_path / "IMG_0004.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to show
    Image.fromarray(np.rot90(photo.rgb, 1)).save(sideways, quality=90, exif=exif)
    r = Cli()("--project", tmp_path / "none", "scan", heic, sideways, "-o", tmp_path / "out", "--json")
    res = json.loads(r.stdout)
    assert [d["ok"] for d in res] == [True, True]
    from mapathon.scan.run import _open_image

    assert _open_image(sideways).shape == photo.rgb.shape  # upright as shown, not as stored
    assert res[0]["residual_mm"] < 0.5 and res[1]["residual_mm"] < 0.5


def test_multi_page_scanned_pdf(page, tmp_path):
    """A flatbed scanner's PDF: one picture per page, the second page put in upside down."""
    from PIL import Image

    a = Image.fromarray(page).rotate(0.7, expand=True, fillcolor="white")
    b = Image.fromarray(page[::-1, ::-1].copy())
    pdf = tmp_path / "scanner.pdf"
    a.save(pdf, save_all=True, append_images=[b], resolution=DPI)
    r = Cli()("--project", tmp_path / "none", "scan", pdf, "-o", tmp_path / "out", "--json")
    res = json.loads(r.stdout)
    assert [d["source"].rsplit("#", 1)[1] for d in res] == ["page1", "page2"]
    assert all(d["ok"] and d["residual_mm"] < 0.5 for d in res)


@pytest.fixture
def project_atlas(gridded, tmp_path):
    (gridded / "merged").mkdir()
    shutil.copyfile(DIANGUIRDE_POIS, gridded / "merged" / "latest.osm.pbf")
    out = tmp_path / "dianguirde.pdf"
    Cli(gridded)("print", "--village", "Dianguirdé", "--max-pages", "1", "-o", out)
    return gridded, out


def test_project_scan_is_served_and_in_josm(project_atlas, page, tmp_path):
    from mapathon.imagery.serve import make_server

    project, pdf = project_atlas
    cli = Cli(project)
    mine = save(tmp_path, "field.jpg", make_photo(page_raster(pdf, 1, DPI), DPI, tilt=25, light=True).rgb)
    other = save(tmp_path, "vaduz.jpg", make_photo(page, DPI).rgb)  # a page of another project's atlas
    r = cli("scan", mine, other, "--json", ok=False)
    res = {Path(d["source"]).name: d for d in json.loads(r.stdout)}
    assert res["field.jpg"]["ok"] and "not of 'Dianguirdé'" in res["vaduz.jpg"]["message"]
    tif = Path(res["field.jpg"]["geotiff"])
    assert tif.parent == project / "scans" and not (project / "scans" / "liechtenstein").exists()
    assert {p.suffix for p in (project / "scans").iterdir()} <= {".tif", ".json", ".osm", ".geojson", ".html"}
    assert res["field.jpg"]["marks"] <= 1  # nothing was drawn on this page: at most one false mark
    httpd = make_server(project, "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        with urllib.request.urlopen(f"{base}/tiles/scans.json", timeout=10) as f:
            tj = json.loads(f.read())
        z = tj["maxzoom"]
        import mercantile
        from mapathon.geo import transformer

        side = json.loads(tif.with_suffix(".json").read_text())
        (x0, y0), _, (x1, y1), _ = side["corners"]
        lon, lat = transformer(f"EPSG:{side['epsg']}", "EPSG:4326").transform((x0 + x1) / 2, (y0 + y1) / 2)
        t = mercantile.tile(lon, lat, z)
        with urllib.request.urlopen(f"{base}/tiles/scans/{z}/{t.x}/{t.y}", timeout=10) as f:
            assert f.status == 200 and len(f.read()) > 1000
    finally:
        httpd.shutdown()
        httpd.server_close()
    # the room server's map lists it (its page draws it over the background imagery)
    from mapathon.project import open_project
    from mapathon.server.room import _tile_service, imagery_sources

    with open_project(project) as p:
        listed = [i["tiles"][0] for i in imagery_sources(p, _tile_service(project), "http://room")]
    assert any(t.startswith("http://room/tiles/scans/") for t in listed)
    urls = json.loads(cli("josm", "1", "--json").stdout)
    assert any(u["what"] == "scans" and "/tiles/scans/" in urllib.request.unquote(u["url"]) for u in urls)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".mapathon-" in p.name or p.name.startswith("."))


def test_batch_goes_on_when_a_process_stops_or_a_picture_fails(page, tmp_path, monkeypatch):
    """A process of the batch killed (out of memory) or an unexpected error on one picture: that
    picture gets its line, the others are placed, nothing half-written is left."""
    import scan_photos
    from mapathon.scan import run

    monkeypatch.setattr(run, "place_one", scan_photos.place_or_fail)
    monkeypatch.setenv("MAPATHON_JOBS", "2")
    photo = make_photo(page, DPI, megapixels=4).rgb
    files = [save(tmp_path, n, photo) for n in ("a.jpg", "crash.jpg", "b.jpg", "bug.jpg", "c.jpg")]
    out = tmp_path / "out"
    res = run.scan_files(files, out)
    assert [Path(r.source).name for r in res] == ["a.jpg", "crash.jpg", "b.jpg", "bug.jpg", "c.jpg"]
    assert [r.ok for r in res] == [True, False, True, False, True], [r.message for r in res]
    assert "crash.jpg: the process placing it stopped" in res[1].message and "\n" not in res[1].message
    assert "bug.jpg" in res[3].message and "ValueError" in res[3].message
    assert _leftovers(out) == [] and {p.suffix for p in out.iterdir()} == {".tif", ".json"}


def test_interrupted_batch_leaves_no_temporary_file(page, tmp_path, monkeypatch):
    """Ctrl-C in the middle of a batch: the pictures kept stay, no temporary GeoTIFF is left behind
    (those the other process had placed meanwhile included)."""
    from mapathon.scan import run

    monkeypatch.setenv("MAPATHON_JOBS", "2")
    photo = make_photo(page, DPI, megapixels=4).rgb
    files = [save(tmp_path, f"p{i}.jpg", photo) for i in range(4)]
    out = tmp_path / "out"

    def stop(_path):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run.scan_files(files, out, progress=stop)
    assert _leftovers(out) == []
    assert sorted(p.suffix for p in out.iterdir()) == [".json", ".tif"]  # the first picture, kept
