"""What a request's words say it wants: an intent model learned from the logs.

The embeddings place a request near patterns that *sound* like it; this model says which intent
requests *with these words* turned out to mean, pooled over every user's logs -- including the
ones that failed and were fixed, and the ones nobody ever got to work. It is a multinomial
logistic regression over the words and word pairs of the delexicalized request, trained by
:meth:`~selflearn.rewrite.knowledge.Knowledge.fit` from the same logs as the patterns (never from
simulation truth). Each organic turn is one example, labelled with

* the intent the NLU executed, when the turn worked (by the defect detector);
* the intent of the reformulation that worked after it (along rephrase links), when it failed
  and its user got there;
* :data:`NONE`, when it failed, the assistant refused, and nobody's reformulation ever worked:
  out of scope, or damaged beyond repair.

Its probabilities are ranking features (:mod:`selflearn.rewrite.features`): P(the candidate's
intent | the request's words) and P(:data:`NONE` | the request's words).

**Privacy**: a word or word pair is a feature only when at least ``min_users`` distinct users from
at least ``min_households`` homes said it -- the same k-anonymity as pooled patterns -- so a
household's own words never reach the model; household names are placeholders already.

Prediction is a sum of a few rows of a small matrix and a softmax in NumPy: microseconds.

>>> model = IntentModel(min_users=1, min_households=1).fit(
...     [("turn on the {area} lights", "HassTurnOn", "u1", "h1"),
...      ("lights on in the {area}", "HassTurnOn", "u2", "h1"),
...      ("turn off the {area} lights", "HassTurnOff", "u3", "h2"),
...      ("tell me a joke", NONE, "u4", "h2")])
>>> probs, coverage = model.proba("turn on the {area} lights")
>>> model.classes_[int(probs.argmax())]
'HassTurnOn'
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from selflearn.core.artefacts import format_name, read_description, reading, write_description
from selflearn.core.errors import ConfigError

NONE = "<none>"
"""The label of requests that failed and that nobody's reformulation ever got to work."""

FORMAT = format_name("intent-model", 2)


def grams(pattern: str) -> list[str]:
    """The features a pattern is read as: its distinct words and adjacent word pairs."""
    words = pattern.split()
    return list(dict.fromkeys(words + [f"{a} {b}" for a, b in itertools.pairwise(words)]))


