"""Would a recognition alternative have worked? The ASR n-best run through the reference NLU.

A turn's ASR trace keeps the recogniser's other hypotheses. When the top one failed but an
alternative is understood and executes in the same home, the words the user said were probably
fine and recognition picked the wrong ones (``asr``); when no alternative works either, the
phrasing itself is the likelier culprit (``nlu``). This reruns the alternatives through the
reference assistant's NLU, entity resolution and result stages on a fresh copy of the home as
configured in the ``homes`` table (the state of the home at the time is not logged, so a few
state-dependent results differ). Nothing is written and nothing reads simulation truth.

The reference assistant is Home Assistant's pipeline (:class:`selflearn.assistant.pipeline.
Assistant`); for logs of another assistant these features are still a fair proxy of "is this
alternative a well-formed request in this home", and they are null for turns whose home is not
in the ``homes`` table or whose trace has no alternatives.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa

from selflearn.core.store import Store

NBEST_FEATURES: tuple[str, ...] = (
    "alt_success",
    "alt_matched",
    "alt_success_conf_ratio",
    "alt_success_rank",
    "alt_success_other_intent",
    "alt_n",
)
"""Whether any n-best alternative succeeds (understood, resolved and executed), whether any is
understood at all, the first successful alternative's confidence relative to the top hypothesis,
its rank (1 = second hypothesis), whether its intent differs from the logged one, and the number
of alternatives. Null without alternatives or without the home's configuration."""

MAX_ALTERNATIVES = 2
"""Alternatives tried per turn (the second and third hypotheses)."""

_NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)
"""Clock for rerunning alternatives (only timers and time questions read it)."""


@lru_cache(maxsize=1)
def _assistant() -> Any:
    """The reference pipeline with an exact recogniser, shared by the process so that its NLU
    result cache serves repeated scoring of the same requests."""
    from selflearn.assistant.asr import ExactASR
    from selflearn.assistant.pipeline import Assistant, AssistantConfig

    return Assistant(AssistantConfig(asr="exact"), asr=ExactASR())


def nbest_features(store: Store, table: pa.Table) -> dict[str, np.ndarray]:
    """:data:`NBEST_FEATURES` for the rows of the feature query's output ``table`` (needs its
    ``household_id``, ``device_area``, ``asr_alt_texts``, ``asr_alt_confs`` and ``nlu_intent``
    columns); the homes come from ``store``."""
    from selflearn.assistant.devices import HomeState
    from selflearn.core.home import Home

    n = table.num_rows
    out = np.full((n, len(NBEST_FEATURES)), np.nan)
    if n == 0:
        return {name: out[:, j] for j, name in enumerate(NBEST_FEATURES)}
    try:
        rows = store.query("SELECT home_id, config FROM homes").to_pylist()
    except Exception:  # no homes table: nothing to run the alternatives against
        rows = []
    states: dict[str, HomeState] = {}
    for row in rows:
        try:
            home = Home.from_dict({**json.loads(row["config"]), "home_id": row["home_id"]})
        except (ValueError, TypeError, KeyError):
            continue
        states[str(row["home_id"])] = HomeState.initial(home)
    if not states:
        return {name: out[:, j] for j, name in enumerate(NBEST_FEATURES)}
    assistant = _assistant()
    households = table.column("household_id").to_pylist()
    areas = table.column("device_area").to_pylist()
    alt_texts = table.column("asr_alt_texts").to_pylist()
    alt_confs = table.column("asr_alt_confs").to_pylist()
    intents = table.column("nlu_intent").to_pylist()
    for i in range(n):
        state = states.get(str(households[i]))
        texts = alt_texts[i] or []
        if state is None or len(texts) < 2:
            continue
        confs = alt_confs[i] or []
        area = state.home.area_named(areas[i]) if areas[i] else None
        context = area.area_id if area else None
        row = out[i]
        row[:] = (0.0, 0.0, np.nan, np.nan, 0.0, float(len(texts) - 1))
        for rank, text in enumerate(texts[1 : 1 + MAX_ALTERNATIVES], start=1):
            if not text:
                continue
            nlu, _, result, _ = assistant.run_text(
                str(text), state.copy(), _NOW, context, explain_failures=False
            )
            if nlu.trace.matched:
                row[1] = 1.0
            if result.status == "success":
                top = float(confs[0] or 0.0) if confs else 0.0
                alt = float(confs[rank] or 0.0) if rank < len(confs) else 0.0
                row[0] = 1.0
                row[2] = alt / max(top, 1e-6)
                row[3] = float(rank)
                row[4] = float(nlu.trace.intent != intents[i])
                break
    return {name: out[:, j] for j, name in enumerate(NBEST_FEATURES)}
