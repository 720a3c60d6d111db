"""What a map page prints so that a photo of it can be placed again offline (``mapathon scan``).

* four ArUco markers (OpenCV's DICT_4X4_50, ids 0–3: top-left, top-right, bottom-right,
  bottom-left), black, in the corners of the 6 mm band around the map frame, so they hide nothing
  of the map and survive black-and-white photocopies;
* a strip of the ink colours the field team draws with (patches with their names);
* the QR payload's fields that decoding needs without the project folder.

Positions are paper millimetres from the **top-left** corner of the sheet, y down (as in a photo),
the convention of :mod:`mapathon.scan.page`. The markers are 5 mm: the band around the frame is
6 mm and a marker needs a white gap around it.
"""

from __future__ import annotations

import functools

from .layout import BAND, MM, PageLayout

REGISTRATION_VERSION = 1
ARUCO_DICT = "DICT_4X4_50"
MARK_MM = 5.0  # side of a marker, black border included
MARK_GAP = (BAND - MARK_MM) / 2  # white between a marker and the frame's corner
CORNERS = ("tl", "tr", "br", "bl")  # marker ids 0..3
# the colours the field team is asked to draw with: name -> printed patch colour
INKS = {"red": "#d7191c", "blue": "#1f4fd6", "green": "#1a9641", "black": "#111111"}
INK_NAMES = {"fr": {"red": "rouge", "blue": "bleu", "green": "vert", "black": "noir"},
             "en": {"red": "red", "blue": "blue", "green": "green", "black": "black"}}
PATCH_W, PATCH_H = 5.0, 3.0  # mm


def frame_mm(lay: PageLayout) -> tuple[float, float, float, float]:
    """The map frame (x, y, w, h), mm from the sheet's top-left, y down (w, h are the printed points)."""
    w, h = lay.frame_pt[0] / MM, lay.frame_pt[1] / MM
    return lay.frame.x, lay.height - lay.frame.y - h, w, h


def mark_positions(lay: PageLayout) -> list[tuple[float, float]]:
    """Top-left corner (mm, top-down) of markers 0..3, centred in the band's corner squares."""
    x, y, w, h = frame_mm(lay)
    lo, hi = -BAND + MARK_GAP, MARK_GAP  # the marker's near side is MARK_GAP outside the frame
    return [(x + lo, y + lo), (x + w + hi, y + lo), (x + w + hi, y + h + hi), (x + lo, y + h + hi)]


def strip_rect(lay: PageLayout) -> tuple[float, float, float, float]:
    """Where the ink strip goes (mm, top-down): under the QR code (portrait), right of it (landscape)."""
    n = len(INKS)
    w, h = n * PATCH_W + (n - 1) * 2.0, PATCH_H + 2.6
    p = lay.panel
    if lay.orientation == "landscape":
        x, y_bottom = p.x + 29.0, p.y + 26.0
    else:
        x, y_bottom = p.x + p.w - 27.0 + 1.5, p.y + 3.2
    return x, lay.height - y_bottom - h, w, h


def patch_rects(lay: PageLayout) -> dict[str, tuple[float, float, float, float]]:
    """Each ink patch (x, y, w, h) in mm, top-down."""
    x, y, _, _ = strip_rect(lay)
    return {name: (x + i * (PATCH_W + 2.0), y, PATCH_W, PATCH_H) for i, name in enumerate(INKS)}


QR_MM = 27.0  # side of a map page's QR code, its 4-module quiet zone included


def qr_square(lay: PageLayout) -> tuple[float, float, float]:
    """Where a map page's QR code is drawn: lower-left corner (x, y) and side, in points, y up (ReportLab)."""
    x, y, w, h = lay.panel.pt()
    size = QR_MM * MM
    if lay.orientation == "landscape":
        return x - 4, y + 26, size
    return x + w - size + 4, y + h - size + 3, size


