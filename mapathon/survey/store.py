"""Survey submissions kept in the project (table ``survey_submissions``, photos in ``<project>/survey/photos/``).

One row per ODK instance (its ``instanceID``, ``uuid:…``): a submission sent twice, by a phone that did
not hear the first answer or by an import of the same phone folder, is stored once. Photos are written
under ``<project>/survey/photos/<instance>/<name>`` (temporary file, then rename) before the row is committed,
so a row never names a missing photo.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import shapely

from .. import events, fsutil, names
from ..errors import MapathonError
from ..project import Project

PHOTO_DIR = "survey/photos"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Submission:
    instance_id: str                  # "uuid:…" as ODK writes it in <meta><instanceID>
    form_id: str
    form_version: str
    surveyor: str
    received: str                     # UTC, ISO 8601 (when the laptop got it)
    lon: float | None = None
    lat: float | None = None
    accuracy_m: float | None = None
    answers: dict = field(default_factory=dict)    # field name -> answer, as in the form
    tags: dict = field(default_factory=dict)       # the OpenStreetMap tags the answers map to (forms.tags_for)
    picked_feature: str | None = None              # "node/123" when the surveyor picked an existing feature
    photos: list = field(default_factory=list)     # paths relative to the project folder
    village: str | None = None                     # the project's village the point falls in (or nearest)

    def as_dict(self) -> dict:
        return asdict(self)


def safe_name(name: str) -> str:
    """A file name that stays inside its folder (no path, no odd characters)."""
    base = Path(str(name).replace("\\", "/")).name
    base = _SAFE_NAME.sub("_", base).strip("._") or "photo"
    return base[:120]


def instance_folder(instance_id: str) -> str:
    return safe_name(instance_id.removeprefix("uuid:"))


def village_at(project: Project, lon: float | None, lat: float | None, areas: list | None = None) -> str | None:
    """The village whose area holds the point, else the one whose centre is nearest (None without a point).
    *areas*: the villages as (name, geometry), read once for many points (:func:`village_areas`)."""
    if lon is None or lat is None:
        return None
    rows = areas if areas is not None else village_areas(project)
    if not rows:
        return None
    pt = shapely.Point(lon, lat)
    best, best_d = None, None
    for name, geom in rows:
        if geom.contains(pt):
            return name
        d = geom.distance(pt)
        if best_d is None or d < best_d:
            best, best_d = name, d
    return best


def village_areas(project: Project) -> list[tuple[str, object]]:
    """The project's villages as (name, shapely geometry)."""
    return [(r["name"], shapely.from_wkb(r["geom"])) for r in project.villages()]


def _from_row(r) -> Submission:
    return Submission(r["instance_id"], r["form_id"], r["form_version"], r["surveyor"], r["received"], r["lon"],
                      r["lat"], r["accuracy_m"], json.loads(r["answers"] or "{}"), json.loads(r["tags"] or "{}"),
                      r["picked_feature"], json.loads(r["photos"] or "[]"), r["village"])


def list_submissions(project: Project, village: str | None = None, surveyor: str | None = None) -> list[Submission]:
    """Stored submissions, oldest first; *village* and *surveyor* compare without case or accents."""
    rows = project.conn.execute("SELECT * FROM survey_submissions ORDER BY id").fetchall()
    out = [_from_row(r) for r in rows]
    if village is not None:
        wanted = names.key(project.village(village)["name"])
        out = [s for s in out if s.village and names.key(s.village) == wanted]
    if surveyor is not None:
        wanted = names.key(surveyor)
        out = [s for s in out if names.key(s.surveyor) == wanted]
    return out


def has_submission(project: Project, instance_id: str) -> bool:
    return project.conn.execute("SELECT 1 FROM survey_submissions WHERE instance_id = ?",
                                (instance_id,)).fetchone() is not None


def stored_ids(project: Project, instance_ids) -> set[str]:
    """Those of *instance_ids* already stored (read with one statement per 500)."""
    ids, have = list(dict.fromkeys(instance_ids)), set()
    for at in range(0, len(ids), 500):
        part = ids[at:at + 500]
        have.update(r[0] for r in project.conn.execute(
            f"SELECT instance_id FROM survey_submissions WHERE instance_id IN ({', '.join('?' * len(part))})", part))
    return have


def _write_photo(dest: Path, data: bytes | memoryview) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fsutil.write_bytes(dest, data)


def store_photos(project_path: Path, sub: Submission, photo_bytes: dict[str, bytes | memoryview] | None) -> None:
    """Write the photos under ``survey/photos/<instance>/`` and name them in ``sub.photos``."""
    folder = Path(PHOTO_DIR) / instance_folder(sub.instance_id)
    stored = []
    for name, data in (photo_bytes or {}).items():
        rel = folder / safe_name(name)
        _write_photo(Path(project_path) / rel, data)
        stored.append(rel.as_posix())
    if stored:
        sub.photos = stored


