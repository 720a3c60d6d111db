"""Mapnik set-up shared by every map the project draws.

The ``mapnik`` wheel bundles its input plugins and the DejaVu fonts: no
system package is needed. Styles are Mapnik XML, built from small helpers here.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

WEB_MERCATOR = "epsg:3857"
WGS84 = "epsg:4326"


@functools.lru_cache(maxsize=1)
def mapnik():
    """Import mapnik and register its bundled fonts (once).

    The wheel's ``__init__`` points GDAL_DATA and PROJ_LIB at its own copies for
    the whole process; that breaks rasterio and any GDAL command run afterwards.
    Mapnik has read them by the end of the import, so they are put back as they
    were. ICU_DATA stays: Mapnik's ICU reads it lazily (label line breaking),
    and nothing else here uses ICU.
    """
    keys = ("GDAL_DATA", "PROJ_LIB", "PROJ_DATA")
    before = {k: os.environ.get(k) for k in keys}
    import mapnik as _mapnik
    from mapnik import paths

    _mapnik.register_fonts(paths.fontscollectionpath)
    # make sure PROJ inside mapnik has found its database before the variables go
    _mapnik.ProjTransform(_mapnik.Projection(WGS84), _mapnik.Projection(WEB_MERCATOR)).forward(_mapnik.Box2d(0, 0, 1, 1))
    for k, v in before.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    return _mapnik


def font_path(name: str = "DejaVuSans.ttf") -> str:
    """Path of a bundled TrueType font (for page furniture drawn outside Mapnik)."""
    mapnik()  # importing anything from the wheel runs its __init__: do it the safe way
    from mapnik import paths

    return os.path.join(paths.fontscollectionpath, name)


def param(name: str, value) -> str:
    return f"<Parameter name={quoteattr(name)}>{escape(str(value))}</Parameter>"


def sqlite_datasource(file: str | Path, table_sql: str, *, geometry_field: str = "geom", key_field: str = "id",
                      extent: tuple[float, float, float, float] | None = None) -> str:
    """A Mapnik sqlite datasource reading WKB geometries (WGS84) with a SQL sub-query."""
    parts = [
        param("type", "sqlite"),
        param("file", str(file)),
        param("table", f"({table_sql})"),
        param("geometry_field", geometry_field),
        param("wkb_format", "generic"),
        param("use_spatial_index", "false"),
        param("key_field", key_field),
    ]
    if extent:
        parts.append(param("extent", ",".join(f"{v:.9f}" for v in extent)))
    return "<Datasource>" + "".join(parts) + "</Datasource>"


def geojson_datasource(geojson_text: str) -> str:
    return "<Datasource>" + param("type", "geojson") + param("inline", geojson_text) + "</Datasource>"


def layer(name: str, styles: list[str], datasource: str, srs: str = WGS84) -> str:
    names = "".join(f"<StyleName>{escape(s)}</StyleName>" for s in styles)
    return f"<Layer name={quoteattr(name)} srs={quoteattr(srs)}>{names}{datasource}</Layer>"


def project_bbox(bbox_lonlat, srs: str):
    m = mapnik()
    tr = m.ProjTransform(m.Projection(WGS84), m.Projection(srs))
    return tr.forward(m.Box2d(*bbox_lonlat))


# -- print (mapathon print): Mapnik XML style files in the package, vector PDF output -------------------

STYLES_DIR = Path(__file__).parent / "styles"


def style_template(name: str) -> str:
    """The text of a Mapnik XML style file shipped in ``mapathon/render/styles/``."""
    return (STYLES_DIR / name).read_text(encoding="utf-8")


def render_pdf(xml: str, box, width_pt: int, height_pt: int, path: str | Path, *, base_path: str = "") -> None:
    """Render a Mapnik XML map into a one-page vector PDF (cairo) of width × height points.

    *box* is a ``mapnik.Box2d`` in the map's own srs with the same aspect ratio as the page,
    so 1 Mapnik pixel is 1 PDF point and symbol sizes in the style are in points. Text is
    kept as text with embedded, subset fonts.
    """
    m = mapnik()
    mp = m.Map(int(width_pt), int(height_pt))
    m.load_map_from_string(mp, xml, False, base_path)
    mp.zoom_to_box(box)
    m.render_to_file(mp, str(path), "pdf")
