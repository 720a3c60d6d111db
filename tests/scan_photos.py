"""Synthetic phone photos of atlas pages, with their ground truth (paper mm -> photo pixels).

Used by tests/test_scan.py and benchmarks/bench_scan.py. A page is rendered from the atlas PDF
(pypdfium2), then tilted in 3D, rotated, lit unevenly, blurred, noised, JPEG-compressed or
crumpled (a smooth displacement field), on a wooden-table background.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


def page_raster(pdf, index: int, dpi: int = 300) -> np.ndarray:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(pdf))
    try:
        return np.asarray(doc[index].render(scale=dpi / 72).to_pil().convert("RGB")).copy()
    finally:
        doc.close()


@dataclass
class Photo:
    rgb: np.ndarray
    G: np.ndarray  # paper mm -> flat photo px
    crumple: object = None  # callable (px array Nx2) -> displacement Nx2, or None



def mm_to_px(mm, H):
    q = np.c_[mm, np.ones(len(mm))] @ H.T
    return q[:, :2] / q[:, 2:3]


def error_mm(page, photo: Photo, n: int = 15) -> np.ndarray:
    """Paper-mm error of the placement over an n×n grid of the map frame."""
    fx, fy, fw, fh = page.frame_mm
    xs, ys = np.meshgrid(np.linspace(fx, fx + fw, n), np.linspace(fy, fy + fh, n))
    mm = np.c_[xs.ravel(), ys.ravel()]
    p_true = mm_to_px(mm, photo.G)
    if photo.crumple is not None:
        p = p_true.copy()
        for _ in range(5):  # the point that the crumple moves onto p_true: p + d(p) = p_true
            p = p_true - photo.crumple(p)
        p_true = p
    p_est = np.c_[page.mm_to_photo(mm[:, 0], mm[:, 1])]
    px_per_mm = np.linalg.norm(mm_to_px(mm + [1.0, 0.0], photo.G) - mm_to_px(mm, photo.G), axis=1)
    return np.linalg.norm(p_est - p_true, axis=1) / px_per_mm


def make_photo(page: np.ndarray, dpi: int = 300, *, tilt: float = 0.0, rot: float = 0.0, megapixels: float = 12,
               light: bool = False, noise: float = 0.0, blur: float = 0.0, jpeg: int | None = None,
               crumple_mm: float = 0.0, fill: float = 0.86, dark: float = 1.0, seed: int = 0) -> Photo:
    rng = np.random.default_rng(seed)
    hp, wp = page.shape[:2]
    W_mm, H_mm = wp * 25.4 / dpi, hp * 25.4 / dpi
    # page corners (mm, centred) -> in-plane rotation -> tilt about the horizontal axis -> pinhole
    c = np.array([[0, 0], [W_mm, 0], [W_mm, H_mm], [0, H_mm]], float) - [W_mm / 2, H_mm / 2]
    a = math.radians(rot)
    R = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    c = c @ R.T
    t = math.radians(tilt)
    f = 600.0  # camera distance, mm
    z = c[:, 1] * math.sin(t)
    proj = np.c_[c[:, 0] * f / (f + z), c[:, 1] * math.cos(t) * f / (f + z)]
    w_box, h_box = np.ptp(proj[:, 0]), np.ptp(proj[:, 1])
    landscape = w_box > h_box
    px = megapixels * 1e6
    W, H = (int(math.sqrt(px * 4 / 3)), int(math.sqrt(px * 3 / 4)))
    if not landscape:
        W, H = H, W
    s = fill * min(W / w_box, H / h_box)
    dst = (proj - proj.mean(axis=0)) * s + [W / 2, H / 2]
    src_mm = np.array([[0, 0], [W_mm, 0], [W_mm, H_mm], [0, H_mm]], np.float32)
    G = cv2.getPerspectiveTransform(src_mm, dst.astype(np.float32))
    S = np.diag([dpi / 25.4, dpi / 25.4, 1.0])
    table = np.empty((H, W, 3), np.uint8)
    table[:] = (120, 96, 70)
    table = cv2.add(table, rng.integers(0, 25, (H, W, 3), dtype=np.uint8))
    img = cv2.warpPerspective(page, G @ np.linalg.inv(S), (W, H), dst=table, borderMode=cv2.BORDER_TRANSPARENT,
                              flags=cv2.INTER_AREA if s < 300 / 25.4 else cv2.INTER_LINEAR)
    crumple = None
    if crumple_mm:
        amp = crumple_mm * s  # photo px
        k1, k2 = 2 * math.pi / (0.45 * W), 2 * math.pi / (0.38 * H)
        ph = rng.uniform(0, 2 * math.pi, 4)

        def crumple(p):
            x, y = p[:, 0], p[:, 1]
            return np.c_[amp * np.sin(k1 * x + ph[0]) * np.cos(k2 * y + ph[1]),
                         amp * np.cos(k1 * x + ph[2]) * np.sin(k2 * y + ph[3])]
        gy, gx = np.mgrid[0:H, 0:W].astype(np.float32)
        d = crumple(np.c_[gx.ravel(), gy.ravel()]).astype(np.float32)
        img = cv2.remap(img, gx + d[:, 0].reshape(H, W), gy + d[:, 1].reshape(H, W), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REFLECT)
    if light:
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        gain = 0.6 + 0.4 * (xx / W) * 0.5 + 0.4 * (yy / H) * 0.5
        shadow = ((xx - 0.3 * W) ** 2 / (0.25 * W) ** 2 + (yy - 0.6 * H) ** 2 / (0.2 * H) ** 2) < 1
        gain[shadow] *= 0.7
        gain = cv2.GaussianBlur(gain, (0, 0), 25)
        img = np.clip(img * gain[..., None], 0, 255).astype(np.uint8)
    if dark != 1.0:
        img = np.clip(img * dark, 0, 255).astype(np.uint8)
    if blur:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    if noise:
        img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
    if jpeg:
        ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg])
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return Photo(np.ascontiguousarray(img), G, crumple)


def paint_mm(page: np.ndarray, dpi: int, rect_mm, rgb) -> np.ndarray:
    """A copy of *page* with a filled rectangle (x, y, w, h in paper mm, top-left origin)."""
    out = page.copy()
    k = dpi / 25.4
    x, y, w, h = rect_mm
    out[int(y * k): int((y + h) * k), int(x * k): int((x + w) * k)] = rgb
    return out


def stroke_mm(page: np.ndarray, dpi: int, p0, p1, width_mm: float, rgb) -> np.ndarray:
    out = page.copy()
    k = dpi / 25.4
    cv2.line(out, (int(p0[0] * k), int(p0[1] * k)), (int(p1[0] * k), int(p1[1] * k)), tuple(int(v) for v in rgb),
             max(1, int(width_mm * k)), cv2.LINE_AA)
    return out


def on_screen(page: np.ndarray, tall: int = 1000) -> np.ndarray:
    """The page as a laptop screen shows it, *tall* screen pixels high, seen close up: RGB sub-pixel
    stripes and dark rows between the pixels (3 × 3 photo pixels per screen pixel)."""
    h, w = page.shape[:2]
    small = cv2.resize(page, (round(w * tall / h), tall), interpolation=cv2.INTER_AREA)
    big = np.repeat(np.repeat(small, 3, axis=0), 3, axis=1).astype(np.float32)
    mask = np.zeros((1, 3, 3), np.float32)
    mask[0, 0, 0] = mask[0, 1, 1] = mask[0, 2, 2] = 1
    big *= np.tile(mask, (1, big.shape[1] // 3, 1))[:, :big.shape[1]] * 0.8 + 0.2
    big[2::3] *= 0.5
    return np.clip(big * 1.6, 0, 255).astype(np.uint8)


def place_or_fail(pic, *args):
    """mapathon.scan.run.place_one, except for a picture whose file is named ``crash*`` (its process
    stops at once, as when the system kills it for memory) or ``bug*`` (an error that is not a
    MapathonError): what a process of a scan batch may meet. Here, so that spawned processes import it."""
    import os
    from pathlib import Path

    from mapathon.scan import run

    name = Path(pic.path).name
    if name.startswith("crash"):
        os._exit(9)
    if name.startswith("bug"):
        raise ValueError("a bug")
    return run.place_one(pic, *args)
