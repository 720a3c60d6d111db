"""Sync bundles: one zip file carrying a site's events (and, optionally, contributions).

Layout of a bundle (format version 1)::

    manifest.json           format, version, project id and name, site, mark, grid, counts,
                            and the size and sha256 of every other member
    events.jsonl            one event per line, as in the events table (without the local seq)
    contributions.jsonl     with --with-contributions: one submitted contribution per line
    contributions/<sha256><ending>   the submitted files, byte for byte
    survey.jsonl            field survey submissions (mapathon/survey), when there are some to send
    survey/photos/<instance>/<name>  their photos
    signature               HMAC-SHA256 of manifest.json with the project's key (meta ``sync_key``, made at
                            init, copied by ``sync clone``), in hex; checked before anything else is read

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
import hmac
import json
import math
import os
import re
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .. import events
from ..errors import MapathonError, UsageMistake
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
SIGNATURE = "signature"
KEY_META = "sync_key"
#: the latest time an imported event may carry, after this site's clock (a clock far ahead would push every
#: later change of every site after it: mapathon.events.causal_ts), and the earliest
MAX_AHEAD = timedelta(days=1)
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
#: logical clocks are stored as 64-bit integers, and each new event counts one above the highest known: a
#: bundle's clock below 2^53 leaves room for all the events ever made (and is exact in JSON everywhere)
MAX_LAMPORT = 1 << 53
MAX_TEXT = 200  # actors, names, ids in data
MAX_COMMENT = 5000
MAX_DATA = 1 << 16  # bytes of one event's data, as JSON
#: every action an event may have (mapathon writes no other); task actions are the replay's
KNOWN_ACTIONS = frozenset(replay.TASK_ACTIONS) | {
    "project.init", "project.hashtags", "project.lang", "grid.create", "imagery.add", "imagery.default",
    "imagery.fetch", "imagery.import", "volunteer.add", "volunteer.update", "volunteer.rename", "volunteer.merge",
    "volunteer.remove", "contribution.submit", "merge", "site.clone", "site.reserve", "site.unreserve", replay.IMPORT,
    "survey.submit", "survey.merge", "photo.add",
}


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
            raise UsageMistake("a mark is a number from a previous export (0 or more)", field="since", value=since)
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
    manifest_bytes = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode()
    signature = _sign(sync_key(project), manifest_bytes)
    with atomic_path(dest) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr(MANIFEST, manifest_bytes)
            z.writestr(SIGNATURE, signature)
            for name, data in members.items():
                # OSM files are often compressed already
                z.writestr(name, data, compress_type=zipfile.ZIP_STORED
                           if name.endswith((".gz", ".bz2", ".pbf")) else zipfile.ZIP_DEFLATED)
    return ExportResult(dest, project.site, since, mark, len(evs), len(contribs), manifest["counts"]["files"],
                        len(surveys))


def sync_key(project: Project) -> bytes:
    """The project's key that signs its bundles; made now for a project made before signed bundles."""
    key = project.meta(KEY_META)
    if not key:
        with project.transaction():
            key = project.meta(KEY_META)
            if not key:
                key = os.urandom(32).hex()
                project.set_meta(KEY_META, key)
    return bytes.fromhex(key)


def _sign(key: bytes, manifest: bytes) -> str:
    return hmac.new(key, manifest, hashlib.sha256).hexdigest()


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


