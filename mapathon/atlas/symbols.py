"""The atlas's colours, point symbols and legend, in one place.

Colours are named here and substituted into the Mapnik style file
(``mapathon/render/styles/atlas.xml``), so the legend drawn by ReportLab always
matches the map. ``--grayscale`` maps every colour to its luminance.

Point symbols are small drawings made of circles, polygons and lines in a
20 × 20 box; the same drawing is written as SVG for Mapnik and drawn with
ReportLab for the legend. Water points are blue (dark grey in black and white)
and each has its own shape, so they stay distinct on a greyscale print.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

#: Water points by state (working / not working / unknown: mapathon.survey.water.water_state), in the atlas
#: (a badge on the symbol, and the legend) and the water report's maps; far_house: a house further than the
#: report's distance from a working point.
WATER_STATES = {"working": "#1b8a3a", "not working": "#c62828", "unknown": "#8c8c8c", "far_house": "#ef6c00"}

PALETTE = {
    "paper": "#ffffff",
    "residential": "#ebe6df",
    "farmland": "#f5f1da", "farmland_line": "#c2b98e",
    "forest": "#d2e2c6", "forest_dot": "#6f8f5f",
    "grass": "#e8f0dc",
    "scrub": "#e2ead3", "scrub_dot": "#8aa07a",
    "cemetery": "#dcdfd5", "cemetery_mark": "#6b7167",
    "industrial": "#e6e0e8",
    "bare": "#f0ece6", "bare_dot": "#9c9287",
    "wetland": "#dfeef0", "wetland_mark": "#4f86b5",
    "water": "#a9cce6", "water_line": "#3f79ab",
    "building": "#b7aca3", "building_line": "#4f463f",
    "major": "#f0a94e", "primary": "#f5c57a", "secondary": "#fbe1a3", "tertiary": "#ffffff", "minor": "#ffffff",
    "road_casing": "#4a3a22", "minor_casing": "#6f6f6f",
    "track": "#6e5230", "path": "#3c3c3c",
    "rail": "#2e2e2e",
    "poi_water": "#1b5a96", "poi_ink": "#1f1f1f", "white": "#ffffff",
    "label": "#202020", "label_water": "#1b4c7d", "place": "#0d0d0d", "halo": "#ffffff",
    "task": "#7d1850",
    "page_box": "#b3261e",
    "state_working": WATER_STATES["working"], "state_broken": WATER_STATES["not working"],
    "state_unknown": WATER_STATES["unknown"],
}

_HEX = re.compile(r"#([0-9a-fA-F]{6})\b")


def grey(colour: str) -> str:
    """The luminance (Rec. 709) of a #rrggbb colour, as a grey #rrggbb."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    y = round(0.2126 * r + 0.7152 * g + 0.0722 * b)
    return f"#{y:02x}{y:02x}{y:02x}"


def palette(grayscale: bool = False) -> dict[str, str]:
    return {k: grey(v) if grayscale else v for k, v in PALETTE.items()}


def greyscale_text(text: str) -> str:
    """Replace every #rrggbb colour in *text* (XML, SVG) by its grey."""
    return _HEX.sub(lambda m: grey(m.group(0)), text)


# -- point symbols ------------------------------------------------------------------------------------


def _shape_pts(geom):
    return [tuple(map(float, c)) for c in list(geom.exterior.coords)[:-1]]


def _drop():
    import shapely

    g = shapely.Point(10, 12.3).buffer(5.6, 24).union(shapely.Polygon([(10, 1.5), (4.9, 10.2), (15.1, 10.2)]))
    return _shape_pts(g)


def _crescent():
    import shapely

    g = shapely.Point(10, 10).buffer(8.2, 48).difference(shapely.Point(13.2, 8.6).buffer(6.9, 48))
    if g.geom_type != "Polygon":
        g = max(g.geoms, key=lambda p: p.area)
    return _shape_pts(g)


def _star(cx=10, cy=10.6, r1=8.6, r2=3.6):
    pts = []
    for i in range(10):
        a = -math.pi / 2 + i * math.pi / 5
        r = r1 if i % 2 == 0 else r2
        pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return pts


