"""Ink marks on photographed atlas pages become data to review.

The photos are made from a real atlas page printed by the project (Vaduz, Liechtenstein extract,
1:5000): the map frame is rasterized from the PDF, marks are drawn on it with OpenCV at known
places in ink-like colours (dots, crosses, small circles, lines, closed loops), then the photo is
spoiled (uneven light, blur, noise, JPEG quality 50). The truth is the page geometry.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, Point, Polygon

from conftest import LIECHTENSTEIN

cv2 = pytest.importorskip("cv2")

PPM = 10.0  # pixels per mm of the rectified photo, as mapathon scan makes it (page.PX_PER_MM)
SCALE = 5000
# the ink drawn on the photos: a little off the strip's printed colours (pens are not the printer)
DRAWN = {"red": (200, 40, 45), "blue": (45, 85, 200), "green": (40, 140, 75), "black": (40, 40, 45)}
STRIP = {"red": "#d7191c", "blue": "#1f4fd6", "green": "#1a9641", "black": "#111111"}  # as the atlas prints it


# -- a scanned page (the scan engineer's ScannedPage interface) -------------------------------------------

from mapathon.scan.page import ScannedPage  # noqa: E402


# -- the printed page ------------------------------------------------------------------------------------


def _frame_pixels(pdf, info) -> np.ndarray:
    """The map frame of one printed page (furniture's MapPageInfo), rendered at PPM px/mm."""
    import pypdfium2 as pdfium

    f = info.layout.frame
    doc = pdfium.PdfDocument(str(pdf))
    try:
        img = np.asarray(doc[info.number - 1].render(scale=PPM * 25.4 / 72).to_pil().convert("RGB"))
    finally:
        doc.close()
    top = int(round(img.shape[0] - f.y1 * PPM))
    left = int(round(f.x * PPM))
    return img[top: top + int(round(f.h * PPM)), left: left + int(round(f.w * PPM))].copy()


def _print_map_pages(folder, bbox: str) -> list:
    """Print an atlas of *bbox* into *folder*/atlas.pdf; the map pages' layout infos, as drawn."""
    from mapathon.atlas import atlas, furniture

    seen = []
    orig = furniture.draw_map_page
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(furniture, "draw_map_page", lambda c, info, pal, words: (seen.append(info), orig(c, info, pal, words)))
        atlas.make_atlas(atlas.PrintOptions(output=folder / "atlas.pdf", data=LIECHTENSTEIN, bbox=bbox,
                                            scale=f"1:{SCALE}", project_dir=folder / "no-project"))
    return seen


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    """A one-page atlas of central Vaduz, its map page's frame as a clean picture, and what the
    QR code says about it."""
    folder = tmp_path_factory.mktemp("marks")
    info = _print_map_pages(folder, "9.519,47.139,9.523,47.142")[0]
    frame = _frame_pixels(folder / "atlas.pdf", info)
    f = info.layout.frame
    minx, miny, maxx, maxy = info.box
    frame_mm = (f.x, info.layout.height - f.y1, f.w, f.h)  # top-down, as the QR code gives it
    meta = {"mapathon": 1, "project": "liechtenstein", "page": info.page_id, "scale": SCALE, "epsg": 32632,
            "box": [minx, miny, maxx, maxy], "frame_mm": list(frame_mm), "village": "Vaduz"}
    return {"folder": folder, "frame": frame, "meta": meta, "box": info.box, "frame_mm": frame_mm}


def make_page(printed, image) -> ScannedPage:
    minx, miny, maxx, maxy = printed["box"]
    return ScannedPage(dict(printed["meta"]), image, PPM, printed["frame_mm"], 32632,
                       ((minx, maxy), (maxx, maxy), (maxx, miny), (minx, miny)), 0.3, "IMG_0001.jpg")


# -- drawing marks ---------------------------------------------------------------------------------------


@dataclass
class Truth:
    kind: str
    colour: str
    geom: object  # in mm on the frame, y down
    found: list = field(default_factory=list)


def _ink(img, mask, rgb):
    a = (mask.astype(np.float32) / 255.0)[..., None]
    out = img.astype(np.float32) * (1 - a + a * np.array(rgb, np.float32) / 255.0)
    return np.clip(out, 0, 255).astype(np.uint8)


def _px(pts):
    return np.array([[int(round(x * PPM * 16)), int(round(y * PPM * 16))] for x, y in pts], np.int32)


def draw_marks(frame: np.ndarray, w_mm: float, h_mm: float, seed: int) -> tuple[np.ndarray, list[Truth]]:
    """Marks in four colours at spread-out places: 3 dots, 3 crosses, 2 small circles, 3 lines,
    2 closed loops. Positions in mm from the frame's top-left corner."""
    rng = np.random.default_rng(seed)
    img = frame.copy()
    truths: list[Truth] = []
    cols = list(DRAWN)
    cells = [(i, j) for i in range(4) for j in range(5)]
    rng.shuffle(cells)
    kinds = ["dot"] * 3 + ["cross"] * 3 + ["circle"] * 2 + ["line"] * 3 + ["loop"] * 2
    cw, ch = w_mm / 4, h_mm / 5
    thick = int(round(0.7 * PPM))
    for n, (kind, (i, j)) in enumerate(zip(kinds, cells)):
        colour = cols[n % len(cols)]
        cx, cy = (i + 0.5) * cw + rng.uniform(-5, 5), (j + 0.5) * ch + rng.uniform(-5, 5)
        mask = np.zeros(img.shape[:2], np.uint8)
        if kind == "dot":
            cv2.circle(mask, tuple(_px([(cx, cy)])[0]), int(1.3 * PPM * 16), 255, -1, cv2.LINE_AA, 4)
            t = Truth("point", colour, Point(cx, cy))
        elif kind == "cross":
            a = rng.uniform(0, math.pi / 2)
            for ang in (a, a + math.pi / 2):
                dx, dy = 2.8 * math.cos(ang), 2.8 * math.sin(ang)
                cv2.line(mask, *[tuple(p) for p in _px([(cx - dx, cy - dy), (cx + dx, cy + dy)])], 255, thick,
                         cv2.LINE_AA, 4)
            t = Truth("point", colour, Point(cx, cy))
        elif kind == "circle":
            cv2.circle(mask, tuple(_px([(cx, cy)])[0]), int(2.8 * PPM * 16), 255, thick, cv2.LINE_AA, 4)
            t = Truth("point", colour, Point(cx, cy))
        elif kind == "line":
            n_pts = 4
            ang = rng.uniform(0, math.pi)
            pts = [(min(max(cx + (k - 1.5) * 12 * math.cos(ang) + rng.uniform(-3, 3), 6), w_mm - 6),
                    min(max(cy + (k - 1.5) * 12 * math.sin(ang) + rng.uniform(-3, 3), 6), h_mm - 6))
                   for k in range(n_pts)]  # on the page
            cv2.polylines(mask, [_px(pts)], False, 255, thick, cv2.LINE_AA, 4)
            t = Truth("line", colour, LineString(pts))
        else:
            pts = [(cx + 11 * math.cos(a) * rng.uniform(0.8, 1.1), cy + 8 * math.sin(a) * rng.uniform(0.8, 1.1))
                   for a in np.linspace(0, 2 * math.pi, 9)[:-1]]
            cv2.polylines(mask, [_px(pts)], True, 255, thick, cv2.LINE_AA, 4)
            t = Truth("polygon", colour, Polygon(pts))
        img = _ink(img, mask, DRAWN[colour])
        truths.append(t)
    return img, truths


def spoil(img: np.ndarray, seed: int, misfit: bool = True) -> np.ndarray:
    """What the registration leaves (0.3° and 0.4 % of scale off: up to 1.3 mm at the corners),
    uneven light (a shadow across the page, a warm cast), blur, sensor noise, JPEG quality 50."""
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    if misfit:
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.3 * (1 if seed % 2 else -1), 1.004)
        img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 0.62 + 0.4 * (xx / w) * 0.6 + 0.4 * (1 - yy / h) * 0.4
    light = np.clip(light, 0, 1.05)[..., None] * np.array([1.0, 0.97, 0.9], np.float32)
    out = img.astype(np.float32) * light
    out = cv2.GaussianBlur(out, (0, 0), 0.9)
    out += rng.normal(0, 5, out.shape)
    out = np.clip(out, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 50])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()


