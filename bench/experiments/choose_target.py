"""Which calibration target should ``selflearn train rewriter`` default to?

    D=bench/.cache/online
    python bench/experiments/choose_target.py \\
        --scores bench/.cache/calibration/scores-360mix-xfit.npz --store $D/train-360mix.duckdb \\
        --dev exact=$D/ceil-dev-slurp-clean.jsonl:$D/dev-slurp-clean-control \\
        --dev noisy=$D/ceil-dev-slurp.jsonl:$D/dev-slurp-control

(docs/benchmarks.md says how each input is made.)

The target (estimated wins per estimated loss on the training logs) is a product choice: a lower
one rewrites more failed requests, and more of those rewrites are wrong. This script makes the
choice by a stated rule, on a *development* population, never on the test populations of
``bench/online.py``:

1. The threshold each target gives is calibrated as training does
   (:func:`~selflearn.rewrite.ranker.calibrate_bagged` over the cross-fitted calibration scores
   ``--scores``, written by ``bench/experiments/calibration.py``).
2. Each ``--dev`` population is a control replay (no rewriter) and the ``--dump`` file of
   ``bench/experiments/rewrite_ceiling.py`` over it: the ranked layer's first decision on every
   failed turn (global layer), judged right or wrong from simulation truth (evaluation only). Its
   turns are split into phrasings the training logs contain verbatim and the rest.
3. For each target and subset: the right and wrong picks the threshold lets through, the share of
   the subset's failed turns they rescue, and right per wrong. Beside them, from the same control
   replay, what Home Assistant's gazetteer fallback does on the subset: rescues per wrong action.
4. **The rule:** the lowest target at which the ranked layer is more precise (right per wrong)
   than the gazetteer on *every* subset. A rewriter less precise than the fallback Home Assistant
   already ships would turn more of the stack's "sorry" answers into wrong actions than that
   fallback does; within that bound, the most rescues.

First decisions, not a replay: no retries, no learning, no losses on working requests (the
rewriter behind the NLU never sees those), and the sensitive-intent margin is not applied.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from selflearn.evaluate.replay import read_records
from selflearn.rewrite.ranker import calibrate_bagged


@dataclass
class Subset:
    """One development subset: its dumped first decisions and the gazetteer's record."""

    name: str
    score: np.ndarray
    right: np.ndarray
    failed: int
    """Failed turns of the subset (the dump's rows)."""
    gazetteer_rescues: int
    gazetteer_wrong: int
    strict_failed: int


def logged_texts(store: Path) -> set[str]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return {r[0].lower() for r in con.execute("SELECT text FROM turns").fetchall() if r[0]}
    finally:
        con.close()


def subsets(label: str, dump: Path, replay: Path, texts: set[str]) -> list[Subset]:
    """Split one development population into the phrasings the logs had and the rest."""
    truth, turns = read_records(replay, "truth"), read_records(replay, "turns")
    if not truth or not turns:
        sys.exit(f"{replay}: no truth-*.jsonl / turns-*.jsonl (a control replay of bench/online.py?)")
    with dump.open() as f:
        rows = [json.loads(line) for line in f if line.strip()]
    missing = [r["turn_id"] for r in rows if r["turn_id"] not in truth]
    if missing:
        sys.exit(f"{dump}: {len(missing)} rows (first {missing[0]!r}) are not turns of {replay}")

    def seen(turn_id: str) -> bool:
        return str(truth[turn_id]["intended_text"]).lower() in texts

    gazetteer: Counter[tuple[bool, str]] = Counter()
    for turn_id, t in truth.items():
        if t["action"] == "background":
            continue
        row = turns.get(turn_id, {})
        by_gazetteer = (row.get("nlu") or {}).get("matcher") == "gazetteer"
        acted = (row.get("result") or {}).get("status") == "success"
        key = seen(turn_id)
        gazetteer[key, "defect"] += bool(t["defect"])
        gazetteer[key, "rescue"] += by_gazetteer and not t["defect"]
        gazetteer[key, "wrong"] += by_gazetteer and bool(t["defect"]) and acted
    out = []
    for key, name in ((False, "never had"), (True, "had")):
        part = [r for r in rows if seen(r["turn_id"]) == key]
        scored = [r for r in part if r["candidates"] and (r["judgeable"] or r["kind"] == "oos")]
        out.append(
            Subset(
                name=f"{label}, phrasings the logs {name}",
                score=np.array([r["score"] for r in scored], dtype=np.float64),
                right=np.array([bool(r["pick_right"]) for r in scored]),
                failed=len(part),
                gazetteer_rescues=gazetteer[key, "rescue"],
                gazetteer_wrong=gazetteer[key, "wrong"],
                strict_failed=gazetteer[key, "defect"] + gazetteer[key, "rescue"],
            )
        )
    return out


