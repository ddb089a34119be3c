"""Issue 53, finding 8: the integration's forms in a real Home Assistant core, against a real
``selflearn serve`` started with an admin token.

A wrong token is refused in the config flow, in *Reconfigure* and in the options with a clear
message (checked against the service: ``/healthz`` answers anyone); a token can be cleared; a
token the service refuses later gets a repair of its own, not "not answering"; the conversation
entity declares that it controls the home; the options' choices show their labels.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from custom_components.selflearn.const import DOMAIN, ISSUE_AUTH, ISSUE_UNREACHABLE
from homeassistant import config_entries
from homeassistant.components import conversation
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .conftest import KILL_RULE, Service, start_service
from .test_integration import FAILS, KILL, WORKS, ask, light, setup_home, until

TOKEN = "forms-test-token"
HAS_RECONFIGURE = hasattr(config_entries, "SOURCE_RECONFIGURE")  # 2024.11+ (not 2024.3)
TRANSLATIONS = Path(__file__).resolve().parents[1] / "custom_components" / "selflearn" / "translations"


@pytest.fixture
def guarded(tmp_path: Path, socket_enabled: None) -> Iterator[Service]:
    """The usual rule, served with an admin token (``--confirm off``)."""
    svc = start_service(tmp_path, tmp_path, KILL_RULE, confirm="off", admin_token=TOKEN)
    yield svc
    svc.stop()


def _entry(hass: HomeAssistant, url: str, token: str | None) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=url,
        data={"url": url, "admin_token": token, "household_id": "ha-forms", "salt": "forms-salt"},
    )
    entry.add_to_hass(hass)
    return entry


async def _reconfigure(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    flow: dict[str, Any] = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": "reconfigure", "entry_id": entry.entry_id}
    )
    assert flow["type"] == FlowResultType.FORM and flow["step_id"] == "reconfigure"
    return flow


def _message(error: str) -> str:
    return str(json.loads((TRANSLATIONS / "en.json").read_text())["config"]["error"][error])


async def test_a_wrong_or_missing_token_is_refused_in_the_config_flow(
    hass: HomeAssistant, guarded: Service
) -> None:
    await setup_home(hass)
    flow = await hass.config_entries.flow.async_init(DOMAIN, context={"source": "user"})
    wrong = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {"url": guarded.url, "admin_token": "not-the-token"}
    )
    assert wrong["type"] == FlowResultType.FORM and wrong["errors"] == {"base": "invalid_auth"}
    assert "refused this admin token" in _message("invalid_auth")
    missing = await hass.config_entries.flow.async_configure(flow["flow_id"], {"url": guarded.url})
    assert missing["errors"] == {"base": "auth_required"}
    assert "needs its admin token" in _message("auth_required")
    assert hass.config_entries.async_entries(DOMAIN) == []
    right = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {"url": guarded.url, "admin_token": f" {TOKEN} "}
    )
    assert right["type"] == FlowResultType.CREATE_ENTRY and right["data"]["admin_token"] == TOKEN
    await hass.async_block_till_done()
    (entry,) = hass.config_entries.async_entries(DOMAIN)
    assert (await ask(hass, entry, KILL)).response_type.value == "action_done"  # the token works
    assert light(hass) == "off"


@pytest.mark.skipif(not HAS_RECONFIGURE, reason="Reconfigure arrived in Home Assistant 2024.11")
async def test_reconfigure_refuses_a_wrong_token_and_keeps_the_right_one(
    hass: HomeAssistant, guarded: Service
) -> None:
    """Issue 53 (8): a wrong token was accepted ("The selflearn service was changed"), then
    every call got 401 behind a repair titled "not answering"."""
    await setup_home(hass)
    entry = _entry(hass, guarded.url, TOKEN)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    flow = await _reconfigure(hass, entry)
    wrong = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {"url": guarded.url, "admin_token": "a-typo"}
    )
    assert wrong["type"] == FlowResultType.FORM and wrong["errors"] == {"base": "invalid_auth"}
    assert entry.data["admin_token"] == TOKEN  # nothing changed
    cleared = await hass.config_entries.flow.async_configure(flow["flow_id"], {"url": guarded.url})
    assert cleared["errors"] == {"base": "auth_required"} and entry.data["admin_token"] == TOKEN
    done = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {"url": guarded.url, "admin_token": TOKEN}
    )
    assert done["type"] == FlowResultType.ABORT and done["reason"] == "reconfigure_successful"
    assert entry.data["admin_token"] == TOKEN and entry.data["household_id"] == "ha-forms"


async def test_the_options_refuse_a_wrong_token(hass: HomeAssistant, guarded: Service) -> None:
    await setup_home(hass)
    entry = _entry(hass, guarded.url, TOKEN)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    options = await hass.config_entries.options.async_init(entry.entry_id)
    chosen = {
        "rewrite": "behind",
        "timeout_ms": 250,
        "log_turns": True,
        "agent_id": conversation.HOME_ASSISTANT_AGENT,
    }
    wrong = await hass.config_entries.options.async_configure(
        options["flow_id"], {"url": guarded.url, "admin_token": "a-typo", **chosen}
    )
    assert wrong["type"] == FlowResultType.FORM and wrong["errors"] == {"base": "invalid_auth"}
    assert entry.data["admin_token"] == TOKEN


async def test_a_token_can_be_cleared(hass: HomeAssistant, service: Service) -> None:
    """Issue 53 (8): the token field had the old token as its default, so emptying it (the
    frontend then sends no value) brought it back: a token could not be cleared once set."""
    await setup_home(hass)
    entry = _entry(hass, service.url, "an-old-token")  # a service that has no token takes any
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    options = await hass.config_entries.options.async_init(entry.entry_id)
    field = next(k for k in options["data_schema"].schema if str(k) == "admin_token")
    assert field.description == {"suggested_value": "an-old-token"}  # shown, not a default
    chosen = {
        "rewrite": "behind",
        "timeout_ms": 250,
        "log_turns": True,
        "agent_id": conversation.HOME_ASSISTANT_AGENT,
    }
    done = await hass.config_entries.options.async_configure(
        options["flow_id"], {"url": service.url, **chosen}
    )
    assert done["type"] == FlowResultType.CREATE_ENTRY, done
    await hass.async_block_till_done()
    assert entry.data["admin_token"] is None
    assert "admin_token" not in entry.options and entry.options["rewrite"] == "behind"
    if HAS_RECONFIGURE:
        hass.config_entries.async_update_entry(entry, data={**entry.data, "admin_token": "set-again"})
        await hass.async_block_till_done()
        flow = await _reconfigure(hass, entry)
        done = await hass.config_entries.flow.async_configure(flow["flow_id"], {"url": service.url})
        assert done["type"] == FlowResultType.ABORT and done["reason"] == "reconfigure_successful"
        assert entry.data["admin_token"] is None
    assert (await ask(hass, entry, KILL)).response_type.value == "action_done"


async def test_a_refused_token_has_its_own_repair(hass: HomeAssistant, guarded: Service) -> None:
    """401/403 is not a service that is away: a repair that says the token is refused, at once."""
    await setup_home(hass)
    entry = _entry(hass, guarded.url, "a-typo")  # as an older version let it be saved
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    response = await ask(hass, entry, KILL)  # fails open: Home Assistant's own answer
    assert response.error_code is not None and response.error_code.value in FAILS
    issues = ir.async_get(hass)
    await until(lambda: issues.async_get_issue(DOMAIN, ISSUE_AUTH) is not None)
    issue = issues.async_get_issue(DOMAIN, ISSUE_AUTH)
    assert issue is not None and issue.translation_key == ISSUE_AUTH
    assert issue.translation_placeholders is not None and issue.translation_placeholders["status"] == "401"
    assert issues.async_get_issue(DOMAIN, ISSUE_UNREACHABLE) is None
    title = json.loads((TRANSLATIONS / "en.json").read_text())["issues"][ISSUE_AUTH]["title"]
    assert "refuses" in title and "not answering" not in title
    assert (await ask(hass, entry, WORKS)).response_type.value == "action_done"  # Assist still works
    # The right token: the next call is answered and the repair is withdrawn.
    hass.config_entries.async_update_entry(entry, data={**entry.data, "admin_token": TOKEN})
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert (await ask(hass, entry, "turn on the lights in the kitchen")).response_type.value == "action_done"
    assert (await ask(hass, entry, KILL)).response_type.value == "action_done"
    await until(lambda: issues.async_get_issue(DOMAIN, ISSUE_AUTH) is None)


async def test_the_entity_declares_that_it_controls_the_home(hass: HomeAssistant, service: Service) -> None:
    """Issue 53 (8): the Assist dialog said "This assistant cannot control your home." -- the
    frontend reads the entity's supported features."""
    feature = getattr(conversation, "ConversationEntityFeature", None)
    if feature is None:
        pytest.skip("this core's conversation agents have no supported features")
    await setup_home(hass)
    entry = _entry(hass, service.url, None)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    state = hass.states.get("conversation.selflearn")
    assert state is not None
    assert state.attributes["supported_features"] & feature.CONTROL


