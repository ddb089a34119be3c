"""Real corpora as phrasings: Home Assistant's own test sentences, HWU64 and SLURP.

Three public corpora are turned into :class:`~selflearn.simulation.phrasing.Phrasing` objects
mapped to Home Assistant intents and slots, so the simulator can speak like real users:

* ``ha_tests`` -- the English test sentences of ``home-assistant/intents``. Slot values that
  are spoken (area, entity, floor, numbers, items, colours) are located in the sentence and
  replaced by placeholders; slots that are implied (``domain``, ``device_class``, ``state``)
  become fixed slots. Sentences whose slot values cannot be found in the text are dropped.
* ``hwu64`` -- the HWU64 home-assistant command corpus (64 intents, character-span entities).
* ``slurp`` -- SLURP's development split (same intent naming, token-span entities).

HWU64 and SLURP intents map to Home Assistant intents through :data:`INTENT_MAP`. Everything
Home Assistant's built-in intents cannot serve maps to ``OutOfScope`` and is kept verbatim
(no placeholders): out-of-scope requests are realistic traffic that must be refused. Some
mapped intents are decided per utterance (a light-dimming request with a number is
``HassLightSet``, without one it is out of scope); :data:`INTENT_MAP` documents each rule and
:class:`LoadReport` counts what happened. ``docs/corpora.md`` is generated from both
(``python -m selflearn.simulation.corpora --markdown``).

The data is read at run time from ``../shared/data`` (see :func:`find_data_dir`); nothing is
copied into the project. When a corpus is absent the loaders return no phrasings.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from selflearn.core.text import ONES, TENS
from selflearn.simulation.phrasing import KNOWN_PLACEHOLDERS, Phrasing

__all__ = [
    "CORPORA",
    "DATA_DIR_ENV",
    "ENTITY_TYPE_MAP",
    "INTENT_MAP",
    "OUT_OF_SCOPE",
    "PLACEHOLDER_ACCEPTS",
    "CorpusName",
    "IntentMapping",
    "LoadReport",
    "entity_map_markdown",
    "find_data_dir",
    "intent_map_markdown",
    "load_corpus",
    "load_ha_tests",
    "load_hwu64",
    "load_slurp",
    "load_with_report",
    "report_markdown",
]

OUT_OF_SCOPE: Final = "OutOfScope"
"""Intent of requests Home Assistant's built-in intents cannot serve."""

CorpusName = Literal["ha_tests", "hwu64", "slurp"]
CORPORA: Final[tuple[CorpusName, ...]] = ("ha_tests", "hwu64", "slurp")
"""Names accepted by :func:`load_corpus`; each is also the ``source`` of its phrasings."""

DATA_DIR_ENV: Final = "SELFLEARN_DATA_DIR"
"""Environment variable naming the shared data directory (the one holding ``hwu64/`` etc.)."""

_DEFAULT_DATA_DIRS: Final = (Path("..") / "shared" / "data", Path("/work/shared/data"))

_HA_TESTS_DIR: Final = Path("home_assistant_intents") / "tests" / "en"
_HWU64_FILE: Final = Path("hwu64") / "hwu64_cv_minus_slurp_test.jsonl"
_SLURP_FILE: Final = Path("slurp") / "devel.jsonl"


def find_data_dir(explicit: Path | None = None) -> Path | None:
    """The shared data directory, or ``None`` when there is none.

    ``explicit`` wins when given; otherwise ``$SELFLEARN_DATA_DIR`` when set; otherwise
    ``../shared/data`` relative to the working directory, then ``/work/shared/data``. An
    explicit directory or environment variable that does not exist gives ``None`` rather than
    silently falling back to another directory.
    """
    if explicit is not None:
        return explicit if explicit.is_dir() else None
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        path = Path(env)
        return path if path.is_dir() else None
    for candidate in _DEFAULT_DATA_DIRS:
        path = candidate if candidate.is_absolute() else Path.cwd() / candidate
        if path.is_dir():
            return path.resolve()
    return None


# --------------------------------------------------------------------------------------------
# The mapping table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntentMapping:
    """Where one HWU64/SLURP intent goes."""

    intent: str
    """Home Assistant intent (or ``OutOfScope``) the corpus intent maps to by default."""
    fixed_slots: Mapping[str, str] = field(default_factory=dict)
    """Fixed slots of the default mapping, e.g. ``{"domain": "light"}``."""
    alternatives: tuple[str, ...] = ()
    """Other intents a per-utterance rule may choose (``OutOfScope`` included when some
    utterances of an in-scope intent cannot be served)."""
    rule: str = ""
    """How the utterance decides between the default and the alternatives."""
    reason: str = ""
    """Why: what Home Assistant can or cannot do for these requests."""

    @property
    def in_scope(self) -> bool:
        """Whether any utterance of this intent can map to a Home Assistant intent."""
        return self.intent != OUT_OF_SCOPE or any(a != OUT_OF_SCOPE for a in self.alternatives)


def _oos(reason: str) -> IntentMapping:
    return IntentMapping(OUT_OF_SCOPE, reason=reason)


_NO_ALARMS = "Home Assistant has no alarm-clock intent (timers are relative durations only)"
_NO_CALENDAR = "no built-in calendar/reminder intent"
_NO_EMAIL = "no e-mail or contacts intent"
_CHAT = "conversation management/chit-chat the built-in intents do not cover"
_NO_QA = "open-domain question answering; Home Assistant's built-in intents have no QA"
_NO_SERVICE = "third-party service (shopping, transport, social, news); no built-in intent"
_TIME = (
    "; utterances with a time/date constraint (scheduling, 'for two hours') are OutOfScope: "
    "Home Assistant acts now, it cannot schedule"
)
_MEDIA_ALTERNATIVES = (
    "HassMediaPause",
    "HassMediaUnpause",
    "HassMediaNext",
    "HassMediaPrevious",
    OUT_OF_SCOPE,
)
_MEDIA_RULE = (
    "transport words decide first: 'skip'/'next song' -> HassMediaNext, 'previous'/'go back' -> "
    "HassMediaPrevious, 'pause' -> HassMediaPause, 'resume'/'continue' without a named item -> "
    "HassMediaUnpause; otherwise HassMediaSearchAndPlay with fixed slot search_query = the words "
    "after 'play' (or the annotated media names when there is no 'play'); dropped when neither "
    "gives a query"
)

