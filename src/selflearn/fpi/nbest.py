"""Would a recognition alternative have worked? The ASR n-best run through the reference NLU.

A turn's ASR trace keeps the recogniser's other hypotheses. When the top one failed but an
alternative is understood and executes in the same home, the words the user said were probably
fine and recognition picked the wrong ones (``asr``); when no alternative works either, the
phrasing itself is the likelier culprit (``nlu``). This reruns the alternatives through the
reference assistant's NLU, entity resolution and result stages on a fresh copy of the home as
configured in the ``homes`` table (the state of the home at the time is not logged, so a few
state-dependent results differ). Nothing is written and nothing reads simulation truth.

A rerun is a pure function of the home's configuration, the satellite's area and the text, so
each distinct one runs once (:class:`Outcome`, remembered per process in :data:`OUTCOMES`), in
rounds (every turn's first alternative, then the second where the first did not succeed), and
with ``workers > 1`` large rounds are shared among forked processes. :func:`nbest_features_per_turn`
is the plain loop it replaces, kept as the reference the tests and ``bench/fpi.py`` compare with;
it also runs the gazetteer's fuzzy searches with the gazetteer's own code (a separate assistant,
``HomeAssistantNlu(fast_fuzzy=False)``), so the comparison covers the NLU's faster searches too.

The reference assistant is Home Assistant's pipeline (:class:`selflearn.assistant.pipeline.
Assistant`); for logs of another assistant these features are still a fair proxy of "is this
alternative a well-formed request in this home", and they are null for turns whose home is not
in the ``homes`` table or whose trace has no alternatives.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from selflearn.core.store import Store

if TYPE_CHECKING:
    from selflearn.assistant.devices import HomeState

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

PARALLEL_MIN_RERUNS = 2000
"""Fewest distinct reruns in a round worth forking worker processes for (a few seconds of work)."""

OUTCOMES_KEPT = 200_000
"""Rerun outcomes remembered per process (the oldest are forgotten first)."""

_CHUNK = 64
"""Reruns per task handed to a worker process."""

_NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)
"""Clock for rerunning alternatives (only timers and time questions read it)."""


@dataclass(frozen=True)
class Outcome:
    """What rerunning one text did: understood at all, executed successfully, the intent."""

    matched: bool
    success: bool
    intent: str | None


RerunKey = tuple[str, str | None, str]
"""(home fingerprint, satellite area id, text): everything a rerun depends on."""

OUTCOMES: OrderedDict[RerunKey, Outcome] = OrderedDict()
"""Outcomes of the reruns done in this process, by :data:`RerunKey`."""


@lru_cache(maxsize=2)
def _assistant(plain: bool = False) -> Any:
    """The reference pipeline with an exact recogniser, shared by the process so that its NLU
    result cache serves repeated scoring of the same requests. ``plain``: one whose gazetteer
    searches run the gazetteer's own code (for :func:`nbest_features_per_turn`)."""
    from selflearn.assistant.asr import ExactASR
    from selflearn.assistant.nlu import HomeAssistantNlu
    from selflearn.assistant.pipeline import Assistant, AssistantConfig

    config = AssistantConfig(asr="exact")
    nlu = HomeAssistantNlu(config.nlu, fast_fuzzy=not plain)
    return Assistant(config, asr=ExactASR(), nlu=nlu)


def _rerun(state: HomeState, context: str | None, text: str, plain: bool = False) -> Outcome:
    """Run ``text`` through the reference assistant on a fresh copy of the home (``plain``: the
    one with the gazetteer's own fuzzy searches)."""
    nlu, _, result, _ = _assistant(plain).run_text(text, state.copy(), _NOW, context, explain_failures=False)
    return Outcome(bool(nlu.trace.matched), result.status == "success", nlu.trace.intent)


Rerun = tuple[str, str | None, str]
"""(home id, satellite area id, text): one rerun to do."""

_worker_states: dict[str, HomeState] = {}
"""The homes of a forked worker process (set by :func:`_start_worker`)."""


def _start_worker(states: dict[str, HomeState]) -> None:
    _worker_states.clear()
    _worker_states.update(states)


def _rerun_chunk(chunk: list[Rerun]) -> list[Outcome]:
    return [_rerun(_worker_states[home_id], context, text) for home_id, context, text in chunk]


def _home_states(store: Store) -> dict[str, HomeState]:
    """Initial state of every home the ``homes`` table configures, by home id."""
    from selflearn.assistant.devices import HomeState
    from selflearn.core.home import Home

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
    return states


@dataclass(frozen=True)
class _Turns:
    """The columns of the feature query the n-best features read."""

    households: list[Any]
    areas: list[Any]
    alt_texts: list[Any]
    alt_confs: list[Any]
    intents: list[Any]

    @classmethod
    def of(cls, table: pa.Table) -> _Turns:
        def column(name: str) -> list[Any]:
            values: list[Any] = table.column(name).to_pylist()
            return values

        names = ("household_id", "device_area", "asr_alt_texts", "asr_alt_confs", "nlu_intent")
        return cls(*(column(name) for name in names))

    def context(self, i: int, state: HomeState) -> str | None:
        """The satellite's area id of row ``i`` in its home."""
        area = state.home.area_named(self.areas[i]) if self.areas[i] else None
        return area.area_id if area else None


def _empty(n: int) -> np.ndarray:
    return np.full((n, len(NBEST_FEATURES)), np.nan)


def _columns(out: np.ndarray) -> dict[str, np.ndarray]:
    return {name: out[:, j] for j, name in enumerate(NBEST_FEATURES)}


