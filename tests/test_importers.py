"""The log importers on fixtures produced by real Home Assistant and Rasa
(tests/fixtures/importers/README.md), into real DuckDB stores, with deliberately broken rows
added here to exercise the quarantine."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from selflearn.cli import app
from selflearn.core.errors import ConfigError
from selflearn.core.store import Store
from selflearn.importers import ImportResult, import_file

FIXTURES = Path(__file__).parent / "fixtures" / "importers"
HA_DEBUG = FIXTURES / "ha_debug_2024.3.3.json"
HA_DEBUG_2025 = FIXTURES / "ha_debug_2025.4.4.json"
HA_LOG = FIXTURES / "home-assistant.log"
HA_LOG_2025 = FIXTURES / "home-assistant_2025.4.4.log"
RASA = FIXTURES / "rasa_trackers_3.6.21.jsonl"

HA_TEXTS = [
    "turn on the kitchen light",
    "kill the lights in the kitchen",
    "switch off the kitchen lamp",
    "turn off the kitchen light",
    "turn on the lights in the attic",
    "what is the weather like on mars",
    "blorp the flibber",
    "turn on the lights",
]
"""The requests make_ha_fixtures.py sent, in order."""


def turns(store: Store, source: str = "") -> list[dict[str, Any]]:
    where = f"WHERE source = '{source}'" if source else ""
    rows: list[dict[str, Any]] = store.query(
        f"SELECT * FROM turns {where} ORDER BY timestamp, turn_id"
    ).to_pylist()
    return rows


def balanced(result: ImportResult) -> None:
    r = result.report
    assert r.read == r.stored + r.already_present + r.quarantined, result.summary()
    assert result.summary() == (
        f"rows read {r.read:,} = stored {r.stored:,} + already present {r.already_present:,}"
        f" + quarantined {r.quarantined:,}"
    )


# --- Home Assistant: pipeline debug runs ---------------------------------------------------------


def test_ha_debug_maps_real_runs(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        result = import_file("ha-debug", HA_DEBUG, store)
        balanced(result)
        assert (result.report.read, result.report.stored, result.report.quarantined) == (8, 8, 0)
        rows = turns(store)
    assert [t["text"] for t in rows] == HA_TEXTS
    status = [(t["result"]["status"], t["result"]["error_code"]) for t in rows]
    assert status == [
        ("success", None),
        ("error", "no_valid_targets"),
        ("error", "no_valid_targets"),
        ("success", None),
        ("error", "no_valid_targets"),
        ("error", "no_valid_targets"),
        ("no_match", "no_intent_match"),
        ("success", None),
    ]
    # no_intent_match is the one request HA did not match; no_valid_targets had an intent.
    assert [t["nlu"]["matched"] for t in rows] == [True] * 6 + [False, True]
    assert all(t["nlu"]["intent"] is None for t in rows)  # not in IntentResponse.as_dict()
    assert rows[0]["er"]["resolved"][0]["entity_id"] == "light.kitchen_light"
    assert json.loads(rows[7]["nlu"]["slots"]) == {"area": "Kitchen"}  # the satellite's area
    assert rows[4]["result"]["response_text"] == "Sorry, I am not aware of any area called attic"
    # The three requests sent in conversation "fixture-conversation-1" are one session; the
    # satellite's device id is kept, typed runs have none.
    assert len({t["session_id"] for t in rows[1:4]}) == 1
    assert rows[1]["session_id"] not in {rows[0]["session_id"], rows[7]["session_id"]}
    assert rows[1]["device"]["device_id"] == rows[7]["device"]["device_id"] != "ha-assist"
    assert rows[0]["device"]["device_id"] == "ha-assist" and rows[0]["device"]["device_type"] == "chat"
    runs = json.loads(HA_DEBUG.read_text())
    assert rows[0]["timestamp"] == datetime.fromisoformat(runs[0]["events"][0]["timestamp"])
    assert all(t["household_id"].startswith("hh-") and t["asr"] is None for t in rows)


def test_ha_debug_2025_and_household_option(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        result = import_file("ha-debug", HA_DEBUG_2025, store, household_id="home-1")
        balanced(result)
        rows = turns(store)
    assert [t["text"] for t in rows] == HA_TEXTS
    assert {t["household_id"] for t in rows} == {"home-1"}
    # 2025.4 matches more (fuzzy matching): the lamp is found, gibberish gets an area error.
    assert [t["result"]["status"] for t in rows] == [
        "success", "error", "success", "success", "error", "error", "error", "success",
    ]  # fmt: skip
    with Store(tmp_path / "s.duckdb") as store, pytest.raises(ConfigError, match="--household-id"):
        import_file("ha-debug", HA_DEBUG_2025, store, household_id="Anna Smith")


def test_ha_debug_reimport_is_already_present(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        first = import_file("ha-debug", HA_DEBUG, store)
        again = import_file("ha-debug", HA_DEBUG, store)
        assert first.report.stored == 8
        assert (again.report.stored, again.report.already_present, again.report.quarantined) == (0, 8, 0)
        assert store.count("turns") == 8
        balanced(again)


def _stt_run(run: dict[str, Any], heard: str | None, error: str | None = None) -> dict[str, Any]:
    """A copy of a real run as if it had started at speech-to-text (the events HA's pipeline.py
    emits): stt-start, stt-end with the text (or an error and no intent stage)."""
    run = copy.deepcopy(run)
    run.pop("pipeline_run_id")
    start = datetime.fromisoformat(run["events"][0]["timestamp"])
    stamp = [(start + timedelta(milliseconds=ms)).isoformat() for ms in (0, 1, 900)]
    events: list[dict[str, Any]] = [
        run["events"][0],
        {"type": "wake_word-start", "data": {"entity_id": "wake_word.x"}, "timestamp": stamp[0]},
        {
            "type": "wake_word-end",
            "data": {"wake_word_output": {"wake_word_id": "ok_nabu"}},
            "timestamp": stamp[0],
        },
        {
            "type": "stt-start",
            "data": {"engine": "stt.faster_whisper", "metadata": {}},
            "timestamp": stamp[1],
        },
    ]
    if error is not None:
        events.append(
            {"type": "error", "data": {"code": error, "message": "No text recognized"}, "timestamp": stamp[2]}
        )
    else:
        events.append({"type": "stt-end", "data": {"stt_output": {"text": heard}}, "timestamp": stamp[2]})
        events.extend(e for e in run["events"][1:])
    run["events"] = events
    return run


def test_ha_debug_speech_runs_and_broken_runs_are_accounted(tmp_path: Path) -> None:
    runs = json.loads(HA_DEBUG.read_text())
    spoken = _stt_run(runs[6], "blorp the flibber")
    spoken["events"][5]["data"]["intent_input"] = "blorp the flibber"
    broken: list[Any] = [
        spoken,
        _stt_run(runs[0], None, error="stt-no-text-recognized"),
        {"pipeline_run_id": "x1"},  # no events
        "not a run",
        {
            "events": [
                {"type": "run-start", "data": {"pipeline": "p"}, "timestamp": "2026-01-01T00:00:00Z"},
                {"type": "error", "data": {"code": "wake-word-timeout"}, "timestamp": "2026-01-01T00:00:05Z"},
            ]
        },
        copy.deepcopy(runs[0]) | {"pipeline_run_id": "x2"},
    ]
    broken[-1]["events"][2]["data"]["intent_output"]["response"]["response_type"] = "weird"
    broken.append(copy.deepcopy(runs[1]) | {"pipeline_run_id": "x3"})
    broken[-1]["events"][1]["data"]["intent_input"] = None
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(runs + broken))
    with Store(tmp_path / "s.duckdb") as store:
        result = import_file("ha-debug", path, store, quarantine_path=tmp_path / "q.jsonl")
        balanced(result)
        assert (result.report.read, result.report.stored, result.report.quarantined) == (15, 10, 5)
        rows = {t["text"]: t for t in turns(store) if t["asr"] is not None}
    quarantined = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert [(q["row"], q["field"]) for q in quarantined] == [
        (11, "events"),
        (12, "(record)"),
        (13, "events"),
        (14, "events[2].data.intent_output.response.response_type"),
        (15, "events[1].data.intent_input"),
    ]
    assert "wake-word-timeout" in quarantined[2]["reason"]
    said = rows["blorp the flibber"]
    assert said["asr"]["text"] == "blorp the flibber" and said["asr"]["engine"] == "stt.faster_whisper"
    assert said["wake"]["score"] == 1.0 and said["device"]["device_type"] == "satellite"
    assert said["result"]["status"] == "no_match"
    silent = rows[""]
    assert silent["result"]["error_code"] == "stt-no-text-recognized" and silent["nlu"] is None


def test_ha_debug_rejects_other_files(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        for wrong in (HA_LOG, RASA):
            with pytest.raises(ConfigError, match="not Home Assistant pipeline debug JSON"):
                import_file("ha-debug", wrong, store)
        assert store.count("turns") == 0


# --- Home Assistant: home-assistant.log ----------------------------------------------------------


def test_ha_log_maps_conversation_lines(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        result = import_file("ha-log", HA_LOG, store, timezone="Europe/Amsterdam")
        balanced(result)
        assert (result.report.read, result.report.stored, result.report.quarantined) == (8, 8, 0)
        rows = turns(store)
        import_file("ha-debug", HA_DEBUG, store)
        runs = turns(store, "ha-debug:ha_debug_2024.3.3.json")
    assert [t["text"] for t in rows] == HA_TEXTS
    assert result.skipped["not conversation lines"] > 30
    assert result.skipped["conversation lines that are not requests"] >= 1
    by_text = {t["text"]: t for t in rows}
    blorp = by_text["blorp the flibber"]
    assert (blorp["nlu"]["matched"], blorp["result"]["status"], blorp["result"]["error_code"]) == (
        False, "no_match", "no_intent_match",
    )  # fmt: skip
    attic = by_text["turn on the lights in the attic"]
    assert (attic["nlu"]["intent"], attic["result"]["error_code"]) == ("HassTurnOn", "no_valid_targets")
    assert json.loads(attic["nlu"]["slots"]) == {"area": "attic"} and attic["er"]["unresolved"] == ["attic"]
    # "Triggering intent handler" names the intent: the handler ran on the recognised targets.
    on = by_text["turn on the kitchen light"]
    assert on["nlu"]["intent"] == "HassTurnOn" and on["result"]["status"] == "success"
    assert not result.notes  # every request's outcome is in this log
    # Local times (Europe/Amsterdam, UTC+1 in November) match the UTC times of the same runs.
    for logged, run in zip(rows, runs, strict=True):
        assert abs(logged["timestamp"] - run["timestamp"]) < timedelta(seconds=1)


def test_ha_log_without_intent_lines_has_no_outcome(tmp_path: Path) -> None:
    """With only the conversation logger at debug, a request that succeeded leaves no outcome."""
    path = tmp_path / "home-assistant.log"
    kept = [line for line in HA_LOG.read_text().splitlines() if "[homeassistant.helpers.intent]" not in line]
    path.write_text("\n".join(kept) + "\n")
    with Store(tmp_path / "s.duckdb") as store:
        result = import_file("ha-log", path, store, timezone="Europe/Amsterdam")
        balanced(result)
        rows = turns(store)
    assert [t["text"] for t in rows] == HA_TEXTS
    assert [i for i, t in enumerate(rows) if t["result"] is None] == [0, 3, 7]
    assert list(result.notes.values()) == [3]


def test_ha_log_2025_reads_the_responses(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        result = import_file("ha-log", HA_LOG_2025, store, timezone="Europe/Amsterdam")
        balanced(result)
        rows = turns(store)
    assert [t["text"] for t in rows] == HA_TEXTS
    attic = rows[4]
    assert attic["result"]["response_text"] == "Sorry, I am not aware of any area called attic"
    assert rows[1]["nlu"]["intent"] == "HassLightSet"  # 2025.4's best guess for "kill the lights..."


def test_ha_log_broken_lines_are_quarantined_and_others_counted(tmp_path: Path) -> None:
    extra = [
        "this line is from some other program",
        "2026-11-26 10:00:00.000 DEBUG (MainThread) [homeassistant.components.conversation.default_agent] "
        "No intent was matched for 'make it cozy'",
        "2026-11-26 10:00:01.000 DEBUG (MainThread) [homeassistant.components.conversation.default_agent] "
        "Recognized intent 'HassTurnOn' for template '<name>' but had unmatched: "
        "[UnmatchedTextEntity(name='name', text='cozy', is_open=False)]",
        "2026-13-45 10:00:02.000 DEBUG (MainThread) [homeassistant.components.conversation] "
        "Processing in en: x",
        "garbled [homeassistant.components.conversation] Processing in en: y",
        "2026-11-26 10:00:03.000 DEBUG (MainThread) [homeassistant.components.conversation] Processing in",
        "2026-11-26 10:00:04.000 INFO (MainThread) [homeassistant.core] Bus:Handling <Event call_service>",
    ]
    path = tmp_path / "home-assistant.log"
    path.write_text(HA_LOG.read_text() + "\n".join(extra) + "\n")
    first = len(HA_LOG.read_text().splitlines()) + 1
    with Store(tmp_path / "s.duckdb") as store:
        result = import_file("ha-log", path, store, quarantine_path=tmp_path / "q.jsonl")
        balanced(result)
        assert (result.report.read, result.report.stored, result.report.quarantined) == (13, 9, 4)
        cozy = store.query("SELECT text, result.status FROM turns WHERE text = 'make it cozy'").to_pylist()
    assert cozy == [{"text": "make it cozy", "status": "no_match"}]
    quarantined = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert [(q["row"] - first, q["field"]) for q in quarantined] == [
        (2, "message"), (3, "timestamp"), (4, "(line)"), (5, "message"),
    ]  # fmt: skip
    assert "Processing in" in quarantined[0]["reason"]


def test_ha_log_pairs_overlapping_requests_by_their_words(tmp_path: Path) -> None:
    """Two satellites at once: the unmatched words say which request an outcome belongs to."""
    conv = "DEBUG (MainThread) [homeassistant.components.conversation]"
    agent = "DEBUG (MainThread) [homeassistant.components.conversation.default_agent]"
    path = tmp_path / "home-assistant.log"
    path.write_text(
        f"2026-11-26 10:00:00.000 {conv} Processing in en: turn on the lights in the attic\n"
        f"2026-11-26 10:00:00.100 {conv} Processing in en: switch on the garage fan\n"
        f"2026-11-26 10:00:00.200 {agent} Recognized intent 'HassTurnOn' for template '<area>' but had "
        "unmatched: [UnmatchedTextEntity(name='area', text='attic', is_open=False)]\n"
        f"2026-11-26 10:00:00.300 {agent} No intent was matched for 'switch on the garage fan'\n"
    )
    with Store(tmp_path / "s.duckdb") as store:
        balanced(import_file("ha-log", path, store))
        rows = turns(store)
    assert [(t["text"], t["result"]["error_code"]) for t in rows] == [
        ("turn on the lights in the attic", "no_valid_targets"),
        ("switch on the garage fan", "no_intent_match"),
    ]


def test_ha_log_rejects_other_files(tmp_path: Path) -> None:
    with (
        Store(tmp_path / "s.duckdb") as store,
        pytest.raises(ConfigError, match=r"not a home-assistant\.log"),
    ):
        import_file("ha-log", HA_DEBUG, store)


# --- Rasa -----------------------------------------------------------------------------------------


def test_rasa_maps_user_events(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        result = import_file("rasa", RASA, store)
        balanced(result)
        assert (result.report.read, result.report.stored) == (8, 8)
        rows = turns(store)
        again = import_file("rasa", RASA, store)
        assert (again.report.stored, again.report.already_present) == (0, 8)
    texts = ["hello", "I am feeling very sad", "yes", "bye",
             "hi there", "blorp the flibber quux", "good morning", "great, thanks"]  # fmt: skip
    assert [t["text"] for t in rows] == texts
    by_text = {t["text"]: t for t in rows}
    sad = by_text["I am feeling very sad"]
    assert sad["nlu"]["intent"] == "mood_unhappy" and sad["nlu"]["matcher"] == "rasa"
    assert sad["result"]["response_text"] == "Here is something to cheer you up: Did that help you?"
    gibberish = by_text["blorp the flibber quux"]
    assert gibberish["nlu"]["matched"] is False
    assert (gibberish["result"]["status"], gibberish["result"]["error_code"]) == ("no_match", "nlu_fallback")
    morning = by_text["good morning"]  # understood, but the dialogue fell back
    assert morning["nlu"]["intent"] == "greet"
    assert (morning["result"]["status"], morning["result"]["error_code"]) == (
        "no_match",
        "action_default_fallback",
    )
    # Two senders: two users, households and sessions, none named after the sender.
    for column in ("user_id", "household_id", "session_id"):
        assert len({t[column] for t in rows}) == 2
    assert not any("fixture-user" in t["user_id"] + t["household_id"] for t in rows)


def test_rasa_broken_trackers_are_accounted(tmp_path: Path) -> None:
    tracker = json.loads(RASA.read_text().splitlines()[0])
    no_text = copy.deepcopy(tracker) | {"sender_id": "someone-else"}
    user_events = [i for i, e in enumerate(no_text["events"]) if e["event"] == "user"]
    del no_text["events"][user_events[1]]["text"]
    lines = [
        *RASA.read_text().splitlines(),
        "{broken json",
        json.dumps({"events": []}),  # no sender
        json.dumps({"sender_id": "x", "events": "nope"}),
        json.dumps(no_text),
    ]
    path = tmp_path / "trackers.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with Store(tmp_path / "s.duckdb") as store:
        result = import_file("rasa", path, store, quarantine_path=tmp_path / "q.jsonl")
    balanced(result)
    assert (result.report.read, result.report.stored, result.report.quarantined) == (15, 11, 4)
    quarantined = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert [(q["row"], q["field"]) for q in quarantined] == [
        (3, "(json)"), (4, "sender_id"), (5, "events"), (6, f"events[{user_events[1]}].text"),
    ]  # fmt: skip


# --- Generic JSONL and CSV ---------------------------------------------------------------------

GENERIC = [
    {"text": "turn on the kitchen light", "timestamp": "2026-01-05T08:00:00Z", "household_id": "smith-family",
     "user_id": "anna", "matched": True, "intent": "HassTurnOn", "response": "Turned on the light",
     "device_id": "kitchen-speaker", "area": "Kitchen"},
    {"text": "kill the lights", "timestamp": "2026-01-05T09:00:00", "household_id": "smith-family",
     "user_id": "anna", "matched": False, "response": "Sorry, I couldn't understand that",
     "device_id": "kitchen-speaker"},
    {"text": "switch off the lights", "timestamp": 1767600010, "household_id": "smith-family",
     "user_id": "anna", "matched": "yes", "error_code": "no_valid_targets", "device_id": "kitchen-speaker"},
    {"text": "what time is it", "user_id": "ben", "session_id": "chat-7", "status": "unsupported"},
    {"text": "and now", "user_id": "ben", "session_id": "chat-7"},
]  # fmt: skip


def _write_generic(path: Path) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in GENERIC))


def test_generic_jsonl_maps_columns(tmp_path: Path) -> None:
    _write_generic(tmp_path / "turns.jsonl")
    with Store(tmp_path / "s.duckdb") as store:
        result = import_file("jsonl", tmp_path / "turns.jsonl", store, timezone="Europe/Amsterdam")
        balanced(result)
        assert (result.report.read, result.report.stored) == (5, 5)
        rows = {t["text"]: t for t in turns(store)}
        again = import_file("jsonl", tmp_path / "turns.jsonl", store, timezone="Europe/Amsterdam")
        assert again.report.already_present == 5
    on, kill, off = rows["turn on the kitchen light"], rows["kill the lights"], rows["switch off the lights"]
    assert (on["nlu"]["intent"], on["result"]["status"], on["device"]["area"]) == (
        "HassTurnOn",
        "success",
        "Kitchen",
    )
    assert (kill["nlu"]["matched"], kill["result"]["status"]) == (False, "no_match")
    assert (off["result"]["status"], off["result"]["error_code"]) == ("error", "no_valid_targets")
    # A naive time is read in --timezone (09:00 in Amsterdam is 08:00 UTC), a number as Unix
    # seconds; one household, user and device within 5 minutes is one session.
    assert kill["timestamp"] == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    assert on["session_id"] == kill["session_id"] == off["session_id"]
    assert off["timestamp"] == datetime(2026, 1, 5, 8, 0, 10, tzinfo=UTC)
    # Names become pseudonyms; rows without a time follow the row before them by a second.
    assert "smith" not in on["household_id"] and "anna" not in on["user_id"]
    time_q, now = rows["what time is it"], rows["and now"]
    assert time_q["result"]["status"] == "unsupported" and now["result"] is None and now["nlu"] is None
    assert now["timestamp"] - time_q["timestamp"] == timedelta(seconds=1)
    assert time_q["session_id"] == now["session_id"] and time_q["household_id"] != on["household_id"]


def test_generic_bad_rows_are_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "turns.jsonl"
    _write_generic(path)
    with path.open("a") as fh:
        fh.write(json.dumps({"text": "hello", "respone": "typo"}) + "\n")
        fh.write(json.dumps({"text": "", "timestamp": "2026-01-05T08:00:00Z"}) + "\n")
        fh.write(json.dumps({"text": "hi", "matched": "perhaps"}) + "\n")
        fh.write(json.dumps({"text": "hi", "timestamp": "yesterday"}) + "\n")
        fh.write("[1, 2]\n{not json\n")
        fh.write(json.dumps({"text": "x" * 1001}) + "\n")  # converts, fails validation
        fh.write(json.dumps(GENERIC[0]) + "\n")  # the same row again: a duplicate
    with Store(tmp_path / "s.duckdb") as store:
        result = import_file("jsonl", path, store, quarantine_path=tmp_path / "q.jsonl")
    balanced(result)
    assert (result.report.read, result.report.stored, result.report.quarantined) == (13, 5, 8)
    quarantined = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert [(q["row"], q["field"]) for q in quarantined] == [
        (6, "respone"), (7, "text"), (8, "matched"), (9, "timestamp"),
        (10, "(record)"), (11, "(json)"), (12, "text"), (13, "turn_id"),
    ]  # fmt: skip
    assert "duplicate" in quarantined[-1]["reason"]


def test_generic_csv(tmp_path: Path) -> None:
    path = tmp_path / "turns.csv"
    path.write_text(
        "text,timestamp,user_id,matched,response\n"
        "turn on the light,2026-01-05T08:00:00Z,anna,true,Turned on the light\n"
        '"kill the lights, please",2026-01-05T08:00:05Z,anna,false,\n'
        ",2026-01-05T08:00:09Z,anna,true,\n"
        "too,many,cells,here,x,y\n"
    )
    with Store(tmp_path / "s.duckdb") as store:
        result = import_file("jsonl", path, store, quarantine_path=tmp_path / "q.jsonl")
        balanced(result)
        assert (result.report.read, result.report.stored, result.report.quarantined) == (4, 2, 2)
        rows = turns(store)
    assert [(t["text"], t["result"]["status"]) for t in rows] == [
        ("turn on the light", "success"), ("kill the lights, please", "no_match"),
    ]  # fmt: skip
    assert rows[0]["session_id"] == rows[1]["session_id"]
    quarantined = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert [(q["row"], q["field"]) for q in quarantined] == [(4, "text"), (5, "(record)")]
    bad = tmp_path / "bad.csv"
    bad.write_text("text,mood\nhello,happy\n")
    with Store(tmp_path / "s.duckdb") as store, pytest.raises(ConfigError, match="unknown columns"):
        import_file("jsonl", bad, store)
    with Store(tmp_path / "s.duckdb") as store, pytest.raises(ConfigError, match="not generic JSONL"):
        import_file("jsonl", HA_LOG, store)


# --- Command line -------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_prints_the_balance(tmp_path: Path) -> None:
    store = str(tmp_path / "s.duckdb")
    res = runner.invoke(app, ["import", "ha-debug", str(HA_DEBUG), "--store", store])
    assert res.exit_code == 0, res.output
    assert "rows read 8 = stored 8 + already present 0 + quarantined 0" in res.stdout
    res = runner.invoke(
        app, ["import", "ha-log", str(HA_LOG), "--store", store, "--timezone", "Europe/Amsterdam"]
    )
    assert res.exit_code == 0, res.output
    assert "rows read 8 = stored 8 + already present 0 + quarantined 0" in res.stdout
    assert "not conversation lines" in res.stdout
    res = runner.invoke(app, ["import", "rasa", str(RASA), "--store", store, "--household-id", "h1"])
    assert res.exit_code == 0 and "stored 8" in res.stdout, res.output
    csv = tmp_path / "t.csv"
    csv.write_text("text,matched\nhello,true\n,true\n")
    res = runner.invoke(
        app, ["import", "jsonl", str(csv), "--store", store, "--quarantine", str(tmp_path / "q")]
    )
    assert res.exit_code == 0, res.output
    assert "rows read 2 = stored 1 + already present 0 + quarantined 1" in res.stdout
    assert "quarantine file:" in res.stdout and (tmp_path / "q").exists()
    res = runner.invoke(app, ["import", "--help"])
    assert all(kind in res.stdout for kind in ("ha-debug", "ha-log", "rasa", "jsonl"))


def test_cli_wrong_format_is_one_error_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    args = ["import", "ha-log", str(RASA), "--store", str(tmp_path / "s.duckdb")]
    proc = subprocess.run(
        [sys.executable, "-m", "selflearn", *args],
        capture_output=True,
        text=True,
        env={**env, "NO_COLOR": "1"},
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "not a home-assistant.log" in lines[0]
