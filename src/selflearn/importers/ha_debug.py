"""Home Assistant assist-pipeline debug runs -> turns.

Input: what the websocket command ``assist_pipeline/pipeline_debug/get`` returns for a run,
``{"events": [...]}`` (optionally with the ``pipeline_run_id`` from ``pipeline_debug/list`` next
to ``events``, or wrapped in the websocket's ``{"type": "result", "result": {...}}``), one run per
file, a JSON list of runs, or one run per line (JSONL). Rows are numbered by the run's position
in a list (1-based), or by line for JSONL.

What Home Assistant puts in a run (``homeassistant/components/assist_pipeline/pipeline.py``):
``run-start`` (pipeline id, language), ``wake_word-start``/``-end`` (``wake_word_output``),
``stt-start`` (engine) / ``stt-end`` (``stt_output.text``), ``intent-start`` (``intent_input``,
``conversation_id``, ``device_id``, engine), ``intent-end`` (``intent_output``: the
conversation result, ``response`` = ``IntentResponse.as_dict()``: ``response_type``
``action_done``/``query_answer``/``error``, ``data.code`` for errors, ``data.targets``/
``success``/``failed`` for the rest, ``speech.plain.speech``), ``tts-start``/``-end``,
``run-end`` and ``error`` (``code``, ``message``), each with a UTC ``timestamp``. The intent's
*name* is not there: ``IntentResponse.as_dict`` does not carry it, so ``nlu.intent`` stays empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from selflearn.core.errors import ConfigError
from selflearn.importers.base import (
    UNEXPECTED,
    BrokenLine,
    JsonLines,
    Row,
    Sessions,
    Unmappable,
    digest,
    iso,
    parse_time,
    pseudonym,
    read_json,
    unexpected,
)

EVENT_TYPES = frozenset(
    ("run-start", "run-end", "wake_word-start", "wake_word-end", "stt-start", "stt-vad-start", "stt-vad-end",
     "stt-end", "intent-start", "intent-progress", "intent-end", "tts-start", "tts-end", "error")
)  # fmt: skip
"""``PipelineEventType`` values (``intent-progress`` since 2025.x)."""

WHAT = "Home Assistant pipeline debug JSON"

_MATCHED_ERRORS = {"no_valid_targets", "failed_to_handle"}
"""Error codes HA returns after an intent was recognised (``IntentResponseErrorCode``)."""

_SLOT_TYPES = ("area", "floor", "domain", "device_class")
"""Response target types that name what the request was about (entities go to ``er``)."""


def runs(path: Path) -> Iterator[tuple[int, Any]]:
    """The runs of a debug file with their row numbers; a :class:`ConfigError` if the file is
    not assist-pipeline debug JSON at all."""
    data = read_json(path, WHAT)
    if isinstance(data, JsonLines):
        if not any(_is_run(item) for _, item in data):
            raise ConfigError(f"{path} is not {WHAT}: no line holds a run with pipeline 'events'")
        yield from data
        return
    if isinstance(data, dict):
        if not _is_run(data):
            raise ConfigError(
                f"{path} is not {WHAT}: an object without pipeline 'events' "
                "(expected what assist_pipeline/pipeline_debug/get returns, or a list of those)"
            )
        yield 1, _unwrap(data)
    elif isinstance(data, list):
        if data and not any(_is_run(r) for r in data):
            raise ConfigError(f"{path} is not {WHAT}: no item holds pipeline 'events'")
        yield from enumerate(data, start=1)
    else:
        raise ConfigError(f"{path} is not {WHAT}: top level is {type(data).__name__}")


def _is_run(item: Any) -> bool:
    """Whether ``item`` looks like a pipeline run: ``events`` with at least one pipeline event."""
    events = _unwrap(item).get("events") if isinstance(_unwrap(item), dict) else None
    return isinstance(events, list) and any(
        isinstance(e, dict) and isinstance(e.get("type"), str) and e["type"] in EVENT_TYPES for e in events
    )


def _unwrap(item: Any) -> Any:
    """A websocket result message -> its result."""
    if isinstance(item, dict) and item.get("type") == "result" and isinstance(item.get("result"), dict):
        return item["result"]
    return item


def convert(path: Path, household_id: str | None) -> Iterator[Row]:
    """One row per run: a turn, or why the run could not be made one."""
    sessions = Sessions()
    for row, item in runs(path):
        if isinstance(item, BrokenLine):
            yield Row.failed(row, "(json)", item.reason, item.raw)
            continue
        try:
            record = turn(_unwrap(item), household_id)
        except Unmappable as exc:
            yield Row.failed(row, exc.field, exc.reason, item)
            continue
        except UNEXPECTED as exc:
            yield unexpected(row, exc, item)
            continue
        sessions.assign(record)
        yield Row(row, record)


def _events(run: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(run, dict):
        raise Unmappable("(record)", f"expected a pipeline run object, got {type(run).__name__}")
    events = run.get("events")
    if not isinstance(events, list):
        raise Unmappable("events", "missing or not a list (expected the run's pipeline events)")
    by_type: dict[str, dict[str, Any]] = {}
    for i, event in enumerate(events):
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise Unmappable(f"events[{i}]", "not an event object with a 'type'")
        data = event.get("data")
        if data is not None and not isinstance(data, dict):
            raise Unmappable(f"events[{i}].data", "not an object")
        by_type.setdefault(event["type"], {**event, "_index": i, "data": data or {}})
    return by_type


def _time(event: dict[str, Any]) -> datetime:
    try:
        return parse_time(event.get("timestamp"), UTC)
    except ValueError as exc:
        raise Unmappable(f"events[{event['_index']}].timestamp", str(exc)) from None


def turn(run: Any, household_id: str | None) -> dict[str, Any]:
    """A pipeline debug run as a turn record (raises ``Unmappable`` naming the field)."""
    ev = _events(run)
    start = ev.get("run-start") or ev.get("wake_word-start") or ev.get("stt-start") or ev.get("intent-start")
    if start is None:
        raise Unmappable("events", "no run-start, stt-start or intent-start event: not a request")
    stt_start, stt_end, intent_start = ev.get("stt-start"), ev.get("stt-end"), ev.get("intent-start")
    intent_end, error = ev.get("intent-end"), ev.get("error")
    if intent_start is None and stt_start is None:
        what = f"the run stopped with {error['data'].get('code')!r}" if error else "no stt or intent stage"
        raise Unmappable("events", f"no request in this run ({what})")
    pipeline = str(
        start["data"].get("pipeline") or ev.get("run-start", {}).get("data", {}).get("pipeline") or ""
    )
    household = household_id or pseudonym("hh", ["home-assistant", pipeline])
    intent_data = intent_start["data"] if intent_start else {}
    device_id = intent_data.get("device_id")
    language = str(ev.get("run-start", start)["data"].get("language") or intent_data.get("language") or "en")
    asr = None
    if stt_start is not None:
        heard = ""
        if stt_end is not None:
            output = stt_end["data"].get("stt_output")
            if not isinstance(output, dict) or not isinstance(output.get("text"), str):
                raise Unmappable(
                    f"events[{stt_end['_index']}].data.stt_output.text", "missing or not a string"
                )
            heard = output["text"]
        # Home Assistant's speech-to-text reports no confidence: the text is taken as given.
        asr = {
            "text": heard,
            "confidence": 1.0 if heard else 0.0,
            "engine": str(stt_start["data"].get("engine") or "unknown"),
        }
    if intent_start is not None:
        text = intent_data.get("intent_input")
        if not isinstance(text, str):
            raise Unmappable(f"events[{intent_start['_index']}].data.intent_input", "missing or not a string")
    else:
        text = asr["text"] if asr else ""
    when = _time(start)
    conversation = intent_data.get("conversation_id")
    if intent_end is not None and not conversation:
        conversation = (intent_end["data"].get("intent_output") or {}).get("conversation_id")
    run_id = run.get("pipeline_run_id") or digest(run.get("events"))
    record: dict[str, Any] = {
        "record_type": "turn",
        "turn_id": f"ha-{digest(household, run_id)}",
        "user_id": pseudonym("u", [household, device_id or "assist"]),
        "household_id": household,
        "timestamp": iso(when),
        "device": {
            "device_id": str(device_id) if device_id else "ha-assist",
            "device_type": "satellite" if stt_start is not None else "chat",
            "locale": language,
        },
        "text": text,
    }
    if conversation:
        record["session_id"] = pseudonym("s", [household, conversation])
    if ev.get("wake_word-end") is not None:
        record["wake"] = {"score": 1.0}  # HA reports which wake word fired, not a score
    if asr is not None:
        record["asr"] = asr
    if intent_end is not None:
        _intent_result(record, intent_end, str(intent_data.get("engine") or "homeassistant"))
        record["result"]["latency_ms"] = _latency(
            stt_end or intent_start or start, ev.get("tts-start") or intent_end
        )
    elif error is not None:
        code = str(error["data"].get("code") or "unknown")
        record["result"] = {"status": "error", "error_code": code, "response_text": ""}
    return record


def _intent_result(record: dict[str, Any], intent_end: dict[str, Any], engine: str) -> None:
    where = f"events[{intent_end['_index']}].data.intent_output"
    output = intent_end["data"].get("intent_output")
    if not isinstance(output, dict) or not isinstance(output.get("response"), dict):
        raise Unmappable(f"{where}.response", "missing or not an object")
    response = output["response"]
    kind = response.get("response_type")
    data = response.get("data") if isinstance(response.get("data"), dict) else {}
    speech = ((response.get("speech") or {}).get("plain") or {}).get("speech") or ""
    if not isinstance(speech, str):
        raise Unmappable(f"{where}.response.speech.plain.speech", "not a string")
    if kind == "error":
        code = str(data.get("code") or "unknown")
        matched = code in _MATCHED_ERRORS
        status = "no_match" if code == "no_intent_match" else "error"
        record["nlu"] = {"matched": matched, "matcher": engine if matched else "none"}
        if code == "no_valid_targets":
            record["er"] = {"ok": False}
        record["result"] = {"status": status, "error_code": code, "response_text": speech}
        return
    if kind not in ("action_done", "query_answer"):
        raise Unmappable(f"{where}.response.response_type", f"unknown response type {kind!r}")
    targets = [t for key in ("targets", "success") for t in data.get(key) or [] if isinstance(t, dict)]
    slots = {
        str(t["type"]): str(t.get("name") or t.get("id")) for t in targets if t.get("type") in _SLOT_TYPES
    }
    resolved = [
        {"entity_id": str(t.get("id")), "name": str(t.get("name") or t.get("id"))}
        for t in data.get("success") or []
        if isinstance(t, dict) and t.get("type") == "entity"
    ]
    failed = [t for t in data.get("failed") or [] if isinstance(t, dict)]
    record["nlu"] = {"matched": True, "matcher": engine, "confidence": 1.0, "slots": slots}
    if resolved or failed:
        record["er"] = {"ok": True, "resolved": resolved}
    if failed and not resolved:
        record["result"] = {"status": "error", "error_code": "failed_targets", "response_text": speech}
    else:
        record["result"] = {"status": "success", "response_text": speech}


def _latency(begin: dict[str, Any], end: dict[str, Any]) -> int:
    try:
        return max(0, round((_time(end) - _time(begin)).total_seconds() * 1000))
    except Unmappable:
        return 0
