"""Load imagery delivered on a disk into the cache: a z/x/y folder, an MBTiles file, or a GeoTIFF.

Every tile is decoded before it is stored (bad files are skipped and named); blank tiles are
recorded as missing, as the downloader does. A GeoTIFF (any CRS that GDAL knows) is warped to
web-mercator and cut into 256-pixel tiles with rasterio (its PyPI wheels bundle GDAL, so no
system library is needed): JPEG where the tile is full of data, PNG with transparency at the
edges of the image.
"""

from __future__ import annotations

import io
import math
import sqlite3
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MapathonError, UsageMistake
from ..geo import MERCATOR_MAX_LAT
from . import mbtiles
from . import sources as srcmod
from ..names import slug
from .fetch import BadBody, inspect_image

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp"}
RASTER_EXTS = {".tif", ".tiff", ".gtiff", ".vrt", ".jp2", ".img"}
BATCH = 500
MAX_ZOOM = 22  # as the sources' zoom ranges (sources.parse)
MAX_TILE_BYTES = 16 * 1024 * 1024  # a tile is a few hundred KB at most: a bigger "tile" is skipped unread
_MERC = 20037508.342789244


@dataclass
class ImportResult:
    path: Path
    source: str
    kind: str
    stored: int = 0
    blank: int = 0
    bad: list[str] = field(default_factory=list)
    zooms: list[int] = field(default_factory=list)
    seconds: float = 0.0
    cache_tiles: int = 0
    cache_bytes: int = 0

    def as_dict(self) -> dict:
        return {"path": str(self.path), "source": self.source, "kind": self.kind, "stored": self.stored,
                "blank": self.blank, "bad": self.bad[:50], "bad_count": len(self.bad), "zooms": self.zooms,
                "seconds": round(self.seconds, 3), "cache_tiles": self.cache_tiles, "cache_bytes": self.cache_bytes}


class _Sink:
    """Batches tiles into the cache in transactions."""

    def __init__(self, conn: sqlite3.Connection, result: ImportResult):
        self.conn, self.result = conn, result
        self.tiles: list[tuple] = []
        self.missing: list[tuple] = []
        self.zooms: set[int] = set()
        self.stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def add(self, z: int, x: int, y: int, data: bytes, label: str) -> None:
        try:
            _, blank = inspect_image(data)
        except BadBody as e:
            self.result.bad.append(f"{label}: {e}")
            return
        if blank:
            self.missing.append((z, x, mbtiles.tms_row(z, y), "blank", self.stamp))
            self.result.blank += 1
        else:
            self.tiles.append((z, x, mbtiles.tms_row(z, y), data))
            self.zooms.add(z)
        if len(self.tiles) + len(self.missing) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.tiles and not self.missing:
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany("INSERT OR REPLACE INTO tiles VALUES (?, ?, ?, ?)", self.tiles)
            self.conn.executemany("INSERT OR REPLACE INTO mapathon_missing VALUES (?, ?, ?, ?, ?)", self.missing)
            # a stored tile is no longer missing
            self.conn.executemany("DELETE FROM mapathon_missing WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
                                  [t[:3] for t in self.tiles])
            self.conn.execute("COMMIT")
        except sqlite3.OperationalError as e:
            self.conn.execute("ROLLBACK")
            if "full" in str(e):
                raise MapathonError(f"the disk is full after {self.result.stored:,} tiles; free some space and import "
                                    "again (tiles already stored are kept)") from None
            raise MapathonError(f"cannot write the cache ({e})") from None
        self.result.stored += len(self.tiles)
        self.tiles, self.missing = [], []


