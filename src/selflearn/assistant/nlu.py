"""Intent recognition as Home Assistant ships it: hassil strict matching, then the gazetteer fallback.

:class:`HomeAssistantNlu` reproduces the English default conversation agent:

1. **strict**: ``hassil.recognize_best`` over ``home_assistant_intents.get_intents("en")`` with the
   home's ``area`` / ``name`` / ``floor`` slot lists and the satellite's area as intent context,
   preferring results that fill ``name`` (the call Home Assistant's ``DefaultAgent`` makes);
2. **gazetteer** (configuration ``strict+gazetteer``, the default since August 2026):
   ``GazetteerMatcher.interpret`` when strict finds nothing;
3. **unmatched entities**: when both fail, a second hassil pass that allows unknown slot values,
   used only to phrase the error ("Sorry, I am not aware of any device called big light"), as
   Home Assistant does.

hassil is given only those values of the home's lists whose text occurs in the text (a list
value is a literal chunk: it cannot match anywhere else, in either pass). Results are cached
under a key that is sound across homes: the exact text, the intent context and those list
values (text, value, context, in order). Gazetteer results are fuzzy, so they are cached per
home fingerprint. hassil itself only sees the templates that can match the text
(:class:`~selflearn.assistant.candidates.TemplateFilter`, a sound pre-filter), so its results
are exactly those of matching against all of Home Assistant's intents; and the matching is
done by :mod:`selflearn.assistant.fastmatch`, hassil's matcher compiled (same results, in the
same order). The gazetteer's fuzzy searches, pure functions of their query, are memoized and
answered with rapidfuzz (:class:`_FuzzySearch`: the gazetteer's own answers, to the bit).
``bench/experiments/nlu_equivalence.py`` checks all of this against the unoptimised code.
"""

from __future__ import annotations

import functools
import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hassil import Intents, recognize_all, recognize_best
from hassil.expression import TextChunk
from hassil.intents import SlotList, TextSlotList, TextSlotValue
from hassil.models import UnmatchedRangeEntity, UnmatchedTextEntity
from hassil.recognize import MISSING_ENTITY
from home_assistant_intents import get_intents

from selflearn.assistant import fastmatch
from selflearn.assistant.candidates import TemplateFilter
from selflearn.core.errors import ConfigError
from selflearn.core.home import Home
from selflearn.core.schema import NluTrace, SlotValue

NluConfig = Literal["strict", "strict+gazetteer"]
NLU_CONFIGS: tuple[NluConfig, ...] = ("strict", "strict+gazetteer")

_BREAK_WORDS = str.maketrans("-_", "  ")
"""hassil retries a failed chunk with "-" and "_" in the text read as spaces."""


@dataclass(frozen=True)
class NluResult:
    """What the NLU stage produced: the public trace plus ids the entity resolver needs."""

    trace: NluTrace
    """The trace written to the log."""
    target_ids: tuple[str, ...] = ()
    """Entity/area ids the matcher itself resolved (gazetteer frames carry ids)."""
    unmatched: dict[str, str] = field(default_factory=dict)
    """Slot -> spoken text that matched nothing in the home (from the unmatched-entity pass)."""


_INTENTS: Intents | None = None
_FILTER: TemplateFilter | None = None


def load_intents(language: str = "en") -> Intents:
    """Home Assistant's intents for ``language`` from the installed ``home-assistant-intents``."""
    global _INTENTS
    if language != "en":
        raise ConfigError(f"only English is supported so far, not {language!r}")
    if _INTENTS is None:
        data = get_intents(language)
        if data is None:
            raise ConfigError("home-assistant-intents has no English intents")
        _INTENTS = Intents.from_dict(data)
    return _INTENTS


CUSTOM = "custom_sentences"
"""``NluTrace.matcher`` of a strict match by a sentence from :attr:`HomeAssistantNlu.custom_sentences`."""
STRICT_MATCHERS = frozenset({"strict", CUSTOM})
"""Matchers whose result is a template match (Home Assistant's own or a custom sentence)."""

