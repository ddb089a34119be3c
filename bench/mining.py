"""Rewrite-mining benchmark: mine on simulated weeks, replay later weeks with and without the table.

    python bench/signals_data.py mine          # 240 homes x 14 days, train phrasings (cached)
    python bench/mining.py [--rephrase-model models/rephrase] [--k 5]

1. The mining population (households ``mn*``, train-side phrasings, noisy ASR) gets its friction
   signals: rephrase links from the contextual model when ``--rephrase-model`` exists (else the
   pairwise lexical baseline), defects from the heuristic. Simulation truth is never read.
2. ``mine`` (DuckDB engine) builds the rewrite table; its wall time is reported.
3. Two later weeks on *new* households (``rp*``, another seed) are simulated twice each, once as
   Home Assistant ships (strict -> gazetteer) and once with the table in front of it:
   ``seen``: train-side phrasings (requests like the ones mined, said in other homes);
   ``held-out``: the held-out 20 % of phrasings plus SLURP (phrasings never mined).
4. From the simulation truth: defect rates per arm; on rewritten turns, wins (would have failed,
   worked), losses (would have worked, failed), win/loss, defect-rate reduction, rescue rate (wins
   over all turns that would have failed) and false-rewrite rate (losses over rewritten turns).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from selflearn import AssistantConfig, SimulationConfig, Store, simulate
from selflearn.evaluate.replay import ArmStats, score_arm
from selflearn.mining import DuckDbEngine, MiningConfig, mine
from selflearn.rewrite import RewriteTable
from selflearn.signals.defect import score_defects
from selflearn.signals.rephrase import ContextualRephraseDetector, PairwiseRephraseBaseline, score_rephrases
from selflearn.simulation.corpora import find_data_dir
from signals_data import replay_is_current, store_path

CACHE = Path(__file__).resolve().parent / ".cache" / "mining"


def signals(path: Path, rephrase_model: Path | None) -> str:
    """Score the mining store's friction signals once (cached in the store)."""
    with Store(path) as store:
        scored = store.query(
            "SELECT (SELECT count(*) FROM defects) AS d, (SELECT count(*) FROM rephrases) AS r"
        )
        if scored.column("d")[0].as_py() == store.count("turns") and scored.column("r")[0].as_py():
            return "cached"
        started = time.perf_counter()
        if rephrase_model is not None and rephrase_model.exists():
            detector: Any = ContextualRephraseDetector.load(rephrase_model)
            name = f"contextual {rephrase_model}"
        else:
            detector = PairwiseRephraseBaseline("lexical")
            name = "pairwise lexical"
        score_rephrases(store, detector)
        score_defects(store)
        return f"{name}, {time.perf_counter() - started:.0f} s"


def replay(name: str, split: str, corpora: tuple[str, ...], table: Path | None, args: Any) -> Path:
    arm = "control" if table is None else "rewrites"
    out = CACHE / f"replay-{name}-{arm}"
    config = SimulationConfig(
        households=args.replay_households,
        days=args.replay_days,
        seed=31,
        household_prefix="rp",
        phrasing_split=split,  # type: ignore[arg-type]
        corpora=corpora,
        assistant=AssistantConfig(asr="noisy"),
        workers=args.workers,
    )
    if not args.rebuild and table is None and replay_is_current(out, config):
        return out
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result = simulate(config, out, rewriter=RewriteTable.load(table) if table else None)
    print(
        f"[mining] replay {name}/{arm}: {result.turns:,} turns in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    return out


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def main() -> None:
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
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)

    mine_store = store_path("mine", args.workers)
    print(f"mining store: {mine_store} (signals: {signals(mine_store, args.rephrase_model)})")
    config = MiningConfig(min_users=args.k, min_households=args.min_households, margin=args.margin)
    with Store(mine_store, read_only=True) as store:
        started = time.perf_counter()
        table = mine(DuckDbEngine(store), config)
        seconds = time.perf_counter() - started
    folder = table.save(CACHE / f"rewrites-k{args.k}")
    rep = table.metadata["report"]
    print(
        f"mined {rep['turns']:,} turns ({rep['users']:,} users, {rep['households']:,} homes) "
        f"in {seconds:.1f} s: {rep['states']:,} patterns, {rep['components']:,} components "
        f"(largest {rep['largest_component']:,}), {rep['rules']:,} active rewrites "
        f"({rep['demoted']} demoted) -> {folder}"
    )
    print("stage seconds:", rep["seconds"])
    print("rejected:", rep["rejected"])
    rows = RewriteTable.load(folder).table.to_pylist()
    for row in random.Random(0).sample(rows, min(12, len(rows))):
        print(
            f"  {row['source']!r} -> {row['target']!r} (p {row['p_source']:.2f} -> "
            f"{row['p_target']:.2f}, {row['users']} users, {row['households']} homes)"
        )

    have_data = find_data_dir(None) is not None
    seen_corpora = ("hwu64", "ha_tests") if have_data else ()
    held_corpora = ("slurp", "hwu64", "ha_tests") if have_data else ()
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
    for name, split, corpora in (("seen", "train", seen_corpora), ("held-out", "test", held_corpora)):
        stats: dict[str, ArmStats] = {}
        for arm, tab in (("control", None), ("rewrites", folder)):
            stats[arm] = st = score_arm(replay(name, split, corpora, tab, args))
            lines.append(
                f"| {name} | {arm} | {st.turns:,} | {pct(st.defect_rate)} | "
                f"{pct(st.first_attempt_defect_rate)} | {pct(st.goal_failure_rate)} |"
            )
        s, c = stats["rewrites"], stats["control"]
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
    print()
    print("\n".join(lines))
    print()
    print("\n".join(rw_lines))
    print()
    print("\n".join(notes))
    counts = Counter(r["status"] for r in rows)
    sensitive = sum(r["sensitive"] and r["status"] == "active" for r in rows)
    print(f"\ntable: {dict(counts)}; sensitive active: {sensitive}")


if __name__ == "__main__":
    main()
