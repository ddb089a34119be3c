"""Slots for a label with an intent and no reading (a model's): the home as a gazetteer."""

from __future__ import annotations

from selflearn.core.home import Area, Entity, Floor, Home
from selflearn.labels.slots import fill_slots

HOME = Home(
    "h",
    floors=(Floor("upstairs", "Upstairs"),),
    areas=(Area("kitchen", "Kitchen", "upstairs"), Area("living_room", "Living Room", aliases=("lounge",))),
    entities=(
        Entity("light.kitchen_ceiling", "Kitchen Ceiling", "kitchen"),
        Entity("cover.blinds", "Lounge Blinds", "living_room"),
    ),
)


def slots(intent: str, text: str) -> list[tuple[str, str, str]]:
    return [
        (s.slot, s.value, text[s.start : s.end])
        for s in fill_slots(intent, text, HOME)
        if s.start is not None
    ]


def test_a_device_named_hides_the_area_inside_its_name() -> None:
    assert slots("HassTurnOff", "kill the kitchen ceiling") == [
        ("name", "Kitchen Ceiling", "kitchen ceiling")
    ]


def test_areas_by_alias_floors_and_the_kind_of_thing_said() -> None:
    assert slots("HassTurnOn", "lights on in the lounge") == [
        ("domain", "light", "lights"),
        ("area", "living_room", "lounge"),
    ]
    assert slots("HassTurnOff", "everything upstairs off") == [("floor", "upstairs", "upstairs")]


def test_numbers_go_to_the_intents_number_slot_and_timers_by_unit() -> None:
    assert ("brightness", "40", "forty") in slots("HassLightSet", "kitchen ceiling to forty")
    assert slots("HassStartTimer", "timer for two hours and 5 minutes") == [
        ("hours", "2", "two"),
        ("minutes", "5", "5"),
    ]
    assert slots("HassGetCurrentTime", "what time is it twenty") == []  # no number slot


def test_asr_slips_are_matched_fuzzily_and_nothing_is_made_up() -> None:
    # "ceiling" alone is the device's short name (the home's only ceiling), an exact match
    assert slots("HassTurnOff", "kitten ceiling off") == [("name", "Kitchen Ceiling", "ceiling")]
    assert slots("HassTurnOff", "kitchen cieling off") == [("name", "Kitchen Ceiling", "kitchen cieling")]
    assert slots("HassTurnOff", "the garden hose") == []
