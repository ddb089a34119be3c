"""Rewrite mining as a ``spark-submit`` job (see ``docs/mining-spark.md``).

    spark-submit --master yarn --deploy-mode client \\
        "$(python -c 'import selflearn.mining.spark_job as m; print(m.__file__)')" \\
        --parquet-dir hdfs:///logs/selflearn/2026-11 --out models/rewrites --min-users 5

The job uses the session ``spark-submit`` configured (master, executors, their Python), reads
the Parquet exports under ``--parquet-dir`` (any URI Spark reads), mines, and writes the rewrite
table folder on the driver's file system. ``python -m selflearn.mining.spark_job ...`` runs the
same job in local mode (``--master local[2]``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from selflearn.mining.engines import SparkEngine
from selflearn.mining.miner import MiningConfig, RewriteMiner


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="selflearn.mining.spark_job", description="Rewrite mining as a spark-submit job."
    )
    parser.add_argument(
        "--parquet-dir", required=True, help="folder or URI with turns/defects/rephrases/homes .parquet"
    )
    parser.add_argument("--out", default="models/rewrites", help="rewrite-table folder to write (driver)")
    parser.add_argument("--master", default=None, help="Spark master; default: what spark-submit set")
    parser.add_argument("--min-users", type=int, default=MiningConfig.min_users)
    parser.add_argument("--min-households", type=int, default=MiningConfig.min_households)
    parser.add_argument("--margin", type=float, default=MiningConfig.margin)
    parser.add_argument("--noise-epsilon", type=float, default=None)
    args = parser.parse_args(argv)
    config = MiningConfig(
        min_users=args.min_users,
        min_households=args.min_households,
        margin=args.margin,
        noise_epsilon=args.noise_epsilon,
    )
    engine = SparkEngine(args.parquet_dir, master=args.master)
    try:
        miner = RewriteMiner(config).fit(engine, progress=lambda m: print(m, file=sys.stderr))
    finally:
        engine.close()
    table = miner.mined()
    table.save(Path(args.out))
    report = table.metadata["report"]
    summary = {k: report[k] for k in ("turns", "users", "households", "states", "rules", "demoted")}
    print(json.dumps({"out": args.out, "version": table.version, **summary, "seconds": report["seconds"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
