"""Dense retrieval: the request's nearest candidate patterns by a trained sentence encoder.

The first stage of the neural rewriter. Candidate patterns come from two sources:

* ``global``: the global layer's target patterns (:meth:`Knowledge.is_target`: k-anonymous
  patterns that work, with a known meaning);
* ``home``: the home language (:mod:`selflearn.rewrite.home_language`): what Home Assistant's
  templates understand, whether or not anybody has said it.

Both are embedded once with the encoder (``embed_text`` of the pattern, as the request is) and
indexed per slot signature, so a request is only compared with patterns its own values can fill.
Search is exact (a matrix-vector product per slot signature: a few thousand rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from selflearn.rewrite.home_language import HomeLanguage
from selflearn.rewrite.knowledge import Knowledge, embed_text, slots_key


class Encoder(Protocol):
    """What retrieval needs of an embedder (:class:`~selflearn.rewrite.encoder.SentenceEncoder`,
    :class:`~selflearn.core.embed.StaticEmbedder`)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_one(self, text: str) -> np.ndarray: ...


@dataclass(frozen=True)
class Entry:
    """One indexed candidate pattern."""

    pattern: str
    source: str
    """``global`` or ``home``."""
    row: int
    """Its row in the source (``Knowledge.patterns_`` or ``HomeLanguage.patterns_``)."""
    intent: str | None
    signature: str | None = None
    """Known for global patterns (what their successful turns meant); None for the home's."""


@dataclass
class _Part:
    entries: list[Entry] = field(default_factory=list)
    vectors: np.ndarray | None = None


class DenseIndex:
    """Candidate patterns of the global layer and the home language, per slot signature."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.parts: dict[str, _Part] = {}

    def add(self, entries: Sequence[Entry]) -> DenseIndex:
        """Embed ``entries`` and add them (a pattern already indexed keeps its first entry)."""
        have = {e.pattern for part in self.parts.values() for e in part.entries}
        new = [e for e in dict((e.pattern, e) for e in entries).values() if e.pattern not in have]
        if not new:
            return self
        vectors = self.encoder.encode([embed_text(e.pattern) for e in new])
        grouped: dict[str, list[int]] = {}
        for i, e in enumerate(new):
            grouped.setdefault(slots_key(e.pattern), []).append(i)
        for key, rows in grouped.items():
            part = self.parts.setdefault(key, _Part())
            part.entries.extend(new[i] for i in rows)
            block = vectors[rows]
            part.vectors = block if part.vectors is None else np.vstack([part.vectors, block])
        return self

    def __len__(self) -> int:
        return sum(len(p.entries) for p in self.parts.values())

    def search(
        self, vector: np.ndarray, slots: str, k: int, sources: frozenset[str] | None = None
    ) -> list[tuple[Entry, float]]:
        """The ``k`` entries of slot signature ``slots`` nearest ``vector`` (cosine), best first."""
        part = self.parts.get(slots)
        if part is None or part.vectors is None:
            return []
        sims = part.vectors @ vector
        if sources is not None:
            allowed = np.array([e.source in sources for e in part.entries])
            sims = np.where(allowed, sims, -np.inf)
        k = min(k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        return [(part.entries[i], float(sims[i])) for i in top if np.isfinite(sims[i])]


def global_entries(knowledge: Knowledge) -> list[Entry]:
    """The global layer's target patterns as index entries."""
    return [
        Entry(p.pattern, "global", row, p.intent, p.signature)
        for row, p in enumerate(knowledge.patterns_)
        if knowledge.targets[row]
    ]


def home_entries(language: HomeLanguage) -> list[Entry]:
    """The home language's patterns as index entries."""
    return [Entry(p.pattern, "home", row, p.intent) for row, p in enumerate(language.patterns_)]
