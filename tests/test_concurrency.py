"""Twenty volunteers claim the same task at the same instant: exactly one wins, the log shows one lock.

Once with 20 spawned processes using the Python API (released together by a Barrier), once with
20 `mapathon` command lines (released together by a "go" file once all have started), once through
two room servers (two processes) on the same project, each volunteer using both.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from conftest import Cli
from foundation_helpers import copy_project, query, village_template
from mapathon.project import open_project
from test_server import RoomServer

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)

N = 20


def _worker(folder: str, name: str, barrier, results) -> None:
    from mapathon.errors import ForbiddenTransition, MapathonError
    from mapathon.project import open_project
    from mapathon.tasks import lifecycle

    out = {"name": name}
    with open_project(folder) as p:
        barrier.wait(timeout=120)
        try:
            t = lifecycle.claim(p, 10, name)
            out["claim"] = ("won", t.locked_by)
        except ForbiddenTransition as e:
            out["claim"] = ("refused", str(e))
        except Exception as e:  # noqa: BLE001 - anything else (e.g. "database is locked") is a failure
            out["claim"] = ("error", repr(e))
        barrier.wait(timeout=120)
        try:
            t = lifecycle.claim_next(p, name)
            out["next"] = ("won", t.id)
        except MapathonError as e:
            out["next"] = ("refused", str(e))
        except Exception as e:  # noqa: BLE001
            out["next"] = ("error", repr(e))
    results.put(out)


@pytest.fixture
def proj(tmp_path_factory, tmp_path):
    return copy_project(village_template(tmp_path_factory, 16), tmp_path / "g")


def _claims(folder, key):
    return query(folder, "SELECT actor FROM events WHERE task = ? AND action = 'claim.mapping'", (key,))


def test_twenty_processes_claim_the_same_task(proj):
    key = query(proj, "SELECT key FROM tasks WHERE id = 10")[0][0]
    vols_before = query(proj, "SELECT COUNT(*) FROM volunteers")[0][0]
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(N)
    results = ctx.Queue()
    names = [f"Volunteer {i:02d}" for i in range(N)]
    procs = [ctx.Process(target=_worker, args=(str(proj), n, barrier, results)) for n in names]
    for p in procs:
        p.start()
    got = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    outcome = {r["name"]: r for r in got}
    winners = [n for n, r in outcome.items() if r["claim"][0] == "won"]
    assert len(winners) == 1, got
    assert not [r for r in got if r["claim"][0] == "error"], got
    winner = winners[0]
    assert outcome[winner]["claim"][1] == winner
    for n, r in outcome.items():
        if n != winner:
            assert r["claim"][0] == "refused" and f"locked by {winner}" in r["claim"][1]
    # the state and the event log agree: one lock, by the winner
    locked = query(proj, """SELECT t.state, v.name FROM tasks t JOIN volunteers v ON v.id = t.locked_by
                             WHERE t.id = 10""")[0]
    assert tuple(locked) == ("LOCKED_FOR_MAPPING", winner)
    assert [r["actor"] for r in _claims(proj, key)] == [winner]

    # then all claim --next at once: the winner already holds a task; the others get one each, all different
    assert outcome[winner]["next"][0] == "refused" and "already holds" in outcome[winner]["next"][1]
    others = [r["next"] for n, r in outcome.items() if n != winner]
    assert all(kind == "won" for kind, _ in others), others
    ids = [tid for _, tid in others]
    assert len(set(ids)) == N - 1 and 10 not in ids
    assert query(proj, "SELECT COUNT(*) FROM tasks WHERE state = 'LOCKED_FOR_MAPPING'")[0][0] == N
    assert query(proj, "SELECT COUNT(*) FROM events WHERE action = 'claim.mapping'")[0][0] == N
    assert query(proj, "SELECT COUNT(*) FROM volunteers")[0][0] == vols_before + N
    # lamport clocks stay unique under contention
    lam = [r[0] for r in query(proj, "SELECT lamport FROM events")]
    assert len(lam) == len(set(lam))


CLI_WRAPPER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import mapathon.cli, mapathon.project, mapathon.tasks.lifecycle  # import everything before the start
    ready, go = Path(sys.argv[1]), Path(sys.argv[2])
    ready.touch()
    while not go.exists():
        time.sleep(0.001)
    sys.argv = ["mapathon", *sys.argv[3:]]
    mapathon.cli.main()
""")


