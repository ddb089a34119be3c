"""The fast noisy channel: samples the recognition errors a :class:`ConfusionModel` learned."""

from __future__ import annotations

import bisect
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from functools import lru_cache

from selflearn.assistant.asr.conditions import SpeechCondition, sample_condition
from selflearn.assistant.asr.confusion import _PRIOR_WEIGHT, ConfusionModel
from selflearn.assistant.asr.wer import align_words
from selflearn.core.errors import ConfigError
from selflearn.core.schema import MAX_TEXT_CHARS, AsrHypothesis, AsrTrace
from selflearn.core.text import normalize_spoken

_CONF_TABLE = 1024
_SCALE_TABLE = 4096


class _Outcomes:
    """Cumulative distribution over outcomes, for sampling with one random number."""

    __slots__ = ("cum", "values")

    def __init__(self, weighted: Mapping[str, float]) -> None:
        self.values: list[str] = []
        self.cum: list[float] = []
        total = 0.0
        for value, weight in weighted.items():
            if weight > 0:
                total += weight
                self.values.append(value)
                self.cum.append(total)
        if total > 0:
            self.cum = [c / total for c in self.cum]

    def sample(self, u: float) -> str:
        index = bisect.bisect_right(self.cum, u)
        return self.values[min(index, len(self.values) - 1)]

    def __bool__(self) -> bool:
        return bool(self.values)


