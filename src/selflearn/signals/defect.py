"""Turn-level defect detection: did this turn fail the user?

Two detectors read the same per-turn features (:func:`selflearn.signals.features.turn_features`):

* :class:`HeuristicDefectDetector` -- named rules with hand-set weights, added in log-odds
  space (a logistic model nobody trained): transparent, fast, and the baseline.
* :class:`DefectModel` -- LightGBM over the same features and the dialogue context, trained on
  *weak labels* from the logs themselves (explicit "no"/"yes" answers and unambiguous implicit
  cases, see :func:`weak_labels`), never on simulation truth.

:func:`score_defects` scores every stored turn and writes the ``defects`` signal table with the
reasons that fired. ``docs/defects.md`` explains the rules, the labels and their limits.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from selflearn.core.artefacts import format_name, read_description, reading, write_description
from selflearn.core.errors import ConfigError, DataError
from selflearn.core.store import Store
from selflearn.signals.features import CATEGORICAL_FEATURES, NUMERIC_FEATURES, turn_features

MODEL_FORMAT = format_name("defect-model", 2)
"""Format name of a saved :class:`DefectModel` (changes when its features change meaning)."""

HEURISTIC_NAME = "heuristic"
"""Value of the ``model`` column for turns scored by the heuristic alone."""

FEEDBACK_LOGIT = 3.476
"""Log-odds an explicit answer adds ("no") or removes ("yes"): log(97/3), i.e. we assume people
answer truthfully about 97 % of the time, so an answer outweighs most implicit evidence. The
learned model never sees feedback as a feature (it is its label); the answer is applied on top
of the model's score with this weight."""

_TS = pa.timestamp("us", tz="UTC")

FAILED = ("error", "no_match", "unsupported")
"""Result statuses that mean the assistant did not do what was asked."""


# --- reading feature columns ---------------------------------------------------------------------


class Columns:
    """Numpy views of a feature table with explicit null handling (vectorised rule inputs)."""

    def __init__(self, features: pa.Table) -> None:
        self.table = features
        self.n = features.num_rows

    def num(self, name: str, fill: float = np.nan) -> np.ndarray:
        """A numeric or boolean column as float64, nulls replaced by ``fill``."""
        col = self.table.column(name)
        if pa.types.is_boolean(col.type):
            col = pc.cast(col, pa.float64())
        return np.asarray(pc.fill_null(pc.cast(col, pa.float64()), fill), dtype=np.float64)

    def flag(self, name: str) -> np.ndarray:
        """A boolean column; null counts as False."""
        return np.asarray(pc.fill_null(self.table.column(name), False), dtype=bool)

    def isin(self, name: str, values: Sequence[str]) -> np.ndarray:
        """Whether a string column is one of ``values`` (null: False)."""
        hit = pc.is_in(self.table.column(name), value_set=pa.array(list(values), pa.string()))
        return np.asarray(pc.fill_null(hit, False), dtype=bool)

    def below(self, name: str, limit: float) -> np.ndarray:
        """Whether a numeric column is known and below ``limit``."""
        return np.asarray(self.num(name, np.inf) < limit)


# --- the heuristic --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One named piece of evidence: where it fires and how many log-odds it adds."""

    name: str
    """Reason name written to the ``defects`` table when the rule fires."""
    weight: float
    """Log-odds added when it fires (negative: evidence that the turn went well)."""
    description: str
    """What it means, for the docs and for people reading reasons."""
    fires: Callable[[Columns], np.ndarray]
    """Vectorised test: a boolean array with one entry per turn."""


def _failed(c: Columns) -> np.ndarray:
    return c.isin("status", FAILED)


def _looks_rephrased(c: Columns) -> np.ndarray:
    """The next turn reformulates this one: the rephrase detector's answer when it scored the
    next turn, else a quick next turn with similar (not identical) words."""
    known = ~np.isnan(c.num("rephrased_p"))
    similar = (c.num("next_similarity", 0) >= 0.7) | (c.num("next_word_overlap", 0) >= 0.5)
    lexical = c.flag("next_quick") & similar & ~c.flag("next_same_text")
    return np.asarray(np.where(known, c.num("rephrased_p", 0) >= 0.5, lexical))


