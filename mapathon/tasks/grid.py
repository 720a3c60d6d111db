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
from ..errors import MapathonError, UsageMistake

DEFAULT_MIN_OVERLAP_M2 = 1.0
DEFAULT_MAX_TASKS = 300_000
MAX_ZOOM = 22


@dataclass
class Grid:
    """Cells of a grid, as parallel arrays.

    A tile grid makes the shapes of its whole tiles only when asked (:attr:`geoms`): storing it needs
    their bounds alone (WKB of a box is written with numpy), and a country's grid has 10⁵–10⁶ tiles.
    """

    keys: np.ndarray  # str: stable address of each cell
    z: np.ndarray  # int, -1 where the cell is not a tile
    x: np.ndarray
    y: np.ndarray
    _geoms: np.ndarray  # shapely polygons, WGS84; None where a box of *bounds* is made when asked
    area_m2: np.ndarray
    #: True where the geometry is exactly the box shapely.box makes of its bounds (whole tiles)
    boxes: np.ndarray | None = None
    #: (n, 4) bounds of the cells, when known without the shapes
    bounds: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def geoms(self) -> np.ndarray:
        """The cells' shapely polygons (WGS84)."""
        missing = np.flatnonzero(np.equal(self._geoms, None))
        if len(missing):
            self._geoms[missing] = shapely.box(*self.bounds[missing].T)
        return self._geoms

    def wkb(self) -> tuple[list[bytes], np.ndarray]:
        """(WKB of every geometry, as shapely.to_wkb writes it; bounds (n, 4)): whole tiles without GEOS."""
        bounds = self.bounds if self.bounds is not None else shapely.bounds(self.geoms)
        if self.boxes is None or not self.boxes.any():
            return shapely.to_wkb(self.geoms).tolist(), bounds
        out = box_wkb(bounds)
        other = np.flatnonzero(~self.boxes)
        if len(other):
            for k, w in zip(other.tolist(), shapely.to_wkb(self.geoms[other]).tolist()):
                out[k] = w
        return out, bounds


#: a polygon's WKB as shapely (GEOS) writes it, little-endian: byte order, type 3, 1 ring, 5 points
_WKB_BOX = np.dtype([("order", "u1"), ("type", "<u4"), ("rings", "<u4"), ("points", "<u4"), ("xy", "<f8", (10,))])


def box_wkb(bounds: np.ndarray) -> list[bytes]:
    """WKB of shapely.box(minx, miny, maxx, maxy) for each row of *bounds*, byte for byte, made with numpy."""
    rec = np.empty(len(bounds), dtype=_WKB_BOX)
    rec["order"], rec["type"], rec["rings"], rec["points"] = 1, 3, 1, 5
    minx, miny, maxx, maxy = bounds.T
    xy = rec["xy"]
    for k, v in enumerate((maxx, miny, maxx, maxy, minx, maxy, minx, miny, maxx, miny)):
        xy[:, k] = v  # counter-clockwise from the south-east corner, as shapely.box
    raw = rec.tobytes()
    size = _WKB_BOX.itemsize
    return [raw[k:k + size] for k in range(0, len(raw), size)]


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


