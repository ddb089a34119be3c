"""Teaching in the reference assistant's turn: how the dialogue's teaching decisions
(:mod:`selflearn.dialogue`) become traced turns.

* a teaching command the dialogue answered is logged as a turn of the ``teach`` matcher with its
  :class:`~selflearn.core.schema.DialogueAct` (:func:`command_turn`);
* a routine taught as "when I say movie time, ..." runs each of its sentences as one turn of
  intent ``SelflearnRoutine`` (:func:`run_routine`);
* the words a failed request could not place -- a name or area the NLU's unmatched-entity pass
  reports and the home does not have -- are what a teachable moment asks about (:func:`unplaced`).
"""

from __future__ import annotations

from selflearn.assistant.devices import HomeState
from selflearn.assistant.nlu import NluResult
from selflearn.assistant.pipeline import Assistant, HandledTurn, TurnBase
from selflearn.assistant.resolve import Resolution
from selflearn.core.schema import DialogueTrace, ErTrace, NluTrace, ResultTrace
from selflearn.dialogue import Applied, Said, taught_trace
from selflearn.dialogue.concepts import clean


def command_turn(base: TurnBase, said: Said) -> HandledTurn:
    """The turn of a teaching command the dialogue answered, with the user's act."""
    nlu = NluTrace(matched=True, intent=said.intent, slots=dict(said.slots), confidence=1.0, matcher="teach")
    result = ResultTrace(
        status="success" if said.ok else "error",
        response_text=said.text,
        error_code=None if said.ok else "not_learned",
        latency_ms=300,
    )
    trace = DialogueTrace(act_id=said.act.act_id, role="answer", kind=said.kind)
    turn = base.turn(nlu, ErTrace(ok=True), result, dialogue=trace)
    return HandledTurn(turn, None, NluResult(nlu), None, acts=(said.act,))


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
    turn = base.turn(nlu, ErTrace(ok=ok), result, rewrite=taught_trace(base.text, applied))
    last = effects[-1] if effects else None
    return HandledTurn(turn, last, NluResult(nlu), None, True, effects=tuple(effects))


def unplaced(handled: HandledTurn) -> str | None:
    """The words of a failed request the assistant could not place: a name or area the NLU's
    unmatched-entity pass reports and the home does not have (at most four words)."""
    return unplaced_words(handled.nlu, handled.resolution)


def unplaced_words(nlu: NluResult, resolution: Resolution | None) -> str | None:
    """:func:`unplaced` from an NLU result and its entity resolution (``None``: nothing)."""
    found = nlu.unmatched or {}
    for slot in ("name", "area"):
        words = found.get(slot)
        if isinstance(words, str):
            cleaned = clean(words)
            if cleaned and len(cleaned.split()) <= 4:
                return cleaned
    if resolution is not None and resolution.error_code in ("no_entity", "no_area"):
        subject = clean(resolution.error_subject or "")
        if subject and len(subject.split()) <= 4:
            return subject
    return None


__all__ = ["command_turn", "run_routine", "unplaced", "unplaced_words"]
