"""Shared fixtures: real data paths, a CLI runner, ready-made projects."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mapathon.cli import app

DATA = Path(__file__).parent / "data"
VILLAGES_CSV = DATA / "dianguirde-villages.csv"
LIECHTENSTEIN = DATA / "liechtenstein-2022-07-24.osm.pbf"
ANDORRA = DATA / "andorra-2019-02-23.osm.pbf"
ANDORRA_OSC = DATA / "andorra-2019-02-23-change.osc"
DIANGUIRDE_POIS = DATA / "dianguirde-area-pois-osm2019.osm.pbf"


class Cli:
    """Runs ``mapathon`` in-process (typer's CliRunner) with stdout and stderr apart."""

    def __init__(self, project: Path | None = None):
        self.runner = CliRunner()
        self.project = project

    def __call__(self, *args: str, ok: bool | None = True):
        argv = [str(a) for a in args]
        if self.project is not None and argv and argv[0] != "init":
            argv = ["--project", str(self.project), *argv]
        result = self.runner.invoke(app, argv, catch_exceptions=False, env={"COLUMNS": "200"})
        if ok is True:
            assert result.exit_code == 0, f"mapathon {' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
        elif ok is False:
            assert result.exit_code != 0, f"mapathon {' '.join(argv)} should have failed:\n{result.stdout}"
            assert "Traceback" not in result.stdout + result.stderr
        return result


@pytest.fixture
def cli():
    return Cli()


@pytest.fixture
def village_project(tmp_path) -> Path:
    """A Dianguirdé project (14 villages, 2 km radius), no grid yet."""
    folder = tmp_path / "proj"
    Cli()("init", folder, "--name", "Dianguirdé", "--aoi", VILLAGES_CSV, "--radius", "2000", "--organizer", "Mariam")
    return folder


@pytest.fixture
def gridded(village_project) -> Path:
    """The Dianguirdé project gridded at zoom 16."""
    Cli(village_project)("grid", "--zoom", "16")
    return village_project


@pytest.fixture
def pcli(gridded) -> Cli:
    """A CLI bound to the gridded Dianguirdé project."""
    return Cli(gridded)


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
