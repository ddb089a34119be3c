"""The home's language: the requests Home Assistant's templates understand, as rewrite candidates.

The logs only hold what users were seen to say successfully; in Home Assistant the set of
sentences a home can run is known in advance: the templates of its intents
(``home-assistant-intents``, plus a home's custom sentences), filled with the home's names. A
rewriter that searches that space can propose a sentence nobody has said yet.

:class:`HomeLanguage` expands the templates into **patterns** in the same space the rest of the
rewriter works in (:mod:`selflearn.core.delex`): the ``name``, ``area`` and ``floor`` lists stay
placeholders (``{name}``, ``{area}``, ``{floor}``), number ranges become ``{number}``, other lists
(colours, fan speeds, ...) are expanded into their words, and sentences with a wildcard (a timer
name, a song) are left out: their value cannot come from a placeholder. A candidate is then filled
with the request's own values -- the names the user said, never a name copied from a template --
and only proposed when this home's own matcher resolves it
(:class:`~selflearn.rewrite.sources.HomeCandidates`). So one expansion serves every home, and a
home's names enter only at request time, never a pooled artefact.

Template expansion is combinatorial (Home Assistant's English templates expand into hundreds of
thousands of patterns, mostly optional words and word orders); :class:`HomeLanguage` keeps at most
``per_group`` patterns per (intent, slot signature, fixed slots), sampled with a seed from each
template's expansions so that every template and every wording of its alternatives is represented.

>>> language = HomeLanguage(HomeLanguageConfig(per_group=8)).fit()  # doctest: +SKIP
>>> language.by_slots_["area"][:2]  # doctest: +SKIP
[HomePattern('turn off the lights in the {area}', 'HassTurnOff', ...), ...]
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hassil import Intents
from hassil.expression import (
    Alternative,
    Expression,
    ListReference,
    Permutation,
    RuleReference,
    Sentence,
    Sequence,
    TextChunk,
)
from hassil.intents import RangeSlotList, SlotList, TextSlotList

from selflearn.core.artefacts import format_name, read_description, reading, write_description
from selflearn.core.delex import slot_signature, strip_fillers
from selflearn.core.errors import ConfigError
from selflearn.core.home import Home, normalize_name

FORMAT = format_name("home-language", 1)

PLACEHOLDER_LISTS = {"name": "{name}", "area": "{area}", "floor": "{floor}"}
"""Home Assistant's slot lists that are a home's names: they stay placeholders."""


@dataclass(frozen=True)
class HomeLanguageConfig:
    """How much of the templates' language is kept."""

    per_group: int = 48
    """Patterns kept per (intent, slot signature, fixed slots)."""
    per_template: int = 24
    """Expansions sampled per template sentence before the group's bound."""
    max_list_values: int = 12
    """Values of a fixed list (colours, speeds) sampled per expansion site."""
    seed: int = 7
    """Seed of the sampling (the same templates give the same patterns)."""

    def __post_init__(self) -> None:
        for name in ("per_group", "per_template", "max_list_values"):
            if getattr(self, name) < 1:
                raise ConfigError(f"HomeLanguageConfig.{name} must be at least 1, not {getattr(self, name)}")


@dataclass(frozen=True)
class HomePattern:
    """One request pattern the templates understand."""

    pattern: str
    """Normalised text with placeholders, politeness stripped (``turn off the {area} lights``)."""
    intent: str
    """The intent of the template it came from."""
    fixed: str = ""
    """The template's fixed slots, ``key=value`` joined by ``|`` (``domain=light``)."""
    domains: tuple[str, ...] = ()
    """Domains the template needs in the home (empty: any)."""
    values: str = ""
    """Values the wording itself chose from Home Assistant's fixed lists (``volume_step=up``,
    ``color=red``), ``key=value`` joined by ``|``: two wordings mean the same only if these agree."""

    @property
    def meaning(self) -> str:
        """The interpretation: intent, fixed slots, placeholders and chosen list values."""
        return "|".join((self.intent, self.slots, self.fixed, self.values))

    @property
    def slots(self) -> str:
        """The slot signature as one string (the partition key, as in the global layer)."""
        return " ".join(slot_signature(self.pattern))


