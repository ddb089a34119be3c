from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal, get_args, get_origin

import pyarrow as pa
import pytest
from pydantic import BaseModel

from selflearn.core.errors import DataError
from selflearn.core.schema import MAX_TEXT_CHARS, SCHEMA_VERSION, DialogueAct, Feedback, Truth, Turn
from selflearn.core.store import DIALOGUE_SCHEMA, FEEDBACK_SCHEMA, TRUTH_SCHEMA, TURN_SCHEMA, Store
from selflearn.core.store.tables import Layout, column_type
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


def test_every_table_exports_including_the_taught_concepts(tmp_path: Path) -> None:
    """``selflearn export --table concepts`` raised StopIteration: the concepts table is no log."""
    from datetime import UTC, datetime

    from selflearn.core.schema import Concept
    from selflearn.core.store.tables import _KEY

    taught = Concept(concept_id="c1", household_id="h1", user_id="u1", kind="name", phrase="mothership",
                     meaning=("Living Room Ceiling",), target="light.living_room_ceiling",
                     timestamp=datetime(2026, 1, 5, tzinfo=UTC))  # fmt: skip
    with Store(tmp_path / "s.duckdb") as store:
        store.ingest_records([turn_dict("t1")])
        store.put_concept(taught)
        counts = {table: store.export_parquet(table, tmp_path / f"{table}.parquet") for table in _KEY}
    assert counts == {t: int(t in ("turns", "concepts")) for t in _KEY}
    with Store(tmp_path / "read.duckdb") as reader:
        path = str(tmp_path / "concepts.parquet")
        assert reader.rows(f"SELECT phrase, target FROM read_parquet('{path}')") == [
            {"phrase": "mothership", "target": "light.living_room_ceiling"}
        ]


