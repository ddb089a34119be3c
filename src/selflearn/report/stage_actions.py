"""What selflearn can do about the requests that fail at each pipeline stage (``selflearn fpi
report``, docs/fpi.md): per stage of the ``fpi`` table, the top failing request *patterns* and one
action for each, decided from what the store and the given rewrite table or rewriter hold --
never from simulation truth.

Patterns are delexicalized with each home's configuration as the miner and the rewrite table do
(:meth:`~selflearn.report.queries.Collector.patterns`): the home's configured names become
``{name}`` / ``{area}`` / ``{floor}`` and numbers ``{number}``, so "turn on the kitchen lamp" and
"turn on the bedroom lamp" of two homes are one pattern and no household's configured name is in
it (one example text per pattern is kept, as said). In the turns predicted to fail at entity
resolution (``er``), the names the assistant could not resolve -- a household's own nicknames --
become ``{unknown}`` too, as the miner does; elsewhere they stay words, since there they are mostly
misrecognised or misunderstood words, not names (pooled, "hows track to work" and "apples on
second" would be one meaningless ``{unknown} to {unknown}``). A turn fails here when its predicted
failure point is not ``correct``; it worked when it is.

The action, first that applies:

* ``rewrite``: a person accepted a rule for the pattern (``selflearn review``), or the report's
  candidate fix (:func:`~selflearn.report.candidates.best_candidates`) is a rule of the mined
  table or what the rewriter does or ranks -- with the target pattern and the command that
  accepts it;
* ``teach``: an ``er`` pattern whose requests hold a name the assistant could not resolve
  (``er.unresolved``) that looks like one someone could teach
  (:func:`~selflearn.dialogue.concepts.plausible_name`): the teaching sentence the assistant
  understands ("the mothership is the <device>", the device filled in when a retry that worked
  said the same request with one device's name instead);
* ``export``: an ``nlu`` pattern that later worked in other words (a retry that worked, the
  report's ``rephrases`` walk): export it as a Home Assistant custom sentence (``selflearn label
  export``);
* ``rewrite`` (proposed): any other stage whose users succeeded with a valid target (not ``result``:
  a request understood and resolved whose device then failed gets a mined rule only);
* ``n-best``: misrecognised (``asr``) requests whose turns logged other hypotheses: the rewriter's
  n-best layer can pick one that works when given them;
* ``none``: nothing selflearn can do from these logs, and what would help: a false wake is the
  wake word's (never rewritten, whatever is proposed: that would act on speech not meant for the
  assistant), a device that failed is the device's.
"""

from __future__ import annotations

import shlex
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import duckdb

from selflearn.core.errors import StoreError
from selflearn.core.home import normalize_name
from selflearn.core.store import Store
from selflearn.dialogue.concepts import plausible_name
from selflearn.report.candidates import Asked, best_candidates, successes
from selflearn.report.views import CandidateFix, Fix, fix_sources
from selflearn.rewrite.review import Reviews
from selflearn.rewrite.table import RewriteTable

if TYPE_CHECKING:
    from selflearn.report.queries import Collector
    from selflearn.rewrite.rewriter import Rewriter

Action = Literal["rewrite", "teach", "export", "n-best", "none"]
"""What can be done about a failing pattern (see the module docstring)."""


@dataclass
class StagePattern:
    """One failing request pattern of a stage and what selflearn can do about it."""

    stage: str
    """The predicted failure point (``asr``, ``nlu``, ``er``, ...)."""
    pattern: str
    """The request delexicalized with its home's configuration (no household's names)."""
    example: str
    """The request said most often of those failing there (one household's words)."""
    count: int
    """Turns of the pattern predicted to fail at this stage."""
    users: int
    """Distinct users of those turns."""
    households: int
    """Distinct households of those turns."""
    action: Action
    """What selflearn can do about it."""
    detail: str
    """The action in words: the rewrite's target, the teaching sentence, what worked instead."""
    target: str | None = None
    """For ``rewrite``: the pattern it rewrites to."""
    command: str | None = None
    """The command that takes the action, when one does."""
    evidence: str = ""
    """Why: the candidate's evidence, or why no rewrite is offered."""


