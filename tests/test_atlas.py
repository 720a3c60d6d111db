"""mapathon print: field atlases on real data (Liechtenstein extract, Dianguirdé villages), through the CLI."""

from __future__ import annotations

import json
import math
import unicodedata
from pathlib import Path

import pypdf
import pypdfium2 as pdfium
import pytest

from conftest import LIECHTENSTEIN, VILLAGES_CSV, Cli

# A box across the Rhine at Vaduz: the west page is in Switzerland (outside the extract: blank
# paper), the east page is the centre of Vaduz (houses).
BBOX = "9.490,47.137,9.522,47.143"
VADUZ = (9.5209, 47.1410)
A4 = (595.28, 841.89)

BAMBARA_VILLAGE = "Ɲɛgɛkɔrɔ"
BAMBARA_ALT = "Sɛ́gɔ̀kɔrɔ"
BAMBARA_WELL = "Kɔ̀lɔn Ŋàni"


def nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def texts(pdf: Path) -> list[str]:
    return [nfc(p.extract_text() or "") for p in pypdf.PdfReader(pdf).pages]


def raster(pdf: Path, index: int, dpi: int = 100):
    doc = pdfium.PdfDocument(str(pdf))
    try:
        return doc[index].render(scale=dpi / 72).to_pil().convert("RGB")
    finally:
        doc.close()


def frame_pixels(img, dpi=100):
    """Pixels of the map frame of an A4 portrait page (inside the 6 mm band, above the panel)."""
    import numpy as np

    px = dpi / 25.4
    a = np.asarray(img)
    top, bottom = int((297 - 8 - 12 - 6) * px), int((8 + 36 + 6 + 1) * px)
    h = a.shape[0]
    return a[h - top + 6: h - bottom - 6, int(15 * px): int(195 * px)]


def near(a, rgb, tol=8):
    import numpy as np

    return (np.abs(a.astype(int) - np.array(rgb)).max(axis=2) <= tol)


@pytest.fixture(scope="module")
def outdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("atlas")  # one folder: the layer cache beside the outputs is shared


@pytest.fixture(scope="module")
def vaduz_atlas(outdir) -> tuple[Path, dict]:
    out = outdir / "vaduz.pdf"
    res = Cli()("--project", outdir / "no-project", "print", "--data", LIECHTENSTEIN, "--bbox", BBOX,
                "--scale", "1:5000", "--paper", "A4", "--orientation", "portrait", "--lang", "fr", "-o", out, "--json")
    return out, json.loads(res.stdout)


def test_pages_size_and_text(vaduz_atlas):
    out, info = vaduz_atlas
    reader = pypdf.PdfReader(out)
    assert info["map_pages"] == 3  # the box is three pages wide at 1:5000 on A4
    assert len(reader.pages) == info["pages"] == 1 + 3 + 1  # cover, maps, index
    for p in reader.pages:
        assert float(p.mediabox.width) == pytest.approx(A4[0], abs=0.5)
        assert float(p.mediabox.height) == pytest.approx(A4[1], abs=0.5)
    t = texts(out)
    for page in t[1:4]:
        assert "1:5000" in page
        assert "© les contributeurs d'OpenStreetMap (ODbL)" in page
        assert "UTM 32N" in page
        assert "Données du 24 juillet 2022" in page
    assert "Vaduz" in t[3]  # the place label, drawn by Mapnik as text
    assert "Vaduz" in t[0] and "Ebenholz" in t[0]  # the cover's key map names the villages
    assert "Index des lieux" in t[4] and "Vaduz" in t[4] and "p. 4" in t[4]
    assert "Kathedrale St. Florin" in t[4]
    # fonts are embedded (and subset)
    fonts = set()
    for p in reader.pages:
        for f in (p["/Resources"].get("/Font") or {}).values():
            fonts.add(f.get_object().get("/BaseFont"))
        for x in (p["/Resources"].get("/XObject") or {}).values():
            for f in ((x.get_object().get("/Resources") or {}).get("/Font") or {}).values():
                fonts.add(f.get_object().get("/BaseFont"))
    assert any("DejaVu" in str(f) for f in fonts)
    assert all("+" in str(f) for f in fonts if "DejaVu" in str(f))  # subset prefix ABCDEF+


