"""The rewrite-table artifact and its runtime lookup.

On disk a table is a folder with ``rewrites.parquet`` (one row per rewrite, :data:`TABLE_SCHEMA`)
and ``model.json`` (format, version, config, data range, counts, timings). At run time a
:class:`RewriteTable` is a :class:`~selflearn.assistant.pipeline.RewriteHook`: it delexicalizes the
request with the home's names, looks the pattern up among the active rewrites, and fills the
target pattern with the request's own values.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from selflearn.core.artefacts import format_name, read_description, reading, write_description
from selflearn.core.delex import Delexicalizer, fill
from selflearn.core.errors import ConfigError
from selflearn.core.guards import changes_meaning, changes_target, evidence_bar, overwhelming
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


@dataclass
class RewriteTable:
    """A mined rewrite table; callable as a rewriter in front of the NLU."""

    table: pa.Table
    metadata: dict[str, Any]
    path: Path | None = None
    """The folder it was loaded from, if it was."""

    def __post_init__(self) -> None:
        if not self.table.schema.equals(TABLE_SCHEMA):
            self.table = self.table.select(TABLE_SCHEMA.names).cast(TABLE_SCHEMA)
        self._active: dict[str, dict[str, Any]] = {
            row["source"]: row for row in self.table.to_pylist() if row["status"] == "active"
        }
        self._delex: dict[str, tuple[Home | None, Delexicalizer]] = {}
        self._refused = self._find_unguarded()
        """:meth:`unguarded` rules by source: kept in the table, never applied by :meth:`lookup`."""

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
            "active": len(self._active),
            **{k: v for k, v in self.metadata.items() if k != "format"},
        }
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(self.table, folder / "rewrites.parquet")
        write_description(folder, FORMAT, meta)
        self.metadata = {"format": FORMAT, **meta}
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> RewriteTable:
        """Read a folder written by :meth:`save`."""
        folder = Path(folder)
        meta = read_description(folder, FORMAT, "rewrite table", retrain="selflearn mine")
        with reading(folder, "rewrite table", retrain="selflearn mine"):
            table = pq.read_table(folder / "rewrites.parquet")
        missing = set(TABLE_SCHEMA.names) - set(table.column_names)
        if missing:
            raise ConfigError(f"{folder}/rewrites.parquet lacks columns {sorted(missing)}")
        loaded = cls(table, meta, folder)
        risky = loaded.unguarded()
        if risky:
            shown = "; ".join(f"{r['source']!r} -> {r['target']!r}" for r in risky[:3])
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
        return list(self._refused.values())

    def _find_unguarded(self) -> dict[str, dict[str, Any]]:
        """:meth:`unguarded`, computed once from the active rows: by source."""
        config = self.metadata.get("config") or {}
        k_all, margin_all = int(config.get("min_users", 5)), float(config.get("margin", 0.3))
        factor = float(config.get("sensitive_factor", 2.0))
        users_needed = int(config.get("overwhelming_users", 50))
        success_needed = float(config.get("overwhelming_success", 0.95))
        out: dict[str, dict[str, Any]] = {}
        for source, row in self._active.items():
            target = row["target"]
            if not (changes_meaning(source, target) or changes_target(source, target)):
                continue
            k, margin = evidence_bar(k_all, margin_all, bool(row["sensitive"]), factor)
            users, p_target, p_source = int(row["users"]), float(row["p_target"]), float(row["p_source"])
            if not overwhelming(users, p_target, p_source, k, margin, users_needed, success_needed):
                out[source] = row
        return out

    def __len__(self) -> int:
        return len(self._active)

    # --- runtime -----------------------------------------------------------------------------

    def lookup(self, text: str, home: Home | None = None) -> tuple[str, dict[str, Any]] | None:
        """The rewritten text and the rule for ``text`` said in ``home``, or None (also for a
        rule today's guards refuse, :meth:`unguarded`)."""
        if not self._active:
            return None
        delex = self._delexicalizer(home)
        d = delex(text)
        row = self._active.get(d.pattern)
        if row is None or d.pattern in self._refused:
            return None
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
    blob = json.dumps(table.to_pylist(), sort_keys=True, default=str).encode()
    return "rw-" + hashlib.blake2b(blob, digest_size=6).hexdigest()
