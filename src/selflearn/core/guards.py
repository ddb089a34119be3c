"""Safety guards for rewrites: polarity flips, target changes, sensitive intents.

A rewrite must never turn "lights off" into "lights on" or "lock the door" into "unlock the
door", and must not swap the thing being acted on. These checks read only the two patterns (and
what the assistant logged for the target pattern when it succeeded), so they work on any
assistant's logs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from functools import lru_cache

import jellyfish
from rapidfuzz.distance import Levenshtein

from selflearn.core.delex import slot_signature
from selflearn.core.home import Home, normalize_name

POLARITY: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "power": (
        frozenset({"on", "start", "activate", "enable"}),
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

SENSITIVE_CLASSES = frozenset({"door", "garage", "garage_door", "gate"})
"""Device classes that make an entity of any domain sensitive (a door or gate on a switch)."""

_WORD = re.compile(r"[a-z']+")

CACHE_SIZE = 4096
"""Patterns whose word sets and sounds the carrier-phrase guard keeps. Small on purpose: every
cached entry is an object the garbage collector scans, and a long-running service pays for those
scans in pauses. (The bit sets of :func:`facts` are plain ints in a plain dict, which the
collector does not scan, so that cache is much larger.)"""


def polarity(pattern: str) -> dict[str, frozenset[int]]:
    """For each action dimension, which sides (0 or 1) the pattern's words take."""
    bits = facts(pattern)
    return {
        dim: frozenset(side for side in (0, 1) if bits >> (2 * d + side) & 1)
        for d, dim in enumerate(POLARITY)
        if bits >> (2 * d) & 3
    }


def flips_polarity(source: str, target: str, on_off_means: str | None = None) -> bool:
    """True when the target takes a side of some action dimension that the source takes the
    opposite side of ("turn off the {area} light" -> "switch on the {area} light"). With
    ``on_off_means`` (:data:`ON_OFF_MEANS`) the source's on/off also count as that dimension's
    sides: "turn off the front door" -> "lock the front door" flips when the front door is a lock."""
    src = facts(source)
    if on_off_means is not None:
        src = _power_as(src, on_off_means)
    return _flips(src, facts(target))


ON_OFF_MEANS: dict[str, str] = {"cover": "open", "valve": "open", "lock": "lock"}
"""Entity domain -> the :data:`POLARITY` dimension its on and off mean, as Home Assistant runs them:
its templates say "open the {name}" and "lock the {name}" as ``HassTurnOn`` and "close" and "unlock"
as ``HassTurnOff``, and turning a cover or valve on opens it, a lock on locks it. So "front door on"
asks for what "lock the front door" does when the front door is a lock (never what "unlock" does)."""


ON_OFF_DIMENSIONS = tuple(sorted(set(ON_OFF_MEANS.values())))
"""The dimensions on/off can mean (:data:`ON_OFF_MEANS`), each once."""


def on_off_meaning(domains: Iterable[str]) -> str | None:
    """The dimension on/off mean for things of all these ``domains`` (:data:`ON_OFF_MEANS`), or
    None when they mean on/off (a light), differ, or there are none."""
    found = {ON_OFF_MEANS.get(domain) for domain in domains}
    if len(found) != 1:
        return None
    return found.pop()


def on_off_rejection(
    source: str,
    target: str,
    means: str,
    on: bool,
    related: Callable[[str, str], bool] | None = None,
) -> str | None:
    """:func:`rejection` for a target that turns things whose on/off mean ``means``
    (:data:`ON_OFF_MEANS`) on (``on``) or off, judged by what it does as well as by its words: the
    source's on/off read as that dimension's sides, then "opposite action" when the source says the
    other side ("turn off the front door" -> "secure the front door", a lock's turn-on whatever
    its words), "chooses a sensitive action" when it says neither; None when it says this one."""
    why = rejection(source, target, related, means)
    if why is not None:
        return why
    sides = _power_as(facts(source), means) >> _DIM_SHIFT[means] & 3
    if not sides:
        return "chooses a sensitive action"
    if not sides & (1 if on else 2):
        return "opposite action"
    return None


