"""Sync by file between sites: `mapathon sync clone / export / import / show`, the conflict rule, refusals."""

from __future__ import annotations

import json
import shutil
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import Cli
from foundation_helpers import assert_error, copy_project, query, snapshot, village_template
from mapathon.project import open_project
from mapathon.sync.replay import task_states
from mapathon.tasks import lifecycle as lc
from test_server import OSM

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)

# an hour from now: after the projects were made, and within the day ahead that an imported change may be
T0 = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def sites(tmp_path_factory, tmp_path):
    """Two copies of the gridded Dianguirdé project: Paris (the original) and Bamako (a clone)."""
    paris = copy_project(village_template(tmp_path_factory, 16), tmp_path / "paris")
    Cli(paris)("volunteer", "add", "Fanta", "--validator", "--as", "Mariam")
    Cli(paris)("sync", "clone", tmp_path / "bamako", "--site-name", "Bamako")
    return paris, tmp_path / "bamako"


def states(folder: Path) -> dict:
    with open_project(folder) as p:
        return task_states(p.conn)


def full_snapshot(folder: Path):
    tasks, vols, areas, evs = snapshot(folder)
    return tasks, vols, areas, evs, [tuple(r) for r in query(folder, "SELECT * FROM sync_conflicts ORDER BY id")], \
        [tuple(r) for r in query(folder, "SELECT * FROM contributions ORDER BY id")]


def exchange(a: Path, b: Path, tmp: Path, *extra: str) -> None:
    Cli(a)("sync", "export", "-o", tmp / "from-a.zip", *extra)
    Cli(b)("sync", "export", "-o", tmp / "from-b.zip", *extra)
    Cli(b)("sync", "import", tmp / "from-a.zip")
    Cli(a)("sync", "import", tmp / "from-b.zip")


def test_clone_is_the_same_project_at_another_site(sites, tmp_path):
    paris, bamako = sites
    a, b = query(paris, "SELECT key, value FROM meta"), query(bamako, "SELECT key, value FROM meta")
    a, b = dict(map(tuple, a)), dict(map(tuple, b))
    assert a["project_id"] == b["project_id"] and a["site_id"] != b["site_id"] and b["site_name"] == "Bamako"
    assert states(paris) == states(bamako)
    assert query(bamako, "SELECT action FROM events ORDER BY seq DESC LIMIT 1")[0][0] == "site.clone"
    r = Cli(paris)("sync", "clone", bamako, ok=False)
    assert_error(r, "not an empty folder")


def test_work_at_two_sites_comes_together(sites, tmp_path):
    paris, bamako = sites
    Cli(paris)("claim", "10", "--as", "Awa")
    Cli(paris)("done", "10", "--as", "Awa")
    Cli(bamako)("claim", "20", "--as", "Moussa")
    Cli(bamako)("volunteer", "add", "Ibrahim", "--validator", "--as", "Mariam")
    exchange(paris, bamako, tmp_path)
    assert states(paris) == states(bamako)
    for site in (paris, bamako):
        t = {r["id"]: (r["state"], r["name"]) for r in query(site, """SELECT t.id, t.state, v.name FROM tasks t
             LEFT JOIN volunteers v ON v.id = COALESCE(t.locked_by, t.mapped_by) WHERE t.id IN (10, 20)""")}
        assert t == {10: ("MAPPED", "Awa"), 20: ("LOCKED_FOR_MAPPING", "Moussa")}
        vols = {r["name"]: r["is_validator"] for r in query(site, "SELECT name, is_validator FROM volunteers")}
        assert vols["Ibrahim"] == 1 and "Moussa" in vols and "Awa" in vols
    # Ibrahim, made a validator at Bamako, can validate at Paris
    Cli(paris)("validate", "10", "--as", "Ibrahim", "--accept")
    # and importing the same bundle again changes nothing
    before = full_snapshot(bamako)
    out = Cli(bamako)("sync", "import", tmp_path / "from-a.zip").stdout
    assert "0 new event(s)" in out
    assert full_snapshot(bamako) == before


