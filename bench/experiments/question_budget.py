"""Which questions are worth asking? The ask policy swept on the reference assistant.

The real-home benchmark (bench/real_home.py) asks about 22 questions per 100 turns behind Home
Assistant 2025.4 (strict matching, noisy speech), against a target of 5. Home Assistant and the
reference assistant agree on 94 % of turns there, so this sweeps ask policies on the reference
assistant (strict matching, as Home Assistant 2025.4 has; the held-out population), much faster
than a real core, and prints per policy: defect reduction, rescues, wrong actions, questions per
100 turns and how the questions ended.

    python bench/experiments/question_budget.py --households 20 --days 7 \
        --rewriter bench/.cache/starter-strict/rewriter

Policies: ``act`` (no questions), ``ask`` (ask about every guess the rewriter would act on) and
``ask@T`` (ask only about guesses scored at least ``T``; below it, nothing). ``--no-nbest``: the
rewriter sees one transcript, as behind Home Assistant. Each row also says, for ``act``, the
ranked guesses' rescues and wrong actions per band of their score (could the surest guesses act
unasked?), and for the ask policies how many questions proposed a sentence the household had
said yes to before, from other words, and how those were answered (would generalising a yes from
the words to the proposal save questions?).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from selflearn.evaluate import population
from selflearn.evaluate.replay import read_records, score_arm
from selflearn.rewrite.rewriter import Rewriter
from selflearn.simulation.simulator import simulate

ROOT = Path(__file__).resolve().parents[2]
BANDS = (0.0, 0.1, 0.15, 0.2, 0.3, 0.4, 1.01)


def score_bands(turns: dict[str, Any], truth: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Ranked global guesses by score band: rescues (Home Assistant alone would have failed, the
    rewrite worked) and wrong actions (the rewrite did something, and not what was meant)."""
    out: dict[str, Counter[str]] = {}
    for turn_id, t in truth.items():
        rewrite = turns.get(turn_id, {}).get("rewrite")
        if not rewrite or not str(rewrite.get("rule_id") or "").startswith("global:"):
            continue
        row = turns[turn_id]
        i = max(i for i, low in enumerate(BANDS[:-1]) if rewrite["score"] >= low)
        band = out.setdefault(f"{BANDS[i]:.2f}-{min(BANDS[i + 1], 1.0):.2f}", Counter())
        band["rescues"] += bool(t.get("defect_without_rewrite")) and not t["defect"]
        band["wrong_actions"] += bool(t["defect"]) and (row.get("result") or {}).get("status") == "success"
    return {k: dict(v) for k, v in sorted(out.items())}


def proposed_again(turns: dict[str, Any]) -> dict[str, int]:
    """Questions whose proposal the household had said yes to before (from other words), by answer."""
    said_yes: set[tuple[str, str]] = set()
    answers: Counter[str] = Counter()
    for row in sorted(turns.values(), key=lambda r: (r["household_id"], r["timestamp"])):
        asked = row.get("dialogue") or {}
        if asked.get("role") != "question":
            continue
        key = (row["household_id"], str(asked.get("proposal")))
        if key in said_yes:
            answers[str(asked.get("answer"))] += 1
        if asked.get("answer") == "yes":
            said_yes.add(key)
    return dict(answers)


def run(policy: str, args: argparse.Namespace, work: Path) -> dict[str, object]:
    pop = population(args.population)
    config = pop.config(workers=2, households=args.households, days=args.days)
    assistant = replace(config.assistant, nlu=args.nlu, rewrite_when="on_failure")
    rewriter = None
    ask = False
    if policy != "control":
        rewriter = Rewriter.load(args.rewriter)
        confirm = "off" if policy == "act" else "guesses"
        threshold = float(policy.split("@")[1]) if "@" in policy else None
        rewriter.config = replace(
            rewriter.config,
            confirm=confirm,  # type: ignore[arg-type]
            ask_threshold=threshold,
            nbest=not args.no_nbest,
            budget_ms=10_000.0,  # the policy, not the latency: no decision fails open on a busy machine
        )
        ask = confirm != "off"
    folder = work / policy.replace("@", "-")
    started = time.perf_counter()
    simulate(replace(config, assistant=replace(assistant, ask=ask, teach=False)), folder, rewriter=rewriter)
    stats = score_arm(folder)
    turns, truth = read_records(folder, "turns"), read_records(folder, "truth")
    oos = [turns.get(k, {}) for k, t in truth.items() if not t["in_scope"] and t["action"] != "background"]
    asked = sum((row.get("dialogue") or {}).get("role") == "question" for row in oos)
    acted = sum(
        bool(row.get("rewrite")) and (row.get("result") or {}).get("status") == "success" for row in oos
    )
    return {
        "policy": policy,
        "turns": stats.turns,
        "defect_rate": round(stats.defect_rate, 4),
        "defect_reduction": round(stats.defect_reduction, 4),
        "rescues": stats.wins,
        "wrong_actions": stats.acted_wrong,
        "questions_per_100_turns": round(stats.questions_per_100_turns, 2),
        "answers": dict(stats.answers),
        "oos_asked_share": round(asked / max(len(oos), 1), 4),
        "oos_acted_share": round(acted / max(len(oos), 1), 4),
        **({"by_score": score_bands(turns, truth)} if policy == "act" else {}),
        **({"proposed_again_after_yes": proposed_again(turns)} if policy.startswith("ask") else {}),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, default=20)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--nlu", default="strict")
    parser.add_argument("--population", default="held-out", help="mining-held-out: a development population")
    parser.add_argument("--rewriter", type=Path, default=ROOT / "bench/.cache/starter-strict/rewriter")
    parser.add_argument("--policies", default="control,act,ask,ask@0.1,ask@0.15,ask@0.2,ask@0.3")
    parser.add_argument(
        "--no-nbest",
        action="store_true",
        help="the rewriter sees one transcript, as behind Home Assistant (no recogniser alternatives)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="selflearn-questions-"))
    for policy in args.policies.split(","):
        row = run(policy.strip(), args, work)
        print(json.dumps(row), flush=True)
        print(f"[questions] {policy} done ({row['seconds']} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
