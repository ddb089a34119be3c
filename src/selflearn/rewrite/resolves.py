"""Would this sentence run in this home? The check every home-language candidate passes.

A candidate from the home language (:mod:`selflearn.rewrite.home_language`,
:mod:`selflearn.rewrite.home_sentences`) is a template's wording filled with names. It is proposed
only when this home's own matcher understands it exactly (Home Assistant's templates, strict, as
``Port.parses`` asks) and its names resolve to something the home has (entity resolution finds
targets, or the intent needs none). A question whose yes cannot work is never asked.

:meth:`HomeCheck.read` also says *what* the sentence would do (:class:`Reading`: the intent, its
slots and the entities it resolves to), so two candidates that would do the same thing count as
one, and a training label can compare a candidate with what the user's successful retry did.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from selflearn.assistant.nlu import HomeAssistantNlu
from selflearn.assistant.resolve import resolve
from selflearn.core.guards import on_off_meaning
from selflearn.core.home import Home


@dataclass(frozen=True)
class Reading:
    """What a sentence would do in a home."""

    intent: str
    slots: tuple[tuple[str, str], ...]
    """The matched slots as (name, value) text, sorted."""
    targets: tuple[str, ...]
    """Entity ids it resolves to (empty for intents without targets: timers, the time)."""

    @property
    def action(self) -> str:
        """One string for "does the same thing": intent, slots other than names, targets."""
        kept = [f"{k}={v}" for k, v in self.slots if k not in ("name", "area", "floor")]
        return "|".join([self.intent, *kept, ",".join(self.targets)])

    @property
    def domains(self) -> tuple[str, ...]:
        """The domains of the entities it resolves to, in target order."""
        return tuple(target.split(".", 1)[0] for target in self.targets)

    @property
    def on_off_means(self) -> str | None:
        """For a turn-on or turn-off of covers, valves or locks, the dimension its on/off mean
        (:data:`~selflearn.core.guards.ON_OFF_MEANS`: "lock the front door" is Home Assistant's
        ``HassTurnOn`` of a lock); None otherwise."""
        if self.intent not in ("HassTurnOn", "HassTurnOff"):
            return None
        return on_off_meaning(self.domains)


class HomeCheck:
    """Whether a sentence is understood and resolves in a home (cached per home and area)."""

    def __init__(self, nlu: HomeAssistantNlu | None = None, cache: int = 100_000) -> None:
        self.nlu = nlu or HomeAssistantNlu("strict", unmatched_pass=False)
        self._cache: OrderedDict[tuple[str, str | None, str], Reading | None] = OrderedDict()
        self._size = cache

    def read(self, text: str, home: Home, area_id: str | None = None, keep: bool = True) -> Reading | None:
        """What ``text`` would do in ``home`` said in ``area_id``: None when no template of the
        home's assistant matches it or its names do not resolve. ``keep=False``: the caller keeps
        the answer itself (it is not cached here)."""
        key = (home.fingerprint, area_id, text)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        result = self.nlu.recognize(text, home, area_id, explain_failures=False)
        reading = None
        if result.trace.matched and result.trace.intent:
            slots = dict(result.trace.slots)
            found = resolve(result.trace.intent, slots, home, area_id, preset_ids=result.target_ids)
            if found.error_code is None:
                reading = Reading(
                    result.trace.intent,
                    tuple(sorted((k, str(v)) for k, v in slots.items())),
                    tuple(sorted(e.entity_id for e in found.targets)),
                )
        if not keep:
            return reading
        self._cache[key] = reading
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return reading

    def resolves(self, text: str, home: Home, area_id: str | None = None) -> bool:
        """``text`` matches a template of this home's assistant and resolves to its targets."""
        return self.read(text, home, area_id) is not None
