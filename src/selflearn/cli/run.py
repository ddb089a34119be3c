"""Running the loop: demo (the whole loop on built-in data) and serve (the online rewriter)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from selflearn.cli.apps import app
from selflearn.cli.common import StarterOption, _print_stats, _run_simulation, console, out
from selflearn.core.store import Store
from selflearn.stats import compute_stats


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
    for row in result.table.rows()[:10]:
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


@app.command("serve")
def serve_cmd(
    rewriter_dir: Annotated[
        Path | None,
        typer.Option(
            "--rewriter",
            "-r",
            help="Rewriter folder to serve (`selflearn train rewriter`, `selflearn starter`). Default: the "
            "starter in the package (--no-starter: none). Without one, or when it fails to load, "
            "requests pass through unchanged and /healthz says why.",
        ),
    ] = None,
    starter: StarterOption = True,
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
    rebuild: Annotated[
        bool,
        typer.Option(
            help="At start, rebuild what the homes taught from the store: their names, fixes, yes and "
            "no answers, concepts and refusals (--no-rebuild: start empty)."
        ),
    ] = True,
    replay_days: Annotated[
        float | None,
        typer.Option(help="With --rebuild, replay only the store's last N days of turns (default: all)."),
    ] = None,
    admin_token: Annotated[
        str | None,
        typer.Option(
            envvar="SELFLEARN_ADMIN_TOKEN",
            help="Require 'Authorization: Bearer TOKEN' on everything that reads or changes a "
            "household's data or runs the service (/v1/admin/*, turns, homes, households, "
            "concepts, dialogue, reviews). Required to listen beyond loopback.",
        ),
    ] = None,
    rate_limit: Annotated[
        float,
        typer.Option(
            help="Requests per second one client address may send on average (bursts of twice as "
            "many); 429 above it. 0: no limit (behind a proxy, limit there).",
            min=0,
        ),
    ] = 100.0,
    shed_lag_ms: Annotated[
        float,
        typer.Option(
            help="When the event loop runs this many ms behind, answer at once instead of queueing: "
            "a rewrite with its original text (fail open), the rest 429; a batch of turns also 429 "
            "when the batches ahead of it would hold the store this long. 0: never shed.",
            min=0,
        ),
    ] = 200.0,
    models_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder POST /v1/admin/reload may load rewriters from (default: the --rewriter "
            "folder's parent; with the packaged starter, ./models)."
        ),
    ] = None,
    snapshot_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder POST /v1/admin/snapshot may write into (default: the --store file's folder)."
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
    confirm: Annotated[
        str,
        typer.Option(
            help="When the rewriter asks instead of acting: off, guesses (ranked and mined rewrites: "
            "the global layer's guesses), unconfirmed (also the household's own fixes until it said "
            "yes) or all; sensitive intents always ask unless off. POST /v1/dialogue asks 'Did you "
            "mean ...?'; POST /v1/rewrite answers a question as `confirm` with `text` the original "
            "(docs/dialogue.md).",
        ),
    ] = "guesses",
    ask_to_be_taught: Annotated[
        bool,
        typer.Option(
            help="Ask to be taught about names a home lacks ('I don't know what mothership is. Can you "
            "teach me?'), within a nag budget; teaching commands work either way."
        ),
    ] = True,
) -> None:
    """Serve the online rewriter over HTTP (one process; run replicas for more).

    POST /v1/rewrite, POST /v1/dialogue, POST /v1/turns, PUT /v1/homes/ID, DELETE
    /v1/households/ID, POST /v1/admin/reload, GET /healthz, GET /metrics; OpenAPI docs at /docs
    (see docs/service.md)."""
    import uvicorn

    from selflearn.service import ServiceConfig, create_app
    from selflearn.service.config import check_exposure
    from selflearn.starter import default_rewriter, rewriter_label

    check_exposure(host, admin_token)
    folder = default_rewriter(rewriter_dir, starter)
    if rewriter_dir is None and folder is not None and models_dir is None:
        models_dir = Path("models")  # where `selflearn train rewriter --out models/...` writes
    config = ServiceConfig(
        rewriter=folder,
        store=store_path,
        request_timeout_ms=timeout_ms,
        watch_s=watch,
        rebuild=rebuild,
        replay_days=replay_days,
        admin_token=admin_token,
        rate_limit=rate_limit or None,
        shed_lag_ms=shed_lag_ms or None,
        models_dir=models_dir,
        snapshot_dir=snapshot_dir,
        decision_threads=decision_threads,
        confirm=confirm,
        teach_moments=ask_to_be_taught,
        freeze_gc=True,
        dialogue_warmup=True,
    )
    console.print(f"loading {rewriter_label(folder, rewriter_dir) or 'no rewriter (pass-through)'} ...")
    uvicorn.run(create_app(config), host=host, port=port, access_log=access_log, log_level="info")