def misfit_truths(truths, seed, w_mm, h_mm):
    """The true marks moved as spoil() moved the photo."""
    m = cv2.getRotationMatrix2D((w_mm / 2, h_mm / 2), 0.3 * (1 if seed % 2 else -1), 1.004)
    for t in truths:
        t.geom = shapely.transform(t.geom, lambda c: c @ m[:, :2].T + m[:, 2])
    return truths


def score(marks, truths) -> tuple[int, int]:
    """(truths found, marks matching no truth): a mark matches when it has the same colour and
    kind and lies within 2 mm on paper (a point's distance, a line's or loop's Hausdorff distance)."""
    used = set()
    for t in truths:
        for k, m in enumerate(marks):
            if k in used or m.colour != t.colour or m.kind != t.kind:
                continue
            g = shapely.transform(m.pixels, lambda c: c / PPM)
            if t.kind == "point":
                d = g.distance(t.geom)
            elif t.kind == "line":  # the same course, and the same length (a line drawn once, not doubled)
                d = max(g.hausdorff_distance(t.geom), abs(g.length - t.geom.length))
            else:
                d = g.exterior.hausdorff_distance(t.geom.exterior)
            if d <= 2.0:
                used.add(k)
                t.found.append(m)
                break
    return sum(1 for t in truths if t.found), len(marks) - len(used)


