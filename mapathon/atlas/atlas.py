"""``mapathon print``: a printable field atlas from OSM data, offline.

The steps: read the data once into the layer cache; choose the areas (villages, tasks
or a box) and lay pages over them in the local UTM zone; render each map body with
Mapnik to vector PDF; draw the page furniture, cover and index with ReportLab; put
the maps under the furniture with pikepdf; write the PDF (or one PNG per page)
atomically. Every check that can fail is made before anything is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import box as shapely_box

from .. import geo, selection
from ..errors import MapathonError, NoSuchVillage, UsageMistake
from ..fsutil import atomic_path
from ..osm.submit import latest_data
from . import furniture, imagery as imagery_mod, layout, mapbody, registration, symbols
from .cache import open_cache
from ..i18n import check_lang, resolve_lang
from .i18n import WORDS, Words

FORMAT_VERSION = 1
# how far around a village point its houses are looked for, by place rank (metres)
SEARCH_RADIUS = {1: 3000, 2: 1500, 3: 1000, 4: 500, 5: 400, 6: 300, 7: 250}
# every village page set covers at least this far around the village point (metres), so that a
# large scale gives several pages of the village core rather than one sheet around a few houses
CORE_M = 150
CLUSTER_GAP = 60.0  # houses closer than this belong to the same village
# name:xx put in the index: the atlas's languages and those of the Sahel (Bambara, Fula, Soninke...)
INDEX_NAME_LANGS = {"fr", "en", "bm", "ff", "snk", "son", "dyu", "wo", "ha", "mos", "tmh", "kr", "dje"}
# the cover's key map: page frames drawn smaller than this (mm) get their number beside them, in
# KEY_NUMBER_BESIDE_PT points; inside a frame the number is 0.8 pt per mm of frame, within KEY_NUMBER_PT
KEY_NUMBER_MIN_FRAME_MM = 12
KEY_NUMBER_BESIDE_PT = 9
KEY_NUMBER_PT = (6.0, 11.0)
KEY_NUMBER_GAP_PT = 1.5  # between a frame and the number beside it
KEY_MAX_BUILDINGS = 60000  # more buildings than this are left off the key map (unreadable, slow)


@dataclass
class PrintOptions:
    output: Path
    data: Path | None = None
    villages: list[str] = field(default_factory=list)
    tasks: str | None = None
    bbox: str | None = None
    paper: str = "A4"
    orientation: str = "portrait"
    scale: str = "1:5000"
    lang: str | None = None  # fr or en; None: the project's language (without a project: English)
    grayscale: bool = False
    notes: str | None = None
    tasks_overlay: bool = False
    imagery: Path | None = None
    fmt: str = "pdf"
    max_pages: int = 60
    all_tasks: bool = False  # a village's pages cover all its tasks (and keep the empty ones)
    include_empty: bool = False  # keep a village's pages where nothing is mapped
    project_dir: Path | None = None  # the --project option (or $MAPATHON_PROJECT), may not be a project


@dataclass
class AtlasResult:
    outputs: list[Path]
    pages: int
    map_pages: int
    areas: list[str]
    data: Path
    cache: Path
    cache_built: bool
    seconds: float
    timings: dict[str, float]
    # what the atlas left out of the selection (see LeftOut)
    left_out: "LeftOut" = field(default_factory=lambda: LeftOut())


@dataclass
class LeftOut:
    """What of the selection is on no page, and why.

    *features*: mapped features of the villages' tasks that are on no page, by kind ('well',
    'building', 'track'...); *pages_cut*: pages dropped by --max-pages (*pages_needed* with them);
    *empty_pages*: pages with nothing mapped that were dropped (--include-empty keeps them)."""

    features: dict[str, int] = field(default_factory=dict)
    pages_cut: int = 0
    pages_needed: int = 0
    empty_pages: int = 0
    hint: str = ""

    def as_dict(self) -> dict:
        return {"features": self.features, "pages_cut": self.pages_cut, "pages_needed": self.pages_needed,
                "empty_pages": self.empty_pages, "hint": self.hint}

    def messages(self) -> list[str]:
        """One line per thing left out, in English, for the command line."""
        out = []
        what = ", ".join(_count_words(k, n) for k, n in self.features.items())
        if self.pages_cut:
            kept = self.pages_needed - self.pages_cut
            out.append(f"{self.pages_cut} of {self.pages_needed} map pages cut by --max-pages {kept}"
                       + (f", leaving {what} off the atlas" if what else "") + f": {self.hint}")
        elif what:
            out.append(f"{what} outside the pages: {self.hint}")
        if self.empty_pages:
            n = self.empty_pages
            out.append(f"{n} page{'s' if n > 1 else ''} with nothing mapped (--include-empty prints "
                       f"{'them' if n > 1 else 'it'})")
        return out


@dataclass
class Area:
    name: str
    extent: tuple[float, float, float, float]  # UTM
    keep: object = None  # callable(box) -> bool, or None
    kind: str = "village"
    centre: tuple[float, float] | None = None  # UTM: the village point (its page comes first and always stays)
    selection: object = None  # UTM polygon: all the village's tasks, for what is left out
    drop_empty: bool = False  # leave out the pages with nothing mapped


# -- entry point -----------------------------------------------------------------------------------------


def make_atlas(opts: PrintOptions) -> AtlasResult:
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    scale, lay, fmt = _check_options(opts)
    project = _open_project(opts)
    try:
        words = Words(resolve_lang(project, opts.lang))
        return _make(opts, project, words, scale, lay, fmt, t0, timings)
    finally:
        if project is not None:
            project.close()


def _check_options(opts: PrintOptions):
    check_lang(opts.lang)
    fmt = (opts.fmt or "pdf").lower()
    if fmt not in ("pdf", "png"):
        raise UsageMistake("choose pdf or png", field="format", value=opts.fmt)
    scale = layout.parse_scale(opts.scale)
    if opts.notes not in (None, "half", "page"):
        raise UsageMistake("choose half or page", field="notes", value=opts.notes)
    lay = layout.page_layout(opts.paper, opts.orientation, opts.notes)
    if opts.max_pages < 1:
        raise UsageMistake("give at least 1", field="max_pages", value=opts.max_pages)
    chosen = sum(1 for v in (opts.villages, opts.tasks, opts.bbox) if v)
    if chosen > 1:
        raise UsageMistake("give only one of a village, tasks or a box (bbox)")
    out = Path(opts.output)
    if fmt == "pdf" and out.suffix.lower() != ".pdf":
        raise UsageMistake("the atlas is a PDF; name it .pdf (or use format png)", field="output", value=str(out))
    if str(out.parent) and not out.parent.is_dir():
        raise MapathonError(f"folder {out.parent} does not exist", field="output", value=str(out))
    return scale, lay, fmt


def _open_project(opts: PrintOptions):
    from ..project import is_project, open_project, resolve_dir

    folder = resolve_dir(opts.project_dir)
    needs = opts.tasks or opts.tasks_overlay or not (opts.villages or opts.bbox)
    if is_project(folder):
        return open_project(folder)
    if needs:
        what = "--tasks" if opts.tasks else "--tasks-overlay" if opts.tasks_overlay else \
            "printing the project's villages (no --village/--bbox given)"
        raise MapathonError(f"{folder}: not a mapathon project, and {what} needs one "
                            f"(use --project, or give --bbox W,S,E,N / --village NAME with --data FILE)")
    return None


def _data_file(opts: PrintOptions, project) -> Path:
    if opts.data:
        data = Path(opts.data)
        if not data.is_file():
            raise MapathonError("no such file", field="data", value=data)
        return data
    if project is not None:
        try:
            return latest_data(project)
        except MapathonError as e:
            raise MapathonError(f"{e} or give --data FILE.osm.pbf") from None
    raise MapathonError("no data: give --data FILE.osm.pbf")


def _make(opts, project, words: Words, scale, lay, fmt, t0, timings) -> AtlasResult:
    data = _data_file(opts, project)
    out = Path(opts.output)
    cache_dir = (project.path / "cache") if project is not None else (out.parent / ".mapathon-cache")
    cache = open_cache(data, cache_dir)
    timings["cache"] = time.perf_counter() - t0
    mb = imagery_mod.open_mbtiles(opts.imagery) if opts.imagery else None
    conn = cache.connect()
    try:
        centre = _selection_centre(opts, project, conn)
        epsg = geo.utm_epsg(*centre)
        to_utm = geo.transformer(4326, epsg)
        to_wgs = geo.transformer(epsg, 4326)
        areas, title = _areas(opts, project, conn, to_utm, words)
        ground = lay.ground_size(scale)
        overlap = layout.OVERLAP_MM * scale / 1000.0
        pages, left_out = _plan_pages(areas, ground, overlap, opts, conn, to_wgs, scale, lay)
        polys_wgs = [_wgs_polygon(p.box, to_wgs) for p in pages]
        boxes_wgs = [pw.bounds for pw in polys_wgs]
        if not _has_data(conn, polys_wgs):
            raise MapathonError(f"{data}: no mapped features in the area to print "
                                f"({_fmt_bbox(_union(boxes_wgs))}); check --data, --bbox or the village names")
        # physical page numbers: cover = 1, then maps (each followed by its notes page with --notes page)
        per = _pages_per_map(opts.notes)
        for i, p in enumerate(pages):
            p.number = 2 + i * per
        _link_neighbours(pages)
        tasks = _load_tasks(project) if opts.tasks_overlay else None
        timings["plan"] = time.perf_counter() - t0 - sum(timings.values())

        with tempfile.TemporaryDirectory(prefix="mapathon-print-") as tmpd:
            work = Path(tmpd)
            style = mapbody.MapStyle(cache.path, f"epsg:{epsg}", work, grayscale=opts.grayscale,
                                     imagery=mb is not None)
            # map bodies
            legends, bodies = [], []
            for i, (p, bw, pw) in enumerate(zip(pages, boxes_wgs, polys_wgs)):
                query = mapbody.expand(bw, 0.0005)
                img_layer = ""
                if mb is not None:
                    img_layer = imagery_mod.page_layer(mb, query, scale * 0.00025, work / f"img-{i}.png",
                                                       grayscale=opts.grayscale)
                ptasks = _page_tasks(tasks, bw, words) if tasks else None
                xml = style.page_xml(query, imagery_layer=img_layer, tasks=ptasks,
                                     blockers=_blockers(p, lay, words))
                dest = work / f"map-{i}.pdf"
                mapbody.render(xml, p.box, lay.frame_pt, dest, what=f"map of page {p.number}")
                bodies.append(dest)
                legends.append(_legend_keys(conn, pw) + (["task"] if ptasks else []))
            timings["maps"] = time.perf_counter() - t0 - sum(timings.values())

            # the cover's key map
            cover_frame, contents_rect = furniture.cover_layout(lay.width, lay.height, len(areas))
            key_box, key_scale = _key_box(pages, project if not (opts.villages or opts.bbox or opts.tasks) else None,
                                          to_utm, cover_frame)
            key_wgs = _wgs_bounds(key_box, to_wgs)
            n_buildings = conn.execute(
                "SELECT COUNT(*) FROM rt_polys r WHERE " + mapbody.where_sql(key_wgs)).fetchone()[0]
            key_pt = (int(cover_frame.w * layout.MM), int(cover_frame.h * layout.MM))
            page_feats = [{"type": "Feature", "properties": {"number": str(p.number)},
                           "geometry": shapely.geometry.mapping(_wgs_polygon(p.box, to_wgs))} for p in pages]
            frame_mm = min(ground) / key_scale * 1000
            points = None
            if frame_mm < KEY_NUMBER_MIN_FRAME_MM:  # frames too small to hold their number: write it beside them
                points = [{"type": "Feature", "properties": {"number": str(p.number)},
                           "geometry": shapely.geometry.mapping(shapely.Point(*to_wgs.transform(*p.centre)))}
                          for p in pages]
            xml = style.keymap_xml(mapbody.expand(key_wgs, 0.001), areas=_area_features(project, opts),
                                   pages=page_feats, buildings=n_buildings < KEY_MAX_BUILDINGS,
                                   number_size=KEY_NUMBER_BESIDE_PT if points
                                   else min(KEY_NUMBER_PT[1], max(KEY_NUMBER_PT[0], frame_mm * 0.8)),
                                   number_points=points, number_offset=frame_mm * layout.MM / 2 + KEY_NUMBER_GAP_PT)
            key_pdf = work / "keymap.pdf"
            mapbody.render(xml, key_box, key_pt, key_pdf, what="key map of the cover")

            # index
            index = _index_entries(conn, pages, boxes_wgs, to_utm, lay, scale, words)
            timings["keymap+index"] = time.perf_counter() - t0 - sum(timings.values())

            # furniture, cover, notes, index with ReportLab
            data_date = _data_date(cache, data, words)
            print_date = words.date(dt.date.today().isoformat())
            atlas_id = hashlib.sha256(json.dumps([cache.sha256, opts.villages, opts.tasks, opts.bbox, scale, lay.paper,
                                                  lay.orientation, opts.all_tasks, opts.include_empty,
                                                  opts.max_pages]).encode()).hexdigest()[:8]
            project_name = project.name if project is not None else data.name.split(".")[0]
            furniture_pdf = work / "furniture.pdf"
            plan = AtlasPlan(lay=lay, scale=scale, notes=opts.notes, pages=pages, legends=legends, to_wgs=to_wgs,
                             to_utm=to_utm, epsg=epsg, areas=areas, title=title, project_name=project_name,
                             atlas_id=atlas_id, data_date=data_date, print_date=print_date, index=index,
                             cover_frame=cover_frame, contents_rect=contents_rect, key_scale=key_scale,
                             pal=style.pal, tasks_overlay=tasks is not None, with_imagery=mb is not None,
                             grayscale=bool(opts.grayscale))
            n_index = _draw_furniture(furniture_pdf, plan, words)
            timings["furniture"] = time.perf_counter() - t0 - sum(timings.values())
            total = 1 + len(pages) * per + n_index
            assembled = work / "atlas.pdf"
            _assemble(furniture_pdf, assembled, pages, bodies, lay, key_pdf, cover_frame)
            outputs = _write_outputs(assembled, out, fmt, lay)
            timings["assemble"] = time.perf_counter() - t0 - sum(timings.values())
    finally:
        conn.close()
    return AtlasResult(outputs, total, len(pages), [a.name for a in areas], data, cache.path, cache.built,
                       time.perf_counter() - t0, timings, left_out)


# -- selecting areas -------------------------------------------------------------------------------------


def _norm(name: str) -> str:
    s = unicodedata.normalize("NFKD", name.casefold())
    return "".join(ch for ch in s if not unicodedata.combining(ch)).replace("-", " ").replace("'", "").strip()


def _find_village(name: str, project, conn):
    """(name, lon, lat, rank, region polygon WGS84 or None) for a village name: one of the project's
    villages, else a place in the data (by any of its names), matched by :mod:`mapathon.selection`."""
    if project is not None:
        found = selection.find_village(project, name)
        if found is not None:
            v = project.village(found)
            g = shapely.from_wkb(v["geom"])
            if v["lon"] is not None:
                lon, lat = v["lon"], v["lat"]
            else:
                rp = g.representative_point()
                lon, lat = rp.x, rp.y
            row = conn.execute("SELECT rank FROM places WHERE name = ? ORDER BY rank LIMIT 1", (v["name"],)).fetchone()
            return v["name"], lon, lat, row[0] if row else 3, g
    rows = conn.execute("SELECT name, names, lon, lat, rank FROM places ORDER BY rank").fetchall()
    key = selection.village_key(name)
    for r in rows:
        if selection.village_key(r["name"]) == key:
            return r["name"], r["lon"], r["lat"], r["rank"], None
    for r in rows:
        if r["names"] and any(selection.village_key(v) == key for v in json.loads(r["names"]).values()):
            return r["name"], r["lon"], r["lat"], r["rank"], None
    if project is not None and project.villages():
        selection.match_village(project, name)  # raises NoSuchVillage, with "did you mean"
    places = [r["name"] for r in rows if r["name"]]
    close = selection.suggest_village(places, name)
    raise NoSuchVillage(name, suggestion=close, detail="no place of that name in the data"
                        + (f"; did you mean '{close}'?" if close else ""))


def _selection_centre(opts, project, conn) -> tuple[float, float]:
    if opts.bbox:
        w, s, e, n = selection.parse_bbox(opts.bbox)
        return (w + e) / 2, (s + n) / 2
    if opts.tasks:
        geoms = _task_geoms(project, opts.tasks)
        c = shapely.union_all(list(geoms.values())).centroid
        return c.x, c.y
    if opts.villages:
        pts = [_find_village(v, project, conn)[1:3] for v in opts.villages]
    else:
        pts = []
        for v in project.villages():
            if v["lon"] is not None:
                pts.append((v["lon"], v["lat"]))
            else:
                rp = shapely.from_wkb(v["geom"]).representative_point()
                pts.append((rp.x, rp.y))
        if not pts:
            raise MapathonError(f"{project.path}: the project has no villages; give --bbox W,S,E,N or --village NAME")
    return float(np.mean([p[0] for p in pts])), float(np.mean([p[1] for p in pts]))


def _task_geoms(project, tasks: str) -> dict[int, object]:
    """{task number: polygon} for the tasks *tasks* names (numbers, ranges or z/x/y)."""
    return {t.id: t.geom for t in selection.resolve_tasks(project, tasks)}


def _areas(opts, project, conn, to_utm, words: Words) -> tuple[list[Area], str]:
    if opts.bbox:
        w, s, e, n = selection.parse_bbox(opts.bbox)
        poly = geo.reproject(shapely.segmentize(shapely_box(w, s, e, n), 0.001), "EPSG:4326", to_utm.target_crs)
        name = project.name if project is not None else words("area")
        return [Area(name, poly.bounds, kind="bbox")], name
    if opts.tasks:
        geoms = _task_geoms(project, opts.tasks)
        ids = list(geoms)
        utm = [geo.reproject(g, "EPSG:4326", to_utm.target_crs) for g in geoms.values()]
        union = shapely.union_all(utm)
        shapely.prepare(union)
        label = words("tasks_area", ids=_short_ids(sorted(set(ids))))
        return [Area(label, union.bounds, keep=lambda b, u=union: u.intersects(shapely_box(*b)), kind="tasks")], label
    names = opts.villages or [v["name"] for v in project.villages()]
    areas = _village_areas(opts, project, conn, to_utm, names)
    title = project.name if project is not None else ", ".join(a.name for a in areas[:3])
    return areas, title


def _village_areas(opts, project, conn, to_utm, names) -> list[Area]:
    """A village of the project covers its tasks that hold data (all its tasks with --all-tasks; its
    area before 'mapathon grid') and its built-up core; a village found only in the data covers its
    built-up core."""
    tasks = _village_tasks(project) if project is not None else {}
    holds: dict[int, bool] = {}

    def has_data(tid, geom) -> bool:
        if tid not in holds:
            holds[tid] = bool(_kinds_on_page(conn, geom, first_only=True))
        return holds[tid]

    areas, seen = [], set()
    for nm in names:
        name, lon, lat, rank, region = _find_village(nm, project, conn)
        if name in seen:
            continue
        seen.add(name)
        core = _village_extent(conn, lon, lat, rank, region, to_utm)
        a = Area(name, core, centre=to_utm.transform(lon, lat))
        if region is not None:
            parts = tasks.get(name) or [(-1, region)]
            utm = [geo.reproject(g, "EPSG:4326", to_utm.target_crs) for _, g in parts]
            cover = utm if opts.all_tasks else [u for (tid, g), u in zip(parts, utm) if has_data(tid, g)]
            union = shapely.union_all(cover + [shapely_box(*core)])
            shapely.prepare(union)
            a.extent = union.bounds
            a.keep = lambda b, u=union: u.intersects(shapely_box(*b))
            a.selection = shapely.union_all(utm)
            a.drop_empty = not (opts.all_tasks or opts.include_empty)
        areas.append(a)
    return areas


def _village_tasks(project) -> dict[str, list[tuple[int, object]]]:
    """{village name: [(task id, WGS84 polygon)]} of the current tasks (split ones are replaced by their parts)."""
    from ..tasks import lifecycle

    out: dict[str, list] = {}
    for t in lifecycle.list_tasks(project):
        if t.state == lifecycle.SPLIT:
            continue
        for v in t.villages:
            out.setdefault(v, []).append((t.id, t.geom))
    return out


def _short_ids(ids: list[int]) -> str:
    parts, start, prev = [], None, None
    for i in ids + [None]:
        if start is None:
            start = prev = i
        elif i is not None and i == prev + 1:
            prev = i
        else:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = i
    return ", ".join(parts[:6]) + (" ..." if len(parts) > 6 else "")


def _village_extent(conn, lon, lat, rank, region, to_utm) -> tuple[float, float, float, float]:
    """The built-up area around a village point: the cluster of houses that holds (or is nearest to)
    the point, within the project's village area or a radius suited to the place's rank."""
    cx, cy = to_utm.transform(lon, lat)
    radius = SEARCH_RADIUS.get(rank, 500)
    if region is not None:
        reg = geo.reproject(region, "EPSG:4326", to_utm.target_crs)
        reg = reg.intersection(shapely.Point(cx, cy).buffer(max(radius, 1000)))
    else:
        reg = shapely.Point(cx, cy).buffer(radius)
    w, s, e, n = geo.reproject(reg, to_utm.target_crs, "EPSG:4326").bounds
    rows = conn.execute(
        "SELECT p.geom FROM polys p JOIN rt_polys r ON r.id = p.id WHERE p.kind = 'building' AND "
        + mapbody.where_sql((w, s, e, n))).fetchall()
    point_extent = (cx - CORE_M, cy - CORE_M, cx + CORE_M, cy + CORE_M)
    if not rows:
        return point_extent
    geoms = geo.reproject(shapely.from_wkb([r[0] for r in rows]), "EPSG:4326", to_utm.target_crs)
    cent = shapely.centroid(geoms)
    inside = shapely.contains_xy(reg, shapely.get_x(cent), shapely.get_y(cent))
    if not inside.any():
        return point_extent
    blobs = shapely.union_all(shapely.buffer(cent[inside], CLUSTER_GAP / 2, quad_segs=2))
    parts = list(blobs.geoms) if hasattr(blobs, "geoms") else [blobs]
    here = shapely.Point(cx, cy)
    best = min(parts, key=lambda g: g.distance(here))
    if best.distance(here) > 400:
        return point_extent
    minx, miny, maxx, maxy = best.buffer(-CLUSTER_GAP / 2 + 5).bounds if not best.buffer(
        -CLUSTER_GAP / 2 + 5).is_empty else best.bounds
    return (min(minx, cx - CORE_M), min(miny, cy - CORE_M), max(maxx, cx + CORE_M), max(maxy, cy + CORE_M))


# more candidate pages than this many times --max-pages is a mistaken scale: refused before any work
MAX_CANDIDATES = 10


def _plan_pages(areas: list[Area], ground, overlap, opts, conn, to_wgs, scale: int, lay):
    """The map pages of every area, in atlas order, and what was left out.

    Each area is tiled in rows and columns; a village leaves out its pages with nothing mapped
    (but always keeps the page of its point). Villages that need more than --max-pages all
    together keep their pages nearest to their point, taken in turn, and the rest is cut and
    reported; a box or tasks needing more are refused."""
    left = LeftOut()
    grids = [layout.plan_grid(a.extent, ground, overlap, a.keep) for a in areas]
    count = sum(len(g) for g in grids)
    can_cut = all(a.kind == "village" for a in areas) and len(areas) <= opts.max_pages
    if count > opts.max_pages and (not can_cut or count > opts.max_pages * MAX_CANDIDATES):
        raise MapathonError(
            f"the atlas would need {count} map pages at 1:{scale} on {lay.paper} {lay.orientation}, more than "
            f"--max-pages {opts.max_pages}; choose fewer villages, a smaller scale (e.g. 1:{scale * 2}), "
            f"a larger paper, or raise --max-pages")
    ranked: list[list[tuple[int, int, tuple]]] = []
    for a, grid in zip(areas, grids):
        if a.centre is not None:
            cx, cy = a.centre
        else:
            cx, cy = (a.extent[0] + a.extent[2]) / 2, (a.extent[1] + a.extent[3]) / 2
        order = sorted(grid, key=lambda g: math.hypot((g[2][0] + g[2][2]) / 2 - cx, (g[2][1] + g[2][3]) / 2 - cy))
        if a.drop_empty and order:
            kept = order[:1] + [g for g in order[1:]
                                if _kinds_on_page(conn, _wgs_polygon(g[2], to_wgs), first_only=True)]
            left.empty_pages += len(order) - len(kept)
            order = kept
        ranked.append(order)
    needed = sum(len(r) for r in ranked)
    if needed > opts.max_pages:  # villages only (else refused above): their nearest pages, in turn
        take = [0] * len(ranked)
        room = opts.max_pages
        while room:
            for i, r in enumerate(ranked):
                if room and take[i] < len(r):
                    take[i] += 1
                    room -= 1
        ranked = [r[:n] for r, n in zip(ranked, take)]
        left.pages_cut, left.pages_needed = needed - opts.max_pages, needed
    pages: list[layout.MapPage] = []
    for ai, (a, grid, chosen) in enumerate(zip(areas, grids, ranked)):
        ncols = max((g[0] for g in grid), default=0) + 1
        nrows = max((g[1] for g in grid), default=0) + 1
        for col, row, bx in sorted(chosen, key=lambda g: (g[1], g[0])):
            pages.append(layout.MapPage(a.name, ai, col, row, bx, grid_size=(ncols, nrows)))
    if not pages:
        raise MapathonError("nothing to print: the selection covers no page")
    selections = [a.selection for a in areas if a.selection is not None]
    if selections:
        sel = geo.reproject(shapely.segmentize(shapely.union_all(selections), 50.0), to_wgs.source_crs, "EPSG:4326")
        left.features = _off_pages(conn, sel, [_wgs_polygon(p.box, to_wgs) for p in pages])
    if left.pages_cut:
        left.hint = f"use --scale 1:{scale * 2}, fewer villages, or --max-pages {left.pages_needed}"
    elif left.features:
        left.hint = f"use --scale 1:{scale * 2}" + ("" if opts.all_tasks else " or --all-tasks")
    return pages, left


def _off_pages(conn, selection_wgs, pages_wgs) -> dict[str, int]:
    """Features touching the selection (WGS84 polygon) but no page, counted by kind, most first."""
    on = shapely.union_all(pages_wgs)
    shapely.prepare(on)
    shapely.prepare(selection_wgs)
    w = mapbody.where_sql(selection_wgs.bounds)
    counts: dict[str, int] = {}
    for table, cols in (("points", "p.kind"), ("places", "p.kind"), ("lines", "p.kind, p.seasonal"),
                        ("polys", "p.kind")):
        rows = conn.execute(f"SELECT {cols}, p.geom FROM {table} p JOIN rt_{table} r ON r.id = p.id WHERE {w}").fetchall()
        if not rows:
            continue
        geoms = shapely.from_wkb([r[-1] for r in rows])
        off = shapely.intersects(selection_wgs, geoms) & ~shapely.intersects(on, geoms)
        for r, o in zip(rows, off):
            if o:
                k = _kind_key(table, r)
                counts[k] = counts.get(k, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (symbols.WATER_POINTS.count(kv[0]) == 0, -kv[1], kv[0])))


# English plurals of the kinds, for the command line's report of what was left out
PLURALS = {"well": "wells", "well_pump": "wells with a hand pump", "borehole": "boreholes",
           "drinking_water": "drinking water points", "tap": "water taps", "spring": "springs",
           "school": "schools", "health": "health centres", "market": "markets", "mosque": "mosques",
           "church": "churches", "worship": "places of worship", "townhall": "town halls",
           "building": "buildings", "track": "tracks", "path": "paths", "minor": "streets",
           "village": "villages", "hamlet": "hamlets", "isolated_dwelling": "isolated dwellings"}


def _count_words(kind: str, n: int) -> str:
    if n > 1 and kind in PLURALS:
        return f"{n} {PLURALS[kind]}"
    label = Words("en")(kind).lower() if kind in WORDS else kind.replace("_", " ")
    return f"{n} {label}" if n == 1 else f"{n} × {label}"


def _link_neighbours(pages: list[layout.MapPage]) -> None:
    where = {(p.area_index, p.col, p.row): p.number for p in pages}
    for p in pages:
        for side, (dc, dr) in {"N": (0, -1), "S": (0, 1), "W": (-1, 0), "E": (1, 0)}.items():
            n = where.get((p.area_index, p.col + dc, p.row + dr))
            if n:
                p.neighbours[side] = n


# -- geometry helpers ------------------------------------------------------------------------------------


def _wgs_polygon(box_utm, to_wgs):
    poly = shapely.segmentize(shapely_box(*box_utm), max(1.0, (box_utm[2] - box_utm[0]) / 20))
    return geo.reproject(poly, to_wgs.source_crs, "EPSG:4326")


def _wgs_bounds(box_utm, to_wgs):
    return _wgs_polygon(box_utm, to_wgs).bounds


def _union(boxes):
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _fmt_bbox(b):
    return ",".join(f"{v:.5f}" for v in b)


def _blockers(p: layout.MapPage, lay, words: Words):
    """The neighbour arrows' boxes, in UTM, as (x, y, width pt, height pt) for the map style."""
    return label_blockers(p.box, p.neighbours, lay.frame_pt, words)