INTENT_MAP: Final[dict[str, IntentMapping]] = {
    # --- alarms
    "alarm_query": _oos(_NO_ALARMS),
    "alarm_remove": _oos(_NO_ALARMS),
    "alarm_set": IntentMapping(
        OUT_OF_SCOPE,
        alternatives=("HassStartTimer",),
        rule="HassStartTimer when the only time is a relative duration ('in/after N minutes', "
        "'N hours from now'), with {minutes}/{hours}/{seconds}; otherwise OutOfScope",
        reason=_NO_ALARMS,
    ),
    # --- audio
    "audio_volume_down": IntentMapping(
        "HassSetVolumeRelative",
        {"volume_step": "down"},
        ("HassSetVolume", OUT_OF_SCOPE),
        rule="'to N [percent]' -> HassSetVolume {volume}; 'by N percent' -> fixed volume_step=-N; "
        "no amount -> volume_step=down; non-numeric amounts ('to low') are dropped" + _TIME,
        reason="relative volume is HassSetVolumeRelative (volume_step up/down or a percentage)",
    ),
    "audio_volume_mute": IntentMapping(
        "HassMediaPlayerMute",
        alternatives=("HassMediaPlayerUnmute", OUT_OF_SCOPE),
        rule="'unmute' -> HassMediaPlayerUnmute" + _TIME,
        reason="mute the media player (device_type names the player -> {name})",
    ),
    "audio_volume_up": IntentMapping(
        "HassSetVolumeRelative",
        {"volume_step": "up"},
        ("HassSetVolume", "HassMediaPlayerUnmute", OUT_OF_SCOPE),
        rule="'unmute' -> HassMediaPlayerUnmute; 'to N [percent]' -> HassSetVolume {volume}; 'by N percent' "
        "-> fixed volume_step=N; no amount -> volume_step=up; non-numeric amounts ('to max', "
        "'to level seven') are dropped" + _TIME,
        reason="relative volume is HassSetVolumeRelative (volume_step up/down or a percentage)",
    ),
    # --- calendar
    "calendar_query": _oos(_NO_CALENDAR),
    "calendar_remove": _oos(_NO_CALENDAR),
    "calendar_set": _oos(_NO_CALENDAR),
    # --- cooking
    "cooking_query": _oos("recipes/cooking questions; no built-in intent"),
    "cooking_recipe": _oos("recipes/cooking questions; no built-in intent"),
    # --- date and time
    "datetime_convert": _oos("time-zone conversion; HassGetCurrentTime only tells the local time"),
    "datetime_query": IntentMapping(
        "HassGetCurrentTime",
        alternatives=("HassGetCurrentDate", OUT_OF_SCOPE),
        rule="HassGetCurrentDate when the text asks for the date/day/month/year; OutOfScope when it names "
        "another place or time zone, an event, or a date other than today",
        reason="Home Assistant answers the current local time and date only",
    ),
    # --- email
    "email_addcontact": _oos(_NO_EMAIL),
    "email_query": _oos(_NO_EMAIL),
    "email_querycontact": _oos(_NO_EMAIL),
    "email_sendemail": _oos(_NO_EMAIL),
    # --- general
    "general_affirm": _oos(_CHAT),
    "general_commandstop": IntentMapping(
        "HassNevermind",
        reason="'stop / that's enough / cancel it': HassNevermind cancels the current request",
    ),
    "general_confirm": _oos(_CHAT),
    "general_dontcare": _oos(_CHAT),
    "general_explain": _oos(_CHAT),
    "general_greet": IntentMapping("HassRespond", reason="greetings; HassRespond answers 'hello'"),
    "general_joke": _oos(_CHAT),
    "general_negate": _oos(_CHAT),
    "general_praise": _oos(_CHAT),
    "general_quirky": _oos(_CHAT),
    "general_repeat": _oos(_CHAT + " (no 'repeat that' intent)"),
    # --- iot
    "iot_cleaning": IntentMapping(
        "HassVacuumStart",
        alternatives=("HassVacuumCleanArea", OUT_OF_SCOPE),
        rule="HassVacuumCleanArea when an {area} is named, else HassVacuumStart; every device_type is the "
        "vacuum's {name}" + _TIME,
        reason="start the robot vacuum",
    ),
    "iot_coffee": _oos(
        "brewing coffee is not a built-in intent (a coffee machine plug would be HassTurnOn, "
        "but these requests ask for drinks, strengths and schedules)"
    ),
    "iot_hue_lightchange": IntentMapping(
        "HassLightSet",
        alternatives=(OUT_OF_SCOPE,),
        rule="needs a colour word ({color}; with several, the last) or a number ({brightness}); 'romantic', "
        "'party mode', 'random' or no colour at all -> OutOfScope" + _TIME,
        reason="HassLightSet sets a colour or a brightness",
    ),
    "iot_hue_lightdim": IntentMapping(
        "HassLightSet",
        alternatives=(OUT_OF_SCOPE,),
        rule="HassLightSet {brightness} only when a target number is said ('to forty percent'; 'to the "
        "lowest' -> fixed brightness=1); 'dim the lights', 'a bit', 'by twenty percent' -> OutOfScope"
        + _TIME,
        reason="Home Assistant has no relative-brightness intent",
    ),
    "iot_hue_lightoff": IntentMapping(
        "HassTurnOff",
        {"domain": "light"},
        (OUT_OF_SCOPE,),
        rule="device_type -> {name} unless it is a generic word ('lights', 'lamp')" + _TIME,
        reason="turn lights off",
    ),
    "iot_hue_lighton": IntentMapping(
        "HassTurnOn",
        {"domain": "light"},
        (OUT_OF_SCOPE,),
        rule="device_type -> {name} unless it is a generic word ('lights', 'lamp')" + _TIME,
        reason="turn lights on",
    ),
    "iot_hue_lightup": IntentMapping(
        "HassLightSet",
        alternatives=(OUT_OF_SCOPE,),
        rule="HassLightSet {brightness} only when a target number is said; 'to max'/'to full power' -> fixed "
        "brightness=100; 'brighten the lights', 'by twenty percent' -> OutOfScope" + _TIME,
        reason="Home Assistant has no relative-brightness intent",
    ),
    "iot_wemo_off": IntentMapping(
        "HassTurnOff",
        {"domain": "switch"},
        (OUT_OF_SCOPE,),
        rule="every device_type ('wemo plug socket', 'smart plug') is the switch's {name}; utterances "
        "saying another kind of device ('turn off kitchen fan') are dropped" + _TIME,
        reason="smart plugs are switch entities",
    ),
    "iot_wemo_on": IntentMapping(
        "HassTurnOn",
        {"domain": "switch"},
        (OUT_OF_SCOPE,),
        rule="every device_type ('wemo plug socket', 'smart plug') is the switch's {name}; utterances "
        "saying another kind of device ('turn on kitchen light') are dropped" + _TIME,
        reason="smart plugs are switch entities",
    ),
    # --- lists
    "lists_createoradd": IntentMapping(
        "HassShoppingListAddItem",
        alternatives=("HassListAddItem", OUT_OF_SCOPE),
        rule="'add/put X to/on [my] [L] list': X -> {item}; L empty/shopping/grocery -> "
        "HassShoppingListAddItem, another L -> HassListAddItem with L -> {name}; creating a list -> "
        "OutOfScope; other phrasings (item not locatable) are dropped",
        reason="adding an item is served; creating lists is not",
    ),
    "lists_query": _oos("reading lists back is not a built-in intent"),
    "lists_remove": IntentMapping(
        "HassShoppingListCompleteItem",
        alternatives=("HassListRemoveItem", OUT_OF_SCOPE),
        rule="'remove/delete/cross off X from [my] [L] list': shopping list -> HassShoppingListCompleteItem "
        "{item}, another L -> HassListRemoveItem {item} {name}; anything else (deleting a whole list, "
        "contacts, files) -> OutOfScope",
        reason="removing an item is served; deleting lists is not",
    ),
    # --- music
    "music_dislikeness": _oos("rating music; no built-in intent"),
    "music_likeness": _oos("rating music / adding to playlists; no built-in intent"),
    "music_query": _oos("'what song is this'; no built-in intent"),
    "music_settings": _oos("shuffle/repeat/equaliser; no built-in intent"),
    # --- news
    "news_query": _oos(_NO_SERVICE),
    # --- play
    "play_audiobook": IntentMapping(
        "HassMediaSearchAndPlay",
        alternatives=_MEDIA_ALTERNATIVES,
        rule=_MEDIA_RULE + _TIME,
        reason="media playback (Music Assistant search and transport intents)",
    ),
    "play_game": _oos("games; no built-in intent"),
    "play_music": IntentMapping(
        "HassMediaSearchAndPlay",
        alternatives=_MEDIA_ALTERNATIVES,
        rule=_MEDIA_RULE + _TIME,
        reason="media playback (Music Assistant search and transport intents)",
    ),
    "play_podcasts": IntentMapping(
        "HassMediaSearchAndPlay",
        alternatives=_MEDIA_ALTERNATIVES,
        rule=_MEDIA_RULE + _TIME,
        reason="media playback (Music Assistant search and transport intents)",
    ),
    "play_radio": IntentMapping(
        "HassMediaSearchAndPlay",
        alternatives=_MEDIA_ALTERNATIVES,
        rule=_MEDIA_RULE + _TIME,
        reason="media playback (Music Assistant search and transport intents)",
    ),
    # --- question answering
    "qa_currency": _oos(_NO_QA),
    "qa_definition": _oos(_NO_QA),
    "qa_factoid": _oos(_NO_QA),
    "qa_maths": _oos(_NO_QA),
    "qa_stock": _oos(_NO_QA),
    # --- recommendations, social, takeaway, transport
    "recommendation_events": _oos(_NO_SERVICE),
    "recommendation_locations": _oos(_NO_SERVICE),
    "recommendation_movies": _oos(_NO_SERVICE),
    "social_post": _oos(_NO_SERVICE),
    "social_query": _oos(_NO_SERVICE),
    "takeaway_order": _oos(_NO_SERVICE),
    "takeaway_query": _oos(_NO_SERVICE),
    "transport_query": _oos(_NO_SERVICE),
    "transport_taxi": _oos(_NO_SERVICE),
    "transport_ticket": _oos(_NO_SERVICE),
    "transport_traffic": _oos(_NO_SERVICE),
    # --- weather
    "weather_query": IntentMapping(
        "HassGetWeather",
        alternatives=(OUT_OF_SCOPE,),
        rule="OutOfScope when it names another place or a time other than now (forecasts: 'tomorrow', "
        "'tonight', 'this week'); 'do I need an umbrella today' stays HassGetWeather",
        reason="HassGetWeather reports the home's current weather, not forecasts or other cities",
    ),
}
"""HWU64/SLURP intent (``scenario_action``) -> Home Assistant intent, fixed slots and rule."""

