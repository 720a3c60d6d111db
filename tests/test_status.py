"""Progress: counts per village and overall, Tasking Manager percentages, volunteer numbers, --json, --map PNG."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import shapely
from PIL import Image

from conftest import Cli
from foundation_helpers import (
    assert_error,
    copy_project,
    query,
    status_json,
    tasks_json,
    village_template,
    write_geojson,
)
from mapathon.project import open_project
from mapathon.tasks import lifecycle, progress

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)

STATES = ["READY", "LOCKED_FOR_MAPPING", "MAPPED", "LOCKED_FOR_VALIDATION", "VALIDATED", "INVALIDATED", "BADIMAGERY"]
COLOURS = {"READY": "#ffffff", "LOCKED_FOR_MAPPING": "#f4a340", "MAPPED": "#7fc8e8", "LOCKED_FOR_VALIDATION": "#c9a0dc",
           "VALIDATED": "#3aa37a", "INVALIDATED": "#f6d860", "BADIMAGERY": "#9a9ca8"}


@pytest.fixture
def proj(tmp_path_factory, tmp_path):
    folder = copy_project(village_template(tmp_path_factory, 16), tmp_path / "g")
    cli = Cli(folder)
    cli("volunteer", "add", "Vera", "--validator", "--as", "Mariam")
    cli("volunteer", "add", "Victor", "--validator", "--as", "Mariam")
    return folder


def play(cli: Cli) -> None:
    """One task in each state, spread over villages, and one split."""
    cli("claim", "1", "--as", "Awa"); cli("done", "1", "--as", "Awa")              # noqa: E702
    cli("validate", "1", "--as", "Vera", "--accept")                                # 1 VALIDATED
    cli("claim", "100", "--as", "Bakary"); cli("done", "100", "--as", "Bakary")    # noqa: E702
    cli("claim", "100", "--as", "Vera")                                             # 100 LOCKED_FOR_VALIDATION
    cli("claim", "200", "--as", "Fatou"); cli("done", "200", "--as", "Fatou")      # noqa: E702
    cli("validate", "200", "--as", "Victor", "--reject")                            # 200 INVALIDATED
    cli("badimagery", "300", "--as", "Mariam")                                      # 300 BADIMAGERY
    cli("claim", "400", "--as", "Awa")                                              # 400 LOCKED_FOR_MAPPING
    cli("claim", "500", "--as", "Bakary"); cli("done", "500", "--as", "Bakary")    # noqa: E702  500 MAPPED
    cli("split", "600", "--as", "Mariam")                                           # 600 SPLIT -> children


def expected_counts(rows: list[dict]) -> dict:
    c = Counter(r["state"] for r in rows if r["state"] != "SPLIT")
    states = {s: c.get(s, 0) for s in STATES}
    total = sum(states.values())
    mappable = total - states["BADIMAGERY"]
    mapped = states["MAPPED"] + states["LOCKED_FOR_VALIDATION"] + states["VALIDATED"]
    return {"tasks": total, "states": states,
            "mapped_pct": round(100 * mapped / mappable, 1) if mappable else 0.0,
            "validated_pct": round(100 * states["VALIDATED"] / mappable, 1) if mappable else 0.0}


def test_counts_and_percentages_overall_and_per_village(proj):
    cli = Cli(proj)
    play(cli)
    rows = tasks_json(cli)
    st = status_json(cli)
    exp = expected_counts(rows)
    overall = st["overall"]
    assert {k: overall[k] for k in exp} == exp
    assert overall["states"] == {"READY": exp["tasks"] - 6, "LOCKED_FOR_MAPPING": 1, "MAPPED": 1,
                                 "LOCKED_FOR_VALIDATION": 1, "VALIDATED": 1, "INVALIDATED": 1, "BADIMAGERY": 1}
    n_live = query(proj, "SELECT COUNT(*) FROM tasks WHERE state != 'SPLIT'")[0][0]
    assert overall["tasks"] == n_live
    # Tasking Manager: bad imagery is left out of the total
    assert overall["mapped_pct"] == round(100 * 3 / (n_live - 1), 1)
    assert overall["validated_pct"] == round(100 * 1 / (n_live - 1), 1)
    # per village, from the tasks' own village lists, cross-checked with the geometry
    villages = {r["name"]: shapely.from_wkb(r["geom"]) for r in query(proj, "SELECT name, geom FROM areas WHERE kind = 'village'")}
    geoms = {r["id"]: shapely.from_wkb(r["geom"]) for r in query(proj, "SELECT id, geom FROM tasks")}
    by_name = {v["name"]: v for v in st["villages"]}
    assert set(by_name) == set(villages)  # every task lies in a village here: no "(outside villages)" row
    for name, circle in villages.items():
        mine = [r for r in rows if name in r["villages"]]
        assert {r["id"] for r in mine} == {i for i, g in geoms.items() if g.intersection(circle).area > 0}
        assert {k: by_name[name][k] for k in exp} == expected_counts(mine), name
    # a task in two villages counts in both rows but once overall
    assert sum(v["tasks"] for v in st["villages"]) >= overall["tasks"]
    assert any(len(r["villages"]) > 1 for r in rows)
    shared = sum(1 for r in rows if len(r["villages"]) > 1 and r["state"] != "SPLIT")
    assert st["tasks_in_several_villages"] == shared
    assert sum(v["tasks"] for v in st["villages"]) == overall["tasks"] + sum(
        len(r["villages"]) - 1 for r in rows if len(r["villages"]) > 1 and r["state"] != "SPLIT")


def test_status_text_table(proj):
    cli = Cli(proj)
    play(cli)
    st = status_json(cli)
    out = cli("status").stdout
    for v in st["villages"]:
        assert v["name"] in out
    all_line = next(ln for ln in out.splitlines() if "All" in ln)
    cells = all_line.split()
    o = st["overall"]
    n = o["states"]
    # ready, locked (mapping + validation), mapped, valid, redo, bad
    assert cells == ["All", str(o["tasks"]), str(n["READY"]),
                     str(n["LOCKED_FOR_MAPPING"] + n["LOCKED_FOR_VALIDATION"]), str(n["MAPPED"]),
                     str(n["VALIDATED"]), str(n["INVALIDATED"]), str(n["BADIMAGERY"]),
                     f"{o['mapped_pct']:.1f}", f"{o['validated_pct']:.1f}"]
    for name in ("Awa", "Bakary", "Fatou", "Vera", "Victor", "Mariam"):
        assert name in out
    # the village rows add up to more than All: said under the table
    assert f"{st['tasks_in_several_villages']} task(s) lie in two villages or more" in out
    assert "add up to more than All" in out


def test_volunteer_numbers(proj):
    cli = Cli(proj)
    play(cli)
    vols = {v["name"]: v for v in status_json(cli)["volunteers"]}
    key = {r["id"]: r["key"] for r in tasks_json(cli)}
    assert (vols["Awa"]["mapped"], vols["Awa"]["holding"]) == (1, f"400 ({key[400]})")
    assert vols["Bakary"]["mapped"] == 2  # one under validation, one waiting
    assert vols["Fatou"]["mapped"] == 0  # her task was invalidated
    assert (vols["Vera"]["validated"], vols["Vera"]["invalidated"], vols["Vera"]["holding"]) == (1, 0, f"100 ({key[100]})")
    assert (vols["Victor"]["validated"], vols["Victor"]["invalidated"]) == (0, 1)
    assert vols["Mariam"]["roles"] == "organizer, validator" and vols["Vera"]["roles"] == "validator"
    assert vols["Fatou"]["roles"] == "mapper"
    # sorted by work done
    names = [v["name"] for v in status_json(cli)["volunteers"]]
    assert names[0] == "Bakary"


def test_time_locked_per_volunteer(proj):
    t0 = datetime(2026, 3, 14, 18, 0, tzinfo=timezone.utc)
    h = lambda x: t0 + timedelta(hours=x)  # noqa: E731
    with open_project(proj) as p:
        lifecycle.claim(p, 1, "Awa", now=h(0))
        lifecycle.done(p, 1, "Awa", now=h(1.5))
        lifecycle.claim(p, 2, "Awa", now=h(2))
        lifecycle.release(p, 2, "Awa", now=h(2.25))
        lifecycle.claim(p, 1, "Vera", now=h(3))
        lifecycle.validate(p, 1, "Vera", accept=True, now=h(3.5))
        lifecycle.claim(p, 3, "Bakary", now=h(3.75))
        st = progress.status(p, now=h(4))
    vols = {v.name: v for v in st.volunteers}
    assert vols["Awa"].locked_hours == pytest.approx(1.75, abs=1e-6)
    assert vols["Vera"].locked_hours == pytest.approx(0.5, abs=1e-6)
    assert vols["Bakary"].locked_hours == pytest.approx(0.25, abs=1e-6)  # still holding: counted until now
    assert st.as_dict()["volunteers"][0]["name"] in ("Awa", "Vera")
    # and the lock of Bakary expires at h(5.75): a status after that releases it
    with open_project(proj) as p:
        st = progress.status(p, now=h(6))
    assert st.expired == [query(proj, "SELECT key FROM tasks WHERE id = 3")[0][0]]
    assert st.overall.states["LOCKED_FOR_MAPPING"] == 0


def test_time_locked_stops_when_the_lock_expires(proj):
    """A volunteer who walks away held the task for the lock's 2 hours, not until someone next ran a command."""
    t0 = datetime(2026, 3, 14, 18, 0, tzinfo=timezone.utc)
    with open_project(proj) as p:
        lifecycle.claim(p, 1, "Awa", now=t0)
        lifecycle.claim(p, 2, "Bakary", hours=0.5, now=t0)
        st = progress.status(p, now=t0 + timedelta(hours=10))
    vols = {v.name: v for v in st.volunteers}
    assert vols["Awa"].locked_hours == pytest.approx(2.0, abs=1e-6)
    assert vols["Bakary"].locked_hours == pytest.approx(0.5, abs=1e-6)
    assert len(st.expired) == 2


