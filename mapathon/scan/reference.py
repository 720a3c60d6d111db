"""A fresh render of a printed page's map frame, to tell the ink on a photo from the printed map.

The atlas's own renderer draws it (:class:`mapathon.atlas.mapbody.MapStyle` and
:func:`mapathon.atlas.mapbody.render`, the very calls of ``mapathon print``), then pypdfium2
rasterizes the vector PDF at the photo's resolution. There is no second map style here.

The page is described by the QR code's JSON (``meta``): its ``scale``, and the map frame's
corners in the map's CRS (``epsg`` and ``frame_crs`` = [minx, miny, maxx, maxy]; a list of
corner points, ``corners_crs``, is read too) and its size on paper (``frame_mm`` =
[x, y, width, height] in mm, or the ``paper``/``orientation`` the layout gives).
A ``--grayscale`` atlas (``grayscale``, or ``inks_outlined``: its strip is outlines) is drawn in greys.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..errors import MapathonError

__all__ = ["render_reference", "frame_box", "frame_size_mm"]


def _first(meta: dict, *keys):
    for k in keys:
        if meta.get(k) is not None:
            return meta[k]
    return None


def frame_box(meta: dict) -> tuple[int, tuple[float, float, float, float]]:
    """(EPSG code, (minx, miny, maxx, maxy)) of the map frame in the map's CRS, from the QR JSON."""
    epsg = _first(meta, "epsg", "crs")
    box = _first(meta, "frame_crs", "box_crs", "box")
    corners = _first(meta, "corners_crs", "frame_corners_crs", "corners")
    if box is None and corners:
        xs, ys = [float(c[0]) for c in corners], [float(c[1]) for c in corners]
        box = (min(xs), min(ys), max(xs), max(ys))
    if epsg is None or box is None or len(box) != 4:
        raise MapathonError(f"page {meta.get('page', '?')}: its QR code gives no map frame in a projected CRS "
                            "(an atlas printed before scanning existed: reprint it)")
    if isinstance(epsg, str):
        epsg = int(epsg.lower().replace("epsg:", ""))
    return int(epsg), tuple(float(v) for v in box)


def frame_size_mm(meta: dict) -> tuple[float, float]:
    """Width and height on paper (mm) of the map frame."""
    fm = _first(meta, "frame_mm")
    if fm:
        return float(fm[-2]), float(fm[-1])
    from ..atlas import layout

    lay = layout.page_layout(meta.get("paper", "A4"), meta.get("orientation", "portrait"), meta.get("notes"))
    return lay.frame_pt[0] / layout.MM, lay.frame_pt[1] / layout.MM


def _data_and_cache(data_file_or_project) -> tuple[Path, Path]:
    if hasattr(data_file_or_project, "path") and not isinstance(data_file_or_project, (str, Path)):
        from ..osm.submit import latest_data

        project = data_file_or_project
        return latest_data(project), project.path / "cache"
    data = Path(data_file_or_project)
    if not data.is_file():
        raise MapathonError(f"{data}: no such data file")
    # a data file without a project: its layer cache goes to the temporary folder, not beside the data
    return data, Path(tempfile.gettempdir()) / "mapathon-cache"


def render_reference(meta: dict, data_file_or_project, px_per_mm: float) -> np.ndarray | None:
    """The page's map frame as the atlas draws it from the data now: uint8 RGB, north up,
    ``round(width_mm * px_per_mm)`` by ``round(height_mm * px_per_mm)`` pixels (the photo's grid).
    None without data (no project and no data file): the marks are then looked for on the photo alone."""
    if data_file_or_project is None:
        return None
    import cv2
    import pypdfium2 as pdfium

    from .. import geo
    from ..atlas import layout, mapbody
    from ..atlas.cache import open_cache

    epsg, box = frame_box(meta)
    w_mm, h_mm = frame_size_mm(meta)
    size_pt = (int(round(w_mm * layout.MM)), int(round(h_mm * layout.MM)))
    out_w, out_h = int(round(w_mm * px_per_mm)), int(round(h_mm * px_per_mm))
    data, cache_dir = _data_and_cache(data_file_or_project)
    cache = open_cache(data, cache_dir)
    to_wgs = geo.transformer(epsg, 4326)
    xs = [box[0], box[2], box[2], box[0]]
    ys = [box[1], box[1], box[3], box[3]]
    lons, lats = to_wgs.transform(xs, ys)
    bbox_wgs = (min(lons), min(lats), max(lons), max(lats))
    with tempfile.TemporaryDirectory(prefix="mapathon-reference-") as tmpd:
        work = Path(tmpd)
        style = mapbody.MapStyle(cache.path, f"epsg:{epsg}", work, grayscale=bool(meta.get("grayscale") or meta.get("inks_outlined")),
                                 imagery=False)
        xml = style.page_xml(mapbody.expand(bbox_wgs, 0.0005))
        pdf = work / "reference.pdf"
        mapbody.render(xml, box, size_pt, pdf, what=f"reference of page {meta.get('page', '?')}")
        doc = pdfium.PdfDocument(str(pdf))
        try:
            img = np.asarray(doc[0].render(scale=px_per_mm / layout.MM).to_pil().convert("RGB"))
        finally:
            doc.close()
    if (img.shape[1], img.shape[0]) != (out_w, out_h):
        img = cv2.resize(img, (out_w, out_h), interpolation=cv2.INTER_AREA)
    scale = meta.get("scale")
    return _furniture_lines(np.ascontiguousarray(img), box, int(scale), px_per_mm) if scale else img


def _furniture_lines(img: np.ndarray, box, scale: int, px_per_mm: float) -> np.ndarray:
    """What the page's furniture draws over the map frame (furniture.draw_map_page): the UTM grid
    lines (GRID at 75 % over the map, 0.45 pt) and the frame's border (INK, 0.9 pt, half inside)."""
    import cv2

    from ..atlas import furniture, layout

    h, w = img.shape[:2]
    minx, miny, maxx, maxy = box
    step = furniture.grid_step_for(scale)
    grid = np.array(furniture.colour(furniture.GRID).rgb()) * 255
    lines = np.zeros((h, w), np.uint8)
    th = max(1, int(round(0.45 / layout.MM * px_per_mm)))
    for v in furniture._multiples(minx, maxx, step):
        x = int(round((v - minx) / (maxx - minx) * w))
        cv2.line(lines, (x, 0), (x, h - 1), 255, th)
    for v in furniture._multiples(miny, maxy, step):
        y = int(round((maxy - v) / (maxy - miny) * h))
        cv2.line(lines, (0, y), (w - 1, y), 255, th)
    a = (lines.astype(np.float32) / 255 * 0.75)[..., None]
    out = img.astype(np.float32) * (1 - a) + grid.astype(np.float32) * a
    edge = max(1, int(round(0.45 / layout.MM * px_per_mm)))
    ink = np.array(furniture.colour(furniture.INK).rgb(), np.float32) * 255
    out[:edge], out[-edge:], out[:, :edge], out[:, -edge:] = ink, ink, ink, ink
    return np.clip(out, 0, 255).astype(np.uint8)
