"""Names typed by people: one spelling for storing, one key for matching.

Volunteers type their names on different keyboards: with or without accents,
in capitals, with two spaces, or with accents decomposed (as macOS and some
copy-paste produce). ``Awa Traoré``, ``AWA TRAORE`` and ``awa  traoré`` are the
same person, and ``torodo`` is the village Torodo.
"""

from __future__ import annotations

import re
import unicodedata

from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein


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


def _similarity(a: str, b: str, **_) -> float:
    """0-100: how alike two keys are, in either word order ('Konaté Moussa' is 'Moussa Konaté')."""
    return max(fuzz.ratio(a, b), fuzz.token_sort_ratio(a, b))


def suggest(name: str, choices: list[str], *, cutoff: float = 75.0) -> str | None:
    """The closest of *choices* to *name*, if one is close enough to be a typo: compared on their
    :func:`key`, a rapidfuzz similarity of at least *cutoff* (0-100), or a single edit apart
    (one letter added, left out or changed: 'Ava' for 'Awa'). Names with other numbers in them are
    not typos of each other ('Groupe 2' is not 'Groupe 3')."""
    wanted = key(name)
    digits = re.findall(r"\d+", wanted)
    keys = {k: c for c in choices if re.findall(r"\d+", k := key(c)) == digits}
    if not wanted or not keys:
        return None
    best = process.extractOne(wanted, list(keys), scorer=_similarity, score_cutoff=cutoff)
    if best is None:
        best = process.extractOne(wanted, list(keys), scorer=Levenshtein.distance, score_cutoff=1)
    return keys[best[0]] if best else None


def slug(text: str) -> str:
    """'Dianguirdé 2026' -> 'dianguirde-2026'."""
    ascii_ = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_.lower()).strip("-") or "project"
