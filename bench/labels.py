"""Label generation benchmark (issue 30): the rules, the per-turn baseline and the contextual
label model against simulation truth on new households.

    python bench/labels.py                          # default: small populations (~10-15 min)
    python bench/labels.py --train-households 40 --households 20 --days 7   # larger
    python bench/labels.py --no-real                # skip the real-ASR population
    python bench/labels.py --rephrase-model models/rephrase   # rephrases by the contextual detector

Populations (:mod:`selflearn.evaluate.populations`, resized; cached under
``bench/.cache/labels/``): the models learn from ``train`` households (train phrasings, noisy
ASR) and are evaluated on other households saying held-out phrasings: ``held-out`` (noisy ASR),
``held-out-clean`` (exact text) and ``real`` (flite speech decoded by pocketsphinx). Every store
is scored as a user would: ``score_rephrases`` with the pairwise lexical detector or, with
``--rephrase-model``, the contextual MiniLM detector (``selflearn train rephrase``, as
bench/rephrase.py trains it), ``score_defects`` with the heuristic, then
``selflearn.labels.label_store`` (the rules) writes the ``labels`` table the models train on.
Simulation truth (``sim_truth``) is read here, for scoring only.

Methods: ``rules`` (the labels table as ``selflearn label`` writes it; with ``--rephrase-model``
also ``rules, lexical rephrases``, the same from the lexical detector's links), ``per-turn``
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
* ``slot_f1`` (with ``slot_precision`` and ``slot_recall``): on the failed in-scope turns the
  method gave an intent (the covered ones), micro F1 of the label's ``(slot, value)`` pairs
  against the simulated goal's. Values are compared as the home resolves them (an area's or
  floor's name, alias or id as its id; a device's name or alias as its name; numbers as
  numbers; text case- and punctuation-insensitively; Home Assistant's ``volume_level`` is the
  goal's ``volume``), and ``domain`` is left out of a reading that names its device (the name
  says the domain: Home Assistant acts the same with or without it). The models predict no
  slots: theirs are what :func:`selflearn.labels.slots.fill_slots` finds for their intent with
  the home's names (a gazetteer, as ``selflearn label --model`` writes them).

``ceilings`` per population: ``success_with_true_goals``, the goal-success accuracy of the defect
detector's verdict on the last turn of each *true* goal (no segmentation can do better from the
same verdicts), and ``transfer_coverage``, the share of failed in-scope turns whose goal later
succeeded (the only ones a paraphrase can lend a label to).

``loop`` per population (and ``seen``): the defect rate and wrong actions per arm -- Home
Assistant today, + the exported sentences, + the online rewriter, both -- copied with their
command, commit and date from ``labels_loop.json``, which ``bench/labels_loop.py`` writes (it
replays its own 40 new homes per population, so its households are not this benchmark's). Run
it first; without it ``loop`` is absent and the run says so.

Figures go to ``docs/results/labels.json`` (``$SELFLEARN_RESULTS`` when set).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from selflearn.assistant.execute import SLOT_ALIASES
from selflearn.core.errors import DependencyError
from selflearn.core.home import Home, normalize_name
from selflearn.core.store import Store
from selflearn.evaluate import population, write_results
from selflearn.evaluate.cache import population_store
from selflearn.evaluate.results import results_folder
from selflearn.labels import label_store
from selflearn.labels.model import LabelModel, LabelModelConfig, PerTurnLabeller
from selflearn.labels.slots import fill_slots
from selflearn.signals.defect import score_defects
from selflearn.signals.rephrase import ContextualRephraseDetector, PairwiseRephraseBaseline, score_rephrases

CACHE = Path(__file__).resolve().parent / ".cache" / "labels"
COVERAGE = 0.5
"""Share of the failed turns a model labels in ``intent_accuracy`` (its most confident ones)."""


def build(name: str, households: int, days: float, workers: int, rebuild: bool) -> Path:
    """The population's store (simulated when missing or stale)."""
    config = population(name).config(workers, households, days)
    return population_store(CACHE / f"{name}-{households}h{days:g}d.duckdb", config, rebuild)


Detector = ContextualRephraseDetector | PairwiseRephraseBaseline


