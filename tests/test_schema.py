from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from selflearn.core.schema import LOG_RECORD, MAX_TEXT_CHARS, SCHEMA_VERSION, Feedback, Turn
from tests.conftest import turn_dict


def test_valid_turn_round_trips_through_json() -> None:
    turn = LOG_RECORD.validate_python(turn_dict())
    assert isinstance(turn, Turn)
    again = LOG_RECORD.validate_json(turn.model_dump_json())
    assert again == turn
    assert turn.schema_version == SCHEMA_VERSION
    assert turn.nlu is not None and turn.nlu.slots == {"area": "kitchen", "domain": "light"}


def test_feedback_is_its_own_record() -> None:
    fb = LOG_RECORD.validate_python(
        {
            "record_type": "feedback",
            "feedback_id": "f1",
            "turn_id": "t1",
            "user_id": "u1",
            "household_id": "h1",
            "timestamp": "2026-01-05T08:00:05Z",
            "answer": "no",
        }
    )
    assert isinstance(fb, Feedback) and fb.answer == "no"


def _loc(exc: ValidationError) -> str:
    return ".".join(str(p) for p in exc.errors()[0]["loc"])


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"turn_id": ""}, "turn_id"),
        ({"user_id": None}, "user_id"),
        ({"timestamp": "2026-01-05T08:00:00"}, "timestamp"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"text": "x" * (MAX_TEXT_CHARS + 1)}, "text"),
        ({"asr": {"text": "hi", "confidence": 1.7}}, "asr.confidence"),
        ({"result": {"status": "exploded"}}, "result.status"),
        ({"device": {"device_type": "speaker"}}, "device.device_id"),
        ({"surprise": 1}, "surprise"),
        ({"schema_version": "2.0"}, "schema_version"),
    ],
)
def test_bad_turns_name_the_field(change: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as err:
        LOG_RECORD.validate_python(turn_dict(**change))
    assert _loc(err.value).endswith(where)


def test_missing_stages_are_allowed_for_typed_turns() -> None:
    record = turn_dict()
    for stage in ("wake", "asr", "nlu", "er", "result"):
        record.pop(stage)
    turn = LOG_RECORD.validate_python(record)
    assert isinstance(turn, Turn) and turn.asr is None and turn.result is None


def test_models_are_frozen() -> None:
    turn = Turn.model_validate({k: v for k, v in turn_dict().items()})
    with pytest.raises(ValidationError):
        turn.text = "changed"  # type: ignore[misc]
