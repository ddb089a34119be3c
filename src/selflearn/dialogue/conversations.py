"""The questions waiting in many conversations at once, for a service that talks to many homes.

The reference assistant keeps its waiting question on the device (:class:`~selflearn.assistant.
conversation.Conversation`). A service -- ``selflearn serve``'s ``POST /v1/dialogue``, the Wyoming
service -- hears utterances from many households and conversations, and its clients (Home
Assistant's integration, a satellite) only carry out what it says. :class:`Conversations` keeps
the question waiting per (household, conversation), hands each utterance to the
:class:`~selflearn.dialogue.Dialogue` as an answer or as a request, and says what the client logs:

* an utterance that is a request is logged by the client as its turn (``log_turn_id`` is its own
  id), with the dialogue trace given (the answer to a teaching command, or to "What did you
  want?");
* an utterance that asks a question is *not* logged by the client: the asking turn is logged once
  the question has ended, so its record tells the whole story -- by the client when the answer
  runs something (``log_turn_id`` is then the asking turn's id, with its trace: a *yes*, a
  lesson), by the service otherwise (:attr:`Exchange.records`: *no*, *never mind*, silence, a new
  request);
* an answer that runs nothing ("no", "never mind") is not a turn at all: it is the question's
  :class:`~selflearn.core.schema.DialogueAct`, which the service logs.

What was taught lives in the :class:`~selflearn.dialogue.ConceptBook` (written through to the
store), what a household said no to in the rewriter's personal layer (learned from the logged
asking turns) and in the :class:`~selflearn.dialogue.TeachBudget` (rebuilt from the store's
dialogue acts by :meth:`Conversations.restore`), so a restart forgets only the questions that
were waiting.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from selflearn.core.schema import (
    DeviceContext,
    DialogueAct,
    DialogueTrace,
    NluTrace,
    ResultTrace,
    Turn,
)
from selflearn.dialogue.concepts import ConceptBook, ConceptWrites
from selflearn.dialogue.engine import Dialogue, Heard, Port, Step
from selflearn.dialogue.questions import Question

if TYPE_CHECKING:
    from selflearn.core.store import Store

MAX_OPEN = 10_000
"""Questions kept waiting at once (the oldest is dropped, unanswered, past that)."""

Record = Turn | DialogueAct


@dataclass(frozen=True)
class Exchange:
    """What one utterance led to, for the client and the log."""

    step: Step
    """What to do (:class:`~selflearn.dialogue.Step`)."""
    question: Question | None = None
    """The question now waiting in this conversation, if the step asks one."""
    ended: DialogueAct | None = None
    """The question this utterance ended, and how."""
    log_turn_id: str | None = None
    """The id under which the client logs its turn of what it does for this utterance (its own
    id; the asking turn's when an answer runs the proposal); ``None``: it logs no turn for it."""
    dialogue: DialogueTrace | None = None
    """The dialogue trace that turn carries, if any."""
    records: tuple[Record, ...] = ()
    """Records the service logs itself: dialogue acts, and asking turns whose question ended
    without running anything."""
    asked: Turn | None = None
    """When an answer runs the question's proposal or lesson: the asking turn (the client logs
    its run under this turn's id and time)."""


@dataclass
class Conversations:
    """Questions waiting per (household, conversation), around one :class:`Dialogue`.

    Thread-safe: one lock guards the waiting questions (the dialogue's decisions themselves run
    under it too, so a *yes* and a timeout never both end one question)."""

    dialogue: Dialogue
    max_open: int = MAX_OPEN
    questions: OrderedDict[tuple[str, str], Question] = field(default_factory=OrderedDict)
    """The question waiting per (household, conversation), oldest first."""
    lock: threading.RLock = field(default_factory=threading.RLock)

    def hear(
        self,
        heard: Heard,
        conversation: str,
        port: Port,
        failed: bool | None = None,
        turn: Turn | None = None,
        unplaced: Callable[[], str | None] | None = None,
    ) -> Exchange:
        """Handle one utterance of ``conversation``: the answer to its waiting question, or a
        request. ``failed``: the assistant already ran the text and failed (``True``) or not
        (``False``); ``None``: not run yet. ``turn``: the client's record of this utterance as it
        stands (the asking turn, should it ask; default: one made from ``heard``). ``unplaced``:
        the words of a failed request the home lacks (for a teachable moment), computed only if
        needed."""
        with self.lock:
            return self._hear(heard, conversation, port, failed, turn, unplaced)

    def _hear(
        self,
        heard: Heard,
        conversation: str,
        port: Port,
        failed: bool | None,
        turn: Turn | None,
        unplaced: Callable[[], str | None] | None,
    ) -> Exchange:
        key = (heard.household_id, conversation)
        records: list[Record] = []
        waiting = self.questions.pop(key, None)
        answering: Question | None = None
        ended: DialogueAct | None = None
        if waiting is not None:
            step = self.dialogue.answer(waiting, heard, port)
            ended = step.act
            if step.act is not None:
                records.append(step.act)
            answer = step.answer or "barge_in"
            if step.action == "run":  # a yes, a lesson: the asking turn runs now, the client logs it
                asked = waiting.answered_trace(answer)
                return Exchange(step, None, ended, waiting.turn.turn_id, asked, tuple(records), waiting.turn)
            if not step.continues and waiting.kind != "clarify":
                records.append(waiting.unanswered_turn(answer))
            if step.follow_up is not None:
                self._wait(key, step.follow_up, records)
            if not step.new_request:
                return Exchange(step, step.follow_up, ended, None, None, tuple(records))
            if step.answer == "answered":
                answering = waiting
        step = self.dialogue.consider(heard, port, failed)
        quiet = step.action == "pass" and answering is None and unplaced is not None
        if (
            quiet
            and unplaced is not None
            and (failed or (failed is None and port.works(heard.text) == "fails"))
        ):
            moment = self.dialogue.after_failure(heard, unplaced())
            if moment.action == "ask":
                step = moment
        if step.action == "ask":
            asking = turn if turn is not None else request_turn(heard, conversation)
            question = self.dialogue.question(step, asking)
            self._wait(key, question, records)
            return Exchange(step, question, ended, None, None, tuple(records))
        trace: DialogueTrace | None = None
        if step.said is not None:
            records.append(step.said.act)
            trace = DialogueTrace(act_id=step.said.act.act_id, role="answer", kind=step.said.kind)
        elif answering is not None:
            trace = DialogueTrace(act_id=answering.act_id, role="answer", kind=answering.kind)
        return Exchange(step, None, ended, heard.turn_id, trace, tuple(records))

    def _wait(self, key: tuple[str, str], question: Question, records: list[Record]) -> None:
        self.questions[key] = question
        self.questions.move_to_end(key)
        while len(self.questions) > self.max_open:
            _, dropped = self.questions.popitem(last=False)
            records.extend(self._ended(dropped))

    def _ended(self, question: Question) -> list[Record]:
        act = self.dialogue.expire(question)
        if question.kind == "clarify":
            return [act]
        return [act, question.unanswered_turn("timeout")]

    def expire(self, now: datetime) -> list[Record]:
        """End every question whose answer window closed before ``now`` (unanswered:
        ``timeout``); returns the records to log."""
        with self.lock:
            due = [key for key, question in self.questions.items() if question.expired(now)]
            records: list[Record] = []
            for key in due:
                records.extend(self._ended(self.questions.pop(key)))
            return records

    def close(self) -> list[Record]:
        """End every waiting question (the service is stopping); returns the records to log."""
        with self.lock:
            records: list[Record] = []
            while self.questions:
                _, question = self.questions.popitem(last=False)
                records.extend(self._ended(question))
            return records

    def waiting(self, household_id: str, conversation: str) -> Question | None:
        """The question waiting in ``conversation``, if any."""
        with self.lock:
            return self.questions.get((household_id, conversation))

    def forget(self, household_id: str) -> int:
        """Drop everything about a household: its waiting questions, what it taught, its
        refusals (the right to be forgotten; the store's rows are the store's to delete)."""
        with self.lock:
            keys = [key for key in self.questions if key[0] == household_id]
            for key in keys:
                del self.questions[key]
            teaching = self.dialogue.teaching
            if teaching is not None:
                teaching.book.forget_household(household_id)
                teaching.budget.forget_household(household_id)
            return len(keys)

    def restore(self, store: Store, writes: ConceptWrites | None = None) -> dict[str, int]:
        """Take what was taught and declined from ``store`` (the concepts, written through to it
        -- or to ``writes`` -- from now on; the refusals among its dialogue acts); returns the counts."""
        teaching = self.dialogue.teaching
        if teaching is None:
            return {"concepts": 0, "declined": 0}
        with self.lock:
            teaching.book = ConceptBook.from_store(store, writes)
            acts = [DialogueAct.model_validate(row) for row in store.dialogue_acts()]
            declined = teaching.budget.restore(acts)
        concepts = sum(len(found) for found in teaching.book.by_household.values())
        return {"concepts": concepts, "declined": declined}


def request_turn(heard: Heard, conversation: str) -> Turn:
    """A turn record for ``heard`` when the client sent none: the request, not understood."""
    device = heard.device or DeviceContext(device_id=conversation, area=heard.area)
    return Turn(
        turn_id=heard.turn_id,
        session_id=conversation,
        user_id=heard.user_id,
        household_id=heard.household_id,
        timestamp=heard.timestamp,
        device=device,
        text=heard.text,
        nlu=NluTrace(matched=False),
        result=ResultTrace(status="no_match"),
    )


__all__ = ["MAX_OPEN", "Conversations", "Exchange", "request_turn"]
