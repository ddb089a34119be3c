"""A rewrite table's columns in memory, without Arrow, and their way in and out of Parquet.

:class:`~selflearn.rewrite.table.RewriteTable` holds its rules column-wise in numpy (serving needs
no pyarrow), read and written with DuckDB:

* a string column as one bytes buffer of every value's UTF-8 end to end, with int32 offsets (int64
  past 2 GB) (:class:`Strings`); a number or boolean column as a numpy array (:class:`Numbers`);
  each with a mask of its nulls when it has any;
* in a table of :data:`COMPACT_MIN` rows or more, each column whose values repeat (targets,
  counts, the status) as the narrowest integer codes that fit into its distinct values
  (:class:`Coded`); ``source`` (searched by the table's index), the booleans and columns of mostly
  distinct values (ids, example sentences) stay as they are.

The values are the same either way: :meth:`Strings.pylist` and the others give them back as
they were, and :func:`write_parquet` writes them plain.
"""

from __future__ import annotations

import ctypes
import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from selflearn.core import memory

TABLE_SCHEMA: Mapping[str, str] = {
    "rule_id": "VARCHAR",
    "source": "VARCHAR",
    "target": "VARCHAR",
    "source_example": "VARCHAR",
    "target_example": "VARCHAR",
    "p_source": "DOUBLE",
    "p_target": "DOUBLE",
    "absorb_source": "DOUBLE",
    "absorb_target": "DOUBLE",
    "support": "BIGINT",
    "users": "BIGINT",
    "households": "BIGINT",
    "source_turns": "BIGINT",
    "target_turns": "BIGINT",
    "source_users": "BIGINT",
    "sensitive": "BOOLEAN",
    "deployed_turns": "BIGINT",
    "deployed_success": "BIGINT",
    "p_worse_after": "DOUBLE",
    "status": "VARCHAR",
}
"""Columns of ``rewrites.parquet`` and their DuckDB types (Parquet's string, double, int64 and
boolean: Arrow reads them as ``string``, ``float64``, ``int64`` and ``bool``):

* ``source``/``target``: delexicalized patterns (``{area}``, ``{name}``, ``{floor}``,
  ``{number}`` placeholders); ``*_example``: the same filled with neutral example values;
* ``p_source``/``p_target``: how often each pattern worked when said (Beta(1, 1) posterior mean);
* ``absorb_*``: probability that a session reaching the pattern ends in success (Markov chain);
* ``support``/``users``/``households``: chains that went from source to target, and their
  distinct users and homes; ``source_turns``/``target_turns``/``source_users``: evidence per pattern;
* ``sensitive``: locks, covers and garage doors, alarms (mined with a higher bar);
* ``deployed_*``/``p_worse_after``: outcomes of turns this rewrite was already applied to, and
  the posterior probability that it works worse than the unrewritten source did;
* ``status``: ``active`` or ``demoted`` (kept so it is not re-learned; never applied).
"""


COMPACT_MIN = 100_000
"""Tables of this many rows or more hold their repeating columns as codes in memory
(bench/community_latency.py, bench/experiments/table_numpy.py)."""


CHUNK = 1 << 20
"""Rows read from Parquet at a time."""


_SAMPLE = 1 << 20
"""The first rows, whose values tell whether a column's values repeat."""


