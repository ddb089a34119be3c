"""The weather where the simulated home is (18 degrees, partly cloudy)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.weather import WeatherEntity
from homeassistant.const import UnitOfTemperature
from homeassistant.core import HomeAssistant

from .entity import SimEntity


class SimWeather(SimEntity, WeatherEntity):
    _attr_native_temperature = 18.0
    _attr_native_temperature_unit = UnitOfTemperature.CELSIUS
    _attr_condition = "partlycloudy"


async def async_setup_platform(
    hass: HomeAssistant, config: Any, add: Any, discovery_info: Any = None
) -> None:
    add([SimWeather(hass, spec) for spec in (discovery_info or {}).get("entities", [])])
