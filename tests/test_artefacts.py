"""The learner contract (selflearn.core.artefacts): one shape for every learned component, and
saved folders that fail to load with errors naming the folder, what is wrong and what to run."""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

import pytest

from selflearn.core.artefacts import (
    DESCRIPTION,
    FORMAT_PATTERN,
    check_format,
    format_name,
    read_description,
    reading,
    write_description,
)
from selflearn.core.errors import ConfigError
from selflearn.signals.rephrase import ContextualRephraseDetector, PairwiseRephraseBaseline

LEARNERS: list[tuple[str, str, str | None]] = [
    # (module, class, the module's format constant or None for a class attribute FORMAT)
    ("selflearn.signals.defect", "DefectModel", "MODEL_FORMAT"),
    ("selflearn.signals.rephrase", "PairwiseRephraseBaseline", None),
    ("selflearn.signals.rephrase", "ContextualRephraseDetector", None),
    ("selflearn.fpi.model", "FpiModel", "MODEL_FORMAT"),
    ("selflearn.fpi.text", "TextProjection", "FORMAT"),
    ("selflearn.rewrite.rewriter", "Rewriter", "FORMAT"),
    ("selflearn.rewrite.knowledge", "Knowledge", "FORMAT"),
    ("selflearn.rewrite.ranker", "Ranker", "FORMAT"),
    ("selflearn.rewrite.intents", "IntentModel", "FORMAT"),
    ("selflearn.rewrite.scope", "ScopeModel", "FORMAT"),
    ("selflearn.mining.miner", "RewriteMiner", None),
    ("selflearn.assistant.asr.confusion", "ConfusionModel", "FORMAT"),
]
"""Every component that learns from data."""

SAVED_PARTS: list[tuple[str, str, str | None]] = [
    ("selflearn.rewrite.table", "RewriteTable", "FORMAT"),  # what RewriteMiner learns and saves
    ("selflearn.rewrite.index", "VectorIndex", "FORMAT"),  # built from vectors, saved in Knowledge
]
"""Saved components that are not fitted themselves."""


def _resolve(module: str, name: str, constant: str | None) -> tuple[type, str | None]:
    mod = importlib.import_module(module)
    cls = getattr(mod, name)
    fmt = getattr(mod, constant) if constant else getattr(cls, "FORMAT", None)
    return cls, fmt


@pytest.mark.parametrize(("module", "name", "constant"), LEARNERS)
def test_every_learner_fits_an_instance_and_returns_it(module: str, name: str, constant: str | None) -> None:
    cls, _ = _resolve(module, name, constant)
    fit = inspect.getattr_static(cls, "fit")
    assert inspect.isfunction(fit), f"{name}.fit must be an instance method, not {type(fit).__name__}"
    assert inspect.signature(fit).return_annotation == name, f"{name}.fit must return self"


@pytest.mark.parametrize(("module", "name", "constant"), LEARNERS + SAVED_PARTS)
def test_every_saved_component_saves_a_folder_and_loads_one(
    module: str, name: str, constant: str | None
) -> None:
    cls, fmt = _resolve(module, name, constant)
    save, load = inspect.getattr_static(cls, "save"), inspect.getattr_static(cls, "load")
    assert list(inspect.signature(save).parameters)[:2] == ["self", "folder"]
    assert inspect.signature(save).return_annotation == "Path", f"{name}.save must return the folder"
    assert isinstance(load, classmethod), f"{name}.load must be a classmethod"
    assert list(inspect.signature(load.__func__).parameters)[:2] == ["cls", "folder"]
    if name != "RewriteMiner":  # it saves the RewriteTable's format
        assert fmt is not None and FORMAT_PATTERN.fullmatch(fmt), f"{name}: format {fmt!r}"


def test_formats_are_distinct() -> None:
    formats = [_resolve(*entry)[1] for entry in LEARNERS + SAVED_PARTS if entry[1] != "RewriteMiner"]
    assert len(set(formats)) == len(formats)


def test_format_names_have_one_scheme() -> None:
    assert format_name("ranker", 3) == "selflearn.ranker.v3"
    with pytest.raises(ValueError, match="bad component name"):
        format_name("Ranker Model", 1)


def test_description_round_trips_with_the_format_first(tmp_path: Path) -> None:
    out = write_description(tmp_path / "w", "selflearn.widget.v2", {"format": "ignored", "size": 3})
    assert out == tmp_path / "w"
    assert list(json.loads((out / DESCRIPTION).read_text())) == ["format", "size"]
    read = read_description(out, "selflearn.widget.v2", "widget")
    assert read == {"format": "selflearn.widget.v2", "size": 3}


def test_reading_names_the_missing_file_and_the_command(tmp_path: Path) -> None:
    with (
        pytest.raises(ConfigError, match=r"is not a saved widget \(missing w.json\); make one with `make w`"),
        reading(tmp_path, "widget", retrain="make w"),
    ):
        (tmp_path / "w.json").read_text()


def test_reading_turns_bad_content_into_a_config_error(tmp_path: Path) -> None:
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


def test_a_folder_saved_before_the_contract_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "ranker.json").write_text('{"format": "rewrite.ranker.gbm.v2"}')
    with pytest.raises(ConfigError, match=r"saved by an earlier selflearn \(ranker.json, no model.json\)"):
        read_description(tmp_path, "selflearn.ranker.v3", "ranker", retrain="selflearn train rewriter")
    with pytest.raises(ConfigError, match=r"is not a saved ranker \(missing model.json\)"):
        read_description(tmp_path / "nowhere", "selflearn.ranker.v3", "ranker")


def test_pairwise_baseline_round_trips_and_names_bad_folders(tmp_path: Path) -> None:
    missing = r"is not a saved pairwise rephrase baseline \(missing model.json\)"
    with pytest.raises(ConfigError, match=missing):
        PairwiseRephraseBaseline.load(tmp_path / "p")
    saved = PairwiseRephraseBaseline("lexical").save(tmp_path / "ok")
    assert PairwiseRephraseBaseline.load(saved) == PairwiseRephraseBaseline("lexical")
    write_description(tmp_path / "bad", PairwiseRephraseBaseline.FORMAT, {"no_such_field": 1})
    with pytest.raises(ConfigError, match="unreadable pairwise rephrase baseline"):
        PairwiseRephraseBaseline.load(tmp_path / "bad")


def test_rephrase_model_without_its_encoder_is_named(tmp_path: Path) -> None:
    write_description(tmp_path, ContextualRephraseDetector.FORMAT, {"threshold": 0.5})
    with pytest.raises(ConfigError, match=r"is not a saved rephrase model \(missing encoder\)"):
        ContextualRephraseDetector.load(tmp_path)
    write_description(tmp_path, "selflearn.rephrase-model.v1", {"threshold": 0.5})
    with pytest.raises(ConfigError, match="retrain with `selflearn train rephrase`"):
        ContextualRephraseDetector.load(tmp_path)


def test_defect_model_errors_say_how_to_make_one(tmp_path: Path) -> None:
    from selflearn.signals.defect import DefectModel

    with pytest.raises(ConfigError, match=r"missing model.json\); make one with `selflearn train defect`"):
        DefectModel.load(tmp_path)
