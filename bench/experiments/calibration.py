"""How stable is the rewriter's calibrated threshold? Point estimate vs bagged median.

    python bench/experiments/calibration.py --store bench/.cache/online/train-240.duckdb
    python bench/experiments/calibration.py --scores bench/.cache/calibration/scores.npz  # reuse them
    python bench/experiments/calibration.py --scores ... --draws 0 --target-ratio 12  # one threshold

1. The rewriter is trained on the store as ``bench/online.py`` trains it (k = 5; the mined table
   it serves first does not change the calibration and is left out), then the training requests
   are replayed again as training replays them and scored by the cross-fitted ranker members
   (:func:`selflearn.rewrite.fit.cross_fitted_scores`): the very scores its calibration saw
   (decision score, estimated outcome, household of every request a held-out ranker was asked
   about, behind the NLU), kept in ``--scores``.
2. ``--draws`` times, half of the training households are drawn at random (a different training
   population of the same kind), and the threshold is chosen on their requests twice: by
   :func:`~selflearn.rewrite.ranker.calibrate` (the lowest threshold whose estimated wins per loss
   reach the target) and by :func:`~selflearn.rewrite.ranker.calibrate_bagged` (the median of
   that choice over bootstrap resamples of the households).
3. Reported: the spread of each over the draws. A threshold that jumps between draws of the
   same population is chosen by noise.

The ranker is not retrained per draw (that would take minutes each): this isolates the choice of
threshold on a given score curve, which is what bagging changes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from selflearn import Store
from selflearn.rewrite import DEFAULT_TARGET_RATIO, FitConfig, KnowledgeConfig, Rewriter
from selflearn.rewrite.fit import cross_fitted_scores, replay_queries
from selflearn.rewrite.logs import read_homes, read_log
from selflearn.rewrite.ranker import calibrate, calibrate_bagged

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "calibration"


def calibration_scores(store_path: Path, k: int) -> dict[str, np.ndarray]:
    """Fit the rewriter and recompute the scores its calibration saw (behind the NLU)."""
    config = FitConfig(knowledge=KnowledgeConfig(min_users=k))
    with Store(store_path, read_only=True) as store:
        rewriter = Rewriter(training=config).fit(store)
        turns, homes = read_log(store, config.knowledge.defect_threshold), read_homes(store)
    ranker, embedder = rewriter.ranker_, rewriter.embedder
    assert ranker is not None and embedder is not None  # set by fit
    scored = cross_fitted_scores(ranker, replay_queries(turns, homes, embedder, ranker.intents, config))
    return {
        "score": scored.score,
        "outcome": scored.outcome,
        "groups": np.asarray(scored.household, dtype=str),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", type=Path, default=Path("bench/.cache/online/train-240.duckdb"))
    parser.add_argument("--scores", type=Path, default=CACHE / "scores.npz")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument(
        "--draws",
        type=int,
        default=30,
        help="half-samples of the households (0: only the choice on all of them)",
    )
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples per bagged choice")
    parser.add_argument("--target-ratio", type=float, default=DEFAULT_TARGET_RATIO)
    args = parser.parse_args()

    started = time.perf_counter()
    if args.scores.exists():
        loaded = np.load(args.scores)
        data = {name: loaded[name] for name in ("score", "outcome", "groups")}
    else:
        if not args.store.exists():
            sys.exit(f"{args.store} does not exist: build it as bench/online.py does, or pass --scores")
        data = calibration_scores(args.store, args.k)
        args.scores.parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.scores, score=data["score"], outcome=data["outcome"], groups=data["groups"])
    score, outcome, groups = data["score"], data["outcome"], data["groups"]
    households = np.unique(groups)
    full_point = calibrate(score, outcome, args.target_ratio)
    full_bag = calibrate_bagged(score, outcome, groups, args.target_ratio, resamples=args.resamples)
    print(
        f"{len(score):,} scored requests from {len(households)} households; all of them: "
        f"point {full_point.threshold:.3f}, bagged {full_bag.chosen.threshold:.3f} "
        f"(resampled p10-p90 {full_bag.low:.3f}-{full_bag.high:.3f})\n"
    )
    if args.draws < 1:  # the choice on all households only
        print(f"(total {time.perf_counter() - started:.0f} s)")
        return
    rng = np.random.default_rng(0)
    points, bags = [], []
    for draw in range(args.draws):
        half = rng.choice(households, len(households) // 2, replace=False)
        mask = np.isin(groups, half)
        points.append(calibrate(score[mask], outcome[mask], args.target_ratio).threshold)
        bagged = calibrate_bagged(
            score[mask], outcome[mask], groups[mask], args.target_ratio, resamples=args.resamples, seed=draw
        )
        bags.append(bagged.chosen.threshold)
    print(f"threshold over {args.draws} draws of half the households (target {args.target_ratio:g}):\n")
    print("| choice | mean | std | min | max | p10-p90 |")
    print("|---|---:|---:|---:|---:|---|")
    for name, values in (("point (calibrate)", points), ("bagged median (calibrate_bagged)", bags)):
        v = np.array(values)
        print(
            f"| {name} | {v.mean():.3f} | {v.std():.3f} | {v.min():.3f} | {v.max():.3f} | "
            f"{np.quantile(v, 0.1):.3f}-{np.quantile(v, 0.9):.3f} |"
        )
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
