"""Entity and area aliases from the labels (``selflearn label export --household H``: ``aliases.yaml``).

A transferred label places each slot in the failed request's words (:mod:`selflearn.labels.spans`).
When the words a user said for a device or an area are none of its configured names or aliases
-- "the big light" for the Reading Lamp, "the lounge" for the Living Room -- and the request
only failed for want of them, they are a candidate **alias**: added in Home Assistant, the
household's other sentences with those words work too, where a custom sentence fixes only the
one phrasing. A candidate needs at least :data:`MIN_TURNS` labelled turns of at least the
export's confidence (one could be a recogniser's slip); it is the household's own, never pooled.

The file has the layout of ``selflearn concepts export``'s (``{entity_id: [alias, ...]}``, areas
under ``areas:``) with the evidence as comments. Home Assistant has no aliases file: a person adds
each in the UI (entity or area settings -> Voice assistants -> Aliases) or through the registries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import yaml

from selflearn.core.home import Home, normalize_name
from selflearn.labels.labelled import LabelledTurn

__all__ = ["MIN_TURNS", "AliasCandidate", "alias_candidates", "aliases_file"]

MIN_TURNS = 2
"""Labelled turns a candidate alias needs."""


@dataclass
class AliasCandidate:
    """Words a household's users said for one of its devices or areas."""

    kind: str
    """``entity`` or ``area``."""
    target: str
    """The entity id or area id."""
    name: str
    """Its configured name."""
    alias: str
    """The words said (normalised: lower case, no punctuation)."""
    turns: list[LabelledTurn] = field(default_factory=list)

    @property
    def users(self) -> int:
        return len({t.user_id for t in self.turns})


def alias_candidates(
    turns: Iterable[LabelledTurn], home: Home, min_confidence: float, min_turns: int = MIN_TURNS
) -> list[AliasCandidate]:
    """Candidate aliases of ``home`` from its households' transferred labels in ``turns`` (the
    caller passes one household's turns), most said first."""
    found: dict[tuple[str, str, str], AliasCandidate] = {}
    for turn in turns:
        if not turn.transferred or turn.confidence < min_confidence:
            continue
        for s in turn.slots:
            if not s.said or s.slot not in ("name", "area"):
                continue
            said = normalize_name(turn.text[int(s.start or 0) : int(s.end or 0)])
            if not said:
                continue
            if s.slot == "name":
                entities = home.entities_named(s.value)
                if len(entities) != 1 or said in {normalize_name(n) for n in entities[0].spoken_names}:
                    continue
                key = ("entity", entities[0].entity_id, said)
                name = entities[0].name
            else:
                area = home.area_named(s.value)
                if area is None or said in {normalize_name(n) for n in (area.name, *area.aliases)}:
                    continue
                key = ("area", area.area_id, said)
                name = area.name
            if home.entities_named(said) or home.area_named(said) is not None:
                continue  # another device's or area's name: not an alias of this one
            found.setdefault(key, AliasCandidate(key[0], key[1], name, said)).turns.append(turn)
    kept = [c for c in found.values() if len(c.turns) >= min_turns]
    return sorted(kept, key=lambda c: (-len(c.turns), c.kind, c.target, c.alias))


def _comment(text: str, indent: int = 0) -> str:
    return "".join(f"{' ' * indent}# {line}\n" for line in text.splitlines())


def aliases_file(candidates: Iterable[AliasCandidate], household: str) -> str:
    """The ``aliases.yaml`` of ``household``'s candidates."""
    groups: dict[str, dict[str, list[AliasCandidate]]] = {"entity": {}, "area": {}}
    for c in candidates:
        groups[c.kind].setdefault(c.target, []).append(c)
    text = _comment(
        f"Words household {household}'s users said for a device or an area that are none of its\n"
        "names, from requests that failed and were labelled from what worked next (exported by\n"
        "`selflearn label export --household`; review before adding). Home Assistant has no aliases\n"
        "file: add each alias in the UI (the entity's or area's settings -> Voice assistants ->\n"
        "Aliases) or through the entity and area registries. Entities are keyed by entity id;\n"
        "areas (under `areas:`) by area id."
    )

    def block(items: dict[str, list[AliasCandidate]], indent: int) -> str:
        out = ""
        for target in sorted(items):
            out += f"{' ' * indent}{yaml.safe_dump(target).splitlines()[0]}:\n"
            for c in items[target]:
                low = min(t.confidence for t in c.turns)
                evidence = (
                    f"for {c.name}: said in {len(c.turns)} failed turn(s) by {c.users} user(s) "
                    f"(label confidence >= {low:.2f})"
                )
                out += _comment(evidence, indent + 2)
                out += f"{' ' * (indent + 2)}- {yaml.safe_dump(c.alias).splitlines()[0]}\n"
        return out

    body = block(groups["entity"], 0)
    if groups["area"]:
        body += "areas:\n" + block(groups["area"], 2)
    return text + (body or "{}\n")
