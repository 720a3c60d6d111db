"""Export the task grid: GeoJSON, GeoPackage, Shapefile, GPX, OSM XML (JOSM) and CSV.

Vector formats go through fiona (GDAL); GPX through gpxpy (tracks and
waypoints in one file, which GDAL's GPX driver cannot append); OSM XML
through :class:`mapathon.osm.josm.JosmXmlWriter`; CSV (geometry as WKT)
through the exports' one CSV writer (:func:`.formats.write_csv`, with its
French Excel dialect). Every file is written under a temporary name and
renamed when complete.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import shapely
from shapely.geometry import mapping

from ..errors import MapathonError
from ..fsutil import atomic_path
from ..osm.josm import JosmXmlWriter
from ..project import Project
from ..tasks.lifecycle import SPLIT, Task, list_tasks
from .formats import check_csv_dialect, resolve_format, write_csv

FORMATS = ("geojson", "gpkg", "shp", "gpx", "osm", "csv")
FIONA_DRIVERS = {"geojson": "GeoJSON", "gpkg": "GPKG", "shp": "ESRI Shapefile"}
# Shapefile field names are limited to 10 characters.
SHP_NAMES = {"validated_by": "valid_by", "locked_by": "locked_by", "area_m2": "area_m2"}


def _record(t: Task) -> dict:
    return {
        "id": t.id,
        "key": t.key,
        "state": t.state,
        "tile": t.tile or "",
        "village": "; ".join(t.villages),
        "mapped_by": t.mapped_by or "",
        "validated_by": t.validated_by or "",
        "locked_by": t.locked_by or "",
        "area_m2": round(t.area_m2, 1),
    }


SCHEMA_PROPS = {
    "id": "int",
    "key": "str",
    "state": "str",
    "tile": "str",
    "village": "str",
    "mapped_by": "str",
    "validated_by": "str",
    "locked_by": "str",
    "area_m2": "float",
}


def export_tasks(project: Project, dest: str | Path, fmt: str | None = None, *, include_split: bool = False,
                 csv_dialect: str | None = None) -> int:
    """Write the project's tasks to *dest*. Returns the number of tasks written."""
    fmt = resolve_format(dest, fmt, FORMATS)
    dialect = check_csv_dialect(csv_dialect, fmt)
    tasks = [t for t in list_tasks(project) if include_split or t.state != SPLIT]
    if not tasks:
        raise MapathonError("the project has no tasks yet; run 'mapathon grid' first")
    dest = Path(dest)
    if fmt == "gpx":
        _write_gpx(project, tasks, dest)
    elif fmt == "osm":
        _write_osm(project, tasks, dest)
    elif fmt == "shp":
        _write_shapefile(project, tasks, dest)
    elif fmt == "csv":
        _write_csv(tasks, dest, dialect)
    else:
        with atomic_path(dest) as tmp:
            _write_fiona(project, tasks, tmp, fmt)
    return len(tasks)


def _write_fiona(project: Project, tasks: list[Task], path: Path, fmt: str, names: dict | None = None) -> None:
    import fiona

    names = names or {}
    schema = {"geometry": "MultiPolygon", "properties": {names.get(k, k): v for k, v in SCHEMA_PROPS.items()}}
    kw = {"layer": "tasks"} if fmt in ("gpkg", "geojson") else {}  # else the temporary file name shows as layer name
    with fiona.open(path, "w", driver=FIONA_DRIVERS[fmt], schema=schema, crs="EPSG:4326", **kw) as dst:
        dst.writerecords(
            {
                "geometry": mapping(_multi(t.geom)),
                "properties": {names.get(k, k): v for k, v in _record(t).items()},
            }
            for t in tasks
        )
    if fmt == "gpkg":
        villages = project.villages()
        if villages:
            vschema = {"geometry": "MultiPolygon", "properties": {"name": "str", "kind": "str"}}
            # mode "w" with a new layer name adds a layer to the GeoPackage ("a" appends to an existing layer)
            with fiona.open(path, "w", driver="GPKG", layer="villages", schema=vschema, crs="EPSG:4326") as dst:
                for v in villages:
                    g = shapely.from_wkb(v["geom"])
                    g = shapely.multipolygons([g]) if g.geom_type == "Polygon" else g
                    dst.write({"geometry": mapping(g), "properties": {"name": v["name"], "kind": v["kind"]}})


