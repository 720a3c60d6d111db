"""Sync bundles from an adversarial or broken site (issue 12, items 1, 3, 6, 9): every field of an imported
event validated, bundles signed with the project's key, their size bounded. Each refusal changes nothing."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from conftest import Cli
from foundation_helpers import assert_error, query
from test_sync import _sign, full_snapshot, sites  # noqa: F401 (a fixture)

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)


@pytest.fixture
def bundle(sites, tmp_path):
    """A bundle of Bamako's work: a claim, a new volunteer, a "done"."""
    _, bamako = sites
    Cli(bamako)("claim", "20", "--as", "Moussa")
    Cli(bamako)("done", "20", "--as", "Moussa")
    Cli(bamako)("claim", "21", "--as", "Moussa")
    Cli(bamako)("sync", "export", "-o", tmp_path / "bamako.zip")
    return tmp_path / "bamako.zip"


def forge(src: Path, dest: Path, signer: Path | None, change_events=None, change=None) -> Path:
    """*src* edited: its events changed by *change_events* (a function of the list of events), checksums and
    counts recomputed, and signed with the key of the project *signer* (None: the signature left as it was)."""
    with zipfile.ZipFile(src) as z:
        m = {n: z.read(n) for n in z.namelist()}
    if change_events:
        evs = [json.loads(line) for line in m["events.jsonl"].decode().splitlines()]
        evs = change_events(evs) or evs
        m["events.jsonl"] = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in evs).encode()
    if change:
        change(m)
    man = json.loads(m["manifest.json"])
    man["members"] = {n: {"size": len(b), "sha256": hashlib.sha256(b).hexdigest()}
                      for n, b in m.items() if n not in ("manifest.json", "signature")}
    man["counts"]["events"] = len(m["events.jsonl"].splitlines())
    m["manifest.json"] = json.dumps(man).encode()
    if signer is not None:
        m["signature"] = _sign(signer, m["manifest.json"])
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for n, b in m.items():
            z.writestr(n, b)
    return dest


def refused(folder: Path, path: Path, *needles: str, command: str = "import") -> None:
    before = full_snapshot(folder)
    assert_error(Cli(folder)("sync", command, path, ok=False), str(path), *needles)
    assert full_snapshot(folder) == before


def last(field, value):
    def change(evs):
        evs[-1][field] = value
    return change


def last_data(key, value):
    def change(evs):
        evs[-1]["data"] = (evs[-1]["data"] or {}) | {key: value}
    return change


def named(name):
    def change(evs):
        next(e for e in evs if e["action"] == "volunteer.add")["data"]["name"] = name
    return change


def done_mapper(value):
    def change(evs):
        next(e for e in evs if e["action"] == "done")["data"]["mapper"] = value
    return change


def test_far_future_time_and_bad_lock_end_are_refused_and_the_project_keeps_working(sites, bundle, tmp_path):
    paris, bamako = sites
    cases = [
        (last("ts", "9999-12-31T23:59:59.999999Z"), "bad time", "clock"),
        (last("ts", "1970-01-01T00:00:00.000000Z"), "bad time", "before 2000"),
        (last("ts", "2026-13-45T00:00:00Z"), "bad time"),
        (last_data("expires", 12345), "lock end"),
        (last_data("expires", "9999-12-31T23:59:59.999999Z"), "lock end"),
    ]
    for i, (change, *needles) in enumerate(cases):
        refused(paris, forge(bundle, tmp_path / f"t{i}.zip", paris, change), "event", *needles)
    # nothing was written: every command works, and the honest bundle goes in
    Cli(paris)("claim", "30", "--as", "Awa")
    Cli(paris)("status")
    Cli(paris)("sync", "import", bundle)
    Cli(paris)("volunteer", "add", "Ibrahim", "--as", "Mariam")
    assert "Moussa" in Cli(paris)("status").stdout


def test_clock_values_states_actions_ids_and_names_are_checked(sites, bundle, tmp_path):
    paris, _ = sites

    def dup(evs):
        evs.append(dict(evs[-1]))

    def mallory(evs):
        e = dict(evs[-1])
        e.update(id="forged-1", action="volunteer.add", task=None, from_state=None, to_state=None,
                 data={"name": "Mal\x07lory", "organizer": True, "validator": True})
        evs.append(e)

    def long_name(evs):
        mallory(evs)
        evs[-1]["data"]["name"] = "M" * 300

    cases = [
        (last("lamport", 2 ** 63), "clock value"),
        (last("lamport", 2 ** 63 - 1), "clock value"),  # the next local event would overflow
        (last("lamport", -1), "clock value"),
        (last("lamport", 1.5), "clock value"),
        (last("to_state", "BANANA"), "BANANA"),
        (last("from_state", 3), "from state"),
        (last("action", "task.explode"), "unknown action"),
        (last("actor", "Awa\nAdmin"), "actor"),
        (last("actor", "A" * 201), "actor"),
        (last("task", None), "task"),
        (done_mapper(["Awa"]), "mapper"),
        (dup, "id", "earlier event"),
        (mallory, "bad name"),
        (long_name, "bad name"),
        (named("M" * 100), "volunteer name", "at most 80"),
    ]
    for i, (change, *needles) in enumerate(cases):
        refused(paris, forge(bundle, tmp_path / f"c{i}.zip", paris, change), *needles)
    assert query(paris, "SELECT COUNT(*) FROM volunteers WHERE name LIKE 'M%l%ry'")[0][0] == 0


