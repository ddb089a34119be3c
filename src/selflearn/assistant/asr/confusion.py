"""The learned confusion model: the word-level errors of the real channel, which the noisy
channel (:class:`~selflearn.assistant.asr.noisy.NoisyASR`) samples from."""

from __future__ import annotations

import importlib.resources
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from selflearn.assistant.asr.conditions import SpeechCondition
from selflearn.assistant.asr.wer import align_words
from selflearn.core.artefacts import check_format, format_name, read_description, reading, write_description
from selflearn.core.schema import AsrTrace
from selflearn.core.text import normalize_spoken

_MAX_PHRASE_REF = 3
_MAX_PHRASE_HYP = 4
_MIN_PHRASE_COUNT = 2
"""Multi-word confusions seen fewer times are counted as word-level errors."""
FORMAT = format_name("confusion", 3)
"""Format of saved confusion models: a folder whose ``model.json`` is :meth:`ConfusionModel.to_dict`
(the learner contract, :mod:`selflearn.core.artefacts`). :meth:`ConfusionModel.from_dict` also
reads the dictionaries of the single-file formats before it, ``selflearn.confusion/2`` and
``/1`` (without a vocabulary)."""

_LEGACY_FORMATS = ("selflearn.confusion/2", "selflearn.confusion/1")
"""Formats of the single JSON files written before the learner contract: their content is
:data:`FORMAT`'s."""

WHAT = "noisy ASR confusion model"
"""What a saved folder holds, as error messages name it."""

RETRAIN = "selflearn asr fit-noisy"
"""The command that writes a new one."""

PACKAGED_MODEL = "data/noisy_asr/model.json"
"""Description of the packaged model, relative to the ``selflearn`` package."""

_PRIOR_WEIGHT = 2.0
"""Pseudo-observations of the backoff error rate added to every word's counts."""


_DEFAULT_CONFIDENCE = {"0": (8.0, 1.5), "1": (5.0, 2.0), "2": (3.0, 2.5)}
"""Beta(a, b) of the top confidence by number of word errors (0, 1, 2+), used until a model
is fitted with real traces."""


def _beta_from_samples(values: Sequence[float], fallback: tuple[float, float]) -> tuple[float, float]:
    """Method-of-moments Beta parameters."""
    clipped = [min(0.999, max(0.001, v)) for v in values]
    if len(clipped) < 5:
        return fallback
    mean = sum(clipped) / len(clipped)
    var = sum((v - mean) ** 2 for v in clipped) / (len(clipped) - 1)
    if var <= 0:
        return fallback
    common = mean * (1 - mean) / var - 1
    if common <= 0:
        return fallback
    return (round(mean * common, 4), round((1 - mean) * common, 4))


