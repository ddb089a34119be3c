"""Home Assistant custom sentences from the labels (``selflearn label export``; the rules are in
:mod:`selflearn.labels.export` and docs/label-export.md)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import yaml

from selflearn.core.delex import Delexicalizer
from selflearn.core.errors import ConfigError
from selflearn.core.home import Home, normalize_name
from selflearn.core.text import FUNCTION_WORDS
from selflearn.labels.labelled import LabelledTurn

if TYPE_CHECKING:
    from hassil import RecognizeResult

    from selflearn.assistant.candidates import TemplateFilter

__all__ = [
    "LEFT_OUT",
    "LIST_SLOTS",
    "MIN_CONFIDENCE",
    "READ_BACK",
    "SAYS_NOTHING",
    "UNITS",
    "LeftOut",
    "SentencePattern",
    "SentencesExport",
    "ha_sentences",
    "sentences_file",
]

LIST_SLOTS = {"area": "area", "name": "name", "floor": "floor"}
"""Slots whose said values are Home Assistant's built-in lists (the registry's area, device and
floor names): slot -> the delexicalizer's placeholder of the same kind."""

MIN_CONFIDENCE = 0.5
"""Default least confidence of a label the export uses. On the online benchmark's 360-home
training logs, transferred labels are right about the intent 92-96 % of the time at every
confidence from 0.3 up (0.93 at 0.5-0.6, 0.97 at 0.8-0.9, against simulation truth): a higher bar
buys little precision and leaves most templates out (22 global templates at 0.8, 159 at 0.5);
below 0.3 accuracy drops to 0.80-0.83."""

RANGE_OF = {
    "hours": "timer_hours",
    "minutes": "timer_minutes",
    "seconds": "timer_seconds",
    "volume_level": "volume",
}
"""Slots whose numbers Home Assistant reads from a range list of another name (its timer and
volume sentences say ``{timer_minutes:minutes}``, ``{volume:volume_level}``); the others' list
has the slot's name (``{brightness}``)."""

UNITS = {"hours": "hour", "minutes": "minute", "seconds": "second"}
"""A timer's number slots and the unit word each needs after it in a template, before the next
slot, as in Home Assistant's own sentences (``{timer_hours:hours} and a half hours``). Users do
say "timer for 30 and 30 minute" (30 minutes 30 seconds), but a template of it reads a bare
number as seconds, and on the benchmark such templates acted mostly on misheard numbers ("timer
for thirty and forty minute"); without them the export fixed as much or slightly more
(docs/labels.md)."""

SAYS_NOTHING = FUNCTION_WORDS | {"tell", "show", "give", "say", "let", "know", "hey", "ok", "okay"}
"""Words that say nothing of what a request asks on their own: a template with no slot needs
another. "what is it" (heard for "what time is it" and for "how hot is it") or "tell me the"
("tell me the date") could mean anything."""

READ_BACK = 20
"""How many of a template's labelled turns are read back with hassil before it is written."""

LEFT_OUT = {
    "confidence": "label below the confidence bar",
    "no home": "its household has no home configuration in the store",
    "no template": "no sentence template can be made of it",
    "understood": "Home Assistant already understands it",
    "few users": "said by fewer users than a global sentence needs (household only)",
    "own name": "holds a household's own name, or words taken for a name in too few homes (household only)",
    "read back": "does not read back as its label",
    "conflict": "would change what another labelled request means",
}
"""The kinds of :class:`LeftOut`, with what they mean."""


@dataclass(frozen=True)
class LeftOut:
    """A request (or template) the export left out, and why."""

    what: str
    """The template, or the text of the turn when no template could be made."""
    kind: str
    """Why, in one of :data:`LEFT_OUT`'s words."""
    reason: str
    """Why it was left out, in words."""
    turns: int = 1
    """How many labelled turns it stands for."""
    household: str | None = None
    """The household whose own pattern it is (never shown in the global file)."""


