"""Reading an area of interest (AOI) from the files organizers have.

Supported inputs:

* GeoJSON, GeoPackage, Shapefile and anything else fiona opens, in any CRS
  (reprojected to WGS84 with pyproj). Named polygon features become named
  sub-areas; point features become villages when a radius is given.
* ``.osm`` / ``.osm.pbf`` files holding a boundary or multipolygon relation
  (``relation=ID``), assembled by osmium.
* A CSV of villages (``name,lat,lon``, other columns kept), each buffered by
  ``radius`` metres in a local metric CRS.

The result is an :class:`AOI`: the union polygon and its named sub-areas
("villages": every report can be given per village).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from . import geo
from .errors import MapathonError, UsageMistake

DEFAULT_MAX_AREA_KM2 = 5000.0
NAME_KEYS = ("name", "NAME", "Name", "nom", "NOM", "village", "VILLAGE", "Village")
OSM_SUFFIXES = (".osm", ".osm.pbf", ".pbf", ".osm.gz", ".osm.bz2", ".o5m")
PROGRESS_MIN_BYTES = 8 * 1024 * 1024  # a file this large reports its progress while its features are read
PROGRESS_EVERY = 1000  # ... every this many features (or CSV rows), and once at the end

# progress(done, total): features (or CSV rows) read so far, and how many there are (None: not known)
OnProgress = Callable[[int, "int | None"], None]


@dataclass
class SubArea:
    """A named part of the AOI (a village and its surroundings)."""

    name: str
    geom: BaseGeometry
    kind: str = "village"  # village (from a point and a radius) or zone (a named polygon)
    point: tuple[float, float] | None = None  # (lon, lat) of the village centre
    props: dict = field(default_factory=dict)


@dataclass
class AOI:
    geom: BaseGeometry
    villages: list[SubArea]
    source: str
    warnings: list[str] = field(default_factory=list)

    @property
    def area_km2(self) -> float:
        return geo.area_m2(self.geom) / 1e6


def read_aoi(
    path: str | Path,
    *,
    relation: int | None = None,
    radius: float | None = None,
    max_area_km2: float = DEFAULT_MAX_AREA_KM2,
    force: bool = False,
    progress: OnProgress | None = None,
) -> AOI:
    """Read, validate and repair an AOI file. Raises :class:`MapathonError` on bad input.

    A village more than :data:`REFUSE_KM` from the others is refused (swapped lat/lon?) unless *force*.
    When the file is large (:data:`PROGRESS_MIN_BYTES`), *progress* is told how many features (or CSV
    rows) are read, as they are read.
    """
    path = Path(path)
    if not path.exists():
        raise MapathonError(f"{path}: no such file")
    if not path.is_file() and not path.is_dir():
        raise MapathonError(f"{path}: not a file")
    if radius is not None and not radius > 0:
        raise UsageMistake("must be a positive number of metres", field="radius", value=radius)
    name = path.name.lower()
    if name.endswith((".kml", ".kmz")):
        raise MapathonError(f"{path}: KML files cannot be read here; save it as GeoJSON first (in QGIS: right-click "
                            "the layer > Export > Save Features As, format GeoJSON)")
    if progress is not None and not _is_large(path):
        progress = None
    if name.endswith(".csv"):
        aoi = _read_csv(path, radius, force, progress)
    elif name.endswith(OSM_SUFFIXES):
        aoi = _read_osm(path, relation)
    else:
        aoi = _read_fiona(path, radius, force, progress)
    return _finish(aoi, path, max_area_km2)


def _is_large(path: Path) -> bool:
    """A file (or a folder's files, e.g. a Shapefile's) of at least :data:`PROGRESS_MIN_BYTES`."""
    files = [path] if path.is_file() else [f for f in path.iterdir() if f.is_file()]
    return sum(f.stat().st_size for f in files) >= PROGRESS_MIN_BYTES


def _reported(items: Iterable, total: int | None, progress: OnProgress | None) -> Iterator:
    """*items* as they are, telling *progress* how many went by every :data:`PROGRESS_EVERY` and at the end."""
    if progress is None:
        yield from items
        return
    done = 0
    progress(0, total)
    for item in items:
        yield item
        done += 1
        if done % PROGRESS_EVERY == 0:
            progress(done, total)
    progress(done, total)


def _finish(aoi: AOI, path: Path, max_area_km2: float) -> AOI:
    n = shapely.get_num_coordinates(aoi.geom)
    if n > MAX_VERTICES:
        raise MapathonError(f"{path}: the area's outline has {n:,} corners, over {MAX_VERTICES:,}: simplify it first "
                            "(in QGIS: Vector > Geometry Tools > Simplify, 10 m)")
    if not geo.coordinates_finite(aoi.geom):
        raise MapathonError(f"{path}: some coordinates are not numbers (NaN or infinity); fix the file")
    problem = geo.extent_problem(aoi.geom.bounds) if not aoi.geom.is_empty else None
    if problem:
        raise MapathonError(f"{path}: the area of interest is not usable: {problem}")
    geom, warning = geo.repair(aoi.geom, str(path))
    if warning:
        aoi.warnings.append(warning)
    if geom.is_empty:
        raise MapathonError(f"{path}: the area of interest is empty (no polygon with a surface)")
    aoi.geom = geom
    seen: dict[str, int] = {}
    for v in aoi.villages:
        if v.name.casefold() in seen:
            seen[v.name.casefold()] += 1
            new = f"{v.name} ({seen[v.name.casefold()]})"
            aoi.warnings.append(f"{path}: two areas are named {v.name!r}; the second is called {new!r}")
            v.name = new
        seen.setdefault(v.name.casefold(), 1)
        v.geom, w = geo.repair(v.geom, f"{path}: {v.name}")
        if w:
            aoi.warnings.append(w)
    area = aoi.area_km2
    if area > max_area_km2:
        raise MapathonError(
            f"{path}: the area of interest covers {area:,.0f} km², over the limit of "
            f"{max_area_km2:,.0f} km² (raise it with --max-area if this is intended)"
        )
    return aoi


def _villages_from_points(points: list[tuple[str, float, float, dict]], radius: float) -> list[SubArea]:
    return [
        SubArea(name=n, geom=geo.buffer_point_m(lon, lat, radius), kind="village", point=(lon, lat), props=p)
        for n, lon, lat, p in points
    ]


CSV_COLUMNS = {
    "name": ("name", "nom", "village", "localite", "localité", "place"),
    "lat": ("lat", "latitude", "y"),
    "lon": ("lon", "lng", "long", "longitude", "x"),
}
FAR_KM = 300.0  # a village this far from the others is probably a typing mistake: a warning
REFUSE_KM = 500.0  # ... this far, almost surely (swapped lat/lon): refused unless --force
MANY_POINTS = 200  # more points than this becoming villages: probably not villages (a GPS track?)
MAX_VILLAGES = 2000  # ... more than this: refused (each village is a circle to build; a mapathon has a few dozen)
MAX_VERTICES = 500_000  # corners of an area's polygons: beyond, refused (simplify it first)


def _decode_csv(path: Path, warnings: list[str]) -> str:
    raw = path.read_bytes()
    if b"\0" in raw[:4096]:
        raise MapathonError(f"{path}: not a text file (a CSV of villages is text: name,lat,lon)")
    nul = raw.find(b"\0")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise MapathonError(f"{path}, line {line}: a NUL byte (binary data, not text): "
                            "the file is damaged; save it again as CSV")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        warnings.append(f"{path}: not UTF-8, read as Windows-1252 (Excel); to be sure, save it as 'CSV UTF-8'")
        return raw.decode("cp1252", errors="replace")


def _read_csv(path: Path, radius: float | None, force: bool = False, progress: OnProgress | None = None) -> AOI:
    if radius is None:
        raise MapathonError(f"{path}: a CSV of villages needs --radius METRES (the area to map around each village)")
    warnings: list[str] = []
    text = _decode_csv(path, warnings)
    lines = text.splitlines()
    header = lines[0] if lines else ""
    delimiter = max(",;\t", key=header.count)  # French Excel writes ';' and decimal commas
    try:
        rows = list(csv.reader(lines, delimiter=delimiter))
    except csv.Error as e:
        raise MapathonError(f"{path}: unreadable CSV ({e})") from None
    if not rows:
        raise MapathonError(f"{path}: the CSV is empty (it needs the columns name,lat,lon)")
    fields = [c.strip().lower() for c in rows[0]]
    col = {}
    for want, aliases in CSV_COLUMNS.items():
        col[want] = next((fields.index(a) for a in aliases if a in fields), None)
    missing = [k for k, v in col.items() if v is None]
    if missing:
        raise MapathonError(
            f"{path}: CSV needs the columns name,lat,lon (missing: {', '.join(missing)}; "
            f"found: {', '.join(fields) or 'nothing'})"
        )
    points = []
    for lineno, row in enumerate(_reported(rows[1:], len(rows) - 1, progress), start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) > len(fields):
            raise MapathonError(
                f"{path}, line {lineno}: more values than columns; a decimal comma? write 14.49, "
                "or separate the columns with ';'"
            )
        cell = {k: (row[i].strip() if i < len(row) else "") for k, i in col.items()}
        try:
            lat = float(cell["lat"].replace(",", ".")) if delimiter != "," else float(cell["lat"])
            lon = float(cell["lon"].replace(",", ".")) if delimiter != "," else float(cell["lon"])
        except ValueError:
            raise MapathonError(
                f"{path}, line {lineno}: lat/lon must be numbers (got {cell['lat']!r}, {cell['lon']!r})"
            ) from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            swapped = " (lat and lon swapped?)" if -90 <= lon <= 90 and -180 <= lat <= 180 else ""
            raise MapathonError(f"{path}, line {lineno}: lat {lat}, lon {lon} is outside the world{swapped}")
        if not cell["name"]:
            raise MapathonError(f"{path}, line {lineno}: the village has no name")
        if any(ord(ch) < 32 or 0x7f <= ord(ch) < 0xa0 for ch in cell["name"]):
            raise MapathonError(f"{path}, line {lineno}: the village name {cell['name']!r} holds control characters")
        props = {fields[i]: v.strip() for i, v in enumerate(row) if i < len(fields)
                 and i not in col.values() and v.strip()}
        points.append((cell["name"], lon, lat, props))
        if len(points) > MAX_VILLAGES:
            raise MapathonError(f"{path}: more than {MAX_VILLAGES:,} villages (line {lineno}): a mapathon's area has a "
                                "few dozen; keep only the villages to map")
    if not points:
        raise MapathonError(f"{path}: the CSV has no village rows")
    names = [p[0] for p in points]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise MapathonError(f"{path}: village names must be unique ({', '.join(sorted(dup))} repeated)")
    warnings.extend(_far_villages(path, points, force))
    villages = _villages_from_points(points, radius)
    return AOI(shapely.union_all([v.geom for v in villages]), villages, str(path), warnings)


def _far_villages(path: Path, points, force: bool = False) -> list[str]:
    """Warn about villages far from the others (swapped lat/lon, a lost decimal point); refuse
    one more than REFUSE_KM away unless *force*."""
    if len(points) < 3:
        return []
    import numpy as np
    from pyproj import Geod

    lons = np.array([p[1] for p in points])
    lats = np.array([p[2] for p in points])
    mlon, mlat = float(np.median(lons)), float(np.median(lats))
    _, _, dist = Geod(ellps="WGS84").inv(np.full(len(points), mlon), np.full(len(points), mlat), lons, lats)
    worst = int(np.argmax(dist))
    if dist[worst] > REFUSE_KM * 1000 and not force:
        p = points[worst]
        raise MapathonError(
            f"{path}: {p[0]} (lat {p[2]}, lon {p[1]}) is {dist[worst] / 1000:,.0f} km from the other villages: "
            "check its lat/lon (swapped? decimal point?); if it is right, give --force")
    return [
        f"{path}: {p[0]} (lat {p[2]}, lon {p[1]}) is {d / 1000:,.0f} km from the other villages: "
        "check its lat/lon (swapped? decimal point?)"
        for p, d in zip(points, dist) if d > FAR_KM * 1000
    ]


GPX_VERTEX_LAYERS = ("track_points", "route_points")  # GDAL's layers of the points along GPX tracks and routes


def read_features(path: Path, skipped: dict[str, int] | None = None,
                  progress: OnProgress | None = None) -> list[tuple[BaseGeometry, dict]]:
    """Every feature of every layer of a vector file, reprojected to WGS84, with its properties.

    A GPX file's track and route points (the vertices of its tracks and routes, which GDAL also
    gives as layers of their own) are left out: counted in *skipped* (layer -> features) when given.
    *progress* is told how many features of each layer are read, as they are read.
    """
    import fiona
    from fiona.errors import FionaError

    try:
        layers = fiona.listlayers(path)
    except Exception as e:  # fiona raises DriverError and friends
        raise MapathonError(
            f"{path}: not a file mapathon can read as an area (use GeoJSON, GeoPackage, Shapefile, GPX, "
            ".osm/.osm.pbf with --relation, or a CSV name,lat,lon with --radius)"
        ) from None
    out: list[tuple[BaseGeometry, dict]] = []
    try:
        for layer in layers:
            with fiona.open(path, layer=layer) as src:
                if layer in GPX_VERTEX_LAYERS and src.driver == "GPX":
                    n = sum(1 for _ in src) if skipped is not None else 0  # GDAL cannot count them
                    if n:
                        skipped[layer] = n
                    continue
                try:
                    count = len(src)  # counted before reading: a million points are refused at once
                except TypeError:  # a driver that cannot count (GPX): the corners are counted after reading
                    count = 0
                if count > MAX_VERTICES:
                    raise MapathonError(f"{path}: layer {layer} has {count:,} features, over the limit of "
                                        f"{MAX_VERTICES:,}: keep only the area (or the tasks) to use")
                crs = src.crs.to_wkt() if src.crs else None
                feats = [(f.geometry, dict(f.properties or {})) for f in _reported(src, count or None, progress)
                         if f.geometry is not None]
                if not feats:
                    continue
                geoms = [shape(g) for g, _ in feats]
                if crs:
                    geoms = list(geo.reproject(geoms, crs, geo.WGS84))
                if not geo.coordinates_finite(geoms):
                    raise MapathonError(f"{path}: layer {layer}: some coordinates are not numbers (NaN or "
                                        "infinity); fix the file")
                solid = [g for g in geoms if not g.is_empty]
                if solid and not geo.lonlat_bounds_ok(shapely.total_bounds(solid)):
                    # also catches metres in a GeoJSON (always WGS84) or a file with a wrong CRS
                    raise MapathonError(
                        f"{path}: layer {layer}: coordinates are not longitude/latitude degrees "
                        + ("and it has no CRS" if not crs else "in its declared CRS (a wrong or missing .prj?)")
                    )
                out.extend(
                    (g, {k: v for k, v in props.items() if v is not None and not isinstance(v, (dict, list))})
                    for g, (_, props) in zip(geoms, feats)
                )
    except FionaError as e:
        raise MapathonError(f"{path}: unreadable ({_first_line(e)})") from None
    return out


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def feature_name(props: dict) -> str | None:
    """The name of a feature, from the usual name fields (control characters, which GPX, KML and OSM
    XML cannot hold, become spaces)."""
    return next((" ".join(_CONTROL.sub(" ", str(props[k])).split()) or None for k in NAME_KEYS if props.get(k)),
                None)


def _read_fiona(path: Path, radius: float | None, force: bool = False, progress: OnProgress | None = None) -> AOI:
    polygons: list[BaseGeometry] = []
    named: list[SubArea] = []
    points: list[tuple[str, float, float, dict]] = []
    others = 0
    warnings: list[str] = []
    skipped: dict[str, int] = {}
    features = read_features(path, skipped, progress)
    n = int(shapely.get_num_coordinates(np.array([g for g, _ in features], dtype=object)).sum()) if features else 0
    if n > MAX_VERTICES:
        raise MapathonError(f"{path}: {n:,} points and corners, over the limit of {MAX_VERTICES:,}: keep only the "
                            "area (simplify it in QGIS: Vector > Geometry Tools > Simplify, 10 m)")
    if skipped:
        warnings.append(f"{path}: left out {sum(skipped.values()):,} GPX track/route points (the points along a "
                        "track are not villages); only waypoints become villages")
    for g, props in features:
        nm = feature_name(props)
        if g.geom_type in ("Polygon", "MultiPolygon"):
            g, w = geo.repair(g, f"{path}: {nm}" if nm else str(path))
            if w:
                warnings.append(w)
            polygons.append(g)
            if nm:
                named.append(SubArea(nm, g, kind="zone", props=props))
        elif g.geom_type in ("Point", "MultiPoint"):
            pt = g.centroid
            points.append((nm or f"point {len(points) + 1}", pt.x, pt.y, props))
        else:
            others += 1
    if points:
        if radius is None:
            raise MapathonError(f"{path}: holds points (villages?); give --radius METRES to map around each one")
        if len(points) > MAX_VILLAGES:
            raise MapathonError(f"{path}: {len(points):,} points, over the limit of {MAX_VILLAGES:,} villages: a "
                                "mapathon's area has a few dozen; keep only the villages to map")
        if len(points) > MANY_POINTS:
            warnings.append(f"{path}: {len(points):,} points become {len(points):,} named areas: are they really "
                            "villages? (a GPS track's points are not)")
        warnings.extend(_far_villages(path, points, force))
        villages = _villages_from_points(points, radius)
        named.extend(villages)
        polygons.extend(v.geom for v in villages)
    if not polygons:
        if others:
            raise MapathonError(f"{path}: holds only lines, no polygon: an area of interest must be a polygon")
        raise MapathonError(f"{path}: holds no geometry")
    return AOI(shapely.union_all(polygons), named, str(path), warnings)


def _read_osm(path: Path, relation: int | None) -> AOI:
    import osmium

    if relation is None:
        raise MapathonError(f"{path}: an OpenStreetMap file needs --relation ID (the boundary relation to use)")
    wkbfab = osmium.geom.WKBFactory()
    found = None
    try:
        fp = osmium.FileProcessor(str(path)).with_areas().with_filter(osmium.filter.EntityFilter(osmium.osm.AREA))
        for obj in fp:
            if not obj.from_way() and obj.orig_id() == relation:
                found = (shapely.from_wkb(wkbfab.create_multipolygon(obj)), dict(obj.tags))
                break
    except RuntimeError as e:
        raise MapathonError(f"{path}: not a readable OpenStreetMap file ({_first_line(e)})") from None
    if found is None:
        raise MapathonError(
            f"{path}: relation {relation} not found, or not a complete area (boundary/multipolygon with all its ways)"
        )
    geom, tags = found
    nm = tags.get("name") or f"relation {relation}"
    return AOI(geom, [SubArea(nm, geom, kind="zone", props={"osm_relation": relation})], str(path))


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
