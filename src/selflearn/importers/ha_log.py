"""Home Assistant's ``home-assistant.log`` -> turns.

Home Assistant writes its log as ``%(asctime)s.%(msecs)03d %(levelname)s (%(threadName)s)
[%(name)s] %(message)s`` with ``asctime`` in the machine's local time and no offset (older
versions: no milliseconds). The conversation component logs at DEBUG level
(``logger: logs: homeassistant.components.conversation: debug``), and the intent helper at
INFO (``logger: default: info``). The lines this importer reads (Home Assistant 2024.3 and 2025.4,
``conversation/__init__.py`` or ``agent_manager.py``, ``default_agent.py``,
``helpers/intent.py``):

=========================================================  =====================================
line                                                       becomes
=========================================================  =====================================
``Processing in en: turn on the light``                    a request (opens a turn)
``No intent was matched for 'kill the lights'``            no match (``no_intent_match``)
``Recognized intent 'HassTurnOn' for template '...' but    the intent, its slots, and an error
had unmatched: [UnmatchedTextEntity(name='area', ...)]``   (``no_valid_targets``)
``Triggering intent handler <OnOffIntentHandler -          the intent, success (the handler can
HassTurnOn>`` (``homeassistant.helpers.intent``)           still find no entity: not logged)
``'good night' matched 1 trigger(s): [...]``               a sentence trigger: success
``Intent handling error`` / ``Unexpected intent error``    an error (``failed_to_handle``/``unknown``)
``Adding assistant content: AssistantContent(...,          the response (2025.x,
content='Sorry, ...')``                                    ``conversation.chat_log``)
=========================================================  =====================================

An outcome line belongs to the newest open request at most :data:`WINDOW_S` seconds older (with
the same text where the line has it; containing the unmatched words where it names them): Home
Assistant logs a request's outcome right after it, and a success may leave no line. A request
whose outcome is not in the log (another conversation agent, or the intent helper not logged at
INFO) is stored with no result and counted in the import's notes. A ``No intent was matched`` or
trigger line with no request before it is a turn of its own; an outcome line that needs the
request's text and has none before it is quarantined.

Lines of other loggers are not rows: they are counted as "not conversation lines", and other
lines of the conversation logger (entity exposure, intent loading, timings) as "conversation
lines that are not requests". Rows are numbered by the line they start on.
"""

from __future__ import annotations

import ast
import re
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from selflearn.core.errors import ConfigError, DataError
from selflearn.importers.base import Row, Sessions, digest, iso, lines, pseudonym

WINDOW_S = 10.0
"""How long after its request an outcome line may come (Home Assistant answers in well under a
second; a request still open this long after is stored without an outcome)."""

_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:[.,](?P<frac>\d{1,6}))? (?P<level>[A-Z]+) "
    r"\((?P<thread>[^)]*)\) \[(?P<logger>[^\]]+)\] (?P<msg>.*)$"
)
_CONVERSATION = "homeassistant.components.conversation"
_INTENT_HELPER = "homeassistant.helpers.intent"

_OPEN = re.compile(r"^Processing in (?P<lang>[^:\s]+): (?P<text>.*)$")
_NO_MATCH = re.compile(r"^No intent was matched for '(?P<text>.*)'$")
_UNMATCHED = re.compile(
    r"^Recognized intent '(?P<intent>[^']*)' for template '(?P<template>.*)' "
    r"but had unmatched: (?P<rest>\[.*\])$"
)
_ENTITY = re.compile(
    r"Unmatched\w*Entity\(name='(?P<name>[^']*)', (?:text|value)=(?P<value>'[^']*'|\"[^\"]*\"|[^,)]*)"
)
_HANDLER = re.compile(
    r"^Triggering intent handler (?:<(?P<cls>[^<>]*?) - (?P<intent>[^<>]+)>|(?P<other>.+))$"
)
_TRIGGER = re.compile(r"^'(?P<text>.*)' matched (?P<n>\d+) trigger\(s\): (?P<rest>.*)$")
_RESPONSE = re.compile(
    r"^Adding assistant content: AssistantContent\(role='assistant', agent_id=(?:'[^']*'|None), "
    r"content=(?P<content>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
)
_ERRORS = {"Intent handling error": "failed_to_handle", "Unexpected intent error": "unknown"}
_PREFIXES = ("Processing in", "No intent was matched", "Recognized intent", "Triggering intent handler")

