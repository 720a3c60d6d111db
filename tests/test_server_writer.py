"""The room server's writer and fast path, in the process (no HTTP server):

* group commit: changes queued together share one COMMIT, each in its own savepoint; a refused
  change is undone alone and gets its own error; when something fails below the rules (a bug, the
  database, the COMMIT), the whole group is rolled back and each change runs again alone, once;
* the fast path of the claim requests answers exactly as the FastAPI routes do.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading

import pytest
from fastapi import FastAPI, HTTPException

from conftest import Cli
from foundation_helpers import copy_project, query, village_template
from mapathon.project import open_project
from mapathon.errors import ForbiddenTransition, MapathonError
from mapathon.server import writer as server_writer
from mapathon.server.app import Room, create_app
from mapathon.tasks import lifecycle

NAMES = ["Awa", "Bala", "Chaka", "Dado", "Ema", "Fodé"]


@pytest.fixture
def folder(tmp_path_factory):
    f = copy_project(village_template(tmp_path_factory, 16), tmp_path_factory.mktemp("writer") / "p")
    for name in NAMES:
        Cli(f)("volunteer", "add", name, "--as", "Mariam")
    return f


def in_one_group(room: Room, changes: list, monkeypatch) -> list:
    """Run *changes* (functions of the project, or (batch function, argument) for Room.change_batched)
    queued together behind a change that holds the writer, so that they form one group. Returns each
    one's result or exception."""
    monkeypatch.setattr(server_writer, "GROUP_SECONDS", 60.0)  # no deadline in a test, however slow the machine
    hold = threading.Event()

    async def main():
        blocker = asyncio.ensure_future(room.write(lambda p: hold.wait(30)))
        tasks = [asyncio.ensure_future(room.change_batched(*fn) if isinstance(fn, tuple) else room.change(fn))
                 for fn in changes]
        await asyncio.sleep(0.05)  # every change is in the queue
        hold.set()
        await asyncio.wait_for(blocker, 60)
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)

    try:
        return asyncio.run(main())
    finally:
        room.close()


def claim(task_id, name):
    return lambda p: lifecycle.claim(p, task_id, name).locked_by


def events(folder, action="claim.mapping") -> list[tuple]:
    return [(r[0], r[1]) for r in query(folder, "SELECT task, actor FROM events WHERE action = ? ORDER BY seq",
                                        (action,))]


def key(folder, task_id) -> str:
    return query(folder, "SELECT key FROM tasks WHERE id = ?", (task_id,))[0][0]


def holder(folder, task_id):
    r = query(folder, """SELECT t.state, v.name FROM tasks t LEFT JOIN volunteers v ON v.id = t.locked_by
                          WHERE t.id = ?""", (task_id,))[0]
    return r[0], r[1]


@pytest.mark.backends
def test_a_refused_change_is_undone_alone_in_its_group(folder, monkeypatch):
    room = Room(folder)

    def claim_then_refuse(p):
        lifecycle.claim(p, 30, "Dado")  # written, then the change fails: this claim must not stay
        raise MapathonError("refused after writing")

    def not_signed_in(p):
        raise HTTPException(status_code=401, detail="sign in first")

    out = in_one_group(room, [claim(10, "Awa"), claim(10, "Bala"), claim(20, "Chaka"), claim_then_refuse,
                              not_signed_in, lambda p: lifecycle.claim_next(p, "Ema").id], monkeypatch)
    assert out[0] == "Awa" and out[2] == "Chaka"
    assert isinstance(out[1], ForbiddenTransition) and "locked by Awa" in str(out[1])
    assert isinstance(out[3], MapathonError) and str(out[3]) == "refused after writing"
    assert isinstance(out[4], HTTPException) and out[4].status_code == 401
    nxt = out[5]
    assert isinstance(nxt, int) and nxt not in (10, 20, 30)
    assert room.stats == {"groups": 1, "grouped changes": 6}  # one COMMIT for all six
    assert holder(folder, 10) == ("LOCKED_FOR_MAPPING", "Awa")
    assert holder(folder, 20) == ("LOCKED_FOR_MAPPING", "Chaka")
    assert holder(folder, 30) == ("READY", None)
    assert holder(folder, nxt) == ("LOCKED_FOR_MAPPING", "Ema")
    assert events(folder) == [(key(folder, 10), "Awa"), (key(folder, 20), "Chaka"), (key(folder, nxt), "Ema")]


