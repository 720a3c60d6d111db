"""Survey forms: presets (YAML) -> XLSForm (.xlsx) -> XForm (pyxform), and answers -> OpenStreetMap tags.

A preset lists the questions (``fields``) with their labels per language and the OpenStreetMap key each
answer goes to (``osm``); a choice gives the value (``osm``) or several tags (``tags``). The same preset
reads the answers back (:func:`tags_for`), so the form and the tags never disagree.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from pathlib import Path

import yaml

from .. import fsutil
from ..errors import MapathonError, UsageMistake

PRESETS_DIR = Path(__file__).parent / "presets"
FORMS_DIR = Path("survey") / "forms"  # in the project: <id>/form.xml, form.xlsx, preset.yaml, media/, versions/
EXISTING_CSV = "existing.csv"  # the existing features, sent with the form (select_one_from_file, map appearance)
# a preset with ``entities: <list>``: the existing features are an ODK entity list (``<list>.csv``), that a
# submission updates (the ``entities`` sheet; ``save_to`` on the questions); ids made from the OSM ids
_RESERVED_PROPERTIES = {"name", "label"}
LANG_NAMES = {"en": "English", "fr": "Français", "bm": "Bamanankan", "ff": "Fulfulde", "snk": "Soninke",
              "wo": "Wolof", "ar": "العربية"}
NEEDED_LANGS = ("fr", "en")
MAX_PIXELS = 1600  # photos are scaled down on the phone: quicker to send over the laptop's Wi-Fi, smaller projects
_TYPES = {"select_one", "select_multiple", "text", "integer", "decimal", "image", "date", "note", "geopoint"}
# the questions every form has, besides the preset's: who, where, which existing feature
_WORDS = {
    "existing": {"en": "If it is already on the map, pick it (skip if it is new)",
                 "fr": "S'il est déjà sur la carte, choisissez-le (passez s'il est nouveau)",
                 "bm": "N'a bɛ karti kan, a sugandi"},
    "location": {"en": "Stand next to it and record the GPS point", "fr": "Placez-vous à côté et prenez le point GPS",
                 "bm": "I jɔ a kɛrɛ fɛ ka GPS ta"},
}


def load_preset(name_or_path: str | Path) -> dict:
    """A built-in preset by name (``water``) or a YAML file organizers wrote; checked."""
    p = Path(name_or_path)
    if not p.suffix and (PRESETS_DIR / f"{name_or_path}.yaml").is_file():
        p = PRESETS_DIR / f"{name_or_path}.yaml"
    if not p.is_file():
        known = ", ".join(sorted(x.stem for x in PRESETS_DIR.glob("*.yaml")))
        raise MapathonError(f"no such preset or file (presets: {known})", field="preset", value=name_or_path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MapathonError(f"{p}: not a readable YAML preset ({first})") from None
    data = check_preset(data, str(p))
    data["_source"] = str(p)
    return data


def check_preset(data, label: str) -> dict:
    if not isinstance(data, dict):
        raise MapathonError(f"{label}: a preset is a YAML mapping with id, version, title and fields")
    for key in ("id", "fields"):
        if key not in data:
            raise MapathonError(f"{label}: missing '{key}'")
    if not isinstance(data["fields"], list) or not data["fields"]:
        raise MapathonError(f"{label}: 'fields' must be a list of questions")
    data["id"] = str(data["id"])
    if not data["id"].replace("_", "").replace("-", "").isalnum() or not data["id"][0].isalpha():
        raise MapathonError(f"{label}: id {data['id']!r} must be letters, digits, _ or -, starting with a letter")
    if not isinstance(data.get("title", {}), dict):
        raise MapathonError(f"{label}: 'title' must give one title per language (en: ..., fr: ...)")
    existing = data.get("existing", [])
    if not isinstance(existing, list) or not all(isinstance(m, dict) for m in existing):
        raise MapathonError(f"{label}: 'existing' must be a list of tag filters such as {{man_made: water_well}}")
    data["version"] = str(data.get("version", "1"))
    if data.get("entities") is not None:
        ds = data["entities"]
        if not (isinstance(ds, str) and ds.replace("_", "").isalnum() and ds[0].isalpha()):
            raise MapathonError(f"{label}: entities {ds!r} must be the name of an entity list: letters, digits "
                                f"and _, starting with a letter")
        if not existing:
            raise MapathonError(f"{label}: 'entities' needs 'existing' (the features the entity list holds)")
    seen = set()
    for i, f in enumerate(data["fields"], 1):
        if not isinstance(f, dict) or not f.get("name") or not f.get("type"):
            raise MapathonError(f"{label}: question {i} needs a name and a type")
        f["name"] = str(f["name"])
        if f["type"] not in _TYPES:
            raise MapathonError(f"{label}: question {f['name']!r} has type {f['type']!r}; "
                                f"use one of {', '.join(sorted(_TYPES))}")
        if f["name"] in ("existing", "location", "username", "meta"):
            raise MapathonError(f"{label}: question name {f['name']!r} is kept for the form's own questions")
        if f["name"] in seen:
            raise MapathonError(f"{label}: question name {f['name']!r} is used twice")
        seen.add(f["name"])
        if f.get("save_to") is not None:
            prop = str(f["save_to"])
            if not data.get("entities"):
                raise MapathonError(f"{label}: question {f['name']!r} has save_to but the preset has no 'entities'")
            if prop in _RESERVED_PROPERTIES or prop.startswith("__") or not prop.replace("_", "").isalnum():
                raise MapathonError(f"{label}: question {f['name']!r}: save_to {prop!r} must be letters, digits "
                                    f"and _, not name or label")
            f["save_to"] = prop
        if not isinstance(f.get("label"), dict) or "en" not in f["label"]:
            raise MapathonError(f"{label}: question {f['name']!r} needs a label with at least 'en'")
        if f["type"] in ("select_one", "select_multiple"):
            choices = f.get("choices")
            if not isinstance(choices, list) or not choices:
                raise MapathonError(f"{label}: question {f['name']!r} is a choice but has no choices")
            for c in choices:
                if not isinstance(c, dict) or "name" not in c or not isinstance(c.get("label"), dict):
                    raise MapathonError(f"{label}: a choice of {f['name']!r} needs a name and a label")
                c["name"] = str(c["name"])
    return data


def tags_for(preset: dict, answers: dict) -> dict:
    """The OpenStreetMap tags the *answers* (field name -> answer text) map to, following *preset*."""
    tags: dict[str, str] = {}
    for f in preset["fields"]:
        value = answers.get(f["name"])
        if value is None or value == "":
            continue
        if f["type"] in ("select_one", "select_multiple"):
            picked = str(value).split() if f["type"] == "select_multiple" else [str(value)]
            vals = []
            for c in f["choices"]:
                if c["name"] in picked:
                    for k, v in (c.get("tags") or {}).items():
                        tags[str(k)] = str(v)
                    if "osm" in c:
                        vals.append(str(c["osm"]))
            if f.get("osm") and vals:
                tags[f["osm"]] = ";".join(vals)
        elif f.get("osm"):
            tags[f["osm"]] = str(value).strip()
    return tags


# -- existing features -------------------------------------------------------------------------


def _matches(tags: dict, filters: list[dict]) -> bool:
    for flt in filters:
        ok = True
        for k, v in flt.items():
            have = tags.get(str(k))
            wanted = v if isinstance(v, list) else [v]
            if have is None or ("*" not in wanted and have not in [str(w) for w in wanted]):
                ok = False
                break
        if ok:
            return True
    return False


def existing_features(path: str | Path, preset: dict) -> list[dict]:
    """The features of an OpenStreetMap file that the preset's ``existing`` filters select, as the rows of
    the form's CSV: name (``node/123``), label (shown to the surveyor), geometry (``lat lon 0 0``), osm tags."""
    from ..osm.readers import NODE, WAY, read_osm_file

    filters = preset.get("existing") or []
    if not filters:
        return []
    data = read_osm_file(path)
    nodes = data.objects[NODE]
    rows = []
    for kind, objs in ((NODE, nodes), (WAY, data.objects[WAY])):
        for o in objs.values():
            if not o.visible or not _matches(o.tags, filters):
                continue
            if kind == NODE:
                lon, lat = o.lon / 1e7, o.lat / 1e7
            else:  # a way (a building): the mean of its nodes, enough to pick it on a map
                pts = [(nodes[r].lon, nodes[r].lat) for r in o.refs if r in nodes and nodes[r].lon is not None]
                if not pts:
                    continue
                lon = sum(p[0] for p in pts) / len(pts) / 1e7
                lat = sum(p[1] for p in pts) / len(pts) / 1e7
            what = o.tags.get("man_made") or o.tags.get("amenity") or o.tags.get("building") or ""
            name = o.tags.get("name")
            kind_name = "node" if kind == NODE else "way"
            rows.append({"name": f"{kind_name}/{o.orig}",
                         "label": f"{name} ({what} {o.orig})" if name else f"{what} {o.orig}".strip(),
                         "geometry": f"{lat:.7f} {lon:.7f} 0 0"})
    rows.sort(key=lambda r: r["name"])
    return rows


