"""Online rewriting benchmark: train the rewriter on simulated logs, replay new households as an A/B.

    python bench/online.py                       # everything below, cached where possible
    python bench/online.py --real                # also the real-ASR population (needs `make asr-deps`)

1. **Training logs** (cached): households ``mn*`` (seed 21), train-side phrasings (built-in
   templates and colloquial variants, HWU64 and Home Assistant's tests when ``../shared/data`` is
   there), noisy ASR. Friction signals as a user would compute them (`selflearn signals`: pairwise
   lexical rephrase links unless ``--rephrase-model``, heuristic defects). Simulation truth is
   never read by anything that learns.
2. **Training**: the rewrite table (`selflearn mine`, k users) and the online rewriter
   (`selflearn train rewriter`: global knowledge, ranker, calibrated threshold) from those logs.
3. **Replay** in arrival order on *new* households (other prefix and seed), each population
   simulated once per arm with the same seed: ``control`` (Home Assistant as it ships: strict ->
   gazetteer), ``global`` (table + global retrieval and ranking, no personal layer) and
   ``personal`` (global + personal layer, learning online from the household's own logged turns).
   Populations: ``seen`` (train-side phrasings said by new people in new homes), ``held-out``
   (the held-out 20 % of phrasings plus SLURP: phrasings no training log contains) and, with
   ``--real``, ``real`` (held-out phrasings through flite speech decoded by pocketsphinx);
   ``--populations ...,held-out-clean`` adds the held-out phrasings with exact ASR (a diagnostic:
   phrasing gaps without recognition damage).
4. **Scoring** from simulation truth (evaluation only): per arm the defect rate, first-attempt and
   goal failure rates; for rewritten turns wins (would have failed without the rewrite, worked
   with it) and losses (the reverse), by layer; rescue rate (wins over all turns that would have
   failed) and false-rewrite rate (losses over rewrites), and examples.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from selflearn import AssistantConfig, SimulationConfig, Store, simulate
from selflearn.evaluate.replay import ArmStats, score_arm
from selflearn.mining import DuckDbEngine, MiningConfig, mine
from selflearn.rewrite import (
    DEFAULT_TARGET_RATIO,
    FitConfig,
    KnowledgeConfig,
    Rewriter,
    RewriterConfig,
    fit_rewriter,
)
from selflearn.signals.defect import score_defects
from selflearn.signals.rephrase import ContextualRephraseDetector, PairwiseRephraseBaseline, score_rephrases
from selflearn.simulation.corpora import find_data_dir
from signals_data import cache_is_current, replay_is_current, simulate_to_store, stamp_cache

CACHE = Path(__file__).resolve().parent / ".cache" / "online"


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def training_store(args: Any) -> Path:
    """Simulate, ingest and score the training logs once (or use ``--train-store``)."""
    if args.train_store is not None:
        return Path(args.train_store)
    path = CACHE / f"train-{args.train_households}x{args.train_days:g}.duckdb"
    if not args.rebuild_train and cache_is_current(path, "noisy"):
        return path
    path.unlink(missing_ok=True)
    have = find_data_dir(None) is not None
    config = SimulationConfig(
        households=args.train_households,
        days=args.train_days,
        seed=21,
        household_prefix="mn",
        phrasing_split="train",
        corpora=("hwu64", "ha_tests") if have else (),
        assistant=AssistantConfig(asr="noisy"),
        workers=args.workers,
    )
    started = time.perf_counter()

    def signals(store: Store) -> None:
        if args.rephrase_model is not None and args.rephrase_model.exists():
            detector: Any = ContextualRephraseDetector.load(args.rephrase_model)
        else:
            detector = PairwiseRephraseBaseline("lexical")
        score_rephrases(store, detector)
        score_defects(store)

    result, report = simulate_to_store(config, path, signals)
    stamp_cache(path, "noisy")
    print(
        f"[online] training logs: {result.turns:,} turns, {report.summary()} "
        f"({time.perf_counter() - started:.0f} s)",
        file=sys.stderr,
    )
    return path


def train(store_path: Path, args: Any) -> Path:
    """Mine the table and fit the rewriter; returns the rewriter folder."""
    suffix = ("" if args.decision == "product" else f"-{args.decision}") + (
        "-single" if args.ranker == "single" else ""
    )
    if args.target_ratio != DEFAULT_TARGET_RATIO:
        suffix += f"-t{args.target_ratio:g}"
    folder = CACHE / f"rewriter-{store_path.stem}-k{args.k}{suffix}"
    report = folder / "fit-report.json"
    if (folder / "rewriter.json").exists() and report.exists() and not args.retrain:
        calibration = json.loads(report.read_text())["calibration"]
        if all(c.get("target_ratio") == args.target_ratio for c in calibration.values()):
            return folder
        print(f"[online] {folder.name} was calibrated for another target: refitting", file=sys.stderr)
    with Store(store_path, read_only=True) as store:
        started = time.perf_counter()
        table = mine(DuckDbEngine(store), MiningConfig(min_users=args.k))
        mined = time.perf_counter() - started
        started = time.perf_counter()
        config = FitConfig(
            knowledge=KnowledgeConfig(min_users=args.k),
            target_ratio=args.target_ratio,
            decision=args.decision,
            cross_fitted=args.ranker == "cross-fitted",
        )
        rewriter, report = fit_rewriter(store, config, table=table)
        fitted = time.perf_counter() - started
    rewriter.save(folder)
    (folder / "fit-report.json").write_text(json.dumps(asdict(report), indent=2, default=str) + "\n")
    print(
        f"[online] mined {len(table)} active rewrites in {mined:.1f} s; rewriter fitted in {fitted:.0f} s",
        file=sys.stderr,
    )
    return folder


def add_population_args(parser: argparse.ArgumentParser) -> None:
    """The options :func:`population` reads (shared with ``bench/online_sweep.py``)."""
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


def population(name: str, args: Any) -> SimulationConfig:
    """The replay simulation of one population: new households (``ev*``, seed 41), arrival order."""
    have = find_data_dir(None) is not None
    held = ("slurp", "hwu64", "ha_tests") if have else ()
    spec = {
        "seen": (
            "train",
            ("hwu64", "ha_tests") if have else (),
            "noisy",
            args.replay_households,
            args.replay_days,
        ),
        "held-out": ("test", held, "noisy", args.replay_households, args.replay_days),
        # Diagnostic: the held-out phrasings with exact ASR, i.e. phrasing gaps without recognition damage.
        "held-out-clean": ("test", held, "exact", args.replay_households, args.replay_days),
        "real": ("test", held, "real", args.real_households, args.real_days),
    }[name]
    split, corpora, asr, households, days = spec
    return SimulationConfig(
        households=households,
        days=days,
        seed=41,
        household_prefix="ev",
        phrasing_split=split,  # type: ignore[arg-type]
        corpora=corpora,
        assistant=AssistantConfig(asr=asr, rewrite_when=args.mode),
        workers=args.workers,
    )


def replay(name: str, arm: str, folder: Path | None, args: Any) -> Path:
    tag = "" if folder is None else f"-{folder.name}-{args.mode}"
    out = CACHE / f"replay-{name}-{arm}{tag}"
    config = population(name, args)
    fresh = replay_is_current(out, config) and (
        folder is None or out.stat().st_mtime >= (folder / "rewriter.json").stat().st_mtime
    )
    if not args.rebuild and (arm == "control" or not args.retrain) and fresh:
        return out
    rewriter = None
    if folder is not None:
        rewriter = Rewriter.load(folder, RewriterConfig(personal=arm == "personal"))
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result = simulate(config, out, rewriter=rewriter)
    print(
        f"[online] replay {name}/{arm}: {result.turns:,} turns in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--train-store",
        type=Path,
        default=None,
        help="train on this store (with signals) instead of simulating",
    )
    parser.add_argument("--train-households", type=int, default=120)
    parser.add_argument("--train-days", type=float, default=14)
    add_population_args(parser)
    parser.add_argument("--real", action="store_true", help="also replay the real-ASR population")
    parser.add_argument("--k", type=int, default=5, help="distinct users a pooled pattern needs")
    parser.add_argument(
        "--target-ratio", type=float, default=DEFAULT_TARGET_RATIO, help="calibration target (est. wins/loss)"
    )
    parser.add_argument("--rephrase-model", type=Path, default=None)
    parser.add_argument(
        "--decision",
        choices=("product", "meaning"),
        default="product",
        help="ranker decision rule: meaning x fixable (default) or meaning alone",
    )
    parser.add_argument(
        "--ranker",
        choices=("cross-fitted", "single"),
        default="cross-fitted",
        help="ship the calibration's cross-fitted rankers (default) or one ranker trained on every "
        "household (what earlier versions shipped)",
    )
    parser.add_argument(
        "--populations",
        default="seen,held-out",
        help="comma-separated: seen, held-out, held-out-clean (held-out phrasings, exact ASR)",
    )
    parser.add_argument("--rebuild", action="store_true", help="re-simulate the replays")
    parser.add_argument("--rebuild-train", action="store_true")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--examples", type=int, default=8)
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)

    store_path = training_store(args)
    folder = train(store_path, args)
    report = json.loads((folder / "fit-report.json").read_text())
    print(f"rewriter: {folder}")
    print(
        f"  trained on {report['turns']:,} turns from {report['households']} households: "
        f"{report['queries']:,} queries, {report['rows']:,} candidate rows ({report['positives']:,} positive)"
    )
    print(f"  knowledge: {report['knowledge']}")
    for mode, cal in report["calibration"].items():
        print(
            f"  threshold ({mode}) {cal['threshold']:.3f}, calibrated on held-out training households: "
            f"{cal['wins']} est. wins, {cal['losses']} est. losses, {cal['unknown']} unknown of "
            f"{cal['rewrites']} rewrites"
        )

    populations = [p for p in args.populations.split(",") if p] + (["real"] if args.real else [])
    lines = [
        "| population | arm | turns | defect rate | first attempts failed (in scope) "
        "| goals failed (in scope) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    rw_lines = [
        "| population | arm | rewritten (share) | wins | losses | win/loss | same turns: defect rate "
        "without -> with (reduction, 95 % interval over households) | rescue rate | false-rewrite rate "
        "| wrong actions (out of scope) "
        "| wins per wrong action |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    notes: list[str] = []
    for name in populations:
        stats: dict[str, ArmStats] = {}
        for arm in ("control", "global", "personal"):
            out = replay(name, arm, None if arm == "control" else folder, args)
            stats[arm] = st = score_arm(out)
            lines.append(
                f"| {name} | {arm} | {st.turns:,} | {pct(st.defect_rate)} | "
                f"{pct(st.first_attempt_defect_rate)} | {pct(st.goal_failure_rate)} |"
            )
            if arm == "control":
                notes.append(
                    f"{name}/control gazetteer fallback: rescued {st.fallback_rescues:,} of "
                    f"{st.strict_failures:,} turns strict alone fails "
                    f"({pct(st.fallback_rescue_rate)}); matched "
                    f"{st.fallback_failed:,} more that still failed, "
                    f"{st.fallback_wrong:,} of them wrong actions"
                )
                continue
            low, high = st.reduction_interval()
            rw_lines.append(
                f"| {name} | {arm} | {st.rewritten:,} ({pct(st.rewritten / max(st.turns, 1))}) | {st.wins:,} "
                f"| {st.losses:,} | {st.win_loss:.1f} "
                f"| {pct(st.defect_rate_without)} -> {pct(st.defect_rate)} "
                f"({pct(st.defect_reduction)}, {pct(low)}-{pct(high)}) | {pct(st.rescue_rate)} "
                f"| {pct(st.false_rewrite_rate)} | {st.acted_wrong:,} ({st.acted_wrong_out_of_scope:,}) "
                f"| {st.wins / st.acted_wrong if st.acted_wrong else float('inf'):.1f} |"
            )
            notes.append(
                f"{name}/{arm} by layer: " + "; ".join(f"{k} {dict(v)}" for k, v in sorted(st.layers.items()))
            )
            for kind, items in (("win", st.win_examples), ("loss", st.loss_examples)):
                for original, rewritten, intent in random.Random(1).sample(
                    items, min(args.examples, len(items))
                ):
                    notes.append(f"  {kind}: {original!r} -> {rewritten!r} ({intent})")
        c, p = stats["control"], stats["personal"]
        notes.append(
            f"{name}: separate arms, defect rate control {pct(c.defect_rate)}, global "
            f"{pct(stats['global'].defect_rate)}, global+personal {pct(p.defect_rate)}"
        )
    print()
    print("\n".join(lines))
    print()
    print("\n".join(rw_lines))
    print()
    print("\n".join(notes))


if __name__ == "__main__":
    main()
