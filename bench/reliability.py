"""Reliability, safety, privacy and security, measured (docs/reliability.md).

    python bench/reliability.py setup                       # population, store, rewriters (cached)
    python bench/reliability.py fuzz --cases 10000          # schemathesis against a live service
    python bench/reliability.py kills --per-command 50      # kill -9 at random points, then check
    python bench/reliability.py kills --per-command 25 --seed 43 --add   # 25 more at other points
    python bench/reliability.py load --rates 200,400,600,800,1000 --duration 30
    python bench/reliability.py soak --minutes 10 --rate 200 --swap-every 60
    python bench/reliability.py burst --factor 5 --rate 200 --duration 20
    python bench/reliability.py safety --scenarios 2000     # bench/safety_paths.py over many homes
    python bench/reliability.py forget --runs 3             # forget, relearn, search every file

Each part writes its figures into ``docs/results/reliability.json`` (or ``$SELFLEARN_RESULTS``),
merged with the other parts' (each part keeps its own command, date and commit under ``parts``),
and prints them. Run the heavy parts one at a time on a shared machine (``nice -n 10``). The
figures the issue asks for, under ``figures``: ``fuzz_cases``, ``fuzz_5xx``, ``fuzz_crashes``,
``kills``, ``kills_lost_rows``, ``kills_unopenable``, ``load_rps``, ``load_p99_ms``,
``soak_rss_slope_mb_per_min``, ``soak_failed_requests``, ``sensitive_unasked``, ``forget_residue``.

The load generator is ``bench/http_load.py``'s open-loop one (latency from each request's
scheduled time, so stalls are not hidden), here sending a mix of ``POST /v1/rewrite`` and
``POST /v1/turns`` over keep-alive connections from its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from http_load import free_port
from reliability_common import (
    AUTH,
    PY,
    ROOT,
    TOKEN,
    _healthy,
    _home_rows,
    _start_serve,
    reference,
    setup,
)
from reliability_kills import KILL_COMMANDS, kills_from_log, run_kills, summarize
from reliability_load import run_burst, run_load, run_soak

# --- fuzzing: schemathesis against a live service ----------------------------------------------------


def run_fuzz(cases: int, seed: int, workers: int) -> dict[str, Any]:
    cache = setup()
    ops = 17
    per_op = max(50, cases // ops)
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        work = Path(tmp)
        shutil.copy(cache / "scored.duckdb", work / "s.duckdb")
        port = free_port()
        proc = _start_serve(
            work,
            port,
            "--rewriter",
            str(cache / "models" / "rewriter"),
            "--models-dir",
            str(cache / "models"),
            "--admin-token",
            TOKEN,
        )
        if not _healthy(port, proc, 300):
            raise SystemExit("the service did not start")
        for row in _home_rows()[:3]:
            httpx.put(
                f"http://127.0.0.1:{port}/v1/homes/{row['home_id']}", json=row, headers=AUTH, timeout=60
            ).raise_for_status()
        excused = work / "excused.jsonl"
        env = {
            **os.environ,
            "SCHEMATHESIS_HOOKS": "fuzz_hooks",
            "PYTHONPATH": str(ROOT / "bench"),
            "SELFLEARN_FUZZ_EXCUSED": str(excused),
        }
        started = time.perf_counter()
        cmd = [
            str(Path(PY).with_name("st")),
            "--config-file",
            str(ROOT / "bench" / "schemathesis.toml"),
            "run",
            f"http://127.0.0.1:{port}/openapi.json",
            "--checks",
            "all",
            "-n",
            str(per_op),
            "--seed",
            str(seed),
            "-H",
            f"Authorization: Bearer {TOKEN}",
            "--continue-on-failure",
            "-w",
            str(workers),
            "--request-timeout",
            "30",
            "--max-response-time",
            "10",
            "--report",
            "json",
            "--report-dir",
            str(work / "report"),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=work)
        alive = proc.poll() is None
        proc.terminate()
        proc.wait(30)
        report = json.loads(next((work / "report").glob("*.json")).read_text())
        log = (work / "serve.log").read_text()
        tracebacks = log.count("Traceback (most recent call last)")
        excuses = (
            Counter(
                json.loads(line)["code"] + " " + json.loads(line)["operation"]
                for line in excused.read_text().splitlines()
            )
            if excused.exists()
            else Counter()
        )
    failures = {
        f["code"] + " " + f["title"]: {"count": f["count"], "operations": f["operations"]}
        for f in report.get("failures", [])
    }
    server_errors = sum(f["count"] for f in report.get("failures", []) if f["code"] == "ST100")
    return {
        "figures": {
            "fuzz_cases": report["test_cases"]["generated"],
            "fuzz_5xx": server_errors,
            "fuzz_crashes": (0 if alive else 1) + len(report.get("errors") or []),
            "fuzz_contract_failures": sum(f["count"] for f in report.get("failures", [])),
        },
        "operations": report["operations"],
        "failures": failures,
        "excused": dict(excuses),
        "server_tracebacks_logged": tracebacks,
        "schemathesis": report.get("schemathesis_version"),
        "seconds": round(time.perf_counter() - started, 1),
        "exit_code": done.returncode,
        "tail": done.stdout[-1500:],
    }


# --- safety and privacy at scale -----------------------------------------------------------------------


def run_safety(scenarios: int) -> dict[str, Any]:
    from hypothesis import HealthCheck, given, settings

    import safety_paths

    totals: Counter[str] = Counter()
    violations: list[dict[str, str]] = []

    @settings(
        max_examples=scenarios,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(scenario=safety_paths.scenarios())
    def check(scenario: Any) -> None:
        out = safety_paths.run(scenario)
        totals["scenarios"] += 1
        totals["requests"] += out.requests
        totals["questions"] += out.questions
        totals["sensitive_asked"] += out.sensitive_asked
        totals["violations"] += len(out.violations)
        violations.extend(asdict(v) for v in out.violations[:3])

    check()
    return {
        "figures": {"sensitive_unasked": totals["violations"]},
        "totals": dict(totals),
        "violations": violations[:30],
        "paths_by_violation": dict(Counter(v["path"] for v in violations)),
    }


def run_forget(runs: int) -> dict[str, Any]:
    """The privacy test's proof for ``runs`` different households: forget it, run every learner and
    export again, and search every file for its ids, its name, what it taught and its texts."""
    records: list[dict[str, Any]] = []
    codes = []
    for i in range(runs):
        victim = f"h{i + 1:06d}"
        with tempfile.TemporaryDirectory(prefix="forget-") as tmp:
            report = Path(tmp) / "report.jsonl"
            env = {**os.environ, "SELFLEARN_PRIVACY_VICTIM": victim, "SELFLEARN_PRIVACY_REPORT": str(report)}
            args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_privacy.py", "-k", "no_trace"]
            code = subprocess.run(
                [PY, *args, f"--basetemp={Path(tmp) / 'base'}"], cwd=ROOT, env=env
            ).returncode
            codes.append(int(code))
            if report.exists():
                records += [json.loads(line) for line in report.read_text().splitlines()]
            print(f"  {victim}: pytest exit {int(code)}")
    residue = sum(len(r["residue"]) for r in records)
    missing = runs - len(records)  # a run that did not get as far as the search
    return {
        "figures": {"forget_residue": residue if not missing else None},
        "runs": records,
        "pytest_exit_codes": codes,
        "runs_without_a_search": missing,
    }


# --- results -----------------------------------------------------------------------------------------

KEYS = (
    "fuzz_cases",
    "fuzz_5xx",
    "fuzz_crashes",
    "kills",
    "kills_lost_rows",
    "kills_unopenable",
    "load_rps",
    "load_p99_ms",
    "soak_rss_slope_mb_per_min",
    "soak_failed_requests",
    "sensitive_unasked",
    "forget_residue",
)


def write(part: str, result: dict[str, Any], seconds: float, add: bool = False) -> None:
    """Merge ``result`` into the results file as ``part``. A kills run of some commands replaces
    those commands' figures (``add``: adds to them) and keeps the others'."""
    from selflearn.evaluate.results import COMMIT_AT_START, command_line, results_folder, write_results

    path = results_folder() / "reliability.json"
    old = json.loads(path.read_text())["figures"] if path.exists() else {}
    parts = dict(old.get("parts", {}))
    run = {
        "command": command_line(),
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d"),
        "commit": COMMIT_AT_START,
        "seconds": round(seconds, 1),
        **({"seed": result.pop("seed")} if "seed" in result else {}),
    }
    if "command" in result:  # kills recorded from another run's log: that run's command, and how
        run["command"] = result.pop("command")
    parts[part] = {**run, **result}
    previous = old.get("parts", {}).get(part, {})
    if (
        part == "kills"
        and previous
        and (add or set(result["by_command"]) != set(previous.get("by_command", {})))
    ):
        result = _merge_kills(previous, result, run, add=add)  # the other runs' figures are kept
        parts[part] = {**parts[part], **result}
    figures = {k: old.get(k) for k in KEYS}
    for p in parts.values():
        figures.update(p.get("figures", {}))
    write_results("reliability", {**figures, "parts": parts}, seconds=seconds)
    print(json.dumps(result.get("figures", {}), indent=2))


KILL_COUNTS = (
    "kills",
    "while_running",
    "unopenable",
    "lost_rows",
    "duplicated_rows",
    "half_artefacts",
    "rerun_incomplete",
    "acknowledged_checked",
)


def _kill_runs(part: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs a kills part holds, each with its command and its kills per command. A part written
    before runs were recorded names one command: the commands its ``--commands`` lists are that
    run's, any others came from an earlier run whose command line was not kept."""
    if "runs" in part:
        return [dict(r) for r in part["runs"]]
    by = part.get("by_command", {})
    words = part.get("command", "").split()
    named = set(words[words.index("--commands") + 1].split(",")) if "--commands" in words else set(by)
    own = {c: b["kills"] for c, b in by.items() if c in named}
    earlier = {c: b["kills"] for c, b in by.items() if c not in named}
    runs = []
    if earlier:
        runs.append(
            {
                "command": "an earlier kills run (its command line was not recorded)",
                "seed": 42,  # the only seed before --seed
                "kills_by_command": earlier,
            }
        )
    keys = ("command", "date", "commit", "seconds", "loadavg_after", "seed")
    runs.append({"seed": 42, **{k: part[k] for k in keys if k in part}, "kills_by_command": own})
    return runs


