#!/usr/bin/env python3
"""Generate the volunteers' JOSM files of the Dianguirdé demo (what they would save after an evening).

    python make_contributions.py OUTDIR [--project FOLDER]

The project (default: $MAPATHON_PROJECT) gives the tasks: Awa's task in
Dianguirdé (the one she mapped, else the task holding the village point),
the task south of it for Fanta, and Bakary's Torodo task (the one sent back
for rework, else the one holding the village point). Buildings are drawn
around the real village coordinates (dianguirde-villages.csv) in the local
UTM zone, so that square houses are really square.

Every file numbers its new objects from -1, as JOSM does, so the ids
collide between volunteers. On purpose, the files also hold what the merge
and the checks must catch:

* the same house drawn by Awa and by Fanta on the border of their tasks
  (a duplicate across tasks and volunteers);
* the 2019 borehole "forage" (node 4561949658, version 1) edited by both,
  differently (a conflict);
* a kiosk mapped twice in 2019, deleted by Fanta (a deletion);
* a house 5 degrees off square, a tiny mis-click, an unclosed outline, a
  bow-tie outline, two overlapping houses, a house on the track, a stray
  untagged line;
* Bakary's track to the north, a borehole, a well and a tap (water points).

Writes OUTDIR/<volunteer>-task<ID>.osm and OUTDIR/contributions.tsv
(file, volunteer, task) for 'mapathon submit'.
Data around: © OpenStreetMap contributors, ODbL 1.0.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np
import shapely

from mapathon import geo
from mapathon.osm.josm import JosmXmlWriter
from mapathon.project import open_project
from mapathon.tasks import lifecycle

HERE = Path(__file__).resolve().parent
POIS = HERE / "dianguirde-area-pois-osm2019.osm.pbf"
VILLAGES = HERE / "dianguirde-villages.csv"
FORAGE = 4561949658  # man_made=water_well, name=forage (2019, version 1)
KIOSK_TWICE = 4734684404  # a kiosk 3.5 m from kiosk 4734684403: mapped twice in 2019

AWA, FANTA, BAKARY = "Awa Traoré", "Fanta Sissoko", "Bakary Coulibaly"


class Sketch:
    """One volunteer's JOSM layer: new objects numbered -1, -2, ... (shared by nodes and ways, as JOSM does)."""

    def __init__(self, epsg: int):
        self.epsg = epsg
        self.to_ll = geo.transformer(epsg, geo.WGS84)
        self.next = -1
        self.nodes: list[tuple[int, float, float, dict]] = []
        self.ways: list[tuple[int, list[int], dict]] = []
        self.edits: list[tuple[str, object]] = []  # ("modify" | "delete" | "keep", base node)

    def _id(self) -> int:
        i = self.next
        self.next -= 1
        return i

    def node(self, x: float, y: float, tags: dict | None = None) -> int:
        lon, lat = self.to_ll.transform(x, y)
        i = self._id()
        self.nodes.append((i, lon, lat, tags or {}))
        return i

    def way(self, pts, tags: dict | None, closed: bool = True) -> int:
        ids = [self.node(x, y) for x, y in pts]
        if closed:
            ids.append(ids[0])
        i = self._id()
        self.ways.append((i, ids, tags or {}))
        return i

    def house(self, cx: float, cy: float, w: float, h: float, angle_deg: float, skew_deg: float = 0.0,
              tags: dict | None = None) -> int:
        """A w x h house centred on (cx, cy), turned by angle_deg; skew_deg makes its corners that much off 90."""
        a = math.radians(angle_deg)
        ux, uy = math.cos(a), math.sin(a)
        b = a + math.radians(90 + skew_deg)
        vx, vy = math.cos(b), math.sin(b)
        p0 = (cx - (w * ux + h * vx) / 2, cy - (w * uy + h * vy) / 2)
        pts = [p0, (p0[0] + w * ux, p0[1] + w * uy), (p0[0] + w * ux + h * vx, p0[1] + w * uy + h * vy),
               (p0[0] + h * vx, p0[1] + h * vy)]
        return self.way(pts, tags or {"building": "yes"})

    def hut(self, cx: float, cy: float, r: float, sides: int = 10) -> int:
        pts = [(cx + r * math.cos(2 * math.pi * k / sides), cy + r * math.sin(2 * math.pi * k / sides))
               for k in range(sides)]
        return self.way(pts, {"building": "hut"})

    def write(self, path: Path) -> None:
        with open(path, "wb") as f:
            w = JosmXmlWriter(f, generator="JOSM")
            for action, o in self.edits:
                w.node(o["id"], o["lon"], o["lat"], o["tags"], version=o["version"],
                       action=None if action == "keep" else action)
            for i, lon, lat, tags in self.nodes:
                w.node(i, lon, lat, tags, action="modify")
            for i, refs, tags in self.ways:
                w.way(i, refs, tags, action="modify")
            w.close()


