"""Hostile input on every surface but HTTP (that is tests/test_fuzz_api.py): the log schema and
ingest, the four importers, the chat, the Wyoming server and the command line's file arguments.

Each surface gets valid, near-valid and garbage input from hypothesis (huge and odd Unicode,
duplicates, out-of-order and future timestamps, broken bytes). What must hold: no exception
escapes (a bad record is a quarantined row that names its position and field; a bad file is one
``error:`` line and exit code 2), the accounting adds up, and nothing valid is lost or doubled.
``bench/reliability.py fuzz`` runs the same properties with many more examples.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console
from typer.testing import CliRunner

from selflearn.assistant.conversation import Conversation
from selflearn.assistant.devices import HomeState
from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.cli import app as cli_app
from selflearn.cli.chat import ChatSession, load_home
from selflearn.core.errors import SelflearnError
from selflearn.core.schema import MAX_TEXT_CHARS
from selflearn.core.store import Store
from selflearn.importers import KINDS, import_file
from tests.conftest import turn_dict

FIXTURES = Path(__file__).parent / "fixtures" / "importers"
EXAMPLES = int(os.environ.get("SELFLEARN_FUZZ_EXAMPLES", "40"))
"""Examples per property (``bench/reliability.py fuzz`` raises it)."""

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

# --- strategies ----------------------------------------------------------------------------------

ODD = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "\u202e",  # right-to-left override
        "\ufeff",  # byte order mark
        "e\u0301",  # combining accent
        "\U0001f4a1",  # an emoji outside the BMP
        "\ud800",  # a lone surrogate (not encodable as UTF-8)
        "x" * 70_000,  # over the ingest line limit once encoded
        "turn on the kitchen lights",
        "'; DROP TABLE turns; --",
        "{area}",
    ]
)
TEXT = st.one_of(ODD, st.text(max_size=50), st.text(min_size=MAX_TEXT_CHARS - 5, max_size=MAX_TEXT_CHARS + 5))
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
WHEN = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)  # long ago, now, far in the future


@st.composite
def records(draw: st.DrawFn) -> Any:
    """A log record: valid (any time, any ids), near-valid (one field broken) or garbage."""
    kind = draw(st.sampled_from(["valid", "near", "garbage", "feedback"]))
    if kind == "garbage":
        return draw(JSON_VALUE)
    ident = draw(st.sampled_from(["t1", "t2", "t3", "t-4", "t.5"]))  # repeats: duplicates
    record = turn_dict(
        ident,
        timestamp=draw(WHEN).isoformat(),
        household_id=draw(st.sampled_from(["h1", "h2"])),
        text=draw(TEXT) if draw(st.booleans()) else "turn on the kitchen lights",
    )
    if kind == "feedback":
        record = {
            "record_type": "feedback",
            "feedback_id": f"f-{ident}",
            "turn_id": ident,
            "user_id": "u1",
            "household_id": "h1",
            "timestamp": draw(WHEN).isoformat(),
            "answer": draw(st.sampled_from(["yes", "no", "no_answer", "maybe"])),
        }
    if kind == "near":
        fields = [
            ("text",),
            ("timestamp",),
            ("nlu", "slots"),
            ("result", "latency_ms"),
            ("device", "has_screen"),
        ]
        path = draw(st.sampled_from([*fields, ("household_id",), ("asr", "nbest")]))
        target = record
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = draw(JSON_VALUE | st.integers(min_value=2**31 - 2, max_value=2**40))
    return record


# --- the log schema and ingest -------------------------------------------------------------------


def _check_report(report: Any, batch: list[Any]) -> None:
    assert report.balanced, report.summary()
    assert report.read == len(batch)
    for bad in report.rejected:
        assert 0 <= bad.row < len(batch) and bad.field and bad.reason, bad


@FUZZ
@given(batch=st.lists(records(), max_size=12))
def test_ingest_takes_any_batch_and_accounts_for_every_record(
    tmp_path_factory: Any, batch: list[Any]
) -> None:
    path = tmp_path_factory.mktemp("ingest") / "s.duckdb"
    with Store(path) as store:
        first = store.ingest_records(copy.deepcopy(batch), source="fuzz")
        _check_report(first, batch)
        again = store.ingest_records(copy.deepcopy(batch), source="fuzz")  # a retried batch
        _check_report(again, batch)
        assert again.stored == 0 and again.already_present == first.stored
        assert store.count("turns") + store.count("feedback") == first.stored
        stored = {t.turn_id: t for t in store.turns()}
    for i in first.stored_rows:
        record = batch[i]
        if isinstance(record, dict) and record.get("record_type") == "turn":
            assert stored[record["turn_id"]].text == record["text"]  # stored exactly as sent


@FUZZ
@given(
    lines=st.lists(
        st.one_of(st.binary(max_size=200), records().map(lambda r: json.dumps(r).encode())), max_size=10
    )
)
def test_ingest_reads_any_bytes_as_jsonl(tmp_path_factory: Any, lines: list[bytes]) -> None:
    folder = tmp_path_factory.mktemp("jsonl")
    (folder / "in.jsonl").write_bytes(b"\n".join(lines)[: 2 * 10**6])
    with Store(folder / "s.duckdb") as store:
        report = store.ingest([folder / "in.jsonl"], quarantine_path=folder / "q.jsonl")
        assert report.balanced, report.summary()
        assert store.count("turns") + store.count("feedback") == report.stored
    if report.quarantined:
        for line in (folder / "q.jsonl").read_text().splitlines():
            row = json.loads(line)
            assert row["row"] >= 1 and row["field"] and row["reason"]


# --- importers -----------------------------------------------------------------------------------

SOURCES = {
    "ha-debug": FIXTURES / "ha_debug_2025.4.4.json",
    "ha-log": FIXTURES / "home-assistant_2025.4.4.log",
    "rasa": FIXTURES / "rasa_trackers_3.6.21.jsonl",
}


def _mutate(data: Any, draw: st.DrawFn, depth: int = 0) -> Any:
    """``data`` with some of its values (at any depth) replaced by random JSON."""
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON_VALUE)
    if isinstance(data, dict) and depth < 8:
        return {k: _mutate(v, draw, depth + 1) for k, v in data.items() if draw(st.integers(0, 20))}
    if isinstance(data, list) and depth < 8:
        return [_mutate(v, draw, depth + 1) for v in data]
    return data


@st.composite
def import_inputs(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(KINDS))
    how = draw(st.sampled_from(["mutated", "truncated", "bytes"]))
    if kind == "jsonl":
        rows = [
            {k: v for k, v in turn_dict(f"g{i}").items() if k in ("turn_id", "timestamp", "text")}
            for i in range(3)
        ]
        raw = b"\n".join(json.dumps(r).encode() for r in rows)
    else:
        raw = SOURCES[kind].read_bytes()
    if how == "bytes":
        return kind, draw(st.binary(max_size=300))
    if how == "truncated":
        return kind, raw[: draw(st.integers(0, len(raw)))]
    if kind == "ha-log":
        lines = raw.decode().splitlines()
        keep = [line if draw(st.integers(0, 4)) else draw(TEXT).replace("\n", " ") for line in lines[:60]]
        return kind, "\n".join(keep).encode("utf-8", "replace")
    text = raw.decode()
    if kind in ("rasa", "jsonl"):
        items = [json.loads(line) for line in text.splitlines() if line.strip()]
        return kind, b"\n".join(json.dumps(_mutate(item, draw)).encode() for item in items)
    return kind, json.dumps(_mutate(json.loads(text), draw)).encode()


@FUZZ
@given(case=import_inputs())
def test_importers_quarantine_what_they_cannot_convert(
    tmp_path_factory: Any, case: tuple[str, bytes]
) -> None:
    kind, raw = case
    folder = tmp_path_factory.mktemp("import")
    source = folder / ("in.csv" if kind == "jsonl" and raw[:1] not in (b"{", b"") else "in.jsonl")
    source.write_bytes(raw)
    with Store(folder / "s.duckdb") as store:
        try:
            result = import_file(kind, source, store, quarantine_path=folder / "q.jsonl")
        except SelflearnError as exc:  # a file that is not the format at all: one clear message
            assert str(exc) and "Traceback" not in str(exc)
            return
        report = result.report
        assert report.read == report.stored + report.already_present + report.quarantined, result.summary()
        assert store.count("turns") == report.stored
        for bad in report.rejected:
            assert bad.field and bad.reason


# --- the chat ------------------------------------------------------------------------------------

CHAT_LINE = st.one_of(
    TEXT,
    st.builds("when i say {} i mean {}".format, TEXT, TEXT),
    st.builds("the {} is the {}".format, TEXT, st.sampled_from(["kitchen ceiling", "front door", "x" * 990])),
    st.builds("turn on the {}".format, TEXT),
    st.builds("forget the {}".format, TEXT),
    st.sampled_from(
        ["yes", "no", "never mind", "what have you learned", ":state", ":learned", ":help", ":nope"]
    ),
)


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> tuple[ChatSession, io.StringIO, Store]:
    home = load_home()
    assistant = Assistant(AssistantConfig(asr="exact", ask=True, rewrite_when="on_failure"))
    conversation = Conversation(assistant, HomeState.initial(home), household_id=home.home_id, area="Kitchen")
    out = io.StringIO()
    store = Store(tmp_path_factory.mktemp("chat") / "chat.duckdb")
    console = Console(file=out, color_system=None, width=120, soft_wrap=True)
    return ChatSession(conversation, console, store=store), out, store


@FUZZ
@given(lines=st.lists(CHAT_LINE, min_size=1, max_size=5))
def test_the_chat_answers_any_line(chat: tuple[ChatSession, io.StringIO, Store], lines: list[str]) -> None:
    session, out, _ = chat
    for line in lines:
        out.seek(0)
        out.truncate()
        assert session.handle(line) is True or line.strip().lower() in (":quit", ":q", ":exit")
        said = out.getvalue()
        assert "Traceback" not in said and "rejected" not in said, said  # every record it logs is valid
        if len(line.strip()) > MAX_TEXT_CHARS and not line.strip().startswith(":"):
            assert "too long for me" in said


def test_a_line_of_about_990_characters_is_answered(chat: tuple[ChatSession, io.StringIO, Store]) -> None:
    """It used to crash with a traceback: the answer quoted the line back past the schema's limit."""
    session, out, store = chat
    for line in (
        "turn on the " + "very " * 195 + "lights",
        "when i say big light i mean " + "frob " * 190,
        "x" * 1001,
    ):
        out.seek(0)
        out.truncate()
        assert session.handle(line)
        assert "assistant>" in out.getvalue() and "Traceback" not in out.getvalue()
    assert store.count("turns") >= 2  # logged, and valid


