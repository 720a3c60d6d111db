"""The layer cache: an OSM file read once by osmium into SQLite tables that Mapnik reads.

One SQLite file per data file, named after the data file's sha256, so that a second
atlas from the same data starts at once. Geometries are WKB in WGS84; each table has
an R*Tree spatial index (``rt_<table>``) that the per-page SQL of the style joins on.

Tables:

* ``polys``  (buildings, water, landuse): ``kind``, ``name``, ``area`` (in square degrees, for
  drawing big areas first);
* ``lines``  (roads, waterways, railways): ``kind``, ``name``, ``ref``, ``seasonal``, ``z``;
* ``points`` (points of interest, also from areas such as school grounds): ``kind``, ``name``, ``names``
  (JSON of alternative names), ``prio`` (water points first);
* ``places`` (cities, villages, hamlets...): ``kind``, ``name``, ``names``, ``rank``;
* ``meta``: data date, source, counts.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import MapathonError
from ..fsutil import atomic_path
from ..quality.credit import water_kind

CACHE_VERSION = 6
TABLES = ("polys", "lines", "points", "places")

# -- classification of OSM tags ------------------------------------------------------------------

ROAD_KINDS = {
    "motorway": "major", "motorway_link": "major", "trunk": "major", "trunk_link": "major",
    "primary": "primary", "primary_link": "primary",
    "secondary": "secondary", "secondary_link": "secondary",
    "tertiary": "tertiary", "tertiary_link": "tertiary",
    "unclassified": "minor", "residential": "minor", "living_street": "minor", "service": "minor",
    "road": "minor", "pedestrian": "minor", "busway": "minor",
    "track": "track",
    "path": "path", "footway": "path", "bridleway": "path", "cycleway": "path", "steps": "path",
}
# drawing order of line kinds (bigger on top)
LINE_Z = {"ditch": 1, "stream": 2, "river": 3, "path": 10, "track": 11, "minor": 12, "tertiary": 13,
          "secondary": 14, "primary": 15, "major": 16, "rail": 17}
WATERWAY_KINDS = {"river": "river", "canal": "river", "stream": "stream", "brook": "stream",
                  "ditch": "ditch", "drain": "ditch", "wadi": "stream"}
LANDUSE_KINDS = {
    ("landuse", "residential"): "residential",
    ("landuse", "farmland"): "farmland", ("landuse", "farmyard"): "farmland", ("landuse", "orchard"): "farmland",
    ("landuse", "vineyard"): "farmland", ("landuse", "allotments"): "farmland",
    ("landuse", "plant_nursery"): "farmland", ("landuse", "greenhouse_horticulture"): "farmland",
    ("landuse", "forest"): "forest", ("natural", "wood"): "forest",
    ("landuse", "meadow"): "grass", ("landuse", "grass"): "grass", ("natural", "grassland"): "grass",
    ("natural", "scrub"): "scrub", ("natural", "heath"): "scrub",
    ("leisure", "park"): "grass", ("landuse", "village_green"): "grass", ("landuse", "recreation_ground"): "grass",
    ("landuse", "cemetery"): "cemetery", ("amenity", "grave_yard"): "cemetery",
    ("landuse", "industrial"): "industrial", ("landuse", "commercial"): "industrial",
    ("landuse", "retail"): "industrial", ("landuse", "quarry"): "industrial",
    ("landuse", "construction"): "industrial", ("landuse", "railway"): "industrial",
    ("natural", "sand"): "bare", ("natural", "bare_rock"): "bare", ("natural", "scree"): "bare",
    ("natural", "wetland"): "wetland",
}
WATER_AREA = {("natural", "water"), ("waterway", "riverbank"), ("landuse", "reservoir"), ("landuse", "basin"),
              ("waterway", "dock")}
PLACE_RANK = {"city": 1, "town": 2, "village": 3, "suburb": 4, "hamlet": 4, "quarter": 5, "neighbourhood": 6,
              "isolated_dwelling": 7, "locality": 7, "farm": 7}
# POI kinds in order of importance: water points first
POI_PRIO = {"well": 1, "well_pump": 1, "borehole": 1, "drinking_water": 1, "tap": 1, "spring": 2,
            "health": 3, "school": 4, "market": 5, "mosque": 6, "church": 6, "worship": 6, "townhall": 7}
NAME_KEYS = ("alt_name", "old_name", "loc_name", "official_name", "short_name")


#: The atlas symbol of each kind of water point (water towers and tanks have none).
WATER_SYMBOLS = {"borehole": "borehole", "well with pump": "well_pump", "well": "well", "tap": "tap",
                 "water point": "drinking_water", "drinking water": "drinking_water", "spring": "spring"}


def _state(kind: str, tags) -> str | None:
    """Working / not working / unknown for a water point (its badge on the map), None for other points."""
    if kind not in WATER_SYMBOLS.values():
        return None
    from ..survey.water import water_state

    return water_state(dict(tags))


def poi_kind(tags) -> str | None:
    """The atlas symbol of an OSM object's tags, or None."""
    amenity = tags.get("amenity")
    water = WATER_SYMBOLS.get(water_kind(tags))  # the one classification of water points (credit, exports)
    if water:
        return water
    if amenity in ("school", "kindergarten", "college", "university"):
        return "school"
    if amenity in ("hospital", "clinic", "doctors", "health_post", "dentist") or tags.get("healthcare"):
        return "health"
    if amenity == "marketplace":
        return "market"
    if amenity == "place_of_worship":
        religion = tags.get("religion")
        return {"muslim": "mosque", "christian": "church"}.get(religion, "worship")
    if amenity == "townhall":
        return "townhall"
    return None


