"""The home an assistant serves: floors, areas and entities with their names and aliases.

This is the configuration Home Assistant's conversation agent sees (what the user set up in its
UI). Household nicknames that nobody configured are *not* here -- they live with the simulated
users -- which is exactly why they fail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import yaml

from selflearn.core.errors import ConfigError

DOMAINS = (
    "light",
    "switch",
    "fan",
    "cover",
    "climate",
    "media_player",
    "vacuum",
    "lock",
    "sensor",
    "binary_sensor",
    "todo",
    "weather",
    "scene",
    "script",
    "valve",
    "lawn_mower",
)


@dataclass(frozen=True)
class Floor:
    """A floor of the home."""

    floor_id: str
    """Stable id (``upstairs``)."""
    name: str
    """Configured name (``Upstairs``)."""
    aliases: tuple[str, ...] = ()
    """Other configured names."""


@dataclass(frozen=True)
class Area:
    """An area (room) of the home."""

    area_id: str
    """Stable id (``living_room``)."""
    name: str
    """Configured name (``Living Room``)."""
    floor_id: str | None = None
    """Floor the area is on."""
    aliases: tuple[str, ...] = ()
    """Other configured names (``lounge``)."""


@dataclass(frozen=True)
class Entity:
    """A device or helper Home Assistant exposes to voice."""

    entity_id: str
    """``domain.object_id``, e.g. ``light.living_room_ceiling``."""
    name: str
    """Configured friendly name (``Living Room Ceiling``)."""
    area_id: str | None = None
    """Area the entity is in."""
    aliases: tuple[str, ...] = ()
    """Configured voice aliases."""
    device_class: str | None = None
    """Home Assistant device class (``garage``, ``blind``, ``tv``, ``temperature``...)."""
    features: frozenset[str] = frozenset()
    """What it can do beyond on/off: ``brightness``, ``color``, ``position``, ``volume``..."""
    initial_state: str = "off"
    """State when the simulation starts."""

    @property
    def domain(self) -> str:
        """The part of the entity id before the dot."""
        return self.entity_id.split(".", 1)[0]

    @property
    def spoken_names(self) -> tuple[str, ...]:
        """The configured name followed by its aliases."""
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class Home:
    """Floors, areas and entities of one home, as configured in the assistant."""

    home_id: str
    """Id of the home (the household id in simulations)."""
    floors: tuple[Floor, ...] = ()
    """Floors."""
    areas: tuple[Area, ...] = ()
    """Areas."""
    entities: tuple[Entity, ...] = ()
    """Entities exposed to the assistant."""
    timezone: str = "UTC"
    """Home's timezone, for time answers."""
    location: str = "home"
    """Name of the home's town for weather answers."""

    def __post_init__(self) -> None:
        area_ids = {a.area_id for a in self.areas}
        floor_ids = {f.floor_id for f in self.floors}
        for area in self.areas:
            if area.floor_id is not None and area.floor_id not in floor_ids:
                raise ConfigError(
                    f"home {self.home_id}: area {area.area_id!r} is on unknown floor {area.floor_id!r}"
                )
        seen: set[str] = set()
        for ent in self.entities:
            if ent.entity_id in seen:
                raise ConfigError(f"home {self.home_id}: duplicate entity id {ent.entity_id!r}")
            seen.add(ent.entity_id)
            if "." not in ent.entity_id:
                raise ConfigError(f"home {self.home_id}: entity id {ent.entity_id!r} must be domain.name")
            if ent.area_id is not None and ent.area_id not in area_ids:
                raise ConfigError(
                    f"home {self.home_id}: entity {ent.entity_id!r} is in unknown area {ent.area_id!r}"
                )

    # --- lookups -----------------------------------------------------------------------------

    @cached_property
    def area_by_id(self) -> dict[str, Area]:
        """Areas keyed by id."""
        return {a.area_id: a for a in self.areas}

    @cached_property
    def floor_by_id(self) -> dict[str, Floor]:
        """Floors keyed by id."""
        return {f.floor_id: f for f in self.floors}

    @cached_property
    def entity_by_id(self) -> dict[str, Entity]:
        """Entities keyed by id."""
        return {e.entity_id: e for e in self.entities}

    def area_named(self, text: str) -> Area | None:
        """The area whose name or alias equals ``text`` (case-insensitive), or its id."""
        key = normalize_name(text)
        for area in self.areas:
            if key in (normalize_name(n) for n in (area.name, *area.aliases, area.area_id)):
                return area
        return None

    def area_id_of(self, name: str | None) -> str | None:
        """The id of the area called ``name`` (name, alias or id, case-insensitive), or ``None``
        (no name, or none of the home's areas)."""
        if name is None:
            return None
        found = self.area_named(name)
        return found.area_id if found is not None else None

    def floor_named(self, text: str) -> Floor | None:
        """The floor whose name or alias equals ``text`` (case-insensitive), or its id."""
        key = normalize_name(text)
        for floor in self.floors:
            if key in (normalize_name(n) for n in (floor.name, *floor.aliases, floor.floor_id)):
                return floor
        return None

    def entities_named(self, text: str) -> list[Entity]:
        """Entities whose configured name or alias equals ``text`` (case-insensitive)."""
        key = normalize_name(text)
        return [e for e in self.entities if key in (normalize_name(n) for n in e.spoken_names)]

    def entities_in(
        self,
        area_id: str | None = None,
        floor_id: str | None = None,
        domain: str | None = None,
        device_class: str | None = None,
    ) -> list[Entity]:
        """Entities matching all the given constraints."""
        out = []
        for ent in self.entities:
            if domain is not None and ent.domain != domain:
                continue
            if device_class is not None and ent.device_class != device_class:
                continue
            if area_id is not None and ent.area_id != area_id:
                continue
            if floor_id is not None:
                area = self.area_by_id.get(ent.area_id or "")
                if area is None or area.floor_id != floor_id:
                    continue
            out.append(ent)
        return out

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the configuration (names, aliases, areas): equal homes match identically."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.blake2b(blob, digest_size=8).hexdigest()

    # --- conversions -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON/YAML friendly)."""
        return {
            "home_id": self.home_id,
            "timezone": self.timezone,
            "location": self.location,
            "floors": [{"id": f.floor_id, "name": f.name, "aliases": list(f.aliases)} for f in self.floors],
            "areas": [
                {"id": a.area_id, "name": a.name, "floor": a.floor_id, "aliases": list(a.aliases)}
                for a in self.areas
            ],
            "entities": [
                {
                    "id": e.entity_id,
                    "name": e.name,
                    "area": e.area_id,
                    "aliases": list(e.aliases),
                    "device_class": e.device_class,
                    "features": sorted(e.features),
                    "state": e.initial_state,
                }
                for e in self.entities
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Home:
        """Build a home from :meth:`to_dict` output (or hand-written data in the same shape)."""
        try:
            return cls(
                home_id=str(data.get("home_id", "home")),
                timezone=str(data.get("timezone", "UTC")),
                location=str(data.get("location", "home")),
                floors=tuple(
                    Floor(str(f["id"]), str(f["name"]), tuple(f.get("aliases") or ()))
                    for f in data.get("floors") or ()
                ),
                areas=tuple(
                    Area(str(a["id"]), str(a["name"]), a.get("floor"), tuple(a.get("aliases") or ()))
                    for a in data.get("areas") or ()
                ),
                entities=tuple(
                    Entity(
                        str(e["id"]),
                        str(e["name"]),
                        e.get("area"),
                        tuple(e.get("aliases") or ()),
                        e.get("device_class"),
                        frozenset(e.get("features") or ()),
                        str(e.get("state", "off")),
                    )
                    for e in data.get("entities") or ()
                ),
            )
        except KeyError as exc:
            raise ConfigError(f"home definition is missing required key {exc}") from exc

    @classmethod
    def from_ha_fixtures(cls, path: Path, home_id: str = "ha_fixtures") -> Home:
        """Load the simulated home of Home Assistant's intent tests (``tests/en/_fixtures.yaml``)."""
        with path.open(encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
        floors = tuple(
            Floor(f["id"], f["name"], tuple(f.get("aliases") or ())) for f in data.get("floors", [])
        )
        areas = tuple(
            Area(a["id"], a["name"], a.get("floor"), tuple(a.get("aliases") or ()))
            for a in data.get("areas", [])
        )
        entities = []
        for e in data.get("entities", []):
            attrs = e.get("attributes") or {}
            entities.append(
                Entity(
                    e["id"],
                    e["name"],
                    e.get("area"),
                    tuple(e.get("aliases") or ()),
                    attrs.get("device_class"),
                    frozenset(),
                    str(e.get("state", "off")),
                )
            )
        return cls(home_id=home_id, floors=floors, areas=areas, entities=tuple(entities))

    def to_gazetteer(self) -> dict[str, Any]:
        """The home in ``gazetteer_matcher``'s ``Home`` shape."""
        entities: dict[str, Any] = {}
        for e in self.entities:
            spec: dict[str, Any] = {
                "name": e.name,
                "domain": e.domain,
                "area": e.area_id,
                "aliases": list(e.aliases),
            }
            if e.device_class:
                spec["device_class"] = e.device_class
            entities[e.entity_id] = spec
        return {
            "areas": {
                a.area_id: {"name": a.name, "floor": a.floor_id, "aliases": list(a.aliases)}
                for a in self.areas
            },
            "floors": {f.floor_id: {"name": f.name, "aliases": list(f.aliases)} for f in self.floors},
            "entities": entities,
        }


def read_home_text(path: Path) -> str:
    """The text of home file ``path``, or a :class:`ConfigError` in one line (unreadable, or not
    text: a binary file)."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read home file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"home file {path} is not a text file (not UTF-8 at byte {exc.start}): give a YAML or JSON home"
        ) from exc


@lru_cache(maxsize=262_144)
def normalize_name(text: str) -> str:
    """Case- and punctuation-insensitive form of a name, as Home Assistant compares names."""
    out = []
    for ch in text.casefold():
        out.append(ch if ch.isalnum() or ch == "'" else " ")
    return " ".join("".join(out).replace("'", "").split())


def merge_homes(homes: Iterable[Home]) -> list[Home]:
    """Deduplicate homes by id, keeping the first (helper for loaders)."""
    seen: dict[str, Home] = {}
    for home in homes:
        seen.setdefault(home.home_id, home)
    return list(seen.values())