# -- tests -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(printed):
    from mapathon.scan.reference import render_reference

    return render_reference(printed["meta"], LIECHTENSTEIN, PPM)


def test_reference_is_the_printed_map(printed, reference):
    """The fresh render has the photo's size and matches the printed frame (the atlas's renderer)."""
    frame = printed["frame"]
    assert reference.shape == frame.shape
    same = np.abs(reference.astype(int) - frame.astype(int)).max(axis=2) < 40
    assert same.mean() > 0.9


def test_marks_found_on_spoiled_photos(printed, reference, tmp_path):
    from mapathon.scan.marks import extract_marks, ink_ratio, colour_masks, inks

    w_mm, h_mm = printed["frame_mm"][2:]
    total = found = false = 0
    for seed in (1, 2, 3):
        drawn, truths = draw_marks(printed["frame"], w_mm, h_mm, seed)
        photo = spoil(drawn, seed)
        misfit_truths(truths, seed, w_mm, h_mm)
        page = make_page(printed, photo)
        marks = extract_marks(page, reference, STRIP)
        f, fp = score(marks, truths)
        total, found, false = total + len(truths), found + f, false + fp
        print(f"page {seed}: {f}/{len(truths)} found, {fp} false")
        assert fp <= 1, f"page {seed}: {fp} false marks: " + \
            ", ".join(f"{m.kind} {m.colour} {m.bbox_px}" for m in marks if not any(m in t.found for t in truths))
        if seed == 1:  # pictures to look at
            cv2.imwrite(str(tmp_path / "photo.png"), photo[..., ::-1])
            ratio, _ = ink_ratio(photo, reference, PPM)
            masks = colour_masks(ratio, inks(STRIP))
            vis = np.full(photo.shape, 255, np.uint8)
            for name, m in masks.items():
                vis[m] = DRAWN[name]
            cv2.imwrite(str(tmp_path / "masks.png"), vis[..., ::-1])
        missed = [(t.kind, t.colour, t.geom.wkt[:60]) for t in truths if not t.found]
        assert f >= len(truths) - 1, f"page {seed}: missed {missed}"
    assert found / total >= 0.95, (found, total)


def crumple(img: np.ndarray, amp_mm: float, seed: int):
    """A smooth bend of the paper that the registration left (up to *amp_mm* off): the picture and
    the function moving a position (mm) as the picture moved it."""
    h, w = img.shape[:2]

    def d(x, y):  # pixels
        dx = amp_mm * PPM * np.sin(2 * math.pi * y / (h / 1.3) + seed) * np.cos(2 * math.pi * x / (w / 0.9))
        dy = amp_mm * PPM * np.cos(2 * math.pi * x / (w / 1.1) + seed) * np.sin(2 * math.pi * y / (h / 0.8))
        return dx, dy

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = d(xx, yy)
    out = cv2.remap(img, xx + dx.astype(np.float32), yy + dy.astype(np.float32), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)

    def move(c):  # what was drawn at p appears at about p - d(p)
        ddx, ddy = d(c[:, 0] * PPM, c[:, 1] * PPM)
        return c - np.column_stack([ddx, ddy]) / PPM

    return out, move


