"""A/B replay: a population simulated once per arm, scored against simulation truth.

The arms of one replay are the same households with the same seed: ``control`` is the assistant
as it ships (strict -> gazetteer), the others put a rewriter in front of (or behind) its NLU:
``global`` and ``personal`` (an online rewriter without or with its personal layer, which learns
from the household's own logged turns in arrival order), ``table`` (a mined rewrite table).
Users react to what they experience, so arms diverge after the first rewrite; the per-turn
counterfactual (would this rewritten turn have failed without the rewrite?) is what
:class:`~selflearn.evaluate.replay.ArmStats` compares. A replayed online rewriter has no
decision budget (:attr:`~selflearn.rewrite.RewriterConfig.budget_ms`), so a replay gives the
same figures however loaded the machine is.

>>> from selflearn.evaluate.ab import ARMS
>>> ARMS  # doctest: +NORMALIZE_WHITESPACE
('control', 'global', 'personal', 'table', 'confirm', 'confirm-low', 'confirm-unconfirmed',
 'confirm-all', 'teach')
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from selflearn.core.artefacts import DESCRIPTION
from selflearn.core.errors import ConfigError
from selflearn.core.hooks import RewriteHook
from selflearn.evaluate.cache import replay_folder
from selflearn.evaluate.populations import Placement, Population
from selflearn.evaluate.replay import ArmStats, score_arm

ARMS = (
    "control",
    "global",
    "personal",
    "table",
    "confirm",
    "confirm-low",
    "confirm-unconfirmed",
    "confirm-all",
    "teach",
)
"""The arms a replay can have: ``confirm`` is ``personal`` with the assistant asking "Did you
mean ...?" about the rewriter's guesses (``RewriterConfig.confirm="guesses"``, sensitive intents
always), ``confirm-low`` also asks about ranked guesses scored down to :data:`ASK_SCALE` times
the calibrated acting bar, ``confirm-unconfirmed`` also about the household's own fixes it has
not said yes to,
``confirm-all`` asks about every rewrite, ``teach`` is ``confirm`` with an assistant that
can be taught and asks to be taught at teachable moments."""


ASK_SCALE = 0.5
"""``confirm-low``: the ranked layer asks from this fraction of its calibrated acting threshold
up (``RewriterConfig.ask_threshold``). A setting to measure, not a tuned value."""


@dataclass(frozen=True)
class Replay:
    """Where and how a population is replayed."""

    population: Population
    cache: Path
    """Folder of the cached simulation folders."""
    workers: int = 2
    households: int | None = None
    """Override the population's size (another population to the cache)."""
    days: float | None = None
    rewrite_when: Placement | None = None
    """Override where the rewriter sits (default: the population's)."""
    rebuild: bool = False
    """Simulate again even when the cache is current."""
    custom_sentences: Path | None = None
    """Home Assistant custom sentences (a file or folder) every arm's assistant loads beside Home
    Assistant's own intents (``AssistantConfig.custom_sentences``); a cache of its own, keyed by
    the files' contents."""

    def arm(self, arm: str, learner: Path | None = None) -> Path:
        """The simulation folder of ``arm`` (simulated first when missing or stale): ``control``
        needs no ``learner``; ``global`` and ``personal`` need an online rewriter's folder,
        ``table`` a mined table's (replayed again when the folder is newer than the cache)."""
        if arm not in ARMS:
            raise ConfigError(f"unknown arm {arm!r}; one of {', '.join(ARMS)}")
        if (arm == "control") != (learner is None):
            raise ConfigError(
                f"the {arm} arm {'takes no' if arm == 'control' else 'needs a'} rewriter folder"
            )
        config = self.population.config(self.workers, self.households, self.days, self.rewrite_when)
        if arm.startswith("confirm") or arm == "teach":
            config = replace(config, assistant=replace(config.assistant, ask=True, teach=arm == "teach"))
        if self.custom_sentences is not None:
            config = replace(
                config, assistant=replace(config.assistant, custom_sentences=str(self.custom_sentences))
            )
        if learner is None:
            tag = ""
        elif arm == "table":
            tag = f"-{learner.name}"
        else:
            tag = f"-{learner.name}-{config.assistant.rewrite_when}"
        if self.custom_sentences is not None:
            tag += f"-cs{_digest(self.custom_sentences)}"
        out = self.cache / f"replay-{self.population.name}-{arm}{tag}"
        make = None if learner is None else _maker(arm, learner)
        newer = learner / DESCRIPTION if learner is not None else None
        return replay_folder(out, config, make, self.rebuild, newer)

    def score(self, arms: Sequence[str], learner: Path | None = None) -> dict[str, ArmStats]:
        """Replay and score each of ``arms`` (``learner`` for the non-control ones)."""
        return {arm: score_arm(self.arm(arm, None if arm == "control" else learner)) for arm in arms}


