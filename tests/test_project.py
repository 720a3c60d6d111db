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
    # the one volunteer shape (Volunteer.as_dict): "validator" says who may validate (organizers may)
    assert vols["Awa"] == {"name": "Awa", "osm_user": "awa_osm", "roles": "organizer", "validator": True,
                           "organizer": True}
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
    assert torodo and all("Torodo" in t["villages"] for t in torodo)
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
    assert "did you mean 'Torodo'?" in r.stderr


# -- a typo in a name is not a new person; rename, merge, remove ----------------------------------------------


def vols(pcli) -> dict[str, dict]:
    return {v["name"]: v for v in json.loads(pcli("volunteer", "list", "--json").stdout)}


def test_a_close_name_is_refused_with_the_name_it_resembles(pcli, gridded):
    pcli("claim", "--next", "--as", "Moussa Konaté")
    before = snapshot(gridded)
    for typo in ("Mousa Konate", "Konaté Moussa", "moussa konatee"):
        for cmd in (("claim", "--next"), ("claim", "40")):
            r = pcli(*cmd, "--as", typo, ok=False)
            line = assert_error(r, f"no volunteer '{typo}'", "did you mean 'Moussa Konaté'?",
                                "add --new to create a new volunteer")
            assert "Traceback" not in line
    assert snapshot(gridded) == before  # nobody created, nothing claimed
    # the lifecycle's other commands say the same for a name they do not know
    r = pcli("done", "40", "--as", "Mousa Konate", ok=False)
    assert_error(r, "--as Mousa Konate: no such volunteer", "did you mean 'Moussa Konaté'?")
    # a short name one letter away is a typo too; a really different name is simply new
    pcli("claim", "41", "--as", "Awa")
    assert_error(pcli("claim", "42", "--as", "Ava", ok=False), "did you mean 'Awa'?")
    pcli("claim", "43", "--as", "Fatoumata")
    # --new: it is someone else indeed
    pcli("claim", "44", "--as", "Mousa Konate", "--new")
    assert {"Moussa Konaté", "Mousa Konate", "Awa", "Fatoumata"} <= set(vols(pcli))


def test_submit_asks_for_new_too(pcli, tmp_path):
    from conftest import ANDORRA_OSC

    pcli("claim", "--next", "--as", "Moussa Konaté")
    r = pcli("submit", ANDORRA_OSC, "--as", "Mousa Konate", ok=False)
    assert_error(r, "did you mean 'Moussa Konaté'?")
    assert query(pcli.project, "SELECT COUNT(*) FROM contributions")[0][0] == 0
    r = pcli("submit", ANDORRA_OSC, "--as", "Mousa Konate", "--new")
    assert "Mousa Konate was not registered and is now a new volunteer" in r.stderr


def test_the_python_api_error_carries_the_suggestion(gridded):
    from mapathon.errors import UnknownVolunteer
    from mapathon.project import open_project
    from mapathon.tasks import lifecycle, volunteers

    with open_project(gridded) as p:
        lifecycle.claim(p, 5, "Moussa Konaté")
        with pytest.raises(UnknownVolunteer) as e:
            volunteers.ensure(p, "Mousa Konate")
        assert (e.value.name, e.value.suggestion) == ("Mousa Konate", "Moussa Konaté")
        got = lifecycle.claim_many(p, [(6, "Mousa Konate")])
        assert isinstance(got[0], UnknownVolunteer) and got[0].suggestion == "Moussa Konaté"