ENTITY_TYPE_MAP: Final[dict[str, str]] = {
    "house_place": "{area} when the intent takes an area and the words name a room; generic words "
    "('house', 'room', 'here', 'carpet') stay literal",
    "device_type": "{name} when it names a specific device (always for plugs, vacuums); generic words "
    "('lights', 'lamp', 'speakers') stay literal and the domain comes from the intent",
    "color_type": "{color} for colour words (HassLightSet); other descriptions make the request OutOfScope",
    "change_amount": "number words -> {brightness}/{volume} ('to fifty percent' -> 'to {brightness} "
    "percent'); 'max'/'full power' -> fixed brightness; relative amounts decide OutOfScope "
    "(lights) or "
    "volume_step (volume)",
    "time": "relative durations -> {minutes}/{hours}/{seconds} for timers; 'now' stays literal; any other "
    "time on an action makes it OutOfScope",
    "date": "'today' stays literal; other dates make actions/weather/time questions OutOfScope; kept literal "
    "inside media queries",
    "timeofday": "same as date ('tonight' on weather -> OutOfScope)",
    "list_name": "shopping/grocery words stay literal (shopping list); other list names -> {name}",
    "place_name": "other places make weather/time questions OutOfScope; literal elsewhere",
    "time_zone": "makes time questions OutOfScope",
    "media names": "song_name, artist_name, music_genre, playlist_name, radio_name, podcast_name, "
    "audiobook_name, ... stay literal and form the fixed search_query",
    "everything else": "literal words (person, relation, app_name, ...)",
}
"""Entity type -> how it becomes part of a pattern (documentation; the code below implements it)."""

PLACEHOLDER_ACCEPTS: Final[dict[str, frozenset[str]]] = {
    "HassTurnOn": frozenset({"name", "area", "floor"}),
    "HassTurnOff": frozenset({"name", "area", "floor"}),
    "HassLightSet": frozenset({"name", "area", "floor", "brightness", "color", "temperature"}),
    "HassVacuumStart": frozenset({"name", "floor"}),
    "HassVacuumCleanArea": frozenset({"name", "area"}),
    "HassSetVolume": frozenset({"name", "area", "volume"}),
    "HassSetVolumeRelative": frozenset({"name", "area", "floor"}),
    "HassMediaPlayerMute": frozenset({"name"}),
    "HassMediaPlayerUnmute": frozenset({"name"}),
    "HassMediaNext": frozenset({"name", "area"}),
    "HassMediaPrevious": frozenset({"name", "area"}),
    "HassMediaPause": frozenset({"name", "area"}),
    "HassMediaUnpause": frozenset({"name", "area"}),
    "HassMediaSearchAndPlay": frozenset({"name", "area"}),
    "HassShoppingListAddItem": frozenset({"item"}),
    "HassShoppingListCompleteItem": frozenset({"item"}),
    "HassListAddItem": frozenset({"item", "name"}),
    "HassListRemoveItem": frozenset({"item", "name"}),
    "HassStartTimer": frozenset({"hours", "minutes", "seconds", "timer_name"}),
    "HassGetWeather": frozenset(),
    "HassGetCurrentTime": frozenset(),
    "HassGetCurrentDate": frozenset(),
    "HassNevermind": frozenset(),
    "HassRespond": frozenset(),
}
"""Placeholders an HWU64/SLURP phrasing of each target intent may carry (from the intent's slot
combinations in ``home-assistant-intents``)."""


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    """What a loader did with one corpus."""

    corpus: str
    """Corpus name (one of :data:`CORPORA`)."""
    available: bool = False
    """Whether the corpus files were found."""
    rows_read: int = 0
    """Utterances read (sentences for ``ha_tests``, rows for HWU64/SLURP)."""
    converted: int = 0
    """Utterances turned into a phrasing, before de-duplication."""
    duplicates: int = 0
    """Converted utterances whose (pattern, intent, fixed slots) was already kept."""
    dropped: Counter[str] = field(default_factory=Counter)
    """Utterances not turned into a phrasing, by reason."""
    rerouted_out_of_scope: Counter[str] = field(default_factory=Counter)
    """Utterances of a mapped (in-scope) corpus intent sent to ``OutOfScope``, by reason."""
    per_intent: Counter[str] = field(default_factory=Counter)
    """Kept phrasings per Home Assistant intent (``OutOfScope`` included)."""
    per_original: dict[str, Counter[str]] = field(default_factory=dict)
    """Kept phrasings per corpus intent, split by Home Assistant intent."""

    @property
    def kept(self) -> int:
        """Phrasings returned."""
        return sum(self.per_intent.values())

    @property
    def out_of_scope(self) -> int:
        """Kept phrasings whose intent is ``OutOfScope``."""
        return self.per_intent.get(OUT_OF_SCOPE, 0)

    @property
    def dropped_total(self) -> int:
        """Utterances dropped, all reasons together."""
        return sum(self.dropped.values())


