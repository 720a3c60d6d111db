"""Cached satellite imagery (MBTiles) under the map: tiles composed with Pillow into one picture per page.

An MBTiles file is SQLite with a ``tiles`` table (zoom_level, tile_column, tile_row in TMS
order, tile_data) and a ``metadata`` table. For each page the tiles covering it at the
zoom that suits the scale are pasted into one image, which Mapnik's ``raster`` plugin
places by its web-mercator extent and reprojects to the page's UTM zone.
"""

from __future__ import annotations

import io
import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from ..errors import MapathonError
from ..render import mapnik_env as me

HALF = 20037508.342789244
MAX_TILES = 600


@dataclass
class MBTiles:
    path: Path
    minzoom: int
    maxzoom: int
    tile_size: int

    def connect(self):
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)


def open_mbtiles(path: str | Path) -> MBTiles:
    path = Path(path)
    if not path.is_file():
        raise MapathonError("no such file", field="imagery", value=path)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        zooms = conn.execute("SELECT MIN(zoom_level), MAX(zoom_level) FROM tiles").fetchone()
        first = conn.execute("SELECT tile_data FROM tiles LIMIT 1").fetchone()
        conn.close()
    except sqlite3.DatabaseError as e:
        raise MapathonError(f"not an MBTiles file ({e})", field="imagery", value=path) from None
    if zooms is None or zooms[0] is None or first is None:
        raise MapathonError("the MBTiles file holds no tiles", field="imagery", value=path)
    from PIL import Image

    try:
        size = Image.open(io.BytesIO(first[0])).size[0]
    except Exception:
        raise MapathonError("its tiles are not images (vector tiles cannot be used)", field="imagery", value=path) from None
    return MBTiles(path, int(zooms[0]), int(zooms[1]), size)


def _tile_xy(lon, lat, z):
    n = 2 ** z
    x = (lon + 180.0) / 360.0 * n
    lat_r = math.radians(max(min(lat, 85.0511), -85.0511))
    y = (1.0 - math.asinh(math.tan(lat_r)) / math.pi) / 2.0 * n
    return x, y


def page_layer(mb: MBTiles, bbox_wgs84, metres_per_px: float, dest: Path, *, grayscale: bool = False) -> str:
    """Compose the tiles under *bbox_wgs84* into *dest* (PNG); return the Mapnik layer XML ('' if no tile)."""
    from PIL import Image

    w, s, e, n = bbox_wgs84
    lat = (s + n) / 2
    # the finest zoom not much finer than needed, within what the file has
    z_needed = math.log2(2 * HALF * math.cos(math.radians(lat)) / (mb.tile_size * max(metres_per_px, 0.01)))
    z = int(min(mb.maxzoom, max(mb.minzoom, math.ceil(z_needed))))
    while True:
        x0, y0 = _tile_xy(w, n, z)
        x1, y1 = _tile_xy(e, s, z)
        tx0, ty0, tx1, ty1 = int(x0), int(y0), int(x1), int(y1)
        if (tx1 - tx0 + 1) * (ty1 - ty0 + 1) <= MAX_TILES or z <= mb.minzoom:
            break
        z -= 1
    ts = mb.tile_size
    img = Image.new("RGBA", ((tx1 - tx0 + 1) * ts, (ty1 - ty0 + 1) * ts), (255, 255, 255, 0))
    found = 0
    conn = mb.connect()
    try:
        rows = conn.execute(
            "SELECT tile_column, tile_row, tile_data FROM tiles WHERE zoom_level = ? AND tile_column BETWEEN ? AND ? "
            "AND tile_row BETWEEN ? AND ?", (z, tx0, tx1, 2 ** z - 1 - ty1, 2 ** z - 1 - ty0))
        for col, row, data in rows:
            y = 2 ** z - 1 - row
            try:
                tile = Image.open(io.BytesIO(data)).convert("RGBA")
            except Exception:
                continue
            if tile.size != (ts, ts):
                tile = tile.resize((ts, ts))
            img.paste(tile, ((col - tx0) * ts, (y - ty0) * ts))
            found += 1
    finally:
        conn.close()
    if not found:
        return ""
    if grayscale:
        alpha = img.getchannel("A")
        img = img.convert("L").convert("RGBA")
        img.putalpha(alpha)
    img.save(dest, "PNG", optimize=False)
    size = 2 * HALF / 2 ** z
    lox, hix = -HALF + tx0 * size, -HALF + (tx1 + 1) * size
    hiy, loy = HALF - ty0 * size, HALF - (ty1 + 1) * size
    ds = ("<Datasource>" + me.param("type", "raster") + me.param("file", str(dest)) + me.param("format", "png")
          + me.param("lox", f"{lox:.3f}") + me.param("loy", f"{loy:.3f}") + me.param("hix", f"{hix:.3f}")
          + me.param("hiy", f"{hiy:.3f}") + "</Datasource>")
    return ('<Style name="imagery"><Rule><RasterSymbolizer scaling="bilinear" opacity="0.9"/></Rule></Style>'
            f'<Layer name="imagery" srs="{escape(me.WEB_MERCATOR)}"><StyleName>imagery</StyleName>{ds}</Layer>')
