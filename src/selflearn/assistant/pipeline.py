"""The reference assistant: wake word -> ASR -> NLU -> entity resolution -> result, each stage
appending its trace to the turn record.

>>> from selflearn.assistant import Assistant, AssistantConfig
>>> assistant = Assistant(AssistantConfig(asr="exact"))   # doctest: +SKIP
>>> handled = assistant.handle(spoken="turn off the kitchen lights", ...)  # doctest: +SKIP
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from selflearn.assistant.execute import NO_MATCH_RESPONSE, Effect, execute
from selflearn.assistant.home import HomeState
from selflearn.assistant.nlu import HomeAssistantNlu, NluConfig, NluResult
from selflearn.assistant.resolve import Resolution, resolve
from selflearn.errors import ConfigError
from selflearn.schema import AsrTrace, DeviceContext, ErTrace, ResultTrace, Turn, WakeTrace


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

    def __post_init__(self) -> None:
        for name in ("feedback_rate", "feedback_rate_low_confidence", "low_confidence", "wake_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"AssistantConfig.{name} must be between 0 and 1, got {value!r}")


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


class Assistant:
    """Home Assistant's voice pipeline over a simulated home, with every stage traced."""

    def __init__(
        self,
        config: AssistantConfig | None = None,
        asr: Recognizer | None = None,
        nlu: HomeAssistantNlu | None = None,
    ) -> None:
        self.config = config or AssistantConfig()
        self.nlu = nlu or HomeAssistantNlu(self.config.nlu)
        if asr is None:
            from selflearn.assistant.asr import make_asr

            asr = make_asr(self.config.asr)
        self.asr = asr

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
        """Run the whole pipeline on one utterance and return the logged turn."""
        wake = None if typed or wake_score is None else WakeTrace(score=wake_score)
        asr_trace = None if typed else self.asr.transcribe(spoken, rng, condition)
        text = spoken if asr_trace is None else asr_trace.text
        context_area = _area_id(device.area, state)
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
        )
        return HandledTurn(turn, effect, nlu, resolution)


def _area_id(area_name: str | None, state: HomeState) -> str | None:
    if area_name is None:
        return None
    area = state.home.area_named(area_name)
    return area.area_id if area else None