class IntentModel:
    """P(intent | the request's words), from the logs (see the module docstring).

    ``fit`` learns ``classes_`` (intent names and :data:`NONE`), ``vocab_`` (k-anonymous words and
    word pairs -> column), ``coef_`` (one row per vocabulary entry, one column per class) and
    ``intercept_``."""

    def __init__(
        self, min_users: int = 5, min_households: int = 2, c: float = 4.0, max_iter: int = 200
    ) -> None:
        self.min_users = min_users
        self.min_households = min_households
        self.c = c
        """Inverse regularisation strength of the logistic regression."""
        self.max_iter = max_iter
        self.classes_: list[str] = []
        self.vocab_: dict[str, int] = {}
        self.coef_: np.ndarray = np.zeros((0, 0), dtype=np.float32)
        self.intercept_: np.ndarray = np.zeros(0, dtype=np.float32)
        self._class_index: dict[str, int] = {}

    @property
    def fitted(self) -> bool:
        """Whether there was enough to learn from (at least two classes and one pooled word)."""
        return len(self.classes_) >= 2 and bool(self.vocab_)

    def fit(self, examples: Iterable[tuple[str, str, str, str]]) -> IntentModel:
        """Learn from ``(pattern, label, user id, household id)`` examples. With fewer than two
        labels or no word said by enough users, the model stays unfitted (:attr:`fitted` is
        False) and :meth:`proba` returns None: small logs simply go without it."""
        from scipy import sparse
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        rows: Counter[tuple[str, str]] = Counter()
        users: dict[str, set[str]] = defaultdict(set)
        homes: dict[str, set[str]] = defaultdict(set)
        for pattern, label, user, home in examples:
            rows[(pattern, label)] += 1
            for g in grams(pattern):
                users[g].add(user)
                homes[g].add(home)
        vocab = sorted(
            g for g, u in users.items() if len(u) >= self.min_users and len(homes[g]) >= self.min_households
        )
        classes = sorted({label for _, label in rows})
        self.classes_, self.vocab_ = [], {}
        self._class_index = {}
        if len(classes) < 2 or not vocab:
            return self
        column = {g: j for j, g in enumerate(vocab)}
        examples_ = sorted(rows.items())
        indptr, indices, data = [0], [], []
        for (pattern, _), _n in examples_:
            cols = sorted({column[g] for g in grams(pattern) if g in column})
            indices.extend(cols)
            data.extend([1.0 / math.sqrt(len(cols))] * len(cols) if cols else [])
            indptr.append(len(indices))
        x = sparse.csr_matrix(
            (np.asarray(data), np.asarray(indices, dtype=np.int64), np.asarray(indptr)),
            shape=(len(examples_), len(vocab)),
        )
        y = np.array([classes.index(label) for (_, label), _ in examples_])
        weight = np.array([n for _, n in examples_], dtype=np.float64)
        lr = LogisticRegression(C=self.c, max_iter=self.max_iter, tol=1e-4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is a time budget here
            lr.fit(x, y, sample_weight=weight)
        coef = np.asarray(lr.coef_, dtype=np.float64)
        intercept = np.asarray(lr.intercept_, dtype=np.float64)
        if coef.shape[0] == 1:  # binary: P(second) = sigmoid(w.x + b) = softmax([0, w.x + b])
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.concatenate([[0.0], intercept])
        self.classes_ = [classes[i] for i in lr.classes_.tolist()]
        self.vocab_ = column
        self.coef_ = np.ascontiguousarray(coef.T, dtype=np.float32)
        self.intercept_ = intercept.astype(np.float32)
        self._class_index = {c: i for i, c in enumerate(self.classes_)}
        return self

    def index(self, label: str) -> int:
        """Column of ``label`` in :meth:`proba`'s output, or -1 when the model never saw it."""
        return self._class_index.get(label, -1)

    def proba(self, pattern: str) -> tuple[np.ndarray, float] | None:
        """(P(class | pattern) for every class in :attr:`classes_`, the share of the pattern's
        words and word pairs the model knows), or None when unfitted."""
        if not self.fitted:
            return None
        found = grams(pattern)
        cols = [j for g in found if (j := self.vocab_.get(g)) is not None]
        logits = self.intercept_.astype(np.float64)
        if cols:
            logits = logits + self.coef_[cols].sum(axis=0, dtype=np.float64) / math.sqrt(len(cols))
        logits -= logits.max()
        p = np.exp(logits)
        return p / p.sum(), len(cols) / max(len(found), 1)

    # --- artefact ----------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write ``model.json`` (parameters, classes, vocabulary) and ``intents.npz`` into ``folder``."""
        meta = {
            "params": {
                "min_users": self.min_users,
                "min_households": self.min_households,
                "c": self.c,
                "max_iter": self.max_iter,
            },
            "classes": self.classes_,
            "vocab": sorted(self.vocab_, key=self.vocab_.__getitem__),
        }
        out = write_description(folder, FORMAT, meta)
        np.savez(out / "intents.npz", coef=self.coef_, intercept=self.intercept_)
        return out

    @classmethod
    def load(cls, folder: str | Path) -> IntentModel:
        """Read a model written by :meth:`save`."""
        src = Path(folder)
        meta = read_description(src, FORMAT, "intent model", retrain="selflearn train rewriter")
        with reading(src, "intent model"):
            arrays = np.load(src / "intents.npz")
            coef, intercept = arrays["coef"], arrays["intercept"]
        model = cls(**meta["params"])
        model.classes_ = list(meta["classes"])
        model.vocab_ = {g: j for j, g in enumerate(meta["vocab"])}
        n_classes = len(model.classes_)
        if coef.shape != (len(model.vocab_), n_classes) or intercept.shape != (n_classes,):
            raise ConfigError(f"{src}: intent model arrays do not match its vocabulary and classes")
        model.coef_, model.intercept_ = coef.astype(np.float32), intercept.astype(np.float32)
        model._class_index = {c: i for i, c in enumerate(model.classes_)}
        return model
