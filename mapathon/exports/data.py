"""Export the project's OpenStreetMap data for the field: water points and buildings, for a phone or a GPS.

The data is the project's latest (``merged/latest.osm.pbf``, see
:func:`mapathon.osm.submit.latest_data`) or a ``.osm.pbf`` given with
``--data``. What is exported:

* **water points** (``--kind wells``, the default), classified as the credit
  report does (:func:`mapathon.quality.credit.water_kind`: borehole, well,
  tap, water point, drinking water, spring, water tower, water tank). Nodes,
  and ways at a point inside them;
* **buildings** (``--kind buildings``), read as the quality checks read them
  (:func:`mapathon.quality.features.read_features`: closed ways and
  multipolygons, new objects with negative ids included);
* or both (``--kind all``).

Each object gets the village whose area holds it (else, inside the project's
area, the nearest village) and the task square it lies in
(:class:`mapathon.quality.where.Locator`).

Formats, by extension: GeoJSON and GeoPackage (fiona; buildings as
polygons), GPX waypoints (gpxpy) and KML placemarks (written with the
standard XML library: GDAL's LIBKML driver is not in fiona's wheels) for
OsmAnd, Organic Maps and GPS units (buildings as a point inside them), and
CSV with lon/lat columns (the exports' one CSV writer, with its French Excel
dialect).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import shapely
from shapely.geometry import mapping

from ..errors import MapathonError, UsageMistake
from ..fsutil import atomic_path
from ..osm.readers import file_format
from ..project import Project
from ..quality.credit import WATER_ORDER, water_kind
from .formats import check_csv_dialect, resolve_format, write_csv

FORMATS = ("geojson", "gpkg", "gpx", "kml", "csv")
KINDS = ("wells", "buildings", "all")
BUILDING = "building"
#: Tags kept on each object (empty when absent).
TAGS = ("name", "pump", "drinking_water", "building")
#: Columns of every format (CSV adds lon and lat in front); label is the GPS name (see _label).
PROPS = {"label": "str", "kind": "str", "name": "str", "pump": "str", "drinking_water": "str", "building": "str",
         "village": "str", "task": "int", "osm_id": "str"}
#: Garmin waypoint symbols (OsmAnd and others know them too).
GPX_SYMBOLS = {BUILDING: "Building"}
GPX_WATER_SYMBOL = "Drinking Water"
#: Organic Maps reads a placemark's colour from these style names; other apps read the styles themselves.
KML_STYLES = {"placemark-blue": "ffd08d1e", "placemark-orange": "ff0078ff"}
KML_NS = "http://www.opengis.net/kml/2.2"
LAYERS = {"wells": "water_points", "buildings": "buildings", "all": "osm_data"}


@dataclass
class Item:
    """One exported object. *geom* is WGS84 (x = lon); *lon*, *lat* a point on it."""

    kind: str  # a water kind ("well", "borehole", ...) or "building"
    osm_type: str  # node | way | relation
    osm_id: int
    tags: dict
    geom: object
    lon: float
    lat: float
    village: str = ""
    task: int | None = None
    label: str = ""  # what a GPS shows, unique in the file (see _label)

    @property
    def ref(self) -> str:
        return f"{self.osm_type}/{self.osm_id}"

    def props(self) -> dict:
        return {"label": self.label, "kind": self.kind, **{k: self.tags.get(k, "") for k in TAGS}, "village": self.village,
                "task": self.task, "osm_id": self.ref}

    def description(self) -> str:
        parts = [self.kind]
        for k in ("pump", "drinking_water"):
            if self.tags.get(k):
                parts.append(f"{k}={self.tags[k]}")
        if self.kind == BUILDING and self.tags.get("building") not in (None, "", "yes"):
            parts.append(f"building={self.tags['building']}")
        if self.village:
            parts.append(f"village {self.village}")
        if self.task is not None:
            parts.append(f"task {self.task}")
        parts.append(f"OSM {self.ref}")
        return "; ".join(parts)


@dataclass
class DataExport:
    source: Path
    output: Path
    format: str
    counts: dict = field(default_factory=dict)  # kind -> number written
    outside: int = 0  # of them outside the project's area (no village)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# -- reading -----------------------------------------------------------------------------------------------


def _data_source(project: Project, data: str | Path | None) -> Path:
    if data is None:
        from ..osm.submit import latest_data

        try:
            return latest_data(project)
        except MapathonError as e:
            raise MapathonError(f"{e}, or give --data FILE.osm.pbf") from None
    path = Path(data)
    if not path.is_file():
        raise MapathonError("no such file", field="data", value=path)
    kind, comp, _ = file_format(path, name=f"--data {path}")
    if kind != "pbf" or comp is not None:
        raise UsageMistake("give an .osm.pbf file (an extract or a merge); JOSM and .osc files "
                           "go through 'mapathon merge' first", field="data", value=path)
    return path


def _point_on(g) -> tuple[float, float]:
    p = shapely.point_on_surface(g) if g.is_valid and g.area > 0 else g.centroid
    return p.x, p.y


def read_water_points(path: Path) -> list[Item]:
    """Water points (nodes, and ways at a point inside them) of an .osm.pbf file, new objects included."""
    import osmium

    items: list[Item] = []
    ways = []  # (id, refs, kind, tags)
    src = str(path)
    keys = osmium.filter.KeyFilter("man_made", "amenity", "natural")
    for o in osmium.FileProcessor(src, osmium.osm.NODE | osmium.osm.WAY).with_filter(keys):
        tags = dict(o.tags)
        kind = water_kind(tags)
        if kind is None:
            continue
        kept = {k: tags[k] for k in TAGS if tags.get(k)}
        if o.is_node():
            if o.location.valid():
                x, y = o.location.lon, o.location.lat
                items.append(Item(kind, "node", o.id, kept, shapely.Point(x, y), x, y))
        else:
            ways.append((o.id, [n.ref for n in o.nodes], kind, kept))
    if ways:  # one more pass for their nodes (no location index: new nodes have negative ids, which it ignores)
        wanted = {r for _, refs, _, _ in ways for r in refs}
        where = {}
        for n in osmium.FileProcessor(src, osmium.osm.NODE):
            if n.id in wanted and n.location.valid():
                where[n.id] = (n.location.lon, n.location.lat)
        for wid, refs, kind, kept in ways:
            coords = [where[r] for r in refs if r in where]
            if not coords:
                continue
            if len(coords) >= 4 and refs[0] == refs[-1]:
                g = shapely.Polygon(coords)
            elif len(coords) >= 2:
                g = shapely.LineString(coords)
            else:
                g = shapely.Point(coords[0])
            x, y = _point_on(g)
            items.append(Item(kind, "way", wid, kept, shapely.Point(x, y), x, y))
    return items


def read_buildings(path: Path) -> list[Item]:
    """Buildings of an .osm.pbf file as polygons, read as the quality checks read them."""
    from ..quality.features import read_features

    f = read_features(path)
    items = []
    for t, oid, g, value in zip(f.b_type, f.b_id, f.b_geom, f.b_value):
        if g is None or g.is_empty:
            continue
        x, y = _point_on(g)
        items.append(Item(BUILDING, str(t), int(oid), {"building": value or ""}, g, x, y))
    return items


def _locate(project: Project, items: list[Item]) -> int:
    """Each item's task and village: the village whose area holds it, else (inside the project's area) the
    nearest village, else none. Returns how many items are outside the project's area."""
    from ..quality.where import Locator

    loc = Locator(project)
    tasks, villages = loc.locate([(i.lon, i.lat) for i in items])
    for it, t, v in zip(items, tasks, villages):
        it.task = t.id if t is not None else None
        it.village = v or ""
    homeless = [i for i, it in enumerate(items) if not it.village]
    if not homeless:
        return 0
    pts = shapely.points([(items[i].lon, items[i].lat) for i in homeless])
    inside = shapely.intersects(project.aoi_geom(), pts)
    near = [i for i, ok in zip(homeless, inside.tolist()) if ok]
    if near and loc.village_tree is not None:
        src, dst = loc.village_tree.query_nearest(shapely.points([(items[i].lon, items[i].lat) for i in near]))
        for a, b in zip(src.tolist(), dst.tolist()):
            items[near[a]].village = loc.village_names[b]
    return int((~inside).sum())


