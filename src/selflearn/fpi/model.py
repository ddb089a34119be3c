"""Failure point isolation: which pipeline stage failed first, for every turn.

Two classifiers read the same per-turn features (:func:`selflearn.fpi.features.fpi_features`) and
answer one of :data:`selflearn.core.schema.FAILURE_POINTS` (``false_wake``, ``asr``, ``nlu``, ``er``,
``result``, ``correct``):

* :class:`RuleBaseline` -- ordered, hand-written rules over the traces alone (no context, no
  training): the baseline the issue asks for.
* :class:`FpiModel` -- a LightGBM multiclass model over the traces and the session context.
  **Its labels come from simulation truth** (``sim_truth.failure_point``), read only inside
  :meth:`FpiModel.fit`; prediction reads the turns and feedback alone and never the truth, so a
  model trained on simulated traffic scores production logs unchanged.

:func:`score_fpi` predicts every stored turn and writes the ``fpi`` signal table.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from selflearn.core.artefacts import format_name, read_description, reading, write_description
from selflearn.core.errors import ConfigError, DataError
from selflearn.core.schema import FAILURE_POINTS
from selflearn.core.store import Store
from selflearn.fpi.features import CATEGORICAL_FEATURES, FEATURES, fpi_features
from selflearn.fpi.nbest import default_workers
from selflearn.fpi.text import TEXT_DIMS, TextProjection
from selflearn.signals.defect import Columns

MODEL_FORMAT = format_name("fpi-model", 3)
"""Format name of a saved :class:`FpiModel` (changes when its features change meaning)."""

RULES_NAME = "rules"
"""Value of the ``model`` column for turns labelled by :class:`RuleBaseline`."""

CLASSES: tuple[str, ...] = tuple(FAILURE_POINTS)
"""Output classes, in probability-column order."""

FIT_STAGES = ("features", "text", "booster")
"""The stages :meth:`FpiModel.fit` names to its ``progress`` callback, in order: the turn
features of every store, the text projection (only with ``text_dims > 0``), the trees."""

SCORE_STAGES = ("features", "predict", "write")
"""The stages :func:`score_fpi` names to its ``progress`` callback, in order."""

_TS = pa.timestamp("us", tz="UTC")

WAKE_LOW = 0.65
"""Wake-word score below which a failed turn is read as background speech (simulated false wakes
score 0.50-0.80, requests 0.72-0.99: the ranges overlap, so this rule is imperfect by design)."""

ASR_LOW = 0.5
"""ASR confidence below which a failure is blamed on recognition."""

ER_NAME_WORDS = 3
"""An unresolved "name" of at most this many words is a name the home lacks (``er``); a longer
one is a sentence the NLU swallowed as a name (``nlu``)."""


# --- the rule baseline ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FpiRule:
    """One rule: the class it assigns and where it fires. The first rule that fires wins."""

    label: str
    description: str
    fires: Callable[[Columns], np.ndarray]


def _failed(c: Columns) -> np.ndarray:
    return c.isin("status", ("error", "no_match", "unsupported", "missing"))


def _short_unresolved(c: Columns) -> np.ndarray:
    return np.asarray((c.num("er_unresolved_n", 0) > 0) & (c.num("er_unresolved_words", 99) <= ER_NAME_WORDS))


RULE_LIST: tuple[FpiRule, ...] = (
    FpiRule(
        "false_wake",
        f"a failed turn on a weak wake-word trigger (< {WAKE_LOW}) that nobody followed up on",
        lambda c: _failed(c) & c.below("wake_score", WAKE_LOW) & ~c.flag("next_quick"),
    ),
    FpiRule("correct", "the assistant reported success", lambda c: c.isin("status", ("success",))),
    FpiRule(
        "result",
        "understood and resolved, but execution failed (device unavailable)",
        lambda c: c.isin("error_code", ("entity_unavailable",)),
    ),
    FpiRule(
        "asr",
        f"a failed turn whose recognition confidence was below {ASR_LOW}",
        lambda c: _failed(c) & c.below("asr_conf", ASR_LOW),
    ),
    FpiRule(
        "er",
        "intent matched but entity resolution failed, or a short name was left unresolved",
        lambda c: (
            _failed(c) & (((c.num("nlu_matched", 0) == 1) & (c.num("er_ok", 1) == 0)) | _short_unresolved(c))
        ),
    ),
    FpiRule(
        "correct",
        "a refusal (no match, unsupported) nobody retried: what a correctly refused out-of-scope "
        "request looks like",
        lambda c: _failed(c) & ~c.flag("next_quick") & ~c.flag("barge_in"),
    ),
    FpiRule("nlu", "any other failure: the request was not understood", _failed),
)
"""The baseline's rules in priority order; a turn no rule fires on is ``correct``."""


