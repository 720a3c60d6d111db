"""Helpers shared by the foundation tests (project, AOI, grid, lifecycle, status, exports).

Everything here reads the project through independent means (sqlite3, pyproj.Geod,
mercantile, shapely) rather than through mapathon's own helpers.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import sqlite3
from pathlib import Path

import mercantile
import shapely
from pyproj import Geod

from conftest import VILLAGES_CSV, Cli

GEOD = Geod(ellps="WGS84")
DB = "mapathon.sqlite"


def geod_area(geom) -> float:
    """Geodesic area (m²) of a WGS84 (lon/lat) geometry, independent of mapathon.geo."""
    if geom.is_empty:
        return 0.0
    # densify so that lon/lat-straight edges (tile sides) are followed closely by the geodesics
    return abs(GEOD.geometry_area_perimeter(shapely.segmentize(geom, 0.001))[0])


def db(project: Path) -> sqlite3.Connection:
    """The project's database: its SQLite file with sqlite3, or its PostgreSQL schema (mapathon.postgresql)."""
    pointer = Path(project) / "mapathon.postgresql"
    if pointer.is_file():
        from mapathon import store

        return store.connect(pointer.read_text().strip())
    conn = sqlite3.connect(Path(project) / DB)
    conn.row_factory = sqlite3.Row
    return conn


def query(project: Path, sql: str, args=()) -> list[sqlite3.Row]:
    conn = db(project)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def snapshot(project: Path):
    """Everything a command could change: tasks, volunteers, areas, events."""
    conn = db(project)
    try:
        return (
            [tuple(r) for r in conn.execute("SELECT * FROM tasks ORDER BY id")],
            [tuple(r) for r in conn.execute("SELECT * FROM volunteers ORDER BY id")],
            [tuple(r) for r in conn.execute("SELECT * FROM task_areas ORDER BY task_id, area_id")],
            [tuple(r) for r in conn.execute("SELECT * FROM events ORDER BY seq")],
        )
    finally:
        conn.close()


def aoi_geom(project: Path):
    return shapely.from_wkb(query(project, "SELECT geom FROM areas WHERE kind = 'aoi'")[0][0])


def task_geoms(project: Path, live_only: bool = True) -> dict[str, object]:
    sql = "SELECT key, geom FROM tasks" + (" WHERE state != 'SPLIT'" if live_only else "")
    return {r["key"]: shapely.from_wkb(r["geom"]) for r in query(project, sql)}


def state_of(project: Path, ref) -> str:
    col = "id" if str(ref).isdigit() else "key"
    return query(project, f"SELECT state FROM tasks WHERE {col} = ?", (int(ref) if col == "id" else ref,))[0][0]


def task_events(project: Path, key: str | None = None) -> list[sqlite3.Row]:
    if key is None:
        return query(project, "SELECT * FROM events WHERE task IS NOT NULL ORDER BY seq")
    return query(project, "SELECT * FROM events WHERE task = ? ORDER BY seq", (key,))


def assert_error(result, *needles: str) -> str:
    """A user mistake: non-zero exit, one 'Error:' line on stderr naming what is wrong, no traceback."""
    assert result.exit_code != 0
    err = result.stderr.strip()
    assert "Traceback" not in result.stdout + result.stderr
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    assert lines[0].startswith("Error:"), lines[0]
    for n in needles:
        assert n.lower() in lines[0].lower(), f"{n!r} not in {lines[0]!r}"
    return lines[0]


def tasks_json(cli: Cli, *args: str) -> list[dict]:
    return json.loads(cli("tasks", "--json", *args).stdout)


def status_json(cli: Cli) -> dict:
    return json.loads(cli("status", "--json").stdout)


def expected_tile_cover(aoi, zoom: int, min_overlap: float = 1.0) -> set[str]:
    """z/x/y of tiles overlapping *aoi* by more than *min_overlap* m², from mercantile and pyproj.Geod."""
    keys = set()
    for t in mercantile.tiles(*aoi.bounds, zoom):
        cell = shapely.box(*mercantile.bounds(t))
        piece = cell.intersection(aoi)
        if not piece.is_empty and geod_area(piece) > min_overlap:
            keys.add(f"{t.z}/{t.x}/{t.y}")
    return keys


_TEMPLATES: dict[str, Path] = {}


def copy_project(src: Path, dest: Path, shared: bool = False) -> Path:
    """An exact copy of a project (same site id, same events): its SQLite file, or its PostgreSQL schema
    (*shared*: kept until the end of the session, for a module's fixture, instead of the test's end)."""
    dest.mkdir(parents=True)
    pointer = src / "mapathon.postgresql"
    if pointer.is_file():
        from conftest import PG_URL
        from mapathon import store

        url = store.with_schema(PG_URL, f"{'tmpl' if shared else 't'}_{uuid.uuid4().hex[:12]}")
        with store.connect(pointer.read_text().strip()) as a, store.connect(url, create=True) as b:
            store.copy_data(a, b)
        (dest / "mapathon.postgresql").write_text(url + "\n")
        return dest
    for f in src.iterdir():
        if f.name.startswith(DB):
            shutil.copy2(f, dest / f.name)
    return dest


def village_template(tmp_path_factory, zoom: int | None = 16) -> Path:
    """A Dianguirdé project (Mariam organizer), gridded at *zoom*, made once per session and backend."""
    pg = bool(os.environ.get("MAPATHON_DB"))
    name = f"villages-z{zoom}" + ("-pg" if pg else "")
    if name not in _TEMPLATES:
        folder = tmp_path_factory.mktemp("templates") / name
        db = ["--db", f"{os.environ['MAPATHON_DB']}?schema=tmpl_{uuid.uuid4().hex[:12]}"] if pg else []
        Cli()(*db, "init", folder, "--name", "Dianguirdé", "--aoi", VILLAGES_CSV, "--radius", "2000",
              "--organizer", "Mariam")
        if zoom is not None:
            Cli(folder)("grid", "--zoom", str(zoom))
        _TEMPLATES[name] = folder
    return _TEMPLATES[name]


def write_geojson(path: Path, features: list[tuple[dict, dict]]) -> Path:
    """features: (geometry mapping, properties)."""
    path.write_text(json.dumps({
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": p, "geometry": g} for g, p in features],
    }))
    return path
