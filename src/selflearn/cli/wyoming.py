"""``selflearn wyoming``: a Wyoming conversation service for Home Assistant (docs/wyoming.md)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from pathlib import Path
from typing import Annotated

import typer

from selflearn.cli.apps import app
from selflearn.cli.common import StarterOption, console
from selflearn.core.errors import DependencyError


@app.command("wyoming")
def wyoming_cmd(
    uri: Annotated[
        str, typer.Option(help="Where to listen: tcp://HOST:PORT (0.0.0.0: all interfaces), unix://PATH.")
    ] = "tcp://127.0.0.1:10700",
    home_file: Annotated[
        Path | None,
        typer.Option("--home", help="The home's configuration, YAML or JSON (the shape of Home.to_dict)."),
    ] = None,
    store_path: Annotated[
        Path | None,
        typer.Option(
            "--store",
            "-s",
            help="DuckDB store whose homes table holds the household's home (read-only; wins over --home).",
        ),
    ] = None,
    service_url: Annotated[
        str | None,
        typer.Option(
            "--service",
            help="A running `selflearn serve` to read the household's home from (GET /v1/homes/ID: what "
            "the Home Assistant integration keeps in sync); needs --household-id. Read at start.",
        ),
    ] = None,
    household_id: Annotated[
        str | None,
        typer.Option(
            help="Household the requests come from (default: the home's id, or the store's only home)."
        ),
    ] = None,
    rewriter_dir: Annotated[
        Path | None,
        typer.Option(
            "--rewriter",
            "-r",
            help="Rewriter folder (`selflearn train rewriter`, `selflearn starter`), asked only when the NLU "
            "fails. Default: the starter in the package (--no-starter: none). Without one, or when it "
            "fails to load, the NLU answers alone.",
        ),
    ] = None,
    starter: StarterOption = True,
    timeout_ms: Annotated[
        float, typer.Option(help="Ignore a rewriter decision not ready by then (NLU answer).", min=0.1)
    ] = 50.0,
    language: Annotated[str, typer.Option(help="Language answered (English only so far).")] = "en",
    transcript_answer: Annotated[
        str,
        typer.Option(
            help="Answer transcript events with intent/not-recognized (intent: Home Assistant executes "
            "it) or handled/not-handled (handle: a response text only).",
        ),
    ] = "intent",
    confirm: Annotated[
        str,
        typer.Option(
            help="When the rewriter asks 'Did you mean ...?' instead of acting: off, guesses (the global "
            "layer's guesses), unconfirmed or all. A question is answered `handled` with its text; the "
            "next transcript of the conversation answers it (docs/wyoming.md).",
        ),
    ] = "guesses",
) -> None:
    """Serve Home Assistant's English NLU, with the rewriter behind it, over the Wyoming protocol.

    In Home Assistant: Settings -> Devices & services -> Add integration -> Wyoming Protocol,
    with the host and port of --uri; then pick it as a voice assistant's conversation agent."""
    try:
        from selflearn.integrations import wyoming as service_module
    except ImportError as exc:
        raise DependencyError(
            f"the Wyoming service needs the wyoming package ({exc}): pip install 'selflearn[integrations]'"
        ) from exc

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if transcript_answer not in ("intent", "handle"):
        from selflearn.core.errors import ConfigError

        raise ConfigError(f"--transcript-answer must be intent or handle, not {transcript_answer!r}")
    config = service_module.WyomingConfig(
        household_id=household_id,
        timeout_ms=timeout_ms,
        language=language,
        transcript_answer="intent" if transcript_answer == "intent" else "handle",
        confirm=confirm,
    )
    home = service_module.load_home(home_file, store_path, household_id, service_url)
    service_module.server_for(uri)  # a bad URI fails before anything is loaded
    from selflearn.starter import default_rewriter, rewriter_label

    folder = default_rewriter(rewriter_dir, starter)
    console.print(f"loading {rewriter_label(folder, rewriter_dir) or 'no rewriter (NLU only)'} ...")
    rewriter = service_module.load_rewriter(folder)
    service = service_module.ConversationService(home, rewriter, config)
    service.warm_up()
    gc.freeze()  # what was loaded stays out of the cyclic collector's scans (as `selflearn serve`)
    console.print(
        f"selflearn wyoming: listening on {uri} (household {service.household_id}: "
        f"{len(home.areas)} areas, {len(home.entities)} entities; "
        f"rewriter {service.rewriter_version or 'none'}; transcripts answered as {config.transcript_answer})",
        soft_wrap=True,
    )
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(service_module.serve(service, uri))
    finally:
        service.close()
