"""Do two rewriters that agree make a guess safe enough to act on? And does a question offering
both guesses ("Did you mean A or B?") rescue more per question?

    python bench/experiments/agreement.py --first starter=bench/.cache/neural/starter \\
        --second home=bench/.cache/neural/hl-rewriter --limit 3000

The question-budget benchmark (bench/neural_budget.py) found no acting band at 20 rescues per
wrong action: a single ranker's score separates right picks from wrong ones at an AUC near 0.8.
Two rewriters that search different candidates (the starter: the global layer's patterns; the
home-language rewriter: the sentences this home's Assist understands, and the global layer) with
different rankers make partly independent mistakes. Here, for every failed turn of the control
replays bench/neural_rewriter.py simulates (one transcript, strict matching, a new home), each
gives its ranked pick; the two *agree* when their picks would do the same thing in this home (run
on the home's initial state: what the service's home check reads, no simulation truth). Judged
from simulation truth (evaluation only) as the budget benchmark judges.

Policies, each at every score bar of the budget benchmark, over the same turns:

* ``act: starter`` / ``act: home language``: act on one rewriter's pick when its score reaches the
  bar (rescues : wrong actions);
* ``act: both agree``: act when the two picks agree and both scores reach the bar;
* ``ask: home language``: ask "Did you mean ...?" about the home-language rewriter's pick;
* ``ask: A or B``: ask when either score reaches the bar, offering both picks when they differ
  (one question; a rescue when either is right: the simulated user takes what they meant).

Defect reduction is rescues over the replay's in-scope defects, questions per 100 turns. The
per-turn picks go to ``--out`` (JSON lines, with the request and what was meant, for a second
look); ``--again`` reports from that file without replaying.

Answer (2026-11-29, 2,500 failed turns of each replay; docs/benchmarks-history.md): agreeing
picks are surer, not sure enough. On exact speech acting when both agree at 0.1 makes 163
rescues to 23 wrong actions (7 : 1; the starter alone 322 : 86), at 0.15 23 : 1 but only 1.1
points; on noisy speech 168 : 53 at 0.1 (the starter alone 285 : 151). A question offering both
picks rescues more per question than one pick (exact: 6.9 % at 4.1 questions per 100 turns
against 5.8 % at 3.8), about a point at a given number of questions. Not built.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import neural_budget  # noqa: E402
from selflearn.assistant.pipeline import Assistant, AssistantConfig  # noqa: E402

CACHE = ROOT / "bench" / ".cache" / "neural"


@dataclass
class Turn:
    """Both rewriters' picks for one failed turn."""

    in_scope: bool
    score_a: float = -1.0
    right_a: bool = False
    score_b: float = -1.0
    right_b: bool = False
    same: bool = False
    turn_id: str = ""
    text: str = ""
    pick_a: str = ""
    pick_b: str = ""
    meant: str = ""
    """What the user wanted (simulation truth: for the second look only)."""


