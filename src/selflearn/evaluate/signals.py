"""Friction signals for an evaluation store, as a user would compute them (``selflearn signals``).

Benchmarks that learn from simulated logs first score them the way a deployment would: rephrase
links from the contextual model when one is given (else the pairwise lexical baseline), then
P(defect) from the heuristic. Simulation truth is never read here.
"""

from __future__ import annotations

import time
from pathlib import Path

from selflearn.core.store import Store
from selflearn.signals.defect import score_defects
from selflearn.signals.rephrase import ContextualRephraseDetector, PairwiseRephraseBaseline, score_rephrases


def rephrase_detector(
    model: Path | None,
) -> tuple[ContextualRephraseDetector | PairwiseRephraseBaseline, str]:
    """The contextual model saved in ``model`` when it exists, else the pairwise lexical
    baseline; and its name for a report."""
    if model is not None and model.exists():
        return ContextualRephraseDetector.load(model), f"contextual {model}"
    return PairwiseRephraseBaseline("lexical"), "pairwise lexical"


def score_signals(store: Store, rephrase_model: Path | None = None) -> str:
    """Write the store's ``rephrases`` and ``defects`` tables; returns what scored them and how long."""
    started = time.perf_counter()
    detector, name = rephrase_detector(rephrase_model)
    score_rephrases(store, detector)
    score_defects(store)
    return f"{name}, {time.perf_counter() - started:.0f} s"


def signals_are_scored(store: Store) -> bool:
    """Whether every turn of ``store`` has a defect score and some turn a rephrase row."""
    scored = store.rows("SELECT (SELECT count(*) FROM defects) AS d, (SELECT count(*) FROM rephrases) AS r")[
        0
    ]
    return bool(scored["d"] == store.count("turns") and scored["r"])
