"""Twenty volunteers claim the same task at the same instant: exactly one wins, the log shows one lock.

Once with 20 spawned processes using the Python API (released together by a Barrier), once with
20 `mapathon` command lines (released together by a "go" file once all have started).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import Cli
from foundation_helpers import copy_project, query, village_template

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


def test_the_console_script_exists():
    script = Path(sys.executable).parent / "mapathon"
    assert script.exists()
    r = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("mapathon ")
