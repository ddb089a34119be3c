"""Intent recognition as Home Assistant ships it: hassil strict matching, then the gazetteer fallback.

:class:`HomeAssistantNlu` reproduces the English default conversation agent:

1. **strict**: ``hassil.recognize_best`` over ``home_assistant_intents.get_intents("en")`` with the
   home's ``area`` / ``name`` / ``floor`` slot lists and the satellite's area as intent context,
   preferring results that fill ``name`` (the call Home Assistant's ``DefaultAgent`` makes);
2. **gazetteer** (configuration ``strict+gazetteer``, the default since August 2026):
   ``GazetteerMatcher.interpret`` when strict finds nothing;
3. **unmatched entities**: when both fail, a second hassil pass that allows unknown slot values,
   used only to phrase the error ("Sorry, I am not aware of any device called big light"), as
   Home Assistant does.

Results are cached under a key that is sound across homes: the text, the context area, the
matcher configuration and only those slot-list values that occur in the text (a value that
does not occur cannot be matched by a strict matcher). Gazetteer results are fuzzy, so they are
cached per home fingerprint.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

from hassil import Intents, recognize_all, recognize_best
from hassil.intents import SlotList, TextSlotList
from hassil.models import UnmatchedRangeEntity, UnmatchedTextEntity
from hassil.recognize import MISSING_ENTITY
from home_assistant_intents import get_intents

from selflearn.assistant.home import Home, normalize_name
from selflearn.errors import ConfigError
from selflearn.schema import NluTrace, SlotValue

NluConfig = Literal["strict", "strict+gazetteer"]
NLU_CONFIGS: tuple[NluConfig, ...] = ("strict", "strict+gazetteer")

_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True)
class NluResult:
    """What the NLU stage produced: the public trace plus ids the entity resolver needs."""

    trace: NluTrace
    """The trace written to the log."""
    target_ids: tuple[str, ...] = ()
    """Entity/area ids the matcher itself resolved (gazetteer frames carry ids)."""
    unmatched: dict[str, str] = field(default_factory=dict)
    """Slot -> spoken text that matched nothing in the home (from the unmatched-entity pass)."""


_INTENTS: Intents | None = None


def load_intents(language: str = "en") -> Intents:
    """Home Assistant's intents for ``language`` from the installed ``home-assistant-intents``."""
    global _INTENTS
    if language != "en":
        raise ConfigError(f"only English is supported so far, not {language!r}")
    if _INTENTS is None:
        data = get_intents(language)
        if data is None:
            raise ConfigError("home-assistant-intents has no English intents")
        _INTENTS = Intents.from_dict(data)
    return _INTENTS


def slot_lists_for(home: Home, only: set[str] | None = None) -> dict[str, SlotList]:
    """The ``area``/``name``/``floor`` slot lists Home Assistant builds from its registries.

    ``only``, if given, restricts the lists to values whose normalized text is in it (used for
    cache-sound matching; see module docstring).
    """

    def keep(text: str) -> bool:
        return only is None or normalize_name(text) in only

    areas: list[tuple[str, Any, dict[str, Any]]] = []
    for area in home.areas:
        for text in (area.name, *area.aliases):
            if keep(text):
                areas.append((text, area.area_id, {}))
    floors: list[tuple[str, Any, dict[str, Any]]] = []
    for floor in home.floors:
        for text in (floor.name, *floor.aliases):
            if keep(text):
                floors.append((text, floor.floor_id, {}))
    names: list[tuple[str, Any, dict[str, Any]]] = []
    for ent in home.entities:
        context: dict[str, Any] = {"domain": ent.domain}
        if ent.device_class:
            context["device_class"] = ent.device_class
        for text in ent.spoken_names:
            if keep(text):
                names.append((text, ent.name, context))
    return {
        "area": TextSlotList.from_tuples(areas, allow_template=False, name="area"),
        "floor": TextSlotList.from_tuples(floors, allow_template=False, name="floor"),
        "name": TextSlotList.from_tuples(names, allow_template=False, name="name"),
    }


def _words(text: str) -> str:
    return " ".join(_WORD.findall(normalize_name(text)))


def _relevant_names(home: Home, text: str) -> frozenset[str]:
    """Normalized home names that occur (as whole words) in ``text``."""
    padded = f" {_words(text)} "
    out = set()
    for value in _all_names(home):
        if f" {value} " in padded:
            out.add(value)
    return frozenset(out)


