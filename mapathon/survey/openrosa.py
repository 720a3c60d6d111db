"""The OpenRosa side of surveys: reading ODK instance XML, the XML answers ODK Collect expects, Digest sign-in.

Shared by the room server's ``/odk`` routes (mapathon/server/routes/odk.py) and ``survey import``:
an instance is read the same way whether it came over the Wi-Fi or on a USB stick.

Instance XML is read with defusedxml: a DTD or an entity (an "XML bomb", or a file that reaches out
to other files) is refused, as is XML cut short. ODK Collect never sends either.

Sign-in: ODK Collect sends HTTP Basic credentials only over HTTPS; over the room's plain HTTP it uses
Digest (RFC 7616, MD5, ``qop=auth``). The user name is the surveyor's name (as in the room), the password
the room's survey password (``serve`` prints it, the room page's QR code carries it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import zlib
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

from ..errors import MapathonError, only_outcome
from . import forms
from .store import Submission, now

OPENROSA_VERSION = "1.0"
MAX_PHOTO_BYTES = 10 * 1024 * 1024  # one photo; forms ask phones to scale photos to forms.MAX_PIXELS
MAX_XML_BYTES = 2 * 1024 * 1024  # one instance XML
MAX_XML_DEPTH = 64  # groups within groups in an instance (ODK forms nest a few)
MAX_SUBMISSION_BYTES = 60 * 1024 * 1024  # one request: the XML and its photos (X-OpenRosa-Accept-Content-Length)
PHOTO_TYPES = (".jpg", ".jpeg", ".png", ".webp", ".heic")
REALM = "mapathon"
NONCE_SECONDS = 24 * 3600
PASSWORD_META = "survey_password"
PASSWORD_ENV = "MAPATHON_SURVEY_PASSWORD"
_READABLE = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud and typed on a phone


class TooLarge(MapathonError):
    """A photo or an instance over the size limit (the room server answers 413)."""


# -- instance XML ----------------------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_xml(data: bytes, label: str) -> Element:
    """The root element; a DTD/entities (XML bomb), broken or truncated XML is one clear MapathonError."""
    import defusedxml
    from defusedxml.ElementTree import fromstring

    if not data or not data.strip():
        raise MapathonError(f"{label}: empty instance XML")
    if len(data) > MAX_XML_BYTES:
        raise TooLarge(f"{label}: instance XML of {len(data)} bytes, more than {MAX_XML_BYTES} allowed")
    try:
        return fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException:
        raise MapathonError(f"{label}: refused: the XML declares a DTD or entities (an 'XML bomb'?); "
                            f"ODK forms never do") from None
    except ParseError as e:
        line, col = getattr(e, "position", (0, 0))
        what = "cut short (truncated)" if "no element found" in str(e) or "unclosed token" in str(e) else "broken"
        raise MapathonError(f"{label}: instance XML is {what} at line {line}, column {col}") from None


def read_instance(data: bytes, label: str) -> dict:
    """An ODK instance: form_id, version, instance_id, answers (field name -> text, groups flattened),
    username (the phone's user name setting, where the form asks for it), entity (its ``<meta><entity>``:
    dataset, id, update, baseVersion; None without one)."""
    root = parse_xml(data, label)
    form_id = root.get("id")
    if not form_id:
        raise MapathonError(f"{label}: not an ODK instance (its root <{_local(root.tag)}> has no id attribute)")
    answers: dict[str, str] = {}
    instance_id = None
    entity = None

    def walk(el: Element, depth: int) -> None:
        nonlocal instance_id, entity
        if depth > MAX_XML_DEPTH:  # else RecursionError: a 500 instead of one line
            raise MapathonError(f"{label}: instance XML nested deeper than {MAX_XML_DEPTH} groups")
        for child in el:
            name = _local(child.tag)
            if name == "meta":
                for m in child:
                    if _local(m.tag) == "instanceID" and (m.text or "").strip():
                        instance_id = m.text.strip()
                    elif _local(m.tag) == "entity":  # ODK entities: the entity this submission updates
                        entity = {k: (m.get(k) or "").strip() for k in ("dataset", "id", "update", "baseVersion")}
                continue
            if len(child):
                walk(child, depth + 1)  # a group: its questions keep their own names
            else:
                answers[name] = (child.text or "").strip()

    walk(root, 0)
    if not instance_id:
        raise MapathonError(f"{label}: no <meta><instanceID> (is this an ODK instance?)")
    return {"form_id": form_id, "version": root.get("version") or "", "instance_id": instance_id,
            "answers": answers, "username": answers.pop("username", "") or "", "entity": entity}


def parse_geopoint(text: str | None, label: str) -> tuple[float | None, float | None, float | None]:
    """ODK's ``lat lon altitude accuracy`` -> (lon, lat, accuracy in metres)."""
    if not text:
        return None, None, None
    parts = text.split()
    try:
        lat, lon = float(parts[0]), float(parts[1])
        acc = float(parts[3]) if len(parts) > 3 else None
    except (ValueError, IndexError):
        raise MapathonError(f"{label}: location {text!r} is not 'latitude longitude [altitude accuracy]'") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise MapathonError(f"{label}: location {text!r} is outside the Earth's latitudes and longitudes")
    return lon, lat, acc