def test_twenty_command_lines_claim_the_same_task(proj, tmp_path):
    key = query(proj, "SELECT key FROM tasks WHERE id = 10")[0][0]
    sync = tmp_path / "sync"
    sync.mkdir()
    go = sync / "go"
    env = {**os.environ, "COLUMNS": "200", "MAPATHON_PROJECT": str(proj)}
    procs = [
        subprocess.Popen([sys.executable, "-c", CLI_WRAPPER, str(sync / f"ready{i}"), str(go),
                          "claim", "10", "--as", f"Volunteer {i:02d}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for i in range(N)
    ]
    try:
        deadline = time.monotonic() + 120
        while len(list(sync.glob("ready*"))) < N:
            assert time.monotonic() < deadline, "the processes did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
            time.sleep(0.02)
        go.touch()
        outs = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    winners = [o for o in outs if o[0] == 0]
    assert len(winners) == 1, outs
    winner = winners[0][1].split(" holds ")[0].strip()
    assert winner.startswith("Volunteer ")
    for code, stdout, stderr in outs:
        assert "Traceback" not in stdout + stderr
        if code != 0:
            assert code == 3, (code, stdout, stderr)  # a forbidden transition, not a crash or a lock timeout
            assert stderr.strip().startswith("Error:") and f"locked by {winner}" in stderr
    assert [r["actor"] for r in _claims(proj, key)] == [winner]
    assert query(proj, "SELECT COUNT(*) FROM events WHERE task IS NOT NULL")[0][0] == 1
    # and the project still works normally afterwards
    Cli(proj)("release", "10", "--as", winner)
    assert query(proj, "SELECT state FROM tasks WHERE id = 10")[0][0] == "READY"


def _all_at_once(fn) -> list:
    """fn(i) for i in range(N), in N threads released together."""
    barrier, results = threading.Barrier(N), [None] * N

    def work(i):
        barrier.wait(120)
        try:
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - checked by the caller
            results[i] = e

    threads = [threading.Thread(target=work, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _never_locked_twice(folder) -> None:
    """Replay the event log task by task: a task is claimed only when nobody holds it."""
    held: dict[str, str] = {}
    for task, action, actor in query(folder, "SELECT task, action, actor FROM events WHERE task IS NOT NULL "
                                             "ORDER BY seq"):
        if action.startswith("claim."):
            assert task not in held, f"{task} claimed by {actor} while {held.get(task)} held it"
            held[task] = actor
        else:
            held.pop(task, None)


def test_two_room_servers_on_one_project_never_lock_a_task_twice(proj):
    """Two server processes on one project, as behind a reverse proxy without sticky sessions: each
    volunteer signs in on one and acts through the other. One wins a square; "give me a task" gives
    different squares; releases and "done" all at once; nothing is ever locked twice."""
    with RoomServer(proj) as a, RoomServer(proj) as b:
        servers = [a, b]
        sessions = [servers[i % 2].join(f"Volunteer {i:02d}") for i in range(N)]
        other = [servers[(i + 1) % 2] for i in range(N)]  # not the one signed in on

        got = _all_at_once(lambda i: other[i].post("/api/tasks/10/claim", sessions[i]))
        codes = [r.status_code for r in got]
        assert sorted(codes) == [200] + [409] * (N - 1), got
        winner = codes.index(200)

        got = _all_at_once(lambda i: servers[i % 2].post("/api/claim-next", sessions[i], json={}))
        assert got[winner].status_code == 409 and "already holds" in got[winner].json()["detail"]
        mine = {i: r.json()["id"] for i, r in enumerate(got) if i != winner}
        assert all(got[i].status_code == 200 for i in mine), [r.text for r in got]
        assert len(set(mine.values())) == N - 1 and 10 not in mine.values()
        mine[winner] = 10

        # all end their task at once, through the other server: half release, half done; then again (refused)
        ends = {i: "done" if i % 2 else "release" for i in range(N)}
        for expected in (200, 409):
            got = _all_at_once(lambda i: other[i].post(f"/api/tasks/{mine[i]}/{ends[i]}", sessions[i]))
            assert [r.status_code for r in got] == [expected] * N, [r.text for r in got]
        states = dict(query(proj, "SELECT id, state FROM tasks"))
        assert all(states[mine[i]] == ("MAPPED" if ends[i] == "done" else "READY") for i in range(N))
    assert query(proj, "SELECT COUNT(*) FROM tasks WHERE locked_by IS NOT NULL")[0][0] == 0
    for action, n in (("claim.mapping", N), ("release", N // 2), ("done", N // 2)):
        assert query(proj, "SELECT COUNT(*) FROM events WHERE action = ?", (action,))[0][0] == n
    _never_locked_twice(proj)


def test_a_sign_in_made_through_another_server_process_is_live(proj):
    """A server process started long ago (13 hours, sign-ins last 12) does not take a sign-in made
    through another process for an expired one, nor delete it, nor give its name to someone else."""
    from fastapi import HTTPException

    from mapathon.server.sessions import Sessions

    clock = [time.time() - 13 * 3600]
    old = Sessions(12, 0, clock=lambda: clock[0])
    clock[0] = time.time()
    new = Sessions(12, 0, clock=lambda: clock[0])
    with open_project(proj) as p:
        new.sign_in(p, "Awa", "awa-token", organizer=False)
        assert old.names_of(p, ["awa-token"]) == ["Awa"]
        assert old.sweep(p, force=True) == 0
        with pytest.raises(HTTPException) as e:
            old.sign_in(p, "Awa", "someone-else", organizer=False)
        assert e.value.status_code == 409
        clock[0] += 13 * 3600  # unused for 13 hours: expired everywhere
        assert old.sweep(p, force=True) == 1
    assert not query(proj, "SELECT 1 FROM room_sessions")


def test_the_console_script_exists():
    script = Path(sys.executable).parent / "mapathon"
    assert script.exists()
    r = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("mapathon ")
