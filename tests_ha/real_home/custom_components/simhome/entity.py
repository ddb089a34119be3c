"""What every simulated device shares: its id and name as configured, and whether it is offline."""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity

DOMAIN = "simhome"


class SimEntity(Entity):
    """One device of the simulated home."""

    _attr_should_poll = False
    _attr_has_entity_name = False

    def __init__(self, hass: HomeAssistant, spec: dict[str, Any]) -> None:
        self.hass = hass
        self.entity_id = str(spec["id"])
        self._attr_unique_id = str(spec["id"])
        self._attr_name = str(spec["name"])
        self.spec = spec
        hass.data[DOMAIN]["entities"][self.entity_id] = self

    @property
    def available(self) -> bool:
        return self.entity_id not in self.hass.data[DOMAIN]["unavailable"]

    def changed(self) -> None:
        self.async_write_ha_state()
