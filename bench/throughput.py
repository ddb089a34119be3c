"""Simulator and ingest throughput, and the quarantine accounting on a file of malformed rows.

    python bench/throughput.py --turns 1000000 --workers 2     # the benchmark-page figures
    python bench/throughput.py --turns 20000                    # a quick look
    python bench/throughput.py --stages 12                      # where one process's time goes

Simulates households with the ``noisy`` ASR channel until at least ``--turns`` turns exist
(streamed to disk, so memory stays flat), ingests them into a fresh DuckDB store, then ingests a
file of malformed rows and prints the quarantine accounting.

``--stages N`` simulates N households x ``--days`` in this one process instead and attributes its
time to the stages of Home Assistant's NLU (strict templates, the gazetteer fallback, the
unmatched-entity pass that words the error) and to the simulator's ground truth (re-running the
words the user actually said), then states the ceiling that the NLU alone puts on throughput.

The simulation's CPU time (this process and its workers, user + system) is printed next to its
wall-clock rate: on a machine shared with other jobs, CPU seconds per 1,000 turns is the
steadier figure, and turns/s on idle cores is about workers x 1,000 / (CPU-s per 1,000 turns).

Figures go to ``docs/results/throughput.json`` (``throughput-stages.json`` for ``--stages``; to
``$SELFLEARN_RESULTS`` when set). ``--stages`` times two internals of selflearn on purpose
(:data:`NLU_STAGES`, :data:`TRUTH_STEP`): it patches them for the one simulation it runs.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from unittest import mock

import orjson

from selflearn.assistant.nlu import HomeAssistantNlu
from selflearn.assistant.pipeline import AssistantConfig
from selflearn.core.schema import MAX_TEXT_CHARS, FailurePoint
from selflearn.core.store import Store
from selflearn.evaluate import write_results
from selflearn.simulation.household import _HouseholdRun
from selflearn.simulation.simulator import SimulationConfig, simulate

ROOT = Path(__file__).resolve().parents[1]

# Sizes the population for --turns. Measured 2026-11-23: 35,439 turns from 40 households x 14 days
# (bench/online.py's seen/control replay; was 53 before users chained requests).
TURNS_PER_HOUSEHOLD_DAY = 63.0


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the workers)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def malformed_rows(valid: list[str]) -> list[str]:
    """Malformed variants of real rows: one of each kind of defect, then the valid rows."""
    rows = [json.loads(line) for line in valid[:6]]
    bad = []
    wrong_type = dict(rows[0], turn_id="bad-type")
    wrong_type["asr"] = dict(wrong_type["asr"], confidence="very")
    bad.append(json.dumps(wrong_type))
    missing = {k: v for k, v in rows[1].items() if k != "household_id"}
    missing["turn_id"] = "bad-missing"
    bad.append(json.dumps(missing))
    bad.append(valid[2][: len(valid[2]) // 2])  # broken JSON: a truncated line
    bad.append(json.dumps(dict(rows[3], turn_id="bad-long", text="la " * MAX_TEXT_CHARS)))
    bad.append(valid[4])  # duplicate turn id (valid[4] is also in the good part below)
    bad.append(json.dumps(dict(rows[5], turn_id="bad-naive-time", timestamp="2026-01-05T08:00:00")))
    return valid[:50] + bad


def replicate(files: list[Path], rows: int, out: Path) -> Path:
    """Write ``rows`` real simulated records, copied under new ids (``...-rK``) as often as needed."""
    lines = [line for f in files for line in f.read_bytes().splitlines() if line]
    written = 0
    with out.open("wb") as fh:
        copy = 0
        while written < rows:
            suffix = f"-r{copy}".encode()
            for line in lines:
                record = orjson.loads(line)
                for key in ("turn_id", "feedback_id", "session_id"):
                    if key in record:
                        record[key] = record[key] + suffix.decode()
                fh.write(orjson.dumps(record) + b"\n")
                written += 1
                if written >= rows:
                    break
            copy += 1
    return out


P = ParamSpec("P")
R = TypeVar("R")

NLU_STAGES: tuple[Callable[..., object], ...] = (
    HomeAssistantNlu._strict,
    HomeAssistantNlu._gazetteer_match,
    HomeAssistantNlu._unmatched,
    HomeAssistantNlu.recognize,
)
"""Methods of :class:`HomeAssistantNlu` that ``--stages`` times (by name, without underscores):
its internal stages (strict templates, the gazetteer fallback, the unmatched-entity pass that
words the error) and ``recognize`` around them. Internals on purpose: nothing public splits the
NLU's time; named here, not as strings, so that a renamed stage fails the type check."""

