"""Saved models and tables fail to load with errors that name the folder and what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selflearn.core.artefacts import check_format, reading
from selflearn.core.errors import ConfigError, DataError
from selflearn.signals.defect import DefectModel
from selflearn.signals.rephrase import ContextualRephraseDetector, PairwiseRephraseBaseline


def test_reading_names_the_missing_file_and_the_command(tmp_path: Path) -> None:
    with (
        pytest.raises(DataError, match=r"is not a saved widget \(missing w.json\); make one with `make w`"),
        reading(tmp_path, "widget", DataError, retrain="make w"),
    ):
        (tmp_path / "w.json").read_text()


def test_reading_turns_bad_content_into_the_callers_error(tmp_path: Path) -> None:
    (tmp_path / "w.json").write_text("{not json")
    with (
        pytest.raises(ConfigError, match=r": unreadable widget: Expecting property name") as info,
        reading(tmp_path, "widget"),
    ):
        json.loads((tmp_path / "w.json").read_text())
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


def test_reading_lets_other_errors_through(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError), reading(tmp_path, "widget"):
        _ = 1 / 0


def test_check_format_says_what_it_found_and_what_it_reads(tmp_path: Path) -> None:
    check_format(tmp_path, {"format": "w.v2"}, "w.v2", "widget")
    with pytest.raises(ConfigError, match=r"widget format 'w.v1' is not 'w.v2': retrain with `make w`"):
        check_format(tmp_path, {"format": "w.v1"}, "w.v2", "widget", retrain="make w")
    with pytest.raises(ConfigError, match="not a JSON object"):
        check_format(tmp_path, ["w.v2"], "w.v2", "widget")


def test_pairwise_baseline_file_errors_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is not a saved pairwise rephrase baseline \(missing p.json\)"):
        PairwiseRephraseBaseline.load(tmp_path / "p.json")
    (tmp_path / "p.json").write_text('{"kind": "pairwise", "no_such_field": 1}')
    with pytest.raises(ConfigError, match="unreadable pairwise rephrase baseline"):
        PairwiseRephraseBaseline.load(tmp_path / "p.json")
    saved = tmp_path / "ok.json"
    PairwiseRephraseBaseline("lexical").save(saved)
    assert PairwiseRephraseBaseline.load(saved) == PairwiseRephraseBaseline("lexical")


def test_rephrase_model_without_its_encoder_is_named(tmp_path: Path) -> None:
    (tmp_path / "meta.json").write_text(json.dumps({"version": ContextualRephraseDetector.VERSION}))
    with pytest.raises(ConfigError, match=r"is not a saved rephrase model \(missing encoder\)"):
        ContextualRephraseDetector.load(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"version": "old"}))
    with pytest.raises(ConfigError, match="retrain with `selflearn train rephrase`"):
        ContextualRephraseDetector.load(tmp_path)


def test_defect_model_errors_say_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing model.json\); make one with `selflearn train defect`"):
        DefectModel.load(tmp_path)