def _photo_fields(preset: dict) -> list[str]:
    return [f["name"] for f in preset["fields"] if f["type"] == "image"]


def to_submission(project, inst: dict, surveyor: str, label: str, *, received: str | None = None,
                  preset: dict | None = None) -> Submission:
    """A Submission from a read instance: its form and version must be published in the project
    (*preset*: the form's, when the caller has it already)."""
    preset = preset or forms.preset_of(project, inst["form_id"], inst["version"])
    answers = dict(inst["answers"])
    lon, lat, acc = parse_geopoint(answers.pop("location", None), label)
    picked = answers.pop("existing", None) or None
    entity = inst.get("entity") or {}
    if preset.get("entities") and entity.get("update") in ("1", "true") and entity.get("id"):
        picked = entity["id"]  # an entity update: the feature picked on the map, by its entity id
    if picked is not None and preset.get("entities") and not re.fullmatch(r"(node|way|relation)/\d+", picked):
        if entity.get("dataset") not in (None, "", preset["entities"]):
            raise MapathonError(f"{label}: entity list {entity['dataset']!r} is not this form's "
                                f"({preset['entities']!r})")
        osm = forms.entity_features(project, inst["form_id"], preset["entities"]).get(picked)
        if not osm:  # not in the list the form has now (made again since?): a point of its own
            answers["entity_id"] = picked
        picked = osm or None
    if picked is not None and not re.fullmatch(r"(node|way|relation)/\d+", picked):
        raise MapathonError(f"{label}: picked feature {picked!r} is not like node/123")
    photo_fields = _photo_fields(preset)
    tags = forms.tags_for(preset, {k: v for k, v in answers.items() if k not in photo_fields})
    return Submission(inst["instance_id"], inst["form_id"], inst["version"], surveyor.strip() or "unknown",
                      received or now(), lon, lat, acc, answers, tags, picked)


def pick_photos(sub: Submission, preset_photos: list[str], files: dict[str, bytes], label: str,
                limit: int = MAX_PHOTO_BYTES) -> dict[str, bytes]:
    """The photos the answers name, from *files* (name -> bytes); a photo over the size limit is refused.
    A named photo that did not come is left out (ODK Collect may send it in a later request)."""
    wanted = {sub.answers.get(f) for f in preset_photos} - {None, ""}
    out = {}
    for name, data in files.items():
        if name not in wanted:
            continue
        if not name.lower().endswith(PHOTO_TYPES):
            raise MapathonError(f"{label}: {name}: not a photo (expected {', '.join(PHOTO_TYPES)})")
        if len(data) > limit:
            raise TooLarge(f"{label}: photo {name} is {len(data) / 1048576:.1f} MB, "
                                f"more than the {limit / 1048576:g} MB allowed")
        out[name] = data
    return out


def photo_fields(project, sub: Submission) -> list[str]:
    return _photo_fields(forms.preset_of(project, sub.form_id, sub.form_version))


def receive(project, inst: dict, surveyor: str, label: str, files: dict[str, bytes | memoryview],
            limit: int = MAX_PHOTO_BYTES) -> tuple[Submission, bool | None, int]:
    """A read instance and its files (name -> bytes) from a phone, kept in the project: its photos written,
    then its row recorded (``survey.submit`` event), its surveyor registered on first use. Returns
    (submission, True, 0) when stored, (submission, None, photos added) when its instanceID was already
    there (ODK Collect sends the photos that did not fit in a later request; with :func:`receive_many`,
    also when it came earlier in the same call), (submission, False, 0) when
    another request stored it meanwhile. Run it again after a rollback: the same photos land on the same
    paths (the room server's writer may, see Writer.change)."""
    return only_outcome(receive_many(project, [(inst, surveyor, label, files, limit)]))


