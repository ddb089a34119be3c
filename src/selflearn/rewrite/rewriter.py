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
   it clears the calibrated threshold (a higher one for sensitive intents). With a single-encoder
   ranker (:mod:`selflearn.rewrite.cross_encoder`, the ``single/`` sub-folder), a request known to
   have failed has the ranker's first few candidates re-read by it, and it picks among them; the
   ranker's calibrated score of that pick still decides.

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
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selflearn.core.artefacts import DESCRIPTION, format_name, read_description, reading, write_description
from selflearn.core.delex import fill
from selflearn.core.embed import StaticEmbedder
from selflearn.core.guards import flips_polarity, is_sensitive, named_on_off_meaning
from selflearn.core.home import Home, normalize_name
from selflearn.core.hooks import Confirm, RewriteContext
from selflearn.core.schema import Feedback, RewriteTrace, Turn
from selflearn.dialogue.learned import How, Learned, LearnedKind
from selflearn.rewrite.config import ConfirmMode, FailOpen, Layer, RewriterConfig, RewriterStats
from selflearn.rewrite.cross_encoder import SingleEncoder, reread
from selflearn.rewrite.features import (
    Candidate,
    Neighbourhood,
    Query,
    featurize,
    why_no_candidate,
)
from selflearn.rewrite.features import clear_caches as clear_feature_caches
from selflearn.rewrite.knowledge import Knowledge
from selflearn.rewrite.logs import LogTurn
from selflearn.rewrite.personal import DEMOTED_LAYERS, PersonalLayer
from selflearn.rewrite.ranker import Ranker
from selflearn.rewrite.retrieval import _GENERIC, MAX_NBEST, Prepared, Retrieval
from selflearn.rewrite.review import Reviews
from selflearn.rewrite.scope import ScopeModel
from selflearn.rewrite.table import RewriteTable

if TYPE_CHECKING:
    from selflearn.core.store import Store
    from selflearn.rewrite.cross_encoder_fit import SingleEncoderConfig
    from selflearn.rewrite.fit import FitConfig, FitReport
    from selflearn.rewrite.fit import Query as TrainingQuery

log = logging.getLogger(__name__)

FORMAT = format_name("rewriter", 2)

__all__ = [
    "FORMAT",
    "MAX_NBEST",
    "_GENERIC",
    "ConfirmMode",
    "FailOpen",
    "Layer",
    "Prepared",
    "RewriteDecision",
    "Rewriter",
    "RewriterConfig",
    "RewriterStats",
]