def test_buildings_drawn_where_mapped_blank_where_not(vaduz_atlas):
    out, _ = vaduz_atlas
    building = (0xB7, 0xAC, 0xA3)
    east = frame_pixels(raster(out, 3))  # centre of Vaduz
    west = frame_pixels(raster(out, 1))  # Switzerland, outside the extract
    assert near(east, building).mean() > 0.05
    assert near(west, building).sum() == 0
    white = near(west, (255, 255, 255), 10).mean()
    assert white > 0.97, f"the page outside the data should be blank paper ({white:.3f} white)"
    assert "Aucune donnée cartographiée ici" in texts(out)[1]


def test_qr_code_holds_the_page_bbox(vaduz_atlas):
    import zxingcpp

    out, _ = vaduz_atlas
    boxes = []
    for index in (1, 2, 3):
        codes = zxingcpp.read_barcodes(raster(out, index, dpi=150))
        assert len(codes) == 1, f"page {index + 1}: {len(codes)} QR codes read"
        meta = json.loads(codes[0].text)
        assert meta["mapathon"] == 1
        assert meta["page"].endswith(f"-{index + 1}")
        assert (meta["paper"], meta["orientation"], meta["scale"]) == ("A4", "portrait", 5000)
        w, s, e, n = meta["bbox"]
        # the frame is 181.7 x 219.8 mm: 908 x 1099 m at 1:5000
        assert (e - w) * 111_320 * math.cos(math.radians((s + n) / 2)) == pytest.approx(908, rel=0.02)
        assert (n - s) * 110_950 == pytest.approx(1099, rel=0.02)
        boxes.append((w, s, e, n))
    assert boxes[2][0] < VADUZ[0] < boxes[2][2] and boxes[2][1] < VADUZ[1] < boxes[2][3]
    # neighbours share 15 mm = 75 m
    shared = (boxes[0][2] - boxes[1][0]) * 111_320 * math.cos(math.radians(47.14))
    assert shared == pytest.approx(75, abs=8)


@pytest.mark.slow
def test_layer_cache_is_reused(vaduz_atlas, outdir):
    _, info = vaduz_atlas
    assert Path(info["cache"]).is_file() and Path(info["cache"]).parent == outdir / ".mapathon-cache"
    res = Cli()("--project", outdir / "no-project", "print", "--data", LIECHTENSTEIN, "--village", "Schaan",
                "--scale", "1:10000", "-o", outdir / "schaan.pdf", "--json")
    again = json.loads(res.stdout)
    assert again["cache"] == info["cache"] and again["cache_built"] is False
    assert "Schaan" in texts(outdir / "schaan.pdf")[1]


def test_landscape_a3_notes_english_greyscale(outdir):
    out = outdir / "en.pdf"
    res = Cli()("--project", outdir / "no-project", "print", "--data", LIECHTENSTEIN, "--bbox",
                "9.519,47.139,9.523,47.142", "--paper", "A3", "--orientation", "landscape", "--lang", "en",
                "--notes", "page", "--grayscale", "--scale", "1:2500", "-o", out, "--json")
    info = json.loads(res.stdout)
    reader = pypdf.PdfReader(out)
    assert info["map_pages"] == 1 and len(reader.pages) == 1 + 2 + 1  # cover, map, its notes page, index
    assert float(reader.pages[1].mediabox.width) == pytest.approx(1190.55, abs=0.5)
    t = texts(out)
    assert "Scale 1:2500" in t[1] and "Key" in t[1] and "Data of 24 July 2022" in t[1]
    assert "Field notes — page 2" in t[2]
    assert "Index of places" in t[3]
    import numpy as np

    a = np.asarray(raster(out, 1, dpi=40)).astype(int)
    assert (np.abs(a[..., 0] - a[..., 1]) <= 2).all() and (np.abs(a[..., 1] - a[..., 2]) <= 2).all(), \
        "--grayscale pages hold only greys"


