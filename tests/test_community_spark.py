"""The community aggregator on Spark (docs/community.md): the same merge and the same DP step as on
DuckDB, the engine the only difference (local mode; one session for the module, as in
tests/test_mining_spark.py).

The DP noise takes no seed (python-dp's secure generator): each DP assertion below is one whose
failure probability is far below 1e-6."""

from __future__ import annotations

import importlib.util
import json
import random
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from selflearn.cli import app as cli_app
from selflearn.community.aggregate import (
    AggregateConfig,
    AggregateReport,
    AggregationEngine,
    DuckDbAggregation,
    SparkAggregation,
    aggregate,
    evidence_table,
)
from selflearn.community.contribution import Contribution, Evidence, refusal, write_contribution
from selflearn.community.keys import key_id, public_hex
from selflearn.core.errors import ConfigError, DependencyError


def _java() -> bool:
    if shutil.which("java") is None:
        return False
    return subprocess.run(["java", "-version"], capture_output=True, check=False).returncode == 0


def _spark_missing() -> str | None:
    if importlib.util.find_spec("pyspark") is None or importlib.util.find_spec("pandas") is None:
        return "the Spark aggregator needs pyspark (pip install -e '.[spark,community]')"
    if not _java():
        return "Spark needs a Java runtime (java on PATH)"
    return None


PERIOD = "2026-W02"
KILL = ("kill the lights in the {area}", "turn off the lights in the {area}")
FLIP = ("turn on the lights in the {area}", "turn off the lights in the {area}")
ONE = ("set the {name} to {number}", "set the {name} brightness to {number}")
CROWD = 300
# 300 installs, each sending KILL (helped) and FLIP (a polarity flip: refused before the DP step);
# install 0 also sends ONE. At most 3 pairs per install: at epsilon 1 (half of it to selection)
# and delta 1e-6, truncated-geometric selection keeps a pair 300 installs sent with probability 1
# to double precision (python-dp's probability_of_keep) and ONE with at most 1e-6.
CONFIG = AggregateConfig(epsilon=1.0, delta=1e-6, max_patterns=3)
BOUNDS = {"max_patterns": 3, "max_count": 1}


def _key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(random.Random(seed).randbytes(32))


def _crowd() -> list[Contribution]:
    out = []
    for i in range(CROWD):
        key = _key(i)
        records = [Evidence(*KILL, rescues=1), Evidence(*FLIP, rescues=1)]
        if i == 0:
            records.append(Evidence(*ONE, rescues=1))
        out.append(Contribution(key_id(key), public_hex(key), PERIOD, BOUNDS, records))
    return out


def _mixed(seed: int = 7) -> list[Contribution]:
    """Installs with varied pairs and help, some of them sending two files for the period."""
    rng = random.Random(seed)
    pairs = [KILL, ONE, ("whats the temperature in the {area}", "what is the temperature in the {area}")]
    pairs += [(f"switch the {{name}} to {n} please", f"set the {{name}} to {n}") for n in ("low", "high")]
    out = []
    for i in range(40):
        for _ in range(1 + (i % 5 == 0)):  # every fifth install sends two files
            records = [
                Evidence(a, b, rescues=rng.randint(0, 1), failed=rng.randint(0, 1), wins=rng.randint(0, 1))
                for a, b in rng.sample(pairs, rng.randint(1, len(pairs)))
            ]
            out.append(Contribution(f"install-{i:03d}", "0" * 64, PERIOD, {}, records))
    return out


@pytest.fixture(scope="module")
def spark(spark: Any) -> Any:
    """The run's Spark session (tests/conftest.py); every test that uses it is skipped without
    Spark."""
    why = _spark_missing()
    if why is not None:
        pytest.skip(why)
    return spark


def test_the_crowd_sends_one_refused_pair() -> None:
    assert refusal(*FLIP) is not None, "the crowd's second pair must be one the community refuses"
    assert refusal(*KILL) is None and refusal(*ONE) is None
    report = AggregateReport()
    table = evidence_table(_crowd(), report)
    assert report.records == 2 * CROWD + 1
    assert sum(report.refused.values()) == CROWD
    pairs = zip(table.column("failing").to_pylist(), table.column("fixing").to_pylist(), strict=True)
    assert sorted(set(pairs)) == sorted({KILL, ONE}) and table.num_rows == CROWD + 1


def test_nothing_left_to_release_releases_nothing() -> None:
    """Every record refused: an empty evidence table gives an empty release (pipeline-dp itself
    raises on an empty local collection)."""
    only_flips = [Contribution("install-0", "0" * 64, PERIOD, BOUNDS, [Evidence(*FLIP, rescues=1)])]
    report = aggregate(only_flips, CONFIG, DuckDbAggregation())
    assert (report.records, sum(report.refused.values()), report.released) == (1, 1, [])


