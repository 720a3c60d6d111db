"""``survey import``: submissions brought without any network.

* ODK Collect's instances folder, copied from a phone over USB (``Android/data/org.odk.collect.android/
  files/projects/<id>/instances``): one folder per filled form, its instance XML and its photos;
* an ODK Central export (the ``.csv`` or the ``.zip`` with ``media/``) or a KoboToolbox export (CSV with
  ``,`` or ``;``, XML names as headers; its attachments zip).

Each instance is read and stored on its own: a broken one is reported in one line and the others go on.
An instance already stored (same instanceID) is counted as already there, never stored twice.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .. import events
from ..errors import MapathonError
from ..project import Project
from . import forms, openrosa, store

MAX_CSV_BYTES = 200 * 1024 * 1024


@dataclass
class ImportResult:
    stored: list[str] = field(default_factory=list)      # instance ids
    already: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)      # one line each

    def as_dict(self) -> dict:
        return {"stored": len(self.stored), "already": len(self.already), "failed": self.failed}


def import_path(project: Project, path: str | Path, *, surveyor: str | None = None,
                form_id: str | None = None) -> ImportResult:
    """Import an instances folder, a CSV export or a zip export (see the module's text)."""
    path = Path(path)
    if not path.exists():
        raise MapathonError(f"{path}: no such file or folder")
    result = ImportResult()
    if path.is_dir():
        xmls = sorted(p for p in path.rglob("*.xml") if p.is_file())
        if not xmls:
            raise MapathonError(f"{path}: no instance XML in this folder (expected ODK Collect's instances folder)")
        for xml in xmls:
            label = str(xml.relative_to(path.parent))
            files = {p.name: p for p in xml.parent.iterdir() if p.is_file() and p != xml}
            _one(project, result, label, lambda: xml.read_bytes(), files, surveyor)
        return result
    suffix = path.suffix.lower()
    if suffix == ".csv":
        _csv(project, result, path.name, path.read_bytes(), {}, surveyor, form_id or _stem_form(path.name))
        return result
    if suffix == ".zip":
        try:
            zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise MapathonError(f"{path}: not a readable zip file") from None
        with zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            csvs = [m for m in members if m.filename.lower().endswith(".csv")]
            xmls = [m for m in members if m.filename.lower().endswith(".xml")]
            media = {Path(m.filename).name: m for m in members if m.filename.lower().endswith(openrosa.PHOTO_TYPES)}
            media_files = {n: _ZipMember(zf, m, f"{path.name}:{m.filename}") for n, m in media.items()}
            if csvs:
                # Central puts repeat groups in more CSVs (form-repeat.csv): the main one is the shortest name
                main = sorted(csvs, key=lambda m: (m.filename.count("-"), len(m.filename)))[0]
                data = _ZipMember(zf, main, f"{path.name}:{main.filename}", MAX_CSV_BYTES).read_bytes()
                _csv(project, result, f"{path.name}:{main.filename}", data, media_files, surveyor,
                     form_id or _stem_form(Path(main.filename).name))
            elif xmls:
                for m in xmls:
                    folder = str(Path(m.filename).parent)
                    files = {Path(o.filename).name: _ZipMember(zf, o, o.filename) for o in members
                             if str(Path(o.filename).parent) == folder and o is not m}
                    _one(project, result, f"{path.name}:{m.filename}",
                         lambda m=m: _ZipMember(zf, m, m.filename, openrosa.MAX_XML_BYTES + 1).read_bytes(),
                         files, surveyor)
            else:
                raise MapathonError(f"{path}: no CSV export and no instance XML in this zip")
        return result
    raise MapathonError(f"{path}: expected an instances folder, a .csv or a .zip export")


class _ZipMember:
    """A zip member read on demand, refusing more bytes than allowed (a zip bomb stops there)."""

    def __init__(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, limit: int = openrosa.MAX_PHOTO_BYTES):
        self.zf, self.info, self.label, self.limit = zf, info, label, limit
        self.name = Path(info.filename).name

    def stat_size(self) -> int:
        return self.info.file_size

    def read_bytes(self) -> bytes:
        with self.zf.open(self.info) as f:
            data = f.read(self.limit + 1)
        if len(data) > self.limit:
            raise openrosa.TooLarge(f"{self.label}: more than {self.limit / 1048576:g} MB allowed")
        return data


def _read_file(f, label: str) -> bytes:
    if isinstance(f, _ZipMember):
        return f.read_bytes()
    size = f.stat().st_size
    if size > openrosa.MAX_PHOTO_BYTES:
        raise openrosa.TooLarge(f"{label}: photo {f.name} is {size / 1048576:.1f} MB, more than the "
                            f"{openrosa.MAX_PHOTO_BYTES / 1048576:g} MB allowed")
    return f.read_bytes()


def _store(project: Project, result: ImportResult, sub: store.Submission, files: dict, label: str) -> None:
    if store.has_submission(project, sub.instance_id):
        result.already.append(sub.instance_id)
        return
    photo_fields = openrosa.photo_fields(project, sub)
    wanted = {sub.answers.get(f) for f in photo_fields} - {None, ""}
    photos = {}
    for name in sorted(wanted):
        f = files.get(name)
        if f is None:
            continue  # a photo not copied: the submission is kept without it
        photos[name] = _read_file(f, label)
    photos = openrosa.pick_photos(sub, photo_fields, photos, label)
    if store.add_submission(project, sub, photos):
        result.stored.append(sub.instance_id)
    else:
        result.already.append(sub.instance_id)


def _one(project: Project, result: ImportResult, label: str, read, files: dict, surveyor: str | None) -> None:
    try:
        inst = openrosa.read_instance(read(), label)
        sub = openrosa.to_submission(project, inst, inst["username"] or surveyor or "unknown", label)
        _store(project, result, sub, files, label)
    except MapathonError as e:
        result.failed.append(str(e))


# -- CSV exports (ODK Central, KoboToolbox) ---------------------------------------------------------------------

_ID_COLUMNS = ("meta-instanceID", "meta/instanceID", "instanceID", "KEY", "_uuid")
_USER_COLUMNS = ("SubmitterName", "_submitted_by", "username")
_VERSION_COLUMNS = ("FormVersion", "__version__", "version")
_WHEN_COLUMNS = ("SubmissionDate", "_submission_time")
_META_COLUMNS = ("SubmitterID", "AttachmentsPresent", "AttachmentsExpected", "Status", "ReviewState", "DeviceID",
                 "Edits", "start", "end", "today", "deviceid")
_LOC = {  # (latitude, longitude, accuracy) columns of a geopoint named "location"
    "central": ("location-Latitude", "location-Longitude", "location-Accuracy"),
    "kobo": ("_location_latitude", "_location_longitude", "_location_precision"),
}


def _received(text: str | None) -> str | None:
    """An export's submission time (``2026-11-30T10:00:00.000Z``, Kobo's without a zone: UTC) as the project
    writes times; None (the import's time) when it cannot be read."""
    if not text or not text.strip():
        return None
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return events.iso(dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc))


