"""HWU64/SLURP per-intent rules: one handler per mapped corpus intent decides the Home Assistant
intent, placeholders and fixed slots of an utterance (or keeps it as ``OutOfScope``, or drops it);
:func:`_convert` hands the result to the collector. :data:`~selflearn.simulation.corpora.mapping.INTENT_MAP`
documents each rule."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from selflearn.simulation.corpora.common import _SPACES, _Collector, _glue, _parse_number
from selflearn.simulation.corpora.mapping import INTENT_MAP, OUT_OF_SCOPE
from selflearn.simulation.corpora.utterance import (
    _COLORS,
    _GENERIC_LIGHTS,
    _GENERIC_MEDIA,
    _HOME_PLACES,
    _MAX_WORDS,
    _MEDIA_TYPES,
    _MIN_WORDS,
    _NOW_WORDS,
    _OTHER_DEVICE_WORDS,
    _common,
    _Result,
    _Skip,
    _strip_to,
    _Target,
    _time_check,
    _Utt,
    _with_number,
)
from selflearn.simulation.phrasing import Phrasing


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
