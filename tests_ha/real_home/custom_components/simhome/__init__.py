"""The devices of a simulated household, as Home Assistant entities (for ``bench/real_home.py``).

A benchmark has no real lamps: this integration stands at that boundary. It creates one entity per
device of a selflearn home (lights, switches, fans, covers, locks, a thermostat, media players,
vacuums, and a weather entity), each keeping its state in memory and acting as Home Assistant's
own platforms do when an intent calls their services. Everything above them -- the intents, the
matcher, the conversation agents, selflearn's integration -- is Home Assistant's and selflearn's
real code. ``hass.data["simhome"]["available"]`` says which entities are offline right now.
"""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.discovery import async_load_platform
from homeassistant.helpers.typing import ConfigType

DOMAIN = "simhome"
PLATFORMS = ("light", "switch", "fan", "cover", "lock", "climate", "media_player", "vacuum", "weather")


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Create the entities listed in ``config["simhome"]["entities"]`` (``Home.to_dict`` shape)."""
    conf = config.get(DOMAIN, {})
    entities: list[dict[str, Any]] = list(conf.get("entities", []))
    hass.data[DOMAIN] = {"unavailable": set(), "entities": {}}
    for platform in PLATFORMS:
        mine = [e for e in entities if str(e["id"]).split(".")[0] == platform]
        if platform == "weather":
            mine = [{"id": "weather.home", "name": conf.get("location") or "Home"}]
        if mine:
            hass.async_create_task(
                async_load_platform(hass, platform, DOMAIN, {"entities": mine}, config), eager_start=True
            )
    return True
