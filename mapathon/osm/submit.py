"""Collecting volunteers' OSM files into the project (``mapathon submit``).

A submitted file is checked (a readable OSM file with the right name), then
copied, byte for byte, to ``<project>/contributions/<sha256><ending>`` and
recorded in the ``contributions`` table with who sent it, for which task,
when, its size and checksum, in the same transaction as a
``contribution.submit`` event. The same bytes submitted twice are recorded
once. Stored files are never changed afterwards: the copy is
content-addressed, so a file that is already there is left alone (or
rewritten with the right bytes if it was damaged).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .. import events
from ..errors import MapathonError, NotPermitted
from ..project import Project
from .merge import InputSpec
from .readers import file_format, read_osm_file

CONTRIBUTIONS_DIR = "contributions"


@dataclass
class Contribution:
    id: int
    sha256: str
    original_name: str
    volunteer: str
    task: str | None  # task key, e.g. "16/31098/30153"
    task_id: int | None
    submitted: str
    size: int
    format: str
    path: Path  # the stored copy
    objects: int
    counts: dict = field(default_factory=dict)
    already: bool = False  # True when these bytes had been submitted before (nothing new recorded)

    def as_dict(self) -> dict:
        return {"id": self.id, "sha256": self.sha256, "file": self.original_name, "volunteer": self.volunteer,
                "task": self.task, "task_id": self.task_id, "submitted": self.submitted, "size": self.size,
                "format": self.format, "stored": str(self.path), "objects": self.objects, **self.counts,
                "already_submitted": self.already}

    @property
    def label(self) -> str:
        """How merge messages name this file."""
        return f"{self.original_name} (contribution {self.id} by {self.volunteer})"


def _from_row(project: Project, r: sqlite3.Row, already: bool = False) -> Contribution:
    return Contribution(r["id"], r["sha256"], r["original_name"], r["volunteer"], r["task_key"], r["task_id"],
                        r["submitted"], r["size"], r["format"], project.path / CONTRIBUTIONS_DIR / r["stored_name"],
                        r["objects"], json.loads(r["counts"] or "{}"), already)


_SELECT = """SELECT c.*, v.name AS volunteer FROM contributions c JOIN volunteers v ON v.id = c.volunteer_id"""


def _store(folder: Path, stored_name: str, data: bytes, sha: str) -> Path:
    """Write *data* to folder/stored_name unless an intact copy is there (temp file, fsync, rename)."""
    dest = folder / stored_name
    if dest.is_file():
        h = hashlib.sha256()
        with open(dest, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() == sha:
            return dest
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".submit.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return dest


def check_may_submit(project: Project, task, name: str) -> None:
    """Raise :class:`NotPermitted` unless the volunteer *name* may hand in files for *task*
    (a lifecycle Task): the volunteer who holds it or mapped it, or a validator or an organizer.
    Otherwise a file for a square that someone else mapped, and a validator accepted, would be
    credited to whoever sent it."""
    from .. import names
    from ..tasks import volunteers

    vol = volunteers.find(project, name)
    if vol is not None and (vol.can_validate or any(
            who and names.key(who) == names.key(vol.name) for who in (task.locked_by, task.mapped_by))):
        return
    whose = (f"held by {task.locked_by}" if task.locked_by else f"mapped by {task.mapped_by}" if task.mapped_by
             else "held by nobody")
    raise NotPermitted(f"task {task.id} ({task.key}) is {task.state}, {whose}: {vol.name if vol else name} may not "
                       "hand in files for it (only the volunteer who holds or mapped it, a validator or an "
                       "organizer may; claim it first)")


def submit(project: Project, files: Iterable[str | os.PathLike], volunteer: str, task: str | None = None, *,
           actor: str | None = None, new: bool = False) -> list[Contribution]:
    """Check, copy and record volunteer files. All files are checked before anything is recorded.

    With *task*, only its holder or mapper, a validator or an organizer may submit
    (:func:`check_may_submit`). An unknown *volunteer* is registered, unless the name is close to
    a volunteer's and *new* does not say it is someone new (``volunteers.ensure``).

    Returns one :class:`Contribution` per distinct file, ``already=True`` for
    bytes that the project had already recorded.
    """
    from ..tasks import lifecycle, volunteers

    name = volunteers.check_name(volunteer)
    paths = [Path(f) for f in files]
    if not paths:
        raise MapathonError("give at least one file to submit")
    the_task = lifecycle.get_task(project, task) if task is not None else None
    if the_task is not None:
        check_may_submit(project, the_task, name)  # before any file is copied

    checked: list[tuple[Path, bytes, str, str, str, int, dict]] = []
    seen: set[str] = set()
    for path in paths:
        kind, comp, ending = file_format(path)
        try:
            data = path.read_bytes()
        except IsADirectoryError:
            raise MapathonError(f"{path}: is a folder, not a file") from None
        except OSError as e:
            raise MapathonError(f"{path}: cannot read ({e.strerror or e})") from None
        osm = read_osm_file(path, data=data)  # raises MapathonError naming the file
        sha = hashlib.sha256(data).hexdigest()
        if sha in seen:
            continue
        seen.add(sha)
        stored_ending = ".osm.pbf" + ending[len(".pbf"):] if ending.startswith(".pbf") else ending
        checked.append((path, data, sha, osm.format, stored_ending, osm.count(), osm.counts()))

    folder = project.path / CONTRIBUTIONS_DIR
    for path, data, sha, fmt, ending, _n, _c in checked:
        _store(folder, sha + ending, data, sha)

    out: list[Contribution] = []
    now = events.iso(events.utcnow())
    with project.transaction():
        vol, _created = volunteers.ensure(project, name, new=new)
        if the_task is not None:  # again, in the transaction that records: the task may have changed meanwhile
            the_task = lifecycle.get_task(project, the_task.id)
            check_may_submit(project, the_task, vol.name)
        for path, data, sha, fmt, ending, n, counts in checked:
            cur = project.conn.execute(
                """INSERT INTO contributions (sha256, volunteer_id, task_id, task_key, submitted, size, original_name,
                                              format, stored_name, objects, counts)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING""",
                (sha, vol.id, the_task.id if the_task else None, the_task.key if the_task else None, now, len(data),
                 path.name, fmt, sha + ending, n, json.dumps(counts)))
            fresh = cur.rowcount == 1
            row = project.conn.execute(_SELECT + " WHERE c.sha256 = ?", (sha,)).fetchone()
            c = _from_row(project, row, already=not fresh)
            if fresh:
                project.record(actor=actor or vol.name, action="contribution.submit",
                               task=the_task.key if the_task else None,
                               data={"contribution": c.id, "sha256": sha, "file": path.name, "size": len(data),
                                     "format": fmt, "volunteer": vol.name, "objects": n, **counts})
            out.append(c)
    return out


def list_contributions(project: Project) -> list[Contribution]:
    """Every recorded contribution, in submission order."""
    return [_from_row(project, r) for r in project.conn.execute(_SELECT + " ORDER BY c.id")]


def find_by_sha(project: Project, sha256: str) -> Contribution | None:
    row = project.conn.execute(_SELECT + " WHERE c.sha256 = ?", (sha256,)).fetchone()
    return _from_row(project, row) if row else None


def merge_inputs(project: Project) -> list[InputSpec]:
    """The project's contributions as merge inputs, in submission order (the conflict rule's order)."""
    specs = []
    for c in list_contributions(project):
        if not c.path.is_file():
            raise MapathonError(f"{c.path}: the stored copy of contribution {c.id} ({c.original_name}, "
                                f"{c.volunteer}) is missing from the project folder")
        specs.append(InputSpec(c.path, name=c.label, volunteer=c.volunteer, task=c.task, contribution=c.id,
                               sha256=c.sha256, display=c.original_name))
    return specs


def with_provenance(project: Project | None, paths: Iterable[str | os.PathLike]) -> list[InputSpec]:
    """Merge inputs for files given by name; files the project knows (same bytes) get their volunteer and task."""
    specs = []
    for p in paths:
        p = Path(p)
        spec = InputSpec(p)
        if project is not None and p.is_file():
            h = hashlib.sha256(p.read_bytes()).hexdigest()
            c = find_by_sha(project, h)
            if c is not None:
                spec = InputSpec(p, volunteer=c.volunteer, task=c.task, contribution=c.id)
        specs.append(spec)
    return specs


LATEST_MERGE = Path("merged") / "latest.osm.pbf"


def latest_data(project: Project) -> Path:
    """The project's latest OpenStreetMap data: the snapshot the last ``merge`` published
    (``merged/latest.osm.pbf``). Raises MapathonError when there is none yet."""
    latest = project.path / LATEST_MERGE
    if latest.is_file():
        return latest
    raise MapathonError(f"{project.path}: no merged data yet ({LATEST_MERGE} is missing); "
                        f"run 'mapathon merge' first")


def publish_merge(project: Project, result, actor: str = "organizer") -> Path:
    """Keep a copy of a merged snapshot as the project's latest data (``merged/latest.osm.pbf``,
    which ``mapathon print`` uses by default) and record the merge in the event log."""
    import shutil

    from ..fsutil import atomic_path

    snapshot = Path(result.outputs["snapshot"])
    dest = project.path / LATEST_MERGE
    dest.parent.mkdir(exist_ok=True)
    if snapshot.resolve() != dest.resolve():
        with atomic_path(dest) as tmp:
            shutil.copyfile(snapshot, tmp)
    with project.transaction():
        project.record(actor=actor, action="merge", data={"stats": result.stats, "outputs": result.outputs,
                                                           "conflicts": len(result.conflicts)})
    return dest
