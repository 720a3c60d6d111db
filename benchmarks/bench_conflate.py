"""Benchmark: conflate 10,000 survey submissions with the 2019 data of the Dianguirdé area.

The conflation half of ``bench_survey`` (the import half times storing submissions with photos):
10,000 submissions by 20 surveyors, four in five at one of the 59 real wells with 3-15 m of GPS noise
(answers that add ``operational_status`` and ``pump``), one in five at a new place. Times, in one run:

* matching alone (one STRtree query for all the points, :func:`mapathon.survey.conflate.match`);
* ``survey_merge`` into a fresh project: matching, the surveyors' JOSM files, their submission as
  contributions and the event that records the run.

    .venv/bin/python benchmarks/bench_conflate.py [--submissions 10000]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import out, peak_rss_mb  # noqa: E402

DATA = ROOT / "tests" / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--submissions", type=int, default=10_000)
    args = ap.parse_args()

    import numpy as np

    from mapathon import geo
    from mapathon.aoi import read_aoi
    from mapathon.project import init_project
    from mapathon.survey.conflate import Candidates, match, survey_merge
    from mapathon.survey.store import Submission

    pois = DATA / "dianguirde-area-pois-osm2019.osm.pbf"
    c = Candidates.from_file(pois)
    wells = [j for j, n in enumerate(c.nodes) if n.tags.get("man_made") == "water_well"]
    back = geo.transformer(f"EPSG:{c.epsg}", "EPSG:4326")
    rng = np.random.default_rng(2026)
    subs = []
    for i in range(args.submissions):
        who = f"Enquêteur {i % 20 + 1}"
        if i % 5:
            j = wells[i % len(wells)]
            d, a = rng.uniform(3, 15), rng.uniform(0, 2 * math.pi)
            x, y = c.xy[j] + d * np.array([math.cos(a), math.sin(a)])
            acc = math.ceil(d)
        else:
            x, y = c.xy[wells[0]] + rng.uniform(-20000, 20000, 2)
            acc = 5
        lon, lat = back.transform(x, y)
        subs.append(Submission(f"uuid:{i:08d}", "water", "1", who, "2026-12-05T10:00:00Z", float(lon), float(lat),
                               acc, tags={"man_made": "water_well", "operational_status": "operational",
                                          "pump": "manual"}))
    t = time.perf_counter()
    got = match(subs, c)
    t_match = time.perf_counter() - t
    counts = {}
    for r in got:
        counts[r[0]] = counts.get(r[0], 0) + 1
    out(f"match: {len(subs):,} submissions in {t_match:.2f} s ({counts})")

    with tempfile.TemporaryDirectory() as tmp:
        aoi = read_aoi(DATA / "dianguirde-villages.csv", radius=2000)
        with init_project(Path(tmp) / "p", "bench", aoi) as p:
            t = time.perf_counter()
            res = survey_merge(p, subs, base=pois)
            t_all = time.perf_counter() - t
    out(f"survey merge: {len(subs):,} submissions in {t_all:.2f} s: {res.counts()}, "
        f"{len(res.contributions)} contributions, {len(res.findings)} findings; peak memory {peak_rss_mb():.0f} MB")
    out(f"budget: 10 s for import and conflation together; conflation took {t_all:.2f} s")


if __name__ == "__main__":
    main()
