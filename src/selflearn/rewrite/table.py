"""The rewrite-table artifact and its runtime lookup.

On disk a table is a folder with ``rewrites.parquet`` (one row per rewrite, :data:`TABLE_SCHEMA`)
and ``model.json`` (format, version, config, data range, counts, timings). At run time a
:class:`RewriteTable` is a :class:`~selflearn.assistant.pipeline.RewriteHook`: it delexicalizes the
request with the home's names, looks the pattern up among the active rewrites, and fills the
target pattern with the request's own values.

A table of :data:`COMPACT_MIN` rows or more is held compactly in memory: each column whose values
repeat (targets, counts, the status) dictionary-encoded with the narrowest indices that fit, the
others as read. The values, and so every lookup, are the same; ``table.cast(TABLE_SCHEMA)`` gives
the plain columns back, and :meth:`RewriteTable.save` writes them plain.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from selflearn.core.artefacts import format_name, read_description, reading, write_description
from selflearn.core.delex import PLACEHOLDER, Delexicalizer, fill
from selflearn.core.errors import ConfigError
from selflearn.core.guards import _ACTION_DIMS, _LOW, _OBJECT_BITS, _WORD_BITS, evidence_bar
from selflearn.core.home import Home, normalize_name
from selflearn.core.schema import RewriteTrace

if TYPE_CHECKING:
    from selflearn.core.hooks import RewriteContext

log = logging.getLogger(__name__)

FORMAT = format_name("rewrites", 2)
"""Format name written into ``model.json``."""

TABLE_SCHEMA = pa.schema(
    [
        ("rule_id", pa.string()),
        ("source", pa.string()),
        ("target", pa.string()),
        ("source_example", pa.string()),
        ("target_example", pa.string()),
        ("p_source", pa.float64()),
        ("p_target", pa.float64()),
        ("absorb_source", pa.float64()),
        ("absorb_target", pa.float64()),
        ("support", pa.int64()),
        ("users", pa.int64()),
        ("households", pa.int64()),
        ("source_turns", pa.int64()),
        ("target_turns", pa.int64()),
        ("source_users", pa.int64()),
        ("sensitive", pa.bool_()),
        ("deployed_turns", pa.int64()),
        ("deployed_success", pa.int64()),
        ("p_worse_after", pa.float64()),
        ("status", pa.string()),
    ]
)
"""Columns of ``rewrites.parquet``:

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