def test_since_mark_sends_only_newer_changes(sites, tmp_path):
    paris, bamako = sites
    Cli(paris)("claim", "10", "--as", "Awa")
    out = Cli(paris)("sync", "export", "-o", tmp_path / "1.zip").stdout
    mark = int(out.split("Mark: ")[1].split()[0])
    Cli(paris)("done", "10", "--as", "Awa")
    r = json.loads(Cli(paris)("sync", "export", "-o", tmp_path / "2.zip", "--since", str(mark), "--json").stdout)
    assert r["events"] == 1 and r["since"] == mark and r["mark"] > mark
    # the increments, in either order, give the same as the whole log
    Cli(bamako)("sync", "import", tmp_path / "2.zip")
    Cli(bamako)("sync", "import", tmp_path / "1.zip")
    assert states(bamako) == states(paris)
    assert_error(Cli(paris)("sync", "export", "-o", tmp_path / "3.zip", "--since", "99999", ok=False), "--since")


def test_progress_beats_a_bare_lock(sites, tmp_path):
    """Ibrahim claims square 300 at Ivry; Mamadou claims the same square at Bamako a little later
    and marks it done. After the exchange both sites show it mapped by Mamadou: the work that went further
    wins; Ibrahim's bare claim is the conflict, named with who and where."""
    ivry, bamako = sites
    with open_project(ivry) as p:
        lc.claim(p, 300, "Ibrahim", now=at(0))  # Ivry, 18:00
    with open_project(bamako) as b:
        lc.claim(b, 300, "Mamadou", now=at(5))  # Bamako, 18:05, not knowing
        lc.done(b, 300, "Mamadou", now=at(50))
    Cli(bamako)("submit", _osm(tmp_path), "--as", "Mamadou", "--task", "300")
    exchange(ivry, bamako, tmp_path, "--with-contributions")
    assert states(ivry) == states(bamako)
    for site in (ivry, bamako):
        row = query(site, """SELECT t.state, t.locked_by, v.name FROM tasks t JOIN volunteers v ON v.id = t.mapped_by
                              WHERE t.id = 300""")[0]
        assert tuple(row) == ("MAPPED", None, "Mamadou")
        conflicts = query(site, "SELECT actor, action, winner, reason FROM sync_conflicts ORDER BY ts")
        assert [(c["actor"], c["action"], c["winner"]) for c in conflicts] == [("Ibrahim", "claim.mapping", "Mamadou")]
        assert "Mamadou at Bamako" in conflicts[0]["reason"] and "MAPPED" in conflicts[0]["reason"]
        # Mamadou's file travelled and is kept
        c = query(site, """SELECT c.task_key, v.name FROM contributions c JOIN volunteers v ON v.id = c.volunteer_id""")
        assert [tuple(r) for r in c] == [(query(site, "SELECT key FROM tasks WHERE id = 300")[0][0], "Mamadou")]
    out = Cli(ivry)("status").stdout
    assert "Sync conflicts (1)" in out and "Ibrahim's claim.mapping" in out and "Mamadou at Bamako" in out
    st = json.loads(Cli(bamako)("status", "--json").stdout)
    assert len(st["sync_conflicts"]) == 1 and st["sync_conflicts"][0]["winner"] == "Mamadou"
    # Ibrahim's lock is gone at Ivry: he can take another square
    with open_project(ivry) as p:
        assert lc.claim(p, 301, "Ibrahim", now=at(60)).locked_by == "Ibrahim"
    # the work goes on from Mamadou's state everywhere; going back below a lock later does not revive the
    # lost claim: Fanta rejects the square at Ivry, Awa claims it again at Bamako
    with open_project(ivry) as p:
        lc.validate(p, 300, "Fanta", accept=False, now=at(70))
    exchange(ivry, bamako, tmp_path)
    with open_project(bamako) as b:
        lc.claim(b, 300, "Awa", now=at(80))
    exchange(ivry, bamako, tmp_path)
    assert states(ivry) == states(bamako)
    for site in (ivry, bamako):
        row = query(site, """SELECT t.state, v.name FROM tasks t JOIN volunteers v ON v.id = t.locked_by
                              WHERE t.id = 300""")
        assert tuple(row[0]) == ("LOCKED_FOR_MAPPING", "Awa")
        assert query(site, "SELECT COUNT(*) FROM sync_conflicts")[0][0] == 1


