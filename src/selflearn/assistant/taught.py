"""Teaching in the reference assistant's turn: definitions said to it, taught concepts used by the
next request, and the teachable moment ("I don't know what *big light* is. Can you teach me?").

``Assistant(teaching=Teaching())`` switches it on (the concepts themselves, the grammar and the
nag budget are :mod:`selflearn.assistant.teach`'s). For a request the NLU fails on, in order:

1. a teaching command ("the big light is the living room ceiling", "when I say ...", "my usual
   temperature is 21", "what have you learned", "forget big light") is answered and logged as a
   turn of the ``teach`` matcher with its :class:`~selflearn.core.schema.DialogueAct`;
2. a request that uses a taught concept runs with it (logged as a personal-layer rewrite whose
   ``rule_id`` is ``taught:<concept ids>``; a routine runs each of its sentences);
3. otherwise the rewriter, then the NLU as usual; if that still fails on words the home does
   not have (hassil's unmatched-entity pass names them) and :class:`TeachBudget` allows, the
   assistant asks to be taught instead of apologising.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from selflearn.assistant.devices import HomeState
from selflearn.assistant.dialogue import Question, TurnBase, asking_turn, expiry, read_reply, replace_trace
from selflearn.assistant.nlu import STRICT_MATCHERS, NluResult
from selflearn.assistant.pipeline import Answered, Assistant, HandledTurn
from selflearn.assistant.teach import (
    _LEAD,
    _SEPARATORS,
    PREFERENCE_INTENTS,
    Applied,
    Command,
    ConceptBook,
    TeachBudget,
    _clean,
    describe,
    first_unparsed,
    make_concept,
    named_thing,
    plausible_name,
    read_command,
    read_when,
    split_sentences,
    with_parameter,
)
from selflearn.core.schema import (
    AsrTrace,
    Concept,
    DialogueAct,
    DialogueAnswer,
    DialogueKind,
    DialogueTrace,
    ErTrace,
    NluTrace,
    ResultTrace,
    RewriteTrace,
    Turn,
)

UNPARSABLE = "Sorry, I couldn't follow that, so I haven't learned anything."
TEACH_QUESTION = "I don't know what {words} is. Can you teach me?"


@dataclass
class Teaching:
    """What an assistant that can be taught keeps: the concepts and the nag budget."""

    book: ConceptBook = field(default_factory=ConceptBook)
    budget: TeachBudget = field(default_factory=TeachBudget)
    moments: bool = True
    """Ask to be taught at teachable moments (needs ``AssistantConfig(ask=True)``)."""


def _parses(assistant: Assistant, state: HomeState, area: str | None) -> Callable[[str], bool]:
    """Whether a sentence of a definition is understood exactly: Home Assistant's templates
    match it (not the gazetteer's fuzzy guess) and it resolves in the home."""

    def parses(sentence: str) -> bool:
        nlu, resolution = assistant.understand(sentence, state, area, explain_failures=False)
        return nlu.trace.matcher in STRICT_MATCHERS and resolution is not None and resolution.trace.ok

    return parses


def before_nlu(
    assistant: Assistant, teaching: Teaching, base: TurnBase, state: HomeState, area: str | None
) -> HandledTurn | RewriteTrace | None:
    """A teaching command answered (a turn), a taught concept to use (a rewrite to run), or
    ``None`` for a request that works, or that nothing taught applies to."""
    command = read_command(base.text)
    if command is not None:
        answered = _command(assistant, teaching, command, base, state, area)
        if answered is not None:
            return answered
    nlu, resolution = assistant.understand(base.text, state, area, explain_failures=False)
    if resolution is not None and resolution.trace.ok and nlu.trace.matcher in STRICT_MATCHERS:
        return None  # an exact template match is never overridden by a taught word
    applied = teaching.book.apply(base.text, base.household_id, base.user_id, state.home)
    if applied is None:
        return None
    if len(applied.sentences) == 1:
        return _trace(base.text, applied)
    return run_routine(assistant, applied, base, state, area)


def _trace(original: str, applied: Applied) -> RewriteTrace:
    return RewriteTrace(
        original_text=original,
        rewritten_text=" then ".join(applied.sentences),
        layer="personal",
        rule_id=applied.rule_id,
        score=1.0,
    )


def run_routine(
    assistant: Assistant, applied: Applied, base: TurnBase, state: HomeState, area: str | None
) -> HandledTurn:
    """Run a routine's sentences in order, as one turn (intent ``SelflearnRoutine``)."""
    responses, effects, ok = [], [], True
    for sentence in applied.sentences:
        _nlu, _res, result, effect = assistant.run_text(sentence, state, base.timestamp, area)
        responses.append(result.response_text)
        ok = ok and result.status == "success"
        if effect is not None:
            effects.append(effect)
    concept = applied.concepts[0]
    nlu = NluTrace(
        matched=True,
        intent="SelflearnRoutine",
        slots={"routine": concept.phrase},
        confidence=1.0,
        matcher="taught",
    )
    result = ResultTrace(
        status="success" if ok else "error",
        response_text=" ".join(r.rstrip(".") + "." for r in responses if r)[:1000],
        error_code=None if ok else "routine_step_failed",
        latency_ms=500,
    )
    turn = base.turn(nlu, ErTrace(ok=ok), result, rewrite=_trace(base.text, applied))
    last = effects[-1] if effects else None
    return HandledTurn(turn, last, NluResult(nlu), None, True, effects=tuple(effects))


def _teach_turn(
    base: TurnBase, kind: DialogueKind, intent: str, slots: dict[str, str], response: str, ok: bool = True
) -> tuple[Turn, str]:
    act_id = f"{base.turn_id}.u"
    nlu = NluTrace(matched=True, intent=intent, slots=dict(slots), confidence=1.0, matcher="teach")
    result = ResultTrace(
        status="success" if ok else "error",
        response_text=response,
        error_code=None if ok else "not_learned",
        latency_ms=300,
    )
    trace = DialogueTrace(act_id=act_id, role="answer", kind=kind)
    return base.turn(nlu, ErTrace(ok=True), result, dialogue=trace), act_id


def _user_act(
    base: TurnBase, act_id: str, kind: DialogueKind, answer: DialogueAnswer, taught: Concept | None = None
) -> DialogueAct:
    return DialogueAct(
        act_id=act_id,
        turn_id=base.turn_id,
        user_id=base.user_id,
        household_id=base.household_id,
        timestamp=base.timestamp,
        kind=kind,
        question="",
        proposal=taught.phrase if taught is not None else None,
        raised_by="user",
        answer=answer,
        answer_turn_id=base.turn_id,
        answer_text=base.text,
        taught=taught.concept_id if taught is not None else None,
    )


def _command(
    assistant: Assistant,
    teaching: Teaching,
    command: Command,
    base: TurnBase,
    state: HomeState,
    area: str | None,
) -> HandledTurn | None:
    """Answer a teaching command; ``None`` when the sentence only looked like one ("what time
    is it" has the form of "X is Y", but "it" names nothing in the home)."""
    book, home = teaching.book, state.home
    parses = _parses(assistant, state, area)
    concept: Concept | None = None
    if command.kind == "list":
        known = book.listing(base.household_id, base.user_id)
        said = (
            "I've learned: " + "; ".join(describe(c) for c in known) + "."
            if known
            else (
                "I haven't learned anything yet. You can teach me, for example: "
                "the big light is the living room ceiling."
            )
        )
        turn, act_id = _teach_turn(base, "list", "SelflearnListConcepts", {}, said[:1000])
        return _done(turn, _user_act(base, act_id, "list", "answered"))
    if command.kind == "forget":
        gone = book.forget(base.household_id, base.user_id, command.phrase)
        said = (
            f"OK, I've forgotten what {command.phrase} means."
            if gone
            else f"I don't know anything called {command.phrase}."
        )
        slots = {"phrase": command.phrase}
        turn, act_id = _teach_turn(base, "forget", "SelflearnForget", slots, said, ok=bool(gone))
        return _done(turn, _user_act(base, act_id, "forget", "answered"))
    if command.kind == "preference":
        intent, template = PREFERENCE_INTENTS[command.phrase]
        sentence = template.format(value=command.body)
        if parses(sentence) or _parses(assistant, state, None)(sentence):  # here, or anywhere
            concept = make_concept(
                "preference",
                command.phrase,
                (command.body,),
                base.household_id,
                base.user_id,
                base.timestamp,
                target=intent,
                taught_by=f"{base.turn_id}.u",
                scope="user",
            )
    elif command.kind == "name":
        if named_thing(home, command.phrase) is not None or not plausible_name(command.phrase):
            return None  # a configured name is not redefined; "it is ..." names nothing
        thing = named_thing(home, command.body)
        if thing is None:
            return None
        concept = make_concept(
            "name",
            command.phrase,
            (thing[1],),
            base.household_id,
            base.user_id,
            base.timestamp,
            target=thing[0],
            taught_by=f"{base.turn_id}.u",
        )
    elif command.kind == "when":
        found = read_when(command.body, parses)
        if found is not None:
            phrase, sentences = with_parameter(*found, home)
            kind: Literal["phrasing", "routine"] = "phrasing" if len(sentences) == 1 else "routine"
            concept = make_concept(
                kind,
                phrase,
                sentences,
                base.household_id,
                base.user_id,
                base.timestamp,
                taught_by=f"{base.turn_id}.u",
            )
    if concept is None:
        slots = {"kind": command.kind}
        said = UNPARSABLE
        if command.kind == "preference":
            said = f"Sorry, I can't set a {command.phrase} in this home, so I haven't learned anything."
        if command.kind == "when":
            pieces = _SEPARATORS.split(command.body, maxsplit=1)
            part = first_unparsed(pieces[-1], parses)
            said = f"Sorry, I couldn't follow \"{part}\", so I haven't learned anything."
        turn, act_id = _teach_turn(base, "teach", "SelflearnTeach", slots, said, ok=False)
        return _done(turn, _user_act(base, act_id, "teach", "unparsable"))
    old = book.teach(concept)
    said = f"OK, {describe(concept)}."
    if old is not None and old.meaning != concept.meaning:
        said = f"OK, {describe(concept)} now (it was {' then '.join(old.meaning)})."
    slots = {"kind": concept.kind, "phrase": concept.phrase}
    turn, act_id = _teach_turn(base, "teach", "SelflearnTeach", slots, said[:1000])
    return _done(turn, _user_act(base, act_id, "teach", "taught", concept))


def _done(turn: Turn, act: DialogueAct) -> HandledTurn:
    assert turn.nlu is not None
    return HandledTurn(turn, None, NluResult(turn.nlu), None, acts=(act,))


def teachable_moment(
    assistant: Assistant, teaching: Teaching, handled: HandledTurn, timestamp: datetime
) -> HandledTurn:
    """``handled`` (a request that failed on words the home lacks) turned into "I don't know
    what <words> is. Can you teach me?" when the budget allows; otherwise ``handled``."""
    turn = handled.turn
    words = _gap(handled)
    if (
        words is None
        or not teaching.moments
        or not assistant.config.ask
        or turn.result is None
        or turn.result.status == "success"
        or handled.rewritten
        or not teaching.budget.allows(turn.household_id, turn.user_id, words, timestamp)
    ):
        return handled
    act_id = f"{turn.turn_id}.t"
    said = TEACH_QUESTION.format(words=words)
    asking = asking_turn(turn, act_id, "teach", said, words)
    question = Question(
        act_id=act_id,
        kind="teach",
        text=said,
        turn=asking,
        asked_at=timestamp,
        expires_at=expiry(timestamp, assistant.config.dialogue),
        proposal=words,
        raised_by="gap",
        nlu=handled.nlu,
        resolution=handled.resolution,
    )
    return HandledTurn(asking, None, handled.nlu, handled.resolution, question=question)


def _gap(handled: HandledTurn) -> str | None:
    words = _unplaced(handled)
    if words is None:
        return None
    return re.sub(r"^(?:the|my|our|a) ", "", words)


def _unplaced(handled: HandledTurn) -> str | None:
    """The words of a failed request the assistant could not place: a name or area the NLU's
    unmatched-entity pass reports and the home does not have."""
    unmatched = getattr(handled.nlu, "unmatched", {}) or {}
    for slot in ("name", "area"):
        words = unmatched.get(slot)
        if isinstance(words, str):
            cleaned = _clean(words)
            if cleaned and len(cleaned.split()) <= 4:
                return cleaned
    if handled.resolution is not None and handled.resolution.error_code in ("no_entity", "no_area"):
        subject = _clean(handled.resolution.error_subject)
        if subject and len(subject.split()) <= 4:
            return subject
    return None


def teach_reply(
    assistant: Assistant,
    teaching: Teaching,
    question: Question,
    text: str,
    heard: AsrTrace | None,
    state: HomeState,
    timestamp: datetime,
) -> Answered:
    """The answer to "Can you teach me?" / "What is <words>?": a definition (taught, then the
    asking request runs with it), yes (asks what it is), no (declined: never asked again),
    never mind, a definition it cannot parse (nothing stored), or a new request (barge-in)."""
    words = question.proposal or ""
    turn = question.turn
    reply = read_reply(text)
    config = assistant.config.dialogue
    if reply == "yes":
        follow = Question(
            act_id=f"{question.act_id}.d",
            kind="teach",
            text=f"OK. What is {words}?",
            turn=turn,
            asked_at=timestamp,
            expires_at=expiry(timestamp, config),
            proposal=words,
            raised_by=question.raised_by,
            nlu=question.nlu,
            resolution=question.resolution,
            wants_definition=True,
        )
        return Answered("yes", None, question.act("yes", timestamp, text), follow.text, heard, follow)
    if reply in ("no", "never_mind"):
        answer: DialogueAnswer = "declined" if reply == "no" else "never_mind"
        if reply == "no":
            teaching.budget.decline(turn.household_id, turn.user_id, words)
        ended = assistant.unanswered(question, answer)
        said = "OK." if reply == "no" else config.cancelled_text
        return Answered(reply, ended, question.act(answer, timestamp, text), said, heard)
    area = state.home.area_id_of(turn.device.area)
    parses = _parses(assistant, state, area)
    said = _clean(text)
    command = read_command(text)
    lead = _LEAD.match(said)
    definition = said[lead.end() :] if lead else said if question.wants_definition else None
    if command is not None and command.kind == "name" and command.phrase == words:
        definition = command.body
    if definition is None and not parses(said):
        definition = _named_suffix(said, state)  # "downstairs the basement": a name at the end
    concept = None
    if definition is not None:
        thing = named_thing(state.home, definition)
        if thing is not None:
            concept = make_concept(
                "name",
                words,
                (thing[1],),
                turn.household_id,
                turn.user_id,
                timestamp,
                target=thing[0],
                taught_by=question.act_id,
            )
        else:
            sentences = split_sentences(definition, parses)
            if sentences is not None:
                kind: Literal["phrasing", "routine"] = "phrasing" if len(sentences) == 1 else "routine"
                concept = make_concept(
                    kind,
                    words,
                    sentences,
                    turn.household_id,
                    turn.user_id,
                    timestamp,
                    taught_by=question.act_id,
                )
        if concept is None:
            ended = assistant.unanswered(question, "unparsable")
            return Answered(None, ended, question.act("unparsable", timestamp, text), UNPARSABLE, heard)
    if concept is None:  # not an answer: a new request
        act = question.act("barge_in", timestamp, text)
        return Answered(None, assistant.unanswered(question, "barge_in"), act, "", heard)
    teaching.book.teach(concept)
    applied = teaching.book.apply(turn.text, turn.household_id, turn.user_id, state.home)
    act = question.act("taught", timestamp, text, taught=concept.concept_id)
    learned = f"OK, {describe(concept)}."
    if applied is None:
        return Answered(None, assistant.unanswered(question, "taught"), act, learned, heard)
    handled = rerun(assistant, question, applied, state, timestamp, area, "taught")
    assert handled.turn.result is not None
    return Answered(None, handled, act, f"{learned} {handled.turn.result.response_text}", heard)


def _named_suffix(said: str, state: HomeState) -> str | None:
    """The longest ending of ``said`` (up to 5 words) that names one device or area."""
    words = said.split()
    for size in range(min(5, len(words)), 0, -1):
        tail = " ".join(words[-size:])
        if named_thing(state.home, tail) is not None:
            return tail
    return None


def rerun(
    assistant: Assistant,
    question: Question,
    applied: Applied,
    state: HomeState,
    timestamp: datetime,
    area: str | None,
    answer: DialogueAnswer,
) -> HandledTurn:
    """The asking turn run again with what was just taught."""
    asked = question.turn
    asking = asked.dialogue
    assert asking is not None
    finished = replace_trace(asking, answer=answer)
    if len(applied.sentences) > 1:
        base = TurnBase(
            asked.turn_id,
            asked.session_id,
            asked.user_id,
            asked.household_id,
            asked.timestamp,
            asked.device,
            asked.wake,
            asked.asr,
            asked.text,
        )
        handled = run_routine(assistant, applied, base, state, area)
        return HandledTurn(
            handled.turn.model_copy(update={"dialogue": finished}),
            handled.effect,
            handled.nlu,
            None,
            True,
            effects=handled.effects,
        )
    rewrite = _trace(asked.text, applied)
    return assistant.run_asked(question, applied.sentences[0], rewrite, answer, state, timestamp)


__all__ = ["Teaching", "TurnBase", "before_nlu", "teach_reply", "teachable_moment"]