def named_on_off_meaning(text: str, home: Home) -> str | None:
    """:func:`on_off_meaning` of the home's entities whose name or alias ``text`` says."""
    padded = f" {normalize_name(text)} "
    return on_off_meaning(domain for name, domain in _on_off_names(home) if f" {name} " in padded)


@lru_cache(maxsize=1024)
def _on_off_names(home: Home) -> tuple[tuple[str, str], ...]:
    return tuple(
        (name, entity.domain)
        for entity in home.entities
        if entity.domain in ON_OFF_MEANS
        for name in map(normalize_name, entity.spoken_names)
        if name
    )


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

ATTRIBUTE_WORDS: dict[str, tuple[str, ...]] = {
    "brightness": ("light",),
    "volume": ("tv", "speaker"),
    "temperature": ("climate", "light"),  # a thermostat's, or a light's colour temperature
    "temp": ("climate", "light"),
    "degrees": ("climate",),
}
"""Words that name what only some kinds of thing have: for the guards they name those kinds, so a
rewrite from one kind to another's attribute ("add {number} hours timer" -> "brightness to
{number}") changes what is acted on, while "turn the tv up" -> "turn the volume up" does not."""


def adds_polarity(source: str, target: str, dimensions: Iterable[str] | None = None) -> bool:
    """True when the target takes a side of an action dimension the source does not mention at
    all ("the front door" -> "unlock the front door"): the rewrite would choose the action.
    ``dimensions`` limits the check (default: every dimension)."""
    mask = _LOW if dimensions is None else _dim_mask(dimensions)
    return _adds(facts(source), facts(target), mask)


def changes_object(source: str, target: str) -> bool:
    """True when both patterns name the kind of thing acted on (or an attribute only some kinds
    have, :data:`ATTRIBUTE_WORDS`) and the kinds differ ("turn off the {area} fan" -> "turn off the
    {area} light", "{number} timer" -> "brightness to {number}")."""
    return _other_kind(facts(source), facts(target))


def changes_action(source: str, target: str) -> bool:
    """True when both patterns take a side of some action dimension but share none: the rewrite
    would swap one action for another ("turn the lights up" -> "turn the lights out", "mute for
    twenty minutes" -> "stop timer for twenty minutes"). The list dimension is left out: its
    words double as prepositions and other actions' words ("eggs on the list", "out of milk")."""
    return _other_action(facts(source), facts(target))


def changes_meaning(source: str, target: str) -> bool:
    """True when the rewrite would do something else: :func:`flips_polarity`,
    :func:`changes_action` or :func:`changes_object` (each pattern's bits read once). The miner
    lets such a rewrite through only on overwhelming evidence, and
    :meth:`~selflearn.rewrite.table.RewriteTable.unguarded` lists the table rows that have it."""
    src, dst = facts(source), facts(target)
    return _flips(src, dst) or _other_action(src, dst) or _other_kind(src, dst)


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
            if _alike(a, b) or (related is not None and related(a, b)):
                return False
    return True


@lru_cache(maxsize=1 << 16)
def _alike(a: str, b: str) -> bool:
    """Two words that sound the same or are one recogniser slip apart (cached: the request path
    checks a few hundred candidates, most of them sharing the home's words)."""
    return _metaphone(a) == _metaphone(b) or _similarity(a, b) >= 0.6


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
    return _drops_time(facts(source), facts(target))


def changes_target(source: str, target: str) -> bool:
    """True when the placeholders differ: the rewrite would drop, add or swap an entity, area,
    floor or number, so it cannot be filled from what the user said."""
    return slot_signature(source) != slot_signature(target)


def evidence_bar(k: int, margin: float, sensitive: bool, factor: float) -> tuple[int, float]:
    """The users (k) and success margin a rewrite needs: ``factor`` times both for a sensitive
    one (:func:`is_sensitive`)."""
    return (math.ceil(k * factor), margin * factor) if sensitive else (k, margin)


def overwhelming(
    users: int,
    p_target: float,
    p_source: float,
    k: int,
    margin: float,
    users_needed: int = 50,
    success_needed: float = 0.95,
) -> bool:
    """The evidence on which the miner emits a rewrite that changes the meaning
    (:func:`changes_meaning`, :func:`changes_target`): at least ``max(k, users_needed)`` users, a
    target success rate of at least ``success_needed``, and twice the margin over the source.
    :meth:`~selflearn.rewrite.table.RewriteTable.unguarded` applies the same rule to saved rows."""
    enough_users = users >= max(k, users_needed)
    return enough_users and p_target >= success_needed and p_target - p_source >= 2 * margin