def label_blockers(box, neighbours: dict, frame_pt, words: Words):
    """Where the map style must not put labels on a page (*box* in UTM, *frame_pt* its size on paper):
    the neighbour arrows' boxes, as (x, y, width pt, height pt) in UTM. ``mapathon scan`` renders
    its reference with the same ones."""
    fw, fh = frame_pt
    minx, miny, maxx, maxy = box
    out = []
    for side, num in neighbours.items():
        x, y, w, h = furniture.arrow_box(side, num, 0, 0, fw, fh, words)
        cx, cy = x + w / 2, y + h / 2
        out.append((minx + cx / fw * (maxx - minx), miny + cy / fh * (maxy - miny), w + 4, h + 4))
    return out


def _has_data(conn, pages_wgs) -> bool:
    """True when some feature of the cache is really on one of the pages (not only its bounding box)."""
    return any(_kinds_on_page(conn, poly, first_only=True) for poly in pages_wgs)


def _kinds_on_page(conn, poly, first_only=False) -> dict[str, set]:
    """The kinds of features drawn on a page (WGS84 polygon), per table."""
    w = mapbody.where_sql(poly.bounds)
    shapely.prepare(poly)
    out: dict[str, set] = {}
    for table, cols in (("points", "p.kind, p.state"), ("places", "p.kind"), ("lines", "p.kind, p.seasonal"),
                        ("polys", "p.kind")):
        rows = conn.execute(f"SELECT {cols}, p.geom FROM {table} p JOIN rt_{table} r ON r.id = p.id WHERE {w}").fetchall()
        if not rows:
            continue
        hit = shapely.intersects(poly, shapely.from_wkb([r[-1] for r in rows]))
        kinds = {_kind_key(table, r) for r, h in zip(rows, hit) if h}
        if table == "points":  # the state badges of water points
            kinds |= {symbols.STATE_BADGES[r[1]] for r, h in zip(rows, hit) if h and r[1] in symbols.STATE_BADGES}
        if kinds:
            out[table] = kinds
            if first_only:
                return out
    return out


