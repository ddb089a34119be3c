"""The rewrite-table guards' column-wise pass: the placeholders and the meaning bits of many
patterns at once, read straight from a :class:`~selflearn.rewrite.columns.Strings` buffer.

:func:`placeholder_counts` is :func:`~selflearn.core.delex.slot_signature` as counts per
placeholder kind; :func:`meaning_bits` is :func:`~selflearn.core.guards.facts` restricted to the
bits ``changes_meaning`` reads, the words read 8 bytes at a time and looked up by bisection among
the guards' vocabulary. Both give, row for row, what the one-pattern functions give
(tests/test_table_index.py checks the table's refusals against them).
"""

from __future__ import annotations

import numpy as np

from selflearn.core.delex import PLACEHOLDER
from selflearn.core.guards import _ACTION_DIMS, _LOW, _OBJECT_BITS, _WORD_BITS
from selflearn.rewrite.columns import Strings

_KINDS = PLACEHOLDER.pattern[PLACEHOLDER.pattern.index("(") + 1 : PLACEHOLDER.pattern.index(")")].split("|")
"""The placeholder kinds (``area``, ``floor``, ...)."""


_LOW_U, ACTION_DIMS_U, OBJECT_BITS_U = np.uint64(_LOW), np.uint64(_ACTION_DIMS), np.uint64(_OBJECT_BITS)

_MEANING_BITS = _LOW | _LOW << 1 | _OBJECT_BITS
"""The bits of :func:`~selflearn.core.guards.facts` that changes_meaning reads (below 64)."""

_WORD_WIDTH = 16
"""Bytes of a word the guards' pass compares (the longest of the vocabulary fits)."""


def dims(bits: np.ndarray) -> np.ndarray:
    out: np.ndarray = (bits | bits >> np.uint64(1)) & _LOW_U
    return out


# --- the guards' pass ----------------------------------------------------------------------------


def _chunk(strings: Strings, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``start:stop``'s bytes, each after a zero byte (no word or placeholder runs from one
    row into the next), then :data:`_WORD_WIDTH` zeros; and where each row begins."""
    bounds = strings.offsets[start : stop + 1].astype(np.int64)
    low, high = int(bounds[0]), int(bounds[-1])
    rows = stop - start
    buffer = np.zeros(high - low + rows + _WORD_WIDTH, dtype=np.uint8)
    begins = bounds[:-1] - low + np.arange(1, rows + 1)
    keep = np.ones(len(buffer), dtype=bool)
    keep[begins - 1] = False  # the zero before each row
    keep[len(buffer) - _WORD_WIDTH :] = False
    buffer[keep] = strings.data[low:high]
    return buffer, begins


def _words(buffer: np.ndarray, at: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first and next 8 bytes (as little-endian uint64) of the words of ``length`` bytes at
    ``at``, zero past each word; both zero for a word longer than any the guards know."""
    view = np.ndarray((len(buffer) - 8,), dtype="<u8", buffer=buffer, strides=(1,))
    length = np.minimum(length, len(_FIRST_MASK) - 1)
    return view[at] & _FIRST_MASK[length], view[at + 8] & _NEXT_MASK[length]


_LONGEST = max(len(w) for w in _WORD_BITS)
_FIRST_MASK = np.array(
    [(1 << 8 * min(k, 8)) - 1 if k <= _LONGEST else 0 for k in range(max(_LONGEST, 9) + 2)], np.uint64
)
"""Per word length: the mask of its bytes among the first 8 (0: longer than any guard word)."""
_NEXT_MASK = np.array(
    [(1 << 8 * max(0, k - 8)) - 1 if k <= _LONGEST else 0 for k in range(max(_LONGEST, 9) + 2)], np.uint64
)
"""Per word length: the mask of its bytes among the next 8."""
assert _LONGEST <= _WORD_WIDTH, "a guard word longer than the pass reads"


