"""``selflearn label``: goal, goal-success, intent and slot labels for the logged turns
(docs/labels.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from selflearn.cli.apps import app
from selflearn.cli.common import _stages, out

label_app = typer.Typer(
    invoke_without_command=True,
    help="Goal, goal-success, intent and slot labels for the logged turns; their exports (docs/labels.md).",
)
app.add_typer(label_app, name="label")


@label_app.callback()
def label_cmd(
    ctx: typer.Context,
    store_path: Annotated[
        Path | None,
        typer.Option("--store", "-s", help="DuckDB store file to label (needs `selflearn signals`)."),
    ] = None,
    min_rephrase: Annotated[
        float,
        typer.Option(
            help="P(rephrase) that joins a turn to the goal of the turn it rephrases.", min=0, max=1
        ),
    ] = 0.5,
    min_defect: Annotated[
        float, typer.Option(help="P(defect) from which a turn counts as failed.", min=0, max=1)
    ] = 0.5,
) -> None:
    """Label every stored turn from the logs' own evidence and write the labels table: its goal,
    whether the goal succeeded, and the intent and slots the user meant (from what the assistant
    served, a successful paraphrase or a confirmed proposal). Never reads simulation truth."""
    if ctx.invoked_subcommand is not None:
        return
    if store_path is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    from selflearn.core.errors import DataError
    from selflearn.core.store import Store
    from selflearn.labels import LABEL_STAGES, label_store

    if not store_path.exists():
        raise DataError(
            f"no store at {store_path}: ingest logs first (`selflearn ingest LOGS --store {store_path}`)"
        )
    with Store(store_path) as store, _stages("labelling turns", LABEL_STAGES) as start:
        report = label_store(
            store,
            min_rephrase=min_rephrase,
            min_defect=min_defect,
            progress=start,
            store_name=str(store_path),
        )
    out.print(report.summary())
