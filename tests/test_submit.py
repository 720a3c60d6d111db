"""Collecting volunteers' files (``mapathon submit``) and merging a project's contributions."""

from __future__ import annotations

import gzip
import hashlib
import json

import osmium
import pytest

from mapathon import store
from mapathon.errors import MapathonError
from mapathon.osm.submit import list_contributions, submit
from mapathon.project import open_project

from conftest import DIANGUIRDE_POIS
from foundation_helpers import query
from test_merge import building, josm, node, read_objects

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)


def _rows(project_dir, sql, *args):
    return query(project_dir, sql, args)


def test_submit_copies_records_and_logs(gridded, pcli, tmp_path):
    f = josm(tmp_path / "awa-task-3.osm", *building(-1, -1, 14.5, -9.1))
    pcli("claim", "3", "--as", "Awa")  # only the task's holder or mapper (or a validator) hands in files for it
    r = pcli("submit", f, "--as", "Awa", "--task", "3")
    assert "Contribution 1" in r.stdout and "awa-task-3.osm" in r.stdout
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    stored = gridded / "contributions" / f"{sha}.osm"
    assert stored.read_bytes() == f.read_bytes()
    (row,) = _rows(gridded, "SELECT c.*, v.name FROM contributions c JOIN volunteers v ON v.id = c.volunteer_id")
    assert (row["sha256"], row["name"], row["task_id"], row["size"], row["original_name"], row["format"]) == \
        (sha, "Awa", 3, f.stat().st_size, "awa-task-3.osm", "osm")
    assert row["task_key"] and row["submitted"].endswith("Z") and row["objects"] == 5
    assert json.loads(row["counts"])["create"] == 5
    (ev,) = _rows(gridded, "SELECT * FROM events WHERE action = 'contribution.submit'")
    assert ev["actor"] == "Awa" and ev["task"] == row["task_key"] and json.loads(ev["data"])["sha256"] == sha


def test_same_bytes_twice_are_recorded_once(gridded, pcli, tmp_path):
    f = josm(tmp_path / "a.osm", *building(-1, -1, 14.5, -9.1))
    copy = tmp_path / "copy-of-a.osm"
    copy.write_bytes(f.read_bytes())
    pcli("submit", f, "--as", "Awa")
    r = pcli("submit", copy, f, "--as", "Bakary")
    assert "already submitted as contribution 1 by Awa" in r.stdout
    assert len(_rows(gridded, "SELECT * FROM contributions")) == 1
    assert len(_rows(gridded, "SELECT * FROM events WHERE action = 'contribution.submit'")) == 1
    assert len(list((gridded / "contributions").iterdir())) == 1


def test_a_bad_file_records_nothing(gridded, pcli, tmp_path):
    good = josm(tmp_path / "good.osm", *building(-1, -1, 14.5, -9.1))
    bad = tmp_path / "bad.osm"
    bad.write_text("<osm><node id='1' lat='1' lon='1'>")  # truncated
    wrong = tmp_path / "notes.txt"
    wrong.write_text("hello")
    for args in ((good, bad), (wrong,), (bad,)):
        r = pcli("submit", *args, "--as", "Awa", ok=False)
        err = r.stderr.strip()
        assert len(err.splitlines()) == 1 and err.startswith("Error:")
        assert bad.name in err or wrong.name in err
    assert _rows(gridded, "SELECT * FROM contributions") == []
    assert not (gridded / "contributions").exists() or not list((gridded / "contributions").iterdir())
    r = pcli("submit", good, "--as", "Awa", "--task", "999999", ok=False)
    assert "999999" in r.stderr
    assert _rows(gridded, "SELECT * FROM contributions") == []


def test_compressed_and_pbf_submissions_keep_their_kind(gridded, tmp_path):
    gz = tmp_path / "a.osm.gz"
    gz.write_bytes(gzip.compress(josm(tmp_path / "a.osm", *building(-1, -1, 14.5, -9.1)).read_bytes()))
    with open_project(gridded) as p:
        subs = submit(p, [gz, DIANGUIRDE_POIS], "Awa")
        assert [c.format for c in subs] == ["osm.gz", "pbf"]
        assert subs[0].path.name.endswith(".osm.gz") and subs[1].path.name.endswith(".osm.pbf")
        assert [c.id for c in list_contributions(p)] == [1, 2]
        with pytest.raises(MapathonError, match="volunteer name"):
            submit(p, [gz], "   ")


