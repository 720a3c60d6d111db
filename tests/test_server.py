"""The room server through HTTP: a real server (uvicorn, in a subprocess) on 127.0.0.1 and a random free port."""

from __future__ import annotations

import gzip
import http.client
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from conftest import Cli
from foundation_helpers import VILLAGES_CSV, copy_project, query, village_template
from mapathon.project import open_project

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)

TOKEN = "organizer-secret-for-tests"
OSM = b"""<?xml version='1.0' encoding='UTF-8'?>
<osm version='0.6' generator='JOSM'>
  <node id='-1' lat='14.49' lon='-9.01'/>
  <node id='-2' lat='14.491' lon='-9.01'/>
  <node id='-3' lat='14.491' lon='-9.011'/>
  <way id='-4'><nd ref='-1'/><nd ref='-2'/><nd ref='-3'/><nd ref='-1'/><tag k='building' v='yes'/></way>
</osm>
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RoomServer:
    """``python -m mapathon.server`` on a project folder, for as long as the ``with`` block lasts."""

    def __init__(self, folder: Path, token: str = TOKEN, max_upload_mb: float = 1):
        self.folder = Path(folder)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token
        env = dict(os.environ, MAPATHON_ORGANIZER_TOKEN=token)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mapathon.server", str(folder), "--host", "127.0.0.1", "--port", str(self.port),
             "--max-upload-mb", str(max_upload_mb)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server did not start:\n{self.proc.stdout.read()}\n{self.proc.stderr.read()}")
            try:
                if requests.get(self.url + "/api/project", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("the server did not answer within 60 s")
            time.sleep(0.1)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # helpers
    def join(self, name: str, organizer: bool = False) -> dict:
        r = requests.post(self.url + "/api/join", json={"name": name},
                          headers={"X-Organizer-Token": self.token} if organizer else {}, timeout=30)
        assert r.status_code == 200, r.text
        return {"X-Session": r.json()["token"]}

    def post(self, path: str, headers=None, **kw) -> requests.Response:
        return requests.post(self.url + path, headers=headers or {}, timeout=60, **kw)

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, timeout=60, **kw)

    @property
    def org(self) -> dict:
        return {"X-Organizer-Token": self.token}


def make_project(tmp_path_factory, name: str = "srv", shared: bool = False) -> Path:
    folder = copy_project(village_template(tmp_path_factory, 16), tmp_path_factory.mktemp(name) / "p",
                          shared=shared)
    Cli(folder)("volunteer", "add", "Fanta", "--validator", "--as", "Mariam")
    return folder


@pytest.fixture
def srv(backend, tmp_path_factory, module_servers):
    """One room server per backend for the module's tests."""
    if backend not in module_servers:
        folder = make_project(tmp_path_factory, shared=True)
        module_servers[backend] = RoomServer(folder).__enter__()
    return module_servers[backend]


def state(folder: Path, task_id: int) -> tuple:
    r = query(folder, """SELECT t.state, v.name FROM tasks t LEFT JOIN volunteers v ON v.id = t.locked_by
                          WHERE t.id = ?""", (task_id,))[0]
    return r[0], r[1]


# -- pages, files, description ------------------------------------------------------------------------------------


def test_pages_and_every_asset_come_from_the_server(srv):
    import re

    for page in ("/", "/board"):
        r = srv.get(page)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert refs and not [u for u in refs if u.startswith(("http:", "https:", "//")) and "/board" not in u]
        for u in refs:
            if u.startswith("/static/"):
                assert srv.get(u).status_code == 200, u
    css = srv.get("/static/leaflet/leaflet.css").text
    for img in re.findall(r"url\((images/[^)]+)\)", css):
        assert srv.get("/static/leaflet/" + img).status_code == 200
    assert "BSD" in srv.get("/static/leaflet/LICENSE").text or "Redistribution" in srv.get("/static/leaflet/LICENSE").text
    spec = srv.get("/api/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for path in ("/api/join", "/api/tasks/{task_id}/claim", "/api/claim-next", "/api/tasks/{task_id}/upload",
                 "/api/organizer/tasks/{task_id}/reset", "/api/status"):
        assert path in spec["paths"], path
    assert srv.get("/docs").status_code == 404  # Swagger UI would load scripts from a CDN