Shown = tuple[tuple[str, float], ...]
"""Candidates shown with a decision: (text, score)."""


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
        self.retrieval = Retrieval(config or RewriterConfig(), embedder)
        """Request preparation and candidate retrieval (:mod:`selflearn.rewrite.retrieval`): it
        holds the embedder, the global layer, the personal layer and the known homes, which the
        properties below read and write."""
        self.training = training
        """How :meth:`fit` trains (``None``: :class:`~selflearn.rewrite.fit.FitConfig` defaults)."""
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
        self.single_: SingleEncoder | None = None
        """The single-encoder ranker that picks among the ranker's first candidates of a failed
        request (``selflearn train rewriter --single-encoder``); None: the ranker picks."""
        self._single_dir: tempfile.TemporaryDirectory[str] | None = None
        self.reviews_ = Reviews()
        """People's verdicts on rules (:mod:`selflearn.rewrite.review`); the service loads them
        from its store and replaces them on every review."""
        self.stats = self.retrieval.stats
        self.path: Path | None = None

    # --- the parts retrieval reads (held by self.retrieval) ------------------------------------

    @property
    def config(self) -> RewriterConfig:
        """How the rewriter decides."""
        return self.retrieval.config

    @config.setter
    def config(self, value: RewriterConfig) -> None:
        self.retrieval.config = value

    @property
    def embedder(self) -> StaticEmbedder | None:
        """The static sentence encoder (loaded on first need when ``None``)."""
        return self.retrieval.embedder

    @embedder.setter
    def embedder(self, value: StaticEmbedder | None) -> None:
        self.retrieval.embedder = value

    @property
    def knowledge_(self) -> Knowledge | None:
        """The global layer's patterns and indexes (learned by :meth:`fit`)."""
        return self.retrieval.knowledge

    @knowledge_.setter
    def knowledge_(self, value: Knowledge | None) -> None:
        self.retrieval.knowledge = value

    @property
    def personal(self) -> PersonalLayer:
        """What the rewriter learns online per household (:meth:`observe`)."""
        return self.retrieval.personal

    @personal.setter
    def personal(self, value: PersonalLayer) -> None:
        self.retrieval.personal = value

    @property
    def homes(self) -> dict[str, Home]:
        """Known home configurations by household id (used when a request brings none)."""
        return self.retrieval.homes

    @homes.setter
    def homes(self, value: dict[str, Home]) -> None:
        self.retrieval.homes = value

    def prepare(self, text: str, ctx: RewriteContext) -> Prepared | None:
        """:meth:`Retrieval.prepare <selflearn.rewrite.retrieval.Retrieval.prepare>`."""
        return self.retrieval.prepare(text, ctx)

    def retrieve(
        self, prep: Prepared, ctx: RewriteContext
    ) -> tuple[Query, Neighbourhood | None, list[Candidate]]:
        """:meth:`Retrieval.retrieve <selflearn.rewrite.retrieval.Retrieval.retrieve>`."""
        return self.retrieval.retrieve(prep, ctx)

    def works_already(self, prep: Prepared) -> str | None:
        """:meth:`Retrieval.works_already <selflearn.rewrite.retrieval.Retrieval.works_already>`."""
        return self.retrieval.works_already(prep)

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
        single: SingleEncoderConfig | None = None,
    ) -> Rewriter:
        """Train the global layer and the ranker from ``store`` (its friction signals must be
        scored: ``selflearn signals``), serve ``table`` first if given; returns self. See
        :mod:`selflearn.rewrite.fit` for how (people's verdicts in the store's ``reviews`` table
        are labels too). ``progress(stage, done, total)`` reports each training stage
        (:data:`selflearn.rewrite.fit.TRAIN_STAGES`). With ``single``, a single-encoder ranker
        is trained on the same replayed requests (needs torch: ``selflearn[learn]``)."""
        from selflearn.rewrite.fit import FitConfig, home_source, train

        if self.embedder is None:
            self.embedder = StaticEmbedder.load()
            self.personal.embed = self.embedder.encode_one
        config = self.training or FitConfig()
        queries: list[TrainingQuery] | None = [] if single is not None else None
        knowledge, ranker, homes, report = train(store, config, self.embedder, progress, queries)
        self.knowledge_, self.ranker_, self.table_, self.fit_report_ = knowledge, ranker, table, report
        if single is not None and queries is not None:
            from selflearn.rewrite.cross_encoder_fit import fit_single_encoder, training_pairs

            pairs = training_pairs(queries, single)
            # Trained into a folder of its own until save() copies it; removed with this rewriter.
            self._single_dir = tempfile.TemporaryDirectory(prefix="selflearn-single-")
            folder = Path(self._single_dir.name)
            step = (lambda done, total: progress("single", done, total)) if progress is not None else None
            self.single_ = fit_single_encoder(pairs, folder, single, say=lambda _: None, step=step)
        self.retrieval.home = home_source(config, self.embedder) if config.home_language else None
        self.homes.update(homes)
        self.retrieval.clear_cache()
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
        if self.retrieval.home is not None:
            self.retrieval.home.save(out / "home")
        here = self.single_.path if self.single_ is not None else None
        if here is not None and here.resolve() != (out / "single").resolve():
            shutil.copytree(here, out / "single", dirs_exist_ok=True)
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
        if (src / "home" / DESCRIPTION).exists() and rewriter.embedder is not None:
            from selflearn.rewrite.home_candidates import HomeCandidates  # loads Home Assistant's matcher

            related = rewriter.retrieval.related_words()
            rewriter.retrieval.home = HomeCandidates.load(src / "home", rewriter.embedder, related)
        if (src / "single" / DESCRIPTION).exists():
            rewriter.single_ = SingleEncoder.load(src / "single")
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
            if turn.nlu is not None and turn.nlu.matcher in ("teach", "taught"):
                # A teaching command is no request to learn from ("forget the mothership" is not a
                # retry of "turn on the mothership"); a forgetting one forgets here too, so a
                # replay after a restart forgets at the same point.
                phrase = turn.nlu.slots.get("phrase")
                if turn.nlu.intent == "SelflearnForget" and isinstance(phrase, str):
                    self.personal.forget_words(turn.household_id, phrase)
                self.personal.moved_on(turn.household_id, turn.user_id)
                return
            home = home if home is not None else self.homes.get(turn.household_id)
            asked = turn.dialogue
            # A question the user left (a new request instead, never mind, silence) teaches
            # nothing about its request: the next request is no retry of it. After a no to "Did
            # you mean ...?", the answer to "What did you want?" is.
            ignored = asked is not None and asked.role == "question" and asked.answer != "no"
            self.personal.observe(LogTurn.from_turn(turn, defect=False), home, retried=not ignored)
            if asked is not None and asked.kind == "confirm" and asked.role == "question" and asked.proposal:
                original = turn.rewrite.original_text if turn.rewrite is not None else turn.text
                ran = turn.result is not None and turn.result.status == "success"
                # A yes whose proposal then failed teaches nothing.
                if asked.answer == "no" or (asked.answer == "yes" and ran):
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
        self.retrieval.forget(household_id)
        return self.personal.forget(household_id)

    def learned(self, household_id: str) -> list[Learned]:
        """What the personal layer learned for ``household_id`` that acts (the
        :class:`~selflearn.dialogue.learned.Remembers` contract): names and fixes from its
        retries, the proposals it said yes to."""
        mem = self.personal.memory(household_id) if self.config.personal else None
        if mem is None:
            return []
        kinds: dict[str, tuple[LearnedKind, How]] = {
            "name": ("name", "retries"),
            "fix": ("fix", "retries"),
            "yes": ("yes", "answer"),
        }
        found = []
        for kind, said, means, _ in mem.acting(self.config.personal_min):
            what, how = kinds[kind]
            found.append(Learned(what, said, (means,), how))
        return found

    def forget_words(self, household_id: str, words: str) -> list[Learned]:
        """Forget ``words`` in the household's personal layer (the word, every request that says
        it); returns what acted and no longer does."""
        before = self.learned(household_id)
        self.personal.forget_words(household_id, words)
        after = set(self.learned(household_id))
        return [item for item in before if item not in after]

    # --- deciding -----------------------------------------------------------------------------

    def __call__(self, text: str, context: RewriteContext) -> RewriteTrace | Confirm | None:
        """The :class:`~selflearn.core.hooks.RewriteHook` contract: the rewrite's provenance, a
        :class:`~selflearn.core.hooks.Confirm` around it when the rewriter asks first, or None."""
        decision = self.rewrite_one(text, context)
        trace = decision.trace()
        if trace is not None and decision.confirm:
            return Confirm(trace, decision.reasons[-1] if decision.reasons else "")
        return trace

    def warm_up(self, home: Home | None = None) -> None:
        """Decide once for a request that fails, so the first real one does not pay for what a
        first decision loads (the model files paged in, the home's index when ``home`` is given)
        and fall open over :attr:`~RewriterConfig.budget_ms`; the counters start again after it.
        The household is a throwaway one: nothing personal is learned or read."""
        self.rewrite_one(
            "selflearn warm up request", RewriteContext("selflearn.warmup", home=home, failed=True)
        )
        self.stats.reset()

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
            target = self.retrieval.delexicalizer(ctx)(decision.text).pattern
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
        home = ctx.home if ctx.home is not None else self.homes.get(ctx.household_id)
        means = named_on_off_meaning(decision.text, home) if home is not None else None
        if flips_polarity(normalize_name(decision.original), normalize_name(decision.text), means):
            why = f"{decision.text!r} does the opposite of {decision.original!r}: never"
            reasons = (*decision.reasons, why)
            return RewriteDecision(decision.original, decision.original, False, reasons=reasons)
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
        self.retrieval.clear_cache()
        clear_feature_caches()

    @property
    def version(self) -> str:
        """Content version of the loaded artefacts (knowledge, ranker, table)."""
        parts = [
            self.knowledge_.metadata_.get("version", f"{len(self.knowledge_)}p") if self.knowledge_ else "-",
            self.ranker_.version if self.ranker_ is not None else "-",
            self.table_.version if self.table_ is not None else "-",
        ]
        return "rw2-" + hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=6).hexdigest()

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
            alternative = self.retrieval.nbest_alternative(prep, ctx)
            if alternative is not None:
                alt, layer_nb, score_nb, why_nb = alternative
                reasons.append(why_nb)
                return RewriteDecision(
                    alt.aliased, text, True, layer_nb, score_nb, f"nbest:{alt.d.pattern}", tuple(reasons)
                )
        # ranked retrieval
        if not (self.config.global_retrieval and self.ranker_ is not None and self.embedder is not None):
            why = self.retrieval.names_work(prep, ctx.failed)
            if why is not None:
                return alias_only((why,))
            return RewriteDecision(text, text, False, reasons=(*reasons, "no ranker"))
        query, hood, ranked = self.retrieve(prep, ctx)
        if ranked:
            x = featurize(query, ranked, self.knowledge_, hood, mem, self.ranker_.intents)
            scorer = self.ranker_.for_household(ctx.household_id)
            verdict = scorer.decide(x, ctx.failed)
            member = self.ranker_.member_index(ctx.household_id)
            by = "" if member is None else f" (ranker {member + 1} of {len(self.ranker_.members_)})"
            for cand, meaning in zip(ranked, verdict.meaning, strict=True):
                cand.score = float(meaning)
            if self.single_ is not None and ctx.failed and len(ranked) > 1:
                # The single encoder picks among the ranker's first few; the ranker's calibrated
                # score of that pick decides (its bars keep their meaning).
                texts, from_home = [c.text for c in ranked], [bool(c.home) for c in ranked]
                picked = reread(self.single_, query.text, texts, from_home, verdict.meaning, verdict.fixable)
                if picked.best != verdict.best:
                    reasons.append(
                        f"single encoder: {ranked[picked.best].text!r} ({picked.meaning:.3f}) "
                        f"over {ranked[verdict.best].text!r}"
                    )
                score = scorer.score_of(float(verdict.meaning[picked.best]), verdict.fixable)
                verdict = replace(verdict, best=picked.best, score=score)
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
            reasons.append(why_no_candidate(query, self.knowledge_, hood, self.retrieval.related_words()))
        why = self.retrieval.names_work(prep, ctx.failed)
        if why is not None:
            return alias_only((why,), shown)
        return RewriteDecision(
            text, text, False, reasons=tuple(reasons) or ("no candidate",), candidates=shown
        )
