"""What every importer shares: converted rows, pseudonymous ids, timestamps, sessions, and
ingesting converted rows through :meth:`Store.ingest_records` with one accounting.

An importer turns a file into a stream of :class:`Row`: each is either a log record (a turn as a
JSON-like dict, validated later by the store exactly like ``selflearn ingest``) or a conversion
failure (the field and the reason). :func:`ingest_rows` stores the records in batches and
quarantines the failures, so that ``rows read = stored + already present + quarantined`` holds
for every row the importer produced, whether it failed to convert or to validate.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from selflearn.core.errors import ConfigError, DataError
from selflearn.core.store import Quarantined, RecordsReport, Store

BATCH_ROWS = 20_000
"""Records stored per transaction (one :meth:`Store.ingest_records` call)."""

SESSION_GAP_S = 300
"""Turns of one household, user and device further apart than this start a new session, for
inputs that carry no session (or conversation) id of their own."""

_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


@dataclass
class Row:
    """One input row after conversion: a record, or the reason it could not be converted."""

    row: int
    """Where it is in the input: the line number (1-based) for line formats, else the position
    of the run or tracker (1-based); the importer's docs say which."""
    record: dict[str, Any] | None = None
    field: str = "(record)"
    reason: str = ""
    raw: str = ""

    @classmethod
    def failed(cls, row: int, name: str, reason: str, raw: Any = "") -> Row:
        """A row that could not be converted (quarantined with ``name`` as its field)."""
        return cls(row, None, name, reason, snippet(raw))


class Unmappable(Exception):
    """An input row that cannot be made a log record: the field (in the input's terms) and why."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = name, reason


UNEXPECTED = (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError)
"""What converting a row of an unexpected shape raises (a list where an object was, a number where
text was): the row is quarantined with the reason, the import goes on."""


def unexpected(row: int, exc: Exception, raw: Any) -> Row:
    """The quarantined row of an input row whose shape broke its converter."""
    return Row.failed(row, "(record)", f"cannot be converted: {type(exc).__name__}: {exc}", raw)


def guarded(row: int, raw: Any, rows: Iterator[Row]) -> Iterator[Row]:
    """``rows`` (converted from the input row ``raw``), ending in a quarantined row instead of an
    exception when the input has a shape the converter did not expect."""
    try:
        yield from rows
    except Unmappable as exc:
        yield Row.failed(row, exc.field, exc.reason, raw)
    except UNEXPECTED as exc:
        yield unexpected(row, exc, raw)


@dataclass
class BrokenLine:
    """A line of a JSONL file that is not JSON (quarantined as ``(json)``)."""

    reason: str
    raw: str


class JsonLines(list[tuple[int, Any]]):
    """The items of a JSONL file with their line numbers (a :class:`BrokenLine` where a line is
    not JSON)."""


def read_json(path: Path, what: str) -> Any:
    """The JSON document in ``path``, or its lines as :class:`JsonLines` when it holds one JSON
    value per line. A :class:`ConfigError` saying the file is not ``what`` when it is neither
    UTF-8 text nor JSON; a :class:`DataError` when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not {what}: not UTF-8 text") from exc
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise ConfigError(f"{path} is not {what}: {exc}") from exc
    items = JsonLines()
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                items.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                items.append((number, BrokenLine(f"broken JSON: {exc}", line)))
    return items


@dataclass
class ImportResult:
    """What an import did. ``report`` counts every row the importer produced (turns and rows it
    could not convert): ``read == stored + already_present + quarantined``; ``skipped`` counts
    input that is not a row at all (e.g. log lines of other components), by what it was."""

    kind: str
    path: Path
    report: RecordsReport
    skipped: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    """Stored rows worth a word, by what they are (e.g. turns whose outcome the log does not show)."""

    @property
    def balanced(self) -> bool:
        """Whether the accounting adds up."""
        return self.report.balanced

    def summary(self) -> str:
        """One line: ``rows read N = stored A + already present B + quarantined C``."""
        return self.report.summary()


def snippet(raw: Any) -> str:
    """The start of a raw input row, for the quarantine file."""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace")[:300]
    if isinstance(raw, str):
        return raw[:300]
    return json.dumps(raw, default=str)[:300]


