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
from ..project import Project
from ..tasks.progress import Status
from . import mapnik_env as me

from .palette import STATE_STYLE

STATE_COLOURS = {s: v["color"] for s, v in STATE_STYLE.items()}
LABELS = {s: v["label"] for s, v in STATE_STYLE.items()}
HEADER, SIDEBAR = 100, 400


def _style(show_ids: bool) -> str:
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
            '<TextSymbolizer face-name="DejaVu Sans Book" size="10" fill="#333333" halo-fill="#ffffff" '
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
                        width: int = 1920, height: int = 1080) -> Path:
    """Draw the grid coloured by state with village names, a title and a legend, into a PNG
    sized for a projector (1920×1080 by default)."""
    if Path(dest).suffix.lower() != ".png":
        from ..errors import MapathonError

        raise MapathonError(f"{dest}: the progress map is a PNG picture; give a name ending in .png")
    conn = project.conn
    row = conn.execute(
        "SELECT MIN(minx), MIN(miny), MAX(maxx), MAX(maxy), COUNT(*) FROM tasks WHERE state != 'SPLIT'"
    ).fetchone()
    aoi = project.aoi_geom()
    bbox = aoi.bounds if row[4] == 0 else (min(row[0], aoi.bounds[0]), min(row[1], aoi.bounds[1]),
                                            max(row[2], aoi.bounds[2]), max(row[3], aoi.bounds[3]))
    # pad 4 %, and size the picture to the area's shape in web mercator
    me.mapnik()  # loaded before project_bbox, which uses its projections
    merc = me.project_bbox(bbox, me.WEB_MERCATOR)
    pad_x, pad_y = merc.width() * 0.04, merc.height() * 0.04
    map_h = height - HEADER
    map_w = width - SIDEBAR
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
    # task numbers only when a task is at least ~28 px wide on the picture
    tasks_px = 0.0
    if row[4]:
        widest = conn.execute("SELECT MAX(maxx - minx) FROM tasks WHERE state != 'SPLIT'").fetchone()[0] or 0
        tasks_px = widest / (bbox[2] - bbox[0]) * merc.width() / scale
    show_ids = tasks_px >= 28 and row[4] <= 5000
    with _sqlite_copy(project) as db:
        _render(project, status, dest, xml_parts=(bbox, aoi, row, village_areas, points, show_ids, db),
                merc=merc, pad=max(pad_x, pad_y), size=(map_w, map_h))
    return Path(dest)


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


def _render(project: Project, status: Status, dest, *, xml_parts, merc, pad, size) -> None:
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
    xml = (f'<Map srs="{me.WEB_MERCATOR}" background-color="#eef0e8">' + _style(show_ids) + "".join(layers) + "</Map>")
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        mp = m.Map(map_w, map_h)
        m.load_map_from_string(mp, xml, False, "")
        merc.pad(pad)
        mp.zoom_to_box(merc)
        img = m.Image(map_w, map_h)
        m.render(mp, img)
        img.save(str(tmp), "png")
        _frame(tmp, status, project.name)


def _frame(png: Path, status: Status, title: str) -> None:
    """Add a title band and a legend panel with the counts of each state, readable from the back of a room."""
    from ..events import parse_iso

    body = Image.open(png).convert("RGB")
    w, h = body.size
    out = Image.new("RGB", (w + SIDEBAR, h + HEADER), "#ffffff")
    out.paste(body, (0, HEADER))
    d = ImageDraw.Draw(out)
    big = ImageFont.truetype(me.font_path("DejaVuSans-Bold.ttf"), 44)
    mid = ImageFont.truetype(me.font_path("DejaVuSans.ttf"), 28)
    bold = ImageFont.truetype(me.font_path("DejaVuSans-Bold.ttf"), 30)
    small = ImageFont.truetype(me.font_path("DejaVuSans.ttf"), 18)
    o = status.overall
    d.text((20, 10), title, font=big, fill="#10263d")
    when = parse_iso(status.generated).astimezone().strftime("%H:%M %Z, %d/%m/%Y")
    d.text((20, 62), f"{o.total} squares   ({when})", font=mid, fill="#333333")
    x, y = w + 24, HEADER + 20
    d.text((x, y), f"mapped {o.mapped_pct:.1f} %", font=bold, fill="#10263d")
    d.text((x, y + 40), f"validated {o.validated_pct:.1f} %", font=bold, fill="#10263d")
    y += 110
    for state, colour in STATE_COLOURS.items():
        d.rectangle([x, y, x + 34, y + 34], fill=colour, outline="#444444")
        d.text((x + 48, y + 2), f"{LABELS[state]}: {o.states.get(state, 0)}", font=mid, fill="#222222")
        y += 52
    y += 10
    d.line([x, y + 17, x + 34, y + 17], fill="#b03a2e", width=4)
    d.text((x + 48, y + 2), "area of interest", font=mid, fill="#222222")
    y += 52
    d.ellipse([x, y, x + 34, y + 34], outline="#1f4e79", width=3)
    d.text((x + 48, y + 2), "village area", font=mid, fill="#222222")
    d.text((w + SIDEBAR - 16, h + HEADER - 14), "© OpenStreetMap contributors", font=small, fill="#777777",
           anchor="rb")
    out.save(png, "png")
