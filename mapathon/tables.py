"""Terminal tables that fit an 80-column window: a name column that is never wrapped and
right-aligned figures, with one space between columns."""

from __future__ import annotations

from rich import box
from rich.table import Table


def compact_table(first: str, *figures: str, title: str | None = None, min_first: int = 10) -> Table:
    """A table whose first column holds names and the others figures."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0, 0, 1))
    table.add_column(first, no_wrap=True, min_width=min_first)
    for head in figures:
        table.add_column(head, justify="right", no_wrap=True)
    return table