def _record(row: np.ndarray, outcome: Outcome, rank: int, confs: Sequence[Any], intent: Any) -> bool:
    """Fold alternative ``rank``'s outcome into the turn's ``row``; True when it succeeded."""
    if outcome.matched:
        row[1] = 1.0
    if not outcome.success:
        return False
    top = float(confs[0] or 0.0) if confs else 0.0
    alt = float(confs[rank] or 0.0) if rank < len(confs) else 0.0
    row[0] = 1.0
    row[2] = alt / max(top, 1e-6)
    row[3] = float(rank)
    row[4] = float(outcome.intent != intent)
    return True


def nbest_features(store: Store, table: pa.Table, workers: int = 1) -> dict[str, np.ndarray]:
    """:data:`NBEST_FEATURES` for the rows of the feature query's output ``table`` (needs its
    ``household_id``, ``device_area``, ``asr_alt_texts``, ``asr_alt_confs`` and ``nlu_intent``
    columns); the homes come from ``store``. Each distinct rerun runs once; with ``workers > 1``
    a round of at least :data:`PARALLEL_MIN_RERUNS` is shared among that many processes. The
    result equals :func:`nbest_features_per_turn`'s."""
    n = table.num_rows
    out = _empty(n)
    states = _home_states(store) if n else {}
    if not states:
        return _columns(out)
    turns = _Turns.of(table)
    pending: list[tuple[int, str, str | None]] = []
    for i in range(n):
        home_id = str(turns.households[i])
        state = states.get(home_id)
        if state is None or len(turns.alt_texts[i] or []) < 2:
            continue
        out[i] = (0.0, 0.0, np.nan, np.nan, 0.0, float(len(turns.alt_texts[i]) - 1))
        pending.append((i, home_id, turns.context(i, state)))
    for rank in range(1, 1 + MAX_ALTERNATIVES):
        wanted: dict[RerunKey, Rerun] = {}
        jobs: list[tuple[int, RerunKey]] = []
        for i, home_id, context in pending:
            texts = turns.alt_texts[i]
            if rank >= len(texts) or not texts[rank]:
                continue
            key = (states[home_id].home.fingerprint, context, str(texts[rank]))
            wanted.setdefault(key, (home_id, context, key[2]))
            jobs.append((i, key))
        outcomes = _outcomes(wanted, states, workers)
        succeeded = {
            i
            for i, key in jobs
            if _record(out[i], outcomes[key], rank, turns.alt_confs[i] or [], turns.intents[i])
        }
        pending = [p for p in pending if p[0] not in succeeded]
    return _columns(out)


def _outcomes(
    wanted: dict[RerunKey, Rerun], states: dict[str, HomeState], workers: int
) -> dict[RerunKey, Outcome]:
    """Outcome of every wanted rerun: remembered ones from :data:`OUTCOMES`, the others run
    here or, when there are enough of them, in ``workers`` forked processes."""
    found = {key: OUTCOMES[key] for key in wanted if key in OUTCOMES}
    missing = sorted((key for key in wanted if key not in found), key=lambda k: (k[0], k[1] or "", k[2]))
    forking = "fork" in multiprocessing.get_all_start_methods()
    if workers > 1 and len(missing) >= PARALLEL_MIN_RERUNS and forking:
        reruns = [wanted[key] for key in missing]  # grouped by home: each worker switches homes rarely
        chunks = [reruns[s : s + _CHUNK] for s in range(0, len(reruns), _CHUNK)]
        # The first chunk runs here: it also builds the NLU's lazy parts, which the workers inherit.
        _start_worker(states)
        results = _rerun_chunk(chunks[0])
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers, initializer=_start_worker, initargs=(states,)) as pool:
            results += [outcome for done in pool.imap(_rerun_chunk, chunks[1:]) for outcome in done]
        _worker_states.clear()
    else:
        results = [
            _rerun(states[home_id], context, text) for home_id, context, text in (wanted[k] for k in missing)
        ]
    for key, outcome in zip(missing, results, strict=True):
        found[key] = OUTCOMES[key] = outcome
    while len(OUTCOMES) > OUTCOMES_KEPT:
        OUTCOMES.popitem(last=False)
    return found


def forget() -> None:
    """Forget every remembered outcome and the reference assistant with its NLU result cache
    (a cold start, for timing and for comparing the two paths)."""
    OUTCOMES.clear()
    _assistant.cache_clear()


def default_workers() -> int:
    """Worker processes for reruns by default: the cores this process may use, at most 2."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(2, cores))


def nbest_features_per_turn(store: Store, table: pa.Table) -> dict[str, np.ndarray]:
    """:func:`nbest_features` the plain way: every turn's alternatives rerun in turn, in this
    process, nothing remembered but the NLU's own cache, with the gazetteer's own fuzzy searches
    (the reference for the tests and ``bench/fpi.py``'s identity check; a few hundred turns per
    second)."""
    n = table.num_rows
    out = _empty(n)
    states = _home_states(store) if n else {}
    if not states:
        return _columns(out)
    turns = _Turns.of(table)
    for i in range(n):
        state = states.get(str(turns.households[i]))
        texts = turns.alt_texts[i] or []
        if state is None or len(texts) < 2:
            continue
        context = turns.context(i, state)
        out[i] = (0.0, 0.0, np.nan, np.nan, 0.0, float(len(texts) - 1))
        for rank, text in enumerate(texts[1 : 1 + MAX_ALTERNATIVES], start=1):
            if not text:
                continue
            outcome = _rerun(state, context, str(text), plain=True)
            if _record(out[i], outcome, rank, turns.alt_confs[i] or [], turns.intents[i]):
                break
    return _columns(out)
