"""The Spark engine mines the same rewrite table as DuckDB from the same logs (local mode).

One Spark session serves the module (it takes seconds to start); the engines under test attach
to it with ``master=None``, as they would under ``spark-submit``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from selflearn import AssistantConfig, Home, SimulationConfig, Store, simulate
from selflearn.cli import app
from selflearn.mining import DuckDbEngine, MiningConfig, RewriteMiner, SparkEngine
from selflearn.mining.engines import SPARK_TABLES, export_for_spark
from selflearn.rewrite import RewriteTable
from selflearn.signals.defect import score_defects
from selflearn.signals.rephrase import PairwiseRephraseBaseline, score_rephrases


def _java() -> bool:
    if shutil.which("java") is None:
        return False
    return subprocess.run(["java", "-version"], capture_output=True, check=False).returncode == 0


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("pyspark") is None or importlib.util.find_spec("pandas") is None,
        reason="the Spark engine needs pyspark and pandas (pip install -e '.[spark]')",
    ),
    pytest.mark.skipif(not _java(), reason="the Spark engine needs a Java runtime (java on PATH)"),
]

# Loose thresholds so that a few simulated homes give a non-empty table.
LOOSE = MiningConfig(min_users=1, min_households=1, min_source_turns=1, min_target_turns=1, margin=0.0)
T0 = datetime(2026, 1, 8, 9, 0, tzinfo=UTC)


def _rewritten_sessions(store: Store) -> list[dict[str, Any]]:
    """Turns a deployed rewrite already changed (the Spark input reads ``rewrite.original_text``
    and the miner scores deployed rewrites), said in the simulated homes with their area names."""
    rows: list[dict[str, Any]] = []
    homes = store.query("SELECT home_id, config FROM homes ORDER BY home_id").to_pylist()
    for n, h in enumerate(homes):
        home = Home.from_dict(json.loads(h["config"]))
        area = home.areas[n % len(home.areas)].name.lower()
        session = f"{h['home_id']}-rw"
        when = T0 + timedelta(hours=n)
        failed = n % 2 == 1
        for i, (said, text) in enumerate(
            [(f"kill the {area} lights", f"turn off the {area} lights"), (None, f"lights off in the {area}")]
        ):
            row: dict[str, Any] = {
                "record_type": "turn",
                "turn_id": f"{session}-{i}",
                "session_id": session,
                "user_id": f"{h['home_id']}-rw-user",
                "household_id": h["home_id"],
                "timestamp": (when + timedelta(seconds=6 * i)).isoformat(),
                "device": {"device_id": f"{h['home_id']}-rw-speaker"},
                "text": text,
                "er": {"ok": not (failed and i == 0), "unresolved": []},
            }
            if said is not None:
                row["rewrite"] = {"original_text": said, "rewritten_text": text, "layer": "precomputed"}
            rows.append(row)
    return rows


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("spark")
    config = SimulationConfig(
        households=6, days=2, seed=11, household_prefix="sk", assistant=AssistantConfig(asr="exact")
    )
    simulate(config, folder / "sim")
    path = folder / "logs.duckdb"
    with Store(path) as store:
        store.ingest([folder / "sim"])
        extra = folder / "rewritten.jsonl"
        extra.write_text("".join(json.dumps(r) + "\n" for r in _rewritten_sessions(store)))
        report = store.ingest([extra])
        assert report.quarantined == 0, report.summary()
        score_defects(store)
        score_rephrases(store, PairwiseRephraseBaseline("lexical"))
    return path


@pytest.fixture(scope="module")
def parquet_dir(store_path: Path) -> Path:
    folder = store_path.parent / "parquet"
    with Store(store_path, read_only=True) as store:
        written = export_for_spark(store, folder)
        for table, rows in written.items():
            assert rows == store.query(f"SELECT count(*) AS n FROM {table}").column("n")[0].as_py() > 0
    assert sorted(written) == sorted(SPARK_TABLES)
    return folder


class Recording:
    """An engine that keeps every aggregate it hands the miner, to compare engines step by step."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.name = engine.name
        self.fetched: list[pa.Table] = []

    def load_states(self, delex: Any) -> None:
        self.engine.load_states(delex)

    def homes(self) -> pa.Table:
        return self.engine.homes()

    def create(self, name: str, sql: str) -> int:
        return int(self.engine.create(name, sql))

    def fetch(self, sql: str) -> pa.Table:
        table = self.engine.fetch(sql)
        self.fetched.append(table)
        return table

    def close(self) -> None:
        self.engine.close()


