"""A real browser on the room server: Debian's Chromium driven by Playwright (nothing is downloaded).

Loads the volunteers' page from a server started by the test, types a name, clicks a square on the map,
clicks "Claim", and checks the lock in the database. Screenshots go to docs/img/.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from foundation_helpers import query
from test_server import RoomServer, make_project

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--headless", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
# Screenshots refresh the pictures in docs/img/ when MAPATHON_SCREENSHOTS=docs; otherwise they go to a
# temporary folder, so that running the tests never changes the repository.
DOCS_IMG = Path(__file__).parent.parent / "docs" / "img"

pytestmark = [pytest.mark.skipif(not CHROMIUM.exists(),
                                 reason="no /usr/bin/chromium: install Debian's chromium (apt-get install chromium) "
                                        "to run the browser test"),
              pytest.mark.backends]  # on SQLite and on PostgreSQL (conftest)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


def _evening(tmp_path_factory) -> RoomServer:
    s = RoomServer(make_project(tmp_path_factory, "browser", shared=True)).__enter__()
    # an evening under way around Dianguirdé: squares validated, mapped, sent back, being mapped
    plan = [("Awa", 172, "validated"), ("Bakary", 173, "validated"), ("Sira", 146, "mapped"),
            ("Oumar", 147, "mapped"), ("Ali", 224, "mapped"), ("Ina", 174, "invalidated"),
            ("Kadi", 225, "locked"), ("Moussa", 250, "locked")]
    fanta = s.join("Fanta")
    for name, task, end in plan:
        h = s.join(name)
        assert s.post(f"/api/tasks/{task}/claim", headers=h).status_code == 200
        if end != "locked":
            assert s.post(f"/api/tasks/{task}/done", headers=h).status_code == 200
        if end in ("validated", "invalidated"):
            r = s.post(f"/api/tasks/{task}/validate", headers=fanta, json={"accept": end == "validated"})
            assert r.status_code == 200
    return s


@pytest.fixture
def room(backend, tmp_path_factory, module_servers):
    """One room (an evening under way) per backend for the module's tests."""
    if backend not in module_servers:
        module_servers[backend] = _evening(tmp_path_factory)
    return module_servers[backend]


@pytest.fixture
def shots(tmp_path):
    return DOCS_IMG if os.environ.get("MAPATHON_SCREENSHOTS") == "docs" else tmp_path


def test_claim_a_square_by_clicking(browser, room, shots):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"{r.url} failed"))
    page.on("request", lambda r: None if r.url.startswith(room.url) or r.url.startswith("data:")
            else errors.append(f"request outside the room server: {r.url}"))
    page.goto(room.url + "/")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    page.fill("#name", "Aminata")
    page.click("#join")
    page.wait_for_selector("#whoami:not([hidden])")
    assert page.inner_text("#me-name") == "Aminata"

    target = 198  # a square in Dianguirdé
    page.click(f"path.task-{target}", force=True)  # the square on the map
    page.wait_for_selector("#task:not([hidden])")
    assert page.inner_text("#t-id") == str(target)
    page.click("#claim")
    page.wait_for_selector("#mine:not([hidden])")
    assert "yours" in page.inner_text("#msg")

    row = query(room.folder, """SELECT t.state, v.name FROM tasks t JOIN volunteers v ON v.id = t.locked_by
                                 WHERE t.id = ?""", (target,))
    assert [tuple(r) for r in row] == [("LOCKED_FOR_MAPPING", "Aminata")]
    ev = query(room.folder, "SELECT actor FROM events WHERE action = 'claim.mapping' AND task = "
                            "(SELECT key FROM tasks WHERE id = ?)", (target,))
    assert [r[0] for r in ev] == ["Aminata"]

    page.wait_for_timeout(700)  # the map flies to the task
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "room-server.png"))
    assert (shots / "room-server.png").stat().st_size > 10_000
    assert not errors, errors
    page.close()


def test_progress_board(browser, room, shots):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.goto(room.url + "/board")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    leaders = page.inner_text("#leaders")
    assert "Awa" in leaders and "Oumar" in leaders and "Fanta" in leaders
    assert "Dianguirdé" in page.inner_text("#villages")
    assert int(page.inner_text("#active")) >= 2
    page.screenshot(path=str(shots / "room-board.png"))
    page.close()


EVIL = "<img src=x onerror=window.__pwned=1>"