def label(path: Path, name: str, detector: Detector) -> pa.Table:
    """Score the store as a user would (rephrases with ``detector``, defects with the
    heuristic), label it with the rules, and return its ``labels`` table."""
    with Store(path) as store:
        score_rephrases(store, detector)
        score_defects(store)
        report = label_store(store, store_name=str(path))
        table = store.query("SELECT * FROM labels")
    print(f"[labels] {name} ({detector.FORMAT}): {report.summary()}", file=sys.stderr)
    return table


def ceilings(store: Store, truth: Truth) -> dict[str, float]:
    """What the rules cannot pass whatever their segmentation: ``success_with_true_goals``, the
    goal-success accuracy of the defect detector's verdict on the last turn of each *true* goal,
    and ``transfer_coverage``, the share of failed in-scope turns whose goal later succeeded
    (only those have a paraphrase to take a label from)."""
    flagged = dict(
        zip(*store.query("SELECT turn_id, p_defect > 0.5 FROM defects").to_pydict().values(), strict=True)
    )
    rows = store.query(
        "SELECT s.turn_id, s.goal.goal_id AS goal_id, epoch(t.timestamp) AS ts "
        "FROM sim_truth s JOIN turns t USING (turn_id)"
    ).to_pylist()
    last: dict[str, tuple[float, str]] = {}
    for r in rows:
        key = (float(r["ts"]), str(r["turn_id"]))
        last[str(r["goal_id"])] = max(last.get(str(r["goal_id"]), key), key)
    goal = {str(r["turn_id"]): str(r["goal_id"]) for r in rows}
    said = np.array([not flagged.get(last[goal[t]][1], False) for t in truth.turn_ids])
    failed = truth.failed
    return {
        "success_with_true_goals": _r(float(np.mean(said == truth.success))),
        "transfer_coverage": _r(float(truth.success[failed].mean()) if failed.any() else 0.0),
    }


@dataclass(frozen=True)
class Truth:
    """Simulation truth per turn (ordered as ``turn_ids``)."""

    turn_ids: list[str]
    boundary: np.ndarray
    success: np.ndarray
    intent: list[str]
    failed: np.ndarray
    """Defect turns of an in-scope goal (not false wakes)."""
    slots: list[frozenset[tuple[str, str]]]
    """The goal's slots as :func:`slot_pairs` compares them."""
    household: list[str]


def slot_value(slot: str, value: object, home: Home | None) -> str:
    """``value`` as the home resolves it (see the module docstring)."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return str(int(number)) if number.is_integer() else str(number)
    if home is not None:
        if slot == "area" and (area := home.area_named(text)) is not None:
            return area.area_id
        if slot == "floor" and (floor := home.floor_named(text)) is not None:
            return floor.floor_id
        if slot == "name" and len(found := home.entities_named(text)) == 1:
            return normalize_name(found[0].name)
    return normalize_name(text)


def slot_pairs(slots: dict[str, object], home: Home | None) -> frozenset[tuple[str, str]]:
    """A reading's slots as ``(slot, value)`` pairs, ``domain`` left out when a device is named."""
    named = {SLOT_ALIASES.get(k, k): v for k, v in slots.items()}
    return frozenset(
        (k, slot_value(k, v, home))
        for k, v in named.items()
        if v is not None and not (k == "domain" and "name" in named)
    )


def read_truth(store: Store) -> Truth:
    rows = store.query(
        "SELECT s.turn_id, s.goal.goal_id AS goal_id, s.goal.intent AS intent, s.goal.slots AS slots, "
        "s.defect, s.in_scope, s.action, t.household_id, epoch(t.timestamp) AS ts "
        "FROM sim_truth s JOIN turns t USING (turn_id) ORDER BY s.turn_id"
    ).to_pylist()
    homes = store.homes()
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
        slots=[slot_pairs(json.loads(r["slots"] or "{}"), homes.get(r["household_id"])) for r in rows],
        household=[str(r["household_id"]) for r in rows],
    )


@dataclass(frozen=True)
class Predicted:
    """One method's labels of a store, aligned with :class:`Truth`."""

    boundary: np.ndarray
    success: np.ndarray
    intent: list[str | None]
    confidence: np.ndarray
    slots: list[frozenset[tuple[str, str]] | None]
    """The label's slots as :func:`slot_pairs` compares them (``None``: the method has none)."""