def other_names(tags) -> dict[str, str]:
    """Alternative names: alt_name & co. and every name:xx different from name."""
    main = tags.get("name")
    out: dict[str, str] = {}
    for k, v in tags:
        if (k in NAME_KEYS or k.startswith("name:")) and v and v != main:
            for part in v.split(";"):
                part = part.strip()
                if part and part != main and part not in out.values():
                    out[k if k not in out else f"{k}#{len(out)}"] = part
    return out


# -- cache file -----------------------------------------------------------------------------------


@dataclass
class LayerCache:
    path: Path
    data: Path
    sha256: str
    meta: dict
    built: bool  # True when this run built it (False: reused)

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        return conn

    @property
    def data_date(self) -> str | None:
        return self.meta.get("data_date")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def open_cache(data: str | os.PathLike, cache_dir: str | os.PathLike) -> LayerCache:
    """The layer cache of *data* in *cache_dir*, built now if it is not there yet."""
    data = Path(data)
    if not data.is_file():
        raise MapathonError(f"{data}: no such data file")
    sha = file_sha256(data)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"layers-{sha[:20]}-v{CACHE_VERSION}.sqlite"
    built = False
    if not path.is_file():
        with atomic_path(path) as tmp:
            _build(data, tmp)
        built = True
        _prune(cache_dir, keep=KEEP_CACHES)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as e:
        conn.close()
        path.unlink(missing_ok=True)
        raise MapathonError(f"{path}: damaged layer cache ({e}); it was removed, run again") from None
    conn.close()
    return LayerCache(path.resolve(), data, sha, meta, built)


KEEP_CACHES = 3


