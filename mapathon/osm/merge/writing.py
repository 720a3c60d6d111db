"""Writing a merge: the snapshot (merged with the base by libosmium), the upload and JOSM files.

:func:`merge` is :func:`~.rules.plan_merge` then :func:`write_merge`.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ... import __version__
from ...errors import MapathonError
from ...fsutil import atomic_path
from ...parallel import paused_gc
from ..readers import KINDS, NODE, WAY, OsmObject
from ..writers import OscWriter, opl_bytes, write_josm
from .base import _read_base_header
from .model import InputSpec, MergeResult
from .rules import plan_merge


def check_outputs(output: str | os.PathLike, upload=None, josm=None, inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse output names with the wrong extension, or that would overwrite an input."""
    output = Path(output)
    if not output.name.lower().endswith(".pbf"):
        raise MapathonError(f"{output}: the merged snapshot is written as .osm.pbf; name it so")
    if upload is not None and not Path(upload).name.lower().endswith(".osc"):
        raise MapathonError(f"{upload}: the upload file is an osmChange; its name should end in .osc")
    if josm is not None and not Path(josm).name.lower().endswith(".osm"):
        raise MapathonError(f"{josm}: the JOSM file is OSM XML; its name should end in .osm")
    outs = [Path(p) for p in (output, upload, josm) if p is not None]
    if len({p.resolve() for p in outs}) != len(outs):
        raise MapathonError("the output files must be different files")
    for p in outs:
        for i in inputs:
            i = Path(i)
            if p.resolve() == i.resolve() or (p.exists() and i.exists() and os.path.samefile(p, i)):
                raise MapathonError(f"{p}: is an input; inputs are never overwritten, choose another name")


def _snapshot_header(result: MergeResult, base_headers: list):
    import osmium

    h = osmium.io.Header()
    h.set("generator", f"mapathon {__version__}; new ids down to "
          + " ".join(f"{k}{result._new_ids[k]}" for k in KINDS))
    x0 = y0 = x1 = y1 = None
    boxes = []
    for header in base_headers:
        box = header.box()
        if box is not None and box.valid():
            boxes.append((box.bottom_left.lon, box.bottom_left.lat, box.top_right.lon, box.top_right.lat))
    if result._bbox:
        boxes.append(tuple(v / 1e7 for v in result._bbox))
    for bx0, by0, bx1, by1 in boxes:
        x0 = bx0 if x0 is None else min(x0, bx0)
        y0 = by0 if y0 is None else min(y0, by0)
        x1 = bx1 if x1 is None else max(x1, bx1)
        y1 = by1 if y1 is None else max(y1, by1)
    if x0 is not None:
        h.add_box(osmium.osm.Box(osmium.osm.Location(x0, y0), osmium.osm.Location(x1, y1)))
    return h


def _apply(reader_file: Path | None, buffers: list[tuple[bytes, str]], dest: Path, header, files: list[Path]) -> None:
    """libosmium's merge: *reader_file* streamed, *buffers* (data, format) held in memory; each object's
    highest version is written (a buffer's copy wins at the same version), deleted ones are left out."""
    import osmium

    mr = osmium.MergeInputReader()
    for data, fmt in buffers:
        mr.add_buffer(data, fmt)
    try:
        # libosmium's default pool leaves two cores idle (one thread on a small machine): PBF
        # decompression and compression are what this step spends its time on, so use the cores.
        pool = osmium.io.ThreadPool(max(2, min(8, os.cpu_count() or 1)))
        if reader_file is not None:
            reader = osmium.io.Reader(str(reader_file), thread_pool=pool)
        else:
            reader = osmium.io.Reader(osmium.io.FileBuffer(b"", "opl"), thread_pool=pool)
        writer = osmium.io.Writer(str(dest), header, thread_pool=pool)
        try:
            mr.apply_to_reader(reader, writer, False)
        finally:
            writer.close()
            reader.close()
    except MapathonError:
        raise
    except Exception as e:
        raise MapathonError(f"{' / '.join(map(str, files)) or dest}: merging failed ({e})") from None


def _write_snapshot(result: MergeResult, dest: Path) -> None:
    rows: list[OsmObject] = []
    extracts = list(result._extracts)
    files = ([result.base] if result.base else []) + extracts  # what the inputs merge onto
    done = result._new_opl is not None  # new objects (id < 0) serialised while the base was being read
    for k in KINDS:
        table = result._final[k]
        if done:
            rows.extend(o for i, o in table.items() if i > 0 and (o.visible or files))
        elif not files:
            rows.extend(o for o in table.values() if o.visible)  # nothing to delete from
        else:
            rows.extend(table.values())
    headers = [_read_base_header(f) for f in files]
    buffers = []
    if done and len(result._new_opl) > 1:
        buffers.append((result._new_opl, "opl"))
    if rows:
        buffers.append((opl_bytes(rows, result._base_ts), "opl"))
    h = _snapshot_header(result, headers)
    if not extracts:
        _apply(result.base, buffers, dest, h, files)
        return
    # Extracts among the inputs: the biggest file (the base if any) is streamed, the others held by
    # libosmium; objects identical or differing only by version never reach Python.
    stream = result.base or max(extracts, key=lambda p: p.stat().st_size)
    held = []
    for f in files:
        if f != stream:
            try:
                held.append((f.read_bytes(), "pbf"))
            except OSError as e:
                raise MapathonError(f"{f}: cannot read ({e.strerror or e})") from None
    if not buffers:  # nothing from volunteers' files: one pass
        _apply(stream, held, dest, h, files)
        return
    # The volunteers' edits must beat the extracts' copies of the same version: merge the extracts
    # first, then the edits onto that.
    # named like *dest* (a temporary file of atomic_path), so a run killed meanwhile leaves nothing the
    # next run does not remove
    head, mark, tail = dest.name.rpartition(".tmp")
    tmp = dest.with_name(head + "-extracts.tmp" + tail if mark else dest.name + "-extracts.tmp.osm.pbf")
    try:
        _apply(stream, held, tmp, _empty_header(), files)
        del held
        _apply(tmp, buffers, dest, h, files)
    finally:
        tmp.unlink(missing_ok=True)


