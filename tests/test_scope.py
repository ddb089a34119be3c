"""The scope model: which requests nobody can help with, learned from simulated logs' behaviour
(weak labels only), and a rewriter that then neither rewrites nor asks about them."""

from __future__ import annotations

from pathlib import Path

import pytest

from selflearn.core.errors import ConfigError, DataError
from selflearn.core.hooks import RewriteContext
from selflearn.core.store import Store
from selflearn.rewrite.rewriter import Rewriter, RewriterConfig
from selflearn.rewrite.scope import ScopeModel, weak_labels
from selflearn.rewrite.table import RewriteTable
from selflearn.simulation.simulator import SimulationConfig, simulate


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scope")
    simulate(SimulationConfig(households=8, days=4, seed=3, household_prefix="sc"), folder / "sim")
    path = folder / "s.duckdb"
    with Store(path) as s:
        s.ingest([folder / "sim"])
    return path


def test_weak_labels_come_from_behaviour_and_match_truth_better_than_chance(store: Path) -> None:
    with Store(store, read_only=True) as s:
        data = weak_labels(s)
        truth = {r["turn_id"]: r for r in s.truth().to_pylist()}
        turns = {t.turn_id: t for t in s.turns()}
    assert 0 < int(data.labels.sum()) < len(data.labels) and data.late.any()
    # Evaluation only: unserved texts are out of scope far more often than served ones.
    oos_text = {" ".join(t.text.lower().split()) for tid, t in turns.items() if not truth[tid]["in_scope"]}
    unserved = [x for x, y in zip(data.texts, data.labels, strict=True) if y == 1]
    served = [x for x, y in zip(data.texts, data.labels, strict=True) if y == 0]

    def share(texts: list[str]) -> float:
        return sum(t in oos_text for t in texts) / max(len(texts), 1)

    assert share(unserved) > 3 * share(served)


def test_fit_save_load_and_the_rewriter_skips_out_of_scope_guesses(store: Path, tmp_path: Path) -> None:
    with Store(store, read_only=True) as s:
        model = ScopeModel().fit(s)
    assert model.report_["held_out_served_late_blocked"] <= 0.1
    loaded = ScopeModel.load(model.save(tmp_path / "scope"))
    joke = "tell me a joke about penguins"
    assert loaded.p_out(joke) == pytest.approx(model.p_out(joke), abs=1e-6)
    # A rule that would turn a joke into the time: with the scope model, no rewrite and no question
    # when the model puts the joke out of scope.
    table = RewriteTable.from_rules([("tell me a joke about penguins", "what time is it")])
    rewriter = Rewriter.from_parts(table=table, config=RewriterConfig(confirm="guesses"))
    assert rewriter.rewrite_one(joke, RewriteContext()).rewritten
    rewriter.scope_ = loaded
    loaded.threshold_ = min(loaded.threshold_, loaded.p_out(joke))
    decision = rewriter.rewrite_one(joke, RewriteContext())
    assert not decision.rewritten and "nobody can help" in decision.reasons[-1]
    folder = rewriter.save(tmp_path / "rw")
    assert Rewriter.load(folder).scope_ is not None


def test_a_small_store_still_holds_out_a_household(store: Path, tmp_path: Path) -> None:
    """No household falls in the held-out fold (holdout 0): one is held out anyway, never all;
    a store of one household cannot set the threshold and says so."""
    with Store(store, read_only=True) as s:
        model = ScopeModel(holdout=0.0).fit(s)
    assert model.report_["held_out_served_late_blocked"] is not None
    folder = tmp_path / "one"
    simulate(SimulationConfig(households=1, days=2, seed=5, household_prefix="one"), folder / "sim")
    with Store(folder / "s.duckdb") as s:
        s.ingest([folder / "sim"])
        with pytest.raises(DataError, match="at least two, they hold 1"):
            ScopeModel().fit(s)


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with Store(tmp_path / "empty.duckdb") as s, pytest.raises(DataError, match="no turns"):
        ScopeModel().fit(s)
    with pytest.raises(ConfigError, match="selflearn train scope"):
        ScopeModel.load(tmp_path / "nothing")


def test_train_scope_adds_the_model_to_a_rewriter_folder(store: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from selflearn.cli import app

    table = RewriteTable.from_rules([("a {area}", "b {area}")])
    folder = Rewriter.from_parts(table=table).save(tmp_path / "rw")
    result = CliRunner().invoke(app, ["train", "scope", "--store", str(store), "--rewriter", str(folder)])
    assert result.exit_code == 0, result.output
    assert "trained the scope model" in result.output
    assert Rewriter.load(folder).scope_ is not None
    missing = CliRunner().invoke(app, ["train", "scope", "--store", str(store), "--rewriter", str(tmp_path)])
    assert missing.exit_code != 0 and "no rewriter at" in str(missing.exception or missing.output)
