"""Geotagged photos: EXIF GPS written by Pillow, read back, attached to the nearest real
well of 2019, refused with one line when the position is unusable, exported for JOSM (GPX, GeoJSON)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import gpxpy
import osmium
import pytest
from PIL import Image

from mapathon.survey.photos import PhotoRefused, read_position

from conftest import DIANGUIRDE_POIS, Cli

pytestmark = pytest.mark.backends


def _dms(v: float):
    v = abs(v)
    d = int(v)
    m = int((v - d) * 60)
    s = (v - d - m / 60) * 3600
    return (Fraction(d), Fraction(m), Fraction(s).limit_denominator(10000))


def _jpeg(path: Path, lon=None, lat=None, *, lat_ref=True, when="2026:12:05 10:31:00", colour="red") -> Path:
    img = Image.new("RGB", (64, 48), colour)
    exif = Image.Exif()
    if when:
        exif[0x0132] = when
        exif.get_ifd(0x8769)[0x9003] = when
    if lon is not None:
        gps = exif.get_ifd(0x8825)
        if lat_ref:
            gps[1] = "N" if lat >= 0 else "S"
        gps[2] = _dms(lat)
        gps[3] = "E" if lon >= 0 else "W"
        gps[4] = _dms(lon)
    img.save(path, "JPEG", exif=exif)
    return path


def _wells():
    return [(o.id, o.location.lon, o.location.lat) for o in osmium.FileProcessor(str(DIANGUIRDE_POIS))
            if o.is_node() and o.tags.get("man_made") == "water_well"]


def test_position_read_back(tmp_path):
    p = _jpeg(tmp_path / "a.jpg", -9.0139489, 14.4931327)
    lon, lat, when = read_position(p)
    assert abs(lon + 9.0139489) < 1e-6 and abs(lat - 14.4931327) < 1e-6
    assert when == "2026-12-05T10:31:00"


@pytest.mark.parametrize("make, words", [
    (lambda d: _jpeg(d / "whatsapp.jpg"), "no GPS position"),
    (lambda d: _jpeg(d / "zero.jpg", 0.0, 0.0), "0,0"),
    (lambda d: _jpeg(d / "noref.jpg", -9.01, 14.49, lat_ref=False), "reference"),
    (lambda d: (d / "text.jpg").write_text("not a photo") and d / "text.jpg", "not a photo"),
])
def test_unusable_positions_are_refused(tmp_path, make, words):
    p = make(tmp_path)
    with pytest.raises(PhotoRefused) as e:
        read_position(p)
    assert words in str(e.value) and p.name in str(e.value)


def test_photos_add_attaches_and_exports(village_project, tmp_path):
    (wid, wlon, wlat), *_ = sorted(_wells())
    good = _jpeg(tmp_path / "puits.jpg", wlon + 0.00003, wlat)  # ~3 m east of the well
    far = _jpeg(tmp_path / "champ.jpg", -9.30, 14.70, colour="blue")
    bad = _jpeg(tmp_path / "whatsapp.jpg", colour="green")
    cli = Cli(village_project)
    gpx, gj = tmp_path / "photos.gpx", tmp_path / "photos.geojson"
    r = cli("photos", "add", good, far, bad, "--data", DIANGUIRDE_POIS, "--gpx", gpx, "--geojson", gj)
    assert f"node/{wid}" in r.stdout
    assert "whatsapp.jpg" in r.stderr and "no GPS position" in r.stderr
    stored = list((village_project / "photos").iterdir())
    assert len(stored) == 2 and {p.read_bytes() for p in stored} == {good.read_bytes(), far.read_bytes()}

    wpts = gpxpy.parse(gpx.read_text(encoding="utf-8")).waypoints
    assert sorted(w.name for w in wpts) == ["champ.jpg", "puits.jpg"]
    assert all(w.link and w.link.startswith("file://") for w in wpts)
    feats = json.loads(gj.read_text())["features"]
    by = {f["properties"]["file"]: f["properties"] for f in feats}
    assert by["puits.jpg"]["feature"] == f"node/{wid}" and by["champ.jpg"]["feature"] is None
    assert Path(by["puits.jpg"]["image"]).read_bytes() == good.read_bytes()

    # the same photo again: kept once; only refused photos: non-zero exit, one line each
    r = cli("photos", "add", good, "--data", DIANGUIRDE_POIS, "--json")
    assert json.loads(r.stdout)["photos"][0]["already"] is True
    r = cli("photos", "add", bad, ok=False)
    assert "whatsapp.jpg" in r.stderr


def test_a_photo_near_a_survey_point_is_attached_to_it(village_project, tmp_path):
    from mapathon.project import open_project
    from mapathon.survey.store import Submission, add_submission

    with open_project(village_project) as p:
        add_submission(p, Submission("uuid:s1", "water", "1", "Awa", "2026-12-05T10:00:00Z", -9.25, 14.65, 5,
                                     tags={"man_made": "water_well"}))
    photo = _jpeg(tmp_path / "forage.jpg", -9.25002, 14.65001)
    r = Cli(village_project)("photos", "add", photo, "--json")
    assert json.loads(r.stdout)["photos"][0]["feature"] == "survey:uuid:s1"
