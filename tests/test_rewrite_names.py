"""A home's own names in the online rewriter: shortened names said in full, never dropped, and a
household's verbatim fixes that keep what the request named."""

from __future__ import annotations

from selflearn.core.delex import Delexicalizer
from selflearn.core.embed import StaticEmbedder
from selflearn.core.home import Home
from selflearn.core.hooks import RewriteContext
from selflearn.rewrite.features import Query, candidates, why_no_candidate
from selflearn.rewrite.knowledge import Knowledge, KnowledgeConfig
from selflearn.rewrite.personal import PersonalLayer
from selflearn.rewrite.rewriter import _GENERIC, Rewriter, RewriterConfig
from tests.conftest import HOME
from tests.test_rewrite import _population, log_turn

SPOTLIGHTS = {
    **HOME,
    "entities": [
        *HOME["entities"],
        {"id": "light.kitchen_spotlights", "name": "Kitchen Spotlights", "area": "kitchen", "state": "off"},
        {
            "id": "light.bedroom_ceiling_light",
            "name": "Bedroom Ceiling Light",
            "area": "bedroom",
            "state": "off",
        },
        {"id": "light.lounge_ceiling_light", "name": "Living Room Ceiling Light", "area": "living_room"},
    ],
}


def test_name_words_and_shortened_names_of_a_home() -> None:
    d = Delexicalizer(Home.from_dict(SPOTLIGHTS))
    assert {"spotlights", "ceiling", "reading", "lamp"} <= d.name_words
    assert not {"kitchen", "living", "room", "upstairs"} & d.name_words  # place words are not names
    shorts = d.short_names(_GENERIC)
    assert shorts["spotlights"] == ["kitchen spotlights"]
    assert shorts["ceiling"] == ["kitchen ceiling"]
    assert sorted(shorts["ceiling light"]) == ["bedroom ceiling light", "living room ceiling light"]
    assert "lamp" not in shorts  # "Living Room Lamp" shortened is just "lamp": nothing in particular
    assert Delexicalizer(None).short_names(_GENERIC) == {}


def test_completion_takes_only_a_name_no_other_entity_shortens_to() -> None:
    d = Delexicalizer(Home.from_dict(SPOTLIGHTS))
    assert d.complete("spotlights off", _GENERIC) == (
        "kitchen spotlights off",
        [("spotlights", "kitchen spotlights")],
    )
    # two ceiling lights: no guess; and the ambiguous mention is used up, so "ceiling light" is
    # not completed as the kitchen's "ceiling" either
    assert d.complete("turn on the ceiling light", _GENERIC) == ("turn on the ceiling light", [])
    # a full name is not completed again
    assert d.complete("turn on the kitchen spotlights", _GENERIC)[1] == []


def test_rewriter_says_a_shortened_name_in_full(embedder: StaticEmbedder) -> None:
    home = Home.from_dict(SPOTLIGHTS)
    turns, homes = _population(home)
    knowledge = Knowledge(KnowledgeConfig(min_users=5)).fit(turns, homes, embedder)
    rewriter = Rewriter.from_parts(knowledge, None, None, embedder, RewriterConfig(personal=False), homes)
    prep = rewriter.prepare(
        "kill the spotlights", RewriteContext("h1", home=home, area="Kitchen", failed=True)
    )
    assert prep is not None and prep.aliased == "kill the kitchen spotlights"
    assert prep.completed == [("spotlights", "kitchen spotlights")] and prep.d.pattern == "kill the {name}"
    decision = rewriter.rewrite_one("kill the spotlights", RewriteContext("h1", home=home, failed=True))
    assert "name: 'spotlights' is 'kitchen spotlights' here" in decision.reasons


def test_candidates_never_drop_part_of_a_name(embedder: StaticEmbedder) -> None:
    home = Home.from_dict(HOME)  # the bedroom has a "Reading Lamp"
    turns, homes = _population(home)
    knowledge = Knowledge(KnowledgeConfig(min_users=5)).fit(turns, homes, embedder)
    rewriter = Rewriter.from_parts(knowledge, None, None, embedder, RewriterConfig(personal=False), homes)
    ctx = RewriteContext("h1", home=home, area="Bedroom", failed=True)
    prep = rewriter.prepare("kill the bedroom reading lights", ctx)
    assert prep is not None and prep.d.pattern == "kill the {area} reading lights"
    assert prep.keep == frozenset({"reading"})  # "lights" names no particular thing
    query, hood, kept = rewriter.retrieve(prep, ctx)
    assert hood is not None and all("reading" in c.pattern.split() for c in kept)
    free = candidates(Query(query.text, query.d, query.vector), knowledge, hood)
    assert "turn off the {area} lights" in [c.pattern for c in free]  # without the guard, it would be
    assert "drops part of a name" in why_no_candidate(query, knowledge, hood)


