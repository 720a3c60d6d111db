"""Benchmark: merge 100 volunteers' JOSM files on the Liechtenstein extract, against `osmium merge`.

Generates 100 JOSM ``.osm`` files of about 2,000 objects each around
Liechtenstein (new buildings with colliding negative ids, unchanged context
objects copied from the extract, a few modified and deleted buildings, a
few duplicates on task borders and conflicting edits), then times in the
same run:

* ``osmium merge EXTRACT FILES... -o out.osm.pbf`` (osmium-tool; no renumbering,
  no conflict detection: it gets the colliding ids wrong), and
* ``mapathon merge --base EXTRACT FILES... -o merged.osm.pbf`` (the library call,
  in a child process, so that its peak memory is its own; and the command line).

Prints objects per second, peak memory and the wall-time ratio.

    .venv/bin/python benchmarks/bench_merge.py [--volunteers 100] [--objects 2000] [--keep DIR]
        [--base BIG.osm.pbf] [--no-cli]

``--base`` merges onto a bigger base made by ``make_bigbase.py`` (its copy 0 is
the Liechtenstein extract, where the volunteers map); ``--no-cli`` skips the
command-line runs (which add the quality checks and the credit).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRACT = ROOT / "tests" / "data" / "liechtenstein-2022-07-24.osm.pbf"
PY = sys.executable


def _load_extract():
    """Buildings of the extract with their nodes (for context copies, modifications, deletions)."""
    import osmium

    buildings, node_use = [], {}
    nodes = {}
    fp = osmium.FileProcessor(str(EXTRACT), osmium.osm.NODE | osmium.osm.WAY).with_locations()
    for o in fp:
        if o.is_way():
            refs = [n.ref for n in o.nodes]
            for r in set(refs):
                node_use[r] = node_use.get(r, 0) + 1
            if "building" in o.tags and len(refs) >= 4 and refs[0] == refs[-1]:
                buildings.append((o.id, o.version, dict(o.tags), refs))
        elif o.is_node():
            nodes[o.id] = (o.version, round(o.location.lon * 1e7), round(o.location.lat * 1e7), dict(o.tags))
    return buildings, nodes, node_use


def _deg(v: int) -> str:
    return f"{v / 1e7:.7f}"


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;").replace('"', "&quot;")


def generate(folder: Path, volunteers: int, objects: int, seed: int = 7) -> list[Path]:
    rnd = random.Random(seed)
    buildings, nodes, node_use = _load_extract()
    rnd.shuffle(buildings)
    # Everyone maps inside the country: 9.48-9.62 E, 47.06-47.24 N.
    files = []
    per_building = 5  # 4 nodes + 1 way
    shared_dups: dict[int, list] = {}
    conflict_pool = buildings[:volunteers // 10 + 1]
    cursor = len(conflict_pool)
    for v in range(volunteers):
        n_context_buildings = 40
        n_mod = 10
        n_del = 2
        ctx = buildings[cursor:cursor + n_context_buildings]
        cursor += n_context_buildings
        mods = ctx[:n_mod]
        dels = [b for b in ctx[n_mod:] if all(node_use.get(r, 0) == 1 for r in b[3])][:n_del]
        new_nodes: list[tuple[int, int, int, dict]] = []
        new_ways: list[tuple[int, list[int], dict]] = []
        nid = wid = -1
        ctx_objects = sum(1 + len(set(b[3])) for b in ctx)
        n_new = max(1, (objects - ctx_objects) // per_building)
        x0 = rnd.randint(94_800_000, 96_100_000)
        y0 = rnd.randint(470_600_000, 472_300_000)

        def building(x, y, tags):
            nonlocal nid, wid
            ids = []
            w, h = rnd.randint(60, 200), rnd.randint(60, 200)
            for dx, dy in ((0, 0), (w, 0), (w, h), (0, h)):
                new_nodes.append((nid, x + dx, y + dy, {}))
                ids.append(nid)
                nid -= 1
            new_ways.append((wid, ids + [ids[0]], tags))
            wid -= 1

        for i in range(n_new):
            building(x0 + rnd.randint(0, 100_000), y0 + rnd.randint(0, 100_000), {"building": "yes"})
        # a few wells, as in Dianguirdé
        for i in range(3):
            new_nodes.append((nid, x0 + rnd.randint(0, 100_000), y0 + rnd.randint(0, 100_000),
                              {"man_made": "water_well"}))
            nid -= 1
        # duplicates on the border between volunteer 2k and 2k+1: the same 5 buildings
        if v % 2 == 0:
            shared_dups[v] = [(x0 + 150_000 + 300 * i, y0) for i in range(5)]
        for (x, y) in shared_dups.get(v - (v % 2), []):
            rr = random.Random(x * 31 + y)
            ids = []
            for dx, dy in ((0, 0), (120, 0), (120, 90), (0, 90)):
                new_nodes.append((nid, x + dx, y + dy, {}))
                ids.append(nid)
                nid -= 1
            new_ways.append((wid, ids + [ids[0]], {"building": "house"}))
            wid -= 1
            rr.random()
        # conflicting edits: every 10th volunteer edits one of the shared buildings differently
        conflict = conflict_pool[v // 10] if v % 10 in (0, 1) else None

        lines = ["<?xml version='1.0' encoding='UTF-8'?>", "<osm version='0.6' generator='JOSM'>"]
        node_lines: dict[int, str] = {}

        def existing_node(r, action=None):
            ver, x, y, tags = nodes[r]
            a = f" action='{action}'" if action else ""
            body = "".join(f"\n    <tag k='{_esc(k)}' v='{_esc(t)}' />" for k, t in tags.items())
            tail = f">{body}\n  </node>" if body else " />"
            return (f"  <node id='{r}'{a} timestamp='2022-01-01T00:00:00Z' visible='true' version='{ver}' "
                    f"lat='{_deg(y)}' lon='{_deg(x)}'{tail}")

        del_ids = {b[0] for b in dels}
        for b in ctx + ([conflict] if conflict else []):
            for r in b[3]:
                if r in nodes:
                    node_lines[r] = existing_node(r, "delete" if b[0] in del_ids else None)
        # osmium merge wants negative ids in ascending order (-3, -2, -1): write them so, or it refuses the files
        for (i, x, y, tags) in reversed(new_nodes):
            body = "".join(f"\n    <tag k='{k}' v='{t}' />" for k, t in tags.items())
            tail = f">{body}\n  </node>" if body else " />"
            lines.append(f"  <node id='{i}' action='modify' visible='true' lat='{_deg(y)}' lon='{_deg(x)}'{tail}")
        lines.extend(node_lines[r] for r in sorted(node_lines))
        for (i, refs, tags) in reversed(new_ways):
            lines.append(f"  <way id='{i}' action='modify' visible='true'>")
            lines.extend(f"    <nd ref='{r}' />" for r in refs)
            lines.extend(f"    <tag k='{k}' v='{t}' />" for k, t in tags.items())
            lines.append("  </way>")
        way_rows = []
        mod_ids = {b[0] for b in mods}
        for b in ctx + ([conflict] if conflict else []):
            bid, ver, tags, refs = b
            action = None
            tags = dict(tags)
            if bid in del_ids:
                action = "delete"
            elif bid in mod_ids:
                action = "modify"
                tags["building:levels"] = "2"
            if conflict is not None and bid == conflict[0]:
                action = "modify"
                tags["roof:shape"] = "flat" if v % 10 == 0 else "gabled"
            way_rows.append((bid, ver, tags, refs, action))
        for bid, ver, tags, refs, action in sorted(way_rows):
            a = f" action='{action}'" if action else ""
            lines.append(f"  <way id='{bid}'{a} timestamp='2022-01-01T00:00:00Z' visible='true' version='{ver}'>")
            lines.extend(f"    <nd ref='{r}' />" for r in refs)
            lines.extend(f"    <tag k='{_esc(k)}' v='{_esc(t)}' />" for k, t in tags.items())
            lines.append("  </way>")
        lines.append("</osm>\n")
        path = folder / f"volunteer-{v:03d}.osm"
        path.write_text("\n".join(lines), encoding="utf-8")
        files.append(path)
    return files


def _count_objects(files) -> int:
    n = 0
    for f in files:
        text = Path(f).read_bytes()
        n += text.count(b"<node ") + text.count(b"<way ") + text.count(b"<relation ")
    return n


def _child_merge(args) -> None:
    """Run in a child process: our merge, timed, with its own peak memory."""
    t0 = time.perf_counter()
    from mapathon.osm.merge import merge

    t_import = time.perf_counter() - t0
    files = json.loads(Path(args.child).read_text())
    for f in (files["output"], files.get("upload"), files.get("josm")):
        if f and os.path.exists(f):
            os.unlink(f)
    t1 = time.perf_counter()
    r = merge(files["inputs"], files["output"], base=files["base"], upload=files.get("upload"),
              josm=files.get("josm"))
    t2 = time.perf_counter()
    print(json.dumps({"seconds": t2 - t1, "import": t_import,
                      "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "helpers_maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                      "stats": r.stats}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--volunteers", type=int, default=100)
    ap.add_argument("--objects", type=int, default=2000, help="objects per volunteer file (about)")
    ap.add_argument("--keep", type=Path, help="keep the generated files and outputs in this folder")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each merge; the best is reported")
    ap.add_argument("--base", type=Path, default=EXTRACT, help="the base extract (default: Liechtenstein)")
    ap.add_argument("--no-cli", action="store_true", help="skip the command-line runs")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child_merge(args)
        return
    osmium_tool = shutil.which("osmium")
    base = args.base.resolve()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-merge-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        files = generate(work, args.volunteers, args.objects)
        n_in = _count_objects(files)
        print(f"Generated {len(files)} volunteer files, {n_in:,} objects, in {time.perf_counter() - t:.1f} s ({work})")
        import osmium

        if osmium_tool:  # counting 10 million objects in Python would take longer than the merge
            info = json.loads(subprocess.run([osmium_tool, "fileinfo", "-e", "-j", str(base)], check=True,
                                             capture_output=True, text=True).stdout)
            base_n = sum(info["data"]["count"][k] for k in ("nodes", "ways", "relations"))
        else:
            base_n = sum(1 for _ in osmium.FileProcessor(str(base)))
        total = base_n + n_in
        print(f"Base: {base.name}, {base_n:,} objects; total input {total:,} objects")

        spec = work / "bench-inputs.json"
        spec.write_text(json.dumps({"inputs": [str(f) for f in files], "base": str(base),
                                    "output": str(work / "merged.osm.pbf")}))
        spec_all = work / "bench-inputs-all.json"
        spec_all.write_text(json.dumps({"inputs": [str(f) for f in files], "base": str(base),
                                        "output": str(work / "merged.osm.pbf"), "upload": str(work / "upload.osc"),
                                        "josm": str(work / "upload-josm.osm")}))

        def child(spec_file):
            p = subprocess.run([PY, __file__, "--child", str(spec_file)], check=True, capture_output=True, text=True)
            return json.loads(p.stdout.strip().splitlines()[-1])

        if not osmium_tool:
            print("osmium-tool not found on PATH: no comparison")
        # osmium's and our runs alternate, so that both see the same machine load
        osm_times, ours, full, osm_rss = [], [], [], 0
        for _ in range(args.repeat):
            if osmium_tool:
                out = work / "osmium-merged.osm.pbf"
                t = time.perf_counter()
                subprocess.run([osmium_tool, "merge", "-O", "-o", str(out), str(base), *map(str, files)],
                               check=True, capture_output=True)
                osm_times.append(time.perf_counter() - t)
                if len(osm_times) == 1:  # before any of our runs: the children's peak is osmium's
                    osm_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            ours.append(child(spec))
        best = min(ours, key=lambda r: r["seconds"])
        full.append(child(spec_all))

        cli_times = []
        mapathon = Path(PY).parent / "mapathon"
        if mapathon.exists() and not args.no_cli:
            for _ in range(args.repeat):
                t = time.perf_counter()
                p = subprocess.run([str(mapathon), "merge", "--base", str(base), *map(str, files), "-o",
                                    str(work / "merged-cli.osm.pbf")], capture_output=True, text=True)
                if p.returncode:
                    print("mapathon merge (command line) failed:", p.stderr.strip()[-500:])
                    break
                cli_times.append(time.perf_counter() - t)

        print()
        print(f"mapathon merge (library call): {best['seconds']:.2f} s  "
              f"{total / best['seconds']:,.0f} objects/s  peak memory {best['maxrss_kb'] / 1024:.0f} MB "
              f"(its forked helpers: {best['helpers_maxrss_kb'] / 1024:.0f} MB, mostly shared pages)")
        print("  phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in best["stats"]["timings"].items()))
        s = best["stats"]
        print(f"  new {s['new']:,}, modified {s['modified']:,}, deleted {s['deleted']:,}, renumbered "
              f"{s['renumbered']:,}, conflicts {s['conflicts']}, duplicates collapsed {s['duplicates_collapsed']}")
        print(f"  with --upload and --josm written too: {full[0]['seconds']:.2f} s")
        if cli_times:
            print(f"mapathon merge (command line, incl. Python start-up): {min(cli_times):.2f} s")
        if osm_times:
            o = min(osm_times)
            print(f"osmium merge: {o:.2f} s  {total / o:,.0f} objects/s  peak memory {osm_rss / 1024:.0f} MB")
            print(f"ratio mapathon/osmium: {best['seconds'] / o:.2f} (library call)"
                  + (f", {min(cli_times) / o:.2f} (command line)" if cli_times else "") + "  — goal: at most 3")
        if osmium_tool:
            r = subprocess.run([osmium_tool, "check-refs", str(work / "merged.osm.pbf")], capture_output=True,
                               text=True)
            print("osmium check-refs on our snapshot:", (r.stdout + r.stderr).strip().replace("\n", "; "))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
