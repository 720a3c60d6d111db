"""The project folder: init, selection (--project, $MAPATHON_PROJECT, cwd), info, volunteers, tasks, events."""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from datetime import datetime, timezone

import pytest

from conftest import VILLAGES_CSV, Cli
from foundation_helpers import assert_error, copy_project, query, snapshot, village_template

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)

VILLAGES = sorted(["Dianguirdé", "Torodo", "Kourougué", "Méréla", "Dabara", "M'Beidi", "N'Gabanigoro", "Silamé",
                   "Habougou", "Boudésigui", "Kaouka", "Foulabougou", "Diarabala", "Chicata"])


@pytest.fixture
def proj(tmp_path_factory, tmp_path):
    return copy_project(village_template(tmp_path_factory, None), tmp_path / "p")


@pytest.fixture
def gproj(tmp_path_factory, tmp_path):
    return copy_project(village_template(tmp_path_factory, 16), tmp_path / "g")


# -- init -------------------------------------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_init_creates_a_portable_folder_with_one_sqlite_file_in_wal_mode(tmp_path):
    folder = tmp_path / "usb" / "dianguirde"
    r = Cli()("init", folder, "--name", "Dianguirdé 2026", "--aoi", VILLAGES_CSV, "--radius", "2000",
              "--organizer", "Mariam")
    assert "Created project Dianguirdé 2026" in r.stdout
    assert "14 named area(s)" in r.stdout
    files = {f.name for f in folder.iterdir()}
    assert "mapathon.sqlite" in files
    assert not any(f.endswith(".init") for f in files)
    conn = sqlite3.connect(folder / "mapathon.sqlite")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        names = sorted(r[0] for r in conn.execute("SELECT name FROM areas WHERE kind = 'village'"))
        vols = conn.execute("SELECT name, is_validator, is_organizer FROM volunteers").fetchall()
        evs = conn.execute("SELECT actor, action FROM events ORDER BY seq").fetchall()
    finally:
        conn.close()
    assert meta["name"] == "Dianguirdé 2026"
    uuid.UUID(meta["project_id"])
    uuid.UUID(meta["site_id"])
    assert names == VILLAGES
    assert vols == [("Mariam", 1, 1)]
    assert evs[0] == ("Mariam", "project.init")
    assert ("Mariam", "volunteer.add") in evs


def test_init_refuses_an_existing_project_and_changes_nothing(proj):
    before = snapshot(proj)
    r = Cli()("init", proj, "--name", "Again", "--aoi", VILLAGES_CSV, "--radius", "500", ok=False)
    assert_error(r, str(proj), "already")
    assert snapshot(proj) == before