@pytest.fixture
def french_room(backend, tmp_path_factory):
    """A French project (as 'init --lang fr' makes it) whose village Torodo is named like an attack."""
    sources = pytest.importorskip("mapathon.imagery.sources")
    from mapathon.project import open_project

    folder = make_project(tmp_path_factory, "french")
    with open_project(folder) as p, p.transaction():
        p.set_meta("lang", "fr")
        p.conn.execute("UPDATE areas SET name = ? WHERE name = 'Torodo'", (EVIL,))
        default = sources.default_name(p)
    # an imagery cache whose attribution is an attack too (Leaflet shows attributions as HTML)
    (folder / "imagery").mkdir()
    conn = sqlite3.connect(folder / "imagery" / f"{default}.mbtiles")
    conn.executescript("""CREATE TABLE metadata (name TEXT, value TEXT);
        CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);""")
    conn.execute("INSERT INTO metadata VALUES ('name', ?), ('format', 'png'), ('attribution', ?)", (default, EVIL))
    conn.execute("INSERT INTO tiles VALUES (16, 31098, ?, ?)", ((1 << 16) - 1 - 30153, b"\x89PNG"))
    conn.commit()
    conn.close()
    with RoomServer(folder) as s:
        yield s


def test_the_pages_in_french_and_names_never_as_html(browser, french_room, shots, tmp_path):
    room = french_room
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: errors.append(f"request for {r.url}") if "/x" in r.url.split(room.url)[-1][:2]
            else None)
    page.goto(room.url + "/")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    assert page.evaluate("document.documentElement.lang") == "fr"
    assert page.inner_text("#next") == "Donnez-moi une tâche"
    assert page.inner_text("#legend").startswith("À cartographier")
    assert page.get_attribute("#name", "placeholder") == "ex. Awa T."
    # the village's name is shown as it is written, never run as HTML
    labels = page.locator(".village-label").all_inner_texts()
    assert EVIL in labels
    assert page.locator("#map img[src='x']").count() == 0
    assert EVIL in page.locator("#village").inner_text()
    assert EVIL in page.inner_text(".leaflet-control-attribution")
    # the browser is never told about command-line flags
    page.click("#next")
    assert page.inner_text("#msg") == "Donnez d'abord votre nom."
    page.fill("#name", "Aminata")
    page.click("#join")
    page.wait_for_selector("#whoami:not([hidden])")
    assert page.inner_text("#msg").startswith("Bienvenue, Aminata !")
    page.click("#next")
    page.wait_for_selector("#mine:not([hidden])")
    assert "est à vous" in page.inner_text("#msg")
    page.click("#next")
    page.wait_for_function("document.getElementById('msg').className === 'error'")
    msg = page.inner_text("#msg")
    assert "Aminata a déjà la tâche" in msg and "--" not in msg
    page.wait_for_timeout(700)  # the map flies to the task
    page.screenshot(path=str(shots / "room-server-fr.png"))
    # the link to the board keeps the language; the board too shows the name as text
    assert page.get_attribute("#board-link", "href") == "/board?lang=fr"
    page.goto(room.url + "/board")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    assert page.inner_text("h2[data-i18n='board.volunteers']") == "Bénévoles"
    assert "cartographié" in page.inner_text(".overall")
    assert EVIL in page.inner_text("#villages")
    assert EVIL in page.locator(".village-label").all_inner_texts()
    assert page.locator("img[src='x']").count() == 0
    page.screenshot(path=str(tmp_path / "room-board-fr.png"))  # with the attack's name: not for the docs
    # a name close to a volunteer's: the page asks whether it is them or someone new
    other = browser.new_page(viewport={"width": 1280, "height": 800})
    other.goto(room.url + "/")
    other.wait_for_selector("body[data-ready='1']", timeout=30_000)
    other.fill("#name", "Aminatta")
    other.click("#join")
    other.wait_for_selector("#name-choice:not([hidden])")
    assert other.inner_text("#msg") == "Aucun bénévole ne s'appelle Aminatta. Vouliez-vous dire Aminata ?"
    assert other.inner_text("#choice-same") == "Je suis Aminata"
    other.click("#choice-new")
    other.wait_for_selector("#whoami:not([hidden])")
    assert other.inner_text("#me-name") == "Aminatta"
    other.close()
    # English on demand
    page.goto(room.url + "/?lang=en")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    assert page.inner_text("#next") == "Give me a task"
    assert page.evaluate("window.__pwned") is None
    assert not errors, errors
    page.close()
