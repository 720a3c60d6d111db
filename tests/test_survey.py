"""Field surveys: forms (presets -> XLSForm -> XForm with pyxform), imports of phones' folders and of
ODK Central / KoboToolbox exports, the submissions list, bad input, and submissions travelling with sync."""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from pyxform.xls2xform import convert

from conftest import Cli
from foundation_helpers import copy_project, village_template
from mapathon.project import open_project
from mapathon.survey import forms

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)

BASE_OSM = "tests/data/dianguirde-area-pois-osm2019.osm.pbf"
JPEG = b"\xff\xd8\xff\xe0" + b"a photo" * 50


@pytest.fixture
def proj(tmp_path_factory, tmp_path) -> Path:
    folder = copy_project(village_template(tmp_path_factory, None), tmp_path / "p")
    Cli(folder)("survey", "form", "--data", BASE_OSM, "-o", tmp_path / "water.xlsx")
    return folder


def instance(iid: str, who: str = "Seydou", *, lat=14.4931, lon=-9.0139, photo="1.jpg", kind="well") -> bytes:
    return f"""<?xml version='1.0' ?><data id="water_points" version="2026120701">
<username>{who}</username><existing/><location>{lat} {lon} 300 4</location><kind>{kind}</kind><pump>no</pump>
<operational>dry</operational><seasonal>yes</seasonal><drinking/><access/><depth/><name/><contact/>
<photo>{photo}</photo><meta><instanceID>{iid}</instanceID></meta></data>""".encode()


def listed(folder: Path, *args: str) -> list[dict]:
    return json.loads(Cli(folder)("survey", "list", "--json", *args).stdout)


# -- forms ------------------------------------------------------------------------------------------------------


def test_form_converts_with_pyxform_without_warnings(proj, tmp_path):
    xlsx = tmp_path / "water.xlsx"
    warnings: list[str] = []
    result = convert(xlsform=str(xlsx), warnings=warnings)  # pyxform's own checks (offline; no ODK Validate)
    assert warnings == []
    xml = result.xform
    assert (tmp_path / "water.xml").read_text(encoding="utf-8") == xml
    for words in ("Puits", "Open well", "Kɔlɔn", 'appearance="map"', "instance('water_points')", 'orx:max-pixels="1600"',
                  'entities:entities-version="2024.1.0"', '<entity dataset="water_points" update="1"',
                  'entities:saveto="operational"', "calculate=\" /data/existing \""):
        assert words in xml
    rows = list(csv.DictReader(io.StringIO((tmp_path / "water_points.csv").read_text(encoding="utf-8"))))
    assert len(rows) == 59 and all(r["osm_id"].startswith("node/") and len(r["geometry"].split()) == 4 for r in rows)
    assert all(r["name"] == forms.entity_id(r["osm_id"]) and r["__version"] == "1" for r in rows)
    assert [p.name for p in (proj / "survey/forms/water_points/media").iterdir()] == ["water_points.csv"]
    # the preset beside the form, with its comments, to copy and change; given back, it makes the same form
    mine = tmp_path / "water.yaml"
    assert mine.read_text(encoding="utf-8").startswith("# Water points survey.")
    mine.write_text(mine.read_text(encoding="utf-8").replace('version: "2026120701"', 'version: "2026120702"'),
                    encoding="utf-8")
    r = Cli(proj)("survey", "form", "--preset", mine, "-o", tmp_path / "nowhere" / "wells.xlsx", ok=False)
    assert "does not exist" in r.stderr
    assert not (proj / "survey/forms/water_points/versions/2026120702.yaml").exists()  # nothing half-done
    (mine.parent / "other.yaml").write_text(mine.read_text(encoding="utf-8").replace(
        'version: "2026120702"', 'version: "2026120701"').replace("Open well", "Dug well"), encoding="utf-8")
    r = Cli(proj)("survey", "form", "--preset", mine.parent / "other.yaml", ok=False)
    assert "change 'version'" in r.stderr
    Cli(proj)("survey", "form", "--preset", mine, "--data", BASE_OSM)
    assert (proj / "survey/forms/water_points/versions/2026120702.yaml").is_file()
    assert (proj / "survey/forms/water_points/versions/2026120701.yaml").is_file()  # older phones still heard


