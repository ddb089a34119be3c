"""Scoring a replay: simulated traffic with and without a rewriter, read from simulation output.

This reads simulation *truth* (what the user wanted, and for rewritten turns whether the turn
would have failed without the rewrite), so it is for evaluation only: nothing here feeds a
learner.

* **win**: a rewritten turn that would have failed without the rewrite and worked with it;
* **loss**: a rewritten turn that would have worked without the rewrite and failed with it;
* **defect-rate reduction on rewritten traffic**: 1 - (defects with) / (defects without);
* **rescue rate**: wins over all turns that would have failed without rewriting;
* **false-rewrite rate**: losses over rewritten turns.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from selflearn.assistant.devices import HomeState
from selflearn.assistant.execute import Effect
from selflearn.core.home import Home
from selflearn.simulation.goals import expected_effect


@dataclass
class ArmStats:
    """What happened in one arm of a replay."""

    turns: int = 0
    defects: int = 0
    first_attempts: int = 0
    first_attempt_defects: int = 0
    goals: int = 0
    goals_failed: int = 0
    rewritten: int = 0
    wins: int = 0
    losses: int = 0
    defects_with: int = 0
    """Defects among rewritten turns."""
    defects_without: int = 0
    """Defects those turns would have had without the rewrite."""
    would_fail: int = 0
    """Turns that would have failed without any rewriting."""
    acted_wrong: int = 0
    """Rewritten turns on which the assistant did something (result success) that was not what the
    user wanted -- worse for the user than a refusal even where the original would have failed too."""
    acted_wrong_out_of_scope: int = 0
    """Of those, the ones whose request was out of scope (nothing the assistant does is right): an
    action where a refusal was the correct answer."""
    layers: dict[str, Counter[str]] = field(default_factory=dict)
    """Per rewrite layer (``Turn.rewrite.layer``; ``"global (n-best)"`` and ``"personal (n-best)"``
    for the n-best step, ``"personal (taught)"`` for concepts users taught): its rewritten turns
    counted as ``win``, ``loss`` or ``same`` (the outcome
    did not change), and of them the ``wrong action`` ones (:attr:`acted_wrong`)."""
    fallback_rescues: int = 0
    """Turns the gazetteer fallback matched that worked. It runs only when strict matching found
    nothing, so each is a turn it rescued (of :attr:`strict_failures`)."""
    fallback_failed: int = 0
    """Turns the gazetteer fallback matched that still failed."""
    fallback_wrong: int = 0
    """Of those, the ones where the assistant did something (result success): wrong actions."""
    questions: int = 0
    """Turns on which the assistant asked "Did you mean ...?" instead of acting."""
    answers: Counter[str] = field(default_factory=Counter)
    """How those questions ended (``yes``, ``no``, ``timeout``, ``barge_in``, ``never_mind``)."""
    confirmed_wins: int = 0
    """Wins that came from a yes: the rescues the questions bought."""
    win_examples: list[tuple[str, str, str]] = field(default_factory=list)
    loss_examples: list[tuple[str, str, str]] = field(default_factory=list)
    households: dict[str, list[int]] = field(default_factory=dict)
    """Per household: its turns' defects and how many would have failed without any rewriting
    (for :meth:`reduction_interval`)."""

    @property
    def defect_rate(self) -> float:
        return self.defects / max(self.turns, 1)

    @property
    def defect_rate_without(self) -> float:
        """Defect rate of the same turns had nothing been rewritten (per-turn counterfactual:
        exact, unlike a comparison with a separately simulated control arm, whose users diverge
        after the first rewrite)."""
        return self.would_fail / max(self.turns, 1)

    @property
    def first_attempt_defect_rate(self) -> float:
        return self.first_attempt_defects / max(self.first_attempts, 1)

    @property
    def goal_failure_rate(self) -> float:
        return self.goals_failed / max(self.goals, 1)

    @property
    def win_loss(self) -> float:
        return self.wins / self.losses if self.losses else float("inf")

    @property
    def reduction_on_rewritten(self) -> float:
        return 1 - self.defects_with / self.defects_without if self.defects_without else 0.0

    @property
    def defect_reduction(self) -> float:
        """``1 - defects / would_fail``: how many fewer of the same turns failed with the rewriter."""
        return 1 - self.defects / self.would_fail if self.would_fail else 0.0

    def reduction_interval(
        self, level: float = 0.95, resamples: int = 2000, seed: int = 0
    ) -> tuple[float, float]:
        """Bootstrap interval of :attr:`defect_reduction` over households (drawn with
        replacement): how much the figure depends on which households happened to be simulated.
        It does not cover how the figure moves when the rewriter is refitted."""
        counts = np.array(list(self.households.values()), dtype=np.float64).reshape(-1, 2)
        if len(counts) < 2:
            return self.defect_reduction, self.defect_reduction
        draws = np.random.default_rng(seed).integers(0, len(counts), (resamples, len(counts)))
        defects, would_fail = counts[draws, 0].sum(axis=1), counts[draws, 1].sum(axis=1)
        reduction = 1 - defects / np.maximum(would_fail, 1)
        tail = (1 - level) / 2
        return float(np.quantile(reduction, tail)), float(np.quantile(reduction, 1 - tail))

    @property
    def rescue_rate(self) -> float:
        return self.wins / max(self.would_fail, 1)

    @property
    def false_rewrite_rate(self) -> float:
        return self.losses / max(self.rewritten, 1)

    @property
    def strict_failures(self) -> int:
        """Turns strict matching alone would have failed: the defects plus what the gazetteer
        fallback rescued (meaningful for a control arm, where nothing was rewritten)."""
        return self.defects + self.fallback_rescues

    @property
    def fallback_rescue_rate(self) -> float:
        """Share of :attr:`strict_failures` the gazetteer fallback rescued."""
        return self.fallback_rescues / max(self.strict_failures, 1)

    @property
    def questions_per_100_turns(self) -> float:
        return 100 * self.questions / max(self.turns, 1)

    @property
    def wins_per_wrong_action(self) -> float:
        """Wins for each wrong action: the precision a person feels (inf: no wrong action)."""
        return self.wins / self.acted_wrong if self.acted_wrong else float("inf")

    def summary(self) -> dict[str, Any]:
        """The arm's figures as JSON (rates as fractions, rounded to 4 places; the reduction's
        95 % interval over households; ``null`` for a ratio with nothing below it)."""

        def r(x: float) -> float | None:
            return round(x, 4) if x != float("inf") else None

        low, high = self.reduction_interval()
        return {
            "turns": self.turns,
            "defect_rate": r(self.defect_rate),
            "first_attempt_defect_rate": r(self.first_attempt_defect_rate),
            "goal_failure_rate": r(self.goal_failure_rate),
            "rewritten": self.rewritten,
            "wins": self.wins,
            "losses": self.losses,
            "win_loss": r(self.win_loss),
            "defect_rate_without": r(self.defect_rate_without),
            "defect_reduction": r(self.defect_reduction),
            "defect_reduction_interval": [r(low), r(high)],
            "rescue_rate": r(self.rescue_rate),
            "false_rewrite_rate": r(self.false_rewrite_rate),
            "wrong_actions": self.acted_wrong,
            "wrong_actions_out_of_scope": self.acted_wrong_out_of_scope,
            "wins_per_wrong_action": r(self.wins_per_wrong_action),
            "strict_failures": self.strict_failures,
            "fallback_rescues": self.fallback_rescues,
            "fallback_rescue_rate": r(self.fallback_rescue_rate),
            "fallback_wrong_actions": self.fallback_wrong,
            "layers": {k: dict(v) for k, v in sorted(self.layers.items())},
            "questions": self.questions,
            "questions_per_100_turns": r(self.questions_per_100_turns),
            "answers": dict(sorted(self.answers.items())),
            "confirmed_wins": self.confirmed_wins,
        }


def read_records(folder: str | Path, kind: str) -> dict[str, dict[str, Any]]:
    """The ``kind`` records (``turns``, ``truth``, ``homes``) of a simulation output folder
    (``kind``-*.jsonl), by turn id (homes: by home id). Feedback events share the turns files and
    carry the id of the turn they answer, and so do dialogue acts: both are skipped, or they would
    replace that turn's row."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(folder).glob(f"{kind}-*.jsonl")):
        with path.open("rb") as fh:
            for line in fh:
                row = orjson.loads(line)
                if row.get("record_type") in ("feedback", "dialogue"):
                    continue
                out[row["home_id"] if kind == "homes" else row["turn_id"]] = row
    return out


