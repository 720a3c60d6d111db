"""Reading a merge's inputs: checksums, many files split with a forked helper process.

The helper processes (here and in :mod:`.base`) send their objects back as
plain tuples through a pipe (:func:`_pack_tables`, :func:`_unpack_tables`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Sequence

from ...errors import MapathonError
from ...parallel import Helper, can_fork
from ..readers import KINDS, OsmData, OsmObject, read_osm_file
from .model import InputFile, InputSpec


def _pack_tables(tables: dict[str, dict[int, OsmObject]]) -> dict:
    return {k: [(o.id, o.version, o.visible, o.action, o.tags, o.lon, o.lat, o.refs, o.members, o.meta, o.src)
                for o in t.values()] for k, t in tables.items()}


def _unpack_tables(packed: dict) -> dict[str, dict[int, OsmObject]]:
    out: dict[str, dict[int, OsmObject]] = {k: {} for k in KINDS}
    new = OsmObject.__new__
    for k, rows in packed.items():
        table = out[k]
        for oid, version, visible, action, tags, lon, lat, refs, members, meta, src in rows:
            o = new(OsmObject)
            o.kind, o.id, o.version, o.visible, o.action, o.tags = k, oid, version, visible, action, tags
            o.lon, o.lat, o.refs, o.members, o.meta, o.src, o.orig = lon, lat, refs, members, meta, src, oid
            table[oid] = o
    return out


def _load_one(spec: InputSpec, base: Path | None, src: int) -> tuple[str | None, OsmData | None, str | None]:
    """(sha256, data, error message) of one input; never raises a MapathonError."""
    path = Path(spec.path)
    label = spec.name or str(path)
    sha = None
    try:
        if base is not None and path.exists() and base.exists() and os.path.samefile(path, base):
            raise MapathonError(f"{label}: is the base extract; give it only as --base")
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise MapathonError(f"{label}: cannot read ({e.strerror or e})") from None
        sha = hashlib.sha256(raw).hexdigest()
        if spec.sha256 and spec.sha256 != sha:
            raise MapathonError(f"{label}: damaged: its checksum is not the one recorded when it was submitted")
        return sha, read_osm_file(path, name=label, src=src, data=raw), None
    except MapathonError as e:
        return sha, None, str(e)


def _pack(result):
    sha, data, err = result
    if data is None:
        return (sha, None, err)
    return (sha, (data.name, data.format, _pack_tables(data.objects)), None)


def _unpack(packed):
    sha, d, err = packed
    if d is None:
        return (sha, None, err)
    name, fmt, objs = d
    return (sha, OsmData(name, fmt, _unpack_tables(objs)), None)


#: Reading many files is split between this process and one forked helper (parsing XML is most of a
#: merge's time). MAPATHON_JOBS=1 turns it off.
_PARALLEL_MIN_FILES = 16


def _load_all(todo: list[tuple[int, InputSpec]], base: Path | None) -> list:
    """_load_one for every (src, spec), in order; the second half in a forked process when worthwhile."""
    if len(todo) < _PARALLEL_MIN_FILES or not can_fork():
        return [_load_one(spec, base, src) for src, spec in todo]
    import marshal  # our own tuples of str/int/None/dict: marshal is several times faster than pickle

    mid = (len(todo) * 53) // 100  # the helper also packs its objects for the pipe: give it a bit less
    mine, theirs = todo[:mid], todo[mid:]
    helper = Helper(lambda: [_pack(_load_one(spec, base, src)) for src, spec in theirs],
                    dumps=marshal.dumps, loads=marshal.loads)
    try:
        out = [_load_one(spec, base, src) for src, spec in mine]
        packed = helper.result()
    finally:
        helper.close()  # interrupted: do not leave the helper behind
    return out + [_unpack(p) for p in packed]


def _read_inputs(specs: Sequence[InputSpec], skip_bad: bool, skipped: list[dict], exclude: set[int],
                 base: Path | None, progress: Callable[[str], None] | None
                 ) -> tuple[list[InputFile], list[OsmData], list[int]]:
    todo = [(si, spec) for si, spec in enumerate(specs) if si not in exclude]
    loaded = _load_all(todo, base)
    inputs: list[InputFile] = []
    datas: list[OsmData] = []
    spec_index: list[int] = []
    seen: dict[str, str] = {}
    for (si, spec), (sha, data, err) in zip(todo, loaded):
        path = Path(spec.path)
        label = spec.name or str(path)
        if err is None and sha in seen:
            skipped.append({"file": label, "reason": f"same bytes as {seen[sha]}; merged once"})
            continue
        if err is not None:
            if not skip_bad:
                raise MapathonError(err)
            skipped.append({"file": label, "reason": err})
            continue
        seen[sha] = label
        idx = len(inputs)
        if idx != si:  # objects were read with their position among all specs
            for table in data.objects.values():
                for o in table.values():
                    o.src = idx
        if progress:
            progress(label)
        inputs.append(InputFile(idx, path, label, data.format, spec.volunteer, spec.task,
                                spec.contribution, sha, data.count(), data.counts(),
                                display=spec.display or path.name))
        datas.append(data)
        spec_index.append(si)
    return inputs, datas, spec_index


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _split_extracts(specs: Sequence[InputSpec], base: Path | None, skipped: list[dict], skip_bad: bool
                    ) -> tuple[list[tuple[InputSpec, str]], set[int]]:
    """The inputs that are extracts (:func:`.base.is_extract`), with their checksums, and their positions
    among *specs*: libosmium merges them like the base, they are never read into Python."""
    from .base import is_extract

    found: list[tuple[InputSpec, str]] = []
    where: set[int] = set()
    seen: dict[str, str] = {}
    for si, spec in enumerate(specs):
        path = Path(spec.path)
        if not is_extract(path):
            continue
        label = spec.name or str(path)
        where.add(si)
        err = None
        sha = None
        try:
            if base is not None and base.exists() and os.path.samefile(path, base):
                err = f"{label}: is the base extract; give it only as --base"
            else:
                sha = _file_sha256(path)
                if spec.sha256 and spec.sha256 != sha:
                    err = f"{label}: damaged: its checksum is not the one recorded when it was submitted"
        except OSError as e:
            err = f"{label}: cannot read ({e.strerror or e})"
        if err is not None:
            if not skip_bad:
                raise MapathonError(err)
            skipped.append({"file": label, "reason": err})
            continue
        if sha in seen:
            skipped.append({"file": label, "reason": f"same bytes as {seen[sha]}; merged once"})
            continue
        seen[sha] = label
        found.append((spec, sha))
    return found, where