@pytest.mark.skipif(shutil.which("java") is None, reason="ODK Validate (bundled with pyxform) needs Java")
@pytest.mark.parametrize("preset", ["water", "buildings"])
def test_forms_pass_odk_validate(proj, tmp_path, preset):
    """ODK Validate (the JavaRosa check that ODK Collect's own form loader makes; its jar comes with pyxform
    and runs offline) accepts both presets' forms, entities and the map pick included."""
    xlsx = tmp_path / f"{preset}.xlsx"
    Cli(proj)("survey", "form", "--preset", preset, "--data", BASE_OSM, "-o", xlsx)
    warnings: list[str] = []
    convert(xlsform=str(xlsx), warnings=warnings, validate=True)  # raises ODKValidateError if not valid
    assert warnings == []


def test_buildings_preset_and_tags(proj):
    Cli(proj)("survey", "form", "--preset", "buildings", "--lang", "en")
    preset = forms.load_preset("water")
    tags = forms.tags_for(preset, {"kind": "tap", "operational": "working", "name": "Borne 2", "contact": "x",
                                   "depth": ""})
    assert tags == {"amenity": "drinking_water", "operational_status": "operational", "name": "Borne 2"}


@pytest.mark.parametrize("text, words", [
    ("id: x\nfields: [{name: a\n", "not a readable YAML preset"),
    ("- just\n- a list\n", "a preset is a YAML mapping"),
    ("id: x\n", "missing 'fields'"),
    ("id: x\nfields: [{name: a, type: bogus, label: {en: A}}]\n", "has type 'bogus'"),
    ("id: x\nfields: [{name: a, type: select_one, label: {en: A}}]\n", "is a choice but has no choices"),
    ("id: x\nfields: [{name: a, type: text, label: {fr: A}}]\n", "needs a label with at least 'en'"),
    ("id: x\nfields: [{name: a, type: text, label: {en: A}}, {name: a, type: text, label: {en: B}}]\n",
     "used twice"),
])
def test_bad_presets_one_line(proj, tmp_path, text, words):
    f = tmp_path / "bad.yaml"
    f.write_text(text, encoding="utf-8")
    r = Cli(proj)("survey", "form", "--preset", f, ok=False)
    assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1


# -- imports ------------------------------------------------------------------------------------------------------


def test_import_odk_collect_instances_folder(proj, tmp_path):
    inst = tmp_path / "instances"
    a = inst / "water_points_2026-12-06_10-01-02"
    b = inst / "water_points_2026-12-06_10-20-00"
    bad = inst / "water_points_2026-12-06_11-00-00"
    for d in (a, b, bad):
        d.mkdir(parents=True)
    (a / f"{a.name}.xml").write_bytes(instance("uuid:aaa"))
    (a / "1.jpg").write_bytes(JPEG)
    (b / f"{b.name}.xml").write_bytes(instance("uuid:bbb", "Awa", lat=14.5545, lon=-9.1226, photo=""))
    (bad / f"{bad.name}.xml").write_bytes(instance("uuid:ccc")[:-30])  # the phone's battery died mid-write
    r = Cli(proj)("survey", "import", inst, ok=False)
    assert r.exit_code == 2
    assert "2 submission(s) stored, 0 already there, 1 refused" in r.stdout
    assert "truncated" in r.stderr and bad.name in r.stderr
    subs = {s["instance_id"]: s for s in listed(proj)}
    assert set(subs) == {"uuid:aaa", "uuid:bbb"}
    assert (proj / subs["uuid:aaa"]["photos"][0]).read_bytes() == JPEG
    assert subs["uuid:aaa"]["tags"] == {"man_made": "water_well", "pump": "no", "operational_status": "dry",
                                        "seasonal": "yes"}
    assert [s["instance_id"] for s in listed(proj, "--surveyor", "awa")] == ["uuid:bbb"]
    assert [s["instance_id"] for s in listed(proj, "--village", subs["uuid:aaa"]["village"])] == ["uuid:aaa"]
    again = Cli(proj)("survey", "import", a)  # the same phone copied twice: nothing twice
    assert "0 submission(s) stored, 1 already there" in again.stdout
    assert len(listed(proj)) == 2


def test_import_refuses_xml_bomb(proj, tmp_path):
    d = tmp_path / "inst" / "x"
    d.mkdir(parents=True)
    (d / "x.xml").write_bytes(b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                              b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]><data id="water_points">&lol2;</data>')
    r = Cli(proj)("survey", "import", tmp_path / "inst", ok=False)
    assert "DTD or entities" in r.stderr and listed(proj) == []