_CUSTOM: dict[tuple[str, float], tuple[Intents, TemplateFilter]] = {}


def custom_intents(path: str | Path) -> tuple[Intents, TemplateFilter]:
    """Home Assistant's intents with the custom sentences in ``path`` (a YAML file, or a folder
    of them such as ``custom_sentences/en``) merged in as Home Assistant merges them: each
    intent's sentence data is added to the built-in ones. Every added data item is marked so a
    match by it is reported as matcher ``custom_sentences``. Cached per path and modification
    time."""
    import copy

    import yaml

    src = Path(path)
    files = sorted(src.glob("*.yaml")) if src.is_dir() else [src]
    if not files or not all(f.is_file() for f in files):
        raise ConfigError(f"no custom sentences at {src} (a YAML file, or a folder of them)")
    key = (str(src.resolve()), max(f.stat().st_mtime for f in files))
    hit = _CUSTOM.get(key)
    if hit is not None:
        return hit
    data = copy.deepcopy(get_intents("en"))
    if data is None:
        raise ConfigError("home-assistant-intents has no English intents")
    for f in files:
        try:
            custom = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"custom sentences {f} cannot be read: {exc}") from exc
        if not isinstance(custom, dict) or not isinstance(custom.get("intents", {}), dict):
            raise ConfigError(f"custom sentences {f}: expected a mapping with 'intents'")
        for intent, info in (custom.get("intents") or {}).items():
            items = [
                dict(item, metadata={**(item.get("metadata") or {}), "selflearn": CUSTOM})
                for item in info["data"]
            ]
            data["intents"].setdefault(intent, {"data": []})["data"].extend(items)
        for name, values in (custom.get("lists") or {}).items():
            data.setdefault("lists", {})[name] = values
        for name, rule in (custom.get("expansion_rules") or {}).items():
            data.setdefault("expansion_rules", {})[name] = rule
    try:
        intents = Intents.from_dict(data)
        hit = (intents, TemplateFilter(intents))  # parses every template
    except Exception as exc:  # hassil's parser: a template it cannot read
        raise ConfigError(f"custom sentences in {src} do not load in hassil: {exc}") from exc
    _CUSTOM[key] = hit
    return hit


def template_filter() -> TemplateFilter:
    """The shared pre-filter over :func:`load_intents` (its caches only make it faster)."""
    global _FILTER
    if _FILTER is None:
        _FILTER = TemplateFilter(load_intents("en"))
    return _FILTER


def slot_lists_for(home: Home) -> dict[str, SlotList]:
    """The ``area``/``name``/``floor`` slot lists Home Assistant builds from its registries."""
    areas: list[tuple[str, Any, dict[str, Any]]] = []
    for area in home.areas:
        for text in (area.name, *area.aliases):
            areas.append((text, area.area_id, {}))
    floors: list[tuple[str, Any, dict[str, Any]]] = []
    for floor in home.floors:
        for text in (floor.name, *floor.aliases):
            floors.append((text, floor.floor_id, {}))
    names: list[tuple[str, Any, dict[str, Any]]] = []
    for ent in home.entities:
        context: dict[str, Any] = {"domain": ent.domain}
        if ent.device_class:
            context["device_class"] = ent.device_class
        for text in ent.spoken_names:
            names.append((text, ent.name, context))
    return {
        "area": TextSlotList.from_tuples(areas, allow_template=False, name="area"),
        "floor": TextSlotList.from_tuples(floors, allow_template=False, name="floor"),
        "name": TextSlotList.from_tuples(names, allow_template=False, name="name"),
    }


@dataclass(frozen=True)
class _ListValue:
    """One value of a home's slot list, with what decides whether it can match a text."""

    value: TextSlotValue
    probe: str | None
    """Lower-cased text the value must find in the text to match; ``None``: always keep."""
    key: tuple[Any, ...]
    """Everything about the value that matching can read (for the cache key)."""


_HOME_LISTS: dict[str, dict[str, tuple[_ListValue, ...]]] = {}


