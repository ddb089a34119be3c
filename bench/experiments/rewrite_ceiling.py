"""What limits the online rewriter: its candidates, its pick, or its decision?

    python bench/experiments/rewrite_ceiling.py --rewriter bench/.cache/online/rewriter-train-360mix-k5 \\
        --replay bench/.cache/online/replay-held-out-control

Reads a *control* replay (no rewriter; simulated by ``bench/online.py``) and, for every turn the
assistant failed on (what a rewriter behind the NLU is asked about), asks the rewriter for its
decision with the global layer only, then judges, from simulation truth (evaluation only: nothing
here feeds a learner):

* **reachable**: does any of the rewriter's candidates, run through the reference assistant, do
  what the user wanted? (the retrieval ceiling);
* **pick**: does the candidate the ranker scores best do it?
* **fires**: does the rewrite clear the calibrated threshold, and is it then right or wrong?

Candidates are executed on the home's initial state, so requests that depend on earlier turns
(a running timer, an item on the list) may not be judgeable; they are counted apart. Rows are
split by the truth's failure point (``asr``: the words said would have worked, ASR broke them;
``nlu``: phrasing the NLU does not cover; ``er``: an unknown name) and out-of-scope requests.

``--curve`` prints, for the decision score, right and wrong rewrites above each threshold: how
much a better threshold alone could buy on this population.

``--intent-candidates N`` asks whether another candidate source would reach more: the intents
the request's 10 nearest global patterns vote for (cosine-squared weights, a failing pattern
voting for its fix's intent, as the ranker's ``votes_neighbours`` feature does), and for the top
two of them the ``N`` working patterns with the request's slots that most users said, guards
applied. It counts the failed turns only these extra candidates reach.

``--session-candidates SECONDS`` asks whether the same user's earlier failed requests (at most
two, within ``SECONDS`` before this one; a runtime knows them from the turns it is sent) would
reach more: candidates retrieved for their text, judged against this turn's goal. It counts the
failed turns only these extra candidates reach, and how many of the earlier requests were in
truth the same goal (reported, never used).

``--gazetteer-acted`` judges the other turns instead: those where strict matching failed and the
gazetteer fallback acted. Would a rewriter also consulted there (told, as behind the NLU, that
the request failed strict matching) turn the gazetteer's wrong actions into rescues, and at how
many losses where the gazetteer was right?

``--why-wrong THRESHOLD`` sorts the judgeable wrong ranked picks at or above ``THRESHOLD``:
out-of-scope requests; the right action with a wrong value or target (the pick's intent is the
goal's); another action; a pick that does nothing. It shows examples with the words the user
said, before ASR.

``--nbest`` also reads the recogniser's other hypotheses of each failed turn: would any of them
work as said, does the rewriter's n-best step pick a right one, and would ranked retrieval run on
the alternatives reach, pick and clear the bar with a right candidate?
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from selflearn.assistant.devices import HomeState
from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.core.delex import fill
from selflearn.core.embed import RelatedWords
from selflearn.core.home import Home
from selflearn.core.hooks import RewriteContext
from selflearn.evaluate.replay import read_records, turn_setting
from selflearn.rewrite import Rewriter, RewriterConfig
from selflearn.rewrite.features import (
    Candidate,
    Neighbourhood,
    Query,
    featurize,
    guard_for,
    neighbour_votes,
)
from selflearn.rewrite.rewriter import Prepared


@dataclass
class Row:
    """One failed turn as the rewriter saw it, judged from simulation truth."""

    kind: str
    """Failure point, or ``oos`` for out-of-scope requests."""
    attempt: int
    candidates: int
    judgeable: bool
    reachable: bool
    pick_right: bool
    score: float
    """Decision score of the best candidate (0 without candidates)."""
    meaning: float
    fixable: float
    fired: bool
    fired_right: bool
    layer: str | None
    turn_id: str = ""
    text: str = ""
    """What the rewriter was given."""
    pick: str = ""
    """The ranked pick (empty without candidates)."""
    alts: int = 0
    """Distinct alternative hypotheses (``--nbest``)."""
    alt_works: bool = False
    """Some alternative, sent as it is, does what the user wanted."""
    nbest_step: int = 0
    """The n-best step's pick (global statistics): 0 none, 1 right, -1 wrong."""
    alt_reachable: bool = False
    """Some candidate retrieved for some alternative works."""
    alt_score: float = 0.0
    """Best decision score over the alternatives' ranked picks."""
    alt_right: bool = False
    """That pick works."""
    intent_reachable: bool = False
    """Some ``--intent-candidates`` candidate that retrieval did not find works."""
    session_prev: tuple[str, ...] = ()
    """Turn ids of the same user's earlier failed requests in the window (``--session-candidates``)."""
    session_same_goal: bool = False
    """One of them was, in truth, the same goal (reported only)."""
    session_reachable: bool = False
    """Some candidate of those earlier requests, not retrieved for this one, works."""
    wrong_kind: str = ""
    """``--why-wrong``: for a wrong pick at or above the bar, what kind of wrong it is."""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rewriter", type=Path, required=True)
    parser.add_argument("--replay", type=Path, required=True, help="a control replay folder")
    parser.add_argument("--limit", type=int, default=0, help="judge at most this many failed turns")
    parser.add_argument("--first-only", action="store_true", help="first attempts only")
    parser.add_argument("--curve", action="store_true")
    parser.add_argument(
        "--thresholds",
        default="0.05,0.1,0.15,0.2,0.25,0.3,0.4,0.5,0.6",
        help="comma-separated thresholds of the --curve table",
    )
    parser.add_argument(
        "--dump", type=Path, help="write every judged turn (kind, scores, right/wrong) to this JSONL file"
    )
    parser.add_argument("--nbest", action="store_true", help="also judge the ASR's other hypotheses")
    parser.add_argument(
        "--why-wrong",
        type=float,
        default=None,
        metavar="THRESHOLD",
        help="sort the wrong ranked picks scored at or above THRESHOLD by kind (see above)",
    )
    parser.add_argument(
        "--intent-candidates",
        type=int,
        default=0,
        metavar="N",
        help="also judge N extra candidates per top-voted intent (see above)",
    )
    parser.add_argument(
        "--session-candidates",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also judge candidates of the same user's failed requests of the last SECONDS",
    )
    parser.add_argument(
        "--gazetteer-acted",
        action="store_true",
        help="judge the turns the gazetteer acted on instead (see above)",
    )
    args = parser.parse_args()

    rewriter = Rewriter.load(args.rewriter, RewriterConfig(personal=False))
    if rewriter.ranker_ is None:
        sys.exit(f"{args.rewriter} has no ranker: train it with `selflearn train rewriter`")
    by_intent = _targets_by_intent(rewriter) if args.intent_candidates else {}
    # The word-relatedness guard the rewriter applies to its own candidates (the same embedder).
    related = RelatedWords(rewriter.embedder) if rewriter.embedder is not None else None
    assistant = Assistant(AssistantConfig(asr="exact"))
    homes = {h: Home.from_dict(row) for h, row in read_records(args.replay, "homes").items()}
    turns, truth = read_records(args.replay, "turns"), read_records(args.replay, "truth")
    if args.gazetteer_acted:
        _gazetteer_acted(rewriter, assistant, homes, turns, truth, args.limit)
        return
    earlier = _failed_before(turns) if args.session_candidates else {}
    rows: list[Row] = []
    started = time.perf_counter()
    for turn_id, t in truth.items():
        turn = turns.get(turn_id)
        if turn is None or t["action"] == "background" or (t["in_scope"] and not t["defect"]):
            continue
        if (turn.get("result") or {}).get("status") == "success":
            continue  # acted (wrongly): a caller behind the NLU would not ask the rewriter
        if args.first_only and t["attempt"] != 1:
            continue
        home, area_name, area_id, ts, expected = turn_setting(turn, t, homes)
        goal = t["goal"]

        def right(text: str, home: Home = home, ts: datetime = ts, area: str | None = area_id) -> bool:
            """Whether the assistant, given ``text``, does what the user wanted (on the home's
            initial state)."""
            *_, effect = assistant.run_text(text, HomeState.initial(home), ts, area, explain_failures=False)
            return effect is not None and effect == expected  # noqa: B023 -- read at once

        alts: list[str] = []
        if args.nbest:
            said = [h["text"] for h in ((turn.get("asr") or {}).get("nbest") or [])]
            alts = [a for a in dict.fromkeys(said) if a and a != turn["text"]]
        ctx = RewriteContext(
            turn["household_id"], turn["user_id"], home, area_name, ts, failed=True, nbest=tuple(alts)
        )
        decision = rewriter.rewrite_one(turn["text"], ctx)
        prep = rewriter.prepare(turn["text"], ctx)
        cands: list[Candidate] = []
        score, pick_right, meaning, fixable, pick = 0.0, False, 0.0, 0.0, ""
        if prep is not None:
            query, hood, cands = rewriter.retrieve(prep, ctx)
            if cands:
                x = featurize(query, cands, rewriter.knowledge_, hood, None, rewriter.ranker_.intents)
                verdict = rewriter.ranker_.for_household(ctx.household_id).decide(x, True)
                score, fixable = verdict.score, verdict.fixable
                meaning = float(verdict.meaning[verdict.best])
                pick = cands[verdict.best].text
                pick_right = expected is not None and right(pick)
        reachable = expected is not None and any(right(c.text) for c in cands)
        fired_right = decision.rewritten and expected is not None and right(decision.text)
        extra = _alternatives(rewriter, ctx, prep, alts, right) if alts and prep is not None else {}
        judgeable = expected is not None or not t["in_scope"]
        if args.why_wrong is not None and judgeable and pick and not pick_right and score >= args.why_wrong:
            nlu, *_, effect = assistant.run_text(
                pick, HomeState.initial(home), ts, area_id, explain_failures=False
            )
            extra["wrong_kind"] = (
                "out of scope"
                if not t["in_scope"]
                else "does nothing"
                if effect is None
                else "right action, wrong value or target"
                if nlu.trace.intent == goal["intent"]
                else "another action"
            )
        if args.intent_candidates and expected is not None and prep is not None and not reachable:
            texts = _intent_candidates(
                rewriter, query, hood, cands, by_intent, args.intent_candidates, related
            )
            extra["intent_reachable"] = any(right(text) for text in texts)
        if args.session_candidates and prep is not None:
            prev = [
                (tid, text)
                for when, tid, text in earlier.get(turn_id, [])
                if (ts - when).total_seconds() <= args.session_candidates and text != turn["text"]
            ][-2:]
            extra["session_prev"] = tuple(tid for tid, _ in prev)
            extra["session_same_goal"] = any(
                (truth.get(tid) or {}).get("goal", {}).get("goal_id") == goal["goal_id"] for tid, _ in prev
            )
            if expected is not None and not reachable and prev:
                have = {c.text for c in cands}
                found: list[str] = []
                for _, text in prev:
                    earlier_prep = rewriter.prepare(text, ctx)
                    if earlier_prep is not None:
                        more = rewriter.retrieve(earlier_prep, ctx)[2]
                        found += [c.text for c in more if c.text not in have]
                extra["session_reachable"] = any(right(x) for x in dict.fromkeys(found))
        rows.append(
            Row(
                t["failure_point"] if t["in_scope"] else "oos",
                t["attempt"],
                len(cands),
                judgeable,
                reachable or fired_right,
                pick_right,
                score,
                meaning,
                fixable,
                decision.rewritten,
                fired_right,
                decision.layer,
                turn_id,
                turn["text"],
                pick,
                **extra,
            )
        )
        if len(rows) % 2000 == 0:
            print(f"[ceiling] {len(rows):,} turns, {time.perf_counter() - started:.0f} s", file=sys.stderr)
        if args.limit and len(rows) >= args.limit:
            break

    print(f"rewriter {args.rewriter.name}, replay {args.replay.name}: {len(rows):,} failed turns judged")
    print()
    print(
        "| kind | turns | judgeable | with candidates | reachable | pick right | fired | fired right "
        "| fired wrong |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    kinds = Counter(r.kind for r in rows)
    for kind, sel in _by_kind(rows):
        fired = sum(r.fired for r in sel)
        right_n = sum(r.fired_right for r in sel)
        print(
            f"| {kind} | {len(sel):,} | {sum(r.judgeable for r in sel):,} "
            f"| {sum(r.candidates > 0 for r in sel):,} "
            f"| {sum(r.reachable for r in sel):,} | {sum(r.pick_right for r in sel):,} | {fired:,} "
            f"| {right_n:,} | {fired - right_n:,} |"
        )
    if args.curve:
        print()
        print("Decision score of the ranked pick (table and personal layers aside): right and wrong picks")
        print("| threshold | right | wrong (in scope) | wrong (out of scope) | right per wrong |")
        print("|---:|---:|---:|---:|---:|")
        scored = [r for r in rows if r.candidates and (r.judgeable or r.kind == "oos")]
        scores = np.array([r.score for r in scored])
        good = np.array([r.pick_right for r in scored])
        oos = np.array([r.kind == "oos" for r in scored])
        for th in (float(v) for v in args.thresholds.split(",")):
            on = scores >= th
            w_in = int((on & ~good & ~oos).sum())
            w_out = int((on & oos).sum())
            r_n = int((on & good).sum())
            print(f"| {th:.2f} | {r_n:,} | {w_in:,} | {w_out:,} | {r_n / max(w_in + w_out, 1):.1f} |")
        from sklearn.metrics import roc_auc_score

        bad = ~good
        if good.any() and bad.any():
            for name, values in (
                ("decision score", scores),
                ("meaning", np.array([r.meaning for r in scored])),
                ("fixable", np.array([r.fixable for r in scored])),
            ):
                print(f"AUC right vs wrong pick, {name}: {roc_auc_score(good, values):.3f}")
    if args.intent_candidates:
        print()
        print(
            f"Intent-vote candidates ({args.intent_candidates} per intent, top two intents): failed "
            "turns that only they reach"
        )
        print("| kind | judgeable | reachable by retrieval | reachable only by intent-vote candidates |")
        print("|---|---:|---:|---:|")
        for kind, judged in _judged_in_scope(rows):
            print(
                f"| {kind} | {len(judged):,} | {sum(r.reachable for r in judged):,} "
                f"| {sum(r.intent_reachable for r in judged):,} |"
            )
    if args.session_candidates:
        print()
        print(
            f"Session candidates (the same user's failed requests of the last {args.session_candidates:g} s, "
            "at most two): failed turns that only they reach"
        )
        print(
            "| kind | judgeable | with an earlier failed request | of which the same goal "
            "| reachable by retrieval | reachable only by session candidates |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for kind, judged in _judged_in_scope(rows):
            print(
                f"| {kind} | {len(judged):,} | {sum(bool(r.session_prev) for r in judged):,} "
                f"| {sum(r.session_same_goal for r in judged):,} | {sum(r.reachable for r in judged):,} "
                f"| {sum(r.session_reachable for r in judged):,} |"
            )
        by_id = {r.turn_id: r for r in rows}
        only = [r for r in rows if r.session_reachable]
        before = [[by_id[t] for t in r.session_prev if t in by_id] for r in only]
        fixed = sum(any(e.fired_right for e in b) for b in before)
        below = sum(any(e.pick_right and not e.fired for e in b) for b in before)
        print(
            f"Of the {len(only):,} turns only session candidates reach, the earlier request was fixed "
            f"already by the rewriter (fired right) for {fixed:,} (a rewriting arm would not see this "
            f"retry); it had a right pick below the bar for {below:,}."
        )
    if args.why_wrong is not None:
        _why_wrong_report(rows, truth, args.why_wrong)
    if args.nbest:
        _nbest_report(rows, rewriter)
    if args.dump:
        with args.dump.open("w") as out:
            for r in rows:
                out.write(json.dumps(asdict(r)) + "\n")
    summary = {
        "rows": len(rows),
        "by_kind": {k: int(v) for k, v in kinds.items()},
    }
    print(json.dumps(summary), file=sys.stderr)


def _gazetteer_acted(
    rewriter: Rewriter,
    assistant: Assistant,
    homes: dict[str, Home],
    turns: dict[str, dict[str, Any]],
    truth: dict[str, dict[str, Any]],
    limit: int,
) -> None:
    """``--gazetteer-acted``: the rewriter consulted on the turns the gazetteer acted on."""
    counts: Counter[str] = Counter()
    started = time.perf_counter()
    for turn_id, turn in turns.items():
        t = truth.get(turn_id)
        if t is None or t["action"] == "background":
            continue
        if (turn.get("nlu") or {}).get("matcher") != "gazetteer":
            continue
        if (turn.get("result") or {}).get("status") != "success":
            continue
        home, area_name, area_id, ts, expected = turn_setting(turn, t, homes)
        kind = "gazetteer right"
        if t["defect"]:
            kind = "gazetteer wrong" if t["in_scope"] else "out of scope"
        counts[kind] += 1
        ctx = RewriteContext(turn["household_id"], turn["user_id"], home, area_name, ts, failed=True)
        decision = rewriter.rewrite_one(turn["text"], ctx)
        if decision.rewritten:
            effects = [
                assistant.run_text(text, HomeState.initial(home), ts, area_id, explain_failures=False)[-1]
                for text in (turn["text"], decision.text)
            ]
            counts[f"{kind} fired"] += 1
            if effects[1] == effects[0]:
                counts[f"{kind} same"] += 1
            elif expected is not None and effects[1] == expected:
                counts[f"{kind} right"] += 1
        if sum(counts[k] for k in ("gazetteer right", "gazetteer wrong", "out of scope")) == limit:
            break
    seconds = time.perf_counter() - started
    print(f"Turns the gazetteer acted on, the rewriter consulted as well ({seconds:.0f} s)")
    print()
    print(
        "| the gazetteer was | turns | rewriter fires | same effect | another effect, right "
        "| another, wrong |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for kind in ("gazetteer right", "gazetteer wrong", "out of scope"):
        fired, same, right = counts[f"{kind} fired"], counts[f"{kind} same"], counts[f"{kind} right"]
        print(
            f"| {kind.removeprefix('gazetteer ')} | {counts[kind]:,} | {fired:,} | {same:,} | {right:,} "
            f"| {fired - same - right:,} |"
        )


def _why_wrong_report(rows: list[Row], truth: dict[str, dict[str, Any]], bar: float) -> None:
    """``--why-wrong``: the kinds of wrong picks at or above ``bar``, with examples."""
    wrong = [r for r in rows if r.wrong_kind]
    kinds = Counter(r.wrong_kind for r in wrong)
    print()
    print(f"Wrong ranked picks scored at or above {bar:g}: {len(wrong):,}")
    print("| kind | picks | share |")
    print("|---|---:|---:|")
    for kind, n in kinds.most_common():
        print(f"| {kind} | {n:,} | {n / len(wrong):.0%} |")
    for kind in kinds:
        sample = [r for r in wrong if r.wrong_kind == kind][:: max(1, kinds[kind] // 6)][:6]
        print(f"{kind}, e.g.:")
        for r in sample:
            said = truth[r.turn_id].get("intended_text")
            print(f"  said {said!r}, heard {r.text!r} -> {r.pick!r}")


def _failed_before(turns: dict[str, dict[str, Any]]) -> dict[str, list[tuple[datetime, str, str]]]:
    """For every turn, the same user's earlier turns the assistant did not act on, oldest first."""
    by_user: dict[tuple[str, str], list[tuple[datetime, str, dict[str, Any]]]] = {}
    for tid, turn in turns.items():
        if turn.get("text"):
            key = (turn["household_id"], turn["user_id"])
            by_user.setdefault(key, []).append((datetime.fromisoformat(turn["timestamp"]), tid, turn))
    out: dict[str, list[tuple[datetime, str, str]]] = {}
    for seq in by_user.values():
        seq.sort(key=lambda x: x[0])
        failed: list[tuple[datetime, str, str]] = []
        for when, tid, turn in seq:
            out[tid] = failed[-4:]
            if (turn.get("result") or {}).get("status") != "success":
                failed.append((when, tid, turn["text"]))
    return out


def _targets_by_intent(rewriter: Rewriter) -> dict[tuple[str, str], list[int]]:
    """Rows of the global rewrite targets by (intent, slot signature), most users first."""
    knowledge = rewriter.knowledge_
    out: dict[tuple[str, str], list[int]] = {}
    if knowledge is None:
        return out
    for row, p in enumerate(knowledge.patterns_):
        if knowledge.targets[row] and p.intent:
            out.setdefault((p.intent, p.slots), []).append(row)
    for rows in out.values():
        rows.sort(key=lambda r: (-knowledge.patterns_[r].users, -knowledge.patterns_[r].successes))
    return out


def _intent_candidates(
    rewriter: Rewriter,
    query: Query,
    hood: Neighbourhood | None,
    cands: list[Candidate],
    by_intent: dict[tuple[str, str], list[int]],
    per_intent: int,
    related: RelatedWords | None,
) -> list[str]:
    """Texts of the ``--intent-candidates`` that retrieval did not already return."""
    knowledge = rewriter.knowledge_
    if knowledge is None:
        return []
    votes, _ = neighbour_votes(knowledge, hood)
    have = {c.pattern for c in cands} | {query.pattern}
    texts: list[str] = []
    for intent in sorted(votes, key=votes.__getitem__, reverse=True)[:2]:
        for row in by_intent.get((intent, query.slots), [])[:per_intent]:
            pattern = knowledge.patterns_[row].pattern
            if pattern in have:
                continue
            text = fill(pattern, query.d.values)
            if text is not None and guard_for(query, pattern, related) is None:
                texts.append(text)
    return texts


def _judged_in_scope(rows: list[Row]) -> Iterator[tuple[str, list[Row]]]:
    """The judgeable rows of each in-scope failure point, then of all of them (out of scope left
    out; kinds without such rows skipped)."""
    for kind, sel in _by_kind(rows):
        judged = [r for r in sel if r.judgeable and kind != "oos"]
        if judged:
            yield kind, judged


def _by_kind(rows: list[Row]) -> Iterator[tuple[str, list[Row]]]:
    """The rows of each failure point (sorted, out-of-scope last), then all of them."""
    kinds = {r.kind for r in rows}
    for kind in [*sorted(k for k in kinds if k != "oos"), "oos", "all"]:
        sel = [r for r in rows if kind in ("all", r.kind)]
        if sel:
            yield kind, sel


def _alternatives(
    rewriter: Rewriter, ctx: RewriteContext, prep: Prepared, alts: list[str], right: Callable[[str], bool]
) -> dict[str, Any]:
    """Judge the recogniser's other hypotheses of one failed turn (see ``--nbest``)."""
    assert rewriter.ranker_ is not None  # checked in main
    ranker = rewriter.ranker_.for_household(ctx.household_id)
    picked = rewriter.retrieval.nbest_alternative(prep, ctx)
    nbest_step = 0 if picked is None else (1 if right(picked[0].aliased) else -1)
    alt_works = any(right(a) for a in alts)
    reachable, best_score, best_text = False, 0.0, None
    for alt in alts:
        ap = rewriter.prepare(alt, ctx)
        if ap is None or ap.d.pattern == prep.d.pattern:
            continue
        query, hood, cands = rewriter.retrieve(ap, ctx)
        if not cands:
            continue
        x = featurize(query, cands, rewriter.knowledge_, hood, None, ranker.intents)
        verdict = ranker.decide(x, True)
        reachable = reachable or any(right(c.text) for c in cands)
        if verdict.score > best_score:
            best_score, best_text = verdict.score, cands[verdict.best].text
    return {
        "alts": len(alts),
        "alt_works": alt_works,
        "nbest_step": nbest_step,
        "alt_reachable": reachable,
        "alt_score": best_score,
        "alt_right": best_text is not None and right(best_text),
    }


def _nbest_report(rows: list[Row], rewriter: Rewriter) -> None:
    """What the alternatives could add to what the rewriter does with the top hypothesis alone."""
    ranker = rewriter.ranker_
    assert ranker is not None
    bar = ranker.threshold
    with_alts = [r for r in rows if r.alts]
    print()
    print(f"Failed turns with alternative hypotheses: {len(with_alts):,} of {len(rows):,}")
    print(
        "| kind | turns | an alternative works as said | n-best step right / wrong | reachable (top) "
        "| reachable (alternatives) | either | top fired right / wrong |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---|")
    for kind, sel in _by_kind(with_alts):
        fired = sum(r.fired for r in sel)
        fr = sum(r.fired_right for r in sel)
        print(
            f"| {kind} | {len(sel):,} | {sum(r.alt_works for r in sel):,} "
            f"| {sum(r.nbest_step == 1 for r in sel):,} / {sum(r.nbest_step == -1 for r in sel):,} "
            f"| {sum(r.reachable for r in sel):,} | {sum(r.alt_reachable for r in sel):,} "
            f"| {sum(r.reachable or r.alt_reachable for r in sel):,} | {fr:,} / {fired - fr:,} |"
        )
    print()
    print("Ranked retrieval on the alternatives, for turns where neither the n-best step nor the top")
    print(f"hypothesis' ranked pick fired (top bar {bar:.3f}): right / wrong picks above each bar")
    print("| bar | right | wrong (in scope) | wrong (out of scope) |")
    print("|---:|---:|---:|---:|")
    rest = [r for r in with_alts if not r.fired and r.nbest_step == 0 and r.alt_score > 0]
    for th in (bar, bar + 0.05, bar + 0.1, bar + 0.2, bar + 0.3):
        on = [r for r in rest if r.alt_score >= th]
        good = sum(r.alt_right for r in on)
        oos = sum(r.kind == "oos" for r in on)
        print(f"| {th:.3f} | {good:,} | {len(on) - good - oos:,} | {oos:,} |")


if __name__ == "__main__":
    main()