@pytest.mark.parametrize("path", [
    "/static/../mapathon.sqlite", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static//etc/passwd",
    "/static/leaflet/../../app.py", "/tiles/../../mapathon.sqlite", "/tiles/x/1/2/3/../../../../../etc/passwd",
    "/tasks/..%2f..%2fmapathon.sqlite", "/static/%00",
])
def test_request_paths_never_reach_the_file_system(srv, path):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("GET", path)  # sent as is (no client-side normalisation)
    r = conn.getresponse()
    body = r.read()
    assert r.status == 404, (path, r.status, body[:200])
    assert b"SQLite format" not in body and b"root:" not in body


def test_project_tasks_and_states(srv):
    info = srv.get("/api/project").json()
    assert info["name"] == "Dianguirdé" and len(info["villages"]) == 14
    fc = srv.get("/api/tasks").json()
    n = query(srv.folder, "SELECT COUNT(*) FROM tasks WHERE state != 'SPLIT'")[0][0]
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == n
    f = fc["features"][0]
    assert f["geometry"]["type"] == "Polygon" and f["properties"]["state"] in ("READY", "LOCKED_FOR_MAPPING", "MAPPED")
    st = srv.get("/api/states").json()
    assert st["version"] >= fc["version"] and len(st["tasks"]) == n
    assert srv.get(f"/api/states?since={st['version']}").json()["unchanged"] in (True, False)
    assert srv.get("/api/villages").json()["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert srv.get("/api/tasks/999999").status_code == 404
    assert srv.get("/api/tasks/abc").status_code == 422


# -- signing in ------------------------------------------------------------------------------------------------------


def test_sign_in_binds_a_name_to_one_browser(srv):
    assert srv.post("/api/tasks/3/claim").status_code == 401
    assert srv.post("/api/tasks/3/claim", headers={"X-Session": "made-up"}).status_code == 401
    h = srv.join("Oumar")
    again = srv.post("/api/join", json={"name": "oumar"})  # the same name, from another device
    assert again.status_code == 409 and "already signed in" in again.json()["detail"]
    assert srv.post("/api/join", json={"name": ""}).status_code in (400, 422)
    assert srv.post("/api/join", json={"name": "x" * 300}).status_code == 422
    # an organizer's name needs the organizer token
    r = srv.post("/api/join", json={"name": "Mariam"})
    assert r.status_code == 403 and "organizer token" in r.json()["detail"]
    srv.join("Mariam", organizer=True)
    # the organizer frees a name; then it can be used again
    assert srv.post("/api/organizer/free-name", json={"name": "Oumar"}).status_code == 403
    r = srv.post("/api/organizer/free-name", json={"name": "Oumar"}, headers=srv.org)
    assert r.status_code == 200 and r.json()["signed_out"] == 1
    assert srv.get("/api/me", headers=h).status_code == 401
    h2 = srv.join("Oumar")
    assert srv.get("/api/me", headers=h2).json()["name"] == "Oumar"


def test_sign_in_with_a_name_close_to_a_volunteers_is_refused_unless_new(srv):
    """A typo makes no second person: the sign-in is refused with the close name (the library's error,
    passed through); saying new: true signs in someone new."""
    srv.join("Moussa Konaté")
    n = query(srv.folder, "SELECT COUNT(*) FROM volunteers")[0][0]
    r = srv.post("/api/join", json={"name": "Mousa Konate"})
    assert r.status_code == 400 and r.json()["detail"] == "No volunteer is named Mousa Konate. Did you mean Moussa Konaté?"
    assert r.json()["suggestion"] == "Moussa Konaté"  # the page offers "I am Moussa Konaté" / "I am someone else"
    r = srv.post("/api/join", json={"name": "Mousa Konate"}, headers={"X-Lang": "fr"})
    assert r.json()["detail"] == "Aucun bénévole ne s'appelle Mousa Konate. Vouliez-vous dire Moussa Konaté ?"
    assert query(srv.folder, "SELECT COUNT(*) FROM volunteers")[0][0] == n
    r = srv.post("/api/join", json={"name": "Mousa Konate", "new": True})
    assert r.status_code == 200 and r.json()["name"] == "Mousa Konate"


# -- the lifecycle through HTTP ----------------------------------------------------------------------------------------


def test_claim_map_hand_in_done_validate(srv):
    awa, fanta = srv.join("Awa"), srv.join("Fanta")
    r = srv.post("/api/tasks/5/claim", headers=awa)
    assert r.status_code == 200 and r.json()["locked_by"] == "Awa"
    assert state(srv.folder, 5) == ("LOCKED_FOR_MAPPING", "Awa")
    assert srv.get("/api/me", headers=awa).json()["holding"] == [5]
    r = srv.post("/api/tasks/6/claim", headers=awa)  # one task at a time
    assert r.status_code == 409 and "already holds task 5" in r.json()["detail"]
    links = srv.get("/api/tasks/5/editors").json()
    assert links["josm"] and all(u["url"].startswith("http://127.0.0.1:8111/") for u in links["josm"])
    assert "openstreetmap.org/edit" in links["id"]
    r = srv.post("/api/tasks/5/upload?filename=task5.osm", headers=awa, data=OSM)
    assert r.status_code == 200, r.text
    c = r.json()[0]
    assert c["volunteer"] == "Awa" and c["task_id"] == 5 and c["objects"] == 4
    row = query(srv.folder, "SELECT original_name, stored_name, task_key FROM contributions WHERE sha256 = ?",
                (c["sha256"],))[0]
    assert row["original_name"] == "task5.osm" and (srv.folder / "contributions" / row["stored_name"]).read_bytes() == OSM
    assert srv.post("/api/tasks/5/validate", headers=awa, json={"accept": True}).status_code == 409
    assert srv.post("/api/tasks/5/done", headers=awa, json={}).json()["state"] == "MAPPED"
    # nobody validates their own work; a non-validator cannot validate
    r = srv.post("/api/tasks/5/validate", headers=awa, json={"accept": True})
    assert r.status_code == 409 and "not a validator" in r.json()["detail"]
    r = srv.post("/api/tasks/5/claim", headers=fanta)
    assert r.status_code == 200 and r.json()["state"] == "LOCKED_FOR_VALIDATION"
    r = srv.post("/api/tasks/5/validate", headers=fanta, json={"accept": True, "comment": "nice"})
    assert r.json()["state"] == "VALIDATED" and r.json()["validated_by"] == "Fanta"
    board = srv.get("/api/status").json()
    assert {"name": "Awa", "mapped": 1, "validated": 0} in board["board"]
    assert any(v["name"] == "Dianguirdé" for v in board["villages"])


def test_a_volunteer_cannot_touch_anothers_task(srv):
    bakary, kadi = srv.join("Bakary"), srv.join("Kadi")
    assert srv.post("/api/tasks/8/claim", headers=bakary).status_code == 200
    for action in ("release", "done", "badimagery"):
        r = srv.post(f"/api/tasks/8/{action}", headers=kadi, json={})
        assert r.status_code == 409 and "Bakary" in r.json()["detail"], (action, r.text)
    assert srv.post("/api/tasks/8/claim", headers=kadi).status_code == 409
    assert state(srv.folder, 8) == ("LOCKED_FOR_MAPPING", "Bakary")
    # a volunteer cannot use organizer actions, even with their own session
    for path in ("/api/organizer/tasks/8/release", "/api/organizer/tasks/8/reset", "/api/organizer/tasks/8/split"):
        assert srv.post(path, headers=kadi).status_code == 403
        assert srv.post(path, headers={**kadi, "X-Organizer-Token": "guess"}).status_code == 403
    assert srv.post("/api/organizer/validators", headers=kadi, json={"name": "Kadi"}).status_code == 403
    assert srv.post("/api/tasks/8/release", headers=bakary, json={}).json()["state"] == "READY"


def test_organizer_actions_with_the_token(srv):
    moussa = srv.join("Moussa")
    assert srv.post("/api/tasks/9/claim", headers=moussa).status_code == 200
    r = srv.post("/api/organizer/tasks/9/release", headers=srv.org, json={"comment": "left early"})
    assert r.status_code == 200 and r.json()["state"] == "READY"
    ev = query(srv.folder, "SELECT actor, comment FROM events WHERE task = (SELECT key FROM tasks WHERE id = 9) "
                           "AND action = 'release'")
    assert (ev[-1]["actor"], ev[-1]["comment"]) == ("Mariam", "left early")
    r = srv.post("/api/organizer/tasks/9/split", headers=srv.org)
    assert r.status_code == 200 and len(r.json()) == 4 and all(t["parent_id"] == 9 for t in r.json())
    assert srv.post("/api/organizer/tasks/9/reset", headers=srv.org).status_code == 409  # split: reset the children
    kid = r.json()[0]["id"]
    assert srv.post(f"/api/tasks/{kid}/claim", headers=moussa).status_code == 200
    assert srv.post(f"/api/tasks/{kid}/done", headers=moussa).status_code == 200
    assert srv.post(f"/api/organizer/tasks/{kid}/reset", headers=srv.org).json()["state"] == "READY"
    r = srv.post("/api/organizer/validators", headers=srv.org, json={"name": "Moussa"})
    assert r.status_code == 200 and "validator" in r.json()["roles"]
    assert srv.get("/api/me", headers=moussa).json()["validator"] is True
    assert srv.get("/api/organizer/conflicts", headers=srv.org).json() == []


def test_only_the_holder_or_mapper_or_a_validator_uploads_to_a_task(srv):
    """Another volunteer's upload to a task someone else mapped and a validator accepted: 403, one line."""
    lamine, binta = srv.join("Lamine"), srv.join("Binta")
    assert srv.post("/api/tasks/20/claim", headers=lamine).status_code == 200
    assert srv.post("/api/tasks/20/done", headers=lamine, json={}).status_code == 200
    n0 = query(srv.folder, "SELECT COUNT(*) FROM contributions")[0][0]
    mine = OSM.replace(b"</osm>", b"<!-- task 20 --></osm>")  # bytes of its own (the same bytes count once)
    r = srv.post("/api/tasks/20/upload?filename=mine.osm", headers=binta, data=mine)
    assert r.status_code == 403, r.text
    detail = r.json()["detail"]
    assert detail == ("Task 20 is not yours: only the volunteer who holds or mapped it, a validator or an organizer "
                      "hands in files for it.")
    assert "\n" not in detail
    assert query(srv.folder, "SELECT COUNT(*) FROM contributions")[0][0] == n0
    r = srv.post("/api/tasks/20/upload?filename=mine.osm", headers=lamine, data=mine)
    assert r.status_code == 200 and r.json()[0]["volunteer"] == "Lamine"


def test_uploads_are_limited_and_checked(srv):
    sira = srv.join("Sira")
    srv.post("/api/tasks/12/claim", headers=sira)
    n0 = query(srv.folder, "SELECT COUNT(*) FROM contributions")[0][0]
    r = srv.post("/api/tasks/12/upload?filename=big.osm", headers=sira, data=b" " * (1024 * 1024 + 10))
    assert r.status_code == 413
    r = srv.post("/api/tasks/12/upload?filename=virus.exe", headers=sira, data=b"MZ...")
    assert r.status_code == 400 and "unsupported file type" in r.json()["detail"]
    r = srv.post("/api/tasks/12/upload?filename=broken.osm", headers=sira, data=b"<osm><node id='1'")
    assert r.status_code == 400 and "broken.osm" in r.json()["detail"]
    assert "mapathon-upload-" not in r.json()["detail"]  # the volunteer's file, not the temporary copy
    for data in (b"<osm><node id='1'", b"%PDF-1.4 ...", b"   "):
        fr = srv.post("/api/tasks/12/upload?filename=f.osm", headers={**sira, "X-Lang": "fr"}, data=data).json()
        assert fr["detail"].startswith("f.osm : ") and "JOSM (Fichier › Enregistrer sous" in fr["detail"], fr
    r = srv.post("/api/tasks/12/upload?filename=task.osm", headers=sira, files={"file": ("task.osm", OSM)})
    assert r.status_code == 415 and "not a form" in r.json()["detail"]
    assert srv.post("/api/tasks/12/upload?filename=x.osm", headers=sira, data=b"").status_code == 400
    assert srv.post("/api/tasks/12/upload?filename=x.osm", data=OSM).status_code == 401

    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(40):
            yield b" " * 32768

    r = srv.post("/api/tasks/12/upload?filename=stream.osm", headers=sira, data=chunks())
    assert r.status_code == 413
    # a path in the file name is reduced to a plain name: nothing is written outside the project's folder
    evil = OSM.replace(b"building", b"amenity")
    r = srv.post("/api/tasks/12/upload?filename=../../../../tmp/evil.osm", headers=sira, data=evil)
    assert r.status_code == 200, r.text
    assert r.json()[0]["file"] == "evil.osm"
    assert query(srv.folder, "SELECT COUNT(*) FROM contributions")[0][0] == n0 + 1
    assert not list(srv.folder.parent.glob("**/evil.osm"))


def test_imagery_cache_tiles_are_served(srv):
    pytest.importorskip("mapathon.imagery.serve")
    folder = srv.folder / "imagery"
    folder.mkdir(exist_ok=True)
    png = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                        "0000000d4944415478da63f8cfc0f01f0005000201ba55a1a30000000049454e44ae426082")
    conn = sqlite3.connect(folder / "test.mbtiles")
    conn.executescript("""CREATE TABLE metadata (name TEXT, value TEXT);
        CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);
        INSERT INTO metadata VALUES ('name', 'test'), ('format', 'png'), ('minzoom', '16'), ('maxzoom', '16');""")
    conn.execute("INSERT INTO tiles VALUES (16, 31098, ?, ?)", ((1 << 16) - 1 - 30153, png))
    conn.commit()
    conn.close()
    r = srv.get("/tiles/test/16/31098/30153.png")
    assert r.status_code == 200 and r.content == png and r.headers["content-type"] == "image/png"
    assert srv.get("/tiles/test/16/31098/30154.png").status_code == 404
    assert srv.get("/tiles/nothere/16/31098/30153.png").status_code == 404
    info = srv.get("/api/project").json()
    assert info["imagery"] and info["imagery"][0]["tiles"][0].startswith(srv.url + "/tiles/test/")


