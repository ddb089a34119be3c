"""The selflearn integration in a real Home Assistant core, against a real ``selflearn serve``.

A kitchen with a template light (driving an input_boolean): Home Assistant's own agent fails on
"kill the lights in the kitchen"; through selflearn the light goes off. Requests Home Assistant
understands are never sent for a rewrite. With the service hung or killed, Assist answers as
it would alone, and after repeated failures a repair issue says so.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from custom_components.selflearn.const import DOMAIN, ISSUE_UNREACHABLE, OPT_TIMEOUT_MS
from homeassistant.components import conversation
from homeassistant.const import MAJOR_VERSION, MINOR_VERSION
from homeassistant.core import Context, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from .conftest import Service, agent_id_of, free_port, start_service

KILL = "kill the lights in the kitchen"
WORKS = "turn off the lights in the kitchen"
FAILS = {"no_intent_match", "no_valid_targets"}
"""Home Assistant's answers to a request it could not match (which one depends on the core)."""


async def setup_home(hass: HomeAssistant) -> None:
    """A kitchen with one light, as a user would configure it."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(
        hass,
        "input_boolean",
        {"input_boolean": {"kitchen_power": {"name": "Kitchen power", "initial": True}}},
    )
    power = {"entity_id": "input_boolean.kitchen_power"}
    light = {
        "unique_id": "kitchen_lights",
        "turn_on": {"service": "input_boolean.turn_on", "target": power},
        "turn_off": {"service": "input_boolean.turn_off", "target": power},
    }
    state = "{{ is_state('input_boolean.kitchen_power', 'on') }}"
    if (MAJOR_VERSION, MINOR_VERSION) >= (2025, 4):  # template lights under `template:` (2026.x: only there)
        light |= {"name": "Kitchen Lights", "state": state}
        assert await async_setup_component(hass, "template", {"template": [{"light": [light]}]})
    else:
        light |= {"friendly_name": "Kitchen Lights", "value_template": state}
        config = {"light": [{"platform": "template", "lights": {"kitchen_lights": light}}]}
        assert await async_setup_component(hass, "light", config)
    assert await async_setup_component(hass, "conversation", {})
    await hass.async_block_till_done()
    kitchen = ar.async_get(hass).async_create("Kitchen")
    registry = er.async_get(hass)
    entry = registry.async_get("light.kitchen_lights")
    assert entry is not None
    # an alias added as the user would (2026.x: an ordered list that keeps the entity's own name)
    aliases: Any = entry.aliases
    aliases = [*aliases, "cooking light"] if isinstance(aliases, list) else {*aliases, "cooking light"}
    registry.async_update_entity("light.kitchen_lights", area_id=kitchen.id, aliases=aliases)
    await hass.async_block_till_done()


async def add_entry(hass: HomeAssistant, url: str, **options: Any) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={"url": url, "admin_token": None, "household_id": "ha-test", "salt": "test-salt"},
        options=options,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def ask(
    hass: HomeAssistant, entry: MockConfigEntry, text: str, conversation_id: str | None = None
) -> Any:
    result = await conversation.async_converse(
        hass, text, conversation_id, Context(), language="en", agent_id=agent_id_of(hass, entry)
    )
    await hass.async_block_till_done()
    return result.response


async def call(hass: HomeAssistant, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Blocking HTTP to the service, off the event loop (Home Assistant forbids it on the loop)."""
    return await hass.async_add_executor_job(functools.partial(fn, *args, **kwargs))


