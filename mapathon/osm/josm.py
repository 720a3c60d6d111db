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
from .readers import osmium_refs


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


# -- the existing data of a box, as JOSM layers ------------------------------------------------------------------


class BoxData:
    """The objects of an OSM file around a box, split into two JOSM layers.

    ``editable``: existing OpenStreetMap objects (positive id and a version) and everything they
    use, as JOSM XML with their real ids and versions: a normal layer whose edits JOSM saves and
    uploads as modifications. ``new``: objects that OpenStreetMap does not have yet (ids <= 0:
    other volunteers' merged work, not uploaded yet) and what they use, renumbered to negative ids
    in a file JOSM must never upload. ``counts`` gives the nodes, ways and relations of each.
    """

    def __init__(self, editable: bytes, new: bytes, counts: dict[str, dict[str, int]]):
        self.editable, self.new, self.counts = editable, new, counts

    def total(self, layer: str) -> int:
        return sum(self.counts[layer].values())


def _xml(rows_n, rows_w, rows_r, *, upload: str | None) -> bytes:
    import io

    buf = io.BytesIO()
    w = JosmXmlWriter(buf, upload=upload)
    for oid, lon, lat, tags, version in rows_n:
        w.node(oid, lon, lat, tags, version=version)
    for oid, refs, tags, version in rows_w:
        w.way(oid, refs, tags, version=version)
    for oid, members, tags, version in rows_r:
        w.relation(oid, members, tags, version=version)
    w.close()
    return buf.getvalue()


_KIND = {"n": "node", "w": "way", "r": "relation"}


def box_data(path, bbox: tuple[float, float, float, float]) -> BoxData:
    """The objects of the OSM file *path* in *bbox* (west, south, east, north), with complete ways.

    Nodes in the box, the ways using one of them (with all their nodes, even outside the box) and
    the relations with such a node or way as a member (members outside are left out: JOSM shows
    them as incomplete). Read with osmium; the nodes outside the box come from a second pass
    through osmium's C++ id filter. *path* is sorted (as osmium and ``mapathon merge`` write files).
    """
    import osmium

    west, south, east, north = bbox
    nodes: dict[int, tuple] = {}  # id -> (lon, lat, tags, version)
    ways: dict[int, tuple] = {}  # id -> (refs, tags, version)
    rels: dict[int, tuple] = {}  # id -> (members, tags, version)
    for o in osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY | osmium.osm.RELATION):
        if o.is_node():
            loc = o.location
            if not loc.valid():
                continue
            lon, lat = loc.lon, loc.lat
            if west <= lon <= east and south <= lat <= north:
                nodes[o.id] = (lon, lat, {t.k: t.v for t in o.tags}, o.version)
        elif o.is_way():
            refs = osmium_refs(o)
            if any(r in nodes for r in refs):
                ways[o.id] = (refs, {t.k: t.v for t in o.tags}, o.version)
        elif o.is_relation():
            members = tuple((m.type, m.ref, m.role) for m in o.members)
            if any((t == "n" and r in nodes) or (t == "w" and r in ways) or (t == "r" and r in rels)
                   for t, r, _ in members):
                rels[o.id] = (members, {t.k: t.v for t in o.tags}, o.version)
    outside = {r for refs, _, _ in ways.values() for r in refs if r not in nodes}
    positive, negative = {r for r in outside if r > 0}, {r for r in outside if r <= 0}

    def add(o) -> None:
        loc = o.location
        if loc.valid():
            nodes[o.id] = (loc.lon, loc.lat, {t.k: t.v for t in o.tags}, o.version)

    if negative:  # osmium's id filter takes ids > 0 only; a sorted file has the new nodes first
        for o in osmium.FileProcessor(str(path), osmium.osm.NODE):
            if o.id > 0:
                break
            if o.id in negative:
                add(o)
    if positive:
        for o in osmium.FileProcessor(str(path), osmium.osm.NODE).with_filter(osmium.filter.IdFilter(positive)):
            add(o)

    # editable: an existing object (id > 0, with a version) whose nodes are all editable too
    ok_n = {i for i, n in nodes.items() if i > 0 and n[3]}
    ok_w = {i for i, w in ways.items() if i > 0 and w[2] and all(r in ok_n for r in w[0])}
    ok_r = {i for i, r in rels.items() if i > 0 and r[2] and all(
        ref > 0 and (t != "n" or ref in ok_n or ref not in nodes) and (t != "w" or ref in ok_w or ref not in ways)
        for t, ref, _ in r[0])}
    new_w = [i for i in ways if i not in ok_w]
    new_r = [i for i in rels if i not in ok_r]
    used_by_new = {r for i in new_w for r in ways[i][0]}
    used_by_ok = {r for i in ok_w for r in ways[i][0]}
    # a node goes where its ways go; a node no selected way uses goes by its own id
    ed_n = sorted(i for i in ok_n if i in used_by_ok or i not in used_by_new or nodes[i][2])
    new_n = sorted(i for i in nodes if i in used_by_new or i not in ok_n)
    edit = _xml([(i, *nodes[i]) for i in ed_n],
                [(i, *ways[i]) for i in sorted(ok_w)],
                [(i, [(_KIND[t], r, role) for t, r, role in rels[i][0]], *rels[i][1:]) for i in sorted(ok_r)],
                upload=None)

    # new: renumbered to negative ids, never uploaded
    ids: dict[tuple[str, int], int] = {}

    def nid(kind: str, i: int) -> int:
        return ids.setdefault((kind, i), -(len(ids) + 1))

    rows_n = [(nid("n", i), *nodes[i][:3], None) for i in new_n]
    rows_w = [(nid("w", i), [ids[("n", r)] for r in ways[i][0] if ("n", r) in ids], ways[i][1], None)
              for i in sorted(new_w)]
    for i in sorted(new_r):
        nid("r", i)
    rows_r = [(ids[("r", i)], [(_KIND[t], ids[(t, r)], role) for t, r, role in rels[i][0] if (t, r) in ids],
               rels[i][1], None) for i in sorted(new_r)]
    rows_r = [row for row in rows_r if row[1]]
    new = _xml(rows_n, rows_w, rows_r, upload="never")
    counts = {"editable": {"nodes": len(ed_n), "ways": len(ok_w), "relations": len(ok_r)},
              "new": {"nodes": len(rows_n), "ways": len(rows_w), "relations": len(rows_r)}}
    return BoxData(edit, new, counts)
