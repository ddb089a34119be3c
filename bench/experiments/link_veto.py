"""Experiment, measured and not built: should a per-turn intent classifier veto rephrase links?

    python bench/labels.py --rephrase-model models/rephrase   # scores and labels the stores first
    python bench/experiments/link_veto.py

Goal segmentation follows the rephrase detector's links, and on noisy speech most of its errors
are a new request linked to the failed one before it ("date please" -> "turn off my space
heater"). The question: veto a link when the non-contextual per-turn classifier (trained on the
training population's rule labels, logs only) gives the earlier turn's words less than ``tau``
probability of the later turn's intent (its label's, else the classifier's own guess)? Per
population and ``tau``: the links used (P(rephrase) >= 0.5), how many join one true goal, and how
many wrong and right links the veto would cut (against simulation truth). A veto pays only when
it cuts more wrong links than right ones.
"""

from __future__ import annotations

import numpy as np
from label_stores import CACHE, arguments

from selflearn.core.store import Store
from selflearn.labels.model import _FIXED_OUTPUTS, LabelModelConfig, PerTurnLabeller, _softmax
from selflearn.labels.windows import DialogueTurns


def intent_probabilities(model: PerTurnLabeller, store: Store) -> dict[str, np.ndarray]:
    turns = DialogueTurns.read(store)
    out = model._outputs(model._prepare(turns))
    p = _softmax(out[:, _FIXED_OUTPUTS:])
    return {turn_id: p[i] for i, turn_id in enumerate(turns.turn_ids)}


def used_links(store: Store) -> list[dict[str, object]]:
    """Links the rules follow, with the later turn's label and both turns' true goals."""
    rows: list[dict[str, object]] = store.query(
        "SELECT r.turn_id, r.rephrase_of, l.intent, sa.goal.goal_id AS earlier_goal, "
        "sb.goal.goal_id AS later_goal FROM rephrases r JOIN labels l USING (turn_id) "
        "JOIN sim_truth sb ON sb.turn_id = r.turn_id JOIN sim_truth sa ON sa.turn_id = r.rephrase_of "
        "WHERE r.p_rephrase >= 0.5"
    ).to_pylist()
    return rows


def main() -> None:
    args = arguments(__doc__, taus="0.005,0.01,0.02,0.05,0.1")
    model = PerTurnLabeller(LabelModelConfig(seed=0))
    with Store(args.train, read_only=True) as store:
        model.fit(store, store_name=str(args.train))
    index = {intent: k for k, intent in enumerate(model.intents_)}
    print("| population | tau | links | right links | wrong links cut | right links cut |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.populations.split(","):
        with Store(CACHE / f"{name}.duckdb", read_only=True) as store:
            p = intent_probabilities(model, store)
            links = used_links(store)
        right = [r["earlier_goal"] == r["later_goal"] for r in links]
        later = [
            str(r["intent"])
            if r["intent"] is not None
            else model.intents_[int(np.argmax(p[str(r["turn_id"])]))]
            for r in links
        ]
        score = np.array(
            [
                p[str(r["rephrase_of"])][index[intent]] if intent in index else 1.0
                for r, intent in zip(links, later, strict=True)
            ]
        )
        for tau in args.taus:
            cut = score < tau
            wrong_cut = int(sum(c and not ok for c, ok in zip(cut, right, strict=True)))
            right_cut = int(sum(c and ok for c, ok in zip(cut, right, strict=True)))
            print(f"| {name} | {tau:g} | {len(links):,} | {sum(right):,} | {wrong_cut} | {right_cut} |")


if __name__ == "__main__":
    main()
