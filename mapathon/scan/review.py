"""The marks found on paper pages, written for review: a JOSM layer that is never uploaded, GeoJSON,
and an HTML page showing the photo around each mark (so that a mapper reads the note beside it).

Every file is written to a temporary file and renamed (:func:`mapathon.fsutil.atomic_path`). The
JOSM layer goes through the project's JOSM writer (:class:`mapathon.osm.josm.JosmXmlWriter`) with
``upload="never"``; each object carries ``fixme=*`` (what the mark is and where) and
``source=survey``.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from shapely.geometry import mapping

from ..fsutil import atomic_path
from ..i18n import Words
from .marks import Mark

CROP_MARGIN_MM = 15.0  # photo kept around a mark: room for the handwriting beside it
CROP_MAX_PX = 520


@dataclass
class ReviewFiles:
    josm: Path
    geojson: Path
    html: Path
    marks: int


def page_number(page_id: str) -> str:
    """'3' for the page id '803fe684-3' (atlas id, printed page number)."""
    return str(page_id).rsplit("-", 1)[-1]


def fixme(m: Mark, w: Words) -> str:
    square = m.square or ""
    return w("marks.fixme", colour=w.get(f"marks.colour.{m.colour}", m.colour),
             kind=w(f"marks.kind.{m.kind}"), page=page_number(m.page), square=square).replace("  ", " ")


def tags(m: Mark, w: Words) -> dict[str, str]:
    return {"fixme": fixme(m, w), "source": "survey"}


def write_josm(marks: list[Mark], dest: str | Path, lang: str | None = None) -> Path:
    """An OSM XML layer of the marks that JOSM will not upload (``<osm upload="never">``)."""
    from ..osm.josm import JosmXmlWriter

    w = Words(lang)
    dest = Path(dest)
    with atomic_path(dest) as tmp, open(tmp, "wb") as out:
        x = JosmXmlWriter(out, upload="never")
        nid = 0

        def node(lon, lat, t=None):
            nonlocal nid
            nid -= 1
            x.node(nid, lon, lat, t)
            return nid

        ways = []
        for m in marks:
            t = tags(m, w)
            g = m.geometry
            if m.kind == "point":
                node(g.x, g.y, t)
                continue
            coords = list(g.exterior.coords if m.kind == "polygon" else g.coords)
            closed = m.kind == "polygon"
            if closed:
                coords = coords[:-1]
            refs = [node(lon, lat) for lon, lat in coords]
            ways.append((refs + refs[:1] if closed else refs, t))
        for i, (refs, t) in enumerate(ways, 1):
            x.way(-i, refs, t)
        x.close()
    return dest


def write_geojson(marks: list[Mark], dest: str | Path, lang: str | None = None) -> Path:
    """The marks as GeoJSON (lon/lat), one feature each with its colour, kind, page, square and village."""
    import fiona

    w = Words(lang)
    schema = {"geometry": "Unknown", "properties": {
        "kind": "str", "colour": "str", "page": "str", "square": "str", "village": "str", "fixme": "str",
        "source": "str"}}
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        with fiona.open(tmp, "w", driver="GeoJSON", schema=schema, crs="EPSG:4326", layer="marks") as dst:
            dst.writerecords({"geometry": mapping(m.geometry), "properties": {
                "kind": m.kind, "colour": m.colour, "page": m.page, "square": m.square, "village": m.village,
                **tags(m, w)}} for m in marks)
    return dest


def crop(page, m: Mark) -> np.ndarray:
    """The rectified photo around a mark (CROP_MARGIN_MM each side), the mark's box outlined."""
    import cv2

    img = np.asarray(page.rectified)
    pad = int(CROP_MARGIN_MM * page.px_per_mm)
    x0, y0, x1, y1 = m.bbox_px
    cx0, cy0 = max(0, x0 - pad), max(0, y0 - pad)
    cx1, cy1 = min(img.shape[1], x1 + pad), min(img.shape[0], y1 + pad)
    out = np.ascontiguousarray(img[cy0:cy1, cx0:cx1])
    e = max(2, int(1.5 * page.px_per_mm))
    cv2.rectangle(out, (x0 - cx0 - e, y0 - cy0 - e), (x1 - cx0 + e, y1 - cy0 + e), (255, 0, 255),
                  max(1, int(0.3 * page.px_per_mm)))
    s = CROP_MAX_PX / max(out.shape[:2])
    if s < 1:
        out = cv2.resize(out, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    return out


def _jpeg_b64(rgb: np.ndarray) -> str:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 82])
    return base64.b64encode(buf.tobytes()).decode("ascii")


def write_html(pages: list[tuple[object, list[Mark]]], dest: str | Path, lang: str | None = None, *,
               brought_by: str | None = None) -> Path:
    """A page to review the marks: for each, the photo around it (embedded JPEG) and what it is."""
    w = Words(lang)
    e = html.escape
    parts = [f"<!doctype html><html lang='{w.lang}'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>{e(w('marks.title'))}</title><style>"
             "body{font-family:sans-serif;margin:1em;max-width:70em}"
             ".mark{display:inline-block;vertical-align:top;margin:0 1em 1.5em 0;width:" + str(CROP_MAX_PX) + "px}"
             ".mark img{max-width:100%;border:1px solid #999}.mark p{margin:.2em 0}.fixme{color:#555;font-size:90%}"
             "</style></head><body>",
             f"<h1>{e(w('marks.title'))}</h1><p>{e(w('marks.help'))}</p>"]
    n = 0
    for page, marks in pages:
        meta = dict(getattr(page, "meta", {}) or {})
        pid = str(meta.get("page", "?"))
        head = w("marks.page", page=page_number(pid))
        if meta.get("village"):
            head = f"{meta['village']} — {head}"
        src = getattr(page, "source", None)
        sub = " · ".join(v for v in (str(src) if src else "", w("marks.brought_by", name=brought_by) if brought_by
                                     else "") if v)
        parts.append(f"<h2>{e(head)}</h2>" + (f"<p>{e(sub)}</p>" if sub else ""))
        if not marks:
            parts.append(f"<p>{e(w('marks.none'))}</p>")
        for m in marks:
            n += 1
            c = m.geometry.centroid if m.kind != "point" else m.geometry
            what = f"{n}. {w(f'marks.kind.{m.kind}')} — {w.get(f'marks.colour.{m.colour}', m.colour)}"
            if m.square:
                what += " — " + w("marks.square", square=m.square)
            parts.append(
                f"<div class='mark' id='mark-{n}'><img alt='{e(what)}' src='data:image/jpeg;base64,"
                f"{_jpeg_b64(crop(page, m))}'><p><b>{e(what)}</b></p>"
                f"<p>{c.y:.6f}, {c.x:.6f}</p><p class='fixme'>fixme={e(fixme(m, w))}</p></div>")
    parts.append("</body></html>\n")
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        tmp.write_text("".join(parts), encoding="utf-8")
    return dest


def write_review(folder: str | Path, pages: list[tuple[object, list[Mark]]], *, lang: str | None = None,
                 brought_by: str | None = None, stem: str = "marks") -> ReviewFiles:
    """marks.osm (JOSM, never uploaded), marks.geojson and marks.html in *folder*."""
    folder = Path(folder)
    marks = [m for _, ms in pages for m in ms]
    return ReviewFiles(write_josm(marks, folder / f"{stem}.osm", lang),
                       write_geojson(marks, folder / f"{stem}.geojson", lang),
                       write_html(pages, folder / f"{stem}.html", lang, brought_by=brought_by), len(marks))