def read_bundle(path: str | os.PathLike, project: Project | None = None, *, trust: bool = False) -> Bundle:
    """Open and check a bundle file completely; raises MapathonError naming what is wrong.

    With *project*, the bundle must be of that project and signed with its key (checked before anything
    else is read), unless *trust* (a bundle of a copy cloned before bundles were signed, or whose key
    differs: the organizer vouches for it)."""
    from ..osm.readers import decompression_limit

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
        # against "zip bombs": what the members expand to is bounded as for OSM files (mapathon/osm/readers.py)
        size, limit = path.stat().st_size, decompression_limit(path.stat().st_size)
        if sum(i.file_size for i in infos.values()) > limit:  # zipfile reads no more than these sizes
            raise MapathonError(
                f"{label}: refused: it expands to more than {limit / 1e6:g} MB ({size:,} bytes in the file); a "
                "sync bundle is never that big (a 'zip bomb'?). If it is real, raise MAPATHON_MAX_UNCOMPRESSED_MB / "
                "MAPATHON_MAX_RATIO. Nothing was imported")
        raw = _read(z, infos[MANIFEST], 1 << 20)
        if project is not None:
            _check_signature(z, infos, raw, project, label, trust)
        try:
            manifest = json.loads(raw)
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
        extra = sorted(set(infos) - set(members) - {MANIFEST, SIGNATURE})
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
            blob = _read(z, infos[name], want["size"], label=f"{label}: {name}")
            if hashlib.sha256(blob).hexdigest() != want["sha256"]:
                raise MapathonError(f"{label}: {name} does not match its sha256 checksum (changed or damaged "
                                    "in transit); nothing was imported")
            data[name] = blob
    now = events.utcnow()
    evs = [_check_event(e, label, i, now) for i, e in enumerate(_jsonl(data[EVENTS], f"{label}: {EVENTS}"), 1)]
    seen: set[str] = set()
    for i, e in enumerate(evs, 1):
        if e["id"] in seen:
            raise MapathonError(f"{label}: event {i} has the id {e['id']} of an earlier event of the bundle; "
                                "nothing was imported")
        seen.add(e["id"])
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
    if counts.get("survey", 0) != len(survey):
        raise MapathonError(f"{label}: holds {len(survey)} survey submissions but its manifest counts "
                            f"{counts.get('survey')!r} (tampered?); nothing was imported")
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
        if not _is_text(d[k]):
            raise bad(f"has a bad {k}")
    if not _received_ok(d["received"]):
        raise bad(f"has a bad time {d['received'][:40]!r}")
    for k, top in (("lon", 180), ("lat", 90), ("accuracy_m", 1e7)):
        v = d[k]
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v)
                              or abs(v) > top or k == "accuracy_m" and v < 0):
            raise bad(f"has a bad {k}")
    if not isinstance(d["answers"], dict) or not isinstance(d["tags"], dict):
        raise bad("has bad answers or tags")
    if not all(_is_text(k) and isinstance(v, str) and len(v) <= 255 for k, v in d["tags"].items()):
        raise bad("has bad OpenStreetMap tags (text keys and values of at most 255 characters)")
    if len(json.dumps(d["answers"], ensure_ascii=False)) > MAX_DATA:
        raise bad(f"has too many answers (more than {MAX_DATA} bytes)")
    if not isinstance(d["photos"], list) or not all(isinstance(p, str) and _PHOTO_RE.match(p) for p in d["photos"]):
        raise bad("has bad photo names")
    for k in ("picked_feature", "village"):
        if d[k] is not None and not _is_text(d[k]):
            raise bad(f"has a bad {k}")
    return d


def _received_ok(text: str) -> bool:
    """A survey's reception time as mapathon/survey writes it (ISO 8601), after 2000 and not in the future."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return EARLIEST <= t <= events.utcnow() + MAX_AHEAD


def _read(z: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, label: str | None = None) -> bytes:
    """The member, read a megabyte at a time, never more than *limit* bytes (zipfile itself stops at the
    size the zip declares, which :func:`read_bundle` bounds)."""
    parts, total = [], 0
    try:
        with z.open(info) as f:
            while True:
                block = f.read(min(1 << 20, limit + 1 - total))
                if not block:
                    break
                total += len(block)
                parts.append(block)
                if total > limit:
                    break
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise MapathonError(f"{label or z.filename}: truncated or damaged ({e}); nothing was imported: ask the "
                            "other site for a fresh 'mapathon sync export'") from None
    if total > limit:
        raise MapathonError(f"{label or z.filename}: larger than announced; nothing was imported")
    return b"".join(parts)


def _check_signature(z, infos, raw: bytes, project: Project, label: str, trust: bool) -> None:
    """Refuse a bundle not signed with *project*'s key (unless *trust*), naming the likely reason."""
    sig = _read(z, infos[SIGNATURE], 200, f"{label}: {SIGNATURE}") if SIGNATURE in infos else b""
    key = project.meta(KEY_META)  # not made here: a copy without a key cannot check (nothing is written)
    try:
        good = bool(key) and hmac.compare_digest(sig.strip(), _sign(bytes.fromhex(key), raw).encode())
    except (TypeError, ValueError):
        good = False
    if good:
        return
    try:
        m = json.loads(raw)
        m = m if isinstance(m, dict) else {}
    except (ValueError, UnicodeDecodeError):
        m = {}
    if m.get("format") == FORMAT and isinstance(m.get("version"), int) and m["version"] > FORMAT_VERSION:
        raise MapathonError(f"{label}: made by a newer mapathon (bundle format {m['version']}, this one reads up "
                            f"to {FORMAT_VERSION}); upgrade mapathon at this site first. Nothing was imported")
    if isinstance(m.get("project_id"), str) and m["project_id"] != project.id:
        raise MapathonError(f"{label}: a bundle of project {str(m.get('project_name'))[:80]!r} "
                            f"({m['project_id'][:40]}), not of this project {project.name!r} ({project.id}); "
                            "nothing was imported")
    if trust:
        return
    why = "has no signature" if not sig else "is not signed with this project's key"
    raise MapathonError(f"{label}: {why} (edited after export, or made by a copy cloned before mapathon signed "
                        "bundles); nothing was imported. Clone the project again for that site, or, if you know "
                        "where the file comes from, import it with --trust")


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