def import_tiles(project, path: str | Path, *, source: str | None = None, scheme: str = "auto",
                 zooms: list[int] | None = None, title: str | None = None, attribution: str = "",
                 licence: str = "", actor: str = "organizer", progress=None) -> ImportResult:
    """Import *path* into the cache of *source* (a new local source named after the file by default)."""
    path = Path(path)
    if not path.exists():
        raise MapathonError(f"{path}: no such file or folder")
    name = srcmod.check_name(source or slug(path.stem if path.is_file() else path.name))
    known = srcmod.all_sources(project)
    if name in known:
        src = known[name]
    else:
        src = srcmod.Source(name, title or name, "local", None, 0, 22, licence=licence,
                            attribution=attribution or title or name,
                            note=f"imported from {path.name}")
    if path.is_dir():
        kind = "folder"
    elif path.suffix.lower() == ".mbtiles":
        kind = "mbtiles"
    elif path.suffix.lower() in RASTER_EXTS:
        kind = "geotiff"
    else:
        raise MapathonError(f"{path}: not a z/x/y folder, an .mbtiles file or a GeoTIFF (.tif)")
    t0 = time.perf_counter()
    result = ImportResult(path, name, kind)
    dest = mbtiles.cache_path(project.path, name)
    if dest.exists() and path.resolve() == dest.resolve():
        raise MapathonError(f"{path}: is the cache itself")
    conn = mbtiles.connect(dest, create=True)
    sink = _Sink(conn, result)
    try:
        fmt = None
        if kind == "folder":
            _from_folder(path, scheme, sink, progress)
        elif kind == "mbtiles":
            fmt = _from_mbtiles(path, sink, progress)
        else:
            _from_raster(path, zooms, sink, progress)
        sink.flush()
        if result.stored == 0 and not result.blank:
            why = f" ({len(result.bad)} bad file(s), first: {result.bad[0]})" if result.bad else ""
            raise MapathonError(f"{path}: no tile found to import{why}")
        conn.execute("BEGIN IMMEDIATE")
        summ = mbtiles.refresh_metadata(conn, src, fmt)
        conn.execute("COMMIT")
        result.cache_tiles, result.cache_bytes = summ["tiles"], summ["bytes"]
    finally:
        conn.close()
    result.zooms = sorted(sink.zooms)
    if src.type == "local" and name not in known:
        srcmod.add(project, src, actor=actor)
    with project.transaction():
        project.record(actor=actor, action="imagery.import", data={k: v for k, v in result.as_dict().items()
                                                                    if k != "bad"})
    result.seconds = time.perf_counter() - t0
    return result


def tile_raster(path: str | Path, dest: str | Path) -> ImportResult:
    """Cut a GeoTIFF into web-mercator tiles in the MBTiles file *dest*, outside any project (the
    processes of ``mapathon scan`` do it; its main process imports *dest* with :func:`import_tiles`)."""
    result = ImportResult(Path(path), "", "geotiff")
    conn = mbtiles.connect(Path(dest), create=True)
    try:
        sink = _Sink(conn, result)
        _from_raster(Path(path), None, sink, None)
        sink.flush()
    finally:
        conn.close()
    result.zooms = sorted(sink.zooms)
    return result


def _from_folder(folder: Path, scheme: str, sink: _Sink, progress) -> None:
    if scheme == "auto":
        scheme = "tms" if (folder / "tilemapresource.xml").is_file() else "xyz"
    if scheme not in ("xyz", "tms"):
        raise UsageMistake("use xyz, tms or auto", field="scheme", value=scheme)
    found = 0
    for zdir in sorted(folder.iterdir()):
        if not (zdir.is_dir() and zdir.name.isdigit()):
            continue
        z = int(zdir.name)
        if z > MAX_ZOOM:
            sink.result.bad.append(f"{zdir.name}/: zoom {z} is beyond {MAX_ZOOM}")
            continue
        for xdir in zdir.iterdir():
            if not (xdir.is_dir() and xdir.name.isdigit()):
                continue
            x = int(xdir.name)
            for f in xdir.iterdir():
                if f.suffix.lower() not in IMAGE_EXTS or not f.stem.isdigit():
                    continue
                y = int(f.stem)
                if scheme == "tms":
                    y = (1 << z) - 1 - y
                if not (0 <= x < 1 << z and 0 <= y < 1 << z):
                    sink.result.bad.append(f"{f}: outside zoom {z}")
                    continue
                rel = str(f.relative_to(folder))
                try:
                    st = f.stat()
                except OSError as e:
                    sink.result.bad.append(f"{rel}: cannot read ({e.strerror or e})")
                    continue
                if not stat.S_ISREG(st.st_mode):  # a FIFO or a device would block or never end
                    sink.result.bad.append(f"{rel}: not a regular file")
                    continue
                if st.st_size > MAX_TILE_BYTES:
                    sink.result.bad.append(f"{rel}: {st.st_size:,} bytes, too big for a tile")
                    continue
                try:
                    data = f.read_bytes()
                except OSError as e:
                    sink.result.bad.append(f"{rel}: cannot read ({e.strerror or e})")
                    continue
                sink.add(z, x, y, data, rel)
                found += 1
                if progress and found % 200 == 0:
                    progress(found)
    if found == 0:
        raise MapathonError(f"{folder}: no z/x/y tiles found (expected files like 17/63012/60991.jpg)")