def _merge_kills(
    previous: dict[str, Any], fresh: dict[str, Any], run: dict[str, Any], add: bool = False
) -> dict[str, Any]:
    """The kills part with ``fresh``'s commands replacing ``previous``'s (``add``: added to them),
    totals recomputed; ``runs`` lists every run the figures come from, and ``command`` names them all."""
    by = {c: dict(b) for c, b in previous.get("by_command", {}).items()}
    for c, b in fresh["by_command"].items():
        if add and c in by:
            by[c] = {k: by[c].get(k, 0) + b.get(k, 0) for k in KILL_COUNTS}
        else:
            by[c] = dict(b)
    failures = [f for f in previous.get("failures", []) if add or f["command"] not in fresh["by_command"]]
    failures += fresh["failures"]
    runs = _kill_runs(previous)
    if not add:  # the replaced commands' kills are no longer in the figures
        for r in runs:
            r["kills_by_command"] = {
                c: n for c, n in r["kills_by_command"].items() if c not in fresh["by_command"]
            }
        runs = [r for r in runs if r["kills_by_command"]]
    runs.append({**run, "kills_by_command": {c: b["kills"] for c, b in fresh["by_command"].items()}})
    return {
        "command": "; ".join(r["command"] for r in runs),
        "runs": runs,
        "figures": {
            "kills": sum(b["kills"] for b in by.values()),
            "kills_lost_rows": sum(b["lost_rows"] + b["duplicated_rows"] for b in by.values()),
            "kills_unopenable": sum(b["unopenable"] for b in by.values()),
        },
        "by_command": by,
        "failures": failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="part", required=True)
    s = sub.add_parser("setup")
    s.add_argument("--force", action="store_true")
    f = sub.add_parser("fuzz")
    f.add_argument("--cases", type=int, default=10_000)
    f.add_argument("--seed", type=int, default=42)
    f.add_argument("--workers", type=int, default=1)
    k = sub.add_parser("kills")
    k.add_argument("--per-command", type=int, default=50)
    k.add_argument("--commands", default=",".join(KILL_COMMANDS))
    k.add_argument("--seed", type=int, default=42, help="another seed draws other kill times")
    k.add_argument(
        "--add",
        action="store_true",
        help="add these kills to the recorded ones of the same commands (default: replace them)",
    )
    k.add_argument(
        "--from-log",
        type=Path,
        help="record the kills a run printed to this log instead of killing (a run that died before writing)",
    )
    k.add_argument("--log-command", default="", help="with --from-log: the command that wrote the log")
    lo = sub.add_parser("load")
    lo.add_argument("--rates", default="200,400,600,800,1000")
    lo.add_argument("--duration", type=float, default=30)
    lo.add_argument("--warmup", type=float, default=5)
    lo.add_argument("--ingest-share", type=float, default=0.2)
    lo.add_argument("--connections", type=int, default=64)
    so = sub.add_parser("soak")
    so.add_argument("--minutes", type=float, default=10)
    so.add_argument("--rate", type=float, default=200)
    so.add_argument("--swap-every", type=float, default=60)
    so.add_argument("--ingest-share", type=float, default=0.2)
    so.add_argument("--connections", type=int, default=64)
    b = sub.add_parser("burst")
    b.add_argument("--rate", type=float, default=200)
    b.add_argument("--factor", type=float, default=5)
    b.add_argument("--duration", type=float, default=20)
    b.add_argument("--connections", type=int, default=256)
    sa = sub.add_parser("safety")
    sa.add_argument("--scenarios", type=int, default=2000)
    fo = sub.add_parser("forget")
    fo.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"load average before: {os.getloadavg()}")
    if args.part == "setup":
        setup(force=args.force)
        print(json.dumps(reference(), indent=2))
        return
    setup()
    if args.part == "fuzz":
        result = run_fuzz(args.cases, args.seed, args.workers)
    elif args.part == "kills":
        commands = tuple(args.commands.split(","))
        if args.from_log:
            result = summarize(kills_from_log(args.from_log, commands), commands)
            how = (
                "python bench/reliability.py kills --from-log "
                + f"{args.from_log.name} --commands {args.commands}"
            )
            result["command"] = (
                f"{args.log_command}; its kills of these commands recorded from its log by `{how}`"
            )
        else:
            result = run_kills(args.per_command, commands, seed=args.seed)
        result["seed"] = args.seed
    elif args.part == "load":
        result = run_load(
            [float(r) for r in args.rates.split(",")],
            args.duration,
            args.warmup,
            args.ingest_share,
            args.connections,
        )
    elif args.part == "soak":
        result = run_soak(args.minutes, args.rate, args.swap_every, args.ingest_share, args.connections)
    elif args.part == "burst":
        result = run_burst(args.rate, args.factor, args.duration, args.connections)
    elif args.part == "safety":
        result = run_safety(args.scenarios)
    else:
        result = run_forget(args.runs)
    write(args.part, result, time.perf_counter() - started, add=args.part == "kills" and args.add)


if __name__ == "__main__":
    main()
