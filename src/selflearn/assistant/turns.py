"""What one utterance became in the reference assistant: the logged turn and what the pipeline
knows beside it (:class:`HandledTurn`), how an utterance ended a waiting question
(:class:`Answered`), and the fields every turn of one utterance shares (:class:`TurnBase`).

Kept apart from :mod:`selflearn.assistant.pipeline` so that the pieces that build turns
(:mod:`selflearn.assistant.taught`) and those that read them need not import the assistant.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from selflearn.assistant.execute import Effect
from selflearn.assistant.nlu import NluResult
from selflearn.assistant.resolve import Resolution
from selflearn.core.schema import (
    AsrTrace,
    DeviceContext,
    DialogueAct,
    ErTrace,
    NluTrace,
    ResultTrace,
    Turn,
    WakeTrace,
)
from selflearn.dialogue import Question


@dataclass(frozen=True)
class HandledTurn:
    """A turn as logged, plus what the pipeline knows internally (for simulation scoring)."""

    turn: Turn
    """The log record."""
    effect: Effect | None
    """What the assistant did, if anything."""
    nlu: NluResult
    """NLU output."""
    resolution: Resolution | None
    """Entity-resolution output (``None`` when the NLU found nothing)."""
    rewritten: bool = False
    """Whether a rewrite was applied (``turn.rewrite`` then holds its provenance)."""
    effect_without_rewrite: Effect | None = None
    """When a rewrite was applied: what the assistant would have done with the original text
    (run on a copy of the home state taken before the turn), for simulation scoring only -- a
    deployed assistant cannot know it. ``None`` when no rewrite was applied, or when the
    original text would have done nothing."""
    question: Question | None = None
    """The question this turn asked instead of acting: ``turn`` is then provisional (status
    ``question``) and the record to log is the one
    :meth:`~selflearn.assistant.pipeline.Assistant.reply` or
    :meth:`~selflearn.assistant.pipeline.Assistant.expire` returns when the question ends."""
    effects: tuple[Effect, ...] = ()
    """Everything a routine did, in order (``effect`` is then the last of them)."""
    acts: tuple[DialogueAct, ...] = ()
    """Dialogue acts that began and ended in this turn (a definition said to the assistant)."""

    @property
    def actions(self) -> tuple[Effect, ...]:
        """Everything the assistant did in this turn, in order (a routine's steps, or the one
        effect, or nothing)."""
        return self.effects or ((self.effect,) if self.effect is not None else ())


@dataclass(frozen=True)
class Answered:
    """How an utterance spoken while a question waited ended that question."""

    reply: Literal["yes", "no", "never_mind"] | None
    """What the utterance answered; ``None`` when it was not an answer (a new request: the
    caller hands it to :meth:`~selflearn.assistant.pipeline.Assistant.handle` with
    ``asr_trace``) or the question had expired."""
    handled: HandledTurn | None
    """The asking turn as it is logged now that the question ended (``None`` for a follow-up
    question that had no turn of its own, i.e. "What did you want?")."""
    act: DialogueAct
    """The record of the question."""
    response: str
    """What the assistant says to the utterance ("" when it is a new request)."""
    asr_trace: AsrTrace | None = None
    """The recognised utterance (to pass on when it is a new request)."""
    follow_up: Question | None = None
    """A new question waiting on the device: "What did you want?" after a no."""

    @property
    def new_request(self) -> bool:
        """Whether the utterance was not an answer (a barge-in, or the question had expired):
        the caller hands it to :meth:`~selflearn.assistant.pipeline.Assistant.handle` as a
        request of its own."""
        return self.act.answer in ("barge_in", "timeout")


@dataclass(frozen=True)
class TurnBase:
    """The fields every turn of one utterance shares, whatever the assistant did with it."""

    turn_id: str
    session_id: str
    user_id: str
    household_id: str
    timestamp: datetime
    device: DeviceContext
    wake: WakeTrace | None
    asr: AsrTrace | None
    text: str

    def turn(
        self, nlu: NluTrace, er: ErTrace | None, result: ResultTrace, text: str | None = None, **extra: Any
    ) -> Turn:
        """The turn of this utterance with these traces (``text``: what the NLU got, if not
        :attr:`text`)."""
        return Turn(
            turn_id=self.turn_id,
            session_id=self.session_id,
            user_id=self.user_id,
            household_id=self.household_id,
            timestamp=self.timestamp,
            device=self.device,
            wake=self.wake,
            asr=self.asr,
            text=self.text if text is None else text,
            nlu=nlu,
            er=er,
            result=result,
            **extra,
        )

    @classmethod
    def of(cls, turn: Turn) -> TurnBase:
        """The shared fields of ``turn``."""
        return cls(
            turn.turn_id,
            turn.session_id,
            turn.user_id,
            turn.household_id,
            turn.timestamp,
            turn.device,
            turn.wake,
            turn.asr,
            turn.text,
        )


def replace_handled(handled: HandledTurn, **changes: Any) -> HandledTurn:
    """``handled`` with ``changes`` (it is frozen)."""
    return replace(handled, **changes)


__all__ = ["Answered", "HandledTurn", "TurnBase", "replace_handled"]
