"""Shared fixtures: real data paths, a CLI runner, ready-made projects, the two database backends.

Test modules marked ``pytestmark = pytest.mark.backends`` run every test twice: on SQLite (the
project folder's file) and on PostgreSQL (``$MAPATHON_TEST_PG``, default
``postgresql://127.0.0.1/test``). Each test run works in a database of its own on that server
(``mapathon_test_<pid>_<random>``, created at the first PostgreSQL test and dropped at the end), so two
runs at once never touch each other's schemas; every project a test creates gets a schema of its own
there, dropped after the test. Without a reachable PostgreSQL server the second run skips and says so.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

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


PG_SERVER_URL = os.environ.get("MAPATHON_TEST_PG", "postgresql://127.0.0.1/test")
_RUN_DB = f"mapathon_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
PG_URL = urlunsplit(urlsplit(PG_SERVER_URL)._replace(path="/" + _RUN_DB))
_pg_state: dict = {}


def _make_run_database() -> None:
    """Create this run's database; drop those left by runs on this machine that died."""
    import psycopg

    with psycopg.connect(PG_SERVER_URL, connect_timeout=3, autocommit=True) as c:
        for (name,) in c.execute("SELECT datname FROM pg_database WHERE datname LIKE 'mapathon_test_%'").fetchall():
            pid = name.split("_")[2]
            if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{_RUN_DB}"')
    _pg_state["made_db"] = True


def _drop_run_database() -> None:
    import psycopg

    with psycopg.connect(PG_SERVER_URL, connect_timeout=3, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{_RUN_DB}" WITH (FORCE)')


def pg_available() -> str | None:
    """None when the test PostgreSQL server answers, else why not."""
    if "why" not in _pg_state:
        try:
            import psycopg

            psycopg.connect(PG_SERVER_URL, connect_timeout=3).close()
            _make_run_database()
            _pg_state["why"] = None
        except Exception as e:  # noqa: BLE001 - any failure means: skip, and say why
            _pg_state["why"] = f"no PostgreSQL at {PG_SERVER_URL} ({str(e).strip().splitlines()[0] if str(e).strip() else e})"
    return _pg_state["why"]


def pg_schemas() -> set[str]:
    import psycopg

    with psycopg.connect(PG_URL) as c:
        return {r[0] for r in c.execute("SELECT nspname FROM pg_namespace")}


def drop_schemas(names) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as c:
        for schema in sorted(names):
            c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def pytest_configure(config):
    config.addinivalue_line("markers", "backends: run each test on SQLite and on PostgreSQL")
    config.addinivalue_line("markers", "sqlite_only: a test about the SQLite file itself")


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker("backends"):
        metafunc.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(autouse=True)
def backend(request, monkeypatch):
    """``"sqlite"`` or ``"postgresql"``: where the projects this test creates keep their state."""
    monkeypatch.delenv("MAPATHON_DB", raising=False)
    name = getattr(request, "param", "sqlite")
    if name == "sqlite":
        yield name
        return
    if request.node.get_closest_marker("sqlite_only"):
        pytest.skip("about the SQLite file itself")
    why = pg_available()
    if why:
        pytest.skip(why)
    before = pg_schemas()
    monkeypatch.setenv("MAPATHON_DB", PG_URL)
    try:
        yield name
    finally:
        made = pg_schemas() - before
        # templates are shared by the session's tests (foundation_helpers): dropped with the run's database
        drop_schemas(s for s in made if not s.startswith("tmpl_"))


@pytest.fixture(scope="module")
def module_servers():
    """Servers kept for a module's tests, one per backend ({backend: server}); each is a context
    manager already entered, exited at the end of the module."""
    running: dict = {}
    yield running
    for s in running.values():
        s.__exit__(None, None, None)


def pytest_sessionfinish(session):
    if _pg_state.get("made_db"):
        _drop_run_database()


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