class _Collector:
    """De-duplicates phrasings and keeps the report's counts."""

    def __init__(self, report: LoadReport) -> None:
        self.report = report
        self.out: dict[tuple[str, str, tuple[tuple[str, str], ...]], Phrasing] = {}

    def add(self, phr: Phrasing) -> None:
        unknown = set(phr.placeholders) - KNOWN_PLACEHOLDERS
        if unknown:
            self.drop("unknown_placeholder:" + ",".join(sorted(unknown)))
            return
        self.report.converted += 1
        key = (phr.pattern, phr.intent, tuple(sorted(phr.fixed_slots.items())))
        if key in self.out:
            self.report.duplicates += 1
            return
        self.out[key] = phr
        self.report.per_intent[phr.intent] += 1
        original = phr.original_intent or phr.intent
        self.report.per_original.setdefault(original, Counter())[phr.intent] += 1

    def drop(self, reason: str) -> None:
        self.report.dropped[reason] += 1

    def phrasings(self) -> list[Phrasing]:
        return list(self.out.values())


# --------------------------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------------------------

_PUNCT = re.compile(r"(?<!\d)\.|\.(?!\d)|[^\w\s'%@#/°.\-]")
_SPACES = re.compile(r"\s+")


_CLITIC = re.compile(r"(?<=\S) '(s|re|ll|ve|d|t|m)\b")


def _glue(text: str) -> str:
    """Re-attach clitics split off at an entity boundary: ``"today 's"`` -> ``"today's"``."""
    return _CLITIC.sub(r"'\1", text)


def _norm(text: str) -> str:
    """Lower-case, punctuation (except ' % @ # / ° - and decimal points) to spaces, single spaces."""
    return _SPACES.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


_WORD_VALUE: Final = {w: i for i, w in enumerate(ONES)} | {w: 10 * i for i, w in enumerate(TENS) if i >= 2}


def _number_words(n: int) -> str | None:
    """``n`` in words for 0..999 (``"twenty one"``); ``None`` otherwise."""
    if n < 0 or n > 999:
        return None
    if n < 20:
        return ONES[n]
    if n < 100:
        tens, unit = divmod(n, 10)
        return TENS[tens] + ("" if unit == 0 else " " + ONES[unit])
    hundreds, rest = divmod(n, 100)
    head = ONES[hundreds] + " hundred"
    tail = _number_words(rest) if rest else None
    return head if tail is None else f"{head} and {tail}"


def _below_100(words: Sequence[str], i: int) -> tuple[int, int] | None:
    """(end, value) of a number word or tens+unit pair (``"sixty five"``) starting at ``i``."""
    if i >= len(words) or words[i] not in _WORD_VALUE:
        return None
    value = _WORD_VALUE[words[i]]
    if value >= 20 and i + 1 < len(words) and 1 <= _WORD_VALUE.get(words[i + 1], 0) <= 9:
        return i + 2, value + _WORD_VALUE[words[i + 1]]
    return i + 1, value


def _parse_number(words: Sequence[str]) -> tuple[int, int, int, str] | None:
    """First number in ``words``: (start, end, value, suffix). Digits (``"50"``, ``"50%"``) or
    number words up to 999 (``"sixty five"``, ``"one hundred and five"``)."""
    for i, word in enumerate(words):
        digit = re.fullmatch(r"(\d+)(%?)", word)
        if digit:
            return i, i + 1, int(digit.group(1)), digit.group(2)
        if word not in _WORD_VALUE:
            continue
        if 1 <= _WORD_VALUE[word] <= 9 and i + 1 < len(words) and words[i + 1] == "hundred":
            end, value = i + 2, _WORD_VALUE[word] * 100
            skip_and = 1 if end < len(words) and words[end] == "and" else 0
            rest = _below_100(words, end + skip_and)
            if rest is not None:
                end, value = rest[0], value + rest[1]
            return i, end, value, ""
        below = _below_100(words, i)
        assert below is not None
        return i, below[0], below[1], ""
    return None


def _find(text: str, value: str, claimed: Sequence[tuple[int, int]]) -> tuple[int, int] | None:
    """First whole-word occurrence of ``value`` in ``text`` not overlapping a claimed span."""
    if not value:
        return None
    for match in re.finditer(r"(?<!\w)" + re.escape(value) + r"(?!\w)", text):
        start, end = match.span()
        if all(end <= s or start >= e for s, e in claimed):
            return start, end
    return None


# --------------------------------------------------------------------------------------------
# Home Assistant test sentences
# --------------------------------------------------------------------------------------------

_TIMER_INTENTS: Final = frozenset(
    {
        "HassStartTimer",
        "HassCancelTimer",
        "HassCancelAllTimers",
        "HassIncreaseTimer",
        "HassDecreaseTimer",
        "HassPauseTimer",
        "HassUnpauseTimer",
        "HassTimerStatus",
    }
)

_SLOT_PLACEHOLDER: Final = {
    "area": "area",
    "floor": "floor",
    "brightness": "brightness",
    "temperature": "temperature",
    "position": "position",
    "volume_level": "volume",
    "volume": "volume",
    "minutes": "minutes",
    "seconds": "seconds",
    "hours": "hours",
    "item": "item",
    "color": "color",
    "timer_name": "timer_name",
}
"""Spoken Home Assistant slots -> placeholder (``name`` is ``{name}`` or, for timers, ``{timer_name}``)."""

_SPOKEN_LITERAL: Final = frozenset(
    {
        "search_query",
        "message",
        "conversation_command",
        "start_hours",
        "start_minutes",
        "start_seconds",
        "zone",
    }
)
"""Spoken slots without a placeholder: kept as literal words and recorded as fixed slots."""

_HALF: Final = ("and a half", "and a 1/2", "half a", "half an", "1/2 a", "1/2 an")
_IMPLIED_WORDS: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    ("brightness", "100"): ("maximum", "max", "highest"),
    ("brightness", "1"): ("minimum", "min", "lowest"),
    ("seconds", "30"): _HALF,
    ("minutes", "30"): _HALF,
}
"""Slot values Home Assistant's own lists say with words (``brightness_level``, ``timer_half``):
they become fixed slots and the words stay literal."""


def _values(raw: Any) -> list[str]:
    items = raw if isinstance(raw, list) else [raw]
    out: list[str] = []
    for item in items:
        text = str(item).strip()
        if text and text not in out:
            out.append(text)
    return out


def _fixture_aliases(fixtures: Any) -> dict[str, list[str]]:
    """Lower-case name -> aliases for areas, floors and entities of ``_fixtures.yaml``."""
    out: dict[str, list[str]] = {}
    if not isinstance(fixtures, dict):
        return out
    for key in ("areas", "floors", "entities"):
        for item in fixtures.get(key) or []:
            if isinstance(item, dict) and item.get("name") and item.get("aliases"):
                out[str(item["name"]).lower()] = [str(a) for a in item["aliases"]]
    return out


