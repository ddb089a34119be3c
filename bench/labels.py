"""Label generation benchmark (issue 30): the rules, the per-turn baseline and the contextual
label model against simulation truth on new households.

    python bench/labels.py                          # default: small populations (~10-15 min)
    python bench/labels.py --train-households 40 --households 20 --days 7   # larger
    python bench/labels.py --no-real                # skip the real-ASR population

Populations (:mod:`selflearn.evaluate.populations`, resized; cached under
``bench/.cache/labels/``): the models learn from ``train`` households (train phrasings, noisy
ASR) and are evaluated on other households saying held-out phrasings: ``held-out`` (noisy ASR),
``held-out-clean`` (exact text) and ``real`` (flite speech decoded by pocketsphinx). Every store
is scored as a user would: ``score_rephrases`` with the default lexical detector,
``score_defects`` with the heuristic, then ``selflearn.labels.label_store`` (the rules) writes the
``labels`` table the models train on. Simulation truth (``sim_truth``) is read here, for scoring
only.

Methods: ``rules`` (the labels table as ``selflearn label`` writes it), ``per-turn``
(:class:`~selflearn.labels.model.PerTurnLabeller`: the same turn encoding, no neighbours),
``contextual`` (:class:`~selflearn.labels.model.LabelModel`) and ``contextual, no pretraining``
(the ablation without the contrastive task), and ``rules + contextual`` (the rules' labels,
the model's intent where the rules gave none).

Figures per population and method:

* ``goal_segmentation_f1``: F1 of "this turn starts a new goal" (truth: the first turn of its
  simulated goal); ``continuation_f1``: F1 of the rarer class, "this turn continues the previous
  goal";
* ``goal_success_accuracy``, ``goal_success_f1`` (success class) and ``goal_failure_f1``: does
  the turn's goal end in success (truth: the goal's last turn is not a defect);
* ``intent_accuracy`` and ``coverage``: on the failed in-scope turns (truth: defect, an intent
  the assistant serves), the share given an intent and the accuracy of those; for a model, at
  the confidence threshold that covers 50 % of those turns (``intent_accuracy_all``: at 100 %);
* slot F1 is not measured (the simulated goal's slots are canonical values, the labels' slots
  the NLU's surface values: no fair match yet).

Figures go to ``docs/results/labels.json`` (``$SELFLEARN_RESULTS`` when set).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from selflearn.core.errors import DependencyError
from selflearn.core.store import Store
from selflearn.evaluate import population, write_results
from selflearn.evaluate.cache import population_store
from selflearn.labels import label_store
from selflearn.labels.model import LabelModel, LabelModelConfig, PerTurnLabeller
from selflearn.signals.defect import score_defects
from selflearn.signals.rephrase import PairwiseRephraseBaseline, score_rephrases

CACHE = Path(__file__).resolve().parent / ".cache" / "labels"
COVERAGE = 0.5
"""Share of the failed turns a model labels in ``intent_accuracy`` (its most confident ones)."""


def build(name: str, households: int, days: float, workers: int, rebuild: bool) -> Path:
    """The population's store (simulated when missing or stale), scored and labelled afresh."""
    config = population(name).config(workers, households, days)
    path = population_store(CACHE / f"{name}-{households}h{days:g}d.duckdb", config, rebuild)
    with Store(path) as store:
        score_rephrases(store, PairwiseRephraseBaseline("lexical"))
        score_defects(store)
        report = label_store(store, store_name=str(path))
    print(f"[labels] {name}: {report.summary()}", file=sys.stderr)
    return path


@dataclass(frozen=True)
class Truth:
    """Simulation truth per turn (ordered as ``turn_ids``)."""

    turn_ids: list[str]
    boundary: np.ndarray
    success: np.ndarray
    intent: list[str]
    failed: np.ndarray
    """Defect turns of an in-scope goal (not false wakes)."""


def read_truth(store: Store) -> Truth:
    rows = store.query(
        "SELECT s.turn_id, s.goal.goal_id AS goal_id, s.goal.intent AS intent, s.defect, s.in_scope, "
        "s.action, epoch(t.timestamp) AS ts FROM sim_truth s JOIN turns t USING (turn_id) "
        "ORDER BY s.turn_id"
    ).to_pylist()
    first: dict[str, tuple[float, str]] = {}
    last: dict[str, tuple[float, str]] = {}
    defect = {r["turn_id"]: bool(r["defect"]) for r in rows}
    for r in rows:
        key = (float(r["ts"]), str(r["turn_id"]))
        goal = str(r["goal_id"])
        first[goal] = min(first.get(goal, key), key)
        last[goal] = max(last.get(goal, key), key)
    return Truth(
        turn_ids=[str(r["turn_id"]) for r in rows],
        boundary=np.array([first[str(r["goal_id"])][1] == r["turn_id"] for r in rows]),
        success=np.array([not defect[last[str(r["goal_id"])][1]] for r in rows]),
        intent=[str(r["intent"]) for r in rows],
        failed=np.array(
            [bool(r["defect"]) and bool(r["in_scope"]) and r["action"] != "background" for r in rows]
        ),
    )