class RuleBaseline:
    """Ordered rules over the traces (plus whether anybody followed up): transparent, no training.

    >>> labels = RuleBaseline().predict(fpi_features(store))   # doctest: +SKIP
    """

    name = RULES_NAME

    def __init__(self, rules: Sequence[FpiRule] = RULE_LIST) -> None:
        self.rules = tuple(rules)

    def predict(self, features: pa.Table) -> np.ndarray:
        """One class name per row (object array)."""
        cols = Columns(features)
        out = np.full(cols.n, "correct", dtype=object)
        done = np.zeros(cols.n, dtype=bool)
        for rule in self.rules:
            hit = rule.fires(cols) & ~done
            out[hit] = rule.label
            done |= hit
        return out


# --- the learned model ---------------------------------------------------------------------------

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "multiclass",
    "num_class": len(CLASSES),
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "lambda_l2": 1.0,
    "num_threads": 1,  # shared cores: OpenMP spin-waits badly, 1 thread is faster and deterministic
    "seed": 7,
    "deterministic": True,
    "force_col_wise": True,
    "verbose": -1,
}
NUM_ROUNDS = 300
PARALLEL_PREDICT_ROWS = 5000
"""Fewest rows predicted on up to 2 threads (:func:`~selflearn.fpi.nbest.default_workers`):
LightGBM splits the rows among them, so each row's probabilities are the one-thread ones."""
MIN_CATEGORY_COUNT = 5
"""Category values seen fewer times than this in training are treated as unknown."""


def _vocabulary(features: pa.Table) -> dict[str, list[str]]:
    vocab: dict[str, list[str]] = {}
    for name in CATEGORICAL_FEATURES:
        counts = pc.value_counts(pc.drop_null(features.column(name))).to_pylist()
        vocab[name] = sorted(str(v["values"]) for v in counts if v["counts"] >= MIN_CATEGORY_COUNT)
    return vocab


def _matrix(
    features: pa.Table, vocab: Mapping[str, Sequence[str]], text: TextProjection | None = None
) -> np.ndarray:
    """Numeric columns as floats, categorical ones as vocabulary codes (unknown or null: NaN),
    then the text projection's components when there is one."""
    missing = [f for f in FEATURES if f not in features.column_names]
    if missing:
        raise DataError(f"feature table lacks columns {missing}; build it with fpi_features(store)")
    cols = Columns(features)
    out = np.empty((cols.n, len(FEATURES)), dtype=np.float64)
    for j, name in enumerate(FEATURES):
        if name in vocab:
            idx = pc.index_in(features.column(name), value_set=pa.array(list(vocab[name]), pa.string()))
            out[:, j] = np.asarray(pc.fill_null(pc.cast(idx, pa.float64()), np.nan), dtype=np.float64)
        else:
            out[:, j] = cols.num(name)
    if text is not None:
        out = np.hstack([out, text.transform([str(t or "") for t in features.column("text").to_pylist()])])
    return out


