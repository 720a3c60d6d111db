"""Survey submissions conflated into the merge: matching on the real 2019 wells of the
Dianguirdé area with simulated GPS noise, then through 'survey merge' and the ordinary 'merge'."""

from __future__ import annotations

import math

import numpy as np
import osmium
import pytest

from mapathon import geo
from mapathon.project import open_project
from mapathon.survey.conflate import Candidates, match, public_tags, survey_merge
from mapathon.survey.store import Submission, add_submission

from conftest import DIANGUIRDE_POIS, Cli

pytestmark = pytest.mark.backends


def Sub(instance_id, surveyor, lon, lat, accuracy_m, tags, picked_feature=None):
    return Submission(instance_id, "water", "1", surveyor, "2026-12-05T10:00:00Z", lon, lat, accuracy_m,
                      answers={"respondent_phone": "76 12 34 56"}, tags=tags, picked_feature=picked_feature)


def _wells():
    c = Candidates.from_file(DIANGUIRDE_POIS)
    wells = [j for j, n in enumerate(c.nodes) if n.tags.get("man_made") == "water_well"]
    return c, wells


def _simulate(c, wells, rounds=5, seed=15, pick=False):
    rng = np.random.default_rng(seed)
    back = geo.transformer(f"EPSG:{c.epsg}", "EPSG:4326")
    subs, truth = [], []
    for r in range(rounds):
        for j in wells:
            d, a = rng.uniform(3, 15), rng.uniform(0, 2 * math.pi)
            x, y = c.xy[j] + d * np.array([math.cos(a), math.sin(a)])
            lon, lat = back.transform(x, y)
            n = c.nodes[j]
            subs.append(Sub(f"uuid:{r}-{n.id}", "Awa", lon, lat, math.ceil(d),
                            {"man_made": "water_well", "operational_status": "ok"},
                            picked_feature=f"node/{n.id}" if pick else None))
            truth.append(n.id)
    return subs, truth


def test_noisy_surveys_of_the_real_wells_match_the_right_one_or_are_findings():
    c, wells = _wells()
    assert len(wells) == 59
    subs, truth = _simulate(c, wells)
    got = match(subs, c)
    right = wrong = ambiguous = other = 0
    for (res, node, _d, cands), tid in zip(got, truth):
        if res == "matched":
            right += node.id == tid
            wrong += node.id != tid
        elif res == "ambiguous":
            ambiguous += 1
            assert f"node/{tid}" in {f"node/{o.id}" for o in cands}  # the right well is among those named
        else:
            other += 1
    assert wrong == 0  # none silently merged into the wrong well
    assert other == 0  # the right well is always within the accuracy: never "new"
    assert right / (right + wrong) >= 0.95
    assert right + ambiguous == len(subs)
    assert right >= 0.5 * len(subs)  # wells 2-30 m apart are many in this area: the rest are findings


def test_the_well_picked_on_the_form_wins_even_among_close_wells():
    c, wells = _wells()
    subs, truth = _simulate(c, wells, rounds=2, pick=True)
    got = match(subs, c)
    assert all(res == "matched" and node.id == tid for (res, node, _d, _c), tid in zip(got, truth))


def test_people_and_phone_numbers_stay_out_of_the_tags():
    t = public_tags({"man_made": "water_well", "phone": "+223 76 12 34 56", "contact:name": "Moussa",
                     "caretaker": "Fanta", "note": "appeler le 76 12 34 56", "depth": "12", "name": "Puits Sud"})
    assert t == {"man_made": "water_well", "depth": "12", "name": "Puits Sud"}


def _node(c, oid):
    return next(n for n in c.nodes if n.id == oid)


def test_survey_merge_feeds_the_merge_and_credits_the_surveyors(village_project, tmp_path):
    c, wells = _wells()
    named = next(c.nodes[j] for j in wells if c.nodes[j].tags.get("name"))  # "forage"
    lone = next(c.nodes[j] for j in wells if not c.nodes[j].tags.get("name"))
    lon, lat = lone.lon / 1e7, lone.lat / 1e7
    subs = [
        Sub("uuid:a", "Awa Traoré", lon + 0.00002, lat, 5,
            {"man_made": "water_well", "operational_status": "broken", "pump": "manual", "phone": "76123456",
             "operator:person": "Moussa"}, picked_feature=f"node/{lone.id}"),
        Sub("uuid:b", "Seydou Keïta", named.lon / 1e7, named.lat / 1e7, 8,
            {"man_made": "water_well", "name": "Puits du marché", "seasonal": "no"},
            picked_feature=f"node/{named.id}"),
        Sub("uuid:c", "Seydou Keïta", -9.2, 14.6, 6, {"man_made": "water_well", "drinking_water": "yes"}),
    ]
    with open_project(village_project) as p:
        res = survey_merge(p, subs, base=DIANGUIRDE_POIS)
    counts = res.counts()
    assert counts == {"matched": 2, "new": 1}
    differs = [f for f in res.findings if f.kind == "value differs"]
    assert [(f.key, f.osm_value, f.survey_value) for f in differs] == [("name", "forage", "Puits du marché")]
    assert {c.volunteer for c in res.contributions} == {"Awa Traoré", "Seydou Keïta"}

    # a second run conflates nothing new and records nothing twice
    with open_project(village_project) as p:
        again = survey_merge(p, subs, base=DIANGUIRDE_POIS)
    assert again.skipped == 3 and again.contributions == []

    cli = Cli(village_project)
    out = tmp_path / "merged.osm.pbf"
    osc = tmp_path / "changes.osc"
    r = cli("merge", "--base", DIANGUIRDE_POIS, "-o", out, "--upload", osc, "--json")
    assert "Awa Traoré" in r.stdout and "Seydou Keïta" in r.stdout  # credited
    text = osc.read_text(encoding="utf-8")
    assert "Moussa" not in text and "76123456" not in text
    mod = {o.id: dict(o.tags) for o in osmium.FileProcessor(str(osc)) if o.is_node()}
    assert mod[lone.id]["operational_status"] == "broken" and mod[lone.id]["pump"] == "manual"
    assert mod[named.id] == {"man_made": "water_well", "name": "forage", "seasonal": "no"}  # name kept for review
    new = [t for i, t in mod.items() if i < 0]
    assert new == [{"drinking_water": "yes", "man_made": "water_well"}]


def test_survey_merge_command_writes_findings(village_project, tmp_path):
    c, wells = _wells()
    subs, _truth = _simulate(c, wells, rounds=1)
    with open_project(village_project) as p:
        for s in subs:
            add_submission(p, s)
    cli = Cli(village_project)
    geojson = tmp_path / "findings.geojson"
    r = cli("survey", "merge", "--data", DIANGUIRDE_POIS, "--geojson", geojson)
    assert "contribution" in r.stdout and "ambiguous" in r.stdout
    import json

    feats = json.loads(geojson.read_text())["features"]
    assert feats and all(f["properties"]["kind"] == "ambiguous" for f in feats)
    bad = cli("survey", "merge", "--data", tmp_path / "nope.osm.pbf", ok=False)
    assert "nope.osm.pbf" in bad.stderr
