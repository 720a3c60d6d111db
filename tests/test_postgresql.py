"""The PostgreSQL backend itself: where a project lives, copies both ways, migrations, errors.

Every other project test also runs on PostgreSQL (modules marked ``backends``); these are about
what only PostgreSQL has: URLs and schemas, the folder's ``mapathon.postgresql``, several
projects in one database, upgrades, and the server going away. Read back with psycopg directly.
"""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from conftest import PG_URL, VILLAGES_CSV, Cli, drop_schemas, pg_available, pg_schemas
from foundation_helpers import assert_error

from mapathon import store
from mapathon.project import open_project
from mapathon.sync import clone_project, export_bundle, import_bundle

pytestmark = pytest.mark.skipif(pg_available() is not None, reason=str(pg_available()))


@pytest.fixture
def schemas(monkeypatch):
    """Schemas made by the test, dropped afterwards; MAPATHON_DB unset (each test says what it wants)."""
    monkeypatch.delenv("MAPATHON_DB", raising=False)
    before = pg_schemas()
    yield
    drop_schemas(pg_schemas() - before)


def _init(folder, *db, name="Dianguirdé", ok=True):
    return Cli()(*db, "init", folder, "--name", name, "--aoi", VILLAGES_CSV, "--radius", "2000",
                 "--organizer", "Mariam", ok=ok)


def _pg(schema: str, sql: str, args=()):
    with psycopg.connect(PG_URL) as c:
        c.execute(f'SET search_path TO "{schema}"')
        return c.execute(sql, args).fetchall()


def test_init_in_a_named_schema_and_the_folder_remembers_it(tmp_path, schemas):
    schema = f"dg_{uuid.uuid4().hex[:8]}"
    hostdb = PG_URL.split("://", 1)[1]  # host/database of this run
    url = f"postgresql://postgres:secret@{hostdb}?schema={schema}"
    folder = tmp_path / "dg"
    r = _init(folder, "--db", url)
    assert f"schema={schema}" in r.stdout and "secret" not in r.stdout
    # the folder holds no SQLite file, only where the state is (never the password)
    assert sorted(f.name for f in folder.iterdir()) == ["mapathon.postgresql"]
    noted = (folder / "mapathon.postgresql").read_text()
    assert noted.strip() == f"postgresql://postgres@{hostdb}?schema={schema}"
    # later commands need only the folder
    pcli = Cli(folder)
    pcli("grid", "--zoom", "16")
    pcli("claim", "5", "--as", "Awa")
    assert _pg(schema, "SELECT state FROM tasks WHERE id = 5") == [("LOCKED_FOR_MAPPING",)]
    assert _pg(schema, "SELECT actor, action FROM events ORDER BY seq")[-1] == ("Awa", "claim.mapping")
    # versioned migrations, recorded
    assert [v for v, in _pg(schema, "SELECT version FROM schema_migrations ORDER BY version")] == \
        list(range(1, store.SCHEMA_VERSION + 1))
    # --db with the schema works from anywhere, no folder needed
    st = json.loads(Cli()("--db", f"{PG_URL}?schema={schema}", "--project", tmp_path / "elsewhere",
                          "status", "--json").stdout)
    assert st["overall"]["states"]["LOCKED_FOR_MAPPING"] == 1


def test_several_projects_in_one_database_stay_apart(tmp_path, schemas, monkeypatch):
    monkeypatch.setenv("MAPATHON_DB", PG_URL)
    _init(tmp_path / "a", name="Dianguirdé")
    _init(tmp_path / "b", name="Dianguirdé")  # same name: a schema of its own
    a = (tmp_path / "a" / "mapathon.postgresql").read_text().strip()
    b = (tmp_path / "b" / "mapathon.postgresql").read_text().strip()
    assert a != b and "schema=dianguirde_" in a
    Cli(tmp_path / "a")("grid", "--zoom", "16")
    with open_project(tmp_path / "b") as p:
        assert p.conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 0
    with open_project(tmp_path / "a") as p:
        assert p.conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] > 100