def _home_lists(home: Home) -> dict[str, tuple[_ListValue, ...]]:
    cached = _HOME_LISTS.get(home.fingerprint)
    if cached is None:
        cached = {}
        for name, slot_list in slot_lists_for(home).items():
            assert isinstance(slot_list, TextSlotList)
            values = []
            for value in slot_list.values:
                text = value.text_in.text if isinstance(value.text_in, TextChunk) else None
                probe = text.strip().lower() if text is not None and text.isascii() else None
                context = tuple(sorted((value.context or {}).items()))
                values.append(_ListValue(value, probe, (name, text, value.value_out, context)))
            cached[name] = tuple(values)
        _HOME_LISTS[home.fingerprint] = cached
    return cached


def _relevant_lists(home: Home, haystack: str | None) -> tuple[dict[str, SlotList], tuple[Any, ...]]:
    """The home's slot lists without values that cannot match, and a cache key for them.

    A list value is a literal text chunk: hassil can only match it where its text occurs in
    the text being matched (compared case-insensitively, as ``re.IGNORECASE`` does for ASCII).
    ``haystack`` holds every form of an ASCII text hassil matches against, lower-cased; ``None``
    keeps every value. Kept values stay in the home's order, which decides ties.
    """
    lists: dict[str, SlotList] = {}
    key: list[Any] = []
    for name, values in _home_lists(home).items():
        kept = [v for v in values if haystack is None or v.probe is None or v.probe in haystack]
        lists[name] = TextSlotList(name=name, values=[v.value for v in kept])
        key.extend(v.key for v in kept)
    return lists, tuple(key)


class _Lru(OrderedDict[Any, Any]):
    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.hits = 0
        self.misses = 0

    def lookup(self, key: Any) -> Any:
        try:
            value = self[key]
        except KeyError:
            self.misses += 1
            return None
        self.move_to_end(key)
        self.hits += 1
        return value

    def store(self, key: Any, value: Any) -> None:
        self[key] = value
        if len(self) > self.capacity:
            self.popitem(last=False)


