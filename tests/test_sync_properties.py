"""Property tests of sync: three sites doing random work offline and exchanging bundles in random orders.

Time is simulated (every lifecycle call gets an explicit ``now`` from one clock that moves by random
steps), so locks also expire, deterministically.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import mercantile
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Cli
from foundation_helpers import copy_project, village_template
from mapathon.errors import MapathonError
from mapathon.project import open_project
from mapathon.sync import clone_project, export_bundle, import_bundle
from mapathon.sync.replay import PROGRESS, compute, task_states
from mapathon.tasks import lifecycle as lc

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)

VOLS = ["Awa", "Bakary", "Fanta", "Mariam"]  # Fanta validates, Mariam organizes
SETTINGS = settings(max_examples=int(__import__("os").environ.get("SYNC_EXAMPLES", "30")), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                             HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True, scope="module")
def _days_ahead():
    """The runs play up to a week of mapathon ahead of now; a bundle may only carry changes up to a day ahead
    of the importer's clock (mapathon.sync.bundle.MAX_AHEAD): widen that here, it is not what is tested."""
    from mapathon.sync import bundle

    old, bundle.MAX_AHEAD = bundle.MAX_AHEAD, timedelta(days=30)
    yield
    bundle.MAX_AHEAD = old


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, list[str]]:
    """A gridded project with a validator, and the keys the tests play with (4 tasks and their children)."""
    src = village_template(tmp_path_factory, 16)
    folder = copy_project(src, tmp_path_factory.mktemp("synctpl") / "p")
    Cli(folder)("volunteer", "add", "Fanta", "--validator", "--as", "Mariam")
    conn = sqlite3.connect(folder / "mapathon.sqlite")
    keys = [r[0] for r in conn.execute("SELECT key FROM tasks WHERE id IN (10, 11, 12, 13) ORDER BY id")]
    conn.close()
    kids = []
    for k in keys[:2]:
        z, x, y = map(int, k.split("/"))
        kids += [f"{c.z}/{c.x}/{c.y}" for c in mercantile.children(mercantile.Tile(x, y, z))]
    return folder, keys + kids


op_st = st.one_of(
    st.tuples(st.just("claim"), st.integers(0, 2), st.integers(0, 11), st.sampled_from(VOLS)),
    st.tuples(st.just("next"), st.integers(0, 2), st.sampled_from(VOLS)),
    st.tuples(st.just("release"), st.integers(0, 2), st.integers(0, 11), st.sampled_from(VOLS)),
    st.tuples(st.just("done"), st.integers(0, 2), st.integers(0, 11), st.sampled_from(VOLS)),
    st.tuples(st.just("validate"), st.integers(0, 2), st.integers(0, 11), st.sampled_from(["Fanta", "Mariam"]),
              st.booleans()),
    st.tuples(st.just("split"), st.integers(0, 2), st.integers(0, 11), st.sampled_from(VOLS)),
    st.tuples(st.just("reset"), st.integers(0, 2), st.integers(0, 11)),
    st.tuples(st.just("badimagery"), st.integers(0, 2), st.integers(0, 11), st.sampled_from(VOLS)),
    st.tuples(st.just("export"), st.integers(0, 2), st.booleans()),
    st.tuples(st.just("import"), st.integers(0, 2), st.integers(0, 1000)),
    st.tuples(st.just("wait"), st.integers(1, 180)),  # minutes
    # what volunteers mostly do: finish the task they hold, validate a mapped one
    st.tuples(st.just("finish"), st.integers(0, 2), st.sampled_from(VOLS)),
    st.tuples(st.just("finish"), st.integers(0, 2), st.sampled_from(VOLS)),
    st.tuples(st.just("check"), st.integers(0, 2), st.sampled_from(["Fanta", "Mariam"]), st.booleans()),
)


