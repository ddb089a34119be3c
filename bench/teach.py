"""Ask before guessing: the online rewriter acting alone against the assistant asking first.

    python bench/teach.py                         # seen, held-out, held-out-clean
    python bench/teach.py --real                  # also through real ASR (needs `make asr-deps`)

New households (the online benchmark's replay populations, :mod:`selflearn.evaluate.populations`)
are simulated once per arm with the same seed, with the online rewriter the online benchmark
trained (``--rewriter``; default: its documented flagship, ``bench/.cache/online/
rewriter-train-360mix-k5``, made by ``bench/online_stores.sh`` then ``bench/online.py
--train-store ...``). Arms:

* ``control``: Home Assistant as it ships (strict templates, then the gazetteer fallback);
* ``personal``: + the rewriter acting alone behind the NLU (global and personal layers: today's
  default, as in ``bench/online.py``);
* ``confirm``: + confirmation: the assistant asks "Did you mean ...?" about the rewriter's
  guesses (ranked retrieval, the mined table, and the recogniser's alternatives known to work
  only from everyone's logs; sensitive intents always), while the household's own words
  (including alternatives that worked in this home) still act;
* ``confirm-low``: ``confirm`` whose ranked layer also asks about guesses scored from half its
  calibrated acting bar up (``selflearn.evaluate.ab.ASK_SCALE``): more questions, more rescues?
* ``confirm-unconfirmed``: + confirmation of the guesses and of the household's own fixes
  learned from its retries until it said yes to one;
* ``confirm-all``: + confirmation of every rewrite;
* ``teach``: ``confirm`` with an assistant that can be taught: it asks "I don't know what
  *<words>* is. Can you teach me?" about words a request failed on twice in the home (within the
  nag budget), and uses what it was taught from the next request on.

With ``--scope-rewriter`` (default: the flagship's copy with a scope model, ``bench/
.cache/online/rewriter-train-360mix-k5-scope`` when it exists), also ``confirm (scope)``: the
``confirm`` arm with the rewriter that neither rewrites nor asks about requests its scope model
puts out of scope -- what that costs in rescues on in-scope traffic.

Teaching names can only fix requests that failed because the home lacks a name: the benchmark
also reports that ceiling, the share of the control arm's defects whose failure point is ``er``
(simulation truth).

Simulated people answer as ``docs/simulator.md`` describes (they judge the proposed sentence
against what they want; 90 % answer; 3 % answer the opposite of the truth; their answer goes
through the recogniser in its dialogue state). Scored against simulation truth (evaluation
only): per arm the defect rate (a question that did not end in a yes that worked is a defect; a
confirmed rescue is a success), rescues (turns that would have failed without selflearn and
worked), **wrong actions caused by selflearn** (rewritten turns on which the assistant did
something the user did not want, confirmed ones included), rescues per wrong action, questions
per 100 turns and per extra rescue over the acting-alone arm. Figures go to
``docs/results/teach.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import populations
from selflearn.evaluate import ArmStats, Replay, population, write_results
from selflearn.evaluate.ab import pct
from selflearn.evaluate.replay import read_records

CACHE = Path(__file__).resolve().parent / ".cache" / "online"
"""The online benchmark's cache: the control and acting-alone replays are shared with it."""

REWRITER = CACHE / "rewriter-train-360mix-k5"
SCOPED = CACHE / "rewriter-train-360mix-k5-scope"

ARMS = ("control", "personal", "confirm", "confirm-low", "confirm-all", "teach")
LABELS = {
    "control": "HA today",
    "personal": "+ rewriter acting alone",
    "confirm": "+ confirmation (guesses)",
    "confirm-low": "+ confirmation (guesses, asking from half the acting bar)",
    "confirm-unconfirmed": "+ confirmation (guesses and unconfirmed own fixes)",
    "confirm-all": "+ confirmation (every rewrite)",
    "teach": "+ confirmation + teaching",
    "confirm-scope": "+ confirmation, with the scope model",
}

HEADER = (
    "| population | arm | turns | defect rate | defect reduction (95 % interval) | rescues | wrong actions "
    "| rescues per wrong action | questions per 100 turns | questions per extra rescue | answers |\n"
    "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|"
)


