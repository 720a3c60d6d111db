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
    """Import mapnik and register its bundled fonts (once)."""
    import mapnik as _mapnik
    from mapnik import paths

    _mapnik.register_fonts(paths.fontscollectionpath)
    return _mapnik


def font_path(name: str = "DejaVuSans.ttf") -> str:
    """Path of a bundled TrueType font (for page furniture drawn outside Mapnik)."""
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


def render_png(xml: str, bbox_lonlat: tuple[float, float, float, float], width: int, height: int, path: str | Path,
               *, base_path: str = "") -> None:
    """Render a Mapnik XML map zoomed to a WGS84 bbox into a PNG file."""
    m = mapnik()
    mp = m.Map(width, height)
    m.load_map_from_string(mp, xml, False, base_path)
    mp.zoom_to_box(project_bbox(bbox_lonlat, mp.srs))
    img = m.Image(width, height)
    m.render(mp, img)
    img.save(str(path), "png")


def project_bbox(bbox_lonlat, srs: str):
    m = mapnik()
    tr = m.ProjTransform(m.Projection(WGS84), m.Projection(srs))
    return tr.forward(m.Box2d(*bbox_lonlat))
