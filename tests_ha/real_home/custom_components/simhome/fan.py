"""Simulated fans (on and off)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.fan import FanEntity, FanEntityFeature
from homeassistant.core import HomeAssistant

from .entity import SimEntity


class SimFan(SimEntity, FanEntity):
    _attr_supported_features = (
        FanEntityFeature.TURN_ON | FanEntityFeature.TURN_OFF | FanEntityFeature.SET_SPEED
    )

    def __init__(self, hass: HomeAssistant, spec: dict[str, Any]) -> None:
        super().__init__(hass, spec)
        self._attr_is_on = spec.get("state") == "on"
        self._attr_percentage = 100 if self._attr_is_on else 0

    @property
    def is_on(self) -> bool:
        return bool(self._attr_is_on)

    async def async_turn_on(
        self, percentage: int | None = None, preset_mode: str | None = None, **kwargs: Any
    ) -> None:
        self._attr_is_on = True
        self._attr_percentage = percentage if percentage is not None else 100
        self.changed()

    async def async_turn_off(self, **kwargs: Any) -> None:
        self._attr_is_on = False
        self._attr_percentage = 0
        self.changed()

    async def async_set_percentage(self, percentage: int) -> None:
        self._attr_percentage = percentage
        self._attr_is_on = percentage > 0
        self.changed()


async def async_setup_platform(
    hass: HomeAssistant, config: Any, add: Any, discovery_info: Any = None
) -> None:
    add([SimFan(hass, spec) for spec in (discovery_info or {}).get("entities", [])])