@pytest.mark.backends
def test_an_unexpected_error_redoes_the_group_one_by_one(folder, monkeypatch):
    room = Room(folder)

    def claim_then_crash(p):
        lifecycle.claim(p, 30, "Dado")
        raise RuntimeError("a bug")

    out = in_one_group(room, [claim(10, "Awa"), claim_then_crash, claim(10, "Bala"), claim(20, "Chaka")],
                       monkeypatch)
    assert out[0] == "Awa" and out[3] == "Chaka"
    assert isinstance(out[1], RuntimeError) and isinstance(out[2], ForbiddenTransition)
    assert room.stats["groups redone"] == 1
    # alone, as without grouping: Dado's claim committed before the bug struck, and only once
    assert holder(folder, 30) == ("LOCKED_FOR_MAPPING", "Dado")
    assert events(folder) == [(key(folder, 10), "Awa"), (key(folder, 30), "Dado"), (key(folder, 20), "Chaka")]


def test_a_failed_commit_loses_and_duplicates_nothing(folder, monkeypatch):
    room = Room(folder)

    def breaks_the_commit(p):
        # a foreign key checked only at COMMIT: the statement passes, the COMMIT fails
        with p.transaction():
            p.conn.execute("PRAGMA defer_foreign_keys = ON")
            p.conn.execute("INSERT INTO task_areas (task_id, area_id) VALUES (99999, 99999)")

    out = in_one_group(room, [claim(10, "Awa"), breaks_the_commit, claim(20, "Bala")], monkeypatch)
    assert out[0] == "Awa" and out[2] == "Bala"
    assert isinstance(out[1], Exception) and "FOREIGN KEY" in str(out[1])
    assert room.stats["groups redone"] == 1
    assert events(folder) == [(key(folder, 10), "Awa"), (key(folder, 20), "Bala")]
    assert not query(folder, "SELECT 1 FROM task_areas WHERE task_id = 99999")
    # and the writer goes on
    room2 = Room(folder)
    assert in_one_group(room2, [claim(40, "Chaka")], monkeypatch) == ["Chaka"]


# -- the fast path ---------------------------------------------------------------------------------------------


