"""Open a task in JOSM or iD the way HOT's Tasking Manager does, with imagery from the local cache.

JOSM (remote control, http://127.0.0.1:8111), in order:

1. ``/imagery``   the cached imagery as a TMS layer served by ``mapathon imagery serve``;
2. ``/load_data`` the task boundary as a new *locked* layer that is never uploaded;
3. ``/import``    the houses, wells and tracks other volunteers mapped in this project and not
   uploaded yet (ids <= 0 in the latest merge), as a *locked* layer that is never uploaded
   (only when there are some);
4. ``/import``    the layer to map in: the task's existing OpenStreetMap data (with a margin of
   ``DATA_MARGIN_M``) from the project's latest data (``merged/latest.osm.pbf``), real ids and
   versions, so that edits are saved (and handed in with ``mapathon submit``) as modifications;
   an empty ``/load_data`` layer when the project has no merge yet or nothing is there;
   or with ``download=True`` a ``/load_and_zoom`` that downloads current OSM data (online rooms);
5. ``/zoom``      to the task, with the changeset comment, source and hashtags.

Both imported layers are files served by ``mapathon imagery serve`` and the room server
(``/tasks/<task>/data.osm`` and ``/tasks/<task>/new.osm``): a whole village is too big for a URL.
JOSM's ``/import`` takes ``new_layer``, ``layer_name``, ``layer_locked``, ``download_policy`` and
``upload_policy`` (as ``/load_data`` does), reads everything after ``&url=`` as the URL (so it
comes last), and opens a URL as OSM data when it ends in ``.osm``.

iD: one URL (``https://www.openstreetmap.org/edit?editor=id#map=...``) with the cached imagery as
a custom background, the task boundary as a GPX overlay served by ``imagery serve``, the comment
and the hashtags.

Nothing here touches the network (``open_in_josm`` does, when asked).
"""

from __future__ import annotations

import functools
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode
from xml.sax.saxutils import escape, quoteattr

import requests

from ..errors import MapathonError, UsageMistake
from ..names import slug
from . import sources as srcmod
from .mbtiles import Reader, cache_path

META_HASHTAGS = "hashtags"
DEFAULT_TILES_URL = "http://127.0.0.1:8001"
DEFAULT_JOSM_URL = "http://127.0.0.1:8111"
ID_URL = "https://www.openstreetmap.org/edit"
DATA_MARGIN_M = 50  # the existing data around a task that volunteers see in JOSM, in metres


def parse_hashtags(text: str) -> list[str]:
    tags = []
    for part in re.split(r"[\s,;]+", text or ""):
        part = part.strip()
        if not part:
            continue
        tag = "#" + part.lstrip("#")
        if not re.fullmatch(r"#[\w\-]{1,64}", tag):
            raise MapathonError(f"--hashtags: {part!r} is not a hashtag (letters, digits, '-' and '_')")
        if tag not in tags:
            tags.append(tag)
    if not tags:
        raise MapathonError("--hashtags: give at least one hashtag, e.g. '#mapathon #dianguirde'")
    return tags


def hashtags(project) -> list[str]:
    stored = project.meta(META_HASHTAGS)
    return parse_hashtags(stored) if stored else ["#mapathon", f"#{slug(project.name)}"]


def set_hashtags(project, text: str, *, actor: str = "organizer") -> list[str]:
    tags = parse_hashtags(text)
    with project.transaction():
        project.set_meta(META_HASHTAGS, " ".join(tags))
        project.record(actor=actor, action="project.hashtags", data={"hashtags": tags})
    return tags


def cache_format(project, source_name: str) -> str:
    path = cache_path(project.path, source_name)
    if path.is_file():
        return Reader(path).metadata().get("format", "jpg")
    return "jpg"


def tile_template(tiles_url: str, source_name: str, ext: str = "jpg") -> str:
    """The XYZ template of a cache as ``imagery serve`` publishes it."""
    return f"{tiles_url.rstrip('/')}/tiles/{source_name}/{{zoom}}/{{x}}/{{y}}.{ext}"


# -- task boundaries ------------------------------------------------------------------------------------


def _rings(geom) -> list[list[tuple[float, float]]]:
    polys = [geom] if geom.geom_type == "Polygon" else list(getattr(geom, "geoms", []))
    rings = []
    for p in polys:
        if p.geom_type != "Polygon" or p.is_empty:
            continue
        rings.append(list(p.exterior.coords))
        rings.extend(list(r.coords) for r in p.interiors)
    return rings


def boundary_osm(task, project_name: str) -> str:
    """The task boundary as JOSM XML: closed ways with negative ids, never to be uploaded."""
    lines = ["<?xml version='1.0' encoding='UTF-8'?>",
             "<osm version='0.6' generator='mapathon' upload='never' download='never'>"]
    nid = wid = 0
    ways = []
    for ring in _rings(task.geom):
        ids = []
        for lon, lat in ring[:-1]:
            nid -= 1
            ids.append(nid)
            lines.append(f"<node id='{nid}' lat='{lat:.7f}' lon='{lon:.7f}'/>")
        ids.append(ids[0])
        wid -= 1
        ways.append((wid, ids))
    for w, ids in ways:
        lines.append(f"<way id='{w}'>" + "".join(f"<nd ref='{i}'/>" for i in ids)
                     + f"<tag k='name' v={quoteattr(f'Task {task.id} ({task.key}) of {project_name}')}/>"
                     + "<tag k='mapathon:task_boundary' v='yes'/></way>")
    lines.append("</osm>")
    return "\n".join(lines)