def test_status_reports_released_expired_locks(proj):
    t0 = datetime.now(timezone.utc) - timedelta(hours=3)
    with open_project(proj) as p:
        lifecycle.claim(p, 9, "Awa", now=t0)
    out = Cli(proj)("status").stdout
    assert "Released 1 expired lock(s)" in out
    assert query(proj, "SELECT state FROM tasks WHERE id = 9")[0][0] == "READY"


def test_outside_villages_row(tmp_path):
    """Tasks beyond every named zone are reported in their own row."""
    big = [[-9.02, 14.48], [-9.00, 14.48], [-9.00, 14.50], [-9.02, 14.50], [-9.02, 14.48]]
    small = [[-9.019, 14.481], [-9.015, 14.481], [-9.015, 14.485], [-9.019, 14.485], [-9.019, 14.481]]
    f = write_geojson(tmp_path / "z.geojson", [({"type": "Polygon", "coordinates": [big]}, {}),
                                               ({"type": "Polygon", "coordinates": [small]}, {"name": "Puits"})])
    Cli()("init", tmp_path / "p", "--name", "Z", "--aoi", f)
    cli = Cli(tmp_path / "p")
    cli("grid", "--zoom", "16")
    st = status_json(cli)
    rows = {v["name"]: v["tasks"] for v in st["villages"]}
    assert set(rows) == {"Puits", "(outside villages)"}
    assert rows["Puits"] + rows["(outside villages)"] == st["overall"]["tasks"]
    assert st["tasks_in_several_villages"] == 0
    assert "add up to more than All" not in cli("status").stdout  # nothing to explain