def _quiet_after(c: Columns) -> np.ndarray:
    """Nothing more from the user within the follow-up window, and no interruption."""
    return np.asarray(~c.flag("next_quick") & ~c.flag("barge_in"))


def _other_follow_up(c: Columns) -> np.ndarray:
    """A quick next turn that is neither the same words nor a reformulation."""
    return np.asarray(c.flag("next_quick") & ~c.flag("next_same_text") & ~_looks_rephrased(c))


RULES: tuple[Rule, ...] = (
    Rule(
        "error_response", 2.5, "the assistant answered with an error", lambda c: c.isin("status", ("error",))
    ),
    Rule(
        "nlu_no_match",
        2.0,
        "the request was not understood (no NLU match, or status no_match)",
        lambda c: c.isin("status", ("no_match",)) | (c.num("nlu_matched", 1) == 0),
    ),
    Rule(
        "unsupported",
        1.5,
        "understood but not something the assistant can do",
        lambda c: c.isin("status", ("unsupported",)),
    ),
    Rule(
        "no_result",
        1.0,
        "the pipeline stopped before producing a result",
        lambda c: c.isin("status", ("missing",)),
    ),
    Rule("barge_in", 1.5, "the user interrupted the response", lambda c: c.flag("barge_in")),
    Rule(
        "early_barge_in",
        1.0,
        "... within the first 1.2 s of the response",
        lambda c: c.flag("barge_in") & c.below("barge_in_offset_ms", 1200),
    ),
    Rule(
        "repeated",
        3.0,
        "the user said the same words again within 20 s",
        lambda c: c.flag("next_same_text") & c.flag("next_quick"),
    ),
    Rule("rephrased_soon", 1.0, "the next turn reformulates this one", _looks_rephrased),
    Rule(
        "quick_follow_up",
        0.7,
        "a different request followed within 20 s",
        _other_follow_up,
    ),
    Rule(
        "abandoned_after_failure",
        1.0,
        "the user cut off a failed response and the session ended",
        lambda c: _failed(c) & c.flag("barge_in") & c.flag("is_last"),
    ),
    Rule(
        "failure_accepted",
        -1.5,
        "a failed response the user neither interrupted nor retried: what a correctly refused "
        "out-of-scope request looks like",
        lambda c: _failed(c) & _quiet_after(c),
    ),
    Rule(
        "fuzzy_match",
        0.8,
        "understood only by a fallback matcher (not a strict template)",
        lambda c: ~_failed(c) & c.isin("nlu_matcher", ("gazetteer", "fuzzy_ngram", "template_canon")),
    ),
    Rule(
        "low_asr_confidence",
        1.0,
        "speech recognition confidence below 0.4",
        lambda c: c.below("asr_conf", 0.4),
    ),
    Rule(
        "possible_false_wake",
        1.5,
        "a weak wake-word trigger (< 0.65) and a failed response: likely background speech",
        lambda c: c.below("wake_score", 0.65) & _failed(c),
    ),
    Rule("empty_text", 2.0, "nothing was recognised", lambda c: c.flag("empty_text")),
    Rule("non_english", 1.0, "the text is mostly not English words", lambda c: c.flag("non_english")),
    Rule(
        "explicit_no",
        FEEDBACK_LOGIT,
        'the user answered "no" to "did I get that right?" or to "Did you mean ...?"',
        lambda c: c.flag("feedback_no"),
    ),
    Rule("explicit_yes", -FEEDBACK_LOGIT, 'the user answered "yes"', lambda c: c.flag("feedback_yes")),
    Rule(
        "quiet_success",
        -1.0,
        "a success the user neither interrupted nor followed up within 20 s",
        lambda c: c.isin("status", ("success",)) & _quiet_after(c),
    ),
)
"""The heuristic's rules, in the order reasons are listed."""

BIAS = -1.5
"""Log-odds of a turn no rule fired on (about 18 %)."""


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(q / (1 - q)), dtype=np.float64)


