"""The water-point report for the commune's drinking-water project (``mapathon report water``).

From the project's latest data (or ``--data``), per village:

* the water points by kind (:func:`mapathon.quality.credit.water_kind`) and state: *working*,
  *not working* or *unknown* (:func:`water_state`, from ``operational_status``, ``disused``...), and
  how many are seasonal or give drinking water;
* the ones not working, with their OpenStreetMap id;
* the houses (mapped buildings) further than ``distance`` metres (500 by default) from a working water
  point, in metres in the local UTM zone, with shapely's STRtree (one vectorised query);
* a small map (PNG): the village area, houses (far ones in orange), water points coloured by state, the
  colours of the atlas legend (:data:`mapathon.atlas.symbols.WATER_STATES`).

Written as a self-contained HTML page (maps inline), a CSV table (one row per village) and a GeoPackage
(water points, far houses, villages), each atomically, in French or English.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely

from ..errors import MapathonError, UsageMistake
from ..fsutil import atomic_path
from ..quality.credit import OUTSIDE, WATER_ORDER, water_kind

DEFAULT_DISTANCE_M = 500.0

WORKING = "working"
NOT_WORKING = "not working"
UNKNOWN = "unknown"
STATES = (WORKING, NOT_WORKING, UNKNOWN)

_WORKING_STATUS = {"operational", "ok", "good", "working", "yes", "functional", "open", "needs_maintenance",
                   "restricted"}
_BROKEN_STATUS = {"broken", "non-operational", "non_operational", "not_operational", "nonoperational", "closed",
                  "dry", "no", "defective", "out_of_order", "abandoned", "disused", "damaged", "destroyed"}


def water_state(tags: dict) -> str:
    """*working*, *not working* or *unknown* for a water point's tags."""
    if any(tags.get(k) == "yes" for k in ("disused", "abandoned")) or any(
            k.startswith(("disused:", "abandoned:", "was:")) for k in tags):
        return NOT_WORKING
    status = (tags.get("operational_status") or "").strip().lower().replace(" ", "_")
    if status in _BROKEN_STATUS:
        return NOT_WORKING
    if status in _WORKING_STATUS:
        return WORKING
    if tags.get("drinking_water") == "yes" and tags.get("check_date"):
        return WORKING
    return UNKNOWN


@dataclass
class WaterPoint:
    osm: str  # "node/123"
    lon: float
    lat: float
    kind: str
    state: str
    village: str
    tags: dict

    def row(self) -> dict:
        t = self.tags
        return {"village": self.village, "osm": self.osm, "kind": self.kind, "state": self.state,
                "name": t.get("name", ""), "operational_status": t.get("operational_status", ""),
                "seasonal": t.get("seasonal", ""), "drinking_water": t.get("drinking_water", ""),
                "pump": t.get("pump", ""), "lon": round(self.lon, 7), "lat": round(self.lat, 7)}


@dataclass
class Village:
    name: str
    geom: object = None  # WGS84 polygon, None for the points outside the villages
    points: list = field(default_factory=list)
    houses: int = 0
    far: list = field(default_factory=list)  # (lon, lat, metres to the nearest working point or None)
    house_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))

    def count(self, state: str | None = None, kind: str | None = None) -> int:
        return sum(1 for p in self.points if (state is None or p.state == state) and (kind is None or p.kind == kind))

    def summary(self) -> dict:
        d = {"village": self.name, "water_points": len(self.points)}
        for s in STATES:
            d[s.replace(" ", "_")] = self.count(s)
        d["seasonal"] = sum(1 for p in self.points if p.tags.get("seasonal") not in (None, "no"))
        d["drinking_water"] = sum(1 for p in self.points if p.tags.get("drinking_water") == "yes")
        for k in WATER_ORDER:
            d[k.replace(" ", "_")] = self.count(kind=k)
        d["houses"] = self.houses
        d["houses_far"] = len(self.far)
        return d


@dataclass
class WaterReport:
    data: Path
    distance_m: float
    villages: list[Village]

    def as_dict(self) -> dict:
        return {"data": str(self.data), "distance_m": self.distance_m,
                "villages": [{**v.summary(), "not_working": [p.row() for p in v.points if p.state == NOT_WORKING]}
                             for v in self.villages]}


