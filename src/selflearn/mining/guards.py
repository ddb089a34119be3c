"""Safety guards for rewrites: polarity flips, target changes, sensitive intents.

A rewrite must never turn "lights off" into "lights on" or "lock the door" into "unlock the
door", and must not swap the thing being acted on. These checks read only the two patterns (and
what the assistant logged for the target pattern when it succeeded), so they work on any
assistant's logs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache

import jellyfish
from rapidfuzz.distance import Levenshtein

from selflearn.mining.delex import slot_signature

POLARITY: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "power": (
        frozenset({"on", "start", "activate", "enable", "switch on"}),
        frozenset({"off", "out", "stop", "deactivate", "disable", "kill", "cut"}),
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

CACHE_SIZE = 4096
"""Patterns whose analysis each guard keeps. Small on purpose: every cached entry is an object
the garbage collector scans, and a long-running service pays for those scans in pauses."""


def polarity(pattern: str) -> dict[str, frozenset[int]]:
    """For each action dimension, which sides (0 or 1) the pattern's words take."""
    return dict(_polarity(pattern))


def _polarity_index() -> dict[str, tuple[tuple[str, int], ...]]:
    index: dict[str, list[tuple[str, int]]] = {}
    for dim, sides in POLARITY.items():
        for side, vocab in enumerate(sides):
            for word in vocab:
                index.setdefault(word, []).append((dim, side))
    return {word: tuple(found) for word, found in index.items()}


_POLARITY_INDEX = _polarity_index()
"""Word -> the (dimension, side) pairs it takes: a lookup per word of the pattern instead of a
set intersection per dimension and side."""


@lru_cache(maxsize=CACHE_SIZE)
def _polarity(pattern: str) -> dict[str, frozenset[int]]:
    """Cached :func:`polarity` (shared: callers here only read it)."""
    found: dict[str, set[int]] = {}
    for word in set(_WORD.findall(pattern)):
        for dim, side in _POLARITY_INDEX.get(word, ()):
            found.setdefault(dim, set()).add(side)
    return {dim: frozenset(found[dim]) for dim in POLARITY if dim in found}


def flips_polarity(source: str, target: str) -> bool:
    """True when the target takes a side of some action dimension that the source takes the
    opposite side of ("turn off the {area} light" -> "switch on the {area} light")."""
    src, dst = _polarity(source), _polarity(target)
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
    src, dst = _polarity(source), _polarity(target)
    dims = set(dst) if dimensions is None else set(dst) & set(dimensions)
    return any(dim not in src for dim in dims)


def changes_object(source: str, target: str) -> bool:
    """True when both patterns name the kind of thing acted on and the kinds differ ("turn off the
    {area} fan" -> "turn off the {area} light")."""
    src, dst = _objects(source), _objects(target)
    return bool(src) and bool(dst) and not (src & dst)


@lru_cache(maxsize=CACHE_SIZE)
def _objects(pattern: str) -> frozenset[str]:
    return frozenset(OBJECT_WORDS[w] for w in _WORD.findall(pattern) if w in OBJECT_WORDS)


def changes_action(source: str, target: str) -> bool:
    """True when both patterns take a side of some action dimension but share none: the rewrite
    would swap one action for another ("turn the lights up" -> "turn the lights out", "mute for
    twenty minutes" -> "stop timer for twenty minutes"). The list dimension is left out: its
    words double as prepositions and other actions' words ("eggs on the list", "out of milk")."""
    src, dst = _actions(source), _actions(target)
    return bool(src) and bool(dst) and src.isdisjoint(dst)


@lru_cache(maxsize=CACHE_SIZE)
def _actions(pattern: str) -> frozenset[str]:
    return frozenset(_polarity(pattern)) - {"list"}


CARRIER_WORDS = frozenset(
    """a an the me my i i'm im you your it its it's is are was be am to of in on at for with and or
    please can could would will do does did tell say give show let know what whats what's how hey
    hi ok okay now just some this that there here want need like get once again""".split()  # noqa: SIM905
)
"""Words that carry a request without saying what it is about ("tell me ...", "can you ...")."""


def shares_only_carrier(source: str, target: str, related: Callable[[str, str], bool] | None = None) -> bool:
    """True when two patterns without placeholders have no content word in common: every word
    they share is a carrier like "tell me" ("tell me a joke" -> "tell me the time"), or the
    source has no content word at all ("tell me once again"): nothing says what it is about. A
    content word counts as shared when it is equal, sounds the same (metaphone), is one ASR slip
    away (normalised similarity >= 0.6: "last"/"list", "diner"/"timer") or, given ``related``, is
    related in meaning ("clock"/"time"). Patterns with placeholders are anchored by the values
    the user said, which the rewrite keeps, so they are not checked."""
    if "{" in source or "{" in target:
        return False
    src, dst = _content(source), _content(target)
    if src & dst:
        return False
    for a in src:
        for b in dst:
            if _metaphone(a) == _metaphone(b) or _similarity(a, b) >= 0.6:
                return False
            if related is not None and related(a, b):
                return False
    return True


@lru_cache(maxsize=CACHE_SIZE)
def _content(pattern: str) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(pattern) if w not in CARRIER_WORDS)


@lru_cache(maxsize=CACHE_SIZE)
def _metaphone(word: str) -> str:
    return str(jellyfish.metaphone(word))


def _similarity(a: str, b: str) -> float:
    return float(Levenshtein.normalized_similarity(a, b))


TIME_WORDS: dict[str, str] = dict.fromkeys(
    (
        *("tomorrow", "yesterday", "morning", "afternoon", "evening", "weekend", "week", "month"),
        *("year", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
    ),
    "",
) | {"tomorrows": "tomorrow", "tomorrow's": "tomorrow", "weekends": "weekend", "weeks": "week"}
"""Words that put a request at another time than now (mapped to their base form); "today" and
"tonight" are left out: dropping them rarely changes what is asked ("the date today")."""


def drops_time(source: str, target: str) -> bool:
    """True when the source says when ("the weather this week", "lights on tomorrow morning")
    and the target drops it: the rewrite would answer or act for now instead."""
    return not _time_words(source) <= _time_words(target)


@lru_cache(maxsize=CACHE_SIZE)
def _time_words(pattern: str) -> frozenset[str]:
    return frozenset(TIME_WORDS[w] or w for w in _WORD.findall(pattern) if w in TIME_WORDS)


def changes_target(source: str, target: str) -> bool:
    """True when the placeholders differ: the rewrite would drop, add or swap an entity, area,
    floor or number, so it cannot be filled from what the user said."""
    return slot_signature(source) != slot_signature(target)


def is_sensitive(pattern: str, domains: Iterable[str] = ()) -> bool:
    """True for locks, covers and garage doors, and alarms: by the pattern's words or by the
    domains the assistant acted on when the pattern succeeded."""
    return _sensitive_words(pattern) or bool(set(domains) & SENSITIVE_DOMAINS)


@lru_cache(maxsize=CACHE_SIZE)
def _sensitive_words(pattern: str) -> bool:
    return not SENSITIVE_WORDS.isdisjoint(_WORD.findall(pattern))


def clear_caches() -> None:
    """Empty the per-pattern caches of these guards (they only ever hold derived values)."""
    for fn in (_polarity, _objects, _sensitive_words, _actions, _content, _metaphone, _time_words):
        fn.cache_clear()