def _kind_key(table: str, row) -> str:
    """The legend key of a cache row (kind, [seasonal,] geom)."""
    if table == "lines" and row[1] and row[0] in ("stream", "river", "ditch"):
        return "seasonal"
    return row[0]


def _legend_keys(conn, poly) -> list[str]:
    """The legend entries of what is drawn on a page, in legend order."""
    k = _kinds_on_page(conn, poly)
    polys, lines, points = k.get("polys", set()), k.get("lines", set()), k.get("points", set())
    keys = [x for x in symbols.WATER_POINTS if x in points]
    keys += [x for x in symbols.STATE_BADGES.values() if x in points]
    keys += [x for x in symbols.POI_KINDS if x in points and x not in symbols.WATER_POINTS]
    keys += [x for x in symbols.AREA_KEYS if x in polys]
    keys += [x for x in symbols.LINE_KEYS if x in lines]
    return keys


def _load_tasks(project):
    from ..tasks import lifecycle

    ts = [t for t in lifecycle.list_tasks(project) if t.state != lifecycle.SPLIT]
    if not ts:
        raise MapathonError(f"--tasks-overlay: the project {project.name} has no tasks yet; run 'mapathon grid' first")
    geoms = np.array([t.geom for t in ts], dtype=object)
    return ts, shapely.STRtree(geoms), geoms