def _central_csv(rows: list[dict]) -> bytes:
    cols = ["SubmissionDate", "kind", "pump", "operational", "seasonal", "drinking", "access", "depth", "name",
            "contact", "photo", "location-Latitude", "location-Longitude", "location-Altitude", "location-Accuracy",
            "meta-instanceID", "KEY", "SubmitterID", "SubmitterName", "AttachmentsPresent", "AttachmentsExpected",
            "Status", "ReviewState", "DeviceID", "Edits", "FormVersion"]
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=cols)
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c, "") for c in cols})
    return out.getvalue().encode()


def test_import_central_zip_with_media(proj, tmp_path):
    rows = [{"SubmissionDate": "2026-11-30T10:00:00.000Z", "kind": "borehole", "pump": "manual",
             "operational": "working", "photo": "1701.jpg", "location-Latitude": "14.4931",
             "location-Longitude": "-9.0139", "location-Accuracy": "8", "meta-instanceID": "uuid:c-1", "KEY": "uuid:c-1",
             "SubmitterName": "Moussa", "FormVersion": "2026120701"},
            {"kind": "tap", "operational": "broken", "location-Latitude": "14.55", "location-Longitude": "-9.12",
             "meta-instanceID": "uuid:c-2", "KEY": "uuid:c-2", "SubmitterName": "Moussa", "FormVersion": "2026120701"}]
    z = tmp_path / "water_points.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("water_points.csv", _central_csv(rows))
        zf.writestr("media/1701.jpg", JPEG)
    Cli(proj)("survey", "import", z)
    subs = {s["instance_id"]: s for s in listed(proj)}
    assert subs["uuid:c-1"]["surveyor"] == "Moussa" and subs["uuid:c-1"]["accuracy_m"] == 8
    assert subs["uuid:c-1"]["tags"]["water_well:type"] == "borehole"
    assert (proj / subs["uuid:c-1"]["photos"][0]).read_bytes() == JPEG
    assert subs["uuid:c-2"]["tags"] == {"amenity": "drinking_water", "operational_status": "broken"}
    assert "SubmitterID" not in subs["uuid:c-2"]["answers"]


def test_import_kobo_csv_semicolons(proj, tmp_path):
    f = tmp_path / "kobo-export.csv"
    f.write_text("kind;operational;photo;_location_latitude;_location_longitude;_location_altitude;"
                 "_location_precision;_uuid;_submitted_by;__version__;_id\n"
                 "well;dry;;14.4931;-9.0139;0;5;0f2e6c1a-kobo;awa;2026120701;12\n", encoding="utf-8")
    f.write_text(f.read_text(encoding="utf-8").replace("__version__;_id", "__version__;_id;_submission_time")
                 .replace("2026120701;12", "2026120701;12;2026-11-30T10:05:00"), encoding="utf-8")
    Cli(proj)("survey", "import", f, "--form", "water_points")
    assert "Dianguirdé" in Cli(proj)("survey", "list").stdout
    (s,) = listed(proj)
    assert s["received"] == "2026-11-30T10:05:00.000000Z"
    assert s["instance_id"] == "uuid:0f2e6c1a-kobo" and s["surveyor"] == "awa" and s["accuracy_m"] == 5
    assert s["tags"] == {"man_made": "water_well", "operational_status": "dry"}


def test_import_csv_with_missing_columns(proj, tmp_path):
    f = tmp_path / "water_points.csv"
    f.write_text("kind,operational\nwell,dry\n", encoding="utf-8")
    r = Cli(proj)("survey", "import", f, ok=False)
    assert "missing column(s): the instance ID" in r.stderr and "the location" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and listed(proj) == []


# -- sync ---------------------------------------------------------------------------------------------------------


def test_submissions_travel_with_sync(proj, tmp_path):
    d = tmp_path / "inst" / "one"
    d.mkdir(parents=True)
    (d / "one.xml").write_bytes(instance("uuid:travel"))
    (d / "1.jpg").write_bytes(JPEG)
    Cli(proj)("sync", "clone", tmp_path / "bamako", "--site-name", "Bamako")
    Cli(proj)("survey", "import", tmp_path / "inst")
    out = Cli(proj)("sync", "export", "-o", tmp_path / "b.zip").stdout
    r = Cli(tmp_path / "bamako")("sync", "import", tmp_path / "b.zip")
    assert "New survey submissions: 1" in r.stdout
    (s,) = listed(tmp_path / "bamako")
    assert s["instance_id"] == "uuid:travel" and (tmp_path / "bamako" / s["photos"][0]).read_bytes() == JPEG
    again = Cli(tmp_path / "bamako")("sync", "import", tmp_path / "b.zip")  # twice is once
    assert "New survey submissions" not in again.stdout and len(listed(tmp_path / "bamako")) == 1
    assert out


