"""Using the second core: work handed to a forked helper process, and the garbage collector paused.

A :class:`Helper` runs a function in a forked copy of this process (it sees
everything the parent holds, without copying it) and sends its value back
through a pipe. If anything goes wrong in the helper (an exception, a crash,
no fork on this system, ``MAPATHON_JOBS=1``), :meth:`Helper.result` runs the
function here instead: the outcome, errors included, is the same as without
a helper.
"""

from __future__ import annotations

import contextlib
import gc
import os
from typing import Callable


@contextlib.contextmanager
def paused_gc():
    """Pause Python's cyclic garbage collector while hundreds of thousands of objects are made or walked.

    A merge and its checks create no reference cycles worth collecting, and the
    collector's repeated passes over the growing heap cost about a fifth of their time.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def jobs(most: int) -> int:
    """How many processes may work at once: at most *most*, the machine's cores and ``MAPATHON_JOBS``
    (a number; anything else is ignored). The one reading of ``MAPATHON_JOBS``."""
    try:
        wanted = int(os.environ.get("MAPATHON_JOBS") or most)
    except ValueError:
        wanted = most
    return max(1, min(wanted, most, os.cpu_count() or 1))


def can_fork() -> bool:
    """Whether a helper process can run beside this one (fork available, two cores, not MAPATHON_JOBS=1)."""
    return hasattr(os, "fork") and jobs(2) >= 2


class Helper:
    """*fn()* computed in a forked helper process while the caller goes on; :meth:`result` waits for it.

    *dumps*/*loads* carry the value through the pipe (pickle by default; marshal
    is faster for plain tuples, dicts and strings).
    """

    def __init__(self, fn: Callable, *, dumps: Callable | None = None, loads: Callable | None = None):
        import pickle

        self.fn = fn
        self.loads = loads or pickle.loads
        self.pid = None
        self.fd = None
        if not can_fork():
            return
        dumps = dumps or (lambda v: pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL))
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the helper: compute, send, exit without running any cleanup of the parent's state
            code = 0
            try:
                os.close(r)
                payload = dumps(fn())
                with os.fdopen(w, "wb") as f:
                    f.write(payload)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        self.pid, self.fd = pid, r

    def result(self):
        """The helper's value; computed here if there was no helper or it failed."""
        if self.pid is None:
            return self.fn()
        try:
            with os.fdopen(self.fd, "rb") as f:
                self.fd = None
                data = f.read()
            _pid, status = os.waitpid(self.pid, 0)
            self.pid = None
        finally:
            self.close()
        if status != 0 or not data:
            return self.fn()
        return self.loads(data)

    def close(self) -> None:
        """Do not leave a helper behind (after an error or Ctrl-C)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.pid is not None:
            try:
                os.kill(self.pid, 9)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
            self.pid = None
