"""The home's configuration as selflearn reads it (``PUT /v1/homes``), from Home Assistant's registries.

Floors, areas and the entities exposed to Assist, with their names and voice aliases: what Home
Assistant's own matcher knows. selflearn delexicalizes requests with it ("kitchen" becomes
``{area}``), so what it learned in one home applies in another, and its personal layer can tell
which configured name a household word means. The home goes only to the selflearn service the
user configured; the service never pools it with other homes (docs/service.md, privacy).
"""

from __future__ import annotations

from typing import Any

from homeassistant.components.homeassistant.exposed_entities import async_should_expose
from homeassistant.core import HomeAssistant
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er

ASSISTANT = "conversation"
"""Home Assistant's name for Assist in the exposed-entities settings."""


def _floors(hass: HomeAssistant) -> list[dict[str, Any]]:
    try:
        from homeassistant.helpers import floor_registry as fr
    except ImportError:  # cores before floors existed
        return []
    return [
        {"id": floor.floor_id, "name": floor.name, "aliases": sorted(floor.aliases)}
        for floor in fr.async_get(hass).async_list_floors()
    ]


def build_home(hass: HomeAssistant, household_id: str) -> dict[str, Any]:
    """The home of ``household_id`` in the shape of selflearn's ``Home.to_dict``."""
    areas = ar.async_get(hass)
    devices = dr.async_get(hass)
    entities = er.async_get(hass)
    floors = _floors(hass)
    floor_ids = {f["id"] for f in floors}
    out_areas = [
        {
            "id": area.id,
            "name": area.name,
            "floor": getattr(area, "floor_id", None)
            if getattr(area, "floor_id", None) in floor_ids
            else None,
            "aliases": sorted(area.aliases),
        }
        for area in areas.async_list_areas()
    ]
    area_ids = {a["id"] for a in out_areas}
    out_entities = []
    for state in hass.states.async_all():
        entity_id = state.entity_id
        if not async_should_expose(hass, ASSISTANT, entity_id):
            continue
        entry = entities.async_get(entity_id)
        area_id = None
        aliases: list[str] = []
        if entry is not None:
            # 2026.x lists the entity's own name among its aliases as a marker, not a string: the
            # name is sent as ``name``
            aliases = sorted(a for a in entry.aliases if isinstance(a, str) and a)
            area_id = entry.area_id
            if area_id is None and entry.device_id is not None:
                device = devices.async_get(entry.device_id)
                area_id = device.area_id if device is not None else None
        out_entities.append(
            {
                "id": entity_id,
                "name": state.name,
                "area": area_id if area_id in area_ids else None,
                "aliases": aliases,
                "device_class": state.attributes.get("device_class"),
                "state": state.state,
            }
        )
    return {
        "home_id": household_id,
        "timezone": str(hass.config.time_zone),
        "location": hass.config.location_name,
        "floors": floors,
        "areas": out_areas,
        "entities": out_entities,
    }


def area_name_of_device(hass: HomeAssistant, device_id: str | None) -> str | None:
    """The name of the area the device (a voice satellite) is in, if any."""
    if device_id is None:
        return None
    device = dr.async_get(hass).async_get(device_id)
    if device is None or device.area_id is None:
        return None
    area = ar.async_get(hass).async_get_area(device.area_id)
    return area.name if area is not None else None
