"""The evaluation API: named populations, cached simulations, A/B replay and result files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selflearn.cli import app
from selflearn.core.errors import ConfigError
from selflearn.core.store import Store
from selflearn.evaluate import POPULATIONS, Replay, population, write_results
from selflearn.evaluate.cache import population_store, simulation_fingerprint, store_is_current
from selflearn.evaluate.signals import score_signals, signals_are_scored
from selflearn.mining import DuckDbEngine, MiningConfig, RewriteMiner

TINY = replace(POPULATIONS["mining-seen"], name="tiny", households=3, days=0.5, asr="exact")


def test_populations_never_share_households_across_train_and_evaluation() -> None:
    train = {
        (p.prefix, p.seed) for p in POPULATIONS.values() if p.split == "train" and "replay" not in p.used_by
    }
    held = {(p.prefix, p.seed) for p in POPULATIONS.values() if p.split == "test"}
    assert train and held and not train & held
    assert population("held-out").config(households=7, rewrite_when="before").households == 7
    with pytest.raises(ConfigError, match="unknown population 'nope'; known: train, test"):
        population("nope")


def test_a_cached_store_is_reused_and_rebuilt_when_its_fingerprint_changes(tmp_path: Path) -> None:
    path = population_store(tmp_path / "tiny.duckdb", TINY.config(workers=1))
    assert store_is_current(path, "exact")
    built = path.stat().st_mtime_ns
    assert population_store(path, TINY.config(workers=1)) == path and path.stat().st_mtime_ns == built
    (path.with_suffix(".duckdb.asr")).write_text("exact sim/0\n")  # simulated by an older simulator
    assert not store_is_current(path, "exact")
    population_store(path, TINY.config(workers=1))
    assert path.stat().st_mtime_ns != built
    assert (path.with_suffix(".duckdb.asr")).read_text().strip() == simulation_fingerprint("exact")
    with Store(path) as store:
        assert not signals_are_scored(store)
        assert score_signals(store, None).startswith("pairwise lexical")
        assert signals_are_scored(store) and store.count("sim_truth") == store.count("turns")


def test_ab_replay_scores_control_and_a_table_arm_on_the_same_households(tmp_path: Path) -> None:
    store = population_store(tmp_path / "logs.duckdb", replace(TINY, households=8, days=2).config(workers=1))
    with Store(store) as s:
        score_signals(s)
        table = RewriteMiner(MiningConfig(min_users=1, min_households=1)).fit(DuckDbEngine(s)).mined()
    folder = table.save(tmp_path / "table")
    replay = Replay(TINY, tmp_path / "cache", workers=1)
    stats = replay.score(["control", "table"], folder)
    assert stats["control"].rewritten == 0 and stats["control"].turns > 0
    summary = stats["table"].summary()
    assert summary["rewritten"] == stats["table"].rewritten and 0 <= summary["defect_rate"] <= 1
    assert summary["wins"] + summary["losses"] <= summary["rewritten"]
    # A second call reads the cached folders instead of simulating again.
    control = replay.arm("control")
    stamp = (control / "manifest.json").stat().st_mtime_ns
    assert replay.arm("control") == control and (control / "manifest.json").stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="needs a rewriter folder"):
        replay.arm("global")
    with pytest.raises(ConfigError, match="unknown arm"):
        replay.arm("treatment", folder)


def test_results_record_the_command_machine_and_figures(tmp_path: Path) -> None:
    path = write_results(
        "demo", {"defect_rate": 0.42}, folder=tmp_path, command="python bench/demo.py", seconds=3
    )
    data = json.loads(path.read_text())
    assert data["figures"] == {"defect_rate": 0.42} and data["command"] == "python bench/demo.py"
    assert data["machine"]["cores"] >= 1 and data["machine"]["packages"]["hassil"]
    assert data["simulation_version"].startswith("sim/") and data["date"]


def test_the_cli_lists_populations_and_checks_a_learner_before_simulating(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["evaluate", "populations"])
    assert res.exit_code == 0 and "held-out-clean" in res.stdout and "ev*" in res.stdout
    res = runner.invoke(
        app, ["evaluate", "ab", "seen", "--rewriter", str(tmp_path), "--cache-dir", str(tmp_path)]
    )
    assert isinstance(res.exception, ConfigError) and "is not a saved rewriter" in str(res.exception)
    assert not any(tmp_path.iterdir())  # nothing was simulated
