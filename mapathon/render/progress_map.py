"""The progress map: the task grid coloured by state, for the projector in the mapathon room."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import tempfile
from pathlib import Path

import shapely
from PIL import Image, ImageDraw, ImageFont

from ..fsutil import atomic_path
from ..i18n import Words, resolve_lang
from ..project import Project
from ..tasks.progress import Counts, Status
from . import mapnik_env as me

from .palette import STATE_STYLE

STATE_COLOURS = {s: v["color"] for s, v in STATE_STYLE.items()}
HEADER, SIDEBAR = 100, 400  # the title band's height; the legend panel's narrowest width
MIN_ID_PX = 22  # task numbers are written when a square is at least this wide on the picture


def _style(show_ids: bool, id_size: int = 10) -> str:
    rules = []
    for state, colour in STATE_COLOURS.items():
        rules.append(
            f"<Rule><Filter>[state] = '{state}'</Filter>"
            f'<PolygonSymbolizer fill="{colour}" fill-opacity="0.85"/>'
            '<LineSymbolizer stroke="#444444" stroke-width="0.6" stroke-opacity="0.8"/></Rule>'
        )
    labels = ""
    if show_ids:
        labels = (
            '<Style name="task-ids"><Rule>'
            f'<TextSymbolizer face-name="DejaVu Sans Book" size="{id_size}" fill="#333333" halo-fill="#ffffff" '
            'halo-radius="1" placement="interior" allow-overlap="false">[id]</TextSymbolizer>'
            "</Rule></Style>"
        )
    return (
        '<Style name="tasks">' + "".join(rules) + "</Style>" + labels +
        '<Style name="aoi"><Rule><LineSymbolizer stroke="#b03a2e" stroke-width="2.5" stroke-dasharray="8,4"/></Rule></Style>'
        '<Style name="village-areas"><Rule><LineSymbolizer stroke="#1f4e79" stroke-width="1" stroke-opacity="0.6"/></Rule></Style>'
        '<Style name="village-names"><Rule>'
        '<TextSymbolizer face-name="DejaVu Sans Bold" size="22" fill="#10263d" halo-fill="#ffffff" halo-radius="3" '
        'dy="-6" placement="point" allow-overlap="false">[name]</TextSymbolizer>'
        "</Rule></Style>"
    )


def render_progress_map(project: Project, status: Status, dest: str | Path, *,
                        width: int = 1920, height: int = 1080, lang: str | None = None,
                        village: str | None = None) -> Path:
    """Draw the grid coloured by state with village names, a title and a legend, into a PNG
    sized for a projector (1920×1080 by default), in *lang* (default: the project's language).
    With *village*, the picture shows that village (its squares, counted in the legend)."""
    if Path(dest).suffix.lower() != ".png":
        from ..errors import MapathonError

        raise MapathonError(f"{dest}: the progress map is a PNG picture; give a name ending in .png")
    words = Words(resolve_lang(project, lang))
    conn = project.conn
    row = conn.execute(
        "SELECT MIN(minx), MIN(miny), MAX(maxx), MAX(maxy), COUNT(*) FROM tasks WHERE state != 'SPLIT'"
    ).fetchone()
    aoi = project.aoi_geom()
    bbox = aoi.bounds if row[4] == 0 else (min(row[0], aoi.bounds[0]), min(row[1], aoi.bounds[1]),
                                            max(row[2], aoi.bounds[2]), max(row[3], aoi.bounds[3]))
    extent = bbox  # of the layers: the whole grid, also when the picture shows one village
    counts, title = status.overall, project.name
    if village is not None:
        v = project.village(village)
        title = f"{project.name} — {v['name']}"
        counts = next((c for c in status.villages if c.name == v["name"]), Counts(v["name"]))
        bbox = shapely.from_wkb(v["geom"]).bounds
        there = conn.execute(
            """SELECT MIN(t.minx), MIN(t.miny), MAX(t.maxx), MAX(t.maxy) FROM tasks t
                JOIN task_areas ta ON ta.task_id = t.id WHERE ta.area_id = ? AND t.state != 'SPLIT'""",
            (v["id"],)).fetchone()
        if there[0] is not None:  # the village's squares, whole
            bbox = (min(bbox[0], there[0]), min(bbox[1], there[1]), max(bbox[2], there[2]), max(bbox[3], there[3]))
    sidebar, legend_size = _legend_layout(words, counts, width)
    # pad 4 %, and size the picture to the area's shape in web mercator
    me.mapnik()  # loaded before project_bbox, which uses its projections
    merc = me.project_bbox(bbox, me.WEB_MERCATOR)
    pad_x, pad_y = merc.width() * 0.04, merc.height() * 0.04
    map_h = height - HEADER
    map_w = width - sidebar
    # the map keeps its shape: the picture shows whatever more fits around it
    scale = max((merc.width() + 2 * pad_x) / map_w, (merc.height() + 2 * pad_y) / map_h)
    villages = project.villages()
    points = []
    for v in villages:
        # the name stands above the village's area, so it never hides the squares being mapped
        g = shapely.from_wkb(v["geom"])
        pt = (v["lon"] if v["lon"] is not None else g.representative_point().x, g.bounds[3])
        points.append({"type": "Feature", "properties": {"name": v["name"]},
                       "geometry": {"type": "Point", "coordinates": pt}})
    village_areas = [{"type": "Feature", "properties": {"name": v["name"]},
                      "geometry": shapely.geometry.mapping(shapely.from_wkb(v["geom"]))} for v in villages]
    # task numbers when they fit in the squares: sized to the smallest square and the longest number
    id_size = 0
    if row[4]:
        narrowest, biggest = conn.execute(
            "SELECT MIN(maxx - minx), MAX(id) FROM tasks WHERE state != 'SPLIT'").fetchone()
        tasks_px = narrowest / (bbox[2] - bbox[0]) * merc.width() / scale
        if tasks_px >= MIN_ID_PX:
            # a DejaVu digit is about 0.64 of the font size wide; keep a margin of a third of the square
            id_size = min(26, int(tasks_px * 0.67 / (0.64 * len(str(biggest)))))
    show_ids = id_size >= 8
    with _sqlite_copy(project) as db:
        _render(project, counts, status.generated, dest,
                xml_parts=(extent, aoi, row, village_areas, points, show_ids, db), merc=merc,
                pad=max(pad_x, pad_y), size=(map_w, map_h), id_size=id_size, title=title, words=words,
                legend=(sidebar, legend_size))
    return Path(dest)


def _legend_fonts(size: int):
    return (ImageFont.truetype(me.font_path("DejaVuSans.ttf"), size),
            ImageFont.truetype(me.font_path("DejaVuSans-Bold.ttf"), size + 2))


def _legend_lines(words: Words, counts: Counts) -> list[tuple[str, str]]:
    """The legend panel's lines: (kind, text); kind is 'bold', a task state, 'aoi' or 'village'."""
    return ([("bold", words("map.mapped", pct=words.number(counts.mapped_pct, 1))),
             ("bold", words("map.validated", pct=words.number(counts.validated_pct, 1)))]
            + [(state, f"{words.state(state)}{' : ' if words.lang == 'fr' else ': '}"
                f"{words.number(counts.states.get(state, 0))}") for state in STATE_COLOURS]
            + [("aoi", words("map.aoi")), ("village", words("map.village_area"))])


def _legend_layout(words: Words, counts: Counts, width: int) -> tuple[int, int]:
    """The legend panel's width and font size: every line whole, the panel at most 30 % of the picture."""
    most = int(width * 0.3)
    for size in (28, 26, 24, 22, 20, 18, 16):
        normal, bold = _legend_fonts(size)
        need = max(bold.getlength(t) if kind == "bold" else 48 + normal.getlength(t)
                   for kind, t in _legend_lines(words, counts)) + 24 + 24
        if need <= most or size == 16:
            return max(SIDEBAR if width >= 1600 else int(width * 0.22), min(int(need) + 1, most)), size
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _sqlite_copy(project: Project):
    """A SQLite file Mapnik's sqlite plugin can read the grid from: the project's own file, or, for a
    PostgreSQL project, a temporary copy of the tasks' and area's shapes (Mapnik's wheel has no
    PostgreSQL plugin, and the projects keep WKB, not PostGIS geometries)."""
    if project.db_url is None:
        yield str(project.db_path.resolve())
        return
    with tempfile.TemporaryDirectory(prefix="mapathon-map-") as tmp:
        path = Path(tmp) / "grid.sqlite"
        conn = sqlite3.connect(path)
        try:
            conn.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY, state TEXT, geom BLOB)")
            conn.execute("CREATE TABLE areas (id INTEGER PRIMARY KEY, kind TEXT, geom BLOB)")
            conn.executemany("INSERT INTO tasks VALUES (?, ?, ?)",
                             project.conn.execute("SELECT id, state, geom FROM tasks WHERE state != 'SPLIT'"))
            conn.executemany("INSERT INTO areas VALUES (?, ?, ?)",
                             project.conn.execute("SELECT id, kind, geom FROM areas WHERE kind = 'aoi'"))
            conn.commit()
        finally:
            conn.close()
        yield str(path)