def test_missing_input_is_a_clear_error(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store, pytest.raises(DataError, match="no such file"):
        store.ingest([tmp_path / "nope.jsonl"])


def test_parallel_validation_gives_the_same_store(
    tmp_path: Path, malformed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import selflearn.core.store.ingest as store_module

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


# The table layouts as stores are written today. TURN_SCHEMA, FEEDBACK_SCHEMA and TRUTH_SCHEMA are
# derived from the pydantic records; these pins fail when a record change would change a layout
# (then change the pin on purpose, and bump SCHEMA_VERSION as core/schema.py describes).
_S, _F, _B, _I, _TS = pa.string(), pa.float64(), pa.bool_(), pa.int32(), pa.timestamp("us", tz="UTC")
_BOOKKEEPING = [("schema_version", _S), ("record_hash", _S), ("source", _S)]

TURN_LAYOUT = pa.schema(
    [
        ("turn_id", _S),
        ("session_id", _S),
        ("user_id", _S),
        ("household_id", _S),
        ("timestamp", _TS),
        (
            "device",
            pa.struct(
                [("device_id", _S), ("device_type", _S), ("area", _S), ("has_screen", _B), ("locale", _S)]
            ),
        ),
        ("wake", pa.struct([("score", _F), ("false_wake", _B)])),
        (
            "asr",
            pa.struct(
                [
                    ("text", _S),
                    ("confidence", _F),
                    ("nbest", pa.list_(pa.struct([("text", _S), ("confidence", _F)]))),
                    ("engine", _S),
                ]
            ),
        ),
        ("text", _S),
        (
            "nlu",
            pa.struct([("matched", _B), ("intent", _S), ("slots", _S), ("confidence", _F), ("matcher", _S)]),
        ),
        (
            "er",
            pa.struct(
                [
                    ("resolved", pa.list_(pa.struct([("entity_id", _S), ("name", _S), ("score", _F)]))),
                    ("unresolved", pa.list_(_S)),
                    ("ok", _B),
                ]
            ),
        ),
        (
            "result",
            pa.struct([("status", _S), ("response_text", _S), ("error_code", _S), ("latency_ms", _I)]),
        ),
        ("barge_in", pa.struct([("occurred", _B), ("offset_ms", _I)])),
        ("feedback_requested", _B),
        (
            "rewrite",
            pa.struct(
                [("original_text", _S), ("rewritten_text", _S), ("layer", _S), ("rule_id", _S), ("score", _F)]
            ),
        ),
        (  # schema 1.2
            "dialogue",
            pa.struct([("act_id", _S), ("role", _S), ("kind", _S), ("proposal", _S), ("answer", _S)]),
        ),
        *_BOOKKEEPING,
    ]
)

DIALOGUE_LAYOUT = pa.schema(  # 1.2
    [
        ("act_id", _S),
        ("turn_id", _S),
        ("user_id", _S),
        ("household_id", _S),
        ("timestamp", _TS),
        ("kind", _S),
        ("question", _S),
        ("proposal", _S),
        ("raised_by", _S),
        ("answer", _S),
        ("answer_turn_id", _S),
        ("answer_text", _S),
        ("taught", _S),
        *_BOOKKEEPING,
    ]
)

FEEDBACK_LAYOUT = pa.schema(
    [
        ("feedback_id", _S),
        ("turn_id", _S),
        ("user_id", _S),
        ("household_id", _S),
        ("timestamp", _TS),
        ("question", _S),
        ("answer", _S),
        *_BOOKKEEPING,
    ]
)

TRUTH_LAYOUT = pa.schema(
    [
        ("turn_id", _S),
        ("goal", pa.struct([("goal_id", _S), ("intent", _S), ("slots", _S), ("targets", pa.list_(_S))])),
        ("intended_text", _S),
        ("phrasing_source", _S),
        ("attempt", _I),
        ("action", _S),
        ("rephrase_of", _S),
        ("defect", _B),
        ("failure_point", _S),
        ("in_scope", _B),
        ("defect_without_rewrite", _B),
        *_BOOKKEEPING,
    ]
)

_LOG_TABLES = [
    (TURN_SCHEMA, TURN_LAYOUT, Turn),
    (FEEDBACK_SCHEMA, FEEDBACK_LAYOUT, Feedback),
    (DIALOGUE_SCHEMA, DIALOGUE_LAYOUT, DialogueAct),
    (TRUTH_SCHEMA, TRUTH_LAYOUT, Truth),
]


@pytest.mark.parametrize(
    ("derived", "layout", "model"), _LOG_TABLES, ids=["turns", "feedback", "dialogue_acts", "sim_truth"]
)
def test_log_table_layout_is_unchanged(derived: Layout, layout: pa.Schema, model: type[BaseModel]) -> None:
    """The DuckDB columns the store creates are, read as Arrow, the pinned layout."""
    assert derived.arrow().equals(layout), f"{model.__name__} table layout changed:\n{derived.arrow()}"


def _columns(arrow: pa.DataType, prefix: str = "") -> set[str]:
    """Every leaf column of an Arrow type, inside structs and lists of structs (``a.b``, ``a[].b``)."""
    if pa.types.is_list(arrow):
        return _columns(arrow.value_type, prefix + "[]")
    if pa.types.is_struct(arrow):
        return {col for child in arrow for col in _columns(child.type, f"{prefix}.{child.name}".lstrip("."))}
    return {prefix}


def _fields(annotation: object, prefix: str = "") -> set[str]:
    """Every leaf field of a record type, inside nested records, optional or in tuples, named as
    :func:`_columns` names columns (found without :func:`column_type`, so the two can disagree)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {
            leaf
            for name, info in annotation.model_fields.items()
            for leaf in _fields(info.annotation, f"{prefix}.{name}".lstrip("."))
        }
    args = [a for a in get_args(annotation) if a is not type(None) and a is not Ellipsis]
    if get_origin(annotation) is tuple and len(args) == 1:
        return _fields(args[0], prefix + "[]")
    if len(args) == 1 and get_origin(annotation) is not Literal:  # X | None
        return _fields(args[0], prefix)
    return {prefix}


@pytest.mark.parametrize(
    ("layout", "model"),
    [(t[1], t[2]) for t in _LOG_TABLES],
    ids=["turns", "feedback", "dialogue_acts", "sim_truth"],
)
def test_every_record_field_has_a_column_and_vice_versa(layout: pa.Schema, model: type[BaseModel]) -> None:
    columns = _columns(pa.struct(list(layout))) - {"record_hash", "source"}  # added by the store
    fields = _fields(model) - {"record_type"}  # the table is the record type
    assert fields - columns == set(), "record fields without a column"
    assert columns - fields == set(), "columns without a record field"


def test_a_field_type_the_store_cannot_hold_is_an_error() -> None:
    with pytest.raises(TypeError, match="no column type"):
        column_type(set[str])
    with pytest.raises(TypeError, match="no column type"):
        column_type(int | str)


def _act(act_id: str = "a1") -> dict[str, object]:
    return {
        "record_type": "dialogue",
        "act_id": act_id,
        "turn_id": "t1",
        "user_id": "u1",
        "household_id": "h1",
        "timestamp": "2026-01-01T08:00:05Z",
        "kind": "confirm",
        "question": "Did you mean turn on the kitchen light?",
        "proposal": "turn on the kitchen light",
        "answer": "yes",
        "answer_turn_id": "t2",
        "answer_text": "yes",
    }


def test_a_1_1_store_upgrades_to_1_2_and_its_turns_keep_their_hashes(tmp_path: Path) -> None:
    """A store schema 1.1 wrote (no ``dialogue`` column, no ``dialogue_acts`` table) opens, gets
    both, keeps recognising its turns when they are ingested again, and takes dialogue acts."""
    import duckdb

    path = tmp_path / "old.duckdb"
    feed = tmp_path / "old.jsonl"
    feed.write_text(json.dumps(turn_dict("t1")) + "\n")
    with Store(path) as store:
        assert store.ingest([feed]).stored == 1
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE turns DROP COLUMN dialogue")
    con.execute("DROP TABLE dialogue_acts")
    con.execute("UPDATE meta SET value = '1.1' WHERE key = 'schema_version'")
    con.close()
    with Store(path, read_only=True) as store:  # readable as it is
        assert [t.dialogue for t in store.turns()] == [None]
        assert store.dialogue_acts() == []
    acts = tmp_path / "acts.jsonl"
    acts.write_text(json.dumps(_act()) + "\n")
    with Store(path) as store:
        report = store.ingest([feed, acts], quarantine_path=tmp_path / "q.jsonl")
        assert (report.stored, report.already_present, report.quarantined) == (1, 1, 0), report.reasons
        assert [act["answer"] for act in store.dialogue_acts()] == ["yes"]
        version = store.query("SELECT value FROM meta WHERE key = 'schema_version'").column(0).to_pylist()
        assert version == [SCHEMA_VERSION] == ["1.2"]
        assert store.forget_household("h1")["dialogue_acts"] == 1


def test_a_bad_dialogue_act_is_quarantined_naming_its_field(tmp_path: Path) -> None:
    bad = {**_act("a2"), "answer": "perhaps"}
    feed = tmp_path / "acts.jsonl"
    feed.write_text(json.dumps(_act()) + "\n" + json.dumps(bad) + "\n")
    with Store(tmp_path / "s.duckdb") as store:
        report = store.ingest([feed], quarantine_path=tmp_path / "q.jsonl")
    assert (report.stored, report.quarantined) == (1, 1)
    row = json.loads((tmp_path / "q.jsonl").read_text())
    assert (row["row"], row["field"]) == (2, "answer")
    assert DialogueAct.model_validate(_act()).answer == "yes"


def test_lines_a_column_cannot_hold_are_found_one_by_one() -> None:
    """Validation bounds every integer today, so a value no column holds is a safety net: the
    lines DuckDB cannot read with a table's types are found alone (halving the batch), each with
    DuckDB's reason and without the temporary file's name; the others read."""
    from selflearn.core.store import staging

    layout = Layout((("id", "VARCHAR"), ("n", "INTEGER"), ("tags", "VARCHAR[]")))
    rows = [{"id": f"r{i}", "n": i, "tags": ["a"]} for i in range(9)]
    rows[2]["n"] = 2**40
    rows[7]["tags"] = "not a list"
    refused = staging.refused(layout, [staging.encode(r) for r in rows])
    assert [at for at, _ in refused] == [2, 7]
    assert "1099511627776" in refused[0][1] and "selflearn-" not in refused[0][1]
    assert staging.refused(layout, [staging.encode(r) for i, r in enumerate(rows) if i not in (2, 7)]) == []


def test_rows_come_back_in_utc_whatever_the_session_zone(tmp_path: Path) -> None:
    """Times are stored and read in UTC: a turn logged at 08:00+02:00 reads as 06:00 UTC."""
    feed = tmp_path / "turns.jsonl"
    feed.write_text(json.dumps(turn_dict("t1", timestamp="2026-01-05T08:00:00+02:00")) + "\n")
    with Store(tmp_path / "s.duckdb") as store:
        assert store.ingest([feed]).stored == 1
        ts = store.value("SELECT timestamp FROM turns")
        assert ts.utcoffset().total_seconds() == 0 and (ts.hour, ts.minute) == (6, 0)
        assert next(store.turns()).timestamp == ts


def test_one_record_a_column_cannot_hold_is_quarantined_and_the_others_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ingest_records`` reads a batch once and stores it; when a row fails that read (no
    validated row does today, so the turns' ``text`` is read as an INTEGER here to make one), the
    transaction is undone and the batch stored again with that row quarantined: nothing of the
    failed attempt stays, and rows in = stored + quarantined."""
    from selflearn.core.store import ingest as ingest_module
    from selflearn.core.store import store as store_module

    real = ingest_module.staged_layout

    def text_as_integer(table: str) -> Layout:
        layout = real(table)
        if table != "turns":
            return layout
        return Layout(tuple((n, "INTEGER" if n == "text" else k) for n, k in layout.columns))

    monkeypatch.setattr(ingest_module, "staged_layout", text_as_integer)
    monkeypatch.setattr(store_module, "staged_layout", text_as_integer)
    with Store(tmp_path / "s.duckdb") as store:
        batch = [turn_dict("t1", text="42"), turn_dict("t2"), turn_dict("t3", text="7")]
        report = store.ingest_records(batch)
        assert (report.read, report.stored, report.quarantined) == (3, 2, 1) and report.balanced
        assert report.stored_rows == [0, 2] and [q.row for q in report.rejected] == [1]
        assert "cannot be stored" in report.rejected[0].reason
        assert store.rows("SELECT turn_id, text FROM turns ORDER BY turn_id") == [
            {"turn_id": "t1", "text": "42"},
            {"turn_id": "t3", "text": "7"},
        ]
        again = store.ingest_records([turn_dict("t1", text="42")])
        assert (again.stored, again.already_present) == (0, 1)


def test_teaching_while_another_thread_stores_turns(tmp_path: Path) -> None:
    """The service writes what a household teaches from its dialogue's threads, outside the lock
    its turn logging holds: on one shared connection DuckDB refused one of the two ("connection
    is busy") or the concept joined the turns' transaction ("cannot start a transaction within
    a transaction"), and the store could be left in an aborted transaction."""
    import threading
    from datetime import UTC, datetime

    from selflearn.core.schema import Concept

    errors: list[str] = []

    def log_turns(store: Store) -> None:
        try:
            for n in range(150):
                store.ingest_records([turn_dict(f"t{n}")])
        except Exception as exc:
            errors.append(f"turns: {exc}")

    def teach(store: Store) -> None:
        try:
            for n in range(150):
                store.put_concept(
                    Concept(concept_id=f"c{n}", household_id="h1", user_id="u1", kind="name",
                            phrase=f"thing {n}", meaning=("Kitchen Light",), target="light.kitchen",
                            timestamp=datetime(2026, 1, 5, tzinfo=UTC))
                )  # fmt: skip
                if n % 3 == 0:
                    assert store.forget_concept(f"c{n}")
        except Exception as exc:
            errors.append(f"concepts: {exc}")

    with Store(tmp_path / "s.duckdb") as store:
        threads = [
            threading.Thread(target=log_turns, args=(store,)),
            threading.Thread(target=teach, args=(store,)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert (store.value("SELECT count(*) FROM turns"), len(store.concepts())) == (150, 100)


def test_closing_waits_for_a_lesson_being_written_and_a_later_one_is_refused_clearly(tmp_path: Path) -> None:
    """The service closes its store (to reopen it) while a dialogue thread may be writing what
    was taught: closing the store's connection then failed ("connection is busy", seen under
    load) and left the store broken for every later request. Closing now waits for that write,
    and a write after it says the store is closed."""
    import threading
    from datetime import UTC, datetime

    from selflearn.core.errors import StoreError
    from selflearn.core.schema import Concept

    def lesson(n: int) -> Concept:
        return Concept(
            concept_id=f"c{n}", household_id="h1", user_id="u1", kind="name", phrase=f"thing {n}",
            meaning=("Kitchen Light",), target="light.kitchen", timestamp=datetime(2026, 1, 5, tzinfo=UTC),
        )  # fmt: skip

    store = Store(tmp_path / "s.duckdb")
    done = threading.Event()

    def close() -> None:
        store.close()
        done.set()

    with store._state_writes():  # a write under way in another thread
        closing = threading.Thread(target=close)
        closing.start()
        assert not done.wait(0.2)  # close waits for it
    closing.join()
    assert store.closed
    with pytest.raises(StoreError, match="is closed"):
        store.put_concept(lesson(1))
    with Store(tmp_path / "s.duckdb") as again:
        again.put_concept(lesson(2))
        assert [c.phrase for c in again.concepts()] == ["thing 2"]


def test_a_batch_left_by_a_killed_process_is_removed_by_the_next_one(tmp_path: Path) -> None:
    """Rows are staged in a file while they are stored; a service killed mid-batch cannot remove
    it, and it holds people's requests (found: 67 such files in /tmp after a day of tests). The
    next process to stage anything removes the files of processes that are gone."""
    import subprocess
    import sys

    from selflearn.core.store import staging

    killed = (
        "import os, signal\n"
        "from selflearn.core.store import staging\n"
        'with staging.lines_file([b\'{"text": "turn on the mothership"}\']) as path:\n'
        "    print(path, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    run = subprocess.run([sys.executable, "-c", killed], capture_output=True, text=True, timeout=60)
    assert run.returncode == -9
    left = Path(run.stdout.strip())
    assert left.is_file() and left.parent == staging.staging_folder()
    assert oct(left.parent.stat().st_mode & 0o777) == "0o700"
    mine = left.parent / f"{os.getpid()}-mine.jsonl"
    mine.write_bytes(b"{}\n")
    try:
        later = "from selflearn.core.store import staging\nwith staging.lines_file([b'{}']): pass\n"
        subprocess.run([sys.executable, "-c", later], check=True, timeout=60)
        assert not left.exists()  # its process is gone
        assert mine.exists()  # this one runs
    finally:
        mine.unlink(missing_ok=True)
