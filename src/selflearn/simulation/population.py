"""Seeded households and users: homes with areas and devices, household nicknames, user traits.

Every household is generated from ``random.Random(f"{seed}:{index}")`` alone, so a household is
the same whatever else is generated and whichever worker generates it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from selflearn.core.home import Area, Entity, Floor, Home

# (area id, configured name, whether it tends to be upstairs)
AREA_CATALOGUE: tuple[tuple[str, str, bool], ...] = (
    ("living_room", "Living Room", False),
    ("kitchen", "Kitchen", False),
    ("bedroom", "Bedroom", True),
    ("master_bedroom", "Master Bedroom", True),
    ("kids_room", "Kids Room", True),
    ("office", "Office", False),
    ("bathroom", "Bathroom", True),
    ("dining_room", "Dining Room", False),
    ("hallway", "Hallway", False),
    ("garage", "Garage", False),
    ("basement", "Basement", False),
    ("guest_room", "Guest Room", True),
    ("nursery", "Nursery", True),
    ("porch", "Porch", False),
    ("laundry_room", "Laundry Room", False),
    ("den", "Den", False),
    ("study", "Study", True),
    ("playroom", "Playroom", True),
)

# Light names: "{area}" is replaced by the area's configured name.
LIGHT_NAMES = (
    "{area} Light",
    "{area} Ceiling Light",
    "{area} Lamp",
    "Floor Lamp",
    "Desk Lamp",
    "Reading Lamp",
    "{area} Pendant",
    "LED Strip",
    "Bedside Lamp",
    "{area} Spotlights",
    "{area} Ceiling",
)

# Household nicknames: canonical device kind -> what families call it. Never configured in the
# assistant unless a household adds it as an alias.
LIGHT_NICKNAMES = (
    "big light",
    "main light",
    "the big lamp",
    "mood light",
    "fairy lights",
    "little lamp",
    "the glow",
    "top light",
    "the uplighter",
    "lava lamp",
)
TV_NICKNAMES = ("telly", "the box", "the tube", "big screen", "the idiot box")
FAN_NICKNAMES = ("the breeze", "the whirly", "the cooler", "air thing")
AREA_NICKNAMES = {
    "living_room": ("lounge", "front room", "family room", "sitting room"),
    "kids_room": ("{kid}'s room", "the kids' room"),
    "nursery": ("{kid}'s room", "baby's room"),
    "master_bedroom": ("our room", "main bedroom", "the master"),
    "bedroom": ("our room", "my room"),
    "office": ("work room", "the study"),
    "den": ("man cave", "tv room"),
    "basement": ("downstairs", "the cellar"),
    "guest_room": ("spare room", "the spare bedroom"),
    "playroom": ("the toy room",),
}
KID_NAMES = ("emma", "jake", "olivia", "noah", "mia", "leo", "ava", "sam", "lily", "max", "zoe", "finn")
TOWNS = ("Springfield", "Riverside", "Fairview", "Wilkerson", "Madison", "Georgetown", "Salem", "Clinton")


@dataclass(frozen=True)
class UserTraits:
    """How one simulated person talks to the assistant."""

    source_weights: dict[str, float]
    """Preference over phrasing sources (``templates``, ``colloquial``, ``corpus``)."""
    nickname_use: float
    """Chance of using the household's nickname for a thing instead of its configured name."""
    patience: int
    """Attempts at a goal before giving up (1-5)."""
    rephrase_bias: float
    """After a failure, chance of rephrasing rather than repeating the same words."""
    barge_in: float
    """Chance of interrupting a response that is going wrong."""
    feedback_willingness: float
    """Chance of answering "did I get that right?"."""
    habit: float
    """Chance of reusing the phrasing that worked last time for the same kind of goal."""
    goals_per_day: float
    """Average goals per day."""
    voice: str
    """TTS voice used for this person's speech by the real ASR channel."""
    verbose: float
    """Chance of adding politeness words ("please", "can you")."""


