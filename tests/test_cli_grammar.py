"""One selection grammar: every command that takes --village or --tasks matches them the same way,
refuses them with the same words, and every option name means one thing."""

from __future__ import annotations

import json

import pytest
import typer.main

from conftest import DIANGUIRDE_POIS, Cli
from foundation_helpers import assert_error, query
from mapathon import selection
from mapathon.cli import app
from mapathon.cli_options import SHARED, flag_for
from mapathon.errors import MapathonError, NoSuchVillage, UsageMistake, describe

SAME = ("Dianguirdé", "dianguirde", "DIANGUIRDÉ", "  dianguirdé ")  # accented, unaccented, mis-cased, spaced
TYPO = "Dianguirdi"


def _village_commands(tmp_path):
    """Every command that takes --village, as argv that fail fast on a wrong village."""
    out = tmp_path / "out"
    return {
        "tasks": ["tasks", "--json"],
        "claim --next": ["claim", "--next", "--as", "Awa"],
        "status --map": ["status", "--map", out / "v.png"],
        "export data": ["export", "data", "-o", out / "w.geojson", "--data", DIANGUIRDE_POIS],
        "imagery plan": ["imagery", "plan", "--json"],
        "imagery fetch": ["imagery", "fetch", "--source", "drone"],
        "print": ["print", "--data", DIANGUIRDE_POIS, "-o", out / "a.pdf"],
    }


@pytest.fixture
def project(pcli):
    pcli("imagery", "add", "drone", "tms:https://drone.invalid/{z}/{x}/{y}.png")
    return pcli


def test_every_village_option_says_the_same_did_you_mean(project, tmp_path):
    (tmp_path / "out").mkdir()
    errors = {}
    for name, argv in _village_commands(tmp_path).items():
        r = project(*argv, "--village", TYPO, ok=False)
        line = assert_error(r, f"--village {TYPO}", "no such village", "did you mean 'Dianguirdé'?")
        assert r.exit_code == 1, name
        errors[name] = line.split(f"--village {TYPO}:", 1)[1].split("(")[0]
    assert len(set(errors.values())) == 1, errors


def test_every_village_option_matches_case_accents_and_spaces(project):
    tasks = {json.dumps([t["id"] for t in json.loads(project("tasks", "--json", "--village", v).stdout)]) for v in SAME}
    assert len(tasks) == 1 and tasks != {"[]"}
    plans = {json.loads(project("imagery", "plan", "--json", "--village", v).stdout)["rows"][0]["label"]
             for v in SAME}
    assert plans == {"Dianguirdé"}
    for v in SAME:  # a task is given in that village (then given back, for the next spelling)
        t = json.loads(project("claim", "--next", "--village", v, "--as", "Awa", "--json").stdout)
        assert "Dianguirdé" in t["villages"]
        released = json.loads(project("release", str(t["id"]), "--as", "Awa", "--json").stdout)
        assert released["state"] == "READY" and released["id"] == t["id"]


def test_every_tasks_option_reads_numbers_ranges_and_addresses(project, tmp_path):
    ts = json.loads(project("tasks", "--json").stdout)[:3]
    spellings = [",".join(str(t["id"]) for t in ts), f"{ts[0]['id']}-{ts[2]['id']}",
                 f"{ts[0]['key']},{ts[1]['id']}, {ts[2]['key']}"]
    assert [t["id"] for t in ts] == list(range(ts[0]["id"], ts[0]["id"] + 3))
    rows = {json.dumps([r["label"] for r in json.loads(project("imagery", "plan", "--json", "--tasks", s).stdout)["rows"]])
            for s in spellings}
    assert len(rows) == 1
    (tmp_path / "o").mkdir()
    for argv in (["imagery", "plan"], ["imagery", "fetch", "--source", "drone"],
                 ["print", "--data", DIANGUIRDE_POIS, "-o", tmp_path / "o" / "a.pdf"]):
        r = project(*argv, "--tasks", "3;4", ok=False)
        assert_error(r, "--tasks 3;4", "'3;4' is no task number")
        assert r.exit_code == 2
        r = project(*argv, "--tasks", "99999", ok=False)
        assert_error(r, "--tasks 99999", "no such task(s): 99999")


def test_selection_functions():
    assert selection.parse_tasks("3,5,9-12") == [3, 5, 9, 10, 11, 12]
    assert selection.parse_tasks("16/31126/30100") == ["16/31126/30100"]
    for bad in ("7-3", "1-200000", "x", ",", "16/1"):
        with pytest.raises(UsageMistake):
            selection.parse_tasks(bad)
    assert selection.parse_bbox("-8.9,14.4,-8.7,14.6") == (-8.9, 14.4, -8.7, 14.6)
    for bad in ("1,2,3", "nan,1,2,3", "0,0,inf,1", "170,0,-170,1", "0,10,1,5", "0,-85,1,0", "-190,0,0,1"):
        with pytest.raises(UsageMistake) as e:
            selection.parse_bbox(bad)
        assert e.value.field == "bbox"
    assert selection.match_village(["Méréla", "M'Beidi"], "m beidi") == "M'Beidi"
    with pytest.raises(NoSuchVillage) as e:
        selection.match_village(["Méréla", "Torodo"], "Torodoo")
    assert e.value.suggestion == "Torodo" and e.value.field == "village"


def test_library_errors_name_the_field_and_the_cli_the_flag():
    e = NoSuchVillage("Dianguirde X", suggestion="Dianguirdé", choices=["Dianguirdé"])
    assert str(e).startswith("village 'Dianguirde X': no such village; did you mean 'Dianguirdé'?")
    assert "--" not in str(e)
    assert describe(e) == ("village", str(e))
    assert e.with_label(flag_for(e.field)).startswith("--village Dianguirde X: no such village")
    assert flag_for("max_size") == "--max-size" and flag_for("as") == "--as"
    assert describe(MapathonError("plain")) == (None, "plain")


