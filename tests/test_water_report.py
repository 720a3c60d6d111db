"""The water-point report: states, houses far from a working point (checked against
pyproj.Geod), the CSV, GeoPackage and HTML outputs, on the real 2019 wells around Torodo."""

from __future__ import annotations

import base64
import csv
import html
import io
import re

import fiona
import numpy as np
import osmium
import pytest
from PIL import Image
from pyproj import Geod

from mapathon.survey.water import NOT_WORKING, UNKNOWN, WORKING, water_state

from conftest import DIANGUIRDE_POIS, Cli

pytestmark = pytest.mark.backends
GEOD = Geod(ellps="WGS84")


@pytest.mark.parametrize("tags, state", [
    ({"man_made": "water_well", "operational_status": "operational"}, WORKING),
    ({"man_made": "water_well", "operational_status": "needs_maintenance"}, WORKING),
    ({"man_made": "water_well", "operational_status": "broken"}, NOT_WORKING),
    ({"man_made": "water_well", "operational_status": "Non-operational"}, NOT_WORKING),
    ({"disused:man_made": "water_well"}, NOT_WORKING),
    ({"man_made": "water_well", "disused": "yes"}, NOT_WORKING),
    ({"man_made": "water_well"}, UNKNOWN),
])
def test_states(tags, state):
    assert water_state(tags) == state


def _data(path):
    """The real wells near Torodo: the first working, the second broken; houses near and far from the first."""
    wells = [(o.id, o.location.lon, o.location.lat) for o in osmium.FileProcessor(str(DIANGUIRDE_POIS))
             if o.is_node() and o.tags.get("man_made") == "water_well" and o.location.lon > -8.9]
    wells.sort(key=lambda w: w[0])
    ok_id, ok_lon, ok_lat = wells[0]
    parts, nid, wid = [], -1, -1
    houses = []
    for i, (oid, lon, lat) in enumerate(wells):
        status = {0: "operational", 1: "broken"}.get(i)
        extra = f"<tag k='operational_status' v='{status}'/>" if status else ""
        parts.append(f"<node id='{oid}' version='1' lat='{lat}' lon='{lon}'><tag k='man_made' v='water_well'/>"
                     f"{extra}</node>")
    for az, dist in [(0, 50), (90, 120), (200, 300), (45, 700), (135, 900)]:
        lon, lat, _ = GEOD.fwd(ok_lon, ok_lat, az, dist)
        houses.append((lon, lat))
        ids = []
        for dx, dy in [(0, 0), (0.0001, 0), (0.0001, 0.0001), (0, 0.0001)]:
            parts.append(f"<node id='{nid}' lat='{lat + dy}' lon='{lon + dx}'/>")
            ids.append(nid)
            nid -= 1
        parts.append(f"<way id='{wid}'>" + "".join(f"<nd ref='{r}'/>" for r in ids + [ids[0]])
                     + "<tag k='building' v='yes'/></way>")
        wid -= 1
    path.write_text("<?xml version='1.0' encoding='UTF-8'?>\n<osm version='0.6' generator='test'>\n"
                    + "\n".join(parts) + "\n</osm>\n", encoding="utf-8")
    # centres of the houses, and their distances to the working well (Geod)
    centres = [(lon + 0.00005, lat + 0.00005) for lon, lat in houses]
    d = [GEOD.inv(ok_lon, ok_lat, x, y)[2] for x, y in centres]
    return len(wells), d


