"""The end-to-end demo behind ``selflearn demo``: simulate -> ingest -> signals -> mine -> replay.

The replayed week runs with the table in front of the NLU; for every rewritten turn the
simulation also runs the original words on a copy of the home, so "with" and "without" are
compared on the very same turns.

Everything runs on what the package ships (built-in phrasings, the noisy ASR channel, the
pairwise rephrase baseline unless a trained contextual model is given), so it works on a fresh
machine without ``../shared/data``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from selflearn.mining import DuckDbEngine, MiningConfig, RewriteTable, mine
from selflearn.mining.replay import ArmStats, score_arm
from selflearn.signals.defect import DefectReport, score_defects
from selflearn.signals.rephrase import ContextualRephraseDetector, PairwiseRephraseBaseline, score_rephrases
from selflearn.simulation.simulator import SimulationConfig, SimulationResult, simulate
from selflearn.store import IngestReport, Store


@dataclass
class DemoResult:
    """What the demo did, for printing."""

    store: Path
    simulation: SimulationResult
    ingest: IngestReport
    rephrases_linked: int
    rephrase_detector: str
    defects: DefectReport
    table: RewriteTable
    table_dir: Path
    replay: ArmStats
    """The replayed week, scored from simulation truth (with per-turn counterfactuals)."""


def run_demo(
    out_dir: Path,
    households: int = 60,
    days: float = 7.0,
    replay_households: int = 20,
    replay_days: float = 7.0,
    seed: int = 0,
    workers: int = 2,
    min_users: int = 3,
    rephrase_model: Path | None = None,
    simulate_fn: Callable[[SimulationConfig, Path], SimulationResult] | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> DemoResult:
    """Run the whole loop in ``out_dir`` (cleared of earlier demo output first).

    ``simulate_fn(config, out)`` runs a simulation (the CLI passes one with a progress bar)."""
    run = simulate_fn or (lambda config, out: simulate(config, out))
    out_dir.mkdir(parents=True, exist_ok=True)
    store_path = out_dir / "demo.duckdb"
    for stale in (store_path, store_path.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)

    say(f"1/4 simulating {households} households for {days:g} days (the logs to learn from)")
    sim = run(SimulationConfig(households=households, days=days, seed=seed, workers=workers), out_dir / "sim")
    with Store(store_path) as store:
        report = store.ingest([out_dir / "sim"])
        say(f"2/4 friction signals: rephrase links and P(defect) for {store.count():,} turns")
        if rephrase_model is not None:
            detector: ContextualRephraseDetector | PairwiseRephraseBaseline = ContextualRephraseDetector.load(
                rephrase_model
            )
            name = f"contextual ({rephrase_model})"
        else:
            detector, name = PairwiseRephraseBaseline("lexical"), "pairwise lexical"
        score_rephrases(store, detector)
        linked = int(
            store.query("SELECT count(*) AS n FROM rephrases WHERE rephrase_of IS NOT NULL")
            .column("n")[0]
            .as_py()
        )
        defects = score_defects(store)
        say(f"3/4 mining rewrites (k = {min_users} users)")
        table = mine(DuckDbEngine(store), MiningConfig(min_users=min_users))
    table_dir = table.save(out_dir / "rewrites")

    say("4/4 replaying a later week on new households with the rewrite table in front of the NLU")
    folder = out_dir / "replay"
    run(
        SimulationConfig(
            households=replay_households,
            days=replay_days,
            seed=seed + 1,
            household_prefix="r",
            workers=workers,
            rewrite_table=str(table_dir),
        ),
        folder,
    )
    replayed = score_arm(folder)
    return DemoResult(
        store=store_path,
        simulation=sim,
        ingest=report,
        rephrases_linked=linked,
        rephrase_detector=name,
        defects=defects,
        table=table,
        table_dir=table_dir,
        replay=replayed,
    )
