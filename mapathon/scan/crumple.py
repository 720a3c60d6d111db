"""A smooth correction for bent or crumpled paper, from the printed UTM grid lines.

The four corner marks give a homography: exact for a flat page, wrong inside the frame when the
paper is bent. After the first rectification, each printed UTM grid line is looked for every
``SAMPLE_MM`` along its length (a dark thin valley in a profile averaged along the line, within
``SEARCH_MM`` of where it should be). Vertical lines measure the horizontal shift, horizontal lines
the vertical one. Two thin-plate splines (numpy, regularised, pinned to zero at the corner marks)
are fitted to those shifts after dropping outliers (a road or a building edge taken for the line);
the page is warped again from the photo through the corrected positions.
"""

from __future__ import annotations

import numpy as np

SAMPLE_MM = 8.0  # along a grid line, between two measurements
WINDOW_MM = 8.0  # length of line averaged for one measurement
SEARCH_MM = 3.0  # how far from its expected place a line is looked for
APPLY_MM = 0.35  # the correction is applied when the page is bent by more than this (90th percentile)
COARSE_PX = 20  # the correction field is computed every 20 rectified pixels, then interpolated


def grid_lines(meta: dict, cols: int, rows: int) -> tuple[list[float], list[float]]:
    """Rectified-pixel positions of the printed UTM grid lines: columns of the vertical ones, rows of the
    horizontal ones (edges of the pixel grid, as ``ScannedPage.pixel_to_crs``)."""
    from ..atlas.furniture import _multiples, grid_step_for

    minx, miny, maxx, maxy = (float(v) for v in meta["box"])
    step = grid_step_for(int(meta["scale"]))
    xs = [(v - minx) / (maxx - minx) * cols for v in _multiples(minx, maxx, step)]
    ys = [(maxy - v) / (maxy - miny) * rows for v in _multiples(miny, maxy, step)]
    return xs, ys


def _peak(profile: np.ndarray, k: int) -> tuple[float, float] | None:
    """Sub-pixel position of the thin dark valley in *profile* (darkness), and its strength."""
    if len(profile) < 2 * k + 3:
        return None
    kernel = np.ones(2 * k + 1) / (2 * k + 1)
    base = np.convolve(np.pad(profile, k, mode="edge"), kernel, mode="valid")
    hp = profile - base
    i = int(np.argmax(hp[1:-1])) + 1
    noise = float(np.median(np.abs(hp - np.median(hp)))) + 1e-6
    a, b, c = hp[i - 1], hp[i], hp[i + 1]
    den = a - 2 * b + c
    off = 0.5 * (a - c) / den if den != 0 else 0.0
    return i + float(np.clip(off, -0.5, 0.5)), float(b / noise)


def measure(gray: np.ndarray, meta: dict, px_per_mm: float, pad: int = 0):
    """Observed shifts (rectified px): (points Nx3: col, row, shift) for vertical lines (x shift) and for
    horizontal lines (y shift). *gray* is the rectified frame with *pad* pixels more on every side, so
    that the frame's own border lines are measured too."""
    rows, cols = gray.shape[0] - 2 * pad, gray.shape[1] - 2 * pad
    xs, ys = grid_lines(meta, cols, rows)
    if pad:
        xs, ys = [0.0, *xs, float(cols)], [0.0, *ys, float(rows)]
    half, search = int(WINDOW_MM / 2 * px_per_mm), int(SEARCH_MM * px_per_mm)
    step = SAMPLE_MM * px_per_mm
    k = max(2, int(0.6 * px_per_mm))
    dark = 255.0 - gray.astype(np.float32)
    H, W = gray.shape
    vx, vy = [], []
    for c0 in xs:
        lo, hi = int(round(c0)) + pad - search, int(round(c0)) + pad + search + 1
        if lo < 0 or hi > W:
            continue
        for r0 in np.arange(half, rows - half + 1, step):
            r = int(r0) + pad
            p = _peak(dark[r - half:r + half, lo:hi].mean(axis=0), k)
            if p and p[1] > 4:
                vx.append((c0, r0, lo - pad + p[0] + 0.5 - c0))
    for r0 in ys:
        lo, hi = int(round(r0)) + pad - search, int(round(r0)) + pad + search + 1
        if lo < 0 or hi > H:
            continue
        for c0 in np.arange(half, cols - half + 1, step):
            c = int(c0) + pad
            p = _peak(dark[lo:hi, c - half:c + half].mean(axis=1), k)
            if p and p[1] > 4:
                vy.append((c0, r0, lo - pad + p[0] + 0.5 - r0))
    return np.array(vx).reshape(-1, 3), np.array(vy).reshape(-1, 3)