def test_exit_codes(pcli):
    assert pcli("claim", "1", ok=False).exit_code == 2                         # click: --as missing
    assert pcli("claim", "1", "--next", "--as", "Awa", ok=False).exit_code == 2  # a wrong combination
    assert pcli("imagery", "plan", "--village", "Torodo", "--tasks", "1", ok=False).exit_code == 2
    pcli("claim", "1", "--as", "Awa")
    pcli("claim", "5", "--as", "Moussa")
    r = pcli("done", "1", "--as", "Moussa", ok=False)                        # refused: not their task
    assert r.exit_code == 3
    assert pcli("history", "999999", ok=False).exit_code == 1                  # a failure


def test_task_changing_commands_print_the_task_as_json(pcli):
    t = json.loads(pcli("claim", "2", "--as", "Awa", "--json").stdout)
    assert t["id"] == 2 and t["state"] == "LOCKED_FOR_MAPPING" and t["locked_by"] == "Awa"
    t = json.loads(pcli("done", "2", "--as", "Awa", "--json").stdout)
    assert t["state"] == "MAPPED" and set(t) == set(json.loads(pcli("tasks", "--json").stdout)[0])


def test_grid_as_defaults_to_the_only_organizer(village_project):
    cli = Cli(village_project)
    assert json.loads(cli("grid", "--zoom", "15", "--json").stdout)["tasks"] > 0
    assert [r["actor"] for r in query(village_project, "SELECT actor FROM events WHERE action = 'grid.create'")] \
        == ["Mariam"]


def _options():
    """{flag: [(command, help)]} over every command, hidden aliases left out."""
    root = typer.main.get_command(app)
    uses: dict[str, list[tuple[str, str]]] = {}

    def walk(cmd, path):
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])
        for p in cmd.params:
            if p.param_type_name == "option" and not getattr(p, "hidden", False):
                for flag in p.opts:
                    uses.setdefault(flag, []).append((" ".join(path) or "mapathon", p.help or ""))

    walk(root, [])
    return uses


def test_every_option_name_has_one_meaning():
    shared = {flag: s for s in SHARED.values() for flag in s.flags}
    for flag, uses in _options().items():
        commands = {c for c, _ in uses}
        if flag in shared:
            for cmd, help_ in uses:
                assert help_.startswith(shared[flag].meaning), f"{cmd} {flag}: {help_!r}"
        else:
            assert len(commands) == 1, f"{flag} is on {sorted(commands)}: define it once in cli_options.SHARED"


def test_old_spellings_still_work_but_are_hidden():
    uses = _options()
    assert "--report" not in uses and "--findings" not in uses
    root = typer.main.get_command(app)
    merge_flags = {f for p in root.commands["merge"].params for f in p.opts}
    assert {"--report", "--findings", "--html", "--geojson"} <= merge_flags


def _leaf_commands():
    root = typer.main.get_command(app)
    out = {}

    def walk(cmd, path):
        if getattr(cmd, "commands", None):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        else:
            out[" ".join(path)] = {f for p in cmd.params for f in getattr(p, "opts", [])}

    walk(root, [])
    return out


def test_every_command_has_json_but_the_servers():
    missing = [c for c, flags in _leaf_commands().items() if "--json" not in flags]
    assert sorted(missing) == ["imagery serve", "serve"]  # they run until stopped; they print their address


def test_json_of_the_other_commands(village_project, tmp_path):
    cli = Cli(village_project)
    assert json.loads(cli("lang", "--json").stdout) == {"lang": "en"}
    v = json.loads(cli("volunteer", "add", "Awa Traoré", "--validator", "--as", "Mariam", "--json").stdout)
    assert v == {"name": "Awa Traoré", "osm_user": None, "roles": "validator", "validator": True, "organizer": False,
                 "created": True}
    assert v["name"] in [x["name"] for x in json.loads(cli("volunteer", "list", "--json").stdout)]
    r = json.loads(cli("volunteer", "rename", "Awa Traoré", "Awa Traore Diallo", "--as", "Mariam", "--json").stdout)
    assert r["name"] == "Awa Traore Diallo" and r["former_name"] == "Awa Traoré"
    cli("grid", "--zoom", "15")
    e = json.loads(cli("export", "tasks", "-o", tmp_path / "t.geojson", "--json").stdout)
    assert e["tasks"] > 0 and (tmp_path / "t.geojson").is_file()
    d = json.loads(cli("export", "data", "-o", tmp_path / "w.csv", "--data", DIANGUIRDE_POIS, "--json").stdout)
    assert d["total"] == sum(d["counts"].values()) > 0
    assert json.loads(cli("imagery", "add", "drone", "tms:https://drone.invalid/{z}/{x}/{y}.png", "--json").stdout
                      )["name"] == "drone"
    assert json.loads(cli("imagery", "default", "drone", "--json").stdout)["name"] == "drone"


def test_ctrl_c_exits_130_with_one_line(pcli, monkeypatch):
    from mapathon.tasks import lifecycle

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(lifecycle, "list_tasks", interrupted)
    r = pcli("tasks", ok=False)
    assert r.exit_code == 130
    assert r.stderr.strip() == "Interrupted: nothing more was done."


def test_the_examples_in_the_docstrings_hold():
    import doctest

    import mapathon.errors
    import mapathon.selection

    for module in (mapathon.selection, mapathon.errors):
        failed, tried = doctest.testmod(module)
        assert failed == 0 and (tried > 0 or module is mapathon.errors)
