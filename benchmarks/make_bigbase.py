"""Make a big base extract: N copies of the Liechtenstein extract side by side.

Copy ``c`` (0 to N-1) has every id shifted by ``c * 10**10`` (above the
extract's largest id, so copies never share an id) and every position moved
by whole multiples of 0.6 degrees (the extract is 0.58 degrees wide and
high), copies laid out six per row, so copies do not overlap. Copy 0 is the
extract itself, so the volunteer files of ``bench_merge.py`` (made around
Liechtenstein) apply to any size. Tags, versions and metadata are kept.

Each copy is written by pyosmium, then osmium-tool merges the sorted copies
into one file sorted by type and id (what a real extract is).

    .venv/bin/python benchmarks/make_bigbase.py N OUT.osm.pbf [--extract FILE]

About 340,000 objects per copy: N=30 gives about 10 million.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRACT = ROOT / "tests" / "data" / "liechtenstein-2022-07-24.osm.pbf"

#: ids of copy c are shifted by c * ID_STEP (Liechtenstein's largest id is 9,901,312,927)
ID_STEP = 10**10
#: positions of copy c are moved by (c % PER_ROW, c // PER_ROW) * DEG_STEP degrees
DEG_STEP = 0.6
PER_ROW = 6


def shift(c: int) -> tuple[int, float, float]:
    """(id offset, longitude offset, latitude offset) of copy *c*."""
    return c * ID_STEP, (c % PER_ROW) * DEG_STEP, (c // PER_ROW) * DEG_STEP


def write_copy(extract: Path, c: int, dest: Path) -> None:
    """Copy *c* of *extract* into *dest* (sorted like the extract)."""
    import osmium

    off, dx, dy = shift(c)
    w = osmium.SimpleWriter(str(dest))
    try:
        for o in osmium.FileProcessor(str(extract)):
            if o.is_node():
                loc = o.location
                if loc.valid():
                    w.add_node(o.replace(id=o.id + off, location=(loc.lon + dx, loc.lat + dy)))
                else:
                    w.add_node(o.replace(id=o.id + off))
            elif o.is_way():
                w.add_way(o.replace(id=o.id + off, nodes=[n.ref + off for n in o.nodes]))
            else:
                w.add_relation(o.replace(id=o.id + off,
                                         members=[(m.type, m.ref + off, m.role) for m in o.members]))
    finally:
        w.close()


def make(n: int, out: Path, extract: Path = EXTRACT) -> None:
    if n < 1:
        sys.exit("N must be at least 1")
    tmp = Path(tempfile.mkdtemp(prefix="bigbase-", dir=out.parent))
    try:
        parts = [extract]  # copy 0: the extract itself
        for c in range(1, n):
            p = tmp / f"copy{c:03d}.osm.pbf"
            write_copy(extract, c, p)
            parts.append(p)
        partial = tmp / "out.osm.pbf"
        if len(parts) == 1:
            shutil.copyfile(extract, partial)
        else:
            subprocess.run(["osmium", "merge", "--no-progress", "-O", "-o", str(partial),
                            *(str(p) for p in parts)], check=True)
        os.replace(partial, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n", type=int, help="number of copies of the extract")
    ap.add_argument("out", type=Path, help="the .osm.pbf to write")
    ap.add_argument("--extract", type=Path, default=EXTRACT)
    a = ap.parse_args()
    t = time.perf_counter()
    make(a.n, a.out.resolve(), a.extract)
    print(f"{a.out}: {a.n} copies of {a.extract.name} in {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