class HeuristicDefectDetector:
    """P(defect) = sigmoid(bias + sum of the weights of the rules that fire).

    >>> det = HeuristicDefectDetector()
    >>> p = det.predict(features)            # doctest: +SKIP
    >>> reasons = det.reasons(features)      # doctest: +SKIP
    """

    def __init__(self, rules: Sequence[Rule] = RULES, bias: float = BIAS) -> None:
        self.rules = tuple(rules)
        self.bias = bias

    def fired(self, features: pa.Table) -> np.ndarray:
        """Boolean matrix (turns x rules): which rules fire on which turns."""
        cols = Columns(features)
        out = np.zeros((cols.n, len(self.rules)), dtype=bool)
        for j, rule in enumerate(self.rules):
            out[:, j] = rule.fires(cols)
        return out

    def predict(self, features: pa.Table, fired: np.ndarray | None = None) -> np.ndarray:
        """P(defect) per turn."""
        hits = self.fired(features) if fired is None else fired
        weights = np.array([r.weight for r in self.rules], dtype=np.float64)
        return _sigmoid(self.bias + hits.astype(np.float64) @ weights)

    def reasons(self, features: pa.Table, fired: np.ndarray | None = None) -> pa.ListArray:
        """The names of the rules that fired, per turn (a list column)."""
        hits = self.fired(features) if fired is None else fired
        names = pa.array([r.name for r in self.rules], pa.string())
        _rows, which = np.nonzero(hits)
        offsets = np.concatenate([[0], np.cumsum(hits.sum(axis=1))]).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), names.take(pa.array(which, pa.int64())))


# --- weak labels ----------------------------------------------------------------------------------

BEHAVIOUR_FEATURES: tuple[str, ...] = (
    "is_last",
    "gap_next_s",
    "barge_in",
    "barge_in_offset_ms",
    "next_same_text",
    "next_similarity",
    "next_word_overlap",
    "next_same_intent",
    "next_success",
    "next_quick",
    "next_status",
    "rephrased_p",
)
"""What the user did after the response: the features the implicit labels are defined by."""

FEEDBACK_FEATURES = ("feedback_no", "feedback_yes", "feedback_no_answer")
"""Explicit answers: the explicit labels, so never model inputs (see :data:`FEEDBACK_LOGIT`)."""

MODEL_FEATURES: tuple[str, ...] = tuple(
    f for f in (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES) if f not in FEEDBACK_FEATURES
)
"""Input columns of :class:`DefectModel`."""


@dataclass(frozen=True)
class WeakLabels:
    """Labels for the turns a rule is sure about; the rest are left out of training."""

    label: np.ndarray
    """1.0 defect, 0.0 not, NaN unlabelled."""
    source: np.ndarray
    """Which rule labelled each turn (``""`` for unlabelled)."""

    @property
    def labelled(self) -> np.ndarray:
        """Mask of labelled turns."""
        return np.asarray(~np.isnan(self.label))

    def counts(self) -> dict[str, int]:
        """Turns per label source."""
        names, n = np.unique(self.source[self.labelled], return_counts=True)
        return {str(k): int(v) for k, v in zip(names, n, strict=True)}


LABEL_RULES: tuple[tuple[str, float, Callable[[Columns], np.ndarray]], ...] = (
    ("explicit_no", 1.0, lambda c: c.flag("feedback_no")),
    ("explicit_yes", 0.0, lambda c: c.flag("feedback_yes")),
    (
        "retried_failure",
        1.0,
        lambda c: (
            _failed(c)
            & c.flag("next_quick")
            & (
                c.flag("next_same_text")
                | (c.num("next_similarity", 0) >= 0.7)
                | (c.num("next_word_overlap", 0) >= 0.5)
            )
        ),
    ),
    ("interrupted_failure", 1.0, lambda c: _failed(c) & c.flag("barge_in")),
    ("quick_repeat", 1.0, lambda c: c.flag("next_same_text") & c.flag("next_quick")),
    (
        "quiet_strict_success",
        0.0,
        lambda c: (
            c.isin("status", ("success",))
            & c.isin("nlu_matcher", ("strict", "custom_sentences"))
            & _quiet_after(c)
            & ~c.below("asr_conf", 0.5)
        ),
    ),
)
"""Weak-label rules in priority order (the first that fires labels the turn): name, label, test."""