async def until(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


def agent_of(hass: HomeAssistant, entry: MockConfigEntry) -> Any:
    return hass.data[DOMAIN][entry.entry_id]["agent"]


def light(hass: HomeAssistant) -> str:
    state = hass.states.get("light.kitchen_lights")
    assert state is not None
    return state.state


# --- rewriting behind Home Assistant ----------------------------------------------------------


async def test_a_failed_request_is_rewritten_and_works(hass: HomeAssistant, service: Service) -> None:
    await setup_home(hass)
    entry = await add_entry(hass, service.url)
    alone = await conversation.async_converse(hass, KILL, None, Context(), language="en")
    assert alone.response.error_code.value in FAILS  # Home Assistant alone fails
    assert light(hass) == "on"

    response = await ask(hass, entry, KILL)
    assert response.response_type.value == "action_done", response.as_dict()
    assert light(hass) == "off"
    assert agent_of(hass, entry).rewrites == 1
    assert await call(hass, service.metric, "selflearn_dialogue_requests_total", action="run") == 1


async def test_an_understood_request_costs_no_rewrite_call(hass: HomeAssistant, service: Service) -> None:
    await setup_home(hass)
    entry = await add_entry(hass, service.url)
    response = await ask(hass, entry, WORKS)
    assert response.response_type.value == "action_done"
    assert light(hass) == "off"
    agent = agent_of(hass, entry)
    await until(lambda: agent.logged == 1)  # the turn is logged, in the background
    assert await call(hass, service.metric, "selflearn_dialogue_requests_total") == 0
    assert await call(hass, service.metric, "selflearn_ingested_records_total", result="stored") == 1


async def test_logging_off_sends_nothing_for_an_understood_request(
    hass: HomeAssistant, service: Service
) -> None:
    await setup_home(hass)
    entry = await add_entry(hass, service.url, log_turns=False)
    client = hass.data[DOMAIN][entry.entry_id]["client"]
    await until(lambda: hass.data[DOMAIN][entry.entry_id]["sync"].synced == 1)  # the home, once
    calls = client.calls
    assert (await ask(hass, entry, WORKS)).response_type.value == "action_done"
    assert client.calls == calls


async def test_before_mode_asks_first_and_never_makes_a_request_worse(
    hass: HomeAssistant, service: Service
) -> None:
    await setup_home(hass)
    entry = await add_entry(hass, service.url, rewrite="before", log_turns=False)
    assert (await ask(hass, entry, KILL)).response_type.value == "action_done"
    assert light(hass) == "off" and agent_of(hass, entry).rewrites == 1
    assert (await ask(hass, entry, WORKS)).response_type.value == "action_done"  # asked, not changed
    assert await call(hass, service.metric, "selflearn_dialogue_requests_total", action="pass") == 1


async def test_the_conversation_service_and_the_http_api(
    hass: HomeAssistant, service: Service, hass_client: Any
) -> None:
    await setup_home(hass)
    entry = await add_entry(hass, service.url)
    out = await hass.services.async_call(
        "conversation",
        "process",
        {"text": KILL, "agent_id": agent_id_of(hass, entry)},
        blocking=True,
        return_response=True,
    )
    assert out["response"]["response_type"] == "action_done", out
    assert light(hass) == "off"
    await hass.services.async_call("input_boolean", "turn_on", {"entity_id": "input_boolean.kitchen_power"})
    await hass.async_block_till_done()
    assert light(hass) == "on"

    client = await hass_client()
    res = await client.post(
        "/api/conversation/process", json={"text": KILL, "agent_id": agent_id_of(hass, entry)}
    )
    assert res.status == 200
    body = await res.json()
    assert body["response"]["response_type"] == "action_done", body
    assert light(hass) == "off"


async def test_turns_are_logged_with_their_outcome_and_rewrite(hass: HomeAssistant, service: Service) -> None:
    await setup_home(hass)
    entry = await add_entry(hass, service.url)
    agent = agent_of(hass, entry)
    records: list[dict[str, Any]] = []
    original = agent.client.log_turns

    async def spy(batch: list[dict[str, Any]], timeout_s: float = 10.0) -> Any:
        records.extend(batch)
        return await original(batch, timeout_s)

    agent.client.log_turns = spy
    await ask(hass, entry, KILL, "c1")
    await ask(hass, entry, "sing me a song about the sea", "c1")
    await until(lambda: agent.logged == 2)
    first, second = records
    assert first["text"] == WORKS and first["result"]["status"] == "success"  # what Assist ran
    assert first["rewrite"]["original_text"] == KILL and first["rewrite"]["layer"] == "precomputed"
    assert second["result"]["status"] in ("no_match", "error") and second["result"]["error_code"] in FAILS
    assert first["session_id"] == second["session_id"]  # one conversation, one session
    assert first["household_id"] == "ha-test" and "test-salt" not in str(first)
    stored = await call(hass, service.metric, "selflearn_ingested_records_total", result="stored")
    assert stored == 2


# --- learning from the home's own retries -------------------------------------------------------


async def test_the_home_teaches_the_service_by_retrying(hass: HomeAssistant, empty_service: Service) -> None:
    """Nothing mined: the personal layer learns "kill" from this home's own retries, logged by
    the integration, and the next "kill" works."""
    await setup_home(hass)
    entry = await add_entry(hass, empty_service.url)
    agent = agent_of(hass, entry)
    await until(lambda: hass.data[DOMAIN][entry.entry_id]["sync"].synced == 1)
    for n in range(2):
        assert (await ask(hass, entry, KILL, f"retry{n}")).error_code.value in FAILS
        await asyncio.sleep(1.1)  # a retry a moment later, as a person would
        assert (await ask(hass, entry, WORKS, f"retry{n}")).response_type.value == "action_done"
        await hass.services.async_call(
            "input_boolean", "turn_on", {"entity_id": "input_boolean.kitchen_power"}
        )
    await until(lambda: agent.logged == 4)
    await hass.async_block_till_done()
    assert light(hass) == "on"
    response = await ask(hass, entry, KILL, "later")
    assert response.response_type.value == "action_done", response.as_dict()
    assert light(hass) == "off"


# --- the home -----------------------------------------------------------------------------------


async def test_the_home_is_synced_and_kept_in_sync(hass: HomeAssistant, service: Service) -> None:
    await setup_home(hass)
    entry = await add_entry(hass, service.url)
    sync = hass.data[DOMAIN][entry.entry_id]["sync"]
    await until(lambda: sync.synced == 1)
    home = await call(hass, service.get, "/v1/homes/ha-test")
    assert [a["name"] for a in home["areas"]] == ["Kitchen"]
    by_id = {e["id"]: e for e in home["entities"]}
    assert by_id["light.kitchen_lights"]["aliases"] == ["cooking light"]
    assert by_id["light.kitchen_lights"]["area"] == home["areas"][0]["id"]

    ar.async_get(hass).async_create("Garage")
    er.async_get(hass).async_update_entity("light.kitchen_lights", aliases={"cooking light", "stove light"})
    await hass.async_block_till_done()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=6))
    await until(lambda: sync.synced == 2)
    home = await call(hass, service.get, "/v1/homes/ha-test")
    assert sorted(a["name"] for a in home["areas"]) == ["Garage", "Kitchen"]
    assert {e["id"]: e for e in home["entities"]}["light.kitchen_lights"]["aliases"] == [
        "cooking light",
        "stove light",
    ]


