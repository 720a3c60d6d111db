"""A photographed atlas page, placed: the map frame cut out, north-up as printed, with its position.

This is the interface between georeferencing (``register.py``) and marks extraction (``marks.py``).
Conventions:

* paper millimetres are counted from the **top-left** corner of the sheet, x to the right, y **down**
  (as in an image); the QR payload's ``frame_mm`` and ``marks`` use the same convention;
* ``rectified`` covers exactly the map frame: pixel (col, row) = (0, 0) is the top-left corner of
  the frame's top-left pixel; its size is round(frame w × px_per_mm) × round(frame h × px_per_mm);
* ``frame_corners_crs`` are the frame's corners in the page's CRS (``crs``, an EPSG code, a UTM zone),
  in the order top-left, top-right, bottom-right, bottom-left.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

PX_PER_MM = 10.0  # resolution of ``rectified``: 0.1 mm per pixel (0.5 m on the ground at 1:5000)


@dataclass
class ScannedPage:
    meta: dict  # the decoded QR payload (atlas, page, frame_mm, epsg, box, marks, strip, ...)
    rectified: np.ndarray  # uint8 RGB, shape (rows, cols, 3): the map frame, north-up as printed
    px_per_mm: float
    frame_mm: tuple[float, float, float, float]  # x, y, w, h on paper, mm from the top-left, y down
    crs: int  # EPSG code of the map (UTM)
    frame_corners_crs: tuple[tuple[float, float], ...]  # TL, TR, BR, BL in ``crs``
    residual_mm: float  # median reprojection error of the control points, mm on paper
    source: str  # the photo/scan file (and "#page N" for a PDF page)
    residual_max_mm: float = 0.0
    residual_m: float = 0.0  # residual_mm on the ground, metres
    method: str = ""  # "4 marks", "3 marks + QR", "... + grid"
    # what the homography was fitted to: {"marks": ids of the corner marks, "qr_corners": 0 to 4}
    control_points: dict = field(default_factory=dict)
    # paper mm (x right, y down) -> source image pixel (col, row) of the *oriented* photo (EXIF applied)
    homography: np.ndarray | None = None
    photo: np.ndarray | None = field(default=None, repr=False)  # the oriented photo, uint8 RGB (for crops)
    # bent paper: the shift (dc, dr) of rectified pixels, sampled every crumple.COARSE_PX pixels; a point
    # printed at rectified (c, r) was at (c + dc, r + dr) in the homography-only rectification
    correction: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def page_id(self) -> str:
        return str(self.meta.get("page", ""))

    @property
    def atlas_id(self) -> str:
        return str(self.meta.get("atlas", ""))

    @property
    def scale(self) -> int:
        return int(self.meta.get("scale", 0))

    @property
    def shape(self) -> tuple[int, int]:
        return self.rectified.shape[0], self.rectified.shape[1]

    def pixel_to_mm(self, col, row):
        """Paper mm (top-left origin, y down) of a ``rectified`` pixel position (arrays allowed)."""
        x, y, _, _ = self.frame_mm
        return x + np.asarray(col, float) / self.px_per_mm, y + np.asarray(row, float) / self.px_per_mm

    def pixel_to_crs(self, col, row):
        """Map coordinates (in ``crs``) of a ``rectified`` pixel position (floats or arrays)."""
        rows, cols = self.shape
        u = np.asarray(col, float) / cols
        v = np.asarray(row, float) / rows
        (tlx, tly), (trx, try_), (brx, bry), (blx, bly) = self.frame_corners_crs
        # bilinear between the four corners (exact for the axis-aligned UTM frame the atlas prints)
        x = (1 - u) * (1 - v) * tlx + u * (1 - v) * trx + u * v * brx + (1 - u) * v * blx
        y = (1 - u) * (1 - v) * tly + u * (1 - v) * try_ + u * v * bry + (1 - u) * v * bly
        return x, y

    def pixel_to_lonlat(self, col, row):
        """WGS84 (lon, lat) of a ``rectified`` pixel position (floats or arrays)."""
        from ..geo import transformer

        x, y = self.pixel_to_crs(col, row)
        lon, lat = transformer(f"EPSG:{self.crs}", "EPSG:4326").transform(x, y)
        return lon, lat

    def crs_to_pixel(self, x, y):
        """Inverse of :meth:`pixel_to_crs` for the axis-aligned frame the atlas prints."""
        rows, cols = self.shape
        (tlx, tly), _, (brx, bry), _ = self.frame_corners_crs
        return ((np.asarray(x, float) - tlx) / (brx - tlx) * cols,
                (np.asarray(y, float) - tly) / (bry - tly) * rows)

    def mm_to_photo(self, x_mm, y_mm):
        """Pixel (col, row) in the oriented photo of a paper position (for crops around a mark);
        with the bent-paper correction inside the frame."""
        x_mm, y_mm = np.atleast_1d(np.asarray(x_mm, float)), np.atleast_1d(np.asarray(y_mm, float))
        if self.correction is not None:
            from .crumple import sample

            fx, fy, _, _ = self.frame_mm
            c, r = (x_mm - fx) * self.px_per_mm - 0.5, (y_mm - fy) * self.px_per_mm - 0.5
            dc, dr = sample(*self.correction, c, r)
            x_mm, y_mm = fx + (c + dc + 0.5) / self.px_per_mm, fy + (r + dr + 0.5) / self.px_per_mm
        pts = np.stack([x_mm, y_mm, np.ones(len(x_mm))])
        q = self.homography @ pts
        return q[0] / q[2], q[1] / q[2]

    @property
    def ground_m_per_px(self) -> float:
        """Metres on the ground per ``rectified`` pixel."""
        return self.scale / 1000.0 / self.px_per_mm

    def without_pixels(self) -> "ScannedPage":
        """A copy without the photo, the rectified frame and the bent-paper field: what the main process
        of ``mapathon scan`` needs to keep a page's marks (a few hundred bytes to send, not 50 MB)."""
        return replace(self, rectified=np.zeros((0, 0, 3), np.uint8), photo=None, correction=None)

    def sidecar(self) -> dict:
        """The JSON sidecar's placement fields (besides the file names and time)."""
        return {"page": self.page_id, "atlas": self.atlas_id, "project": self.meta.get("project"),
                "source": str(Path(self.source)) if self.source else "", "epsg": self.crs,
                "frame_mm": [round(v, 2) for v in self.frame_mm],
                "corners": [[round(a, 2), round(b, 2)] for a, b in self.frame_corners_crs],
                "px_per_mm": self.px_per_mm, "method": self.method, "control_points": self.control_points,
                "residual_mm": round(self.residual_mm, 3), "residual_max_mm": round(self.residual_max_mm, 3),
                "residual_m": round(self.residual_m, 2)}