def digest(*parts: Any) -> str:
    """A short, stable hash of ``parts`` (16 hex characters)."""
    blob = orjson.dumps(list(parts), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    return hashlib.blake2b(blob, digest_size=8, person=b"selflearn-import").hexdigest()


def pseudonym(prefix: str, value: Any) -> str:
    """A pseudonymous id for a person, home, device or session named ``value`` in the input
    (e.g. ``pseudonym("u", "anna")`` -> ``u-3f...``): the same input gives the same id, and the
    id does not show the name. Pseudonymous, not anonymous: anyone holding a candidate name can
    hash it and compare."""
    return f"{prefix}-{digest(prefix, value)}"


def check_household(household_id: str | None) -> str | None:
    """``--household-id`` as given, or a :class:`ConfigError` if it is not a valid id."""
    if household_id is not None and not _ID.match(household_id):
        raise ConfigError(
            f"--household-id {household_id!r} is not a valid id: 1-128 characters of A-Z a-z 0-9 _ . : -"
        )
    return household_id


def zone(name: str) -> tzinfo:
    """The time zone ``name`` (IANA, e.g. ``Europe/Amsterdam``, or ``UTC``)."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"--timezone {name!r} is not a known time zone (e.g. UTC, Europe/Amsterdam)"
        ) from exc


def parse_time(value: Any, tz: tzinfo) -> datetime:
    """An ISO 8601 string (``Z`` or an offset; without one it is read in ``tz``) or a Unix time in
    seconds, as an aware datetime. Raises ``ValueError`` with a readable message."""
    if isinstance(value, bool):
        raise ValueError(f"expected an ISO 8601 time or Unix seconds, got {value!r}")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected an ISO 8601 time or Unix seconds, got {value!r}")
    text = value.strip()
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        try:
            return datetime.fromtimestamp(float(text), UTC)
        except ValueError:
            raise ValueError(f"not an ISO 8601 time: {value!r}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=tz)


def iso(when: datetime) -> str:
    """``when`` as ISO 8601 in UTC."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Sessions:
    """Session ids for turns that come without one: the turns of one (household, user, device)
    are one session until a gap of more than :data:`SESSION_GAP_S` seconds. Turns are expected
    in time order per key (as logs are); a turn earlier than the previous one starts a session."""

    def __init__(self, gap_s: float = SESSION_GAP_S) -> None:
        self.gap = timedelta(seconds=gap_s)
        self._open: dict[tuple[str, str, str], tuple[datetime, str]] = {}

    def assign(self, record: dict[str, Any]) -> None:
        """Set ``record["session_id"]`` if it has none (``record["timestamp"]`` is ISO 8601)."""
        if record.get("session_id"):
            return
        key = (
            str(record.get("household_id")),
            str(record.get("user_id")),
            str(record["device"]["device_id"]),
        )
        try:
            when = datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00"))
        except ValueError:
            record["session_id"] = pseudonym("s", [*key, record["timestamp"]])
            return
        last = self._open.get(key)
        if last is None or not (timedelta(0) <= when - last[0] <= self.gap):
            session = pseudonym("s", [*key, iso(when)])
        else:
            session = last[1]
        self._open[key] = (when, session)
        record["session_id"] = session


def ingest_rows(
    store: Store,
    rows: Iterable[Row],
    *,
    kind: str,
    path: Path,
    quarantine_path: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> RecordsReport:
    """Store the records among ``rows`` (validated by :meth:`Store.ingest_records`, in batches of
    :data:`BATCH_ROWS`) and quarantine the rest; rejected rows keep their input position. The
    quarantine file (``quarantine_path``, default next to the store) is written when any row is
    rejected."""
    started = time.perf_counter()
    total = RecordsReport()
    rejected: list[Quarantined] = []
    source = f"{kind}:{path.name}"
    batch: list[Row] = []

    def flush() -> None:
        records = [r.record for r in batch if r.record is not None]
        positions = [r.row for r in batch if r.record is not None]
        for r in batch:
            if r.record is None:
                rejected.append(Quarantined(path.name, r.row, r.field, r.reason, r.raw))
                total.read += 1
        if records:
            report = store.ingest_records(records, source=source)
            total.read += report.read
            total.stored += report.stored
            total.already_present += report.already_present
            total.by_table.update(report.by_table)
            for q in report.rejected:
                index = q.row  # position in this batch's records
                q.row, q.source = positions[index], path.name
                q.raw = q.raw or snippet(records[index])
                rejected.append(q)
        batch.clear()
        if progress is not None:
            progress(total.read)

    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            flush()
    flush()
    rejected.sort(key=lambda q: q.row)
    total.rejected = rejected
    total.quarantined = len(rejected)
    for q in rejected:
        total.reasons[q.reason.split(":")[0].split(" (")[0]] += 1
    if rejected:
        qpath = (
            Path(quarantine_path)
            if quarantine_path
            else store.path.with_name(f"{store.path.stem}.quarantine-{datetime.now(UTC):%Y%m%dT%H%M%S}.jsonl")
        )
        tmp = qpath.with_suffix(qpath.suffix + ".tmp")
        with tmp.open("wb") as fh:
            for q in rejected:
                fh.write(orjson.dumps(q.__dict__) + b"\n")
        tmp.replace(qpath)
        total.quarantine_path = qpath
    total.seconds = time.perf_counter() - started
    return total


def lines(path: Path) -> Iterator[tuple[int, str]]:
    """The lines of a text file with their 1-based numbers (undecodable bytes replaced)."""
    with path.open("r", encoding="utf-8", errors="replace", newline="") as fh:
        for number, line in enumerate(fh, start=1):
            yield number, line.rstrip("\r\n")
