"""The task lifecycle through the CLI: every transition, every forbidden one (nothing changes), roles,
claim --next, expiring locks, and the event log."""

from __future__ import annotations

import json
import math
import time
import uuid
from datetime import datetime, timedelta, timezone

import mercantile
import pytest
import shapely

from conftest import Cli
from foundation_helpers import (
    assert_error,
    copy_project,
    query,
    snapshot,
    state_of,
    task_events,
    task_geoms,
    village_template,
    write_geojson,
)
from mapathon.project import open_project
from mapathon.tasks import lifecycle

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)


@pytest.fixture
def proj(tmp_path_factory, tmp_path):
    """Dianguirdé at zoom 16 with Mariam (organizer), Vera and Victor (validators), Awa and Bakary (mappers)."""
    folder = copy_project(village_template(tmp_path_factory, 16), tmp_path / "g")
    cli = Cli(folder)
    cli("volunteer", "add", "Vera", "--validator", "--as", "Mariam")
    cli("volunteer", "add", "Victor", "--validator", "--as", "Mariam")
    cli("volunteer", "add", "Awa")
    cli("volunteer", "add", "Bakary")
    return folder


@pytest.fixture
def cli(proj):
    return Cli(proj)


def row(proj, tid):
    return query(proj, """SELECT t.state, lv.name AS locked, t.lock_expires, mv.name AS mapped, vv.name AS validated
                            FROM tasks t LEFT JOIN volunteers lv ON lv.id = t.locked_by
                            LEFT JOIN volunteers mv ON mv.id = t.mapped_by
                            LEFT JOIN volunteers vv ON vv.id = t.validated_by WHERE t.id = ?""", (tid,))[0]


def forbidden(cli, proj, *args, needles=(), code=3):
    """A refused command: exit code, one error line, and the project unchanged."""
    before = snapshot(proj)
    r = cli(*args, ok=False)
    if code is not None:
        assert r.exit_code == code
    line = assert_error(r, *needles)
    assert snapshot(proj) == before
    return line


def last_event(proj, key=None):
    return (task_events(proj, key) or [None])[-1]


# -- the happy path --------------------------------------------------------------------------------------


