"""Safe file writing: outputs appear whole or not at all.

A temporary file is named ``.<name>.mapathon-<random>.tmp<ext>`` beside its output, so that one
left by a killed run (power cut, Ctrl-C twice, kill -9) is recognised: the next write of the same
output removes those older than :data:`STALE_SECONDS`.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Iterator

TMP_MARK = ".mapathon-"
STALE_SECONDS = 3600  # a write in progress is younger than this; an older temporary file is left over


def _tmp_prefix(dest: Path) -> str:
    return f".{dest.stem}{TMP_MARK}"


def remove_stale(dest: str | os.PathLike, suffix: str | None = None, max_age: float = STALE_SECONDS) -> list[Path]:
    """Remove the temporary files of *dest* (see :func:`atomic_path`) older than *max_age* seconds,
    left by runs that were killed; return them. Temporary files of running writers are younger."""
    dest = Path(dest)
    parent = dest.parent if str(dest.parent) else Path(".")
    ext = suffix if suffix is not None else "".join(dest.suffixes) or ""
    prefix = _tmp_prefix(dest)
    # also the names of earlier versions: .<stem>.<8 random characters>.tmp<ext> (tempfile.mkstemp)
    old = re.compile(re.escape(f".{dest.stem}.") + r"[a-z0-9_]{8}" + re.escape(".tmp" + ext) + r"\Z")
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for e in entries:
        name = e.name
        if not ((name.startswith(prefix) and name.endswith(".tmp" + ext)) or old.match(name)):
            continue
        try:
            if now - e.stat(follow_symlinks=False).st_mtime < max_age:
                continue
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path, ignore_errors=True)
            else:
                os.unlink(e.path)
            removed.append(Path(e.path))
        except OSError:
            continue  # gone meanwhile, or not ours to remove
    return removed


def _new_temp(dest: Path, suffix: str | None) -> tuple[int, Path]:
    """Create a fresh temporary file beside *dest* (its descriptor, open for writing, and its path), named
    so that :func:`remove_stale` knows it, with the permissions of a file created plainly; temporary
    files of *dest* left by killed runs are removed first."""
    parent = dest.parent if str(dest.parent) else Path(".")
    if not parent.is_dir():
        from .errors import MapathonError

        raise MapathonError(f"{dest}: folder {parent} does not exist")
    ext = suffix if suffix is not None else "".join(dest.suffixes) or ""
    remove_stale(dest, suffix)
    for _ in range(100):
        tmp = parent / f"{_tmp_prefix(dest)}{secrets.token_hex(6)}.tmp{ext}"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{dest}: no free temporary name beside it")  # pragma: no cover - 100 × 48 random bits


def temp_path(dest: str | os.PathLike, suffix: str | None = None) -> Path:
    """A fresh temporary path beside *dest* (not created), named so that :func:`remove_stale` knows it;
    temporary files of *dest* left by killed runs are removed first. The caller renames it onto *dest*
    (``os.replace``) or removes it: :func:`atomic_path` does both."""
    fd, tmp = _new_temp(Path(dest), suffix)
    os.close(fd)
    os.unlink(tmp)  # let the writer create it (some drivers refuse existing files)
    return tmp


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside *dest*; rename it onto *dest* on success.

    The temporary file keeps *dest*'s extension (drivers such as GDAL's pick
    the format from it). On any exception the temporary file is removed and
    *dest* is left untouched. Temporary files of *dest* left by killed runs
    (older than :data:`STALE_SECONDS`) are removed first.
    """
    tmp_path = temp_path(dest, suffix)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            if tmp_path.is_dir():
                shutil.rmtree(tmp_path, ignore_errors=True)
            else:
                tmp_path.unlink()


def write_bytes(dest: str | os.PathLike, data: bytes | memoryview) -> None:
    """Write *data* to *dest* whole or not at all, like ``atomic_path`` and ``Path.write_bytes``, creating
    one file instead of two: the temporary file (named as :func:`atomic_path` names its own) is created
    once and renamed. Creating a file is most of the cost of a small write on some disks (0.4 ms on a
    virtual machine's ext4): the room server writes every photo of a survey this way."""
    fd, tmp = _new_temp(Path(dest), None)
    try:
        with open(fd, "wb", buffering=0, closefd=True) as f:
            view = memoryview(data)
            while view:
                view = view[f.write(view):]
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
