"""``selflearn label``: label every stored turn and write the ``labels`` table.

>>> from selflearn import Store
>>> from selflearn.labels import label_store
>>> with Store("selflearn.duckdb") as store:        # doctest: +SKIP
...     print(label_store(store).summary())

Per turn (:data:`selflearn.core.store.tables.LABEL_SCHEMA`): the goal it serves and whether that
goal succeeded (:func:`~selflearn.labels.rules.segment_goals`), and the intent and slots the
user meant, tried in this order:

1. ``transfer:confirmed`` -- the user said yes to "Did you mean ...?"
   (:func:`~selflearn.labels.transfer.confirmed_label`);
2. ``rule:worked`` / ``transfer:rewrite`` -- the assistant served it
   (:func:`~selflearn.labels.rules.own_label`);
3. ``transfer:rephrase`` -- it failed and a paraphrase of it worked
   (:func:`~selflearn.labels.transfer.rephrase_label`);
4. ``model:<name>`` -- a :class:`Labeler` given by the caller, for what is left.

Turns none of them labels keep their goal fields and a null intent. Simulation truth is never
read.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from selflearn.core.delex import Delexicalizer
from selflearn.core.home import Home, normalize_name
from selflearn.core.store import Store
from selflearn.labels.rules import (
    MIN_DEFECT,
    MIN_REPHRASE,
    Goals,
    Interpretation,
    LoggedTurn,
    check_signals,
    own_label,
    read_logged,
    segment_goals,
    served,
)
from selflearn.labels.transfer import confirmed_label, rephrase_label

RULES_NAME = "label-rules.v1"
"""Value of the ``model`` column for labels written by the rules alone."""

LABEL_STAGES = ("reading", "goals", "labels", "transfer", "writing")
"""The stages :func:`label_store` names to its ``progress`` callback, in order."""


class Labeler(Protocol):
    """A model that labels the turns the rules could not (the door for a learned labeller)."""

    name: str
    """Its versioned name; labels it gives have source ``model:<name>``."""

    def label(self, turns: Sequence[LoggedTurn]) -> Sequence[Interpretation | None]:
        """One interpretation (or None) per turn, in order."""
        ...


@dataclass(frozen=True)
class Label:
    """One row of the ``labels`` table."""

    turn_id: str
    goal_id: str
    goal_success: bool | None
    interpretation: Interpretation | None = None

    def as_row(self, model: str, scored_at: datetime) -> dict[str, object]:
        """The row as the table holds it."""
        it = self.interpretation
        return {
            "turn_id": self.turn_id,
            "goal_id": self.goal_id,
            "goal_success": self.goal_success,
            "intent": it.intent if it else None,
            "slots": [s.as_row() for s in it.slots] if it else [],
            "confidence": it.confidence if it else None,
            "source": it.source if it else None,
            "from_turn_id": it.from_turn_id if it else None,
            "model": model,
            "scored_at": scored_at,
        }


@dataclass
class LabelReport:
    """What a labelling run wrote."""

    turns: int = 0
    goals: int = 0
    goals_succeeded: int = 0
    labelled: int = 0
    """Turns given an intent."""
    transferred: int = 0
    """Of those, labelled from another turn or a rewrite (sources ``transfer:*``)."""
    by_source: Counter[str] = field(default_factory=Counter)
    blocked: Counter[str] = field(default_factory=Counter)
    """Transfers a guard stopped, by the guard's reason."""
    slots: int = 0
    slots_placed: int = 0
    """Slots given a span (of those that were expected to have one)."""
    slots_expected: int = 0
    model: str = RULES_NAME
    seconds: float = 0.0

    @property
    def coverage(self) -> float:
        """Share of the turns given an intent."""
        return self.labelled / self.turns if self.turns else 0.0

    def summary(self) -> str:
        """One line: turns, goals, labels by source, guards, slot placement."""
        if not self.turns:
            return "no turns to label"
        sources = ", ".join(f"{k} {v:,}" for k, v in sorted(self.by_source.items())) or "none"
        guards = ", ".join(f"{k} {v:,}" for k, v in self.blocked.most_common()) or "none"
        placed = self.slots_placed / self.slots_expected if self.slots_expected else 1.0
        return (
            f"labelled {self.labelled:,} of {self.turns:,} turns ({self.coverage:.1%}) in "
            f"{self.goals:,} goals ({self.goals_succeeded / max(self.goals, 1):.1%} succeeded); "
            f"{self.transferred:,} transferred; by source: {sources}; blocked by guards: {guards}; "
            f"slots placed {placed:.1%} of {self.slots_expected:,} ({self.seconds:.1f} s)"
        )


