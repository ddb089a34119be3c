"""Names the recogniser damaged, found again: the home's names matched by sound and spelling.

"turn on the living room sealing" names nothing in a home with a "Living Room Ceiling": the
recogniser damaged the name, so the request's pattern keeps the damaged words and no candidate
filled with the request's values can work. :func:`spot_names` looks for word spans of the request
that are close to one of the home's names -- an entity's name or alias, an area or a floor -- by
spelling (rapidfuzz's ratio) or by sound (the ratio of their Metaphone codes, as the ranker's
``phonetic`` feature compares them), and :func:`repaired` says the request again with the home's
name in their place. A span that already is a name, a span of only common words ("turn on the")
and a close call between two names are left alone.

The repaired request is one more query for retrieval: the candidates it finds carry the home's
entity rather than the misheard word, and they still compete with the original request's
candidates in ranking.

>>> from selflearn.core.home import Area, Entity, Home
>>> home = Home("h", areas=(Area("living_room", "Living Room"),),
...             entities=(Entity("light.living_room_ceiling", "Living Room Ceiling", "living_room"),))
>>> repaired("turn on the living room sealing", home)
'turn on the living room ceiling'
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import jellyfish
import numpy as np
from rapidfuzz import fuzz, process

from selflearn.core.guards import CARRIER_WORDS, OBJECT_WORDS
from selflearn.core.home import Home, normalize_name

SPELLING = 82.0
"""Spelling similarity (0-100) a span needs to be read as a name."""
SOUND = 88.0
"""Similarity of Metaphone codes a span needs (with at least :data:`SPELLING_WITH_SOUND` spelling)."""
SPELLING_WITH_SOUND = 60.0
MARGIN = 4.0
"""A span that two names fit within this margin is ambiguous: left alone."""

_COMMON = (
    frozenset(OBJECT_WORDS)
    | CARRIER_WORDS
    | frozenset(
        [
            "on",
            "off",
            "in",
            "the",
            "a",
            "an",
            "to",
            "of",
            "my",
            "our",
            "all",
            "set",
            "turn",
            "switch",
            "and",
            "is",
        ]
    )
)


@dataclass(frozen=True)
class Spotted:
    """A span of the request read as one of the home's names."""

    start: int
    """First word of the span."""
    end: int
    """One past its last word."""
    said: str
    name: str
    """The home's name (normalised)."""
    score: float


@lru_cache(maxsize=1 << 14)
def _code(text: str) -> str:
    return str(jellyfish.metaphone(text))


def _names(home: Home) -> tuple[str, ...]:
    names = {normalize_name(n) for e in home.entities for n in e.spoken_names}
    names |= {normalize_name(n) for a in home.areas for n in (a.name, *a.aliases)}
    names |= {normalize_name(n) for f in home.floors for n in (f.name, *f.aliases)}
    names.discard("")
    return tuple(sorted(names))


_HOME_NAMES: dict[str, tuple[str, ...]] = {}


def home_names(home: Home) -> tuple[str, ...]:
    """The home's names, normalised (cached per home fingerprint)."""
    found = _HOME_NAMES.get(home.fingerprint)
    if found is None:
        if len(_HOME_NAMES) > 10_000:
            _HOME_NAMES.clear()
        found = _HOME_NAMES[home.fingerprint] = _names(home)
    return found


def similarity(said: str, name: str, spelling: float | None = None) -> float:
    """How close a span is to a name (0-100): by spelling, or by sound when the spelling is not
    far off (``spelling``: their spelling ratio, when known)."""
    spelling = float(fuzz.ratio(said, name)) if spelling is None else spelling
    if spelling >= SPELLING:
        return spelling
    if spelling >= SPELLING_WITH_SOUND:
        sound = float(fuzz.ratio(_code(said), _code(name)))
        if sound >= SOUND:
            return min(sound, SPELLING)  # a sound match counts as a bare spelling match
    return 0.0


