"""The ranker: which meaning a failing request has, and whether to rewrite it at all.

Two LightGBM models, both trained from the logs and the friction signals (never from
simulation truth) by :mod:`selflearn.rewrite.fit`:

* the **meaning** model scores each candidate (:data:`~selflearn.rewrite.features.FEATURES`):
  P(the candidate means what the user meant). It learns from requests whose user later got the
  assistant to do what they wanted (a successful reformulation along the rephrase links): the
  candidate with that reformulation's signature is positive, the others negative. Only such
  requests are used, so a user who gave up does not teach it that a good candidate was wrong.
* the **fixable** model scores the request (the best candidate's features, its meaning score and
  margin, the number of candidates, and whether the caller reported the original as failed):
  P(this request gets fixed by a reformulation), which is low for requests the assistant cannot
  serve (out of scope) and, when the caller cannot say whether the original failed, for requests
  that work.

The decision score is their product. Two thresholds are calibrated on households held out of
training (:func:`calibrate`): one for requests the caller reports as failed (rewriting behind
the NLU), one for requests whose outcome is unknown (rewriting before the NLU).

A trained ranker is **cross-fitted** (:attr:`Ranker.members_`): the calibration scores each fold
of households with a ranker trained on the other folds, and those same rankers serve. A
household's requests are scored by the member trained without its fold (:func:`household_fold`;
a household not in the logs falls in the fold its id hashes to), so the scores the threshold
is compared with come from the models the threshold was calibrated on. A single ranker trained
on every household would rank a little better, but its scores are another model's: tree
ensembles put many requests on the same few leaf values, and whether such a cluster lies above
or below a threshold calibrated on other models is chance (measured in docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from selflearn.core.artefacts import format_name, read_description, reading, write_description
from selflearn.core.errors import ConfigError, DataError
from selflearn.rewrite.features import ALL_FEATURES, FEATURES
from selflearn.rewrite.trees import FastPredictor, Trees, load_booster, predictor, read_errors

FORMAT = format_name("ranker", 3)


def query_features(features: tuple[str, ...]) -> tuple[str, ...]:
    """Inputs of the fixable model of a ranker that reads ``features``: the best candidate's
    features and the query's own."""
    return (*(f"top_{name}" for name in features), "meaning", "meaning_margin", "candidates", "known_failed")


QUERY_FEATURES: tuple[str, ...] = query_features(FEATURES)
"""Inputs of the static rewriter's fixable model."""

PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
    "seed": 0,
}
ROUNDS = 100


