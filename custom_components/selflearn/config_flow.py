"""Set-up: the selflearn service's URL (checked against ``/healthz``); options: how to use it."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import voluptuous as vol
from homeassistant import config_entries
from homeassistant.components import conversation
from homeassistant.core import callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .client import SelflearnClient

if TYPE_CHECKING:  # ConfigFlowResult is newer than the oldest core supported (2024.3)
    from homeassistant.config_entries import ConfigFlowResult
from .const import (
    CONF_ADMIN_TOKEN,
    CONF_HOUSEHOLD_ID,
    CONF_SALT,
    CONF_URL,
    DEFAULT_LOG_TURNS,
    DEFAULT_REWRITE,
    DEFAULT_TIMEOUT_MS,
    DEFAULT_URL,
    DOMAIN,
    OPT_AGENT_ID,
    OPT_LOG_TURNS,
    OPT_REWRITE,
    OPT_TIMEOUT_MS,
    REWRITE_BEFORE,
    REWRITE_BEHIND,
    REWRITE_OFF,
)


class SelflearnConfigFlow(config_entries.ConfigFlow, domain=DOMAIN):
    """Ask for the service's URL and check that it answers."""

    VERSION = 1

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            url = str(user_input[CONF_URL]).rstrip("/")
            token = user_input.get(CONF_ADMIN_TOKEN) or None
            await self.async_set_unique_id(url)
            self._abort_if_unique_id_configured()
            client = SelflearnClient(async_get_clientsession(self.hass), url, token)
            health = await client.health()
            if health is None:
                errors["base"] = "cannot_connect"
            else:
                return self.async_create_entry(
                    title=f"selflearn ({url})",
                    data={
                        CONF_URL: url,
                        CONF_ADMIN_TOKEN: token,
                        # Pseudonymous: the service never sees Home Assistant's own ids.
                        CONF_HOUSEHOLD_ID: f"ha-{secrets.token_hex(6)}",
                        CONF_SALT: secrets.token_hex(16),
                    },
                )
        schema = vol.Schema(
            {
                vol.Required(CONF_URL, default=DEFAULT_URL): str,
                vol.Optional(CONF_ADMIN_TOKEN, default=""): str,
            }
        )
        return self.async_show_form(step_id="user", data_schema=schema, errors=errors)

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: config_entries.ConfigEntry) -> SelflearnOptionsFlow:
        return SelflearnOptionsFlow(config_entry)


class SelflearnOptionsFlow(config_entries.OptionsFlow):
    """When to ask selflearn, its time budget, turn logging, the agent it wraps."""

    def __init__(self, entry: config_entries.ConfigEntry) -> None:
        self._entry = entry

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        if user_input is not None:
            return self.async_create_entry(title="", data=user_input)
        options = self._entry.options
        schema = vol.Schema(
            {
                vol.Required(OPT_REWRITE, default=options.get(OPT_REWRITE, DEFAULT_REWRITE)): vol.In(
                    [REWRITE_BEHIND, REWRITE_BEFORE, REWRITE_OFF]
                ),
                vol.Required(
                    OPT_TIMEOUT_MS, default=options.get(OPT_TIMEOUT_MS, DEFAULT_TIMEOUT_MS)
                ): vol.All(vol.Coerce(int), vol.Range(min=10, max=5000)),
                vol.Required(OPT_LOG_TURNS, default=options.get(OPT_LOG_TURNS, DEFAULT_LOG_TURNS)): bool,
                vol.Required(
                    OPT_AGENT_ID, default=options.get(OPT_AGENT_ID, conversation.HOME_ASSISTANT_AGENT)
                ): str,
            }
        )
        return self.async_show_form(step_id="init", data_schema=schema)
