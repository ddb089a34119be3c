"""Where the heavy part of mining runs: DuckDB (embedded default) or Apache Spark.

Both engines run the *same* SQL text (the statements in :data:`STEPS`, written in the subset of
SQL that DuckDB and Spark SQL share) over a ``states`` table with one row per turn, and hand the
small aggregates back to Python, where the Markov chain is solved. The only engine-specific bits
are reading the logs (:data:`DIALECT`) and running the Python delexicalizer over the turns
(DuckDB: in this process over Arrow batches; Spark: ``mapInArrow`` on the executors).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from selflearn.core.errors import ConfigError, DependencyError, StoreError
from selflearn.core.store import Store

MAX_CHAIN = 8
"""Longest reformulation chain followed (turns after the first)."""

STATE_SCHEMA = pa.schema(
    [
        ("turn_id", pa.string()),
        ("user_id", pa.string()),
        ("household_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("pattern", pa.string()),
        ("rewritten_pattern", pa.string()),
        ("organic", pa.bool_()),
        ("defect", pa.bool_()),
        ("rephrase_of", pa.string()),
        ("domain", pa.string()),
    ]
)
"""One row per turn after delexicalization: what the steps below read."""

# The input query: per turn, what the user said (before any rewrite), whether the defect
# detector thinks it failed, which earlier turn it reformulates, and what was acted on.
INPUT_SQL = """
SELECT t.turn_id, t.user_id, t.household_id, t.timestamp AS ts,
       coalesce(t.rewrite.original_text, t.text) AS said,
       t.rewrite.rewritten_text AS rewritten,
       {join_unresolved} AS unresolved,
       {first_entity} AS entity_id,
       d.p_defect AS p_defect,
       r.rephrase_of AS rephrase_of
FROM turns t
JOIN defects d ON d.turn_id = t.turn_id
LEFT JOIN rephrases r ON r.turn_id = t.turn_id
WHERE coalesce(t.nlu.matcher, '') NOT IN ('teach', 'taught')
"""
"""Teaching turns ("the big light is the reading lamp", "forget study mode": matcher ``teach``)
and runs of taught routines (matcher ``taught``) are not requests to rewrite, nor fixes of one."""

DIALECT = {
    "duckdb": {
        "join_unresolved": "array_to_string(t.er.unresolved, chr(31))",
        "first_entity": "t.er.resolved[1].entity_id",
    },
    "spark": {
        "join_unresolved": "array_join(t.er.unresolved, char(31))",
        # try_: Spark 4 runs in ANSI mode, where element_at of an empty list is an error.
        "first_entity": "try_element_at(t.er.resolved, 1).entity_id",
    },
}
"""The two expressions whose spelling differs between DuckDB and Spark SQL."""

_MOVE_DESTINATION = "m.dst NOT IN ('__success__', '__failure__')"

STEPS: list[tuple[str, str]] = [
    # The reformulation that followed a turn: the earliest turn that says it rephrases it.
    (
        "links",
        """
        SELECT prev_id, next_id FROM (
          SELECT rephrase_of AS prev_id, turn_id AS next_id,
                 row_number() OVER (PARTITION BY rephrase_of ORDER BY ts, turn_id) AS rn
          FROM states WHERE rephrase_of IS NOT NULL
        ) x WHERE rn = 1
        """,
    ),
    # One Markov step per organic turn: success, failure (nobody tried again), or the pattern
    # of the reformulation (what the user said next, even if that turn was then rewritten).
    (
        "moves",
        """
        SELECT a.turn_id, a.user_id, a.household_id, a.pattern AS src,
               CASE WHEN NOT a.defect THEN '__success__'
                    WHEN l.next_id IS NULL THEN '__failure__'
                    ELSE b.pattern END AS dst
        FROM states a
        LEFT JOIN links l ON l.prev_id = a.turn_id
        LEFT JOIN states b ON b.turn_id = l.next_id
        WHERE a.organic
        """,
    ),
    (
        "edges",
        "SELECT src, dst, count(*) AS n FROM moves GROUP BY src, dst",
    ),
    (
        "state_support",
        """
        SELECT src AS pattern, count(DISTINCT user_id) AS users,
               count(DISTINCT household_id) AS households
        FROM moves GROUP BY src
        """,
    ),
    (
        "state_domains",
        """
        SELECT pattern, domain, count(*) AS n FROM states
        WHERE organic AND NOT defect AND domain IS NOT NULL GROUP BY pattern, domain
        """,
    ),
    (
        "hops_1",
        f"""
        SELECT m.turn_id AS origin, m.user_id, m.household_id, m.src, l.next_id AS cur
        FROM moves m JOIN links l ON l.prev_id = m.turn_id
        WHERE {_MOVE_DESTINATION}
        """,
    ),
]
"""Statements run in order; each creates the named table from the ones before."""

HOP_SQL = f"""
SELECT h.origin, h.user_id, h.household_id, h.src, l.next_id AS cur
FROM hops_{{prev}} h
JOIN moves m ON m.turn_id = h.cur
JOIN links l ON l.prev_id = h.cur
WHERE {_MOVE_DESTINATION}
"""
"""One more step along every chain (run until no chain continues or :data:`MAX_CHAIN`)."""

PAIRS_SQL = """
SELECT h.src, b.pattern AS dst, count(*) AS n,
       count(DISTINCT h.user_id) AS users, count(DISTINCT h.household_id) AS households