def test_the_default_imagery_cache_is_the_background_and_empty_ones_are_left_out(backend, tmp_path_factory):
    pytest.importorskip("mapathon.imagery.serve")
    from mapathon.imagery import sources

    folder = make_project(tmp_path_factory, "imagery")
    with open_project(folder) as p:
        default = sources.default_name(p)
    (folder / "imagery").mkdir()
    png = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                        "0000000d4944415478da63f8cfc0f01f0005000201ba55a1a30000000049454e44ae426082")
    # "aaa" sorts first: an empty cache left by a fetch that failed; the default source has tiles; "zzz" too
    for name, tiles in (("aaa", 0), (default, 1), ("zzz", 1)):
        conn = sqlite3.connect(folder / "imagery" / f"{name}.mbtiles")
        conn.executescript("""CREATE TABLE metadata (name TEXT, value TEXT);
            CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);""")
        conn.execute("INSERT INTO metadata VALUES ('name', ?), ('format', 'png')", (name,))
        if tiles:
            conn.execute("INSERT INTO tiles VALUES (16, 31098, ?, ?)", ((1 << 16) - 1 - 30153, png))
        conn.commit()
        conn.close()
    (folder / "imagery" / "broken.mbtiles").write_bytes(b"not a database")
    with RoomServer(folder) as s:
        got = [i["tiles"][0].split("/tiles/")[1].split("/")[0] for i in s.get("/api/project").json()["imagery"]]
    assert got == [default, "zzz"]