# (op, args...) in a 20 x 20 box, y downwards (as SVG); colours are palette keys
ICONS: dict[str, list[tuple]] = {
    "well": [("circle", 10, 10, 7.8, "white", "poi_water", 2.6), ("circle", 10, 10, 3.0, "poi_water", None, 0)],
    "well_pump": [("circle", 10, 10, 7.8, "white", "poi_water", 2.6),
                  ("poly", [(6.2, 6.0), (13.8, 6.0), (13.8, 8.2), (11.1, 8.2), (11.1, 14.4), (8.9, 14.4),
                            (8.9, 8.2), (6.2, 8.2)], "poi_water", None, 0)],
    "borehole": [("circle", 10, 10, 8.8, "poi_water", "white", 1.0),
                 ("poly", [(5.5, 5.2), (14.5, 5.2), (14.5, 7.6), (11.2, 7.6), (11.2, 15.5), (8.8, 15.5),
                           (8.8, 7.6), (5.5, 7.6)], "white", None, 0)],
    "drinking_water": [("poly", _drop, "poi_water", "white", 1.0)],
    "tap": [("poly", [(2, 2), (18, 2), (18, 18), (2, 18)], "poi_water", "white", 1.0),
            ("poly", [(5, 5.5), (15, 5.5), (15, 8), (11.2, 8), (11.2, 15), (8.8, 15), (8.8, 8), (5, 8)],
             "white", None, 0)],
    "spring": [("poly", _drop, "white", "poi_water", 2.2)],
    "school": [("poly", [(10, 1.8), (18.4, 8.5), (18.4, 18.2), (1.6, 18.2), (1.6, 8.5)], "poi_ink", "white", 1.0),
               ("poly", [(8, 11), (12, 11), (12, 18.2), (8, 18.2)], "white", None, 0)],
    "health": [("poly", [(1.5, 1.5), (18.5, 1.5), (18.5, 18.5), (1.5, 18.5)], "white", "poi_ink", 1.8),
               ("poly", [(8, 4), (12, 4), (12, 8), (16, 8), (16, 12), (12, 12), (12, 16), (8, 16), (8, 12),
                         (4, 12), (4, 8), (8, 8)], "poi_ink", None, 0)],
    "market": [("poly", [(10, 1), (19, 10), (10, 19), (1, 10)], "poi_ink", "white", 1.0),
               ("poly", [(10, 6), (14, 10), (10, 14), (6, 10)], "white", None, 0)],
    "mosque": [("poly", _crescent, "poi_ink", "white", 0.8)],
    "church": [("poly", [(8.3, 1), (11.7, 1), (11.7, 5.5), (16.5, 5.5), (16.5, 8.9), (11.7, 8.9), (11.7, 19),
                         (8.3, 19), (8.3, 8.9), (3.5, 8.9), (3.5, 5.5), (8.3, 5.5)], "poi_ink", "white", 0.8)],
    "worship": [("poly", _star, "poi_ink", "white", 0.8)],
    "townhall": [("poly", [(2, 8), (10, 2), (18, 8)], "poi_ink", None, 0),
                 ("poly", [(3, 9), (17, 9), (17, 18), (3, 18)], "white", "poi_ink", 1.6),
                 ("poly", [(6, 11), (8, 11), (8, 18), (6, 18)], "poi_ink", None, 0),
                 ("poly", [(12, 11), (14, 11), (14, 18), (12, 18)], "poi_ink", None, 0)],
    # state badges drawn at the upper right of a water point's symbol (and in the legend)
    "state_working": [("circle", 10, 10, 8.5, "state_working", "white", 2.4)],
    "state_broken": [("circle", 10, 10, 8.5, "state_broken", "white", 2.4),
                     ("poly", [(5.8, 7.6), (7.6, 5.8), (14.2, 12.4), (12.4, 14.2)], "white", None, 0),
                     ("poly", [(12.4, 5.8), (14.2, 7.6), (7.6, 14.2), (5.8, 12.4)], "white", None, 0)],
    "state_unknown": [("circle", 10, 10, 8.5, "white", "state_unknown", 2.6),
                      ("circle", 10, 10, 3.0, "state_unknown", None, 0)],
}
#: The badge of each water-point state (mapathon.survey.water.water_state).
STATE_BADGES = {"working": "state_working", "not working": "state_broken", "unknown": "state_unknown"}
POI_KINDS = tuple(k for k in ICONS if not k.startswith("state_"))
WATER_POINTS = ("well", "well_pump", "borehole", "drinking_water", "tap", "spring")


