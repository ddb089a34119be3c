"""The fpi sub-commands: train, predict, report (docs/fpi.md)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from selflearn.cli.apps import fpi_app
from selflearn.cli.common import StorePath, _stages, out
from selflearn.core.artefacts import save_atomically
from selflearn.core.errors import ConfigError
from selflearn.core.store import Store


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

    from selflearn.fpi.model import FIT_STAGES, FpiModel

    paths = store_paths or [Path("selflearn.duckdb")]
    stages = FIT_STAGES if text_dims > 0 else tuple(s for s in FIT_STAGES if s != "text")
    with ExitStack() as stack:
        stores = [stack.enter_context(Store(p, read_only=True)) for p in paths]
        with _stages("training the failure point model", stages) as start:
            model = FpiModel(text_dims=text_dims).fit(stores, progress=start)
    path = save_atomically(out_dir, model.save)
    out.print(f"trained {model.version} on {model.label_counts_} -> {path}")


@fpi_app.command("predict")
def fpi_predict_cmd(
    store_path: StorePath = Path("selflearn.duckdb"),
    model_dir: Annotated[
        Path | None, typer.Option("--model", "-m", help="Model folder (default: the rule baseline).")
    ] = None,
) -> None:
    """Predict every stored turn's failure point and write the fpi table (never reads sim_truth)."""
    from selflearn.fpi.model import SCORE_STAGES, FpiModel, score_fpi

    model = FpiModel.load(model_dir) if model_dir is not None else None
    with Store(store_path) as store:
        with _stages("predicting failure points", SCORE_STAGES) as start:
            report = score_fpi(store, model, progress=start)
        out.print(report.summary())


@fpi_app.command("report")
def fpi_report_cmd(
    store_path: StorePath = Path("selflearn.duckdb"),
    period: Annotated[str, typer.Option(help="Time bucket: day, week or month.")] = "day",
    top: Annotated[int, typer.Option(help="Failing request patterns listed per stage.", min=1)] = 5,
    table: Annotated[
        Path | None, typer.Option("--table", help="Mined rewrite-table folder (selflearn mine).")
    ] = None,
    rewriter: Annotated[
        Path | None,
        typer.Option(
            "--rewriter",
            help="Online rewriter folder (selflearn train rewriter): its table is used when --table is not "
            "given, and it is asked what it would do with each failing pattern.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Predicted failure points over time and, per stage, the top failing request patterns with
    what selflearn can do about each: rewrite, teach, export (the fpi table; docs/fpi.md)."""
    from selflearn.fpi.model import CLASSES
    from selflearn.stats import fpi_breakdown

    for folder, option in ((table, "--table"), (rewriter, "--rewriter")):
        if folder is not None and not folder.is_dir():
            raise ConfigError(f"{option} {folder} is not a folder")
    with Store(store_path, read_only=True) as store:
        report = fpi_breakdown(store, period=period, top=top, table=table, rewriter=rewriter)
    if report is None:
        raise ConfigError(f"{store_path} has no failure point predictions: run `selflearn fpi predict` first")
    if as_json:
        typer.echo(json.dumps(asdict(report)))
        return
    table_ = Table(title=f"predicted failure points per {report.period} ({report.model})")
    table_.add_column(report.period)
    for stage in CLASSES:
        table_.add_column(stage, justify="right")
    table_.add_column("defect share", justify="right")
    for bucket, counts in report.by_period:
        total = sum(counts.values())
        defects = total - counts.get("correct", 0)
        table_.add_row(bucket, *(f"{counts.get(c, 0):,}" for c in CLASSES), f"{defects / max(total, 1):.1%}")
    out.print(table_)
    for stage, rows in report.patterns_by_stage.items():
        turns = report.totals.get(stage, 0)
        per = Table(
            title=f"top {stage} failures ({turns:,} turn{'' if turns == 1 else 's'})", show_lines=True
        )
        for name, justify in (
            ("pattern", "left"),
            ("example", "left"),
            ("count", "right"),
            ("users", "right"),
            ("homes", "right"),
            ("action", "left"),
            ("detail", "left"),
        ):
            per.add_column(name, justify=justify)  # type: ignore[arg-type]
        for r in rows:
            detail = r.detail + (f"\nrun: {r.command}" if r.command and r.action != "teach" else "")
            per.add_row(
                escape(r.pattern),
                escape(r.example),
                f"{r.count:,}",
                f"{r.users:,}",
                f"{r.households:,}",
                r.action,
                escape(detail),
            )
        out.print(per)
