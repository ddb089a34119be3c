"""Low-latency LightGBM prediction for the request path.

``Booster.predict`` costs 0.3-1 ms per call however few rows it gets (argument checks and a
predictor set up per call); the rewriter calls its two models once each per ranked request, with
about eight rows. LightGBM's C API has a path made for serving single rows,
``LGBM_BoosterPredictForMatSingleRowFast``, which prepares the predictor once and then costs a
few microseconds per row. :class:`FastPredictor` wraps it (through LightGBM's own loaded
library), gives the same numbers as ``predict`` (tested), and falls back to ``predict`` if the
symbol is missing. A predictor holds per-process buffers: it is rebuilt after a fork and is not
shared between threads (the service decides on one thread).

A serving install has no LightGBM (it needs scipy: together 150 MB of a Raspberry Pi's disk).
There :class:`Trees` reads the model's text (what ``save_model`` writes) and evaluates it in
numpy: the same numbers as ``Booster.predict`` (tested to the last bit on the packaged starter's
models, NaNs and categorical splits included), a few times slower than the C path
(docs/results/install.json). :func:`load_booster` picks LightGBM when it is installed.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from selflearn.core.errors import ConfigError

_PREDICT_NORMAL = 0
_DTYPE_FLOAT64 = 1


class FastPredictor:
    """Probability of class 1 from a LightGBM binary booster, one row at a time in C."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster
        self.ncol = int(booster.num_feature())
        self._handle: ctypes.c_void_p | None = None
        self._pid = -1
        self._out = np.zeros(1, dtype=np.float64)
        self._len = ctypes.c_int64(0)
        self._lib: Any = None

    def _init(self) -> bool:
        import lightgbm as lgb

        lib = getattr(lgb.basic, "_LIB", None)
        if lib is None or not hasattr(lib, "LGBM_BoosterPredictForMatSingleRowFastInit"):
            return False
        handle = ctypes.c_void_p()
        code = lib.LGBM_BoosterPredictForMatSingleRowFastInit(
            self.booster._handle,
            ctypes.c_int(_PREDICT_NORMAL),
            ctypes.c_int(0),
            ctypes.c_int(-1),
            ctypes.c_int(_DTYPE_FLOAT64),
            ctypes.c_int32(self.ncol),
            ctypes.c_char_p(b"num_threads=1"),
            ctypes.byref(handle),
        )
        if code != 0:
            return False
        self._lib, self._handle, self._pid = lib, handle, os.getpid()
        return True

    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(class 1) per row of ``x`` (shape ``(n, num_feature)``)."""
        rows = np.ascontiguousarray(x, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.ncol:
            raise ValueError(f"expected shape (n, {self.ncol}), got {rows.shape}")
        if self._pid != os.getpid() and not self._init():
            return np.asarray(self.booster.predict(rows, num_threads=1), dtype=np.float64)
        out = np.empty(len(rows), dtype=np.float64)
        result = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        # Row pointers by address arithmetic: ``rows[i].ctypes`` costs ~10 us a row in Python.
        predict_row = self._lib.LGBM_BoosterPredictForMatSingleRowFast
        handle, length = self._handle, ctypes.byref(self._len)
        base, stride = rows.ctypes.data, rows.strides[0]
        for i in range(len(rows)):
            code = predict_row(handle, ctypes.c_void_p(base + i * stride), length, result)
            if code != 0:  # pragma: no cover - LightGBM reported an error: use the safe path
                return np.asarray(self.booster.predict(rows, num_threads=1), dtype=np.float64)
            out[i] = self._out[0]
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_handle=None, _pid=-1, _lib=None, _len=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._len = ctypes.c_int64(0)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter shutdown even `os` may be gone
            if self._handle is not None and self._pid == os.getpid() and self._lib is not None:
                self._lib.LGBM_FastConfigFree(self._handle)


_CATEGORICAL, _DEFAULT_LEFT = 1, 2  # bits of a node's decision type
_MISSING_ZERO, _MISSING_NAN = 1, 2  # its missing type (bits 2-3): 0 none, 1 zero, 2 NaN
_COLUMNS = ("split_feature", "threshold", "decision_type", "left_child", "right_child")
_PARTS = ("feature", "cut", "left", "right", "nan", "value")


class Trees:
    """A LightGBM binary (or regression) model read from its text, evaluated in numpy.

    It answers what the request path asks of a ``Booster``: :meth:`predict`,
    :meth:`model_to_string`, :meth:`save_model` and :meth:`num_feature`. All trees are walked at
    once, one level per step: node ``i``'s children are ``left[i]``/``right[i]``, a leaf is a node
    whose children are itself. A categorical split is read once per call into an extra column of
    0 (its category is in the split's set: go left) or 1, so every step compares a value with a
    threshold; a missing value goes where the node's missing type sends it.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        header, *blocks = text.split("\nTree=")
        head = _fields(header)
        if int(head.get("num_class", "1")) != 1 or int(head.get("num_tree_per_iteration", "1")) != 1:
            raise ConfigError("only single-output LightGBM models can be read without LightGBM")
        objective = head.get("objective", "regression").split()
        self.sigmoid = 0.0
        if objective[0] == "binary":
            scale = [part.split(":", 1)[1] for part in objective[1:] if part.startswith("sigmoid:")]
            self.sigmoid = float(scale[0]) if scale else 1.0
        elif objective[0] != "regression":
            raise ConfigError(f"LightGBM objective {objective[0]!r} cannot be read without LightGBM")
        self.ncol = int(head["max_feature_idx"]) + 1
        trees = [_fields(block.split("\nend of trees", 1)[0]) for block in blocks]
        if any(tree.get("is_linear", "0") != "0" for tree in trees):
            raise ConfigError("linear LightGBM trees cannot be read without LightGBM")

        def column(key: str, dtype: Any) -> np.ndarray:  # one field of every tree, end to end
            return np.array(" ".join(tree.get(key, "") for tree in trees).split(), dtype=dtype)

        # Nodes: each tree's internal nodes, then its leaves (a leaf's children are itself).
        leaves = np.array([int(tree["num_leaves"]) for tree in trees], dtype=np.intp)
        inner = leaves - 1
        self.roots = np.concatenate([[0], np.cumsum(leaves + inner)[:-1]]).astype(np.intp)
        tree_of = np.repeat(np.arange(len(trees)), inner)  # the tree of each internal node
        first = self.roots[tree_of]
        splits = first + np.arange(len(tree_of)) - np.repeat(np.cumsum(inner) - inner, inner)
        ends = (
            np.repeat(self.roots + inner, leaves)
            + np.arange(leaves.sum())
            - np.repeat(np.cumsum(leaves) - leaves, leaves)
        )
        size = int((leaves + inner).sum())
        self.feature = np.zeros(size, dtype=np.intp)
        self.threshold = np.full(size, math.inf)
        self.left = np.arange(size, dtype=np.intp)
        self.right = np.arange(size, dtype=np.intp)
        self.nan_left = np.ones(size, dtype=bool)
        self.value = np.zeros(size, dtype=np.float64)
        self.value[ends] = column("leaf_value", np.float64)
        kind = column("decision_type", np.int64)
        feature = column("split_feature", np.intp)
        cut = column("threshold", np.float64)
        for side, target in (("left_child", self.left), ("right_child", self.right)):
            child = column(side, np.intp)  # >= 0: an internal node of the tree; ~i: its leaf i
            target[splits] = np.where(child >= 0, first + child, first + inner[tree_of] + ~child)
        missing, default_left = (kind >> 2) & 3, (kind & _DEFAULT_LEFT) > 0
        numeric = (kind & _CATEGORICAL) == 0
        if np.any((missing == _MISSING_ZERO) & (default_left != (cut >= 0.0)) & numeric):
            raise ConfigError("zero-as-missing LightGBM splits cannot be read without LightGBM")
        # A missing value is read as 0, unless the missing type is NaN: then the default side.
        nan_left = np.where(missing == _MISSING_NAN, default_left, cut >= 0.0)
        # A categorical split reads a column of its own (see _columns): 0 goes left, never missing.
        categorical = np.flatnonzero(~numeric)
        going_left: list[np.ndarray] = []
        if len(categorical):
            words = column("cat_threshold", np.uint64).astype("<u4")
            bits = np.unpackbits(words.view(np.uint8), bitorder="little").astype(bool)
            offset, bounds = 0, []  # per tree: where its category sets start in ``bits``
            for tree in trees:
                local = np.array(tree.get("cat_boundaries", "0").split(), dtype=np.intp)
                bounds.append(32 * (offset + local))
                offset += int(local[-1])
            for node in categorical.tolist():
                k, at = int(cut[node]), bounds[int(tree_of[node])]
                going_left.append(bits[at[k] : at[k + 1]])
            self.category_feature = feature[categorical].copy()
            feature[categorical] = self.ncol + np.arange(len(categorical))
            cut[categorical], nan_left[categorical] = 0.5, False
        else:
            self.category_feature = np.zeros(0, dtype=np.intp)
        self.feature[splits], self.threshold[splits], self.nan_left[splits] = feature, cut, nan_left
        # Row j: which categories go left at categorical split j; the last column (any category
        # past the largest in a set) goes right.
        width = max((len(going) for going in going_left), default=0) + 1
        self.category_left = np.zeros((len(going_left), width), dtype=bool)
        for j, going in enumerate(going_left):
            self.category_left[j, : len(going)] = going
        self.depth = _depth(self.left, self.right, self.roots)

    @classmethod
    def load(cls, path: str | Path) -> Trees:
        return cls(Path(path).read_text(encoding="utf-8"))

    def num_feature(self) -> int:
        return self.ncol

    def model_to_string(self) -> str:
        return self.text

    def save_model(self, path: str) -> None:
        Path(path).write_text(self.text, encoding="utf-8")

    def _columns(self, rows: np.ndarray) -> np.ndarray:
        """The rows with one 0/1 column per categorical split (0: its category goes left)."""
        if not len(self.category_feature):
            return rows
        # As LightGBM: a missing or negative value goes right, whatever the missing type; anything
        # else is truncated to its category (one past the largest in any set: not in the set).
        top = self.category_left.shape[1] - 1
        codes = np.trunc(np.nan_to_num(rows[:, self.category_feature], nan=-1.0, posinf=-1.0, neginf=-1.0))
        codes = np.where((codes < 0) | (codes >= top), top, codes).astype(np.intp)
        left = self.category_left[np.arange(len(self.category_feature)), codes]
        return np.hstack([rows, (~left).astype(np.float64)])

    def raw(self, x: np.ndarray) -> np.ndarray:
        """The sum of the trees' outputs per row of ``x`` (shape ``(n, num_feature)``)."""
        rows = np.asarray(x, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.ncol:
            raise ValueError(f"expected shape (n, {self.ncol}), got {rows.shape}")
        table = self._columns(rows)
        width = table.shape[1]
        flat = table.ravel()
        offset = (np.arange(len(rows)) * width)[:, None]
        node = np.broadcast_to(self.roots, (len(rows), len(self.roots))).copy()
        has_nan = bool(np.isnan(rows).any())
        for _ in range(self.depth):
            value = flat[offset + self.feature[node]]
            go_left = value <= self.threshold[node]
            if has_nan:
                go_left |= np.isnan(value) & self.nan_left[node]
            node = np.where(go_left, self.left[node], self.right[node])
        return np.asarray(self.value[node].sum(axis=1), dtype=np.float64)

    def predict(self, x: np.ndarray, num_threads: int = 1) -> np.ndarray:
        """P(class 1) per row (binary), or the prediction (regression), as ``Booster.predict``."""
        del num_threads  # one thread always: the signature is the booster's
        raw = self.raw(x)
        return 1.0 / (1.0 + np.exp(-self.sigmoid * raw)) if self.sigmoid else raw


def _fields(block: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in block.splitlines() if "=" in line)


def _depth(left: np.ndarray, right: np.ndarray, roots: np.ndarray) -> int:
    """The most splits on a path from a root to a leaf (a leaf is its own child)."""
    depth, level = 0, roots
    while True:
        below = np.concatenate([left[level], right[level]])
        below = np.unique(below[below != np.concatenate([level, level])])
        if not len(below):
            return depth
        depth, level = depth + 1, below


def load_booster(path: str | Path) -> Any:
    """LightGBM's ``Booster`` for a saved model when LightGBM is installed, else :class:`Trees`."""
    try:
        import lightgbm as lgb
    except ImportError:
        return Trees.load(path)
    return lgb.Booster(model_file=str(path))


def read_errors() -> tuple[type[Exception], ...]:
    """What reading a damaged model raises beyond what :func:`~selflearn.core.artefacts.reading`
    always catches (ValueError, KeyError): :class:`Trees`' IndexError, LightGBM's own error."""
    errors: tuple[type[Exception], ...] = (IndexError,)
    with contextlib.suppress(ImportError):
        import lightgbm as lgb

        errors += (lgb.basic.LightGBMError,)
    return errors


def predictor(booster: Any) -> Any:
    """What scores one request's rows: :class:`FastPredictor` over a LightGBM booster, or the
    :class:`Trees` themselves."""
    return booster if isinstance(booster, Trees) else FastPredictor(booster)
