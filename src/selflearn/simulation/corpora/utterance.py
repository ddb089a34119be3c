"""HWU64 and SLURP utterances: normalised words tagged with their entity spans, the results a
per-intent handler returns, and the vocabulary and helpers the handlers share."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from selflearn.simulation.corpora.common import _SPACES, _glue, _norm, _parse_number
from selflearn.simulation.corpora.mapping import PLACEHOLDER_ACCEPTS

# --------------------------------------------------------------------------------------------
# HWU64 and SLURP
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Utt:
    """A normalised utterance as words, each tagged with the entity span it belongs to."""

    words: tuple[str, ...]
    tags: tuple[int | None, ...]
    types: tuple[str, ...]
    """Entity type of each span index."""

    def span_words(self, idx: int) -> list[str]:
        return [w for w, t in zip(self.words, self.tags, strict=True) if t == idx]

    def spans(self, *types: str) -> list[int]:
        return [i for i, t in enumerate(self.types) if (not types or t in types) and i in self.tags]

    def value(self, idx: int) -> str:
        return " ".join(self.span_words(idx))

    @property
    def text(self) -> str:
        return _glue(" ".join(self.words))

    def render(self, repl: Mapping[int, Sequence[str]]) -> str:
        out: list[str] = []
        last: int | None = None
        for word, tag in zip(self.words, self.tags, strict=True):
            if tag is not None and tag in repl:
                if tag != last:
                    out.extend(w for w in repl[tag] if w)
            else:
                out.append(word)
            last = tag
        return _glue(_SPACES.sub(" ", " ".join(out)).strip())


_WAKE_WORDS: Final = tuple(
    w.split()
    for w in (
        "hey olly",
        "hi olly",
        "ok olly",
        "okay olly",
        "olly",
        "ollie",
        "ok google",
        "okay google",
        "hey google",
        "google",
        "hey siri",
        "siri",
        "hey alexa",
        "alexa",
        "hey cortana",
        "cortana",
        "hey",
    )
)
"""Leading words addressing the assistant (SLURP/HWU64 workers were told to call it "Olly")."""


def _make_utt(text: str, spans: Iterable[tuple[int, int, str]]) -> _Utt:
    """Normalise ``text`` with character ``spans`` (start, end, type), strip a leading wake word."""
    ordered: list[tuple[int, int, str]] = []
    for start, end, kind in sorted(spans):
        if start < end and (not ordered or start >= ordered[-1][1]):
            ordered.append((start, end, kind))
    words: list[str] = []
    tags: list[int | None] = []
    pos = 0
    for idx, (start, end, _kind) in enumerate(ordered):
        for w in _norm(text[pos:start]).split():
            words.append(w)
            tags.append(None)
        for w in _norm(text[start:end]).split():
            words.append(w)
            tags.append(idx)
        pos = end
    for w in _norm(text[pos:]).split():
        words.append(w)
        tags.append(None)
    for wake in _WAKE_WORDS:
        n = len(wake)
        if len(words) > n and words[:n] == wake and all(t is None for t in tags[:n]):
            words, tags = words[n:], tags[n:]
            break
    return _Utt(tuple(words), tuple(tags), tuple(k for _, _, k in ordered))


@dataclass(frozen=True)
class _Target:
    intent: str
    fixed: dict[str, str] = field(default_factory=dict)
    repl: dict[int, list[str]] = field(default_factory=dict)
    pattern: str | None = None
    """Full pattern, when the handler built it itself (lists)."""


@dataclass(frozen=True)
class _Skip:
    reason: str
    out_of_scope: bool
    """True: keep the utterance verbatim as ``OutOfScope``; False: drop it."""


_Result = _Target | _Skip

_GENERIC_PLACES: Final = frozenset(
    {
        "house",
        "home",
        "room",
        "here",
        "in here",
        "the room",
        "this room",
        "my room",
        "the house",
        "my house",
        "my home",
        "apartment",
        "flat",
        "whole house",
        "house cleaning",
        "interior",
        "ceiling",
        "overhead",
        "floor",
        "carpet",
        "carpets",
        "furniture",
        "everywhere",
        "corner",
        "outside the house",
        "entire house",
    }
)
_GENERIC_LIGHTS: Final = frozenset(
    {
        "light",
        "lights",
        "lamp",
        "lamps",
        "all lights",
        "all the lights",
        "every light",
        "the lights",
        "lighting",
        "one light",
        "all light",
        "light bulb",
        "light bulbs",
        "bulb",
        "bulbs",
    }
)
_OTHER_DEVICE_WORDS: Final = frozenset(
    {"light", "lights", "lamp", "lamps", "bulb", "bulbs", "fan", "fans", "lock", "locks", "door", "doors"}
)
"""Literal words naming a kind of device that is not a switch (smart-plug utterances saying them
are dropped: the words ask for that device)."""
_GENERIC_MEDIA: Final = frozenset({"speaker", "speakers", "music", "audio", "sound", "volume", "media"})
_NOW_WORDS: Final = frozenset(
    {
        "today",
        "today's",
        "todays",
        "today 's",
        "now",
        "right now",
        "currently",
        "current",
        "at the moment",
        "this moment",
        "present",
        "the day",
    }
)
_HOME_PLACES: Final = frozenset(
    {
        "home town",
        "hometown",
        "our city",
        "my city",
        "here",
        "my area",
        "local",
        "this city",
        "outside",
        "my location",
        "current location",
    }
)
_COLORS: Final = frozenset(
    {
        "white",
        "black",
        "red",
        "orange",
        "yellow",
        "green",
        "blue",
        "purple",
        "brown",
        "pink",
        "turquoise",
        "lavender",
        "violet",
        "magenta",
        "cyan",
        "teal",
        "gold",
        "golden",
        "silver",
        "grey",
        "gray",
        "indigo",
        "maroon",
        "lime",
        "crimson",
        "amber",
    }
)
_MEDIA_TYPES: Final = (
    "song_name",
    "artist_name",
    "music_genre",
    "playlist_name",
    "music_album",
    "audiobook_name",
    "audiobook_author",
    "podcast_name",
    "podcast_descriptor",
    "radio_name",
    "movie_name",
    "music_descriptor",
)
_TIME_TYPES: Final = ("time", "date", "timeofday", "general_frequency")
_MAX_WORDS: Final = frozenset({"max", "maximum", "full", "full power", "highest", "brightest", "full bright"})
_MIN_WORDS: Final = frozenset({"min", "minimum", "lowest", "lowest level", "dimmest"})


def _strip_to(words: list[str]) -> str:
    """A change_amount without its preposition: 'to full power' -> 'full power'."""
    while words and words[0] in ("to", "at", "the", "a", "by"):
        words = words[1:]
    return " ".join(words)


def _time_check(utt: _Utt, types: Sequence[str] = _TIME_TYPES) -> _Skip | None:
    """OutOfScope when the utterance carries a time or date other than 'now/today'."""
    for idx in utt.spans(*types):
        if utt.value(idx) not in _NOW_WORDS:
            return _Skip("time_constraint", out_of_scope=True)
    return None


def _common(
    utt: _Utt, intent: str, generic_devices: frozenset[str] | None, fixed: Mapping[str, str] | None = None
) -> _Result:
    """Rooms -> {area}, specific devices -> {name} (when ``intent`` takes them); the rest literal.

    ``generic_devices`` are device words that stay literal (``None``: every device is a name).
    """
    accepts = PLACEHOLDER_ACCEPTS.get(intent, frozenset())
    repl: dict[int, list[str]] = {}
    values: dict[str, set[str]] = {"area": set(), "name": set()}
    for idx in utt.spans("house_place"):
        if "area" in accepts and utt.value(idx) not in _GENERIC_PLACES:
            repl[idx] = ["{area}"]
            values["area"].add(utt.value(idx))
    for idx in utt.spans("device_type"):
        value = utt.value(idx)
        if "name" in accepts and (generic_devices is None or value not in generic_devices):
            repl[idx] = ["{name}"]
            values["name"].add(value)
    if any(len(v) > 1 for v in values.values()):
        return _Skip("several_targets", out_of_scope=False)
    return _Target(intent, dict(fixed or {}), repl)


def _with_number(words: list[str], placeholder: str) -> list[str] | None:
    """``words`` with their number replaced by ``{placeholder}``; ``None`` if there is none."""
    parsed = _parse_number(words)
    if parsed is None:
        return None
    start, end, _value, suffix = parsed
    return [*words[:start], "{" + placeholder + "}" + suffix, *words[end:]]
