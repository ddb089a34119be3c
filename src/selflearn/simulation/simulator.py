"""The traffic simulator: households talk to the reference assistant the way people do.

For each household (generated from the seed alone), users pursue goals at realistic times of
day. A goal is tried with a phrasing the user prefers; on failure the user may barge in, repeat
the same words, rephrase, or give up, and habits drift towards phrasings that worked. Now and
then background speech falsely wakes a device. The assistant's log records go to
``turns-SHARD.jsonl``; simulation truth goes to ``truth-SHARD.jsonl`` (never read by learners);
home configurations to ``homes-SHARD.jsonl``. Output is streamed, so memory stays flat however
many turns are produced.

Households are processed in shards of at most :data:`SHARD_SIZE` (fewer for small populations,
so that two workers get even shares: :func:`shard_size`); each shard's output depends only on
the seed and the configuration, so the files are identical whatever the number of workers.

Replay through a rewriter: with ``simulate(..., rewriter=...)`` (any picklable
:class:`~selflearn.core.hooks.RewriteHook`: a mined :class:`~selflearn.rewrite.RewriteTable`, the
online :class:`~selflearn.rewrite.Rewriter`), the assistant rewrites requests before its NLU.
Users react to what they experience, i.e. the rewritten outcome; the truth of a rewritten turn
also says whether it would have been a defect without the rewrite
(``Truth.defect_without_rewrite``).
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from selflearn.assistant.devices import HomeState
from selflearn.assistant.execute import Effect
from selflearn.assistant.pipeline import Assistant, AssistantConfig, HandledTurn
from selflearn.core.errors import ConfigError
from selflearn.core.home import normalize_name
from selflearn.core.hooks import RewriteContext, RewriteHook
from selflearn.core.schema import SCHEMA_VERSION, BargeIn, DeviceContext, FailurePoint, Feedback, Truth
from selflearn.core.schema import Goal as GoalRecord
from selflearn.simulation.catalogue import BACKGROUND, COLLOQUIAL, OUT_OF_SCOPE, template_phrasings
from selflearn.simulation.goals import INTENT_WEIGHTS, Goal, PhrasingPool, out_of_scope_goal, realise
from selflearn.simulation.phrasing import Phrasing
from selflearn.simulation.population import Household, User, make_household

SIMULATION_VERSION = "sim/2"
"""Version of what the simulator makes of a configuration: bumped whenever the same
configuration would give other traffic or other truth labels (the behaviour, the phrasings it
draws, the rules of :meth:`Simulator._failure_point`). Every run's ``manifest.json`` records it,
and caches of simulated traffic are rebuilt when it changes. ``sim/2`` (2026-11-23): an unmatched
name is ``er`` only with the right intent and a target slot (:func:`unmatched_failure_point`);
HWU64 smart-plug utterances that say another kind of device are no longer phrasings."""

SHARD_SIZE = 10
"""Households per output shard, at most."""

MIN_SHARDS = 16
"""Small populations are cut into about this many shards (down to one household each): with
fewer, larger shards the last one keeps a worker busy alone (15 households made shards of 10 and
5, so one of two workers did two thirds of the work)."""


def shard_size(households: int) -> int:
    """Households per shard for a population of ``households`` (a function of the population
    alone, never of the number of workers, so the output files stay the same)."""
    return max(1, min(SHARD_SIZE, math.ceil(households / MIN_SHARDS)))


SESSION_GAP_S = 90
"""A user's turns more than this many seconds apart start a new session."""

FOLLOW_UP_RATE = 0.3
"""Chance that a user follows a finished goal with another one a few seconds later."""
FOLLOW_UP_SAME_KIND = 0.6
"""Chance that such a follow-up is the same kind of request on another target."""
FOLLOW_UP_SAME_WORDS = 0.7
"""Chance that a same-kind follow-up reuses the words of the request before it."""
NAME_SWITCH_RATE = 0.6
"""Chance that a user told "I am not aware of any device called <nickname>" says the thing's
configured name in the next attempt (otherwise they keep their own word for it)."""

