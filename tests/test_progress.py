"""Progress on the long jobs (issue 31): the library's ``progress`` callbacks report sensible,
non-decreasing counts that reach their total, or every stage in order; the CLI's bars go to
stderr, only on a terminal, and every command still runs on a small store."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from selflearn import AssistantConfig, SimulationConfig, Store, simulate
from selflearn.cli import app, common
from selflearn.fpi import model as fpi_model
from selflearn.mining import DuckDbEngine, MiningConfig, RewriteMiner
from selflearn.mining.engines import SPARK_TABLES, export_for_spark
from selflearn.mining.miner import FIT_STEPS
from selflearn.rewrite import FitConfig, KnowledgeConfig, Rewriter
from selflearn.rewrite.fit import TRAIN_STAGES
from selflearn.rewrite.scope import FIT_STAGES as SCOPE_STAGES
from selflearn.rewrite.scope import ScopeModel
from selflearn.signals.defect import FIT_STAGES as DEFECT_STAGES
from selflearn.signals.defect import DefectModel, score_defects, score_steps
from selflearn.signals.rephrase import PairwiseRephraseBaseline, score_rephrases

runner = CliRunner()


def _counts_reach_total(calls: list[tuple[int, int]]) -> None:
    """Non-empty, one total, done non-decreasing within [0, total], ending at the total."""
    assert calls
    totals = {total for _, total in calls}
    assert len(totals) == 1, calls
    total = totals.pop()
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[0] >= 0 and done[-1] == total, calls


def _in_order(seen: list[str], stages: tuple[str, ...]) -> None:
    """Every stage named once, in the declared order."""
    assert seen == list(stages), seen


# --- the CLI helpers --------------------------------------------------------------------------------


@pytest.fixture()
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The CLI's stderr console as a terminal writing into a buffer (where bars are drawn)."""
    buffer = io.StringIO()
    monkeypatch.setattr(common, "console", Console(file=buffer, force_terminal=True, width=120))
    yield buffer


def test_the_bars_are_drawn_on_the_stderr_console_of_a_terminal(terminal: io.StringIO) -> None:
    with common._counting("counting things") as update:
        for done in range(1, 4):
            update(done, 3)
    with common._stages("staging", ("one", "two [x]")) as start:
        start("one")
        start("two [x]")  # rich markup in a stage name is shown, not interpreted
        start("unknown")  # named, counts nothing, no error
    with common._staged_counting({"a": "first stage", "b": "second stage"}) as update_stage:
        update_stage("a", 0, 1)
        update_stage("b", 5, 10)
    with common._steps("stepping", 2, echo=True) as say:
        say("step one done")
        say("step two done")
    text = terminal.getvalue()
    for shown in (
        "counting things",
        "3/3",
        "staging",
        "2/2",
        "2/2 second stage",
        "stepping",
        "step one done",
    ):
        assert shown in text, shown


def test_the_bars_are_off_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(common, "console", Console(file=buffer, force_terminal=False))
    with common._counting("counting things") as update:
        update(1, 1)
    with common._steps("stepping", 1, echo=True) as say:
        say("logged all the same")
    assert buffer.getvalue() == "logged all the same\n"


# --- the library: a small simulated store -----------------------------------------------------------


@dataclass
class Logs:
    """A small simulated store with its friction signals, and what its making reported."""

    path: Path
    simulated: list[tuple[int, int]] = field(default_factory=list)
    ingested: list[int] = field(default_factory=list)
    rephrases: list[tuple[int, int]] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    turns: int = 0
    read: int = 0


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Logs:
    work = tmp_path_factory.mktemp("progress")
    config = SimulationConfig(
        households=16,
        days=1,
        seed=5,
        household_prefix="pg",
        phrasing_split="train",
        workers=1,
        assistant=AssistantConfig(asr="exact"),
    )
    found = Logs(work / "logs.duckdb")
    simulate(config, work / "sim", progress=lambda done, total: found.simulated.append((done, total)))
    with Store(found.path) as store:
        report = store.ingest([work / "sim"], progress=found.ingested.append)
        found.read = report.read
        score_rephrases(
            store,
            PairwiseRephraseBaseline("lexical"),
            batch=200,
            progress=lambda done, total: found.rephrases.append((done, total)),
        )
        score_defects(store, progress=found.defects.append)
        found.turns = store.count("turns")
    return found


def _copy(logs: Logs, tmp_path: Path) -> Path:
    path = tmp_path / "logs.duckdb"
    shutil.copy(logs.path, path)
    return path


@pytest.mark.slow
def test_simulating_ingesting_and_scoring_signals_report_their_progress(logs: Logs) -> None:
    _counts_reach_total(logs.simulated)
    assert logs.simulated[-1] == (16, 16)
    assert logs.ingested and logs.ingested == sorted(logs.ingested) and logs.ingested[-1] == logs.read
    _counts_reach_total(logs.rephrases)
    assert logs.rephrases[-1][1] == logs.turns and len(logs.rephrases) > 1  # batches of 200
    assert len(logs.defects) == score_steps(None) and logs.defects[-1].startswith("scored")


