"""Corpus loaders: Home Assistant test sentences, HWU64 and SLURP as phrasings.

The core tests write small files in each corpus's format under ``tmp_path``; the tests at the
end run on the real shared data when it is present and are skipped otherwise.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from selflearn.core.errors import ConfigError
from selflearn.simulation import corpora
from selflearn.simulation.corpora import (
    CORPORA,
    INTENT_MAP,
    OUT_OF_SCOPE,
    PLACEHOLDER_ACCEPTS,
    LoadReport,
    find_data_dir,
    intent_map_markdown,
    load_corpus,
    load_ha_tests,
    load_hwu64,
    load_slurp,
    load_with_report,
)
from selflearn.simulation.phrasing import KNOWN_PLACEHOLDERS, Phrasing

DOCS = Path(__file__).resolve().parents[1] / "docs" / "corpora.md"


@cache
def _ha_intents() -> frozenset[str]:
    from home_assistant_intents import get_intents

    intents = get_intents("en")
    assert intents is not None
    return frozenset(intents["intents"])


# ------------------------------------------------------------------------------------------
# helpers writing corpus files
# ------------------------------------------------------------------------------------------


def _write_yaml(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def _ha_dir(root: Path) -> Path:
    return root / "home_assistant_intents" / "tests" / "en"


def _hwu_row(intent: str, annotated: str) -> dict[str, Any]:
    """A HWU64 row from ``[type : value]`` annotation text, with character spans."""
    text, entities, pos = "", [], 0
    while True:
        start = annotated.find("[", pos)
        if start < 0:
            text += annotated[pos:]
            break
        text += annotated[pos:start]
        end = annotated.index("]", start)
        kind, value = (p.strip() for p in annotated[start + 1 : end].split(":", 1))
        entities.append({"start": len(text), "end": len(text) + len(value), "value": value, "entity": kind})
        text += value
        pos = end + 1
    scenario = intent.split("_", 1)[0]
    return {
        "fold": 1,
        "answerid": "1",
        "scenario": scenario,
        "intent": intent,
        "text": text,
        "annotation": annotated,
        "original_user_text": text,
        "entities": entities,
    }


def _write_hwu(root: Path, rows: list[dict[str, Any]]) -> None:
    path = root / "hwu64" / "hwu64_cv_minus_slurp_test.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _slurp_row(
    scenario: str,
    action: str,
    sentence: str,
    entities: list[tuple[str, list[int]]],
    intent: str | None = None,
) -> dict[str, Any]:
    tokens = [{"surface": w, "id": i, "lemma": w, "pos": "NN"} for i, w in enumerate(sentence.split())]
    return {
        "slurp_id": 1,
        "sentence": sentence,
        "sentence_annotation": sentence,
        "intent": intent or f"{scenario}_{action}",
        "scenario": scenario,
        "action": action,
        "tokens": tokens,
        "recordings": [],
        "entities": [{"type": t, "span": span} for t, span in entities],
    }


def _write_slurp(root: Path, rows: list[dict[str, Any]]) -> None:
    path = root / "slurp" / "devel.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _by_pattern(phrasings: list[Phrasing]) -> dict[str, Phrasing]:
    return {p.pattern: p for p in phrasings}


# ------------------------------------------------------------------------------------------
# data directory
# ------------------------------------------------------------------------------------------


def test_find_data_dir_explicit_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_data_dir(tmp_path) == tmp_path
    assert find_data_dir(tmp_path / "missing") is None
    monkeypatch.setenv("SELFLEARN_DATA_DIR", str(tmp_path))
    assert find_data_dir() == tmp_path
    monkeypatch.setenv("SELFLEARN_DATA_DIR", str(tmp_path / "missing"))
    assert find_data_dir() is None


def test_missing_corpora_give_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CORPORA:
        phrasings, report = load_with_report(name, tmp_path)
        assert phrasings == []
        assert not report.available and report.rows_read == 0
    monkeypatch.setenv("SELFLEARN_DATA_DIR", str(tmp_path / "nowhere"))
    assert load_hwu64() == [] and load_slurp() == [] and load_ha_tests() == []


def test_unknown_corpus_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown corpus 'snips'"):
        load_corpus("snips", tmp_path)


# ------------------------------------------------------------------------------------------
# Home Assistant test sentences
# ------------------------------------------------------------------------------------------


def _write_ha_fixture(root: Path) -> None:
    base = _ha_dir(root)
    _write_yaml(
        base / "_fixtures.yaml",
        {
            "language": "en",
            "floors": [{"name": "Upstairs", "id": "upstairs"}],
            "areas": [{"name": "Living Room", "id": "living_room", "aliases": ["Lounge"]}],
            "entities": [{"name": "Bedroom Lamp", "id": "light.bedroom_lamp", "area": "bedroom"}],
        },
    )
    _write_yaml(
        base / "light_HassTurnOn.yaml",
        {
            "language": "en",
            "tests": [
                {
                    "sentences": [
                        "Turn on the Living Room lights?",
                        "lounge lights on",
                        "turn on the lights",
                    ],
                    "intent": {"name": "HassTurnOn", "slots": {"area": "Living Room", "domain": "light"}},
                    "response": "Turned on the lights",
                },
                {
                    "sentences": ["turn on the lights upstairs", "turn on the lights in the attic"],
                    "intent": {"name": "HassTurnOn", "slots": {"floor": "Upstairs", "domain": "light"}},
                    "response": "ok",
                },
            ],
        },
    )
    _write_yaml(
        base / "light_HassLightSet.yaml",
        {
            "language": "en",
            "tests": [
                {
                    "sentences": ["set the bedroom lamp brightness to 50%", "bedroom lamp fifty percent"],
                    "intent": {"name": "HassLightSet", "slots": {"brightness": 50, "name": "Bedroom Lamp"}},
                    "response": "Brightness set",
                },
                {
                    "sentences": ["set the brightness to 50%"],
                    "intent": {
                        "name": "HassLightSet",
                        "context": {"area": "Bedroom"},
                        "slots": {"brightness": 50, "area": "Bedroom"},
                    },
                    "response": "Brightness set",
                },
                {
                    "sentences": ["set the bedroom lamp to maximum brightness"],
                    "intent": {"name": "HassLightSet", "slots": {"brightness": 100, "name": "Bedroom Lamp"}},
                    "response": "Brightness set",
                },
            ],
        },
    )
    _write_yaml(
        base / "homeassistant_HassStartTimer.yaml",
        {
            "language": "en",
            "tests": [
                {
                    "sentences": ["start a 5 minute timer named pizza"],
                    "intent": {
                        "name": "HassStartTimer",
                        "slots": {"minutes": 5, "name": ["pizza ", "pizza"]},
                    },
                    "response": "ok",
                },
                {
                    "sentences": ["set a timer for half a minute"],
                    "intent": {"name": "HassStartTimer", "slots": {"seconds": 30}},
                    "response": "ok",
                },
            ],
        },
    )
    _write_yaml(
        base / "media_player_HassSetVolume.yaml",
        {
            "language": "en",
            "tests": [
                {
                    "sentences": ["set TV volume to 90 percent"],
                    "intent": {"name": "HassSetVolume", "slots": {"name": "TV", "volume_level": 90}},
                    "response": "ok",
                },
            ],
        },
    )
    _write_yaml(
        base / "HassMediaSearchAndPlay" / "name_only.yaml",
        {
            "language": "en",
            "entities": [{"name": "TV", "domain": "media_player"}],
            "tests": [
                {
                    "sentences": ["play The Office on the TV"],
                    "slots": {"name": "TV", "search_query": "The Office"},
                    "response": "Playing",
                }
            ],
        },
    )
    _write_yaml(
        base / "HassTimerStatus" / "default.yaml",
        {
            "language": "en",
            "tests": [
                {"sentences": ["timer status"], "timers": [], "response": "No timers."},
                {"sentences": ["timer status"], "timers": [], "response": "No timers."},
            ],
        },
    )


def test_ha_tests_patterns(tmp_path: Path) -> None:
    _write_ha_fixture(tmp_path)
    phrasings, report = load_with_report("ha_tests", tmp_path)
    got = _by_pattern(phrasings)

    assert got["turn on the {area} lights"].fixed_slots == {"domain": "light"}
    assert got["turn on the {area} lights"].intent == "HassTurnOn"
    assert got["{area} lights on"].fixed_slots == {"domain": "light"}, "fixture alias located"
    assert got["turn on the lights {floor}"].fixed_slots == {"domain": "light"}
    assert got["set the {name} brightness to {brightness}%"].intent == "HassLightSet"
    assert "{name} {brightness} percent" in got, "numbers spelled out are located too"
    assert got["set the brightness to {brightness}%"].fixed_slots == {}, "area came from the device context"
    assert got["set the {name} to maximum brightness"].fixed_slots == {"brightness": "100"}
    assert got["start a {minutes} minute timer named {timer_name}"].intent == "HassStartTimer"
    assert got["set a timer for half a minute"].fixed_slots == {"seconds": "30"}
    assert "set {name} volume to {volume} percent" in got
    assert got["play the office on the {name}"].fixed_slots == {"search_query": "the office"}
    assert got["timer status"].intent == "HassTimerStatus", "intent from the folder name"

    for p in phrasings:
        assert p.source == "ha_tests" and p.pattern == p.pattern.lower()
        assert set(p.placeholders) <= KNOWN_PLACEHOLDERS

    # "turn on the lights" names no area and no context supplies it; "in the attic" is no floor
    assert report.dropped == {"slot_not_in_text:area": 1, "slot_not_in_text:floor": 1}
    assert report.duplicates == 1  # the second "timer status"
    assert report.rows_read == 15 and report.kept == len(phrasings) == 12
    assert report.per_intent["HassTurnOn"] == 3


# ------------------------------------------------------------------------------------------
# HWU64
# ------------------------------------------------------------------------------------------

HWU_ROWS = [
    _hwu_row("iot_hue_lightoff", "olly turn off the lights in the [house_place : kitchen]"),
    _hwu_row("iot_hue_lightoff", "turn off the lights in the [house_place : bedroom]"),  # same pattern
    _hwu_row("iot_hue_lightoff", "switch off my [device_type : bedside lamp]"),
    _hwu_row("iot_hue_lightoff", "switch off the [device_type : lights]"),
    _hwu_row("iot_hue_lightoff", "turn off the lights in the [house_place : house]"),
    _hwu_row("iot_hue_lightoff", "turn off bedroom lights [time : in ten seconds]"),
    _hwu_row("iot_wemo_on", "turn on the [device_type : wemo plug socket]"),
    _hwu_row("iot_hue_lightdim", "dim the lights in the [house_place : living room]"),
    _hwu_row("iot_hue_lightdim", "lower the lights [change_amount : to forty percent]"),
    _hwu_row("iot_hue_lightup", "raise lights [change_amount : to full power]"),
    _hwu_row("iot_hue_lightchange", "change lights from [color_type : red] to [color_type : blue]"),
    _hwu_row("iot_hue_lightchange", "make the lights [color_type : romantic]"),
    _hwu_row("iot_cleaning", "get the [device_type : roomba] to clean the [house_place : kitchen]"),
    _hwu_row("iot_cleaning", "start the [device_type : vacuum cleaner]"),
    _hwu_row("audio_volume_up", "raise the volume [change_amount : to fifty percent]"),
    _hwu_row("audio_volume_up", "turn it up"),
    _hwu_row("audio_volume_up", "unmute the speakers"),
    _hwu_row("audio_volume_down", "lower the volume [change_amount : by ten percent]"),
    _hwu_row("audio_volume_mute", "mute for [time : two hours]"),
    _hwu_row("weather_query", "what's the weather like"),
    _hwu_row("weather_query", "weather in [place_name : chicago] please"),
    _hwu_row("weather_query", "will it rain [date : tomorrow]"),
    _hwu_row("datetime_query", "what is [date : today's] date"),
    _hwu_row("datetime_query", "tell me the time"),
    _hwu_row("datetime_query", "what time is it in [place_name : london]"),
    _hwu_row("lists_createoradd", "add eggs to my [list_name : shopping] list"),
    _hwu_row("lists_createoradd", "put nails on my [list_name : hardware store] list"),
    _hwu_row("lists_createoradd", "create a new list"),
    _hwu_row("lists_createoradd", "i need more milk"),
    _hwu_row("lists_remove", "remove pepper from my [list_name : grocery] list"),
    _hwu_row("play_music", "please play [artist_name : adele] in the [house_place : kitchen] please"),
    _hwu_row("play_music", "i want to hear [song_name : thriller]"),
    _hwu_row("play_podcasts", "skip to the [podcast_descriptor : next episode]"),
    _hwu_row("play_audiobook", "[player_setting : resume] my [media_type : audiobook]"),
    _hwu_row("play_radio", "switch on the radio"),
    _hwu_row("alarm_set", "set an alarm for [time : five minutes from now]"),
    _hwu_row("alarm_set", "wake me up at [time : seven am]"),
    _hwu_row("general_commandstop", "olly that is enough, just stop."),
    _hwu_row("email_query", "Olly, do I have new emails?"),
    _hwu_row("no_such_intent", "hello"),
]


def test_hwu64_mapping(tmp_path: Path) -> None:
    _write_hwu(tmp_path, HWU_ROWS)
    phrasings, report = load_with_report("hwu64", tmp_path)
    got = _by_pattern(phrasings)

    def check(pattern: str, intent: str, fixed: dict[str, str] | None = None) -> None:
        assert pattern in got, f"{pattern!r} missing; got {sorted(got)}"
        assert got[pattern].intent == intent
        assert got[pattern].fixed_slots == (fixed or {})
        assert got[pattern].source == "hwu64"

    light = {"domain": "light"}
    check("turn off the lights in the {area}", "HassTurnOff", light)
    check("switch off my {name}", "HassTurnOff", light)
    check("switch off the lights", "HassTurnOff", light)
    check("turn off the lights in the house", "HassTurnOff", light)
    check("turn off bedroom lights in ten seconds", OUT_OF_SCOPE)
    check("turn on the {name}", "HassTurnOn", {"domain": "switch"})
    check("dim the lights in the living room", OUT_OF_SCOPE)
    check("lower the lights to {brightness} percent", "HassLightSet")
    check("raise lights to full power", "HassLightSet", {"brightness": "100"})
    check("change lights from red to {color}", "HassLightSet")
    check("make the lights romantic", OUT_OF_SCOPE)
    check("get the {name} to clean the {area}", "HassVacuumCleanArea")
    check("start the {name}", "HassVacuumStart")
    check("raise the volume to {volume} percent", "HassSetVolume")
    check("turn it up", "HassSetVolumeRelative", {"volume_step": "up"})
    check("unmute the speakers", "HassMediaPlayerUnmute")
    check("lower the volume by ten percent", "HassSetVolumeRelative", {"volume_step": "-10"})
    check("mute for two hours", OUT_OF_SCOPE)
    check("what's the weather like", "HassGetWeather")
    check("weather in chicago please", OUT_OF_SCOPE)
    check("will it rain tomorrow", OUT_OF_SCOPE)
    check("what is today's date", "HassGetCurrentDate")
    check("tell me the time", "HassGetCurrentTime")
    check("what time is it in london", OUT_OF_SCOPE)
    check("add {item} to my shopping list", "HassShoppingListAddItem")
    check("put {item} on my {name} list", "HassListAddItem")
    check("create a new list", OUT_OF_SCOPE)
    check("remove {item} from my grocery list", "HassShoppingListCompleteItem")
    check("please play adele in the {area} please", "HassMediaSearchAndPlay", {"search_query": "adele"})
    check("i want to hear thriller", "HassMediaSearchAndPlay", {"search_query": "thriller"})
    check("skip to the next episode", "HassMediaNext")
    check("resume my audiobook", "HassMediaUnpause")
    check("set an alarm for {minutes} minutes from now", "HassStartTimer")
    check("wake me up at seven am", OUT_OF_SCOPE)
    check("that is enough just stop", "HassNevermind")
    check("do i have new emails", OUT_OF_SCOPE)

    assert got["do i have new emails"].original_intent == "email_query"
    assert got["turn off the lights in the {area}"].original_intent == "iot_hue_lightoff"
    for p in phrasings:
        if p.intent == OUT_OF_SCOPE:
            assert p.placeholders == () and p.fixed_slots == {}

    assert report.rows_read == len(HWU_ROWS)
    assert report.duplicates == 1
    assert report.dropped == {
        "unknown_intent": 1,
        "lists_createoradd:item_not_located": 1,
        "play_radio:no_search_query": 1,
    }
    assert report.rerouted_out_of_scope["iot_hue_lightdim:relative_brightness"] == 1
    assert report.rerouted_out_of_scope["weather_query:forecast"] == 1
    assert report.per_original["iot_hue_lightoff"] == {"HassTurnOff": 4, OUT_OF_SCOPE: 1}
    assert report.kept == len(phrasings) == report.converted - report.duplicates
    assert report.out_of_scope == sum(p.intent == OUT_OF_SCOPE for p in phrasings)


def test_hwu64_several_targets_are_dropped(tmp_path: Path) -> None:
    row = _hwu_row("iot_wemo_off", "turn off the [device_type : plug] and the [device_type : fan]")
    _write_hwu(tmp_path, [row])
    phrasings, report = load_with_report("hwu64", tmp_path)
    assert phrasings == []
    assert report.dropped == {"iot_wemo_off:several_targets": 1}


def test_hwu64_plug_utterances_that_ask_for_another_device_are_dropped(tmp_path: Path) -> None:
    rows = [
        _hwu_row("iot_wemo_on", "turn on [house_place : kitchen] light"),
        _hwu_row("iot_wemo_off", "turn off [house_place : bedroom] fan"),
        _hwu_row("iot_wemo_on", "turn on the [device_type : smart plug]"),
        # "light" inside the annotated device name is the plug's name, not another device
        _hwu_row("iot_wemo_off", "turn off the [device_type : light plug]"),
    ]
    _write_hwu(tmp_path, rows)
    phrasings, report = load_with_report("hwu64", tmp_path)
    assert sorted(p.pattern for p in phrasings) == ["turn off the {name}", "turn on the {name}"]
    assert all(p.fixed_slots == {"domain": "switch"} for p in phrasings)
    assert report.dropped == {"iot_wemo_on:names_another_device": 1, "iot_wemo_off:names_another_device": 1}


# ------------------------------------------------------------------------------------------
# SLURP
# ------------------------------------------------------------------------------------------


def test_slurp_token_spans_and_truncated_labels(tmp_path: Path) -> None:
    rows = [
        _slurp_row("iot", "hue_lightoff", "olly turn off the kitchen lights", [("house_place", [4])]),
        # SLURP's intent field is 'query' for some rows: scenario_action is the real label
        _slurp_row(
            "weather", "query", "is it raining outside", [("weather_descriptor", [2])], intent="query"
        ),
        _slurp_row("lists", "createoradd", "add milk to my shopping list", [("list_name", [4])]),
        _slurp_row(
            "play", "music", "play jazz in the living room", [("music_genre", [1]), ("house_place", [4, 5])]
        ),
        _slurp_row("calendar", "query", "what's on my calendar today", [("date", [4])]),
    ]
    _write_slurp(tmp_path, rows)
    phrasings, report = load_with_report("slurp", tmp_path)
    got = _by_pattern(phrasings)
    assert got["turn off the {area} lights"].intent == "HassTurnOff"
    assert got["turn off the {area} lights"].fixed_slots == {"domain": "light"}
    assert got["is it raining outside"].intent == "HassGetWeather"
    assert got["is it raining outside"].original_intent == "weather_query"
    assert got["add {item} to my shopping list"].intent == "HassShoppingListAddItem"
    assert got["play jazz in the {area}"].fixed_slots == {"search_query": "jazz"}
    assert got["what's on my calendar today"].intent == OUT_OF_SCOPE
    assert all(p.source == "slurp" for p in phrasings)
    assert report.rows_read == 5 and report.kept == 5 and report.out_of_scope == 1


def test_slurp_tokens_not_in_sentence_fall_back_to_tokens(tmp_path: Path) -> None:
    row = _slurp_row("iot", "hue_lightoff", "turn off the bedroom lights", [("house_place", [3])])
    row["tokens"][3]["surface"] = "bed-room"  # annotation typo: surface differs from the sentence
    _write_slurp(tmp_path, [row])
    assert [p.pattern for p in load_slurp(tmp_path)] == ["turn off the {area} lights"]


# ------------------------------------------------------------------------------------------
# the mapping table itself
# ------------------------------------------------------------------------------------------


def test_intent_map_targets_are_home_assistant_intents() -> None:
    known = _ha_intents() | {OUT_OF_SCOPE}
    for label, mapping in INTENT_MAP.items():
        assert mapping.intent in known, label
        assert set(mapping.alternatives) <= known, label
        if mapping.intent == OUT_OF_SCOPE and not mapping.alternatives:
            assert mapping.reason, f"{label}: say why it is out of scope"
    assert set(PLACEHOLDER_ACCEPTS) <= _ha_intents()
    for intent, accepts in PLACEHOLDER_ACCEPTS.items():
        assert accepts <= KNOWN_PLACEHOLDERS, intent


def test_intent_map_covers_hwu64_and_slurp_labels() -> None:
    # 64 HWU64 intents plus the 3 that only SLURP has
    assert len(INTENT_MAP) == 67
    assert {"music_dislikeness", "general_greet", "cooking_query"} <= set(INTENT_MAP)


def test_docs_carry_the_generated_mapping_table() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert intent_map_markdown() in text, "regenerate the table in docs/corpora.md (see the doc)"


# ------------------------------------------------------------------------------------------
# real shared data, when present
# ------------------------------------------------------------------------------------------


@cache
def _real(name: str) -> tuple[list[Phrasing], LoadReport]:
    return load_with_report(name)


def _need(name: str) -> tuple[list[Phrasing], LoadReport]:
    phrasings, report = _real(name)
    if not report.available:
        pytest.skip(f"corpus {name} not present under the shared data directory")
    return phrasings, report


@pytest.mark.parametrize("name", CORPORA)
def test_real_corpus_phrasings_are_valid(name: str) -> None:
    phrasings, report = _need(name)
    known = _ha_intents() | {OUT_OF_SCOPE}
    keys = set()
    for p in phrasings:
        assert p.intent in known, p
        assert p.source == name
        assert p.pattern and p.pattern == p.pattern.lower(), p
        assert set(p.placeholders) <= KNOWN_PLACEHOLDERS, p
        p.fill(dict.fromkeys(p.placeholders, "x"))
        if p.intent == OUT_OF_SCOPE:
            assert not p.placeholders and not p.fixed_slots, p
        elif name != "ha_tests":
            assert set(p.placeholders) <= PLACEHOLDER_ACCEPTS[p.intent], p
        key = (p.pattern, p.intent, tuple(sorted(p.fixed_slots.items())))
        assert key not in keys, "duplicates are removed"
        keys.add(key)
    assert report.kept == len(phrasings)
    assert report.rows_read == report.converted + report.dropped_total


def test_real_ha_tests_counts() -> None:
    _, report = _need("ha_tests")
    assert report.rows_read >= 800
    assert report.kept >= 0.9 * report.rows_read
    assert report.dropped_total <= 0.05 * report.rows_read
    assert report.per_intent["HassTurnOn"] > 100 and report.per_intent["HassLightSet"] > 30
    assert OUT_OF_SCOPE not in report.per_intent


@pytest.mark.parametrize("name", ["hwu64", "slurp"])
def test_real_hwu64_slurp_counts(name: str) -> None:
    phrasings, report = _need(name)
    assert report.dropped.get("unknown_intent", 0) == 0, "every corpus intent is in INTENT_MAP"
    assert report.dropped_total <= 0.05 * report.rows_read
    in_scope = report.kept - report.out_of_scope
    # most of these corpora is out of scope for a home assistant; a useful minority is not
    assert 0.6 * report.kept < report.out_of_scope < 0.9 * report.kept
    assert in_scope > (1000 if name == "hwu64" else 300)
    for intent in (
        "HassTurnOn",
        "HassTurnOff",
        "HassGetWeather",
        "HassMediaSearchAndPlay",
        "HassShoppingListAddItem",
        "HassVacuumStart",
        "HassSetVolumeRelative",
    ):
        assert report.per_intent[intent] > 0, intent
    assert any("{area}" in p.pattern for p in phrasings)
    assert any("{name}" in p.pattern for p in phrasings)


def test_module_main_prints_counts(capsys: pytest.CaptureFixture[str]) -> None:
    _need("hwu64")
    assert corpora._main(["--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| hwu64 |" in out and "HassTurnOff" in out
