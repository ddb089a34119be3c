"""Rephrase detection benchmark: pairwise baselines vs the contextual MiniLM detector.

Train the model first (on the simulated *train* population, ``selflearn evaluate populations``)::

    selflearn evaluate build train test test-clean test-real --cache-dir bench/.cache/signals
    selflearn train rephrase --store bench/.cache/signals/train.duckdb --out models/rephrase
    python bench/rephrase.py --model models/rephrase

``train`` is built on first use when missing; the evaluation populations are scored only when
built (``test-real`` needs ``make asr-deps``). Figures go to ``docs/results/rephrase.json`` (to
``$SELFLEARN_RESULTS`` when set).

The baselines' thresholds are fitted on the same training population. Evaluation is on held-out
households and phrasings (``test``: noisy ASR, ``test-clean``: exact ASR, ``test-real``:
flite speech decoded by pocketsphinx). Metrics are over rephrase *links*: a predicted link is
right only if it points at the turn the user was actually reformulating.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import populations
from selflearn.core.store import Store
from selflearn.evaluate import write_results
from selflearn.signals.rephrase import (
    ContextualRephraseDetector,
    PairwiseRephraseBaseline,
    RephraseDecision,
    RephraseExample,
    link_metrics,
    session_examples,
)


def load(name: str) -> list[RephraseExample]:
    with Store(populations.evaluation_store(name), read_only=True) as store:
        return list(session_examples(store, with_labels=True))


def hard_negative_fp(examples: list[RephraseExample], decisions: list[RephraseDecision]) -> tuple[int, int]:
    """New requests made within 20 s of an earlier turn (no rephrase): how many got a link?"""
    n = fp = 0
    for e, d in zip(examples, decisions, strict=True):
        if e.label is None and e.candidates and e.candidates[0].gap_s < 20:
            n += 1
            fp += d.rephrase_of is not None
    return fp, n


def row(
    name: str, detector: str, examples: list[RephraseExample], decisions: list[RephraseDecision]
) -> tuple[str, dict[str, Any]]:
    """A table row and its figures."""
    m = link_metrics(examples, decisions)
    fp, n = hard_negative_fp(examples, decisions)
    line = (
        f"| {name} | {detector} | {m['precision']:.3f} | {m['recall']:.3f} | **{m['f1']:.3f}** | "
        f"{fp}/{n} ({fp / max(n, 1):.1%}) |"
    )
    figures = {
        "precision": round(float(m["precision"]), 4),
        "recall": round(float(m["recall"]), 4),
        "f1": round(float(m["f1"]), 4),
        "new_requests_under_20_s": n,
        "new_requests_under_20_s_linked": fp,
        "false_link_rate_under_20_s": round(fp / max(n, 1), 4),
    }
    return line, figures


def show(example: RephraseExample, decision: RephraseDecision) -> str:
    ctx = " | ".join(
        f"{c.turn_id.split('t')[-1]}: {c.text!r} [{c.status}, {c.gap_s:.0f}s]" for c in example.candidates
    )
    truth = example.label.split("t")[-1] if example.label else "none"
    got = decision.rephrase_of.split("t")[-1] if decision.rephrase_of else "none"
    return (
        f"- {example.text!r} -> predicted {got} (p={decision.probability:.2f}), truth {truth}; context: {ctx}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("models/rephrase"))
    parser.add_argument("--sets", nargs="*", default=["test-clean", "test", "test-real"])
    parser.add_argument(
        "--baseline-examples",
        type=int,
        default=4000,
        help="training turns (with earlier turns) the baselines' thresholds are fitted on",
    )
    parser.add_argument("--examples", type=int, default=6, help="failure examples to print per kind")
    args = parser.parse_args()
    started_all = time.perf_counter()

    train = [e for e in load("train") if e.candidates]
    random.Random(0).shuffle(train)
    train = train[: args.baseline_examples]
    baselines = {
        "pairwise lexical": PairwiseRephraseBaseline("lexical").fit(train),
        "pairwise MiniLM cosine": PairwiseRephraseBaseline("embedding").fit(train),
    }
    figures: dict[str, Any] = {"baselines": {}, "sets": {}, "skipped": []}
    for name, b in baselines.items():
        print(
            f"{name}: threshold {b.threshold}, max gap {b.max_gap_s:g} s "
            f"(fitted on {len(train):,} train turns)"
        )
        figures["baselines"][name] = {
            "threshold": b.threshold,
            "max_gap_s": b.max_gap_s,
            "fitted_on_turns": len(train),
        }
    model = ContextualRephraseDetector.load(args.model)
    print(f"contextual: {args.model} {model.train_report_}")
    figures["contextual"] = {
        "model": str(args.model),
        "train": asdict(model.train_report_) if model.train_report_ is not None else None,
    }
    # Every set is scored with a cold cache (its speed is measured): keep no predictions.
    model.cache_size = 0

    lines = [
        "| set | detector | precision | recall | F1 | new requests <20 s linked (FP) |",
        "|---|---|---|---|---|---|",
    ]
    failures: dict[str, list[str]] = {}
    for name in args.sets:
        if not populations.store_path(name).exists():
            print(f"(skipping {name}: run {populations.build_command(name)})")
            figures["skipped"].append(name)
            continue
        examples = load(name)
        detectors: dict[str, dict[str, Any]] = {}
        for label, b in baselines.items():
            line, detectors[label] = row(name, label, examples, b.predict(examples))
            lines.append(line)
        started = time.perf_counter()
        decisions = model.predict(examples)
        seconds = time.perf_counter() - started
        with_ctx = sum(1 for e in examples if e.candidates)
        line, detectors["contextual MiniLM"] = row(name, "contextual MiniLM", examples, decisions)
        lines.append(line)
        rephrases = sum(e.label is not None for e in examples)
        print(
            f"{name}: {len(examples):,} turns ({with_ctx:,} with earlier turns, "
            f"{rephrases:,} rephrases) scored in {seconds:.1f} s = "
            f"{len(examples) / seconds:,.0f} turns/s ({with_ctx / seconds:,.0f} model calls/s)"
        )
        figures["sets"][name] = {
            "turns": len(examples),
            "with_earlier_turns": with_ctx,
            "rephrases": rephrases,
            "contextual_seconds": round(seconds, 2),
            "contextual_turns_per_s": round(len(examples) / seconds, 1),
            "contextual_model_calls_per_s": round(with_ctx / seconds, 1),
            "detectors": detectors,
        }
        fps = [
            show(e, d)
            for e, d in zip(examples, decisions, strict=True)
            if d.rephrase_of is not None and d.rephrase_of != e.label
        ]
        fns = [
            show(e, d)
            for e, d in zip(examples, decisions, strict=True)
            if e.label is not None and d.rephrase_of != e.label
        ]
        rng = random.Random(1)
        failures[f"{name}: false links"] = rng.sample(fps, min(args.examples, len(fps)))
        failures[f"{name}: missed or wrong links"] = rng.sample(fns, min(args.examples, len(fns)))
    print()
    print("\n".join(lines))
    for kind, rows in failures.items():
        print(f"\n{kind}:")
        print("\n".join(rows))
    write_results("rephrase", figures, seconds=time.perf_counter() - started_all)


if __name__ == "__main__":
    main()
