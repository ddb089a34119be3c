"""The OVOS utterance transformer, loaded through ovos-plugin-manager by its entry point, against
a real ``selflearn serve`` app under uvicorn on loopback; and failing open when the service is
down, slow or answers nonsense."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from ovos_plugin_manager.templates.transformers import UtteranceTransformer
from ovos_plugin_manager.text_transformers import (
    find_utterance_transformer_plugins,
    load_utterance_transformer_plugin,
)
from ovos_utils.json_helper import merge_dict

from selflearn.integrations.ovos import PLUGIN_NAME, SelflearnUtteranceTransformer
from selflearn.rewrite.rewriter import Rewriter
from selflearn.rewrite.table import RewriteTable, rule_id
from selflearn.service import ServiceConfig, create_app
from tests.conftest import HOME

KILL = "kill the lights in the kitchen"
TURN_OFF = "turn off the lights in the kitchen"
SOURCE, TARGET = "kill the lights in the {area}", "turn off the lights in the {area}"
HOUSEHOLD = "ovos-test"
LOGGER = "selflearn.integrations.ovos"


# --- a real service on loopback ----------------------------------------------------------------


def _save_rewriter(folder: Path) -> Path:
    """A table-only rewriter folder with one rule (as ``_save_rewriter`` in test_service.py)."""
    table = RewriteTable.from_rules([(SOURCE, TARGET)])
    return Rewriter.from_parts(table=table).save(folder)


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def _url(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``create_app`` under a real uvicorn server in a thread, with the household's home registered."""
    folder = _save_rewriter(tmp_path_factory.mktemp("ovos") / "rewriter")
    # The transformer cannot ask "Did you mean ...?": a service that acts on guesses (--confirm off).
    app = create_app(ServiceConfig(rewriter=folder, request_timeout_ms=5000, confirm="off"))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    sock = _listening_socket()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.01)
    url = _url(sock)
    res = httpx.put(f"{url}/v1/homes/{HOUSEHOLD}", json=HOME, trust_env=False)
    assert res.status_code == 200, res.text
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


def _plugin(url: str, **config: Any) -> SelflearnUtteranceTransformer:
    """The plugin class as OPM loads it, configured as mycroft.conf would."""
    cls = load_utterance_transformer_plugin(PLUGIN_NAME)
    plugin: SelflearnUtteranceTransformer = cls(config={"url": url, "household_id": HOUSEHOLD, **config})
    return plugin


# --- loading through OPM -----------------------------------------------------------------------


def test_opm_finds_and_loads_the_plugin_by_its_entry_point() -> None:
    found = find_utterance_transformer_plugins()
    assert found.get(PLUGIN_NAME) is SelflearnUtteranceTransformer
    cls = load_utterance_transformer_plugin(PLUGIN_NAME)
    assert cls is SelflearnUtteranceTransformer and issubclass(cls, UtteranceTransformer)


def test_ovos_core_way_reads_mycroft_conf(monkeypatch: pytest.MonkeyPatch) -> None:
    """ovos-core instantiates transformers with no arguments; OPM's base class then reads
    ``utterance_transformers`` -> the plugin's name from the configuration."""
    conf = {"utterance_transformers": {PLUGIN_NAME: {"household_id": "h7", "timeout_ms": 50, "priority": 3}}}
    monkeypatch.setattr("ovos_plugin_manager.templates.transformers.Configuration", lambda: conf)
    plugin = load_utterance_transformer_plugin(PLUGIN_NAME)()
    assert plugin.name == PLUGIN_NAME and plugin.household_id == "h7" and plugin.priority == 3
    assert plugin.url == "http://127.0.0.1:8080" and plugin.timeout_s == pytest.approx(0.05)
    plugin.shutdown()


