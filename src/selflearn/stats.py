"""Summary statistics of a store: what the logs show, and -- for simulations -- the truth.

Observable figures (no labels needed): turns, sessions, users, NLU no-match rate, error rate,
barge-in rate, explicit "no" rate, and the utterances that most often end without success.
When the store holds simulation truth, the true defect rate (first attempts at in-scope goals
that failed) and the failure-point breakdown are reported too, clearly marked as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from selflearn.core.errors import ConfigError
from selflearn.core.store import Store

if TYPE_CHECKING:
    from selflearn.report.stage_actions import StagePattern
    from selflearn.rewrite.rewriter import Rewriter


@dataclass
class Stats:
    """Figures computed by :func:`compute_stats`."""

    turns: int = 0
    sessions: int = 0
    users: int = 0
    households: int = 0
    feedback_events: int = 0
    no_match_rate: float = 0.0
    error_rate: float = 0.0
    barge_in_rate: float = 0.0
    feedback_no_rate: float = 0.0
    matchers: dict[str, int] = field(default_factory=dict)
    top_failing: list[tuple[str, int, int]] = field(default_factory=list)
    """(text, turns without success, all turns) for the most often failing texts."""
    truth_turns: int = 0
    defect_rate: float | None = None
    """Share of first attempts at in-scope goals that failed (simulation truth)."""
    turn_defect_rate: float | None = None
    """Share of all turns that were defects (simulation truth)."""
    failure_points: dict[str, int] = field(default_factory=dict)
    top_failing_by_stage: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


def compute_stats(store: Store, top: int = 10) -> Stats:
    """Compute :class:`Stats` over everything in ``store``."""
    con = store.con
    st = Stats()
    row = con.execute("""
        SELECT count(*), count(DISTINCT session_id), count(DISTINCT user_id), count(DISTINCT household_id),
               avg(CASE WHEN nlu IS NOT NULL AND NOT nlu.matched THEN 1 ELSE 0 END),
               avg(CASE WHEN result.status = 'error' THEN 1 ELSE 0 END),
               avg(CASE WHEN barge_in.occurred THEN 1 ELSE 0 END)
        FROM turns""").fetchall()[0]
    if row is None or not row[0]:
        return st
    st.turns, st.sessions, st.users, st.households = (int(x) for x in row[:4])
    st.no_match_rate, st.error_rate, st.barge_in_rate = (float(x or 0) for x in row[4:7])
    fb = con.execute(
        "SELECT count(*), avg(CASE WHEN answer = 'no' THEN 1 ELSE 0 END) FROM feedback "
        "WHERE answer <> 'no_answer'"
    ).fetchall()[0]
    st.feedback_events = store.count("feedback")
    st.feedback_no_rate = float(fb[1] or 0) if fb else 0.0
    st.matchers = dict(
        con.execute(
            "SELECT coalesce(nlu.matcher, '(no nlu)'), count(*) FROM turns GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
    )
    st.top_failing = [
        (str(t), int(f), int(n))
        for t, f, n in con.execute(
            """
        SELECT text, sum(CASE WHEN result.status <> 'success' THEN 1 ELSE 0 END) AS failed, count(*)
        FROM turns GROUP BY text HAVING failed > 0 ORDER BY failed DESC, text LIMIT ?""",
            [top],
        ).fetchall()
    ]
    st.truth_turns = store.count("sim_truth")
    if st.truth_turns:
        d = con.execute("""SELECT avg(CASE WHEN defect THEN 1 ELSE 0 END) FROM sim_truth
                           WHERE attempt = 1 AND in_scope""").fetchall()[0]
        st.defect_rate = float(d[0]) if d and d[0] is not None else None
        d = con.execute("SELECT avg(CASE WHEN defect THEN 1 ELSE 0 END) FROM sim_truth").fetchall()[0]
        st.turn_defect_rate = float(d[0]) if d and d[0] is not None else None
        st.failure_points = dict(
            con.execute("SELECT failure_point, count(*) FROM sim_truth GROUP BY 1 ORDER BY 2 DESC").fetchall()
        )
        for stage in st.failure_points:
            if stage == "correct":
                continue
            st.top_failing_by_stage[stage] = [
                (str(t), int(n))
                for t, n in con.execute(
                    """
                SELECT t.text, count(*) FROM sim_truth s JOIN turns t USING (turn_id)
                WHERE s.failure_point = ? GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?""",
                    [stage, 5],
                ).fetchall()
            ]
    return st


@dataclass
class FpiBreakdown:
    """Predicted failure points (the ``fpi`` table written by ``selflearn fpi predict``) over time
    and the requests that most often fail at each stage. Predictions, not truth."""

    model: str = ""
    """Model(s) that wrote the rows (``rules`` or ``fpi.gbm.v2:<hash>``)."""
    period: str = "day"
    """Width of a time bucket: ``day``, ``week`` or ``month``."""
    by_period: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    """(bucket start, failure point -> turns), oldest first."""
    totals: dict[str, int] = field(default_factory=dict)
    """Failure point -> turns, over everything scored."""
    top_by_stage: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    """Stage -> (request text, turns predicted to fail there), most frequent first."""
    patterns_by_stage: dict[str, list[StagePattern]] = field(default_factory=dict)
    """Stage -> its top failing request patterns (delexicalized with each home's configuration)
    and what selflearn can do about each (:mod:`selflearn.report.stage_actions`), most turns first."""


_PERIODS = ("day", "week", "month")


def fpi_breakdown(
    store: Store,
    period: str = "day",
    top: int = 5,
    *,
    actions: bool = True,
    table: Path | str | None = None,
    rewriter: Path | str | Rewriter | None = None,
) -> FpiBreakdown | None:
    """Breakdown of the ``fpi`` table by ``period`` plus the ``top`` failing requests per stage
    and, with ``actions``, the ``top`` failing request patterns per stage with what selflearn can
    do about each (``table``: a mined rewrite-table folder; ``rewriter``: a rewriter folder or a
    loaded one, asked what it would do; see :func:`selflearn.report.stage_actions.stage_actions`);
    ``None`` when no turn has been scored (run ``selflearn fpi predict`` first)."""
    if period not in _PERIODS:
        raise ConfigError(f"period must be one of {_PERIODS}, not {period!r}")
    con = store.con
    try:
        scored = con.execute("SELECT count(*), string_agg(DISTINCT model, ', ') FROM fpi").fetchall()[0]
    except Exception:  # a store opened read-only before the table existed
        return None
    if not scored or not scored[0]:
        return None
    out = FpiBreakdown(model=str(scored[1] or ""), period=period)
    rows = con.execute(
        f"""SELECT strftime(date_trunc('{period}', t.timestamp), '%Y-%m-%d') AS bucket, f.failure_point,
                   count(*)
            FROM fpi f JOIN turns t USING (turn_id) GROUP BY 1, 2 ORDER BY 1, 2"""
    ).fetchall()
    buckets: dict[str, dict[str, int]] = {}
    for bucket, stage, n in rows:
        buckets.setdefault(str(bucket), {})[str(stage)] = int(n)
        out.totals[str(stage)] = out.totals.get(str(stage), 0) + int(n)
    out.by_period = sorted(buckets.items())
    for stage in out.totals:
        if stage == "correct":
            continue
        out.top_by_stage[stage] = [
            (str(text), int(n))
            for text, n in con.execute(
                """SELECT t.text, count(*) FROM fpi f JOIN turns t USING (turn_id)
                   WHERE f.failure_point = ? GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?""",
                [stage, top],
            ).fetchall()
        ]
    if actions:
        from selflearn.report.stage_actions import stage_actions

        out.patterns_by_stage = stage_actions(store, top=top, table=table, rewriter=rewriter)
    return out
