"""Quality checks over the Liechtenstein extract (17,600 buildings, 340,000 objects).

Goal: every check (duplicates, overlaps, crossings, not square, tiny,
unclosed, self-intersecting, untagged) in at most 3 s, reading the file included.
Each run is a fresh child process, so that its peak memory is its own; the
first run also pays for the disk cache, the best of the others is reported.

Run:  .venv/bin/python benchmarks/bench_checks.py [--runs 3] [FILE]

Bases of a country's size: with ``--sizes 1,3,10`` it builds bases of 1x, 3x, 10x the
Liechtenstein extract (copies with shifted ids and positions, written with pyosmium; kept in
``--work``), generates the 100 volunteers' files of ``bench_merge.py``, and times in the same run,
each command in its own process under ``/usr/bin/time`` (wall time, peak memory):

* ``mapathon check BASE`` (the whole file);
* ``osmium merge BASE FILES... -o out.osm.pbf`` (osmium-tool) and ``mapathon merge --base BASE
  FILES... -o merged.osm.pbf`` (merge, checks of the changes, credit, report), and their ratio.

    .venv/bin/python benchmarks/bench_checks.py --sizes 1,3,10 [--runs 2] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import out  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "tests" / "data" / "liechtenstein-2022-07-24.osm.pbf"
GOAL_S = 3.0


def child(path: str) -> None:
    import resource
    import time

    import numpy  # noqa: F401  (imports are not part of the check's time or memory)
    import osmium  # noqa: F401
    import shapely  # noqa: F401

    from mapathon.quality.checks import check_file

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    r = check_file(path)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "imports_mb": before, "stats": r.stats,
                      "counts": r.counts(), "findings": len(r.findings)}))


def make_copies(n: int, dest: Path) -> Path:
    """A sorted base of *n* copies of the Liechtenstein extract (``make_bigbase.py``; copy 0 is the extract
    itself, where the volunteers' files map), made once."""
    import make_bigbase

    if not dest.exists():
        make_bigbase.make(n, dest)
    return dest


def _timed_run(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak MB) of one command, measured by /usr/bin/time."""
    p = subprocess.run(["/usr/bin/time", "-f", "@@ %e %M", *cmd], cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    line = [x for x in p.stderr.splitlines() if x.startswith("@@ ")][-1]
    _, sec, kb = line.split()
    return float(sec), int(kb) / 1024


def sizes(args) -> None:
    import bench_merge

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    vols = work / "volunteers"
    if not vols.is_dir():
        vols.mkdir()
        bench_merge.generate(vols, 100, 2000)
    files = sorted(str(p) for p in vols.glob("*.osm"))
    mapathon = str(Path(sys.executable).parent / "mapathon")
    out(f"Bases of n copies of {DEFAULT.name}, 100 volunteers' files ({len(files)} files); best of {args.runs} runs")
    out(f"{'size':>5} {'objects':>10} | {'check s':>8} {'MB':>6} | {'osmium merge s':>14} {'MB':>6} | "
        f"{'mapathon merge s':>16} {'MB':>6} | ratio")
    for n in [int(x) for x in args.sizes.split(",")]:
        base = make_copies(n, work / f"base-{n}x.osm.pbf")
        objects = n * 340_000  # about: the extract holds ~340,000 objects
        best = {}
        for label, cmd in (("check", [mapathon, "check", str(base), "--limit", "0"]),
                           ("osmium", ["osmium", "merge", "-O", str(base), *files, "-o", str(work / "om.osm.pbf")]),
                           ("merge", [mapathon, "merge", "--base", str(base), *files, "-o",
                                      str(work / "merged.osm.pbf"), "--json"])):
            runs = [_timed_run(cmd, work) for _ in range(max(1, args.runs))]
            best[label] = min(runs)
        out(f"{n:>4}x {objects:>10,} | {best['check'][0]:>8.2f} {best['check'][1]:>6.0f} | "
            f"{best['osmium'][0]:>14.2f} {best['osmium'][1]:>6.0f} | {best['merge'][0]:>16.2f} "
            f"{best['merge'][1]:>6.0f} | {best['merge'][0] / best['osmium'][0]:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file", nargs="?", default=str(DEFAULT))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", help="Bases of these many copies of the extract, e.g. 1,3,10.")
    ap.add_argument("--work", default="/tmp/mapathon-bench-checks", help="Where the bases and files are kept.")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.file)
        return
    if args.sizes:
        sizes(args)
        return
    runs = []
    for _ in range(max(1, args.runs)):
        p = subprocess.run([sys.executable, __file__, "--child", args.file], capture_output=True, text=True,
                           check=True)
        runs.append(json.loads(p.stdout))
    best = min(runs[1:] or runs, key=lambda r: r["seconds"])
    st = best["stats"]
    out(f"mapathon check {Path(args.file).name}: {st['buildings']:,} buildings, {st['highways']:,} highways, "
        f"{st['ways']:,} ways")
    out(f"  wall time: {best['seconds']:.2f} s (best of {len(runs[1:] or runs)}; all runs: "
        + ", ".join(f"{r['seconds']:.2f}" for r in runs) + f" s)  goal <= {GOAL_S:.0f} s: "
        + ("met" if best["seconds"] <= GOAL_S else "NOT met"))
    out("  stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in st["timings"].items()))
    out(f"  peak memory: {best['peak_mb']:.0f} MB (of which {best['imports_mb']:.0f} MB after imports)")
    out(f"  findings: {best['findings']:,} — " + ", ".join(f"{k} {v:,}" for k, v in best["counts"].items()))


if __name__ == "__main__":
    main()
