"""Built-in phrasings, so the simulator runs anywhere without external corpora.

* :func:`template_phrasings` samples *canonical* phrasings from Home Assistant's own sentence
  templates (the installed ``home-assistant-intents``): what the strict matcher is built for.
* :data:`COLLOQUIAL` is this project's catalogue of everyday variants ("kill the lights in the
  kitchen", "it's too dark in here") -- the long tail real users produce and templates miss.
* :data:`OUT_OF_SCOPE` are requests a home assistant cannot serve (jokes, e-mail, calendars):
  realistic traffic that must be refused, not acted on.
* :data:`BACKGROUND` is speech not meant for the assistant (TV, conversation) that causes false
  wakes.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from hassil.expression import (
    Alternative,
    Expression,
    ListReference,
    Permutation,
    RuleReference,
    Sequence,
    TextChunk,
)
from hassil.intents import RangeSlotList, TextSlotList, WildcardSlotList

from selflearn.assistant.nlu import load_intents
from selflearn.simulation.phrasing import KNOWN_PLACEHOLDERS, Phrasing

# Template slot names that become placeholders the simulator fills per home.
_PLACEHOLDER_SLOTS = {
    "area",
    "name",
    "floor",
    "brightness",
    "temperature",
    "position",
    "volume",
    "hours",
    "minutes",
    "seconds",
    "item",
    "color",
}

# Intents the simulated homes can express goals for (others are sampled but not used as goals).
GOAL_INTENTS = frozenset(
    {
        "HassTurnOn",
        "HassTurnOff",
        "HassLightSet",
        "HassSetPosition",
        "HassClimateSetTemperature",
        "HassClimateGetTemperature",
        "HassMediaPause",
        "HassMediaUnpause",
        "HassMediaNext",
        "HassMediaPrevious",
        "HassSetVolume",
        "HassMediaPlayerMute",
        "HassVacuumStart",
        "HassVacuumReturnToBase",
        "HassStartTimer",
        "HassCancelTimer",
        "HassCancelAllTimers",
        "HassTimerStatus",
        "HassPauseTimer",
        "HassUnpauseTimer",
        "HassShoppingListAddItem",
        "HassGetWeather",
        "HassGetCurrentTime",
        "HassGetCurrentDate",
        "HassGetState",
    }
)


class _Skip(Exception):
    """The template needs a slot the simulator cannot fill."""


def _expand(
    expr: Expression,
    rules: Mapping[str, Any],
    rng: random.Random,
    fixed: dict[str, str],
    lists: Mapping[str, Any],
    depth: int = 0,
) -> str:
    if depth > 30:
        raise _Skip("recursion")
    if isinstance(expr, TextChunk):
        return expr.text
    if isinstance(expr, Alternative):
        choices = list(expr.items)
        if expr.is_optional and rng.random() < 0.6:
            return ""
        # The first alternative is usually the plainest wording; prefer it half of the time so
        # canonical phrasings read like what people say rather than every grammatical corner.
        pick = choices[0] if rng.random() < 0.5 else rng.choice(choices)
        return _expand(pick, rules, rng, fixed, lists, depth + 1)
    if isinstance(expr, Permutation):
        items = list(expr.items)
        rng.shuffle(items)
        return " ".join(_expand(i, rules, rng, fixed, lists, depth + 1) for i in items)
    if isinstance(expr, Sequence):
        return "".join(_expand(i, rules, rng, fixed, lists, depth + 1) for i in expr.items)
    if isinstance(expr, RuleReference):
        rule = rules.get(expr.rule_name)
        if rule is None:
            raise _Skip(f"rule {expr.rule_name}")
        return _expand(rule.expression, rules, rng, fixed, lists, depth + 1)
    if isinstance(expr, ListReference):
        slot = expr.slot_name
        if slot in _PLACEHOLDER_SLOTS:
            if slot == "name" and expr.list_name not in ("name",):
                raise _Skip(f"list {expr.list_name}")
            return f"{{{slot}}}"
        slot_list = lists.get(expr.list_name)
        if isinstance(slot_list, TextSlotList) and slot_list.values:
            value = rng.choice(slot_list.values)
            text = value.text_in.text if isinstance(value.text_in, TextChunk) else None
            if text is None:
                raise _Skip("templated list value")
            fixed[slot] = str(value.value_out if value.value_out is not None else text)
            return text
        if isinstance(slot_list, (RangeSlotList, WildcardSlotList)):
            raise _Skip(f"unfillable {slot}")
        raise _Skip(f"list {expr.list_name}")
    raise _Skip(type(expr).__name__)


_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=4)
def template_phrasings(per_sentence: int = 4, seed: int = 0) -> tuple[Phrasing, ...]:
    """Phrasings sampled from Home Assistant's English sentence templates.

    Each template sentence is expanded ``per_sentence`` times at random (alternatives and
    optionals chosen by a seeded RNG), with home-specific lists left as placeholders.
    """
    intents = load_intents("en")
    rng = random.Random(seed)
    out: dict[tuple[str, str, tuple[tuple[str, str], ...]], Phrasing] = {}
    for intent in intents.intents.values():
        if intent.name not in GOAL_INTENTS:
            continue
        for data in intent.data:
            rules = {**intents.expansion_rules, **data.expansion_rules}
            lists = {**intents.slot_lists, **data.slot_lists}
            base = {k: str(v) for k, v in (data.slots or {}).items() if isinstance(v, (str, int, float))}
            for sentence in data.sentences:
                for _ in range(per_sentence):
                    fixed = dict(base)
                    try:
                        text = _expand(sentence.expression, rules, rng, fixed, lists)
                    except _Skip:
                        break
                    pattern = _SPACES.sub(" ", text).strip().lower()
                    if not pattern:
                        continue
                    phr = Phrasing(pattern=pattern, intent=intent.name, fixed_slots=fixed, source="templates")
                    if set(phr.placeholders) <= KNOWN_PLACEHOLDERS:
                        out.setdefault((phr.pattern, phr.intent, tuple(sorted(fixed.items()))), phr)
    return tuple(out.values())


def _c(intent: str, fixed: dict[str, str], *patterns: str) -> list[Phrasing]:
    return [
        Phrasing(pattern=p, intent=intent, fixed_slots=dict(fixed), source="colloquial") for p in patterns
    ]


LIGHT = {"domain": "light"}

COLLOQUIAL: tuple[Phrasing, ...] = tuple(
    _c(
        "HassTurnOff",
        LIGHT,
        "kill the lights in the {area}",
        "lights off in the {area} please",
        "{area} lights off",
        "shut off the {area} lights",
        "can you switch the {area} lights off",
        "cut the lights in the {area}",
        "turn the {area} lights out",
        "lights out in the {area}",
        "no more lights in the {area}",
        "turn out the lights in the {area}",
        "please switch off the light in the {area}",
        "switch the {area} light off please",
        "darken the {area}",
        "power down the {area} lights",
        "kill the {area} lights",
        "{area} light off",
        "turn {area} lights off",
    )
    + _c(
        "HassTurnOn",
        LIGHT,
        "lights on in the {area} please",
        "{area} lights on",
        "it's too dark in the {area}",
        "put the lights on in the {area}",
        "switch the {area} lights on",
        "can i get some light in the {area}",
        "turn the {area} lights on please",
        "light up the {area} please",
        "brighten up the {area}",
        "i need light in the {area}",
        "put the {area} light on",
        "{area} light on",
        "can you put the lights on in the {area}",
    )
    + _c(
        "HassTurnOff",
        LIGHT,
        "kill the lights",
        "lights off please",
        "it's too bright in here",
        "lights out",
        "turn the lights out",
        "switch the light off",
        "no more light please",
    )
    + _c(
        "HassTurnOn",
        LIGHT,
        "lights on please",
        "it's too dark in here",
        "put the light on",
        "switch the light on",
        "give me some light",
        "make it brighter in here",
    )
    + _c(
        "HassTurnOff",
        {},
        "shut off the {name}",
        "kill the {name}",
        "switch the {name} off",
        "{name} off please",
        "can you turn the {name} off",
        "power off the {name}",
        "cut the {name}",
        "turn the {name} off please",
        "put the {name} off",
        "{name} off",
        "stop the {name}",
        "disable the {name}",
    )
    + _c(
        "HassTurnOn",
        {},
        "switch the {name} on",
        "{name} on please",
        "fire up the {name}",
        "can you turn the {name} on",
        "power on the {name}",
        "put the {name} on",
        "{name} on",
        "start the {name}",
        "enable the {name}",
        "get the {name} going",
        "turn the {name} on please",
    )
    + _c(
        "HassTurnOff",
        {},
        "turn off the {name} in the {area}",
        "switch off the {area} {name}",
        "kill the {name} in the {area}",
    )
    + _c(
        "HassTurnOn",
        {},
        "turn on the {name} in the {area}",
        "switch on the {area} {name}",
        "put the {name} in the {area} on",
    )
    + _c(
        "HassLightSet",
        {},
        "dim the {name} to {brightness} percent",
        "set {name} to {brightness}%",
        "{name} at {brightness} percent",
        "make the {name} {brightness} percent",
        "put the {name} on {brightness} percent",
        "change the {name} brightness to {brightness}",
        "{name} brightness {brightness}",
    )
    + _c(
        "HassLightSet",
        {},
        "dim the {area} lights to {brightness} percent",
        "set the {area} to {brightness}%",
        "{area} lights at {brightness} percent",
        "put the lights in the {area} at {brightness} percent",
        "brightness {brightness} in the {area}",
    )
    + _c(
        "HassLightSet",
        {},
        "make the {name} {color}",
        "change the {name} to {color}",
        "set {name} color {color}",
        "turn the {name} {color} please",
        "{name} in {color}",
    )
    + _c(
        "HassSetPosition",
        {},
        "open the {name} to {position} percent",
        "put the {name} at {position}%",
        "set the {name} halfway to {position} percent",
        "{name} to {position}",
        "move the {name} to {position} percent",
    )
    + _c(
        "HassClimateSetTemperature",
        {},
        "make it {temperature} degrees",
        "set the heat to {temperature}",
        "crank the heat to {temperature}",
        "i want it {temperature} degrees in here",
        "put the thermostat on {temperature}",
        "heating to {temperature} please",
        "change the temperature to {temperature} degrees",
        "thermostat {temperature}",
    )
    + _c(
        "HassClimateGetTemperature",
        {},
        "how warm is it in here",
        "is it cold in here",
        "what's it set to",
        "how hot is it inside",
        "what's the temperature inside",
        "what's the thermostat at",
        "how warm is the house",
    )
    + _c(
        "HassMediaPause",
        {},
        "pause it",
        "hold on pause",
        "stop the music",
        "pause the music",
        "hit pause",
        "freeze it",
        "pause playback",
        "stop playing",
    )
    + _c(
        "HassMediaUnpause",
        {},
        "play it again",
        "unpause",
        "keep playing",
        "continue playing",
        "carry on",
        "start it again",
        "resume the music",
        "press play",
    )
    + _c(
        "HassMediaNext",
        {},
        "skip this one",
        "next one",
        "play the next song",
        "skip it",
        "go to the next track",
        "i don't like this song",
        "skip",
    )
    + _c(
        "HassMediaPrevious",
        {},
        "go back a song",
        "play the last song again",
        "previous one",
        "back one track",
    )
    + _c(
        "HassSetVolume",
        {},
        "volume {volume}",
        "make the volume {volume}",
        "put the volume on {volume}",
        "turn it to {volume} percent volume",
        "set the sound to {volume}",
        "volume at {volume} percent",
    )
    + _c("HassMediaPlayerMute", {}, "shut up", "silence", "mute it", "quiet please", "kill the sound")
    + _c(
        "HassVacuumStart",
        {},
        "vacuum the house",
        "start cleaning",
        "clean the floors",
        "hoover please",
        "run the robot",
        "get the roomba going",
        "start the hoover",
        "time to vacuum",
    )
    + _c(
        "HassVacuumReturnToBase",
        {},
        "send the vacuum home",
        "vacuum go home",
        "stop cleaning and dock",
        "roomba go back",
        "send the robot back to its base",
    )
    + _c(
        "HassStartTimer",
        {},
        "timer {minutes} minutes",
        "set a {minutes} minute timer",
        "start a timer for {minutes} minutes",
        "{minutes} minute timer please",
        "remind me in {minutes} minutes",
        "wake me in {minutes} minutes",
        "countdown {minutes} minutes",
        "give me a {minutes} minute timer",
        "set timer {minutes} min",
        "put on a timer for {minutes} minutes",
    )
    + _c(
        "HassCancelTimer",
        {},
        "stop the timer",
        "kill the timer",
        "forget the timer",
        "timer off",
        "never mind the timer",
        "get rid of the timer",
        "cancel it",
    )
    + _c(
        "HassTimerStatus",
        {},
        "how long left",
        "how much time is left",
        "how long on the timer",
        "when is the timer done",
        "time left",
        "how much longer",
    )
    + _c(
        "HassShoppingListAddItem",
        {},
        "we need {item}",
        "put {item} on the list",
        "add {item} to shopping",
        "we're out of {item}",
        "remember to buy {item}",
        "{item} on the shopping list",
        "i need to buy {item}",
        "add {item} please",
        "shopping list {item}",
        "note down {item} for shopping",
    )
    + _c(
        "HassGetWeather",
        {},
        "do i need an umbrella",
        "is it going to rain",
        "how's it looking outside",
        "what's it like out",
        "weather please",
        "is it cold outside",
        "should i take a jacket",
        "what's the forecast",
        "is it sunny",
    )
    + _c(
        "HassGetCurrentTime",
        {},
        "what's the time",
        "time please",
        "got the time",
        "what time have we got",
        "how late is it",
        "tell me the time",
    )
    + _c(
        "HassGetCurrentDate",
        {},
        "what's today's date",
        "what day is it",
        "date please",
        "which day is today",
        "what's the date today",
    )
)

OUT_OF_SCOPE: tuple[Phrasing, ...] = tuple(
    Phrasing(pattern=p, intent="OutOfScope", source="colloquial", original_intent=orig)
    for orig, ps in {
        "joke": ("tell me a joke", "say something funny", "make me laugh", "know any good jokes"),
        "calendar": (
            "what's on my calendar",
            "do i have meetings today",
            "when is my next appointment",
            "add lunch with sam to my calendar",
        ),
        "email": ("read my emails", "any new email", "send an email to mom", "check my inbox"),
        "news": ("what's the news", "read me the headlines", "any news today"),
        "music_query": ("who sings this", "what song is this", "who is the artist"),
        "general_qa": (
            "how tall is mount everest",
            "who won the game last night",
            "what is the capital of peru",
            "how many ounces in a cup",
            "how far is the moon",
        ),
        "alarm": ("wake me up at seven", "set an alarm for six thirty", "cancel my alarm"),
        "recommendation": ("recommend a restaurant", "what should i cook tonight", "find me a good movie"),
        "social": ("post on facebook", "what's trending on twitter"),
        "transport": ("call me a taxi", "when is the next train", "how's traffic to work"),
    }.items()
    for p in ps
)

BACKGROUND: tuple[str, ...] = (
    "and the lights went out across the city",
    "turn it up a little",
    "i think we should go home",
    "did you turn off the oven",
    "next week on the show",
    "what time is the game on",
    "the weather tomorrow looks terrible",
    "can you pass the salt",
    "stop it you two",
    "okay let's start",
    "open the window would you",
    "play ball",
    "that's what she said",
    "we need more milk",
    "is it raining there",
    "set the table please",
    "i'll be back in five minutes",
    "the music was too loud",
    "lock the door when you leave",
    "how was your day",
    "breaking news tonight",
    "it's getting cold in here",
    "good night everyone",
    "alright alright",
    "pause for a second",
)
"""Snippets of TV and household conversation that sometimes wake the device."""
