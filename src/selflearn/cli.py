"""The ``selflearn`` command line, built on the public API.

Run ``selflearn --help`` or ``selflearn COMMAND --help``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from selflearn.assistant.pipeline import AssistantConfig
from selflearn.core.errors import ConfigError, SelflearnError
from selflearn.core.hooks import RewriteHook
from selflearn.core.store import IngestReport, Store
from selflearn.simulation.simulator import SimulationConfig, SimulationResult, simulate
from selflearn.stats import Stats, compute_stats

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Self-learning defect reduction for voice and chat assistants.",
)
console = Console(stderr=True)
out = Console()

StorePath = Annotated[Path, typer.Option("--store", "-s", help="DuckDB store file.")]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )


def _run_simulation(
    config: SimulationConfig, out_dir: Path, rewriter: RewriteHook | None = None
) -> SimulationResult:
    with _progress() as bar:
        task = bar.add_task("simulating households", total=config.households)
        result = simulate(
            config, out_dir, progress=lambda done, total: bar.update(task, completed=done), rewriter=rewriter
        )
    console.print(
        f"simulated {result.households:,} households: {result.turns:,} turns, "
        f"{result.feedback:,} feedback events in {result.seconds:.1f} s -> {out_dir}"
    )
    return result


@app.command("simulate")
def simulate_cmd(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder for the JSONL shards.")] = Path(
        "out/sim"
    ),
    households: Annotated[int, typer.Option(help="Number of households.", min=1)] = 20,
    days: Annotated[float, typer.Option(help="Simulated days per household.", min=0.01)] = 7.0,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same output).")] = 0,
    asr: Annotated[
        str,
        typer.Option(
            help="ASR channel: exact, noisy (fast, learned from real) or real (flite + pocketsphinx)."
        ),
    ] = "noisy",
    nlu: Annotated[str, typer.Option(help="NLU: strict, or strict+gazetteer (Home Assistant today).")] = (
        "strict+gazetteer"
    ),
    split: Annotated[str, typer.Option(help="Phrasings to use: train, test (held out) or all.")] = "all",
    corpora: Annotated[
        str,
        typer.Option(
            help="Comma-separated real corpora to draw phrasings from when present: ha_tests, hwu64, slurp."
        ),
    ] = "",
    data_dir: Annotated[Path | None, typer.Option(help="Folder holding the corpora.")] = None,
    prefix: Annotated[
        str, typer.Option(help="Household id prefix (use different ones for train/test).")
    ] = "h",
    workers: Annotated[
        int, typer.Option(help="Worker processes (the output is the same for any number).", min=1)
    ] = 2,
    false_wakes: Annotated[float, typer.Option(help="False wakes per household per day.", min=0)] = 0.4,
    rewrite_table: Annotated[
        Path | None,
        typer.Option(
            help="Replay the traffic through a mined rewrite table: requests are rewritten before the "
            "NLU, and the truth says which rewritten turns would have failed without it "
            "(see docs/mining.md).",
        ),
    ] = None,
) -> None:
    """Simulate households talking to the reference assistant; write turns, feedback and truth."""
    config = SimulationConfig(
        households=households,
        days=days,
        seed=seed,
        household_prefix=prefix,
        phrasing_split=split,  # type: ignore[arg-type]
        corpora=tuple(c.strip() for c in corpora.split(",") if c.strip()),
        data_dir=str(data_dir) if data_dir else None,
        assistant=AssistantConfig(nlu=nlu, asr=asr),  # type: ignore[arg-type]
        workers=workers,
        false_wakes_per_day=false_wakes,
    )
    table = None
    if rewrite_table is not None:
        from selflearn.rewrite import RewriteTable

        table = RewriteTable.load(rewrite_table)
    result = _run_simulation(config, out_dir, table)
    typer.echo(
        json.dumps(
            {
                "turns": result.turns,
                "feedback": result.feedback,
                "goals": result.goals,
                "first_attempt_defect_rate": round(result.first_attempt_defect_rate, 4),
                "failure_points": result.failure_points,
                **(
                    {"rewrites": result.rewrites, "rewrite_errors": result.rewrite_errors}
                    if rewrite_table
                    else {}
                ),
                "seconds": round(result.seconds, 2),
            }
        )
    )


def _ingest(store: Store, paths: list[Path], quarantine: Path | None) -> IngestReport:
    with _progress() as bar:
        task = bar.add_task("ingesting rows", total=None)
        report = store.ingest(
            paths, quarantine_path=quarantine, progress=lambda n: bar.update(task, completed=n)
        )
    return report


@app.command("ingest")
def ingest_cmd(
    paths: Annotated[list[Path], typer.Argument(help="JSONL or Parquet files, or folders of them.")],
    store_path: StorePath = Path("selflearn.duckdb"),
    quarantine: Annotated[
        Path | None, typer.Option(help="Where to write rejected rows (default: next to the store).")
    ] = None,
) -> None:
    """Validate log records and store them; bad rows go to a quarantine file with the reason."""
    with Store(store_path) as store:
        report = _ingest(store, paths, quarantine)
    out.print(report.summary())
    for table, n in sorted(report.by_table.items()):
        out.print(f"  new rows in {table}: {n:,}")
    if report.quarantined:
        for reason, n in report.reasons.most_common():
            out.print(f"  quarantined ({reason}): {n:,}")
        out.print(f"  quarantine file: {report.quarantine_path}")
    out.print(f"  {report.read / max(report.seconds, 1e-9):,.0f} rows/s")


def _print_stats(st: Stats) -> None:
    table = Table(title="selflearn stats", show_header=False)
    table.add_row("turns", f"{st.turns:,}")
    table.add_row("sessions", f"{st.sessions:,}")
    table.add_row("users / households", f"{st.users:,} / {st.households:,}")
    table.add_row("NLU no-match rate", f"{st.no_match_rate:.1%}")
    table.add_row("error-response rate", f"{st.error_rate:.1%}")
    table.add_row("barge-in rate", f"{st.barge_in_rate:.1%}")
    table.add_row("feedback events / 'no' share", f"{st.feedback_events:,} / {st.feedback_no_rate:.1%}")
    table.add_row("matchers", ", ".join(f"{k} {v:,}" for k, v in st.matchers.items()))
    if st.defect_rate is not None:
        table.add_row("(sim truth) defect rate (first attempts, in scope)", f"{st.defect_rate:.1%}")
        table.add_row("(sim truth) defective turns", f"{st.turn_defect_rate or 0:.1%}")
        table.add_row(
            "(sim truth) failure points", ", ".join(f"{k} {v:,}" for k, v in st.failure_points.items())
        )
    out.print(table)
    top = Table(title="top failing utterances (turns without success / all)")
    top.add_column("text")
    top.add_column("failed", justify="right")
    for text, failed, total in st.top_failing:
        top.add_row(text, f"{failed}/{total}")
    out.print(top)
    for stage, rows in st.top_failing_by_stage.items():
        out.print(f"(sim truth) top {stage} failures: " + "; ".join(f"{t!r} x{n}" for t, n in rows))


@app.command("stats")
def stats_cmd(
    store_path: StorePath = Path("selflearn.duckdb"),
    top: Annotated[int, typer.Option(help="How many failing utterances to list.", min=1)] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Turns, sessions, defect signals, failure points and the top failing utterances."""
    with Store(store_path, read_only=True) as store:
        st = compute_stats(store, top=top)
    if as_json:
        typer.echo(json.dumps(asdict(st)))
    else:
        _print_stats(st)


