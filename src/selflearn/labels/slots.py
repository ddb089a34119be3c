"""Slots for a label that has an intent but no reading to take them from (a model's label).

The label model predicts a failed turn's intent, not its slots; :func:`fill_slots` finds them in
the turn's words with the home as a gazetteer -- not learned. Every device, area and floor of the
home is looked for with :func:`~selflearn.labels.spans.project_slots` (exact, normalised, then
fuzzy words, with aliases and short names); the longest, best-scored spans win and never
overlap (a device's "kitchen ceiling" hides the area "kitchen" inside it). A number goes to the
intent's number slot (:data:`NUMBER_SLOTS`; a timer's by the unit said after it), and without a
device named, a word for a kind of thing gives the ``domain`` (:data:`DOMAINS`: "lights").

    >>> from selflearn.core.home import Area, Entity, Home
    >>> home = Home("h", areas=(Area("kitchen", "Kitchen"),),
    ...             entities=(Entity("light.ceiling", "Kitchen Ceiling", "kitchen"),))
    >>> [(s.slot, s.value) for s in fill_slots("HassLightSet", "kitten ceiling to fifty", home)]
    [('name', 'Kitchen Ceiling'), ('brightness', '50')]
"""

from __future__ import annotations

import re
from functools import lru_cache

from selflearn.core.guards import OBJECT_WORDS
from selflearn.core.home import Home
from selflearn.core.text import number_to_words
from selflearn.labels.spans import SlotSpan, project_slots

__all__ = ["NUMBER_SLOTS", "fill_slots"]

NUMBER_SLOTS = {
    "HassLightSet": "brightness",
    "HassClimateSetTemperature": "temperature",
    "HassSetPosition": "position",
    "HassSetVolume": "volume_level",
    "HassStartTimer": "minutes",
}
"""The slot a number said in a request of the intent fills (a timer's: by its unit)."""

DOMAINS = {"light": "light", "fan": "fan", "cover": "cover", "lock": "lock"}
"""Kind of thing (:data:`~selflearn.core.guards.OBJECT_WORDS`) -> the Home Assistant domain it says."""

_UNITS = {unit + plural: unit + "s" for unit in ("hour", "minute", "second") for plural in ("", "s")}
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


@lru_cache(maxsize=1)
def _numbers() -> dict[tuple[str, ...], int]:
    """Words -> number, 0 to 100 (digits too)."""
    out: dict[tuple[str, ...], int] = {}
    for n in range(101):
        out[(str(n),)] = n
        out[tuple(number_to_words(n).replace("-", " ").split())] = n
    out[("a", "hundred")] = 100
    return out


def _number_spans(text: str) -> list[tuple[int, int, int]]:
    """(start, end, number) of each number said in ``text``, longest words first, left to right."""
    words = [(m.start(), m.end(), m.group(0).lower()) for m in _WORD.finditer(text)]
    table = _numbers()
    found, i = [], 0
    while i < len(words):
        for size in (3, 2, 1):
            key = tuple(w for _, _, w in words[i : i + size])
            if len(key) == size and key in table:
                found.append((words[i][0], words[i + size - 1][1], table[key]))
                i += size
                break
        else:
            i += 1
    return found


def fill_slots(intent: str, text: str, home: Home) -> tuple[SlotSpan, ...]:
    """The slots of ``intent`` said in ``text``, found with ``home``'s names (see the module doc)."""
    candidates: list[SlotSpan] = []
    for slot, values in (
        ("name", [e.name for e in home.entities]),
        ("area", [a.area_id for a in home.areas]),
        ("floor", [f.floor_id for f in home.floors]),
    ):
        for value in values:
            span = project_slots(text, {slot: value}, home)[0]
            if span.start is not None:
                candidates.append(span)
    candidates.sort(key=lambda s: (-(int(s.end or 0) - int(s.start or 0)), -s.score, s.start))
    chosen: list[SlotSpan] = []
    for span in candidates:
        overlaps = any(
            int(span.start or 0) < int(c.end or 0) and int(c.start or 0) < int(span.end or 0) for c in chosen
        )
        if not overlaps and all(c.slot != span.slot for c in chosen):
            chosen.append(span)
    if not any(c.slot == "name" for c in chosen):
        for m in _WORD.finditer(text):
            domain = DOMAINS.get(OBJECT_WORDS.get(m.group(0).lower(), ""))
            if domain is not None:
                chosen.append(SlotSpan("domain", domain, m.start(), m.end(), "exact", 1.0))
                break
    number_slot = NUMBER_SLOTS.get(intent)
    if number_slot is not None:
        taken: set[str] = set()
        for start, end, number in _number_spans(text):
            slot = number_slot
            if intent == "HassStartTimer":
                unit = text[end:].split()[:1]
                slot = _UNITS.get(unit[0].lower(), "minutes") if unit else "minutes"
            if slot not in taken:
                taken.add(slot)
                chosen.append(SlotSpan(slot, str(number), start, end, "exact", 1.0))
    return tuple(sorted(chosen, key=lambda s: int(s.start or 0)))