def _rows(engine: AggregationEngine, contributions: list[Contribution]) -> list[Any]:
    rows = engine.merged(evidence_table(contributions), CONFIG.max_patterns)
    return rows.collect() if hasattr(rows, "collect") else list(rows)


@pytest.mark.slow
def test_spark_merges_the_same_rows_as_duckdb(spark: Any) -> None:
    contributions = _mixed()
    duck = _rows(DuckDbAggregation(), contributions)
    on_spark = _rows(SparkAggregation(spark), contributions)
    assert len(duck) > 40, "installs with several pairs"
    assert any(0 < h < 1 for _, _, h in duck), "an install that sent two files is averaged"
    per_install = Counter(i for i, _, _ in duck)
    assert max(per_install.values()) == CONFIG.max_patterns, "bounded to the pairs one install may send"
    assert on_spark == duck, "same rows, same order, same types"


@pytest.fixture(scope="module")
def releases(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The crowd released once on each engine: on DuckDB through :func:`aggregate`, on Spark through
    ``selflearn community aggregate --engine spark`` over the crowd's signed files (``--master
    none``: the session the module started, as under spark-submit)."""
    crowd = _crowd()
    duck = aggregate(crowd, CONFIG, DuckDbAggregation())
    folder = tmp_path_factory.mktemp("crowd")
    (folder / "contributions").mkdir()
    for n, c in enumerate(crowd):
        write_contribution(c, _key(n), folder / "contributions" / f"install-{n:04d}.jsonl")
    args = ["community", "aggregate", "-c", str(folder / "contributions"), "--epsilon", str(CONFIG.epsilon)]
    args += ["--delta", str(CONFIG.delta), "--max-patterns", str(CONFIG.max_patterns)]
    args += ["--out", str(folder / "release"), "--key", str(folder / "aggregator.key")]
    res = CliRunner().invoke(cli_app, [*args, "--engine", "spark", "--master", "none"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert (summary["engine"], summary["contributions"]) == ("spark", CROWD)
    assert spark.sparkContext._jsc is not None, "--master none leaves the session running"
    lines = (folder / "release" / "released.jsonl").read_text().splitlines()
    return {
        "duckdb": {
            "released": [(r.failing, r.fixing, r.installs, r.helped) for r in duck.released],
            "refused": sum(duck.refused.values()),
        },
        "spark": {
            "released": [
                (r["failing"], r["fixing"], r["installs"], r["helped"]) for r in map(json.loads, lines)
            ],
            "refused": sum(summary["refused_records"].values()),
        },
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["duckdb", "spark"])
def test_release_keeps_the_crowds_pair_and_not_one_installs(
    releases: dict[str, dict[str, Any]], name: str
) -> None:
    released = releases[name]["released"]
    assert [(failing, fixing) for failing, fixing, _, _ in released] == [KILL]
    ((_, _, installs, helped),) = released
    # Laplace noise of scale max_patterns / (epsilon / 4) = 12: off by 200 with probability 6e-8.
    assert abs(installs - CROWD) < 200
    assert 0.0 <= helped <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["duckdb", "spark"])
def test_refused_pair_is_never_released(releases: dict[str, dict[str, Any]], name: str) -> None:
    assert releases[name]["refused"] == CROWD
    assert FLIP not in {(failing, fixing) for failing, fixing, _, _ in releases[name]["released"]}


def test_cli_names_the_extra_when_pyspark_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "contributions"
    folder.mkdir()
    key = _key(1)
    c = Contribution(key_id(key), public_hex(key), PERIOD, BOUNDS, [Evidence(*KILL)])
    write_contribution(c, key, folder / "install.jsonl")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyspark" else real(name, *a)
    )
    args = ["community", "aggregate", "-c", str(folder), "--epsilon", "1", "--delta", "1e-6"]
    args += ["--out", str(tmp_path / "release"), "--key", str(tmp_path / "agg.key"), "--engine", "spark"]
    res = CliRunner().invoke(cli_app, args)
    assert isinstance(res.exception, DependencyError), res.output
    assert "pip install 'selflearn[spark,community]'" in str(res.exception)
    assert not (tmp_path / "release").exists()


def test_cli_refuses_an_unknown_engine(tmp_path: Path) -> None:
    args = ["community", "aggregate", "-c", str(tmp_path), "--epsilon", "1", "--delta", "1e-6"]
    res = CliRunner().invoke(cli_app, [*args, "--out", str(tmp_path / "r"), "--engine", "flink"])
    assert isinstance(res.exception, ConfigError) and "--engine must be duckdb or spark" in str(res.exception)