TRUTH_STEP: Callable[..., FailurePoint] = _HouseholdRun._failure_point
"""The internal method of the simulator's ``_HouseholdRun`` that works out a turn's ground truth
(re-running the words the user actually said): NLU time spent inside it is ``truth:...``."""


class StageClock:
    """Wall-clock time and calls per ``phase:stage``; the phase is ``turn`` except inside
    :data:`TRUTH_STEP`, where it is ``truth``."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.phase = "turn"

    def timed(self, stage: str, fn: Callable[P, R]) -> Callable[P, R]:
        """``fn``, its time and calls counted under ``<phase>:<stage>``."""

        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            key = f"{self.phase}:{stage}"
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[key] = self.spent.get(key, 0.0) + time.perf_counter() - started
                self.calls[key] = self.calls.get(key, 0) + 1

        return wrapper

    def in_truth(self, fn: Callable[P, R]) -> Callable[P, R]:
        """``fn``, run in the ``truth`` phase."""

        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            self.phase = "truth"
            try:
                return fn(*args, **kwargs)
            finally:
                self.phase = "turn"

        return wrapper

    @contextmanager
    def patched(self) -> Iterator[StageClock]:
        """Patch :data:`NLU_STAGES` and :data:`TRUTH_STEP` (in this process) while inside."""
        with ExitStack() as stack:
            for method in NLU_STAGES:
                name = method.__name__
                timed = self.timed(name.strip("_"), method)
                stack.enter_context(mock.patch.object(HomeAssistantNlu, name, timed))
            truth = self.in_truth(TRUTH_STEP)
            stack.enter_context(mock.patch.object(_HouseholdRun, TRUTH_STEP.__name__, truth))
            yield self


def stage_breakdown(households: int, days: float, work: Path) -> dict[str, Any]:
    """Simulate in this process and print how its time splits over the NLU's stages; returns
    the figures."""
    clock = StageClock()
    spent, calls = clock.spent, clock.calls
    config = SimulationConfig(
        households=households, days=days, seed=1, workers=1, assistant=AssistantConfig(asr="noisy")
    )
    with clock.patched():
        cpu_before = time.process_time()
        sim = simulate(config, work / "sim-stages")
        cpu = time.process_time() - cpu_before
    per_turn = 1000 * cpu / sim.turns
    print(
        f"one process: {households} households x {days:g} days, {sim.turns:,} turns in {cpu:.1f} CPU-s "
        f"= {per_turn:.2f} ms per turn (start-up included: templates, gazetteer number trie)"
    )
    print("| stage | calls | calls per turn | ms per call | ms per turn | share |")
    print("|---|---:|---:|---:|---:|---:|")
    stages = []
    for key in sorted(spent, key=lambda k: -spent[k]):
        ms = 1000 * spent[key]
        print(
            f"| {key} | {calls[key]:,} | {calls[key] / sim.turns:.2f} | {ms / calls[key]:.3f} | "
            f"{ms / sim.turns:.3f} | {ms / 1000 / cpu:.0%} |"
        )
        stages.append(
            {
                "stage": key,
                "calls": calls[key],
                "calls_per_turn": round(calls[key] / sim.turns, 3),
                "ms_per_call": round(ms / calls[key], 4),
                "ms_per_turn": round(ms / sim.turns, 4),
                "share_of_cpu": round(ms / 1000 / cpu, 4),
            }
        )
    nlu_ms = 1000 * (spent.get("turn:recognize", 0.0) + spent.get("truth:recognize", 0.0)) / sim.turns
    gaz_ms = (
        1000 * (spent.get("turn:gazetteer_match", 0.0) + spent.get("truth:gazetteer_match", 0.0)) / sim.turns
    )
    print(
        f"ceiling on 2 cores with everything but the NLU free: {2000 / nlu_ms:,.0f} turns/s; with everything "
        f"but the gazetteer fallback free: {2000 / gaz_ms:,.0f} turns/s (target: 1,667 turns/s)"
    )
    return {
        "households": households,
        "days": days,
        "turns": sim.turns,
        "cpu_seconds": round(cpu, 2),
        "ms_per_turn": round(per_turn, 4),
        "stages": stages,
        "ceiling_2_cores_nlu_turns_per_s": round(2000 / nlu_ms),
        "ceiling_2_cores_gazetteer_turns_per_s": round(2000 / gaz_ms),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument(
        "--ingest-rows",
        type=int,
        default=0,
        help="ingest this many rows: simulated ones replicated under new ids (0: as simulated)",
    )
    parser.add_argument("--reuse", action="store_true", help="reuse the simulation already in --work")
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "bench-throughput")
    parser.add_argument(
        "--stages",
        type=int,
        metavar="N",
        default=0,
        help="instead: simulate N households in this process and split the time over the NLU's stages",
    )
    args = parser.parse_args()
    started_all = time.perf_counter()
    if args.stages:
        args.work.mkdir(parents=True, exist_ok=True)
        figures = stage_breakdown(args.stages, args.days, args.work)
        write_results("throughput-stages", figures, seconds=time.perf_counter() - started_all)
        return 0
    results: dict[str, Any] = {"simulate": None}
    if not args.reuse:
        shutil.rmtree(args.work, ignore_errors=True)
        args.work.mkdir(parents=True)
    households = max(1, round(args.turns / (TURNS_PER_HOUSEHOLD_DAY * args.days)))
    config = SimulationConfig(
        households=households,
        days=args.days,
        seed=1,
        workers=args.workers,
        assistant=AssistantConfig(asr="noisy"),
    )
    if not args.reuse:
        cpu_before = _cpu_seconds()
        sim = simulate(config, args.work / "sim")
        cpu = _cpu_seconds() - cpu_before
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"simulate: {households} households x {args.days:g} days, {args.workers} workers, noisy ASR: "
            f"{sim.turns:,} turns (+{sim.feedback:,} feedback events) in {sim.seconds:.1f} s = "
            f"{sim.turns / sim.seconds:,.0f} turns/s; CPU {cpu:,.1f} s = "
            f"{1000 * cpu / sim.turns:.2f} CPU-s per 1,000 turns ({sim.turns / cpu:,.0f} turns per "
            f"CPU-second, {100 * cpu / (sim.seconds * args.workers):.0f} % of {args.workers} cores); "
            f"peak RSS {max(rss_mb, rss_self):,.0f} MB per process; "
            f"first-attempt defect rate {sim.first_attempt_defect_rate:.1%}"
        )
        results["simulate"] = {
            "households": households,
            "days": args.days,
            "workers": args.workers,
            "asr": "noisy",
            "turns": sim.turns,
            "feedback": sim.feedback,
            "seconds": round(sim.seconds, 2),
            "turns_per_s": round(sim.turns / sim.seconds, 1),
            "cpu_seconds": round(cpu, 2),
            "cpu_s_per_1000_turns": round(1000 * cpu / sim.turns, 3),
            "turns_per_cpu_s": round(sim.turns / cpu, 1),
            "core_use": round(cpu / (sim.seconds * args.workers), 3),
            "peak_rss_mb": round(max(rss_mb, rss_self)),
            "first_attempt_defect_rate": round(sim.first_attempt_defect_rate, 4),
        }
    for stale in (
        args.work / "bench.duckdb",
        args.work / "bench.duckdb.wal",
        args.work / "quarantine-demo.duckdb",
    ):
        stale.unlink(missing_ok=True)

    store_path = args.work / "bench.duckdb"
    turn_files = sorted((args.work / "sim").glob("turns-*.jsonl"))
    if args.ingest_rows:
        turn_files = [replicate(turn_files, args.ingest_rows, args.work / "replicated.jsonl")]
    started = time.perf_counter()
    with Store(store_path) as store:
        report = store.ingest(turn_files)
    elapsed = time.perf_counter() - started
    print(
        f"ingest: {report.summary()} in {elapsed:.1f} s = {report.read / elapsed:,.0f} rows/s "
        f"(turns {report.by_table['turns']:,}, feedback {report.by_table['feedback']:,})"
    )
    results["ingest"] = {
        "rows": report.read,
        "stored": report.stored,
        "already_present": report.already_present,
        "quarantined": report.quarantined,
        "turns": report.by_table["turns"],
        "feedback": report.by_table["feedback"],
        "seconds": round(elapsed, 2),
        "rows_per_s": round(report.read / elapsed, 1),
    }

    valid = sorted((args.work / "sim").glob("turns-*.jsonl"))[0].read_text().splitlines()
    bad_file = args.work / "malformed.jsonl"
    bad_file.write_text("\n".join(malformed_rows(valid)) + "\n")
    with Store(args.work / "quarantine-demo.duckdb") as store:
        q = store.ingest([bad_file], quarantine_path=args.work / "quarantine.jsonl")
    print(f"quarantine demo: {q.summary()}")
    quarantined = []
    for line in (args.work / "quarantine.jsonl").read_text().splitlines():
        row = json.loads(line)
        print(f"  row {row['row']}: field {row['field']}: {row['reason'][:110]}")
        quarantined.append({"row": row["row"], "field": row["field"], "reason": row["reason"]})
    results["quarantine"] = {
        "read": q.read,
        "stored": q.stored,
        "already_present": q.already_present,
        "quarantined": q.quarantined,
        "balanced": q.balanced,
        "reasons": dict(q.reasons),
        "rows": quarantined,
    }
    write_results("throughput", results, seconds=time.perf_counter() - started_all)
    return 0


if __name__ == "__main__":
    sys.exit(main())