def truth_labels(store: Store, turn_ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Simulation-truth failure points for ``turn_ids`` (empty string where a turn has none).
    For training and benchmarks only: this is the one place the package reads ``sim_truth``."""
    truth = store.query("SELECT turn_id, failure_point FROM sim_truth")
    lookup = dict(
        zip(truth.column("turn_id").to_pylist(), truth.column("failure_point").to_pylist(), strict=True)
    )
    return np.array([lookup.get(t) or "" for t in turn_ids.to_pylist()], dtype=object)


@dataclass(frozen=True)
class FpiPrediction:
    """Per-turn answers: the most likely class and the probability of every class."""

    turn_id: pa.ChunkedArray | pa.Array
    labels: np.ndarray
    """Class name per turn (object array)."""
    proba: np.ndarray
    """Turns x :data:`CLASSES` probabilities."""

    @property
    def probability(self) -> np.ndarray:
        """Probability of the predicted class."""
        return np.asarray(self.proba.max(axis=1)) if len(self.proba) else np.zeros(0)


class FpiModel:
    """Gradient-boosted failure point classifier (LightGBM multiclass, trained on one thread, deterministic).

    ``FpiModel().fit(store)`` trains on one or several *simulated* stores (e.g. several ASR
    channels); ``predict(store or features)`` scores; ``save``/``load`` write a folder with
    ``booster.txt``, ``model.json`` (format, feature list, class list, category vocabularies,
    parameters, label counts) and, with ``text_dims > 0``, the text projection in
    ``text_projection/`` (the learner contract of :mod:`selflearn.core.artefacts`)."""

    def __init__(
        self,
        params: Mapping[str, Any] | None = None,
        num_rounds: int = NUM_ROUNDS,
        text_dims: int = TEXT_DIMS,
    ) -> None:
        self.params = {**DEFAULT_PARAMS, **(params or {})}
        self.num_rounds = num_rounds
        self.text_dims = text_dims
        self.booster_: lgb.Booster | None = None
        self.vocab_: dict[str, list[str]] = {}
        self.label_counts_: dict[str, int] = {}
        self.text_: TextProjection | None = None

    def fit(self, stores: Store | Sequence[Store], progress: Callable[[str], None] | None = None) -> FpiModel:
        """Train on every turn of one or several simulated stores (features are computed per
        store); returns self. The labels are ``sim_truth.failure_point`` (simulation truth, read
        here and nowhere else); the inputs are the logs alone. ``progress(stage)`` is called as
        each of :data:`FIT_STAGES` starts (``text`` only with ``text_dims > 0``)."""
        if progress is not None:
            progress("features")
        tables, labels = [], []
        for store in [stores] if isinstance(stores, Store) else list(stores):
            features = fpi_features(store)
            tables.append(features)
            labels.append(truth_labels(store, features.column("turn_id")))
        return self.fit_features(concat_features(tables), np.concatenate(labels), progress)

    @property
    def feature_names(self) -> list[str]:
        """Model input columns: :data:`FEATURES`, then the text components."""
        return [*FEATURES, *(self.text_.feature_names() if self.text_ is not None else [])]

    def fit_features(
        self, features: pa.Table, labels: np.ndarray, progress: Callable[[str], None] | None = None
    ) -> FpiModel:
        """Train on a feature table and one class name per row (rows labelled ``""`` are skipped);
        ``progress(stage)`` is called as the ``text`` and ``booster`` stages of :data:`FIT_STAGES`
        start."""
        say = progress or (lambda _stage: None)
        mask = np.isin(labels, CLASSES)
        if not mask.any():
            raise DataError(
                f"cannot train a failure point model: none of {features.num_rows} turns has a "
                "simulation-truth failure point (train on a store ingested from `selflearn simulate`)"
            )
        y = np.array([CLASSES.index(v) for v in labels[mask]], dtype=np.float64)
        self.vocab_ = _vocabulary(features)
        self.text_ = None
        if self.text_dims > 0:
            say("text")
            self.text_ = TextProjection(self.text_dims).fit(
                [str(t or "") for t in features.column("text").to_pylist()]
            )
        say("booster")
        x = _matrix(features, self.vocab_, self.text_)[mask]
        data = lgb.Dataset(
            x,
            y,
            feature_name=self.feature_names,
            categorical_feature=[f for f in FEATURES if f in self.vocab_],
            free_raw_data=True,
        )
        self.booster_ = lgb.train(self.params, data, num_boost_round=self.num_rounds)
        names, counts = np.unique(labels[mask], return_counts=True)
        self.label_counts_ = {str(k): int(v) for k, v in zip(names, counts, strict=True)}
        return self

    @property
    def version(self) -> str:
        """``<format>:<12 hex digits of the booster>``."""
        digest = hashlib.blake2b(self._booster().model_to_string().encode(), digest_size=6).hexdigest()
        return f"{MODEL_FORMAT}:{digest}"

    def _booster(self) -> lgb.Booster:
        if self.booster_ is None:
            raise ConfigError("FpiModel is not trained: call FpiModel().fit(store) or FpiModel.load(folder)")
        return self.booster_

    def feature_matrix(self, features: pa.Table) -> np.ndarray:
        """The matrix this model predicts from (its columns :attr:`feature_names`): numeric
        features as floats, categorical ones as its vocabulary codes, then the text components."""
        return _matrix(features, self.vocab_, self.text_)

    def predict_proba(self, features: pa.Table) -> np.ndarray:
        """Turns x :data:`CLASSES` probabilities for a :func:`fpi_features` table."""
        booster = self._booster()
        if features.num_rows == 0:
            return np.zeros((0, len(CLASSES)))
        x = _matrix(features, self.vocab_, self.text_)
        threads = int(self.params["num_threads"])
        if features.num_rows >= PARALLEL_PREDICT_ROWS:
            threads = max(threads, default_workers())
        p = booster.predict(x, num_threads=threads)
        return np.asarray(p, dtype=np.float64).reshape(features.num_rows, len(CLASSES))

    def predict(self, data: Store | pa.Table) -> FpiPrediction:
        """Predict a store's turns (features computed here) or a feature table. Never reads truth."""
        features = fpi_features(data) if isinstance(data, Store) else data
        proba = self.predict_proba(features)
        labels = np.array(CLASSES, dtype=object)[proba.argmax(axis=1)] if len(proba) else np.zeros(0, object)
        return FpiPrediction(features.column("turn_id"), labels, proba)

    def save(self, folder: str | Path) -> Path:
        """Write ``booster.txt``, ``model.json`` and the text projection into ``folder``; returns it."""
        meta = {
            "version": self.version,
            "features": list(FEATURES),
            "text_dims": self.text_.dims if self.text_ is not None else 0,
            "text_encoder": "selflearn.core.embed.StaticEmbedder" if self.text_ is not None else None,
            "classes": list(CLASSES),
            "vocab": self.vocab_,
            "params": self.params,
            "num_rounds": self.num_rounds,
            "labels": {"source": "sim_truth.failure_point", "counts": self.label_counts_},
        }
        out = write_description(folder, MODEL_FORMAT, meta)
        (out / "booster.txt").write_text(self._booster().model_to_string())
        projection = out / "text_projection"
        if self.text_ is not None:
            self.text_.save(projection)
        else:
            shutil.rmtree(projection, ignore_errors=True)
        return out

    @classmethod
    def load(cls, folder: str | Path) -> FpiModel:
        """Read a model written by :meth:`save`."""
        retrain = "selflearn fpi train"
        meta = read_description(folder, MODEL_FORMAT, "failure point model", retrain=retrain)
        with reading(folder, "failure point model", retrain=retrain):
            text = (Path(folder) / "booster.txt").read_text()
        if meta.get("features") != list(FEATURES) or meta.get("classes") != list(CLASSES):
            raise ConfigError(
                f"{folder}: the failure point model was trained on other features or classes: "
                f"retrain with `{retrain}`"
            )
        text_dims = int(meta.get("text_dims", 0))
        model = cls(meta.get("params"), int(meta.get("num_rounds", NUM_ROUNDS)), text_dims)
        if text_dims:
            model.text_ = TextProjection.load(Path(folder) / "text_projection")
        model.booster_ = lgb.Booster(model_str=text)
        model.vocab_ = {k: list(v) for k, v in meta["vocab"].items()}
        model.label_counts_ = {k: int(v) for k, v in meta.get("labels", {}).get("counts", {}).items()}
        return model


def concat_features(tables: Sequence[pa.Table]) -> pa.Table:
    """Feature tables of several stores as one (column types unified)."""
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="permissive")


