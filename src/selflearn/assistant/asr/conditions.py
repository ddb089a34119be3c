"""Speaking conditions: how an utterance is spoken and captured by the real channel (voice,
tempo, pitch, reverberation, mild noise), and how the simulator samples them."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from selflearn.core.errors import ConfigError

VOICES: tuple[str, ...] = ("slt", "awb", "rms", "kal16", "kal")
"""flite voices used by :func:`sample_condition` (``kal`` is an 8 kHz diphone voice, the
hardest for a 16 kHz acoustic model; ``awb_time`` is a talking clock and is not used)."""

_VOICE_WEIGHTS: tuple[float, ...] = (0.25, 0.2, 0.2, 0.2, 0.15)


@dataclass(frozen=True)
class SpeechCondition:
    """How an utterance is spoken and captured by the real channel."""

    voice: str = "slt"
    """flite voice name (``flite -lv`` lists them), e.g. ``slt``, ``kal``, ``awb``, ``rms``."""
    tempo: float = 1.0
    """Speaking-rate factor (sox ``tempo``); 1.0 is the voice's normal rate."""
    pitch_semitones: float = 0.0
    """Pitch shift in semitones (sox ``pitch``)."""
    reverb: float = 0.0
    """sox reverberance 0-50; 0 is a dry room."""
    noise_snr_db: float | None = None
    """Signal-to-noise ratio of added room noise; ``None`` is clean. Only mild noise (>= 30 dB)
    is supported: the channel is not meant to model loud rooms."""

    def __post_init__(self) -> None:
        if not self.voice or not re.fullmatch(r"[A-Za-z0-9_]+", self.voice):
            raise ConfigError(f"bad voice name {self.voice!r}")
        if not 0.5 <= self.tempo <= 2.0:
            raise ConfigError(f"tempo {self.tempo} outside 0.5-2.0")
        if not -12.0 <= self.pitch_semitones <= 12.0:
            raise ConfigError(f"pitch shift {self.pitch_semitones} outside +-12 semitones")
        if not 0.0 <= self.reverb <= 50.0:
            raise ConfigError(f"reverb {self.reverb} outside 0-50")
        if self.noise_snr_db is not None and self.noise_snr_db < 30.0:
            raise ConfigError(f"noise SNR {self.noise_snr_db} dB is below the supported 30 dB")

    def key(self) -> str:
        """Stable string identifying the condition (used in cache keys)."""
        noise = "clean" if self.noise_snr_db is None else f"{self.noise_snr_db:.1f}"
        return (
            f"v={self.voice};t={self.tempo:.3f};p={self.pitch_semitones:+.2f};r={self.reverb:.1f};n={noise}"
        )

    @property
    def is_clean(self) -> bool:
        """True when no noise is added."""
        return self.noise_snr_db is None


CLEAN = SpeechCondition()
"""The default voice at normal rate and pitch, dry and noise-free."""


def sample_condition(rng: random.Random) -> SpeechCondition:
    """A random speaking condition: voice, tempo 0.9-1.15, pitch +-2 semitones, reverberation
    in 30 % of cases, mild noise (30-40 dB SNR) in 10 %. Values are rounded so that conditions
    repeat and the cache hits."""
    voice = rng.choices(VOICES, weights=_VOICE_WEIGHTS)[0]
    tempo = round(rng.uniform(0.9, 1.15), 2)
    pitch = round(rng.uniform(-2.0, 2.0), 1)
    reverb = float(round(rng.uniform(10.0, 50.0))) if rng.random() < 0.3 else 0.0
    noise = float(round(rng.uniform(30.0, 40.0))) if rng.random() < 0.1 else None
    return SpeechCondition(voice, tempo, pitch, reverb, noise)