def _page_tasks(tasks, bw, words: Words) -> list[dict]:
    ts, tree, geoms = tasks
    idx = tree.query(shapely_box(*bw))
    feats = []
    for i in sorted(idx):
        t = ts[i]
        feats.append({"type": "Feature",
                      "properties": {"id": t.id, "state": t.state, "label": f"#{t.id} {words(t.state)}"},
                      "geometry": shapely.geometry.mapping(geoms[i])})
    return feats


def _area_features(project, opts) -> list[dict]:
    if project is None:
        return []
    feats = [{"type": "Feature", "properties": {"kind": "aoi"},
              "geometry": shapely.geometry.mapping(project.aoi_geom())}]
    for v in project.villages():
        feats.append({"type": "Feature", "properties": {"kind": v["kind"], "name": v["name"]},
                      "geometry": shapely.geometry.mapping(shapely.from_wkb(v["geom"]))})
    return feats


def _key_box(pages, project, to_utm, frame: layout.Rect):
    """The key map's UTM box: every page (and the project's area) with a margin, in the frame's shape.
    Returns (box, scale denominator)."""
    b = _union([p.box for p in pages])
    if project is not None:
        aoi = geo.reproject(project.aoi_geom(), "EPSG:4326", to_utm.target_crs).bounds
        b = (min(b[0], aoi[0]), min(b[1], aoi[1]), max(b[2], aoi[2]), max(b[3], aoi[3]))
    w, h = b[2] - b[0], b[3] - b[1]
    pad = 0.06 * max(w, h)
    w, h = w + 2 * pad, h + 2 * pad
    fw, fh = int(frame.w * layout.MM), int(frame.h * layout.MM)
    if w / h > fw / fh:
        h = w * fh / fw
    else:
        w = h * fw / fh
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    return box, w / (fw / layout.MM / 1000)


