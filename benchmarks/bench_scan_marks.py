"""Marks on a photographed atlas page (mapathon.scan.marks): time of the fresh reference render and
of the extraction, on a 12-megapixel-equivalent page.

A 12 MP phone photo of an A4 page (4000 x 3000 pixels) holds about 13.5 pixels per mm of paper;
the map frame (182 x 223 mm) is then 2450 x 3000 pixels. `mapathon scan` rectifies at 10 px/mm.
One map page of central Vaduz (Liechtenstein extract, 1:5000) is printed, its frame rasterized at
each resolution, 13 marks in four colours drawn on it, then spoiled (blur, noise, JPEG 50).

Run:  .venv/bin/python benchmarks/bench_scan_marks.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import out, peak_rss_mb  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "liechtenstein-2022-07-24.osm.pbf"
INKS = {"red": (200, 40, 45), "blue": (45, 85, 200), "green": (40, 140, 75), "black": (40, 40, 45)}


def main() -> None:
    import cv2
    import pypdfium2 as pdfium

    from mapathon.atlas import atlas, furniture
    from mapathon.scan.marks import extract_marks
    from mapathon.scan.page import ScannedPage
    from mapathon.scan.reference import render_reference

    tmp = Path(tempfile.mkdtemp(prefix="bench-marks-"))
    seen = []
    orig = furniture.draw_map_page
    furniture.draw_map_page = lambda c, info, pal, words: (seen.append(info), orig(c, info, pal, words))
    atlas.make_atlas(atlas.PrintOptions(output=tmp / "a.pdf", data=DATA, bbox="9.519,47.139,9.523,47.142",
                                        project_dir=tmp / "none"))
    furniture.draw_map_page = orig
    info = seen[0]
    f, lay = info.layout.frame, info.layout
    minx, miny, maxx, maxy = info.box
    frame_mm = (f.x, lay.height - f.y1, f.w, f.h)
    meta = {"page": info.page_id, "scale": 5000, "epsg": 32632, "box": list(info.box), "frame_mm": list(frame_mm)}
    rng = np.random.default_rng(1)
    for ppm, what in ((10.0, "scan's rectified frame, 10 px/mm"), (13.5, "12 MP photo, 13.5 px/mm")):
        doc = pdfium.PdfDocument(str(tmp / "a.pdf"))
        img = np.asarray(doc[info.number - 1].render(scale=ppm * 25.4 / 72).to_pil().convert("RGB"))
        doc.close()
        top, left = int(round(img.shape[0] - f.y1 * ppm)), int(round(f.x * ppm))
        frame = img[top: top + int(round(f.h * ppm)), left: left + int(round(f.w * ppm))].astype(np.float32)
        for k in range(13):
            mask = np.zeros(frame.shape[:2], np.uint8)
            cx, cy = rng.uniform(20, f.w - 20) * ppm, rng.uniform(20, f.h - 20) * ppm
            if k % 3 == 0:
                cv2.circle(mask, (int(cx), int(cy)), int(1.3 * ppm), 255, -1, cv2.LINE_AA)
            else:
                pts = np.array([[cx + rng.uniform(-25, 25) * ppm, cy + rng.uniform(-25, 25) * ppm] for _ in range(4)],
                               np.int32)
                cv2.polylines(mask, [pts], k % 3 == 2, 255, int(0.7 * ppm), cv2.LINE_AA)
            a = (mask / 255.0)[..., None]
            frame = frame * (1 - a + a * np.array(list(INKS.values())[k % 4]) / 255.0)
        frame = cv2.GaussianBlur(frame, (0, 0), 1.0) + rng.normal(0, 5, frame.shape)
        ok, buf = cv2.imencode(".jpg", np.clip(frame, 0, 255).astype(np.uint8)[..., ::-1],
                               [cv2.IMWRITE_JPEG_QUALITY, 50])
        photo = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()
        page = ScannedPage(meta, photo, ppm, frame_mm, 32632, ((minx, maxy), (maxx, maxy), (maxx, miny), (minx, miny)),
                           0.3, "bench.jpg")
        t0 = time.perf_counter()
        ref = render_reference(meta, DATA, ppm)
        t_ref = time.perf_counter() - t0
        times, cpu = [], []
        for _ in range(3):
            t0, c0 = time.perf_counter(), time.process_time()
            marks = extract_marks(page, ref, INKS)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        out(f"{what}: frame {photo.shape[1]} x {photo.shape[0]} px ({photo.shape[0] * photo.shape[1] / 1e6:.1f} MP); "
            f"reference render {t_ref:.2f} s; marks extraction median {sorted(times)[1]:.2f} s "
            f"(CPU {sorted(cpu)[1]:.2f} s) "
            f"({len(marks)} marks); peak memory so far {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
