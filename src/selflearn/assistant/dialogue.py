"""The reference assistant's questions: what it asks, how long it waits, how it reads the answer.

The assistant asks instead of acting when its rewriter is not sure (a
:class:`~selflearn.core.hooks.Confirm`): "Did you mean *turn on the kitchen light*?". The
question belongs to the device that heard the request and waits :attr:`DialogueConfig.timeout_s`
for an answer. The next utterance on that device is read as an answer when it is one
(:func:`read_reply`): *yes* runs the proposal, *no* asks "What did you want?", *never mind* drops
it; anything else is a new request (barge-in) and the question ends unanswered.

>>> read_reply("yeah please"), read_reply("no that's wrong"), read_reply("never mind")
('yes', 'no', 'never_mind')
>>> read_reply("turn on the kitchen light") is None
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from selflearn.assistant.nlu import NluResult
from selflearn.assistant.resolve import Resolution
from selflearn.core.errors import ConfigError
from selflearn.core.schema import (
    AsrTrace,
    DeviceContext,
    DialogueAct,
    DialogueAnswer,
    DialogueKind,
    DialogueTrace,
    ErTrace,
    NluTrace,
    ResultTrace,
    RewriteTrace,
    Turn,
    WakeTrace,
)

Reply = Literal["yes", "no", "never_mind"]
"""What a short answer to a question means."""

# fmt: off
_YES = frozenset({
    "yes", "yeah", "yep", "yup", "yea", "sure", "correct", "right", "ok", "okay", "affirmative",
    "exactly", "absolutely", "definitely", "please", "aye",
})
_NO = frozenset({"no", "nope", "nah", "wrong", "negative", "incorrect"})
_YES_PHRASES = frozenset({"do it", "go ahead", "that's right", "thats right", "that is right", "please do"})
_NO_PHRASES = frozenset({"not that", "that's wrong", "thats wrong", "that is wrong", "don't", "do not"})
_NEVER_MIND = frozenset({
    "never mind", "nevermind", "cancel", "stop", "forget it", "nothing", "skip it", "no never mind",
    "never mind thanks",
})
# fmt: on
REPLY_SENTENCES: tuple[str, ...] = tuple(
    sorted({*_YES, *_NO, *_YES_PHRASES, *_NO_PHRASES, *_NEVER_MIND, "yes please", "no thanks"})
)
"""Every short answer :func:`read_reply` knows, for a recogniser's dialogue-state language model."""
_WORDS = re.compile(r"[a-z']+")
MAX_REPLY_WORDS = 5
"""Longer utterances are requests, not answers ("no turn on the kitchen light" is a new request)."""


def read_reply(text: str) -> Reply | None:
    """What ``text`` answers to a yes/no question, or ``None`` when it is not such an answer.

    A reply is short (at most :data:`MAX_REPLY_WORDS` words) and starts with a yes or no word or
    phrase ("yes please", "no that's wrong"), or is a cancellation ("never mind", "cancel").
    """
    words = _WORDS.findall(text.lower())
    if not words or len(words) > MAX_REPLY_WORDS:
        return None
    said = " ".join(words)
    if said in _NEVER_MIND or said.startswith(("never mind", "nevermind")):
        return "never_mind"
    first, two = words[0], " ".join(words[:2])
    if first in _NO or two in _NO_PHRASES or said in _NO_PHRASES:
        return "no"
    if first in _YES or two in _YES_PHRASES or said in _YES_PHRASES:
        return "yes"
    return None


@dataclass(frozen=True)
class DialogueConfig:
    """How the assistant asks."""

    timeout_s: float = 8.0
    """Seconds a question waits for its answer; after that it ended unanswered (``timeout``)."""
    confirm_template: str = "Did you mean {proposal}?"
    """The confirmation question; ``{proposal}`` is the sentence the assistant would run."""
    clarify_text: str = "OK. What did you want?"
    """Said after a *no* to a confirmation."""
    cancelled_text: str = "OK, never mind."
    """Said after *never mind*."""

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ConfigError(f"DialogueConfig.timeout_s must be positive, got {self.timeout_s!r}")
        if "{proposal}" not in self.confirm_template:
            raise ConfigError("DialogueConfig.confirm_template must contain {proposal}")


@dataclass(frozen=True)
class Question:
    """A question waiting for its answer on one device."""

    act_id: str
    kind: DialogueKind
    text: str
    """What the assistant said."""
    turn: Turn
    """The turn that asked, as it would be logged if the question ended unanswered (status
    ``question``); :meth:`close` gives the record to log."""
    asked_at: datetime
    expires_at: datetime
    proposal: str | None = None
    """For a confirmation: the sentence to run on a yes."""
    rewrite: RewriteTrace | None = None
    """For a confirmation: the rewrite to log as applied on a yes."""
    raised_by: str = "rewriter"
    nlu: NluResult | None = None
    """What the NLU made of the asking turn's text (for the turn as logged unanswered)."""
    resolution: Resolution | None = None
    wants_definition: bool = False
    """For "What is <words>?": any answer that names something or parses is the definition."""

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
        assert trace is not None
        return self.turn.model_copy(update={"dialogue": replace_trace(trace, answer=answer)})


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


def replace_trace(trace: DialogueTrace, **changes: object) -> DialogueTrace:
    """``trace`` with ``changes`` (records are frozen)."""
    return trace.model_copy(update=changes)


def asking_turn(turn: Turn, act_id: str, kind: DialogueKind, text: str, proposal: str | None) -> Turn:
    """``turn`` turned into the turn that asks ``text``: nothing run, status ``question``."""
    assert turn.result is not None
    result = turn.result.model_copy(
        update={"status": "question", "response_text": text, "error_code": f"ask_{kind}"}
    )
    trace = DialogueTrace(act_id=act_id, role="question", kind=kind, proposal=proposal)
    return turn.model_copy(update={"result": result, "dialogue": trace})


def expiry(asked_at: datetime, config: DialogueConfig) -> datetime:
    return asked_at + timedelta(seconds=config.timeout_s)


__all__ = [
    "MAX_REPLY_WORDS",
    "REPLY_SENTENCES",
    "DialogueConfig",
    "Question",
    "Reply",
    "TurnBase",
    "asking_turn",
    "expiry",
    "read_reply",
]
