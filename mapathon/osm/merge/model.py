"""What a merge takes and gives: input files, changes with their provenance, conflicts, the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...errors import MapathonError
from ..readers import KIND_NAMES, KINDS, NODE, WAY, OsmObject


@dataclass
class InputSpec:
    """A file to merge and who it comes from."""

    path: Path
    name: str | None = None  # shown in messages (default: the path)
    volunteer: str | None = None
    task: str | None = None  # task key (or number) it was mapped for
    contribution: int | None = None  # id in the project's contributions table
    sha256: str | None = None  # expected checksum (a stored contribution), verified on reading
    display: str | None = None  # short name for tables (default: the file name)


@dataclass
class InputFile:
    """An input that took part in the merge (provenance of every change)."""

    index: int
    path: Path
    name: str
    format: str
    volunteer: str | None = None
    task: str | None = None
    contribution: int | None = None
    sha256: str | None = None
    objects: int = 0
    counts: dict = field(default_factory=dict)  # create / modify / delete / unchanged as read
    renumbered: int = 0
    display: str = ""

    def as_dict(self) -> dict:
        return {"file": self.name, "name": self.display, "path": str(self.path), "format": self.format,
                "volunteer": self.volunteer,
                "task": self.task, "contribution": self.contribution, "sha256": self.sha256,
                "objects": self.objects, **self.counts, "renumbered": self.renumbered}


@dataclass(frozen=True)
class Origin:
    """Where a merged object came from: an input file and the object's id in that file."""

    input: InputFile
    id: int

    def as_dict(self) -> dict:
        return {"file": self.input.name, "id": self.id, "volunteer": self.input.volunteer, "task": self.input.task}


class Change:
    """A new, modified or deleted object of the merge result and its provenance.

    ``origin`` is the input whose copy was kept (file, volunteer, task and the
    object's id in that file); ``also`` lists the other inputs that made the
    same edit, or whose duplicate was collapsed into this object.
    """

    __slots__ = ("kind", "id", "action", "obj", "also", "_inputs")

    def __init__(self, kind: str, oid: int, action: str, obj: OsmObject, inputs: list[InputFile],
                 also: list[Origin] | None = None):
        self.kind = kind  # "node" | "way" | "relation"
        self.id = oid  # id in the outputs
        self.action = action  # "create" | "modify" | "delete"
        self.obj = obj
        self.also = also or []
        self._inputs = inputs

    @property
    def origin(self) -> Origin:
        return Origin(self._inputs[self.obj.src], self.obj.orig)

    @property
    def input(self) -> InputFile:
        return self._inputs[self.obj.src]

    @property
    def sources(self) -> list[Origin]:
        """Every input this object came from: the kept one first."""
        return [self.origin, *self.also]

    def as_dict(self) -> dict:
        return {"type": self.kind, "id": self.id, "action": self.action, "version": self.obj.version,
                "origin": self.origin.as_dict(), "also": [o.as_dict() for o in self.also]}

    def __repr__(self) -> str:
        return f"Change({self.kind} {self.id} {self.action} from {self.input.name} id {self.obj.orig})"


@dataclass
class Conflict:
    """A disagreement between inputs (or an input and the base) and how it was settled."""

    kind: str  # "edit" | "copies-differ" | "outdated" | "deleted-but-used"
    type: str
    id: int
    message: str
    kept: dict
    others: list[dict]
    #: what differs between the kept copy and the others, one dict each: ``what`` ("tag", "position",
    #: "nodes", "members" or "deleted"), ``key`` (a tag's key), ``kept`` and ``other`` (the two values,
    #: None for a tag that is absent), ``kept_file`` and ``other_file``
    differences: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "type": self.type, "id": self.id, "message": self.message, "kept": self.kept,
                "others": self.others, "differences": self.differences}


