"""What a household taught the reference assistant, exported as Home Assistant configuration to
review and install by hand (docs/concepts.md):

* ``aliases.yaml``: every taught **name**, as ``{entity_id: [alias, ...]}`` and, under ``areas:``,
  ``{area_id: [alias, ...]}`` -- added in Home Assistant's UI (entity or area settings -> Voice
  assistants -> Aliases) or through the entity and area registries;
* ``custom_sentences/en/selflearn_<household>.yaml``: every **phrasing** as a sentence of the
  Home Assistant intent its meaning parses to (with the parsed slots fixed), and every
  **routine** as a custom intent ``SelflearnRoutine<Phrase>``, in Home Assistant's custom
  sentence format (it loads with hassil); the taught ``{area}`` parameter stays a ``{area}``
  list reference;
* ``intent_script.yaml``: the ``intent_script`` entries that run the routines' sentences (and any
  phrasing the strict NLU cannot map to one intent), each sentence as the Home Assistant action
  it means, or, when it has no exact equivalent, as a ``conversation.process`` call with the
  sentence itself;
* **preferences** ("my usual temperature is 21") as a comment block: Home Assistant has no such
  configuration.

Only the given household's concepts are exported; a concept taught for one user only is marked
with the user id in a comment (Home Assistant's aliases and sentences apply to everyone).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from selflearn.assistant.nlu import HomeAssistantNlu
from selflearn.core.errors import DataError
from selflearn.core.guards import is_sensitive
from selflearn.core.home import Home, normalize_name
from selflearn.core.schema import Concept, SlotValue
from selflearn.dialogue.concepts import describe

__all__ = ["ExportResult", "ParsedSentence", "export_concepts", "parse_sentence", "routine_intent_name"]

AREA = "{area}"
TOGGLE_DOMAINS = frozenset(
    ["light", "switch", "fan", "input_boolean", "media_player", "climate", "humidifier", "siren", "remote"]
)
"""Domains whose ``turn_on``/``turn_off`` services do what HassTurnOn/HassTurnOff do to them."""
OTHER_VERBS = {
    "lock": ("lock", "unlock"),
    "cover": ("open_cover", "close_cover"),
    "valve": ("open_valve", "close_valve"),
}
"""Domains HassTurnOn/HassTurnOff act on with other services: (for on, for off)."""
AREA_ID = "{{ area_id(area) or area }}"
"""The id of the area said for ``{area}`` (Home Assistant's list value is its id or its name)."""
AREA_NAME = "{{ area_name(area) or area }}"
"""The name of the area said for ``{area}``."""

_nlu: HomeAssistantNlu | None = None


def _strict() -> HomeAssistantNlu:
    global _nlu
    if _nlu is None:
        _nlu = HomeAssistantNlu("strict")
    return _nlu


@dataclass(frozen=True)
class ParsedSentence:
    """What Home Assistant's strict NLU makes of one taught sentence."""

    sentence: str
    """As taught (may contain ``{area}``)."""
    intent: str | None
    """The intent it parses to; ``None`` when strict matching does not understand it alone."""
    slots: dict[str, SlotValue] = field(default_factory=dict)
    """The parsed slots, without the area when that comes from ``{area}`` or the context."""
    area: Literal["param", "context"] | None = None
    """``param``: the ``area`` slot is what ``{area}`` is said as; ``context``: the sentence
    names no area and takes the satellite's (``turn off the lights``)."""


def _plain_slots(slots: dict[str, SlotValue]) -> dict[str, SlotValue]:
    """Whole-number floats as ints (``brightness: 20``, as a person would write it)."""
    return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in slots.items()}


def parse_sentence(sentence: str, home: Home) -> ParsedSentence:
    """Parse ``sentence`` (which may hold ``{area}``) with the strict NLU in ``home``; the area
    is a parameter (or the context's) only if two different areas both land in the area slot."""
    nlu = _strict()
    probes = home.areas[:2]
    said: list[tuple[str, str | None, str]]  # (text, context area, the area slot it must give)
    if AREA in sentence:
        said = [(sentence.replace(AREA, normalize_name(a.name)), None, a.area_id) for a in probes]
        kind: Literal["param", "context"] = "param"
    else:
        found = nlu.recognize(sentence, home, explain_failures=False).trace
        if found.matched and found.intent:
            return ParsedSentence(sentence, found.intent, _plain_slots(found.slots))
        said = [(sentence, a.area_id, a.area_id) for a in probes]
        kind = "context"
    readings = []
    for text, context, area_id in said:
        trace = nlu.recognize(text, home, context, explain_failures=False).trace
        if not trace.matched or not trace.intent or trace.slots.get("area") != area_id:
            return ParsedSentence(sentence, None)
        rest = {k: v for k, v in trace.slots.items() if k != "area"}
        readings.append((trace.intent, tuple(sorted(rest.items()))))
    if not readings or len(set(readings)) != 1:
        return ParsedSentence(sentence, None)
    intent, rest_items = readings[0]
    return ParsedSentence(sentence, intent, _plain_slots(dict(rest_items)), kind)


