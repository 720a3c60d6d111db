"""Quality checks over the Liechtenstein extract (17,600 buildings, 340,000 objects).

Goal (issue 3): every check (duplicates, overlaps, crossings, not square, tiny,
unclosed, self-intersecting, untagged) in at most 3 s, reading the file included.
Each run is a fresh child process, so that its peak memory is its own; the
first run also pays for the disk cache, the best of the others is reported.

Run:  .venv/bin/python benchmarks/bench_checks.py [--runs 3] [FILE]
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file", nargs="?", default=str(DEFAULT))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.file)
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