def compute(project, data: str | Path | None = None, distance: float = DEFAULT_DISTANCE_M) -> WaterReport:
    """Water points and far houses of each village of *project*, from *data* (default: its latest merge)."""
    from .. import geo
    from ..osm.submit import latest_data
    from ..quality.features import read_features
    from ..quality.where import Locator
    from .conflate import tagged_nodes

    if not distance or distance <= 0:
        raise UsageMistake("give a distance in metres, more than 0", field="distance", value=distance)
    path = Path(data) if data is not None else latest_data(project)
    if not path.is_file():
        raise MapathonError(f"{path}: no such OpenStreetMap file")
    nodes = tagged_nodes(path, lambda t: water_kind(t) is not None)
    feats = read_features(path)
    loc = Locator(project)
    houses = shapely.get_coordinates(shapely.centroid(feats.b_geom)) if len(feats.b_geom) else np.zeros((0, 2))

    pts_ll = [(n.lon / 1e7, n.lat / 1e7) for n in nodes]
    _t, pvill = loc.locate(pts_ll)
    _t, hvill = loc.locate([tuple(p) for p in houses.tolist()])
    villages = {name: Village(name, g) for name, g in zip(loc.village_names, loc.village_geoms)}

    def village(name):
        name = name or OUTSIDE
        if name not in villages:
            villages[name] = Village(name)
        return villages[name]

    for n, (lon, lat), v in zip(nodes, pts_ll, pvill):
        village(v).points.append(WaterPoint(f"node/{n.id}", lon, lat, water_kind(n.tags), water_state(n.tags),
                                            v or OUTSIDE, n.tags))
    # houses far from a working point: metres in the UTM zone of the area, one STRtree query
    centre = project.aoi_geom().centroid
    tr = geo.transformer("EPSG:4326", f"EPSG:{geo.utm_epsg(centre.x, centre.y)}")
    working = np.array([ll for ll, n in zip(pts_ll, nodes) if water_state(n.tags) == WORKING], dtype=float)
    near = np.zeros(len(houses), dtype=bool)
    dist = np.full(len(houses), np.nan)
    if len(houses):
        hx, hy = tr.transform(houses[:, 0], houses[:, 1])
        hpts = shapely.points(np.column_stack([hx, hy]))
        if len(working):
            wx, wy = tr.transform(working[:, 0], working[:, 1])
            tree = shapely.STRtree(shapely.points(np.column_stack([wx, wy])))
            hi, _wi = tree.query(hpts, predicate="dwithin", distance=distance)
            near[hi] = True
            far_i = np.flatnonzero(~near)
            if len(far_i):
                (fi, _fw), d = tree.query_nearest(hpts[far_i], return_distance=True, all_matches=False)
                dist[far_i[fi]] = d
    for i, v in enumerate(hvill):
        vil = village(v)
        vil.houses += 1
        if not near[i]:
            vil.far.append((float(houses[i, 0]), float(houses[i, 1]), None if np.isnan(dist[i]) else float(dist[i])))
    for v in villages.values():
        v.house_xy = houses[[i for i, name in enumerate(hvill) if (name or OUTSIDE) == v.name]] if len(houses) \
            else np.zeros((0, 2))
        v.points.sort(key=lambda p: (STATES.index(p.state), WATER_ORDER.index(p.kind), p.osm))
    out = [villages[n] for n in loc.village_names]
    if OUTSIDE in villages and (villages[OUTSIDE].points or villages[OUTSIDE].houses):
        out.append(villages[OUTSIDE])
    return WaterReport(path, float(distance), out)


# -- outputs ----------------------------------------------------------------------------------------------

def write_csv(rep: WaterReport, dest: str | Path) -> Path:
    """One row per village (and a total): water points by state and kind, houses, houses far."""
    rows = [v.summary() for v in rep.villages]
    if rows:
        total = {k: (sum(r[k] for r in rows) if k != "village" else "TOTAL") for k in rows[0]}
        rows.append(total)
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["village"])
            w.writeheader()
            w.writerows(rows)
    return dest


