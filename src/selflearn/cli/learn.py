"""Learning from the logs, and its result: rewrite (what the trained rewriter decides), signals,
mine. The train group is in :mod:`selflearn.cli.train`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from selflearn.cli.apps import app
from selflearn.cli.common import StorePath, _counting, _steps, out
from selflearn.core.artefacts import save_atomically
from selflearn.core.errors import ConfigError
from selflearn.core.store import Store


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
    from selflearn.signals.defect import DefectModel, score_defects, score_steps
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
        with _counting("detecting rephrases") as update:
            n = score_rephrases(store, rephraser, progress=update)
        linked = int(store.value("SELECT count(*) FROM rephrases WHERE rephrase_of IS NOT NULL"))
        out.print(f"rephrases: {n:,} turns scored, {linked:,} linked to an earlier turn")
        with _steps("scoring defects", score_steps(defects)) as say:
            report = score_defects(store, defects, progress=say)
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
    from selflearn.mining import DuckDbEngine, MiningConfig, RewriteMiner, SparkEngine
    from selflearn.mining.engines import export_for_spark, spark_inputs_missing
    from selflearn.mining.miner import FIT_STEPS

    config = MiningConfig(
        min_users=min_users, min_households=min_households, margin=margin, noise_epsilon=noise_epsilon
    )
    if engine == "duckdb":
        with Store(store_path, read_only=True) as store, _steps("mining", FIT_STEPS, echo=True) as say:
            table = RewriteMiner(config).fit(DuckDbEngine(store), progress=say).mined()
    elif engine == "spark":
        if parquet_dir is None:
            raise ConfigError("--engine spark needs --parquet-dir (see docs/mining.md)")
        local = "://" not in parquet_dir
        if local and spark_inputs_missing(parquet_dir) and store_path.exists():
            with Store(store_path, read_only=True) as store, _counting("exporting for Spark") as update:
                written = export_for_spark(store, parquet_dir, progress=update)
            out.print(
                f"exported {store_path} -> {parquet_dir}: "
                + ", ".join(f"{name} {rows:,} rows" for name, rows in written.items())
            )
        spark = SparkEngine(parquet_dir, master=None if master == "none" else master)
        try:
            with _steps("mining", FIT_STEPS, echo=True) as say:
                table = RewriteMiner(config).fit(spark, progress=say).mined()
        finally:
            spark.close()
    else:
        raise ConfigError(f"--engine must be duckdb or spark, not {engine!r}")
    save_atomically(out_dir, table.save)  # a reader sees the old table or the new one
    report = table.metadata["report"]
    out.print(
        f"mined {report['turns']:,} turns ({report['users']:,} users, {report['households']:,} homes): "
        f"{report['states']:,} patterns, {report['rules']:,} active rewrites, {report['demoted']:,} demoted "
        f"-> {out_dir} ({table.version})"
    )
    for reason, n in report["rejected"].items():
        out.print(f"  rejected: {reason}: {n:,}")
    # active first, most users, most support, by source
    for row in (row for row in table.first(10) if row["status"] == "active"):
        out.print(
            f"  {row['source']!r} -> {row['target']!r} ({row['users']} users, {row['households']} homes)",
            markup=False,
            soft_wrap=True,
        )
    active = table.column("status").count("active")
    if active > 10:
        out.print(f"  ... and {active - 10:,} more in {out_dir / 'rewrites.parquet'}", markup=False)