def _ha_pattern(
    sentence: str,
    intent: str,
    slots: Mapping[str, Any],
    context: Mapping[str, Any],
    aliases: Mapping[str, list[str]],
) -> tuple[str, dict[str, str]] | str:
    """(pattern, fixed slots) for one test sentence, or the reason it is dropped."""
    text = _norm(sentence)
    if not text:
        return "empty"
    fixed: dict[str, str] = {}
    # (candidates, slot, placeholder or None for literal)
    spoken: list[tuple[list[str], str, str | None]] = []
    for slot, raw in slots.items():
        values = _values(raw)
        if not values:
            continue
        if slot == "name" and values == ["all"]:
            fixed[slot] = "all"  # Home Assistant's marker for "every entity of the domain"
            continue
        if slot == "name":
            placeholder: str | None = "timer_name" if intent in _TIMER_INTENTS else "name"
        elif slot in _SLOT_PLACEHOLDER:
            placeholder = _SLOT_PLACEHOLDER[slot]
        elif slot in _SPOKEN_LITERAL:
            placeholder = None
        else:
            fixed[slot] = values[0]
            continue
        candidates: list[str] = []
        for value in values:
            candidates.append(_norm(value))
            candidates.extend(_norm(a) for a in aliases.get(value.lower(), []))
            if re.fullmatch(r"\d+", value):
                words = _number_words(int(value))
                if words:
                    candidates.append(words)
        spoken.append((sorted(set(candidates), key=len, reverse=True), slot, placeholder))

    claimed: list[tuple[int, int, str | None]] = []
    for candidates, slot, placeholder in sorted(spoken, key=lambda s: -max(len(c) for c in s[0])):
        spans = [(s, e) for s, e, _ in claimed]
        hit = next((h for h in (_find(text, c, spans) for c in candidates) if h is not None), None)
        value = _values(slots[slot])[0]
        if hit is not None:
            claimed.append((hit[0], hit[1], placeholder))
            if placeholder is None:
                fixed[slot] = text[hit[0] : hit[1]]  # as spoken, which is what the matcher extracts
            continue
        implied = _IMPLIED_WORDS.get((slot, value), ())
        word_hit = next((h for h in (_find(text, w, spans) for w in implied) if h is not None), None)
        if word_hit is not None:
            claimed.append((word_hit[0], word_hit[1], None))
            fixed[slot] = value
            continue
        if slot in context and _values(context[slot])[:1] == [value]:
            continue  # supplied by the device's context (e.g. its area), not spoken
        return f"slot_not_in_text:{slot}"

    pieces: list[str] = []
    pos = 0
    for start, end, placeholder in sorted(claimed):
        pieces.append(text[pos:start])
        pieces.append(text[start:end] if placeholder is None else "{" + placeholder + "}")
        pos = end
    pieces.append(text[pos:])
    return _SPACES.sub(" ", "".join(pieces)).strip(), fixed