def test_init_refuses_a_file_as_folder(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    r = Cli()("init", f, "--name", "X", "--aoi", VILLAGES_CSV, "--radius", "500", ok=False)
    assert_error(r, "afile", "not a folder")
    assert f.read_text() == "x"


def test_init_needs_a_name(tmp_path):
    r = Cli()("init", tmp_path / "p", "--name", "  ", "--aoi", VILLAGES_CSV, "--radius", "500", ok=False)
    assert_error(r, "--name")
    assert not (tmp_path / "p" / "mapathon.sqlite").exists()


@pytest.mark.parametrize("bad", ["", "  ", "x" * 81])
def test_init_with_a_bad_organizer_name_creates_nothing(tmp_path, bad):
    r = Cli()("init", tmp_path / "p", "--name", "X", "--aoi", VILLAGES_CSV, "--radius", "500", "--organizer", bad,
              ok=False)
    assert_error(r, "--organizer")
    assert not (tmp_path / "p").exists()


def test_init_missing_aoi_file_names_it_and_creates_nothing(tmp_path):
    r = Cli()("init", tmp_path / "p", "--name", "X", "--aoi", tmp_path / "nowhere.geojson", ok=False)
    assert_error(r, "nowhere.geojson", "no such file")
    assert not (tmp_path / "p").exists()


def test_init_without_required_options_is_a_usage_error(tmp_path):
    r = Cli()("init", tmp_path / "p", ok=False)
    assert r.exit_code == 2
    assert not (tmp_path / "p").exists()


def test_version():
    r = Cli()("--version")
    assert re.fullmatch(r"mapathon \d+\.\d+\.\d+\S*", r.stdout.strip())


# -- choosing the project ------------------------------------------------------------------------------------


def test_project_option_env_var_and_current_folder(proj, tmp_path, monkeypatch):
    by_option = json.loads(Cli(proj)("info", "--json").stdout)
    monkeypatch.setenv("MAPATHON_PROJECT", str(proj))
    by_env = json.loads(Cli()("info", "--json").stdout)
    monkeypatch.delenv("MAPATHON_PROJECT")
    monkeypatch.chdir(proj)
    by_cwd = json.loads(Cli()("info", "--json").stdout)
    assert by_option["project_id"] == by_env["project_id"] == by_cwd["project_id"]
    # --project wins over the environment
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.setenv("MAPATHON_PROJECT", str(other))
    assert json.loads(Cli(proj)("info", "--json").stdout)["project_id"] == by_option["project_id"]


def test_not_a_project_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MAPATHON_PROJECT", raising=False)
    monkeypatch.chdir(tmp_path)
    for args in (["info"], ["status"], ["tasks"], ["claim", "1", "--as", "A"], ["volunteer", "list"],
                 ["export", "tasks", "-o", "x.geojson"], ["grid", "--zoom", "16"]):
        r = Cli()(*args, ok=False)
        assert_error(r, str(tmp_path), "not a mapathon project")
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_database_is_an_error_not_a_traceback(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "mapathon.sqlite").write_bytes(b"this is not sqlite" * 100)
    r = Cli(folder)("info", ok=False)
    assert_error(r, "mapathon.sqlite")


# -- info ----------------------------------------------------------------------------------------------------


def test_info_json_and_text(gproj):
    cli = Cli(gproj)
    info = json.loads(cli("info", "--json").stdout)
    assert info["name"] == "Dianguirdé"
    assert sorted(info["villages"]) == VILLAGES
    n = query(gproj, "SELECT COUNT(*) FROM tasks")[0][0]
    assert info["tasks"] == n > 0
    assert info["grid"]["kind"] == "tiles" and info["grid"]["zoom"] == 16
    west, south, east, north = info["aoi_bounds"]
    assert -9.2 < west < east < -8.8 and 14.1 < south < north < 14.7
    text = cli("info").stdout
    assert "Dianguirdé" in text and f"Tasks: {n}" in text


def test_info_before_grid(proj):
    info = json.loads(Cli(proj)("info", "--json").stdout)
    assert info["grid"] is None and info["tasks"] == 0
    assert "no grid yet" in Cli(proj)("info").stdout


# -- volunteers -----------------------------------------------------------------------------------------------


def test_volunteer_add_list_and_roles(proj):
    cli = Cli(proj)
    assert "Added Awa (mapper)" in cli("volunteer", "add", "Awa", "--osm-user", "awa_osm").stdout
    assert "Added Vera (validator)" in cli("volunteer", "add", "Vera", "--validator", "--as", "Mariam").stdout
    # adding again grants roles, keeps the OSM user
    assert "Updated Awa (organizer)" in cli("volunteer", "add", "Awa", "--organizer", "--as", "Mariam").stdout
    vols = {v["name"]: v for v in json.loads(cli("volunteer", "list", "--json").stdout)}
    assert vols["Awa"] == {"name": "Awa", "osm_user": "awa_osm", "validator": False, "organizer": True}
    assert vols["Vera"]["validator"] and not vols["Vera"]["organizer"]
    assert vols["Mariam"]["validator"] and vols["Mariam"]["organizer"]
    text = cli("volunteer", "list").stdout
    assert "awa_osm" in text and "Vera" in text
    evs = query(proj, "SELECT action, data FROM events WHERE action LIKE 'volunteer.%' ORDER BY seq")
    assert [e["action"] for e in evs][-3:] == ["volunteer.add", "volunteer.add", "volunteer.update"]
    # names are matched without case: no duplicate volunteer
    cli("volunteer", "add", "awa")
    assert len(json.loads(cli("volunteer", "list", "--json").stdout)) == 3


@pytest.mark.parametrize("bad", ["", "   ", "x" * 81, "bell\x07"])
def test_volunteer_add_bad_names(proj, bad):
    before = snapshot(proj)
    r = Cli(proj)("volunteer", "add", bad, ok=False)
    assert_error(r, "name")
    assert snapshot(proj) == before


# -- tasks -----------------------------------------------------------------------------------------------------


def test_tasks_list_filters(gproj):
    cli = Cli(gproj)
    cli("claim", "1", "--as", "Awa")
    all_tasks = json.loads(cli("tasks", "--json").stdout)
    assert len(all_tasks) == query(gproj, "SELECT COUNT(*) FROM tasks")[0][0]
    locked = json.loads(cli("tasks", "--json", "--state", "locked_for_mapping").stdout)
    assert [(t["id"], t["locked_by"]) for t in locked] == [(1, "Awa")]
    torodo = json.loads(cli("tasks", "--json", "--village", "Torodo").stdout)
    assert torodo and all("Torodo" in t["village"] for t in torodo)
    assert len(torodo) == query(gproj, """SELECT COUNT(*) FROM task_areas ta JOIN areas a ON a.id = ta.area_id
                                          WHERE a.name = 'Torodo'""")[0][0]
    text = cli("tasks", "--village", "Torodo").stdout
    assert f"{len(torodo)} task(s)" in text
    assert_error(cli("tasks", "--state", "DONE", ok=False), "--state DONE")
    assert "Torodo" in assert_error(cli("tasks", "--village", "Paris", ok=False), "--village Paris", "no such village")


# -- the event log ------------------------------------------------------------------------------------------------


def test_events_are_append_only_records_with_unique_ids_and_utc_times(gproj):
    cli = Cli(gproj)
    cli("volunteer", "add", "Vera", "--validator", "--as", "Mariam")
    cli("claim", "3", "--as", "Awa")
    cli("done", "3", "--as", "Awa")
    cli("validate", "3", "--as", "Vera", "--accept", "--comment", "bien")
    evs = query(gproj, "SELECT * FROM events ORDER BY seq")
    ids = [e["id"] for e in evs]
    assert len(set(ids)) == len(ids)
    for e in evs:
        uuid.UUID(e["id"])
        ts = datetime.strptime(e["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        assert abs((datetime.now(timezone.utc) - ts).total_seconds()) < 600
        assert e["site"] and e["actor"]
    lamports = [e["lamport"] for e in evs]
    assert lamports == sorted(lamports) and len(set(lamports)) == len(lamports)
    last = evs[-1]
    assert (last["actor"], last["action"], last["from_state"], last["to_state"], last["comment"]) == (
        "Vera", "validate", "MAPPED", "VALIDATED", "bien")


def test_only_an_organizer_gives_roles(pcli):
    """The gridded project has an organizer (Mariam): others cannot hand out roles."""
    r = pcli("volunteer", "add", "Awa", "--validator", ok=False)
    assert "only an organizer may give the validator role" in r.stderr
    r = pcli("volunteer", "add", "Awa", "--organizer", "--as", "Bakary", ok=False)
    assert "--as Bakary: no such volunteer" in r.stderr
    pcli("volunteer", "add", "Bakary")  # a plain mapper needs nobody's leave
    r = pcli("volunteer", "add", "Awa", "--organizer", "--as", "Bakary", ok=False)
    assert "Bakary is not an organizer" in r.stderr
    assert "Added Awa (validator)" in pcli("volunteer", "add", "Awa", "--validator", "--as", "Mariam").stdout


def test_names_match_without_case_accents_or_extra_spaces(pcli):
    """AWA  TRAORE, awa traoré and a decomposed 'é' are the same person: no second volunteer."""
    import unicodedata

    pcli("claim", "--next", "--as", "Awa Traoré")
    for spelling in ("AWA  TRAORE", " awa traoré ", unicodedata.normalize("NFD", "Awa Traoré")):
        r = pcli("claim", "--next", "--as", spelling, ok=False)
        assert "already holds task" in r.stderr
    names = [v["name"] for v in json.loads(pcli("volunteer", "list", "--json").stdout)]
    assert names.count("Awa Traoré") == 1 and len(names) == 2  # Mariam and Awa
    assert "Torodo" in pcli("tasks", "--village", "torodo").stdout
    r = pcli("tasks", "--village", "Torodoo", ok=False)
    assert "did you mean Torodo?" in r.stderr
