"""Online rewriting benchmark: train the rewriter on simulated logs, replay new households as an A/B.

    python bench/online.py                       # everything below, cached where possible
    python bench/online.py --real                # also the real-ASR population (needs `make asr-deps`)
    python bench/online.py --train-store bench/.cache/online/train-360mix.duckdb --real \\
        --populations seen,held-out,held-out-clean   # the documented run (bench/online_stores.sh)

Everything is cached in ``bench/.cache/online`` (``--cache DIR`` elsewhere) and rebuilt when the
simulator, the ASR channel or the population changed; the figures are written to
``docs/results/online.json`` (``$SELFLEARN_RESULTS`` elsewhere). The populations are those of
:mod:`selflearn.evaluate.populations` (``selflearn evaluate populations`` lists them).

1. **Training logs** (cached): the ``online-train`` population (households ``mn*``, seed 21,
   train-side phrasings: built-in templates and colloquial variants, HWU64 and Home Assistant's
   tests when ``../shared/data`` is there; noisy ASR), or ``--train-store``. Friction signals as
   a user would compute them (`selflearn signals`: pairwise lexical rephrase links unless
   ``--rephrase-model``, heuristic defects). Simulation truth is never read by anything that
   learns.
2. **Training**: the rewrite table (`selflearn mine`, k users) and the online rewriter
   (`selflearn train rewriter`: global knowledge, ranker, calibrated threshold) from those logs.
3. **Replay** in arrival order on *new* households (other prefix and seed), each population
   simulated once per arm with the same seed (:class:`selflearn.evaluate.ab.Replay`):
   ``control`` (Home Assistant as it ships: strict -> gazetteer), ``global`` (table + global
   retrieval and ranking, no personal layer) and ``personal`` (global + personal layer, learning
   online from the household's own logged turns). Populations: ``seen`` (train-side phrasings
   said by new people in new homes), ``held-out`` (the held-out 20 % of phrasings plus SLURP:
   phrasings no training log contains) and, with ``--real``, ``real`` (held-out phrasings through
   flite speech decoded by pocketsphinx); ``--populations ...,held-out-clean`` adds the held-out
   phrasings with exact ASR (a diagnostic: phrasing gaps without recognition damage).
4. **Scoring** from simulation truth (evaluation only, :class:`selflearn.evaluate.ArmStats`): per
   arm the defect rate, first-attempt and goal failure rates; for rewritten turns wins (would
   have failed without the rewrite, worked with it) and losses (the reverse), by layer; rescue
   rate (wins over all turns that would have failed) and false-rewrite rate (losses over
   rewrites), and examples.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import populations
from selflearn import Store
from selflearn.evaluate import POPULATIONS, ArmStats, Replay, population, write_results
from selflearn.evaluate.ab import ARM_HEADER, REWRITE_HEADER, arm_row, gazetteer_note, pct, rewrite_row
from selflearn.evaluate.cache import population_store
from selflearn.evaluate.signals import score_signals
from selflearn.mining import DuckDbEngine, MiningConfig, RewriteMiner
from selflearn.rewrite import DEFAULT_TARGET_RATIO, FitConfig, KnowledgeConfig, Rewriter

CACHE = Path(__file__).resolve().parent / ".cache" / "online"
"""Where the stores, rewriters and replays are cached unless ``--cache`` says otherwise."""

ARMS = ("control", "global", "personal")
"""The arms replayed per population."""


def training_store(args: Any) -> Path:
    """Simulate, ingest and score the training logs once (or use ``--train-store``)."""
    if args.train_store is not None:
        return Path(args.train_store)
    path = args.cache / f"train-{args.train_households}x{args.train_days:g}.duckdb"
    config = POPULATIONS["online-train"].config(args.workers, args.train_households, args.train_days)

    def signals(store: Store) -> None:
        print(f"[online] training logs scored: {score_signals(store, args.rephrase_model)}", file=sys.stderr)

    return population_store(path, config, rebuild=args.rebuild_train, prepare=signals)


def train(store_path: Path, args: Any) -> Path:
    """Mine the table and fit the rewriter; returns the rewriter folder."""
    suffix = ("" if args.decision == "product" else f"-{args.decision}") + (
        "-single" if args.ranker == "single" else ""
    )
    if args.target_ratio != DEFAULT_TARGET_RATIO:
        suffix += f"-t{args.target_ratio:g}"
    folder: Path = args.cache / f"rewriter-{store_path.stem}-k{args.k}{suffix}"
    report_file = folder / "fit-report.json"
    if (folder / "model.json").exists() and report_file.exists() and not args.retrain:
        calibration = json.loads(report_file.read_text())["calibration"]
        if all(c.get("target_ratio") == args.target_ratio for c in calibration.values()):
            return folder
        print(f"[online] {folder.name} was calibrated for another target: refitting", file=sys.stderr)
    with Store(store_path, read_only=True) as store:
        started = time.perf_counter()
        table = RewriteMiner(MiningConfig(min_users=args.k)).fit(DuckDbEngine(store)).mined()
        mined = time.perf_counter() - started
        started = time.perf_counter()
        config = FitConfig(
            knowledge=KnowledgeConfig(min_users=args.k),
            target_ratio=args.target_ratio,
            decision=args.decision,
            cross_fitted=args.ranker == "cross-fitted",
        )
        rewriter = Rewriter(training=config).fit(store, table)
        fitted = time.perf_counter() - started
    assert rewriter.fit_report_ is not None  # set by fit
    rewriter.save(folder)
    report_file.write_text(json.dumps(asdict(rewriter.fit_report_), indent=2, default=str) + "\n")
    print(
        f"[online] mined {len(table)} active rewrites in {mined:.1f} s; rewriter fitted in {fitted:.0f} s",
        file=sys.stderr,
    )
    return folder


def fit_headline(folder: Path, report: dict[str, Any]) -> dict[str, Any]:
    """The rewriter folder and what its fit saw and chose, for the results file."""
    return {
        "rewriter": str(folder),
        **{key: report[key] for key in ("turns", "households", "queries", "rows", "positives")},
        "calibration": {
            mode: {key: cal[key] for key in ("threshold", "wins", "losses", "unknown", "rewrites")}
            for mode, cal in report["calibration"].items()
        },
    }


def main() -> None:
    started_all = time.perf_counter()
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
    populations.add_replay_options(parser)
    parser.add_argument(
        "--mode",
        choices=("on_failure", "before"),
        default="on_failure",
        help="consult the rewriter only when the NLU failed (default) or before the NLU on every request",
    )
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
    parser.add_argument(
        "--cache",
        type=Path,
        default=CACHE,
        help="folder of the cached stores, rewriters and replays (default: bench/.cache/online)",
    )
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    names = [p for p in args.populations.split(",") if p] + (["real"] if args.real else [])
    unknown = [name for name in names if name not in POPULATIONS]
    if unknown:  # before anything is simulated
        parser.error(f"--populations: unknown {', '.join(unknown)}")

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

    figures: dict[str, Any] = {
        "train_store": str(store_path),
        "mode": args.mode,
        "k": args.k,
        "target_ratio": args.target_ratio,
        "decision": args.decision,
        "ranker": args.ranker,
        "fit": fit_headline(folder, report),
        "populations": {},
    }
    lines = [ARM_HEADER]
    rw_lines = [REWRITE_HEADER]
    notes: list[str] = []
    for name in names:
        households, days = populations.replay_size(name, args)
        stats: dict[str, ArmStats] = {}
        for arm in ARMS:
            replay = Replay(
                population(name),
                args.cache,
                args.workers,
                households,
                days,
                rewrite_when=args.mode,
                rebuild=args.rebuild or (arm != "control" and args.retrain),
            )
            stats[arm] = st = replay.score([arm], None if arm == "control" else folder)[arm]
            lines.append(arm_row(name, arm, st))
            if arm == "control":
                notes.append(gazetteer_note(name, st))
                continue
            rw_lines.append(rewrite_row(name, arm, st))
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
        figures["populations"][name] = {
            "population": name,
            "households": households,
            "days": days,
            "asr": population(name).asr,
            "arms": {arm: st.summary() for arm, st in stats.items()},
        }
    print()
    print("\n".join(lines))
    print()
    print("\n".join(rw_lines))
    print()
    print("\n".join(notes))
    write_results("online", figures, seconds=time.perf_counter() - started_all)


if __name__ == "__main__":
    main()
