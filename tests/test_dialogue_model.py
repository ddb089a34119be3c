"""The stateful model of conversations (``bench/dialogue_model.py``), short and seeded: random
sequences of requests, answers, teaching, forgetting, approvals, restarts and outages over the
reference assistant, the service's exchange and the chat keep the rules of docs/dialogue.md
(nothing acts that the user forgot or never confirmed, nothing unlisted acts, no action on a
pending proposal without a yes, none opposite to what was said, no traceback). The benchmark runs
thousands; see docs/dialogue.md#the-model-of-conversations."""

from __future__ import annotations

import importlib.util
import random
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("dialogue_model", ROOT / "bench" / "dialogue_model.py")
assert _spec is not None and _spec.loader is not None
model = importlib.util.module_from_spec(_spec)
sys.modules["dialogue_model"] = model  # its dataclasses look their module up
_spec.loader.exec_module(model)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return model.Shared(tmp_path_factory.mktemp("model"))


def _step(surface: str) -> st.SearchStrategy[Any]:
    says = st.builds(
        model.Step, st.just("say"), st.sampled_from(model.UTTERANCES), st.sampled_from(model.GAPS)
    )
    answers = st.builds(
        model.Step, st.just("say"), st.sampled_from(model.ANSWERS), st.sampled_from([3.0, 4.0])
    )
    world = st.builds(model.Step, st.sampled_from(["restart", "outage", "back"]), st.just(""), st.just(70.0))
    return st.one_of(says, says, answers, world)


def _check(verdict: Any) -> None:
    assert verdict.tracebacks == [], verdict.tracebacks[0]
    assert verdict.violations == [], verdict.violations


@pytest.mark.parametrize("surface", ["chat", "reference"])
def test_random_conversations_keep_the_rules(shared: Any, surface: str, tmp_path: Path) -> None:
    @settings(
        max_examples=15,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(st.lists(_step(surface), min_size=20, max_size=24))
    def conversation(steps: list[Any]) -> None:
        _check(model.run_sequence(shared, surface, steps, tmp_path))

    conversation()


def test_random_exchanges_with_the_service_keep_the_rules(shared: Any, tmp_path: Path) -> None:
    """The service's exchange as Home Assistant's integration uses it (approvals and outages
    included); seeded sequences, as the benchmark draws them."""
    for n in range(6):
        steps = model.random_steps(random.Random(f"test-service-{n}"), 20, "service")
        _check(model.run_sequence(shared, "service", steps, tmp_path))


class _Wrong:
    """A surface that does the opposite of what was said."""

    def __init__(self, shared: Any) -> None:
        self.state = model.HomeState.initial(shared.home)

    def say(self, text: str, now: datetime) -> Any:
        out = model.Outcome(effects=[("HassTurnOff", frozenset({"light.kitchen_light"}))])
        out.rewrites = [(text, "turn off the kitchen light", "personal")]
        return out

    def listing(self) -> str:
        return ""


def test_the_model_sees_an_action_opposite_to_what_was_said_and_unlisted(shared: Any) -> None:
    verdict = model.Verdict()
    record = model.Record()
    step = model.Step("say", "turn on the kitchen light")
    model._say(shared, _Wrong(shared), record, step, datetime(2026, 1, 5, tzinfo=UTC), verdict, "x")
    kinds = sorted({v.split(":")[0] for v in verdict.violations})
    assert kinds == ["justified", "listed", "polarity"], verdict.violations


def test_the_model_allows_what_the_user_taught_and_not_after_forgetting_it(shared: Any) -> None:
    record = model.Record()
    record.names["mothership"] = {"living room ceiling"}
    assert "turn off the living room ceiling" in record.meanings("turn off the mothership", None, None)
    record.forget("mothership")
    assert record.meanings("turn off the mothership", None, None) == {"turn off the mothership"}
    pending = model.Pending("confirm", "kill the lights in the kitchen", "turn off the lights in the kitchen")
    assert "turn off the lights in the kitchen" not in record.meanings("no", pending, "no")
    assert "turn off the lights in the kitchen" in record.meanings("yes", pending, "yes")


class _Acts:
    """A surface that runs one fixed sentence whatever is said (through the model's own oracle)."""

    def __init__(self, shared: Any, sentence: str) -> None:
        self.shared, self.sentence = shared, sentence
        self.state = model.HomeState.initial(shared.home)

    def say(self, text: str, now: datetime) -> Any:
        return model.Outcome(effects=sorted(self.shared.effects(self.sentence, self.state, now)))

    def listing(self) -> str:
        return ""


def test_the_model_names_a_pending_proposal_acting_without_a_yes(shared: Any) -> None:
    now = datetime(2026, 1, 5, tzinfo=UTC)
    record = model.Record()
    record.pending = model.Pending(
        "confirm", "kill the lights in the kitchen", "turn off the lights in the kitchen"
    )
    record.asked_at = now
    verdict = model.Verdict()
    surface = _Acts(shared, "turn off the lights in the kitchen")
    model._say(shared, surface, record, model.Step("say", "no", 3.0), now, verdict, "x")
    assert [v.split(":")[0] for v in verdict.violations] == ["pending_without_yes"], verdict.violations


def test_the_model_names_a_forgotten_name_acting(shared: Any) -> None:
    now = datetime(2026, 1, 5, tzinfo=UTC)
    record = model.Record()
    record.names["mothership"] = {"living room ceiling"}
    record.forget("mothership")
    verdict = model.Verdict()
    surface = _Acts(shared, "turn on the living room ceiling")
    model._say(shared, surface, record, model.Step("say", "turn on the mothership"), now, verdict, "x")
    assert [v.split(":")[0] for v in verdict.violations] == ["forgotten"], verdict.violations
    # an action nothing the user ever did allows stays ``justified``
    verdict = model.Verdict()
    surface = _Acts(shared, "turn on the floor lamp")
    model._say(shared, surface, record, model.Step("say", "turn on the mothership"), now, verdict, "x")
    assert [v.split(":")[0] for v in verdict.violations] == ["justified"], verdict.violations