@pytest.mark.slow
def test_training_the_defect_and_scope_models_names_every_stage(logs: Logs) -> None:
    with Store(logs.path, read_only=True) as store:
        seen: list[str] = []
        DefectModel().fit(store, progress=seen.append)
        _in_order(seen, DEFECT_STAGES)
        seen = []
        ScopeModel().fit(store, progress=seen.append)
        _in_order(seen, SCOPE_STAGES)


@pytest.mark.slow
def test_mining_narrates_exactly_its_steps(logs: Logs) -> None:
    with Store(logs.path, read_only=True) as store:
        lines: list[str] = []
        RewriteMiner(MiningConfig(min_users=1, min_households=1)).fit(
            DuckDbEngine(store), progress=lines.append
        )
    assert len(lines) == FIT_STEPS and lines[0].startswith("delexicalized") and lines[-1].startswith("chain:")


@pytest.mark.slow
def test_exporting_for_spark_counts_the_rows_of_every_table(logs: Logs, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    with Store(logs.path, read_only=True) as store:
        written = export_for_spark(
            store, tmp_path / "parquet", batch_rows=100, progress=lambda d, t: calls.append((d, t))
        )
    _counts_reach_total(calls)
    assert calls[-1][1] == sum(written.values()) and set(written) == set(SPARK_TABLES)


@pytest.mark.slow
def test_the_failure_point_model_names_every_stage(logs: Logs, tmp_path: Path) -> None:
    with Store(logs.path, read_only=True) as store:
        seen: list[str] = []
        fpi_model.FpiModel(num_rounds=10, text_dims=0).fit(store, progress=seen.append)
    _in_order(seen, tuple(s for s in fpi_model.FIT_STAGES if s != "text"))
    with Store(_copy(logs, tmp_path)) as store:
        seen = []
        fpi_model.score_fpi(store, progress=seen.append)
    _in_order(seen, fpi_model.SCORE_STAGES)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_training_the_rewriter_reports_every_stage_and_counts_within_each(logs: Logs, workers: int) -> None:
    calls: list[tuple[str, int, int]] = []
    config = FitConfig(knowledge=KnowledgeConfig(min_users=2), workers=workers)
    with Store(logs.path, read_only=True) as store:
        Rewriter(training=config).fit(store, progress=lambda *call: calls.append(call))
    stages = [stage for stage, _, _ in calls]
    assert stages == sorted(stages, key=TRAIN_STAGES.index)  # in order, none comes back
    assert list(dict.fromkeys(stages)) == list(TRAIN_STAGES)

    def counts(stage: str) -> list[tuple[int, int]]:
        return [(done, total) for name, done, total in calls if name == stage]

    assert counts("read") == counts("knowledge") == [(0, 1)]  # a start, nothing to count
    _counts_reach_total(counts("replay"))
    assert counts("replay")[-1] == (logs.turns, logs.turns)
    _counts_reach_total(counts("ranker"))
    assert counts("ranker")[-1] == (config.calibration_folds, config.calibration_folds)


# --- the CLI: every command still runs, and stdout carries only its result ------------------------


@pytest.mark.slow
def test_the_commands_with_a_bar_run_on_a_small_store(
    logs: Logs, tmp_path: Path, terminal: io.StringIO
) -> None:
    store = str(_copy(logs, tmp_path))
    res = runner.invoke(app, ["signals", "--store", store])
    assert res.exit_code == 0, res.output
    assert "defects: scored" in res.stdout and "scoring defects" not in res.stdout
    res = runner.invoke(app, ["mine", "--store", store, "--out", str(tmp_path / "table"), "-k", "1"])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("mined ") and "delexicalized" not in res.stdout
    for args in (
        ["train", "defect", "--store", store, "--out", str(tmp_path / "defect")],
        ["train", "rewriter", "--store", store, "--out", str(tmp_path / "rw"), "-k", "2", "--workers", "1"],
        ["train", "scope", "--store", store, "--rewriter", str(tmp_path / "rw")],
        ["fpi", "train", "--store", store, "--out", str(tmp_path / "fpi"), "--text-dims", "0"],
        ["fpi", "predict", "--store", store, "--model", str(tmp_path / "fpi")],
    ):
        res = runner.invoke(app, args)
        assert res.exit_code == 0, (args, res.output)
        assert "training the" not in res.stdout and "predicting failure points" not in res.stdout, args
    drawn = terminal.getvalue()
    for bar in (
        "detecting rephrases",
        "scoring defects",
        "mining",
        "training the defect model",
        "4/4 training and calibrating the ranker",
        "training the scope model",
        "training the failure point model",
        "predicting failure points",
    ):
        assert bar in drawn, bar


def test_evaluate_build_simulates_a_population_under_a_bar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, terminal: io.StringIO
) -> None:
    from selflearn.evaluate.populations import POPULATIONS

    tiny = replace(POPULATIONS["mining-seen"], name="tiny", households=2, days=0.25, asr="exact")
    monkeypatch.setitem(POPULATIONS, "tiny", tiny)
    args = ["evaluate", "build", "tiny", "--cache-dir", str(tmp_path), "--workers", "1"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == str(tmp_path / "tiny.duckdb")
    assert "simulating tiny" in terminal.getvalue()
    # Cached: nothing to simulate, and the same single line on stdout.
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and res.stdout.strip() == str(tmp_path / "tiny.duckdb"), res.output
