"""Writing OSM XML as JOSM reads it.

libosmium's XML writer cannot write JOSM's own attributes: ``action``
(``modify``/``delete``) on objects and ``upload`` on the root element, which
JOSM needs to upload edits later or to refuse uploading helper layers. This
small streaming writer (the standard library's XMLGenerator, so escaping is
right) writes exactly OSM API 0.6 XML plus those attributes.
"""

from __future__ import annotations

from typing import IO, Iterable, Mapping
from xml.sax.saxutils import XMLGenerator

from .. import __version__


class JosmXmlWriter:
    """Stream nodes, ways and relations into a JOSM-compatible ``.osm`` file.

    ``upload`` is ``None`` (normal data), ``"never"`` (a helper layer JOSM
    must not upload) or ``"false"``.
    """

    def __init__(self, out: IO[bytes], *, upload: str | None = None, generator: str | None = None):
        self._x = XMLGenerator(out, encoding="utf-8", short_empty_elements=True)
        self._x.startDocument()
        attrs = {"version": "0.6", "generator": generator or f"mapathon {__version__}"}
        if upload is not None:
            attrs["upload"] = upload
        self._x.characters("\n")
        self._x.startElement("osm", attrs)
        self._x.characters("\n")

    @staticmethod
    def _attrs(oid: int, version: int | None, action: str | None, extra: Mapping[str, str] | None) -> dict:
        attrs = {"id": str(oid)}
        if action:
            attrs["action"] = action
        if version is not None and oid > 0:
            attrs["version"] = str(version)
        attrs["visible"] = "true"
        if extra:
            attrs.update({k: str(v) for k, v in extra.items() if v is not None})
        return attrs

    def _tags(self, tags: Mapping[str, str] | None) -> None:
        for k, v in (tags or {}).items():
            self._x.characters("    ")
            self._x.startElement("tag", {"k": str(k), "v": str(v)})
            self._x.endElement("tag")
            self._x.characters("\n")

    def node(self, oid: int, lon: float, lat: float, tags: Mapping[str, str] | None = None, *,
             version: int | None = None, action: str | None = None, extra: Mapping[str, str] | None = None) -> None:
        attrs = self._attrs(oid, version, action, extra)
        attrs["lat"] = f"{lat:.7f}"
        attrs["lon"] = f"{lon:.7f}"
        self._x.characters("  ")
        self._x.startElement("node", attrs)
        if tags:
            self._x.characters("\n")
            self._tags(tags)
            self._x.characters("  ")
        self._x.endElement("node")
        self._x.characters("\n")

    def way(self, oid: int, refs: Iterable[int], tags: Mapping[str, str] | None = None, *,
            version: int | None = None, action: str | None = None, extra: Mapping[str, str] | None = None) -> None:
        self._x.characters("  ")
        self._x.startElement("way", self._attrs(oid, version, action, extra))
        self._x.characters("\n")
        for r in refs:
            self._x.characters("    ")
            self._x.startElement("nd", {"ref": str(r)})
            self._x.endElement("nd")
            self._x.characters("\n")
        self._tags(tags)
        self._x.characters("  ")
        self._x.endElement("way")
        self._x.characters("\n")

    def relation(self, oid: int, members: Iterable[tuple[str, int, str]], tags: Mapping[str, str] | None = None, *,
                 version: int | None = None, action: str | None = None,
                 extra: Mapping[str, str] | None = None) -> None:
        """*members* are (type, ref, role) with type one of node, way, relation."""
        self._x.characters("  ")
        self._x.startElement("relation", self._attrs(oid, version, action, extra))
        self._x.characters("\n")
        for mtype, ref, role in members:
            self._x.characters("    ")
            self._x.startElement("member", {"type": mtype, "ref": str(ref), "role": role or ""})
            self._x.endElement("member")
            self._x.characters("\n")
        self._tags(tags)
        self._x.characters("  ")
        self._x.endElement("relation")
        self._x.characters("\n")

    def close(self) -> None:
        self._x.endElement("osm")
        self._x.characters("\n")
        self._x.endDocument()