def _check_event(e, label: str, n: int, now: datetime | None = None) -> dict:
    """*e* as mapathon writes events, or a MapathonError naming the first thing wrong: every value of
    a known type and within range, so that nothing imported can make a later command fail."""
    from ..tasks import lifecycle as lc

    def bad(why):
        return MapathonError(f"{label}: event {n} {why}; nothing was imported")

    if not isinstance(e, dict) or set(e) != set(_EVENT_FIELDS):
        raise bad("does not have the fields of an event")
    for k in ("id", "site"):
        if not isinstance(e[k], str) or not _ID_RE.match(e[k]):
            raise bad(f"has a bad {k}")
    if not _is_int(e["lamport"]) or not 1 <= e["lamport"] < MAX_LAMPORT:
        raise bad(f"has a bad clock value {str(e['lamport'])[:30]} (a whole number from 1 to 2^53 - 1)")
    if not isinstance(e["ts"], str):
        raise bad("has no time")
    why = _bad_time(e["ts"], now)
    if why:
        raise bad(f"has a bad time {e['ts'][:40]!r} ({why})")
    if not _is_text(e["actor"]):
        raise bad(f"has a bad actor {str(e['actor'])[:40]!r}")
    if e["action"] not in KNOWN_ACTIONS:
        raise bad(f"has an unknown action {str(e['action'])[:40]!r}")
    task_action = e["action"] in replay.TASK_ACTIONS
    if e["task"] is not None and not _is_text(e["task"]) or task_action and e["task"] is None:
        raise bad("has a bad task")
    for k in ("from_state", "to_state"):
        if e[k] is not None and e[k] not in lc.STATES or task_action and e[k] is None:
            raise bad(f"has an unknown {k.replace('_', ' ')} {str(e[k])[:40]!r}")
    if e["comment"] is not None and (not isinstance(e["comment"], str) or len(e["comment"]) > MAX_COMMENT):
        raise bad("has a bad comment")
    if e["data"] is not None:
        if not isinstance(e["data"], dict):
            raise bad("has bad data")
        if len(json.dumps(e["data"], ensure_ascii=False)) > MAX_DATA:
            raise bad(f"has too much data (more than {MAX_DATA} bytes)")
        why = _bad_data(e["action"], e["data"], now)
        if why:
            raise bad(why)
    return e


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_text(v, limit: int = MAX_TEXT) -> bool:
    """A short one-line text: a name, an actor, a task address."""
    import unicodedata

    return isinstance(v, str) and 0 < len(v) <= limit and not any(unicodedata.category(c) == "Cc" for c in v)


def _bad_time(ts: str, now: datetime | None) -> str | None:
    try:
        t = events.parse_iso(ts)
    except (ValueError, TypeError):
        return "not a time as mapathon writes it"
    if t < EARLIEST:
        return "before 2000"
    now = now or events.utcnow()
    if t > now + MAX_AHEAD:
        return (f"after {events.iso(now + MAX_AHEAD)[:16]}: the other computer's clock is wrong; set it right "
                "and export again")
    return None


#: keys of an event's data that are short texts (names, ids), by action
_DATA_TEXTS = {"volunteer.": ("name", "from", "merged", "osm_user"), "done": ("mapper",), "validate": ("mapper",),
               "invalidate": ("mapper",), "site.": ("site", "site_name", "from_site"), replay.IMPORT: ("from_site",),
               "contribution.submit": ("sha256",), "survey.submit": ("instance_id",)}
