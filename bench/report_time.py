"""How long `selflearn report` takes on the demo's store (issue 31's target: under 10 s).

    selflearn demo                    # writes out/demo (a few minutes)
    python bench/report_time.py       # times `selflearn report` on it, --runs times

Each run is the whole command as a person types it (a new process: Python start-up, imports,
reading the store, loading the rewriter when ``--rewriter`` is given, rendering, writing the
file), timed from outside; once with the mined table only and once with the online rewriter
(which also asks the rewriter about the top failing requests). Figures go to
``docs/results/report.json``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selflearn.core.store import Store
from selflearn.evaluate import write_results


def _time(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "selflearn", "report", *args], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--demo", type=Path, default=Path("out/demo"), help="the folder `selflearn demo` wrote"
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    store = args.demo / "demo.duckdb"
    if not store.exists():
        parser.error(f"no demo store at {store}: run `selflearn demo` first")
    with Store(store, read_only=True) as s:
        turns = s.count("turns")
    figures: dict[str, object] = {
        "store": str(store),
        "turns": turns,
        "runs": args.runs,
        "target_seconds": 10,
    }
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "report.html")
        variants = {
            "table": ["--table", str(args.demo / "rewrites")],
            "rewriter": ["--rewriter", str(args.demo / "rewriter")],
        }
        for name, extra in variants.items():
            seconds = [_time(["--store", str(store), "--out", out, *extra]) for _ in range(args.runs)]
            figures[name] = {
                "median_seconds": round(statistics.median(seconds), 2),
                "max_seconds": round(max(seconds), 2),
                "bytes": Path(out).stat().st_size,
            }
            print(f"[report] {name}: median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s")
    write_results("report", figures)


if __name__ == "__main__":
    main()