def _empty_header():
    import osmium

    return osmium.io.Header()


def _context_nodes(result: MergeResult, changes: list[OsmObject]) -> list[OsmObject]:
    """Unchanged nodes that the changed ways use (JOSM needs them to show and upload the ways)."""
    have = {o.id for o in changes if o.kind == NODE}
    fn = result._final[NODE]
    bn = result._base_objs[NODE]
    out: dict[int, OsmObject] = {}
    for o in changes:
        if o.kind == WAY and o.visible:
            for r in o.refs:
                if r in have or r in out:
                    continue
                n = fn.get(r)
                b = bn.get(r)
                if n is None or not n.visible or (b is not None and (b.version or 0) > (n.version or 0)):
                    n = b
                if n is not None and n.visible:
                    out[r] = n
    return list(out.values())


def write_merge(result: MergeResult, output: str | os.PathLike, *, upload: str | os.PathLike | None = None,
                josm: str | os.PathLike | None = None, upload_dir: str | os.PathLike | None = None,
                guide=None) -> MergeResult:
    """Write the snapshot (and the upload/JOSM files, the per-volunteer upload folder *upload_dir* with
    *guide*, an :class:`mapathon.osm.upload.GuideInfo`): all of them appear at the end, or none."""
    check_outputs(output, upload, josm, [i.path for i in result.inputs] + ([result.base] if result.base else []))
    if upload_dir is not None:
        from .. import upload as per_volunteer

        per_volunteer.check_upload_dir(upload_dir, [output, upload, josm, result.base,
                                                    *(i.path for i in result.inputs)])
    changes = result.changed_objects() if (upload is not None or josm is not None or upload_dir is not None) else []
    fill = {}
    for o in changes:
        if not o.visible:
            b = result._base_objs[o.kind].get(o.id)
            if b is not None and (o.kind != NODE or o.lon is None):
                fill[(o.kind, o.id)] = b
    t = time.perf_counter()
    with contextlib.ExitStack() as stack:
        snap = stack.enter_context(atomic_path(output))
        _write_snapshot(result, snap)
        result.stats.setdefault("timings", {})["write_snapshot"] = round(time.perf_counter() - t, 3)
        if upload is not None:
            tmp = stack.enter_context(atomic_path(upload))
            with open(tmp, "wb") as f:
                w = OscWriter(f)
                w.write(changes, fill)
                w.close()
        if josm is not None:
            tmp = stack.enter_context(atomic_path(josm))
            with open(tmp, "wb") as f:
                write_josm(f, changes, _context_nodes(result, changes), fill)
        if upload_dir is not None:
            files = per_volunteer.write_uploads(result, stack.enter_context(per_volunteer.upload_folder(upload_dir)),
                                                fill, guide)
    result.outputs = {"snapshot": str(output), "upload": str(upload) if upload else None,
                      "josm": str(josm) if josm else None}
    if upload_dir is not None:
        result.outputs["per_volunteer"] = {"folder": str(upload_dir), "files": [f.as_dict() for f in files]}
    return result


def merge(specs: Sequence[InputSpec | str | os.PathLike], output: str | os.PathLike, *,
          base: str | os.PathLike | None = None, upload: str | os.PathLike | None = None,
          josm: str | os.PathLike | None = None, skip_bad: bool = False,
          progress: Callable[[str], None] | None = None, upload_dir: str | os.PathLike | None = None,
          guide=None) -> MergeResult:
    """Merge *specs* (on *base* if given) into *output*, plus optional upload/JOSM files and the
    per-volunteer upload folder (:mod:`mapathon.osm.upload`)."""
    specs = [s if isinstance(s, InputSpec) else InputSpec(Path(s)) for s in specs]
    check_outputs(output, upload, josm, [s.path for s in specs] + ([base] if base else []))
    if upload_dir is not None:
        from ..upload import check_upload_dir

        check_upload_dir(upload_dir, [output, upload, josm, base, *(s.path for s in specs)])
    t = time.perf_counter()
    with paused_gc():
        result = plan_merge(specs, base=base, skip_bad=skip_bad, progress=progress, _for_writing=True)
        write_merge(result, output, upload=upload, josm=josm, upload_dir=upload_dir, guide=guide)
    result.stats["seconds"] = round(time.perf_counter() - t, 3)
    return result
