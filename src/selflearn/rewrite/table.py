"""The rewrite-table artifact and its runtime lookup.

On disk a table is a folder with ``rewrites.parquet`` (one row per rewrite, :data:`TABLE_SCHEMA`)
and ``model.json`` (format, version, config, data range, counts, timings). At run time a
:class:`RewriteTable` is a :class:`~selflearn.assistant.pipeline.RewriteHook`: it delexicalizes the
request with the home's names, looks the pattern up among the active rewrites, and fills the
target pattern with the request's own values.

Parquet is read and written with DuckDB; in memory a table is held column-wise in numpy, without
Arrow (serving needs no pyarrow): :mod:`selflearn.rewrite.columns` holds the columns (a string
column as one UTF-8 buffer with offsets; repeating columns of a large table as narrow codes). The
source index (:class:`_SourceIndex`) keeps the rows in the order of their sources and searches
them by bisection over the source column's own buffer; the guards' pass
(:meth:`RewriteTable._find_unguarded`, :mod:`selflearn.rewrite.pattern_bits`) reads the pattern
columns' buffers column-wise.

The values, and so every lookup, are the same either way; :meth:`RewriteTable.rows`,
:meth:`RewriteTable.column` and :meth:`RewriteTable.save` give them back as they were.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Container, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np

from selflearn.core import memory
from selflearn.core.artefacts import format_name, read_description, reading, write_description
from selflearn.core.delex import Delexicalizer, fill
from selflearn.core.errors import ConfigError
from selflearn.core.guards import evidence_bar
from selflearn.core.home import Home, normalize_name
from selflearn.core.schema import RewriteTrace
from selflearn.rewrite.columns import (
    CHUNK,
    TABLE_SCHEMA,
    Coded,
    Data,
    Strings,
    give_back_memory,
    quote_path,
    read_relation,
    read_rows,
    typed,
    write_parquet,
)
from selflearn.rewrite.pattern_bits import (
    ACTION_DIMS_U,
    OBJECT_BITS_U,
    dims,
    meaning_bits,
    placeholder_counts,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from selflearn.core.hooks import RewriteContext

log = logging.getLogger(__name__)

FORMAT = format_name("rewrites", 2)
"""Format name written into ``model.json``."""


def arrow_schema() -> pa.Schema:
    """:data:`TABLE_SCHEMA` as an Arrow schema (for mining and benchmarks; needs pyarrow)."""
    import pyarrow as pa

    kinds = {"VARCHAR": pa.string(), "DOUBLE": pa.float64(), "BIGINT": pa.int64(), "BOOLEAN": pa.bool_()}
    return pa.schema([(name, kinds[kind]) for name, kind in TABLE_SCHEMA.items()])


def rule_id(source: str, target: str) -> str:
    """Stable id of a rewrite (same patterns, same id, in every run and engine)."""
    return hashlib.blake2b(f"{source}\x1f{target}".encode(), digest_size=6).hexdigest()


class _EveryRule:
    """Holds every rule id (``in`` is always true)."""

    def __contains__(self, item: object) -> bool:
        return True

    def __repr__(self) -> str:
        return "EVERY_RULE"


EVERY_RULE: Container[str] = _EveryRule()
"""The ids of a community release's own table: all its rules came from the release."""


