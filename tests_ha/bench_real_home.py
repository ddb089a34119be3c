"""Home Assistant's side of ``bench/real_home.py`` (a benchmark, not a test: ``make test-ha`` does
not collect it).

Run under the Home Assistant 2025.4 venv by ``bench/real_home.py``, which simulates the households
and connects here over TCP (``$SELFLEARN_REAL_HOME_PORT``; JSON lines). For each household it asks
for a fresh, real Home Assistant core with the household's home: its floors and areas, one entity
per device (``real_home/custom_components/simhome``: the only stand-in, for the lamps and locks a
benchmark does not have), its satellites (devices that take timers), a weather entity, the
shopping list, and -- except in the control arm -- selflearn's integration talking to a real
``selflearn serve``. Then every utterance goes through ``conversation.async_converse`` with the
satellite's device id, at the simulated time (Home Assistant's clock is the simulation's), and the
answer says what Home Assistant did: the response, the intent and targets it acted on, what the
integration logged and what the service answered, and the devices' states afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest.mock import patch

from homeassistant import loader
from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.components.intent import async_register_timer_handler
from homeassistant.const import __version__ as HA_VERSION
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import floor_registry as fr
from homeassistant.helpers import intent
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_test_home_assistant

# custom_components/simhome beside custom_components/selflearn: import the namespace package now,
# before any core of the test harness imports its own testing_config/custom_components instead.
sys.path.insert(0, str(Path(__file__).resolve().parent / "real_home"))
import custom_components  # noqa: F401

EXPOSED = "conversation"


def _slots(response: intent.IntentResponse) -> dict[str, Any]:
    found = getattr(getattr(response, "intent", None), "slots", None) or {}
    out: dict[str, Any] = {}
    for name, slot in found.items():
        value = slot.get("value") if isinstance(slot, dict) else slot
        if name == "color" and isinstance(slot, dict) and slot.get("text"):
            value = slot["text"]  # the colour said ("purple"), not its RGB value
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if value is not None and not isinstance(value, (str, int, float, bool)):
            value = str(value)
        out[str(name)] = value
    return out


def _targets(response: intent.IntentResponse) -> list[str]:
    """The entities an intent acted on, or (a question about states) the ones it read."""
    found = {t.id for t in response.success_results if t.type.value == "entity" and t.id}
    if not found:
        found = {s.entity_id for s in getattr(response, "matched_states", [])}
    return sorted(found)


def _states(hass: HomeAssistant) -> dict[str, Any]:
    """The simulated devices as the simulator reads them (``HomeState`` strings and attributes)."""
    out: dict[str, Any] = {}
    for entity_id in hass.data["simhome"]["entities"]:
        state = hass.states.get(entity_id)
        if state is None:
            continue
        domain = entity_id.split(".")[0]
        attrs: dict[str, Any] = {}
        value = state.state
        if domain == "light" and state.attributes.get("brightness") is not None:
            attrs["brightness"] = round(int(state.attributes["brightness"]) * 100 / 255)
        elif domain == "cover":
            attrs["position"] = state.attributes.get("current_position")
        elif domain == "climate":
            value = state.state
            target = state.attributes.get("temperature")
            if target is not None:
                attrs["temperature"] = int(target) if float(target).is_integer() else target
        elif domain == "media_player" and state.attributes.get("volume_level") is not None:
            attrs["volume"] = round(float(state.attributes["volume_level"]) * 100)
        if entity_id in hass.data["simhome"]["unavailable"]:
            continue  # offline: nothing could change it, and its state reads "unavailable"
        out[entity_id] = {"state": value, "attributes": attrs}
    return out


class RealHome:
    """One household's Home Assistant core, built on demand and thrown away after."""

    def __init__(self, loop: asyncio.AbstractEventLoop, storage: dict[str, Any]) -> None:
        self.loop = loop
        self.storage = storage
        """The test harness's in-memory storage, shared by every core it makes: emptied per home."""
        self.stack = contextlib.AsyncExitStack()
        self.hass: HomeAssistant | None = None
        self.agent_id = conversation.HOME_ASSISTANT_AGENT
        self.devices: dict[str, str] = {}
        """Simulated device id -> Home Assistant device id."""
        self.users: dict[str, str] = {}
        self.logic: Any = None
        self.answers: list[dict[str, Any]] = []
        self.logged: list[dict[str, Any]] = []
        self.converse: list[tuple[float, Any]] = []
        self.now = dt_util.utcnow()
        self.tmp = tempfile.TemporaryDirectory(prefix="selflearn-real-home-")

    async def close(self) -> None:
        if self.hass is not None:
            await self.hass.async_block_till_done()
        await self.stack.aclose()
        self.hass = None

    async def build(self, command: dict[str, Any]) -> dict[str, Any]:
        await self.close()
        self.storage.clear()
        self.stack = contextlib.AsyncExitStack()
        config_dir = Path(self.tmp.name) / f"{command['arm']}-{command['household']}"
        config_dir.mkdir(parents=True, exist_ok=True)
        hass = await self.stack.enter_async_context(
            async_test_home_assistant(self.loop, config_dir=str(config_dir))
        )
        self.hass = hass
        hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)  # load custom_components/*
        self.now = datetime.fromisoformat(command["start"])
        self.stack.enter_context(patch.object(dt_util, "utcnow", lambda: self.now))
        home = command["home"]
        assert await async_setup_component(hass, "homeassistant", {})
        assert await async_setup_component(hass, "conversation", {})
        assert await async_setup_component(hass, "intent", {})
        shopping = MockConfigEntry(domain="shopping_list")
        shopping.add_to_hass(hass)
        assert await hass.config_entries.async_setup(shopping.entry_id)
        assert await async_setup_component(
            hass, "simhome", {"simhome": {"entities": home["entities"], "location": home.get("location")}}
        )
        await hass.async_block_till_done()
        floors = fr.async_get(hass)
        floor_ids = {
            f["id"]: floors.async_create(f["name"], aliases=set(f.get("aliases") or ())).floor_id
            for f in home.get("floors", [])
        }
        areas = ar.async_get(hass)
        area_ids: dict[str, str] = {}
        for area in home.get("areas", []):
            created = areas.async_create(
                area["name"],
                floor_id=floor_ids.get(area.get("floor") or ""),
                aliases=set(area.get("aliases") or ()),
            )
            area_ids[area["id"]] = created.id
        registry = er.async_get(hass)
        for entity in home["entities"]:
            registry.async_update_entity(
                entity["id"],
                area_id=area_ids.get(entity.get("area") or ""),
                aliases=set(entity.get("aliases") or ()),
            )
            async_expose_entity(hass, EXPOSED, entity["id"], True)
        async_expose_entity(hass, EXPOSED, "weather.home", True)
        owner = MockConfigEntry(domain="simhome")
        owner.add_to_hass(hass)
        devices = dr.async_get(hass)
        self.devices = {}

        def on_timer(event: Any, timer: Any) -> None:
            """A satellite would ring; nothing to do here."""

        for device_id, area_id, kind in command["devices"]:
            device = devices.async_get_or_create(
                config_entry_id=owner.entry_id,
                identifiers={("simhome", device_id)},
                name=f"{kind} {device_id}",
            )
            devices.async_update_device(device.id, area_id=area_ids.get(area_id or ""))
            self.devices[device_id] = device.id
            self.stack.callback(async_register_timer_handler(hass, device.id, on_timer))
        self.users = {}
        self.timer_started: dict[str, datetime] = {}
        self.logic = None
        if command["arm"] != "control":
            entry = MockConfigEntry(
                domain="selflearn",
                data={
                    "url": command["service"],
                    "admin_token": None,
                    "household_id": command["household"],
                    "salt": f"salt-{command['household']}",
                },
                options={
                    "rewrite": "behind",
                    "timeout_ms": command.get("timeout_ms", 1000),
                    "log_turns": True,
                },
            )
            entry.add_to_hass(hass)
            assert await hass.config_entries.async_setup(entry.entry_id)
            await hass.async_block_till_done()
            data = hass.data["selflearn"][entry.entry_id]
            sync = data["sync"]
            deadline = time.monotonic() + 30
            while sync.synced < 1:
                assert time.monotonic() < deadline, "the home never reached the service"
                await asyncio.sleep(0.05)
            self.logic = logic = data["agent"]
            self.agent_id = (
                er.async_get(hass).async_get_entity_id("conversation", "selflearn", entry.entry_id)
                or entry.entry_id
            )
            self._spy(logic)
        else:
            self.agent_id = conversation.HOME_ASSISTANT_AGENT
        return {"ok": True, "agent_id": self.agent_id, "ha_version": HA_VERSION}

    def _spy(self, logic: Any) -> None:
        """Record what the service answered and what the integration logged, per request."""
        client = logic.client
        dialogue, add, converse = client.dialogue, logic.turns.async_add, logic._converse

        async def spy_dialogue(request: dict[str, Any], timeout_s: float) -> Any:
            started = time.perf_counter()
            out = await dialogue(request, timeout_s)
            self.answers.append(
                {"request": request, "answer": out, "ms": (time.perf_counter() - started) * 1000}
            )
            return out

        async def spy_add(record: dict[str, Any]) -> Any:
            self.logged.append(json.loads(json.dumps(record)))
            return await add(record)

        async def spy_converse(text: str, user_input: Any, conversation_id: Any) -> Any:
            started = time.perf_counter()
            out = await converse(text, user_input, conversation_id)
            self.converse.append(((time.perf_counter() - started) * 1000, out))
            return out

        client.dialogue = spy_dialogue
        logic.turns.async_add = spy_add
        logic._converse = spy_converse

    def _expire_timers(self, hass: HomeAssistant) -> None:
        """Timers run on the simulated clock: one whose time is up by now has rung (Home
        Assistant's own run on the event loop's clock, which hardly moves in a benchmark)."""
        manager = hass.data.get("intent.timer")
        if manager is None:
            return
        for timer_id, timer in list(manager.timers.items()):
            started = self.timer_started.setdefault(timer_id, self.now)
            if (self.now - started).total_seconds() >= timer.seconds:
                manager.cancel_timer(timer_id)
                self.timer_started.pop(timer_id, None)

    async def say(self, command: dict[str, Any]) -> dict[str, Any]:
        hass = self.hass
        assert hass is not None
        self.now = datetime.fromisoformat(command["time"])
        offline = set(command.get("unavailable") or ())
        sim = hass.data["simhome"]
        if offline != sim["unavailable"]:
            changed = offline ^ sim["unavailable"]
            sim["unavailable"] = offline
            for entity_id in changed:
                if entity_id in sim["entities"]:
                    sim["entities"][entity_id].async_write_ha_state()
        user = command.get("user") or "unknown"
        if user not in self.users:
            self.users[user] = (await hass.auth.async_create_user(user, group_ids=["system-admin"])).id
        self._expire_timers(hass)
        self.answers, self.logged, self.converse = [], [], []
        started = time.perf_counter()
        result = await conversation.async_converse(
            hass,
            command["text"],
            command.get("conversation_id"),
            Context(user_id=self.users[user]),
            language="en",
            agent_id=self.agent_id,
            device_id=self.devices.get(command.get("device") or ""),
        )
        total_ms = (time.perf_counter() - started) * 1000
        await hass.async_block_till_done()
        manager = hass.data.get("intent.timer")
        for timer_id in getattr(manager, "timers", {}):
            self.timer_started.setdefault(timer_id, self.now)
        response = result.response
        effects = []
        for _ms, ran in self.converse or [(0.0, result)]:
            r = ran.response
            if r.response_type != intent.IntentResponseType.ERROR and getattr(r, "intent", None) is not None:
                effects.append({"intent": r.intent.intent_type, "targets": _targets(r), "slots": _slots(r)})
        if (
            not self.converse
            and response.response_type != intent.IntentResponseType.ERROR
            and response.intent
        ):
            effects = [
                {
                    "intent": response.intent.intent_type,
                    "targets": _targets(response),
                    "slots": _slots(response),
                }
            ]
        timers = hass.data.get("intent.timer")
        shopping = hass.data.get("shopping_list")
        return {
            "speech": str(response.speech.get("plain", {}).get("speech", "")),
            "response_type": response.response_type.value,
            "error_code": response.error_code.value if response.error_code is not None else None,
            "intent": response.intent.intent_type if getattr(response, "intent", None) else None,
            "slots": _slots(response),
            "effects": effects,
            "continue_conversation": bool(getattr(result, "continue_conversation", False)),
            "conversation_id": result.conversation_id,
            "answers": self.answers,
            "logged": self.logged,
            "total_ms": total_ms,
            "first_ms": self.converse[0][0] if self.converse else total_ms,
            "states": _states(hass),
            "timers": [
                {"name": t.name, "seconds": t.seconds, "paused": not t.is_active}
                for t in (getattr(timers, "timers", {}) or {}).values()
            ],
            "shopping": [str(i.get("name")) for i in getattr(shopping, "items", []) if not i.get("complete")],
        }


