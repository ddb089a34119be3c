"""The log store: a DuckDB file holding validated turns, feedback events and (apart) simulation truth.

Ingest contract (:meth:`Store.ingest`):

* every input row is validated against :mod:`selflearn.core.schema`; a bad row goes to a quarantine
  file (JSON lines: source file, row number, field, reason, the start of the raw row), never to
  the store;
* ``rows read = rows stored + rows already present + rows quarantined``, always;
* idempotent: a row whose id is already stored with identical content is counted as already
  present; the same id with *different* content is quarantined as a conflict; an id repeated
  within one run is quarantined as a duplicate;
* transactional: the whole run commits or nothing does (the quarantine file is only written
  after the commit).

Tables: ``turns``, ``feedback``, ``homes`` (the assistant's configuration of each home), and
``sim_truth``, which only :meth:`Store.truth` reads and which learners must never touch.

Stores written by an older minor schema version keep working: opening one writable adds the
columns new fields need (``ALTER TABLE ... ADD COLUMN``); a read-only open reads the missing
columns as nulls. Rows are inserted and read by column name, never by position.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from selflearn.core.errors import DataError, StoreError
from selflearn.core.schema import LOG_RECORD, SCHEMA_VERSION, TRUTH_RECORD, Feedback, Truth, Turn

MAX_LINE_BYTES = 64 * 1024
"""Rows larger than this are quarantined unread (a turn record is typically under 2 KB)."""

BATCH_ROWS = 50_000
"""Rows validated together (one Arrow table per table per chunk)."""

PARALLEL_MIN_BYTES = 8 * 1024 * 1024
"""Inputs smaller than this are validated in-process: starting workers would cost more."""

_S = pa.string()
_F = pa.float64()
_B = pa.bool_()
_I = pa.int32()
_TS = pa.timestamp("us", tz="UTC")
_HYP = pa.struct([("text", _S), ("confidence", _F)])
_TARGET = pa.struct([("entity_id", _S), ("name", _S), ("score", _F)])

TURN_SCHEMA = pa.schema(
    [
        ("turn_id", _S),
        ("session_id", _S),
        ("user_id", _S),
        ("household_id", _S),
        ("timestamp", _TS),
        (
            "device",
            pa.struct(
                [("device_id", _S), ("device_type", _S), ("area", _S), ("has_screen", _B), ("locale", _S)]
            ),
        ),
        ("wake", pa.struct([("score", _F), ("false_wake", _B)])),
        ("asr", pa.struct([("text", _S), ("confidence", _F), ("nbest", pa.list_(_HYP)), ("engine", _S)])),
        ("text", _S),
        (
            "nlu",
            pa.struct([("matched", _B), ("intent", _S), ("slots", _S), ("confidence", _F), ("matcher", _S)]),
        ),
        ("er", pa.struct([("resolved", pa.list_(_TARGET)), ("unresolved", pa.list_(_S)), ("ok", _B)])),
        (
            "result",
            pa.struct([("status", _S), ("response_text", _S), ("error_code", _S), ("latency_ms", _I)]),
        ),
        ("barge_in", pa.struct([("occurred", _B), ("offset_ms", _I)])),
        ("feedback_requested", _B),
        (
            "rewrite",
            pa.struct(
                [("original_text", _S), ("rewritten_text", _S), ("layer", _S), ("rule_id", _S), ("score", _F)]
            ),
        ),
        ("schema_version", _S),
        ("record_hash", _S),
        ("source", _S),
    ]
)
"""Arrow/Parquet layout of the ``turns`` table (``nlu.slots`` is a JSON object as text)."""

FEEDBACK_SCHEMA = pa.schema(
    [
        ("feedback_id", _S),
        ("turn_id", _S),
        ("user_id", _S),
        ("household_id", _S),
        ("timestamp", _TS),
        ("question", _S),
        ("answer", _S),
        ("schema_version", _S),
        ("record_hash", _S),
        ("source", _S),
    ]
)

TRUTH_SCHEMA = pa.schema(
    [
        ("turn_id", _S),
        ("goal", pa.struct([("goal_id", _S), ("intent", _S), ("slots", _S), ("targets", pa.list_(_S))])),
        ("intended_text", _S),
        ("phrasing_source", _S),
        ("attempt", _I),
        ("action", _S),
        ("rephrase_of", _S),
        ("defect", _B),
        ("failure_point", _S),
        ("in_scope", _B),
        ("defect_without_rewrite", _B),
        ("schema_version", _S),
        ("record_hash", _S),
        ("source", _S),
    ]
)

HOME_SCHEMA = pa.schema([("home_id", _S), ("config", _S), ("record_hash", _S), ("source", _S)])

DEFECT_SCHEMA = pa.schema(
    [
        ("turn_id", _S),
        ("p_defect", _F),
        ("p_heuristic", _F),
        ("reasons", pa.list_(_S)),
        ("model", _S),
        ("scored_at", _TS),
    ]
)
"""The ``defects`` table: per turn, P(defect) from the learned model (or the heuristic when no
model is given), the heuristic's own score, and the signals that fired."""

