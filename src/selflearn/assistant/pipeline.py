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
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from selflearn.assistant.devices import HomeState
from selflearn.assistant.execute import NO_MATCH_RESPONSE, Effect, execute
from selflearn.assistant.nlu import HomeAssistantNlu, NluConfig, NluResult
from selflearn.assistant.resolve import Resolution, resolve
from selflearn.core.errors import ConfigError
from selflearn.core.hooks import RewriteContext, RewriteHook
from selflearn.core.schema import AsrTrace, DeviceContext, ErTrace, ResultTrace, RewriteTrace, Turn, WakeTrace

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
    ) -> None:
        self.config = config or AssistantConfig()
        self.nlu = nlu or HomeAssistantNlu(self.config.nlu)
        if asr is None:
            from selflearn.assistant.asr import make_asr

            asr = make_asr(self.config.asr)
        self.asr = asr
        self.rewriter = rewriter
        self.rewrite_errors = 0
        """Rewriter calls that raised or returned something unusable (the text was kept)."""

    def rewrite(self, text: str, context: RewriteContext) -> RewriteTrace | None:
        """The rewrite to apply to ``text``, or ``None`` (no rewriter, no rewrite, or a failure).

        Fails open: an exception from the rewriter, an answer that is not a
        :class:`~selflearn.core.schema.RewriteTrace`, or a rewritten text that is empty or the same
        as ``text`` means no rewrite. Exceptions and non-trace answers count in
        :attr:`rewrite_errors` and the first of them in a process is logged as a warning. The
        returned trace's ``original_text`` is always ``text``.
        """
        if self.rewriter is None:
            return None
        try:
            trace = self.rewriter(text, context)
            if trace is not None and not isinstance(trace, RewriteTrace):
                raise TypeError(f"rewriter returned {type(trace).__name__}, not RewriteTrace or None")
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
    ) -> HandledTurn:
        """Run the whole pipeline on one utterance and return the logged turn.

        With a rewriter that rewrites the text, the NLU, entity resolution and result run on the
        rewritten text, ``turn.text`` is that text and ``turn.rewrite`` its provenance; the
        original text is also run on a copy of ``state`` (taken before the turn) to fill
        :attr:`HandledTurn.effect_without_rewrite` for simulation scoring. The rewriter uses no
        randomness from ``rng``, so a turn it leaves alone is exactly the turn without it.
        """
        wake = None if typed or wake_score is None else WakeTrace(score=wake_score)
        asr_trace = None if typed else self.asr.transcribe(spoken, rng, condition)
        text = spoken if asr_trace is None else asr_trace.text
        context_area = _area_id(device.area, state)
        rewrite = None
        if self.rewriter is not None:
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
        latency = int(rng.gauss(450 if nlu.trace.matcher == "strict" else 650, 80))
        result = result.model_copy(update={"latency_ms": max(latency, 50)})
        low = (nlu.trace.matched and nlu.trace.confidence < self.config.low_confidence) or (
            asr_trace is not None and asr_trace.confidence < self.config.low_confidence
        )
        ask_rate = self.config.feedback_rate_low_confidence if low else self.config.feedback_rate
        ask = result.status == "success" and rng.random() < ask_rate
        turn = Turn(
            turn_id=turn_id,
            session_id=session_id,
            user_id=user_id,
            household_id=household_id,
            timestamp=timestamp,
            device=device,
            wake=wake,
            asr=asr_trace,
            text=text,
            nlu=nlu.trace,
            er=resolution.trace if resolution else ErTrace(ok=False) if nlu.trace.matched else None,
            result=result,
            feedback_requested=ask,
            rewrite=rewrite,
        )
        return HandledTurn(turn, effect, nlu, resolution, rewrite is not None, effect_without)


def _area_id(area_name: str | None, state: HomeState) -> str | None:
    if area_name is None:
        return None
    area = state.home.area_named(area_name)
    return area.area_id if area else None
