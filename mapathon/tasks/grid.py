"""Task grids: covering an area of interest with squares of imagery.

The default grid is the web-mercator tile grid, as in HOT's Tasking Manager:
at zoom *z* a task is the tile z/x/y (XYZ numbering, as mercantile and
slippy maps use; Tasking Manager numbers y from the south, ``2**z - 1 - y``).
All work is vectorised with shapely 2: no per-cell Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import mercantile
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from .. import geo
from ..errors import MapathonError

DEFAULT_MIN_OVERLAP_M2 = 1.0
DEFAULT_MAX_TASKS = 300_000
MAX_ZOOM = 22


@dataclass
class Grid:
    """Cells of a grid, as parallel arrays."""

    keys: np.ndarray  # str: stable address of each cell
    z: np.ndarray  # int, -1 where the cell is not a tile
    x: np.ndarray
    y: np.ndarray
    geoms: np.ndarray  # shapely polygons, WGS84
    area_m2: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)


def tile_bounds(z: int, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, ...]:
    """(west, south, east, north) arrays of XYZ tiles: mercantile.bounds, vectorised."""
    n = 2.0**z
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    west = xs / n * 360.0 - 180.0
    east = (xs + 1) / n * 360.0 - 180.0
    north = np.degrees(np.arctan(np.sinh(np.pi * (1 - 2 * ys / n))))
    south = np.degrees(np.arctan(np.sinh(np.pi * (1 - 2 * (ys + 1) / n))))
    return west, south, east, north


def tile_range(bounds, zoom: int) -> tuple[int, int, int, int]:
    """(xmin, ymin, xmax, ymax) inclusive tile indices covering WGS84 *bounds*."""
    w, s, e, n = bounds
    ul = mercantile.tile(w, n, zoom)
    lr = mercantile.tile(e, s, zoom)
    top = 2**zoom - 1
    return max(ul.x, 0), max(ul.y, 0), min(lr.x, top), min(lr.y, top)


def _select(aoi: BaseGeometry, cells: np.ndarray, min_overlap_m2: float, clip: bool):
    """Indices of cells overlapping *aoi* by more than *min_overlap_m2*, their geometries and areas."""
    shapely.prepare(aoi)
    inside = shapely.contains_properly(aoi, cells)
    touching = shapely.intersects(aoi, cells)
    edge = np.flatnonzero(touching & ~inside)
    minx, miny, maxx, maxy = aoi.bounds
    centre = ((minx + maxx) / 2, (miny + maxy) / 2)
    pieces = shapely.intersection(cells[edge], aoi)
    piece_area = geo.areas_m2(pieces, centre) if len(edge) else np.zeros(0)
    keep_edge = piece_area > min_overlap_m2
    idx = np.sort(np.concatenate([np.flatnonzero(inside), edge[keep_edge]]))
    geoms = cells[idx].copy()
    areas = geo.areas_m2(geoms, centre) if len(idx) else np.zeros(0)
    if clip and keep_edge.any():
        pos = np.searchsorted(idx, edge[keep_edge])
        geoms[pos] = _polygonal(pieces[keep_edge])
        areas[pos] = piece_area[keep_edge]
    # a cell inside the AOI overlaps it by its whole area, which must exceed min_overlap too
    big = areas > min_overlap_m2
    if not big.all():
        idx, geoms, areas = idx[big], geoms[big], areas[big]
    return idx, geoms, areas


def _polygonal(pieces: np.ndarray) -> np.ndarray:
    """Valid polygons only: an intersection can hold lines where the AOI touches a cell's side from outside."""
    pieces = shapely.make_valid(pieces)
    mixed = shapely.get_type_id(pieces) == 7  # GeometryCollection
    if mixed.any():
        pieces = pieces.copy()
        pieces[mixed] = [geo.polygonal_part(p) for p in pieces[mixed]]
    return pieces


def _check_size(count: int, max_tasks: int, what: str) -> None:
    if count > max_tasks * 4 + 1000:
        raise MapathonError(
            f"{what} would need to test {count:,} cells, far over --max-tasks {max_tasks:,}: "
            "check the zoom or size (or raise --max-tasks)"
        )