def aligned(table: pa.Table, truth: Truth, store: Store, with_slots: bool) -> Predicted:
    """A ``labels``-layout table's rows in truth order; a turn's boundary is whether it is the
    first turn of its ``goal_id`` (``with_slots``: the method labels slots)."""
    ts = dict(
        zip(
            *store.query("SELECT turn_id, epoch(timestamp) AS ts FROM turns").to_pydict().values(),
            strict=True,
        )
    )
    has_slots = with_slots and "slots" in table.column_names
    columns = ["turn_id", "goal_id", "goal_success", "intent", "confidence"] + (
        ["slots"] if has_slots else []
    )
    rows = {r["turn_id"]: r for r in table.select(columns).to_pylist()}
    homes = store.homes()
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
        slots=[
            slot_pairs({s["slot"]: s["value"] for s in r["slots"] or []}, homes.get(hh))
            if has_slots and r and r["intent"] is not None
            else None
            for r, hh in zip(got, truth.household, strict=True)
        ],
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
    out.update(slot_figures(pred, truth, idx[covered]))
    return out


def slot_figures(pred: Predicted, truth: Truth, idx: np.ndarray) -> dict[str, Any]:
    """Micro precision, recall and F1 of the slot pairs on the turns ``idx`` (none without slots)."""
    if not len(idx) or any(pred.slots[i] is None for i in idx):
        return {"slot_f1": None}
    tp = fp = fn = 0
    for i in idx:
        said, meant = pred.slots[i] or frozenset(), truth.slots[i]
        tp, fp, fn = tp + len(said & meant), fp + len(said - meant), fn + len(meant - said)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"slot_f1": _r(f), "slot_precision": _r(precision), "slot_recall": _r(recall)}


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


def gazetteer_slots(table: pa.Table, store: Store, scored: set[str]) -> pa.Table:
    """A model's labels with the slots :func:`~selflearn.labels.slots.fill_slots` finds for its
    intent in the words said (as ``selflearn label --model`` writes them), on the turns
    ``scored`` (the others are not scored: no need to spend the time)."""
    turns = {
        r["turn_id"]: r
        for r in store.query(
            "SELECT turn_id, household_id, COALESCE(rewrite.original_text, text) AS said FROM turns"
        ).to_pylist()
    }
    homes = store.homes()
    rows = table.to_pylist()
    for r in rows:
        turn = turns.get(r["turn_id"])
        if r["turn_id"] in scored and r["intent"] and turn and (home := homes.get(turn["household_id"])):
            r["slots"] = [s.as_row() for s in fill_slots(r["intent"], turn["said"], home)]
    return pa.Table.from_pylist(rows, schema=table.schema)


def combined(rules: pa.Table, model: pa.Table) -> pa.Table:
    """The rules' labels with the model's intent (confidence, slots) where the rules gave none."""
    by_turn = {
        r["turn_id"]: r for r in model.select(["turn_id", "intent", "confidence", "slots"]).to_pylist()
    }
    rows = rules.to_pylist()
    for r in rows:
        if r["intent"] is None and r["turn_id"] in by_turn:
            r["intent"] = by_turn[r["turn_id"]]["intent"]
            r["confidence"] = by_turn[r["turn_id"]]["confidence"]
            r["slots"] = by_turn[r["turn_id"]]["slots"]
    return pa.Table.from_pylist(rows, schema=rules.schema)


