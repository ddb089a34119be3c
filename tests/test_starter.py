"""``selflearn starter``: a small starter built end to end from the public corpora."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selflearn.cli import app
from selflearn.core.errors import ConfigError
from selflearn.rewrite.rewriter import Rewriter
from selflearn.simulation.corpora import find_data_dir
from selflearn.starter import StarterConfig

pytestmark = pytest.mark.skipif(
    find_data_dir(None) is None, reason="needs the public corpora (../shared/data)"
)


def test_a_small_starter_is_built_and_serves_with_its_ask_bar(tmp_path: Path) -> None:
    out = tmp_path / "starter"
    args = ["starter", "--out", str(out), "--households", "4", "--days", "2", "--ask-threshold", "0.2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "starter.json").read_text())
    assert manifest["households"] == 12 and manifest["turns"] > 100
    assert manifest["recipe"]["nlu"] == "strict" and manifest["recipe"]["ask_threshold"] == 0.2
    rewriter = Rewriter.load(out)
    assert rewriter.config.ask_threshold == 0.2 and rewriter.knowledge_ is not None
    # A second run with the same recipe reuses the simulated store and only retrains.
    again = CliRunner().invoke(app, [*args[:-1], "0"])
    assert again.exit_code == 0, again.output
    assert "reusing the simulated and scored store" in again.output
    assert Rewriter.load(out).config.ask_threshold is None  # 0: the acting bar


def test_starter_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="ask_threshold"):
        StarterConfig(ask_threshold=1.5)
    with pytest.raises(ConfigError, match="nlu"):
        StarterConfig(nlu="fuzzy")  # type: ignore[arg-type]
