"""The imagery cache: one MBTiles 1.3 file per source, ``<project>/imagery/<source>.mbtiles``.

The file follows the MBTiles 1.3 specification (https://github.com/mapbox/mbtiles-spec):
a ``metadata`` name/value table (name, format, bounds, center, minzoom, maxzoom,
attribution, description, type, version) and a ``tiles`` table whose rows are numbered
the TMS way (``tile_row = 2**z - 1 - y``), so GDAL, QGIS and other readers open it.

One extra table, ``mapathon_missing``, records tiles the server said it does not have
(HTTP 404/204) or sent blank (one flat colour or fully transparent): they are not stored as
tiles, and a later fetch does not ask for them again. Readers of the spec ignore it.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np

from ..errors import MapathonError
from ..tasks.grid import tile_bounds

SCHEMA = """
CREATE TABLE IF NOT EXISTS metadata (name TEXT NOT NULL, value TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS metadata_name ON metadata (name);
CREATE TABLE IF NOT EXISTS tiles (zoom_level INTEGER NOT NULL, tile_column INTEGER NOT NULL,
                                  tile_row INTEGER NOT NULL, tile_data BLOB NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS tile_index ON tiles (zoom_level, tile_column, tile_row);
CREATE TABLE IF NOT EXISTS mapathon_missing (
    zoom_level INTEGER NOT NULL, tile_column INTEGER NOT NULL, tile_row INTEGER NOT NULL,
    reason TEXT NOT NULL,          -- 'not-found' (HTTP 404/204/410) or 'blank' (a flat image)
    checked TEXT NOT NULL,         -- when (UTC)
    PRIMARY KEY (zoom_level, tile_column, tile_row)
) WITHOUT ROWID;
"""

FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
MIME = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


def key(z: int, x: int, y: int) -> int:
    """One integer per tile (XYZ numbering), for fast set membership."""
    return (z << 48) | (x << 24) | y


def tms_row(z: int, y: int) -> int:
    return (1 << z) - 1 - y


def cache_dir(project_path: Path) -> Path:
    return Path(project_path) / "imagery"


def cache_path(project_path: Path, source_name: str) -> Path:
    return cache_dir(project_path) / f"{source_name}.mbtiles"


def _has_tables(conn: sqlite3.Connection, need=("metadata", "tiles", "mapathon_missing")) -> bool:
    """Whether the file has these tables (or views: many MBTiles writers make ``tiles`` a view)."""
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    return set(need) <= names


def _create(path: Path) -> None:
    """Make an empty cache file whole or not at all: the schema is written to a temporary file, renamed
    into place (a run killed in its first instant leaves no half-made cache for later runs)."""
    from ..fsutil import atomic_path

    with atomic_path(path) as tmp:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = DELETE")
            conn.executescript(SCHEMA)
        finally:
            conn.close()


def connect(path: Path, *, create: bool = False) -> sqlite3.Connection:
    """A writing connection (rollback journal: the cache stays one self-contained file).

    A cache left empty or half-made (a 0-byte file, or one without the tables, by a run killed at its
    start or a failed import) gets its missing tables, so later runs go on as with a new cache.
    """
    path = Path(path)
    if not create and not path.is_file():
        raise MapathonError(f"{path}: no such imagery cache")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if create and (not path.exists() or (path.is_file() and path.stat().st_size == 0)):
            _create(path)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.executescript(SCHEMA)  # IF NOT EXISTS: adds what a half-made or foreign file lacks
    except sqlite3.DatabaseError as e:
        raise MapathonError(f"{path}: not a usable MBTiles file ({e}); delete it to start the cache again") from None
    return conn


def set_metadata(conn: sqlite3.Connection, values: dict[str, object]) -> None:
    conn.executemany(
        "INSERT INTO metadata (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        [(k, str(v)) for k, v in values.items() if v is not None],
    )


def metadata(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT name, value FROM metadata"))


def known_keys(conn: sqlite3.Connection, zooms: list[int]) -> set[int]:
    """Keys of tiles already stored or recorded as missing at these zooms."""
    out: set[int] = set()
    for table in ("tiles", "mapathon_missing"):
        for z in zooms:
            rows = conn.execute(f"SELECT tile_column, tile_row FROM {table} WHERE zoom_level = ?", (z,)).fetchall()
            if rows:
                a = np.array(rows, dtype=np.int64)
                ys = (1 << z) - 1 - a[:, 1]
                out.update(((z << 48) | (a[:, 0] << 24) | ys).tolist())
    return out


def stored_summary(conn: sqlite3.Connection) -> dict:
    """Tile count, bytes, zooms and WGS84 bounds of the stored tiles."""
    rows = conn.execute(
        """SELECT zoom_level, COUNT(*), SUM(LENGTH(tile_data)), MIN(tile_column), MAX(tile_column),
                  MIN(tile_row), MAX(tile_row) FROM tiles GROUP BY zoom_level ORDER BY zoom_level"""
    ).fetchall()
    missing = (dict(conn.execute("SELECT reason, COUNT(*) FROM mapathon_missing GROUP BY reason").fetchall())
               if _has_tables(conn, ("mapathon_missing",)) else {})  # another tool's MBTiles has no such table
    if not rows:
        return {"tiles": 0, "bytes": 0, "zooms": [], "bounds": None, "per_zoom": {}, "missing": missing}
    w = s = float("inf")
    e = n = float("-inf")
    per_zoom = {}
    for z, count, size, x0, x1, r0, r1 in rows:
        per_zoom[z] = {"tiles": count, "bytes": size or 0}
        y0, y1 = (1 << z) - 1 - r1, (1 << z) - 1 - r0
        ww, ss, ee, nn = tile_bounds(z, np.array([x0, x1]), np.array([y1, y0]))
        w, s, e, n = min(w, ww[0]), min(s, ss[0]), max(e, ee[1]), max(n, nn[1])
    return {
        "tiles": sum(v["tiles"] for v in per_zoom.values()),
        "bytes": sum(v["bytes"] for v in per_zoom.values()),
        "zooms": sorted(per_zoom),
        "bounds": (w, s, e, n),
        "per_zoom": per_zoom,
        "missing": missing,
    }


def refresh_metadata(conn: sqlite3.Connection, source=None, fmt: str | None = None) -> dict:
    """Write the spec's metadata from what is stored (and the source's name and attribution)."""
    summ = stored_summary(conn)
    meta = metadata(conn)
    values: dict[str, object] = {"type": "baselayer", "version": "1"}
    if source is not None:
        values.update({
            "name": source.title,
            "description": f"Imagery cache of {source.title} made by mapathon"
                           + (f"; licence: {source.licence}" if source.licence else ""),
            "attribution": source.attribution or source.title,
            "mapathon_source": source.name,
        })
    if fmt:
        values["format"] = fmt
    elif "format" not in meta:
        row = conn.execute("SELECT tile_data FROM tiles LIMIT 1").fetchone()
        values["format"] = sniff_format(row[0]) if row else "jpg"
    if "name" not in meta and "name" not in values:
        values["name"] = "imagery"
    if summ["bounds"]:
        w, s, e, n = summ["bounds"]
        values["bounds"] = f"{w:.7f},{s:.7f},{e:.7f},{n:.7f}"
        values["minzoom"] = min(summ["zooms"])
        values["maxzoom"] = max(summ["zooms"])
        values["center"] = f"{(w + e) / 2:.7f},{(s + n) / 2:.7f},{max(summ['zooms'])}"
    set_metadata(conn, values)
    return summ


def sniff_format(data: bytes, default: str | None = "jpg") -> str | None:
    """The tile format from its first bytes: jpg, png or webp; else *default*."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return default


class Reader:
    """Thread-safe read access to one cache file (a read-only connection per thread)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise MapathonError(f"{self.path}: no such imagery cache")
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=30)
                complete = _has_tables(conn, ("metadata", "tiles"))  # any MBTiles file, ours or another tool's
            except sqlite3.DatabaseError as e:
                raise MapathonError(f"{self.path}: not a usable MBTiles file ({e}); delete it to start the cache "
                                    "again") from None
            if not complete:  # an empty or half-made cache (see connect): read as holding no tile
                conn.close()
                conn = sqlite3.connect(":memory:", check_same_thread=False)
                conn.executescript(SCHEMA)
            self._local.conn = conn
        return conn

    def tile(self, z: int, x: int, y: int) -> bytes | None:
        row = self._conn().execute(
            "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
            (z, x, tms_row(z, y)),
        ).fetchone()
        return row[0] if row else None

    def metadata(self) -> dict[str, str]:
        return metadata(self._conn())

    def summary(self) -> dict:
        return stored_summary(self._conn())