REPHRASE_SCHEMA = pa.schema(
    [
        ("turn_id", _S),
        ("rephrase_of", _S),
        ("p_rephrase", _F),
        ("model", _S),
        ("scored_at", _TS),
    ]
)
"""The ``rephrases`` table: per turn, the earlier turn of its session it reformulates (null: none)
and the detector's probability for that answer."""

FPI_SCHEMA = pa.schema(
    [("turn_id", _S), ("failure_point", _S), ("probability", _F), ("model", _S), ("scored_at", _TS)]
)
"""The ``fpi`` table: per turn, the predicted first failing stage (``correct`` if none) and its
probability (see ``docs/fpi.md``)."""

SIGNAL_TABLES: dict[str, pa.Schema] = {
    "defects": DEFECT_SCHEMA,
    "rephrases": REPHRASE_SCHEMA,
    "fpi": FPI_SCHEMA,
}
"""Tables derived from the logs by the signal detectors (rewritten on every scoring run)."""

_TABLES: dict[str, tuple[str, pa.Schema]] = {
    "turn": ("turns", TURN_SCHEMA),
    "feedback": ("feedback", FEEDBACK_SCHEMA),
    "truth": ("sim_truth", TRUTH_SCHEMA),
    "home": ("homes", HOME_SCHEMA),
}
_KEY = {"turns": "turn_id", "feedback": "feedback_id", "sim_truth": "turn_id", "homes": "home_id"}


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
    if loc and loc[0] in ("turn", "feedback"):
        loc = loc[1:]
    name = ".".join(loc) or "(record)"
    msg = err.get("msg", "invalid")
    if err.get("type") == "json_invalid":
        return "(json)", f"broken JSON: {msg}"
    if err.get("type") == "union_tag_not_found":
        return "record_type", "missing record_type (expected 'turn', 'feedback', 'truth' or 'home')"
    if err.get("type") == "union_tag_invalid":
        return "record_type", f"unknown record_type: {msg}"
    extra = f" ({len(exc.errors())} errors in this row)" if len(exc.errors()) > 1 else ""
    return name, f"{msg}{extra}"


def _digest(row: dict[str, Any]) -> str:
    """Content hash of a dumped record: equal content, equal hash, however the input was formatted."""
    return _hash(orjson.dumps(row, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS))


def _turn_row(turn: Turn, source: str) -> dict[str, Any]:
    row = turn.model_dump()
    digest = _digest(row)
    if row["nlu"] is not None:
        row["nlu"]["slots"] = orjson.dumps(row["nlu"]["slots"]).decode()
    row["record_hash"] = digest
    row["source"] = source
    return row


def _feedback_row(fb: Feedback, source: str) -> dict[str, Any]:
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


