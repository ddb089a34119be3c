"""Defect detection benchmark: the heuristic vs the learned model, against simulation truth.

    python bench/signals_data.py train test test-clean      # once: build the cached populations
    python bench/defects.py                                   # quality table (markdown)
    python bench/defects.py --speed                           # 1,000,000-turn scoring speed

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

import numpy as np
import pyarrow as pa
from sklearn.metrics import average_precision_score, precision_recall_curve, precision_recall_fscore_support

from selflearn.core.store import Store
from selflearn.signals.defect import DefectModel, HeuristicDefectDetector, score_defects, weak_labels
from selflearn.signals.features import turn_features
from signals_data import evaluation_store, store_path

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


def quality(args: argparse.Namespace) -> None:
    train_path = store_path("train")
    started = time.perf_counter()
    with Store(train_path, read_only=True) as store:
        model = DefectModel.fit(store)
        decoupled = DefectModel.fit(store, decouple=True)
    print(f"trained {model.version} in {time.perf_counter() - started:.1f} s: {model.label_stats_}")
    heuristic = HeuristicDefectDetector()
    scorers: dict[str, Scorer] = {
        "heuristic": heuristic.predict,
        "learned (LightGBM, weak labels)": model.predict,
        "learned, decoupled (ablation)": decoupled.predict,
    }
    train, train_features = score(train_path, scorers)
    weak_label_report(train_features, train.y)
    thresholds = {name: best_threshold(train.y, p) for name, p in train.scores.items()}
    lines = [
        "| population | turns | defect rate | detector | PR-AUC | P@0.5 | R@0.5 | F1@0.5 "
        "| threshold (train best F1) | P | R | F1 |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in args.sets:
        path = evaluation_store(name)
        if not path.exists():
            print(f"({name}: not built, skipped; `python bench/signals_data.py {name}` builds it)")
            continue
        scored = train if name == "train" else score(path, scorers)[0]
        for detector, p in scored.scores.items():
            t = thresholds[detector]
            p5, r5, f5 = prf(scored.y, p, 0.5)
            pt, rt, ft = prf(scored.y, p, t)
            lines.append(
                f"| {name} | {len(scored.y):,} | {scored.y.mean():.1%} | {detector} "
                f"| **{average_precision_score(scored.y, p):.3f}** | {p5:.3f} | {r5:.3f} | {f5:.3f} "
                f"| {t:.2f} | {pt:.3f} | {rt:.3f} | **{ft:.3f}** |"
            )
    print("\n".join(lines))


def weak_label_report(features: pa.Table, y: np.ndarray) -> None:
    """How many train turns each weak-label rule labels, and how often truth agrees."""
    labels = weak_labels(features)
    print("| weak label | train turns | agrees with truth |\n|---|---:|---:|")
    for source in sorted(labels.counts()):
        hit = labels.source == source
        agree = float(np.mean(labels.label[hit] == y[hit]))
        print(f"| {source} | {int(hit.sum()):,} | {agree:.1%} |")
    print(f"| (unlabelled) | {int((~labels.labelled).sum()):,} | |")


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


def speed(args: argparse.Namespace) -> None:
    with Store(store_path("train"), read_only=True) as store:
        model = DefectModel.fit(store)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "large.duckdb"
        started = time.perf_counter()
        n = build_large(path, store_path("test"), args.turns)
        print(f"built a {n:,}-turn store in {time.perf_counter() - started:.1f} s")
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
    budget = "within" if t2 - t0 <= 60 else "OVER"
    print(f"features + heuristic: {t2 - t0:.1f} s for {n:,} turns ({budget} the 60 s budget)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", nargs="*", default=["train", "test", "test-clean", "test-real"])
    parser.add_argument("--speed", action="store_true", help="time scoring of a large replicated store")
    parser.add_argument("--turns", type=int, default=1_000_000, help="size of the --speed store")
    args = parser.parse_args()
    if args.speed:
        speed(args)
    else:
        quality(args)


if __name__ == "__main__":
    main()
