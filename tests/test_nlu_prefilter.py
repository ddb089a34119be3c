"""The template pre-filter and the NLU cache never change what hassil returns.

A small version of ``bench/nlu_equivalence.py``: texts a ``noisy`` simulation sends to the NLU,
plus hand-written edge cases, matched against all of Home Assistant's intents with the home's
full lists (Home Assistant's plain call) and through the pre-filter.
"""

from __future__ import annotations

from typing import Any

import pytest
from hassil import recognize_all, recognize_best

from selflearn.assistant.home import Home
from selflearn.assistant.nlu import (
    HomeAssistantNlu,
    NluResult,
    _relevant_lists,
    load_intents,
    slot_lists_for,
    template_filter,
)
from selflearn.assistant.pipeline import AssistantConfig
from selflearn.simulation.population import make_household
from selflearn.simulation.simulator import SimulationConfig, simulate

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
