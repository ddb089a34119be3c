"""Loader of ``ha_tests``: the English test sentences of ``home-assistant/intents``.

Slot values that are spoken are located in the sentence and replaced by placeholders; implied
slots become fixed slots; sentences whose slot values cannot be found in the text are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import yaml

from selflearn.simulation.corpora.common import _SPACES, _Collector, _find, _norm, _number_words
from selflearn.simulation.phrasing import Phrasing

_HA_TESTS_DIR: Final = Path("home_assistant_intents") / "tests" / "en"


# --------------------------------------------------------------------------------------------
# Home Assistant test sentences
# --------------------------------------------------------------------------------------------

_TIMER_INTENTS: Final = frozenset(
    {
        "HassStartTimer",
        "HassCancelTimer",
        "HassCancelAllTimers",
        "HassIncreaseTimer",
        "HassDecreaseTimer",
        "HassPauseTimer",
        "HassUnpauseTimer",
        "HassTimerStatus",
    }
)

_SLOT_PLACEHOLDER: Final = {
    "area": "area",
    "floor": "floor",
    "brightness": "brightness",
    "temperature": "temperature",
    "position": "position",
    "volume_level": "volume",
    "volume": "volume",
    "minutes": "minutes",
    "seconds": "seconds",
    "hours": "hours",
    "item": "item",
    "color": "color",
    "timer_name": "timer_name",
}
"""Spoken Home Assistant slots -> placeholder (``name`` is ``{name}`` or, for timers, ``{timer_name}``)."""

_SPOKEN_LITERAL: Final = frozenset(
    {
        "search_query",
        "message",
        "conversation_command",
        "start_hours",
        "start_minutes",
        "start_seconds",
        "zone",
    }
)
"""Spoken slots without a placeholder: kept as literal words and recorded as fixed slots."""

_HALF: Final = ("and a half", "and a 1/2", "half a", "half an", "1/2 a", "1/2 an")
_IMPLIED_WORDS: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    ("brightness", "100"): ("maximum", "max", "highest"),
    ("brightness", "1"): ("minimum", "min", "lowest"),
    ("seconds", "30"): _HALF,
    ("minutes", "30"): _HALF,
}
"""Slot values Home Assistant's own lists say with words (``brightness_level``, ``timer_half``):
they become fixed slots and the words stay literal."""


def _values(raw: Any) -> list[str]:
    items = raw if isinstance(raw, list) else [raw]
    out: list[str] = []
    for item in items:
        text = str(item).strip()
        if text and text not in out:
            out.append(text)
    return out


def _fixture_aliases(fixtures: Any) -> dict[str, list[str]]:
    """Lower-case name -> aliases for areas, floors and entities of ``_fixtures.yaml``."""
    out: dict[str, list[str]] = {}
    if not isinstance(fixtures, dict):
        return out
    for key in ("areas", "floors", "entities"):
        for item in fixtures.get(key) or []:
            if isinstance(item, dict) and item.get("name") and item.get("aliases"):
                out[str(item["name"]).lower()] = [str(a) for a in item["aliases"]]
    return out


def _ha_pattern(
    sentence: str,
    intent: str,
    slots: Mapping[str, Any],
    context: Mapping[str, Any],
    aliases: Mapping[str, list[str]],
) -> tuple[str, dict[str, str]] | str:
    """(pattern, fixed slots) for one test sentence, or the reason it is dropped."""
    text = _norm(sentence)
    if not text:
        return "empty"
    fixed: dict[str, str] = {}
    # (candidates, slot, placeholder or None for literal)
    spoken: list[tuple[list[str], str, str | None]] = []
    for slot, raw in slots.items():
        values = _values(raw)
        if not values:
            continue
        if slot == "name" and values == ["all"]:
            fixed[slot] = "all"  # Home Assistant's marker for "every entity of the domain"
            continue
        if slot == "name":
            placeholder: str | None = "timer_name" if intent in _TIMER_INTENTS else "name"
        elif slot in _SLOT_PLACEHOLDER:
            placeholder = _SLOT_PLACEHOLDER[slot]
        elif slot in _SPOKEN_LITERAL:
            placeholder = None
        else:
            fixed[slot] = values[0]
            continue
        candidates: list[str] = []
        for value in values:
            candidates.append(_norm(value))
            candidates.extend(_norm(a) for a in aliases.get(value.lower(), []))
            if re.fullmatch(r"\d+", value):
                words = _number_words(int(value))
                if words:
                    candidates.append(words)
        spoken.append((sorted(set(candidates), key=len, reverse=True), slot, placeholder))

    claimed: list[tuple[int, int, str | None]] = []
    for candidates, slot, placeholder in sorted(spoken, key=lambda s: -max(len(c) for c in s[0])):
        spans = [(s, e) for s, e, _ in claimed]
        hit = next((h for h in (_find(text, c, spans) for c in candidates) if h is not None), None)
        value = _values(slots[slot])[0]
        if hit is not None:
            claimed.append((hit[0], hit[1], placeholder))
            if placeholder is None:
                fixed[slot] = text[hit[0] : hit[1]]  # as spoken, which is what the matcher extracts
            continue
        implied = _IMPLIED_WORDS.get((slot, value), ())
        word_hit = next((h for h in (_find(text, w, spans) for w in implied) if h is not None), None)
        if word_hit is not None:
            claimed.append((word_hit[0], word_hit[1], None))
            fixed[slot] = value
            continue
        if slot in context and _values(context[slot])[:1] == [value]:
            continue  # supplied by the device's context (e.g. its area), not spoken
        return f"slot_not_in_text:{slot}"

    pieces: list[str] = []
    pos = 0
    for start, end, placeholder in sorted(claimed):
        pieces.append(text[pos:start])
        pieces.append(text[start:end] if placeholder is None else "{" + placeholder + "}")
        pos = end
    pieces.append(text[pos:])
    return _SPACES.sub(" ", "".join(pieces)).strip(), fixed


def _iter_ha_tests(test_dir: Path) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(sentence, intent, slots, context) for every test sentence under ``test_dir``."""
    paths = sorted(test_dir.glob("*.yaml")) + sorted(test_dir.glob("*/*.yaml"))
    for path in paths:
        if path.name.startswith("_"):
            continue
        with path.open(encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
        if not isinstance(doc, dict):
            continue
        folder_intent = path.parent.name if path.parent != test_dir else None
        for test in doc.get("tests") or []:
            if not isinstance(test, dict):
                continue
            raw_intent = test.get("intent")
            intent_block: dict[str, Any] = raw_intent if isinstance(raw_intent, dict) else {}
            intent = str(intent_block.get("name") or folder_intent or "")
            slots = intent_block.get("slots") if "slots" in intent_block else test.get("slots")
            context = intent_block.get("context") or test.get("context") or {}
            context_dict = dict(context) if isinstance(context, dict) else {}
            for sentence in test.get("sentences") or []:
                yield str(sentence), intent, dict(slots or {}), context_dict


def _load_ha_tests(data_dir: Path, collector: _Collector) -> None:
    test_dir = data_dir / _HA_TESTS_DIR
    if not test_dir.is_dir():
        return
    collector.report.available = True
    aliases: dict[str, list[str]] = {}
    fixtures_path = test_dir / "_fixtures.yaml"
    if fixtures_path.is_file():
        with fixtures_path.open(encoding="utf-8") as fh:
            aliases = _fixture_aliases(yaml.safe_load(fh))
    for sentence, intent, slots, context in _iter_ha_tests(test_dir):
        collector.report.rows_read += 1
        if not intent:
            collector.drop("no_intent")
            continue
        result = _ha_pattern(sentence, intent, slots, context, aliases)
        if isinstance(result, str):
            collector.drop(result)
            continue
        pattern, fixed = result
        collector.add(
            Phrasing(
                pattern=pattern, intent=intent, fixed_slots=fixed, source="ha_tests", original_intent=intent
            )
        )
