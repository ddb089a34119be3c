"""Simulated switches (a coffee maker, a kettle)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity
from homeassistant.core import HomeAssistant

from .entity import SimEntity


class SimSwitch(SimEntity, SwitchEntity):
    def __init__(self, hass: HomeAssistant, spec: dict[str, Any]) -> None:
        super().__init__(hass, spec)
        self._attr_is_on = spec.get("state") == "on"

    async def async_turn_on(self, **kwargs: Any) -> None:
        self._attr_is_on = True
        self.changed()

    async def async_turn_off(self, **kwargs: Any) -> None:
        self._attr_is_on = False
        self.changed()


async def async_setup_platform(
    hass: HomeAssistant, config: Any, add: Any, discovery_info: Any = None
) -> None:
    add([SimSwitch(hass, spec) for spec in (discovery_info or {}).get("entities", [])])
