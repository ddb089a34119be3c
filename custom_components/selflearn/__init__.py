"""selflearn for Home Assistant: a conversation agent that fixes what Assist fails on, asks before
acting on a guess, and can be taught.

It wraps Home Assistant's own conversation agent and talks to a ``selflearn serve`` running beside
Home Assistant (docs/home-assistant.md): on a request Assist could not match it hands the
utterance to the service's dialogue, which rewrites it, asks "Did you mean ...?", asks to be
taught, or leaves it; it logs every turn (buffered while the service is away), so real usage feeds
selflearn's learning; it keeps the home's configuration in sync; it offers what the household
taught back to Home Assistant as aliases. Nothing heavy runs inside Home Assistant: this is an
HTTP client, and it fails open.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Any

from homeassistant.components import conversation as ha_conversation
from homeassistant.components.homeassistant.exposed_entities import async_listen_entity_updates
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.event import async_call_later, async_track_time_interval
from homeassistant.helpers.start import async_at_started

from .agent import Selflearn, SelflearnAgent
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
    FLUSH_INTERVAL_S,
    OFFER_INTERVAL_S,
    OPT_AGENT_ID,
    OPT_LOG_TURNS,
    OPT_REWRITE,
    OPT_TIMEOUT_MS,
    SYNC_COOLDOWN_S,
)
from .home_sync import ASSISTANT, build_home
from .repairs import async_offer_sentences, async_offer_taught
from .turn_log import TurnLog

_LOGGER = logging.getLogger(__name__)

REGISTRY_EVENTS = (
    "area_registry_updated",
    "floor_registry_updated",
    "device_registry_updated",
    "entity_registry_updated",
)

HAS_ENTITY = hasattr(ha_conversation, "ConversationEntity")
"""Whether this core has conversation entities (2024.6+): then selflearn is the entity
``conversation.selflearn``; otherwise a config-entry agent."""


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
    """Register the agent, start keeping the home in sync and sending the logged turns."""
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
    turns = TurnLog(hass, client, entry.entry_id)
    await turns.async_load()
    logic = Selflearn(
        hass,
        client,
        turns,
        household_id,
        entry.data[CONF_SALT],
        rewrite=options.get(OPT_REWRITE, DEFAULT_REWRITE),
        timeout_ms=int(options.get(OPT_TIMEOUT_MS, DEFAULT_TIMEOUT_MS)),
        log_turns=bool(options.get(OPT_LOG_TURNS, DEFAULT_LOG_TURNS)),
        agent_id=options.get(OPT_AGENT_ID) or ha_conversation.HOME_ASSISTANT_AGENT,
        entry_id=entry.entry_id,
    )
    # the service's command shape (what its dialogue hears before Home Assistant), not waited for
    hass.async_create_background_task(client.health(), name=f"{DOMAIN} health")
    sync = HomeSync(hass, client, household_id)
    hass.data.setdefault(DOMAIN, {})[entry.entry_id] = {
        "agent": logic,
        "sync": sync,
        "client": client,
        "turns": turns,
    }
    if HAS_ENTITY:
        await hass.config_entries.async_forward_entry_setups(entry, ["conversation"])
    else:
        ha_conversation.async_set_agent(hass, entry, SelflearnAgent(logic))

    for event_type in REGISTRY_EVENTS:
        entry.async_on_unload(hass.bus.async_listen(event_type, sync.schedule))
    entry.async_on_unload(async_listen_entity_updates(hass, ASSISTANT, sync.schedule))
    entry.async_on_unload(sync.cancel)
    entry.async_on_unload(entry.add_update_listener(_async_reload))

    async def _flush(_now: Any = None) -> None:
        """Send the turns that wait; when the service was unreachable, see whether it is back
        (and withdraw the repair issue if so); when it never said its command shape (it was not
        up yet when Home Assistant started, and answered the requests since), ask for it."""
        if client.consecutive_failures and not turns.waiting:
            if client.last_status in (401, 403):  # /healthz answers anyone: is the token taken now?
                if (await client.token_status()) not in (None, 401, 403):
                    await client.health()
            else:
                await client.health()
        elif client.command_shape is None:
            await client.health()
        if turns.waiting:
            await turns.async_flush()
        logic.update_repair_issue()

    async def _offer(_now: Any = None) -> None:
        await async_offer_taught(hass, entry.entry_id, client, household_id)
        await async_offer_sentences(hass, entry.entry_id, client, household_id)

    entry.async_on_unload(async_track_time_interval(hass, _flush, timedelta(seconds=FLUSH_INTERVAL_S)))
    entry.async_on_unload(async_track_time_interval(hass, _offer, timedelta(seconds=OFFER_INTERVAL_S)))

    async def _save(_event: Event) -> None:
        await turns.async_save()

    entry.async_on_unload(hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _save))

    async def _first_sync(_hass: HomeAssistant) -> None:
        await sync.async_sync()
        await _flush()
        await _offer()

    entry.async_on_unload(async_at_started(hass, _first_sync))
    return True


async def _async_reload(hass: HomeAssistant, entry: ConfigEntry) -> None:
    await hass.config_entries.async_reload(entry.entry_id)


async def async_unload_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    """Unregister the agent; keep the turns that wait for the next start."""
    if HAS_ENTITY:
        unloaded = await hass.config_entries.async_unload_platforms(entry, ["conversation"])
    else:
        ha_conversation.async_unset_agent(hass, entry)
        unloaded = True
    data = hass.data.get(DOMAIN, {}).pop(entry.entry_id, None)
    if data is not None:
        await data["turns"].async_save()
    return bool(unloaded)
