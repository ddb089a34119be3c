"""Phrasing popularity: how the law users pick phrasings by changes what can be mined at k users.

    python bench/popularity.py [--households 80] [--days 7] [--k 5] [--exponent 1.0] [--workers 2]

For each law (``uniform``: every phrasing of a goal kind and source alike; ``zipf``: a fixed
popularity rank per phrasing, drawn with weight ``1 / rank**exponent``, docs/simulator.md):

1. simulate the households on held-out real phrasings (``phrasing_split="test"``, corpora
   HWU64, SLURP and Home Assistant's tests when ``../shared/data`` is found, noisy ASR, as the
   evaluation populations are) into a DuckDB store, cached as
   ``bench/.cache/popularity/<law>.duckdb`` (the store's stamp names the law, so a Zipf store is
   never taken for a uniform one: :func:`selflearn.evaluate.cache.population_store`);
2. score its friction signals as a user would (pairwise lexical rephrase baseline unless
   ``--rephrase-model`` exists; heuristic defects);
3. mine it with ``RewriteMiner`` (DuckDB engine, default ``MiningConfig`` but ``min_users=k``).

Reported per law: turns; distinct phrasings said and those said by at least k distinct users
(a phrasing is what the user really said, from the simulation truth, delexicalised with the
home's configuration: the pattern the miner would pool, before ASR noise), overall and for
real-corpus phrasings only; and the rewrite rules mined (active), with the miner's counts of
candidates it rejected and why.

Figures go to ``docs/results/popularity.json`` (or ``$SELFLEARN_RESULTS``).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from selflearn import Store
from selflearn.assistant.pipeline import AssistantConfig
from selflearn.core.delex import Delexicalizer
from selflearn.core.home import Home
from selflearn.evaluate import write_results
from selflearn.evaluate.cache import population_store
from selflearn.evaluate.signals import score_signals, signals_are_scored
from selflearn.mining import DuckDbEngine, MiningConfig, RewriteMiner
from selflearn.simulation.corpora import find_data_dir
from selflearn.simulation.simulator import SimulationConfig

BENCH = Path(__file__).resolve().parent
CACHE = BENCH / ".cache" / "popularity"
CORPORA = ("hwu64", "slurp", "ha_tests")
BUILT_IN = ("templates", "colloquial", "background")
"""Phrasing sources that are not real corpora."""


def config(law: str, exponent: float, args: argparse.Namespace) -> SimulationConfig:
    """The population simulated under ``law``: the same households, seed and phrasings for both."""
    return SimulationConfig(
        households=args.households,
        days=args.days,
        seed=args.seed,
        household_prefix="pp",
        phrasing_split="test",
        corpora=CORPORA if find_data_dir(None) is not None else (),
        assistant=AssistantConfig(asr="noisy"),
        workers=args.workers,
        phrasing_popularity=law,  # type: ignore[arg-type]
        popularity_exponent=exponent,
    )


def phrasing_users(store: Store) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Delexicalised patterns users really said -> the users who said them: every in-scope
    phrasing, and real-corpus phrasings only (false wakes are not phrasings)."""
    homes = {
        row["home_id"]: Delexicalizer(Home.from_dict(json.loads(row["config"])))
        for row in store.query("SELECT home_id, config FROM homes").to_pylist()
    }
    rows = store.query(
        "SELECT t.household_id, t.user_id, s.intended_text, s.phrasing_source "
        "FROM sim_truth s JOIN turns t USING (turn_id) WHERE s.action <> 'background'"
    ).to_pylist()
    every: dict[str, set[str]] = defaultdict(set)
    corpus: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        pattern = homes[row["household_id"]](row["intended_text"]).pattern
        every[pattern].add(row["user_id"])
        if row["phrasing_source"] not in BUILT_IN:
            corpus[pattern].add(row["user_id"])
    return every, corpus


def measure(law: str, exponent: float, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    cfg = config(law, exponent, args)
    name = "uniform" if law == "uniform" else f"zipf-{exponent:g}"
    path = population_store(CACHE / f"{name}-{args.households}x{args.days:g}.duckdb", cfg)
    with Store(path) as store:
        scored_with = "cached" if signals_are_scored(store) else score_signals(store, args.rephrase_model)
    with Store(path, read_only=True) as store:
        turns = store.count("turns")
        users = store.query("SELECT count(DISTINCT user_id) AS n FROM turns").column("n")[0].as_py()
        every, corpus = phrasing_users(store)
        mined_started = time.perf_counter()
        table = RewriteMiner(MiningConfig(min_users=args.k)).fit(DuckDbEngine(store)).mined()
        mining_seconds = time.perf_counter() - mined_started
    report = table.metadata["report"]
    rules = table.rows()
    active = sum(r["status"] == "active" for r in rules)
    figures = {
        "law": law,
        "exponent": exponent if law == "zipf" else None,
        "households": cfg.households,
        "days": cfg.days,
        "corpora": list(cfg.corpora),
        "users": users,
        "turns": turns,
        "phrasings_said": len(every),
        "phrasings_said_by_k_users": sum(len(u) >= args.k for u in every.values()),
        "corpus_phrasings_said": len(corpus),
        "corpus_phrasings_said_by_k_users": sum(len(u) >= args.k for u in corpus.values()),
        "mined_states": report["states"],
        "rules_active": active,
        "rules_total": len(rules),
        "rejected": report["rejected"],
        "signals": scored_with,
        "mining_seconds": round(mining_seconds, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(
        f"{name}: {turns:,} turns ({users} users); phrasings said {len(every):,}, "
        f"by >= {args.k} users {figures['phrasings_said_by_k_users']:,}; corpus phrasings said "
        f"{len(corpus):,}, by >= {args.k} users {figures['corpus_phrasings_said_by_k_users']:,}; "
        f"rules mined at k = {args.k}: {active} active ({len(rules)} in the table); "
        f"{figures['seconds']:.0f} s",
        flush=True,
    )
    return figures


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, default=80)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--seed", type=int, default=51)
    parser.add_argument(
        "--k", type=int, default=5, help="distinct users a rewrite (and a shared phrasing) needs"
    )
    parser.add_argument("--exponent", type=float, default=1.0, help="the Zipf law's exponent")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rephrase-model", type=Path, default=None, help="contextual rephrase model")
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    laws = {"uniform": measure("uniform", 1.0, args), "zipf": measure("zipf", args.exponent, args)}
    figures = {"k": args.k, "min_users": args.k, "laws": laws}
    write_results("popularity", figures, seconds=time.perf_counter() - started)


if __name__ == "__main__":
    main()