_DATA_LISTS = {"split": ("children",), "site.reserve": ("tasks", "villages"), "site.unreserve": ("tasks", "villages")}


def _bad_data(action: str, d: dict, now: datetime | None) -> str | None:
    """Why the data of an event is not what mapathon writes there, or None (what the replay, the volunteers'
    rows and the locks read from it is checked: mapathon/sync/replay.py, mapathon/tasks/volunteers.py)."""
    from ..tasks import volunteers

    for prefix, keys in _DATA_TEXTS.items():
        if action.startswith(prefix) if prefix.endswith(".") else action == prefix:
            for k in keys:
                if d.get(k) is not None and not _is_text(d[k]):
                    return f"has a bad {k} {str(d[k])[:40]!r} in its data"
    if action.startswith("volunteer."):
        for k in ("name", "from", "merged"):
            if d.get(k) is not None:
                try:
                    volunteers.check_name(d[k])
                except MapathonError as err:
                    return f"has a bad volunteer name ({err})"
        for k in ("validator", "organizer"):
            if d.get(k) is not None and not isinstance(d[k], bool) and d[k] not in (0, 1):
                return f"has a bad {k} flag in its data"
    if action.startswith("claim."):
        if not isinstance(d.get("expires"), str):
            return "has a bad lock end (data.expires)"
        why = _bad_time(d["expires"], (now or events.utcnow()) + timedelta(days=365))
        if why:
            return f"has a bad lock end {d['expires'][:40]!r} ({why})"
    for k in _DATA_LISTS.get(action, ()):
        if d.get(k) is not None and (not isinstance(d[k], list) or not all(_is_text(x) for x in d[k])):
            return f"has a bad list of {k} in its data"
    if action == replay.IMPORT:
        known = d.get("known")
        if not isinstance(known, dict) or not all(
                isinstance(k, str) and _ID_RE.match(k) and _is_int(v) and 0 <= v < MAX_LAMPORT
                for k, v in known.items()):
            return "has bad clock values in its data"
    return None


def _check_contribution(c, label: str, n: int) -> dict:
    def bad(why):
        return MapathonError(f"{label}: contribution {n} {why}; nothing was imported")

    if not isinstance(c, dict) or set(c) != set(_CONTRIB_FIELDS):
        raise bad("does not have the fields of a contribution")
    m = _FILE_RE.match(c["stored_name"]) if isinstance(c["stored_name"], str) else None
    if not m or m.group(1) != c["sha256"]:
        raise bad("has a bad stored name")
    for k in ("volunteer", "submitted", "original_name", "format"):
        if not _is_text(c[k]):
            raise bad(f"has a bad {k}")
    if _bad_time(c["submitted"], None):
        raise bad(f"has a bad time {c['submitted'][:40]!r} ({_bad_time(c['submitted'], None)})")
    for k in ("size", "objects"):
        if not _is_int(c[k]) or not 0 <= c[k] < MAX_LAMPORT:
            raise bad(f"has a bad {k}")
    if c["task_key"] is not None and not _is_text(c["task_key"]):
        raise bad("has a bad task")
    if not isinstance(c["counts"], dict) or not all(_is_int(v) and 0 <= v < MAX_LAMPORT for v in c["counts"].values()):
        raise bad("has bad counts")
    return c


# -- import -------------------------------------------------------------------------------------------------


def import_bundle(project: Project, path: str | os.PathLike, *, trust: bool = False) -> ImportResult:
    """Apply another site's bundle: all of it or, on any problem, nothing. *trust*: accept a bundle
    not signed with this project's key (:func:`read_bundle`)."""
    b = read_bundle(path, project, trust=trust)
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


def bundle_info(path: str | os.PathLike, project: Project | None = None, *, trust: bool = False) -> dict:
    """The manifest of a checked bundle (for 'mapathon sync show'); with *project*, its signature too."""
    b = read_bundle(path, project, trust=trust)
    return {k: v for k, v in b.manifest.items() if k != "members"} | {"members": len(b.manifest["members"])}


__all__ = ["export_bundle", "import_bundle", "read_bundle", "bundle_info", "ExportResult", "ImportResult",
           "FORMAT_VERSION"]
