"""The rewrite table's column-wise index and guard pass decide as the per-row dicts did, a compact
(coded) table as the plain one, files round-trip with the Arrow writer's, and serving needs no
pyarrow."""

from __future__ import annotations

import hashlib
import json
import math
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import selflearn.rewrite.columns as columns_module
import selflearn.rewrite.table as table_module
from selflearn.core.artefacts import write_description
from selflearn.core.guards import changes_meaning, changes_target, evidence_bar, overwhelming
from selflearn.core.home import Area, Entity, Home
from selflearn.rewrite.table import RewriteTable, _version, rule_id
from selflearn.starter import packaged_starter_dir

ROOT = Path(__file__).resolve().parent.parent

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
        table = RewriteTable.from_rows(rows, {"config": config})
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
    empty = RewriteTable.from_rows([], {})
    assert len(empty) == 0 and empty.lookup("turn on the lights") is None and empty.unguarded() == []
    assert (
        empty.num_rows == 0 and empty.rows() == [] and empty.first(5) == [] and empty.column("source") == []
    )
    (row,) = RewriteTable.from_rules([("kill the lights", "turn off the lights")]).rows()
    demoted = RewriteTable.from_rows([{**row, "status": "demoted"}])
    assert len(demoted) == 0 and demoted.lookup("kill the lights") is None
    assert demoted.rows_where_source(["kill the lights"]) == [{**row, "status": "demoted"}]
    assert not demoted.is_active(row["rule_id"])


def test_the_version_is_the_digest_of_every_row_as_before() -> None:
    rows = _rows(random.Random(3), 300)
    rows[5]["p_source"], rows[6]["target"] = None, None
    blob = json.dumps(rows, sort_keys=True, default=str).encode()
    assert RewriteTable.from_rows(rows).version == "rw-" + hashlib.blake2b(blob, digest_size=6).hexdigest()
    assert _version([]) == "rw-" + hashlib.blake2b(b"[]", digest_size=6).hexdigest()


def test_the_starter_tables_version_is_the_arrow_versions() -> None:
    """The packaged starter's rows read as pyarrow reads them, digested as the Arrow version did."""
    pq = pytest.importorskip("pyarrow.parquet")
    folder = packaged_starter_dir() / "table"
    rows = pq.read_table(folder / "rewrites.parquet").to_pylist()
    table = RewriteTable.load(folder)
    assert table.rows() == rows and len(rows) == 51
    blob = json.dumps(rows, sort_keys=True, default=str).encode()
    assert _version(table.rows()) == "rw-" + hashlib.blake2b(blob, digest_size=6).hexdigest() == table.version


def _compacted(monkeypatch: Any) -> None:
    """Make every table, however small, compact (as one of :data:`COMPACT_MIN` rows is)."""
    monkeypatch.setattr(columns_module, "COMPACT_MIN", 1)


def test_a_compact_table_holds_the_same_values_and_decides_the_same(monkeypatch: Any) -> None:
    rng = random.Random(11)
    rows = _rows(rng, 800)
    fixes = [row["target"] for row in rows[:40]]
    for row in rows:  # targets repeat (many failing patterns, one fix)
        row["target"] = rng.choice(fixes)
    rows[0]["p_source"], rows[1]["p_source"] = -0.0, None  # kept apart from 0.0; a null stays one
    rows[2]["target"], rows[3]["users"], rows[4]["p_target"] = None, None, math.nan
    plain = RewriteTable.from_rows(rows)
    _compacted(monkeypatch)
    compact = RewriteTable.from_rows(rows)
    coded = {name for name, column in compact._columns.items() if isinstance(column, columns_module.Coded)}
    assert {"target", "status", "users", "p_target"} <= coded and "source" not in coded
    assert "rule_id" not in coded  # all distinct: left as it is
    assert not any(isinstance(column, columns_module.Coded) for column in plain._columns.values())
    assert compact.nbytes < plain.nbytes / 2
    assert _same(compact.rows(), plain.rows()) and _same(compact.rows(), rows)
    assert str(compact.column("p_source")[0]) == "-0.0" and compact.column("p_source")[1] is None
    assert compact.column("target")[2] is None and compact.column("users")[3] is None
    assert math.isnan(compact.column("p_target")[4])
    assert len(compact) == len(plain)
    assert [r["rule_id"] for r in compact.unguarded()] == [r["rule_id"] for r in plain.unguarded()]
    assert (compact._refused == plain._refused).all()
    assert all(_same([compact._row(i)], [plain._row(i)]) for i in range(len(rows)))  # each column's reader
    assert compact.first(50) == plain.first(50)
    home = Home("h1", areas=(Area("kitchen", "Kitchen"),))
    hits = 0
    for row in rows:
        text = row["source"].replace("{area}", "kitchen").replace("{number}", "20")
        hit = compact.lookup(text, home)
        assert hit == plain.lookup(text, home)
        hits += hit is not None
    assert hits > 20


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Equal rows, a NaN equal to a NaN."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_a_compact_table_is_saved_plain_and_loads_compact(monkeypatch: Any, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = _rows(random.Random(5), 500)
    rows[7]["p_target"], rows[8]["source_example"], rows[9]["sensitive"] = math.nan, None, None
    arrow = pa.Table.from_pylist(rows, schema=table_module.arrow_schema())
    # a table saved by the Arrow version: pq.write_table of the plain columns
    old = tmp_path / "old"
    old.mkdir()
    pq.write_table(arrow, old / "rewrites.parquet")
    write_description(old, table_module.FORMAT, {"version": "rw-old", "rules": len(rows)})
    plain = RewriteTable.load(old)
    assert _same(plain.rows(), rows)
    _compacted(monkeypatch)
    loaded = RewriteTable.load(old)
    assert any(isinstance(column, columns_module.Coded) for column in loaded._columns.values())
    assert _same(loaded.rows(), rows) and loaded.version == "rw-old"
    again = loaded.save(tmp_path / "again")
    # the same names and types (DuckDB marks a column without nulls required; pyarrow did not)
    written = pq.read_table(again / "rewrites.parquet")
    assert [(f.name, f.type) for f in written.schema] == [(f.name, f.type) for f in arrow.schema]
    assert _same(written.to_pylist(), rows)
    assert _version(loaded.rows()) == _version(arrow.to_pylist())  # the digest of the same values
    assert _same(RewriteTable.load(again).rows(), rows)
    assert _same(RewriteTable.from_arrow(arrow).rows(), RewriteTable.from_rows(rows).rows())