def figures_of(st: ArmStats, alone: ArmStats | None) -> dict[str, Any]:
    """The arm's figures as the issue asks for them, plus the replay's full summary."""
    extra = st.wins - alone.wins if alone is not None else 0
    per_extra = st.questions / extra if extra > 0 else None
    ratio = st.wins / st.acted_wrong if st.acted_wrong else None
    return {
        "defect_rate": round(st.defect_rate, 4),
        "defect_reduction": round(st.defect_reduction, 4),
        "defect_reduction_interval": [round(x, 4) for x in st.reduction_interval()],
        "rescues": st.wins,
        "wrong_actions": st.acted_wrong,
        "rescues_per_wrong_action": round(ratio, 2) if ratio is not None else None,
        "questions": st.questions,
        "questions_per_100_turns": round(st.questions_per_100_turns, 2),
        "questions_per_extra_rescue": round(per_extra, 2) if per_extra is not None else None,
        "answers": dict(sorted(st.answers.items())),
        "confirmed_rescues": st.confirmed_wins,
        "summary": st.summary(),
    }


def row(name: str, arm: str, st: ArmStats, fig: dict[str, Any]) -> str:
    low, high = st.reduction_interval()
    ratio = fig["rescues_per_wrong_action"]
    per_extra = fig["questions_per_extra_rescue"]
    answers = ", ".join(f"{k} {v}" for k, v in fig["answers"].items()) or "-"
    return (
        f"| {name} | {LABELS[arm]} | {st.turns:,} | {pct(st.defect_rate)} | {pct(st.defect_reduction)} "
        f"({pct(low)}-{pct(high)}) | {st.wins:,} | {st.acted_wrong:,} "
        f"| {'no wrong action' if ratio is None else f'{ratio:.1f}'} | {st.questions_per_100_turns:.1f} "
        f"| {'-' if per_extra is None else f'{per_extra:.2f}'} | {answers} |"
    )


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rewriter", type=Path, default=REWRITER, help="online rewriter folder to replay")
    parser.add_argument(
        "--scope-rewriter", type=Path, default=SCOPED, help="rewriter with a scope model (skipped if missing)"
    )
    parser.add_argument("--populations", default="seen,held-out,held-out-clean")
    parser.add_argument(
        "--scope-populations", default="held-out", help="populations replayed with the scope model too"
    )
    parser.add_argument("--real", action="store_true", help="also the real-ASR population")
    populations.add_replay_options(parser)
    parser.add_argument(
        "--real-skip",
        default="confirm-all,confirm-scope",
        help="arms not replayed through real ASR (it is slow); empty: all of them",
    )
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--rebuild", action="store_true", help="re-simulate the replays")
    args = parser.parse_args()
    if not (args.rewriter / "model.json").exists():
        parser.error(
            f"no rewriter at {args.rewriter}: train one with `bench/online_stores.sh` and `python "
            "bench/online.py --train-store bench/.cache/online/train-360mix.duckdb`, or pass --rewriter"
        )
    names = [p for p in args.populations.split(",") if p] + (["real"] if args.real else [])
    for name in names:
        population(name)  # unknown names fail before anything runs
    figures: dict[str, Any] = {"rewriter": str(args.rewriter), "arms": LABELS, "populations": {}}
    lines = [HEADER]
    for name in names:
        real = name == "real"
        households, days = populations.replay_size(name, args)
        replay = Replay(population(name), args.cache, args.workers, households, days, rebuild=args.rebuild)
        stats: dict[str, ArmStats] = {}
        arms: dict[str, Any] = {}
        scoped = (args.scope_rewriter / "scope" / "model.json").exists() and name in args.scope_populations
        skip = {a for a in args.real_skip.split(",") if a} if real else set()
        for arm in [a for a in ((*ARMS, "confirm-scope") if scoped else ARMS) if a not in skip]:
            print(f"[teach] {name}: {arm}", file=sys.stderr)
            if arm == "confirm-scope":
                stats[arm] = replay.score(["confirm"], args.scope_rewriter)["confirm"]
            else:
                stats[arm] = replay.score([arm], None if arm == "control" else args.rewriter)[arm]
            alone = stats.get("personal") if arm != "control" and arm != "personal" else None
            arms[arm] = figures_of(stats[arm], alone)
            arms[arm]["taught"] = stats[arm].answers.get("taught", 0)
            lines.append(row(name, arm, stats[arm], arms[arm]))
        truth = read_records(replay.arm("control"), "truth").values()
        defects = [t for t in truth if t["defect"]]
        named = sum(t["failure_point"] == "er" for t in defects)
        lines.append(
            f"| {name} | teaching ceiling: {named:,} of {len(defects):,} control defects "
            f"({pct(named / max(len(defects), 1))}) failed on a name the home lacks | | | | | | | | | |"
        )
        figures["populations"][name] = {
            "households": households,
            "days": days,
            "asr": population(name).asr,
            "arms": arms,
            "teaching_ceiling": {"name_defects": named, "defects": len(defects)},
        }
    print("\n".join(lines))
    write_results("teach", figures, seconds=time.perf_counter() - started)


if __name__ == "__main__":
    main()