# -- in French and English --------------------------------------------------------------------------------------


def test_every_word_is_in_english_and_french_with_the_same_fields():
    from mapathon import i18n

    for key, entry in i18n.WORDS.items():
        assert set(entry) == set(i18n.LANGS), key
        for lang, text in entry.items():
            assert text.strip(), (key, lang)
            assert set(i18n._FIELD.findall(text)) == i18n.fields(key), (key, lang)
    assert set(i18n.catalog("fr")) == set(i18n.WORDS)


def test_words_for_the_pages_in_the_language_asked(srv):
    en = srv.get("/api/i18n").json()
    assert en["lang"] == "en" and en["words"]["page.next"] == "Give me a task" and set(en["langs"]) == {"en", "fr"}
    fr = srv.get("/api/i18n", params={"lang": "fr"}).json()
    assert fr["lang"] == "fr" and fr["words"]["page.next"] == "Donnez-moi une tâche"
    assert fr["words"]["state.VALIDATED"] == "Validée"
    assert srv.get("/api/i18n", params={"lang": "fr-FR"}).json()["lang"] == "fr"
    assert srv.get("/api/i18n", params={"lang": "xx"}).json()["lang"] == "en"  # unknown: the room's language
    assert srv.get("/api/project").json()["lang"] == "en"