def spot_names(text: str, home: Home) -> list[Spotted]:
    """Spans of ``text`` (normalised) that are close to, but not exactly, one of the home's names;
    non-overlapping, best first taken."""
    words = text.split()
    names = home_names(home)
    exact = set(names)
    # where the request already says a name: a span there must repair more than that name
    said_names = [
        (start, start + len(name.split()), name)
        for name in names
        for start in range(len(words))
        if words[start : start + len(name.split())] == name.split()
    ]
    # each name against the spans one word shorter, as long and one longer; the spellings of
    # all of one width's spans against its names in one call, the rest only where they are close
    by_width: dict[int, list[str]] = {}
    for name in names:
        size = len(name.split())
        for width in {max(size - 1, 1), size, size + 1}:
            by_width.setdefault(width, []).append(name)
    found: list[Spotted] = []
    for width, wanted in by_width.items():
        if width > len(words):
            continue
        spans = [" ".join(words[start : start + width]) for start in range(len(words) - width + 1)]
        spelling = process.cdist(spans, wanted, scorer=fuzz.ratio, dtype=np.float64)
        for start, j in zip(*np.nonzero(spelling >= SPELLING_WITH_SOUND), strict=True):
            said, name = spans[start], wanted[j]
            span = words[start : start + width]
            if all(w in _COMMON for w in span) or _plural_only(span, name.split()):
                continue
            if said in exact or not _repairs_more(start, start + width, name, said_names, words):
                continue
            if _part_of_several(said, names):
                continue
            score = similarity(said, name, float(spelling[start, j]))
            if score > 0:
                found.append(Spotted(int(start), int(start) + width, said, name, score))
    found.sort(key=lambda s: (-s.score, s.start, s.end - s.start))
    taken: list[Spotted] = []
    for s in found:
        rivals = (o for o in found if (o.start, o.end) == (s.start, s.end) and o.name != s.name)
        if any(o.score > s.score - MARGIN for o in rivals):
            continue  # two names fit the span about as well: ambiguous
        if any(s.start < t.end and t.start < s.end for t in taken):
            continue
        taken.append(s)
    return sorted(taken, key=lambda s: s.start)


def _part_of_several(said: str, names: tuple[str, ...]) -> bool:
    """The span ``said`` is said whole inside two or more of the home's names ("ceiling light" in
    a home with a Den Ceiling Light and a Kitchen Ceiling Light): a name left short, not a damaged
    one -- which of them was meant is for the area, or a question, to say; no repair may pick one."""
    return sum(f" {said} " in f" {name} " for name in names) >= 2


def _plural_only(span: list[str], name: list[str]) -> bool:
    """The span is the name with a plural ending ("kitchen lights"): not damage, another request."""
    if len(span) != len(name):
        return False
    return all(a in (b, b + "s", b + "es") for a, b in zip(span, name, strict=True))


def _repairs_more(
    start: int, end: int, name: str, said: list[tuple[int, int, str]], words: list[str]
) -> bool:
    """A span overlapping a name the request already says must cover it whole, read as a longer
    name that contains it, and add a word that is not a common one ("kitchen lie" -> "kitchen
    light" where "kitchen" is an area; not "the living room" -> "living room")."""
    for s, e, exact in said:
        if s < end and start < e:
            if not (start <= s and e <= end) or exact == name or exact not in name:
                return False
            extra = words[start:s] + words[e:end]
            if all(w in _COMMON for w in extra):
                return False
    return True


def repaired(text: str, home: Home) -> str | None:
    """``text`` with every spotted span said as the home's name, or None when nothing was spotted."""
    spotted = spot_names(text, home)
    if not spotted:
        return None
    words = text.split()
    out: list[str] = []
    at = 0
    for s in spotted:
        out += [*words[at : s.start], s.name]
        at = s.end
    out += words[at:]
    return " ".join(out)
