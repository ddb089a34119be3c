"""Failure point features, the fast way and the turn-by-turn way: the same table, the same predictions.

The fast path reruns each distinct n-best alternative once (per home, satellite area and text;
in forked worker processes when there are many) and scores the closest domain sentences of all
requests together; the reference reruns every turn's alternatives in turn and searches one
request at a time, with the gazetteer's own fuzzy searches (the NLU's faster ones are checked
against them). Both run cold here (nothing remembered from a previous run)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import selflearn.fpi.nbest as nbest
from selflearn import SimulationConfig, Store, simulate
from selflearn.fpi.features import FEATURES, fpi_features
from selflearn.fpi.language import domain_language
from selflearn.fpi.model import FpiModel, truth_labels


def _cold() -> None:
    domain_language().forget()
    nbest.forget()


def _same(a: pa.Table, b: pa.Table) -> None:
    assert a.column_names == b.column_names and a.num_rows == b.num_rows
    for name in a.column_names:
        left, right = a.column(name).to_pylist(), b.column(name).to_pylist()
        assert left == right, name  # floats equal to the bit (NaN only where both are null)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fpi-speed")
    simulate(SimulationConfig(households=3, days=2, seed=5, household_prefix="fs"), folder / "sim")
    with Store(folder / "sim.duckdb") as store:
        store.ingest([folder / "sim"])
    return folder / "sim.duckdb"


@pytest.fixture(scope="module")
def tables(small: Path) -> dict[str, pa.Table]:
    """The reference table, the fast one on one core, and the fast one with forked workers."""
    out = {}
    with Store(small, read_only=True) as store:
        _cold()
        out["per_turn"] = fpi_features(store, per_turn=True)
        _cold()
        out["fast"] = fpi_features(store, workers=1)
        _cold()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(nbest, "PARALLEL_MIN_RERUNS", 1)  # fork even for a small store
            patch.setattr(nbest, "_CHUNK", 7)
            out["forked"] = fpi_features(store, workers=2)
        out["warm"] = fpi_features(store, workers=2)  # everything remembered from the run before
    return out


def test_the_fast_path_gives_the_per_turn_features(tables: dict[str, pa.Table]) -> None:
    reference = tables["per_turn"]
    rerun = np.asarray(reference.column("alt_n").to_numpy(zero_copy_only=False), dtype=float)
    assert reference.num_rows > 200 and (~np.isnan(rerun)).sum() > 100  # alternatives were rerun
    assert np.nansum(reference.column("alt_success").to_numpy(zero_copy_only=False)) > 0
    for name in ("fast", "forked", "warm"):
        _same(tables[name], reference)


def test_the_fast_path_gives_the_per_turn_predictions(small: Path, tables: dict[str, pa.Table]) -> None:
    with Store(small, read_only=True) as store:
        labels = truth_labels(store, tables["per_turn"].column("turn_id"))
    model = FpiModel(params={"min_data_in_leaf": 5}, num_rounds=30, text_dims=0)
    model.fit_features(tables["per_turn"], labels)
    reference = model.predict(tables["per_turn"])
    for name in ("fast", "forked"):
        pred = model.predict(tables[name])
        assert list(pred.labels) == list(reference.labels)
        assert np.array_equal(pred.proba, reference.proba)
    assert len(FEATURES) == model.feature_matrix(tables["fast"]).shape[1]


def test_predicting_on_two_threads_gives_the_one_thread_probabilities(
    small: Path, tables: dict[str, pa.Table], monkeypatch: pytest.MonkeyPatch
) -> None:
    import selflearn.fpi.model as fpi_model

    with Store(small, read_only=True) as store:
        labels = truth_labels(store, tables["per_turn"].column("turn_id"))
    model = FpiModel(params={"min_data_in_leaf": 5}, num_rounds=30, text_dims=0)
    model.fit_features(tables["per_turn"], labels)
    monkeypatch.setattr(fpi_model, "PARALLEL_PREDICT_ROWS", 10**9)
    one = model.predict_proba(tables["per_turn"])
    monkeypatch.setattr(fpi_model, "PARALLEL_PREDICT_ROWS", 1)
    monkeypatch.setattr(fpi_model, "default_workers", lambda: 2)
    assert np.array_equal(model.predict_proba(tables["per_turn"]), one)


def test_each_distinct_rerun_runs_once(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[str] = []
    rerun = nbest._rerun

    def counted(state: object, context: str | None, text: str) -> nbest.Outcome:
        runs.append(text)
        return rerun(state, context, text)  # type: ignore[arg-type]

    monkeypatch.setattr(nbest, "_rerun", counted)
    with Store(small, read_only=True) as store:
        nbest.OUTCOMES.clear()
        fpi_features(store, workers=1)
        assert runs and len(runs) == len(nbest.OUTCOMES)
        first = len(runs)
        fpi_features(store, workers=1)
    assert len(runs) == first  # the second run remembers every outcome


def test_nearest_many_answers_as_nearest_does() -> None:
    lang = domain_language()
    requests = [
        "turn on the <name>",
        "set the <name> to <num> percent",
        "what is the weather like",
        "please the the off kitchen",
        "x",
        "turn on the <name>",
    ]
    lang.forget()
    batched = lang.nearest_many(requests)
    lang.forget()
    assert batched == {r: lang.nearest(r.split()) for r in requests}


def test_the_nlu_fuzzy_searches_answer_as_the_gazetteer_does(
    small: Path, tables: dict[str, pa.Table]
) -> None:
    """:class:`selflearn.assistant.nlu._FuzzySearch` (rapidfuzz, lengths pruned) against the
    gazetteer's own ``ChoiceBatch.extract``, on every word window of the store's alternatives
    and of random word salad, on each choice as it is and with its last letter changed, with
    the keyword arguments the tagger passes and a few others."""
    from gazetteer_matcher import GazetteerMatcher

    from selflearn.assistant.nlu import _FuzzySearch
    from selflearn.core.home import Home

    with Store(small, read_only=True) as store:
        row = store.query("SELECT home_id, config FROM homes ORDER BY home_id LIMIT 1").to_pylist()[0]
    home = Home.from_dict({**json.loads(row["config"]), "home_id": row["home_id"]})
    matcher = GazetteerMatcher(home=home.to_gazetteer())
    texts = [t for alts in tables["per_turn"].column("asr_alt_texts").to_pylist() for t in alts or [] if t][
        :300
    ]
    rng = random.Random(3)
    words = [
        "turn",
        "on",
        "of",
        "the",
        "kitchen",
        "lite",
        "lights",
        "set",
        "tern",
        "off",
        "bedroom",
        "to",
        "fifty",
    ]
    texts += [" ".join(rng.choice(words) for _ in range(rng.randint(1, 7))) for _ in range(200)]
    checked = 0
    for batch in (matcher.tagger.action_batch, *matcher.tagger.fuzzy_batches.values()):
        if batch is None:
            continue
        search = _FuzzySearch(batch)
        queries = [(c, len(c.split())) for c in batch.choices]
        queries += [(c[:-1] + "x", len(c.split())) for c in batch.choices if c]
        queries += [("", 0), ("Ünïcödé  Light", 2), ("a", 1)]
        for text in texts:
            w = text.split()
            queries += [
                (" ".join(w[s:e]), e - s) for s in range(len(w)) for e in range(s + 1, min(len(w), s + 6) + 1)
            ]
        for query, tokens in queries:
            for kwargs in (
                {
                    "cutoff": 0.82,
                    "limit": 4,
                    "algorithm": "damerau",
                    "query_tokens": tokens,
                    "extra_tokens": 1,
                },
                {
                    "cutoff": 0.76,
                    "limit": 3,
                    "algorithm": "damerau",
                    "query_tokens": tokens,
                    "extra_tokens": 1,
                },
                {"cutoff": 0.5, "limit": 10, "algorithm": "levenshtein"},
                {"cutoff": 0.0, "limit": 3},
            ):
                assert search._extract(query, **kwargs) == batch.extract(query, **kwargs), (query, kwargs)
                checked += 1
    assert checked > 5000
