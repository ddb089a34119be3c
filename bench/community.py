"""The community global layer at 1,000, 10,000 and 100,000 installs (issue 44).

    python bench/community.py                      # everything below, cached where possible
    python bench/community.py --spark              # also time the aggregator on Spark (local[2])
    python bench/community.py --simulate 1500 --installs 1000,10000,100000 --epsilons 0.5,1,2,4
    python bench/community.py --only attack      # run a part again into the results file

1. **Installs** (cached in ``bench/.cache/community/``): ``--simulate`` households (prefix ``cm``,
   seed 61) of the ``held-out`` population's kind -- held-out phrasings (the 20 % of phrasings no
   training log holds, plus SLURP), noisy speech, Home Assistant as it ships -- each for
   ``--days`` (one ISO week), each household one install. Friction signals as an install computes
   them (``selflearn signals``: pairwise lexical rephrase links, heuristic defects). Each install's
   contribution is what ``selflearn community contribute`` would share from its own logs
   (:func:`selflearn.community.evidence_by_household`: one pass over the store, each household
   filtered with its own names and bounded on its own; never simulation truth).
2. **Populations of installs**. ``1000``: the first 1,000 simulated households, each once (full
   simulation). Larger ones are **sampled**: installs drawn with replacement from every simulated
   household, each draw a new install (its own key) with that household's contribution and, for
   central pooling, a copy of its logs under new ids -- a bootstrap of the population of homes:
   a pattern one household in 1,500 says is said by about 7 of 10,000 installs. It cannot invent
   a pattern no simulated home said. The check: ``1000-sampled``, 1,000 draws from the other
   households only (``--simulate`` minus 1,000), released and replayed like the full 1,000.
3. **Releases**: each population through the aggregator (``selflearn community aggregate``'s
   code: refusals, DuckDB merge, pipeline-dp partition selection over distinct installs and noisy
   counts, ``delta`` 1e-6, 10 pairs per install) at each ``--epsilons``; its rules as the global
   table of a rewriter with no other global layer. **Central pooling** (the upper bound): the same
   installs' raw logs pooled and mined (``RewriteMiner``, k = 5 users), at the sizes up to
   ``--central-max`` (a copy of 100,000 homes' logs is 55 million turns).
4. **A new home**: the ``held-out`` evaluation population (new households, ``--eval-households`` x
   ``--eval-days``) replayed with each global layer and its own personal layer, acting
   (``selflearn.evaluate.ab.Replay``, arm ``personal``), and with no global layer at all. Scored
   from simulation truth (evaluation only): defect reduction (per-turn counterfactual: 1 - defects
   / turns that would have failed without any rewrite), rescues, wrong actions. Replays of releases
   with the same rules are shared (the cache is keyed by the rules).
5. **Attacks**: 1 % of 10,000 installs colluding, and 100 fake installs among 1,000, each sending
   the same chosen rewrites (:func:`attack_pairs`) at epsilon 1: how many are refused, released, act in
   the evaluation homes (wrong actions), and how long each home kept applying one after its first
   use (the home-level withdrawal of a global rule that fails there).
   **An attacker who knows which targets are wrong** (``--only wrong-attack``): 1 % and 5 % of
   10,000 installs send rewrites Home Assistant's own templates read as another intent than the
   failing pattern's usual fix (:func:`wrong_attack_pairs`), to exercise the homes' withdrawal:
   for each home and released rule that failed there, the hours from its first failure to its
   last use.
6. **Aggregator time** at each size on DuckDB (and on Spark with ``--spark``).

Figures go to ``docs/results/community.json`` (``$SELFLEARN_RESULTS`` elsewhere). The 10,000,000-
pattern latency is ``bench/community_latency.py``'s; its figures are copied in when present.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from selflearn import Store
from selflearn.community.aggregate import AggregateConfig, AggregateReport, DuckDbAggregation, aggregate
from selflearn.community.contribution import (
    Contribution,
    ContributionConfig,
    Evidence,
    evidence_by_household,
    period_of,
    refusal,
)
from selflearn.community.release import table_of
from selflearn.evaluate import POPULATIONS, Replay, write_results
from selflearn.evaluate.cache import population_store
from selflearn.evaluate.replay import ArmStats, read_records, score_arm
from selflearn.evaluate.results import results_folder
from selflearn.evaluate.signals import score_signals, signals_are_scored
from selflearn.mining import DuckDbEngine, MiningConfig, RewriteMiner
from selflearn.rewrite import Rewriter
from selflearn.rewrite.table import RewriteTable

BENCH = Path(__file__).resolve().parent
CACHE = BENCH / ".cache" / "community"
FULL = 1000
"""Installs of the fully simulated population (each a distinct simulated household)."""
K = 5
"""Distinct users a centrally mined pattern needs (the miner's default k)."""
DELTA = 1e-6
MAX_PATTERNS = 10

UNSAFE_ATTACK: tuple[tuple[str, str], ...] = (
    ("turn on the {name}", "turn off the {name}"),
    ("turn off the {area} lights", "unlock the {name}"),
    ("close the {name}", "open the {name}"),
    ("lock the {name}", "unlock the {name}"),
)
"""Attack pairs the aggregator must refuse at any count: polarity flips and sensitive actions."""


def attack_pairs(each: dict[str, list[Evidence]], n: int = MAX_PATTERNS) -> list[tuple[str, str]]:
    """What the colluding and fake installs send: :data:`UNSAFE_ATTACK`, then, for the most common
    failing patterns of the honest installs (what an attacker sees fail), the most common *other*
    fixing pattern with the same placeholders that the guards let through -- a valid request that
    does something else, the attack the guards cannot see. Up to ``n`` pairs (one contribution)."""
    return _pick(each, n, list(UNSAFE_ATTACK), lambda usual, target: target != usual)


def _pick(
    each: dict[str, list[Evidence]],
    n: int,
    pairs: list[tuple[str, str]],
    fits: Callable[[str, str], bool],
    targets_considered: int | None = None,
) -> list[tuple[str, str]]:
    """``pairs`` and then, for the honest installs' most common failing patterns (most common
    first), the first of their most common fixing patterns (the ``targets_considered`` most
    common; all by default) that is not the pattern itself, has its placeholders, passes the
    guards and ``fits(usual fix, target)`` (the usual fix: the pattern's most common one, first
    seen on ties); up to ``n`` pairs in all."""
    from selflearn.core.delex import PLACEHOLDER

    def slots(pattern: str) -> list[str]:
        return sorted(w for w in pattern.split() if PLACEHOLDER.fullmatch(w))

    failing = Counter(r.failing for rows in each.values() for r in rows)
    fixes = Counter((r.failing, r.fixing) for rows in each.values() for r in rows)
    usual: dict[str, str] = {}
    for (source, fix), times in fixes.items():
        if source not in usual or times > fixes[(source, usual[source])]:
            usual[source] = fix
    targets = Counter(r.fixing for rows in each.values() for r in rows).most_common(targets_considered)
    for source, _ in failing.most_common():
        if len(pairs) >= n:
            break
        for target, _ in targets:
            same_slots = target != source and slots(target) == slots(source)
            if same_slots and fits(usual[source], target) and refusal(source, target) is None:
                pairs.append((source, target))
                break
    return pairs


def say(message: str) -> None:
    print(f"[community] {message}", file=sys.stderr, flush=True)


# --- 1. installs ------------------------------------------------------------------------------------


def law_of(args: argparse.Namespace) -> str:
    """The phrasing popularity law's tag: ``""`` for uniform, ``"-zipf1"`` for Zipf with exponent 1."""
    return "" if args.popularity == "uniform" else f"-{args.popularity}{args.exponent:g}"


def installs_store(args: argparse.Namespace) -> Path:
    """The simulated installs' logs, signals scored (cached)."""
    population = POPULATIONS["held-out"].with_popularity(args.popularity, args.exponent)
    config = population.config(args.workers, households=args.simulate, days=args.days)
    config = replace(config, seed=61, household_prefix="cm")
    path = CACHE / f"installs-{args.simulate}x{args.days:g}{law_of(args)}.duckdb"
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done % 100 == 0 or done == total:
            say(f"simulated {done:,}/{total:,} households ({time.perf_counter() - started:.0f} s)")

    population_store(path, config, progress=progress)
    with Store(path) as store:
        if not signals_are_scored(store):
            say(f"signals: {score_signals(store)}")
    return path


def last_period(path: Path) -> str:
    """The ISO week of the last turn the installs' logs hold."""
    with Store(path, read_only=True) as store:
        return period_of(store.query("SELECT max(timestamp) AS t FROM turns").column("t")[0].as_py())


def household_evidence(
    path: Path, period: str | None = None
) -> tuple[str, dict[str, list[Evidence]], dict[str, int]]:
    """Each simulated household's contribution for ``period`` (default: the last week of its
    logs; what it would share as an install) and what the installs kept at home, by reason
    (cached as JSON)."""
    cache = path.with_suffix(".evidence.json" if period is None else f".evidence-{period}.json")
    if cache.exists() and cache.stat().st_mtime > path.stat().st_mtime:
        data = json.loads(cache.read_text())
        each = {h: [Evidence(**r) for r in rows] for h, rows in data["households"].items()}
        return data["period"], each, data["dropped"]
    period = period or last_period(path)
    with Store(path, read_only=True) as store:
        started = time.perf_counter()
        computed = evidence_by_household(
            DuckDbEngine(store), period, ContributionConfig(max_patterns=MAX_PATTERNS)
        )
        households = [str(h) for h in store.query("SELECT home_id FROM homes").column("home_id").to_pylist()]
    say(f"contributions of {len(households):,} installs in {time.perf_counter() - started:.1f} s")
    each = {h: computed[h][0] if h in computed else [] for h in households}
    dropped: dict[str, int] = {}
    for _, why in computed.values():
        for reason, n in why.items():
            dropped[reason] = dropped.get(reason, 0) + n
    data = {
        "period": period,
        "households": {h: [r.__dict__ for r in rows] for h, rows in each.items()},
        "dropped": dropped,
    }
    cache.write_text(json.dumps(data))
    return period, each, dropped


# --- 2. populations of installs ------------------------------------------------------------------


def draw(name: str, n: int, households: list[str], seed: int) -> list[tuple[str, str]]:
    """``n`` installs of population ``name``: (install id, simulated household whose logs and
    contribution it has). ``1000``: the first 1,000 households once each; otherwise drawn with
    replacement (seeded) from ``households``."""
    if name == str(FULL):
        return [(h, h) for h in households[:FULL]]
    rng = random.Random(seed)
    return [(f"{name}-{i:06d}", rng.choice(households)) for i in range(n)]


def contributions(
    installs: list[tuple[str, str]],
    each: dict[str, list[Evidence]],
    period: str,
    max_patterns: int = MAX_PATTERNS,
) -> list[Contribution]:
    """The installs' contributions, each its household's strongest ``max_patterns`` pairs (the
    cached lists are in the order an install keeps them: a smaller bound is a prefix)."""
    bounds = {"max_patterns": max_patterns, "max_count": 1}
    return [Contribution(i, "", period, bounds, each[h][:max_patterns]) for i, h in installs]


def attackers(prefix: str, n: int, period: str, pairs: list[tuple[str, str]]) -> list[Contribution]:
    """``n`` installs sending ``pairs`` (each as a rescue that worked)."""
    bounds = {"max_patterns": MAX_PATTERNS, "max_count": 1}
    records = [Evidence(a, b, rescues=1) for a, b in pairs]
    return [Contribution(f"{prefix}-{i:04d}", "", period, bounds, records) for i in range(n)]


# --- 3. releases and central pooling -------------------------------------------------------------


def release(
    batch: list[Contribution],
    epsilon: float,
    engine: Any = None,
    max_patterns: int = MAX_PATTERNS,
    weeks: int = 1,
) -> tuple[RewriteTable, AggregateReport, float]:
    """The release of ``batch`` at ``epsilon`` (pooling ``weeks`` ISO weeks: ``batch`` holds
    them): its table, the aggregator's report and seconds."""
    config = AggregateConfig(epsilon=epsilon, delta=DELTA, max_patterns=max_patterns, weeks=weeks)
    started = time.perf_counter()
    report = aggregate(batch, config, engine or DuckDbAggregation())
    seconds = time.perf_counter() - started
    return table_of(report, config, f"bench-{epsilon:g}"), report, seconds


class PooledEngine:
    """The miner's DuckDB engine over a pool of installs' logs: each drawn household's turns
    copied under new turn, user and household ids (one copy per draw), so central pooling sees
    the same bootstrap population the aggregator does. Delexicalized once per household."""

    name = "duckdb"

    def __init__(
        self,
        store: Store,
        installs: list[tuple[str, str]],
        same_users: bool = False,
        since: datetime | None = None,
    ) -> None:
        self.inner = DuckDbEngine(store)
        self.installs = installs
        self.since = since  # pool only the turns from then on (the weeks a release pools)
        # same_users: each copy keeps the original household's user ids, so k counts distinct
        # simulated people, not copies of one (a rare habit copied k times passes k otherwise).
        self.same_users = same_users

    def homes(self) -> Any:
        return self.inner.homes()

    def load_states(self, delex: Any) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.since is not None:
            since = pa.scalar(self.since, pa.timestamp("us", tz="UTC"))

            def recent(batch: pa.RecordBatch) -> pa.RecordBatch:  # filtered, then delexicalized
                ts = pc.cast(batch.column(batch.schema.names.index("ts")), since.type)
                return delex(batch.filter(pc.greater_equal(ts, since)))

            self.inner.load_states(recent)
        else:
            self.inner.load_states(delex)
        con = self.inner.con
        copies = pa.table(
            {
                "household_id": [h for _, h in self.installs],
                "copy": [str(i) for i, _ in enumerate(self.installs)],
            }
        )
        con.register("pool_map", copies)
        con.execute("ALTER TABLE states RENAME TO states_one")
        con.execute(
            """CREATE TEMP TABLE states AS
            SELECT s.turn_id || '#' || m.copy AS turn_id, {user} AS user_id,
                   s.household_id || '#' || m.copy AS household_id, s.ts, s.pattern,
                   s.rewritten_pattern, s.organic, s.defect,
                   CASE WHEN s.rephrase_of IS NULL THEN NULL ELSE s.rephrase_of || '#' || m.copy END
                     AS rephrase_of,
                   s.domain
            FROM states_one s JOIN pool_map m ON m.household_id = s.household_id""".format(
                user="s.user_id" if self.same_users else "s.user_id || '#' || m.copy"
            )
        )
        con.execute("DROP TABLE states_one")
        con.unregister("pool_map")

    def create(self, name: str, sql: str) -> int:
        return self.inner.create(name, sql)

    def fetch(self, sql: str) -> Any:
        return self.inner.fetch(sql)

    def close(self) -> None:
        self.inner.close()


def central(
    store_path: Path,
    installs: list[tuple[str, str]],
    same_users: bool = False,
    since: datetime | None = None,
) -> tuple[RewriteTable, float]:
    """Central pooling of the installs' raw logs (those from ``since`` on): mined at k users
    (the upper bound)."""
    started = time.perf_counter()
    with Store(store_path, read_only=True) as store:
        engine = PooledEngine(store, installs, same_users, since)
        table = RewriteMiner(MiningConfig(min_users=K)).fit(engine).mined()
    return table, time.perf_counter() - started


# --- 4. a new home -------------------------------------------------------------------------------


def rules_of(table: RewriteTable | None) -> list[tuple[str, str]]:
    if table is None:
        return []
    return sorted((r["source"], r["target"]) for r in table.rows() if r["status"] == "active")


def rewriter_folder(table: RewriteTable | None) -> Path:
    """A rewriter whose only global layer is ``table`` (none: the home's own layer alone), in a
    folder named by its rules, so releases with the same rules share one replay. A release's
    folder also names how many failures withdraw its rules in a home (a replay made under another
    threshold is not reused)."""
    from selflearn.rewrite.personal import WITHDRAW_MIN_FAILED_COMMUNITY

    rules: list[Any] = list(rules_of(table))
    if table is not None and table.community()[0] is not None:
        # and that a device switched back at once counts as a failure (replays before did not)
        rules.append(["withdraw-after", WITHDRAW_MIN_FAILED_COMMUNITY, "undo"])
    digest = hashlib.blake2b(json.dumps(rules).encode(), digest_size=6).hexdigest()
    out = CACHE / "rewriters" / (f"rw-{digest}" if table is not None else "rw-none")
    if not (out / "model.json").exists():
        Rewriter.from_parts(table=table).save(out)
    return out


def outcome(stats: ArmStats, control: ArmStats) -> dict[str, Any]:
    layer = stats.layers.get("precomputed", Counter())
    return {
        "defect_rate": round(stats.defect_rate, 4),
        "defect_reduction": round(stats.defect_reduction, 4),
        "defect_reduction_ci95": [round(x, 4) for x in stats.reduction_interval()],
        "rescues": stats.wins,
        "wrong_actions": stats.acted_wrong,
        "rewritten": stats.rewritten,
        "global_rescues": layer["win"],
        "global_wrong_actions": layer["wrong action"],
        "control_defect_rate": round(control.defect_rate, 4),
    }


def add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    """The options the community benchmarks share: the new homes replayed, workers, the seed of
    the draws of installs."""
    parser.add_argument("--eval-households", type=int, default=40, help="new homes replayed")
    parser.add_argument("--eval-days", type=float, default=7.0, help="days each new home is replayed")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7, help="seed of the draws of installs")


