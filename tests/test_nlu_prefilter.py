"""The template pre-filter, the compiled matcher and the NLU cache never change what hassil returns.

A small version of ``bench/experiments/nlu_equivalence.py``: texts a ``noisy`` simulation sends to the NLU,
plus hand-written edge cases, matched against all of Home Assistant's intents with the home's
full lists (Home Assistant's plain call) and through the pre-filter; and hassil's matcher
against its compiled port (:mod:`selflearn.assistant.fastmatch`), result for result. hassil's
number-word tries are kept keyed without their multiplier (the port keys them with it:
:data:`selflearn.assistant.fastmatch.ranges._TRIES`), so here hassil builds them afresh for every
match: the reference is then right whatever was matched before.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from hassil import recognize_all, recognize_best, string_matcher
from hassil.models import UnmatchedRangeEntity, UnmatchedTextEntity
from hassil.recognize import MISSING_ENTITY

from selflearn.assistant import fastmatch
from selflearn.assistant.fastmatch import ranges
from selflearn.assistant.nlu import (
    HomeAssistantNlu,
    NluResult,
    _relevant_lists,
    load_intents,
    slot_lists_for,
    template_filter,
)
from selflearn.assistant.pipeline import AssistantConfig
from selflearn.core.home import Home
from selflearn.simulation.population import make_household
from selflearn.simulation.simulator import SimulationConfig, simulate


class _Unkept(dict[Any, Any]):
    """A cache that keeps nothing."""

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


@pytest.fixture(autouse=True)
def hassil_rebuilds_number_tries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(string_matcher, "_RANGE_TRIE_CACHE", defaultdict(_Unkept))
    yield


EDGE_CASES = [
    "turn on the kitchen lights",
    "Turn ON the Kitchen Ceiling!",
    "how's the temperature",
    "hows the temperature",
    "set the kitchen ceiling to 50%",
    "set the kitchen ceiling to fifty percent",
    "set brightness of kitchen ceiling to twenty-five",
    "turn on the kitchen_ceiling",
    "turn on the kitchen ceilinglight",
    "kitchen ceiling lighting brightness twenty four",
    "turn off the living-room lamp please",
    "please please turn off the tv",
    "add milk to my shopping list",
    "set a timer for five minutes",
    "what's the weather like",
    "turn on the café lights",
    "turn on the \u212aitchen ceiling",  # Kelvin sign: matches "k" under re.IGNORECASE
    "",
    "   ",
    "turn on",
    "lounge lights on",
    # wildcards, numbers inside them, skip words at either end
    "add milk and eggs to the shopping list please",
    "please add 2 apples to my shopping list",
    "remind me to buy eggs",
    "set a 5 minute timer called pasta",
    "set a timer for twenty five minutes for the pizza",
    "send a message saying hello there",
    "play the beatles on the kitchen speaker",
    "search for songs by queen",
    "cancel the pasta timer",
    "set the kitchen ceiling brightness to 150 percent",
    "set temperature to twenty-one degrees",
    "turn the kitchen ceiling kitchen ceiling on",
    "turn   on  the   kitchen ceiling",
]


def _strict_key(res: Any) -> Any:
    if res is None:
        return None
    return (
        res.intent.name,
        [(e.name, e.value, e.text, e.is_wildcard) for e in res.entities_list],
        res.response,
        res.text_chunks_matched,
    )


def _all_keys(results: Any) -> list[Any]:
    return [
        (
            r.intent.name,
            [(e.name, e.value, e.text) for e in r.entities_list],
            [
                (e.name, getattr(e, "text", None), getattr(e, "value", None))
                for e in r.unmatched_entities_list
            ],
            r.text_chunks_matched,
        )
        for r in results
    ]


@pytest.fixture(scope="module")
def simulated_texts(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Home, str | None]]:
    calls: list[tuple[str, Home, str | None]] = []
    original = HomeAssistantNlu.recognize

    def spy(self: HomeAssistantNlu, text: str, home: Home, *args: Any, **kwargs: Any) -> NluResult:
        calls.append((text, home, args[0] if args else kwargs.get("context_area")))
        return original(self, text, home, *args, **kwargs)

    HomeAssistantNlu.recognize = spy  # type: ignore[method-assign]
    try:
        config = SimulationConfig(households=3, days=0.7, seed=3, assistant=AssistantConfig(asr="noisy"))
        simulate(config, tmp_path_factory.mktemp("sim"))
    finally:
        HomeAssistantNlu.recognize = original  # type: ignore[method-assign]
    return calls[:110]


def test_prefilter_returns_what_hassil_returns_on_all_intents(
    simulated_texts: list[tuple[str, Home, str | None]], home: Home
) -> None:
    intents = load_intents()
    prefilter = template_filter()
    other = make_household(5, 1).home
    cases = [(t, h, a) for t, h, a in simulated_texts]
    cases += [(text, h, a) for text in EDGE_CASES for h, a in ((home, "kitchen"), (other, None))]
    assert len(cases) > 100
    for text, h, area in cases:
        lists = slot_lists_for(h)
        context = None
        if area and area in h.area_by_id:
            context = {"area": {"value": area, "text": h.area_by_id[area].name}}
        kw: dict[str, Any] = {"slot_lists": lists, "intent_context": context, "language": "en"}
        want = recognize_best(text, intents, best_slot_name="name", **kw)
        got = recognize_best(text, prefilter.candidates(text, lists), best_slot_name="name", **kw)
        assert _strict_key(got) == _strict_key(want), text
        want_all = recognize_all(text, intents, allow_unmatched_entities=True, **kw)
        reduced = prefilter.candidates(text, lists, allow_unmatched_entities=True)
        got_all = recognize_all(text, reduced, allow_unmatched_entities=True, **kw)
        assert _all_keys(got_all) == _all_keys(want_all), text


def test_cache_keeps_apostrophes_and_case_apart(home: Home) -> None:
    nlu = HomeAssistantNlu(cache_size=1000)
    fresh = HomeAssistantNlu(cache_size=0)
    for text in (
        "hows traffic to the kitchen",
        "how's traffic to the kitchen",
        "HOW'S traffic to the kitchen",
    ):
        assert nlu.recognize(text, home, "kitchen") == fresh.recognize(text, home, "kitchen")


def test_list_values_inside_longer_words_reach_hassil(home: Home) -> None:
    # With unmatched entities allowed, hassil matches "kitchen ceiling" inside "kitchen
    # ceilings" and lets an unmatched slot take the rest, so the value must not be dropped.
    text = "set kitchen ceilings brightness to lots"
    lists = slot_lists_for(home)
    context = {"area": {"value": "kitchen", "text": "Kitchen"}}
    results = recognize_all(
        text, load_intents(), slot_lists=lists, intent_context=context, allow_unmatched_entities=True
    )
    assert any(r.entities.get("name") for r in results), "the case should exercise a mid-word name"
    forms = template_filter().match_forms(text)
    kept, _ = _relevant_lists(home, "\n".join(f.lower() for f in forms))
    assert "Kitchen Ceiling" in [v.value_out for v in kept["name"].values]  # type: ignore[attr-defined]


def test_explain_failures_only_drops_the_error_wording(home: Home) -> None:
    nlu = HomeAssistantNlu()
    for text in ("turn on the big light", "turn on the kitchen ceiling", "flurb the wobble"):
        full = nlu.recognize(text, home, "kitchen")
        quiet = nlu.recognize(text, home, "kitchen", explain_failures=False)
        if full.trace.matched:
            assert quiet == full
        else:
            assert not quiet.trace.matched and not quiet.unmatched


def _dump(results: Any) -> list[Any]:
    return [
        (
            r.intent.name,
            id(r.intent_data),
            id(r.intent_sentence),
            r.text_chunks_matched,
            r.response,
            r.context,
            r.original_text,
            [dataclasses.astuple(e) for e in r.entities_list],
            [(type(e).__name__, dataclasses.astuple(e)) for e in r.unmatched_entities_list],
            [dataclasses.astuple(c) for c in r.captures_list],
        )
        for r in results
    ]


@pytest.mark.skipif(not fastmatch.SUPPORTED, reason="the compiled matcher ports another hassil release")
def test_compiled_matcher_returns_what_hassil_returns(
    simulated_texts: list[tuple[str, Home, str | None]], home: Home
) -> None:
    nlu = HomeAssistantNlu()
    prefilter = template_filter()
    intents = load_intents()
    other = make_household(5, 1).home
    edge = [(text, h, a) for text in EDGE_CASES for h, a in ((home, "kitchen"), (other, None))]
    for text, h, area in simulated_texts + edge:
        forms, lists, _, context = nlu.hassil_inputs(text, h, area)
        for unmatched in (False, True):
            kw: dict[str, Any] = {
                "slot_lists": lists,
                "intent_context": context,
                "allow_unmatched_entities": unmatched,
                "language": "en",
            }
            reduced = prefilter.candidates(text, lists, allow_unmatched_entities=unmatched, forms=forms)
            want = _dump(recognize_all(text, reduced, **kw))
            assert _dump(fastmatch.recognize_all(text, reduced, **kw)) == want, (text, unmatched)
        strict: dict[str, Any] = {
            "slot_lists": lists,
            "intent_context": context,
            "language": "en",
            "best_slot_name": "name",
        }
        assert _strict_key(fastmatch.recognize_best(text, reduced, **strict)) == _strict_key(
            recognize_best(text, reduced, **strict)
        ), text
    for text, h, area in edge:  # all of Home Assistant's intents, no pre-filter
        _, lists, _, context = nlu.hassil_inputs(text, h, area)
        for unmatched in (False, True):
            kw = {"slot_lists": lists, "intent_context": context, "allow_unmatched_entities": unmatched}
            want = _dump(recognize_all(text, intents, **kw))
            assert _dump(fastmatch.recognize_all(text, intents, **kw)) == want, (text, unmatched)


def _plain_unmatched(text: str, h: Home, area: str | None) -> tuple[str | None, dict[str, str]]:
    """Home Assistant's unmatched-entity pass over all intents with the home's full lists."""
    context = {"area": {"value": area, "text": h.area_by_id[area].name}} if area in h.area_by_id else None
    best, best_key = None, None
    lists = slot_lists_for(h)
    for res in recognize_all(
        text, load_intents(), slot_lists=lists, intent_context=context, allow_unmatched_entities=True
    ):
        if res.text_chunks_matched < 1:
            continue
        n_unmatched = sum(
            1
            for e in res.unmatched_entities_list
            if not (isinstance(e, UnmatchedTextEntity) and e.text == MISSING_ENTITY)
        )
        n_ranges = sum(1 for e in res.unmatched_entities_list if isinstance(e, UnmatchedRangeEntity))
        key = (len(res.entities_list), -n_unmatched, n_ranges, res.text_chunks_matched)
        if best_key is None or key > best_key:
            best, best_key = res, key
    if best is None:
        return None, {}
    unmatched = {
        name: str(getattr(e, "text", getattr(e, "value", ""))).strip()
        for name, e in best.unmatched_entities.items()
        if getattr(e, "text", None) != MISSING_ENTITY
    }
    return (best.intent.name, unmatched) if unmatched else (None, {})


def test_unmatched_pass_by_entity_bound_keeps_home_assistants_choice(
    simulated_texts: list[tuple[str, Home, str | None]], home: Home
) -> None:
    nlu = HomeAssistantNlu()
    cases = [(t, h, a) for t, h, a in simulated_texts[:60]]
    cases += [(text, home, "kitchen") for text in EDGE_CASES]
    for text, h, area in cases:
        forms, lists, _, context = nlu.hassil_inputs(text, h, area)
        got = nlu._unmatched(text, lists, context, forms)
        assert (got.trace.intent, got.unmatched) == _plain_unmatched(text, h, area), text


@pytest.mark.parametrize("volume_first", [True, False])
def test_a_number_in_words_means_the_same_whatever_was_said_before(home: Home, volume_first: bool) -> None:
    """hassil 3.12.1 caches the number-word trie of a 0-100 range without its multiplier:
    after "turn down the tv volume by ten percent" (``volume_step_down``, multiplier -1) it reads
    "set the brightness ... to ten percent" as -10. The port keys its tries with the multiplier."""
    ranges._TRIES.clear()
    nlu = HomeAssistantNlu("strict")
    said = ["turn down the tv volume by ten percent", "set the brightness in the living room to ten percent"]
    slots = {}
    for text in said if volume_first else reversed(said):
        trace = nlu.recognize(text, home, "living_room", explain_failures=False).trace
        slots[trace.intent] = trace.slots
    assert slots["HassLightSet"]["brightness"] == 10
    assert slots["HassSetVolumeRelative"]["volume_step"] == -10