def test_validated_beats_done_and_two_bare_claims_go_by_time(sites, tmp_path):
    """Bakary claims square 31 first, at Bamako, and maps it; Awa claims it at Paris a little later, maps it,
    and Fanta validates it there: the validated branch wins, though it started later. Two bare claims of
    square 32 went equally far: the earlier one wins."""
    paris, bamako = sites
    with open_project(bamako) as b:
        lc.claim(b, 31, "Bakary", now=at(0))
        lc.done(b, 31, "Bakary", now=at(30))
        lc.claim(b, 32, "Moussa", now=at(2))
    with open_project(paris) as p:
        lc.claim(p, 31, "Awa", now=at(5))
        lc.done(p, 31, "Awa", now=at(10))
        lc.validate(p, 31, "Fanta", accept=True, now=at(20))
        lc.claim(p, 32, "Kadi", now=at(1))
    exchange(paris, bamako, tmp_path)
    assert states(paris) == states(bamako)
    for site in (paris, bamako):
        t = {r["id"]: (r["state"], r["m"], r["v"], r["l"]) for r in query(site, """
             SELECT t.id, t.state, mv.name AS m, vv.name AS v, lv.name AS l FROM tasks t
               LEFT JOIN volunteers mv ON mv.id = t.mapped_by LEFT JOIN volunteers vv ON vv.id = t.validated_by
               LEFT JOIN volunteers lv ON lv.id = t.locked_by WHERE t.id IN (31, 32)""")}
        assert t == {31: ("VALIDATED", "Awa", "Fanta", None), 32: ("LOCKED_FOR_MAPPING", None, None, "Kadi")}
        conflicts = {(c["actor"], c["action"]): c for c in query(site, "SELECT * FROM sync_conflicts")}
        assert set(conflicts) == {("Bakary", "claim.mapping"), ("Bakary", "done"), ("Moussa", "claim.mapping")}
        assert "took the task further" in conflicts["Bakary", "done"]["reason"]
        assert conflicts["Bakary", "done"]["winner"] == "Awa"
        assert "changed the task first" in conflicts["Moussa", "claim.mapping"]["reason"]
        assert conflicts["Moussa", "claim.mapping"]["winner"] == "Kadi"


def test_bad_imagery_beats_a_lock_and_mapped_work_beats_bad_imagery(sites, tmp_path):
    paris, bamako = sites
    with open_project(paris) as p:
        lc.claim(p, 33, "Awa", now=at(0))
        lc.claim(p, 34, "Kadi", now=at(0))
        lc.badimagery(p, 34, "Kadi", now=at(5))
    with open_project(bamako) as b:
        lc.claim(b, 33, "Bakary", now=at(1))
        lc.badimagery(b, 33, "Bakary", now=at(3))
        lc.claim(b, 34, "Moussa", now=at(1))
        lc.done(b, 34, "Moussa", now=at(30))
    exchange(paris, bamako, tmp_path)
    assert states(paris) == states(bamako)
    assert [tuple(r) for r in query(paris, "SELECT id, state FROM tasks WHERE id IN (33, 34) ORDER BY id")] == [
        (33, "BADIMAGERY"), (34, "MAPPED")]


def _osm(tmp_path: Path) -> Path:
    f = tmp_path / "bakary-task30.osm"
    f.write_bytes(OSM)
    return f