def stage_actions(
    store: Store,
    *,
    top: int = 5,
    table: Path | str | None = None,
    rewriter: Path | str | Rewriter | None = None,
) -> dict[str, list[StagePattern]]:
    """Stage -> its ``top`` failing patterns (most turns first) with an action each, for every
    stage of the ``fpi`` table but ``correct``; empty when no turn has a failure point.

    ``table``: a mined rewrite-table folder; ``rewriter``: a trained rewriter folder or a loaded
    one (its table is used when ``table`` is not given, and it is asked what it would do with the
    latest failing request of each pattern)."""
    rules_table, loaded = fix_sources(table, rewriter)
    from selflearn.report.queries import Collector

    verdicts = store.reviews()
    reviews = Reviews.of(verdicts)
    cur = store.cursor()
    try:
        col = Collector(store, cur, top, {r.review_id: r.decision for r in verdicts}, lambda _stage: None)
        signals = col.signals()
        if not signals.fpi_turns:
            return {}
        col.turn_table(signals, defect_from="fpi", unknown="f.failure_point = 'er'")
        col.patterns()
        stages = [
            str(r["fp"])
            for r in col.rows(
                "SELECT fp, count(*) AS n FROM _report WHERE defect GROUP BY fp ORDER BY n DESC, fp"
            )
        ]
        return {stage: _stage(col, stage, rules_table, loaded, reviews) for stage in stages}
    except duckdb.Error as exc:
        raise StoreError(f"cannot read {store.path} for the failure point report: {exc}") from exc
    finally:
        cur.close()


def _stage(
    col: Collector, stage: str, rules_table: RewriteTable | None, rewriter: Rewriter | None, reviews: Reviews
) -> list[StagePattern]:
    at = f"defect AND fp = '{stage.replace(chr(39), chr(39) * 2)}'"
    top = col.top_patterns(at)
    try:
        patterns = [str(r["pattern"]) for r in top]
        fixes = col.fixes(patterns, rules_table, [])
        notes: dict[str, str] = {}
        asked: dict[str, Asked] = {}
        if rewriter is not None:
            col.ask_rewriter(rewriter, fixes, notes, asked)
        offered, why_not = best_candidates(col, rules_table, asked)
        worked: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in successes(col):
            if r["target"] and r["target"] != r["source"]:
                worked[str(r["source"])].append(r)
        examples = {
            str(r["pattern"]): str(r["said"] or "")
            for r in col.rows(f"""
                SELECT pattern, said FROM _report WHERE {at} AND pattern IN (SELECT pattern FROM _report_top)
                GROUP BY pattern, said
                QUALIFY row_number() OVER (
                    PARTITION BY pattern ORDER BY count(*) DESC, max(ts) DESC, said) = 1""")
        }
        names = _names(col, at)
        traces = {
            str(r["pattern"]): r
            for r in col.rows(f"""
                SELECT r.pattern, count(*) FILTER (WHERE len(t.asr.nbest) > 1) AS alternatives,
                       median(t.wake.score) AS wake, mode(t.result.error_code) AS error
                FROM _report r JOIN turns t USING (turn_id)
                WHERE {at} AND r.pattern IN (SELECT pattern FROM _report_top) GROUP BY r.pattern""")
        }
    finally:
        col.cur.execute("DROP TABLE _report_top")
    labelled = col.count("labels", "intent IS NOT NULL") > 0
    store = shlex.quote(str(col.store.path))
    out = []
    for r in top:
        pattern = str(r["pattern"])
        row = StagePattern(
            stage=stage,
            pattern=pattern,
            example=examples.get(pattern, ""),
            count=int(r["failing"]),
            users=int(r["users"]),
            households=int(r["homes"]),
            action="none",
            detail="",
        )
        _decide(
            row,
            store,
            offered.get(pattern),
            why_not.get(pattern, ""),
            fixes.get(pattern, []),
            worked.get(pattern, []),
            names.get(pattern, []),
            traces.get(pattern, {}),
            reviews,
            labelled,
        )
        out.append(row)
    return out


