"""Quality checks of OSM data, as mapathon validators run them (``mapathon check``).

Thresholds follow the common tools:

==========================  =====================================================================
kind                        rule
==========================  =====================================================================
duplicate_building          the same building drawn twice: an overlap of at least 60 % of the smaller
                            one, the smaller at least 60 % of the larger's area, and outlines no
                            further apart (Hausdorff distance) than 30 % of the larger's size
                            (square root of its area): a 9 m house drawn again 1 m off, or turned
                            by 5 deg, is a duplicate; a hut inside a big compound building is not
overlapping_buildings       two buildings whose overlap is above 10 % of the smaller one, and not
                            a duplicate
unclosed_building           a way tagged building=* whose last node is not its first
self_intersecting_area      an area (building, landuse, ...) whose outline crosses or touches itself;
                            a building multipolygon whose rings cannot be assembled
untagged_way                a way with no tags (other than source, note, fixme...) in no relation
building_crosses_highway    a highway line crossing a building in the same ``layer`` (default 0)
building_not_square         a corner of a building way off 90 deg by more than 1 and less than
                            10 deg (JOSM's "Building with an almost square angle"; corners near
                            180 deg, and round huts, are not corners and are not reported)
tiny_building               a building under 0.25 m2
==========================  =====================================================================

All geometry work is vectorised with shapely 2: areas, validity, angles
and intersections are computed on whole arrays, and pairs of buildings (or
a highway and a building) come from one bulk STRtree query with a
predicate. Lengths, areas and angles are computed in the local UTM zone
(a conformal projection: angles are true).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely

from .. import geo
from ..errors import MapathonError
from ..fsutil import atomic_path
from .features import Features, Scope, read_features, reason_point
from .where import Locator, Provenance

DUPLICATE_MIN = 0.60  # overlap / smaller area
DUPLICATE_SIZE_MIN = 0.60  # smaller area / larger area
DUPLICATE_SHAPE_MAX = 0.30  # Hausdorff distance of the outlines / square root of the larger area
OVERLAP_MIN = 0.10
SQUARE_MIN_DEG = 1.0
SQUARE_MAX_DEG = 10.0
TINY_M2 = 0.25
#: Bounds on the building pairs compared (duplicates, overlaps), so that a file of thousands of mutually
#: overlapping buildings (a broken import, a malicious upload) costs seconds and a bounded memory, not
#: minutes and gigabytes: pairs are fetched from the STRtree a chunk of about CHUNK_PAIRS at a time,
#: and comparing stops after MAX_PAIRS pairs or MAX_PAIR_FINDINGS findings (the rest is reported).
CHUNK_PAIRS = 100_000
MAX_PAIRS = 1_000_000
MAX_PAIR_FINDINGS = 20_000

#: kind -> (title, severity), in the order of the summary.
KINDS: dict[str, tuple[str, str]] = {
    "duplicate_building": ("Duplicate building", "error"),
    "overlapping_buildings": ("Overlapping buildings", "warning"),
    "building_crosses_highway": ("Building crosses highway", "warning"),
    "unclosed_building": ("Unclosed building way", "error"),
    "self_intersecting_area": ("Self-intersecting area", "error"),
    "untagged_way": ("Untagged way", "warning"),
    "building_not_square": ("Building not square", "warning"),
    "tiny_building": ("Tiny building", "warning"),
}

_TYPE_LETTER = {"node": "n", "way": "w", "relation": "r"}


@dataclass
class Finding:
    """One problem: what, which objects, where, in which task and village, and whose work it is."""

    kind: str
    objects: list[tuple[str, int]]  # (type, id): ("way", -12)
    lon: float | None
    lat: float | None
    message: str
    value: float | None = None  # overlap %, degrees off 90, area in m2
    users: list[str] = field(default_factory=list)  # each object's OSM user attribute ("" if none)
    volunteers: list[str] = field(default_factory=list)
    contributed: bool = False  # at least one object comes from a volunteer's contribution
    file_tasks: list[str] = field(default_factory=list)  # tasks the contributing files were submitted for
    task: int | None = None  # the task the location falls in
    task_key: str | None = None
    village: str | None = None
    detail: dict = field(default_factory=dict)

    @property
    def title(self) -> str:
        return KINDS[self.kind][0]

    @property
    def severity(self) -> str:
        return KINDS[self.kind][1]

    def josm_ids(self) -> str:
        """The objects as JOSM's "Download object" / search ``id:`` takes them: w-12,w-15."""
        return ",".join(f"{_TYPE_LETTER[t]}{i}" for t, i in self.objects)

    def objects_text(self) -> str:
        return ", ".join(f"{t} {i}" for t, i in self.objects)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "title": self.title, "severity": self.severity, "message": self.message,
                "objects": [{"type": t, "id": i} for t, i in self.objects],
                "lon": None if self.lon is None else round(self.lon, 7),
                "lat": None if self.lat is None else round(self.lat, 7),
                "value": None if self.value is None else round(self.value, 3),
                "task": self.task, "task_key": self.task_key, "village": self.village,
                "volunteers": self.volunteers, "contributed": self.contributed, "file_tasks": self.file_tasks,
                "detail": self.detail}


