"""The reference assistant loads Home Assistant custom sentences as Home Assistant does: beside
its own intents, so a sentence exported by ``selflearn label export`` (or written by hand) makes a
request that failed work -- with no run-time component of selflearn."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from selflearn.assistant.devices import HomeState
from selflearn.assistant.nlu import CUSTOM, HomeAssistantNlu
from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.core.errors import ConfigError
from selflearn.core.home import Home
from selflearn.core.schema import DeviceContext
from tests.conftest import HOME

CUSTOM_FILE = {
    "language": "en",
    "intents": {
        "HassTurnOff": {
            "data": [{"sentences": ["kill the lights in [the] {area}"], "slots": {"domain": "light"}}]
        }
    },
}


def _write(folder: Path, data: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "selflearn.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_custom_sentence_matches_what_failed_and_says_where_it_came_from(tmp_path: Path) -> None:
    home = Home.from_dict(HOME)
    folder = tmp_path / "custom_sentences" / "en"
    _write(folder, CUSTOM_FILE)
    plain, custom = HomeAssistantNlu("strict"), HomeAssistantNlu("strict", custom_sentences=folder)
    said = "kill the lights in the kitchen"
    assert not plain.recognize(said, home).trace.matched
    trace = custom.recognize(said, home).trace
    assert (trace.matched, trace.intent, trace.matcher) == (True, "HassTurnOff", CUSTOM)
    assert trace.slots["area"] == "kitchen" and trace.slots["domain"] == "light"
    # Home Assistant's own sentences still match, as Home Assistant's own.
    own = custom.recognize("turn off the lights in the kitchen", home).trace
    assert own.matched and own.matcher == "strict"

    assistant = Assistant(AssistantConfig(asr="exact", custom_sentences=str(folder)))
    handled = assistant.handle(
        spoken=said,
        state=HomeState.initial(home),
        turn_id="t1",
        session_id="s1",
        user_id="u1",
        household_id=home.home_id,
        device=DeviceContext(device_id="d1", area="Kitchen"),
        timestamp=datetime(2026, 1, 5, 8, tzinfo=UTC),
        rng=random.Random(0),
    )
    assert handled.turn.result is not None and handled.turn.result.status == "success"
    assert handled.turn.nlu is not None and handled.turn.nlu.matcher == CUSTOM


def test_custom_sentences_that_cannot_load_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no custom sentences"):
        HomeAssistantNlu("strict", custom_sentences=tmp_path / "missing")
    bad = _write(
        tmp_path / "bad",
        {"language": "en", "intents": {"HassTurnOff": {"data": [{"sentences": ["kill [the"]}]}}},
    )
    with pytest.raises(ConfigError, match="do not load in hassil"):
        HomeAssistantNlu("strict", custom_sentences=bad)
    with pytest.raises(ConfigError, match="expected a mapping"):
        HomeAssistantNlu("strict", custom_sentences=_write(tmp_path / "list", ["not", "a", "mapping"]))