def _iter_ha_tests(test_dir: Path) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(sentence, intent, slots, context) for every test sentence under ``test_dir``."""
    paths = sorted(test_dir.glob("*.yaml")) + sorted(test_dir.glob("*/*.yaml"))
    for path in paths:
        if path.name.startswith("_"):
            continue
        with path.open(encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
        if not isinstance(doc, dict):
            continue
        folder_intent = path.parent.name if path.parent != test_dir else None
        for test in doc.get("tests") or []:
            if not isinstance(test, dict):
                continue
            raw_intent = test.get("intent")
            intent_block: dict[str, Any] = raw_intent if isinstance(raw_intent, dict) else {}
            intent = str(intent_block.get("name") or folder_intent or "")
            slots = intent_block.get("slots") if "slots" in intent_block else test.get("slots")
            context = intent_block.get("context") or test.get("context") or {}
            context_dict = dict(context) if isinstance(context, dict) else {}
            for sentence in test.get("sentences") or []:
                yield str(sentence), intent, dict(slots or {}), context_dict


def _load_ha_tests(data_dir: Path, collector: _Collector) -> None:
    test_dir = data_dir / _HA_TESTS_DIR
    if not test_dir.is_dir():
        return
    collector.report.available = True
    aliases: dict[str, list[str]] = {}
    fixtures_path = test_dir / "_fixtures.yaml"
    if fixtures_path.is_file():
        with fixtures_path.open(encoding="utf-8") as fh:
            aliases = _fixture_aliases(yaml.safe_load(fh))
    for sentence, intent, slots, context in _iter_ha_tests(test_dir):
        collector.report.rows_read += 1
        if not intent:
            collector.drop("no_intent")
            continue
        result = _ha_pattern(sentence, intent, slots, context, aliases)
        if isinstance(result, str):
            collector.drop(result)
            continue
        pattern, fixed = result
        collector.add(
            Phrasing(
                pattern=pattern, intent=intent, fixed_slots=fixed, source="ha_tests", original_intent=intent
            )
        )


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


def _handle_turn(label: str, utt: _Utt) -> _Result:
    mapping = INTENT_MAP[label]
    skip = _time_check(utt)
    if skip is not None:
        return skip
    domain = mapping.fixed_slots.get("domain")
    if domain == "switch" and any(
        tag is None and word in _OTHER_DEVICE_WORDS for word, tag in zip(utt.words, utt.tags, strict=True)
    ):
        # "turn on kitchen light" labelled as a smart plug: the words ask for a light, which the
        # assistant rightly turns on; a goal of switching the plug would be a defect nobody has.
        return _Skip("names_another_device", out_of_scope=False)
    generic = _GENERIC_LIGHTS if domain == "light" else None
    return _common(utt, mapping.intent, generic, mapping.fixed_slots)


def _handle_light_set(label: str, utt: _Utt) -> _Result:
    skip = _time_check(utt)
    if skip is not None:
        return skip
    target = _common(utt, "HassLightSet", _GENERIC_LIGHTS)
    if isinstance(target, _Skip):
        return target
    colors = [i for i in utt.spans("color_type") if utt.value(i) in _COLORS]
    if colors:
        target.repl[colors[-1]] = ["{color}"]
        return target
    for idx in utt.spans("change_amount"):
        words = utt.span_words(idx)
        amount = _strip_to(list(words))
        if words and words[0] == "by":
            continue
        replaced = _with_number(words, "brightness")
        if replaced is not None:
            target.repl[idx] = replaced
            return target
        if amount in _MAX_WORDS:
            target.fixed["brightness"] = "100"
            return target
        if amount in _MIN_WORDS:
            target.fixed["brightness"] = "1"
            return target
    if label == "iot_hue_lightchange":
        return _Skip("no_color", out_of_scope=True)
    return _Skip("relative_brightness", out_of_scope=True)


def _handle_cleaning(label: str, utt: _Utt) -> _Result:
    skip = _time_check(utt)
    if skip is not None:
        return skip
    target = _common(utt, "HassVacuumCleanArea", None)
    if isinstance(target, _Skip):
        return target
    if any(r == ["{area}"] for r in target.repl.values()):
        return target
    return _common(utt, "HassVacuumStart", None)


def _handle_volume(label: str, utt: _Utt) -> _Result:
    text = utt.text
    if re.search(r"\bunmute\b", text):
        return _common(utt, "HassMediaPlayerUnmute", _GENERIC_MEDIA)
    if label == "audio_volume_mute":
        skip = _time_check(utt, ("time", "date", "timeofday", "event_name", "general_frequency"))
        return skip or _common(utt, "HassMediaPlayerMute", _GENERIC_MEDIA)
    skip = _time_check(utt)
    if skip is not None:
        return skip
    step = "up" if label == "audio_volume_up" else "down"
    amounts = utt.spans("change_amount")
    if not amounts:
        return _common(utt, "HassSetVolumeRelative", _GENERIC_MEDIA, {"volume_step": step})
    idx = amounts[0]
    words = utt.span_words(idx)
    parsed = _parse_number(words)
    rest = [w for w in words if w not in ("to", "at", "by", "percent", "%", "level", "the")]
    if parsed is None or len(rest) != parsed[1] - parsed[0]:
        return _Skip("non_numeric_amount", out_of_scope=False)
    if words[0] == "by":
        value = parsed[2] if step == "up" else -parsed[2]
        return _common(utt, "HassSetVolumeRelative", _GENERIC_MEDIA, {"volume_step": str(value)})
    target = _common(utt, "HassSetVolume", _GENERIC_MEDIA)
    if isinstance(target, _Skip):
        return target
    replaced = _with_number(words, "volume")
    assert replaced is not None
    target.repl[idx] = replaced
    return target


def _handle_datetime(label: str, utt: _Utt) -> _Result:
    if utt.spans("place_name", "time_zone", "event_name", "time"):
        return _Skip("other_place_or_time", out_of_scope=True)
    for idx in utt.spans("date", "timeofday"):
        if utt.value(idx) not in _NOW_WORDS:
            return _Skip("other_date", out_of_scope=True)
    if re.search(r"\b(date|day|month|year|week|weekday)\b", utt.text):
        return _Target("HassGetCurrentDate")
    return _Target("HassGetCurrentTime")


_FORECAST_WORDS: Final = re.compile(
    r"\b(tomorrow|tomorrow's|tonight|next|later|week|weekend|weekly|monday|tuesday|wednesday|thursday|friday|"
    r"saturday|sunday|forecast|this afternoon|this evening|this morning|will it|going to)\b"
)


def _handle_weather(label: str, utt: _Utt) -> _Result:
    for idx in utt.spans("place_name"):
        if utt.value(idx) not in _HOME_PLACES:
            return _Skip("other_place", out_of_scope=True)
    for idx in utt.spans("date", "time", "timeofday"):
        if utt.value(idx) not in _NOW_WORDS:
            return _Skip("forecast", out_of_scope=True)
    if _FORECAST_WORDS.search(utt.text):
        return _Skip("forecast", out_of_scope=True)
    return _Target("HassGetWeather")


_POLITE: Final = r"(?:(?:please|can you|could you|would you|will you|kindly|i want you to|i need you to)\s+)*"
_NOT_ITEMS: Final = frozenset(
    {
        "it",
        "this",
        "that",
        "these",
        "those",
        "them",
        "something",
        "item",
        "items",
        "an item",
        "new item",
        "new items",
        "the item",
        "this item",
        "one item",
        "stuff",
        "more",
        "things",
        "everything",
        "all",
        "a new item",
        "an entry",
        "entry",
        "the list",
        "list",
        "a list",
    }
)
_SHOPPING_LISTS: Final = frozenset(
    {
        "",
        "shopping",
        "grocery",
        "groceries",
        "grocery shopping",
        "grocery's shopping",
        "shopping grocery",
        "food",
        "grocery store",
    }
)
_ADD_RE: Final = re.compile(
    rf"^(?P<pre>{_POLITE})(?P<verb>add|put|place|include|insert|append)\s+(?P<item>.+?)\s+"
    r"(?P<prep>to|on|in|into|onto)\s+(?P<det>(?:my|the|our|a)\s+)?(?P<lname>(?:.+?\s+)??)list"
    r"(?P<post>(?:\s+(?:please|for me|now))*)$"
)
_REMOVE_RE: Final = re.compile(
    rf"^(?P<pre>{_POLITE})(?P<verb>remove|delete|erase|cross off|cross out|take off|take|strike off|strike|"
    r"check off|tick off)\s+(?P<item>.+?)\s+(?P<prep>from|off|off of|out of|out from|out of the|on|in)\s+"
    r"(?P<det>(?:my|the|our)\s+)?(?P<lname>(?:.+?\s+)??)list(?P<post>(?:\s+(?:please|for me|now))*)$"
)
_CREATE_RE: Final = re.compile(r"\b(create|make|new|start|begin|set up|open|fresh|blank)\b")


def _handle_list(label: str, utt: _Utt) -> _Result:
    text = utt.text
    regex = _ADD_RE if label == "lists_createoradd" else _REMOVE_RE
    match = regex.match(text)
    if match is None or match.group("item") in _NOT_ITEMS or " list" in f" {match.group('item')}":
        if label == "lists_remove":
            return _Skip("not_item_removal", out_of_scope=True)
        if _CREATE_RE.search(text) and re.search(r"\blists?\b", text):
            return _Skip("create_list", out_of_scope=True)
        return _Skip("item_not_located", out_of_scope=False)
    lname = match.group("lname").strip()
    shopping = lname in _SHOPPING_LISTS
    if label == "lists_createoradd":
        intent = "HassShoppingListAddItem" if shopping else "HassListAddItem"
    else:
        intent = "HassShoppingListCompleteItem" if shopping else "HassListRemoveItem"
    parts = [
        match.group("pre").strip(),
        match.group("verb"),
        "{item}",
        match.group("prep"),
        (match.group("det") or "").strip(),
        lname if shopping else "{name}",
        "list",
        match.group("post").strip(),
    ]
    return _Target(intent, pattern=_SPACES.sub(" ", " ".join(p for p in parts if p)).strip())


_NEXT_RE: Final = re.compile(
    r"\b(skip|next (?:song|track|episode|podcast|chapter|one)|next podcast episode|(?:song|track) next)\b"
)
_QUEUE_RE: Final = re.compile(r"\bnext in the (?:play )?queue\b|\bplay\b.*\bnext$")
_PREVIOUS_RE: Final = re.compile(
    r"\b(previous (?:song|track|episode|podcast|chapter|one)|go back|"
    r"last (?:song|track|episode))\b"
)
_PAUSE_RE: Final = re.compile(r"\bpause\b")
_RESUME_RE: Final = re.compile(r"\b(resume|resuming|unpause|continue)\b")
_TRAILING_POLITE: Final = ("please", "now", "for me", "right now", "thanks", "thank you")


_NOT_QUERIES: Final = frozenset({"it", "this", "that", "them", "something", "anything", "one", "all", "next"})


def _search_query(utt: _Utt, target: _Target) -> str | None:
    """What the user asked to play: the words after 'play' (up to a room or device), else the
    annotated media names."""
    words = list(utt.words)
    tags = list(utt.tags)
    if "play" in words:
        start = words.index("play") + 1
        end = start
        while end < len(words) and (tags[end] is None or tags[end] not in target.repl):
            end += 1
        query = words[start:end]
        if end < len(words):
            while query and query[-1] in ("in", "on", "the", "my", "at", "from", "to", "through", "via"):
                query.pop()
        changed = True
        while changed and query:
            changed = False
            for tail in _TRAILING_POLITE:
                tail_words = tail.split()
                if query[-len(tail_words) :] == tail_words and len(query) > len(tail_words):
                    del query[-len(tail_words) :]
                    changed = True
        while query and query[0] in ("me", "us"):
            query.pop(0)
        while len(query) > 1 and query[-1] in ("next", "up") and "next" in query[-2:]:
            query.pop()
        if query and " ".join(query) not in _NOT_QUERIES:
            return _glue(" ".join(query))
    media = [i for i, t in enumerate(tags) if t is not None and utt.types[t] in _MEDIA_TYPES]
    if media:
        return _glue(" ".join(words[media[0] : media[-1] + 1]))
    return None


def _handle_play(label: str, utt: _Utt) -> _Result:
    skip = _time_check(utt, ("time", "timeofday", "general_frequency"))
    if skip is not None:
        return skip
    text = utt.text
    named = bool(utt.spans(*(t for t in _MEDIA_TYPES if t not in ("podcast_descriptor", "music_descriptor"))))
    if _NEXT_RE.search(text) and not _QUEUE_RE.search(text):
        return _common(utt, "HassMediaNext", _GENERIC_MEDIA)
    if _PREVIOUS_RE.search(text) and not named:
        return _common(utt, "HassMediaPrevious", _GENERIC_MEDIA)
    if _PAUSE_RE.search(text):
        return _common(utt, "HassMediaPause", _GENERIC_MEDIA)
    if _RESUME_RE.search(text) and not named:
        return _common(utt, "HassMediaUnpause", _GENERIC_MEDIA)
    target = _common(utt, "HassMediaSearchAndPlay", _GENERIC_MEDIA)
    if isinstance(target, _Skip):
        return target
    query = _search_query(utt, target)
    if query is None:
        return _Skip("no_search_query", out_of_scope=False)
    target.fixed["search_query"] = query
    return target


_DURATION_RE: Final = re.compile(
    r"^(?:(?P<pre>in|after|for)\s+)?(?P<num>.+?)\s+(?P<unit>seconds?|minutes?|mins?|hours?)"
    r"(?P<post>\s+from now)?$"
)


def _handle_alarm(label: str, utt: _Utt) -> _Result:
    times = utt.spans("time")
    others = [i for i in utt.spans() if utt.types[i] not in ("time",)]
    if len(times) == 1 and not others:
        idx = times[0]
        words = utt.span_words(idx)
        match = _DURATION_RE.match(" ".join(words))
        position = utt.tags.index(idx)
        before = utt.words[position - 1] if position > 0 else ""
        relative = match is not None and (
            match.group("pre") in ("in", "after") or match.group("post") or before in ("in", "after")
        )
        if match is not None and relative:
            num_words = match.group("num").split()
            parsed = _parse_number(num_words)
            if parsed is not None and parsed[1] - parsed[0] == len(num_words):
                unit = match.group("unit")
                placeholder = (
                    "hours"
                    if unit.startswith("hour")
                    else "seconds"
                    if unit.startswith("second")
                    else "minutes"
                )
                replaced = _with_number(words, placeholder)
                assert replaced is not None
                return _Target("HassStartTimer", repl={idx: replaced})
    return _Skip("alarm", out_of_scope=True)


def _fixed_only(label: str, utt: _Utt) -> _Result:
    return _Target(INTENT_MAP[label].intent)


_HANDLERS: Final[dict[str, Callable[[str, _Utt], _Result]]] = {
    "alarm_set": _handle_alarm,
    "audio_volume_down": _handle_volume,
    "audio_volume_mute": _handle_volume,
    "audio_volume_up": _handle_volume,
    "datetime_query": _handle_datetime,
    "general_commandstop": _fixed_only,
    "general_greet": _fixed_only,
    "iot_cleaning": _handle_cleaning,
    "iot_hue_lightchange": _handle_light_set,
    "iot_hue_lightdim": _handle_light_set,
    "iot_hue_lightup": _handle_light_set,
    "iot_hue_lightoff": _handle_turn,
    "iot_hue_lighton": _handle_turn,
    "iot_wemo_off": _handle_turn,
    "iot_wemo_on": _handle_turn,
    "lists_createoradd": _handle_list,
    "lists_remove": _handle_list,
    "play_audiobook": _handle_play,
    "play_music": _handle_play,
    "play_podcasts": _handle_play,
    "play_radio": _handle_play,
    "weather_query": _handle_weather,
}


def _convert(label: str, utt: _Utt, source: str, collector: _Collector) -> None:
    """Map one labelled utterance and hand the phrasing (or the drop) to ``collector``."""
    if not utt.words:
        collector.drop("empty")
        return
    mapping = INTENT_MAP.get(label)
    if mapping is None:
        collector.drop("unknown_intent")
        return
    handler = _HANDLERS.get(label)
    if handler is None:
        result: _Result = _Skip("", out_of_scope=True)
    else:
        result = handler(label, utt)
    if isinstance(result, _Skip):
        if not result.out_of_scope:
            collector.drop(f"{label}:{result.reason}")
            return
        if mapping.intent != OUT_OF_SCOPE:
            collector.report.rerouted_out_of_scope[f"{label}:{result.reason}"] += 1
        collector.add(Phrasing(pattern=utt.text, intent=OUT_OF_SCOPE, source=source, original_intent=label))
        return
    pattern = result.pattern if result.pattern is not None else utt.render(result.repl)
    if not pattern:
        collector.drop("empty")
        return
    collector.add(
        Phrasing(
            pattern=pattern,
            intent=result.intent,
            fixed_slots=dict(result.fixed),
            source=source,
            original_intent=label,
        )
    )


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                row = json.loads(line)
                if isinstance(row, dict):
                    yield row


def _load_hwu64(data_dir: Path, collector: _Collector) -> None:
    path = data_dir / _HWU64_FILE
    if not path.is_file():
        return
    collector.report.available = True
    for row in _read_jsonl(path):
        collector.report.rows_read += 1
        text = str(row.get("text") or "")
        spans = [
            (int(e["start"]), int(e["end"]), str(e["entity"]))
            for e in row.get("entities") or []
            if isinstance(e, dict) and {"start", "end", "entity"} <= e.keys()
        ]
        _convert(str(row.get("intent") or ""), _make_utt(text, spans), "hwu64", collector)


def _slurp_spans(row: Mapping[str, Any]) -> tuple[str, list[tuple[int, int, str]]]:
    """SLURP token spans as character spans into the sentence (or into the joined tokens when a
    token cannot be found in the sentence)."""
    sentence = str(row.get("sentence") or "")
    surfaces = [str(t.get("surface", "")) for t in row.get("tokens") or [] if isinstance(t, dict)]
    offsets: list[tuple[int, int]] = []
    lower, pos = sentence.lower(), 0
    for surface in surfaces:
        found = lower.find(surface.lower(), pos)
        if found < 0:
            break
        offsets.append((found, found + len(surface)))
        pos = found + len(surface)
    if len(offsets) != len(surfaces):
        sentence = " ".join(surfaces)
        offsets, pos = [], 0
        for surface in surfaces:
            offsets.append((pos, pos + len(surface)))
            pos += len(surface) + 1
    spans: list[tuple[int, int, str]] = []
    for ent in row.get("entities") or []:
        token_ids = [i for i in ent.get("span") or [] if isinstance(i, int) and 0 <= i < len(offsets)]
        if token_ids:
            spans.append((offsets[min(token_ids)][0], offsets[max(token_ids)][1], str(ent.get("type", ""))))
    return sentence, spans


def _slurp_label(row: Mapping[str, Any]) -> str:
    """``scenario_action``: SLURP's ``intent`` field is truncated for a few rows (``query``)."""
    scenario, action = row.get("scenario"), row.get("action")
    if scenario and action:
        return f"{scenario}_{action}"
    return str(row.get("intent") or "")