FROM ({hops}) h JOIN states b ON b.turn_id = h.cur
WHERE b.organic
GROUP BY h.src, b.pattern
"""
"""Every (pattern, later reformulation in the same chain) pair with its distinct users."""

DEPLOYED_SQL = """
SELECT pattern AS src, rewritten_pattern AS dst, count(*) AS n,
       sum(CASE WHEN defect THEN 0 ELSE 1 END) AS success, count(DISTINCT user_id) AS users
FROM states WHERE NOT organic GROUP BY pattern, rewritten_pattern
"""
"""Outcomes of turns that were already rewritten, per (source, target) pattern."""

RANGE_SQL = """
SELECT count(*) AS turns, sum(CASE WHEN organic THEN 1 ELSE 0 END) AS organic,
       count(DISTINCT user_id) AS users, count(DISTINCT household_id) AS households,
       min(ts) AS first, max(ts) AS last
FROM states
"""

Delex = Callable[[pa.RecordBatch], pa.RecordBatch]
"""Turns a batch of input rows into a batch of :data:`STATE_SCHEMA` rows."""


class Engine(Protocol):
    """What the miner needs of an engine."""

    name: str

    def load_states(self, delex: Delex) -> None:
        """Read the logs, delexicalize every turn, register the ``states`` table."""

    def homes(self) -> pa.Table:
        """``home_id``, ``config`` (JSON) of every home the logs know."""

    def create(self, name: str, sql: str) -> int:
        """Create table ``name`` from ``sql``; return its row count."""

    def fetch(self, sql: str) -> pa.Table:
        """Run ``sql`` and return the (small) result."""

    def close(self) -> None:
        """Release resources."""


def run_steps(engine: Engine, progress: Callable[[str], None] | None = None) -> dict[str, pa.Table]:
    """Run :data:`STEPS` and the chain walk; return the aggregates the miner needs."""
    say = progress or (lambda _m: None)
    for name, sql in STEPS:
        rows = engine.create(name, sql)
        say(f"{name}: {rows:,} rows")
    depth = 1
    while depth < MAX_CHAIN:
        rows = engine.create(f"hops_{depth + 1}", HOP_SQL.format(prev=depth))
        if rows == 0:
            break
        depth += 1
    hops = " UNION ALL ".join(f"SELECT * FROM hops_{d}" for d in range(1, depth + 1))
    say(f"chains followed to depth {depth}")
    return {
        "edges": engine.fetch("SELECT src, dst, n FROM edges ORDER BY src, dst"),
        "support": engine.fetch("SELECT * FROM state_support ORDER BY pattern"),
        "domains": engine.fetch("SELECT * FROM state_domains ORDER BY pattern, domain"),
        "pairs": engine.fetch(f"SELECT * FROM ({PAIRS_SQL.format(hops=hops)}) p ORDER BY src, dst"),
        "deployed": engine.fetch(f"SELECT * FROM ({DEPLOYED_SQL}) d ORDER BY src, dst"),
        "range": engine.fetch(RANGE_SQL),
    }


# --- DuckDB ---------------------------------------------------------------------------------------


class DuckDbEngine:
    """Mining inside the store's own DuckDB file (read-only; scratch tables live in memory)."""

    name = "duckdb"

    def __init__(self, store: Store, batch_rows: int = 200_000) -> None:
        self.store = store
        self.con = store.cursor()
        self.batch_rows = batch_rows
        counts = {
            table: int(self.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
            for table in ("turns", "defects")
        }
        if counts["turns"] and not counts["defects"]:
            raise StoreError(
                f"the store has {counts['turns']:,} turns but no defect or rephrase signals: "
                "run `selflearn signals` before mining"
            )

    def load_states(self, delex: Delex) -> None:
        sql = INPUT_SQL.format(**DIALECT["duckdb"])
        reader = self.con.sql(sql).to_arrow_reader(self.batch_rows)
        batches = [delex(batch) for batch in _batches(reader)]
        states = pa.Table.from_batches(batches, schema=STATE_SCHEMA)
        self.con.register("states_arrow", states)
        self.con.execute("CREATE OR REPLACE TEMP TABLE states AS SELECT * FROM states_arrow")
        self.con.unregister("states_arrow")

    def homes(self) -> pa.Table:
        return self.con.sql("SELECT home_id, config FROM homes ORDER BY home_id").to_arrow_table()

    def create(self, name: str, sql: str) -> int:
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
        return int(self.con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0])

    def fetch(self, sql: str) -> pa.Table:
        return utc(self.con.sql(sql).to_arrow_table())

    def close(self) -> None:
        self.con.close()


