"""The Wyoming conversation service over a real socket, with the real ``wyoming`` client:
describe/info, recognize and transcript answers, the rewriter behind the NLU, failing open."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner
from wyoming.asr import Transcript
from wyoming.client import AsyncTcpClient
from wyoming.event import Event, async_read_event
from wyoming.info import Describe, Info
from wyoming.intent import Intent, NotRecognized, Recognize

from selflearn.cli import app as cli_app
from selflearn.core.errors import ConfigError, SelflearnError
from selflearn.core.home import Home
from selflearn.core.hooks import RewriteContext
from selflearn.core.store import Store
from selflearn.integrations.wyoming import (
    HANDLE_PROGRAM,
    INTENT_PROGRAM,
    ConversationService,
    WyomingConfig,
    load_home,
    load_rewriter,
    start,
)
from selflearn.rewrite.rewriter import RewriteDecision, Rewriter
from selflearn.rewrite.table import RewriteTable
from tests.conftest import HOME
from tests.test_ovos import HOUSEHOLD, service_url  # noqa: F401  (a real selflearn serve, in a thread)

WORKS = "turn off the lights in the kitchen"
KILL = "kill the lights in the kitchen"


def _save_rewriter(folder: Path) -> Path:
    """A table-only rewriter: "kill the lights in the {area}" -> "turn off the lights in the {area}"."""
    table = RewriteTable.from_rules([("kill the lights in the {area}", "turn off the lights in the {area}")])
    return Rewriter.from_parts(table=table).save(folder)


class BrokenRewriter(Rewriter):
    """A rewriter whose every decision raises (past the fail-open inside ``rewrite_one``)."""

    def rewrite_one(self, text: str, context: RewriteContext | None = None) -> RewriteDecision:
        raise RuntimeError("boom")


class SlowRewriter(Rewriter):
    """A rewriter that takes half a second to decide."""

    def rewrite_one(self, text: str, context: RewriteContext | None = None) -> RewriteDecision:
        time.sleep(0.5)
        return super().rewrite_one(text, context)


@pytest.fixture(scope="module")
def home() -> Home:
    return Home.from_dict(HOME)


@pytest.fixture(scope="module")
def rewriter_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_rewriter(tmp_path_factory.mktemp("rw") / "rewriter")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


Client = Callable[[Event], Awaitable[Event]]


def _serve(service: ConversationService, scenario: Callable[[Client, int], Awaitable[None]]) -> None:
    """Start the real server on a free loopback port, run ``scenario(ask, port)``, stop it."""

    async def main() -> None:
        port = _free_port()
        server = await start(service, f"tcp://127.0.0.1:{port}")
        client = AsyncTcpClient("127.0.0.1", port, connect_timeout=5, read_timeout=10)
        await client.connect()

        async def ask(event: Event) -> Event:
            await client.write_event(event)
            answer = await client.read_event()
            assert answer is not None, "the server closed the connection"
            return answer

        try:
            await scenario(ask, port)
        finally:
            await client.disconnect()
            await server.stop()

    try:
        asyncio.run(main())
    finally:
        service.close()


def _entities(event: Event) -> dict[str, Any]:
    return {e.name: e.value for e in Intent.from_event(event).entities}


def test_describe_lists_the_intent_and_handle_programs(home: Home) -> None:
    async def scenario(ask: Client, port: int) -> None:
        answer = await ask(Describe().event())
        assert Info.is_type(answer.type)
        info = Info.from_event(answer)
        (intent,), (handle,) = info.intent, info.handle
        assert intent.name == INTENT_PROGRAM and handle.name == HANDLE_PROGRAM
        for program in (intent, handle):
            assert program.installed and program.version and program.attribution.name
            (model,) = program.models
            assert model.installed and model.languages == ["en"]
        assert not info.asr and not info.tts and info.satellite is None

    _serve(ConversationService(home), scenario)


def test_recognize_answers_intent_or_not_recognized_without_a_rewriter(home: Home) -> None:
    async def scenario(ask: Client, port: int) -> None:
        answer = await ask(Recognize(WORKS, context={"conversation_id": "c1"}).event())
        assert answer.type == "intent"
        intent = Intent.from_event(answer)
        assert intent.name == "HassTurnOff" and _entities(answer) == {"area": "kitchen", "domain": "light"}
        assert intent.text == "Turned off the light"
        assert intent.context is not None and intent.context["conversation_id"] == "c1"
        assert intent.context["selflearn"]["rewritten"] is False
        answer = await ask(Recognize(KILL).event())
        assert NotRecognized.is_type(answer.type)
        assert "kill the lights" in (NotRecognized.from_event(answer).text or "")
        answer = await ask(Recognize("turn off the lights in the garage").event())
        assert answer.type == "not-recognized" and "area called garage" in answer.data["text"]

    _serve(ConversationService(home), scenario)


def test_the_rewriter_fixes_a_failed_request_and_leaves_a_working_one(
    home: Home, rewriter_folder: Path
) -> None:
    rewriter = load_rewriter(rewriter_folder)
    assert rewriter is not None

    async def scenario(ask: Client, port: int) -> None:
        answer = await ask(Recognize(WORKS).event())
        assert answer.type == "intent" and answer.data["context"]["selflearn"]["rewrite"] is None
        assert rewriter.stats.requests == 0  # behind the NLU: a working request is not even asked
        answer = await ask(Recognize(KILL, context={"conversation_id": "c2"}).event())
        assert answer.type == "intent" and Intent.from_event(answer).name == "HassTurnOff"
        assert _entities(answer) == {"area": "kitchen", "domain": "light"}
        provenance = answer.data["context"]["selflearn"]
        assert provenance["text"] == WORKS and provenance["rewritten"] and provenance["fail_open"] is None
        assert (
            provenance["rewrite"]["original_text"] == KILL and provenance["rewrite"]["layer"] == "precomputed"
        )
        assert provenance["version"] == rewriter.version and answer.data["context"]["conversation_id"] == "c2"
        # HA sends transcript; answered with the intent so that Home Assistant executes it
        answer = await ask(Transcript(KILL, context={"conversation_id": "c3"}).event())
        assert answer.type == "intent" and Intent.from_event(answer).name == "HassTurnOff"

    service = ConversationService(home, rewriter, WyomingConfig(confirm="off"))
    _serve(service, scenario)
    assert service.stats["rewritten"] == 2 and rewriter.stats.requests == 2


def test_transcript_answers_handled_or_not_handled(home: Home, rewriter_folder: Path) -> None:
    async def handle_mode(ask: Client, port: int) -> None:
        answer = await ask(Transcript(WORKS).event())
        assert answer.type == "handled" and answer.data["text"] == "Turned off the light"
        answer = await ask(Transcript(KILL).event())
        assert answer.type == "handled" and answer.data["context"]["selflearn"]["rewritten"]
        answer = await ask(Transcript("open the pod bay doors please").event())
        assert answer.type == "not-handled" and answer.data["text"].startswith("Sorry")
        # recognize is always answered as an intent program
        assert (await ask(Recognize(WORKS).event())).type == "intent"

    config = WyomingConfig(transcript_answer="handle", confirm="off")
    _serve(ConversationService(home, load_rewriter(rewriter_folder), config), handle_mode)

    async def select_program(ask: Client, port: int) -> None:
        assert (await ask(Transcript(WORKS).event())).type == "intent"
        client = AsyncTcpClient("127.0.0.1", port, read_timeout=10)
        await client.connect()
        try:
            await client.write_event(Event("select-program", {"name": HANDLE_PROGRAM}))
            await client.write_event(Transcript("what time is it").event())
            answer = await client.read_event()
            assert answer is not None and answer.type == "handled" and answer.data["text"].startswith("It's")
        finally:
            await client.disconnect()

    _serve(ConversationService(home), select_program)


def test_a_broken_or_slow_rewriter_fails_open_and_the_server_keeps_serving(
    home: Home, rewriter_folder: Path
) -> None:
    broken = BrokenRewriter.load(rewriter_folder)

    async def scenario(ask: Client, port: int) -> None:
        answer = await ask(Recognize(KILL).event())
        assert answer.type == "not-recognized"
        provenance = answer.data["context"]["selflearn"]
        assert provenance["fail_open"] == "error" and "boom" in provenance["reasons"][0]
        assert (await ask(Recognize(WORKS).event())).type == "intent"
        assert (await ask(Transcript(KILL).event())).type == "not-recognized"
        # a malformed request is answered, and the connection and server keep serving
        malformed = await ask(Event("recognize", {"txt": KILL}))
        assert (
            malformed.type == "not-recognized"
            and malformed.data["text"] == "Sorry, I could not read that request"
        )
        german = await ask(Event("transcript", {"text": WORKS, "language": "de"}))
        assert german.type == "not-recognized" and "English" in german.data["text"]
        assert (await ask(Recognize(WORKS).event())).type == "intent"

    service = ConversationService(home, broken)
    _serve(service, scenario)
    assert service.stats["fail_open_error"] == 2 and service.stats["malformed_events"] == 1
    assert service.stats["handler_errors"] == 0

    slow = SlowRewriter.load(rewriter_folder)

    async def too_slow(ask: Client, port: int) -> None:
        started = time.perf_counter()
        answer = await ask(Recognize(KILL).event())
        assert time.perf_counter() - started < 0.45
        assert (
            answer.type == "not-recognized" and answer.data["context"]["selflearn"]["fail_open"] == "timeout"
        )

    _serve(ConversationService(home, slow, WyomingConfig(timeout_ms=20)), too_slow)


def test_an_event_whose_data_is_not_an_object_is_answered_and_the_connection_stays(
    home: Home, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 53 (7): a transcript whose ``data`` was a list dropped the connection with a
    traceback in the log. Now each bad event is one log line, a request is answered as not
    understood, and the next request on the same connection is answered as usual."""
    bad_events = [
        (b'{"type": "transcript", "data": [1, 2]}\n', "its data is a JSON list, not an object"),
        (b'{"type": "recognize", "data": "kill the lights"}\n', "its data is a JSON str, not an object"),
        (b'{"type": "transcript", "data_length": 6}\n[1, 2]', "its data is a JSON list, not an object"),
        (b'{"type": "transcript", "data": [], "data_length": 2}\n{}', "its data is a JSON list"),
        (b'{"type": "recognize", "data_length": 5}\n"abc"', "its data is a JSON str, not an object"),
        (b'{"type": "transcript", "data_length": 4}\n{{{{', "its data is not JSON"),
        (b'{"type": "recognize", "data_length": "many"}\n', "data_length is 'many', not a count"),
        (b'{"type": "transcript", "data": {"text": 42}}\n', "it needs a text, got int"),
        (b'{"type": "recognize"}\n', "it needs a text, got none"),
    ]
    ignored = [
        b"not json at all\n",
        b"[1, 2]\n",
        b'{"data": {"text": "hi"}}\n',
        b'{"type": "ping", "data": 7}\n',
    ]

    async def scenario(ask: Client, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for raw, problem in bad_events:
                writer.write(raw)
                await writer.drain()
                answer = await asyncio.wait_for(async_read_event(reader), 10)
                assert answer is not None, f"the connection dropped after {raw!r}"
                assert answer.type in ("not-recognized", "not-handled"), raw
                assert answer.data["text"] == "Sorry, I could not read that request"
                assert problem in answer.data["context"]["selflearn"]["error"], raw
            for raw in ignored:  # not a request: nothing to answer, the connection stays
                writer.write(raw)
            writer.write(b'{"type": "transcript", "data": {"text": "turn off the lights in the kitchen"}}\n')
            await writer.drain()
            answer = await asyncio.wait_for(async_read_event(reader), 10)
            assert answer is not None and answer.type == "intent" and answer.data["name"] == "HassTurnOff"
        finally:
            writer.close()
        assert (await ask(Recognize(WORKS).event())).type == "intent"  # the server too

    service = ConversationService(home)
    with caplog.at_level("WARNING", logger="selflearn.integrations.wyoming"):
        _serve(service, scenario)
    assert service.stats["malformed_events"] == len(bad_events) + len(ignored)
    assert service.stats["handler_errors"] == 0
    lines = [r for r in caplog.records if r.name == "selflearn.integrations.wyoming"]
    assert len(lines) == len(bad_events) + len(ignored)
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in lines)  # no traceback


