"""Imagery sources: built-in ones, custom JOSM/Tasking Manager strings, the project's default.

A custom source is written as JOSM and the Tasking Manager write imagery::

    tms[19]:https://example.org/{zoom}/{x}/{y}.jpg      max zoom 19
    tms[12,20]:https://example.org/{z}/{x}/{-y}.png     zooms 12-20, TMS row numbering
    https://example.org/a{quadkey}.jpeg                 a plain template is TMS/XYZ
    wms:https://example.org/wms?SERVICE=WMS&REQUEST=GetMap&LAYERS=x&SRS={proj}&BBOX={bbox}&WIDTH={width}&HEIGHT={height}&FORMAT=image/jpeg

Placeholders: ``{zoom}``/``{z}``, ``{x}``, ``{y}``, ``{-y}`` (row counted from the south),
``{quadkey}``, ``{switch:a,b,c}`` (one of the server names, picked per tile) and, for WMS,
``{bbox}``, ``{w}``/``{s}``/``{e}``/``{n}``, ``{width}``, ``{height}``, ``{proj}`` (always EPSG:3857:
the cache is web-mercator tiles).

Custom sources and the default are stored in the project (meta keys ``imagery.sources``,
``imagery.default``), so they travel with the project folder.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

import mercantile

from ..errors import MapathonError

META_SOURCES = "imagery.sources"
META_DEFAULT = "imagery.default"
FALLBACK_DEFAULT = "esri-world-imagery"
TILE_SIZE = 256
MAX_ZOOM = 22
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_TMS_PLACEHOLDERS = {"zoom", "z", "x", "y", "-y", "quadkey"}
_WMS_PLACEHOLDERS = {"bbox", "w", "s", "e", "n", "width", "height", "proj"}
_MERC = 20037508.342789244


@dataclass(frozen=True)
class Source:
    name: str  # slug: also the cache file name
    title: str
    type: str  # "tms" (XYZ, {-y}, {quadkey}), "wms", or "local" (tiles imported from a disk, no URL)
    url: str | None
    min_zoom: int = 0
    max_zoom: int = 19
    licence: str = ""
    attribution: str = ""
    terms_url: str = ""
    note: str = ""
    builtin: bool = field(default=False, compare=False)

    def tile_url(self, z: int, x: int, y: int) -> str:
        """The URL of tile z/x/y (XYZ numbering)."""
        if self.url is None:
            raise MapathonError(f"imagery source {self.name}: has no URL (imported tiles only); nothing to fetch")
        return _expand(self.url, self.type, z, x, y)

    def josm_string(self) -> str:
        """The source as a JOSM/Tasking Manager imagery string."""
        if self.url is None:
            return ""
        return f"{self.type}[{self.min_zoom},{self.max_zoom}]:{self.url}"

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("builtin")
        return d


BUILTIN: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "esri-world-imagery", "Esri World Imagery", "tms",
            "https://server.arcgisonline.com/ArcGIS/rest/services/World_Imagery/MapServer/tile/{zoom}/{y}/{x}",
            0, 19,
            licence="Esri terms of use; Esri has allowed tracing into OpenStreetMap",
            attribution="Esri, Maxar, Earthstar Geographics, and the GIS User Community",
            terms_url="https://wiki.openstreetmap.org/wiki/Esri",
            note="Usually the sharpest free imagery in rural Mali; check the capture date in the editor.",
            builtin=True,
        ),
        Source(
            "esri-world-imagery-clarity", "Esri World Imagery (Clarity) Beta", "tms",
            "https://clarity.maptiles.arcgis.com/arcgis/rest/services/World_Imagery/MapServer/tile/{zoom}/{y}/{x}",
            0, 19,
            licence="Esri terms of use; Esri has allowed tracing into OpenStreetMap",
            attribution="Esri, Maxar, Earthstar Geographics, and the GIS User Community",
            terms_url="https://wiki.openstreetmap.org/wiki/Esri",
            note="Older but often less cloudy captures than the default Esri layer.",
            builtin=True,
        ),
        Source(
            "bing", "Bing aerial imagery", "tms",
            "https://ecn.{switch:t0,t1,t2,t3}.tiles.virtualearth.net/tiles/a{quadkey}.jpeg?g=1",
            1, 19,
            licence="Microsoft has allowed tracing into OpenStreetMap (Bing imagery for OSM)",
            attribution="© Microsoft Corporation (Bing)",
            terms_url="https://wiki.openstreetmap.org/wiki/Bing_Maps",
            builtin=True,
        ),
        Source(
            "eox-s2cloudless-2016", "Sentinel-2 cloudless 2016 by EOX", "tms",
            "https://tiles.maps.eox.at/wmts/1.0.0/s2cloudless_3857/default/g/{zoom}/{y}/{x}.jpg",
            0, 14,
            licence="CC BY 4.0",
            attribution="Sentinel-2 cloudless - https://s2maps.eu by EOX IT Services GmbH "
                        "(Contains modified Copernicus Sentinel data 2016)",
            terms_url="https://s2maps.eu",
            note="10 m pixels: for the big picture (rivers, fields, village extents), not buildings.",
            builtin=True,
        ),
    )
}


def check_name(name: str) -> str:
    name = (name or "").strip().lower()
    if not _NAME.match(name):
        raise MapathonError(
            f"imagery source name {name!r}: use 1-63 lowercase letters, digits, '.', '_' or '-' (it names the cache file)"
        )
    return name


def parse(spec: str, name: str, *, title: str | None = None, licence: str = "", attribution: str = "",
          terms_url: str = "") -> Source:
    """A :class:`Source` from a JOSM/Tasking Manager imagery string."""
    text = (spec or "").strip()
    name = check_name(name)
    m = re.match(r"^(tms|wms|bing|scanex|wmts)(\[([^\]]*)\])?:(.*)$", text, re.IGNORECASE | re.DOTALL)
    if m:
        kind, zooms, url = m.group(1).lower(), m.group(3), m.group(4).strip()
    elif re.match(r"^https?://", text, re.IGNORECASE):
        kind, zooms, url = ("wms" if "{bbox}" in text.lower() else "tms"), None, text
    else:
        raise MapathonError(
            f"imagery {text!r}: not an imagery string; write tms[MAXZOOM]:URL, tms[MIN,MAX]:URL or wms:URL "
            "(as JOSM and the Tasking Manager do)"
        )
    if kind not in ("tms", "wms"):
        raise MapathonError(f"imagery {text!r}: '{kind}' sources are not supported; use tms: or wms:")
    if not re.match(r"^https?://[^/\s]+", url, re.IGNORECASE):
        raise MapathonError(f"imagery {text!r}: the URL must start with http:// or https://")
    _check_host(url, text)
    min_zoom, max_zoom = (0, 19) if kind == "tms" else (0, 20)
    if zooms is not None and zooms.strip():
        try:
            parts = [int(p) for p in zooms.split(",")]
        except ValueError:
            raise MapathonError(f"imagery {text!r}: zooms [{zooms}] must be [MAX] or [MIN,MAX]") from None
        if len(parts) == 1:
            max_zoom = parts[0]
        elif len(parts) == 2:
            min_zoom, max_zoom = parts
        else:
            raise MapathonError(f"imagery {text!r}: zooms [{zooms}] must be [MAX] or [MIN,MAX]")
    if not 0 <= min_zoom <= max_zoom <= MAX_ZOOM:
        raise MapathonError(f"imagery {text!r}: zooms {min_zoom}-{max_zoom} must be within 0-{MAX_ZOOM}, min <= max")
    _check_placeholders(url, kind, text)
    return Source(name, title or name, kind, url, min_zoom, max_zoom, licence=licence, attribution=attribution,
                  terms_url=terms_url)


def _check_placeholders(url: str, kind: str, text: str) -> None:
    found = [p.lower() for p in _PLACEHOLDER.findall(url)]
    allowed = _TMS_PLACEHOLDERS if kind == "tms" else _WMS_PLACEHOLDERS
    bad = [p for p in found if p not in allowed and not p.startswith("switch:")]
    if bad:
        raise MapathonError(
            f"imagery {text!r}: unsupported placeholder {{{bad[0]}}} for a {kind} source "
            f"(supported: {', '.join('{' + p + '}' for p in sorted(allowed))}, {{switch:a,b}})"
        )
    if kind == "tms":
        has_xy = {"x"} <= set(found) and ({"y", "-y"} & set(found)) and ({"z", "zoom"} & set(found))
        if not has_xy and "quadkey" not in found:
            raise MapathonError(f"imagery {text!r}: a tms URL needs {{zoom}}, {{x}} and {{y}} (or {{-y}}), or {{quadkey}}")
    elif "bbox" not in found and not {"w", "s", "e", "n"} <= set(found):
        raise MapathonError(f"imagery {text!r}: a wms URL needs {{bbox}}")


def _check_host(url: str, text: str) -> None:
    from urllib.parse import urlsplit

    plain = re.sub(r"\{switch:([^,}]*)[^}]*\}", r"\1", url, flags=re.IGNORECASE)
    parts = urlsplit(plain)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or parts.netloc.endswith(":") or port == -1 or port == 0:
        raise MapathonError(f"imagery {text!r}: {parts.netloc!r} is not a valid host[:port]")


def quadkey(z: int, x: int, y: int) -> str:
    return mercantile.quadkey(mercantile.Tile(x, y, z)) if z > 0 else ""


def _expand(url: str, kind: str, z: int, x: int, y: int) -> str:
    values: dict[str, str] = {}
    if kind == "wms":
        n = 2**z
        size = 2 * _MERC / n
        w, e = -_MERC + x * size, -_MERC + (x + 1) * size
        north, south = _MERC - y * size, _MERC - (y + 1) * size
        values = {"bbox": f"{w:.6f},{south:.6f},{e:.6f},{north:.6f}", "w": f"{w:.6f}", "s": f"{south:.6f}",
                  "e": f"{e:.6f}", "n": f"{north:.6f}", "width": str(TILE_SIZE), "height": str(TILE_SIZE),
                  "proj": "EPSG:3857"}
    else:
        values = {"zoom": str(z), "z": str(z), "x": str(x), "y": str(y), "-y": str(2**z - 1 - y)}
        if "{quadkey}" in url.lower():
            values["quadkey"] = quadkey(z, x, y)

    def sub(m: re.Match) -> str:
        key = m.group(1)
        low = key.lower()
        if low.startswith("switch:"):
            choices = [c for c in key[7:].split(",") if c]
            return choices[(x + y) % len(choices)] if choices else ""
        return values.get(low, m.group(0))

    return _PLACEHOLDER.sub(sub, url)


# -- the project's registry ------------------------------------------------------------------------------


def _custom(project) -> dict[str, dict]:
    raw = project.meta(META_SOURCES)
    return json.loads(raw) if raw else {}


def all_sources(project) -> dict[str, Source]:
    """Built-in sources, then the project's own (a project source may not reuse a built-in name)."""
    out = dict(BUILTIN)
    for name, d in sorted(_custom(project).items()):
        out[name] = Source(**{k: v for k, v in d.items() if k in Source.__dataclass_fields__ and k != "builtin"})
    return out