@dataclass
class SentencePattern:
    """One sentence template and the labelled turns it was made from."""

    intent: str
    """The Home Assistant intent."""
    template: str
    """The hassil sentence template (``kill the lights in the {area}``)."""
    slots: tuple[tuple[str, Any], ...]
    """Fixed slots of the data item (``(("domain", "light"),)``)."""
    area_context: bool
    """The area comes from the device that heard the request (``requires_context``)."""
    turns: list[LabelledTurn] = field(default_factory=list)
    """The labelled turns said so."""
    own_names: dict[str, str] = field(default_factory=dict)
    """Household -> a name of its own the template holds (it cannot be global)."""
    unknown_words: dict[str, str] = field(default_factory=dict)
    """Household -> words of the template its assistant took for a name it does not know
    (``turn.unresolved``): a nickname, or words misheard as one. Global only when said in at
    least ``min_users`` homes (a home's nickname stays home)."""

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.intent, self.template, self.slots, self.area_context)

    @property
    def users(self) -> int:
        """Distinct users who said it."""
        return len({(t.household_id, t.user_id) for t in self.turns})

    @property
    def homes(self) -> int:
        """Distinct households it was said in."""
        return len({t.household_id for t in self.turns})

    def item(self) -> dict[str, Any]:
        """The data item of Home Assistant's custom sentence format."""
        item: dict[str, Any] = {"sentences": [self.template]}
        if self.slots:
            item["slots"] = dict(self.slots)
        if self.area_context:
            item["requires_context"] = {"area": {"slot": True}}
        return item


@dataclass
class SentencesExport:
    """What :func:`ha_sentences` made."""

    global_patterns: list[SentencePattern] = field(default_factory=list)
    """Templates for every Home Assistant (``selflearn.yaml``)."""
    household_patterns: dict[str, list[SentencePattern]] = field(default_factory=dict)
    """Household -> its own templates (only the exported household's)."""
    left_out: list[LeftOut] = field(default_factory=list)
    """What was left out, with reasons."""


@lru_cache(maxsize=1)
def _ha_data() -> dict[str, Any]:
    from home_assistant_intents import get_intents

    data = get_intents("en")
    if data is None:
        raise ConfigError("home-assistant-intents has no English intents")
    return data


def _range_lists() -> frozenset[str]:
    """Home Assistant's English number lists (``brightness``, ``temperature``, ...)."""
    return frozenset(name for name, info in _ha_data()["lists"].items() if "range" in info)


@lru_cache(maxsize=1)
def _wildcard_slots() -> dict[tuple[str, str], str]:
    """(intent, slot) -> the wildcard list Home Assistant reads that slot from in that intent's
    sentences (``HassShoppingListAddItem``'s ``item`` from ``shopping_list_item``: any words),
    when it reads the slot from no other list there."""
    data = _ha_data()
    lists: dict[tuple[str, str], set[str]] = {}
    for intent, info in data["intents"].items():
        for item in info.get("data", []):
            for sentence in item.get("sentences", []):
                for name, slot in re.findall(r"\{(\w+)(?::(\w+))?\}", sentence):
                    lists.setdefault((intent, slot or name), set()).add(name)
    return {
        key: name
        for key, names in lists.items()
        if len(names) == 1 and data["lists"].get(name := next(iter(names)), {}).get("wildcard")
    }


def _words(text: str) -> str:
    """Text as template words: lower case, no punctuation hassil would read as syntax."""
    return " ".join(re.sub(r"[^\w' ]", " ", text.casefold()).split())


def _value(text: str) -> Any:
    """A fixed slot value as Home Assistant gets it: numbers as numbers."""
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() else number


def _unit_follows(between: str, unit: str) -> bool:
    """Whether the first unit word (hour, minute, second) of ``between``, the words after a
    timer's number up to the next slot, is ``unit``."""
    units = [w.removesuffix("s") for w in _words(between).split() if w.removesuffix("s") in UNITS.values()]
    return bool(units) and units[0] == unit


