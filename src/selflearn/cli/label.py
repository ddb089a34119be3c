"""``selflearn label``: goal, goal-success, intent and slot labels for the logged turns
(docs/labels.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from selflearn.cli.apps import app
from selflearn.cli.common import _stages, open_store, out
from selflearn.core.artefacts import save_atomically

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
    model: Annotated[
        Path | None,
        typer.Option(
            help="A label model (`selflearn label train`) for the turns the rules leave unlabelled."
        ),
    ] = None,
    model_min_confidence: Annotated[
        float, typer.Option(help="Probability the model's intent needs to be used.", min=0, max=1)
    ] = 0.8,
) -> None:
    """Label every stored turn from the logs' own evidence and write the labels table: its goal,
    whether the goal succeeded, and the intent and slots the user meant (from what the assistant
    served, a successful paraphrase or a confirmed proposal). Never reads simulation truth."""
    if ctx.invoked_subcommand is not None:
        return
    if store_path is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    from selflearn.labels import LABEL_STAGES, label_store

    hint = f": ingest logs first (`selflearn ingest LOGS --store {store_path}`)"
    with open_store(store_path, read_only=False, hint=hint) as store:
        labeler = None
        if model is not None:
            from selflearn.labels.model import ModelLabeler, load_labeller

            labeler = ModelLabeler(load_labeller(model), store, model_min_confidence)
        with _stages("labelling turns", LABEL_STAGES) as start:
            report = label_store(
                store,
                min_rephrase=min_rephrase,
                min_defect=min_defect,
                labeler=labeler,
                progress=start,
                store_name=str(store_path),
            )
    out.print(report.summary())


@label_app.command("train")
def train_cmd(
    store_path: Annotated[
        Path, typer.Option("--store", "-s", help="DuckDB store labelled by `selflearn label`.")
    ],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the model to.")],
    per_turn: Annotated[
        bool, typer.Option(help="Train the non-contextual per-turn baseline instead.")
    ] = False,
    pretrain: Annotated[
        bool, typer.Option(help="Contextual pretraining on synthetic inconsistent dialogues first.")
    ] = True,
    encoder: Annotated[
        str,
        typer.Option(
            help="Turn encoder: 'static' (MiniLM's distillation, a lookup) or 'minilm' "
            "(all-MiniLM-L6-v2 itself, frozen; slower, not better in bench/labels.py)."
        ),
    ] = "static",
    validation: Annotated[
        float,
        typer.Option(
            help="Share of the households held out to pick the epoch with the lowest validation loss "
            "(0: train on all, keep the last epoch)."
        ),
    ] = 0.0,
) -> None:
    """Train the contextual label model (a small transformer over each turn's neighbours, on
    MiniLM turn embeddings; docs/labels.md) on the store's labels table.

    Example: selflearn label train --store logs.duckdb --out models/labels"""
    from dataclasses import replace

    from selflearn.labels.model import FIT_STAGES, LabelModel, LabelModelConfig, PerTurnLabeller

    config = LabelModelConfig(encoder=encoder, validation=validation)
    if not pretrain:
        config = replace(config, pretrain_epochs=0)
    learner = PerTurnLabeller(config) if per_turn else LabelModel(config)
    with (
        open_store(store_path, read_only=True) as store,
        _stages("training the label model", FIT_STAGES) as start,
    ):
        learner.fit(store, progress=start)
    folder = save_atomically(out_dir, learner.save)
    out.print(f"label model {learner.version} -> {folder}")
