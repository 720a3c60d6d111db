"""Credit and progress: counts on a hand-made merge, lengths checked with pyproj.Geod,
the tasks lists in a project, and the self-contained HTML page."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import osmium
import pytest
from pyproj import Geod

from mapathon.osm.merge import InputSpec, plan_merge
from mapathon.quality.credit import WATER_ORDER, compute_credit, water_kind

from conftest import Cli

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)

GEOD = Geod(ellps="WGS84")

BASE_OPL = """\
n500 v2 dV c1 t2019-01-01T00:00:00Z i1 ubase Tman_made=water_well x-9.0100 y14.4900
n501 v1 dV c1 t2019-01-01T00:00:00Z i1 ubase Tshop=kiosk x-9.0110 y14.4905
"""

TRACK = [(-9.0160, 14.4930), (-9.0150, 14.4945), (-9.0131, 14.4961)]
ROAD = [(-9.0200, 14.4900), (-9.0170, 14.4902)]


def _node(oid, lon, lat, tags=None, action="modify", version=None):
    v = f" version='{version}'" if version else ""
    body = "".join(f"<tag k='{k}' v='{val}'/>" for k, val in (tags or {}).items())
    return f"<node id='{oid}' action='{action}'{v} visible='true' lat='{lat}' lon='{lon}'>{body}</node>"


def _way(oid, refs, tags):
    nds = "".join(f"<nd ref='{r}'/>" for r in refs)
    body = "".join(f"<tag k='{k}' v='{val}'/>" for k, val in tags.items())
    return f"<way id='{oid}' action='modify' visible='true'>{nds}{body}</way>"


def _building(first, way_id, lon, lat, d=0.0001):
    ids = [first - i for i in range(4)]
    pts = [(lon, lat), (lon + d, lat), (lon + d, lat + d), (lon, lat + d)]
    return [_node(i, x, y) for i, (x, y) in zip(ids, pts)] + [_way(way_id, ids + [ids[0]], {"building": "yes"})]


def _josm(path: Path, parts) -> Path:
    path.write_text("<?xml version='1.0' encoding='UTF-8'?>\n<osm version='0.6' generator='JOSM'>\n"
                    + "\n".join(parts) + "\n</osm>\n", encoding="utf-8")
    return path


def _files(tmp_path: Path) -> tuple[Path, Path]:
    a = []
    a += _building(-1, -1, -9.0160, 14.4920)
    a += _building(-5, -2, -9.0150, 14.4920)
    a += [_node(-10 - i, x, y) for i, (x, y) in enumerate(TRACK)]
    a.append(_way(-3, [-10, -11, -12], {"highway": "track"}))
    a.append(_node(-20, -9.0140, 14.4950, {"man_made": "water_well", "pump": "manual"}))
    a.append(_node(-21, -9.0141, 14.4951, {"amenity": "drinking_water"}))
    a.append(_node(-22, -9.0142, 14.4952, {"amenity": "school", "name": "École"}))
    b = []
    b += _building(-1, -1, -9.0190, 14.4910)  # the same ids as volunteer A's: renumbered by the merge
    b += [_node(-10 - i, x, y) for i, (x, y) in enumerate(ROAD)]
    b.append(_way(-2, [-10, -11], {"highway": "residential"}))
    b.append(_node(500, -9.0100, 14.4900, {"man_made": "water_well", "name": "Puits"}, version=2))
    b.append(_node(501, -9.0110, 14.4905, {"shop": "kiosk"}, action="delete", version=1))
    b.append(_node(-30, -9.0101, 14.4901, {"man_made": "water_tap"}))
    b.append(_node(-31, -9.0102, 14.4902, {"natural": "spring"}))
    return _josm(tmp_path / "a.osm", a), _josm(tmp_path / "b.osm", b)


@pytest.fixture
def base(tmp_path) -> Path:
    path = tmp_path / "base.osm.pbf"
    mr = osmium.MergeInputReader()
    mr.add_buffer(BASE_OPL.encode(), "opl")
    with osmium.SimpleWriter(str(path)) as w:
        mr.apply(w)
    return path


def _geod_length(pts) -> float:
    return GEOD.line_length([p[0] for p in pts], [p[1] for p in pts])


def test_water_kinds():
    assert water_kind({"man_made": "water_well"}) == "well"
    assert water_kind({"man_made": "water_well", "pump": "manual"}) == "well with pump"  # not a borehole
    assert water_kind({"man_made": "water_well", "pump": "no"}) == "well"
    assert water_kind({"man_made": "borehole"}) == "borehole"
    assert water_kind({"man_made": "water_well", "water_source": "borehole"}) == "borehole"
    assert water_kind({"man_made": "water_well", "water_well": "borehole"}) == "borehole"
    assert water_kind({"man_made": "water_tap"}) == "tap"
    assert water_kind({"amenity": "drinking_water"}) == "drinking water"
    assert water_kind({"amenity": "school"}) is None


def test_credit_of_a_hand_made_merge(tmp_path, base):
    fa, fb = _files(tmp_path)
    result = plan_merge([InputSpec(fa, volunteer="Awa", task="t1"), InputSpec(fb, volunteer="Bakary", task="t2")],
                        base=base)
    credit = compute_credit(result)
    awa, bak = credit.volunteers["Awa"], credit.volunteers["Bakary"]
    assert (awa.buildings, bak.buildings, credit.total.buildings) == (2, 1, 3)
    # lengths in the local UTM zone agree with the geodesic length (pyproj.Geod) to 0.1 %
    assert awa.tracks_m == pytest.approx(_geod_length(TRACK), rel=1e-3) and awa.roads_m == 0
    assert bak.roads_m == pytest.approx(_geod_length(ROAD), rel=1e-3) and bak.tracks_m == 0
    assert awa.water == {"well with pump": 1, "drinking water": 1} and awa.pois == {"amenity=school": 1}
    assert bak.water == {"tap": 1, "spring": 1} and bak.pois == {}
    assert (bak.modified, bak.deleted, awa.modified, awa.deleted) == (1, 1, 0, 0)  # the base well, the kiosk
    d = credit.as_dict()
    assert list(d["total"]["water"]) == [k for k in WATER_ORDER if k in d["total"]["water"]]  # water points first
    assert d["total"]["tracks_km"] == pytest.approx(_geod_length(TRACK) / 1000, abs=1e-3)
    assert d["total"]["water_points"] == 4 and d["total"]["other_pois"] == 1
    # without a project, the tasks are the ones the files were given for
    assert set(d["tasks"]) == {"t1", "t2"} and d["tasks"]["t2"]["deleted"] == 1


def _task_at(project: Path, lon: float, lat: float):
    import shapely

    from mapathon.project import open_project
    from mapathon.tasks.lifecycle import list_tasks

    with open_project(project) as p:
        return min((t for t in list_tasks(p) if t.geom.covers(shapely.Point(lon, lat))), key=lambda t: t.id)


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for k, v in attrs:
            if k in ("src", "href", "srcset", "data", "poster", "action", "xlink:href") and v:
                self.urls.append(v)


def test_report_in_a_project_lists_tasks_and_writes_a_self_contained_page(tmp_path, gridded):
    pcli = Cli(gridded)
    fa, fb = _files(tmp_path)
    t_awa = _task_at(gridded, -9.0155, 14.4921)  # where Awa's buildings are
    pcli("volunteer", "add", "Awa")
    pcli("volunteer", "add", "Bakary")
    t_done = _task_at(gridded, -9.0162, 14.505)  # marked done, but no file comes for it
    pcli("claim", t_done.id, "--as", "Bakary")
    pcli("done", t_done.id, "--as", "Bakary")
    pcli("claim", t_awa.id, "--as", "Awa")  # only a task's holder or mapper hands in files for it
    pcli("submit", fa, "--as", "Awa", "--task", t_awa.id)
    pcli("release", t_awa.id, "--as", "Awa")
    pcli("submit", fb, "--as", "Bakary")
    page = tmp_path / "report.html"
    res = pcli("report", "--json", "--html", page)
    data = json.loads(res.stdout)
    credit = data["credit"]
    assert credit["volunteers"]["Awa"]["buildings"] == 2 and credit["total"]["buildings"] == 3
    assert t_awa.id in {r["id"] for r in credit["ready_with_data"]}  # still READY: nobody said done
    assert [r["id"] for r in credit["mapped_without_data"]] == [t_done.id]
    assert credit["villages"]["Dianguirdé"]["buildings"] >= 2
    assert str(t_awa.id) in credit["tasks"] and credit["tasks"][str(t_awa.id)]["state"] == "READY"

    text = page.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []  # no temporary left
    parser = _Links()
    parser.feed(text)
    external = [u for u in parser.urls if re.match(r"\s*(https?:)?//", u)]
    assert external == ["https://www.openstreetmap.org/copyright"]
    assert not re.search(r"https?://(?!www\.openstreetmap\.org/copyright)", text)
    assert not {"script", "link", "img", "iframe", "object"} & parser.tags
    assert "url(" not in text and "@import" not in text
    assert "Awa" in text and "borehole" in text and "Marked mapped but no data received" in text
    assert "<svg" in text  # the small maps are inline

    # the human form prints the same figures
    res = pcli("report")
    assert "Awa" in res.stdout and "still READY" in res.stdout
    res = pcli("report", "--html", tmp_path / "r.txt", ok=False)
    assert "HTML" in res.stderr

    # in French: asked with --lang, or the project's language (init --lang fr)
    page_fr = tmp_path / "rapport.html"
    pcli("report", "--html", page_fr, "--lang", "fr")
    fr = page_fr.read_text(encoding="utf-8")
    assert "<html lang='fr'>" in fr and "Dianguirdé : bilan du mapathon" in fr
    assert "Bénévoles" in fr and "bâtiments ajoutés" in fr and "forage" in fr
    assert "Marquée cartographiée mais aucune donnée reçue" in fr and "À cartographier" in fr
    assert "Marked mapped" not in fr and "buildings added" not in fr and ">READY<" not in fr
    assert "Awa" in fr and "<svg" in fr
    from mapathon.project import open_project

    with open_project(gridded) as p, p.transaction():
        p.set_meta("lang", "fr")
    pcli("report", "--html", page)
    assert "bâtiments ajoutés" in page.read_text(encoding="utf-8")
    pcli("report", "--html", page, "--lang", "en")
    assert "buildings added" in page.read_text(encoding="utf-8")
    assert "--lang xx" in pcli("report", "--html", page, "--lang", "xx", ok=False).stderr
