"""The global layer's intent model: what it learns from which turns, k-anonymity, persistence,
and the ranking features it feeds."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from selflearn.core.delex import Delexicalizer
from selflearn.core.errors import ConfigError
from selflearn.rewrite.features import FEATURES, Query, intent_reading
from selflearn.rewrite.intents import NONE, IntentModel, grams
from selflearn.rewrite.knowledge import Knowledge, intent_examples
from tests.test_rewrite import log_turn


def _examples(n_users: int = 6) -> list[tuple[str, str, str, str]]:
    out = []
    for i in range(n_users):
        user, home = f"u{i}", f"h{i % 3}"
        out += [
            ("turn on the {area} lights", "HassTurnOn", user, home),
            ("switch the {area} lights on", "HassTurnOn", user, home),
            ("turn off the {area} lights", "HassTurnOff", user, home),
            ("kill the {area} lights", "HassTurnOff", user, home),
            ("what time is it", "HassGetCurrentTime", user, home),
            ("tell me a joke", NONE, user, home),
            ("any news today", NONE, user, home),
        ]
    return out


def test_grams_are_distinct_words_and_pairs() -> None:
    assert grams("turn on the on") == ["turn", "on", "the", "turn on", "on the", "the on"]
    assert grams("") == []


def test_learns_intents_and_what_nobody_fixes() -> None:
    model = IntentModel(min_users=5).fit(_examples())
    assert model.fitted and set(model.classes_) == {"HassTurnOn", "HassTurnOff", "HassGetCurrentTime", NONE}

    def top(pattern: str) -> str:
        reading = model.proba(pattern)
        assert reading is not None
        probs, _ = reading
        assert math.isclose(float(probs.sum()), 1.0, rel_tol=1e-6)
        return model.classes_[int(np.argmax(probs))]

    # unseen combinations of words it knows
    assert top("kill the {area} lights now") == "HassTurnOff"
    assert top("lights on in the {area}") == "HassTurnOn"
    assert top("tell me the news") == NONE
    _, known = model.proba("kill the lights please xyzzy") or (None, 0.0)
    assert 0.0 < known < 1.0  # "please", "xyzzy" and their pairs are unknown


def test_words_fewer_than_k_users_or_one_home_say_nothing() -> None:
    examples = _examples()
    # one user's own phrase, said many times, and a phrase of several users in one home
    examples += [("big light on", "HassTurnOn", "u0", "h0")] * 50
    examples += [("lumos", "HassTurnOn", f"v{i}", "h9") for i in range(8)]
    model = IntentModel(min_users=5, min_households=2).fit(examples)
    assert "big" not in model.vocab_ and "big light" not in model.vocab_
    assert "lumos" not in model.vocab_
    assert "lights" in model.vocab_ and "{area} lights" in model.vocab_
    assert model.proba("lumos") is not None and model.proba("lumos")[1] == 0.0  # type: ignore[index]


def test_too_little_to_learn_leaves_it_unfitted() -> None:
    one_class = [("turn on the {area} lights", "HassTurnOn", f"u{i}", f"h{i}") for i in range(9)]
    assert not IntentModel().fit(one_class).fitted
    assert IntentModel().fit(one_class).proba("turn on the {area} lights") is None
    assert not IntentModel(min_users=50).fit(_examples()).fitted  # no word said by 50 users


def test_binary_model_reads_like_a_multiclass_one() -> None:
    two = [e for e in _examples() if e[1] in ("HassTurnOn", "HassTurnOff")]
    model = IntentModel().fit(two)
    on = model.proba("turn on the {area} lights")
    off = model.proba("turn off the {area} lights")
    assert on is not None and off is not None
    assert model.classes_[int(on[0].argmax())] == "HassTurnOn"
    assert model.classes_[int(off[0].argmax())] == "HassTurnOff"


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = IntentModel().fit(_examples())
    model.save(tmp_path / "intents")
    again = IntentModel.load(tmp_path / "intents")
    assert again.classes_ == model.classes_ and again.vocab_ == model.vocab_
    for pattern in ("kill the {area} lights", "any news", "nothing known here"):
        a, b = model.proba(pattern), again.proba(pattern)
        assert a is not None and b is not None
        assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    with pytest.raises(ConfigError, match="is not a saved intent model"):
        IntentModel.load(tmp_path / "missing")
    (tmp_path / "intents" / "model.json").write_text('{"format": "other"}')
    with pytest.raises(ConfigError, match="format"):
        IntentModel.load(tmp_path / "intents")


def test_examples_are_labelled_from_the_logs_alone() -> None:
    turns = [
        # worked: its own intent
        log_turn("a1", "turn on the lights", intent="HassTurnOn"),
        # failed, then fixed by the same user's reformulation: the fix's intent
        log_turn("b1", "kill the lights", status="no_match", at=100),
        log_turn("b2", "turn off the lights", intent="HassTurnOff", at=105, rephrase_of="b1"),
        # refused and never fixed: nobody got it to work
        log_turn("c1", "tell me a joke", status="no_match", at=200),
        # acted, wrongly by the defect detector, never fixed: says nothing
        log_turn("d1", "lights to blue", intent="HassTurnOn", defect=True, at=300),
    ]
    delex = Delexicalizer(None)
    organic = {t.turn_id: delex(t.said) for t in turns}
    labels = {pattern: label for pattern, label, _, _ in intent_examples(turns, organic)}
    assert labels == {
        "turn on the lights": "HassTurnOn",
        "kill the lights": "HassTurnOff",
        "turn off the lights": "HassTurnOff",
        "tell me a joke": NONE,
    }


def test_ranking_features_read_the_model() -> None:
    names = [n for n in FEATURES if n.startswith("lex_")]
    assert names == ["lex_intent_p", "lex_intent_rank", "lex_intent_max", "lex_none", "lex_known"]
    model = IntentModel().fit(_examples())
    knowledge = Knowledge.from_parts([], {}, intent_model=model)
    d = Delexicalizer(None)("kill the lights")
    reading = model.proba(d.pattern)
    query = Query("kill the lights", d, np.zeros(4, dtype=np.float32), intents=reading)
    row = intent_reading(query, knowledge)
    p_off, rank_off, top, p_none, known = row("HassTurnOff")
    p_on, rank_on, *_ = row("HassTurnOn")
    assert rank_off == 0.0 and rank_on > 0 and p_off > p_on and top == p_off
    assert 0.0 < p_none < 1.0 and 0.0 < known <= 1.0
    assert row("HassNeverSeen")[0] == 0.0
    # without a model (or without a reading) the features are missing, not zero
    assert all(math.isnan(v) for v in intent_reading(query, Knowledge())("HassTurnOff"))
