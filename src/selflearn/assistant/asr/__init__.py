"""Pluggable speech-recognition channels for the simulator.

Three channels implement the :class:`ASR` protocol, each returning an
:class:`~selflearn.core.schema.AsrTrace`:

* :class:`ExactASR` (``exact``) -- a perfect recognizer: the text, normalized.
* :class:`RealASR` (``pocketsphinx``) -- the real thing: the text is spoken by ``flite``,
  degraded by ``sox`` (tempo, pitch, reverberation, mild noise), and decoded by PocketSphinx
  with a domain language model (:mod:`selflearn.assistant.lm`). Slow (about 10-16 utterances
  per second on 2 cores), so results are cached in SQLite and :meth:`RealASR.transcribe_many`
  uses a process pool.
* :class:`NoisyASR` (``noisy``) -- fast (tens of thousands of utterances per second): samples
  recognition errors from a :class:`ConfusionModel` learned from the real channel's output, so
  that "pause" becomes "cause" as often as PocketSphinx made it so.

``selflearn asr fit-noisy`` re-learns the packaged confusion model
(:func:`selflearn.simulation.asr_fit.fit_noisy_channel`); ``selflearn asr transcribe`` runs a
channel on sentences.

The modules: :mod:`~selflearn.assistant.asr.conditions` (speaking conditions),
:mod:`~selflearn.assistant.asr.wer` (alignment and word error rates),
:mod:`~selflearn.assistant.asr.channels` (the protocol, :func:`make_asr`,
:func:`channel_fingerprint`), :mod:`~selflearn.assistant.asr.exact`,
:mod:`~selflearn.assistant.asr.real`, :mod:`~selflearn.assistant.asr.confusion` (the learned
model) and :mod:`~selflearn.assistant.asr.noisy`.
"""

from __future__ import annotations

from selflearn.assistant.asr.channels import ASR, channel_fingerprint, make_asr
from selflearn.assistant.asr.conditions import CLEAN, VOICES, SpeechCondition, sample_condition
from selflearn.assistant.asr.confusion import ConfusionModel
from selflearn.assistant.asr.exact import ExactASR, normalize_exact
from selflearn.assistant.asr.noisy import NoisyASR, calibrate
from selflearn.assistant.asr.real import (
    DEFAULT_DECODER_OPTIONS,
    RealASR,
    check_real_asr_available,
    synthesize,
)
from selflearn.assistant.asr.wer import align_words, word_error_rate, word_errors

__all__ = [
    "ASR",
    "CLEAN",
    "DEFAULT_DECODER_OPTIONS",
    "VOICES",
    "ConfusionModel",
    "ExactASR",
    "NoisyASR",
    "RealASR",
    "SpeechCondition",
    "align_words",
    "calibrate",
    "channel_fingerprint",
    "check_real_asr_available",
    "make_asr",
    "normalize_exact",
    "sample_condition",
    "synthesize",
    "word_error_rate",
    "word_errors",
]
