"""Failure point isolation benchmark: the rule baseline and the LightGBM model, trained on the
``train`` population and evaluated on held-out households and phrasings (``test``), the same
population with exact ASR (``test-clean``) and a real-ASR channel (``test-real``: flite speech +
pocketsphinx, unlike the noisy channel the model was trained on). See bench/signals_data.py.

    python bench/fpi.py                 # tables (markdown) on stdout
    python bench/fpi.py --speed-turns 1000000   # also time prediction on the test set replicated
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from selflearn.fpi.features import TEXT_NUMERIC, add_text_features, fpi_features
from selflearn.fpi.model import CLASSES, FpiModel, RuleBaseline, truth_labels
from selflearn.store import Store
from signals_data import store_path

EVAL = ("test", "test-clean", "test-real")


def _table(truth: np.ndarray, pred: np.ndarray) -> str:
    lines = ["| class | support | precision | recall | F1 |", "|---|---:|---:|---:|---:|"]
    f1s = []
    for c in CLASSES:
        tp = int(((pred == c) & (truth == c)).sum())
        n_pred, n_true = int((pred == c).sum()), int((truth == c).sum())
        p = tp / n_pred if n_pred else 0.0
        r = tp / n_true if n_true else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        if n_true:
            f1s.append(f)
        lines.append(f"| {c} | {n_true:,} | {p:.3f} | {r:.3f} | {f:.3f} |")
    acc = float((pred == truth).mean())
    lines.append(f"| **accuracy** | {len(truth):,} | | | **{acc:.3f}** (macro F1 {np.mean(f1s):.3f}) |")
    return "\n".join(lines)


def _confusion(truth: np.ndarray, pred: np.ndarray) -> str:
    head = "| truth \\ predicted | " + " | ".join(CLASSES) + " |"
    lines = [head, "|---|" + "---:|" * len(CLASSES)]
    for t in CLASSES:
        row = [int(((truth == t) & (pred == p)).sum()) for p in CLASSES]
        lines.append(f"| {t} | " + " | ".join(f"{v:,}" for v in row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--speed-turns", type=int, default=0, help="also time prediction on this many turns")
    args = parser.parse_args()

    started = time.perf_counter()
    with Store(store_path("train"), read_only=True) as store:
        t0 = time.perf_counter()
        train_feats = fpi_features(store)
        feat_s = time.perf_counter() - t0
        labels = truth_labels(store, train_feats.column("turn_id"))
    t0 = time.perf_counter()
    model = FpiModel().fit_features(train_feats, labels)
    fit_s = time.perf_counter() - t0
    print(
        f"train: {train_feats.num_rows:,} turns, features {feat_s:.1f} s "
        f"({train_feats.num_rows / feat_s:,.0f} turns/s), fit {fit_s:.1f} s; labels {model.label_counts_}\n"
    )
    baseline = RuleBaseline()
    for name in EVAL:
        with Store(store_path(name), read_only=True) as store:
            feats = fpi_features(store)
            truth = truth_labels(store, feats.column("turn_id"))
        for label, pred in (
            ("rule baseline", baseline.predict(feats)),
            ("FpiModel", model.predict(feats).labels),
        ):
            print(f"### {name}: {label}\n\n{_table(truth, pred)}\n\n{_confusion(truth, pred)}\n")

    if args.speed_turns:
        with Store(store_path("test"), read_only=True) as store:
            base = fpi_features(store)
        reps = -(-args.speed_turns // base.num_rows)
        big = pa.concat_tables([base] * reps).slice(0, args.speed_turns)
        query_only = big.select([c for c in big.column_names if c not in TEXT_NUMERIC])
        t0 = time.perf_counter()
        with_text = add_text_features(query_only)
        text_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        model.predict(with_text)
        pred_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        baseline.predict(with_text)
        rule_s = time.perf_counter() - t0
        n = big.num_rows
        print(
            f"speed on {n:,} turns (test features replicated): text comparisons {text_s:.1f} s "
            f"({n / text_s:,.0f} turns/s), LightGBM predict {pred_s:.1f} s ({n / pred_s:,.0f} turns/s), "
            f"rules {rule_s:.2f} s"
        )
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
