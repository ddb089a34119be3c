"""Delexicalization: turn an utterance into a pattern that pools across homes.

Entity values the assistant knows become typed placeholders, so "lights off in the kitchen
please" and "lights off in the bedroom please" pool into one pattern ("lights off in the {area}
please"), a rewrite learned in one home applies in another, and household-specific names never
enter a global table:

* configured area, floor and entity names and aliases of *this* home -> ``{area}``, ``{floor}``,
  ``{name}`` (longest match first, so "living room ceiling" is one ``{name}``, not
  ``{area} ceiling``);
* names the assistant reported it could not resolve in this turn (``er.unresolved``, e.g. a
  household nickname), e-mail and web addresses and phone numbers (:mod:`selflearn.core.scrub`)
  -> ``{unknown}``;
* numbers, as digits or words ("75", "twenty two") -> ``{number}``;
* politeness around the request ("hey", "please", "can you", "could you", "thanks") is dropped,
  so "can you turn off the kitchen light please" pools with "turn off the kitchen light".

Text is normalised first as Home Assistant compares names (case-folded, punctuation dropped).
A :class:`Delexicalizer` is built once per home and is cheap to call (one compiled regex).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from selflearn.core.home import Home, normalize_name
from selflearn.core.scrub import private_spans
from selflearn.core.text import ONES, TENS

PLACEHOLDER = re.compile(r"\{(area|floor|name|unknown|number)\}")
"""The placeholders a pattern can hold."""
NAME_KINDS = frozenset({"name", "area", "floor"})
"""The placeholders that stand for one of the home's names."""

_NUMBER_WORD = "|".join(sorted([*ONES, *TENS[2:], "hundred", "thousand"], key=len, reverse=True))
_NUMBER = rf"(?:\d+(?:\s+\d+)*|(?:{_NUMBER_WORD})(?:\s+(?:and\s+)?(?:{_NUMBER_WORD}))*)"


_LEADING = re.compile(r"^(?:(?:hey|ok|okay|please|can you|could you|would you|will you)\s+)+")
_TRAILING = re.compile(r"(?:\s+(?:please|thanks|thank you|for me))+$")


def strip_fillers(norm: str) -> str:
    """``norm`` without leading and trailing politeness (never down to nothing)."""
    out = _TRAILING.sub("", _LEADING.sub("", norm))
    return out or norm


@dataclass(frozen=True)
class Delexicalized:
    """An utterance split into its pattern and the values taken out of it."""

    pattern: str
    """Normalised text with placeholders, e.g. ``"turn off the {area} light"``."""
    values: tuple[tuple[str, str], ...]
    """(placeholder, value) in order of appearance, e.g. ``(("area", "kitchen"),)``."""

    @property
    def slots(self) -> tuple[str, ...]:
        """Placeholder names in order of appearance (with repeats)."""
        return tuple(kind for kind, _ in self.values)


def slot_signature(pattern: str) -> tuple[str, ...]:
    """Sorted placeholder multiset of a pattern: two patterns can be exchanged only if equal."""
    return tuple(sorted(PLACEHOLDER.findall(pattern)))


