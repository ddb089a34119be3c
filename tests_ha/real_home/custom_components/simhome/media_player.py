"""Simulated TVs and speakers: play, pause, next, previous, volume, mute, on and off."""

from __future__ import annotations

from typing import Any

from homeassistant.components.media_player import (
    MediaPlayerDeviceClass,
    MediaPlayerEntity,
    MediaPlayerEntityFeature,
    MediaPlayerState,
)
from homeassistant.core import HomeAssistant

from .entity import SimEntity

F = MediaPlayerEntityFeature


class SimMediaPlayer(SimEntity, MediaPlayerEntity):
    _attr_supported_features = (
        F.PAUSE
        | F.PLAY
        | F.NEXT_TRACK
        | F.PREVIOUS_TRACK
        | F.VOLUME_SET
        | F.VOLUME_MUTE
        | F.TURN_ON
        | F.TURN_OFF
    )

    def __init__(self, hass: HomeAssistant, spec: dict[str, Any]) -> None:
        super().__init__(hass, spec)
        self._attr_state = MediaPlayerState(spec.get("state", "off"))
        self._attr_volume_level = 0.3
        self._attr_is_volume_muted = False
        device_class = spec.get("device_class")
        self._attr_device_class = (
            MediaPlayerDeviceClass(device_class) if device_class in set(MediaPlayerDeviceClass) else None
        )

    def _set(self, state: MediaPlayerState) -> None:
        self._attr_state = state
        self.changed()

    async def async_media_pause(self) -> None:
        self._set(MediaPlayerState.PAUSED)

    async def async_media_play(self) -> None:
        self._set(MediaPlayerState.PLAYING)

    async def async_media_next_track(self) -> None:
        self.changed()

    async def async_media_previous_track(self) -> None:
        self.changed()

    async def async_set_volume_level(self, volume: float) -> None:
        self._attr_volume_level = volume
        self.changed()

    async def async_mute_volume(self, mute: bool) -> None:
        self._attr_is_volume_muted = mute
        self.changed()

    async def async_turn_on(self) -> None:
        self._set(MediaPlayerState.ON)

    async def async_turn_off(self) -> None:
        self._set(MediaPlayerState.OFF)


async def async_setup_platform(
    hass: HomeAssistant, config: Any, add: Any, discovery_info: Any = None
) -> None:
    add([SimMediaPlayer(hass, spec) for spec in (discovery_info or {}).get("entities", [])])
