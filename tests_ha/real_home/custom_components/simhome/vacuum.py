"""Simulated robot vacuums (start, return to the dock)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.vacuum import StateVacuumEntity, VacuumActivity, VacuumEntityFeature
from homeassistant.core import HomeAssistant

from .entity import SimEntity


class SimVacuum(SimEntity, StateVacuumEntity):
    _attr_supported_features = (
        VacuumEntityFeature.START | VacuumEntityFeature.RETURN_HOME | VacuumEntityFeature.STATE
    )

    def __init__(self, hass: HomeAssistant, spec: dict[str, Any]) -> None:
        super().__init__(hass, spec)
        self._activity = VacuumActivity.CLEANING if spec.get("state") == "cleaning" else VacuumActivity.DOCKED

    @property
    def activity(self) -> VacuumActivity:
        return self._activity

    async def async_start(self) -> None:
        self._activity = VacuumActivity.CLEANING
        self.changed()

    async def async_return_to_base(self, **kwargs: Any) -> None:
        self._activity = VacuumActivity.DOCKED
        self.changed()


async def async_setup_platform(
    hass: HomeAssistant, config: Any, add: Any, discovery_info: Any = None
) -> None:
    add([SimVacuum(hass, spec) for spec in (discovery_info or {}).get("entities", [])])
