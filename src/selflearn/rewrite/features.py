"""Candidates and ranking features: the one code path shared by training and serving.

For a request (:class:`Query`) the candidates are rewrite *targets*: patterns that work, with a
known meaning (signature), which the request's own values can fill. They come from

* **global retrieval**: the request's nearest patterns (same slot signature) that work;
* **fixes of similar failures**: nearest patterns that tend to fail, whose users' successful
  reformulation is the candidate (``via_*`` features);
* **personal retrieval**: requests that worked in this household before.

Each (query, candidate) pair becomes one row of :data:`FEATURES`; the ranker scores the rows.
Nothing here reads the query's own pattern statistics from the global layer (in training they
would contain the very turn being labelled); the query is described by its neighbourhood and by
its household's own earlier turns.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import jellyfish
import numpy as np
from rapidfuzz import fuzz

from selflearn.core import guards
from selflearn.core.delex import Delexicalized, fill
from selflearn.core.guards import is_sensitive, polarity_counts, rejection
from selflearn.rewrite.intents import NONE
from selflearn.rewrite.knowledge import Knowledge, Pattern, slots_key
from selflearn.rewrite.personal import HouseholdMemory

FEATURES: tuple[str, ...] = (
    # meaning: how close the candidate is to the request
    "cos",
    "cos_rank",
    "cos_gap_best",
    "via_cos",
    "via_users_log",
    # the candidate's own record
    "cand_success",
    "cand_turns_log",
    "cand_users_log",
    "cand_sig_share",
    "cand_global",
    # the request's neighbourhood: do requests like it work?
    "knn_success",
    "knn_top_cos",
    "knn_top_success",
    "knn_failing_share",
    # surface form
    "ratio",
    "token_set",
    "partial",
    "jaccard",
    "words_q",
    "words_diff",
    "phonetic",
    "polarity_q",
    "polarity_agree",
    "polarity_added",
    "sensitive",
    "missing_words",
    "extra_words",
    # agreement: do the other candidates and the request's neighbours mean the same thing?
    "votes_candidates",
    "votes_signature",
    "votes_neighbours",
    # this household
    "personal_ok_log",
    "personal_cos",
    "area_share",
    "hour_share",
    "history_log",
    "q_failed_here",
    "q_worked_here",
    "household_fail_rate",
    # what the request's words say (the intent model learned from the logs)
    "lex_intent_p",
    "lex_intent_rank",
    "lex_intent_max",
    "lex_none",
    "lex_known",
    # the candidate's intent (categorical code, see Ranker.intents)
    "intent",
)
"""Ranker input columns of the static rewriter, in order."""

HOME_FEATURES: tuple[str, ...] = (
    # the home's language (selflearn.rewrite.home_candidates): which searches found the
    # candidate, how close it was in each, and whether it says what the request named
    "home",
    "home_pattern",
    "home_dense",
    "home_sound",
    "home_spelling",
    "home_repaired",
    "home_sources",
    "home_best_rank",
    "home_names_kept",
)
"""Columns the neural rewriter adds (missing for candidates the home's language did not find)."""

ALL_FEATURES: tuple[str, ...] = (*FEATURES, *HOME_FEATURES)
"""Every column :func:`featurize` writes; a ranker reads the ones it was trained on."""

K_SEARCH = 24
"""Neighbours retrieved per request."""
MAX_CANDIDATES = 8
"""Candidates scored per request."""
PERSONAL_TOP = 5
"""Household successes considered per request."""


@dataclass
class Query:
    """A request as the ranker sees it."""

    text: str
    """Normalised text the NLU would get (after any personal name substitution)."""
    d: Delexicalized
    """Its pattern and values."""
    vector: np.ndarray
    """Embedding of the pattern (:func:`~selflearn.rewrite.knowledge.embed_text`)."""
    area: str | None = None
    """Area of the device that heard it."""
    hour: int = 12
    """Hour of day it was said."""
    keep: frozenset[str] = frozenset()
    """Words of the pattern that a candidate must keep: parts of this home's names said alone
    ("spotlights off" in a home with "Den Spotlights"); dropping one acts on something else."""
    intents: tuple[np.ndarray, float] | None = None
    """The intent model's reading of the pattern (:meth:`~selflearn.rewrite.intents.IntentModel.proba`):
    P(class) per class and the share of its words the model knows; None without a model."""

    @property
    def pattern(self) -> str:
        return self.d.pattern

    @property
    def slots(self) -> str:
        return slots_key(self.d.pattern)


@dataclass
class Candidate:
    """A rewrite target for one query."""

    pattern: str
    signature: str
    text: str
    """The pattern filled with the query's values: what the NLU would get."""
    row: int = -1
    """Row in the global patterns (-1: known only from this household)."""
    cos: float = 0.0
    via_cos: float = 0.0
    via_users: int = 0
    personal_ok: int = 0
    personal_cos: float = 0.0
    source: str = "global"
    """``global``, ``personal`` or ``home``: where the candidate came from first."""
    score: float = 0.0
    features: list[float] = field(default_factory=list)
    home: dict[str, float] = field(default_factory=dict)
    """Home-language searches that found it -> its similarity there (empty: none did)."""
    home_rank: int = -1
    """Its best rank over those searches (-1: none)."""
    names_kept: float = math.nan
    """Share of the request's names it still says (home-language candidates)."""
    targets: tuple[str, ...] = ()
    """Configured names of the entities it would act on, when the home check read it."""

    @property
    def intent(self) -> str:
        return self.signature.split("|", 1)[0]


@dataclass
class Neighbourhood:
    """What the query's nearest global patterns say (computed once per query)."""

    hits: list[tuple[int, float]]
    knn_success: float = math.nan
    knn_top_cos: float = 0.0
    knn_top_success: float = math.nan
    knn_failing_share: float = math.nan


def neighbourhood(query: Query, knowledge: Knowledge, k: int = K_SEARCH) -> Neighbourhood:
    """The query's nearest patterns (its own pattern excluded) and their success statistics."""
    own = knowledge.by_pattern.get(query.pattern, -1)
    hits = [hit for hit in knowledge.search(query.vector, query.slots, k + 1) if hit[0] != own][:k]
    out = Neighbourhood(hits)
    if hits:
        # Five numbers: plain Python is several times faster than numpy at this size.
        rates = [knowledge.patterns_[r].success_rate for r, _ in hits[:5]]
        weights = [max(c, 0.0) ** 4 + 1e-9 for _, c in hits[:5]]
        out.knn_success = sum(w * r for w, r in zip(weights, rates, strict=True)) / sum(weights)
        out.knn_top_cos = hits[0][1]
        out.knn_top_success = rates[0]
        out.knn_failing_share = sum(r < 0.5 for r in rates) / len(rates)
    return out


def candidates(
    query: Query,
    knowledge: Knowledge | None,
    hood: Neighbourhood | None,
    memory: HouseholdMemory | None = None,
    personal_vectors: np.ndarray | None = None,
    limit: int = MAX_CANDIDATES,
    related: Callable[[str, str], bool] | None = None,
) -> list[Candidate]:
    """Rewrite targets for ``query``: fillable with its values, never its own pattern, and never
    one that a guard of :mod:`selflearn.core.guards` rejects: a polarity flip, another kind of
    thing, another action, a side of a sensitive action (lock, alarm, open) the request did not
    say, only a carrier phrase in common, or a dropped time reference. Sorted by cosine, at most
    ``limit``. ``related`` tells the carrier-phrase guard which words are related in meaning
    (:class:`~selflearn.core.embed.RelatedWords`)."""
    found: dict[str, Candidate] = {}

    def add(p_pattern: str, sig: str | None, row: int, source: str) -> Candidate | None:
        if sig is None or p_pattern == query.pattern:
            return None
        cand = found.get(p_pattern)
        if cand is None:
            text = fill(p_pattern, query.d.values)
            if text is None or text == query.text or guard_for(query, p_pattern, related) is not None:
                return None
            cand = found[p_pattern] = Candidate(p_pattern, sig, text, row=row, source=source)
        elif cand.row < 0 and row >= 0:
            cand.row = row
        return cand

    if knowledge is not None and hood is not None:
        for row, cos in hood.hits:
            p = knowledge.patterns_[row]
            if knowledge.targets[row]:
                cand = add(p.pattern, p.signature, row, "global")
                if cand is not None:
                    cand.cos = max(cand.cos, cos)
            if p.fix is not None and p.success_rate <= 0.5:
                target_row = knowledge.by_pattern.get(p.fix)
                if target_row is None or not knowledge.targets[target_row]:
                    continue
                target = knowledge.patterns_[target_row]
                cand = add(target.pattern, target.signature, target_row, "global")
                if cand is not None and cos > cand.via_cos:
                    cand.via_cos, cand.via_users = cos, p.fix_users
    if memory is not None and personal_vectors is not None and len(personal_vectors) and memory.successes:
        sims = personal_vectors @ query.vector
        order = np.argsort(-sims)
        taken = 0
        for i in order:
            success = memory.successes[int(i)]
            if slots_key(success.pattern) != query.slots or success.pattern == query.pattern:
                continue
            row = knowledge.by_pattern.get(success.pattern, -1) if knowledge is not None else -1
            cand = add(success.pattern, success.signature, row, "personal")
            if cand is not None:
                cand.personal_ok = memory.pattern_ok[success.pattern]
                cand.personal_cos = float(sims[i])
            taken += 1
            if taken >= PERSONAL_TOP:
                break
    if knowledge is not None:
        for cand in found.values():
            if cand.cos == 0.0 and cand.row >= 0:
                cand.cos = float(np.dot(knowledge.vector(cand.row), query.vector))
    for cand in found.values():
        if cand.cos == 0.0:
            cand.cos = cand.personal_cos
        if memory is not None and cand.personal_ok == 0:
            cand.personal_ok = memory.pattern_ok[cand.pattern]
    ranked = sorted(found.values(), key=lambda c: (-max(c.cos, c.via_cos), c.pattern))
    return ranked[:limit]


class Surface(NamedTuple):
    """What featurization reads from a pattern's words (computed once per pattern)."""

    n_words: int
    distinct: int
    """Distinct words."""
    phonetic: str


SURFACE_CACHE_SIZE = 1 << 17
"""Patterns whose :class:`Surface` is kept. Plain numbers and strings in a plain dict, cleared when
full: cheap for the garbage collector, unlike an ``lru_cache``'s linked entries."""
_SURFACES: dict[str, Surface] = {}


def surface(pattern: str) -> Surface:
    """The pattern's :class:`Surface` (cached: candidate patterns recur across requests)."""
    found = _SURFACES.get(pattern)
    if found is None:
        words = pattern.split()
        found = Surface(len(words), len(set(words)), jellyfish.metaphone(pattern))
        if len(_SURFACES) >= SURFACE_CACHE_SIZE:
            _SURFACES.clear()
        _SURFACES[pattern] = found
    return found


def rejected_by(query: str, candidate: str, related: Callable[[str, str], bool] | None = None) -> str | None:
    """The first guard that rejects rewriting pattern ``query`` to pattern ``candidate``, or None
    (:func:`selflearn.core.guards.rejection`)."""
    return rejection(query, candidate, related)


def guard_for(query: Query, candidate: str, related: Callable[[str, str], bool] | None = None) -> str | None:
    """Why ``candidate`` may not stand in for ``query``: the first guard of :func:`rejected_by`
    that rejects it, or ``"drops part of a name"`` (:func:`drops_name`); None when nothing does."""
    guard = rejected_by(query.pattern, candidate, related)
    if guard is None and query.keep and drops_name(query, candidate):
        guard = "drops part of a name"
    return guard


def drops_name(query: Query, candidate: str) -> bool:
    """Whether ``candidate`` lacks a word of :attr:`Query.keep`: "spotlights off" is not "lights
    off", which acts on every light of the area, nor "the ceiling brightness to 70" "turn the
    brightness to 70"."""
    return not query.keep.issubset(candidate.split())


def why_no_candidate(
    query: Query,
    knowledge: Knowledge | None,
    hood: Neighbourhood | None,
    related: Callable[[str, str], bool] | None = None,
) -> str:
    """A reason for an empty candidate list: which guards rejected the nearest working patterns."""
    if knowledge is None or hood is None or not hood.hits:
        return "no candidate: no known pattern with these slots"
    counts: dict[str, int] = {}
    for row, _ in hood.hits:
        p = knowledge.patterns_[row]
        if knowledge.targets[row] and p.pattern != query.pattern:
            guard = guard_for(query, p.pattern, related)
            if guard is not None:
                counts[guard] = counts.get(guard, 0) + 1
    if not counts:
        return "no candidate: no nearby pattern works well enough to rewrite to"
    listed = ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"no candidate: the guards rejected the nearby working patterns ({listed})"


def featurize(
    query: Query,
    cands: list[Candidate],
    knowledge: Knowledge | None,
    hood: Neighbourhood | None,
    memory: HouseholdMemory | None,
    intents: dict[str, int],
) -> np.ndarray:
    """One row of :data:`FEATURES` per candidate (also stored on each candidate)."""
    if not cands:
        return np.full((0, len(ALL_FEATURES)), np.nan, dtype=np.float64)
    best = max(max(c.cos, c.via_cos) for c in cands)
    history = memory.turns if memory is not None else 0
    failed_here = memory.pattern_failed[query.pattern] if memory is not None else 0
    worked_here = memory.pattern_ok[query.pattern] if memory is not None else 0
    area_total = hour_total = 0
    if memory is not None:
        area_total = sum(n for (_, a), n in memory.intent_area.items() if a == query.area)
        hour_total = sum(n for (_, h), n in memory.intent_hour.items() if h == query.hour)
    rank = {j: r for r, j in enumerate(sorted(range(len(cands)), key=lambda j: -cands[j].cos))}
    weight = [max(c.cos, c.via_cos, 0.0) for c in cands]
    total = sum(weight) or 1.0
    by_intent: dict[str, float] = {}
    by_sig: dict[str, int] = {}
    for c, w in zip(cands, weight, strict=True):
        by_intent[c.intent] = by_intent.get(c.intent, 0.0) + w
        by_sig[c.signature] = by_sig.get(c.signature, 0) + 1
    hood_intent, hood_total = neighbour_votes(knowledge, hood)
    hood_row = (
        (hood.knn_success, hood.knn_top_cos, hood.knn_top_success, hood.knn_failing_share)
        if hood is not None
        else (math.nan, 0.0, math.nan, math.nan)
    )
    household_row = (
        math.log1p(history),
        math.log1p(failed_here),
        math.log1p(worked_here),
        (memory.failed + 1) / (memory.turns + 2) if memory is not None else math.nan,
    )
    lexical = intent_reading(query, knowledge)
    rows: list[list[float]] = []
    for i, cand in enumerate(cands):
        p: Pattern | None = knowledge.patterns_[cand.row] if knowledge is not None and cand.row >= 0 else None
        area_n = memory.intent_area[(cand.intent, query.area)] if memory is not None else 0
        hour_n = memory.intent_hour[(cand.intent, query.hour)] if memory is not None else 0
        row = [
            cand.cos,
            float(rank[i]),
            best - max(cand.cos, cand.via_cos),
            cand.via_cos,
            math.log1p(cand.via_users),
            *(
                (p.success_rate, math.log1p(p.turns), math.log1p(p.users), p.signature_share, 1.0)
                if p is not None
                else (math.nan, 0.0, 0.0, math.nan, 0.0)
            ),
            *hood_row,
            *pair_features(query.pattern, cand.pattern),
            by_intent[cand.intent] / total,
            float(by_sig[cand.signature]),
            hood_intent.get(cand.intent, 0.0) / hood_total if hood_total else math.nan,
            math.log1p(cand.personal_ok),
            cand.personal_cos,
            area_n / area_total if area_total else math.nan,
            hour_n / hour_total if hour_total else math.nan,
            *household_row,
            *lexical(cand.intent),
            float(intents.get(cand.intent, -1)),
            *home_row(cand),
        ]
        cand.features = row
        rows.append(row)
    return np.array(rows, dtype=np.float64)


_HOME_SOURCES = ("pattern", "dense", "sound", "spelling", "repaired")


def home_row(cand: Candidate) -> tuple[float, ...]:
    """The :data:`HOME_FEATURES` of a candidate."""
    if not cand.home:
        return (0.0, *(math.nan,) * 5, 0.0, math.nan, cand.names_kept)
    found = tuple(cand.home.get(source, math.nan) for source in _HOME_SOURCES)
    return (1.0, *found, float(len(cand.home)), float(cand.home_rank), cand.names_kept)


def neighbour_votes(
    knowledge: Knowledge | None, hood: Neighbourhood | None
) -> tuple[dict[str, float], float]:
    """The intents the query's 10 nearest patterns vote for, with cosine-squared weights (a pattern
    that mostly fails votes for its fix's intent), and the total weight (the ``votes_neighbours``
    feature is a candidate intent's share of it)."""
    votes: dict[str, float] = {}
    total = 0.0
    if knowledge is None or hood is None:
        return votes, total
    for row, cos in hood.hits[:10]:
        p = knowledge.patterns_[row]
        sig = p.fix_signature if p.success_rate <= 0.5 and p.fix_signature else p.signature
        w = max(cos, 0.0) ** 2
        total += w
        if sig:
            intent = sig.split("|", 1)[0]
            votes[intent] = votes.get(intent, 0.0) + w
    return votes, total


def intent_reading(query: Query, knowledge: Knowledge | None) -> Callable[[str], tuple[float, ...]]:
    """The ``lex_*`` features of a candidate intent: what the intent model made of the query
    (all missing without a model)."""
    model = knowledge.intent_model_ if knowledge is not None else None
    if query.intents is None or model is None:
        return lambda intent: (math.nan,) * 5
    probs, known = query.intents
    none = model.index(NONE)
    p_none = float(probs[none]) if none >= 0 else 0.0
    intents = probs.copy()
    if none >= 0:
        intents[none] = -1.0
    order = np.argsort(-intents, kind="stable")
    rank = {int(c): r for r, c in enumerate(order.tolist())}
    top = float(intents.max())

    def row(intent: str) -> tuple[float, ...]:
        i = model.index(intent)
        if i < 0:
            return (0.0, float(len(rank)), top, p_none, known)
        return (float(probs[i]), float(rank[i]), top, p_none, known)

    return row


def pair_features(query: str, candidate: str) -> tuple[float, ...]:
    """The surface-form features of :data:`FEATURES` (``ratio`` .. ``extra_words``), which
    depend on the two patterns alone. Not cached as pairs: a request pattern rarely meets the
    same candidate twice (4 % of pairs over the latency benchmark's decisions); each pattern's
    :func:`surface` and guard bits are."""
    q, c = surface(query), surface(candidate)
    shared = len(set(query.split()).intersection(candidate.split()))
    q_dims, same_sides, new_dims = polarity_counts(query, candidate)
    return (
        fuzz.ratio(query, candidate) / 100.0,
        fuzz.token_set_ratio(query, candidate) / 100.0,
        fuzz.partial_ratio(query, candidate) / 100.0,
        shared / max(q.distinct + c.distinct - shared, 1),
        float(q.n_words),
        float(c.n_words - q.n_words),
        fuzz.ratio(q.phonetic, c.phonetic) / 100.0,
        float(q_dims),
        float(same_sides),
        float(new_dims),
        1.0 if is_sensitive(candidate) or is_sensitive(query) else 0.0,
        float(q.distinct - shared),
        float(c.distinct - shared),
    )


def clear_caches() -> None:
    """Empty the per-pattern caches of featurization and of the guards."""
    _SURFACES.clear()
    guards.clear_caches()
