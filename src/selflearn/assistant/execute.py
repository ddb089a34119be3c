"""The result stage: carry out an intent on the home's state and say what happened.

Realistic result errors come from the home itself: a device that is offline, a light without
colour support, a timer that does not exist, a volume on a player that is off. What the stage did
is summarised as an :class:`Effect` so that simulations can compare it with what the user wanted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from selflearn.assistant.devices import HomeState
from selflearn.assistant.resolve import Resolution
from selflearn.core.home import Entity
from selflearn.core.schema import ResultTrace, SlotValue

PARAM_SLOTS = (
    "brightness",
    "color",
    "temperature",
    "position",
    "volume",
    "volume_step",
    "percentage",
    "hours",
    "minutes",
    "seconds",
    "item",
    "state",
    "media_class",
    "search_query",
)
"""Slots that parameterise an action (as opposed to selecting its targets)."""

SLOT_ALIASES = {"volume_level": "volume"}
"""Home Assistant slot names that mean the same parameter as ours (``HassSetVolume`` fills
``volume_level`` from its ``{volume}`` list)."""


@dataclass(frozen=True)
class Effect:
    """What the assistant did: the intent it executed, on which entities, with which parameters."""

    intent: str
    """Executed intent."""
    targets: frozenset[str] = frozenset()
    """Entity ids acted on or asked about."""
    params: tuple[tuple[str, str], ...] = ()
    """Normalised parameter values, sorted by name."""

    @staticmethod
    def of(intent: str, targets: frozenset[str], slots: dict[str, SlotValue]) -> Effect:
        """Build an effect, keeping only parameter slots and normalising their values."""
        params = tuple(
            sorted(
                (SLOT_ALIASES.get(k, k), normalize_param(v))
                for k, v in slots.items()
                if SLOT_ALIASES.get(k, k) in PARAM_SLOTS and v is not None
            )
        )
        return Effect(intent, targets, params)


def normalize_param(value: SlotValue) -> str:
    """Canonical text of a parameter value: ``50`` and ``50.0`` and ``"50"`` are the same."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return f"{float(value):g}"
    text = str(value).strip().lower()
    try:
        return f"{float(text):g}"
    except ValueError:
        return text


@dataclass(frozen=True)
class Outcome:
    """Result of the result stage."""

    trace: ResultTrace
    """Trace written to the log."""
    effect: Effect | None = None
    """What was done; ``None`` when nothing was done."""


_ON_WORDS = {
    "light": ("on", "Turned on the light"),
    "switch": ("on", "Turned on"),
    "fan": ("on", "Turned on the fan"),
    "cover": ("open", "Opened"),
    "lock": ("locked", "Locked"),
    "valve": ("open", "Opened"),
    "media_player": ("on", "Turned on"),
    "scene": ("on", "Activated"),
    "script": ("on", "Started"),
}
_OFF_WORDS = {
    "light": ("off", "Turned off the light"),
    "switch": ("off", "Turned off"),
    "fan": ("off", "Turned off the fan"),
    "cover": ("closed", "Closed"),
    "lock": ("unlocked", "Unlocked"),
    "valve": ("closed", "Closed"),
    "media_player": ("off", "Turned off"),
}

NO_MATCH_RESPONSE = "Sorry, I couldn't understand that"


def error_response(code: str, subject: str) -> str:
    """Home Assistant's wording for an entity-resolution failure (a subject longer than
    :data:`MAX_SUBJECT_CHARS` is cut, so that the answer stays a valid response text)."""
    if len(subject) > MAX_SUBJECT_CHARS:
        subject = subject[: MAX_SUBJECT_CHARS - 3].rstrip() + "..."
    if code == "no_entity":
        return f"Sorry, I am not aware of any device called {subject}"
    if code == "no_area":
        return f"Sorry, I am not aware of any area called {subject}"
    if code == "no_floor":
        return f"Sorry, I am not aware of any floor called {subject}"
    if code == "no_domain":
        return f"Sorry, I am not aware of any {subject} in that area"
    return NO_MATCH_RESPONSE


MAX_SUBJECT_CHARS = 200
"""Longest name quoted back in an error answer ("Sorry, I am not aware of any device called ...")."""


def execute(
    intent: str,
    slots: dict[str, SlotValue],
    resolution: Resolution,
    state: HomeState,
    now: datetime,
    context_area: str | None = None,
) -> Outcome:
    """Carry out ``intent`` on ``state`` (mutated in place) and describe the result."""
    slots = {SLOT_ALIASES.get(k, k): v for k, v in slots.items()}
    if not resolution.trace.ok:
        code = resolution.error_code or "no_valid_targets"
        return _err(error_response(code, resolution.error_subject), code)
    targets = resolution.targets
    ids = frozenset(e.entity_id for e in targets)
    offline = [e for e in targets if e.entity_id in state.unavailable]
    if offline:
        return _err(f"Sorry, {offline[0].name} is not available", "entity_unavailable")
    handler = _HANDLERS.get(intent)
    if handler is None:
        return Outcome(
            ResultTrace(
                status="unsupported",
                response_text="Sorry, I can't do that yet",
                error_code="intent_not_supported",
            )
        )
    return handler(intent, slots, targets, ids, state, now, context_area)