class RewriteTable:
    """A mined rewrite table; callable as a rewriter in front of the NLU.

    Made by :meth:`load`, :meth:`from_rows`, :meth:`from_arrow` or :meth:`from_rules`; read by
    :meth:`rows`, :meth:`column`, :meth:`rows_where_source`, :meth:`first` and :meth:`is_active`
    (see the module docstring for how it is held in memory)."""

    def __init__(self, data: Data, metadata: dict[str, Any], path: Path | None = None) -> None:
        if not isinstance(data, Data):
            raise TypeError(
                "RewriteTable() takes columns read by its constructors: use RewriteTable.from_rows(rows, "
                "metadata), RewriteTable.from_arrow(table, metadata) or RewriteTable.load(folder)"
            )
        self.metadata = metadata
        self.path = path
        """The folder it was loaded from, if it was."""
        self._columns = data.columns
        self._n = data.rows
        source = self._columns["source"]
        assert isinstance(source, Strings)
        active = self._columns["status"].equals("active")
        if source.valid is not None:
            active &= source.valid
        self._index = _SourceIndex(source, active, data.order, data.same)
        self._readers = [(name, column.get) for name, column in self._columns.items()]
        """Each column's name and how row ``i``'s value is read from it."""
        self._rows: dict[int, dict[str, Any]] = {}
        """Rows already read out of the columns, by row number (:data:`ROW_CACHE` at most)."""
        self._delex: dict[str, tuple[Home | None, Delexicalizer]] = {}
        self._community: tuple[str | None, Container[str]] | None = None
        """:meth:`community`, read from the metadata on its first call."""
        self._refused = self._find_unguarded()
        """Per row: an active rule :meth:`unguarded` lists (kept in the table, never applied by
        :meth:`lookup`)."""
        found = self._index.found()
        self._unguarded = np.sort(found[self._refused[found]])
        """The refused rows that :meth:`lookup` would find (:meth:`unguarded`)."""
        del found
        if self._n > 100_000:
            # reading and indexing a large table leaves freed memory in the C allocator's heap:
            # give it back, so the resident memory is the table's own
            give_back_memory()

    # --- making one --------------------------------------------------------------------------

    @classmethod
    def from_rows(
        cls, rows: Iterable[Mapping[str, Any]], metadata: dict[str, Any] | None = None
    ) -> RewriteTable:
        """A table of ``rows``, dicts of the :data:`TABLE_SCHEMA` columns (a missing one is null)."""
        return cls(read_rows(list(rows)), dict(metadata or {}))

    @classmethod
    def from_arrow(cls, table: pa.Table, metadata: dict[str, Any] | None = None) -> RewriteTable:
        """A table of the :data:`TABLE_SCHEMA` columns of an Arrow table (mining, benchmarks:
        needs pyarrow, which the serving install does not have)."""
        import pyarrow as pa

        missing = [name for name in TABLE_SCHEMA if name not in table.column_names]
        if missing:
            raise ConfigError(f"the rewrite table lacks columns {missing}")
        n = table.num_rows
        arrow_in = table.select(list(TABLE_SCHEMA)).append_column(
            "_row", pa.array(np.arange(n, dtype=np.int64))
        )
        with memory.cursor() as con:
            con.register("arrow_in", arrow_in)
            return cls(read_relation(con, typed("arrow_in", "_row"), n, max(n, 1)), dict(metadata or {}))

    @classmethod
    def from_rules(
        cls, rules: Iterable[tuple[str, str]], users: int = 5, households: int = 3
    ) -> RewriteTable:
        """A table of hand-written rules ``(source, target)`` -- delexicalized patterns such as
        ``("kill the lights in the {area}", "turn off the lights in the {area}")`` -- each active,
        with the evidence of a well-established rewrite (``users`` and ``households`` as given).
        For curated fixes, demos and tests; mined tables come from ``selflearn mine``."""
        rows = [
            {
                "rule_id": rule_id(source, target),
                "source": source,
                "target": target,
                "source_example": source,
                "target_example": target,
                "p_source": 0.1,
                "p_target": 0.9,
                "absorb_source": 0.1,
                "absorb_target": 0.9,
                "support": 2 * users,
                "users": users,
                "households": households,
                "source_turns": 4 * users,
                "target_turns": 6 * users,
                "source_users": users + 1,
                "sensitive": False,
                "deployed_turns": 0,
                "deployed_success": 0,
                "p_worse_after": 0.0,
                "status": "active",
            }
            for source, target in rules
        ]
        return cls.from_rows(rows, {"source": "hand-written"})

    # --- reading it --------------------------------------------------------------------------

    @property
    def num_rows(self) -> int:
        """Rules in the table, active or not (``len()`` counts the active sources)."""
        return self._n

    @property
    def nbytes(self) -> int:
        """Bytes the columns hold in memory (the index and the guards' flags aside)."""
        return sum(column.nbytes for column in self._columns.values())

    def column_nbytes(self) -> dict[str, int]:
        """Bytes each column holds in memory."""
        return {name: column.nbytes for name, column in self._columns.items()}

    def column(self, name: str) -> list[Any]:
        """Every value of column ``name`` (one of :data:`TABLE_SCHEMA`), in row order, as Python
        values (``str``, ``float``, ``int``, ``bool``; None for a null)."""
        if name not in self._columns:
            raise KeyError(f"the rewrite table has no column {name!r} (columns: {', '.join(TABLE_SCHEMA)})")
        return self._columns[name].pylist(0, self._n)

    def rows(self) -> list[dict[str, Any]]:
        """Every row as a dict of the :data:`TABLE_SCHEMA` columns, in order (a new dict each)."""
        return list(self._iter_rows())

    def rows_where_source(self, sources: Iterable[str]) -> list[dict[str, Any]]:
        """The rows, active or not, whose source is one of ``sources``, in row order (found through
        the source index: a table may hold millions of rules)."""
        found = sorted({i for source in set(sources) for i in self._index.rows(source)})
        return [self._read(i) for i in found]

    def is_active(self, rule_id: str) -> bool:
        """Whether an active row has the id ``rule_id``."""
        return bool((self._columns["rule_id"].equals(rule_id) & self._index.active).any())

    def first(self, n: int) -> list[dict[str, Any]]:
        """The first ``n`` rows in the report's order -- active first, then most users, most
        support, by source (nulls last), then in row order -- sorted in numpy, so a table of
        millions of rules is not read into Python whole."""
        if n <= 0 or not self._n:
            return []
        rank = np.full(self._n, self._n, dtype=np.int64)  # a null source sorts last
        rank[self._index.order] = np.arange(len(self._index.order))  # by source, then by row
        keys = [rank]
        for name in ("support", "users"):
            values, valid = self._columns[name].numbers()
            top = np.iinfo(np.int64).max
            keys.append(np.where(valid, -values.astype(np.int64), top) if valid is not None else -values)
        keys.append(~self._index.active)
        order = np.lexsort(keys)[:n]
        return [self._read(int(i)) for i in order]

    def _iter_rows(self, chunk: int = 1 << 16) -> Iterator[dict[str, Any]]:
        names = list(self._columns)
        for start in range(0, self._n, chunk):
            stop = min(self._n, start + chunk)
            values = [column.pylist(start, stop) for column in self._columns.values()]
            for row in zip(*values, strict=True):
                yield dict(zip(names, row, strict=True))

    def _read(self, i: int) -> dict[str, Any]:
        """Row ``i`` as a new dict."""
        return {name: read(i) for name, read in self._readers}

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path is not None else ""
        return f"RewriteTable({self._n:,} rules, {len(self):,} active sources{where})"

    # --- artifact ----------------------------------------------------------------------------

    def community(self) -> tuple[str | None, Container[str]]:
        """The community release (its version) this table's rules came from, and their ids: every
        rule of a release's own table (:data:`EVERY_RULE`: no set of maybe millions of ids is
        built), or the rules a release added to a base rewriter's table (``selflearn community
        pull --base``); ``(None, frozenset())`` for a table mined here. Read from the metadata
        once (the rewriter asks on every hit of a table rule)."""
        if self._community is None:
            meta = self.metadata
            if meta.get("source") == "community":
                self._community = str(meta.get("release") or "?"), EVERY_RULE
            elif meta.get("community"):
                self._community = str(meta["community"]), frozenset(meta.get("community_rule_ids") or ())
            else:
                self._community = None, frozenset()
        return self._community

    @property
    def version(self) -> str:
        """Content version: identical rows give an identical version."""
        return str(self.metadata.get("version") or _version(self._iter_rows()))

    def save(self, folder: str | Path) -> Path:
        """Write ``rewrites.parquet`` (plain columns of :data:`TABLE_SCHEMA`, written with DuckDB)
        and ``model.json`` into ``folder``; returns it."""
        meta = {
            "version": _version(self._iter_rows()),
            "created_at": datetime.now(UTC).isoformat(),
            "rules": self._n,
            "active": len(self),
            **{k: v for k, v in self.metadata.items() if k != "format"},
        }
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_parquet(self._columns, self._n, folder / "rewrites.parquet")
        write_description(folder, FORMAT, meta)
        self.metadata = {"format": FORMAT, **meta}
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> RewriteTable:
        """Read a folder written by :meth:`save` (or by the Arrow writer before it: the same file)."""
        folder = Path(folder)
        meta = read_description(folder, FORMAT, "rewrite table", retrain="selflearn mine")
        with (
            reading(folder, "rewrite table", extra=(duckdb.Error,), retrain="selflearn mine"),
            memory.cursor() as con,
        ):
            file = quote_path(folder / "rewrites.parquet")
            have = {row[0] for row in con.sql(f"DESCRIBE SELECT * FROM read_parquet({file})").fetchall()}
            missing = set(TABLE_SCHEMA) - have
            if missing:
                raise ConfigError(f"{folder}/rewrites.parquet lacks columns {sorted(missing)}")
            n = int(con.sql(f"SELECT count(*) FROM read_parquet({file})").fetchall()[0][0])
            # a column at a time, each made compact before the next is read: the plain table is
            # never in memory at once
            relation = typed(f"read_parquet({file}, file_row_number = true)", "file_row_number")
            data = read_relation(con, relation, n, CHUNK)
        loaded = cls(data, meta, folder)
        risky = loaded._unguarded_rows()
        if risky:
            shown = "; ".join(f"{r['source']!r} -> {r['target']!r}" for r in map(loaded._row, risky[:3]))
            log.warning(
                "%s: %d active rewrite(s) change the action, its polarity or the kind of thing acted "
                "on without overwhelming evidence (%s). The miner refuses these since 2026-11-25, "
                "and they are not applied; mine the table again (`selflearn mine`) to drop them.",
                folder,
                len(risky),
                shown,
            )
        return loaded

    def unguarded(self) -> list[dict[str, Any]]:
        """Active rewrites that the miner's guards refuse today (a polarity flip, a swap of one
        action for another, another kind of thing, other placeholders) without the overwhelming
        evidence that lets them through (:func:`~selflearn.core.guards.overwhelming`, with the
        thresholds the table was mined with). Tables mined before the action-swap guard
        (2026-11-25) may hold such rules; :meth:`load` warns about them and :meth:`lookup` never
        applies them."""
        return [self._row(i) for i in self._unguarded_rows()]

    def _unguarded_rows(self) -> list[int]:
        """Row numbers of :meth:`unguarded`: the refused rows that :meth:`lookup` would find."""
        return [int(i) for i in self._unguarded]

    def _find_unguarded(self) -> np.ndarray:
        """:meth:`unguarded`, computed once for every active row (column-wise over the patterns'
        buffers: a table of 10,000,000 rules is checked in seconds): True where the row changes
        the meaning (:func:`~selflearn.core.guards.changes_meaning`) or the placeholders
        (:func:`~selflearn.core.guards.changes_target`) without
        :func:`~selflearn.core.guards.overwhelming` evidence."""
        config = self.metadata.get("config") or {}
        k_all, margin_all = int(config.get("min_users", 5)), float(config.get("margin", 0.3))
        factor = float(config.get("sensitive_factor", 2.0))
        users_needed = int(config.get("overwhelming_users", 50))
        success_needed = float(config.get("overwhelming_success", 0.95))
        out = np.zeros(self._n, dtype=bool)
        active = self._index.active
        if not active.any():
            return out
        # evidence_bar and overwhelming, per row
        sensitive = self._columns["sensitive"].numpy(False)
        k_sensitive, margin_sensitive = evidence_bar(k_all, margin_all, True, factor)
        k = np.where(sensitive, k_sensitive, k_all)
        margin = np.where(sensitive, 2 * margin_sensitive, 2 * margin_all)
        users = self._columns["users"].numpy(0)
        p_target, p_source = self._columns["p_target"].numpy(0.0), self._columns["p_source"].numpy(0.0)
        strong = (
            (users >= np.maximum(k, users_needed))
            & (p_target >= success_needed)
            & (p_target - p_source >= margin)
        )
        del sensitive, k, margin, users, p_target, p_source
        check = active & ~strong
        if not check.any():
            return out
        source = self._columns["source"]
        assert isinstance(source, Strings)
        # targets repeat (many failing patterns, one fix): a coded column's distinct values are
        # read once each
        target = self._columns["target"]
        coded = None
        if isinstance(target, Coded):
            assert isinstance(target.values, Strings)
            values = target.values
            coded = placeholder_counts(values, 0, len(values)), meaning_bits(values, 0, len(values))
        else:
            assert isinstance(target, Strings)
        for start in range(0, self._n, _SCAN):
            stop = min(self._n, start + _SCAN)
            if not check[start:stop].any():
                continue
            if coded is not None:
                assert isinstance(target, Coded)
                at = target.codes[start:stop]
                counts, dst = coded[0][at], coded[1][at]
            else:
                assert isinstance(target, Strings)
                counts, dst = placeholder_counts(target, start, stop), meaning_bits(target, start, stop)
            # changes_target: another placeholder multiset
            changed = (placeholder_counts(source, start, stop) != counts).any(axis=1)
            # changes_meaning: a polarity flip, another action or another kind of thing
            src = meaning_bits(source, start, stop)
            dims_src, dims_dst = dims(src), dims(dst)
            flips = (dims_src & dims_dst & ~dims(src & dst)) != 0
            act_src, act_dst = dims_src & ACTION_DIMS_U, dims_dst & ACTION_DIMS_U
            other_action = (act_src != 0) & (act_dst != 0) & ((act_src & act_dst) == 0)
            obj_src, obj_dst = src & OBJECT_BITS_U, dst & OBJECT_BITS_U
            other_kind = (obj_src != 0) & (obj_dst != 0) & ((obj_src & obj_dst) == 0)
            out[start:stop] = check[start:stop] & (changed | flips | other_action | other_kind)
        return out

    def __len__(self) -> int:
        return self._index.distinct

    def _row(self, i: int) -> dict[str, Any]:
        """Row ``i`` as a dict (the same dict for the same row while it is cached)."""
        row = self._rows.get(i)
        if row is None:
            if len(self._rows) >= ROW_CACHE:
                self._rows.clear()
            row = self._rows[i] = self._read(i)
        return row

    # --- runtime -----------------------------------------------------------------------------

    def lookup(self, text: str, home: Home | None = None) -> tuple[str, dict[str, Any]] | None:
        """The rewritten text and the rule for ``text`` said in ``home``, or None (also for a
        rule today's guards refuse, :meth:`unguarded`)."""
        if not self._index.distinct:
            return None
        delex = self._delexicalizer(home)
        d = delex(text)
        i = self._index.find(d.pattern)
        if i < 0 or self._refused[i]:
            return None
        row = self._row(i)
        out = fill(row["target"], d.values)
        if out is None or normalize_name(out) == normalize_name(text):
            return None
        return out, row

    def __call__(self, text: str, context: RewriteContext) -> RewriteTrace | None:
        """Rewrite-hook protocol: the applied rewrite's provenance, or None to leave ``text`` alone."""
        hit = self.lookup(text, context.home)
        if hit is None:
            return None
        out, row = hit
        return RewriteTrace(
            original_text=text,
            rewritten_text=out,
            layer="precomputed",
            rule_id=row["rule_id"],
            score=float(row["p_target"]),
        )

    def _delexicalizer(self, home: Home | None) -> Delexicalizer:
        key = home.home_id if home is not None else ""
        cached = self._delex.get(key)
        if cached is None or cached[0] is not home:
            cached = (home, Delexicalizer(home))
            if len(self._delex) > 10_000:
                self._delex.clear()
            self._delex[key] = cached
        return cached[1]