def weak_labels(features: pa.Table) -> WeakLabels:
    """Weak labels from the logs alone: explicit answers first, then unambiguous implicit cases
    (a failure the user retried at once with similar words or interrupted; the same words said
    again within 20 s; a strict-template success with confident ASR the user let stand)."""
    cols = Columns(features)
    label = np.full(cols.n, np.nan)
    source = np.full(cols.n, "", dtype=object)
    for name, value, test in LABEL_RULES:
        hit = test(cols) & np.isnan(label)
        label[hit] = value
        source[hit] = name
    return WeakLabels(label, source)


# --- the learned model ----------------------------------------------------------------------------

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "lambda_l2": 1.0,
    "num_threads": 1,  # OpenMP spin-waits badly when the 2 cores are shared: 1 thread is ~70x faster here
    "seed": 7,
    "deterministic": True,
    "force_col_wise": True,
    "verbose": -1,
}
NUM_ROUNDS = 200
MIN_CATEGORY_COUNT = 5
"""Category values seen fewer times than this in training are treated as unknown."""


def _matrix(features: pa.Table, vocab: Mapping[str, Sequence[str]]) -> np.ndarray:
    """The model's input matrix: numeric columns as floats, categorical ones as vocabulary codes
    (unknown or null: NaN)."""
    cols = Columns(features)
    out = np.empty((cols.n, len(MODEL_FEATURES)), dtype=np.float64)
    for j, name in enumerate(MODEL_FEATURES):
        if name in vocab:
            idx = pc.index_in(features.column(name), value_set=pa.array(list(vocab[name]), pa.string()))
            out[:, j] = np.asarray(pc.fill_null(pc.cast(idx, pa.float64()), np.nan), dtype=np.float64)
        else:
            out[:, j] = cols.num(name)
    return out


def _vocabulary(features: pa.Table) -> dict[str, list[str]]:
    vocab: dict[str, list[str]] = {}
    for name in CATEGORICAL_FEATURES:
        counts = pc.value_counts(pc.drop_null(features.column(name))).to_pylist()
        vocab[name] = sorted(str(v["values"]) for v in counts if v["counts"] >= MIN_CATEGORY_COUNT)
    return vocab


def _scramble_behaviour(x: np.ndarray, implicit: np.ndarray, seed: int) -> np.ndarray:
    """Break the link between the implicit labels and the behaviour they were read from: in the
    implicitly labelled rows, each behaviour column gets the values of randomly drawn other
    rows. The model then learns what behaviour means only from explicitly labelled turns."""
    rng = np.random.default_rng(seed)
    out = x.copy()
    rows = np.flatnonzero(implicit)
    for name in BEHAVIOUR_FEATURES:
        j = MODEL_FEATURES.index(name)
        out[rows, j] = x[rng.integers(0, len(x), size=len(rows)), j]
    return out


IMPLICIT_TRUST = 0.95
"""Assumed share of implicit weak labels that are right. The model trained on them can be far
more certain than that (a clean-looking success scores 0.001); before an explicit answer is
applied, its score is held within [0.05, 0.95] so that the user's own "no" can outweigh it."""


def _apply_feedback(p: np.ndarray, features: pa.Table) -> np.ndarray:
    """Bayes' rule with the explicit answer as evidence (:data:`FEEDBACK_LOGIT`) on turns that
    have one; other turns keep the model's score unchanged."""
    cols = Columns(features)
    shift = FEEDBACK_LOGIT * (cols.flag("feedback_no").astype(np.float64) - cols.flag("feedback_yes"))
    prior = np.where(shift != 0, np.clip(p, 1 - IMPLICIT_TRUST, IMPLICIT_TRUST), p)
    return _sigmoid(_logit(prior) + shift)


FIT_STAGES = ("features", "labels", "booster")
"""The stages :meth:`DefectModel.fit` names to its ``progress`` callback, in order: the turn
features, the weak labels, the gradient-boosted trees."""


