"""Projections, areas and geometry repair.

All geometry in the project is stored in WGS84 longitude/latitude
(EPSG:4326, x = lon). Distances and areas are always computed in a local
metric CRS, never in degrees.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry

WGS84 = CRS.from_epsg(4326)


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 UTM zone holding (lon, lat).

    >>> utm_epsg(-9.0162, 14.4932)
    32629
    """
    zone = int((lon + 180) // 6) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


def utm_zone_name(epsg: int) -> str:
    """'29N' for EPSG:32629."""
    return f"{epsg % 100}{'N' if epsg < 32700 else 'S'}"


@lru_cache(maxsize=64)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True)


def transformer(src, dst) -> Transformer:
    """A cached always-xy :class:`pyproj.Transformer` between two CRS definitions."""
    return _transformer(CRS.from_user_input(src).to_wkt(), CRS.from_user_input(dst).to_wkt())


def equal_area_crs(lon: float, lat: float) -> CRS:
    """A Lambert azimuthal equal-area CRS centred on (lon, lat): exact areas in m²."""
    return CRS.from_proj4(f"+proj=laea +lat_0={lat:.6f} +lon_0={lon:.6f} +datum=WGS84 +units=m +no_defs")


def equidistant_crs(lon: float, lat: float) -> CRS:
    """An azimuthal equidistant CRS centred on (lon, lat): true distances from the centre."""
    return CRS.from_proj4(f"+proj=aeqd +lat_0={lat:.6f} +lon_0={lon:.6f} +datum=WGS84 +units=m +no_defs")


def reproject(geoms, src, dst):
    """Reproject a geometry or an array of geometries (vectorised over coordinates)."""
    if CRS.from_user_input(src) == CRS.from_user_input(dst):
        return geoms
    tr = transformer(src, dst)

    def _fn(coords: np.ndarray) -> np.ndarray:
        x, y = tr.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, _fn)


def areas_m2(geoms, centre: tuple[float, float] | None = None) -> np.ndarray:
    """Areas in square metres of WGS84 geometries (equal-area projection).

    *centre* (lon, lat) picks the projection centre; by default the centre
    of the geometries' total bounds. Accurate to well under 0.1 % within a
    few hundred kilometres of the centre.
    """
    arr = np.atleast_1d(np.asarray(geoms, dtype=object))
    if arr.size == 0:
        return np.zeros(0)
    if centre is None:
        minx, miny, maxx, maxy = shapely.total_bounds(arr)
        centre = ((minx + maxx) / 2, (miny + maxy) / 2)
    projected = reproject(arr, WGS84, equal_area_crs(*centre))
    return shapely.area(projected)


def area_m2(geom: BaseGeometry) -> float:
    """Area in square metres of one WGS84 geometry."""
    return float(areas_m2([geom])[0])


def buffer_point_m(lon: float, lat: float, radius_m: float, quad_segs: int = 16) -> BaseGeometry:
    """A circle of *radius_m* metres around (lon, lat), built in a local equidistant CRS."""
    local = equidistant_crs(lon, lat)
    circle = shapely.Point(0, 0).buffer(radius_m, quad_segs=quad_segs)
    return reproject(circle, local, WGS84)


def polygonal_part(geom: BaseGeometry) -> BaseGeometry:
    """Keep only the polygons of a geometry (e.g. after make_valid)."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return shapely.Polygon()
    return shapely.union_all(parts)


def repair(geom: BaseGeometry, label: str) -> tuple[BaseGeometry, str | None]:
    """Return a valid polygonal version of *geom* and a warning if it had to be repaired."""
    if geom.is_valid:
        return polygonal_part(geom), None
    reason = shapely.is_valid_reason(geom)
    fixed = polygonal_part(shapely.make_valid(geom))
    return fixed, f"{label}: invalid geometry repaired ({reason})"


def lonlat_bounds_ok(bounds) -> bool:
    """True when bounds look like WGS84 degrees."""
    minx, miny, maxx, maxy = bounds
    return -180.0001 <= minx <= maxx <= 180.0001 and -90.0001 <= miny <= maxy <= 90.0001


#: Web-mercator map tiles (and so imagery, task squares and JOSM's backgrounds) stop at this latitude.
MERCATOR_MAX_LAT = 85.0511


def coordinates_finite(geoms) -> bool:
    """False when any coordinate of the geometries is NaN or infinite (GEOS cannot work with them)."""
    arr = np.atleast_1d(np.asarray(geoms, dtype=object))
    return bool(np.isfinite(shapely.get_coordinates(arr)).all()) if arr.size else True


def extent_problem(bounds) -> str | None:
    """What makes WGS84 *bounds* unusable for a mapathon area, or None.

    More than 180° of longitude is not a region (most often a polygon crossing the 180° meridian,
    drawn the long way round the world); beyond ±85.05° there are no map tiles.
    """
    minx, miny, maxx, maxy = bounds
    if maxx - minx > 180:
        return (f"it spans {maxx - minx:.0f}° of longitude (from {minx:g} to {maxx:g}): more than half the world; "
                "if it crosses the 180° meridian, split it there into two polygons")
    if max(abs(miny), abs(maxy)) > MERCATOR_MAX_LAT:
        lat = miny if abs(miny) > abs(maxy) else maxy
        return f"it reaches latitude {lat:g}°, beyond {MERCATOR_MAX_LAT}° where map tiles and imagery stop"
    return None
