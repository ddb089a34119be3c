"""Benchmark figures as JSON: what a benchmark measured, on what machine, by which command.

Every benchmark in ``bench/`` ends with :func:`write_results`, which writes
``docs/results/<name>.json``; ``docs/benchmarks.md`` is generated from those files
(``python bench/results_page.py``), so a figure on the page is always one a command wrote.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from selflearn.simulation.simulator import SIMULATION_VERSION

RESULTS = Path(__file__).resolve().parents[3] / "docs" / "results"
"""Where a checkout keeps the figures (``docs/results`` beside ``src``)."""

PACKAGES = (
    "hassil",
    "home-assistant-intents",
    "gazetteer-matcher",
    "duckdb",
    "lightgbm",
    "torch",
    "faiss-cpu",
)
"""Versions recorded with every result: the ones that change figures."""


def machine() -> dict[str, Any]:
    """The machine a figure was measured on: CPU model, cores, memory, Python, key packages."""
    cpu = platform.processor() or platform.machine()
    memory = None
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8")
        names = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 2**20, 1)
    except OSError:  # pragma: no cover - not Linux
        pass
    packages: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover - optional
            packages[name] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "python": platform.python_version(),
        "packages": packages,
    }


def _commit() -> str | None:
    """The checkout's commit, with ``+dirty`` when its code differs from it (``None`` outside git)."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=here)
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--", ":/src", ":/bench")
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}+dirty" if dirty else commit or None


COMMIT_AT_START = _commit()
"""The code a benchmark runs is the code at its start (``import``): the commit recorded is that one."""


def command_line() -> str:
    """The command that is running, as a person would type it (``python bench/x.py --y``)."""
    script = Path(sys.argv[0])
    with contextlib.suppress(ValueError):
        script = script.resolve().relative_to(Path.cwd())
    return " ".join(["python", str(script), *sys.argv[1:]])


def results_folder() -> Path:
    """Where benchmarks write their figures: ``$SELFLEARN_RESULTS`` or the checkout's ``docs/results``."""
    return Path(os.environ.get("SELFLEARN_RESULTS") or RESULTS)


def write_results(
    name: str,
    figures: dict[str, Any],
    folder: Path | None = None,
    command: str | None = None,
    seconds: float = 0.0,
) -> Path:
    """Write ``<folder>/<name>.json``: ``figures`` with the command, date, commit, machine and
    simulator version they were measured with; returns the file.

    ``folder`` defaults to ``$SELFLEARN_RESULTS`` or the checkout's ``docs/results``."""
    out = folder or results_folder()
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "command": command or command_line(),
        "date": datetime.now(UTC).date().isoformat(),
        "commit": COMMIT_AT_START,
        "seconds": round(seconds, 1),
        "machine": machine(),
        "simulation_version": SIMULATION_VERSION,
        "figures": figures,
    }
    path = out / f"{name}.json"
    path.write_text(json.dumps(record, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    print(f"[results] {path}", file=sys.stderr)
    return path


def read_results(folder: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every result in ``folder`` by benchmark name."""
    src = folder or RESULTS
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(src.glob("*.json"))}