def test_a_rewriter_folder_that_does_not_load_leaves_the_nlu_answering(tmp_path: Path, home: Home) -> None:
    assert load_rewriter(tmp_path / "missing") is None
    assert load_rewriter(None) is None


def test_the_home_comes_from_a_file_or_the_store(tmp_path: Path) -> None:
    yaml_file = tmp_path / "home.yaml"
    yaml_file.write_text("home_id: h9\nareas:\n  - {id: kitchen, name: Kitchen}\n")
    json_file = tmp_path / "home.json"
    json_file.write_text(json.dumps(HOME))
    assert load_home(yaml_file, None, None).home_id == "h9"
    assert load_home(json_file, None, None).home_id == HOME["home_id"]
    store_path = tmp_path / "s.duckdb"
    records = tmp_path / "homes.jsonl"
    records.write_text(
        "".join(json.dumps({"record_type": "home", **HOME, "home_id": h}) + "\n" for h in ("h1", "h2"))
    )
    with Store(store_path) as store:
        store.ingest([records])
    found = load_home(None, store_path, "h2")
    assert found.home_id == "h2" and len(found.entities) == len(HOME["entities"])
    assert load_home(yaml_file, store_path, "h1").home_id == "h1"  # the store wins for its households
    assert load_home(yaml_file, store_path, None).home_id == "h9"  # h9 is not in the store: the file
    for args, words in [
        ((None, None, None), "--home FILE, --store FILE or --service URL"),
        ((tmp_path / "nope.yaml", None, None), "cannot read home file"),
        ((None, store_path, None), "holds 2 homes; name one with --household-id"),
        ((None, store_path, "h3"), "no home for household 'h3'"),
    ]:
        with pytest.raises(ConfigError, match=words):
            load_home(*args)
    bad = tmp_path / "bad.json"
    for text, words in [
        ("[1, 2]", "must hold a mapping"),
        ("{", "not valid json"),
        ('{"areas": [{}]}', "'id'"),
    ]:
        bad.write_text(text)
        with pytest.raises(ConfigError, match=words):
            load_home(bad, None, None)


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli_app, ["wyoming"])
    assert isinstance(res.exception, ConfigError)
    assert "--home FILE, --store FILE or --service URL" in str(res.exception)
    home_file = tmp_path / "home.json"
    home_file.write_text(json.dumps(HOME))
    res = runner.invoke(cli_app, ["wyoming", "--home", str(home_file), "--uri", "http://x"])
    assert isinstance(res.exception, SelflearnError) and "unusable --uri" in str(res.exception)
    res = runner.invoke(cli_app, ["wyoming", "--home", str(home_file), "--language", "de"])
    assert isinstance(res.exception, ConfigError) and "only English" in str(res.exception)