def per_wrong(right: int, wrong: int) -> float:
    return right / wrong if wrong else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scores", type=Path, required=True, help="calibration scores (bench/experiments/calibration.py)"
    )
    parser.add_argument("--store", type=Path, required=True, help="the training store the scores came from")
    parser.add_argument(
        "--dev",
        action="append",
        required=True,
        metavar="LABEL=DUMP:CONTROL_REPLAY",
        help="a development population: a bench/experiments/rewrite_ceiling.py --dump file and "
        "its control replay",
    )
    parser.add_argument("--targets", default="20,15,12,10", help="comma-separated targets to compare")
    args = parser.parse_args()

    loaded = np.load(args.scores)
    score, outcome, groups = loaded["score"], loaded["outcome"], loaded["groups"]
    targets = sorted({float(t) for t in args.targets.split(",") if t}, reverse=True)
    texts = logged_texts(args.store)
    parts: list[Subset] = []
    for spec in args.dev:
        label, sep, paths = spec.partition("=")
        dump, sep2, replay = paths.partition(":")
        if not (sep and sep2):
            parser.error(f"--dev {spec!r}: expected LABEL=DUMP:CONTROL_REPLAY")
        parts += subsets(label, Path(dump), Path(replay), texts)

    print("| target ratio | threshold (resampled p10-p90) | " + " | ".join(p.name for p in parts) + " |")
    print("|---:|---|" + "---|" * len(parts))
    passing: list[float] = []
    for target in targets:
        bag = calibrate_bagged(score, outcome, groups, target)
        threshold = bag.chosen.threshold
        cells, beats = [], True
        for p in parts:
            on = p.score >= threshold
            right, wrong = int((on & p.right).sum()), int((on & ~p.right).sum())
            precision = per_wrong(right, wrong)
            beats &= precision > per_wrong(p.gazetteer_rescues, p.gazetteer_wrong)
            cells.append(f"{right:,} / {wrong:,} ({right / max(p.failed, 1):.1%}, {precision:.2f})")
        if beats:
            passing.append(target)
        print(f"| {target:g} | {threshold:.3f} ({bag.low:.3f}-{bag.high:.3f}) | " + " | ".join(cells) + " |")
    gaz = [
        f"{p.gazetteer_rescues:,} / {p.gazetteer_wrong:,} "
        f"({p.gazetteer_rescues / max(p.strict_failed, 1):.1%}, "
        f"{per_wrong(p.gazetteer_rescues, p.gazetteer_wrong):.2f})"
        for p in parts
    ]
    print("| gazetteer | | " + " | ".join(gaz) + " |")
    print(
        "\ncells: right / wrong picks above the threshold (share of the subset's failed turns, right per "
        "wrong); gazetteer: rescues / wrong actions (share of what strict matching fails, per wrong)"
    )
    if passing:
        print(f"\nchosen: target {min(passing):g} (more precise than the gazetteer on every subset)")
    else:
        print("\nno target is more precise than the gazetteer on every subset")


if __name__ == "__main__":
    main()
