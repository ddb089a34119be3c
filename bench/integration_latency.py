"""What selflearn adds to a real assistant's round trip: the Home Assistant integration on each
tested core, and the Wyoming service.

    make test-ha                                # builds the two Home Assistant venvs once
    python bench/integration_latency.py         # 1,000 requests per case and core
    python bench/integration_latency.py --requests 200 --cores 2025.4

Run it from the repository root with the project's Python. What it does:

1. **Home Assistant**, per core (2024.3.3 on Python 3.11, 2025.4.4 on Python 3.13; the venvs of
   ``make test-ha``): ``tests_ha/bench_latency.py`` starts a real core with a kitchen light, the
   integration and a real ``selflearn serve`` (a table rewriter with the rule "kill the lights in
   the {area}" -> "turn off the lights in the {area}"), and sends ``--requests`` requests (after
   20 not counted) through ``conversation.async_converse`` with the selflearn agent, one at a
   time: one Home Assistant understands, one it fails and selflearn has no rewrite for, one it
   fails and selflearn rewrites, and the understood one again with turn logging on. The
   *overhead* of a request is its time minus the time of Home Assistant's own first answer,
   both taken inside that request.
2. **Wyoming**: ``bench/wyoming_latency.py`` (the round trip as Home Assistant's ``wyoming``
   integration makes it: a connection and a ``transcript`` per request).
3. **Report**: ``docs/results/integration.json`` (or ``$SELFLEARN_RESULTS``) with
   ``ha_versions_tested``, ``overhead_ms_p50`` / ``overhead_ms_p99`` (a failed request, no
   rewrite: the cost of asking), the other cases per core, and ``wyoming_ms_p50`` /
   ``wyoming_ms_p99``.

Home Assistant, the service and the client share the machine; the figures are for all of them
together.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from selflearn.evaluate import write_results

ROOT = Path(__file__).resolve().parents[1]
CORES = {
    "2024.3": ROOT / ".venv-ha2024" / "bin" / "python",
    "2025.4": ROOT / ".venv-ha2025" / "bin" / "python",
}


def run_core(python: Path, requests: int) -> dict[str, Any]:
    if not python.exists():
        sys.exit(f"error: {python} is missing: run `make test-ha` first")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ha.json"
        env = {
            **os.environ,
            "SELFLEARN_BENCH_N": str(requests),
            "SELFLEARN_BENCH_OUT": str(out),
            "SELFLEARN_PYTHON": sys.executable,
        }
        subprocess.run(
            [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "bench_latency.py"],
            cwd=ROOT / "tests_ha",
            env=env,
            check=True,
        )
        figures: dict[str, Any] = json.loads(out.read_text())
    return figures


TRAINED = ROOT / "bench" / ".cache" / "online" / "rewriter-train-360mix-k5"
REPLAY = ROOT / "bench" / ".cache" / "online" / "replay-held-out-control"


def run_wyoming(requests: int) -> dict[str, Any]:
    """The Wyoming round trip: with the flagship rewriter and a simulated household's own
    requests when ``bench/online.py`` has left them in the cache, else the built-in workload."""
    cmd = [sys.executable, str(ROOT / "bench" / "wyoming_latency.py"), "--requests", str(requests)]
    if TRAINED.exists() and REPLAY.exists():
        cmd += ["--rewriter", str(TRAINED), "--sim", str(REPLAY)]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            cmd,
            env={**os.environ, "SELFLEARN_RESULTS": tmp},
            check=True,
        )
        record = json.loads((Path(tmp) / "wyoming.json").read_text())
    figures: dict[str, Any] = record["figures"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per case (default 1000)")
    parser.add_argument("--cores", default="2024.3,2025.4", help="Home Assistant cores to measure")
    parser.add_argument("--no-wyoming", action="store_true", help="skip the Wyoming round trip")
    args = parser.parse_args()
    started = time.monotonic()
    per_core: dict[str, Any] = {}
    for name in args.cores.split(","):
        if name not in CORES:
            sys.exit(f"error: unknown core {name!r} (choose from {', '.join(CORES)})")
        print(f"Home Assistant {name}: {args.requests:,} requests per case", file=sys.stderr)
        per_core[name] = run_core(CORES[name], args.requests)
    figures: dict[str, Any] = {
        "ha_versions_tested": [c["home_assistant"] for c in per_core.values()],
        # The headline: a request Home Assistant failed and selflearn had no rewrite for (the
        # cost of asking), the worst core.
        "overhead_ms_p50": max(c["failed_no_rewrite"]["overhead_ms"]["p50"] for c in per_core.values()),
        "overhead_ms_p99": max(c["failed_no_rewrite"]["overhead_ms"]["p99"] for c in per_core.values()),
        "cores": per_core,
    }
    if not args.no_wyoming:
        wyoming = run_wyoming(args.requests)
        figures["wyoming"] = wyoming
        ha_way = wyoming["ways"]["connection_per_request"]["latency_ms"]  # as Home Assistant calls it
        figures["wyoming_ms_p50"], figures["wyoming_ms_p99"] = ha_way["p50"], ha_way["p99"]
    for name, core in per_core.items():
        for case in ("understood", "failed_no_rewrite", "failed_rewritten", "understood_logging"):
            o = core[case]["overhead_ms"]
            print(f"{name} {case:20s} overhead p50 {o['p50']:.2f} ms, p99 {o['p99']:.2f} ms")
    write_results("integration", figures, seconds=time.monotonic() - started)


if __name__ == "__main__":
    main()
