"""A simulated thermostat (heating, a target temperature)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.climate import ClimateEntity, ClimateEntityFeature, HVACMode
from homeassistant.const import ATTR_TEMPERATURE, UnitOfTemperature
from homeassistant.core import HomeAssistant

from .entity import SimEntity


class SimClimate(SimEntity, ClimateEntity):
    _attr_supported_features = (
        ClimateEntityFeature.TARGET_TEMPERATURE | ClimateEntityFeature.TURN_ON | ClimateEntityFeature.TURN_OFF
    )
    _attr_temperature_unit = UnitOfTemperature.CELSIUS
    # The simulator's thermostats take what its users ask for, 22 and 80 degrees alike (the
    # corpora say both); a real one in Celsius would refuse 80 as above its maximum.
    _attr_min_temp = 5.0
    _attr_max_temp = 95.0
    _attr_current_temperature = 21.0
    _attr_target_temperature = 21.0

    def __init__(self, hass: HomeAssistant, spec: dict[str, Any]) -> None:
        super().__init__(hass, spec)
        self._attr_hvac_modes = [HVACMode.HEAT, HVACMode.OFF]
        self._attr_hvac_mode = HVACMode.HEAT if spec.get("state", "heat") != "off" else HVACMode.OFF

    async def async_set_temperature(self, **kwargs: Any) -> None:
        if ATTR_TEMPERATURE in kwargs:
            self._attr_target_temperature = float(kwargs[ATTR_TEMPERATURE])
        self.changed()

    async def async_set_hvac_mode(self, hvac_mode: HVACMode) -> None:
        self._attr_hvac_mode = hvac_mode
        self.changed()

    async def async_turn_on(self) -> None:
        await self.async_set_hvac_mode(HVACMode.HEAT)

    async def async_turn_off(self) -> None:
        await self.async_set_hvac_mode(HVACMode.OFF)


async def async_setup_platform(
    hass: HomeAssistant, config: Any, add: Any, discovery_info: Any = None
) -> None:
    add([SimClimate(hass, spec) for spec in (discovery_info or {}).get("entities", [])])