@dataclass
class _Site:
    """Sampling state: one random choice per alternative, a bounded sample per list."""

    rng: random.Random
    lists: dict[str, SlotList]
    rules: dict[str, Sentence]
    max_values: int
    wildcard: bool = False
    chosen: dict[str, str] = field(default_factory=dict)
    """List slot -> the value this expansion chose."""
    plain: bool = False
    """Take no optional words and the first of every alternative: the template's plainest wording."""


def _sample(expr: Expression, site: _Site) -> str:
    """One random expansion of ``expr``."""
    if isinstance(expr, TextChunk):
        return expr.original_text
    if isinstance(expr, Alternative):
        if site.plain:
            return "" if expr.is_optional else _sample(expr.items[0], site)
        return _sample(site.rng.choice(expr.items), site)
    if isinstance(expr, Permutation):
        items = list(expr.items)
        if not site.plain:
            site.rng.shuffle(items)
        return " ".join(_sample(item, site) for item in items)
    if isinstance(expr, Sequence):
        return "".join(_sample(item, site) for item in expr.items)
    if isinstance(expr, ListReference):
        if expr.list_name in PLACEHOLDER_LISTS:
            return f" {PLACEHOLDER_LISTS[expr.list_name]} "
        slot_list = site.lists.get(expr.list_name)
        if isinstance(slot_list, RangeSlotList):
            return " {number} "
        if isinstance(slot_list, TextSlotList) and slot_list.values:
            values = slot_list.values[: max(site.max_values, 1) * 4]
            value = values[0] if site.plain else site.rng.choice(values)
            site.chosen[expr.slot_name] = str(value.value_out)
            return _sample(value.text_in, site)
        site.wildcard = True  # a wildcard, or a list the home fills at run time
        return " {wildcard} "
    if isinstance(expr, RuleReference):
        rule = site.rules.get(expr.rule_name)
        if rule is None:
            raise ConfigError(f"template rule <{expr.rule_name}> is not defined")
        return _sample(rule.expression, site)
    raise ConfigError(f"unexpected template expression {type(expr).__name__}")


def normalize_pattern(text: str) -> str:
    """A template expansion as a request pattern: normalised as the rewriter normalises requests
    (:func:`~selflearn.core.home.normalize_name`, politeness stripped) with placeholders kept."""
    parts = []
    for word in text.split():
        if word.startswith("{") and word.endswith("}"):
            parts.append(word)
        else:
            norm = normalize_name(word)
            if norm:
                parts.append(norm)
    return strip_fillers(" ".join(parts))


def _fixed(slots: dict[str, Any]) -> str:
    return "|".join(
        f"{k}={slots[k]}" for k in sorted(slots) if isinstance(slots[k], str | int | float | bool)
    )