class World:
    def __init__(self, template: Path, tmp: Path, n: int = 3):
        first = copy_project(template, tmp / "site0")
        self.sites = [open_project(first)]
        for i in range(1, n):
            self.sites.append(clone_project(self.sites[0], tmp / f"site{i}"))
        self.tmp = tmp
        self.now = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
        self.bundles: list[Path] = []
        self.marks = [0] * n

    def close(self):
        for s in self.sites:
            s.close()

    def tick(self, minutes: float = 1.0):
        self.now += timedelta(minutes=minutes)

    def run(self, op, keys: list[str]) -> None:
        kind = op[0]
        if kind == "wait":
            self.tick(op[1])
            return
        site = self.sites[op[1]]
        self.tick()
        try:
            if kind == "claim":
                lc.claim(site, keys[op[2]], op[3], now=self.now)
            elif kind == "next":
                lc.claim_next(site, op[2], now=self.now)
            elif kind in ("release", "done", "split", "badimagery"):
                getattr(lc, kind)(site, keys[op[2]], op[3], now=self.now)
            elif kind == "validate":
                lc.validate(site, keys[op[2]], op[3], accept=op[4], now=self.now)
            elif kind == "finish":
                held = site.conn.execute(
                    "SELECT t.key FROM tasks t JOIN volunteers v ON v.id = t.locked_by WHERE v.name = ? AND t.state = ?",
                    (op[2], lc.LOCKED_FOR_MAPPING)).fetchone()
                if held:
                    lc.done(site, held[0], op[2], now=self.now)
            elif kind == "check":
                mapped = site.conn.execute(
                    "SELECT t.key FROM tasks t JOIN volunteers v ON v.id = t.mapped_by WHERE t.state = ? AND v.name != ?"
                    " ORDER BY t.id", (lc.MAPPED, op[2])).fetchone()
                if mapped:
                    lc.validate(site, mapped[0], op[2], accept=op[3], now=self.now)
            elif kind == "reset":
                lc.reset(site, keys[op[2]], "Mariam", now=self.now)
            elif kind == "export":
                path = self.tmp / f"b{len(self.bundles)}.zip"
                since = self.marks[op[1]] if op[2] else None
                self.marks[op[1]] = export_bundle(site, path, since=since).mark
                self.bundles.append(path)
            elif kind == "import":
                if self.bundles:
                    import_bundle(site, self.bundles[op[2] % len(self.bundles)])
        except MapathonError:
            pass  # a refusal (the lifecycle said no): part of the game

    def event_ids(self, site) -> set[str]:
        """The ids of the events that say what happened (not the notes each import adds of what a site
        learnt: those are new events, and travel, but change no task)."""
        return {r[0] for r in site.conn.execute("SELECT id FROM events WHERE action != 'sync.import'")}

    def exchange_all(self) -> None:
        full = []
        for i, s in enumerate(self.sites):
            path = self.tmp / f"final{i}.zip"
            export_bundle(s, path)
            full.append(path)
        for i, s in enumerate(self.sites):
            for j, path in enumerate(full):
                if i != j:
                    import_bundle(s, path)


def _conflicts(site) -> set[tuple]:
    return {tuple(r) for r in site.conn.execute("SELECT event_id, task, actor, action, reason, winner "
                                                 "FROM sync_conflicts")}


def _check_invariants(site) -> None:
    for key, parent, state, unlock, locked, expires, mapped, validated in task_states(site.conn).values():
        assert (state in lc.LOCKED) == (locked is not None) == (expires is not None), (key, state, locked)
        if state == lc.MAPPED:
            assert mapped is not None
        if state == lc.VALIDATED:
            assert validated is not None and mapped is not None


@SETTINGS
@given(ops=st.lists(op_st, min_size=5, max_size=45))
def test_three_sites_converge(template, ops):
    folder, keys = template
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        w = World(folder, Path(tmp))
        try:
            for op in ops:
                w.run(op, keys)
            seen = set().union(*(w.event_ids(s) for s in w.sites))
            w.exchange_all()
            states = [task_states(s.conn) for s in w.sites]
            assert states[0] == states[1] == states[2]
            for s in w.sites:
                assert w.event_ids(s) == seen  # no event lost, none invented
                _check_invariants(s)
            assert _conflicts(w.sites[0]) == _conflicts(w.sites[1]) == _conflicts(w.sites[2])
            # and a further exchange changes nothing (idempotence)
            before = [(task_states(s.conn), w.event_ids(s), _conflicts(s)) for s in w.sites]
            w.exchange_all()
            assert before == [(task_states(s.conn), w.event_ids(s), _conflicts(s)) for s in w.sites]
        finally:
            w.close()


@SETTINGS
@given(ops=st.lists(op_st.filter(lambda o: o[0] not in ("export", "import")), min_size=1, max_size=40))
def test_replay_of_one_site_reproduces_the_lifecycle(template, ops):
    """Without other sites, rebuilding the tasks from the log gives exactly what the lifecycle made."""
    folder, keys = template
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        w = World(folder, Path(tmp), n=1)
        try:
            for op in ops:
                w.run((op[0], 0, *op[2:]) if op[0] != "wait" else op, keys)
            r = compute(w.sites[0].conn)
            assert r.conflicts == []
            assert {k: t.row() for k, t in r.tasks.items()} == task_states(w.sites[0].conn)
        finally:
            w.close()


@SETTINGS
@given(ops=st.lists(op_st.filter(lambda o: o[0] not in ("export", "import")), min_size=1, max_size=25),
       ops2=st.lists(op_st.filter(lambda o: o[0] not in ("export", "import")), min_size=1, max_size=25))
def test_import_order_does_not_matter(template, ops, ops2):
    """Site C receives A's and B's bundles: A then B gives the same as B then A, and twice is once."""
    folder, keys = template
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        tmp = Path(tmp)
        w = World(folder, tmp, n=3)
        try:
            for op in ops:
                w.run((op[0], 0, *op[2:]) if op[0] != "wait" else op, keys)
            for op in ops2:
                w.run((op[0], 1, *op[2:]) if op[0] != "wait" else op, keys)
            a, b = export_bundle(w.sites[0], tmp / "a.zip").path, export_bundle(w.sites[1], tmp / "b.zip").path
            c2 = clone_project(w.sites[2], tmp / "c2")
            try:
                for p in (a, b, a):
                    import_bundle(w.sites[2], p)
                for p in (b, a, b):
                    import_bundle(c2, p)
                assert task_states(w.sites[2].conn) == task_states(c2.conn)
                own = {r[0] for r in c2.conn.execute("SELECT id FROM events WHERE site = ?", (c2.site,))}
                assert w.event_ids(w.sites[2]) == w.event_ids(c2) - own
                assert _conflicts(w.sites[2]) == _conflicts(c2)
            finally:
                c2.close()
        finally:
            w.close()


