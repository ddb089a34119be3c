"""Offline rewrite mining: reformulation sessions -> absorbing Markov chain -> rewrite table.

>>> from selflearn import Store
>>> from selflearn.mining import DuckDbEngine, MiningConfig, RewriteMiner
>>> with Store("selflearn.duckdb", read_only=True) as store:      # doctest: +SKIP
...     miner = RewriteMiner(MiningConfig(min_users=5)).fit(DuckDbEngine(store))
>>> miner.save("models/rewrites")                                 # doctest: +SKIP

:class:`RewriteMiner` follows the learner contract (:mod:`selflearn.core.artefacts`): what it
learns is ``table_``, the :class:`~selflearn.rewrite.RewriteTable` the online rewriter serves,
and what it saw, ``report_``; it saves that table's folder.

Steps (``docs/mining.md`` has the details and the privacy guarantee):

1. every turn is delexicalized with its home's names (:mod:`selflearn.core.delex`) and labelled
   by the defect detector (``defects`` table) and linked to the turn it reformulates
   (``rephrases`` table) -- both written by ``selflearn signals``; simulation truth is never read;
2. the engine (DuckDB or Spark, :mod:`selflearn.mining.engines`) counts Markov moves between
   patterns and, for every pattern, which later reformulations in the same chain its users
   reached, with their distinct users and households;
3. the chain is solved (:mod:`selflearn.mining.markov`) and for each pattern that tends to fail
   the reachable reformulation with the highest probability of success is kept if it beats the
   source by a margin and passes the privacy threshold and the guards
   (:mod:`selflearn.core.guards`);
4. rewrites already deployed (turns with rewrite provenance) are scored separately and demoted
   when their success after deployment is credibly worse than the source's before.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats as st

from selflearn.core.delex import Delexicalizer, example_values
from selflearn.core.errors import ConfigError, DataError
from selflearn.core.guards import (
    changes_meaning,
    changes_target,
    evidence_bar,
    is_sensitive,
    overwhelming,
)
from selflearn.core.home import Home
from selflearn.mining.engines import STATE_SCHEMA, STEPS, Delex, Engine, run_steps
from selflearn.mining.markov import absorbing_chain
from selflearn.rewrite.table import RewriteTable, rule_id


@dataclass(frozen=True)
class MiningConfig:
    """Thresholds of the miner. The defaults are the ones the benchmark reports."""

    min_users: int = 5
    """k: distinct users who went from the source to the target (privacy and evidence)."""
    min_households: int = 2
    """Distinct households among them, so no single home's phrases enter the global table."""
    defect_threshold: float = 0.5
    """A turn counts as failed when its P(defect) is at least this."""
    max_source_success: float = 0.5
    """Only sources whose own success rate is at most this are rewritten ("tends to fail")."""
    min_source_turns: int = 3
    """Turns of the source pattern needed before judging it."""
    min_target_turns: int = 3
    """Turns of the target pattern needed before trusting its success rate."""
    margin: float = 0.3
    """The target's success rate must beat the source's by at least this."""
    sensitive_factor: float = 2.0
    """Sensitive rewrites (locks, covers and garage doors, alarms) need this many times the users
    and the margin."""
    overwhelming_users: int = 50
    """A rewrite that changes polarity, action or target is only allowed with at least this many users,
    a target success rate of at least ``overwhelming_success``, and twice the margin."""
    overwhelming_success: float = 0.95
    demote_confidence: float = 0.95
    """Demote a deployed rewrite when P(success after < success before) is at least this."""
    noise_epsilon: float | None = None
    """When set, Laplace noise of scale 1/epsilon is added to the exported counts."""
    noise_seed: int = 0

    def __post_init__(self) -> None:
        if self.min_users < 1 or self.min_households < 1:
            raise ConfigError("min_users and min_households must be at least 1")
        for name in ("defect_threshold", "max_source_success", "margin", "overwhelming_success"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"MiningConfig.{name} must be between 0 and 1, got {value!r}")
        if not 0.5 <= self.demote_confidence < 1.0:
            raise ConfigError("demote_confidence must be in [0.5, 1)")
        if self.noise_epsilon is not None and self.noise_epsilon <= 0:
            raise ConfigError("noise_epsilon must be positive")


