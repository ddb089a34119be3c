"""What limits the online rewriter: its candidates, its pick, or its decision?

    python bench/rewrite_ceiling.py --rewriter bench/.cache/online/rewriter-train-360mix-k5 \
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
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson

from selflearn.assistant.execute import Effect
from selflearn.assistant.home import Home, HomeState
from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.rewrite import RequestContext, Rewriter, RewriterConfig
from selflearn.rewrite.features import featurize
from selflearn.simulation.goals import _expected


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


def _read(folder: Path, kind: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for path in sorted(folder.glob(f"{kind}-*.jsonl")):
        with path.open("rb") as fh:
            for line in fh:
                row = orjson.loads(line)
                if row.get("record_type") in ("feedback",):
                    continue
                out[row.get("turn_id") or row.get("home_id")] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rewriter", type=Path, required=True)
    parser.add_argument("--replay", type=Path, required=True, help="a control replay folder")
    parser.add_argument("--limit", type=int, default=0, help="judge at most this many failed turns")
    parser.add_argument("--first-only", action="store_true", help="first attempts only")
    parser.add_argument("--curve", action="store_true")
    args = parser.parse_args()

    rewriter = Rewriter.load(args.rewriter, RewriterConfig(personal=False))
    if rewriter.ranker is None:
        sys.exit(f"{args.rewriter} has no ranker: train it with `selflearn train rewriter`")
    assistant = Assistant(AssistantConfig(asr="exact"))
    homes = {h: Home.from_dict(row) for h, row in _read(args.replay, "homes").items()}
    turns, truth = _read(args.replay, "turns"), _read(args.replay, "truth")
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
        home = homes[turn["household_id"]]
        area_name = (turn.get("device") or {}).get("area")
        area = home.area_named(area_name) if area_name else None
        area_id = area.area_id if area else None
        ts = datetime.fromisoformat(turn["timestamp"])
        goal = t["goal"]
        expected: Effect | None = None
        if t["in_scope"]:
            expected = _expected(goal["intent"], dict(goal["slots"]), HomeState.initial(home), area_id, ts)

        def right(text: str, home: Home = home, ts: datetime = ts, area: str | None = area_id) -> bool:
            """Whether the assistant, given ``text``, does what the user wanted (on the home's
            initial state)."""
            *_, effect = assistant.run_text(text, HomeState.initial(home), ts, area, explain_failures=False)
            return effect is not None and effect == expected  # noqa: B023 -- read at once

        ctx = RequestContext(turn["household_id"], turn["user_id"], home, area_name, ts, failed=True)
        decision = rewriter.rewrite_one(turn["text"], ctx)
        prep = rewriter.prepare(turn["text"], ctx)
        cands, score, pick_right, meaning, fixable = [], 0.0, False, 0.0, 0.0
        if prep is not None:
            query, hood, cands = rewriter.retrieve(prep, ctx)
            if cands:
                x = featurize(query, cands, rewriter.knowledge, hood, None, rewriter.ranker.intents)
                verdict = rewriter.ranker.decide(x, True)
                score, fixable = verdict.score, verdict.fixable
                meaning = float(verdict.meaning[verdict.best])
                pick_right = expected is not None and right(cands[verdict.best].text)
        judgeable = expected is not None or not t["in_scope"]
        reachable = expected is not None and any(right(c.text) for c in cands)
        fired_right = decision.rewritten and expected is not None and right(decision.text)
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
    for kind in [*sorted(k for k in kinds if k != "oos"), "oos", "all"]:
        sel = [r for r in rows if kind in ("all", r.kind)]
        if not sel:
            continue
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
        score = np.array([r.score for r in scored])
        good = np.array([r.pick_right for r in scored])
        oos = np.array([r.kind == "oos" for r in scored])
        for th in (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6):
            on = score >= th
            w_in = int((on & ~good & ~oos).sum())
            w_out = int((on & oos).sum())
            r_n = int((on & good).sum())
            print(f"| {th:.2f} | {r_n:,} | {w_in:,} | {w_out:,} | {r_n / max(w_in + w_out, 1):.1f} |")
        from sklearn.metrics import roc_auc_score

        bad = ~good
        if good.any() and bad.any():
            for name, values in (
                ("decision score", score),
                ("meaning", np.array([r.meaning for r in scored])),
                ("fixable", np.array([r.fixable for r in scored])),
            ):
                print(f"AUC right vs wrong pick, {name}: {roc_auc_score(good, values):.3f}")
    summary = {
        "rows": len(rows),
        "by_kind": {k: int(v) for k, v in kinds.items()},
    }
    print(json.dumps(summary), file=sys.stderr)


if __name__ == "__main__":
    main()
