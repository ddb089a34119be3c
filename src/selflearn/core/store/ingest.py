"""Reading ingest input (JSONL and Parquet files, in chunks), validating its rows into JSON
lines each table's columns can hold (:mod:`~selflearn.core.store.staging`), and the quarantine
of the rows that fail; :class:`~selflearn.core.store.Store` stores the rest.

The tuning constants (:data:`BATCH_ROWS`, :data:`PARALLEL_MIN_BYTES`, :data:`MAX_LINE_BYTES`)
are read from this module at run time: patch them here, not on the package.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing as mp
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson
from pydantic import ValidationError

from selflearn.core import memory
from selflearn.core.errors import DataError
from selflearn.core.schema import LOG_RECORD, TRUTH_RECORD, DialogueAct, Feedback, Truth, Turn
from selflearn.core.store import staging
from selflearn.core.store.tables import _I, _KEY, _TABLES, LOG_LAYOUTS, Layout

MAX_LINE_BYTES = 64 * 1024
"""Rows larger than this are quarantined unread (a turn record is typically under 2 KB)."""

BATCH_ROWS = 50_000
"""Rows validated together (one batch of JSON lines per table per chunk)."""

PARALLEL_MIN_BYTES = 8 * 1024 * 1024
"""Inputs smaller than this are validated in-process: starting workers would cost more."""


@dataclass
class Quarantined:
    """One rejected input row."""

    source: str
    row: int
    field: str
    reason: str
    raw: str


@dataclass
class IngestReport:
    """What an ingest run did. ``read == stored + already_present + quarantined`` always."""

    read: int = 0
    stored: int = 0
    already_present: int = 0
    quarantined: int = 0
    by_table: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    quarantine_path: Path | None = None
    seconds: float = 0.0

    @property
    def balanced(self) -> bool:
        """Whether the accounting adds up."""
        return self.read == self.stored + self.already_present + self.quarantined

    def summary(self) -> str:
        """One line: ``read N = stored A + already present B + quarantined C``."""
        return (
            f"rows read {self.read:,} = stored {self.stored:,} + already present {self.already_present:,}"
            f" + quarantined {self.quarantined:,}"
        )


@dataclass
class RecordsReport(IngestReport):
    """What :meth:`Store.ingest_records` did: the counts of :class:`IngestReport`, every rejected
    record (``row`` is its 0-based position in the input) and the positions of the stored ones."""

    rejected: list[Quarantined] = field(default_factory=list)
    stored_rows: list[int] = field(default_factory=list)
    """Positions of the records stored by this call (not the already present or rejected ones)."""


def _hash(blob: bytes) -> str:
    return hashlib.blake2b(blob, digest_size=12).hexdigest()


def error_field(exc: ValidationError) -> tuple[str, str]:
    """The field a record failed validation on and why, in the words of a quarantine row
    (shared by ingest and the service's ``POST /v1/turns``)."""
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err.get("loc", ())]
    # Drop the union tag pydantic prepends ("turn.asr.text" -> "asr.text").
    if loc and loc[0] in ("turn", "feedback", "dialogue"):
        loc = loc[1:]
    name = ".".join(loc) or "(record)"
    msg = err.get("msg", "invalid")
    if err.get("type") == "json_invalid":
        return "(json)", f"broken JSON: {msg}"
    if err.get("type") == "union_tag_not_found":
        expected = "'turn', 'feedback', 'dialogue', 'truth' or 'home'"
        return "record_type", f"missing record_type (expected {expected})"
    if err.get("type") == "union_tag_invalid":
        return "record_type", f"unknown record_type: {msg}"
    extra = f" ({len(exc.errors())} errors in this row)" if len(exc.errors()) > 1 else ""
    return name, f"{msg}{extra}"


def _digest(row: dict[str, Any]) -> str:
    """Content hash of a dumped record: equal content, equal hash, however the input was formatted."""
    return _hash(orjson.dumps(row, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS))


_TURN_OPTIONAL = ("dialogue",)
"""Turn fields added in a minor version: left out of the content hash when null (as
:data:`_TRUTH_OPTIONAL`), so a turn logged before 1.2 hashes as it did then."""


def _turn_row(turn: Turn, source: str) -> dict[str, Any]:
    row = turn.model_dump()
    digest = _digest({k: v for k, v in row.items() if v is not None or k not in _TURN_OPTIONAL})
    if row["nlu"] is not None:
        row["nlu"]["slots"] = orjson.dumps(row["nlu"]["slots"]).decode()
    row["record_hash"] = digest
    row["source"] = source
    return row


def _feedback_row(fb: Feedback | DialogueAct, source: str) -> dict[str, Any]:
    """The row of a feedback event or a dialogue act (flat records: dumped as they are)."""
    row = fb.model_dump()
    row.pop("record_type")
    digest = _digest(row)
    row["record_hash"] = digest
    row["source"] = source
    return row


_TRUTH_OPTIONAL = ("defect_without_rewrite",)
"""Truth fields added in a minor version: left out of the content hash when null, so rows
written before they existed hash as they did then (re-ingesting them stays idempotent)."""