def test_a_binary_home_file_is_one_error_line_not_a_traceback(tmp_path: Path) -> None:
    """Issue 53 (7): ``wyoming --home`` on a file that is not text printed a traceback."""
    binary = tmp_path / "home.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError, match="is not a text file"):
        load_home(binary, None, None)
    proc = subprocess.run(
        [sys.executable, "-m", "selflearn", "wyoming", "--home", str(binary)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip() == (
        f"error: home file {binary} is not a text file (not UTF-8 at byte 128): give a YAML or JSON home"
    )


@pytest.fixture()
def cli_server(tmp_path: Path, rewriter_folder: Path) -> Iterator[int]:
    """``selflearn wyoming`` as a user starts it, in its own process."""
    home_file = tmp_path / "home.json"
    home_file.write_text(json.dumps(HOME))
    port = _free_port()
    command = [sys.executable, "-m", "selflearn", "wyoming", "--home", str(home_file)]
    command += ["--rewriter", str(rewriter_folder), "--uri", f"tcp://127.0.0.1:{port}", "--confirm", "off"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "selflearn wyoming did not start listening"
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0]
        assert f"listening on tcp://127.0.0.1:{port}" in output, output


def test_the_command_serves_home_assistants_calls(cli_server: int) -> None:
    """What Home Assistant's wyoming integration does: describe on one connection, then one
    connection per request sending a transcript with the conversation id."""

    async def main() -> None:
        answers = []
        for event in (Describe().event(), Transcript(KILL, context={"conversation_id": "01J"}).event()):
            client = AsyncTcpClient("127.0.0.1", cli_server, connect_timeout=5, read_timeout=10)
            await client.connect()
            try:
                await client.write_event(event)
                answers.append(await client.read_event())
            finally:
                await client.disconnect()
        info, intent = answers
        assert info is not None and Info.from_event(info).intent[0].models[0].version
        assert intent is not None and Intent.from_event(intent).name == "HassTurnOff"
        assert intent.data["context"]["conversation_id"] == "01J"

    asyncio.run(main())


def test_the_home_comes_from_a_running_service(service_url: str) -> None:  # noqa: F811
    """What the Home Assistant integration syncs to ``selflearn serve`` is what Wyoming answers for."""
    home = load_home(None, None, HOUSEHOLD, service_url)
    assert home.home_id == HOUSEHOLD
    assert sorted(a.name for a in home.areas) == sorted(a["name"] for a in HOME["areas"])
    with pytest.raises(ConfigError, match="no home for 'nobody'"):
        load_home(None, None, "nobody", service_url)
    with pytest.raises(ConfigError, match="needs --household-id"):
        load_home(None, None, None, service_url)
    with pytest.raises(ConfigError, match="cannot read the home"):
        load_home(None, None, HOUSEHOLD, "http://127.0.0.1:9")
