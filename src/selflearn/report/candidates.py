"""The best candidate fix for each top failing pattern of the report, also when the rewriter would
not act on it unasked (issue 41): where selflearn has one, the report and the live review page
show it with its evidence, and the page offers one click to accept it as a rule.

Candidates come from three places, each said in plain words on the page:

* **table**: an active rule of the mined table for the pattern that today's guards do not refuse;
* **users**: what the pattern's own users said next, right after it failed, and that worked --
  the ``rephrases`` links followed from each failing turn through its failing retries to the
  first that worked (what worked is the rewritten text when that turn was rewritten);
* **rewriter**: what the given rewriter does now with the latest failing request, or, when it
  leaves it, the candidates it ranked below the bar it acts at (``RewriteDecision.candidates``).

A candidate is offered only if it is valid as the rewriter would use it
(:func:`selflearn.rewrite.review.check_target`: its placeholders fillable from the pattern's
values, and, filled with the values of the pattern's latest failing requests -- else with the
names and numbers of a home of the store, which the page then says -- it parses in Home
Assistant's strict templates) and safe to accept in one click (:mod:`selflearn.core.guards`): no
polarity flip, no other action or kind of thing, nothing dropped of when, the same names and
numbers as the request (as the miner requires), nothing sensitive -- locks, covers and garage
doors, alarms -- on either side. A person can still write a review for those by hand. A
candidate only the rewriter ranked needs :data:`MIN_MEANING`.

The one offered is the first of: one a person already accepted, an active mined rule, what at
least two of the pattern's users succeeded with, the rewriter's first choice, the rest (then by
users, successes, score).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from selflearn.core.guards import changes_target, is_sensitive, rejection
from selflearn.core.home import Home
from selflearn.report.views import CandidateFix, CandidateOrigin, pair_id
from selflearn.rewrite.review import Said, check_target

if TYPE_CHECKING:
    from selflearn.report.queries import Collector
    from selflearn.rewrite.rewriter import RewriteDecision
    from selflearn.rewrite.table import RewriteTable

REQUESTS_CHECKED = 5
"""The latest failing requests of a pattern a candidate is filled with and parsed for."""

CHAIN_DEPTH = 4
"""Retries followed from a failing turn to the first one that worked."""

RANKED = 3
"""The rewriter's ranked candidates considered (it shows its best three)."""

ALLOWED_GUARDS = frozenset({"only a carrier phrase in common"})
"""Guard refusals a candidate may still be offered with (said beside it) when at least two of
the pattern's users succeeded with it: the rewriter will not guess it unasked, but a person
reading what the pattern's users said instead can judge it."""

MIN_MEANING = 0.3
"""A candidate only the rewriter ranked (below the bar it acts at) is offered when its ranker
gives it at least this probability of meaning the same as the request: on the demo's store the
ones below were mostly other things ("close the blinds position to 10" -> "the brightness to 10",
"volume 70" -> "70 hour timer")."""

_BAR = re.compile(r"= (\d+\.\d+)(?: \([^)]*\))? < (\d+\.\d+)$")
"""The ranked score and the bar at the end of the rewriter's "below the bar: ..." reason."""


@dataclass(frozen=True)
class Asked:
    """What the rewriter decided for the latest failing request of a pattern."""

    decision: RewriteDecision
    household: str
    """The home the request was said in (its names delexicalize the candidates)."""


@dataclass
class _Proposal:
    target: str
    origins: list[CandidateOrigin] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    users: int = 0
    homes: int = 0
    successes: int = 0
    score: float | None = None
    rule_id: str | None = None
    top_ranked: bool = False
    """The rewriter's first choice (what it does now, or its best candidate)."""
    acting: bool = False
    """What the rewriter does now (not a candidate below its bar)."""

    def add(self, origin: CandidateOrigin, evidence: str) -> None:
        if origin not in self.origins:
            self.origins.append(origin)
        self.evidence.append(evidence)


