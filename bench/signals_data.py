"""Simulated populations the signal benchmarks train and evaluate on (built once, cached).

Training and evaluation never share households or phrasings:

* ``train``: households ``tr*`` (seed 11), the *train* 80 % of phrasings (built-in templates and
  colloquial variants, HWU64 and Home Assistant's tests when ``../shared/data`` is present), noisy ASR.
* ``test``: households ``te*`` (seed 12), the held-out 20 % of phrasings plus SLURP devel, noisy ASR.
* ``test-clean``: the same population as ``test`` with exact ASR.
* ``test-real``: a smaller held-out population (``tr*`` never, ``tx*``) through the real ASR channel
  (flite speech, pocketsphinx), which needs ``make asr-deps``.
* ``mine`` (only when asked for): households ``mn*`` (seed 21), 240 homes x 14 days, train
  phrasings, noisy ASR: the logs ``bench/mining.py`` mines rewrites from.

Each is a DuckDB store under ``bench/.cache/signals/`` with the turns, feedback and (for scoring
only) the simulation truth. Run ``python bench/signals_data.py`` to build them all.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from selflearn import AssistantConfig, IngestReport, SimulationConfig, SimulationResult, Store, simulate
from selflearn.assistant.asr import channel_fingerprint
from selflearn.simulation.corpora import find_data_dir
from selflearn.simulation.simulator import SIMULATION_VERSION

CACHE = Path(__file__).resolve().parent / ".cache" / "signals"


@dataclass(frozen=True)
class Spec:
    households: int
    days: float
    seed: int
    prefix: str
    split: str
    asr: str
    corpora: tuple[str, ...]


def _specs() -> dict[str, Spec]:
    have_data = find_data_dir(None) is not None
    train_corpora = ("hwu64", "ha_tests") if have_data else ()
    test_corpora = ("slurp", "hwu64", "ha_tests") if have_data else ()
    return {
        "train": Spec(60, 7, 11, "tr", "train", "noisy", train_corpora),
        "test": Spec(20, 7, 12, "te", "test", "noisy", test_corpora),
        "test-clean": Spec(20, 7, 12, "te", "test", "exact", test_corpora),
        "test-real": Spec(8, 3, 13, "tx", "test", "real", test_corpora),
        # Rewrite mining (bench/mining.py): two weeks of a larger training-side population.
        "mine": Spec(240, 14, 21, "mn", "train", "noisy", train_corpora),
    }


NAMES = ("train", "test", "test-clean", "test-real")


def simulate_to_store(
    config: SimulationConfig, path: Path, prepare: Callable[[Store], object] | None = None
) -> tuple[SimulationResult, IngestReport]:
    """Simulate ``config`` and ingest it into a new store at ``path``. The store is built as
    ``path.partial`` (``prepare(store)`` runs there too, e.g. friction signals) and moved into
    place only when complete, so an interrupted run never leaves a half-built cache."""
    with tempfile.TemporaryDirectory() as tmp:
        result = simulate(config, Path(tmp) / "sim")
        partial = path.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        with Store(partial) as store:
            report = store.ingest([Path(tmp) / "sim"])
            if prepare is not None:
                prepare(store)
        shutil.move(partial, path)
    return result, report


def channel_stamp(path: Path) -> Path:
    """The file beside a cached store that names the ASR channel and simulator version it was
    simulated with (:func:`simulation_fingerprint`)."""
    return path.with_suffix(path.suffix + ".asr")


def simulation_fingerprint(asr: str) -> str:
    """What a cache of traffic simulated today with ``asr`` must record to be current: the ASR
    channel (:func:`selflearn.assistant.asr.channel_fingerprint`: refitting the noisy model
    changes it) and the simulator's version (:data:`SIMULATION_VERSION`: its phrasings,
    behaviour and truth rules)."""
    return f"{channel_fingerprint(asr)} {SIMULATION_VERSION}"


def _fingerprint_matches(what: str, found: str, asr: str) -> bool:
    """Whether the fingerprint a cache ``what`` records (``found``) is today's for ``asr``
    (:func:`simulation_fingerprint`); says so on stderr when it is not."""
    current = simulation_fingerprint(asr)
    if found != current:
        print(f"[cache] {what}: simulated with {found}, now {current}: rebuilding", file=sys.stderr)
        return False
    return True


def cache_is_current(path: Path, asr: str) -> bool:
    """Whether the cached store at ``path`` exists and was simulated with today's ``asr``
    channel and simulator version. A store without a stamp predates stamps and counts as stale."""
    if not path.exists():
        return False
    stamp = channel_stamp(path)
    found = stamp.read_text().strip() if stamp.exists() else "(no stamp)"
    return _fingerprint_matches(path.name, found, asr)


def stamp_cache(path: Path, asr: str) -> None:
    channel_stamp(path).write_text(simulation_fingerprint(asr) + "\n")


def same_population(out: Path, config: SimulationConfig) -> bool:
    """Whether the simulation folder ``out`` holds the households ``config`` asks for (its
    manifest records the configuration): the same number, days, seed, id prefix, phrasings and
    rewriter placement."""
    recorded = json.loads((out / "manifest.json").read_text()).get("config", {})
    wanted = {
        "households": config.households,
        "days": config.days,
        "seed": config.seed,
        "household_prefix": config.household_prefix,
        "phrasing_split": config.phrasing_split,
        "corpora": list(config.corpora),
    }
    return all(recorded.get(key) == value for key, value in wanted.items()) and (
        recorded.get("assistant", {}).get("rewrite_when") == config.assistant.rewrite_when
    )


def replay_is_current(out: Path, config: SimulationConfig) -> bool:
    """Whether a cached simulation folder exists, holds the population ``config`` asks for
    (:func:`same_population`: a cache of another size or seed is simulated again) and was
    simulated with today's channel and simulator version (its manifest records them)."""
    manifest = out / "manifest.json"
    if not manifest.exists():
        return False
    if not same_population(out, config):
        print(f"[cache] {out.name}: another population than asked for: rebuilding", file=sys.stderr)
        return False
    recorded = json.loads(manifest.read_text())
    found = (
        f"{recorded.get('asr_channel', '(channel not recorded)')} "
        f"{recorded.get('simulation_version', 'sim/1')}"
    )
    return _fingerprint_matches(out.name, found, config.assistant.asr)