def test_merge_takes_the_contributions_in_submission_order(gridded, pcli, tmp_path):
    a = josm(tmp_path / "a.osm", *building(-1, -1, 14.5, -9.1),
             node(1035398271, 14.5417966, -9.1912651, {"place": "town", "name": "Diéma A"}, 1, "modify"))
    b = josm(tmp_path / "b.osm", *building(-1, -1, 14.6, -9.2),
             node(1035398271, 14.5417966, -9.1912651, {"place": "town", "name": "Diéma B"}, 1, "modify"))
    pcli("claim", "2", "--as", "Bakary")
    pcli("claim", "1", "--as", "Awa")
    pcli("submit", b, "--as", "Bakary", "--task", "2")
    pcli("submit", a, "--as", "Awa", "--task", "1")
    out, jo = tmp_path / "merged.osm.pbf", tmp_path / "merged.osm"
    r = pcli("merge", "--base", DIANGUIRDE_POIS, "-o", out, "--josm", jo, "--json")
    summary = json.loads(r.stdout)
    assert [i["volunteer"] for i in summary["inputs"]] == ["Bakary", "Awa"]
    assert [i["name"] for i in summary["inputs"]] == ["b.osm", "a.osm"]
    (conflict,) = summary["conflicts"]
    assert conflict["kept"]["volunteer"] == "Bakary"  # submitted first
    objs = read_objects(out)
    assert objs[("n", 1035398271)][2]["name"] == "Diéma B"
    assert len([k for k in objs if k[0] == "w"]) == 2
    assert len(read_objects(DIANGUIRDE_POIS)) + 8 + 2 == len(objs)
    # the human summary names volunteers and the conflict
    r = pcli("merge", "--base", DIANGUIRDE_POIS, "-o", tmp_path / "again.osm.pbf")
    assert "Bakary" in r.stdout and "conflict (edit)" in r.stdout and "node 1035398271" in r.stdout
    # the project keeps the latest snapshot for 'mapathon print', and the log records each merge
    latest = pcli.project / "merged" / "latest.osm.pbf"
    assert read_objects(latest) == read_objects(tmp_path / "again.osm.pbf")
    assert "latest data" in r.stdout
    from foundation_helpers import query

    assert query(pcli.project, "SELECT COUNT(*) FROM events WHERE action = 'merge'")[0][0] == 2


def test_merge_result_gives_provenance_per_object(gridded, tmp_path):
    from mapathon.osm.merge import merge
    from mapathon.osm.submit import merge_inputs

    a = josm(tmp_path / "a.osm", *building(-1, -1, 14.5, -9.1))
    b = josm(tmp_path / "b.osm", *building(-1, -1, 14.6, -9.2))
    with open_project(gridded) as p:
        from mapathon.tasks import lifecycle

        lifecycle.claim(p, 5, "Awa")
        lifecycle.claim(p, 6, "Bakary")
        submit(p, [a], "Awa", "5")
        submit(p, [b], "Bakary", "6")
        specs = merge_inputs(p)
    result = merge(specs, tmp_path / "m.osm.pbf")
    by_volunteer = {}
    for c in result.changes:
        by_volunteer.setdefault((c.origin.input.volunteer, c.origin.input.task), []).append((c.kind, c.action))
    assert len(by_volunteer) == 2
    for objs in by_volunteer.values():
        assert sorted(objs) == [("node", "create")] * 4 + [("way", "create")]
    w = result.change("way", -2)
    assert w.origin.input.volunteer == "Bakary" and w.origin.id == -1 and w.origin.input.contribution == 2
    assert result.way_coords(-2)[0] == (-9.2, 14.6)


def test_damaged_stored_copy_is_reported(gridded, pcli, tmp_path):
    f = josm(tmp_path / "a.osm", *building(-1, -1, 14.5, -9.1))
    pcli("submit", f, "--as", "Awa")
    (stored,) = (gridded / "contributions").iterdir()
    stored.write_bytes(stored.read_bytes().replace(b"14.5", b"14.7"))
    r = pcli("merge", "-o", tmp_path / "m.osm.pbf", ok=False)
    assert "damaged" in r.stderr and "Awa" in r.stderr
    # submitting the same bytes again repairs the copy, and the record stays single
    pcli("submit", f, "--as", "Awa")
    assert stored.read_bytes() == f.read_bytes()
    pcli("merge", "-o", tmp_path / "m.osm.pbf")