def test_splits_at_both_sites(sites, tmp_path):
    """Split children have the same keys everywhere; their local numbers may differ, deterministically."""
    paris, bamako = sites
    with open_project(paris) as p:
        lc.split(p, 40, "Mariam", now=at(0))
        kids_p = [t.key for t in lc.list_tasks(p) if t.parent_id == 40]
        lc.claim(p, kids_p[0], "Awa", now=at(1))
        lc.split(p, 41, "Mariam", now=at(2))
    with open_project(bamako) as b:
        lc.split(b, 41, "Mariam", now=at(3))  # the same split, made twice
        lc.claim(b, 42, "Moussa", now=at(4))
        kids_b = [t.key for t in lc.list_tasks(b) if t.parent_id == 41]
        lc.claim(b, kids_b[-1], "Kadi", now=at(5))
    exchange(paris, bamako, tmp_path)
    sp, sb = states(paris), states(bamako)
    assert sp == sb
    assert sp[kids_p[0]][4] == "awa" and sp[kids_b[-1]][4] == "kadi"
    ids_p = {r["key"]: r["id"] for r in query(paris, "SELECT key, id FROM tasks")}
    ids_b = {r["key"]: r["id"] for r in query(bamako, "SELECT key, id FROM tasks")}
    assert len(set(ids_p.values())) == len(ids_p) and len(set(ids_b.values())) == len(ids_b)
    assert query(paris, "SELECT COUNT(*) FROM sync_conflicts")[0][0] == 0  # a split made twice is no conflict
    # every child is in its village, at both sites
    for site in (paris, bamako):
        assert query(site, """SELECT COUNT(*) FROM tasks t WHERE parent_id IS NOT NULL
                               AND NOT EXISTS (SELECT 1 FROM task_areas ta WHERE ta.task_id = t.id)""")[0][0] == 0


def test_a_split_that_lost_takes_its_children_away(sites, tmp_path):
    paris, bamako = sites
    with open_project(paris) as p:
        lc.claim(p, 50, "Awa", now=at(0))
    with open_project(bamako) as b:
        lc.split(b, 50, "Mariam", now=at(1))
        kid = [t for t in lc.list_tasks(b) if t.parent_id == 50][0]
        lc.claim(b, kid.key, "Kadi", now=at(2))
    exchange(paris, bamako, tmp_path)
    assert states(paris) == states(bamako)
    assert not query(bamako, "SELECT 1 FROM tasks WHERE key = ?", (kid.key,))
    reasons = {r["action"]: r["reason"] for r in query(bamako, "SELECT action, reason FROM sync_conflicts")}
    assert set(reasons) == {"split", "claim.mapping"} and "does not exist" in reasons["claim.mapping"]
    assert query(bamako, "SELECT COUNT(*) FROM events WHERE task = ?", (kid.key,))[0][0] == 1  # kept in the log


# -- reservations: villages kept for one site ------------------------------------------------------------------


def _village_tasks(folder: Path, village: str) -> list[int]:
    return [r[0] for r in query(folder, """SELECT t.id FROM tasks t JOIN task_areas ta ON ta.task_id = t.id
                                             JOIN areas a ON a.id = ta.area_id WHERE a.name = ? ORDER BY t.id""",
                                 (village,))]


