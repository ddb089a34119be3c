"""The online rewriter: one decision per request, before the NLU, in about a millisecond.

>>> rewriter = Rewriter.load("models/rewriter")                        # doctest: +SKIP
>>> decision = rewriter.rewrite_one("kill the lights in the kitchen", context)  # doctest: +SKIP
>>> decision.text, decision.layer, decision.score, decision.reasons    # doctest: +SKIP

Layers, in order (the first that decides wins):

1. **personal names**: household words learned from this home's own retries ("big light" ->
   "living room ceiling") are substituted;
2. **works already**: a request whose pattern works for everyone (global statistics) or has
   worked in this household is left alone -- selflearn must never make a working request worse;
3. **precomputed**: the mined rewrite table (exact, delexicalized lookup);
4. **personal rewrite**: this household's own failed request that a retry fixed at least
   ``personal_min`` times;
5. **n-best**: when the NLU failed on the recogniser's top hypothesis and the caller passed the
   others (:attr:`RewriteContext.nbest`), the first alternative whose pattern works (global
   statistics, or this household's own successes) and that no guard rejects;
6. **ranked retrieval**: candidates from the global index, from fixes of similar failing
   requests and from the household's successes are scored by the ranker; the best is applied if
   it clears the calibrated threshold (a higher one for sensitive intents).

Guards: never across opposite actions (polarity), only candidates the request's own values can
fill, never a household name in a global artefact, never a proposal this household said no to.

**Withdrawn in this home**: a table rule that failed in a household at least twice and more often
than it worked there (:meth:`~selflearn.rewrite.personal.HouseholdMemory.withdrawn`) is neither
applied nor proposed there, nor its rewrite applied by a later layer; ``reasons`` says so.

**Asking first** (:attr:`RewriterConfig.confirm`): with ``"guesses"`` the decisions that guess at
a meaning -- ranked retrieval (from everyone's patterns or the household's own successes), the
mined table, and a recogniser's alternative known to work only from everyone's logs -- are
returned as a :class:`~selflearn.core.hooks.Confirm` (the assistant asks "Did you mean ...?")
while the household's own words (learned names, its own fixes, alternatives that worked in this
home) still act; with ``"all"`` every rewrite is a question. ``ask_threshold`` lets the ranked
layer ask about guesses below the bar it acts at. Either way a rewrite into (or out of) a sensitive intent
-- locks, covers, garage doors, alarms -- is always a question. A *yes* teaches the personal layer
the rewrite (acted on unasked from then on); a *no* is remembered and never proposed again.

**Fail open**: any exception, or a decision slower than ``budget_ms``, returns the original text
(``reasons`` says why) and is counted.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from selflearn.core.artefacts import DESCRIPTION, format_name, read_description, reading, write_description
from selflearn.core.delex import Delexicalized, Delexicalizer, fill, strip_fillers
from selflearn.core.embed import RelatedWords, StaticEmbedder
from selflearn.core.errors import ConfigError
from selflearn.core.guards import CARRIER_WORDS, OBJECT_WORDS, is_sensitive
from selflearn.core.home import Home, normalize_name
from selflearn.core.hooks import Confirm, RewriteContext
from selflearn.core.schema import Feedback, RewriteTrace, Turn
from selflearn.rewrite.features import (
    Candidate,
    Neighbourhood,
    Query,
    candidates,
    featurize,
    neighbourhood,
    rejected_by,
    why_no_candidate,
)
from selflearn.rewrite.features import clear_caches as clear_feature_caches
from selflearn.rewrite.knowledge import Knowledge, embed_text
from selflearn.rewrite.logs import LogTurn
from selflearn.rewrite.personal import DEMOTED_LAYERS, HouseholdMemory, PersonalLayer
from selflearn.rewrite.ranker import Ranker
from selflearn.rewrite.review import Reviews
from selflearn.rewrite.scope import ScopeModel
from selflearn.rewrite.table import RewriteTable

if TYPE_CHECKING:
    from selflearn.core.store import Store
    from selflearn.rewrite.fit import FitConfig, FitReport

log = logging.getLogger(__name__)

FORMAT = format_name("rewriter", 2)

Layer = Literal["precomputed", "global", "personal"]

FailOpen = Literal["error", "over_budget"]
ConfirmMode = Literal["off", "guesses", "unconfirmed", "all"]
"""When the rewriter asks instead of acting (:attr:`RewriterConfig.confirm`)."""
"""Why a decision passed the original text through without deciding: the rewriter raised
(``error``) or took longer than :attr:`RewriterConfig.budget_ms` (``over_budget``)."""

MAX_NBEST = 4
"""Alternative recognition hypotheses the n-best step reads (the caller may pass more)."""

Shown = tuple[tuple[str, float], ...]
"""Candidates shown with a decision: (text, score)."""

_GENERIC = frozenset(OBJECT_WORDS) | CARRIER_WORDS
"""Words of entity names that say no particular thing ("light", "the"): a rewrite may drop them."""


@dataclass(frozen=True)
class RewriterConfig:
    """How the rewriter decides."""

    personal: bool = True
    """Use the personal layer (household names, rewrites, history)."""
    global_retrieval: bool = True
    """Use global retrieval + ranking (off: only the table and the personal layer)."""
    personal_min: int = 2
    """Times a household's own retry must have fixed a request before it is replayed verbatim."""
    alias_min: int = 1
    """Times a household word must have been shown to mean a configured name."""
    budget_ms: float = 50.0
    """A decision slower than this is discarded (fail open)."""
    threshold: float | None = None
    """Override the ranker's calibrated threshold (both modes); sensitive intents still get
    the ranker's margin on top."""
    nbest: bool = True
    """Consider the recogniser's other hypotheses (:attr:`RewriteContext.nbest`) when the NLU
    failed on the top one."""
    confirm: ConfirmMode = "off"
    """When to ask instead of acting (see the module docstring): ``off`` (act on every rewrite
    that clears its bar, today's default), ``guesses`` (ask about ranked and mined rewrites and
    about the recogniser's alternatives known to work only from everyone's logs; the household's
    own words and alternatives that worked in this home act), ``unconfirmed`` (also ask about
    the household's own fixes learned from its retries, until it said yes to one) or ``all``
    (ask about every rewrite). Sensitive intents always ask unless ``off``; a rewrite the
    household said yes to acts."""
    ask_threshold: float | None = None
    """With ``confirm`` on: the score a ranked guess needs for a question (``None``: the same
    calibrated bar acting uses, so asking changes what happens to a guess, not which guesses are
    made). Lower than that bar, the rewriter asks about guesses it would not have acted on; a
    sensitive intent still gets the ranker's margin on top."""
    pattern_cache: int = 0
    """Request patterns whose embedding and global neighbourhood are kept (they depend on the
    pattern and the global knowledge alone), emptied when full; 0 (default): recompute every
    time. Measured over a 1M-pattern index: 10,000 saves 0.1-0.2 ms at the median before the NLU
    (every request, 26 % repeats), nothing behind it (failed requests repeat less), and its
    entries lengthen the service's garbage-collection pauses."""

    def __post_init__(self) -> None:
        if self.personal_min < 1 or self.alias_min < 1:
            raise ConfigError("personal_min and alias_min must be at least 1")
        if self.pattern_cache < 0:
            raise ConfigError("pattern_cache must be 0 or more")
        if self.budget_ms <= 0:
            raise ConfigError("budget_ms must be positive")
        if self.confirm not in ("off", "guesses", "unconfirmed", "all"):
            raise ConfigError(f"confirm must be off, guesses, unconfirmed or all, not {self.confirm!r}")


