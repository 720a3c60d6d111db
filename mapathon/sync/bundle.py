"""Sync bundles: one zip file carrying a site's events (and, optionally, contributions).

Layout of a bundle (format version 1)::

    manifest.json           format, version, project id and name, site, mark, grid, counts,
                            and the size and sha256 of every other member
    events.jsonl            one event per line, as in the events table (without the local seq)
    contributions.jsonl     with --with-contributions: one submitted contribution per line
    contributions/<sha256><ending>   the submitted files, byte for byte
    survey.jsonl            field survey submissions (mapathon/survey), when there are some to send
    survey/photos/<instance>/<name>  their photos

Importing checks everything before changing anything: the zip is whole, the
manifest is ours and not from a newer format, the project is the same, the
grid is the same, every member matches its checksum and nothing else is in
the file, every event is well formed, and an event already known here has the
same content. Then, in one transaction, new events are added (keyed by their
uuid: importing twice is importing once), volunteers and contributions
recorded, and the tasks rebuilt by :mod:`.replay`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import events
from ..errors import MapathonError
from ..fsutil import atomic_path
from ..project import Project
from . import people, replay

FORMAT = "mapathon-sync"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
EVENTS = "events.jsonl"
CONTRIBUTIONS = "contributions.jsonl"
FILES_DIR = "contributions/"
_FILE_RE = re.compile(r"^([0-9a-f]{64})\.(osm|osc|osm\.pbf)(\.gz|\.bz2)?$")
SURVEY = "survey.jsonl"
SURVEY_PHOTOS = "survey/photos/"
_PHOTO_RE = re.compile(r"^survey/photos/[A-Za-z0-9._-]{1,120}/[A-Za-z0-9._-]{1,120}$")
_ID_RE = re.compile(r"^[0-9A-Za-z._:-]{1,64}$")
_EVENT_FIELDS = ("id", "site", "lamport", "ts", "actor", "action", "task", "from_state", "to_state", "comment", "data")
_CONTRIB_FIELDS = ("sha256", "volunteer", "task_key", "submitted", "size", "original_name", "format", "stored_name",
                   "objects", "counts")
MAX_MEMBER_BYTES = 2 << 30


@dataclass
class ExportResult:
    path: Path
    site: str
    since: int | None
    mark: int  # give it as --since next time to send only what is newer
    events: int
    contributions: int
    files: int
    survey: int = 0

    def as_dict(self) -> dict:
        return asdict(self) | {"path": str(self.path)}


@dataclass
class ImportResult:
    path: Path
    site: str
    events_in_bundle: int
    events_new: int
    volunteers_new: list[str] = field(default_factory=list)
    contributions_new: int = 0
    tasks_changed: int = 0
    tasks_created: list[str] = field(default_factory=list)
    tasks_removed: list[str] = field(default_factory=list)
    conflicts: int = 0
    conflicts_new: int = 0
    survey_new: int = 0

    def as_dict(self) -> dict:
        return asdict(self) | {"path": str(self.path)}


# -- export ---------------------------------------------------------------------------------------------


def _event_dict(r) -> dict:
    d = {k: r[k] for k in _EVENT_FIELDS}
    d["data"] = json.loads(d["data"]) if d["data"] else None
    return d


def export_bundle(project: Project, dest: str | os.PathLike, *, since: int | None = None,
                  with_contributions: bool = False) -> ExportResult:
    """Write the project's events (those after local mark *since*, else all) to a bundle file."""
    conn = project.conn
    dest = Path(dest)
    last = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
    if since is not None:
        if since < 0:
            raise MapathonError(f"--since {since}: a mark is a number from a previous export (0 or more)")
        if since > last:
            raise MapathonError(f"--since {since}: this project's log only goes to {last}; "
                                "a mark is only meaningful for the project copy that printed it")
    # one read transaction: events and contributions from the same moment
    conn.execute("BEGIN")
    try:
        rows = conn.execute("SELECT * FROM events WHERE seq > ? ORDER BY seq", (since or 0,)).fetchall()
        mark = rows[-1]["seq"] if rows else (since or 0)
        evs = [_event_dict(r) for r in rows]
        contribs = []
        if with_contributions:
            sql = ("SELECT c.*, v.name AS volunteer FROM contributions c JOIN volunteers v ON v.id = c.volunteer_id"
                   " ORDER BY c.id")
            wanted = None
            if since:
                wanted = {(e["data"] or {}).get("sha256") for e in evs if e["action"] == "contribution.submit"}
            contribs = [r for r in conn.execute(sql) if wanted is None or r["sha256"] in wanted]
        grid = replay.current_grid_event(conn)
        surveys = conn.execute("SELECT * FROM survey_submissions ORDER BY id").fetchall()
        if since:
            sent = {(e["data"] or {}).get("instance_id") for e in evs if e["action"] == "survey.submit"}
            surveys = [r for r in surveys if r["instance_id"] in sent]
    finally:
        conn.execute("COMMIT")

    members: dict[str, bytes] = {
        EVENTS: "".join(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in evs).encode(),
    }
    if with_contributions:
        lines = []
        for c in contribs:
            d = {k: c[k] for k in _CONTRIB_FIELDS}
            d["counts"] = json.loads(d["counts"] or "{}")
            lines.append(json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n")
            src = project.path / "contributions" / c["stored_name"]
            try:
                members[FILES_DIR + c["stored_name"]] = src.read_bytes()
            except OSError:
                raise MapathonError(f"{src}: the stored copy of contribution {c['id']} ({c['original_name']}) "
                                    "is missing; it cannot be exported") from None
        members[CONTRIBUTIONS] = "".join(lines).encode()
    files = len(members) - 1 - with_contributions
    if surveys:  # field survey submissions and their photos (mapathon/survey/store.py)
        from ..survey.store import FIELDS

        lines = []
        for r in surveys:
            d = {k: r[k] for k in FIELDS} | {k: json.loads(r[k]) for k in ("answers", "tags", "photos")}
            lines.append(json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n")
            for rel in d["photos"]:
                try:
                    members[rel] = (project.path / rel).read_bytes()
                except OSError:
                    raise MapathonError(f"{project.path / rel}: a photo of survey submission {d['instance_id']} "
                                        "is missing; it cannot be exported") from None
        members[SURVEY] = "".join(lines).encode()
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "project_id": project.id,
        "project_name": project.name,
        "site": project.site,
        "created": events.iso(events.utcnow()),
        "since": since,
        "mark": mark,
        "grid": grid["id"] if grid else None,
        "counts": {"events": len(evs), "contributions": len(contribs), "files": files, "survey": len(surveys)},
        "members": {name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                    for name, data in members.items()},
    }
    with atomic_path(dest) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr(MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True))
            for name, data in members.items():
                # OSM files are often compressed already
                z.writestr(name, data, compress_type=zipfile.ZIP_STORED
                           if name.endswith((".gz", ".bz2", ".pbf")) else zipfile.ZIP_DEFLATED)
    return ExportResult(dest, project.site, since, mark, len(evs), len(contribs), manifest["counts"]["files"],
                        len(surveys))