_NAMES_CACHE: dict[str, tuple[str, ...]] = {}


def _all_names(home: Home) -> tuple[str, ...]:
    cached = _NAMES_CACHE.get(home.fingerprint)
    if cached is None:
        values = [n for a in home.areas for n in (a.name, *a.aliases)]
        values += [n for f in home.floors for n in (f.name, *f.aliases)]
        values += [n for e in home.entities for n in e.spoken_names]
        cached = tuple(sorted({normalize_name(v) for v in values}))
        _NAMES_CACHE[home.fingerprint] = cached
    return cached


class _Lru(OrderedDict[Any, Any]):
    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.hits = 0
        self.misses = 0

    def lookup(self, key: Any) -> Any:
        try:
            value = self[key]
        except KeyError:
            self.misses += 1
            return None
        self.move_to_end(key)
        self.hits += 1
        return value

    def store(self, key: Any, value: Any) -> None:
        self[key] = value
        if len(self) > self.capacity:
            self.popitem(last=False)


class HomeAssistantNlu:
    """Home Assistant's English intent recognition: strict templates, then the gazetteer."""

    def __init__(
        self, config: NluConfig = "strict+gazetteer", cache_size: int = 200_000, unmatched_pass: bool = True
    ) -> None:
        if config not in NLU_CONFIGS:
            raise ConfigError(f"unknown NLU configuration {config!r}; expected one of {NLU_CONFIGS}")
        self.config: NluConfig = config
        self.unmatched_pass = unmatched_pass
        self._intents = load_intents("en")
        self._gazetteer: Any = None
        self._gazetteer_home: str | None = None
        self._cache = _Lru(cache_size)

    @property
    def name(self) -> str:
        """Configuration name, e.g. ``strict+gazetteer``."""
        return self.config

    def cache_info(self) -> tuple[int, int]:
        """(hits, misses) of the result cache."""
        return self._cache.hits, self._cache.misses

    def recognize(self, text: str, home: Home, context_area: str | None = None) -> NluResult:
        """Recognize ``text`` in ``home``; ``context_area`` is the satellite's area id."""
        relevant = _relevant_names(home, text)
        strict_key = (
            "strict",
            _words(text),
            context_area,
            relevant,
            self._relevant_context(home, relevant, context_area),
        )
        result: NluResult | None = self._cache.lookup(strict_key)
        if result is None:
            result = self._strict(text, home, context_area, relevant)
            self._cache.store(strict_key, result)
        if result.trace.matched or self.config == "strict":
            return self._maybe_unmatched(result, text, home, context_area, relevant)
        gaz_key = ("gazetteer", _words(text), context_area, home.fingerprint)
        gaz: NluResult | None = self._cache.lookup(gaz_key)
        if gaz is None:
            gaz = self._gazetteer_match(text, home, context_area)
            self._cache.store(gaz_key, gaz)
        if gaz.trace.matched:
            return gaz
        return self._maybe_unmatched(gaz, text, home, context_area, relevant)

    # --- stages ------------------------------------------------------------------------------

    @staticmethod
    def _relevant_context(home: Home, relevant: frozenset[str], context_area: str | None) -> tuple[Any, ...]:
        """What of the home can influence a strict match beyond the names in the text: the
        context area's id and name, and, for relevant entity names, their domains and classes."""
        area = home.area_by_id.get(context_area or "")
        ents = tuple(
            sorted(
                (normalize_name(n), e.domain, e.device_class or "", e.name)
                for e in home.entities
                for n in e.spoken_names
                if normalize_name(n) in relevant
            )
        )
        areas = tuple(
            sorted(
                (normalize_name(n), a.area_id)
                for a in home.areas
                for n in (a.name, *a.aliases)
                if normalize_name(n) in relevant
            )
        )
        floors = tuple(
            sorted(
                (normalize_name(n), f.floor_id)
                for f in home.floors
                for n in (f.name, *f.aliases)
                if normalize_name(n) in relevant
            )
        )
        return (area.area_id, area.name) if area else None, ents, areas, floors

    def _context(self, home: Home, context_area: str | None) -> dict[str, Any] | None:
        area = home.area_by_id.get(context_area or "")
        if area is None:
            return None
        return {"area": {"value": area.area_id, "text": area.name}}

    def _strict(self, text: str, home: Home, context_area: str | None, relevant: frozenset[str]) -> NluResult:
        lists = slot_lists_for(home, only=set(relevant))
        res = recognize_best(
            text,
            self._intents,
            slot_lists=lists,
            intent_context=self._context(home, context_area),
            language="en",
            best_slot_name="name",
        )
        if res is None:
            return NluResult(NluTrace(matched=False, matcher="none"))
        slots: dict[str, SlotValue] = {}
        for name, ent in res.entities.items():
            slots[name] = _plain(ent.value)
        return NluResult(
            NluTrace(matched=True, intent=res.intent.name, slots=slots, confidence=1.0, matcher="strict")
        )

    def _gazetteer_match(self, text: str, home: Home, context_area: str | None) -> NluResult:
        from gazetteer_matcher import GazetteerMatcher

        if self._gazetteer is None:
            self._gazetteer = GazetteerMatcher(home=home.to_gazetteer())
            self._gazetteer_home = home.fingerprint
        elif self._gazetteer_home != home.fingerprint:
            self._gazetteer.set_home(home.to_gazetteer())
            self._gazetteer_home = home.fingerprint
        area = home.area_by_id.get(context_area or "")
        interp = self._gazetteer.interpret(text, context_area=area.name if area else None)
        if not interp.accepted or not interp.frames:
            return NluResult(NluTrace(matched=False, matcher="none"))
        frame = interp.frames[0]
        slots: dict[str, SlotValue] = {}
        ids: list[str] = []
        for key, value in frame.slots.items():
            if key == "name" and isinstance(value, str) and value in home.entity_by_id:
                ids.append(value)
                slots[key] = home.entity_by_id[value].name
            elif key == "area" and isinstance(value, str) and value in home.area_by_id:
                slots[key] = value
            else:
                slots[key] = _plain(value)
        # Fuzzy evidence lowers confidence: an exact gazetteer reading is worth more than a
        # spelling-corrected one.
        confidence = max(0.3, 0.9 - 0.2 * frame.fuzzy_count)
        return NluResult(
            NluTrace(
                matched=True, intent=frame.intent, slots=slots, confidence=confidence, matcher="gazetteer"
            ),
            target_ids=tuple(ids),
        )

    def _maybe_unmatched(
        self, result: NluResult, text: str, home: Home, context_area: str | None, relevant: frozenset[str]
    ) -> NluResult:
        if result.trace.matched or not self.unmatched_pass:
            return result
        key = (
            "unmatched",
            _words(text),
            context_area,
            relevant,
            self._relevant_context(home, relevant, context_area),
        )
        found: NluResult | None = self._cache.lookup(key)
        if found is None:
            found = self._unmatched(text, home, context_area, relevant)
            self._cache.store(key, found)
        return found

    def _unmatched(
        self, text: str, home: Home, context_area: str | None, relevant: frozenset[str]
    ) -> NluResult:
        """Home Assistant's last pass: allow unknown names, only to explain the failure."""
        lists = slot_lists_for(home, only=set(relevant))
        best: Any = None
        best_key: tuple[int, int, int, int] | None = None
        for res in recognize_all(
            text,
            self._intents,
            slot_lists=lists,
            intent_context=self._context(home, context_area),
            allow_unmatched_entities=True,
            language="en",
        ):
            if res.text_chunks_matched < 1:
                continue
            n_unmatched = 0
            n_ranges = 0
            for ent in res.unmatched_entities_list:
                if isinstance(ent, UnmatchedTextEntity):
                    if ent.text != MISSING_ENTITY:
                        n_unmatched += 1
                elif isinstance(ent, UnmatchedRangeEntity):
                    n_unmatched += 1
                    n_ranges += 1
                else:
                    n_unmatched += 1
            key = (len(res.entities_list), -n_unmatched, n_ranges, res.text_chunks_matched)
            if best_key is None or key > best_key:
                best, best_key = res, key
        if best is None:
            return NluResult(NluTrace(matched=False, matcher="none"))
        unmatched = {
            name: str(getattr(ent, "text", getattr(ent, "value", ""))).strip()
            for name, ent in best.unmatched_entities.items()
            if getattr(ent, "text", None) != MISSING_ENTITY
        }
        if not unmatched:
            return NluResult(NluTrace(matched=False, matcher="none"))
        return NluResult(
            NluTrace(matched=False, intent=best.intent.name, matcher="none"), unmatched=unmatched
        )


def _plain(value: Any) -> SlotValue:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
