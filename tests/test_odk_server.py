"""ODK Collect against the room server, over real HTTP, as the OpenRosa spec says a client talks:
Digest sign-in, form list, form download, manifest and media, HEAD pre-flight, multipart submissions."""

from __future__ import annotations

import base64
import csv as csvlib
import hashlib
import io
import json
import zlib
import xml.etree.ElementTree as ET

import pytest
import requests
from requests.auth import HTTPDigestAuth

from conftest import Cli
from foundation_helpers import copy_project, village_template
from mapathon.project import open_project
from test_server import RoomServer

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)

BASE_OSM = "tests/data/dianguirde-area-pois-osm2019.osm.pbf"
OR = {"x": "http://openrosa.org/xforms/xformsList", "m": "http://openrosa.org/xforms/xformsManifest",
      "r": "http://openrosa.org/http/response"}
HEAD = {"X-OpenRosa-Version": "1.0"}
SURVEYOR = "Awa Traoré"
JPEG = b"\xff\xd8\xff\xe0" + b"photo of a well" * 100


def instance(iid: str, *, form="water_points", version=None, photo="well.jpg", extra="") -> bytes:
    v = f' version="{version}"' if version is not None else ' version="2026120701"'
    return f"""<?xml version="1.0"?>
<data xmlns:jr="http://openrosa.org/javarosa" xmlns:orx="http://openrosa.org/xforms" id="{form}"{v}>
  <username>{SURVEYOR}</username><existing>node/4561949658</existing>
  <location>14.4931 -9.0139 310 6.5</location><kind>borehole</kind><pump>manual</pump>
  <operational>broken</operational><seasonal>yes</seasonal><drinking>yes</drinking><access>yes</access>
  <depth>42</depth><name>Forage du marché</name><contact>Moussa, 76 00 00 00</contact><photo>{photo}</photo>{extra}
  <meta><instanceID>{iid}</instanceID></meta>
</data>""".encode()


@pytest.fixture
def odk(backend, tmp_path_factory, module_servers):
    """One room server per backend, its project with the water form published."""
    key = f"odk-{backend}"
    if key not in module_servers:
        folder = copy_project(village_template(tmp_path_factory, None), tmp_path_factory.mktemp("odk") / "p",
                              shared=True)
        Cli(folder)("survey", "form", "--data", BASE_OSM)
        srv = RoomServer(folder).__enter__()
        with open_project(folder) as p:
            srv.password = p.meta("survey_password")
        srv.auth = HTTPDigestAuth(SURVEYOR, srv.password)
        module_servers[key] = srv
    return module_servers[key]


def submit(srv, xml: bytes, photos: dict | None = None, auth=None) -> requests.Response:
    files = [("xml_submission_file", ("submission.xml", xml, "text/xml"))]
    files += [(name, (name, data, "image/jpeg")) for name, data in (photos or {}).items()]
    return requests.post(srv.url + "/odk/submission", files=files, auth=auth or srv.auth, headers=HEAD, timeout=60)


def stored(srv, iid: str) -> list[dict]:
    out = Cli(srv.folder)("survey", "list", "--json").stdout
    return [s for s in json.loads(out) if s["instance_id"] == iid]


def message(r: requests.Response) -> str:
    return ET.fromstring(r.content).find("r:message", OR).text


def test_sign_in_is_digest_with_name_and_survey_password(odk):
    r = requests.get(odk.url + "/odk/formList", headers=HEAD, timeout=30)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Digest ")
    assert 'qop="auth"' in r.headers["WWW-Authenticate"]
    bad = requests.get(odk.url + "/odk/formList", headers=HEAD, auth=HTTPDigestAuth(SURVEYOR, "wrong"), timeout=30)
    assert bad.status_code == 401
    ok = requests.get(odk.url + "/odk/formList", headers=HEAD, auth=odk.auth, timeout=30)
    assert ok.status_code == 200 and ok.headers["X-OpenRosa-Version"] == "1.0"


