"""Every example in a docstring runs (``>>>``), except those marked ``# doctest: +SKIP`` because
they need files a test does not have (a store of logs, a trained model folder)."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

MODULES = sorted(
    ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
    for path in (SRC / "selflearn").rglob("*.py")
    if ">>>" in path.read_text(encoding="utf-8")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_the_examples_that_run_are_most_of_them() -> None:
    """Guard against marking everything +SKIP: at least these modules' examples really run."""
    finder = doctest.DocTestFinder()
    running = set()
    for name in MODULES:
        for test in finder.find(importlib.import_module(name)):
            if any(not ex.options.get(doctest.SKIP) for ex in test.examples):
                running.add(name)
    assert {
        "selflearn.assistant.pipeline",
        "selflearn.core.artefacts",
        "selflearn.core.hooks",
        "selflearn.core.text",
    } <= running
