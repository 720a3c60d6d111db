"""Which web-mercator tiles cover an area, zoom by zoom.

A tile is needed when its interior meets the area (a tile that only shares a border
with it is not). The search is hierarchical: tiles wholly inside the area are kept
with all their descendants without further tests, and only border tiles are split
and tested again at the next zoom, so counting zoom 19 over thousands of km² stays fast.
All tests are vectorised with shapely 2.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from ..errors import MapathonError, UsageMistake
from ..tasks.grid import tile_bounds, tile_range

MAX_TILES = 5_000_000


def _classify(geom, z: int, xs: np.ndarray, ys: np.ndarray):
    cells = shapely.box(*tile_bounds(z, xs, ys))
    inside = shapely.contains(geom, cells)
    meets = shapely.intersects(geom, cells) & ~inside
    if meets.any():
        idx = np.flatnonzero(meets)
        meets[idx] = ~shapely.touches(geom, cells[idx])
    return inside, meets


def _start_zoom(geom, zmin: int) -> int:
    z = zmin
    while z > 0:
        x0, y0, x1, y1 = tile_range(geom.bounds, z)
        if (x1 - x0 + 1) * (y1 - y0 + 1) <= 64:
            break
        z -= 1
    return z


def _walk(geom: BaseGeometry, zooms: list[int]):
    """Yield (z, inside_blocks, border_xy) for each zoom in range(start, max(zooms)+1).

    inside_blocks: list of (zoom_k, xs, ys) tiles found wholly inside at zoom k <= z;
    border_xy: (xs, ys) tiles at z that meet the area without being inside it.
    """
    if geom is None or geom.is_empty:
        raise MapathonError("the area is empty: nothing to cover")
    shapely.prepare(geom)
    zmax = max(zooms)
    z = _start_zoom(geom, min(zooms))
    x0, y0, x1, y1 = tile_range(geom.bounds, z)
    xs, ys = np.meshgrid(np.arange(x0, x1 + 1), np.arange(y0, y1 + 1), indexing="ij")
    xs, ys = xs.ravel(), ys.ravel()
    inside_blocks: list[tuple[int, np.ndarray, np.ndarray]] = []
    while True:
        inside, border = _classify(geom, z, xs, ys)
        if inside.any():
            inside_blocks.append((z, xs[inside], ys[inside]))
        bx, by = xs[border], ys[border]
        yield z, inside_blocks, (bx, by)
        if z >= zmax:
            return
        # children of the border tiles
        xs = np.concatenate([bx * 2, bx * 2 + 1, bx * 2, bx * 2 + 1])
        ys = np.concatenate([by * 2, by * 2, by * 2 + 1, by * 2 + 1])
        z += 1


def count_tiles(geom: BaseGeometry, zooms: list[int]) -> dict[int, int]:
    """Number of tiles needed per zoom (no tile list is built)."""
    want = set(zooms)
    out = {}
    for z, blocks, (bx, _) in _walk(geom, zooms):
        if z in want:
            out[z] = int(len(bx) + sum(len(bxs) * 4 ** (z - k) for k, bxs, _ in blocks))
    return out


def tiles(geom: BaseGeometry, zooms: list[int], max_tiles: int = MAX_TILES) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The tiles needed per zoom, as (xs, ys) arrays (XYZ numbering), sorted by x then y."""
    counts = count_tiles(geom, zooms)
    total = sum(counts.values())
    if total > max_tiles:
        raise MapathonError(f"the area needs {total:,} tiles at zooms {_zooms_text(zooms)}, over the limit of "
                            f"{max_tiles:,}: choose a smaller area (--village/--tasks) or fewer zooms")
    want = set(zooms)
    out = {}
    for z, blocks, (bx, by) in _walk(geom, zooms):
        if z not in want:
            continue
        parts_x, parts_y = [bx], [by]
        for k, kx, ky in blocks:
            d = 2 ** (z - k)
            ox, oy = np.meshgrid(np.arange(d), np.arange(d), indexing="ij")
            parts_x.append((kx[:, None] * d + ox.ravel()[None, :]).ravel())
            parts_y.append((ky[:, None] * d + oy.ravel()[None, :]).ravel())
        ax, ay = np.concatenate(parts_x).astype(np.int64), np.concatenate(parts_y).astype(np.int64)
        order = np.lexsort((ay, ax))
        out[z] = (ax[order], ay[order])
    return out


def parse_zooms(text: str | int, *, lo: int = 0, hi: int = 22) -> list[int]:
    """'16-19' -> [16, 17, 18, 19]; '18' -> [18]; '16,18' -> [16, 18]."""
    s = str(text).strip()
    out: set[int] = set()
    try:
        for part in s.split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-", 1)
                a, b = int(a), int(b)
                if a > b:
                    raise ValueError
                out.update(range(a, b + 1))
            else:
                out.add(int(part))
    except ValueError:
        raise UsageMistake("write a zoom (18), a range (16-19) or a list (16,18)", field="zoom", value=s) from None
    if not out or min(out) < lo or max(out) > hi:
        raise UsageMistake(f"zooms must be between {lo} and {hi}", field="zoom", value=s)
    return sorted(out)


def _zooms_text(zooms: list[int]) -> str:
    zs = sorted(zooms)
    if zs == list(range(zs[0], zs[-1] + 1)):
        return f"{zs[0]}-{zs[-1]}" if len(zs) > 1 else str(zs[0])
    return ",".join(map(str, zs))