def best_candidates(
    col: Collector, rules_table: RewriteTable | None, asked: dict[str, Asked]
) -> tuple[dict[str, CandidateFix], dict[str, str]]:
    """The candidate offered for each pattern of ``_report_top`` (see the module docstring),
    and for the others why none is."""
    patterns = [str(r["pattern"]) for r in col.rows("SELECT pattern FROM _report_top ORDER BY pattern")]
    proposals: dict[str, dict[str, _Proposal]] = defaultdict(dict)

    def proposal(source: str, target: str) -> _Proposal:
        found = proposals[source].get(target)
        if found is None:
            found = proposals[source][target] = _Proposal(target)
        return found

    if rules_table is not None:
        wanted = set(patterns)
        refused = {r["rule_id"] for r in rules_table.unguarded()}
        for row in rules_table.rows_where_source(wanted):  # through its index: it may hold millions
            if row["status"] != "active" or row["rule_id"] in refused:
                continue
            p = proposal(row["source"], row["target"])
            p.rule_id = row["rule_id"]
            p.add(
                "table",
                f"a rule of the mined table: {row['users']} users in {row['households']} homes went from "
                f"this pattern to it; it works {row['p_target']:.0%} of the time, the pattern "
                f"{row['p_source']:.0%}",
            )
    for r in successes(col):
        source, target = str(r["source"]), r["target"]
        if not target or target == source:
            continue
        p = proposal(source, str(target))
        p.users, p.homes, p.successes = int(r["users"]), int(r["homes"]), int(r["successes"])
        p.add(
            "users",
            f"{p.users} of its users in {p.homes} homes said it right after the pattern failed, and it "
            f"worked ({p.successes} times)",
        )
    for pattern, a in asked.items():
        _from_rewriter(col, pattern, a, proposal)

    said = _said(col)
    offered: dict[str, CandidateFix] = {}
    notes: dict[str, str] = {}
    for pattern in patterns:
        if is_sensitive(pattern):
            notes[pattern] = (
                "none offered: a sensitive request (locks, covers, garage doors, alarms) -- a person can "
                "still write a rule for it (selflearn review add)"
            )
            continue
        candidates = list(proposals[pattern].values())
        found, why_not = _first_valid(col, pattern, candidates, said.get(pattern, []), pattern in asked)
        if found is not None:
            offered[pattern] = found
        else:
            notes[pattern] = why_not
    return offered, notes


def _from_rewriter(col: Collector, pattern: str, a: Asked, proposal: Callable[[str, str], _Proposal]) -> None:
    d = a.decision
    delex = col.delexicalizer(a.household)
    if d.rewritten:
        p = proposal(pattern, delex(d.text).pattern)
        p.top_ranked, p.acting, p.score = True, True, d.score
        if (d.rule_id or "").startswith("review:"):
            p.add(
                "rewriter",
                "a person accepted it: the rewriter rewrites failing requests of the pattern to it",
            )
        else:
            ask = ", asking first" if d.confirm else ""
            p.add("rewriter", f"the rewriter rewrites to it now ({d.layer} layer, score {d.score:.2f}{ask})")
        return
    bar = _BAR.search(d.reasons[-1]) if d.reasons else None
    for rank, (text, meaning) in enumerate(d.candidates[:RANKED], start=1):
        target = delex(text).pattern
        p = proposal(pattern, target)
        if p.score is None:
            p.score = meaning
        if rank == 1:
            p.top_ranked = True
            if bar is not None and f"-> {target!r}" in d.reasons[-1]:
                how = f"score {bar.group(1)}; it acts unasked from {bar.group(2)}"
            else:
                how = f"probability {meaning:.2f} that it means the same"
            p.add("rewriter", f"the rewriter's top-ranked candidate, below the bar it acts at ({how})")
        else:
            p.add(
                "rewriter",
                f"the rewriter's candidate no. {rank} (probability {meaning:.2f} that it means the same)",
            )


