from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from selflearn.assistant.asr import channel_fingerprint
from selflearn.cli import app
from selflearn.simulation.simulator import SIMULATION_VERSION

runner = CliRunner()


def test_simulate_ingest_stats(tmp_path: Path) -> None:
    sim = tmp_path / "sim"
    res = runner.invoke(
        app, ["simulate", "--out", str(sim), "--households", "2", "--days", "0.5", "--asr", "exact"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["turns"] > 0
    store = tmp_path / "s.duckdb"
    res = runner.invoke(app, ["ingest", str(sim), "--store", str(store)])
    assert res.exit_code == 0, res.output
    assert "quarantined 0" in res.stdout
    res = runner.invoke(app, ["stats", "--store", str(store), "--json"])
    assert res.exit_code == 0, res.output
    stats = json.loads(res.stdout)
    assert stats["turns"] > 0 and stats["defect_rate"] is not None


def test_help_lists_commands() -> None:
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for command in ("simulate", "ingest", "stats", "demo", "export"):
        assert command in res.stdout


def test_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [
            *("demo", "--out", str(tmp_path), "--households", "4", "--days", "1"),
            *("--replay-households", "2", "--workers", "1"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "rewrite table:" in res.stdout and "wins / losses" in res.stdout
    assert (tmp_path / "rewrites" / "model.json").exists()
    assert (tmp_path / "rewriter" / "model.json").exists()
    manifest = json.loads((tmp_path / "replay" / "manifest.json").read_text())
    assert manifest["config"]["assistant"]["rewrite_when"] == "on_failure"
    # The manifest names the channel the traffic went through and the simulator's version, so
    # cached runs can be checked.
    assert manifest["asr_channel"] == channel_fingerprint(manifest["config"]["assistant"]["asr"])
    assert manifest["simulation_version"] == SIMULATION_VERSION
    # `selflearn rewrite` passes what the caller knows about the request to the rewriter.
    rewriter = str(tmp_path / "rewriter")
    res = runner.invoke(app, ["rewrite", "kill the lights", "-r", rewriter, "--worked"])
    assert res.exit_code == 0, res.output
    assert "reports that the original worked" in res.stdout
    args = ["rewrite", "kill the lights", "-r", rewriter, "--failed", "--nbest", "a", "--nbest", "b"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and '"rewritten"' in res.stdout, res.output


def test_train_rewriter_defaults_to_the_library_target_ratio() -> None:
    """The CLI states its default literally (so `--help` does not import the trainer); it must
    not drift from FitConfig's."""
    import typer.main

    from selflearn.rewrite import DEFAULT_TARGET_RATIO, FitConfig

    train = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    rewriter = train.commands["rewriter"]
    option = next(p for p in rewriter.params if p.name == "target_ratio")
    assert option.default == DEFAULT_TARGET_RATIO == FitConfig().target_ratio == 15.0


def test_main_reports_an_error_as_one_line(tmp_path: Path) -> None:
    """`main()` turns a SelflearnError into one `error:` line on stderr and exit code 2."""
    missing = tmp_path / "missing"
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    args = ["simulate", "--out", str(tmp_path / "out"), "--rewrite-table", str(missing)]
    proc = subprocess.run(
        [sys.executable, "-m", "selflearn", *args],
        capture_output=True,
        text=True,
        env={**env, "NO_COLOR": "1"},
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and str(missing) in lines[0], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_train_rewriter_on_a_single_home_writes_a_personal_only_rewriter(tmp_path: Path) -> None:
    """One Home Assistant install logs one household: too few for the global layer and the
    ranker, so training says so and writes the layers it can use (table, personal)."""
    from selflearn.core.store import Store
    from selflearn.rewrite.rewriter import Rewriter
    from tests.conftest import turn_dict

    store = tmp_path / "one-home.duckdb"
    with Store(store) as s:
        s.ingest_records([turn_dict(f"t{n}", timestamp=f"2026-01-05T08:00:{n:02d}+00:00") for n in range(5)])
    res = runner.invoke(app, ["train", "rewriter", "--store", str(store), "--out", str(tmp_path / "rw")])
    assert res.exit_code == 0, res.output
    assert "1 household(s) logged" in res.output and "personal layer only" in res.output
    rewriter = Rewriter.load(tmp_path / "rw")
    assert rewriter.knowledge_ is None and rewriter.ranker_ is None and rewriter.table_ is None