def test_merge_needs_files_or_contributions(gridded, pcli, tmp_path, cli):
    r = pcli("merge", "-o", tmp_path / "m.osm.pbf", ok=False)
    assert "no contributions" in r.stderr
    # outside any project, files are enough
    f = josm(tmp_path / "a.osm", *building(-1, -1, 14.5, -9.1))
    cli("merge", f, "-o", tmp_path / "m.osm.pbf")
    assert len(list(osmium.FileProcessor(str(tmp_path / "m.osm.pbf")))) == 5


def test_schema_has_the_contributions_migration(gridded):
    with open_project(gridded) as p:
        assert store.schema_version(p.conn) == store.SCHEMA_VERSION == len(store.MIGRATIONS)
    assert _rows(gridded, "SELECT COUNT(*) FROM contributions")[0][0] == 0


@pytest.mark.parametrize("content, what", [
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 32, "a PNG picture"),
    (b"<!DOCTYPE html>\n<html><body>JOSM</body></html>", "a web page"),
    (b"", "empty file"),
])
def test_wrong_files_say_what_they_are_and_what_to_do(pcli, tmp_path, content, what):
    f = tmp_path / "task.osm"
    f.write_bytes(content)
    r = pcli("submit", f, "--as", "Awa", ok=False)
    line = r.stderr.strip()
    assert "task.osm" in line and what in line and "save their work again from JOSM" in line
    assert len(line.splitlines()) == 1
    assert not (pcli.project / "contributions").exists() or not any((pcli.project / "contributions").iterdir())


def test_an_unknown_name_is_registered_with_a_note(pcli, tmp_path):
    f = tmp_path / "a.osm"
    f.write_text("<osm version='0.6'><node id='-1' lat='14.49' lon='-9.01'><tag k='man_made' v='water_well'/>"
                 "</node></osm>", encoding="utf-8")
    r = pcli("submit", f, "--as", "Awa")  # no task: anyone may hand in a file
    assert "Awa was not registered and is now a new volunteer" in r.stderr
    r = pcli("submit", f, "--as", "awa")  # the same person: no note
    assert "not registered" not in r.stderr


WELL = ("<osm version='0.6'><node id='-1' lat='14.49' lon='-9.01'><tag k='man_made' v='water_well'/>"
        "<tag k='note' v='{}'/></node></osm>")


def test_only_the_holder_or_mapper_or_a_validator_submits_to_a_task(pcli, gridded, tmp_path):
    """Awa mapped task 1 and Vera accepted it: Bakary's file for it is refused (it would be credited to
    him); Awa, a validator and an organizer may hand files in for it."""
    def osm(tag):
        f = tmp_path / f"{tag}.osm"
        f.write_text(WELL.format(tag), encoding="utf-8")
        return f

    pcli("volunteer", "add", "Vera", "--validator", "--as", "Mariam")
    pcli("volunteer", "add", "Bakary")
    pcli("claim", "1", "--as", "Awa Traoré")
    pcli("done", "1", "--as", "Awa Traoré")
    pcli("validate", "1", "--as", "Vera", "--accept")
    for who in ("Bakary", "Fatou Diarra"):  # a volunteer, or someone new
        r = pcli("submit", osm(who.split()[0]), "--as", who, "--task", "1", ok=False)
        assert r.exit_code == 3
        line = r.stderr.strip()
        assert len(line.splitlines()) == 1
        for needle in ("task 1 (", "VALIDATED", "mapped by Awa Traoré", f"{who} may not hand in files for it"):
            assert needle in line, line
    assert _rows(gridded, "SELECT * FROM contributions") == []
    assert not _rows(gridded, "SELECT * FROM volunteers WHERE name = 'Fatou Diarra'")
    for who in ("awa traore", "Vera", "Mariam"):
        pcli("submit", osm(who.replace(" ", "_")), "--as", who, "--task", "1")
    assert [r[0] for r in _rows(gridded, "SELECT v.name FROM contributions c JOIN volunteers v "
                                         "ON v.id = c.volunteer_id ORDER BY c.id")] == ["Awa Traoré", "Vera", "Mariam"]
    # the holder of a task may; once someone else holds it, the one before may not
    pcli("claim", "2", "--as", "Bakary")
    pcli("submit", osm("b2"), "--as", "Bakary", "--task", "2")
    pcli("release", "2", "--as", "Bakary")
    pcli("claim", "2", "--as", "Awa Traoré")
    r = pcli("submit", osm("b3"), "--as", "Bakary", "--task", "2", ok=False)
    assert "held by Awa Traoré" in r.stderr and "Bakary may not hand in files" in r.stderr
    with open_project(gridded) as p:
        from mapathon.errors import NotPermitted

        with pytest.raises(NotPermitted):
            submit(p, [osm("b4")], "Bakary", "2")