@dataclass(frozen=True)
class RewriteDecision:
    """What the rewriter decided for one request."""

    text: str
    """What the NLU should get: the rewrite, or the original text."""
    original: str
    rewritten: bool
    layer: Layer | None = None
    score: float = 0.0
    rule_id: str | None = None
    reasons: tuple[str, ...] = ()
    """Why, in words (``"works already: ..."``, ``"ranked: ..."``, ``"error: ..."``)."""
    candidates: tuple[tuple[str, float], ...] = ()
    """The best few candidates (text, score), for inspection."""
    elapsed_us: int = 0
    failed_open: FailOpen | None = None
    """Set when the rewriter did not decide and passed the text through (see :data:`FailOpen`);
    ``None`` for every decision it made, rewrite or not."""
    confirm: bool = False
    """The rewrite is a question: the assistant should ask "Did you mean ``text``?" and apply it
    only after a yes (:attr:`RewriterConfig.confirm`)."""
    approved: bool = False
    """A person approved this rule on the review page: it is no guess, it acts unasked (a
    sensitive one still asks)."""

    def trace(self) -> RewriteTrace | None:
        """The rewrite provenance to log, or None when the text was left alone."""
        if not self.rewritten or self.layer is None:
            return None
        return RewriteTrace(
            original_text=self.original,
            rewritten_text=self.text,
            layer=self.layer,
            rule_id=self.rule_id,
            score=min(max(self.score, 0.0), 1.0),
        )

    def to_json(self) -> dict[str, Any]:
        """The decision as JSON (the HTTP service reports ``failed_open`` as ``fail_open``)."""
        data = asdict(self)
        data.pop("failed_open")
        data["candidates"] = [{"text": t, "score": round(s, 4)} for t, s in self.candidates]
        data["score"] = round(self.score, 4)
        return data