# --- the Wyoming server --------------------------------------------------------------------------

EVENT = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["describe", "recognize", "transcript", "select-program", "synthesize", "x"]),
        "data": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {},
                optional={
                    "text": st.one_of(TEXT, JSON_VALUE),
                    "language": st.sampled_from(["en", "de", "", None, 5]),
                    "context": JSON_VALUE,
                    "name": st.sampled_from(["handle", "intent", None]),
                },
            ),
        ),
    }
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def wyoming_port() -> Any:
    import threading

    pytest.importorskip("wyoming")
    from selflearn.core.home import Home
    from selflearn.integrations.wyoming import ConversationService, WyomingConfig, start
    from tests.conftest import HOME

    service = ConversationService(Home.from_dict(HOME), None, WyomingConfig())
    port = _free_port()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()

    async def main() -> None:
        server = await start(service, f"tcp://127.0.0.1:{port}")
        ready.set()
        await stop.wait()
        await server.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(60)
    yield port
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    service.close()


def _exchange(port: int, payload: bytes, answer: bool) -> bytes:
    """Send ``payload``; with ``answer``, read one event back (its header line and its data),
    else close at once (a client that sends and leaves)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(payload)
        if not answer:
            return b""
        reader = sock.makefile("rb")
        header = reader.readline()
        if not header:
            return b""
        length = json.loads(header).get("data_length") or 0
        return header + reader.read(length)


def _frame(event: dict[str, Any]) -> bytes:
    data = json.dumps(event.get("data"), ensure_ascii=True).encode() if event.get("data") is not None else b""
    header = {"type": event["type"], "version": "1.5.0"}
    if data:
        header["data_length"] = len(data)
    return json.dumps(header).encode() + b"\n" + data


@FUZZ
@given(event=EVENT, garbage=st.binary(max_size=120))
def test_the_wyoming_server_survives_any_event_and_any_bytes(
    wyoming_port: int, event: dict[str, Any], garbage: bytes
) -> None:
    answered = event["type"] in ("describe", "recognize", "transcript")
    reply = _exchange(wyoming_port, _frame(event), answered)
    if answered:
        assert reply.startswith(b"{"), reply[:200]
    _exchange(wyoming_port, garbage + b"\n", False)  # a broken client: its connection may end
    describe = _exchange(wyoming_port, _frame({"type": "describe"}), True)  # the server still serves
    assert b'"info"' in describe, describe[:200]


# --- the command line's file arguments -----------------------------------------------------------


def _corrupt_inputs(folder: Path) -> dict[str, Path]:
    good = folder / "good.duckdb"
    with Store(good) as store:
        store.ingest_records([turn_dict("t1"), turn_dict("t2", text="turn off the kitchen lights")])
    raw = good.read_bytes()
    files = {
        "empty": b"",
        "random": bytes(range(256)) * 40,
        "truncated": raw[: len(raw) // 3],
        "jsonl": json.dumps(turn_dict("t1")).encode() + b"\n",
        "half a line": json.dumps(turn_dict("t1")).encode()[:50],
    }
    out = {}
    for name, content in files.items():
        path = folder / f"{name.replace(' ', '_')}.duckdb"
        path.write_bytes(content)
        out[name] = path
    (folder / "rw-broken").mkdir()
    (folder / "rw-broken" / "model.json").write_text('{"format": "selflearn.rewriter.v2", "created"')
    (folder / "rw-empty").mkdir()
    (folder / "rw-other").mkdir()
    (folder / "rw-other" / "model.json").write_text('{"format": "selflearn.ranker.v3"}')
    (folder / "home.yaml").write_text("areas: [1, 2\n")
    return out


COMMANDS: list[Callable[[Path, Path], list[str]]] = [
    lambda store, out: ["stats", "--store", str(store)],
    lambda store, out: ["signals", "--store", str(store)],
    lambda store, out: ["mine", "--store", str(store), "--out", str(out / "table")],
    lambda store, out: ["train", "rewriter", "--store", str(store), "--out", str(out / "rw")],
    lambda store, out: ["label", "--store", str(store)],
    lambda store, out: ["export", str(out / "x.parquet"), "--store", str(store)],
    lambda store, out: ["concepts", "list", "--store", str(store)],
    lambda store, out: ["ingest", str(store), "--store", str(out / "fresh.duckdb")],
]


@pytest.mark.parametrize("command", range(len(COMMANDS)))
def test_commands_refuse_unusable_files_in_one_line(tmp_path: Path, command: int) -> None:
    files = _corrupt_inputs(tmp_path)
    runner = CliRunner()
    for name, path in files.items():
        out = tmp_path / f"out-{name.replace(' ', '_')}"
        res = runner.invoke(cli_app, COMMANDS[command](path, out))
        if command == len(COMMANDS) - 1:  # ingest reads any file as lines: bad ones quarantined
            assert res.exit_code == 0, (name, res.output, res.exception)
            continue
        # selflearn's main() prints these as one "error:" line with exit code 2 (a SelflearnError,
        # or a DuckDB error from a store that opened but cannot be read); anything else would
        # be a traceback
        assert isinstance(res.exception, SelflearnError | duckdb.Error), (name, res.output, res.exception)


@pytest.mark.parametrize("folder", ["rw-broken", "rw-empty", "rw-other", "missing"])
def test_commands_refuse_unusable_artefacts_in_one_line(tmp_path: Path, folder: str) -> None:
    _corrupt_inputs(tmp_path)
    runner = CliRunner()
    for args in (
        ["rewrite", "turn on the lights", "--rewriter", str(tmp_path / folder)],
        ["chat", "--rewriter", str(tmp_path / folder)],
        ["chat", "--home", str(tmp_path / "home.yaml")],
    ):
        res = runner.invoke(cli_app, args, input=":quit\n")
        assert isinstance(res.exception, SelflearnError), (args, res.output, res.exception)


def test_a_day_in_the_future_and_out_of_order_is_kept_in_time_order(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    times = [now + timedelta(days=365 * 100), now - timedelta(days=365 * 50), now]
    batch = [turn_dict(f"t{i}", timestamp=t.isoformat()) for i, t in enumerate(times)]
    with Store(tmp_path / "s.duckdb") as store:
        assert store.ingest_records(batch).stored == 3
        assert [t.turn_id for t in store.turns()] == ["t1", "t2", "t0"]
