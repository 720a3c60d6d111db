"""The map body of each page: the Mapnik style filled in for one page and rendered to vector PDF."""

from __future__ import annotations

import json
import string
from pathlib import Path
from xml.sax.saxutils import escape

from ..render import mapnik_env as me
from . import symbols


def expand(box, d):
    return (box[0] - d, box[1] - d, box[2] + d, box[3] + d)


def where_sql(bbox_wgs84) -> str:
    """The R*Tree condition selecting what touches a WGS84 box (alias ``r``)."""
    w, s, e, n = bbox_wgs84
    return f"r.maxx >= {w:.8f} AND r.minx <= {e:.8f} AND r.maxy >= {s:.8f} AND r.miny <= {n:.8f}"


def geojson_layer(name: str, styles: list[str], features: list[dict]) -> str:
    text = json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False)
    return me.layer(name, styles, me.geojson_datasource(text))


class MapStyle:
    """The atlas style for one atlas run: colours, icons and the cache file are fixed."""

    def __init__(self, cache_path: Path, srs: str, work_dir: Path, *, grayscale: bool, imagery: bool):
        self.pal = symbols.palette(grayscale)
        self.icons = symbols.write_symbol_files(work_dir / "symbols", self.pal)
        self.srs = srs
        self.cache = str(cache_path)
        self.grayscale = grayscale
        self.imagery = imagery
        self.templates = {n: string.Template(me.style_template(n)) for n in ("atlas.xml", "keymap.xml")}

    def _values(self, bbox_wgs84, **extra) -> dict:
        vals = {f"c_{k}": v for k, v in self.pal.items()}
        vals.update(
            srs=self.srs,
            cache=escape(self.cache),
            icons=escape(str(self.icons)),
            where=escape(where_sql(bbox_wgs84)),
            extent=",".join(f"{v:.8f}" for v in bbox_wgs84),
            area_opacity="0.35" if self.imagery else "1",
            water_opacity="0.55" if self.imagery else "1",
            building_opacity="0.55" if self.imagery else "1",
            imagery_layer="", tasks_layer="", overlay_layers="", buildings_layer="", page_number_size="11",
            page_number_offset="6",
        )
        vals.update(extra)
        return vals

    def page_xml(self, bbox_wgs84, *, imagery_layer: str = "", tasks: list[dict] | None = None,
                 blockers: list[tuple[float, float, float, float]] | None = None) -> str:
        """The style for one page. *blockers* are (x, y, width pt, height pt) boxes in the map's srs
        where labels must not go."""
        tasks_layer = ""
        if tasks:
            tasks_layer = geojson_layer("tasks", ["tasks", "task-labels"], tasks)
        overlay = ""
        if blockers:
            feats = [{"type": "Feature", "properties": {"w": w, "h": h}, "geometry": {"type": "Point", "coordinates": [x, y]}}
                     for x, y, w, h in blockers]
            text = json.dumps({"type": "FeatureCollection", "features": feats})
            overlay = me.layer("blockers", ["blockers"], me.geojson_datasource(text), srs=self.srs)
        xml = self.templates["atlas.xml"].substitute(self._values(bbox_wgs84, imagery_layer=imagery_layer,
                                                                  tasks_layer=tasks_layer, overlay_layers=overlay))
        return symbols.greyscale_text(xml) if self.grayscale else xml

    def keymap_xml(self, bbox_wgs84, *, areas: list[dict], pages: list[dict], buildings: bool,
                   imagery_layer: str = "", number_size: float = 11, number_points: list[dict] | None = None,
                   number_offset: float = 6) -> str:
        """The cover's key map; page numbers inside the frames, or beside them (*number_points*) when
        the frames are too small to hold them."""
        overlay = ""
        if areas:
            overlay += geojson_layer("areas", ["areas"], areas)
        if pages:
            overlay += geojson_layer("pages", ["pages"] + ([] if number_points else ["page-numbers"]), pages)
        if number_points:
            overlay += geojson_layer("page-numbers", ["page-numbers-outside"], number_points)
        blayer = ""
        if buildings:
            blayer = me.layer("buildings", ["buildings"], me.sqlite_datasource(
                self.cache, "SELECT p.id, p.geom FROM polys p JOIN rt_polys r ON r.id = p.id WHERE "
                + where_sql(bbox_wgs84) + " AND p.kind = 'building'",
                extent=bbox_wgs84))
        xml = self.templates["keymap.xml"].substitute(self._values(
            bbox_wgs84, overlay_layers=overlay, buildings_layer=blayer, imagery_layer=imagery_layer,
            page_number_size=f"{number_size:.1f}"))
        return symbols.greyscale_text(xml) if self.grayscale else xml


def render(xml: str, box_utm, size_pt: tuple[int, int], dest: Path, what: str = "map") -> None:
    m = me.mapnik()
    try:
        me.render_pdf(xml, m.Box2d(*box_utm), size_pt[0], size_pt[1], dest)
    except RuntimeError as e:  # Mapnik reports bad styles, data or fonts this way
        from ..errors import MapathonError

        raise MapathonError(f"drawing the {what} failed: {str(e).splitlines()[0] if str(e) else e}") from None