def _ok(text: str, intent: str, ids: frozenset[str], slots: dict[str, SlotValue]) -> Outcome:
    return Outcome(ResultTrace(status="success", response_text=text), Effect.of(intent, ids, slots))


def _err(text: str, code: str) -> Outcome:
    return Outcome(ResultTrace(status="error", response_text=text, error_code=code))


def _turn(
    intent: str,
    slots: dict[str, SlotValue],
    targets: tuple[Entity, ...],
    ids: frozenset[str],
    state: HomeState,
    now: datetime,
    area: str | None,
) -> Outcome:
    words = _ON_WORDS if intent == "HassTurnOn" else _OFF_WORDS
    text = ""
    for ent in targets:
        if ent.domain not in words:
            return _err(
                f"Sorry, {ent.name} can't be turned {'on' if intent == 'HassTurnOn' else 'off'}",
                "not_supported",
            )
        new_state, text = words[ent.domain]
        state.states[ent.entity_id] = new_state
    if len(targets) > 1 and targets[0].domain == "light":
        text = text.replace("the light", "the lights")
    return _ok(text, intent, ids, slots)


def _light_set(
    intent: str,
    slots: dict[str, SlotValue],
    targets: tuple[Entity, ...],
    ids: frozenset[str],
    state: HomeState,
    now: datetime,
    area: str | None,
) -> Outcome:
    for ent in targets:
        if "color" in slots and "color" not in ent.features:
            return _err(f"Sorry, {ent.name} does not support colors", "feature_not_supported")
        if "brightness" in slots and "brightness" not in ent.features:
            return _err(f"Sorry, {ent.name} does not support brightness", "feature_not_supported")
        attrs = state.attributes.setdefault(ent.entity_id, {})
        for key in ("brightness", "color", "temperature"):
            if key in slots:
                attrs[key] = slots[key]
        state.states[ent.entity_id] = "on"
    return _ok("Brightness set" if "brightness" in slots else "Color set", intent, ids, slots)


def _set_attr(attr: str, feature: str, text: str):  # type: ignore[no-untyped-def]
    def handler(
        intent: str,
        slots: dict[str, SlotValue],
        targets: tuple[Entity, ...],
        ids: frozenset[str],
        state: HomeState,
        now: datetime,
        area: str | None,
    ) -> Outcome:
        for ent in targets:
            if feature and feature not in ent.features:
                return _err(f"Sorry, {ent.name} does not support that", "feature_not_supported")
            if ent.domain == "media_player" and state.states.get(ent.entity_id) == "off":
                return _err(f"Sorry, {ent.name} is off", "entity_off")
            state.attributes.setdefault(ent.entity_id, {})[attr] = slots.get(attr, slots.get("volume_step"))
        return _ok(text, intent, ids, slots)

    return handler


def _media(new_state: str, text: str):  # type: ignore[no-untyped-def]
    def handler(
        intent: str,
        slots: dict[str, SlotValue],
        targets: tuple[Entity, ...],
        ids: frozenset[str],
        state: HomeState,
        now: datetime,
        area: str | None,
    ) -> Outcome:
        for ent in targets:
            current = state.states.get(ent.entity_id)
            if intent == "HassMediaUnpause" and current not in ("paused", "playing"):
                return _err(f"Sorry, nothing is paused on {ent.name}", "nothing_paused")
            if intent in ("HassMediaPause", "HassMediaNext", "HassMediaPrevious") and current != "playing":
                return _err(f"Sorry, nothing is playing on {ent.name}", "nothing_playing")
            if new_state:
                state.states[ent.entity_id] = new_state
        return _ok(text, intent, ids, slots)

    return handler


def _query(
    intent: str,
    slots: dict[str, SlotValue],
    targets: tuple[Entity, ...],
    ids: frozenset[str],
    state: HomeState,
    now: datetime,
    area: str | None,
) -> Outcome:
    if intent == "HassGetCurrentTime":
        return _ok(f"It's {now.strftime('%-I:%M %p')}", intent, ids, slots)
    if intent == "HassGetCurrentDate":
        return _ok(f"It's {now.strftime('%B %-d, %Y')}", intent, ids, slots)
    if intent == "HassGetWeather":
        return _ok(f"It's 18 degrees and partly cloudy in {state.home.location}", intent, ids, {})
    if intent == "HassClimateGetTemperature":
        temp = state.attributes.get(next(iter(ids), ""), {}).get("temperature", 21)
        return _ok(f"It's {temp} degrees", intent, ids, {})
    if not targets:
        return _err("Sorry, I couldn't find that", "no_valid_targets")
    ent = targets[0]
    return _ok(
        f"{ent.name} is {state.states.get(ent.entity_id, 'unknown')}",
        intent,
        ids,
        {k: v for k, v in slots.items() if k != "state"},
    )