def test_refusals_are_plain_sentences_in_the_pages_language(srv):
    fr = {"X-Lang": "fr"}
    r = srv.post("/api/join", json={"name": "   "}, headers=fr)
    assert r.status_code == 400 and r.json()["detail"] == "Donnez votre nom."
    assert srv.post("/api/join", json={"name": "   "}).json()["detail"] == "Type your name."
    oumou = srv.join("Oumou")
    answers = {
        # the fast path and FastAPI's routes answer the same
        "fast": srv.post("/api/claim-next", headers={**oumou, **fr}, json={"village": "Toroddo"}),
        "route": srv.post("/api/claim-next", headers={**oumou, **fr, "Content-Type": "application/json"},
                          data=b'{"village": "Toroddo", "extra": 1}'),
    }
    for how, r in answers.items():
        detail = r.json()["detail"]
        assert r.status_code == 400, (how, r.text)
        assert detail.startswith("Aucun village ne s'appelle Toroddo.") and "Torodo" in detail, (how, detail)
        assert "--" not in detail, (how, detail)
    assert srv.post("/api/claim-next", headers=fr).json()["detail"] == "Donnez d'abord votre nom."
    r = srv.post("/api/join", json={"name": "x" * 300}, headers=fr)
    assert r.status_code == 422 and r.json()["detail"] == "Un nom a au plus 80 lettres."
    assert isinstance(srv.post("/api/join", json={"name": "x" * 300}).json()["detail"], list)  # API clients
    t = srv.post("/api/claim-next", headers=oumou).json()["id"]
    r = srv.post("/api/claim-next", headers={**oumou, **fr})
    assert r.status_code == 409 and r.json()["detail"] == f"Oumou a déjà la tâche {t} : terminez-la ou rendez-la d'abord."
    r = srv.post("/api/tasks/999999/claim", headers={**oumou, **fr})
    assert r.status_code == 404 and r.json()["detail"] == "Il n'y a pas de tâche 999999."
    r = srv.post("/api/organizer/tasks/3/reset", headers=fr)
    assert r.status_code == 403 and "code organisateur" in r.json()["detail"]
    assert srv.post("/api/tasks/3/upload?filename=x.osm", headers={**oumou, **fr}, data=b"").json()["detail"] == \
        "x.osm : le fichier est vide."
    # a message the catalog does not know keeps its meaning, without flags or commands
    from mapathon.i18n import plain_error

    said = plain_error("the project already has recorded work on its tasks; re-gridding would orphan it "
                       "(use --force to replace the grid anyway; the history is kept)", "fr")
    assert said.startswith("Refusé : the project already has recorded work") and "--" not in said
    assert "mapathon" not in plain_error("task 5: add one with 'mapathon volunteer add NAME --organizer'", "en")