@dataclass
class CheckResult:
    source: str
    findings: list[Finding]
    stats: dict
    seconds: float
    warnings: list[str] = field(default_factory=list)
    provenance: str = "none"

    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in KINDS}
        for f in self.findings:
            out[f.kind] += 1
        return out

    def as_dict(self) -> dict:
        return {"file": self.source, "seconds": round(self.seconds, 3), "checked": self.stats,
                "provenance": self.provenance, "counts": self.counts(),
                "contributed": sum(f.contributed for f in self.findings),
                "findings": [f.as_dict() for f in self.findings], "warnings": self.warnings,
                "thresholds": {"duplicate_min_overlap": DUPLICATE_MIN, "duplicate_min_size": DUPLICATE_SIZE_MIN,
                               "duplicate_max_shape": DUPLICATE_SHAPE_MAX, "overlap_min": OVERLAP_MIN,
                               "square_min_deg": SQUARE_MIN_DEG, "square_max_deg": SQUARE_MAX_DEG,
                               "tiny_m2": TINY_M2}}

    def write_geojson(self, dest: str | Path) -> int:
        """Write the findings as a GeoJSON point layer (for JOSM or QGIS), atomically. Returns the count."""
        return write_findings_geojson(self.findings, dest)


# -- the checks ----------------------------------------------------------------------------------------


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """Valid polygonal versions of (possibly invalid) polygons."""
    out = geoms.copy()
    bad = ~shapely.is_valid(out)
    if bad.any():
        fixed = shapely.make_valid(out[bad])
        out[bad] = [geo.polygonal_part(g) for g in fixed]
    return out


def _not_square(rings_m: np.ndarray):
    """Rings (metric, closed; or polygons without holes, read as their outline) with a corner off:
    [(ring index, coordinate index, degrees off, bad corners)], coords.

    Corner angles are the unsigned angles between the two edges at every
    vertex (0-180 deg, as JOSM computes them); like JOSM, the first offending
    corner is reported, in the order node 2, 3, ..., last, then node 1.
    """
    coords, idx = shapely.get_coordinates(rings_m, return_index=True)
    if not len(coords):
        return [], coords
    counts = np.bincount(idx, minlength=len(rings_m))
    starts = np.cumsum(counts) - counts
    pos = np.arange(len(coords)) - starts[idx]
    k = counts[idx] - 1  # distinct vertices (the last coordinate repeats the first)
    keep = (pos < k) & (k >= 3)
    cur = np.nonzero(keep)[0]
    ring = idx[cur]
    p, kk, s = pos[cur], k[cur], starts[ring]
    prev = s + (p - 1) % kk
    nxt = s + (p + 1) % kk
    v1 = coords[prev] - coords[cur]
    v2 = coords[nxt] - coords[cur]
    cross = v1[:, 0] * v2[:, 1] - v1[:, 1] * v2[:, 0]
    dot = (v1 * v2).sum(axis=1)
    ang = np.degrees(np.arctan2(np.abs(cross), dot))
    off = np.abs(ang - 90.0)
    bad = (off > SQUARE_MIN_DEG) & (off < SQUARE_MAX_DEG)
    if not bad.any():
        return [], coords
    order = np.where(p == 0, kk, p)  # JOSM's order: node index 1.. then node 0 last
    bi = np.nonzero(bad)[0]
    # first bad corner per ring: sort by (ring, order)
    srt = bi[np.lexsort((order[bi], ring[bi]))]
    rings_bad, first = np.unique(ring[srt], return_index=True)
    nbad = np.bincount(ring[bi], minlength=len(rings_m))
    return [(int(r), int(cur[srt[f]]), float(off[srt[f]]), int(nbad[r])) for r, f in zip(rings_bad, first)], coords


