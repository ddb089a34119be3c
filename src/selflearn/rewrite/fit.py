"""Training the online rewriter from logs: ``selflearn train rewriter``.

>>> from selflearn import Rewriter, Store
>>> from selflearn.rewrite import FitConfig
>>> with Store("logs.duckdb", read_only=True) as store:                  # doctest: +SKIP
...     rewriter = Rewriter(training=FitConfig()).fit(store)
>>> rewriter.save("models/rewriter")                                      # doctest: +SKIP

:meth:`selflearn.rewrite.Rewriter.fit` calls :func:`train`, which does this:

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
4. The ranker's threshold is calibrated by cross-fitting (``calibration_folds``): each fold of
   households is scored by a ranker trained on the other folds, and the threshold is the lowest
   one whose estimated win/loss ratio over all those scores reaches ``target_ratio`` with at
   least 20 estimated wins (:func:`selflearn.rewrite.ranker.calibrate`; requests whose outcome
   the logs cannot tell -- never fixed, or refusals nobody retried -- are counted apart, not as
   wins or losses), bagged: the median of the thresholds chosen on bootstrap resamples of the
   households (:func:`selflearn.rewrite.ranker.calibrate_bagged`), since where the ratio curve
   runs flat near the target its crossing point jumps with the sample. The rankers that ship are
   those same cross-fitted ones (``cross_fitted``): each household is scored by the one trained
   without it, so the threshold is compared with the scores it was calibrated on.
5. The final global knowledge is built from all households.

The replay folds and the calibration folds are independent: they run in ``workers`` forked
processes (the result is the same for any number of workers; tested).
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from selflearn.core.delex import Delexicalizer
from selflearn.core.embed import StaticEmbedder
from selflearn.core.errors import ConfigError, DataError
from selflearn.core.home import Home
from selflearn.core.hooks import RewriteContext
from selflearn.core.schema import Review
from selflearn.core.store import Store
from selflearn.rewrite.config import RewriterConfig
from selflearn.rewrite.features import ALL_FEATURES, FEATURES, Candidate, featurize
from selflearn.rewrite.knowledge import DelexCache, Knowledge, KnowledgeConfig
from selflearn.rewrite.logs import LogTurn, chains, read_homes, read_log, signature
from selflearn.rewrite.ranker import (
    DECISIONS,
    Ranker,
    calibrate_bagged,
    household_fold,
    outcomes,
    query_row,
)
from selflearn.rewrite.retrieval import Retrieval

if TYPE_CHECKING:  # the home's language loads Home Assistant's matcher: only when training it
    from selflearn.rewrite.home_candidates import HomeCandidates
from selflearn.rewrite.review import Reviews

DEFAULT_TARGET_RATIO = 15.0
"""The calibration target ``selflearn train rewriter`` uses unless told otherwise: the lowest of
20, 15, 12 and 10 at which the ranked layer's right rewrites per wrong one beat the gazetteer
fallback's rescues per wrong action on every subset of a development population (new and logged
phrasings, exact and noisy speech; ``bench/experiments/choose_target.py``, docs/benchmarks.md). A rewriter
less precise than the fallback Home Assistant already ships would turn more "sorry" answers into
wrong actions than that fallback does. Until 2026-11-25 it was 20 (CHANGELOG.md)."""


@dataclass(frozen=True)
class FitConfig:
    """How the rewriter is trained."""

    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)
    folds: int = 3
    """Household folds for out-of-fold training rows."""
    calibration_folds: int = 4
    """Household folds for cross-fitted calibration: each fold's requests are scored by a ranker
    trained on the other folds, and the threshold is calibrated on all those scores."""
    cross_fitted: bool = True
    """Ship the calibration's own rankers (a household is scored by the one trained without its
    fold). False: ship one ranker trained on every household, with the threshold calibrated on
    the cross-fitted scores (what earlier versions shipped; its scores come from another model than
    the one the threshold was calibrated on, see docs/benchmarks.md)."""
    target_ratio: float = DEFAULT_TARGET_RATIO
    """Estimated wins per estimated loss the threshold is calibrated for
    (:data:`DEFAULT_TARGET_RATIO`)."""
    decision: str = "product"
    """Decision rule of the ranker (:data:`selflearn.rewrite.ranker.DECISIONS`): ``product`` =
    meaning x fixable, ``meaning`` = meaning alone; calibrated the same way either way."""
    sensitive_margin: float = 0.1
    """The threshold for sensitive intents is the calibrated one plus this (at most 0.99)."""
    seed: int = 0
    workers: int = 2
    """Cores for the replay and calibration folds, which run in forked processes (one per fold
    while there are at most twice as many folds as this, so the folds finish together); 1: all
    in this process. The trained rewriter does not depend on it (tested)."""
    home_language: bool = False
    """Train the neural rewriter: the home's language is a candidate source
    (:mod:`selflearn.rewrite.home_candidates`) and the ranker reads its features
    (:data:`~selflearn.rewrite.features.HOME_FEATURES`). False: the static rewriter."""
    encoder: str | None = None
    """A trained sentence encoder folder (``selflearn train encoder``) the home's language is
    searched with; None: the static embedder."""

    def __post_init__(self) -> None:
        if self.decision not in DECISIONS:
            raise ConfigError(f"FitConfig.decision must be one of {DECISIONS}, got {self.decision!r}")
        if self.calibration_folds < 2:
            raise ConfigError(f"FitConfig.calibration_folds must be at least 2, got {self.calibration_folds}")
        if self.folds < 2:
            raise ConfigError(f"FitConfig.folds must be at least 2, got {self.folds}")

    @property
    def min_households(self) -> int:
        """Households the logs need for the global layer and the ranker (two per fold)."""
        return 2 * self.folds


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
    reviewed: int = 0
    """Training requests whose candidate labels people's verdicts changed (:func:`apply_reviews`)."""
    calibration: dict[str, Any] = field(default_factory=dict)
    curve: list[dict[str, Any]] = field(default_factory=list)
    knowledge: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class Query:
    """One training request: its candidates' features and what the logs say about it."""

    turn_id: str
    household: str
    x: np.ndarray
    """Candidate feature rows."""
    intents: list[str]
    """Each candidate's intent."""
    labels: np.ndarray
    """1 where the candidate has the signature of the user's successful reformulation."""
    failed: bool
    """The assistant did not succeed (result status), as a caller behind the NLU would know."""
    defect: bool
    """The defect detector's verdict."""
    fix_intent: str | None
    """Intent of the successful reformulation, if the user got there."""
    own_intent: str | None
    """The request's own intent when it worked."""
    text: str = ""
    """The request as the ranker saw it (:attr:`selflearn.rewrite.features.Query.text`)."""
    candidates: tuple[str, ...] = ()
    """Each candidate's text (the pattern filled with the request's values)."""
    reviewed: bool = False
    """People's verdicts set some of ``labels`` (:func:`apply_reviews`): trained on even
    without a logged fix."""
    home: np.ndarray | None = None
    """Which candidates the home's language found (None: the static rewriter's replay)."""

    def outcome(self, best: int) -> int:
        """Estimated outcome of rewriting to candidate ``best``: 1 win, -1 loss, 0 unknown,
        2 harmless (see :class:`~selflearn.rewrite.ranker.Calibration`)."""
        intent = self.intents[best]
        if self.failed and not self.defect:
            return 0  # a refusal nobody retried: out of scope, or given up -- the logs cannot tell
        if not self.defect:
            return 2 if intent == self.own_intent else -1
        if self.fix_intent is None:
            return 0
        if self.home is not None and self.home[best]:
            return 1 if self.labels[best] else -1  # a sentence of the home: its targets must be right
        return 1 if intent == self.fix_intent else -1