NOT_CONVERSATION = "not conversation lines"
CONTINUATION = "continuation lines (tracebacks, multi-line messages)"
NOT_REQUEST = "conversation lines that are not requests"
NO_OUTCOME = (
    "requests whose outcome the log does not show, stored without a result (selflearn's signals "
    "count that as a defect reason): log homeassistant.helpers.intent at info (logger: default: info)"
)


@dataclass
class _Request:
    row: int
    when: datetime
    key: str
    text: str
    language: str
    outcome: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    response: str | None = None


def check(path: Path) -> None:
    """A :class:`ConfigError` if the first lines of ``path`` are not Home Assistant log lines."""
    seen = 0
    try:
        for _, line in lines(path):
            if not line.strip():
                continue
            if _LINE.match(line):
                return
            seen += 1
            if seen >= 50:
                break
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    if seen:
        raise ConfigError(
            f"{path} is not a home-assistant.log: no line in the first {seen} has Home Assistant's format "
            "'YYYY-MM-DD HH:MM:SS.mmm LEVEL (Thread) [logger] message'"
        )


def convert(
    path: Path, household_id: str | None, tz: tzinfo, skipped: Counter[str], notes: Counter[str]
) -> Iterator[Row]:
    """The turns of a ``home-assistant.log`` (and the conversation lines that could not be
    read); what is not a row is counted in ``skipped``, requests without an outcome in ``notes``."""
    check(path)
    household = household_id or pseudonym("hh", ["home-assistant.log", path.name])
    sessions = Sessions()
    pending: deque[_Request] = deque()
    window = timedelta(seconds=WINDOW_S)

    def emit(now: datetime | None) -> Iterator[Row]:
        while pending and (now is None or now - pending[0].when > window):
            req = pending.popleft()
            if req.outcome is None:
                notes[NO_OUTCOME] += 1
            record = _turn(req, household)
            sessions.assign(record)
            yield Row(req.row, record)

    for number, line in lines(path):
        m = _LINE.match(line)
        if m is None:
            if _CONVERSATION in line:
                yield Row.failed(
                    number, "(line)", "a conversation line without Home Assistant's log format", line
                )
            else:
                skipped[CONTINUATION if line.strip() else NOT_CONVERSATION] += 1
            continue
        logger, msg = m["logger"], m["msg"]
        is_conv = logger == _CONVERSATION or logger.startswith(_CONVERSATION + ".")
        if not is_conv and not (logger == _INTENT_HELPER and msg.startswith("Triggering intent handler")):
            skipped[NOT_CONVERSATION] += 1
            continue
        try:
            when = datetime.strptime(m["ts"], "%Y-%m-%d %H:%M:%S").replace(
                microsecond=int((m["frac"] or "0").ljust(6, "0")), tzinfo=tz
            )
        except ValueError as exc:
            yield Row.failed(number, "timestamp", f"not a date and time: {exc}", line)
            continue
        yield from emit(when)
        key = f"{m['ts']}.{m['frac'] or ''} {msg}"
        if (o := _OPEN.match(msg)) is not None:
            pending.append(_Request(number, when, key, o["text"], o["lang"]))
            continue
        row = _outcome(msg, number, when, key, pending, window)
        if isinstance(row, Row):
            yield row
        elif row is _STANDALONE:
            yield from emit(None)  # keep time order: everything opened before goes first
            req = _standalone(msg, number, when, key)
            pending.append(req)
        elif row is _NOT_REQUEST:
            skipped[NOT_REQUEST] += 1
    yield from emit(None)


_ATTACHED, _STANDALONE, _NOT_REQUEST = object(), object(), object()


def _open_request(
    pending: deque[_Request],
    when: datetime,
    window: timedelta,
    text: str | None = None,
    accept: tuple[str | None, ...] = (None,),
    words: tuple[str, ...] = (),
) -> _Request | None:
    """The request an outcome line belongs to: the newest open one (Home Assistant logs a
    request's outcome right after it, and a request that succeeded may leave no line at all),
    with exactly ``text`` when the line has the request's text, else preferring one that contains
    all ``words`` (the unmatched parts of the sentence)."""
    open_ = [r for r in pending if r.outcome in accept and when - r.when <= window]
    if text is not None:
        open_ = [r for r in open_ if r.text == text]
    wanted = [w.strip().lower() for w in words if w.strip() and not w.startswith("<")]
    fitting = [r for r in open_ if all(w in r.text.lower() for w in wanted)]
    chosen = fitting or open_
    return chosen[-1] if chosen else None