_KNOWN = frozenset({"{name}", "{area}", "{floor}", "the {name}", "the {area}", "the {floor}"})
"""What a name the home already has delexicalizes to."""


def _names(col: Collector, at: str) -> dict[str, list[tuple[str, str | None, int]]]:
    """Pattern -> (unresolved name, the device a retry that worked said instead or None, failing
    turns), most turns first; only names someone could teach that the home does not have. The
    device is the one entity that a retry which worked resolved, when the retry is the same
    request with a name of the home in the place of the unknown one."""
    retry = ""
    if col.count("rephrases", "rephrase_of IS NOT NULL"):
        retry = """, (SELECT arg_min(t.er.resolved[1].name, w.ts) FROM rephrases n
                      JOIN _report w ON w.turn_id = n.turn_id JOIN turns t ON t.turn_id = w.turn_id
                      WHERE n.rephrase_of = r.turn_id AND NOT w.defect AND len(t.er.resolved) = 1
                        AND w.pattern = replace(r.pattern, '{unknown}', '{name}')) AS meant"""
    found: dict[str, dict[str, tuple[str | None, int]]] = defaultdict(dict)
    for r in col.rows(f"""
        SELECT r.pattern, r.household_id, r.unresolved {retry or ", NULL::VARCHAR AS meant"}
        FROM _report r
        WHERE {at} AND r.unresolved <> ''
          AND r.pattern IN (SELECT pattern FROM _report_top)
        ORDER BY r.ts"""):
        delex = col.delexicalizer(str(r["household_id"]))
        for name in (normalize_name(n) for n in str(r["unresolved"]).split("\x1f")):
            if not plausible_name(name) or delex(name).pattern in _KNOWN:
                continue  # not a name, or one the home has (asked of the wrong kind of thing)
            meant, n = found[str(r["pattern"])].get(name, (None, 0))
            found[str(r["pattern"])][name] = (meant or r["meant"], n + 1)
    return {
        pattern: sorted(((n, m, k) for n, (m, k) in by_name.items()), key=lambda x: (-x[2], x[0]))
        for pattern, by_name in found.items()
    }