T = TypeVar("T")
_FORKED: dict[str, Callable[[int], Any]] = {}


def _forked_call(i: int) -> Any:
    return _FORKED["job"](i)


def _run_folds(
    job: Callable[[int], T],
    n: int,
    workers: int,
    done: Callable[[int], None] | None = None,
    meanwhile: Callable[[], Any] | None = None,
) -> tuple[list[T], Any]:
    """``[job(i) for i in range(n)]`` in forked processes (``n`` of them up to ``2 * workers``,
    else ``workers``), and ``meanwhile()`` in this one while they run. ``job`` may be a
    closure: the children inherit it by forking, and only ``i`` and the results cross between
    processes. ``done(i)`` is called in order as results arrive."""
    if workers <= 1 or n <= 1 or "fork" not in mp.get_all_start_methods():
        results = []
        for i in range(n):
            results.append(job(i))
            if done is not None:
                done(i)
        return results, meanwhile() if meanwhile is not None else None
    _FORKED["job"] = job
    try:
        with mp.get_context("fork").Pool(n if n <= 2 * workers else workers) as pool:
            pending = pool.imap(_forked_call, range(n))
            side = meanwhile() if meanwhile is not None else None
            results = []
            for i, result in enumerate(pending):
                results.append(result)
                if done is not None:
                    done(i)
    finally:
        _FORKED.clear()
    return results, side