@app.command("export")
def export_cmd(
    output: Annotated[Path, typer.Argument(help="Parquet file to write.")],
    store_path: StorePath = Path("selflearn.duckdb"),
    table: Annotated[str, typer.Option(help="turns, feedback, homes or sim_truth.")] = "turns",
) -> None:
    """Export a table to Parquet (the same layout Spark jobs read)."""
    with Store(store_path, read_only=True) as store:
        n = store.export_parquet(table, output)
    out.print(f"wrote {n:,} rows of {table} to {output}")


train_app = typer.Typer(
    no_args_is_help=True, help="Train the learned components (each saves a model folder)."
)
app.add_typer(train_app, name="train")


def _training_store(store_path: Path | None, households: int, seed: int, workers: int, work: Path) -> Path:
    """The store to train on: the one given, or a freshly simulated training population."""
    if store_path is not None:
        if not store_path.exists():
            raise ConfigError(f"store {store_path} does not exist")
        return store_path
    config = SimulationConfig(
        households=households,
        days=7,
        seed=seed,
        household_prefix="tr",
        phrasing_split="train",
        workers=workers,
    )
    _run_simulation(config, work / "sim")
    path = work / "train.duckdb"
    path.unlink(missing_ok=True)
    with Store(path) as store:
        out.print(_ingest(store, [work / "sim"], None).summary())
    return path