def _load_slurp(data_dir: Path, collector: _Collector) -> None:
    path = data_dir / _SLURP_FILE
    if not path.is_file():
        return
    collector.report.available = True
    for row in _read_jsonl(path):
        collector.report.rows_read += 1
        sentence, spans = _slurp_spans(row)
        _convert(_slurp_label(row), _make_utt(sentence, spans), "slurp", collector)


# --------------------------------------------------------------------------------------------
# Public loaders
# --------------------------------------------------------------------------------------------

_LOADERS: Final[dict[str, Callable[[Path, _Collector], None]]] = {
    "ha_tests": _load_ha_tests,
    "hwu64": _load_hwu64,
    "slurp": _load_slurp,
}


def load_with_report(name: str, data_dir: Path | None = None) -> tuple[list[Phrasing], LoadReport]:
    """Phrasings of corpus ``name`` (one of :data:`CORPORA`) and what happened on the way.

    ``data_dir`` is the shared data directory (default: :func:`find_data_dir`). A missing
    corpus gives no phrasings and ``report.available == False``; an unknown name raises
    ``ValueError``.
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown corpus {name!r}; expected one of {', '.join(CORPORA)}")
    report = LoadReport(corpus=name)
    collector = _Collector(report)
    root = find_data_dir(data_dir)
    if root is not None:
        _LOADERS[name](root, collector)
    return collector.phrasings(), report


def load_corpus(name: str, data_dir: Path | None = None) -> list[Phrasing]:
    """Phrasings of corpus ``name`` (one of :data:`CORPORA`); empty when the corpus is absent."""
    return load_with_report(name, data_dir)[0]


def load_ha_tests(data_dir: Path | None = None) -> list[Phrasing]:
    """Home Assistant's English test sentences as phrasings (``source="ha_tests"``)."""
    return load_corpus("ha_tests", data_dir)


