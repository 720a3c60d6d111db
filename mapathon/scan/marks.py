"""The ink marks on a photographed atlas page, as points, lines and polygons in lon/lat.

A rectified photo of the map frame (:class:`mapathon.scan.page.ScannedPage`) is compared with a
fresh render of the same frame (:func:`mapathon.scan.reference.render_reference`):

1. the render is shifted onto the photo (phase correlation: what is left of the registration
   error is a small translation);
2. the photo is divided by the render, channel by channel: the printed map cancels out and what
   stays is the light on the paper times the ink's colour. The light is smooth, so a wide median
   of that ratio estimates it and dividing by it leaves the ink alone, on white;
3. each pixel is given to the nearest ink colour of the strip (CIE Lab, lightness weighted half,
   since a light or blurred stroke is paler) when it is nearer to that ink than to white;
4. the masks are cleaned (closing, small bits dropped) and each connected piece is classified:
   a small dot, cross or circle is a point (its centre), a closed loop a polygon (the middle of
   the stroke), any other stroke a line (thinned to its centre line, simplified with shapely).

No model, no GPU: OpenCV and numpy. The work is done at about 6 pixels per mm (a pen stroke is
3 to 6 pixels wide there), positions are given back in the photo's pixels.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon, mapping

__all__ = ["Mark", "extract_marks", "scan_marks", "inks", "DEFAULT_INKS", "reference_square", "render_reference",
           "write_marks", "record_marks", "strip_colours_from_photo", "process_page"]

from .reference import render_reference  # noqa: F401  (mapathon scan calls it from here)

# The pens the field team is asked to use, as the atlas prints them on the page's colour strip
# (atlas/registration.py); the strip as photographed calibrates them (strip_colours_from_photo).
try:
    from ..atlas.registration import INKS as _PRINTED_INKS
except ImportError:  # an atlas without the strip
    _PRINTED_INKS = {"red": "#d7191c", "blue": "#1f4fd6", "green": "#1a9641", "black": "#111111"}
DEFAULT_INKS = {k: tuple(int(v.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4)) for k, v in _PRINTED_INKS.items()}

WORK_PX_PER_MM = 6.0
POINT_MAX_MM = 9.0  # a mark smaller than this (dot, cross, small circle) is a point
MIN_AREA_MM2 = 0.8  # ink pieces smaller than this are noise
JOIN_MM = 0.8  # pieces of the same colour closer than this are one mark (a pen that skipped)
CLOSE_MM = 4.0  # a line whose ends are this close is a closed loop
MAX_SHIFT_MM = 4.0
EDGE_MM = 1.5  # ink this close to the frame's edge is not read (the printed border is there)


@dataclass
class Mark:
    """One mark drawn on a page: ``kind`` is point, line or polygon; ``geometry`` in lon/lat;
    ``pixels`` the same geometry in the rectified photo's pixels; ``bbox_px`` (x0, y0, x1, y1)
    the mark's box in those pixels (for the crop of the review page)."""

    kind: str
    colour: str
    geometry: object
    page: str
    square: str | None
    village: str | None
    bbox_px: tuple[int, int, int, int]
    pixels: object = field(repr=False, default=None)
    length_mm: float = 0.0  # lines and polygons: their length on paper

    def as_dict(self) -> dict:
        return {"kind": self.kind, "colour": self.colour, "page": self.page, "square": self.square,
                "village": self.village, "bbox_px": list(self.bbox_px), "geometry": mapping(self.geometry)}


def inks(strip_colours) -> dict[str, tuple[int, int, int]]:
    """The strip's colours as {name: (r, g, b)}: from a mapping, a list of {"name", "rgb"} (the QR
    code's ``strip``) or None (the default pens)."""
    if not strip_colours:
        return dict(DEFAULT_INKS)
    if isinstance(strip_colours, dict):
        items = strip_colours.items()
    else:
        items = [(s["name"], s.get("rgb") or s.get("colour") or s.get("color")) for s in strip_colours]
    out = {}
    for name, rgb in items:
        if isinstance(rgb, str):
            rgb = rgb.lstrip("#")
            rgb = tuple(int(rgb[i:i + 2], 16) for i in (0, 2, 4))
        out[str(name)] = tuple(int(v) for v in rgb[:3])
    return out