def _outcome(
    msg: str, number: int, when: datetime, key: str, pending: deque[_Request], window: timedelta
) -> Row | object:
    """Attach an outcome line to its request; or say what else the line is."""
    if (m := _NO_MATCH.match(msg)) is not None:
        req = _open_request(pending, when, window, m["text"])
        if req is None:
            return _STANDALONE
        req.outcome = "no_match"
        return _ATTACHED
    if (m := _TRIGGER.match(msg)) is not None:
        req = _open_request(pending, when, window, m["text"])
        if req is None:
            return _STANDALONE
        req.outcome = "trigger"
        return _ATTACHED
    if (m := _UNMATCHED.match(msg)) is not None:
        slots = {e["name"]: e["value"].strip("'\"") for e in _ENTITY.finditer(m["rest"])}
        req = _open_request(pending, when, window, words=tuple(str(v) for v in slots.values()))
        if req is None:
            return Row.failed(
                number,
                "message",
                "no 'Processing in' request line before it: the request text is "
                "not in this line (log homeassistant.components.conversation at debug)",
                msg,
            )
        req.outcome, req.data = "unmatched", {"intent": m["intent"], "slots": slots}
        return _ATTACHED
    if (m := _HANDLER.match(msg)) is not None:
        req = _open_request(pending, when, window)
        if req is None:
            return _NOT_REQUEST  # an intent handled for a script or the intent API, not a conversation
        req.outcome, req.data = "handler", {"intent": (m["intent"] or "").strip() or None}
        return _ATTACHED
    if msg in _ERRORS:
        req = _open_request(pending, when, window, accept=("handler", None))
        if req is None:
            return Row.failed(number, "message", f"{msg!r} with no request line before it", msg)
        req.data = {**req.data, "error_code": _ERRORS[msg]}
        req.outcome = "error"
        return _ATTACHED
    if (m := _RESPONSE.match(msg)) is not None:
        for req in reversed(pending):
            if req.response is None and when - req.when <= window:
                req.response = ast.literal_eval(m["content"])
                return _ATTACHED
        return _NOT_REQUEST
    if msg.startswith(_PREFIXES):
        return Row.failed(
            number, "message", "a conversation line of a known kind that could not be parsed", msg
        )
    return _NOT_REQUEST


def _standalone(msg: str, number: int, when: datetime, key: str) -> _Request:
    m = _NO_MATCH.match(msg) or _TRIGGER.match(msg)
    assert m is not None
    return _Request(
        number, when, key, m["text"], "en", "no_match" if msg.startswith("No intent") else "trigger"
    )


def _turn(req: _Request, household: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "record_type": "turn",
        "turn_id": f"hal-{digest(household, req.key)}",
        "user_id": pseudonym("u", [household, "ha-log"]),
        "household_id": household,
        "timestamp": iso(req.when),
        "device": {"device_id": "ha-assist", "locale": req.language},
        "text": req.text,
    }
    intent = req.data.get("intent")
    if req.outcome == "no_match":
        record["nlu"] = {"matched": False, "matcher": "none"}
        record["result"] = {"status": "no_match", "error_code": "no_intent_match"}
    elif req.outcome == "unmatched":
        slots = req.data["slots"]
        record["nlu"] = {"matched": True, "intent": intent, "matcher": "homeassistant", "slots": slots}
        record["er"] = {"ok": False, "unresolved": [v for v in slots.values() if v]}
        record["result"] = {"status": "error", "error_code": "no_valid_targets"}
    elif req.outcome == "handler":
        # The handler ran on recognised targets; if it then found no entity in them (a
        # NoStatesMatchedError), Home Assistant answers with an error without logging it.
        record["nlu"] = {"matched": True, "intent": intent, "matcher": "homeassistant", "confidence": 1.0}
        record["result"] = {"status": "success"}
    elif req.outcome == "trigger":
        record["nlu"] = {"matched": True, "matcher": "sentence_trigger", "confidence": 1.0}
        record["result"] = {"status": "success"}
    elif req.outcome == "error":
        record["nlu"] = {"matched": True, "intent": intent, "matcher": "homeassistant"}
        record["result"] = {"status": "error", "error_code": req.data["error_code"]}
    if "result" in record and req.response:
        record["result"]["response_text"] = req.response[:1000]
    return record