def household_fold(household: str, folds: int, seed: int) -> int:
    """The fold (0 .. ``folds`` - 1) a household falls in: a hash of its id, so a household
    keeps its fold across runs and machines."""
    digest = hashlib.blake2b(f"{seed}:{household}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % folds


def query_row(x: np.ndarray, meaning: np.ndarray, known_failed: bool | None) -> np.ndarray:
    """The fixable model's input for one request: ``x`` are its candidates' feature rows and
    ``meaning`` their meaning scores."""
    best = int(np.argmax(meaning))
    second = float(np.partition(meaning, -2)[-2]) if len(meaning) > 1 else 0.0
    flag = math.nan if known_failed is None else float(known_failed)
    return np.concatenate([x[best], [meaning[best], meaning[best] - second, float(len(meaning)), flag]])


def _train(x: np.ndarray, y: np.ndarray, names: tuple[str, ...], categorical: list[str], rounds: int) -> Any:
    import lightgbm as lgb

    if len(np.unique(y)) < 2:
        raise DataError("the training rows hold only one class: more logs with reformulations are needed")
    data = lgb.Dataset(
        x, label=y, feature_name=list(names), categorical_feature=categorical, free_raw_data=False
    )
    return lgb.train(PARAMS, data, num_boost_round=rounds)


@dataclass
class Decision:
    """The ranker's verdict on one request's candidates."""

    best: int
    """Index of the chosen candidate."""
    meaning: np.ndarray
    """Meaning score of every candidate."""
    fixable: float
    score: float
    """``meaning[best] * fixable``: compared with the threshold."""


DECISIONS = ("product", "meaning")
"""Decision rules :class:`Ranker` knows (``Ranker.decision``)."""


@dataclass
class Ranker:
    """The meaning and fixable models with their calibrated thresholds."""

    threshold: float = 0.5
    """Rewrite a request reported as failed when its score is at least this."""
    threshold_unknown: float = 0.5
    """Rewrite a request whose outcome is unknown (before the NLU) when its score is at least this."""
    sensitive_margin: float = 0.1
    """Added to the threshold for locks, covers and garage doors, alarms (at most 0.99)."""
    intents: dict[str, int] = field(default_factory=dict)
    """Intent -> categorical code used in the ``intent`` feature."""
    rounds: int = ROUNDS
    decision: str = "product"
    """How a request's score is made: ``product`` (default) = meaning of the best candidate x
    fixable; ``meaning`` = the meaning score alone (the fixable model is still trained and
    reported, but does not gate). See docs/rewriting.md for when each was measured better."""
    meaning_: Any = None
    fixable_: Any = None
    members_: list[Ranker] = field(default_factory=list)
    """Cross-fitted members (see the module docstring): when set, :meth:`for_household` picks
    the member that scores a household, and this ranker holds no models of its own."""
    member_seed: int = 0
    """Seed of :func:`household_fold` that assigns households to :attr:`members_`."""
    meta_: dict[str, Any] = field(default_factory=dict)
    features: tuple[str, ...] = FEATURES
    """The candidate columns it reads (of :data:`~selflearn.rewrite.features.ALL_FEATURES`, which
    featurization writes): :data:`~selflearn.rewrite.features.FEATURES` for the static rewriter,
    all of them with the home's language."""
    _fast: dict[str, FastPredictor | Trees] = field(default_factory=dict, repr=False, compare=False)
    _columns: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = [name for name in self.features if name not in ALL_FEATURES]
        if unknown:
            raise ConfigError(f"the ranker reads unknown features {unknown}; retrain it")

    def columns(self, x: np.ndarray) -> np.ndarray:
        """This ranker's columns of featurization rows (all of :data:`ALL_FEATURES`)."""
        if x.shape[-1] == len(self.features):
            return x
        if self._columns is None:
            self._columns = np.array([ALL_FEATURES.index(name) for name in self.features])
        return x[..., self._columns]

    def _predictor(self, name: str) -> FastPredictor | Trees:
        booster = self.meaning_ if name == "meaning" else self.fixable_
        fast = self._fast.get(name)
        if fast is None or getattr(fast, "booster", fast) is not booster:
            fast = self._fast[name] = predictor(booster)
        return fast

    def fit(
        self, meaning_x: np.ndarray, meaning_y: np.ndarray, fixable_x: np.ndarray, fixable_y: np.ndarray
    ) -> Ranker:
        """Train both models: the meaning model on candidate rows, the fixable model on query
        rows (whose meaning scores must come from a model that did not see the request's
        household: see :func:`selflearn.rewrite.fit.train`); returns self."""
        return self.fit_meaning(meaning_x, meaning_y).fit_fixable(fixable_x, fixable_y)

    def fit_meaning(self, x: np.ndarray, y: np.ndarray) -> Ranker:
        """Train the meaning model on candidate rows (columns :attr:`features`, or all of
        :data:`ALL_FEATURES`)."""
        if x.ndim != 2 or x.shape[1] not in (len(self.features), len(ALL_FEATURES)):
            raise ConfigError(f"expected {len(self.features)} feature columns, got shape {x.shape}")
        if len(x) != len(y):
            raise ConfigError(f"{len(x)} feature rows but {len(y)} labels")
        self.meaning_ = _train(self.columns(x), y, self.features, ["intent"], self.rounds)
        self._fast.clear()
        self.meta_["meaning_rows"] = len(y)
        return self

    def fit_fixable(self, x: np.ndarray, y: np.ndarray) -> Ranker:
        """Train the fixable model on query rows (columns :func:`query_features` of :attr:`features`)."""
        names = query_features(self.features)
        if x.ndim != 2 or x.shape[1] != len(names):
            raise ConfigError(f"expected {len(names)} query columns, got shape {x.shape}")
        self.fixable_ = _train(x, y, names, ["top_intent"], self.rounds)
        self._fast.clear()
        self.meta_["fixable_rows"] = len(y)
        return self

    @property
    def fitted(self) -> bool:
        if self.members_:
            return all(m.fitted for m in self.members_)
        return self.meaning_ is not None and self.fixable_ is not None

    def member_index(self, household: str | None) -> int | None:
        """Which of :attr:`members_` scores ``household``'s requests (None: no members)."""
        if not self.members_:
            return None
        return household_fold(household or "", len(self.members_), self.member_seed)

    def for_household(self, household: str | None) -> Ranker:
        """The ranker that scores ``household``'s requests: the cross-fitted member trained
        without the household's fold, or this ranker when it has no members."""
        index = self.member_index(household)
        return self if index is None else self.members_[index]

    def _require(self, model: Any) -> None:
        if self.members_:
            raise ConfigError("a cross-fitted ranker scores through its members: use for_household()")
        if model is None:
            raise ConfigError("the ranker is not fitted")

    def meaning(self, x: np.ndarray) -> np.ndarray:
        """Meaning score per candidate row."""
        self._require(self.meaning_)
        if len(x) == 0:
            return np.zeros(0)
        return self._predictor("meaning").predict(self.columns(x))

    def meaning_many(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        """:meth:`meaning` of many requests' candidate rows in one LightGBM call (for training
        and calibration, where thousands of requests are scored at once)."""
        self._require(self.meaning_)
        sizes = [len(x) for x in xs]
        if not sum(sizes):
            return [np.zeros(0) for _ in xs]
        rows = self.columns(np.concatenate(xs))
        scores = np.asarray(self.meaning_.predict(rows, num_threads=1), dtype=np.float64)
        return np.split(scores, np.cumsum(sizes)[:-1])

    def decide_many(self, xs: list[np.ndarray], known_failed: bool | None) -> list[Decision]:
        """:meth:`decide` for many requests (each with at least one candidate), batched."""
        self._require(self.fixable_)
        if not xs:
            return []
        meanings = self.meaning_many(xs)
        rows = np.stack(
            [query_row(self.columns(x), m, known_failed) for x, m in zip(xs, meanings, strict=True)]
        )
        fixable = np.asarray(self.fixable_.predict(rows, num_threads=1), dtype=np.float64)
        out = []
        for m, f in zip(meanings, fixable.tolist(), strict=True):
            best = int(np.argmax(m))
            out.append(Decision(best, m, f, self.score_of(float(m[best]), f)))
        return out

    def score_of(self, meaning: float, fixable: float) -> float:
        """The decision score of a candidate with this meaning score, for a request this fixable."""
        return meaning if self.decision == "meaning" else meaning * fixable

    def decide(self, x: np.ndarray, known_failed: bool | None) -> Decision:
        """Score one request's candidates (``x``: one row per candidate, at least one)."""
        self._require(self.fixable_)
        meaning = self.meaning(x)
        row = query_row(self.columns(x), meaning, known_failed)
        fixable = float(self._predictor("fixable").predict(row[None, :])[0])
        best = int(np.argmax(meaning))
        return Decision(best, meaning, fixable, self.score_of(float(meaning[best]), fixable))

    def threshold_for(
        self, known_failed: bool | None, sensitive: bool, override: float | None = None
    ) -> float:
        """The bar a request's score must clear: the calibrated threshold of the mode (or
        ``override``), plus :attr:`sensitive_margin` for a sensitive intent."""
        base = self.threshold if known_failed else self.threshold_unknown
        if override is not None:
            base = override
        return min(base + self.sensitive_margin, 0.99) if sensitive else base

    @property
    def version(self) -> str:
        if not self.fitted:
            return "unfitted"
        if self.members_:
            blob = f"{self.member_seed}:{','.join(m.version for m in self.members_)}".encode()
            return hashlib.blake2b(blob, digest_size=6).hexdigest()
        blob = (self.meaning_.model_to_string() + self.fixable_.model_to_string()).encode()
        return hashlib.blake2b(blob, digest_size=6).hexdigest()

    def save(self, folder: str | Path) -> Path:
        """Write ``model.json`` and the boosters (or one sub-folder per cross-fitted member)."""
        if not self.fitted:
            raise ConfigError("the ranker is not fitted")
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        for stale in [*out.glob("member-*/*"), *out.glob("*.txt")]:
            stale.unlink()  # a folder reused for another kind of ranker keeps no old models
        if self.members_:
            for i, member in enumerate(self.members_):
                member.save(out / f"member-{i}")
        else:
            self.meaning_.save_model(str(out / "meaning.txt"))
            self.fixable_.save_model(str(out / "fixable.txt"))
        meta = {
            "version": self.version,
            "features": list(self.features),
            "query_features": list(query_features(self.features)),
            "threshold": self.threshold,
            "threshold_unknown": self.threshold_unknown,
            "sensitive_margin": self.sensitive_margin,
            "intents": self.intents,
            "rounds": self.rounds,
            "decision": self.decision,
            "members": len(self.members_),
            "member_seed": self.member_seed,
            **self.meta_,
        }
        return write_description(out, FORMAT, meta)

    @classmethod
    def load(cls, folder: str | Path) -> Ranker:
        src = Path(folder)
        meta = read_description(src, FORMAT, "ranker", retrain="selflearn train rewriter")
        with reading(src, "ranker", extra=read_errors()):
            members = [cls.load(src / f"member-{i}") for i in range(int(meta.get("members", 0)))]
            meaning = fixable = None
            if not members:
                meaning = load_booster(src / "meaning.txt")
                fixable = load_booster(src / "fixable.txt")
        features = tuple(str(f) for f in meta.get("features") or ())
        if (
            not features
            or any(f not in ALL_FEATURES for f in features)
            or meta.get("query_features") != list(query_features(features))
        ):
            raise ConfigError(f"{src}: the ranker was trained on other features; retrain it")
        ranker = cls(
            threshold=float(meta["threshold"]),
            threshold_unknown=float(meta["threshold_unknown"]),
            sensitive_margin=float(meta["sensitive_margin"]),
            intents={str(k): int(v) for k, v in meta.get("intents", {}).items()},
            rounds=int(meta.get("rounds", ROUNDS)),
            decision=str(meta.get("decision", "product")),
            features=features,
        )
        ranker.meaning_, ranker.fixable_ = meaning, fixable
        ranker.members_, ranker.member_seed = members, int(meta.get("member_seed", 0))
        if ranker.decision not in DECISIONS:
            raise ConfigError(f"{src}: unknown decision rule {ranker.decision!r} (one of {DECISIONS})")
        skip = ("format", "features", "query_features", "intents", "decision", "members", "member_seed")
        ranker.meta_ = {k: v for k, v in meta.items() if k not in skip}
        return ranker


@dataclass(frozen=True)
class Calibration:
    """Estimated outcomes of rewriting at one threshold, on households held out of training.

    Estimates come from the logs: a rewrite of a request whose user later succeeded is a *win*
    when the candidate's intent is the one the user succeeded with and a *loss* otherwise; a
    rewrite of a request that worked is a loss when it changes the intent (and harmless when it
    does not); a request that failed and was never fixed, or a refusal nobody retried (out of
    scope, or given up: the logs cannot tell), is *unknown* and counted apart."""

    threshold: float
    rewrites: int
    wins: int
    losses: int
    unknown: int

    @property
    def ratio(self) -> float:
        return self.wins / self.losses if self.losses else float("inf")


def outcomes(score: np.ndarray, outcome: np.ndarray, threshold: float) -> Calibration:
    """Counts at ``threshold``; ``outcome`` per request: 1 win, -1 loss, 0 unknown, 2 harmless."""
    on = score >= threshold
    return Calibration(
        threshold=float(threshold),
        rewrites=int(on.sum()),
        wins=int((on & (outcome == 1)).sum()),
        losses=int((on & (outcome == -1)).sum()),
        unknown=int((on & (outcome == 0)).sum()),
    )


def lowest_threshold(
    score: np.ndarray,
    outcome: np.ndarray,
    target_ratio: float,
    min_wins: float = 20,
    weights: np.ndarray | None = None,
) -> float | None:
    """The lowest threshold (a score rounded to 3 decimals) at which everything scored at or above
    it has an estimated win/loss ratio of at least ``target_ratio`` and at least ``min_wins`` wins;
    ``None`` when there is none. ``weights`` count each request that many times (a bootstrap
    resample). One sort, no loop over thresholds."""
    weight = np.ones(len(score)) if weights is None else np.asarray(weights, dtype=np.float64)
    grid = np.unique(np.round(score[(score > 0) & (weight > 0)], 3))
    if not len(grid):
        return None
    order = np.argsort(score, kind="stable")
    ranked, w, o = score[order], weight[order], outcome[order]
    # suffix sums: wins / losses among the requests ranked at or after each position (a trailing 0)
    wins = np.append(np.cumsum(((o == 1) * w)[::-1])[::-1], 0.0)
    losses = np.append(np.cumsum(((o == -1) * w)[::-1])[::-1], 0.0)
    at = np.searchsorted(ranked, grid, side="left")
    ok = (wins[at] >= min_wins) & (wins[at] >= target_ratio * losses[at])
    return float(grid[ok].min()) if ok.any() else None


def calibrate(score: np.ndarray, outcome: np.ndarray, target_ratio: float, min_wins: int = 20) -> Calibration:
    """The lowest threshold at which the estimated win/loss ratio of everything scored at or above
    it reaches ``target_ratio`` with at least ``min_wins`` wins: the most coverage at the target
    precision. Falls back to a threshold above every score (never rewrite)."""
    chosen = lowest_threshold(score, outcome, target_ratio, min_wins)
    return _never(score, outcome) if chosen is None else outcomes(score, outcome, chosen)


def _never(score: np.ndarray, outcome: np.ndarray) -> Calibration:
    """Outcomes at a threshold above every score: never rewrite."""
    top = float(score.max()) if len(score) else 1.0
    return outcomes(score, outcome, min(top + 1e-6, 1.0))


BOOTSTRAP_RESAMPLES = 200
"""Household resamples :func:`calibrate_bagged` draws."""


@dataclass(frozen=True)
class BaggedCalibration:
    """A threshold chosen as the median over bootstrap resamples of the households, with its
    spread: the calibration's own uncertainty, stated."""

    chosen: Calibration
    """Estimated outcomes at the median threshold, on all the scored requests."""
    point: float
    """The threshold :func:`calibrate` picks from the whole sample (for comparison)."""
    low: float
    """10th percentile of the resampled thresholds (1.0: never rewrite)."""
    high: float
    """90th percentile."""
    resamples: int
    never: int
    """Resamples in which no threshold reached the target (counted as 1.0, never rewrite)."""


def calibrate_bagged(
    score: np.ndarray,
    outcome: np.ndarray,
    groups: np.ndarray,
    target_ratio: float,
    min_wins: int = 20,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> BaggedCalibration:
    """:func:`calibrate`, bagged: the median of the thresholds chosen on ``resamples`` bootstrap
    resamples of the ``groups`` (households, drawn with replacement).

    Where the estimated win/loss curve runs close to ``target_ratio`` over a wide range of
    scores, the point where it crosses the target jumps with small changes of the training
    households (0.211 on one draw of the training population, 0.316 on the next). The median over
    resamples varies much less, and the percentiles say how uncertain the choice is."""
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    labels, group_of = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    rng = np.random.default_rng(seed)
    thresholds = np.empty(resamples)
    never = 0
    for i in range(resamples):
        counts = np.bincount(rng.integers(0, len(labels), len(labels)), minlength=len(labels))
        t = lowest_threshold(score, outcome, target_ratio, min_wins, counts[group_of].astype(np.float64))
        never += t is None
        thresholds[i] = 1.0 if t is None else t
    median = float(np.quantile(thresholds, 0.5, method="lower"))
    point = calibrate(score, outcome, target_ratio, min_wins)
    # most resamples reach the target nowhere: never rewrite
    chosen = _never(score, outcome) if median >= 1.0 else outcomes(score, outcome, median)
    low, high = float(np.quantile(thresholds, 0.1)), float(np.quantile(thresholds, 0.9))
    return BaggedCalibration(chosen, point.threshold, low, high, resamples, never)
