"""The home language filled with one home's names: sentences its Assist understands.

The patterns of :mod:`selflearn.rewrite.home_language` are filled with the request's own values,
which only works when the request still says its names. When the recogniser damaged a name ("turn
on the lamps in ten" for "... in den"), or the words around it ("hallway to ceiling light on"),
the request's placeholders are wrong and no pattern filled with them can work. What can is a
sentence of the home itself: the templates filled with **this home's** entities, areas and floors
("turn on lamps in den"), found because it is close to what was heard.

:func:`home_sentences` fills every pattern whose placeholders are names (``{name}``, ``{area}``,
``{floor}``) with the home's names of that kind that the pattern's template can serve (an entity
of a domain the template names), at most ``per_target`` wordings per (interpretation, target) so
the index stays small: a home of 30 entities and 10 areas gets about ten thousand sentences.
Patterns with ``{number}`` are filled at request time with the request's numbers
(:meth:`HomeSentence.with_numbers`). These sentences hold household names: they live with the
home, in memory, and never enter a pooled artefact.
"""

from __future__ import annotations

import itertools
import random
import re
from collections import defaultdict
from dataclasses import dataclass

from selflearn.core.delex import PLACEHOLDER
from selflearn.core.home import Home, normalize_name
from selflearn.rewrite.home_language import HomeLanguage, HomePattern

PER_TARGET = 6
"""Wordings kept per (interpretation, target names)."""

_NUMBER = re.compile(r"\{number\}")


@dataclass(frozen=True)
class HomeSentence:
    """A template's wording filled with this home's names (``{number}`` still open)."""

    text: str
    pattern: str
    """The home-language pattern it was filled from."""
    meaning: str
    """The pattern's interpretation (:attr:`~selflearn.rewrite.home_language.HomePattern.meaning`)."""
    names: tuple[str, ...]
    """The home's names it says, in order (normalised)."""

    @property
    def numbers(self) -> int:
        """``{number}`` placeholders still to fill."""
        return len(_NUMBER.findall(self.text))

    def with_numbers(self, numbers: list[str]) -> str | None:
        """The sentence with the request's numbers in order, or None when the counts differ. A
        sentence without numbers stands as it is: a number the recogniser made of a word
        ("eighteen lamp off" for "reading lamp off") must not hide it."""
        if not self.numbers:
            return self.text
        if len(numbers) != self.numbers:
            return None
        values = iter(numbers)
        return _NUMBER.sub(lambda _: next(values), self.text)


def _names_by_kind(home: Home) -> dict[str, list[tuple[str, frozenset[str]]]]:
    """The home's names per placeholder kind, each with the domains it can serve."""
    out: dict[str, list[tuple[str, frozenset[str]]]] = defaultdict(list)
    for entity in home.entities:
        for name in entity.spoken_names:
            out["name"].append((normalize_name(name), frozenset({entity.domain})))
    for area in home.areas:
        domains = frozenset(e.domain for e in home.entities if e.area_id == area.area_id)
        for name in (area.name, *area.aliases):
            out["area"].append((normalize_name(name), domains))
    for floor in home.floors:
        areas = {a.area_id for a in home.areas if a.floor_id == floor.floor_id}
        domains = frozenset(e.domain for e in home.entities if e.area_id in areas)
        for name in (floor.name, *floor.aliases):
            out["floor"].append((normalize_name(name), domains))
    return {kind: [(n, d) for n, d in dict.fromkeys(values) if n] for kind, values in out.items()}


def _filled(pattern: str, names: tuple[str, ...]) -> str:
    """``pattern`` with its name placeholders filled with ``names`` in order (numbers kept open)."""
    values = iter(names)
    return PLACEHOLDER.sub(lambda m: "{number}" if m.group(1) == "number" else next(values), pattern)


def home_sentences(
    language: HomeLanguage, home: Home, per_target: int = PER_TARGET, seed: int = 0
) -> list[HomeSentence]:
    """The home language filled with ``home``'s names, bounded per (interpretation, target)."""
    names = _names_by_kind(home)
    groups: dict[tuple[str, tuple[str, ...]], list[HomeSentence]] = defaultdict(list)
    for row in language.for_home(home):
        p: HomePattern = language.patterns_[row]
        kinds = [k for k in PLACEHOLDER.findall(p.pattern) if k != "number"]
        if not kinds:
            continue
        wanted = set(p.domains)
        choices = [
            [n for n, domains in names.get(kind, []) if not wanted or kind != "name" or domains & wanted]
            for kind in kinds
        ]
        for combo in itertools.product(*choices):
            if len(set(combo)) < len(combo):
                continue
            text = _filled(p.pattern, combo)
            groups[(p.meaning, combo)].append(HomeSentence(text, p.pattern, p.meaning, combo))
    out: list[HomeSentence] = []
    for key in sorted(groups):
        members = groups[key]
        if len(members) > per_target:
            rng = random.Random(f"{seed}|{key}")
            members = rng.sample(members, per_target)
        out.extend(members)
    return out