# -- the progress rule: two sites apart, each with its own volunteers, then one exchange ----------------------------

SITE_VOLS = (("Awa", "Bakary"), ("Moussa", "Kadi"))
SITE_VALIDATORS = ("Fanta", "Seydou")
apart_op_st = st.one_of(
    st.tuples(st.just("claim"), st.integers(0, 1), st.integers(0, 1), st.integers(0, 1)),
    st.tuples(st.just("finish"), st.integers(0, 1), st.integers(0, 1)),
    st.tuples(st.just("finish"), st.integers(0, 1), st.integers(0, 1)),
    st.tuples(st.sampled_from(["release", "badimagery"]), st.integers(0, 1), st.integers(0, 1)),
    st.tuples(st.just("claim-validation"), st.integers(0, 1), st.integers(0, 1)),
    st.tuples(st.just("check"), st.integers(0, 1), st.booleans()),
    st.tuples(st.just("validate"), st.integers(0, 1), st.integers(0, 1), st.booleans()),
    st.tuples(st.just("wait"), st.integers(1, 150)),
)


def _as_world_op(w: World, op, keys: list[str]):
    """An op of apart_op_st as World.run takes it: each site with its own people, on two tasks."""
    kind = op[0]
    if kind == "wait":
        return op
    site = op[1]
    if kind == "claim":
        return ("claim", site, op[2], SITE_VOLS[site][op[3]])
    if kind == "finish":
        return ("finish", site, SITE_VOLS[site][op[2]])
    if kind in ("release", "badimagery"):  # of the task the volunteer holds
        name = SITE_VOLS[site][op[2]]
        held = w.sites[site].conn.execute(
            "SELECT t.key FROM tasks t JOIN volunteers v ON v.id = t.locked_by WHERE v.name = ?", (name,)).fetchone()
        return (kind, site, keys.index(held[0]) if held and held[0] in keys else 0, name)
    if kind == "claim-validation":
        return ("claim", site, op[2], SITE_VALIDATORS[site])
    if kind == "check":
        return ("check", site, SITE_VALIDATORS[site], op[2])
    return ("validate", site, op[2], SITE_VALIDATORS[site], op[3])


@SETTINGS
@given(ops=st.lists(apart_op_st, min_size=8, max_size=50), after=st.lists(apart_op_st, max_size=20))
def test_the_work_that_went_further_wins(template, ops, after):
    """Two sites work on the same two tasks while apart (mapping, bad imagery, validation; each site with
    its own volunteers), then exchange their logs. For every task, both sites end with the state of the
    site that took it further (the furthest state reached); when both went as
    far, with the state of one of them. Then one site works on (*after*): the other, given its bundle,
    shows exactly what it shows (its changes follow the line it saw, not the one that lost)."""
    folder, keys = template
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        tmp = Path(tmp)
        src = copy_project(folder, tmp / "src")
        Cli(src)("volunteer", "add", "Seydou", "--validator", "--as", "Mariam")
        w = World(src, tmp, n=2)
        try:
            for op in ops:
                w.run(_as_world_op(w, op, keys), keys)
            local = []
            for s in w.sites:
                rows = task_states(s.conn)
                score = {}
                for key in keys[:2]:
                    reached = [r[0] for r in s.conn.execute(
                        "SELECT to_state FROM events WHERE task = ? AND site = ? AND action != 'lock.expire'",
                        (key, s.site))]
                    if reached:
                        score[key] = max(PROGRESS[x] for x in reached)
                local.append((rows, score))
            w.exchange_all()
            merged = [task_states(s.conn) for s in w.sites]
            assert merged[0] == merged[1]
            for key in keys[:2]:
                (rows_a, score_a), (rows_b, score_b) = local
                got = merged[0][key]
                if key not in score_b or score_a.get(key, -1) > score_b[key]:
                    assert got == rows_a[key], key
                elif key not in score_a or score_b[key] > score_a[key]:
                    assert got == rows_b[key], key
                else:
                    assert got in (rows_a[key], rows_b[key]), key
            for op in after:
                w.run(_as_world_op(w, op if op[0] == "wait" else (op[0], 0, *op[2:]), keys), keys)
            export_bundle(w.sites[0], tmp / "after.zip")
            import_bundle(w.sites[1], tmp / "after.zip")
            assert task_states(w.sites[1].conn) == task_states(w.sites[0].conn)
            assert {k: t.row() for k, t in compute(w.sites[0].conn).tasks.items()} == task_states(w.sites[0].conn)
        finally:
            w.close()