def _first_valid(
    col: Collector, pattern: str, found: list[_Proposal], said: list[Said], asked: bool
) -> tuple[CandidateFix | None, str]:
    """The best proposal that passes the guards and :func:`check_target`, or None and why."""

    def reviewed(p: _Proposal) -> str | None:
        return col.reviews.get(_review_id(pattern, p))

    ranked = sorted(found, key=lambda p: p.target)
    ranked.sort(
        key=lambda p: (
            reviewed(p) in ("approved", "edited"),
            p.rule_id is not None,
            p.users >= 2,
            p.top_ranked,
            p.users,
            p.successes,
            p.score or 0.0,
        ),
        reverse=True,
    )
    refusals: list[str] = []
    for p in ranked:
        guard = rejection(pattern, p.target)
        if reviewed(p) == "rejected":
            refusals.append(f"{p.target!r}: a person rejected it")
            continue
        if is_sensitive(p.target):
            refusals.append(f"{p.target!r}: sensitive (locks, covers, garage doors, alarms)")
            continue
        if guard is not None and guard not in ALLOWED_GUARDS:
            refusals.append(f"{p.target!r}: refused by the guards ({guard})")
            continue
        if changes_target(pattern, p.target):
            refusals.append(f"{p.target!r}: it drops, adds or swaps one of the request's names or numbers")
            continue
        if guard is not None and p.users < 2:
            refusals.append(f"{p.target!r}: refused by the guards ({guard}) and fewer than 2 users said it")
            continue
        if p.origins == ["rewriter"] and not p.acting and (p.score or 0.0) < MIN_MEANING:
            refusals.append(
                f"{p.target!r}: the rewriter's candidate, but it gives it only {p.score or 0.0:.2f} to mean "
                f"the same (offered from {MIN_MEANING})"
            )
            continue
        check, own = check_target(pattern, p.target, col.homes, said), True
        if not check.ok and check.sentence is not None:  # placeholders fine, but it did not parse
            fallback = check_target(pattern, p.target, col.homes)
            if not fallback.ok:
                refusals.append(f"{p.target!r}: {check.reason}, nor with the names of the store's homes")
                continue
            check, own = fallback, False
        if not check.ok:
            refusals.append(f"{p.target!r}: {check.reason}")
            continue
        evidence = "; ".join(p.evidence) + f"; parses as {check.intent} in Home Assistant"
        if not own:
            evidence += (
                f" with a home's own names and numbers ({check.sentence!r}), not with the values of the "
                "pattern's latest failing requests"
            )
        if guard is not None:
            evidence += f" (the rewriter's guards would not apply it unasked: {guard})"
        decision: Literal["approved", "edited"] = "approved" if p.rule_id is not None else "edited"
        return (
            CandidateFix(
                source=pattern,
                target=p.target,
                origins=tuple(p.origins),
                evidence=evidence,
                example=check.sentence or "",
                parses_as=check.intent,
                review_id=_review_id(pattern, p),
                decision=decision,
                users=p.users,
                homes=p.homes,
                successes=p.successes,
                score=p.score,
                rule_id=p.rule_id,
                review=reviewed(p),
            ),
            "",
        )
    if not ranked:
        rewriter = "the rewriter has no candidate for it" if asked else "no rewriter was asked (--rewriter)"
        return None, (
            "none offered: no mined rule for it, none of its users succeeded right after it failed, "
            + rewriter
        )
    more = f" (and {len(refusals) - 3} more)" if len(refusals) > 3 else ""
    return None, "none offered: " + "; ".join(refusals[:3]) + more


def _review_id(pattern: str, p: _Proposal) -> str:
    return p.rule_id if p.rule_id is not None else pair_id(pattern, p.target)


def _said(col: Collector) -> dict[str, list[Said]]:
    """The latest failing requests of each top pattern (at most :data:`REQUESTS_CHECKED`) as
    :func:`check_target` fills and parses them: values, home, device area."""
    out: dict[str, list[Said]] = defaultdict(list)
    for r in col.rows(f"""
        SELECT pattern, said, household_id, area, max(ts) AS last FROM _report
        WHERE defect AND pattern IN (SELECT pattern FROM _report_top)
        GROUP BY pattern, said, household_id, area
        QUALIFY row_number() OVER (
            PARTITION BY pattern ORDER BY max(ts) DESC, said, household_id) <= {REQUESTS_CHECKED}
        ORDER BY pattern, last DESC, said"""):
        household = str(r["household_id"])
        d = col.delexicalizer(household)(r["said"] or "")
        if d.pattern != r["pattern"]:
            continue
        home = col.homes.get(household) or Home.from_dict({"home_id": household})
        out[str(r["pattern"])].append((d.values, home, r["area"]))
    return out


def successes(col: Collector) -> list[dict[str, Any]]:
    """Per (top pattern, pattern that worked): the users, homes and failing turns that went
    from one to the other, following each failing turn's retries (``rephrases``) to the first
    one that worked."""
    if "rephrases" not in col.tables or not col.count("rephrases", "rephrase_of IS NOT NULL"):
        return []
    return col.rows(f"""
        WITH RECURSIVE walk(start, turn_id, depth) AS (
            SELECT turn_id, turn_id, 0 FROM _report
            WHERE defect AND pattern IN (SELECT pattern FROM _report_top)
          UNION ALL
            SELECT w.start, n.turn_id, w.depth + 1
            FROM walk w
            JOIN _report now ON now.turn_id = w.turn_id
            JOIN rephrases n ON n.rephrase_of = w.turn_id
            WHERE now.defect AND w.depth < {CHAIN_DEPTH}
        )
        SELECT s.pattern AS source,
               CASE WHEN t.layer IS NOT NULL THEN t.rewritten_pattern ELSE t.pattern END AS target,
               count(DISTINCT s.user_id) AS users, count(DISTINCT s.household_id) AS homes,
               count(DISTINCT w.start) AS successes
        FROM walk w JOIN _report s ON s.turn_id = w.start JOIN _report t ON t.turn_id = w.turn_id
        WHERE w.depth > 0 AND NOT t.defect
        GROUP BY ALL""")