def _multi(g):
    return shapely.multipolygons([g]) if g.geom_type == "Polygon" else g


def _write_csv(tasks: list[Task], dest: Path, dialect: str) -> None:
    """One row per task, its outline as WKT in the first column (GDAL and QGIS read it as the geometry)."""
    write_csv(dest, ["WKT", *SCHEMA_PROPS],
              ([shapely.to_wkt(_multi(t.geom), rounding_precision=-1), *_record(t).values()] for t in tasks), dialect)


def _write_shapefile(project: Project, tasks: list[Task], dest: Path) -> None:
    if dest.suffix.lower() != ".shp":
        raise MapathonError(f"{dest}: a shapefile's name must end in .shp")
    parent = dest.parent if str(dest.parent) else Path(".")
    if not parent.is_dir():
        raise MapathonError(f"{dest}: folder {parent} does not exist")
    with tempfile.TemporaryDirectory(dir=parent, prefix=".shp-") as tmpdir:
        tmp = Path(tmpdir) / dest.name
        _write_fiona(project, tasks, tmp, "shp", SHP_NAMES)
        for part in sorted(Path(tmpdir).iterdir()):
            os.replace(part, parent / part.name)


def _write_gpx(project: Project, tasks: list[Task], dest: Path) -> None:
    import gpxpy.gpx

    doc = gpxpy.gpx.GPX()
    doc.creator = "mapathon"
    doc.name = project.name
    for v in project.villages():
        if v["lon"] is not None:
            lon, lat = v["lon"], v["lat"]
        else:
            p = shapely.from_wkb(v["geom"]).representative_point()
            lon, lat = p.x, p.y
        doc.waypoints.append(gpxpy.gpx.GPXWaypoint(latitude=lat, longitude=lon, name=v["name"], symbol="City"))
    for t in tasks:
        trk = gpxpy.gpx.GPXTrack(name=f"Task {t.id}", description=f"{t.key} {t.state} {'; '.join(t.villages)}".strip())
        for poly in shapely.get_parts(t.geom):
            seg = gpxpy.gpx.GPXTrackSegment()
            seg.points = [gpxpy.gpx.GPXTrackPoint(latitude=y, longitude=x) for x, y in poly.exterior.coords]
            trk.segments.append(seg)
        doc.tracks.append(trk)
    with atomic_path(dest) as tmp:
        tmp.write_text(doc.to_xml(version="1.1"), encoding="utf-8")


def _write_osm(project: Project, tasks: list[Task], dest: Path) -> None:
    """Task outlines as closed ways with negative ids, in a layer JOSM will never upload."""
    with atomic_path(dest) as tmp, open(tmp, "wb") as out:
        w = JosmXmlWriter(out, upload="never")
        next_id = -1
        nodes: dict[tuple[float, float], int] = {}
        ways = []
        for t in tasks:
            for poly in shapely.get_parts(t.geom):
                refs = []
                for x, y in poly.exterior.coords:
                    k = (round(x, 7), round(y, 7))
                    if k not in nodes:
                        nodes[k] = next_id
                        next_id -= 1
                    refs.append(nodes[k])
                ways.append((refs, t))
        for (x, y), nid in nodes.items():
            w.node(nid, x, y)
        for refs, t in ways:
            tags = {"name": f"Task {t.id}", "mapathon:task": t.key, "mapathon:state": t.state}
            if t.villages:
                tags["mapathon:village"] = "; ".join(t.villages)
            w.way(next_id, refs, tags)
            next_id -= 1
        w.close()