def test_reserved_villages_are_mapped_only_at_their_site(sites, tmp_path):
    """Before the copies part, Torodo and task 12 are reserved for Kayes: Paris (and Bamako, once it has
    Paris's bundle) refuse to claim them, naming the site; Kayes maps them; an organizer lifts it."""
    paris, bamako = sites
    kayes = tmp_path / "kayes"
    out = Cli(paris)("sync", "clone", kayes, "--site-name", "Kayes", "--villages", "torodo", "--tasks", "12").stdout
    torodo = _village_tasks(paris, "Torodo")
    assert f"Reserved {len(torodo) + 1} task(s) for Kayes (villages: Torodo)" in out
    for site in (paris, kayes):  # recorded in both copies
        r = json.loads(Cli(site)("sync", "reservations", "--json").stdout)
        assert [(x["site_name"], x["villages"], len(x["tasks"]), x["here"]) for x in r] == [
            ("Kayes", ["Torodo"], len(torodo) + 1, site == kayes)]
    assert_error(Cli(paris)("claim", str(torodo[0]), "--as", "Awa", ok=False), f"task {torodo[0]}",
                 "reserved for site Kayes", "sync unreserve")
    assert_error(Cli(paris)("claim", "12", "--as", "Awa", ok=False), "reserved for site Kayes")
    assert_error(Cli(paris)("claim", "--next", "--village", "Torodo", "--as", "Awa", ok=False),
                 "no task left to map in Torodo", "reserved for another site")
    Cli(paris)("claim", "--next", "--as", "Awa")
    got = query(paris, "SELECT t.id FROM tasks t JOIN volunteers v ON v.id = t.locked_by WHERE v.name = 'Awa'")
    assert len(got) == 1 and got[0][0] not in torodo and got[0][0] != 12
    with open_project(paris) as p:  # the room server claims for a whole room at once
        got = lc.claim_many(p, [(torodo[2], "Kadi"), (13, "Seydou")])
        assert "reserved for site Kayes" in str(got[0]) and got[1].locked_by == "Seydou"
    Cli(kayes)("claim", str(torodo[0]), "--as", "Moussa")
    Cli(kayes)("split", "12", "--as", "Mariam")
    kid = query(kayes, "SELECT id, key FROM tasks WHERE parent_id = 12 ORDER BY id")[0]
    # the reservation travels in bundles (Bamako was copied before it), and so does a split of a reserved task
    Cli(kayes)("sync", "export", "-o", tmp_path / "kayes.zip")
    Cli(paris)("sync", "export", "-o", tmp_path / "paris.zip")
    for site in (paris, bamako):
        Cli(site)("sync", "import", tmp_path / "kayes.zip")
    Cli(bamako)("sync", "import", tmp_path / "paris.zip")
    assert_error(Cli(bamako)("claim", str(torodo[1]), "--as", "Bakary", ok=False), "reserved for site Kayes")
    assert_error(Cli(bamako)("claim", kid["key"], "--as", "Bakary", ok=False), "reserved for site Kayes")
    # validation stays open to every site
    Cli(kayes)("done", str(torodo[0]), "--as", "Moussa")
    Cli(kayes)("sync", "export", "-o", tmp_path / "kayes2.zip")
    Cli(paris)("sync", "import", tmp_path / "kayes2.zip")
    Cli(paris)("validate", str(torodo[0]), "--as", "Fanta", "--accept")
    # only an organizer lifts a reservation; then every site may claim, once it has the bundle
    assert_error(Cli(paris)("sync", "unreserve", "--villages", "Torodo", "--as", "Awa", ok=False), "organizer")
    assert_error(Cli(paris)("sync", "unreserve", "--villages", "Méréla", "--as", "Mariam", ok=False),
                 "none of these tasks is reserved")
    out = Cli(paris)("sync", "unreserve", "--villages", "Torodo", "--as", "Mariam").stdout
    assert f"Lifted the reservation of {len(torodo)} task(s) (reserved for Kayes)" in out
    Cli(paris)("claim", str(torodo[1]), "--as", "Kadi")
    assert_error(Cli(paris)("claim", kid["key"], "--as", "Bakary", ok=False), "reserved for site Kayes")
    Cli(paris)("sync", "export", "-o", tmp_path / "paris2.zip")
    Cli(kayes)("sync", "import", tmp_path / "paris2.zip")
    r = json.loads(Cli(kayes)("sync", "reservations", "--json").stdout)
    key12 = query(kayes, "SELECT key FROM tasks WHERE id = 12")[0][0]
    assert [(x["villages"], x["tasks"]) for x in r] == [([], [key12])]
    Cli(kayes)("sync", "unreserve", "--site", "kayes", "--as", "Mariam")
    assert "No task is reserved" in Cli(kayes)("sync", "reservations").stdout


