"""Per-turn features for the defect detectors, computed in one DuckDB query.

Every stored turn gets one row: what each pipeline stage did (NLU match, ASR confidence, result
status, barge-in), the explicit feedback about it, and its session context -- where it sits in
its session, the time to the turns before and after it, and how much the next turn looks like
this one (a quick, similar next turn is the classic sign of a reformulation after a failure).

Turns are ordered within a session by ``(timestamp, turn_id)``, so logs that arrive out of order
and turns with equal timestamps give the same rows every time. Missing stages give nulls (never
errors): a typed turn has no ASR confidence, a turn whose NLU did not run has ``nlu_matched``
null and ``status`` ``"missing"``.

The query is plain SQL with window functions; on two cores it computes a million turns in a
few seconds (``python bench/defects.py --speed``).
"""

from __future__ import annotations

import pyarrow as pa

from selflearn.core.store import Store

FOLLOW_UP_S = 20.0
"""A next turn within this many seconds counts as a quick follow-up (simulated retries come
1.5-14 s after a failure)."""

NUMERIC_FEATURES: tuple[str, ...] = (
    "position",
    "session_len",
    "is_last",
    "gap_prev_s",
    "gap_next_s",
    "text_chars",
    "text_words",
    "empty_text",
    "non_english",
    "wake_score",
    "asr_conf",
    "asr_margin",
    "nlu_matched",
    "nlu_conf",
    "er_ok",
    "er_unresolved",
    "response_chars",
    "barge_in",
    "barge_in_offset_ms",
    "feedback_requested",
    "feedback_no",
    "feedback_yes",
    "feedback_no_answer",
    "next_same_text",
    "next_similarity",
    "next_word_overlap",
    "next_same_intent",
    "next_success",
    "next_quick",
    "prev_similarity",
    "prev_success",
    "rephrased_p",
)
"""Numeric (or boolean, as 0/1) feature columns of :func:`turn_features`; null means unknown."""

CATEGORICAL_FEATURES: tuple[str, ...] = ("status", "error_code", "nlu_matcher", "nlu_intent", "next_status")
"""String feature columns of :func:`turn_features` (``status`` is ``"missing"`` when the result
stage did not run)."""

_WORD_CHARS = r"[a-z0-9'' .,?!:;%&\-]"  # SQL literal: '' is one quote

_FOREIGN = """der das und ist nicht ein eine einen im schalte mach bitte licht wie spät ich
    le les et est pas une des du allume éteins lumière quelle heure je
    el los las y es una del por enciende apaga luz qué hora
    het een niet zet uit aan
    il della gli accendi spegni che ora"""
FOREIGN_WORDS: tuple[str, ...] = tuple(_FOREIGN.split())
"""Function words of other languages that are not English words. Two or more of them, and no
English function word, flag a text ``non_english``: cheap and deliberately conservative (it
catches another language, it does not judge telegraphic English like "kitchen light off")."""

_ENGLISH = "the to of is are what please turn set my you your"
ENGLISH_WORDS: tuple[str, ...] = tuple(_ENGLISH.split())

