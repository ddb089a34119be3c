from __future__ import annotations

import json
from pathlib import Path

import pytest

from selflearn.core.errors import DataError
from selflearn.core.schema import MAX_TEXT_CHARS
from selflearn.core.store import Store
from tests.conftest import turn_dict


def _write(path: Path, rows: list[object]) -> Path:
    with path.open("w") as fh:
        for row in rows:
            fh.write(row if isinstance(row, str) else json.dumps(row))
            fh.write("\n")
    return path


@pytest.fixture()
def malformed(tmp_path: Path) -> Path:
    bad_type = turn_dict("t3")
    bad_type["asr"]["confidence"] = "high"
    no_id = turn_dict("t4")
    del no_id["user_id"]
    return _write(
        tmp_path / "mixed.jsonl",
        [
            turn_dict("t1"),
            turn_dict("t2"),
            bad_type,  # row 3: wrong type
            no_id,  # row 4: missing id
            '{"record_type": "turn", "turn_id": ',  # row 5: broken JSON
            turn_dict("t6", text="y" * (MAX_TEXT_CHARS + 5)),  # row 6: oversized text
            turn_dict("t1"),  # row 7: duplicate turn id
            {
                "record_type": "feedback",
                "feedback_id": "f1",
                "turn_id": "t1",
                "user_id": "u1",
                "household_id": "h1",
                "timestamp": "2026-01-05T08:00:04Z",
                "answer": "yes",
            },
        ],
    )


def test_quarantine_accounting_names_row_field_and_reason(tmp_path: Path, malformed: Path) -> None:
    qfile = tmp_path / "q.jsonl"
    with Store(tmp_path / "s.duckdb") as store:
        report = store.ingest([malformed], quarantine_path=qfile)
        assert report.read == 8
        assert report.stored == 3 and report.quarantined == 5 and report.already_present == 0
        assert report.balanced
        assert store.count("turns") == 2 and store.count("feedback") == 1
    rows = {r["row"]: r for r in map(json.loads, qfile.read_text().splitlines())}
    assert set(rows) == {3, 4, 5, 6, 7}
    assert rows[3]["field"] == "asr.confidence"
    assert rows[4]["field"] == "user_id" and "required" in rows[4]["reason"].lower()
    assert rows[5]["reason"].startswith("broken JSON")
    assert rows[6]["field"] == "text" and str(MAX_TEXT_CHARS) in rows[6]["reason"]
    assert rows[7]["reason"].startswith("duplicate turn_id") and "mixed.jsonl:1" in rows[7]["reason"]
    assert all(r["source"] == "mixed.jsonl" for r in rows.values())


def test_ingest_is_idempotent_and_detects_conflicts(tmp_path: Path) -> None:
    src = _write(tmp_path / "a.jsonl", [turn_dict("t1"), turn_dict("t2")])
    with Store(tmp_path / "s.duckdb") as store:
        assert store.ingest([src]).stored == 2
        again = store.ingest([src])
        assert (again.stored, again.already_present, again.quarantined) == (0, 2, 0)
        changed = _write(tmp_path / "b.jsonl", [turn_dict("t2", text="turn off the kitchen lights")])
        conflict = store.ingest([changed], quarantine_path=tmp_path / "q.jsonl")
        assert conflict.quarantined == 1 and "conflict" in next(iter(conflict.reasons))
        assert store.count("turns") == 2


def test_failed_ingest_leaves_store_unchanged(tmp_path: Path) -> None:
    first = _write(tmp_path / "a.jsonl", [turn_dict("t1")])
    second = _write(tmp_path / "b.jsonl", [turn_dict(f"x{i}") for i in range(5)])
    path = tmp_path / "s.duckdb"
    with Store(path) as store:
        store.ingest([first])

        def crash(rows_read: int) -> None:
            raise KeyboardInterrupt("power cut")

        with pytest.raises(KeyboardInterrupt):
            store.ingest([second], progress=crash)
    with Store(path) as store:
        assert store.count("turns") == 1
        assert [t.turn_id for t in store.turns()] == ["t1"]


def test_parquet_round_trip(tmp_path: Path) -> None:
    src = _write(tmp_path / "a.jsonl", [turn_dict("t1"), turn_dict("t2", nlu=None, er=None)])
    with Store(tmp_path / "s.duckdb") as store:
        store.ingest([src])
        assert store.export_parquet("turns", tmp_path / "turns.parquet") == 2
        before = list(store.turns())
    with Store(tmp_path / "copy.duckdb") as copy:
        report = copy.ingest([tmp_path / "turns.parquet"])
        assert report.stored == 2 and report.balanced
        assert list(copy.turns()) == before


def test_missing_input_is_a_clear_error(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store, pytest.raises(DataError, match="no such file"):
        store.ingest([tmp_path / "nope.jsonl"])


def test_parallel_validation_gives_the_same_store(
    tmp_path: Path, malformed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import selflearn.core.store as store_module

    monkeypatch.setattr(store_module, "BATCH_ROWS", 3)  # several chunks, in order, across workers
    monkeypatch.setattr(store_module, "PARALLEL_MIN_BYTES", 0)
    results = []
    for workers in (1, 2):
        with Store(tmp_path / f"w{workers}.duckdb") as store:
            report = store.ingest(
                [malformed], quarantine_path=tmp_path / f"q{workers}.jsonl", workers=workers
            )
            results.append(
                (
                    (report.stored, report.quarantined),
                    [t.turn_id for t in store.turns()],
                    (tmp_path / f"q{workers}.jsonl").read_text(),
                )
            )
    assert results[0] == results[1]
    assert results[0][0] == (3, 5)
