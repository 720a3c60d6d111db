"""The merge rules, and :func:`plan_merge` that applies them.

The rules (see ``docs/merging.md`` for the organizer's version):

**New objects** (id <= 0) of each input are renumbered so that no two inputs
share an id: per object type, inputs are numbered one after the other (in
input order), each keeping the order of its own ids. Input 1's ``-1``,
``-2``... stay ``-1``, ``-2``...; input 2's start where input 1's stopped.
References inside each input follow. New objects keep negative ids in every
output (the snapshot too: osmium sorts negative ids before positive ones,
and ``osmium check-refs``/``fileinfo`` accept them), because OpenStreetMap
gives the real ids only on upload. Positive ids are kept.

**Existing objects** (id > 0): among all copies (each input's and the
base's), the highest version wins. At the same version an edited copy
(JOSM ``action="modify"``/``"delete"``, or any object of an ``.osc``) beats an
unedited one. Identical edits are merged silently.

Different edits of the same version N are merged **three ways**, as JOSM
and git do, against the common ancestor: the base's copy of version N.
The edits are folded in input order; a tag, a node's position, a way's
node list or a relation's members changed by one side only is taken; the
same one changed to two different values is a *conflict* that keeps the
earlier input's value and names the key and both values
(``pump: manual ≠ powered``). The merged object keeps version N (it
uploads as a modification of version N) and its provenance lists every
input whose edit it holds. A deletion against modifications is a conflict
too: the modifications win.

Without that base copy (no base, or the base lacks the object or has an
older version) the edits cannot be told apart and one copy wins whole, by
this rule (a conflict that says why the edits were not combined):

1. a modification beats a deletion (nothing is lost);
2. otherwise the copy from the input that comes first wins: inputs are
   taken in the order given on the command line, or for a project's
   contributions in the order they were submitted.

Every copy is listed in the conflict, with what differs. An edit of an
older version than the one kept is listed too (``outdated``).

**Deletions** are honoured unless a surviving object (from the base or an
input) still uses the deleted object; then the deletion is dropped, the
object kept, and that is a conflict (``deleted-but-used``).

**Duplicates**: new nodes with the same tags and coordinates (tagged nodes,
or untagged nodes nothing uses) collapse into the first one; new ways with
the same tags and the same node coordinates collapse into the first one,
the duplicate's own nodes going with it unless something else uses them;
new relations with the same tags and members likewise.

**Missing nodes**: a way using a node found in no input and not in the base
is an error naming the file and the way.
"""

from __future__ import annotations

import operator
import os
import time
from pathlib import Path
from typing import Callable, Sequence

from ...errors import MapathonError
from ..readers import KIND_NAMES, KINDS, NODE, RELATION, WAY, OsmData, OsmObject
from ..writers import opl_bytes
from .base import _BaseJob, _new_id_start, _read_base_header
from .model import BadInput, Conflict, InputFile, InputSpec, MergeResult, Origin
from .reading import _read_inputs, _split_extracts


def _tagkey(tags: dict) -> frozenset:
    return frozenset(tags.items())


# -- what differs between two copies of an object (named in the conflicts) ------------------------


def _state(o: OsmObject) -> str:
    return "modified" if o.visible else "deleted"


def _geometry(o: OsmObject) -> tuple[str, object]:
    """What the geometry of an object is called, and its value: a node's position, a way's node list..."""
    if o.kind == NODE:
        return "position", (o.lon, o.lat)
    if o.kind == WAY:
        return "nodes", o.refs
    return "members", o.members


def _geometry_json(what: str, value):
    if what == "position":
        return None if value[0] is None else [value[0] / 1e7, value[1] / 1e7]  # lon, lat as in GeoJSON
    if what == "nodes":
        return list(value)
    return [[KIND_NAMES[t], r, role] for t, r, role in value]


def _deg(v: float) -> str:
    return f"{v:.7f}".rstrip("0").rstrip(".")


def _short(items: list[str], unit: str, sep: str = ",") -> str:
    if len(items) <= 10:
        return sep.join(items)
    return sep.join(items[:4]) + f"{sep}…{sep}" + sep.join(items[-2:]) + f" ({len(items)} {unit})"


