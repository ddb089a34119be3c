"""The exact channel: a perfect recognizer."""

from __future__ import annotations

import random
import re

from selflearn.assistant.asr.conditions import SpeechCondition
from selflearn.core.schema import MAX_TEXT_CHARS, AsrHypothesis, AsrTrace

_EXACT_DROP = re.compile(r"(?<!\d)[./:]|[./:](?!\d)|[^\w\s'./:]")
_SPACES = re.compile(r"\s+")


def normalize_exact(text: str) -> str:
    """Lower case, ``%`` as ``percent``, punctuation removed except apostrophes (and the ``.``,
    ``/`` or ``:`` inside a number such as ``21.5`` or ``7:30``); whitespace collapsed."""
    text = text.lower().replace("%", " percent ").replace("\u2019", "'")
    text = _EXACT_DROP.sub(" ", text)
    words = [w.strip("'") for w in _SPACES.split(text)]
    return " ".join(w for w in words if w)


class ExactASR:
    """A perfect recognizer: the text itself, normalized by :func:`normalize_exact`."""

    name = "exact"

    def transcribe(self, text: str, rng: random.Random, condition: SpeechCondition | None = None) -> AsrTrace:
        """The normalized text with confidence 1.0 (``rng`` and ``condition`` are unused)."""
        top = normalize_exact(text)[:MAX_TEXT_CHARS]
        return AsrTrace(
            text=top, confidence=1.0, nbest=(AsrHypothesis(text=top, confidence=1.0),), engine=self.name
        )