class ConfusionModel:
    """Word-level recognition errors learned from (reference, hypothesis) pairs.

    :meth:`fit` aligns each pair with :func:`align_words` and groups adjacent non-matching
    alignment steps into regions. A region with as many reference as hypothesis words is a
    series of substitutions; one reference word to none is a deletion; no reference word is an
    insertion; any other shape with at most 3 reference words is a multi-word confusion
    (``"seconds from" -> "and"``). Counted per reference word:

    * ``words[w] = {"n": occurrences, "sub": {hyp: count}, "del": count}``;
    * ``phrases["w1 w2"] = {"n": occurrences, "out": {hyp: count}}``;
    * ``insertions = {word: count}`` over ``boundaries`` word boundaries.

    A word's error rate is ``(errors + 2 p0) / (n + 2)`` where ``p0`` is the overall (backoff)
    rate, so words never seen get ``p0`` and rarely seen ones are pulled towards it.

    When the speaking conditions are given, error-rate factors per voice, reverberation and
    noise are learned. When the real channel's traces are given, the model also keeps the
    distribution of its confidence by number of errors (as Beta parameters) and n-best
    statistics. Finally a global :attr:`calibration` factor is set so that :class:`NoisyASR`
    reproduces the fitted WER. :class:`NoisyASR` uses all of these.
    """

    def __init__(self) -> None:
        self.words: dict[str, dict[str, Any]] = {}
        self.phrases: dict[str, dict[str, Any]] = {}
        self.insertions: dict[str, int] = {}
        self.boundaries = 0
        self.n_sentences = 0
        self.n_ref_words = 0
        self.n_edits = 0
        self.confidence: dict[str, tuple[float, float]] = dict(_DEFAULT_CONFIDENCE)
        self.nbest_sizes: list[float] = [0.5, 0.3, 0.2]
        self.p_ref_in_alternatives = 0.3
        self.alt_confidence_ratio = 0.6
        self.vocabulary: frozenset[str] | None = None
        """Words the real decoder can output (its language model's), or None when unknown."""
        self.oov_context_factor = 1.0
        """How much more often in-vocabulary words are misrecognized in a sentence that also
        holds a word outside the vocabulary (the language model loses its context there)."""
        self.condition_factors: dict[str, dict[str, float]] = {}
        self.condition_norm = 1.0
        self.calibration = 1.0
        self.metadata: dict[str, Any] = {}

    # -- fitting -------------------------------------------------------------------------

    def fit(
        self,
        pairs: Iterable[tuple[str, str]],
        traces: Iterable[AsrTrace] | None = None,
        conditions: Iterable[SpeechCondition] | None = None,
        *,
        vocabulary: Iterable[str] | None = None,
    ) -> ConfusionModel:
        """Learn from (reference text, recognized text) pairs; both are normalized with
        :func:`~selflearn.assistant.lm.normalize_spoken`. ``traces``, if given, are the real
        channel's traces for the same pairs, in order, and calibrate confidence and n-best;
        ``conditions``, if given, are the speaking conditions of the pairs, in order, from which
        per-voice, reverberation and noise error-rate factors are learned. ``vocabulary``, if
        given, is the set of words the real decoder can output: words outside it (which it can
        never recognize) get their own error statistics (:attr:`oov_deletion_share`), and the
        n-best statistics are taken over references it could have output. :attr:`calibration`
        stays 1.0: :func:`selflearn.assistant.asr.noisy.calibrate` sets it by two-fold
        cross-validation through the noisy channel.
        Replaces whatever the model had learned before; returns ``self``."""
        words: dict[str, dict[str, Any]] = defaultdict(lambda: {"n": 0, "sub": Counter(), "del": 0})
        phrase_regions: list[tuple[str, str, list[tuple[str | None, str | None]]]] = []
        insertions: Counter[str] = Counter()
        refs: list[list[str]] = []

        def count_steps(region: Sequence[tuple[str | None, str | None]]) -> None:
            for r, h in region:
                if r is None and h is not None:
                    insertions[h] += 1
                elif r is not None:
                    words[r]["n"] += 1
                    if h is None:
                        words[r]["del"] += 1
                    elif h != r:
                        words[r]["sub"][h] += 1

        self.boundaries = self.n_sentences = self.n_ref_words = self.n_edits = 0
        self.vocabulary = frozenset(vocabulary) if vocabulary is not None else None
        context = {False: [0, 0], True: [0, 0]}  # has an OOV word -> [in-vocabulary words, errors]
        conf_by_errors: dict[str, list[float]] = defaultdict(list)
        sizes: Counter[int] = Counter()
        wrong_top = ref_in_alt = 0
        ratios: list[float] = []
        trace_iter = iter(traces) if traces is not None else None
        condition_iter = iter(conditions) if conditions is not None else None
        by_condition: list[tuple[SpeechCondition, int, int]] = []

        for ref_text, hyp_text in pairs:
            trace = next(trace_iter, None) if trace_iter is not None else None
            condition = next(condition_iter, None) if condition_iter is not None else None
            ref = normalize_spoken(ref_text).split()
            hyp = normalize_spoken(hyp_text).split()
            refs.append(ref)
            self.n_sentences += 1
            self.n_ref_words += len(ref)
            self.boundaries += len(ref) + 1
            steps = align_words(ref, hyp)
            edits = sum(1 for r, h in steps if r != h)
            self.n_edits += edits
            speakable = self.speakable(ref)
            if self.vocabulary is not None:
                known = [(r, h) for r, h in steps if r is not None and r in self.vocabulary]
                counts = context[not speakable]
                counts[0] += len(known)
                counts[1] += sum(1 for r, h in known if h != r)
            if condition is not None:
                by_condition.append((condition, edits, len(ref)))
            for region in _regions(steps):
                if isinstance(region, str):
                    words[region]["n"] += 1
                    continue
                ref_part = [r for r, _ in region if r is not None]
                hyp_part = [h for _, h in region if h is not None]
                if not ref_part:
                    insertions.update(hyp_part)
                elif (
                    len(ref_part) == len(hyp_part)
                    or len(ref_part) > _MAX_PHRASE_REF
                    or len(hyp_part) > _MAX_PHRASE_HYP
                    or (len(ref_part) == 1 and not hyp_part)
                ):
                    count_steps(region)
                else:
                    phrase_regions.append((" ".join(ref_part), " ".join(hyp_part), region))
            if trace is not None:
                bucket = str(min(edits, 2))
                conf_by_errors[bucket].append(trace.confidence)
                distinct = list(dict.fromkeys(h.text for h in trace.nbest)) or [trace.text]
                sizes[min(len(distinct), 3)] += 1
                if edits and speakable and len(distinct) > 1:
                    # The decoder can only offer the reference when it could have output it,
                    # and only when it offers alternatives at all.
                    wrong_top += 1
                    ref_norm = " ".join(ref)
                    if any(normalize_spoken(h) == ref_norm for h in distinct[1:]):
                        ref_in_alt += 1
                if len(trace.nbest) > 1 and trace.nbest[0].confidence > 0:
                    ratios.append(trace.nbest[1].confidence / trace.nbest[0].confidence)

        # Multi-word confusions seen at least twice are kept as such; rarer ones would not
        # generalize to new sentences, so they are counted word by word instead.
        region_counts = Counter(key for key, _, _ in phrase_regions)
        phrase_out: dict[str, Counter[str]] = defaultdict(Counter)
        for key, out, region in phrase_regions:
            if region_counts[key] >= _MIN_PHRASE_COUNT:
                phrase_out[key][out] += 1
            else:
                count_steps(region)
        # Occurrences of each kept phrase among all references.
        phrase_n: Counter[str] = Counter()
        lengths = {len(p.split()) for p in phrase_out}
        for ref in refs:
            for length in lengths:
                for i in range(len(ref) - length + 1):
                    key = " ".join(ref[i : i + length])
                    if key in phrase_out:
                        phrase_n[key] += 1

        self.words = {
            w: {"n": v["n"], "sub": dict(v["sub"].most_common()), "del": v["del"]}
            for w, v in sorted(words.items())
        }
        self.phrases = {
            p: {"n": max(phrase_n[p], sum(out.values())), "out": dict(out.most_common())}
            for p, out in sorted(phrase_out.items())
        }
        self.insertions = dict(insertions.most_common())
        (n_in, e_in), (n_oov, e_oov) = context[False], context[True]
        self.oov_context_factor = 1.0
        if n_in and e_in and n_oov:
            # shrunk towards 1 by 50 pseudo-words, as the condition factors are
            rate = e_in / n_in
            self.oov_context_factor = round((e_oov + 50 * rate) / (n_oov + 50) / rate, 4)
        self._fit_conditions(by_condition)
        if trace_iter is not None:
            self.confidence = {
                b: _beta_from_samples(conf_by_errors.get(b, []), _DEFAULT_CONFIDENCE[b])
                for b in ("0", "1", "2")
            }
            total = sum(sizes.values())
            if total:
                self.nbest_sizes = [round(sizes[k] / total, 4) for k in (1, 2, 3)]
            if wrong_top:
                self.p_ref_in_alternatives = round(ref_in_alt / wrong_top, 4)
            if ratios:
                self.alt_confidence_ratio = round(sum(ratios) / len(ratios), 4)
        self.calibration = 1.0
        return self

    def in_vocabulary(self, word: str) -> bool:
        """Whether the real decoder can output ``word`` (True when the vocabulary is unknown)."""
        return self.vocabulary is None or word in self.vocabulary

    def speakable(self, words: Iterable[str]) -> bool:
        """Whether the real decoder could output all of ``words`` (True when the vocabulary is
        unknown)."""
        vocabulary = self.vocabulary
        return vocabulary is None or all(w in vocabulary for w in words)

    def _fit_conditions(self, rows: Sequence[tuple[SpeechCondition, int, int]]) -> None:
        """Error-rate factor per voice, reverberation (dry/reverb) and noise (clean/noisy):
        the group's WER over the overall WER, shrunk towards 1 by 50 pseudo-words."""
        self.condition_factors = {}
        self.condition_norm = 1.0
        words = sum(n for _, _, n in rows)
        edits = sum(e for _, e, _ in rows)
        if not words or not edits:
            return
        overall = edits / words
        for group in ("voice", "reverb", "noise"):
            sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for condition, e, n in rows:
                key = _condition_keys(condition)[group]
                sums[key][0] += e
                sums[key][1] += n
            self.condition_factors[group] = {
                key: round((e + 50 * overall) / (n + 50) / overall, 4) for key, (e, n) in sorted(sums.items())
            }
        weighted = sum(n * self._raw_factor(c) for c, _, n in rows)
        self.condition_norm = round(weighted / words, 4)

    def _raw_factor(self, condition: SpeechCondition) -> float:
        factor = 1.0
        for group, key in _condition_keys(condition).items():
            factor *= self.condition_factors.get(group, {}).get(key, 1.0)
        return factor

    def condition_factor(self, condition: SpeechCondition) -> float:
        """How much more (or less) error-prone ``condition`` is than the fitting average."""
        if not self.condition_factors:
            return 1.0
        return self._raw_factor(condition) / self.condition_norm

    # -- queries -------------------------------------------------------------------------

    @property
    def wer(self) -> float:
        """Word error rate of the pairs the model was fitted on."""
        return self.n_edits / self.n_ref_words if self.n_ref_words else 0.0

    @property
    def backoff_rate(self) -> float:
        """Substitution-plus-deletion rate over all single-word observations: the error rate
        of (in-vocabulary) words never seen in fitting."""
        n, dels, subs = self._word_counts(in_vocabulary=True)
        return (dels + subs) / n if n else 0.0

    @property
    def deletion_share(self) -> float:
        """Share of deletions among single-word errors (of in-vocabulary words)."""
        _, dels, subs = self._word_counts(in_vocabulary=True)
        return dels / (dels + subs) if dels + subs else 0.5

    @property
    def oov_deletion_share(self) -> float:
        """Share of deletions among the (certain) errors on words outside the vocabulary, 0.5
        when none was seen: the decoder drops such a word or hears in-vocabulary words instead."""
        _, dels, subs = self._word_counts(in_vocabulary=False)
        return dels / (dels + subs) if dels + subs else 0.5

    def _word_counts(self, in_vocabulary: bool) -> tuple[int, int, int]:
        """Occurrences, deletions and substitutions of the words inside (or outside) the
        vocabulary, from the single-word observations."""
        n = dels = subs = 0
        for word, v in self.words.items():
            if self.in_vocabulary(word) == in_vocabulary:
                n += v["n"]
                dels += v["del"]
                subs += sum(v["sub"].values())
        return n, dels, subs

    @property
    def insertion_rate(self) -> float:
        """Probability of an inserted word at a word boundary."""
        return sum(self.insertions.values()) / self.boundaries if self.boundaries else 0.0

    def error_rate(self, word: str) -> float:
        """Smoothed probability that ``word`` is substituted or deleted (phrases aside); 1 for
        a word outside the decoder's vocabulary."""
        if not self.in_vocabulary(word):
            return 1.0
        p0 = self.backoff_rate
        entry = self.words.get(word)
        if entry is None:
            return p0
        errors = entry["del"] + sum(entry["sub"].values())
        return float((errors + _PRIOR_WEIGHT * p0) / (entry["n"] + _PRIOR_WEIGHT))

    def substitutions(self, word: str) -> dict[str, float]:
        """Observed outcomes of ``word`` when it was misrecognized, as probabilities
        (``""`` is a deletion); empty when it never was."""
        entry = self.words.get(word)
        if entry is None:
            return {}
        total = entry["del"] + sum(entry["sub"].values())
        if not total:
            return {}
        out = {h: c / total for h, c in entry["sub"].items()}
        if entry["del"]:
            out[""] = entry["del"] / total
        return out

    # -- persistence ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "format": FORMAT,
            "metadata": self.metadata,
            "stats": {
                "n_sentences": self.n_sentences,
                "n_ref_words": self.n_ref_words,
                "n_edits": self.n_edits,
                "boundaries": self.boundaries,
            },
            "confidence": {b: list(ab) for b, ab in self.confidence.items()},
            "nbest": {
                "sizes": self.nbest_sizes,
                "p_ref_in_alternatives": self.p_ref_in_alternatives,
                "alt_confidence_ratio": self.alt_confidence_ratio,
            },
            "conditions": {"factors": self.condition_factors, "norm": self.condition_norm},
            "calibration": self.calibration,
            "insertions": self.insertions,
            "phrases": self.phrases,
            "words": self.words,
            "vocabulary": sorted(self.vocabulary) if self.vocabulary is not None else None,
            "oov_context_factor": self.oov_context_factor,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConfusionModel:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: on an unknown format.
        """
        if data.get("format") not in (FORMAT, *_LEGACY_FORMATS):
            raise ValueError(f"not a selflearn confusion model: format {data.get('format')!r}")
        model = cls()
        model.metadata = dict(data.get("metadata", {}))
        stats = data["stats"]
        model.n_sentences = int(stats["n_sentences"])
        model.n_ref_words = int(stats["n_ref_words"])
        model.n_edits = int(stats["n_edits"])
        model.boundaries = int(stats["boundaries"])
        model.confidence = {b: (float(ab[0]), float(ab[1])) for b, ab in data["confidence"].items()}
        for bucket, default in _DEFAULT_CONFIDENCE.items():
            model.confidence.setdefault(bucket, default)
        nbest = data["nbest"]
        model.nbest_sizes = [float(x) for x in nbest["sizes"]]
        model.p_ref_in_alternatives = float(nbest["p_ref_in_alternatives"])
        model.alt_confidence_ratio = float(nbest["alt_confidence_ratio"])
        conditions = data.get("conditions") or {}
        model.condition_factors = {
            str(g): {str(k): float(v) for k, v in f.items()} for g, f in conditions.get("factors", {}).items()
        }
        model.condition_norm = float(conditions.get("norm", 1.0)) or 1.0
        model.calibration = float(data.get("calibration", 1.0))
        model.insertions = {str(k): int(v) for k, v in data["insertions"].items()}
        model.phrases = {
            str(p): {"n": int(v["n"]), "out": {str(h): int(c) for h, c in v["out"].items()}}
            for p, v in data["phrases"].items()
        }
        model.words = {
            str(w): {
                "n": int(v["n"]),
                "sub": {str(h): int(c) for h, c in v["sub"].items()},
                "del": int(v["del"]),
            }
            for w, v in data["words"].items()
        }
        vocabulary = data.get("vocabulary")
        model.vocabulary = frozenset(str(w) for w in vocabulary) if vocabulary is not None else None
        model.oov_context_factor = float(data.get("oov_context_factor", 1.0))
        return model

    def save(self, folder: str | Path) -> Path:
        """Write the model to ``folder`` (created if needed) as its ``model.json``; returns the
        folder."""
        data = self.to_dict()
        del data["format"]
        return write_description(folder, FORMAT, data)

    @classmethod
    def load(cls, folder: str | Path) -> ConfusionModel:
        """Read a model written by :meth:`save`.

        Raises:
            ConfigError: ``folder`` holds no model.json, an unreadable one or another format
                (naming `selflearn asr fit-noisy`, which writes a new one).
        """
        data = read_description(folder, FORMAT, WHAT, retrain=RETRAIN)
        with reading(folder, WHAT, retrain=RETRAIN):
            return cls.from_dict(data)

    @classmethod
    def default(cls) -> ConfusionModel:
        """The packaged model, learned from the real channel (``selflearn/data/noisy_asr/``)."""
        resource = importlib.resources.files("selflearn").joinpath(PACKAGED_MODEL)
        folder = f"selflearn/{PACKAGED_MODEL.rpartition('/')[0]}"
        with reading(folder, WHAT, retrain=RETRAIN):
            data = json.loads(resource.read_text(encoding="utf-8"))
        check_format(folder, data, FORMAT, WHAT, retrain=RETRAIN)
        with reading(folder, WHAT, retrain=RETRAIN):
            return cls.from_dict(data)


def _condition_keys(condition: SpeechCondition) -> dict[str, str]:
    return {
        "voice": condition.voice,
        "reverb": "reverb" if condition.reverb > 0 else "dry",
        "noise": "clean" if condition.noise_snr_db is None else "noisy",
    }


def _regions(
    steps: Sequence[tuple[str | None, str | None]],
) -> Iterable[str | list[tuple[str | None, str | None]]]:
    """Matched words (as strings) and maximal runs of non-matching alignment steps."""
    run: list[tuple[str | None, str | None]] = []
    for ref, hyp in steps:
        if ref is not None and ref == hyp:
            if run:
                yield run
                run = []
            yield ref
        else:
            run.append((ref, hyp))
    if run:
        yield run
