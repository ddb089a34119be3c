"""Slot-span projection: where in an utterance each slot value was said.

A label's slots come from a turn's NLU -- often another turn's, a successful paraphrase or a
confirmed proposal -- as values Home Assistant would get (``"Kitchen Ceiling"``, ``"bedroom"``,
``25``). :func:`project_slots` finds each value's words in the labelled turn's text. For
each surface form of the value, longest first, it tries

1. **exact**: the form as written, as whole words;
2. **normalised**: case- and punctuation-insensitive (Home Assistant's name comparison,
   :func:`selflearn.core.home.normalize_name`), word for word;

and when no form is found so,

3. **fuzzy**: the run of words most similar to a surface form (normalised Levenshtein
   similarity of at least ``fuzzy_min``, over runs one word shorter to one word longer than the
   form), for ASR slips ("kitten ceiling" for "kitchen ceiling").

The surface forms of a value are the value itself, and with the home: the configured name and
every alias of the area, floor or entity it names (an area id such as ``living_room`` is said
"lounge" too), an entity's name with its area said by an alias of the area ("lounge lamp" for
"Living Room Lamp") or shortened by its area when no other entity shortens so ("tv" for the
living room's "Living Room TV"); for a number, its digits and its words ("25",
"twenty five"); for a domain or a device class, the words people use for that kind of thing
(``light``: "lights", "lamp").

A slot that cannot be placed gets no span (``start``/``end`` None) and counts against the
label's confidence, unless nothing in the text was expected to say it: a domain, device class
or response slot the matcher inferred from the phrasing, or an area that is the device's own
(``"turn on the lights"`` on the kitchen speaker).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from rapidfuzz.distance import Levenshtein

from selflearn.core.delex import Delexicalizer
from selflearn.core.guards import OBJECT_WORDS
from selflearn.core.home import Home, normalize_name
from selflearn.core.schema import SlotValue
from selflearn.core.text import number_to_words

Placement = Literal["exact", "normalised", "fuzzy", "implicit", "device", "missing"]
"""How a slot was placed: found ``exact``, ``normalised`` or ``fuzzy``; not said but not expected
to be (``implicit``: inferred from the phrasing; ``device``: the device's own area); or
``missing``."""

FUZZY_MIN = 0.8
"""Least normalised Levenshtein similarity of a fuzzy match."""

FUZZY_MIN_CHARS = 4
"""Surface forms shorter than this are only matched exactly or normalised ("on" is not "one")."""

INFERRED_SLOTS = frozenset({"domain", "device_class", "response", "volume_step", "brightness_step"})
"""Slots a matcher fills from the phrasing rather than from words that name the value
(``domain: light`` from "lights", ``volume_step: down`` from "quieter")."""

_DOMAIN_KINDS = {"media_player": ("tv", "speaker"), "cover": ("cover", "door"), "lock": ("lock", "door")}
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


@dataclass(frozen=True)
class SlotSpan:
    """One slot of a label and where it was said."""

    slot: str
    """Slot name (``area``, ``name``, ``brightness``)."""
    value: str
    """The value as Home Assistant would get it, as text."""
    start: int | None = None
    """Character offset of the first character said (None: not placed)."""
    end: int | None = None
    """Offset one past the last character said."""
    placement: Placement = "missing"
    """How it was placed."""
    score: float = 0.0
    """Similarity of the placed words to the form found (1.0 for exact and normalised)."""

    @property
    def counts(self) -> bool:
        """Whether the slot counts towards the share placed (implicit and device slots do not)."""
        return self.placement not in ("implicit", "device")

    def as_row(self) -> dict[str, object]:
        """The slot as a row of the labels table's ``slots`` list."""
        return {"slot": self.slot, "value": self.value, "start": self.start, "end": self.end}


def placed_share(spans: Iterable[SlotSpan]) -> float:
    """Share of the slots that count (:attr:`SlotSpan.counts`) that were placed, each weighted by
    its match score; 1.0 when none count."""
    counted = [s for s in spans if s.counts]
    if not counted:
        return 1.0
    return sum(s.score for s in counted) / len(counted)


def value_text(value: SlotValue) -> str:
    """A slot value as text: numbers without a trailing ``.0``, booleans lower-case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def surface_forms(slot: str, value: SlotValue, home: Home | None = None) -> list[str]:
    """How ``value`` of slot ``slot`` may have been said, longest first (see the module doc)."""
    text = value_text(value)
    forms = [text, text.replace("_", " ")]
    number = _as_int(value)
    if number is not None and number >= 0:
        forms += [str(number), number_to_words(number)]
        if number == 100:
            forms.append("a hundred")
    if home is not None and isinstance(value, str):
        area = home.area_named(value)
        if area is not None:
            forms += [area.name, *area.aliases]
        floor = home.floor_named(value)
        if floor is not None:
            forms += [floor.name, *floor.aliases]
        by_id = home.entity_by_id.get(value)
        for entity in home.entities_named(value) or ([by_id] if by_id is not None else []):
            full = normalize_name(entity.name)
            forms += list(entity.spoken_names)
            area = home.area_by_id.get(entity.area_id or "")
            prefix = normalize_name(area.name) + " " if area is not None else ""
            if area is not None and full.startswith(prefix):
                forms += [f"{alias} {full[len(prefix) :]}" for alias in area.aliases]
            forms += [short for short, names in _short_names(home).items() if names == [full]]
    if slot in ("domain", "device_class") and isinstance(value, str):
        kinds = _DOMAIN_KINDS.get(value, (OBJECT_WORDS.get(value, value),))
        forms += [text + "s"] + [word for word, kind in OBJECT_WORDS.items() if kind in kinds]
    unique = {normalize_name(f): f for f in forms if normalize_name(f)}
    return sorted(unique.values(), key=lambda f: (-len(f), f))


def project_slots(
    text: str,
    slots: Mapping[str, SlotValue],
    home: Home | None = None,
    device_area: str | None = None,
    fuzzy_min: float = FUZZY_MIN,
) -> tuple[SlotSpan, ...]:
    """Each slot of ``slots`` (None values dropped) with its span in ``text``; slots keep their
    order. Slots with longer surface forms are placed first, and spans never overlap."""
    tokens = [(m.start(), m.end(), normalize_name(m.group(0))) for m in _WORD.finditer(text)]
    used: list[tuple[int, int]] = []
    items = [(slot, value) for slot, value in slots.items() if value is not None]
    forms = {slot: surface_forms(slot, value, home) for slot, value in items}
    order = sorted(items, key=lambda item: -max((len(f) for f in forms[item[0]]), default=0))
    found: dict[str, SlotSpan] = {}
    for slot, value in order:
        span = _place(text, tokens, forms[slot], used, fuzzy_min)
        if span is not None:
            start, end, how, score = span
            used.append((start, end))
            found[slot] = SlotSpan(slot, value_text(value), start, end, how, score)
            continue
        how_missing: Placement = "missing"
        if slot in INFERRED_SLOTS or isinstance(value, bool):
            how_missing = "implicit"
        elif slot == "area" and device_area is not None and _same_area(value, device_area, home):
            how_missing = "device"
        found[slot] = SlotSpan(slot, value_text(value), placement=how_missing)
    return tuple(found[slot] for slot, _ in items)


def _place(
    text: str,
    tokens: list[tuple[int, int, str]],
    forms: list[str],
    used: list[tuple[int, int]],
    fuzzy_min: float,
) -> tuple[int, int, Placement, float] | None:
    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in used)

    words = [t[2] for t in tokens]
    for form in forms:  # longest first: a longer form found exactly or normalised wins
        for match in re.finditer(rf"(?<!\w){re.escape(form)}(?!\w)", text):
            if free(match.start(), match.end()):
                return match.start(), match.end(), "exact", 1.0
        want = normalize_name(form).split()
        for i in range(len(words) - len(want) + 1):
            if words[i : i + len(want)] == want:
                start, end = tokens[i][0], tokens[i + len(want) - 1][1]
                if free(start, end):
                    return start, end, "normalised", 1.0
    best: tuple[float, int, int] | None = None
    for form in forms:
        norm = normalize_name(form)
        if len(norm) < FUZZY_MIN_CHARS:
            continue
        n = len(norm.split())
        for size in range(max(1, n - 1), n + 2):
            for i in range(len(words) - size + 1):
                start, end = tokens[i][0], tokens[i + size - 1][1]
                score = float(Levenshtein.normalized_similarity(" ".join(words[i : i + size]), norm))
                if score >= fuzzy_min and free(start, end) and (best is None or score > best[0]):
                    best = (score, start, end)
    if best is not None:
        return best[1], best[2], "fuzzy", best[0]
    return None


@lru_cache(maxsize=256)
def _short_names(home: Home) -> dict[str, list[str]]:
    """How people shorten the home's entity names (``"tv"`` for the living room's "Living Room
    TV"; :meth:`selflearn.core.delex.Delexicalizer.short_names`)."""
    return Delexicalizer(home).short_names()


def _as_int(value: SlotValue) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _same_area(value: SlotValue, device_area: str, home: Home | None) -> bool:
    if home is not None:
        a, b = home.area_id_of(str(value)), home.area_id_of(device_area)
        if a is not None and a == b:
            return True
    return normalize_name(str(value)) == normalize_name(device_area)