class DefectModel:
    """Gradient-boosted P(defect) trained on weak labels (see :func:`weak_labels`).

    ``DefectModel().fit(store)`` trains; ``predict(features)`` scores a feature table; ``save`` and
    ``load`` write a folder with ``booster.txt`` and ``model.json`` (the learner contract of
    :mod:`selflearn.core.artefacts`).
    """

    def __init__(
        self, params: Mapping[str, Any] | None = None, num_rounds: int = NUM_ROUNDS, decouple: bool = False
    ) -> None:
        self.params = {**DEFAULT_PARAMS, **(params or {})}
        self.num_rounds = num_rounds
        self.decouple = decouple
        self.booster_: lgb.Booster | None = None
        self.vocab_: dict[str, list[str]] = {}
        self.label_stats_: dict[str, Any] = {}

    # training

    def fit(self, store: Store, progress: Callable[[str], None] | None = None) -> DefectModel:
        """Train on every turn of ``store`` (reads turns and feedback, never simulation truth);
        returns self. ``decouple=True`` (constructor) scrambles the behaviour features of
        implicitly labelled turns (see :func:`_scramble_behaviour`); it is kept for the ablation
        in ``bench/defects.py``. ``progress(stage)`` is called as each of :data:`FIT_STAGES`
        starts."""
        if progress is not None:
            progress("features")
        return self.fit_features(turn_features(store), progress)

    def fit_features(self, features: pa.Table, progress: Callable[[str], None] | None = None) -> DefectModel:
        """Train on a feature table from :func:`turn_features`; returns self. ``progress(stage)``
        is called as the ``labels`` and ``booster`` stages of :data:`FIT_STAGES` start."""
        say = progress or (lambda _stage: None)
        say("labels")
        labels = weak_labels(features)
        mask = labels.labelled
        y = labels.label[mask]
        if len(np.unique(y)) < 2:
            raise DataError(
                "cannot train a defect model: the weak labels need both classes, got "
                f"{labels.counts() or 'none'} from {features.num_rows} turns"
                " (more logs, or logs with explicit feedback, are needed)"
            )
        self.vocab_ = _vocabulary(features)
        x = _matrix(features, self.vocab_)[mask]
        explicit = np.isin(labels.source[mask], ("explicit_no", "explicit_yes"))
        if self.decouple:
            x = _scramble_behaviour(x, ~explicit, int(self.params["seed"]))
        weight = np.where(explicit, 2.0, 1.0)
        say("booster")
        data = lgb.Dataset(
            x,
            y,
            weight=weight,
            feature_name=list(MODEL_FEATURES),
            categorical_feature=[f for f in MODEL_FEATURES if f in self.vocab_],
            free_raw_data=True,
        )
        self.booster_ = lgb.train(self.params, data, num_boost_round=self.num_rounds)
        self.label_stats_ = {
            "turns": features.num_rows,
            "labelled": int(mask.sum()),
            "positive_rate": float(y.mean()),
            "by_source": labels.counts(),
        }
        return self

    # scoring

    @property
    def version(self) -> str:
        """``<format>:<12 hex digits of the booster>``: names the exact model that scored a turn."""
        digest = hashlib.blake2b(self._booster().model_to_string().encode(), digest_size=6).hexdigest()
        return f"{MODEL_FORMAT}:{digest}"

    def _booster(self) -> lgb.Booster:
        if self.booster_ is None:
            raise ConfigError(
                "DefectModel is not trained: call DefectModel().fit(store) or DefectModel.load(folder)"
            )
        return self.booster_

    def predict(self, features: pa.Table) -> np.ndarray:
        """P(defect) per row of a :func:`turn_features` table, explicit answers applied on top."""
        booster = self._booster()
        if features.num_rows == 0:
            return np.zeros(0, dtype=np.float64)
        missing = [f for f in MODEL_FEATURES if f not in features.column_names]
        if missing:
            raise DataError(f"feature table lacks columns {missing}; build it with turn_features(store)")
        p = np.asarray(
            booster.predict(_matrix(features, self.vocab_), num_threads=int(self.params["num_threads"]))
        )
        return _apply_feedback(p.astype(np.float64), features)

    # persistence

    def save(self, folder: str | Path) -> Path:
        """Write ``booster.txt`` and ``model.json`` into ``folder``; returns it."""
        text = self._booster().model_to_string()
        meta = {
            "version": self.version,
            "features": list(MODEL_FEATURES),
            "vocab": self.vocab_,
            "params": self.params,
            "num_rounds": self.num_rounds,
            "decouple": self.decouple,
            "feedback_logit": FEEDBACK_LOGIT,
            "labels": self.label_stats_,
        }
        out = write_description(folder, MODEL_FORMAT, meta)
        (out / "booster.txt").write_text(text)
        return out

    @classmethod
    def load(cls, folder: str | Path) -> DefectModel:
        """Read a model written by :meth:`save`."""
        retrain = "selflearn train defect"
        meta = read_description(folder, MODEL_FORMAT, "defect model", retrain=retrain)
        with reading(folder, "defect model", retrain=retrain):
            text = (Path(folder) / "booster.txt").read_text()
        if meta.get("features") != list(MODEL_FEATURES):
            raise ConfigError(
                f"{folder}: the defect model was trained on other features: retrain with `{retrain}`"
            )
        model = cls(meta.get("params"), int(meta.get("num_rounds", NUM_ROUNDS)), bool(meta.get("decouple")))
        model.booster_ = lgb.Booster(model_str=text)
        model.vocab_ = {k: list(v) for k, v in meta["vocab"].items()}
        model.label_stats_ = dict(meta.get("labels", {}))
        return model


