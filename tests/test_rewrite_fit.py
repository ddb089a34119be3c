"""Training the online rewriter from simulated logs, saving and loading it, and replaying new
households through it behind the NLU (the simulator feeds it the logged turns)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from selflearn import AssistantConfig, SimulationConfig, Store, simulate
from selflearn.core.errors import ConfigError, DataError
from selflearn.core.hooks import RewriteContext
from selflearn.rewrite import FitConfig, KnowledgeConfig, Rewriter, RewriterConfig
from selflearn.rewrite.fit import cross_fitted_scores, intent_codes, replay_queries
from selflearn.rewrite.knowledge import Knowledge
from selflearn.rewrite.logs import read_homes, read_log
from selflearn.rewrite.ranker import calibrate_bagged
from selflearn.signals.defect import score_defects
from selflearn.signals.rephrase import PairwiseRephraseBaseline, score_rephrases

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("rewriter")
    config = SimulationConfig(households=12, days=4, seed=5, household_prefix="fit", phrasing_split="train")
    simulate(config, work / "sim")
    store_path = work / "logs.duckdb"
    with Store(store_path) as store:
        store.ingest([work / "sim"])
        with pytest.raises(DataError, match="selflearn signals"):
            Rewriter().fit(store)
        score_rephrases(store, PairwiseRephraseBaseline("lexical"))
        score_defects(store)
        with pytest.raises(ConfigError, match="calibration_folds must be at least 2"):
            FitConfig(calibration_folds=1)
    with Store(store_path, read_only=True) as store:
        rewriter = Rewriter(training=FitConfig(knowledge=KnowledgeConfig(min_users=2))).fit(store)
        # The folds run in forked processes by default; in this one process, the same rewriter.
        one_process = FitConfig(knowledge=KnowledgeConfig(min_users=2), workers=1)
        alone = Rewriter(training=one_process).fit(store)
    report, alone_report = rewriter.fit_report_, alone.fit_report_
    assert report is not None and alone_report is not None
    assert rewriter.ranker_ is not None and alone.ranker_ is not None
    assert rewriter.ranker_.version == alone.ranker_.version
    # The calibration's own rankers ship: one per calibration fold, each trained without it.
    assert len(rewriter.ranker_.members_) == FitConfig().calibration_folds
    assert len({m.version for m in rewriter.ranker_.members_}) == len(rewriter.ranker_.members_)
    assert (rewriter.ranker_.threshold, rewriter.ranker_.threshold_unknown) == (
        alone.ranker_.threshold,
        alone.ranker_.threshold_unknown,
    )
    assert (report.queries, report.rows, report.calibration, report.curve) == (
        alone_report.queries,
        alone_report.rows,
        alone_report.calibration,
        alone_report.curve,
    )
    assert report.queries > 0 and report.positives > 0
    assert set(report.calibration) == {"known_failed", "unknown"}
    assert rewriter.knowledge_ is not None and len(rewriter.knowledge_) > 0
    rewriter.save(work / "model")
    return work / "model", store_path


def test_saved_rewriter_decides_exactly_as_the_fitted_one(trained: tuple[Path, Path]) -> None:
    folder, store_path = trained
    meta = json.loads((folder / "model.json").read_text())
    assert meta["format"] == "selflearn.rewriter.v2" and meta["knowledge"] and meta["ranker"]
    a, b = Rewriter.load(folder), Rewriter.load(folder)
    with Store(store_path, read_only=True) as store:
        homes = read_homes(store)
        texts = store.query("SELECT text, household_id FROM turns ORDER BY turn_id LIMIT 300").to_pylist()
    for rewriter in (a, b):
        rewriter.homes.update(homes)
    for row in texts:
        ctx = RewriteContext(household_id=row["household_id"], failed=True)
        one, two = a.rewrite_one(row["text"], ctx), b.rewrite_one(row["text"], ctx)
        assert (one.text, one.rewritten, one.layer, round(one.score, 9)) == (
            two.text,
            two.rewritten,
            two.layer,
            round(two.score, 9),
        )
        assert one.elapsed_us >= 0 and (one.rewritten == (one.trace() is not None))


def test_a_lower_ask_threshold_asks_about_guesses_the_rewriter_would_not_act_on(
    trained: tuple[Path, Path],
) -> None:
    folder, store_path = trained
    with Store(store_path, read_only=True) as store:
        homes = read_homes(store)
        rows = store.query(
            "SELECT text, household_id FROM turns WHERE result.status <> 'success' ORDER BY turn_id LIMIT 400"
        ).to_pylist()

    def decisions(config: RewriterConfig) -> list[tuple[str, bool, bool]]:
        rewriter = Rewriter.load(folder, replace(config, personal=False, budget_ms=float("inf")))
        rewriter.homes.update(homes)
        out = []
        for row in rows:
            ctx = RewriteContext(household_id=row["household_id"], failed=True)
            d = rewriter.rewrite_one(row["text"], ctx)
            out.append((d.text, d.rewritten, d.confirm))
        return out

    acting = decisions(RewriterConfig())
    at_bar = decisions(RewriterConfig(confirm="all"))
    low = decisions(RewriterConfig(confirm="all", ask_threshold=0.0))
    # Asking at the acting bar changes what happens to a guess, not which guesses are made.
    assert [(t, r) for t, r, _ in at_bar] == [(t, r) for t, r, _ in acting]
    assert all(c == r for _, r, c in at_bar)
    # Below it: every question asked at the bar is still asked, and there are more of them.
    assert all(lo[2] for lo, bar in zip(low, at_bar, strict=True) if bar[2])
    assert sum(c for *_, c in low) > sum(c for *_, c in at_bar)
    # Without asking, the ask threshold changes nothing.
    assert decisions(RewriterConfig(ask_threshold=0.0)) == acting


def test_the_calibration_can_be_recomputed_from_the_saved_rewriter(trained: tuple[Path, Path]) -> None:
    # What bench/experiments/judge_experiment.py relies on: replaying the logs as training does and scoring
    # every request with the saved member trained without it gives back the calibration itself.
    folder, store_path = trained
    rewriter = Rewriter.load(folder)
    assert rewriter.ranker_ is not None and rewriter.embedder is not None
    config = FitConfig(knowledge=KnowledgeConfig(min_users=2))
    with Store(store_path, read_only=True) as store:
        turns, homes = read_log(store, config.knowledge.defect_threshold), read_homes(store)
    full = Knowledge(config.knowledge).fit(turns, homes, rewriter.embedder)
    intents = intent_codes(full)
    assert intents == rewriter.ranker_.intents
    queries = replay_queries(turns, homes, rewriter.embedder, intents, config)
    assert queries and all(q.text and len(q.candidates) == len(q.labels) for q in queries)
    scored = cross_fitted_scores(rewriter.ranker_, queries, known=True)
    assert len(scored.score) == sum(q.failed for q in queries)
    bagged = calibrate_bagged(scored.score, scored.outcome, scored.household, config.target_ratio)
    saved = rewriter.ranker_.meta_["fit"]["calibration"]["known_failed"]
    assert bagged.chosen.threshold == rewriter.ranker_.threshold == saved["threshold"]
    assert (bagged.chosen.wins, bagged.chosen.losses, bagged.chosen.unknown) == (
        saved["wins"],
        saved["losses"],
        saved["unknown"],
    )


def test_train_rewriter_command_reports_both_thresholds(trained: tuple[Path, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from selflearn.cli import app

    _, store_path = trained
    res = CliRunner().invoke(
        app, ["train", "rewriter", "--store", str(store_path), "-k", "2", "--out", str(tmp_path / "rw")]
    )
    assert res.exit_code == 0, res.output
    assert "known failed: threshold" in res.output and "unknown: threshold" in res.output
    assert "4 cross-fitted members" in res.output
    report = json.loads((tmp_path / "rw" / "fit-report.json").read_text())
    assert set(report["calibration"]) == {"known_failed", "unknown"}
    assert Rewriter.load(tmp_path / "rw").ranker_ is not None


def test_a_broken_folder_is_a_clear_error(trained: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is not a saved rewriter \(missing model.json\)"):
        Rewriter.load(tmp_path)
    folder, _ = trained
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text((folder / "model.json").read_text())
    with pytest.raises(ConfigError, match="rewriter knowledge"):
        Rewriter.load(broken)
    # a knowledge folder that lost one of its partitions' row maps: named, not a raw OSError
    shutil.copytree(folder, tmp_path / "partial")
    next((tmp_path / "partial" / "knowledge").glob("rows-*.npy")).unlink()
    with pytest.raises(ConfigError, match=r"is not a saved rewriter knowledge \(missing rows-\d+\.npy\)"):
        Rewriter.load(tmp_path / "partial")
    (broken / "model.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a JSON object"):
        Rewriter.load(broken)
    (broken / "model.json").write_text('{"format": "selflearn.rewriter.v0"}')
    with pytest.raises(ConfigError, match="retrain with `selflearn train rewriter`"):
        Rewriter.load(broken)
    # a folder saved before the one contract says so
    (broken / "model.json").unlink()
    (broken / "rewriter.json").write_text('{"format": "selflearn.rewriter.v1"}')
    with pytest.raises(ConfigError, match=r"saved by an earlier selflearn \(rewriter.json, no model.json\)"):
        Rewriter.load(broken)


def test_replay_behind_the_nlu_is_deterministic_and_learns_per_household(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, _ = trained
    config = SimulationConfig(
        households=3,
        days=2,
        seed=9,
        household_prefix="new",
        phrasing_split="train",
        assistant=AssistantConfig(rewrite_when="on_failure"),
    )
    outputs = []
    for run in ("a", "b"):
        rewriter = Rewriter.load(folder, RewriterConfig(personal=True))
        simulate(config, tmp_path / run, rewriter=rewriter)
        outputs.append(b"".join(p.read_bytes() for p in sorted((tmp_path / run).glob("turns-*.jsonl"))))
        assert set(rewriter.personal.memories) == {"new000000", "new000001", "new000002"}
    assert outputs[0] == outputs[1]
    rewritten = [json.loads(line) for line in outputs[0].splitlines() if b'"rewrite":{' in line]
    for turn in rewritten:  # behind the NLU: only requests that had failed were rewritten
        assert turn["rewrite"]["original_text"] != turn["text"]
        assert turn["rewrite"]["layer"] in ("precomputed", "global", "personal")