def is_sensitive(pattern: str, domains: Iterable[str] = (), home: Home | None = None) -> bool:
    """True for locks, covers and garage doors, and alarms: by the pattern's words, by the
    domains the assistant acted on when the pattern succeeded, or -- given the ``home`` -- by the
    name of one of its entities of those domains in the text ("open the bay" when the Bay is a
    garage door; "turn off the portal" when the Portal is a lock, which unlocks it)."""
    if facts(pattern) & _SENSITIVE_BIT or set(domains) & SENSITIVE_DOMAINS:
        return True
    if home is None:
        return False
    names = sensitive_names(home)
    if not names:
        return False
    padded = f" {normalize_name(pattern)} "
    return any(f" {name} " in padded for name in names)


def sensitive_names(home: Home) -> frozenset[str]:
    """The names and aliases (normalised) of a home's entities in a sensitive domain -- locks,
    covers (garage doors, gates, doors, blinds) and alarm panels -- and of entities whose device
    class is a door, a garage or a gate."""
    return _sensitive_names(home)


@lru_cache(maxsize=1024)
def _sensitive_names(home: Home) -> frozenset[str]:
    found: set[str] = set()
    for entity in home.entities:
        if entity.domain in SENSITIVE_DOMAINS or entity.device_class in SENSITIVE_CLASSES:
            found.update(normalize_name(n) for n in entity.spoken_names)
    found.discard("")
    return frozenset(found)


# --- what the guards read from a pattern, packed in one int -----------------------------------
#
# Bits 2d and 2d + 1: the pattern takes side 0 / side 1 of the d-th dimension of POLARITY. Then
# one bit per kind of thing of OBJECT_WORDS, one per base form of TIME_WORDS, and one for a
# SENSITIVE_WORDS word. Words are matched one at a time, so a two-word vocabulary entry
# ("switch on") never matches, exactly as before the packing.


def _bit_layout() -> tuple[dict[str, int], dict[str, int], dict[str, int], int]:
    dims = {dim: 2 * d for d, dim in enumerate(POLARITY)}
    bit = 2 * len(POLARITY)
    objects: dict[str, int] = {}
    for kind in dict.fromkeys(OBJECT_WORDS.values()):
        objects[kind], bit = 1 << bit, bit + 1
    times: dict[str, int] = {}
    for word, base in TIME_WORDS.items():
        if (base or word) not in times:
            times[base or word], bit = 1 << bit, bit + 1
    return dims, objects, times, 1 << bit


_DIM_SHIFT, _OBJECT_BIT, _TIME_BIT, _SENSITIVE_BIT = _bit_layout()
_LOW = sum(1 << shift for shift in _DIM_SHIFT.values())
"""The low bit of every dimension's pair: where :func:`_dims` marks a dimension as taken."""
_ACTION_DIMS = _LOW & ~(1 << _DIM_SHIFT["list"])
_OBJECT_BITS = sum(_OBJECT_BIT.values())
_TIME_BITS = sum(_TIME_BIT.values())


def _dims(bits: int) -> int:
    """The dimensions ``bits`` takes any side of, as the low bit of each dimension's pair."""
    return (bits | bits >> 1) & _LOW


def _dim_mask(dimensions: Iterable[str]) -> int:
    return sum(1 << _DIM_SHIFT[dim] for dim in set(dimensions) if dim in _DIM_SHIFT)


# The guards on two patterns' bits (``src``, ``dst``): the functions above and :func:`rejection`.


def _flips(src: int, dst: int) -> bool:
    return bool(_dims(src) & _dims(dst) & ~_dims(src & dst))


def _other_kind(src: int, dst: int) -> bool:
    src, dst = src & _OBJECT_BITS, dst & _OBJECT_BITS
    return bool(src) and bool(dst) and not (src & dst)


def _other_action(src: int, dst: int) -> bool:
    src, dst = _dims(src) & _ACTION_DIMS, _dims(dst) & _ACTION_DIMS
    return bool(src) and bool(dst) and not (src & dst)