def test_marks_found_on_a_bent_page(printed, reference):
    """The paper was not flat: what the homography left is a smooth bend of up to 1.5 mm. The
    reference is bent onto the photo piece by piece; the marks are still found, without false ones."""
    from mapathon.scan.marks import extract_marks

    w_mm, h_mm = printed["frame_mm"][2:]
    total = found = 0
    for seed in (1, 2):
        drawn, truths = draw_marks(printed["frame"], w_mm, h_mm, 20 + seed)
        bent, move = crumple(drawn, 1.5, seed)
        for t in truths:
            t.geom = shapely.transform(t.geom, move)
        marks = extract_marks(make_page(printed, spoil(bent, seed, misfit=False)), reference, STRIP)
        f, fp = score(marks, truths)
        print(f"bent page {seed}: {f}/{len(truths)} found, {fp} false")
        assert fp <= 1
        total, found = total + len(truths), found + f
    assert found / total >= 0.95


def test_marks_have_square_village_and_lonlat(printed, reference):
    from mapathon import geo
    from mapathon.scan.marks import extract_marks

    w_mm, h_mm = printed["frame_mm"][2:]
    drawn, truths = draw_marks(printed["frame"], w_mm, h_mm, 7)
    page = make_page(printed, spoil(drawn, 7, misfit=False))
    marks = extract_marks(page, reference, STRIP)
    score(marks, truths)
    to_utm = geo.transformer(4326, 32632)
    minx, miny, maxx, maxy = printed["box"]
    for t in truths:
        if t.kind != "point" or not t.found:
            continue
        m = t.found[0]
        x, y = to_utm.transform(m.geometry.x, m.geometry.y)
        tx = minx + t.geom.x / w_mm * (maxx - minx)
        ty = maxy - t.geom.y / h_mm * (maxy - miny)
        assert math.hypot(x - tx, y - ty) <= 2.0 * SCALE / 1000  # 2 mm on paper
        assert m.village == "Vaduz" and m.page == printed["meta"]["page"]
        assert m.square and m.square[0] in "ABCDEF" and m.square[1:].isdigit()


def test_blank_photo_has_no_marks(printed, reference):
    from mapathon.scan.marks import extract_marks

    page = make_page(printed, spoil(printed["frame"], 11))
    assert len(extract_marks(page, reference, STRIP)) <= 1


