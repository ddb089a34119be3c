"""Friction signals: did a turn fail the user, and which earlier turn does an utterance rephrase?

* :mod:`selflearn.signals.features` – per-turn session context computed in DuckDB (gaps, what came
  before and after, explicit feedback), shared by the detectors.
* :mod:`selflearn.signals.defect` – defect detection: a transparent heuristic and a gradient-boosted
  model trained on weak labels (never on simulation truth).
* :mod:`selflearn.signals.rephrase` – contextual rephrase detection: a pairwise baseline and a
  fine-tuned MiniLM that points at the reformulated turn.
"""