def _render(project: Project, counts: Counts, generated: str, dest, *, xml_parts, merc, pad, size, id_size,
            title, words, legend) -> None:
    bbox, aoi, row, village_areas, points, show_ids, db = xml_parts
    m = me.mapnik()
    map_w, map_h = size
    layers = [
        me.layer("tasks", ["tasks"] + (["task-ids"] if show_ids else []),
                 me.sqlite_datasource(db, "SELECT id, state, geom FROM tasks WHERE state != 'SPLIT'", extent=bbox))
        if row[4] else "",
        me.layer("village-areas", ["village-areas"],
                 me.geojson_datasource(json.dumps({"type": "FeatureCollection", "features": village_areas})))
        if village_areas else "",
        me.layer("aoi", ["aoi"], me.sqlite_datasource(db, "SELECT id, geom FROM areas WHERE kind = 'aoi'", extent=aoi.bounds)),
        me.layer("village-names", ["village-names"],
                 me.geojson_datasource(json.dumps({"type": "FeatureCollection", "features": points}, ensure_ascii=False)))
        if points else "",
    ]
    xml = (f'<Map srs="{me.WEB_MERCATOR}" background-color="#eef0e8">' + _style(show_ids, id_size)
           + "".join(layers) + "</Map>")
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        mp = m.Map(map_w, map_h)
        m.load_map_from_string(mp, xml, False, "")
        merc.pad(pad)
        mp.zoom_to_box(merc)
        img = m.Image(map_w, map_h)
        m.render(mp, img)
        img.save(str(tmp), "png")
        _frame(tmp, counts, generated, title, words, legend)