@dataclass
class MiningReport:
    """What a mining run saw and did."""

    engine: str
    turns: int = 0
    organic_turns: int = 0
    users: int = 0
    households: int = 0
    first: str | None = None
    last: str | None = None
    states: int = 0
    components: int = 0
    largest_component: int = 0
    candidate_sources: int = 0
    rules: int = 0
    demoted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def home_delexicalizers(homes: pa.Table) -> Callable[[str], Delexicalizer]:
    """Household id -> the delexicalizer of its home (``homes``: ``home_id``, ``config`` JSON, as
    :meth:`Engine.homes` gives them; a household without a home gets the generic one), each built
    once."""
    configs = {
        str(h): str(c)
        for h, c in zip(homes.column("home_id").to_pylist(), homes.column("config").to_pylist(), strict=True)
    }
    cache: dict[str, Delexicalizer] = {}

    def delexicalizer(household: str) -> Delexicalizer:
        d = cache.get(household)
        if d is None:
            config = configs.get(household)
            d = Delexicalizer(Home.from_dict(json.loads(config)) if config else None)
            cache[household] = d
        return d

    return delexicalizer


def make_delex(homes: pa.Table, defect_threshold: float) -> Delex:
    """The per-batch function both engines run: input rows -> :data:`STATE_SCHEMA` rows."""
    delexicalizer = home_delexicalizers(homes)

    def run(batch: pa.RecordBatch) -> pa.RecordBatch:
        col = batch.column
        names = batch.schema.names
        patterns: list[str] = []
        rewritten: list[str | None] = []
        domains: list[str | None] = []
        memo: dict[tuple[str, str, str | None, str | None], tuple[str, str | None]] = {}
        for household, said, rw, unresolved, entity in zip(
            col(names.index("household_id")).to_pylist(),
            col(names.index("said")).to_pylist(),
            col(names.index("rewritten")).to_pylist(),
            col(names.index("unresolved")).to_pylist(),
            col(names.index("entity_id")).to_pylist(),
            strict=True,
        ):
            key = (household, said or "", rw, unresolved)
            done = memo.get(key)
            if done is None:
                d = delexicalizer(household)
                unknown = unresolved.split("\x1f") if unresolved else ()
                done = (d(said or "", unknown).pattern, d(rw, unknown).pattern if rw else None)
                memo[key] = done
            patterns.append(done[0])
            rewritten.append(done[1])
            domains.append(entity.split(".", 1)[0] if entity else None)
        p_defect = col(names.index("p_defect"))
        defect = pc.fill_null(pc.greater_equal(p_defect, defect_threshold), False)
        rewritten_arr = pa.array(rewritten, pa.string())
        return pa.RecordBatch.from_arrays(
            [
                col(names.index("turn_id")).cast(pa.string()),
                col(names.index("user_id")).cast(pa.string()),
                col(names.index("household_id")).cast(pa.string()),
                col(names.index("ts")).cast(STATE_SCHEMA.field("ts").type),
                pa.array(patterns, pa.string()),
                rewritten_arr,
                pc.is_null(rewritten_arr),
                defect,
                col(names.index("rephrase_of")).cast(pa.string()),
                pa.array(domains, pa.string()),
            ],
            schema=STATE_SCHEMA,
        )

    return run


FIT_STEPS = len(STEPS) + 3
"""How many messages :meth:`RewriteMiner.fit` passes to its ``progress`` callback, one as each
step ends: delexicalizing, each of :data:`~selflearn.mining.engines.STEPS`, the chain walk and
solving the chain (a progress bar's total)."""