def training_queries(
    turns: list[LogTurn],
    knowledge: Knowledge,
    homes: dict[str, Home],
    embedder: StaticEmbedder,
    intents: dict[str, int],
    households: set[str],
    progress: Callable[[int], None] | None = None,
    without_personal: set[str] | None = None,
    home: HomeCandidates | None = None,
) -> list[Query]:
    """Replay ``households`` of ``turns`` (ordered by household and time) through a rewriter
    with ``knowledge`` and a fresh personal layer; one :class:`Query` per request it would
    consider. Requests the caller would report as failed skip the works-already gate, as they
    do when rewriting behind the NLU. Households in ``without_personal`` are replayed with the
    personal layer off, so the ranker also learns to decide without it. With ``home`` (the home's
    language), its candidates are replayed too; one of them is labelled right when it acts on
    what the user's successful reformulation acted on, whatever names the request said."""
    with_personal = Retrieval(RewriterConfig(), embedder, knowledge, homes=dict(homes))
    global_only = Retrieval(RewriterConfig(personal=False), embedder, knowledge, homes=dict(homes))
    with_personal.home = global_only.home = home
    delex = DelexCache(homes)
    fixed_of = {failed.turn_id: fixed for failed, fixed in chains(turns)}
    out: list[Query] = []
    for t in turns:
        if t.household_id not in households:
            continue
        if progress is not None:
            progress(1)
        rewriter = global_only if without_personal and t.household_id in without_personal else with_personal
        if t.rewritten is None:
            failed = t.status != "success"
            ctx = RewriteContext(
                t.household_id, t.user_id, homes.get(t.household_id), t.area, t.ts, failed=failed or None
            )
            prep = rewriter.prepare(t.said, ctx)
            if prep is not None and (failed or rewriter.works_already(prep) is None):
                query, hood, cands = rewriter.retrieve(prep, ctx)
                if cands:
                    fixed = fixed_of.get(t.turn_id)
                    fix_sig = None
                    if fixed is not None:
                        d_fix = delex(fixed)
                        # A reformulation of the same request names the same things; a link to a
                        # turn with other values is more likely a new request than a fix.
                        if sorted(v for _, v in d_fix.values) == sorted(v for _, v in prep.d.values):
                            fix_sig = signature(fixed.intent, fixed.slots, d_fix)
                    own = None if t.defect else signature(t.intent, t.slots, delex(t))
                    sigs = [c.signature for c in cands]
                    labels = [sig == fix_sig for sig in sigs]
                    if fixed is not None:
                        labels = [same or _does_what(c, fixed) for same, c in zip(labels, cands, strict=True)]
                    out.append(
                        Query(
                            turn_id=t.turn_id,
                            household=t.household_id,
                            x=featurize(query, cands, knowledge, hood, prep.memory, intents),
                            intents=[sig.split("|", 1)[0] for sig in sigs],
                            labels=np.array(labels, dtype=np.int8),
                            failed=failed,
                            defect=t.defect,
                            fix_intent=fix_sig.split("|", 1)[0] if fix_sig else None,
                            own_intent=own.split("|", 1)[0] if own else None,
                            text=query.text,
                            candidates=tuple(c.text for c in cands),
                            home=np.array([bool(c.home) for c in cands]),
                        )
                    )
        if rewriter.config.personal:
            rewriter.personal.observe(t, homes.get(t.household_id))
    return out


