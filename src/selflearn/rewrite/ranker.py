"""The ranker: P(rewriting the request to this candidate turns a failure into a success).

A LightGBM binary model over :data:`~selflearn.rewrite.features.FEATURES`. Training rows come
from replaying logged households in arrival order (:mod:`selflearn.rewrite.fit`); a row is
positive when the request failed (by the defect detector) and the user's own successful
reformulation meant what the candidate means (same signature). Everything else is negative:
requests that worked, failures nobody fixed, candidates that mean something else. Labels come
from the logs and the signals, never from simulation truth.

The decision threshold is calibrated on held-out households of the training logs for a target
ratio of estimated wins to estimated losses (:func:`calibrate`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from selflearn.errors import ConfigError
from selflearn.rewrite.features import FEATURES

FORMAT = "rewrite.ranker.gbm.v1"

PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
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
ROUNDS = 300


@dataclass
class Ranker:
    """LightGBM over the candidate features, with the calibrated decision thresholds."""

    threshold: float = 0.5
    """Rewrite when the best candidate scores at least this."""
    sensitive_threshold: float = 0.9
    """The bar for locks, covers and garage doors, alarms."""
    intents: dict[str, int] = field(default_factory=dict)
    """Intent -> categorical code used in the ``intent`` feature."""
    rounds: int = ROUNDS
    booster_: Any = None
    meta_: dict[str, Any] = field(default_factory=dict)

    def fit(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> Ranker:
        """Train on feature rows ``x`` (columns :data:`FEATURES`) and 0/1 labels ``y``."""
        import lightgbm as lgb

        if x.ndim != 2 or x.shape[1] != len(FEATURES):
            raise ConfigError(f"expected {len(FEATURES)} feature columns, got shape {x.shape}")
        if len(x) != len(y):
            raise ConfigError(f"{len(x)} feature rows but {len(y)} labels")
        if len(np.unique(y)) < 2:
            raise ConfigError(
                "the training rows hold only one class: more logs with reformulations are needed"
            )
        data = lgb.Dataset(
            x, label=y, feature_name=list(FEATURES), categorical_feature=["intent"], free_raw_data=False
        )
        self.booster_ = lgb.train(PARAMS, data, num_boost_round=self.rounds)
        self.meta_ = {"rows": len(y), "positives": int(y.sum())}
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(win) per row."""
        if self.booster_ is None:
            raise ConfigError("the ranker is not fitted")
        if len(x) == 0:
            return np.zeros(0)
        return np.asarray(self.booster_.predict(x, num_threads=1), dtype=np.float64)

    @property
    def version(self) -> str:
        if self.booster_ is None:
            return "unfitted"
        blob = self.booster_.model_to_string().encode()
        return hashlib.blake2b(blob, digest_size=6).hexdigest()

    def save(self, folder: str | Path) -> Path:
        if self.booster_ is None:
            raise ConfigError("the ranker is not fitted")
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(out / "ranker.txt"))
        meta = {
            "format": FORMAT,
            "features": list(FEATURES),
            "threshold": self.threshold,
            "sensitive_threshold": self.sensitive_threshold,
            "intents": self.intents,
            "rounds": self.rounds,
            **self.meta_,
        }
        (out / "ranker.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
        return out

    @classmethod
    def load(cls, folder: str | Path) -> Ranker:
        import lightgbm as lgb

        src = Path(folder)
        try:
            meta = json.loads((src / "ranker.json").read_text())
            booster = lgb.Booster(model_file=str(src / "ranker.txt"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{src} holds no ranker (missing {Path(exc.filename).name})") from exc
        except (OSError, ValueError, lgb.basic.LightGBMError) as exc:
            raise ConfigError(f"{src}: unreadable ranker: {exc}") from exc
        if meta.get("format") != FORMAT:
            raise ConfigError(f"{src}: format {meta.get('format')!r} is not {FORMAT!r}")
        if meta.get("features") != list(FEATURES):
            raise ConfigError(f"{src}: the ranker was trained on other features; retrain it")
        ranker = cls(
            threshold=float(meta["threshold"]),
            sensitive_threshold=float(meta["sensitive_threshold"]),
            intents={str(k): int(v) for k, v in meta.get("intents", {}).items()},
            rounds=int(meta.get("rounds", ROUNDS)),
        )
        ranker.booster_ = booster
        ranker.meta_ = {k: v for k, v in meta.items() if k not in ("format", "features", "intents")}
        return ranker


@dataclass(frozen=True)
class Calibration:
    """Estimated outcomes of rewriting at one threshold (on held-out training households)."""

    threshold: float
    rewrites: int
    wins: int
    """The request failed and the candidate means what the user's successful retry meant."""
    losses: int
    """The request worked and the candidate means something else, or the candidate means
    something other than the retry that worked."""
    unknown: int
    """The request failed and nobody's retry worked (out of scope, or given up): counted as
    losses by :func:`calibrate`, to stay on the safe side."""

    @property
    def ratio(self) -> float:
        bad = self.losses + self.unknown
        return self.wins / bad if bad else float("inf")


def outcomes(best: np.ndarray, outcome: np.ndarray, threshold: float) -> Calibration:
    """Count estimated outcomes of the queries whose best score is at least ``threshold``.
    ``outcome`` per query: 1 win, -1 loss, 0 unknown, 2 harmless (same meaning as what worked)."""
    on = best >= threshold
    return Calibration(
        threshold=float(threshold),
        rewrites=int(on.sum()),
        wins=int((on & (outcome == 1)).sum()),
        losses=int((on & (outcome == -1)).sum()),
        unknown=int((on & (outcome == 0)).sum()),
    )


def calibrate(best: np.ndarray, outcome: np.ndarray, target_ratio: float, min_wins: int = 5) -> Calibration:
    """The lowest threshold whose estimated win/loss ratio (unknowns counted as losses) is at
    least ``target_ratio`` with at least ``min_wins`` wins; the highest score seen if none is."""
    grid = np.unique(np.round(best[best > 0], 3))
    chosen: Calibration | None = None
    for t in sorted(grid):
        cal = outcomes(best, outcome, float(t))
        if cal.wins >= min_wins and cal.ratio >= target_ratio:
            chosen = cal
            break
    if chosen is None:
        top = float(best.max()) if len(best) else 1.0
        chosen = outcomes(best, outcome, min(top + 1e-6, 1.0))
    return chosen