async def _serve(home: RealHome, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    while True:
        line = await reader.readline()
        if not line:
            return False
        command = json.loads(line)
        op = command.get("op")
        try:
            if op == "home":
                out = await home.build(command)
            elif op == "say":
                out = await home.say(command)
            elif op == "bye":
                writer.write(b'{"ok": true}\n')
                await writer.drain()
                return True
            else:
                out = {"error": f"unknown op {op!r}"}
        except Exception as exc:  # the driver reports it; the server goes on
            out = {"error": f"{type(exc).__name__}: {exc}"}
        writer.write(json.dumps(out, default=str).encode() + b"\n")
        await writer.drain()


async def test_serve_real_homes(socket_enabled: None, hass_storage: dict[str, Any]) -> None:
    """Serve the driver until it says bye (one connection)."""
    port = int(os.environ["SELFLEARN_REAL_HOME_PORT"])
    loop = asyncio.get_running_loop()
    home = RealHome(loop, hass_storage)
    done: asyncio.Future[bool] = loop.create_future()

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            ok = await _serve(home, reader, writer)
        except Exception as exc:
            if not done.done():
                done.set_exception(exc)
            return
        finally:
            writer.close()
        if not done.done():
            done.set_result(ok)

    server = await asyncio.start_server(connected, "127.0.0.1", port)
    try:
        assert await done
    finally:
        server.close()
        await home.close()
