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

import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from selflearn.assistant.devices import HomeState
from selflearn.assistant.execute import NO_MATCH_RESPONSE, Effect, execute
from selflearn.assistant.nlu import STRICT_MATCHERS, HomeAssistantNlu, NluConfig, NluResult
from selflearn.assistant.port import AssistantPort, unplaced_words
from selflearn.assistant.resolve import Resolution, resolve
from selflearn.assistant.taught import command_turn, run_routine
from selflearn.assistant.turns import Answered, HandledTurn, TurnBase, replace_handled
from selflearn.core.errors import ConfigError
from selflearn.core.hooks import Confirm, RewriteContext, RewriteHook
from selflearn.core.schema import (
    AsrTrace,
    DeviceContext,
    DialogueAnswer,
    DialogueTrace,
    ErTrace,
    ResultTrace,
    RewriteTrace,
    WakeTrace,
)
from selflearn.dialogue import (
    ConceptBook,
    Dialogue,
    DialogueConfig,
    Heard,
    Question,
    Step,
    Teaching,
)


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
    """Whether users can teach it concepts (:mod:`selflearn.dialogue`); with :attr:`ask`, it
    also asks to be taught at teachable moments."""
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


class Assistant:
    """Home Assistant's voice pipeline over a simulated home, with every stage traced.

    With a ``rewriter``, each recognised text is offered to it before the NLU (see
    :meth:`rewrite`); ``rewrite_errors`` counts the calls that failed and were ignored. What
    happens around the NLU -- teaching commands, taught concepts, the rewrite, the questions and
    their answers -- is the :attr:`dialogue`'s decision (:mod:`selflearn.dialogue`); the assistant
    carries it out and traces every stage.
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
        if teaching is None and self.config.teach:
            teaching = Teaching()
        self.dialogue = Dialogue(
            rewriter,
            self.config.dialogue,
            ask=self.config.ask,
            teaching=teaching,
            rewrite_when=self.config.rewrite_when,
        )
        """The dialogue's decisions (:class:`~selflearn.dialogue.Dialogue`): the rewriter, what
        users taught, how questions are asked and answered."""
        self._reply_asr: Recognizer | None = None

    @property
    def rewriter(self) -> RewriteHook | None:
        """The rewrite hook between ASR and NLU (``None``: none)."""
        return self.dialogue.rewriter

    @rewriter.setter
    def rewriter(self, rewriter: RewriteHook | None) -> None:
        self.dialogue.rewriter = rewriter

    @property
    def teaching(self) -> Teaching | None:
        """Concepts users taught and the nag budget (``None``: the assistant cannot be taught)."""
        return self.dialogue.teaching

    @teaching.setter
    def teaching(self, teaching: Teaching | None) -> None:
        self.dialogue.teaching = teaching

    @property
    def concepts(self) -> ConceptBook | None:
        """What users taught (``None`` when the assistant cannot be taught)."""
        return self.teaching.book if self.teaching is not None else None

    @property
    def rewrite_errors(self) -> int:
        """Rewriter calls that raised or returned something unusable (the text was kept)."""
        return self.dialogue.rewrite_errors

    @property
    def reply_asr(self) -> Recognizer:
        """The recogniser in the dialogue state, which expects answers ("yes", "no", "never
        mind") while a question waits (:func:`~selflearn.assistant.asr.replies.reply_recognizer`)."""
        if self._reply_asr is None:
            from selflearn.assistant.asr.replies import reply_recognizer

            self._reply_asr = reply_recognizer(self.asr)
        return self._reply_asr

    def rewrite(self, text: str, context: RewriteContext) -> RewriteTrace | Confirm | None:
        """The rewriter's answer for ``text``, failing open (:meth:`Dialogue.rewrite
        <selflearn.dialogue.Dialogue.rewrite>`)."""
        return self.dialogue.rewrite(text, context)

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

        The :attr:`dialogue` decides first (:meth:`Dialogue.consider
        <selflearn.dialogue.Dialogue.consider>`): a teaching command is answered, a taught
        concept or a rewrite runs in place of the text, or the assistant asks instead of acting.
        With a rewrite, the NLU, entity resolution and result run on the rewritten text,
        ``turn.text`` is that text and ``turn.rewrite`` its provenance; the original text is also
        run on a copy of ``state`` (taken before the turn) to fill
        :attr:`HandledTurn.effect_without_rewrite` for simulation scoring. The rewriter uses no
        randomness from ``rng``, so a turn it leaves alone is exactly the turn without it.

        When the rewriter wants a rewrite confirmed and :attr:`AssistantConfig.ask` is on, nothing
        is run: the turn asks "Did you mean ...?" (:attr:`HandledTurn.question`); a request that
        fails on words the home lacks may ask to be taught instead. ``asr_trace`` passes an
        utterance already recognised (a new request spoken while a question waited);
        ``answering`` marks the turn as the reply to a question such as "What did you want?".
        """
        wake = None if typed or wake_score is None else WakeTrace(score=wake_score)
        if asr_trace is None and not typed:
            asr_trace = self.asr.transcribe(spoken, rng, condition)
        text = spoken if asr_trace is None else asr_trace.text
        context_area = state.home.area_id_of(device.area)
        base = TurnBase(turn_id, session_id, user_id, household_id, timestamp, device, wake, asr_trace, text)
        heard = Heard(
            text,
            household_id,
            user_id,
            timestamp,
            turn_id,
            area=device.area,
            device=device,
            nbest=tuple(h.text for h in asr_trace.nbest[1:]) if asr_trace is not None else (),
            typed=typed,
        )
        step = self.dialogue.consider(heard, AssistantPort(self, state, context_area))
        if step.action == "say" and step.said is not None:
            return command_turn(base, step.said)
        if step.action == "ask":
            return self._ask(step, state, context_area, rng, base)
        rewrite = step.rewrite if step.action == "run" else None
        if step.applied is not None and len(step.applied.sentences) > 1:
            return run_routine(self, step.applied, base, state, context_area)
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
        if self.teaching is not None and result.status != "success" and answering is None and rewrite is None:
            moment = self.dialogue.after_failure(heard, unplaced_words(handled.nlu, handled.resolution))
            if moment.action == "ask":
                question = self.dialogue.question(moment, turn, (handled.nlu, handled.resolution))
                return HandledTurn(question.turn, None, handled.nlu, handled.resolution, question=question)
        return handled

    def _ask(
        self, step: Step, state: HomeState, context_area: str | None, rng: random.Random, base: TurnBase
    ) -> HandledTurn:
        """The turn that asks "Did you mean <proposal>?" instead of acting (nothing is run)."""
        nlu, resolution = self.understand(base.text, state, context_area)
        latency = max(int(rng.gauss(650, 80)), 50)
        er = resolution.trace if resolution else ErTrace(ok=False) if nlu.trace.matched else None
        turn = base.turn(nlu.trace, er, ResultTrace(status="no_match", latency_ms=latency))
        question = self.dialogue.question(step, turn, (nlu, resolution))
        return HandledTurn(question.turn, None, nlu, resolution, question=question)

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
        ``question`` (:meth:`Dialogue.answer <selflearn.dialogue.Dialogue.answer>`): *yes* runs
        the proposal as the asking turn (logged with the rewrite applied), *no* ends it and asks
        "What did you want?" (:attr:`Answered.follow_up`), *never mind* drops it, a definition
        teaches and runs the request with it; anything else ends it as a barge-in and is a new
        request for the caller. A question past its answer window ends as a ``timeout`` first
        (then the utterance is a new request, not recognised here)."""
        if question.expired(timestamp):
            return self.expire(question)
        heard_trace = None if typed else self.reply_asr.transcribe(spoken, rng, condition)
        text = spoken if heard_trace is None else heard_trace.text
        asked = question.turn
        area = state.home.area_id_of(asked.device.area)
        heard = Heard(text, asked.household_id, asked.user_id, timestamp, asked.turn_id, asked.device.area)
        step = self.dialogue.answer(question, heard, AssistantPort(self, state, area))
        if step.act is None or step.answer is None:  # pragma: no cover - an answer always ends the question
            raise ValueError(f"no answer read for question {question.act_id}")
        handled: HandledTurn | None
        response = step.speech
        if step.action == "run":
            handled = self.run_asked(question, step, step.answer, state, timestamp)
            said = handled.turn.result.response_text if handled.turn.result is not None else ""
            response = f"{step.speech} {said}".strip()
        elif step.continues:
            handled = None
        else:
            handled = self.unanswered(question, step.answer)
        return Answered(step.reply, handled, step.act, response, heard_trace, step.follow_up)

    def run_asked(
        self,
        question: Question,
        step: Step,
        answer: DialogueAnswer,
        state: HomeState,
        timestamp: datetime,
    ) -> HandledTurn:
        """The turn that asked ``question``, run now as ``step`` says (the confirmed proposal, or
        the request with what was just taught): logged with the step's rewrite applied and the
        question's ``answer``; the original text also runs on a copy of the state taken before,
        for simulation scoring (:attr:`HandledTurn.effect_without_rewrite`)."""
        asked = question.turn
        area = state.home.area_id_of(asked.device.area)
        if step.rewrite is None:  # pragma: no cover - a run always has its provenance
            raise ValueError(f"nothing to run for question {question.act_id}")
        finished = question.answered_trace(answer)
        if step.applied is not None and len(step.applied.sentences) > 1:
            routine = run_routine(self, step.applied, TurnBase.of(asked), state, area)
            return replace_handled(routine, turn=routine.turn.model_copy(update={"dialogue": finished}))
        sentence = step.sentences[0]
        before = state.copy()
        nlu, resolution, result, effect = self.run_text(sentence, state, timestamp, area)
        *_, effect_without = self.run_text(asked.text, before, timestamp, area, explain_failures=False)
        latency = asked.result.latency_ms if asked.result is not None else 0
        turn = asked.model_copy(
            update={
                "text": sentence,
                "nlu": nlu.trace,
                "er": resolution.trace if resolution else ErTrace(ok=False) if nlu.trace.matched else None,
                "result": result.model_copy(update={"latency_ms": latency}),
                "rewrite": step.rewrite,
                "dialogue": finished,
            }
        )
        return HandledTurn(turn, effect, nlu, resolution, True, effect_without)

    def expire(self, question: Question) -> Answered:
        """End ``question`` unanswered (``timeout``) at the end of its answer window."""
        return Answered(None, self.unanswered(question, "timeout"), self.dialogue.expire(question), "")

    def unanswered(self, question: Question, answer: DialogueAnswer) -> HandledTurn | None:
        """The asking turn as logged when nothing was run (``None`` for a follow-up question)."""
        if question.kind == "clarify":
            return None
        turn = question.unanswered_turn(answer)
        nlu, resolution = question.payload
        return HandledTurn(turn, None, nlu, resolution)