def _U(r2):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r2 > 0, 0.5 * r2 * np.log(r2), 0.0)


class Spline:
    """A regularised 2D thin-plate spline (coordinates scaled to about 1 for conditioning)."""

    def __init__(self, pts: np.ndarray, values: np.ndarray, scale: float, smooth: float = 1e-3):
        self.pts, self.scale = pts / scale, scale
        n = len(pts)
        d2 = ((self.pts[:, None, :] - self.pts[None, :, :]) ** 2).sum(-1)
        K = _U(d2) + smooth * np.eye(n)
        P = np.c_[np.ones(n), self.pts]
        A = np.block([[K, P], [P.T, np.zeros((3, 3))]])
        b = np.r_[values, np.zeros(3)]
        try:  # K is regularised: A is symmetric and invertible unless all points are on one line
            sol = np.linalg.solve(A, b)  # LU: 5-10 times faster than least squares for the same answer
        except np.linalg.LinAlgError:
            sol = np.linalg.lstsq(A, b, rcond=None)[0]
        self.w, self.a = sol[:n], sol[n:]

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        q = pts / self.scale
        d2 = ((q[:, None, :] - self.pts[None, :, :]) ** 2).sum(-1)
        return _U(d2) @ self.w + self.a[0] + q @ self.a[1:]


def fit(vx: np.ndarray, vy: np.ndarray, anchors: np.ndarray, scale: float):
    """Two splines (x shift, y shift) pinned to 0 at *anchors*, after two rounds of outlier removal.
    Returns (sx, sy, residuals in px of the kept measurements, kept count) or None when too few."""
    out = []
    resid = []
    for v in (vx, vy):
        if len(v) < 8:
            return None
        keep = np.ones(len(v), bool)
        for _ in range(3):
            pts = np.r_[v[keep, :2], anchors]
            vals = np.r_[v[keep, 2], np.zeros(len(anchors))]
            s = Spline(pts, vals, scale, smooth=1e-3)
            r = np.abs(s(v[:, :2]) - v[:, 2])
            lim = max(3.0 * float(np.median(r[keep])) * 1.4826, 0.15 * scale / 100)
            new = r <= lim
            if new.sum() < 8 or (new == keep).all():
                keep = new if new.sum() >= 8 else keep
                break
            keep = new
        s = Spline(np.r_[v[keep, :2], anchors], np.r_[v[keep, 2], np.zeros(len(anchors))], scale, smooth=1e-3)
        out.append(s)
        resid.append(np.abs(s(v[keep, :2]) - v[keep, 2]))
    return out[0], out[1], np.concatenate(resid)


def field(sx: Spline, sy: Spline, cols: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The correction every COARSE_PX rectified pixels: arrays (rows // COARSE_PX + 2, cols // COARSE_PX + 2)."""
    cc, rr = np.meshgrid(np.arange(0, cols + 2 * COARSE_PX, COARSE_PX, dtype=float),
                         np.arange(0, rows + 2 * COARSE_PX, COARSE_PX, dtype=float))
    pts = np.c_[cc.ravel(), rr.ravel()]
    return sx(pts).reshape(cc.shape).astype(np.float32), sy(pts).reshape(cc.shape).astype(np.float32)


def sample(dc: np.ndarray, dr: np.ndarray, c, r) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear value of the coarse field at rectified positions (arrays)."""
    x = np.clip(np.asarray(c, float) / COARSE_PX, 0, dc.shape[1] - 1.001)
    y = np.clip(np.asarray(r, float) / COARSE_PX, 0, dc.shape[0] - 1.001)
    x0, y0 = x.astype(int), y.astype(int)
    fx, fy = x - x0, y - y0

    def bil(f):
        return (f[y0, x0] * (1 - fx) * (1 - fy) + f[y0, x0 + 1] * fx * (1 - fy) + f[y0 + 1, x0] * (1 - fx) * fy
                + f[y0 + 1, x0 + 1] * fx * fy)
    return bil(dc), bil(dr)


def dense(dc: np.ndarray, dr: np.ndarray, cols: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The correction at every rectified pixel (float32 arrays rows × cols)."""
    import cv2

    mx, my = np.meshgrid(np.arange(cols, dtype=np.float32) / COARSE_PX, np.arange(rows, dtype=np.float32) / COARSE_PX)
    return (cv2.remap(dc, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
            cv2.remap(dr, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
