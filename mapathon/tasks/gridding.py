"""Making a project's grid: choose the cells (grid.py) and store them (:func:`save_grid`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import shapely

from .. import aoi as aoi_mod
from .. import geo
from ..errors import MapathonError, UsageMistake
from ..project import Project
from . import grid as g
from .grid import Grid
from .lifecycle import _assign_villages


def make_grid(
    project: Project,
    *,
    zoom: int | None = None,
    size: float | None = None,
    from_file: str | Path | None = None,
    min_overlap: float = g.DEFAULT_MIN_OVERLAP_M2,
    clip: bool = False,
    max_tasks: int = g.DEFAULT_MAX_TASKS,
    force: bool = False,
    actor: str = "organizer",
) -> tuple[int, str]:
    """Build and store the grid. Returns (number of tasks, a description)."""
    if min_overlap < 0:
        raise UsageMistake("must be zero or more square metres", field="min_overlap", value=min_overlap)
    if max_tasks < 1:
        raise UsageMistake("must be at least 1", field="max_tasks", value=max_tasks)
    aoi = project.aoi_geom()
    if zoom is not None:
        cells = g.tile_grid(aoi, zoom, min_overlap_m2=min_overlap, clip=clip, max_tasks=max_tasks)
        desc = {"kind": "tiles", "zoom": zoom, "clip": clip, "min_overlap_m2": min_overlap}
        text = f"web-mercator tiles at zoom {zoom}" + (", clipped" if clip else "")
    elif size is not None:
        cells = g.metric_grid(aoi, size, min_overlap_m2=min_overlap, clip=clip, max_tasks=max_tasks)
        c = aoi.centroid
        zone = geo.utm_zone_name(geo.utm_epsg(c.x, c.y))
        desc = {"kind": "metric", "size_m": size, "utm_zone": zone, "clip": clip, "min_overlap_m2": min_overlap}
        text = f"{size:g} m squares in UTM zone {zone}" + (", clipped" if clip else "")
    else:
        path = Path(from_file)
        if not path.exists():
            raise MapathonError(f"{path}: no such file")
        feats = [(geom, props) for geom, props in aoi_mod.read_features(path)
                 if geom.geom_type in ("Polygon", "MultiPolygon") and not geom.is_empty]
        if not feats:
            raise MapathonError(f"{path}: holds no polygon to use as a task")
        geoms = [geo.repair(geom, str(path))[0] for geom, _ in feats]
        cells = g.grid_from_polygons(geoms, [p for _, p in feats], max_tasks=max_tasks, aoi=aoi, label=str(path))
        tiles = int(np.sum(cells.z >= 0))
        desc = {"kind": "file", "file": path.name, "tiles": tiles}
        text = f"{len(cells)} polygons from {path.name}, {tiles} of them tiles"
    n = save_grid(project, cells, actor=actor, description=desc, force=force)
    return n, text


def has_work(project: Project) -> bool:
    """True when a task of the current grid has a recorded change (claims, splits, ...)."""
    return project.conn.execute(
        """SELECT 1 FROM events WHERE task IS NOT NULL
            AND seq > COALESCE((SELECT MAX(seq) FROM events WHERE action = 'grid.create'), 0) LIMIT 1"""
    ).fetchone() is not None


def save_grid(project: Project, grid: Grid, *, actor: str, description: dict, force: bool = False) -> int:
    """Replace the project's tasks by *grid*, assigning villages. Returns the number of tasks."""
    with project.transaction():
        if has_work(project) and not force:
            raise MapathonError(
                "the project already has recorded work on its tasks; re-gridding would orphan it "
                "(use --force to replace the grid anyway; the history is kept)"
            )
        conn = project.conn
        old = conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
        conn.execute("DELETE FROM task_areas")
        conn.execute("UPDATE tasks SET parent_id = NULL")
        conn.execute("DELETE FROM tasks")
        n = len(grid)
        ids = np.arange(1, n + 1)
        wkb, bounds = grid.wkb()
        tile = grid.z >= 0
        if tile.all():  # a tile grid: no NULLs
            zs, xs, ys = grid.z.tolist(), grid.x.tolist(), grid.y.tolist()
        else:
            zs = [int(v) if t else None for v, t in zip(grid.z, tile)]
            xs = [int(v) if t else None for v, t in zip(grid.x, tile)]
            ys = [int(v) if t else None for v, t in zip(grid.y, tile)]
        conn.executemany(
            "INSERT INTO tasks (id, key, z, x, y, area_m2, minx, miny, maxx, maxy, geom)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            zip(ids.tolist(), grid.keys.tolist(), zs, xs, ys, grid.area_m2.tolist(), bounds[:, 0].tolist(),
                bounds[:, 1].tolist(), bounds[:, 2].tolist(), bounds[:, 3].tolist(), wkb),
        )
        _assign_villages(project, ids, lambda: grid.geoms)  # shapes made only if the project has villages
        project.record(actor=actor, action="grid.create", data={**description, "tasks": n, "replaced": old})
    return n
