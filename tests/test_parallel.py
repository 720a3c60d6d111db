"""The forked helper of mapathon.parallel: its value comes back; a failure in it is the same failure here."""

from __future__ import annotations

import os

import pytest

from mapathon.errors import MapathonError
from mapathon.parallel import Helper, can_fork

needs_fork = pytest.mark.skipif(not can_fork(), reason="no fork or a single core")


@needs_fork
def test_helper_computes_in_another_process():
    parent = os.getpid()
    h = Helper(lambda: {"pid": os.getpid(), "rows": [(1, "a", None)]})
    assert h.pid is not None
    value = h.result()
    assert value["rows"] == [(1, "a", None)]
    assert value["pid"] != parent
    assert h.pid is None and h.fd is None  # waited for, nothing left open


def test_helper_failure_is_raised_here(monkeypatch):
    calls = []

    def fn():
        calls.append(os.getpid())
        raise MapathonError("x.osm: cannot read")

    h = Helper(fn)
    with pytest.raises(MapathonError, match="x.osm: cannot read"):
        h.result()
    assert os.getpid() in calls  # the error comes from running it here, as without a helper


def test_no_helper_with_one_job(monkeypatch):
    monkeypatch.setenv("MAPATHON_JOBS", "1")
    h = Helper(lambda: os.getpid())
    assert h.pid is None
    assert h.result() == os.getpid()


@needs_fork
def test_close_ends_a_helper_not_waited_for():
    import time

    h = Helper(lambda: time.sleep(60))
    pid = h.pid
    h.close()
    assert h.pid is None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, 0)  # already reaped
