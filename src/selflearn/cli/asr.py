"""The asr sub-commands: transcribe, fit-noisy (docs/asr.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from selflearn.cli.apps import asr_app
from selflearn.cli.common import console, out


@asr_app.command("transcribe")
def asr_transcribe_cmd(
    text: Annotated[list[str], typer.Argument(help="Sentences to speak and recognise.")],
    channel: Annotated[str, typer.Option(help="exact, noisy or real (flite + sox + pocketsphinx).")] = "real",
    voice: Annotated[str, typer.Option(help="flite voice of the real channel.")] = "slt",
    seed: Annotated[int, typer.Option(help="Random seed of the noisy channel.")] = 0,
) -> None:
    """Run a channel on sentences; print one AsrTrace (JSON) per sentence."""
    import random

    from selflearn.assistant.asr import SpeechCondition, make_asr

    asr = make_asr(channel)
    rng = random.Random(seed)
    condition = SpeechCondition(voice) if channel in ("real", "pocketsphinx") else None
    for sentence in text:
        out.print_json(asr.transcribe(sentence, rng, condition).model_dump_json())


@asr_app.command("fit-noisy")
def asr_fit_noisy_cmd(
    out_file: Annotated[
        Path, typer.Option("--out", help="Folder to write the confusion model to (model.json).")
    ] = Path("src/selflearn/data/noisy_asr"),
    n: Annotated[int, typer.Option("--n", help="Domain sentences from the templates.", min=1)] = 3000,
    traffic: Annotated[
        int, typer.Option(help="Simulated users' sentences (many outside the domain language model).", min=0)
    ] = 1500,
    seed: Annotated[int, typer.Option(help="Sentence and speaking-condition seed.")] = 1,
    workers: Annotated[int, typer.Option(help="Decoder processes.", min=1)] = 2,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Real-channel cache (default ~/.cache/selflearn).")
    ] = None,
) -> None:
    """Refit the noisy channel's confusion model on the real channel (needs flite, sox, pocketsphinx)."""
    from selflearn.simulation.asr_fit import fit_noisy_channel

    command = "selflearn asr " + " ".join(sys.argv[2:])
    model = fit_noisy_channel(n, traffic, seed, workers, str(cache_dir) if cache_dir else None, command)
    out_file = model.save(out_file)
    console.print(
        f"fitted on {model.metadata['n_sentences']} sentences: WER {model.wer:.3f}, "
        f"{len(model.words)} words, {len(model.phrases)} phrases -> {out_file} "
        f"in {model.metadata['seconds']} s"
    )
