"""How the online rewriter decides: :class:`RewriterConfig` and the names of its choices.

A module of its own so that every part of the rewriter -- retrieval, the decision, training --
reads the same settings without importing the :class:`~selflearn.rewrite.rewriter.Rewriter`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from selflearn.core.errors import ConfigError

Layer = Literal["precomputed", "global", "personal"]

FailOpen = Literal["error", "over_budget"]
"""Why a decision passed the original text through without deciding: the rewriter raised
(``error``) or took longer than :attr:`RewriterConfig.budget_ms` (``over_budget``)."""
ConfirmMode = Literal["off", "guesses", "unconfirmed", "all"]
"""When the rewriter asks instead of acting (:attr:`RewriterConfig.confirm`)."""


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
    home_language: bool = True
    """Search the home's language for candidates when the rewriter has it (a neural rewriter:
    ``selflearn train rewriter --home-language``); False: the static rewriter's candidates only,
    for comparison."""
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

    def reset(self) -> None:
        """Every counter back to zero (after a warm-up decision, say)."""
        self.__dict__.update(vars(RewriterStats()))
