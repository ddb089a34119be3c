"""Teaching the reference assistant, end to end through a conversation: names, routines with a
parameter, phrasings, preferences, overriding, forgetting, listing, refusals, the teachable moment
and its nag budget, and that one home's concepts never reach another."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from selflearn.assistant.conversation import Conversation, Exchange
from selflearn.assistant.devices import HomeState
from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.core.home import Home
from selflearn.core.schema import LOG_RECORD, Concept, DialogueAct, Turn
from selflearn.core.store import Store
from selflearn.dialogue import Teaching
from selflearn.dialogue.concepts import ConceptBook, TeachBudget, plausible_name, read_command
from tests.conftest import HOME

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


class Chat:
    """A conversation with a clock that moves 20 s per utterance unless told otherwise."""

    def __init__(self, teaching: Teaching | None = None, household: str = "h1", ask: bool = True) -> None:
        self.teaching = teaching or Teaching()
        self.assistant = Assistant(AssistantConfig(asr="exact", ask=ask), teaching=self.teaching)
        self.state = HomeState.initial(Home.from_dict(HOME))
        self.records: list[Turn | DialogueAct] = []
        self.chat = Conversation(
            self.assistant, self.state, household_id=household, area="Living Room", log=self.records.append
        )
        self.now = T0

    def say(self, text: str, after_s: float = 20) -> Exchange:
        self.now += timedelta(seconds=after_s)
        return self.chat.say(text, self.now)


def ask_about(chat: Chat, words: str = "thingy") -> Exchange:
    """Fail on ``words`` twice: the second time is a teachable moment."""
    first = chat.say(f"turn on the {words}")
    assert first.question is None and first.response == f"Sorry, I am not aware of any device called {words}"
    return chat.say(f"turn on the {words}")


def test_teach_a_name_when_asked_and_the_very_next_request_uses_it() -> None:
    chat = Chat()
    asked = ask_about(chat)
    assert asked.question is not None and asked.question.kind == "teach"
    assert asked.response == "I don't know what thingy is. Can you teach me?"
    assert chat.state.states["light.reading_lamp"] == "off"
    assert asked.question.turn.turn_id not in {r.turn_id for r in chat.records}  # logged when it ends

    taught = chat.say("it's the reading lamp", after_s=3)
    assert taught.response == "OK, thingy means Reading Lamp. Turned on the light"
    assert chat.state.states["light.reading_lamp"] == "on"
    [act] = taught.acts
    assert (act.kind, act.answer, act.raised_by, act.proposal) == ("teach", "taught", "gap", "thingy")
    [turn] = [h.turn for h in taught.handled]
    assert turn.rewrite is not None and turn.rewrite.rule_id == f"taught:{act.taught}"
    assert turn.dialogue is not None and turn.dialogue.answer == "taught"

    after = chat.say("turn off the thingy")
    assert after.question is None and chat.state.states["light.reading_lamp"] == "off"
    assert [r.rewritten_text for r in after.rewrites] == ["turn off the reading lamp"]
    for record in chat.records:  # every record as logged is a valid log record
        assert LOG_RECORD.validate_json(record.model_dump_json()) == record


def test_a_routine_with_a_parameter_runs_in_every_room() -> None:
    chat = Chat()
    taught = chat.say("when I say study mode in the bedroom, turn on the bedroom lights")
    assert taught.response == "OK, study mode in the [room] means turn on the [room] lights."
    used = chat.say("study mode in the kitchen")
    assert chat.state.states["light.kitchen_ceiling"] == "on"
    assert [(e.intent, sorted(e.targets)) for e in used.effects] == [
        ("HassTurnOn", ["light.kitchen_ceiling"])
    ]
    chat.say("study mode in the bedroom")
    assert chat.state.states["light.reading_lamp"] == "on"

    routine = chat.say(
        "when I say movie time I mean set the living room lamp to 20 percent and turn off the tv"
    )
    assert routine.acts[0].answer == "taught"
    done = chat.say("movie time")
    assert [e.intent for e in done.effects] == ["HassLightSet", "HassTurnOff"]
    assert chat.state.states["media_player.tv"] == "off"
    assert done.handled[0].turn.nlu is not None and done.handled[0].turn.nlu.intent == "SelflearnRoutine"


def test_phrasing_preference_override_forget_and_list() -> None:
    chat = Chat()
    chat.say("when I say bedtime I mean turn off the living room lamp")
    used = chat.say("bedtime")  # Home Assistant alone does not understand it
    assert chat.state.states["light.living_room_lamp"] == "off"
    [bedtime] = chat.teaching.book.listing("h1", "me")
    assert [r.rule_id for r in used.rewrites] == [f"taught:{bedtime.concept_id}"]

    assert chat.say("my usual temperature is 21").response == "OK, your usual temperature is 21."
    used = chat.say("set the temperature to my usual")
    assert [r.rewritten_text for r in used.rewrites] == ["set the temperature to 21"]
    assert [e.intent for e in used.effects] == ["HassClimateSetTemperature"]

    chat.say("the big light is the reading lamp")
    override = chat.say("the big light is the tv")
    assert override.response == "OK, big light means TV now (it was Reading Lamp)."
    chat.say("turn off the big light")
    assert chat.state.states["media_player.tv"] == "off" and chat.state.states["light.reading_lamp"] == "off"

    listing = chat.say("what have you learned").response
    assert "bedtime means turn off the living room lamp" in listing
    assert "big light means TV" in listing and "your usual temperature is 21" in listing

    assert chat.say("forget the big light").response == "OK, I've forgotten what big light means."
    assert chat.say("forget the big light").response == "I don't know anything called big light."
    assert "big light" not in chat.say("what have you learned").response


def test_a_definition_the_nlu_cannot_parse_gets_a_clear_answer_and_nothing_is_stored() -> None:
    chat = Chat()
    refused = chat.say("when I say frobnicate I mean blorp the zorp")
    assert refused.response == "Sorry, I couldn't follow \"blorp the zorp\", so I haven't learned anything."
    assert refused.acts[0].answer == "unparsable"
    assert chat.teaching.book.listing("h1", "me") == []
    # Asked to teach a word, an answer that has the form of a definition but means nothing here:
    assert ask_about(chat, "gizmo").question is not None
    answered = chat.say("it's the flux capacitor", after_s=3)
    assert answered.acts[0].answer == "unparsable" and "haven't learned" in answered.response
    assert chat.teaching.book.listing("h1", "me") == []


@pytest.mark.parametrize(
    ("reply", "answer", "after_s"),
    [
        ("no", "declined", 3),
        ("never mind", "never_mind", 3),
        ("turn on the tv", "barge_in", 3),
        ("", "timeout", 30),
    ],
)
def test_declining_cancelling_barging_in_and_silence_teach_nothing(
    reply: str, answer: str, after_s: float
) -> None:
    chat = Chat()
    question = ask_about(chat).question
    assert question is not None
    if reply:
        ended = chat.say(reply, after_s=after_s)
    else:
        chat.now += timedelta(seconds=after_s)
        found = chat.chat.expire(chat.now)
        assert found is not None
        ended = found
    assert [a.answer for a in ended.acts] == [answer]
    assert chat.teaching.book.listing("h1", "me") == []
    asking = [r for r in chat.records if isinstance(r, Turn) and r.turn_id == question.turn.turn_id]
    assert len(asking) == 1 and asking[0].dialogue is not None and asking[0].dialogue.answer == answer
    if answer == "barge_in":  # the new request ran
        assert chat.state.states["media_player.tv"] == "on"
    if answer == "declined":  # never asked about it again, even an hour later
        assert chat.say("turn on the thingy", after_s=7200).question is None


def test_yes_then_the_definition() -> None:
    chat = Chat()
    ask_about(chat)
    follow = chat.say("yes", after_s=2)
    assert follow.response == "OK. What is thingy?" and follow.question is not None
    done = chat.say("the reading lamp", after_s=4)  # no lead: the answer to "What is thingy?"
    assert [a.answer for a in done.acts] == ["taught"]  # ... after the "yes" act ended before
    assert chat.state.states["light.reading_lamp"] == "on"


def test_only_plausible_names_that_failed_before_are_asked_about() -> None:
    budget = TeachBudget()
    assert not budget.allows("h1", "u1", "big light", T0)  # the first failure: not yet
    assert budget.allows("h1", "u1", "big light", T0 + timedelta(seconds=30))  # it failed again
    for garbage in ("to", "eighty my", "half my candle", "set 20", "the the"):
        assert not plausible_name(garbage)
        assert not budget.allows("h1", "u9", garbage, T0) and not budget.allows("h1", "u9", garbage, T0)
    assert plausible_name("big light") and plausible_name("the sun")


def test_the_nag_budget() -> None:
    budget = TeachBudget(min_repeats=1)
    t = T0
    assert budget.allows("h1", "u1", "thingy", t)
    # At most one question per person and name an hour.
    assert not budget.allows("h1", "u1", "thingy", t + timedelta(minutes=30))
    assert budget.allows("h1", "u1", "gizmo", t + timedelta(minutes=31))  # another name may be asked about
    assert budget.allows("h1", "u2", "thingy", t + timedelta(minutes=40))  # and another person
    assert budget.allows("h1", "u1", "thingy", t + timedelta(hours=2))
    budget.decline("h1", "u1", "thingy")
    assert not budget.allows("h1", "u1", "thingy", t + timedelta(days=2))  # declined: never again
    # A fast retry burst: the previous failure 3 s before (here, the declined word) -> no question.
    assert not budget.allows("h1", "u1", "blobby", t + timedelta(days=2, seconds=3))
    assert budget.allows("h1", "u1", "blobby", t + timedelta(days=2, seconds=40))


def test_an_exact_template_match_is_never_overridden_by_a_taught_word() -> None:
    chat = Chat()
    chat.say("when I say turn on the tv I mean turn off the tv")
    chat.state.states["media_player.tv"] = "off"
    chat.say("turn on the tv")
    assert chat.state.states["media_player.tv"] == "on"  # "turn on the tv" works: left alone


def test_concepts_persist_in_the_store_and_are_forgotten_with_the_household(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        chat = Chat(Teaching(ConceptBook.from_store(store)))
        chat.say("the big light is the reading lamp")
        [stored] = store.concepts("h1")
        assert (stored.kind, stored.phrase, stored.meaning, stored.target) == (
            "name",
            "big light",
            ("Reading Lamp",),
            "light.reading_lamp",
        )
        again = Chat(Teaching(ConceptBook.from_store(store)))  # a restart: the store has it
        again.say("turn on the big light")
        assert again.state.states["light.reading_lamp"] == "on"
        assert store.forget_household("h1")["concepts"] == 1
        assert store.concepts("h1") == []


@pytest.mark.parametrize("seed", range(6))
def test_a_households_concepts_never_reach_another(seed: int) -> None:
    """Property: whatever one home teaches (random names, phrasings, routines, in random order),
    another home using the same book and assistant behaves exactly as an untaught one."""
    rng = random.Random(seed)
    teaching = Teaching()
    teacher = Chat(teaching, household="h1")
    lessons = [
        "the big light is the reading lamp",
        "the sun is the kitchen ceiling",
        "when I say lights out I mean turn off the living room lamp",
        "when I say study mode in the bedroom turn on the bedroom lights",
        "my usual temperature is 19",
        "the box is the tv",
    ]
    for lesson in rng.sample(lessons, rng.randint(1, len(lessons))):
        teacher.say(lesson)
    probes = [
        "turn on the big light",
        "lights out",
        "study mode in the kitchen",
        "turn off the box",
        "set the temperature to my usual",
        "turn on the sun",
    ]
    other, control = Chat(teaching, household="h2"), Chat(Teaching(), household="h2")
    for probe in rng.sample(probes, len(probes)):
        seen, untaught = other.say(probe), control.say(probe)
        assert seen.response == untaught.response
        assert [h.turn.rewrite for h in seen.handled] == [h.turn.rewrite for h in untaught.handled]
    assert other.state.states == control.state.states
    assert teaching.book.listing("h2", "me") == []
    assert all(c.household_id == "h1" for c in teaching.book.listing("h1", "me"))


def test_sentences_that_only_look_like_teaching_are_requests() -> None:
    assert read_command("what time is it") is not None  # the form of "X is Y" ...
    chat = Chat()
    answer = chat.say("what time is it")  # ... but "it" names nothing: an ordinary request
    assert answer.response.startswith("It's") and not answer.acts
    chat.say("it is the reading lamp")  # no question waiting: "it" is not a word to teach
    assert chat.teaching.book.listing("h1", "me") == []


def test_concept_records_round_trip() -> None:
    chat = Chat()
    chat.say("the big light is the reading lamp")
    [concept] = chat.teaching.book.listing("h1", "me")
    assert Concept.model_validate_json(concept.model_dump_json()) == concept


def test_a_taught_routine_that_unlocks_a_door_asks_first() -> None:
    """A routine is the household's own word, but unlocking the front door and opening the garage
    are never done unasked: "leaving" asks "Did you mean ...?" every time, a yes runs both."""
    from selflearn.cli.chat import load_home

    chat = Chat()
    chat.state = HomeState.initial(load_home())
    chat.chat = Conversation(chat.assistant, chat.state, household_id="h1", area="Hall")
    taught = chat.say("when i say coming home unlock the front door and open the garage door")
    assert taught.response.startswith("OK, coming home means unlock the front door and then open")
    for _ in range(2):
        asked = chat.say("coming home")
        assert asked.question is not None and asked.question.kind == "confirm", asked.response
        assert asked.response == "Did you mean unlock the front door and then open the garage door?"
        assert chat.state.states["lock.front_door"] == "locked" and not asked.effects
        done = chat.say("yes", after_s=2)
        assert [e.intent for e in done.effects] == ["HassTurnOff", "HassTurnOn"], done.response
        assert chat.state.states["lock.front_door"] == "unlocked"
        assert chat.state.states["cover.garage_door"] == "open"
        chat.state.states["lock.front_door"] = "locked"
        chat.state.states["cover.garage_door"] = "closed"
    cannot_ask = Chat(ask=False)
    cannot_ask.state = HomeState.initial(load_home())
    cannot_ask.chat = Conversation(cannot_ask.assistant, cannot_ask.state, household_id="h1", area="Hall")
    cannot_ask.say("when i say coming home unlock the front door and open the garage door")
    assert not cannot_ask.say("coming home").effects
    assert cannot_ask.state.states["lock.front_door"] == "locked"
