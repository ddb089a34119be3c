"""Per-turn features for failure point isolation: the turn's own traces and its session context.

The SQL-able part (every stage's trace, the neighbouring turns' status and timing) is one DuckDB
query over ``turns`` and ``feedback``, in the style of :mod:`selflearn.signals.features`; the
text comparisons with the previous and the next turn of the session (how much of the request
changed, and how: one or two words that sound alike, the sentence structure, or only a name) are
computed in Python with rapidfuzz on the query's output.

Turns are ordered within a session by ``(timestamp, turn_id)``. Missing stages give nulls, never
errors. Simulation truth is never read here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein

from selflearn.core.store import Store
from selflearn.fpi.context import CONTEXT_FEATURES, context_features, history_features, words_of
from selflearn.fpi.language import (
    LANGUAGE_FEATURES,
    NAME_FEATURES,
    RECURRENCE_FEATURES,
    domain_language,
    language_features,
    load_home_names,
)
from selflearn.fpi.nbest import NBEST_FEATURES, default_workers, nbest_features, nbest_features_per_turn

FOLLOW_UP_S = 20.0
"""A neighbouring turn within this many seconds counts as quick (simulated retries come 1.5-14 s
after a failure)."""

SQL_NUMERIC: tuple[str, ...] = (
    "position",
    "session_len",
    "is_last",
    "gap_prev_s",
    "gap_next_s",
    "text_words",
    "wake_score",
    "asr_conf",
    "asr_nbest_n",
    "asr_gap12",
    "asr_nbest_min",
    "nlu_matched",
    "nlu_conf",
    "nlu_slots_n",
    "er_ok",
    "er_resolved_n",
    "er_unresolved_n",
    "er_unresolved_words",
    "er_min_score",
    "response_chars",
    "latency_ms",
    "barge_in",
    "barge_in_offset_ms",
    "rewritten",
    "feedback_no",
    "feedback_yes",
    "next_exists",
    "next_quick",
    "next_success",
    "next_same_intent",
    "next_nlu_matched",
    "next_er_ok",
    "next_asr_conf",
    "prev_exists",
    "prev_quick",
    "prev_success",
    "prev_same_intent",
)
"""Numeric (booleans as 0/1) columns the SQL query computes; null means unknown."""

TEXT_NUMERIC: tuple[str, ...] = (
    "asr_alt_similarity",
    "next_similarity",
    "next_same_text",
    "next_word_edits",
    "next_word_jaccard",
    "next_small_change",
    "next_sound_alike",
    "next_restructure",
    "next_name_only",
    "prev_similarity",
    "prev_same_text",
    "prev_word_edits",
    "prev_word_jaccard",
    "prev_small_change",
    "prev_sound_alike",
    "prev_restructure",
    "prev_name_only",
)
"""Numeric columns computed in Python from the texts (see :func:`compare_texts`)."""

NUMERIC_FEATURES: tuple[str, ...] = (
    *SQL_NUMERIC,
    *TEXT_NUMERIC,
    *CONTEXT_FEATURES,
    *NAME_FEATURES,
    *LANGUAGE_FEATURES,
    *RECURRENCE_FEATURES,
    *NBEST_FEATURES,
)

CATEGORICAL_FEATURES: tuple[str, ...] = ("status", "error_code", "nlu_matcher", "next_status", "prev_status")
"""String columns (``status`` is ``"missing"`` when the result stage did not run)."""

FEATURES: tuple[str, ...] = (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES)
"""Every model input column, in matrix order."""

_SQL = """
WITH fb AS (
    SELECT turn_id, arg_max(answer, timestamp) AS answer FROM feedback GROUP BY turn_id
),
base AS (
    SELECT
        turn_id, session_id, timestamp, household_id, user_id,
        device.area AS device_area,
        lower(trim(coalesce(text, ''))) AS norm,
        wake.score AS wake_score,
        asr.confidence AS asr_conf,
        len(asr.nbest) AS asr_nbest_n,
        CASE WHEN len(asr.nbest) >= 2 THEN asr.nbest[1].confidence - asr.nbest[2].confidence END
            AS asr_gap12,
        list_min(list_transform(asr.nbest, lambda h: h.confidence)) AS asr_nbest_min,
        CASE WHEN len(asr.nbest) >= 2 THEN asr.nbest[2].text END AS asr_alt_text,
        list_transform(asr.nbest, lambda h: h.text) AS asr_alt_texts,
        list_transform(asr.nbest, lambda h: h.confidence) AS asr_alt_confs,
        nlu.matched AS nlu_matched,
        nlu.confidence AS nlu_conf,
        nlu.matcher AS nlu_matcher,
        nlu.intent AS nlu_intent,
        nlu.slots AS nlu_slots,
        CASE WHEN nlu.slots IS NOT NULL THEN len(json_keys(nlu.slots)) END AS nlu_slots_n,
        er.ok AS er_ok,
        len(er.resolved) AS er_resolved_n,
        len(er.unresolved) AS er_unresolved_n,
        list_max(list_transform(er.unresolved, lambda u: len(string_split(u, ' ')))) AS er_unresolved_words,
        list_min(list_transform(er.resolved, lambda r: r.score)) AS er_min_score,
        array_to_string(er.unresolved, ' ') AS er_unresolved_text,
        er.unresolved AS er_unresolved_list,
        coalesce(result.status, 'missing') AS status,
        result.error_code AS error_code,
        length(result.response_text) AS response_chars,
        result.latency_ms AS latency_ms,
        coalesce(barge_in.occurred, false) AS barge_in,
        barge_in.offset_ms AS barge_in_offset_ms,
        rewrite IS NOT NULL AND rewrite.rewritten_text IS NOT NULL AS rewritten
    FROM turns
),
ctx AS (
    SELECT
        *,
        row_number() OVER w AS position,
        count(*) OVER (PARTITION BY session_id) AS session_len,
        lag(timestamp) OVER w AS prev_ts,
        lag(norm) OVER w AS prev_norm,
        lag(status) OVER w AS prev_status,
        lag(nlu_intent) OVER w AS prev_intent,
        lag(turn_id) OVER w AS prev_turn_id,
        lead(turn_id) OVER w AS next_turn_id,
        lead(timestamp) OVER w AS next_ts,
        lead(norm) OVER w AS next_norm,
        lead(status) OVER w AS next_status,
        lead(nlu_intent) OVER w AS next_intent,
        lead(nlu_matched) OVER w AS next_nlu_matched,
        lead(er_ok) OVER w AS next_er_ok,
        lead(asr_conf) OVER w AS next_asr_conf
    FROM base
    WINDOW w AS (PARTITION BY session_id ORDER BY timestamp, turn_id)
)
SELECT
    c.turn_id, c.session_id, c.timestamp,
    c.position, c.session_len,
    c.next_turn_id IS NULL AS is_last,
    epoch_ms(c.timestamp) / 1000.0 - epoch_ms(c.prev_ts) / 1000.0 AS gap_prev_s,
    epoch_ms(c.next_ts) / 1000.0 - epoch_ms(c.timestamp) / 1000.0 AS gap_next_s,
    len(string_split(c.norm, ' ')) * (length(c.norm) > 0)::INT AS text_words,
    c.wake_score, c.asr_conf, c.asr_nbest_n, c.asr_gap12, c.asr_nbest_min,
    c.nlu_matched, c.nlu_conf, c.nlu_slots_n,
    c.er_ok, c.er_resolved_n, c.er_unresolved_n, c.er_unresolved_words, c.er_min_score,
    c.response_chars, c.latency_ms, c.barge_in, c.barge_in_offset_ms, c.rewritten,
    fb.answer = 'no' AS feedback_no,
    fb.answer = 'yes' AS feedback_yes,
    c.next_turn_id IS NOT NULL AS next_exists,
    coalesce(epoch_ms(c.next_ts) - epoch_ms(c.timestamp) <= {follow_up_ms}, false) AS next_quick,
    CASE WHEN c.next_turn_id IS NOT NULL THEN c.next_status = 'success' END AS next_success,
    CASE WHEN c.next_turn_id IS NOT NULL THEN c.next_intent IS NOT DISTINCT FROM c.nlu_intent END
        AS next_same_intent,
    c.next_nlu_matched, c.next_er_ok, c.next_asr_conf,
    c.prev_turn_id IS NOT NULL AS prev_exists,
    coalesce(epoch_ms(c.timestamp) - epoch_ms(c.prev_ts) <= {follow_up_ms}, false) AS prev_quick,
    CASE WHEN c.prev_turn_id IS NOT NULL THEN c.prev_status = 'success' END AS prev_success,
    CASE WHEN c.prev_turn_id IS NOT NULL THEN c.prev_intent IS NOT DISTINCT FROM c.nlu_intent END
        AS prev_same_intent,
    c.status, c.error_code, c.nlu_matcher, c.next_status, c.prev_status,
    c.norm AS text, c.next_norm AS next_text, c.prev_norm AS prev_text, c.asr_alt_text,
    c.nlu_slots, c.er_unresolved_text, c.household_id, c.user_id, c.device_area, c.asr_alt_texts,
    c.asr_alt_confs, c.nlu_intent, c.er_unresolved_list
