"""A conversation with the reference assistant on one device: utterances in, what it said and
what to log out. It keeps the question waiting on the device, so "yes" answers "Did you mean
...?" and anything else is a new request (:class:`Conversation`).

>>> from selflearn.core.home import Home
>>> home = Home.from_dict({"areas": [{"id": "kitchen", "name": "Kitchen"}],
...     "entities": [{"id": "light.kitchen", "name": "Kitchen light", "area": "kitchen"}]})
>>> chat = Conversation(Assistant(AssistantConfig(asr="exact")), HomeState.initial(home), area="Kitchen")
>>> chat.say("turn on the kitchen light").response
'Turned on the light'
>>> [type(record).__name__ for record in chat.say("what time is it").logged]
['Turn']
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from selflearn.assistant.devices import HomeState
from selflearn.assistant.execute import Effect
from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.assistant.turns import Answered, HandledTurn
from selflearn.core.schema import DeviceContext, DialogueAct, RewriteTrace, Turn
from selflearn.dialogue import Question, read_reply

__all__ = ["Assistant", "AssistantConfig", "Conversation", "Exchange", "HomeState"]


@dataclass
class Exchange:
    """What one utterance led to."""

    said: str
    """The utterance."""
    response: str
    """What the assistant answered (a question, a result, an apology)."""
    handled: list[HandledTurn] = field(default_factory=list)
    """The turns that became final with this utterance, oldest first (a turn that asked a
    question becomes final when the question ends)."""
    acts: list[DialogueAct] = field(default_factory=list)
    """The dialogue acts that ended with this utterance."""
    question: Question | None = None
    """The question now waiting for an answer, if the assistant asked one."""

    @property
    def logged(self) -> list[Turn | DialogueAct]:
        """The records to log for this utterance, in order."""
        records: list[Turn | DialogueAct] = [h.turn for h in self.handled]
        return [*records, *self.acts]

    @property
    def effects(self) -> list[Effect]:
        """What the assistant did."""
        return [e for h in self.handled for e in h.actions]

    @property
    def rewrites(self) -> list[RewriteTrace]:
        """The rewrites applied (confirmed ones included)."""
        return [h.turn.rewrite for h in self.handled if h.turn.rewrite is not None]


class Conversation:
    """One device of a home, talking to the reference assistant.

    Every final turn is handed to ``log`` (and to the assistant's rewriter's ``observe``, so
    its personal layer learns as it would in production); dialogue acts go to ``log`` too.
    Typed by default (no recogniser); ``typed=False`` runs the assistant's ASR channel.
    """

    def __init__(
        self,
        assistant: Assistant,
        state: HomeState,
        *,
        household_id: str = "home",
        user_id: str = "me",
        device_id: str = "chat",
        area: str | None = None,
        typed: bool = True,
        log: Callable[[Turn | DialogueAct], None] | None = None,
        seed: int = 0,
    ) -> None:
        self.assistant = assistant
        self.state = state
        self.household_id = household_id
        self.user_id = user_id
        kind = "chat" if typed else "speaker"
        self.device = DeviceContext(device_id=device_id, device_type=kind, area=area)
        self.typed = typed
        self.log = log
        self.rng = random.Random(seed)
        self.pending: Question | None = None
        """The question waiting on this device."""
        self.turns = 0
        self.run = uuid.uuid4().hex[:8]
        """This conversation's own part of its turn and session ids: a restarted chat on the same
        store counts its turns from 1 again, and ids that collide with the stored ones would be
        refused as conflicts -- the turns lost, a "forget ..." among them."""
        self._last: datetime | None = None
        self._session = 0

    def _now(self, now: datetime | None) -> datetime:
        when = now or datetime.now(UTC)
        if self._last is not None and when <= self._last:
            when = self._last + timedelta(milliseconds=1)
        if self._last is None or (when - self._last).total_seconds() > 90:
            self._session += 1
        self._last = when
        return when

    def say(self, text: str, now: datetime | None = None) -> Exchange:
        """Hand one utterance to the assistant (``now``: when it was said; default: the clock)."""
        when = self._now(now)
        exchange = Exchange(text, "")
        pending, self.pending = self.pending, None
        answering: Question | None = None
        asr_trace = None
        if pending is not None:
            if pending.kind == "clarify" and not pending.expired(when) and read_reply(text) != "never_mind":
                answering = pending
            else:
                answered = self.assistant.reply(pending, text, self.state, when, self.rng, typed=self.typed)
                self._ended(answered, exchange)
                if not answered.new_request:
                    exchange.response = answered.response
                    self.pending = exchange.question = answered.follow_up
                    return exchange
                asr_trace = answered.asr_trace
        self.turns += 1
        handled = self.assistant.handle(
            spoken=text,
            state=self.state,
            turn_id=f"{self.household_id}.{self.device.device_id}.{self.run}.t{self.turns}",
            session_id=f"{self.household_id}.{self.device.device_id}.{self.run}.s{self._session}",
            user_id=self.user_id,
            household_id=self.household_id,
            device=self.device,
            timestamp=when,
            rng=self.rng,
            wake_score=None,
            typed=self.typed,
            asr_trace=asr_trace,
            answering=answering,
        )
        if answering is not None:
            self._record(answering.act("answered", when, text, handled.turn.turn_id), exchange)
        assert handled.turn.result is not None
        exchange.response = handled.turn.result.response_text
        if handled.question is not None:
            self.pending = exchange.question = handled.question
        else:
            self._final(handled, exchange)
        return exchange

    def expire(self, now: datetime | None = None) -> Exchange | None:
        """End the waiting question if its answer window has passed by ``now`` (a device calls
        this when idle); returns what that logged, or ``None``."""
        pending = self.pending
        if pending is None or not pending.expired(now or datetime.now(UTC)):
            return None
        self.pending = None
        exchange = Exchange("", "")
        self._ended(self.assistant.expire(pending), exchange)
        return exchange

    def _ended(self, answered: Answered, exchange: Exchange) -> None:
        if answered.handled is not None:
            self._final(answered.handled, exchange)
        self._record(answered.act, exchange)

    def _final(self, handled: HandledTurn, exchange: Exchange) -> None:
        exchange.handled.append(handled)
        if self.log is not None:
            self.log(handled.turn)
        for act in handled.acts:
            self._record(act, exchange)
        observe = getattr(self.assistant.rewriter, "observe", None)
        if observe is not None:
            observe(handled.turn, self.state.home)

    def _record(self, act: DialogueAct, exchange: Exchange) -> None:
        exchange.acts.append(act)
        if self.log is not None:
            self.log(act)