def store_path(name: str, workers: int = 2, rebuild: bool = False) -> Path:
    """Path of the store for population ``name``, simulating and ingesting it first if needed
    (again when its ASR channel changed since it was cached)."""
    spec = _specs()[name]
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{name}.duckdb"
    if not rebuild and cache_is_current(path, spec.asr):
        return path
    path.unlink(missing_ok=True)
    config = SimulationConfig(
        households=spec.households,
        days=spec.days,
        seed=spec.seed,
        household_prefix=spec.prefix,
        phrasing_split=spec.split,  # type: ignore[arg-type]
        corpora=spec.corpora,
        assistant=AssistantConfig(asr=spec.asr),
        workers=workers,
    )
    started = time.perf_counter()
    result, report = simulate_to_store(config, path)
    stamp_cache(path, spec.asr)
    print(
        f"[signals_data] {name}: {result.turns:,} turns, {report.summary()} "
        f"({time.perf_counter() - started:.0f} s)",
        file=sys.stderr,
    )
    return path


def evaluation_store(name: str) -> Path:
    """Path of population ``name`` for an evaluation: built (or rebuilt when its channel
    changed) by :func:`store_path`, except ``test-real``, which is only read here (it needs the
    real channel: ``python bench/signals_data.py test-real`` builds it)."""
    return CACHE / f"{name}.duckdb" if name == "test-real" else store_path(name)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    # Names are checked here: argparse checks an empty `nargs="*"` against `choices` as one value.
    known = ", ".join([*NAMES, "mine"])
    parser.add_argument("names", nargs="*", help=f"of {known} (default: {' '.join(NAMES)})")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - {*NAMES, "mine"})
    if unknown:
        parser.error(f"unknown population(s) {', '.join(unknown)}; choose from {known}")
    for name in args.names or NAMES:
        print(store_path(name, args.workers, args.rebuild))


if __name__ == "__main__":
    main()