class HomeLanguage:
    """The templates' patterns, bounded per group and indexed by slot signature.

    The learner contract (:mod:`selflearn.core.artefacts`): ``HomeLanguage(config).fit(intents)``
    learns ``patterns_`` (every kept :class:`HomePattern`), ``by_slots_`` (those patterns per slot
    signature) and ``metadata_``; ``save``/``load`` write and read a folder
    (``selflearn.home-language.v1``).
    """

    def __init__(self, config: HomeLanguageConfig | None = None) -> None:
        self.config = config or HomeLanguageConfig()
        self.patterns_: list[HomePattern] = []
        self.by_slots_: dict[str, list[int]] = {}
        self.metadata_: dict[str, Any] = {}

    def fit(self, intents: Intents | None = None) -> HomeLanguage:
        """Expand ``intents`` (default: Home Assistant's English intents as the reference
        assistant loads them)."""
        if intents is None:
            from selflearn.assistant.nlu import load_intents

            intents = load_intents("en")
        started = time.perf_counter()
        cfg = self.config
        groups: dict[tuple[str, str, str], dict[str, tuple[HomePattern, bool]]] = defaultdict(dict)
        templates = 0
        for intent_name, data, sentence in _sentences(intents):
            templates += 1
            seed = int.from_bytes(
                hashlib.blake2b(f"{cfg.seed}|{intent_name}|{sentence.text}".encode(), digest_size=8).digest()
            )
            rules = {**intents.expansion_rules, **data.expansion_rules}
            lists = {**intents.slot_lists, **data.slot_lists}
            fixed = _fixed(data.slots)
            domains = tuple(sorted(data.domains))
            found: dict[str, str] = {}
            site = _Site(random.Random(seed), lists, rules, cfg.max_list_values)
            for attempt in range(cfg.per_template * 3):
                site.wildcard, site.chosen, site.plain = False, {}, attempt == 0
                text = normalize_pattern(_sample(sentence.expression, site))
                if site.wildcard or not text:
                    continue
                found.setdefault(text, "|".join(f"{k}={v}" for k, v in sorted(site.chosen.items())))
                if len(found) >= cfg.per_template:
                    break
            for rank, (text, values) in enumerate(found.items()):
                pattern = HomePattern(text, intent_name, fixed, domains, values)
                group = groups[(intent_name, pattern.slots, fixed)]
                if text not in group or rank == 0:
                    group[text] = (pattern, rank == 0)
        kept: list[HomePattern] = []
        for key in sorted(groups):
            rng = random.Random(f"{cfg.seed}|{key}")
            members = sorted(groups[key].values(), key=lambda m: m[0].pattern)
            rng.shuffle(members)
            # every template's plainest wording first, then a sample of the others
            members.sort(key=lambda m: not m[1])
            kept.extend(sorted((m[0] for m in members[: cfg.per_group]), key=lambda p: p.pattern))
        # One pattern, one entry: the first group (in sorted order) that produced it keeps it.
        unique: dict[str, HomePattern] = {}
        for p in kept:
            unique.setdefault(p.pattern, p)
        self.patterns_ = list(unique.values())
        self._index()
        self.metadata_ = {
            "templates": templates,
            "patterns": len(self.patterns_),
            "groups": len(groups),
            "intents_version": _intents_version(),
            "config": asdict(cfg),
            "seconds": round(time.perf_counter() - started, 1),
        }
        return self

    def _index(self) -> None:
        by_slots: dict[str, list[int]] = defaultdict(list)
        for row, p in enumerate(self.patterns_):
            by_slots[p.slots].append(row)
        self.by_slots_ = dict(by_slots)

    def __len__(self) -> int:
        return len(self.patterns_)

    def for_home(self, home: Home | None) -> list[int]:
        """Rows of the patterns this home's devices can serve: those whose template needs no
        domain, or a domain the home has an entity of."""
        have = {e.domain for e in home.entities} if home is not None else None
        return [
            row
            for row, p in enumerate(self.patterns_)
            if have is None or not p.domains or any(d in have for d in p.domains)
        ]

    def save(self, folder: str | Path) -> Path:
        out = write_description(folder, FORMAT, {**self.metadata_, "count": len(self.patterns_)})
        with (out / "patterns.jsonl").open("w", encoding="utf-8") as f:
            for p in self.patterns_:
                f.write(json.dumps([p.pattern, p.intent, p.fixed, list(p.domains), p.values]) + "\n")
        return out

    @classmethod
    def load(cls, folder: str | Path) -> HomeLanguage:
        meta = read_description(folder, FORMAT, "home language", retrain="selflearn train encoder")
        language = cls(HomeLanguageConfig(**meta.get("config", {})))
        with reading(folder, "home language", extra=(ValueError, TypeError, IndexError)):
            lines = (Path(folder) / "patterns.jsonl").read_text(encoding="utf-8").splitlines()
            language.patterns_ = [
                HomePattern(p, i, f, tuple(d), v) for p, i, f, d, v in map(json.loads, lines)
            ]
        language.metadata_ = {k: v for k, v in meta.items() if k not in ("format", "count")}
        language._index()
        return language


def _sentences(intents: Intents) -> Iterator[tuple[str, Any, Sentence]]:
    """Every (intent, its data block, one template sentence), in the intents' order."""
    for name, intent in intents.intents.items():
        for data in intent.data:
            yield from ((name, data, sentence) for sentence in data.sentences)


def _intents_version() -> str:
    try:
        from importlib.metadata import version

        return version("home-assistant-intents")
    except Exception:  # pragma: no cover - not installed as a distribution
        return "unknown"
