"""Reading the events of a Wyoming connection without ever raising on what a client sends
(:func:`read_event`): one bad event costs a log line, not the connection (issue 53)."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from wyoming.event import Event

log = logging.getLogger("selflearn.integrations.wyoming")

__all__ = ["MAX_DATA_BYTES", "Malformed", "read_event"]


MAX_DATA_BYTES = 1 << 20
"""Largest ``data`` an event may announce (``data_length``); a longer one closes the connection
(a request is at most a few kilobytes)."""


@dataclass(frozen=True)
class Malformed:
    """An event that arrived but cannot be read as one: what it claimed to be and why not."""

    kind: str | None
    """Its ``type``, when it had one."""
    problem: str
    """What was wrong, for the log and the answer."""


async def read_event(reader: asyncio.StreamReader) -> Event | Malformed | None:
    """The next event of the connection (the Wyoming framing: a JSON header line, then
    ``data_length`` bytes of JSON data and ``payload_length`` bytes of payload), a
    :class:`Malformed` for one that cannot be read as an event -- a header that is not a JSON
    object, data that is not an object, a length that is not a count --, or ``None`` when the
    client has left (or announced more data than :data:`MAX_DATA_BYTES`: the connection cannot
    be read on). Unlike ``wyoming.event.async_read_event`` it never raises on what a client
    sends, so one bad event costs a log line, not the connection (issue 53)."""
    try:
        line = await reader.readline()
    except (ValueError, ConnectionError, asyncio.IncompleteReadError) as exc:  # a line over the limit
        log.warning("closing a Wyoming connection: unreadable header (%s)", exc)
        return None
    if not line:
        return None
    try:
        header = json.loads(line)
    except ValueError:
        return Malformed(None, f"the header is not JSON: {line[:80]!r}")
    if not isinstance(header, dict):
        return Malformed(None, f"the header is a JSON {type(header).__name__}, not an object")
    kind = header.get("type")
    kind = kind if isinstance(kind, str) else None
    data: Any = header.get("data", {})
    data_length, payload_length = header.get("data_length"), header.get("payload_length")
    problems: list[str] = []
    try:
        if data_length is not None and not (_count(data_length) and data_length <= MAX_DATA_BYTES):
            if _count(data_length):
                log.warning(
                    "closing a Wyoming connection: %s event announces %s bytes of data", kind, data_length
                )
                return None
            problems.append(f"data_length is {data_length!r}, not a count of bytes")
        elif data_length:
            raw = await reader.readexactly(data_length)
            try:
                more = json.loads(raw)
            except ValueError:
                more = None
                problems.append("its data is not JSON")
            if more is not None and not isinstance(more, dict):
                problems.append(f"its data is a JSON {type(more).__name__}, not an object")
            elif isinstance(more, dict) and isinstance(data, dict):
                data = {**data, **more}
        if payload_length is not None and not _count(payload_length):
            problems.append(f"payload_length is {payload_length!r}, not a count of bytes")
        elif payload_length:
            for start in range(0, payload_length, 1 << 16):  # no answer reads a payload: drop it
                await reader.readexactly(min(1 << 16, payload_length - start))
    except (ConnectionError, asyncio.IncompleteReadError):
        return None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.insert(0, f"its data is a JSON {type(data).__name__}, not an object")
    if kind is None:
        problems.insert(0, "it has no type")
    if problems:
        return Malformed(kind, "; ".join(problems))
    assert kind is not None
    return Event(type=kind, data=data)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
