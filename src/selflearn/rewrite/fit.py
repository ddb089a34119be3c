"""Training the online rewriter from logs: ``selflearn train rewriter``.

>>> from selflearn import Store
>>> from selflearn.rewrite import FitConfig, fit_rewriter
>>> with Store("logs.duckdb", read_only=True) as store:                  # doctest: +SKIP
...     rewriter, report = fit_rewriter(store, FitConfig())
>>> rewriter.save("models/rewriter")                                      # doctest: +SKIP

1. The logs are read with their signals (``selflearn signals`` must have run): what was said,
   what the NLU made of it, P(defect), rephrase links. Simulation truth is never read.
2. Households are split into ``folds``. For each fold, the global knowledge is built from the
   *other* folds, and the fold's households are replayed in arrival order through a rewriter
   with that knowledge and a fresh personal layer: every request the rewriter would consider
   (not one that works already) yields its candidates and their features, computed by exactly
   the code that serves requests; then the turn is observed by the personal layer. So every
   training row looks like a request from a household the global layer has never seen, made
   with only the household's earlier turns known -- as in deployment.
3. Labels: a candidate is positive when the request failed and the user's own successful
   reformulation (followed along rephrase links) meant what the candidate means.
4. The ranker is trained on the rows of most households and its threshold calibrated on the
   rest, for an estimated win/loss ratio of ``target_ratio`` (unknown outcomes count as losses).
5. The final global knowledge is built from all households.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from selflearn.assistant.home import Home
from selflearn.errors import DataError
from selflearn.mining.table import RewriteTable
from selflearn.rewrite.embed import StaticEmbedder
from selflearn.rewrite.features import FEATURES, featurize
from selflearn.rewrite.knowledge import DelexCache, Knowledge, KnowledgeConfig, build_knowledge
from selflearn.rewrite.logs import LogTurn, chains, read_homes, read_log, signature
from selflearn.rewrite.ranker import Calibration, Ranker, calibrate, outcomes
from selflearn.rewrite.rewriter import RequestContext, Rewriter, RewriterConfig
from selflearn.store import Store


@dataclass(frozen=True)
class FitConfig:
    """How the rewriter is trained."""

    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)
    folds: int = 3
    """Household folds for out-of-fold training rows."""
    calibration_share: float = 0.25
    """Share of households whose rows calibrate the threshold instead of training the ranker."""
    target_ratio: float = 20.0
    """Estimated wins per estimated loss the threshold is calibrated for."""
    sensitive_margin: float = 0.1
    """The sensitive-intent threshold is the calibrated one plus this (at most 0.99)."""
    seed: int = 0


@dataclass
class FitReport:
    """What training saw and chose."""

    turns: int = 0
    households: int = 0
    queries: int = 0
    rows: int = 0
    positives: int = 0
    train_rows: int = 0
    calibration_queries: int = 0
    calibration: dict[str, Any] = field(default_factory=dict)
    curve: list[dict[str, Any]] = field(default_factory=list)
    knowledge: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class _Rows:
    x: list[np.ndarray] = field(default_factory=list)
    y: list[np.ndarray] = field(default_factory=list)
    household: list[str] = field(default_factory=list)
    """Household of each query (one per entry of ``x``)."""
    outcome: list[np.ndarray] = field(default_factory=list)
    """Per query, per candidate: 1 win, -1 loss, 0 unknown, 2 harmless."""


def _fold(household: str, folds: int, seed: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{household}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % folds


def _labels(
    turn: LogTurn, fixed: LogTurn | None, delex: DelexCache, sigs: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate signature: the 0/1 label and the estimated outcome of rewriting to it."""
    y = np.zeros(len(sigs), dtype=np.int8)
    outcome = np.zeros(len(sigs), dtype=np.int8)
    if not turn.defect:
        own = signature(turn.intent, turn.slots, delex(turn))
        for i, sig in enumerate(sigs):
            outcome[i] = 2 if sig == own else -1
        return y, outcome
    if fixed is None:
        return y, outcome  # unknown: nobody's retry worked
    good = signature(fixed.intent, fixed.slots, delex(fixed))
    for i, sig in enumerate(sigs):
        if sig == good:
            y[i], outcome[i] = 1, 1
        else:
            outcome[i] = -1
    return y, outcome


