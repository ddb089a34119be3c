"""Retrieval: a request made ready for the rewriter, and the candidates it may be rewritten to.

The first half of every decision of the online rewriter (:mod:`selflearn.rewrite.rewriter`) and
of the replay that trains its ranker (:mod:`selflearn.rewrite.fit`), so both see requests and
candidates the same way:

* :meth:`Retrieval.prepare`: normalise, substitute the household's learned names, say shortened
  entity names in full, delexicalize (:class:`Prepared`);
* :meth:`Retrieval.works_already`, :meth:`Retrieval.names_work`: whether the request may go to
  the NLU as it is;
* :meth:`Retrieval.nbest_alternative`: a recogniser's other hypothesis known to work;
* :meth:`Retrieval.retrieve`: the ranker's query, the request's global neighbourhood and its
  candidates -- the global layer's patterns and fixes, the household's own successes
  (:func:`~selflearn.rewrite.features.candidates`) and, when the rewriter has one, the home's
  language (:mod:`selflearn.rewrite.home_candidates`).

:class:`Retrieval` holds the parts retrieval reads (the embedder, the global knowledge, the personal
layer, the known homes) and its caches; the :class:`~selflearn.rewrite.rewriter.Rewriter` owns one
and reads its parts through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from selflearn.core.delex import NAME_KINDS, Delexicalized, Delexicalizer, strip_fillers
from selflearn.core.embed import RelatedWords, StaticEmbedder
from selflearn.core.errors import ConfigError
from selflearn.core.guards import CARRIER_WORDS, OBJECT_WORDS, is_sensitive
from selflearn.core.home import Home, normalize_name
from selflearn.core.hooks import RewriteContext
from selflearn.rewrite.config import Layer, RewriterConfig, RewriterStats
from selflearn.rewrite.features import Candidate, Neighbourhood, Query, candidates, neighbourhood, rejected_by
from selflearn.rewrite.knowledge import Knowledge, embed_text
from selflearn.rewrite.logs import signature
from selflearn.rewrite.personal import HouseholdMemory, PersonalLayer

if TYPE_CHECKING:  # the home's language loads Home Assistant's matcher: only when used
    from selflearn.rewrite.home_candidates import HomeCandidate, HomeCandidates

MAX_NBEST = 4
"""Alternative recognition hypotheses the n-best step reads (the caller may pass more)."""

_GENERIC = frozenset(OBJECT_WORDS) | CARRIER_WORDS
"""Words of entity names that say no particular thing ("light", "the"): a rewrite may drop them."""


class Retrieval:
    """What retrieval reads and caches (see the module docstring). Not thread-safe, like the
    rewriter that owns it."""

    def __init__(
        self,
        config: RewriterConfig | None = None,
        embedder: StaticEmbedder | None = None,
        knowledge: Knowledge | None = None,
        personal: PersonalLayer | None = None,
        homes: dict[str, Home] | None = None,
    ) -> None:
        self.config = config or RewriterConfig()
        """The rewriter's settings (retrieval reads ``personal``, ``alias_min`` and ``pattern_cache``)."""
        self.embedder = embedder
        """The static sentence encoder."""
        self.knowledge = knowledge
        """The global layer."""
        # The layer holds the embedder's method, not the rewriter's: no reference cycle, and a
        # new rewriter can adopt a running one's personal layer.
        self.personal = personal or PersonalLayer(embedder.encode_one if embedder is not None else None)
        """What is learned online per household."""
        self.homes: dict[str, Home] = homes if homes is not None else {}
        """Known home configurations by household id (used when a request brings none)."""
        self._related: RelatedWords | None = None
        self._hoods: dict[str, tuple[np.ndarray, Neighbourhood | None, tuple[np.ndarray, float] | None]] = {}
        self._hoods_key: tuple[object, object] | None = None
        self._delex: dict[str, tuple[Home | None, Delexicalizer]] = {}
        self.stats = RewriterStats()
        """Counters (the rewriter's: retrieval counts its own)."""
        self.home: HomeCandidates | None = None
        """The home's language as a candidate source (:mod:`selflearn.rewrite.home_candidates`),
        asked only about requests the caller reports as failed; None: the static rewriter."""

    def home_of(self, ctx: RewriteContext) -> Home | None:
        """The request's home: the one it brings, else the one known for its household."""
        return ctx.home if ctx.home is not None else self.homes.get(ctx.household_id)

    def forget(self, household_id: str) -> None:
        """Drop what is cached about a household (its home, its delexicalizer)."""
        self.homes.pop(household_id, None)
        self._delex.pop(household_id, None)

    def related_words(self) -> RelatedWords | None:
        """Which words are related in meaning, by the embedder (None without one)."""
        if self.embedder is None:
            return None
        if self._related is None or self._related.embedder is not self.embedder:
            self._related = RelatedWords(self.embedder)
        return self._related

    def clear_cache(self) -> None:
        """Forget everything cached per request pattern (embeddings, neighbourhoods, related words)."""
        self._hoods = {}
        self._related = None

    def delexicalizer(self, ctx: RewriteContext) -> Delexicalizer:
        """The delexicalizer of the request's home (one per household, rebuilt when its home changes)."""
        home = self.home_of(ctx)
        hit = self._delex.get(ctx.household_id)
        if hit is None or hit[0] is not home:
            if len(self._delex) > 10_000:
                self._delex.clear()
            hit = self._delex[ctx.household_id] = (home, Delexicalizer(home))
        return hit[1]

    def prepare(self, text: str, ctx: RewriteContext) -> Prepared | None:
        """Normalise, substitute learned household names, say shortened entity names in full,
        delexicalize (None: empty request)."""
        norm = strip_fillers(normalize_name(text))
        if not norm:
            return None
        memory = self.personal.memory(ctx.household_id) if self.config.personal else None
        aliased, used = norm, list[tuple[str, str, int]]()
        if memory is not None:
            vocabulary = self.knowledge.command_words if self.knowledge is not None else frozenset()
            aliased, used = memory.apply_aliases(norm, vocabulary)
            if any(n < self.config.alias_min for _, _, n in used):
                aliased, used = norm, []
        delex = self.delexicalizer(ctx)
        d = delex(aliased)
        aliased, completed = delex.complete(aliased, _GENERIC, d.pattern)
        if completed:
            d = delex(aliased)
        keep = frozenset(w for w in d.pattern.split() if w in delex.name_words and w not in _GENERIC)
        return Prepared(text, norm, aliased, used, d, memory, keep, completed)

    def names_work(self, prep: Prepared, failed: bool | None = None) -> str | None:
        """Why the request with its names substituted (household words, shortened names said in
        full) may go to the NLU as it is, or None: the household's own successes, or for a
        completed name the global statistics, say that pattern works; or the request failed as
        said (``failed``) and only this household's own words for things were changed (a name
        learned from a retry works in every request, not only the one retried)."""
        if prep.aliased == prep.norm:
            return None
        mem = prep.memory
        if mem is not None and mem.pattern_ok[prep.d.pattern] > 0:
            return "the request with this household's names has worked here before"
        if failed and prep.aliases and not prep.completed:
            return "it failed as said; with this household's names for things it may work"
        knowledge = self.knowledge
        p = knowledge.get(prep.d.pattern) if knowledge is not None and prep.completed else None
        if p is not None and knowledge is not None and knowledge.works(p):
            return f"with the full name it works: {p.successes} of {p.turns} turns of {p.pattern!r}"
        return None

    def works_already(self, prep: Prepared) -> str | None:
        """Why the request should be left alone because it works, or None."""
        knowledge = self.knowledge
        p = knowledge.get(prep.d.pattern) if knowledge is not None else None
        if p is not None and knowledge is not None and knowledge.works(p):
            return f"works already: {p.successes} of {p.turns} turns of {p.pattern!r} worked"
        mem = prep.memory
        if mem is not None and mem.pattern_ok[prep.d.pattern] > mem.pattern_failed[prep.d.pattern]:
            return "works already in this household"
        return None

    def nbest_alternative(
        self, prep: Prepared, ctx: RewriteContext
    ) -> tuple[Prepared, Layer, float, str] | None:
        """The first of the recogniser's other hypotheses (``ctx.nbest``, at most
        :data:`MAX_NBEST`) that is known to work and that no guard of
        :mod:`selflearn.core.guards` rejects as a rewrite of the top hypothesis (a polarity
        flip, another action, a side of a sensitive action it did not say, ...): its pattern has
        worked in this household more often than it failed (for a sensitive action -- locks,
        alarms, opening -- at least twice), or it works for everyone (:meth:`Knowledge.works`; for
        a sensitive action over twice the usual turns). With the layer, score and reason; None
        when no alternative qualifies."""
        seen = {prep.norm}
        knowledge = self.knowledge
        for rank, hypothesis in enumerate(ctx.nbest[:MAX_NBEST], start=2):
            alt = self.prepare(hypothesis, ctx)
            if alt is None or alt.norm in seen or alt.d.pattern == prep.d.pattern:
                continue
            seen.add(alt.norm)
            if rejected_by(prep.d.pattern, alt.d.pattern) is not None:
                continue
            said = f"n-best: hypothesis {rank} {hypothesis!r}"
            sensitive = is_sensitive(alt.d.pattern)
            mem = alt.memory
            ok = mem.pattern_ok[alt.d.pattern] if mem is not None else 0
            if mem is not None and ok > mem.pattern_failed[alt.d.pattern] and (not sensitive or ok >= 2):
                return alt, "personal", ok / (ok + 1), f"{said} has worked in this household ({ok}x)"
            p = knowledge.get(alt.d.pattern) if knowledge is not None else None
            if p is None or knowledge is None or not knowledge.works(p):
                continue
            if sensitive and p.turns < 2 * knowledge.config.good_turns:
                continue
            works = f"{said} works: {p.successes} of {p.turns} turns of {p.pattern!r}"
            return alt, "global", p.success_rate, works
        return None

    def retrieve(
        self, prep: Prepared, ctx: RewriteContext
    ) -> tuple[Query, Neighbourhood | None, list[Candidate]]:
        """The request as a ranker query, its global neighbourhood and its candidates."""
        if self.embedder is None:
            raise ConfigError("retrieval needs an embedder")
        owner = self._hoods_key
        if owner is None or owner[0] is not self.knowledge or owner[1] is not self.embedder:
            # new artefacts (hot reload, tests): forget the old answers
            self._hoods, self._hoods_key = {}, (self.knowledge, self.embedder)
        cached = self._hoods.get(prep.d.pattern) if self.config.pattern_cache else None
        self.stats.retrievals += 1
        self.stats.pattern_cache_hits += cached is not None
        knowledge = self.knowledge
        if cached:
            vector, hood, reading = cached
        else:
            vector = self.embedder.encode_one(embed_text(prep.d.pattern))
            model = knowledge.intent_model_ if knowledge is not None else None
            reading = model.proba(prep.d.pattern) if model is not None else None
        hour = (ctx.timestamp or datetime.now(UTC)).hour
        query = Query(prep.aliased, prep.d, vector, ctx.area, hour, prep.keep, reading)
        if not cached:
            hood = neighbourhood(query, knowledge) if knowledge is not None else None
            if self.config.pattern_cache:
                if len(self._hoods) >= self.config.pattern_cache:
                    self._hoods.clear()
                self._hoods[prep.d.pattern] = (vector, hood, reading)
        vectors = self.personal.success_vectors(prep.memory) if prep.memory is not None else None
        related = self.related_words()
        found = candidates(query, self.knowledge, hood, prep.memory, vectors, related=related)
        home = self.home_of(ctx)
        if self.home is not None and self.config.home_language and ctx.failed and home is not None:
            area = home.area_named(ctx.area) if ctx.area else None
            said = self.home.candidates(
                prep.norm, prep.d.pattern, prep.d.values, home, area.area_id if area else None
            )
            found = with_home_candidates(prep, found, said, self.delexicalizer(ctx), self.knowledge, home)
        return query, hood, found