def test_rename_keeps_the_history_and_the_old_name(pcli, gridded):
    pcli("claim", "7", "--as", "Mousa Konate")
    pcli("done", "7", "--as", "Mousa Konate")
    pcli("claim", "8", "--as", "Mousa Konate")
    r = pcli("volunteer", "rename", "Mousa Konate", "Moussa Konaté", ok=False)
    assert_error(r, "only an organizer may rename a volunteer", "--as")
    assert "Renamed Mousa Konate to Moussa Konaté" in pcli(
        "volunteer", "rename", "mousa konate", "Moussa Konaté", "--as", "Mariam").stdout
    assert "Mousa Konate" not in vols(pcli) and "Moussa Konaté" in vols(pcli)
    tasks = {t["id"]: t for t in json.loads(pcli("tasks", "--json").stdout)}
    assert tasks[7]["mapped_by"] == "Moussa Konaté" and tasks[8]["locked_by"] == "Moussa Konaté"
    # the old name still means them (what they typed all evening), and their credit is theirs
    pcli("done", "8", "--as", "Mousa Konate")
    st = {v["name"]: v for v in json.loads(pcli("status", "--json").stdout)["volunteers"]}
    assert st["Moussa Konaté"]["mapped"] == 2 and st["Moussa Konaté"]["locked_hours"] >= 0
    assert "Mousa Konate" not in st
    # the log is append-only: it keeps the name each change was made under; the rename is in it
    ev = query(gridded, "SELECT actor, data FROM events WHERE action = 'volunteer.rename'")
    assert ev[0]["actor"] == "Mariam"
    assert json.loads(ev[0]["data"]) == {"from": "Mousa Konate", "name": "Moussa Konaté"}
    # renaming onto someone else is a merge, said so
    pcli("volunteer", "add", "Awa")
    r = pcli("volunteer", "rename", "Awa", "Moussa Konaté", "--as", "Mariam", ok=False)
    assert_error(r, "already a volunteer", "volunteer merge")


def test_merge_moves_tasks_contributions_credit_and_roles(pcli, gridded):
    from conftest import ANDORRA_OSC

    pcli("volunteer", "add", "Vera", "--validator", "--as", "Mariam")
    pcli("claim", "10", "--as", "Moussa Konaté")
    pcli("done", "10", "--as", "Moussa Konaté")
    pcli("claim", "11", "--as", "Mousa Konate", "--new")      # the typo, made a volunteer by mistake
    pcli("done", "11", "--as", "Mousa Konate")
    pcli("validate", "11", "--as", "Vera", "--accept")
    pcli("claim", "12", "--as", "Mousa Konate")
    pcli("submit", ANDORRA_OSC, "--as", "Mousa Konate", "--task", "12")
    pcli("claim", "13", "--as", "Moussa Konaté")
    # both hold a task for mapping: one person holds one at a time
    before = snapshot(gridded)
    r = pcli("volunteer", "merge", "Moussa Konaté", "Mousa Konate", "--as", "Mariam", ok=False)
    assert_error(r, "holds task 13", "holds task 12", "release")
    assert snapshot(gridded) == before
    pcli("release", "13", "--as", "Moussa Konaté")
    r = pcli("volunteer", "merge", "Moussa Konaté", "Mousa Konate", "--as", "Vera", ok=False)
    assert_error(r, "only an organizer may merge volunteers", "Vera is not one")
    assert "Merged Mousa Konate into Moussa Konaté" in pcli(
        "volunteer", "merge", "Moussa Konaté", "Mousa Konate", "--as", "Mariam").stdout
    assert "Mousa Konate" not in vols(pcli)
    tasks = {t["id"]: t for t in json.loads(pcli("tasks", "--json").stdout)}
    assert (tasks[10]["mapped_by"], tasks[11]["mapped_by"], tasks[12]["locked_by"]) == ("Moussa Konaté",) * 3
    assert tasks[11]["validated_by"] == "Vera"
    st = {v["name"]: v for v in json.loads(pcli("status", "--json").stdout)["volunteers"]}
    assert st["Moussa Konaté"]["mapped"] == 2 and st["Moussa Konaté"]["holding"].startswith("12 ")
    contrib = query(gridded, "SELECT v.name FROM contributions c JOIN volunteers v ON v.id = c.volunteer_id")
    assert [r[0] for r in contrib] == ["Moussa Konaté"]
    # the typo still means them: no new volunteer, and they go on with their task
    pcli("done", "12", "--as", "Mousa Konate")
    assert "Mousa Konate" not in vols(pcli)
    assert len(query(gridded, "SELECT * FROM events WHERE action = 'volunteer.merge'")) == 1
    r = pcli("volunteer", "merge", "Moussa Konaté", "Mousa Konate", "--as", "Mariam", ok=False)
    assert_error(r, "already the same volunteer")


