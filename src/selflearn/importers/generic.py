"""The generic import format: one request per JSONL line or CSV row -> turns.

Columns (JSONL keys or CSV header names; only ``text`` is required, an unknown column is an
error so that a typo is not silently dropped):

============  ==========================================================================
column        meaning
============  ==========================================================================
text          what the user said or typed (required, non-empty)
timestamp     ISO 8601 (``Z`` or an offset; without one it is read in ``--timezone``) or
              Unix seconds; a row without one is placed 1 s after the row before it
household_id  the home (hashed to a pseudonym; ``--household-id`` overrides it)
user_id       the speaker or account (hashed)
session_id    the conversation (hashed); without it, turns of one user and device are one
              session until a 5-minute gap
matched       whether the assistant understood the request (true/false, 1/0, yes/no)
intent        the intent it recognised
status        ``success``, ``error``, ``no_match`` or ``unsupported`` (else derived:
              matched false -> no_match; an error_code -> error; matched true -> success)
response      what the assistant answered
error_code    machine-readable reason of a failure (e.g. ``no_valid_targets``)
device_id     the device (hashed)
area          the room the device is in
============  ==========================================================================

Rows are numbered by line (CSV: the line the record ends on, header = line 1).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from selflearn.core.errors import ConfigError, DataError
from selflearn.importers.base import (
    UNEXPECTED,
    Row,
    Sessions,
    Unmappable,
    digest,
    iso,
    lines,
    parse_time,
    pseudonym,
    unexpected,
)

COLUMNS = (
    "text", "timestamp", "household_id", "user_id", "session_id", "matched", "intent", "status",
    "response", "error_code", "device_id", "area",
)  # fmt: skip
STATUSES = ("success", "error", "no_match", "unsupported")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def rows(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, row)`` of a JSONL or (by suffix) CSV file; a row is a dict, or a
    ``(field, reason)`` tuple for a line that is not a row."""
    if path.suffix.lower() == ".csv":
        yield from _csv_rows(path)
    else:
        yield from _jsonl_rows(path)


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    seen = objects = 0
    try:
        for number, line in lines(path):
            if not line.strip():
                continue
            seen += 1
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                item = ("(json)", f"broken JSON: {exc}")
            objects += isinstance(item, dict)
            if seen == 20 and not objects:
                raise ConfigError(f"{path} is not generic JSONL: none of its first 20 lines is a JSON object")
            yield number, item if isinstance(item, dict | tuple) else ("(record)", "not a JSON object")
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    if seen and not objects:
        raise ConfigError(f"{path} is not generic JSONL: no line is a JSON object")


def _csv_rows(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in reader.fieldnames or []]
            unknown = [h for h in header if h not in COLUMNS]
            if "text" not in header or unknown:
                what = f"unknown columns {unknown}" if unknown else "no 'text' column"
                raise ConfigError(f"{path} is not a generic CSV: {what} (columns: {', '.join(COLUMNS)})")
            reader.fieldnames = header
            for row in reader:
                if None in row:
                    yield reader.line_num, ("(record)", f"{len(row[None])} more cells than columns")
                    continue
                yield reader.line_num, {k: v for k, v in row.items() if v not in (None, "")}
    except (OSError, csv.Error) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def convert(path: Path, household_id: str | None, tz: tzinfo) -> Iterator[Row]:
    """One row per input line."""
    sessions = Sessions()
    last: datetime | None = None
    for number, item in rows(path):
        if isinstance(item, tuple):
            yield Row.failed(number, item[0], item[1], "")
            continue
        try:
            record, when = turn(item, number, household_id, tz, last)
        except Unmappable as exc:
            yield Row.failed(number, exc.field, exc.reason, item)
            continue
        except UNEXPECTED as exc:
            yield unexpected(number, exc, item)
            continue
        last = when
        sessions.assign(record)
        yield Row(number, record)


def _str(row: dict[str, Any], name: str) -> str | None:
    value = row.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Unmappable(name, f"expected a string, got {type(value).__name__}")
    return str(value)


def _bool(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str | int) and str(value).strip().lower() in _TRUE | _FALSE:
        return str(value).strip().lower() in _TRUE
    raise Unmappable("matched", f"expected true or false, got {value!r}")


def turn(
    row: dict[str, Any], number: int, household_id: str | None, tz: tzinfo, last: datetime | None
) -> tuple[dict[str, Any], datetime]:
    """One generic row as a turn record and its time (raises ``Unmappable`` naming the column)."""
    unknown = sorted(set(row) - set(COLUMNS))
    if unknown:
        raise Unmappable(unknown[0], f"unknown column (columns: {', '.join(COLUMNS)})")
    text = row.get("text")
    if not isinstance(text, str) or not text.strip():
        raise Unmappable("text", "missing, empty or not a string")
    if row.get("timestamp") not in (None, ""):
        try:
            when = parse_time(row["timestamp"], tz)
        except ValueError as exc:
            raise Unmappable("timestamp", str(exc)) from None
        key: list[Any] = []
    else:
        when = (last or datetime(1970, 1, 1, tzinfo=UTC)) + timedelta(seconds=1)
        key = [number]  # rows without a time are told apart by where they are
    household = household_id or (
        pseudonym("hh", row_household) if (row_household := _str(row, "household_id")) else None
    )
    user_name = _str(row, "user_id")
    household = household or pseudonym("hh", ["user", user_name or "unknown"])
    device_name = _str(row, "device_id")
    matched, intent = _bool(row.get("matched")), _str(row, "intent")
    status, error_code, response = _str(row, "status"), _str(row, "error_code"), _str(row, "response")
    if status is not None and status not in STATUSES:
        raise Unmappable("status", f"expected one of {', '.join(STATUSES)}, got {status!r}")
    if matched is None and intent is not None:
        matched = True
    if status is None:
        if matched is False:
            status = "no_match"
        elif error_code is not None:
            status = "error"
        elif matched:
            status = "success"
    record: dict[str, Any] = {
        "record_type": "turn",
        "turn_id": f"gen-{digest(household, {k: row[k] for k in sorted(row)}, *key)}",
        "user_id": pseudonym("u", [household, user_name or "unknown"]),
        "household_id": household,
        "timestamp": iso(when),
        "device": {
            "device_id": pseudonym("d", [household, device_name]) if device_name else "unknown-device"
        },
        "text": text,
    }
    if (area := _str(row, "area")) is not None:
        record["device"]["area"] = area
    if (session := _str(row, "session_id")) is not None:
        record["session_id"] = pseudonym("s", [household, session])
    if matched is not None:
        record["nlu"] = {"matched": matched, "intent": intent if matched else None, "matcher": "imported"}
    if status is not None:
        record["result"] = {"status": status, "response_text": response or "", "error_code": error_code}
    return record, when