def load_hwu64(data_dir: Path | None = None) -> list[Phrasing]:
    """HWU64 utterances as phrasings (``source="hwu64"``)."""
    return load_corpus("hwu64", data_dir)


def load_slurp(data_dir: Path | None = None) -> list[Phrasing]:
    """SLURP devel sentences as phrasings (``source="slurp"``)."""
    return load_corpus("slurp", data_dir)


# --------------------------------------------------------------------------------------------
# Documentation
# --------------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def intent_map_markdown() -> str:
    """The :data:`INTENT_MAP` as a Markdown table (used in ``docs/corpora.md``)."""
    lines = [
        "| corpus intent | Home Assistant intent | fixed slots | may also become | rule / reason |",
        "|---|---|---|---|---|",
    ]
    for label in sorted(INTENT_MAP):
        m = INTENT_MAP[label]
        fixed = ", ".join(f"{k}={v}" for k, v in sorted(m.fixed_slots.items())) or ""
        note = m.rule + (" — " if m.rule and m.reason else "") + m.reason
        lines.append(f"| {label} | {m.intent} | {fixed} | {', '.join(m.alternatives)} | {_cell(note)} |")
    return "\n".join(lines) + "\n"


def entity_map_markdown() -> str:
    """The entity-type rules as a Markdown table."""
    lines = ["| entity type | becomes |", "|---|---|"]
    lines += [f"| {k} | {_cell(v)} |" for k, v in ENTITY_TYPE_MAP.items()]
    return "\n".join(lines) + "\n"


def report_markdown(reports: Sequence[LoadReport]) -> str:
    """Counts of several :class:`LoadReport` as Markdown tables."""
    lines = [
        "| corpus | rows read | phrasings kept | of which OutOfScope | in-scope labels rerouted to "
        "OutOfScope | duplicates | dropped |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        rerouted = sum(r.rerouted_out_of_scope.values())
        lines.append(
            f"| {r.corpus} | {r.rows_read} | {r.kept} | {r.out_of_scope} | {rerouted} | "
            f"{r.duplicates} | {r.dropped_total} |"
        )
    intents = sorted({i for r in reports for i in r.per_intent})
    lines += [
        "",
        "Kept phrasings per Home Assistant intent:",
        "",
        "| intent | " + " | ".join(r.corpus for r in reports) + " |",
        "|---|" + "---|" * len(reports),
    ]
    for intent in intents:
        lines.append(f"| {intent} | " + " | ".join(str(r.per_intent.get(intent, 0)) for r in reports) + " |")
    labelled = [r for r in reports if r.corpus != "ha_tests"]
    if labelled:
        lines += [
            "",
            "Kept phrasings per corpus intent, by Home Assistant intent:",
            "",
            "| corpus intent | " + " | ".join(r.corpus for r in labelled) + " |",
            "|---|" + "---|" * len(labelled),
        ]
        for label in sorted({k for r in labelled for k in r.per_original}):
            cells = []
            for r in labelled:
                counts = r.per_original.get(label, Counter())
                cells.append(", ".join(f"{i} {n}" for i, n in sorted(counts.items(), key=lambda kv: -kv[1])))
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Dropped utterances by reason:", "", "| corpus | reason | count |", "|---|---|---|"]
    for r in reports:
        for reason, count in sorted(r.dropped.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"| {r.corpus} | {reason} | {count} |")
    lines += [
        "",
        "In-scope corpus intents rerouted to OutOfScope, by reason:",
        "",
        "| corpus | intent:reason | count |",
        "|---|---|---|",
    ]
    for r in reports:
        for reason, count in sorted(r.rerouted_out_of_scope.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"| {r.corpus} | {reason} | {count} |")
    return "\n".join(lines) + "\n"


def _main(argv: Sequence[str]) -> int:
    markdown = "--markdown" in argv
    reports = [load_with_report(name)[1] for name in CORPORA]
    if not any(r.available for r in reports):
        print(
            f"no corpora found (set {DATA_DIR_ENV} or run from a directory with ../shared/data)",
            file=sys.stderr,
        )
        return 1
    if markdown:
        print(report_markdown(reports))
        return 0
    for r in reports:
        print(
            f"{r.corpus}: available={r.available} rows={r.rows_read} kept={r.kept} "
            f"out_of_scope={r.out_of_scope} duplicates={r.duplicates} dropped={r.dropped_total}"
        )
        for intent, count in sorted(r.per_intent.items()):
            print(f"    {intent:32s} {count}")
        for reason, count in r.dropped.most_common():
            print(f"    dropped {reason:40s} {count}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
