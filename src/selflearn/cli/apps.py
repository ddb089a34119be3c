"""The command tree: the root app and its sub-command groups.

The command modules register their commands on these; nothing here imports them back.
The groups are added here, in the order ``selflearn --help`` lists them."""

from __future__ import annotations

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Self-learning defect reduction for voice and chat assistants.",
)

train_app = typer.Typer(
    no_args_is_help=True, help="Train the learned components (each saves a model folder)."
)

fpi_app = typer.Typer(
    no_args_is_help=True, help="Failure point isolation: which pipeline stage failed first (docs/fpi.md)."
)

asr_app = typer.Typer(
    no_args_is_help=True, help="The ASR channels: run one on sentences, refit the noisy one (docs/asr.md)."
)

evaluate_app = typer.Typer(
    no_args_is_help=True,
    help="Replay named simulated populations with and without a learner; score against simulation truth.",
)

data_app = typer.Typer(
    no_args_is_help=True,
    help="The public corpora the simulator, the starter and the benchmarks read (docs/corpora.md).",
)

app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
app.add_typer(fpi_app, name="fpi")
app.add_typer(asr_app, name="asr")
app.add_typer(evaluate_app, name="evaluate")
