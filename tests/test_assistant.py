from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from selflearn.assistant.devices import HomeState
from selflearn.assistant.nlu import HomeAssistantNlu
from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.assistant.turns import HandledTurn
from selflearn.core.errors import ConfigError
from selflearn.core.home import Home
from selflearn.core.schema import DeviceContext

NOW = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def assistant() -> Assistant:
    return Assistant(AssistantConfig(asr="exact"))


def _handle(
    assistant: Assistant, home: Home, text: str, area: str | None = "Kitchen", state: HomeState | None = None
) -> tuple[HandledTurn, HomeState]:
    state = state or HomeState.initial(home)
    return assistant.handle(
        spoken=text,
        state=state,
        turn_id="t1",
        session_id="s1",
        user_id="u1",
        household_id=home.home_id,
        device=DeviceContext(device_id="d1", area=area),
        timestamp=NOW,
        rng=random.Random(0),
    ), state


def test_strict_match_turns_on_area_lights_and_records_every_stage(assistant: Assistant, home: Home) -> None:
    handled, state = _handle(assistant, home, "turn on the kitchen lights")
    turn = handled.turn
    assert turn.wake is not None and turn.asr is not None and turn.asr.engine == "exact"
    assert turn.nlu is not None and turn.nlu.matched and turn.nlu.matcher == "strict"
    assert turn.nlu.intent == "HassTurnOn" and turn.nlu.slots["area"] == "kitchen"
    assert turn.er is not None and [t.entity_id for t in turn.er.resolved] == ["light.kitchen_ceiling"]
    assert turn.result is not None and turn.result.status == "success"
    assert state.states["light.kitchen_ceiling"] == "on"


def test_context_area_fills_in_the_room(assistant: Assistant, home: Home) -> None:
    handled, state = _handle(assistant, home, "turn off the lights", area="Living Room")
    assert handled.effect is not None
    assert handled.effect.targets == frozenset({"light.living_room_lamp"})
    assert state.states["light.living_room_lamp"] == "off"


def test_gazetteer_rescues_what_strict_misses(home: Home) -> None:
    text = "flick on the kichen lights"
    strict = HomeAssistantNlu("strict").recognize(text, home, "kitchen")
    fallback = HomeAssistantNlu("strict+gazetteer").recognize(text, home, "kitchen")
    assert not strict.trace.matched
    assert fallback.trace.matched and fallback.trace.matcher == "gazetteer"
    assert fallback.trace.intent == "HassTurnOn" and fallback.trace.confidence < 1.0


def test_unknown_household_name_fails_in_entity_resolution(assistant: Assistant, home: Home) -> None:
    handled, _ = _handle(assistant, home, "turn on the disco ball")
    turn = handled.turn
    assert turn.nlu is not None and not turn.nlu.matched
    assert turn.er is not None and not turn.er.ok and "disco ball" in turn.er.unresolved
    assert turn.result is not None and turn.result.error_code == "no_entity"
    assert "not aware of any device called disco ball" in turn.result.response_text
    assert handled.effect is None


def test_gibberish_is_a_no_match(assistant: Assistant, home: Home) -> None:
    handled, _ = _handle(assistant, home, "purple monkey dishwasher")
    assert handled.turn.result is not None and handled.turn.result.status in ("no_match", "error")
    assert handled.effect is None


def test_offline_device_is_a_result_error(assistant: Assistant, home: Home) -> None:
    state = HomeState.initial(home)
    state.unavailable.add("lock.front_door")
    handled, _ = _handle(assistant, home, "unlock the front door", state=state)
    assert handled.turn.result is not None and handled.turn.result.error_code == "entity_unavailable"
    assert state.states["lock.front_door"] == "locked"


def test_cache_gives_identical_results(home: Home) -> None:
    nlu = HomeAssistantNlu()
    first = nlu.recognize("turn on the kitchen lights", home, None)
    second = nlu.recognize("turn on the kitchen lights", home, None)
    assert first == second and nlu.cache_info()[0] >= 1


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown NLU configuration"):
        HomeAssistantNlu("regex")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="feedback_rate"):
        AssistantConfig(feedback_rate=1.5)


def test_home_validation_names_the_problem() -> None:
    with pytest.raises(ConfigError, match="unknown area 'attic'"):
        Home.from_dict(
            {"home_id": "x", "areas": [], "entities": [{"id": "light.a", "name": "A", "area": "attic"}]}
        )


def test_home_assistant_slot_aliases_mean_the_same_parameter(assistant: Assistant, home: Home) -> None:
    # HassSetVolume fills `volume_level`; goals and effects speak of `volume`.
    handled, state = _handle(assistant, home, "set tv volume to 50")
    assert handled.turn.nlu is not None and "volume_level" in handled.turn.nlu.slots
    assert handled.effect is not None and ("volume", "50") in handled.effect.params
    assert state.attributes["media_player.tv"]["volume"] == 50