def _does_what(cand: Candidate, fixed: LogTurn) -> bool:
    """A home-language candidate acts on what the reformulation that worked acted on (the same
    intent and the same entities, read by the home check); other candidates are judged by their
    signature."""
    if not cand.home or not cand.targets or not fixed.resolved:
        return False
    return cand.intent == fixed.intent and cand.targets == tuple(sorted(fixed.resolved))


def intent_codes(knowledge: Knowledge) -> dict[str, int]:
    """Intent -> categorical code of the ranker's ``intent`` feature: the intents of the global
    patterns, sorted (:attr:`selflearn.rewrite.ranker.Ranker.intents`)."""
    return {name: i for i, name in enumerate(sorted({p.intent for p in knowledge.patterns_ if p.intent}))}


def replay_queries(
    turns: list[LogTurn],
    homes: dict[str, Home],
    embedder: StaticEmbedder,
    intents: dict[str, int],
    config: FitConfig,
    progress: Callable[[str, int, int], None] | None = None,
    only: set[str] | None = None,
) -> list[Query]:
    """Every training request of the logs (step 2 of the module docstring): each fold of
    households replayed against global knowledge built without it, half of its households with
    a personal layer and half without. ``only``: replay just these households (the knowledge
    each fold is replayed against is the same)."""
    households = sorted({t.household_id for t in turns})
    replay_fold_of = {h: household_fold(h, config.folds, config.seed) for h in households}
    held_of = [{h for h, f in replay_fold_of.items() if f == fold} for fold in range(config.folds)]
    replayed_of = [held if only is None else held & only for held in held_of]
    turns_in = [0] * config.folds
    for turn in turns:
        if only is None or turn.household_id in only:
            turns_in[replay_fold_of[turn.household_id]] += 1
    replaying = sum(turns_in)
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None and done % 2000 == 0:
            progress("replay", done, replaying)

    def replay_fold(fold: int) -> list[Query]:
        held, replayed = held_of[fold], replayed_of[fold]
        knowledge = Knowledge(config.knowledge).fit(turns, homes, embedder, exclude_households=held)
        alone = {h for h in replayed if household_fold(h, 2, config.seed + 3) == 0}
        forked = config.workers > 1 and config.folds > 1
        home = home_source(config, embedder) if config.home_language else None
        return training_queries(
            turns, knowledge, homes, embedder, intents, replayed, None if forked else tick, alone, home
        )

    def fold_done(fold: int) -> None:  # a forked fold cannot tick: report it whole
        if progress is not None and config.workers > 1:
            progress("replay", sum(turns_in[: fold + 1]), replaying)

    if progress is not None:
        progress("replay", 0, replaying)
    replayed, _ = _run_folds(replay_fold, config.folds, config.workers, fold_done)
    if progress is not None:
        progress("replay", replaying, replaying)
    return [q for fold in replayed for q in fold]


def home_source(config: FitConfig, embedder: StaticEmbedder) -> HomeCandidates:
    """The home's language as a candidate source, searched with the configured encoder (built in
    the process that uses it: an ONNX Runtime session does not survive a fork)."""
    from selflearn.core.embed import RelatedWords
    from selflearn.rewrite.encoder import SentenceEncoder
    from selflearn.rewrite.home_candidates import HomeCandidates
    from selflearn.rewrite.home_language import HomeLanguage

    encoder = SentenceEncoder.load(config.encoder) if config.encoder else embedder
    return HomeCandidates(HomeLanguage().fit(), encoder, related=RelatedWords(embedder))