def test_half_page_notes_and_png_for_phones(outdir):
    out = outdir / "phone.png"
    res = Cli()("--project", outdir / "no-project", "print", "--data", LIECHTENSTEIN, "--bbox",
                "9.519,47.139,9.523,47.142", "--notes", "half", "--format", "png", "-o", out, "--json")
    info = json.loads(res.stdout)
    files = [Path(f) for f in info["outputs"]]
    assert [f.name for f in files] == [f"phone-{i:02d}.png" for i in range(1, info["pages"] + 1)]
    from PIL import Image

    with Image.open(files[1]) as im:
        assert min(im.size) == 1440 and max(im.size) == pytest.approx(1440 * 297 / 210, abs=2)


def _bambara_osm(folder: Path) -> Path:
    """A tiny OSM file with Bambara names (ɛ ɔ ɲ ŋ and tone marks), houses, a track and a well."""
    lat0, lon0 = 14.4932, -9.0162
    nodes, ways = [], []
    nid = 100
    for i in range(6):  # six square houses
        ids = []
        for dx, dy in ((0, 0), (1, 0), (1, 1), (0, 1)):
            nid += 1
            nodes.append(f'<node id="{nid}" version="1" timestamp="2024-03-01T10:00:00Z" '
                         f'lat="{lat0 + 0.0004 * (i // 3) + dy * 0.0001:.7f}" '
                         f'lon="{lon0 + 0.0005 * (i % 3) + dx * 0.0001:.7f}"/>')
            ids.append(nid)
        ways.append(f'<way id="{10 + i}" version="1" timestamp="2024-03-01T10:00:00Z">'
                    + "".join(f'<nd ref="{r}"/>' for r in ids + ids[:1]) + '<tag k="building" v="hut"/></way>')
    nodes.append(f'<node id="1" version="1" timestamp="2024-03-01T10:00:00Z" lat="{lat0}" lon="{lon0}">'
                 f'<tag k="place" v="village"/><tag k="name" v="{BAMBARA_VILLAGE}"/>'
                 f'<tag k="alt_name" v="{BAMBARA_ALT}"/></node>')
    nodes.append(f'<node id="2" version="1" timestamp="2024-03-01T10:00:00Z" lat="{lat0 - 0.0008}" lon="{lon0 + 0.0006}">'
                 f'<tag k="man_made" v="water_well"/><tag k="name" v="{BAMBARA_WELL}"/></node>')
    nodes.append(f'<node id="3" version="1" timestamp="2024-03-01T10:00:00Z" lat="{lat0 - 0.002}" lon="{lon0 - 0.002}"/>')
    nodes.append(f'<node id="4" version="1" timestamp="2024-03-01T10:00:00Z" lat="{lat0 + 0.002}" lon="{lon0 + 0.003}"/>')
    ways.append('<way id="50" version="1" timestamp="2024-03-01T10:00:00Z"><nd ref="3"/><nd ref="4"/>'
                '<tag k="highway" v="track"/><tag k="name" v="Sira ɲɛ"/></way>')
    path = folder / "bambara.osm"
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6" generator="test">\n'
                    + "\n".join(nodes + ways) + "\n</osm>\n", encoding="utf-8")
    return path


def test_bambara_letters_survive(outdir):
    data = _bambara_osm(outdir)
    out = outdir / "bambara.pdf"
    Cli()("--project", outdir / "no-project", "print", "--data", data, "--village", BAMBARA_VILLAGE, "--lang", "fr",
          "-o", out)
    t = texts(out)
    assert len(t) == 3
    assert nfc(BAMBARA_VILLAGE) in t[1]  # the title (ReportLab) and the label (Mapnik)
    assert nfc(BAMBARA_WELL) in t[1] or nfc(BAMBARA_WELL) in t[2]
    assert nfc(BAMBARA_ALT) in t[2] and nfc(BAMBARA_WELL) in t[2]  # the index, with the alternative name
    assert "Puits" in t[1] and "Piste" in t[1]  # the legend names only what the page shows
    assert "Route principale" not in t[1]
    assert "Données du 1 mars 2024" in t[1]
    # found again by its alternative name
    Cli()("--project", outdir / "no-project", "print", "--data", data, "--village", BAMBARA_ALT,
          "-o", outdir / "alt.pdf")