def collect(project: Project, *, data: str | Path | None = None, kind: str = "wells",
            village: str | None = None) -> tuple[Path, list[Item], int]:
    """The objects to export (sorted by village, kind, name), the file they come from and how many of them
    are outside the project's area."""
    if kind not in KINDS:
        raise UsageMistake(f"unknown (choose one of {', '.join(KINDS)})", field="kind", value=kind)
    area = shapely.from_wkb(project.village(village)["geom"]) if village else None  # before reading: fail fast
    source = _data_source(project, data)
    items: list[Item] = []
    if kind in ("wells", "all"):
        try:
            items += read_water_points(source)
        except RuntimeError as e:  # libosmium: a damaged or truncated file
            raise MapathonError(f"{source}: cannot read ({e})") from None
    if kind in ("buildings", "all"):
        items += read_buildings(source)
    if area is not None:
        shapely.prepare(area)
        items = [it for it in items if area.intersects(it.geom)]
    outside = _locate(project, items)
    order = {k: i for i, k in enumerate(WATER_ORDER + (BUILDING,))}
    items.sort(key=lambda it: (it.village, order.get(it.kind, 99), it.tags.get("name", ""), it.osm_type, it.osm_id))
    _label(items)
    return source, items, outside


def _label(items: list[Item]) -> None:
    """A name for each item, unique in the file: GPS units keep one waypoint per name.

    Its OSM name, else "Torodo well 3" (village, kind, number); a name used
    twice gets " 2", " 3"...
    """
    numbers: dict[tuple[str, str], int] = {}
    seen: set[str] = set()
    for it in items:
        base = it.tags.get("name")
        if not base:
            k = numbers[it.village, it.kind] = numbers.get((it.village, it.kind), 0) + 1
            base = f"{it.village} {it.kind} {k}".strip()
        label, n = base, 1
        while label in seen:
            n += 1
            label = f"{base} {n}"
        seen.add(label)
        it.label = label