def score_arm(folder: str | Path) -> ArmStats:
    """Score one simulation output folder (``turns-*.jsonl`` and ``truth-*.jsonl``)."""
    folder = Path(folder)
    turns, truth = read_records(folder, "turns"), read_records(folder, "truth")
    s = ArmStats()
    last_attempt: dict[str, dict[str, Any]] = {}
    for turn_id, t in truth.items():
        row = turns.get(turn_id, {})
        household = s.households.setdefault(str(row.get("household_id", "")), [0, 0])
        s.turns += 1
        s.defects += bool(t["defect"])
        household[0] += bool(t["defect"])
        if t["action"] != "background" and t["in_scope"]:
            if t["attempt"] == 1:
                s.first_attempts += 1
                s.first_attempt_defects += bool(t["defect"])
            goal = t["goal"]["goal_id"]
            if goal not in last_attempt or t["attempt"] > last_attempt[goal]["attempt"]:
                last_attempt[goal] = t
        acted = (row.get("result") or {}).get("status") == "success"
        asked = row.get("dialogue") or {}
        if asked.get("role") == "question":
            s.questions += 1
            s.answers[str(asked.get("answer"))] += 1
        if (row.get("nlu") or {}).get("matcher") == "gazetteer":
            if t["defect"]:
                s.fallback_failed += 1
                s.fallback_wrong += acted
            else:
                s.fallback_rescues += 1
        rewrite = row.get("rewrite")
        if rewrite:
            without = bool(t.get("defect_without_rewrite"))
            s.rewritten += 1
            s.acted_wrong += bool(t["defect"]) and acted
            s.acted_wrong_out_of_scope += bool(t["defect"]) and acted and not t["in_scope"]
            s.defects_with += bool(t["defect"])
            s.defects_without += without
            s.would_fail += without
            household[1] += without
            example = (rewrite["original_text"], rewrite["rewritten_text"], t["goal"]["intent"])
            kind = "same"
            if without and not t["defect"]:
                kind = "win"
                s.wins += 1
                s.confirmed_wins += asked.get("answer") == "yes"
                s.win_examples.append(example)
            elif not without and t["defect"]:
                kind = "loss"
                s.losses += 1
                s.loss_examples.append(example)
            layer = rewrite["layer"]
            rule = str(rewrite.get("rule_id") or "")
            if rule.startswith("nbest:"):
                layer += " (n-best)"
            elif rule.startswith("taught:"):
                layer += " (taught)"
            counts = s.layers.setdefault(layer, Counter())
            counts[kind] += 1
            if t["defect"] and acted:
                counts["wrong action"] += 1
        else:
            s.would_fail += bool(t["defect"])
            household[1] += bool(t["defect"])
    s.goals = len(last_attempt)
    s.goals_failed = sum(bool(t["defect"]) for t in last_attempt.values())
    return s


def turn_setting(
    turn: dict[str, Any], truth: dict[str, Any], homes: dict[str, Home]
) -> tuple[Home, str | None, str | None, datetime, Effect | None]:
    """Where and when a logged turn was said -- its home, the device's area name and id, the time
    -- and, from its simulation truth, the effect the user wanted (None out of scope). For
    judging candidates in benchmarks only: nothing that learns reads truth."""
    home = homes[turn["household_id"]]
    area_name = (turn.get("device") or {}).get("area")
    area = home.area_named(area_name) if area_name else None
    area_id = area.area_id if area else None
    ts = datetime.fromisoformat(turn["timestamp"])
    expected: Effect | None = None
    if truth["in_scope"]:
        goal = truth["goal"]
        expected = expected_effect(goal["intent"], dict(goal["slots"]), HomeState.initial(home), area_id, ts)
    return home, area_name, area_id, ts, expected
