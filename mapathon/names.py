"""Names typed by people: one spelling for storing, one key for matching.

Volunteers type their names on different keyboards: with or without accents,
in capitals, with two spaces, or with accents decomposed (as macOS and some
copy-paste produce). ``Awa Traoré``, ``AWA TRAORE`` and ``awa  traoré`` are the
same person, and ``torodo`` is the village Torodo.

Some characters do not show on screen (a zero-width space, a soft hyphen, a
direction mark): they are dropped. Some letters of other alphabets look like
Latin ones (Cyrillic ``М`` and ``а``, Greek ``ο``): :func:`skeleton` gives a
name as it looks, so that ``Mаriam`` (with a Cyrillic ``а``) can be told apart
from ``Mariam`` before it passes for her. Bambara letters (``ɛ ɔ ɲ ŋ``) and
accented letters are Latin letters: they are kept as they are.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from confusable_homoglyphs import categories, confusables
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein


# Characters that show nothing: besides Unicode's format category (Cf: U+200B zero-width space, U+00AD soft
# hyphen, U+FEFF, bidi marks), surrogates and private use, the variation selectors, the combining grapheme
# joiner and the Hangul fillers (letters that draw nothing), from Unicode's Default_Ignorable_Code_Point list.
# Control characters (Cc) are not dropped here: a name with one is refused (volunteers.check_name).
_INVISIBLE_CATEGORIES = {"Cf", "Cs", "Co"}
_INVISIBLE = {0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0, *range(0x180B, 0x1810),
              *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)}


def _shows(c: str) -> bool:
    return c.isspace() or (unicodedata.category(c) not in _INVISIBLE_CATEGORIES and ord(c) not in _INVISIBLE)


@functools.lru_cache(maxsize=4096)  # the same few names, compared over and over
def clean(name: str) -> str:
    """The spelling to store: NFKC-normalised (composed; 'ﬁ' and full-width letters are plain letters),
    without invisible characters, single spaces, no leading or trailing space.

    >>> clean(" Mari\u200bam\u00ad ")
    'Mariam'
    """
    text = unicodedata.normalize("NFKC", name or "")
    return " ".join("".join(c for c in text if _shows(c)).split())


@functools.lru_cache(maxsize=4096)
def key(name: str) -> str:
    """The key to match on: :func:`clean`, then without accents and case-folded.

    >>> key("  AWA  Traoré ") == key("awa traore")
    True
    """
    decomposed = unicodedata.normalize("NFKD", clean(name))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


# -- letters of other alphabets that look like Latin ones --------------------------------------------------------
#
# From Unicode's confusables.txt (UTS #39), as packaged by confusable-homoglyphs; only letters of other scripts
# are mapped to the Latin letter they look like: Latin letters (ɛ, ɔ, ɲ, ŋ, é...) stay themselves.
_NEUTRAL = {"LATIN", "COMMON", "INHERITED"}


def _latin_lookalike(c: str) -> str | None:
    """The ASCII letter or digit that the letter *c* of another script looks like ('а' -> 'a'), or None."""
    if not c.isalpha() or categories.alias(c) in _NEUTRAL:
        return None
    found = [h["c"] for h in confusables.confusables_data.get(c, ())]
    return next((h for h in found if len(h) == 1 and h.isascii() and h.isalnum()), None)


def lookalikes(name: str) -> list[tuple[str, str]]:
    """The letters of other scripts in *name* that look like Latin ones: [(letter, its script: 'Cyrillic')]."""
    return [(c, categories.alias(c).title()) for c in dict.fromkeys(clean(name)) if _latin_lookalike(c)]


def mixes_lookalikes(name: str) -> bool:
    """Whether *name* has Latin letters and letters of another script that look like Latin ones
    ('Mаriam' with a Cyrillic 'а'): a name nobody types on purpose."""
    text = clean(name)
    return any(c.isalpha() and categories.alias(c) == "LATIN" for c in text) and bool(lookalikes(text))


@functools.lru_cache(maxsize=4096)
def skeleton(name: str) -> str:
    """How *name* looks: its :func:`key` with each letter of another script that looks like a Latin one
    replaced by that Latin letter. 'Mаriam' (Cyrillic 'а') and 'MARIAM' have the skeleton of 'Mariam'."""
    return key("".join(_latin_lookalike(c) or c for c in clean(name)))


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