PhrasingSplit = Literal["train", "test", "all"]


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate."""

    households: int = 20
    """Number of households."""
    days: float = 7.0
    """Simulated days per household."""
    seed: int = 0
    """Seed of everything random."""
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)
    """Start of the simulated period (UTC)."""
    household_prefix: str = "h"
    """Prefix of household ids; use different prefixes for train and test populations."""
    phrasing_split: PhrasingSplit = "all"
    """Which phrasings users draw from: the ``train`` 80 %, the held-out ``test`` 20 %, or all."""
    corpora: tuple[str, ...] = ()
    """Real corpora to draw phrasings from when present (``ha_tests``, ``hwu64``, ``slurp``)."""
    data_dir: str | None = None
    """Where the corpora live (default: ``$SELFLEARN_DATA_DIR`` or ``../shared/data``)."""
    assistant: AssistantConfig = field(default_factory=AssistantConfig)
    """The reference assistant's configuration (NLU, ASR, feedback rates)."""
    false_wakes_per_day: float = 0.4
    """Background-speech false wakes per household per day."""
    offline_rate: float = 0.02
    """Chance that a goal's target device is offline when the user asks."""
    workers: int = 1
    """Worker processes."""

    def __post_init__(self) -> None:
        if self.households < 1:
            raise ConfigError(f"households must be at least 1, got {self.households}")
        if not 0 < self.days <= 3650:
            raise ConfigError(f"days must be in (0, 3650], got {self.days}")
        if self.phrasing_split not in ("train", "test", "all"):
            raise ConfigError(f"phrasing_split must be train, test or all, not {self.phrasing_split!r}")
        if self.workers < 1:
            raise ConfigError("workers must be at least 1")
        if not re.fullmatch(r"[A-Za-z0-9_]+", self.household_prefix):
            raise ConfigError("household_prefix may only contain letters, digits and '_'")
        if self.start.tzinfo is None:
            raise ConfigError("start must be timezone-aware")

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form (for the run manifest)."""
        data = asdict(self)
        data["start"] = self.start.isoformat()
        return data


@dataclass
class ShardStats:
    """Counts for one shard."""

    shard: int = 0
    households: int = 0
    turns: int = 0
    feedback: int = 0
    goals: int = 0
    defects: int = 0
    first_attempts: int = 0
    first_attempt_defects: int = 0
    rewrites: int = 0
    rewrite_errors: int = 0
    failure_points: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def load_phrasings(config: SimulationConfig) -> list[Phrasing]:
    """Built-in phrasings plus any requested corpora, filtered to the configured split."""
    phrasings: list[Phrasing] = list(template_phrasings()) + list(COLLOQUIAL) + list(OUT_OF_SCOPE)
    if config.corpora:
        from selflearn.simulation import corpora

        data_dir = corpora.find_data_dir(Path(config.data_dir) if config.data_dir else None)
        if data_dir is None:
            raise ConfigError(
                "corpora were requested but no data directory was found; pass data_dir "
                "or set SELFLEARN_DATA_DIR"
            )
        for name in config.corpora:
            phrasings.extend(corpora.load_corpus(name, data_dir))
    if config.phrasing_split != "all":
        phrasings = [p for p in phrasings if p.split == config.phrasing_split]
    return phrasings


@dataclass(frozen=True)
class _Done:
    """A goal the user has finished with (achieved or not)."""

    goal: Goal
    phrasing: Phrasing | None
    """The phrasing of the last attempt."""
    end: datetime
    """Time of the last attempt."""
    device_area: str | None
    device: DeviceContext


class _HouseholdRun:
    """Simulates one household and writes its records."""

    def __init__(
        self,
        household: Household,
        config: SimulationConfig,
        assistant: Assistant,
        pool: PhrasingPool,
        write: Callable[[str, bytes], None],
        stats: ShardStats,
        rng: random.Random,
    ) -> None:
        self.h = household
        self.config = config
        self.assistant = assistant
        self.pool = pool
        self.write = write
        self.stats = stats
        self.rng = rng
        self.state = HomeState.initial(household.home)
        self.turn_no = 0
        self.goal_no = 0
        self.last_turn: dict[str, tuple[datetime, str]] = {}  # user -> (time, session id)
        self.session_no = 0
        intents = [i for i in INTENT_WEIGHTS if i == "OutOfScope" or pool.kinds_by_intent.get(i)]
        self.intents = intents
        self.weights = [INTENT_WEIGHTS[i] for i in intents]

    # --- schedule -------------------------------------------------------------------------------

    def events(self) -> Iterator[tuple[datetime, str, User | None]]:
        """Goal start times of every user and false wakes, in time order."""
        end = self.config.start + timedelta(days=self.config.days)
        heads: list[tuple[datetime, str, User | None]] = []
        for user in self.h.users:
            t = self.config.start
            rate = user.traits.goals_per_day / (16 * 3600)  # awake hours
            while True:
                t = _next_awake(t + timedelta(seconds=self.rng.expovariate(rate)))
                if t >= end:
                    break
                heads.append((t, "goal", user))
        t = self.config.start
        if self.config.false_wakes_per_day > 0:
            rate = self.config.false_wakes_per_day / 86400
            while True:
                t += timedelta(seconds=self.rng.expovariate(rate))
                if t >= end:
                    break
                heads.append((t, "wake", None))
        heads.sort(key=lambda e: (e[0], e[1], e[2].user_id if e[2] else ""))
        yield from heads

    def run(self) -> None:
        for when, what, user in self.events():
            if what == "goal" and user is not None:
                done = self.goal(user, when)
                # People often chain requests: "turn off the bedroom light" ... "and the kitchen".
                while done is not None and self.rng.random() < FOLLOW_UP_RATE:
                    start = done.end + timedelta(seconds=self.rng.uniform(3.0, 15.0))
                    done = self.goal(user, start, after=done)
            else:
                self.false_wake(when)

    # --- one goal -------------------------------------------------------------------------------

    def _session(self, user_id: str, when: datetime) -> str:
        last = self.last_turn.get(user_id)
        if last is None or (when - last[0]).total_seconds() > SESSION_GAP_S:
            self.session_no += 1
            sid = f"{self.h.household_id}s{self.session_no}"
        else:
            sid = last[1]
        self.last_turn[user_id] = (when, sid)
        return sid

    def _device(self) -> tuple[str | None, DeviceContext]:
        """A random voice device of the home: its area id and its logged context."""
        device_id, area_id, device_type = self.rng.choice(self.h.devices)
        device = DeviceContext(
            device_id=device_id,
            device_type=device_type,
            area=self.h.home.area_by_id[area_id].name if area_id else None,
            has_screen=device_type == "display",
        )
        return area_id, device

    def goal(self, user: User, when: datetime, after: _Done | None = None) -> _Done | None:
        """Pursue one goal from ``when``; ``after`` is the goal the user just finished, if this one
        follows it straight away. Returns what happened, or None if no goal could be realised."""
        rng = self.rng
        if after is not None:
            device_area, device = after.device_area, after.device
        else:
            device_area, device = self._device()
        self.goal_no += 1
        goal_id = f"{self.h.household_id}g{self.goal_no}"
        goal: Goal | None = None
        related = after is not None and after.goal.expected is not None and rng.random() < FOLLOW_UP_SAME_KIND
        for _ in range(8):
            if related and after is not None:
                # The same kind of request on another target ("... and the kitchen light").
                goal = realise(after.goal.kind, self.h, self.state, user, device_area, rng, goal_id, when)
                if goal is not None and goal.expected == after.goal.expected:
                    goal = None
            else:
                intent = rng.choices(self.intents, self.weights)[0]
                if intent == "OutOfScope":
                    goal = out_of_scope_goal(self.pool, rng, goal_id)
                else:
                    kind = rng.choice(self.pool.kinds_by_intent[intent])
                    goal = realise(kind, self.h, self.state, user, device_area, rng, goal_id, when)
            if goal is not None:
                break
        if goal is None:
            return None
        self.stats.goals += 1
        offline: str | None = None
        if goal.targets and rng.random() < self.config.offline_rate:
            offline = rng.choice(goal.targets)
            self.state.unavailable.add(offline)
        previous: tuple[str, str] | None = None  # (turn id, text)
        phrasing: Phrasing | None = None
        habit_key = goal.kind if goal.oos_group is None else ("oos", goal.oos_group)
        for attempt in range(1, user.traits.patience + 1):
            if attempt == 1:
                action = "first"
                if (
                    related
                    and after is not None
                    and after.phrasing is not None
                    and after.phrasing.placeholders
                    and rng.random() < FOLLOW_UP_SAME_WORDS
                ):
                    phrasing = after.phrasing  # same words, new target
                else:
                    phrasing = self._first_phrasing(goal, user, habit_key)
                spoken = self._say(phrasing, goal, user)
            elif previous is not None and phrasing is not None and rng.random() > user.traits.rephrase_bias:
                action = "repeat"
                spoken = previous[1]
            else:
                action = "rephrase"
                phrasing = self._other_phrasing(goal, user, phrasing)
                spoken = self._say(phrasing, goal, user)
            handled = self._turn(user, device, when, spoken)
            success = self._judge(goal, handled.effect)
            defect = _is_defect(goal, handled.effect)
            defect_without = _is_defect(goal, handled.effect_without_rewrite) if handled.rewritten else None
            fp = "correct" if not defect else self._failure_point(goal, handled, spoken, device_area, when)
            barged = False
            if defect and handled.turn.result is not None and rng.random() < user.traits.barge_in:
                barged = True
                offset = int(rng.uniform(250, 1600))
                handled = replace(
                    handled,
                    turn=handled.turn.model_copy(
                        update={"barge_in": BargeIn(occurred=True, offset_ms=offset)}
                    ),
                )
            elif not defect and rng.random() < 0.02:
                handled = replace(
                    handled,
                    turn=handled.turn.model_copy(
                        update={"barge_in": BargeIn(occurred=True, offset_ms=int(rng.uniform(600, 2500)))}
                    ),
                )
            self._emit(handled, goal, spoken, phrasing, attempt, action, previous, defect, fp, defect_without)
            answered_no = self._feedback(handled, user, success or goal.expected is None, when)
            if not defect and not answered_no:
                if phrasing is not None:
                    user.habits[habit_key] = phrasing.pattern
                break
            if defect and goal.nickname_used:
                goal = self._maybe_configured_names(goal, handled)
            if goal.expected is None and attempt >= 2:
                break  # out-of-scope: one more try at most, then people give up
            if self._gives_up(user, attempt):
                break
            previous = (handled.turn.turn_id, spoken)
            gap = rng.uniform(1.5, 4.0) if barged else rng.uniform(3.0, 14.0)
            when = when + timedelta(seconds=gap)
        if offline is not None:
            self.state.unavailable.discard(offline)
        return _Done(goal, phrasing, when, device_area, device)

    def _maybe_configured_names(self, goal: Goal, handled: HandledTurn) -> Goal:
        """After "I am not aware of any device called <nickname>", the user may switch to the
        configured name for the rest of this goal (:data:`NAME_SWITCH_RATE`)."""
        response = normalize_name(handled.turn.result.response_text if handled.turn.result else "")
        named = [p for p in goal.nickname_used if normalize_name(goal.spoken.get(p, "")) in response]
        if not named or self.rng.random() >= NAME_SWITCH_RATE:
            return goal
        home = self.h.home
        spoken = dict(goal.spoken)
        for placeholder in named:
            value = goal.slots.get(placeholder)
            if placeholder == "area" and isinstance(value, str) and value in home.area_by_id:
                spoken["area"] = home.area_by_id[value].name.lower()
            elif placeholder == "name" and isinstance(value, str):
                spoken["name"] = value.lower()
        return replace(goal, spoken=spoken, nickname_used=goal.nickname_used - set(named))

    def _gives_up(self, user: User, attempt: int) -> bool:
        return attempt >= user.traits.patience or self.rng.random() < 0.12 * attempt

    def _first_phrasing(self, goal: Goal, user: User, habit_key: Any) -> Phrasing:
        if goal.oos_group is not None:
            return self.rng.choice(self.pool.out_of_scope[goal.oos_group])
        habit = user.habits.get(habit_key)
        if habit is not None and self.rng.random() < user.traits.habit:
            for group in self.pool.by_kind[goal.kind].values():
                for p in group:
                    if p.pattern == habit:
                        return p
        return self.pool.choose(goal.kind, user, self.rng)

    def _other_phrasing(self, goal: Goal, user: User, current: Phrasing | None) -> Phrasing:
        avoid = current.pattern if current else None
        if goal.oos_group is not None:
            options = [p for p in self.pool.out_of_scope[goal.oos_group] if p.pattern != avoid]
            return self.rng.choice(options or self.pool.out_of_scope[goal.oos_group])
        return self.pool.choose(goal.kind, user, self.rng, avoid=avoid)

    def _say(self, phrasing: Phrasing, goal: Goal, user: User) -> str:
        text = phrasing.fill(goal.spoken) if phrasing.placeholders else phrasing.pattern
        if phrasing.source in ("templates", "colloquial") and self.rng.random() < user.traits.verbose:
            text = self.rng.choice(("please {}", "can you {}", "{} please", "hey {}", "could you {}")).format(
                text
            )
        return " ".join(text.split())

    def _turn(
        self, user: User, device: DeviceContext, when: datetime, spoken: str, wake_score: float | None = None
    ) -> HandledTurn:
        self.turn_no += 1
        turn_id = f"{self.h.household_id}t{self.turn_no}"
        condition = None
        if self.assistant.asr.name in ("pocketsphinx", "noisy"):
            from selflearn.assistant.asr import sample_condition

            condition = replace(sample_condition(self.rng), voice=user.traits.voice)
        score = wake_score if wake_score is not None else min(0.99, self.rng.betavariate(12, 1.5))
        return self.assistant.handle(
            spoken=spoken,
            state=self.state,
            turn_id=turn_id,
            session_id=self._session(user.user_id, when),
            user_id=user.user_id,
            household_id=self.h.household_id,
            device=device,
            timestamp=when,
            rng=self.rng,
            wake_score=score,
            condition=condition,
        )

    @staticmethod
    def _judge(goal: Goal, effect: Effect | None) -> bool:
        """Whether ``effect`` achieves the goal (doing nothing is right for out-of-scope goals)."""
        if goal.expected is None:
            return effect is None
        return effect == goal.expected

    def _failure_point(
        self, goal: Goal, handled: HandledTurn, spoken: str, device_area: str | None, when: datetime
    ) -> FailurePoint:
        """First stage that failed irrecoverably (see docs/simulator.md for the rules)."""
        turn = handled.turn
        if turn.asr is not None and normalize_name(turn.asr.text) != normalize_name(spoken):
            # Would the words the user actually said have worked? Only the effect matters, and
            # the NLU's unmatched-entity pass (error wording) cannot change it, so skip it.
            # The words go through the rewriter too, if there is one: it is part of the pipeline.
            text = spoken
            if self.assistant.rewriter is not None:
                context = RewriteContext(
                    household_id=turn.household_id,
                    user_id=turn.user_id,
                    home=self.state.home,
                    area=turn.device.area,
                    timestamp=when,
                    device=turn.device,
                )
                rewrite = self.assistant.rewrite(spoken, context)
                if rewrite is not None:
                    text = rewrite.rewritten_text
            trial = self.state.copy()
            _, _, _, effect = self.assistant.run_text(text, trial, when, device_area, explain_failures=False)
            if self._judge(goal, effect):
                return "asr"
        nlu = handled.nlu
        expected = goal.expected
        if expected is None:
            return "nlu"  # acted on an out-of-scope request
        if not nlu.trace.matched:
            return unmatched_failure_point(nlu.unmatched, nlu.trace.intent, goal)
        if not _same_intent(nlu.trace.intent, expected.intent):
            return "nlu"
        got = Effect.of(expected.intent, expected.targets, dict(nlu.trace.slots)).params
        if got != expected.params:
            return "nlu"
        resolution = handled.resolution
        if (
            resolution is None
            or not resolution.trace.ok
            or frozenset(e.entity_id for e in resolution.targets) != expected.targets
        ):
            slots = nlu.trace.slots
            area_ok = "area" not in goal.slots or slots.get("area") in (goal.slots["area"], None)
            if "name" in goal.slots:
                name_ok = normalize_name(str(slots.get("name", ""))) in (
                    normalize_name(str(goal.slots["name"])),
                    normalize_name(goal.spoken.get("name", "")),
                )
            else:
                name_ok = "name" not in slots  # a single device read where the user meant a group
            return "er" if area_ok and name_ok else "nlu"
        return "result"

    def _emit(
        self,
        handled: HandledTurn,
        goal: Goal,
        spoken: str,
        phrasing: Phrasing | None,
        attempt: int,
        action: str,
        previous: tuple[str, str] | None,
        defect: bool,
        fp: FailurePoint,
        defect_without_rewrite: bool | None = None,
    ) -> None:
        turn = handled.turn
        self.write("turns", turn.model_dump_json().encode())
        observe = getattr(self.assistant.rewriter, "observe", None)
        if observe is not None:  # a learning rewriter sees the logged turn once it is complete
            observe(turn, self.state.home)
        truth = Truth(
            turn_id=turn.turn_id,
            goal=GoalRecord(
                goal_id=goal.goal_id, intent=goal.kind[0], slots=goal.slots, targets=goal.targets
            ),
            intended_text=spoken,
            phrasing_source=phrasing.source if phrasing else "templates",
            attempt=attempt,
            action=action,
            rephrase_of=previous[0] if previous else None,
            defect=defect,
            failure_point=fp,
            in_scope=goal.expected is not None,
            defect_without_rewrite=defect_without_rewrite,
        )
        # Only rewritten turns carry defect_without_rewrite; other truth rows stay as they were.
        skip = {"defect_without_rewrite"} if defect_without_rewrite is None else None
        self.write("truth", truth.model_dump_json(exclude=skip).encode())
        st = self.stats
        st.turns += 1
        st.rewrites += handled.rewritten
        st.defects += defect
        st.failure_points[fp] = st.failure_points.get(fp, 0) + 1
        if attempt == 1 and goal.expected is not None:
            st.first_attempts += 1
            st.first_attempt_defects += defect

    def _feedback(self, handled: HandledTurn, user: User, success: bool, when: datetime) -> bool:
        """Answer "did I get that right?" if asked; True if the answer was no."""
        if not handled.turn.feedback_requested:
            return False
        rng = self.rng
        if rng.random() < user.traits.feedback_willingness:
            correct = success if rng.random() > 0.03 else not success
            answer = "yes" if correct else "no"
        else:
            answer = "no_answer"
        fb = Feedback(
            feedback_id=f"{handled.turn.turn_id}f",
            turn_id=handled.turn.turn_id,
            user_id=user.user_id,
            household_id=self.h.household_id,
            timestamp=when + timedelta(seconds=rng.uniform(2.5, 6)),
            answer=answer,
        )
        self.write("turns", fb.model_dump_json().encode())
        self.stats.feedback += 1
        observe = getattr(self.assistant.rewriter, "observe_feedback", None)
        if observe is not None:
            observe(fb)
        return answer == "no"

    def false_wake(self, when: datetime) -> None:
        rng = self.rng
        _, device = self._device()
        spoken = rng.choice(BACKGROUND)
        guest = _background_user(self.h.household_id)
        handled = self._turn(guest, device, when, spoken, wake_score=rng.uniform(0.5, 0.8))
        self.goal_no += 1
        goal = Goal(f"{self.h.household_id}g{self.goal_no}", ("NoRequest", (), ()), {}, {}, frozenset(), None)
        # A false wake is a defect whatever the assistant does, with or without a rewrite.
        without = True if handled.rewritten else None
        self._emit(handled, goal, spoken, None, 1, "background", None, True, "false_wake", without)


TARGET_SLOTS = frozenset({"name", "area", "floor"})
"""Slots that name what a request acts on: an unknown value there is an entity-resolution miss."""


def _same_intent(got: str | None, expected: str) -> bool:
    """Whether the NLU's intent is the goal's (either shopping-list intent adds an item)."""
    return got == expected or {got, expected} <= {"HassShoppingListAddItem", "HassListAddItem"}


def unmatched_failure_point(unmatched: Mapping[str, str], intent: str | None, goal: Goal) -> FailurePoint:
    """Failure point of an in-scope request the NLU did not match, from Home Assistant's
    unmatched-entity pass (``unmatched``: slot -> words that matched nothing; ``intent``: the
    intent of that reading).

    ``er`` when that reading is right -- the goal's intent -- and every unknown slot is a target
    (:data:`TARGET_SLOTS`) said as this user says it: the home lacks the name (a household
    nickname, an unconfigured room name). Anything else is ``nlu``: no reading at all, the wrong
    intent ("we're out of bread" read as turning on a device called "out bread"), or an unknown
    value that is not a target (a colour, an item, a misparsed chunk of the sentence)."""
    if goal.expected is None or not unmatched or not _same_intent(intent, goal.expected.intent):
        return "nlu"
    named = all(
        slot in TARGET_SLOTS and normalize_name(value) == normalize_name(goal.spoken.get(slot, ""))
        for slot, value in unmatched.items()
    )
    return "er" if named else "nlu"


def _is_defect(goal: Goal, effect: Effect | None) -> bool:
    """Whether a turn with ``effect`` is a defect for ``goal``: in scope, the goal was not
    achieved; out of scope, the assistant acted."""
    if goal.expected is not None:
        return effect != goal.expected
    return effect is not None


def _background_user(household_id: str) -> User:
    from selflearn.simulation.population import UserTraits

    traits = UserTraits({}, 0, 1, 0, 0, 0, 0, 0, "slt", 0)
    return User(f"{household_id}u_unknown", traits)


def _next_awake(t: datetime) -> datetime:
    """Move ``t`` out of the night (23:00-07:00 UTC) to the next morning."""
    if t.hour >= 23:
        return (t + timedelta(days=1)).replace(hour=7, minute=0, second=0, microsecond=0) + timedelta(
            seconds=(t.minute * 60 + t.second) % 3600
        )
    if t.hour < 7:
        return t.replace(hour=7, minute=0, second=0, microsecond=0) + timedelta(
            seconds=(t.minute * 60) % 3600
        )
    return t


# --- shards and workers -----------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(config: SimulationConfig, rewriter: RewriteHook | None = None) -> None:
    _WORKER["config"] = config
    _WORKER["pool"] = PhrasingPool.build(load_phrasings(config))
    _WORKER["assistant"] = Assistant(config.assistant, rewriter=rewriter)


def _run_shard(args: tuple[int, int, str]) -> ShardStats:
    shard, size, out_dir = args
    config: SimulationConfig = _WORKER["config"]
    started = time.perf_counter()
    stats = ShardStats(shard=shard)
    out = Path(out_dir)
    files: dict[str, IO[bytes]] = {}
    try:
        for kind in ("turns", "truth", "homes"):
            files[kind] = (out / f"{kind}-{shard:05d}.jsonl.tmp").open("wb")

        def write(kind: str, line: bytes) -> None:
            fh = files[kind]
            fh.write(line)
            fh.write(b"\n")

        first = shard * size
        for index in range(first, min(first + size, config.households)):
            household = make_household(config.seed, index, config.household_prefix)
            record = {
                "record_type": "home",
                "schema_version": SCHEMA_VERSION,
                **household.home.to_dict(),
                "nicknames": household.nicknames,
                "users": [u.user_id for u in household.users],
                "devices": [list(d) for d in household.devices],
            }
            write("homes", orjson.dumps(record))
            rng = random.Random(f"{config.seed}:{config.household_prefix}:{index}:sim")
            assistant: Assistant = _WORKER["assistant"]
            errors_before = assistant.rewrite_errors
            _HouseholdRun(household, config, assistant, _WORKER["pool"], write, stats, rng).run()
            stats.rewrite_errors += assistant.rewrite_errors - errors_before
            stats.households += 1
    finally:
        for fh in files.values():
            fh.close()
    for kind in files:
        (out / f"{kind}-{shard:05d}.jsonl.tmp").replace(out / f"{kind}-{shard:05d}.jsonl")
    stats.seconds = time.perf_counter() - started
    return stats


@dataclass
class SimulationResult:
    """Summary of a simulation run."""

    out_dir: Path
    turns: int
    feedback: int
    goals: int
    households: int
    first_attempts: int
    first_attempt_defects: int
    failure_points: dict[str, int]
    seconds: float
    rewrites: int = 0
    """Turns whose text the rewriter changed (0 without a rewriter)."""
    rewrite_errors: int = 0
    """Rewriter calls that failed and were ignored (the original text was used)."""

    @property
    def first_attempt_defect_rate(self) -> float:
        """Share of first attempts at in-scope goals that failed."""
        return self.first_attempt_defects / self.first_attempts if self.first_attempts else math.nan


def simulate(
    config: SimulationConfig,
    out_dir: Path,
    progress: Callable[[int, int], None] | None = None,
    *,
    rewriter: RewriteHook | None = None,
) -> SimulationResult:
    """Run the simulation and write shard files into ``out_dir`` (created if needed).

    ``progress(done_households, total_households)`` is called as shards finish.

    ``rewriter``: a rewriter object to put in front of the assistant's NLU (load it here, once:
    a pool whose initializer raises restarts its workers for ever instead of reporting the
    error). It is handed to every worker process, so it must be picklable (an instance of a
    module-level class is) and deterministic for the output to be the same whatever the number
    of workers. The manifest records the folder it was loaded from (its ``path``) or its type.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*-?????.jsonl"):
        stale.unlink()
    size = shard_size(config.households)
    shards = math.ceil(config.households / size)
    started = time.perf_counter()
    total = ShardStats()
    done = 0
    jobs = [(s, size, str(out_dir)) for s in range(shards)]
    if config.workers == 1 or shards == 1:
        _init_worker(config, rewriter)
        results: Iterator[ShardStats] = map(_run_shard, jobs)
        results = iter(list(_progress_iter(results, config, progress)))
    else:
        ctx = mp.get_context("fork")
        pool = ctx.Pool(min(config.workers, shards), initializer=_init_worker, initargs=(config, rewriter))
        try:
            results = iter(list(_progress_iter(pool.imap_unordered(_run_shard, jobs), config, progress)))
        finally:
            pool.close()
            pool.join()
    for st in results:
        done += st.households
        total.turns += st.turns
        total.feedback += st.feedback
        total.goals += st.goals
        total.first_attempts += st.first_attempts
        total.first_attempt_defects += st.first_attempt_defects
        total.rewrites += st.rewrites
        total.rewrite_errors += st.rewrite_errors
        for k, v in st.failure_points.items():
            total.failure_points[k] = total.failure_points.get(k, 0) + v
    result = SimulationResult(
        out_dir,
        total.turns,
        total.feedback,
        total.goals,
        done,
        total.first_attempts,
        total.first_attempt_defects,
        dict(sorted(total.failure_points.items())),
        time.perf_counter() - started,
        total.rewrites,
        total.rewrite_errors,
    )
    from selflearn.assistant.asr import channel_fingerprint

    manifest = {
        "schema_version": SCHEMA_VERSION,
        "config": config.to_json(),
        "asr_channel": channel_fingerprint(config.assistant.asr),
        "simulation_version": SIMULATION_VERSION,
        "shards": shards,
        "turns": result.turns,
        "feedback": result.feedback,
        "goals": result.goals,
        "households": result.households,
        "failure_points": result.failure_points,
        "first_attempt_defect_rate": result.first_attempt_defect_rate,
    }
    if rewriter is not None:
        path = getattr(rewriter, "path", None)
        manifest["rewriter"] = (
            str(path) if path is not None else f"{type(rewriter).__module__}.{type(rewriter).__qualname__}"
        )
        manifest["rewrites"] = result.rewrites
        manifest["rewrite_errors"] = result.rewrite_errors
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return result


def _progress_iter(
    results: Iterator[ShardStats], config: SimulationConfig, progress: Callable[[int, int], None] | None
) -> Iterator[ShardStats]:
    done = 0
    for st in results:
        done += st.households
        if progress is not None:
            progress(done, config.households)
        yield st