class RewriteMiner:
    """Mines a rewrite table from the logs an engine reads (see the module docstring)."""

    def __init__(self, config: MiningConfig | None = None) -> None:
        self.config = config or MiningConfig()
        self.table_: RewriteTable | None = None
        """The mined table (what :meth:`save` writes and the online rewriter serves)."""
        self.report_: MiningReport | None = None
        """What mining saw and chose (also in the table's metadata)."""

    def fit(self, engine: Engine, progress: Callable[[str], None] | None = None) -> RewriteMiner:
        """Mine the logs ``engine`` reads; ``progress(message)`` narrates the steps, one line as
        each ends (:data:`FIT_STEPS` of them). Returns self."""
        config = self.config
        say = progress or (lambda _m: None)
        report = MiningReport(engine=engine.name)
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            report.seconds[name] = round(now - clock, 3)
            clock = now

        engine.load_states(make_delex(engine.homes(), config.defect_threshold))
        lap("delexicalize")
        say(f"delexicalized turns ({report.seconds['delexicalize']:.1f} s)")
        agg = run_steps(engine, say)
        lap("aggregate")
        rng = agg["range"].to_pylist()[0]
        report.turns = int(rng["turns"] or 0)
        if report.turns == 0:
            raise DataError("no scored turns to mine: ingest logs and run `selflearn signals` first")
        report.organic_turns = int(rng["organic"] or 0)
        report.users, report.households = int(rng["users"]), int(rng["households"])
        report.first = rng["first"].isoformat() if rng["first"] else None
        report.last = rng["last"].isoformat() if rng["last"] else None

        edges = agg["edges"].to_pydict()
        chain = absorbing_chain(list(zip(edges["src"], edges["dst"], edges["n"], strict=True)))
        lap("solve")
        say(f"chain: {len(chain.states):,} patterns, {chain.components:,} connected components solved")
        report.states = len(chain.states)
        report.components = chain.components
        report.largest_component = chain.largest_component
        rows, rejected = _select(chain, agg, config)
        lap("select")
        report.candidate_sources = rejected.pop("considered", 0)
        report.rejected = dict(sorted(rejected.items()))
        report.rules = sum(r["status"] == "active" for r in rows)
        report.demoted = sum(r["status"] == "demoted" for r in rows)
        if config.noise_epsilon is not None:
            _add_noise(rows, config)
        self.table_, self.report_ = RewriteTable.from_rows(rows, _metadata(config, report)), report
        return self

    def mined(self) -> RewriteTable:
        """The mined table; raises :class:`ConfigError` before :meth:`fit`."""
        if self.table_ is None:
            raise ConfigError("the miner has mined nothing: call RewriteMiner().fit(engine) first")
        return self.table_

    def save(self, folder: str | Path) -> Path:
        """Write the mined table's folder (``model.json``, ``rewrites.parquet``); returns it."""
        return self.mined().save(folder)

    @classmethod
    def load(cls, folder: str | Path) -> RewriteMiner:
        """A miner holding the table saved in ``folder`` (its configuration as it was mined)."""
        table = RewriteTable.load(folder)
        miner = cls(MiningConfig(**table.metadata.get("config", {})))
        miner.table_ = table
        return miner


def _beta_mean(success: float, n: float) -> float:
    return (success + 1.0) / (n + 2.0)


def _select(
    chain: Any, agg: dict[str, pa.Table], config: MiningConfig
) -> tuple[list[dict[str, Any]], Counter[str]]:
    index = chain.index()
    support = {r["pattern"]: r for r in agg["support"].to_pylist()}
    domains: dict[str, set[str]] = defaultdict(set)
    for r in agg["domains"].to_pylist():
        domains[r["pattern"]].add(r["domain"])
    deployed = {(r["src"], r["dst"]): r for r in agg["deployed"].to_pylist()}
    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in agg["pairs"].to_pylist():
        if r["src"] != r["dst"]:
            by_source[r["src"]].append(r)

    rejected: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    for source in sorted(by_source):
        i = index[source]
        n_s = int(chain.turns[i])
        p_s = _beta_mean(chain.direct_success[i] * n_s, n_s)
        if n_s < config.min_source_turns:
            rejected["source too rare"] += 1
            continue
        if p_s > config.max_source_success:
            rejected["source mostly works"] += 1
            continue
        if "{unknown}" in source:
            rejected["household name in source"] += 1
            continue
        rejected["considered"] += 1
        src_users = support.get(source, {}).get("users", 0)
        ranked = []
        for pair in by_source[source]:
            j = index.get(pair["dst"])
            if j is None:
                continue
            ranked.append((float(chain.absorb_success[j]), pair["users"], pair["dst"], pair, j))
        ranked.sort(key=lambda x: (-x[0], -x[1], x[2]))
        reasons: list[str] = []
        active = False
        for absorb_t, _, target, pair, j in ranked:
            reason = _check(source, target, pair, chain, j, p_s, domains, config)
            if reason is not None:
                reasons.append(reason)
                continue
            row = _row(source, target, pair, chain, i, j, absorb_t, src_users, domains, deployed, config)
            rows.append(row)
            if row["status"] == "active":
                active = True
                break
        if not active:
            rejected["no target passed"] += 1
            for reason in sorted(set(reasons)):
                rejected[f"target: {reason}"] += 1
    return rows, rejected