@pytest.fixture(scope="module")
def dianguirde(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dg") / "proj"
    cli = Cli()
    cli("init", folder, "--name", "Dianguirdé", "--aoi", VILLAGES_CSV, "--radius", "2000", "--organizer", "Mariam",
        "--lang", "fr")  # the atlas speaks the project's language
    Cli(folder)("grid", "--zoom", "16")
    return folder


@pytest.mark.slow
def test_project_villages_tasks_and_merged_default(dianguirde):
    from conftest import DIANGUIRDE_POIS

    cli = Cli(dianguirde)
    out = dianguirde.parent / "atlas.pdf"
    r = cli("print", "-o", out, ok=False)  # no merged data yet and no --data: said clearly
    assert "merged/latest.osm.pbf" in r.stderr and not out.exists()
    (dianguirde / "merged").mkdir()
    (dianguirde / "merged" / "latest.osm.pbf").write_bytes(DIANGUIRDE_POIS.read_bytes())
    info = json.loads(cli("print", "-o", out, "--tasks-overlay", "--json").stdout)
    # each of the 14 villages: the pages over its squares that hold data (the 2019 points), then the index
    assert len(info["areas"]) == 14 and info["map_pages"] == 30 and info["pages"] == 32
    assert info["left_out"]["features"] == {} and info["left_out"]["pages_cut"] == 0
    assert info["left_out"]["empty_pages"] == 13  # parts of those squares where nothing is mapped
    res = cli("print", "-o", dianguirde.parent / "with-empty.pdf", "--include-empty")
    assert "Wrote " in res.stdout and "43 of them maps" in res.stdout and "Left out" not in res.stdout
    assert Path(info["cache"]).parent == dianguirde / "cache"
    t = texts(out)
    assert "Dianguirdé" in t[0] and "Torodo" in t[0] and "Kourougué" in t[0]
    assert any("Dianguirdé" in p and "à faire" in p and "#" in p for p in t[1:-1])  # task squares and states
    assert "Puits" in t[-1] and "p. 5" in t[-1]  # index: wells with page and square
    ids = [t["id"] for t in json.loads(cli("tasks", "--village", "Dianguirdé", "--json").stdout)]
    one = json.loads(cli("print", "--tasks", ",".join(map(str, ids)), "--scale", "1:20000", "-o",
                         dianguirde.parent / "tasks.pdf", "--json").stdout)
    assert 1 <= one["map_pages"] <= 4 and one["areas"][0].startswith("Tâches ")
    r = cli("print", "--tasks", "1-3", "-o", dianguirde.parent / "empty.pdf", ok=False)  # no data there
    assert "no mapped features" in r.stderr


def test_imagery_under_the_map(outdir, vaduz_atlas):
    import io
    import sqlite3

    from PIL import Image

    mb = outdir / "imagery.mbtiles"
    conn = sqlite3.connect(mb)
    conn.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
    conn.execute("CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)")
    z = 15
    for lon, lat in ((9.515, 47.135), (9.528, 47.146)):
        x = int((lon + 180) / 360 * 2 ** z)
        y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2 ** z)
        for dx in range(-1, 2):
            for dy in range(-1, 2):
                buf = io.BytesIO()
                Image.new("RGB", (256, 256), (30, 140, 60)).save(buf, "PNG")
                conn.execute("INSERT OR IGNORE INTO tiles VALUES (?, ?, ?, ?)",
                             (z, x + dx, 2 ** z - 1 - (y + dy), buf.getvalue()))
    conn.commit()
    conn.close()
    out = outdir / "imagery.pdf"
    Cli()("--project", outdir / "no-project", "print", "--data", LIECHTENSTEIN, "--bbox",
          "9.519,47.139,9.523,47.142", "--imagery", mb, "-o", out)
    a = frame_pixels(raster(out, 1)).astype(int)
    green = ((a[..., 1] - a[..., 0] > 30) & (a[..., 1] - a[..., 2] > 20)).mean()
    assert green > 0.3, f"the imagery shows under the map ({green:.2f} green)"
    without = frame_pixels(raster(vaduz_atlas[0], 3)).astype(int)
    assert ((without[..., 1] - without[..., 0] > 30) & (without[..., 1] - without[..., 2] > 20)).mean() < 0.01