def _version(rows: Iterable[Mapping[str, Any]]) -> str:
    # The digest of json.dumps(rows, sort_keys=True, default=str), fed a row at a time.
    digest = hashlib.blake2b(digest_size=6)
    digest.update(b"[")
    first = True
    for row in rows:
        if not first:
            digest.update(b", ")
        digest.update(json.dumps(row, sort_keys=True, default=str).encode())
        first = False
    digest.update(b"]")
    return "rw-" + digest.hexdigest()


ROW_CACHE = 4096
"""Rows :meth:`RewriteTable.lookup` keeps as dicts once read (the rules that keep matching)."""


_SCAN = 1 << 18
"""Rows of a string column the guards' pass reads at a time."""


# --- the source index ----------------------------------------------------------------------------


class _SourceIndex:
    """Where each rule's source pattern is: the numbers of the rows with a source in the order of
    their sources (byte order; equal sources in row order), searched by bisection over the source
    column's own buffer. Compact at any size (6 bytes per rule besides the column: its position
    in the order, whether it is active, whether its source is the one before's; 10 past 2**31
    rules); a source said by several active rows finds the last of them."""

    def __init__(self, source: Strings, active: np.ndarray, order: np.ndarray, same: np.ndarray) -> None:
        self.source = source
        self.active = active
        """Per row: an active rule with a source."""
        self.order = order
        """Row numbers in the order of their sources (rows without one left out)."""
        self._same = same
        self.distinct = len(self._found())
        """Distinct sources among the active rules."""
        self._rows = order.data
        self._offsets = source._at
        self._data = source._data
        self._active = active.data

    def _found(self) -> np.ndarray:
        """For each distinct source of an active rule, the row :meth:`find` gives (the last)."""
        positions = np.flatnonzero(self.active[self.order])
        group = np.cumsum(~self._same)[positions]
        last = np.ones(len(positions), dtype=bool)
        last[:-1] = group[1:] != group[:-1]
        out: np.ndarray = self.order[positions[last]]
        return out

    def found(self) -> np.ndarray:
        """The rows :meth:`find` can give (an active rule's, the last of its source)."""
        return self._found()

    def _bisect(self, key: bytes, right: bool) -> int:
        """The first position past every source < ``key`` (<= with ``right``)."""
        rows, offsets, data = self._rows, self._offsets, self._data
        lo, hi = 0, len(rows)
        while lo < hi:
            mid = (lo + hi) // 2
            row = rows[mid]
            said = bytes(data[offsets[row] : offsets[row + 1]])
            if key < said or (not right and key == said):
                hi = mid
            else:
                lo = mid + 1
        return lo

    def find(self, pattern: str) -> int:
        """The row of the active rule whose source is ``pattern`` (the last), or -1."""
        key = pattern.encode()
        rows, offsets, data, active = self._rows, self._offsets, self._data, self._active
        at = self._bisect(key, right=True) - 1
        while at >= 0:  # back over the rows of this source that are not active
            row = rows[at]
            if bytes(data[offsets[row] : offsets[row + 1]]) != key:
                return -1
            if active[row]:
                return int(row)
            at -= 1
        return -1

    def rows(self, pattern: str) -> list[int]:
        """Every row whose source is ``pattern``, active or not, in row order."""
        key = pattern.encode()
        return sorted(int(self._rows[at]) for at in range(self._bisect(key, False), self._bisect(key, True)))