def test_remove_only_without_history(pcli, gridded):
    pcli("volunteer", "add", "Mousa Konate")
    pcli("volunteer", "add", "Awa")
    pcli("claim", "15", "--as", "Awa")
    before = snapshot(gridded)
    r = pcli("volunteer", "remove", "Awa", "--as", "Mariam", ok=False)
    assert_error(r, "volunteer Awa: has a history", "1 task(s)", "merge")
    pcli("release", "15", "--as", "Awa")  # a claim given back is history all the same
    assert_error(pcli("volunteer", "remove", "Awa", "--as", "Mariam", ok=False), "has a history")
    r = pcli("volunteer", "remove", "Mousa Konaté", "--as", "Mariam")  # the name, as names match
    assert "Removed Mousa Konate" in r.stdout
    assert "Mousa Konate" not in vols(pcli)
    assert_error(pcli("volunteer", "remove", "Nobody Here", "--as", "Mariam", ok=False),
                 "volunteer Nobody Here: no such volunteer")
    # now the name is free: a new volunteer of that name needs no --new (nobody close is left)
    pcli("claim", "16", "--as", "Mousa Konate")


def test_rename_and_merge_travel_between_sites(tmp_path_factory, tmp_path):
    """Paris merges the typo 'Mousa Konate' (made at Bamako) into Moussa Konaté while Bamako goes on under
    the typo; Bamako renames Fanta. After an exchange both sites have one Moussa Konaté with all the work
    and Fanta's new name, the same tasks, no conflict; importing again changes nothing."""
    from test_sync import exchange, full_snapshot, states

    paris = copy_project(village_template(tmp_path_factory, 16), tmp_path / "paris")
    Cli(paris)("volunteer", "add", "Fanta", "--validator", "--as", "Mariam")
    Cli(paris)("sync", "clone", tmp_path / "bamako", "--site-name", "Bamako")
    bamako = tmp_path / "bamako"
    P, B = Cli(paris), Cli(bamako)
    P("claim", "10", "--as", "Moussa Konaté")
    P("done", "10", "--as", "Moussa Konaté")
    B("claim", "20", "--as", "Mousa Konate")  # nobody close at Bamako yet: a new volunteer there
    B("done", "20", "--as", "Mousa Konate")
    B("claim", "21", "--as", "Mousa Konate")
    exchange(paris, bamako, tmp_path)
    assert {"Moussa Konaté", "Mousa Konate"} <= set(vols(B))
    P("volunteer", "merge", "Moussa Konaté", "Mousa Konate", "--as", "Mariam")
    B("done", "21", "--as", "Mousa Konate")  # Bamako does not know yet
    B("validate", "20", "--as", "Fanta", "--accept")
    B("volunteer", "rename", "Fanta", "Fanta Keïta", "--as", "Mariam")
    exchange(paris, bamako, tmp_path)
    assert states(paris) == states(bamako)
    for site in (paris, bamako):
        c = Cli(site)
        assert "Mousa Konate" not in vols(c) and "Fanta" not in vols(c) and "Fanta Keïta" in vols(c)
        tasks = {t["id"]: t for t in json.loads(c("tasks", "--json").stdout)}
        assert [tasks[i]["mapped_by"] for i in (10, 20, 21)] == ["Moussa Konaté"] * 3
        assert tasks[20]["validated_by"] == "Fanta Keïta"
        st = json.loads(c("status", "--json").stdout)
        assert st["sync_conflicts"] == []
        by = {v["name"]: v for v in st["volunteers"]}
        assert by["Moussa Konaté"]["mapped"] == 3 and by["Fanta Keïta"]["validated"] == 1
        # the old names still mean them at both sites
        c("claim", "30" if site == paris else "31", "--as", "Mousa Konate")
    assert states(paris) != states(bamako)  # each claimed a task since
    exchange(paris, bamako, tmp_path)
    assert states(paris) == states(bamako)
    before = full_snapshot(bamako)
    B("sync", "import", tmp_path / "from-a.zip")
    assert full_snapshot(bamako) == before