def strip_colours_from_photo(page) -> dict[str, tuple[int, int, int]]:
    """The ink patches as photographed, relative to the paper white around them: {name: (r, g, b)}.

    The QR code gives each patch's place on paper (``inks``: [name, x, y, w, h], mm from the sheet's
    top-left, y down); the page's homography finds it in the oriented photo. Empty when the page
    has no photo, no homography or no strip."""
    photo, hom = getattr(page, "photo", None), getattr(page, "homography", None)
    patches = dict(getattr(page, "meta", {}) or {}).get("inks")
    if photo is None or hom is None or not patches or dict(page.meta).get("inks_outlined"):
        return {}  # (a --grayscale atlas prints the patches as outlines: nothing to measure)
    img = np.asarray(photo)

    def sample(xs, ys):
        cols, rows = page.mm_to_photo(np.asarray(xs, float), np.asarray(ys, float))
        c = np.clip(np.round(cols).astype(int), 0, img.shape[1] - 1)
        r = np.clip(np.round(rows).astype(int), 0, img.shape[0] - 1)
        return np.median(img[r, c].reshape(-1, 3).astype(np.float32), axis=0)

    out, whites, cols = {}, [], {}
    for name, x, y, w, h in patches:
        gx, gy = np.meshgrid(np.linspace(x + 0.25 * w, x + 0.75 * w, 5), np.linspace(y + 0.25 * h, y + 0.75 * h, 4))
        cols[name] = sample(gx.ravel(), gy.ravel())
        # the paper just above the patch and in the gap to its right
        wx = np.r_[np.linspace(x + 0.2 * w, x + 0.8 * w, 4), np.full(3, x + w + 1.0)]
        wy = np.r_[np.full(4, y - 0.9), np.linspace(y + 0.3 * h, y + 0.7 * h, 3)]
        whites.append(sample(wx, wy))
    white = np.max(np.stack(whites), axis=0)
    if white.min() < 60:  # no white paper where it should be: do not trust the strip
        return {}
    for name, c in cols.items():
        out[str(name)] = tuple(int(v) for v in np.clip(c / white * 255, 0, 255))
    return out


def reference_square(meta: dict, x: float, y: float, box) -> str | None:
    """The atlas's reference square ('B3') of a point (x, y in the map's CRS) on a page whose map
    frame is *box*, as the printed page labels it (the atlas's own square edges)."""
    from ..atlas import furniture

    scale = meta.get("scale")
    if not scale:
        return None
    step = furniture.grid_step_for(int(scale))
    min_part = furniture.MIN_SQUARE_MM * int(scale) / 1000.0
    minx, miny, maxx, maxy = box
    cols = furniture.square_edges(minx, maxx, step, min_part)
    rows = list(reversed(furniture.square_edges(miny, maxy, step, min_part)))
    return furniture.square_of(x, y, cols, rows)


# -- image steps -------------------------------------------------------------------------------------


def _lab(rgb01: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.clip(rgb01, 0, 1).astype(np.float32), cv2.COLOR_RGB2Lab)