def _ops(kind):
    for op in ICONS[kind]:
        if op[0] == "poly" and callable(op[1]):
            yield (op[0], op[1](), *op[2:])
        else:
            yield op


def icon_svg(kind: str, pal: dict[str, str], size: float = 20) -> str:
    parts = []
    for op in _ops(kind):
        if op[0] == "circle":
            _, cx, cy, r, fill, stroke, w = op
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="{r}" fill="{pal[fill]}"'
                         + (f' stroke="{pal[stroke]}" stroke-width="{w}"' if stroke else "") + "/>")
        else:
            _, pts, fill, stroke, w = op
            d = "M" + " L".join(f"{x:.2f},{y:.2f}" for x, y in pts) + " Z"
            parts.append(f'<path d="{d}" fill="{pal[fill]}"'
                         + (f' stroke="{pal[stroke]}" stroke-width="{w}" stroke-linejoin="round"' if stroke else "")
                         + "/>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 20 20">'
            + "".join(parts) + "</svg>")


def pattern_svg(kind: str, pal: dict[str, str]) -> str | None:
    """Small repeating patterns that tell areas apart in black and white."""
    if kind == "forest":
        body = (f'<circle cx="3" cy="3" r="1.05" fill="{pal["forest_dot"]}"/>'
                f'<circle cx="9" cy="9" r="1.05" fill="{pal["forest_dot"]}"/>')
        size = 12
    elif kind == "scrub":
        body = (f'<path d="M2,5 L3.5,2.5 L5,5" fill="none" stroke="{pal["scrub_dot"]}" stroke-width="0.6"/>'
                f'<path d="M9,11 L10.5,8.5 L12,11" fill="none" stroke="{pal["scrub_dot"]}" stroke-width="0.6"/>')
        size = 14
    elif kind == "wetland":
        body = (f'<path d="M1,4 L6,4 M8,10 L13,10" stroke="{pal["wetland_mark"]}" stroke-width="0.6"/>')
        size = 14
    elif kind == "cemetery":
        body = (f'<path d="M5,2 L5,8 M3,4 L7,4" stroke="{pal["cemetery_mark"]}" stroke-width="0.6"/>')
        size = 12
    elif kind == "bare":
        body = (f'<circle cx="2" cy="2" r="0.5" fill="{pal["bare_dot"]}"/>'
                f'<circle cx="6" cy="6" r="0.5" fill="{pal["bare_dot"]}"/>')
        size = 8
    else:
        return None
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
            f'viewBox="0 0 {size} {size}">{body}</svg>')


def write_symbol_files(folder: Path, pal: dict[str, str]) -> Path:
    """Write the icons and patterns as SVG files that the Mapnik style refers to."""
    folder.mkdir(parents=True, exist_ok=True)
    for kind in ICONS:
        (folder / f"{kind}.svg").write_text(icon_svg(kind, pal))
    for kind in ("forest", "scrub", "wetland", "cemetery", "bare"):
        (folder / f"pattern-{kind}.svg").write_text(pattern_svg(kind, pal))
    return folder


def draw_icon(c, kind: str, x: float, y: float, size: float, pal: dict[str, str]) -> None:
    """Draw a point symbol with ReportLab, its box's lower-left corner at (x, y), *size* points wide."""
    from reportlab.lib.colors import HexColor

    k = size / 20.0
    c.saveState()
    for op in _ops(kind):
        if op[0] == "circle":
            _, cx, cy, r, fill, stroke, w = op
            c.setFillColor(HexColor(pal[fill]))
            if stroke:
                c.setStrokeColor(HexColor(pal[stroke]))
                c.setLineWidth(w * k)
            c.circle(x + cx * k, y + (20 - cy) * k, r * k, stroke=1 if stroke else 0, fill=1)
        else:
            _, pts, fill, stroke, w = op
            p = c.beginPath()
            p.moveTo(x + pts[0][0] * k, y + (20 - pts[0][1]) * k)
            for px, py in pts[1:]:
                p.lineTo(x + px * k, y + (20 - py) * k)
            p.close()
            c.setFillColor(HexColor(pal[fill]))
            if stroke:
                c.setStrokeColor(HexColor(pal[stroke]))
                c.setLineWidth(w * k)
                c.setLineJoin(1)
            c.drawPath(p, stroke=1 if stroke else 0, fill=1)
    c.restoreState()


