"""selflearn for Home Assistant: a conversation agent that fixes what Assist fails on.

It wraps Home Assistant's own conversation agent and talks to a ``selflearn serve`` running beside
Home Assistant (docs/home-assistant.md): on a request Assist could not match it asks for a rewrite
learned from how this home's (and, k-anonymously, other homes') users rephrased; it logs every
turn, so real usage feeds selflearn's mining and training; it keeps the home's configuration in
sync. Nothing heavy runs inside Home Assistant: this is an HTTP client, and it fails open.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_listen_entity_updates
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.event import async_call_later
from homeassistant.helpers.start import async_at_started

from .agent import SelflearnAgent
from .client import SelflearnClient
from .const import (
    CONF_ADMIN_TOKEN,
    CONF_HOUSEHOLD_ID,
    CONF_SALT,
    CONF_URL,
    DEFAULT_LOG_TURNS,
    DEFAULT_REWRITE,
    DEFAULT_TIMEOUT_MS,
    DOMAIN,
    OPT_AGENT_ID,
    OPT_LOG_TURNS,
    OPT_REWRITE,
    OPT_TIMEOUT_MS,
    SYNC_COOLDOWN_S,
)
from .home_sync import ASSISTANT, build_home

_LOGGER = logging.getLogger(__name__)

REGISTRY_EVENTS = (
    "area_registry_updated",
    "floor_registry_updated",
    "device_registry_updated",
    "entity_registry_updated",
)


class HomeSync:
    """Sends the home to the service at start and after registry changes (debounced)."""

    def __init__(self, hass: HomeAssistant, client: SelflearnClient, household_id: str) -> None:
        self.hass = hass
        self.client = client
        self.household_id = household_id
        self.synced = 0
        """Homes sent successfully since start."""
        self._cancel_timer: Any = None

    async def async_sync(self) -> bool:
        """Send the home now."""
        self._cancel_timer = None
        ok = await self.client.put_home(self.household_id, build_home(self.hass, self.household_id))
        if ok:
            self.synced += 1
        return ok

    @callback
    def schedule(self, _event: Event | None = None) -> None:
        """Sync after a quiet moment (many registry events come in bursts)."""
        if self._cancel_timer is not None:
            return

        @callback
        def _run(_now: Any) -> None:
            self.hass.async_create_background_task(self.async_sync(), name=f"{DOMAIN} home sync")

        self._cancel_timer = async_call_later(self.hass, SYNC_COOLDOWN_S, _run)

    @callback
    def cancel(self) -> None:
        if self._cancel_timer is not None:
            self._cancel_timer()
            self._cancel_timer = None


async def async_setup_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    """Register the agent and start keeping the home in sync."""
    if CONF_SALT not in entry.data or CONF_HOUSEHOLD_ID not in entry.data:
        hass.config_entries.async_update_entry(
            entry,
            data={
                CONF_HOUSEHOLD_ID: f"ha-{secrets.token_hex(6)}",
                CONF_SALT: secrets.token_hex(16),
                **entry.data,
            },
        )
    client = SelflearnClient(
        async_get_clientsession(hass), entry.data[CONF_URL], entry.data.get(CONF_ADMIN_TOKEN) or None
    )
    household_id = entry.data[CONF_HOUSEHOLD_ID]
    options = entry.options
    agent = SelflearnAgent(
        hass,
        client,
        household_id,
        entry.data[CONF_SALT],
        rewrite=options.get(OPT_REWRITE, DEFAULT_REWRITE),
        timeout_ms=int(options.get(OPT_TIMEOUT_MS, DEFAULT_TIMEOUT_MS)),
        log_turns=bool(options.get(OPT_LOG_TURNS, DEFAULT_LOG_TURNS)),
        agent_id=options.get(OPT_AGENT_ID) or conversation.HOME_ASSISTANT_AGENT,
    )
    sync = HomeSync(hass, client, household_id)
    hass.data.setdefault(DOMAIN, {})[entry.entry_id] = {"agent": agent, "sync": sync, "client": client}
    conversation.async_set_agent(hass, entry, agent)

    for event_type in REGISTRY_EVENTS:
        entry.async_on_unload(hass.bus.async_listen(event_type, sync.schedule))
    entry.async_on_unload(async_listen_entity_updates(hass, ASSISTANT, sync.schedule))
    entry.async_on_unload(sync.cancel)
    entry.async_on_unload(entry.add_update_listener(_async_reload))

    async def _first_sync(_hass: HomeAssistant) -> None:
        await sync.async_sync()

    entry.async_on_unload(async_at_started(hass, _first_sync))
    return True


async def _async_reload(hass: HomeAssistant, entry: ConfigEntry) -> None:
    await hass.config_entries.async_reload(entry.entry_id)


async def async_unload_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    """Unregister the agent."""
    conversation.async_unset_agent(hass, entry)
    hass.data.get(DOMAIN, {}).pop(entry.entry_id, None)
    return True