def _row(
    source: str,
    target: str,
    pair: dict[str, Any],
    chain: Any,
    i: int,
    j: int,
    absorb_t: float,
    src_users: int,
    domains: dict[str, set[str]],
    deployed: dict[tuple[str, str], dict[str, Any]],
    config: MiningConfig,
) -> dict[str, Any]:
    n_s, n_t = int(chain.turns[i]), int(chain.turns[j])
    succ_s = float(chain.direct_success[i]) * n_s
    p_s, p_t = _beta_mean(succ_s, n_s), _beta_mean(float(chain.direct_success[j]) * n_t, n_t)
    dep = deployed.get((source, target))
    dep_n = int(dep["n"]) if dep else 0
    dep_s = int(dep["success"]) if dep else 0
    p_worse = _p_worse(dep_s, dep_n, succ_s, n_s) if dep_n else 0.0
    return {
        "rule_id": rule_id(source, target),
        "source": source,
        "target": target,
        "source_example": example_values(source),
        "target_example": example_values(target),
        "p_source": round(p_s, 6),
        "p_target": round(p_t, 6),
        "absorb_source": round(float(chain.absorb_success[i]), 6),
        "absorb_target": round(absorb_t, 6),
        "support": int(pair["n"]),
        "users": int(pair["users"]),
        "households": int(pair["households"]),
        "source_turns": n_s,
        "target_turns": n_t,
        "source_users": int(src_users),
        "sensitive": is_sensitive(source) or is_sensitive(target, domains.get(target, ())),
        "deployed_turns": dep_n,
        "deployed_success": dep_s,
        "p_worse_after": round(p_worse, 6),
        "status": "demoted" if p_worse >= config.demote_confidence else "active",
    }


def _check(
    source: str,
    target: str,
    pair: dict[str, Any],
    chain: Any,
    j: int,
    p_s: float,
    domains: dict[str, set[str]],
    config: MiningConfig,
) -> str | None:
    """Why ``source -> target`` may not be emitted, or None if it may."""
    if "{unknown}" in target:
        return "household name"
    n_t = int(chain.turns[j])
    if n_t < config.min_target_turns:
        return "target too rare"
    p_t = _beta_mean(chain.direct_success[j] * n_t, n_t)
    users, households = int(pair["users"]), int(pair["households"])
    sensitive = is_sensitive(source) or is_sensitive(target, domains.get(target, ()))
    k, margin = evidence_bar(config.min_users, config.margin, sensitive, config.sensitive_factor)
    enough = overwhelming(users, p_t, p_s, k, margin, config.overwhelming_users, config.overwhelming_success)
    # The online rewriter's guards (selflearn.core.guards.rejection) also refuse a swap of one
    # action for another ("on {name}" -> "set {name} to mute"): the table must not do what the
    # ranked layer may not.
    changes = changes_meaning(source, target) or changes_target(source, target)
    if changes and not enough:
        return "polarity, action or target change"
    if users < k:
        return "fewer than k users"
    if households < config.min_households:
        return "too few households"
    if p_t - p_s < margin:
        return "margin too small"
    return None


_GRID = np.linspace(0.0, 1.0, 2001)


def _p_worse(success_after: float, n_after: float, success_before: float, n_before: float) -> float:
    """P(theta_after < theta_before) for independent Beta(1 + successes, 1 + failures)
    posteriors, by numerical integration on a fixed grid (deterministic)."""
    after = st.beta(1 + success_after, 1 + n_after - success_after)
    before = st.beta(1 + success_before, 1 + n_before - success_before)
    density = after.pdf(_GRID)
    return float(np.clip(np.trapezoid(density * before.sf(_GRID), _GRID), 0.0, 1.0))


def _add_noise(rows: list[dict[str, Any]], config: MiningConfig) -> None:
    rng = np.random.default_rng(config.noise_seed)
    assert config.noise_epsilon is not None
    scale = 1.0 / config.noise_epsilon
    for row in rows:
        for key in ("support", "users", "households", "source_turns", "target_turns", "source_users"):
            row[key] = max(0, round(row[key] + rng.laplace(0.0, scale)))


def _metadata(config: MiningConfig, report: MiningReport) -> dict[str, Any]:
    return {
        "config": asdict(config),
        "report": asdict(report),
    }