def test_a_retry_naming_something_else_is_not_a_personal_fix() -> None:
    home = Home.from_dict(HOME)
    layer = PersonalLayer()
    layer.observe(log_turn("a", "switch on kitchen radio", status="no_match"), home)
    layer.observe(
        log_turn(
            "b", "turn on the living room lamp", at=8, intent="HassTurnOn", slots={"name": "Living Room Lamp"}
        ),
        home,
    )
    layer.observe(log_turn("c", "switch on the kitchen thing", at=100, status="no_match"), home)
    layer.observe(
        log_turn("d", "turn on the kitchen lights", at=106, intent="HassTurnOn", slots={"area": "Kitchen"}),
        home,
    )
    memory = layer.memory("test_home")
    assert memory is not None
    assert memory.rewrite_for("switch on kitchen radio") is None  # the kitchen is not the living room
    assert memory.rewrite_for("switch on the kitchen thing") == ("turn on the kitchen lights", 1)
    assert memory.turns == 4 and memory.failed == 2


def test_each_household_gets_its_own_wilkerson(embedder: StaticEmbedder) -> None:
    """The issue's example, through the real assistant: two households whose homes both know
    "Wilkerson California" and "Wilkerson Washington" ask for "the weather in Wilkerson", which
    strict matching cannot place, and each retries with the town it means. After two such fixes,
    each household's request is rewritten to its own town; one fix is not enough, and a household
    with no history gets no guess."""
    import random
    from datetime import UTC, datetime, timedelta

    from selflearn.assistant.devices import HomeState
    from selflearn.assistant.pipeline import Assistant, AssistantConfig
    from selflearn.core.schema import DeviceContext, Turn

    towns = [
        {"id": "weather.wilkerson_california", "name": "Wilkerson California", "area": None},
        {"id": "weather.wilkerson_washington", "name": "Wilkerson Washington", "area": None},
    ]
    homes = {
        h: Home.from_dict({**HOME, "home_id": h, "entities": [*HOME["entities"], *towns]})
        for h in ("ca", "wa", "new")
    }
    assistant = Assistant(AssistantConfig(asr="exact", nlu="strict"))
    rewriter = Rewriter.from_parts(None, None, None, embedder, RewriterConfig(), dict(homes))
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)

    def say(household: str, text: str, at: float, learn: bool = True) -> Turn:
        turn = assistant.handle(
            spoken=text,
            state=HomeState.initial(homes[household]),
            turn_id=f"{household}-{at}",
            session_id=f"s-{household}",
            user_id=f"u-{household}",
            household_id=household,
            device=DeviceContext(device_id="d", area="Kitchen"),
            timestamp=start + timedelta(seconds=at),
            rng=random.Random(0),
        ).turn
        if learn:
            rewriter.observe(turn, homes[household])
        return turn

    asked = "what's the weather in wilkerson"
    meant = {"ca": "Wilkerson California", "wa": "Wilkerson Washington"}
    for day in range(2):
        for household, town in meant.items():
            failed = say(household, asked, day * 86_400)
            assert failed.result is not None and failed.result.status != "success"
            fixed = say(household, f"what's the weather in {town.lower()}", day * 86_400 + 6)
            assert fixed.nlu is not None and fixed.nlu.slots == {"name": town}
        if day == 0:  # one fix: too thin to act on
            ca = rewriter.rewrite_one(asked, RewriteContext("ca", home=homes["ca"], failed=True))
            assert not ca.rewritten
    for household, town in meant.items():
        for failed_first in (True, None):  # behind the NLU, and before it
            ctx = RewriteContext(household, home=homes[household], failed=failed_first)
            decision = rewriter.rewrite_one(asked, ctx)
            assert decision.rewritten and decision.layer == "personal", decision.reasons
            assert decision.text.endswith(town.lower())
            result = say(household, decision.text, 3 * 86_400, learn=False)
            assert result.nlu is not None and result.nlu.slots == {"name": town}
            assert result.result is not None and result.result.status == "success"
    fresh = rewriter.rewrite_one(asked, RewriteContext("new", home=homes["new"], failed=True))
    assert not fresh.rewritten
