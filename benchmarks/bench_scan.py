"""Placing photos of atlas pages (mapathon scan): 12-megapixel JPEG photos of a real page.

Goals: one 12 MP photo decoded, placed, rectified and written as a GeoTIFF (marks extracted
once marks.py lands) in at most 2 s; 20 photos in at most 30 s on 2 cores; peak memory under 1 GB.

The photos are made from a page printed by 'mapathon print' (tests/scan_photos.py: tilted up to 35°,
rotated, shadows, noise, JPEG). The scan runs in a fresh child process so its time and peak memory
are its own (no project: GeoTIFF and JSON only, no imagery import).

Run:  .venv/bin/python benchmarks/bench_scan.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import out  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
DATA = ROOT / "tests" / "data" / "liechtenstein-2022-07-24.osm.pbf"

CHILD = r"""
import json, sys, time
from pathlib import Path
from mapathon.scan import run
args = json.loads(sys.argv[1])
t, c = time.perf_counter(), time.process_time()
one = run.scan_files([Path(args["photos"][0])], Path(args["out"]) / "one")
t1, c1 = time.perf_counter() - t, time.process_time() - c
t, c = time.perf_counter(), time.process_time()
res = run.scan_files([Path(p) for p in args["photos"]], Path(args["out"]) / "all")
print(json.dumps({"one": t1, "one_cpu": c1, "all": time.perf_counter() - t, "all_cpu": time.process_time() - c,
                  "n": len(res), "ok": sum(r.ok for r in res),
                  "worst_mm": max(r.residual_max_mm or 0 for r in res),
                  # VmHWM, not ru_maxrss: Linux keeps the forking parent's ru_maxrss across exec
                  "peak_mb": int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024}))
"""


def main() -> None:
    import cv2
    from scan_photos import make_photo, page_raster

    from mapathon.atlas import PrintOptions, make_atlas

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pdf = tmp / "atlas.pdf"
        make_atlas(PrintOptions(output=pdf, data=DATA, bbox="9.515,47.138,9.522,47.143", project_dir=tmp))
        page = page_raster(pdf, 1, 300)
        photos = []
        for i in range(20):
            ph = make_photo(page, 300, tilt=(i * 7) % 36, rot=(0, 90, 180, 13)[i % 4], light=i % 3 == 0,
                            noise=4, jpeg=85, seed=i)
            p = tmp / f"IMG_{i:04d}.jpg"
            cv2.imwrite(str(p), ph.rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
            photos.append(str(p))
        h, w = ph.rgb.shape[:2]
        r = subprocess.run([sys.executable, "-c", CHILD, json.dumps({"photos": photos, "out": str(tmp)})],
                           capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
        if r.returncode:
            sys.exit(r.stderr)
        m = json.loads(r.stdout)
        out(f"photo {w}x{h} ({w * h / 1e6:.1f} MP), JPEG 85")
        out(f"load average now: {open('/proc/loadavg').read().split()[0]} (the timings are wall clock; CPU time is "
            "all threads together)")
        out(f"one photo: {m['one']:.2f} s, CPU {m['one_cpu']:.2f} s (goal 2 s)")
        out(f"{m['n']} photos: {m['all']:.1f} s, CPU {m['all_cpu']:.1f} s, {m['ok']} placed, worst residual "
            f"{m['worst_mm']:.2f} mm (goal 30 s)")
        out(f"peak memory: {m['peak_mb']:.0f} MB (goal 1 GB)")


if __name__ == "__main__":
    main()