async def call(app, method: str, path: str, headers: dict | None = None, body: bytes = b"", reference=False,
               client: str = "127.0.0.1", full=False):
    """One request through the ASGI application (or, with *reference*, through FastAPI's own routes),
    from the address *client*. Returns (status, content type, body), with *full* the headers too."""
    hdrs = [(b"host", b"testserver")] + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if body and "content-length" not in {k.lower() for k in headers or {}}:
        hdrs.append((b"content-length", str(len(body)).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path.split("?")[0], "raw_path": path.encode(), "root_path": "",
             "query_string": path.split("?")[1].encode() if "?" in path else b"", "headers": hdrs,
             "client": (client, 5000), "server": ("testserver", 80), "state": {}}
    pending = [body]

    async def receive():
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return {"type": "http.disconnect"}

    sent = []

    async def send(message):
        sent.append(message)

    await (FastAPI.__call__(app, scope, receive, send) if reference else app(scope, receive, send))
    start = sent[0]
    out = (start["status"], dict(start["headers"]).get(b"content-type"),
           b"".join(m.get("body", b"") for m in sent[1:]))
    return (*out, dict(start["headers"])) if full else out


def normalised(answer):
    status, ctype, body = answer
    try:
        data = json.loads(body)
    except ValueError:
        return status, ctype, body
    if isinstance(data, dict):
        data.pop("lock_expires", None)
        if isinstance(data.get("detail"), str):  # "locked by X until 2026-05-01 18:40 UTC"
            data["detail"] = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d", "<time>", data["detail"])
    return status, ctype, data


def test_the_fast_path_answers_as_the_fastapi_routes(tmp_path_factory):
    """The same requests on two copies of a project, one through the fast path, one through FastAPI."""
    template = village_template(tmp_path_factory, 16)
    apps = [create_app(copy_project(template, tmp_path_factory.mktemp("fast") / "p"), token="tok") for _ in range(2)]
    village = query(template, "SELECT name FROM areas WHERE kind = 'village' ORDER BY name LIMIT 1")[0][0]
    taken = []
    for app in apps:
        def counting(*a, _act=app.fast_act, **kw):
            taken.append(a[0])
            return _act(*a, **kw)
        app.fast_act = counting
    js = {"Content-Type": "application/json"}

    async def scenario(app, reference):
        async def req(method, path, who=None, body=b"", headers=None):
            h = dict(headers or {})
            if who:
                h["X-Session"] = sessions[who]
            return normalised(await call(app, method, path, h, body, reference))

        sessions = {}
        for name in ("Awa", "Bala", "Chaka"):
            st, _, data = await req("POST", "/api/join", body=json.dumps({"name": name}).encode(), headers=js)
            assert st == 200
            sessions[name] = data["token"]
        out = [await req("POST", "/api/claim-next", "Awa", b"{}", js)]
        mine = out[0][2]["id"]
        out.append(await req("POST", "/api/claim-next", "Bala"))  # no body
        balas = out[1][2]["id"]
        out += [
            await req("POST", f"/api/tasks/{mine}/release", "Bala", b'{"comment": "not mine"}', js),
            await req("POST", f"/api/tasks/{mine}/claim", "Chaka"),
            await req("POST", f"/api/tasks/{mine}/release", "Awa", json.dumps({"comment": "x" * 2001}).encode(), js),
            await req("POST", f"/api/tasks/{mine}/done", "Awa", b'{"comment": null}', js),
            await req("POST", "/api/claim-next", "Awa", json.dumps({"village": village}).encode(), js),
            await req("POST", "/api/claim-next", "Chaka", b'{"village": "Nowhere"}', js),
            await req("POST", "/api/claim-next", "Chaka", b'{"village": 5}', js),
            await req("POST", "/api/claim-next", "Chaka", b"{not json", js),
            await req("POST", "/api/claim-next", "Chaka", b"[]", js),
            await req("POST", "/api/claim-next", "Chaka", b'{"village": ""}', {"Content-Type": "text/plain"}),
            await req("POST", "/api/claim-next", "Chaka", b'{"village": "", "extra": 1}', js),
            await req("POST", "/api/claim-next"),  # not signed in
            await req("POST", "/api/claim-next", body=b"{}", headers={**js, "X-Session": "forgotten"}),
            await req("POST", "/api/tasks/999999/claim", "Bala"),
            await req("POST", "/api/tasks/abc/claim", "Bala"),
            await req("POST", "/api/tasks/007/claim", "Bala"),  # not plain: FastAPI reads it as 7
            await req("POST", f"/api/tasks/{balas}/badimagery", "Bala", b'{"comment": "clouds"}', js),
            await req("POST", "/api/tasks/7/release", "Bala", b"x" * 70_000, js),  # too large
            await req("GET", f"/api/tasks/{mine}"),
        ]
        return out

    async def both():
        try:
            return (await asyncio.wait_for(scenario(apps[0], False), 120),
                    await asyncio.wait_for(scenario(apps[1], True), 120))
        finally:
            for app in apps:
                app.state.room.close()

    fast, reference = asyncio.run(both())
    for i, (a, b) in enumerate(zip(fast, reference)):
        assert a == b, (i, a, b)
    statuses = [a[0] for a in fast]
    assert statuses == [200, 200, 409, 409, 422, 200, 200, 400, 422, 422, 422, 422, 200, 401, 401, 404, 422, 409,
                        200, 413, 200], statuses
    assert taken.count("claim_next") >= 4 and {"claim", "release", "done", "badimagery"} <= set(taken)


def test_a_group_waits_for_another_process_holding_the_database(folder):
    """A command (another process) writing at the same time: the group waits for it, as a change alone did."""
    import sqlite3

    other = sqlite3.connect(folder / "mapathon.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    room = Room(folder)

    async def main():
        change = asyncio.ensure_future(room.change(claim(10, "Awa")))
        await asyncio.sleep(0.3)
        assert not change.done()  # waiting for the lock
        other.execute("COMMIT")
        return await asyncio.wait_for(change, 60)

    try:
        assert asyncio.run(main()) == "Awa"
    finally:
        room.close()
        other.close()
    assert holder(folder, 10) == ("LOCKED_FOR_MAPPING", "Awa")


def claims_together(calls: list, fail_when_more_than: int | None = None):
    """A batch function for Room.change_batched: claims [(name, task id)] with lifecycle.claim_many and
    notes each call; it fails below the rules when given more than *fail_when_more_than* at once."""

    def batch(p, asks):
        calls.append(list(asks))
        if fail_when_more_than is not None and len(asks) > fail_when_more_than:
            lifecycle.claim(p, 40, "Awa")  # written, then a bug: must not stay
            raise RuntimeError("a bug")
        return [t.locked_by if isinstance(t, lifecycle.Task) else t
                for t in lifecycle.claim_many(p, [(tid, name) for name, tid in asks])]

    return batch


@pytest.mark.backends
def test_changes_of_one_kind_queued_together_run_in_one_call(folder, monkeypatch):
    room, calls = Room(folder), []
    batch = claims_together(calls)
    out = in_one_group(room, [claim(10, "Awa"), (batch, ("Bala", 11)), (batch, ("Chaka", 11)), (batch, ("Dado", 12)),
                              claim(13, "Ema"), (batch, ("Fodé", 14))], monkeypatch)
    # those queued one behind the other go together; another change in between starts a new call
    assert calls == [[("Bala", 11), ("Chaka", 11), ("Dado", 12)], [("Fodé", 14)]]
    assert out[:4] == ["Awa", "Bala", out[2], "Dado"] and out[4:] == ["Ema", "Fodé"]
    assert isinstance(out[2], ForbiddenTransition) and "locked by Bala" in str(out[2])  # refused alone
    assert room.stats == {"groups": 1, "grouped changes": 6, "batch calls": 2}
    assert [holder(folder, t) for t in (10, 11, 12, 13, 14)] == [("LOCKED_FOR_MAPPING", n) for n in
                                                                 ("Awa", "Bala", "Dado", "Ema", "Fodé")]
    assert events(folder) == [(key(folder, t), n) for t, n in
                              [(10, "Awa"), (11, "Bala"), (12, "Dado"), (13, "Ema"), (14, "Fodé")]]


@pytest.mark.backends
def test_batched_changes_of_several_kinds_queued_together_run_one_call_per_kind(folder, monkeypatch):
    """Claims and releases queued in turn (a busy room): one call for the claims, one for the
    releases, as if the claims had come first; the answers and the log are those of that order."""
    with open_project(folder) as p:
        for tid, name in [(20, "Dado"), (21, "Ema"), (22, "Fodé")]:
            lifecycle.claim(p, tid, name)
    room, calls, released = Room(folder), [], []
    claims = claims_together(calls)

    def releases(p, asks):
        released.append(list(asks))
        return [t.state if isinstance(t, lifecycle.Task) else t
                for t in lifecycle.release_many(p, [(tid, name, None) for name, tid in asks])]

    out = in_one_group(room, [(claims, ("Awa", 10)), (releases, ("Dado", 20)), (claims, ("Bala", 11)),
                              (releases, ("Ema", 21)), (releases, ("Ema", 21)), (claims, ("Chaka", 20)),
                              (releases, ("Fodé", 22))], monkeypatch)
    assert calls == [[("Awa", 10), ("Bala", 11), ("Chaka", 20)]]
    assert released == [[("Dado", 20), ("Ema", 21), ("Ema", 21), ("Fodé", 22)]]
    assert room.stats == {"groups": 1, "grouped changes": 7, "batch calls": 2}
    # Chaka's claim ran before Dado's release: refused, as it would have been had it come first
    assert out[0] == "Awa" and out[2] == "Bala" and isinstance(out[5], ForbiddenTransition)
    assert out[1] == out[3] == out[6] == "READY" and isinstance(out[4], ForbiddenTransition)
    assert [a for a, in query(folder, "SELECT action FROM events WHERE action IN ('claim.mapping', 'release') "
                                      "ORDER BY seq")][3:] == ["claim.mapping", "claim.mapping", "release", "release",
                                                               "release"]


@pytest.mark.backends
def test_a_batch_that_fails_is_redone_one_by_one(folder, monkeypatch):
    room, calls = Room(folder), []
    batch = claims_together(calls, fail_when_more_than=1)
    out = in_one_group(room, [claim(10, "Awa"), (batch, ("Bala", 11)), (batch, ("Chaka", 11)), (batch, ("Dado", 12))],
                       monkeypatch)
    assert calls == [[("Bala", 11), ("Chaka", 11), ("Dado", 12)], [("Bala", 11)], [("Chaka", 11)], [("Dado", 12)]]
    assert out[0] == "Awa" and out[1] == "Bala" and out[3] == "Dado"
    assert isinstance(out[2], ForbiddenTransition)
    assert room.stats["groups redone"] == 1
    assert holder(folder, 40) == ("READY", None)  # what the failed call wrote is gone
    assert events(folder) == [(key(folder, t), n) for t, n in [(10, "Awa"), (11, "Bala"), (12, "Dado")]]


# -- releases and "done" together, as one by one -----------------------------------------------------------------


def _outcome(x):
    return ("task", x.id, x.state, x.locked_by, x.mapped_by) if isinstance(x, lifecycle.Task) \
        else ("error", type(x), str(x))


def _log(folder):
    return [tuple(r) for r in query(folder, "SELECT action, task, actor, from_state, to_state, comment, data "
                                            "FROM events WHERE task IS NOT NULL ORDER BY seq")]


def _task_rows(folder):
    return [tuple(r) for r in query(folder, "SELECT id, state, locked_by, lock_expires, unlock_state, mapped_by, "
                                            "validated_by FROM tasks ORDER BY id")]


@pytest.mark.backends
@pytest.mark.parametrize("action", ["release", "done"])
def test_releases_and_done_together_as_one_by_one(folder, tmp_path, action):
    """release_many / done_many: the outcomes, refusals, task rows and event log of the same asks one
    after the other; a refused ask changes nothing; an expired lock is said to be expired."""
    from datetime import datetime, timedelta, timezone

    t0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=3)
    Cli(folder)("volunteer", "add", "Vera", "--validator", "--as", "Mariam")
    with open_project(folder) as p:
        for tid, name in [(10, "Awa"), (11, "Bala"), (12, "Chaka"), (13, "Dado")]:
            lifecycle.claim(p, tid, name, hours=5, now=t0)
        lifecycle.claim(p, 14, "Ema", hours=1, now=t0)  # runs out before the asks
        lifecycle.claim(p, 15, "Fodé", hours=5, now=t0)
        lifecycle.done(p, 15, "Fodé", now=t0)
        lifecycle.claim(p, 15, "Vera", hours=5, now=t0)  # locked for validation
    k11 = query(folder, "SELECT key FROM tasks WHERE id = 11")[0][0]
    a, b = copy_project(folder, tmp_path / "one-by-one"), copy_project(folder, tmp_path / "together")
    asks = [(10, "Awa", "fini"), (10, "Awa", None),  # twice: the second is refused (nothing to do)
            (k11, "bala", None),  # by address, name in another case
            (12, "Bala", None),  # not hers
            (12, "Mariam", "for Chaka"),  # an organizer may
            (14, "Ema", None),  # her lock expired
            (15, "Vera", None),  # locked for validation: released, refused as done
            (99999, "Awa", None), (13, "Nobody", None), (13, "", None),  # no such task, volunteer, name
            (13, "Dado", "ok")]
    now = t0 + timedelta(hours=3)
    one_fn, many_fn = getattr(lifecycle, action), getattr(lifecycle, f"{action}_many")
    with open_project(a) as p:
        one = []
        for ref, name, comment in asks:
            try:
                one.append(one_fn(p, ref, name, comment=comment, now=now))
            except Exception as e:  # noqa: BLE001 - compared below
                one.append(e)
    with open_project(b) as p:
        together = many_fn(p, asks, now=now)
    assert [_outcome(x) for x in together] == [_outcome(x) for x in one]
    assert [isinstance(x, lifecycle.Task) for x in together] == [
        True, False, True, False, True, False, action == "release", False, False, False, True]
    assert "Ema's lock on it expired" in str(together[5])
    assert "no such volunteer" in str(together[8]) and "a volunteer name is needed" in str(together[9])
    assert _log(b) == _log(a)
    assert _task_rows(b) == _task_rows(a)
    assert [r[0] for r in _log(b)][-5:].count(action) >= 4


@pytest.mark.backends
@pytest.mark.parametrize("action", ["release", "done"])
def test_the_room_answers_releases_and_done_together_as_one_by_one(folder, tmp_path, monkeypatch, action):
    """Through the room's own batch function (sessions, 401, 404, the lifecycle's refusals): the same
    answers and the same log as the same requests one after the other."""
    from mapathon.server.routes import tasks as task_routes
    from mapathon.server.sessions import Sessions

    with open_project(folder) as p:
        sessions = Sessions()
        for name in NAMES:
            sessions.sign_in(p, name, f"tok-{name}", organizer=False)
        for tid, name in [(10, "Awa"), (11, "Bala"), (12, "Chaka")]:
            lifecycle.claim(p, tid, name)
    asks = [("tok-Awa", 10, "fini"), ("tok-Awa", 10, None), ("tok-Dado", 11, None), ("tok-Bala", 11, None),
            ("", 12, None), ("forgotten", 12, None), ("tok-Chaka", 99999, None), ("tok-Chaka", 12, "ok")]
    rooms = [Room(copy_project(folder, tmp_path / name)) for name in ("one-by-one", "together")]

    def answer(room, got):
        if isinstance(got, BaseException):
            return room.refusal(got, None)[:2]
        return 200, {k: v for k, v in got.items() if k != "lock_expires"}

    async def one_by_one(room):
        out = []
        for token, tid, comment in asks:
            try:
                out.append(await task_routes.act(room, action, tid, token, comment=comment))
            except Exception as e:  # noqa: BLE001 - compared below
                out.append(e)
        return out

    try:
        one = [answer(rooms[0], x) for x in asyncio.run(one_by_one(rooms[0]))]
    finally:
        rooms[0].close()
    batch = task_routes._batches(rooms[1])[2 if action == "release" else 3]
    together = [answer(rooms[1], x) for x in in_one_group(rooms[1], [(batch, (token, (tid, comment)))
                                                                      for token, tid, comment in asks], monkeypatch)]
    assert together == one
    assert [a[0] for a in one] == [200, 409, 409, 200, 401, 401, 404, 200]
    assert rooms[1].stats["batch calls"] == 1
    assert _log(rooms[1].folder) == _log(rooms[0].folder)
    assert _task_rows(rooms[1].folder) == _task_rows(rooms[0].folder)