@train_app.command("rephrase")
def train_rephrase_cmd(
    store_path: Annotated[
        Path | None,
        typer.Option(
            "--store",
            "-s",
            help="A SIMULATED store (its sim_truth rephrase links are the labels). "
            "Default: simulate a training population first.",
        ),
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write.")] = Path(
        "models/rephrase"
    ),
    epochs: Annotated[int, typer.Option(help="Passes over the training examples.", min=1)] = 2,
    max_examples: Annotated[
        int, typer.Option(help="Train on at most this many turns that have earlier turns.", min=16)
    ] = 4000,
    households: Annotated[int, typer.Option(help="Households to simulate when no --store.", min=1)] = 40,
    seed: Annotated[int, typer.Option(help="Seed of the training run (and simulation).")] = 11,
    workers: Annotated[int, typer.Option(help="Simulation worker processes.", min=1)] = 2,
) -> None:
    """Fine-tune the contextual rephrase detector (MiniLM + pointer head) on CPU."""
    from selflearn.signals.rephrase import ContextualRephraseDetector, session_examples

    path = _training_store(store_path, households, seed, workers, out_dir.parent / "train-sim")
    with Store(path, read_only=True) as store:
        if store.count("sim_truth") == 0:
            raise ConfigError(f"{path} has no simulation truth to learn rephrase links from")
        examples = list(session_examples(store, with_labels=True))
    with _progress() as bar:
        task = bar.add_task("fine-tuning MiniLM", total=None)
        model = ContextualRephraseDetector.fit(
            examples,
            epochs=epochs,
            max_examples=max_examples,
            seed=seed,
            progress=lambda step, total: bar.update(task, completed=step, total=total),
        )
    model.save(out_dir)
    report = model.train_report
    assert report is not None
    out.print(
        f"trained on {report.examples:,} turns ({report.steps} steps, {report.seconds:.0f} s, "
        f"final loss {report.final_loss:.3f}) -> {out_dir}"
    )


@train_app.command("defect")
def train_defect_cmd(
    store_path: StorePath = Path("selflearn.duckdb"),
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write.")] = Path(
        "models/defect"
    ),
) -> None:
    """Train the defect model on weak labels from the store's own logs (explicit feedback and
    unambiguous implicit cases; simulation truth is never read)."""
    from selflearn.signals.defect import DefectModel

    with Store(store_path, read_only=True) as store:
        model = DefectModel.fit(store)
    path = model.save(out_dir)
    stats = ", ".join(
        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v:,}"
        for k, v in model.label_stats_.items()
        if isinstance(v, int | float)
    )
    out.print(f"trained {model.version} ({stats}) -> {path}")