def test_url_and_server_errors_are_one_line(tmp_path, schemas):
    r = _init(tmp_path / "x", "--db", "mysql://127.0.0.1/test", ok=False)
    assert_error(r, "--db mysql://127.0.0.1/test", "postgresql://")
    r = _init(tmp_path / "x", "--db", "postgresql://127.0.0.1:1/test?schema=x1", ok=False)
    assert_error(r, "127.0.0.1:1", "cannot connect")
    r = _init(tmp_path / "x", "--db", "postgresql://127.0.0.1/test?schema=Bad-Name", ok=False)
    assert_error(r, "schema", "lower-case")
    assert not (tmp_path / "x").exists()
    # a schema that exists is never taken over
    schema = f"dg_{uuid.uuid4().hex[:8]}"
    _init(tmp_path / "one", "--db", f"{PG_URL}?schema={schema}")
    r = _init(tmp_path / "two", "--db", f"{PG_URL}?schema={schema}", ok=False)
    assert_error(r, schema, "already exists")
    assert not (tmp_path / "two").exists()
    # a schema that does not exist
    r = Cli()("--db", f"{PG_URL}?schema=nothing_here_{uuid.uuid4().hex[:6]}", "status", ok=False)
    assert_error(r, "no such project")
    # a URL without a schema names no project
    r = Cli()("--db", PG_URL, "--project", tmp_path / "empty", "status", ok=False)
    assert_error(r, "not a mapathon project")


def test_the_server_going_away_is_one_line_and_loses_nothing(tmp_path, schemas):
    schema = f"dg_{uuid.uuid4().hex[:8]}"
    _init(tmp_path / "dg", "--db", f"{PG_URL}?schema={schema}")
    pcli = Cli(tmp_path / "dg")
    pcli("grid", "--zoom", "16")
    # the tables vanish under the project (as if the server were reset): one line, no traceback
    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute(f'ALTER TABLE "{schema}".events RENAME TO events_gone')
    r = pcli("claim", "5", "--as", "Awa", ok=False)
    assert_error(r, "PostgreSQL", "events")
    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute(f'ALTER TABLE "{schema}".events_gone RENAME TO events')
    # the claim was one transaction: nothing of it stayed
    assert _pg(schema, "SELECT state FROM tasks WHERE id = 5") == [("READY",)]
    pcli("claim", "5", "--as", "Awa")


def test_an_older_schema_is_upgraded_and_a_newer_one_refused(tmp_path, schemas):
    schema = f"old_{uuid.uuid4().hex[:8]}"
    url = f"{PG_URL}?schema={schema}"
    _init(tmp_path / "dg", "--db", url)
    # take the project back to schema 3 (before the events_task_ts index of migration 4)
    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute(f'DROP INDEX "{schema}".events_task_ts')
        c.execute(f'DROP TABLE "{schema}".volunteer_aliases')  # and the table of migration 5
        c.execute(f'DROP TABLE "{schema}".survey_submissions')  # and the table of migration 6 (survey)
        c.execute(f'DROP TABLE "{schema}".marks')  # and the table of migration 7 (scan marks)
        c.execute(f'DELETE FROM "{schema}".schema_migrations WHERE version >= 4')
    with open_project(tmp_path / "dg") as p:
        assert store.schema_version(p.conn) == store.SCHEMA_VERSION
    assert _pg(schema, "SELECT indexname FROM pg_indexes WHERE indexname = 'events_task_ts' AND schemaname = %s",
               (schema,))
    assert _pg(schema, "SELECT 1 FROM information_schema.tables WHERE table_name = 'volunteer_aliases' "
                       "AND table_schema = %s", (schema,))
    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute(f"INSERT INTO \"{schema}\".schema_migrations VALUES ({store.SCHEMA_VERSION + 1}, 'later')")
    r = Cli(tmp_path / "dg")("status", ok=False)
    assert_error(r, "newer mapathon", f"schema {store.SCHEMA_VERSION + 1}")


