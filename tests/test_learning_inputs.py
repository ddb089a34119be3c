"""What the learners read from a store: teaching turns ("the big light is the reading lamp",
matcher ``teach``) and runs of taught routines (matcher ``taught``) are neither requests to
rewrite nor fixes of one, so neither the miner nor the rewriter's fit sees them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from selflearn.core.store import Store
from selflearn.rewrite.logs import read_log
from tests.conftest import turn_dict


def test_teaching_and_routine_turns_are_not_learned_from(tmp_path: Path) -> None:
    teach_nlu = {
        "matched": True,
        "intent": "SelflearnTeach",
        "slots": {},
        "confidence": 1.0,
        "matcher": "teach",
    }
    routine_nlu = {
        "matched": True,
        "intent": "SelflearnRoutine",
        "slots": {"routine": "movie time"},
        "confidence": 1.0,
        "matcher": "taught",
    }
    records = [
        turn_dict("a", text="turn on the big light", timestamp="2026-01-05T08:00:00+00:00"),
        turn_dict(
            "b",
            text="the big light is the kitchen ceiling",
            nlu=teach_nlu,
            timestamp="2026-01-05T08:00:05+00:00",
        ),
        turn_dict("c", text="movie time", nlu=routine_nlu, timestamp="2026-01-05T08:01:00+00:00"),
        turn_dict("d", text="turn on the kitchen lights", timestamp="2026-01-05T08:02:00+00:00"),
    ]
    logs = tmp_path / "turns.jsonl"
    logs.write_text("".join(json.dumps(r) + "\n" for r in records))
    now = datetime.now(UTC)
    with Store(tmp_path / "s.duckdb") as store:
        store.ingest([logs])
        defects = [
            {"turn_id": t, "p_defect": 0.1, "p_heuristic": 0.1, "reasons": [], "model": "t", "scored_at": now}
            for t in "abcd"
        ]
        store.save_signals("defects", defects)
        link = [{"turn_id": "b", "rephrase_of": "a", "p_rephrase": 0.9, "model": "t", "scored_at": now}]
        store.save_signals("rephrases", link)
        assert [t.turn_id for t in read_log(store)] == ["a", "d"]
        assert [t.turn_id for t in read_log(store, households=["h1"])] == ["a", "d"]
        from selflearn.mining.engines import DIALECT, INPUT_SQL

        said = store.query(INPUT_SQL.format(**DIALECT["duckdb"])).column("turn_id").to_pylist()
        assert sorted(said) == ["a", "d"]
