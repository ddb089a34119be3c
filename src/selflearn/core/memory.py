"""One in-memory DuckDB database per process, for reading and writing files (Parquet, JSON lines).

Opening a DuckDB database costs about 30 ms; a cursor of one already open, microseconds. Each
:func:`cursor` is a connection of its own -- its own temporary tables, registered arrays and
settings -- so callers on different threads do not meet. Times are read and written in UTC.
DuckDB does not survive a fork: a forked worker must not use the database its parent opened
(ingest validates in its workers without DuckDB for that reason).
"""

from __future__ import annotations

import threading

import duckdb

_DATABASE: duckdb.DuckDBPyConnection | None = None
_LOCK = threading.Lock()


def cursor() -> duckdb.DuckDBPyConnection:
    """A new connection to this process's in-memory database (close it, or use it in ``with``)."""
    global _DATABASE
    with _LOCK:
        if _DATABASE is None:
            _DATABASE = duckdb.connect()
        out = _DATABASE.cursor()
    out.execute("SET enable_progress_bar = false")
    out.execute("SET TimeZone = 'UTC'")
    return out
