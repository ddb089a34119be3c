"""The :class:`Store`: opening, creating and upgrading a store file, storing validated ingest
chunks with the accounting of :mod:`selflearn.core.store`, and the queries, signal tables,
forgetting and export the rest of selflearn reads the logs through."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import orjson

from selflearn.core.artefacts import fsync_path
from selflearn.core.errors import ConfigError, SelflearnError, StoreError
from selflearn.core.home import Home
from selflearn.core.schema import SCHEMA_VERSION, Concept, Review, Turn
from selflearn.core.store import staging
from selflearn.core.store.ingest import (
    _JSON_TYPES,
    IngestReport,
    Quarantined,
    RecordsReport,
    Rows,
    _count_reasons,
    _drop_none_structs,
    _expand,
    _parse_chunk,
    _Parsed,
    _parsed_chunks,
    _write_quarantine,
    holdable,
    staged_layout,
)
from selflearn.core.store.tables import (
    _KEY,
    _TABLES,
    CONCEPT_SCHEMA,
    DIALOGUE_SCHEMA,
    LOG_LAYOUTS,
    REVIEW_SCHEMA,
    SIGNAL_TABLES,
    STATE_TABLES,
    TRUTH_SCHEMA,
    TURN_SCHEMA,
    Layout,
)

if TYPE_CHECKING:
    import pyarrow as pa


class Store:
    """A DuckDB file of interaction logs.

    >>> with Store("logs.duckdb") as store:            # doctest: +SKIP
    ...     report = store.ingest(["turns.jsonl"])
    ...     print(report.summary())
    """

    def __init__(self, path: str | Path = "selflearn.duckdb", read_only: bool = False) -> None:
        self.path = Path(path)
        self.closed = False
        """Whether :meth:`close` was called."""
        if read_only and not self.path.exists():
            raise StoreError(f"store {self.path} does not exist")
        if not read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder of store {self.path}: {exc}") from exc
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        self._settings()
        self._state_con = self.cursor()
        self._state_lock = threading.Lock()
        if not read_only:
            self._create()
        else:
            self._stand_in()
        self._check_version()
        if not read_only:
            self._upgrade()

    def _settings(self) -> None:
        """No progress bar; times read and written in UTC (a time without an offset is UTC)."""
        self.con.execute("SET enable_progress_bar = false")
        self.con.execute("SET TimeZone = 'UTC'")

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own to this store -- its own results and temporary tables -- with
        the store's settings (a DuckDB cursor does not inherit them)."""
        cursor = self.con.cursor()
        cursor.execute("SET enable_progress_bar = false")
        cursor.execute("SET TimeZone = 'UTC'")
        return cursor

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (after a concept or review being written, which a write from
        another thread then finds closed: :class:`StoreError`)."""
        with self._state_lock:
            self.closed = True
            self._state_con.close()
        self.con.close()

    def _create(self) -> None:
        """Create what a new store holds, in one transaction: a process killed while creating
        it leaves an empty file, never a store with some of its tables."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            self._create_tables("")
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def _create_tables(self, kind: str, present: frozenset[str] = frozenset()) -> None:
        """The meta table and every known table (``kind``: ``""`` or ``"TEMP"``) not ``present``."""
        if "meta" not in present:
            self.con.execute(
                f"CREATE {kind} TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)"
            )
            self.con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", [SCHEMA_VERSION])
        tables = [*_TABLES.values(), *SIGNAL_TABLES.items(), *STATE_TABLES.items()]
        for table, schema in tables:
            if table in present:
                continue
            self.con.execute(f"CREATE {kind} TABLE IF NOT EXISTS {table} ({schema.sql()})")

    def _stand_in(self) -> None:
        """Opened read-only, a store that was never completely created -- a file with no table at
        all (a process killed before its first commit), or one whose creation an older version
        did not finish -- reads as an empty store: its missing tables stand in as empty temporary
        ones. A file with tables but no ``meta`` is not a store (:meth:`_check_version` says so)."""
        present = self._tables()
        if present and "meta" not in present:
            return
        expected = {"meta", *(t for t, _ in _TABLES.values()), *SIGNAL_TABLES, *STATE_TABLES}
        if expected - present:
            self._create_tables("TEMP", frozenset(present))

    @property
    def empty(self) -> bool:
        """Whether the store holds no log records (no turns, feedback or dialogue acts)."""
        return not any(self.count(table) for table in ("turns", "feedback", "dialogue_acts"))

    def _upgrade(self) -> None:
        """Bring a store written by an older minor version up to date: add the columns of known
        tables it lacks (null in existing rows) and record the current schema version."""
        tables = [*_TABLES.values(), *SIGNAL_TABLES.items(), *STATE_TABLES.items()]
        self.con.execute("BEGIN TRANSACTION")
        try:
            for table, schema in tables:
                have = self._present_columns(table)
                for name, kind in schema:
                    if name not in have:
                        self.con.execute(f'ALTER TABLE {table} ADD COLUMN "{name}" {kind}')
            found = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
            if found and _version_key(str(found[0][0])) < _version_key(SCHEMA_VERSION):
                self.con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [SCHEMA_VERSION])
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def _present_columns(self, table: str, con: duckdb.DuckDBPyConnection | None = None) -> set[str]:
        """Columns ``table`` has in this store (read on ``con``, default the store's connection)."""
        found = (con or self.con).execute(f"SELECT name FROM pragma_table_info('{table}')").fetchall()
        return {str(r[0]) for r in found}

    def _select(
        self,
        table: str,
        schema: Layout,
        exclude: tuple[str, ...] = ("record_hash", "source"),
        con: duckdb.DuckDBPyConnection | None = None,
    ) -> str:
        """``SELECT`` list of ``table`` in ``schema`` order; columns an older store lacks read as
        typed nulls (read-only opens of old stores are not upgraded)."""
        have = self._present_columns(table, con)
        parts = []
        for name, kind in schema:
            if name in exclude:
                continue
            parts.append(f'"{name}"' if name in have else f'CAST(NULL AS {kind}) AS "{name}"')
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
        with _parsed_chunks(files, workers) as parsed:
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
        bad.sort(key=lambda q: (q.source, q.row))
        _count_reasons(report, bad)
        if bad:
            qpath = (
                Path(quarantine_path)
                if quarantine_path
                else self.path.with_name(
                    f"{self.path.stem}.quarantine-{datetime.now(UTC):%Y%m%dT%H%M%S}.jsonl"
                )
            )
            _write_quarantine(qpath, bad)
            report.quarantine_path = qpath
        report.seconds = time.perf_counter() - started
        if not report.balanced:  # pragma: no cover - would be a bug in this module
            raise StoreError(f"ingest accounting does not add up: {report.summary()}")
        return report

    def _store_table(
        self,
        table: str,
        data: Rows,
        seen: dict[str, str],
        report: IngestReport,
        bad: list[Quarantined],
        check: bool = True,
    ) -> list[int]:
        """Insert the new rows of one validated chunk; count or quarantine the others. Returns the
        row numbers of the rows inserted. ``check=False`` skips looking for rows the columns cannot
        hold first: such a row then fails the insert (and the caller's transaction)."""
        if check:
            data = holdable(table, data, bad)
        key = _KEY[table]
        incoming_ids = {"id": np.array(data.keys, dtype=object)}  # noqa: F841 - used in SQL
        existing = dict(
            self.con.execute(
                f"SELECT t.{key}, t.record_hash FROM {table} t JOIN incoming_ids ON t.{key} = incoming_ids.id"
            ).fetchall()
        )
        kept: list[bytes] = []
        stored: list[int] = []
        for ident, row_no, digest, line in zip(data.keys, data.rows, data.hashes, data.lines, strict=True):
            first = seen.get(ident)
            old = existing.get(ident)
            if first is not None:
                reason = f"duplicate {key} {ident!r} (first at {first})"
                bad.append(Quarantined(data.source, row_no, key, reason, ""))
                continue
            seen[ident] = f"{data.source}:{row_no}"
            if old is None:
                kept.append(line)
                stored.append(row_no)
            elif old == digest:
                report.already_present += 1
            else:
                reason = f"conflict: {key} {ident!r} is already stored with different content"
                bad.append(Quarantined(data.source, row_no, key, reason, ""))
        if kept:
            with staging.lines_file(kept) as path:
                self.con.execute(
                    f"INSERT INTO {table} BY NAME SELECT * EXCLUDE (_row) FROM "
                    + staging.read_sql(path, staged_layout(table))
                )
            report.stored += len(kept)
            report.by_table[table] += len(kept)
        return stored

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
        # Stored optimistically first: the batch is read once, and a row a column cannot hold
        # (rare) fails the insert; the transaction is then undone and the batch stored again with
        # such rows found and quarantined first (two more reads, the cost ingest always pays).
        try:
            outcome = self._store_records(chunk, report, bad, check=False)
        except duckdb.Error:
            outcome = self._store_records(chunk, report, bad, check=True)
        report, bad = outcome
        report.stored_rows.sort()
        bad.sort(key=lambda q: q.row)
        report.rejected = bad
        _count_reasons(report, bad)
        if bad and quarantine_path is not None:
            _write_quarantine(Path(quarantine_path), bad, append=True)
            report.quarantine_path = Path(quarantine_path)
        report.seconds = time.perf_counter() - started
        if not report.balanced:  # pragma: no cover - would be a bug in this module
            raise StoreError(f"ingest accounting does not add up: {report.summary()}")
        return report

    def _store_records(
        self, chunk: _Parsed, report: RecordsReport, bad: list[Quarantined], check: bool
    ) -> tuple[RecordsReport, list[Quarantined]]:
        """Store one validated chunk in one transaction (see :meth:`ingest_records`); returns
        copies of ``report`` and ``bad`` with what it did, leaving them as they were on failure."""
        report = replace(report, stored_rows=[], by_table=Counter(report.by_table))
        bad = list(bad)
        seen: dict[str, dict[str, str]] = {t: {} for t, _ in _TABLES.values()}
        self.con.execute("BEGIN TRANSACTION")
        try:
            for table, data in chunk.tables.items():
                report.stored_rows.extend(self._store_table(table, data, seen[table], report, bad, check))
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return report, bad

    def homes(self) -> dict[str, Home]:
        """The stored home configurations by household id (a row without a configuration is
        skipped; none for a store without the table opened read-only). Raises
        :class:`~selflearn.core.errors.ConfigError` naming the household whose stored
        configuration is not usable."""
        if "homes" not in self._tables():
            return {}
        homes: dict[str, Home] = {}
        for home_id, config in self.con.execute("SELECT home_id, config FROM homes").fetchall():
            if not config:
                continue
            try:
                homes[str(home_id)] = Home.from_dict(json.loads(str(config)))
            except (SelflearnError, ValueError, TypeError, KeyError, AttributeError) as exc:
                raise ConfigError(f"the stored home of household {home_id} is not usable: {exc}") from exc
        return homes

    def put_home(self, home_id: str, config: dict[str, Any], source: str = "api") -> bool:
        """Store (or replace) the configuration of one home -- what mining and training read to
        delexicalize its turns (``homes`` table). Returns whether anything changed."""
        blob = orjson.dumps({**config, "home_id": home_id}, option=orjson.OPT_SORT_KEYS)
        digest = hashlib.blake2b(blob, digest_size=12).hexdigest()
        query = "SELECT record_hash FROM homes WHERE home_id = $id"
        row = self.con.execute(query, {"id": home_id}).fetchone()
        if row is not None and row[0] == digest:
            return False
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute("DELETE FROM homes WHERE home_id = $id", {"id": home_id})
            self.con.execute(
                "INSERT INTO homes VALUES ($id, $config, $hash, $source)",
                {"id": home_id, "config": blob.decode(), "hash": digest, "source": source},
            )
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return True

    def snapshot(self, path: Path | str) -> dict[str, int]:
        """Copy the whole store, consistently, into a new DuckDB file at ``path`` (which must not
        exist) and return its rows per table. DuckDB lets one process write a file and no other
        open it: learn (``selflearn signals / mine / train``) from a snapshot while the service
        keeps writing the live store (``POST /v1/admin/snapshot``)."""
        target = Path(path)
        if target.exists():
            raise StoreError(f"{target} already exists; give the snapshot a new file name")
        target.parent.mkdir(parents=True, exist_ok=True)
        row = self.con.execute("SELECT current_database()").fetchone()
        database = str(row[0]) if row else "memory"
        quoted = str(target).replace("'", "''")
        self.con.execute(f"ATTACH '{quoted}' AS selflearn_snapshot")
        try:
            self.con.execute(f'COPY FROM DATABASE "{database}" TO selflearn_snapshot')
        finally:
            self.con.execute("DETACH selflearn_snapshot")
        with Store(target, read_only=True) as copy:
            return {table: copy.count(table) for table in _KEY}

    def forget_household(self, household_id: str) -> dict[str, int]:
        """Delete every stored row about one household, in one transaction, and return the rows
        deleted per table: its ``turns``, ``feedback`` and ``dialogue_acts``, its configuration in
        ``homes``, and the rows of the derived tables (``defects``, ``rephrases``, ``fpi``) and of
        ``sim_truth`` that belong to its turns. Quarantine files and mined artefacts are not touched (see
        ``docs/service.md``). A ``CHECKPOINT`` follows so the rows leave the write-ahead log."""
        turn_ids = "SELECT turn_id FROM turns WHERE household_id = $id"
        statements = {
            **{
                table: f"DELETE FROM {table} WHERE turn_id IN ({turn_ids})"
                for table in (*SIGNAL_TABLES, "sim_truth")
            },
            "feedback": f"DELETE FROM feedback WHERE household_id = $id OR turn_id IN ({turn_ids})",
            "dialogue_acts": f"DELETE FROM dialogue_acts WHERE household_id = $id OR turn_id IN ({turn_ids})",
            "homes": "DELETE FROM homes WHERE home_id = $id",
            "concepts": "DELETE FROM concepts WHERE household_id = $id",
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

    def forget_user(self, household_id: str, user_id: str) -> dict[str, int]:
        """Delete every stored row about one user of a household, in one transaction, and return
        the rows deleted per table: the user's ``turns``, ``feedback``, ``dialogue_acts`` and
        ``concepts``, and the rows of the derived tables and of ``sim_truth`` that belong to the
        user's turns (the household's home configuration stays). A ``CHECKPOINT`` follows."""
        mine = "household_id = $id AND user_id = $user"
        turn_ids = f"SELECT turn_id FROM turns WHERE {mine}"
        statements = {
            **{
                table: f"DELETE FROM {table} WHERE turn_id IN ({turn_ids})"
                for table in (*SIGNAL_TABLES, "sim_truth")
            },
            "feedback": f"DELETE FROM feedback WHERE ({mine}) OR turn_id IN ({turn_ids})",
            "dialogue_acts": f"DELETE FROM dialogue_acts WHERE ({mine}) OR turn_id IN ({turn_ids})",
            "concepts": f"DELETE FROM concepts WHERE {mine}",
            "turns": f"DELETE FROM turns WHERE {mine}",
        }
        deleted: dict[str, int] = {}
        self.con.execute("BEGIN TRANSACTION")
        try:
            for table, sql in statements.items():
                row = self.con.execute(sql, {"id": household_id, "user": user_id}).fetchone()
                deleted[table] = int(row[0]) if row else 0
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("CHECKPOINT")
        return deleted

    def compact(self) -> int:
        """Rewrite the store file with only its live rows, so that the bytes of deleted rows are
        gone from the disk too (DuckDB marks deleted rows and reuses their space, it does not
        erase them): the database is copied into a new file next to it, which then replaces it
        atomically; the connection is reopened. A crash leaves the old file or the new one, never
        half of either. Returns the new file's size in bytes."""
        fresh = self.path.with_name(self.path.name + ".compact")
        for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
            leftover.unlink(missing_ok=True)
        row = self.con.execute("SELECT current_database()").fetchone()
        database = str(row[0]) if row else "memory"
        quoted = str(fresh).replace("'", "''")
        self.con.execute("CHECKPOINT")
        self.con.execute(f"ATTACH '{quoted}' AS selflearn_compact")
        try:
            self.con.execute(f'COPY FROM DATABASE "{database}" TO selflearn_compact')
        finally:
            self.con.execute("DETACH selflearn_compact")
        fsync_path(fresh)
        with self._state_lock:
            self._state_con.close()
            self.con.close()
            try:
                os.replace(fresh, self.path)
                self.path.with_name(self.path.name + ".wal").unlink(missing_ok=True)
                fsync_path(self.path.parent)
            finally:
                self.con = duckdb.connect(str(self.path))
                self._settings()
                self._state_con = self.cursor()
        return self.path.stat().st_size

    def quarantine_files(self) -> list[Path]:
        """The quarantine files ``ingest`` wrote next to this store (``<store>.quarantine-*.jsonl``)."""
        return sorted(self.path.parent.glob(f"{self.path.stem}.quarantine-*.jsonl"))

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
        # a cursor of its own: the caller may query the store between the turns it reads
        with self.cursor() as cursor:
            cursor.execute(sql)
            names = [column[0] for column in cursor.description or ()]
            while batch := cursor.fetchmany(10_000):
                for values in batch:
                    row = dict(zip(names, values, strict=True))
                    if row["nlu"] is not None:
                        row["nlu"]["slots"] = json.loads(row["nlu"]["slots"])
                    yield Turn.model_validate(_drop_none_structs(row))

    def rows(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a read query over the store's tables and return its rows as dicts (structs as
        dicts, lists as lists, times as UTC datetimes). For the service, the report and the
        dialogue; never exposed to users or the HTTP service as SQL."""
        try:
            cursor = self.con.execute(sql, params)
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {exc}") from exc
        names = [column[0] for column in cursor.description or ()]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]

    def value(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> Any:
        """The first column of the first row of a read query (None when it returns no row)."""
        try:
            rows = self.con.execute(sql, params).fetchall()  # all: no result left unfinished
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {exc}") from exc
        return rows[0][0] if rows else None

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run a read query over the store's tables and return an Arrow table, for the learners'
        column-wise reads (the signal detectors, the miners): needs pyarrow, which the training
        install brings (``selflearn[train]``); serving reads through :meth:`rows`."""
        try:
            return self.con.sql(sql, params=params).to_arrow_table()
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {exc}") from exc

    # --- derived signals -------------------------------------------------------------------------

    def save_signals(self, table: str, data: pa.Table | Sequence[dict[str, Any]]) -> int:
        """Replace the ``table`` rows (``defects``, ``rephrases``, ``fpi`` or ``labels``) of the
        turns in ``data`` -- an Arrow table from a learner, or rows as dicts -- in one
        transaction; returns the number of rows written."""
        schema = SIGNAL_TABLES.get(table)
        if schema is None:
            raise StoreError(f"unknown signal table {table!r}; expected one of {sorted(SIGNAL_TABLES)}")
        if isinstance(data, Sequence):
            return self._save_signal_rows(table, schema, data)
        missing = sorted(set(schema.names) - set(data.column_names))
        if missing:
            raise StoreError(f"{table} rows do not match the table layout: no column {missing}")
        columns = ", ".join(f'CAST("{name}" AS {kind}) AS "{name}"' for name, kind in schema)
        try:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE fresh AS SELECT {columns} FROM data")
        except duckdb.Error as exc:
            raise StoreError(f"{table} rows do not match the table layout {schema.sql()}: {exc}") from exc
        return self._replace_signals(table)

    def _save_signal_rows(self, table: str, schema: Layout, rows: Sequence[dict[str, Any]]) -> int:
        try:
            lines = [staging.encode({name: row.get(name) for name in schema.names}) for row in rows]
        except TypeError as exc:
            raise StoreError(f"{table} rows cannot be stored: {exc}") from exc
        refused = staging.refused(schema, lines)
        if refused:
            at, why = refused[0]
            raise StoreError(f"{table} row {at} does not match the table layout {schema.sql()}: {why}")
        with staging.lines_file(lines) as path:
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE fresh AS SELECT * FROM {staging.read_sql(path, schema)}"
            )
        return self._replace_signals(table)

    def _replace_signals(self, table: str) -> int:
        """Replace the rows of ``table`` whose turns are in the temporary table ``fresh``."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute(f"DELETE FROM {table} WHERE turn_id IN (SELECT turn_id FROM fresh)")
            self.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM fresh")
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        finally:
            written = int(self.value("SELECT count(*) FROM fresh"))
            self.con.execute("DROP TABLE IF EXISTS fresh")
        return written

    def signals(self, table: str) -> pa.Table:
        """The stored ``defects`` or ``rephrases`` rows (Arrow, for the learners)."""
        if table not in SIGNAL_TABLES:
            raise StoreError(f"unknown signal table {table!r}; expected one of {sorted(SIGNAL_TABLES)}")
        columns = self._select(table, SIGNAL_TABLES[table], exclude=())
        return self.con.sql(f"SELECT {columns} FROM {table} ORDER BY turn_id").to_arrow_table()

    def dialogue_acts(self, where: str | None = None) -> list[dict[str, Any]]:
        """The stored dialogue acts (questions asked and how they ended), oldest first, as dicts;
        none for a store written before schema 1.2 that was opened read-only."""
        if "dialogue_acts" not in self._tables():
            return []
        sql = f"SELECT {self._select('dialogue_acts', DIALOGUE_SCHEMA)} FROM dialogue_acts"
        if where:
            sql += f" WHERE {where}"
        return self.rows(sql + " ORDER BY timestamp, act_id")

    def _tables(self, con: duckdb.DuckDBPyConnection | None = None) -> set[str]:
        found = (con or self.con).execute("SELECT table_name FROM duckdb_tables()").fetchall()
        return {str(r[0]) for r in found}

    # --- taught concepts (state, changed in place) -----------------------------------------------

    # Concepts and reviews are written on a connection of their own, opened with the store, one
    # write at a time, in their own transaction: the service writes what a household teaches from
    # its dialogue's threads while another thread may be storing turns on the store's connection,
    # which DuckDB refuses to share ("connection is busy": even to open a cursor on it) and whose
    # open transaction a write must not join.

    @contextmanager
    def _state_writes(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._state_lock:
            if self.closed:
                raise StoreError(f"store {self.path} is closed")
            yield self._state_con

    def put_concept(self, concept: Concept) -> Concept | None:
        """Store ``concept``, replacing the one of the same id (the same phrase, scope and home),
        in one transaction; returns the concept it replaced, if any. Safe beside another thread
        using the store."""
        before = self._put_state("concepts", CONCEPT_SCHEMA, "concept_id", concept, "taught")
        return Concept.model_validate(before) if before is not None else None

    def forget_concept(self, concept_id: str) -> bool:
        """Delete one concept; returns whether it existed. Safe beside another thread using the
        store."""
        with self._state_writes() as con:
            row = con.execute(
                "DELETE FROM concepts WHERE concept_id = $id RETURNING concept_id", {"id": concept_id}
            ).fetchall()
        return bool(row)

    def concepts(
        self, household_id: str | None = None, where: str | None = None, params: dict[str, Any] | None = None
    ) -> list[Concept]:
        """The stored concepts (of one home, or matching ``where``), oldest first; none for a
        store written before they existed that was opened read-only."""
        clauses, args = [], dict(params or {})
        if household_id is not None:
            clauses.append("household_id = $household")
            args["household"] = household_id
        if where:
            clauses.append(f"({where})")
        rows = self._state_rows("concepts", CONCEPT_SCHEMA, clauses, args, "timestamp, concept_id")
        return [Concept.model_validate(row) for row in rows]

    # --- reviews of learned rewrites (state, changed in place) ------------------------------------

    def put_review(self, review: Review) -> Review | None:
        """Store ``review``, replacing the verdict of the same id (the same rule), in one
        transaction; returns the verdict it replaced, if any."""
        before = self._put_state("reviews", REVIEW_SCHEMA, "review_id", review, "review")
        return Review.model_validate(before) if before is not None else None

    def reviews(self, where: str | None = None, params: dict[str, Any] | None = None) -> list[Review]:
        """The stored verdicts, oldest first; none for a store written before they existed that
        was opened read-only."""
        clauses = [f"({where})"] if where else []
        rows = self._state_rows("reviews", REVIEW_SCHEMA, clauses, dict(params or {}), "timestamp, review_id")
        return [Review.model_validate(row) for row in rows]

    def _put_state(
        self, table: str, schema: Layout, key: str, record: Concept | Review, source: str
    ) -> dict[str, Any] | None:
        """Replace the row of ``table`` whose ``key`` is the record's, in one transaction on a
        connection of its own (see above); returns the row it replaced, if any."""
        row = record.model_dump(mode="json")
        row.pop("record_type")
        row["record_hash"] = hashlib.blake2b(
            orjson.dumps(row, option=orjson.OPT_SORT_KEYS), digest_size=12
        ).hexdigest()
        row["source"] = source
        row["timestamp"] = record.timestamp
        line = staging.encode(row)
        refused = staging.refused(schema, [line])
        if refused:
            raise StoreError(f"the {table} row {row[key]!r} cannot be stored: {refused[0][1]}")
        with self._state_writes() as con, staging.lines_file([line]) as path:
            before = self._state_rows(table, schema, [f"{key} = $id"], {"id": row[key]}, key, con)
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"DELETE FROM {table} WHERE {key} = $id", {"id": row[key]})
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {staging.read_sql(path, schema)}")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return before[0] if before else None

    def _state_rows(
        self,
        table: str,
        schema: Layout,
        clauses: list[str],
        args: dict[str, Any],
        order: str,
        con: duckdb.DuckDBPyConnection | None = None,
    ) -> list[dict[str, Any]]:
        """Rows of a state table as dicts (none when a read-only old store lacks the table), read
        on ``con`` (default: the store's connection)."""
        con = con or self.con
        if table not in self._tables(con):
            return []
        sql = f"SELECT {self._select(table, schema, con=con)} FROM {table}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        cursor = con.execute(f"{sql} ORDER BY {order}", args)
        names = [column[0] for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def truth(self) -> pa.Table:
        """Simulation truth (Arrow), for benchmarks only. Learners must never call this."""
        return self.con.sql(
            f"SELECT {self._select('sim_truth', TRUTH_SCHEMA)} FROM sim_truth"
        ).to_arrow_table()

    def export_parquet(self, table: str, path: str | Path) -> int:
        """Write ``table`` to a Parquet file (readable by Spark); returns the row count."""
        if table not in _KEY:
            raise StoreError(f"unknown table {table!r}; expected one of {sorted(_KEY)}")
        schema = LOG_LAYOUTS.get(table) or STATE_TABLES[table]
        quoted = str(path).replace("'", "''")
        self.con.execute(
            f"COPY (SELECT {self._select(table, schema)} FROM {table}) TO '{quoted}' (FORMAT parquet)"
        )
        return int(self.value(f"SELECT count(*) FROM {table}"))


def _version_key(version: str) -> tuple[int, ...]:
    """``"1.10"`` -> ``(1, 10)``, for comparing schema versions (unparsable parts count as 0)."""
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))