# --- scoring a store -----------------------------------------------------------------------------


@dataclass
class FpiReport:
    """What a scoring run wrote."""

    turns: int
    model: str
    counts: dict[str, int]
    seconds: float

    def summary(self) -> str:
        """One line: turns scored, by which model, how many per failure point."""
        if not self.turns:
            return f"no turns to score (model {self.model})"
        parts = ", ".join(f"{k} {self.counts.get(k, 0):,}" for k in CLASSES)
        rate = self.turns / self.seconds if self.seconds else float("inf")
        return (
            f"scored {self.turns:,} turns with {self.model}: {parts} "
            f"({self.seconds:.1f} s, {rate:,.0f} turns/s)"
        )


def score_fpi(
    store: Store, model: FpiModel | None = None, progress: Callable[[str], None] | None = None
) -> FpiReport:
    """Predict every stored turn's failure point and replace its row of the ``fpi`` table
    (``turn_id, failure_point, probability, model, scored_at``). Without a model the rule
    baseline answers, with probability 1.0. ``progress(stage)`` is called as each of
    :data:`SCORE_STAGES` starts."""
    say = progress or (lambda _stage: None)
    started = time.perf_counter()
    say("features")
    features = fpi_features(store)
    say("predict")
    if model is None:
        labels = RuleBaseline().predict(features)
        prob = np.ones(features.num_rows)
        name = RULES_NAME
    else:
        pred = model.predict(features)
        labels, prob, name = pred.labels, pred.probability, model.version
    say("write")
    table = pa.table(
        {
            "turn_id": features.column("turn_id"),
            "failure_point": pa.array(labels.tolist(), pa.string()),
            "probability": pa.array(prob, pa.float64()),
            "model": pa.repeat(pa.scalar(name, pa.string()), features.num_rows),
            "scored_at": pa.repeat(pa.scalar(datetime.now(UTC), _TS), features.num_rows),
        }
    )
    store.save_signals("fpi", table)
    found: dict[str, int] = {}
    for value in labels.tolist():
        found[str(value)] = found.get(str(value), 0) + 1
    return FpiReport(
        turns=features.num_rows,
        model=name,
        counts=found,
        seconds=time.perf_counter() - started,
    )
