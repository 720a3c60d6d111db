"""Paper, page layout and the grid of pages over an area, in millimetres and UTM metres.

A map page has a title band at the top, the map frame surrounded by a 6 mm band
(reference square labels, coordinate ticks, arrows to the neighbouring pages) and a
panel for the legend, scale, north arrow and QR code: under the map on a portrait
page, on its right on a landscape page. ``--notes half`` gives half of the map's room
to ruled lines.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass, field

from ..errors import MapathonError, UsageMistake

MM = 72 / 25.4  # points per millimetre
PAPERS = {"a4": ("A4", 210.0, 297.0), "a3": ("A3", 297.0, 420.0), "letter": ("Letter", 215.9, 279.4)}
# lengths on the paper, in millimetres
MARGIN = 8.0  # white around the page (printers cannot print to the edge)
HEADER = 9.0  # the title line at the top
BAND = 6.0  # the band around the map that holds the coordinates and the reference square letters
FOOTER = 36.0  # portrait: the panel under the map
SIDE = 64.0  # landscape: the panel right of the map
OVERLAP_MM = 15.0  # neighbouring pages share this much of the map
SQUARE_MM = 40.0  # about the size of a reference square (A, B... across, 1, 2... down)
MIN_FRAME_MM = 60.0  # a smaller map is refused (paper too small for the notes)
PANEL_GAP = 2.0  # landscape: white between the map's coordinate band and the side panel
FOOTER_GAP = 1.0  # portrait: white between the panel under the map and the map's coordinate band
NOTES_GAP = 2.0  # white between the map (with its band) and the notes area of --notes half
MIN_SCALE, MAX_SCALE = 500, 100_000


def parse_scale(text: str | int) -> int:
    """'1:5000', '1/5 000', '5000' -> 5000, within the range the layout can honour."""
    s = str(text).strip().replace(" ", "").replace("\u202f", "").replace("\u00a0", "").replace(",", "")
    m = re.fullmatch(r"(?:1[:/])?(\d+(?:\.\d+)?)", s)
    if not m:
        raise UsageMistake("give it as 1:5000", field="scale", value=text)
    value = float(m.group(1))
    if value != int(value):
        raise UsageMistake("give a whole number, as 1:5000", field="scale", value=text)
    value = int(value)
    if not MIN_SCALE <= value <= MAX_SCALE:
        raise UsageMistake(f"the atlas prints between 1:{MIN_SCALE} and 1:{MAX_SCALE:,}", field="scale", value=text.replace(",", " ")
                            + " (field maps are usually 1:2000 to 1:10000)")
    return value


def paper_size(paper: str, orientation: str) -> tuple[str, float, float]:
    key = paper.strip().lower()
    if key not in PAPERS:
        raise UsageMistake("unknown paper (choose A4, A3 or letter)", field="paper", value=paper)
    o = orientation.strip().lower()
    if o not in ("portrait", "landscape"):
        raise UsageMistake("choose portrait or landscape", field="orientation", value=orientation)
    name, w, h = PAPERS[key]
    return (name, h, w) if o == "landscape" else (name, w, h)


@dataclass(frozen=True)
class Rect:
    x: float  # mm from the left edge of the paper
    y: float  # mm from the bottom edge
    w: float
    h: float

    @property
    def x1(self):
        return self.x + self.w

    @property
    def y1(self):
        return self.y + self.h

    def pt(self):
        return (self.x * MM, self.y * MM, self.w * MM, self.h * MM)


@dataclass(frozen=True)
class PageLayout:
    paper: str
    orientation: str
    width: float  # mm
    height: float
    header: Rect
    frame: Rect  # the map; its size is a whole number of points
    frame_pt: tuple[int, int]
    panel: Rect
    notes: Rect | None
    cols: int  # reference squares across / down
    rows: int

    def ground_size(self, scale: int) -> tuple[float, float]:
        """Metres on the ground covered by the frame."""
        return self.frame_pt[0] / MM * scale / 1000.0, self.frame_pt[1] / MM * scale / 1000.0


def page_layout(paper: str, orientation: str, notes: str | None = None) -> PageLayout:
    name, W, H = paper_size(paper, orientation)
    landscape = W > H
    header = Rect(MARGIN, H - MARGIN - HEADER, W - 2 * MARGIN, HEADER)
    top = header.y - BAND
    if landscape:
        panel = Rect(W - MARGIN - SIDE, MARGIN, SIDE, top + BAND - MARGIN)
        left, right, bottom = MARGIN + BAND, panel.x - BAND - PANEL_GAP, MARGIN + BAND
    else:
        panel = Rect(MARGIN, MARGIN, W - 2 * MARGIN, FOOTER)
        left, right, bottom = MARGIN + BAND, W - MARGIN - BAND, panel.y1 + BAND + FOOTER_GAP
    notes_rect = None
    if notes == "half":
        if landscape:
            avail = right - left
            half = (avail - BAND) / 2
            notes_x = left + half + BAND + NOTES_GAP
            notes_rect = Rect(notes_x, bottom - BAND, right - notes_x + BAND, top - bottom + 2 * BAND)
            right = left + half
        else:
            avail = top - bottom
            half = (avail - BAND) / 2
            notes_rect = Rect(MARGIN, bottom - BAND, W - 2 * MARGIN, half - NOTES_GAP)
            bottom = bottom + half + BAND
    elif notes not in (None, "page"):
        raise UsageMistake("choose half or page", field="notes", value=notes)
    w_mm, h_mm = right - left, top - bottom
    if min(w_mm, h_mm) < MIN_FRAME_MM:
        raise MapathonError(f"--paper {name} {orientation}" + (f" with --notes {notes}" if notes else "")
                            + f": the map would be only {w_mm:.0f} × {h_mm:.0f} mm; use a bigger paper"
                            + (" or --notes page" if notes == "half" else ""))
    wpt, hpt = int(w_mm * MM), int(h_mm * MM)
    fw, fh = wpt / MM, hpt / MM
    frame = Rect(left + (w_mm - fw) / 2, bottom + (h_mm - fh) / 2, fw, fh)
    cols = max(1, round(fw / SQUARE_MM))
    rows = max(1, round(fh / SQUARE_MM))
    return PageLayout(name, "landscape" if landscape else "portrait", W, H, header, frame, (wpt, hpt), panel,
                      notes_rect, cols, rows)


def column_label(i: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = string.ascii_uppercase[r] + s
    return s


# -- pages over an area ---------------------------------------------------------------------------------


@dataclass
class MapPage:
    """One map page: a rectangle of the UTM plane and its place in its area's grid."""

    area: str  # the village (or area) name shown in the title
    area_index: int
    col: int  # position in the area's grid of pages
    row: int
    box: tuple[float, float, float, float]  # UTM metres minx, miny, maxx, maxy
    number: int = 0  # physical page number in the atlas
    neighbours: dict[str, int] = field(default_factory=dict)  # 'N', 'S', 'E', 'W' -> page number
    grid_size: tuple[int, int] = (1, 1)

    @property
    def centre(self):
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


def plan_grid(extent: tuple[float, float, float, float], ground: tuple[float, float], overlap: float,
              keep=None) -> list[tuple[int, int, tuple[float, float, float, float]]]:
    """Pages of *ground* size covering *extent* (UTM), sharing *overlap* metres, centred on it.

    Returns (col, row, box) from the north-west corner, row by row. *keep(box)* may drop
    pages (for scattered tasks).
    """
    gw, gh = ground
    ew, eh = extent[2] - extent[0], extent[3] - extent[1]
    nx = max(1, math.ceil((ew - overlap) / (gw - overlap) - 1e-9))
    ny = max(1, math.ceil((eh - overlap) / (gh - overlap) - 1e-9))
    tw, th = nx * gw - (nx - 1) * overlap, ny * gh - (ny - 1) * overlap
    cx, cy = (extent[0] + extent[2]) / 2, (extent[1] + extent[3]) / 2
    x0, ytop = cx - tw / 2, cy + th / 2
    out = []
    for j in range(ny):
        for i in range(nx):
            minx = x0 + i * (gw - overlap)
            maxy = ytop - j * (gh - overlap)
            box = (minx, maxy - gh, minx + gw, maxy)
            if keep is None or keep(box):
                out.append((i, j, box))
    return out