@dataclass
class RewriteTable:
    """A mined rewrite table; callable as a rewriter in front of the NLU."""

    table: pa.Table
    metadata: dict[str, Any]
    path: Path | None = None
    """The folder it was loaded from, if it was."""

    def __post_init__(self) -> None:
        if not _conforms(self.table.schema):
            self.table = self.table.select(TABLE_SCHEMA.names).cast(TABLE_SCHEMA)
        if self.table.num_rows >= COMPACT_MIN:
            self.table = pa.Table.from_arrays(
                [_compact(n, c) for n, c in zip(self.table.column_names, self.table.columns, strict=True)],
                names=self.table.column_names,
            )
        self._index = _SourceIndex(self.table)
        source = self._index.source
        if source.type == pa.string() and self.table.column("source").num_chunks > 1:
            # keep one copy of the column: the index's, combined in one piece
            at = self.table.schema.get_field_index("source")
            self.table = self.table.set_column(at, TABLE_SCHEMA.field("source"), pa.chunked_array([source]))
        self._columns = [
            (n, _reader(c)) for n, c in zip(self.table.column_names, self.table.columns, strict=True)
        ]
        """Each column's name and how row ``i``'s value is read from it."""
        self._rows: dict[int, dict[str, Any]] = {}
        """Rows already read out of the Arrow table, by row number (:data:`ROW_CACHE` at most)."""
        self._delex: dict[str, tuple[Home | None, Delexicalizer]] = {}
        self._community: tuple[str | None, Container[str]] | None = None
        """:meth:`community`, read from the metadata on its first call."""
        self._refused = self._find_unguarded()
        """Per row: an active rule :meth:`unguarded` lists (kept in the table, never applied by
        :meth:`lookup`)."""
        self._distinct: int | None = None
        if self.table.num_rows > 100_000:
            # reading and indexing a large table leaves freed buffers in Arrow's allocator: give
            # them back, so the resident memory is the table's own
            pa.default_memory_pool().release_unused()

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
        return cls(pa.Table.from_pylist(rows, schema=TABLE_SCHEMA), {"source": "hand-written"})

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
        return str(self.metadata.get("version") or _version(self.table))

    def save(self, folder: str | Path) -> Path:
        """Write ``rewrites.parquet`` and ``model.json`` into ``folder``; returns it."""
        meta = {
            "version": _version(self.table),
            "created_at": datetime.now(UTC).isoformat(),
            "rules": self.table.num_rows,
            "active": len(self),
            **{k: v for k, v in self.metadata.items() if k != "format"},
        }
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.table.schema.equals(TABLE_SCHEMA):
            pq.write_table(self.table, folder / "rewrites.parquet")
        else:  # compact in memory: written plain, a batch of rows at a time
            with pq.ParquetWriter(folder / "rewrites.parquet", TABLE_SCHEMA) as writer:
                for batch in self.table.to_batches(max_chunksize=_CHUNK):
                    columns = [c.cast(f.type) for c, f in zip(batch.columns, TABLE_SCHEMA, strict=True)]
                    writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=TABLE_SCHEMA))
        write_description(folder, FORMAT, meta)
        self.metadata = {"format": FORMAT, **meta}
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> RewriteTable:
        """Read a folder written by :meth:`save`."""
        folder = Path(folder)
        meta = read_description(folder, FORMAT, "rewrite table", retrain="selflearn mine")
        with reading(folder, "rewrite table", retrain="selflearn mine"):
            file = pq.ParquetFile(folder / "rewrites.parquet")
            missing = set(TABLE_SCHEMA.names) - set(file.schema_arrow.names)
            if missing:
                raise ConfigError(f"{folder}/rewrites.parquet lacks columns {sorted(missing)}")
            # a column at a time, each made compact before the next is read: the plain table is
            # never in memory at once
            compact = file.metadata.num_rows >= COMPACT_MIN
            columns: list[pa.ChunkedArray] = []
            for field in TABLE_SCHEMA:
                column = file.read(columns=[field.name]).column(0)
                if not column.type.equals(field.type):
                    column = column.cast(field.type)
                columns.append(_compact(field.name, column) if compact else column)
                del column
            table = pa.Table.from_arrays(columns, names=TABLE_SCHEMA.names)
            del columns
        loaded = cls(table, meta, folder)
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
        rows = np.flatnonzero(self._refused)
        source = self._index.source
        return [int(i) for i in rows if self._index.find(source[int(i)].as_py()) == i]

    def _find_unguarded(self) -> np.ndarray:
        """:meth:`unguarded`, computed once for every active row (column-wise: a table of
        10,000,000 rules is checked in seconds): True where the row changes the meaning
        (:func:`~selflearn.core.guards.changes_meaning`) or the placeholders
        (:func:`~selflearn.core.guards.changes_target`) without
        :func:`~selflearn.core.guards.overwhelming` evidence."""
        config = self.metadata.get("config") or {}
        k_all, margin_all = int(config.get("min_users", 5)), float(config.get("margin", 0.3))
        factor = float(config.get("sensitive_factor", 2.0))
        users_needed = int(config.get("overwhelming_users", 50))
        success_needed = float(config.get("overwhelming_success", 0.95))
        table = self.table
        out = np.zeros(table.num_rows, dtype=bool)
        if not len(self._index.active):
            return out
        # evidence_bar and overwhelming, per row
        sensitive = _numpy(table.column("sensitive"), False)
        k_sensitive, margin_sensitive = evidence_bar(k_all, margin_all, True, factor)
        k = np.where(sensitive, k_sensitive, k_all)
        margin = np.where(sensitive, 2 * margin_sensitive, 2 * margin_all)
        users, p_target = _numpy(table.column("users"), 0), _numpy(table.column("p_target"), 0.0)
        p_source = _numpy(table.column("p_source"), 0.0)
        strong = (
            (users >= np.maximum(k, users_needed))
            & (p_target >= success_needed)
            & (p_target - p_source >= margin)
        )
        rows = self._index.active[~strong[self._index.active]]
        for start in range(0, len(rows), _CHUNK):
            part = pa.array(rows[start : start + _CHUNK])
            source = table.column("source").take(part)
            # targets repeat (many failing patterns, one fix): each distinct one is read once
            taken = table.column("target").take(part)
            if not pa.types.is_dictionary(taken.type):
                taken = pc.dictionary_encode(taken)
            encoded = taken.combine_chunks()
            targets = _numpy(encoded.indices, -1)  # a null target: the element appended below
            # changes_target: another placeholder multiset (only where either side has one)
            changed = np.zeros(len(part), dtype=bool)
            slotted = _numpy(pc.match_substring(source, "{"), False)
            slotted |= np.append(_numpy(pc.match_substring(encoded.dictionary, "{"), False), False)[targets]
            some = np.flatnonzero(slotted)
            if len(some):
                said = source.take(pa.array(some))
                for kind in _KINDS:
                    placeholder = "{" + kind + "}"
                    wanted = np.append(_numpy(pc.count_substring(encoded.dictionary, placeholder), 0), 0)
                    changed[some] |= _numpy(pc.count_substring(said, placeholder), 0) != wanted[targets[some]]
            # changes_meaning: a polarity flip, another action or another kind of thing; each
            # needs bits on both sides, so the source is read only where the target has some
            dst = np.append(_facts(encoded.dictionary), np.uint64(0))[targets]
            src = np.zeros(len(part), dtype=np.uint64)
            some = np.flatnonzero(dst)
            if len(some):
                src[some] = _facts(source.take(pa.array(some)))
            dims_src, dims_dst = _dims(src), _dims(dst)
            flips = (dims_src & dims_dst & ~_dims(src & dst)) != 0
            act_src, act_dst = dims_src & _ACTION_DIMS_U, dims_dst & _ACTION_DIMS_U
            other_action = (act_src != 0) & (act_dst != 0) & ((act_src & act_dst) == 0)
            obj_src, obj_dst = src & _OBJECT_BITS_U, dst & _OBJECT_BITS_U
            other_kind = (obj_src != 0) & (obj_dst != 0) & ((obj_src & obj_dst) == 0)
            out[rows[start : start + _CHUNK]] = changed | flips | other_action | other_kind
        return out

    def __len__(self) -> int:
        if self._distinct is None:
            self._distinct = self._index.distinct()
        return self._distinct

    def _row(self, i: int) -> dict[str, Any]:
        """Row ``i`` as a dict (the same dict for the same row while it is cached)."""
        row = self._rows.get(i)
        if row is None:
            if len(self._rows) >= ROW_CACHE:
                self._rows.clear()
            row = self._rows[i] = {name: read(i) for name, read in self._columns}
        return row

    # --- runtime -----------------------------------------------------------------------------

    def lookup(self, text: str, home: Home | None = None) -> tuple[str, dict[str, Any]] | None:
        """The rewritten text and the rule for ``text`` said in ``home``, or None (also for a
        rule today's guards refuse, :meth:`unguarded`)."""
        if not len(self._index.active):
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