def _bounded_pairs(tree: shapely.STRtree, queries: np.ndarray, predicate: str = "intersects", *,
                   self_pairs: bool = True, chunk_pairs: int | None = None):
    """Yield (start, qi, qj): pairs of indices (query, tree geometry) satisfying *predicate*, for the
    queries from *start* on, a chunk of about *chunk_pairs* candidates at a time (each unordered pair
    once, qi < qj, when the queries are the tree's own geometries: *self_pairs*).

    The chunk size comes from the candidates per query of a sample (each queried alone, so a dense
    cluster cannot blow up the sample) and adapts to what each chunk found; memory stays bounded
    whatever the overlaps. The consumer stops when it has had enough (MAX_PAIRS).

    "crosses" is found as GEOS finds "intersects" (on a prepared geometry: fast), then tested on those
    few pairs: the same pairs in the same order, in less than half the time of the tree's own "crosses".
    """
    n = len(queries)
    if not n:
        return
    chunk_pairs = chunk_pairs or CHUNK_PAIRS
    sample = queries[:: max(1, n // 32)]
    per = max(1, max(len(tree.query(g)) for g in sample))
    size = max(1, min(n, chunk_pairs // per))
    start = 0
    while start < n:
        stop = min(n, start + size)
        qi, qj = tree.query(queries[start:stop], predicate="intersects" if predicate == "crosses" else predicate)
        if predicate == "crosses" and len(qi):
            keep = shapely.crosses(queries[start:stop][qi], tree.geometries[qj])
            qi, qj = qi[keep], qj[keep]
        qi = qi + start
        found = len(qi)
        if self_pairs:
            keep = qi < qj
            qi, qj = qi[keep], qj[keep]
        yield start, qi, qj
        # the next chunk: as many queries as should give about chunk_pairs pairs at this chunk's density
        size = max(1, min(n, int((stop - start) * chunk_pairs / max(found, 1)), size * 4))
        start = stop


def _self_intersecting_buildings(f: Features, valid, way, bobj, out: list) -> None:
    """Building ways whose outline crosses itself."""
    for i in np.nonzero(~valid & way)[0]:
        reason = shapely.is_valid_reason(f.b_geom[i])
        if "Self-intersection" in reason:
            p = reason_point(reason) or _first_point(f.b_geom[i])
            out.append(Finding("self_intersecting_area", [bobj(i)], p[0], p[1],
                               f"building outline crosses itself ({reason.split('[')[0]})",
                               users=[f.b_user[i]]))


def _tiny_buildings(f: Features, bm, areas, bobj, out: list, metric_pts: list) -> None:
    """Buildings under TINY_M2."""
    for i in np.nonzero(areas < TINY_M2)[0]:
        fi = Finding("tiny_building", [bobj(i)], None, None,
                     f"building of {areas[i]:.3g} m² (under {TINY_M2:g} m²)", value=float(areas[i]),
                     users=[f.b_user[i]])
        c = shapely.get_coordinates(bm[i])
        metric_pts.append((fi, *(c.mean(axis=0) if len(c) else (np.nan, np.nan))))
        out.append(fi)


def _overlapping_buildings(f: Features, tree, fixed, areas, bobj, out: list, metric_pts: list,
                           stats: dict) -> None:
    """Duplicates and overlaps: STRtree pairs a bounded chunk at a time, intersection areas vectorised."""
    nb = len(f.b_id)
    pairs_done = pair_findings = 0
    not_compared = 0
    for start, qi, qj in _bounded_pairs(tree, fixed):
        budget = MAX_PAIRS - pairs_done
        if len(qi) > budget:  # the pairs are in query order: the buildings from qi[budget] on are left
            not_compared = nb - int(qi[budget])
            qi, qj = qi[:budget], qj[:budget]
        pairs_done += len(qi)
        if len(qi):
            inter_g = shapely.intersection(fixed[qi], fixed[qj])
            inter = shapely.area(inter_g)
            smaller = np.minimum(areas[qi], areas[qj])
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(smaller > 0, inter / smaller, 0.0)
            sel = np.nonzero(ratio > OVERLAP_MIN)[0]
            room = MAX_PAIR_FINDINGS - pair_findings
            if len(sel) > room:
                not_compared = nb - int(qi[sel[room]])
                sel = sel[:room]
            if len(sel):
                # the same building twice: much overlap, similar size, outlines close (vectorised on the pairs)
                si, sj, sr = qi[sel], qj[sel], ratio[sel]
                small, big = np.minimum(areas[si], areas[sj]), np.maximum(areas[si], areas[sj])
                with np.errstate(divide="ignore", invalid="ignore"):
                    size = np.where(big > 0, small / big, 0.0)
                    cand = (sr >= DUPLICATE_MIN) & (size >= DUPLICATE_SIZE_MIN)
                    shape = np.full(len(sel), np.inf)
                    if cand.any():
                        shape[cand] = shapely.hausdorff_distance(shapely.boundary(fixed[si[cand]]),
                                                                 shapely.boundary(fixed[sj[cand]]))
                    rel = shape / np.sqrt(big)
                dup = cand & (rel <= DUPLICATE_SHAPE_MAX)
                reps = shapely.point_on_surface(inter_g[sel])
                rx, ry = shapely.get_x(reps), shapely.get_y(reps)
                for n, s in enumerate(sel):
                    i, j, r = int(qi[s]), int(qj[s]), float(ratio[s])
                    a_small, a_big = float(small[n]), float(big[n])
                    if dup[n]:
                        fi = Finding("duplicate_building", [bobj(i), bobj(j)], None, None,
                                     f"{r * 100:.0f} % of the smaller building is covered by the other, of a "
                                     f"similar size and shape (outlines {shape[n]:.1f} m apart at most): "
                                     "drawn twice?",
                                     value=r * 100, users=[f.b_user[i], f.b_user[j]])
                        fi.detail["outline_distance_m"] = round(float(shape[n]), 2)
                    else:
                        if a_small < 0.5 * a_big:
                            msg = (f"a building of {a_small:,.0f} m² lies {r * 100:.0f} % inside one of "
                                   f"{a_big:,.0f} m²")
                        else:
                            msg = f"buildings overlap by {r * 100:.0f} % of the smaller one"
                        fi = Finding("overlapping_buildings", [bobj(i), bobj(j)], None, None, msg,
                                     value=r * 100, users=[f.b_user[i], f.b_user[j]])
                    fi.detail["areas_m2"] = [round(float(areas[i]), 2), round(float(areas[j]), 2)]
                    metric_pts.append((fi, rx[n], ry[n]))
                    out.append(fi)
                pair_findings += len(sel)
        if not_compared:
            break
    stats["pairs_compared"] = pairs_done
    if not_compared:
        stats["buildings_not_compared"] = not_compared


def _not_square_buildings(f: Features, bm, way, bobj, out: list, metric_pts: list) -> None:
    """Building ways with a corner off a right angle."""
    wi = np.nonzero(way)[0]
    rows, coords = _not_square(bm[wi])  # a building way's polygon is its one ring
    if rows:
        for r, ci, off, nbad in rows:
            i = int(wi[r])
            fi = Finding("building_not_square", [bobj(i)], None, None,
                         f"a corner is {off:.1f}° off a right angle"
                         + (f" ({nbad} corners)" if nbad > 1 else ""), value=off, users=[f.b_user[i]])
            fi.detail["corners_off"] = nbad
            metric_pts.append((fi, coords[ci, 0], coords[ci, 1]))
            out.append(fi)


def _buildings_crossing_highways(f: Features, crs: int, tree, fixed, bobj, out: list, metric_pts: list,
                                stats: dict) -> None:
    """Highways crossing a building of the same layer."""
    if len(f.h_id):
        hm = geo.reproject(f.h_geom, geo.WGS84, crs)
        crossings = 0
        for start, hi, bi in _bounded_pairs(tree, hm, "crosses", self_pairs=False):
            same = f.h_layer[hi] == f.b_layer[bi]
            hi, bi = hi[same], bi[same]
            room = MAX_PAIR_FINDINGS - crossings
            if len(hi) > room:  # in highway order: the highways from hi[room] on are left
                stats["crossings_not_checked"] = len(hm) - int(hi[room])
                hi, bi = hi[:room], bi[:room]
            crossings += len(hi)
            if not len(hi):
                continue
            reps = shapely.point_on_surface(shapely.intersection(hm[hi], fixed[bi]))
            rx, ry = shapely.get_x(reps), shapely.get_y(reps)
            for n in range(len(hi)):
                h, b = int(hi[n]), int(bi[n])
                layer = int(f.b_layer[b])
                fi = Finding("building_crosses_highway", [bobj(b), ("way", int(f.h_id[h]))], None, None,
                             f"highway={f.h_value[h]} crosses the building"
                             + (f" (both in layer {layer})" if layer else ""),
                             users=[f.b_user[b], f.h_user[h]])
                metric_pts.append((fi, rx[n], ry[n]))
                out.append(fi)
            if stats.get("crossings_not_checked"):
                break


def _other_findings(f: Features, out: list) -> None:
    """Other areas crossing themselves, broken building multipolygons, unclosed building ways, untagged ways."""
    if len(f.a_id):
        avalid = shapely.is_valid(f.a_geom)
        for i in np.nonzero(~avalid)[0]:
            reason = shapely.is_valid_reason(f.a_geom[i])
            if "Self-intersection" in reason:
                p = reason_point(reason) or _first_point(f.a_geom[i])
                out.append(Finding("self_intersecting_area", [("way", int(f.a_id[i]))], p[0], p[1],
                                   f"area outline crosses itself ({reason.split('[')[0]})", users=[f.a_user[i]]))
    for rid, pt, user in f.broken_relations:
        out.append(Finding("self_intersecting_area", [("relation", rid)], pt[0] if pt else None,
                           pt[1] if pt else None,
                           "building multipolygon whose rings cannot be assembled (crossing or not closed)",
                           users=[user]))
    for wid, pt, user in f.unclosed:
        out.append(Finding("unclosed_building", [("way", wid)], pt[0] if pt else None, pt[1] if pt else None,
                           "building way does not end where it starts", users=[user]))
    for wid, pt, user in f.untagged:
        out.append(Finding("untagged_way", [("way", wid)], pt[0] if pt else None, pt[1] if pt else None,
                           "way without tags, in no relation", users=[user]))


def _place_metric_points(metric_pts: list, crs: int) -> None:
    """Give the findings located in the metric CRS their longitude and latitude."""
    xy = np.array([(x, y) for _f, x, y in metric_pts], dtype=float)
    tr = geo.transformer(crs, geo.WGS84)
    lon, lat = tr.transform(xy[:, 0], xy[:, 1])
    for (fi, _x, _y), lo, la in zip(metric_pts, lon, lat):
        if np.isfinite(lo) and np.isfinite(la):
            fi.lon, fi.lat = float(lo), float(la)


def run_checks(f: Features) -> tuple[list[Finding], dict]:
    """All checks on *f*; findings carry objects, location, value and OSM users (not yet tasks or volunteers)."""
    out: list[Finding] = []
    metric_pts: list[tuple[Finding, float, float]] = []  # locations computed in the metric CRS
    timings = {}
    stats: dict = {}
    t = time.perf_counter()

    allg = np.concatenate([f.b_geom, f.h_geom, f.a_geom])
    if len(allg):
        minx, miny, maxx, maxy = shapely.total_bounds(allg)
        crs = geo.utm_epsg((minx + maxx) / 2, (miny + maxy) / 2)
    else:
        crs = 32631

    def bobj(i: int) -> tuple[str, int]:
        return (str(f.b_type[i]), int(f.b_id[i]))

    nb = len(f.b_id)
    if nb:
        bm = geo.reproject(f.b_geom, geo.WGS84, crs)
        valid = shapely.is_valid(f.b_geom)
        way = f.b_type == "way"
        timings["project"] = time.perf_counter() - t

        # self-intersecting building ways
        t = time.perf_counter()
        _self_intersecting_buildings(f, valid, way, bobj, out)
        fixed = _polygonal(bm)
        areas = shapely.area(fixed)

        # tiny buildings
        _tiny_buildings(f, bm, areas, bobj, out, metric_pts)
        timings["valid_tiny"] = time.perf_counter() - t

        # duplicates and overlaps
        t = time.perf_counter()
        tree = shapely.STRtree(fixed)
        _overlapping_buildings(f, tree, fixed, areas, bobj, out, metric_pts, stats)
        timings["overlaps"] = time.perf_counter() - t

        # not square (building ways)
        t = time.perf_counter()
        _not_square_buildings(f, bm, way, bobj, out, metric_pts)
        timings["square"] = time.perf_counter() - t

        # buildings crossing highways, same layer
        t = time.perf_counter()
        _buildings_crossing_highways(f, crs, tree, fixed, bobj, out, metric_pts, stats)
        timings["crossings"] = time.perf_counter() - t

    # other areas, broken multipolygons, unclosed and untagged ways
    t = time.perf_counter()
    _other_findings(f, out)
    timings["other"] = time.perf_counter() - t

    if metric_pts:
        _place_metric_points(metric_pts, crs)
    return out, {"utm_epsg": crs, "timings": {k: round(v, 3) for k, v in timings.items()}, "stats": stats}


def _first_point(g) -> tuple[float, float]:
    c = shapely.get_coordinates(g)
    return (float(c[0, 0]), float(c[0, 1])) if len(c) else (None, None)


# -- putting findings in tasks and villages, naming volunteers ---------------------------------------------


def attribute(findings: list[Finding], provenance: Provenance | None, locator: Locator | None) -> None:
    """Fill each finding's volunteers (provenance, else OSM users), task and village."""
    prov = provenance or Provenance()
    for fi in findings:
        vols: list[str] = []
        tasks: list[str] = []
        contributed = False
        for (t, i), user in zip(fi.objects, fi.users + [""] * (len(fi.objects) - len(fi.users))):
            c = prov.lookup(t, i)
            if c is not None:
                contributed = True
                vols.extend(c.volunteers)
                tasks.extend(x for x in c.tasks if x)
            elif user:
                vols.append(user)
        fi.volunteers = list(dict.fromkeys(vols))
        fi.file_tasks = list(dict.fromkeys(tasks))
        fi.contributed = contributed
        if fi.kind in ("duplicate_building", "overlapping_buildings") and len(fi.volunteers) > 1 and contributed:
            fi.detail["between_volunteers"] = True
    if locator is None:
        return
    tasks, villages = locator.locate([(f.lon, f.lat) if f.lon is not None else None for f in findings])
    for fi, t, v in zip(findings, tasks, villages):
        if t is not None:
            fi.task, fi.task_key = t.id, t.key
        fi.village = v or (", ".join(t.villages) if t is not None and t.villages else None)
    # pairs drawn in two different tasks: across a task border
    pairs = [fi for fi in findings if fi.kind in ("duplicate_building", "overlapping_buildings")]
    if pairs:
        _mark_across_tasks(pairs, locator)


def _mark_across_tasks(pairs: list[Finding], locator: Locator) -> None:
    """A duplicate/overlap whose two buildings were submitted for, or lie mostly in, different tasks."""
    for fi in pairs:
        if len(fi.file_tasks) > 1:
            fi.detail["across_tasks"] = True
        centres = fi.detail.get("_centres")
        if centres:
            ts, _ = locator.locate(centres)
            ids = {t.id for t in ts if t is not None}
            if len(ids) > 1:
                fi.detail["across_tasks"] = True
        fi.detail.pop("_centres", None)


# -- the whole thing -----------------------------------------------------------------------------------


def check_file(path: str | Path, *, project=None, provenance: Provenance | None = None,
               locator: Locator | None = None, name: str | None = None, scope: Scope | None = None) -> CheckResult:
    """Read and check one OSM file. In a *project*, findings get tasks, villages and volunteers.

    With a *scope* (:class:`~mapathon.quality.features.Scope`), only part of the file is read: the changes
    of a merge and the buildings and highways near them (findings about changed objects only), or an area."""
    t0 = time.perf_counter()
    path = Path(path)
    warnings: list[str] = []
    feats = read_features(path, name=name, scope=scope)
    t_read = time.perf_counter() - t0
    findings, info = run_checks(feats)
    if feats.touched is not None:  # checks of a merge's changes: what is about them (not the base alone)
        findings = [fi for fi in findings if any(o in feats.touched for o in fi.objects)]
    _add_centres(findings, feats)
    if project is not None:
        if locator is None:
            locator = Locator(project)
        if provenance is None:
            from .where import provenance_for_file

            provenance = provenance_for_file(project, path, feats.edited, warnings)
    elif provenance is None and feats.edited is not None:
        from .where import FileProvenance

        provenance = FileProvenance(path.name, None, path.name, feats.edited)
        provenance.label = "file"
    attribute(findings, provenance, locator)
    for fi in findings:
        fi.detail.pop("_centres", None)
    order = {k: n for n, k in enumerate(KINDS)}
    findings.sort(key=lambda x: (order[x.kind], x.task if x.task is not None else 1 << 30,
                                 x.lat if x.lat is not None else 0.0, x.lon if x.lon is not None else 0.0))
    stats = dict(feats.stats)
    stats["utm_epsg"] = info["utm_epsg"]
    stats["timings"] = {"read": round(t_read, 3), **info["timings"]}
    stats.update(info["stats"])
    if info["stats"].get("buildings_not_compared"):
        warnings.append(f"{info['stats']['buildings_not_compared']:,} building(s) not compared with their neighbours "
                        f"(duplicates, overlaps): too many overlapping buildings ({info['stats']['pairs_compared']:,} "
                        "pairs compared); look at this data in JOSM")
    if info["stats"].get("crossings_not_checked"):
        warnings.append(f"{info['stats']['crossings_not_checked']:,} highway(s) not checked for crossing buildings: "
                        "too many crossings")
    if feats.stats.get("ways_not_checked"):
        warnings.append(f"{feats.stats['ways_not_checked']:,} way(s) not checked: some of their nodes are not in "
                        "the file")
    if feats.stats.get("relations_not_checked"):
        warnings.append(f"{feats.stats['relations_not_checked']:,} building multipolygon(s) not checked: members "
                        "missing from the file")
    return CheckResult(feats.source, findings, stats, time.perf_counter() - t0, warnings,
                       provenance.label if provenance is not None else "none")


def _add_centres(findings: list[Finding], f: Features) -> None:
    """Keep the centre of each building of a pair, to tell whether a pair straddles a task border."""
    pairs = [fi for fi in findings if fi.kind in ("duplicate_building", "overlapping_buildings")]
    if not pairs:
        return
    index = {(str(t), int(i)): n for n, (t, i) in enumerate(zip(f.b_type, f.b_id))}
    for fi in pairs:
        cs = []
        for o in fi.objects:
            n = index.get(o)
            if n is not None:
                c = shapely.centroid(f.b_geom[n])
                cs.append((c.x, c.y) if not c.is_empty else None)
        fi.detail["_centres"] = cs


# -- GeoJSON ---------------------------------------------------------------------------------------------

_SCHEMA = {
    "geometry": "Point",
    "properties": {
        "kind": "str", "title": "str", "severity": "str", "message": "str", "objects": "str", "josm": "str",
        "value": "float", "task": "int", "task_key": "str", "village": "str", "volunteers": "str",
        "contributed": "bool",
    },
}


def write_findings_geojson(findings: list[Finding], dest: str | Path) -> int:
    """A GeoJSON point layer of the findings (written with fiona, atomically). Returns the count written."""
    import fiona

    dest = Path(dest)
    if not dest.name.lower().endswith((".geojson", ".json")):
        raise MapathonError(f"{dest}: the findings layer is GeoJSON; its name should end in .geojson")
    n = 0
    with atomic_path(dest) as tmp:
        # the layer's name would otherwise be the temporary file's (".findings.2s0ndnsm.tmp")
        with fiona.open(tmp, "w", driver="GeoJSON", schema=_SCHEMA, crs="EPSG:4326", layer="findings") as out:
            for fi in findings:
                if fi.lon is None:
                    continue
                out.write(fiona.Feature(
                    geometry=fiona.Geometry(type="Point", coordinates=(round(fi.lon, 7), round(fi.lat, 7))),
                    properties={"kind": fi.kind, "title": fi.title, "severity": fi.severity, "message": fi.message,
                                "objects": fi.objects_text(), "josm": fi.josm_ids(),
                                "value": None if fi.value is None else round(fi.value, 3), "task": fi.task,
                                "task_key": fi.task_key, "village": fi.village,
                                "volunteers": ", ".join(fi.volunteers), "contributed": fi.contributed}))
                n += 1
    return n
