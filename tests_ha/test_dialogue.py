"""The dialogue in a real Home Assistant core: asking, answering, being taught, and remembering.

A kitchen with one light (``Kitchen Lights``), the integration and a real ``selflearn serve``
started as the guide says (``--confirm guesses``) with one mined rule ("kill the lights in the
{area}" -> "turn off the lights in the {area}"), which is a guess for this home:

* Assist fails on "kill the lights in the kitchen"; selflearn asks "Did you mean turn off the
  lights in the kitchen?" and keeps the conversation open; "yes" turns the light off; the same
  words then work without a question -- also after the service is killed and started again;
* "no" is never asked again;
* "turn on the mothership" fails on a name the home lacks; selflearn asks to be taught; "it's the
  kitchen lights" teaches it, the light goes on, "turn off the mothership" works, and Home
  Assistant is offered the alias (a repair issue whose fix adds it to the entity registry);
* the service killed mid-question, and a URL whose host name the resolver chokes on, both leave
  Home Assistant's own answers; turns made while the service is down reach it once it is back.

Run on Home Assistant 2024.3.3 (typed Assist continues by conversation id) and 2025.4.4 (the
conversation entity; ``continue_conversation`` so a satellite listens again).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from custom_components.selflearn.const import DOMAIN, FLUSH_INTERVAL_S, ISSUE_ALIAS, ISSUE_UNREACHABLE
from homeassistant.components import conversation
from homeassistant.components.repairs import repairs_flow_manager
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from .conftest import KILL_RULE, Service, agent_id_of, start_service
from .test_integration import FAILS, KILL, WORKS, add_entry, agent_of, call, light, setup_home, until

QUESTION = "Did you mean turn off the lights in the kitchen?"


async def ready(hass: HomeAssistant, url: str) -> MockConfigEntry:
    """The kitchen, and the integration once it has sent the home to the service."""
    await setup_home(hass)
    assert await async_setup_component(hass, "intent", {})  # before the test's HTTP client freezes the router
    entry = await add_entry(hass, url)
    await until(lambda: hass.data[DOMAIN][entry.entry_id]["sync"].synced >= 1)
    return entry


async def say(
    hass: HomeAssistant, entry: MockConfigEntry, text: str, conversation_id: str | None = None
) -> Any:
    """One typed request, as the Assist dialog sends it; returns the conversation result."""
    result = await conversation.async_converse(
        hass, text, conversation_id, Context(), language="en", agent_id=agent_id_of(hass, entry)
    )
    await hass.async_block_till_done()
    return result


def speech(result: Any) -> str:
    return str(result.response.speech.get("plain", {}).get("speech", ""))


def listens(result: Any) -> bool:
    """Whether the result keeps the conversation open (2025.4+; older cores have no such field)."""
    return bool(getattr(result, "continue_conversation", True))


async def switch_on(hass: HomeAssistant) -> None:
    await hass.services.async_call(
        "input_boolean", "turn_on", {"entity_id": "input_boolean.kitchen_power"}, blocking=True
    )


async def test_a_guess_is_asked_and_yes_teaches_the_home_also_across_a_restart(
    hass: HomeAssistant, asking_service: Service, tmp_path: Path
) -> None:
    entry = await ready(hass, asking_service.url)
    agent = agent_of(hass, entry)

    asked = await say(hass, entry, KILL)
    assert speech(asked) == QUESTION and listens(asked), asked.response.as_dict()
    assert asked.conversation_id and light(hass) == "on"  # nothing done on a guess
    done = await say(hass, entry, "yes", asked.conversation_id)
    assert done.response.response_type.value == "action_done", done.response.as_dict()
    assert light(hass) == "off"
    await until(lambda: agent.logged == 1)  # the asking turn, with its yes and the rewrite

    await switch_on(hass)
    again = await say(hass, entry, KILL)  # a new conversation: no question now
    assert again.response.response_type.value == "action_done" and speech(again) != QUESTION
    assert light(hass) == "off"
    await until(lambda: agent.logged == 2)

    # Kill the service (no clean shutdown) and start it again on the same store and port.
    port = int(asking_service.url.rsplit(":", 1)[1])
    await call(hass, asking_service.stop)
    restarted = await call(
        hass, start_service, tmp_path, tmp_path, port=port, store=tmp_path / "selflearn.duckdb", make=False
    )
    try:
        rebuilt = (await call(hass, restarted.get, "/healthz"))["dialogue"]["rebuilt"]
        assert rebuilt["records"] >= 2, rebuilt
        await switch_on(hass)
        after = await say(hass, entry, KILL)
        assert after.response.response_type.value == "action_done", after.response.as_dict()
        assert speech(after) != QUESTION and light(hass) == "off"
    finally:
        await call(hass, restarted.stop)


async def test_no_is_never_asked_again(hass: HomeAssistant, asking_service: Service) -> None:
    entry = await ready(hass, asking_service.url)
    asked = await say(hass, entry, KILL)
    assert speech(asked) == QUESTION
    answered = await say(hass, entry, "no", asked.conversation_id)
    assert speech(answered) == "OK. What did you want?" and listens(answered)
    assert light(hass) == "on"
    for _ in range(2):
        later = await say(hass, entry, KILL)
        assert later.response.error_code is not None and later.response.error_code.value in FAILS
        assert speech(later) != QUESTION
    assert light(hass) == "on"


async def test_silence_and_a_new_request_are_neither_yes_nor_no(
    hass: HomeAssistant, asking_service: Service
) -> None:
    entry = await ready(hass, asking_service.url)
    asked = await say(hass, entry, KILL)
    other = await say(hass, entry, WORKS, asked.conversation_id)  # a new request instead of an answer
    assert other.response.response_type.value == "action_done" and light(hass) == "off"
    await switch_on(hass)
    assert speech(await say(hass, entry, KILL)) == QUESTION  # asked again: nothing was learned
    assert light(hass) == "on"


async def test_a_teachable_moment_teaches_a_name_offered_as_an_alias(
    hass: HomeAssistant, asking_service: Service
) -> None:
    assert await async_setup_component(hass, "repairs", {})
    entry = await ready(hass, asking_service.url)
    await hass.services.async_call(
        "input_boolean", "turn_off", {"entity_id": "input_boolean.kitchen_power"}, blocking=True
    )

    asked = await say(hass, entry, "turn on the mothership")
    assert speech(asked) == "I don't know what mothership is. Can you teach me?", asked.response.as_dict()
    taught = await say(hass, entry, "it's the kitchen lights", asked.conversation_id)
    assert taught.response.response_type.value == "action_done", taught.response.as_dict()
    assert speech(taught).startswith("OK, mothership means Kitchen Lights.")
    assert light(hass) == "on"
    off = await say(hass, entry, "turn off the mothership")
    assert off.response.response_type.value == "action_done" and light(hass) == "off"

    # Offered to Home Assistant, applied only on approval.
    issues = [i for (d, i) in ir.async_get(hass).issues if d == DOMAIN and i.startswith(ISSUE_ALIAS)]
    assert len(issues) == 1, issues
    registry = er.async_get(hass)
    entity = registry.async_get("light.kitchen_lights")
    assert entity is not None and "mothership" not in entity.aliases
    manager = repairs_flow_manager(hass)
    assert manager is not None
    flow = await manager.async_init(DOMAIN, data={"issue_id": issues[0]})
    assert flow["type"] == "form" and flow["step_id"] == "confirm"
    assert "mothership" in flow["description_placeholders"]["phrase"]
    done = await manager.async_configure(flow["flow_id"], {})
    assert done["type"] == "create_entry"
    entity = registry.async_get("light.kitchen_lights")
    assert entity is not None and "mothership" in entity.aliases
    # Assist itself now understands the name, without selflearn.
    alone = await conversation.async_converse(hass, "turn on the mothership", None, Context(), language="en")
    assert alone.response.response_type.value == "action_done" and light(hass) == "on"
    # ... and the light still answers to its own name and its other alias (2026.x keeps the
    # entity's name among its aliases: replacing the list would have dropped it)
    for said in ("turn off the cooking light", "turn on kitchen lights"):
        heard = await conversation.async_converse(hass, said, None, Context(), language="en")
        assert heard.response.response_type.value == "action_done", (said, heard.response.as_dict())


async def test_a_lesson_home_assistant_answers_itself_is_heard_first(
    hass: HomeAssistant, asking_service: Service
) -> None:
    """Home Assistant 2026.11 answers "the big light is the kitchen lights" itself: its gazetteer
    reads a question about the kitchen lights ("Kitchen Lights is on"), so the lesson never
    reached the service (seen in its Assist dialog). A text shaped like a teaching command (the
    shape the service serves on /healthz) now goes to the dialogue first. "forget ..." withdraws
    the alias offered for the name (it stayed in Repairs)."""
    from homeassistant.const import MAJOR_VERSION

    assert await async_setup_component(hass, "repairs", {})
    entry = await ready(hass, asking_service.url)
    client = hass.data[DOMAIN][entry.entry_id]["client"]
    await until(lambda: client.command_shape is not None)
    lesson = "the big light is the kitchen lights"
    alone = await conversation.async_converse(hass, lesson, None, Context(), language="en")
    if MAJOR_VERSION >= 2026:  # why this test exists; older cores fail on it and ask the service anyway
        assert alone.response.response_type.value == "query_answer", alone.response.as_dict()
    taught = await say(hass, entry, lesson)
    assert speech(taught).startswith("OK, big light means Kitchen Lights"), taught.response.as_dict()
    await hass.services.async_call(
        "input_boolean", "turn_off", {"entity_id": "input_boolean.kitchen_power"}, blocking=True
    )
    on = await say(hass, entry, "turn on the big light")
    assert on.response.response_type.value == "action_done" and light(hass) == "on", on.response.as_dict()
    asked = await call(hass, asking_service.metric, "selflearn_dialogue_requests_total")
    await say(hass, entry, "turn off the kitchen lights")  # understood, not a command: no question
    assert light(hass) == "off"
    assert await call(hass, asking_service.metric, "selflearn_dialogue_requests_total") == asked

    # The name is offered as an alias; forgotten, the offer goes (approving it would add it back).
    def offers() -> list[str]:
        return [i for (d, i) in ir.async_get(hass).issues if d == DOMAIN and i.startswith(ISSUE_ALIAS)]

    assert len(offers()) == 1
    forgot = await say(hass, entry, "forget the big light")
    assert speech(forgot) == "OK, I've forgotten what big light means.", forgot.response.as_dict()
    await until(lambda: offers() == [])


async def test_the_command_shape_comes_later_when_the_service_was_not_up_at_start(
    hass: HomeAssistant, asking_service: Service
) -> None:
    """A service that starts after Home Assistant (an add-on at boot) has not said its command
    shape when the integration asks at setup, and the requests it answers since did not ask
    again: lessons went on reaching Home Assistant first until the next restart (found reading
    the code after a trial in 2026.11's Assist dialog). The flush, every minute, asks again."""
    entry = await ready(hass, asking_service.url)
    client = hass.data[DOMAIN][entry.entry_id]["client"]
    await until(lambda: client.command_shape is not None)
    client.command_shape = None  # as when /healthz found no service at setup
    works = await say(hass, entry, WORKS)
    assert works.response.response_type.value == "action_done" and client.consecutive_failures == 0
    assert not client.is_command("the big light is the kitchen lights")
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=FLUSH_INTERVAL_S + 1))
    await until(lambda: client.command_shape is not None)
    assert client.is_command("the big light is the kitchen lights")