REFUSED_UPLOADS = [  # (file name, bytes, the start of the French refusal)
    # a 'zip bomb': 17 MB of spaces in 17 KB
    ("bomb.osm.gz", gzip.compress(b"<osm version='0.6'>" + b" " * 17_000_000, 9),
     "bomb.osm.gz : refusé : il contient bien plus de données qu'une tâche de mapathon"),
    ("entity.osm", b'<?xml version="1.0"?><!DOCTYPE osm [<!ENTITY a "x">]><osm version="0.6"></osm>',
     "entity.osm : refusé : il contient une déclaration (DOCTYPE) que JOSM n'écrit jamais"),
    ("grid.osm", b"<osm version='0.6' upload='never'><node id='-1' lat='14.5' lon='-9.1'/></osm>",
     "grid.osm : c'est une couche d'aide de JOSM (comme la grille des tâches), pas votre travail"),
    ("huge.osm", b"<osm version='0.6'><node id='9223372036854775808' lat='14.5' lon='-9.1'/></osm>",
     "huge.osm : ligne 1 : node 9223372036854775808 n'est pas valable"),
    ("far.osm", b"<osm version='0.6'><node id='-1' lat='95' lon='-9.1'/></osm>",
     "far.osm : ligne 1 : node -1 n'est pas valable"),
    ("twice.osm", b"<osm version='0.6'><node id='-1' lat='14.5' lon='-9.1'/><node id='-1' lat='14.6' lon='-9.1'/>"
                  b"</osm>",
     "twice.osm : node -1 figure deux fois"),
]


