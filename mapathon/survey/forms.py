"""Survey forms: presets (YAML) -> XLSForm (.xlsx) -> XForm (pyxform), and answers -> OpenStreetMap tags.

A preset lists the questions (``fields``) with their labels per language and the OpenStreetMap key each
answer goes to (``osm``); a choice gives the value (``osm``) or several tags (``tags``). The same preset
reads the answers back (:func:`tags_for`), so the form and the tags never disagree.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import MapathonError

PRESETS_DIR = Path(__file__).parent / "presets"


def load_preset(name_or_path: str | Path) -> dict:
    """A built-in preset by name (``water``) or a YAML file organizers wrote; checked."""
    p = Path(name_or_path)
    if not p.suffix and (PRESETS_DIR / f"{name_or_path}.yaml").is_file():
        p = PRESETS_DIR / f"{name_or_path}.yaml"
    if not p.is_file():
        known = ", ".join(sorted(x.stem for x in PRESETS_DIR.glob("*.yaml")))
        raise MapathonError(f"--preset {name_or_path}: no such preset or file (presets: {known})")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MapathonError(f"{p}: not a readable YAML preset ({first})") from None
    return check_preset(data, str(p))


def check_preset(data, label: str) -> dict:
    if not isinstance(data, dict):
        raise MapathonError(f"{label}: a preset is a YAML mapping with id, version, title and fields")
    for key in ("id", "fields"):
        if key not in data:
            raise MapathonError(f"{label}: missing '{key}'")
    if not isinstance(data["fields"], list) or not data["fields"]:
        raise MapathonError(f"{label}: 'fields' must be a list of questions")
    data["id"] = str(data["id"])
    data["version"] = str(data.get("version", "1"))
    seen = set()
    for i, f in enumerate(data["fields"], 1):
        if not isinstance(f, dict) or not f.get("name") or not f.get("type"):
            raise MapathonError(f"{label}: question {i} needs a name and a type")
        f["name"] = str(f["name"])
        if f["name"] in seen:
            raise MapathonError(f"{label}: question name {f['name']!r} is used twice")
        seen.add(f["name"])
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
