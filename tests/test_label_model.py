"""The label model (``selflearn.labels.model``): fitted on a tiny store whose turns and labels
the test writes; predictions in the labels layout, save/load round trips, the pretraining
task's synthetic negatives, a store without labels, the turn encoders (static and MiniLM, each
unique text encoded once) and early stopping on held-out households."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from selflearn.core.errors import ConfigError, DataError
from selflearn.core.home import Area, Home
from selflearn.core.store import LABEL_SCHEMA, Store
from selflearn.labels.model import (
    CONTEXT_FLAGS,
    DialogueTurns,
    LabelModel,
    LabelModelConfig,
    Layout,
    PerTurnLabeller,
    TextEncoder,
    contrastive_batch,
    gather,
    held_out,
    text_encoder,
)
from tests.conftest import turn_dict

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
TINY = LabelModelConfig(d_model=32, ff=64, heads=2, epochs=20, pretrain_epochs=2, batch_size=16, seed=1)

SERVED = {
    "turn on the kitchen lights": ("HassTurnOn", {"area": "Kitchen", "domain": "light"}),
    "turn off the kitchen lights": ("HassTurnOff", {"area": "Kitchen", "domain": "light"}),
    "what time is it": ("HassGetCurrentTime", {}),
}
FAILED = {
    "kill the lights in the kitchen": "turn off the kitchen lights",
    "lights on in here please": "turn on the kitchen lights",
}


def _turn(tid: str, home: str, device: str, when: datetime, text: str) -> dict[str, Any]:
    served = SERVED.get(text)
    nlu: dict[str, Any] = (
        {"matched": True, "intent": served[0], "slots": served[1], "confidence": 1.0, "matcher": "strict"}
        if served
        else {"matched": False, "matcher": "none"}
    )
    return turn_dict(
        tid,
        session_id=f"{home}-{device}-{when:%H}",
        household_id=home,
        user_id=f"{home}-u",
        device={"device_id": device, "device_type": "satellite", "area": "Kitchen"},
        timestamp=when.isoformat(),
        text=text,
        asr={"text": text, "confidence": 0.9, "engine": "exact"},
        nlu=nlu,
        er={"ok": bool(served)},
        result={"status": "success" if served else "no_match"},
    )


def build_store(path: Path, labels: bool = True, contradict: bool = False) -> Path:
    """Two homes, 40 turns: served requests, and failed ones each followed 8 s later by the
    paraphrase that worked (labelled with its intent by transfer, one goal with it).
    ``contradict``: home ``h2``'s labels give every request another intent than ``h1``'s."""
    records, rows = [], []
    rng = np.random.default_rng(0)
    n = 0
    for home in ("h1", "h2"):
        when = T0
        for k in range(10):
            when += timedelta(minutes=20)
            if k % 3 == 0:
                failed = list(FAILED)[k % 2]
                fix = FAILED[failed]
                a, b = f"{home}t{n}", f"{home}t{n + 1}"
                records += [
                    _turn(a, home, f"{home}d", when, failed),
                    _turn(b, home, f"{home}d", when + timedelta(seconds=8), fix),
                ]
                intent = SERVED[fix][0]
                rows += [
                    _label(a, a, True, intent, 0.7, "transfer:rephrase"),
                    _label(b, a, True, intent, 0.9),
                ]
                n += 2
            else:
                text = list(SERVED)[int(rng.integers(0, len(SERVED)))]
                tid = f"{home}t{n}"
                records.append(_turn(tid, home, f"{home}d", when, text))
                rows.append(_label(tid, tid, True, SERVED[text][0], 0.9))
                n += 1
    if contradict:
        other = dict(zip(SERVED_INTENTS, [*SERVED_INTENTS[1:], SERVED_INTENTS[0]], strict=True))
        rows = [dict(r, intent=other[r["intent"]]) if r["turn_id"].startswith("h2") else r for r in rows]
    logs = path.with_suffix(".jsonl")
    logs.write_text("".join(json.dumps(r) + "\n" for r in records))
    with Store(path) as store:
        assert store.ingest([logs]).quarantined == 0
        if labels:
            store.save_signals("labels", rows)
    return path


def _label(
    tid: str, goal: str, success: bool, intent: str, confidence: float, source: str = "rule:worked"
) -> dict[str, Any]:
    return {
        "turn_id": tid,
        "goal_id": goal,
        "goal_success": success,
        "intent": intent,
        "slots": [],
        "confidence": confidence,
        "source": source,
        "from_turn_id": None,
        "model": "test",
        "scored_at": T0,
    }


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("label-model") / "logs.duckdb")


@pytest.fixture(scope="module")
def fitted(store_path: Path) -> dict[str, LabelModel | PerTurnLabeller]:
    with Store(store_path, read_only=True) as store:
        return {
            "contextual": LabelModel(TINY).fit(store),
            "per-turn": PerTurnLabeller(TINY).fit(store),
        }


@pytest.mark.parametrize("kind", ["contextual", "per-turn"])
def test_predictions_have_the_labels_layout(
    kind: str, fitted: dict[str, LabelModel | PerTurnLabeller], store_path: Path, tmp_path: Path
) -> None:
    model = fitted[kind]
    with Store(store_path, read_only=True) as store:
        table = model.predict(store)
        proba = model.predict_proba(store)
        turns = store.count("turns")
    assert table.schema == LABEL_SCHEMA.arrow()
    assert table.num_rows == turns == proba.num_rows
    rows = table.to_pylist()
    assert {r["source"] for r in rows} == {f"model:{model.version}"}
    assert all(r["intent"] in SERVED_INTENTS and 0 < r["confidence"] <= 1 for r in rows)
    ids = {r["turn_id"] for r in rows}
    assert all(r["goal_id"] in ids for r in rows)
    # a goal's first turn names it, and the turns of one goal share its success
    success = {r["goal_id"]: r["goal_success"] for r in rows if r["goal_id"] == r["turn_id"]}
    assert all(success[r["goal_id"]] == r["goal_success"] for r in rows)
    # slots only where the NLU served the predicted intent
    assert all(not r["slots"] for r in rows if r["turn_id"] in FAILED_IDS)
    copy = tmp_path / "copy.duckdb"
    build_store(copy, labels=False)
    with Store(copy) as store:  # it can be written as the labels table
        assert store.save_signals("labels", table) == turns


SERVED_INTENTS = tuple(sorted({intent for intent, _ in SERVED.values()}))
FAILED_IDS = {f"{h}t{n}" for h in ("h1", "h2") for n in (0, 4, 8)}


def test_the_model_learns_the_tiny_store(
    fitted: dict[str, LabelModel | PerTurnLabeller], store_path: Path
) -> None:
    with Store(store_path, read_only=True) as store:
        labels = {
            r["turn_id"]: r["intent"] for r in store.query("SELECT turn_id, intent FROM labels").to_pylist()
        }
        got = fitted["contextual"].predict(store).to_pylist()
    right = sum(r["intent"] == labels[r["turn_id"]] for r in got)
    assert right >= 0.7 * len(got)
    report = fitted["contextual"].report_
    assert report.pretrain_accuracy is not None and report.turns == len(got)
    assert fitted["per-turn"].report_.pretrain_accuracy is None


@pytest.mark.parametrize("kind", ["contextual", "per-turn"])
def test_save_and_load_give_identical_predictions(
    kind: str, fitted: dict[str, LabelModel | PerTurnLabeller], store_path: Path, tmp_path: Path
) -> None:
    model = fitted[kind]
    folder = model.save(tmp_path / kind)
    assert (folder / "model.json").exists() and (folder / "weights.pt").exists()
    loaded = type(model).load(folder)
    assert loaded.version == model.version and loaded.config == model.config
    with Store(store_path, read_only=True) as store:
        before, after = model.predict_proba(store), loaded.predict_proba(store)
        labels_before, labels_after = model.predict(store), loaded.predict(store)
    assert before.equals(after)
    drop = ["scored_at"]
    assert labels_before.drop_columns(drop).equals(labels_after.drop_columns(drop))
    other = LabelModel if kind == "per-turn" else PerTurnLabeller
    with pytest.raises(ConfigError, match="format"):
        other.load(folder)


def test_training_is_deterministic(store_path: Path) -> None:
    config = LabelModelConfig(d_model=16, ff=32, heads=2, epochs=1, pretrain_epochs=1, batch_size=16, seed=3)
    with Store(store_path, read_only=True) as store:
        a = LabelModel(config).fit(store)
        b = LabelModel(config).fit(store)
    assert a.version == b.version


def test_synthetic_negatives(store_path: Path) -> None:
    from selflearn.core.embed import StaticEmbedder

    with Store(store_path, read_only=True) as store:
        turns = DialogueTurns.read(store)
    embedder = StaticEmbedder.load()
    layout = Layout.fit(turns, embedder.dim, 8)
    features = layout.features(turns, embedder.encode(turns.said), 300.0)
    windows = turns.windows(2, 3600.0)
    c = windows.shape[1] // 2
    assert (windows[:, c] == np.arange(len(turns))).all()
    # neighbours are of the same device, in time order
    for row in windows:
        present = row[row >= 0]
        assert len({int(turns.stream[i]) for i in present}) == 1
        assert (np.diff(turns.t[present]) >= 0).all()
    plain, pad = gather(features, windows)
    batch = contrastive_batch(features, windows, turns.stream, layout, np.random.default_rng(0), share=0.6)
    kinds = {int(k) for k in batch.kind}
    assert kinds == {0, 1, 2}, "both corruptions and untouched windows"
    assert 0.3 < batch.label.mean() < 0.9
    assert (batch.pad == pad).all()
    response, content, timing = layout.block("response"), layout.content, layout.block("timing")
    for row in range(len(windows)):
        centre, donor = int(windows[row, c]), int(batch.donor[row])
        if batch.kind[row] == 0:
            assert batch.label[row] == 0 and donor == -1
            assert np.array_equal(batch.x[row], plain[row])
            continue
        assert batch.label[row] == 1
        assert turns.stream[donor] != turns.stream[centre], "the donor is of another dialogue"
        if batch.kind[row] == 1:  # the centre turn's response swapped
            assert np.array_equal(batch.x[row, c, response], features[donor, response])
            assert not np.array_equal(batch.x[row, c, response], features[centre, response])
            untouched = np.ones(layout.width, dtype=bool)
            untouched[response] = False
            assert np.array_equal(batch.x[row, c, untouched], plain[row, c, untouched])
            others = [p for p in range(windows.shape[1]) if p != c]
            assert np.array_equal(batch.x[row, others], plain[row, others])
        else:  # the next turn swapped in from another dialogue, its timing kept
            assert windows[row, c + 1] >= 0
            assert np.array_equal(batch.x[row, c + 1, content], features[donor, content])
            assert np.array_equal(batch.x[row, c + 1, timing], plain[row, c + 1, timing])
            assert np.array_equal(batch.x[row, c], plain[row, c])
    assert len(CONTEXT_FLAGS) == 2


def test_a_store_without_labels_names_the_command(tmp_path: Path) -> None:
    path = build_store(tmp_path / "bare.duckdb", labels=False)
    with Store(path, read_only=True) as store, pytest.raises(DataError, match="selflearn label"):
        LabelModel(TINY).fit(store)


def test_unfitted_and_bad_settings() -> None:
    with pytest.raises(ConfigError, match="not trained"):
        LabelModel().save("nowhere")
    with pytest.raises(ConfigError, match="unknown label-model settings"):
        LabelModelConfig.from_dict({"epochs": 1, "colour": "blue"})


def test_the_cli_trains_a_model_that_labels_what_the_rules_left(store_path: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from selflearn.cli import app
    from selflearn.labels.model import ModelLabeler, load_labeller
    from selflearn.labels.rules import read_logged

    run = CliRunner().invoke
    for args, kind in ((["--per-turn"], PerTurnLabeller), ([], LabelModel)):
        folder = tmp_path / kind.__name__
        result = run(app, ["label", "train", "--store", str(store_path), "--out", str(folder), *args])
        assert result.exit_code == 0, result.output
        assert isinstance(load_labeller(folder), kind)
    with Store(store_path, read_only=True) as store:
        turns = read_logged(store)
        labeler = ModelLabeler(load_labeller(tmp_path / "LabelModel"), store, min_confidence=0.0)
        strict = ModelLabeler(load_labeller(tmp_path / "LabelModel"), store, min_confidence=1.01)
    given = labeler.label(turns)
    assert len(given) == len(turns) and all(g is not None and g.source.startswith("model:") for g in given)
    assert strict.label(turns) == [None] * len(turns)  # nothing clears an impossible bar
    # with the home known, a model's label carries the slots its names give in the words said
    assert all(not g.slots for g in given if g is not None)  # the store holds no homes
    kitchen = Home("h", areas=(Area("kitchen", "Kitchen"),))
    labeler.homes = {t.household_id: kitchen for t in turns}
    said = {t.said: g for t, g in zip(turns, labeler.label(turns), strict=True) if g is not None}
    text = "kill the lights in the kitchen"
    assert [(s.slot, s.value, text[s.start : s.end]) for s in said[text].slots] == [
        ("domain", "light", "lights"),
        ("area", "kitchen", "kitchen"),
    ]


# --- turn encoders ------------------------------------------------------------------------------


def counting_encoder(name: str = "static") -> tuple[TextEncoder, list[list[str]]]:
    """The static encoder behind a :class:`TextEncoder` that records what it is asked to embed."""
    static = text_encoder("static")
    calls: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return static.encode(texts)

    return TextEncoder(name, static.dim, embed, "counting"), calls


def test_the_cache_encodes_each_unique_text_once(store_path: Path) -> None:
    encoder, calls = counting_encoder()
    a = encoder.encode(["turn on", "what time is it", "turn on"])
    assert calls == [["turn on", "what time is it"]]
    b = encoder.encode(["what time is it", "kill the lights", "turn on"])
    assert calls[1:] == [["kill the lights"]]
    assert np.array_equal(a[0], a[2]) and np.array_equal(a[1], b[0]) and np.array_equal(a[0], b[2])
    assert np.array_equal(b, text_encoder("static").encode(["what time is it", "kill the lights", "turn on"]))
    assert encoder.encode([]).shape == (0, encoder.dim)
    # a learner encodes through it: each of the store's texts once, through fit and predict
    encoder, calls = counting_encoder()
    model = PerTurnLabeller(replace(TINY, epochs=1), encoder=encoder)
    with Store(store_path, read_only=True) as store:
        model.fit(store)
        model.predict(store)
        said = DialogueTurns.read(store).said
    embedded = [t for call in calls for t in call]
    assert sorted(embedded) == sorted(set(said)) and len(set(said)) < len(said)


def test_minilm_round_trips_through_save_and_load(store_path: Path, tmp_path: Path) -> None:
    minilm = text_encoder("minilm")
    assert minilm.dim == 384 and text_encoder("minilm") is minilm  # shared, cache and all
    v = minilm.encode(["turn on the kitchen lights", "switch the kitchen lights on", "what time is it"])
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2, "a paraphrase is nearer than another request"
    config = replace(TINY, encoder="minilm", epochs=3)
    with Store(store_path, read_only=True) as store:
        model = PerTurnLabeller(config).fit(store)
        folder = model.save(tmp_path / "minilm")
        loaded = PerTurnLabeller.load(folder)
        assert loaded.config.encoder == "minilm" and loaded.layout_ is not None and loaded.layout_.dim == 384
        assert model.predict_proba(store).equals(loaded.predict_proba(store))
    meta = json.loads((folder / "model.json").read_text())
    assert meta["encoder"]["name"] == "minilm" and meta["encoder"]["dim"] == 384
    with pytest.raises(ConfigError, match="trained on the 'minilm' turn encoder"):
        PerTurnLabeller.load(folder, encoder=text_encoder("static"))


def test_an_encoder_other_than_the_configs_is_refused() -> None:
    fake, _ = counting_encoder("minilm")
    with pytest.raises(ConfigError, match="'static' turn encoder, the encoder given is 'minilm'"):
        LabelModel(TINY, encoder=fake)
    with pytest.raises(ConfigError, match="unknown turn encoder 'bert'"):
        LabelModelConfig(encoder="bert")
    with pytest.raises(ConfigError, match="unknown turn encoder"):
        text_encoder("bert")
    with pytest.raises(ConfigError, match="patience"):
        LabelModelConfig(validation=1.0)


# --- validation and early stopping ----------------------------------------------------------------


def test_the_validation_households_depend_on_ids_and_seed_only() -> None:
    homes = [f"home-{i}" for i in range(20)]
    picked = held_out(homes, 0.15, seed=0)
    assert len(picked) == 3 and set(picked) <= set(homes)
    assert held_out(list(reversed(homes)), 0.15, seed=0) == picked
    assert len({tuple(held_out(homes, 0.15, seed)) for seed in range(5)}) > 1
    assert held_out(homes, 0.0, seed=0) == [] and held_out(["one"], 0.5, seed=0) == []
    assert held_out(["a", "b"], 0.15, seed=0) in (["a"], ["b"]), "at least one, never all"


def test_early_stopping_keeps_the_best_epoch(tmp_path: Path) -> None:
    # the held-out home's labels contradict the other's: its loss falls, then rises as the
    # model learns the training home's intents
    path = build_store(tmp_path / "contradict.duckdb", contradict=True)
    config = replace(TINY, validation=0.5, epochs=40, patience=3, pretrain_epochs=0, lr=3e-3)
    with Store(path, read_only=True) as store:
        model = LabelModel(config).fit(store)
        report = model.report_
        best = report.best_epoch
        assert report.validation_households in (["h1"], ["h2"]) and best is not None
        losses = report.validation_losses
        assert len(losses) == len(report.losses) == best + config.patience < config.epochs, "stopped early"
        assert losses[best - 1] == min(losses) < losses[-1]
        # the weights kept are the best epoch's
        assert model.loss(store, report.validation_households) == pytest.approx(min(losses), abs=1e-4)
        again = LabelModel(config).fit(store)
    assert again.version == model.version and again.report_ == replace(report, seconds=again.report_.seconds)
    off = replace(config, validation=0.0, epochs=5)
    with Store(path, read_only=True) as store:
        plain = LabelModel(off).fit(store).report_
    assert plain.best_epoch is None and plain.validation_losses == [] and len(plain.losses) == 5


def test_nbest_embeddings_average_the_hypotheses_by_confidence() -> None:
    encoder = text_encoder("static")
    rows: list[dict[str, Any]] = [
        {
            "nbest": [
                {"text": "turn of the lights", "confidence": 0.6},
                {"text": "turn off the lights", "confidence": 0.2},
            ]
        },
        {"nbest": None},  # no n-best logged: what was said
        {"nbest": [{"text": "x", "confidence": 0.0}]},  # no confidences: what was said
    ]
    said = ["turn of the lights", "what time is it", "lights please"]
    turns = DialogueTurns(rows, said, np.zeros(3), np.zeros(3, dtype=np.int64))
    got = turns.nbest_embeddings(encoder)
    a, b = encoder.encode(["turn of the lights", "turn off the lights"])
    mix = 0.75 * a + 0.25 * b
    assert np.allclose(got[0], mix / np.linalg.norm(mix), atol=1e-5)
    assert np.allclose(got[1:], encoder.encode(said[1:]), atol=1e-5)
    assert turns.hypotheses(1) == [("what time is it", 1.0)]