def _digest(path: Path) -> str:
    """A short hash of a custom sentences file's (or folder's YAML files') contents."""
    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    h = hashlib.blake2b(digest_size=5)
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()


def _maker(arm: str, folder: Path) -> Callable[[], RewriteHook]:
    """What loads the rewriter of ``arm`` from ``folder`` (in the parent process, once)."""

    def make() -> RewriteHook:
        if arm == "table":
            from selflearn.rewrite.table import RewriteTable

            return RewriteTable.load(folder)
        from selflearn.rewrite.rewriter import ConfirmMode, Rewriter, RewriterConfig

        # No decision budget in a replay: on a loaded machine a decision that runs past it is
        # passed through, so the outcome would depend on the load and two runs would differ (seen:
        # 35 of 37,810 turns of one arm). Decision time is bench/rewrite_latency.py's to measure.
        modes: dict[str, ConfirmMode] = {
            "confirm": "guesses",
            "confirm-low": "guesses",
            "teach": "guesses",
            "confirm-unconfirmed": "unconfirmed",
            "confirm-all": "all",
        }
        confirm = modes.get(arm, "off")
        unbounded = RewriterConfig(personal=arm != "global", budget_ms=float("inf"), confirm=confirm)
        rewriter = Rewriter.load(folder, unbounded)
        if arm == "confirm-low" and rewriter.ranker_ is not None:
            rewriter.config = replace(unbounded, ask_threshold=ASK_SCALE * rewriter.ranker_.threshold)
        return rewriter

    return make


def pct(x: float) -> str:
    """A rate as a percentage with one decimal."""
    return f"{100 * x:.1f}%"


ARM_HEADER = (
    "| population | arm | turns | defect rate | first attempts failed (in scope) "
    "| goals failed (in scope) |\n"
    "|---|---|---:|---:|---:|---:|"
)


def arm_row(population: str, arm: str, st: ArmStats) -> str:
    """A row of :data:`ARM_HEADER`."""
    return (
        f"| {population} | {arm} | {st.turns:,} | {pct(st.defect_rate)} | "
        f"{pct(st.first_attempt_defect_rate)} | {pct(st.goal_failure_rate)} |"
    )


REWRITE_HEADER = (
    "| population | arm | rewritten (share) | wins | losses | win/loss | same turns: defect rate "
    "without -> with (reduction, 95 % interval over households) | rescue rate | false-rewrite rate "
    "| wrong actions (out of scope) | wins per wrong action |\n"
    "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"
)


def rewrite_row(population: str, arm: str, st: ArmStats) -> str:
    """A row of :data:`REWRITE_HEADER`."""
    low, high = st.reduction_interval()
    return (
        f"| {population} | {arm} | {st.rewritten:,} ({pct(st.rewritten / max(st.turns, 1))}) | {st.wins:,} "
        f"| {st.losses:,} | {st.win_loss:.1f} "
        f"| {pct(st.defect_rate_without)} -> {pct(st.defect_rate)} "
        f"({pct(st.defect_reduction)}, {pct(low)}-{pct(high)}) | {pct(st.rescue_rate)} "
        f"| {pct(st.false_rewrite_rate)} | {st.acted_wrong:,} ({st.acted_wrong_out_of_scope:,}) "
        f"| {st.wins_per_wrong_action:.1f} |"
    )


def gazetteer_note(population: str, st: ArmStats) -> str:
    """What the gazetteer fallback did in a control arm."""
    return (
        f"{population}/control gazetteer fallback: rescued {st.fallback_rescues:,} of "
        f"{st.strict_failures:,} turns strict alone fails ({pct(st.fallback_rescue_rate)}); matched "
        f"{st.fallback_failed:,} more that still failed, {st.fallback_wrong:,} of them wrong actions"
    )
