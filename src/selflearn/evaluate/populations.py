"""Named simulated populations: who speaks, how long, which phrasings and which recogniser.

Every benchmark trains and evaluates on these, so a figure names its population and anybody can
rebuild it (``selflearn evaluate populations`` lists them). Training and evaluation populations
never share households (their id prefix and seed differ) and the held-out ones never share
phrasings with training (``split="test"``: the held-out 20 % of phrasings plus SLURP).

Real corpora (HWU64, Home Assistant's test sentences, SLURP) are used when their folder is found
(:func:`~selflearn.simulation.corpora.find_data_dir`); without them a population draws from the
built-in phrasings only, and is then a different population (the cache knows: it records the
configuration it was simulated with).

>>> POPULATIONS["held-out"].config().phrasing_split
'test'
>>> POPULATIONS["seen"].config(households=5).households
5
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from selflearn.assistant.pipeline import AssistantConfig
from selflearn.simulation.corpora import find_data_dir
from selflearn.simulation.simulator import SimulationConfig

Split = Literal["train", "test", "all"]
Placement = Literal["before", "on_failure"]

TRAIN_CORPORA = ("hwu64", "ha_tests")
"""Real corpora whose train-side phrasings training populations say (when present)."""
TEST_CORPORA = ("slurp", "hwu64", "ha_tests")
"""Real corpora whose held-out phrasings evaluation populations say (when present)."""


@dataclass(frozen=True)
class Population:
    """A seeded population of simulated households."""

    name: str
    """How benchmarks and ``selflearn evaluate`` name it."""
    households: int
    days: float
    seed: int
    prefix: str
    """Household id prefix: populations that must not share households have different ones."""
    split: Split
    """Which phrasings its users say: ``train`` (80 %), ``test`` (the held-out 20 % and SLURP)."""
    asr: str
    """Recogniser: ``exact``, ``noisy`` or ``real`` (flite speech decoded by pocketsphinx)."""
    corpora: tuple[str, ...]
    """Real corpora to draw phrasings from when they are present."""
    rewrite_when: Placement = "before"
    """Where a rewriter replaying this population sits: before the NLU, or behind it."""
    used_by: str = ""
    """Which benchmark uses it, and for what."""
    popularity: Literal["uniform", "zipf"] = "uniform"
    """How its users pick among phrasings (:class:`~selflearn.simulation.goals.PhrasingPool`)."""
    exponent: float = 1.0
    """The Zipf exponent, with ``popularity="zipf"``."""

    def config(
        self,
        workers: int = 2,
        households: int | None = None,
        days: float | None = None,
        rewrite_when: Placement | None = None,
    ) -> SimulationConfig:
        """The simulation of this population (``households``/``days``: a smaller or larger one
        of the same kind, which is another population to the cache; ``rewrite_when``: put a
        replayed rewriter elsewhere)."""
        have = find_data_dir(None) is not None
        return SimulationConfig(
            households=households or self.households,
            days=days or self.days,
            seed=self.seed,
            household_prefix=self.prefix,
            phrasing_split=self.split,
            corpora=self.corpora if have else (),
            assistant=AssistantConfig(asr=self.asr, rewrite_when=rewrite_when or self.rewrite_when),
            workers=workers,
            phrasing_popularity=self.popularity,
            popularity_exponent=self.exponent,
        )

    def with_asr(self, asr: str) -> Population:
        """The same households and phrasings through another recogniser."""
        return replace(self, name=f"{self.name}[{asr}]", asr=asr)

    def with_popularity(self, law: Literal["uniform", "zipf"], exponent: float = 1.0) -> Population:
        """The same households whose users pick phrasings by another law (a population of its own;
        ``uniform`` is this one)."""
        if law == "uniform":
            return replace(self, popularity="uniform", exponent=1.0)
        return replace(self, name=f"{self.name}[{law}{exponent:g}]", popularity=law, exponent=exponent)


_T, _H = TRAIN_CORPORA, TEST_CORPORA

_TABLE: tuple[tuple[str, int, float, int, str, Split, str, tuple[str, ...], Placement, str], ...] = (
    # name, households, days, seed, prefix, phrasings, ASR, corpora, rewriter placement, used by
    # Friction signals and failure point isolation (bench/defects.py, rephrase.py, fpi.py).
    ("train", 60, 7, 11, "tr", "train", "noisy", _T, "before", "signals, FPI: training"),
    ("test", 20, 7, 12, "te", "test", "noisy", _H, "before", "signals, FPI: evaluation"),
    ("test-clean", 20, 7, 12, "te", "test", "exact", _H, "before", "signals, FPI: evaluation, exact ASR"),
    ("test-real", 8, 3, 13, "tx", "test", "real", _H, "before", "signals, FPI: evaluation, real ASR"),
    ("train-real", 20, 3, 31, "trr", "train", "real", _T, "before", "FPI: the mixed model's real-ASR logs"),
    # Rewrite mining (bench/mining.py): mined, then two later weeks of new households.
    ("mine", 240, 14, 21, "mn", "train", "noisy", _T, "before", "mining: the logs mined"),
    (
        "mining-seen",
        60,
        7,
        31,
        "rp",
        "train",
        "noisy",
        _T,
        "before",
        "mining: replay, phrasings like the logs'",
    ),
    ("mining-held-out", 60, 7, 31, "rp", "test", "noisy", _H, "before", "mining: replay, new phrasings"),
    # Online rewriting (bench/online.py): trained on one, replayed as an A/B on new households.
    ("online-train", 120, 14, 21, "mn", "train", "noisy", _T, "before", "online: the training logs"),
    (
        "seen",
        40,
        14,
        41,
        "ev",
        "train",
        "noisy",
        _T,
        "on_failure",
        "online: replay, phrasings like the logs'",
    ),
    ("held-out", 40, 14, 41, "ev", "test", "noisy", _H, "on_failure", "online: replay, new phrasings"),
    ("held-out-clean", 40, 14, 41, "ev", "test", "exact", _H, "on_failure", "online: the same, exact ASR"),
    ("real", 40, 4, 41, "ev", "test", "real", _H, "on_failure", "online: the same, real ASR"),
)

POPULATIONS: dict[str, Population] = {row[0]: Population(*row) for row in _TABLE}
"""Every named population, by name."""


def population(name: str) -> Population:
    """The population called ``name``.

    Raises:
        ConfigError: for an unknown name (the message lists the known ones).
    """
    from selflearn.core.errors import ConfigError

    found = POPULATIONS.get(name)
    if found is None:
        raise ConfigError(f"unknown population {name!r}; known: {', '.join(POPULATIONS)}")
    return found
