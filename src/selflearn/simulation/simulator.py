"""The traffic simulator: households talk to the reference assistant the way people do.

For each household (generated from the seed alone), users pursue goals at realistic times of
day. A goal is tried with a phrasing the user prefers; on failure the user may barge in, repeat
the same words, rephrase, or give up, and habits drift towards phrasings that worked. Now and
then background speech falsely wakes a device. The assistant's log records go to
``turns-SHARD.jsonl``; simulation truth goes to ``truth-SHARD.jsonl`` (never read by learners);
home configurations to ``homes-SHARD.jsonl``. Output is streamed, so memory stays flat however
many turns are produced.

Households are processed in shards of at most :data:`SHARD_SIZE` (fewer for small populations,
so that two workers get even shares: :func:`shard_size`); each shard's output depends only on
the seed and the configuration, so the files are identical whatever the number of workers.

Replay through a rewriter: with ``simulate(..., rewriter=...)`` (any picklable
:class:`~selflearn.core.hooks.RewriteHook`: a mined :class:`~selflearn.rewrite.RewriteTable`, the
online :class:`~selflearn.rewrite.Rewriter`), the assistant rewrites requests before its NLU.
Users react to what they experience, i.e. the rewritten outcome; the truth of a rewritten turn
also says whether it would have been a defect without the rewrite
(``Truth.defect_without_rewrite``).
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.core.errors import ConfigError
from selflearn.core.hooks import RewriteHook
from selflearn.core.schema import SCHEMA_VERSION
from selflearn.simulation.catalogue import COLLOQUIAL, OUT_OF_SCOPE, template_phrasings
from selflearn.simulation.goals import PhrasingPool, Popularity

# The per-household simulation lives in selflearn.simulation.household; these names are
# re-exported so that code importing them from here keeps working.
from selflearn.simulation.household import FOLLOW_UP_RATE as FOLLOW_UP_RATE
from selflearn.simulation.household import FOLLOW_UP_SAME_KIND as FOLLOW_UP_SAME_KIND
from selflearn.simulation.household import FOLLOW_UP_SAME_WORDS as FOLLOW_UP_SAME_WORDS
from selflearn.simulation.household import NAME_SWITCH_RATE as NAME_SWITCH_RATE
from selflearn.simulation.household import SESSION_GAP_S as SESSION_GAP_S
from selflearn.simulation.household import TARGET_SLOTS as TARGET_SLOTS
from selflearn.simulation.household import _HouseholdRun as _HouseholdRun
from selflearn.simulation.household import unmatched_failure_point as unmatched_failure_point
from selflearn.simulation.phrasing import Phrasing
from selflearn.simulation.population import make_household

SIMULATION_VERSION = "sim/2"
"""Version of what the simulator makes of a configuration: bumped whenever the same
configuration would give other traffic or other truth labels (the behaviour, the phrasings it
draws, the rules of :meth:`Simulator._failure_point`). Every run's ``manifest.json`` records it,
and caches of simulated traffic are rebuilt when it changes. ``sim/2`` (2026-11-23): an unmatched
name is ``er`` only with the right intent and a target slot (:func:`unmatched_failure_point`);
HWU64 smart-plug utterances that say another kind of device are no longer phrasings."""

SHARD_SIZE = 10
"""Households per output shard, at most."""

MIN_SHARDS = 16
"""Small populations are cut into about this many shards (down to one household each): with
fewer, larger shards the last one keeps a worker busy alone (15 households made shards of 10 and
5, so one of two workers did two thirds of the work)."""


def shard_size(households: int) -> int:
    """Households per shard for a population of ``households`` (a function of the population
    alone, never of the number of workers, so the output files stay the same)."""
    return max(1, min(SHARD_SIZE, math.ceil(households / MIN_SHARDS)))


PhrasingSplit = Literal["train", "test", "all"]


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate."""

    households: int = 20
    """Number of households."""
    days: float = 7.0
    """Simulated days per household."""
    seed: int = 0
    """Seed of everything random."""
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)
    """Start of the simulated period (UTC)."""
    household_prefix: str = "h"
    """Prefix of household ids; use different prefixes for train and test populations."""
    phrasing_split: PhrasingSplit = "all"
    """Which phrasings users draw from: the ``train`` 80 %, the held-out ``test`` 20 %, or all."""
    corpora: tuple[str, ...] = ()
    """Real corpora to draw phrasings from when present (``ha_tests``, ``hwu64``, ``slurp``)."""
    data_dir: str | None = None
    """Where the corpora live (default: ``$SELFLEARN_DATA_DIR`` or ``../shared/data``)."""
    assistant: AssistantConfig = field(default_factory=AssistantConfig)
    """The reference assistant's configuration (NLU, ASR, feedback rates)."""
    false_wakes_per_day: float = 0.4
    """Background-speech false wakes per household per day."""
    offline_rate: float = 0.02
    """Chance that a goal's target device is offline when the user asks."""
    workers: int = 1
    """Worker processes."""
    phrasing_popularity: Popularity = "uniform"
    """How users pick among the phrasings of a goal kind and source: ``uniform`` (every one
    alike), or ``zipf``: each phrasing has a fixed popularity rank in its bucket, the same in every
    household and process (:func:`~selflearn.simulation.goals.popularity_ranks`), and is drawn with
    weight ``1 / rank**popularity_exponent`` (docs/simulator.md, "Phrasing popularity")."""
    popularity_exponent: float = 1.0
    """Exponent of the ``zipf`` law (> 0; larger: a heavier head). An assumption, not a fit."""

    def __post_init__(self) -> None:
        if self.households < 1:
            raise ConfigError(f"households must be at least 1, got {self.households}")
        if not 0 < self.days <= 3650:
            raise ConfigError(f"days must be in (0, 3650], got {self.days}")
        if self.phrasing_split not in ("train", "test", "all"):
            raise ConfigError(f"phrasing_split must be train, test or all, not {self.phrasing_split!r}")
        if self.workers < 1:
            raise ConfigError("workers must be at least 1")
        if not re.fullmatch(r"[A-Za-z0-9_]+", self.household_prefix):
            raise ConfigError("household_prefix may only contain letters, digits and '_'")
        if self.start.tzinfo is None:
            raise ConfigError("start must be timezone-aware")
        if self.phrasing_popularity not in ("uniform", "zipf"):
            raise ConfigError(
                f"phrasing_popularity must be uniform or zipf, not {self.phrasing_popularity!r}"
            )
        exponent = self.popularity_exponent
        if isinstance(exponent, bool) or not isinstance(exponent, int | float):
            raise ConfigError(f"popularity_exponent must be a number, not {exponent!r}")
        if not (math.isfinite(exponent) and exponent > 0):
            raise ConfigError(f"popularity_exponent must be a finite number > 0, got {exponent}")

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form (for the run manifest)."""
        data = asdict(self)
        data["start"] = self.start.isoformat()
        return data


@dataclass
class ShardStats:
    """Counts for one shard."""

    shard: int = 0
    households: int = 0
    turns: int = 0
    feedback: int = 0
    goals: int = 0
    defects: int = 0
    first_attempts: int = 0
    first_attempt_defects: int = 0
    rewrites: int = 0
    rewrite_errors: int = 0
    questions: int = 0
    failure_points: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def load_phrasings(config: SimulationConfig) -> list[Phrasing]:
    """Built-in phrasings plus any requested corpora, filtered to the configured split."""
    phrasings: list[Phrasing] = list(template_phrasings()) + list(COLLOQUIAL) + list(OUT_OF_SCOPE)
    if config.corpora:
        from selflearn.simulation import corpora

        data_dir = corpora.find_data_dir(Path(config.data_dir) if config.data_dir else None)
        if data_dir is None:
            raise ConfigError(
                "corpora were requested but no data directory was found; pass data_dir "
                "or set SELFLEARN_DATA_DIR"
            )
        for name in config.corpora:
            phrasings.extend(corpora.load_corpus(name, data_dir))
    if config.phrasing_split != "all":
        phrasings = [p for p in phrasings if p.split == config.phrasing_split]
    return phrasings


# --- shards and workers -----------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(config: SimulationConfig, rewriter: RewriteHook | None = None) -> None:
    _WORKER["config"] = config
    _WORKER["pool"] = PhrasingPool.build(
        load_phrasings(config), config.phrasing_popularity, config.popularity_exponent
    )
    _WORKER["assistant"] = Assistant(config.assistant, rewriter=rewriter)


def _run_shard(args: tuple[int, int, str]) -> ShardStats:
    shard, size, out_dir = args
    config: SimulationConfig = _WORKER["config"]
    started = time.perf_counter()
    stats = ShardStats(shard=shard)
    out = Path(out_dir)
    files: dict[str, IO[bytes]] = {}
    try:
        for kind in ("turns", "truth", "homes"):
            files[kind] = (out / f"{kind}-{shard:05d}.jsonl.tmp").open("wb")

        def write(kind: str, line: bytes) -> None:
            fh = files[kind]
            fh.write(line)
            fh.write(b"\n")

        first = shard * size
        for index in range(first, min(first + size, config.households)):
            household = make_household(config.seed, index, config.household_prefix)
            record = {
                "record_type": "home",
                "schema_version": SCHEMA_VERSION,
                **household.home.to_dict(),
                "nicknames": household.nicknames,
                "users": [u.user_id for u in household.users],
                "devices": [list(d) for d in household.devices],
            }
            write("homes", orjson.dumps(record))
            rng = random.Random(f"{config.seed}:{config.household_prefix}:{index}:sim")
            assistant: Assistant = _WORKER["assistant"]
            errors_before = assistant.rewrite_errors
            _HouseholdRun(household, config, assistant, _WORKER["pool"], write, stats, rng).run()
            stats.rewrite_errors += assistant.rewrite_errors - errors_before
            stats.households += 1
    finally:
        for fh in files.values():
            fh.close()
    for kind in files:
        (out / f"{kind}-{shard:05d}.jsonl.tmp").replace(out / f"{kind}-{shard:05d}.jsonl")
    stats.seconds = time.perf_counter() - started
    return stats


@dataclass
class SimulationResult:
    """Summary of a simulation run."""

    out_dir: Path
    turns: int
    feedback: int
    goals: int
    households: int
    first_attempts: int
    first_attempt_defects: int
    failure_points: dict[str, int]
    seconds: float
    rewrites: int = 0
    """Turns whose text the rewriter changed (0 without a rewriter)."""
    rewrite_errors: int = 0
    """Rewriter calls that failed and were ignored (the original text was used)."""
    questions: int = 0
    """Questions the assistant asked ("Did you mean ...?"), each logged as a dialogue act."""

    @property
    def first_attempt_defect_rate(self) -> float:
        """Share of first attempts at in-scope goals that failed."""
        return self.first_attempt_defects / self.first_attempts if self.first_attempts else math.nan


def simulate(
    config: SimulationConfig,
    out_dir: Path,
    progress: Callable[[int, int], None] | None = None,
    *,
    rewriter: RewriteHook | None = None,
) -> SimulationResult:
    """Run the simulation and write shard files into ``out_dir`` (created if needed).

    ``progress(done_households, total_households)`` is called as shards finish.

    ``rewriter``: a rewriter object to put in front of the assistant's NLU (load it here, once:
    a pool whose initializer raises restarts its workers for ever instead of reporting the
    error). It is handed to every worker process, so it must be picklable (an instance of a
    module-level class is) and deterministic for the output to be the same whatever the number
    of workers. The manifest records the folder it was loaded from (its ``path``) or its type.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*-?????.jsonl"):
        stale.unlink()
    size = shard_size(config.households)
    shards = math.ceil(config.households / size)
    started = time.perf_counter()
    total = ShardStats()
    done = 0
    jobs = [(s, size, str(out_dir)) for s in range(shards)]
    if config.workers == 1 or shards == 1:
        _init_worker(config, rewriter)
        results: Iterator[ShardStats] = map(_run_shard, jobs)
        results = iter(list(_progress_iter(results, config, progress)))
    else:
        ctx = mp.get_context("fork")
        pool = ctx.Pool(min(config.workers, shards), initializer=_init_worker, initargs=(config, rewriter))
        try:
            results = iter(list(_progress_iter(pool.imap_unordered(_run_shard, jobs), config, progress)))
        finally:
            pool.close()
            pool.join()
    for st in results:
        done += st.households
        total.turns += st.turns
        total.feedback += st.feedback
        total.goals += st.goals
        total.first_attempts += st.first_attempts
        total.first_attempt_defects += st.first_attempt_defects
        total.rewrites += st.rewrites
        total.rewrite_errors += st.rewrite_errors
        total.questions += st.questions
        for k, v in st.failure_points.items():
            total.failure_points[k] = total.failure_points.get(k, 0) + v
    result = SimulationResult(
        out_dir,
        total.turns,
        total.feedback,
        total.goals,
        done,
        total.first_attempts,
        total.first_attempt_defects,
        dict(sorted(total.failure_points.items())),
        time.perf_counter() - started,
        total.rewrites,
        total.rewrite_errors,
        total.questions,
    )
    from selflearn.assistant.asr import channel_fingerprint

    manifest = {
        "schema_version": SCHEMA_VERSION,
        "config": config.to_json(),
        "asr_channel": channel_fingerprint(config.assistant.asr),
        "simulation_version": SIMULATION_VERSION,
        "shards": shards,
        "turns": result.turns,
        "feedback": result.feedback,
        "goals": result.goals,
        "households": result.households,
        "failure_points": result.failure_points,
        "first_attempt_defect_rate": result.first_attempt_defect_rate,
    }
    if rewriter is not None:
        path = getattr(rewriter, "path", None)
        manifest["rewriter"] = (
            str(path) if path is not None else f"{type(rewriter).__module__}.{type(rewriter).__qualname__}"
        )
        manifest["rewrites"] = result.rewrites
        manifest["rewrite_errors"] = result.rewrite_errors
        if config.assistant.ask:
            manifest["questions"] = result.questions
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return result


def _progress_iter(
    results: Iterator[ShardStats], config: SimulationConfig, progress: Callable[[int, int], None] | None
) -> Iterator[ShardStats]:
    done = 0
    for st in results:
        done += st.households
        if progress is not None:
            progress(done, config.households)
        yield st