def test_status_before_grid_and_outside_a_project(tmp_path_factory, tmp_path):
    folder = copy_project(village_template(tmp_path_factory, None), tmp_path / "p")
    st = status_json(Cli(folder))
    assert st["overall"]["tasks"] == 0 and st["overall"]["mapped_pct"] == 0.0
    assert_error(Cli(tmp_path / "nowhere")("status", ok=False), "not a mapathon project")


# -- the progress map -----------------------------------------------------------------------------------------


def _blend(hex_colour: str, opacity=0.85, bg=(0xEE, 0xF0, 0xE8)) -> np.ndarray:
    rgb = [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]
    return np.array([opacity * c + (1 - opacity) * b for c, b in zip(rgb, bg)])


def test_map_png_shows_each_state_in_its_colour(proj, tmp_path):
    cli = Cli(proj)
    play(cli)
    png = tmp_path / "progress.png"
    out = cli("status", "--map", png).stdout
    assert f"Progress map written to {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as im:
        assert im.format == "PNG"
        w, h = im.size
        px = np.asarray(im.convert("RGB")).astype(int)
    assert (w, h) == (1920, 1080)  # a projector's picture
    body = px[100:, :1520]  # below the title band, left of the legend panel
    bg = np.all(np.abs(body - [0xEE, 0xF0, 0xE8]) <= 1, axis=2).sum()
    assert bg > 0.3 * body.shape[0] * body.shape[1]  # the villages do not fill the picture
    for state, colour in COLOURS.items():
        n = int(np.all(np.abs(body - _blend(colour)) <= 3, axis=2).sum())
        if state == "READY":
            assert n > 20_000, state
        else:
            assert 20 < n < 5_000, (state, n)  # about one z16 tile (8 px wide here)
    # the legend shows the exact colours
    legend = px[100:, 1520:]
    for state, colour in COLOURS.items():
        rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
        assert np.all(legend == rgb, axis=2).sum() > 100, state