class NoisyASR:
    """A fast recognizer that injects the errors a :class:`ConfusionModel` learned.

    Per word of the spoken form of the text: a multi-word confusion starting there fires with
    its learned rate; otherwise the word is substituted or deleted with its learned error rate
    (words never seen get the backoff rate, and a substitute chosen among the model's words by
    spelling similarity); words are inserted between with the learned insertion rate. All
    rates are multiplied by ``error_scale``, the model's calibration and its factor for the speaking condition
    (voice, reverberation, noise; capped at 1), so ``error_scale=0`` gives back the spoken form
    unchanged and 2 doubles the error rate. Sampling the condition per utterance (the default)
    makes errors cluster in hard utterances as they do in the real channel.

    The confidence is drawn from the real channel's confidence distribution for the same
    number of errors (0, 1, 2+), so it is lower when errors were injected. The n-best list has
    1-3 distinct hypotheses (sizes as often as the real channel produced them); alternatives
    are one-edit variants of the top hypothesis and, when the top is wrong, the correct text as
    often as the real n-best contained it.
    """

    name = "noisy"

    def __init__(self, model: ConfusionModel | None = None, error_scale: float = 1.0) -> None:
        if error_scale < 0:
            raise ConfigError("error_scale must be >= 0")
        self.model = model if model is not None else ConfusionModel.default()
        self.error_scale = error_scale
        m = self.model
        self._p0 = m.backoff_rate
        self._del_share = m.deletion_share
        if m.vocabulary is not None:
            self._vocab = sorted(m.vocabulary)
        else:
            self._vocab = sorted(set(m.words) | {h for v in m.words.values() for h in v["sub"]})
        self._oov_del_share = m.oov_deletion_share
        self._oov_context = m.oov_context_factor
        self._similar: dict[str, str] = {}
        self._word_table: dict[str, tuple[float, _Outcomes, bool]] = {}
        for word in m.words:
            self._word_table[word] = self._compile_word(word)
        # Multi-word confusions indexed by their first word, longest first.
        self._phrases: dict[str, list[tuple[int, list[str], float, _Outcomes]]] = defaultdict(list)
        for phrase, entry in m.phrases.items():
            parts = phrase.split()
            rate = sum(entry["out"].values()) / max(1, entry["n"])
            outcomes = _Outcomes({h: float(c) for h, c in entry["out"].items()})
            self._phrases[parts[0]].append((len(parts), parts, rate, outcomes))
        for candidates in self._phrases.values():
            candidates.sort(key=lambda c: -c[0])
        self._p_ins = m.insertion_rate
        self._insertions = _Outcomes({w: float(c) for w, c in m.insertions.items()})
        self._sizes = _Outcomes({"1": m.nbest_sizes[0], "2": m.nbest_sizes[1], "3": m.nbest_sizes[2]})
        # Confidence by number of errors: 1024 quantiles of the fitted Beta distributions, so a
        # draw costs one random number.
        table_rng = random.Random(0x5E1F)
        self._confidence_tables = [
            sorted(table_rng.betavariate(*m.confidence[bucket]) for _ in range(_CONF_TABLE))
            for bucket in ("0", "1", "2")
        ]
        self._normalize = lru_cache(maxsize=65536)(normalize_spoken)
        self._condition_scales: dict[SpeechCondition, float] = {}
        condition_rng = random.Random(0xC0DE)
        self._random_scales = [
            error_scale * m.calibration * m.condition_factor(sample_condition(condition_rng))
            for _ in range(_SCALE_TABLE)
        ]

    @classmethod
    def default(cls, error_scale: float = 1.0) -> NoisyASR:
        """A channel with the packaged confusion model (:meth:`ConfusionModel.default`)."""
        return cls(ConfusionModel.default(), error_scale)

    def _similar_word(self, word: str) -> str:
        found = self._similar.get(word)
        if found is None:
            from rapidfuzz import fuzz, process

            best = process.extractOne(
                word, [w for w in self._vocab if w != word], scorer=fuzz.ratio, score_cutoff=50
            )
            found = str(best[0]) if best else ""
            self._similar[word] = found
        return found

    def _compile_word(self, word: str) -> tuple[float, _Outcomes, bool]:
        """``(error rate, outcomes, certain)``: a word the decoder cannot output is always
        misrecognized, whatever the speaking condition (``certain``)."""
        m = self.model
        entry = m.words.get(word)
        oov = not m.in_vocabulary(word)
        weights: dict[str, float] = defaultdict(float)
        if entry is not None:
            for hyp, count in entry["sub"].items():
                weights[hyp] += count
            weights[""] += entry["del"]
        backoff = _PRIOR_WEIGHT * self._p0 if entry is not None else 1.0
        del_share = self._oov_del_share if oov else self._del_share
        weights[""] += backoff * del_share
        similar = self._similar_word(word)
        weights[similar] += backoff * (1.0 - del_share)
        return m.error_rate(word), _Outcomes(weights), oov

    def _corrupt(self, words: Sequence[str], rng: random.Random, scale: float) -> tuple[list[str], int]:
        """One sampled hypothesis, with every learned rate times ``scale``, and its number of
        word edits."""
        out: list[str] = []
        edits = 0
        rand = rng.random
        phrase_get = self._phrases.get
        table_get = self._word_table.get
        i = 0
        n = len(words)
        if self._oov_context != 1.0 and not self.model.speakable(words):
            scale *= self._oov_context
        while i < n:
            word = words[i]
            candidates = phrase_get(word)
            if candidates is not None:
                fired = False
                for length, parts, rate, outcomes in candidates:
                    if (
                        length <= n - i
                        and (length == 1 or words[i : i + length] == parts)
                        and rand() < rate * scale
                    ):
                        hyp_words = outcomes.sample(rand()).split()
                        out.extend(hyp_words)
                        edits += max(length, len(hyp_words))
                        i += length
                        fired = True
                        break
                if fired:
                    continue
            table = table_get(word)
            if table is None:
                table = self._compile_word(word)
                self._word_table[word] = table
            if table[2] or rand() < table[0] * scale:
                replacement = table[1].sample(rand())
                if replacement:
                    out.append(replacement)
                edits += 1
            else:
                out.append(word)
            i += 1
        # Insertions: at most one per utterance (two are rarer than 1 in 10^4 at real rates).
        p_ins = min(1.0, self._p_ins * scale)
        if p_ins and rand() < 1.0 - (1.0 - p_ins) ** (n + 1):
            out.insert(int(rand() * (len(out) + 1)), self._insertions.sample(rand()))
            edits += 1
        return out, edits

    def _variant(self, words: Sequence[str], rng: random.Random) -> list[str]:
        """A one-edit variant of a hypothesis, as n-best alternatives usually are."""
        if not words:
            return [self._insertions.sample(rng.random())] if self._insertions else []
        position = int(rng.random() * len(words))
        word = words[position]
        outcomes = self._word_table.get(word)
        if outcomes is None:
            outcomes = self._compile_word(word)
            self._word_table[word] = outcomes
        replacement = outcomes[1].sample(rng.random()) if outcomes[1] else ""
        variant = list(words)
        if replacement:
            variant[position] = replacement
        elif len(words) > 1:
            del variant[position]
        elif self._insertions:
            variant.append(self._insertions.sample(rng.random()))
        return variant

    def condition_scale(self, condition: SpeechCondition) -> float:
        """``error_scale`` times the model's factor for ``condition``."""
        scale = self._condition_scales.get(condition)
        if scale is None:
            scale = self.error_scale * self.model.calibration * self.model.condition_factor(condition)
            if len(self._condition_scales) < 100_000:
                self._condition_scales[condition] = scale
        return scale

    def transcribe(self, text: str, rng: random.Random, condition: SpeechCondition | None = None) -> AsrTrace:
        """A sampled recognition of ``text`` spoken under ``condition``; when ``None``, under a
        random condition distributed as :func:`sample_condition` (drawn from a precomputed
        table, so it costs one random number)."""
        rand = rng.random
        spoken = self._normalize(text)
        words = spoken.split()
        if condition is None:
            scale = self._random_scales[int(rand() * _SCALE_TABLE)]
        else:
            scale = self.condition_scale(condition)
        if scale > 0:
            hyp_words, edits = self._corrupt(words, rng, scale)
        else:
            hyp_words, edits = words, 0
        top = " ".join(hyp_words)[:MAX_TEXT_CHARS]
        confidence = self._confidence_tables[2 if edits > 2 else edits][int(rand() * _CONF_TABLE)]
        hyps = [AsrHypothesis(text=top, confidence=confidence)]
        if self.error_scale > 0:
            size = int(self._sizes.sample(rand()))
            seen = {top}
            conf = confidence
            model = self.model
            # The reference is offered (first among the alternatives) as often as the real
            # n-best had it when the top was wrong -- and never when the decoder could not
            # have output it.
            offer_ref = (
                size > 1 and edits > 0 and model.speakable(words) and rand() < model.p_ref_in_alternatives
            )
            for _ in range((size - 1) * 2):
                if len(hyps) >= size:
                    break
                if offer_ref:
                    candidate = spoken
                    offer_ref = False
                else:
                    candidate = " ".join(self._variant(hyp_words, rng))
                candidate = candidate[:MAX_TEXT_CHARS]
                if candidate in seen:
                    continue
                seen.add(candidate)
                conf *= model.alt_confidence_ratio
                hyps.append(AsrHypothesis(text=candidate, confidence=conf))
        return AsrTrace(text=top, confidence=confidence, nbest=tuple(hyps), engine=self.name)