async def test_the_options_choices_show_labels(hass: HomeAssistant, service: Service) -> None:
    """Issue 53 (8): the radio buttons showed raw ``behind``/``before``/``off``."""
    from homeassistant.helpers import config_validation as cv

    try:  # how the core serializes a form for the frontend (2026.x: probatio)
        from probatio import to_field_list as serialize  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from voluptuous_serialize import convert as serialize
    from homeassistant.helpers.translation import async_get_translations

    await setup_home(hass)
    entry = _entry(hass, service.url, None)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    options = await hass.config_entries.options.async_init(entry.entry_id)
    # what the frontend gets: a list selector with a translation key ...
    fields = {f["name"]: f for f in serialize(options["data_schema"], custom_serializer=cv.custom_serializer)}
    select = fields["rewrite"]["selector"]["select"]
    assert select["options"] == ["behind", "before", "off"] and select["mode"] == "list"
    assert select["translation_key"] == "rewrite"
    assert fields["admin_token"]["selector"]["text"]["type"] == "password"
    # ... and the labels it looks up with it
    labels = await async_get_translations(hass, "en", "selector", [DOMAIN])
    for value, words in (("behind", "Behind Assist"), ("before", "Before Assist"), ("off", "Off")):
        label = labels.get(f"component.{DOMAIN}.selector.rewrite.options.{value}", "")
        assert label.startswith(words), (value, label)


async def test_an_older_entry_without_a_token_key_still_loads(hass: HomeAssistant, service: Service) -> None:
    await setup_home(hass)
    entry = MockConfigEntry(domain=DOMAIN, data={"url": service.url, "household_id": "ha-old", "salt": "s"})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert (await ask(hass, entry, KILL)).response_type.value == "action_done"


async def test_every_repair_title_reaches_the_frontend(hass: HomeAssistant, service: Service) -> None:
    """Home Assistant 2026.11 drops a string it cannot parse: the sentences offer, titled with a
    plural rule, showed in Repairs as "selflearn: sentences". Every issue's title and text must
    come through the core's own translation loading."""
    from homeassistant.helpers.translation import async_get_translations

    await setup_home(hass)
    entry = _entry(hass, service.url, None)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    loaded = await async_get_translations(hass, "en", "issues", [DOMAIN])
    written = json.loads((TRANSLATIONS / "en.json").read_text(encoding="utf-8"))["issues"]
    assert written
    for issue, strings in written.items():
        key = f"component.{DOMAIN}.issues.{issue}.title"
        assert loaded.get(key) == strings["title"], (key, loaded.get(key))
