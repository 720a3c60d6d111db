"""Safe file writing: outputs appear whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside *dest*; rename it onto *dest* on success.

    The temporary file keeps *dest*'s extension (drivers such as GDAL's pick
    the format from it). On any exception the temporary file is removed and
    *dest* is left untouched.
    """
    dest = Path(dest)
    parent = dest.parent if str(dest.parent) else Path(".")
    if not parent.is_dir():
        from .errors import MapathonError

        raise MapathonError(f"{dest}: folder {parent} does not exist")
    ext = suffix if suffix is not None else "".join(dest.suffixes) or ""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=".tmp" + ext, dir=parent)
    os.close(fd)
    os.unlink(tmp)  # let the writer create it (some drivers refuse existing files)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            if tmp_path.is_dir():
                import shutil

                shutil.rmtree(tmp_path, ignore_errors=True)
            else:
                tmp_path.unlink()
