"""Word error rate and throughput of the real and the noisy ASR channels.

Held-out sentences are sampled from the Home Assistant templates with a seed different from
the one the language model (seed 0) and the packaged confusion model (seed 1) used. Each
sentence gets a sampled speaking condition (voice, tempo, pitch, reverberation); the real
channel decodes every sentence twice -- once without noise and once with mild noise (30-40 dB
SNR) -- with a cold cache and a pool of ``--workers`` processes. The noisy channel transcribes
the same sentences under the same conditions, and once more under its default (sampled)
conditions, which is also where its throughput is timed. Prints a markdown table and the
command line.

    python bench/asr_wer.py --n 300

The real channel needs flite, sox and pocketsphinx (``make asr-deps``). Figures go to
``docs/results/asr_wer.json`` (``asr_wer-noisy.json`` with ``--skip-real``, which measures the
noisy channel alone; to ``$SELFLEARN_RESULTS`` when set).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from selflearn.assistant.asr import (
    VOICES,
    NoisyASR,
    RealASR,
    SpeechCondition,
    sample_condition,
    word_errors,
)
from selflearn.assistant.lm import domain_sentences
from selflearn.core.schema import AsrTrace
from selflearn.evaluate import write_results


class Row:
    """Accumulated results of one table row."""

    def __init__(self, channel: str, condition: str) -> None:
        self.channel = channel
        self.condition = condition
        self.utterances = 0
        self.words = 0
        self.edits = 0
        self.wrong_sentences = 0
        self.conf_right: list[float] = []
        self.conf_wrong: list[float] = []
        self.seconds: float | None = None

    def add(self, ref: str, trace: AsrTrace) -> None:
        """Count one utterance."""
        edits, words = word_errors(ref, trace.text)
        self.utterances += 1
        self.words += words
        self.edits += edits
        if edits:
            self.wrong_sentences += 1
            self.conf_wrong.append(trace.confidence)
        else:
            self.conf_right.append(trace.confidence)

    def figures(self) -> dict[str, Any]:
        """The row as JSON (rates as fractions; ``None`` where the table shows nothing)."""
        return {
            "channel": self.channel,
            "condition": self.condition,
            "utterances": self.utterances,
            "words": self.words,
            "wer": round(self.edits / self.words, 4) if self.words else 0.0,
            "sentence_error_rate": round(self.wrong_sentences / self.utterances, 4)
            if self.utterances
            else 0.0,
            "utterances_per_s": round(self.utterances / self.seconds, 1) if self.seconds else None,
            "mean_confidence_right": round(statistics.mean(self.conf_right), 4) if self.conf_right else None,
            "mean_confidence_wrong": round(statistics.mean(self.conf_wrong), 4) if self.conf_wrong else None,
        }

    def cells(self) -> list[str]:
        """Markdown cells."""
        wer = self.edits / self.words if self.words else 0.0
        ser = self.wrong_sentences / self.utterances if self.utterances else 0.0
        rate = f"{self.utterances / self.seconds:,.1f}" if self.seconds else ""
        right = f"{statistics.mean(self.conf_right):.2f}" if self.conf_right else "-"
        wrong = f"{statistics.mean(self.conf_wrong):.2f}" if self.conf_wrong else "-"
        return [
            self.channel,
            self.condition,
            str(self.utterances),
            str(self.words),
            f"{100 * wer:.1f} %",
            f"{100 * ser:.1f} %",
            rate,
            f"{right} / {wrong}",
        ]


def _table(rows: Sequence[Row]) -> str:
    header = [
        "channel",
        "condition",
        "utterances",
        "words",
        "WER",
        "sentence errors",
        "utt/s",
        "mean confidence right / wrong",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="held-out sentences")
    parser.add_argument("--seed", type=int, default=2, help="sentence/condition seed (not 0 or 1)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--noisy-calls", type=int, default=50000, help="noisy-channel calls timed")
    parser.add_argument("--skip-real", action="store_true", help="only the noisy channel")
    args = parser.parse_args(argv)
    started_all = time.perf_counter()

    rng = random.Random(args.seed)
    pool = domain_sentences(max(4 * args.n, 4000), seed=args.seed, per_intent_enumerated=0)
    sentences = rng.sample(pool, args.n)
    conditions = [replace(sample_condition(rng), noise_snr_db=None) for _ in sentences]
    noisy_conditions = [replace(c, noise_snr_db=float(round(rng.uniform(30, 40)))) for c in conditions]
    groups: list[tuple[str, list[SpeechCondition]]] = [
        ("clean", conditions),
        ("mild noise 30-40 dB", noisy_conditions),
    ]
    rows: list[Row] = []

    def add_rows(
        channel: str,
        label: str,
        conds: Sequence[SpeechCondition],
        traces: Sequence[AsrTrace],
        seconds: float | None,
    ) -> list[Row]:
        overall = Row(channel, f"{label}, all voices")
        overall.seconds = seconds
        per_voice: dict[str, Row] = {}
        for ref, cond, trace in zip(sentences, conds, traces, strict=True):
            overall.add(ref, trace)
            per_voice.setdefault(cond.voice, Row(channel, f"{label}, voice {cond.voice}")).add(ref, trace)
        return [overall] + [per_voice[v] for v in VOICES if v in per_voice]

    noisy = NoisyASR.default()
    noisy_rng = random.Random(args.seed)
    real_rows: dict[str, list[Row]] = {}
    if not args.skip_real:
        with tempfile.TemporaryDirectory(prefix="asr-bench-") as cache:
            real = RealASR(cache_dir=cache)
            for label, conds in groups:
                started = time.perf_counter()
                traces = real.transcribe_many(zip(sentences, conds, strict=True), workers=args.workers)
                real_rows[label] = add_rows("real", label, conds, traces, time.perf_counter() - started)
            real.close()
    for label, conds in groups:
        traces = [noisy.transcribe(s, noisy_rng, c) for s, c in zip(sentences, conds, strict=True)]
        noisy_rows = add_rows("noisy", label, conds, traces, None)
        for index, noisy_row in enumerate(noisy_rows):
            if label in real_rows:
                rows.append(real_rows[label][index])
            rows.append(noisy_row)
    default_row = Row("noisy", "sampled conditions (default)")
    for ref in sentences:
        default_row.add(ref, noisy.transcribe(ref, noisy_rng))

    fresh = NoisyASR.default()
    calls = [sentences[i % len(sentences)] for i in range(args.noisy_calls)]
    started = time.perf_counter()
    for text in calls:
        fresh.transcribe(text, noisy_rng)
    warm_rate = len(calls) / (time.perf_counter() - started)
    default_row.seconds = default_row.utterances / warm_rate
    rows.append(default_row)
    cold = NoisyASR.default()
    distinct = list(dict.fromkeys(pool))
    started = time.perf_counter()
    for text in distinct:
        cold.transcribe(text, noisy_rng)
    cold_rate = len(distinct) / (time.perf_counter() - started)

    print(_table(rows))
    print()
    print(
        f"noisy channel throughput: {warm_rate:,.0f} utt/s "
        f"over {len(calls):,} calls cycling {len(sentences)} sentences; "
        f"{cold_rate:,.0f} utt/s on {len(distinct):,} all-distinct texts"
    )
    print(f"sentences: {len(sentences)} held-out (seed {args.seed}); workers: {args.workers}; cold cache")
    print("command: python " + " ".join(["bench/asr_wer.py", *sys.argv[1:]]))
    figures = {
        "sentences": len(sentences),
        "seed": args.seed,
        "workers": args.workers,
        "rows": [r.figures() for r in rows],
        "noisy_throughput": {
            "warm_utterances_per_s": round(warm_rate),
            "warm_calls": len(calls),
            "warm_distinct_sentences": len(sentences),
            "cold_utterances_per_s": round(cold_rate),
            "cold_distinct_texts": len(distinct),
        },
    }
    name = "asr_wer-noisy" if args.skip_real else "asr_wer"
    write_results(name, figures, seconds=time.perf_counter() - started_all)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