# -- legend ---------------------------------------------------------------------------------------------

# (legend key, how to draw, words key) in legend order; keys are what the page's data holds
AREA_KEYS = ("building", "residential", "farmland", "forest", "grass", "scrub", "cemetery", "industrial", "bare",
             "wetland", "water")
LINE_KEYS = ("major", "primary", "secondary", "tertiary", "minor", "track", "path", "rail", "river", "stream",
             "seasonal", "ditch")
LINE_STYLE = {  # colour key, width (pt), casing colour key or None, dash
    "major": ("major", 5.0, "road_casing", None),
    "primary": ("primary", 4.4, "road_casing", None),
    "secondary": ("secondary", 3.8, "road_casing", None),
    "tertiary": ("tertiary", 3.4, "road_casing", None),
    "minor": ("minor", 2.6, "minor_casing", None),
    "track": ("track", 1.1, None, (4, 1.8)),
    "path": ("path", 0.7, None, (1.6, 1.3)),
    "rail": ("rail", 1.6, None, None),
    "river": ("water_line", 2.4, None, None),
    "stream": ("water_line", 1.1, None, None),
    "seasonal": ("water_line", 1.1, None, (4.5, 2.2)),
    "ditch": ("water_line", 0.6, None, None),
}


def draw_area_swatch(c, kind, x, y, w, h, pal):
    from reportlab.lib.colors import HexColor

    c.saveState()
    c.setFillColor(HexColor(pal[kind]))
    stroke = {"building": "building_line", "water": "water_line", "farmland": "farmland_line"}.get(kind)
    if stroke:
        c.setStrokeColor(HexColor(pal[stroke]))
        c.setLineWidth(0.5)
    c.rect(x, y, w, h, stroke=1 if stroke else 0, fill=1)
    mark = {"forest": "forest_dot", "scrub": "scrub_dot", "bare": "bare_dot", "wetland": "wetland_mark",
            "cemetery": "cemetery_mark"}.get(kind)
    if mark:
        c.setFillColor(HexColor(pal[mark]))
        c.setStrokeColor(HexColor(pal[mark]))
        c.setLineWidth(0.6)
        for px, py in ((0.22, 0.3), (0.55, 0.7), (0.82, 0.28)):
            cx, cy = x + px * w, y + py * h
            if kind in ("forest", "bare"):
                c.circle(cx, cy, 1.0 if kind == "forest" else 0.5, stroke=0, fill=1)
            elif kind == "scrub":
                c.lines([(cx - 1.5, cy - 1, cx, cy + 1.2), (cx, cy + 1.2, cx + 1.5, cy - 1)])
            elif kind == "wetland":
                c.line(cx - 2.5, cy, cx + 2.5, cy)
            elif kind == "cemetery":
                c.line(cx, cy - 2, cx, cy + 2)
                c.line(cx - 1.3, cy + 0.8, cx + 1.3, cy + 0.8)
    c.restoreState()


def draw_line_swatch(c, kind, x, y, w, pal):
    from reportlab.lib.colors import HexColor

    colour, width, casing, dash = LINE_STYLE[kind]
    c.saveState()
    c.setLineCap(0)
    if casing:
        c.setStrokeColor(HexColor(pal[casing]))
        c.setLineWidth(width + 1.0)
        c.line(x, y, x + w, y)
    c.setStrokeColor(HexColor(pal[colour]))
    c.setLineWidth(width)
    if dash:
        c.setDash(*dash)
    c.line(x, y, x + w, y)
    if kind == "rail":
        c.setStrokeColor(HexColor(pal["white"]))
        c.setLineWidth(0.8)
        c.setDash(4, 4)
        c.line(x, y, x + w, y)
    c.restoreState()
