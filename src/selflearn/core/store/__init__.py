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

Tables: ``turns``, ``feedback``, ``dialogue_acts`` (the questions asked and how they ended),
``concepts`` (what users taught), ``homes`` (the assistant's configuration of each home), and
``sim_truth``, which only :meth:`Store.truth` reads and which learners must never touch.

Stores written by an older minor schema version keep working: opening one writable adds the
columns new fields need (``ALTER TABLE ... ADD COLUMN``); a read-only open reads the missing
columns as nulls. Rows are inserted and read by column name, never by position.

The package is split by purpose: :mod:`~selflearn.core.store.tables` (the layouts of the tables:
column names and DuckDB types, the log tables derived from :mod:`selflearn.core.schema`),
:mod:`~selflearn.core.store.ingest` (reading, validating and quarantining input rows),
:mod:`~selflearn.core.store.staging` (rows into DuckDB as JSON lines, with no other columnar
library) and :mod:`~selflearn.core.store.store` (the :class:`Store`). Serving reads the store as
rows (:meth:`Store.rows`); the learners' column-wise reads (:meth:`Store.query`) are Arrow tables
and need pyarrow (``selflearn[train]``). Everything is imported from here; the ingest tuning
constants are re-exported for reading, but take effect where they are defined (patch
``selflearn.core.store.ingest``).
"""

from __future__ import annotations

from selflearn.core.store.files import scrub_lines
from selflearn.core.store.ingest import (
    BATCH_ROWS,
    MAX_LINE_BYTES,
    PARALLEL_MIN_BYTES,
    IngestReport,
    Quarantined,
    RecordsReport,
    error_field,
)
from selflearn.core.store.store import Store
from selflearn.core.store.tables import (
    DEFECT_SCHEMA,
    DIALOGUE_SCHEMA,
    FEEDBACK_SCHEMA,
    FPI_SCHEMA,
    HOME_SCHEMA,
    LABEL_SCHEMA,
    REPHRASE_SCHEMA,
    SIGNAL_TABLES,
    TRUTH_SCHEMA,
    TURN_SCHEMA,
)

__all__ = [
    "BATCH_ROWS",
    "DEFECT_SCHEMA",
    "DIALOGUE_SCHEMA",
    "FEEDBACK_SCHEMA",
    "FPI_SCHEMA",
    "HOME_SCHEMA",
    "LABEL_SCHEMA",
    "MAX_LINE_BYTES",
    "PARALLEL_MIN_BYTES",
    "REPHRASE_SCHEMA",
    "SIGNAL_TABLES",
    "TRUTH_SCHEMA",
    "TURN_SCHEMA",
    "IngestReport",
    "Quarantined",
    "RecordsReport",
    "Store",
    "error_field",
    "scrub_lines",
]