# --- failing open -------------------------------------------------------------------------------


@pytest.fixture
def hung_url(socket_enabled: None) -> Iterator[str]:
    """A port that accepts connections and never answers: a service that hangs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


async def test_a_hung_service_costs_at_most_the_budget(hass: HomeAssistant, hung_url: str) -> None:
    await setup_home(hass)
    entry = await add_entry(hass, hung_url, **{OPT_TIMEOUT_MS: 100, "log_turns": False})
    alone = await conversation.async_converse(hass, KILL, None, Context(), language="en")
    started = time.monotonic()
    response = await ask(hass, entry, KILL)
    elapsed = time.monotonic() - started
    assert response.as_dict() == alone.response.as_dict()  # Home Assistant's own answer, unchanged
    assert elapsed < 1.0, elapsed


async def test_service_killed_mid_test_fails_open_with_a_repair_issue(
    hass: HomeAssistant, tmp_path: Any, socket_enabled: None
) -> None:
    rule = ("kill the lights in the {area}", "turn off the lights in the {area}")
    service = await call(hass, start_service, tmp_path, tmp_path, rule, confirm="off")
    try:
        await setup_home(hass)
        entry = await add_entry(hass, service.url)
        assert (await ask(hass, entry, KILL)).response_type.value == "action_done"
        await hass.services.async_call(
            "input_boolean", "turn_on", {"entity_id": "input_boolean.kitchen_power"}
        )
        await hass.async_block_till_done()
        await call(hass, service.stop)  # killed

        alone = await conversation.async_converse(hass, KILL, None, Context(), language="en")
        for _ in range(3):
            response = await ask(hass, entry, KILL)
            assert response.as_dict() == alone.response.as_dict()
        assert (await ask(hass, entry, WORKS)).response_type.value == "action_done"  # Assist still works
        assert light(hass) == "off"
        await until(lambda: ir.async_get(hass).async_get_issue(DOMAIN, ISSUE_UNREACHABLE) is not None)
    finally:
        await call(hass, service.stop)


async def test_a_nonexistent_service_fails_open(hass: HomeAssistant, socket_enabled: None) -> None:
    await setup_home(hass)
    entry = await add_entry(hass, f"http://127.0.0.1:{free_port()}")
    assert (await ask(hass, entry, WORKS)).response_type.value == "action_done"
    assert (await ask(hass, entry, KILL)).error_code.value in FAILS


# --- set-up -------------------------------------------------------------------------------------


async def test_config_flow_checks_the_service(hass: HomeAssistant, service: Service) -> None:
    await setup_home(hass)
    flow = await hass.config_entries.flow.async_init(DOMAIN, context={"source": "user"})
    assert flow["type"] == FlowResultType.FORM
    bad = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {"url": f"http://127.0.0.1:{free_port()}", "admin_token": ""}
    )
    assert bad["type"] == FlowResultType.FORM and bad["errors"] == {"base": "cannot_connect"}
    unnamed = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {"url": "http://no-such-host.invalid:8080", "admin_token": ""}
    )
    assert unnamed["errors"] == {"base": "host_not_resolved"}
    good = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {"url": service.url, "admin_token": ""}
    )
    assert good["type"] == FlowResultType.CREATE_ENTRY
    assert good["data"]["url"] == service.url and good["data"]["household_id"].startswith("ha-")
    await hass.async_block_till_done()
    entry = hass.config_entries.async_entries(DOMAIN)[0]

    options = await hass.config_entries.options.async_init(entry.entry_id)
    done = await hass.config_entries.options.async_configure(
        options["flow_id"],
        {
            "rewrite": "off",
            "timeout_ms": 200,
            "log_turns": True,
            "agent_id": conversation.HOME_ASSISTANT_AGENT,
        },
    )
    assert done["type"] == FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    agent = agent_of(hass, entry)  # reloaded with the new options
    assert agent.rewrite_mode == "off"
    assert (await ask(hass, entry, KILL)).error_code.value in FAILS  # logging only
