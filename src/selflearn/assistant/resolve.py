"""Entity resolution: from NLU slots to the home's entities, as Home Assistant matches targets.

Constraints come from the slots: ``name`` (an entity's configured name or alias), ``area``,
``floor``, ``domain``, ``device_class``. A name that matches several entities is narrowed to the
satellite's area when possible; otherwise the first by entity id is taken, which is how an
ambiguous household name ends up switching the wrong device.
"""

from __future__ import annotations

from dataclasses import dataclass

from selflearn.core.home import Entity, Home, normalize_name
from selflearn.core.schema import ErTrace, ResolvedTarget, SlotValue

TARGETLESS_INTENTS = frozenset(
    {
        "HassStartTimer",
        "HassCancelTimer",
        "HassCancelAllTimers",
        "HassPauseTimer",
        "HassUnpauseTimer",
        "HassIncreaseTimer",
        "HassDecreaseTimer",
        "HassTimerStatus",
        "HassGetCurrentTime",
        "HassGetCurrentDate",
        "HassGetWeather",
        "HassShoppingListAddItem",
        "HassShoppingListCompleteItem",
        "HassBroadcast",
        "HassNevermind",
        "HassRespond",
        "HassListAddItem",
        "HassListCompleteItem",
        "HassListRemoveItem",
    }
)
"""Intents whose slots do not name devices (a timer's ``name`` is the timer's, not an entity's)."""

# Domains an intent applies to when the sentence names none (Home Assistant's defaults).
INTENT_DOMAINS: dict[str, tuple[str, ...]] = {
    "HassTurnOn": ("light", "switch", "fan", "cover", "lock", "media_player", "scene", "script", "valve"),
    "HassTurnOff": ("light", "switch", "fan", "cover", "lock", "media_player", "valve"),
    "HassLightSet": ("light",),
    "HassSetPosition": ("cover", "valve"),
    "HassClimateSetTemperature": ("climate",),
    "HassClimateGetTemperature": ("climate",),
    "HassClimateSetFanMode": ("climate",),
    "HassFanSetSpeed": ("fan",),
    "HassMediaPause": ("media_player",),
    "HassMediaUnpause": ("media_player",),
    "HassMediaNext": ("media_player",),
    "HassMediaPrevious": ("media_player",),
    "HassSetVolume": ("media_player",),
    "HassSetVolumeRelative": ("media_player",),
    "HassMediaPlayerMute": ("media_player",),
    "HassMediaPlayerUnmute": ("media_player",),
    "HassMediaSearchAndPlay": ("media_player",),
    "HassVacuumStart": ("vacuum",),
    "HassVacuumReturnToBase": ("vacuum",),
    "HassVacuumCleanArea": ("vacuum",),
    "HassLawnMowerStartMowing": ("lawn_mower",),
    "HassLawnMowerDock": ("lawn_mower",),
}

# Intents that act on one device: an area-wide reading picks one in the area.
SINGLE_TARGET_INTENTS = frozenset(
    {
        "HassMediaPause",
        "HassMediaUnpause",
        "HassMediaNext",
        "HassMediaPrevious",
        "HassSetVolume",
        "HassSetVolumeRelative",
        "HassMediaPlayerMute",
        "HassMediaPlayerUnmute",
        "HassMediaSearchAndPlay",
        "HassVacuumStart",
        "HassVacuumReturnToBase",
        "HassClimateSetTemperature",
        "HassClimateGetTemperature",
    }
)


@dataclass(frozen=True)
class Resolution:
    """Outcome of entity resolution."""

    trace: ErTrace
    """Trace written to the log."""
    targets: tuple[Entity, ...]
    """Resolved entities, in id order."""
    error_code: str | None = None
    """Why resolution failed: ``no_entity``, ``no_area``, ``no_floor``, ``no_domain``."""
    error_subject: str = ""
    """The name/area/domain the error is about, for the response text."""


def _domains(intent: str, slots: dict[str, SlotValue]) -> tuple[str, ...] | None:
    raw = slots.get("domain")
    if isinstance(raw, str) and raw:
        return tuple(d.strip() for d in raw.split(",") if d.strip())
    return INTENT_DOMAINS.get(intent)


