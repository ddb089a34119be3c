"""What the corpus loaders share: the load report, the de-duplicating collector, text helpers
(normalisation, number words) and JSON-lines reading."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from selflearn.core.text import ONES, TENS
from selflearn.simulation.corpora.mapping import OUT_OF_SCOPE
from selflearn.simulation.phrasing import KNOWN_PLACEHOLDERS, Phrasing

__all__ = ["LoadReport"]


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    """What a loader did with one corpus."""

    corpus: str
    """Corpus name (one of :data:`CORPORA`)."""
    available: bool = False
    """Whether the corpus files were found."""
    rows_read: int = 0
    """Utterances read (sentences for ``ha_tests``, rows for HWU64/SLURP)."""
    converted: int = 0
    """Utterances turned into a phrasing, before de-duplication."""
    duplicates: int = 0
    """Converted utterances whose (pattern, intent, fixed slots) was already kept."""
    dropped: Counter[str] = field(default_factory=Counter)
    """Utterances not turned into a phrasing, by reason."""
    rerouted_out_of_scope: Counter[str] = field(default_factory=Counter)
    """Utterances of a mapped (in-scope) corpus intent sent to ``OutOfScope``, by reason."""
    per_intent: Counter[str] = field(default_factory=Counter)
    """Kept phrasings per Home Assistant intent (``OutOfScope`` included)."""
    per_original: dict[str, Counter[str]] = field(default_factory=dict)
    """Kept phrasings per corpus intent, split by Home Assistant intent."""

    @property
    def kept(self) -> int:
        """Phrasings returned."""
        return sum(self.per_intent.values())

    @property
    def out_of_scope(self) -> int:
        """Kept phrasings whose intent is ``OutOfScope``."""
        return self.per_intent.get(OUT_OF_SCOPE, 0)

    @property
    def dropped_total(self) -> int:
        """Utterances dropped, all reasons together."""
        return sum(self.dropped.values())


class _Collector:
    """De-duplicates phrasings and keeps the report's counts."""

    def __init__(self, report: LoadReport) -> None:
        self.report = report
        self.out: dict[tuple[str, str, tuple[tuple[str, str], ...]], Phrasing] = {}

    def add(self, phr: Phrasing) -> None:
        unknown = set(phr.placeholders) - KNOWN_PLACEHOLDERS
        if unknown:
            self.drop("unknown_placeholder:" + ",".join(sorted(unknown)))
            return
        self.report.converted += 1
        key = (phr.pattern, phr.intent, tuple(sorted(phr.fixed_slots.items())))
        if key in self.out:
            self.report.duplicates += 1
            return
        self.out[key] = phr
        self.report.per_intent[phr.intent] += 1
        original = phr.original_intent or phr.intent
        self.report.per_original.setdefault(original, Counter())[phr.intent] += 1

    def drop(self, reason: str) -> None:
        self.report.dropped[reason] += 1

    def phrasings(self) -> list[Phrasing]:
        return list(self.out.values())


# --------------------------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------------------------

_PUNCT = re.compile(r"(?<!\d)\.|\.(?!\d)|[^\w\s'%@#/°.\-]")
_SPACES = re.compile(r"\s+")


_CLITIC = re.compile(r"(?<=\S) '(s|re|ll|ve|d|t|m)\b")


def _glue(text: str) -> str:
    """Re-attach clitics split off at an entity boundary: ``"today 's"`` -> ``"today's"``."""
    return _CLITIC.sub(r"'\1", text)


def _norm(text: str) -> str:
    """Lower-case, punctuation (except ' % @ # / ° - and decimal points) to spaces, single spaces."""
    return _SPACES.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


_WORD_VALUE: Final = {w: i for i, w in enumerate(ONES)} | {w: 10 * i for i, w in enumerate(TENS) if i >= 2}


def _number_words(n: int) -> str | None:
    """``n`` in words for 0..999 (``"twenty one"``); ``None`` otherwise."""
    if n < 0 or n > 999:
        return None
    if n < 20:
        return ONES[n]
    if n < 100:
        tens, unit = divmod(n, 10)
        return TENS[tens] + ("" if unit == 0 else " " + ONES[unit])
    hundreds, rest = divmod(n, 100)
    head = ONES[hundreds] + " hundred"
    tail = _number_words(rest) if rest else None
    return head if tail is None else f"{head} and {tail}"


def _below_100(words: Sequence[str], i: int) -> tuple[int, int] | None:
    """(end, value) of a number word or tens+unit pair (``"sixty five"``) starting at ``i``."""
    if i >= len(words) or words[i] not in _WORD_VALUE:
        return None
    value = _WORD_VALUE[words[i]]
    if value >= 20 and i + 1 < len(words) and 1 <= _WORD_VALUE.get(words[i + 1], 0) <= 9:
        return i + 2, value + _WORD_VALUE[words[i + 1]]
    return i + 1, value


def _parse_number(words: Sequence[str]) -> tuple[int, int, int, str] | None:
    """First number in ``words``: (start, end, value, suffix). Digits (``"50"``, ``"50%"``) or
    number words up to 999 (``"sixty five"``, ``"one hundred and five"``)."""
    for i, word in enumerate(words):
        digit = re.fullmatch(r"(\d+)(%?)", word)
        if digit:
            return i, i + 1, int(digit.group(1)), digit.group(2)
        if word not in _WORD_VALUE:
            continue
        if 1 <= _WORD_VALUE[word] <= 9 and i + 1 < len(words) and words[i + 1] == "hundred":
            end, value = i + 2, _WORD_VALUE[word] * 100
            skip_and = 1 if end < len(words) and words[end] == "and" else 0
            rest = _below_100(words, end + skip_and)
            if rest is not None:
                end, value = rest[0], value + rest[1]
            return i, end, value, ""
        below = _below_100(words, i)
        assert below is not None
        return i, below[0], below[1], ""
    return None


def _find(text: str, value: str, claimed: Sequence[tuple[int, int]]) -> tuple[int, int] | None:
    """First whole-word occurrence of ``value`` in ``text`` not overlapping a claimed span."""
    if not value:
        return None
    for match in re.finditer(r"(?<!\w)" + re.escape(value) + r"(?!\w)", text):
        start, end = match.span()
        if all(end <= s or start >= e for s, e in claimed):
            return start, end
    return None


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                row = json.loads(line)
                if isinstance(row, dict):
                    yield row