def _frame(png: Path, counts: Counts, generated: str, title: str, words: Words, legend: tuple[int, int]) -> None:
    """Add a title band and a legend panel with the counts of each state, readable from the back of a room."""
    from ..events import parse_iso

    sidebar, size = legend
    body = Image.open(png).convert("RGB")
    w, h = body.size
    out = Image.new("RGB", (w + sidebar, h + HEADER), "#ffffff")
    out.paste(body, (0, HEADER))
    d = ImageDraw.Draw(out)
    big = ImageFont.truetype(me.font_path("DejaVuSans-Bold.ttf"), 44)
    mid = ImageFont.truetype(me.font_path("DejaVuSans.ttf"), 28)
    small = ImageFont.truetype(me.font_path("DejaVuSans.ttf"), 18)
    normal, bold = _legend_fonts(size)
    d.text((20, 10), title, font=big, fill="#10263d")
    when = parse_iso(generated).astimezone().strftime("%H:%M %Z, %d/%m/%Y")
    d.text((20, 62), f"{words('map.squares', n=words.number(counts.total))}   ({when})", font=mid, fill="#333333")
    x, y = w + 24, HEADER + 20
    box = size + 6  # the swatches, as tall as the words
    step = box + 18
    prev = None
    for kind, text in _legend_lines(words, counts):
        if kind == "bold":
            d.text((x, y), text, font=bold, fill="#10263d")
            y += size + 14
            prev = kind
            continue
        if prev == "bold":  # a gap after the percentages
            y += 16
        prev = kind
        if kind in STATE_COLOURS:
            d.rectangle([x, y, x + box, y + box], fill=STATE_COLOURS[kind], outline="#444444")
        elif kind == "aoi":
            y += 10
            d.line([x, y + box // 2, x + box, y + box // 2], fill="#b03a2e", width=4)
        else:
            d.ellipse([x, y, x + box, y + box], outline="#1f4e79", width=3)
        d.text((x + box + 14, y + box // 2), text, font=normal, fill="#222222", anchor="lm")
        y += step
    d.text((w + sidebar - 16, h + HEADER - 14), words("map.attribution"), font=small, fill="#777777", anchor="rb")
    out.save(png, "png")
