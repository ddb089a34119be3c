"""What the global layer knows: request patterns pooled across users, how often each worked, what
it meant when it worked, and which reformulation fixed it when it did not.

Built from the logs (:meth:`Knowledge.fit`):

* every organic turn (not rewritten) is delexicalized with its home's names
  (:mod:`selflearn.core.delex`), so "lights off in the kitchen" and "lights off in the bedroom"
  are one pattern, ``lights off in the {area}``;
* per pattern: turns, turns that worked (by the defect detector), distinct users and households,
  and the dominant **signature** of the turns that worked (the NLU's interpretation with the
  request's values abstracted, :func:`~selflearn.rewrite.logs.signature`);
* per failing pattern: the pattern its users' reformulations most often worked with (the *fix*),
  followed along ``rephrase_of`` chains, counted in distinct users.

**Privacy**: only patterns said by at least ``min_users`` distinct users from at least
``min_households`` homes are kept, patterns holding a name the home did not know (``{unknown}``)
never are, and a fix needs ``min_users`` users of its own. Household names never enter: they are
placeholders.

Patterns are embedded (:mod:`selflearn.core.embed`) and indexed per **slot signature** (the
multiset of placeholders), so a request is only ever compared with patterns its own values can fill.

Beside the patterns, an **intent model** (:mod:`selflearn.rewrite.intents`) learns from every
organic turn -- not only the k-anonymous patterns -- which intent requests with these words turned
out to mean, or that nobody got them to work; its words and word pairs are k-anonymous too.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from selflearn.core import memory
from selflearn.core.artefacts import format_name, read_description, reading, write_description
from selflearn.core.delex import Delexicalized, Delexicalizer, example_values, slot_signature
from selflearn.core.embed import StaticEmbedder
from selflearn.core.errors import ConfigError
from selflearn.core.home import Home
from selflearn.rewrite.columns import quote_path
from selflearn.rewrite.index import VectorIndex
from selflearn.rewrite.intents import NONE, IntentModel
from selflearn.rewrite.logs import LogTurn, chains, signature

FORMAT = format_name("knowledge", 2)

PATTERN_SCHEMA: Mapping[str, str] = {
    "pattern": "VARCHAR",
    "slots": "VARCHAR",
    "turns": "BIGINT",
    "successes": "BIGINT",
    "users": "BIGINT",
    "households": "BIGINT",
    "signature": "VARCHAR",
    "signature_share": "DOUBLE",
    "fix": "VARCHAR",
    "fix_signature": "VARCHAR",
    "fix_users": "BIGINT",
}
"""Columns of ``patterns.parquet`` and their DuckDB types (Parquet's string, int64 and double),
written and read with DuckDB: one row per k-anonymous pattern. ``slots`` is the slot
signature joined by spaces (``"area name"``); ``signature`` the dominant interpretation of the
pattern's successful turns and ``signature_share`` its share; ``fix``/``fix_signature``/
``fix_users`` the reformulation that most often worked after the pattern failed, if any."""


@dataclass(frozen=True)
class KnowledgeConfig:
    """Thresholds of the global layer."""

    min_users: int = 5
    """k: distinct users a pattern (and a fix) needs before it is pooled."""
    min_households: int = 2
    """Distinct homes a pattern needs."""
    defect_threshold: float = 0.5
    """P(defect) from which a turn counts as failed."""
    good_success: float = 0.8
    """A pattern whose success rate (Beta(1, 1) posterior mean) is at least this, over at least
    ``good_turns`` turns, "works": it is never rewritten."""
    good_turns: int = 4
    target_success: float = 0.7
    """Success rate a pattern needs to be a rewrite candidate."""
    target_turns: int = 3
    """Turns that worked a candidate needs."""
    intent_model: bool = False
    """Learn the intent model (:mod:`selflearn.rewrite.intents`) beside the patterns; off
    (default), its ranking features are missing values. Off because it costs more than it gives:
    on the online benchmark it made the decision worse on clean speech (right-vs-wrong pick AUC
    0.71 with it, 0.76 without; 246 wrong actions instead of 131 with the personal layer, fewer
    wins) and changed nothing measurable on noisy speech (docs/benchmarks.md, "Online
    rewriting")."""

    def __post_init__(self) -> None:
        if self.min_users < 1 or self.min_households < 1:
            raise ConfigError("min_users and min_households must be at least 1")
        for name in ("defect_threshold", "good_success", "target_success"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"KnowledgeConfig.{name} must be between 0 and 1, got {value!r}")


@dataclass
class Pattern:
    """Statistics of one pattern (a row of :data:`PATTERN_SCHEMA`)."""

    pattern: str
    slots: str
    turns: int
    successes: int
    users: int
    households: int
    signature: str | None
    signature_share: float
    fix: str | None
    fix_signature: str | None
    fix_users: int

    @property
    def success_rate(self) -> float:
        """Beta(1, 1) posterior mean of the pattern working."""
        return (self.successes + 1) / (self.turns + 2)

    @property
    def intent(self) -> str | None:
        return self.signature.split("|", 1)[0] if self.signature else None


def slots_key(pattern: str) -> str:
    """The slot signature of a pattern as one string (the partition key)."""
    return " ".join(slot_signature(pattern))


def embed_text(pattern: str) -> str:
    """The text a pattern is embedded as: its placeholders filled with neutral example values."""
    return example_values(pattern)


class DelexCache:
    """One :class:`Delexicalizer` per home, built on first use."""

    def __init__(self, homes: dict[str, Home] | None = None, limit: int = 10_000) -> None:
        self.homes = homes or {}
        self.limit = limit
        self._cache: dict[str, tuple[Home | None, Delexicalizer]] = {}

    def get(self, household_id: str, home: Home | None = None) -> Delexicalizer:
        home = home if home is not None else self.homes.get(household_id)
        hit = self._cache.get(household_id)
        if hit is None or hit[0] is not home:
            if len(self._cache) >= self.limit:
                self._cache.clear()
            hit = (home, Delexicalizer(home))
            self._cache[household_id] = hit
        return hit[1]

    def __call__(self, turn: LogTurn) -> Delexicalized:
        return self.get(turn.household_id)(turn.said, turn.unresolved)


class Knowledge:
    """The global layer's patterns with their statistics and per-slot-signature vector indexes.

    The learner contract (:mod:`selflearn.core.artefacts`): ``Knowledge(config).fit(turns,
    homes, embedder)`` learns ``patterns_``, ``indexes_``, ``intent_model_`` and ``metadata_``
    from the logs (see the module docstring); :meth:`from_parts` assembles one from parts.
    """

    def __init__(self, config: KnowledgeConfig | None = None) -> None:
        self.config = config or KnowledgeConfig()
        self.patterns_: list[Pattern] = []
        self.indexes_: dict[str, tuple[VectorIndex, np.ndarray]] = {}
        """Slot signature -> (index over the partition's patterns, their rows in :attr:`patterns_`)."""
        self.intent_model_: IntentModel | None = None
        """P(intent | a request's words), learned from the same logs (None: not learned)."""
        self.metadata_: dict[str, Any] = {}
        self._index()

    @classmethod
    def from_parts(
        cls,
        patterns: list[Pattern],
        indexes: dict[str, tuple[VectorIndex, np.ndarray]],
        config: KnowledgeConfig | None = None,
        metadata: dict[str, Any] | None = None,
        intent_model: IntentModel | None = None,
    ) -> Knowledge:
        """Knowledge made of given parts (tests, benchmarks that grow an index)."""
        knowledge = cls(config)
        knowledge.patterns_, knowledge.indexes_ = patterns, indexes
        knowledge.metadata_, knowledge.intent_model_ = dict(metadata or {}), intent_model
        knowledge._index()
        return knowledge

    def _index(self) -> None:
        """The lookups derived from the patterns (read on every request, so computed once)."""
        self.by_pattern: dict[str, int] = {p.pattern: i for i, p in enumerate(self.patterns_)}
        self.targets: list[bool] = [self.is_target(p) for p in self.patterns_]
        """Per row: :meth:`is_target`."""
        self._local: dict[str, dict[int, int]] = {}
        self._rows: dict[str, list[int]] = {}

    def __len__(self) -> int:
        return len(self.patterns_)

    def get(self, pattern: str) -> Pattern | None:
        row = self.by_pattern.get(pattern)
        return None if row is None else self.patterns_[row]

    def works(self, p: Pattern) -> bool:
        """Whether ``p`` works well enough never to be rewritten."""
        return p.turns >= self.config.good_turns and p.success_rate >= self.config.good_success

    @cached_property
    def command_words(self) -> frozenset[str]:
        """The words of the patterns that work, outside their slots ("add", "to", "my", "list"
        of "add {item} to my list"): the assistant's own vocabulary, which no household word
        for a thing should replace."""
        return frozenset(
            w for p in self.patterns_ if self.works(p) for w in p.pattern.split() if not w.startswith("{")
        )

    def is_target(self, p: Pattern) -> bool:
        """Whether ``p`` may be rewritten to."""
        return (
            p.signature is not None
            and p.successes >= self.config.target_turns
            and p.success_rate >= self.config.target_success
            and p.signature_share >= 0.8
        )

    def search(self, vector: np.ndarray, slots: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest patterns with slot signature ``slots``: (row, cosine)."""
        part = self.indexes_.get(slots)
        if part is None:
            return []
        index, rows = part
        scores, local = index.search(vector, k)
        as_list = self._rows.get(slots)
        if as_list is None:
            as_list = self._rows[slots] = rows.tolist()
        return [(as_list[i], s) for i, s in zip(local.tolist(), scores.tolist(), strict=True) if i >= 0]

    def vector(self, row: int) -> np.ndarray:
        """The embedding of pattern ``row`` (read back from its index)."""
        p = self.patterns_[row]
        index, rows = self.indexes_[p.slots]
        local = self._local.get(p.slots)
        if local is None:
            local = {int(r): i for i, r in enumerate(rows)}
            self._local[p.slots] = local
        return np.asarray(index.index.reconstruct(local[row]), dtype=np.float32)

    # --- artifact ----------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write the patterns, one index folder per partition, the intent model and ``model.json``."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        write_patterns(self.patterns_, out / "patterns.parquet")
        parts = {}
        for n, (slots, (index, rows)) in enumerate(sorted(self.indexes_.items())):
            index.save(out / f"index-{n}")
            np.save(out / f"rows-{n}.npy", rows)
            parts[slots] = n
        if self.intent_model_ is not None and self.intent_model_.fitted:
            self.intent_model_.save(out / "intents")
        meta = {"config": asdict(self.config), "partitions": parts, **self.metadata_}
        return write_description(out, FORMAT, meta)

    @classmethod
    def load(cls, folder: str | Path) -> Knowledge:
        """Read knowledge written by :meth:`save`."""
        src = Path(folder)
        meta = read_description(src, FORMAT, "rewriter knowledge", retrain="selflearn train rewriter")
        with reading(src, "rewriter knowledge", extra=(duckdb.Error,)):
            patterns = read_patterns(src / "patterns.parquet")
            indexes = {}
            for slots, n in meta["partitions"].items():
                rows = np.load(src / f"rows-{n}.npy")
                indexes[slots] = (VectorIndex.load(src / f"index-{n}"), rows)
        config = KnowledgeConfig(**meta.get("config", {}))
        extra = {k: v for k, v in meta.items() if k not in ("format", "config", "partitions")}
        intents = IntentModel.load(src / "intents") if (src / "intents").exists() else None
        return cls.from_parts(patterns, indexes, config, extra, intents)

    def fit(
        self,
        turns: list[LogTurn],
        homes: dict[str, Home],
        embedder: StaticEmbedder,
        exclude_households: Iterable[str] = (),
    ) -> Knowledge:
        """Learn the global layer's knowledge from ``turns`` (see the module docstring), leaving
        out the households in ``exclude_households``; returns self."""
        config = self.config
        started = time.perf_counter()
        skip = set(exclude_households)
        use = [t for t in turns if t.household_id not in skip] if skip else turns
        cache = DelexCache(homes)
        organic = {t.turn_id: cache(t) for t in use if t.rewritten is None}

        def delex(t: LogTurn) -> Delexicalized:
            d = organic.get(t.turn_id)
            return d if d is not None else cache(t)

        patterns, dropped = aggregate(use, delex, config)
        indexes = build_indexes(patterns, embedder)
        intents = None
        if config.intent_model:
            intents = IntentModel(config.min_users, config.min_households).fit(intent_examples(use, organic))
        blob = json.dumps([asdict(p) for p in patterns], sort_keys=True).encode()
        if intents is not None and intents.fitted:
            blob += json.dumps(intents.classes_).encode()
            blob += intents.coef_.tobytes() + intents.intercept_.tobytes()
        self.metadata_ = {
            "version": "kn-" + hashlib.blake2b(blob, digest_size=6).hexdigest(),
            "turns": len(use),
            "users": len({t.user_id for t in use}),
            "households": len({t.household_id for t in use}),
            "patterns": dropped,
            "intent_model": {"classes": len(intents.classes_), "words": len(intents.vocab_)}
            if intents is not None and intents.fitted
            else None,
            "seconds": round(time.perf_counter() - started, 2),
        }
        self.patterns_, self.indexes_, self.intent_model_ = patterns, indexes, intents
        self._index()
        return self


def write_patterns(patterns: list[Pattern], path: Path) -> None:
    """Write ``patterns.parquet`` (:data:`PATTERN_SCHEMA`) with DuckDB."""
    columns = []
    arrays: dict[str, np.ndarray] = {}
    for name, kind in PATTERN_SCHEMA.items():
        values = [getattr(p, name) for p in patterns]
        if kind == "VARCHAR":
            arrays[name] = np.empty(len(values), dtype=object)
            arrays[name][:] = values
            columns.append(f"CAST({name} AS VARCHAR) AS {name}")
        else:
            arrays[name] = np.array(values, dtype=np.float64 if kind == "DOUBLE" else np.int64)
            value = name
            if kind == "DOUBLE" and np.isnan(arrays[name]).any():  # DuckDB reads a NaN as a null
                arrays[f"{name}_nan"] = np.isnan(arrays[name])
                value = f"CASE WHEN {name}_nan THEN 'NaN'::DOUBLE ELSE {name} END"
            columns.append(f"CAST({value} AS {kind}) AS {name}")
    with memory.cursor() as con:
        if patterns:
            con.register("patterns_in", arrays)
            query = f"SELECT {', '.join(columns)} FROM patterns_in"
        else:
            empty = ", ".join(f"NULL::{kind} AS {name}" for name, kind in PATTERN_SCHEMA.items())
            query = f"SELECT {empty} LIMIT 0"
        con.execute(f"COPY ({query}) TO {quote_path(path)} (FORMAT parquet)")


def read_patterns(path: Path) -> list[Pattern]:
    """The patterns of a ``patterns.parquet`` (written by :func:`write_patterns`, or by pyarrow
    before it: the same columns)."""
    columns = ", ".join(f"CAST({name} AS {kind}) AS {name}" for name, kind in PATTERN_SCHEMA.items())
    with memory.cursor() as con:
        rows = con.sql(f"SELECT {columns} FROM read_parquet({quote_path(path)})").fetchall()
    return [Pattern(**dict(zip(PATTERN_SCHEMA, row, strict=True))) for row in rows]


def aggregate(
    turns: list[LogTurn], delex: Callable[[LogTurn], Delexicalized], config: KnowledgeConfig
) -> tuple[list[Pattern], dict[str, int]]:
    """Per-pattern statistics of ``turns`` (organic ones), k-anonymous patterns only; also returns
    counts of what was dropped and why."""
    stats: dict[str, dict[str, Any]] = {}
    pattern_of: dict[str, str] = {}
    for t in turns:
        if t.rewritten is not None:
            continue
        d = delex(t)
        pattern_of[t.turn_id] = d.pattern
        s = stats.get(d.pattern)
        if s is None:
            s = stats[d.pattern] = {"turns": 0, "ok": 0, "users": set(), "homes": set(), "sig": Counter()}
        s["turns"] += 1
        s["users"].add(t.user_id)
        s["homes"].add(t.household_id)
        if not t.defect:
            s["ok"] += 1
            sig = signature(t.intent, t.slots, d)
            if sig is not None:
                s["sig"][sig] += 1
    fixes: dict[str, dict[tuple[str, str], set[str]]] = defaultdict(lambda: defaultdict(set))
    for failed, fixed in chains(turns):
        src = pattern_of.get(failed.turn_id)
        dst = pattern_of.get(fixed.turn_id) if fixed is not None else None
        if src is None or dst is None or fixed is None or dst == src:
            continue
        sig = signature(fixed.intent, fixed.slots, delex(fixed))
        if sig is not None and slot_signature(src) == slot_signature(dst):
            fixes[src][(dst, sig)].add(failed.user_id)
    dropped: Counter[str] = Counter()
    out: list[Pattern] = []
    for pattern in sorted(stats):
        s = stats[pattern]
        if "{unknown}" in pattern:
            dropped["unknown name"] += 1
            continue
        if len(s["users"]) < config.min_users or len(s["homes"]) < config.min_households:
            dropped["fewer than k users"] += 1
            continue
        sig, sig_n = s["sig"].most_common(1)[0] if s["sig"] else (None, 0)
        fix = fix_sig = None
        fix_users = 0
        options = fixes.get(pattern)
        if options:
            (dst, dsig), users = max(options.items(), key=lambda kv: (len(kv[1]), kv[0]))
            if len(users) >= config.min_users and "{unknown}" not in dst:
                fix, fix_sig, fix_users = dst, dsig, len(users)
        out.append(
            Pattern(
                pattern=pattern,
                slots=slots_key(pattern),
                turns=s["turns"],
                successes=s["ok"],
                users=len(s["users"]),
                households=len(s["homes"]),
                signature=sig,
                signature_share=sig_n / s["ok"] if s["ok"] else 0.0,
                fix=fix,
                fix_signature=fix_sig,
                fix_users=fix_users,
            )
        )
    dropped["kept"] = len(out)
    return out, dict(dropped)


def build_indexes(
    patterns: list[Pattern], embedder: StaticEmbedder, progress: Callable[[int], None] | None = None
) -> dict[str, tuple[VectorIndex, np.ndarray]]:
    """Embed every pattern and index each slot-signature partition."""
    by_slots: dict[str, list[int]] = defaultdict(list)
    for row, p in enumerate(patterns):
        by_slots[p.slots].append(row)
    indexes: dict[str, tuple[VectorIndex, np.ndarray]] = {}
    for slots in sorted(by_slots):
        rows = np.asarray(by_slots[slots], dtype=np.int64)
        vectors = embedder.encode([embed_text(patterns[r].pattern) for r in rows])
        indexes[slots] = (VectorIndex.build(vectors), rows)
        if progress is not None:
            progress(len(rows))
    return indexes


def intent_examples(
    turns: list[LogTurn], organic: dict[str, Delexicalized]
) -> Iterable[tuple[str, str, str, str]]:
    """The intent model's training examples, ``(pattern, label, user, household)``: each organic
    turn (its delexicalized form in ``organic``) labelled with the intent that worked -- its own,
    or its reformulation's -- or :data:`~selflearn.rewrite.intents.NONE` when it was refused and
    never fixed. Turns that acted wrongly and were never fixed say nothing and are left out."""
    fixed_of = {failed.turn_id: fixed for failed, fixed in chains(turns)}
    for t in turns:
        d = organic.get(t.turn_id)
        if d is None:
            continue
        if not t.defect:
            label = t.intent
        else:
            fixed = fixed_of.get(t.turn_id)
            label = fixed.intent if fixed is not None else NONE if t.status != "success" else None
        if label:
            yield d.pattern, label, t.user_id, t.household_id
