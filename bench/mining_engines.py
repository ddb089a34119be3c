"""Mining engines side by side: DuckDB vs Spark (local mode) on the same logs, same table.

    python bench/mining_engines.py --store bench/.cache/signals/mine.duckdb --replicate 4
    python bench/mining_engines.py --store STORE --replicate N --min-users 5   # N x the turns

``bench/.cache/signals/mine.duckdb`` is the ``mine`` population (:mod:`selflearn.evaluate.populations`)
with its friction signals, as ``python bench/mining.py`` leaves it; any store with signals will do.

1. ``--replicate N`` copies the store's ``turns``, ``defects``, ``rephrases`` and ``homes`` N
   times into a scratch store, suffixing every id (turn, session, user, household, home, and the
   ``rephrase_of`` link) with ``-r{i}`` in copy i >= 1, so users, homes and chains scale with the
   turns (k-user counts grow honestly; no chain crosses copies). The store needs its signals
   (``selflearn signals``); simulation truth is never copied.
2. The DuckDB engine mines the scratch store; it is exported to Parquet (``export_for_spark``)
   and the Spark engine (``--master``, default ``local[2]``) mines the export.
3. Wall times per stage are printed (replicate, export, Spark start-up, and the miner's own
   delexicalize / aggregate / solve / select), with a Markdown row for docs/benchmarks.md; the
   two tables must be identical row for row (and have the same version), else exit code 1.
   The figures are also written as JSON to ``docs/results/mining_engines.json`` (or
   ``$SELFLEARN_RESULTS``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from selflearn import Store
from selflearn.evaluate import write_results
from selflearn.mining import DuckDbEngine, MiningConfig, RewriteMiner, SparkEngine
from selflearn.mining.engines import export_for_spark
from selflearn.rewrite import RewriteTable

CACHE = Path(__file__).resolve().parent / ".cache" / "mining-engines"

# Columns that carry an id, per table; every copy i >= 1 gets "-r{i}" appended.
ID_COLUMNS = {
    "turns": ("turn_id", "session_id", "user_id", "household_id"),
    "defects": ("turn_id",),
    "rephrases": ("turn_id", "rephrase_of"),
    "homes": ("home_id",),
}


def replicate(source: Path, target: Path, copies: int) -> dict[str, int]:
    """Write ``copies`` id-suffixed copies of the mining tables of ``source`` into a new store."""
    for stale in (target, target.with_name(target.name + ".wal")):
        stale.unlink(missing_ok=True)
    counts: dict[str, int] = {}
    with Store(target) as store:
        con = store.con
        con.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
        con.execute(
            "CREATE TEMP MACRO sfx(x, i) AS CASE WHEN x IS NULL OR i = 0 THEN x ELSE x || '-r' || i END"
        )
        for table, ids in ID_COLUMNS.items():
            replaced = ", ".join(f"sfx(t.{c}, r.i) AS {c}" for c in ids)
            con.execute(
                f"INSERT INTO {table} BY NAME SELECT t.* REPLACE ({replaced}) "
                f"FROM src.{table} t, range({copies}) r(i)"
            )
            counts[table] = int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
        con.execute("DETACH src")
    return counts


def run_spark(folder: Path, config: MiningConfig, master: str) -> tuple[RewriteTable, float, float]:
    started = time.perf_counter()
    engine = SparkEngine(folder, master=master)
    startup = time.perf_counter() - started
    try:
        table = RewriteMiner(config).fit(engine).mined()
    finally:
        engine.close()
    return table, startup, time.perf_counter() - started


def same(a: RewriteTable, b: RewriteTable) -> list[str]:
    """What differs between two mined tables (empty when identical)."""
    problems = []
    if a.rows() != b.rows():
        problems.append(f"rows differ ({a.num_rows} vs {b.num_rows} rows)")
    if a.version != b.version:
        problems.append(f"version {a.version} vs {b.version}")
    ra, rb = (dict(t.metadata["report"]) for t in (a, b))
    for r in (ra, rb):
        del r["engine"], r["seconds"]
    for key in sorted(ra):
        if ra[key] != rb[key]:
            problems.append(f"report {key}: {ra[key]!r} vs {rb[key]!r}")
    return problems


def main() -> int:
    started_all = time.perf_counter()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", type=Path, required=True, help="a store with signals")
    parser.add_argument("--replicate", type=int, default=1, help="copies of the logs (1: as is)")
    parser.add_argument("--work", type=Path, default=CACHE, help="scratch folder")
    parser.add_argument("--master", default="local[2]", help="Spark master")
    parser.add_argument("--min-users", type=int, default=MiningConfig.min_users)
    parser.add_argument("--min-households", type=int, default=MiningConfig.min_households)
    parser.add_argument("--margin", type=float, default=MiningConfig.margin)
    parser.add_argument("--keep", action="store_true", help="keep the scratch store and Parquet files")
    args = parser.parse_args()
    if args.replicate < 1:
        parser.error("--replicate must be at least 1")
    config = MiningConfig(min_users=args.min_users, min_households=args.min_households, margin=args.margin)
    work = args.work / f"x{args.replicate}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    seconds: dict[str, Any] = {}

    started = time.perf_counter()
    store_path = work / "logs.duckdb"
    counts = replicate(args.store.resolve(), store_path, args.replicate)
    seconds["replicate"] = time.perf_counter() - started
    print(f"replicated x{args.replicate}: {counts} ({seconds['replicate']:.1f} s)", file=sys.stderr)

    with Store(store_path, read_only=True) as store:
        started = time.perf_counter()
        duck = RewriteMiner(config).fit(DuckDbEngine(store)).mined()
        seconds["duckdb"] = time.perf_counter() - started
        started = time.perf_counter()
        export_for_spark(store, work / "parquet")
        seconds["export"] = time.perf_counter() - started
    print(f"duckdb: {seconds['duckdb']:.1f} s {duck.metadata['report']['seconds']}", file=sys.stderr)

    spark, seconds["spark_start"], seconds["spark"] = run_spark(work / "parquet", config, args.master)
    print(
        f"spark: {seconds['spark']:.1f} s (start-up {seconds['spark_start']:.1f} s) "
        f"{spark.metadata['report']['seconds']}",
        file=sys.stderr,
    )
    problems = same(duck, spark)
    rep = duck.metadata["report"]
    stages = ("delexicalize", "aggregate", "solve", "select")
    figures: dict[str, Any] = {
        "turns": rep["turns"],
        "users": rep["users"],
        "households": rep["households"],
        "patterns": rep["states"],
        "rules": rep["rules"],
        "identical": not problems,
        "version": duck.version,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "duckdb_stages": duck.metadata["report"]["seconds"],
        "spark_stages": spark.metadata["report"]["seconds"],
    }
    print(json.dumps(figures))
    print()
    print(
        "| turns | engine | total s | start-up s | "
        + " | ".join(f"{s} s" for s in stages)
        + " | same table |"
    )
    print("|---:|---|---:|---:|" + "---:|" * len(stages) + "---|")
    for name, table, total, startup in (
        ("DuckDB", duck, seconds["duckdb"], 0.0),
        (f"Spark {args.master}", spark, seconds["spark"], seconds["spark_start"]),
    ):
        st = table.metadata["report"]["seconds"]
        cells = " | ".join(f"{st[s]:.2f}" for s in stages)
        print(
            f"| {rep['turns']:,} | {name} | {total:.1f} | {startup:.1f} | {cells} | "
            f"{'yes' if not problems else 'NO'} |"
        )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    for problem in problems:
        print(f"MISMATCH: {problem}", file=sys.stderr)
    figures |= {
        "replicate": args.replicate,
        "rows": counts,
        "master": args.master,
        "config": {"min_users": args.min_users, "min_households": args.min_households, "margin": args.margin},
        "problems": problems,
    }
    write_results("mining_engines", figures, seconds=time.perf_counter() - started_all)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