def get(project, name: str | None = None) -> Source:
    """A source by name, or the project's default."""
    name = name or default_name(project)
    sources = all_sources(project)
    key = (name or "").strip().lower()
    if key not in sources:
        raise MapathonError(f"imagery source {name!r}: unknown (sources: {', '.join(sources)}); "
                            "add one with 'mapathon imagery add NAME tms[19]:URL'")
    return sources[key]


def add(project, source: Source, *, replace: bool = False, actor: str = "organizer") -> Source:
    """Register a custom source in the project."""
    if source.name in BUILTIN:
        raise MapathonError(f"imagery source {source.name}: is a built-in source; choose another name")
    with project.transaction():
        custom = _custom(project)
        if source.name in custom and not replace and Source(**custom[source.name]) != source:
            raise MapathonError(f"imagery source {source.name}: already exists with another URL (use --replace)")
        custom[source.name] = source.as_dict()
        project.set_meta(META_SOURCES, json.dumps(custom, ensure_ascii=False, sort_keys=True))
        project.record(actor=actor, action="imagery.add", data=source.as_dict())
    return source


def default_name(project) -> str:
    return project.meta(META_DEFAULT) or FALLBACK_DEFAULT


def set_default(project, name: str, *, actor: str = "organizer") -> Source:
    src = get(project, name)
    with project.transaction():
        project.set_meta(META_DEFAULT, src.name)
        project.record(actor=actor, action="imagery.default", data={"source": src.name})
    return src
