"""Reading volunteers' OSM files: JOSM ``.osm`` XML, ``.osc`` osmChange and ``.osm.pbf``.

Each file may be gzip (``.gz``) or bzip2 (``.bz2``) compressed. A file is
read whole into :class:`OsmData` (contributions are small: the big extract
used as a merge base is streamed by :mod:`mapathon.osm.merge`, never read
here).

Why not libosmium for everything: it ignores JOSM's ``action`` attributes
(``modify``/``delete``), so a JOSM file would lose its deletions and
modification marks. XML is therefore stream-parsed here with the standard
library's expat, set up the way :mod:`defusedxml` sets it up: any document
type declaration, entity declaration or external entity reference stops the
parse with an error. OSM files never have a DTD, and without one no entity
can be declared, so entity expansion ("billion laughs", quadratic blow-up)
and external entities (local file disclosure) are refused, not expanded.
PBF goes through pyosmium (libosmium).

Coordinates are kept as osmium does, as integers in units of 1e-7 degree,
so that comparisons are exact.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import contextlib
import io
import pyexpat
import re
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MapathonError

NODE, WAY, RELATION = "n", "w", "r"
KINDS = (NODE, WAY, RELATION)
KIND_NAMES = {NODE: "node", WAY: "way", RELATION: "relation"}
KIND_OF_NAME = {v: k for k, v in KIND_NAMES.items()}

#: Accepted endings, longest first: (ending, container format, compression).
EXTENSIONS: tuple[tuple[str, str, str | None], ...] = (
    (".osm.pbf.gz", "pbf", "gz"),
    (".osm.pbf.bz2", "pbf", "bz2"),
    (".osm.gz", "osm", "gz"),
    (".osm.bz2", "osm", "bz2"),
    (".osc.gz", "osc", "gz"),
    (".osc.bz2", "osc", "bz2"),
    (".osm.pbf", "pbf", None),
    (".pbf", "pbf", None),
    (".osm", "osm", None),
    (".osc", "osc", None),
)
ACCEPTED = "a .osm (JOSM), .osc (osmChange) or .osm.pbf file, optionally ending in .gz or .bz2"

#: Ids must lie strictly between -MAX_ID and MAX_ID: real OSM ids are far below (about 1.3e10 in 2026),
#: new objects' ids <= 0 become NEG_BASE - id for libosmium, and SQLite and PBF hold 64-bit ids only.
MAX_ID = 1 << 52
#: Versions, user ids and changesets are 32-bit numbers in libosmium and PBF.
MAX_INT32 = (1 << 31) - 1
ID_RANGE = f"ids must lie between -{MAX_ID - 1} and {MAX_ID - 1}"

_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")


class OsmObject:
    """One OSM object as read from a file.

    ``action`` is ``"create"`` (a new object, id <= 0), ``"modify"``,
    ``"delete"`` or ``None`` (an object copied unchanged from OSM).
    ``visible`` is False for deletions. Coordinates are integers (1e-7 deg).
    ``refs`` are a way's node ids, ``members`` a relation's (kind, id, role).
    ``meta`` is (timestamp, uid, user, changeset), each possibly None.
    ``src`` is the index of the input it came from and ``orig`` its id there
    (ids of new objects are renumbered by the merge).
    """

    __slots__ = ("kind", "id", "version", "visible", "action", "tags", "lon", "lat", "refs", "members", "meta",
                 "src", "orig")

    def __init__(self, kind: str, oid: int, version: int | None, visible: bool, action: str | None, tags: dict,
                 lon: int | None = None, lat: int | None = None, refs: tuple = (), members: tuple = (),
                 meta: tuple | None = None, src: int = -1):
        self.kind = kind
        self.id = oid
        self.version = version
        self.visible = visible
        self.action = action
        self.tags = tags
        self.lon = lon
        self.lat = lat
        self.refs = refs
        self.members = members
        self.meta = meta
        self.src = src
        self.orig = oid

    @property
    def edited(self) -> bool:
        return self.action is not None

    @property
    def new(self) -> bool:
        return self.action == "create"

    def same_content(self, other: "OsmObject") -> bool:
        """Same state: both deleted, or same tags and same coordinates / nodes / members."""
        if self.visible != other.visible:
            return False
        if not self.visible:
            return True
        return (self.tags == other.tags and self.lon == other.lon and self.lat == other.lat
                and self.refs == other.refs and self.members == other.members)

    def copy(self) -> "OsmObject":
        o = OsmObject(self.kind, self.id, self.version, self.visible, self.action, self.tags, self.lon, self.lat,
                      self.refs, self.members, self.meta, self.src)
        o.orig = self.orig
        return o

    def label(self) -> str:
        return f"{KIND_NAMES[self.kind]} {self.orig}"

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return (f"OsmObject({KIND_NAMES[self.kind]} {self.id} v{self.version} {self.action or '-'}"
                f"{'' if self.visible else ' deleted'} tags={self.tags})")


@dataclass
class OsmData:
    """The objects of one input file, by kind then id."""

    name: str
    format: str  # e.g. "osm", "osc.gz", "pbf"
    objects: dict[str, dict[int, OsmObject]] = field(default_factory=lambda: {k: {} for k in KINDS})

    def count(self) -> int:
        return sum(len(d) for d in self.objects.values())

    def counts(self) -> dict[str, int]:
        """Objects by action: create, modify, delete, unchanged."""
        out = {"create": 0, "modify": 0, "delete": 0, "unchanged": 0}
        for d in self.objects.values():
            for o in d.values():
                out[o.action or "unchanged"] += 1
        return out


# -- file kinds ----------------------------------------------------------------------------------


def file_format(path: str | Path, *, name: str | None = None) -> tuple[str, str | None, str]:
    """(container, compression, normalised ending) from a file name, or a MapathonError."""
    label = name or str(path)
    lower = Path(path).name.lower()
    for ending, kind, comp in EXTENSIONS:
        if lower.endswith(ending) and len(lower) > len(ending):
            return kind, comp, ending
    raise MapathonError(f"{label}: unsupported file type; expected {ACCEPTED}")


#: Decompression limits (against "zip bombs": a few kilobytes that expand to gigabytes). A compressed
#: file may expand to at most MAX_UNCOMPRESSED_MB megabytes, and, above SMALL_MB, to at most MAX_RATIO
#: times its compressed size (OSM XML compresses about 10 to 25 times). Both can be changed with the
#: environment variables of the same name prefixed with MAPATHON_ (read at each file, so the room
#: server and the commands obey them alike).
MAX_UNCOMPRESSED_MB = 256
MAX_RATIO = 100
SMALL_MB = 16
_CHUNK = 1 << 20


def _limit(name: str, default: float) -> float:
    import os

    env = "MAPATHON_" + name
    raw = os.environ.get(env)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise MapathonError(f"{env}={raw!r}: must be a positive number")
    return value


def decompression_limit(compressed_size: int) -> int:
    """The most bytes a compressed file of *compressed_size* bytes may expand to."""
    cap = _limit("MAX_UNCOMPRESSED_MB", MAX_UNCOMPRESSED_MB) * 1e6
    ratio = _limit("MAX_RATIO", MAX_RATIO)
    return int(min(cap, max(SMALL_MB * 1e6, ratio * compressed_size)))


def _decompress(data: bytes, comp: str | None, label: str) -> bytes:
    if comp is None:
        if data[:2] == b"\x1f\x8b":
            raise MapathonError(f"{label}: this is a gzip-compressed file; its name should end in .gz")
        if data[:3] == b"BZh":
            raise MapathonError(f"{label}: this is a bzip2-compressed file; its name should end in .bz2")
        return data
    if comp == "gz" and data[:2] != b"\x1f\x8b":
        raise MapathonError(f"{label}: not gzip-compressed although its name ends in .gz")
    if comp == "bz2" and data[:3] != b"BZh":
        raise MapathonError(f"{label}: not bzip2-compressed although its name ends in .bz2")
    limit = decompression_limit(len(data))
    # Streamed, a megabyte at a time, so that a bomb is stopped at the limit, never expanded whole.
    parts: list[bytes] = []
    total = 0
    try:
        buf = io.BytesIO(data)
        with (gzip.GzipFile(fileobj=buf) if comp == "gz" else bz2.BZ2File(buf)) as f:
            while True:
                block = f.read(min(_CHUNK, limit + 1 - total))
                if not block:
                    break
                total += len(block)
                if total > limit:
                    raise MapathonError(
                        f"{label}: refused: it expands to more than {limit / 1e6:g} MB "
                        f"({len(data):,} compressed bytes); a mapathon file is never that big (a 'zip bomb'?). "
                        "If it is real, raise MAPATHON_MAX_UNCOMPRESSED_MB / MAPATHON_MAX_RATIO")
                parts.append(block)
    except (OSError, EOFError, zlib.error, ValueError) as e:
        raise MapathonError(f"{label}: damaged or truncated {comp} file ({e})") from None
    return b"".join(parts)


def _looks_like_pbf(data: bytes) -> bool:
    # A PBF starts with the 4-byte size of a BlobHeader whose type string (field 1) is "OSMHeader".
    if len(data) < 16:
        return False
    size = int.from_bytes(data[:4], "big")
    return 0 < size < 64 * 1024 and data[4] == 0x0A and data[5] == 9 and data[6:15] == b"OSMHeader"


RESAVE = "ask the volunteer to save their work again from JOSM (File > Save As, a .osm file)"
_MAGIC = {b"\x89PNG": "a PNG picture", b"\xff\xd8\xff": "a JPEG picture", b"GIF8": "a GIF picture",
          b"%PDF": "a PDF document", b"PK\x03\x04": "a zip archive (perhaps a Word or LibreOffice file)",
          b"\xd0\xcf\x11\xe0": "an old Office document"}


def _not_osm(data: bytes) -> str | None:
    """What a file obviously is when it is not OSM data (a picture, a web page...), else None."""
    for magic, what in _MAGIC.items():
        if data.startswith(magic):
            return what
    head = _sniff_text(data)[:200].lower()
    if head.startswith(b"<!doctype html") or head.startswith(b"<html"):
        return "a web page (HTML)"
    return None


def _sniff_text(data: bytes) -> bytes:
    """The first non-blank bytes of a text file, BOM removed."""
    head = data[:512]
    if head.startswith(codecs.BOM_UTF8):
        head = head[3:]
    return head.lstrip()


# -- reading -------------------------------------------------------------------------------------


def read_osm_file(path: str | Path, *, name: str | None = None, src: int = -1,
                  data: bytes | None = None) -> OsmData:
    """Read one contribution file; any problem is a MapathonError naming the file.

    *name* is the name shown in messages (default: the path); *data* the
    file's bytes if already read. The file itself is only read, never changed.
    """
    label = name or str(path)
    kind, comp, ending = file_format(path, name=name)
    if data is None:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise MapathonError(f"{label}: cannot read ({e.strerror or e})") from None
    if not data:
        raise MapathonError(f"{label}: empty file; {RESAVE}")
    what = _not_osm(data)
    if what:
        raise MapathonError(f"{label}: this is {what}, not an OpenStreetMap file; {RESAVE}")
    raw = _decompress(data, comp, label)
    if not raw:
        raise MapathonError(f"{label}: empty file; {RESAVE}")
    fmt = ending.lstrip(".").replace("osm.pbf", "pbf")
    out = OsmData(label, fmt)
    if kind == "pbf":
        if not _looks_like_pbf(raw):
            if _sniff_text(raw).startswith(b"<"):
                raise MapathonError(f"{label}: this is an XML file, not a PBF; name it .osm or .osc")
            raise MapathonError(f"{label}: not an OSM PBF file")
        _read_pbf(raw, out, src, label)
    else:
        if _looks_like_pbf(raw):
            raise MapathonError(f"{label}: this is a PBF file, not XML; its name should end in .osm.pbf")
        _read_xml(raw, kind, out, src, label)
    return out


def osmium_refs(o) -> tuple:
    """A pyosmium way's node ids (fast path through pyosmium's accessors, with a public fallback)."""
    nodes = o.nodes
    try:
        lst, data = nodes._list, nodes._pyosmium_data
        get = lst.get
        return tuple([get(data, i).ref for i in range(lst.size(data))])
    except AttributeError:  # pragma: no cover - other pyosmium versions
        return tuple(n.ref for n in nodes)


def osmium_meta(o) -> tuple | None:
    """(timestamp, uid, user, changeset) of a pyosmium object."""
    ts = o.timestamp
    ts = ts.isoformat()[:19] + "Z" if ts is not None and ts.year > 1970 else None
    uid, user, cs = o.uid, o.user, o.changeset
    if ts is None and not uid and not user and not cs:
        return None
    return (ts, uid or None, user or None, cs or None)


def from_osmium(o, kind: str, src: int = -1, action: str | None = None) -> OsmObject:
    """An :class:`OsmObject` from a pyosmium object (*kind* "n", "w" or "r")."""
    tags = {t.k: t.v for t in o.tags} if len(o.tags) else {}
    version = o.version or None
    if kind == NODE:
        loc = o.location
        ok = loc.valid()
        return OsmObject(NODE, o.id, version, o.visible, action, tags, loc.x if ok else None, loc.y if ok else None,
                         meta=osmium_meta(o), src=src)
    if kind == WAY:
        return OsmObject(WAY, o.id, version, o.visible, action, tags, refs=osmium_refs(o), meta=osmium_meta(o),
                         src=src)
    return OsmObject(RELATION, o.id, version, o.visible, action, tags,
                     members=tuple((m.type, m.ref, m.role) for m in o.members), meta=osmium_meta(o), src=src)


def _read_pbf(raw: bytes, out: OsmData, src: int, label: str) -> None:
    import osmium

    source = osmium.io.FileBuffer(raw, "pbf")
    objs = out.objects
    # PBF blocks are zlib-compressed inside the file: bound the objects as the decompression limit bounds
    # XML (about 100 bytes of XML per object)
    limit = decompression_limit(len(raw)) // 100
    count = 0
    try:
        for o in osmium.FileProcessor(source):
            count += 1
            if count > limit:
                raise MapathonError(
                    f"{label}: refused: more than {limit:,} objects in {len(raw):,} bytes; a mapathon file is never "
                    "that big (a 'zip bomb'?). If it is real, raise MAPATHON_MAX_UNCOMPRESSED_MB / MAPATHON_MAX_RATIO")
            oid = o.id
            if not -MAX_ID < oid < MAX_ID:
                raise MapathonError(f"{label}: object id {oid} is out of range ({ID_RANGE})")
            visible = o.visible
            if oid <= 0 and not visible:
                continue  # a new object deleted before upload: nothing to do
            action = "create" if oid <= 0 else (None if visible else "delete")
            kind = NODE if o.is_node() else (WAY if o.is_way() else (RELATION if o.is_relation() else None))
            if kind is None:
                continue
            ob = from_osmium(o, kind, src, action)
            if kind == NODE and visible and ob.lon is None:
                raise MapathonError(f"{label}: node {oid} has no valid coordinates")
            table = objs[kind]
            if oid in table:
                _put(table, ob, label)
            else:
                table[oid] = ob
    except MapathonError:
        raise
    except Exception as e:  # libosmium reports damaged PBF as RuntimeError
        raise MapathonError(f"{label}: damaged or truncated PBF file ({e})") from None


def _put(table: dict, ob: OsmObject, label: str) -> None:
    old = table.get(ob.id)
    if old is not None:
        # The same object twice in one file: a history-like file. Keep the newest version.
        if ob.id <= 0:
            raise MapathonError(f"{label}: {KIND_NAMES[ob.kind]} {ob.id} appears twice")
        if (old.version or 0) > (ob.version or 0):
            return
    table[ob.id] = ob


def _meta(a) -> tuple | None:
    ts = a.get("timestamp")
    uid = a.get("uid")
    user = a.get("user")
    cs = a.get("changeset")
    if ts is None and uid is None and user is None and cs is None:
        return None
    if ts is not None and not _TIMESTAMP.match(ts):
        ts = None
    try:
        uid = int(uid) if uid is not None else None
        cs = int(cs) if cs is not None else None
    except ValueError:
        uid = cs = None
    if uid is not None and not 0 < uid <= MAX_INT32:
        uid = None  # metadata only: a nonsense number is dropped, not stored
    if cs is not None and not 0 < cs <= MAX_INT32:
        cs = None
    return (ts, uid or None, user or None, cs or None)


class _Refused(Exception):
    pass


def _refuse(*_args) -> None:
    raise _Refused()


# Long on purpose: the expat handlers are the hot path (a Python call per element of the file) and share the
# object being read through closures (nonlocal); as methods or helpers, every element would pay attribute
# look-ups or extra calls.
def _read_xml(raw: bytes, kind: str, out: OsmData, src: int, label: str) -> None:
    """Stream-parse OSM or osmChange XML with expat, refusing any DTD (so any entity).

    Objects are built in the start-element handler; an object's <tag>, <nd>
    and <member> children follow its start tag, so no end handler is needed
    (which halves the number of Python calls per file).
    """
    objs = out.objects
    ntab, wtab, rtab = objs[NODE], objs[WAY], objs[RELATION]
    new = OsmObject.__new__
    root = section = None
    ob = tags = refs = members = None  # the object being read and its children
    at: tuple = ("element", None)  # the last object element, for messages

    def flush() -> None:
        nonlocal ob, tags, refs, members
        o = ob
        if refs is not None:
            if refs and not (-MAX_ID < min(refs) and max(refs) < MAX_ID):
                raise ValueError(f"a node reference is out of range ({ID_RANGE})")
            o.refs = tuple(refs)
        elif members is not None:
            if members and not all(-MAX_ID < m[1] < MAX_ID for m in members):
                raise ValueError(f"a member reference is out of range ({ID_RANGE})")
            o.members = tuple(members)
        ob = tags = refs = members = None
        if o.action == "delete" and o.id <= 0:
            return  # created and deleted before upload: nothing to merge
        k = o.kind
        table = ntab if k == NODE else (wtab if k == WAY else rtab)
        if o.id in table:
            _put(table, o, label)
        else:
            table[o.id] = o

    def start(name: str, a: dict) -> None:
        nonlocal ob, tags, refs, members, root, section, at
        if name == "nd":
            if refs is not None:
                refs.append(int(a["ref"]))
            return
        if name == "tag":
            if tags is not None:
                tags[a["k"]] = a["v"]
            return
        if name == "member":
            if members is not None:
                mt = KIND_OF_NAME.get(a.get("type"))
                if mt is None:
                    raise ValueError(f"bad member type {a.get('type')!r}")
                members.append((mt, int(a["ref"]), a.get("role") or ""))
            return
        if ob is not None:
            flush()
        at = (name, a.get("id"))
        if name == "node":
            k = NODE
        elif name == "way":
            k = WAY
        elif name == "relation":
            k = RELATION
        else:
            if root is None:
                root = name
                _root(name, a)
            elif root == "osmChange" and name in ("create", "modify", "delete"):
                section = name
            return
        if root is None:
            root = name
            _root(name, a)
        oid = int(a["id"])
        if not -MAX_ID < oid < MAX_ID:
            raise ValueError(f"id out of range ({ID_RANGE})")
        v = a.get("version")
        version = (int(v) or None) if v is not None else None
        if version is not None and not 0 < version <= MAX_INT32:
            raise ValueError(f"version {v} is out of range (1 to {MAX_INT32})")
        if section is None:  # JOSM / plain OSM XML
            act = a.get("action")
            if act == "delete":
                action, visible = "delete", False
            else:
                visible = a.get("visible") != "false"
                if oid <= 0:
                    action = "create"
                elif act is None or act == "modify":
                    action = act  # visible="false" without action: a version deleted on the server
                else:
                    raise ValueError(f"unknown action {act!r}")
        elif section == "delete":
            action, visible = "delete", False
        else:
            action, visible = ("create" if oid <= 0 else "modify"), True
        o = new(OsmObject)
        tags = {}
        o.kind, o.id, o.version, o.visible, o.action, o.tags = k, oid, version, visible, action, tags
        o.meta = _meta(a) if ("timestamp" in a or "user" in a or "uid" in a or "changeset" in a) else None
        o.src, o.orig, o.refs, o.members = src, oid, (), ()
        ob = o
        if k == NODE:
            lat = a.get("lat")
            lon = a.get("lon")
            if lat is None or lon is None:
                if visible:
                    raise ValueError("no coordinates")
                o.lon = o.lat = None
            else:
                y = round(float(lat) * 1e7)
                x = round(float(lon) * 1e7)
                if not (-900_000_000 <= y <= 900_000_000 and -1_800_000_000 <= x <= 1_800_000_000):
                    raise ValueError(f"coordinates out of range (lat {lat}, lon {lon})")
                o.lon = x
                o.lat = y
        else:
            o.lon = o.lat = None
            if k == WAY:
                refs = []
            else:
                members = []

    def _root(name: str, a: dict) -> None:
        if name == "osm":
            if kind == "osc":
                raise MapathonError(f"{label}: this is an OSM (.osm) file, not an osmChange; name it .osm")
            if a.get("upload") == "never":
                raise MapathonError(f"{label}: JOSM marks this layer upload=\"never\" (a helper layer such as a "
                                    "task grid, not mapping work)")
        elif name == "osmChange":
            if kind == "osm":
                raise MapathonError(f"{label}: this is an osmChange file; its name should end in .osc")
        else:
            raise MapathonError(f"{label}: not OpenStreetMap XML (root element <{name}>, expected <osm> or "
                                "<osmChange>)")

    p = pyexpat.ParserCreate()
    p.StartDoctypeDeclHandler = _refuse
    p.EntityDeclHandler = _refuse
    p.UnparsedEntityDeclHandler = _refuse
    p.ExternalEntityRefHandler = _refuse
    p.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
    p.StartElementHandler = start
    try:
        p.Parse(raw, True)
        if ob is not None:
            flush()
    except _Refused:
        raise MapathonError(
            f"{label}: refused: the file has a DOCTYPE/entity declaration (line {p.CurrentLineNumber}), which OSM "
            "files never have; entity expansion is how 'billion laughs' and external-entity attacks work") from None
    except pyexpat.ExpatError as e:
        raise MapathonError(f"{label}: not well-formed XML ({pyexpat.ErrorString(e.code)}, line {e.lineno}, "
                            f"column {e.offset})") from None
    except MapathonError:
        raise
    except (KeyError, ValueError, TypeError, OverflowError) as e:
        name, ident = at
        what = f"{name} {ident}" if ident is not None else f"<{name}>"
        detail = f"missing attribute {e}" if isinstance(e, KeyError) else str(e)
        raise MapathonError(f"{label}: line {p.CurrentLineNumber}: {what}: {detail}") from None
    if root is None:
        raise MapathonError(f"{label}: no OSM data in the file")


#: New objects (id <= 0) are handed to libosmium's location index as NEG_BASE - id.
NEG_BASE = 1 << 52


def has_negative_ids(path: str | Path) -> bool:
    """True when a sorted OSM file (a mapathon merge snapshot) holds new objects with ids <= 0.

    osmium sorts negative ids first, so only the first object of each type needs a look.
    """
    import osmium

    for kind in (osmium.osm.NODE, osmium.osm.WAY, osmium.osm.RELATION):
        for o in osmium.FileProcessor(str(path), kind):
            if o.id <= 0:
                return True
            break
    return False


@contextlib.contextmanager
def positive_ids(path: str | Path):
    """Yield *path*, or a temporary copy whose ids <= 0 became NEG_BASE - id.

    libosmium's node-location index (``with_locations``) and so its area assembly skip
    negative ids; a merge snapshot keeps its new objects' negative ids, so readers that
    need geometries (the atlas layer cache) read through this.
    """
    import osmium

    path = Path(path)
    if not has_negative_ids(path):
        yield path
        return

    def pos(i: int) -> int:
        return NEG_BASE - i if i <= 0 else i

    with tempfile.TemporaryDirectory(prefix="mapathon-ids-") as tmp:
        out = Path(tmp) / "positive.osm.pbf"
        writer = osmium.SimpleWriter(str(out))
        try:
            for o in osmium.FileProcessor(str(path)):
                if o.is_node():
                    writer.add_node(o.replace(id=pos(o.id)) if o.id <= 0 else o)
                elif o.is_way():
                    refs = [n.ref for n in o.nodes]
                    if o.id <= 0 or any(r <= 0 for r in refs):
                        o = o.replace(id=pos(o.id), nodes=[pos(r) for r in refs])
                    writer.add_way(o)
                elif o.is_relation():
                    members = [(m.type, m.ref, m.role) for m in o.members]
                    if o.id <= 0 or any(r <= 0 for _, r, _ in members):
                        o = o.replace(id=pos(o.id), members=[(t, pos(r), role) for t, r, role in members])
                    writer.add_relation(o)
        finally:
            writer.close()
        yield out