@pytest.fixture(scope="module")
def mined(store_path: Path, parquet_dir: Path, spark: Any) -> dict[str, tuple[RewriteTable, Recording]]:
    with Store(store_path, read_only=True) as store:
        duck = Recording(DuckDbEngine(store))
        duck_table = RewriteMiner(LOOSE).fit(duck).mined()
    spark_engine = Recording(SparkEngine(parquet_dir, master=None))
    try:
        spark_table = RewriteMiner(LOOSE).fit(spark_engine).mined()
    finally:
        spark_engine.close()
    return {"duckdb": (duck_table, duck), "spark": (spark_table, spark_engine)}


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    # Values, not types: DuckDB sums are 128-bit decimals, Spark's are 64-bit integers.
    return [{k: int(v) if isinstance(v, Decimal) else v for k, v in row.items()} for row in table.to_pylist()]


def test_spark_mines_the_same_table_as_duckdb(mined: dict[str, tuple[RewriteTable, Recording]]) -> None:
    duck, spark = mined["duckdb"][0], mined["spark"][0]
    assert duck.num_rows > 0, "the small population must give some rewrites"

    def key(row: dict[str, Any]) -> tuple[str, str]:
        return row["source"], row["target"]

    assert sorted(spark.rows(), key=key) == sorted(duck.rows(), key=key)
    assert spark.rows() == duck.rows(), "same rows in the same order"
    assert spark.version == duck.version


def test_spark_report_matches_duckdb(mined: dict[str, tuple[RewriteTable, Recording]]) -> None:
    duck = dict(mined["duckdb"][0].metadata["report"])
    spark = dict(mined["spark"][0].metadata["report"])
    assert (duck.pop("engine"), spark.pop("engine")) == ("duckdb", "spark")
    duck.pop("seconds")
    spark.pop("seconds")
    assert spark == duck
    assert duck["turns"] > 0 and duck["organic_turns"] < duck["turns"], "rewritten turns are in the input"
    assert duck["first"].endswith("+00:00")


def test_every_aggregate_agrees(mined: dict[str, tuple[RewriteTable, Recording]]) -> None:
    duck, spark = mined["duckdb"][1], mined["spark"][1]
    assert len(duck.fetched) == len(spark.fetched)
    for a, b in zip(duck.fetched, spark.fetched, strict=True):
        assert a.column_names == b.column_names
        assert _rows(b) == _rows(a), a.column_names
    deployed = next(t for t in duck.fetched if "success" in t.column_names)
    assert deployed.num_rows > 0, "the deployed-rewrite query saw the rewritten turns"


def test_cli_exports_the_store_for_spark(
    store_path: Path,
    spark: Any,
    mined: dict[str, tuple[RewriteTable, Recording]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``mine --engine spark --parquet-dir D`` writes D from the store when D lacks the files and
    hands D to the Spark engine (the mining itself is the one compared above, not run again)."""
    folder, out = tmp_path / "export", tmp_path / "rewrites"
    seen: list[SparkEngine] = []

    def fake_fit(self: RewriteMiner, engine: Any, progress: Any = None) -> RewriteMiner:
        assert isinstance(engine, SparkEngine) and Path(engine.data_dir) == folder
        assert engine.fetch("SELECT count(*) AS n FROM turns").column("n")[0].as_py() > 0
        seen.append(engine)
        self.table_ = mined["spark"][0]
        return self

    monkeypatch.setattr(RewriteMiner, "fit", fake_fit)
    args = ["mine", "--engine", "spark", "--master", "none", "--store", str(store_path)]
    res = CliRunner().invoke(app, [*args, "--parquet-dir", str(folder), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(seen) == 1
    assert res.stdout.startswith("exported ")
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{t}.parquet" for t in SPARK_TABLES)
    turns = pq.read_metadata(folder / "turns.parquet").num_rows
    assert turns == mined["duckdb"][0].metadata["report"]["turns"]
    assert RewriteTable.load(out).version == mined["duckdb"][0].version
    # Present files are used as they are, not written again.
    res = CliRunner().invoke(app, [*args, "--parquet-dir", str(folder), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "exported" not in res.stdout


def test_spark_computes_the_same_community_contribution_as_duckdb(
    store_path: Path, parquet_dir: Path, spark: Any
) -> None:
    """``selflearn community contribute`` runs the miner's steps on either engine: the same pairs
    and counts (docs/community.md)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from selflearn.community.contribution import ContributionConfig, build_contribution, period_of

    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    config = ContributionConfig(max_patterns=100, max_count=3)
    with Store(store_path, read_only=True) as store:
        last = store.query("SELECT max(timestamp) AS t FROM turns").column("t")[0].as_py()
        duck = build_contribution(DuckDbEngine(store), key, period_of(last), config)
    engine = SparkEngine(parquet_dir, master=None)
    try:
        on_spark = build_contribution(engine, key, period_of(last), config)
    finally:
        engine.close()
    assert duck.records and on_spark.records == duck.records and on_spark.dropped == duck.dropped