class NewHome:
    """The new homes (``households`` x ``days`` of ``evaluation``) replayed with a global table as
    their only global layer and their own personal layer, acting: the control arm scored once,
    and each table's :func:`outcome` against it (called with None: the home's own layer alone)."""

    def __init__(self, evaluation: Any, workers: int, households: int = 40, days: float = 7.0) -> None:
        self.replay = Replay(evaluation, CACHE / "replays", workers, households, days)
        self.control = score_arm(self.replay.arm("control"))

    def __call__(self, table: RewriteTable | None) -> dict[str, Any]:
        return outcome(score_arm(self.replay.arm("personal", rewriter_folder(table))), self.control)


EXAMPLE_HOME = {
    "home_id": "attacker",
    "floors": [{"id": "upstairs", "name": "Upstairs"}],
    "areas": [{"id": "kitchen", "name": "Kitchen", "floor": "upstairs"}],
    "entities": [
        {"id": "light.ceiling_light", "name": "Ceiling Light", "area": "kitchen", "features": ["brightness"]}
    ],
}
"""A home in which the patterns' neutral example values (:func:`~selflearn.core.delex.example_values`:
kitchen, upstairs, ceiling light) exist: where the informed attacker tries its rewrites."""


def wrong_attack_pairs(each: dict[str, list[Evidence]], n: int = MAX_PATTERNS) -> list[tuple[str, str]]:
    """What an attacker who checks what a rewrite does sends: for the honest installs' most common
    failing patterns, the most common fixing pattern (of the 300 most common) with the same
    placeholders that the guards let through and that Home Assistant's strict templates (the
    reference NLU, in :data:`EXAMPLE_HOME`) read as an intent, another than the pattern's most
    common fix's. Up to ``n`` pairs; none of :data:`UNSAFE_ATTACK` (measured by
    :func:`attack_pairs`)."""
    from selflearn.assistant.nlu import HomeAssistantNlu
    from selflearn.core.delex import example_values
    from selflearn.core.home import Home

    nlu, home = HomeAssistantNlu("strict"), Home.from_dict(EXAMPLE_HOME)

    @functools.cache
    def intent(pattern: str) -> str | None:
        return nlu.recognize(example_values(pattern), home, "kitchen", explain_failures=False).trace.intent

    def wrong(usual: str, target: str) -> bool:  # no usual intent: the attacker cannot tell
        right = intent(usual)
        return right is not None and intent(target) is not None and intent(target) != right

    return _pick(each, n, [], wrong, targets_considered=300)