def _value_text(d: dict, value, absent: str) -> str:
    what = d["what"]
    if value is None:
        return absent
    if what == "tag":
        return value if len(value) <= 60 else value[:57] + "..."
    if what == "position":
        return f"{_deg(value[1])},{_deg(value[0])}"  # lat,lon as JOSM shows it
    if what == "nodes":
        return _short([str(r) for r in value], "nodes")
    return _short([f"{t} {r}" + (f" {role}" if role else "") for t, r, role in value], "members", ", ")


_WHAT = {"position": "position", "nodes": "node list", "members": "members"}


def _differences_text(diffs: list[dict], absent: str, most: int = 6) -> str:
    """'; pump: manual ≠ powered; deleted in b.osm' for a conflict's message ('' if nothing differs)."""
    parts = []
    for d in diffs[:most]:
        if d["what"] == "deleted":
            parts.append(f"deleted in {d['kept_file'] if d['kept'] == 'deleted' else d['other_file']}")
        else:
            label = d["key"] if d["what"] == "tag" else _WHAT[d["what"]]
            parts.append(f"{label}: {_value_text(d, d['kept'], absent)} ≠ {_value_text(d, d['other'], absent)}")
    if len(diffs) > most:
        parts.append(f"{len(diffs) - most} more differences (see --json)")
    return "".join("; " + p for p in parts)


