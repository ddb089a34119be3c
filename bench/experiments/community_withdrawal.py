"""What does withdrawing a community rule at its first failure in a home cost the rules that are right?

A home withdraws a global table rule that failed there more often than it worked: a mined or
starter rule after two failures (:data:`~selflearn.rewrite.personal.WITHDRAW_MIN_FAILED`), a rule
of a community release after one (:data:`~selflearn.rewrite.personal.WITHDRAW_MIN_FAILED_COMMUNITY`),
because a poisoned rule's second failure came days after its first. One failure also withdraws a
right rule that met a misheard word or a change of mind. This replays the same released rules
twice in the same new homes, as a community release (one failure) and as a mined table (the same
rows, without the release's mark: two failures), and prints what each did:

    python bench/experiments/community_withdrawal.py [--runs 100000@1,100000@4]

Each run is a population of ``bench/community.py`` (its cached installs and evidence, the same
draws of installs) released once at the epsilon given; the 40 held-out homes x 7 days replayed
acting (arm ``personal``), scored from simulation truth (evaluation only). Rows: rescues and wrong
actions by the table's rules (``global``), all rescues and wrong actions, defect reduction, and the
(home, rule) pairs whose rule was still applied after its first failure in that home.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))

import community as cm  # noqa: E402  (bench/community.py)
from selflearn.evaluate import POPULATIONS  # noqa: E402
from selflearn.evaluate.replay import score_arm  # noqa: E402
from selflearn.rewrite import Rewriter  # noqa: E402
from selflearn.rewrite.table import RewriteTable  # noqa: E402

OUT = cm.CACHE / "withdrawal"


def as_mined(table: RewriteTable) -> RewriteTable:
    """The same rows without the release's mark: a home withdraws them after two failures."""
    meta = {k: v for k, v in table.metadata.items() if k not in ("source", "release")}
    return RewriteTable.from_rows(table.rows(), {**meta, "source": "mined"})


def folder(table: RewriteTable, name: str) -> Path:
    out = OUT / name
    if not (out / "model.json").exists():
        Rewriter.from_parts(table=table).save(out)
    return out


def used_after_failing(replay_folder: Path, rules: set[str]) -> dict[str, int]:
    """(home, rule) pairs of the table's rules: used, failed at least once (simulation truth),
    and used again after that first failure."""
    uses, _ = cm.rule_uses(replay_folder, rules)
    failed_pairs = again = 0
    for u in uses.values():
        first = next((i for i, (_, f) in enumerate(u) if f), None)
        if first is not None:
            failed_pairs += 1
            again += len(u) - first - 1 > 0
    return {
        "home_rules_used": len(uses),
        "home_rules_failed": failed_pairs,
        "used_again_after_failing": again,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="100000@1,100000@4", help="population@epsilon, comma separated")
    parser.add_argument("--simulate", type=int, default=1500)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    args.popularity, args.exponent = "uniform", 1.0
    store = cm.installs_store(args)
    period, each, _ = cm.household_evidence(store)
    households = sorted(each)
    new_homes = cm.NewHome(POPULATIONS["held-out"], args.workers)
    replay, control = new_homes.replay, new_homes.control
    rows: list[dict[str, Any]] = []
    for run in args.runs.split(","):
        name, eps = run.split("@")
        installs = cm.draw(name, int(name), households, args.seed + int(name))
        table, _, _ = cm.release(cm.contributions(installs, each, period), float(eps))
        digest = cm.rewriter_folder(table).name
        ids = set(table.column("rule_id"))
        for label, t in (("community (1 failure)", table), ("mined (2 failures)", as_mined(table))):
            kind = "community" if t is table else "mined"
            played = replay.arm("personal", folder(t, f"{kind}-{digest}"))
            out = cm.outcome(score_arm(played), control)
            rows.append(
                {
                    "run": run,
                    "withdraws": label,
                    "rules": len(cm.rules_of(table)),
                    **out,
                    **used_after_failing(played, ids),
                }
            )
            cm.say(f"{run} {label}: {rows[-1]}")
    cols = (
        "global_rescues",
        "global_wrong_actions",
        "rescues",
        "wrong_actions",
        "defect_reduction",
        "home_rules_failed",
        "used_again_after_failing",
    )
    print("| release | withdrawn after | rules | " + " | ".join(cols) + " |")
    print("|---|---|---:|" + "---:|" * len(cols))
    for r in rows:
        cells = " | ".join(str(r[c]) for c in cols)
        print(f"| {r['run']} | {r['withdraws']} | {r['rules']} | {cells} |")


if __name__ == "__main__":
    main()
