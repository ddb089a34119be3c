"""Rewrite-mining benchmark: mine on simulated weeks, replay later weeks with and without the table.

    python bench/mining.py [--rephrase-model models/rephrase] [--k 5] [--cache DIR]
    python bench/mining.py --mine-store STORE    # mine another store (e.g. a small one to try it)

Populations are the named ones of :mod:`selflearn.evaluate.populations` (``selflearn evaluate
populations`` lists them); each is simulated on first use and cached until the simulator or the
ASR channel changes.

1. The mining population ``mine`` (240 homes x 14 days, households ``mn*``, train-side
   phrasings, noisy ASR; cached as ``bench/.cache/signals/mine.duckdb``, about 15 minutes to
   build) gets its friction signals (:mod:`selflearn.evaluate.signals`, once, kept in the
   store): rephrase links from the contextual model when ``--rephrase-model`` exists (else the
   pairwise lexical baseline), defects from the heuristic. Simulation truth is never read.
2. ``RewriteMiner`` (DuckDB engine) builds the rewrite table; its wall time is reported.
3. Two later weeks on *new* households (``rp*``, another seed) are replayed twice each
   (:class:`selflearn.evaluate.ab.Replay`, cached under ``--cache``), once as Home Assistant
   ships (strict -> gazetteer, arm ``control``) and once with the table in front of it (arm
   ``table``, labelled ``rewrites`` below):
   ``mining-seen``: train-side phrasings (requests like the ones mined, said in other homes);
   ``mining-held-out``: the held-out 20 % of phrasings plus SLURP (phrasings never mined).
4. From the simulation truth: defect rates per arm; on rewritten turns, wins (would have failed,
   worked), losses (would have worked, failed), win/loss, defect-rate reduction, rescue rate (wins
   over all turns that would have failed) and false-rewrite rate (losses over rewritten turns).

The figures are also written as JSON to ``docs/results/mining.json`` (or ``$SELFLEARN_RESULTS``).
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from selflearn import Store
from selflearn.evaluate import POPULATIONS, ArmStats, Replay, write_results
from selflearn.evaluate.ab import arm_row, pct
from selflearn.evaluate.cache import population_store
from selflearn.evaluate.signals import score_signals, signals_are_scored
from selflearn.mining import DuckDbEngine, MiningConfig, RewriteMiner
from selflearn.rewrite import RewriteTable

BENCH = Path(__file__).resolve().parent
CACHE = BENCH / ".cache" / "mining"
MINE_STORE = BENCH / ".cache" / "signals" / "mine.duckdb"
REPLAYS = (("seen", "mining-seen"), ("held-out", "mining-held-out"))
"""(name in the tables, population replayed)."""


def signals(path: Path, rephrase_model: Path | None) -> str:
    """Score the mining store's friction signals once (cached in the store)."""
    with Store(path) as store:
        if signals_are_scored(store):
            return "cached"
        return score_signals(store, rephrase_model)