def resolve(
    intent: str | None,
    slots: dict[str, SlotValue],
    home: Home,
    context_area: str | None,
    preset_ids: tuple[str, ...] = (),
    unmatched: dict[str, str] | None = None,
) -> Resolution:
    """Resolve the targets of ``intent`` with ``slots`` in ``home``.

    ``preset_ids`` are entity ids a matcher already resolved (the gazetteer does); ``unmatched``
    are slot texts the NLU could not match at all (they make resolution fail with ``no_entity``
    or ``no_area`` naming what was said).
    """
    if unmatched:
        if "name" in unmatched:
            code, subject = "no_entity", unmatched["name"]
        elif "area" in unmatched:
            code, subject = "no_area", unmatched["area"]
        elif "floor" in unmatched:
            code, subject = "no_floor", unmatched["floor"]
        else:
            slot, subject = next(iter(unmatched.items()))
            code = f"no_{slot}"
        return Resolution(ErTrace(ok=False, unresolved=tuple(unmatched.values())), (), code, subject)
    if intent is None:
        return Resolution(ErTrace(ok=False), (), "no_intent")
    if intent in TARGETLESS_INTENTS or (intent not in INTENT_DOMAINS and intent != "HassGetState"):
        return Resolution(ErTrace(ok=True), ())

    if preset_ids:
        ents = tuple(home.entity_by_id[i] for i in preset_ids if i in home.entity_by_id)
        return _done(ents, score=0.9)

    domains = _domains(intent, slots)
    device_class = slots.get("device_class") if isinstance(slots.get("device_class"), str) else None
    area_id = _area_id(slots.get("area"), home)
    floor_id = _floor_id(slots.get("floor"), home)
    if slots.get("area") is not None and area_id is None:
        return Resolution(
            ErTrace(ok=False, unresolved=(str(slots["area"]),)), (), "no_area", str(slots["area"])
        )
    if slots.get("floor") is not None and floor_id is None:
        return Resolution(
            ErTrace(ok=False, unresolved=(str(slots["floor"]),)), (), "no_floor", str(slots["floor"])
        )

    candidates = [
        e
        for e in home.entities
        if (domains is None or e.domain in domains)
        and (device_class is None or e.device_class == device_class)
    ]
    name = slots.get("name")
    if isinstance(name, str) and name:
        key = normalize_name(name)
        named = [e for e in candidates if key in (normalize_name(n) for n in e.spoken_names)]
        if not named:
            return Resolution(ErTrace(ok=False, unresolved=(name,)), (), "no_entity", name)
        if area_id is not None:
            named = [e for e in named if e.area_id == area_id]
        if floor_id is not None:
            named = [
                e
                for e in named
                if home.area_by_id.get(e.area_id or "")
                and home.area_by_id[e.area_id or ""].floor_id == floor_id
            ]
        if len(named) > 1 and context_area is not None:
            local = [e for e in named if e.area_id == context_area]
            named = local or named
        if len(named) > 1:
            named = sorted(named, key=lambda e: e.entity_id)[:1]
        if not named:
            return Resolution(ErTrace(ok=False, unresolved=(name,)), (), "no_entity", name)
        return _done(tuple(named))

    if area_id is None and floor_id is None and context_area is not None and intent != "HassGetState":
        area_id = context_area
    scoped = [
        e
        for e in candidates
        if (area_id is None or e.area_id == area_id)
        and (floor_id is None or (e.area_id is not None and home.area_by_id[e.area_id].floor_id == floor_id))
    ]
    if not scoped:
        subject = domains[0] if domains else "device"
        return Resolution(ErTrace(ok=False, unresolved=()), (), "no_domain", subject)
    if intent in SINGLE_TARGET_INTENTS:
        scoped = sorted(scoped, key=lambda e: e.entity_id)[:1]
    return _done(tuple(scoped))


def _done(ents: tuple[Entity, ...], score: float = 1.0) -> Resolution:
    ents = tuple(sorted(ents, key=lambda e: e.entity_id))
    return Resolution(
        ErTrace(
            ok=True,
            resolved=tuple(ResolvedTarget(entity_id=e.entity_id, name=e.name, score=score) for e in ents),
        ),
        ents,
    )


def _area_id(value: SlotValue, home: Home) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    if value in home.area_by_id:
        return value
    area = home.area_named(value)
    return area.area_id if area else None


def _floor_id(value: SlotValue, home: Home) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    if value in home.floor_by_id:
        return value
    floor = home.floor_named(value)
    return floor.floor_id if floor else None
