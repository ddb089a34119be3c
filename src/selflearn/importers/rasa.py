"""Rasa tracker-store conversations -> turns.

Input: trackers as Rasa's HTTP API returns them (``GET /conversations/{sender_id}/tracker``:
``sender_id``, ``events``, ``slots``, ``latest_message``, ...), one per file, a JSON list of
them, or one per line (JSONL). Rows: one per ``user`` event (numbered by the tracker's line in
JSONL, or its 1-based position otherwise; the quarantine's field says which event), plus one
for a tracker that cannot be read at all.

Each ``user`` event (``text``, ``timestamp`` in Unix seconds, ``input_channel``,
``parse_data.intent.name``/``confidence``, ``parse_data.entities``) is a turn; the ``bot``
events up to the next ``user`` event are its response; an ``action`` event
``action_default_fallback`` or ``action_two_stage_fallback`` in between, or the intent
``nlu_fallback``, make it a no-match. ``session_started`` events start a new session (Rasa's
own sessions). The sender is the user; without ``--household-id`` each sender is its own
household. Both ids are pseudonyms (hashes) of the sender id.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from selflearn.core.errors import ConfigError
from selflearn.importers.base import (
    BrokenLine,
    JsonLines,
    Row,
    Unmappable,
    digest,
    guarded,
    iso,
    parse_time,
    pseudonym,
    read_json,
)

FALLBACK_ACTIONS = ("action_default_fallback", "action_two_stage_fallback")
FALLBACK_INTENT = "nlu_fallback"


def trackers(path: Path) -> Iterator[tuple[int, Any]]:
    """The trackers in ``path`` with their row numbers; a :class:`ConfigError` if the file holds
    no Rasa tracker at all."""
    data = read_json(path, "a Rasa tracker export")
    if isinstance(data, JsonLines):
        items: list[tuple[int, Any]] = data
    else:
        items = list(enumerate(data if isinstance(data, list) else [data], start=1))
    if not any(isinstance(t, dict) and "events" in t for _, t in items):
        raise ConfigError(
            f"{path} is not a Rasa tracker export: no object with 'events' "
            "(expected what GET /conversations/<sender_id>/tracker returns)"
        )
    yield from items


def convert(path: Path, household_id: str | None) -> Iterator[Row]:
    """One row per user message (or per tracker that cannot be read)."""
    for row, tracker in trackers(path):
        if isinstance(tracker, BrokenLine):
            yield Row.failed(row, "(json)", tracker.reason, tracker.raw)
            continue
        if not isinstance(tracker, dict):
            yield Row.failed(
                row, "(record)", f"expected a tracker object, got {type(tracker).__name__}", tracker
            )
            continue
        sender = tracker.get("sender_id")
        events = tracker.get("events")
        if not isinstance(sender, str) or not sender:
            yield Row.failed(row, "sender_id", "missing or not a string", tracker)
            continue
        if not isinstance(events, list):
            yield Row.failed(row, "events", "missing or not a list", tracker)
            continue
        yield from guarded(row, tracker, _turns(row, sender, events, household_id))


def _turns(row: int, sender: str, events: list[Any], household_id: str | None) -> Iterator[Row]:
    household = household_id or pseudonym("hh", ["rasa", sender])
    user = pseudonym("u", ["rasa", sender])
    session = pseudonym("s", [household, sender, "start"])
    current: dict[str, Any] | None = None
    responses: list[str] = []

    def finish() -> Iterator[Row]:
        if current is not None:
            if responses:
                current["result"]["response_text"] = " ".join(responses)[:1000]
            yield Row(row, current)

    for i, event in enumerate(events):
        if not isinstance(event, dict):
            continue
        kind = event.get("event")
        if kind == "session_started":
            try:
                start = iso(parse_time(event.get("timestamp"), UTC))
            except ValueError:
                start = str(i)
            session = pseudonym("s", [household, sender, start])
        elif kind == "user":
            yield from finish()
            current, responses = None, []
            try:
                current = _turn(i, event, sender, household, user, session)
            except Unmappable as exc:
                yield Row.failed(row, exc.field, exc.reason, event)
        elif current is not None and kind == "bot" and isinstance(event.get("text"), str):
            if not responses:
                current["result"]["latency_ms"] = _latency(current, event)
            responses.append(event["text"])
        elif current is not None and kind == "action" and event.get("name") in FALLBACK_ACTIONS:
            current["result"]["status"] = "no_match"
            current["result"]["error_code"] = current["result"].get("error_code") or str(event["name"])
    yield from finish()


def _latency(turn: dict[str, Any], bot: dict[str, Any]) -> int:
    """Milliseconds from the user's message to the first bot message."""
    try:
        said = datetime.fromisoformat(turn["timestamp"].replace("Z", "+00:00"))
        return max(0, round((parse_time(bot.get("timestamp"), UTC) - said).total_seconds() * 1000))
    except ValueError:
        return 0


def _turn(
    i: int, event: dict[str, Any], sender: str, household: str, user: str, session: str
) -> dict[str, Any]:
    where = f"events[{i}]"
    text = event.get("text")
    if not isinstance(text, str):
        raise Unmappable(f"{where}.text", "missing or not a string (a user event without text)")
    try:
        when = parse_time(event.get("timestamp"), UTC)
    except ValueError as exc:
        raise Unmappable(f"{where}.timestamp", str(exc)) from None
    parse: dict[str, Any] = event["parse_data"] if isinstance(event.get("parse_data"), dict) else {}
    intent: dict[str, Any] = parse["intent"] if isinstance(parse.get("intent"), dict) else {}
    name = intent.get("name") if isinstance(intent.get("name"), str) else None
    confidence = intent.get("confidence")
    if confidence is not None and not isinstance(confidence, int | float):
        raise Unmappable(f"{where}.parse_data.intent.confidence", "not a number")
    slots: dict[str, Any] = {}
    for entity in parse.get("entities") or []:
        if isinstance(entity, dict) and isinstance(entity.get("entity"), str):
            value = entity.get("value")
            slots[entity["entity"]] = (
                value if isinstance(value, str | int | float | bool) or value is None else str(value)
            )
    fallback = name == FALLBACK_INTENT
    channel = event.get("input_channel") or "unknown"
    key = digest(household, sender, event.get("message_id") or "", event.get("timestamp"), text)
    record: dict[str, Any] = {
        "record_type": "turn",
        "turn_id": f"rasa-{key}",
        "session_id": session,
        "user_id": user,
        "household_id": household,
        "timestamp": iso(when),
        "device": {
            "device_id": "rasa-" + re.sub(r"[^A-Za-z0-9_.:\-]", "_", str(channel))[:100],
            "device_type": "chat",
        },
        "text": text,
        "result": {"status": "no_match" if fallback else "success"},
    }
    if name is not None or parse:
        record["nlu"] = {
            "matched": name is not None and not fallback,
            "intent": None if fallback else name,
            "confidence": min(1.0, max(0.0, float(confidence or 0.0))),
            "matcher": "rasa",
            "slots": slots,
        }
    if fallback:
        record["result"]["error_code"] = FALLBACK_INTENT
    return record