def apply_reviews(queries: list[Query], reviews: Sequence[Review], homes: dict[str, Home]) -> int:
    """People's verdicts as labels (logged outcomes, not truth): a candidate of a request whose
    pattern a person reviewed is labelled 0 when it is the rejected (or edited-away) target and 1
    when it is the edited target. Returns the requests changed. The service applies the same
    verdicts at run time (:mod:`selflearn.rewrite.review`); this lets the ranker learn them."""
    index = Reviews.of(reviews)
    if not index:
        return 0
    wrong: dict[str, set[str]] = {}
    for source, target in index.rejected_pairs:
        wrong.setdefault(source, set()).add(target)
    delex: dict[str, Delexicalizer] = {}
    changed = 0
    for q in queries:
        d = delex.get(q.household)
        if d is None:
            d = delex[q.household] = Delexicalizer(homes.get(q.household))
        source = d(q.text).pattern
        edit = index.edit_for(source)
        if source not in wrong and edit is None:
            continue
        for j, candidate in enumerate(q.candidates):
            target = d(candidate).pattern
            if target in wrong.get(source, ()):
                q.labels[j], q.reviewed = 0, True
            elif edit is not None and target == edit[0]:
                q.labels[j], q.reviewed = 1, True
        changed += q.reviewed
    return changed


def _meaning_rows(queries: list[Query]) -> tuple[np.ndarray, np.ndarray]:
    fixed = [q for q in queries if (q.fix_intent is not None and q.defect) or q.reviewed]
    if not fixed:
        raise DataError("no failed request in the logs was fixed by a reformulation: nothing to learn from")
    return np.concatenate([q.x for q in fixed]), np.concatenate([q.labels for q in fixed])


