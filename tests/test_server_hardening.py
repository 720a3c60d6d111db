"""The room server's limits, in the process (the ASGI application, no HTTP server): task numbers no
task can have, JSON nested too deep, sign-ins that expire, new names limited per address."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from conftest import Cli
from foundation_helpers import copy_project, query, village_template
from mapathon.server.app import create_app
from test_server_writer import call

TOKEN = "tok"
JS = {"Content-Type": "application/json"}
BIG = [2 ** 63, 2 ** 63 - 1, 10 ** 30, 0]


@pytest.fixture
def folder(tmp_path_factory):
    f = copy_project(village_template(tmp_path_factory, 16), tmp_path_factory.mktemp("hard") / "p")
    Cli(f)("volunteer", "add", "Fanta", "--validator", "--as", "Mariam")
    return f


def run(app, scenario):
    async def main():
        try:
            return await asyncio.wait_for(scenario(), 120)
        finally:
            app.state.room.close()

    return asyncio.run(main())


async def join(app, name, client="127.0.0.1", headers=None):
    st, _, body, hdrs = await call(app, "POST", "/api/join", {**JS, **(headers or {})},
                                   json.dumps({"name": name}).encode(), client=client, full=True)
    return st, json.loads(body), hdrs


@pytest.mark.backends  # PostgreSQL's integers stop at 2**63 - 1 too
def test_task_numbers_no_task_can_have_are_404_on_every_route(folder):
    app = create_app(folder, token=TOKEN)
    routes = [("GET", "/api/tasks/{}"), ("GET", "/api/tasks/{}/editors"), ("POST", "/api/tasks/{}/claim"),
              ("POST", "/api/tasks/{}/release"), ("POST", "/api/tasks/{}/done"),
              ("POST", "/api/tasks/{}/badimagery"), ("POST", "/api/tasks/{}/validate"),
              ("POST", "/api/tasks/{}/upload"), ("POST", "/api/organizer/tasks/{}/reset"),
              ("POST", "/api/organizer/tasks/{}/release"), ("POST", "/api/organizer/tasks/{}/split")]

    async def scenario():
        st, me, _ = await join(app, "Fanta")
        assert st == 200
        h = {"X-Session": me["token"], "X-Organizer-Token": TOKEN}
        out = []
        for method, path in routes:
            body = b'{"accept": true}' if path.endswith("validate") else b"<osm/>" if path.endswith("upload") else b""
            for n in BIG:
                for reference in (False, True):  # the fast path and FastAPI's routes
                    st, _, got = await call(app, method, path.format(n), {**h, **JS}, body, reference=reference)
                    out.append((method, path, n, reference, st, json.loads(got)))
        return out

    for method, path, n, reference, st, got in run(app, scenario):
        assert st == 404, (method, path, n, reference, st, got)
        assert got == {"detail": f"Task {n}: no such task."}, (method, path, got)


def nested(depth: int) -> bytes:
    return b'{"comment": ' + b"[" * depth + b"]" * depth + b"}"


def test_json_nested_too_deep_is_400_on_both_paths(folder):
    app = create_app(folder, token=TOKEN)

    async def scenario():
        _, me, _ = await join(app, "Fanta")
        h = {**JS, "X-Session": me["token"]}
        out = []
        for path in ("/api/claim-next", "/api/tasks/3/release", "/api/join", "/api/tasks/3/validate",
                     "/api/organizer/validators"):
            for depth in (20_000, 900, 40):  # 900: parsed, then the validation error's rendering recursed
                st, _, got = await call(app, "POST", path, {**h, "X-Organizer-Token": TOKEN}, nested(depth))
                out.append((path, depth, st, json.loads(got)))
        # a deep-looking string is no nesting
        st, _, _ = await call(app, "POST", "/api/tasks/3/claim", h)
        assert st == 200
        st, _, got = await call(app, "POST", "/api/tasks/3/release", h,
                                json.dumps({"comment": "[" * 1000}).encode())
        out.append(("string", 0, st, json.loads(got)))
        return out

    for path, depth, st, got in run(app, scenario):
        if path == "string":
            assert st == 200 and got["state"] == "READY"
            continue
        assert st == 400, (path, depth, st, got)
        assert got == {"detail": "This request nests more than 32 levels deep: it is not one of this server's."}


def test_new_names_are_limited_per_address(folder):
    Cli(folder)("volunteer", "add", "Known Name", "--as", "Mariam")
    app = create_app(folder, token=TOKEN)

    async def scenario():
        lan = "192.168.1.23"
        for name in ("Awa", "Bala", "Chaka", "Dado", "Ema", "Fodé", "Gaoussou", "Rokia", "Issa", "Jeneba"):
            st, got, _ = await join(app, name, client=lan)
            assert st == 200, got
        st, got, hdrs = await join(app, "Kadiatou", client=lan)
        assert st == 429 and "new names from this computer" in got["detail"], got
        assert 1 <= int(hdrs[b"retry-after"]) <= 60
        # a known name, another computer, the organizer, the server's own computer: not limited
        assert (await join(app, "Known Name", client=lan))[0] == 200
        assert (await join(app, "Lamine", client="192.168.1.24"))[0] == 200
        assert (await join(app, "Moussa", client=lan, headers={"X-Organizer-Token": TOKEN}))[0] == 200
        assert (await join(app, "Ndeye"))[0] == 200
        # a minute later, the address may again
        room = app.state.room
        now = time.time() + 61
        room.sessions.clock = lambda: now
        assert (await join(app, "Kadiatou", client=lan))[0] == 200

    run(app, scenario)
    names = {r[0] for r in query(folder, "SELECT name FROM volunteers")}
    assert {"Kadiatou", "Lamine", "Moussa", "Ndeye", "Known Name"} <= names


@pytest.mark.backends
def test_sign_ins_unused_for_hours_expire(folder):
    app = create_app(folder, token=TOKEN, session_hours=12)
    room = app.state.room
    clock = [time.time()]
    room.sessions.clock = lambda: clock[0]

    async def scenario():
        _, awa, _ = await join(app, "Awa")
        _, bala, _ = await join(app, "Bala")
        a, b = {"X-Session": awa["token"]}, {"X-Session": bala["token"]}
        clock[0] += 11 * 3600
        assert (await call(app, "GET", "/api/me", a))[0] == 200  # used: Awa's stays
        clock[0] += 2 * 3600  # Bala's: 13 hours without use
        assert (await call(app, "GET", "/api/me", a))[0] == 200
        st, _, got = await call(app, "GET", "/api/me", b)
        assert st == 401 and json.loads(got)["detail"] == \
            "Your sign-in expired after 12 hours without use; type your name again."
        st, _, got = await call(app, "POST", "/api/claim-next", b)  # the fast path too
        assert st == 401 and "expired" in json.loads(got)["detail"]
        # the name is free again, from another browser; Awa's is still bound
        st, again, _ = await join(app, "Bala")
        assert st == 200 and (await call(app, "GET", "/api/me", {"X-Session": again["token"]}))[0] == 200
        assert (await join(app, "Awa"))[0] == 409
        # expired sign-ins are deleted (at a sign-in, at most once a minute)
        clock[0] += 13 * 3600
        assert (await join(app, "Chaka"))[0] == 200

    run(app, scenario)
    assert [r[0] for r in query(folder, "SELECT volunteer FROM room_sessions")] == ["Chaka"]


def test_serve_refuses_bad_session_options(folder):
    r = Cli(folder)("serve", "--session-hours", "0", "--port", "1", ok=False)
    assert "--session-hours 0: must be more than 0" in r.stderr + r.stdout
