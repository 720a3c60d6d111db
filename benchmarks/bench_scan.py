"""`mapathon scan` end to end: 20 12-megapixel photos of atlas pages with ink marks, in a project
(placed, GeoTIFF written and imported into the 'scans' imagery, marks found against a render of the
page, review files written, marks kept in the project).

Goals (issue 14): one photo in at most 2 s; 20 photos, marks included, in at most 30 s on 2 cores;
peak memory under 1 GB for the whole process tree (the command and the processes it starts).

A project around central Vaduz (Liechtenstein extract) prints its atlas at 1:5000; a few strokes and
dots in the four inks are drawn on each map page; the photos are made from them (tests/scan_photos.py:
tilted up to 35°, rotated, shadows, noise, JPEG 85). `mapathon scan` runs as a command in a child
process; its wall time is measured from here and the memory of its process tree is sampled every
20 ms from /proc: the largest sum of the processes' resident memory at one moment, and each process's
own peak (VmHWM), and the largest sum of their proportional set sizes (PSS: a page shared by
several processes, such as a library every worker maps, counted once).

Run:  .venv/bin/python benchmarks/bench_scan.py [--photos 20] [--pages 5] [--jobs N]
      (--pages: how many different pages the photos show; a page's render is reused for its next photo)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import out  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
DATA = ROOT / "tests" / "data" / "liechtenstein-2022-07-24.osm.pbf"
MAPATHON = [sys.executable, "-c", "from mapathon.cli import main; main()"]
INKS = [(200, 40, 45), (45, 85, 200), (40, 140, 75), (40, 40, 45)]


def _kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    """The process's proportional set size: its private memory plus its share of pages it shares with
    other processes (libraries mapped by every worker, pages of a fork), so that a sum over processes
    counts each page once."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(root: int) -> list[int]:
    """*root* and its descendants (from /proc/*/stat parent ids)."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, todo = [], [root]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += [c for c, pp in parent.items() if pp == p]
    return tree


def run_measured(argv: list[str], env: dict) -> dict:
    """Run *argv*; its wall time, the peak of its process tree's summed RSS (sampled) and each process's
    own peak (VmHWM, read while it lives)."""
    import resource

    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT)  # `python -c` reads the folder it runs in first
    peak_sum, peak_pss, hwm = 0, 0, {}
    import threading

    outs = {}
    reader = threading.Thread(target=lambda: outs.update(zip(("out", "err"), proc.communicate())))
    reader.start()
    while proc.poll() is None:
        total = pss = 0
        for pid in _tree(proc.pid):
            total += _kb(pid, "VmRSS")
            pss += _pss_kb(pid)
            hwm[pid] = max(hwm.get(pid, 0), _kb(pid, "VmHWM"))
        peak_sum = max(peak_sum, total)
        peak_pss = max(peak_pss, pss)
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    reader.join()
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the command and its processes (waited for)
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    if proc.returncode not in (0,):
        sys.exit(f"{' '.join(argv[3:])} failed:\n{outs.get('err', '')[-3000:]}")
    procs = sorted((v for v in hwm.values() if v), reverse=True)
    return {"wall": wall, "cpu": cpu, "peak_mb": peak_sum / 1024, "peak_pss_mb": peak_pss / 1024,
            "hwm_mb": [v / 1024 for v in procs],
            "results": json.loads(outs["out"])}


def make_project(tmp: Path, pages: int) -> tuple[Path, list]:
    """A project around central Vaduz with its atlas printed; the map pages as 300 dpi rasters, inked."""
    import numpy as np
    from scan_photos import page_raster, stroke_mm

    from mapathon.scan import register

    csv = tmp / "villages.csv"
    csv.write_text("name,lat,lon\nVaduz,47.1405,9.5215\n")
    proj = tmp / "proj"
    subprocess.run(MAPATHON + ["init", str(proj), "--name", "Vaduz", "--aoi", str(csv), "--radius", "1500"],
                   check=True, capture_output=True, env=_env(), cwd=ROOT)
    (proj / "merged").mkdir(exist_ok=True)
    shutil.copyfile(DATA, proj / "merged" / "latest.osm.pbf")
    w = 0.007 * max(1, pages) ** 0.5  # about `pages` pages of 1:5000
    bbox = f"9.515,47.138,{9.515 + w:.4f},{47.138 + w * 0.7:.4f}"
    pdf = tmp / "atlas.pdf"
    subprocess.run(MAPATHON + ["--project", str(proj), "print", "--bbox", bbox, "--scale", "1:5000", "-o", str(pdf)],
                   check=True, capture_output=True, env=_env(), cwd=ROOT)
    rasters = []
    rng = np.random.default_rng(1)
    import pypdfium2 as pdfium

    n = len(pdfium.PdfDocument(str(pdf)))
    for i in range(1, n):
        r = page_raster(pdf, i, 300)
        metas = register.read_qr(register.to_gray(r))
        if not metas or "frame_mm" not in metas[0]:
            continue
        fx, fy, fw, fh = metas[0]["frame_mm"]
        for k in range(8):  # strokes and dots in the four inks
            x0, y0 = fx + rng.uniform(20, fw - 20), fy + rng.uniform(20, fh - 20)
            x1, y1 = (x0 + 0.3, y0) if k % 3 == 0 else (x0 + rng.uniform(-30, 30), y0 + rng.uniform(-30, 30))
            r = stroke_mm(r, 300, (x0, y0), (x1, y1), 2.0 if k % 3 == 0 else 0.7, INKS[k % 4])
        rasters.append(r)
        if len(rasters) == pages:
            break
    return proj, rasters


def _env(**extra) -> dict:
    return {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), **extra}


def main() -> None:
    import cv2
    from scan_photos import make_photo

    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=20)
    ap.add_argument("--pages", type=int, default=5)
    ap.add_argument("--jobs", help="MAPATHON_JOBS for the scan (1: one process)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        proj, rasters = make_project(tmp, a.pages)
        photos = []
        for i in range(a.photos):
            ph = make_photo(rasters[i % len(rasters)], 300, tilt=(i * 7) % 36, rot=(0, 90, 180, 13)[i % 4],
                            light=i % 3 == 0, noise=4, jpeg=85, seed=i)
            p = tmp / f"IMG_{i:04d}.jpg"
            cv2.imwrite(str(p), ph.rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
            photos.append(str(p))
        h, w = ph.rgb.shape[:2]
        env = _env(**({"MAPATHON_JOBS": a.jobs} if a.jobs else {}))
        scan = MAPATHON + ["--project", str(proj), "scan", "--json"]
        one = run_measured(scan + photos[:1], env)
        shutil.rmtree(proj / "scans")
        many = run_measured(scan + photos, env)
        res = many["results"]
        out(f"{len(rasters)} pages, {a.photos} photos {w}x{h} ({w * h / 1e6:.1f} MP, JPEG 85), "
            f"MAPATHON_JOBS={a.jobs or 'default'}")
        out(f"load average at the end: {open('/proc/loadavg').read().split()[0]} ({os.cpu_count()} cores)")
        out(f"mapathon scan, 1 photo: {one['wall']:.2f} s wall (command start included), "
            f"{one['results'][0]['seconds']:.2f} s for the photo; peak {one['peak_mb']:.0f} MB")
        out(f"mapathon scan, {len(res)} photos with their marks: {many['wall']:.1f} s wall (goal 30 s), "
            f"CPU {many['cpu']:.1f} s; "
            f"{sum(r['ok'] for r in res)} placed, {sum(r.get('marks') or 0 for r in res)} marks, "
            f"worst residual {max(r.get('residual_max_mm') or 0 for r in res):.2f} mm")
        out(f"peak memory of the process tree: {many['peak_pss_mb']:.0f} MB at one moment, shared pages counted "
            f"once (PSS; goal 1 GB); {many['peak_mb']:.0f} MB summing each process's resident memory; "
            f"each process's own peak: {', '.join(f'{v:.0f}' for v in many['hwm_mb'])} MB "
            f"(sum {sum(many['hwm_mb']):.0f} MB)")


if __name__ == "__main__":
    main()