def qr_corners_mm(lay: PageLayout, payload: str) -> list[tuple[float, float]]:
    """The corners of the QR symbol printing *payload* (its own top-left, top-right, bottom-right,
    bottom-left, quiet zone left out: where a reader finds them), mm from the sheet's top-left, y down."""
    from .furniture import qr_matrix

    x, y, size = qr_square(lay)
    m = size / (len(qr_matrix(payload)) + 8)
    left, right = (x + 4 * m) / MM, (x + size - 4 * m) / MM
    top, bottom = lay.height - (y + size - 4 * m) / MM, lay.height - (y + 4 * m) / MM
    return [(left, top), (right, top), (right, bottom), (left, bottom)]


def payload_fields(lay: PageLayout, box, epsg: int, atlas_id: str, grayscale: bool = False) -> dict:
    """What the QR JSON gains for ``mapathon scan`` (compact: mm to 0.01, metres to 0.1). On a
    ``--grayscale`` atlas the ink patches are outlines only (``"inks_outlined": 1``)."""
    return {**({"inks_outlined": 1} if grayscale else {}),"atlas": atlas_id, "reg": REGISTRATION_VERSION, "sheet": [round(lay.width, 2), round(lay.height, 2)],
            "frame_mm": [round(v, 2) for v in frame_mm(lay)], "epsg": int(epsg),
            "box": [round(v, 1) for v in box], "mark_mm": MARK_MM,
            "marks": [[round(a, 2), round(b, 2)] for a, b in mark_positions(lay)],
            "inks": [[n, *[round(v, 2) for v in r]] for n, r in patch_rects(lay).items()]}


@functools.lru_cache(maxsize=8)
def marker_bits(marker_id: int):
    """The marker as a 6×6 boolean grid (True = black), border included."""
    import cv2

    d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, ARUCO_DICT))
    img = cv2.aruco.generateImageMarker(d, marker_id, 6, borderBits=1)
    return tuple(tuple(bool(v < 128) for v in row) for row in img)


def draw_marks(c, lay: PageLayout, lang: str = "en", grayscale: bool = False) -> None:
    """Draw the four markers and the ink strip on a map page (ReportLab canvas, points, y up).
    A ``--grayscale`` atlas holds only greys: its patches are outlines with the colour's name."""
    from reportlab.lib.colors import HexColor

    from . import furniture

    H = lay.height
    c.saveState()
    for mid, (x, y) in enumerate(mark_positions(lay)):
        cell = MARK_MM / 6
        c.setFillColor(HexColor("#ffffff"))
        c.rect((x - MARK_GAP / 2) * MM, (H - y - MARK_MM - MARK_GAP / 2) * MM, (MARK_MM + MARK_GAP) * MM,
               (MARK_MM + MARK_GAP) * MM, stroke=0, fill=1)
        c.setFillColor(HexColor("#000000"))  # one black square, then its white cells: no seams
        c.rect(x * MM, (H - y - MARK_MM) * MM, MARK_MM * MM, MARK_MM * MM, stroke=0, fill=1)
        c.setFillColor(HexColor("#ffffff"))
        p = c.beginPath()
        for r, row in enumerate(marker_bits(mid)):
            for col, black in enumerate(row):
                if not black:
                    p.rect((x + col * cell) * MM, (H - y - (r + 1) * cell) * MM, cell * MM, cell * MM)
        c.drawPath(p, stroke=0, fill=1)
    names = INK_NAMES.get(lang, INK_NAMES["en"])
    for name, (x, y, w, h) in patch_rects(lay).items():
        c.setFillColor(HexColor(INKS[name]))
        c.setStrokeColor(HexColor("#555555"))
        c.setLineWidth(0.4)
        c.rect(x * MM, (H - y - h) * MM, w * MM, h * MM, stroke=int(grayscale), fill=int(not grayscale))
        furniture.draw_text(c, (x + w / 2) * MM, (H - y - h - 2.2) * MM, names[name], furniture.SANS, 4.6,
                            fill="#333333", anchor="middle")
    c.restoreState()