def rule_uses(folder: Path, rules: set[str]) -> tuple[dict[tuple[str, str], list[tuple[float, bool]]], int]:
    """Each use of ``rules`` in a replay, per (home, rule) in time order: (epoch seconds, whether
    the turn failed by simulation truth: evaluation only); and how many were wrong actions."""
    from datetime import datetime

    turns, truth = read_records(folder, "turns"), read_records(folder, "truth")
    used: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    wrong = 0
    for turn_id, row in turns.items():
        rule = str((row.get("rewrite") or {}).get("rule_id") or "")
        if rule not in rules:
            continue
        failed = bool(truth.get(turn_id, {}).get("defect"))
        wrong += failed and (row.get("result") or {}).get("status") == "success"
        ts = datetime.fromisoformat(str(row["timestamp"])).timestamp()
        used.setdefault((str(row["household_id"]), rule), []).append((ts, failed))
    for uses in used.values():
        uses.sort()
    return used, wrong


def attack_effect(folder: Path, attack_rules: set[str]) -> dict[str, Any]:
    """What the released attack rules did in the replayed homes: turns they rewrote, wrong
    actions among them (simulation truth: evaluation only), per (home, rule) the hours between its
    first and last application, and applications after the home had seen it fail
    :data:`~selflearn.rewrite.personal.WITHDRAW_MIN_FAILED_COMMUNITY` times (the released rules are
    a community release's), more often than it worked (which the home's withdrawal should have
    stopped)."""
    from selflearn.rewrite.personal import WITHDRAW_MIN_FAILED_COMMUNITY as WITHDRAW_MIN_FAILED

    used, wrong = rule_uses(folder, attack_rules)
    after = 0
    kept: set[str] = set()
    for (_, rule), uses in used.items():
        fails = worked = 0
        for _, failed in uses:
            if fails >= WITHDRAW_MIN_FAILED and fails > worked:
                after += 1
                kept.add(rule)
            fails += failed
            worked += not failed
    spans = sorted((max(u)[0] - min(u)[0]) / 3600 for u in used.values())
    # per home and rule that failed there: hours from its first failure to its last use
    withdrawn = sorted(
        (u[-1][0] - next(ts for ts, failed in u if failed)) / 3600
        for u in used.values()
        if any(f for _, f in u)
    )
    return {
        "applied": sum(len(u) for u in used.values()),
        "acted_wrong": wrong,
        "homes_rules_used": len(used),
        "hours_first_to_last_use_max": round(spans[-1], 1) if spans else None,
        "hours_first_to_last_use_median": round(spans[len(spans) // 2], 1) if spans else None,
        "uses_per_home_rule_max": max((len(u) for u in used.values()), default=0),
        "applied_after_failing_enough_to_withdraw": after,
        "homes_rules_failed": len(withdrawn),
        "hours_first_failure_to_last_use_max": round(withdrawn[-1], 1) if withdrawn else None,
        "hours_first_failure_to_last_use_median": round(withdrawn[len(withdrawn) // 2], 1)
        if withdrawn
        else None,
        "not_withdrawn": sorted(kept),
    }


# --- the run -------------------------------------------------------------------------------------


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulate", type=int, default=1500, help="households simulated as installs")
    parser.add_argument("--days", type=float, default=7.0, help="days each install's logs cover")
    parser.add_argument("--installs", default="1000,10000,100000", help="population sizes")
    parser.add_argument("--epsilons", default="0.5,1,2,4", help="privacy budgets per release")
    parser.add_argument("--central-max", type=int, default=10_000, help="largest population pooled centrally")
    add_evaluation_arguments(parser)
    parser.add_argument("--spark", action="store_true", help="also time the aggregator on Spark (local[2])")
    parser.add_argument(
        "--popularity",
        choices=("uniform", "zipf"),
        default="uniform",
        help="how the installs' and the new homes' users pick phrasings (zipf: a sensitivity run of "
        "the populations, central pooling and the new home only, into community-zipf<exponent>.json)",
    )
    parser.add_argument("--exponent", type=float, default=1.0, help="the Zipf exponent")
    parser.add_argument(
        "--sweep-max-patterns", default="1,3", help="smaller bounds of pairs per install tried at epsilon 1"
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma list of parts to run again (sweep, attack, wrong-attack; latency: copy the latest "
        "bench/community_latency.py figures), replacing them in the results file an "
        "earlier full run wrote",
    )
    args = parser.parse_args()
    if args.simulate <= FULL:
        parser.error(f"--simulate must exceed {FULL} (the sampling check draws from the households past it)")
    sizes = [int(x) for x in args.installs.split(",")]
    epsilons = [float(x) for x in args.epsilons.split(",")]

    store_path = installs_store(args)
    period, each, kept_home = household_evidence(store_path)
    households = sorted(each)
    shared = sum(len(v) for v in each.values())
    say(
        f"{len(households):,} installs share {shared:,} pairs in {period} "
        f"({shared / len(households):.2f} each)"
    )

    evaluation = POPULATIONS["held-out"].with_popularity(args.popularity, args.exponent)
    new_home = NewHome(evaluation, args.workers, args.eval_households, args.eval_days)
    replay, control = new_home.replay, new_home.control
    alone = new_home(None)
    say(
        f"control defect rate {control.defect_rate:.1%}; "
        f"own layer alone: {alone['defect_reduction']:.1%} reduction"
    )

    populations: dict[str, list[tuple[str, str]]] = {}
    for n in sizes:
        populations[str(n)] = draw(str(n), n, households, args.seed + n)
    populations[f"{FULL}-sampled"] = draw(f"{FULL}-sampled", FULL, households[FULL:], args.seed)

    sweep = [int(x) for x in args.sweep_max_patterns.split(",") if x]
    parts = {p for p in args.only.split(",") if p}
    law = law_of(args)
    if law and parts:
        parser.error("--only re-runs parts of the uniform run; a --popularity run is whole")
    known = {"sweep", "attack", "wrong-attack", "latency"}
    if parts - known:
        parser.error(f"--only takes {', '.join(sorted(known))}, not {', '.join(sorted(parts - known))}")
    if parts:
        results = results_folder() / "community.json"
        earlier = json.loads(results.read_text())
        kept = earlier["figures"]
        if "sweep" in parts:
            kept["max_patterns_sweep"] = bound_sweep(
                sweep, populations, each, period, new_home, kept["central"]
            )
        if "attack" in parts:
            kept["attack"] = attacks(populations, each, period, replay)
        if "wrong-attack" in parts:
            kept["attack"]["informed"] = wrong_attacks(populations, each, period, replay)
        if "latency" in parts:
            kept["latency_10m"] = latency_figures()
        kept["attack"].update(attack_summary(kept["attack"]))
        seconds = float(earlier.get("seconds") or 0) + time.perf_counter() - started
        this = "python bench/community.py " + " ".join(sys.argv[1:])
        out = write_results(
            "community", kept, command=chained(str(earlier.get("command")), this), seconds=seconds
        )
        say(f"{', '.join(sorted(parts))} replaced in {out}")
        return

    runs: list[dict[str, Any]] = []
    central_runs: dict[str, dict[str, Any]] = {}
    aggregator_seconds: dict[str, dict[str, Any]] = {"duckdb": {}}
    for name, installs in populations.items():
        batch = contributions(installs, each, period)
        n = len(installs)
        if n <= args.central_max:
            variants = [("", False)] + (
                [(" (k distinct simulated users)", True)] if name != str(FULL) else []
            )
            for label, same_users in variants:
                table, seconds = central(store_path, installs, same_users)
                result = new_home(table)
                central_runs[name + label] = {
                    "installs": n,
                    "rules": len(rules_of(table)),
                    "mining_seconds": round(seconds, 1),
                    **result,
                }
                say(
                    f"{name}{label}: central pooling {len(rules_of(table))} rules, "
                    f"{result['defect_reduction']:.1%} reduction, "
                    f"{result['wrong_actions']} wrong actions ({seconds:.0f} s)"
                )
        for epsilon in epsilons:
            table, report, seconds = release(batch, epsilon)
            if epsilon == 1.0:
                aggregator_seconds["duckdb"][name] = round(seconds, 1)
            result = new_home(table)
            run = {
                "population": name,
                "installs": n,
                "epsilon": epsilon,
                "released_patterns": len(report.released),
                "rules": len(rules_of(table)),
                "aggregator_seconds": round(seconds, 1),
                **result,
            }
            strict = central_runs.get(name + " (k distinct simulated users)")
            if strict is not None and strict["defect_reduction"] > 0:
                run["share_of_central_distinct_users"] = round(
                    result["defect_reduction"] / strict["defect_reduction"], 3
                )
            base = central_runs.get(name)
            if base is not None:
                run["share_of_central"] = (
                    round(result["defect_reduction"] / base["defect_reduction"], 3)
                    if base["defect_reduction"] > 0
                    else None
                )
                gain, central_gain = (
                    result["defect_reduction"] - alone["defect_reduction"],
                    base["defect_reduction"] - alone["defect_reduction"],
                )
                run["share_of_central_gain"] = round(gain / central_gain, 3) if central_gain > 0 else None
            runs.append(run)
            say(
                f"{name} at epsilon {epsilon:g}: {len(report.released)} released, {run['rules']} rules, "
                f"{result['defect_reduction']:.1%} reduction, "
                f"{result['wrong_actions']} wrong actions ({seconds:.1f} s)"
            )

    if law:  # a sensitivity run of the popularity law: the populations and central pooling only
        sensitivity = {
            "popularity": args.popularity,
            "exponent": args.exponent,
            "simulated_households": len(households),
            "days": args.days,
            "period": period,
            "pairs_shared_per_install": round(shared / len(households), 2),
            "evaluation": {
                "population": evaluation.name,
                "households": args.eval_households,
                "days": args.eval_days,
            },
            "control_defect_rate": round(control.defect_rate, 4),
            "no_global_layer": alone,
            "central": central_runs,
            "populations": runs,
        }
        out = write_results(f"community{law}", sensitivity, seconds=time.perf_counter() - started)
        say(f"figures written to {out} ({time.perf_counter() - started:.0f} s)")
        return
    bounds_tried = bound_sweep(sweep, populations, each, period, new_home, central_runs)
    attack = attacks(populations, each, period, replay)
    if "10000" in populations:
        attack["informed"] = wrong_attacks(populations, each, period, replay)
    attack.update(attack_summary(attack))
    if args.spark:
        try:
            aggregator_seconds["spark"] = spark_seconds(populations, each, period)
        except Exception as exc:  # the other figures are kept: say what failed
            say(f"the Spark timing failed: {type(exc).__name__}: {exc}")
            aggregator_seconds["spark"] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}

    figures: dict[str, Any] = {
        "simulated_households": len(households),
        "days": args.days,
        "period": period,
        "pairs_shared_per_install": round(shared / len(households), 2),
        "kept_at_home": kept_home,
        "delta": DELTA,
        "max_patterns": MAX_PATTERNS,
        "k_central": K,
        "evaluation": {
            "population": "held-out",
            "households": args.eval_households,
            "days": args.eval_days,
            "arm": "personal (acting)",
        },
        "control_defect_rate": round(control.defect_rate, 4),
        "no_global_layer": alone,
        "central": central_runs,
        "populations": runs,
        "max_patterns_sweep": bounds_tried,
        "attack": attack,
        "aggregator_seconds": aggregator_seconds,
    }
    figures["latency_10m"] = latency_figures()
    out = write_results("community", figures, seconds=time.perf_counter() - started)
    say(f"figures written to {out} ({time.perf_counter() - started:.0f} s)")


def chained(earlier: str, this: str) -> str:
    """The command that made a results file after ``this`` re-ran parts of it: ``earlier``'s
    steps, then ``this`` (``--only X`` for short), each step named once, where it last ran, and
    an ``--only`` step left out when a later one re-ran all its parts."""
    prefix = "python bench/community.py "
    steps = [s.strip() for s in earlier.split(", then ")]
    short = [s.removeprefix(prefix) if i else s for i, s in enumerate(steps)]
    steps = [*short, this.removeprefix(prefix)]

    def parts(step: str) -> set[str]:
        return set(step.removeprefix("--only ").split(",")) if step.startswith("--only ") else set()

    return ", then ".join(
        s
        for i, s in enumerate(steps)
        if s not in steps[i + 1 :] and not (parts(s) and any(parts(s) <= parts(t) for t in steps[i + 1 :]))
    )


def latency_figures() -> dict[str, Any] | None:
    """``bench/community_latency.py``'s 10,000,000-rule figures (its own results file), if run."""
    path = results_folder() / "community_latency.json"
    if not path.exists():
        return None
    latency = json.loads(path.read_text())
    return {**latency["figures"]["latency_10m"], "source": f"{latency['command']} ({latency['date']})"}


def attacks(
    populations: dict[str, list[tuple[str, str]]],
    each: dict[str, list[Evidence]],
    period: str,
    replay: Replay,
) -> dict[str, Any]:
    """1 % colluding installs among 10,000 (their own evidence replaced by :func:`attack_pairs`)
    and 100 fake installs added to 1,000, each released at epsilon 1 and replayed in the new homes."""
    chosen = attack_pairs(each)
    refused = {f"{a} -> {b}": refusal(a, b) for a, b in chosen}
    scenarios: dict[str, list[Contribution]] = {}
    if "10000" in populations:
        installs = populations["10000"]
        honest = contributions(installs[100:], each, period)
        scenarios["colluding 1% of 10,000"] = attackers("colluder", 100, period, chosen) + honest
    scenarios["100 fake among 1,000"] = attackers("fake", 100, period, chosen) + contributions(
        populations[str(FULL)], each, period
    )
    out: dict[str, Any] = {"pairs": [f"{a} -> {b}" for a, b in chosen], "refused_by_guards": refused}
    for name, batch in scenarios.items():
        table, report, _ = release(batch, 1.0)
        wanted = set(chosen)
        released = [r for r in report.released if (r.failing, r.fixing) in wanted]
        ids = {r["rule_id"] for r in table.rows() if (r["source"], r["target"]) in wanted}
        effect = attack_effect(replay.arm("personal", rewriter_folder(table)), ids)
        unsafe = [
            f"{r.failing} -> {r.fixing}"
            for r in released
            if refused[f"{r.failing} -> {r.fixing}"] is not None
        ]
        out[name] = {
            "released": [f"{r.failing} -> {r.fixing}" for r in released],
            "rules": len(ids),
            "polarity_or_sensitive_released": unsafe,
            **effect,
        }
        if ids:
            out[name]["asking"] = asking_effect(replay, table, ids)
        say(
            f"attack {name}: {len(released)} released, applied {effect['applied']}x, "
            f"{effect['acted_wrong']} wrong actions"
        )
    return out


ASKING_KEYS = (
    "applied",
    "acted_wrong",
    "homes_rules_used",
    "homes_rules_failed",
    "hours_first_failure_to_last_use_max",
    "not_withdrawn",
)


def asking_effect(replay: Replay, table: RewriteTable, ids: set[str]) -> dict[str, Any]:
    """:func:`attack_effect` in the same homes asking "Did you mean ...?" about global guesses
    instead of acting on them (``confirm="guesses"``, the service's default)."""
    asked = attack_effect(replay.arm("confirm", rewriter_folder(table)), ids)
    return {k: asked[k] for k in ASKING_KEYS}


def attack_summary(attack: dict[str, Any]) -> dict[str, Any]:
    """The issue's attack figures over every scenario (naive and informed), for homes acting on
    global guesses and, under ``asking``, for homes asking about them (the service's default):
    attack pairs released, wrong actions they made, (home, rule) pairs used after failing enough
    to be withdrawn, polarity flips or sensitive actions released, and the most hours from a
    released rule's first failure in a home to its last use there."""
    scenarios = [x for k, x in attack.items() if isinstance(x, dict) and "released" in x]
    scenarios += [x for k, x in attack.get("informed", {}).items() if isinstance(x, dict) and "released" in x]

    def hours(xs: list[dict[str, Any]]) -> float | None:
        seen = [x["hours_first_failure_to_last_use_max"] for x in xs]
        return max((h for h in seen if h is not None), default=None)

    asking = [x["asking"] for x in scenarios if "asking" in x]
    return {
        "released": sum(len(x["released"]) for x in scenarios),
        "acted_in_victim": sum(x["acted_wrong"] for x in scenarios),
        "released_not_withdrawn": sum(len(x["not_withdrawn"]) for x in scenarios),
        "polarity_or_sensitive_released": sum(
            len(x.get("polarity_or_sensitive_released", [])) for x in scenarios
        ),
        "hours_to_withdraw": hours(scenarios),
        "asking": {
            "acted_in_victim": sum(x["acted_wrong"] for x in asking),
            "released_not_withdrawn": sum(len(x["not_withdrawn"]) for x in asking),
            "hours_to_withdraw": hours(asking),
        },
    }


def wrong_attacks(
    populations: dict[str, list[tuple[str, str]]],
    each: dict[str, list[Evidence]],
    period: str,
    replay: Replay,
    shares: tuple[int, ...] = (100, 500),
) -> dict[str, Any]:
    """Colluders among 10,000 installs sending :func:`wrong_attack_pairs` at epsilon 1: what is
    released, how it acts in the new homes, and how fast each home stops applying what fails."""
    chosen = wrong_attack_pairs(each)
    honest_installs = populations["10000"]
    out: dict[str, Any] = {"pairs": [f"{a} -> {b}" for a, b in chosen]}
    wanted = set(chosen)
    for colluders in shares:
        batch = attackers("informed", colluders, period, chosen) + contributions(
            honest_installs[colluders:], each, period
        )
        table, report, _ = release(batch, 1.0)
        released = [r for r in report.released if (r.failing, r.fixing) in wanted]
        ids = {r["rule_id"] for r in table.rows() if (r["source"], r["target"]) in wanted}
        effect = attack_effect(replay.arm("personal", rewriter_folder(table)), ids)
        name = f"colluding {colluders / 100:g}% of 10,000"
        out[name] = {
            "released": [f"{r.failing} -> {r.fixing}" for r in released],
            "rules": len(ids),
            **effect,
        }
        if ids:  # the same homes asking "Did you mean ...?" about global guesses (the service's default)
            out[name]["asking"] = asking_effect(replay, table, ids)
        say(
            f"informed attack {name}: {len(released)} released, applied {effect['applied']}x "
            f"(asking: {out[name].get('asking', {}).get('applied', 0)}x), "
            f"{effect['acted_wrong']} wrong actions, withdrawn after "
            f"{effect['hours_first_failure_to_last_use_max']} h at most"
        )
    return out


def bound_sweep(
    bounds: list[int],
    populations: dict[str, list[tuple[str, str]]],
    each: dict[str, list[Evidence]],
    period: str,
    new_home: Any,
    central_runs: dict[str, Any],
) -> list[dict[str, Any]]:
    """Releases at epsilon 1 of the 10,000 and 100,000 populations with each install bounded to
    fewer pairs: partition selection's noise grows with the pairs one install may send, so a
    smaller bound lets a pair through with fewer installs, and each install sends only its
    strongest evidence."""
    out = []
    for name in ("10000", "100000"):
        if name not in populations:
            continue
        for m in bounds:
            table, report, seconds = release(contributions(populations[name], each, period, m), 1.0, None, m)
            result = new_home(table)
            run = {
                "population": name,
                "installs": len(populations[name]),
                "epsilon": 1.0,
                "max_patterns": m,
                "released_patterns": len(report.released),
                "rules": len(rules_of(table)),
                "aggregator_seconds": round(seconds, 1),
                **result,
            }
            base = central_runs.get(name)
            if base is not None and base["defect_reduction"] > 0:
                run["share_of_central"] = round(result["defect_reduction"] / base["defect_reduction"], 3)
            out.append(run)
            say(
                f"{name} at epsilon 1, {m} pairs per install: {len(report.released)} released, "
                f"{result['defect_reduction']:.1%} reduction, {result['wrong_actions']} wrong actions"
            )
    return out


def spark_seconds(
    populations: dict[str, list[tuple[str, str]]], each: dict[str, list[Evidence]], period: str
) -> dict[str, float]:
    """The aggregator's seconds at each population size on Spark (local mode, 2 cores)."""
    from selflearn.community.aggregate import SparkAggregation, spark_session

    spark = spark_session("local[2]")
    out: dict[str, float] = {}
    try:
        for name, installs in populations.items():
            if name.endswith("sampled"):
                continue
            _, _, seconds = release(contributions(installs, each, period), 1.0, SparkAggregation(spark))
            out[name] = round(seconds, 1)
            say(f"{name} on Spark: {seconds:.1f} s")
    finally:
        spark.stop()
    return out


if __name__ == "__main__":
    main()