@train_app.command("rewriter")
def train_rewriter_cmd(
    store_path: StorePath = Path("selflearn.duckdb"),
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Rewriter folder to write.")] = Path(
        "models/rewriter"
    ),
    table: Annotated[
        Path | None,
        typer.Option(help="A mined rewrite table (`selflearn mine`) to serve as the precomputed layer."),
    ] = None,
    min_users: Annotated[
        int, typer.Option("--min-users", "-k", help="k: distinct users a pooled pattern needs.", min=1)
    ] = 5,
    target_ratio: Annotated[
        float,
        typer.Option(
            help="Estimated wins per loss the threshold is calibrated for (lower: more rewrites, "
            "more of them wrong; see docs/rewriting.md).",
            min=1.0,
        ),
    ] = 15.0,
    workers: Annotated[
        int,
        typer.Option(
            help="Cores for the replay and calibration folds (the result does not depend on it).", min=1
        ),
    ] = 2,
    decision: Annotated[
        str,
        typer.Option(
            help="Ranker decision rule: 'product' (meaning x fixable) or 'meaning' (meaning alone; "
            "see docs/rewriting.md)."
        ),
    ] = "product",
) -> None:
    """Train the online rewriter from the store's logs (needs `selflearn signals` first).

    Builds the global layer (k-anonymous patterns, their meanings and fixes, HNSW indexes over
    static MiniLM embeddings), trains the ranker on out-of-fold replays of the logged households
    and calibrates its threshold (see docs/rewriting.md). Simulation truth is never read."""
    from selflearn.rewrite import FitConfig, KnowledgeConfig, fit_rewriter
    from selflearn.rewrite.ranker import DECISIONS
    from selflearn.rewrite.table import RewriteTable

    if decision not in DECISIONS:
        raise typer.BadParameter(
            f"{decision!r} is not one of {', '.join(DECISIONS)}", param_hint="'--decision'"
        )
    config = FitConfig(
        knowledge=KnowledgeConfig(min_users=min_users),
        target_ratio=target_ratio,
        workers=workers,
        decision=decision,
    )
    mined = RewriteTable.load(table) if table is not None else None
    with Store(store_path, read_only=True) as store, _progress() as bar:
        task = bar.add_task("replaying logged households", total=None)
        rewriter, report = fit_rewriter(
            store,
            config,
            table=mined,
            progress=lambda _, done, total: bar.update(task, completed=done, total=total),
        )
    rewriter.save(out_dir)
    (out_dir / "fit-report.json").write_text(json.dumps(asdict(report), indent=2, default=str) + "\n")
    out.print(
        f"trained on {report.turns:,} turns from {report.households:,} households: "
        f"{len(rewriter.knowledge or []):,} pooled patterns, {report.rows:,} candidate rows "
        f"({report.positives:,} positive) -> {out_dir}"
    )
    if rewriter.ranker is not None and rewriter.ranker.members_:
        out.print(
            f"ranker: {len(rewriter.ranker.members_)} cross-fitted members; each household is scored by "
            "the one trained without it, so the thresholds below apply to the scores they were "
            "calibrated on"
        )
    # One calibration per mode: behind the NLU (the request is known to have failed) and before it.
    for mode, cal in report.calibration.items():
        out.print(
            f"{mode.replace('_', ' ')}: threshold {cal['threshold']:.3f} ({cal['wins']} est. wins, "
            f"{cal['losses']} losses, {cal['unknown']} unknown on held-out households; "
            f"{cal['resampled_p10']:.3f}-{cal['resampled_p90']:.3f} over household resamples)"
        )


@app.command("rewrite")
def rewrite_cmd(
    texts: Annotated[list[str], typer.Argument(help="Requests to decide on.")],
    rewriter_dir: Annotated[Path, typer.Option("--rewriter", "-r", help="Rewriter folder.")] = Path(
        "models/rewriter"
    ),
    household: Annotated[
        str, typer.Option(help="Household id (its home config is used if known).")
    ] = "unknown",
    area: Annotated[str | None, typer.Option(help="Area of the device that heard the request.")] = None,
    store_path: Annotated[
        Path | None, typer.Option("--store", "-s", help="Store whose homes table gives the home config.")
    ] = None,
    failed: Annotated[
        bool | None,
        typer.Option(
            "--failed/--worked",
            help="Whether the assistant's NLU already failed on the request (default: unknown, i.e. "
            "decide as before the NLU).",
        ),
    ] = None,
    nbest: Annotated[
        list[str] | None,
        typer.Option(
            "--nbest",
            help="Another recognition hypothesis, best first (repeat the option); read with --failed.",
        ),
    ] = None,
) -> None:
    """Show what the online rewriter decides for each request, and why.

    Example: selflearn rewrite "tern of the kitchen lights" --failed --nbest "turn off the kitchen lights"
    """
    from selflearn.core.hooks import RewriteContext
    from selflearn.rewrite import Rewriter
    from selflearn.rewrite.logs import read_homes

    rewriter = Rewriter.load(rewriter_dir)
    if store_path is not None:
        with Store(store_path, read_only=True) as store:
            rewriter.homes.update(read_homes(store))
    for text in texts:
        ctx = RewriteContext(household_id=household, area=area, failed=failed, nbest=tuple(nbest or ()))
        decision = rewriter.rewrite_one(text, ctx)
        out.print(json.dumps(decision.to_json(), indent=2))