# -- reading and checking ---------------------------------------------------------------------------------


@dataclass
class Bundle:
    path: Path
    manifest: dict
    events: list[dict]
    contributions: list[dict]
    files: dict[str, bytes]  # stored name -> bytes
    survey: list[dict] = field(default_factory=list)  # survey submissions
    photos: dict[str, bytes] = field(default_factory=dict)  # survey/photos/... -> bytes


def read_bundle(path: str | os.PathLike) -> Bundle:
    """Open and check a bundle file completely; raises MapathonError naming what is wrong."""
    path = Path(path)
    label = str(path)
    if not path.is_file():
        raise MapathonError(f"{label}: no such file")
    bad = f"{label}: not a mapathon sync bundle, or truncated or damaged"
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise MapathonError(f"{bad} ({e}); nothing was imported: ask the other site for a fresh "
                            "'mapathon sync export'") from None
    with z:
        infos = {i.filename: i for i in z.infolist()}
        if MANIFEST not in infos:
            raise MapathonError(f"{bad} (no {MANIFEST})")
        try:
            manifest = json.loads(_read(z, infos[MANIFEST], 1 << 20))
        except (ValueError, UnicodeDecodeError) as e:
            raise MapathonError(f"{bad} ({MANIFEST} is not JSON: {e})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise MapathonError(f"{label}: not a mapathon sync bundle (its manifest is not one)")
        version = manifest.get("version")
        if not isinstance(version, int) or version < 1:
            raise MapathonError(f"{bad} (format version {version!r})")
        if version > FORMAT_VERSION:
            raise MapathonError(f"{label}: made by a newer mapathon (bundle format {version}, this one reads up to "
                                f"{FORMAT_VERSION}); upgrade mapathon at this site first. Nothing was imported")
        for k in ("project_id", "site"):
            if not isinstance(manifest.get(k), str) or not manifest[k]:
                raise MapathonError(f"{bad} (manifest has no {k})")
        members = manifest.get("members")
        if not isinstance(members, dict) or EVENTS not in members:
            raise MapathonError(f"{bad} (manifest lists no {EVENTS})")
        extra = sorted(set(infos) - set(members) - {MANIFEST})
        if extra:
            raise MapathonError(f"{label}: holds {extra[0]}, which its manifest does not list (tampered?); "
                                "nothing was imported")
        data: dict[str, bytes] = {}
        for name, want in members.items():
            if not (name in (EVENTS, CONTRIBUTIONS, SURVEY) or _PHOTO_RE.match(name) or (name.startswith(FILES_DIR)
                                                         and _FILE_RE.match(name[len(FILES_DIR):]))):
                raise MapathonError(f"{bad} (unexpected member name {name[:80]!r})")
            if name not in infos:
                raise MapathonError(f"{label}: {name} is missing (truncated?); nothing was imported")
            if not isinstance(want, dict) or not isinstance(want.get("size"), int) or \
                    not isinstance(want.get("sha256"), str):
                raise MapathonError(f"{bad} (manifest entry of {name})")
            if infos[name].file_size != want["size"]:
                raise MapathonError(f"{label}: {name} has {infos[name].file_size} bytes, its manifest says "
                                    f"{want['size']} (truncated or tampered); nothing was imported")
            blob = _read(z, infos[name], min(want["size"], MAX_MEMBER_BYTES), label=f"{label}: {name}")
            if hashlib.sha256(blob).hexdigest() != want["sha256"]:
                raise MapathonError(f"{label}: {name} does not match its sha256 checksum (changed or damaged "
                                    "in transit); nothing was imported")
            data[name] = blob
    evs = [_check_event(e, label, i) for i, e in enumerate(_jsonl(data[EVENTS], f"{label}: {EVENTS}"), 1)]
    contribs = [_check_contribution(c, label, i)
                for i, c in enumerate(_jsonl(data.get(CONTRIBUTIONS, b""), f"{label}: {CONTRIBUTIONS}"), 1)]
    files = {name[len(FILES_DIR):]: blob for name, blob in data.items() if name.startswith(FILES_DIR)}
    for stored, blob in files.items():
        if hashlib.sha256(blob).hexdigest() != stored[:64]:
            raise MapathonError(f"{label}: {FILES_DIR}{stored} does not match the checksum in its name; "
                                "nothing was imported")
    for c in contribs:
        if c["stored_name"] not in files:
            raise MapathonError(f"{label}: contribution {c['sha256'][:12]} has no file in the bundle; "
                                "nothing was imported")
    counts = manifest.get("counts") or {}
    if counts.get("events") != len(evs) or counts.get("contributions", 0) != len(contribs):
        raise MapathonError(f"{label}: holds {len(evs)} events and {len(contribs)} contributions but its manifest "
                            "counts differ (tampered?); nothing was imported")
    survey = [_check_survey(d, label, i) for i, d in enumerate(_jsonl(data.get(SURVEY, b""), f"{label}: {SURVEY}"), 1)]
    photos = {name: blob for name, blob in data.items() if name.startswith(SURVEY_PHOTOS)}
    for d in survey:
        for rel in d["photos"]:
            if rel not in photos:
                raise MapathonError(f"{label}: survey submission {d['instance_id']} has no photo {rel} in the bundle; "
                                    "nothing was imported")
    return Bundle(path, manifest, evs, contribs, files, survey, photos)


def _check_survey(d, label: str, n: int) -> dict:
    from ..survey.store import FIELDS

    def bad(why):
        return MapathonError(f"{label}: survey submission {n} {why}; nothing was imported")

    if not isinstance(d, dict) or set(d) != set(FIELDS):
        raise bad("does not have the fields of a survey submission")
    for k in ("instance_id", "form_id", "form_version", "surveyor", "received"):
        if not isinstance(d[k], str) or not d[k] or len(d[k]) > 200:
            raise bad(f"has a bad {k}")
    for k in ("lon", "lat", "accuracy_m"):
        if d[k] is not None and (not isinstance(d[k], (int, float)) or isinstance(d[k], bool)):
            raise bad(f"has a bad {k}")
    if not isinstance(d["answers"], dict) or not isinstance(d["tags"], dict):
        raise bad("has bad answers or tags")
    if not isinstance(d["photos"], list) or not all(isinstance(p, str) and _PHOTO_RE.match(p) for p in d["photos"]):
        raise bad("has bad photo names")
    for k in ("picked_feature", "village"):
        if d[k] is not None and not isinstance(d[k], str):
            raise bad(f"has a bad {k}")
    return d


def _read(z: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, label: str | None = None) -> bytes:
    try:
        with z.open(info) as f:
            blob = f.read(limit + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise MapathonError(f"{label or z.filename}: truncated or damaged ({e}); nothing was imported: ask the "
                            "other site for a fresh 'mapathon sync export'") from None
    if len(blob) > limit:
        raise MapathonError(f"{label or z.filename}: larger than announced; nothing was imported")
    return blob


def _jsonl(blob: bytes, label: str) -> list:
    out = []
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        raise MapathonError(f"{label}: not UTF-8 text") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError as e:
            raise MapathonError(f"{label} line {n}: not JSON ({e})") from None
    return out


def _check_event(e, label: str, n: int) -> dict:
    def bad(why):
        return MapathonError(f"{label}: event {n} {why}; nothing was imported")

    if not isinstance(e, dict) or set(e) != set(_EVENT_FIELDS):
        raise bad("does not have the fields of an event")
    for k in ("id", "site"):
        if not isinstance(e[k], str) or not _ID_RE.match(e[k]):
            raise bad(f"has a bad {k}")
    if not isinstance(e["lamport"], int) or isinstance(e["lamport"], bool) or e["lamport"] < 1:
        raise bad("has a bad clock value")
    if not isinstance(e["ts"], str):
        raise bad("has no time")
    try:
        events.parse_iso(e["ts"])
    except ValueError:
        raise bad(f"has a bad time {e['ts'][:40]!r}") from None
    for k in ("actor", "action"):
        if not isinstance(e[k], str) or not e[k] or len(e[k]) > 200:
            raise bad(f"has a bad {k}")
    for k in ("task", "from_state", "to_state", "comment"):
        if e[k] is not None and not isinstance(e[k], str):
            raise bad(f"has a bad {k}")
    if e["data"] is not None and not isinstance(e["data"], dict):
        raise bad("has bad data")
    return e


def _check_contribution(c, label: str, n: int) -> dict:
    def bad(why):
        return MapathonError(f"{label}: contribution {n} {why}; nothing was imported")

    if not isinstance(c, dict) or set(c) != set(_CONTRIB_FIELDS):
        raise bad("does not have the fields of a contribution")
    m = _FILE_RE.match(c["stored_name"]) if isinstance(c["stored_name"], str) else None
    if not m or m.group(1) != c["sha256"]:
        raise bad("has a bad stored name")
    for k in ("volunteer", "submitted", "original_name", "format"):
        if not isinstance(c[k], str) or not c[k]:
            raise bad(f"has a bad {k}")
    for k in ("size", "objects"):
        if not isinstance(c[k], int) or c[k] < 0:
            raise bad(f"has a bad {k}")
    if c["task_key"] is not None and not isinstance(c["task_key"], str):
        raise bad("has a bad task")
    if not isinstance(c["counts"], dict):
        raise bad("has bad counts")
    return c


# -- import -------------------------------------------------------------------------------------------------


def import_bundle(project: Project, path: str | os.PathLike) -> ImportResult:
    """Apply another site's bundle: all of it or, on any problem, nothing."""
    b = read_bundle(path)
    label = str(b.path)
    m = b.manifest
    if m["project_id"] != project.id:
        raise MapathonError(f"{label}: a bundle of project {m.get('project_name')!r} ({m['project_id']}), not of "
                            f"this project {project.name!r} ({project.id}); nothing was imported")
    conn = project.conn
    written: list[Path] = []
    try:
        # contribution files first (content-addressed: an unreferenced copy is harmless, and removed on failure)
        if b.contributions:
            from ..osm.submit import CONTRIBUTIONS_DIR, _store

            folder = project.path / CONTRIBUTIONS_DIR
            known = {r[0] for r in conn.execute("SELECT sha256 FROM contributions")}
            for c in b.contributions:
                if c["sha256"] not in known and not (folder / c["stored_name"]).exists():
                    written.append(_store(folder, c["stored_name"], b.files[c["stored_name"]], c["sha256"]))
        if b.survey:  # survey photos of submissions not here yet
            have = {r[0] for r in conn.execute("SELECT instance_id FROM survey_submissions")}
            for d in b.survey:
                for rel in d["photos"]:
                    dest = project.path / rel
                    if d["instance_id"] not in have and not dest.exists():
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        with atomic_path(dest) as tmp:
                            tmp.write_bytes(b.photos[rel])
                        written.append(dest)
        with project.transaction():
            result = _import(project, b)
    except BaseException:
        for f in written:
            f.unlink(missing_ok=True)
        raise
    return result


def _import(project: Project, b: Bundle) -> ImportResult:
    conn = project.conn
    label = str(b.path)
    grid = replay.current_grid_event(conn)
    if b.manifest.get("grid") != (grid["id"] if grid else None):
        raise MapathonError(
            f"{label}: the other site's task grid is not this project's grid (one of the copies was gridded "
            "again after they were separated); sync only works between copies of the same grid. Nothing was imported")

    # events: new ones are added; known ones must be identical
    incoming = {e["id"]: e for e in b.events}
    known: dict[str, dict] = {}
    ids = list(incoming)
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        for r in conn.execute(f"SELECT * FROM events WHERE id IN ({','.join('?' * len(chunk))})", chunk):
            known[r["id"]] = _event_dict(r)
    for eid, have in known.items():
        if have != incoming[eid]:
            raise MapathonError(f"{label}: event {eid} differs from the one this project has (tampered or damaged "
                                "bundle); nothing was imported")
    new = sorted((e for e in incoming.values() if e["id"] not in known),
                 key=lambda e: (e["ts"], e["lamport"], e["site"], e["id"]))
    if any(e["action"] == "grid.create" for e in new):
        raise MapathonError(f"{label}: the other site made a new task grid; sync only works between copies of the "
                            "same grid. Nothing was imported")
    conn.executemany(
        """INSERT INTO events (id, site, lamport, ts, actor, action, task, from_state, to_state, comment, data)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [(e["id"], e["site"], e["lamport"], e["ts"], e["actor"], e["action"], e["task"], e["from_state"],
          e["to_state"], e["comment"],
          json.dumps(e["data"], ensure_ascii=False, sort_keys=True) if e["data"] else None) for e in new])
    result = ImportResult(b.path, b.manifest["site"], len(b.events), len(new))
    if any(e["action"] != replay.IMPORT for e in new):
        # what this site knows from now on, so that the replay can tell which line its later changes follow
        known: dict[str, int] = {}
        for e in b.events:
            known[e["site"]] = max(known.get(e["site"], 0), e["lamport"])
        events.record(conn, site=project.site, actor="system", action=replay.IMPORT,
                      comment=f"bundle of site {b.manifest['site'][:8]}",
                      data={"from_site": b.manifest["site"], "known": known})

    result.volunteers_new = _apply_volunteers(project, [e for e in new if e["action"].startswith("volunteer.")])
    result.contributions_new = _add_contributions(project, b.contributions)
    if b.survey:
        from ..survey.store import Submission, insert_row

        result.survey_new = sum(insert_row(conn, Submission(**d)) for d in b.survey)

    before = {r[0] for r in conn.execute("SELECT event_id FROM sync_conflicts")}
    r = replay.apply(project)
    result.tasks_changed = len(r.changed)
    result.tasks_created = r.created
    result.tasks_removed = r.removed
    result.conflicts = len(r.conflicts)
    result.conflicts_new = len({c.event_id for c in r.conflicts} - before)
    # contributions recorded before their split child existed here: point them at it now
    conn.execute("""UPDATE contributions SET task_id = (SELECT id FROM tasks WHERE tasks.key = contributions.task_key)
                     WHERE task_key IS NOT NULL AND task_id IS NULL""")
    return result


def _apply_volunteers(project: Project, evs: list[dict]) -> list[str]:
    """Register volunteers added at the other site and merge their roles (roles are only ever granted);
    apply its renames, merges and removals (mapathon/tasks/volunteers.py)."""
    from ..tasks import volunteers

    conn = project.conn
    added = []
    for e in sorted(evs, key=lambda e: (e["ts"], e["lamport"], e["site"], e["id"])):
        d = e["data"] or {}
        if e["action"] in volunteers.IDENTITY_ACTIONS:
            volunteers.apply_identity_event(project, e["action"], d, e["ts"])
            continue
        name = d.get("name")
        if not isinstance(name, str) or not name.strip():
            continue
        vid = people.find_id(conn, name)
        if vid is None:
            people.insert(conn, name, created=e["ts"], osm_user=d.get("osm_user"), validator=bool(d.get("validator")),
                          organizer=bool(d.get("organizer")))
            added.append(name)
        else:
            conn.execute("""UPDATE volunteers SET is_validator = greatest(is_validator, ?), is_organizer = greatest(is_organizer, ?)
                             WHERE id = ?""", (int(bool(d.get("validator"))), int(bool(d.get("organizer"))), vid))
    # the OSM user name: the last one given, in the merged order (the same at every site)
    touched = {people.name_key(n) for n in ((e["data"] or {}).get("name") for e in evs) if isinstance(n, str)}
    if touched:
        latest: dict[str, str] = {}
        for data, in conn.execute(
                f"""SELECT data FROM events WHERE action IN ('volunteer.add', 'volunteer.update') AND data IS NOT NULL
                     ORDER BY {replay.ORDER_SQL}"""):
            d = json.loads(data)
            if isinstance(d.get("name"), str) and d.get("osm_user") and people.name_key(d["name"]) in touched:
                latest[people.name_key(d["name"])] = d["osm_user"]
        for k, osm_user in latest.items():
            vid = people.ids_by_key(conn).get(k)
            if vid is not None:
                conn.execute("UPDATE volunteers SET osm_user = ? WHERE id = ?", (osm_user, vid))
    return added


def _add_contributions(project: Project, contribs: list[dict]) -> int:
    conn = project.conn
    n = 0
    for c in sorted(contribs, key=lambda c: (c["submitted"], c["sha256"])):
        vid = people.find_id(conn, c["volunteer"])
        if vid is None:
            vid = people.insert(conn, c["volunteer"], created=c["submitted"])
        task = conn.execute("SELECT id FROM tasks WHERE key = ?", (c["task_key"],)).fetchone() if c["task_key"] else None
        cur = conn.execute(
            """INSERT INTO contributions (sha256, volunteer_id, task_id, task_key, submitted, size, original_name,
                                          format, stored_name, objects, counts)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING""",
            (c["sha256"], vid, task[0] if task else None, c["task_key"], c["submitted"], c["size"],
             c["original_name"], c["format"], c["stored_name"], c["objects"], json.dumps(c["counts"])))
        n += cur.rowcount
    return n


def bundle_info(path: str | os.PathLike) -> dict:
    """The manifest of a checked bundle (for 'mapathon sync show')."""
    b = read_bundle(path)
    return {k: v for k, v in b.manifest.items() if k != "members"} | {"members": len(b.manifest["members"])}


__all__ = ["export_bundle", "import_bundle", "read_bundle", "bundle_info", "ExportResult", "ImportResult",
           "FORMAT_VERSION"]