@pytest.mark.parametrize(
    "bad", [{"household_id": "no spaces"}, {"url": "127.0.0.1:8080"}, {"timeout_ms": 0}, {"languages": "en"}]
)
def test_unusable_settings_are_refused_at_load(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        SelflearnUtteranceTransformer({"url": "http://127.0.0.1:8080", **bad})


def test_importing_the_plugin_loads_no_model() -> None:
    code = (
        "import sys, selflearn.integrations.ovos; "
        "print(sorted(m for m in ('torch', 'lightgbm', 'faiss', 'fastapi', 'selflearn.rewrite') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


# --- against the real service ------------------------------------------------------------------


def test_rewrites_through_the_service(service_url: str) -> None:
    plugin = _plugin(service_url, timeout_ms=5000)
    utterances = [KILL, "kill the lights in the kitchens"]
    context = {"lang": "en-US", "session": {"session_id": "s1", "site_id": "unknown"}}
    out, extra = plugin.transform(utterances, context)
    assert out == [TURN_OFF, *utterances]
    assert utterances == [KILL, "kill the lights in the kitchens"]  # the caller's list is untouched
    prov = extra["selflearn"]
    assert prov["original"] == KILL and prov["rewritten"] == TURN_OFF
    assert prov["layer"] == "precomputed" and prov["rule_id"] == rule_id(SOURCE, TARGET)
    assert prov["score"] == pytest.approx(0.9) and prov["version"].startswith("rwr-")
    assert prov["rewrite"]["original_text"] == KILL and prov["rewrite"]["rewritten_text"] == TURN_OFF
    # what ovos-core does with the returned context: merged into the message's, sent as JSON
    merged = merge_dict(dict(context), extra)
    assert json.loads(json.dumps(merged))["selflearn"]["rewritten"] == TURN_OFF
    assert merged["session"] == context["session"]
    plugin.shutdown()


def test_unknown_request_comes_back_unchanged(service_url: str) -> None:
    plugin = _plugin(service_url, timeout_ms=5000)
    for text in ["turn on the kitchen lights", "what is the weather like", "   "]:
        assert plugin.transform([text], {"lang": "en-us"}) == ([text], {})
    assert plugin.transform([], None) == ([], {})
    # another household has no home registered: "kitchen" is just a word, no rule applies
    other = SelflearnUtteranceTransformer({"url": service_url, "household_id": "nobody", "timeout_ms": 5000})
    assert other.transform([KILL]) == ([KILL], {})


def test_area_comes_from_the_message_context(service_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    captured: list[dict[str, Any]] = []
    plugin = _plugin(service_url, timeout_ms=5000)
    real_post = plugin._client.post

    def spy(url: str, json: dict[str, Any]) -> httpx.Response:
        captured.append(json)
        return real_post(url, json=json)

    monkeypatch.setattr(plugin._client, "post", spy)
    context = {"area": "Kitchen", "session": {"site_id": "x"}}
    plugin.transform([KILL, "kill the light in the kitchen"], context)
    plugin.transform([KILL], {"session": {"site_id": "Living Room"}})
    plugin.transform([KILL], {"session": {"site_id": "unknown"}})
    assert [c.get("area") for c in captured] == ["Kitchen", "Living Room", None]
    assert captured[0]["nbest"] == ["kill the light in the kitchen"] and "failed" not in captured[0]
    assert {c["household_id"] for c in captured} == {HOUSEHOLD}


# --- failing open ------------------------------------------------------------------------------


def test_service_down_fails_open_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    sock = _listening_socket()
    url = _url(sock)
    sock.close()  # nobody listens there now
    plugin = _plugin(url, timeout_ms=200)
    said = [KILL, "kill the light"]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for _ in range(3):
            started = time.monotonic()
            assert plugin.transform(said, {"lang": "en-us"}) == (said, {})
            assert time.monotonic() - started < 1.0
    warnings = [r for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1 and "passing utterances through" in warnings[0].getMessage()
    assert plugin._failures == 3


def test_other_languages_are_not_sent(caplog: pytest.LogCaptureFixture) -> None:
    sock = _listening_socket()
    url = _url(sock)
    sock.close()
    plugin = _plugin(url, timeout_ms=200)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert plugin.transform(["apaga las luces"], {"lang": "es-ES"}) == (["apaga las luces"], {})
        assert plugin.transform(["x"], {"session": {"lang": "pt-pt"}}) == (["x"], {})
    assert not [r for r in caplog.records if r.name == LOGGER]  # no request was attempted
    assert plugin._failures == 0


def test_slow_service_fails_open_at_the_timeout() -> None:
    sock = _listening_socket()  # accepts connections (the kernel's backlog) and never answers
    try:
        plugin = _plugin(_url(sock), timeout_ms=200)
        started = time.monotonic()
        out = plugin.transform([KILL], {"lang": "en-us"})
        elapsed = time.monotonic() - started
        assert out == ([KILL], {})
        assert 0.15 <= elapsed < 1.0, elapsed
    finally:
        sock.close()


class _Nonsense(BaseHTTPRequestHandler):
    """Answers ``POST /<case>/v1/rewrite`` with an error, junk, or too late."""

    answers = {  # noqa: RUF012
        "/error": (500, "text/plain", b"internal error"),
        "/invalid": (422, "application/json", b'{"detail": "no"}'),
        "/garbage": (200, "application/json", b"{not json"),
        "/shape": (200, "application/json", b'{"text": 5, "rewritten": true}'),
        "/list": (200, "application/json", b"[1, 2]"),
        "/slow": (200, "application/json", json.dumps({"text": TURN_OFF, "rewritten": True}).encode()),
    }

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        case = self.path.removesuffix("/v1/rewrite")
        code, kind, body = self.answers[case]
        if case == "/slow":
            time.sleep(1.0)
        self.send_response(code)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the slow case writes after the client gave up: a broken pipe, expected


@pytest.fixture(scope="module")
def nonsense_url() -> Iterator[str]:
    server = _QuietServer(("127.0.0.1", 0), _Nonsense)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("case", ["error", "invalid", "garbage", "shape", "list", "slow"])
def test_bad_answers_fail_open(nonsense_url: str, case: str, caplog: pytest.LogCaptureFixture) -> None:
    plugin = _plugin(f"{nonsense_url}/{case}", timeout_ms=200)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        started = time.monotonic()
        assert plugin.transform([KILL], {"lang": "en"}) == ([KILL], {})
        assert time.monotonic() - started < 0.9
    assert len([r for r in caplog.records if r.name == LOGGER]) == 1


def test_closed_plugin_fails_open(service_url: str) -> None:
    plugin = _plugin(service_url)
    plugin.default_shutdown()
    assert plugin.transform([KILL]) == ([KILL], {})
    assert plugin._failures == 1


def test_the_admin_token_gives_the_household_its_own_layer(tmp_path: Path) -> None:
    """Issue 53 (7): a service with an admin token decides a rewrite asked without it without the
    household's own layer; the plugin's ``admin_token`` setting sends it."""
    from tests.test_service import _retry_pair

    token = "ovos-test-token"
    app = create_app(
        ServiceConfig(
            rewriter=_save_rewriter(tmp_path / "rw"),
            request_timeout_ms=5000,
            confirm="off",
            admin_token=token,
        )
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    sock = _listening_socket()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
            time.sleep(0.01)
        url, admin = _url(sock), {"Authorization": f"Bearer {token}"}
        assert httpx.put(f"{url}/v1/homes/h1", json=HOME, headers=admin, trust_env=False).status_code == 200
        learned = httpx.post(
            f"{url}/v1/turns", json=_retry_pair(0) + _retry_pair(1), headers=admin, trust_env=False
        )
        assert learned.json()["observed"] == 4
        said = "lights out in the kitchen"
        with_token = _plugin(url, household_id="h1", timeout_ms=5000, admin_token=token)
        out, extra = with_token.transform([said], {"lang": "en"})
        assert out[0] == "turn off the kitchen lights" and extra["selflearn"]["layer"] == "personal"
        without = _plugin(url, household_id="h1", timeout_ms=5000)
        assert without.transform([said], {"lang": "en"}) == ([said], {})
        # what everyone shares still applies without it
        assert without.transform([KILL], {"lang": "en"})[0][0] == TURN_OFF
        with pytest.raises(ValueError, match="admin_token"):
            _plugin(url, admin_token="  ")
        with_token.shutdown()
        without.shutdown()
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