@dataclass(frozen=True)
class Predicted:
    """One method's labels of a store, aligned with :class:`Truth`."""

    boundary: np.ndarray
    success: np.ndarray
    intent: list[str | None]
    confidence: np.ndarray


def aligned(table: pa.Table, truth: Truth, store: Store) -> Predicted:
    """A ``labels``-layout table's rows in truth order; a turn's boundary is whether it is the
    first turn of its ``goal_id``."""
    ts = dict(
        zip(
            *store.query("SELECT turn_id, epoch(timestamp) AS ts FROM turns").to_pydict().values(),
            strict=True,
        )
    )
    rows = {
        r["turn_id"]: r
        for r in table.select(["turn_id", "goal_id", "goal_success", "intent", "confidence"]).to_pylist()
    }
    first: dict[str, tuple[float, str]] = {}
    for r in rows.values():
        key = (float(ts[r["turn_id"]]), str(r["turn_id"]))
        first[str(r["goal_id"])] = min(first.get(str(r["goal_id"]), key), key)
    got = [rows.get(t) for t in truth.turn_ids]
    return Predicted(
        boundary=np.array([r is None or first[str(r["goal_id"])][1] == r["turn_id"] for r in got]),
        success=np.array([bool(r and r["goal_success"]) for r in got]),
        intent=[r["intent"] if r else None for r in got],
        confidence=np.array(
            [float(r["confidence"]) if r and r["confidence"] is not None else 0.0 for r in got]
        ),
    )


def f1(y: np.ndarray, p: np.ndarray) -> float:
    tp = float(np.sum(y & p))
    denominator = float(np.sum(y) + np.sum(p))
    return 2 * tp / denominator if denominator else 0.0


def intent_figures(pred: Predicted, truth: Truth, rules: bool) -> dict[str, Any]:
    """Coverage and accuracy on the failed turns: every turn with an intent (``rules``), or the
    most confident :data:`COVERAGE` of them (a model)."""
    idx = np.flatnonzero(truth.failed)
    if not len(idx):
        return {"failed_turns": 0}
    right = np.array([pred.intent[i] == truth.intent[i] for i in idx])
    has = np.array([pred.intent[i] is not None for i in idx])
    out: dict[str, Any] = {"failed_turns": len(idx)}
    if not rules:
        conf = pred.confidence[idx]
        cut = float(np.sort(conf)[::-1][max(math.ceil(COVERAGE * len(idx)) - 1, 0)])
        covered = has & (conf >= cut)
        out["confidence_threshold"] = round(cut, 4)
        out["intent_accuracy_all"] = _r(float(right[has].mean()) if has.any() else 0.0)
    else:
        covered = has
    out["coverage"] = _r(float(covered.mean()))
    out["intent_accuracy"] = _r(float(right[covered].mean()) if covered.any() else 0.0)
    return out


def figures_of(pred: Predicted, truth: Truth, rules: bool) -> dict[str, Any]:
    fig = {
        "goal_segmentation_f1": _r(f1(truth.boundary, pred.boundary)),
        "continuation_f1": _r(f1(~truth.boundary, ~pred.boundary)),
        "goal_success_accuracy": _r(float(np.mean(pred.success == truth.success))),
        "goal_success_f1": _r(f1(truth.success, pred.success)),
        "goal_failure_f1": _r(f1(~truth.success, ~pred.success)),
    }
    fig.update(intent_figures(pred, truth, rules))
    return fig


def combined(rules: pa.Table, model: pa.Table) -> pa.Table:
    """The rules' labels with the model's intent (and confidence) where the rules gave none."""
    by_turn = {r["turn_id"]: r for r in model.select(["turn_id", "intent", "confidence"]).to_pylist()}
    rows = rules.to_pylist()
    for r in rows:
        if r["intent"] is None and r["turn_id"] in by_turn:
            r["intent"] = by_turn[r["turn_id"]]["intent"]
            r["confidence"] = by_turn[r["turn_id"]]["confidence"]
    return pa.Table.from_pylist(rows, schema=rules.schema)


