"""The dialogue keeps its word (issue 53): what it says it learned, forgot or will ask is what it
does. Each test replays a finding as a person met it -- in ``selflearn chat``'s loop over the
built-in home (the real NLU, a real rewriter, a real DuckDB store when a restart matters), in the
service through its ASGI app, or in the Wyoming service -- and checks what the assistant did.
"""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from selflearn.assistant.conversation import Conversation, Exchange
from selflearn.assistant.devices import HomeState
from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.cli.chat import ChatSession, load_home, load_rewriter, remember
from selflearn.core.store import Store
from selflearn.dialogue import ConceptBook, DialogueConfig, TeachBudget, Teaching
from selflearn.rewrite.rewriter import Rewriter
from selflearn.rewrite.table import RewriteTable

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
KILL = "kill the lights in the kitchen"


class Chat:
    """``selflearn chat --area Kitchen`` as the command sets it up (personal layer only unless a
    rewriter folder is given, teaching on, asking after one failure), a line every 4 s."""

    def __init__(self, store: Store | None = None, rewriter_dir: Path | None = None, area: str = "Kitchen"):
        self.home = load_home()
        self.rewriter = load_rewriter(rewriter_dir, "guesses")
        config = AssistantConfig(
            asr="exact", ask=True, rewrite_when="on_failure", dialogue=DialogueConfig(timeout_s=60)
        )
        self.budget = TeachBudget(min_repeats=1)
        book = ConceptBook.from_store(store) if store is not None else ConceptBook()
        self.assistant = Assistant(config, rewriter=self.rewriter, teaching=Teaching(book, self.budget))
        self.state = HomeState.initial(self.home)
        if store is not None:
            remember(store, self.rewriter, self.budget, self.home)
        self.conversation = Conversation(
            self.assistant, self.state, household_id=self.home.home_id, area=area
        )
        self.out = io.StringIO()
        console = Console(file=self.out, color_system=None, width=200, soft_wrap=True)
        self.session = ChatSession(self.conversation, console, store=store)
        self.now = T0

    def say(self, text: str, after_s: float = 4) -> Exchange:
        self.now += timedelta(seconds=after_s)
        exchange = self.conversation.say(text, self.now)
        self.session._records.extend(exchange.logged)
        self.session._flush()
        return exchange

    def learned(self) -> str:
        self.out.seek(0)
        self.out.truncate()
        self.session.handle(":learned")
        return self.out.getvalue()

    def light(self, entity: str = "light.living_room_ceiling") -> str:
        return self.state.states[entity]


def did(exchange: Exchange) -> list[tuple[str, list[str]]]:
    return [(e.intent, sorted(e.targets)) for e in exchange.effects]


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "chat.duckdb") as opened:
        yield opened


# --- finding 1: a name learned from a retry -----------------------------------------------------


def _mothership(chat: Chat) -> None:
    """The sequence of finding 1: a name its retries showed, used to switch the light off. (A
    question left unanswered teaches nothing, so the name is shown by a retry of a failure that
    asked nothing: the teaching question comes once an hour per name.)"""
    asked = chat.say("turn on the mothership")
    assert asked.question is not None and asked.question.kind == "teach"
    chat.say("never mind")
    assert chat.say("turn on the mothership").question is None
    assert did(chat.say("turn on the living room ceiling")) == [("HassTurnOn", ["light.living_room_ceiling"])]
    off = chat.say("turn off the mothership")
    assert [r.rewritten_text for r in off.rewrites] == ["turn off the living room ceiling"]
    assert chat.light() == "off"
    chat.say("turn off the living room ceiling")


def test_a_name_learned_from_retries_never_flips_the_action() -> None:
    chat = Chat()
    _mothership(chat)
    on = chat.say("turn on the mothership")
    assert did(on) == [("HassTurnOn", ["light.living_room_ceiling"])], on.rewrites
    assert chat.light() == "on"
    for rewrite in on.rewrites:
        assert rewrite.rewritten_text == "turn on the living room ceiling"


def test_a_name_learned_from_retries_is_listed_and_forgotten_everywhere(store: Store) -> None:
    chat = Chat(store)
    _mothership(chat)
    listed = chat.learned()
    assert "from your retries: 'mothership' -> 'living room ceiling'" in listed, listed
    said = chat.say("what have you learned").response
    assert "mothership means living room ceiling (from your retries)" in said
    forgot = chat.say("forget the mothership")
    assert forgot.response == "OK, I've forgotten what mothership means."
    assert chat.learned() == "nothing learned yet\n"
    after = chat.say("turn on the mothership", after_s=60)
    assert after.rewrites == [] and did(after) == [], after.response
    assert chat.light() == "off"
    # After a restart on the same store: the replayed retries do not bring it back.
    again = Chat(store)
    assert again.learned() == "nothing learned yet\n"
    used = again.say("turn off the mothership", after_s=60)
    assert used.rewrites == [] and did(used) == [], used.response


