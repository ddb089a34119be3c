"""Defect detection benchmark: the heuristic vs the learned model, against simulation truth.

    python bench/defects.py                   # quality table (markdown)
    python bench/defects.py --speed           # 1,000,000-turn scoring speed

The ``train``, ``test`` and ``test-clean`` populations are simulated into
``bench/.cache/signals/`` on first use (minutes; ``selflearn evaluate build train test test-clean
--cache-dir bench/.cache/signals`` builds them ahead); ``test-real`` is scored only when built
(``selflearn evaluate build test-real --cache-dir bench/.cache/signals``, needs ``make asr-deps``).
Figures go to ``docs/results/defects.json`` (``defects-speed.json`` for ``--speed``; to
``$SELFLEARN_RESULTS`` when set).

The model is trained on the simulated *train* population from weak labels only (it never sees
simulation truth). Thresholds other than 0.5 are the best-F1 threshold on the *train* population
(scored by the model trained on it); nothing is tuned on the held-out sets (``test``: held-out
households and phrasings, noisy ASR; ``test-clean``: the same with exact ASR; ``test-real``:
flite speech decoded by pocketsphinx, when built). Simulation truth is read here, for scoring
only. ``learned, decoupled`` is the ablation described in docs/defects.md (behaviour features of
implicitly labelled turns scrambled during training).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from sklearn.metrics import average_precision_score, precision_recall_curve, precision_recall_fscore_support

import populations
from selflearn.core.store import Store
from selflearn.evaluate import write_results
from selflearn.signals.defect import DefectModel, HeuristicDefectDetector, score_defects, weak_labels
from selflearn.signals.features import turn_features

Scorer = Callable[[pa.Table], np.ndarray]


@dataclass(frozen=True)
class Scored:
    """Truth and scores of one population."""

    y: np.ndarray
    scores: dict[str, np.ndarray]


def _truth(store: Store, features: pa.Table) -> np.ndarray:
    truth = store.truth()
    defect = dict(zip(truth.column("turn_id").to_pylist(), truth.column("defect").to_pylist(), strict=True))
    return np.array([bool(defect[t]) for t in features.column("turn_id").to_pylist()], dtype=np.int8)


def score(path: Path, scorers: dict[str, Scorer]) -> tuple[Scored, pa.Table]:
    with Store(path, read_only=True) as store:
        features = turn_features(store)
        y = _truth(store, features)
    return Scored(y, {name: fn(features) for name, fn in scorers.items()}), features


def best_threshold(y: np.ndarray, p: np.ndarray) -> float:
    precision, recall, thresholds = precision_recall_curve(y, p)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def prf(y: np.ndarray, p: np.ndarray, threshold: float) -> tuple[float, float, float]:
    pr, rc, f1, _ = precision_recall_fscore_support(y, p >= threshold, average="binary", zero_division=0)
    return float(pr), float(rc), float(f1)


def quality(args: argparse.Namespace) -> dict[str, Any]:
    """Print the quality tables; returns their figures."""
    train_path = populations.store("train")
    started = time.perf_counter()
    with Store(train_path, read_only=True) as store:
        model = DefectModel().fit(store)
        decoupled = DefectModel(decouple=True).fit(store)
    train_s = time.perf_counter() - started
    print(f"trained {model.version} in {train_s:.1f} s: {model.label_stats_}")
    heuristic = HeuristicDefectDetector()
    scorers: dict[str, Scorer] = {
        "heuristic": heuristic.predict,
        "learned (LightGBM, weak labels)": model.predict,
        "learned, decoupled (ablation)": decoupled.predict,
    }
    train, train_features = score(train_path, scorers)
    weak = weak_label_report(train_features, train.y)
    thresholds = {name: best_threshold(train.y, p) for name, p in train.scores.items()}
    lines = [
        "| population | turns | defect rate | detector | PR-AUC | P@0.5 | R@0.5 | F1@0.5 "
        "| threshold (train best F1) | P | R | F1 |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    figures: dict[str, Any] = {
        "model": model.version,
        "decoupled_model": decoupled.version,
        "train_seconds": round(train_s, 1),
        "label_stats": model.label_stats_,
        "weak_labels": weak,
        "populations": {},
        "skipped": [],
    }
    for name in args.sets:
        path = populations.evaluation_store(name)
        if not path.exists():
            print(f"({name}: not built, skipped; `{populations.build_command(name)}` builds it)")
            figures["skipped"].append(name)
            continue
        scored = train if name == "train" else score(path, scorers)[0]
        detectors: dict[str, dict[str, float]] = {}
        for detector, p in scored.scores.items():
            t = thresholds[detector]
            p5, r5, f5 = prf(scored.y, p, 0.5)
            pt, rt, ft = prf(scored.y, p, t)
            pr_auc = float(average_precision_score(scored.y, p))
            lines.append(
                f"| {name} | {len(scored.y):,} | {scored.y.mean():.1%} | {detector} "
                f"| **{pr_auc:.3f}** | {p5:.3f} | {r5:.3f} | {f5:.3f} "
                f"| {t:.2f} | {pt:.3f} | {rt:.3f} | **{ft:.3f}** |"
            )
            detectors[detector] = {
                "pr_auc": _r(pr_auc),
                "precision_at_0.5": _r(p5),
                "recall_at_0.5": _r(r5),
                "f1_at_0.5": _r(f5),
                "threshold": _r(t),
                "precision": _r(pt),
                "recall": _r(rt),
                "f1": _r(ft),
            }
        figures["populations"][name] = {
            "turns": len(scored.y),
            "defect_rate": _r(float(scored.y.mean())),
            "detectors": detectors,
        }
    print("\n".join(lines))
    return figures


def _r(x: float) -> float:
    """A figure for the JSON results: 4 decimals."""
    return round(float(x), 4)


def weak_label_report(features: pa.Table, y: np.ndarray) -> dict[str, Any]:
    """How many train turns each weak-label rule labels, and how often truth agrees (printed;
    returned as figures)."""
    labels = weak_labels(features)
    figures: dict[str, Any] = {}
    print("| weak label | train turns | agrees with truth |\n|---|---:|---:|")
    for source in sorted(labels.counts()):
        hit = labels.source == source
        agree = float(np.mean(labels.label[hit] == y[hit]))
        print(f"| {source} | {int(hit.sum()):,} | {agree:.1%} |")
        figures[source] = {"turns": int(hit.sum()), "agrees_with_truth": _r(agree)}
    unlabelled = int((~labels.labelled).sum())
    print(f"| (unlabelled) | {unlabelled:,} | |")
    figures["(unlabelled)"] = {"turns": unlabelled}
    return figures


def build_large(path: Path, source: Path, turns: int) -> int:
    """A store of about ``turns`` turns: copies of ``source``'s turns and feedback with new ids."""
    with Store(source, read_only=True) as src:
        base = src.query("SELECT * FROM turns")
        feedback = src.query("SELECT * FROM feedback")
    copies = -(-turns // max(base.num_rows, 1))
    with Store(path) as store:
        con = store.con
        con.register("base_turns", base)
        con.register("base_feedback", feedback)
        con.execute(
            f"""INSERT INTO turns SELECT * EXCLUDE (i) REPLACE (
                    turn_id || ':r' || i AS turn_id, session_id || ':r' || i AS session_id)
                FROM base_turns, range({copies}) r(i)
                QUALIFY row_number() OVER () <= {turns}"""
        )
        con.execute(
            f"""INSERT INTO feedback SELECT * EXCLUDE (i) REPLACE (
                    feedback_id || ':r' || i AS feedback_id, turn_id || ':r' || i AS turn_id)
                FROM base_feedback, range({copies}) r(i)
                WHERE turn_id || ':r' || i IN (SELECT turn_id FROM turns)"""
        )
        return store.count("turns")


def speed(args: argparse.Namespace) -> dict[str, Any]:
    """Print the scoring speed table; returns its figures."""
    with Store(populations.store("train"), read_only=True) as store:
        model = DefectModel().fit(store)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "large.duckdb"
        started = time.perf_counter()
        n = build_large(path, populations.store("test"), args.turns)
        build_s = time.perf_counter() - started
        print(f"built a {n:,}-turn store in {build_s:.1f} s")
        with Store(path) as store:
            t0 = time.perf_counter()
            features = turn_features(store)
            t1 = time.perf_counter()
            heuristic = HeuristicDefectDetector()
            fired = heuristic.fired(features)
            heuristic.predict(features, fired)
            heuristic.reasons(features, fired)
            t2 = time.perf_counter()
            model.predict(features)
            t3 = time.perf_counter()
            del features
            heur_report = score_defects(store)
            t4 = time.perf_counter()
            model_report = score_defects(store, model)
            t5 = time.perf_counter()
    rows = [
        ("features (one DuckDB query)", t1 - t0),
        ("heuristic rules + reasons", t2 - t1),
        ("**features + heuristic**", t2 - t0),
        ("learned model predict (1 thread)", t3 - t2),
        ("score_defects, heuristic only (incl. writing the table)", t4 - t3),
        ("score_defects with the learned model (incl. writing)", t5 - t4),
    ]
    print(f"| stage ({n:,} turns) | seconds | turns/s |\n|---|---:|---:|")
    for name, sec in rows:
        print(f"| {name} | {sec:.1f} | {n / sec:,.0f} |")
    print(heur_report.summary())
    print(model_report.summary())
    within = t2 - t0 <= 60
    budget = "within" if within else "OVER"
    print(f"features + heuristic: {t2 - t0:.1f} s for {n:,} turns ({budget} the 60 s budget)")
    return {
        "turns": n,
        "build_seconds": round(build_s, 1),
        "stages": [
            {"stage": name.strip("*"), "seconds": round(sec, 2), "turns_per_s": round(n / sec)}
            for name, sec in rows
        ],
        "heuristic_report": heur_report.summary(),
        "model_report": model_report.summary(),
        "features_and_heuristic_seconds": round(t2 - t0, 2),
        "within_60_s_budget": within,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", nargs="*", default=["train", "test", "test-clean", "test-real"])
    parser.add_argument("--speed", action="store_true", help="time scoring of a large replicated store")
    parser.add_argument("--turns", type=int, default=1_000_000, help="size of the --speed store")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.speed:
        write_results("defects-speed", speed(args), seconds=time.perf_counter() - started)
    else:
        write_results("defects", quality(args), seconds=time.perf_counter() - started)


if __name__ == "__main__":
    main()