def _truth_row(truth: Truth, source: str) -> dict[str, Any]:
    row = truth.model_dump()
    row.pop("record_type")
    digest = _digest({k: v for k, v in row.items() if v is not None or k not in _TRUTH_OPTIONAL})
    row["goal"]["slots"] = orjson.dumps(row["goal"]["slots"]).decode()
    row["goal"]["targets"] = list(row["goal"]["targets"])
    row["record_hash"] = digest
    row["source"] = source
    return row


def _drop_none_structs(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if v is not None or k in ("text",)}


def _expand(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".jsonl", ".parquet") and p.is_file())
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"no such file or directory: {path}")
    if not files:
        raise DataError("nothing to ingest: no .jsonl or .parquet files found")
    return files


_JSON_TYPES: dict[type, str] = {
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    list: "an array",
    type(None): "null",
}


@dataclass
class Rows:
    """The valid rows of one table in one chunk: each as a JSON line its table's columns can
    hold (with a leading ``_row``, the input row number), and what deduplication reads."""

    lines: list[bytes] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    """Each row's id (the table's key column)."""
    rows: list[int] = field(default_factory=list)
    """Each row's input row number."""
    hashes: list[str] = field(default_factory=list)
    source: str = ""

    def add(self, line: bytes, key: str, row: int, digest: str) -> None:
        """One more row."""
        self.lines.append(line)
        self.keys.append(key)
        self.rows.append(row)
        self.hashes.append(digest)


def staged_layout(table: str) -> Layout:
    """The columns a batch of ``table``'s rows is read with: the table's, after ``_row``."""
    return LOG_LAYOUTS[table].prepend("_row", _I)


@dataclass
class _Parsed:
    """One chunk of input after validation: its rows per table plus what the main process needs."""

    read: int
    tables: dict[str, Rows]
    bad: list[Quarantined]


@contextlib.contextmanager
def _parsed_chunks(files: Sequence[Path], workers: int | None) -> Iterator[Iterator[_Parsed]]:
    """The validated chunks of ``files``, in input order. Validation runs in ``workers`` processes
    (default: up to 2) for inputs of :data:`PARALLEL_MIN_BYTES` or more, else in this process;
    the worker pool is stopped when the context is left, however it is left."""
    jobs = (job for path in files for job in _chunks(path))
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    if workers > 1 and sum(p.stat().st_size for p in files) >= PARALLEL_MIN_BYTES:
        pool = mp.get_context("fork").Pool(workers)
        try:
            yield pool.imap(_parse_chunk, jobs)
        finally:
            pool.terminate()
            pool.join()
    else:
        yield map(_parse_chunk, jobs)


def _chunks(path: Path) -> Iterator[tuple[str, list[tuple[int, bytes | dict[str, Any]]]]]:
    source = path.name
    lines: Iterator[tuple[int, bytes | dict[str, Any]]]
    lines = _parquet_rows(path) if path.suffix == ".parquet" else _jsonl_rows(path)
    chunk: list[tuple[int, bytes | dict[str, Any]]] = []
    for item in lines:
        chunk.append(item)
        if len(chunk) >= BATCH_ROWS:
            yield source, chunk
            chunk = []
    if chunk:
        yield source, chunk


def _parse_chunk(job: tuple[str, list[tuple[int, bytes | dict[str, Any]]]]) -> _Parsed:
    """Validate a chunk and encode its rows (runs in worker processes)."""
    source, chunk = job
    bad: list[Quarantined] = []
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t, _ in _TABLES.values()}
    for row_no, raw in chunk:
        parsed = _parse(raw, row_no, source, bad)
        if parsed is not None:
            table, row = parsed
            row["_row"] = row_no
            rows[table].append(row)
    tables = {}
    for table, _ in _TABLES.values():
        if rows[table]:
            kept = _storable(table, rows[table], source, bad)
            if kept.lines:
                tables[table] = kept
    return _Parsed(len(chunk), tables, bad)


def _storable(table: str, rows: list[dict[str, Any]], source: str, bad: list[Quarantined]) -> Rows:
    """The validated rows of one table as JSON lines (a row JSON cannot hold is quarantined)."""
    out = Rows(source=source)
    key = _KEY[table]
    for row in rows:
        try:
            line = staging.encode(row)
        except TypeError as exc:
            snippet = json.dumps(row, default=str)[:300]
            bad.append(Quarantined(source, int(row["_row"]), "(record)", f"cannot be stored: {exc}", snippet))
            continue
        out.add(line, str(row[key]), int(row["_row"]), str(row["record_hash"]))
    return out


