"""Look-alike names (invisible characters, letters of other alphabets) and purging unused names."""

from __future__ import annotations

import json

import pytest

from conftest import Cli
from foundation_helpers import assert_error, copy_project, query, snapshot, village_template

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)


def vols(pcli) -> dict[str, dict]:
    return {v["name"]: v for v in json.loads(pcli("volunteer", "list", "--json").stdout)}


# -- invisible characters and look-alike letters ------------------------------------------------------------------

INVISIBLE = {"zero-width space": "Mari\u200bam", "soft hyphen": "Mar\u00adiam", "right-to-left mark": "\u200fMariam",
             "byte order mark": "\ufeffMariam", "zero-width joiner": "Mari\u200dam", "full-width M": "\uff2dariam"}


@pytest.mark.parametrize("how", sorted(INVISIBLE))
def test_invisible_characters_are_dropped_so_the_name_is_the_organizers(pcli, how):
    """The organizer's name with an invisible character is her name: no second 'Mariam' on screen."""
    pcli("claim", "7", "--as", INVISIBLE[how])
    assert list(vols(pcli)) == ["Mariam"]
    assert query(pcli.project, "SELECT v.name FROM tasks t JOIN volunteers v ON v.id = t.locked_by "
                               "WHERE t.id = 7")[0][0] == "Mariam"
    pcli("volunteer", "add", "Awa\u200b Traor\u00ade\u2060")
    assert "Awa Traore" in vols(pcli)


LOOKALIKES = {"Cyrillic a": ("M\u0430riam", "Cyrillic"), "Cyrillic M": ("\u041cariam", "Cyrillic"),
              "Greek capital Mu": ("\u039cariam", "Greek"), "Greek alpha": ("Mari\u03b1m", "Greek"),
              "Cyrillic capitals": ("MARI\u0410\u041c", "Cyrillic")}


@pytest.mark.parametrize("how", sorted(LOOKALIKES))
def test_a_name_that_looks_like_a_volunteers_is_refused_even_with_new(pcli, how):
    name, script = LOOKALIKES[how]
    before = snapshot(pcli.project)
    for cmd in (("claim", "7", "--as", name), ("claim", "7", "--as", name, "--new"), ("volunteer", "add", name)):
        line = assert_error(pcli(*cmd, ok=False), f"name {name!r} looks like the volunteer 'Mariam' "
                                                  f"(it has a {script} letter): type it with Latin letters")
        assert "Traceback" not in line
    assert snapshot(pcli.project) == before  # nobody created, nothing claimed
    pcli("volunteer", "add", "Awa")
    assert_error(pcli("volunteer", "rename", "Awa", name, "--as", "Mariam", ok=False),
                 "looks like the volunteer 'Mariam'")
    assert set(vols(pcli)) == {"Mariam", "Awa"}


def test_names_registered_together_are_told_apart_as_one_by_one(pcli):
    """volunteers.ensure_many (the surveyors of 50 phones at once): each new name is checked against the
    volunteers and against the new names before it in the same call; refused names write nothing."""
    from mapathon.errors import UnknownVolunteer
    from mapathon.project import open_project
    from mapathon.tasks import volunteers

    pcli("volunteer", "add", "Moussa Konaté", "--as", "Mariam")
    with open_project(pcli.project) as p, p.transaction():
        got = volunteers.ensure_many(p, ["Awa", "Mariam", "Fanta", "F\u0430nta", "awa ", "Mousa Konate", "", "Awa"])
    outcome = [(g[0].name, g[1]) if isinstance(g, tuple) else type(g).__name__ for g in got]
    assert outcome == [("Awa", True), ("Mariam", False), ("Fanta", True), "MapathonError", ("Awa", False),
                       "UnknownVolunteer", "MapathonError", ("Awa", False)]
    assert "looks like the volunteer 'Fanta'" in str(got[3]) and isinstance(got[5], UnknownVolunteer)
    assert set(vols(pcli)) == {"Mariam", "Moussa Konaté", "Awa", "Fanta"}
    added = query(pcli.project, "SELECT actor FROM events WHERE action = 'volunteer.add' ORDER BY seq")
    assert [r[0] for r in added][-2:] == ["Awa", "Fanta"]


