"""Simulated covers: blinds, curtains and shades (with a position), garage doors."""

from __future__ import annotations

from typing import Any

from homeassistant.components.cover import ATTR_POSITION, CoverDeviceClass, CoverEntity, CoverEntityFeature
from homeassistant.core import HomeAssistant

from .entity import SimEntity


class SimCover(SimEntity, CoverEntity):
    def __init__(self, hass: HomeAssistant, spec: dict[str, Any]) -> None:
        super().__init__(hass, spec)
        features = CoverEntityFeature.OPEN | CoverEntityFeature.CLOSE
        if "position" in set(spec.get("features") or ()):
            features |= CoverEntityFeature.SET_POSITION
        self._attr_supported_features = features
        device_class = spec.get("device_class")
        self._attr_device_class = (
            CoverDeviceClass(device_class) if device_class in set(CoverDeviceClass) else None
        )
        self._attr_current_cover_position = 0 if spec.get("state") != "open" else 100

    @property
    def is_closed(self) -> bool:
        return (self._attr_current_cover_position or 0) == 0

    async def async_open_cover(self, **kwargs: Any) -> None:
        self._attr_current_cover_position = 100
        self.changed()

    async def async_close_cover(self, **kwargs: Any) -> None:
        self._attr_current_cover_position = 0
        self.changed()

    async def async_set_cover_position(self, **kwargs: Any) -> None:
        self._attr_current_cover_position = int(kwargs[ATTR_POSITION])
        self.changed()


async def async_setup_platform(
    hass: HomeAssistant, config: Any, add: Any, discovery_info: Any = None
) -> None:
    add([SimCover(hass, spec) for spec in (discovery_info or {}).get("entities", [])])