@app.command("signals")
def signals_cmd(
    store_path: StorePath = Path("selflearn.duckdb"),
    rephrase_model: Annotated[
        Path | None,
        typer.Option(help="Contextual rephrase model folder (default: the pairwise lexical baseline)."),
    ] = None,
    defect_model: Annotated[
        Path | None, typer.Option(help="Defect model folder (default: the transparent heuristic).")
    ] = None,
) -> None:
    """Detect rephrases and score every turn's P(defect); write the rephrases and defects tables."""
    from selflearn.signals.defect import DefectModel, score_defects
    from selflearn.signals.rephrase import (
        ContextualRephraseDetector,
        PairwiseRephraseBaseline,
        score_rephrases,
    )

    rephraser = (
        ContextualRephraseDetector.load(rephrase_model)
        if rephrase_model is not None
        else PairwiseRephraseBaseline("lexical")
    )
    defects = DefectModel.load(defect_model) if defect_model is not None else None
    with Store(store_path) as store:
        with _progress() as bar:
            task = bar.add_task("detecting rephrases", total=None)
            n = score_rephrases(
                store, rephraser, progress=lambda done, total: bar.update(task, completed=done, total=total)
            )
        linked = store.query("SELECT count(*) AS n FROM rephrases WHERE rephrase_of IS NOT NULL")
        out.print(
            f"rephrases: {n:,} turns scored, {linked.column('n')[0].as_py():,} linked to an earlier turn"
        )
        report = score_defects(store, defects)
    out.print(f"defects: {report.summary()}")


@app.command("mine")
def mine_cmd(
    store_path: StorePath = Path("selflearn.duckdb"),
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Rewrite-table folder to write.")] = Path(
        "models/rewrites"
    ),
    engine: Annotated[
        str, typer.Option(help="duckdb (embedded, reads --store) or spark (reads --parquet-dir).")
    ] = "duckdb",
    parquet_dir: Annotated[
        str | None,
        typer.Option(
            help="Spark engine: folder or URI (hdfs://, s3a://) with turns/defects/rephrases/homes "
            ".parquet exports (a local folder is written from --store first when they are missing)."
        ),
    ] = None,
    master: Annotated[
        str, typer.Option(help="Spark master (local[2] by default; 'none' to use spark-submit's).")
    ] = "local[2]",
    min_users: Annotated[
        int, typer.Option("--min-users", "-k", help="k: distinct users a global rewrite needs.", min=1)
    ] = 5,
    min_households: Annotated[int, typer.Option(help="Distinct households it needs.", min=1)] = 2,
    margin: Annotated[
        float, typer.Option(help="How much more often the target must work than the source.")
    ] = 0.3,
    noise_epsilon: Annotated[
        float | None, typer.Option(help="Add Laplace noise (scale 1/epsilon) to exported counts.")
    ] = None,
) -> None:
    """Mine a rewrite table from reformulation chains (needs `selflearn signals` first).

    Reformulation chains pooled over users become an absorbing Markov chain; for each pattern
    that tends to fail, the reformulation most likely to succeed is kept (see docs/mining.md)."""
    from selflearn.mining import DuckDbEngine, MiningConfig, SparkEngine, mine
    from selflearn.mining.engines import export_for_spark, spark_inputs_missing

    config = MiningConfig(
        min_users=min_users, min_households=min_households, margin=margin, noise_epsilon=noise_epsilon
    )
    if engine == "duckdb":
        with Store(store_path, read_only=True) as store:
            table = mine(DuckDbEngine(store), config, progress=console.print)
    elif engine == "spark":
        if parquet_dir is None:
            raise ConfigError("--engine spark needs --parquet-dir (see docs/mining.md)")
        local = "://" not in parquet_dir
        if local and spark_inputs_missing(parquet_dir) and store_path.exists():
            with Store(store_path, read_only=True) as store:
                written = export_for_spark(store, parquet_dir)
            out.print(
                f"exported {store_path} -> {parquet_dir}: "
                + ", ".join(f"{name} {rows:,} rows" for name, rows in written.items())
            )
        spark = SparkEngine(parquet_dir, master=None if master == "none" else master)
        try:
            table = mine(spark, config, progress=console.print)
        finally:
            spark.close()
    else:
        raise ConfigError(f"--engine must be duckdb or spark, not {engine!r}")
    table.save(out_dir)
    report = table.metadata["report"]
    out.print(
        f"mined {report['turns']:,} turns ({report['users']:,} users, {report['households']:,} homes): "
        f"{report['states']:,} patterns, {report['rules']:,} active rewrites, {report['demoted']:,} demoted "
        f"-> {out_dir} ({table.version})"
    )
    for reason, n in report["rejected"].items():
        out.print(f"  rejected: {reason}: {n:,}")