@pytest.mark.parametrize("args, message", [
    (["--village", "Atlantis"], "--village Atlantis"),
    (["--bbox", BBOX, "--scale", "1:10"], "--scale 1:10"),
    (["--bbox", BBOX, "--scale", "big"], "--scale big"),
    (["--bbox", BBOX, "--paper", "A5"], "--paper A5"),
    (["--bbox", BBOX, "--orientation", "sideways"], "--orientation sideways"),
    (["--bbox", "9.45,47.04,9.64,47.28"], "more than --max-pages 60"),
    (["--bbox", BBOX, "--max-pages", "2"], "more than --max-pages 2"),
    (["--bbox", "9.0,47.0,9.01,47.01"], "no mapped features"),
    (["--bbox", "9.5,47.1"], "--bbox 9.5,47.1"),
    (["--bbox", BBOX, "--lang", "de"], "--lang de"),
    (["--bbox", BBOX, "--format", "svg"], "--format svg"),
    (["--bbox", BBOX, "--notes", "lots"], "--notes lots"),
    (["--bbox", BBOX, "--imagery", "/nonexistent.mbtiles"], "--imagery"),
    (["--bbox", BBOX, "--tasks-overlay"], "not a mapathon project"),
    ([], "not a mapathon project"),
])
def test_bad_input_one_line_no_pdf(outdir, args, message):
    out = outdir / "bad" / "atlas.pdf"
    out.parent.mkdir(exist_ok=True)
    r = Cli()("--project", outdir / "no-project", "print", "--data", LIECHTENSTEIN, *args, "-o", out, ok=False)
    err = r.stderr.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if not p.name.startswith(".mapathon-cache")] == []


def test_new_objects_of_a_merge_snapshot_are_drawn(tmp_path, cli):
    """A merge snapshot keeps new objects' negative ids, which libosmium's locations skip:
    the layer cache must still hold the volunteers' new buildings and tracks."""
    from mapathon.atlas.cache import open_cache
    from mapathon.osm.readers import has_negative_ids

    josm = tmp_path / "awa.osm"
    josm.write_text(
        "<?xml version='1.0' encoding='UTF-8'?>\n<osm version='0.6' generator='JOSM'>\n"
        "<node id='-1' action='modify' lat='14.4930' lon='-9.0160'/>\n"
        "<node id='-2' action='modify' lat='14.4930' lon='-9.0159'/>\n"
        "<node id='-3' action='modify' lat='14.4931' lon='-9.0159'/>\n"
        "<node id='-4' action='modify' lat='14.4931' lon='-9.0160'/>\n"
        "<node id='-5' action='modify' lat='14.4935' lon='-9.0170'/>\n"
        "<way id='-6' action='modify'><nd ref='-1'/><nd ref='-2'/><nd ref='-3'/><nd ref='-4'/><nd ref='-1'/>"
        "<tag k='building' v='yes'/></way>\n"
        "<way id='-7' action='modify'><nd ref='-4'/><nd ref='-5'/><tag k='highway' v='track'/></way>\n"
        "</osm>\n", encoding="utf-8")
    snap = tmp_path / "merged.osm.pbf"
    cli("merge", josm, "-o", snap)
    assert has_negative_ids(snap)
    cache = open_cache(snap, tmp_path / "cache")
    with cache.connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM polys WHERE kind = 'building'").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM lines").fetchone()[0] == 1


# -- a village's pages cover all its mapped squares -----------------------------------------------

DIANGUIRDE = (-9.0161968, 14.4931945)
LONG_WELL = "Puits de la coopérative des femmes maraîchères de Dianguirdé-Est"