def receive_many(project, items: list[tuple]) -> list:
    """:func:`receive` for the forms of many phones at once, each item its arguments (instance, surveyor,
    label, files, limit): the room server's writer hands it the forms queued together. Reads the stored
    instances with one statement, registers the new surveyors together (``volunteers.ensure_many``),
    records the new rows and their events with one statement each (:func:`store.insert_many`). One outcome
    per item, in order: what :func:`receive` returns, or the
    MapathonError that refuses it, having written nothing for it."""
    from ..tasks import volunteers
    from . import store

    out: list = [None] * len(items)
    ready: list[tuple[int, Submission, dict, str]] = []
    for i, (inst, surveyor, label, files, limit) in enumerate(items):
        try:
            preset = forms.preset_of(project, inst["form_id"], inst["version"])
            sub = to_submission(project, inst, surveyor, label, preset=preset)
            photos = pick_photos(sub, _photo_fields(preset), files, label, limit)
            ready.append((i, sub, photos, volunteers.check_name(surveyor)))
        except MapathonError as e:
            out[i] = e
    have = store.stored_ids(project, [sub.instance_id for _, sub, _, _ in ready])
    fresh, again, first = [], [], {}  # again: a later copy of a form of this call (its photos may be new)
    for i, sub, photos, who in ready:
        if sub.instance_id in have:
            out[i] = (sub, None, store.add_photos(project, sub.instance_id, photos) if photos else 0)
        elif sub.instance_id in first:
            again.append((i, sub, photos))
        else:
            first[sub.instance_id] = i
            fresh.append((i, sub, photos, who))
    # the surveyors, registered on their first form (a name that looks like a volunteer's is refused)
    vols = volunteers.ensure_many(project, [who for *_, who in fresh])
    new: list[tuple[int, Submission]] = []
    for (i, sub, photos, _who), vol in zip(fresh, vols):
        if isinstance(vol, BaseException):
            out[i] = vol
            continue
        sub.surveyor = vol[0].name  # the room's spelling of the name
        store.store_photos(project.path, sub, photos)  # before the row: a row never names a missing photo
        new.append((i, sub))
    for (i, sub), stored in zip(new, store.insert_many(project, [sub for _, sub in new])):
        out[i] = (sub, stored, 0)
    # the later copies, as if sent after the first: its new photos kept, or received anew when the first
    # was refused (by another surveyor's name, say)
    retry = [i for i, sub, _ in again if isinstance(out[first[sub.instance_id]], BaseException)]
    for i, sub, photos in again:
        if i not in retry:
            out[i] = (sub, None, store.add_photos(project, sub.instance_id, photos) if photos else 0)
    for i, got in zip(retry, receive_many(project, [items[i] for i in retry]) if retry else ()):
        out[i] = got
    return out


# -- the XML ODK Collect reads -------------------------------------------------------------------------------


def form_list_xml(published: list[dict], base: str) -> str:
    """The OpenRosa form list (``GET /formList``)."""
    items = []
    for f in published:
        manifest = f"\n    <manifestUrl>{escape(base)}/forms/{escape(f['id'])}/manifest</manifestUrl>" if f["media"] else ""
        items.append(f"""  <xform>
    <formID>{escape(f['id'])}</formID>
    <name>{escape(f['title'])}</name>
    <version>{escape(f['version'])}</version>
    <hash>md5:{f['md5']}</hash>
    <downloadUrl>{escape(base)}/forms/{escape(f['id'])}.xml</downloadUrl>{manifest}
  </xform>""")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<xforms xmlns="http://openrosa.org/xforms/xformsList">\n'
            + "\n".join(items) + "\n</xforms>\n")


def manifest_xml(form: dict, base: str) -> str:
    """The OpenRosa manifest of a form's media files (the CSV of existing features; an ODK entity list is
    marked ``type="entityList"``, so that ODK Collect keeps it as one and applies updates offline)."""
    items = []
    for m in form["media"]:
        md5 = hashlib.md5(m.read_bytes()).hexdigest()
        kind = ' type="entityList"' if m.name in form.get("entity_lists", ()) else ""  # as ODK Central says it
        items.append(f"""  <mediaFile{kind}>
    <filename>{escape(m.name)}</filename>
    <hash>md5:{md5}</hash>
    <downloadUrl>{escape(base)}/forms/{escape(form['id'])}/media/{escape(m.name)}</downloadUrl>
  </mediaFile>""")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<manifest xmlns="http://openrosa.org/xforms/xformsManifest">\n'
            + "\n".join(items) + "\n</manifest>\n")