class HomeAssistantNlu:
    """Home Assistant's English intent recognition: strict templates, then the gazetteer."""

    def __init__(
        self,
        config: NluConfig = "strict+gazetteer",
        cache_size: int = 200_000,
        unmatched_pass: bool = True,
        custom_sentences: str | Path | None = None,
        fast_fuzzy: bool = True,
    ) -> None:
        if config not in NLU_CONFIGS:
            raise ConfigError(f"unknown NLU configuration {config!r}; expected one of {NLU_CONFIGS}")
        self.config: NluConfig = config
        self.unmatched_pass = unmatched_pass
        self.custom_sentences = custom_sentences
        """Home Assistant custom sentences loaded beside the built-in intents (:func:`custom_intents`)."""
        if custom_sentences is None:
            self._intents, self._filter = load_intents("en"), template_filter()
        else:
            self._intents, self._filter = custom_intents(custom_sentences)
        self._gazetteer: Any = None
        self._gazetteer_home: str | None = None
        self._cache = _Lru(cache_size)
        self._fast = fastmatch.SUPPORTED
        self._fast_fuzzy = fast_fuzzy
        """Whether the gazetteer's fuzzy searches are answered by :class:`_FuzzySearch` (the same
        answers; ``False``: by the gazetteer's own code, the reference it is checked against)."""

    @property
    def name(self) -> str:
        """Configuration name, e.g. ``strict+gazetteer``."""
        return self.config

    def cache_info(self) -> tuple[int, int]:
        """(hits, misses) of the result cache."""
        return self._cache.hits, self._cache.misses

    def recognize(
        self, text: str, home: Home, context_area: str | None = None, explain_failures: bool = True
    ) -> NluResult:
        """Recognize ``text`` in ``home``; ``context_area`` is the satellite's area id.

        ``explain_failures=False`` skips the unmatched-entity pass: the result is then the same
        except that a failed match carries no intent guess and no ``unmatched`` slots (for
        callers that only need to know what the assistant would do).
        """
        (with_skip, no_skip), lists, lists_key, context = self.hassil_inputs(text, home, context_area)
        context_key = (context["area"]["value"], context["area"]["text"]) if context else None
        # Everything hassil reads besides Home Assistant's intents: the exact text, the intent
        # context and the list values that can match (in order). Sound across homes.
        strict_key = ("strict", text, context_key, lists_key)
        result: NluResult | None = self._cache.lookup(strict_key)
        if result is None:
            result = self._strict(text, lists, context, (with_skip, no_skip))
            self._cache.store(strict_key, result)
        if not result.trace.matched and self.config == "strict+gazetteer":
            gaz_key = ("gazetteer", text, context_area, home.fingerprint)
            gaz: NluResult | None = self._cache.lookup(gaz_key)
            if gaz is None:
                gaz = self._gazetteer_match(text, home, context_area)
                self._cache.store(gaz_key, gaz)
            result = gaz
        if result.trace.matched or not explain_failures or not self.unmatched_pass:
            return result
        unmatched_key = ("unmatched", *strict_key[1:])
        found: NluResult | None = self._cache.lookup(unmatched_key)
        if found is None:
            found = self._unmatched(text, lists, context, (with_skip, no_skip))
            self._cache.store(unmatched_key, found)
        return found

    def hassil_inputs(
        self, text: str, home: Home, context_area: str | None = None
    ) -> tuple[tuple[str, str], dict[str, SlotList], tuple[Any, ...], dict[str, Any] | None]:
        """What hassil gets for ``text``: its match forms, the slot lists (with their cache
        key) and the intent context."""
        with_skip, no_skip = self._filter.match_forms(text)
        if text.isascii():
            haystack = "\n".join(
                form for t in (with_skip.lower(), no_skip.lower()) for form in (t, t.translate(_BREAK_WORDS))
            )
            lists, lists_key = _relevant_lists(home, haystack)
        else:
            lists, lists_key = _relevant_lists(home, None)
        return (with_skip, no_skip), lists, lists_key, self._context(home, context_area)

    # --- stages ------------------------------------------------------------------------------

    def _context(self, home: Home, context_area: str | None) -> dict[str, Any] | None:
        area = home.area_by_id.get(context_area or "")
        if area is None:
            return None
        return {"area": {"value": area.area_id, "text": area.name}}

    def _strict(
        self,
        text: str,
        lists: dict[str, SlotList],
        context: dict[str, Any] | None,
        forms: tuple[str, str],
    ) -> NluResult:
        intents = self._filter.candidates(text, lists, forms=forms)
        if not intents.intents:
            return NluResult(NluTrace(matched=False, matcher="none"))
        if self._fast:
            res = fastmatch.recognize_best(
                text, intents, slot_lists=lists, intent_context=context, language="en", best_slot_name="name"
            )
        else:
            res = recognize_best(
                text, intents, slot_lists=lists, intent_context=context, language="en", best_slot_name="name"
            )
        if res is None:
            return NluResult(NluTrace(matched=False, matcher="none"))
        slots: dict[str, SlotValue] = {}
        for name, ent in res.entities.items():
            slots[name] = _plain(ent.value)
        data = getattr(res, "intent_data", None)
        custom = data is not None and (getattr(data, "metadata", None) or {}).get("selflearn") == CUSTOM
        return NluResult(
            NluTrace(
                matched=True,
                intent=res.intent.name,
                slots=slots,
                confidence=1.0,
                matcher=CUSTOM if custom else "strict",
            )
        )

    def _gazetteer_match(self, text: str, home: Home, context_area: str | None) -> NluResult:
        from gazetteer_matcher import GazetteerMatcher

        if self._gazetteer is None:
            _memoize_gazetteer_tokenizer()
            self._gazetteer = GazetteerMatcher(home=home.to_gazetteer())
            self._gazetteer_home = home.fingerprint
            _memoize_gazetteer_home(self._gazetteer, self._fast_fuzzy)
        elif self._gazetteer_home != home.fingerprint:
            self._gazetteer.set_home(home.to_gazetteer())
            self._gazetteer_home = home.fingerprint
            _memoize_gazetteer_home(self._gazetteer, self._fast_fuzzy)
        area = home.area_by_id.get(context_area or "")
        interp = self._gazetteer.interpret(text, context_area=area.name if area else None)
        if not interp.accepted or not interp.frames:
            return NluResult(NluTrace(matched=False, matcher="none"))
        frame = interp.frames[0]
        slots: dict[str, SlotValue] = {}
        ids: list[str] = []
        for key, value in frame.slots.items():
            if key == "name" and isinstance(value, str) and value in home.entity_by_id:
                ids.append(value)
                slots[key] = home.entity_by_id[value].name
            elif key == "area" and isinstance(value, str) and value in home.area_by_id:
                slots[key] = value
            else:
                slots[key] = _plain(value)
        # Fuzzy evidence lowers confidence: an exact gazetteer reading is worth more than a
        # spelling-corrected one.
        confidence = max(0.3, 0.9 - 0.2 * frame.fuzzy_count)
        return NluResult(
            NluTrace(
                matched=True, intent=frame.intent, slots=slots, confidence=confidence, matcher="gazetteer"
            ),
            target_ids=tuple(ids),
        )

    def _unmatched(
        self,
        text: str,
        lists: dict[str, SlotList],
        context: dict[str, Any] | None,
        forms: tuple[str, str],
    ) -> NluResult:
        """Home Assistant's last pass: allow unknown names, only to explain the failure.

        Home Assistant keeps the first result (in hassil's order) with the greatest key
        (entities, fewest unmatched, ranges, literal text matched). Templates are matched in
        groups by an upper bound on their results' entity count, highest first
        (:meth:`TemplateFilter.by_entity_bound`); once the best key has more entities than
        the next group's bound, nothing left can beat or tie it. Ties between groups go to
        the result hassil would have produced first (template position, then order).
        """
        best: Any = None
        best_key: tuple[int, int, int, int] | None = None
        best_at: tuple[int, int] = (0, 0)
        session = None
        if self._fast:
            session = fastmatch.Session(
                text, self._intents, lists, context, allow_unmatched_entities=True, language="en"
            )
        n = 0
        for bound, intents in self._filter.by_entity_bound(text, lists, forms=forms):
            if best_key is not None and bound < best_key[0]:
                break
            results = (
                session.recognize_all(intents)
                if session is not None
                else recognize_all(
                    text,
                    intents,
                    slot_lists=lists,
                    intent_context=context,
                    allow_unmatched_entities=True,
                    language="en",
                )
            )
            for res in results:
                n += 1
                if res.text_chunks_matched < 1:
                    continue
                n_unmatched = 0
                n_ranges = 0
                for ent in res.unmatched_entities_list:
                    if isinstance(ent, UnmatchedTextEntity):
                        if ent.text != MISSING_ENTITY:
                            n_unmatched += 1
                    elif isinstance(ent, UnmatchedRangeEntity):
                        n_unmatched += 1
                        n_ranges += 1
                    else:
                        n_unmatched += 1
                key = (len(res.entities_list), -n_unmatched, n_ranges, res.text_chunks_matched)
                at = (self._filter.position(res.intent_sentence), n)
                if best_key is None or key > best_key or (key == best_key and at < best_at):
                    best, best_key, best_at = res, key, at
        if best is None:
            return NluResult(NluTrace(matched=False, matcher="none"))
        unmatched = {
            name: str(getattr(ent, "text", getattr(ent, "value", ""))).strip()
            for name, ent in best.unmatched_entities.items()
            if getattr(ent, "text", None) != MISSING_ENTITY
        }
        if not unmatched:
            return NluResult(NluTrace(matched=False, matcher="none"))
        return NluResult(
            NluTrace(matched=False, intent=best.intent.name, matcher="none"), unmatched=unmatched
        )


