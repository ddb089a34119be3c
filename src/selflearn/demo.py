"""The end-to-end demo behind ``selflearn demo``: simulate -> ingest -> signals -> mine -> train the
online rewriter -> replay.

The replayed week runs with the online rewriter behind the NLU (its precomputed layer is the
mined table; its personal layer learns from the replayed households as they talk), and the first
rewrites are narrated as they happen. For every rewritten turn the simulation also runs the
original words on a copy of the home, so "with" and "without" are compared on the very same turns.

Everything runs on what the package ships (built-in phrasings, the noisy ASR channel, the
pairwise rephrase baseline unless a trained contextual model is given), so it works on a fresh
machine without ``../shared/data``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selflearn.assistant.pipeline import AssistantConfig
from selflearn.core.errors import DataError
from selflearn.core.hooks import Confirm, RewriteContext
from selflearn.core.schema import Feedback, RewriteTrace, Turn
from selflearn.core.store import IngestReport, Store
from selflearn.evaluate.replay import ArmStats, score_arm
from selflearn.mining import DuckDbEngine, MiningConfig, RewriteMiner
from selflearn.rewrite import FitConfig, FitReport, KnowledgeConfig, Rewriter, RewriteTable
from selflearn.signals.defect import DefectReport, score_defects
from selflearn.signals.rephrase import ContextualRephraseDetector, PairwiseRephraseBaseline, score_rephrases
from selflearn.simulation.simulator import SimulationConfig, SimulationResult, simulate


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
    rewriter_dir: Path
    fit: FitReport | None
    """How the online rewriter was trained (None: too few logs; the table alone was replayed)."""
    replay: ArmStats
    """The replayed week, scored from simulation truth (with per-turn counterfactuals)."""
    by_layer: dict[str, int] = field(default_factory=dict)
    """Rewritten turns of the replay per layer."""


class Narrated:
    """A rewriter that tells the first ``limit`` rewrites it makes (per process) as they happen."""

    def __init__(self, rewriter: Rewriter, say: Callable[[str], None], limit: int = 8) -> None:
        self.rewriter = rewriter
        self.say = say
        self.limit = limit
        self.told = 0

    def __call__(self, text: str, context: RewriteContext) -> RewriteTrace | Confirm | None:
        answer = self.rewriter(text, context)
        trace = answer.trace if isinstance(answer, Confirm) else answer
        if trace is not None and self.told < self.limit:
            self.told += 1
            self.say(
                f"   live [{context.household_id}] {text!r} -> {trace.rewritten_text!r} "
                f"({trace.layer}, {trace.score:.2f})"
            )
        return answer

    def observe(self, turn: Turn, home: Any = None) -> None:
        self.rewriter.observe(turn, home)

    def observe_feedback(self, feedback: Feedback) -> None:
        self.rewriter.observe_feedback(feedback)


def run_demo(
    out_dir: Path,
    households: int = 40,
    days: float = 7.0,
    replay_households: int = 15,
    replay_days: float = 7.0,
    seed: int = 0,
    workers: int = 2,
    min_users: int = 3,
    rephrase_model: Path | None = None,
    simulate_fn: Callable[..., SimulationResult] | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> DemoResult:
    """Run the whole loop in ``out_dir`` (cleared of earlier demo output first).

    ``simulate_fn(config, out, rewriter=None)`` runs a simulation (the CLI passes one with a
    progress bar)."""
    run = simulate_fn or (lambda config, out, rewriter=None: simulate(config, out, rewriter=rewriter))
    out_dir.mkdir(parents=True, exist_ok=True)
    store_path = out_dir / "demo.duckdb"
    for stale in (store_path, store_path.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)

    say(f"1/5 simulating {households} households for {days:g} days (the logs to learn from)")
    sim = run(SimulationConfig(households=households, days=days, seed=seed, workers=workers), out_dir / "sim")
    with Store(store_path) as store:
        report = store.ingest([out_dir / "sim"])
        say(f"2/5 friction signals: rephrase links and P(defect) for {store.count():,} turns")
        if rephrase_model is not None:
            detector: ContextualRephraseDetector | PairwiseRephraseBaseline = ContextualRephraseDetector.load(
                rephrase_model
            )
            name = f"contextual ({rephrase_model})"
        else:
            detector, name = PairwiseRephraseBaseline("lexical"), "pairwise lexical"
        score_rephrases(store, detector)
        linked = int(store.value("SELECT count(*) FROM rephrases WHERE rephrase_of IS NOT NULL"))
        defects = score_defects(store)
        say(f"3/5 mining rewrites (k = {min_users} users)")
        table = RewriteMiner(MiningConfig(min_users=min_users)).fit(DuckDbEngine(store)).mined()
    table_dir = table.save(out_dir / "rewrites")

    say(f"4/5 training the online rewriter (global knowledge, ranker; k = {min_users} users)")
    fit: FitReport | None = None
    with Store(store_path, read_only=True) as store:
        try:
            rewriter = Rewriter(training=FitConfig(knowledge=KnowledgeConfig(min_users=min_users)))
            fit = rewriter.fit(store, table).fit_report_
        except DataError as exc:
            say(
                f"   too few logs to train the ranked layers ({exc}); "
                "replaying with the table and the personal layer"
            )
            rewriter = Rewriter.from_parts(table=table)
    rewriter_dir = rewriter.save(out_dir / "rewriter")
    if fit is not None:
        (rewriter_dir / "fit-report.json").write_text(json.dumps(fit.__dict__, indent=2, default=str) + "\n")

    say("5/5 replaying a later week on new households with the rewriter behind the NLU")
    folder = out_dir / "replay"
    run(
        SimulationConfig(
            households=replay_households,
            days=replay_days,
            seed=seed + 1,
            household_prefix="r",
            workers=workers,
            assistant=AssistantConfig(rewrite_when="on_failure"),
        ),
        folder,
        rewriter=Narrated(Rewriter.load(rewriter_dir), say),
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
        rewriter_dir=rewriter_dir,
        fit=fit,
        replay=replayed,
        by_layer={
            layer: kinds["win"] + kinds["loss"] + kinds["same"] for layer, kinds in replayed.layers.items()
        },
    )