def test_report_water_files(village_project, tmp_path):
    data = tmp_path / "torodo.osm"
    n_wells, dists = _data(data)
    cli = Cli(village_project)
    out = {ext: tmp_path / f"water.{ext}" for ext in ("html", "csv", "gpkg")}
    r = cli("report", "water", "--data", data, "--html", out["html"], "--csv", out["csv"], "--gpkg", out["gpkg"],
            "--lang", "fr")
    assert "Torodo" in r.stdout
    rows = {row["village"]: row for row in csv.DictReader(io.StringIO(out["csv"].read_text(encoding="utf-8")))}
    t = rows["Torodo"]
    expected_far = sum(1 for d in dists if d > 500)
    assert expected_far == 2
    assert (int(t["water_points"]), int(t["working"]), int(t["not_working"]), int(t["unknown"])) == \
        (n_wells, 1, 1, n_wells - 2)
    assert (int(t["houses"]), int(t["houses_far"])) == (5, expected_far)
    assert rows["TOTAL"]["water_points"] == str(n_wells)

    with fiona.open(out["gpkg"], layer="water_points") as src:
        states = sorted(f["properties"]["state"] for f in src)
    assert states.count("working") == 1 and states.count("not working") == 1
    with fiona.open(out["gpkg"], layer="far_houses") as src:
        far = [f["properties"]["nearest_working_m"] for f in src]
    assert np.allclose(sorted(far), sorted(d for d in dists if d > 500), atol=2)  # UTM metres vs geodesic
    assert set(fiona.listlayers(out["gpkg"])) == {"water_points", "far_houses", "villages"}

    page = out["html"].read_text(encoding="utf-8")
    page = html.unescape(page)
    assert "En panne" in page and "Maisons loin de l'eau" in page and "Torodo" in page
    pngs = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(pngs) == 1  # one map per village with something mapped (here Torodo); none for empty ones
    assert page.count("Aucun point d'eau cartographié") == 13
    img = Image.open(io.BytesIO(base64.b64decode(pngs[-1])))
    assert img.size == (420, 420)
    # the Torodo map shows a red (broken) and a green (working) point
    colours = {c for _n, c in img.getcolors(1 << 16)}
    assert (0xc6, 0x28, 0x28) in colours and (0x1b, 0x8a, 0x3a) in colours

    r = cli("report", "water", "--data", data, "--distance", "1000", "--json")
    assert '"houses_far": 0' in r.stdout


def test_report_water_refusals(village_project, tmp_path):
    cli = Cli(village_project)
    r = cli("report", "water", ok=False)
    assert "no merged data yet" in r.stderr
    r = cli("report", "water", "--data", DIANGUIRDE_POIS, "--distance", "0", ok=False)
    assert "--distance" in r.stderr
    r = cli("report", "wells", ok=False)
    assert "report wells" in r.stderr
    missing = tmp_path / "no" / "r.csv"
    r = cli("report", "water", "--data", DIANGUIRDE_POIS, "--csv", missing, ok=False)
    assert str(missing.parent) in r.stderr


def test_atlas_shows_water_point_states(tmp_path):
    """The atlas draws a badge on each water point (working / not working / unknown) and its legend says so."""
    import pypdf
    import pypdfium2 as pdfium

    data = tmp_path / "wells.osm"
    data.write_text("""<?xml version='1.0' encoding='UTF-8'?>
<osm version='0.6' generator='test'>
<node id='1' version='1' lat='14.4931' lon='-9.0161'><tag k='man_made' v='water_well'/>
  <tag k='operational_status' v='operational'/></node>
<node id='2' version='1' lat='14.4941' lon='-9.0141'><tag k='man_made' v='water_well'/>
  <tag k='operational_status' v='broken'/></node>
<node id='3' version='1' lat='14.4921' lon='-9.0131'><tag k='man_made' v='water_well'/><tag k='pump' v='manual'/></node>
</osm>
""", encoding="utf-8")
    out = tmp_path / "atlas.pdf"
    Cli()("--project", tmp_path / "none", "print", "--data", data, "--bbox=-9.020,14.490,-9.010,14.497",
          "--scale", "1:5000", "--paper", "A4", "--lang", "fr", "-o", out)
    text = " ".join(p.extract_text() or "" for p in pypdf.PdfReader(out).pages)
    for words in ("Point d'eau en état de marche", "Point d'eau en panne", "État du point d'eau inconnu"):
        assert words in text
    doc = pdfium.PdfDocument(str(out))
    try:
        pages = [np.asarray(doc[i].render(scale=150 / 72).to_pil().convert("RGB")).astype(int)
                 for i in range(len(doc))]
    finally:
        doc.close()
    h = pages[0].shape[0]

    def on_maps(rgb):  # pixels of that colour in the upper part of the pages (the map, not the legend)
        return sum(int((np.abs(p[: int(h * 0.6)] - np.array(rgb)).max(axis=2) <= 30).sum()) for p in pages)

    assert on_maps((0xc6, 0x28, 0x28)) > 10 and on_maps((0x1b, 0x8a, 0x3a)) > 10