def _fixable_rows(
    ranker: Ranker, queries: list[Query], meaning: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Two copies: failed requests with ``known_failed`` = 1 (behind the NLU) and every request
    with it unknown (before the NLU). Label: the request was fixed by a reformulation."""
    xs: list[np.ndarray] = []
    ys: list[int] = []
    for q, m in zip(queries, meaning, strict=True):
        fixed = int(q.defect and q.fix_intent is not None)
        x = ranker.columns(q.x)
        if q.failed:
            xs.append(query_row(x, m, True))
            ys.append(fixed)
        xs.append(query_row(x, m, None))
        ys.append(fixed)
    return np.stack(xs), np.array(ys)


def _fit_ranker(
    queries: list[Query],
    intents: dict[str, int],
    seed: int,
    decision: str = "product",
    features: tuple[str, ...] = FEATURES,
) -> Ranker:
    """Both models of a ranker on ``queries``. The fixable model reads meaning scores from a
    meaning model that did not see the request's household (two halves, each scored by a model
    of the other)."""
    oof: list[np.ndarray] = [np.zeros(0)] * len(queries)
    half_of = {h: household_fold(h, 2, seed + 2) for h in {q.household for q in queries}}
    for half in (0, 1):
        inside = [i for i, q in enumerate(queries) if half_of[q.household] != half]
        outside = [i for i, q in enumerate(queries) if half_of[q.household] == half]
        part = Ranker(intents=intents, features=features).fit_meaning(
            *_meaning_rows([queries[i] for i in inside])
        )
        for i, scores in zip(outside, part.meaning_many([queries[i].x for i in outside]), strict=True):
            oof[i] = scores
    ranker = Ranker(intents=intents, decision=decision, features=features)
    return ranker.fit(*_meaning_rows(queries), *_fixable_rows(ranker, queries, oof))


@dataclass
class Scored:
    """The requests of one mode (known failed or not) as the cross-fitted rankers scored them."""

    score: np.ndarray
    """Decision score (meaning x fixable, or meaning alone)."""
    outcome: np.ndarray
    """Estimated outcome of rewriting to the best candidate (:meth:`Query.outcome`)."""
    household: np.ndarray
    meaning: np.ndarray
    """Meaning score of the best candidate."""
    fixable: np.ndarray
    best: np.ndarray
    """Index of the best candidate."""
    turn_id: np.ndarray

    @classmethod
    def concat(cls, parts: list[Scored]) -> Scored:
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))


def _calibration_set(ranker: Ranker, queries: list[Query], known: bool) -> Scored:
    """Every request the ranker is asked in this mode, scored: decision score, estimated outcome,
    household, the best candidate and its meaning and fixable scores."""
    asked = [q for q in queries if q.failed or not known]
    decisions = ranker.decide_many([q.x for q in asked], True if known else None)
    return Scored(
        score=np.array([d.score for d in decisions], dtype=np.float64),
        outcome=np.array([q.outcome(d.best) for q, d in zip(asked, decisions, strict=True)], dtype=np.int64),
        household=np.array([q.household for q in asked], dtype=object),
        meaning=np.array([d.meaning[d.best] for d in decisions], dtype=np.float64),
        fixable=np.array([d.fixable for d in decisions], dtype=np.float64),
        best=np.array([d.best for d in decisions], dtype=np.int64),
        turn_id=np.array([q.turn_id for q in asked], dtype=object),
    )


def cross_fitted_scores(ranker: Ranker, queries: list[Query], known: bool = True) -> Scored:
    """The calibration set of a saved cross-fitted ranker: each request scored by the member
    trained without its household (what :func:`train` calibrated on, recomputed)."""
    if not ranker.members_:
        raise ValueError("the ranker has no cross-fitted members")
    by_member: dict[int, list[Query]] = {}
    for q in queries:
        by_member.setdefault(ranker.member_index(q.household) or 0, []).append(q)
    return Scored.concat(
        [_calibration_set(ranker.members_[i], part, known) for i, part in sorted(by_member.items())]
    )


TRAIN_STAGES = ("read", "knowledge", "replay", "ranker")
"""The stages :func:`train` reports to its ``progress(stage, done, total)`` callback, in order:
reading the logs (0 of 1), building the global knowledge from every household (0 of 1),
replaying the households fold by fold (turns replayed of all turns), training and calibrating
the cross-fitted rankers (calibration folds done of all)."""


def train(
    store: Store,
    config: FitConfig,
    embedder: StaticEmbedder,
    progress: Callable[[str, int, int], None] | None = None,
    kept: list[Query] | None = None,
) -> tuple[Knowledge, Ranker, dict[str, Home], FitReport]:
    """The online rewriter's global knowledge and ranker learned from ``store`` (see the module
    docstring), the homes it logged, and what training saw and chose. ``progress(stage, done,
    total)`` reports each of :data:`TRAIN_STAGES` as it starts and as it advances; ``kept``, when
    given, receives the replayed training requests (the single encoder learns from them too)."""
    say = progress or (lambda _stage, _done, _total: None)
    report = FitReport()
    clock = time.perf_counter()
    say("read", 0, 1)
    turns = read_log(store, config.knowledge.defect_threshold)
    homes = read_homes(store)
    if not turns:
        raise DataError("the store holds no turns to learn from")
    households = sorted({t.household_id for t in turns})
    if len(households) < config.min_households:
        raise DataError(
            f"{len(households)} households are too few for {config.folds} folds; simulate or log more"
        )
    report.turns, report.households = len(turns), len(households)
    report.seconds["read"] = round(time.perf_counter() - clock, 2)

    clock = time.perf_counter()
    say("knowledge", 0, 1)
    full = Knowledge(config.knowledge).fit(turns, homes, embedder)
    intents = intent_codes(full)
    report.knowledge = full.metadata_
    report.seconds["knowledge"] = round(time.perf_counter() - clock, 2)

    clock = time.perf_counter()
    queries = replay_queries(turns, homes, embedder, intents, config, progress)
    report.reviewed = apply_reviews(queries, store.reviews(), homes)
    report.queries = len(queries)
    report.seconds["replay"] = round(time.perf_counter() - clock, 2)
    if not queries:
        raise DataError("no request in the logs could be rewritten: more logs with failures are needed")
    if kept is not None:
        kept.extend(queries)

    clock = time.perf_counter()
    report.rows = int(sum(len(q.labels) for q in queries))
    report.positives = int(sum(int(q.labels.sum()) for q in queries))
    # Cross-fitted calibration: every household's requests are scored by a ranker trained
    # without that household, and the threshold is calibrated on all of them. Those rankers ship
    # (``cross_fitted``), or one trained on every household.
    fold_of = {h: household_fold(h, config.calibration_folds, config.seed + 1) for h in households}
    features = ALL_FEATURES if config.home_language else FEATURES

    def score_fold(fold: int) -> tuple[Ranker, dict[bool, Scored] | None]:
        inside = [q for q in queries if fold_of[q.household] != fold]
        outside = [q for q in queries if fold_of[q.household] == fold]
        part = _fit_ranker(inside, intents, config.seed, config.decision, features)
        if not outside:
            return part, None
        return part, {known: _calibration_set(part, outside, known) for known in (True, False)}

    say("ranker", 0, config.calibration_folds)
    per_fold, single = _run_folds(
        score_fold,
        config.calibration_folds,
        config.workers,
        lambda fold: say("ranker", fold + 1, config.calibration_folds),
        meanwhile=None
        if config.cross_fitted
        else lambda: _fit_ranker(queries, intents, config.seed, config.decision, features),
    )
    scored = {known: Scored.concat([f[known] for _, f in per_fold if f]) for known in (True, False)}
    ranker: Ranker
    if config.cross_fitted:
        members = [part for part, _ in per_fold]
        ranker = Ranker(
            intents=intents,
            decision=config.decision,
            members_=members,
            member_seed=config.seed + 1,
            features=features,
        )
        report.train_rows = int(sum(m.meta_["meaning_rows"] for m in members) / len(members))
    else:
        ranker = single
        report.train_rows = int(ranker.meta_["meaning_rows"])
    report.calibration_queries = len(queries)
    for known in (True, False):
        score, outcome, household = scored[known].score, scored[known].outcome, scored[known].household
        bagged = calibrate_bagged(score, outcome, household, config.target_ratio, seed=config.seed)
        chosen = bagged.chosen
        key = "known_failed" if known else "unknown"
        if known:
            ranker.threshold = chosen.threshold
        else:
            ranker.threshold_unknown = chosen.threshold
        report.calibration[key] = {
            **asdict(chosen),
            "ratio": chosen.ratio,
            "target_ratio": config.target_ratio,
            "point_threshold": bagged.point,
            "resampled_p10": bagged.low,
            "resampled_p90": bagged.high,
            "resamples": bagged.resamples,
            "resamples_never": bagged.never,
        }
        for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
            cal = outcomes(score, outcome, t)
            report.curve.append({"mode": key, **asdict(cal), "ratio": cal.ratio})
    ranker.sensitive_margin = config.sensitive_margin
    for member in ranker.members_:  # members are only scored; the thresholds are the parent's
        member.threshold, member.threshold_unknown = ranker.threshold, ranker.threshold_unknown
        member.sensitive_margin = ranker.sensitive_margin
    report.seconds["ranker"] = round(time.perf_counter() - clock, 2)
    ranker.meta_["fit"] = {k: v for k, v in asdict(report).items() if k != "curve"}
    return full, ranker, homes, report


__all__ = [
    "FEATURES",
    "TRAIN_STAGES",
    "FitConfig",
    "FitReport",
    "Query",
    "Scored",
    "cross_fitted_scores",
    "intent_codes",
    "replay_queries",
    "train",
    "training_queries",
]