def existing_csv(rows: list[dict], entities: str | None = None) -> bytes:
    """The CSV of the existing features sent with the form. As an ODK entity list (*entities*: its name),
    each row's name is the feature's entity id (:func:`entity_id`), with the entity's version (1: the
    list is made again from the data, not changed by the server) and the OSM id as a property."""
    out = io.StringIO()
    if entities:
        w = csv.DictWriter(out, fieldnames=["name", "label", "__version", "geometry", "osm_id"], lineterminator="\n")
        rows = [{"name": entity_id(r["name"]), "label": r["label"], "__version": 1, "geometry": r["geometry"],
                 "osm_id": r["name"]} for r in rows]
    else:
        w = csv.DictWriter(out, fieldnames=["name", "label", "geometry"], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return out.getvalue().encode("utf-8")


def entity_id(osm_id: str) -> str:
    """The ODK entity id of an OpenStreetMap feature (``node/123``): the UUID of its address on
    openstreetmap.org (RFC 4122, version 5), the same every time the form is made, so that a phone's
    offline updates still name the same feature."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://www.openstreetmap.org/{osm_id}"))


def media_name(preset: dict) -> str:
    """The file name of the existing features' CSV: the entity list's name, else ``existing.csv``."""
    return f"{preset['entities']}.csv" if preset.get("entities") else EXISTING_CSV


_entity_lists: dict[tuple, dict[str, str]] = {}


def entity_features(project, form_id: str, entities: str) -> dict[str, str]:
    """Entity id -> OSM id (``node/123``) in the entity list the form is published with (read once while
    its file is unchanged)."""
    path = project.path / FORMS_DIR / safe_id(form_id) / "media" / f"{entities}.csv"

    def read() -> dict[str, str]:
        return {r["name"]: r.get("osm_id") or "" for r in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))}

    try:
        return _while_unchanged(_entity_lists, path, read, 16)
    except OSError:  # no list (the form was made again without it)
        return {}


# -- XLSForm and XForm -------------------------------------------------------------------------


def parse_langs(text: str | None, default_first: str = "fr") -> list[str]:
    """``fr,en,bm`` -> ["fr", "en", "bm"]; French and English are always there (the first is the default)."""
    langs = [x.strip().lower() for x in (text or "").split(",") if x.strip()] or [default_first]
    for code in langs:
        if not code.isalpha() or len(code) > 3:
            raise UsageMistake(f"{code!r} is not a language code (like fr, en, bm)", field="lang", value=text)
    for code in NEEDED_LANGS:
        if code not in langs:
            langs.append(code)
    return list(dict.fromkeys(langs))


def _col(code: str) -> str:
    return f"label::{LANG_NAMES.get(code, code)} ({code})"


def _labels(labels: dict, langs: list[str]) -> list[str]:
    return [str(labels.get(c) or labels.get("en")) for c in langs]


def xlsform_sheets(preset: dict, langs: list[str], with_existing: bool) -> dict[str, list[list]]:
    """The XLSForm as rows per sheet (survey, choices, settings)."""
    cols = [_col(c) for c in langs]
    entities = preset.get("entities") if with_existing else None
    saves = ["save_to"] if entities else []  # the entity property an answer updates
    survey = [["type", "name", *cols, "required", "relevant", "constraint", "appearance", "parameters", *saves]]
    choices = [["list_name", "name", *cols]]
    blank = [""] * len(saves)
    survey.append(["username", "username", *[""] * len(langs), "", "", "", "", "", *blank])
    if with_existing:
        survey.append([f"select_one_from_file {media_name(preset)}", "existing", *_labels(_WORDS["existing"], langs),
                       "", "", "", "map", "", *blank])
    survey.append(["geopoint", "location", *_labels(_WORDS["location"], langs), "yes", "", "", "", "", *blank])
    for f in preset["fields"]:
        typ = f["type"]
        if typ in ("select_one", "select_multiple"):
            typ = f"{typ} {f['name']}"
            for c in f["choices"]:
                choices.append([f["name"], c["name"], *_labels(c["label"], langs)])
        survey.append([typ, f["name"], *_labels(f["label"], langs), "yes" if f.get("required") else "",
                       str(f.get("relevant") or ""), str(f.get("constraint") or ""), str(f.get("appearance") or ""),
                       f"max-pixels={MAX_PIXELS}" if f["type"] == "image" else "",
                       *([str(f.get("save_to") or "")] if entities else [])])
    title = preset.get("title") or {}
    settings = [["form_title", "form_id", "version", "default_language"],
                [str(title.get(langs[0]) or title.get("en") or preset["id"]), preset["id"], preset["version"],
                 f"{LANG_NAMES.get(langs[0], langs[0])} ({langs[0]})"]]
    sheets = {"survey": survey, "choices": choices, "settings": settings}
    if entities:  # the picked feature is the entity the submission updates; a new point updates none
        sheets["entities"] = [["dataset", "entity_id", "update_if"], [entities, "${existing}", "${existing} != ''"]]
    return sheets


def to_xform(xlsx: str | Path | bytes, label: str) -> str:
    """The XForm XML of an XLSForm, converted by pyxform; any error or warning is a MapathonError.
    (pyxform's own checks run offline; its ODK Validate step needs Java: the tests run it, not this.)"""
    from pyxform.errors import PyXFormError
    from pyxform.xls2xform import convert

    warnings: list[str] = []
    try:
        result = convert(xlsform=xlsx, warnings=warnings, validate=False, file_type=".xlsx")
    except PyXFormError as e:
        raise MapathonError(f"{label}: not a valid XLSForm ({str(e).strip().splitlines()[0]})") from None
    except Exception as e:  # openpyxl on a damaged file
        raise MapathonError(f"{label}: cannot read this XLSForm ({type(e).__name__}: {e})") from None
    if warnings:
        raise MapathonError(f"{label}: pyxform warns: {warnings[0]}")
    return result.xform


def build_form(preset: dict, langs: list[str], existing_rows: list[dict] | None) -> tuple[bytes, str]:
    """The XLSForm (bytes) and its XForm (XML text); *existing_rows* None: no question for existing features."""
    from openpyxl import Workbook

    with_existing = bool(preset.get("existing")) and existing_rows is not None
    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in xlsform_sheets(preset, langs, with_existing).items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    xlsx = buf.getvalue()
    return xlsx, to_xform(xlsx, f"form {preset['id']}")


# -- forms published in the project (what the room server offers to ODK Collect) ----------------


def _write(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fsutil.write_bytes(dest, data)


def publish(project, preset: dict, langs: list[str], *, base: str | Path | None = None,
            out: str | Path | None = None) -> dict:
    """Make the form of *preset* and keep it in the project (``survey/forms/<id>/``), where the room server
    offers it to ODK Collect; with *out*, also write the XLSForm there (beside it: the XForm ``.xml``, the
    preset ``.yaml`` to copy and change, and the existing features' CSV).

    The existing features come from *base* (an OSM file), else the project's latest merge, else none."""
    from ..osm.submit import LATEST_MERGE

    source = Path(base) if base else project.path / LATEST_MERGE
    rows = None
    if preset.get("existing"):
        if base and not source.is_file():
            raise MapathonError("no such file", field="data", value=base)
        if source.is_file():
            rows = existing_features(source, preset)
    xlsx, xform = build_form(preset, langs, rows if rows is not None else ([] if preset.get("existing") else None))
    folder = project.path / FORMS_DIR / preset["id"]
    text = yaml.safe_dump({k: v for k, v in preset.items() if k != "_source"}, allow_unicode=True,
                          sort_keys=False).encode("utf-8")
    kept = folder / "versions" / f"{safe_id(preset['version'])}.yaml"
    if kept.is_file() and yaml.safe_load(kept.read_bytes()) != yaml.safe_load(text):
        raise MapathonError(f"form {preset['id']} version {preset['version']} was made before with other questions; "
                            f"change 'version' in the preset (phones tell forms apart by it)")
    csv_bytes = existing_csv(rows or [], preset.get("entities")) if preset.get("existing") else None
    csv_name = media_name(preset)
    written = []
    if out:  # the copies first: a wrong -o changes nothing in the project
        dest = Path(out)
        outputs = [(dest, xlsx), (dest.with_suffix(".xml"), xform.encode("utf-8"))]
        if dest.with_suffix(".yaml").resolve() != Path(preset.get("_source") or dest).resolve():
            # the preset as written (with its comments), to copy and change
            outputs.append((dest.with_suffix(".yaml"),
                            Path(preset["_source"]).read_bytes() if preset.get("_source") else text))
        if csv_bytes is not None:
            outputs.append((dest.parent / csv_name, csv_bytes))
        for path, data in outputs:
            fsutil.write_bytes(path, data)
            written.append(str(path))
    _write(kept, text)
    for stale in (folder / "media").glob("*.csv") if (folder / "media").is_dir() else ():
        if stale.name != csv_name or csv_bytes is None:  # an earlier version's list: not this form's
            stale.unlink()
    if csv_bytes is not None:
        _write(folder / "media" / csv_name, csv_bytes)
    _write(folder / "form.xlsx", xlsx)
    _write(folder / "preset.yaml", text)
    _write(folder / "form.xml", xform.encode("utf-8"))
    return {"id": preset["id"], "version": preset["version"], "languages": langs,
            "existing": len(rows or []), "existing_from": str(source) if rows is not None else None,
            "written": written, "project_copy": str(folder)}


def published(project) -> list[dict]:
    """The forms kept in the project: id, version, title, xml path, media files, md5 of the XML."""
    root = project.path / FORMS_DIR
    out = []
    if not root.is_dir():
        return out
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        xml, pre = folder / "form.xml", folder / "preset.yaml"
        if not (xml.is_file() and pre.is_file()):
            continue
        preset = _read_kept_yaml(pre.read_text(encoding="utf-8"))
        media = sorted(p for p in (folder / "media").glob("*") if p.is_file()) if (folder / "media").is_dir() else []
        title = preset.get("title") or {}
        lists = [f"{preset['entities']}.csv"] if preset.get("entities") else []  # ODK entity lists
        out.append({"id": preset["id"], "version": str(preset["version"]), "xml": xml, "media": media,
                    "entity_lists": lists,
                    "title": title.get(project.lang) or title.get("en") or preset["id"],
                    "md5": hashlib.md5(xml.read_bytes()).hexdigest()})
    return out


def preset_of(project, form_id: str, version: str) -> dict:
    """The preset of a published form at *version* (older versions stay readable: phones keep old forms)."""
    folder = project.path / FORMS_DIR / safe_id(form_id)
    if not (folder / "preset.yaml").is_file():
        known = ", ".join(f["id"] for f in published(project)) or "none; make one with 'mapathon survey form'"
        raise MapathonError(f"form {form_id!r}: no such survey form in this project (forms: {known})")
    path = folder / "versions" / f"{safe_id(version)}.yaml"
    if not path.is_file():
        have = ", ".join(sorted(p.stem for p in (folder / "versions").glob("*.yaml")))
        raise MapathonError(f"form {form_id!r}: unknown version {version!r} (versions: {have})")
    return _load_kept(path)


_kept: dict[tuple, dict] = {}


def _load_kept(path: Path) -> dict:
    """A kept preset, read once while its file is unchanged (submissions come by the thousand).
    The same object is handed to every caller: read it, never change it."""
    return _while_unchanged(_kept, path, lambda: _read_kept_yaml(path.read_text(encoding="utf-8")), 256)


def _while_unchanged(cache: dict, path: Path, read, most: int):
    """``read()``, kept in *cache* while *path* is unchanged (the same time of change, size and file: the
    project's files are replaced whole, fsutil.write_bytes); *cache* is emptied past *most* entries."""
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size, st.st_ino)
    got = cache.get(key)
    if got is None:
        if len(cache) > most:
            cache.clear()
        got = cache[key] = read()
    return got


def _read_kept_yaml(text: str):
    """A preset kept in the project (written by :func:`publish`): read with libyaml where PyYAML has it,
    ten times quicker than the pure Python reader (80 ms for the water preset: the first phone's form
    waited for it). A preset an organizer wrote is read by :func:`load_preset`, with its messages."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader


def safe_id(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in str(text)).strip(".") or "_"