def _pattern(
    turn: LabelledTurn, home: Home, delex: Delexicalizer, wildcards: bool = False
) -> SentencePattern | str:
    """The template of a labelled turn, or why it cannot have one (``wildcards``: see
    :func:`ha_sentences`)."""
    if turn.intent is None:
        return "no intent label"
    text = turn.text
    said = sorted((s for s in turn.slots if s.said), key=lambda s: s.start or 0)
    implied = [s for s in turn.slots if not s.said]
    pieces: list[tuple[bool, str]] = []  # (is a list reference, text)
    fixed: dict[str, Any] = {}
    own: str | None = None
    refs: set[str] = set()
    pos = 0
    ranges = _range_lists()
    for k, s in enumerate(said):
        start, end = int(s.start or 0), int(s.end or 0)
        upto = int(said[k + 1].start or 0) if k + 1 < len(said) else len(text)
        if not 0 <= start < end <= len(text) or start < pos:
            return f"slot {s.slot} has a span ({start}, {end}) that does not fit the text"
        words = text[start:end]
        pieces.append((False, text[pos:start]))
        pos = end
        kind = LIST_SLOTS.get(s.slot)
        said_as = delex(words).pattern
        numbers = RANGE_OF.get(s.slot, s.slot)  # the range list its numbers come from
        named = kind is not None and said_as == "{" + kind + "}"
        wildcard = _wildcard_slots().get((turn.intent, s.slot)) if wildcards else None
        if wildcard is not None:
            # any words (a shopping list's item): Home Assistant's wildcard list, as its own sentences
            if s.slot in refs:
                return f"the {s.slot} is said twice"
            refs.add(s.slot)
            pieces.append((True, "{" + (s.slot if wildcard == s.slot else f"{wildcard}:{s.slot}") + "}"))
        elif named or (numbers in ranges and said_as == "{number}"):
            if s.slot in refs:
                return f"the {s.slot} is said twice"
            refs.add(s.slot)
            if s.slot in UNITS and not _unit_follows(text[end:upto], UNITS[s.slot]):
                return f"the {s.slot} said is not followed by '{UNITS[s.slot]}' before the next slot"
            pieces.append((True, "{" + (s.slot if numbers == s.slot else f"{numbers}:{s.slot}") + "}"))
        else:
            # a nickname (or a word Home Assistant has no list for): kept as said, value fixed
            if kind is not None:
                own = own or words
            pieces.append((False, words))
            fixed[s.slot] = _value(s.value)
    pieces.append((False, text[pos:]))
    area_context = False
    for s in implied:
        if s.slot in fixed or s.slot in refs:
            continue
        if s.slot == "area":
            if "name" in refs:
                continue  # the device named says where
            area_context = True
        elif s.slot in ("name", "floor"):
            return f"the {s.slot} is not said in the text (Home Assistant needs it said)"
        elif s.slot == "domain" and "name" in refs:
            continue  # the device named says what it is; Home Assistant's own {name} sentences agree
        else:
            fixed[s.slot] = _value(s.value)
    template = " ".join(w for ref, piece in pieces if (w := piece if ref else _words(piece)))
    if not any(not ref and _words(piece) for ref, piece in pieces):
        return "nothing but names is said"
    if not said and set(template.split()) <= SAYS_NOTHING:
        return f"no word of '{template}' says what it asks, and no slot does"
    unknown: str | None = None
    for ref, piece in pieces:
        if own is not None:
            break
        if ref or not _words(piece):
            continue
        found = delex(piece, turn.unresolved)
        names = [v for k, v in found.values if k in ("area", "floor", "name")]
        own = names[0] if names else None
        unknown = unknown or next((v for k, v in found.values if k == "unknown"), None)
    pattern = SentencePattern(turn.intent, template, tuple(sorted(fixed.items())), area_context)
    if own is not None:
        pattern.own_names[turn.household_id] = own
    elif unknown is not None:
        pattern.unknown_words[turn.household_id] = unknown
    return pattern