class _Engine:
    def __init__(self, inputs: list[InputFile], datas: list[OsmData], base: Path | None, new_id_start: dict,
                 extracts: Sequence[Path] = ()):
        self.inputs = inputs
        self.datas = datas
        #: the files read like the base: the base, then the inputs that are extracts
        self.base_files = ([base] if base is not None else []) + list(extracts)
        self.base = base if base is not None else (self.base_files[0] if self.base_files else None)
        self.next_id = dict(new_id_start)
        self.conflicts: list[Conflict] = []
        self.also: dict[tuple[str, int], list[Origin]] = {}
        self.dups = {NODE: 0, WAY: 0, RELATION: 0}
        self.deletions_kept = 0
        self.combined: set[tuple[str, int]] = set()  # objects whose edits from several inputs were combined
        self.refs_src: dict[tuple[str, int], int] = {}  # a combined way's node list: the input it came from
        self.timings: dict[str, float] = {}

    # -- helpers
    def origin(self, o: OsmObject) -> Origin:
        return Origin(self.inputs[o.src], o.orig)

    def describe(self, o: OsmObject) -> dict:
        if o.src < 0:
            return {"file": "base", "volunteer": None, "task": None, "id": o.id, "version": o.version,
                    "action": "unchanged"}
        i = self.inputs[o.src]
        return {"file": i.name, "volunteer": i.volunteer, "task": i.task, "id": o.orig, "version": o.version,
                "action": ("delete" if not o.visible else (o.action or "unchanged"))}

    def who(self, o: OsmObject) -> str:
        if o.src < 0:
            return "the base"
        i = self.inputs[o.src]
        return i.name + (f" ({i.volunteer})" if i.volunteer and i.volunteer not in i.name else "")

    # -- step 1: renumber new objects
    def renumber(self) -> None:
        """Give each input's new objects ids no other input uses; split new from existing objects."""
        self.new_tables: list[dict[str, dict[int, OsmObject]]] = []
        self.old_tables: list[dict[str, dict[int, OsmObject]]] = []
        for idx, data in enumerate(self.datas):
            maps = {}
            objs = data.objects
            count = 0
            for k in KINDS:
                neg = [i for i in objs[k] if i <= 0]
                neg.sort(reverse=True)
                nxt = self.next_id[k]
                ids = range(nxt, nxt - len(neg), -1)
                m = dict(zip(neg, ids))
                if neg:
                    count += sum(map(operator.ne, neg, ids))
                self.next_id[k] = nxt - len(neg)
                maps[k] = m
            nmap = maps[NODE]
            label = data.name
            for w in objs[WAY].values():
                refs = w.refs
                if refs and min(refs) <= 0:
                    try:
                        w.refs = tuple([nmap[r] if r <= 0 else r for r in refs])
                    except KeyError as e:
                        raise BadInput(idx, f"{label}: way {w.id} uses node {e.args[0]}, which is not in the file "
                                            "(new objects must be in the same file)") from None
            for rel in objs[RELATION].values():
                mem = rel.members
                if any(r <= 0 for _t, r, _role in mem):
                    new = []
                    for t, r, role in mem:
                        if r <= 0:
                            nr = maps[t].get(r)
                            if nr is None:
                                raise BadInput(idx, f"{label}: relation {rel.id} has member {KIND_NAMES[t]} {r}, "
                                                    "which is not in the file")
                            r = nr
                        new.append((t, r, role))
                    rel.members = tuple(new)
            new_t, old_t = {}, {}
            for k in KINDS:
                m = maps[k]
                table = objs[k]
                if not m:
                    new_t[k], old_t[k] = {}, table
                    continue
                nt = {}
                for old_id, new_id in m.items():
                    o = table[old_id]
                    o.id = new_id
                    nt[new_id] = o
                new_t[k] = nt
                old_t[k] = {i: o for i, o in table.items() if i > 0} if len(m) < len(table) else {}
            self.new_tables.append(new_t)
            self.old_tables.append(old_t)
            self.inputs[idx].renumbered = count

    # -- step 2: group the copies of every object; what the base must tell
    def gather(self) -> None:
        final: dict[str, dict[int, OsmObject]] = {k: {} for k in KINDS}
        cands: dict[str, dict[int, object]] = {k: {} for k in KINDS}
        for new_t, old_t in zip(self.new_tables, self.old_tables):
            for k in KINDS:
                final[k].update(new_t[k])
                c = cands[k]
                for oid, o in old_t[k].items():
                    prev = c.get(oid)
                    if prev is None:
                        c[oid] = o
                    elif type(prev) is list:
                        prev.append(o)
                    else:
                        c[oid] = [prev, o]
        self.final = final
        self.cands = cands
        # What the base must tell us: the objects edited in the inputs, and the nodes that
        # the inputs' ways use but no input has; and which base ways/relations use deleted objects.
        need = {k: set() for k in KINDS}
        deleted = {k: set() for k in KINDS}
        for k in KINDS:
            s = need[k]
            d = deleted[k]
            for oid, c in cands[k].items():
                if type(c) is list:
                    if any(o.action is not None for o in c):
                        s.add(oid)
                    if any(not o.visible for o in c):
                        d.add(oid)
                elif c.action is not None:
                    s.add(oid)
                    if not c.visible:
                        d.add(oid)
                elif not c.visible:
                    d.add(oid)
        cn = cands[NODE]
        nodes_needed = need[NODE]
        for table in (final[WAY], cands[WAY]):
            for c in table.values():
                for o in (c if type(c) is list else (c,)):
                    refs = o.refs
                    if o.visible and refs and max(refs) > 0:
                        for r in refs:
                            if r > 0 and r not in cn:
                                nodes_needed.add(r)
        self.need = need
        self.deletion_candidates = deleted

    # -- step 3: choose a copy of every existing object
    def settle(self) -> None:
        final, cands, base_objs = self.final, self.cands, self.base_objs
        for k in KINDS:
            fk = final[k]
            bk = base_objs[k]
            for oid, c in cands[k].items():
                if type(c) is not list and c.action is None:
                    fk[oid] = c  # the common case: one unchanged copy
                    continue
                copies = c if type(c) is list else [c]
                w = self._choose(k, oid, copies, bk.get(oid))
                if w is not None and w.src >= 0:
                    fk[oid] = w

    def _choose(self, k: str, oid: int, copies: list[OsmObject], base: OsmObject | None) -> OsmObject | None:
        allc = copies + ([base] if base is not None else [])

        def rank(o: OsmObject) -> tuple:
            return (o.version or 0, o.action is not None)

        top = max(rank(o) for o in allc)
        group = [o for o in allc if rank(o) == top]
        reps: list[list[OsmObject]] = []
        for o in group:
            for rep in reps:
                if rep[0].same_content(o):
                    rep.append(o)
                    break
            else:
                reps.append([o])
        name = KIND_NAMES[k]
        n_visible = sum(1 for r in reps if r[0].visible)
        if top[1] and n_visible > 1 and base is not None and (base.version or 0) == top[0]:
            winner = self._combine(k, oid, group, base)  # edits of the same version: three ways
        else:
            winner = self._first_wins(k, oid, top, group, reps, base if top[1] and n_visible > 1 else False)
        stale = [o for o in allc if o.action is not None and (o.version or 0) < top[0]]
        if stale:
            self.conflicts.append(Conflict(
                "outdated", name, oid,
                f"{name} {oid}: edit of version {', '.join(str(o.version) for o in stale)} by "
                f"{', '.join(sorted({self.who(o) for o in stale}))} dropped: {self.who(winner)} has version {top[0]}",
                self.describe(winner), [self.describe(o) for o in stale]))
        return winner

    def _first_wins(self, k: str, oid: int, top: tuple, group: list[OsmObject], reps: list[list[OsmObject]],
                    base) -> OsmObject:
        """One copy wins whole (no common version to combine edits against).

        *base* is False when there was nothing to combine; else the base's copy
        of the object (None if it has none), to say why the edits were not combined.
        """
        if len(reps) == 1:
            chosen_rep = reps[0]
        else:
            visible = [r for r in reps if r[0].visible]
            pool = visible or reps
            chosen_rep = next((r for r in pool if any(o.src < 0 for o in r)), pool[0]) if not top[1] else pool[0]
        winner = next((o for o in chosen_rep if o.src < 0), chosen_rep[0])
        others = [o for o in chosen_rep if o is not winner and o.src >= 0]
        if others and winner.src >= 0:
            self.also.setdefault((k, oid), []).extend(self.origin(o) for o in others)
        if len(reps) > 1:
            name = KIND_NAMES[k]
            lost = [o for r in reps if r is not chosen_rep for o in r]
            what = "edited differently" if top[1] else "has different copies"
            rule = ("a modification beats a deletion" if winner.visible and any(not o.visible for o in lost)
                    else "the first input wins")
            diffs = [d for r in reps if r is not chosen_rep for d in self._differences(winner, r[0])]
            note = ""
            if base is not False:
                why = ("give --base" if self.base is None else "not in the base extract" if base is None
                       else f"the base extract has version {base.version}")
                note = f"; compatible edits not combined: no base copy of version {top[0]} ({why})"
            self.conflicts.append(Conflict(
                "edit" if top[1] else "copies-differ", name, oid,
                f"{name} {oid} version {top[0]} {what} in {', '.join(sorted({self.who(o) for o in group}))}"
                f"{_differences_text(diffs, '(none)')}; kept the copy of {self.who(winner)} ({rule}){note}",
                self.describe(winner), [self.describe(o) for o in lost + others], diffs))
        return winner

    def _difference(self, what: str, key: str | None, kept, other, kept_by: OsmObject, other_by: OsmObject) -> dict:
        return {"what": what, "key": key, "kept": kept, "other": other,
                "kept_file": self.inputs[kept_by.src].name if kept_by.src >= 0 else "base",
                "other_file": self.inputs[other_by.src].name if other_by.src >= 0 else "base"}

    def _differences(self, kept: OsmObject, other: OsmObject) -> list[dict]:
        """What differs between two whole copies (tags one by one, then the geometry)."""
        if not other.visible or not kept.visible:
            return [self._difference("deleted", None, _state(kept), _state(other), kept, other)]
        out = []
        kt, ot = kept.tags, other.tags
        for key in [*kt, *(x for x in ot if x not in kt)]:
            if kt.get(key) != ot.get(key):
                out.append(self._difference("tag", key, kt.get(key), ot.get(key), kept, other))
        (what, kg), (_w, og) = _geometry(kept), _geometry(other)
        if kg != og:
            out.append(self._difference(what, None, _geometry_json(what, kg), _geometry_json(what, og), kept, other))
        return out

    def _combine(self, k: str, oid: int, edits: list[OsmObject], base: OsmObject) -> OsmObject:
        """Three-way merge of edits of the same version against the base's copy of that version.

        The edits are folded in input order: a tag (or the position, node list or
        members) changed by one side only is taken; the same key changed to two
        different values keeps the earlier input's value and is a conflict, as is
        a deletion (the modifications win). The result keeps the common version.
        """
        name = KIND_NAMES[k]
        btags = base.tags
        tags = dict(btags)
        tag_by: dict[str, OsmObject] = {}
        what, bgeom = _geometry(base)
        geom, geom_by = bgeom, None
        diffs: list[dict] = []
        contributors: list[OsmObject] = []
        deleted = [e for e in edits if not e.visible]
        for e in edits:
            if not e.visible:
                continue
            gave = False
            et = e.tags
            for key in [*et, *(x for x in btags if x not in et)]:
                x, b = et.get(key), btags.get(key)
                if x == b:
                    continue
                cur = tags.get(key)
                if cur == b:
                    if x is None:
                        del tags[key]
                    else:
                        tags[key] = x
                    tag_by[key] = e
                    gave = True
                elif cur == x:
                    gave = True
                else:
                    diffs.append(self._difference("tag", key, cur, x, tag_by[key], e))
            _w, x = _geometry(e)
            if x != bgeom:
                if geom == bgeom:
                    geom, geom_by = x, e
                    gave = True
                elif geom == x:
                    gave = True
                else:
                    diffs.append(self._difference(what, None, _geometry_json(what, geom), _geometry_json(what, x),
                                                  geom_by, e))
            if gave:
                contributors.append(e)
        if not contributors:  # every visible edit leaves the object as it was
            contributors = [next(e for e in edits if e.visible)]
        first = contributors[0]
        merged = first.copy()
        merged.tags = tags
        merged.action = "modify"
        if k == NODE:
            merged.lon, merged.lat = geom
        elif k == WAY:
            merged.refs = geom
            self.refs_src[(k, oid)] = (geom_by or first).src
        else:
            merged.members = geom
        if len(contributors) > 1:
            self.combined.add((k, oid))
            self.also.setdefault((k, oid), []).extend(self.origin(o) for o in contributors[1:])
        for e in deleted:
            diffs.append(self._difference("deleted", None, "modified", "deleted", first, e))
        if diffs:
            rules = []
            if any(d["what"] != "deleted" for d in diffs):
                rules.append("kept the earlier input's value (the first input wins)")
            if deleted:
                rules.append("kept the modification (a modification beats a deletion)")
            if len(contributors) > 1:
                rules.append("combined the other edits")
            self.conflicts.append(Conflict(
                "edit", name, oid,
                f"{name} {oid} version {base.version} edited differently in "
                f"{', '.join(dict.fromkeys(self.who(e) for e in edits))}{_differences_text(diffs, '(removed)')}; "
                + "; ".join(rules),
                self.describe(merged), [self.describe(e) for e in edits if e is not first], diffs))
        return merged

    # -- step 4: deletions still in use
    def check_deletions(self) -> None:
        final = self.final
        deleted = {k: {oid for oid, o in final[k].items() if not o.visible} for k in KINDS}
        if not any(deleted.values()):
            return
        users: dict[tuple[str, int], list[OsmObject]] = {}

        def scan(o: OsmObject) -> None:
            if not o.visible:
                return
            dn = deleted[NODE]
            if o.kind == WAY:
                if dn and not dn.isdisjoint(o.refs):
                    for r in o.refs:
                        if r in dn:
                            users.setdefault((NODE, r), []).append(o)
            elif o.kind == RELATION:
                for t, r, _role in o.members:
                    if r in deleted[t]:
                        users.setdefault((t, r), []).append(o)

        for k in (WAY, RELATION):
            for o in final[k].values():
                scan(o)
        if self.base:
            referrers = self.base_referrers  # of every deletion in the inputs: a superset
            for k in (WAY, RELATION):
                for oid, b in referrers[k].items():
                    mine = final[k].get(oid)
                    if mine is not None and (mine.version or 0) >= (b.version or 0):
                        continue  # the inputs' copy replaces this base object
                    b.src = -1
                    scan(b)
        todo = list(users)
        while todo:
            key = todo.pop()
            k, oid = key
            if oid not in deleted[k]:
                continue
            deleted[k].discard(oid)
            gone = final[k][oid]
            c = self.cands[k].get(oid)
            copies = (c if type(c) is list else [c]) if c is not None else []
            base = self.base_objs[k].get(oid)
            alive = [o for o in copies + ([base] if base is not None else []) if o.visible]
            if alive:
                keep = max(alive, key=lambda o: ((o.version or 0), o.action is not None, -o.src if o.src >= 0 else 1))
            else:
                keep = gone.copy()
                keep.visible, keep.action = True, None
                if keep.kind == NODE and keep.lon is None:
                    keep = None
            if keep is None or keep.src < 0:
                del final[k][oid]
            else:
                final[k][oid] = keep
            self.also.pop(key, None)
            self.deletions_kept += 1
            name = KIND_NAMES[k]
            by = users[key]
            self.conflicts.append(Conflict(
                "deleted-but-used", name, oid,
                f"{name} {oid} deleted by {self.who(gone)} but still used by "
                + ", ".join(f"{KIND_NAMES[u.kind]} {u.orig if u.src >= 0 else u.id} ({self.who(u)})" for u in by[:5])
                + (f" and {len(by) - 5} more" if len(by) > 5 else "") + "; kept",
                self.describe(keep) if keep is not None else {"file": "base", "id": oid},
                [self.describe(gone)] + [self.describe(u) for u in by[:20]]))
            if keep is not None and keep.kind in (WAY, RELATION):
                before = set(users)
                scan(keep)
                todo.extend(k2 for k2 in users if k2 not in before)

    # -- step 5: duplicates among new objects (before step 3: it needs no base)
    def collapse_duplicates(self) -> None:
        final = self.final
        fn, fw, fr = final[NODE], final[WAY], final[RELATION]
        node_map: dict[int, int] = {}
        way_map: dict[int, int] = {}
        rel_map: dict[int, int] = {}

        # Existing ways and relations are still grouped copies (step 3 has not chosen yet): all count.
        other_ways = [o for c in self.cands[WAY].values() for o in (c if type(c) is list else (c,))]
        other_rels = [o for c in self.cands[RELATION].values() for o in (c if type(c) is list else (c,))]
        used_nodes: set[int] = set()
        for w in (*fw.values(), *other_ways):
            if w.visible:
                used_nodes.update(w.refs)
        for rel in (*fr.values(), *other_rels):
            if rel.visible:
                used_nodes.update(r for t, r, _ in rel.members if t == NODE)

        # new nodes: tagged ones, and untagged ones nothing uses
        seen: dict[tuple, int] = {}
        for oid, o in fn.items():
            if oid >= 0:
                continue
            tags = o.tags
            if not tags and oid in used_nodes:
                continue
            key = (frozenset(tags.items()) if tags else None, o.lon, o.lat)
            first = seen.get(key)
            if first is None:
                seen[key] = oid
            else:
                node_map[oid] = first

        # new ways: same tags and same node coordinates. Ways are first grouped by their
        # length and first node's position (cheap); only groups of two or more are compared fully.
        fn_get = fn.get
        cn_get = self.cands[NODE].get

        def loc(r: int):
            n = fn_get(r) or cn_get(r)
            if type(n) is list:
                n = n[0]
            if n is None or not n.visible or n.lon is None:
                return None  # a base node: not known yet, so such ways are not compared
            return (n.lon, n.lat)

        groups: dict[tuple, object] = {}
        for oid, w in fw.items():
            refs = w.refs
            if oid >= 0 or not refs:
                continue
            n = fn_get(refs[0])
            if n is None:
                continue
            key1 = (len(refs), n.lon, n.lat)
            g = groups.get(key1)
            if g is None:
                groups[key1] = w
            elif type(g) is list:
                g.append(w)
            else:
                groups[key1] = [g, w]
        pairs: list[tuple[int, int]] = []
        for g in groups.values():
            if type(g) is not list:
                continue
            seen_w: dict[tuple, OsmObject] = {}
            for w in g:
                coords = tuple(loc(r) for r in w.refs)
                if None in coords:
                    continue
                key = (_tagkey(w.tags), coords)
                first = seen_w.get(key)
                if first is None:
                    seen_w[key] = w
                else:
                    way_map[w.id] = first.id
                    pairs.extend((d, c) for d, c in zip(w.refs, first.refs) if d != c and d < 0)
        if pairs:
            # a duplicate way's own nodes go with it, unless something else still uses them
            still_used: set[int] = set()
            for oid, w in fw.items():
                if w.visible and oid not in way_map:
                    still_used.update(w.refs)
            for w in other_ways:
                if w.visible:
                    still_used.update(w.refs)
            for rel in (*fr.values(), *other_rels):
                if rel.visible:
                    still_used.update(r for t, r, _ in rel.members if t == NODE)
            for d, c in pairs:
                if d not in still_used and d not in node_map and not fn[d].tags:
                    node_map[d] = node_map.get(c, c)

        def remap_members(members):
            return tuple((t, (node_map if t == NODE else way_map if t == WAY else rel_map).get(r, r), role)
                         for t, r, role in members)

        seen_r: dict[tuple, int] = {}
        for oid, rel in fr.items():
            if oid >= 0:
                continue
            key = (_tagkey(rel.tags), remap_members(rel.members))
            first = seen_r.get(key)
            if first is None:
                seen_r[key] = oid
            else:
                rel_map[oid] = first

        for kind, m, table in ((NODE, node_map, fn), (WAY, way_map, fw), (RELATION, rel_map, fr)):
            for d, c in m.items():
                o = table.pop(d)
                self.dups[kind] += 1
                lst = self.also.setdefault((kind, c), [])
                lst.append(self.origin(o))
                lst.extend(self.also.pop((kind, d), []))
        if node_map:
            for w in (*fw.values(), *other_ways):
                refs = w.refs
                if refs and min(refs) < 0 and any(r in node_map for r in refs):
                    w.refs = tuple(node_map.get(r, r) for r in refs)
        if node_map or way_map or rel_map:
            for rel in (*fr.values(), *other_rels):
                if any(r < 0 for _t, r, _ in rel.members):
                    rel.members = remap_members(rel.members)

    # -- step 6: every node a way uses must exist somewhere
    def check_refs(self) -> None:
        fn = self.final[NODE]
        base_nodes = self.base_objs[NODE]
        for oid, w in self.final[WAY].items():
            if not w.visible:
                continue
            for r in w.refs:
                o = fn.get(r)
                if o is not None and o.visible:
                    continue
                b = base_nodes.get(r)
                if b is not None and (o is None or (o.version or 0) < (b.version or 0)):
                    continue
                src = self.refs_src.get((WAY, oid), w.src)  # a combined way's nodes may come from another input
                data = self.inputs[src]
                where = "in no input file and not in the base" if self.base else \
                    "in no input file (and no --base extract was given)"
                raise BadInput(src, f"{data.name}: way {w.orig} uses node {r}, which is {where}")

    def run(self, pre_opl: bool = False) -> None:
        """Apply the rules. The base is read (in a forked helper for big merges) while the new
        objects are renumbered, de-duplicated and, if *pre_opl*, serialised for the snapshot."""
        t = time.perf_counter()
        self.renumber()
        self.gather()
        self.timings["renumber"] = time.perf_counter() - t
        job = _BaseJob(self.base_files or None, self.need, self.deletion_candidates,
                       new_objects=sum(len(v) for v in self.final.values()))
        try:
            t = time.perf_counter()
            self.collapse_duplicates()
            self.new_opl = opl_bytes([o for k in KINDS for o in self.final[k].values()]) if pre_opl else None
            self.timings["new_objects"] = time.perf_counter() - t
            t = time.perf_counter()
            self.base_objs, self.base_referrers, helper_times = job.result()
            self.timings["base_wait"] = time.perf_counter() - t
            self.timings.update(helper_times)
        finally:
            job.close()
        t = time.perf_counter()
        self.settle()
        self.check_deletions()
        self.check_refs()
        self.timings["rules"] = time.perf_counter() - t