class MergeResult:
    """What a merge did: inputs, skipped files, changes with provenance, conflicts, figures.

    ``changes`` (built on first use) lists every new, modified and deleted
    object in output order, each with the input file, volunteer and task it
    came from (:class:`Change`); :meth:`change` finds one by type and id.
    """

    def __init__(self, inputs: list[InputFile], skipped: list[dict], base: Path | None, conflicts: list[Conflict],
                 stats: dict, *, final: dict, base_objs: dict, base_ts: dict, new_ids: dict, bbox: tuple | None,
                 also: dict):
        self.inputs = inputs
        self.skipped = skipped
        self.base = base
        self.conflicts = conflicts
        self.stats = stats
        self.outputs: dict = {}
        self._final = final
        self._base_objs = base_objs
        self._base_ts = base_ts
        self._new_ids = new_ids
        self._bbox = bbox
        self._also = also
        self._changes: list[Change] | None = None
        self._by_key: dict | None = None
        self._positions: list | None = None  # of the changes (mapathon.quality.where.change_positions)
        self._new_opl: bytes | None = None  # the new objects already serialised for the snapshot
        self._extracts: list[Path] = []  # inputs that are extracts: merged by libosmium like the base

    @property
    def changes(self) -> list[Change]:
        if self._changes is None:
            out: list[Change] = []
            add = out.append
            also = self._also
            inputs = self.inputs
            for k in KINDS:
                name = KIND_NAMES[k]
                table = self._final[k]
                neg = [i for i in table if i < 0]
                neg.sort(reverse=True)
                pos = [i for i in table if i >= 0]
                pos.sort()
                for oid in neg + pos:
                    o = table[oid]
                    if o.action is not None:
                        add(Change(name, oid, o.action if o.visible else "delete", o, inputs, also.get((k, oid))))
            self._changes = out
        return self._changes

    def change(self, kind: str, oid: int) -> Change | None:
        """The change for an object (kind "node"/"way"/"relation" or "n"/"w"/"r"), if it is one."""
        if self._by_key is None:
            self._by_key = {(c.obj.kind, c.id): c for c in self.changes}
        return self._by_key.get((kind[0], oid))

    def changed_objects(self) -> list[OsmObject]:
        """The new, modified and deleted objects (what the upload files hold)."""
        return [o for k in KINDS for o in self._final[k].values() if o.action is not None]

    def base_object(self, kind: str, oid: int) -> OsmObject | None:
        """The base's copy of an object the inputs edited or deleted (None if the base did not have it)."""
        return self._base_objs.get(kind[0], {}).get(oid)

    def node_location(self, oid: int) -> tuple[float, float] | None:
        """(lon, lat) of a node of the merge: from the inputs, else from the base (nodes the inputs' ways use)."""
        o = self._final.get(NODE, {}).get(oid) or self._base_objs.get(NODE, {}).get(oid)
        if o is None or o.lon is None or not o.visible:
            return None
        return (o.lon / 1e7, o.lat / 1e7)

    def way_coords(self, oid: int) -> list[tuple[float, float]] | None:
        """Coordinates of a way of the inputs (or a base way they modified), None if a node is unknown."""
        w = self._final.get(WAY, {}).get(oid) or self._base_objs.get(WAY, {}).get(oid)
        if w is None:
            return None
        out = []
        final, base = self._final.get(NODE, {}), self._base_objs.get(NODE, {})
        for r in w.refs:  # node_location, inlined: called for every node of every changed way
            o = final.get(r) or base.get(r)
            if o is None or o.lon is None or not o.visible:
                return None
            out.append((o.lon / 1e7, o.lat / 1e7))
        return out

    def summary(self) -> dict:
        return {
            "inputs": [i.as_dict() for i in self.inputs],
            "skipped": self.skipped,
            "base": str(self.base) if self.base else None,
            "stats": self.stats,
            "conflicts": [c.as_dict() for c in self.conflicts],
            "outputs": self.outputs,
        }


class BadInput(MapathonError):
    """A problem that is one input file's fault (``--skip-bad`` can leave that file out)."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index