@app.command("demo")
def demo_cmd(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Working folder.")] = Path("out/demo"),
    households: Annotated[int, typer.Option(help="Households whose logs are learned from.", min=1)] = 40,
    days: Annotated[float, typer.Option(help="Simulated days of those logs.", min=0.01)] = 7.0,
    replay_households: Annotated[int, typer.Option(help="New households in the replayed week.", min=1)] = 15,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 2,
    min_users: Annotated[
        int, typer.Option("--min-users", "-k", help="k: distinct users a pooled pattern needs.", min=1)
    ] = 3,
    rephrase_model: Annotated[
        Path | None,
        typer.Option(help="Contextual rephrase model folder (default: the pairwise lexical baseline)."),
    ] = None,
) -> None:
    """The whole loop on built-in data: simulate, detect friction, mine, train the rewriter, replay.

    Simulates a week of households, ingests it, detects rephrases and defects, mines a rewrite
    table, trains the online rewriter (global and personal layers), then replays a later week on
    new households with the rewriter behind the NLU, narrating rewrites as they happen, and prints,
    on the same turns, the defects with and without it."""
    from selflearn.demo import run_demo

    result = run_demo(
        out_dir,
        households=households,
        days=days,
        replay_households=replay_households,
        seed=seed,
        workers=workers,
        min_users=min_users,
        rephrase_model=rephrase_model,
        simulate_fn=_run_simulation,
        say=lambda message: console.print(f"[bold]{message}[/bold]"),
    )
    out.print(result.ingest.summary())
    with Store(result.store, read_only=True) as store:
        _print_stats(compute_stats(store))
    out.print(
        f"signals: {result.rephrases_linked:,} rephrase links ({result.rephrase_detector}); "
        f"defects: {result.defects.summary()}"
    )
    report = result.table.metadata["report"]
    out.print(
        f"rewrite table: {report['rules']:,} rewrites from {report['states']:,} patterns "
        f"(k = {min_users}) -> {result.table_dir}"
    )
    for row in result.table.table.to_pylist()[:10]:
        if row["status"] == "active":
            out.print(f"  {row['source_example']!r} -> {row['target_example']!r} ({row['users']} users)")
    if result.fit is not None:
        cal = result.fit.calibration.get("known_failed", {})
        out.print(
            f"online rewriter: {result.fit.knowledge.get('patterns', {}).get('kept', 0):,} pooled patterns, "
            f"ranker trained on {result.fit.rows:,} candidate rows, threshold {cal.get('threshold', 0):.3f} "
            f"-> {result.rewriter_dir}"
        )
    r = result.replay
    table = Table(title="Replayed week on new households (simulation truth, same turns)")
    for col in ("", "without the rewriter", "with the rewriter"):
        table.add_column(col)
    table.add_row("turns", f"{r.turns:,}", f"{r.turns:,}")
    table.add_row("defects", f"{r.would_fail:,}", f"{r.defects:,}")
    table.add_row("defect rate", f"{r.defect_rate_without:.1%}", f"{r.defect_rate:.1%}")
    table.add_row("rewritten turns", "-", f"{r.rewritten:,} " + str(result.by_layer or ""))
    table.add_row("wins / losses", "-", f"{r.wins:,} / {r.losses:,}")
    out.print(table)
    for original, rewritten, intent in r.win_examples[:5]:
        out.print(f"  fixed: {original!r} -> {rewritten!r} ({intent})")
    for original, rewritten, intent in r.loss_examples[:3]:
        out.print(f"  broke: {original!r} -> {rewritten!r} ({intent})")
    out.print(f"store: {result.store}  (try: selflearn stats --store {result.store})")