def routine_intent_name(phrase: str, prefix: str = "SelflearnRoutine") -> str:
    """``study mode in the {area}`` -> ``SelflearnRoutineStudyModeInTheArea``."""
    words = re.findall(r"[A-Za-z0-9]+", phrase.replace("'", ""))
    return prefix + "".join(w[:1].upper() + w[1:] for w in words)


def _template(phrase: str) -> str:
    """A hassil sentence template for a taught phrase: its words, ``{area}`` kept as the list."""
    parts = phrase.split(AREA)
    return f" {AREA} ".join(" ".join(re.sub(r"[^\w' ]", " ", p).split()) for p in parts).strip()


def _spoken(sentence: str) -> str:
    """A sentence for ``conversation.process``, ``{area}`` said as the area's name."""
    return sentence.replace(AREA, AREA_NAME)


def _targets(parsed: ParsedSentence, home: Home) -> dict[str, Any] | None:
    """The service target of a parsed HassTurnOn/HassTurnOff/HassLightSet sentence, or ``None``
    when it has no exact equivalent; the target's domain goes in ``_domain``."""
    slots = parsed.slots
    if set(slots) - {"name", "domain", "area"}:
        return None
    area = slots.get("area")
    if "name" in slots:
        if parsed.area is not None:
            return None  # "the lamp in the {area}": which lamp depends on the area
        entities = [e for e in home.entities if e.name == slots["name"] and area in (None, e.area_id)]
        if len(entities) != 1 or ("domain" in slots and entities[0].domain != slots["domain"]):
            return None
        return {"entity_id": entities[0].entity_id, "_domain": entities[0].domain}
    domain = slots.get("domain")
    if not isinstance(domain, str):
        return None
    if parsed.area is not None:
        return {"area_id": AREA_ID, "_domain": domain}
    if isinstance(area, str):
        return {"area_id": area, "_domain": domain}
    return {"entity_id": "all", "_domain": domain}


def _action(parsed: ParsedSentence, home: Home) -> dict[str, Any]:
    """The Home Assistant action that does what ``parsed`` does (``conversation.process`` with
    the sentence when there is no exact one)."""
    fallback = {"action": "conversation.process", "data": {"text": _spoken(parsed.sentence)}}
    if parsed.intent in ("HassTurnOn", "HassTurnOff"):
        target = _targets(parsed, home)
        if target is None:
            return fallback
        domain = target.pop("_domain")
        on = parsed.intent == "HassTurnOn"
        if domain in OTHER_VERBS:  # HassTurnOn locks a lock, opens a cover or valve
            return {"action": f"{domain}.{OTHER_VERBS[domain][0 if on else 1]}", "target": target}
        if domain not in TOGGLE_DOMAINS:
            return fallback
        verb = "turn_on" if on else "turn_off"
        service = (
            f"homeassistant.{verb}"
            if "entity_id" in target and target["entity_id"] != "all"
            else (f"{domain}.{verb}")
        )
        return {"action": service, "target": target}
    if parsed.intent == "HassLightSet":
        slots = dict(parsed.slots)
        brightness = slots.pop("brightness", None)
        if not isinstance(brightness, int) or isinstance(brightness, bool):
            return fallback
        target = _targets(ParsedSentence(parsed.sentence, parsed.intent, slots, parsed.area), home)
        if target is None or target.pop("_domain") != "light":
            return fallback
        return {"action": "light.turn_on", "target": target, "data": {"brightness_pct": brightness}}
    return fallback


@dataclass
class ExportResult:
    """What :func:`export_concepts` wrote."""

    files: dict[str, Path] = field(default_factory=dict)
    """``aliases``, ``sentences``, ``scripts`` -> the file written."""
    names: int = 0
    phrasings: int = 0
    routines: int = 0
    preferences: int = 0
    skipped: list[str] = field(default_factory=list)
    """Phrases left out: Home Assistant already understands them (selflearn never used them)."""
    sensitive: list[str] = field(default_factory=list)
    """Phrases left out: they lock or unlock, open a door, a gate or a cover, or arm an alarm,
    which Home Assistant would do without asking (selflearn asks every time)."""