def test_a_former_name_is_looked_at_too_and_so_is_a_mix_of_alphabets(pcli):
    pcli("volunteer", "add", "Fanta")
    pcli("volunteer", "rename", "Fanta", "Fanta Keïta", "--as", "Mariam")
    assert_error(pcli("claim", "3", "--as", "F\u0430nta", "--new", ok=False),
                 "looks like the volunteer 'Fanta' (it has a Cyrillic letter)")
    # nobody it looks like, but Latin letters mixed with look-alike Cyrillic ones: nobody types that on purpose
    assert_error(pcli("claim", "3", "--as", "Fatoum\u0430ta", ok=False),
                 "name 'Fatoumаta' mixes Latin letters with look-alike letters of another alphabet (а (Cyrillic))",
                 "type it with Latin letters")
    # a name wholly in another alphabet is a name: a Russian or Greek volunteer may sign in
    pcli("claim", "3", "--as", "\u041c\u0430\u0440\u044c\u044f\u043c")  # Марьям
    pcli("claim", "4", "--as", "\u039d\u03af\u03ba\u03bf\u03c2")  # Νίκος
    assert {"Марьям", "Νίκος", "Fanta Keïta", "Mariam"} == set(vols(pcli))


def test_bambara_letters_and_accents_stay_valid_and_distinct(pcli):
    """ɛ, ɔ, ɲ, ŋ are Latin letters: names with them are kept as typed and are not the plain-letter names."""
    for i, name in enumerate(["Mɛrɛ Kɔnɛ", "Ɲɛnɛ Traoré", "Ŋaara Dembélé", "Mere Kone", "Nene Traore"], start=1):
        pcli("claim", str(i), "--as", name, "--new")
    assert {"Mɛrɛ Kɔnɛ", "Ɲɛnɛ Traoré", "Ŋaara Dembélé", "Mere Kone", "Nene Traore"} <= set(vols(pcli))
    held = dict(query(pcli.project, "SELECT v.name, t.id FROM tasks t JOIN volunteers v ON v.id = t.locked_by"))
    assert held["Mɛrɛ Kɔnɛ"] == 1 and held["Mere Kone"] == 4
    # accents still do not make a new person ('Nene Traore' and 'Nène Traoré' are one)
    assert_error(pcli("claim", "9", "--as", "Nène Traoré", ok=False), "already holds task")


def test_the_room_server_refuses_a_look_alike_of_the_organizer(tmp_path_factory, backend):
    from test_server import RoomServer

    folder = copy_project(village_template(tmp_path_factory, 16), tmp_path_factory.mktemp("names") / "p", shared=True)
    with RoomServer(folder) as srv:
        r = srv.post("/api/join", json={"name": "Mari\u200bam"})  # her name: it needs the organizer token
        assert r.status_code == 403 and "organizer token" in r.json()["detail"]
        r = srv.post("/api/join", json={"name": "M\u0430riam", "new": True})
        assert r.status_code == 400 and r.json()["detail"] == (
            "The name Mаriam looks like Mariam's but has letters of another alphabet: type it with Latin letters.")
        r = srv.post("/api/join", json={"name": "Fatoum\u0430ta"}, headers={"X-Lang": "fr"})
        assert r.status_code == 400 and r.json()["detail"] == (
            "Le nom Fatoumаta mélange des lettres latines et des lettres d'un autre alphabet qui leur ressemblent : "
            "tapez-le en lettres latines.")
        assert srv.post("/api/join", json={"name": "Mɛrɛ"}).status_code == 200
    assert sorted(r[0] for r in query(folder, "SELECT name FROM volunteers")) == ["Mariam", "Mɛrɛ"]


# -- purging the names nobody used ----------------------------------------------------------------------------------


def _set_created(project, name: str, iso: str) -> None:
    """As if *name* had been registered at *iso* (a test cannot wait days)."""
    from mapathon.project import open_project

    with open_project(project) as p, p.transaction():
        p.conn.execute("UPDATE volunteers SET created = ? WHERE name = ?", (iso, name))