@dataclass
class User:
    """A simulated person."""

    user_id: str
    """Pseudonymous id."""
    traits: UserTraits
    """Behaviour."""
    habits: dict[tuple[object, ...], str] = field(default_factory=dict)
    """Goal kind -> pattern that worked last time (the drift towards what works)."""


@dataclass
class Household:
    """A home with its people and their private names for things."""

    home: Home
    """The assistant's configuration of the home."""
    users: list[User]
    """The people who talk to it."""
    nicknames: dict[str, str]
    """Entity or area id -> the household's own name for it (``light.x`` -> ``big light``)."""
    devices: list[tuple[str, str | None, str]]
    """Voice devices: (device id, area id, device type)."""

    @property
    def household_id(self) -> str:
        """Same as the home id."""
        return self.home.home_id


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text.lower()).strip("_")


def make_household(seed: int, index: int, prefix: str = "h") -> Household:
    """Generate household number ``index`` of a population seeded with ``seed``."""
    rng = random.Random(f"{seed}:{prefix}:{index}")
    hid = f"{prefix}{index:06d}"
    two_floors = rng.random() < 0.5
    floors = (Floor("upstairs", "Upstairs"), Floor("downstairs", "Downstairs")) if two_floors else ()
    picked = [a for a in AREA_CATALOGUE[:3]] + rng.sample(AREA_CATALOGUE[3:], rng.randint(1, 6))
    areas = tuple(
        Area(aid, name, ("upstairs" if up else "downstairs") if two_floors else None)
        for aid, name, up in picked
    )
    entities: list[Entity] = []
    used: set[str] = set()

    def add(
        domain: str,
        name: str,
        area: str | None,
        device_class: str | None = None,
        features: frozenset[str] = frozenset(),
        state: str = "off",
    ) -> Entity:
        base = f"{domain}.{_slug(name)}"
        eid, n = base, 2
        while eid in used:
            eid, n = f"{base}_{n}", n + 1
        used.add(eid)
        ent = Entity(eid, name, area, (), device_class, features, state)
        entities.append(ent)
        return ent

    for area in areas:
        for name_pattern in rng.sample(LIGHT_NAMES, rng.choice((1, 1, 2, 2, 3))):
            name = name_pattern.format(area=area.name)
            feats = {"brightness"} if rng.random() < 0.8 else set()
            if rng.random() < 0.35:
                feats.add("color")
            add("light", name, area.area_id, features=frozenset(feats), state=rng.choice(("on", "off")))
        if (
            area.area_id in ("bedroom", "master_bedroom", "living_room", "office", "kids_room")
            and rng.random() < 0.4
        ):
            add("fan", f"{area.name} Fan", area.area_id, state="off")
        if (
            area.area_id in ("living_room", "bedroom", "master_bedroom", "kitchen", "office")
            and rng.random() < 0.35
        ):
            kind = rng.choice(("Blinds", "Curtains", "Shades"))
            add(
                "cover",
                f"{area.name} {kind}",
                area.area_id,
                "blind" if kind != "Curtains" else "curtain",
                frozenset({"position"}),
                state="closed",
            )
        if (
            area.area_id in ("living_room", "den", "bedroom", "master_bedroom", "kitchen")
            and rng.random() < 0.55
        ):
            name = "TV" if area.area_id == "living_room" and rng.random() < 0.5 else f"{area.name} TV"
            add(
                "media_player",
                name,
                area.area_id,
                "tv",
                frozenset({"volume"}),
                state=rng.choice(("playing", "off")),
            )
        if area.area_id in ("kitchen", "office", "bedroom", "bathroom") and rng.random() < 0.3:
            add(
                "media_player",
                f"{area.name} Speaker",
                area.area_id,
                "speaker",
                frozenset({"volume"}),
                state=rng.choice(("playing", "paused", "idle")),
            )
    if any(a.area_id == "garage" for a in areas):
        add("cover", "Garage Door", "garage", "garage", state="closed")
    add(
        "lock",
        "Front Door",
        "hallway" if any(a.area_id == "hallway" for a in areas) else None,
        state="locked",
    )
    if rng.random() < 0.4:
        add("lock", "Back Door", "kitchen", state="locked")
    add("climate", "Thermostat", "living_room", state="heat")
    if rng.random() < 0.5:
        add("vacuum", rng.choice(("Roomba", "Robot Vacuum", "Vacuum")), "living_room", state="docked")
    for name in rng.sample(
        ("Coffee Maker", "Kettle", "Christmas Tree", "Dehumidifier", "Fountain", "Space Heater"),
        rng.randint(0, 2),
    ):
        add("switch", name, rng.choice(areas).area_id, state="off")

    # Household nicknames: some for devices, some for rooms. A few are set up as aliases.
    nicknames: dict[str, str] = {}
    kid = rng.choice(KID_NAMES)
    lights = [e for e in entities if e.domain == "light"]
    for ent in rng.sample(lights, min(len(lights), rng.randint(0, 2))):
        nicknames.setdefault(ent.entity_id, rng.choice(LIGHT_NICKNAMES))
    for ent in entities:
        if ent.device_class == "tv" and rng.random() < 0.5:
            nicknames[ent.entity_id] = rng.choice(TV_NICKNAMES)
        elif ent.domain == "fan" and rng.random() < 0.3:
            nicknames[ent.entity_id] = rng.choice(FAN_NICKNAMES)
    for area in areas:
        options = AREA_NICKNAMES.get(area.area_id)
        if options and rng.random() < 0.5:
            nicknames[area.area_id] = rng.choice(options).format(kid=kid)
    # Nicknames must be unique within the home or they would be ambiguous to the family too.
    seen: dict[str, str] = {}
    for key, nick in list(nicknames.items()):
        if nick in seen:
            del nicknames[key]
        seen[nick] = key

    aliased = {k for k in nicknames if rng.random() < 0.25}
    entities = [
        Entity(
            e.entity_id,
            e.name,
            e.area_id,
            (nicknames[e.entity_id],) if e.entity_id in aliased else (),
            e.device_class,
            e.features,
            e.initial_state,
        )
        for e in entities
    ]
    areas = tuple(
        Area(a.area_id, a.name, a.floor_id, (nicknames[a.area_id],) if a.area_id in aliased else ())
        for a in areas
    )
    home = Home(home_id=hid, floors=floors, areas=areas, entities=tuple(entities), location=rng.choice(TOWNS))

    users = [User(f"{hid}u{i}", _traits(rng)) for i in range(rng.choice((1, 2, 2, 3, 3, 4)))]
    device_areas = [
        a.area_id
        for a in areas
        if a.area_id in ("kitchen", "living_room", "bedroom", "master_bedroom", "office", "kids_room")
    ]
    devices: list[tuple[str, str | None, str]] = [
        (f"{hid}d{i}", area, "display" if rng.random() < 0.25 else "satellite")
        for i, area in enumerate(rng.sample(device_areas, min(len(device_areas), rng.randint(1, 3))))
    ]
    return Household(home=home, users=users, nicknames=nicknames, devices=devices)


def _traits(rng: random.Random) -> UserTraits:
    style = rng.random()
    return UserTraits(
        source_weights={
            "templates": 0.2 + 0.6 * style,
            "colloquial": 0.2 + 0.6 * (1 - style),
            "corpus": rng.uniform(0.3, 1.0),
        },
        nickname_use=rng.uniform(0.1, 0.8),
        patience=rng.choice((1, 2, 2, 3, 3, 3, 4, 5)),
        rephrase_bias=rng.uniform(0.4, 0.95),
        barge_in=rng.uniform(0.0, 0.6),
        feedback_willingness=rng.uniform(0.3, 0.95),
        habit=rng.uniform(0.4, 0.9),
        goals_per_day=rng.uniform(4, 25),
        voice=rng.choice(("slt", "awb", "rms", "kal16", "kal")),
        verbose=rng.uniform(0.0, 0.4),
    )