def test_a_shared_server_project_copied_to_a_usb_stick_and_back(tmp_path, schemas):
    """The shared server (PostgreSQL) and a site without internet (SQLite) exchange their work."""
    schema = f"srv_{uuid.uuid4().hex[:8]}"
    _init(tmp_path / "server", "--db", f"{PG_URL}?schema={schema}")
    Cli(tmp_path / "server")("grid", "--zoom", "16")
    with open_project(tmp_path / "server") as srv:
        usb = clone_project(srv, tmp_path / "bamako", site_name="Bamako")
        assert usb.db_url is None and (tmp_path / "bamako" / "mapathon.sqlite").is_file()
        n = usb.conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
        assert n == srv.conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
        usb.close()
    Cli(tmp_path / "bamako")("claim", "7", "--as", "Awa")
    Cli(tmp_path / "bamako")("done", "7", "--as", "Awa")
    Cli(tmp_path / "server")("claim", "9", "--as", "Moussa")
    with open_project(tmp_path / "bamako") as b, open_project(tmp_path / "server") as s:
        export_bundle(b, tmp_path / "b.zip")
        export_bundle(s, tmp_path / "s.zip")
        import_bundle(s, tmp_path / "b.zip")
        import_bundle(b, tmp_path / "s.zip")
        q = "SELECT id, state FROM tasks WHERE state != 'READY' ORDER BY id"
        assert [tuple(r) for r in s.conn.execute(q)] == [tuple(r) for r in b.conn.execute(q)] == \
            [(7, "MAPPED"), (9, "LOCKED_FOR_MAPPING")]


def test_a_folder_project_moved_to_a_shared_server(tmp_path, schemas):
    _init(tmp_path / "usb")
    Cli(tmp_path / "usb")("grid", "--zoom", "16")
    Cli(tmp_path / "usb")("claim", "3", "--as", "Awa")
    schema = f"moved_{uuid.uuid4().hex[:8]}"
    r = Cli(tmp_path / "usb")("sync", "clone", tmp_path / "server", "--to-db", f"{PG_URL}?schema={schema}",
                               "--site-name", "Server")
    assert f"schema={schema}" in r.stdout
    assert not (tmp_path / "server" / "mapathon.sqlite").exists()
    assert _pg(schema, "SELECT state FROM tasks WHERE id = 3") == [("LOCKED_FOR_MAPPING",)]
    # new rows continue after the copied ids (identity columns were moved on)
    Cli(tmp_path / "server")("volunteer", "add", "Fatou")
    ids = [i for i, in _pg(schema, "SELECT id FROM volunteers ORDER BY id")]
    assert len(ids) == len(set(ids)) == 3
    seqs = [s for s, in _pg(schema, "SELECT seq FROM events ORDER BY seq")]
    assert len(seqs) == len(set(seqs))
    # the copy is a site of its own, with its own room
    assert _pg(schema, "SELECT value FROM meta WHERE key = 'site_name'") == [("Server",)]
    # a copy that fails leaves no schema behind
    r = Cli(tmp_path / "usb")("sync", "clone", tmp_path / "again", "--to-db", f"{PG_URL}?schema={schema}", ok=False)
    assert_error(r, "already exists")
    assert not (tmp_path / "again").exists()


def test_sql_translation_keeps_literals():
    assert store.pg_sql("SELECT ? , :now, 'a:b ? %', \"x\" FROM t WHERE a LIKE 'c.%'") == \
        "SELECT %s , %(now)s, 'a:b ? %%', \"x\" FROM t WHERE a LIKE 'c.%%'"
    assert "BYTEA" in store.pg_ddl("geom BLOB NOT NULL") and "WITHOUT ROWID" not in store.pg_ddl(") WITHOUT ROWID;")