def training_rows(
    turns: list[LogTurn],
    knowledge: Knowledge,
    homes: dict[str, Home],
    embedder: StaticEmbedder,
    intents: dict[str, int],
    households: set[str],
    rows: _Rows,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Replay ``households`` of ``turns`` (ordered by household and time) through a rewriter
    with ``knowledge`` and a fresh personal layer; append the candidate rows. Returns queries."""
    rewriter = Rewriter(knowledge, None, None, embedder, RewriterConfig(), homes)
    delex = DelexCache(homes)
    fixed_of = {failed.turn_id: fixed for failed, fixed in chains(turns)}
    queries = 0
    for t in turns:
        if t.household_id not in households:
            continue
        if progress is not None:
            progress(1)
        if t.rewritten is None:
            ctx = RequestContext(t.household_id, t.user_id, homes.get(t.household_id), t.area, t.ts)
            prep = rewriter.prepare(t.said, ctx)
            if prep is not None and rewriter.works_already(prep) is None:
                query, hood, cands = rewriter.retrieve(prep, ctx)
                if cands:
                    x = featurize(query, cands, knowledge, hood, prep.memory, intents)
                    y, outcome = _labels(t, fixed_of.get(t.turn_id), delex, [c.signature for c in cands])
                    rows.x.append(x)
                    rows.y.append(y)
                    rows.outcome.append(outcome)
                    rows.household.append(t.household_id)
                    queries += 1
        rewriter.personal.observe(t, homes.get(t.household_id))
    return queries


def fit_rewriter(
    store: Store,
    config: FitConfig | None = None,
    embedder: StaticEmbedder | None = None,
    table: RewriteTable | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[Rewriter, FitReport]:
    """Train the online rewriter from ``store`` (see the module docstring)."""
    config = config or FitConfig()
    report = FitReport()
    clock = time.perf_counter()
    turns = read_log(store, config.knowledge.defect_threshold)
    homes = read_homes(store)
    if not turns:
        raise DataError("the store holds no turns to learn from")
    households = sorted({t.household_id for t in turns})
    if len(households) < 2 * config.folds:
        raise DataError(
            f"{len(households)} households are too few for {config.folds} folds; simulate or log more"
        )
    report.turns, report.households = len(turns), len(households)
    report.seconds["read"] = round(time.perf_counter() - clock, 2)
    embedder = embedder or StaticEmbedder.load()

    clock = time.perf_counter()
    full = build_knowledge(turns, homes, embedder, config.knowledge)
    intents = {name: i for i, name in enumerate(sorted({p.intent for p in full.patterns if p.intent}))}
    report.knowledge = full.metadata
    report.seconds["knowledge"] = round(time.perf_counter() - clock, 2)

    clock = time.perf_counter()
    rows = _Rows()
    done = 0
    for fold in range(config.folds):
        held = {h for h in households if _fold(h, config.folds, config.seed) == fold}
        knowledge = build_knowledge(turns, homes, embedder, config.knowledge, exclude_households=held)

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None and done % 2000 == 0:
                progress("replay", done, len(turns))

        report.queries += training_rows(turns, knowledge, homes, embedder, intents, held, rows, tick)
    report.seconds["replay"] = round(time.perf_counter() - clock, 2)
    if not rows.x:
        raise DataError("no request in the logs could be rewritten: more logs with failures are needed")

    clock = time.perf_counter()
    calib_households = {
        h for h in households if _fold(h, 1000, config.seed + 1) < 1000 * config.calibration_share
    }
    is_cal = np.array([h in calib_households for h in rows.household])
    x_train = np.concatenate([x for x, c in zip(rows.x, is_cal, strict=True) if not c])
    y_train = np.concatenate([y for y, c in zip(rows.y, is_cal, strict=True) if not c])
    report.rows = int(sum(len(y) for y in rows.y))
    report.positives = int(sum(int(y.sum()) for y in rows.y))
    report.train_rows = len(y_train)
    ranker = Ranker(intents=intents).fit(x_train, y_train)

    best, outcome = [], []
    for x, o, c in zip(rows.x, rows.outcome, is_cal, strict=True):
        if not c:
            continue
        scores = ranker.predict(x)
        i = int(np.argmax(scores))
        best.append(scores[i])
        outcome.append(o[i])
    best_a, outcome_a = np.array(best), np.array(outcome)
    report.calibration_queries = len(best_a)
    chosen: Calibration = calibrate(best_a, outcome_a, config.target_ratio)
    ranker.threshold = chosen.threshold
    ranker.sensitive_threshold = min(chosen.threshold + config.sensitive_margin, 0.99)
    report.calibration = {**asdict(chosen), "ratio": chosen.ratio, "target_ratio": config.target_ratio}
    for t in (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, chosen.threshold):
        cal = outcomes(best_a, outcome_a, t)
        report.curve.append({**asdict(cal), "ratio": cal.ratio})
    report.seconds["ranker"] = round(time.perf_counter() - clock, 2)
    ranker.meta_.update({"fit": {k: v for k, v in asdict(report).items() if k not in ("curve",)}})
    rewriter = Rewriter(full, ranker, table, embedder, RewriterConfig(), homes)
    return rewriter, report


__all__ = ["FEATURES", "FitConfig", "FitReport", "fit_rewriter", "training_rows"]