def _halves(word: bytes) -> tuple[np.uint64, np.uint64]:
    """``word``'s two halves as :func:`_words` reads them."""
    padded = word.ljust(_WORD_WIDTH, b"\0")
    return np.uint64(int.from_bytes(padded[:8], "little")), np.uint64(int.from_bytes(padded[8:16], "little"))


def placeholder_counts(strings: Strings, start: int, stop: int) -> np.ndarray:
    """How often each placeholder (:data:`_KINDS`) appears in each of rows ``start:stop``
    (:func:`~selflearn.core.delex.slot_signature` as counts)."""
    out = np.zeros((stop - start, len(_KINDS)), dtype=np.int64)
    if stop <= start:
        return out
    buffer, begins = _chunk(strings, start, stop)
    at = np.flatnonzero(buffer == ord("{"))
    if not len(at):
        return out
    row = np.searchsorted(begins, at, side="right") - 1
    view = np.ndarray((len(buffer) - 8,), dtype="<u8", buffer=buffer, strides=(1,))
    first, following = view[at], view[at + 8]
    for j, kind in enumerate(_KINDS):
        placeholder = ("{" + kind + "}").encode()
        want_first, want_next = _halves(placeholder)
        mask_first = np.uint64((1 << 8 * min(len(placeholder), 8)) - 1)
        mask_next = np.uint64((1 << 8 * max(0, len(placeholder) - 8)) - 1)
        hit = ((first & mask_first) == want_first) & ((following & mask_next) == want_next)
        out[:, j] = np.bincount(row[hit], minlength=stop - start)
    return out


def meaning_bits(strings: Strings, start: int, stop: int) -> np.ndarray:
    """:func:`~selflearn.core.guards.facts` of each of rows ``start:stop`` (the bits
    changes_meaning reads): the words' bits or-ed together, the words being the runs of
    ``[a-z']`` as there (read on the UTF-8 bytes: no other byte is one of those)."""
    out = np.zeros(stop - start, dtype=np.uint64)
    if stop <= start:
        return out
    buffer, begins = _chunk(strings, start, stop)
    word = ((buffer - np.uint8(ord("a"))) < 26) | (buffer == ord("'"))
    # the buffer begins and ends with bytes of no word: its changes alternate, a word's first
    # byte, the byte after its last
    edges = np.flatnonzero(word[1:] != word[:-1]) + 1
    at = edges[0::2]
    first, following = _words(buffer, at, edges[1::2] - at)
    slot = np.minimum(np.searchsorted(_KEYS, first ^ (following * _MIX)), len(_KEYS) - 1)
    some = np.flatnonzero((_FIRST[slot] == first) & (_NEXT[slot] == following))
    bits = _BITS[slot[some]]
    said = bits != 0  # a word whose bits changes_meaning does not read
    some, bits = some[said], bits[said]
    if len(some):
        rows = np.searchsorted(begins, at[some], side="right") - 1
        first_of_row = np.flatnonzero(np.diff(rows, prepend=-1))
        out[rows[first_of_row]] = np.bitwise_or.reduceat(bits, first_of_row)
    return out


_MIX = np.uint64(0x9E3779B97F4A7C15)


def _vocabulary() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The guards' words as :func:`meaning_bits` looks them up: sorted by a key of their two
    halves (distinct for every word), with their halves and bits (the bits changes_meaning reads);
    a word is found by bisection and then compared whole."""
    assert all(w.isascii() for w in _WORD_BITS), "a guard word the pass cannot read"
    halves = [_halves(w.encode()) for w in _WORD_BITS]
    first = np.array([h[0] for h in halves], np.uint64)
    following = np.array([h[1] for h in halves], np.uint64)
    keys = first ^ (following * _MIX)
    order = np.argsort(keys, kind="stable")
    assert len(np.unique(keys)) == len(keys), "two guard words with one key"
    bits = np.array([_WORD_BITS[w] & _MEANING_BITS for w in _WORD_BITS], np.uint64)
    return keys[order], first[order], following[order], bits[order]


_KEYS, _FIRST, _NEXT, _BITS = _vocabulary()