# --- scoring a store ------------------------------------------------------------------------------


@dataclass
class DefectReport:
    """What a scoring run wrote."""

    turns: int = 0
    flagged: int = 0
    """Turns with P(defect) >= 0.5."""
    model: str = HEURISTIC_NAME
    mean_p: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line: turns scored, how many look defective, by which model, top reasons."""
        if not self.turns:
            return f"no turns to score (model {self.model})"
        top = ", ".join(f"{k} {v:,}" for k, v in self.reasons.most_common(4))
        return (
            f"scored {self.turns:,} turns with {self.model}: {self.flagged:,} likely defects "
            f"({self.flagged / self.turns:.1%}, mean P {self.mean_p:.2f}); top reasons: {top or 'none'}"
            f" ({self.seconds:.1f} s)"
        )


def score_steps(model: DefectModel | None = None) -> int:
    """How many lines :func:`score_defects` passes to its ``progress`` callback with ``model``
    (a progress bar's total): features, heuristic, the model if any, the summary."""
    return 3 if model is None else 4


def score_defects(
    store: Store,
    model: DefectModel | None = None,
    progress: Callable[[str], None] | None = None,
) -> DefectReport:
    """Score every stored turn and replace the ``defects`` table rows of those turns.

    ``p_defect`` is the model's probability when ``model`` is given, else the heuristic's;
    ``p_heuristic`` and ``reasons`` (the heuristic rules that fired) are always written.
    ``progress`` receives one line per stage, as each ends (:func:`score_steps` of them)."""
    started = time.perf_counter()
    say = progress or (lambda _msg: None)
    features = turn_features(store)
    say(f"features: {features.num_rows:,} turns ({time.perf_counter() - started:.1f} s)")
    heuristic = HeuristicDefectDetector()
    fired = heuristic.fired(features)
    p_heur = heuristic.predict(features, fired)
    reasons = heuristic.reasons(features, fired)
    say(f"heuristic ({time.perf_counter() - started:.1f} s)")
    p = p_heur if model is None else model.predict(features)
    name = HEURISTIC_NAME if model is None else model.version
    if model is not None:
        say(f"model {name} ({time.perf_counter() - started:.1f} s)")
    table = pa.table(
        {
            "turn_id": features.column("turn_id"),
            "p_defect": pa.array(p, pa.float64()),
            "p_heuristic": pa.array(p_heur, pa.float64()),
            "reasons": reasons,
            "model": pa.repeat(pa.scalar(name, pa.string()), features.num_rows),
            "scored_at": pa.repeat(pa.scalar(datetime.now(UTC), _TS), features.num_rows),
        }
    )
    store.save_signals("defects", table)
    counts = np.asarray(fired.sum(axis=0))
    report = DefectReport(
        turns=features.num_rows,
        flagged=int((p >= 0.5).sum()),
        model=name,
        mean_p=float(p.mean()) if len(p) else 0.0,
        reasons=Counter({r.name: int(n) for r, n in zip(heuristic.rules, counts, strict=True) if n}),
        seconds=time.perf_counter() - started,
    )
    say(report.summary())
    return report
