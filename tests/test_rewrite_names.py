"""A home's own names in the online rewriter: shortened names said in full, never dropped, and a
household's verbatim fixes that keep what the request named."""

from __future__ import annotations

from selflearn.assistant.home import Home
from selflearn.mining.delex import Delexicalizer
from selflearn.rewrite.embed import StaticEmbedder
from selflearn.rewrite.features import Query, candidates, why_no_candidate
from selflearn.rewrite.knowledge import KnowledgeConfig, build_knowledge
from selflearn.rewrite.personal import PersonalLayer
from selflearn.rewrite.rewriter import _GENERIC, RequestContext, Rewriter, RewriterConfig
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
    knowledge = build_knowledge(turns, homes, embedder, KnowledgeConfig(min_users=5))
    rewriter = Rewriter(knowledge, None, None, embedder, RewriterConfig(personal=False), homes)
    prep = rewriter.prepare(
        "kill the spotlights", RequestContext("h1", home=home, area="Kitchen", failed=True)
    )
    assert prep is not None and prep.aliased == "kill the kitchen spotlights"
    assert prep.completed == [("spotlights", "kitchen spotlights")] and prep.d.pattern == "kill the {name}"
    decision = rewriter.rewrite_one("kill the spotlights", RequestContext("h1", home=home, failed=True))
    assert "name: 'spotlights' is 'kitchen spotlights' here" in decision.reasons


def test_candidates_never_drop_part_of_a_name(embedder: StaticEmbedder) -> None:
    home = Home.from_dict(HOME)  # the bedroom has a "Reading Lamp"
    turns, homes = _population(home)
    knowledge = build_knowledge(turns, homes, embedder, KnowledgeConfig(min_users=5))
    rewriter = Rewriter(knowledge, None, None, embedder, RewriterConfig(personal=False), homes)
    ctx = RequestContext("h1", home=home, area="Bedroom", failed=True)
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