def test_a_name_taught_through_the_question_is_forgotten_also_after_a_restart(store: Store) -> None:
    chat = Chat(store)
    chat.say("turn on the mothership")
    taught = chat.say("it's the living room ceiling")
    assert taught.response == "OK, mothership means Living Room Ceiling. Turned on the light"
    chat.say("turn off the mothership")
    assert chat.light() == "off"
    assert "name: 'mothership' -> Living Room Ceiling" in chat.learned()
    assert chat.say("forget the mothership").response == "OK, I've forgotten what mothership means."
    assert chat.learned() == "nothing learned yet\n"
    assert did(chat.say("turn on the mothership", after_s=60)) == []
    again = Chat(store)
    assert again.learned() == "nothing learned yet\n"
    assert did(again.say("turn on the mothership", after_s=60)) == [] and again.light() == "off"


# --- finding 3: a question ignored ---------------------------------------------------------------


@pytest.fixture(scope="module")
def lights_out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mined guess as the finding had it: "kill the lights in the {area}" -> "lights out"."""
    table = RewriteTable.from_rules([("kill the lights in the {area}", "turn off the lights in the {area}")])
    return Rewriter.from_parts(table=table).save(tmp_path_factory.mktemp("rw") / "rewriter")


def test_a_new_request_instead_of_an_answer_teaches_no_fix(store: Store, lights_out_dir: Path) -> None:
    chat = Chat(store, lights_out_dir)
    asked = chat.say(KILL)
    assert asked.response == "Did you mean turn off the lights in the kitchen?"
    other = chat.say("turn on the kitchen light")
    assert [(a.kind, a.answer) for a in other.acts] == [("confirm", "barge_in")]
    assert did(other) == [("HassTurnOn", ["light.kitchen_light"])]
    for _ in range(2):  # the question comes back; nothing was learned, nothing acts unasked
        again = chat.say(KILL, after_s=60)
        assert again.rewrites == [] and did(again) == []
        assert again.response == "Did you mean turn off the lights in the kitchen?"
        chat.say("never mind")
    assert chat.learned() == "nothing learned yet\n"
    restarted = Chat(store, lights_out_dir)
    assert restarted.say(KILL, after_s=60).response == "Did you mean turn off the lights in the kitchen?"


# --- finding 2: a pending "Can you teach me?" and a lesson about something else ---------------------


NIGHTY_NIGHT = "when I say nighty night I mean turn off the kitchen light"


def test_a_lesson_about_something_else_is_that_lesson_and_acts_on_nothing() -> None:
    chat = Chat()
    chat.say("turn on the kitchen light")
    asked = chat.say("turn on the zapper", after_s=30)
    assert asked.response == "I don't know what zapper is. Can you teach me?"
    lesson = chat.say(NIGHTY_NIGHT)
    assert lesson.response == "OK, nighty night means turn off the kitchen light.", lesson.response
    assert did(lesson) == [] and chat.light("light.kitchen_light") == "on"
    assert [(a.kind, a.answer) for a in lesson.acts if a.raised_by != "user"] == [("teach", "barge_in")]
    chat.say("turn on the kitchen light")  # no retry of the zapper: its question was left
    listed = chat.learned()
    assert "phrasing: 'nighty night' -> turn off the kitchen light" in listed and "zapper" not in listed
    assert did(chat.say("nighty night")) == [("HassTurnOff", ["light.kitchen_light"])]


def test_a_lesson_for_a_phrase_that_already_works_is_refused_not_listed() -> None:
    """Tried in chat: "when I say lights out I mean turn on the kitchen light" answered "OK, lights
    out means turn on the kitchen light", was listed -- and "lights out" turned the light off, as
    Home Assistant understands it by itself (a lesson is only looked at when the request fails)."""
    chat = Chat()
    chat.say("turn off the kitchen light")
    lesson = chat.say("when I say lights out I mean turn on the kitchen light")
    assert lesson.response.startswith('I already understand "lights out"'), lesson.response
    assert "lights out" not in chat.learned()
    assert did(chat.say("lights out")) == [("HassTurnOff", ["light.kitchen_light"])]
    # pending "Can you teach me?": such a lesson is still that lesson (refused), not an answer
    assert chat.say("turn on the zapper", after_s=30).question is not None
    refused = chat.say("when I say turn on the tv I mean turn off the tv")
    assert refused.response.startswith('I already understand "turn on the tv"'), refused.response
    assert [a.answer for a in refused.acts if a.raised_by != "user"] == ["barge_in"]
    assert did(refused) == [] and "zapper" not in chat.learned() and "turn on the tv" not in chat.learned()


@pytest.mark.parametrize(
    "reply", ["the big light is the floor lamp", "kill the kitchen light", "forget the tv"]
)
def test_only_a_definition_of_the_name_answers_can_you_teach_me(reply: str) -> None:
    chat = Chat()
    chat.say("turn on the kitchen light")
    assert chat.say("turn on the zapper", after_s=30).question is not None
    answered = chat.say(reply)
    assert [a.answer for a in answered.acts if a.raised_by != "user"] == ["barge_in"], answered.response
    assert chat.light("light.kitchen_light") == "on"  # nothing ran for the zapper
    assert "zapper" not in chat.learned()


def test_a_definition_of_the_name_still_teaches_it() -> None:
    for reply in ("it's the floor lamp", "the zapper is the floor lamp", "that is the floor lamp"):
        chat = Chat()
        chat.say("turn on the zapper")
        taught = chat.say(reply)
        assert taught.response == "OK, zapper means Floor Lamp. Turned on the light", (reply, taught.response)


# --- finding 4: a question whose yes cannot work ---------------------------------------------------


def test_a_proposal_that_would_not_run_here_is_not_asked(lights_out_dir: Path) -> None:
    chat = Chat(rewriter_dir=lights_out_dir, area="Hall")  # the hall has no lights
    hall = chat.say("kill the lights in the hall")
    assert hall.question is None or hall.question.kind != "confirm", hall.response
    assert "Did you mean" not in hall.response
    kitchen = chat.say(KILL, after_s=60)
    assert kitchen.response == "Did you mean turn off the lights in the kitchen?"


# --- finding 5 (and 2): teaching over Wyoming ------------------------------------------------------


def _wyoming(rewriter: Rewriter | None = None) -> tuple[Any, Callable[[str], Any]]:
    from selflearn.integrations.wyoming import ConversationService

    service = ConversationService(load_home(), rewriter)

    def say(text: str) -> Any:
        return asyncio.run(service.reply(text, {"conversation_id": "c1", "area": "Kitchen"}))

    return service, say


def test_teaching_a_name_over_wyoming_is_handled_as_in_chat() -> None:
    service, say = _wyoming(Rewriter.from_parts())
    try:
        taught = say("the big light is the floor lamp")
        assert taught.said and taught.response == "OK, big light means Floor Lamp.", taught.response
        used = say("turn on the big light")
        assert used.recognized and used.understood == "turn on the floor lamp", used
        assert "big light means Floor Lamp" in say("what have you learned").response
        assert say("forget the big light").response == "OK, I've forgotten what big light means."
        after = say("turn on the big light")
        assert after.rewrite is None and after.understood == "turn on the big light"
    finally:
        service.close()


def test_a_name_lesson_for_a_device_the_home_lacks_says_so_and_learns_nothing() -> None:
    """ "the zapper is the garage lamp" where there is no garage lamp was passed on to the
    assistant, which answered "not aware of any device called zapper is the garage lamp" (seen
    in Home Assistant 2026.11's Assist dialog and in chat)."""
    service, say = _wyoming(Rewriter.from_parts())
    try:
        lacking = say("the zapper is the garage lamp")
        assert lacking.said and lacking.response == (
            "Sorry, I don't know a garage lamp in this home, so I haven't learned what zapper means."
        ), lacking.response
        assert "zapper" not in say("what have you learned").response
        assert say("turn on the zapper").rewrite is None
        # "X is Y" said about something that is no device is still not a lesson
        assert not say("the weather is nice").said
    finally:
        service.close()


def test_a_lesson_said_to_can_you_teach_me_over_wyoming_is_that_lesson() -> None:
    service, say = _wyoming()
    teaching = service.conversations.dialogue.teaching
    assert teaching is not None
    teaching.budget = TeachBudget(min_repeats=1, burst_s=0)  # asks at the first failure, as chat does
    try:
        assert say("turn on the zapper").response == "I don't know what zapper is. Can you teach me?"
        lesson = say(NIGHTY_NIGHT)
        assert lesson.said and lesson.response == "OK, nighty night means turn off the kitchen light."
        listed = say("what have you learned").response
        assert "nighty night means turn off the kitchen light" in listed and "zapper" not in listed
    finally:
        service.close()


# --- the service: one list, forgetting, a question that would not run -------------------------------


def test_the_service_lists_and_forgets_a_yes_also_after_a_restart(tmp_path: Path) -> None:
    from tests.conftest import HOME
    from tests.test_service_dialogue import PROPOSAL, Home, _app

    table = RewriteTable.from_rules([("kill the lights in the {area}", "turn off the lights in the {area}")])
    folder = Rewriter.from_parts(table=table).save(tmp_path / "rewriter")
    store = tmp_path / "s.duckdb"
    clock = [T0]

    def say(home: Home, text: str, conversation: str, failed: bool | None = True) -> dict[str, Any]:
        # An answer 2 s after its question; a request a minute after the last (sooner, the same
        # words again would be taken as a correction of the rewrite before them).
        clock[0] += timedelta(seconds=2 if conversation == last[0] else 60)
        last[0] = conversation
        return home.say(text, conversation, failed, timestamp=clock[0].isoformat())

    last = [""]

    with _app(folder, store) as c:
        c.put("/v1/homes/h1", json=HOME)
        assert c.app.state.service.talk.wait_ready()  # type: ignore[attr-defined]
        home = Home(c)
        assert say(home, KILL, "c1")["action"] == "ask"
        assert say(home, "yes", "c1")["action"] == "run"
        listed = say(home, "what have you learned", "c2", None)["speech"]
        assert f"{KILL} means {PROPOSAL} (you said yes)" in listed, listed
        concepts = c.get("/v1/concepts", params={"household_id": "h1"}).json()
        assert concepts["learned"] == [{"kind": "yes", "said": KILL, "means": [PROPOSAL], "how": "answer"}]
        assert say(home, KILL, "c3")["action"] == "run"
        forgot = say(home, f"forget {KILL}", "c4", None)
        assert forgot["speech"] == f"OK, I've forgotten what {KILL} means.", forgot
        assert say(home, KILL, "c5")["action"] == "ask"  # a guess again: asked, not done
        assert c.get("/v1/concepts", params={"household_id": "h1"}).json()["learned"] == []
        say(home, "never mind", "c5")
    with _app(folder, store) as c:  # the same store: the replay forgets at the same point
        assert c.app.state.service.talk.wait_ready()  # type: ignore[attr-defined]
        home = Home(c)
        assert "you said yes" not in say(home, "what have you learned", "c6", None)["speech"]
        assert say(home, KILL, "c7")["action"] == "ask"


def test_the_service_does_not_ask_a_question_whose_yes_cannot_work(tmp_path: Path) -> None:
    from tests.test_service_dialogue import Home, _app

    table = RewriteTable.from_rules([("kill the lights in the {area}", "turn off the lights in the {area}")])
    folder = Rewriter.from_parts(table=table).save(tmp_path / "rewriter")
    with _app(folder, tmp_path / "s.duckdb") as c:
        c.put("/v1/homes/h2", json=load_home().to_dict())
        assert c.app.state.service.talk.wait_ready()  # type: ignore[attr-defined]
        home = Home(c, "h2")
        hall = home.say("kill the lights in the hall", area="Hall")  # no lights in the hall
        assert hall["action"] == "pass" and hall["question"] is None, hall
        assert home.say(KILL, conversation="c2")["action"] == "ask"


# --- finding 6: what it says is what it does --------------------------------------------------------


def test_a_second_name_is_asked_about_in_the_same_hour_and_a_restart_keeps_the_budget(store: Store) -> None:
    chat = Chat(store)
    assert chat.say("turn on the zapper").response == "I don't know what zapper is. Can you teach me?"
    chat.say("never mind")
    second = chat.say("turn on the gizmo", after_s=30)
    assert second.response == "I don't know what gizmo is. Can you teach me?"
    chat.say("never mind")
    again = Chat(store)  # a restart within the hour: the same names are not asked about again
    again.now = chat.now
    assert (
        again.say("turn on the zapper", after_s=60).response
        == "Sorry, I am not aware of any device called zapper"
    )
    later = again.say("turn on the gizmo", after_s=3600)  # an hour on: it may ask again
    assert later.response == "I don't know what gizmo is. Can you teach me?"


def test_learned_lists_the_yes_answers_that_act_also_after_a_restart(
    store: Store, lights_out_dir: Path
) -> None:
    chat = Chat(store, lights_out_dir)
    chat.say(KILL)
    chat.say("yes")
    yes = "you said yes: 'kill the lights in the kitchen' means 'turn off the lights in the kitchen'"
    assert yes in chat.learned()
    again = Chat(store, lights_out_dir)
    assert yes in again.learned()
    acted = again.say(KILL, after_s=60)
    assert did(acted) == [("HassTurnOff", ["light.kitchen_light"])] and acted.question is None


def test_approving_a_rule_makes_it_act_unasked_in_the_service(tmp_path: Path) -> None:
    """What approving does, one thing (docs/service.md, docs/report.md): an approved rule is no
    guess any more -- it acts unasked, from the next request -- except where a household said no
    to it, and a sensitive one still asks."""
    from tests.conftest import HOME
    from tests.test_service_dialogue import Home, _app

    rules = [
        ("kill the lights in the {area}", "turn off the lights in the {area}"),
        ("lock up the {name}", "lock the {name}"),
    ]
    folder = Rewriter.from_parts(table=RewriteTable.from_rules(rules)).save(tmp_path / "rewriter")
    with _app(folder, tmp_path / "s.duckdb") as c:
        for household in ("h1", "h2"):
            c.put(f"/v1/homes/{household}", json=HOME)
        assert c.app.state.service.talk.wait_ready()  # type: ignore[attr-defined]
        refused, other = Home(c, "h1"), Home(c, "h2")
        assert refused.say(KILL)["action"] == "ask"
        refused.say("no")
        assert other.say(KILL)["action"] == "ask" and other.say("never mind")["action"] == "say"
        assert other.say("lock up the front door", conversation="c2")["action"] == "ask"
        other.say("never mind", conversation="c2")
        for source, target in rules:
            verdict = {"pattern": source, "target": target, "decision": "approved"}
            assert c.post("/v1/reviews", json=verdict).status_code == 200
        acted = other.say(KILL, conversation="c3")
        assert acted["action"] == "run" and acted["sentences"] == ["turn off the lights in the kitchen"]
        assert refused.say(KILL, conversation="c4")["action"] == "pass"  # its no still stands
        locked = other.say("lock up the front door", conversation="c5")
        assert locked["action"] == "ask"  # a lock: always asked


def test_a_yes_whose_proposal_failed_teaches_nothing() -> None:
    """Finding 4's second half: the yes to a proposal that then did not work was stored as a
    confirmed yes and acted on unasked from then on."""
    from selflearn.core.schema import Turn
    from tests.conftest import turn_dict

    said, proposal = "kill the lights in the bedroom", "turn off the lights in the bedroom"
    for status, acts in (("error", False), ("success", True)):
        rewriter = Rewriter.from_parts()
        asked = turn_dict(
            text=proposal,
            rewrite={"original_text": said, "rewritten_text": proposal, "layer": "precomputed", "score": 0.6},
            dialogue={
                "act_id": "t1.q",
                "role": "question",
                "kind": "confirm",
                "proposal": proposal,
                "answer": "yes",
            },
            result={"status": status, "response_text": "Sorry, I couldn't understand that"},
        )
        rewriter.observe(Turn.model_validate(asked))
        assert [(x.kind, x.said) for x in rewriter.learned("h1")] == ([("yes", said)] if acts else [])


def test_the_service_forgets_a_taught_name_and_its_retries_also_after_a_restart(tmp_path: Path) -> None:
    from tests.conftest import HOME
    from tests.test_service_dialogue import Home, _app

    store = tmp_path / "s.duckdb"
    folder = Rewriter.from_parts().save(tmp_path / "rewriter")  # the personal layer alone
    clock = [T0]

    def say(home: Home, text: str, conversation: str, failed: bool | None = True) -> dict[str, Any]:
        clock[0] += timedelta(seconds=3)
        return home.say(text, conversation, failed, timestamp=clock[0].isoformat(), typed=True)

    with _app(folder, store) as c:
        c.put("/v1/homes/h1", json=HOME)
        assert c.app.state.service.talk.wait_ready()  # type: ignore[attr-defined]
        home = Home(c)
        assert say(home, "turn on the mothership", "c1")["action"] == "ask"
        assert say(home, "it's the kitchen ceiling", "c1")["action"] == "run"
        assert say(home, "turn off the mothership", "c2")["sentences"] == ["turn off the kitchen ceiling"]
        forgot = say(home, "forget the mothership", "c3", None)
        assert forgot["speech"] == "OK, I've forgotten what mothership means."
        assert say(home, "turn on the mothership", "c4")["action"] == "pass"
        listed = say(home, "what have you learned", "c5", None)["speech"]
        assert "mothership" not in listed, listed
    with _app(folder, store) as c:
        assert c.app.state.service.talk.wait_ready()  # type: ignore[attr-defined]
        home = Home(c)
        assert say(home, "turn on the mothership", "c6")["action"] == "pass"
        assert "mothership" not in say(home, "what have you learned", "c7", None)["speech"]


def test_a_learned_name_survives_a_device_off_line_but_not_a_rewrite_that_names_nothing() -> None:
    chat = Chat()
    _mothership(chat)
    chat.state.unavailable.add("light.living_room_ceiling")
    offline = chat.say("turn on the mothership", after_s=60)
    assert offline.response == "Sorry, Living Room Ceiling is not available"
    chat.state.unavailable.discard("light.living_room_ceiling")
    assert did(chat.say("turn on the mothership", after_s=60)) == [
        ("HassTurnOn", ["light.living_room_ceiling"])
    ]
    # A learned name whose rewrite names nothing the home has stops acting at its first failure.
    memory = chat.rewriter.personal.memory(chat.home.home_id)
    assert memory is not None
    memory.aliases["gizmo"] = Counter({"qwerty": 1})  # as if a retry once showed it
    assert "'gizmo' -> 'qwerty'" in chat.learned()
    broken = chat.say("turn on the gizmo", after_s=60)
    assert [r.rewritten_text for r in broken.rewrites] == ["turn on the qwerty"] and did(broken) == []
    assert "gizmo" not in chat.learned()
    assert chat.say("turn on the gizmo", after_s=60).rewrites == []


# --- random conversations: the rules as invariants ---------------------------------------------------

POOL = [
    "turn on the mothership",
    "turn off the mothership",
    "turn on the living room ceiling",
    "turn off the living room ceiling",
    "turn on the zapper",
    "kill the lights in the kitchen",
    "turn on the kitchen light",
    "the big light is the floor lamp",
    "turn off the big light",
    "when I say nighty night I mean turn off the kitchen light",
    "when I say lights out I mean turn on the kitchen light",
    "it's the bedside lamp",
    "yes",
    "no",
    "never mind",
    "forget the mothership",
    "forget the big light",
    "what have you learned",
]


@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.tuples(st.sampled_from(POOL), st.sampled_from([3, 4, 30, 70])), min_size=6, max_size=16))
def test_random_conversations_keep_the_rules(lights_out_dir: Path, lines: list[tuple[str, int]]) -> None:
    """No action opposite to what was said; a forgotten name is not listed and does not act
    right after; never a traceback. Seeded and short here (40 sequences: about 15 s); 600
    random ones found nothing, and 150 found the forgetting of finding 1 on the code before."""
    chat = Chat(rewriter_dir=lights_out_dir)
    opposite = {"HassTurnOn": (" off ", "kill"), "HassTurnOff": (" on ",)}
    for text, after in lines:
        exchange = chat.say(text, after_s=after)
        for handled in exchange.handled:  # each turn that ran, against what its user said
            turn = handled.turn
            said = f" {turn.rewrite.original_text if turn.rewrite is not None else turn.text} "
            for effect in handled.actions:
                assert not any(word in said for word in opposite.get(effect.intent, ())), (said, effect)
        if text.startswith("forget the "):
            name = text.removeprefix("forget the ")
            assert name not in chat.learned()
            after_forget = chat.say(f"turn on the {name}", after_s=60)
            assert not any(name in r.original_text for r in after_forget.rewrites if r.layer == "personal"), (
                text
            )


def test_a_lesson_in_between_ends_the_retry_of_a_failure() -> None:
    """Tried in chat: "turn on the zapper" failed (no question: asked about within the hour),
    then a lesson about lights out, then "turn on the kitchen light" -- listed as "zapper means
    kitchen light (from your retries)"."""
    chat = Chat()
    chat.say("turn on the zapper")
    chat.say("never mind")
    assert chat.say("turn on the zapper", after_s=30).question is None  # a plain failure
    chat.say(NIGHTY_NIGHT)
    chat.say("turn on the kitchen light")
    assert "zapper" not in chat.learned()
    chat.say("turn on the zapper", after_s=60)  # without a lesson in between: a retry, as before
    chat.say("turn on the kitchen light")
    assert "from your retries: 'zapper' -> 'kitchen light'" in chat.learned()