def label_turns(
    turns: Sequence[LoggedTurn],
    homes: dict[str, Home] | None = None,
    *,
    min_rephrase: float = MIN_REPHRASE,
    min_defect: float = MIN_DEFECT,
    labeler: Labeler | None = None,
    report: LabelReport | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Label]:
    """Labels of ``turns`` (in time order, as :func:`~selflearn.labels.rules.read_logged` reads
    them), one per turn in the same order; ``report`` (if given) is filled in."""
    say = progress or (lambda _stage: None)
    homes = homes or {}
    rep = report if report is not None else LabelReport()
    say("goals")
    goals: Goals = segment_goals(turns, min_rephrase, min_defect)
    by_id = {t.turn_id: t for t in turns}
    say("labels")
    served_texts = {
        (t.household_id, normalize_name(t.text)): t
        for t in turns
        if served(t, min_defect) and not t.rewritten
    }
    found: dict[str, Interpretation] = {}
    for turn in turns:
        home = homes.get(turn.household_id)
        it = confirmed_label(turn, home, served_texts) or own_label(turn, home, min_defect)
        if it is not None:
            found[turn.turn_id] = it
    say("transfer")
    delex: dict[str, Delexicalizer] = {}
    for turn in turns:
        if turn.turn_id in found:
            continue
        home = homes.get(turn.household_id)
        d = delex.get(turn.household_id)
        if d is None:
            d = delex[turn.household_id] = Delexicalizer(home)
        got = rephrase_label(turn, goals, by_id, found, home, d, min_defect)
        if isinstance(got, str):
            rep.blocked[got] += 1
        elif got is not None:
            found[turn.turn_id] = got
    if labeler is not None:
        rest = [t for t in turns if t.turn_id not in found]
        for turn, it in zip(rest, labeler.label(rest), strict=True):
            if it is not None:
                found[turn.turn_id] = it
    labels = []
    for turn in turns:
        goal = goals.goals[goals.of[turn.turn_id]]
        labels.append(Label(turn.turn_id, goal.goal_id, goal.success, found.get(turn.turn_id)))
    rep.turns += len(turns)
    rep.goals += len(goals.goals)
    rep.goals_succeeded += sum(1 for g in goals.goals.values() if g.success)
    for it in found.values():
        rep.labelled += 1
        rep.by_source[it.source] += 1
        rep.transferred += it.source.startswith("transfer:")
        rep.slots += len(it.slots)
        expected = [s for s in it.slots if s.counts]
        rep.slots_expected += len(expected)
        rep.slots_placed += sum(1 for s in expected if s.start is not None)
    return labels


def label_store(
    store: Store,
    *,
    min_rephrase: float = MIN_REPHRASE,
    min_defect: float = MIN_DEFECT,
    labeler: Labeler | None = None,
    progress: Callable[[str], None] | None = None,
    store_name: str = "STORE",
) -> LabelReport:
    """Label every stored turn and replace the ``labels`` table rows of those turns.

    Needs the ``defects`` and ``rephrases`` signals of every turn (``selflearn signals``; a
    :class:`~selflearn.core.errors.DataError` says so otherwise, naming ``store_name`` in the
    command to run). ``min_rephrase``: P(rephrase) that joins a turn to the goal of the turn it
    rephrases; ``min_defect``: P(defect) from which a turn counts as failed. ``labeler`` labels
    what the rules leave. ``progress`` receives each of :data:`LABEL_STAGES` as it starts."""
    started = time.perf_counter()
    say = progress or (lambda _stage: None)
    say("reading")
    check_signals(store, store_name)
    turns = read_logged(store)
    homes = store.homes()
    report = LabelReport(model=RULES_NAME if labeler is None else f"{RULES_NAME}+{labeler.name}")
    labels = label_turns(
        turns,
        homes,
        min_rephrase=min_rephrase,
        min_defect=min_defect,
        labeler=labeler,
        report=report,
        progress=say,
    )
    say("writing")
    now = datetime.now(UTC)
    store.save_signals("labels", [label.as_row(report.model, now) for label in labels])
    report.seconds = time.perf_counter() - started
    return report
