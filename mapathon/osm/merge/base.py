"""The base extract: its header, and the objects of it that a merge needs.

The base extract is never loaded into Python: it is read twice with C++
filters (only the objects the inputs touch come out), then merged with
the contributions by libosmium (``MergeInputReader.apply_to_reader``),
which writes the sorted snapshot.

Inputs that are extracts too (:func:`is_extract`: a newer extract merged
onto an older one, neighbouring extracts) are treated like the base: never
read into Python, merged by libosmium keeping each object's highest
version; only the objects the volunteers' files touch are looked up in
them.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from ...errors import MapathonError
from ...parallel import Helper, can_fork
from ..readers import KINDS, NODE, RELATION, WAY, OsmObject, from_osmium, osmium_refs
from .reading import _pack_tables, _unpack_tables


#: An input .osm.pbf at least this big and without new objects (ids <= 0) is an extract (see
#: :func:`is_extract`); volunteers' files are far smaller (a thousand objects is about 30 kB).
EXTRACT_MIN_BYTES = 1_000_000


def is_extract(path: Path) -> bool:
    """Whether an input is an extract (merged by libosmium like the base) rather than a volunteer's file.

    An extract is a big ``.osm.pbf`` (at least ``EXTRACT_MIN_BYTES``) holding no new objects: its
    header does not come from a mapathon merge that numbered new objects, and its first node (sorted
    files list negative ids first) has a positive id. A PBF holds no JOSM actions: every object of
    it is an unchanged copy, which is what the rules would make of it anyway.
    """
    import osmium

    path = Path(path)
    try:
        if not path.name.lower().endswith(".pbf") or path.stat().st_size < EXTRACT_MIN_BYTES:
            return False
        with osmium.io.Reader(str(path), osmium.osm.NOTHING) as rd:
            header = rd.header()
        m = _NEW_IDS.search(header.get("generator", ""))
        if m and any(int(v) < 0 for v in m.groups()):
            return False
        for o in osmium.FileProcessor(str(path), osmium.osm.NODE):
            return o.id > 0
        return True
    except Exception:  # unreadable: the ordinary reading names the problem
        return False


def _base_error(base: Path, e: Exception) -> MapathonError:
    return MapathonError(f"{base}: cannot read the base extract ({e})")


def _read_base_header(base: Path):
    import osmium

    if not base.is_file():
        raise MapathonError(f"{base}: no such base file")
    try:
        with osmium.io.Reader(str(base), osmium.osm.NOTHING) as rd:
            return rd.header()
    except Exception as e:
        raise _base_error(base, e) from None


#: libosmium's id sets (IdTracker, IdFilter) are dense bitmaps allocated in chunks of 2**22 ids
#: (512 KiB each, and a few milliseconds to allocate): a thousand ids scattered over the planet's
#: id range would take gigabytes. So a set is handed to libosmium only when its ids fall in few
#: chunks; otherwise objects of that type are checked in Python, which for ways and relations (a
#: tenth of an extract) is cheaper than many chunks, and for nodes (nine tenths) is the slow path.
_CHUNK_BITS = 22
_MAX_NODE_CHUNKS = 256  # at most 128 MiB
_MAX_OTHER_CHUNKS = 16


def _chunks(ids: set[int]) -> int:
    return len({i >> _CHUNK_BITS for i in ids})


class _BaseLookup:
    """Reads of the base extract: the objects the inputs touch, and the ways/relations using deleted objects.

    Only what matches leaves libosmium when the ids allow it (see ``_MAX_NODE_CHUNKS``).
    """

    def __init__(self, base: Path):
        self.base = base
        self.node_tracker = None  # kept from the first read for the second

    def _run(self, bits, filters):
        import osmium

        fp = osmium.FileProcessor(str(self.base), bits)
        for f in filters:
            fp.with_filter(f)
        return fp

    def fetch(self, ids: dict[str, set[int]]) -> dict[str, dict[int, OsmObject]]:
        """Objects of the base with the given ids, by kind."""
        import osmium

        out: dict[str, dict[int, OsmObject]] = {k: {} for k in KINDS}
        if not any(ids.values()):
            return out
        bit = {NODE: osmium.osm.NODE, WAY: osmium.osm.WAY, RELATION: osmium.osm.RELATION}
        bits = osmium.osm.NOTHING
        filters, in_python, keep = [], set(), []
        for k in KINDS:
            if not ids.get(k):
                continue
            bits |= bit[k]
            if _chunks(ids[k]) <= (_MAX_NODE_CHUNKS if k == NODE else _MAX_OTHER_CHUNKS):
                tracker = osmium.IdTracker()
                add = {NODE: tracker.add_node, WAY: tracker.add_way, RELATION: tracker.add_relation}[k]
                for i in ids[k]:
                    add(i)
                if k == NODE:
                    self.node_tracker = tracker
                f = tracker.id_filter()
                f.enable_for(bit[k])
                filters.append(f)
                keep.append(tracker)  # alive while its filter runs
            else:
                in_python.add(k)
        try:
            for o in self._run(bits, filters):
                kind = NODE if o.is_node() else (WAY if o.is_way() else RELATION)
                if kind in in_python and o.id not in ids[kind]:
                    continue
                out[kind][o.id] = from_osmium(o, kind)
        except Exception as e:
            raise _base_error(self.base, e) from None
        return out

    def referrers(self, deleted: dict[str, set[int]]) -> dict[str, dict[int, OsmObject]]:
        """Ways and relations of the base that use any of the *deleted* objects."""
        import osmium

        out: dict[str, dict[int, OsmObject]] = {k: {} for k in KINDS}
        dn, dw, dr = deleted.get(NODE, set()), deleted.get(WAY, set()), deleted.get(RELATION, set())
        if not (dn or dw or dr):
            return out
        filters = []
        tracker = self.node_tracker  # a superset of the deleted nodes: the Python check below settles it
        if tracker is None and dn and _chunks(dn) <= _MAX_NODE_CHUNKS:
            tracker = osmium.IdTracker()
            for i in dn:
                tracker.add_node(i)
        if tracker is not None:
            f = tracker.contains_filter()
            f.enable_for(osmium.osm.WAY)  # relations (few) are all checked here
            filters.append(f)
        elif not dn:
            filters.append(osmium.filter.EntityFilter(osmium.osm.RELATION))
        kinds = {NODE: dn, WAY: dw, RELATION: dr}
        try:
            for o in self._run(osmium.osm.WAY | osmium.osm.RELATION, filters):
                if o.is_way():
                    if dn and not dn.isdisjoint(osmium_refs(o)):
                        out[WAY][o.id] = from_osmium(o, WAY)
                elif any(m.ref in kinds[m.type] for m in o.members):
                    out[RELATION][o.id] = from_osmium(o, RELATION)
        except Exception as e:
            raise _base_error(self.base, e) from None
        return out


#: Below this many new objects, reading the base in a helper process is not worth a fork.
_FORK_MIN_NEW = 20_000


class _BaseJob:
    """The two reads of the base (:class:`_BaseLookup`), each in a forked helper process for big merges.

    The helpers read (the objects the inputs touch; the ways and relations using deleted objects)
    while the parent renumbers and de-duplicates *new_objects* new objects; without a base, or for a
    small merge, the reads happen in :meth:`result`.
    """

    def __init__(self, base: Path | list[Path] | None, need: dict, deleted: dict, *, new_objects: int):
        #: the base and the extracts among the inputs, read alike (the highest version of an object wins)
        self.files = [] if base is None else (list(base) if isinstance(base, (list, tuple)) else [base])
        self.base = self.files[0] if self.files else None
        self.need, self.deleted = need, deleted
        self.helpers: list[Helper] = []
        if base is None or new_objects < _FORK_MIN_NEW or not can_fork():
            return
        import marshal

        self.helpers = [Helper(lambda: self._payload("base_lookup"), dumps=marshal.dumps, loads=marshal.loads),
                        Helper(lambda: self._payload("base_referrers"), dumps=marshal.dumps, loads=marshal.loads)]

    def _read_one(self, what: str) -> tuple[dict, float]:
        """The objects the inputs touch ("base_lookup") or the users of deleted objects ("base_referrers")
        in every file, and the seconds it took."""
        t = time.perf_counter()
        out = None
        for path in self.files:
            lookup = _BaseLookup(path)
            out = _newest(out, lookup.fetch(self.need) if what == "base_lookup" else lookup.referrers(self.deleted))
        return out, time.perf_counter() - t

    def _read(self):
        objs, t_objs = self._read_one("base_lookup")
        refs, t_refs = self._read_one("base_referrers")
        return objs, refs, {"base_lookup": t_objs, "base_referrers": t_refs}

    def _payload(self, what: str) -> tuple:
        """What a helper sends: ("ok", packed objects, seconds) or ("error", message)."""
        try:
            objs, seconds = self._read_one(what)
        except MapathonError as e:
            return ("error", str(e))
        return ("ok", _pack_tables(objs), seconds)

    def result(self):
        """(base objects, base referrers of deletions, timings)."""
        if self.base is None:
            return {k: {} for k in KINDS}, {k: {} for k in KINDS}, {}
        if not self.helpers:
            return self._read()
        try:
            payloads = [h.result() for h in self.helpers]  # each read here if its helper failed
        finally:
            self.close()
        for p in payloads:  # the objects' read first, as without helpers
            if p[0] == "error":
                raise MapathonError(p[1])
        (_ok, objs, t_objs), (_ok2, refs, t_refs) = payloads
        return _unpack_tables(objs), _unpack_tables(refs), {"base_lookup": t_objs, "base_referrers": t_refs}

    def close(self) -> None:
        """Do not leave a helper behind (after an error or Ctrl-C)."""
        for h in self.helpers:
            h.close()


def _newest(into: dict | None, more: dict) -> dict:
    """Objects of several files by kind and id: the highest version of each."""
    if into is None:
        return more
    for k, table in more.items():
        have = into[k]
        for oid, o in table.items():
            h = have.get(oid)
            if h is None or (o.version or 0) > (h.version or 0):
                have[oid] = o
    return into


_NEW_IDS = re.compile(r"new ids down to n(-?\d+) w(-?\d+) r(-?\d+)")


def _new_id_start(header) -> dict[str, int]:
    """Where to number new objects from: below the new objects of a base that mapathon wrote.

    A PBF header keeps no custom options, so the lowest new ids are noted in
    the ``generator`` text (``mapathon 0.1.0; new ids down to n-40 w-8 r0``).
    """
    start = {k: -1 for k in KINDS}
    if header is None:
        return start
    m = _NEW_IDS.search(header.get("generator", ""))
    if m:
        for k, v in zip(KINDS, m.groups()):
            start[k] = min(-1, int(v) - 1)
    return start
