"""Word alignment and error rates."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from selflearn.core.text import normalize_spoken


def align_words(ref: Sequence[str], hyp: Sequence[str]) -> list[tuple[str | None, str | None]]:
    """Levenshtein alignment of two word sequences.

    Returns pairs ``(ref_word, hyp_word)``: equal words for a match, two different words for a
    substitution, ``(word, None)`` for a deletion and ``(None, word)`` for an insertion. On ties
    substitutions are preferred, then deletions.
    """
    n, m = len(ref), len(hyp)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        cost[i][0] = i
    for j in range(1, m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        row, prev = cost[i], cost[i - 1]
        word = ref[i - 1]
        for j in range(1, m + 1):
            sub = prev[j - 1] + (word != hyp[j - 1])
            dele = prev[j] + 1
            ins = row[j - 1] + 1
            row[j] = min(sub, dele, ins)
    out: list[tuple[str | None, str | None]] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            out.append((ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i > 0 and cost[i][j] == cost[i - 1][j] + 1:
            out.append((ref[i - 1], None))
            i -= 1
        else:
            out.append((None, hyp[j - 1]))
            j -= 1
    out.reverse()
    return out


def word_errors(ref: str, hyp: str) -> tuple[int, int]:
    """(word edits, reference words) between two texts in spoken form (see
    :func:`~selflearn.assistant.lm.normalize_spoken`)."""
    ref_words = normalize_spoken(ref).split()
    hyp_words = normalize_spoken(hyp).split()
    edits = sum(1 for r, h in align_words(ref_words, hyp_words) if r != h)
    return edits, len(ref_words)


def word_error_rate(pairs: Iterable[tuple[str, str]]) -> float:
    """Corpus WER of (reference, hypothesis) pairs: total edits over total reference words."""
    edits = words = 0
    for ref, hyp in pairs:
        e, n = word_errors(ref, hyp)
        edits += e
        words += n
    return edits / words if words else 0.0