def _decide(
    row: StagePattern,
    store: str,
    candidate: CandidateFix | None,
    why_not: str,
    fixes: list[Fix],
    worked: list[dict[str, Any]],
    names: list[tuple[str, str | None, int]],
    trace: dict[str, Any],
    reviews: Reviews,
    labelled: bool,
) -> None:
    pattern, stage = row.pattern, row.stage
    row.evidence = candidate.evidence if candidate is not None else why_not
    accepted = next((r for r in reviews.approved if r.pattern == pattern), None)
    edit = reviews.edit_for(pattern)
    target = edit[0] if edit is not None else accepted.target if accepted is not None else None
    if stage == "false_wake":  # speech not meant for the assistant: a rewrite would act on it
        row.detail = _nothing(stage, trace, why_not)
        proposed = target or (candidate.target if candidate is not None else None)
        if proposed:
            row.detail += f"; do not rewrite it (to {proposed!r}): that acts on speech not meant for it"
        return
    if target is not None:
        row.action, row.target = "rewrite", target
        row.detail = f"-> {target!r}: a person accepted this rule (selflearn review); the rewriter applies it"
        return
    if candidate is not None and stage == "result" and "table" not in candidate.origins:
        # understood and resolved, then the device failed: only a mined rule is worth trying
        why_not = f"a rewrite to {candidate.target!r} is proposed, but it would not mend a device"
        candidate = None
    if candidate is not None and ({"table", "rewriter"} & set(candidate.origins)):
        _rewrite(row, store, candidate)
        return
    if names and stage == "er":
        name, meant, turns = names[0]
        device = meant.lower() if meant else "<device>"
        row.action = "teach"
        row.command = f"the {name} is the {device}"
        row.detail = f'say "{row.command}" ({turns} turn{"" if turns == 1 else "s"}'
        row.detail += ")" if meant else ", with the device it means)"
        if len(names) > 1:
            row.detail += (
                f"; {len(names) - 1} other unknown name{'' if len(names) == 2 else 's'} in this pattern"
            )
        taught = [f for f in fixes if f.kind == "concept"]
        if taught:
            row.detail += (
                f"; taught already: {taught[0].source!r} means {taught[0].target!r} ({taught[0].evidence})"
            )
        return
    if stage == "nlu" and worked:
        best = max(worked, key=lambda w: (int(w["users"]), int(w["successes"]), str(w["target"])))
        row.action, row.target = "export", str(best["target"])
        users, homes = int(best["users"]), int(best["homes"])
        row.detail = (
            f"worked as {best['target']!r} right after failing ({users} user{'' if users == 1 else 's'}, "
            f"{homes} home{'' if homes == 1 else 's'}): export it as a custom sentence (the export keeps it "
            "if it passes its checks)"
        )
        label = "" if labelled else f"selflearn label --store {store} && "
        row.command = f"{label}selflearn label export --store {store} --out ha-config"
        return
    if candidate is not None:
        _rewrite(row, store, candidate)
        return
    if stage == "asr" and int(trace.get("alternatives") or 0):
        row.action = "n-best"
        row.detail = (
            f"misheard; {trace['alternatives']} of its turns logged other hypotheses: pass them to the "
            "rewriter (nbest of POST /v1/rewrite) and its n-best layer takes one that works"
        )
        return
    row.detail = _nothing(stage, trace, why_not)


def _rewrite(row: StagePattern, store: str, c: CandidateFix) -> None:
    row.action, row.target = "rewrite", c.target
    if "table" in c.origins:
        how = "an active rule of the mined table: a rewriter serving it applies it; approve it to keep it"
    elif "rewriter" in c.origins:
        how = "the rewriter's: accept it as a rule"
    else:
        users = f"{c.users} user{'' if c.users == 1 else 's'}"
        how = f"proposed: {users} succeeded with it right after it failed; accept it as a rule"
    row.detail = f"-> {c.target!r} ({how})"
    rule = f" --rule {shlex.quote(c.rule_id)}" if c.rule_id else ""
    if c.decision == "edited":  # what accepting it on the review page records
        rule += f" --to {shlex.quote(c.target)}"
    said = f"{shlex.quote(row.pattern)} {shlex.quote(c.target)}"
    row.command = f"selflearn review add -s {store} {c.decision} {said}{rule}"


def _nothing(stage: str, trace: dict[str, Any], why_not: str) -> str:
    if stage == "false_wake":
        wake = trace.get("wake")
        score = f" (median wake score {wake:.2f})" if wake is not None else ""
        return (
            f"nothing selflearn can do: the wake word fired on speech not meant for the assistant{score}; "
            "raise the satellite's wake-word threshold"
        )
    if stage == "asr":
        return (
            "nothing selflearn can do from these logs: misheard with no other hypotheses logged "
            "(a recogniser that returns an n-best list lets the n-best layer try)"
        )
    if stage == "result":
        error = trace.get("error")
        code = f" ({error})" if error else ""
        note = f"; {why_not}" if why_not and not why_not.startswith("none offered") else ""
        return (
            f"nothing a rewrite fixes: understood and resolved, then the device or service failed{code}{note}"
        )
    if stage == "er":
        return "nothing yet: no name to teach and no rule (resolved to the wrong thing, or not at all)"
    note = why_not.removeprefix("none offered: ") if why_not else ""
    return "nothing yet: no rule, and no retry of it worked" + (f" ({note})" if note else "")
