"""The dialogue keeps its word (issue 53): what it says it learned, forgot or will ask is what it
does. Each test replays a finding as a person met it -- in ``selflearn chat``'s loop over the
built-in home (the real NLU, a real rewriter, a real DuckDB store when a restart matters), in the
service through its ASGI app, or in the Wyoming service -- and checks what the assistant did.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
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
    """The sequence of finding 1: a name its retries showed, used to switch the light off."""
    asked = chat.say("turn on the mothership")
    assert asked.question is not None and asked.question.kind == "teach"
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