def test_refused_uploads_are_said_in_french(srv):
    awa = srv.join("Awa Kouyaté")
    t = srv.post("/api/claim-next", headers=awa).json()["id"]
    for filename, data, words in REFUSED_UPLOADS:
        r = srv.post(f"/api/tasks/{t}/upload?filename={filename}", headers={**awa, "X-Lang": "fr"}, data=data)
        detail = r.json()["detail"]
        assert r.status_code == 400 and detail.startswith(words), detail
        assert "Fichier › Enregistrer sous" in detail or "bomb" in filename, detail
        for english in ("refused", "MAPATHON_", "Refusé :", "line"):
            assert english not in detail, detail
        en = srv.post(f"/api/tasks/{t}/upload?filename={filename}", headers=awa, data=data).json()["detail"]
        assert en.startswith(filename + ": ") and "MAPATHON_" not in en, en


def test_a_french_project_speaks_french(backend, tmp_path_factory):
    folder = make_project(tmp_path_factory, "fr")
    with open_project(folder) as p, p.transaction():
        p.set_meta("lang", "fr")
    with RoomServer(folder) as s:
        assert s.get("/api/i18n").json()["lang"] == "fr"
        assert s.get("/api/i18n", params={"lang": "en"}).json()["lang"] == "en"  # a page may ask for English
        assert s.post("/api/claim-next").json()["detail"] == "Donnez d'abord votre nom."
        assert s.post("/api/claim-next", headers={"X-Lang": "en"}).json()["detail"] == "Sign in first: type your name."


def test_init_lang(tmp_path):
    r = Cli()("init", tmp_path / "fr", "--name", "Dianguirdé", "--aoi", VILLAGES_CSV, "--radius", "500",
              "--lang", "fr")
    assert "Created project" in r.stdout
    with open_project(tmp_path / "fr") as p:
        assert p.lang == "fr"
    Cli()("init", tmp_path / "en", "--name", "D", "--aoi", VILLAGES_CSV, "--radius", "500")
    with open_project(tmp_path / "en") as p:
        assert p.lang == "en"
    assert "en" in Cli(tmp_path / "en")("lang").stdout
    assert "fr" in Cli(tmp_path / "en")("lang", "FR").stdout  # an existing project changes language
    with open_project(tmp_path / "en") as p:
        assert p.lang == "fr"
        assert p.conn.execute("SELECT COUNT(*) FROM events WHERE action = 'project.lang'").fetchone()[0] == 1
    assert "language de" in Cli(tmp_path / "en")("lang", "de", ok=False).stderr
    bad = Cli()("init", tmp_path / "de", "--name", "D", "--aoi", VILLAGES_CSV, "--radius", "500", "--lang", "de",
                ok=False)
    assert "--lang de" in bad.stderr
    assert not (tmp_path / "de").exists()


