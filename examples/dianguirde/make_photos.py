"""Two "phone photos" of annotated atlas pages, for the demo (a stand-in for the field team's pictures).

    python3 make_photos.py ATLAS.pdf OUTDIR

Renders map pages 1 and 2 of the atlas (sheets 2 and 3: sheet 1 is the cover) at 200 dpi, draws on
each what a field team would draw with the pens of the page's colour strip (a red dot for a missing
well, a blue line for a track, a green loop around a hamlet), then photographs it: the sheet on a
table, seen from a slant, with uneven light, saved as JPEG. Writes OUTDIR/page-2.jpg and page-3.jpg.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pypdfium2
import zxingcpp

DPI = 200
INKS = {"red": (28, 25, 215), "blue": (214, 79, 31), "green": (65, 150, 26)}  # BGR, the strip's pens


def sheet(pdf: Path, index: int) -> tuple[np.ndarray, dict]:
    """One sheet as a BGR picture, and the JSON of its QR code (where the map frame is, in mm)."""
    doc = pypdfium2.PdfDocument(str(pdf))
    bgr = doc[index].render(scale=DPI / 72).to_numpy()[:, :, :3].copy()  # pdfium renders BGR
    meta = json.loads(zxingcpp.read_barcodes(bgr)[0].text)
    return bgr, meta


def draw(img: np.ndarray, meta: dict, seed: int) -> None:
    """Pen marks inside the map frame, at places that differ from page to page."""
    x, y, w, h = meta["frame_mm"]
    px = DPI / 25.4
    rng = np.random.default_rng(seed)

    def at(fx, fy):
        return int((x + fx * w) * px), int((y + fy * h) * px)

    cv2.circle(img, at(*rng.uniform(0.2, 0.8, 2)), int(1.6 * px), INKS["red"], -1, cv2.LINE_AA)
    a, b = rng.uniform(0.15, 0.45, 2), rng.uniform(0.55, 0.85, 2)
    cv2.line(img, at(*a), at(*b), INKS["blue"], int(0.7 * px), cv2.LINE_AA)
    cx, cy = rng.uniform(0.3, 0.7, 2)
    cv2.ellipse(img, at(cx, cy), (int(0.08 * w * px), int(0.05 * h * px)), 15, 0, 360, INKS["green"],
                int(0.6 * px), cv2.LINE_AA)


def photograph(img: np.ndarray, seed: int) -> np.ndarray:
    """The sheet on a table, from a slant (about 20 degrees), light falling off to one side."""
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    W, H = int(w * 1.35), int(h * 1.25)
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    m = rng.uniform(0.04, 0.09, 4)
    dst = np.float32([[W * (0.10 + m[0]), H * 0.06], [W * (0.90 - m[1]), H * 0.08],
                      [W * 0.95, H * (0.94 - m[2] / 2)], [W * 0.05, H * 0.95]])
    table = np.full((H, W, 3), (96, 112, 128), np.uint8)
    photo = cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (W, H), dst=table,
                                borderMode=cv2.BORDER_TRANSPARENT)
    light = np.linspace(1.0, 0.78, W, dtype=np.float32)[None, :, None]
    return np.clip(photo.astype(np.float32) * light, 0, 255).astype(np.uint8)


def main() -> None:
    pdf, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for n in (2, 3):
        img, meta = sheet(pdf, n - 1)
        draw(img, meta, seed=n)
        cv2.imwrite(str(out / f"page-{n}.jpg"), photograph(img, seed=n), [cv2.IMWRITE_JPEG_QUALITY, 85])
        print(out / f"page-{n}.jpg")


if __name__ == "__main__":
    main()