def calibrate(
    model: ConfusionModel,
    pairs: Sequence[tuple[str, str]],
    conditions: Sequence[SpeechCondition] | None = None,
) -> ConfusionModel:
    """Set ``model.calibration`` (the pairs ``model`` was fitted on, with their conditions), a
    factor on every rate, by two-fold cross-validation: a model fitted on half of the pairs drives
    :class:`NoisyASR` over the other half's references (under their conditions), and the factor
    is the real channel's word errors over the simulated ones. It makes up for confusions a finite
    sample never saw (the simulator speaks sentences the fit did not contain) and for rates
    saturating in hard conditions; typically 1.1-1.2. Returns ``model``."""
    model.calibration = 1.0
    if not model.n_edits or len(pairs) < 20:
        return model
    norm = [(normalize_spoken(r), normalize_spoken(h)) for r, h in pairs]
    conds: list[SpeechCondition | None] = list(conditions) if conditions is not None else [None] * len(norm)
    rng = random.Random(0xCA1B)
    real = simulated = 0
    for fold in (0, 1):
        train = [i for i in range(len(norm)) if i % 2 != fold]
        test = [i for i in range(len(norm)) if i % 2 == fold]
        train_conditions = [c for c in (conds[i] for i in train) if c is not None]
        sub = ConfusionModel().fit(
            [norm[i] for i in train],
            conditions=train_conditions if len(train_conditions) == len(train) else None,
            vocabulary=model.vocabulary,
        )
        channel = NoisyASR(sub)
        for i in test:
            ref_words = norm[i][0].split()
            hyp_words = norm[i][1].split()
            real += sum(1 for r, h in align_words(ref_words, hyp_words) if r != h)
            condition = conds[i]
            scale = channel.condition_scale(condition) if condition is not None else 1.0
            for _ in range(3):
                out, _ = channel._corrupt(ref_words, rng, scale)
                simulated += sum(1 for r, h in align_words(ref_words, out) if r != h)
    if simulated:
        model.calibration = round(min(2.0, max(0.5, 3 * real / simulated)), 4)
    return model