def test_reservation_refusals(sites, tmp_path):
    paris, _ = sites
    r = Cli(paris)("sync", "clone", tmp_path / "x", "--villages", "Torodoo", ok=False)
    assert_error(r, "Torodoo", "no such village", "did you mean 'Torodo'")
    assert not (tmp_path / "x").exists()
    assert_error(Cli(paris)("sync", "clone", tmp_path / "x", "--tasks", "99999", ok=False), "--tasks 99999", "no such task")
    Cli(paris)("sync", "clone", tmp_path / "kayes", "--site-name", "Kayes", "--villages", "Torodo")
    before = query(paris, "SELECT COUNT(*) FROM events")[0][0]
    r = Cli(paris)("sync", "clone", tmp_path / "lyon", "--site-name", "Lyon", "--villages", "Dianguirdé,Torodo",
                   ok=False)
    assert_error(r, "already reserved for site Kayes")
    assert not (tmp_path / "lyon").exists() and query(paris, "SELECT COUNT(*) FROM events")[0][0] == before
    assert_error(Cli(paris)("sync", "unreserve", "--as", "Mariam", ok=False), "--villages, --tasks or --site")
    assert_error(Cli(paris)("sync", "unreserve", "--site", "Lyon", "--as", "Mariam", ok=False),
                 "--site Lyon", "Kayes")


# -- refusals: nothing changes, one clear line -------------------------------------------------------------------


@pytest.fixture
def bundle(sites, tmp_path) -> Path:
    paris, bamako = sites
    Cli(bamako)("claim", "10", "--as", "Moussa")
    Cli(bamako)("submit", _osm(tmp_path), "--as", "Moussa", "--task", "10")
    Cli(bamako)("sync", "export", "-o", tmp_path / "b.zip", "--with-contributions")
    return tmp_path / "b.zip"


def _rewrite(src: Path, dest: Path, change) -> Path:
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    change(members)
    with zipfile.ZipFile(dest, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    return dest


def _sign(folder: Path, manifest: bytes) -> bytes:
    """The signature of *manifest* with the key of the project in *folder* (what only its copies can make)."""
    import hashlib
    import hmac

    key = bytes.fromhex(query(folder, "SELECT value FROM meta WHERE key = 'sync_key'")[0][0])
    return hmac.new(key, manifest, hashlib.sha256).hexdigest().encode()


def _refused(folder: Path, path: Path, *needles: str) -> None:
    before = full_snapshot(folder)
    files = sorted((folder / "contributions").glob("*")) if (folder / "contributions").exists() else []
    assert_error(Cli(folder)("sync", "import", path, ok=False), *needles)
    assert full_snapshot(folder) == before
    after = sorted((folder / "contributions").glob("*")) if (folder / "contributions").exists() else []
    assert after == files


def test_refuses_a_bundle_of_another_project(bundle, tmp_path, tmp_path_factory):
    other = tmp_path / "other"
    Cli()("init", other, "--name", "Elsewhere", "--aoi", Path(__file__).parent / "data" / "dianguirde-villages.csv",
          "--radius", "1000")
    _refused(other, bundle, "not of this project", "Elsewhere")


def test_refuses_truncated_and_damaged_bundles(sites, bundle, tmp_path):
    paris, _ = sites
    data = bundle.read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 10):
        short = tmp_path / f"cut{cut}.zip"
        short.write_bytes(data[:cut])
        _refused(paris, short, str(short))
    (tmp_path / "notzip.zip").write_text("hello")
    _refused(paris, tmp_path / "notzip.zip", "not a mapathon sync bundle")
    _refused(paris, tmp_path / "missing.zip", "no such file")


def test_refuses_tampered_bundles(sites, bundle, tmp_path):
    paris, _ = sites

    def edit_event(m):
        lines = m["events.jsonl"].decode().splitlines()
        e = json.loads(lines[-1])
        e["actor"] = "X" * len(e["actor"])  # same size: only the checksum can tell
        lines[-1] = json.dumps(e, ensure_ascii=False, sort_keys=True)
        m["events.jsonl"] = ("\n".join(lines) + "\n").encode()

    _refused(paris, _rewrite(bundle, tmp_path / "t1.zip", edit_event), "events.jsonl", "checksum")

    def add_member(m):
        m["contributions/../../evil.osm"] = b"x"

    _refused(paris, _rewrite(bundle, tmp_path / "t2.zip", add_member), "does not list")

    def swap_file(m):
        name = [n for n in m if n.startswith("contributions/")][0]
        m[name] = m[name].replace(b"building", b"buildinG")

    _refused(paris, _rewrite(bundle, tmp_path / "t3.zip", swap_file), "checksum")

    def drop_events(m):  # recompute the checksum too: the counts still give it away
        import hashlib
        lines = m["events.jsonl"].splitlines(keepends=True)[:-1]
        m["events.jsonl"] = b"".join(lines)
        man = json.loads(m["manifest.json"])
        man["members"]["events.jsonl"] = {"size": len(m["events.jsonl"]),
                                          "sha256": hashlib.sha256(m["events.jsonl"]).hexdigest()}
        m["manifest.json"] = json.dumps(man).encode()
        m["signature"] = _sign(paris, m["manifest.json"])  # even signed with the project's key

    _refused(paris, _rewrite(bundle, tmp_path / "t4.zip", drop_events), "counts differ")


