"""Rows into DuckDB with no other columnar library: JSON lines read with a table's layout.

A batch of rows becomes one JSON object a line (:func:`encode`), written to a temporary file
(:func:`lines_file`, in a folder only its user may read, swept of what killed processes left)
that DuckDB's ``read_json`` reads with the table's column types (:func:`read_sql`); 100,000 turns
take about 0.4 s. A value the column cannot hold (a number past 32 bits, a list where a string
goes) fails the whole read, and a failed statement aborts the store's transaction, so
:func:`refused` finds such lines -- before a bulk ingest stores a batch, or after a small batch
failed to store and was undone -- on the process's in-memory database
(:mod:`selflearn.core.memory`, never in a forked ingest worker): the batch in one read, and only
when that fails, halves of it until each refused line is alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import orjson

from selflearn.core import memory
from selflearn.core.store.tables import Layout


def encode(row: dict[str, Any]) -> bytes:
    """One row as a JSON line (times in ISO 8601 with their offset). Raises ``TypeError`` for a
    value JSON cannot hold (orjson's ``JSONEncodeError`` is one)."""
    return orjson.dumps(row)


def staging_folder() -> Path:
    """The folder batches are staged in: one per user under the system's temporary folder, only
    its owner may read it. The first call of a process removes what processes that are gone left
    there (a service killed mid-batch cannot remove its file, which holds people's requests)."""
    global _swept
    uid = os.getuid() if hasattr(os, "getuid") else 0
    folder = Path(tempfile.gettempdir()) / f"selflearn-staging-{uid}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if not _swept:
        _swept = True
        sweep(folder)
    return folder


_swept = False


def sweep(folder: Path) -> int:
    """Remove the staged files in ``folder`` whose process (the number their name starts with)
    no longer runs; returns how many went."""
    gone = 0
    for path in folder.glob("*.jsonl"):
        pid = path.name.split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            path.unlink(missing_ok=True)
            gone += 1
    return gone


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it runs
        return True
    return True


@contextlib.contextmanager
def lines_file(lines: Sequence[bytes]) -> Iterator[Path]:
    """A temporary file holding ``lines`` (one JSON object each) in :func:`staging_folder`,
    removed when left (and, should this process be killed first, by the next one)."""
    fd, name = tempfile.mkstemp(prefix=f"{os.getpid()}-", suffix=".jsonl", dir=staging_folder())
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            for line in lines:
                fh.write(line)
                fh.write(b"\n")
        yield path
    finally:
        path.unlink(missing_ok=True)


def read_sql(path: Path, layout: Layout) -> str:
    """A ``read_json`` table expression reading the JSON lines at ``path`` as ``layout``'s columns."""
    columns = ", ".join(f"'{name}': '{kind}'" for name, kind in layout.columns)
    quoted = str(path).replace("'", "''")
    return f"read_json('{quoted}', format = 'newline_delimited', columns = {{{columns}}})"


def refused(layout: Layout, lines: Sequence[bytes]) -> list[tuple[int, str]]:
    """The lines (their positions in ``lines``) that ``layout``'s columns cannot hold, each with
    DuckDB's reason; an empty list when every line reads."""
    out: list[tuple[int, str]] = []
    with memory.cursor() as con:  # never the store's: a failed read would abort its transaction
        _find(con, layout, lines, 0, out)
    return out


def _find(
    con: duckdb.DuckDBPyConnection,
    layout: Layout,
    lines: Sequence[bytes],
    at: int,
    out: list[tuple[int, str]],
) -> None:
    if not lines:
        return
    with lines_file(lines) as path:
        try:
            # every column counted: a count of rows alone would read (and convert) none
            con.execute(f"SELECT count(COLUMNS(*)) FROM {read_sql(path, layout)}").fetchall()
            return
        except duckdb.Error as exc:
            if len(lines) == 1:
                out.append((at, _reason(exc)))
                return
    half = len(lines) // 2
    _find(con, layout, lines[:half], at, out)
    _find(con, layout, lines[half:], at + half, out)


_WHERE = re.compile(r"^.*? in line \d+: ")


def _reason(exc: duckdb.Error) -> str:
    """DuckDB's message without the temporary file's name (``Failed to cast value to numerical:
    1099511627776``)."""
    first = str(exc).strip().splitlines()[0]
    return _WHERE.sub("", first.removeprefix("Invalid Input Error: "))