def already_understood(phrase: str, home: Home) -> str | None:
    """What Home Assistant's strict NLU already makes of ``phrase`` as it is: ``always`` (said
    anywhere: the assistant never applies a concept to a request that already works),
    ``in an area`` (only from a satellite with an area, e.g. "lights out") or ``None``."""
    area = home.areas[0] if home.areas else None
    said = phrase.replace(AREA, normalize_name(area.name) if area is not None else "")
    nlu = _strict()
    if nlu.recognize(said, home, explain_failures=False).trace.matched:
        return "always"
    if area is not None and nlu.recognize(said, home, area.area_id, explain_failures=False).trace.matched:
        return "in an area"
    return None


def _who(concept: Concept) -> str:
    taught = f"taught by {concept.user_id} on {concept.timestamp:%Y-%m-%d}"
    if concept.scope == "user":
        return f"{taught}; only for user {concept.user_id} in selflearn"
    return taught


def _comment(text: str, indent: int = 0) -> str:
    return "".join(f"{' ' * indent}# {line}\n" for line in text.splitlines() or [""])


def _dump(data: Any, indent: int) -> str:
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=110)
    return "".join(f"{' ' * indent}{line}\n" for line in text.splitlines())


def _aliases_file(concepts: Iterable[Concept], household_id: str) -> tuple[str, int]:
    entities: dict[str, list[tuple[str, Concept]]] = {}
    areas: dict[str, list[tuple[str, Concept]]] = {}
    for c in concepts:
        if c.kind != "name" or not c.target:
            continue
        if c.target.startswith("area:"):
            areas.setdefault(c.target.removeprefix("area:"), []).append((c.phrase, c))
        else:
            entities.setdefault(c.target, []).append((c.phrase, c))
    text = _comment(
        f"Names household {household_id} taught selflearn, as Home Assistant aliases (exported by\n"
        "`selflearn concepts export`; review before adding). Home Assistant has no aliases file:\n"
        "add each alias in the UI (Settings -> Areas, labels & zones / Entities -> the entity or area\n"
        "-> settings -> Voice assistants -> Aliases) or through the entity and area registries.\n"
        "Entities are keyed by entity id; areas (under `areas:`) by area id. An alias marked as for\n"
        "one user applies to everyone once added to Home Assistant."
    )
    n = 0

    def block(groups: dict[str, list[tuple[str, Concept]]], indent: int) -> str:
        nonlocal n
        out = ""
        for key in sorted(groups):
            out += f"{' ' * indent}{yaml.safe_dump(key).splitlines()[0]}:\n"
            for alias, c in groups[key]:
                out += _comment(f"{describe(c)} ({_who(c)})", indent + 2)
                out += _dump([alias], indent + 2)
                n += 1
        return out

    body = block(entities, 0)
    if areas:
        body += "areas:\n" + block(areas, 2)
    return text + (body or "{}\n"), n