def _area_id(turn: LabelledTurn, home: Home) -> str | None:
    if not turn.device_area:
        return None
    wanted = normalize_name(turn.device_area)
    for area in home.areas:
        if wanted in (normalize_name(area.name), area.area_id):
            return area.area_id
    return None


class _Hassil:
    """hassil as the export asks it: every reading of a text (``recognize_all``), against Home
    Assistant's intents or against custom templates loaded beside its lists and rules.

    It gives hassil's answers, only faster. Intents come as a
    :class:`~selflearn.assistant.candidates.TemplateFilter`: a text is matched only against the
    templates that can match it (a sound pre-filter), and with only the values of the home's
    ``area``/``name``/``floor`` lists that occur in it
    (:meth:`~selflearn.assistant.nlu.HomeAssistantNlu.hassil_inputs`), as the assistant does.
    :meth:`may_read` tells, once per text, the texts no home can make custom templates read. Home
    Assistant's lists and expansion rules are parsed once and shared by every set of custom
    templates (:meth:`custom`), and the matching is :mod:`selflearn.assistant.fastmatch` (hassil's
    matcher compiled, the same results in the same order) where it supports the installed hassil.
    """

    def __init__(self) -> None:
        from hassil import Intents

        from selflearn.assistant.nlu import HomeAssistantNlu, template_filter

        self._nlu = HomeAssistantNlu("strict", unmatched_pass=False)
        self.home_assistant = template_filter()
        """Home Assistant's English intents."""
        data = _ha_data()
        shared = {key: data[key] for key in ("language", "lists", "expansion_rules", "skip_words")}
        self._shared = Intents.from_dict({**shared, "intents": {}})
        # hassil reads which lists are wildcards off the lists given with the intents
        self._wildcards = {name: info for name, info in data["lists"].items() if info.get("wildcard")}

    def custom(self, patterns: Iterable[SentencePattern]) -> TemplateFilter | None:
        """Hassil intents of ``patterns`` alone (``None`` when there are none), with Home
        Assistant's lists and expansion rules (which custom sentences share)."""
        from hassil import Intents

        from selflearn.assistant.candidates import TemplateFilter

        custom: dict[str, Any] = {}
        for pattern in patterns:
            custom.setdefault(pattern.intent, {"data": []})["data"].append(pattern.item())
        if not custom:
            return None
        parsed = Intents.from_dict({"language": "en", "lists": self._wildcards, "intents": custom})
        return TemplateFilter(dataclasses.replace(self._shared, intents=parsed.intents))

    def recognize(
        self, text: str, intents: TemplateFilter, home: Home, area_id: str | None
    ) -> list[RecognizeResult]:
        """Every reading of ``text`` by ``intents``, said in ``home`` by a device in area ``area_id``."""
        from hassil import recognize_all

        from selflearn.assistant import fastmatch

        forms, lists, _, context = self._nlu.hassil_inputs(text, home, area_id)
        candidates = intents.candidates(text, lists, forms=forms)
        if not candidates.intents:
            return []
        match = fastmatch.recognize_all if fastmatch.SUPPORTED else recognize_all
        return list(match(text, candidates, slot_lists=lists, intent_context=context, language="en"))

    @staticmethod
    def may_read(text: str, intents: TemplateFilter) -> bool:
        """Whether ``intents`` may read ``text`` in some home (``False``: in none), a test
        that needs no home.

        The pre-filter (:mod:`~selflearn.assistant.candidates`) keeps a template when the text
        holds every word hassil requires of it (whatever the home) and, matching strictly, when
        each word of the text is made of the template's words or the home's names. With
        unmatched entities allowed (any words may stand for a name) it leaves out the second
        test on templates that read lists, and templates that read none need no names for it:
        what it keeps then, with no names at all, holds what it keeps in any home.
        """
        return bool(intents.candidates(text, {}, allow_unmatched_entities=True).intents)