def test_map_errors(proj, tmp_path):
    before = sorted(p.name for p in tmp_path.iterdir())
    r = Cli(proj)("status", "--map", tmp_path / "no" / "such" / "folder.png", ok=False)
    assert_error(r, "folder.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_map_of_a_project_without_grid(tmp_path_factory, tmp_path):
    folder = copy_project(village_template(tmp_path_factory, None), tmp_path / "p")
    png = tmp_path / "empty.png"
    Cli(folder)("status", "--map", png)
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (1920, 1080)
    assert json.loads(Cli(folder)("info", "--json").stdout)["tasks"] == 0


def test_map_legend_is_whole_in_french_and_english(proj, tmp_path):
    cli = Cli(proj)
    play(cli)
    for lang in ("en", "fr"):
        png = tmp_path / f"progress-{lang}.png"
        cli("status", "--map", png, "--lang", lang)
        with Image.open(png) as im:
            assert im.size == (1920, 1080)
            px = np.asarray(im.convert("RGB")).astype(int)
        assert np.all(px[100:1000, -6:] == 255), lang  # nothing written against the right edge
        # the legend's swatches are whole squares (not cut by the edge) in the exact colours
        for state, colour in COLOURS.items():
            if state == "READY":  # white, as the panel
                continue
            rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
            ys, xs = np.where(np.all(px[100:, 1300:] == rgb, axis=2))
            assert len(xs) > 400, (lang, state)
            assert xs.max() - xs.min() == ys.max() - ys.min(), (lang, state)
    bad = cli("status", "--map", tmp_path / "x.png", "--lang", "de", ok=False)
    assert_error(bad, "--lang de")


def test_map_of_one_village_with_task_numbers(proj, tmp_path):
    cli = Cli(proj)
    play(cli)
    with open_project(proj) as p:  # the village of task 1, which play() validated
        village = p.conn.execute("SELECT a.name FROM task_areas ta JOIN areas a ON a.id = ta.area_id "
                                 "WHERE ta.task_id = 1").fetchone()[0]
    png = tmp_path / "village.png"
    cli("status", "--map", png, "--village", village.upper())  # case does not matter
    with Image.open(png) as im:
        px = np.asarray(im.convert("RGB")).astype(int)
    assert np.all(px[100:1000, -6:] == 255)
    # the village's squares are big: a task's fill covers thousands of pixels, not ~60
    n = int(np.all(np.abs(px[100:, :1400] - _blend(COLOURS["VALIDATED"])) <= 3, axis=2).sum())
    assert n > 3000, n
    # task numbers are written: dark grey text pixels inside the map
    text = np.all(np.abs(px[100:, :1400] - [0x33, 0x33, 0x33]) <= 8, axis=2).sum()
    assert text > 500, text
    whole = tmp_path / "all.png"
    cli("status", "--map", whole)
    with Image.open(whole) as im:
        px_all = np.asarray(im.convert("RGB")).astype(int)
    assert np.all(np.abs(px_all[100:, :1400] - [0x33, 0x33, 0x33]) <= 8, axis=2).sum() < text / 4  # no numbers
    assert_error(cli("status", "--map", tmp_path / "v.png", "--village", "Nowhere", ok=False), "Nowhere")
    assert not (tmp_path / "v.png").exists()
    assert_error(cli("status", "--village", "Torodo", ok=False), "--map")