async def test_the_service_killed_mid_question_fails_open(
    hass: HomeAssistant, tmp_path: Path, socket_enabled: None
) -> None:
    service = await call(hass, start_service, tmp_path, tmp_path, KILL_RULE)
    try:
        entry = await ready(hass, service.url)
        asked = await say(hass, entry, KILL)
        assert speech(asked) == QUESTION
        await call(hass, service.stop)
        alone = await conversation.async_converse(hass, "yes", None, Context(), language="en")
        answered = await say(hass, entry, "yes", asked.conversation_id)
        assert answered.response.as_dict() == alone.response.as_dict()  # Home Assistant's own answer
        assert light(hass) == "on"
        works = await say(hass, entry, WORKS)
        assert works.response.response_type.value == "action_done" and light(hass) == "off"
    finally:
        await call(hass, service.stop)


async def test_turns_made_while_the_service_is_down_arrive_later(
    hass: HomeAssistant, asking_service: Service, tmp_path: Path
) -> None:
    entry = await ready(hass, asking_service.url)
    agent = agent_of(hass, entry)
    port = int(asking_service.url.rsplit(":", 1)[1])
    await call(hass, asking_service.stop)
    for text in (WORKS, "turn on the kitchen lights", WORKS):
        assert (await say(hass, entry, text)).response.response_type.value == "action_done"
    await until(lambda: len(agent.turns.waiting) == 3)
    await until(lambda: ir.async_get(hass).async_get_issue(DOMAIN, ISSUE_UNREACHABLE) is not None)

    back = await call(
        hass, start_service, tmp_path, tmp_path, port=port, store=tmp_path / "selflearn.duckdb", make=False
    )
    try:
        await agent.turns.async_flush()  # what the hourly timer or the next call would do
        assert not agent.turns.waiting and agent.turns.sent == 3
        stored = await call(hass, back.metric, "selflearn_ingested_records_total", result="stored")
        assert stored == 3
    finally:
        await call(hass, back.stop)


