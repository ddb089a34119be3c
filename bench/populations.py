"""Where the benchmarks keep their cached population stores (one place for every script).

The populations themselves are :data:`selflearn.evaluate.populations.POPULATIONS`
(``selflearn evaluate populations`` lists them); a cached store is rebuilt when the simulator,
the ASR channel or the population changed (:func:`selflearn.evaluate.cache.population_store`).
Scripts import this module as ``populations``: running ``python bench/x.py`` puts ``bench/`` on
``sys.path``. Build the stores ahead of a run with e.g.::

    selflearn evaluate build train test test-clean --cache-dir bench/.cache/signals
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from selflearn.evaluate.cache import population_store
from selflearn.evaluate.populations import population

BENCH = Path(__file__).resolve().parent
SIGNALS_CACHE = BENCH / ".cache" / "signals"
"""Stores of the friction-signal and FPI populations (``train``, ``test``, ``test-clean``,
``test-real``, ``mine``)."""
FPI_CACHE = BENCH / ".cache" / "fpi"
"""Stores only ``bench/fpi.py`` reads (``train-real``)."""

ONLY_READ = ("test-real",)
"""Populations an evaluation reads only when they are built: they need the real ASR channel
(flite, sox, pocketsphinx) and take long to simulate."""


def store_path(name: str, cache: Path | None = None) -> Path:
    """Where population ``name``'s store is cached (built or not)."""
    return (cache or SIGNALS_CACHE) / f"{name}.duckdb"


def build_command(name: str, cache: Path | None = None) -> str:
    """The command that builds population ``name``'s cached store."""
    folder = cache or SIGNALS_CACHE
    with contextlib.suppress(ValueError):
        folder = folder.relative_to(Path.cwd())
    return f"selflearn evaluate build {name} --cache-dir {folder}"


def store(name: str, workers: int = 2, rebuild: bool = False, cache: Path | None = None) -> Path:
    """Path of population ``name``'s store, simulated and ingested first when it is missing or
    stale (or ``rebuild``)."""
    config = population(name).config(workers)
    return population_store(store_path(name, cache), config, rebuild)


def evaluation_store(name: str) -> Path:
    """Path of population ``name`` for an evaluation: built when missing or stale by
    :func:`store`, except the :data:`ONLY_READ` ones, which are only read here (the path may
    not exist: the caller skips them then)."""
    return store_path(name) if name in ONLY_READ else store(name)


def add_replay_options(parser: argparse.ArgumentParser) -> None:
    """The replay-size options the A/B replays share (bench/online.py, teach.py, labels_loop.py)."""
    parser.add_argument("--replay-households", type=int, default=40, help="new households per replay")
    parser.add_argument("--replay-days", type=float, default=14, help="days each replays")
    parser.add_argument("--real-households", type=int, default=40, help="households of the real-ASR replay")
    parser.add_argument("--real-days", type=float, default=4, help="days of the real-ASR replay")
    parser.add_argument("--workers", type=int, default=2, help="simulator processes")


def replay_size(name: str, args: argparse.Namespace) -> tuple[int, float]:
    """Households and days of population ``name``'s replay (``--real-*`` for ``real``)."""
    if name == "real":
        return args.real_households, args.real_days
    return args.replay_households, args.replay_days