def _align(photo: np.ndarray, ref: np.ndarray, max_shift: float) -> np.ndarray:
    """*ref* warped onto *photo*: a translation by phase correlation of the grey images, then an
    affine refinement by ECC at half resolution (what the registration left: a fraction of a
    degree, a few tenths of a percent of scale)."""
    import cv2

    h = 0.5  # both steps at half the working resolution (3 px/mm)
    sa = cv2.resize(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY), None, fx=h, fy=h, interpolation=cv2.INTER_AREA)
    sb = cv2.resize(cv2.cvtColor(ref, cv2.COLOR_RGB2GRAY), None, fx=h, fy=h, interpolation=cv2.INTER_AREA)
    sa, sb = sa.astype(np.float32), sb.astype(np.float32)
    win = cv2.createHanningWindow((sa.shape[1], sa.shape[0]), cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(sb, sa, win)
    dx, dy = dx / h, dy / h
    if abs(dx) > max_shift or abs(dy) > max_shift:
        dx = dy = 0.0
    # W maps the photo's pixels to the reference's: reference(W @ (x, y, 1)) = photo(x, y)
    m = np.float32([[1, 0, -dx], [0, 1, -dy]])
    sa, sb = cv2.GaussianBlur(sa, (0, 0), 1.0), cv2.GaussianBlur(sb, (0, 0), 1.0)
    warp = np.float32([[1, 0, -dx * h], [0, 1, -dy * h]])
    try:
        _, warp = cv2.findTransformECC(sa, sb, warp, cv2.MOTION_AFFINE,
                                       (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 60, 1e-5), None, 1)
        cand = warp.copy()
        cand[:, 2] /= h
        # keep it only when it stays a small correction
        if abs(cand[0, 0] - 1) < 0.02 and abs(cand[1, 1] - 1) < 0.02 and abs(cand[0, 1]) < 0.02 \
                and abs(cand[1, 0]) < 0.02 and abs(cand[0, 2]) < max_shift and abs(cand[1, 2]) < max_shift:
            m = cand
    except cv2.error:  # no convergence: the translation alone
        pass
    return cv2.warpAffine(ref, m, (ref.shape[1], ref.shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


TILE_MM = 24.0  # local alignment: tiles of this size, half overlapping
MAX_LOCAL_MM = 2.5


def _align_locally(photo: np.ndarray, ref: np.ndarray, ppm: float, tile_mm: float) -> np.ndarray:
    """*ref* bent onto *photo* where the paper was not flat: a translation per tile (phase
    correlation at 3 px/mm; the ink is too small a part of a tile to move it), the field of
    translations smoothed (median, then bicubic) and applied with a remap."""
    import cv2

    h = 0.5
    a = cv2.resize(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY), None, fx=h, fy=h, interpolation=cv2.INTER_AREA)
    b = cv2.resize(cv2.cvtColor(ref, cv2.COLOR_RGB2GRAY), None, fx=h, fy=h, interpolation=cv2.INTER_AREA)
    a, b = a.astype(np.float32), b.astype(np.float32)
    t = int(tile_mm * ppm * h)
    step = t // 2
    H, W = a.shape
    if H < t or W < t:
        return ref
    ys = list(range(0, H - t + 1, step))
    xs = list(range(0, W - t + 1, step))
    win = cv2.createHanningWindow((t, t), cv2.CV_32F)
    grid = np.full((len(ys), len(xs), 2), np.nan, np.float32)
    lim = MAX_LOCAL_MM * ppm * h
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            tb = b[y:y + t, x:x + t]
            if tb.std() < 6:  # blank paper: nothing to align on
                continue
            (dx, dy), resp = cv2.phaseCorrelate(tb, a[y:y + t, x:x + t], win)
            if resp > 0.08 and abs(dx) < lim and abs(dy) < lim:
                grid[i, j] = (dx, dy)
    ok = ~np.isnan(grid[..., 0])
    if ok.sum() < 4:
        return ref
    fill = np.nanmedian(grid.reshape(-1, 2), axis=0)
    grid[~ok] = fill
    grid = np.dstack([cv2.medianBlur(np.ascontiguousarray(grid[..., c]), 3) for c in range(2)])
    # tile centres -> every pixel of the working image (in working pixels)
    full_h, full_w = ref.shape[:2]
    field = cv2.resize(grid, (len(xs) * 4, len(ys) * 4), interpolation=cv2.INTER_CUBIC)
    cy0, cx0 = (t / 2) / h, (t / 2) / h  # first tile centre, working pixels
    gy = (np.arange(full_h, dtype=np.float32) - cy0) / (step / h) * 4 + 1.5
    gx = (np.arange(full_w, dtype=np.float32) - cx0) / (step / h) * 4 + 1.5
    mx, my = np.meshgrid(np.clip(gx, 0, field.shape[1] - 1), np.clip(gy, 0, field.shape[0] - 1))
    d = cv2.remap(field, mx, my, cv2.INTER_LINEAR) / h
    yy, xx = np.mgrid[0:full_h, 0:full_w].astype(np.float32)
    # the map at photo (x, y) is the reference's at (x - dx, y - dy)
    return cv2.remap(ref, xx - d[..., 0], yy - d[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def ink_ratio(photo: np.ndarray, ref: np.ndarray, ppm: float) -> tuple[np.ndarray, np.ndarray]:
    """The photo divided by the printed map and by the light: about 1 (white) where nothing was
    drawn, the ink's colour where it was. Also the mask of pixels where the print is too dark to
    see ink on (black text, thick lines)."""
    import cv2

    ref = _align(photo, ref, MAX_SHIFT_MM * ppm)
    ref = _align_locally(photo, ref, ppm, TILE_MM)
    ref = _align_locally(photo, ref, ppm, TILE_MM / 2)
    ref_f = cv2.GaussianBlur(ref, (0, 0), 0.6).astype(np.float32)
    # the darkest print within a pixel or two: a stroke of the map shifted by a pixel is no ink
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
    ref_min = cv2.erode(ref_f, k)
    dark = ref_min.mean(axis=2) < 70
    ratio = photo.astype(np.float32) / np.maximum(ref_min, 40.0)
    # the light: a wide median of the ratio (the ink is too sparse to move it)
    f = 8
    small = cv2.resize(np.clip(ratio * 100, 0, 255).astype(np.uint8),
                       (max(1, ratio.shape[1] // f), max(1, ratio.shape[0] // f)), interpolation=cv2.INTER_AREA)
    kk = int(12 * ppm / f) | 1
    light = np.dstack([cv2.medianBlur(small[..., c], max(3, min(kk, 255))) for c in range(3)])
    light = cv2.GaussianBlur(light, (0, 0), 2)
    light = cv2.resize(light, (ratio.shape[1], ratio.shape[0]), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 100
    ratio /= np.maximum(light, 0.2)
    ratio[dark] = 1.0
    # the frame's printed border, wherever a bent page moved it: no mark is read that close to the edge
    e = int(round(EDGE_MM * ppm))
    ratio[:e], ratio[-e:], ratio[:, :e], ratio[:, -e:] = 1.0, 1.0, 1.0, 1.0
    return np.clip(ratio, 0, 1), dark


def colour_masks(ratio: np.ndarray, colours: dict[str, tuple[int, int, int]]) -> dict[str, np.ndarray]:
    """One boolean mask per ink: pixels nearer to that ink than to white and to the other inks
    (distances in Lab, lightness weighted half), and at least a third of the way from white to it."""
    lab = _lab(ratio).reshape(-1, 3)
    w = np.array([0.5, 1.0, 1.0], np.float32)
    white = np.array([100.0, 0, 0], np.float32)
    names = list(colours)
    ink_lab = np.array([_lab(np.array([[c]], np.float32) / 255.0)[0, 0] for c in colours.values()], np.float32)
    spans = np.sqrt((((ink_lab - white) * w) ** 2).sum(axis=1))
    d_white2 = ((lab[:, 0] - 100.0) * 0.5) ** 2 + lab[:, 1] ** 2 + lab[:, 2] ** 2
    # only the pixels far enough from white can be ink (a few per cent of the page): look at those
    idx = np.flatnonzero(d_white2 > (0.35 * spans.min()) ** 2)
    sub = lab[idx] * w
    d_white = np.sqrt(d_white2[idx])
    dists = np.sqrt(((sub[:, None, :] - (ink_lab * w)[None, :, :]) ** 2).sum(axis=2))
    best = dists.argmin(axis=1)
    dmin = dists[np.arange(len(idx)), best]
    out = {}
    for i, name in enumerate(names):
        keep = (best == i) & (dmin < d_white) & (d_white > 0.35 * spans[i]) & (dmin < 0.65 * spans[i])
        m = np.zeros(ratio.shape[0] * ratio.shape[1], bool)
        m[idx[keep]] = True
        out[name] = m.reshape(ratio.shape[:2])
    return out


def _clean(mask: np.ndarray, ppm: float) -> np.ndarray:
    import cv2

    m = mask.astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, k)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    return m


# -- shapes ------------------------------------------------------------------------------------------


def _thin(img: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a 0/1 image (OpenCV's ximgproc when the contrib build is there)."""
    import cv2

    if hasattr(cv2, "ximgproc"):
        return (cv2.ximgproc.thinning(img.astype(np.uint8) * 255) > 0).astype(np.uint8)
    im = np.pad(img.astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            p2, p3, p4 = im[:-2, 1:-1], im[:-2, 2:], im[1:-1, 2:]
            p5, p6, p7 = im[2:, 2:], im[2:, 1:-1], im[2:, :-2]
            p8, p9 = im[1:-1, :-2], im[:-2, :-2]
            nb = [p2, p3, p4, p5, p6, p7, p8, p9]
            b = sum(n.astype(np.int32) for n in nb)
            a = sum(((nb[i] == 0) & (nb[(i + 1) % 8] == 1)).astype(np.int32) for i in range(8))
            c = im[1:-1, 1:-1] == 1
            if step == 0:
                cond = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                cond = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            rm = c & (b >= 2) & (b <= 6) & (a == 1) & cond
            if rm.any():
                im[1:-1, 1:-1][rm] = 0
                changed = True
        if not changed:
            return im[1:-1, 1:-1]


def _longest_path(skel: np.ndarray) -> list[tuple[int, int]]:
    """The longest path (in steps) through a thinned stroke: (row, col) pixels."""
    pts = set(zip(*np.nonzero(skel)))
    if not pts:
        return []
    nbrs = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]

    def bfs(start):
        prev = {start: None}
        q = deque([start])
        last = start
        while q:
            p = q.popleft()
            last = p
            for dr, dc in nbrs:
                n = (p[0] + dr, p[1] + dc)
                if n in pts and n not in prev:
                    prev[n] = p
                    q.append(n)
        return last, prev

    a, _ = bfs(next(iter(pts)))
    b, prev = bfs(a)
    path = []
    p = b
    while p is not None:
        path.append(p)
        p = prev[p]
    return path


def _extend(pts: np.ndarray, mask: np.ndarray, half_w: float) -> np.ndarray:
    """*pts* (x, y pixel centres along a stroke) with its last point moved on to the end of the ink."""
    if len(pts) < 3:
        return pts
    end = pts[-1]
    d = end - pts[max(0, len(pts) - 8)]
    n = np.hypot(*d)
    if n == 0:
        return pts
    d /= n
    t, step = 0.0, 0.5
    while True:
        x, y = end + d * (t + step) - 0.5
        r, c = int(round(y)), int(round(x))
        if not (0 <= r < mask.shape[0] and 0 <= c < mask.shape[1]) or not mask[r, c]:
            break
        t += step
    t = max(0.0, t - half_w + 0.5)
    out = pts.copy()
    out[-1] = end + d * t
    return out


def _shape(comp: np.ndarray, ppm: float):
    """(kind, shapely geometry in the crop's pixels) of one connected piece of ink."""
    import cv2

    u8 = comp.astype(np.uint8)
    contours, hier = cv2.findContours(u8, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    outer = max((c for i, c in enumerate(contours) if hier[0][i][3] < 0), key=cv2.contourArea)
    holes = [c for i, c in enumerate(contours) if hier[0][i][3] >= 0 and cv2.contourArea(c) > (1.2 * ppm) ** 2]
    (_, _), (rw, rh), _ = cv2.minAreaRect(outer)
    extent_mm = max(rw, rh) / ppm
    ink_area = float(u8.sum())
    if holes:
        hole = max(holes, key=cv2.contourArea)
        hp = Polygon(hole[:, 0, :].astype(float) + 0.5)
        if extent_mm < POINT_MAX_MM:
            c = hp.centroid
            return "point", Point(c.x, c.y)
        perim = cv2.arcLength(outer, True) + cv2.arcLength(hole, True)
        half_w = ink_area / max(perim, 1.0) / 2
        poly = hp.buffer(half_w, join_style="mitre").simplify(0.5 * ppm)
        return "polygon", poly
    if extent_mm < POINT_MAX_MM:
        m = cv2.moments(u8, binaryImage=True)
        return "point", Point(m["m10"] / m["m00"] + 0.5, m["m01"] / m["m00"] + 0.5)
    path = _longest_path(_thin(u8))
    if len(path) < 2:
        m = cv2.moments(u8, binaryImage=True)
        return "point", Point(m["m10"] / m["m00"] + 0.5, m["m01"] / m["m00"] + 0.5)
    pts = np.array([(c + 0.5, r + 0.5) for r, c in path], float)
    # thinning shortens a stroke's ends (a diagonal stroke two pixels wide can lose millimetres):
    # carry each end on along its direction to the end of the ink, less half the stroke's width
    half_w = ink_area / max(len(path), 1) / 2
    pts = _extend(_extend(pts[::-1], u8, half_w)[::-1], u8, half_w)
    line = LineString(pts).simplify(0.4 * ppm)
    (x0, y0), (x1, y1) = line.coords[0], line.coords[-1]
    if np.hypot(x1 - x0, y1 - y0) < CLOSE_MM * ppm and line.length > 4 * CLOSE_MM * ppm:
        poly = Polygon(line.coords)
        if poly.is_valid and poly.area > 0:
            return "polygon", poly
    return "line", line


# -- the whole page ----------------------------------------------------------------------------------


def extract_marks(page, reference: np.ndarray, strip_colours=None, ignore: np.ndarray | None = None) -> list[Mark]:
    """The marks drawn on *page* (a ScannedPage) in the colours of *strip_colours*, found by
    comparing its rectified photo with *reference* (render_reference of the same page). No mark is
    looked for where the boolean mask *ignore* (the rectified photo's grid) is true."""
    import cv2

    photo = np.asarray(page.rectified)
    H, W = photo.shape[:2]
    ppm0 = float(page.px_per_mm)
    s = min(1.0, WORK_PX_PER_MM / ppm0)
    ppm = ppm0 * s
    size = (max(1, int(round(W * s))), max(1, int(round(H * s))))
    ph = cv2.resize(photo, size, interpolation=cv2.INTER_AREA) if s < 1 else photo
    if reference is None:  # no data to render the page from: the photo alone, on white paper
        reference = np.full_like(ph, 255)
    ref = np.asarray(reference)
    if ref.shape[:2] != ph.shape[:2]:
        ref = cv2.resize(ref, size, interpolation=cv2.INTER_AREA)
    colours = inks(strip_colours)
    colours.update({k: v for k, v in strip_colours_from_photo(page).items() if k in colours})
    ratio, dark = ink_ratio(ph, ref, ppm)
    if ignore is not None:  # printed but not on the reference (reference.unprinted_mask)
        ratio[cv2.resize(np.asarray(ignore, np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0] = 1.0
    masks = colour_masks(ratio, colours)
    # where the print is too dark to see ink on (a black track, text), a stroke that crosses it is
    # cut: the dark pixels next to the stroke's ink are taken as ink
    bridge = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(1.5 * ppm) | 1,) * 2)
    dark_u8 = cv2.dilate(dark.astype(np.uint8), np.ones((3, 3), np.uint8))
    # and where another ink was drawn over it (the loop that crosses a line): the other ink's pixels
    # next to the stroke are taken as its own too (they stay the other ink's as well)
    inked = {name: m.astype(np.uint8) for name, m in masks.items()}
    # two inks drawn over each other darken (blue over green reads black): a pixel of the darkest ink
    # next to two other inks is theirs, not a mark of its own
    darkest = min(colours, key=lambda k: sum(colours[k]))
    if len(inked) > 2 and darkest in inked:
        n_near = sum((cv2.dilate(m, bridge) > 0).astype(np.uint8) for o, m in inked.items() if o != darkest)
        mixed = inked[darkest] & (n_near >= 2).astype(np.uint8)
    else:
        mixed = None
    for name, m in inked.items():
        others = np.zeros_like(m)
        for other, om in inked.items():
            if other != name:
                others |= om
        if mixed is not None and name == darkest:
            m = m & (1 - mixed)
        masks[name] = (m > 0) | ((cv2.dilate(m, bridge) & (dark_u8 | others)) > 0)
    meta = dict(getattr(page, "meta", {}) or {})
    page_id = str(meta.get("page", "?"))
    village = meta.get("village") or meta.get("area")
    corners = getattr(page, "frame_corners_crs", None)
    box = None
    if corners is not None:
        xs, ys = [float(c[0]) for c in corners], [float(c[1]) for c in corners]
        box = (min(xs), min(ys), max(xs), max(ys))
    jk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(JOIN_MM * ppm) | 1,) * 2)
    min_area = MIN_AREA_MM2 * ppm * ppm
    marks: list[Mark] = []
    for name, mask in masks.items():
        m = _clean(mask, ppm)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(cv2.dilate(m, jk), connectivity=8)
        for i in range(1, n):
            x, y, w, h, _ = stats[i]
            comp = (labels[y:y + h, x:x + w] == i) & (m[y:y + h, x:x + w] > 0)
            if comp.sum() < min_area:
                continue
            # the joined piece, sealed (a pen that skipped), padded for the contours
            sealed = cv2.morphologyEx(np.pad(comp.astype(np.uint8), 2), cv2.MORPH_CLOSE, jk)
            kind, geom = _shape(sealed, ppm)
            off = (x - 2, y - 2)
            geom_px = shapely.transform(geom, lambda c: (c + np.array(off)) / s)
            lonlat = shapely.transform(geom_px, lambda c: np.column_stack(page.pixel_to_lonlat(c[:, 0], c[:, 1])))
            square = None
            if box is not None:
                cx, cy = page.pixel_to_crs(*_inside(geom_px))
                square = reference_square(meta, cx, cy, box)
            bb = (int(x / s), int(y / s), int(np.ceil((x + w) / s)), int(np.ceil((y + h) / s)))
            length = geom_px.length / ppm0 if kind != "point" else 0.0
            marks.append(Mark(kind, name, lonlat, page_id, square, village, bb, geom_px, length))
    marks.sort(key=lambda k: (k.bbox_px[1], k.bbox_px[0]))
    return marks


def _inside(geom) -> tuple[float, float]:
    p = geom if geom.geom_type == "Point" else geom.representative_point() if geom.geom_type == "Polygon" \
        else geom.interpolate(0.5, normalized=True)
    return p.x, p.y


def scan_marks(page, data_file_or_project, strip_colours=None) -> list[Mark]:
    """Render the page's reference from the project's data and extract its marks."""
    from .reference import render_reference

    meta = dict(page.meta)
    meta = _with_frame(meta, page)
    ref = render_reference(meta, data_file_or_project, page.px_per_mm)
    return extract_marks(page, ref, strip_colours, ignore=_ignore(meta, page, ref))


def write_marks(page, marks: list[Mark], out_dir, *, lang: str | None = None, brought_by: str | None = None) -> list:
    """The review files of one page in *out_dir*: <page>-marks.osm (JOSM, never uploaded),
    <page>-marks.geojson and <page>-marks.html (see mapathon.scan.review)."""
    from .review import write_review

    stem = f"{dict(page.meta).get('page') or 'page'}-marks"
    files = write_review(out_dir, [(page, marks)], lang=lang, brought_by=brought_by, stem=stem)
    return [files.josm, files.geojson, files.html]


def process_page(page, project, out_dir, *, brought_by: str | None = None, lang: str | None = None,
                 strip_colours=None, record: bool = True, reference_dir=None) -> tuple[list[Mark], list]:
    """Everything ``mapathon scan`` does with the marks of one placed page: render its reference
    from the project's data (kept in *reference_dir* for the next photo of the page, see
    ``reference.kept_reference``), extract the marks, write the review files (in the project's
    language) and, with a project and *record*, keep them (``record_marks``: who brought the page is
    credited). A process of ``mapathon scan`` other than the main one leaves *record* to it."""
    from ..errors import MapathonError
    from .reference import kept_reference

    if project is None:  # nothing to tell the printed map from the ink: no marks rather than false ones
        return [], []
    meta = _with_frame(dict(page.meta), page)
    try:
        ref = kept_reference(meta, project, page.px_per_mm, reference_dir)
    except MapathonError:  # no merged data yet: the photo alone (the map's own colours may pass for ink)
        ref = None
    found = extract_marks(page, ref, strip_colours, ignore=_ignore(meta, page, ref))
    # each mark's village: the project's village it lies in, else the page's (the review files say it)
    villages = _villages(project)
    for m in found:
        m.village = _village_of(m.geometry, villages) or m.village
    if project is not None:
        from ..i18n import resolve_lang

        lang = resolve_lang(project, lang)
    files = write_marks(page, found, out_dir, lang=lang, brought_by=brought_by)
    if record:
        record_marks(project, page, found, brought_by=brought_by)
    return found, files


def _ignore(meta: dict, page, ref) -> np.ndarray | None:
    """What the page prints that its reference lacks (reference.unprinted_mask), on the photo's grid."""
    if ref is None:
        return None
    from ..errors import MapathonError
    from .reference import unprinted_mask

    try:
        return unprinted_mask(meta, np.asarray(page.rectified).shape)
    except MapathonError:
        return None


def _with_frame(meta: dict, page) -> dict:
    """The QR JSON completed with what the scanned page knows of its frame (CRS, corners, size)."""
    out = dict(meta)
    corners = getattr(page, "frame_corners_crs", None)
    if corners is not None and "frame_crs" not in out:
        xs, ys = [float(c[0]) for c in corners], [float(c[1]) for c in corners]
        out["frame_crs"] = [min(xs), min(ys), max(xs), max(ys)]
    crs = getattr(page, "crs", None)
    if crs is not None and "epsg" not in out:
        out["epsg"] = crs
    fm = getattr(page, "frame_mm", None)
    if fm is not None and "frame_mm" not in out:
        out["frame_mm"] = list(fm)
    return out


# -- the project's record of marks (table ``marks``) -------------------------------------------------


def _village_of(geom, villages) -> str | None:
    p = Point(*_inside(geom))
    for name, area in villages:
        if area.covers(p):
            return name
    return None


def _villages(project) -> list:
    return [(v["name"], shapely.from_wkb(v["geom"])) for v in project.villages()]


def record_marks(project, page, marks: list[Mark], *, brought_by: str | None = None, now=None) -> int:
    """Keep *marks* in the project: a new photo of a page replaces that page's marks (all in one
    transaction). Each mark is counted in the village it lies in (else the page's)."""
    from .. import events
    from ..store import transaction

    page_id = str(dict(page.meta).get("page", "?"))
    villages = _villages(project)
    stamp = events.iso(now or events.utcnow())
    src = getattr(page, "source", None)
    src = str(getattr(src, "name", src)) if src is not None else None
    rows = [(page_id, _village_of(m.geometry, villages) or m.village, m.kind, m.colour, m.square,
             shapely.to_wkb(m.geometry), brought_by, src, stamp) for m in marks]
    with transaction(project.conn):
        project.conn.execute("DELETE FROM marks WHERE page = ?", (page_id,))
        if rows:
            project.conn.executemany(
                "INSERT INTO marks (page, village, kind, colour, square, geom, brought_by, source, scanned) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


def marks_per_village(conn) -> dict[str | None, int]:
    """How many marks the paper pages brought back, per village (None: outside the villages)."""
    return {v: n for v, n in conn.execute("SELECT village, COUNT(*) FROM marks GROUP BY village")}


def field_team(conn) -> list[dict]:
    """Who brought pages back: pages and marks per person, and their villages (the report credits
    the field team). A page brought by nobody named is under None."""
    team: dict[str, dict] = {}
    for who, page, village, n in conn.execute(
            "SELECT COALESCE(brought_by, ''), page, village, COUNT(*) FROM marks GROUP BY COALESCE(brought_by, ''), "
            "page, village"):
        t = team.setdefault(who, {"name": who or None, "pages": set(), "marks": 0, "villages": set()})
        t["pages"].add(page)
        t["marks"] += n
        if village:
            t["villages"].add(village)
    out = [{"name": t["name"], "pages": len(t["pages"]), "marks": t["marks"],
            "villages": ", ".join(sorted(t["villages"]))} for t in team.values()]
    return sorted(out, key=lambda t: (-t["marks"], t["name"] or ""))
