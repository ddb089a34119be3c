"""The rewrite table's column-wise index and guard pass decide as the per-row dicts did."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import pyarrow as pa

from selflearn.core.guards import changes_meaning, changes_target, evidence_bar, overwhelming
from selflearn.core.home import Area, Entity, Home
from selflearn.rewrite.table import TABLE_SCHEMA, RewriteTable, _version, rule_id

VOCABULARY = (
    "turn switch on off the lights light fan lock unlock door open close play pause music "
    "set timer alarm arm disarm up down volume {area} {name} {number} {floor} in please what's "
    "kill cut mute unmute add remove list shopping heat heating é café"
)
WORDS = VOCABULARY.split(" ")


def _rows(rng: random.Random, n: int) -> list[dict[str, Any]]:
    rows = []
    sources = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6))) for _ in range(n // 2)]
    for _ in range(n):
        source = rng.choice(sources)  # repeats: the last active row wins
        target = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))
        rows.append(
            {
                "rule_id": rule_id(source, target),
                "source": source,
                "target": target,
                "source_example": source,
                "target_example": target,
                "p_source": rng.choice([0.0, 0.01, 0.1, 0.5]),
                "p_target": rng.choice([0.5, 0.9, 0.95, 0.99, 1.0]),
                "absorb_source": 0.1,
                "absorb_target": 0.9,
                "support": 3,
                "users": rng.choice([1, 5, 10, 49, 50, 60, 200]),
                "households": 3,
                "source_turns": 4,
                "target_turns": 6,
                "source_users": 2,
                "sensitive": rng.random() < 0.3,
                "deployed_turns": 0,
                "deployed_success": 0,
                "p_worse_after": 0.0,
                "status": "active" if rng.random() < 0.8 else "demoted",
            }
        )
    return rows


def _reference(rows: list[dict[str, Any]], config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The table's former per-row implementation: active rows by source, and the refused ones."""
    active = {r["source"]: r for r in rows if r["status"] == "active"}
    k_all, margin_all = int(config.get("min_users", 5)), float(config.get("margin", 0.3))
    refused = {}
    for source, row in active.items():
        target = row["target"]
        if not (changes_meaning(source, target) or changes_target(source, target)):
            continue
        k, margin = evidence_bar(k_all, margin_all, bool(row["sensitive"]), 2.0)
        if not overwhelming(int(row["users"]), float(row["p_target"]), float(row["p_source"]), k, margin):
            refused[source] = row
    return active, refused


def test_lookups_guards_and_counts_match_the_per_row_implementation() -> None:
    rng = random.Random(7)
    home = Home(
        "h1",
        areas=(Area("kitchen", "Kitchen"),),
        entities=(Entity("light.ceiling", "Ceiling Light", "kitchen"),),
    )
    for config in ({}, {"min_users": 10, "margin": 0.2}):
        rows = _rows(rng, 600)
        table = RewriteTable(pa.Table.from_pylist(rows, schema=TABLE_SCHEMA), {"config": config})
        active, refused = _reference(rows, config)
        assert len(table) == len(active)
        assert sorted(r["rule_id"] for r in table.unguarded()) == sorted(
            r["rule_id"] for r in refused.values()
        )
        assert refused, "the random rules include refused ones"
        hits = 0
        for source, row in active.items():
            text = source.replace("{area}", "kitchen").replace("{name}", "ceiling light")
            text = text.replace("{number}", "20").replace("{floor}", "upstairs")
            hit = table.lookup(text, home)
            if hit is not None:
                assert hit[1] == row and source not in refused
                hits += 1
        assert hits > 20
        for source in list(active)[:50]:
            assert table._index.find(source) >= 0
            assert table._row(table._index.find(source)) == active[source]
        for missing in ("", "nothing like it", "zzz", "turn on the lights in the attic please now"):
            if missing not in active:
                assert table._index.find(missing) == -1


def test_an_empty_or_all_demoted_table_finds_nothing() -> None:
    empty = RewriteTable(TABLE_SCHEMA.empty_table(), {})
    assert len(empty) == 0 and empty.lookup("turn on the lights") is None and empty.unguarded() == []
    demoted = RewriteTable.from_rules([("kill the lights", "turn off the lights")])
    demoted = RewriteTable(demoted.table.set_column(19, "status", pa.array(["demoted"])), {})
    assert len(demoted) == 0 and demoted.lookup("kill the lights") is None


def test_the_version_is_the_digest_of_every_row_as_before() -> None:
    rows = _rows(random.Random(3), 300)
    table = pa.Table.from_pylist(rows, schema=TABLE_SCHEMA)
    blob = json.dumps(table.to_pylist(), sort_keys=True, default=str).encode()
    assert _version(table) == "rw-" + hashlib.blake2b(blob, digest_size=6).hexdigest()
    assert _version(TABLE_SCHEMA.empty_table()) == "rw-" + hashlib.blake2b(b"[]", digest_size=6).hexdigest()