def test_a_column_of_exactly_256_values_and_nulls_reads_back() -> None:
    values = np.array([*range(256), 0, 5] * 3, np.int64)
    valid = np.ones(len(values), bool)
    valid[256::258] = False
    column = columns_module.Numbers(values, valid)
    coded = columns_module._code(column)
    assert isinstance(coded, columns_module.Coded) and coded.codes.dtype == np.uint16  # 256 + the null
    assert coded.pylist(0, len(values)) == column.pylist(0, len(values))
    floats = columns_module.Numbers(np.array([0.0, -0.0, math.nan, 1.5] * 40), None)
    coded = columns_module._code(floats)
    assert isinstance(coded, columns_module.Coded) and coded.codes.dtype == np.uint8
    assert str(coded.pylist(0, 160)) == str(floats.pylist(0, 160))


def test_readers_find_rows_by_source_and_id() -> None:
    rows = _rows(random.Random(9), 400)
    table = RewriteTable.from_rows(rows)
    wanted = {rows[0]["source"], rows[10]["source"], "no such pattern"}
    assert table.rows_where_source(wanted) == [r for r in rows if r["source"] in wanted]
    assert table.column("users") == [r["users"] for r in rows] and table.num_rows == 400
    active = next(r for r in rows if r["status"] == "active")
    demoted = next(r for r in rows if r["status"] == "demoted")
    assert table.is_active(active["rule_id"]) and not table.is_active("000000000000")
    assert table.is_active(demoted["rule_id"]) == any(
        r["rule_id"] == demoted["rule_id"] and r["status"] == "active" for r in rows
    )
    expected = sorted(rows, key=lambda r: (r["status"] != "active", -r["users"], -r["support"], r["source"]))
    assert table.first(30) == expected[:30]
    with pytest.raises(KeyError):
        table.column("nope")


def test_the_packaged_starter_serves_without_pyarrow() -> None:
    """The serving install has no pyarrow: the starter's table and knowledge load, and look up."""
    code = (
        "import sys\n"
        "sys.modules['pyarrow'] = None  # import raises ImportError\n"
        "from selflearn.rewrite.table import RewriteTable\n"
        "from selflearn.rewrite.knowledge import Knowledge\n"
        "from selflearn.starter import packaged_starter_dir\n"
        "folder = packaged_starter_dir()\n"
        "table = RewriteTable.load(folder / 'table')\n"
        "source = table.rows()[0]['source']\n"
        "assert table.num_rows == 51 and table._index.find(source) >= 0, source\n"
        "hits = [table.lookup(row['source_example']) for row in table.rows()]\n"
        "assert sum(hit is not None for hit in hits) > 10, hits\n"
        "assert len(Knowledge.load(folder / 'knowledge')) > 1000\n"
        "assert not [m for m in sys.modules if m.startswith('pyarrow') and sys.modules[m] is not None]\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
