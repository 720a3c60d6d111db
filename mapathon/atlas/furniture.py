"""Page furniture drawn with ReportLab: titles, frames, grids, legend, scale, QR codes, cover, index, notes.

Everything here is drawn on one ReportLab canvas, one PDF page per atlas page; the map
bodies (Mapnik) are put under the frames afterwards (see ``assemble.py``). Fonts are the
DejaVu fonts bundled with Mapnik, embedded and subset by ReportLab, so Bambara letters
(ɛ ɔ ɲ ŋ) and tone marks print.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

from ..render import mapnik_env as me
from . import registration, symbols
from .i18n import Words
from .layout import MM, PageLayout, Rect, column_label

SANS, BOLD, ITALIC, COND, COND_BOLD = "DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique", "DejaVuSansCondensed", \
    "DejaVuSansCondensed-Bold"
INK = "#111111"
MIN_SQUARE_MM = 6.0  # a sliver of reference square narrower than this joins its neighbour
GRID = "#2b2b2b"
DASH = (2, 2)  # a UTM grid line that is not the edge of a reference square


@functools.lru_cache(maxsize=1)
def register_fonts() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    for name in (SANS, BOLD, ITALIC, COND, COND_BOLD):
        pdfmetrics.registerFont(TTFont(name, me.font_path(name + ".ttf")))


def text_width(text: str, font: str, size: float) -> float:
    from reportlab.pdfbase.pdfmetrics import stringWidth

    register_fonts()
    return stringWidth(text, font, size)


def fit_text(text: str, font: str, size: float, width: float) -> str:
    """*text*, shortened with an ellipsis to fit *width* points."""
    if text_width(text, font, size) <= width:
        return text
    while text and text_width(text + "…", font, size) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def colour(hex_: str):
    from reportlab.lib.colors import HexColor

    return HexColor(hex_)


# -- what a map page needs to know ------------------------------------------------------------------------


@dataclass
class MapPageInfo:
    number: int
    total: int
    title: str
    subtitle: str
    area_part: str  # "2/4" within the village, or ""
    layout: PageLayout
    scale: int
    box: tuple[float, float, float, float]  # UTM metres
    zone: str  # "32N"
    to_lonlat: object  # callable (xs, ys) -> (lons, lats), UTM -> WGS84
    convergence_deg: float  # angle from grid north to true north, clockwise
    grid_step: int  # metres between UTM grid lines
    legend: list[str]
    neighbours: dict[str, int]
    qr_payload: str
    page_id: str
    data_date: str
    print_date: str
    tasks: bool = False
    imagery: bool = False
    col_edges: list[float] = field(default_factory=list)  # UTM x of the square boundaries (incl. frame edges)
    row_edges: list[float] = field(default_factory=list)  # UTM y, from the top


# -- helpers for squares and grids ------------------------------------------------------------------------


def grid_step_for(scale: int) -> int:
    """UTM grid spacing giving reference squares of about 40 mm on paper."""
    best = None
    for step in (50, 100, 200, 250, 500, 1000, 2000, 2500, 5000):
        mm = step / scale * 1000
        if best is None or abs(math.log(mm / 40)) < abs(math.log(best[1] / 40)):
            best = (step, mm)
    return best[0]


def square_edges(lo: float, hi: float, step: float, min_part: float) -> list[float]:
    """Boundaries of the reference squares along one axis: the UTM grid lines, except
    those closer than *min_part* metres to the frame edge (such a sliver joins its neighbour)."""
    first = math.ceil(lo / step) * step
    lines = []
    v = first
    while v < hi - 1e-6:
        if v - lo >= min_part and hi - v >= min_part:
            lines.append(v)
        v += step
    return [lo] + lines + [hi]


def square_of(x: float, y: float, col_edges: list[float], row_edges_top_down: list[float]) -> str | None:
    """'B3' for a UTM point on a page, or None when outside."""
    if not (col_edges[0] <= x <= col_edges[-1] and row_edges_top_down[-1] <= y <= row_edges_top_down[0]):
        return None
    col = next(i for i in range(len(col_edges) - 1) if x <= col_edges[i + 1])
    row = next(j for j in range(len(row_edges_top_down) - 1) if y >= row_edges_top_down[j + 1])
    return f"{column_label(col)}{row + 1}"


def dms(value: float, step_s: float, pos: str, neg: str) -> str:
    v = abs(value)
    d = int(v)
    m = int((v - d) * 60 + 1e-9)
    s = (v - d - m / 60) * 3600
    s = round(s) if step_s >= 1 else round(s, 1)
    if s >= 60:
        s -= 60
        m += 1
    if m >= 60:
        m -= 60
        d += 1
    hemi = pos if value >= 0 else neg
    if step_s >= 60:
        return f"{d}°{m:02d}′ {hemi}"
    return f"{d}°{m:02d}′{int(s):02d}″ {hemi}"


TICK_STEPS_S = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600)


def tick_step(span_deg: float, length_mm: float, min_mm: float = 28) -> float:
    """Seconds of arc between ticks so that labelled ticks are at least *min_mm* apart."""
    for s in TICK_STEPS_S:
        if s / 3600 / span_deg * length_mm >= min_mm:
            return s
    return TICK_STEPS_S[-1]


def nice_bar(scale: int, max_mm: float) -> int:
    best = 10
    for m in (10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 25000, 50000):
        if m / scale * 1000 <= max_mm:
            best = m
    return best


def fmt_m(m: float) -> str:
    if m >= 1000:
        km = m / 1000
        return f"{km:g} km"
    return f"{m:g} m"


# -- drawing primitives -------------------------------------------------------------------------------------


class Labels:
    """Simple collision avoidance for labels in the margins."""

    def __init__(self):
        self.boxes: list[tuple[float, float, float, float]] = []

    def free(self, box, pad=1.5) -> bool:
        x0, y0, x1, y1 = box
        return all(x1 + pad < b[0] or b[2] + pad < x0 or y1 + pad < b[1] or b[3] + pad < y0 for b in self.boxes)

    def add(self, box):
        self.boxes.append(box)


def draw_text(c, x, y, text, font=SANS, size=7, fill=INK, anchor="start", angle=0.0, labels: Labels | None = None,
              force=False):
    """Draw text; with *labels*, only where it does not collide (unless *force*). Returns True if drawn."""
    w = text_width(text, font, size)
    if angle == 0:
        x0 = {"start": x, "middle": x - w / 2, "end": x - w}[anchor]
        box = (x0, y - size * 0.25, x0 + w, y + size * 0.8)
    else:  # 90° (reading upwards)
        y0 = {"start": y, "middle": y - w / 2, "end": y - w}[anchor]
        box = (x - size * 0.8, y0, x + size * 0.25, y0 + w)
    if labels is not None and not force and not labels.free(box):
        return False
    if labels is not None:
        labels.add(box)
    c.saveState()
    c.setFont(font, size)
    c.setFillColor(colour(fill))
    if angle:
        c.translate(x, y)
        c.rotate(angle)
        x, y = 0, 0
    {"start": c.drawString, "middle": c.drawCentredString, "end": c.drawRightString}[anchor](x, y, text)
    c.restoreState()
    return True


def qr_matrix(payload: str):
    """The QR code of *payload* as printed: rows of modules (truthy = dark), medium error correction."""
    import segno

    return segno.make(payload, error="m", micro=False).matrix


def draw_qr(c, payload: str, x: float, y: float, size: float) -> None:
    """A QR code (segno) drawn as vector squares, lower-left corner at (x, y), *size* points wide
    including the 4-module quiet zone (left white)."""
    matrix = qr_matrix(payload)
    n = len(matrix)
    module = size / (n + 8)
    ox, oy = x + 4 * module, y + 4 * module
    c.saveState()
    c.setFillColor(colour("#ffffff"))
    c.rect(x, y, size, size, stroke=0, fill=1)
    c.setFillColor(colour("#000000"))
    p = c.beginPath()
    for r, row in enumerate(matrix):
        cstart = None
        for col in range(n + 1):
            dark = col < n and row[col]
            if dark and cstart is None:
                cstart = col
            elif not dark and cstart is not None:
                p.rect(ox + cstart * module, oy + (n - 1 - r) * module, (col - cstart) * module, module)
                cstart = None
    c.drawPath(p, stroke=0, fill=1)
    c.restoreState()


def draw_north_arrow(c, cx, y, height, angle_deg, words: Words):
    c.saveState()
    c.translate(cx, y + height * 0.42)
    c.rotate(-angle_deg)
    h = height * 0.42
    w = height * 0.16
    c.setLineWidth(0.6)
    c.setStrokeColor(colour(INK))
    p = c.beginPath()
    p.moveTo(0, h)
    p.lineTo(-w, -h)
    p.lineTo(0, -h * 0.55)
    p.close()
    c.setFillColor(colour(INK))
    c.drawPath(p, stroke=1, fill=1)
    p = c.beginPath()
    p.moveTo(0, h)
    p.lineTo(w, -h)
    p.lineTo(0, -h * 0.55)
    p.close()
    c.setFillColor(colour("#ffffff"))
    c.drawPath(p, stroke=1, fill=1)
    c.setFont(BOLD, height * 0.22)
    c.setFillColor(colour(INK))
    c.drawCentredString(0, h + height * 0.05, words("north"))
    c.restoreState()


def draw_scale_bar(c, x, y, scale: int, max_w: float, words: Words):
    """Scale bar with alternating blocks; (x, y) is the lower-left of the bar. Returns its width."""
    metres = nice_bar(scale, max_w / MM)
    width = metres / scale * 1000 * MM
    parts = 5 if metres in (25, 250, 2500, 25000) else 4
    seg = width / parts
    h = 1.6 * MM
    c.saveState()
    c.setLineWidth(0.5)
    c.setStrokeColor(colour(INK))
    for i in range(parts):
        c.setFillColor(colour(INK if i % 2 == 0 else "#ffffff"))
        c.rect(x + i * seg, y, seg, h, stroke=1, fill=1)
    c.setFont(SANS, 6)
    c.setFillColor(colour(INK))
    c.drawCentredString(x, y + h + 1.2, "0")
    c.drawCentredString(x + width / 2, y + h + 1.2, fmt_m(metres / 2).replace(" m", "").replace(" km", ""))
    c.drawCentredString(x + width, y + h + 1.2, fmt_m(metres))
    c.restoreState()
    return width


def legend_label(key: str, words: Words) -> str:
    return words(key)


def draw_legend(c, rect_pt, keys: list[str], pal: dict, words: Words, *, title=True, max_cols=3):
    """The legend: only the given keys, in columns filling *rect_pt* (x, y, w, h)."""
    x, y, w, h = rect_pt
    top = y + h
    if all(k == "utm_inner" for k in keys):  # nothing mapped on the page
        draw_text(c, x, top - 7, words("legend"), BOLD, 7.5)
        draw_text(c, x, top - 19, words("no_data"), ITALIC, 7)
        if not keys:
            return
        top -= 22
        title = False
    if title:
        draw_text(c, x, top - 7, words("legend"), BOLD, 7.5)
        top -= 10
    for size, row_h in ((6.5, 10.5), (6.0, 9.5), (5.6, 8.6), (5.2, 7.8)):
        rows = max(1, int((top - y) // row_h))
        cols = math.ceil(len(keys) / rows)
        if cols <= max_cols:
            break
    cols = min(cols, max_cols)
    col_w = w / cols
    sw = 7.5 * MM if col_w > 30 * MM else 6 * MM
    for i, key in enumerate(keys[: rows * cols]):
        col, row = divmod(i, rows)
        cx = x + col * col_w
        cy = top - (row + 1) * row_h
        if key in symbols.AREA_KEYS:
            symbols.draw_area_swatch(c, key, cx, cy + 1.2, sw, row_h - 3.0, pal)
        elif key in symbols.LINE_KEYS:
            symbols.draw_line_swatch(c, key, cx + 1, cy + row_h / 2 - 0.3, sw - 2, pal)
        elif key in symbols.ICONS:
            s = min(row_h - 1.5, 9)
            symbols.draw_icon(c, key, cx + sw / 2 - s / 2, cy + (row_h - s) / 2, s, pal)
        elif key == "utm_inner":
            c.saveState()
            c.setStrokeColor(colour(GRID))
            c.setLineWidth(0.45)
            c.setDash(*DASH)
            c.line(cx + 1, cy + row_h / 2 - 0.3, cx + sw - 1, cy + row_h / 2 - 0.3)
            c.restoreState()
        elif key == "task":
            c.saveState()
            c.setStrokeColor(colour(pal["task"]))
            c.setLineWidth(1.2)
            c.setDash(7, 3)
            c.rect(cx + 1, cy + 1.5, sw - 2, row_h - 3.5, stroke=1, fill=0)
            c.restoreState()
        label = fit_text(legend_label(key, words), SANS, size, col_w - sw - 5)
        draw_text(c, cx + sw + 3, cy + row_h / 2 - size * 0.33, label, SANS, size)


# -- the map page ------------------------------------------------------------------------------------------


def draw_map_page(c, info: MapPageInfo, pal: dict, words: Words) -> None:
    lay = info.layout
    fx, fy, fw, fh = lay.frame.pt()
    fw, fh = lay.frame_pt
    minx, miny, maxx, maxy = info.box

    def px(x):
        return fx + (x - minx) / (maxx - minx) * fw

    def py(y):
        return fy + (y - miny) / (maxy - miny) * fh

    _header(c, lay, info.title, info.subtitle, info.area_part, info.number, info.total, info.scale, words)

    # UTM grid lines = reference square boundaries (thin), the frame and the arrows to the neighbouring
    # pages: all that is printed over the map body (``mapathon scan`` draws it on its reference too)
    if draw_frame_overlay(c, (fx, fy, fw, fh), info.box, info.grid_step, info.col_edges, info.row_edges,
                          info.neighbours, words):
        # a UTM line too near the frame to bound a square is dashed: the legend says so
        info.legend = info.legend + ["utm_inner"]

    step = info.grid_step
    gx = list(_multiples(minx, maxx, step))
    gy = list(_multiples(miny, maxy, step))
    band = 6 * MM
    lab_top, lab_bottom, lab_left, lab_right = Labels(), Labels(), Labels(), Labels()
    # reference squares: letters across (top and bottom), numbers down (left and right)
    for i in range(len(info.col_edges) - 1):
        a, b = px(info.col_edges[i]), px(info.col_edges[i + 1])
        t = column_label(i)
        for lab, yy in ((lab_top, fy + fh + band * 0.36), (lab_bottom, fy - band * 0.72)):
            draw_text(c, (a + b) / 2, yy, t, BOLD, 8.5, anchor="middle", labels=lab, force=True)
    for j in range(len(info.row_edges) - 1):
        a, b = py(info.row_edges[j]), py(info.row_edges[j + 1])
        t = str(j + 1)
        draw_text(c, fx - band * 0.5, (a + b) / 2 - 3, t, BOLD, 8.5, anchor="middle", labels=lab_left, force=True)
        draw_text(c, fx + fw + band * 0.5, (a + b) / 2 - 3, t, BOLD, 8.5, anchor="middle", labels=lab_right, force=True)

    # UTM grid values: eastings under the frame, northings right of it (in km)
    dec = 0 if step % 1000 == 0 else (1 if step % 100 == 0 else 2)
    for v in gx:
        draw_text(c, px(v), fy - band * 0.72, f"{v / 1000:.{dec}f}", COND, 5.6, fill="#333333", anchor="middle",
                  labels=lab_bottom)
    for v in gy:
        draw_text(c, fx + fw + band * 0.62, py(v), f"{v / 1000:.{dec}f}", COND, 5.6, fill="#333333",
                  anchor="middle", angle=90, labels=lab_right)

    # latitude / longitude ticks on the frame (outwards), labelled on the top and left
    _geo_ticks(c, info, px, py, fx, fy, fw, fh, band, lab_top, lab_left)

    _panel(c, info, pal, words)
    registration.draw_marks(c, lay, words.lang, grayscale=pal == symbols.palette(True))  # for `mapathon scan`


def draw_frame_overlay(c, frame_pt, box, step, col_edges, row_edges, neighbours: dict, words: Words) -> bool:
    """What the page prints over the map body inside its frame (*frame_pt* = x, y, w, h in points;
    *box* = the frame in the map's CRS): the UTM grid lines (solid where they bound a reference
    square, dashed otherwise), the frame's border and the arrows to the *neighbours* ({side: page}).
    True when some grid line is dashed."""
    fx, fy, fw, fh = frame_pt
    minx, miny, maxx, maxy = box

    def px(x):
        return fx + (x - minx) / (maxx - minx) * fw

    def py(y):
        return fy + (y - miny) / (maxy - miny) * fh

    c.saveState()
    c.setStrokeColor(colour(GRID))
    c.setLineWidth(0.45)
    c.setStrokeAlpha(0.75)
    gx = [v for v in _multiples(minx, maxx, step)]
    gy = [v for v in _multiples(miny, maxy, step)]
    edges_x, edges_y = set(col_edges), set(row_edges)
    for v in gx:
        c.setDash(*(() if v in edges_x else DASH))
        c.line(px(v), fy, px(v), fy + fh)
    for v in gy:
        c.setDash(*(() if v in edges_y else DASH))
        c.line(fx, py(v), fx + fw, py(v))
    c.restoreState()
    c.saveState()
    c.setLineWidth(0.9)
    c.setStrokeColor(colour(INK))
    c.rect(fx, fy, fw, fh, stroke=1, fill=0)
    c.restoreState()
    # arrows to the neighbouring pages, just inside the frame
    for side, num in neighbours.items():
        _neighbour_arrow(c, side, num, fx, fy, fw, fh, words)
    return any(v not in edges_x for v in gx) or any(v not in edges_y for v in gy)


def _multiples(lo, hi, step):
    v = math.ceil(lo / step) * step
    while v < hi:
        if v > lo:
            yield v
        v += step


def _geo_ticks(c, info, px, py, fx, fy, fw, fh, band, lab_top, lab_left):
    import numpy as np

    minx, miny, maxx, maxy = info.box
    n = 200
    xs = np.linspace(minx, maxx, n)
    ys = np.linspace(miny, maxy, n)
    lon_t, lat_t = info.to_lonlat(xs, np.full(n, maxy))
    lon_b, _ = info.to_lonlat(xs, np.full(n, miny))
    _, lat_l = info.to_lonlat(np.full(n, minx), ys)
    _, lat_r = info.to_lonlat(np.full(n, maxx), ys)
    span_lon = abs(lon_t[-1] - lon_t[0])
    span_lat = abs(lat_l[-1] - lat_l[0])
    s_lon = tick_step(span_lon, fw / MM)
    s_lat = tick_step(span_lat, fh / MM)
    c.saveState()
    c.setLineWidth(0.6)
    c.setStrokeColor(colour(INK))
    tick = 1.6 * MM

    def crossings(values, coords, step_deg):
        out = []
        k0 = math.floor(min(values) / step_deg)
        k1 = math.ceil(max(values) / step_deg)
        for k in range(k0, k1 + 1):
            target = k * step_deg
            for i in range(len(values) - 1):
                a, b = values[i], values[i + 1]
                if (a - target) * (b - target) <= 0 and a != b:
                    t = (target - a) / (b - a)
                    out.append((target, coords[i] + t * (coords[i + 1] - coords[i])))
                    break
        return out

    for target, x in crossings(lon_t, xs, s_lon / 3600):
        c.line(px(x), fy + fh, px(x), fy + fh + tick)
        draw_text(c, px(x), fy + fh + band * 0.36, dms(target, s_lon, "E", "W"), COND, 5.4, fill="#333333",
                  anchor="middle", labels=lab_top)
    for _, x in crossings(lon_b, xs, s_lon / 3600):
        c.line(px(x), fy, px(x), fy - tick)
    for target, y in crossings(lat_l, ys, s_lat / 3600):
        c.line(fx, py(y), fx - tick, py(y))
        draw_text(c, fx - band * 0.45, py(y), dms(target, s_lat, "N", "S"), COND, 5.4, fill="#333333",
                  anchor="middle", angle=90, labels=lab_left)
    for _, y in crossings(lat_r, ys, s_lat / 3600):
        c.line(fx + fw, py(y), fx + fw + tick, py(y))
    c.restoreState()


def arrow_box(side: str, num: int, fx: float, fy: float, fw: float, fh: float, words: Words):
    """(x, y, w, h) in points of the box pointing to the neighbouring page on *side*.
    The map style keeps its labels out of these boxes (see ``atlas.py``)."""
    tw = text_width(f"{words('p')} {num}", BOLD, 7.5)
    bw, bh = tw + 13, 11.5
    if side == "N":
        return fx + fw / 2 - bw / 2, fy + fh - bh - 1.5, bw, bh
    if side == "S":
        return fx + fw / 2 - bw / 2, fy + 1.5, bw, bh
    if side == "W":
        return fx + 1.5, fy + fh / 2 - bh / 2, bw, bh
    return fx + fw - bw - 1.5, fy + fh / 2 - bh / 2, bw, bh


def _neighbour_arrow(c, side, num, fx, fy, fw, fh, words):
    text = f"{words('p')} {num}"
    size = 7.5
    x, y, bw, bh = arrow_box(side, num, fx, fy, fw, fh, words)
    c.saveState()
    c.setFillColor(colour("#ffffff"))
    c.setStrokeColor(colour(INK))
    c.setLineWidth(0.7)
    c.roundRect(x, y, bw, bh, 2, stroke=1, fill=1)
    # the arrow head
    ax, ay, r = x + 6, y + bh / 2, 3.3
    pts = {"N": [(0, r), (-r, -r * 0.8), (r, -r * 0.8)], "S": [(0, -r), (-r, r * 0.8), (r, r * 0.8)],
           "E": [(r, 0), (-r * 0.8, r), (-r * 0.8, -r)], "W": [(-r, 0), (r * 0.8, r), (r * 0.8, -r)]}[side]
    p = c.beginPath()
    p.moveTo(ax + pts[0][0], ay + pts[0][1])
    for qx, qy in pts[1:]:
        p.lineTo(ax + qx, ay + qy)
    p.close()
    c.setFillColor(colour(INK))
    c.drawPath(p, stroke=0, fill=1)
    c.setFont(BOLD, size)
    c.drawString(x + 11, y + 3.3, text)
    c.restoreState()


def _header(c, lay: PageLayout, title, subtitle, part, number, total, scale, words: Words):
    x, y, w, h = lay.header.pt()
    base = y + 2.4 * MM
    c.saveState()
    title_size = 13
    right = f"{words('page')} {number} / {total}"
    rw = text_width(right, BOLD, 11)
    draw_text(c, x + w, base, right, BOLD, 11, anchor="end")
    if scale:
        sc = f"{words('scale')} 1:{scale}"
        sw = text_width(sc, BOLD, 9)
        draw_text(c, x + w - rw - 5 * MM, base, sc, BOLD, 9, anchor="end")
        rw += sw + 5 * MM
    avail = w - rw - 8 * MM
    t = fit_text(title, BOLD, title_size, avail * 0.6)
    draw_text(c, x, base, t, BOLD, title_size)
    tx = x + text_width(t, BOLD, title_size) + 8
    sub = " — ".join(s for s in (subtitle, part) if s)
    if sub:
        draw_text(c, tx, base, fit_text(sub, SANS, 9, x + avail - tx), SANS, 9, fill="#333333")
    c.setLineWidth(0.6)
    c.setStrokeColor(colour(INK))
    c.line(x, y, x + w, y)
    c.restoreState()


def _panel(c, info: MapPageInfo, pal, words: Words):
    lay = info.layout
    x, y, w, h = lay.panel.pt()
    landscape = lay.orientation == "landscape"
    # the notes area of --notes half
    if lay.notes is not None:
        draw_notes_area(c, lay.notes.pt(), words, info.number)
    credits = [
        info.data_date + " · " + words("print_date", date=info.print_date),
        words("attribution"),
    ]
    utm = words("utm_grid", zone=info.zone, step=info.grid_step)
    qr_size = registration.QR_MM * MM
    if not landscape:
        # bottom line: data and print dates, attribution
        line = "   ·   ".join(credits) + "   ·   " + info.page_id
        draw_text(c, x, y + 1, fit_text(line, SANS, 6, w), SANS, 6, fill="#333333")
        top = y + h
        # scale block, north arrow beside the scale bar
        bw = 58 * MM
        draw_text(c, x, top - 9, f"{words('scale')} 1:{info.scale}", BOLD, 9)
        draw_text(c, x, top - 17, fit_text(words("one_cm", m=f"{info.scale / 100:g}"), SANS, 6.2, bw), SANS, 6.2)
        draw_scale_bar(c, x + 1, top - 30, info.scale, 40 * MM, words)
        draw_north_arrow(c, x + 51 * MM, top - 12.6 * MM, 11 * MM, info.convergence_deg, words)
        yy = top - 44
        notes = _wrap(utm, SANS, 5.8, bw) + _wrap(words("ticks"), SANS, 5.8, bw)
        if info.imagery:
            notes += _wrap(words("imagery_note"), SANS, 5.8, bw)
        if info.tasks:
            notes += _wrap(words("tasks_legend"), SANS, 5.8, bw)
        for line in notes:
            if yy < y + 9:
                break
            draw_text(c, x, yy, line, SANS, 5.8, fill="#333333")
            yy -= 7.2
        # QR code at the right (where mapathon scan looks for its corners: registration.qr_square)
        qx, qy, _ = registration.qr_square(lay)
        draw_qr(c, info.qr_payload, qx, qy, qr_size)
        # legend in between
        lx = x + 61 * MM
        draw_legend(c, (lx, y + 9, qx - lx - 2, h - 9), info.legend, pal, words)
    else:
        top = y + h
        draw_text(c, x, top - 9, f"{words('scale')} 1:{info.scale}", BOLD, 9)
        draw_text(c, x, top - 17, fit_text(words("one_cm", m=f"{info.scale / 100:g}"), SANS, 6.2, w), SANS, 6.2)
        draw_scale_bar(c, x + 1, top - 30, info.scale, min(48 * MM, w - 14 * MM), words)
        draw_north_arrow(c, x + w - 5 * MM, top - 13 * MM, 12 * MM, info.convergence_deg, words)
        yy = top - 41
        for line in _wrap(utm, SANS, 5.8, w) + _wrap(words("ticks"), SANS, 5.8, w):
            draw_text(c, x, yy, line, SANS, 5.8, fill="#333333")
            yy -= 7.5
        if info.imagery:
            draw_text(c, x, yy, words("imagery_note"), SANS, 5.8, fill="#333333")
            yy -= 7.5
        if info.tasks:
            draw_text(c, x, yy, words("tasks_legend"), SANS, 5.8, fill="#333333")
            yy -= 7.5
        bottom_block = qr_size + 30
        draw_legend(c, (x, y + bottom_block, w, yy - 4 - (y + bottom_block)), info.legend, pal, words, max_cols=2)
        draw_qr(c, info.qr_payload, *registration.qr_square(lay))
        yy = y + 20
        for line in _wrap(credits[0], SANS, 5.8, w) + [credits[1], info.page_id]:
            draw_text(c, x, yy, line, SANS, 5.8, fill="#333333")
            yy -= 7.2


def _wrap(text, font, size, width) -> list[str]:
    words_, lines, cur = text.split(), [], ""
    for wd in words_:
        t = (cur + " " + wd).strip()
        if text_width(t, font, size) <= width or not cur:
            cur = t
        else:
            lines.append(cur)
            cur = wd
    if cur:
        lines.append(cur)
    return lines


# -- notes --------------------------------------------------------------------------------------------------


def draw_notes_area(c, rect_pt, words: Words, number: int | None = None, *, title: str | None = None):
    x, y, w, h = rect_pt
    c.saveState()
    draw_text(c, x, y + h - 10, title or words("notes"), BOLD, 9)
    draw_text(c, x, y + h - 22, words("notes_fields"), SANS, 7.5, fill="#333333")
    c.setStrokeColor(colour("#9a9a9a"))
    c.setLineWidth(0.4)
    yy = y + h - 22 - 8 * MM
    while yy > y + 2:
        c.line(x, yy, x + w, yy)
        yy -= 8 * MM
    c.restoreState()


def draw_notes_page(c, lay: PageLayout, words: Words, number: int, total: int, for_page: int, title: str):
    _header(c, lay, words("notes_for", n=for_page), title, "", number, total, 0, words)
    x = 8 * MM
    w = (lay.width - 16) * MM
    top = lay.header.y * MM - 6 * MM
    draw_notes_area(c, (x, 14 * MM, w, top - 14 * MM), words, for_page, title=words("notes"))


# -- cover and index ---------------------------------------------------------------------------------------


@dataclass
class CoverInfo:
    title: str
    subtitle: str
    lines: list[str]
    frame: Rect  # where the key map goes
    contents: list[tuple[str, str]]  # (area, pages)
    total: int
    data_date: str
    print_date: str
    scale_note: str


def cover_layout(paper_w: float, paper_h: float, n_contents: int) -> tuple[Rect, Rect]:
    """(key map frame, contents box) on the cover, in mm."""
    landscape = paper_w > paper_h
    top = paper_h - 8 - 26
    if landscape:
        contents = Rect(paper_w - 8 - 70, 16, 70, top - 16)
        frame = Rect(8, 16, contents.x - 8 - 6, top - 16)
    else:
        rows = min(max(1, math.ceil(n_contents / 3)), 14)
        ch = 10 + rows * 4.2
        contents = Rect(8, 14, paper_w - 16, ch)
        frame = Rect(8, contents.y1 + 6, paper_w - 16, top - contents.y1 - 6)
    return frame, contents


def draw_cover(c, info: CoverInfo, contents_rect: Rect, words: Words, paper_w, paper_h):
    W, H = paper_w * MM, paper_h * MM
    draw_text(c, 8 * MM, H - 16 * MM, fit_text(info.title, BOLD, 20, W - 16 * MM), BOLD, 20)
    draw_text(c, 8 * MM, H - 23 * MM, fit_text(info.subtitle, SANS, 10, W - 16 * MM), SANS, 10, fill="#333333")
    draw_text(c, 8 * MM, H - 29 * MM, fit_text(info.scale_note, SANS, 8, W - 16 * MM), SANS, 8, fill="#333333")
    draw_text(c, W - 8 * MM, H - 16 * MM, f"{words('page')} 1 / {info.total}", BOLD, 11, anchor="end")
    fx, fy, fw, fh = info.frame.pt()
    c.saveState()
    c.setLineWidth(0.9)
    c.rect(fx, fy, fw, fh, stroke=1, fill=0)
    c.restoreState()
    draw_text(c, fx, fy - 9, words("key_map"), SANS, 7, fill="#333333")
    # contents
    x, y, w, h = contents_rect.pt()
    draw_text(c, x, y + h - 9, words("contents"), BOLD, 9)
    landscape = paper_w > paper_h
    cols = 1 if landscape else 3
    col_w = w / cols
    rows = max(1, int((h - 14) // (4.2 * MM)))
    entries = list(info.contents)
    if len(entries) > rows * cols:
        entries = entries[: rows * cols - 1] + [("…", "")]
    for i, (name, pages) in enumerate(entries):
        col, row = divmod(i, rows)
        cx = x + col * col_w
        cy = y + h - 14 - (row + 1) * 4.2 * MM + 3
        pw = text_width(pages, SANS, 7.5)
        draw_text(c, cx, cy, fit_text(name, SANS, 7.5, col_w - pw - 14), SANS, 7.5)
        draw_text(c, cx + col_w - 8, cy, pages, SANS, 7.5, anchor="end")
    line = "   ·   ".join([info.data_date + " · " + words("print_date", date=info.print_date),
                           words("attribution")])
    draw_text(c, 8 * MM, 7 * MM, fit_text(line, SANS, 6.5, W - 16 * MM), SANS, 6.5, fill="#333333")


@dataclass
class IndexEntry:
    section: str  # words key of the section
    name: str  # what is printed first
    detail: str  # kind, or "→ main name"
    ref: str  # "p. 4, B3"
    sort: str


def draw_index_pages(c, entries_by_section: list[tuple[str, list[IndexEntry]]], paper_w, paper_h, words: Words,
                     first_number: int, total: int, title: str, *, dry_run=False) -> int:
    """Lay out the index in columns over as many pages as needed. Returns the number of pages.

    A short index takes two wide columns (three or four when it needs them to fit on one page), so
    that names are not cut; a name too long for its column goes on to the next line."""
    most = 3 if paper_w < 250 else 4
    cols = next((k for k in range(2, most) if _index_pages(None, entries_by_section, paper_w, paper_h, words,
                                                             first_number, total, title, k, True) == 1), most)
    return _index_pages(c, entries_by_section, paper_w, paper_h, words, first_number, total, title, cols, dry_run)


INDEX_SIZE = 7.2


def _index_lines(e: IndexEntry, width: float, ref_w: float) -> list[str]:
    """The lines of one index entry: the first beside its page reference, the rest indented."""
    text = e.name + (f" ({e.detail})" if e.detail and not e.detail.startswith("→") else "")
    if e.detail.startswith("→"):
        text = f"{e.name} {e.detail}"
    lines, cur, avail = [], "", width - ref_w - 6
    for word in text.split():
        t = f"{cur} {word}".strip()
        if not cur or text_width(t, SANS, INDEX_SIZE) <= avail:
            cur = t
        else:
            lines.append(fit_text(cur, SANS, INDEX_SIZE, avail))
            cur, avail = word, width - 8
    lines.append(fit_text(cur, SANS, INDEX_SIZE, avail))
    return lines


def _index_pages(c, entries_by_section, paper_w, paper_h, words: Words, first_number: int, total: int, title: str,
                 cols: int, dry_run: bool) -> int:
    W, H = paper_w * MM, paper_h * MM
    margin = 10 * MM
    gap = 5 * MM
    col_w = (W - 2 * margin - (cols - 1) * gap) / cols
    line_h = 9.6
    top0 = H - 30 * MM
    bottom = 14 * MM
    pages = 1
    col = 0
    yy = top0
    started = False

    def new_page():
        nonlocal pages, col, yy, started
        if started and not dry_run:
            c.showPage()
        pages += 1 if started else 0
        started = True
        col, yy = 0, top0
        if not dry_run:
            n = first_number + pages - 1
            hdr = words("index") if pages == 1 else words("index_cont")
            draw_text(c, margin, H - 16 * MM, hdr, BOLD, 16)
            draw_text(c, margin, H - 22 * MM, fit_text(title, SANS, 9, W - 2 * margin - 40), SANS, 9, fill="#333333")
            draw_text(c, W - margin, H - 16 * MM, f"{words('page')} {n} / {total}", BOLD, 11, anchor="end")
            draw_text(c, margin, H - 26.5 * MM, words("index_help"), SANS, 7, fill="#333333")
            draw_text(c, margin, 7 * MM, words("attribution"), SANS, 6.5, fill="#333333")

    def advance(need=line_h):
        nonlocal col, yy
        if yy - need < bottom:
            col += 1
            yy = top0
            if col >= cols:
                new_page()

    new_page()
    for section, entries in entries_by_section:
        if not entries:
            continue
        advance(line_h * 3)
        yy -= 4
        x = margin + col * (col_w + gap)
        if not dry_run:
            draw_text(c, x, yy, fit_text(words(section), BOLD, 8, col_w), BOLD, 8)
        yy -= line_h + 1
        for e in entries:
            rw = text_width(e.ref, SANS, INDEX_SIZE)
            lines = _index_lines(e, col_w, rw)
            advance(line_h * len(lines))
            x = margin + col * (col_w + gap)
            for i, line in enumerate(lines):
                if not dry_run:
                    draw_text(c, x + (8 if i else 0), yy, line, SANS, INDEX_SIZE)
                    if i == 0:
                        draw_text(c, x + col_w, yy, e.ref, SANS, INDEX_SIZE, anchor="end")
                yy -= line_h
    return pages