# -- 200 people at once ---------------------------------------------------------------------------------------------


def test_two_hundred_clients_claim_at_once(srv):
    n = 200
    contested = [600, 601, 602, 603, 604]
    names = [f"Room{i:03d}" for i in range(n)]
    sessions: dict[str, dict] = {}

    def join(name):
        sessions[name] = srv.join(name)

    threads = [threading.Thread(target=join, args=(nm,)) for nm in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sessions) == n

    barrier = threading.Barrier(n)
    results: dict[str, tuple] = {}

    def worker(i, name):
        # half of them want one of five squares, the other half ask for "a task"
        path = f"/api/tasks/{contested[i % 5]}/claim" if i % 2 == 0 else "/api/claim-next"
        barrier.wait()
        try:
            r = requests.post(srv.url + path, headers=sessions[name], json={}, timeout=120)
            results[name] = (r.status_code, r.json())
        except Exception as e:  # noqa: BLE001 - any failure to get an answer is an error
            results[name] = ("error", repr(e))

    threads = [threading.Thread(target=worker, args=(i, nm)) for i, nm in enumerate(names)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = Counter(r[0] for r in results.values())
    assert set(codes) <= {200, 409}, codes  # answered; a refusal is a 409 with a reason, never an error
    won = {nm: r[1]["id"] for nm, r in results.items() if r[0] == 200}
    assert len(set(won.values())) == len(won)  # no task won twice
    assert sum(1 for i, nm in enumerate(names) if i % 2 == 0 and nm in won) == len(contested)  # one per square
    assert all(nm in won for i, nm in enumerate(names) if i % 2 == 1)  # "give me one" always gives one
    for nm, r in results.items():
        if r[0] == 409:
            assert "locked by" in r[1]["detail"]
    # the database agrees: each winner holds exactly their task, nobody else holds anything
    rows = query(srv.folder, """SELECT t.id, v.name FROM tasks t JOIN volunteers v ON v.id = t.locked_by
                                 WHERE v.name LIKE 'Room%'""")
    assert {r["name"]: r["id"] for r in rows} == won
    claims = query(srv.folder, """SELECT task, COUNT(*) AS n FROM events WHERE action = 'claim.mapping'
                                   AND actor LIKE 'Room%' GROUP BY task""")
    assert all(r["n"] == 1 for r in claims) and len(claims) == len(won)


# -- the command ----------------------------------------------------------------------------------------------------


def test_mapathon_serve_prints_addresses_and_token(srv, tmp_path):
    port = free_port()
    exe = Path(sys.executable).parent / "mapathon"
    env = {k: v for k, v in os.environ.items() if k != "MAPATHON_ORGANIZER_TOKEN"}
    proc = subprocess.Popen([str(exe), "--project", str(srv.folder), "serve", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = [proc.stdout.readline() for _ in range(6)]
        text = "".join(lines)
        assert f"http://127.0.0.1:{port}/" in text and f"http://127.0.0.1:{port}/board" in text
        token = text.split("Organizer token: ")[1].split()[0]
        assert len(token) >= 12
        r = requests.post(f"http://127.0.0.1:{port}/api/organizer/check", headers={"X-Organizer-Token": token},
                          timeout=30)
        assert r.status_code == 200 and r.json() == {"organizer": "Mariam"}
        assert requests.post(f"http://127.0.0.1:{port}/api/organizer/check", timeout=30).status_code == 403
        # the port is taken now: a clear one-line error
        r2 = subprocess.run([str(exe), "--project", str(srv.folder), "serve", "--host", "127.0.0.1", "--port",
                             str(port)], capture_output=True, text=True, timeout=60)
        assert r2.returncode != 0 and "cannot listen" in r2.stderr and "Traceback" not in r2.stderr
    finally:
        proc.terminate()
        proc.wait(10)
    r3 = subprocess.run([str(exe), "--project", str(tmp_path / "nothing"), "serve"], capture_output=True, text=True,
                        timeout=60)
    assert r3.returncode != 0 and "not a mapathon project" in r3.stderr and "Traceback" not in r3.stderr