# -- writing -----------------------------------------------------------------------------------------------


def export_data(project: Project, dest: str | Path, fmt: str | None = None, *, data: str | Path | None = None,
                kind: str = "wells", village: str | None = None, csv_dialect: str | None = None) -> DataExport:
    """Write the project's water points and/or buildings to *dest* (format from the extension or *fmt*)."""
    fmt = resolve_format(dest, fmt, FORMATS)
    dialect = check_csv_dialect(csv_dialect, fmt)
    dest = Path(dest)
    source, items, outside = collect(project, data=data, kind=kind, village=village)
    if not items:
        what = {"wells": "water points", "buildings": "buildings", "all": "water points or buildings"}[kind]
        where = f" in village {project.village(village)['name']}" if village else ""
        raise MapathonError(f"{source}: no {what}{where}; nothing written to {dest}")
    if fmt == "gpx":
        _write_gpx(project, items, dest)
    elif fmt == "kml":
        _write_kml(project, items, dest, village)
    elif fmt == "csv":
        write_csv(dest, ["lon", "lat", *PROPS],
                  ([round(it.lon, 7), round(it.lat, 7), *it.props().values()] for it in items), dialect)
    else:
        with atomic_path(dest) as tmp:
            _write_fiona(items, tmp, fmt, LAYERS[kind])
    counts = {k: sum(1 for it in items if it.kind == k) for k in WATER_ORDER + (BUILDING,)}
    return DataExport(source, dest, fmt, {k: n for k, n in counts.items() if n}, outside)


def _write_fiona(items: list[Item], path: Path, fmt: str, layer: str) -> None:
    """GeoJSON: one layer, points and polygons together. GeoPackage: a point layer and a polygon layer."""
    import fiona

    def rec(it: Item, multi: bool) -> dict:
        g = it.geom
        if multi and g.geom_type == "Polygon":
            g = shapely.multipolygons([g])
        return {"geometry": mapping(g), "properties": it.props()}

    if fmt == "geojson":
        schema = {"geometry": "Unknown", "properties": PROPS}
        with fiona.open(path, "w", driver="GeoJSON", schema=schema, crs="EPSG:4326", layer=layer) as dst:
            dst.writerecords(rec(it, False) for it in items)
        return
    groups = (("water_points", "Point", [it for it in items if it.kind != BUILDING]),
              ("buildings", "MultiPolygon", [it for it in items if it.kind == BUILDING]))
    for name, gtype, group in groups:
        if group:  # mode "w" with a new layer name adds a layer to the GeoPackage
            schema = {"geometry": gtype, "properties": PROPS}
            with fiona.open(path, "w", driver="GPKG", schema=schema, crs="EPSG:4326", layer=name) as dst:
                dst.writerecords(rec(it, True) for it in group)


def _write_gpx(project: Project, items: list[Item], dest: Path) -> None:
    import gpxpy.gpx

    doc = gpxpy.gpx.GPX()
    doc.creator = "mapathon"
    doc.name = project.name
    for it in items:
        doc.waypoints.append(gpxpy.gpx.GPXWaypoint(
            latitude=round(it.lat, 7), longitude=round(it.lon, 7), name=it.label, description=it.description(),
            symbol=GPX_SYMBOLS.get(it.kind, GPX_WATER_SYMBOL), type=it.kind))
    with atomic_path(dest) as tmp:
        tmp.write_text(doc.to_xml(version="1.1"), encoding="utf-8")


def _write_kml(project: Project, items: list[Item], dest: Path, village: str | None) -> None:
    """Placemarks in one folder per kind, each with its description and data fields."""
    ET.register_namespace("", KML_NS)

    def el(parent, tag: str, text=None, **attrs):
        e = ET.SubElement(parent, f"{{{KML_NS}}}{tag}", attrs)
        if text is not None:
            e.text = str(text)
        return e

    root = ET.Element(f"{{{KML_NS}}}kml")
    doc = el(root, "Document")
    el(doc, "name", project.name + (f" - {project.village(village)['name']}" if village else ""))
    for sid, colour in KML_STYLES.items():
        st = el(doc, "Style", id=sid)
        el(el(st, "IconStyle"), "color", colour)
    folders: dict[str, object] = {}
    for it in items:
        if it.kind not in folders:
            folders[it.kind] = el(doc, "Folder")
            el(folders[it.kind], "name", it.kind)
        pm = el(folders[it.kind], "Placemark")
        el(pm, "name", it.label)
        el(pm, "description", it.description())
        el(pm, "styleUrl", "#placemark-orange" if it.kind == BUILDING else "#placemark-blue")
        ext = el(pm, "ExtendedData")
        for k, v in it.props().items():
            if v not in (None, ""):
                el(el(ext, "Data", name=k), "value", v)
        el(el(pm, "Point"), "coordinates", f"{it.lon:.7f},{it.lat:.7f}")
    ET.indent(root)
    with atomic_path(dest) as tmp:  # the declaration as every KML reader expects it (ET would write it in single quotes)
        tmp.write_bytes(b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8",
                                                                                 xml_declaration=False) + b"\n")