# -- index -----------------------------------------------------------------------------------------------


def _index_entries(conn, pages, boxes_wgs, to_utm, lay, scale, words: Words):
    union = _union(boxes_wgs)
    w = mapbody.where_sql(union)
    places = conn.execute(f"SELECT p.name, p.names, p.kind, p.lon, p.lat FROM places p JOIN rt_places r "
                          f"ON r.id = p.id WHERE {w}").fetchall()
    points = conn.execute(f"SELECT p.name, p.names, p.kind, r.minx AS lon, r.miny AS lat FROM points p "
                          f"JOIN rt_points r ON r.id = p.id WHERE {w}").fetchall()
    step = furniture.grid_step_for(scale)
    min_part = furniture.MIN_SQUARE_MM * scale / 1000.0
    edges = []
    for p in pages:
        minx, miny, maxx, maxy = p.box
        edges.append((furniture.square_edges(minx, maxx, step, min_part),
                      list(reversed(furniture.square_edges(miny, maxy, step, min_part)))))

    def locate(lon, lat):
        x, y = to_utm.transform(lon, lat)
        best = None
        for p, (ce, re_) in zip(pages, edges):
            minx, miny, maxx, maxy = p.box
            if minx <= x <= maxx and miny <= y <= maxy:
                d = min(x - minx, maxx - x, y - miny, maxy - y)
                if best is None or d > best[0]:
                    best = (d, p, ce, re_)
        if best is None:
            return None
        _, p, ce, re_ = best
        return f"{words('p')} {p.number}, {furniture.square_of(x, y, ce, re_)}", (p.number, x, -y)

    def latin(s: str) -> bool:
        return all(not ch.isalpha() or "LATIN" in unicodedata.name(ch, "") for ch in s)

    sections = {"places_section": [], "water_section": [], "services_section": []}
    for rows, is_place in ((places, True), (points, False)):
        for r in rows:
            loc = locate(r["lon"], r["lat"])
            if loc is None:
                continue
            ref, pos = loc
            kind_word = words(r["kind"])
            if is_place:
                sec = "places_section"
            elif r["kind"] in symbols.WATER_POINTS:
                sec = "water_section"
            else:
                sec = "services_section"
            if r["name"]:
                name, detail = r["name"], kind_word.lower() if not is_place else kind_word
                if _norm(name) == _norm(kind_word):
                    detail = ""
            else:
                name, detail = kind_word, ""
            sort = _norm(name) + f" {pos[0]:05d}"
            sections[sec].append(furniture.IndexEntry(sec, name, detail, ref, sort))
            if r["names"] and r["name"]:
                for k, alt in json.loads(r["names"]).items():
                    k = k.split("#")[0]
                    if k.startswith("name:") and k[5:] not in INDEX_NAME_LANGS:
                        continue
                    if alt != r["name"] and latin(alt):
                        sections[sec].append(furniture.IndexEntry(sec, alt, f"→ {r['name']}", ref, _norm(alt)))
    out = []
    for sec, entries in sections.items():
        entries.sort(key=lambda e: e.sort)
        # identical lines (same name, same page and square) once
        uniq, seen = [], set()
        for e in entries:
            k = (e.name, e.detail, e.ref)
            if k not in seen:
                seen.add(k)
                uniq.append(e)
        out.append((sec, uniq))
    return out


