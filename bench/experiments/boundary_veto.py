"""Experiment: should the contextual label model's boundary head overrule the rules' goals?

    python bench/labels.py --rephrase-model models/rephrase   # labels the stores with the rules first
    python bench/experiments/boundary_veto.py

The rules segment goals by the rephrase detector's links (goal segmentation F1 0.938 on held-out
noisy speech, target 0.95). The contextual label model (turn encoder + dialogue transformer,
contrastive pretraining, trained on the training population's rule labels, logs only) also
predicts per turn ``p_boundary``, that the turn starts a new goal, from its neighbours. Its own
segmentation is worse (0.908), but it may know where the rules are wrong. Two overrides, each swept
over its threshold:

- *split*: a turn the rules join to the goal before it starts a new goal when ``p_boundary >= tau``;
- *join*: a turn the rules start a goal with continues the goal of its device's previous turn when
  ``p_boundary <= 1 - tau``.

Per population and ``tau``: how many turns each override changes, how many of them it makes right
and wrong (against simulation truth), and the segmentation F1 after it. The sweep reads truth on
the evaluation populations, so no threshold here is a tuned operating point: the question is
whether any threshold pays on every population.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

# bench/labels.py's helpers, importable as `python bench/labels.py` imports its neighbours
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from label_stores import CACHE, arguments

from labels import aligned, f1, read_truth
from selflearn.core.store import Store
from selflearn.labels.model import LabelModel, LabelModelConfig
from selflearn.labels.windows import DialogueTurns


def main() -> None:
    args = arguments(__doc__, taus="0.5,0.7,0.8,0.9,0.95,0.98,0.99")
    model = LabelModel(LabelModelConfig(seed=0))
    with Store(args.train, read_only=True) as store:
        model.fit(store, store_name=str(args.train))
    print("| population | override | tau | turns changed | made right | made wrong | segmentation F1 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in args.populations.split(","):
        with Store(CACHE / f"{name}.duckdb", read_only=True) as store:
            truth = read_truth(store)
            rules = aligned(store.query("SELECT * FROM labels"), truth, store, with_slots=False)
            proba = model.predict_proba(store).select(["turn_id", "p_boundary"]).to_pylist()
            has_previous = _has_previous(store, truth.turn_ids)
        p_of = {str(r["turn_id"]): float(r["p_boundary"]) for r in proba}
        p = np.array([p_of.get(t, 0.5) for t in truth.turn_ids])
        base = rules.boundary
        print(f"| {name} | none (the rules) | - | 0 | 0 | 0 | {f1(truth.boundary, base):.3f} |")
        for override in ("split", "join"):
            for tau in args.taus:
                # join: a goal the rules started, unless the device said nothing before it
                change = ~base & (p >= tau) if override == "split" else base & (p <= 1 - tau) & has_previous
                after = base ^ change
                right = int((change & (after == truth.boundary)).sum())
                wrong = int(change.sum()) - right
                print(
                    f"| {name} | {override} | {tau:g} | {int(change.sum()):,} | {right:,} | {wrong:,} "
                    f"| {f1(truth.boundary, after):.3f} |"
                )


def _has_previous(store: Store, ids: list[str]) -> np.ndarray:
    """Whether each turn has an earlier turn on its device within the label model's window."""
    turns = DialogueTurns.read(store)
    previous = turns.windows(1, LabelModelConfig().window_s)[:, 0]
    has = {t: bool(previous[i] >= 0) for i, t in enumerate(turns.turn_ids)}
    return np.array([has.get(t, False) for t in ids])


if __name__ == "__main__":
    main()