def _prune(cache_dir: Path, keep: int) -> None:
    """Delete all but the *keep* most recently built layer caches (older merges of the data)."""
    files = sorted(cache_dir.glob("layers-*.sqlite"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        try:
            old.unlink()
        except OSError:
            pass


_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE polys (id INTEGER PRIMARY KEY, osm TEXT, kind TEXT NOT NULL, name TEXT, area REAL, geom BLOB NOT NULL);
CREATE TABLE lines (id INTEGER PRIMARY KEY, osm TEXT, kind TEXT NOT NULL, name TEXT, ref TEXT,
                    seasonal INTEGER NOT NULL DEFAULT 0, z INTEGER NOT NULL DEFAULT 0, geom BLOB NOT NULL);
CREATE TABLE points (id INTEGER PRIMARY KEY, osm TEXT, kind TEXT NOT NULL, name TEXT, names TEXT,
                     prio INTEGER NOT NULL, geom BLOB NOT NULL, state TEXT);
CREATE TABLE places (id INTEGER PRIMARY KEY, osm TEXT, kind TEXT NOT NULL, name TEXT NOT NULL, names TEXT,
                     rank INTEGER NOT NULL, lon REAL, lat REAL, geom BLOB NOT NULL);
"""


def _build(data: Path, dest: Path) -> None:
    from ..osm.readers import positive_ids

    # new objects of a merge snapshot keep negative ids, which libosmium's locations skip
    try:
        ids = positive_ids(data)
        readable = ids.__enter__()
    except RuntimeError as e:
        raise MapathonError(f"{data}: not a readable OSM file ({e})") from None
    try:
        _build_from(data, readable, dest)
    finally:
        ids.__exit__(None, None, None)


def _build_from(data: Path, readable: Path, dest: Path) -> None:
    import osmium
    import shapely

    t0 = time.perf_counter()
    try:
        header = osmium.io.Reader(str(data), osmium.osm.osm_entity_bits.NOTHING).header()
        stamp = header.get("osmosis_replication_timestamp") or header.get("timestamp") or ""
    except RuntimeError as e:
        raise MapathonError(f"{data}: not a readable OSM file ({e})") from None

    conn = sqlite3.connect(dest)
    conn.executescript(_SCHEMA)
    for t in TABLES:
        conn.execute(f"CREATE VIRTUAL TABLE rt_{t} USING rtree(id, minx, maxx, miny, maxy)")
    wkb = osmium.geom.WKBFactory()
    polys, lines, points, places = [], [], [], []
    newest = 0.0
    keys = ("building", "highway", "waterway", "natural", "landuse", "amenity", "man_made", "place",
            "railway", "leisure", "healthcare", "water_well", "water_source")
    fp = (osmium.FileProcessor(str(readable)).with_locations().with_areas()
          .with_filter(osmium.filter.KeyFilter(*keys)))
    try:
        for o in fp:
            tags = o.tags
            try:
                ts = o.timestamp.timestamp()
            except (ValueError, OSError, OverflowError):
                ts = 0.0
            if ts > newest:
                newest = ts
            name = tags.get("name")
            if o.is_area():
                try:
                    g = bytes.fromhex(wkb.create_multipolygon(o))
                except RuntimeError:
                    continue
                osm = ("w" if o.from_way() else "r") + str(o.orig_id())
                kind = None
                b = tags.get("building")
                if b and b != "no":
                    kind = "building"
                elif any((k, tags.get(k)) in WATER_AREA for k in ("natural", "waterway", "landuse")) or (
                        tags.get("water") and tags.get("natural") in (None, "water")):
                    kind = "water"
                else:
                    for k in ("landuse", "natural", "leisure", "amenity"):
                        kind = LANDUSE_KINDS.get((k, tags.get(k)))
                        if kind:
                            break
                if kind:
                    polys.append((osm, kind, name, g))
                pk = poi_kind(tags)
                if pk:
                    points.append((osm, pk, name, other_names(tags), POI_PRIO[pk], g, True, _state(pk, tags)))
                pl = tags.get("place")
                if pl in PLACE_RANK and name and not o.from_way():
                    places.append((osm, pl, name, other_names(tags), g, True))
                continue
            if o.is_way():
                hw, ww, rw = tags.get("highway"), tags.get("waterway"), tags.get("railway")
                kind = ROAD_KINDS.get(hw) if hw else None
                if kind and tags.get("area") == "yes":
                    kind = None
                if not kind and ww:
                    kind = WATERWAY_KINDS.get(ww)
                if not kind and rw in ("rail", "light_rail", "narrow_gauge", "tram"):
                    kind = "rail"
                if not kind:
                    continue
                try:
                    g = bytes.fromhex(wkb.create_linestring(o))
                except RuntimeError:
                    continue
                seasonal = 1 if (tags.get("intermittent") == "yes" or tags.get("seasonal") not in (None, "no")
                                 or ww == "wadi") else 0
                lines.append(("w" + str(o.id), kind, name, tags.get("ref"), seasonal, LINE_Z.get(kind, 0), g))
                continue
            if o.is_node():
                pk = poi_kind(tags)
                pl = tags.get("place")
                if not pk and not (pl in PLACE_RANK and name):
                    continue
                g = bytes.fromhex(wkb.create_point(o))
                if pk:
                    points.append(("n" + str(o.id), pk, name, other_names(tags), POI_PRIO[pk], g, False,
                                   _state(pk, tags)))
                if pl in PLACE_RANK and name:
                    places.append(("n" + str(o.id), pl, name, other_names(tags), g, False))
    except RuntimeError as e:
        conn.close()
        raise MapathonError(f"{data}: cannot read it as OSM data ({e})") from None

    def bounds(blobs):
        geoms = shapely.from_wkb(blobs)
        return geoms, shapely.bounds(geoms)

    # polygons
    if polys:
        geoms, bb = bounds([p[3] for p in polys])
        areas = shapely.area(geoms)
        conn.executemany("INSERT INTO polys (id, osm, kind, name, area, geom) VALUES (?, ?, ?, ?, ?, ?)",
                         ((i + 1, p[0], p[1], p[2], float(areas[i]), p[3]) for i, p in enumerate(polys)))
        conn.executemany("INSERT INTO rt_polys VALUES (?, ?, ?, ?, ?)",
                         ((i + 1, b[0], b[2], b[1], b[3]) for i, b in enumerate(bb.tolist())))
    if lines:
        geoms, bb = bounds([p[6] for p in lines])
        conn.executemany("INSERT INTO lines (id, osm, kind, name, ref, seasonal, z, geom) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         ((i + 1, *p) for i, p in enumerate(lines)))
        conn.executemany("INSERT INTO rt_lines VALUES (?, ?, ?, ?, ?)",
                         ((i + 1, b[0], b[2], b[1], b[3]) for i, b in enumerate(bb.tolist())))
    # points: areas become their representative point; a POI mapped both as node and area keeps the node
    if points:
        geoms = shapely.from_wkb([p[5] for p in points])
        geoms = [shapely.point_on_surface(g) if p[6] else g for g, p in zip(geoms, points)]
        rows = []
        for i, (p, g) in enumerate(zip(points, geoms)):
            rows.append((i + 1, p[0], p[1], p[2], json.dumps(p[3], ensure_ascii=False) if p[3] else None, p[4],
                         shapely.to_wkb(g), g.x, g.y, p[7]))
        conn.executemany("INSERT INTO points (id, osm, kind, name, names, prio, geom, state) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (r[:7] + (r[9],) for r in rows))
        conn.executemany("INSERT INTO rt_points VALUES (?, ?, ?, ?, ?)", ((r[0], r[7], r[7], r[8], r[8]) for r in rows))
    if places:
        rows = []
        for i, p in enumerate(places):
            g = shapely.from_wkb(p[4])
            pt = shapely.point_on_surface(g) if p[5] else g
            rows.append((i + 1, p[0], p[1], p[2], json.dumps(p[3], ensure_ascii=False) if p[3] else None,
                         PLACE_RANK[p[1]], pt.x, pt.y, shapely.to_wkb(pt)))
        conn.executemany("INSERT INTO places (id, osm, kind, name, names, rank, lon, lat, geom) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.executemany("INSERT INTO rt_places VALUES (?, ?, ?, ?, ?)", ((r[0], r[6], r[6], r[7], r[7]) for r in rows))
    if not stamp and newest:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(newest))
    meta = {
        "version": str(CACHE_VERSION),
        "source": data.name,
        "data_date": stamp,
        "polys": str(len(polys)),
        "lines": str(len(lines)),
        "points": str(len(points)),
        "places": str(len(places)),
        "build_seconds": f"{time.perf_counter() - t0:.2f}",
    }
    conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
    conn.execute("CREATE INDEX places_name ON places (name)")
    conn.commit()
    conn.close()
