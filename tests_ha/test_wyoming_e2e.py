"""``selflearn wyoming`` from Home Assistant's own ``wyoming`` integration (cores with Wyoming
conversation agents: 2025.4; ``make test-ha`` runs this file there only).

Home Assistant adds the service as a Wyoming Protocol entry, sends it the request, and executes
the intent it answers on its real entities. A guess is a question ("Did you mean ...?", answered
``handled``); the "yes" comes back in the same conversation and the intent then runs.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from homeassistant.components import conversation
from homeassistant.core import Context, HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .conftest import ROOT, SELFLEARN_PYTHON, free_port
from .test_integration import FAILS, KILL, WORKS, setup_home

HOME = {
    "home_id": "h1",
    "areas": [{"id": "kitchen", "name": "Kitchen"}],
    "entities": [{"id": "light.kitchen_lights", "name": "Kitchen Lights", "area": "kitchen"}],
}


def _start(tmp: Path, rule: bool) -> tuple[subprocess.Popen[bytes], int]:
    home = tmp / "home.json"
    home.write_text(json.dumps(HOME))
    cmd = [str(SELFLEARN_PYTHON), "-m", "selflearn", "wyoming", "--home", str(home)]
    if rule:
        folder = tmp / "rewriter"
        subprocess.run(
            [
                str(SELFLEARN_PYTHON),
                str(ROOT / "tests_ha" / "make_rewriter.py"),
                str(folder),
                "--rule",
                "kill the lights in the {area}",
                "turn off the lights in the {area}",
            ],
            check=True,
            capture_output=True,
        )
        cmd += ["--rewriter", str(folder), "--timeout-ms", "1000"]
    else:
        cmd += ["--no-starter"]  # Home Assistant's NLU alone, not the packaged starter
    port = free_port()
    log = (tmp / "wyoming.log").open("wb")
    process = subprocess.Popen(
        [*cmd, "--uri", f"tcp://127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, (tmp / "wyoming.log").read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("selflearn wyoming did not start")


@pytest.fixture(params=[False, True], ids=["nlu-only", "with-rewriter"])
def wyoming_port(
    request: pytest.FixtureRequest, tmp_path: Path, socket_enabled: None
) -> Iterator[tuple[int, bool]]:
    process, port = _start(tmp_path, request.param)
    yield port, request.param
    process.kill()
    process.wait(10)


async def test_home_assistant_uses_selflearn_as_its_wyoming_agent(
    hass: HomeAssistant, wyoming_port: tuple[int, bool]
) -> None:
    port, with_rewriter = wyoming_port
    await setup_home(hass)
    entry = MockConfigEntry(domain="wyoming", data={"host": "127.0.0.1", "port": port})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    agent_id = "conversation.selflearn"
    assert hass.states.get(agent_id) is not None, hass.states.async_entity_ids("conversation")

    killed = await conversation.async_converse(hass, KILL, None, Context(), language="en", agent_id=agent_id)
    if with_rewriter:  # the rule is a guess for this home: a question, answered in the same conversation
        speech = killed.response.speech["plain"]["speech"]
        assert speech == "Did you mean turn off the lights in the kitchen?", killed.as_dict()
        assert hass.states.get("light.kitchen_lights").state == "on"
        yes = await conversation.async_converse(
            hass, "yes", killed.conversation_id, Context(), language="en", agent_id=agent_id
        )
        assert yes.response.response_type.value == "action_done", yes.as_dict()
        assert hass.states.get("light.kitchen_lights").state == "off"
        await hass.services.async_call(
            "input_boolean", "turn_on", {"entity_id": "input_boolean.kitchen_power"}, blocking=True
        )
        again = await conversation.async_converse(
            hass, KILL, None, Context(), language="en", agent_id=agent_id
        )
        assert again.response.response_type.value == "action_done", again.as_dict()  # the yes was learned
        assert hass.states.get("light.kitchen_lights").state == "off"
        await hass.services.async_call(
            "input_boolean", "turn_on", {"entity_id": "input_boolean.kitchen_power"}, blocking=True
        )
        await hass.async_block_till_done()
    else:
        assert killed.response.response_type.value == "error"
        assert killed.response.error_code.value in FAILS
        assert hass.states.get("light.kitchen_lights").state == "on"

    works = await conversation.async_converse(hass, WORKS, None, Context(), language="en", agent_id=agent_id)
    assert works.response.response_type.value == "action_done", works.as_dict()
    assert hass.states.get("light.kitchen_lights").state == "off"
