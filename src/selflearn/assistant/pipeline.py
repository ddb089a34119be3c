"""The reference assistant: wake word -> ASR -> NLU -> entity resolution -> result, each stage
appending its trace to the turn record.

A :class:`~selflearn.core.hooks.RewriteHook` (``Assistant(rewriter=...)``) may sit between ASR
and NLU, as selflearn does in production: it sees the recognised text and may replace it. It
fails open: an exception or an unusable answer leaves the original text in place.

>>> import random
>>> from datetime import UTC, datetime
>>> from selflearn.assistant.devices import HomeState
>>> from selflearn.core.home import Home
>>> from selflearn.core.schema import DeviceContext
>>> home = Home.from_dict({
...     "areas": [{"id": "kitchen", "name": "Kitchen"}],
...     "entities": [{"id": "light.kitchen", "name": "Kitchen light", "area": "kitchen"}],
... })
>>> state = HomeState.initial(home)
>>> handled = Assistant(AssistantConfig(asr="exact")).handle(
...     spoken="turn on the kitchen light", state=state, turn_id="t1", session_id="s1",
...     user_id="u1", household_id=home.home_id, device=DeviceContext(device_id="d1", area="Kitchen"),
...     timestamp=datetime(2026, 1, 1, tzinfo=UTC), rng=random.Random(0))
>>> handled.turn.nlu.intent, handled.turn.result.status, state.states["light.kitchen"]
('HassTurnOn', 'success', 'on')
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from selflearn.assistant.devices import HomeState
from selflearn.assistant.dialogue import (
    DialogueConfig,
    Question,
    TurnBase,
    asking_turn,
    expiry,
    read_reply,
    replace_trace,
)
from selflearn.assistant.execute import NO_MATCH_RESPONSE, Effect, execute
from selflearn.assistant.nlu import STRICT_MATCHERS, HomeAssistantNlu, NluConfig, NluResult
from selflearn.assistant.resolve import Resolution, resolve
from selflearn.core.errors import ConfigError
from selflearn.core.hooks import Confirm, RewriteContext, RewriteHook
from selflearn.core.schema import (
    AsrTrace,
    DeviceContext,
    DialogueAct,
    DialogueAnswer,
    DialogueTrace,
    ErTrace,
    ResultTrace,
    RewriteTrace,
    Turn,
    WakeTrace,
)

if TYPE_CHECKING:
    from selflearn.assistant.taught import Teaching
    from selflearn.assistant.teach import ConceptBook

log = logging.getLogger(__name__)

_warned_rewrite_error = False
"""Whether this process has already logged a rewriter failure (they are logged once, then counted)."""


class Recognizer(Protocol):
    """What the pipeline needs of an ASR channel (see :mod:`selflearn.assistant.asr`)."""

    name: str

    def transcribe(self, text: str, rng: random.Random, condition: Any = None) -> AsrTrace: ...


@dataclass(frozen=True)
class AssistantConfig:
    """How the reference assistant is set up."""

    nlu: NluConfig = "strict+gazetteer"
    """``strict`` (hassil templates only) or ``strict+gazetteer`` (Home Assistant today)."""
    asr: str = "noisy"
    """ASR channel: ``exact``, ``noisy`` (learned from the real one, fast) or ``real``
    (flite speech decoded by pocketsphinx)."""
    feedback_rate: float = 0.04
    """Chance of asking "did I get that right?" after a confident turn."""
    feedback_rate_low_confidence: float = 0.25
    """Chance of asking after a low-confidence turn (fuzzy NLU match or uncertain ASR)."""
    low_confidence: float = 0.75
    """ASR or NLU confidence below which a turn counts as low-confidence."""
    wake_threshold: float = 0.5
    """Wake-word scores below this never open a turn."""
    rewrite_when: Literal["before", "on_failure"] = "before"
    """When a rewriter is consulted: ``before`` the NLU on every request, or ``on_failure``: only
    when the NLU matched nothing or could not resolve a name (like Home Assistant's fallback
    agents), with ``RewriteContext.failed`` set."""
    ask: bool = False
    """Whether the assistant asks when its rewriter wants a rewrite confirmed
    (:class:`~selflearn.core.hooks.Confirm`); without it such a rewrite is not applied."""
    dialogue: DialogueConfig = field(default_factory=DialogueConfig)
    """How it asks (question wording, answer timeout)."""
    teach: bool = False
    """Whether users can teach it concepts (:mod:`selflearn.assistant.taught`); with
    :attr:`ask`, it also asks to be taught at teachable moments."""
    custom_sentences: str | None = None
    """A Home Assistant custom sentences file or folder (``custom_sentences/en``) the NLU loads
    beside Home Assistant's own intents, as Home Assistant does (e.g. ``selflearn label
    export``'s); a match by one of them is logged with matcher ``custom_sentences``."""

    def __post_init__(self) -> None:
        for name in ("feedback_rate", "feedback_rate_low_confidence", "low_confidence", "wake_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"AssistantConfig.{name} must be between 0 and 1, got {value!r}")
        if self.rewrite_when not in ("before", "on_failure"):
            raise ConfigError(
                f"AssistantConfig.rewrite_when must be before or on_failure, not {self.rewrite_when!r}"
            )


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
    ``question``) and the record to log is the one :meth:`Assistant.reply` or
    :meth:`Assistant.expire` returns when the question ends."""
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
    caller hands it to :meth:`Assistant.handle` with ``asr_trace``) or the question had expired."""
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
        the caller hands it to :meth:`Assistant.handle` as a request of its own."""
        return self.act.answer in ("barge_in", "timeout")


class Assistant:
    """Home Assistant's voice pipeline over a simulated home, with every stage traced.

    With a ``rewriter``, each recognised text is offered to it before the NLU (see
    :meth:`rewrite`); ``rewrite_errors`` counts the calls that failed and were ignored.
    """

    def __init__(
        self,
        config: AssistantConfig | None = None,
        asr: Recognizer | None = None,
        nlu: HomeAssistantNlu | None = None,
        rewriter: RewriteHook | None = None,
        teaching: Teaching | None = None,
    ) -> None:
        self.config = config or AssistantConfig()
        self.nlu = nlu or HomeAssistantNlu(self.config.nlu, custom_sentences=self.config.custom_sentences)
        if asr is None:
            from selflearn.assistant.asr import make_asr

            asr = make_asr(self.config.asr)
        self.asr = asr
        self.rewriter = rewriter
        if teaching is None and self.config.teach:
            from selflearn.assistant.taught import Teaching

            teaching = Teaching()
        self.teaching = teaching
        """Concepts users taught and the teaching dialogue (:mod:`selflearn.assistant.taught`);
        ``None``: the assistant cannot be taught."""
        self.rewrite_errors = 0
        """Rewriter calls that raised or returned something unusable (the text was kept)."""
        self._reply_asr: Recognizer | None = None

    @property
    def concepts(self) -> ConceptBook | None:
        """What users taught (``None`` when the assistant cannot be taught)."""
        return self.teaching.book if self.teaching is not None else None

    @property
    def reply_asr(self) -> Recognizer:
        """The recogniser in the dialogue state, which expects answers ("yes", "no", "never
        mind") while a question waits (:func:`~selflearn.assistant.asr.replies.reply_recognizer`)."""
        if self._reply_asr is None:
            from selflearn.assistant.asr.replies import reply_recognizer

            self._reply_asr = reply_recognizer(self.asr)
        return self._reply_asr

    def rewrite(self, text: str, context: RewriteContext) -> RewriteTrace | Confirm | None:
        """The rewrite to apply to ``text``, a :class:`~selflearn.core.hooks.Confirm` to ask about
        first (only when :attr:`AssistantConfig.ask`; otherwise such a rewrite is not applied), or
        ``None`` (no rewriter, no rewrite, or a failure).

        Fails open: an exception from the rewriter, an answer that is not a
        :class:`~selflearn.core.schema.RewriteTrace`, or a rewritten text that is empty or the same
        as ``text`` means no rewrite. Exceptions and non-trace answers count in
        :attr:`rewrite_errors` and the first of them in a process is logged as a warning. The
        returned trace's ``original_text`` is always ``text``.
        """
        if self.rewriter is None:
            return None
        try:
            answer = self.rewriter(text, context)
            confirm = isinstance(answer, Confirm)
            trace = answer.trace if isinstance(answer, Confirm) else answer
            if trace is not None and not isinstance(trace, RewriteTrace):
                kind = type(trace).__name__
                raise TypeError(f"rewriter returned {kind}, not RewriteTrace, Confirm or None")
        except Exception as exc:
            self.rewrite_errors += 1
            global _warned_rewrite_error
            if not _warned_rewrite_error:
                _warned_rewrite_error = True
                log.warning(
                    "rewriter %s failed on %r, keeping the original text (%s: %s); "
                    "further failures are only counted",
                    type(self.rewriter).__qualname__,
                    text,
                    type(exc).__name__,
                    exc,
                )
            return None
        if trace is None:
            return None
        rewritten = " ".join(trace.rewritten_text.split())
        if not rewritten or rewritten == " ".join(text.split()):
            return None
        if trace.original_text != text:
            trace = trace.model_copy(update={"original_text": text})
        if confirm:
            return Confirm(trace, answer.why) if self.config.ask and isinstance(answer, Confirm) else None
        return trace

    def understand(
        self,
        text: str,
        state: HomeState,
        context_area: str | None,
        explain_failures: bool = True,
    ) -> tuple[NluResult, Resolution | None]:
        """NLU and entity resolution of ``text`` (no side effects).

        ``explain_failures=False`` skips the NLU's unmatched-entity pass, which only words the
        error of a failed match; what the assistant does (the effect) is the same.
        """
        nlu = self.nlu.recognize(text, state.home, context_area, explain_failures=explain_failures)
        if not nlu.trace.matched and not nlu.unmatched:
            return nlu, None
        resolution = resolve(
            nlu.trace.intent,
            dict(nlu.trace.slots),
            state.home,
            context_area,
            preset_ids=nlu.target_ids,
            unmatched=nlu.unmatched,
        )
        return nlu, resolution

    def run_text(
        self,
        text: str,
        state: HomeState,
        now: datetime,
        context_area: str | None,
        explain_failures: bool = True,
    ) -> tuple[NluResult, Resolution | None, ResultTrace, Effect | None]:
        """NLU -> ER -> result for ``text``; mutates ``state``."""
        nlu, resolution = self.understand(text, state, context_area, explain_failures)
        if resolution is None:
            return (
                nlu,
                None,
                ResultTrace(status="no_match", response_text=NO_MATCH_RESPONSE, error_code="no_intent_match"),
                None,
            )
        outcome = execute(nlu.trace.intent or "", dict(nlu.trace.slots), resolution, state, now, context_area)
        return nlu, resolution, outcome.trace, outcome.effect

    def handle(
        self,
        *,
        spoken: str,
        state: HomeState,
        turn_id: str,
        session_id: str,
        user_id: str,
        household_id: str,
        device: DeviceContext,
        timestamp: datetime,
        rng: random.Random,
        wake_score: float | None = 0.95,
        condition: Any = None,
        typed: bool = False,
        asr_trace: AsrTrace | None = None,
        answering: Question | None = None,
    ) -> HandledTurn:
        """Run the whole pipeline on one utterance and return the logged turn.

        With a rewriter that rewrites the text, the NLU, entity resolution and result run on the
        rewritten text, ``turn.text`` is that text and ``turn.rewrite`` its provenance; the
        original text is also run on a copy of ``state`` (taken before the turn) to fill
        :attr:`HandledTurn.effect_without_rewrite` for simulation scoring. The rewriter uses no
        randomness from ``rng``, so a turn it leaves alone is exactly the turn without it.

        When the rewriter wants a rewrite confirmed and :attr:`AssistantConfig.ask` is on, nothing
        is run: the turn asks "Did you mean ...?" (:attr:`HandledTurn.question`). ``asr_trace``
        passes an utterance already recognised (a new request spoken while a question waited);
        ``answering`` marks the turn as the reply to a question such as "What did you want?".
        """
        wake = None if typed or wake_score is None else WakeTrace(score=wake_score)
        if asr_trace is None and not typed:
            asr_trace = self.asr.transcribe(spoken, rng, condition)
        text = spoken if asr_trace is None else asr_trace.text
        context_area = state.home.area_id_of(device.area)
        base = TurnBase(turn_id, session_id, user_id, household_id, timestamp, device, wake, asr_trace, text)
        rewrite: RewriteTrace | Confirm | None = None
        if self.teaching is not None:
            from selflearn.assistant.taught import before_nlu

            early = before_nlu(self, self.teaching, base, state, context_area)
            if isinstance(early, HandledTurn):
                return early
            rewrite = early
        if rewrite is None and self.rewriter is not None:
            failed: bool | None = None
            if self.config.rewrite_when == "on_failure":
                _nlu_first, resolution_first = self.understand(
                    text, state, context_area, explain_failures=False
                )
                failed = resolution_first is None or not resolution_first.trace.ok
            if failed is not False:
                rewrite = self.rewrite(
                    text,
                    RewriteContext(
                        household_id=household_id,
                        user_id=user_id,
                        home=state.home,
                        area=device.area,
                        timestamp=timestamp,
                        device=device,
                        failed=failed,
                        nbest=tuple(h.text for h in asr_trace.nbest[1:]) if asr_trace is not None else (),
                    ),
                )
        if isinstance(rewrite, Confirm):
            return self._ask(rewrite, state, context_area, rng, base)
        effect_without: Effect | None = None
        if rewrite is not None:
            before = state.copy()
            text = rewrite.rewritten_text
            nlu, resolution, result, effect = self.run_text(text, state, timestamp, context_area)
            *_, effect_without = self.run_text(
                rewrite.original_text, before, timestamp, context_area, explain_failures=False
            )
        else:
            nlu, resolution, result, effect = self.run_text(text, state, timestamp, context_area)
        latency = int(rng.gauss(450 if nlu.trace.matcher in STRICT_MATCHERS else 650, 80))
        result = result.model_copy(update={"latency_ms": max(latency, 50)})
        low = (nlu.trace.matched and nlu.trace.confidence < self.config.low_confidence) or (
            asr_trace is not None and asr_trace.confidence < self.config.low_confidence
        )
        ask_rate = self.config.feedback_rate_low_confidence if low else self.config.feedback_rate
        ask = result.status == "success" and rng.random() < ask_rate
        turn = base.turn(
            nlu.trace,
            resolution.trace if resolution else ErTrace(ok=False) if nlu.trace.matched else None,
            result,
            text=text,
            feedback_requested=ask,
            rewrite=rewrite,
            dialogue=None
            if answering is None
            else DialogueTrace(act_id=answering.act_id, role="answer", kind=answering.kind),
        )
        handled = HandledTurn(turn, effect, nlu, resolution, rewrite is not None, effect_without)
        if self.teaching is not None and result.status != "success" and answering is None:
            from selflearn.assistant.taught import teachable_moment

            return teachable_moment(self, self.teaching, handled, timestamp)
        return handled

    def _ask(
        self, confirm: Confirm, state: HomeState, context_area: str | None, rng: random.Random, base: TurnBase
    ) -> HandledTurn:
        """The turn that asks "Did you mean <proposal>?" instead of acting (nothing is run)."""
        nlu, resolution = self.understand(base.text, state, context_area)
        proposal = confirm.trace.rewritten_text
        act_id = f"{base.turn_id}.q"
        said = self.config.dialogue.confirm_template.format(proposal=proposal)
        latency = max(int(rng.gauss(650, 80)), 50)
        er = resolution.trace if resolution else ErTrace(ok=False) if nlu.trace.matched else None
        turn = base.turn(nlu.trace, er, ResultTrace(status="no_match", latency_ms=latency))
        turn = asking_turn(turn, act_id, "confirm", said, proposal)
        question = Question(
            act_id=act_id,
            kind="confirm",
            text=said,
            turn=turn,
            asked_at=base.timestamp,
            expires_at=expiry(base.timestamp, self.config.dialogue),
            proposal=proposal,
            rewrite=confirm.trace,
            raised_by="rewriter",
            nlu=nlu,
            resolution=resolution,
        )
        return HandledTurn(turn, None, nlu, resolution, question=question)

    def reply(
        self,
        question: Question,
        spoken: str,
        state: HomeState,
        timestamp: datetime,
        rng: random.Random,
        condition: Any = None,
        typed: bool = False,
    ) -> Answered:
        """Read ``spoken`` (said on the question's device at ``timestamp``) as the answer to
        ``question``: *yes* runs the proposal as the asking turn (logged with the rewrite applied),
        *no* ends it and asks "What did you want?" (:attr:`Answered.follow_up`), *never mind*
        drops it; anything else ends it as a barge-in and is a new request for the caller. A
        question past its answer window ends as a ``timeout`` first (then the utterance is a new
        request, not recognised here)."""
        if question.expired(timestamp):
            return self.expire(question)
        heard = None if typed else self.reply_asr.transcribe(spoken, rng, condition)
        text = spoken if heard is None else heard.text
        if question.kind == "teach" and self.teaching is not None:
            from selflearn.assistant.taught import teach_reply

            return teach_reply(self, self.teaching, question, text, heard, state, timestamp)
        said = read_reply(text)
        dialogue = self.config.dialogue
        if said is None:
            act = question.act("barge_in", timestamp, text)
            return Answered(None, self.unanswered(question, "barge_in"), act, "", heard)
        if said == "never_mind":
            act = question.act("never_mind", timestamp, text)
            cancelled = self.unanswered(question, "never_mind")
            return Answered(said, cancelled, act, dialogue.cancelled_text, heard)
        if said == "no" or question.proposal is None:
            answer: DialogueAnswer = "no" if said == "no" else "barge_in"
            act = question.act(answer, timestamp, text)
            follow = None
            if question.kind == "confirm":
                follow = Question(
                    act_id=f"{question.act_id}.c",
                    kind="clarify",
                    text=dialogue.clarify_text,
                    turn=question.turn,
                    asked_at=timestamp,
                    expires_at=expiry(timestamp, dialogue),
                    raised_by=question.raised_by,
                )
            handled = self.unanswered(question, answer)
            return Answered(said, handled, act, dialogue.clarify_text if follow else "", heard, follow)
        # yes: run the proposal as the asking turn
        assert question.rewrite is not None
        handled = self.run_asked(question, question.proposal, question.rewrite, "yes", state, timestamp)
        assert handled.turn.result is not None
        response = handled.turn.result.response_text
        return Answered("yes", handled, question.act("yes", timestamp, text), response, heard)

    def run_asked(
        self,
        question: Question,
        sentence: str,
        rewrite: RewriteTrace,
        answer: DialogueAnswer,
        state: HomeState,
        timestamp: datetime,
    ) -> HandledTurn:
        """The turn that asked ``question``, run now with ``sentence`` in place of its text (the
        confirmed proposal, or the request with what was just taught): logged with ``rewrite``
        applied and the question's ``answer``; the original text also runs on a copy of the state
        taken before, for simulation scoring (:attr:`HandledTurn.effect_without_rewrite`)."""
        asked = question.turn
        area = state.home.area_id_of(asked.device.area)
        before = state.copy()
        nlu, resolution, result, effect = self.run_text(sentence, state, timestamp, area)
        *_, effect_without = self.run_text(asked.text, before, timestamp, area, explain_failures=False)
        latency = asked.result.latency_ms if asked.result is not None else 0
        trace = asked.dialogue
        assert trace is not None
        turn = asked.model_copy(
            update={
                "text": sentence,
                "nlu": nlu.trace,
                "er": resolution.trace if resolution else ErTrace(ok=False) if nlu.trace.matched else None,
                "result": result.model_copy(update={"latency_ms": latency}),
                "rewrite": rewrite,
                "dialogue": replace_trace(trace, answer=answer),
            }
        )
        return HandledTurn(turn, effect, nlu, resolution, True, effect_without)

    def expire(self, question: Question) -> Answered:
        """End ``question`` unanswered (``timeout``) at the end of its answer window."""
        act = question.act("timeout", question.expires_at)
        return Answered(None, self.unanswered(question, "timeout"), act, "")

    def unanswered(self, question: Question, answer: DialogueAnswer) -> HandledTurn | None:
        """The asking turn as logged when nothing was run (``None`` for a follow-up question)."""
        if question.kind == "clarify":
            return None
        turn = question.unanswered_turn(answer)
        assert question.nlu is not None
        return HandledTurn(turn, None, question.nlu, question.resolution)