def boundary_gpx(task, project_name: str) -> str:
    """The task boundary as a GPX track (iD shows it as an overlay, as from the Tasking Manager)."""
    segs = []
    for ring in _rings(task.geom):
        segs.append("<trkseg>" + "".join(f'<trkpt lat="{lat:.7f}" lon="{lon:.7f}"/>' for lon, lat in ring)
                    + "</trkseg>")
    name = escape(f"Task {task.id} ({task.key}) of {project_name}")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<gpx version="1.1" creator="mapathon" xmlns="http://www.topografix.com/GPX/1/1">'
            f"<trk><name>{name}</name>{''.join(segs)}</trk></gpx>\n")


# -- editor requests ------------------------------------------------------------------------------------


@dataclass
class EditorSetup:
    task: object
    source: srcmod.Source
    tiles: str  # XYZ template of the local cache
    comment: str
    hashtags: list[str]
    warnings: list[str]
    tiles_url: str = DEFAULT_TILES_URL  # where 'imagery serve' (or the room server) answers


def setup(project, task, *, source: str | None = None, tiles_url: str = DEFAULT_TILES_URL,
          hashtags_text: str | None = None) -> EditorSetup:
    src = srcmod.get(project, source)
    warnings = []
    if not cache_path(project.path, src.name).is_file():
        warnings.append(f"no imagery cache for {src.name} yet: run 'mapathon imagery fetch --source {src.name}' "
                        "(or 'imagery import') and 'mapathon imagery serve' before opening the editor")
    tags = parse_hashtags(hashtags_text) if hashtags_text else hashtags(project)
    where = f" — {', '.join(task.villages)}" if task.villages else ""
    comment = f"{project.name}: task {task.id} ({task.key}){where} {' '.join(tags)}"
    if not re.match(r"^https?://[^/\s]+", tiles_url):
        raise UsageMistake("give the http:// address of 'mapathon imagery serve'", field="tiles_url", value=tiles_url)
    ext = cache_format(project, src.name)
    return EditorSetup(task, src, tile_template(tiles_url, src.name, ext), comment, tags, warnings, tiles_url)


def josm_urls(project, s: EditorSetup, *, josm_url: str = DEFAULT_JOSM_URL, download: bool = False) -> list[tuple[str, str]]:
    """The remote-control requests, in order, as (what, URL)."""
    t, base = s.task, josm_url.rstrip("/")
    west, south, east, north = t.geom.bounds
    title = f"{s.source.title} (offline cache)"
    # url must come last: older JOSM versions read everything after url= as the URL
    imagery = urlencode({"title": title, "type": "tms", "min_zoom": s.source.min_zoom,
                         "max_zoom": s.source.max_zoom}) + "&url=" + quote(s.tiles, safe="")
    boundary = urlencode({
        "new_layer": "true",
        "layer_name": f"Boundary of task {t.id} ({t.key}) — do not edit or upload",
        "layer_locked": "true",
        "upload_policy": "never",
        "download_policy": "never",
        # no mime_type: JOSM 18646 leaves the layer empty unless it is its own new type, older
        # versions know only the old one; without it, every version reads the data as OSM XML
        "data": boundary_osm(t, project.name),
    })
    # the hashtags are in the comment already: JOSM would append changeset_hashtags to it a second time
    changeset = {"changeset_comment": s.comment, "changeset_source": s.source.title}
    bbox = {"left": f"{west:.7f}", "right": f"{east:.7f}", "top": f"{north:.7f}", "bottom": f"{south:.7f}"}
    layer = f"Task {t.id} ({t.key}) edits"
    out = [("imagery", f"{base}/imagery?{imagery}"), ("task boundary", f"{base}/load_data?{boundary}")]
    if s.source.name != "scans" and cache_path(project.path, "scans").is_file():  # photos of annotated pages
        out.insert(1, ("scans", f"{base}/imagery?" + urlencode({"title": "Field papers (scans)", "type": "tms",
                       "min_zoom": 0, "max_zoom": 22}) + "&url=" + quote(tile_template(
                           s.tiles_url, "scans", cache_format(project, "scans")), safe="")))
    data = existing_data(project, t, s.warnings)
    served = f"{s.tiles_url.rstrip('/')}/tasks/{t.id}"
    if data is not None and data.total("new"):
        # url last, as for the imagery
        out.append((f"mapped in this project, not uploaded yet ({data.total('new')} objects)",
                    f"{base}/import?" + urlencode({
                        "new_layer": "true",
                        "layer_name": f"Task {t.id} ({t.key}): mapped in this project, not uploaded yet — do not edit",
                        "layer_locked": "true", "upload_policy": "never", "download_policy": "never"})
                    + "&url=" + quote(f"{served}/new.osm", safe="")))
    if download:
        out.append(("OSM data, zoom and changeset", f"{base}/load_and_zoom?" + urlencode(
            {**bbox, "new_layer": "true", "layer_name": layer, **changeset})))
    else:
        if data is not None and data.total("editable"):
            out.append((f"layer to map in ({data.total('editable')} existing objects)", f"{base}/import?"
                        + urlencode({"new_layer": "true", "layer_name": layer})
                        + "&url=" + quote(f"{served}/data.osm", safe="")))
        else:
            empty = "<?xml version='1.0' encoding='UTF-8'?><osm version='0.6' generator='mapathon'></osm>"
            out.append(("layer to map in", f"{base}/load_data?" + urlencode(
                {"new_layer": "true", "layer_name": layer, "data": empty})))
        out.append(("zoom and changeset", f"{base}/zoom?" + urlencode({**bbox, **changeset})))
    return out