def _from_mbtiles(path: Path, sink: _Sink, progress) -> str | None:
    try:
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        meta = dict(src.execute("SELECT name, value FROM metadata"))
        rows = src.execute("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles")
    except sqlite3.DatabaseError as e:
        raise MapathonError(f"{path}: not a readable MBTiles file ({e})") from None
    if meta.get("format") == "pbf":
        src.close()
        raise MapathonError(f"{path}: holds vector tiles (format pbf), not imagery")
    n = 0
    try:
        for z, x, row, data in rows:
            if not (type(z) is int and type(x) is int and type(row) is int and 0 <= z <= MAX_ZOOM
                    and 0 <= x < 1 << z and 0 <= row < 1 << z):
                sink.result.bad.append(f"tile {z!r}/{x!r}/{row!r} (zoom/column/row): not a tile address "
                                       f"(zoom 0-{MAX_ZOOM}, column and row within the zoom)")
                continue
            y = (1 << z) - 1 - row
            if not isinstance(data, bytes) or len(data) > MAX_TILE_BYTES:
                sink.result.bad.append(f"tile {z}/{x}/{y}: its data is not an image")
                continue
            sink.add(z, x, y, data, f"tile {z}/{x}/{y}")
            n += 1
            if progress and n % 500 == 0:
                progress(n)
    except sqlite3.DatabaseError as e:
        raise MapathonError(f"{path}: unreadable after {n:,} tiles ({e})") from None
    finally:
        src.close()
    return meta.get("format") if meta.get("format") in mbtiles.MIME else None


def native_zoom(res_m: float, lat: float = 0.0) -> int:
    """The web-mercator zoom whose pixels (in mercator metres) are closest to *res_m* ground metres at *lat*."""
    merc_res = res_m / max(math.cos(math.radians(lat)), 1e-6)
    return max(0, min(22, round(math.log2(2 * _MERC / 256 / merc_res))))


