"""Safety guards for rewrites: polarity flips, target changes, sensitive intents.

A rewrite must never turn "lights off" into "lights on" or "lock the door" into "unlock the
door", and must not swap the thing being acted on. These checks read only the two patterns (and
what the assistant logged for the target pattern when it succeeded), so they work on any
assistant's logs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from selflearn.mining.delex import slot_signature

POLARITY: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "power": (
        frozenset({"on", "start", "activate", "enable", "switch on"}),
        frozenset({"off", "stop", "deactivate", "disable", "kill", "cut"}),
    ),
    "open": (frozenset({"open", "raise"}), frozenset({"close", "shut", "lower"})),
    "lock": (frozenset({"lock"}), frozenset({"unlock"})),
    "level": (
        frozenset({"up", "increase", "brighter", "brighten", "louder", "raise", "warmer", "higher"}),
        frozenset({"down", "decrease", "dimmer", "dim", "quieter", "lower", "cooler", "colder"}),
    ),
    "play": (frozenset({"play", "resume", "unpause", "continue"}), frozenset({"pause", "stop"})),
    "mute": (frozenset({"mute", "silence"}), frozenset({"unmute"})),
    "alarm": (frozenset({"arm"}), frozenset({"disarm"})),
    "list": (frozenset({"add", "put", "include", "buy"}), frozenset({"remove", "delete", "rid", "cross"})),
}
"""Opposite word sets per action dimension."""

SENSITIVE_WORDS = frozenset(
    {"lock", "unlock", "door", "doors", "garage", "gate", "alarm", "arm", "disarm", "cover", "covers"}
)
"""Words that put a pattern in a sensitive domain (locks, covers and garage doors, alarms)."""

SENSITIVE_DOMAINS = frozenset({"lock", "cover", "alarm_control_panel"})
"""Entity domains whose actions need the higher bar."""

_WORD = re.compile(r"[a-z']+")


def polarity(pattern: str) -> dict[str, frozenset[int]]:
    """For each action dimension, which sides (0 or 1) the pattern's words take."""
    return dict(_polarity(pattern))


@lru_cache(maxsize=65536)
def _polarity(pattern: str) -> tuple[tuple[str, frozenset[int]], ...]:
    words = set(_WORD.findall(pattern))
    out: list[tuple[str, frozenset[int]]] = []
    for dim, sides in POLARITY.items():
        taken = frozenset(side for side, vocab in enumerate(sides) if words & vocab)
        if taken:
            out.append((dim, taken))
    return tuple(out)


def flips_polarity(source: str, target: str) -> bool:
    """True when the target takes a side of some action dimension that the source takes the
    opposite side of ("turn off the {area} light" -> "switch on the {area} light")."""
    src, dst = polarity(source), polarity(target)
    for dim, sides in dst.items():
        theirs = src.get(dim)
        if theirs and not (sides & theirs):
            return True
    return False


SENSITIVE_DIMENSIONS = frozenset({"lock", "alarm", "open"})
"""Action dimensions a rewrite must never decide for the user when the request did not say."""

OBJECT_WORDS: dict[str, str] = {
    **dict.fromkeys(("light", "lights", "lamp", "lamps", "lighting", "bulb", "bulbs"), "light"),
    **dict.fromkeys(("fan", "fans"), "fan"),
    **dict.fromkeys(("tv", "television", "telly"), "tv"),
    **dict.fromkeys(("speaker", "speakers", "music", "radio"), "speaker"),
    **dict.fromkeys(
        ("blind", "blinds", "curtain", "curtains", "shade", "shades", "shutter", "shutters"), "cover"
    ),
    **dict.fromkeys(("door", "doors", "gate", "garage"), "door"),
    **dict.fromkeys(("lock", "locks"), "lock"),
    **dict.fromkeys(("heater", "heating", "thermostat", "ac", "aircon"), "climate"),
    **dict.fromkeys(("vacuum", "hoover", "robot"), "vacuum"),
    **dict.fromkeys(("socket", "plug", "outlet"), "socket"),
    **dict.fromkeys(("timer", "timers"), "timer"),
    **dict.fromkeys(("list",), "list"),
}
"""Words that name the kind of thing a request acts on."""


def adds_polarity(source: str, target: str, dimensions: Iterable[str] | None = None) -> bool:
    """True when the target takes a side of an action dimension the source does not mention at
    all ("the front door" -> "unlock the front door"): the rewrite would choose the action.
    ``dimensions`` limits the check (default: every dimension)."""
    src, dst = polarity(source), polarity(target)
    dims = set(dst) if dimensions is None else set(dst) & set(dimensions)
    return any(dim not in src for dim in dims)


def changes_object(source: str, target: str) -> bool:
    """True when both patterns name the kind of thing acted on and the kinds differ ("turn off the
    {area} fan" -> "turn off the {area} light")."""
    src = {OBJECT_WORDS[w] for w in _WORD.findall(source) if w in OBJECT_WORDS}
    dst = {OBJECT_WORDS[w] for w in _WORD.findall(target) if w in OBJECT_WORDS}
    return bool(src) and bool(dst) and not (src & dst)


def changes_target(source: str, target: str) -> bool:
    """True when the placeholders differ: the rewrite would drop, add or swap an entity, area,
    floor or number, so it cannot be filled from what the user said."""
    return slot_signature(source) != slot_signature(target)


def is_sensitive(pattern: str, domains: Iterable[str] = ()) -> bool:
    """True for locks, covers and garage doors, and alarms: by the pattern's words or by the
    domains the assistant acted on when the pattern succeeded."""
    return bool(set(_WORD.findall(pattern)) & SENSITIVE_WORDS) or bool(set(domains) & SENSITIVE_DOMAINS)
