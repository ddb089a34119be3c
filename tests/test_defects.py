"""Defect detection: hand-written sessions with obvious answers, bad input, the learned model.

The model is trained here on a small simulated population (6 households x 3 days, about ten
seconds), from weak labels only; simulation truth is read solely to check the results.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import average_precision_score

from selflearn import SimulationConfig, Store, simulate
from selflearn.core.errors import ConfigError, DataError
from selflearn.signals.defect import (
    HEURISTIC_NAME,
    RULES,
    DefectModel,
    HeuristicDefectDetector,
    score_defects,
    weak_labels,
)
from selflearn.signals.features import turn_features
from tests.conftest import turn_dict

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)

NOT_UNDERSTOOD = ("no_match", "Sorry, I couldn't understand that")
DONE_OFF = ("success", "Turned off the light")
DONE_ON = ("success", "Turned on the light")
NO_DEVICE = ("error", "Sorry, I am not aware of any device called big light")


def _turn(
    turn_id: str, session: str, seconds: float, text: str, result: tuple[str, str], **extra: Any
) -> dict[str, Any]:
    status, response = result
    record = turn_dict(
        turn_id,
        session_id=session,
        timestamp=(T0 + timedelta(seconds=seconds)).isoformat(),
        text=text,
        result={"status": status, "response_text": response},
        **extra,
    )
    record["asr"] = {"text": text, "confidence": 0.9, "nbest": [], "engine": "exact"}
    if status == "no_match":
        record["nlu"] = {"matched": False, "slots": {}, "confidence": 0.0, "matcher": "none"}
        record.pop("er", None)
    return record


def _feedback(turn_id: str, seconds: float, answer: str) -> dict[str, Any]:
    return {
        "record_type": "feedback",
        "feedback_id": f"f-{turn_id}",
        "turn_id": turn_id,
        "user_id": "u1",
        "household_id": "h1",
        "timestamp": (T0 + timedelta(seconds=seconds)).isoformat(),
        "answer": answer,
    }


def _bare(turn_id: str, session: str, seconds: float, text: str) -> dict[str, Any]:
    """A turn where no stage after the wake word ran (typed text, no NLU, no result)."""
    record = turn_dict(turn_id, session_id=session, timestamp=(T0 + timedelta(seconds=seconds)).isoformat())
    for stage in ("asr", "nlu", "er", "result"):
        record.pop(stage)
    record["text"] = text
    return record


# Obvious to a person (defect? in brackets):
#  s1: not understood, then the same request in other words 5 s later  t1 [yes], t2 [no]
#  s2: done, then the same kind of request on another room 8 s later    t3 [no],  t4 [no]
#  s3: "tell me a joke", refused, the user lets it go                   t5 [no]
#  s4: done, but the user answers "no" to "did I get that right?"       t6 [yes]
#  s5: done, and the user answers "yes"                                 t7 [no]
#  s6: error, interrupted 400 ms into the response, then given up       t8 [yes]
#  s7: the same words again 6 s later, then it worked                   t9 [yes], t10 [no]
#  s8: background chatter on a weak wake, not understood, nobody reacts t11 [yes: a false wake]
#  s9: out of order in the file: the failed turn was said first         t13 [yes], t12 [no]
#  s10: empty text; s11: non-English; s12: no stage ran                  an answer, never a crash
SESSIONS = [
    _turn("t1", "s1", 0, "kill the lights in the bedroom", NOT_UNDERSTOOD),
    _turn("t2", "s1", 5, "turn off the bedroom light", DONE_OFF),
    _turn("t3", "s2", 100, "turn off the bedroom light", DONE_OFF),
    _turn("t4", "s2", 108, "turn off the kitchen light", DONE_OFF),
    _turn("t5", "s3", 200, "tell me a joke", NOT_UNDERSTOOD),
    _turn("t6", "s4", 300, "turn on the reading lamp", DONE_ON, feedback_requested=True),
    _feedback("t6", 304, "no"),
    _turn("t7", "s5", 400, "turn on the kitchen light", DONE_ON, feedback_requested=True),
    _feedback("t7", 404, "yes"),
    _turn("t8", "s6", 500, "turn on the big light", NO_DEVICE, barge_in={"occurred": True, "offset_ms": 400}),
    _turn("t9", "s7", 600, "turn on the kitchen lights", NO_DEVICE),
    _turn("t10", "s7", 606, "turn on the kitchen lights", DONE_ON),
    _turn("t11", "s8", 700, "we need more milk", NOT_UNDERSTOOD, wake={"score": 0.55}),
    _turn("t12", "s9", 806, "switch on the kitchen light", DONE_ON),
    _turn("t13", "s9", 800, "kitchen lights up", NOT_UNDERSTOOD),
    _turn("t14", "s10", 900, "", NOT_UNDERSTOOD),
    _turn("t15", "s11", 1000, "éteins la lumière du salon", NOT_UNDERSTOOD),
    _bare("t16", "s12", 1100, "turn on the fan"),
]
DEFECT = {"t1", "t6", "t8", "t9", "t11", "t13"}
NOT_DEFECT = {"t2", "t3", "t4", "t5", "t7", "t10", "t12"}


def _store_from(folder: Path, records: list[dict[str, Any]], name: str = "hand") -> Path:
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    path = folder / f"{name}.duckdb"
    with Store(path) as store:
        report = store.ingest([folder / f"{name}.jsonl"])
        assert report.quarantined == 0, report.summary()
    return path


@pytest.fixture(scope="module")
def handwritten(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _store_from(tmp_path_factory.mktemp("hand"), SESSIONS)


@pytest.fixture(scope="module")
def features(handwritten: Path) -> dict[str, dict[str, Any]]:
    with Store(handwritten, read_only=True) as store:
        table = turn_features(store)
    return {row["turn_id"]: row for row in table.to_pylist()}


def _by_turn(table: pa.Table, column: str) -> dict[str, Any]:
    return dict(zip(table.column("turn_id").to_pylist(), table.column(column).to_pylist(), strict=True))


# --- features -------------------------------------------------------------------------------------


def test_features_follow_time_order_not_file_order(features: dict[str, dict[str, Any]]) -> None:
    assert (features["t13"]["position"], features["t12"]["position"]) == (1, 2)
    assert features["t13"]["gap_next_s"] == pytest.approx(6.0)
    assert features["t12"]["gap_prev_s"] == pytest.approx(6.0) and features["t12"]["is_last"]
    assert not features["t13"]["is_last"] and features["t13"]["next_status"] == "success"


def test_features_describe_the_next_turn_and_feedback(features: dict[str, dict[str, Any]]) -> None:
    assert features["t9"]["next_same_text"] and features["t9"]["next_quick"]
    assert features["t1"]["next_same_text"] is False and features["t1"]["next_similarity"] > 0.5
    assert features["t1"]["next_same_intent"] is False  # no intent, then HassTurnOn
    assert features["t3"]["next_same_intent"] is True
    assert features["t6"]["feedback"] == "no" and features["t7"]["feedback"] == "yes"
    assert features["t1"]["feedback"] is None
    assert features["t8"]["barge_in"] and features["t8"]["barge_in_offset_ms"] == 400


def test_features_of_single_turn_and_missing_stages(features: dict[str, dict[str, Any]]) -> None:
    lone = features["t5"]
    assert (lone["position"], lone["session_len"], lone["is_last"]) == (1, 1, True)
    assert lone["gap_prev_s"] is None and lone["gap_next_s"] is None and lone["next_same_text"] is None
    bare = features["t16"]
    assert bare["status"] == "missing" and bare["nlu_matched"] is None and bare["asr_conf"] is None
    assert features["t14"]["empty_text"] and not features["t14"]["non_english"]
    assert features["t15"]["non_english"] and not features["t1"]["non_english"]


def test_rephrase_table_feeds_the_features(tmp_path: Path) -> None:
    path = _store_from(tmp_path, SESSIONS)
    now = datetime.now(UTC)
    rows = [("t2", "t1", 0.9), ("t4", None, 0.8)]  # t2 rephrases t1; t4 is a new request
    with Store(path) as store:
        assert _by_turn(turn_features(store), "rephrased_p")["t1"] is None
        store.save_signals(
            "rephrases",
            pa.table(
                {
                    "turn_id": [r[0] for r in rows],
                    "rephrase_of": [r[1] for r in rows],
                    "p_rephrase": [r[2] for r in rows],
                    "model": ["test"] * 2,
                    "scored_at": [now] * 2,
                }
            ),
        )
        table = turn_features(store)
    rephrased = _by_turn(table, "rephrased_p")
    reasons = dict(zip(rephrased, HeuristicDefectDetector().reasons(table).to_pylist(), strict=True))
    assert "rephrased_soon" in reasons["t1"] and "rephrased_soon" not in reasons["t3"]
    assert rephrased["t1"] == pytest.approx(0.9)
    assert rephrased["t3"] == 0.0  # the detector scored t4 and said "not a rephrase of t3"
    assert rephrased["t9"] is None  # t10 was not scored: unknown


# --- heuristic ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def heuristic_scores(handwritten: Path) -> tuple[dict[str, float], dict[str, list[str]]]:
    with Store(handwritten, read_only=True) as store:
        table = turn_features(store)
    det = HeuristicDefectDetector()
    ids = table.column("turn_id").to_pylist()
    p = dict(zip(ids, det.predict(table).tolist(), strict=True))
    reasons = dict(zip(ids, det.reasons(table).to_pylist(), strict=True))
    return p, reasons


def test_heuristic_answers_the_obvious_sessions(
    heuristic_scores: tuple[dict[str, float], dict[str, list[str]]],
) -> None:
    p, _ = heuristic_scores
    wrong = {t: round(p[t], 2) for t in DEFECT if p[t] < 0.5} | {
        t: round(p[t], 2) for t in NOT_DEFECT if p[t] >= 0.5
    }
    assert not wrong, f"heuristic misjudged {wrong}"


def test_heuristic_names_its_reasons(heuristic_scores: tuple[dict[str, float], dict[str, list[str]]]) -> None:
    _, reasons = heuristic_scores
    # Other words for the same request: lexically only "a quick follow-up" (the rephrase detector,
    # when it has run, turns it into rephrased_soon: see test_rephrase_table_feeds_the_features).
    assert {"nlu_no_match", "quick_follow_up"} <= set(reasons["t1"])
    assert "failure_accepted" in reasons["t5"]  # the refusal nobody argued with
    assert "explicit_no" in reasons["t6"] and "explicit_yes" in reasons["t7"]
    assert {"error_response", "barge_in", "early_barge_in", "abandoned_after_failure"} <= set(reasons["t8"])
    assert "repeated" in reasons["t9"]
    assert "possible_false_wake" in reasons["t11"]
    assert "empty_text" in reasons["t14"] and "non_english" in reasons["t15"]
    assert "no_result" in reasons["t16"]
    assert "explicit_no" not in reasons["t3"] and "quiet_success" in reasons["t4"]
    known = {r.name for r in RULES}
    assert all(set(r) <= known for r in reasons.values())


def test_heuristic_rule_weights_add_in_log_odds() -> None:
    rows = pa.table({"turn_id": ["a"], **{}})  # no columns needed by a rule-free detector
    assert HeuristicDefectDetector(rules=(), bias=0.0).predict(rows).tolist() == [0.5]


def test_score_defects_writes_the_table(tmp_path: Path) -> None:
    path = _store_from(tmp_path, SESSIONS)
    with Store(path) as store:
        lines: list[str] = []
        report = score_defects(store, progress=lines.append)
        stored = store.signals("defects")
    assert report.turns == stored.num_rows == 16
    assert report.flagged == sum(p >= 0.5 for p in stored.column("p_defect").to_pylist())
    assert set(stored.column("model").to_pylist()) == {HEURISTIC_NAME}
    assert stored.column("p_defect").to_pylist() == stored.column("p_heuristic").to_pylist()
    assert "scored 16 turns" in report.summary() and lines[-1] == report.summary()
    assert report.reasons["nlu_no_match"] >= 5


# --- bad input ------------------------------------------------------------------------------------


def test_empty_store_gives_a_clear_result(tmp_path: Path) -> None:
    with Store(tmp_path / "empty.duckdb") as store:
        table = turn_features(store)
        assert table.num_rows == 0 and "next_similarity" in table.column_names
        report = score_defects(store)
        assert report.turns == 0 and report.summary().startswith("no turns")
        with pytest.raises(DataError, match="both classes"):
            DefectModel().fit(store)


def test_untrained_model_says_so() -> None:
    with pytest.raises(ConfigError, match="not trained"):
        DefectModel().predict(pa.table({"turn_id": ["a"]}))


def test_equal_timestamps_are_ordered_by_turn_id(tmp_path: Path) -> None:
    same = [_turn("b", "s", 0, "turn on the fan", DONE_ON), _turn("a", "s", 0, "turn on the fan", NO_DEVICE)]
    with Store(_store_from(tmp_path, same), read_only=True) as store:
        pos = _by_turn(turn_features(store), "position")
    assert pos == {"a": 1, "b": 2}


# --- the learned model ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sim")
    simulate(SimulationConfig(households=6, days=3, seed=5, household_prefix="dt"), folder / "sim")
    with Store(folder / "sim.duckdb") as store:
        store.ingest([folder / "sim"])
    return folder / "sim.duckdb"


@pytest.fixture(scope="module")
def model(simulated: Path) -> DefectModel:
    with Store(simulated, read_only=True) as store:
        return DefectModel().fit(store)


def test_model_training_never_reads_simulation_truth(
    simulated: Path, model: DefectModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "no-truth.duckdb"
    copy.write_bytes(simulated.read_bytes())
    with Store(copy) as store:
        assert store.count("sim_truth") > 0
        store.con.execute("DELETE FROM sim_truth")
        assert store.count("sim_truth") == 0

        def forbidden(self: Store) -> pa.Table:
            raise AssertionError("the defect model read simulation truth")

        monkeypatch.setattr(Store, "truth", forbidden)
        blind = DefectModel().fit(store)
    booster = model.booster_
    assert booster is not None and blind.booster_ is not None
    assert blind.booster_.model_to_string() == booster.model_to_string()
    assert blind.version == model.version


def test_model_learns_from_weak_labels_and_beats_chance(simulated: Path, model: DefectModel) -> None:
    with Store(simulated, read_only=True) as store:
        table = turn_features(store)
        truth = _by_turn(store.truth(), "defect")
    y = np.array([truth[t] for t in table.column("turn_id").to_pylist()], dtype=float)
    labels = weak_labels(table)
    counts = labels.counts()
    assert counts["retried_failure"] > 50 and counts["quiet_strict_success"] > 100
    # The weak labels are nearly always right where they are given ...
    assert np.mean(labels.label[labels.labelled] == y[labels.labelled]) > 0.9
    # ... and the model trained on them ranks defects far above the base rate.
    p = model.predict(table)
    assert ((p >= 0) & (p <= 1)).all()
    # Closes most of the gap between chance (the base rate) and a perfect ranking.
    assert average_precision_score(y, p) > y.mean() + 0.6 * (1 - y.mean())


def test_model_answers_the_obvious_sessions(handwritten: Path, model: DefectModel) -> None:
    with Store(handwritten, read_only=True) as store:
        table = turn_features(store)
    p = dict(zip(table.column("turn_id").to_pylist(), model.predict(table).tolist(), strict=True))
    clear_defects = {"t1", "t6", "t8", "t9", "t13"}
    clear_successes = {"t2", "t7", "t10", "t12"}
    wrong = {t: round(p[t], 2) for t in clear_defects if p[t] < 0.5}
    wrong |= {t: round(p[t], 2) for t in clear_successes if p[t] >= 0.5}
    assert not wrong, f"model misjudged {wrong}"
    assert all(np.isfinite(v) for v in p.values())  # empty, non-English, stage-less turns too


def test_model_save_load_round_trip(handwritten: Path, model: DefectModel, tmp_path: Path) -> None:
    folder = model.save(tmp_path / "defect")
    meta = json.loads((folder / "model.json").read_text())
    assert meta["version"] == model.version and meta["labels"]["labelled"] > 0
    loaded = DefectModel.load(folder)
    with Store(handwritten, read_only=True) as store:
        table = turn_features(store)
    assert loaded.version == model.version
    np.testing.assert_array_equal(loaded.predict(table), model.predict(table))
    with pytest.raises(ConfigError, match="not a saved defect model"):
        DefectModel.load(tmp_path / "nowhere")


def test_score_defects_with_model_records_its_version(tmp_path: Path, model: DefectModel) -> None:
    path = _store_from(tmp_path, SESSIONS)
    with Store(path) as store:
        report = score_defects(store, model)
        stored = store.signals("defects")
    assert set(stored.column("model").to_pylist()) == {model.version} == {report.model}
    p = _by_turn(stored, "p_defect")
    assert p["t6"] > p["t7"]  # explicit "no" vs "yes" on the same kind of turn