def _memoize_gazetteer_tokenizer() -> None:
    """Let the gazetteer tokenize each of its own phrases once per process, not once per call.

    ``GazetteerMatcher.interpret`` re-tokenizes its action phrases on every call (about a fifth
    of its time) with ``phrase_tokens``, a pure function of a string returning a tuple of
    strings, so memoizing it cannot change any result.
    """
    from gazetteer_matcher import tagger

    if not hasattr(tagger.phrase_tokens, "cache_info"):
        tagger.phrase_tokens = functools.lru_cache(maxsize=1 << 16)(tagger.phrase_tokens)


_EXTRACT_MEMOS: OrderedDict[tuple[Any, ...], _FuzzySearch] = OrderedDict()
"""Fuzzy searches per set of choices (content-keyed, so homes share the action phrases)."""
_EXTRACT_MEMO_SETS = 16
_EXTRACT_MEMO_SIZE = 1 << 16
_EXTRACT_SLACK = 0.01
"""How far below the cutoff rapidfuzz's pre-selection reaches (its cutoff arithmetic is not the
gazetteer's; every pre-selected choice is scored again exactly as the gazetteer scores it)."""


def _memoize_gazetteer_home(matcher: Any, fast: bool = True) -> None:
    """Memoize what this gazetteer matcher recomputes on every call from its home alone.

    Call after every (re)build of its home: the fuzzy searches of its new tagger
    (:func:`_memoize_fuzzy_batches`) and the resolution of the satellite's area, which
    ``interpret`` looks up by tokenizing every area name of the home on each call; a pure
    function of the home and the area name (errors are not memoized, they are raised again).
    Only this matcher is changed (instance attributes), not the class.
    """
    _memoize_fuzzy_batches(matcher.tagger, fast)
    resolve = type(matcher)._resolve_home_context.__get__(matcher)
    resolved: dict[tuple[str | None, str | None], Any] = {}

    def resolve_home_context(context_area: str | None, context_floor: str | None) -> Any:
        key = (context_area, context_floor)
        found = resolved.get(key)
        if found is None:
            found = resolved[key] = resolve(context_area, context_floor)  # a frozen dataclass
        return found

    matcher._resolve_home_context = resolve_home_context