def test_an_edited_bundle_without_the_key_is_refused(sites, bundle, tmp_path):
    """The attack of the issue: recomputed checksums making Mallory an organizer and resetting a task."""
    paris, bamako = sites

    def mallory(evs):
        e = dict(evs[-1])
        e.update(id="forged-1", action="volunteer.add", task=None, from_state=None, to_state=None,
                 data={"name": "Mallory", "organizer": True, "validator": True})
        evs.append(e)

    forged = forge(bundle, tmp_path / "forged.zip", None, mallory)
    refused(paris, forged, "not signed with this project's key", "--trust")
    refused(paris, forged, "not signed", command="show")

    def unsigned(m):
        del m["signature"]

    refused(paris, forge(bundle, tmp_path / "unsigned.zip", None, change=unsigned), "no signature")
    # a stranger's key does not do either
    other = tmp_path / "other"
    Cli()("init", other, "--name", "Elsewhere", "--aoi", Path(__file__).parent / "data" / "dianguirde-villages.csv",
          "--radius", "1000")
    refused(paris, forge(bundle, tmp_path / "other.zip", other, mallory), "not signed")
    assert query(paris, "SELECT COUNT(*) FROM volunteers WHERE name = 'Mallory'")[0][0] == 0
    # the key is the same in both copies and never travels in a bundle
    key = query(paris, "SELECT value FROM meta WHERE key = 'sync_key'")[0][0]
    assert len(key) == 64 and query(bamako, "SELECT value FROM meta WHERE key = 'sync_key'")[0][0] == key
    with zipfile.ZipFile(bundle) as z:
        assert all(key.encode() not in z.read(n) for n in z.namelist())
    assert "intact" in Cli(paris)("sync", "show", bundle).stdout


def test_copies_cloned_before_keys_need_a_new_clone_or_trust(sites, tmp_path):
    """Copies made before bundles were signed have no key: each makes its own at its first export."""
    paris, bamako = sites
    from mapathon.project import open_project

    for site in (paris, bamako):
        with open_project(site) as p:
            with p.transaction():
                p.conn.execute("DELETE FROM meta WHERE key = 'sync_key'")
    Cli(bamako)("claim", "20", "--as", "Moussa")
    Cli(bamako)("sync", "export", "-o", tmp_path / "old.zip")
    assert len(query(bamako, "SELECT value FROM meta WHERE key = 'sync_key'")[0][0]) == 64
    refused(paris, tmp_path / "old.zip", "not signed with this project's key", "clone the project again", "--trust")
    assert query(paris, "SELECT COUNT(*) FROM meta WHERE key = 'sync_key'")[0][0] == 0  # a refusal writes nothing
    Cli(paris)("sync", "import", tmp_path / "old.zip", "--trust")
    assert query(paris, "SELECT state FROM tasks WHERE id = 20")[0][0] == "LOCKED_FOR_MAPPING"


def test_a_zip_bomb_is_stopped_at_the_limit(sites, bundle, tmp_path, monkeypatch):
    paris, _ = sites
    monkeypatch.setenv("MAPATHON_MAX_UNCOMPRESSED_MB", "1")

    def big(m):
        m["survey/photos/uuid-1/a.jpg"] = b"\0" * 2_000_000

    bomb = forge(bundle, tmp_path / "bomb.zip", paris, change=big)
    assert bomb.stat().st_size < 100_000
    refused(paris, bomb, "expands to more than 1 MB", "MAPATHON_MAX_UNCOMPRESSED_MB")
    refused(paris, bomb, "expands to more than 1 MB", command="show")
    monkeypatch.delenv("MAPATHON_MAX_UNCOMPRESSED_MB")
    Cli(paris)("sync", "import", bundle)


def test_survey_submissions_in_a_bundle_are_checked(sites, bundle, tmp_path):
    paris, _ = sites
    good = {"instance_id": "uuid:1", "form_id": "water", "form_version": "1", "surveyor": "Awa",
            "received": "2026-11-25T10:00:00Z", "lon": -4.0, "lat": 14.0, "accuracy_m": 5.0, "answers": {},
            "tags": {"amenity": "drinking_water"}, "picked_feature": None, "photos": [], "village": None}
    cases = [({"lon": 1e308}, "lon"), ({"lat": -91}, "lat"), ({"accuracy_m": -1}, "accuracy"),
             ({"received": "9999-01-01T00:00:00Z"}, "time"), ({"surveyor": "A\x00"}, "surveyor"),
             ({"tags": {"amenity": ["x"]}}, "tags")]
    for i, (bad, needle) in enumerate(cases):
        def add(m, bad=bad):
            m["survey.jsonl"] = (json.dumps(good | bad) + "\n").encode()
        refused(paris, forge(bundle, tmp_path / f"s{i}.zip", paris, change=add), "survey submission 1", needle)


def test_a_clone_of_a_project_without_a_key_shares_the_key_made_then(sites, tmp_path):
    paris, _ = sites
    from mapathon.project import open_project

    with open_project(paris) as p:
        with p.transaction():
            p.conn.execute("DELETE FROM meta WHERE key = 'sync_key'")
    Cli(paris)("sync", "clone", tmp_path / "lyon", "--site-name", "Lyon")
    key = query(paris, "SELECT value FROM meta WHERE key = 'sync_key'")[0][0]
    assert len(key) == 64 and key == query(tmp_path / "lyon", "SELECT value FROM meta WHERE key = 'sync_key'")[0][0]
    Cli(tmp_path / "lyon")("claim", "40", "--as", "Kadi")
    Cli(tmp_path / "lyon")("sync", "export", "-o", tmp_path / "lyon.zip")
    Cli(paris)("sync", "import", tmp_path / "lyon.zip")
    assert query(paris, "SELECT state FROM tasks WHERE id = 40")[0][0] == "LOCKED_FOR_MAPPING"