def export_concepts(concepts: Iterable[Concept], household_id: str, home: Home, out: Path) -> ExportResult:
    """Write ``household_id``'s concepts (any others in ``concepts`` are left out) as Home
    Assistant configuration into the folder ``out``; see the module docstring."""
    mine = sorted(
        (c for c in concepts if c.household_id == household_id), key=lambda c: (c.timestamp, c.concept_id)
    )
    result = ExportResult()
    try:
        out.mkdir(parents=True, exist_ok=True)
        sentences_dir = out / "custom_sentences" / "en"
        sentences_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot write the export to {out}: {exc.strerror or exc}") from exc

    aliases, result.names = _aliases_file(mine, household_id)

    # intent -> [(comment, data item)]; intent_script name -> (comment, script)
    intents: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    scripts: dict[str, tuple[str, dict[str, Any]]] = {}
    preferences: list[Concept] = []
    for c in mine:
        if c.kind == "preference":
            preferences.append(c)
            continue
        if c.kind not in ("phrasing", "routine"):
            continue
        note = f"{describe(c)} ({c.kind}, {_who(c)})"
        if any(is_sensitive(sentence, home=home) for sentence in c.meaning):
            # Home Assistant would run it unasked; selflearn asks "Did you mean ...?" every time
            result.sensitive.append(c.phrase)
            continue
        understood = already_understood(c.phrase, home)
        if understood == "always":
            result.skipped.append(c.phrase)
            continue
        if understood is not None:
            note += (
                f"\nNote: from a satellite with an area, Home Assistant already understands {c.phrase!r}"
                "\n(selflearn then leaves it alone); with this sentence installed both readings match."
            )
        template = _template(c.phrase)
        parsed = [parse_sentence(s, home) for s in c.meaning]
        if c.kind == "phrasing" and len(parsed) == 1:
            p = parsed[0]
            direct = p.intent is not None and (p.area == "param") == (AREA in c.phrase)
            if direct and p.intent is not None:
                item: dict[str, Any] = {"sentences": [template]}
                if p.slots:
                    item["slots"] = dict(p.slots)
                if p.area == "context":
                    item["requires_context"] = {"area": {"slot": True}}
                intents.setdefault(p.intent, []).append((note, item))
                result.phrasings += 1
                continue
        # A routine (or a phrasing strict matching cannot map to one intent): a custom intent
        # whose intent_script runs each sentence.
        prefix = "SelflearnRoutine" if c.kind == "routine" else "SelflearnPhrasing"
        name = routine_intent_name(c.phrase, prefix)
        while name in intents:
            name += "X"
        item = {"sentences": [template]}
        context_steps = AREA not in c.phrase and any(p.area is not None for p in parsed)
        if context_steps:
            item["requires_context"] = {"area": {"slot": True}}
        intents[name] = [(note, item)]
        steps = []
        for p in parsed:
            # The script's `area` is what {area} was said as, or (context_steps) the satellite's.
            if p.area == "context" and not context_steps:
                steps.append({"action": "conversation.process", "data": {"text": _spoken(p.sentence)}})
            else:
                steps.append(_action(p, home))
        label = c.phrase.replace(AREA, AREA_NAME)
        scripts[name] = (
            note,
            {
                "description": f"selflearn {c.kind}: {c.phrase}",
                "action": steps,
                "speech": {"text": f"OK, {label}."},
            },
        )
        if c.kind == "routine":
            result.routines += 1
        else:
            result.phrasings += 1
    result.preferences = len(preferences)

    sentences = _comment(
        f"What household {household_id} taught selflearn, as Home Assistant custom sentences (exported\n"
        "by `selflearn concepts export`; review before installing). Copy this file to\n"
        "<config>/custom_sentences/en/ and restart Home Assistant (or reload the conversation\n"
        "integration). SelflearnRoutine*/SelflearnPhrasing* intents need the intent_script entries of\n"
        "intent_script.yaml. {area} is Home Assistant's built-in list of area names."
    )
    for phrase in result.skipped:
        sentences += _comment(f"left out: {phrase!r} is a sentence Home Assistant already understands")
    for phrase in result.sensitive:
        sentences += _comment(
            f"left out: {phrase!r} locks, opens or arms something, which Home Assistant would do without "
            "asking (selflearn asks first)"
        )
    sentences += 'language: "en"\n'
    if not intents:
        sentences += "intents: {}\n"
    else:
        sentences += "intents:\n"
        for intent, items in intents.items():
            sentences += f"  {intent}:\n    data:\n"
            for note, item in items:
                sentences += _comment(note, 6) + _dump([item], 6)
    if preferences:
        sentences += "\n" + _comment(
            "Preferences (Home Assistant has no configuration for them; kept here for the record):", 0
        )
        for c in preferences:
            sentences += _comment(f"  {describe(c)} (default of {c.target}; {_who(c)})")

    script_text = _comment(
        "intent_script entries for the custom intents of custom_sentences/en/selflearn_"
        f"{household_id}.yaml\n(exported by `selflearn concepts export`; review before installing).\n"
        "Merge the `intent_script:` key below into configuration.yaml (or `intent_script: !include`\n"
        "a file holding what is under it), then restart Home Assistant. Actions use the 2024.8+ syntax."
    )
    if not scripts:
        script_text += "intent_script: {}\n"
    else:
        script_text += "intent_script:\n"
        for name, (note, script) in scripts.items():
            script_text += _comment(note, 2) + _dump({name: script}, 2)

    files = {
        "aliases": out / "aliases.yaml",
        "sentences": sentences_dir / f"selflearn_{household_id}.yaml",
        "scripts": out / "intent_script.yaml",
    }
    try:
        for key, text in (("aliases", aliases), ("sentences", sentences), ("scripts", script_text)):
            files[key].write_text(text, encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot write the export to {out}: {exc.strerror or exc}") from exc
    result.files = files
    return result
