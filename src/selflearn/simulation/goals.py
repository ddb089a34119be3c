"""Goals: what a user wants, drawn from what a home can do, and how it is said.

A goal is realised from a *kind* (intent, fixed slots, placeholder set -- see
:attr:`Phrasing.kind`). Realising it picks concrete things in the home for the placeholders
(an area with lights, a dimmable lamp, a number of minutes), records the canonical slots, and
computes the **expected effect** by executing that canonical interpretation on a copy of the
home's state. A turn succeeds when what the assistant did equals the expected effect.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from selflearn.assistant.devices import HomeState
from selflearn.assistant.execute import Effect, execute
from selflearn.assistant.resolve import INTENT_DOMAINS, TARGETLESS_INTENTS, resolve
from selflearn.core.home import Entity
from selflearn.core.schema import SlotValue
from selflearn.simulation.phrasing import Phrasing
from selflearn.simulation.population import Household, User

Kind = tuple[str, tuple[tuple[str, str], ...], tuple[str, ...]]

INTENT_WEIGHTS: dict[str, float] = {
    "HassTurnOn": 0.17,
    "HassTurnOff": 0.17,
    "HassLightSet": 0.07,
    "HassSetPosition": 0.02,
    "HassClimateSetTemperature": 0.04,
    "HassClimateGetTemperature": 0.02,
    "HassMediaPause": 0.03,
    "HassMediaUnpause": 0.02,
    "HassMediaNext": 0.02,
    "HassMediaPrevious": 0.01,
    "HassSetVolume": 0.03,
    "HassMediaPlayerMute": 0.01,
    "HassVacuumStart": 0.015,
    "HassVacuumReturnToBase": 0.005,
    "HassStartTimer": 0.07,
    "HassCancelTimer": 0.02,
    "HassTimerStatus": 0.02,
    "HassShoppingListAddItem": 0.04,
    "HassGetWeather": 0.05,
    "HassGetCurrentTime": 0.03,
    "HassGetCurrentDate": 0.01,
    "HassGetState": 0.03,
    "OutOfScope": 0.08,
}
"""Share of goals per intent (``OutOfScope``: requests the assistant cannot serve)."""

GROCERIES = (
    "milk",
    "eggs",
    "bread",
    "apples",
    "coffee",
    "butter",
    "bananas",
    "rice",
    "cheese",
    "tomatoes",
    "pasta",
    "dish soap",
    "toilet paper",
    "orange juice",
    "yogurt",
    "chicken",
    "onions",
    "cereal",
)
COLORS = ("red", "blue", "green", "yellow", "purple", "orange", "white", "pink", "warm white")

Popularity = Literal["uniform", "zipf"]

POPULARITY_SALT = b"selflearn-phrasing-popularity/1"
"""Salt of the popularity hash (:func:`popularity_key`): fixed, so that every process, household
and run ranks the phrasings alike; it also keeps the ranking independent of the train/test split,
which hashes the bare pattern."""


def popularity_key(pattern: str) -> bytes:
    """A phrasing's place in its bucket's popularity order (smallest: most popular): a stable
    hash of the pattern and :data:`POPULARITY_SALT` (never Python's ``hash``, salted per process)."""
    return hashlib.blake2b(pattern.encode(), digest_size=8, key=POPULARITY_SALT).digest()


def popularity_ranks(phrasings: Sequence[Phrasing]) -> list[int]:
    """The popularity rank (1: the most popular) of each of ``phrasings``, in their order; a
    pattern listed twice (said by two corpora) gets two neighbouring ranks, the first one first."""
    order = sorted(range(len(phrasings)), key=lambda i: (popularity_key(phrasings[i].pattern), i))
    ranks = [0] * len(phrasings)
    for rank, i in enumerate(order, start=1):
        ranks[i] = rank
    return ranks


@dataclass(frozen=True)
class Goal:
    """A realised goal."""

    goal_id: str
    """Id shared by every attempt."""
    kind: Kind
    """Intent, fixed slots, placeholders."""
    slots: dict[str, SlotValue]
    """Canonical slots (ids for areas/floors, configured names for entities) plus fixed slots."""
    spoken: dict[str, str]
    """Placeholder -> the words this user says for it (may be a household nickname)."""
    nickname_used: frozenset[str]
    """Placeholders filled with a nickname the assistant was not configured with."""
    expected: Effect | None
    """What should happen; ``None`` for out-of-scope goals (correct behaviour is to refuse)."""
    targets: tuple[str, ...] = ()
    """Entity ids the goal is about."""
    oos_group: str | None = None
    """For out-of-scope goals: the request family (joke, email...)."""


@dataclass
class PhrasingPool:
    """Phrasings indexed by kind and by source, and how popular each is within its bucket.

    ``popularity="uniform"``: every phrasing of a bucket (a kind and a source group) is equally
    likely. ``"zipf"``: the phrasings of a bucket are ranked once for all by
    :func:`popularity_ranks` and the one of rank *r* is drawn with weight ``1 / r**exponent``, so a
    few phrasings are said by many users and most by few, as in real query logs.
    """

    by_kind: dict[Kind, dict[str, list[Phrasing]]] = field(default_factory=lambda: defaultdict(dict))
    kinds_by_intent: dict[str, list[Kind]] = field(default_factory=lambda: defaultdict(list))
    out_of_scope: dict[str, list[Phrasing]] = field(default_factory=lambda: defaultdict(list))
    popularity: Popularity = "uniform"
    """How phrasings are drawn within a bucket: ``uniform`` or ``zipf``."""
    exponent: float = 1.0
    """The Zipf exponent (with ``popularity="zipf"``)."""
    cum_weights: dict[tuple[Kind, str], list[float]] = field(default_factory=dict)
    """Per bucket, the cumulative Zipf weights of its phrasings in their listed order (``zipf`` only)."""

    @classmethod
    def build(
        cls, phrasings: Iterable[Phrasing], popularity: Popularity = "uniform", exponent: float = 1.0
    ) -> PhrasingPool:
        """Index ``phrasings``; corpus sources are grouped under ``corpus``; with ``"zipf"``
        popularity, rank every bucket's phrasings (weights ``1 / rank**exponent``)."""
        pool = cls(popularity=popularity, exponent=exponent)
        for p in phrasings:
            group = p.source if p.source in ("templates", "colloquial") else "corpus"
            if p.intent == "OutOfScope":
                pool.out_of_scope[p.original_intent or "other"].append(p)
                continue
            if p.intent not in INTENT_WEIGHTS:
                continue
            bucket = pool.by_kind[p.kind]
            if not bucket:
                pool.kinds_by_intent[p.intent].append(p.kind)
            bucket.setdefault(group, []).append(p)
        if popularity == "zipf":
            for kind, groups in pool.by_kind.items():
                for group, members in groups.items():
                    weights = (rank**-exponent for rank in popularity_ranks(members))
                    pool.cum_weights[(kind, group)] = list(itertools.accumulate(weights))
        return pool

    def size(self) -> int:
        """Number of phrasings."""
        return sum(len(v) for b in self.by_kind.values() for v in b.values()) + sum(
            len(v) for v in self.out_of_scope.values()
        )

    def choose(self, kind: Kind, user: User, rng: random.Random, avoid: str | None = None) -> Phrasing:
        """A phrasing of ``kind`` by this user's source preferences, preferring one != ``avoid``."""
        bucket = self.by_kind[kind]
        groups = [g for g in bucket if bucket[g]]
        weights = [user.traits.source_weights.get(g, 0.1) for g in groups]
        for _ in range(4):
            group = rng.choices(groups, weights)[0]
            if self.popularity == "zipf":
                phrasing = rng.choices(bucket[group], cum_weights=self.cum_weights[(kind, group)])[0]
            else:
                phrasing = rng.choice(bucket[group])
            if phrasing.pattern != avoid:
                return phrasing
        return phrasing


def _compatible(ent: Entity, intent: str, fixed: dict[str, str], placeholders: Sequence[str]) -> bool:
    domain = fixed.get("domain")
    if domain and ent.domain not in domain.split(","):
        return False
    if fixed.get("device_class") and ent.device_class != fixed["device_class"]:
        return False
    allowed = INTENT_DOMAINS.get(intent)
    if intent == "HassGetState":
        allowed = ("light", "switch", "fan", "cover", "lock", "media_player")
    if allowed is not None and ent.domain not in allowed:
        return False
    if intent == "HassLightSet":
        need = "color" if "color" in placeholders else "brightness" if "brightness" in placeholders else None
        if need and need not in ent.features:
            return False
    if intent == "HassSetPosition" and "position" not in ent.features:
        return False
    return not (intent == "HassSetVolume" and "volume" not in ent.features)


def _number(name: str, rng: random.Random) -> int:
    if name == "brightness":
        return rng.choice((10, 20, 25, 30, 40, 50, 60, 70, 75, 80, 90, 100))
    if name == "temperature":
        return rng.randint(18, 24)
    if name in ("position", "volume"):
        return rng.choice((10, 20, 25, 30, 40, 50, 60, 70, 75, 80))
    if name == "minutes":
        return rng.choice((1, 2, 3, 5, 5, 10, 10, 12, 15, 20, 25, 30, 45))
    if name == "seconds":
        return rng.choice((10, 15, 20, 30, 45, 90))
    return rng.choice((1, 2, 3))  # hours


def realise(
    kind: Kind,
    household: Household,
    state: HomeState,
    user: User,
    device_area: str | None,
    rng: random.Random,
    goal_id: str,
    now: datetime,
) -> Goal | None:
    """Realise a goal of ``kind`` in this home, or ``None`` if the home cannot express it."""
    intent, fixed_items, placeholders = kind
    fixed = dict(fixed_items)
    home = household.home
    slots: dict[str, SlotValue] = dict(fixed)
    spoken: dict[str, str] = {}
    nick: set[str] = set()
    entity: Entity | None = None
    if "name" in placeholders:
        if intent in TARGETLESS_INTENTS:
            return None
        options = [e for e in home.entities if _compatible(e, intent, fixed, placeholders)]
        if "area" in placeholders:
            options = [e for e in options if e.area_id is not None]
        if "floor" in placeholders:
            options = [e for e in options if e.area_id and home.area_by_id[e.area_id].floor_id]
        if not options:
            return None
        entity = rng.choice(options)
        slots["name"] = entity.name
        spoken["name"], used = _say_entity(entity, household, user, rng)
        if used:
            nick.add("name")
    if "area" in placeholders:
        if entity is not None:
            area_id = entity.area_id
        else:
            areas = {
                e.area_id for e in home.entities if e.area_id and _compatible(e, intent, fixed, placeholders)
            }
            if intent in TARGETLESS_INTENTS or intent in ("HassClimateGetTemperature",):
                areas = {a.area_id for a in home.areas}
            if not areas:
                return None
            area_id = rng.choice(sorted(areas))
        if area_id is None:
            return None
        slots["area"] = area_id
        spoken["area"], used = _say_area(area_id, household, user, rng)
        if used:
            nick.add("area")
    if "floor" in placeholders:
        if not home.floors:
            return None
        floor_id = (
            home.area_by_id[entity.area_id or ""].floor_id
            if entity is not None
            else rng.choice(home.floors).floor_id
        )
        if floor_id is None:
            return None
        slots["floor"] = floor_id
        spoken["floor"] = home.floor_by_id[floor_id].name.lower()
    for name in placeholders:
        if name in ("brightness", "temperature", "position", "volume", "minutes", "seconds", "hours"):
            value = _number(name, rng)
            slots[name] = value
            spoken[name] = str(value)
        elif name == "item":
            slots["item"] = spoken["item"] = rng.choice(GROCERIES)
        elif name == "color":
            slots["color"] = spoken["color"] = rng.choice(COLORS)
        elif name not in ("name", "area", "floor"):
            return None
    if intent == "HassGetWeather" and "name" in placeholders:
        return None
    expected = expected_effect(intent, slots, state, device_area, now)
    if expected is None:
        return None
    return Goal(goal_id, kind, slots, spoken, frozenset(nick), expected, tuple(sorted(expected.targets)))


def expected_effect(
    intent: str, slots: dict[str, SlotValue], state: HomeState, device_area: str | None, now: datetime
) -> Effect | None:
    """Effect of executing the canonical interpretation of a goal on a copy of ``state`` (its
    offline devices back on), or ``None`` if even that fails: the simulator's rule for what the
    user wanted to happen (simulation truth; evaluation reads it, learners never)."""
    resolution = resolve(intent, slots, state.home, device_area)
    if not resolution.trace.ok:
        return None
    trial = state.copy()
    trial.unavailable.clear()
    outcome = execute(intent, slots, resolution, trial, now, device_area)
    if outcome.trace.status != "success" or outcome.effect is None:
        return None
    if intent not in TARGETLESS_INTENTS and intent not in ("HassGetWeather",) and not outcome.effect.targets:
        return None
    return outcome.effect


def _say_entity(entity: Entity, household: Household, user: User, rng: random.Random) -> tuple[str, bool]:
    nickname = household.nicknames.get(entity.entity_id)
    if nickname and rng.random() < user.traits.nickname_use:
        return nickname, nickname not in entity.aliases
    name = entity.name.lower()
    # People drop the room from long names they use every day ("the ceiling light").
    if entity.area_id and rng.random() < 0.15:
        area_name = household.home.area_by_id[entity.area_id].name.lower()
        if name.startswith(area_name + " ") and len(name) > len(area_name) + 3:
            return name[len(area_name) + 1 :], False
    return name, False


def _say_area(area_id: str, household: Household, user: User, rng: random.Random) -> tuple[str, bool]:
    area = household.home.area_by_id[area_id]
    nickname = household.nicknames.get(area_id)
    if nickname and rng.random() < user.traits.nickname_use:
        return nickname, nickname not in area.aliases
    return area.name.lower(), False


def out_of_scope_goal(pool: PhrasingPool, rng: random.Random, goal_id: str) -> Goal | None:
    """An out-of-scope goal: a request family the assistant cannot serve."""
    if not pool.out_of_scope:
        return None
    group = rng.choice(sorted(pool.out_of_scope))
    return Goal(goal_id, ("OutOfScope", (), ()), {}, {}, frozenset(), None, (), oos_group=group)