def _drops_time(src: int, dst: int) -> bool:
    return bool(src & ~dst & _TIME_BITS)


def _power_as(bits: int, dim: str) -> int:
    """``bits`` with the sides taken of the power dimension also taken of ``dim``."""
    power = bits >> _DIM_SHIFT["power"] & 3
    return bits | power << _DIM_SHIFT[dim]


def _adds(src: int, dst: int, mask: int) -> bool:
    return bool(_dims(dst) & ~_dims(src) & mask)


def _word_bits() -> dict[str, int]:
    bits: dict[str, int] = {}
    for dim, sides in POLARITY.items():
        for side, vocab in enumerate(sides):
            for word in vocab:
                bits[word] = bits.get(word, 0) | 1 << (_DIM_SHIFT[dim] + side)
    for word, kind in OBJECT_WORDS.items():
        bits[word] = bits.get(word, 0) | _OBJECT_BIT[kind]
    for word, kinds in ATTRIBUTE_WORDS.items():
        for kind in kinds:
            bits[word] = bits.get(word, 0) | _OBJECT_BIT[kind]
    for word, base in TIME_WORDS.items():
        bits[word] = bits.get(word, 0) | _TIME_BIT[base or word]
    for word in SENSITIVE_WORDS:
        bits[word] = bits.get(word, 0) | _SENSITIVE_BIT
    return bits


_WORD_BITS = _word_bits()

FACTS_CACHE_SIZE = 1 << 18
"""Patterns whose :func:`facts` are kept (str -> int: nothing the garbage collector scans)."""
_FACTS: dict[str, int] = {}


def facts(pattern: str) -> int:
    """What every guard here reads from ``pattern``'s words, packed in one int (see above).
    Cached: a candidate pattern is checked against request after request."""
    found = _FACTS.get(pattern)
    if found is None:
        found = 0
        get = _WORD_BITS.get
        for word in _WORD.findall(pattern):
            found |= get(word, 0)
        if len(_FACTS) >= FACTS_CACHE_SIZE:
            _FACTS.clear()
        _FACTS[pattern] = found
    return found


_SENSITIVE_DIMS = _dim_mask(SENSITIVE_DIMENSIONS)


def rejection(
    source: str,
    target: str,
    related: Callable[[str, str], bool] | None = None,
    on_off_means: str | None = None,
) -> str | None:
    """The first guard that rejects rewriting pattern ``source`` to pattern ``target``, or None:
    :func:`flips_polarity`, :func:`changes_object`, :func:`changes_action`,
    :func:`shares_only_carrier`, :func:`drops_time`, then :func:`adds_polarity` over the
    :data:`SENSITIVE_DIMENSIONS`, in that order, each pattern's bits read once (the request path
    checks every candidate). ``on_off_means``: the target acts on a thing whose on and off are
    that dimension's sides (:data:`ON_OFF_MEANS`), so the source's on/off count as them."""
    src, dst = facts(source), facts(target)
    if on_off_means is not None:
        src = _power_as(src, on_off_means)
    if _flips(src, dst):
        return "opposite action"
    if _other_kind(src, dst):
        return "another kind of thing"
    if _other_action(src, dst):
        return "another action"
    if shares_only_carrier(source, target, related):
        return "only a carrier phrase in common"
    if _drops_time(src, dst):
        return "drops when"
    if _adds(src, dst, _SENSITIVE_DIMS):
        return "chooses a sensitive action"
    return None


def polarity_counts(query: str, candidate: str) -> tuple[int, int, int]:
    """For the ranker: how many action dimensions ``query`` takes a side of, how many of the
    candidate's it takes exactly the same sides of, and how many of the candidate's it does not
    mention."""
    q, c = facts(query), facts(candidate)
    q_dims, c_dims = _dims(q), _dims(c)
    same = c_dims & ~_dims(q ^ c)
    return q_dims.bit_count(), same.bit_count(), (c_dims & ~q_dims).bit_count()


def clear_caches() -> None:
    """Empty the per-pattern caches of these guards (they only ever hold derived values)."""
    _FACTS.clear()
    for fn in (_content, _metaphone):
        fn.cache_clear()