def write_gpkg(rep: WaterReport, dest: str | Path) -> Path:
    """Layers ``water_points``, ``far_houses`` and ``villages`` (the CSV's figures on each area)."""
    import fiona
    from shapely.geometry import mapping

    dest = Path(dest)
    pt_schema = {"geometry": "Point", "properties": {"village": "str", "osm": "str", "kind": "str", "state": "str",
                                                     "name": "str", "operational_status": "str", "seasonal": "str",
                                                     "drinking_water": "str", "pump": "str"}}
    with atomic_path(dest) as tmp:
        with fiona.open(tmp, "w", driver="GPKG", layer="water_points", crs="EPSG:4326", schema=pt_schema) as out:
            for v in rep.villages:
                for p in v.points:
                    props = {k: str(val) for k, val in p.row().items() if k not in ("lon", "lat")}
                    out.write({"geometry": {"type": "Point", "coordinates": (p.lon, p.lat)}, "properties": props})
        schema = {"geometry": "Point", "properties": {"village": "str", "nearest_working_m": "float"}}
        with fiona.open(tmp, "w", driver="GPKG", layer="far_houses", crs="EPSG:4326", schema=schema) as out:
            for v in rep.villages:
                for lon, lat, d in v.far:
                    out.write({"geometry": {"type": "Point", "coordinates": (lon, lat)},
                               "properties": {"village": v.name, "nearest_working_m": None if d is None else round(d, 1)}})
        keys = [k for k in (rep.villages[0].summary() if rep.villages else {"village": ""})]
        schema = {"geometry": "Polygon", "properties": {k: ("str" if k == "village" else "int") for k in keys}}
        with fiona.open(tmp, "w", driver="GPKG", layer="villages", crs="EPSG:4326", schema=schema) as out:
            for v in rep.villages:
                if v.geom is not None:
                    out.write({"geometry": mapping(shapely.convex_hull(v.geom) if v.geom.geom_type != "Polygon"
                                                   else v.geom), "properties": v.summary()})
    return dest


