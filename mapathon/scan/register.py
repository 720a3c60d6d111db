"""Find an atlas page in a photo or scan, and place it: QR code, ArUco marks, homography, quality gate.

Everything is found on a reduced copy (long side ``FIND_PX``) and refined on the full-resolution
image (sub-pixel marker corners); the full-resolution image is warped once into the map frame at
``page.PX_PER_MM``. Refusals are :class:`ScanRefused`: one line saying what is wrong and what to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ..atlas import registration as reg
from ..errors import MapathonError
from .page import PX_PER_MM, ScannedPage

FIND_PX = 2000  # long side of the copy things are looked for on
MAX_RESIDUAL_MM = 2.0  # a photo placed worse than this is refused
SEARCH_PAD_MM = 4.0  # margin around the frame rectified to measure its border lines on bent paper
QR_WEIGHT = 20  # a mark's corner counts this many times a QR code corner in the fit with a hidden mark
MIN_SHARPNESS = 12.0  # variance of the Laplacian of the rectified frame (0.1 mm pixels) below which it is blurry


class ScanRefused(MapathonError):
    """A photo that cannot be placed; the message says why and what to do."""

    exit_code = 4


# -- reading images -----------------------------------------------------------------------------------------


def to_gray(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def reduced(gray: np.ndarray, long_side: int = FIND_PX) -> tuple[np.ndarray, float]:
    """A copy with its long side at most *long_side* pixels, and the factor (full px = small px × f)."""
    import cv2

    f = max(gray.shape) / long_side
    if f <= 1:
        return gray, 1.0
    small = cv2.resize(gray, (round(gray.shape[1] / f), round(gray.shape[0] / f)), interpolation=cv2.INTER_AREA)
    return small, gray.shape[1] / small.shape[1]


# -- QR code ------------------------------------------------------------------------------------------------


def _qr_variants(gray: np.ndarray):
    """(image, factor: full px = image px × factor) to look for the QR code on, the likeliest first."""
    import cv2

    yield gray, 1.0
    small, f = reduced(gray, 2400)
    if small is not gray:
        yield small, f
    clahe = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8))
    yield clahe.apply(small), f
    yield cv2.adaptiveThreshold(small, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, 51, 10), f
    half, f = reduced(gray, 1400)
    yield half, f
    yield cv2.adaptiveThreshold(half, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, 31, 8), f


@dataclass
class QrCode:
    """A mapathon QR code found in a photo: its payload (decoded JSON and text) and the symbol's corners
    in full-resolution pixels (its own top-left, top-right, bottom-right, bottom-left)."""

    meta: dict
    text: str
    corners: np.ndarray


def find_qr(gray: np.ndarray) -> list[QrCode]:
    """The distinct mapathon QR codes found in the image (several scales and contrast enhancements)."""
    import zxingcpp

    found: dict[str, QrCode] = {}
    for img, f in _qr_variants(gray):
        try:
            codes = zxingcpp.read_barcodes(img, formats=zxingcpp.BarcodeFormat.QRCode, try_rotate=True,
                                           try_downscale=True)
        except TypeError:  # older zxing-cpp without some keywords
            codes = zxingcpp.read_barcodes(img)
        for code in codes:
            try:
                meta = json.loads(code.text)
            except ValueError:
                continue
            if isinstance(meta, dict) and "mapathon" in meta and "page" in meta:
                p = code.position
                corners = np.array([[q.x, q.y] for q in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)],
                                   np.float64) * f
                found.setdefault(str(meta["page"]), QrCode(meta, code.text, corners))
        if found:
            break
    return list(found.values())


def read_qr(gray: np.ndarray) -> list[dict]:
    """The distinct mapathon payloads found in the image."""
    return [q.meta for q in find_qr(gray)]


def qr_paper_points(qr: QrCode) -> np.ndarray | None:
    """The QR symbol's corners on paper (mm, top-left origin, y down), in the order of ``qr.corners``;
    None when the page layout its payload names does not give its sheet and frame (another printer)."""
    from ..atlas import layout

    meta = qr.meta
    try:
        lay = layout.page_layout(str(meta.get("paper", "A4")), str(meta.get("orientation", "portrait")))
    except MapathonError:
        return None
    if not (np.allclose(reg.frame_mm(lay), meta["frame_mm"], atol=0.05)
            and np.allclose((lay.width, lay.height), meta.get("sheet", (0, 0)), atol=0.05)):
        return None
    return np.array(reg.qr_corners_mm(lay, qr.text), np.float64)


# -- ArUco marks --------------------------------------------------------------------------------------------


def _detector():
    import cv2

    d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, reg.ARUCO_DICT))
    p = cv2.aruco.DetectorParameters()
    p.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    p.cornerRefinementWinSize = 2  # the header line is 0.5 mm above the top marks
    p.adaptiveThreshWinSizeMax = 53
    p.minMarkerPerimeterRate = 0.01
    return cv2.aruco.ArucoDetector(d, p)


def find_marks(gray: np.ndarray) -> dict[int, list[np.ndarray]]:
    """Marker id -> list of 4×2 corner arrays (full-resolution px, sub-pixel), ids 0..3 only."""
    import cv2

    small, f = reduced(gray)
    det = _detector()
    corners, ids, _ = det.detectMarkers(small)
    if ids is None or len(set(ids.ravel()) & {0, 1, 2, 3}) < 4:
        clahe = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8)).apply(small)
        c2, i2, _ = det.detectMarkers(clahe)
        if i2 is not None and (ids is None or len(i2) > len(ids)):
            corners, ids = c2, i2
    out: dict[int, list[np.ndarray]] = {}
    if ids is None:
        return out
    for c, i in zip(corners, ids.ravel()):
        if int(i) not in (0, 1, 2, 3):
            continue
        pts = c.reshape(4, 2).astype(np.float32) * f
        if f > 1:
            pts = _refine(gray, det, pts, int(i))
        out.setdefault(int(i), []).append(pts)
    return out


def _refine(gray: np.ndarray, det, pts: np.ndarray, marker_id: int) -> np.ndarray:
    """The marker found again at full resolution in a window around its reduced-copy position
    (the reduced copy's corners can be pulled 0.2 mm by the header line just above the top marks)."""
    side = float(np.linalg.norm(pts[0] - pts[2]))
    x0, y0 = np.maximum(pts.min(axis=0) - side * 0.6, 0).astype(int)
    x1, y1 = np.minimum(pts.max(axis=0) + side * 0.6, [gray.shape[1], gray.shape[0]]).astype(int)
    crop = gray[y0:y1, x0:x1]
    c, ids, _ = det.detectMarkers(crop)
    if ids is not None:
        for cc, i in zip(c, ids.ravel()):
            if int(i) == marker_id:
                return cc.reshape(4, 2).astype(np.float32) + [x0, y0]
    return pts


# -- placing ------------------------------------------------------------------------------------------------


def check_meta(meta: dict, where: str) -> None:
    if not meta.get("reg") or "marks" not in meta or "frame_mm" not in meta:
        raise ScanRefused(f"{where}: page {meta.get('page')} was printed before pages had scanning marks: "
                          "reprint it with 'mapathon print' and draw on the new pages")


def paper_points(meta: dict, ids) -> np.ndarray:
    s = float(meta["mark_mm"])
    out = []
    for i in ids:
        x, y = meta["marks"][i]
        out.append([(x, y), (x + s, y), (x + s, y + s), (x, y + s)])
    return np.array(out, np.float64).reshape(-1, 2)


def _apply(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    q = np.c_[pts, np.ones(len(pts))] @ H.T
    return q[:, :2] / q[:, 2:3]


def place(rgb: np.ndarray, source: str, *, meta: dict | None = None, project_name: str | None = None,
          keep_photo: bool = True, px_per_mm: float = PX_PER_MM) -> ScannedPage:
    """Place one oriented RGB photo; raise :class:`ScanRefused` with the reason when it cannot be."""
    import cv2

    gray = to_gray(rgb)
    if float(gray.mean()) < 35:
        raise ScanRefused(f"{source}: too dark: photograph the page in daylight (no flash)")
    codes = find_qr(gray) if meta is None else [QrCode(meta, "", np.zeros((0, 2)))]
    metas = [q.meta for q in codes]
    marks = find_marks(gray)
    if len(metas) > 1 or any(len(v) > 1 for v in marks.values()):
        raise ScanRefused(f"{source}: several pages in one photo: photograph one page at a time")
    if not metas:
        sharp = _sharpness(reduced(gray)[0])
        if not marks and sharp < 20:
            raise ScanRefused(f"{source}: too blurry (sharpness {sharp:.0f}): hold the phone still, "
                              "focus on the page and photograph it again")
        if not marks:
            raise ScanRefused(f"{source}: no atlas page found (no QR code, no corner marks): "
                              "photograph a page of the atlas printed by 'mapathon print'")
        raise ScanRefused(f"{source}: QR code not found (bottom right of the page): photograph the whole page, "
                          "flat, without shadow or ink on the QR code")
    meta = metas[0]
    check_meta(meta, source)
    if project_name is not None and meta.get("project") != project_name:
        raise ScanRefused(f"{source}: page {meta.get('page')} is from the atlas of project {meta.get('project')!r}, "
                          f"not of {project_name!r}: scan it in its own project")
    ids = sorted(marks)
    if len(ids) < 3:
        raise ScanRefused(f"{source}: only {len(ids)} of 4 corner marks are visible: photograph the whole page")
    paper = paper_points(meta, ids)
    img = np.concatenate([marks[i][0] for i in ids]).astype(np.float64)
    qr_paper = qr_paper_points(codes[0]) if len(ids) < 4 and len(codes[0].corners) == 4 else None
    if qr_paper is not None:  # a hidden mark: the QR code's corners are control points too
        paper, img = np.r_[paper, qr_paper], np.r_[img, codes[0].corners]
    H, inliers = cv2.findHomography(paper, img, cv2.RANSAC, 3.0 * max(rgb.shape) / FIND_PX)
    if H is None:
        raise ScanRefused(f"{source}: the corner marks do not fit a page: photograph the page flat")
    n_qr = 0
    if qr_paper is not None:  # a QR corner off the fit (a pen stroke over it) is left out, not refused
        keep = np.r_[np.ones(4 * len(ids), bool), inliers.ravel()[-4:] > 0]
        n_qr = int(keep[-4:].sum())
        paper, img = paper[keep], img[keep]
        if n_qr:  # the marks' corners are sub-pixel, the QR's to about 0.1 mm: the marks weigh QR_WEIGHT times more
            w = np.r_[np.full(4 * len(ids), QR_WEIGHT), np.ones(n_qr, int)]
            H, _ = cv2.findHomography(np.repeat(paper, w, axis=0), np.repeat(img, w, axis=0), 0)
    back = _apply(np.linalg.inv(H), img)
    err = np.linalg.norm(back - paper, axis=1)
    residual, worst = float(np.median(err)), float(err.max())
    method = f"{len(ids)} marks" + (" + QR" if n_qr else "")
    control = {"marks": [int(i) for i in ids], "qr_corners": n_qr}
    if worst > MAX_RESIDUAL_MM:
        raise ScanRefused(f"{source}: cannot place the page within {MAX_RESIDUAL_MM:g} mm (off by {worst:.1f} mm): "
                          "flatten the page and photograph it from straight above")
    fx, fy, fw, fh = (float(v) for v in meta["frame_mm"])
    cols, rows = round(fw * px_per_mm), round(fh * px_per_mm)
    # rectified pixel (c, r) centre -> paper mm -> photo px
    T = np.array([[1 / px_per_mm, 0, fx + 0.5 / px_per_mm], [0, 1 / px_per_mm, fy + 0.5 / px_per_mm], [0, 0, 1]])
    M = H @ T
    rect = cv2.warpPerspective(rgb, M, (cols, rows), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(255, 255, 255))
    correction = None
    gray_rect = to_gray(rect)
    pad = int(SEARCH_PAD_MM * px_per_mm)  # the frame's border lines are measured too
    Tp = np.array([[1, 0, -pad], [0, 1, -pad], [0, 0, 1]], float)
    gray_ext = cv2.warpPerspective(gray, M @ Tp, (cols + 2 * pad, rows + 2 * pad),
                                   flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=255)
    bend = _bend(gray_ext, pad, meta, ids, px_per_mm)
    del gray_ext
    if bend is not None:
        dc, dr, fit_px, bent_mm = bend
        method += f" + grid (paper bent {bent_mm:.1f} mm)"
        correction = (dc, dr)
        residual = max(residual, float(np.median(fit_px)) / px_per_mm)
        worst = max(worst, float(np.percentile(fit_px, 95)) / px_per_mm)
        if worst > MAX_RESIDUAL_MM:
            raise ScanRefused(f"{source}: the paper is too crumpled to place within {MAX_RESIDUAL_MM:g} mm: "
                              "flatten the page and photograph it again")
        from .crumple import dense

        ddc, ddr = dense(dc, dr, cols, rows)
        cc, rr = np.meshgrid(np.arange(cols, dtype=np.float32), np.arange(rows, dtype=np.float32))
        cc += ddc
        rr += ddr
        del ddc, ddr
        Mf = M.astype(np.float32)
        w = Mf[2, 0] * cc + Mf[2, 1] * rr + Mf[2, 2]
        mx = (Mf[0, 0] * cc + Mf[0, 1] * rr + Mf[0, 2]) / w
        my = (Mf[1, 0] * cc + Mf[1, 1] * rr + Mf[1, 2]) / w
        del cc, rr, w
        rect = cv2.remap(rgb, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(255, 255, 255))
        del mx, my
        gray_rect = to_gray(rect)
    sharp = _sharpness(cv2.resize(gray_rect, (cols // 2, rows // 2), interpolation=cv2.INTER_AREA))
    if sharp < MIN_SHARPNESS:
        raise ScanRefused(f"{source}: too blurry (sharpness {sharp:.0f}): hold the phone still, focus on the page "
                          "and photograph it again")
    minx, miny, maxx, maxy = (float(v) for v in meta["box"])
    scale = int(meta.get("scale", 0))
    return ScannedPage(meta=meta, rectified=rect, px_per_mm=px_per_mm, frame_mm=(fx, fy, fw, fh),
                       crs=int(meta["epsg"]), frame_corners_crs=((minx, maxy), (maxx, maxy), (maxx, miny), (minx, miny)),
                       residual_mm=residual, source=source, residual_max_mm=worst,
                       residual_m=residual * scale / 1000.0, method=method, homography=H, control_points=control,
                       photo=rgb if keep_photo else None, correction=correction)


def _bend(gray_ext: np.ndarray, pad: int, meta: dict, ids, px_per_mm: float):
    """The bent-paper correction from the printed UTM grid lines, or None when the page is flat enough
    (see crumple.py). Returns (coarse dc, coarse dr, fit residuals px, bend mm)."""
    from . import crumple

    rows, cols = gray_ext.shape[0] - 2 * pad, gray_ext.shape[1] - 2 * pad
    vx, vy = crumple.measure(gray_ext, meta, px_per_mm, pad)
    fx, fy = (float(v) for v in meta["frame_mm"][:2])
    anchors = (paper_points(meta, ids) - [fx, fy]) * px_per_mm - 0.5
    fitted = crumple.fit(vx, vy, anchors, float(max(cols, rows)))
    if fitted is None:
        return None
    sx, sy, resid = fitted
    shift = np.r_[np.abs(sx(vx[:, :2])), np.abs(sy(vy[:, :2]))]
    bent = float(np.percentile(shift, 90)) / px_per_mm
    if bent < crumple.APPLY_MM:
        return None
    dc, dr = crumple.field(sx, sy, cols, rows)
    return dc, dr, resid, bent


def _sharpness(gray: np.ndarray) -> float:
    import cv2

    return float(cv2.Laplacian(gray, cv2.CV_64F).var())