def test_review_files_josm_geojson_html(printed, reference, tmp_path):
    """The JOSM layer is never uploaded and tags every object; GeoJSON reads back with fiona; the HTML
    page shows a crop of the photo for each mark. Nothing else is left in the folder."""
    import fiona
    import osmium

    from mapathon.scan.marks import extract_marks
    from mapathon.scan.review import write_review

    w_mm, h_mm = printed["frame_mm"][2:]
    drawn, truths = draw_marks(printed["frame"], w_mm, h_mm, 5)
    page = make_page(printed, spoil(drawn, 5, misfit=False))
    marks = extract_marks(page, reference, STRIP)
    files = write_review(tmp_path, [(page, marks)], lang="en", brought_by="Awa T.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["marks.geojson", "marks.html", "marks.osm"]

    head = files.josm.read_text(encoding="utf-8")[:300]
    assert 'upload="never"' in head
    counts = {"n": 0, "w": 0, "tagged": []}

    class H(osmium.SimpleHandler):
        def node(self, n):
            counts["n"] += 1
            if len(n.tags):
                counts["tagged"].append(dict(n.tags))

        def way(self, w):
            counts["w"] += 1
            counts["tagged"].append(dict(w.tags))

    H().apply_file(str(files.josm))
    kinds = [m.kind for m in marks]
    assert counts["w"] == kinds.count("line") + kinds.count("polygon")
    assert len(counts["tagged"]) == len(marks)
    for t in counts["tagged"]:
        assert t["source"] == "survey"
        assert t["fixme"].startswith("mark from paper: ") and "read the note on the photo" in t["fixme"]
    page_no = page.meta["page"].rsplit("-", 1)[1]
    assert any(f"red point, page {page_no} " in t["fixme"] for t in counts["tagged"])

    with fiona.open(files.geojson) as src:
        feats = list(src)
    assert len(feats) == len(marks)
    assert {f["geometry"]["type"] for f in feats} == {"Point", "LineString", "Polygon"}
    assert all(f["properties"]["village"] == "Vaduz" and f["properties"]["source"] == "survey" for f in feats)
    lon, lat = feats[0]["geometry"]["coordinates"][0] if feats[0]["geometry"]["type"] == "LineString" else \
        (feats[0]["geometry"]["coordinates"] if feats[0]["geometry"]["type"] == "Point"
         else feats[0]["geometry"]["coordinates"][0][0])
    assert 9.51 < lon < 9.53 and 47.13 < lat < 47.15

    text = files.html.read_text(encoding="utf-8")
    assert text.count("data:image/jpeg;base64,") == len(marks)
    assert "Awa T." in text and "Vaduz" in text
    # a crop to look at: the first mark with the photo around it
    import base64

    first = text.split("data:image/jpeg;base64,", 1)[1].split("'", 1)[0]
    img = cv2.imdecode(np.frombuffer(base64.b64decode(first), np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and min(img.shape[:2]) > 100
    cv2.imwrite(str(tmp_path.parent / "crop.png"), img)


@pytest.mark.backends
def test_marks_counted_in_status_and_credited_in_report(tmp_path, gridded):
    """Marks kept in the project count in their village's row of 'status'; a new photo of the same
    page replaces its marks; the report credits who brought the pages back."""
    from types import SimpleNamespace

    from conftest import Cli
    from mapathon.project import open_project
    from mapathon.scan.marks import Mark, record_marks
    from test_credit import _files, _task_at

    with open_project(gridded) as p:
        v = p.village("Dianguirdé")
        lon, lat = v["lon"], v["lat"]
        page = SimpleNamespace(meta={"page": "abcd1234-3", "village": "Dianguirdé"}, source=Path("IMG_0001.jpg"))
        marks = [Mark("point", "red", Point(lon, lat), "abcd1234-3", "B3", "Dianguirdé", (10, 10, 30, 30)),
                 Mark("line", "blue", LineString([(lon, lat), (lon + 0.001, lat + 0.0005)]), "abcd1234-3", "B2",
                      "Dianguirdé", (40, 40, 200, 120)),
                 Mark("point", "green", Point(lon + 0.3, lat + 0.3), "abcd1234-3", "C1", None, (5, 5, 9, 9))]
        assert record_marks(p, page, marks[:1], brought_by="Oumar") == 1
        assert record_marks(p, page, marks, brought_by="Oumar") == 3  # the new photo replaces the page's marks
        other = SimpleNamespace(meta={"page": "abcd1234-4"}, source="IMG_0002.jpg")
        record_marks(p, other, marks[:1], brought_by="Fatoumata")
    pcli = Cli(gridded)
    st = json.loads(pcli("status", "--json").stdout)
    rows = {r["name"]: r for r in st["villages"]}
    assert rows["Dianguirdé"]["marks"] == 3 and st["overall"]["marks"] == 4
    assert sum(r["marks"] for r in st["villages"]) == 3  # the green mark lies in no village
    assert "marks" in pcli("status").stdout

    fa, _ = _files(tmp_path)
    t = _task_at(gridded, -9.0155, 14.4921)
    pcli("volunteer", "add", "Awa")
    pcli("claim", t.id, "--as", "Awa")
    pcli("submit", fa, "--as", "Awa", "--task", t.id)
    html = tmp_path / "report.html"
    credit = json.loads(pcli("report", "--json", "--html", html).stdout)["credit"]
    assert credit["field_team"] == [
        {"name": "Oumar", "pages": 1, "marks": 3, "villages": "Dianguirdé"},
        {"name": "Fatoumata", "pages": 1, "marks": 1, "villages": "Dianguirdé"}]
    text = html.read_text(encoding="utf-8")
    assert "Oumar" in text and "Fatoumata" in text
    assert "Field team" in pcli("report").stdout


def test_process_page_writes_review_files_and_keeps_the_marks(printed, tmp_path, village_project):
    """What 'mapathon scan' calls per placed page: reference from the project's latest data, marks,
    review files in the project's language, marks kept with who brought the page."""
    import shutil

    from mapathon.osm.submit import LATEST_MERGE
    from mapathon.project import open_project
    from mapathon.scan.marks import process_page

    latest = village_project / LATEST_MERGE
    latest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(LIECHTENSTEIN, latest)  # the data the atlas was printed from
    w_mm, h_mm = printed["frame_mm"][2:]
    drawn, truths = draw_marks(printed["frame"], w_mm, h_mm, 3)
    page = make_page(printed, spoil(drawn, 3, misfit=False))
    out = tmp_path / "scans"
    out.mkdir()
    with open_project(village_project) as p:
        found, files = process_page(page, p, out, brought_by="Oumar", lang="fr")
        rows = p.conn.execute("SELECT kind, colour, brought_by, source, village FROM marks").fetchall()
    assert score(found, truths)[0] >= len(truths) - 1
    pid = page.meta["page"]
    assert sorted(f.name for f in out.iterdir()) == sorted(f"{pid}-marks.{e}" for e in ("geojson", "html", "osm"))
    assert "marque sur papier" in (out / f"{pid}-marks.osm").read_text(encoding="utf-8")
    assert len(rows) == len(found) and {r[2] for r in rows} == {"Oumar"} and rows[0][3] == "IMG_0001.jpg"
    assert {r[4] for r in rows} == {"Vaduz"}  # outside the project's villages: the page's


def test_strip_calibrated_on_the_photographed_patches(printed):
    """The ink patches as photographed (under a warm light), relative to the paper around them,
    give back the printed colours; a page without its photo gives nothing (the printed colours are used)."""
    from mapathon.scan.marks import DEFAULT_INKS, strip_colours_from_photo

    k = 4.0  # photo pixels per mm of paper
    sheet = np.full((int(297 * k), int(210 * k), 3), 255, np.float32)
    inks_mm = []
    for i, (name, rgb) in enumerate(DEFAULT_INKS.items()):
        x, y = 150.0 + i * 7.0, 270.0
        sheet[int(y * k): int((y + 3) * k), int(x * k): int((x + 5) * k)] = rgb
        inks_mm.append([name, x, y, 5.0, 3.0])
    cast = np.array([0.95, 0.8, 0.55], np.float32)  # tungsten light
    photo = np.clip(sheet * cast, 0, 255).astype(np.uint8)
    page = make_page(printed, printed["frame"])
    assert strip_colours_from_photo(page) == {}
    page.meta = dict(page.meta, inks=inks_mm)
    page.photo, page.homography = photo, np.diag([k, k, 1.0])
    got = strip_colours_from_photo(page)
    assert set(got) == set(DEFAULT_INKS)
    for name, rgb in DEFAULT_INKS.items():
        assert np.abs(np.array(got[name]) - np.array(rgb)).max() <= 4, (name, got[name], rgb)


# -- a page of a several-page atlas: labels, symbols and neighbour arrows inside the frame -----------------


@pytest.fixture(scope="module")
def atlas_page(tmp_path_factory):
    """A map page of a two-page atlas of Vaduz as printed (its frame rasterized from the PDF) and its
    QR code's JSON as printed: the frame holds street and place labels, symbols, and the arrow to
    the neighbouring page (drawn by the furniture with ReportLab, not by Mapnik)."""
    folder = tmp_path_factory.mktemp("marks-atlas")
    info = next(i for i in _print_map_pages(folder, "9.514,47.138,9.528,47.143") if i.neighbours)
    frame = _frame_pixels(folder / "atlas.pdf", info)
    meta = json.loads(info.qr_payload)
    return {"frame": frame, "meta": meta, "box": info.box, "frame_mm": tuple(meta["frame_mm"]),
            "neighbours": dict(info.neighbours), "layout": info.layout}


def _atlas_scanned(atlas_page, image, meta=None) -> ScannedPage:
    minx, miny, maxx, maxy = atlas_page["box"]
    return ScannedPage(dict(meta or atlas_page["meta"]), image, PPM, atlas_page["frame_mm"], 32632,
                       ((minx, maxy), (maxx, maxy), (maxx, miny), (minx, miny)), 0.3, "IMG_0002.jpg")


def test_reference_shows_what_the_page_prints_inside_the_frame(atlas_page):
    """The neighbour arrows, grid and labels of the printed frame are on the reference too (the QR
    code lists the neighbours; the furniture's own drawing code draws them)."""
    from mapathon.atlas import furniture, layout
    from mapathon.atlas.i18n import Words
    from mapathon.scan.reference import render_reference

    meta = atlas_page["meta"]
    assert meta["neighbours"] == {k: v for k, v in atlas_page["neighbours"].items()} and meta["area"]
    ref = render_reference(meta, LIECHTENSTEIN, PPM)
    frame = atlas_page["frame"]
    assert ref.shape == frame.shape
    diff = np.abs(ref.astype(int) - frame.astype(int)).max(axis=2)
    assert (diff < 40).mean() > 0.92  # anti-aliasing apart
    w_pt, h_pt = atlas_page["layout"].frame_pt
    for side, num in atlas_page["neighbours"].items():
        x, y, bw, bh = furniture.arrow_box(side, num, 0, 0, w_pt, h_pt, Words("en"))
        s = PPM / layout.MM
        rows = slice(int(frame.shape[0] - (y + bh) * s), int(frame.shape[0] - y * s))
        cols = slice(int(x * s), int((x + bw) * s))
        printed_dark = frame[rows, cols].max(axis=2) < 80  # the arrow's border, head and page number
        ref_dark = cv2.erode(ref, np.ones((3, 3), np.uint8))[rows, cols].max(axis=2) < 128  # within a pixel
        assert printed_dark.sum() > 200
        assert ref_dark[printed_dark].mean() > 0.95, f"the arrow to page {num} ({side}) is not on the reference"


def test_no_false_marks_next_to_labels_and_arrows(atlas_page):
    """Issue: false black marks beside the printed labels, symbols and arrows of a real page; a line
    crossed by a loop split in two. At most 1 false mark a page, ≥ 95 % of the marks found."""
    from mapathon.scan.marks import extract_marks
    from mapathon.scan.reference import render_reference

    ref = render_reference(atlas_page["meta"], LIECHTENSTEIN, PPM)
    frame = atlas_page["frame"]
    w_mm, h_mm = atlas_page["frame_mm"][2:]
    assert len(extract_marks(_atlas_scanned(atlas_page, spoil(frame, 21, misfit=False)), ref, STRIP)) <= 1
    total = found = 0
    for seed in (4, 5):
        drawn, truths = draw_marks(frame, w_mm, h_mm, seed)
        marks = extract_marks(_atlas_scanned(atlas_page, spoil(drawn, seed)), ref, STRIP)
        f, fp = score(marks, truths)
        total, found = total + len(truths), found + f
        assert fp <= 1, f"page {seed}: {fp} false marks: " + \
            ", ".join(f"{m.kind} {m.colour} {m.bbox_px}" for m in marks if not any(m in t.found for t in truths))
    assert found / total >= 0.95, (found, total)
    # a blue line and a green loop drawn over it: two marks, the line not cut where the loop crosses it
    line = [(w_mm * 0.3, h_mm * 0.2), (w_mm * 0.45, h_mm * 0.55)]
    cx, cy, r = w_mm * 0.38, h_mm * 0.36, 9.0
    loop = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 60)[:-1]]
    drawn = frame.copy()
    for pts, closed, colour in ((line, False, "blue"), (loop, True, "green")):
        mask = np.zeros(drawn.shape[:2], np.uint8)
        cv2.polylines(mask, [_px(pts)], closed, 255, int(round(0.7 * PPM)), cv2.LINE_AA, 4)
        drawn = _ink(drawn, mask, DRAWN[colour])
    truths = [Truth("line", "blue", LineString(line)), Truth("polygon", "green", Polygon(loop))]
    marks = extract_marks(_atlas_scanned(atlas_page, spoil(drawn, 6, misfit=False)), ref, STRIP)
    f, fp = score(marks, truths)
    assert f == 2 and fp <= 1, [(m.kind, m.colour, m.bbox_px) for m in marks]


def test_old_page_without_neighbours_in_its_qr_masks_the_arrows(atlas_page):
    """A page printed before its QR code listed its neighbours: the arrows' places are not read."""
    from mapathon.scan.marks import scan_marks

    meta = {k: v for k, v in atlas_page["meta"].items() if k not in ("neighbours", "area")}
    page = _atlas_scanned(atlas_page, spoil(atlas_page["frame"], 22, misfit=False), meta)
    assert len(scan_marks(page, LIECHTENSTEIN, STRIP)) <= 1
