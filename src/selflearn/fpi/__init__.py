"""Failure point isolation: the first pipeline stage that failed irrecoverably, per turn.

* :mod:`selflearn.fpi.features` -- per-turn trace and session-context features (DuckDB + rapidfuzz).
* :mod:`selflearn.fpi.model` -- :class:`~selflearn.fpi.model.RuleBaseline` (rules over the traces),
  :class:`~selflearn.fpi.model.FpiModel` (LightGBM multiclass trained on simulation truth) and
  :func:`~selflearn.fpi.model.score_fpi` (writes the ``fpi`` signal table).

See ``docs/fpi.md``.
"""