def utc(table: pa.Table) -> pa.Table:
    """``table`` with every timestamp column labelled UTC (same instants): DuckDB labels them
    with the machine's time zone, Spark with the session's, and the report must not differ."""
    fields = [
        pa.field(f.name, pa.timestamp(f.type.unit, tz="UTC"), f.nullable)
        if pa.types.is_timestamp(f.type) and f.type.tz is not None
        else f
        for f in table.schema
    ]
    schema = pa.schema(fields)
    return table if schema.equals(table.schema) else table.cast(schema)


def _batches(reader: Any) -> Iterator[pa.RecordBatch]:
    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return


# --- Spark ----------------------------------------------------------------------------------------


SPARK_TABLES = ("turns", "defects", "rephrases", "homes")
"""The store tables the Spark engine reads, as ``<name>.parquet`` under its data folder
(simulation truth is never among them)."""


def export_for_spark(
    store: Store,
    folder: str | Path,
    batch_rows: int = 200_000,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Write the tables the Spark engine reads (:data:`SPARK_TABLES`) to ``folder/<name>.parquet``,
    streaming (a million turns never sit in memory at once); returns the row count per table.
    Copy the folder to HDFS or object storage to mine on a cluster. ``progress(rows written,
    rows of all the tables)`` is called after every batch."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    con = store.cursor()
    try:
        turns = int(con.execute("SELECT count(*) FROM turns").fetchall()[0][0])
        defects = int(con.execute("SELECT count(*) FROM defects").fetchall()[0][0])
        if turns and not defects:
            raise StoreError(
                f"the store has {turns:,} turns but no defect or rephrase signals: "
                "run `selflearn signals` before mining"
            )
        counts: dict[str, int] = {}
        total = sum(int(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]) for t in SPARK_TABLES)
        written = 0
        if progress is not None:
            progress(0, total)
        for table in SPARK_TABLES:
            reader = con.sql(f"SELECT * FROM {table}").to_arrow_reader(batch_rows)
            path = out / f"{table}.parquet"
            partial = path.with_name(path.name + ".partial")
            rows = 0
            with pq.ParquetWriter(str(partial), reader.schema) as writer:
                for batch in _batches(reader):
                    writer.write_batch(batch)
                    rows += batch.num_rows
                    written += batch.num_rows
                    if progress is not None:
                        progress(written, total)
            partial.replace(path)
            counts[table] = rows
        return counts
    finally:
        con.close()


def spark_inputs_missing(folder: str | Path) -> list[str]:
    """The :data:`SPARK_TABLES` whose Parquet file is not in the local ``folder``."""
    return [t for t in SPARK_TABLES if not (Path(folder) / f"{t}.parquet").exists()]


