"""Teaching in the reference assistant's turn: how the dialogue's teaching decisions
(:mod:`selflearn.dialogue`) become traced turns.

* a teaching command the dialogue answered is logged as a turn of the ``teach`` matcher with its
  :class:`~selflearn.core.schema.DialogueAct` (:func:`command_turn`);
* a routine taught as "when I say movie time, ..." runs each of its sentences as one turn of
  intent ``SelflearnRoutine`` (:func:`run_routine`);
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from selflearn.assistant.devices import HomeState
from selflearn.assistant.execute import Effect
from selflearn.assistant.nlu import NluResult
from selflearn.assistant.resolve import Resolution
from selflearn.assistant.turns import HandledTurn, TurnBase
from selflearn.core.schema import MAX_TEXT_CHARS, DialogueTrace, ErTrace, NluTrace, ResultTrace
from selflearn.dialogue import Applied, Said, taught_trace


class RunsText(Protocol):
    """What a routine needs of an assistant: run one sentence through NLU, entity resolution and
    the result, changing ``state`` (:meth:`Assistant.run_text
    <selflearn.assistant.pipeline.Assistant.run_text>`)."""

    def run_text(
        self,
        text: str,
        state: HomeState,
        now: datetime,
        context_area: str | None,
        explain_failures: bool = True,
    ) -> tuple[NluResult, Resolution | None, ResultTrace, Effect | None]: ...


def command_turn(base: TurnBase, said: Said) -> HandledTurn:
    """The turn of a teaching command the dialogue answered, with the user's act."""
    nlu = NluTrace(matched=True, intent=said.intent, slots=dict(said.slots), confidence=1.0, matcher="teach")
    result = ResultTrace(
        status="success" if said.ok else "error",
        response_text=said.text[:MAX_TEXT_CHARS],  # it may quote a long definition back
        error_code=None if said.ok else "not_learned",
        latency_ms=300,
    )
    trace = DialogueTrace(act_id=said.act.act_id, role="answer", kind=said.kind)
    turn = base.turn(nlu, ErTrace(ok=True), result, dialogue=trace)
    return HandledTurn(turn, None, NluResult(nlu), None, acts=(said.act,))


def run_routine(
    assistant: RunsText, applied: Applied, base: TurnBase, state: HomeState, area: str | None
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
        response_text=" ".join(r.rstrip(".") + "." for r in responses if r)[:MAX_TEXT_CHARS],
        error_code=None if ok else "routine_step_failed",
        latency_ms=500,
    )
    turn = base.turn(nlu, ErTrace(ok=ok), result, rewrite=taught_trace(base.text, applied))
    last = effects[-1] if effects else None
    return HandledTurn(turn, last, NluResult(nlu), None, True, effects=tuple(effects))


__all__ = ["RunsText", "command_turn", "run_routine"]
