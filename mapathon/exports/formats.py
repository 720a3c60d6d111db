"""What every export shares: the output format (from ``--format`` or the file's extension) and the CSV writer.

CSV comes in two dialects:

* ``plain`` (the default): ``,`` between fields, ``.`` in numbers, UTF-8. What
  QGIS, GDAL, Python and LibreOffice read without questions.
* ``excel-fr``: what Excel expects on a computer set up in French: ``;``
  between fields, ``,`` in numbers (``14,5123``), UTF-8 with a byte-order mark
  (else Excel shows ``DianguirdÃ©``) and Windows line endings. Double-clicking
  the file then opens it in columns. Texts (names, WKT geometries) are never
  changed.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import MapathonError, UsageMistake
from ..fsutil import atomic_path

CSV_DIALECTS = ("plain", "excel-fr")


def _extension(path: str | Path) -> str:
    ext = Path(path).suffix.lower().lstrip(".")
    return {"json": "geojson"}.get(ext, ext)


def guess_format(path: str | Path, formats: Sequence[str]) -> str:
    """The format of *path* from its extension (``.json`` is GeoJSON), among *formats*."""
    ext = _extension(path)
    if ext not in formats:
        raise MapathonError(f"{path}: cannot tell the format from the extension; give --format ({', '.join(formats)})")
    return ext


def resolve_format(dest: str | Path, fmt: str | None, formats: Sequence[str]) -> str:
    """The format to write *dest* in: *fmt* (``--format``) if given, else the extension; they must agree."""
    fmt = (fmt or guess_format(dest, formats)).lower()
    if fmt not in formats:
        raise UsageMistake(f"unknown (choose one of {', '.join(formats)})", field="format", value=fmt)
    ext = _extension(dest)
    if ext in formats and ext != fmt:
        raise MapathonError(f"{dest}: the name says .{ext} but --format is {fmt}; make them agree")
    return fmt


def check_csv_dialect(dialect: str | None, fmt: str) -> str:
    """The CSV dialect to use (``plain`` when not given); refuses one given for another format."""
    if dialect is None:
        return "plain"
    d = dialect.strip().lower()
    if d not in CSV_DIALECTS:
        raise UsageMistake(f"unknown (choose one of {', '.join(CSV_DIALECTS)})", field="csv_dialect", value=dialect)
    if fmt != "csv":
        raise MapathonError(f"--csv-dialect {dialect} is for .csv files, not {fmt}")
    return d


def _cell(v, decimal_comma: bool) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        s = repr(v)  # shortest exact form, never rounded
        return s.replace(".", ",") if decimal_comma else s
    return str(v)


def write_csv(dest: str | Path, header: Sequence[str], rows: Iterable[Sequence], dialect: str = "plain") -> None:
    """Write *rows* under *header* to *dest* (whole or not at all) in one of :data:`CSV_DIALECTS`."""
    if dialect not in CSV_DIALECTS:
        raise UsageMistake(f"unknown (choose one of {', '.join(CSV_DIALECTS)})", field="csv_dialect", value=dialect)
    fr = dialect == "excel-fr"
    with atomic_path(dest) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8-sig" if fr else "utf-8") as f:
            w = csv.writer(f, delimiter=";" if fr else ",", lineterminator="\r\n" if fr else "\n")
            w.writerow(header)
            for row in rows:
                w.writerow([_cell(v, fr) for v in row])