FIELDS = ("instance_id", "form_id", "form_version", "surveyor", "received", "lon", "lat", "accuracy_m", "answers",
          "tags", "picked_feature", "photos", "village")


def _row(sub: Submission) -> tuple:
    """The values of *sub*'s row, in the order of :data:`FIELDS`."""
    return (sub.instance_id, sub.form_id, sub.form_version, sub.surveyor, sub.received, sub.lon, sub.lat,
            sub.accuracy_m, json.dumps(sub.answers, ensure_ascii=False, sort_keys=True),
            json.dumps(sub.tags, ensure_ascii=False, sort_keys=True), sub.picked_feature,
            json.dumps(sub.photos), sub.village)


def insert_row(conn, sub: Submission) -> bool:
    """The row of *sub*, inside the caller's transaction (sync imports use it too); False if already there."""
    cur = conn.execute(
        f"""INSERT INTO survey_submissions ({', '.join(FIELDS)}) VALUES ({', '.join('?' * len(FIELDS))})
            ON CONFLICT (instance_id) DO NOTHING""", _row(sub))
    return cur.rowcount > 0


def insert(project: Project, sub: Submission) -> bool:
    """Record *sub* (photos already stored) and a ``survey.submit`` event (sync sends what came after a mark);
    False when its instanceID is already there."""
    return insert_many(project, [sub])[0]


def insert_many(project: Project, subs: list[Submission]) -> list[bool]:
    """:func:`insert` for many submissions with one statement for the rows and one for the events
    (the room server records the forms of 50 phones sending at once this way); for each, False when its
    instanceID was already there (or comes twice: the first is kept)."""
    if not subs:
        return []
    areas = village_areas(project) if any(s.village is None for s in subs) else []
    for sub in subs:
        if sub.village is None:
            sub.village = village_at(project, sub.lon, sub.lat, areas)
    rows = [_row(sub) for sub in subs]
    marks = "(" + ", ".join("?" * len(FIELDS)) + ")"
    with project.transaction():
        stored: set[str] = set()  # the rows written now (not there before)
        for i in range(0, len(rows), 500):  # within SQLite's limit of bound values
            part = rows[i:i + 500]
            stored.update(r[0] for r in project.conn.execute(
                f"""INSERT INTO survey_submissions ({', '.join(FIELDS)}) VALUES {', '.join([marks] * len(part))}
                    ON CONFLICT (instance_id) DO NOTHING RETURNING instance_id""",
                [v for row in part for v in row]).fetchall())
        out = []
        for sub in subs:
            out.append(sub.instance_id in stored)
            stored.discard(sub.instance_id)  # the same instance twice: the first one is kept
        events.record_many(project.conn, project.site, [
            dict(actor=sub.surveyor, action="survey.submit",
                 data={"instance_id": sub.instance_id, "form_id": sub.form_id})
            for sub, new in zip(subs, out) if new])
    return out


def add_photos(project: Project, instance_id: str, photo_bytes: dict[str, bytes]) -> int:
    """Photos of a stored submission that came in a later request (ODK Collect splits large submissions):
    those not kept yet are stored; returns how many."""
    row = project.conn.execute("SELECT photos FROM survey_submissions WHERE instance_id = ?", (instance_id,)).fetchone()
    if row is None:
        return 0
    have = json.loads(row["photos"] or "[]")
    folder = Path(PHOTO_DIR) / instance_folder(instance_id)
    new = {n: d for n, d in photo_bytes.items() if (folder / safe_name(n)).as_posix() not in have}
    if not new:
        return 0
    tmp = Submission(instance_id, "", "", "", "")
    store_photos(project.path, tmp, new)
    with project.transaction():
        project.conn.execute("UPDATE survey_submissions SET photos = ? WHERE instance_id = ?",
                             (json.dumps(have + tmp.photos), instance_id))
    return len(new)


def add_submission(project: Project, sub: Submission, photo_bytes: dict[str, bytes] | None = None) -> bool:
    """Store *sub* and its photos (name -> bytes); False (nothing written) when its instanceID is already stored.

    ``sub.photos`` is filled with the stored paths (relative to the project); ``sub.village`` is found from
    the point when not given.
    """
    if not sub.instance_id:
        raise MapathonError("survey submission without an instanceID")
    if has_submission(project, sub.instance_id):
        return False
    store_photos(project.path, sub, photo_bytes)
    return insert(project, sub)


def now() -> str:
    return events.iso(events.utcnow())