def test_purge_removes_only_those_who_just_signed_in(pcli):
    from mapathon.project import open_project

    pcli("volunteer", "add", "Fanta", "--validator", "--as", "Mariam")  # a role: kept
    pcli("claim", "5", "--as", "Awa")
    pcli("release", "5", "--as", "Awa")  # a claim given back is history: kept
    for name in ("Oumar", "Sitan", "Bakary"):
        pcli("volunteer", "add", name)
    with open_project(pcli.project) as p, p.transaction():  # Sitan signed in at the room server
        p.conn.execute("INSERT INTO room_sessions (token_hash, volunteer, created) VALUES ('h1', 'Sitan', ?)",
                       ("2026-01-01T00:00:00.000000Z",))
    pcli("volunteer", "rename", "Bakary", "Bakary Coulibaly", "--as", "Mariam")  # renamed, nothing else: unused

    assert_error(pcli("volunteer", "purge", "--as", "Awa", ok=False), "only an organizer may purge volunteers")
    assert_error(pcli("volunteer", "purge", "--as", "Mariam", "--older-than", "-1", ok=False), "--older-than -1")
    before = snapshot(pcli.project)
    r = pcli("volunteer", "purge", "--as", "Mariam", "--dry-run")
    assert "Would remove 3 unused volunteer(s): Bakary Coulibaly, Oumar, Sitan" in r.stdout
    assert snapshot(pcli.project) == before
    # registered today: none is older than a day
    assert json.loads(pcli("volunteer", "purge", "--as", "Mariam", "--older-than", "1", "--json").stdout) == {
        "dry_run": False, "removed": []}
    _set_created(pcli.project, "Oumar", "2026-01-01T00:00:00.000000Z")
    _set_created(pcli.project, "Sitan", "2026-01-01T00:00:00.000000Z")
    got = json.loads(pcli("volunteer", "purge", "--as", "Mariam", "--older-than", "1", "--json").stdout)
    assert got == {"dry_run": False, "removed": ["Oumar", "Sitan"]}
    assert set(vols(pcli)) == {"Mariam", "Fanta", "Awa", "Bakary Coulibaly"}
    assert query(pcli.project, "SELECT COUNT(*) FROM room_sessions WHERE volunteer = 'Sitan'")[0][0] == 0
    # their sign-ins stay in the log; each removal is an event, as with 'volunteer remove'
    added = {r[0] for r in query(pcli.project, "SELECT actor FROM events WHERE action = 'volunteer.add'")}
    assert {"Oumar", "Sitan"} <= added
    removed = [json.loads(r[1]) for r in query(
        pcli.project, "SELECT actor, data FROM events WHERE action = 'volunteer.remove' ORDER BY seq")]
    assert [d["name"] for d in removed] == ["Oumar", "Sitan"] and all(d["purge"] for d in removed)
    r = pcli("volunteer", "purge", "--as", "Mariam")
    assert "Removed 1 unused volunteer(s): Bakary Coulibaly" in r.stdout
    assert set(vols(pcli)) == {"Mariam", "Fanta", "Awa"}
    assert "Removed 0 unused volunteer(s)" in pcli("volunteer", "purge", "--as", "Mariam").stdout
    pcli("claim", "6", "--as", "Oumar")  # the name is free again


def test_a_purge_travels_to_the_other_site_like_removals(tmp_path_factory, tmp_path):
    """Paris purges Oumar and Sitan; meanwhile Sitan claimed a task at Bamako: after an exchange Oumar is gone
    at both sites and Sitan, who has work at Bamako, is kept there (a removal never loses work)."""
    from test_sync import exchange

    paris = copy_project(village_template(tmp_path_factory, 16), tmp_path / "paris")
    P = Cli(paris)
    P("volunteer", "add", "Oumar")
    P("volunteer", "add", "Sitan")
    P("sync", "clone", tmp_path / "bamako", "--site-name", "Bamako")
    B = Cli(tmp_path / "bamako")
    B("claim", "8", "--as", "Sitan")
    assert "Removed 2 unused volunteer(s): Oumar, Sitan" in P("volunteer", "purge", "--as", "Mariam").stdout
    exchange(paris, tmp_path / "bamako", tmp_path)
    assert "Oumar" not in vols(B) and "Oumar" not in vols(P)
    assert "Sitan" in vols(B)


@pytest.mark.parametrize("bad", ["bell\x07", "del\x7f", "csi\x9bx"])
def test_a_control_character_is_refused_not_dropped(pcli, bad):
    before = snapshot(pcli.project)
    assert_error(pcli("volunteer", "add", bad, ok=False), "at most 80 printable characters")
    assert snapshot(pcli.project) == before
