"""What the household taught selflearn, offered back to Home Assistant -- never applied unasked.

When someone teaches a name ("the mothership is the living room lamp", or answers "I don't know
what mothership is. Can you teach me?"), the integration raises a repair issue under *Settings ->
System -> Repairs*: "selflearn learned that *mothership* means *Living Room Lamp*: add it as an
alias?". Its fix adds the alias to the entity (or area) in Home Assistant's registry, so Assist
itself understands the name from then on, with or without selflearn; ignoring it changes
nothing. Names the household taught earlier (or elsewhere, e.g. ``selflearn chat``) are offered
at start and every hour.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from homeassistant import data_entry_flow
from homeassistant.components.repairs import RepairsFlow
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN, ISSUE_ALIAS


def _norm(name: str) -> str:
    return " ".join(name.lower().split())


def alias_target(hass: HomeAssistant, target: str) -> tuple[str, set[str], str] | None:
    """(kind, current aliases, display name) of a concept's target -- ``entity`` for an entity id,
    ``area`` for ``area:<id>`` -- or ``None`` when Home Assistant has no such thing."""
    if target.startswith("area:"):
        area = ar.async_get(hass).async_get_area(target.removeprefix("area:"))
        return ("area", set(area.aliases), area.name) if area is not None else None
    entry = er.async_get(hass).async_get(target)
    state = hass.states.get(target)
    if entry is None:
        return None
    name = state.name if state is not None else (entry.name or entry.original_name or target)
    return "entity", set(entry.aliases), str(name)


@callback
def offer_alias(hass: HomeAssistant, entry_id: str, concept: dict[str, Any]) -> bool:
    """Raise the repair issue that offers a taught name as an alias; whether one was raised
    (not for other kinds of concept, unknown targets, or a name Home Assistant already has)."""
    phrase, target, concept_id = concept.get("phrase"), concept.get("target"), concept.get("concept_id")
    if concept.get("kind") != "name" or not all(
        isinstance(v, str) and v for v in (phrase, target, concept_id)
    ):
        return False
    assert isinstance(phrase, str) and isinstance(target, str) and isinstance(concept_id, str)
    found = alias_target(hass, target)
    if found is None:
        return False
    _kind, aliases, name = found
    if _norm(phrase) in {_norm(a) for a in aliases} or _norm(phrase) == _norm(name):
        return False
    ir.async_create_issue(
        hass,
        DOMAIN,
        f"{ISSUE_ALIAS}_{concept_id}",
        is_fixable=True,
        is_persistent=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key=ISSUE_ALIAS,
        translation_placeholders={"phrase": phrase, "name": name},
        data={"phrase": phrase, "target": target, "name": name, "entry_id": entry_id},
    )
    return True


@callback
def add_alias(hass: HomeAssistant, target: str, phrase: str) -> bool:
    """Add ``phrase`` to the aliases of ``target`` (an entity id, or ``area:<id>``); whether it
    was added."""
    found = alias_target(hass, target)
    if found is None:
        return False
    kind, aliases, _name = found
    if _norm(phrase) in {_norm(a) for a in aliases}:
        return True
    if kind == "area":
        ar.async_get(hass).async_update(target.removeprefix("area:"), aliases={*aliases, phrase})
    else:
        er.async_get(hass).async_update_entity(target, aliases={*aliases, phrase})
    return True


class AliasFlow(RepairsFlow):
    """Add a taught name as an alias, once the user says so."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.offer = data

    async def async_step_init(self, user_input: dict[str, str] | None = None) -> data_entry_flow.FlowResult:
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> data_entry_flow.FlowResult:
        placeholders = {"phrase": str(self.offer["phrase"]), "name": str(self.offer["name"])}
        if user_input is not None:
            if not add_alias(self.hass, str(self.offer["target"]), str(self.offer["phrase"])):
                return self.async_abort(reason="target_gone", description_placeholders=placeholders)
            return self.async_create_entry(title="", data={})
        return self.async_show_form(
            step_id="confirm", data_schema=vol.Schema({}), description_placeholders=placeholders
        )


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    """The fix flow of a selflearn repair issue (only the alias offers are fixable)."""
    if issue_id.startswith(f"{ISSUE_ALIAS}_") and data is not None:
        return AliasFlow(dict(data))
    raise data_entry_flow.UnknownStep(f"selflearn has no fix for {issue_id}")