fpi_app = typer.Typer(
    no_args_is_help=True, help="Failure point isolation: which pipeline stage failed first (docs/fpi.md)."
)
app.add_typer(fpi_app, name="fpi")


@fpi_app.command("train")
def fpi_train_cmd(
    store_paths: Annotated[
        list[Path] | None,
        typer.Option(
            "--store",
            "-s",
            help="SIMULATED store to train on; repeat to mix several (e.g. noisy and real ASR).",
        ),
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write.")] = Path("models/fpi"),
    text_dims: Annotated[
        int, typer.Option(help="Text-embedding components (0: no sentence encoder).", min=0)
    ] = 32,
) -> None:
    """Train the failure point model on SIMULATED stores (their sim_truth failure points are the labels)."""
    from contextlib import ExitStack

    from selflearn.fpi.model import FpiModel

    paths = store_paths or [Path("selflearn.duckdb")]
    with ExitStack() as stack:
        stores = [stack.enter_context(Store(p, read_only=True)) for p in paths]
        model = FpiModel.fit(stores, text_dims=text_dims)
    path = model.save(out_dir)
    out.print(f"trained {model.version} on {model.label_counts_} -> {path}")


@fpi_app.command("predict")
def fpi_predict_cmd(
    store_path: StorePath = Path("selflearn.duckdb"),
    model_dir: Annotated[
        Path | None, typer.Option("--model", "-m", help="Model folder (default: the rule baseline).")
    ] = None,
) -> None:
    """Predict every stored turn's failure point and write the fpi table (never reads sim_truth)."""
    from selflearn.fpi.model import FpiModel, score_fpi

    model = FpiModel.load(model_dir) if model_dir is not None else None
    with Store(store_path) as store:
        out.print(score_fpi(store, model).summary())


@fpi_app.command("report")
def fpi_report_cmd(
    store_path: StorePath = Path("selflearn.duckdb"),
    period: Annotated[str, typer.Option(help="Time bucket: day, week or month.")] = "day",
    top: Annotated[int, typer.Option(help="Failing requests listed per stage.", min=1)] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Predicted failure points over time and the top failing requests per stage (the fpi table)."""
    from selflearn.fpi.model import CLASSES
    from selflearn.stats import fpi_breakdown

    with Store(store_path, read_only=True) as store:
        report = fpi_breakdown(store, period=period, top=top)
    if report is None:
        raise ConfigError(f"{store_path} has no failure point predictions: run `selflearn fpi predict` first")
    if as_json:
        typer.echo(json.dumps(asdict(report)))
        return
    table = Table(title=f"predicted failure points per {report.period} ({report.model})")
    table.add_column(report.period)
    for stage in CLASSES:
        table.add_column(stage, justify="right")
    table.add_column("defect share", justify="right")
    for bucket, counts in report.by_period:
        total = sum(counts.values())
        defects = total - counts.get("correct", 0)
        table.add_row(bucket, *(f"{counts.get(c, 0):,}" for c in CLASSES), f"{defects / max(total, 1):.1%}")
    out.print(table)
    for stage, rows in report.top_by_stage.items():
        out.print(f"top {stage} failures: " + "; ".join(f"{t!r} x{n}" for t, n in rows))


@app.command("serve")
def serve_cmd(
    rewriter_dir: Annotated[
        Path | None,
        typer.Option(
            "--rewriter",
            "-r",
            help="Rewriter folder to serve (`selflearn train rewriter`). Without one, or when it fails "
            "to load, requests pass through unchanged and /healthz says why.",
        ),
    ] = None,
    store_path: Annotated[
        Path | None,
        typer.Option(
            "--store",
            "-s",
            help="DuckDB store that POST /v1/turns writes to (the service holds it open: DuckDB allows "
            "one writer process). Its homes are registered at start.",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0: all).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8080,
    timeout_ms: Annotated[
        float, typer.Option(help="Answer with the original text when a decision takes longer.", min=0.1)
    ] = 50.0,
    watch: Annotated[
        float | None,
        typer.Option(help="Poll the rewriter folder every this many seconds; reload when it changes."),
    ] = None,
    replay_days: Annotated[
        float | None,
        typer.Option(help="At start, rebuild the personal layer from the store's last N days of turns."),
    ] = None,
    admin_token: Annotated[
        str | None,
        typer.Option(
            envvar="SELFLEARN_ADMIN_TOKEN", help="Require 'Authorization: Bearer TOKEN' on /v1/admin/*."
        ),
    ] = None,
    decision_threads: Annotated[
        int,
        typer.Option(
            help="Threads deciding rewrites: a slow decision is answered with the original text at the "
            "timeout, and decisions overlap with HTTP work. 0: on the event loop (table-only rewriters).",
            min=0,
        ),
    ] = 1,
    access_log: Annotated[bool, typer.Option(help="Log every HTTP request (uvicorn access log).")] = False,
) -> None:
    """Serve the online rewriter over HTTP (one process; run replicas for more).

    POST /v1/rewrite, POST /v1/turns, PUT /v1/homes/ID, DELETE /v1/households/ID,
    POST /v1/admin/reload, GET /healthz, GET /metrics; OpenAPI docs at /docs (see docs/service.md)."""
    import uvicorn

    from selflearn.service import ServiceConfig, create_app

    config = ServiceConfig(
        rewriter=rewriter_dir,
        store=store_path,
        request_timeout_ms=timeout_ms,
        watch_s=watch,
        replay_days=replay_days,
        admin_token=admin_token,
        decision_threads=decision_threads,
        freeze_gc=True,
    )
    console.print(f"loading {rewriter_dir or 'no rewriter (pass-through)'} ...")
    uvicorn.run(create_app(config), host=host, port=port, access_log=access_log, log_level="info")


asr_app = typer.Typer(
    no_args_is_help=True, help="The ASR channels: run one on sentences, refit the noisy one (docs/asr.md)."
)
app.add_typer(asr_app, name="asr")


@asr_app.command("transcribe")
def asr_transcribe_cmd(
    text: Annotated[list[str], typer.Argument(help="Sentences to speak and recognise.")],
    channel: Annotated[str, typer.Option(help="exact, noisy or real (flite + sox + pocketsphinx).")] = "real",
    voice: Annotated[str, typer.Option(help="flite voice of the real channel.")] = "slt",
    seed: Annotated[int, typer.Option(help="Random seed of the noisy channel.")] = 0,
) -> None:
    """Run a channel on sentences; print one AsrTrace (JSON) per sentence."""
    import random

    from selflearn.assistant.asr import SpeechCondition, make_asr

    try:
        asr = make_asr(channel)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    rng = random.Random(seed)
    condition = SpeechCondition(voice) if channel in ("real", "pocketsphinx") else None
    for sentence in text:
        out.print_json(asr.transcribe(sentence, rng, condition).model_dump_json())


@asr_app.command("fit-noisy")
def asr_fit_noisy_cmd(
    out_file: Annotated[
        Path, typer.Option("--out", help="Where to write the confusion model (JSON).")
    ] = Path("src/selflearn/data/noisy_asr.json"),
    n: Annotated[int, typer.Option("--n", help="Domain sentences from the templates.", min=1)] = 3000,
    traffic: Annotated[
        int, typer.Option(help="Simulated users' sentences (many outside the domain language model).", min=0)
    ] = 1500,
    seed: Annotated[int, typer.Option(help="Sentence and speaking-condition seed.")] = 1,
    workers: Annotated[int, typer.Option(help="Decoder processes.", min=1)] = 2,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Real-channel cache (default ~/.cache/selflearn).")
    ] = None,
) -> None:
    """Refit the noisy channel's confusion model on the real channel (needs flite, sox, pocketsphinx)."""
    from selflearn.simulation.asr_fit import fit_noisy_channel

    command = "selflearn asr " + " ".join(sys.argv[2:])
    model = fit_noisy_channel(n, traffic, seed, workers, str(cache_dir) if cache_dir else None, command)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    model.save(out_file)
    console.print(
        f"fitted on {model.metadata['n_sentences']} sentences: WER {model.wer:.3f}, "
        f"{len(model.words)} words, {len(model.phrases)} phrases -> {out_file} "
        f"in {model.metadata['seconds']} s"
    )


def main() -> None:
    """Entry point: run the app, turning selflearn errors into one clear line and exit code 2."""
    try:
        app()
    except SelflearnError as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
