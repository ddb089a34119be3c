"""Replay one population at several rewrite thresholds: what a rewriter wins at a given cost.

    python bench/experiments/online_sweep.py --rewriter bench/.cache/online/rewriter-train-360mix-k5 \\
        --population held-out-clean --arm personal --thresholds 0.177,0.2,0.23,0.26

Two rewriters compared at their own calibrated thresholds differ in two ways at once: how well
they rank, and where their calibration put the bar. This replays the same households (those of
``bench/online.py``: the populations of :mod:`selflearn.evaluate.populations`, ``ev*``, seed 41,
in arrival order) with the rewriter's threshold overridden, and prints per threshold the
rewrites, wins, losses, wrong actions and the defect reduction on the same turns. Compare two
rewriters at equal wrong actions, not at equal thresholds.

The script needs ``selflearn.evaluate`` (its populations), ``Rewriter.load`` and
``RewriterConfig(threshold=...)``. To sweep a rewriter saved by an older commit, run that
commit's own ``bench/online_sweep.py`` against that commit's code, e.g.::

    git worktree add /tmp/old dd36250
    cd /tmp/old && PYTHONPATH=src python bench/online_sweep.py \\
        --rewriter <this checkout>/bench/.cache/online/rewriter-base ...

Each threshold is a full replay (about 3-4 min for 40 households x 14 days on 2 cores).
Simulation truth is read for scoring only.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from selflearn import simulate
from selflearn.evaluate import population, score_arm
from selflearn.evaluate.cache import same_population
from selflearn.rewrite import Rewriter, RewriterConfig

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "online"
"""``bench/online.py``'s cache, where the population's control replay may be."""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rewriter", type=Path, required=True, help="a saved rewriter folder")
    parser.add_argument(
        "--population",
        choices=("seen", "held-out", "held-out-clean", "real"),
        default="held-out",
    )
    parser.add_argument("--arm", choices=("global", "personal"), default="global")
    parser.add_argument(
        "--thresholds", required=True, help="comma-separated decision thresholds, e.g. 0.15,0.177,0.2"
    )
    # The population options of bench/online.py.
    parser.add_argument("--replay-households", type=int, default=40)
    parser.add_argument("--replay-days", type=float, default=14)
    parser.add_argument("--real-households", type=int, default=40)
    parser.add_argument("--real-days", type=float, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--mode",
        choices=("on_failure", "before"),
        default="on_failure",
        help="consult the rewriter only when the NLU failed (default) or before the NLU on every request",
    )
    parser.add_argument(
        "--cache", type=Path, default=CACHE, help="bench/online.py's cache (for the control replay)"
    )
    args = parser.parse_args()
    if not (args.rewriter / "model.json").exists():
        parser.error(f"--rewriter {args.rewriter}: no model.json there (train one with bench/online.py)")
    try:
        thresholds = [float(x) for x in args.thresholds.split(",")]
    except ValueError:
        parser.error(f"--thresholds {args.thresholds!r}: expected comma-separated numbers")

    print(f"rewriter {args.rewriter}, population {args.population}, arm {args.arm}")
    print()
    control = args.cache / f"replay-{args.population}-control"
    real = args.population == "real"
    config = population(args.population).config(
        args.workers,
        args.real_households if real else args.replay_households,
        args.real_days if real else args.replay_days,
        args.mode,
    )
    if any(control.glob("truth-*.jsonl")) and same_population(control, config):
        c = score_arm(control)
        print(
            f"control replay (strict -> gazetteer): the gazetteer rescues {c.fallback_rescues:,} of "
            f"{c.strict_failures:,} turns strict matching fails ({100 * c.fallback_rescue_rate:.1f}%) "
            f"for {c.fallback_wrong:,} wrong actions "
            f"({c.fallback_rescues / max(c.fallback_wrong, 1):.1f} rescues per wrong action)"
        )
        print()
    print(
        "| threshold | rewrites | wins | losses | wrong actions (out of scope) | wins per wrong action "
        "| rescue rate | same turns: defect rate without -> with (reduction, 95 % interval over "
        "households) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for threshold in thresholds:
        rewriter = Rewriter.load(
            args.rewriter, RewriterConfig(personal=args.arm == "personal", threshold=threshold)
        )
        out = Path(tempfile.mkdtemp(prefix="selflearn-sweep-"))
        started = time.perf_counter()
        try:
            simulate(config, out, rewriter=rewriter)
            st = score_arm(out)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        low, high = st.reduction_interval()
        print(
            f"| {threshold:.3f} | {st.rewritten:,} | {st.wins:,} | {st.losses:,} "
            f"| {st.acted_wrong:,} ({st.acted_wrong_out_of_scope:,}) "
            f"| {st.wins / max(st.acted_wrong, 1):.1f} | {100 * st.rescue_rate:.1f}% "
            f"| {100 * st.defect_rate_without:.1f}% -> {100 * st.defect_rate:.1f}% "
            f"({-100 * st.defect_reduction:+.1f}%, {-100 * high:+.1f} to {-100 * low:+.1f}%) |",
            flush=True,
        )
        print(f"[sweep] threshold {threshold}: {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