def plan_merge(specs: Sequence[InputSpec], *, base: str | os.PathLike | None = None, skip_bad: bool = False,
               progress: Callable[[str], None] | None = None, _for_writing: bool = False) -> MergeResult:
    """Read the inputs and apply the merge rules; nothing is written (see :func:`write_merge`).

    Raises MapathonError for a bad input (naming the file) unless *skip_bad*,
    in which case the file is left out and listed in ``result.skipped``.
    """
    t0 = time.perf_counter()
    base_path = Path(base) if base is not None else None
    if base_path is not None and not base_path.is_file():
        raise MapathonError(f"{base_path}: no such base file")
    header = None  # read after the inputs: the parallel reading forks, better before libosmium starts threads
    if not specs and base_path is None:
        raise MapathonError("nothing to merge: give files (or submit contributions to the project)")
    skipped: list[dict] = []
    # Inputs that are extracts are merged by libosmium like the base, never read into Python.
    extracts, exclude = _split_extracts(specs, base_path, skipped, skip_bad)
    extract_paths = [Path(spec.path) for spec, _sha in extracts]
    while True:
        t = time.perf_counter()
        attempt_skipped: list[dict] = []
        inputs, datas, spec_index = _read_inputs(specs, skip_bad, attempt_skipped, exclude, base_path, progress)
        t_read = time.perf_counter() - t
        if not inputs and base_path is None and not extracts:
            raise MapathonError("nothing left to merge: every input was skipped")
        if header is None and base_path is not None:
            header = _read_base_header(base_path)
        engine = _Engine(inputs, datas, base_path, _new_id_start(header), extract_paths)
        try:
            engine.run(pre_opl=_for_writing)
        except BadInput as e:
            if not skip_bad:
                raise MapathonError(str(e)) from None
            skipped.append({"file": inputs[e.index].name, "reason": str(e)})
            exclude.add(spec_index[e.index])
            continue
        skipped = attempt_skipped + skipped
        break
    engine.timings["read"] = t_read
    for spec, sha in extracts:  # listed after the volunteers' files (their objects' src index the inputs)
        path = Path(spec.path)
        inputs.append(InputFile(len(inputs), path, spec.name or str(path), "pbf (extract)", spec.volunteer,
                                spec.task, spec.contribution, sha, 0, {}, display=spec.display or path.name))
    result = _result(engine, inputs, skipped, base_path, header, time.perf_counter() - t0)
    result._extracts = extract_paths
    return result


