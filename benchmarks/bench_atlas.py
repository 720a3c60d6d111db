"""Printing field atlases (mapathon print) over Liechtenstein (17,638 buildings, 8,000 roads and streams).

Goals: an atlas of 14 map pages at 1:5,000 in under 15 s and 1 GB on two cores;
the cost per page should stay flat as the atlas grows from 1 to 60 map pages.

Each atlas is made in a fresh child process so that its time and peak memory are its own.
"cold" includes reading the .osm.pbf into the layer cache; "warm" reuses the cache (a second
atlas from the same data). Pages are laid along the Rhine valley (Balzers - Vaduz - Schaan),
where the buildings are, 2 columns wide at first, then wider.

Run:  .venv/bin/python benchmarks/bench_atlas.py
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
DATA = ROOT / "tests" / "data" / "liechtenstein-2022-07-24.osm.pbf"
CENTRE = (9.522, 47.150)  # between Vaduz and Schaan
STEP = (835.0, 1025.0)  # metres between A4 portrait pages at 1:5000 (frame minus 15 mm overlap)
OVERLAP = 75.0

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from mapathon.atlas import PrintOptions, make_atlas
args = json.loads(sys.argv[1])
t = time.perf_counter()
r = make_atlas(PrintOptions(output=Path(args["out"]), data=Path(args["data"]), bbox=args["bbox"],
                            max_pages=100, project_dir=Path(args["out"]).parent, fmt=args.get("fmt", "pdf")))
print(json.dumps({"seconds": time.perf_counter() - t, "pages": r.pages, "map_pages": r.map_pages,
                  "built": r.cache_built, "timings": r.timings,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "size": Path(args["out"]).stat().st_size if args.get("fmt", "pdf") == "pdf" else 0}))
"""


def bbox_for(nx: int, ny: int) -> str:
    """A WGS84 box that the atlas covers with exactly nx × ny pages."""
    from mapathon import geo

    epsg = geo.utm_epsg(*CENTRE)
    fwd = geo.transformer(4326, epsg)
    inv = geo.transformer(epsg, 4326)
    cx, cy = fwd.transform(*CENTRE)
    w = nx * STEP[0] + OVERLAP - 120  # a little less than nx pages, so the rotation of the box does not add one
    h = ny * STEP[1] + OVERLAP - 120
    lon0, lat0 = inv.transform(cx - w / 2 + 40, cy - h / 2 + 40)
    lon1, lat1 = inv.transform(cx + w / 2 - 40, cy + h / 2 - 40)
    return f"{lon0:.6f},{lat0:.6f},{lon1:.6f},{lat1:.6f}"


def run(folder: Path, nx: int, ny: int, name: str, fmt: str = "pdf") -> dict:
    args = {"out": str(folder / f"{name}.{fmt}"), "data": str(DATA), "bbox": bbox_for(nx, ny), "fmt": fmt}
    res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise SystemExit(f"atlas {name} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    out(f"mapathon print — Liechtenstein extract ({DATA.stat().st_size / 1e6:.1f} MB .osm.pbf), A4 portrait 1:5000")
    with tempfile.TemporaryDirectory() as tmp:
        cold_dir = Path(tmp) / "cold"
        cold_dir.mkdir()
        r = run(cold_dir, 2, 7, "atlas14")
        t = r["timings"]
        out(f"14-page atlas, cold (reads the .osm.pbf into the layer cache): {r['seconds']:.2f} s, "
            f"peak {r['peak_mb']:.0f} MB, {r['pages']} pages, {r['size'] / 1e6:.1f} MB PDF")
        out("  steps: " + ", ".join(f"{k} {v:.2f} s" for k, v in t.items()))
        r = run(cold_dir, 2, 7, "atlas14-warm")
        out(f"14-page atlas, warm (layer cache reused):                    {r['seconds']:.2f} s, "
            f"peak {r['peak_mb']:.0f} MB")
        out("  steps: " + ", ".join(f"{k} {v:.2f} s" for k, v in r["timings"].items()))
        ok = r["seconds"] < 15
        out(f"goal < 15 s and < 1 GB: {'met' if ok and r['peak_mb'] < 1024 else 'NOT met'}")
        out()
        out("pages/s as the atlas grows (warm cache; map pages + cover + index):")
        out(f"{'map pages':>10} {'seconds':>8} {'map pages/s':>12} {'s/page':>7} {'peak MB':>8} {'PDF MB':>7}")
        for nx, ny in ((1, 1), (2, 2), (2, 7), (4, 5), (5, 8), (6, 10)):
            r = run(cold_dir, nx, ny, f"atlas{nx * ny}")
            out(f"{r['map_pages']:>10} {r['seconds']:>8.2f} {r['map_pages'] / r['seconds']:>12.2f} "
                f"{r['seconds'] / r['map_pages']:>7.3f} {r['peak_mb']:>8.0f} {r['size'] / 1e6:>7.1f}")
        r = run(cold_dir, 2, 7, "phone", fmt="png")
        out()
        out(f"14-page atlas as phone pictures (--format png): {r['seconds']:.2f} s, peak {r['peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()