def _version(table: pa.Table) -> str:
    # The digest of json.dumps(table.to_pylist(), sort_keys=True), fed a batch of rows at a time.
    digest = hashlib.blake2b(digest_size=6)
    digest.update(b"[")
    first = True
    for batch in table.to_batches(max_chunksize=_CHUNK // 16):
        for row in batch.to_pylist():
            if not first:
                digest.update(b", ")
            digest.update(json.dumps(row, sort_keys=True, default=str).encode())
            first = False
    digest.update(b"]")
    return "rw-" + digest.hexdigest()


COMPACT_MIN = 100_000
"""Tables of this many rows or more hold their repeating columns dictionary-encoded in memory
(a 10,000,000-rule community table: 1.5 GB of Arrow instead of 3.3; bench/community_latency.py)."""

ROW_CACHE = 4096
"""Rows :meth:`RewriteTable.lookup` keeps as dicts once read (the rules that keep matching)."""

_CHUNK = 1 << 20
"""Rows checked at a time by the guards' column-wise pass."""

_KINDS = PLACEHOLDER.pattern[PLACEHOLDER.pattern.index("(") + 1 : PLACEHOLDER.pattern.index(")")].split("|")
"""The placeholder kinds (``area``, ``floor``, ...)."""

_LOW_U, _ACTION_DIMS_U, _OBJECT_BITS_U = np.uint64(_LOW), np.uint64(_ACTION_DIMS), np.uint64(_OBJECT_BITS)
_MEANING_BITS = _LOW | _LOW << 1 | _OBJECT_BITS
"""The bits of :func:`~selflearn.core.guards.facts` that changes_meaning reads (below 64)."""
_VOCABULARY = pa.array(sorted(_WORD_BITS))
_VOCABULARY_BITS = np.array([_WORD_BITS[w] & _MEANING_BITS for w in _VOCABULARY.to_pylist()] + [0], np.uint64)


def _dims(bits: np.ndarray) -> np.ndarray:
    out: np.ndarray = (bits | bits >> np.uint64(1)) & _LOW_U
    return out


def _facts(patterns: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """:func:`~selflearn.core.guards.facts` of each pattern (the bits changes_meaning reads):
    the words' bits or-ed together, the words being the runs of ``[a-z']`` as there."""
    words = pc.split_pattern_regex(patterns, r"[^a-z']+")
    if isinstance(words, pa.ChunkedArray):
        words = words.combine_chunks()
    lengths = _numpy(pc.list_value_length(words), 0)
    found = pc.index_in(words.flatten(), value_set=_VOCABULARY)
    bits = _VOCABULARY_BITS[_numpy(found, len(_VOCABULARY_BITS) - 1)]
    out = np.zeros(len(lengths), dtype=np.uint64)
    said = lengths > 0
    if bits.size:
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        out[said] = np.bitwise_or.reduceat(bits, starts[said])
    return out


def _numpy(column: pa.ChunkedArray | pa.Array, null: Any) -> np.ndarray:
    if pa.types.is_dictionary(column.type):  # the values, through the (small) dictionary
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        values = np.append(_numpy(column.dictionary, null), _numpy(pa.array([null]), null))
        out: np.ndarray = values[_numpy(column.indices, -1)]  # a null index: the last value, ``null``
        return out
    return np.asarray(pc.fill_null(column, null).to_numpy(zero_copy_only=False))


def _conforms(schema: pa.Schema) -> bool:
    """Whether ``schema`` is :data:`TABLE_SCHEMA`, some columns perhaps dictionary-encoded."""
    if schema.names != TABLE_SCHEMA.names:
        return False
    for field, wanted in zip(schema, TABLE_SCHEMA, strict=True):
        kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        if not kind.equals(wanted.type):
            return False
    return True


_INDEX_TYPES = ((1 << 7, pa.int8()), (1 << 15, pa.int16()), (1 << 31, pa.int32()))


def _compact(name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    """``column`` dictionary-encoded with the narrowest indices that fit, when its values repeat
    enough for that to take less memory; else as it is. ``source`` (searched by the index), the
    booleans and a column already encoded are left alone. The values are the same (``-0.0`` and
    ``0.0`` stay apart; nulls stay nulls)."""
    kind = column.type
    if name == "source" or pa.types.is_dictionary(kind) or pa.types.is_boolean(kind) or not len(column):
        return column
    # a column of mostly distinct values (ids, example sentences) is not encoded at all: its
    # first rows say so without hashing every row
    head = column.slice(0, _CHUNK)
    if pc.count_distinct(head, mode="all").as_py() > len(head) // 2:
        return column
    encoded = pc.dictionary_encode(column).combine_chunks()
    width = next(t for limit, t in _INDEX_TYPES if len(encoded.dictionary) <= limit)
    encoded = encoded.cast(pa.dictionary(width, kind))
    if encoded.nbytes >= 0.9 * column.nbytes:
        return column
    return pa.chunked_array([encoded])


def _reader(column: pa.ChunkedArray) -> Callable[[int], Any]:
    """How :meth:`RewriteTable._row` reads row ``i`` of ``column``: a dictionary-encoded column
    without nulls through its indices (in place), from its values as Python objects when there
    are few of them; any other column as an Arrow scalar. The same value either way."""
    if pa.types.is_dictionary(column.type) and column.num_chunks == 1 and not column.null_count:
        chunk = column.chunk(0)
        at = memoryview(chunk.indices.to_numpy(zero_copy_only=True))
        dictionary = chunk.dictionary
        if len(dictionary) <= _SMALL_DICTIONARY:
            values = dictionary.to_pylist()
            return lambda i: values[at[i]]
        return lambda i: dictionary[at[i]].as_py()
    return lambda i: column[i].as_py()


_SMALL_DICTIONARY = 1 << 16
"""A dictionary of at most this many values is read as a Python list (counts, statuses)."""


class _SourceIndex:
    """Where each active rule's source pattern is: the active rows' numbers in the order of their
    sources (a stable sort, so equal sources keep their row order), searched by bisection over
    the Arrow column's own bytes. Compact at any size (8 bytes per rule besides the column); a
    source said by several active rows finds the last of them."""

    def __init__(self, table: pa.Table) -> None:
        column = table.column("source")
        if column.nbytes > 1 << 30:  # 32-bit offsets would overflow once combined and taken
            column = column.cast(pa.large_string())
        if isinstance(column, pa.ChunkedArray):
            column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        source = column
        self.source: pa.Array = source
        active = pc.and_(pc.equal(table.column("status"), "active"), pc.is_valid(table.column("source")))
        width = np.int64 if table.num_rows >= 1 << 31 else np.int32
        self.active = np.flatnonzero(_numpy(active, False)).astype(width)
        """Row numbers of the active rules."""
        order = _numpy(pc.array_sort_indices(source), 0) if len(self.active) else np.zeros(0, np.int64)
        keep = np.zeros(table.num_rows, dtype=bool)
        keep[self.active] = True
        self.order = order[keep[order]].astype(width)
        """Active row numbers in the order of their sources."""
        _, offsets, data = source.buffers()
        wide = pa.types.is_large_string(source.type)
        bounds = np.frombuffer(offsets, dtype=np.int64 if wide else np.int32)[source.offset :]
        # memoryviews: indexing them gives Python ints without numpy's per-scalar cost
        self._rows = self.order.data
        self._offsets = np.ascontiguousarray(bounds).data
        self._data = memoryview(data) if data is not None else memoryview(b"")

    def find(self, pattern: str) -> int:
        """The row of the active rule whose source is ``pattern``, or -1."""
        key = pattern.encode()
        rows, offsets, data = self._rows, self._offsets, self._data
        lo, hi = 0, len(rows)
        while lo < hi:  # the first position past every source <= key
            mid = (lo + hi) // 2
            row = rows[mid]
            if key < bytes(data[offsets[row] : offsets[row + 1]]):
                hi = mid
            else:
                lo = mid + 1
        if lo:
            row = rows[lo - 1]
            if bytes(data[offsets[row] : offsets[row + 1]]) == key:
                return int(row)
        return -1

    def distinct(self) -> int:
        """Distinct sources among the active rules."""
        if not len(self.active):
            return 0
        return int(pc.count_distinct(self.source.take(pa.array(self.active))).as_py())