def _timer(
    intent: str,
    slots: dict[str, SlotValue],
    targets: tuple[Entity, ...],
    ids: frozenset[str],
    state: HomeState,
    now: datetime,
    area: str | None,
) -> Outcome:
    if intent == "HassStartTimer":
        seconds = int(
            float(str(slots.get("hours") or 0)) * 3600
            + float(str(slots.get("minutes") or 0)) * 60
            + float(str(slots.get("seconds") or 0))
        )
        if seconds <= 0:
            return _err("Sorry, I need a duration for the timer", "invalid_duration")
        state.timers.append({"seconds": seconds, "area": area, "paused": False, "name": slots.get("name")})
        return _ok("Timer started", intent, ids, slots)
    if not state.timers:
        return _err("Sorry, there are no timers", "no_timers")
    if intent == "HassCancelAllTimers":
        state.timers.clear()
        return _ok("Cancelled all timers", intent, ids, {})
    if intent == "HassCancelTimer":
        state.timers.pop()
        return _ok("Timer cancelled", intent, ids, {})
    if intent in ("HassPauseTimer", "HassUnpauseTimer"):
        state.timers[-1]["paused"] = intent == "HassPauseTimer"
        return _ok("Timer paused" if intent == "HassPauseTimer" else "Timer resumed", intent, ids, {})
    remaining = state.timers[-1]["seconds"]
    return _ok(f"{remaining // 60} minutes left on your timer", intent, ids, {})


def _shopping(
    intent: str,
    slots: dict[str, SlotValue],
    targets: tuple[Entity, ...],
    ids: frozenset[str],
    state: HomeState,
    now: datetime,
    area: str | None,
) -> Outcome:
    item = str(slots.get("item") or "").strip()
    if not item:
        return _err("Sorry, what should I add?", "no_item")
    if intent in ("HassShoppingListAddItem", "HassListAddItem"):
        state.shopping_list.append(item)
        return _ok(f"Added {item}", "HassShoppingListAddItem", ids, {"item": item})
    if item not in state.shopping_list:
        return _err(f"Sorry, {item} is not on the list", "item_not_found")
    state.shopping_list.remove(item)
    return _ok(f"Checked off {item}", intent, ids, {"item": item})


def _vacuum(
    intent: str,
    slots: dict[str, SlotValue],
    targets: tuple[Entity, ...],
    ids: frozenset[str],
    state: HomeState,
    now: datetime,
    area: str | None,
) -> Outcome:
    for ent in targets:
        state.states[ent.entity_id] = "cleaning" if intent == "HassVacuumStart" else "docked"
    return _ok("Started cleaning" if intent == "HassVacuumStart" else "Returning to base", intent, ids, slots)


def _nevermind(
    intent: str,
    slots: dict[str, SlotValue],
    targets: tuple[Entity, ...],
    ids: frozenset[str],
    state: HomeState,
    now: datetime,
    area: str | None,
) -> Outcome:
    return _ok("", intent, ids, {})


_HANDLERS: dict[str, Callable[..., Outcome]] = {
    "HassTurnOn": _turn,
    "HassTurnOff": _turn,
    "HassLightSet": _light_set,
    "HassSetPosition": _set_attr("position", "position", "Position set"),
    "HassClimateSetTemperature": _set_attr("temperature", "", "Temperature set"),
    "HassFanSetSpeed": _set_attr("percentage", "", "Fan speed set"),
    "HassSetVolume": _set_attr("volume", "volume", "Volume set"),
    "HassSetVolumeRelative": _set_attr("volume", "volume", "Volume changed"),
    "HassMediaPause": _media("paused", "Paused"),
    "HassMediaUnpause": _media("playing", "Resumed"),
    "HassMediaNext": _media("", "Playing next"),
    "HassMediaPrevious": _media("", "Playing previous"),
    "HassMediaPlayerMute": _set_attr("muted", "", "Muted"),
    "HassMediaPlayerUnmute": _set_attr("muted", "", "Unmuted"),
    "HassGetState": _query,
    "HassGetWeather": _query,
    "HassGetCurrentTime": _query,
    "HassGetCurrentDate": _query,
    "HassClimateGetTemperature": _query,
    "HassStartTimer": _timer,
    "HassCancelTimer": _timer,
    "HassCancelAllTimers": _timer,
    "HassPauseTimer": _timer,
    "HassUnpauseTimer": _timer,
    "HassTimerStatus": _timer,
    "HassShoppingListAddItem": _shopping,
    "HassListAddItem": _shopping,
    "HassShoppingListCompleteItem": _shopping,
    "HassListCompleteItem": _shopping,
    "HassVacuumStart": _vacuum,
    "HassVacuumReturnToBase": _vacuum,
    "HassNevermind": _nevermind,
}
