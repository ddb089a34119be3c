"""Extended dialogue context for failure point isolation: the session's later successful
request, and what worked in the same home before and after.

:mod:`selflearn.fpi.features` compares a turn with the previous and the next turn of its
session. The best evidence the logs hold of what was actually said is often further away: the
first *later turn of the session that succeeded* (the retry that worked). How its recognised
words differ from this turn's tells a misrecognition (one or two words swapped for ones that
sound alike: the user said the same thing again and it was heard right this time) from a
phrasing the assistant does not understand (the sentence restructured) or a name it does not
know (only a name changed). Beyond the session, the texts that worked in the same home at
any time (:func:`history_features`): a misrecognised request is usually close to one of them.
(The turns two before and two and three after -- status, timing, intent, similarity -- were
measured too and dropped: no gain in ``bench/fpi.py --cv`` once these are in.)

Computed in Python over the feature query's output (one row per turn, ordered by session and
position); reads only logged columns (text, status, intent, slots, unresolved names, n-best,
household id), never simulation truth.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

import jellyfish
import numpy as np
import pyarrow as pa
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein

LATER_FEATURES: tuple[str, ...] = (
    "later_ok_exists",
    "later_ok_steps",
    "later_ok_gap_s",
    "later_ok_same_intent",
    "later_ok_similarity",
    "later_ok_word_edits",
    "later_ok_edit_share",
    "later_ok_substitutions",
    "later_ok_indels",
    "later_ok_sub_sound",
    "later_ok_sub_metaphone",
    "later_ok_jaccard",
    "later_ok_name_only",
    "later_ok_alt_closer",
    "later_fails_between",
    "later_same_text_fails",
    "earlier_same_text_fails",
    "session_fails",
)
"""The session's first later turn that succeeded (``later_ok_*``; null when there is none, except
``later_ok_exists``): how many turns ahead and seconds later, whether its intent is this turn's
(when this turn matched one), text similarity, word edits (and per word of the later text), the
word-level alignment's substitutions and insertions + deletions, how alike the substituted word
pairs are (character ratio, and share with the same metaphone key), word Jaccard, whether every
removed word belongs to this turn's names, how much closer this turn's best n-best alternative
is to it than the top hypothesis was (an n-best that held the words said); failed turns between
this one and it, later and earlier failed turns with this turn's exact text (the same words
failing again), failed turns in the session."""

HISTORY_FEATURES: tuple[str, ...] = (
    "home_ok_similarity",
    "home_ok_word_edits",
    "home_ok_phonetic",
    "home_ok_same",
)
"""This turn's text against the texts that worked in the same home at any time (its other
turns; every user of the home, since the logs' user ids are not for the model): the closest
one's similarity (rapidfuzz ratio), word edits and metaphone-string similarity, and whether the
exact text worked there. A misrecognition of a phrasing the home uses is close to one that
worked; a phrasing the assistant does not understand has never worked there."""

CONTEXT_FEATURES: tuple[str, ...] = (*LATER_FEATURES, *HISTORY_FEATURES)

_COMPARED = LATER_FEATURES[4:13]
"""The columns :func:`compare_later` returns, in order."""


_WORD = re.compile(r"[a-z0-9']+")


def words_of(text: str | None) -> list[str]:
    """The words of a logged text (lower-case letters, digits, apostrophes), in order."""
    return _WORD.findall(text or "")


def _metaphone(word: str) -> str:
    return str(jellyfish.metaphone(word)) if word.isalpha() else word


def compare_later(this: str, later: str, names: set[str]) -> list[float]:
    """``later_ok_similarity`` .. ``later_ok_name_only`` for one pair of texts."""
    a, b = words_of(this), words_of(later)
    edits = Levenshtein.distance(a, b)
    subs, indels, sound, meta = 0, 0, [], []
    for op in Levenshtein.editops(a, b):
        if op.tag == "replace":
            subs += 1
            x, y = a[op.src_pos], b[op.dest_pos]
            sound.append(fuzz.ratio(x, y) / 100.0)
            meta.append(float(_metaphone(x) == _metaphone(y)))
        else:
            indels += 1
    sa, sb = set(a), set(b)
    union = sa | sb
    removed = sa - sb
    return [
        fuzz.ratio(this, later) / 100.0,
        float(edits),
        edits / max(len(b), 1),
        float(subs),
        float(indels),
        float(np.mean(sound)) if sound else math.nan,
        float(np.mean(meta)) if meta else math.nan,
        len(sa & sb) / len(union) if union else 1.0,
        float(bool(removed) and removed <= names),
    ]


def context_features(table: pa.Table, names: Sequence[set[str]]) -> dict[str, np.ndarray]:
    """:data:`CONTEXT_FEATURES` for every row of the feature query's output ``table`` (rows
    ordered by session and position; columns ``session_id``, ``timestamp``, ``text``, ``status``,
    ``nlu_intent``, ``asr_alt_texts``); ``names[i]``: the words of row i's names (slot values and
    unresolved names)."""
    n = table.num_rows
    sessions = table.column("session_id").to_pylist()
    times = [t.timestamp() if t is not None else math.nan for t in table.column("timestamp").to_pylist()]
    texts = [t or "" for t in table.column("text").to_pylist()]
    ok = [s == "success" for s in table.column("status").to_pylist()]
    intents = table.column("nlu_intent").to_pylist()
    alts = table.column("asr_alt_texts").to_pylist()
    out = {name: np.full(n, np.nan) for name in LATER_FEATURES}
    start = 0
    while start < n:
        end = start
        while end < n and sessions[end] == sessions[start]:
            end += 1
        fails = sum(not ok[i] for i in range(start, end))
        for i in range(start, end):
            out["session_fails"][i] = fails
            out["earlier_same_text_fails"][i] = sum(
                1 for j in range(start, i) if not ok[j] and texts[j] == texts[i]
            )
            out["later_same_text_fails"][i] = sum(
                1 for j in range(i + 1, end) if not ok[j] and texts[j] == texts[i]
            )
            later = next((j for j in range(i + 1, end) if ok[j]), None)
            out["later_ok_exists"][i] = float(later is not None)
            if later is None:
                continue
            out["later_ok_steps"][i] = later - i
            out["later_ok_gap_s"][i] = times[later] - times[i]
            if intents[i] is not None:
                out["later_ok_same_intent"][i] = float(intents[later] == intents[i])
            out["later_fails_between"][i] = later - i - 1
            alt = alts[i][1:] if alts[i] else None
            values = compare_later(texts[i], texts[later], names[i])
            for name, value in zip(_COMPARED, values, strict=True):
                out[name][i] = value
            out["later_ok_alt_closer"][i] = (
                max(fuzz.ratio(a or "", texts[later]) / 100.0 for a in alt) - values[0] if alt else math.nan
            )
        start = end
    return out


def _sentence_key(text: str) -> str:
    return " ".join(_metaphone(w) for w in words_of(text))


def history_features(table: pa.Table) -> dict[str, np.ndarray]:
    """:data:`HISTORY_FEATURES` for every row of ``table`` (columns ``household_id``, ``text``,
    ``status``). Each distinct (home, text) is compared once."""
    homes = table.column("household_id").to_pylist()
    texts = [t or "" for t in table.column("text").to_pylist()]
    ok = [s == "success" for s in table.column("status").to_pylist()]
    worked: dict[str, Counter[str]] = defaultdict(Counter)
    for home, text, good in zip(homes, texts, ok, strict=True):
        if good and text:
            worked[str(home)][text] += 1
    keys = {home: {t: _sentence_key(t) for t in c} for home, c in worked.items()}
    n = table.num_rows
    out = {name: np.full(n, np.nan) for name in HISTORY_FEATURES}
    memo: dict[tuple[str, str, bool], tuple[float, float, float, float]] = {}
    for i in range(n):
        home, text = str(homes[i]), texts[i]
        key = (home, text, ok[i])
        if key not in memo:
            memo[key] = _closest(text, worked[home], keys.get(home), exclude_self=ok[i])
        for name, value in zip(HISTORY_FEATURES, memo[key], strict=True):
            out[name][i] = value
    return out


def _closest(
    text: str, counts: Counter[str], keys: dict[str, str] | None, exclude_self: bool
) -> tuple[float, float, float, float]:
    if not text or keys is None:
        return (math.nan,) * 4
    same = counts[text] - (1 if exclude_self else 0) > 0
    if same:
        return 1.0, 0.0, 1.0, 1.0
    choices = [c for c in keys if c != text]
    if not choices:
        return (math.nan, math.nan, math.nan, 0.0)
    best = process.extractOne(text, choices, scorer=fuzz.ratio)
    assert best is not None
    closest = best[0]
    edits = Levenshtein.distance(words_of(text), words_of(closest))
    sound = fuzz.ratio(_sentence_key(text), keys[closest]) / 100.0
    return best[1] / 100.0, float(edits), sound, 0.0
