"""How long ``selflearn serve`` takes to remember a home after a restart: a year of one home.

    python bench/rebuild_time.py                  # 1 household x 365 days, the starter rewriter

One household of the evaluation population ``held-out`` talks for a year to the reference
assistant asking and teaching (simulated; its answers to "Did you mean ...?" and its lessons are
in the log), its records are stored as the service stores them, and the service is started on
that store the way the guide starts it (``--rebuild``, the default): every turn and feedback
replayed into the personal layer, the taught concepts and the refusals taken. Measured: the turns,
the records replayed, the rebuild's seconds (``/healthz``'s ``dialogue.rebuilt``) and the whole
start (the app created, the rewriter loaded). Figures to ``docs/results/rebuild.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from selflearn.core.store import Store
from selflearn.evaluate import population, write_results
from selflearn.rewrite.rewriter import Rewriter
from selflearn.service import ServiceConfig
from selflearn.service.state import Service
from selflearn.simulation.simulator import simulate

STARTER = Path(__file__).resolve().parent / ".cache" / "starter" / "rewriter"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=float, default=365.0)
    parser.add_argument("--rewriter", type=Path, default=STARTER)
    args = parser.parse_args()
    if not (args.rewriter / "model.json").exists():
        raise SystemExit(
            f"no rewriter at {args.rewriter}: build it with `selflearn starter --out {args.rewriter}`"
        )
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="selflearn-rebuild-"))
    config = population("held-out").config(workers=1, households=1, days=args.days)
    rewriter = Rewriter.load(args.rewriter)
    rewriter.config = replace(rewriter.config, confirm="guesses")
    assistant = replace(config.assistant, ask=True, teach=True, rewrite_when="on_failure")
    clock = time.perf_counter()
    result = simulate(replace(config, assistant=assistant), work / "sim", rewriter=rewriter)
    simulated = time.perf_counter() - clock
    print(f"[rebuild] simulated {result.turns:,} turns in {simulated:.0f} s", file=sys.stderr)
    store_path = work / "home.duckdb"
    with Store(store_path) as store:
        report = store.ingest([work / "sim"])
        turns = store.count("turns")
        acts = store.count("dialogue_acts")
    print(f"[rebuild] {report.summary()}", file=sys.stderr)
    clock = time.perf_counter()
    service = Service(ServiceConfig(rewriter=args.rewriter, store=store_path))
    start_s = time.perf_counter() - clock
    rebuilt = dict(service.rebuilt)
    households = len(service.artifact.rewriter.personal.memories)
    service.close()
    clock = time.perf_counter()
    bare = Service(ServiceConfig(rewriter=args.rewriter, store=store_path, rebuild=False))
    bare_s = time.perf_counter() - clock
    bare.close()
    figures = {
        "days": args.days,
        "turns": turns,
        "dialogue_acts": acts,
        "questions_asked": result.questions,
        "records_replayed": rebuilt.get("records"),
        "concepts": rebuilt.get("concepts"),
        "declined": rebuilt.get("declined"),
        "rebuild_seconds": rebuilt.get("seconds"),
        "start_seconds": round(start_s, 2),
        "start_seconds_without_rebuild": round(bare_s, 2),
        "households_remembered": households,
        "rewriter": str(args.rewriter),
    }
    command = "python bench/rebuild_time.py " + " ".join(sys.argv[1:])
    write_results("rebuild", figures, command=command.strip(), seconds=time.perf_counter() - started)
    print(figures)


if __name__ == "__main__":
    main()
