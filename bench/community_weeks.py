"""Several weeks pooled per community release (issue 44): does a release that pools W ISO weeks of
the same installs' contributions give a new home more of central pooling's defect reduction?

    python bench/community_weeks.py                      # 1,200 installs x 28 days; W = 1, 2, 4
    python bench/community_weeks.py --weeks 1,4 --epsilons 1

Most failing phrasings are said in a handful of homes a week, below what partition selection over
distinct installs can release at epsilon <= 1 (``bench/community.py``: 0.41 of central pooling's
reduction at 10,000 installs). Over more weeks the same installs say more of them, so more
installs stand behind each pair. A release that pools W weeks bounds each install's pairs over all
of them together (``selflearn community aggregate --weeks W``), so its epsilon covers the install's
W weeks: released every W weeks, that is epsilon per W weeks of logs, no more per week than a
weekly release. Central pooling (the upper bound) pools the same W weeks of raw logs.

1. **Installs**: ``bench/community.py``'s installs (the ``held-out`` population's kind, seed 61,
   prefix ``cm``), ``--simulate`` households each for ``--days`` (four ISO weeks by default), in
   the same cache. Each install's contribution for each of the last W weeks, as ``selflearn
   community contribute`` computes it for that week (cached per week).
2. **Population**: ``--installs`` installs drawn with replacement from the simulated households
   (``bench/community.py``'s bootstrap and seed): each draw one install, with that household's
   weekly contributions.
3. **Per W**: the release of the W last weeks' contributions at each ``--epsilons`` (DuckDB,
   pipeline-dp, delta 1e-6, 10 pairs per install over the W weeks), and central pooling of the
   same installs' logs of those weeks (``RewriteMiner``, k = 5 users; copies of one household as
   distinct users, and k distinct simulated users).
4. **A new home**: ``bench/community.py``'s 40 held-out homes x 7 days replayed with each table as
   the global layer and their own personal layer, acting; scored from simulation truth
   (evaluation only). Replays with the same rules are shared with ``bench/community.py``.

Figures go to ``docs/results/community-weeks.json`` (``$SELFLEARN_RESULTS`` elsewhere).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import community as cm
from selflearn.community.contribution import Contribution, Evidence, period_range, weeks_ending
from selflearn.evaluate import POPULATIONS, write_results


def weekly_contributions(
    installs: list[tuple[str, str]], weekly: dict[str, dict[str, list[Evidence]]], weeks: list[str]
) -> list[Contribution]:
    """Each install's contribution for each of ``weeks`` (its household's, bounded per week)."""
    bounds = {"max_patterns": cm.MAX_PATTERNS, "max_count": 1}
    return [
        Contribution(install, "", week, bounds, weekly[week][household][: cm.MAX_PATTERNS])
        for week in weeks
        for install, household in installs
    ]


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulate", type=int, default=1200, help="households simulated as installs")
    parser.add_argument("--days", type=float, default=28.0, help="days each install's logs cover")
    parser.add_argument("--installs", type=int, default=10_000, help="installs drawn")
    parser.add_argument("--weeks", default="1,2,4", help="ISO weeks one release pools")
    parser.add_argument("--epsilons", default="0.5,1", help="privacy budgets per release")
    cm.add_evaluation_arguments(parser)
    args = parser.parse_args()
    pooled_weeks = sorted({int(x) for x in args.weeks.split(",")})
    epsilons = [float(x) for x in args.epsilons.split(",")]
    if args.days < 7 * max(pooled_weeks):
        parser.error(f"--days {args.days:g} holds fewer than {max(pooled_weeks)} weeks")

    store_args = argparse.Namespace(
        simulate=args.simulate, days=args.days, popularity="uniform", exponent=1.0, workers=args.workers
    )
    store_path = cm.installs_store(store_args)
    last = cm.last_period(store_path)
    weeks = weeks_ending(last, max(pooled_weeks))
    weekly: dict[str, dict[str, list[Evidence]]] = {}
    for week in weeks:
        _, weekly[week], _ = cm.household_evidence(store_path, week)
        shared = sum(len(v) for v in weekly[week].values())
        cm.say(f"{week}: {len(weekly[week]):,} households share {shared:,} pairs")
    households = sorted(weekly[last])
    installs = cm.draw(str(args.installs), args.installs, households, args.seed + args.installs)

    new_home = cm.NewHome(POPULATIONS["held-out"], args.workers, args.eval_households, args.eval_days)
    alone = new_home(None)
    cm.say(f"own layer alone: {alone['defect_reduction']:.2%} reduction")

    runs: list[dict[str, Any]] = []
    for w in pooled_weeks:
        window = weeks_ending(last, w)
        since, _ = period_range(window[0])
        centrals: dict[str, dict[str, Any]] = {}
        for label, same_users in (("copies as users", False), ("k distinct simulated users", True)):
            table, seconds = cm.central(store_path, installs, same_users, since)
            centrals[label] = {"rules": len(cm.rules_of(table)), "mining_seconds": round(seconds, 1)}
            centrals[label].update(new_home(table))
            c = centrals[label]
            cm.say(
                f"{w} week(s), central ({label}): {c['rules']} rules, {c['defect_reduction']:.2%} "
                f"reduction, {c['rescues']} rescues / {c['wrong_actions']} wrong ({seconds:.0f} s)"
            )
        batch = weekly_contributions(installs, weekly, window)
        for epsilon in epsilons:
            table, report, seconds = cm.release(batch, epsilon, weeks=w)
            result = new_home(table)
            run: dict[str, Any] = {
                "weeks": w,
                "periods": window,
                "installs": args.installs,
                "epsilon": epsilon,
                "released_patterns": len(report.released),
                "rules": len(cm.rules_of(table)),
                "aggregator_seconds": round(seconds, 1),
                **result,
            }
            for key, label in (
                ("share_of_central", "copies as users"),
                ("share_of_central_distinct_users", "k distinct simulated users"),
            ):
                base = centrals[label]["defect_reduction"]
                run[key] = round(result["defect_reduction"] / base, 3) if base > 0 else None
            run["central"] = centrals
            runs.append(run)
            cm.say(
                f"{w} week(s) at epsilon {epsilon:g}: {run['rules']} rules, "
                f"{result['defect_reduction']:.2%} reduction ({run['share_of_central']} of central, "
                f"{run['share_of_central_distinct_users']} of k-distinct central), "
                f"{result['rescues']} rescues / {result['wrong_actions']} wrong"
            )

    figures = {
        "simulated_households": args.simulate,
        "days": args.days,
        "weeks_held": weeks,
        "installs": args.installs,
        "delta": cm.DELTA,
        "max_patterns": cm.MAX_PATTERNS,
        "k_central": cm.K,
        "evaluation": {"population": "held-out", "households": args.eval_households, "days": args.eval_days},
        "control_defect_rate": round(new_home.control.defect_rate, 4),
        "no_global_layer": alone,
        "runs": runs,
    }
    out = write_results("community-weeks", figures, seconds=time.perf_counter() - started)
    cm.say(f"figures written to {out} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