class Delexicalizer:
    """Delexicalizes utterances spoken in one home."""

    def __init__(self, home: Home | None = None) -> None:
        names: dict[str, str] = {}
        if home is not None:
            # Entity names first so that, for equal text, {name} wins over {area}; longer texts
            # are tried first by the regex anyway.
            for floor in home.floors:
                for text in (floor.name, *floor.aliases):
                    names.setdefault(normalize_name(text), "floor")
            for area in home.areas:
                for text in (area.name, *area.aliases):
                    names[normalize_name(text)] = "area"
            for entity in home.entities:
                for text in entity.spoken_names:
                    names[normalize_name(text)] = "name"
        names.pop("", None)
        self._names = names
        self._regex = _compile(tuple(sorted(names, key=lambda n: (-len(n), n))))
        place_words = {w for text, kind in names.items() if kind != "name" for w in text.split()}
        self._home = home
        self._short_cache: dict[frozenset[str], dict[str, list[str]]] = {}
        self.name_words: frozenset[str] = (
            frozenset(w for text, kind in names.items() if kind == "name" for w in text.split()) - place_words
        )
        """Words of this home's entity names that are not words of its area or floor names
        ("ceiling", "pendant", "spotlights" in a home with a "Kitchen Ceiling"). Said alone, such a
        word is part of a name the request shortened, and stays in the pattern as a word."""

    def short_names(self, generic: frozenset[str] = frozenset()) -> dict[str, list[str]]:
        """How people shorten this home's entity names: the name without its area in front
        ("ceiling light" for "Living Room Ceiling Light" in the living room) -> the full names
        shortened so. Shortened names made only of ``generic`` words ("lamp", "the") name nothing
        in particular and are left out, as are those equal to another name of the home."""
        found = self._short_cache.get(generic)
        if found is not None:
            return found
        out: dict[str, list[str]] = {}
        home = self._home
        for entity in home.entities if home is not None else ():
            area = home.area_by_id.get(entity.area_id or "") if home is not None else None
            if area is None:
                continue
            full = normalize_name(entity.name)
            for prefix in (normalize_name(n) for n in (area.name, *area.aliases)):
                short = full[len(prefix) + 1 :] if full.startswith(prefix + " ") else ""
                if short and short not in self._names and not set(short.split()) <= generic:
                    names = out.setdefault(short, [])
                    if full not in names:
                        names.append(full)
        self._short_cache[generic] = out
        return out

    def complete(
        self, text: str, generic: frozenset[str] = frozenset(), pattern: str | None = None
    ) -> tuple[str, list[tuple[str, str]]]:
        """``text`` (normalised) with each shortened entity name (:meth:`short_names`) that is said
        where no full name is, and that only one entity of the home shortens to, replaced by the
        full name. A shortened name several entities share ("ceiling light" with a bedroom and a
        kitchen one) is left as it is: the area of the device that heard it is only a guess.
        Also returns the (short, full) replacements. ``pattern`` is ``text`` delexicalized, when
        the caller has it already."""
        shorts = self.short_names(generic)
        if not shorts:
            return text, []
        pattern = f" {self(text).pattern if pattern is None else pattern} "
        padded = f" {text} "
        done: list[tuple[str, str]] = []
        for short in sorted(shorts, key=lambda n: (-len(n), n)):
            if f" {short} " not in pattern:
                continue
            names = shorts[short]
            # an ambiguous mention is used up too: "ceiling light" is not completed as "ceiling"
            pattern = pattern.replace(f" {short} ", " {name} " if len(names) == 1 else " \0 ", 1)
            if len(names) == 1:
                padded = padded.replace(f" {short} ", f" {names[0]} ", 1)
                done.append((short, names[0]))
        return padded.strip(), done

    def __call__(self, text: str, unresolved: Iterable[str] = ()) -> Delexicalized:
        """Pattern and values of ``text``; ``unresolved`` are names the assistant could not resolve
        in this turn (they become ``{unknown}`` unless the home knows them), and so are e-mail
        addresses, web addresses and phone numbers (:mod:`selflearn.core.scrub`)."""
        norm = strip_fillers(normalize_name(text))
        unknown: list[str] = []
        private = [normalize_name(span) for _, span in private_spans(text)]
        extra = {normalize_name(u) for u in unresolved} - set(self._names) - {""}
        extra |= set(private) - {""}
        if extra:
            # Whole-word replacement on the space-normalised text (no regex to compile per name);
            # the values, in order of appearance, are read back from the text.
            unknown = _unknown_values(norm, extra)
            padded = f" {norm} "
            for name in sorted(extra, key=lambda n: (-len(n), n)):
                while f" {name} " in padded:
                    padded = padded.replace(f" {name} ", " {unknown} ")
            norm = padded.strip()
        known: list[tuple[str, str]] = []
        names = self._names

        def sub(match: re.Match[str]) -> str:
            value = match.group(0)
            kind = names.get(value, "number")
            known.append((kind, value))
            return "{" + kind + "}"

        pattern = self._regex.sub(sub, norm)
        if not unknown:
            return Delexicalized(pattern, tuple(known))
        values: list[tuple[str, str]] = []
        known_iter, unknown_iter = iter(known), iter(unknown)
        for kind in PLACEHOLDER.findall(pattern):
            if kind == "unknown":
                values.append(("unknown", next(unknown_iter, "")))
            else:
                values.append(next(known_iter))
        return Delexicalized(pattern, tuple(values))


def _unknown_values(norm: str, names: set[str]) -> list[str]:
    padded = f" {norm} "
    found: list[tuple[int, str]] = []
    for name in sorted(names, key=lambda n: (-len(n), n)):
        start = padded.find(f" {name} ")
        while start >= 0:
            if not any(s <= start < s + len(v) + 1 for s, v in found):
                found.append((start, name))
            start = padded.find(f" {name} ", start + 1)
    return [name for _, name in sorted(found)]


@lru_cache(maxsize=4096)
def _compile(names: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = [re.escape(n) for n in names]
    alternatives.append(_NUMBER)
    return re.compile(r"(?<![\w{])(?:" + "|".join(alternatives) + r")(?![\w}])")


def fill(pattern: str, values: Sequence[tuple[str, str]]) -> str | None:
    """``pattern`` with each placeholder replaced by the next value of the same kind from
    ``values`` (the source utterance's), or None when ``values`` lacks one."""
    if "{" not in pattern:
        return pattern
    queues: dict[str, list[str]] = {}
    for kind, value in values:
        queues.setdefault(kind, []).append(value)
    missing = False

    def sub(match: re.Match[str]) -> str:
        nonlocal missing
        queue = queues.get(match.group(1))
        if not queue:
            missing = True
            return match.group(0)
        return queue.pop(0)

    out = PLACEHOLDER.sub(sub, pattern)
    return None if missing else out


def example_values(pattern: str) -> str:
    """The pattern filled with neutral example values (for human-readable table rows that must
    not carry any household's names)."""
    sample = {"area": "kitchen", "floor": "upstairs", "name": "ceiling light", "unknown": "the thing"}
    counts: Counter[str] = Counter()

    def sub(match: re.Match[str]) -> str:
        kind = match.group(1)
        counts[kind] += 1
        if kind == "number":
            return str(20 * counts[kind] + 10)
        return sample[kind]

    return PLACEHOLDER.sub(sub, pattern)