def base_nodes(ids: set[int]) -> dict[int, dict]:
    import osmium

    out = {}
    for o in osmium.FileProcessor(str(POIS), osmium.osm.NODE):
        if o.id in ids:
            out[o.id] = {"id": o.id, "version": o.version, "lon": o.location.lon, "lat": o.location.lat,
                         "tags": dict(o.tags)}
    missing = ids - set(out)
    if missing:
        sys.exit(f"{POIS}: nodes {sorted(missing)} not found")
    return out


def village_point(name: str) -> tuple[float, float]:
    with open(VILLAGES, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["name"] == name:
                return float(row["lon"]), float(row["lat"])
    sys.exit(f"{VILLAGES}: no village {name}")


def task_at(tasks, lon: float, lat: float):
    p = shapely.Point(lon, lat)
    hits = [t for t in tasks if t.state != lifecycle.SPLIT and t.geom.covers(p)]
    return min(hits, key=lambda t: t.id) if hits else None


def pick_tasks(project):
    tasks = lifecycle.list_tasks(project)
    live = [t for t in tasks if t.state != lifecycle.SPLIT]
    dlon, dlat = village_point("Dianguirdé")
    awa = [t for t in live if t.mapped_by == AWA and "Dianguirdé" in t.villages]
    a = min(awa, key=lambda t: t.id) if awa else task_at(live, dlon, dlat)
    minx, miny, maxx, maxy = a.geom.bounds
    f = task_at(live, (minx + maxx) / 2, miny - (maxy - miny) * 0.05)
    bak = [t for t in live if t.mapped_by == BAKARY and "Torodo" in t.villages]
    bak.sort(key=lambda t: (t.state != lifecycle.INVALIDATED, t.id))
    b = bak[0] if bak else task_at(live, *village_point("Torodo"))
    if a is None or f is None or b is None:
        sys.exit("could not find the demo's tasks: grid the project first (mapathon grid --zoom 16)")
    return a, f, b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--project", default=None, help="project folder (default: $MAPATHON_PROJECT)")
    args = ap.parse_args()
    args.outdir.mkdir(parents=True, exist_ok=True)

    with open_project(args.project) as project:
        ta, tf, tb = pick_tasks(project)
    base = base_nodes({FORAGE, KIOSK_TWICE, 2466018729})
    dlon, dlat = village_point("Dianguirdé")
    epsg = geo.utm_epsg(dlon, dlat)
    to_m = geo.transformer(geo.WGS84, epsg)
    rng = np.random.default_rng(2026)

    # the border between Awa's task (north) and Fanta's (south), in metres
    _, border_lat, _, _ = ta.geom.bounds
    ax0, ay0, ax1, ay1 = ta.geom.bounds
    bx, by = to_m.transform(dlon, border_lat)  # on the border, south of the village point
    a_west, _ = to_m.transform(ax0, border_lat)
    a_east, _ = to_m.transform(ax1, border_lat)
    x_lo, x_hi = max(a_west + 40, bx - 220), min(a_east - 40, bx + 220)

    def scatter(n: int, y_from: float, y_to: float, taken: list) -> list[tuple[float, float]]:
        pts = []
        while len(pts) < n:
            x = rng.uniform(x_lo, x_hi)
            y = rng.uniform(y_from, y_to)
            if all((x - u) ** 2 + (y - v) ** 2 > 18 ** 2 for u, v in taken + pts):
                pts.append((x, y))
        return pts

    taken = [to_m.transform(base[FORAGE]["lon"], base[FORAGE]["lat"]),
             to_m.transform(base[KIOSK_TWICE]["lon"], base[KIOSK_TWICE]["lat"]), (bx + 45, by)]
    # the house on the border: Awa draws it, Fanta draws it again half a metre off
    border_house = (bx + 45, by + 1.0)

    # -- Awa: north of the border ---------------------------------------------------------------------
    awa = Sketch(epsg)
    awa.edits.append(("keep", base[2466018729]))  # the village node, downloaded with the area
    forage = dict(base[FORAGE])
    forage["tags"] = {**forage["tags"], "name": "Forage du marché", "water_well": "borehole", "pump": "manual"}
    awa.edits.append(("modify", forage))
    for x, y in scatter(6, by + 25, by + 220, taken):
        awa.house(x, y, rng.uniform(6, 11), rng.uniform(4, 8), rng.uniform(-20, 20))
    x, y = scatter(1, by + 25, by + 220, taken)[0]
    awa.house(x, y, 9, 6, 12, skew_deg=5)  # drawn by hand, 5 degrees off square
    for x, y in scatter(2, by + 25, by + 220, taken):
        awa.hut(x, y, 2.5)
    awa.house(*border_house, 8, 6, 8)

    # -- Fanta: south of the border --------------------------------------------------------------------
    fanta = Sketch(epsg)
    forage = dict(base[FORAGE])
    forage["tags"] = {**forage["tags"], "name": "Forage de l'école", "water_well": "borehole", "pump": "powered"}
    fanta.edits.append(("modify", forage))
    fanta.edits.append(("delete", base[KIOSK_TWICE]))
    for x, y in scatter(5, by - 220, by - 25, taken):
        fanta.house(x, y, rng.uniform(6, 11), rng.uniform(4, 8), rng.uniform(-20, 20))
    fanta.house(border_house[0] + 0.5, border_house[1] - 0.3, 8, 6, 8)  # the same house, again
    x, y = scatter(1, by - 220, by - 25, taken)[0]
    fanta.way([(x, y), (x + 7, y), (x + 7, y + 5), (x, y + 5)], {"building": "yes"}, closed=False)  # not closed
    x, y = scatter(1, by - 220, by - 25, taken)[0]
    fanta.house(x, y, 0.4, 0.4, 0)  # a mis-click: 0.16 m2

    # -- Bakary: Torodo, the track to the north -------------------------------------------------------
    bakary = Sketch(epsg)
    b0x, b0y, b1x, b1y = tb.geom.bounds
    sw = to_m.transform(b0x, b0y)
    ne = to_m.transform(b1x, b1y)
    w, h = ne[0] - sw[0], ne[1] - sw[1]
    track = [(sw[0] + 0.30 * w, sw[1] + 0.10 * h), (sw[0] + 0.36 * w, sw[1] + 0.35 * h),
             (sw[0] + 0.47 * w, sw[1] + 0.55 * h), (sw[0] + 0.52 * w, sw[1] + 0.80 * h),
             (sw[0] + 0.58 * w, sw[1] + 0.97 * h)]
    bakary.way(track, {"highway": "track", "surface": "unpaved"}, closed=False)
    end = track[-1]
    bakary.node(end[0] + 12, end[1] - 10, {"man_made": "water_well", "water_well": "borehole", "pump": "manual",
                                                  "name": "Forage nord"})
    bakary.node(sw[0] + 0.70 * w, sw[1] + 0.30 * h, {"man_made": "water_well"})
    bakary.node(sw[0] + 0.25 * w, sw[1] + 0.30 * h, {"man_made": "water_tap"})
    cx, cy = sw[0] + 0.65 * w, sw[1] + 0.45 * h
    for k in range(5):
        bakary.house(cx + 20 * (k % 3), cy + 22 * (k // 3), 8, 6, -10)
    bakary.house(cx + 20 + 4, cy + 22 + 2, 8, 6, -10)  # overlaps its neighbour by a third
    mid = ((track[1][0] + track[2][0]) / 2, (track[1][1] + track[2][1]) / 2)
    bakary.house(mid[0], mid[1], 7, 5, 30)  # the track runs through this house
    bakary.house(sw[0] + 0.20 * w, sw[1] + 0.60 * h, 14, 10, 5,
                 tags={"building": "school", "amenity": "school", "name": "École de Torodo"})
    bx0, by0 = sw[0] + 0.80 * w, sw[1] + 0.75 * h
    bakary.way([(bx0, by0), (bx0 + 8, by0 + 6), (bx0 + 8, by0), (bx0, by0 + 6)], {"building": "yes"})  # bow tie
    bakary.way([(sw[0] + 0.85 * w, sw[1] + 0.15 * h), (sw[0] + 0.88 * w, sw[1] + 0.20 * h)], {}, closed=False)

    out = []
    for name, sketch, task in ((AWA, awa, ta), (FANTA, fanta, tf), (BAKARY, bakary, tb)):
        path = args.outdir / f"{name.split()[0].lower()}-task{task.id}.osm"
        sketch.write(path)
        out.append((path, name, task))
        print(f"{path}: {len(sketch.nodes)} new nodes, {len(sketch.ways)} new ways, "
              f"{sum(a != 'keep' for a, _ in sketch.edits)} edits of 2019 data, for task {task.id} ({task.key}, "
              f"{task.state}, {', '.join(task.villages)})")
    with open(args.outdir / "contributions.tsv", "w", encoding="utf-8") as f:
        for path, name, task in out:
            f.write(f"{path}\t{name}\t{task.id}\n")


if __name__ == "__main__":
    main()
