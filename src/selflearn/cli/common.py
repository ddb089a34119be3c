"""What several command modules share: the consoles, the progress bar, the ``--store`` option,
simulating, ingesting and printing stats."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from selflearn.core.hooks import RewriteHook
from selflearn.core.store import IngestReport, Store
from selflearn.simulation.simulator import SimulationConfig, SimulationResult, simulate
from selflearn.stats import Stats

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


def _ingest(store: Store, paths: list[Path], quarantine: Path | None) -> IngestReport:
    with _progress() as bar:
        task = bar.add_task("ingesting rows", total=None)
        report = store.ingest(
            paths, quarantine_path=quarantine, progress=lambda n: bar.update(task, completed=n)
        )
    return report


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