def row(name: str, method: str, m: dict[str, Any]) -> str:
    """A line of the printed table."""
    every, slot = m.get("intent_accuracy_all"), m.get("slot_f1")
    return (
        f"| {name} | {method} | {m['goal_segmentation_f1']:.3f} | {m['continuation_f1']:.3f} "
        f"| {m['goal_success_accuracy']:.3f} | {m['goal_success_f1']:.3f} | {m['goal_failure_f1']:.3f} "
        f"| {m.get('failed_turns', 0):,} | {m.get('coverage', 0):.1%} | {m.get('intent_accuracy', 0):.3f} "
        f"| {'-' if every is None else f'{every:.3f}'} "
        f"| {'-' if slot is None else f'{slot:.3f}'} |"
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
    parser.add_argument(
        "--nbest", action="store_true", help="the models embed the recogniser's n-best hypotheses"
    )
    parser.add_argument(
        "--encoder", default=LabelModelConfig.encoder, help="turn encoder of the models: static or minilm"
    )
    parser.add_argument(
        "--validation",
        type=float,
        default=LabelModelConfig.validation,
        help="share of training households held out to pick the epoch (0: none)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rebuild", action="store_true", help="simulate the populations again")
    parser.add_argument("--save", type=Path, default=None, help="also save the trained models here")
    parser.add_argument(
        "--rephrase-model",
        type=Path,
        default=None,
        help="score rephrases with this contextual detector (selflearn train rephrase; see "
        "bench/rephrase.py) instead of the pairwise lexical one; the lexical rules stay as a row",
    )
    args = parser.parse_args()
    lexical = PairwiseRephraseBaseline("lexical")
    detector: Detector = (
        lexical if args.rephrase_model is None else ContextualRephraseDetector.load(args.rephrase_model)
    )
    names = [p for p in args.populations.split(",") if p] + ([] if args.no_real else ["real"])
    for name in [args.train, *names]:
        population(name)  # unknown names fail before anything runs

    train = build(args.train, args.train_households, args.train_days, args.workers, args.rebuild)
    label(train, args.train, detector)
    config = LabelModelConfig(
        epochs=args.epochs,
        pretrain_epochs=args.pretrain_epochs,
        seed=args.seed,
        encoder=args.encoder,
        validation=args.validation,
        nbest=args.nbest,
    )
    learners: dict[str, LabelModel | PerTurnLabeller] = {
        "per-turn": PerTurnLabeller(config),
        "contextual": LabelModel(config),
        "contextual, no pretraining": LabelModel(replace(config, pretrain_epochs=0)),
    }
    figures: dict[str, Any] = {
        "config": config.__dict__,
        "rephrase_detector": lexical.FORMAT if args.rephrase_model is None else str(args.rephrase_model),
        "train": {},
        "populations": {},
    }
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
        "| failed turns | coverage | intent acc | intent acc @100 % | slot F1 |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
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
        tables: dict[str, pa.Table] = {}
        if detector is not lexical:
            tables["rules, lexical rephrases"] = label(path, name, lexical)
        tables["rules"] = rules = label(path, name, detector)
        with Store(path, read_only=True) as store:
            truth = read_truth(store)
            failed = {t for t, f in zip(truth.turn_ids, truth.failed, strict=True) if f}
            for method, learner in learners.items():
                t0 = time.perf_counter()
                tables[method] = gazetteer_slots(learner.predict(store), store, failed)
                print(
                    f"[labels] {name}: {method} predicted in {time.perf_counter() - t0:.1f} s",
                    file=sys.stderr,
                )
            tables["rules + contextual"] = combined(rules, tables["contextual"])
            methods: dict[str, Any] = {}
            for method, table in tables.items():
                by_rules = method in ("rules", "rules, lexical rephrases")
                pred = aligned(table, truth, store, with_slots=True)
                methods[method] = figures_of(pred, truth, by_rules)
                lines.append(row(name, method, methods[method]))
            figures["populations"][name] = {
                "households": households,
                "days": days,
                "asr": population(name).asr,
                "turns": len(truth.turn_ids),
                "boundary_rate": _r(float(truth.boundary.mean())),
                "success_rate": _r(float(truth.success.mean())),
                "ceilings": ceilings(store, truth),
                "methods": methods,
            }
    print("\n".join(lines))
    attach_loop(figures)
    write_results("labels", figures, seconds=time.perf_counter() - started)


def attach_loop(figures: dict[str, Any]) -> None:
    """Add each population's defect rate and wrong actions per arm from ``labels_loop.json``."""
    path = results_folder() / "labels_loop.json"
    if not path.exists():
        print(f"[labels] no {path}: run bench/labels_loop.py for the defect rate per arm", file=sys.stderr)
        return
    record = json.loads(path.read_text(encoding="utf-8"))
    figures["loop_source"] = {key: record[key] for key in ("command", "commit", "date")}
    for name, pop in record["figures"]["populations"].items():
        if "arms" not in pop:
            continue
        target = figures["populations"].setdefault(name, {"asr": pop["asr"]})
        target["loop"] = {
            "households": pop["households"],
            "days": pop["days"],
            "defect_rate": {arm: fig["defect_rate"] for arm, fig in pop["arms"].items()},
            "wrong_actions": {arm: fig["wrong_actions"] for arm, fig in pop["arms"].items()},
            "export_share_of_rewriter_fix": pop.get("export_share_of_rewriter_fix"),
        }


if __name__ == "__main__":
    main()