def test_full_cycle_claim_done_validate(cli, proj):
    key = query(proj, "SELECT key FROM tasks WHERE id = 7")[0][0]
    t0 = datetime.now(timezone.utc)
    out = cli("claim", "7", "--as", "Awa", "--comment", "je commence").stdout
    assert "Awa holds task 7" in out and key in out and "for mapping" in out
    r = row(proj, 7)
    assert (r["state"], r["locked"]) == ("LOCKED_FOR_MAPPING", "Awa")
    expires = datetime.strptime(r["lock_expires"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert abs((expires - t0).total_seconds() - 2 * 3600) < 60  # 2 hours by default

    assert "now MAPPED" in cli("done", "7", "--as", "Awa").stdout
    r = row(proj, 7)
    assert (r["state"], r["locked"], r["lock_expires"], r["mapped"]) == ("MAPPED", None, None, "Awa")

    assert "for validation" in cli("claim", "7", "--as", "Vera").stdout
    assert (row(proj, 7)["state"], row(proj, 7)["locked"]) == ("LOCKED_FOR_VALIDATION", "Vera")
    assert "now VALIDATED" in cli("validate", "7", "--as", "Vera", "--accept", "-m", "parfait").stdout
    r = row(proj, 7)
    assert (r["state"], r["locked"], r["mapped"], r["validated"]) == ("VALIDATED", None, "Awa", "Vera")

    evs = task_events(proj, key)
    assert [(e["actor"], e["action"], e["from_state"], e["to_state"]) for e in evs] == [
        ("Awa", "claim.mapping", "READY", "LOCKED_FOR_MAPPING"),
        ("Awa", "done", "LOCKED_FOR_MAPPING", "MAPPED"),
        ("Vera", "claim.validation", "MAPPED", "LOCKED_FOR_VALIDATION"),
        ("Vera", "validate", "LOCKED_FOR_VALIDATION", "VALIDATED"),
    ]
    assert evs[0]["comment"] == "je commence" and evs[-1]["comment"] == "parfait"
    # a validated task can still be rejected by a validator; then it is mapped again
    cli("validate", "7", "--as", "Victor", "--reject", "-m", "buildings missing")
    assert (row(proj, 7)["state"], row(proj, 7)["validated"]) == ("INVALIDATED", None)


def test_claim_by_address_and_new_volunteer_is_registered(cli, proj):
    key = query(proj, "SELECT key FROM tasks WHERE id = 3")[0][0]
    cli("claim", key, "--as", "Fatou")
    assert row(proj, 3)["locked"] == "Fatou"
    vols = {v["name"]: v for v in json.loads(cli("volunteer", "list", "--json").stdout)}
    assert vols["Fatou"] == {"name": "Fatou", "osm_user": None, "roles": "mapper", "validator": False,
                              "organizer": False}


def test_validate_directly_without_lock_and_reject(cli, proj):
    cli("claim", "4", "--as", "Awa")
    cli("done", "4", "--as", "Awa")
    cli("validate", "4", "--as", "Vera", "--reject", "--comment", "roads missing")
    assert row(proj, 4)["state"] == "INVALIDATED"
    e = last_event(proj)
    assert (e["actor"], e["action"], e["from_state"], e["to_state"], e["comment"]) == (
        "Vera", "invalidate", "MAPPED", "INVALIDATED", "roads missing")
    # remapping an invalidated task, by someone else; releasing it returns it to INVALIDATED
    cli("claim", "4", "--as", "Bakary")
    assert row(proj, 4)["state"] == "LOCKED_FOR_MAPPING"
    cli("release", "4", "--as", "Bakary")
    assert row(proj, 4)["state"] == "INVALIDATED"
    cli("claim", "4", "--as", "Bakary")
    cli("done", "4", "--as", "Bakary")
    assert row(proj, 4)["mapped"] == "Bakary"
    # Awa (first mapper) is not the mapper any more: she could validate if she were a validator
    cli("volunteer", "add", "Awa", "--validator", "--as", "Mariam")
    cli("validate", "4", "--as", "Awa", "--accept")
    assert row(proj, 4)["validated"] == "Awa"


def test_release_returns_to_previous_state(cli, proj):
    cli("claim", "5", "--as", "Awa")
    assert "now READY" in cli("release", "5", "--as", "Awa").stdout
    assert row(proj, 5)["locked"] is None
    cli("claim", "5", "--as", "Awa")
    cli("done", "5", "--as", "Awa")
    cli("claim", "5", "--as", "Vera")
    cli("release", "5", "--as", "Vera")
    assert row(proj, 5)["state"] == "MAPPED" and row(proj, 5)["mapped"] == "Awa"
    # an organizer may release anybody's lock
    cli("claim", "6", "--as", "Bakary")
    cli("release", "6", "--as", "Mariam", "--comment", "Bakary left")
    e = last_event(proj)
    assert (e["actor"], e["action"], e["to_state"], e["comment"]) == ("Mariam", "release", "READY", "Bakary left")


def test_organizer_may_finish_someone_elses_task_credited_to_the_holder(cli, proj):
    cli("claim", "8", "--as", "Bakary")
    cli("done", "8", "--as", "Mariam")
    assert row(proj, 8)["mapped"] == "Bakary"
    assert last_event(proj)["actor"] == "Mariam"


def test_badimagery(cli, proj):
    cli("claim", "9", "--as", "Awa")
    cli("badimagery", "9", "--as", "Awa", "-m", "clouds")
    assert row(proj, 9)["state"] == "BADIMAGERY" and row(proj, 9)["locked"] is None
    # organizers may mark a READY task directly
    cli("badimagery", "10", "--as", "Mariam")
    assert row(proj, 10)["state"] == "BADIMAGERY"
    forbidden(cli, proj, "badimagery", "11", "--as", "Awa", needles=("task 11", "claim it"))
    forbidden(cli, proj, "claim", "9", "--as", "Bakary", needles=("task 9", "BADIMAGERY"))
    cli("claim", "11", "--as", "Awa")
    forbidden(cli, proj, "badimagery", "11", "--as", "Bakary", needles=("task 11", "locked by Awa"))
    # reset by an organizer brings it back
    cli("reset", "9", "--as", "Mariam")
    assert row(proj, 9)["state"] == "READY"


def test_reset(cli, proj):
    cli("claim", "12", "--as", "Awa")
    cli("done", "12", "--as", "Awa")
    cli("validate", "12", "--as", "Vera", "--accept")
    forbidden(cli, proj, "reset", "12", "--as", "Vera", needles=("task 12", "not an organizer"))
    assert "now READY" in cli("reset", "12", "--as", "Mariam").stdout
    r = row(proj, 12)
    assert (r["state"], r["mapped"], r["validated"]) == ("READY", None, None)
    assert last_event(proj)["from_state"] == "VALIDATED"


# -- forbidden transitions ----------------------------------------------------------------------------------


def test_one_mapping_lock_per_volunteer(cli, proj):
    cli("claim", "1", "--as", "Awa")
    line = forbidden(cli, proj, "claim", "2", "--as", "Awa", needles=("Awa", "already holds task 1"))
    assert "release" in line
    assert row(proj, 2)["state"] == "READY"
    # names are case-insensitive: the same person
    forbidden(cli, proj, "claim", "2", "--as", "awa", needles=("already holds",))
    # a validation lock is not a mapping lock
    cli("claim", "3", "--as", "Bakary")
    cli("done", "3", "--as", "Bakary")
    cli("claim", "4", "--as", "Vera")
    cli("claim", "3", "--as", "Vera")
    assert row(proj, 3)["state"] == "LOCKED_FOR_VALIDATION"


def test_claim_a_locked_task(cli, proj):
    cli("claim", "1", "--as", "Awa")
    forbidden(cli, proj, "claim", "1", "--as", "Bakary", needles=("task 1", "locked by Awa"))


def test_only_holder_or_organizer_releases_or_finishes(cli, proj):
    cli("claim", "1", "--as", "Awa")
    forbidden(cli, proj, "release", "1", "--as", "Bakary", needles=("task 1", "locked by Awa", "organizer"))
    forbidden(cli, proj, "done", "1", "--as", "Bakary", needles=("task 1", "locked by Awa"))
    forbidden(cli, proj, "done", "1", "--as", "Vera", needles=("locked by Awa",))  # validators are not organizers
    forbidden(cli, proj, "release", "2", "--as", "Awa", needles=("task 2", "not locked"))
    forbidden(cli, proj, "done", "2", "--as", "Awa", needles=("task 2", "READY"))


def test_unknown_actor_or_task(cli, proj):
    cli("claim", "1", "--as", "Awa")
    for cmd in ("release", "done", "badimagery", "reset", "split"):
        forbidden(cli, proj, cmd, "1", "--as", "Zoé", needles=("--as Zoé", "no such volunteer"), code=1)
    forbidden(cli, proj, "validate", "1", "--as", "Zoé", "--accept", needles=("Zoé",), code=1)
    for cmd in ("claim", "release", "done", "history"):
        extra = () if cmd == "history" else ("--as", "Awa")
        forbidden(cli, proj, cmd, "999999", *extra, needles=("task 999999", "no such task"), code=1)
        forbidden(cli, proj, cmd, "16/1/1", *extra, needles=("task 16/1/1", "no such task"), code=1)
    forbidden(cli, proj, "claim", "2", "--as", "  ", needles=("--as",), code=1)


def test_validation_rules(cli, proj):
    cli("volunteer", "add", "Awa", "--validator", "--as", "Mariam")  # a mapper who is also a validator
    cli("claim", "1", "--as", "Awa")
    forbidden(cli, proj, "validate", "1", "--as", "Vera", "--accept", needles=("task 1", "LOCKED_FOR_MAPPING"))
    cli("done", "1", "--as", "Awa")
    # nobody validates their own task, by claim or directly
    forbidden(cli, proj, "claim", "1", "--as", "Awa", needles=("task 1", "Awa mapped it"))
    forbidden(cli, proj, "validate", "1", "--as", "Awa", "--accept", needles=("Awa mapped it",))
    # validators only
    forbidden(cli, proj, "claim", "1", "--as", "Bakary", needles=("task 1", "not a validator"))
    forbidden(cli, proj, "validate", "1", "--as", "Bakary", "--reject", needles=("Bakary is not a validator",))
    # say accept or reject
    forbidden(cli, proj, "validate", "1", "--as", "Vera", needles=("--accept or --reject",), code=2)
    # someone else's validation lock
    cli("claim", "1", "--as", "Vera")
    forbidden(cli, proj, "validate", "1", "--as", "Victor", "--accept", needles=("Vera is validating",))
    forbidden(cli, proj, "claim", "1", "--as", "Victor", needles=("locked by Vera",))
    # an organizer (not the mapper) may validate over the lock
    cli("validate", "1", "--as", "Mariam", "--accept")
    assert row(proj, 1)["validated"] == "Mariam"
    forbidden(cli, proj, "validate", "1", "--as", "Vera", "--accept", needles=("only a MAPPED task",))
    forbidden(cli, proj, "claim", "1", "--as", "Bakary", needles=("nothing to claim",))
    forbidden(cli, proj, "validate", "2", "--as", "Vera", "--accept", needles=("task 2", "READY"))


def test_claim_argument_errors(cli, proj):
    # a wrong use of the command exits 2, like click's usage errors
    forbidden(cli, proj, "claim", "--as", "Awa", needles=("which task?", "--next"), code=2)
    forbidden(cli, proj, "claim", "1", "--next", "--as", "Awa", needles=("TASK or --next, not both",), code=2)
    forbidden(cli, proj, "claim", "1", "--village", "Torodo", "--as", "Awa", needles=("--village goes with --next",),
              code=2)
    for h in ("0", "-1", "1000"):
        forbidden(cli, proj, "claim", "1", "--as", "Awa", "--hours", h, needles=(f"--hours {h}",), code=2)  # a bad value: a usage mistake
    r = cli("claim", "1", ok=False)  # --as is required
    assert r.exit_code == 2


# -- claim --next ---------------------------------------------------------------------------------------------


def test_claim_next_avoids_neighbours_of_locked_tasks(cli, proj):
    geoms = {r["id"]: shapely.from_wkb(r["geom"]) for r in query(proj, "SELECT id, geom FROM tasks")}
    cli("claim", "2", "--as", "Awa")
    assert geoms[1].touches(geoms[2])  # task 1 would be first in number order
    out = cli("claim", "--next", "--as", "Bakary").stdout
    got = query(proj, "SELECT t.id FROM tasks t JOIN volunteers v ON v.id = t.locked_by WHERE v.name = 'Bakary'")[0][0]
    assert f"task {got} " in out
    assert not geoms[got].intersects(geoms[2])
    # all villages are at 0 %: the first village of the CSV (Dianguirdé), nearest its centre
    assert "Dianguirdé" in out
    centre = shapely.Point(-9.0161968, 14.4931945)
    dianguirde = [i for (i,) in query(proj, "SELECT ta.task_id FROM task_areas ta JOIN areas a ON a.id = ta.area_id "
                                            "WHERE a.name = 'Dianguirdé'")]
    k = math.cos(math.radians(centre.y)) ** 2

    def dist2(i):
        minx, miny, maxx, maxy = geoms[i].bounds
        return ((minx + maxx) / 2 - centre.x) ** 2 * k + ((miny + maxy) / 2 - centre.y) ** 2

    assert got == min(dianguirde, key=lambda i: (dist2(i), i))
    # the third volunteer avoids both locks
    cli("claim", "--next", "--as", "Fatou")
    f = query(proj, "SELECT t.id FROM tasks t JOIN volunteers v ON v.id = t.locked_by WHERE v.name = 'Fatou'")[0][0]
    assert not geoms[f].intersects(geoms[2]) and not geoms[f].intersects(geoms[got])


def test_claim_next_prefers_invalidated(cli, proj):
    for tid in (30, 40):
        cli("claim", str(tid), "--as", "Awa")
        cli("done", str(tid), "--as", "Awa")
    cli("validate", "40", "--as", "Vera", "--reject")
    cli("claim", "--next", "--as", "Bakary")
    assert row(proj, 40)["locked"] == "Bakary"
    assert last_event(proj)["from_state"] == "INVALIDATED"


def test_claim_next_in_a_village(cli, proj):
    cli("claim", "--next", "--as", "Awa", "--village", "Torodo")
    tid = query(proj, "SELECT id FROM tasks WHERE state = 'LOCKED_FOR_MAPPING'")[0][0]
    torodo = shapely.from_wkb(query(proj, "SELECT geom FROM areas WHERE name = 'Torodo'")[0][0])
    assert torodo.intersection(task_geoms(proj)[query(proj, "SELECT key FROM tasks WHERE id = ?", (tid,))[0][0]]).area > 0
    tasks = json.loads(cli("tasks", "--json", "--state", "LOCKED_FOR_MAPPING").stdout)
    assert "Torodo" in tasks[0]["villages"]
    line = forbidden(cli, proj, "claim", "--next", "--as", "Bakary", "--village", "Paris",
                     needles=("--village Paris", "no such village"), code=1)
    assert "Torodo" in line  # lists the villages


def test_claim_next_when_nothing_is_left(tmp_path):
    w, s, e, n = mercantile.bounds(mercantile.tile(-9.016, 14.493, 16))
    cx, cy = (w + e) / 2, (s + n) / 2
    ring = [[cx - 1e-4, cy - 1e-4], [cx + 1e-4, cy - 1e-4], [cx + 1e-4, cy + 1e-4], [cx - 1e-4, cy + 1e-4],
            [cx - 1e-4, cy - 1e-4]]
    f = write_geojson(tmp_path / "tiny.geojson", [({"type": "Polygon", "coordinates": [ring]}, {"name": "Puits"})])
    Cli()("init", tmp_path / "t", "--name", "Tiny", "--aoi", f)
    cli = Cli(tmp_path / "t")
    cli("grid", "--zoom", "16")
    assert query(tmp_path / "t", "SELECT COUNT(*) FROM tasks")[0][0] == 1
    cli("claim", "--next", "--as", "Awa")
    forbidden(cli, tmp_path / "t", "claim", "--next", "--as", "Bakary", needles=("no task left",), code=1)


def test_claim_next_falls_back_to_a_neighbour_when_nothing_else(tmp_path):
    ring = [[-9.0161, 14.4931], [-9.0100, 14.4931], [-9.0100, 14.4933], [-9.0161, 14.4933], [-9.0161, 14.4931]]
    f = write_geojson(tmp_path / "strip.geojson", [({"type": "Polygon", "coordinates": [ring]}, {})])
    Cli()("init", tmp_path / "t", "--name", "Strip", "--aoi", f)
    cli = Cli(tmp_path / "t")
    cli("grid", "--zoom", "16")
    n = query(tmp_path / "t", "SELECT COUNT(*) FROM tasks")[0][0]
    assert n >= 2
    for i in range(n):
        cli("claim", "--next", "--as", f"V{i}")
    assert query(tmp_path / "t", "SELECT COUNT(*) FROM tasks WHERE state = 'LOCKED_FOR_MAPPING'")[0][0] == n


# -- expiring locks --------------------------------------------------------------------------------------------


def test_expired_lock_is_released_with_the_python_api(proj):
    t0 = datetime(2026, 3, 14, 18, 0, tzinfo=timezone.utc)
    with open_project(proj) as p:
        lifecycle.claim(p, 20, "Awa", now=t0)
        with pytest.raises(lifecycle.ForbiddenTransition):
            lifecycle.claim(p, 20, "Bakary", now=t0 + timedelta(hours=1, minutes=59))
        t = lifecycle.claim(p, 20, "Bakary", now=t0 + timedelta(hours=2, minutes=1))
        assert (t.state, t.locked_by) == ("LOCKED_FOR_MAPPING", "Bakary")
        # Awa's lock is gone, so she may claim again
        lifecycle.claim(p, 21, "Awa", now=t0 + timedelta(hours=2, minutes=2))
    key = query(proj, "SELECT key FROM tasks WHERE id = 20")[0][0]
    evs = task_events(proj, key)
    assert [(e["actor"], e["action"], e["from_state"], e["to_state"]) for e in evs] == [
        ("Awa", "claim.mapping", "READY", "LOCKED_FOR_MAPPING"),
        ("system", "lock.expire", "LOCKED_FOR_MAPPING", "READY"),
        ("Bakary", "claim.mapping", "READY", "LOCKED_FOR_MAPPING"),
    ]
    assert "Awa" in evs[1]["comment"]
    assert evs[1]["ts"] == "2026-03-14T20:00:00.000000Z"  # stamped when the lock ran out, not when noticed


def test_expired_validation_lock_returns_to_mapped(proj):
    t0 = datetime(2026, 3, 14, 18, 0, tzinfo=timezone.utc)
    with open_project(proj) as p:
        lifecycle.claim(p, 22, "Awa", now=t0)
        lifecycle.done(p, 22, "Awa", now=t0 + timedelta(minutes=30))
        lifecycle.claim(p, 22, "Vera", hours=0.5, now=t0 + timedelta(minutes=40))
        assert lifecycle.sweep(p, now=t0 + timedelta(minutes=71)) == [lifecycle.get_task(p, 22).key]
        assert lifecycle.get_task(p, 22).state == "MAPPED"


def test_done_after_the_lock_expired_says_so(cli, proj):
    """Awa finishes after her lock ran out: she is told it expired (and when), not that the task is READY;
    nothing changes. Once Bakary claimed it, she is told that too."""
    t0 = datetime(2026, 3, 14, 18, 0, tzinfo=timezone.utc)
    with open_project(proj) as p:
        lifecycle.claim(p, 30, "Awa", now=t0)
        before = snapshot(proj)
        with pytest.raises(lifecycle.ForbiddenTransition) as e:
            lifecycle.done(p, 30, "awa", now=t0 + timedelta(hours=3))
        assert "Awa's lock on it expired at 2026-03-14 20:00 UTC" in str(e.value)
        assert "READY again: claim it again" in str(e.value)
        assert snapshot(proj) == before
        with pytest.raises(lifecycle.ForbiddenTransition, match="Awa's lock on it expired at"):
            lifecycle.release(p, 30, "Awa", now=t0 + timedelta(hours=3))
        lifecycle.claim(p, 30, "Bakary", now=t0 + timedelta(hours=4))
        with pytest.raises(lifecycle.ForbiddenTransition) as e:
            lifecycle.done(p, 30, "Awa", now=t0 + timedelta(hours=4, minutes=5))
        assert "expired at 2026-03-14 20:00 UTC" in str(e.value) and "locked by Bakary now" in str(e.value)
        # Awa claims it again once it is free: no word about the old lock
        lifecycle.release(p, 30, "Bakary", now=t0 + timedelta(hours=4, minutes=6))
        lifecycle.claim(p, 30, "Awa", now=t0 + timedelta(hours=4, minutes=7))
        assert lifecycle.done(p, 30, "Awa", now=t0 + timedelta(hours=4, minutes=8)).state == "MAPPED"
    # the same through the CLI, with the real clock
    cli("claim", "31", "--as", "Awa", "--hours", "0.0003")  # about one second
    time.sleep(1.3)
    line = forbidden(cli, proj, "done", "31", "--as", "Awa", needles=("task 31", "Awa's lock on it expired at"))
    assert "only a task locked" not in line


def test_expired_lock_through_the_cli(cli, proj):
    cli("claim", "25", "--as", "Awa", "--hours", "0.0003")  # about one second
    time.sleep(1.3)
    cli("claim", "25", "--as", "Bakary")
    assert row(proj, 25)["locked"] == "Bakary"
    assert [e["action"] for e in task_events(proj, query(proj, "SELECT key FROM tasks WHERE id = 25")[0][0])] == [
        "claim.mapping", "lock.expire", "claim.mapping"]


# -- history and the event log ---------------------------------------------------------------------------------


def test_history_command(cli, proj):
    cli("claim", "13", "--as", "Awa", "-m", "on y va")
    cli("done", "13", "--as", "Awa")
    out = cli("history", "13").stdout
    assert "claim.mapping" in out and "done" in out and "on y va" in out and "MAPPED" in out
    h = json.loads(cli("history", "13", "--json").stdout)
    assert h["id"] == 13 and h["state"] == "MAPPED"
    assert [e["action"] for e in h["events"]] == ["claim.mapping", "done"]
    assert json.loads(cli("history", "14", "--json").stdout)["events"] == []


def test_one_event_per_change_with_states_actor_time_and_unique_id(cli, proj):
    steps = [
        (("claim", "15", "--as", "Awa"), ("Awa", "claim.mapping", "READY", "LOCKED_FOR_MAPPING")),
        (("release", "15", "--as", "Awa"), ("Awa", "release", "LOCKED_FOR_MAPPING", "READY")),
        (("claim", "15", "--as", "Awa"), ("Awa", "claim.mapping", "READY", "LOCKED_FOR_MAPPING")),
        (("done", "15", "--as", "Awa"), ("Awa", "done", "LOCKED_FOR_MAPPING", "MAPPED")),
        (("claim", "15", "--as", "Vera"), ("Vera", "claim.validation", "MAPPED", "LOCKED_FOR_VALIDATION")),
        (("validate", "15", "--as", "Vera", "--reject"), ("Vera", "invalidate", "LOCKED_FOR_VALIDATION", "INVALIDATED")),
        (("claim", "15", "--as", "Bakary"), ("Bakary", "claim.mapping", "INVALIDATED", "LOCKED_FOR_MAPPING")),
        (("badimagery", "15", "--as", "Bakary"), ("Bakary", "badimagery", "LOCKED_FOR_MAPPING", "BADIMAGERY")),
        (("reset", "15", "--as", "Mariam"), ("Mariam", "reset", "BADIMAGERY", "READY")),
    ]
    key = query(proj, "SELECT key FROM tasks WHERE id = 15")[0][0]
    for args, expected in steps:
        before = len(query(proj, "SELECT id FROM events"))
        t = datetime.now(timezone.utc)
        cli(*args)
        new = query(proj, "SELECT * FROM events ORDER BY seq")[before:]
        assert len(new) == 1, args
        e = new[0]
        assert (e["actor"], e["action"], e["from_state"], e["to_state"]) == expected
        assert e["task"] == key
        assert state_of(proj, 15) == expected[3]
        ts = datetime.strptime(e["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        assert t - timedelta(seconds=1) <= ts <= datetime.now(timezone.utc) + timedelta(seconds=1)
    ids = [e["id"] for e in query(proj, "SELECT id FROM events")]
    assert len(ids) == len(set(ids))
    assert all(uuid.UUID(i).version == 4 for i in ids)
    # the event log cannot be changed by a forbidden command either
    n = len(ids)
    cli("validate", "15", "--as", "Vera", "--accept", ok=False)
    assert len(query(proj, "SELECT id FROM events")) == n


# -- many at once (what the room server does when a whole room asks) -----------------------------------------------


def _outcome(x):
    return ("task", x.id, x.state, x.locked_by) if isinstance(x, lifecycle.Task) else ("error", type(x), str(x))


def _log(folder):
    """The task changes recorded: what, on which task, by whom (not the time stamps)."""
    return [tuple(r) for r in query(folder, "SELECT action, task, actor, from_state, to_state, data FROM events "
                                            "WHERE task IS NOT NULL ORDER BY seq")]


def _tasks(folder):
    return [tuple(r) for r in query(folder, "SELECT id, state, locked_by, lock_expires, unlock_state FROM tasks "
                                            "ORDER BY id")]


NOW = datetime.now(timezone.utc).replace(microsecond=0)


def _two_copies(proj, tmp_path):
    """Two copies of a project in the middle of an evening: locks, MAPPED, INVALIDATED tasks."""
    cli = Cli(proj)
    for tid in (30, 40, 50):
        cli("claim", str(tid), "--as", "Awa")
        cli("done", str(tid), "--as", "Awa")
    cli("validate", "40", "--as", "Vera", "--reject")
    cli("claim", "2", "--as", "Awa")
    cli("claim", "--next", "--as", "Bakary", "--village", "Torodo")
    return copy_project(proj, tmp_path / "one-by-one"), copy_project(proj, tmp_path / "together")


def test_claim_next_many_chooses_as_one_by_one(proj, tmp_path):
    """Asked together, the tasks given, the refusals and the log are those of the same asks one after the
    other; a refused ask changes nothing."""
    a, b = _two_copies(proj, tmp_path)
    asks = [("Sira", None), ("Awa", None),  # Awa holds task 2: refused
            ("Tenin", "torodo"), ("Sira", None),  # Sira got one just before: refused
            ("Umar", "Paris"),  # no such village
            ("", None),  # no name
            *[(f"Vol {i}", None) for i in range(20)], ("Wassa", "Dianguirdé")]
    with open_project(a) as p:
        one = []
        for name, village in asks:
            try:
                one.append(lifecycle.claim_next(p, name, village=village, now=NOW))
            except Exception as e:  # noqa: BLE001 - compared below
                one.append(e)
    with open_project(b) as p:
        together = lifecycle.claim_next_many(p, asks, now=NOW)
    assert [_outcome(x) for x in together] == [_outcome(x) for x in one]
    assert sum(isinstance(x, lifecycle.Task) for x in together) == 23
    assert isinstance(together[1], lifecycle.ForbiddenTransition) and "already holds task 2" in str(together[1])
    assert "no such village" in str(together[4]) and "a volunteer name is needed" in str(together[5])
    assert together[0].id == 40  # the INVALIDATED task first
    assert _log(b) == _log(a)
    assert _tasks(b) == _tasks(a)
    # nobody was registered by a refused ask
    assert not query(b, "SELECT 1 FROM volunteers WHERE name IN ('Umar', '')")


def test_claim_many_refuses_as_one_by_one(proj, tmp_path):
    a, b = _two_copies(proj, tmp_path)
    key7 = query(a, "SELECT key FROM tasks WHERE id = 7")[0][0]
    asks = [(7, "Sira"), (key7, "Tenin"),  # the same task twice: the second is refused
            (30, "Vera"),  # MAPPED: Vera validates it
            (50, "Sira"),  # MAPPED, Sira is no validator (and holds 7 by now)
            (8, "Sira"),  # holds 7
            (99999, "Umar"), ("16/1/1", "Umar"),  # no such task
            (99999, ""),  # no name (said before the missing task)
            (2, "Bakary"),  # locked by Awa
            (9, "Bakary"),  # Bakary holds a Torodo task
            (11, "Awa"), (12, "Xalil")]
    with open_project(a) as p:
        one = []
        for ref, name in asks:
            try:
                one.append(lifecycle.claim(p, ref, name, now=NOW))
            except Exception as e:  # noqa: BLE001 - compared below
                one.append(e)
    with open_project(b) as p:
        together = lifecycle.claim_many(p, asks, now=NOW)
    assert [_outcome(x) for x in together] == [_outcome(x) for x in one]
    assert [isinstance(x, lifecycle.Task) for x in together] == [True, False, True, False, False, False, False,
                                                                 False, False, False, False, True]
    assert "a volunteer name is needed" in str(together[7])
    assert together[2].state == "LOCKED_FOR_VALIDATION" and "locked by Sira" in str(together[1])
    assert _log(b) == _log(a)
    assert _tasks(b) == _tasks(a)


def test_events_recorded_together_follow_one_another(proj):
    from mapathon import events

    Cli(proj)("claim", "3", "--as", "Awa")
    with open_project(proj) as p, p.transaction():
        ids = events.record_many(p.conn, p.site, [dict(actor="Awa", action="note", task=f"t{i}") for i in range(5)],
                                 datetime(2020, 1, 1, tzinfo=timezone.utc))
    rows = query(proj, "SELECT id, lamport, ts FROM events ORDER BY seq")[-5:]
    assert [r[0] for r in rows] == ids
    lamports = [r[1] for r in rows]
    assert lamports == list(range(lamports[0], lamports[0] + 5))
    stamps = [r[2] for r in rows]
    # asked for 2020, but after every task change already there (the claim, today), one microsecond apart
    claimed = query(proj, "SELECT ts FROM events WHERE action = 'claim.mapping'")[0][0]
    assert stamps == sorted(set(stamps)) and stamps[0] > claimed
    assert all((datetime.fromisoformat(y[:-1]) - datetime.fromisoformat(x[:-1])).microseconds == 1
               for x, y in zip(stamps, stamps[1:]))