def _readings(found: Iterable[RecognizeResult]) -> set[tuple[str, str]]:
    """The (intent, slots as JSON) of hassil's readings."""
    return {
        (r.intent.name, json.dumps({k: _plainer(e.value) for k, e in sorted(r.entities.items())}))
        for r in found
    }


def _plainer(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


def _expected(turn: LabelledTurn, pattern: SentencePattern) -> tuple[str, str]:
    """The reading of ``turn``'s text that ``pattern`` must give: its said slots, its fixed slots
    and the area of the context when it takes one."""
    slots: dict[str, Any] = {s.slot: _plainer(_value(s.value)) for s in turn.slots if s.said}
    slots.update((k, _plainer(v)) for k, v in pattern.slots)
    if pattern.area_context:
        slots["area"] = next(s.value for s in turn.slots if s.slot == "area")
    return pattern.intent, json.dumps(dict(sorted(slots.items())))


def _reads_back(
    pattern: SentencePattern,
    owner: str | None,
    homes: dict[str, Home],
    hassil: _Hassil,
    result: SentencesExport,
) -> bool:
    """Whether ``pattern``, loaded with hassil, gives each of its turns (up to
    :data:`READ_BACK`) the label's intent and slots; if not, it is left out, saying so."""
    intents = hassil.custom([pattern])
    assert intents is not None
    for turn in pattern.turns[:READ_BACK]:
        home = homes[turn.household_id]
        expected = _expected(turn, pattern)
        readings = _readings(hassil.recognize(turn.text, intents, home, _area_id(turn, home)))
        if expected not in readings:
            got = "; ".join(sorted(f"{i} {s}" for i, s in readings)) or "nothing"
            why = f"{turn.text!r} does not read back as its label {' '.join(expected)} (hassil: {got})"
            result.left_out.append(LeftOut(pattern.template, "read back", why, len(pattern.turns), owner))
            return False
    return True


def _without_conflicts(
    kept: list[tuple[SentencePattern, str | None]],
    turns: Sequence[LabelledTurn],
    homes: dict[str, Home],
    household: str | None,
    min_confidence: float,
    hassil: _Hassil,
    result: SentencesExport,
) -> list[tuple[SentencePattern, str | None]]:
    """``kept`` without the templates that would read another labelled request (of at least
    ``min_confidence``, in a home where the template is installed) as another intent than its
    label: installed, they would make the assistant do the wrong thing."""
    everyone = hassil.custom(p for p, owner in kept if owner is None)
    theirs = hassil.custom(p for p, _ in kept)  # the exported household has both files
    index = {(p.intent, p.template) for p, _ in kept}
    seen: set[tuple[str, str, str | None]] = set()
    possible: dict[tuple[bool, str], bool] = {}  # (said in the exported household, text) -> may_read
    conflicts: dict[tuple[str, str], str] = {}
    for turn in turns:
        home = homes.get(turn.household_id)
        if turn.intent is None or turn.confidence < min_confidence or home is None:
            continue
        intents = theirs if turn.household_id == household else everyone
        area = _area_id(turn, home)
        if intents is None or (turn.household_id, turn.text, area) in seen:
            continue
        seen.add((turn.household_id, turn.text, area))
        mine = turn.household_id == household
        if (mine, turn.text) not in possible:
            possible[mine, turn.text] = hassil.may_read(turn.text, intents)
        if not possible[mine, turn.text]:
            continue  # the cheap test, once per text: most texts no template can read
        for r in hassil.recognize(turn.text, intents, home, area):
            key = (r.intent.name, r.intent_sentence.text if r.intent_sentence is not None else "")
            if r.intent.name != turn.intent and key in index and key not in conflicts:
                said = f"{turn.text!r} (labelled {turn.intent}, {turn.source})"
                conflicts[key] = f"would also read {said} as {r.intent.name}"
    out = []
    for pattern, owner in kept:
        key = (pattern.intent, pattern.template)
        if key in conflicts:
            result.left_out.append(
                LeftOut(pattern.template, "conflict", conflicts[key], len(pattern.turns), owner)
            )
        else:
            out.append((pattern, owner))
    return out


def ha_sentences(
    turns: Sequence[LabelledTurn],
    homes: dict[str, Home],
    *,
    min_users: int = 5,
    min_confidence: float = MIN_CONFIDENCE,
    household: str | None = None,
    wildcards: bool = False,
) -> SentencesExport:
    """Home Assistant sentence templates from the transferred labels of ``turns`` (see the
    module docstring): global ones said by at least ``min_users`` users and holding no
    household's own name, and ``household``'s own ones (none when ``household`` is ``None``).

    ``wildcards``: a slot Home Assistant reads as any words (a shopping item) becomes its
    wildcard list (``add {shopping_list_item:item} to the grocery list``) instead of the words
    said, so phrasings pool across items. Off by default: on noisy speech such templates add
    whatever the recogniser heard (measured in docs/labels.md: more defects fixed, and many more
    wrong items added)."""
    if min_users < 1:
        raise ConfigError(f"min_users must be at least 1, not {min_users}")
    if not 0.0 <= min_confidence <= 1.0:
        raise ConfigError(f"min_confidence must be between 0 and 1, not {min_confidence}")
    result = SentencesExport()
    delexers: dict[str, Delexicalizer] = {}
    patterns: dict[tuple[Any, ...], SentencePattern] = {}
    for turn in turns:
        if not turn.transferred or turn.intent is None:
            continue
        if turn.confidence < min_confidence:
            result.left_out.append(
                LeftOut(
                    turn.text,
                    "confidence",
                    f"confidence {turn.confidence:.4g} below {min_confidence:g}",
                    1,
                    turn.household_id,
                )
            )
            continue
        home = homes.get(turn.household_id)
        if home is None:
            result.left_out.append(LeftOut(turn.text, "no home", LEFT_OUT["no home"], 1, turn.household_id))
            continue
        delex = delexers.setdefault(turn.household_id, Delexicalizer(home))
        made = _pattern(turn, home, delex, wildcards)
        if isinstance(made, str):
            result.left_out.append(LeftOut(turn.text, "no template", made, 1, turn.household_id))
            continue
        pattern = patterns.setdefault(made.key, made)
        if pattern is not made:
            pattern.own_names.update(made.own_names)
            pattern.unknown_words.update(made.unknown_words)
        pattern.turns.append(turn)

    hassil = _Hassil()
    chosen: list[tuple[SentencePattern, str | None]] = []  # (pattern, household or None: global)
    for pattern in patterns.values():
        first = pattern.turns[0]
        home = homes[first.household_id]
        said = hassil.recognize(first.text, hassil.home_assistant, home, _area_id(first, home))
        understood = _readings(said)
        if understood:
            intents = ", ".join(sorted({i for i, _ in understood}))
            result.left_out.append(
                LeftOut(
                    pattern.template,
                    "understood",
                    f"Home Assistant already understands it (as {intents})",
                    len(pattern.turns),
                )
            )
            continue
        pooled = not pattern.unknown_words or pattern.homes >= min_users
        if not pattern.own_names and pattern.users >= min_users and pooled:
            chosen.append((pattern, None))
            continue
        for hh in sorted({t.household_id for t in pattern.turns}):
            own = [t for t in pattern.turns if t.household_id == hh]
            if pattern.own_names:
                names = ", ".join(sorted(set(pattern.own_names.values())))
                kind, why = "own name", f"holds a household's own name ({names})"
            elif not pooled:
                words = ", ".join(sorted(set(pattern.unknown_words.values())))
                kind = "own name"
                why = (
                    f"holds words the assistant took for a name it does not know ({words}), said in "
                    f"{pattern.homes} home(s), fewer than the {min_users} such words need"
                )
            else:
                kind = "few users"
                why = f"said by {pattern.users} user(s), fewer than the {min_users} a global sentence needs"
            if hh != household:
                result.left_out.append(
                    LeftOut(pattern.template, kind, why + "; household only", len(own), hh)
                )
                continue
            mine = SentencePattern(pattern.intent, pattern.template, pattern.slots, pattern.area_context, own)
            chosen.append((mine, hh))

    kept = [(p, owner) for p, owner in chosen if _reads_back(p, owner, homes, hassil, result)]
    kept = _without_conflicts(kept, turns, homes, household, min_confidence, hassil, result)
    for pattern, owner in kept:
        if owner is None:
            result.global_patterns.append(pattern)
        else:
            result.household_patterns.setdefault(owner, []).append(pattern)
    return result


def _comment(text: str, indent: int = 0) -> str:
    return "".join(f"{' ' * indent}# {line}\n" for line in text.splitlines() or [""])


def _dump(data: Any, indent: int) -> str:
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=110)
    return "".join(f"{' ' * indent}{line}\n" for line in text.splitlines())


