"""The label export on a real Home Assistant: what users said and Assist failed on becomes a custom
sentence that Home Assistant's *own* agent then understands (issue 30).

1. Two homes (two config entries, each its own pseudonymous household) log only; two users in
   each say "kill the lights in the kitchen", Assist fails, and they say "turn off the lights in
   the kitchen" a moment later, which works.
2. ``POST /v1/admin/snapshot`` copies the service's store; ``selflearn signals`` scores the turns
   (the rephrase and defect signals the labels need), ``selflearn label`` labels them (the failed
   request takes the intent and slots of the rephrase that worked: ``transfer:rephrase``), and
   ``selflearn label export`` writes ``custom_sentences/en/selflearn.yaml`` with the global
   template ``kill the lights in the {area}`` (four users in two homes, no household's names).
3. The file parses with this core's hassil over Home Assistant's own intents and lists; copied
   into the core's ``<config>/custom_sentences/en/`` and loaded with ``conversation.reload``, it
   makes Home Assistant's default agent -- no selflearn involved -- turn the kitchen light off
   for "kill the lights in the kitchen", which it failed on before.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import yaml
from homeassistant.components import conversation
from homeassistant.core import Context, HomeAssistant

from .conftest import Service
from .test_integration import FAILS, KILL, WORKS, call, light, setup_home
from .test_loop import _admin, _entry, _selflearn, fail_and_rephrase

HOMES = 2
USERS = 2
"""Users per home who fail and rephrase: four users in all."""
MIN_USERS = 3
"""``--min-users`` of the export: fewer than the users who said it, more than one home's."""
TEMPLATE = "kill the lights in the {area}"
MIN_CONFIDENCE = 0.7
"""``--min-confidence`` of the export (the labels transferred here have about 0.83)."""


async def _default_agent(hass: HomeAssistant, text: str) -> Any:
    """``text`` sent to Home Assistant's own default agent (never through selflearn)."""
    result = await conversation.async_converse(
        hass, text, None, Context(), language="en", agent_id=conversation.HOME_ASSISTANT_AGENT
    )
    await hass.async_block_till_done()
    return result.response


def _hassil_reads(sentences: dict[str, Any], text: str) -> list[tuple[str, dict[str, Any]]]:
    """Readings of ``text`` by this core's hassil, the exported sentences merged over Home
    Assistant's own English intents (as the core merges custom sentences), with a kitchen."""
    from hassil import Intents, recognize_all
    from hassil.intents import TextSlotList
    from hassil.util import merge_dict
    from home_assistant_intents import get_intents

    merged = copy.deepcopy(get_intents("en"))
    assert merged is not None
    merge_dict(merged, copy.deepcopy(sentences))
    intents = Intents.from_dict(merged)
    lists = {
        "area": TextSlotList.from_tuples([("Kitchen", "kitchen")], allow_template=False),
        "name": TextSlotList.from_tuples([("Kitchen Lights", "light.kitchen_lights")], allow_template=False),
        "floor": TextSlotList.from_tuples([], allow_template=False),
    }
    found = recognize_all(text, intents, slot_lists=lists)
    return [(r.intent.name, {k: e.value for k, e in r.entities.items()}) for r in found]


async def test_exported_sentences_make_home_assistant_understand_a_failed_request(
    hass: HomeAssistant, empty_service: Service, tmp_path: Path
) -> None:
    config = tmp_path / "ha-config"  # the core's own config folder, not the shared test one
    config.mkdir()
    hass.config.config_dir = str(config)
    (config / "configuration.yaml").write_text("")  # every home has one; reloads read it (2026.x)
    await setup_home(hass)

    # Before: Home Assistant's own agent fails on the request.
    before = await _default_agent(hass, KILL)
    assert before.error_code.value in FAILS, before.as_dict()
    assert light(hass) == "on"

    # 1. Users of two homes fail and rephrase, through selflearn with logging on (no rewrites).
    homes = [await _entry(hass, empty_service.url, f"ha-home{n}", rewrite="off") for n in range(HOMES)]
    await fail_and_rephrase(hass, homes, USERS)

    # 2. Label a consistent copy of the live store and export the labels.
    store = tmp_path / "label.duckdb"
    snapshot = await call(hass, _admin, empty_service.url, "snapshot", {"path": str(store)})
    assert snapshot["rows"]["turns"] == 2 * USERS * HOMES and snapshot["rows"]["homes"] == HOMES, snapshot
    await call(hass, _selflearn, "signals", "--store", str(store))
    labelled = await call(hass, _selflearn, "label", "--store", str(store))
    assert f"transfer:rephrase {USERS * HOMES}" in labelled, labelled
    out = tmp_path / "exports"
    exported = await call(
        hass,
        _selflearn,
        "label",
        "export",
        "--store",
        str(store),
        "--out",
        str(out),
        "--format",
        "ha,jsonl",
        "--min-users",
        str(MIN_USERS),
        "--min-confidence",
        str(MIN_CONFIDENCE),
    )
    rows = [json.loads(line) for line in (out / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    failed = [r for r in rows if r["text"] == KILL]
    assert len(failed) == USERS * HOMES, rows
    for row in failed:
        assert (row["source"], row["intent"]) == ("transfer:rephrase", "HassTurnOff"), row
        assert row["confidence"] >= MIN_CONFIDENCE, row
        said = {(s["slot"], s["text"]) for s in row["slots"]}
        assert ("area", "kitchen") in said, f"the label has no area slot said as 'kitchen': {row}"
    assert "1 global sentence(s)" in exported, exported
    exported_file = out / "custom_sentences" / "en" / "selflearn.yaml"
    text = exported_file.read_text(encoding="utf-8")
    sentences = yaml.safe_load(text)
    assert sentences["language"] == "en"
    assert sentences["intents"] == {
        "HassTurnOff": {"data": [{"sentences": [TEMPLATE], "slots": {"domain": "light"}}]}
    }
    assert "ha-home" not in text and "kitchen" not in text.casefold()  # no household's ids or names

    # 3. The file passes this core's hassil: merged over Home Assistant's intents it reads the request.
    assert ("HassTurnOff", {"area": "kitchen", "domain": "light"}) in _hassil_reads(sentences, KILL)
    assert _hassil_reads({"intents": {}}, KILL) == []

    # ... and installed into the core, Home Assistant's own agent now does what the users meant.
    assert hass.config.path("custom_sentences", "en").startswith(str(config))
    installed = Path(hass.config.path("custom_sentences", "en"))
    installed.mkdir(parents=True)
    shutil.copy(exported_file, installed / "selflearn.yaml")
    assert (await _default_agent(hass, KILL)).error_code.value in FAILS  # loaded once: needs a reload
    await hass.services.async_call("conversation", "reload", {}, blocking=True)
    assert light(hass) == "on"
    after = await _default_agent(hass, KILL)
    assert after.response_type.value == "action_done", after.as_dict()
    assert light(hass) == "off"
    # Home Assistant's own sentences still work beside the installed ones.
    await hass.services.async_call(
        "input_boolean", "turn_on", {"entity_id": "input_boolean.kitchen_power"}, blocking=True
    )
    assert (await _default_agent(hass, WORKS)).response_type.value == "action_done"
    assert light(hass) == "off"