def _edge_data(project: Path, folder: Path) -> tuple[Path, float]:
    """The village point, a well with a long name near it, and 'Puits de Sobé' (a well with a hand pump)
    near the far corner of the village's square farthest from its point. No timestamps (as a JOSM file).
    Returns the file and the distance of Sobé from the village point in metres."""
    from mapathon.project import open_project
    from mapathon.tasks import lifecycle

    with open_project(project) as p:
        tasks = lifecycle.list_tasks(p, village="Dianguirdé")
    lon0, lat0 = DIANGUIRDE

    def metres(lon, lat):
        return math.hypot((lon - lon0) * 111_320 * math.cos(math.radians(lat0)), (lat - lat0) * 110_950)

    far = max(tasks, key=lambda t: metres(t.geom.centroid.x, t.geom.centroid.y))
    w, s, e, n = far.geom.bounds
    lon = e - 0.05 * (e - w) if far.geom.centroid.x > lon0 else w + 0.05 * (e - w)
    lat = n - 0.05 * (n - s) if far.geom.centroid.y > lat0 else s + 0.05 * (n - s)
    path = folder / "edge.osm"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6" generator="test">\n'
        f'<node id="1" version="1" lat="{lat0}" lon="{lon0}"><tag k="place" v="village"/>'
        '<tag k="name" v="Dianguirdé"/></node>\n'
        f'<node id="2" version="1" lat="{lat0 - 0.0006}" lon="{lon0 + 0.0004}"><tag k="man_made" v="water_well"/>'
        f'<tag k="name" v="{LONG_WELL}"/></node>\n'
        f'<node id="3" version="1" lat="{lat:.7f}" lon="{lon:.7f}"><tag k="man_made" v="water_well"/>'
        '<tag k="pump" v="manual"/><tag k="name" v="Puits de Sobé"/></node>\n</osm>\n', encoding="utf-8")
    return path, metres(lon, lat)


@pytest.mark.slow
def test_village_pages_reach_the_edge_of_its_squares(dianguirde):
    data, dist = _edge_data(dianguirde, dianguirde.parent)
    assert dist > 1500  # far beyond the one page around the village point
    cli = Cli(dianguirde)
    out = dianguirde.parent / "edge.pdf"
    info = json.loads(cli("print", "--data", data, "--village", "Dianguirdé", "-o", out, "--json").stdout)
    t = texts(out)
    assert info["pages"] == len(t) == 1 + info["map_pages"] + 1
    # the page of the village point, and those of the far square (none for the squares between)
    assert 2 <= info["map_pages"] <= 6 and info["left_out"]["features"] == {}
    index = t[-1]
    lines = index.splitlines()
    ref = lines[next(i for i, line in enumerate(lines) if "Puits de Sobé" in line) + 1]  # "p. 4, A4"
    page = int(ref.split("p. ")[1].split(",")[0])
    assert "Puits de Sobé" in t[page - 1] and "Dianguirdé" in t[page - 1]  # its label, on the page the index says
    assert "Puits à pompe" in t[page - 1] and "Forage" not in t[page - 1]  # a well with a hand pump
    # the long name is in the index whole, over two lines, not cut
    assert "maraîchères de" in index and "Dianguirdé-Est" in index and "…" not in index
    for p in t[1:-1]:
        assert "© les contributeurs d'OpenStreetMap (ODbL)" in p and "contributors" not in p
        assert "Date des données inconnue" not in p and "Fichier de données du" in p
    # the dashed UTM lines near the frame are in the legend of the pages that have them
    assert any("Ligne UTM (pas un bord de carreau)" in p for p in t[1:-1])

    # empty pages on request; all the village's squares
    more = json.loads(cli("print", "--data", data, "--village", "Dianguirdé", "--include-empty", "-o",
                          dianguirde.parent / "edge-empty.pdf", "--json").stdout)
    assert more["map_pages"] == info["map_pages"] + info["left_out"]["empty_pages"]
    assert more["left_out"]["empty_pages"] == 0
    every = json.loads(cli("print", "--data", data, "--village", "Dianguirdé", "--all-tasks", "-o",
                           dianguirde.parent / "edge-all.pdf", "--json").stdout)
    assert every["map_pages"] > more["map_pages"] and every["left_out"]["empty_pages"] == 0

    # too many pages: the village keeps the page of its point, and says what it cut
    cut = dianguirde.parent / "edge-cut.pdf"
    res = cli("print", "--data", data, "--village", "Dianguirdé", "--max-pages", "1", "-o", cut)
    assert "cut by --max-pages 1, leaving 1 well with a pump off the atlas" in res.stdout
    assert "--scale 1:10000" in res.stdout and f"--max-pages {info['map_pages']}" in res.stdout
    t = texts(cut)
    assert len(t) == 3 and "Puits de Sobé" not in t[2] and LONG_WELL.split()[0] in t[2]
