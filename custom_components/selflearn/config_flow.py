"""Set-up: the selflearn service's URL (checked against ``/healthz``); options: how to use it.

The URL and the admin token can be changed later without losing the household: *Reconfigure*
(Home Assistant 2024.11+) or the options form (every core) keep the household id and salt, so
what the service learned about this home stays this home's.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from homeassistant import config_entries
from homeassistant.components import conversation
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)

from .client import SelflearnClient
from .compat import vol

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

_RESOLVER_FAILED = (
    "TypeError",
    "getaddrinfo",
    "DNS",
    "name resolution",
    "Name or service not known",
    "nodename nor servname",
)
"""What the client's error says when the host name could not be looked up (Home Assistant
2025.4's ``aiodns`` raises ``TypeError`` for every name with today's ``pycares``)."""


async def check_service(hass: HomeAssistant, url: str, token: str | None) -> str | None:
    """``None`` when a selflearn service answers ``/healthz`` at ``url`` and takes ``token`` (or
    needs none); otherwise the error key of the form (``cannot_connect``, ``host_not_resolved``,
    ``invalid_url``, ``invalid_auth``: it refuses the token, ``auth_required``: it needs one)."""
    if not url.startswith(("http://", "https://")):
        return "invalid_url"
    client = SelflearnClient(async_get_clientsession(hass), url, token)
    if await client.health() is None:
        host = urlsplit(url).hostname or ""
        named = bool(host) and not host.replace(".", "").isdigit() and ":" not in host
        if named and any(word in (client.last_error or "") for word in _RESOLVER_FAILED):
            return "host_not_resolved"
        return "cannot_connect"
    # /healthz answers anyone: ask an endpoint that needs the token when the service has one.
    status = await client.token_status()
    if status in (401, 403):
        return "invalid_auth" if token else "auth_required"
    if status is None:
        return "cannot_connect"
    return None


def _token(user_input: dict[str, Any]) -> str | None:
    """The admin token of a submitted form (``None``: none; a cleared field sends no key)."""
    return str(user_input.get(CONF_ADMIN_TOKEN) or "").strip() or None


def token_field(token: str | None) -> dict[Any, Any]:
    """The form's admin token field: a password box showing the current token as a suggestion,
    not a default, so that emptying it clears the token (a default would come back)."""
    key = vol.Optional(CONF_ADMIN_TOKEN, description={"suggested_value": token or ""})
    return {key: TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))}


def _connection_schema(url: str, token: str | None) -> vol.Schema:
    return vol.Schema({vol.Required(CONF_URL, default=url): str, **token_field(token)})


class SelflearnConfigFlow(config_entries.ConfigFlow, domain=DOMAIN):
    """Ask for the service's URL and check that it answers."""

    VERSION = 1

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            url = str(user_input[CONF_URL]).strip().rstrip("/")
            token = _token(user_input)
            await self.async_set_unique_id(url)
            self._abort_if_unique_id_configured()
            error = await check_service(self.hass, url, token)
            if error is not None:
                errors["base"] = error
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
        defaults = user_input or {}
        schema = _connection_schema(str(defaults.get(CONF_URL, DEFAULT_URL)), _token(defaults))
        return self.async_show_form(step_id="user", data_schema=schema, errors=errors)

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Change the URL or the token; the household id and salt stay (2024.11+)."""
        entry = self.hass.config_entries.async_get_entry(self.context.get("entry_id", ""))
        if entry is None:
            return self.async_abort(reason="reconfigure_failed")
        errors: dict[str, str] = {}
        if user_input is not None:
            url = str(user_input[CONF_URL]).strip().rstrip("/")
            token = _token(user_input)
            error = await check_service(self.hass, url, token)
            if error is not None:
                errors["base"] = error
            else:
                self.hass.config_entries.async_update_entry(
                    entry,
                    title=f"selflearn ({url})",
                    unique_id=url,
                    data={**entry.data, CONF_URL: url, CONF_ADMIN_TOKEN: token},
                )
                await self.hass.config_entries.async_reload(entry.entry_id)
                return self.async_abort(reason="reconfigure_successful")
        schema = _connection_schema(
            str(entry.data.get(CONF_URL, DEFAULT_URL)), entry.data.get(CONF_ADMIN_TOKEN)
        )
        return self.async_show_form(step_id="reconfigure", data_schema=schema, errors=errors)

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: config_entries.ConfigEntry) -> SelflearnOptionsFlow:
        return SelflearnOptionsFlow(config_entry)


class SelflearnOptionsFlow(config_entries.OptionsFlow):
    """The service's URL and token (the household stays), when to ask selflearn, its time
    budget, turn logging, the agent it wraps."""

    def __init__(self, entry: config_entries.ConfigEntry) -> None:
        self._entry = entry

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        entry = self._entry
        errors: dict[str, str] = {}
        if user_input is not None:
            url = str(user_input.pop(CONF_URL, entry.data[CONF_URL])).strip().rstrip("/")
            token = _token(user_input)
            user_input.pop(CONF_ADMIN_TOKEN, None)
            if url != entry.data[CONF_URL] or token != (entry.data.get(CONF_ADMIN_TOKEN) or None):
                error = await check_service(self.hass, url, token)
                if error is not None:
                    errors["base"] = error
                else:
                    self.hass.config_entries.async_update_entry(
                        entry,
                        title=f"selflearn ({url})",
                        data={**entry.data, CONF_URL: url, CONF_ADMIN_TOKEN: token},
                    )
            if not errors:
                return self.async_create_entry(title="", data=user_input)
        options = entry.options
        schema = vol.Schema(
            {
                vol.Required(CONF_URL, default=entry.data.get(CONF_URL, DEFAULT_URL)): str,
                **token_field(entry.data.get(CONF_ADMIN_TOKEN)),
                vol.Required(OPT_REWRITE, default=options.get(OPT_REWRITE, DEFAULT_REWRITE)): SelectSelector(
                    SelectSelectorConfig(
                        options=[REWRITE_BEHIND, REWRITE_BEFORE, REWRITE_OFF],
                        mode=SelectSelectorMode.LIST,
                        translation_key=OPT_REWRITE,
                    )
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
        return self.async_show_form(step_id="init", data_schema=schema, errors=errors)