def _evidence(pattern: SentencePattern, with_ids: bool) -> str:
    sources = ", ".join(sorted({t.source for t in pattern.turns}))
    low = min(t.confidence for t in pattern.turns)
    text = (
        f"said by {pattern.users} user(s) in {pattern.homes} home(s); {len(pattern.turns)} failed turn(s) "
        f"labelled {sources} (confidence >= {low:.2f})"
    )
    if with_ids:
        ids = [t.turn_id for t in pattern.turns]
        shown = ", ".join(ids[:5]) + (f", ... ({len(ids) - 5} more)" if len(ids) > 5 else "")
        text += f"\nturns: {shown}"
        examples = sorted({t.text for t in pattern.turns})[:3]
        text += "\nsaid as: " + " | ".join(examples)
    return text


def sentences_file(patterns: Sequence[SentencePattern], household: str | None) -> str:
    """The custom sentences file of ``patterns`` (global when ``household`` is ``None``)."""
    if household is None:
        head = (
            "Requests Home Assistant failed on, labelled from what worked next for the same user (a\n"
            "rephrasing, a rewrite, a confirmed suggestion), said by enough different users and\n"
            "holding no household's own names, so safe for every home (exported by\n"
            "`selflearn label export`; review before installing). Copy this file to\n"
            "<config>/custom_sentences/en/ and restart Home Assistant (or reload the conversation\n"
            "integration). {area}, {name} and {floor} are Home Assistant's built-in lists of area,\n"
            "device and floor names; {brightness} etc. its number ranges."
        )
    else:
        head = (
            f"Requests household {household}'s users failed on, labelled from what worked next (a\n"
            "rephrasing, a rewrite, a confirmed suggestion): too few users for every home, or holding\n"
            "the household's own names (exported by `selflearn label export --household`; review\n"
            "before installing). Copy this file to <config>/custom_sentences/en/ of that household's\n"
            "Home Assistant, next to the global selflearn.yaml."
        )
    text = _comment(head) + 'language: "en"\n'
    if not patterns:
        return text + "intents: {}\n"
    text += "intents:\n"
    by_intent: dict[str, list[SentencePattern]] = {}
    for pattern in patterns:
        by_intent.setdefault(pattern.intent, []).append(pattern)
    for intent in sorted(by_intent):
        text += f"  {intent}:\n    data:\n"
        for pattern in sorted(by_intent[intent], key=lambda p: p.template):
            text += _comment(_evidence(pattern, household is not None), 6) + _dump([pattern.item()], 6)
    return text
