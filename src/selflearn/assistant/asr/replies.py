"""Hearing the answer to a question: the recogniser in the dialogue state.

A recogniser whose language model holds only the assistant's commands cannot hear "yes" (the
real channel's model has no such word; the noisy channel learned from it turns "yes" into
"players"). An assistant that asks must expect the answers, as dialogue systems do by switching
to a dialogue-state model while a question waits. :func:`reply_recognizer` gives that recogniser
for each channel:

* ``exact``: the channel itself;
* ``real``: PocketSphinx with the domain model plus the replies
  (:func:`reply_lm_sentences`), so a barge-in request is still recognised;
* ``noisy``: a reply is heard right :data:`REPLY_ACCURACY` of the time (measured on the real
  dialogue-state recogniser by ``bench/experiments/reply_asr.py``), otherwise as the noisy channel
  hears it; anything else as the noisy channel hears it.
"""

from __future__ import annotations

import random
from typing import Any

from selflearn.core.schema import AsrHypothesis, AsrTrace
from selflearn.dialogue.replies import REPLY_SENTENCES, read_reply

REPLY_LM_WEIGHT = 100
"""Copies of each reply in the dialogue-state model's training sentences (beside 20,000 domain
sentences): replies are what a waiting question mostly gets."""

REPLY_ACCURACY = 0.877
"""Share of spoken replies the real dialogue-state recogniser reads as the answer meant: 263 of
300 (the 10 replies simulated users say, each under 30 sampled speaking conditions; the domain
model alone: 29 of 300; neither model misread any of 300 domain requests as a reply). Measured
2026-11-26 by ``python bench/experiments/reply_asr.py --conditions 30``."""


def reply_lm_sentences(weight: int = REPLY_LM_WEIGHT) -> list[str]:
    """The replies, ``weight`` times each, to add to a domain language model."""
    return [sentence for sentence in REPLY_SENTENCES for _ in range(weight)]


class NoisyReplies:
    """The noisy channel in the dialogue state (see the module docstring)."""

    def __init__(self, asr: Any, accuracy: float = REPLY_ACCURACY) -> None:
        self.asr = asr
        self.accuracy = accuracy
        self.name = asr.name

    def transcribe(self, text: str, rng: random.Random, condition: Any = None) -> AsrTrace:
        if read_reply(text) is not None and rng.random() < self.accuracy:
            spoken = " ".join(text.lower().split())
            best = AsrHypothesis(text=spoken, confidence=0.9)
            return AsrTrace(text=spoken, confidence=0.9, nbest=(best,), engine=self.name)
        trace: AsrTrace = self.asr.transcribe(text, rng, condition)
        return trace


def reply_recognizer(asr: Any) -> Any:
    """The recogniser that hears answers while a question waits, for the channel ``asr``."""
    if asr.name == "noisy":
        return NoisyReplies(asr)
    if asr.name == "pocketsphinx":
        from selflearn.assistant.asr.real import RealASR

        return RealASR(extra_sentences=reply_lm_sentences(), cache_dir=getattr(asr, "cache_dir", None))
    return asr