def holdable(table: str, data: Rows, bad: list[Quarantined]) -> Rows:
    """``data`` without the rows ``table``'s columns cannot hold although they validated (a value
    the schema allows and the column type does not, such as a number past 32 bits): each is
    quarantined on its own, with DuckDB's reason, instead of failing the chunk. Runs in the
    process that stores (DuckDB does not survive a fork)."""
    refused = dict(staging.refused(staged_layout(table), data.lines))
    if not refused:
        return data
    out = Rows(source=data.source)
    for i, (line, ident, row_no, digest) in enumerate(
        zip(data.lines, data.keys, data.rows, data.hashes, strict=True)
    ):
        if i in refused:
            snippet = line[:300].decode("utf-8", "replace")
            bad.append(
                Quarantined(data.source, row_no, "(record)", f"cannot be stored: {refused[i]}", snippet)
            )
            continue
        out.add(line, ident, row_no, digest)
    return out


def _snippet(raw: bytes | dict[str, Any]) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else json.dumps(raw, default=str)
    return text[:300]


def _parse(
    raw: bytes | dict[str, Any],
    row_no: int,
    source: str,
    bad: list[Quarantined],
) -> tuple[str, dict[str, Any]] | None:
    if isinstance(raw, bytes) and len(raw) > MAX_LINE_BYTES:
        bad.append(
            Quarantined(
                source,
                row_no,
                "(record)",
                f"oversized record: {len(raw):,} bytes (limit {MAX_LINE_BYTES:,})",
                _snippet(raw),
            )
        )
        return None
    try:
        if isinstance(raw, bytes):
            kind = _record_type(raw)
            if kind == "truth":
                truth = TRUTH_RECORD.validate_json(raw)
                return "sim_truth", _truth_row(truth, source)
            if kind == "home":
                data = orjson.loads(raw)
                if not isinstance(data.get("home_id"), str) or not data["home_id"]:
                    bad.append(
                        Quarantined(source, row_no, "home_id", "missing or empty home_id", _snippet(raw))
                    )
                    return None
                config = orjson.dumps(
                    {k: v for k, v in data.items() if k not in ("nicknames", "users")},
                    option=orjson.OPT_SORT_KEYS,
                )
                return "homes", {
                    "home_id": data["home_id"],
                    "config": config.decode(),
                    "record_hash": _hash(config),
                    "source": source,
                }
            record = LOG_RECORD.validate_json(raw)
        else:
            record = LOG_RECORD.validate_python(raw)
    except ValidationError as exc:
        name, reason = error_field(exc)
        bad.append(Quarantined(source, row_no, name, reason, _snippet(raw)))
        return None
    except (orjson.JSONDecodeError, ValueError) as exc:
        bad.append(Quarantined(source, row_no, "(json)", f"broken JSON: {exc}", _snippet(raw)))
        return None
    if isinstance(record, Turn):
        return "turns", _turn_row(record, source)
    if isinstance(record, DialogueAct):
        return "dialogue_acts", _feedback_row(record, source)
    return "feedback", _feedback_row(record, source)


def _record_type(raw: bytes) -> str | None:
    """Cheap look at the record type without a full parse (truth and home rows take other paths)."""
    head = raw[:64]
    if b'"record_type":"truth"' in raw[:200] or b'"record_type": "truth"' in raw[:200]:
        return "truth"
    if b'"record_type":"home"' in head or b'"record_type": "home"' in head:
        return "home"
    return None


def _jsonl_rows(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as fh:
        for row_no, line in enumerate(fh, start=1):
            line = line.strip()
            if line:
                yield row_no, line


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    con = memory.cursor()
    try:
        quoted = str(path).replace("'", "''")
        try:
            cursor = con.execute(f"SELECT * FROM read_parquet('{quoted}')")
        except duckdb.Error as exc:
            raise DataError(f"{path} is not a readable Parquet file: {exc}") from exc
        names = [column[0] for column in cursor.description or ()]
        row_no = 0
        while batch := cursor.fetchmany(10_000):
            for values in batch:
                row = dict(zip(names, values, strict=True))
                row_no += 1
                row.setdefault("record_type", "feedback" if "feedback_id" in row else "turn")
                row.pop("record_hash", None)
                row.pop("source", None)
                nlu = row.get("nlu")
                if isinstance(nlu, dict) and isinstance(nlu.get("slots"), str):
                    with contextlib.suppress(ValueError):  # validation will name the field
                        nlu["slots"] = json.loads(nlu["slots"])
                yield row_no, _drop_none_structs(row)
    finally:
        con.close()


def _count_reasons(report: IngestReport, bad: list[Quarantined]) -> None:
    """Set ``report.quarantined`` and count the rejected rows by the first words of their reason."""
    report.quarantined = len(bad)
    for q in bad:
        report.reasons[q.reason.split(":")[0].split(" (")[0]] += 1


def _write_quarantine(path: Path, bad: list[Quarantined], append: bool = False) -> None:
    """Write the rejected rows to a quarantine file, one JSON object a line: a new file is
    written whole or not at all (through a ``.tmp`` file); ``append`` adds to an existing one."""
    if append:
        with path.open("ab") as fh:
            for q in bad:
                fh.write(orjson.dumps(q.__dict__) + b"\n")
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as fh:
        for q in bad:
            fh.write(orjson.dumps(q.__dict__) + b"\n")
    tmp.replace(path)
