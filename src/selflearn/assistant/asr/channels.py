"""The :class:`ASR` protocol every channel implements, and the factory and fingerprint of the
channels by name."""

from __future__ import annotations

import hashlib
import importlib.resources
import random
from typing import Any, Protocol, runtime_checkable

from selflearn.assistant.asr.conditions import SpeechCondition
from selflearn.assistant.asr.confusion import PACKAGED_MODEL
from selflearn.assistant.asr.exact import ExactASR
from selflearn.assistant.asr.noisy import NoisyASR
from selflearn.assistant.asr.real import RealASR
from selflearn.core.errors import ConfigError
from selflearn.core.schema import AsrTrace


@runtime_checkable
class ASR(Protocol):
    """A speech-recognition channel: what the assistant hears when a user says ``text``."""

    name: str

    def transcribe(self, text: str, rng: random.Random, condition: SpeechCondition | None = None) -> AsrTrace:
        """Recognize ``text`` as spoken under ``condition`` (channel-specific default when
        ``None``), drawing any randomness from ``rng``."""
        ...


def channel_fingerprint(name: str) -> str:
    """Identity of the channel ``make_asr(name)`` builds with its defaults, for run manifests and
    caches of simulated traffic: ``exact``; ``noisy/<first 12 hex digits of the packaged confusion
    model's SHA-256>`` (it changes whenever the model is refitted); ``real`` (its transcripts are
    cached by decoder settings already, see :class:`RealASR`).

    Raises:
        ConfigError: for an unknown name.
    """
    key = name.strip().lower()
    if key == "exact":
        return "exact"
    if key == "noisy":
        data = importlib.resources.files("selflearn").joinpath(PACKAGED_MODEL).read_bytes()
        return f"noisy/{hashlib.sha256(data).hexdigest()[:12]}"
    if key in ("real", "pocketsphinx"):
        return "real"
    raise ConfigError(f"unknown ASR channel {name!r}: expected exact, noisy or real")


def make_asr(name: str, **kw: Any) -> ASR:
    """A channel by name: ``exact``, ``noisy`` (keywords ``model``, ``error_scale``) or
    ``real``/``pocketsphinx`` (keywords of :class:`RealASR`).

    Raises:
        ConfigError: for an unknown name.
    """
    key = name.strip().lower()
    if key == "exact":
        return ExactASR()
    if key == "noisy":
        return NoisyASR(kw.get("model"), float(kw.get("error_scale", 1.0)))
    if key in ("real", "pocketsphinx"):
        return RealASR(**kw)
    raise ConfigError(f"unknown ASR channel {name!r}: expected exact, noisy or real")
