"""Writing merged OSM objects: OPL (fed to libosmium), osmChange and JOSM XML.

* :func:`opl_bytes` serialises objects to OPL, the text format libosmium
  parses fastest; :mod:`mapathon.osm.merge` hands it to pyosmium's
  ``MergeInputReader`` so that the big base extract is merged in C++.
* :class:`OscWriter` writes an osmChange (``.osc``) upload file.
* :func:`write_josm` writes JOSM XML with ``action`` attributes through the
  project's one JOSM writer, :class:`mapathon.osm.josm.JosmXmlWriter`.
"""

from __future__ import annotations

import re
from typing import IO, Iterable, Mapping, Sequence

from .. import __version__
from .josm import JosmXmlWriter
from .readers import KIND_NAMES, NODE, RELATION, WAY, OsmObject

_OPL_BAD = re.compile(r"[\x00-\x20,=@%\x7f]")


def _esc(s: str) -> str:
    if not _OPL_BAD.search(s):
        return s
    return "".join(f"%{ord(c):x}%" if (c <= " " or c in ",=@%\x7f") else c for c in s)


def _opl_head(o: OsmObject, timestamp: str | None) -> str:
    parts = [f"{o.kind}{o.id} v{o.version or 0} {'dV' if o.visible else 'dD'}"]
    meta = o.meta
    ts = timestamp
    if meta is not None:
        ts = ts or meta[0]
        if meta[3]:
            parts.append(f"c{meta[3]}")
        if meta[1]:
            parts.append(f"i{meta[1]}")
        if meta[2]:
            parts.append(f"u{_esc(meta[2])}")
    if ts:
        parts.append(f"t{ts}")
    return " ".join(parts)


def opl_line(o: OsmObject, timestamp: str | None = None) -> str:
    """One OPL line. *timestamp* overrides the object's own."""
    if o.meta is None and timestamp is None:
        head = f"{o.kind}{o.id} v{o.version or 0} {'dV' if o.visible else 'dD'}"
    else:
        head = _opl_head(o, timestamp)
    if not o.visible:
        return head
    tags = o.tags
    if tags:
        head += " T" + ",".join([f"{_esc(k)}={_esc(v)}" for k, v in tags.items()])
    kind = o.kind
    if kind == NODE:
        return f"{head} x{o.lon}e-7 y{o.lat}e-7"
    if kind == WAY:
        return f"{head} Nn" + ",n".join(map(str, o.refs)) if o.refs else f"{head} N"
    return f"{head} M" + ",".join([f"{t}{r}@{_esc(role)}" for t, r, role in o.members])


def opl_bytes(objects: Iterable[OsmObject], timestamps: Mapping[tuple[str, int], str | None] | None = None) -> bytes:
    """OPL text of *objects*; *timestamps* overrides the timestamp of some, by (kind, id).

    Coordinates are written as integers with an exponent (``x95262563e-7``), which libosmium
    parses exactly and Python formats several times faster than decimals.
    """
    timestamps = timestamps or {}
    lines = []
    add = lines.append
    for o in objects:
        # the common cases inline: nodes and ways, new or copied unchanged (what volunteers' files hold most)
        if o.visible and (o.action is None or o.id < 0 or not timestamps):
            kind = o.kind
            meta = o.meta
            if meta is None:
                head = f"{kind}{o.id} v{o.version or 0} dV"
            else:
                ts, uid, user, cs = meta
                head = f"{kind}{o.id} v{o.version or 0} dV c{cs or 0} i{uid or 0} u{_esc(user) if user else ''}"
                if ts:
                    head += f" t{ts}"
            tags = o.tags
            if kind == NODE:
                if tags:
                    head += " T" + ",".join([f"{_esc(k)}={_esc(v)}" for k, v in tags.items()])
                add(f"{head} x{o.lon}e-7 y{o.lat}e-7")
                continue
            if kind == WAY and o.refs:
                t = (" T" + ",".join([f"{_esc(k)}={_esc(v)}" for k, v in tags.items()])) if tags else ""
                add(f"{head}{t} Nn" + ",n".join(map(str, o.refs)))
                continue
        add(opl_line(o, timestamps.get((o.kind, o.id)) if timestamps else None))
    add("")
    return "\n".join(lines).encode("utf-8")


# -- ordering for upload files ---------------------------------------------------------------------


def _relations_children_first(rels: Sequence[OsmObject]) -> list[OsmObject]:
    """Relations ordered so that a relation comes after the relations it contains (among *rels*)."""
    by_id = {r.id: r for r in rels}
    out, state = [], {}

    def visit(r: OsmObject) -> None:
        stack = [(r, iter(r.members))]
        state[r.id] = 1
        while stack:
            cur, it = stack[-1]
            for t, ref, _role in it:
                if t == RELATION and ref in by_id and ref not in state:
                    state[ref] = 1
                    stack.append((by_id[ref], iter(by_id[ref].members)))
                    break
            else:
                stack.pop()
                state[cur.id] = 2
                out.append(cur)

    for r in rels:
        if r.id not in state:
            visit(r)
    return out


def _sort_key(o: OsmObject) -> tuple:
    return (o.id > 0, abs(o.id))


