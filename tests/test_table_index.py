"""The rewrite table's column-wise index and guard pass decide as the per-row dicts did, and a
compact (dictionary-encoded) table as the plain one."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

import selflearn.rewrite.table as table_module
from selflearn.core.artefacts import write_description
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


def _compacted(monkeypatch: Any) -> None:
    """Make every table, however small, compact (as one of :data:`COMPACT_MIN` rows is)."""
    monkeypatch.setattr(table_module, "COMPACT_MIN", 1)


def test_a_compact_table_holds_the_same_values_and_decides_the_same(monkeypatch: Any) -> None:
    rng = random.Random(11)
    rows = _rows(rng, 800)
    fixes = [row["target"] for row in rows[:40]]
    for row in rows:  # targets repeat (many failing patterns, one fix)
        row["target"] = rng.choice(fixes)
    rows[0]["p_source"], rows[1]["p_source"] = -0.0, None  # kept apart from 0.0; a null stays one
    rows[2]["target"] = None
    plain_arrow = pa.Table.from_pylist(rows, schema=TABLE_SCHEMA)
    plain = RewriteTable(plain_arrow, {})
    _compacted(monkeypatch)
    compact = RewriteTable(plain_arrow, {})
    encoded = {f.name for f in compact.table.schema if pa.types.is_dictionary(f.type)}
    assert {"target", "status", "users", "p_target"} <= encoded and "source" not in encoded
    assert "rule_id" not in encoded  # all distinct: left as it is
    assert compact.table.nbytes < plain_arrow.nbytes / 2
    assert compact.table.cast(TABLE_SCHEMA).equals(plain_arrow)
    assert compact.table.to_pylist() == plain_arrow.to_pylist()
    assert str(compact.table.column("p_source")[0].as_py()) == "-0.0"
    assert compact.table.column("p_source")[1].as_py() is None
    assert len(compact) == len(plain)
    assert [r["rule_id"] for r in compact.unguarded()] == [r["rule_id"] for r in plain.unguarded()]
    assert (compact._refused == plain._refused).all()
    assert all(compact._row(i) == plain._row(i) for i in range(len(rows)))  # each column's reader
    home = Home("h1", areas=(Area("kitchen", "Kitchen"),))
    hits = 0
    for row in rows:
        text = row["source"].replace("{area}", "kitchen").replace("{number}", "20")
        hit = compact.lookup(text, home)
        assert hit == plain.lookup(text, home)
        hits += hit is not None
    assert hits > 20


def test_a_compact_table_is_saved_plain_and_loads_compact(monkeypatch: Any, tmp_path: Any) -> None:
    rows = _rows(random.Random(5), 500)
    arrow = pa.Table.from_pylist(rows, schema=TABLE_SCHEMA)
    # a table saved before compact tables existed: pq.write_table of the plain columns
    old = tmp_path / "old"
    old.mkdir()
    pq.write_table(arrow, old / "rewrites.parquet")
    write_description(old, table_module.FORMAT, {"version": "rw-old", "rules": len(rows)})
    plain = RewriteTable.load(old)
    assert plain.table.schema.equals(TABLE_SCHEMA) and plain.table.equals(arrow)
    _compacted(monkeypatch)
    loaded = RewriteTable.load(old)
    assert any(pa.types.is_dictionary(f.type) for f in loaded.table.schema)
    assert loaded.table.cast(TABLE_SCHEMA).equals(arrow) and loaded.version == "rw-old"
    again = loaded.save(tmp_path / "again")
    assert pq.read_schema(again / "rewrites.parquet").equals(TABLE_SCHEMA)
    assert pq.read_table(again / "rewrites.parquet").equals(arrow)
    assert _version(loaded.table) == _version(arrow)  # the digest of the same values
    assert RewriteTable.load(again).table.to_pylist() == rows


def test_a_dictionary_of_exactly_128_values_and_nulls_reads_back() -> None:
    column = pa.chunked_array([pa.array([*range(128), None, 5] * 3, pa.int64())])
    encoded = table_module._compact("users", column)
    assert encoded.type == pa.dictionary(pa.int8(), pa.int64())
    assert table_module._numpy(encoded, 0).tolist() == table_module._numpy(column, 0).tolist()
