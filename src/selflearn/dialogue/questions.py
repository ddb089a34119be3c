"""A question waiting for its answer, and the records it leaves.

The assistant asks instead of acting when it is not sure (a
:class:`~selflearn.core.hooks.Confirm` from the rewriter: "Did you mean *turn on the kitchen
light*?") or when it could be taught ("I don't know what *thingy* is. Can you teach me?"). The
question belongs to the device or conversation that heard the request and waits
:attr:`~selflearn.dialogue.replies.DialogueConfig.timeout_s` for an answer. The turn that asked
is logged once the question has ended, so its record tells the whole story
(:class:`~selflearn.core.schema.DialogueTrace`); every question is also a
:class:`~selflearn.core.schema.DialogueAct`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from selflearn.core.schema import (
    DialogueAct,
    DialogueAnswer,
    DialogueKind,
    DialogueTrace,
    RewriteTrace,
    Turn,
)
from selflearn.dialogue.replies import DialogueConfig


@dataclass(frozen=True)
class Question:
    """A question waiting for its answer on one device or conversation."""

    act_id: str
    kind: DialogueKind
    text: str
    """What the assistant said."""
    turn: Turn
    """The turn that asked, as it would be logged if the question ended unanswered (status
    ``question``); :meth:`unanswered_turn` gives the record to log."""
    asked_at: datetime
    expires_at: datetime
    proposal: str | None = None
    """For a confirmation: the sentence to run on a yes. For a teaching question: the words."""
    rewrite: RewriteTrace | None = None
    """For a confirmation: the rewrite to log as applied on a yes."""
    raised_by: str = "rewriter"
    wants_definition: bool = False
    """For "What is <words>?": any answer that names something or parses is the definition."""
    applied: Any = None
    """For a confirmation of taught concepts (a routine that unlocks a door is asked about
    first): the :class:`~selflearn.dialogue.concepts.Applied` to run on a yes."""
    payload: Any = None
    """What the asking assistant keeps with its question (the reference assistant: its NLU
    result and entity resolution of the asking turn); the dialogue never reads it."""

    @property
    def device_key(self) -> tuple[str, str]:
        """(household, device) the question waits on."""
        return self.turn.household_id, self.turn.device.device_id

    def expired(self, now: datetime) -> bool:
        """Whether the answer window closed before ``now``."""
        return now > self.expires_at

    def act(
        self,
        answer: DialogueAnswer,
        when: datetime,
        answer_text: str | None = None,
        answer_turn_id: str | None = None,
        taught: str | None = None,
    ) -> DialogueAct:
        """The record of this question ended with ``answer``."""
        return DialogueAct(
            act_id=self.act_id,
            turn_id=self.turn.turn_id,
            user_id=self.turn.user_id,
            household_id=self.turn.household_id,
            timestamp=when,
            kind=self.kind,
            question=self.text,
            proposal=self.proposal,
            raised_by=self.raised_by,
            answer=answer,
            answer_turn_id=answer_turn_id,
            answer_text=answer_text,
            taught=taught,
        )

    def unanswered_turn(self, answer: DialogueAnswer) -> Turn:
        """The asking turn as logged when nothing was run: status ``question``, how it ended."""
        trace = self.turn.dialogue
        if trace is None:  # pragma: no cover - every asking turn has its trace (asking_turn)
            raise ValueError(f"question {self.act_id}: its turn has no dialogue trace")
        return self.turn.model_copy(update={"dialogue": replace_trace(trace, answer=answer)})

    def answered_trace(self, answer: DialogueAnswer) -> DialogueTrace:
        """The asking turn's dialogue trace once the question ended with ``answer``."""
        trace = self.turn.dialogue
        if trace is None:  # pragma: no cover - see unanswered_turn
            raise ValueError(f"question {self.act_id}: its turn has no dialogue trace")
        return replace_trace(trace, answer=answer)


def replace_trace(trace: DialogueTrace, **changes: object) -> DialogueTrace:
    """``trace`` with ``changes`` (records are frozen)."""
    return trace.model_copy(update=changes)


def asking_turn(turn: Turn, act_id: str, kind: DialogueKind, text: str, proposal: str | None) -> Turn:
    """``turn`` turned into the turn that asks ``text``: nothing run, status ``question``."""
    if turn.result is None:
        raise ValueError(f"turn {turn.turn_id} has no result to turn into a question")
    result = turn.result.model_copy(
        update={"status": "question", "response_text": text, "error_code": f"ask_{kind}"}
    )
    trace = DialogueTrace(act_id=act_id, role="question", kind=kind, proposal=proposal)
    return turn.model_copy(update={"result": result, "dialogue": trace})


def expiry(asked_at: datetime, config: DialogueConfig) -> datetime:
    """When a question asked at ``asked_at`` stops waiting."""
    return asked_at + timedelta(seconds=config.timeout_s)


__all__ = ["Question", "asking_turn", "expiry", "replace_trace"]