def village_map_png(v: Village, size: int = 420) -> bytes:
    """A small map of one village: area, houses (far ones orange), water points by state (atlas colours)."""
    from PIL import Image, ImageDraw

    from ..atlas.symbols import WATER_STATES

    lonlat = [(p.lon, p.lat) for p in v.points] + [tuple(x) for x in v.house_xy.tolist()]
    if v.geom is not None:
        minx, miny, maxx, maxy = v.geom.bounds
    elif lonlat:
        a = np.array(lonlat)
        minx, miny = a.min(0)
        maxx, maxy = a.max(0)
    else:
        minx = miny = 0.0
        maxx = maxy = 1.0
    k = np.cos(np.radians((miny + maxy) / 2))  # a degree of longitude is shorter
    w, h = max((maxx - minx) * k, 1e-6), max(maxy - miny, 1e-6)
    s = (size - 20) / max(w, h)

    def px(lon, lat):
        return 10 + (lon - minx) * k * s, size - 10 - (lat - miny) * s

    img = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(img)
    if v.geom is not None:
        for poly in getattr(v.geom, "geoms", [v.geom]):
            d.line([px(x, y) for x, y in poly.exterior.coords], fill="#7d1850", width=2)
    far = {(round(x, 7), round(y, 7)) for x, y, _d in v.far}
    for x, y in v.house_xy.tolist():
        c = WATER_STATES["far_house"] if (round(x, 7), round(y, 7)) in far else "#9e9e9e"
        X, Y = px(x, y)
        d.rectangle([X - 1.5, Y - 1.5, X + 1.5, Y + 1.5], fill=c)
    for p in reversed(v.points):  # unknown first, working last: on top
        X, Y = px(p.lon, p.lat)
        d.ellipse([X - 5, Y - 5, X + 5, Y + 5], fill=WATER_STATES[p.state], outline="#000000")
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def write_html(rep: WaterReport, dest: str | Path, lang: str, project_name: str) -> Path:
    from ..atlas.symbols import WATER_STATES
    from ..i18n import Words
    from ..quality.report_html import _CSS

    w = Words(lang)
    e = html.escape

    def kind(k):
        return w.get(f"water.{k}", k)

    parts = [f"<!doctype html><html lang='{w.lang}'><head><meta charset='utf-8'>"
             f"<title>{e(w('wr.title', name=project_name))}</title><style>{_CSS}</style></head><body>",
             f"<h1>{e(w('wr.title', name=project_name))}</h1>",
             f"<p class='sub'>{e(w('wr.sub', data=rep.data.name, distance=w.number(rep.distance_m)))}</p>"]
    # the table the donors ask for
    head = ["wr.village", "wr.points", "wr.working", "wr.not_working", "wr.unknown", "wr.seasonal", "wr.houses",
            "wr.far"]
    parts.append("<h2>" + e(w("wr.summary")) + "</h2><div class='scroll'><table><tr>"
                 + "".join(f"<th{'' if i == 0 else ' class=n'}>{e(w(h))}</th>" for i, h in enumerate(head))
                 + "</tr>")
    tot = [0] * 7
    for v in rep.villages:
        s = v.summary()
        vals = [s["water_points"], s["working"], s["not_working"], s["unknown"], s["seasonal"], s["houses"],
                s["houses_far"]]
        tot = [a + b for a, b in zip(tot, vals)]
        name = w("wr.outside") if v.name == OUTSIDE else v.name
        parts.append(f"<tr><td>{e(name)}</td>" + "".join(f"<td class=n>{w.number(x)}</td>" for x in vals) + "</tr>")
    parts.append(f"<tr class=total><td>{e(w('wr.total'))}</td>"
                 + "".join(f"<td class=n>{w.number(x)}</td>" for x in tot) + "</tr></table></div>")
    legend = " ".join(f"<span class=pill style='border-color:{WATER_STATES[s]}'><b style='color:{WATER_STATES[s]}'>"
                      f"●</b> {e(w('wr.' + s.replace(' ', '_')))}</span>" for s in STATES)
    legend += (f" <span class=pill><b style='color:{WATER_STATES['far_house']}'>■</b> "
               f"{e(w('wr.far_house', distance=w.number(rep.distance_m)))}</span>")
    for v in rep.villages:
        name = w("wr.outside") if v.name == OUTSIDE else v.name
        parts.append(f"<h2>{e(name)}</h2>")
        kinds = [k for k in WATER_ORDER if v.count(kind=k)]
        if kinds:
            parts.append("<table><tr><th></th>" + "".join(f"<th class=n>{e(w('wr.' + s.replace(' ', '_')))}</th>"
                                                         for s in STATES) + "</tr>")
            for k in kinds:
                parts.append(f"<tr><td>{e(kind(k))}</td>"
                             + "".join(f"<td class=n>{v.count(s, k)}</td>" for s in STATES) + "</tr>")
            parts.append("</table>")
        else:
            parts.append(f"<p class=muted>{e(w('wr.none'))}</p>")
        broken = [p for p in v.points if p.state == NOT_WORKING]
        if broken:
            parts.append(f"<h3>{e(w('wr.broken_list'))}</h3><ul>" + "".join(
                f"<li>{e(kind(p.kind))} {e(p.tags.get('name', ''))} <code>{e(p.osm)}</code> "
                f"{e(p.tags.get('operational_status', ''))}</li>" for p in broken) + "</ul>")
        if not v.points and not v.houses:  # nothing mapped in this village yet: no empty map
            continue
        parts.append(f"<p>{e(w('wr.far_line', n=w.number(len(v.far)), houses=w.number(v.houses), distance=w.number(rep.distance_m)))}</p>")
        png = base64.b64encode(village_map_png(v)).decode()
        parts.append(f"<figure><img alt='{e(name)}' src='data:image/png;base64,{png}'><figcaption>{legend}"
                     "</figcaption></figure>")
    parts.append(f"<footer>{w('report.footer', link=e(w('report.osm_contributors')))}</footer></body></html>")
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return dest


def run(project, *, data=None, distance: float = DEFAULT_DISTANCE_M, html_path=None, csv_path=None, gpkg_path=None,
        lang: str | None = None) -> WaterReport:
    """``mapathon report water``: compute, then write the files asked for."""
    from ..i18n import resolve_lang

    rep = compute(project, data, distance)
    if csv_path is not None:
        write_csv(rep, csv_path)
    if gpkg_path is not None:
        write_gpkg(rep, gpkg_path)
    if html_path is not None:
        write_html(rep, html_path, resolve_lang(project, lang), project.name)
    return rep