def pairs(
    folder: Path, first: Any, second: Any, assistant: Assistant, limit: int
) -> tuple[list[Turn], dict[str, int]]:
    replay = neural_budget.Replay(folder)
    for rewriter in (first, second):
        source = rewriter.retrieval.home if rewriter.config.home_language else None
        if source is not None:
            for home in replay.homes.values():
                source.home_index(home)
    out: list[Turn] = []
    counts: dict[str, int] = {}
    started = time.perf_counter()
    for failed in replay.failed(counts, limit):
        t, text, expected = failed.truth, failed.turn["text"], failed.expected
        if t["in_scope"] and expected is None:
            continue
        ctx = failed.context()
        row = Turn(
            bool(t["in_scope"]),
            turn_id=failed.turn_id,
            text=text,
            meant=str(t.get("intended_text") or t.get("goal") or ""),
        )
        effects: list[Any] = []
        for side, rewriter in (("a", first), ("b", second)):
            found = neural_budget.scored(rewriter, text, ctx)
            if found is None:
                effects.append(None)
                continue
            _, cands, x, member = found
            verdict = member.decide(x, True)
            pick = cands[verdict.best].text
            effect = neural_budget.effect_of(assistant, pick, failed.home, failed.ts, failed.area_id)
            effects.append(effect)
            setattr(row, f"score_{side}", float(verdict.score))
            setattr(row, f"pick_{side}", pick)
            setattr(row, f"right_{side}", effect is not None and effect == expected)
        row.same = effects[0] is not None and effects[0] == effects[1]
        out.append(row)
        if counts["failed"] % 1000 == 0:
            print(
                f"[agree] {folder.name}: {counts['failed']:,} failed turns, "
                f"{time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
    return out, counts


BARS = neural_budget.BARS


def policies(rows: list[Turn], counts: dict[str, int]) -> list[dict[str, Any]]:
    """Each policy at each bar, over the same turns: acting alone on one rewriter's pick, acting
    when the two agree, asking alone about one rewriter's pick, and asking with both picks."""
    out = []
    per_100 = 100 / max(counts["turns"], 1)
    for bar in BARS[:-1]:
        tallies = {
            "act: starter": [(r.right_a, True) for r in rows if r.score_a >= bar],
            "act: home language": [(r.right_b, True) for r in rows if r.score_b >= bar],
            "act: both agree": [
                (r.right_a, True) for r in rows if r.same and min(r.score_a, r.score_b) >= bar
            ],
            "ask: home language": [(r.right_b, False) for r in rows if r.score_b >= bar],
            "ask: A or B": [
                (r.right_a or r.right_b if not r.same else r.right_b, False)
                for r in rows
                if max(r.score_a, r.score_b) >= bar
            ],
        }
        for name, hits in tallies.items():
            rescues = sum(right for right, _ in hits)
            acted = hits[:1] and hits[0][1]
            out.append(
                {
                    "policy": name,
                    "bar": bar,
                    "defect_reduction": round(rescues / max(counts["defects"], 1), 4),
                    "rescues": rescues,
                    "wrong_actions": len(hits) - rescues if acted else 0,
                    "questions_per_100_turns": 0.0 if acted else round(len(hits) * per_100, 2),
                }
            )
    return out


def report(label: str, rows: list[Turn], counts: dict[str, int]) -> None:
    inside = [r for r in rows if r.in_scope]
    agree = [r for r in inside if r.same]
    print(
        f"\n## {label}: {counts['turns']:,} turns, {counts['defects']:,} in-scope defects; "
        f"{len(inside):,} in-scope picks: starter right {sum(r.right_a for r in inside):,}, home language "
        f"{sum(r.right_b for r in inside):,}, either {sum(r.right_a or r.right_b for r in inside):,}; "
        f"they agree on {len(agree):,} ({sum(r.right_a for r in agree):,} right)"
    )
    table = policies(rows, counts)
    print("| bar | " + " | ".join(dict.fromkeys(b["policy"] for b in table)) + " |")
    for bar in BARS[:-1]:
        cells = []
        for b in (b for b in table if b["bar"] == bar):
            if b["questions_per_100_turns"]:
                cells.append(f"{b['defect_reduction']:.1%} at {b['questions_per_100_turns']:.1f} q")
            else:
                cells.append(f"{b['defect_reduction']:.1%} ({b['rescues']}:{b['wrong_actions']})")
        print(f"| {bar:g} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--first", default=f"starter={CACHE / 'starter'}")
    parser.add_argument("--second", default=f"home={CACHE / 'hl-rewriter'}")
    parser.add_argument(
        "--replays",
        default=f"noisy={CACHE / 'control-mining-held-out-20x7-noisy'},"
        f"exact={CACHE / 'control-mining-held-out-20x7-exact'}",
    )
    parser.add_argument("--limit", type=int, default=0, help="failed turns per replay (0: all)")
    parser.add_argument("--out", type=Path, default=CACHE / "agreement.jsonl")
    parser.add_argument("--again", action="store_true", help="only report the picks --out holds")
    args = parser.parse_args()
    if args.again:
        by: dict[str, list[Turn]] = {}
        for line in args.out.read_text().splitlines():
            row = json.loads(line)
            label = row.pop("speech")
            if "counts" in row:
                report(label, by.get(label, []), row["counts"])
            else:
                by.setdefault(label, []).append(Turn(**row))
        return
    _, first, *_ = neural_budget.load_arm(args.first)
    _, second, *_ = neural_budget.load_arm(args.second)
    assistant = Assistant(AssistantConfig(asr="exact", nlu="strict"))
    with args.out.open("w") as fh:
        for spec in args.replays.split(","):
            label, folder = spec.split("=", 1)
            rows, counts = pairs(Path(folder), first, second, assistant, args.limit)
            for r in rows:
                fh.write(json.dumps({"speech": label, **asdict(r)}) + "\n")
            fh.write(json.dumps({"speech": label, "counts": counts}) + "\n")
            report(label, rows, counts)


if __name__ == "__main__":
    main()
