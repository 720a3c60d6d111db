"""The room server's writer: the project's database work off the event loop, changes grouped.

Database work runs in threads that each keep their own connection to the project database: every
change in one writer thread (so changes queue in order inside the process instead of spinning on
SQLite's busy handler; across processes the lifecycle's ``BEGIN IMMEDIATE`` serialises them), reads
in two reader threads (WAL lets them read while the writer writes).

Group commit: when changes queue up (200 people pressing "give me a task" at once), the writer runs
those waiting, one after the other and each in a ``SAVEPOINT`` of its own, inside one transaction
with one ``COMMIT`` (see :meth:`Writer.change`). A change refused by the rules is rolled back to its
savepoint and answers with its own error; the others are unaffected. Answers go out only once the
``COMMIT`` has succeeded; if anything fails below the rules (the database itself, the ``COMMIT``),
the whole group is rolled back and its changes are run again one by one, each in a transaction of
its own, exactly as without grouping. Claims ("give me a task", claim a square), releases and "done"
queued one behind the other go further: those of one kind are handed together to the lifecycle's
functions for many volunteers (``claim_next_many``, ``claim_many``, ``release_many``, ``done_many``),
which read the tasks and locks once and write all the locks and events with one statement each
(:meth:`Writer.change_batched`). In a run of such changes queued together, all the claims go first,
then all the releases (by order of each kind's first change): they were all waiting at the same
time, so this order is as good as the order of arrival, and a room where some release while others
claim still costs a few calls per group, not one per change of kind.

Nothing here knows about HTTP: tests/test_server_writer.py drives it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import queue
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .. import store
from ..errors import MapathonError, only_outcome
from ..project import Project, open_project


class _WriterProject(Project):
    """The writer thread's project. Inside a group of changes, the transactions that the project's
    modules open (``project.transaction()``) are savepoints of the group's transaction."""

    grouped = False

    def transaction(self):
        return store.savepoint(self.conn, "mapathon_tx") if self.grouped else super().transaction()


class _Change:
    """A change waiting for the writer thread, then its outcome."""

    __slots__ = ("fn", "args", "kw", "grouped", "batch", "loop", "future", "ok", "value")

    def __init__(self, fn, args, kw, grouped, loop, future, batch=None):
        self.fn, self.args, self.kw, self.grouped, self.loop, self.future = fn, args, kw, grouped, loop, future
        self.batch = batch  # see Room.change_batched
        self.ok, self.value = False, None


def _one_of(p, batch, arg):
    """A batched change run on its own: its outcome, raised when it is an error."""
    return only_outcome(batch(p, [arg]))


_STOP = object()
GROUP_SECONDS = 0.010  # a group takes in changes for at most this long before its COMMIT
GROUP_MAX = 100  # and at most this many


def _settle(items: list[_Change]) -> None:
    """In the event loop: hand each change's outcome to the request waiting for it."""
    for it in items:
        if it.future.done():  # the request went away
            continue
        if it.ok:
            it.future.set_result(it.value)
        else:
            it.future.set_exception(it.value)