def give_back_memory() -> None:
    """Return the C allocator's free memory to the system (glibc's ``malloc_trim``; elsewhere
    nothing)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


# --- the columns ---------------------------------------------------------------------------------


class Strings:
    """A string column: every value's UTF-8 end to end in one ``uint8`` buffer, ``offsets``
    (int32, int64 past 2 GB: value ``i`` is ``data[offsets[i]:offsets[i + 1]]``) and ``valid``
    (None: no nulls; a null holds no bytes)."""

    __slots__ = ("_at", "_data", "_valid", "data", "offsets", "valid")

    def __init__(self, data: np.ndarray, offsets: np.ndarray, valid: np.ndarray | None) -> None:
        self.data, self.offsets, self.valid = data, offsets, valid
        # memoryviews: indexing them gives Python ints (and slices) without numpy's per-scalar cost
        self._data = data.data
        self._at = offsets.data
        self._valid = valid.data if valid is not None else None

    @classmethod
    def from_values(cls, values: Sequence[str | None]) -> Strings:
        encoded = [b"" if v is None else v.encode() for v in values]
        lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
        valid = np.fromiter((v is not None for v in values), bool, len(values))
        data = np.frombuffer(b"".join(encoded), np.uint8)
        return cls(data, _offsets(lengths), None if valid.all() else valid)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def nbytes(self) -> int:
        return int(
            self.data.nbytes + self.offsets.nbytes + (self.valid.nbytes if self.valid is not None else 0)
        )

    def raw(self, i: int) -> bytes:
        return bytes(self._data[self._at[i] : self._at[i + 1]])

    def get(self, i: int) -> str | None:
        if self._valid is not None and not self._valid[i]:
            return None
        return str(self._data[self._at[i] : self._at[i + 1]], "utf-8")

    def pylist(self, start: int, stop: int) -> list[Any]:
        bounds = self.offsets[start : stop + 1].tolist()
        base = bounds[0] if bounds else 0
        chunk = self.data[base : bounds[-1] if bounds else 0].tobytes()
        out: list[Any]
        if chunk.isascii():
            text = chunk.decode("ascii")
            out = [text[a - base : b - base] for a, b in itertools.pairwise(bounds)]
        else:
            out = [chunk[a - base : b - base].decode() for a, b in itertools.pairwise(bounds)]
        if self.valid is not None:
            for i in np.flatnonzero(~self.valid[start:stop]).tolist():
                out[i] = None
        return out

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def equals(self, value: str) -> np.ndarray:
        """Per row: whether it is ``value`` (compared column-wise on the buffer)."""
        key = np.frombuffer(value.encode(), np.uint8)
        out: np.ndarray = self.lengths() == len(key)
        if self.valid is not None:
            out &= self.valid
        maybe = np.flatnonzero(out)
        if len(maybe) and len(key):
            windows = np.lib.stride_tricks.as_strided(
                self.data, (len(self.data) - len(key) + 1, len(key)), (1, 1), writeable=False
            )
            for at in range(0, len(maybe), CHUNK):
                part = maybe[at : at + CHUNK]
                out[part] = (windows[self.offsets[part]] == key).all(axis=1)
        return out

    def numbers(self, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        raise TypeError("a string column has no numbers")

    def numpy(self, null: Any) -> np.ndarray:
        raise TypeError("a string column has no numbers")


class Numbers:
    """A number or boolean column: a numpy array (float64, int64, bool) and ``valid`` (None: no
    nulls; a null holds 0)."""

    __slots__ = ("_at", "_valid", "array", "valid")

    def __init__(self, array: np.ndarray, valid: np.ndarray | None) -> None:
        self.array, self.valid = array, valid
        self._at = array.data
        self._valid = valid.data if valid is not None else None

    def __len__(self) -> int:
        return len(self.array)

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes + (self.valid.nbytes if self.valid is not None else 0))

    def get(self, i: int) -> Any:
        if self._valid is not None and not self._valid[i]:
            return None
        return self._at[i]

    def pylist(self, start: int, stop: int) -> list[Any]:
        out: list[Any] = self.array[start:stop].tolist()
        if self.valid is not None:
            for i in np.flatnonzero(~self.valid[start:stop]).tolist():
                out[i] = None
        return out

    def equals(self, value: str) -> np.ndarray:
        return np.zeros(len(self.array), dtype=bool)

    def numbers(self, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        return self.array[start:stop], self.valid[start:stop] if self.valid is not None else None

    def numpy(self, null: Any) -> np.ndarray:
        """The values, ``null`` where a value is null."""
        return self.array if self.valid is None else np.where(self.valid, self.array, null)


class Coded:
    """A column whose values repeat: per row, the narrowest unsigned integer code of its value
    in ``values`` (the distinct values, a null among them, as a :class:`Strings` or
    :class:`Numbers` column)."""

    __slots__ = ("_at", "_list", "codes", "values")

    def __init__(self, codes: np.ndarray, values: Strings | Numbers) -> None:
        self.codes, self.values = codes, values
        self._at = codes.data
        self._list = values.pylist(0, len(values)) if len(values) <= _SMALL_DICTIONARY else None

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes + self.values.nbytes)

    def get(self, i: int) -> Any:
        if self._list is not None:
            return self._list[self._at[i]]
        return self.values.get(self._at[i])

    def pylist(self, start: int, stop: int) -> list[Any]:
        codes = self.codes[start:stop]
        if self._list is not None:
            values = self._list
        else:
            used, codes = np.unique(codes, return_inverse=True)
            values = [self.values.get(int(c)) for c in used]
        table = np.empty(len(values), dtype=object)
        table[:] = values
        out: list[Any] = table[codes].tolist()
        return out

    def equals(self, value: str) -> np.ndarray:
        out: np.ndarray = self.values.equals(value)[self.codes]
        return out

    def numbers(self, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        codes = self.codes[start:stop]
        values, valid = self.values.numbers()
        return values[codes], valid[codes] if valid is not None else None

    def numpy(self, null: Any) -> np.ndarray:
        out: np.ndarray = self.values.numpy(null)[self.codes]
        return out


Column = Strings | Numbers | Coded

_SMALL_DICTIONARY = 1 << 16
"""A coded column of at most this many distinct values reads them from a Python list."""


def _offsets(lengths: np.ndarray) -> np.ndarray:
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out.astype(np.int32) if out[-1] < 1 << 31 else out


def _code_type(values: int) -> type[np.unsignedinteger[Any]]:
    for kind in (np.uint8, np.uint16, np.uint32):
        if values <= int(np.iinfo(kind).max) + 1:
            return kind
    return np.uint64


def _code(column: Numbers) -> Numbers | Coded:
    """``column`` as codes into its distinct values when they repeat enough for that to take
    less memory; else as it is. The values are the same (``-0.0`` and ``0.0`` stay apart; nulls
    stay nulls). Booleans are left alone."""
    array, valid = column.array, column.valid
    if array.dtype == bool or not len(array):
        return column
    floats = array.dtype.kind == "f"
    key = array.view(np.int64) if floats else array.astype(np.int64, copy=False)  # floats: their bits
    have = key if valid is None else key[valid]
    if not len(have):
        return column
    # a column of mostly distinct values is not coded at all: its first rows say so
    distinct = np.unique(have[:_SAMPLE])
    if len(distinct) > min(len(have), _SAMPLE) // 2:
        return column
    low, high = int(have.min()), int(have.max())
    if not floats and high - low < 1 << 16:  # small counts: the code is the value less the least
        dictionary = np.arange(low, high + 1, dtype=np.int64)
        codes = key - low
    else:
        codes = np.searchsorted(distinct, key)
        seen = distinct[np.minimum(codes, len(distinct) - 1)] == key
        if not (seen if valid is None else seen | ~valid).all():  # values past the first rows
            distinct = np.unique(have)
            codes = np.searchsorted(distinct, key)
        dictionary = distinct
    del have
    dictionary_valid = None
    if valid is not None:  # a null: the code past the values
        codes = np.where(valid, codes, len(dictionary))
        dictionary = np.append(dictionary, 0)
        dictionary_valid = np.arange(len(dictionary)) < len(dictionary) - 1
    values = Numbers(dictionary.view(np.float64) if floats else dictionary, dictionary_valid)
    coded = Coded(codes.astype(_code_type(len(dictionary))), values)
    return column if coded.nbytes >= 0.9 * column.nbytes else coded


# --- reading with DuckDB -------------------------------------------------------------------------


class Data:
    """The columns of a table as read, and the order of its sources (:class:`_SourceIndex`)."""

    __slots__ = ("columns", "order", "rows", "same")

    def __init__(self, columns: dict[str, Column], rows: int, order: np.ndarray, same: np.ndarray) -> None:
        self.columns, self.rows, self.order, self.same = columns, rows, order, same


_NUMPY = {"DOUBLE": np.float64, "BIGINT": np.int64, "BOOLEAN": np.bool_}


def empty_data() -> Data:
    columns: dict[str, Column] = {
        name: Strings(np.zeros(0, np.uint8), np.zeros(1, np.int32), None)
        if kind == "VARCHAR"
        else Numbers(np.zeros(0, _NUMPY[kind]), None)
        for name, kind in TABLE_SCHEMA.items()
    }
    return Data(columns, 0, np.zeros(0, np.int32), np.zeros(0, bool))


def _name(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def quote_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def typed(source: str, row: str) -> str:
    """A relation of ``source``'s :data:`TABLE_SCHEMA` columns, cast to their types, and
    ``_row``, the row number (from the column ``row``)."""
    columns = ", ".join(f"CAST({_name(n)} AS {kind}) AS {_name(n)}" for n, kind in TABLE_SCHEMA.items())
    return f"(SELECT {columns}, {row} AS _row FROM {source})"


def read_relation(con: duckdb.DuckDBPyConnection, relation: str, n: int, chunk: int) -> Data:
    """The columns of ``relation`` (:func:`typed`: ``n`` rows numbered by ``_row``), read
    ``chunk`` rows at a time, made compact column by column when there are
    :data:`COMPACT_MIN` rows or more, and the order of its sources."""
    if not n:
        return empty_data()
    compact = n >= COMPACT_MIN
    if n < SMALL and not compact:
        return _read_small(con, relation, n)
    columns: dict[str, Column] = {}
    for name, kind in TABLE_SCHEMA.items():
        if kind == "VARCHAR":
            coded = _read_coded(con, relation, name, n, chunk) if compact and name != "source" else None
            columns[name] = coded if coded is not None else _read_strings(con, relation, name, n, chunk)
        else:
            numbers = _read_numbers(con, relation, name, kind, n)
            columns[name] = _code(numbers) if compact else numbers
    source = columns["source"]
    assert isinstance(source, Strings)
    # the rows by source (byte order, as :meth:`_SourceIndex.find` compares), then by row
    got = con.sql(
        f'SELECT _row, hash("source") AS h FROM {relation} WHERE "source" IS NOT NULL ORDER BY "source", _row'
    ).fetchnumpy()
    order = np.asarray(got["_row"]).astype(np.int32 if n < 1 << 31 else np.int64)
    hashes = np.asarray(got["h"])
    del got
    same = np.zeros(len(order), dtype=bool)
    """Per position: the same source as the one before."""
    if len(order) > 1:
        lengths = source.lengths()
        same[1:] = (hashes[1:] == hashes[:-1]) & (lengths[order[1:]] == lengths[order[:-1]])
        for k in np.flatnonzero(same).tolist():  # equal hashes: equal sources, checked
            if source.raw(int(order[k])) != source.raw(int(order[k - 1])):
                same[k] = False
    return Data(columns, n, order, same)


SMALL = 10_000
"""Tables of fewer rows are read in one query, as Python values (a query costs milliseconds,
and the column-wise read takes three dozen: the packaged starter's 51 rules loaded in 0.23 s)."""


def _read_small(con: duckdb.DuckDBPyConnection, relation: str, n: int) -> Data:
    """:func:`read_relation` of a small table: every row at once, each column built from its
    Python values, the sources ordered in Python (byte order, then row, as DuckDB orders them)."""
    cursor = con.execute(f"SELECT * FROM {relation} ORDER BY _row")
    names = [column[0] for column in cursor.description or ()]
    rows = cursor.fetchall()
    if len(rows) != n:
        raise ValueError(f"{len(rows)} rows read of {n}")
    columns: dict[str, Column] = {}
    for name, kind in TABLE_SCHEMA.items():
        at = names.index(name)
        values = [row[at] for row in rows]
        if kind == "VARCHAR":
            columns[name] = Strings.from_values(values)
            continue
        valid = np.fromiter((v is not None for v in values), bool, n)
        array: np.ndarray = np.array([0 if v is None else v for v in values], dtype=_NUMPY[kind])
        columns[name] = Numbers(array, None if valid.all() else valid)
    source = columns["source"]
    assert isinstance(source, Strings)
    keyed = sorted((source.raw(i), i) for i in range(n) if source.get(i) is not None)
    order = np.array([i for _, i in keyed], dtype=np.int32)
    same = np.zeros(len(keyed), dtype=bool)
    """Per position: the same source as the one before."""
    for k in range(1, len(keyed)):
        same[k] = keyed[k][0] == keyed[k - 1][0]
    return Data(columns, n, order, same)


def _read_numbers(con: duckdb.DuckDBPyConnection, relation: str, name: str, kind: str, n: int) -> Numbers:
    got = con.sql(f"SELECT {_name(name)} AS v FROM {relation}").fetchnumpy()["v"]
    mask = np.ma.getmaskarray(got)
    array: np.ndarray = np.asarray(np.ma.getdata(got)).astype(_NUMPY[kind], copy=False)
    if len(array) != n:
        raise ValueError(f"column {name}: {len(array)} values for {n} rows")
    if not mask.any():
        return Numbers(array, None)
    array = np.where(mask, np.zeros(1, array.dtype), array)
    return Numbers(array, ~mask)


def _read_strings(con: duckdb.DuckDBPyConnection, relation: str, name: str, n: int, chunk: int) -> Strings:
    column = _name(name)
    total = int(con.sql(f"SELECT coalesce(sum(strlen({column})), 0) FROM {relation}").fetchall()[0][0])
    data = np.empty(total, dtype=np.uint8)
    lengths = np.zeros(n, dtype=np.int64)
    valid = np.ones(n, dtype=bool)
    at = 0
    for start in range(0, n, chunk):
        where = f"WHERE _row >= {start} AND _row < {start + chunk}"
        size = con.sql(f"SELECT strlen({column}) AS n FROM {relation} {where}").fetchnumpy()["n"]
        stop = start + len(size)
        lengths[start:stop] = np.ma.filled(size, 0)
        valid[start:stop] = ~np.ma.getmaskarray(size)
        # the chunk's values end to end, as one string (no object per value)
        joined = con.sql(f"SELECT string_agg({column}, '' ORDER BY _row) FROM {relation} {where}").fetchall()
        encoded = (joined[0][0] or "").encode()
        del joined
        data[at : at + len(encoded)] = np.frombuffer(encoded, np.uint8)
        at += len(encoded)
    if at != total or lengths.sum() != total:
        raise ValueError(f"column {name}: read {at} bytes of {total}")
    return Strings(data, _offsets(lengths), None if valid.all() else valid)


def _read_coded(con: duckdb.DuckDBPyConnection, relation: str, name: str, n: int, chunk: int) -> Coded | None:
    """A string column as codes into its distinct values (matched by DuckDB's hash, the values'
    hashes checked distinct), or None when its first rows are mostly distinct or the codes would
    not save memory."""
    column = _name(name)
    head, distinct = con.sql(
        f"SELECT count(*), count(DISTINCT {column}) FROM {relation} WHERE _row < {_SAMPLE}"
    ).fetchall()[0]
    if distinct > head // 2:
        return None
    plain = con.sql(f"SELECT coalesce(sum(strlen({column})), 0) FROM {relation}").fetchall()[0][0]
    got = con.sql(
        f"SELECT v, hash(v) AS h FROM (SELECT DISTINCT {column} AS v FROM {relation}) ORDER BY h"
    ).fetchnumpy()
    hashes = np.asarray(got["h"])
    if len(hashes) > 1 and (hashes[1:] == hashes[:-1]).any():
        return None  # two values, one hash: read plain
    mask = np.ma.getmaskarray(got["v"])
    words = [
        None if null else str(v)
        for v, null in zip(np.ma.getdata(got["v"]).tolist(), mask.tolist(), strict=True)
    ]
    values = Strings.from_values(words)
    width = _code_type(len(values))
    if np.dtype(width).itemsize * n + values.nbytes >= 0.9 * (int(plain) + 4 * (n + 1)):
        return None
    codes = np.empty(n, dtype=width)
    for start in range(0, n, chunk):
        said = np.asarray(
            con.sql(
                f"SELECT hash({column}) AS h FROM {relation} WHERE _row >= {start} AND _row < {start + chunk}"
            ).fetchnumpy()["h"]
        )
        at = np.searchsorted(hashes, said)
        if not (hashes[np.minimum(at, len(hashes) - 1)] == said).all():
            raise ValueError(f"column {name}: a value read that is not among its distinct values")
        codes[start : start + len(said)] = at
    return Coded(codes, values)


def read_rows(rows: list[Mapping[str, Any]]) -> Data:
    """The columns of ``rows`` (dicts), through DuckDB as a file's are."""
    n = len(rows)
    if not n:
        return empty_data()
    arrays: dict[str, np.ndarray] = {"_row": np.arange(n, dtype=np.int64)}
    selected = []
    for name, kind in TABLE_SCHEMA.items():
        said = [row.get(name) for row in rows]
        if kind == "VARCHAR":
            strings = np.empty(n, dtype=object)
            strings[:] = said
            part, expr = {name: strings}, f"CAST({_name(name)} AS VARCHAR) AS {_name(name)}"
        else:
            valid = np.fromiter((v is not None for v in said), bool, n)
            convert = {"DOUBLE": float, "BIGINT": int, "BOOLEAN": bool}[kind]
            array: np.ndarray = np.array(
                [convert(v) if v is not None else 0 for v in said], dtype=_NUMPY[kind]
            )
            part, expr = _duck(name, kind, Numbers(array, None if valid.all() else valid), 0, n)
        arrays.update(part)
        selected.append(expr)
    with memory.cursor() as con:
        con.register("rows_in", arrays)
        return read_relation(con, f"(SELECT {', '.join(selected)}, _row FROM rows_in)", n, n)


# --- writing with DuckDB -------------------------------------------------------------------------


def _duck(name: str, kind: str, column: Column, start: int, stop: int) -> tuple[dict[str, np.ndarray], str]:
    """Rows ``start:stop`` of ``column`` as numpy arrays DuckDB scans (a NaN it would read as a
    null, so nulls and NaNs are marked apart) and the expression that gives the column back."""
    if kind == "VARCHAR":
        strings = np.empty(stop - start, dtype=object)
        strings[:] = column.pylist(start, stop)
        return {name: strings}, f"CAST({_name(name)} AS VARCHAR) AS {_name(name)}"
    array, valid = column.numbers(start, stop)
    arrays, expr = {name: array}, _name(name)
    if kind == "DOUBLE":
        nan = np.isnan(array)
        if valid is not None:
            arrays[name] = np.where(valid, array, np.nan)
            nan &= valid
        if nan.any():
            arrays[f"{name}__nan"] = nan
            expr = f"CASE WHEN {_name(name + '__nan')} THEN 'NaN'::DOUBLE ELSE {expr} END"
    elif valid is not None:
        arrays[f"{name}__valid"] = valid
        expr = f"CASE WHEN {_name(name + '__valid')} THEN {expr} END"
    return arrays, f"CAST({expr} AS {kind}) AS {_name(name)}"


def write_parquet(columns: Mapping[str, Column], n: int, path: Path) -> None:
    """``rewrites.parquet``: the plain columns of :data:`TABLE_SCHEMA`, :data:`CHUNK` rows at a
    time into DuckDB, then copied out."""
    with memory.cursor() as con:
        con.execute(
            f"CREATE TEMP TABLE rewrites ({', '.join(f'{_name(n)} {k}' for n, k in TABLE_SCHEMA.items())})"
        )
        for start in range(0, n, CHUNK):
            stop = min(n, start + CHUNK)
            arrays: dict[str, np.ndarray] = {}
            selected = []
            for name, kind in TABLE_SCHEMA.items():
                part, expr = _duck(name, kind, columns[name], start, stop)
                arrays.update(part)
                selected.append(expr)
            con.register("rows_in", arrays)
            con.execute(f"INSERT INTO rewrites SELECT {', '.join(selected)} FROM rows_in")
            con.unregister("rows_in")
            del arrays
        con.execute(f"COPY rewrites TO {quote_path(path)} (FORMAT parquet)")