def test_refuses_a_newer_format_and_a_different_grid(sites, bundle, tmp_path):
    paris, bamako = sites

    def newer(m):
        man = json.loads(m["manifest.json"])
        man["version"] = 99
        m["manifest.json"] = json.dumps(man).encode()

    _refused(paris, _rewrite(bundle, tmp_path / "v99.zip", newer), "newer mapathon", "upgrade")
    Cli(bamako)("grid", "--zoom", "15", "--force")
    Cli(bamako)("sync", "export", "-o", tmp_path / "regrid.zip")
    _refused(paris, tmp_path / "regrid.zip", "grid")


def test_show_checks_without_importing(sites, bundle):
    paris, _ = sites
    before = full_snapshot(paris)
    out = Cli(paris)("sync", "show", bundle).stdout
    assert "intact" in out and "Dianguirdé" in out
    assert full_snapshot(paris) == before


def test_a_late_clock_cannot_undo_what_it_saw(sites, tmp_path):
    """Bamako's clock runs 70 minutes late. Fanta validates there the task that Awa finished in
    Paris, right after importing it: once the logs are merged, the validation still comes after
    the 'done' it saw (event times are hybrid logical clocks), at both sites."""
    from mapathon.sync import bundle as b

    paris, bamako = sites
    with open_project(paris) as p:
        lc.claim(p, 10, "Awa", now=at(0))
        lc.done(p, 10, "Awa", now=at(10))
        b.export_bundle(p, tmp_path / "paris.zip")
    with open_project(bamako) as q:
        b.import_bundle(q, tmp_path / "paris.zip")
        assert lc.validate(q, 10, "Fanta", accept=True, now=at(-60)).state == "VALIDATED"
        b.export_bundle(q, tmp_path / "bamako.zip")
    with open_project(paris) as p:
        r = b.import_bundle(p, tmp_path / "bamako.zip")
        assert (lc.get_task(p, 10).state, r.conflicts) == ("VALIDATED", 0)
    with open_project(bamako) as q:
        b.import_bundle(q, tmp_path / "paris.zip")
        assert lc.get_task(q, 10).state == "VALIDATED"


def test_locked_time_after_a_sync_is_the_same_everywhere(sites, tmp_path):
    """Two sites claim the same task offline; the loser's claim does not count, and nobody's
    locked time goes negative, whichever order the logs arrived in."""
    from mapathon.sync import bundle as b
    from mapathon.tasks import progress

    paris, bamako = sites
    with open_project(paris) as p:
        lc.claim(p, 10, "Awa", now=at(0))
        b.export_bundle(p, tmp_path / "paris.zip")
    with open_project(bamako) as q:
        lc.claim(q, 10, "Moussa", now=at(30))
        b.export_bundle(q, tmp_path / "bamako.zip")
        b.import_bundle(q, tmp_path / "paris.zip")
    with open_project(paris) as p:
        b.import_bundle(p, tmp_path / "bamako.zip")
    hours = []
    for site in (paris, bamako):
        with open_project(site) as s:
            st = {v.name: round(v.locked_hours, 6) for v in progress.volunteer_stats(s, now=at(60))}
            hours.append(st)
    assert hours[0] == hours[1]
    assert hours[0]["Awa"] == 1.0 and hours[0]["Moussa"] == 0.0