# -- drawing and assembling --------------------------------------------------------------------------------


def _pages_per_map(notes: str | None) -> int:
    """Physical pages per map page: 2 when each map is followed by its notes page (--notes page)."""
    return 2 if notes == "page" else 1


@dataclass
class AtlasPlan:
    """What the furniture (cover, map page frames, notes pages, index) is drawn from: planned by :func:`_make`."""

    lay: layout.PageLayout
    scale: int
    notes: str | None  # --notes: None, "half" or "page"
    pages: list[layout.MapPage]
    legends: list[list[str]]  # the legend keys of each page
    to_wgs: object  # UTM -> WGS84 transformer (geo.transformer)
    to_utm: object
    epsg: int  # the UTM zone of the pages
    areas: list  # the Area of each village / task group, in order
    title: str
    project_name: str
    atlas_id: str  # short hash naming this print (in the QR codes)
    data_date: str
    print_date: str
    index: list  # (section, [IndexEntry]) for the index pages
    cover_frame: layout.Rect  # the cover's key map
    contents_rect: layout.Rect
    key_scale: float
    pal: dict  # the map style's palette
    tasks_overlay: bool
    with_imagery: bool
    grayscale: bool

    @property
    def index_title(self) -> str:
        return f"{self.title} — {self.project_name}" if self.title != self.project_name else self.title


