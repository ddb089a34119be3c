"""Simulated locks (the front door, the back door)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.lock import LockEntity
from homeassistant.core import HomeAssistant

from .entity import SimEntity


class SimLock(SimEntity, LockEntity):
    def __init__(self, hass: HomeAssistant, spec: dict[str, Any]) -> None:
        super().__init__(hass, spec)
        self._attr_is_locked = spec.get("state", "locked") == "locked"

    async def async_lock(self, **kwargs: Any) -> None:
        self._attr_is_locked = True
        self.changed()

    async def async_unlock(self, **kwargs: Any) -> None:
        self._attr_is_locked = False
        self.changed()


async def async_setup_platform(
    hass: HomeAssistant, config: Any, add: Any, discovery_info: Any = None
) -> None:
    add([SimLock(hass, spec) for spec in (discovery_info or {}).get("entities", [])])