def _result(engine: _Engine, inputs: list[InputFile], skipped: list[dict], base: Path | None, header,
            elapsed: float) -> MergeResult:
    t = time.perf_counter()
    final = engine.final
    base_objs = engine.base_objs
    also = engine.also
    by_kind = {}
    from_inputs = 0
    for k in KINDS:
        counts = by_kind[KIND_NAMES[k]] = {"create": 0, "modify": 0, "delete": 0}
        for o in final[k].values():
            if o.visible:
                from_inputs += 1
                if o.action is not None:
                    counts[o.action] += 1
            elif o.action is not None:
                counts["delete"] += 1
    xs = [o.lon for o in final[NODE].values() if o.visible]
    ys = [o.lat for o in final[NODE].values() if o.visible]
    bbox = (min(xs), min(ys), max(xs), max(ys)) if xs else None
    identical = sum(len(v) for key, v in also.items() if key[1] > 0 and key not in engine.combined)
    total = {a: sum(c[a] for c in by_kind.values()) for a in ("create", "modify", "delete")}
    stats = {
        "inputs": len(inputs),
        "skipped": len(skipped),
        "objects_in": sum(i.objects for i in inputs),
        "objects_from_inputs": from_inputs,
        "new": total["create"],
        "modified": total["modify"],
        "deleted": total["delete"],
        "by_type": by_kind,
        "renumbered": sum(i.renumbered for i in inputs),
        "conflicts": len(engine.conflicts),
        "conflicts_by_kind": {},
        "deletions_refused": engine.deletions_kept,
        "identical_edits_merged": identical,
        "edits_combined": len(engine.combined),  # objects edited by several inputs, their edits combined
        "duplicates_collapsed": sum(engine.dups.values()),
        "duplicates_by_type": {KIND_NAMES[k]: v for k, v in engine.dups.items()},
    }
    for c in engine.conflicts:
        stats["conflicts_by_kind"][c.kind] = stats["conflicts_by_kind"].get(c.kind, 0) + 1
    # Timestamps of base copies, so that an edit of the same version replaces them in libosmium's merge.
    base_ts = {}
    for k in KINDS:
        bk = base_objs[k]
        if not bk:
            continue
        for oid, o in final[k].items():
            b = bk.get(oid)
            if b is not None and o.action is not None and (o.version or 0) == (b.version or 0):
                base_ts[(k, oid)] = b.meta[0] if b.meta else None
    new_ids = {k: engine.next_id[k] + 1 for k in KINDS}  # the lowest new id given (0: none)
    engine.timings["result"] = time.perf_counter() - t
    stats["seconds"] = round(elapsed + engine.timings["result"], 3)
    stats["timings"] = {k: round(v, 3) for k, v in engine.timings.items()}
    result = MergeResult(inputs, skipped, base, engine.conflicts, stats, final=final, base_objs=base_objs,
                         base_ts=base_ts, new_ids=new_ids, bbox=bbox, also=also)
    result._new_opl = engine.new_opl
    return result