class Store:
    """A DuckDB file of interaction logs.

    >>> with Store("logs.duckdb") as store:            # doctest: +SKIP
    ...     report = store.ingest(["turns.jsonl"])
    ...     print(report.summary())
    """

    def __init__(self, path: str | Path = "selflearn.duckdb", read_only: bool = False) -> None:
        self.path = Path(path)
        if read_only and not self.path.exists():
            raise StoreError(f"store {self.path} does not exist")
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        self.con.execute("SET enable_progress_bar = false")
        if not read_only:
            self._create()
        self._check_version()
        if not read_only:
            self._upgrade()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self.con.close()

    def _create(self) -> None:
        self.con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        self.con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", [SCHEMA_VERSION])
        tables = [*_TABLES.values(), *SIGNAL_TABLES.items()]
        for table, schema in tables:
            empty = schema.empty_table()  # noqa: F841 - referenced by name in SQL below
            self.con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM empty WHERE false")

    def _upgrade(self) -> None:
        """Bring a store written by an older minor version up to date: add the columns of known
        tables it lacks (null in existing rows) and record the current schema version."""
        tables = [*_TABLES.values(), *SIGNAL_TABLES.items()]
        self.con.execute("BEGIN TRANSACTION")
        try:
            for table, schema in tables:
                have = self._present_columns(table)
                missing = [name for name in schema.names if name not in have]
                types = self._sql_types(schema) if missing else {}
                for name in missing:
                    self.con.execute(f'ALTER TABLE {table} ADD COLUMN "{name}" {types[name]}')
            found = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
            if found and _version_key(str(found[0][0])) < _version_key(SCHEMA_VERSION):
                self.con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [SCHEMA_VERSION])
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def _present_columns(self, table: str) -> set[str]:
        """Columns ``table`` has in this store."""
        return {
            str(r[0]) for r in self.con.execute(f"SELECT name FROM pragma_table_info('{table}')").fetchall()
        }

    def _sql_types(self, schema: pa.Schema) -> dict[str, str]:
        """Column name -> DuckDB type of an Arrow schema."""
        empty = schema.empty_table()  # noqa: F841 - referenced by name in SQL below
        rows = self.con.execute("SELECT column_name, column_type FROM (DESCRIBE empty)").fetchall()
        return {str(name): str(kind) for name, kind in rows}

    def _select(
        self, table: str, schema: pa.Schema, exclude: tuple[str, ...] = ("record_hash", "source")
    ) -> str:
        """``SELECT`` list of ``table`` in ``schema`` order; columns an older store lacks read as
        typed nulls (read-only opens of old stores are not upgraded)."""
        have = self._present_columns(table)
        parts = []
        missing = [n for n in schema.names if n not in have and n not in exclude]
        types = self._sql_types(schema) if missing else {}
        for name in schema.names:
            if name in exclude:
                continue
            parts.append(f'"{name}"' if name in have else f'CAST(NULL AS {types[name]}) AS "{name}"')
        return ", ".join(parts)

    def _check_version(self) -> None:
        try:
            rows = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        except duckdb.Error as exc:
            raise StoreError(f"{self.path} is not a selflearn store: {exc}") from exc
        found = str(rows[0][0]) if rows else None
        if found is None or found.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise StoreError(f"{self.path} was written with schema {found}, this is {SCHEMA_VERSION}")

    # --- ingest ----------------------------------------------------------------------------------

    def ingest(
        self,
        paths: Iterable[str | Path],
        quarantine_path: str | Path | None = None,
        progress: Callable[[int], None] | None = None,
        workers: int | None = None,
    ) -> IngestReport:
        """Validate and store every row of ``paths`` (JSONL or Parquet files, or folders of them).

        ``progress(rows_read_so_far)`` is called after every batch. Validation runs in ``workers``
        processes (default: up to 2) for inputs over 8 MB; storing stays in this process, in input
        order, inside one transaction.
        """
        started = time.perf_counter()
        files = _expand(paths)
        report = IngestReport()
        bad: list[Quarantined] = []
        seen: dict[str, dict[str, str]] = {t: {} for t, _ in _TABLES.values()}
        jobs = (job for path in files for job in _chunks(path))
        pool = None
        if workers is None:
            workers = min(2, os.cpu_count() or 1)
        if workers > 1 and sum(p.stat().st_size for p in files) >= PARALLEL_MIN_BYTES:
            pool = mp.get_context("fork").Pool(workers)
            parsed: Iterator[_Parsed] = pool.imap(_parse_chunk, jobs)
        else:
            parsed = map(_parse_chunk, jobs)
        self.con.execute("BEGIN TRANSACTION")
        try:
            for chunk in parsed:
                report.read += chunk.read
                bad.extend(chunk.bad)
                for table, data in chunk.tables.items():
                    self._store_table(table, data, seen[table], report, bad)
                if progress is not None:
                    progress(report.read)
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
        bad.sort(key=lambda q: (q.source, q.row))
        report.quarantined = len(bad)
        for q in bad:
            report.reasons[q.reason.split(":")[0].split(" (")[0]] += 1
        if bad:
            qpath = (
                Path(quarantine_path)
                if quarantine_path
                else self.path.with_name(
                    f"{self.path.stem}.quarantine-{datetime.now(UTC):%Y%m%dT%H%M%S}.jsonl"
                )
            )
            tmp = qpath.with_suffix(qpath.suffix + ".tmp")
            with tmp.open("wb") as fh:
                for q in bad:
                    fh.write(orjson.dumps(q.__dict__) + b"\n")
            tmp.replace(qpath)
            report.quarantine_path = qpath
        report.seconds = time.perf_counter() - started
        if not report.balanced:  # pragma: no cover - would be a bug in this module
            raise StoreError(f"ingest accounting does not add up: {report.summary()}")
        return report

    def _store_table(
        self, table: str, data: pa.Table, seen: dict[str, str], report: IngestReport, bad: list[Quarantined]
    ) -> list[int]:
        """Insert the new rows of one validated chunk; count or quarantine the others. Returns the
        row numbers of the rows inserted."""
        key = _KEY[table]
        ids = data.column(key).to_pylist()
        rows = data.column("_row").to_pylist()
        hashes = data.column("record_hash").to_pylist()
        source = data.column("source")[0].as_py()
        incoming_ids = pa.table({"id": ids})  # noqa: F841 - used in SQL
        existing = dict(
            self.con.execute(
                f"SELECT t.{key}, t.record_hash FROM {table} t JOIN incoming_ids ON t.{key} = incoming_ids.id"
            ).fetchall()
        )
        keep = []
        for ident, row_no, digest in zip(ids, rows, hashes, strict=True):
            first = seen.get(ident)
            old = existing.get(ident)
            if first is not None:
                reason = f"duplicate {key} {ident!r} (first at {first})"
                bad.append(Quarantined(source, row_no, key, reason, ""))
                keep.append(False)
                continue
            seen[ident] = f"{source}:{row_no}"
            if old is None:
                keep.append(True)
            elif old == digest:
                report.already_present += 1
                keep.append(False)
            else:
                reason = f"conflict: {key} {ident!r} is already stored with different content"
                bad.append(Quarantined(source, row_no, key, reason, ""))
                keep.append(False)
        fresh = data.filter(pa.array(keep)).drop_columns(["_row"])
        if fresh.num_rows:
            self.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM fresh")
            report.stored += fresh.num_rows
            report.by_table[table] += fresh.num_rows
        return [row_no for row_no, kept in zip(rows, keep, strict=True) if kept]

    def ingest_records(
        self,
        records: Sequence[Any],
        source: str = "api",
        quarantine_path: str | Path | None = None,
    ) -> RecordsReport:
        """Validate and store in-memory log records (turn and feedback objects as parsed from JSON,
        e.g. by the HTTP service) with the validation, accounting and idempotency of :meth:`ingest`,
        in one transaction. Records are numbered from 0 (their position in ``records``); rejected
        ones are returned in the report and, when ``quarantine_path`` is given, appended to it."""
        started = time.perf_counter()
        report = RecordsReport(read=len(records))
        bad: list[Quarantined] = []
        rows: list[tuple[int, bytes | dict[str, Any]]] = []
        for row_no, raw in enumerate(records):
            if isinstance(raw, dict):
                rows.append((row_no, raw))
            else:
                kind = _JSON_TYPES.get(type(raw), type(raw).__name__)
                reason = f"expected a JSON object (a turn or feedback record), got {kind}"
                snippet = json.dumps(raw, default=str)[:300]
                bad.append(Quarantined(source, row_no, "(record)", reason, snippet))
        chunk = _parse_chunk((source, rows)) if rows else _Parsed(0, {}, [])
        bad.extend(chunk.bad)
        seen: dict[str, dict[str, str]] = {t: {} for t, _ in _TABLES.values()}
        self.con.execute("BEGIN TRANSACTION")
        try:
            for table, data in chunk.tables.items():
                report.stored_rows.extend(self._store_table(table, data, seen[table], report, bad))
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        report.stored_rows.sort()
        bad.sort(key=lambda q: q.row)
        report.rejected = bad
        report.quarantined = len(bad)
        for q in bad:
            report.reasons[q.reason.split(":")[0].split(" (")[0]] += 1
        if bad and quarantine_path is not None:
            with Path(quarantine_path).open("ab") as fh:
                for q in bad:
                    fh.write(orjson.dumps(q.__dict__) + b"\n")
            report.quarantine_path = Path(quarantine_path)
        report.seconds = time.perf_counter() - started
        if not report.balanced:  # pragma: no cover - would be a bug in this module
            raise StoreError(f"ingest accounting does not add up: {report.summary()}")
        return report

    def forget_household(self, household_id: str) -> dict[str, int]:
        """Delete every stored row about one household, in one transaction, and return the rows
        deleted per table: its ``turns`` and ``feedback``, its configuration in ``homes``, and the
        rows of the derived tables (``defects``, ``rephrases``, ``fpi``) and of ``sim_truth`` that
        belong to its turns. Quarantine files and mined artefacts are not touched (see
        ``docs/service.md``). A ``CHECKPOINT`` follows so the rows leave the write-ahead log."""
        turn_ids = "SELECT turn_id FROM turns WHERE household_id = $id"
        statements = {
            **{
                table: f"DELETE FROM {table} WHERE turn_id IN ({turn_ids})"
                for table in (*SIGNAL_TABLES, "sim_truth")
            },
            "feedback": f"DELETE FROM feedback WHERE household_id = $id OR turn_id IN ({turn_ids})",
            "homes": "DELETE FROM homes WHERE home_id = $id",
            "turns": "DELETE FROM turns WHERE household_id = $id",
        }
        deleted: dict[str, int] = {}
        self.con.execute("BEGIN TRANSACTION")
        try:
            for table, sql in statements.items():
                row = self.con.execute(sql, {"id": household_id}).fetchone()
                deleted[table] = int(row[0]) if row else 0
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("CHECKPOINT")
        return deleted

    # --- reading ---------------------------------------------------------------------------------

    def count(self, table: str = "turns") -> int:
        """Rows in ``table``."""
        if table not in _KEY:
            raise StoreError(f"unknown table {table!r}; expected one of {sorted(_KEY)}")
        row = self.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0]
        return int(row[0]) if row else 0

    def turns(self, where: str | None = None) -> Iterator[Turn]:
        """Stored turns as :class:`Turn` objects, in time order (learners read through this)."""
        sql = f"SELECT {self._select('turns', TURN_SCHEMA)} FROM turns"
        if where:
            sql += f" WHERE {where}"
        sql += " ORDER BY timestamp, turn_id"
        reader = self.con.sql(sql).to_arrow_reader(10_000)
        for rb in reader:
            for row in rb.to_pylist():
                if row["nlu"] is not None:
                    row["nlu"]["slots"] = json.loads(row["nlu"]["slots"])
                yield Turn.model_validate(_drop_none_structs(row))

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run a read query over the store's tables and return an Arrow table (for the signal
        detectors and miners in this package; never exposed to users or the HTTP service)."""
        try:
            return self.con.sql(sql, params=params).to_arrow_table()
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {exc}") from exc

    # --- derived signals -------------------------------------------------------------------------

    def save_signals(self, table: str, data: pa.Table) -> int:
        """Replace the ``table`` rows (``defects`` or ``rephrases``) of the turns in ``data``,
        in one transaction; returns the number of rows written."""
        schema = SIGNAL_TABLES.get(table)
        if schema is None:
            raise StoreError(f"unknown signal table {table!r}; expected one of {sorted(SIGNAL_TABLES)}")
        try:
            fresh = data.select(schema.names).cast(schema)  # noqa: F841 - used in SQL
        except (KeyError, ValueError, pa.ArrowInvalid) as exc:
            raise StoreError(f"{table} rows do not match the table layout {schema}: {exc}") from exc
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute(f"DELETE FROM {table} WHERE turn_id IN (SELECT turn_id FROM fresh)")
            self.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM fresh")
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return int(data.num_rows)

    def signals(self, table: str) -> pa.Table:
        """The stored ``defects`` or ``rephrases`` rows."""
        if table not in SIGNAL_TABLES:
            raise StoreError(f"unknown signal table {table!r}; expected one of {sorted(SIGNAL_TABLES)}")
        columns = self._select(table, SIGNAL_TABLES[table], exclude=())
        return self.con.sql(f"SELECT {columns} FROM {table} ORDER BY turn_id").to_arrow_table()

    def truth(self) -> pa.Table:
        """Simulation truth, for benchmarks only. Learners must never call this."""
        return self.con.sql(
            f"SELECT {self._select('sim_truth', TRUTH_SCHEMA)} FROM sim_truth"
        ).to_arrow_table()

    def export_parquet(self, table: str, path: str | Path) -> int:
        """Write ``table`` to a Parquet file (readable by Spark); returns the row count."""
        if table not in _KEY:
            raise StoreError(f"unknown table {table!r}; expected one of {sorted(_KEY)}")
        schema = next(sch for name, sch in _TABLES.values() if name == table)
        data = self.con.sql(f"SELECT {self._select(table, schema)} FROM {table}").to_arrow_table()
        pq.write_table(data, str(path))
        return int(data.num_rows)


def _version_key(version: str) -> tuple[int, ...]:
    """``"1.10"`` -> ``(1, 10)``, for comparing schema versions (unparsable parts count as 0)."""
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


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
class _Parsed:
    """One chunk of input after validation: Arrow tables plus what the main process needs."""

    read: int
    tables: dict[str, pa.Table]
    """Valid rows per table, with a leading ``_row`` column (input row number)."""
    bad: list[Quarantined]


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
    """Validate a chunk and build its Arrow tables (runs in worker processes)."""
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
    for table, schema in _TABLES.values():
        if rows[table]:
            tables[table] = pa.Table.from_pylist(rows[table], schema=schema.insert(0, pa.field("_row", _I)))
    return _Parsed(len(chunk), tables, bad)


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
    try:
        pf = pq.ParquetFile(str(path))
    except Exception as exc:
        raise DataError(f"{path} is not a readable Parquet file: {exc}") from exc
    row_no = 0
    for rb in pf.iter_batches(batch_size=10_000):
        for row in rb.to_pylist():
            row_no += 1
            row.setdefault("record_type", "feedback" if "feedback_id" in row else "turn")
            row.pop("record_hash", None)
            row.pop("source", None)
            nlu = row.get("nlu")
            if isinstance(nlu, dict) and isinstance(nlu.get("slots"), str):
                with contextlib.suppress(ValueError):  # validation will name the field
                    nlu["slots"] = json.loads(nlu["slots"])
            yield row_no, _drop_none_structs(row)