def with_home_candidates(
    prep: Prepared,
    found: list[Candidate],
    said: list[HomeCandidate],
    delex: Delexicalizer,
    knowledge: Knowledge | None,
    home: Home,
) -> list[Candidate]:
    """``found`` (the global layer's and the household's candidates) with the home's language's
    candidates added: a sentence already among them gets the home searches that found it, a new
    one becomes a candidate of source ``home`` (its signature read off what it would do)."""
    by_text = {c.text: c for c in found}
    names = [v for kind, v in prep.d.values if kind in NAME_KINDS]
    entity_names = {e.entity_id: e.name for e in home.entities}
    out = list(found)
    for hc in said:
        cand = by_text.get(hc.text)
        if cand is None:
            d = delex(hc.text)
            sig = signature(hc.reading.intent, dict(hc.reading.slots), d) or hc.reading.intent
            row = knowledge.by_pattern.get(d.pattern, -1) if knowledge is not None else -1
            cand = Candidate(d.pattern, sig, hc.text, row=row, source="home")
            cand.cos = max(hc.similarity.get("pattern", 0.0), hc.similarity.get("dense", 0.0))
            by_text[hc.text] = cand
            out.append(cand)
        cand.home = dict(hc.similarity)
        cand.home_rank = min(hc.sources.values())
        cand.targets = tuple(sorted(entity_names.get(t, t) for t in hc.reading.targets))
        if names:
            cand.names_kept = sum(n in hc.text for n in names) / len(names)
    return out


@dataclass
class Prepared:
    """A request after normalisation, name substitution and delexicalization."""

    text: str
    norm: str
    """Normalised, politeness stripped."""
    aliased: str
    """``norm`` with learned household names substituted."""
    aliases: list[tuple[str, str, int]]
    """(household word, configured name, evidence) substituted."""
    d: Delexicalized
    memory: HouseholdMemory | None
    keep: frozenset[str] = frozenset()
    """Words a rewrite must keep (:attr:`selflearn.rewrite.features.Query.keep`)."""
    completed: list[tuple[str, str]] = field(default_factory=list)
    """(shortened name, full name) said in full in ``aliased``
    (:meth:`~selflearn.core.delex.Delexicalizer.complete`)."""
