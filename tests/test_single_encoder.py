"""The single-encoder ranker: which logged candidates it learns from, that the exported network
learns them and serves the same scores after loading, and that it re-reads only the first few
candidates of the LightGBM ranker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from selflearn.core.errors import ConfigError, DataError
from selflearn.rewrite.cross_encoder import SingleEncoder, reread, tagged
from selflearn.rewrite.cross_encoder_fit import (
    Labelled,
    SingleEncoderConfig,
    fit_single_encoder,
    training_pairs,
)
from selflearn.rewrite.fit import Query
from tests.conftest import tiny_bert


def query(labels: list[int], fixed: bool = True, reviewed: bool = False) -> Query:
    n = len(labels)
    return Query(
        turn_id="t",
        household="h",
        x=np.zeros((n, 1)),
        intents=["HassTurnOff"] * n,
        labels=np.array(labels, dtype=np.int8),
        failed=True,
        defect=fixed,
        fix_intent="HassTurnOff" if fixed else None,
        own_intent=None,
        text="kill the lights",
        candidates=tuple(f"candidate {j}" for j in range(n)),
        reviewed=reviewed,
        home=np.array([j % 2 == 0 for j in range(n)]),
    )


def test_it_learns_from_fixed_requests_right_candidates_and_the_hardest_wrong_ones() -> None:
    pairs = training_pairs([query([0, 1, 0, 0, 0, 0, 0])], SingleEncoderConfig(negatives=3))
    by_text = {p.candidate: p.label for p in pairs}
    assert by_text[tagged("candidate 1", False)] == 1
    # the first two wrong ones in retrieval order, and one of the others at random
    assert by_text[tagged("candidate 0", True)] == 0 and by_text[tagged("candidate 2", True)] == 0
    assert len(pairs) == 4 and sum(p.label for p in pairs) == 1
    # a request nobody fixed teaches nothing (the logs cannot say which candidate was right) ...
    assert training_pairs([query([0, 1, 0], fixed=False)]) == []
    # ... unless a person reviewed it; and a request without a right candidate teaches nothing
    assert len(training_pairs([query([1, 0], fixed=False, reviewed=True)])) == 2
    assert training_pairs([query([0, 0, 0])]) == []


def test_settings_and_data_it_cannot_train_on_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="layers"):
        SingleEncoderConfig(layers=7)
    with pytest.raises(ConfigError, match="negatives"):
        SingleEncoderConfig(negatives=0)
    with pytest.raises(DataError, match="right and wrong"):
        fit_single_encoder([Labelled("a", "home : b", 1)], tmp_path / "se")


def test_the_exported_network_learns_its_pairs_and_loads_the_same(tmp_path: Path) -> None:
    """A tiny BERT trained the way the single encoder is: it ranks each request's right candidate
    first, and ONNX Runtime gives the same scores after loading."""
    base = tiny_bert(tmp_path / "tiny", layers=2)
    cases = [
        ("kill the lights", "turn off the lights", "turn on the lights"),
        ("shut the blinds", "close the blinds", "open the blinds"),
    ]
    pairs = [
        Labelled(request, tagged(candidate, True), label)
        for request, right, wrong in cases
        for candidate, label in ((right, 1), (wrong, 0))
    ]
    scorer = fit_single_encoder(
        pairs * 8,
        tmp_path / "se",
        SingleEncoderConfig(layers=2, epochs=6, batch_size=8, learning_rate=2e-3),
        base=base,
        say=lambda _: None,
    )
    for request, right, wrong in cases:
        p = scorer.score(request, [right, wrong], [True, True])
        assert p.shape == (2,) and p[0] > p[1], (request, p)
    loaded = SingleEncoder.load(tmp_path / "se")
    assert loaded.metadata["pairs"] == 32 and loaded.metadata["positives"] == 16
    request, right, wrong = cases[0]
    assert np.allclose(
        loaded.score(request, [right, wrong], [True, True]),
        scorer.score(request, [right, wrong], [True, True]),
        atol=1e-6,
    )
    # it re-reads the LightGBM ranker's first two only: the third is never picked
    again = reread(
        loaded, request, [wrong, "what time is it", right], [True] * 3, np.array([0.5, 0.4, 0.1]), 0.5, top=2
    )
    assert again.best in (0, 1) and again.read == (0, 1)
    assert again.score == pytest.approx(again.meaning * 0.5)


def test_a_missing_single_encoder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="single-encoder"):
        SingleEncoder.load(tmp_path / "nothing")