def test_form_list_form_manifest_and_media(odk):
    r = requests.get(odk.url + "/odk/formList", headers=HEAD, auth=odk.auth, timeout=30)
    root = ET.fromstring(r.content)
    assert root.tag == "{%s}xforms" % OR["x"]
    (form,) = [x for x in root.findall("x:xform", OR) if x.find("x:formID", OR).text == "water_points"]
    assert form.find("x:version", OR).text == "2026120701"
    xml = requests.get(form.find("x:downloadUrl", OR).text, auth=odk.auth, timeout=30)
    assert xml.status_code == 200 and xml.headers["X-OpenRosa-Version"] == "1.0"
    assert form.find("x:hash", OR).text == "md5:" + hashlib.md5(xml.content).hexdigest()
    xroot = ET.fromstring(xml.content)
    data = xroot.find(".//{http://www.w3.org/2002/xforms}instance/{http://www.w3.org/2002/xforms}data")
    assert data.get("id") == "water_points" and data.get("version") == "2026120701"
    langs = {t.get("lang") for t in xroot.iter("{http://www.w3.org/2002/xforms}translation")}
    assert {"Français (fr)", "English (en)", "Bamanankan (bm)"} <= langs
    man = requests.get(form.find("x:manifestUrl", OR).text, auth=odk.auth, headers=HEAD, timeout=30)
    (media,) = ET.fromstring(man.content).findall("m:mediaFile", OR)
    # the wells as an ODK entity list (as ODK Central marks one): Collect keeps it and updates it offline
    assert media.find("m:filename", OR).text == "water_points.csv" and media.get("type") == "entityList"
    csv = requests.get(media.find("m:downloadUrl", OR).text, auth=odk.auth, timeout=30)
    assert media.find("m:hash", OR).text == "md5:" + hashlib.md5(csv.content).hexdigest()
    lines = csv.text.splitlines()
    assert lines[0] == "name,label,__version,geometry,osm_id" and len(lines) == 1 + 59  # the 2019 extract's wells
    missing = requests.get(odk.url + "/odk/forms/nope.xml", auth=odk.auth, timeout=30)
    assert missing.status_code == 404 and "nope" in message(missing)


def test_head_then_multipart_submission_with_photo_then_duplicate(odk):
    h = requests.head(odk.url + "/odk/submission", headers=HEAD, auth=odk.auth, timeout=30)
    assert h.status_code == 204 and int(h.headers["X-OpenRosa-Accept-Content-Length"]) > 1_000_000
    assert h.headers["X-OpenRosa-Version"] == "1.0"
    iid = "uuid:6f1c1d3e-0001-4000-8000-000000000001"
    r = submit(odk, instance(iid), {"well.jpg": JPEG})
    assert r.status_code == 201, r.text
    assert r.headers["X-OpenRosa-Version"] == "1.0" and SURVEYOR in message(r)
    (s,) = stored(odk, iid)
    assert s["surveyor"] == SURVEYOR and s["picked_feature"] == "node/4561949658"
    assert s["village"] == "Dianguirdé" and s["accuracy_m"] == 6.5
    assert s["tags"]["man_made"] == "water_well" and s["tags"]["operational_status"] == "broken"
    assert s["tags"]["pump"] == "manual" and s["tags"]["depth"] == "42" and "contact" not in s["tags"]
    assert (odk.folder / s["photos"][0]).read_bytes() == JPEG
    again = submit(odk, instance(iid), {"well.jpg": JPEG})  # the phone did not hear the answer: sends again
    assert again.status_code == 202
    assert len(stored(odk, iid)) == 1
    assert len(list((odk.folder / s["photos"][0]).parent.iterdir())) == 1