@pytest.mark.parametrize("breakage", ["hostname", "resolver_raises"])
async def test_a_broken_resolver_fails_open(
    hass: HomeAssistant, asking_service: Service, breakage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await setup_home(hass)
    port = asking_service.url.rsplit(":", 1)[1]
    url = f"http://localhost:{port}" if breakage == "hostname" else asking_service.url
    entry = await add_entry(hass, url)
    client = hass.data[DOMAIN][entry.entry_id]["client"]
    if breakage == "resolver_raises":

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise TypeError("getaddrinfo() got an unexpected keyword argument")  # aiodns 3.2.0 today

        monkeypatch.setattr(client._session, "request", broken)
    alone = await conversation.async_converse(hass, KILL, None, Context(), language="en")
    result = await say(hass, entry, KILL)
    if client.consecutive_failures:  # the resolver failed: Home Assistant's own answer, no error
        assert result.response.as_dict() == alone.response.as_dict()
    else:  # this machine's resolver works: the dialogue asked
        assert speech(result) == QUESTION
    assert (await say(hass, entry, WORKS)).response.response_type.value == "action_done"


async def test_the_http_api_reaches_the_entity_by_its_id(
    hass: HomeAssistant, asking_service: Service, hass_client: Any
) -> None:
    entry = await ready(hass, asking_service.url)
    client = await hass_client()
    agent_id = agent_id_of(hass, entry)
    res = await client.post("/api/conversation/process", json={"text": KILL, "agent_id": agent_id})
    body = await res.json()
    assert res.status == 200 and body["response"]["speech"]["plain"]["speech"] == QUESTION, body
    res = await client.post(
        "/api/conversation/process",
        json={"text": "yes", "agent_id": agent_id, "conversation_id": body["conversation_id"]},
    )
    body = await res.json()
    assert body["response"]["response_type"] == "action_done", body
    assert light(hass) == "off"
    if hasattr(conversation, "ConversationEntity"):
        assert agent_id == "conversation.selflearn"


async def test_a_name_learned_from_a_retry_works_in_other_requests(
    hass: HomeAssistant, asking_service: Service
) -> None:
    """ "turn on the mothership" fails (Home Assistant knows no such device), "turn on the kitchen
    lights" works a moment later: the service learns what "mothership" means in this home, not
    only that phrase, so "turn off the mothership" works too."""
    entry = await ready(hass, asking_service.url)
    agent = agent_of(hass, entry)
    await hass.services.async_call(
        "input_boolean", "turn_off", {"entity_id": "input_boolean.kitchen_power"}, blocking=True
    )

    async def spoken(text: str) -> Any:  # from a satellite: a one-off failure is not asked about
        result = await conversation.async_converse(
            hass, text, None, Context(), language="en", agent_id=agent_id_of(hass, entry), device_id="sat1"
        )
        await hass.async_block_till_done()
        return result

    failed = await spoken("turn on the mothership")
    assert failed.response.error_code is not None and failed.response.error_code.value in FAILS
    assert (await spoken("turn on the kitchen lights")).response.response_type.value == "action_done"
    await until(lambda: agent.logged == 2)
    await hass.services.async_call(
        "input_boolean", "turn_on", {"entity_id": "input_boolean.kitchen_power"}, blocking=True
    )
    off = await spoken("turn off the mothership")  # never said before
    assert off.response.response_type.value == "action_done", off.response.as_dict()
    assert light(hass) == "off"


async def test_a_taught_phrasing_is_offered_as_sentences_for_assist(
    hass: HomeAssistant, asking_service: Service, tmp_path: Path
) -> None:
    """ "when I say lights out I mean turn off the kitchen lights": selflearn offers to write it as
    Home Assistant sentences; once the user submits, Assist understands "lights out" by itself."""
    hass.config.config_dir = str(tmp_path)  # the sentences file goes to this home's own folder
    (tmp_path / "configuration.yaml").write_text("")  # every home has one; reloads read it (2026.x)
    assert await async_setup_component(hass, "repairs", {})
    entry = await ready(hass, asking_service.url)
    taught = await say(hass, entry, "when i say lights out i mean turn off the kitchen lights")
    assert speech(taught).startswith("OK, lights out means turn off the kitchen lights"), (
        taught.response.as_dict()
    )
    issue_id = f"sentences_{entry.entry_id}"
    await until(lambda: ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None)
    alone = await conversation.async_converse(hass, "lights out", None, Context(), language="en")
    assert alone.response.error_code is not None  # not before the user says so
    assert not (tmp_path / "custom_sentences").exists()
    manager = repairs_flow_manager(hass)
    assert manager is not None
    flow = await manager.async_init(DOMAIN, data={"issue_id": issue_id})
    done = await manager.async_configure(flow["flow_id"], {})
    assert done["type"] == "create_entry", done
    written = (tmp_path / "custom_sentences" / "en" / "selflearn.yaml").read_text()
    assert "lights out" in written and "HassTurnOff" in written
    alone = await conversation.async_converse(hass, "lights out", None, Context(), language="en")
    assert alone.response.response_type.value == "action_done", alone.response.as_dict()
    assert light(hass) == "off"
