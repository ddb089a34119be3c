"""Simulated populations built once and reused, rebuilt when what made them changed.

A cached population is a DuckDB store (:func:`population_store`: the logs, feedback and, for
scoring only, the simulation truth) or a simulation folder (:func:`replay_folder`: one arm of a
replay, with or without a rewriter). Each records what it was simulated with: the ASR channel
(:func:`~selflearn.assistant.asr.channel_fingerprint`: refitting the noisy model changes it),
the simulator's version (:data:`~selflearn.simulation.simulator.SIMULATION_VERSION`: its
phrasings, behaviour and truth rules), the phrasing popularity law when it is not the default
``uniform`` (:func:`popularity_stamp`) and the population itself. A cache that differs in any of
them is simulated again, and says why on stderr.

Stores are built as ``<name>.partial`` and moved into place only when complete (an interrupted
run never leaves a half-built cache); ``<store>.asr`` beside a store holds its fingerprint.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from selflearn.assistant.asr import channel_fingerprint
from selflearn.core.hooks import RewriteHook
from selflearn.core.store import IngestReport, Store
from selflearn.simulation.simulator import SIMULATION_VERSION, SimulationConfig, SimulationResult, simulate


def popularity_stamp(config: SimulationConfig | None) -> str:
    """The part of a store's fingerprint that names a phrasing popularity law other than the
    default: ``""`` for ``uniform`` (so stores stamped before the setting existed stay current),
    ``" popularity=zipf:1"`` for Zipf with exponent 1."""
    if config is None or config.phrasing_popularity == "uniform":
        return ""
    return f" popularity={config.phrasing_popularity}:{config.popularity_exponent:g}"


def simulation_fingerprint(asr: str, config: SimulationConfig | None = None) -> str:
    """What a cache of traffic simulated today through ``asr`` (with ``config``'s phrasing
    popularity law) must record to be current."""
    return f"{channel_fingerprint(asr)} {SIMULATION_VERSION}{popularity_stamp(config)}"


def _fingerprint_matches(what: str, found: str, current: str) -> bool:
    if found != current:
        print(f"[cache] {what}: simulated with {found}, now {current}: rebuilding", file=sys.stderr)
        return False
    return True


def channel_stamp(path: Path) -> Path:
    """The file beside a cached store that records its fingerprint."""
    return path.with_suffix(path.suffix + ".asr")


def store_is_current(path: Path, asr: str, config: SimulationConfig | None = None) -> bool:
    """Whether the cached store at ``path`` exists and was simulated with today's ``asr``
    channel and simulator version, and with ``config``'s phrasing popularity law (a store
    without a stamp predates stamps: stale)."""
    if not path.exists():
        return False
    stamp = channel_stamp(path)
    found = stamp.read_text().strip() if stamp.exists() else "(no stamp)"
    return _fingerprint_matches(path.name, found, simulation_fingerprint(asr, config))


def stamp_store(path: Path, asr: str, config: SimulationConfig | None = None) -> None:
    """Record today's fingerprint (with ``config``'s popularity law) beside the store at ``path``."""
    channel_stamp(path).write_text(simulation_fingerprint(asr, config) + "\n")


def same_population(out: Path, config: SimulationConfig) -> bool:
    """Whether the simulation folder ``out`` holds the households ``config`` asks for (its
    manifest records the configuration): the same number, days, seed, id prefix, phrasings,
    phrasing popularity law and rewriter placement (a manifest written before the popularity
    setting existed was simulated with the default, uniform, law)."""
    recorded = json.loads((out / "manifest.json").read_text()).get("config", {})
    wanted = {
        "households": config.households,
        "days": config.days,
        "seed": config.seed,
        "household_prefix": config.household_prefix,
        "phrasing_split": config.phrasing_split,
        "corpora": list(config.corpora),
    }
    law = recorded.get("phrasing_popularity", "uniform")
    recorded_law = (law, recorded.get("popularity_exponent") if law != "uniform" else None)
    wanted_law = (
        config.phrasing_popularity,
        config.popularity_exponent if config.phrasing_popularity != "uniform" else None,
    )
    return (
        all(recorded.get(key) == value for key, value in wanted.items())
        and recorded_law == wanted_law
        and recorded.get("assistant", {}).get("rewrite_when") == config.assistant.rewrite_when
    )


def folder_is_current(out: Path, config: SimulationConfig) -> bool:
    """Whether a cached simulation folder exists, holds the population ``config`` asks for and
    was simulated with today's channel and simulator version (its manifest records them)."""
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
    return _fingerprint_matches(out.name, found, simulation_fingerprint(config.assistant.asr))


def simulate_to_store(
    config: SimulationConfig,
    path: Path,
    prepare: Callable[[Store], object] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[SimulationResult, IngestReport]:
    """Simulate ``config`` and ingest it into a new store at ``path``, built as
    ``path.partial`` (``prepare(store)`` runs there too, e.g. friction signals) and moved into
    place only when complete; the store is stamped with its fingerprint. ``progress(done,
    total)`` counts the simulated households (:func:`~selflearn.simulation.simulator.simulate`)."""
    with tempfile.TemporaryDirectory() as tmp:
        result = simulate(config, Path(tmp) / "sim", progress=progress)
        partial = path.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        with Store(partial) as store:
            report = store.ingest([Path(tmp) / "sim"])
            if prepare is not None:
                prepare(store)
        shutil.move(partial, path)
    stamp_store(path, config.assistant.asr, config)
    return result, report


def population_store(
    path: Path,
    config: SimulationConfig,
    rebuild: bool = False,
    prepare: Callable[[Store], object] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """The store at ``path`` of the population ``config`` simulates, simulated and ingested
    first when it is missing or stale (``prepare(store)`` runs on a new one before it is moved
    into place; ``progress(done, total)`` counts the simulated households)."""
    if not rebuild and store_is_current(path, config.assistant.asr, config):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    started = time.perf_counter()
    result, report = simulate_to_store(config, path, prepare, progress)
    print(
        f"[cache] {path.name}: {result.turns:,} turns, {report.summary()} "
        f"({time.perf_counter() - started:.0f} s)",
        file=sys.stderr,
    )
    return path


def replay_folder(
    out: Path,
    config: SimulationConfig,
    rewriter: Callable[[], RewriteHook | None] | None = None,
    rebuild: bool = False,
    newer_than: Path | None = None,
) -> Path:
    """The simulation folder ``out`` of ``config``, simulated first when it is missing, stale
    or older than ``newer_than`` (a rewriter's description file: a retrained rewriter replays
    again). ``rewriter()`` makes the rewriter to replay through (called only when simulating)."""
    fresh = folder_is_current(out, config) and (
        newer_than is None or (out / "manifest.json").stat().st_mtime >= newer_than.stat().st_mtime
    )
    if fresh and not rebuild:
        return out
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result = simulate(config, out, rewriter=rewriter() if rewriter is not None else None)
    print(
        f"[cache] {out.name}: {result.turns:,} turns in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    return out