def test_unsigned_chunked_and_plain_submissions_get_the_same_answers(odk):
    """A plain request (Content-Length) is answered without FastAPI's routing, a chunked one through it:
    both by the same function, with the same answers."""
    iid = "uuid:6f1c1d3e-0003-4000-8000-000000000003"
    unsigned = requests.post(odk.url + "/odk/submission", headers=HEAD, timeout=30,
                             files=[("xml_submission_file", ("submission.xml", instance(iid), "text/xml"))])
    assert unsigned.status_code == 401 and unsigned.headers["WWW-Authenticate"].startswith("Digest ")
    assert unsigned.headers["X-OpenRosa-Version"] == "1.0" and stored(odk, iid) == []
    req = requests.Request("POST", odk.url + "/odk/submission", files=[
        ("xml_submission_file", ("submission.xml", instance(iid), "text/xml")),
        ("well.jpg", ("well.jpg", JPEG, "image/jpeg"))]).prepare()
    body = req.body

    def chunked():
        for i in range(0, len(body), 700):
            yield body[i:i + 700]

    # signed at once (the pre-flight first): a body sent in chunks cannot be sent again after a 401
    assert requests.head(odk.url + "/odk/submission", headers=HEAD, auth=odk.auth, timeout=30).status_code == 204
    r = requests.post(odk.url + "/odk/submission", data=chunked(), auth=odk.auth, timeout=30,
                      headers={**HEAD, "Content-Type": req.headers["Content-Type"]})
    assert r.status_code == 201 and r.headers["Location"] == odk.url + "/odk/submission", r.text
    (s,) = stored(odk, iid)
    assert (odk.folder / s["photos"][0]).read_bytes() == JPEG
    plain = submit(odk, instance(iid), {"well.jpg": JPEG})
    assert plain.status_code == 202 and message(plain) == "already received: thank you"
    assert len(stored(odk, iid)) == 1


def test_an_entity_update_is_the_feature_picked(odk):
    """ODK entities: the surveyor picked a well of the entity list (its id is the name column) and the
    submission says which entity it updates (``<meta><entity update="1">``): stored as a map pick."""
    man = requests.get(odk.url + "/odk/forms/water_points/manifest", auth=odk.auth, headers=HEAD, timeout=30)
    url = ET.fromstring(man.content).find("m:mediaFile/m:downloadUrl", OR).text
    rows = list(csvlib.DictReader(io.StringIO(requests.get(url, auth=odk.auth, timeout=30).text)))
    well = next(r for r in rows if r["osm_id"] == "node/4561949658")
    entity = (f'<entity dataset="water_points" id="{well["name"]}" update="1" baseVersion="1" trunkVersion="1" '
              f'branchId="6f1c1d3e-aaaa-4000-8000-000000000000"/>')
    iid = "uuid:6f1c1d3e-0004-4000-8000-000000000004"
    picked = b"<existing>node/4561949658</existing>"
    xml = instance(iid).replace(picked, f"<existing>{well['name']}</existing>".encode())
    xml = xml.replace(b"<meta>", b"<meta>" + entity.encode())
    r = submit(odk, xml, {"well.jpg": JPEG})
    assert r.status_code == 201, r.text
    (s,) = stored(odk, iid)
    assert s["picked_feature"] == "node/4561949658" and s["tags"]["operational_status"] == "broken"
    # a point of its own: no entity picked (update="0"), and an entity the list no longer has
    new = "uuid:6f1c1d3e-0005-4000-8000-000000000005"
    xml = instance(new).replace(picked, b"<existing/>").replace(b"<meta>", b'<meta><entity dataset="water_points" '
                                                                  b'id="" update="0" baseVersion="" trunkVersion="" branchId=""/>')
    assert submit(odk, xml).status_code == 201
    gone = "uuid:6f1c1d3e-0006-4000-8000-000000000006"
    xml = instance(gone).replace(picked, b"<existing>0f8f1e5a-0000-5000-8000-0000000000aa</existing>")
    assert submit(odk, xml).status_code == 201
    (a,), (b,) = stored(odk, new), stored(odk, gone)
    assert a["picked_feature"] is None and b["picked_feature"] is None
    assert b["answers"]["entity_id"] == "0f8f1e5a-0000-5000-8000-0000000000aa"


def test_photos_sent_in_a_later_request_are_added(odk):
    """ODK Collect splits a submission larger than X-OpenRosa-Accept-Content-Length: the XML comes again
    with the photos that did not fit."""
    iid = "uuid:6f1c1d3e-0002-4000-8000-000000000002"
    assert submit(odk, instance(iid)).status_code == 201  # the XML alone first
    assert stored(odk, iid)[0]["photos"] == []
    r = submit(odk, instance(iid), {"well.jpg": JPEG})
    assert r.status_code == 202 and "1 more photo" in message(r)
    (s,) = stored(odk, iid)
    assert len(s["photos"]) == 1 and (odk.folder / s["photos"][0]).read_bytes() == JPEG