FROM ctx c
LEFT JOIN fb ON fb.turn_id = c.turn_id
ORDER BY c.session_id, c.position
"""


def _name_words(slots_json: str | None, unresolved: str | None) -> set[str]:
    """Words of the names this turn referred to: string slot values and unresolved names."""
    words = set(words_of(unresolved))
    if slots_json:
        try:
            slots = json.loads(slots_json)
        except ValueError:
            slots = {}
        if isinstance(slots, dict):
            for key, value in slots.items():
                if isinstance(value, str) and key not in ("domain", "device_class"):
                    words.update(words_of(value.lower()))
    return words


def compare_texts(this: str, other: str | None, names: set[str]) -> tuple[float, ...]:
    """How ``other`` (the next or previous turn's text) differs from ``this``.

    Returns (similarity 0-1, same text, word edit distance, word Jaccard, small change: 1-2 words
    edited, sound-alike: the changed words look alike character-wise -- what an ASR confusion
    looks like, restructure: fewer than half the words shared, name only: every word that changed
    on this side belongs to a name (slot value or unresolved name) of this turn). All NaN when
    there is no other turn."""
    if other is None:
        return (np.nan,) * 8
    a, b = words_of(this), words_of(other)
    sa, sb = set(a), set(b)
    union = sa | sb
    jaccard = len(sa & sb) / len(union) if union else 1.0
    edits = Levenshtein.distance(a, b)
    removed, added = sa - sb, sb - sa
    sound_alike = (
        fuzz.ratio(" ".join(sorted(removed)), " ".join(sorted(added))) / 100.0 if removed and added else 0.0
    )
    name_only = bool(removed) and removed <= names
    return (
        fuzz.ratio(this, other) / 100.0,
        float(this == other),
        float(edits),
        jaccard,
        float(1 <= edits <= 2),
        sound_alike,
        float(jaccard < 0.5),
        float(name_only),
    )


def _text_columns(table: pa.Table) -> dict[str, np.ndarray]:
    texts = table.column("text").to_pylist()
    nexts = table.column("next_text").to_pylist()
    prevs = table.column("prev_text").to_pylist()
    alts = table.column("asr_alt_text").to_pylist()
    slots = table.column("nlu_slots").to_pylist()
    unresolved = table.column("er_unresolved_text").to_pylist()
    n = len(texts)
    out = np.full((n, len(TEXT_NUMERIC)), np.nan)
    for i in range(n):
        this = texts[i] or ""
        names = _name_words(slots[i], unresolved[i])
        alt = alts[i]
        if alt is not None:
            out[i, 0] = fuzz.ratio(this, alt) / 100.0
        out[i, 1:9] = compare_texts(this, nexts[i], names)
        out[i, 9:17] = compare_texts(this, prevs[i], names)
    return {name: out[:, j] for j, name in enumerate(TEXT_NUMERIC)}


def fpi_features(
    store: Store, *, nbest: bool = True, workers: int | None = None, per_turn: bool = False
) -> pa.Table:
    """One row per stored turn: ``turn_id``, ``session_id``, ``timestamp``, ``text`` and every
    column of :data:`FEATURES`, ordered by session and position.

    The home-name, domain-language and recurrence features read the store's ``homes`` table;
    ``nbest=False`` leaves the n-best features null (rerunning alternatives through the NLU is
    the slowest part). Each distinct rerun and closest-sentence search is done once, on up to
    ``workers`` cores (default: :func:`~selflearn.fpi.nbest.default_workers`); ``per_turn=True``
    does them turn by turn on one core instead, the slow reference that gives the same table."""
    cores = default_workers() if workers is None else max(1, workers)
    table = store.query(_SQL.format(follow_up_ms=int(FOLLOW_UP_S * 1000)))
    table = add_text_features(table)
    lang = domain_language()
    extra = language_features(table, load_home_names(store), lang, workers=cores, batched=not per_turn)
    if not nbest:
        extra.update({name: np.full(table.num_rows, np.nan) for name in NBEST_FEATURES})
    elif per_turn:
        extra.update(nbest_features_per_turn(store, table))
    else:
        extra.update(nbest_features(store, table, workers=cores))
    for name in (*NAME_FEATURES, *LANGUAGE_FEATURES, *RECURRENCE_FEATURES, *NBEST_FEATURES):
        table = table.append_column(name, pa.array(extra[name], pa.float64(), from_pandas=True))
    return table


def add_text_features(table: pa.Table) -> pa.Table:
    """Append the :data:`TEXT_NUMERIC` and the extended context's
    (:data:`~selflearn.fpi.context.CONTEXT_FEATURES`) columns to the query's output."""
    columns = _text_columns(table)
    slots = table.column("nlu_slots").to_pylist()
    unresolved = table.column("er_unresolved_text").to_pylist()
    names = [_name_words(s, u) for s, u in zip(slots, unresolved, strict=True)]
    columns.update(context_features(table, names))
    columns.update(history_features(table))
    for name, values in columns.items():
        table = table.append_column(name, pa.array(values, pa.float64(), from_pandas=True))
    return table


def feature_names() -> Sequence[str]:
    """The model's input columns (same as :data:`FEATURES`)."""
    return FEATURES