def upload_order(objects: Iterable[OsmObject]) -> dict[str, list[OsmObject]]:
    """Group changes as an upload needs them: create/modify nodes, ways, relations; delete in reverse."""
    groups: dict[str, dict[str, list[OsmObject]]] = {a: {NODE: [], WAY: [], RELATION: []}
                                                     for a in ("create", "modify", "delete")}
    for o in objects:
        groups[o.action][o.kind].append(o)
    out = {}
    for action, by_kind in groups.items():
        for lst in by_kind.values():
            lst.sort(key=_sort_key)
        rels = _relations_children_first(by_kind[RELATION])
        if action == "delete":
            out[action] = list(reversed(rels)) + by_kind[WAY] + by_kind[NODE]
        else:
            out[action] = by_kind[NODE] + by_kind[WAY] + rels
    return out


# -- osmChange ---------------------------------------------------------------------------------------


_XML_BAD = re.compile(r'[&<>"\n\r\t]')
_XML_ENT = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}


def _attr(v: str) -> str:
    """An XML attribute value, double-quoted and escaped."""
    if not _XML_BAD.search(v):
        return f'"{v}"'
    return '"' + _XML_BAD.sub(lambda m: _XML_ENT[m.group()], v) + '"'


class OscWriter:
    """Writes an osmChange document (``<create>``, ``<modify>``, ``<delete>``).

    Built as text (the objects are simple and many; the standard library's
    XMLGenerator is ten times slower); values are escaped by :func:`_attr`.
    """

    def __init__(self, out: IO[bytes], generator: str | None = None):
        self._out = out
        gen = generator or f"mapathon {__version__}"
        out.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<osmChange version="0.6" generator={_attr(gen)}>\n'
                  .encode("utf-8"))

    @staticmethod
    def _obj(o: OsmObject, action: str, fill: OsmObject | None, add) -> None:
        src = o if (o.visible or fill is None) else fill
        name = KIND_NAMES[o.kind]
        head = f'    <{name} id="{o.id}"'
        if action != "create" and o.version:
            head += f' version="{o.version}"'
        if o.kind == NODE and src.lon is not None:
            head += f' lat="{src.lat / 1e7:.7f}" lon="{src.lon / 1e7:.7f}"'
        if action == "delete" or not (o.tags or o.refs or o.members):
            add(head + "/>")
            return
        add(head + ">")
        for r in o.refs:
            add(f'      <nd ref="{r}"/>')
        for t, r, role in o.members:
            add(f'      <member type="{KIND_NAMES[t]}" ref="{r}" role={_attr(role or "")}/>')
        for k, v in o.tags.items():
            add(f"      <tag k={_attr(k)} v={_attr(v)}/>")
        add(f"    </{name}>")

    def write(self, changes: Iterable[OsmObject], fill: Mapping[tuple[str, int], OsmObject] | None = None) -> None:
        """Write all *changes* (objects with action create/modify/delete) in upload order.

        *fill* gives, for deletions, a full copy to take a deleted node's coordinates from.
        """
        fill = fill or {}
        lines: list[str] = []
        add = lines.append
        for action, objs in upload_order(changes).items():
            if not objs:
                continue
            add(f"  <{action}>")
            for o in objs:
                self._obj(o, action, fill.get((o.kind, o.id)) if not o.visible else None, add)
            add(f"  </{action}>")
        if lines:
            lines.append("")
            self._out.write("\n".join(lines).encode("utf-8"))

    def close(self) -> None:
        self._out.write(b"</osmChange>\n")


# -- JOSM --------------------------------------------------------------------------------------------


def _extra(o: OsmObject) -> dict | None:
    if not o.meta:
        return None
    ts, uid, user, cs = o.meta
    return {"timestamp": ts, "uid": uid, "user": user, "changeset": cs}


def write_josm(out: IO[bytes], changes: Iterable[OsmObject], context: Iterable[OsmObject] = (),
               fill: Mapping[tuple[str, int], OsmObject] | None = None) -> None:
    """JOSM XML: *changes* with their action (new objects as JOSM writes them: negative id,
    ``action="modify"``), then *context*: unchanged objects the changed ways need."""
    fill = fill or {}
    w = JosmXmlWriter(out)
    rows = [(o, o.action) for o in changes] + [(o, None) for o in context]
    order = {NODE: 0, WAY: 1, RELATION: 2}
    rows.sort(key=lambda r: (order[r[0].kind], r[0].id > 0, abs(r[0].id)))
    for o, action in rows:
        josm_action = {"create": "modify", "modify": "modify", "delete": "delete"}.get(action)
        src = o
        if not o.visible and (o.kind, o.id) in fill:
            src = fill[(o.kind, o.id)]
        version = o.version if o.id > 0 else None
        extra = None if action else _extra(o)
        if o.kind == NODE:
            if src.lon is None:
                continue  # a deletion whose coordinates nobody has: JOSM cannot load it
            w.node(o.id, src.lon / 1e7, src.lat / 1e7, src.tags, version=version, action=josm_action, extra=extra)
        elif o.kind == WAY:
            w.way(o.id, src.refs, src.tags, version=version, action=josm_action, extra=extra)
        else:
            w.relation(o.id, [(KIND_NAMES[t], r, role) for t, r, role in src.members], src.tags, version=version,
                       action=josm_action, extra=extra)
    w.close()