def tile_grid(
    aoi: BaseGeometry,
    zoom: int,
    *,
    min_overlap_m2: float = DEFAULT_MIN_OVERLAP_M2,
    clip: bool = False,
    max_tasks: int = DEFAULT_MAX_TASKS,
) -> Grid:
    """The web-mercator tiles at *zoom* whose overlap with *aoi* exceeds *min_overlap_m2*."""
    if not 1 <= zoom <= MAX_ZOOM:
        raise MapathonError(f"--zoom {zoom}: must be between 1 and {MAX_ZOOM}")
    x0, y0, x1, y1 = tile_range(aoi.bounds, zoom)
    _check_size((x1 - x0 + 1) * (y1 - y0 + 1), max_tasks, f"zoom {zoom}")
    xs, ys = np.meshgrid(np.arange(x0, x1 + 1), np.arange(y0, y1 + 1), indexing="ij")
    xs, ys = xs.ravel(), ys.ravel()
    cells = shapely.box(*tile_bounds(zoom, xs, ys))
    idx, geoms, areas = _select(aoi, cells, min_overlap_m2, clip)
    _check_count(len(idx), max_tasks, f"zoom {zoom}")
    xs, ys = xs[idx], ys[idx]
    keys = np.char.add(np.char.add(f"{zoom}/", xs.astype(str)), np.char.add("/", ys.astype(str)))
    return Grid(keys.astype(object), np.full(len(idx), zoom), xs, ys, geoms, areas)


def metric_grid(
    aoi: BaseGeometry,
    size_m: float,
    *,
    min_overlap_m2: float = DEFAULT_MIN_OVERLAP_M2,
    clip: bool = False,
    max_tasks: int = DEFAULT_MAX_TASKS,
) -> Grid:
    """Squares of *size_m* metres aligned on the local UTM zone's coordinates."""
    if not size_m >= 10:
        raise MapathonError(f"--size {size_m}: squares must be at least 10 metres")
    c = aoi.centroid
    epsg = geo.utm_epsg(c.x, c.y)
    local = geo.reproject(aoi, geo.WGS84, epsg)
    minx, miny, maxx, maxy = local.bounds
    i0, j0 = int(np.floor(minx / size_m)), int(np.floor(miny / size_m))
    i1, j1 = int(np.ceil(maxx / size_m)), int(np.ceil(maxy / size_m))
    _check_size((i1 - i0) * (j1 - j0), max_tasks, f"--size {size_m:g}")
    ii, jj = np.meshgrid(np.arange(i0, i1), np.arange(j0, j1), indexing="ij")
    ii, jj = ii.ravel(), jj.ravel()
    squares = shapely.box(ii * size_m, jj * size_m, (ii + 1) * size_m, (jj + 1) * size_m)
    cells = geo.reproject(shapely.segmentize(squares, size_m / 4), epsg, geo.WGS84)
    idx, geoms, areas = _select(aoi, cells, min_overlap_m2, clip)
    _check_count(len(idx), max_tasks, f"--size {size_m:g}")
    prefix = f"utm{geo.utm_zone_name(epsg)}/{size_m:g}/"
    keys = np.char.add(np.char.add(prefix, ii[idx].astype(str)), np.char.add("/", jj[idx].astype(str)))
    n = len(idx)
    return Grid(keys.astype(object), np.full(n, -1), np.full(n, -1), np.full(n, -1), geoms, areas)


def _check_count(n: int, max_tasks: int, what: str) -> None:
    if n > max_tasks:
        raise MapathonError(f"{what} gives {n:,} tasks, over --max-tasks {max_tasks:,}: check the zoom or size")
    if n == 0:
        raise MapathonError(f"{what} gives no task: the area of interest is smaller than --min-overlap")