_FEATURES_SQL = """
WITH fb AS (
    SELECT turn_id, arg_max(answer, timestamp) AS answer
    FROM feedback GROUP BY turn_id
),
base AS (
    SELECT
        turn_id,
        session_id,
        timestamp,
        coalesce(text, '') AS text,
        lower(trim(coalesce(text, ''))) AS norm,
        wake.score AS wake_score,
        asr.confidence AS asr_conf,
        CASE WHEN len(asr.nbest) >= 2
             THEN asr.nbest[1].confidence - asr.nbest[2].confidence END AS asr_margin,
        nlu.matched AS nlu_matched,
        nlu.confidence AS nlu_conf,
        nlu.matcher AS nlu_matcher,
        nlu.intent AS nlu_intent,
        er.ok AS er_ok,
        len(er.unresolved) AS er_unresolved,
        coalesce(result.status, 'missing') AS status,
        result.error_code AS error_code,
        length(result.response_text) AS response_chars,
        coalesce(barge_in.occurred, false) AS barge_in,
        barge_in.offset_ms AS barge_in_offset_ms,
        coalesce(feedback_requested, false) AS feedback_requested,
        coalesce(dialogue.kind = 'confirm' AND dialogue.role = 'question' AND dialogue.answer = 'no', false)
            AS declined
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
        lead(turn_id) OVER w AS next_turn_id,
        lead(timestamp) OVER w AS next_ts,
        lead(norm) OVER w AS next_norm,
        lead(nlu_intent) OVER w AS next_intent,
        lead(status) OVER w AS next_status
    FROM base
    WINDOW w AS (PARTITION BY session_id ORDER BY timestamp, turn_id)
)
{rephrase_ctes}
SELECT
    c.turn_id,
    c.session_id,
    c.timestamp,
    c.position,
    c.session_len,
    c.next_turn_id IS NULL AS is_last,
    epoch_ms(c.timestamp) / 1000.0 - epoch_ms(c.prev_ts) / 1000.0 AS gap_prev_s,
    epoch_ms(c.next_ts) / 1000.0 - epoch_ms(c.timestamp) / 1000.0 AS gap_next_s,
    length(c.norm) AS text_chars,
    len(string_split(c.norm, ' ')) * (length(c.norm) > 0)::INT AS text_words,
    length(c.norm) = 0 AS empty_text,
    length(c.norm) > 0 AND (
        length(regexp_replace(c.norm, '{word_chars}', '', 'g')) > 0.3 * length(c.norm)
        OR (len(list_intersect(string_split(c.norm, ' '), {foreign})) >= 2
            AND NOT list_has_any(string_split(c.norm, ' '), {english}))
    ) AS non_english,
    c.wake_score,
    c.asr_conf,
    c.asr_margin,
    c.nlu_matched,
    c.nlu_conf,
    c.er_ok,
    c.er_unresolved,
    c.response_chars,
    c.barge_in,
    c.barge_in_offset_ms,
    c.feedback_requested,
    fb.answer AS feedback,
    fb.answer = 'no' OR c.declined AS feedback_no,
    fb.answer = 'yes' AS feedback_yes,
    fb.answer = 'no_answer' AS feedback_no_answer,
    CASE WHEN c.next_norm IS NOT NULL THEN c.next_norm = c.norm END AS next_same_text,
    CASE WHEN c.next_norm IS NOT NULL THEN jaro_winkler_similarity(c.norm, c.next_norm) END
        AS next_similarity,
    CASE WHEN c.next_norm IS NOT NULL THEN {overlap_next} END AS next_word_overlap,
    CASE WHEN c.next_turn_id IS NOT NULL THEN c.next_intent IS NOT DISTINCT FROM c.nlu_intent END
        AS next_same_intent,
    CASE WHEN c.next_turn_id IS NOT NULL THEN c.next_status = 'success' END AS next_success,
    coalesce(epoch_ms(c.next_ts) - epoch_ms(c.timestamp) <= {follow_up_ms}, false) AS next_quick,
    CASE WHEN c.prev_norm IS NOT NULL THEN jaro_winkler_similarity(c.norm, c.prev_norm) END
        AS prev_similarity,
    CASE WHEN c.prev_status IS NOT NULL THEN c.prev_status = 'success' END AS prev_success,
    {rephrased_p} AS rephrased_p,
    c.status,
    c.error_code,
    c.nlu_matcher,
    c.nlu_intent,
    c.next_status,
    c.norm AS text
FROM ctx c
LEFT JOIN fb ON fb.turn_id = c.turn_id
{rephrase_joins}
ORDER BY c.session_id, c.position
"""

_REPHRASE_CTES = """,
rp AS (
    SELECT rephrase_of AS turn_id, max(p_rephrase) AS p
    FROM rephrases WHERE rephrase_of IS NOT NULL GROUP BY rephrase_of
),
scored AS (SELECT DISTINCT turn_id FROM rephrases)
"""
_REPHRASE_JOINS = """
LEFT JOIN rp ON rp.turn_id = c.turn_id
LEFT JOIN scored ON scored.turn_id = c.next_turn_id
"""
# A later turn that points at this one gives its probability; a scored next turn that points
# elsewhere (or nowhere) says "not rephrased" (0); an unscored next turn leaves it unknown.
_REPHRASED_P = "coalesce(rp.p, CASE WHEN scored.turn_id IS NOT NULL THEN 0.0 END)"


def _sql_list(words: tuple[str, ...]) -> str:
    return "[" + ", ".join("'" + w.replace("'", "''") + "'" for w in words) + "]"


def _overlap(a: str, b: str) -> str:
    """SQL for the Jaccard overlap of the word sets of two text columns."""
    wa, wb = f"string_split({a}, ' ')", f"string_split({b}, ' ')"
    return (
        f"len(list_intersect(list_distinct({wa}), list_distinct({wb})))::DOUBLE"
        f" / greatest(1, len(list_distinct(list_concat({wa}, {wb}))))"
    )


def _has_rephrases(store: Store) -> bool:
    found = store.query(
        "SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = 'rephrases' AND NOT temporary"
    )
    return bool(found.column("n")[0].as_py())


def features_sql(with_rephrases: bool) -> str:
    """The feature query; ``with_rephrases`` joins the ``rephrases`` signal table."""
    return _FEATURES_SQL.format(
        rephrase_ctes=_REPHRASE_CTES if with_rephrases else "",
        rephrase_joins=_REPHRASE_JOINS if with_rephrases else "",
        rephrased_p=_REPHRASED_P if with_rephrases else "CAST(NULL AS DOUBLE)",
        word_chars=_WORD_CHARS,
        english=_sql_list(ENGLISH_WORDS),
        foreign=_sql_list(FOREIGN_WORDS),
        overlap_next=_overlap("c.norm", "c.next_norm"),
        follow_up_ms=int(FOLLOW_UP_S * 1000),
    )


def turn_features(store: Store) -> pa.Table:
    """One row per stored turn with the columns in :data:`NUMERIC_FEATURES` and
    :data:`CATEGORICAL_FEATURES`, plus ``turn_id``, ``session_id``, ``timestamp``, ``feedback``
    (the latest answer about the turn, or null) and ``text`` (lower-cased), ordered by session
    and position. An empty store gives an empty table with the same columns."""
    return store.query(features_sql(_has_rephrases(store)))
