"""Fit the fast ``noisy`` ASR channel on the real one (``selflearn asr fit-noisy``).

The noisy channel (:class:`~selflearn.assistant.asr.NoisyASR`) samples recognition errors from a
:class:`~selflearn.assistant.asr.ConfusionModel`. This module learns that model from the real
channel (flite speech decoded by pocketsphinx) on two kinds of sentences: domain sentences
sampled from Home Assistant's templates, and sentences as the simulator's users say them
(:func:`traffic_sentences`), many of them outside the decoder's language model. It lives with
the simulator because the second kind comes from it; the assistant itself never fits anything.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from selflearn.assistant.asr import (
    DEFAULT_DECODER_OPTIONS,
    ConfusionModel,
    RealASR,
    calibrate,
    sample_condition,
    word_error_rate,
)
from selflearn.assistant.lm import domain_sentences
from selflearn.assistant.pipeline import AssistantConfig
from selflearn.core.text import normalize_spoken
from selflearn.simulation.simulator import SimulationConfig, simulate

__all__ = ["fit_noisy_channel", "traffic_sentences"]


def fit_noisy_channel(
    n: int = 3000,
    traffic: int = 1500,
    seed: int = 1,
    workers: int = 2,
    cache_dir: str | None = None,
    command: str = "",
) -> ConfusionModel:
    """Decode ``n`` domain sentences and ``traffic`` simulated users' sentences with the real
    channel (cached decodes are reused) and fit a confusion model on what it heard; its
    ``metadata`` records how (``command``: the command line that asked for it).

    Raises:
        DependencyError: flite, sox or pocketsphinx is missing.
    """
    started = time.monotonic()
    rng = random.Random(seed)
    pool = domain_sentences(max(n * 4, 4000), seed=seed, per_intent_enumerated=0)
    sentences = rng.sample(pool, n)
    users = traffic_sentences(traffic, seed=seed) if traffic else []
    sentences += users
    conditions = [sample_condition(rng) for _ in sentences]
    asr = RealASR(cache_dir=cache_dir)
    print(f"real channel: {n} domain + {len(users)} traffic sentences, {workers} workers", file=sys.stderr)
    traces = asr.transcribe_many(zip(sentences, conditions, strict=True), workers=workers, progress=True)
    decode_seconds = time.monotonic() - started
    pairs = [(s, t.text) for s, t in zip(sentences, traces, strict=True)]
    model = calibrate(
        ConfusionModel().fit(pairs, traces, conditions, vocabulary=asr.vocabulary), pairs, conditions
    )
    clean_pairs = [p for p, c in zip(pairs, conditions, strict=True) if c.is_clean]
    model.metadata = {
        "command": command,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "engine": "flite + sox + pocketsphinx " + _pocketsphinx_version(),
        "decoder_options": DEFAULT_DECODER_OPTIONS,
        "lm_hash": asr.lm_hash,
        "n_sentences": len(sentences),
        "n_domain_sentences": n,
        "n_traffic_sentences": len(users),
        "seed": seed,
        "wer": round(model.wer, 4),
        "wer_clean": round(word_error_rate(clean_pairs), 4),
        "sentence_error_rate": round(sum(1 for r, h in pairs if normalize_spoken(r) != h) / len(pairs), 4),
        "seconds": round(time.monotonic() - started, 1),
        "decode_seconds": round(decode_seconds, 1),
        "utterances_decoded": asr.last_batch["decoded"],
        "utterances_from_cache": asr.last_batch["cached"],
    }
    return model


def traffic_sentences(n: int, seed: int = 1) -> list[str]:
    """``n`` distinct sentences as simulated users say them (train-side built-in phrasings:
    templates and colloquial variants, with household names and verbal habits), many of them
    outside the domain language model. Fitting on these as well as on domain sentences
    teaches the noisy channel what the real one does with words it cannot recognize."""
    out: dict[str, None] = {}
    households = 8
    while len(out) < n and households <= 4096:
        with tempfile.TemporaryDirectory() as tmp:
            config = SimulationConfig(
                households=households,
                days=7,
                seed=seed,
                household_prefix="asrfit",
                phrasing_split="train",
                assistant=AssistantConfig(asr="exact"),
            )
            simulate(config, Path(tmp))
            for path in sorted(Path(tmp).glob("truth-*.jsonl")):
                for line in path.read_text(encoding="utf-8").splitlines():
                    row = json.loads(line)
                    if row.get("goal") is not None and row.get("intended_text"):
                        out.setdefault(row["intended_text"], None)
        households *= 2
    texts = sorted(out)
    return random.Random(seed).sample(texts, min(n, len(texts)))


def _pocketsphinx_version() -> str:
    try:
        from importlib.metadata import version

        return version("pocketsphinx")
    except Exception:  # pragma: no cover - metadata missing
        return "?"
