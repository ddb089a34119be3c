"""What the household taught selflearn, offered back to Home Assistant -- never applied unasked.

Taught phrasings ("when I say lights out I mean turn off the lights") and the rules someone
approved on selflearn's review page are offered the same way: "selflearn can teach Assist what
this home taught it: N sentence(s)" (a plain placeholder: 2026.11 drops a title with a plural
rule); its fix writes them to ``custom_sentences/en/selflearn.yaml`` and reloads Assist, so Home
Assistant's own matcher understands them.

When someone teaches a name ("the mothership is the living room lamp", or answers "I don't know
what mothership is. Can you teach me?"), the integration raises a repair issue under *Settings ->
System -> Repairs*: "selflearn learned that *mothership* means *Living Room Lamp*: add it as an
alias?". Its fix adds the alias to the entity (or area) in Home Assistant's registry, so Assist
itself understands the name from then on, with or without selflearn; ignoring it changes
nothing. Names the household taught earlier (or elsewhere, e.g. ``selflearn chat``) are offered
at start and every hour; the offer of a name the household made selflearn forget is withdrawn
then, and at once when it is forgotten through Assist.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from homeassistant import data_entry_flow
from homeassistant.components.repairs import RepairsFlow
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir

from .compat import RepairsResult, vol
from .const import DOMAIN, ISSUE_ALIAS, ISSUE_SENTENCES, SENTENCES_FILE


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
    return "entity", {a for a in entry.aliases if isinstance(a, str)}, str(name)


def _with_alias(current: Collection[Any], phrase: str) -> Any:
    """An entity's aliases with ``phrase`` added, in the registry's own shape: since 2026.x an
    ordered list that holds a marker for the entity's own name (kept: without it the entity no
    longer answers to its name), before that a set."""
    if isinstance(current, list):
        return [*current, phrase]
    return {*current, phrase}


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


async def async_offer_taught(hass: HomeAssistant, entry_id: str, client: Any, household_id: str) -> int:
    """Offer every name the household taught that Home Assistant does not have yet, and withdraw
    the offers of names it has since forgotten ("forget the telly": approving the offer would
    have added the alias it took back); returns how many are offered."""
    concepts = await client.concepts(household_id)
    if concepts is None:
        return 0
    known = {f"{ISSUE_ALIAS}_{c.get('concept_id')}" for c in concepts if isinstance(c, dict)}
    registry = ir.async_get(hass)
    for (domain, issue_id), issue in list(registry.issues.items()):
        if domain != DOMAIN or not issue_id.startswith(f"{ISSUE_ALIAS}_") or issue_id in known:
            continue
        if (issue.data or {}).get("entry_id") == entry_id:
            ir.async_delete_issue(hass, DOMAIN, issue_id)
    return sum(offer_alias(hass, entry_id, concept) for concept in concepts if isinstance(concept, dict))


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
        registry = er.async_get(hass)
        entry = registry.async_get(target)
        assert entry is not None  # alias_target found it
        registry.async_update_entity(target, aliases=_with_alias(entry.aliases, phrase))
    return True


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".yaml.partial")
    staging.write_text(text, encoding="utf-8")
    staging.replace(path)  # Home Assistant never reads half a file


async def async_offer_sentences(hass: HomeAssistant, entry_id: str, client: Any, household_id: str) -> bool:
    """Raise the repair issue that offers to write the household's taught phrasings and approved
    rules as custom sentences, when there are some that the file does not hold yet; whether it
    was raised (it is withdrawn when the file is up to date)."""
    found = await client.sentences(household_id)
    if found is None:
        return False
    issue_id = f"{ISSUE_SENTENCES}_{entry_id}"
    path = Path(hass.config.path(*SENTENCES_FILE))
    current = await hass.async_add_executor_job(_read, path)
    if not found["sentences"] or found["yaml"] == current:
        ir.async_delete_issue(hass, DOMAIN, issue_id)
        return False
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable=True,
        is_persistent=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key=ISSUE_SENTENCES,
        translation_placeholders={"count": str(found["sentences"]), "path": "/".join(SENTENCES_FILE)},
        data={"entry_id": entry_id, "household_id": household_id},
    )
    return True


class SentencesFlow(RepairsFlow):
    """Write the taught sentences into Home Assistant's configuration, once the user says so."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.offer = data

    async def async_step_init(self, user_input: dict[str, str] | None = None) -> RepairsResult:
        return await self.async_step_confirm()

    async def async_step_confirm(self, user_input: dict[str, str] | None = None) -> RepairsResult:
        placeholders = {"path": "/".join(SENTENCES_FILE)}
        if user_input is None:
            return self.async_show_form(
                step_id="confirm", data_schema=vol.Schema({}), description_placeholders=placeholders
            )
        entry = self.hass.data.get(DOMAIN, {}).get(str(self.offer["entry_id"]))
        if entry is None:
            return self.async_abort(reason="not_loaded", description_placeholders=placeholders)
        found = await entry["client"].sentences(str(self.offer["household_id"]))
        if found is None or not found["sentences"]:
            return self.async_abort(reason="service_unreachable", description_placeholders=placeholders)
        path = Path(self.hass.config.path(*SENTENCES_FILE))
        await self.hass.async_add_executor_job(_write, path, found["yaml"])
        await self.hass.services.async_call("conversation", "reload", {}, blocking=True)
        return self.async_create_entry(title="", data={})


class AliasFlow(RepairsFlow):
    """Add a taught name as an alias, once the user says so."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.offer = data

    async def async_step_init(self, user_input: dict[str, str] | None = None) -> RepairsResult:
        return await self.async_step_confirm()

    async def async_step_confirm(self, user_input: dict[str, str] | None = None) -> RepairsResult:
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
    if issue_id.startswith(f"{ISSUE_SENTENCES}_") and data is not None:
        return SentencesFlow(dict(data))
    raise data_entry_flow.UnknownStep(f"selflearn has no fix for {issue_id}")