def test_forms_received_together_are_each_answered_as_alone(proj):
    """openrosa.receive_many (the room server's writer hands it the forms queued together): a refused form
    writes nothing, the same instance twice is kept once, one already stored gets its new photo, the
    others are stored with their photos, their surveyors registered and their events recorded."""
    from mapathon.survey import openrosa

    Cli(proj)("volunteer", "add", "Moussa Konaté", "--as", "Mariam")

    def item(iid, who="Seydou", photo="1.jpg", **kw):
        return (openrosa.read_instance(instance(iid, who, photo=photo, **kw), iid), who, iid, {photo: JPEG},
                openrosa.MAX_PHOTO_BYTES)

    with open_project(proj) as p:
        first = openrosa.receive(p, *item("uuid:r-0"))
        assert first[1:] == (True, 0)
        got = openrosa.receive_many(p, [item("uuid:r-1"), item("uuid:r-2", "Awa"), item("uuid:r-typo", "Mousa Konate"),
                                        item("uuid:r-1"), item("uuid:r-0", photo="2.jpg"),
                                        item("uuid:r-3", "Awa", lat=14.51)])
        assert [g[1:] if isinstance(g, tuple) else type(g).__name__ for g in got] == [
            (True, 0), (True, 0), "UnknownVolunteer", (None, 0), (None, 1), (True, 0)]
        assert "Moussa Konaté" in str(got[2])
        events = p.conn.execute("SELECT actor, data FROM events WHERE action = 'survey.submit' ORDER BY seq").fetchall()
    assert [(e[0], json.loads(e[1])["instance_id"]) for e in events] == [
        ("Seydou", "uuid:r-0"), ("Seydou", "uuid:r-1"), ("Awa", "uuid:r-2"), ("Awa", "uuid:r-3")]
    kept = {s["instance_id"]: s for s in listed(proj)}
    assert set(kept) == {"uuid:r-0", "uuid:r-1", "uuid:r-2", "uuid:r-3"}
    assert len(kept["uuid:r-0"]["photos"]) == 2 and all((proj / f).read_bytes() == JPEG for f in kept["uuid:r-0"]["photos"])
    assert kept["uuid:r-2"]["surveyor"] == "Awa" and kept["uuid:r-2"]["village"]
    assert not (proj / "survey/photos/r-typo").exists()
    names = json.loads(Cli(proj)("volunteer", "list", "--json").stdout)
    assert {"Seydou", "Awa"} <= {v["name"] for v in names} and "Mousa Konate" not in {v["name"] for v in names}


def test_the_photo_of_a_form_sent_twice_in_one_batch_is_kept(proj):
    """ODK Collect sends a form whose photos do not fit in two requests (the instance, then the instance
    with the photo): queued together, they reach receive_many in one call. The photo of the second is
    kept and named by the row, and its answer says so; a copy of a refused form is refused the same."""
    from mapathon.survey import openrosa

    Cli(proj)("volunteer", "add", "Moussa Konaté", "--as", "Mariam")

    def item(iid, who="Seydou", files=None):
        return (openrosa.read_instance(instance(iid, who), iid), who, iid, files or {}, openrosa.MAX_PHOTO_BYTES)

    with open_project(proj) as p:
        got = openrosa.receive_many(p, [item("uuid:d-1"), item("uuid:d-1", files={"1.jpg": JPEG}),
                                        item("uuid:d-1", files={"1.jpg": JPEG}),
                                        item("uuid:d-2", "Mousa Konate"), item("uuid:d-2", "Mousa Konate"),
                                        item("uuid:d-3", "Mousa Konate"), item("uuid:d-3", "Awa")])
    assert [g[1:] if isinstance(g, tuple) else type(g).__name__ for g in got] == [
        (True, 0), (None, 1), (None, 0), "UnknownVolunteer", "UnknownVolunteer", "UnknownVolunteer", (True, 0)]
    kept = {s["instance_id"]: s for s in listed(proj)}
    assert set(kept) == {"uuid:d-1", "uuid:d-3"} and kept["uuid:d-3"]["surveyor"] == "Awa"
    assert kept["uuid:d-1"]["photos"] == ["survey/photos/d-1/1.jpg"]
    assert (proj / kept["uuid:d-1"]["photos"][0]).read_bytes() == JPEG
    assert not (proj / "survey/photos/d-2").exists()