def _memoize_fuzzy_batches(tagger: Any, fast: bool = True) -> None:
    """Make the fuzzy searches of this gazetteer tagger's choice batches cheaper.

    ``ChoiceBatch.extract`` (about half of the gazetteer's time) scores a query against a fixed
    set of choices: a pure function of the query, the keyword arguments and the batch's
    choices, token lengths and token-sort setting, none of which change after construction.
    The tagger searches every word window of a text, and the same windows ("turn on",
    "the") come back in text after text, so most searches repeat: they are memoized; the
    others are answered by :class:`_FuzzySearch` (the same answers, computed with rapidfuzz;
    ``fast=False``: by the batch's own ``extract``). Only this matcher's batches are wrapped (an
    instance attribute), not the class.
    """
    batches = [tagger.action_batch, *tagger.fuzzy_batches.values()]
    for batch in batches:
        if batch is None or "extract" in vars(batch):
            continue
        signature = (batch.choices, batch.token_lengths, batch.token_sort, fast)
        search = _EXTRACT_MEMOS.get(signature)
        if search is None:
            search = _EXTRACT_MEMOS[signature] = _FuzzySearch(batch, fast)
            if len(_EXTRACT_MEMOS) > _EXTRACT_MEMO_SETS:
                _EXTRACT_MEMOS.popitem(last=False)
        else:
            _EXTRACT_MEMOS.move_to_end(signature)
        batch.extract = search.extract


