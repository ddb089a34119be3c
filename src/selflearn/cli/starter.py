"""``selflearn starter``: build the starter global rewriter a new install serves from day one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from selflearn.cli.apps import app
from selflearn.cli.common import console, out

STARTER_HELP = (
    "Build a starter global rewriter for a new install (docs/home-assistant.md#install). The package "
    "ships one built with the defaults, which `selflearn serve` loads without --rewriter; this rebuilds "
    "it, or builds one with another recipe (needs the corpora: docs/corpora.md).\n\n"
    "Simulates households whose users speak the way the public corpora do (HWU64 and Home Assistant's "
    "test sentences, from --data-dir), scores their friction, mines a k-anonymous rewrite table and trains "
    "the rewriter on it: the recipe of the project's flagship rewriter (docs/benchmarks.md). Reproducible "
    "(fixed seeds); about 25 minutes on 2 cores with the defaults. Serve it with questions on:\n\n"
    "  selflearn serve --rewriter models/starter --store logs.duckdb --confirm guesses\n\n"
    "To replace the packaged one in a source tree: --out src/selflearn/data/starter."
)


@app.command("starter", help=STARTER_HELP)
def starter_cmd(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Rewriter folder to write.")] = Path(
        "models/starter"
    ),
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder holding the corpora (`selflearn data fetch` gets them; default: "
            "$SELFLEARN_DATA_DIR, else ../shared/data, else ~/.local/share/selflearn/data)."
        ),
    ] = None,
    work: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the simulated logs and their store (default: <out>-work); kept, so a "
            "second run with the same recipe only retrains."
        ),
    ] = None,
    households: Annotated[
        int, typer.Option(help="Households per part of the population (three parts).", min=3)
    ] = 120,
    days: Annotated[float, typer.Option(help="Simulated days per household.", min=0.1)] = 14.0,
    min_users: Annotated[
        int, typer.Option("--min-users", "-k", help="k: distinct users a pooled pattern needs.", min=1)
    ] = 5,
    nlu: Annotated[
        str,
        typer.Option(
            help="The matcher of the simulated homes: strict (Assist's templates alone, as Home Assistant "
            "matches before 2025.8 and since 2026.5) or strict+gazetteer (templates, then fuzzy "
            "matching of names, as 2025.8 to 2026.4 did)."
        ),
    ] = "strict",
    ask_threshold: Annotated[
        float | None,
        typer.Option(
            "--ask-threshold",
            help="The score a guess needs to be asked about ('Did you mean ...?'); 0: the bar acting "
            "uses (more questions, more rescues). Default 0.12, chosen on a development population "
            "(docs/benchmarks.md#a-real-home).",
            min=0.0,
            max=0.99,
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Worker processes (the result does not depend on it).", min=1)
    ] = 2,
) -> None:
    """Build the starter rewriter (help: :data:`STARTER_HELP`)."""
    from selflearn.core.errors import ConfigError
    from selflearn.starter import ASK_THRESHOLD, StarterConfig, build_starter

    if nlu not in ("strict", "strict+gazetteer"):
        raise ConfigError(f"--nlu must be strict or strict+gazetteer, not {nlu!r}")

    config = StarterConfig(
        households=households,
        days=days,
        data_dir=str(data_dir) if data_dir is not None else None,
        min_users=min_users,
        nlu="strict" if nlu == "strict" else "strict+gazetteer",
        ask_threshold=ASK_THRESHOLD if ask_threshold is None else ask_threshold or None,
        workers=workers,
    )
    folder = work if work is not None else out_dir.with_name(out_dir.name + "-work")
    result = build_starter(config, out_dir, folder, say=lambda line: console.print(line, markup=False))
    m = result.manifest
    out.print(
        f"starter rewriter -> {result.folder}: {m['households']:,} households, {m['turns']:,} turns, "
        f"{m['rewrites']:,} mined rewrites, {m['bytes'] / 1e6:.0f} MB, "
        f"built in {m['seconds']['total_s'] / 60:.1f} min",
        markup=False,
    )
