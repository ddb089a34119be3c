"""Asking before guessing: the reference assistant's confirmation dialogue, end to end.

A real rewriter (a one-rule table, whose rewrites are guesses) behind the real NLU on a small
home: the assistant asks "Did you mean ...?", and yes / no / never mind / silence / a new request
each end the question as a person would expect; the answer teaches the rewriter.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from selflearn.assistant.devices import HomeState
from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.assistant.turns import HandledTurn
from selflearn.core.errors import ConfigError
from selflearn.core.home import Home
from selflearn.core.hooks import Confirm, RewriteContext
from selflearn.core.schema import LOG_RECORD, DeviceContext, RewriteTrace
from selflearn.dialogue import DialogueConfig, read_reply
from selflearn.rewrite.rewriter import Rewriter, RewriterConfig
from selflearn.rewrite.table import RewriteTable

HOME = Home.from_dict(
    {
        "home_id": "h1",
        "areas": [{"id": "kitchen", "name": "Kitchen"}, {"id": "hall", "name": "Hall"}],
        "entities": [
            {"id": "light.kitchen", "name": "Kitchen light", "area": "kitchen"},
            {"id": "lock.front_door", "name": "Front door", "area": "hall"},
        ],
    }
)
KILL = "kill the lights in the kitchen"
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def _rewriter(confirm: str = "guesses") -> Rewriter:
    table = RewriteTable.from_rules([("kill the lights in the {area}", "turn off the lights in the {area}")])
    return Rewriter.from_parts(table=table, config=RewriterConfig(confirm=confirm))  # type: ignore[arg-type]


def _assistant(rewriter: Rewriter, ask: bool = True) -> Assistant:
    return Assistant(AssistantConfig(asr="exact", ask=ask), rewriter=rewriter)


def _say(assistant: Assistant, state: HomeState, text: str, turn_id: str, when: datetime = T0) -> HandledTurn:
    return assistant.handle(
        spoken=text,
        state=state,
        turn_id=turn_id,
        session_id="s1",
        user_id="u1",
        household_id="h1",
        device=DeviceContext(device_id="d1", area="Kitchen"),
        timestamp=when,
        rng=random.Random(0),
    )


def _lit() -> HomeState:
    state = HomeState.initial(HOME)
    state.states["light.kitchen"] = "on"
    return state


@pytest.mark.parametrize(
    ("said", "meaning"),
    [
        ("yes", "yes"),
        ("Yeah, please!", "yes"),
        ("do it", "yes"),
        ("no", "no"),
        ("nope", "no"),
        ("no that's wrong", "no"),
        ("never mind", "never_mind"),
        ("cancel", "never_mind"),
        ("turn on the kitchen light", None),
        ("no turn on the light in the kitchen please", None),  # too long: a request
        ("", None),
    ],
)
def test_replies_are_read_as_a_person_means_them(said: str, meaning: str | None) -> None:
    assert read_reply(said) == meaning


def test_a_guess_is_a_question_and_yes_runs_it() -> None:
    rewriter = _rewriter()
    assistant, state = _assistant(rewriter), _lit()
    asked = _say(assistant, state, KILL, "t1")
    question = asked.question
    assert question is not None and asked.effect is None
    assert question.text == "Did you mean turn off the lights in the kitchen?"
    assert state.states["light.kitchen"] == "on"  # nothing done yet
    assert asked.turn.result is not None and asked.turn.result.status == "question"

    answered = assistant.reply(question, "yes", state, T0 + timedelta(seconds=2), random.Random(0))
    assert answered.reply == "yes" and answered.act.answer == "yes"
    assert state.states["light.kitchen"] == "off"
    handled = answered.handled
    assert handled is not None and handled.rewritten and handled.effect is not None
    turn = handled.turn
    assert turn.turn_id == "t1" and turn.text == "turn off the lights in the kitchen"
    assert turn.rewrite is not None and turn.rewrite.original_text == KILL
    assert turn.result is not None and turn.result.status == "success"
    assert turn.dialogue is not None and (turn.dialogue.role, turn.dialogue.answer) == ("question", "yes")
    assert answered.act.turn_id == "t1" and answered.act.answer_text == "yes"
    # Both records are valid log records, as written.
    for record in (turn, answered.act):
        assert LOG_RECORD.validate_json(record.model_dump_json()) == record

    # The yes taught the household's layer: the same request now acts without asking.
    rewriter.observe(turn, HOME)
    again = _say(assistant, state, KILL, "t2", T0 + timedelta(minutes=5))
    assert again.question is None and again.rewritten and state.states["light.kitchen"] == "off"
    decision = rewriter.rewrite_one(KILL, RewriteContext(household_id="h1", home=HOME, area="Kitchen"))
    assert not decision.confirm and "household said yes" in decision.reasons[-1]


def test_no_asks_what_was_meant_and_the_guess_is_never_proposed_again() -> None:
    rewriter = _rewriter()
    assistant, state = _assistant(rewriter), _lit()
    question = _say(assistant, state, KILL, "t1").question
    assert question is not None
    answered = assistant.reply(question, "no", state, T0 + timedelta(seconds=2), random.Random(0))
    assert answered.reply == "no" and answered.act.answer == "no"
    assert answered.response == "OK. What did you want?"
    assert answered.follow_up is not None and answered.follow_up.kind == "clarify"
    assert state.states["light.kitchen"] == "on"
    handled = answered.handled
    assert handled is not None and not handled.rewritten
    assert handled.turn.result is not None and handled.turn.result.status == "question"
    assert handled.turn.dialogue is not None and handled.turn.dialogue.answer == "no"

    # The reply to "What did you want?" is a request of its own, marked as that answer.
    reply = assistant.handle(
        spoken="turn off the kitchen light",
        state=state,
        turn_id="t2",
        session_id="s1",
        user_id="u1",
        household_id="h1",
        device=DeviceContext(device_id="d1", area="Kitchen"),
        timestamp=T0 + timedelta(seconds=5),
        rng=random.Random(0),
        answering=answered.follow_up,
    )
    assert reply.turn.dialogue is not None and reply.turn.dialogue.role == "answer"
    assert reply.turn.dialogue.kind == "clarify" and state.states["light.kitchen"] == "off"

    rewriter.observe(handled.turn, HOME)
    decision = rewriter.rewrite_one(KILL, RewriteContext(household_id="h1", home=HOME, area="Kitchen"))
    assert not decision.rewritten and "said no" in decision.reasons[-1]
    # ... in this household only.
    other = rewriter.rewrite_one(KILL, RewriteContext(household_id="h2", home=HOME, area="Kitchen"))
    assert other.rewritten and other.confirm


@pytest.mark.parametrize(
    ("said", "after_s", "answer", "reply"),
    [
        ("never mind", 2, "never_mind", "never_mind"),
        ("yes", 9, "timeout", None),  # past the 8 s answer window
        ("turn on the kitchen light", 2, "barge_in", None),  # a new request instead
    ],
)
def test_never_mind_silence_and_barge_in_do_nothing(
    said: str, after_s: float, answer: str, reply: str | None
) -> None:
    assistant, state = _assistant(_rewriter()), _lit()
    question = _say(assistant, state, KILL, "t1").question
    assert question is not None
    answered = assistant.reply(question, said, state, T0 + timedelta(seconds=after_s), random.Random(0))
    assert (answered.reply, answered.act.answer) == (reply, answer)
    assert state.states["light.kitchen"] == "on"
    assert answered.handled is not None and answered.handled.turn.dialogue is not None
    assert answered.handled.turn.dialogue.answer == answer
    if answer == "timeout":
        assert answered.act.timestamp == question.expires_at and answered.act.answer_text is None


def test_an_assistant_that_cannot_ask_does_not_apply_an_unconfirmed_rewrite() -> None:
    assistant, state = _assistant(_rewriter(), ask=False), _lit()
    handled = _say(assistant, state, KILL, "t1")
    assert handled.question is None and not handled.rewritten
    assert state.states["light.kitchen"] == "on"


def test_confirm_off_acts_as_before() -> None:
    assistant, state = _assistant(_rewriter("off")), _lit()
    handled = _say(assistant, state, KILL, "t1")
    assert handled.question is None and handled.rewritten and state.states["light.kitchen"] == "off"


def test_a_sensitive_rewrite_is_always_a_question_even_from_the_households_own_words() -> None:
    rewriter = _rewriter()
    for _ in range(2):  # two confirmed yeses: enough for the personal layer even for a lock
        rewriter.personal.confirmed("h1", "open sesame", "unlock the front door", True, 2)
    context = RewriteContext(household_id="h1", home=HOME, area="Hall")
    decision = rewriter.rewrite_one("open sesame", context)
    assert decision.rewritten and decision.layer == "personal" and decision.confirm
    assert "sensitive" in decision.reasons[-1]
    answer = rewriter("open sesame", context)
    assert isinstance(answer, Confirm) and isinstance(answer.trace, RewriteTrace)
    # The same personal rewrite of a harmless request acts.
    for _ in range(2):
        rewriter.personal.confirmed("h1", "make it bright", "turn on the kitchen light", True, 2)
    kitchen = RewriteContext(household_id="h1", home=HOME, area="Kitchen")
    plain = rewriter.rewrite_one("make it bright", kitchen)
    assert plain.rewritten and plain.layer == "personal" and not plain.confirm


def test_bad_dialogue_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="timeout_s"):
        DialogueConfig(timeout_s=0)
    with pytest.raises(ConfigError, match="proposal"):
        DialogueConfig(confirm_template="Really?")
    with pytest.raises(ConfigError, match="confirm"):
        RewriterConfig(confirm="sometimes")  # type: ignore[arg-type]


def test_the_service_answers_a_question_with_the_original_text_and_the_proposal(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from selflearn.service import ServiceConfig, create_app

    folder = _rewriter().save(tmp_path / "rw")
    config = ServiceConfig(rewriter=folder, confirm="guesses", request_timeout_ms=5000)
    with TestClient(create_app(config)) as client:
        res = client.post(
            "/v1/rewrite",
            json={
                "text": KILL,
                "household_id": "h1",
                "failed": True,
                "home": HOME.to_dict(),
                "area": "Kitchen",
            },
        )
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["text"] == KILL and not body["rewritten"] and body["rewrite"] is None
    assert body["confirm"]["proposal"] == "turn off the lights in the kitchen"
    assert body["confirm"]["question"] == "Did you mean turn off the lights in the kitchen?"
    assert body["confirm"]["rewrite"]["original_text"] == KILL
    with pytest.raises(ConfigError, match="confirm"):
        ServiceConfig(confirm="maybe")


def test_unconfirmed_mode_asks_about_the_households_own_fixes_until_it_says_yes() -> None:
    from collections import Counter

    context = RewriteContext(household_id="h1", home=HOME, area="Kitchen")
    for mode, asks in (("guesses", False), ("unconfirmed", True)):
        rewriter = _rewriter(mode)
        memory = rewriter.personal._new("h1")
        memory.rewrites["make it bright"] = Counter({"turn on the kitchen light": 2})  # two retries
        first = rewriter.rewrite_one("make it bright", context)
        assert first.rewritten and first.layer == "personal" and first.confirm == asks, mode
        rewriter.personal.confirmed("h1", "make it bright", "turn on the kitchen light", True, 2)
        after_yes = rewriter.rewrite_one("make it bright", context)
        assert after_yes.rewritten and not after_yes.confirm, mode


def test_a_rule_a_person_approved_acts_without_a_question() -> None:
    """A mined rule is a guess for a home (asked about); once a reviewer approved it on the review
    page, it is no guess: it acts unasked. A sensitive one still asks."""
    from selflearn.core.schema import Review
    from selflearn.rewrite.review import Reviews, review_id

    rewriter = _rewriter("guesses")
    context = RewriteContext(household_id="h1", home=HOME, area="Kitchen", failed=True)
    assert isinstance(rewriter(KILL, context), Confirm)
    source, target = "kill the lights in the {area}", "turn off the lights in the {area}"
    rule = rewriter.rewrite_one(KILL, context).rule_id
    approval = Review(
        review_id=review_id(source, target, rule),
        rule_id=rule,
        pattern=source,
        target=target,
        decision="approved",
        reviewer="admin",
        timestamp=T0,
    )
    rewriter.reviews_ = Reviews.of([approval])
    acted = rewriter(KILL, context)
    assert isinstance(acted, RewriteTrace) and acted.rewritten_text == "turn off the lights in the kitchen"


def test_the_command_shape_a_client_checks_covers_every_teaching_command() -> None:
    """Home Assistant's integration cannot import selflearn; it reads which requests the dialogue
    must hear first from a regular expression the service serves (``GET /healthz``). Every text
    the dialogue reads as a teaching command must match it, or the lesson goes to Home Assistant,
    which may answer it as something else; a plain request must not, or it costs a call."""
    import json
    import re

    from selflearn.dialogue.concepts import command_shape, read_command, shaped

    shape = re.compile(command_shape())
    texts = [
        "the big light is the kitchen lights",
        "Please, the telly is the living room TV!",
        "when I say nighty night I mean turn off the lights, and lock the door",
        "if i say movie time, dim the lights",
        "what have you learned, thanks",
        "ok what do you know",
        "forget about the big light please",
        "unlearn what mothership means",
        "my usual temperature is 21%",
        "my favourite brightness level is 40 percent",
    ]
    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    corpus = data / "hwu64" / "hwu64_cv_minus_slurp_test.jsonl"
    if corpus.exists():
        texts += [json.loads(line)["text"] for line in corpus.read_text(encoding="utf-8").splitlines()[:5000]]
    commands = [t for t in texts if read_command(t) is not None]
    assert len(commands) >= 10
    assert [t for t in commands if not shape.match(shaped(t))] == []
    plain = ["turn on the kitchen lights", "is the front door locked", "set the thermostat to 21 degrees"]
    assert [t for t in plain if shape.match(shaped(t))] == []