# -- the task's existing data -----------------------------------------------------------------------------


def data_box(task, margin_m: float = DATA_MARGIN_M) -> tuple[float, float, float, float]:
    """The task's bounds grown by *margin_m* metres on every side (west, south, east, north)."""
    west, south, east, north = task.geom.bounds
    dlat = margin_m / 111_320.0
    dlon = margin_m / (111_320.0 * max(math.cos(math.radians(max(abs(south), abs(north)))), 1e-6))
    return (west - dlon, max(south - dlat, -90.0), east + dlon, min(north + dlat, 90.0))


@functools.lru_cache(maxsize=32)
def _box_data(path: str, _mtime_ns: int, _size: int, box: tuple):
    from ..osm.josm import box_data

    return box_data(path, box)


def existing_data(project, task, warnings: list[str] | None = None, *, margin_m: float = DATA_MARGIN_M):
    """The task's existing data (``mapathon.osm.josm.BoxData``) from the project's latest data, or
    None when the project has no merge yet (then the reason goes to *warnings*).

    Kept in memory per file version and task: the room server answers many volunteers."""
    from ..osm.submit import latest_data

    try:
        path = Path(latest_data(project))
    except MapathonError as e:
        if warnings is not None:
            warnings.append(f"{e}: the layer to map in is empty, volunteers will not see the houses and wells "
                            "already mapped")
        return None
    st = path.stat()
    try:
        return _box_data(str(path), st.st_mtime_ns, st.st_size,
                         tuple(round(v, 7) for v in data_box(task, margin_m)))
    except RuntimeError as e:  # libosmium reports a damaged PBF as RuntimeError
        raise MapathonError(f"{path}: cannot read the project's latest data ({e}); run 'mapathon merge' again") \
            from None


def existing_data_osm(project, task, layer: str) -> bytes:
    """The JOSM file of one layer of the task's existing data: ``data`` (the layer to map in) or
    ``new`` (mapped in this project, not uploaded yet). Empty OSM files when the project has no merge."""
    from ..osm.josm import JosmXmlWriter

    data = existing_data(project, task)
    if data is not None:
        return data.editable if layer == "data" else data.new
    import io

    buf = io.BytesIO()
    w = JosmXmlWriter(buf, upload=None if layer == "data" else "never")
    w.close()
    return buf.getvalue()


def map_zoom(task) -> int:
    """An editor zoom that shows the whole task on a ~1000-pixel-wide screen."""
    if task.z is not None:
        return min(task.z + 1, 20)
    west, south, east, north = task.geom.bounds
    span = max(east - west, 1e-9)
    return max(1, min(20, int(math.floor(math.log2(800 * 360 / (256 * span))))))


def id_url(project, s: EditorSetup, *, tiles_url: str = DEFAULT_TILES_URL, editor_url: str = ID_URL) -> str:
    t = s.task
    c = t.geom.centroid
    params = {
        "map": f"{map_zoom(t)}/{c.y:.6f}/{c.x:.6f}",
        "background": f"custom:{s.tiles}",
        "comment": s.comment,
        "hashtags": ",".join(s.hashtags),
        "source": s.source.title,
        "gpx": f"{tiles_url.rstrip('/')}/tasks/{t.id}.gpx",
        "disable_features": "boundaries",
    }
    return f"{editor_url}?editor=id#" + urlencode(params, quote_via=quote, safe="")


def open_in_josm(urls: list[tuple[str, str]], *, timeout: float = 10.0, pause: float = 0.3) -> None:
    """Send the requests to JOSM's remote control, in order."""
    for i, (what, url) in enumerate(urls):
        try:
            r = requests.get(url, timeout=timeout)
        except requests.exceptions.RequestException:
            host = url.split("/")[2]
            raise MapathonError(
                f"JOSM is not answering on {host}: start JOSM and tick Preferences > Remote Control "
                "> Enable remote control (and 'Import data from URL' / 'Load imagery layers')") from None
        if r.status_code != 200:
            raise MapathonError(f"JOSM refused the {what} request (HTTP {r.status_code}: {r.text.strip()[:200]})")
        if i + 1 < len(urls):
            time.sleep(pause)