def main() -> None:
    started_all = time.perf_counter()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rephrase-model", type=Path, default=Path("models/rephrase"))
    parser.add_argument("--k", type=int, default=5, help="distinct users a rewrite needs")
    parser.add_argument("--min-households", type=int, default=2)
    parser.add_argument("--margin", type=float, default=0.3)
    parser.add_argument("--replay-households", type=int, default=60)
    parser.add_argument("--replay-days", type=float, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rebuild", action="store_true", help="re-simulate the control arms too")
    parser.add_argument("--examples", type=int, default=8)
    parser.add_argument(
        "--cache",
        type=Path,
        default=CACHE,
        help="folder of the table and the replays (default bench/.cache/mining)",
    )
    parser.add_argument(
        "--mine-store",
        type=Path,
        default=None,
        help="store to mine (default: the `mine` population, cached as bench/.cache/signals/mine.duckdb)",
    )
    args = parser.parse_args()
    if args.mine_store is not None and not args.mine_store.exists():
        parser.error(f"--mine-store {args.mine_store} does not exist")
    args.cache.mkdir(parents=True, exist_ok=True)

    if args.mine_store is None:
        mine_store = population_store(MINE_STORE, POPULATIONS["mine"].config(args.workers))
    else:
        mine_store = args.mine_store
    scored_with = signals(mine_store, args.rephrase_model)
    print(f"mining store: {mine_store} (signals: {scored_with})")
    config = MiningConfig(min_users=args.k, min_households=args.min_households, margin=args.margin)
    with Store(mine_store, read_only=True) as store:
        started = time.perf_counter()
        table = RewriteMiner(config).fit(DuckDbEngine(store)).mined()
        seconds = time.perf_counter() - started
    folder = table.save(args.cache / f"rewrites-k{args.k}")
    rep = table.metadata["report"]
    print(
        f"mined {rep['turns']:,} turns ({rep['users']:,} users, {rep['households']:,} homes) "
        f"in {seconds:.1f} s: {rep['states']:,} patterns, {rep['components']:,} components "
        f"(largest {rep['largest_component']:,}), {rep['rules']:,} active rewrites "
        f"({rep['demoted']} demoted) -> {folder}"
    )
    print("stage seconds:", rep["seconds"])
    print("rejected:", rep["rejected"])
    rows = RewriteTable.load(folder).rows()
    for row in random.Random(0).sample(rows, min(12, len(rows))):
        print(
            f"  {row['source']!r} -> {row['target']!r} (p {row['p_source']:.2f} -> "
            f"{row['p_target']:.2f}, {row['users']} users, {row['households']} homes)"
        )

    lines = [
        "| replay | arm | turns | defect rate | first attempts failed (in scope) | goals failed (in scope) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    rw_lines = [
        "| replay | rewritten turns (share) | wins | losses | win/loss "
        "| defect rate of rewritten turns: without -> with (reduction) | rescue rate | false-rewrite rate |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    notes: list[str] = []
    replays: dict[str, Any] = {}
    for name, population in REPLAYS:
        replay = Replay(
            POPULATIONS[population],
            args.cache,
            workers=args.workers,
            households=args.replay_households,
            days=args.replay_days,
            rebuild=args.rebuild,
        )
        stats: dict[str, ArmStats] = {}
        for arm, label, learner in (("control", "control", None), ("table", "rewrites", folder)):
            stats[arm] = st = replay.score([arm], learner)[arm]
            lines.append(arm_row(name, label, st))
        s, c = stats["table"], stats["control"]
        n_rw = max(s.rewritten, 1)
        rw_lines.append(
            f"| {name} | {s.rewritten:,} ({pct(s.rewritten / s.turns)}) | {s.wins:,} | {s.losses:,} "
            f"| {s.win_loss:.1f} | {pct(s.defects_without / n_rw)} -> {pct(s.defects_with / n_rw)} "
            f"({pct(s.reduction_on_rewritten)}) | {pct(s.rescue_rate)} | {pct(s.false_rewrite_rate)} |"
        )
        notes.append(
            f"{name}: same turns without -> with the table: defect rate {pct(s.defect_rate_without)} -> "
            f"{pct(s.defect_rate)} ({pct(1 - s.defect_rate / s.defect_rate_without)} relative)"
        )
        notes.append(
            f"{name}: separate arms (users diverge after the first rewrite): defect rate "
            f"{pct(c.defect_rate)} -> {pct(s.defect_rate)} "
            f"({pct(1 - s.defect_rate / c.defect_rate)} relative), in-scope goals failed "
            f"{pct(c.goal_failure_rate)} -> {pct(s.goal_failure_rate)}"
        )
        for kind, items in (("win", s.win_examples), ("loss", s.loss_examples)):
            for original, rewritten, intent in random.Random(1).sample(items, min(args.examples, len(items))):
                notes.append(f"  {kind}: {original!r} -> {rewritten!r} ({intent})")
        replays[name] = {
            "population": population,
            "households": args.replay_households,
            "days": args.replay_days,
            "arms": {arm: st.summary() for arm, st in stats.items()},
        }
    print()
    print("\n".join(lines))
    print()
    print("\n".join(rw_lines))
    print()
    print("\n".join(notes))
    counts = Counter(r["status"] for r in rows)
    sensitive = sum(r["sensitive"] and r["status"] == "active" for r in rows)
    print(f"\ntable: {dict(counts)}; sensitive active: {sensitive}")

    figures = {
        "mining_store": {
            "population": "mine" if args.mine_store is None else None,
            "path": str(mine_store),
            "signals": scored_with,
        },
        "config": {"min_users": args.k, "min_households": args.min_households, "margin": args.margin},
        "table": {
            "version": table.version,
            "turns": rep["turns"],
            "users": rep["users"],
            "households": rep["households"],
            "states": rep["states"],
            "components": rep["components"],
            "largest_component": rep["largest_component"],
            "rules": rep["rules"],
            "demoted": rep["demoted"],
            "rejected": rep["rejected"],
            "seconds": round(seconds, 2),
            "stage_seconds": rep["seconds"],
            "status": dict(counts),
            "sensitive_active": sensitive,
        },
        "replays": replays,
    }
    write_results("mining", figures, seconds=time.perf_counter() - started_all)


if __name__ == "__main__":
    main()