def _lattice(zoom: int, x0: int, y0: int, x1: int, y1: int) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes of the tile columns' sides x0..x1+1 and latitudes of the rows' sides y0..y1+1
    (the same numbers as :func:`tile_bounds`)."""
    n = 2.0**zoom
    lons = np.arange(x0, x1 + 2, dtype=np.float64) / n * 360.0 - 180.0
    lats = np.degrees(np.arctan(np.sinh(np.pi * (1 - 2 * np.arange(y0, y1 + 2, dtype=np.float64) / n))))
    return lons, lats


def _near_boundary(aoi: BaseGeometry, zoom: int, x0: int, y0: int, lons: np.ndarray, lats: np.ndarray) -> np.ndarray:
    """(columns, rows) mask of the tiles the AOI's boundary may touch: a superset, never missing one.

    The boundary is cut into pieces shorter than half a tile; a piece lies within half a tile of its
    first point, so the tiles around each point's tile (3 by 3) hold every tile the boundary touches,
    even if rounding puts a point on a side in the neighbouring tile.
    """
    nx, ny = len(lons) - 1, len(lats) - 1
    n = 2.0**zoom
    step = min(360.0 / n, float(np.min(np.abs(np.diff(lats))))) / 2
    coords = shapely.get_coordinates(shapely.segmentize(aoi.boundary, step))
    col = np.floor((coords[:, 0] + 180.0) / 360.0 * n) - x0
    s = np.sin(np.radians(np.clip(coords[:, 1], -85.06, 85.06)))
    row = np.floor((0.5 - np.log((1 + s) / (1 - s)) / (4 * np.pi)) * n) - y0
    mask = np.zeros((nx + 2, ny + 2), dtype=bool)
    mask[np.clip(col, -1, nx).astype(np.int64) + 1, np.clip(row, -1, ny).astype(np.int64) + 1] = True
    wide = mask.copy()
    wide[1:, :] |= mask[:-1, :]
    wide[:-1, :] |= mask[1:, :]
    out = wide.copy()
    out[:, 1:] |= wide[:, :-1]
    out[:, :-1] |= wide[:, 1:]
    return out[1:-1, 1:-1]


def _box_areas_m2(lons: np.ndarray, lats: np.ndarray, i: np.ndarray, j: np.ndarray, centre) -> np.ndarray:
    """Areas of the whole tiles (column i, row j of the lattice), as :func:`geo.areas_m2` measures them
    (the four corners in the equal-area projection), without making geometries."""
    tr = geo.transformer(geo.WGS84, geo.equal_area_crs(*centre))
    gx, gy = np.meshgrid(lons, lats, indexing="ij")
    px, py = tr.transform(gx, gy)
    px, py = np.asarray(px), np.asarray(py)
    # corners counter-clockwise as shapely.box makes them: (e, s), (e, n), (w, n), (w, s)
    xs = [px[i + 1, j + 1], px[i + 1, j], px[i, j], px[i, j + 1]]
    ys = [py[i + 1, j + 1], py[i + 1, j], py[i, j], py[i, j + 1]]
    twice = sum(xs[k] * ys[(k + 1) % 4] - xs[(k + 1) % 4] * ys[k] for k in range(4))
    return np.abs(twice) / 2


def tile_grid(
    aoi: BaseGeometry,
    zoom: int,
    *,
    min_overlap_m2: float = DEFAULT_MIN_OVERLAP_M2,
    clip: bool = False,
    max_tasks: int = DEFAULT_MAX_TASKS,
) -> Grid:
    """The web-mercator tiles at *zoom* whose overlap with *aoi* exceeds *min_overlap_m2*.

    Only the tiles near the AOI's boundary are made into geometries to be tested (:func:`_select`);
    a tile away from it is inside the AOI when its centre is.
    """
    if not 1 <= zoom <= MAX_ZOOM:
        raise UsageMistake(f"must be between 1 and {MAX_ZOOM}", field="zoom", value=zoom)
    x0, y0, x1, y1 = tile_range(aoi.bounds, zoom)
    _check_size((x1 - x0 + 1) * (y1 - y0 + 1), max_tasks, f"zoom {zoom}")
    lons, lats = _lattice(zoom, x0, y0, x1, y1)
    near = _near_boundary(aoi, zoom, x0, y0, lons, lats).ravel()
    ii, jj = np.meshgrid(np.arange(x1 - x0 + 1), np.arange(y1 - y0 + 1), indexing="ij")
    ii, jj = ii.ravel(), jj.ravel()
    shapely.prepare(aoi)
    far = np.flatnonzero(~near)
    fi, fj = ii[far], jj[far]
    inner = far[shapely.contains_xy(aoi, (lons[fi] + lons[fi + 1]) / 2, (lats[fj] + lats[fj + 1]) / 2)]
    edge = np.flatnonzero(near)
    ei, ej = ii[edge], jj[edge]
    cells = shapely.box(lons[ei], lats[ej + 1], lons[ei + 1], lats[ej])
    sel, egeoms, eareas = _select(aoi, cells, min_overlap_m2, clip)
    eboxes = np.ones(len(sel), dtype=bool) if not clip else shapely.equals_exact(egeoms, cells[sel], 0.0)
    minx, miny, maxx, maxy = aoi.bounds
    ni, nj = ii[inner], jj[inner]
    iareas = _box_areas_m2(lons, lats, ni, nj, ((minx + maxx) / 2, (miny + maxy) / 2))
    big = iareas > min_overlap_m2  # a whole tile must exceed min_overlap too
    inner, ni, nj, iareas = inner[big], ni[big], nj[big], iareas[big]
    idx = np.concatenate([inner, edge[sel]])
    _check_count(len(idx), max_tasks, f"zoom {zoom}")
    order = np.argsort(idx, kind="stable")
    # the whole tiles (inner ones, and edge ones unless clipped) stay boxes of their bounds until asked for
    geoms = np.concatenate([np.full(len(inner), None, dtype=object),
                            np.where(eboxes, None, np.asarray(egeoms, dtype=object))])[order]
    areas = np.concatenate([iareas, eareas])[order]
    boxes = np.concatenate([np.ones(len(inner), dtype=bool), eboxes])[order]
    idx = idx[order]
    ci, cj = ii[idx], jj[idx]
    bounds = np.column_stack([lons[ci], lats[cj + 1], lons[ci + 1], lats[cj]])
    if not boxes.all():
        bounds[~boxes] = shapely.bounds(geoms[~boxes])
    xs, ys = ci + x0, cj + y0
    keys = np.array([f"{zoom}/{x}/{y}" for x, y in zip(xs.tolist(), ys.tolist())], dtype=object)
    return Grid(keys, np.full(len(idx), zoom), xs, ys, geoms, areas, boxes, bounds)


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
        raise UsageMistake("squares must be at least 10 metres", field="size", value=size_m)
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
