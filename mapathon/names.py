"""Names typed by people: one spelling for storing, one key for matching.

Volunteers type their names on different keyboards: with or without accents,
in capitals, with two spaces, or with accents decomposed (as macOS and some
copy-paste produce). ``Awa Traoré``, ``AWA TRAORE`` and ``awa  traoré`` are the
same person, and ``torodo`` is the village Torodo.
"""

from __future__ import annotations

import difflib
import re
import unicodedata


def clean(name: str) -> str:
    """The spelling to store: NFC-composed, single spaces, no leading or trailing space."""
    return " ".join(unicodedata.normalize("NFC", name or "").split())


def key(name: str) -> str:
    """The key to match on: :func:`clean`, then without accents and case-folded.

    >>> key("  AWA  Traoré ") == key("awa traore")
    True
    """
    decomposed = unicodedata.normalize("NFKD", clean(name))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def suggest(name: str, choices: list[str]) -> str | None:
    """The closest of *choices* to *name*, if one is close enough to be a typo."""
    keys = {key(c): c for c in choices}
    close = difflib.get_close_matches(key(name), list(keys), n=1, cutoff=0.75)
    return keys[close[0]] if close else None


def slug(text: str) -> str:
    """'Dianguirdé 2026' -> 'dianguirde-2026'."""
    ascii_ = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_.lower()).strip("-") or "project"