def _draw_furniture(dest: Path, plan: AtlasPlan, words: Words) -> int:
    """Draw every page but the map bodies with ReportLab into *dest*; returns the number of index pages."""
    from reportlab.pdfgen import canvas

    furniture.register_fonts()
    lay, pages = plan.lay, plan.pages
    n_index = furniture.draw_index_pages(None, plan.index, lay.width, lay.height, words, 0, 0, plan.index_title,
                                         dry_run=True) if any(e for _, e in plan.index) else 0
    total = 1 + len(pages) * _pages_per_map(plan.notes) + n_index
    c = canvas.Canvas(str(dest), pagesize=(lay.width * layout.MM, lay.height * layout.MM), pageCompression=1)
    c.setTitle(f"{plan.title} — {words('atlas')}")
    c.setAuthor("mapathon")
    c.setSubject(words("attribution"))

    furniture.draw_cover(c, _cover_info(plan, words, total, n_index), plan.contents_rect, words, lay.width,
                         lay.height)
    c.showPage()
    for p, keys in zip(pages, plan.legends):
        furniture.draw_map_page(c, _map_page_info(plan, words, p, keys, total), plan.pal, words)
        c.showPage()
        if plan.notes == "page":
            furniture.draw_notes_page(c, lay, words, p.number + 1, total, p.number, p.area)
            c.showPage()
    if n_index:
        furniture.draw_index_pages(c, plan.index, lay.width, lay.height, words, total - n_index + 1, total,
                                   plan.index_title)
        c.showPage()
    c.save()
    return n_index


def _cover_info(plan: AtlasPlan, words: Words, total: int, n_index: int) -> furniture.CoverInfo:
    contents: list[tuple[str, str]] = []
    for ai, a in enumerate(plan.areas):
        nums = [p.number for p in plan.pages if p.area_index == ai]
        if not nums:
            continue
        pages_txt = f"{words('p')} {nums[0]}" if len(nums) == 1 else f"{words('p')} {nums[0]}–{nums[-1]}"
        contents.append((a.name, pages_txt))
    if n_index:
        contents.append((words("index"), f"{words('p')} {total - n_index + 1}"))
    lay, title, project_name = plan.lay, plan.title, plan.project_name
    return furniture.CoverInfo(
        title=f"{words('atlas')} — {title}",
        subtitle=(project_name + " · " if project_name != title else "")
        + f"{words('overview')} 1:{_round_scale(plan.key_scale)}",
        lines=[], frame=plan.cover_frame, contents=contents, total=total, data_date=plan.data_date,
        print_date=plan.print_date,
        scale_note=words("map_pages", n=len(plan.pages), scale=f"1:{plan.scale}") + f" · {lay.paper} {lay.orientation}"
        + f" · UTM {geo.utm_zone_name(plan.epsg)}")


