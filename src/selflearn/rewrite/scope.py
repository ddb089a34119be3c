"""Knowing when nobody can help: which requests no intent serves, learned from the logs alone.

Most requests to a home assistant are out of scope (jokes, e-mail, music services it lacks), and a
rewriter that maps every failure to the nearest working command turns some of them into actions
("any news today" -> "whats today date"). :class:`ScopeModel` learns, from how people behaved, which
requests nobody could get to work, and the rewriter neither rewrites nor asks about them
(:attr:`~selflearn.rewrite.rewriter.Rewriter.scope_`).

Weak labels per logged turn (no simulation truth, no annotation):

* **unserved** (1): the turn failed, nothing the same user said in the next :data:`FOLLOW_S`
  seconds worked (they gave up), and its text never worked for anyone in the logs;
* **served late** (0): the turn failed but something the same user said in the next
  :data:`FOLLOW_S` seconds worked -- an in-scope request the assistant missed, exactly what a
  rewriter must keep rescuing;
* **served** (0): the turn worked (a sample, :attr:`ScopeModel.served_per_unserved` per unserved).

A logistic regression over the static sentence embedding (the rewriter's own encoder) gives
P(no intent serves it). The threshold is set on households held out of the fit so that at most
:attr:`ScopeModel.max_blocked` of their *served late* requests would be blocked: the cost in
rescues is bounded by construction, and what that buys is measured in ``bench/out_of_scope.py``.

>>> ScopeModel().max_blocked
0.05
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from selflearn.core.artefacts import format_name, read_description, reading, write_description
from selflearn.core.errors import DataError

if TYPE_CHECKING:
    from collections.abc import Callable

    from selflearn.core.embed import StaticEmbedder
    from selflearn.core.store import Store

FORMAT = format_name("scope-model", 1)
FOLLOW_S = 60.0
"""Seconds after a failed request in which a success of the same user counts as serving it."""
FIT_STAGES = ("labels", "embed", "fit")
"""The stages :meth:`ScopeModel.fit` names to its ``progress`` callback, in order: the weak
labels, the embeddings of the labelled requests, the logistic regressions."""

_WORDS = re.compile(r"[a-z0-9']+")


def _norm(text: str) -> str:
    return " ".join(_WORDS.findall(text.lower()))


@dataclass
class ScopeLabels:
    """Weakly labelled texts from a store."""

    texts: list[str]
    labels: np.ndarray
    """1: unserved; 0: served (late or at once)."""
    late: np.ndarray
    """Whether a 0 was served late (failed first)."""
    households: list[str]


def weak_labels(store: Store, served_per_unserved: float = 2.0, seed: int = 0) -> ScopeLabels:
    """The weak labels of the module docstring, from every turn of ``store``."""
    table = store.query(
        "SELECT household_id, user_id, epoch(timestamp) AS t, text, result.status AS status, "
        "coalesce(barge_in.occurred, false) AS barged FROM turns "
        "WHERE result IS NOT NULL ORDER BY household_id, user_id, timestamp"
    ).to_pydict()
    n = len(table["text"])
    if n == 0:
        raise DataError("the store has no turns to learn the scope of requests from")
    texts = [_norm(t or "") for t in table["text"]]
    ok = [s == "success" and not b for s, b in zip(table["status"], table["barged"], strict=True)]
    worked = {text for text, good in zip(texts, ok, strict=True) if good}
    homes, users, times = table["household_id"], table["user_id"], table["t"]
    unserved, late, served = [], [], []
    for i in range(n):
        if not texts[i]:
            continue
        if ok[i]:
            served.append(i)
            continue
        j, later = i + 1, False
        while j < n and homes[j] == homes[i] and users[j] == users[i] and times[j] - times[i] <= FOLLOW_S:
            if ok[j]:
                later = True
                break
            j += 1
        if later:
            late.append(i)
        elif texts[i] not in worked:
            unserved.append(i)
    rng = np.random.default_rng(seed)
    keep = min(len(served), int(served_per_unserved * max(len(unserved), 1)))
    if keep:
        served = sorted(rng.choice(np.array(served, dtype=np.int64), keep, replace=False).tolist())
    else:
        served = []
    rows = unserved + late + served
    labels = np.array([1] * len(unserved) + [0] * (len(late) + len(served)), dtype=np.int8)
    is_late = np.array([False] * len(unserved) + [True] * len(late) + [False] * len(served))
    return ScopeLabels([texts[i] for i in rows], labels, is_late, [homes[i] for i in rows])


class ScopeModel:
    """P(no intent serves a request), learned from the logs (see the module docstring)."""

    def __init__(
        self,
        max_blocked: float = 0.05,
        served_per_unserved: float = 2.0,
        holdout: float = 0.25,
        l2: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.max_blocked = max_blocked
        """Share of held-out *served late* requests the threshold may block."""
        self.served_per_unserved = served_per_unserved
        self.holdout = holdout
        """Share of households held out of the fit to set the threshold."""
        self.l2 = l2
        self.seed = seed
        self.coef_: np.ndarray | None = None
        self.intercept_: float = 0.0
        self.threshold_: float = 1.0
        self.report_: dict[str, Any] = {}
        self._embedder: StaticEmbedder | None = None

    def _embed(self, texts: list[str]) -> np.ndarray:
        if self._embedder is None:
            from selflearn.core.embed import StaticEmbedder

            self._embedder = StaticEmbedder.load()
        return np.asarray(self._embedder.encode(texts), dtype=np.float32)

    def fit(self, store: Store, progress: Callable[[str], None] | None = None) -> ScopeModel:
        """Learn from ``store``'s turns (weak labels only). ``progress(stage)`` is called as each
        of :data:`FIT_STAGES` starts."""
        from sklearn.linear_model import LogisticRegression

        say = progress or (lambda _stage: None)
        say("labels")
        data = weak_labels(store, self.served_per_unserved, self.seed)
        if data.labels.min() == data.labels.max():
            raise DataError("the logs have no failed request nobody got to work (or nothing that worked)")
        held = self._held_out(data.households)
        if np.unique(data.labels[~held]).size < 2:
            raise DataError(
                "the households outside the held-out fold have only one kind of request (served or "
                "not): the scope model needs logs of more households"
            )
        say("embed")
        x = self._embed(data.texts)
        say("fit")
        model = LogisticRegression(C=1.0 / self.l2, max_iter=1000, class_weight="balanced")
        model.fit(x[~held], data.labels[~held])
        p = model.predict_proba(x[held])[:, 1]
        late = data.late[held]
        self.threshold_ = float(np.quantile(p[late], 1 - self.max_blocked)) if late.any() else 0.5
        unserved = data.labels[held] == 1
        model.fit(x, data.labels)  # refit on everything; the threshold stays the held-out one
        self.coef_ = model.coef_[0].astype(np.float32)
        self.intercept_ = float(model.intercept_[0])
        self.report_ = {
            "turns_labelled": len(data.texts),
            "unserved": int((data.labels == 1).sum()),
            "served_late": int(data.late.sum()),
            "served": int(((data.labels == 0) & ~data.late).sum()),
            "threshold": round(self.threshold_, 4),
            "held_out_unserved_caught": round(float((p[unserved] >= self.threshold_).mean()), 4)
            if unserved.any()
            else None,
            "held_out_served_late_blocked": round(float((p[late] >= self.threshold_).mean()), 4)
            if late.any()
            else None,
        }
        return self

    def _held_out(self, households: list[str]) -> np.ndarray:
        """Which rows belong to the households that set the threshold: ``holdout`` of them by a
        hash of their id, at least one and never all (a small store's fold can be empty)."""
        folds = {h: _fold(h, self.seed) for h in set(households)}
        if len(folds) < 2:
            raise DataError(
                "the threshold is set on held-out households: the logs need at least two, "
                f"they hold {len(folds)}"
            )
        chosen = {h for h, f in folds.items() if f < self.holdout}
        if not chosen or len(chosen) == len(folds):
            chosen = {min(folds, key=lambda h: folds[h])}
        return np.array([h in chosen for h in households])

    def p_out(self, text: str) -> float:
        """P(no intent serves ``text``)."""
        if self.coef_ is None:
            raise DataError("the scope model is not fitted")
        z = float(self._embed([_norm(text)])[0] @ self.coef_ + self.intercept_)
        return float(1.0 / (1.0 + np.exp(-z)))

    def out_of_scope(self, text: str) -> bool:
        """Whether nobody can help with ``text`` (P at or above the threshold)."""
        return self.p_out(text) >= self.threshold_

    def save(self, folder: str | Path) -> Path:
        if self.coef_ is None:
            raise DataError("the scope model is not fitted")
        out = write_description(
            folder,
            FORMAT,
            {
                "intercept": self.intercept_,
                "threshold": self.threshold_,
                "max_blocked": self.max_blocked,
                "report": self.report_,
            },
        )
        np.save(out / "coef.npy", self.coef_)
        return out

    @classmethod
    def load(cls, folder: str | Path) -> ScopeModel:
        src = Path(folder)
        meta = read_description(src, FORMAT, "scope model", retrain="selflearn train scope")
        model = cls(max_blocked=float(meta.get("max_blocked", 0.05)))
        with reading(src, "scope model", retrain="selflearn train scope"):
            model.coef_ = np.load(src / "coef.npy").astype(np.float32)
            model.intercept_ = float(meta["intercept"])
            model.threshold_ = float(meta["threshold"])
            model.report_ = dict(meta.get("report", {}))
        return model


def _fold(household: str, seed: int) -> float:
    digest = hashlib.blake2b(f"{seed}|{household}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
