"""Simulated lights: on/off, brightness and colour as their device supports."""

from __future__ import annotations

from typing import Any

from homeassistant.components.light import (
    ATTR_BRIGHTNESS,
    ATTR_HS_COLOR,
    ATTR_RGB_COLOR,
    ColorMode,
    LightEntity,
)
from homeassistant.core import HomeAssistant

from .entity import SimEntity


class SimLight(SimEntity, LightEntity):
    def __init__(self, hass: HomeAssistant, spec: dict[str, Any]) -> None:
        super().__init__(hass, spec)
        features = set(spec.get("features") or ())
        mode = (
            ColorMode.HS
            if "color" in features
            else ColorMode.BRIGHTNESS
            if "brightness" in features
            else ColorMode.ONOFF
        )
        self._attr_supported_color_modes = {mode}
        self._attr_color_mode = mode
        self._attr_is_on = spec.get("state") == "on"
        self._attr_brightness = 255 if mode != ColorMode.ONOFF else None
        self._attr_hs_color = (0.0, 0.0) if mode == ColorMode.HS else None

    async def async_turn_on(self, **kwargs: Any) -> None:
        self._attr_is_on = True
        if ATTR_BRIGHTNESS in kwargs and self._attr_brightness is not None:
            self._attr_brightness = int(kwargs[ATTR_BRIGHTNESS])
        if ATTR_HS_COLOR in kwargs and self._attr_hs_color is not None:
            self._attr_hs_color = tuple(kwargs[ATTR_HS_COLOR])  # type: ignore[assignment]
        if ATTR_RGB_COLOR in kwargs and self._attr_hs_color is not None:
            self._attr_hs_color = (0.0, 100.0)
        self.changed()

    async def async_turn_off(self, **kwargs: Any) -> None:
        self._attr_is_on = False
        self.changed()


async def async_setup_platform(
    hass: HomeAssistant, config: Any, add: Any, discovery_info: Any = None
) -> None:
    add([SimLight(hass, spec) for spec in (discovery_info or {}).get("entities", [])])