def _from_raster(path: Path, zooms: list[int] | None, sink: _Sink, progress) -> None:
    try:
        import numpy as np
        import rasterio
        from affine import Affine
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT
        from rasterio.warp import transform_bounds
    except ImportError:
        raise MapathonError("importing a GeoTIFF needs rasterio: pip install rasterio") from None
    from PIL import Image

    try:
        ds = rasterio.open(path)
    except rasterio.errors.RasterioIOError as e:
        raise MapathonError(f"{path}: not a readable raster ({e})") from None
    with ds:
        if ds.crs is None:
            raise MapathonError(f"{path}: has no coordinate reference system (georeference it first)")
        if ds.count not in (1, 3, 4):
            raise MapathonError(f"{path}: has {ds.count} bands; expected 1 (grey), 3 (RGB) or 4 (RGBA)")
        try:
            w, s, e, n = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)
        except Exception as ex:  # rasterio's CRSError / projection errors
            raise MapathonError(f"{path}: its extent cannot be placed on the globe ({ex})") from None
        if not all(math.isfinite(v) for v in (w, s, e, n)):
            raise MapathonError(f"{path}: its extent cannot be placed on the globe (coordinates are not numbers)")
        # web-mercator tiles stop at ±85.05°: an image reaching the poles is cut there
        w, e = max(w, -180.0), min(e, 180.0 - 1e-9)
        s, n = max(s, -MERCATOR_MAX_LAT), min(n, MERCATOR_MAX_LAT)
        if not w < e:
            raise MapathonError(f"{path}: crosses the 180° meridian; cut it in two there and import each half")
        if not s < n:
            raise MapathonError(f"{path}: lies entirely beyond latitude {MERCATOR_MAX_LAT}°, where there are no map "
                                "tiles")
        lat = (s + n) / 2
        # ground resolution in metres of the source pixels
        if ds.crs.is_geographic:
            res_m = abs(ds.res[0]) * 111_320 * math.cos(math.radians(lat))
        else:
            res_m = abs(ds.res[0]) * (ds.crs.linear_units_factor[1] if ds.crs.linear_units_factor else 1.0)
        top = native_zoom(res_m, lat)
        zs = sorted(zooms) if zooms else list(range(max(0, top - 3), top + 1))
        zmax = max(zs)
        if zmax > top + 2:
            raise MapathonError(f"--zoom {zmax}: the image has {res_m:.2f} m pixels, good for zoom {top} at most "
                                f"(zoom {zmax} would only enlarge it)")
        import mercantile

        scale = None
        if ds.dtypes[0] != "uint8":
            sample = ds.read(out_shape=(ds.count, min(ds.height, 512), min(ds.width, 512)), masked=True)
            lo, hi = np.percentile(sample.compressed(), [1, 99]) if sample.count() else (0, 1)
            scale = (float(lo), float(max(hi, lo + 1)))
        ul = mercantile.tile(w, n, zmax)
        lr = mercantile.tile(e, s, zmax)
        tile_m = 2 * _MERC / (1 << zmax)
        x0m, y0m = -_MERC + ul.x * tile_m, _MERC - ul.y * tile_m
        cols, rows = lr.x - ul.x + 1, lr.y - ul.y + 1
        res = tile_m / 256
        transform = Affine(res, 0, x0m, 0, -res, y0m)
        total = sum(cols * rows // 4 ** (zmax - z) + 1 for z in zs)
        if total > 2_000_000:
            raise MapathonError(f"{path}: about {total:,} tiles at zooms {zs[0]}-{zmax}; import fewer zooms (--zoom)")
        done = 0
        with WarpedVRT(ds, crs="EPSG:3857", transform=transform, width=cols * 256, height=rows * 256,
                       resampling=Resampling.bilinear, add_alpha=ds.count != 4) as vrt:
            for z in zs:
                d = 1 << (zmax - z)
                tx0, ty0 = ul.x // d, ul.y // d
                tx1, ty1 = lr.x // d, lr.y // d
                for tx in range(tx0, tx1 + 1):
                    for ty in range(ty0, ty1 + 1):
                        # the tile's window in the zmax-aligned VRT, in pixels (may extend past its edges)
                        col0, row0 = (tx * d - ul.x) * 256, (ty * d - ul.y) * 256
                        size = 256 * d
                        c0, r0 = max(col0, 0), max(row0, 0)
                        c1, r1 = min(col0 + size, vrt.width), min(row0 + size, vrt.height)
                        if c1 <= c0 or r1 <= r0:
                            continue
                        ow, oh = max(1, round((c1 - c0) / d)), max(1, round((r1 - r0) / d))
                        win = rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)
                        arr = vrt.read(window=win, out_shape=(vrt.count, oh, ow), resampling=Resampling.average)
                        data = _encode(arr, ds.count, scale, (c0 - col0) // d, (r0 - row0) // d, np, Image)
                        done += 1
                        if data is not None:
                            sink.add(z, tx, ty, data, f"tile {z}/{tx}/{ty}")
                        if progress and done % 100 == 0:
                            progress(done)


def _encode(arr, bands: int, scale, ox: int, oy: int, np, Image) -> bytes | None:
    """A 256-pixel tile from a (bands+alpha, h, w) array placed at (ox, oy); None when it holds no data."""
    alpha = arr[-1]
    color = arr[:-1] if bands != 4 else arr[:3]
    if bands == 4:
        alpha = arr[3]
    if not alpha.any():
        return None
    if scale is not None:
        lo, hi = scale
        color = np.clip((color.astype(np.float64) - lo) * 255.0 / (hi - lo), 0, 255)
    color = color.astype(np.uint8)
    h, w = alpha.shape
    if bands == 1:
        color = np.repeat(color[:1], 3, axis=0)
    full = np.zeros((4, 256, 256), dtype=np.uint8)
    full[:3, oy:oy + h, ox:ox + w] = color[:3]
    full[3, oy:oy + h, ox:ox + w] = np.where(alpha > 0, 255, 0)
    buf = io.BytesIO()
    if full[3].all():
        Image.fromarray(np.moveaxis(full[:3], 0, -1), "RGB").save(buf, "JPEG", quality=85)
    else:
        # zlib level 1: 4 times faster than the default 6 and as small on photos (they hardly compress)
        Image.fromarray(np.moveaxis(full, 0, -1), "RGBA").save(buf, "PNG", compress_level=1)
    return buf.getvalue()