class _FuzzySearch:
    """``ChoiceBatch.extract`` of one set of choices, memoized, with the same answers.

    The gazetteer scores a choice ``1 - d / max(len(query), len(choice), 1)`` (``d`` the
    optimal-string-alignment distance for ``damerau``, Levenshtein's for ``levenshtein``,
    between the normalised texts; at least 0) and keeps those at or above the cutoff, best
    first, ties by the choice's length, then the choice, then its position, up to ``limit``.
    Here a choice whose length alone puts it below the cutoff (``d`` is at least the
    difference of the lengths) is never scored; rapidfuzz's bit-parallel distances pick the
    others that may pass (with :data:`_EXTRACT_SLACK` of margin), and each of those is scored
    again with the gazetteer's formula from its exact integer distance. Anything else (an
    unknown algorithm, ``limit <= 0``), and everything with ``fast=False``, goes to the
    batch's own ``extract``.
    """

    def __init__(self, batch: Any, fast: bool = True) -> None:
        self.fast = fast
        self.choices: tuple[str, ...] = batch.choices
        self.token_lengths: tuple[int, ...] = batch.token_lengths
        self.scoring_text = batch._scoring_text  # a pure function of the text and token_sort
        self.scoring: tuple[str, ...] = tuple(self.scoring_text(c) for c in batch.choices)
        self.fallback = batch.extract
        self.memo: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._eligible: dict[tuple[Any, ...], tuple[tuple[int, ...], list[str]]] = {}

    def extract(self, query: str, **kwargs: Any) -> list[Any]:
        key = (query, *kwargs.items())  # each call site passes the same keywords in one order
        found = self.memo.get(key)
        if found is None:
            found = tuple(self._extract(query, **kwargs))  # frozen Match records
            if len(self.memo) >= _EXTRACT_MEMO_SIZE:
                # Forget the older half (dicts keep insertion order): common windows come back.
                for old in list(itertools.islice(self.memo, len(self.memo) // 2)):
                    del self.memo[old]
            self.memo[key] = found
        return list(found)

    def _extract(
        self,
        query: str,
        *,
        cutoff: float = 0.0,
        limit: int = 3,
        algorithm: str = "damerau",
        query_tokens: int | None = None,
        extra_tokens: int = 0,
    ) -> list[Any]:
        if not self.fast or limit <= 0 or algorithm not in ("damerau", "levenshtein"):
            return list(
                self.fallback(
                    query,
                    cutoff=cutoff,
                    limit=limit,
                    algorithm=algorithm,
                    query_tokens=query_tokens,
                    extra_tokens=extra_tokens,
                )
            )
        from gazetteer_matcher.fuzzy import Match
        from rapidfuzz import process
        from rapidfuzz.distance import OSA, Levenshtein

        text = self.scoring_text(query)
        size = len(text)
        indexes, strings = self._candidates(size, query_tokens, extra_tokens, cutoff)
        if not strings:
            return []
        metric: Any = OSA if algorithm == "damerau" else Levenshtein
        near = process.extract(
            text,
            strings,
            scorer=metric.normalized_similarity,
            processor=None,
            score_cutoff=max(0.0, cutoff - _EXTRACT_SLACK),
            limit=None,
        )
        ranked: list[tuple[float, int, str, int]] = []
        for _, _, j in near:
            other = strings[j]
            score = max(0.0, 1.0 - metric.distance(text, other) / max(size, len(other), 1))
            if score >= cutoff:
                i = indexes[j]
                ranked.append((-score, len(self.choices[i]), self.choices[i], i))
        ranked.sort()
        return [Match(choice=self.choices[i], score=-neg) for neg, _, _, i in ranked[:limit]]

    def _candidates(
        self, size: int, query_tokens: int | None, extra_tokens: int, cutoff: float
    ) -> tuple[tuple[int, ...], list[str]]:
        """Choices (positions, normalised texts) inside the token window whose length allows a
        score of ``cutoff`` against a normalised query of ``size`` characters."""
        key = (size, query_tokens, extra_tokens, cutoff)
        found = self._eligible.get(key)
        if found is None:
            keep = [
                i
                for i, (tokens, text) in enumerate(zip(self.token_lengths, self.scoring, strict=True))
                if (
                    query_tokens is None
                    or query_tokens - extra_tokens <= tokens <= query_tokens + extra_tokens
                )
                and 1.0 - abs(size - len(text)) / max(size, len(text), 1) >= cutoff
            ]
            found = self._eligible[key] = (tuple(keep), [self.scoring[i] for i in keep])
        return found


def _plain(value: Any) -> SlotValue:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
