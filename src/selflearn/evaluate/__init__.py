"""Evaluation: named populations, replays with and without a learner, A/B scoring against
simulation truth (which no learner ever reads), cached simulations and result files.

* :mod:`~selflearn.evaluate.populations` -- the named populations every benchmark uses;
* :mod:`~selflearn.evaluate.cache` -- simulated stores and folders built once, rebuilt when the
  simulator, the ASR channel or the population changed;
* :mod:`~selflearn.evaluate.signals` -- friction signals as a user computes them;
* :mod:`~selflearn.evaluate.replay` -- scoring one replayed arm (:class:`ArmStats`);
* :mod:`~selflearn.evaluate.ab` -- replaying a population per arm (control, rewriter, table);
* :mod:`~selflearn.evaluate.results` -- figures as JSON for ``docs/benchmarks.md``.

``selflearn evaluate`` is the command line on top (``selflearn evaluate --help``).
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from selflearn.core.lazy import lazy_exports as _lazy_exports

if _TYPE_CHECKING:
    from selflearn.evaluate.ab import ARMS, Replay
    from selflearn.evaluate.populations import POPULATIONS, Population, population
    from selflearn.evaluate.replay import ArmStats, score_arm
    from selflearn.evaluate.results import write_results

_LAZY = {
    "ARMS": "selflearn.evaluate.ab",
    "Replay": "selflearn.evaluate.ab",
    "POPULATIONS": "selflearn.evaluate.populations",
    "Population": "selflearn.evaluate.populations",
    "population": "selflearn.evaluate.populations",
    "ArmStats": "selflearn.evaluate.replay",
    "score_arm": "selflearn.evaluate.replay",
    "write_results": "selflearn.evaluate.results",
}

__getattr__, __dir__ = _lazy_exports(__name__, _LAZY, globals())

__all__ = [
    "ARMS",
    "POPULATIONS",
    "ArmStats",
    "Population",
    "Replay",
    "population",
    "score_arm",
    "write_results",
]
