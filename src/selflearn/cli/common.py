"""What several command modules share: the consoles, the progress bars, the ``--store`` option,
simulating, ingesting and printing stats."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from selflearn.core.errors import DataError
from selflearn.core.hooks import RewriteHook
from selflearn.core.store import IngestReport, Store
from selflearn.simulation.simulator import SimulationConfig, SimulationResult, simulate
from selflearn.stats import Stats

console = Console(stderr=True)
out = Console()

StorePath = Annotated[Path, typer.Option("--store", "-s", help="DuckDB store file.")]
StarterOption = Annotated[
    bool,
    typer.Option(
        help="Without --rewriter, serve the starter rewriter that ships in the package: a global "
        "layer from day one, which asks 'Did you mean ...?' about its guesses (its provenance and "
        "the corpora's attributions: selflearn/data/starter/starter.json). --no-starter: no "
        "rewriter until one is given.",
    ),
]
"""``--starter/--no-starter`` of the commands that serve a rewriter (``serve``, ``wyoming``)."""


def open_store(path: Path, read_only: bool, hint: str = "") -> Store:
    """The store at ``path``, which must exist (a :class:`DataError` "no store at ..." plus
    ``hint`` otherwise: opening a missing path would create an empty store)."""
    if not path.exists():
        raise DataError(f"no store at {path}{hint}")
    return Store(path, read_only=read_only)


class _Bar(Progress):
    """A rich progress display that leaves no trace when disabled (rich prints an empty line
    when a progress display stops on a console that is not interactive, even a disabled one)."""

    def stop(self) -> None:
        if not self.disable:
            super().stop()


def _progress(transient: bool = False) -> Progress:
    """A progress display on stderr, shown only when stderr is a terminal (stdout stays clean
    for pipes and JSON; tests and logs see nothing of it); ``transient``: erased when done."""
    return _Bar(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
        disable=not console.is_terminal,
    )


@contextmanager
def _downloading(description: str) -> Iterator[Callable[[str, int, int], None]]:
    """A bar in bytes for a download (the library's ``progress(name, done, total)`` callbacks,
    e.g. :func:`selflearn.simulation.corpora.fetch.fetch_corpora`): yields ``update(name, done,
    total)``; the bar names the file being fetched and shows the bytes and the speed."""
    bar = _Bar(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    with bar:
        task = bar.add_task(description, total=None)
        yield lambda name, done, total: bar.update(
            task, description=f"{description}: {escape(name)}", completed=done, total=total
        )
        bar.update(task, description=description)


@contextmanager
def _counting(description: str, transient: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A bar for a job that counts what it did: yields ``update(done, total)``, the shape of the
    library's ``progress`` callbacks (``simulate``, ``score_rephrases``, ...)."""
    with _progress(transient) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@contextmanager
def _stages(description: str, stages: Sequence[str]) -> Iterator[Callable[[str], None]]:
    """A stage-by-stage bar for a job that names each stage as it starts (the library's
    ``progress(stage)`` callbacks, whose stage names are a module tuple such as
    :data:`selflearn.signals.defect.FIT_STAGES`): yields ``start(stage)``; the bar shows the
    stages done and the one running, and is full when the block ends without an error."""
    with _progress() as bar:
        task = bar.add_task(description, total=len(stages))

        def start(stage: str) -> None:
            label = f"{description}: {escape(stage)}"
            if stage in stages:
                bar.update(task, completed=stages.index(stage), description=label)
            else:  # a stage the caller does not know: name it, count nothing
                bar.update(task, description=label)

        yield start
        bar.update(task, completed=len(stages), description=description)


@contextmanager
def _staged_counting(stages: Mapping[str, str]) -> Iterator[Callable[[str, int, int], None]]:
    """A bar for a job of stages that each count (the library's ``progress(stage, done, total)``
    callbacks, e.g. :func:`selflearn.rewrite.fit.train`): ``stages`` maps each stage name, in
    order, to what the bar calls it; yields ``update(stage, done, total)``. The bar shows the
    stage ("2/4 replaying logged households") and its count."""
    names = list(stages)

    def label(stage: str) -> str:
        number = f"{names.index(stage) + 1}/{len(names)} " if stage in stages else ""
        return number + escape(stages.get(stage, stage))

    with _progress() as bar:
        task = bar.add_task(label(names[0]) if names else "", total=None)
        yield lambda stage, done, total: bar.update(
            task, description=label(stage), completed=done, total=total
        )


@contextmanager
def _steps(description: str, total: int, echo: bool = False) -> Iterator[Callable[[str], None]]:
    """A step-by-step bar for a job that narrates each step when it is done (the library's
    ``progress(message)`` callbacks, e.g. :meth:`selflearn.mining.RewriteMiner.fit`): yields
    ``say(message)``, which counts one of ``total`` steps done and shows the message next to the
    bar; ``echo`` also prints every message on stderr, as a log that stays (and the only output
    when stderr is not a terminal). The bar is full when the block ends without an error."""
    with _progress() as bar:
        task = bar.add_task(description, total=total)

        def say(message: str) -> None:
            if echo:
                console.print(message)
            bar.update(task, advance=1, description=f"{description}: {escape(message)}")

        yield say
        bar.update(task, completed=total, description=description)


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