def test_a_name_close_to_a_volunteer_is_refused(odk):
    Cli(odk.folder)("volunteer", "add", "Moussa Konaté", "--as", "Mariam")
    r = submit(odk, instance("uuid:typo"), auth=HTTPDigestAuth("Mousa Konate", odk.password))
    assert r.status_code == 400 and "Moussa Konaté" in message(r)
    assert stored(odk, "uuid:typo") == []


@pytest.mark.parametrize("body, words", [
    (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
     b'<data id="water_points"><x>&b;</x></data>', "DTD or entities"),
    (instance("uuid:cut")[:-40], "truncated"),
    (instance("uuid:unknown-form", form="wells_2020"), "no such survey form"),
    (instance("uuid:unknown-version", version="1999"), "unknown version '1999'"),
    (instance("uuid:deep", extra="<g>" * 20000 + "</g>" * 20000), "nested deeper than"),  # was a 500
])
def test_bad_submissions_are_refused_in_one_line(odk, body, words):
    r = submit(odk, body)
    assert r.status_code == 400, r.text
    text = message(r)
    assert words in text and "\n" not in text and "Traceback" not in r.text
    kept = json.loads(Cli(odk.folder)("survey", "list", "--json").stdout)
    assert not any(s["instance_id"] in ("uuid:cut", "uuid:unknown-form", "uuid:unknown-version", "uuid:deep")
                   for s in kept)


def test_multipart_cut_short_is_refused(odk):
    req = requests.Request("POST", odk.url + "/odk/submission", files=[
        ("xml_submission_file", ("submission.xml", instance("uuid:cut-multipart"), "text/xml")),
        ("well.jpg", ("well.jpg", JPEG, "image/jpeg"))]).prepare()
    body = req.body[:len(req.body) // 2]  # the Wi-Fi dropped mid-way
    r = requests.post(odk.url + "/odk/submission", data=body, auth=odk.auth, timeout=30,
                      headers={**HEAD, "Content-Type": req.headers["Content-Type"]})
    assert r.status_code == 400 and "cut short" in message(r)
    assert stored(odk, "uuid:cut-multipart") == []


def test_photo_over_the_limit_is_refused(odk):
    iid = "uuid:big-photo"
    r = submit(odk, instance(iid, photo="big.jpg"), {"big.jpg": b"\xff\xd8" + b"0" * (1024 * 1024 + 10)})
    assert r.status_code == 413
    assert "photo big.jpg is 1.0 MB, more than the 1 MB allowed" in message(r)
    assert stored(odk, iid) == []


def test_room_page_settings_qr_for_odk_collect(odk):
    session = odk.join("Fanta")
    r = requests.get(odk.url + "/odk/settings", headers=session, timeout=30)
    assert r.status_code == 200
    got = r.json()
    settings = json.loads(zlib.decompress(base64.b64decode(got["qr"])))
    assert settings["general"]["server_url"] == odk.url + "/odk"
    assert settings["general"]["username"] == "Fanta" and settings["general"]["password"] == odk.password
    assert got["svg"].startswith("<svg")
    assert requests.get(odk.url + "/odk/settings", timeout=30).status_code == 401  # signed-in volunteers only


@pytest.mark.parametrize("extra, words", [
    ([(f"f{i}", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(150)], "more than 100 parts"),
    ([("x" * 20000, ("a.jpg", b"x", "image/jpeg"))], "headers over 8 KiB"),
])
def test_multipart_with_too_many_parts_or_huge_headers_is_refused(odk, extra, words):
    """A body of many tiny parts or a huge part header took seconds of the event loop, that of every
    volunteer of the room (700,000 parts: 4 s): refused before."""
    iid = "uuid:many-parts"
    r = requests.post(odk.url + "/odk/submission", auth=odk.auth, headers=HEAD, timeout=30, files=[
        ("xml_submission_file", ("submission.xml", instance(iid), "text/xml")), *extra])
    assert r.status_code == 400 and words in message(r), r.text
    assert stored(odk, iid) == []