def response_xml(message: str) -> str:
    """An OpenRosa response: ODK Collect shows the message."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<OpenRosaResponse xmlns="http://openrosa.org/http/response">\n'
            f'  <message nature="submit_success">{escape(message)}</message>\n</OpenRosaResponse>\n')


def error_xml(message: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<OpenRosaResponse xmlns="http://openrosa.org/http/response">\n'
            f'  <message nature="error">{escape(message)}</message>\n</OpenRosaResponse>\n')


# -- ODK Collect's settings QR code ------------------------------------------------------------------------------


def collect_settings(server_url: str, username: str = "", password: str = "", project_name: str = "") -> dict:
    settings = {"general": {"server_url": server_url, "form_update_mode": "match_exactly", "autosend": "wifi_only"},
                "admin": {}}
    if username:
        settings["general"]["username"] = username
    if password:
        settings["general"]["password"] = password
    if project_name:
        settings["project"] = {"name": project_name, "icon": "💧"}
    return settings


def collect_qr_text(settings: dict) -> str:
    """What ODK Collect's "configure with QR code" reads: the settings JSON, zlib-compressed, base64."""
    return base64.b64encode(zlib.compress(json.dumps(settings, ensure_ascii=False).encode("utf-8"))).decode("ascii")


# -- the survey password and Digest sign-in ------------------------------------------------------------------------


def survey_password(project, override: str | None = None) -> str:
    """The room's survey password: *override*, else ``$MAPATHON_SURVEY_PASSWORD``, else the one kept in the
    project (made once, so phones set up yesterday still work after a restart)."""
    import os

    chosen = override or os.environ.get(PASSWORD_ENV)
    if chosen:
        return chosen
    kept = project.meta(PASSWORD_META)
    if kept:
        return kept
    made = "".join(secrets.choice(_READABLE) for _ in range(8))
    project.set_meta(PASSWORD_META, made)
    return made


class Digest:
    """HTTP Digest (MD5, qop=auth) with stateless nonces: an HMAC of their time with a secret of this server."""

    def __init__(self, password: str, secret: bytes | None = None, clock=time.time):
        self.password = password
        self.secret = secret or secrets.token_bytes(32)
        self.clock = clock

    def _nonce(self, ts: int) -> str:
        mac = hmac.new(self.secret, str(ts).encode(), hashlib.sha256).hexdigest()[:32]
        return f"{ts}-{mac}"

    def challenge(self, stale: bool = False) -> str:
        nonce = self._nonce(int(self.clock()))
        return (f'Digest realm="{REALM}", qop="auth", algorithm=MD5, nonce="{nonce}", opaque="{REALM}"'
                + (", stale=true" if stale else ""))

    def _nonce_ok(self, nonce: str) -> bool | None:
        """True: ours and fresh; None: ours but old (stale); False: not ours."""
        ts, _, _ = nonce.partition("-")
        if not ts.isdigit() or not hmac.compare_digest(nonce, self._nonce(int(ts))):
            return False
        return True if self.clock() - int(ts) <= NONCE_SECONDS else None

    def check(self, header: str, method: str) -> tuple[str | None, bool]:
        """The surveyor's name from an ``Authorization`` header, else (None, stale?)."""
        if not header:
            return None, False
        scheme, _, rest = header.partition(" ")
        if scheme.lower() == "basic":  # over HTTPS, or a script (curl --user)
            try:
                user, _, pw = base64.b64decode(rest.strip()).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return None, False
            return (user if user.strip() and hmac.compare_digest(pw.encode(), self.password.encode()) else None), False
        if scheme.lower() != "digest":
            return None, False
        fields = dict((k.lower(), v1 if v1 else v2) for k, v1, v2 in
                      re.findall(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))', rest))
        user, nonce, uri, resp = fields.get("username"), fields.get("nonce", ""), fields.get("uri"), fields.get("response")
        if not (user and uri and resp):
            return None, False
        fresh = self._nonce_ok(nonce)
        if fresh is False:
            return None, False
        try:  # names with accents: HTTP headers arrive as latin-1, phones send UTF-8
            user_text = user.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            user_text = user
        ha2 = hashlib.md5(f"{method}:{uri}".encode("latin-1", "replace")).hexdigest()
        qop = fields.get("qop")
        ok = False
        for raw_user in {user.encode("latin-1", "replace"), user.encode("utf-8")}:  # clients differ
            ha1 = hashlib.md5(raw_user + f":{REALM}:{self.password}".encode("utf-8")).hexdigest()
            if qop:
                expected = hashlib.md5(f"{ha1}:{nonce}:{fields.get('nc', '')}:{fields.get('cnonce', '')}:{qop}:{ha2}"
                                       .encode()).hexdigest()
            else:
                expected = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
            ok = ok or hmac.compare_digest(expected, resp.lower())
        if not ok:
            return None, False
        if fresh is None:
            return None, True
        return user_text, False