@dataclass
class RewriterStats:
    """Counters since start (exported as metrics by the service)."""

    requests: int = 0
    rewritten: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    over_budget: int = 0
    retrievals: int = 0
    """Requests that went to global retrieval."""
    pattern_cache_hits: int = 0
    """Of those, how many found their pattern's neighbourhood in the cache."""


class Rewriter:
    """The online rewriter (see the module docstring). Also a
    :class:`~selflearn.assistant.pipeline.RewriteHook`: ``rewriter(text, context)`` returns the
    rewrite provenance or None, and ``observe(turn)`` feeds the personal layer.

    Not thread-safe: ``rewrite_one``, ``observe`` and ``forget`` update caches, counters and the
    personal layer without locks, so callers on several threads must serialise them (the HTTP
    service holds one lock around every call that touches its rewriter). Separate processes,
    each with its own ``Rewriter.load``, need no coordination."""

    def __init__(
        self,
        config: RewriterConfig | None = None,
        training: FitConfig | None = None,
        embedder: StaticEmbedder | None = None,
    ) -> None:
        self.config = config or RewriterConfig()
        """How the rewriter decides."""
        self.training = training
        """How :meth:`fit` trains (``None``: :class:`~selflearn.rewrite.fit.FitConfig` defaults)."""
        self.embedder = embedder
        """The static sentence encoder (loaded on first need when ``None``)."""
        self.knowledge_: Knowledge | None = None
        """The global layer's patterns and indexes (learned by :meth:`fit`)."""
        self.ranker_: Ranker | None = None
        """The ranker and its calibrated thresholds (learned by :meth:`fit`)."""
        self.table_: RewriteTable | None = None
        """The mined rewrite table served first, if one was given to :meth:`fit`."""
        self.fit_report_: FitReport | None = None
        """What :meth:`fit` saw and chose."""
        self.scope_: ScopeModel | None = None
        """Which requests nobody can help with (:mod:`selflearn.rewrite.scope`): a guess about
        one of them is neither applied nor asked about. Trained apart (``selflearn train scope``)
        and saved in the ``scope/`` sub-folder."""
        self.reviews_ = Reviews()
        """People's verdicts on rules (:mod:`selflearn.rewrite.review`); the service loads them
        from its store and replaces them on every review."""
        self._related: RelatedWords | None = None
        self._hoods: dict[str, tuple[np.ndarray, Neighbourhood | None, tuple[np.ndarray, float] | None]] = {}
        self._hoods_key: tuple[object, object] | None = None
        self.homes: dict[str, Home] = {}
        """Known home configurations by household id (used when a request brings none)."""
        # The layer holds the embedder's method, not the rewriter's: no reference cycle, and a
        # new rewriter can adopt a running one's personal layer.
        self.personal = PersonalLayer(embedder.encode_one if embedder is not None else None)
        """What the rewriter learns online per household (:meth:`observe`)."""
        self.stats = RewriterStats()
        self._delex: dict[str, tuple[Home | None, Delexicalizer]] = {}
        self.path: Path | None = None

    @classmethod
    def from_parts(
        cls,
        knowledge: Knowledge | None = None,
        ranker: Ranker | None = None,
        table: RewriteTable | None = None,
        embedder: StaticEmbedder | None = None,
        config: RewriterConfig | None = None,
        homes: dict[str, Home] | None = None,
        personal: PersonalLayer | None = None,
    ) -> Rewriter:
        """A rewriter made of given parts: any of them may be missing (a rewriter with only a
        table, only a personal layer, ...); ``personal``: adopt a running rewriter's layer."""
        rewriter = cls(config, embedder=embedder)
        rewriter.knowledge_, rewriter.ranker_, rewriter.table_ = knowledge, ranker, table
        rewriter.homes = dict(homes or {})
        if personal is not None:
            rewriter.personal = personal
            if personal.embed is None and embedder is not None:
                personal.embed = embedder.encode_one
        return rewriter

    # --- learning from logs -------------------------------------------------------------------

    def fit(
        self,
        store: Store,
        table: RewriteTable | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> Rewriter:
        """Train the global layer and the ranker from ``store`` (its friction signals must be
        scored: ``selflearn signals``), serve ``table`` first if given; returns self. See
        :mod:`selflearn.rewrite.fit` for how (people's verdicts in the store's ``reviews`` table
        are labels too). ``progress(stage, done, total)`` reports each training stage
        (:data:`selflearn.rewrite.fit.TRAIN_STAGES`)."""
        from selflearn.rewrite.fit import FitConfig, train  # fit.py replays logs through rewriters

        if self.embedder is None:
            self.embedder = StaticEmbedder.load()
            self.personal.embed = self.embedder.encode_one
        knowledge, ranker, homes, report = train(store, self.training or FitConfig(), self.embedder, progress)
        self.knowledge_, self.ranker_, self.table_, self.fit_report_ = knowledge, ranker, table, report
        self.homes.update(homes)
        self._hoods.clear()
        return self

    # --- artifact ----------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write the rewriter into ``folder``: ``model.json``, and the knowledge, ranker and
        table each in a sub-folder of its own; returns the folder."""
        meta = {
            "config": asdict(self.config),
            "embedder": str(self.embedder.path) if self.embedder is not None and self.embedder.path else None,
            "created_at": datetime.now(UTC).isoformat(),
            "knowledge": self.knowledge_ is not None,
            "ranker": self.ranker_ is not None,
            "table": self.table_ is not None,
        }
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        if self.knowledge_ is not None:
            self.knowledge_.save(out / "knowledge")
        if self.ranker_ is not None:
            self.ranker_.save(out / "ranker")
        if self.table_ is not None:
            self.table_.save(out / "table")
        if self.scope_ is not None:
            self.scope_.save(out / "scope")
        # The description last: the service reloads a watched folder when it changes.
        return write_description(out, FORMAT, meta)

    @classmethod
    def load(
        cls, folder: str | Path, config: RewriterConfig | None = None, embedder: StaticEmbedder | None = None
    ) -> Rewriter:
        """Read a folder written by :meth:`save` (``config`` overrides the saved decision
        settings). Raises :class:`ConfigError` when it is missing or corrupt (the service then
        serves pass-through and reports it on ``/healthz``)."""
        src = Path(folder)
        meta = read_description(src, FORMAT, "rewriter", retrain="selflearn train rewriter")
        knowledge = Knowledge.load(src / "knowledge") if meta.get("knowledge") else None
        ranker = Ranker.load(src / "ranker") if meta.get("ranker") else None
        table = RewriteTable.load(src / "table") if meta.get("table") else None
        if knowledge is not None and embedder is None:
            embedder = StaticEmbedder.load()
        with reading(src, "rewriter"):
            saved = RewriterConfig(**meta.get("config", {}))
        rewriter = cls.from_parts(knowledge, ranker, table, embedder, config or saved)
        if (src / "scope" / DESCRIPTION).exists():
            rewriter.scope_ = ScopeModel.load(src / "scope")
            rewriter.scope_._embedder = rewriter.embedder
        rewriter.path = src
        return rewriter

    # --- learning -----------------------------------------------------------------------------

    def observe(self, turn: Turn, home: Home | None = None) -> None:
        """Feed one logged turn to the personal layer (arrival order). A turn that asked "Did you
        mean ...?" teaches it the answer: yes, the rewrite acts unasked from now on; no, it is
        never proposed again for that request."""
        if self.config.personal:
            home = home if home is not None else self.homes.get(turn.household_id)
            self.personal.observe(LogTurn.from_turn(turn, defect=False), home)
            asked = turn.dialogue
            if asked is not None and asked.kind == "confirm" and asked.role == "question" and asked.proposal:
                original = turn.rewrite.original_text if turn.rewrite is not None else turn.text
                if asked.answer in ("yes", "no"):
                    yes = asked.answer == "yes"
                    weight = self.config.personal_min
                    self.personal.confirmed(turn.household_id, original, asked.proposal, yes, weight)
                    rule = None if yes else self._asked_rule(turn, original, asked.proposal, home)
                    if rule is not None:
                        self.personal.rule_rejected(turn.household_id, rule)

    def _asked_rule(self, turn: Turn, original: str, proposal: str, home: Home | None) -> str | None:
        """The table rule "Did you mean ``proposal``?" about ``original`` proposed: the asking
        turn's, or (a question ended by a no keeps no rewrite) the table's rule whose rewrite it is."""
        if turn.rewrite is not None:
            return turn.rewrite.rule_id if turn.rewrite.layer in DEMOTED_LAYERS else None
        prep = self.prepare(original, RewriteContext(turn.household_id, turn.user_id, home))
        hit = self.table_.lookup(prep.aliased, home) if self.table_ is not None and prep is not None else None
        same = hit is not None and normalize_name(hit[0]) == normalize_name(proposal)
        return str(hit[1]["rule_id"]) if hit is not None and same else None

    def observe_feedback(self, feedback: Feedback) -> None:
        """Feed an explicit-feedback answer to the personal layer."""
        if self.config.personal:
            self.personal.observe_feedback(feedback)

    def forget(self, household_id: str) -> bool:
        """Delete what the personal layer learned about a household."""
        self.homes.pop(household_id, None)
        self._delex.pop(household_id, None)
        return self.personal.forget(household_id)

    # --- deciding -----------------------------------------------------------------------------

    def __call__(self, text: str, context: RewriteContext) -> RewriteTrace | Confirm | None:
        """The :class:`~selflearn.core.hooks.RewriteHook` contract: the rewrite's provenance, a
        :class:`~selflearn.core.hooks.Confirm` around it when the rewriter asks first, or None."""
        decision = self.rewrite_one(text, context)
        trace = decision.trace()
        if trace is not None and decision.confirm:
            return Confirm(trace, decision.reasons[-1] if decision.reasons else "")
        return trace

    def rewrite_one(self, text: str, context: RewriteContext | None = None) -> RewriteDecision:
        """Decide for one request. Never raises: on any internal error the original is returned."""
        started = time.perf_counter()
        ctx = context or RewriteContext()
        self.stats.requests += 1
        try:
            decision = self._ask_or_act(self._reviewed(self._decide(text, ctx), ctx), ctx)
        except Exception as exc:  # fail open, by design
            self.stats.errors += 1
            if self.stats.errors == 1:
                log.warning(
                    "rewriter failed on %r (%s: %s); passing it through", text, type(exc).__name__, exc
                )
            decision = RewriteDecision(
                text, text, False, reasons=(f"error: {type(exc).__name__}: {exc}",), failed_open="error"
            )
        elapsed = time.perf_counter() - started
        if elapsed * 1000 > self.config.budget_ms and decision.rewritten:
            self.stats.over_budget += 1
            decision = RewriteDecision(
                text,
                text,
                False,
                reasons=(f"over budget: {elapsed * 1000:.1f} ms > {self.config.budget_ms} ms",),
                failed_open="over_budget",
            )
        if decision.rewritten and decision.layer is not None:
            self.stats.rewritten[decision.layer] = self.stats.rewritten.get(decision.layer, 0) + 1
        return RewriteDecision(
            decision.text,
            text,
            decision.rewritten,
            decision.layer,
            decision.score,
            decision.rule_id,
            decision.reasons,
            decision.candidates,
            int(elapsed * 1e6),
            decision.failed_open,
            decision.confirm,
            decision.approved,
        )

    def _reviewed(self, decision: RewriteDecision, ctx: RewriteContext) -> RewriteDecision:
        """Apply people's verdicts: a rewrite a reviewer rejected is dropped; a failed request
        whose pattern a reviewer wrote a target for is rewritten to it."""
        reviews = self.reviews_
        if not reviews or ctx.failed is False:
            return decision
        prep = self.prepare(decision.original, ctx)
        if prep is None:
            return decision
        source = prep.d.pattern
        edit = reviews.edit_for(source)
        if edit is not None and (ctx.failed or decision.rewritten):
            out = fill(edit[0], prep.d.values)
            if out is not None:
                why = f"reviewed: {source!r} -> {edit[0]!r} (edited by a person)"
                rule = f"review:{edit[1]}"
                return RewriteDecision(out, decision.original, True, "global", 1.0, rule, (why,))
        if decision.rewritten:
            target = self._delexicalizer(ctx)(decision.text).pattern
            if reviews.approves(source, target, decision.rule_id):
                why = f"reviewed: {source!r} -> {target!r} was approved by a person"
                return replace(decision, approved=True, reasons=(*decision.reasons, why))
            if reviews.rejects(source, target, decision.rule_id):
                why = f"reviewed: {source!r} -> {target!r} was rejected by a person"
                reasons = (*decision.reasons, why)
                return RewriteDecision(decision.original, decision.original, False, reasons=reasons)
        return decision

    def _ask_or_act(self, decision: RewriteDecision, ctx: RewriteContext) -> RewriteDecision:
        """Drop a proposal this household said no to; turn a rewrite into a question where
        :attr:`RewriterConfig.confirm` says so."""
        if not decision.rewritten:
            return decision
        mem = self.personal.memory(ctx.household_id) if self.config.personal else None
        if mem is not None and mem.rejected_before(decision.original, decision.text):
            why = f"the household said no to {decision.text!r} for this request before"
            reasons = (*decision.reasons, why)
            return RewriteDecision(decision.original, decision.original, False, reasons=reasons)
        mode = self.config.confirm
        rule = str(decision.rule_id)
        # Guesses at a meaning: the mined table and ranked retrieval, whether its candidate came
        # from everyone's patterns ("global:...") or from this household's successes
        # ("personal:..."), and a recogniser's alternative known to work only from everyone's
        # logs (layer "global"); not an alternative that worked in this home, names or replayed
        # own fixes.
        nbest_global = rule.startswith("nbest:") and decision.layer == "global"
        guess = decision.layer == "precomputed" or rule.startswith(("global:", "personal:")) or nbest_global
        guess = guess and not decision.approved
        if guess and self.scope_ is not None:
            p_out = self.scope_.p_out(decision.original)
            if p_out >= self.scope_.threshold_:
                why = f"nobody can help: out of scope (p {p_out:.2f} >= {self.scope_.threshold_:.2f})"
                reasons = (*decision.reasons, why)
                return RewriteDecision(decision.original, decision.original, False, reasons=reasons)
        if mode == "off":
            return decision
        home = ctx.home if ctx.home is not None else self.homes.get(ctx.household_id)
        sensitive = is_sensitive(decision.text, home=home) or is_sensitive(decision.original, home=home)
        yes_before = mem is not None and mem.accepted_before(decision.original, decision.text)
        if yes_before and not sensitive and mode != "all":
            why = f"this household said yes to {decision.text!r} for this request"
            return replace(decision, reasons=(*decision.reasons, why))
        own_fix = decision.layer == "personal" and decision.rule_id == "personal"
        if mode == "all" or sensitive or guess or (mode == "unconfirmed" and own_fix):
            why = "sensitive intent: ask first" if sensitive else f"confirm={mode}: ask first"
            return replace(decision, confirm=True, reasons=(*decision.reasons, why))
        return decision

    def clear_cache(self) -> None:
        """Forget everything cached per request pattern: embeddings and neighbourhoods here, and
        the process-wide guard and featurization caches (to measure decisions from cold)."""
        self._hoods = {}
        self._related = None
        clear_feature_caches()

    def _delexicalizer(self, ctx: RewriteContext) -> Delexicalizer:
        home = ctx.home if ctx.home is not None else self.homes.get(ctx.household_id)
        hit = self._delex.get(ctx.household_id)
        if hit is None or hit[0] is not home:
            if len(self._delex) > 10_000:
                self._delex.clear()
            hit = self._delex[ctx.household_id] = (home, Delexicalizer(home))
        return hit[1]

    @property
    def version(self) -> str:
        """Content version of the loaded artefacts (knowledge, ranker, table)."""
        parts = [
            self.knowledge_.metadata_.get("version", f"{len(self.knowledge_)}p") if self.knowledge_ else "-",
            self.ranker_.version if self.ranker_ is not None else "-",
            self.table_.version if self.table_ is not None else "-",
        ]
        return "rw2-" + hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=6).hexdigest()

    def prepare(self, text: str, ctx: RewriteContext) -> Prepared | None:
        """Normalise, substitute learned household names, say shortened entity names in full,
        delexicalize (None: empty request)."""
        norm = strip_fillers(normalize_name(text))
        if not norm:
            return None
        memory = self.personal.memory(ctx.household_id) if self.config.personal else None
        aliased, used = norm, list[tuple[str, str, int]]()
        if memory is not None:
            vocabulary = self.knowledge_.command_words if self.knowledge_ is not None else frozenset()
            aliased, used = memory.apply_aliases(norm, vocabulary)
            if any(n < self.config.alias_min for _, _, n in used):
                aliased, used = norm, []
        delex = self._delexicalizer(ctx)
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
        knowledge = self.knowledge_
        p = knowledge.get(prep.d.pattern) if knowledge is not None and prep.completed else None
        if p is not None and knowledge is not None and knowledge.works(p):
            return f"with the full name it works: {p.successes} of {p.turns} turns of {p.pattern!r}"
        return None

    def works_already(self, prep: Prepared) -> str | None:
        """Why the request should be left alone because it works, or None."""
        knowledge = self.knowledge_
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
        knowledge = self.knowledge_
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
        if owner is None or owner[0] is not self.knowledge_ or owner[1] is not self.embedder:
            # new artefacts (hot reload, tests): forget the old answers
            self._hoods, self._hoods_key = {}, (self.knowledge_, self.embedder)
        cached = self._hoods.get(prep.d.pattern) if self.config.pattern_cache else None
        self.stats.retrievals += 1
        self.stats.pattern_cache_hits += cached is not None
        knowledge = self.knowledge_
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
        related = self._related
        if related is None or related.embedder is not self.embedder:
            related = self._related = RelatedWords(self.embedder)
        return query, hood, candidates(query, self.knowledge_, hood, prep.memory, vectors, related=related)

    def _decide(self, text: str, ctx: RewriteContext) -> RewriteDecision:
        prep = self.prepare(text, ctx)
        if prep is None:
            return RewriteDecision(text, text, False, reasons=("empty request",))
        reasons = [f"personal name: {w!r} means {n!r} here (seen {k}x)" for w, n, k in prep.aliases]
        reasons += [f"name: {short!r} is {full!r} here" for short, full in prep.completed]
        aliased = prep.aliased != prep.norm

        def alias_only(extra: tuple[str, ...] = (), shown: Shown = ()) -> RewriteDecision:
            """The request with its names substituted, nothing else changed."""
            layer: Layer = "personal" if prep.aliases else "global"
            rule = "alias" if prep.aliases else "name"
            return RewriteDecision(prep.aliased, text, True, layer, 0.9, rule, (*reasons, *extra), shown)

        if ctx.failed is False:
            return RewriteDecision(
                text, text, False, reasons=("the caller reports that the original worked",)
            )
        works = None if ctx.failed else self.works_already(prep)
        if works is not None:
            return alias_only((works,)) if aliased else RewriteDecision(text, text, False, reasons=(works,))
        # precomputed table
        mem = prep.memory
        withdrawn_out: str | None = None  # a table rule's rewrite this home withdrew: no layer applies it
        if self.table_ is not None:
            home = ctx.home if ctx.home is not None else self.homes.get(ctx.household_id)
            hit = self.table_.lookup(prep.aliased, home)
            if hit is not None:
                out, row = hit
                what = f"precomputed: {row['source']} -> {row['target']}"
                withdrawn = mem.withdrawn(row["rule_id"], self.table_.community()[1]) if mem else None
                if withdrawn is None:
                    reasons.append(what)
                    return RewriteDecision(
                        out, text, True, "precomputed", float(row["p_target"]), row["rule_id"], tuple(reasons)
                    )
                reasons.append(f"{what}: {withdrawn}")
                withdrawn_out = normalize_name(out)
        # this household's own fix
        if mem is not None:
            mine = mem.rewrite_for(prep.aliased) or mem.rewrite_for(prep.norm)
            enough = mine is not None and mine[1] >= self.config.personal_min and mine[0] != prep.norm
            if (
                mine is not None
                and enough
                and (not is_sensitive(mine[0]) or mine[1] >= 2 * self.config.personal_min)
            ):
                reasons.append(f"personal: fixed by {mine[0]!r} {mine[1]}x in this household")
                score = mine[1] / (mine[1] + 1)
                return RewriteDecision(mine[0], text, True, "personal", score, "personal", tuple(reasons))
        # the recogniser's other hypotheses
        if ctx.failed and ctx.nbest and self.config.nbest:
            alternative = self.nbest_alternative(prep, ctx)
            if alternative is not None:
                alt, layer_nb, score_nb, why_nb = alternative
                reasons.append(why_nb)
                return RewriteDecision(
                    alt.aliased, text, True, layer_nb, score_nb, f"nbest:{alt.d.pattern}", tuple(reasons)
                )
        # ranked retrieval
        if not (self.config.global_retrieval and self.ranker_ is not None and self.embedder is not None):
            why = self.names_work(prep, ctx.failed)
            if why is not None:
                return alias_only((why,))
            return RewriteDecision(text, text, False, reasons=(*reasons, "no ranker"))
        query, hood, ranked = self.retrieve(prep, ctx)
        if ranked:
            x = featurize(query, ranked, self.knowledge_, hood, mem, self.ranker_.intents)
            verdict = self.ranker_.for_household(ctx.household_id).decide(x, ctx.failed)
            member = self.ranker_.member_index(ctx.household_id)
            by = "" if member is None else f" (ranker {member + 1} of {len(self.ranker_.members_)})"
            for cand, meaning in zip(ranked, verdict.meaning, strict=True):
                cand.score = float(meaning)
            best = ranked[verdict.best]
            shown = tuple((c.text, c.score) for c in sorted(ranked, key=lambda c: -c.score)[:3])
            sensitive = is_sensitive(best.pattern) or is_sensitive(prep.d.pattern)
            override = self.config.threshold
            if self.config.confirm != "off" and self.config.ask_threshold is not None:
                override = self.config.ask_threshold
            bar = self.ranker_.threshold_for(ctx.failed, sensitive, override)
            summary = (
                f"{prep.d.pattern!r} -> {best.pattern!r} ({best.signature}): meaning {best.score:.3f} "
                f"x fixable {verdict.fixable:.3f} = {verdict.score:.3f}{by}"
            )
            again = withdrawn_out is not None and normalize_name(best.text) == withdrawn_out
            if verdict.score >= bar and again:
                reasons.append(f"ranked: {summary}: the rewrite of the rule withdrawn here")
            elif verdict.score >= bar:
                layer: Layer = "personal" if best.source == "personal" and best.row < 0 else "global"
                reasons.append(f"ranked: {summary} >= {bar:.3f}")
                rule = f"{layer}:{best.pattern}"
                return RewriteDecision(
                    best.text, text, True, layer, verdict.score, rule, tuple(reasons), shown
                )
            reasons.append(f"below the bar: {summary} < {bar:.3f}")
        else:
            shown = ()
            reasons.append(why_no_candidate(query, self.knowledge_, hood, self._related))
        why = self.names_work(prep, ctx.failed)
        if why is not None:
            return alias_only((why,), shown)
        return RewriteDecision(
            text, text, False, reasons=tuple(reasons) or ("no candidate",), candidates=shown
        )


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