class Writer:
    """A project's database work off the event loop: per-thread connections, one writer thread
    (group commit), two reader threads. Needs no HTTP: the room server's :class:`Room` is one."""

    #: the errors that refuse one change (rolled back alone, the group goes on); the room adds its own
    refusals: tuple = (MapathonError,)

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._local = threading.local()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._readers = ThreadPoolExecutor(2, thread_name_prefix="mapathon-read")
        self.stats: Counter = Counter()  # groups of changes committed together (or redone one by one)

    def project(self) -> Project:
        p = getattr(self._local, "project", None)
        if p is None:
            p = self._local.project = open_project(self.folder)
        return p

    def _call(self, fn, args, kw):
        return fn(self.project(), *args, **kw)

    async def write(self, fn, *args, **kw):
        """``fn(project, ...)`` in the writer thread, alone in its transactions: one change at a time,
        in arrival order. For changes that do more than write to the database (files)."""
        return await self._submit(False, fn, args, kw)

    async def change(self, fn, *args, **kw):
        """Like :meth:`write`, for changes that touch the database: they may share one COMMIT
        with the changes queued around them (group commit), each in its own savepoint.
        ``fn`` may run a second time, alone, if its group had to be rolled back: the files it
        writes, if any, must be written the same the second time (a survey's photos, on the
        paths its instance names), and written before the rows that name them."""
        return await self._submit(True, fn, args, kw)

    async def change_batched(self, batch, arg):
        """Like :meth:`change`, for a change that many people ask for at once ("give me a task"):
        ``batch(project, [arg, ...])`` takes the *arg* of every such change queued one behind the
        other and returns, in the same order, each one's outcome (a value, or the exception that
        refuses it, having changed nothing for it). They share one savepoint; *batch* must be the
        same function object for all the changes that may go together. Batched changes of other
        kinds queued in between do not separate them (they run in a call of their own); a change
        that is not batched does."""
        return await self._submit(True, _one_of, (batch, arg), {}, batch)

    async def read(self, fn, *args, **kw):
        """``fn(project, ...)`` in a reader thread."""
        return await asyncio.wrap_future(self._readers.submit(self._call, fn, args, kw))

    async def _submit(self, grouped: bool, fn, args, kw, batch=None):
        if self._writer is None:
            with self._writer_lock:
                if self._writer is None:
                    self._writer = threading.Thread(target=self._write_loop, name="mapathon-write", daemon=True)
                    self._writer.start()
        loop = asyncio.get_running_loop()
        item = _Change(fn, args, kw, grouped, loop, loop.create_future(), batch)
        self._queue.put(item)
        return await item.future

    def close(self) -> None:
        if self._writer is not None:
            self._queue.put(_STOP)
            self._writer.join()
        self._readers.shutdown(wait=True)

    # -- the writer thread ---------------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        p: _WriterProject | None = None
        held = None
        while True:
            item = held if held is not None else self._queue.get()
            held = None
            if item is _STOP:
                break
            if item.future.cancelled():  # the request went away before its turn
                continue
            if p is None:
                try:
                    base = open_project(self.folder)
                    p = _WriterProject(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base) if f.init})
                except BaseException as e:  # noqa: BLE001 - the request gets the error
                    item.value = e
                    self._deliver([item])
                    continue
            if item.grouped:
                batch, held = self._run_group(p, item)
            else:
                self._run_alone(p, item)
                batch = [item]
            self._deliver(batch)
        if p is not None:
            p.close()

    @staticmethod
    def _run_alone(p: _WriterProject, item: _Change) -> None:
        try:
            item.value, item.ok = item.fn(p, *item.args, **item.kw), True
        except BaseException as e:  # noqa: BLE001 - handed to the request
            item.value, item.ok = e, False
            # a transaction left open (a COMMIT that failed) would refuse every later change
            with contextlib.suppress(Exception):
                p.conn.execute("ROLLBACK")

    def _run_group(self, p: _WriterProject, first: _Change) -> tuple[list[_Change], object]:
        """Run *first* and the grouped changes queued behind it in one transaction.
        Returns the changes run and the next item taken from the queue but not run."""
        try:
            p.conn.execute("BEGIN IMMEDIATE")
        except Exception as e:  # noqa: BLE001 - e.g. another process held the database past the busy timeout
            first.value = e
            return [first], None
        batch: list[_Change] = []
        held, ok, item = None, True, first
        deadline = time.perf_counter() + GROUP_SECONDS
        while True:
            if item.batch is None:
                batch.append(item)
                ran = self._run_in_savepoint(p, [item])
            else:  # the batched changes queued behind it go with it, those of one kind in one call
                run = [item]
                while len(batch) + len(run) < GROUP_MAX:
                    nxt = self._next_queued()
                    if nxt is None:
                        break
                    if nxt is _STOP or nxt.batch is None:
                        held = nxt
                        break
                    run.append(nxt)
                batch.extend(run)
                kinds: dict = {}
                for it in run:
                    kinds.setdefault(it.batch, []).append(it)
                self.stats["batch calls"] += len(kinds)
                ran = all(self._run_in_savepoint(p, same) for same in kinds.values())
            if not ran:
                ok = False
                break
            if len(batch) >= GROUP_MAX or time.perf_counter() >= deadline:
                break
            if held is None:
                held = self._next_queued()
            if held is None or held is _STOP or not held.grouped:
                break
            item, held = held, None
        if ok:
            try:
                p.conn.execute("COMMIT")
            except Exception:  # noqa: BLE001
                ok = False
        self.stats["groups"] += 1
        self.stats["grouped changes"] += len(batch)
        if not ok:
            self.stats["groups redone"] += 1
            # below the rules something failed: nothing of the group is kept, and every change of it
            # runs again alone, in its own transaction, so that each gets the outcome it would have had
            with contextlib.suppress(Exception):
                p.conn.execute("ROLLBACK")
            for item in batch:
                self._run_alone(p, item)
        return batch, held

    def _next_queued(self) -> object:
        """The next item waiting in the queue that is still wanted, or None when there is none."""
        while True:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                return None
            if nxt is _STOP or not nxt.future.cancelled():
                return nxt

    def _run_in_savepoint(self, p: _WriterProject, run: list[_Change]) -> bool:
        """Run a change inside the group, in a savepoint of its own, or changes of one kind together (see
        :meth:`change_batched`) in one. A refused change is undone alone (a batch function writes nothing
        for the changes it refuses). False when the group must be given up: an error that is not a refusal
        (the database, a bug) or a savepoint that cannot be released or rolled back."""
        try:
            p.conn.execute("SAVEPOINT mapathon_change")
        except Exception:  # noqa: BLE001
            return False
        p.grouped = True
        refused = False
        try:
            if run[0].batch is not None:
                outcomes = run[0].batch(p, [it.args[1] for it in run])
                if len(outcomes) != len(run):
                    return False
                oks = [not isinstance(got, BaseException) for got in outcomes]
            else:
                item = run[0]
                try:
                    outcomes, oks = [item.fn(p, *item.args, **item.kw)], [True]
                except self.refusals as e:  # refused: this change only is undone
                    outcomes, oks, refused = [e], [False], True
        except BaseException:  # noqa: BLE001 - run again alone, where each gets its error
            return False
        finally:
            p.grouped = False
        for it, got, ok in zip(run, outcomes, oks):
            it.value, it.ok = got, ok
        try:
            if refused:
                p.conn.execute("ROLLBACK TO SAVEPOINT mapathon_change")
            p.conn.execute("RELEASE SAVEPOINT mapathon_change")
        except Exception:  # noqa: BLE001 - e.g. the database rolled the whole transaction back
            return False
        return True

    @staticmethod
    def _deliver(items: list[_Change]) -> None:
        loops: dict = {}
        for it in items:
            loops.setdefault(it.loop, []).append(it)
        for loop, its in loops.items():
            with contextlib.suppress(RuntimeError):  # the event loop has already stopped
                loop.call_soon_threadsafe(_settle, its)