def local_session(master: str = "local[2]", shuffle_partitions: int = 8) -> Any:
    """A Spark session in local mode set up for mining: Python workers run this interpreter,
    timestamps are UTC, no web UI or progress bars, only errors logged. Returns the active
    session when there is one (Spark allows one per process)."""
    # Workers must run this interpreter (where selflearn is installed), not the first
    # `python3` on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    spark = (
        _builder()
        .master(master)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@dataclass
class SparkEngine:
    """Mining on Apache Spark over Parquet exports of the store (:func:`export_for_spark`): the
    ``turns``, ``defects``, ``rephrases`` and ``homes`` tables as ``<name>.parquet`` files or
    folders under ``data_dir`` (a local path, or any URI Spark reads: ``hdfs://``, ``s3a://``).

    ``master`` is ``local[2]`` by default (:func:`local_session`), and the session is stopped on
    :meth:`close`. With ``master=None`` the session already active in the process is used, or
    the one ``spark-submit`` configures (cluster, resources, Python of the executors); it is left
    running."""

    data_dir: str | Path
    master: str | None = "local[2]"
    name: str = "spark"
    spark: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        base = str(self.data_dir).rstrip("/")
        if "://" not in base:
            missing = spark_inputs_missing(base)
            if missing:
                raise ConfigError(
                    f"{base} lacks {', '.join(m + '.parquet' for m in missing)}; write them with "
                    "`selflearn mine --engine spark --store STORE --parquet-dir DIR` (exports first)"
                )
        if self.master and self.master.startswith("local"):
            self.spark = local_session(self.master)
        else:
            self.spark = _session(self.master)
        # Report timestamps (first/last turn) and the chain order by time must not depend on
        # the cluster's time zone.
        self.spark.conf.set("spark.sql.session.timeZone", "UTC")
        for table in SPARK_TABLES:
            self.spark.read.parquet(f"{base}/{table}.parquet").createOrReplaceTempView(table)

    def load_states(self, delex: Delex) -> None:
        frame = self.spark.sql(INPUT_SQL.format(**DIALECT["spark"]))
        # The delexicalizer is the costly part and runs per input partition: one Parquet file
        # gives few partitions, so spread the turns over every core Spark has.
        cores = int(self.spark.sparkContext.defaultParallelism)
        if frame.rdd.getNumPartitions() < cores:
            frame = frame.repartition(cores)

        def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in batches:
                yield delex(batch)

        # Materialized once and cut from its lineage (so the Python delexicalizer never runs
        # twice), like every table below.
        states = frame.mapInArrow(run, _spark_schema(STATE_SCHEMA)).localCheckpoint()
        states.createOrReplaceTempView("states")

    def homes(self) -> pa.Table:
        return self.fetch("SELECT home_id, config FROM homes ORDER BY home_id")

    def create(self, name: str, sql: str) -> int:
        # localCheckpoint rather than cache: the chain walk stacks each hop on the one before,
        # and a cached plan is still re-analysed in full at every step (quadratic planning).
        frame = self.spark.sql(sql).localCheckpoint()
        frame.createOrReplaceTempView(name)
        return int(frame.count())

    def fetch(self, sql: str) -> pa.Table:
        return utc(self.spark.sql(sql).toArrow())

    def close(self) -> None:
        for name in self.spark.catalog.listTables():
            if name.isTemporary:
                self.spark.catalog.dropTempView(name.name)
        if self.master:
            self.spark.stop()


def _builder() -> Any:
    need = "the Spark engine needs pyspark and pandas: pip install 'selflearn[spark]'"
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise DependencyError(need) from exc
    if importlib.util.find_spec("pandas") is None:  # mapInArrow needs it, and says so late
        raise DependencyError(need)
    return SparkSession.builder.appName("selflearn-mine")


def _session(master: str | None) -> Any:
    builder = _builder()
    return (builder.master(master) if master else builder).getOrCreate()


def _spark_schema(schema: pa.Schema) -> Any:
    from pyspark.sql import types as T

    kinds = {
        pa.string(): T.StringType(),
        pa.bool_(): T.BooleanType(),
        pa.timestamp("us", tz="UTC"): T.TimestampType(),
    }
    return T.StructType([T.StructField(f.name, kinds[f.type], True) for f in schema])