def _map_page_info(plan: AtlasPlan, words: Words, p: layout.MapPage, keys: list[str],
                   total: int) -> furniture.MapPageInfo:
    lay, scale, pages, to_wgs = plan.lay, plan.scale, plan.pages, plan.to_wgs
    step = furniture.grid_step_for(scale)
    min_part = furniture.MIN_SQUARE_MM * scale / 1000.0
    subtitle_base = plan.project_name if plan.project_name != plan.title else ""
    minx, miny, maxx, maxy = p.box
    cx, cy = p.centre
    lon, lat = to_wgs.transform(cx, cy)
    nx, ny = plan.to_utm.transform(lon, lat + 0.01)
    conv = math.degrees(math.atan2(nx - cx, ny - cy))
    n_in_area = sum(1 for q in pages if q.area_index == p.area_index)
    part = ""
    if n_in_area > 1:
        idx = [q.number for q in pages if q.area_index == p.area_index].index(p.number) + 1
        part = f"{words('page')} {idx}/{n_in_area}"
    bbox = [round(v, 6) for v in _wgs_bounds(p.box, to_wgs)]
    page_id = f"{plan.atlas_id}-{p.number}"
    payload = json.dumps({"mapathon": FORMAT_VERSION, "project": plan.project_name, "page": page_id,
                          "bbox": bbox, "paper": lay.paper, "orientation": lay.orientation, "scale": scale,
                          # for `mapathon scan`: where the frame and marks are; what else is printed on the map
                          **registration.payload_fields(lay, p.box, plan.epsg, plan.atlas_id, plan.grayscale),
                          **({"overlay": [k for k, on in (("tasks", plan.tasks_overlay),
                                                          ("imagery", plan.with_imagery)) if on]}
                             if plan.tasks_overlay or plan.with_imagery else {}),
                          # the arrows printed inside the frame ({side: page}), drawn on the scan's reference
                          "neighbours": dict(p.neighbours), "area": p.area},
                         ensure_ascii=False, separators=(",", ":"))
    return furniture.MapPageInfo(
        number=p.number, total=total, title=p.area, subtitle=subtitle_base if p.area != subtitle_base else "",
        area_part=part, layout=lay, scale=scale, box=p.box, zone=geo.utm_zone_name(plan.epsg),
        to_lonlat=lambda xs, ys: to_wgs.transform(xs, ys), convergence_deg=conv, grid_step=step, legend=keys,
        neighbours=p.neighbours, qr_payload=payload, page_id=page_id, data_date=plan.data_date,
        print_date=plan.print_date, tasks=plan.tasks_overlay, imagery=plan.with_imagery,
        col_edges=furniture.square_edges(minx, maxx, step, min_part),
        row_edges=list(reversed(furniture.square_edges(miny, maxy, step, min_part))))


def _data_date(cache, data: Path, words: Words) -> str:
    """'Données du 24 juillet 2022' (the newest object of the data), or the data file's own date when
    its objects carry no timestamps (JOSM files, some extracts)."""
    if cache.data_date:
        return words("data_date", date=words.date(cache.data_date))
    stamp = dt.datetime.fromtimestamp(data.stat().st_mtime, dt.timezone.utc).date().isoformat()
    return words("file_date", date=words.date(stamp))


def _round_scale(s: float) -> int:
    mag = 10 ** max(0, int(math.log10(s)) - 1)
    return int(round(s / mag) * mag)


def _assemble(furniture_pdf: Path, dest: Path, pages, bodies, lay, key_pdf: Path, cover_frame) -> None:
    """Put each Mapnik map body under its page's furniture (as a form XObject)."""
    import pikepdf

    with pikepdf.open(furniture_pdf) as pdf:
        def underlay(page_index: int, body: Path, rect: layout.Rect, size_pt):
            with pikepdf.open(body) as src:
                x, y = rect.x * layout.MM, rect.y * layout.MM
                r = pikepdf.Rectangle(x, y, x + size_pt[0], y + size_pt[1])
                pikepdf.Page(pdf.pages[page_index]).add_underlay(src.pages[0], r)

        underlay(0, key_pdf, cover_frame, (int(cover_frame.w * layout.MM), int(cover_frame.h * layout.MM)))
        for p, body in zip(pages, bodies):
            underlay(p.number - 1, body, lay.frame, lay.frame_pt)
        pdf.remove_unreferenced_resources()
        pdf.save(dest, compress_streams=True, object_stream_mode=pikepdf.ObjectStreamMode.generate)


def _write_outputs(assembled: Path, out: Path, fmt: str, lay) -> list[Path]:
    if fmt == "pdf":
        with atomic_path(out) as tmp:
            shutil.copyfile(assembled, tmp)
        return [out]
    return _write_pngs(assembled, out, lay)


PHONE_PX = 1440  # the short side of a page picture, for phone screens


def _write_pngs(pdf: Path, out: Path, lay) -> list[Path]:
    try:
        import pypdfium2 as pdfium
    except ImportError:
        raise MapathonError("--format png needs the pypdfium2 package (pip install pypdfium2)") from None
    stem = out.name[: -len(out.suffix)] if out.suffix.lower() in (".png", ".pdf") else out.name
    folder = out.parent if str(out.parent) else Path(".")
    doc = pdfium.PdfDocument(str(pdf))
    n = len(doc)
    digits = max(2, len(str(n)))
    names = [folder / f"{stem}-{i + 1:0{digits}d}.png" for i in range(n)]
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{stem}.", dir=folder))
    try:
        for i in range(n):
            page = doc[i]
            w, h = page.get_size()
            s = PHONE_PX / min(w, h)
            img = page.render(scale=s).to_pil()
            img.save(tmpdir / names[i].name, "PNG")
            page.close()
        doc.close()
        for nm in names:
            os.replace(tmpdir / nm.name, nm)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return names