def row(name: str, method: str, m: dict[str, Any]) -> str:
    """A line of the printed table."""
    every = m.get("intent_accuracy_all")
    return (
        f"| {name} | {method} | {m['goal_segmentation_f1']:.3f} | {m['continuation_f1']:.3f} "
        f"| {m['goal_success_accuracy']:.3f} | {m['goal_success_f1']:.3f} | {m['goal_failure_f1']:.3f} "
        f"| {m.get('failed_turns', 0):,} | {m.get('coverage', 0):.1%} | {m.get('intent_accuracy', 0):.3f} "
        f"| {'-' if every is None else f'{every:.3f}'} |"
    )


def _r(x: float) -> float:
    return round(float(x), 4)


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", default="train", help="population the models learn from")
    parser.add_argument("--train-households", type=int, default=12)
    parser.add_argument("--train-days", type=float, default=7)
    parser.add_argument("--populations", default="held-out,held-out-clean")
    parser.add_argument("--households", type=int, default=8)
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--no-real", action="store_true", help="skip the real-ASR population")
    parser.add_argument("--real-households", type=int, default=4)
    parser.add_argument("--real-days", type=float, default=3)
    parser.add_argument("--epochs", type=int, default=LabelModelConfig.epochs)
    parser.add_argument("--pretrain-epochs", type=int, default=LabelModelConfig.pretrain_epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rebuild", action="store_true", help="simulate the populations again")
    parser.add_argument("--save", type=Path, default=None, help="also save the trained models here")
    args = parser.parse_args()
    names = [p for p in args.populations.split(",") if p] + ([] if args.no_real else ["real"])
    for name in [args.train, *names]:
        population(name)  # unknown names fail before anything runs

    train = build(args.train, args.train_households, args.train_days, args.workers, args.rebuild)
    config = LabelModelConfig(epochs=args.epochs, pretrain_epochs=args.pretrain_epochs, seed=args.seed)
    learners: dict[str, LabelModel | PerTurnLabeller] = {
        "per-turn": PerTurnLabeller(config),
        "contextual": LabelModel(config),
        "contextual, no pretraining": LabelModel(replace(config, pretrain_epochs=0)),
    }
    figures: dict[str, Any] = {"config": config.__dict__, "train": {}, "populations": {}}
    with Store(train, read_only=True) as store:
        turns = store.count("turns")
        for method, learner in learners.items():
            t0 = time.perf_counter()
            learner.fit(store, store_name=str(train))
            seconds = time.perf_counter() - t0
            print(f"[labels] {method}: trained in {seconds:.0f} s: {learner.report_}", file=sys.stderr)
            figures["train"][method] = {
                "version": learner.version,
                "seconds": round(seconds, 1),
                "report": learner.report_.__dict__,
            }
            if args.save is not None:
                learner.save(args.save / method.replace(", ", "-").replace(" ", "-"))
    figures["train"]["population"] = {
        "name": args.train,
        "households": args.train_households,
        "days": args.train_days,
        "turns": turns,
    }

    header = (
        "| population | method | segmentation F1 | continuation F1 | success acc | success F1 | failure F1 "
        "| failed turns | coverage | intent acc | intent acc @100 % |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [header]
    for name in names:
        real = name == "real"
        households = args.real_households if real else args.households
        days = args.real_days if real else args.days
        try:
            path = build(name, households, days, args.workers, args.rebuild)
        except DependencyError as exc:  # the real ASR channel needs flite, sox, pocketsphinx
            if not real:
                raise
            print(f"[labels] real: skipped ({exc})", file=sys.stderr)
            figures["populations"]["real"] = {"skipped": str(exc)}
            continue
        with Store(path, read_only=True) as store:
            truth = read_truth(store)
            rules = store.query("SELECT * FROM labels")
            tables: dict[str, pa.Table] = {"rules": rules}
            for method, learner in learners.items():
                t0 = time.perf_counter()
                tables[method] = learner.predict(store)
                print(
                    f"[labels] {name}: {method} predicted in {time.perf_counter() - t0:.1f} s",
                    file=sys.stderr,
                )
            tables["rules + contextual"] = combined(rules, tables["contextual"])
            methods: dict[str, Any] = {}
            for method, table in tables.items():
                methods[method] = figures_of(aligned(table, truth, store), truth, method == "rules")
                lines.append(row(name, method, methods[method]))
            figures["populations"][name] = {
                "households": households,
                "days": days,
                "asr": population(name).asr,
                "turns": len(truth.turn_ids),
                "boundary_rate": _r(float(truth.boundary.mean())),
                "success_rate": _r(float(truth.success.mean())),
                "methods": methods,
            }
    print("\n".join(lines))
    write_results("labels", figures, seconds=time.perf_counter() - started)


if __name__ == "__main__":
    main()
