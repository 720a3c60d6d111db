"""A fresh render of a printed page's map frame, to tell the ink on a photo from the printed map.

The atlas's own renderer draws it (:class:`mapathon.atlas.mapbody.MapStyle` and
:func:`mapathon.atlas.mapbody.render`, the very calls of ``mapathon print``), then pypdfium2
rasterizes the vector PDF at the photo's resolution. There is no second map style here. What the
page's furniture prints over the map inside the frame (UTM grid, border, the arrows to the
neighbouring pages) is drawn by its own code (:func:`mapathon.atlas.furniture.draw_frame_overlay`),
and the labels are kept out of the arrows' boxes as on the print (``neighbours`` in the QR JSON; on
a page printed before the QR code said them, the arrows' places are masked: ``unprinted_mask``).

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

__all__ = ["render_reference", "kept_reference", "unprinted_mask", "frame_box", "frame_size_mm"]


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

    from .. import geo
    from ..atlas import atlas, layout, mapbody
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
    words = _words(data_file_or_project)
    neighbours = _neighbours(meta)
    with tempfile.TemporaryDirectory(prefix="mapathon-reference-") as tmpd:
        work = Path(tmpd)
        style = mapbody.MapStyle(cache.path, f"epsg:{epsg}", work, grayscale=bool(meta.get("grayscale") or meta.get("inks_outlined")),
                                 imagery=False)
        # the labels kept out of the neighbour arrows' boxes, as on the printed page
        blockers = atlas.label_blockers(box, neighbours or {}, size_pt, words)
        xml = style.page_xml(mapbody.expand(bbox_wgs, 0.0005), blockers=blockers)
        pdf = work / "reference.pdf"
        mapbody.render(xml, box, size_pt, pdf, what=f"reference of page {meta.get('page', '?')}")
        img = _rasterize(pdf, px_per_mm)
        scale = meta.get("scale")
        over = work / "overlay.pdf"
        if scale:
            _draw_overlay(over, size_pt, box, int(scale), neighbours or {}, words)
            img = _over(img, _rasterize(over, px_per_mm, alpha=True))
    if (img.shape[1], img.shape[0]) != (out_w, out_h):
        img = cv2.resize(img, (out_w, out_h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)


def kept_reference(meta: dict, data_file_or_project, px_per_mm: float, folder: Path | None) -> np.ndarray | None:
    """:func:`render_reference`, kept in *folder* (the batch's temporary folder, shared by the processes
    of ``mapathon scan``): a second photo of the same page reuses the first one's render. The render
    is named by the page's QR JSON, the resolution and the language: a batch reads one data file."""
    if folder is None or data_file_or_project is None:
        return render_reference(meta, data_file_or_project, px_per_mm)
    import hashlib
    import json

    from ..fsutil import atomic_path

    lang = getattr(data_file_or_project, "lang", None)
    key = hashlib.sha1(json.dumps([meta, px_per_mm, lang], sort_keys=True, default=str).encode()).hexdigest()[:20]
    kept = Path(folder) / f"reference-{key}.npy"
    if kept.is_file():
        try:
            return np.load(kept)
        except (OSError, ValueError):  # a damaged file: render again
            pass
    img = render_reference(meta, data_file_or_project, px_per_mm)
    if img is not None:
        with atomic_path(kept) as tmp:
            np.save(tmp, img)
    return img


def _words(data_file_or_project):
    from ..atlas.i18n import Words
    from ..i18n import resolve_lang

    project = data_file_or_project if hasattr(data_file_or_project, "lang") else None
    return Words(resolve_lang(project))


def _neighbours(meta: dict) -> dict | None:
    """{side: page number} of the arrows printed inside the frame; None when the QR code does not
    say (an atlas printed before it did)."""
    nb = meta.get("neighbours")
    if nb is None:
        return None
    return {str(k): int(v) for k, v in dict(nb).items()}


def _rasterize(pdf: Path, px_per_mm: float, alpha: bool = False) -> np.ndarray:
    import pypdfium2 as pdfium

    from ..atlas import layout

    doc = pdfium.PdfDocument(str(pdf))
    try:
        if alpha:
            pil = doc[0].render(scale=px_per_mm / layout.MM, fill_color=(255, 255, 255, 0)).to_pil().convert("RGBA")
        else:
            pil = doc[0].render(scale=px_per_mm / layout.MM).to_pil().convert("RGB")
        return np.asarray(pil)
    finally:
        doc.close()


def _over(img: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    import cv2

    if rgba.shape[:2] != img.shape[:2]:
        rgba = cv2.resize(rgba, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_AREA)
    where = rgba[..., 3] > 0  # the overlay covers little of the frame: blend those pixels only
    a = rgba[where, 3:].astype(np.float32) / 255
    out = img.copy()
    out[where] = np.clip(img[where].astype(np.float32) * (1 - a) + rgba[where, :3].astype(np.float32) * a + 0.5,
                         0, 255).astype(np.uint8)
    return out


def _draw_overlay(dest: Path, size_pt, box, scale: int, neighbours: dict, words) -> None:
    """What the page's furniture prints over the map body (furniture.draw_frame_overlay, the very
    call of ``mapathon print``) on a transparent frame-sized page."""
    from reportlab.pdfgen import canvas

    from ..atlas import furniture

    furniture.register_fonts()
    minx, miny, maxx, maxy = box
    step = furniture.grid_step_for(scale)
    min_part = furniture.MIN_SQUARE_MM * scale / 1000.0
    c = canvas.Canvas(str(dest), pagesize=size_pt)
    furniture.draw_frame_overlay(c, (0, 0, *size_pt), box, step, furniture.square_edges(minx, maxx, step, min_part),
                                 list(reversed(furniture.square_edges(miny, maxy, step, min_part))), neighbours, words)
    c.showPage()
    c.save()


def unprinted_mask(meta: dict, shape) -> np.ndarray | None:
    """Where the page may print something the reference lacks, as a boolean mask of *shape* (the
    frame's pixels): the four places of the neighbour arrows on a page printed before its QR code
    listed them (no mark is looked for there). None when the reference lacks nothing."""
    if _neighbours(meta) is not None:
        return None
    from ..atlas import furniture, layout
    from ..atlas.i18n import Words

    w_mm, h_mm = frame_size_mm(meta)
    h, w = shape[:2]
    sx, sy = w / (w_mm * layout.MM), h / (h_mm * layout.MM)
    out = np.zeros((h, w), bool)
    pad = 2.0  # pt
    for side in "NSWE":  # the widest label the atlas prints ("p. 888")
        x, y, bw, bh = furniture.arrow_box(side, 888, 0, 0, w_mm * layout.MM, h_mm * layout.MM, Words("en"))
        x0, x1 = int(max(0, (x - pad) * sx)), int(min(w, np.ceil((x + bw + pad) * sx)))
        y0, y1 = int(max(0, h - (y + bh + pad) * sy)), int(min(h, np.ceil(h - (y - pad) * sy)))
        out[y0:y1, x0:x1] = True
    return out