def grid_from_polygons(geoms: list[BaseGeometry], props: list[dict], *, max_tasks: int = DEFAULT_MAX_TASKS,
                       aoi: BaseGeometry | None = None, label: str = "the file") -> Grid:
    """Tasks from given polygons (e.g. a Tasking Manager task-grid GeoJSON).

    A polygon that is exactly a web-mercator tile gets its z/x/y address,
    whether the file numbers y like XYZ or like Tasking Manager (from the south).
    Refused (MapathonError naming *label* and the polygon): the same polygon twice, a polygon
    wider than half the world or beyond the tiles' latitudes, and, given the project's *aoi*, a
    polygon outside it or bigger than the whole area (a world-sized task).
    """
    n = len(geoms)
    _check_count(n, max_tasks, label)
    arr = np.array(geoms, dtype=object)
    for i, g in enumerate(arr):
        problem = geo.extent_problem(g.bounds) if not g.is_empty else None
        if problem:
            raise MapathonError(f"{label}: polygon {i + 1} is not a usable task: {problem}")
    keys = np.empty(n, dtype=object)
    z = np.full(n, -1)
    x = np.full(n, -1)
    y = np.full(n, -1)
    for i, (g, p) in enumerate(zip(arr, props)):
        tile = _as_tile(g, p)
        if tile is not None:
            z[i], x[i], y[i] = tile.z, tile.x, tile.y
            keys[i] = f"{tile.z}/{tile.x}/{tile.y}"
        else:
            keys[i] = f"poly/{i + 1}"
    if len(set(keys)) != n:
        raise MapathonError(f"{label}: the file holds the same tile twice")
    first: dict[bytes, int] = {}
    for i, wkb in enumerate(shapely.to_wkb(shapely.normalize(arr))):
        j = first.setdefault(wkb, i)
        if j != i:
            raise MapathonError(f"{label}: polygons {j + 1} and {i + 1} are the same: each task must be given once")
    areas = geo.areas_m2(arr)
    if aoi is not None and n:
        shapely.prepare(aoi)
        outside = np.flatnonzero(~shapely.intersects(aoi, arr) | shapely.touches(aoi, arr))
        if len(outside):
            raise MapathonError(f"{label}: {len(outside):,} of its {n:,} polygons lie outside the project's area of "
                                f"interest (polygon {outside[0] + 1} first): is it the grid of another project?")
        whole = geo.area_m2(aoi)
        big = np.flatnonzero(areas > 2 * whole + 1e6)
        if len(big):
            i = big[0]
            raise MapathonError(f"{label}: polygon {i + 1} covers {areas[i] / 1e6:,.0f} km², more than the whole area "
                                f"of interest ({whole / 1e6:,.0f} km²): a task is a small part of it")
    return Grid(keys, z, x, y, arr, areas)


def _as_tile(g: BaseGeometry, props: dict) -> mercantile.Tile | None:
    # TM's grid files say "zoom"; its "download tasks" GeoJSON says "taskZoom"
    zoom = next((props[k] for k in ("zoom", "z", "taskZoom") if props.get(k) is not None), None)
    if zoom is None:
        return None
    try:
        zoom = int(zoom)
    except (TypeError, ValueError, OverflowError):
        return None
    if not 0 <= zoom <= MAX_ZOOM:
        return None
    c = g.representative_point()
    t = mercantile.tile(c.x, c.y, zoom)
    w, s, e, n = mercantile.bounds(t)
    tol = (e - w) * 1e-6
    gb = g.bounds
    if all(abs(a - b) <= tol for a, b in zip(gb, (w, s, e, n))) and abs(g.area - (e - w) * (n - s)) <= (e - w) * (n - s) * 1e-6:
        return t
    return None


def split_cells(key: str, z: int | None, x: int | None, y: int | None, geom: BaseGeometry):
    """The four children of a task: tile children at zoom+1, else quadrants of its bounds.

    Returns (keys, z, x, y, geoms) lists, children clipped to the parent's geometry
    (so a clipped border task splits into clipped children); empty children are dropped.
    """
    if z is not None and z >= 0:
        if z >= MAX_ZOOM:
            raise MapathonError(f"task {key}: already at zoom {z}, cannot split further")
        kids = mercantile.children(mercantile.Tile(x, y, z))
        boxes = [shapely.box(*mercantile.bounds(t)) for t in kids]
        keys = [f"{t.z}/{t.x}/{t.y}" for t in kids]
        zs, xs, ys = [t.z for t in kids], [t.x for t in kids], [t.y for t in kids]
    else:
        minx, miny, maxx, maxy = geom.bounds
        mx, my = (minx + maxx) / 2, (miny + maxy) / 2
        boxes = [
            shapely.box(minx, my, mx, maxy),
            shapely.box(mx, my, maxx, maxy),
            shapely.box(minx, miny, mx, my),
            shapely.box(mx, miny, maxx, my),
        ]
        keys = [f"{key}.{q}" for q in range(4)]
        zs = xs = ys = [None] * 4
    pieces = _polygonal(shapely.intersection(np.array(boxes, dtype=object), geom))
    keep = ~shapely.is_empty(pieces) & (shapely.area(pieces) > 0)
    # a child equal to its full box keeps the exact box (tile children stay exact tiles)
    exact = shapely.equals(pieces, np.array(boxes, dtype=object))
    out = [np.array(boxes, dtype=object)[i] if exact[i] else pieces[i] for i in range(4)]
    sel = [i for i in range(4) if keep[i]]
    return [keys[i] for i in sel], [zs[i] for i in sel], [xs[i] for i in sel], [ys[i] for i in sel], [out[i] for i in sel]
