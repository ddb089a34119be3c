"""The integration in a real Home Assistant core against a selflearn service that misbehaves
(issue 42): it answers garbage bytes, JSON of the wrong shape, an HTML 500, half a body and then
nothing, half a body and a closed connection, or nothing at all. Whatever it does, Assist answers
as it would alone, within the integration's timeout, runs nothing it was not asked to, and keeps
working for requests it understands.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from custom_components.selflearn.const import DOMAIN
from homeassistant.components import conversation
from homeassistant.core import Context, HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .conftest import agent_id_of
from .test_integration import FAILS, KILL, WORKS, light, setup_home

TIMEOUT_MS = 400

WRONG_SHAPES = [
    {"action": "run", "sentences": "turn off the lights in the kitchen"},  # a string, not a list
    {"action": "run", "sentences": [123, None, {"x": 1}], "speech": 5},
    {"action": "ask", "speech": ["Did", "you"], "question": "yes", "continue_conversation": "maybe"},
    {"text": None, "rewritten": "yes", "action": None},
    [],
    {"status": "ok", "dialogue": {"commands": "("}},  # /healthz: a command shape that is no regex
    {"status": "ok", "dialogue": {"commands": ".*"}},  # ... or one every request has
]


class _Handler(socketserver.BaseRequestHandler):
    """Reads one request, then misbehaves as the server's ``mode`` says."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                data += chunk
        except OSError:
            return
        server: Hostile = self.server  # type: ignore[assignment]
        server.requests += 1
        mode = server.mode
        try:
            if mode == "garbage":
                sock.sendall(bytes(range(256)) * 4)
            elif mode == "wrong-shape":
                body = json.dumps(WRONG_SHAPES[server.requests % len(WRONG_SHAPES)]).encode()
                sock.sendall(_response(200, body))
            elif mode == "html-500":
                sock.sendall(_response(500, b"<html><body>Internal Server Error</body></html>", "text/html"))
            elif mode == "half-then-nothing":
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
                sock.sendall(head + b'{"action": "run", "sentences": ["turn o')
                server.stop.wait(30)
            elif mode == "half-then-close":
                sock.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"
                )
            elif mode == "silent":
                server.stop.wait(30)
        except OSError:
            return


def _response(status: int, body: bytes, kind: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class Hostile(socketserver.ThreadingTCPServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins the request threads (the harness checks none is left)
    allow_reuse_address = True

    def __init__(self, mode: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = mode
        self.requests = 0
        self.stop = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(
    params=["garbage", "wrong-shape", "html-500", "half-then-nothing", "half-then-close", "silent"]
)
def hostile(request: pytest.FixtureRequest, socket_enabled: None) -> Iterator[Hostile]:
    server = Hostile(str(request.param))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.stop.set()
    server.shutdown()
    server.server_close()


async def test_assist_answers_alone_whatever_the_service_does(hass: HomeAssistant, hostile: Hostile) -> None:
    await setup_home(hass)
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={"url": hostile.url, "admin_token": None, "household_id": "ha-test", "salt": "test-salt"},
        options={"timeout_ms": TIMEOUT_MS},
    )
    entry.add_to_hass(hass)
    started = time.monotonic()
    assert await hass.config_entries.async_setup(entry.entry_id)
    setup_s = time.monotonic() - started
    assert setup_s < 5, setup_s  # a service that hangs does not hold up Home Assistant's start
    agent = agent_id_of(hass, entry)
    for _ in range(2):
        started = time.monotonic()
        result = await conversation.async_converse(hass, KILL, None, Context(), language="en", agent_id=agent)
        took = time.monotonic() - started
        response: Any = result.response
        assert response.error_code is not None and response.error_code.value in FAILS, response.as_dict()
        assert took < TIMEOUT_MS / 1000 + 2.0, took  # never waits on the service past its deadline
        assert light(hass) == "on"  # nothing the service said was run
    assert hostile.requests >= 1  # the service was asked, and misbehaved
    done = await conversation.async_converse(hass, WORKS, None, Context(), language="en", agent_id=agent)
    assert done.response.response_type.value == "action_done", done.response.as_dict()
    # The background calls (home sync, turn log) wait out their own longer deadlines on a hung
    # service; end the hang so the test does not wait for them too.
    hostile.mode = "html-500"
    hostile.stop.set()
    await hass.async_block_till_done()
    assert light(hass) == "off"
