"""The SQL behind :func:`selflearn.report.collect.collect`: one temporary per-turn table on a
cursor of its own, and the aggregates every section of the report reads from it."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import duckdb
import numpy as np
import orjson

from selflearn.core.delex import Delexicalizer
from selflearn.core.home import Home, normalize_name
from selflearn.core.schema import Concept
from selflearn.core.store import Store
from selflearn.report.candidates import Asked, best_candidates
from selflearn.report.views import (
    DEFECT_THRESHOLD,
    EXAMPLES,
    FAILURE_LABELS,
    MAX_ROWS,
    STAGES,
    Breakdown,
    Comparison,
    DateRange,
    Decision,
    Example,
    Fix,
    Notice,
    Outcomes,
    Pattern,
    Period,
    Rate,
    ReportData,
    RewriterLock,
    Rule,
    Signals,
    first_rules,
    from_community,
    pair_id,
    pseudonym,
    sum_outcomes,
    table_source,
    verdict_of,
)
from selflearn.rewrite.table import RewriteTable

if TYPE_CHECKING:
    from selflearn.rewrite.rewriter import Rewriter

_TRACE_FAILURE = """CASE
  WHEN t.wake.false_wake THEN 'false_wake'
  WHEN t.result IS NULL AND t.nlu IS NULL THEN 'no_trace'
  WHEN t.asr.confidence < 0.5 THEN 'asr'
  WHEN t.nlu IS NULL OR NOT t.nlu.matched OR t.result.status = 'no_match' THEN 'nlu'
  WHEN t.er IS NOT NULL AND NOT t.er.ok THEN 'er'
  WHEN t.result.status IN ('error', 'unsupported') THEN 'result'
  WHEN t.result.status = 'question' THEN 'question'
  ELSE 'acted' END"""
"""The stage a defective turn's own trace shows failing, first match wins (used where the
``fpi`` table has no row): known false wake, no trace at all, recogniser confidence below 0.5,
not understood, a name not resolved, an error or unsupported result, a question asked, and
otherwise the assistant acted and the user objected."""


class Collector:
    """One report run over a cursor of its own (its temporary tables vanish with it)."""

    def __init__(
        self,
        store: Store,
        cur: duckdb.DuckDBPyConnection,
        top: int,
        reviews: dict[str, str],
        say: Callable[[str], None],
        lock: RewriterLock | None = None,
    ) -> None:
        self.store, self.cur, self.top, self.reviews, self.say = store, cur, top, reviews, say
        self.lock = lock
        """Held around each decision of a shared rewriter (:func:`~selflearn.report.collect.collect`)."""
        self.tables = {str(r[0]) for r in cur.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        self.delex: dict[str, Delexicalizer] = {}
        self.homes: dict[str, Home] = {}

    def rows(self, sql: str) -> list[dict[str, Any]]:
        cursor = self.cur.execute(sql)
        names = [column[0] for column in cursor.description or ()]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]

    def one(self, sql: str) -> dict[str, Any]:
        found = self.rows(sql)
        return found[0] if found else {}

    def count(self, table: str, where: str = "true") -> int:
        if table not in self.tables:
            return 0
        return int(self.one(f"SELECT count(*) AS n FROM {table} WHERE {where}")["n"])

    # --- the run ---------------------------------------------------------------------------------

    def run(
        self,
        rules_table: RewriteTable | None,
        rewriter: Rewriter | None,
        before: DateRange | None,
        after: DateRange | None,
    ) -> ReportData:
        self.say(STAGES[0])
        signals = self.signals()
        totals = self.one(
            "SELECT count(*) AS turns, count(DISTINCT household_id) AS homes, "
            "count(DISTINCT user_id) AS users, min(timestamp) AS first, max(timestamp) AS last FROM turns"
        )
        data = ReportData(
            store=str(self.store.path),
            generated_at=datetime.now(UTC),
            first=_utc(totals.get("first")),
            last=_utc(totals.get("last")),
            turns=int(totals.get("turns") or 0),
            households=int(totals.get("homes") or 0),
            users=int(totals.get("users") or 0),
            signals=signals,
            rules_source=table_source(rules_table),
            rewriter_source=str(rewriter.path) if rewriter is not None and rewriter.path else None,
        )
        data.notices.extend(self.notices(data))
        if not data.turns:  # nothing logged yet; the rules are still worth reviewing
            if rules_table is not None:
                data.rules, data.rules_more = self.rules(rules_table, [])
            return data
        self.turn_table(signals)
        self.say(STAGES[1])
        self.patterns()
        self.say(STAGES[2])
        if data.has_signals:
            self.rates(data)
        self.say(STAGES[3])
        decisions = self.decision_rows()
        if rules_table is not None:
            decisions = from_community(decisions, rules_table)
        if data.has_signals:
            data.unrecognized, data.unrecognized_more = self.unrecognized(rules_table, rewriter, decisions)
        self.say(STAGES[4])
        data.decisions = decisions[:MAX_ROWS]
        data.decisions_more = max(0, len(decisions) - MAX_ROWS)
        data.rewrites = sum_outcomes(d.outcomes for d in decisions)
        if rules_table is not None:
            data.rules, data.rules_more = self.rules(rules_table, decisions)
        self.say(STAGES[5])
        if data.has_signals:
            data.comparison = self.comparison(data, before, after)
        return data

    def signals(self) -> Signals:
        turns = self.count("turns")
        scored = self.count("defects", "turn_id IN (SELECT turn_id FROM turns)")
        model = None
        if scored:
            model = self.one("SELECT string_agg(DISTINCT model, ', ') AS m FROM defects")["m"]
        fpi_model = None
        fpi_turns = self.count("fpi", "turn_id IN (SELECT turn_id FROM turns)")
        if fpi_turns:
            fpi_model = self.one("SELECT string_agg(DISTINCT model, ', ') AS m FROM fpi")["m"]
        return Signals(
            scored=scored,
            unscored=turns - scored,
            defect_model=model,
            rephrases=self.count("rephrases", "turn_id IN (SELECT turn_id FROM turns)"),
            fpi_model=fpi_model,
            fpi_turns=fpi_turns,
        )

    def notices(self, data: ReportData) -> list[Notice]:
        path, s = self.store.path, data.signals
        out: list[Notice] = []
        if not data.turns:
            out.append(
                Notice("warning", f"{path} holds no turns yet.", f"selflearn ingest LOGS --store {path}")
            )
            return out
        if not s.scored:
            out.append(
                Notice(
                    "warning",
                    "The defect signals have not been computed for this store, so there are no defect rates, "
                    "failing patterns, wins or losses yet (the report never uses simulation truth).",
                    f"selflearn signals --store {path}",
                )
            )
            return out
        if s.unscored:
            out.append(
                Notice(
                    "warning",
                    f"{s.unscored:,} of {data.turns:,} turns have no defect score (ingested after the last "
                    "scoring run); they are left out of every rate.",
                    f"selflearn signals --store {path}",
                )
            )
        if not s.rephrases:
            out.append(
                Notice(
                    "warning",
                    "No rephrase links: every turn counts as a first attempt.",
                    f"selflearn signals --store {path}",
                )
            )
        if not s.fpi_model:
            out.append(
                Notice(
                    "info",
                    "Failure points come from each turn's own stage trace (the stage it shows failing), not "
                    "from failure point isolation, which also finds failures a later stage hid.",
                    f"selflearn fpi predict --store {path}",
                )
            )
        return out

    # --- the per-turn table ----------------------------------------------------------------------

    def turn_table(
        self, signals: Signals, defect_from: Literal["defects", "fpi"] = "defects", unknown: str = ""
    ) -> None:
        """``_report_raw``; ``defect_from="fpi"``: a defect is a failure point other than ``correct``;
        ``unknown``: SQL over ``t`` and ``f`` (fpi) -- those turns' unresolved names become ``{unknown}``."""
        joins, defect, p_defect, first, fpi = [], "NULL::BOOLEAN", "NULL::DOUBLE", "true", "NULL::VARCHAR"
        if signals.scored and defect_from == "defects":
            joins.append("LEFT JOIN defects d ON d.turn_id = t.turn_id")
            defect, p_defect = f"d.p_defect >= {DEFECT_THRESHOLD}", "d.p_defect"
        if signals.rephrases:
            joins.append("LEFT JOIN rephrases r ON r.turn_id = t.turn_id")
            first = "r.rephrase_of IS NULL"
        if signals.fpi_turns:
            joins.append("LEFT JOIN fpi f ON f.turn_id = t.turn_id")
            fpi = "f.failure_point"
            defect = "f.failure_point <> 'correct'" if defect_from == "fpi" else defect
        self.cur.execute(f"""
            CREATE TEMP TABLE _report_raw AS
            SELECT t.turn_id, t.household_id, t.user_id, timezone('UTC', t.timestamp) AS ts,
                   t.device.area AS area, t.nlu.intent AS intent, t.result.status AS status,
                   coalesce(t.rewrite.original_text, t.text) AS said,
                   coalesce(t.rewrite.rewritten_text, '') AS rewritten,
                   t.rewrite.layer AS layer, t.rewrite.rule_id AS rule_id, t.rewrite.score AS score,
                   CASE WHEN {unknown or "false"} THEN coalesce(array_to_string(t.er.unresolved, chr(31)), '')
                        ELSE '' END AS unresolved,
                   {p_defect} AS p_defect, {defect} AS defect, {first} AS first_attempt,
                   CASE WHEN {defect} THEN coalesce({fpi}, {_TRACE_FAILURE}) END AS fp,
                   {fpi} IS NOT NULL AS fp_from_fpi
            FROM turns t {" ".join(joins)}""")

    def patterns(self) -> None:
        """Delexicalize each distinct (home, request, rewrite) once with the home's configured
        names -- as the rewrite table looks requests up, so a request's pattern is the ``source``
        of the rule that would apply to it -- and join the patterns and the homes' pseudonyms
        onto the turns. Names the assistant could not resolve stay words (not ``{unknown}``): a
        household's own nickname is what its failing request is about (but see ``turn_table``)."""
        if "homes" in self.tables:
            for home_id, config in self.cur.execute("SELECT home_id, config FROM homes").fetchall():
                self.homes[str(home_id)] = Home.from_dict(orjson.loads(str(config)))
        keys = self.cur.execute(
            "SELECT DISTINCT household_id, said, rewritten, unresolved FROM _report_raw"
        ).fetchall()
        patterns, rewritten = [], []
        for household, said, rw, names in keys:
            d = self.delexicalizer(household)
            unknown = names.split("\x1f") if names else ()
            patterns.append(d(said or "", unknown).pattern)
            rewritten.append(d(rw, unknown).pattern if rw else None)
        mapping = {
            name: np.array([key[i] for key in keys], dtype=object)
            for i, name in enumerate(("household_id", "said", "rewritten", "unresolved"))
        }
        mapping["pattern"] = np.array(patterns, dtype=object)
        mapping["rewritten_pattern"] = np.array(rewritten, dtype=object)
        households = sorted({str(key[0]) for key in keys})
        names = {
            "household_id": np.array(households, dtype=object),
            "home": np.array([pseudonym(h) for h in households], dtype=object),
        }
        self.cur.register("_report_patterns", mapping)
        self.cur.register("_report_names", names)
        self.cur.execute("""
            CREATE TEMP TABLE _report AS
            SELECT r.*, p.pattern, p.rewritten_pattern, h.home, CAST(r.ts AS DATE) AS day
            FROM _report_raw r
            JOIN _report_patterns p USING (household_id, said, rewritten, unresolved)
            JOIN _report_names h USING (household_id)""")
        self.cur.unregister("_report_patterns")
        self.cur.unregister("_report_names")
        self.cur.execute("DROP TABLE _report_raw")

    def delexicalizer(self, household: str) -> Delexicalizer:
        d = self.delex.get(household)
        if d is None:
            d = self.delex[household] = Delexicalizer(self.homes.get(household))
        return d

    # --- defect rates ----------------------------------------------------------------------------

    def rates(self, data: ReportData) -> None:
        scored = "first_attempt AND defect IS NOT NULL"
        total = self.one(
            "SELECT count(*) AS n, count(*) FILTER (WHERE defect) AS d, avg(p_defect) AS p "
            f"FROM _report WHERE {scored}"
        )
        data.first_attempts, data.defects = int(total["n"] or 0), int(total["d"] or 0)
        data.mean_p_defect = total["p"]
        span = self.one(f"SELECT min(day) AS a, max(day) AS b FROM _report WHERE {scored}")
        if span.get("a") is None:
            return
        days = [span["a"] + timedelta(days=i) for i in range((span["b"] - span["a"]).days + 1)]
        per_day = {
            r["day"]: r
            for r in self.rows(
                f"SELECT day, count(*) AS n, count(*) FILTER (WHERE defect) AS d FROM _report "
                f"WHERE {scored} GROUP BY day"
            )
        }
        data.days = [
            Rate(d.isoformat(), int(per_day.get(d, {}).get("n", 0)), int(per_day.get(d, {}).get("d", 0)))
            for d in days
        ]
        by_fp: dict[str, dict[date, int]] = defaultdict(dict)
        for r in self.rows(
            f"SELECT day, fp, count(*) AS n FROM _report WHERE {scored} AND defect GROUP BY day, fp"
        ):
            by_fp[str(r["fp"])][r["day"]] = int(r["n"])
        order = sorted(by_fp, key=lambda fp: (-sum(by_fp[fp].values()), fp))
        data.days_by_failure_point = {
            fp: [Rate(d.isoformat(), int(per_day.get(d, {}).get("n", 0)), by_fp[fp].get(d, 0)) for d in days]
            for fp in order
        }
        source = (
            f"FPI predictions ({data.signals.fpi_model}) where scored, else the turn's own trace"
            if data.signals.fpi_model
            else "the stage each defective turn's own trace shows failing (FPI not run)"
        )
        fp_total = {fp: sum(v.values()) for fp, v in by_fp.items()}
        data.breakdowns = [
            self.breakdown(
                "intent",
                "by intent",
                "the intent the NLU recognised; '(not understood)': no intent",
                "coalesce(intent, '(not understood)')",
            ),
            Breakdown(
                "failure-point",
                "by failure point",
                f"defects at each failure point, as a share of all first attempts; from {source}",
                [Rate(FAILURE_LABELS.get(fp, fp), data.first_attempts, fp_total[fp]) for fp in order],
            ),
            self.breakdown(
                "household", "by household", "pseudonymous homes (a short stable hash of the id)", "home"
            ),
            self.breakdown(
                "area",
                "by device area",
                "the area of the device that heard the request",
                "coalesce(area, '(no area)')",
            ),
            self.breakdown(
                "hour",
                "by hour of day (UTC)",
                "the hour the request was made, UTC",
                "lpad(hour(ts)::VARCHAR, 2, '0') || ':00'",
                order="1",
                limit=24,
            ),
        ]

    def breakdown(
        self, key: str, title: str, note: str, expr: str, order: str = "n DESC, 1", limit: int | None = None
    ) -> Breakdown:
        rows = self.rows(
            f"SELECT {expr} AS label, count(*) AS n, count(*) FILTER (WHERE defect) AS d FROM _report "
            f"WHERE first_attempt AND defect IS NOT NULL GROUP BY 1 ORDER BY {order}"
        )
        keep = limit or self.top
        return Breakdown(
            key,
            title,
            note,
            [Rate(str(r["label"]), int(r["n"]), int(r["d"])) for r in rows[:keep]],
            max(0, len(rows) - keep),
        )

    # --- unrecognized requests -------------------------------------------------------------------

    def unrecognized(
        self, rules_table: RewriteTable | None, rewriter: Rewriter | None, decisions: list[Decision]
    ) -> tuple[list[Pattern], int]:
        top = self.top_patterns()
        failing = self.one("SELECT count(DISTINCT pattern) AS n FROM _report WHERE defect")["n"]
        more = int(failing or 0) - len(top)
        fps: dict[str, dict[str, int]] = defaultdict(dict)
        for r in self.rows(
            "SELECT pattern, fp, count(*) AS n FROM _report "
            "WHERE defect AND pattern IN (SELECT pattern FROM _report_top) GROUP BY ALL ORDER BY n DESC, fp"
        ):
            fps[r["pattern"]][str(r["fp"])] = int(r["n"])
        examples: dict[str, list[Example]] = defaultdict(list)
        for r in self.rows(f"""
            SELECT pattern, said, count(*) AS n, max(ts) AS last, arg_max(home, ts) AS home,
                   arg_max(status, ts) AS status, arg_max(fp, ts) AS fp
            FROM _report WHERE defect AND pattern IN (SELECT pattern FROM _report_top)
            GROUP BY pattern, said
            QUALIFY row_number() OVER (
                PARTITION BY pattern ORDER BY count(*) DESC, max(ts) DESC, said) <= {EXAMPLES}
            ORDER BY pattern, n DESC, last DESC, said"""):
            examples[r["pattern"]].append(
                Example(
                    r["said"], int(r["n"]), r["last"].replace(tzinfo=UTC), r["home"], r["status"], r["fp"]
                )
            )
        fixes = self.fixes([r["pattern"] for r in top], rules_table, decisions)
        notes: dict[str, str] = {}
        asked: dict[str, Asked] = {}
        if rewriter is not None:
            self.ask_rewriter(rewriter, fixes, notes, asked)
        offered, why_not = best_candidates(self, rules_table, asked)
        self.cur.execute("DROP TABLE _report_top")
        out = []
        for r in top:
            pattern = r["pattern"]
            points = fps.get(pattern, {})
            main = min(points, key=lambda fp: (-points[fp], fp)) if points else None
            out.append(
                Pattern(
                    pattern=pattern,
                    failing=int(r["failing"]),
                    turns=int(r["turns"]),
                    users=int(r["users"]),
                    homes=int(r["homes"]),
                    failure_point=main,
                    failure_points=points,
                    examples=examples.get(pattern, []),
                    fixes=fixes.get(pattern, []),
                    rewriter_note=notes.get(pattern),
                    candidate=offered.get(pattern),
                    candidate_note=why_not.get(pattern),
                )
            )
        return out, int(more)

    def top_patterns(self, failing: str = "defect") -> list[dict[str, Any]]:
        """Into ``_report_top`` (the caller drops it): the top patterns by turns where ``failing`` holds."""
        self.cur.execute(f"""
            CREATE TEMP TABLE _report_top AS
            SELECT pattern, count(*) FILTER (WHERE {failing}) AS failing,
                   count(*) FILTER (WHERE defect IS NOT NULL) AS turns,
                   count(DISTINCT user_id) FILTER (WHERE {failing}) AS users,
                   count(DISTINCT household_id) FILTER (WHERE {failing}) AS homes
            FROM _report GROUP BY pattern HAVING count(*) FILTER (WHERE {failing}) > 0
            ORDER BY failing DESC, pattern LIMIT {int(self.top)}""")
        return self.rows("SELECT * FROM _report_top ORDER BY failing DESC, pattern")

    def fixes(
        self, patterns: list[str], rules_table: RewriteTable | None, decisions: list[Decision]
    ) -> dict[str, list[Fix]]:
        wanted = set(patterns)
        out: dict[str, list[Fix]] = defaultdict(list)
        if rules_table is not None:
            refused = {r["rule_id"] for r in rules_table.unguarded()}
            release, shared = rules_table.community()
            for row in rules_table.rows_where_source(wanted):
                status = "refused" if row["rule_id"] in refused else str(row["status"])
                evidence = (
                    f"release {release}: about {row['users']} installs sent it; it helped "
                    f"{row['p_target']:.0%} of the time"
                    if row["rule_id"] in shared
                    else f"mined: {row['users']} users in {row['households']} homes went from it to the "
                    f"target; it works {row['p_source']:.0%} of the time, the target "
                    f"{row['p_target']:.0%}"
                )
                out[row["source"]].append(
                    Fix(
                        "table",
                        row["source"],
                        row["target"],
                        evidence,
                        row["rule_id"],
                        status,
                        self.reviews.get(row["rule_id"]),
                    )
                )
        for d in decisions:
            if d.source in wanted:
                o = d.outcomes
                out[d.source].append(
                    Fix(
                        "logged",
                        d.source,
                        d.target,
                        f"applied {o.turns} times by the {d.layer} layer ({d.logged_rule}): {o.wins} wins, "
                        f"{o.losses} losses, {o.wrong_actions} wrong actions",
                        d.rule_id,
                        d.verdict,
                        d.review,
                    )
                )
        for pattern, concepts in self.concepts(wanted).items():
            out[pattern].extend(concepts)
        return out

    def concepts(self, wanted: set[str]) -> dict[str, list[Fix]]:
        """Taught concepts that match failing requests of the top patterns (in the same home)."""
        concepts = self.store.concepts()
        if not concepts:
            return {}
        by_home: dict[str, list[Concept]] = defaultdict(list)
        for c in concepts:
            by_home[c.household_id].append(c)
        hits: dict[tuple[str, str], tuple[Concept, set[str], int]] = {}
        for r in self.rows(
            "SELECT pattern, household_id, said, count(*) AS n FROM _report "
            "WHERE defect AND pattern IN (SELECT pattern FROM _report_top) GROUP BY ALL"
        ):
            text = normalize_name(r["said"] or "")
            for c in by_home.get(r["household_id"], ()):
                if _concept_matches(c, text):
                    key = (r["pattern"], c.concept_id)
                    _, homes, n = hits.get(key, (c, set(), 0))
                    hits[key] = (c, homes | {r["household_id"]}, n + int(r["n"]))
        out: dict[str, list[Fix]] = defaultdict(list)
        for (pattern, _), (c, homes, n) in sorted(hits.items()):
            meaning = " | ".join(c.meaning)
            out[pattern].append(
                Fix(
                    "concept",
                    c.phrase,
                    meaning,
                    f"taught ({c.kind}, {c.scope} scope) in {len(homes)} home(s) on {c.timestamp:%Y-%m-%d}; "
                    f"matches {n} failing turns there",
                    None,
                    "taught",
                )
            )
        return out

    def ask_rewriter(
        self,
        rewriter: Rewriter,
        fixes: dict[str, list[Fix]],
        notes: dict[str, str],
        asked: dict[str, Asked],
    ) -> None:
        """What ``rewriter`` decides now for the latest failing request of each top pattern, said
        in the same home and area, known to have failed (a rewriter loaded for the report starts
        with an empty personal layer; a serving one, under :attr:`lock`, has its households')."""
        from selflearn.core.hooks import RewriteContext

        if self.lock is None:
            rewriter.homes.update(self.homes)
        for r in self.rows("""
            SELECT pattern, arg_max(said, ts) AS said, arg_max(household_id, ts) AS household,
                   arg_max(area, ts) AS area, max(ts) AS ts
            FROM _report WHERE defect AND pattern IN (SELECT pattern FROM _report_top) GROUP BY pattern"""):
            household = str(r["household"])
            ctx = RewriteContext(
                household_id=household,
                home=self.homes.get(household),
                area=r["area"],
                timestamp=r["ts"].replace(tzinfo=UTC),
                failed=True,
            )
            if self.lock is None:
                decision = rewriter.rewrite_one(r["said"], ctx)
            elif self.lock.acquire(timeout=1.0):
                try:
                    decision = rewriter.rewrite_one(r["said"], ctx)
                finally:
                    self.lock.release()
            else:  # busy serving: the page does without its answers rather than wait
                break
            asked[r["pattern"]] = Asked(decision, household)
            if not decision.rewritten:
                notes[r["pattern"]] = "the rewriter leaves it: " + "; ".join(decision.reasons[-1:])
                continue
            target = self.delexicalizer(household)(decision.text).pattern
            rid = (
                decision.rule_id
                if decision.layer == "precomputed" and decision.rule_id
                else pair_id(r["pattern"], target)
            )
            fixes[r["pattern"]].append(
                Fix(
                    "rewriter",
                    r["pattern"],
                    target,
                    f"{decision.layer} layer, score {decision.score:.2f}"
                    + ("; it would ask first" if decision.confirm else "")
                    + (f"; {decision.reasons[-1]}" if decision.reasons else ""),
                    rid,
                    "proposed",
                    self.reviews.get(rid),
                )
            )

    # --- rules and decisions ---------------------------------------------------------------------

    def decision_rows(self) -> list[Decision]:
        unrewritten = {
            r["pattern"]: r
            for r in self.rows(
                "SELECT pattern, count(*) AS n, count(*) FILTER (WHERE NOT defect) AS ok FROM _report "
                "WHERE layer IS NULL AND defect IS NOT NULL AND pattern IN "
                "(SELECT DISTINCT pattern FROM _report WHERE layer IS NOT NULL) GROUP BY pattern"
            )
        }
        out = []
        for r in self.rows("""
            SELECT layer, rule_id, pattern, rewritten_pattern, count(*) AS turns,
                   count(*) FILTER (WHERE NOT defect) AS wins, count(*) FILTER (WHERE defect) AS losses,
                   count(*) FILTER (WHERE defect AND status = 'success') AS wrong,
                   count(*) FILTER (WHERE defect IS NULL) AS unscored,
                   avg(score) AS score, count(DISTINCT household_id) AS homes
            FROM _report WHERE layer IS NOT NULL
            GROUP BY ALL ORDER BY turns DESC, layer, pattern, rewritten_pattern, rule_id"""):
            source, target = str(r["pattern"]), str(r["rewritten_pattern"] or "")
            logged = r["rule_id"]
            rid = logged if r["layer"] == "precomputed" and logged else pair_id(source, target)
            outcomes = Outcomes(
                int(r["turns"]), int(r["wins"]), int(r["losses"]), int(r["wrong"]), int(r["unscored"])
            )
            base = unrewritten.get(source)
            n = int(base["n"]) if base else 0
            worked = int(base["ok"]) / n if base and n else None
            verdict, reason = verdict_of(outcomes, worked)
            out.append(
                Decision(
                    rid,
                    logged,
                    str(r["layer"]),
                    source,
                    target,
                    outcomes,
                    float(r["score"] or 0.0),
                    int(r["homes"]),
                    worked,
                    n,
                    verdict,
                    reason,
                    self.reviews.get(rid),
                )
            )
        return out

    def rules(self, table: RewriteTable, decisions: list[Decision]) -> tuple[list[Rule], int]:
        config = table.metadata.get("config") or {}
        confidence = float(config.get("demote_confidence", 0.95))
        logged: dict[str, list[Outcomes]] = defaultdict(list)
        for d in decisions:
            if d.layer == "precomputed":
                logged[d.rule_id].append(d.outcomes)
        refused = {r["rule_id"] for r in table.unguarded()}
        release, shared = table.community()
        out = []
        for row in first_rules(table, MAX_ROWS):
            o = sum_outcomes(logged.get(row["rule_id"], []))
            status, reason = str(row["status"]), ""
            if status == "demoted":
                reason = (
                    f"demoted by the miner: P(it works worse since deployed than the source did before) = "
                    f"{row['p_worse_after']:.2f} >= {confidence:.2f} ({row['deployed_success']} of "
                    f"{row['deployed_turns']} deployed turns worked)"
                )
            elif row["rule_id"] in refused:
                status = "refused"
                reason = (
                    "not applied: today's guards refuse it (it changes the action, its polarity or what is "
                    "acted on without overwhelming evidence); mine the table again"
                )
            elif o.losses > o.wins:
                status = "would be demoted"
                reason = f"more losses than wins in these logs ({o.wins} wins, {o.losses} losses)"
            out.append(
                Rule(
                    rule_id=row["rule_id"],
                    source=row["source"],
                    target=row["target"],
                    source_example=row["source_example"],
                    target_example=row["target_example"],
                    p_source=float(row["p_source"]),
                    p_target=float(row["p_target"]),
                    users=int(row["users"]),
                    households=int(row["households"]),
                    support=int(row["support"]),
                    sensitive=bool(row["sensitive"]),
                    status=status,
                    reason=reason,
                    logged=o,
                    review=self.reviews.get(row["rule_id"]),
                    community=release if row["rule_id"] in shared else None,
                )
            )
        return out, max(0, table.num_rows - MAX_ROWS)

    # --- before / after --------------------------------------------------------------------------

    def comparison(
        self, data: ReportData, before: DateRange | None, after: DateRange | None
    ) -> Comparison | None:
        if not data.days:
            return None
        first, last = date.fromisoformat(data.days[0].label), date.fromisoformat(data.days[-1].label)
        defaulted = before is None and after is None
        if defaulted:
            if first == last:
                data.notices.append(
                    Notice(
                        "info",
                        "The store spans one day: no default before/after comparison "
                        "(give --before and --after).",
                    )
                )
                return None
            middle = first + timedelta(days=((last - first).days + 1) // 2 - 1)
            before, after = DateRange(first, middle), DateRange(middle + timedelta(days=1), last)
        elif before is None:
            assert after is not None
            before = DateRange(first, max(first, after.start - timedelta(days=1)))
        elif after is None:
            after = DateRange(min(last, before.end + timedelta(days=1)), last)
        assert before is not None and after is not None
        if before.start <= after.end and after.start <= before.end:
            data.notices.append(
                Notice("warning", f"The compared ranges {before.label} and {after.label} overlap.")
            )
        periods = (self.period(before), self.period(after))
        for p in periods:
            if not p.turns:
                data.notices.append(
                    Notice("warning", f"No turns in {p.range.label} (the store spans {first}..{last}).")
                )
        return Comparison(periods[0], periods[1], defaulted)

    def period(self, span: DateRange) -> Period:
        where = span.sql()
        r = self.one(f"""
            SELECT count(*) AS turns,
                   count(*) FILTER (WHERE first_attempt AND defect IS NOT NULL) AS fa,
                   count(*) FILTER (WHERE first_attempt AND defect) AS d,
                   avg(p_defect) FILTER (WHERE first_attempt) AS p,
                   count(DISTINCT household_id) AS homes,
                   count(*) FILTER (WHERE layer IS NOT NULL) AS rw,
                   count(*) FILTER (WHERE layer IS NOT NULL AND NOT defect) AS wins,
                   count(*) FILTER (WHERE layer IS NOT NULL AND defect) AS losses,
                   count(*) FILTER (WHERE layer IS NOT NULL AND defect AND status = 'success') AS wrong,
                   count(*) FILTER (WHERE layer IS NOT NULL AND defect IS NULL) AS unscored
            FROM _report WHERE {where}""")
        fps = {
            str(x["fp"]): int(x["n"])
            for x in self.rows(
                f"SELECT fp, count(*) AS n FROM _report WHERE {where} AND first_attempt AND defect "
                "GROUP BY fp ORDER BY n DESC, fp"
            )
        }
        return Period(
            range=span,
            turns=int(r["turns"] or 0),
            first_attempts=int(r["fa"] or 0),
            defects=int(r["d"] or 0),
            mean_p_defect=r["p"],
            homes=int(r["homes"] or 0),
            rewrites=Outcomes(
                int(r["rw"] or 0),
                int(r["wins"] or 0),
                int(r["losses"] or 0),
                int(r["wrong"] or 0),
                int(r["unscored"] or 0),
            ),
            by_failure_point=fps,
        )


def _utc(value: datetime | None) -> datetime | None:
    """``value`` in UTC (DuckDB hands time zone-aware values back in the session's zone)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _concept_matches(concept: Concept, text: str) -> bool:
    """Whether a failing request (normalised) says what ``concept`` taught: a name anywhere in
    it, a phrasing or routine as a run of whole words (``{area}`` standing for any words)."""
    if concept.kind == "preference":
        return False
    pieces = [re.escape(normalize_name(piece)) for piece in concept.phrase.split("{area}")]
    regex = r"[a-z0-9' ]+".join(pieces)
    return re.search(rf"(?:^|\s){regex}(?:\s|$)", text) is not None