def _stem_form(name: str) -> str | None:
    stem = re.sub(r"\.csv$", "", name, flags=re.I)
    return re.sub(r"(_\d{4}_\d{2}_\d{2}.*|-\d+)$", "", stem) or None


def _short(column: str) -> str:
    """A question's name from an export header: group prefixes (``group-`` or ``group/``) removed."""
    return re.split(r"[-/]", column)[-1]


def _csv(project: Project, result: ImportResult, label: str, data: bytes, media: dict, surveyor: str | None,
         form_id: str | None) -> None:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MapathonError(f"{label}: not UTF-8 text (export the CSV again from Central or Kobo)") from None
    first = text.split("\n", 1)[0]
    delim = ";" if first.count(";") > first.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delim)
    cols = reader.fieldnames or []
    published = {f["id"]: f for f in forms.published(project)}
    if form_id not in published:
        if len(published) == 1:
            form_id = next(iter(published))
        else:
            raise MapathonError(f"{label}: which form is it? give --form (forms: {', '.join(published) or 'none'})")
    id_col = next((c for c in _ID_COLUMNS if c in cols), None)
    loc = next((v for v in _LOC.values() if v[0] in cols and v[1] in cols), None)
    missing = []
    if id_col is None:
        missing.append("the instance ID (meta-instanceID, KEY or _uuid)")
    if loc is None and not any(_short(c) == "location" for c in cols):
        missing.append("the location (location-Latitude/-Longitude, _location_latitude/_longitude or location)")
    if missing:
        raise MapathonError(f"{label}: missing column(s): {'; '.join(missing)}")
    user_col = next((c for c in _USER_COLUMNS if c in cols), None)
    version_col = next((c for c in _VERSION_COLUMNS if c in cols), None)
    when_col = next((c for c in _WHEN_COLUMNS if c in cols), None)
    skip = set(_ID_COLUMNS + _USER_COLUMNS + _VERSION_COLUMNS + _WHEN_COLUMNS + _META_COLUMNS) | set(loc or ())
    for n, row in enumerate(reader, 2):
        where = f"{label} line {n}"
        try:
            iid = (row.get(id_col) or "").strip()
            if not iid:
                raise MapathonError(f"{where}: no instance ID")
            if not iid.startswith("uuid:"):
                iid = "uuid:" + iid
            answers = {}
            for c in cols:
                if c in skip or c.startswith("_") or c.startswith("location-"):
                    continue
                answers[_short(c)] = (row.get(c) or "").strip()
            if loc:
                lat, lon, acc = (row.get(c) or "" for c in loc)
                answers["location"] = f"{lat} {lon} 0 {acc or 0}" if lat and lon else ""
            version = (row.get(version_col) or "").strip() if version_col else published[form_id]["version"]
            inst = {"form_id": form_id, "version": version, "instance_id": iid, "answers": answers,
                    "username": answers.pop("username", "")}
            who = (row.get(user_col) or "").strip() if user_col else ""
            sub = openrosa.to_submission(project, inst, who or inst["username"] or surveyor or "unknown", where,
                                         received=_received(row.get(when_col)) if when_col else None)
            _store(project, result, sub, media, where)
        except MapathonError as e:
            result.failed.append(str(e))
