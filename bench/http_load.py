"""HTTP latency of the rewrite service under a fixed open-loop load, and the server's memory.

    python bench/http_load.py --rewriter models/rewriter                  # 200 req/s for 60 s
    python bench/http_load.py --rewriter models/rewriter --sim out/sim    # texts and homes from a simulation
    python bench/http_load.py --rewriter models/rewriter --store logs.duckdb --rate 400 --duration 30
    python bench/http_load.py --rewriter models/rewriter --reload-every 10  # swap the artefact under load
    python bench/http_load.py --rewriter models/rewriter --behind-nlu      # failed turns, with their n-best
    python bench/http_load.py                                             # no rewriter: HTTP overhead only

Run it from the repository root with the project's Python (``selflearn`` installed: the server is
``python -m selflearn serve``). What it does:

1. **Requests**: real request texts with their household, user, device area and time, from
   ``--texts`` (one text per line), ``--store`` (a DuckDB store's turns) or ``--sim`` (a
   ``selflearn simulate`` folder); by default it simulates ``--households`` households for one day
   (seeded) into a temporary folder. The recognized text is what is sent (before any rewrite).
2. **Server**: ``python -m selflearn serve --rewriter FOLDER`` (uvicorn, one process) on a free
   loopback port, started in a subprocess and polled on ``/healthz`` until it is up. The homes
   of the households are registered (``PUT /v1/homes``), and the first ``--observe`` share of the
   turns is posted to ``/v1/turns`` (no store: they only feed the personal layer), so the
   personal layer holds what a live service would; requests are drawn from the other turns.
3. **Load**: a *separate process* runs an asyncio open-loop generator over a pool of keep-alive
   connections: request ``i`` is due at ``t0 + i / rate`` whatever happened to earlier ones, and
   its latency is measured from that scheduled time to the last byte of the response, so a
   stall shows up in the latency of every request it delays (no coordinated omission). The first
   ``--warmup`` seconds are not counted.
4. **Report**: achieved rate, latency p50/p90/p99/p99.9/max, errors (non-200, connection
   errors, client timeouts), fail-opens (200 with the original text because of a timeout or an
   error), rewritten share, the rewriter's own decision time (``elapsed_us``), CPU time of server
   and generator, the server's resident memory (after loading, after learning, after the run, and
   its peak), the machine's core count and load average before and after. The report is also
   written as JSON to ``docs/results/http_load.json`` (or ``$SELFLEARN_RESULTS``;
   ``http_load-no-rewriter.json`` without ``--rewriter``, ``http_load-reload.json`` with
   ``--reload-every``: they measure something else), and to ``--json FILE`` when given;
   ``--check`` exits 1 when there were errors or p99 exceeded ``--p99-ms``.

The generator shares the machine with the server (and with whatever else runs on it), so the
numbers are an upper bound for the service alone; say so when you quote them, with the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

# selflearn is imported where it is used: the load generator's process imports this module too,
# and its CPU time is reported.


# --- requests ---------------------------------------------------------------------------------


@dataclass
class Workload:
    requests: list[dict[str, Any]]
    """Bodies of POST /v1/rewrite."""
    homes: dict[str, dict[str, Any]]
    """Home configurations by household id."""
    history: list[dict[str, Any]]
    """Log records (turns and feedback) to post to /v1/turns before the load."""
    source: str


def _request_of(turn: dict[str, Any]) -> dict[str, Any]:
    rewrite = turn.get("rewrite") or {}
    device = turn.get("device") or {}
    body = {
        "text": rewrite.get("original_text") or turn["text"],
        "household_id": turn["household_id"],
        "user_id": turn.get("user_id") or "unknown",
        "timestamp": turn["timestamp"],
    }
    if device.get("area"):
        body["area"] = device["area"]
    return body


def _requests(turns: list[dict[str, Any]], behind_nlu: bool) -> list[dict[str, Any]]:
    """One request per turn; ``behind_nlu``: only the turns the assistant failed on, sent as a
    caller behind its NLU would (``failed: true`` and the recogniser's other hypotheses)."""
    if not behind_nlu:
        return [_request_of(t) for t in turns]
    out = []
    for t in turns:
        if (t.get("result") or {}).get("status") == "success":
            continue
        body = _request_of(t)
        body["failed"] = True
        nbest = [h["text"] for h in ((t.get("asr") or {}).get("nbest") or [])[1:]]
        if nbest:
            body["nbest"] = nbest[:10]
        out.append(body)
    return out


def _split(
    records: list[dict[str, Any]], observe: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Records in time order -> (history to learn from, turns to send as requests)."""
    records.sort(key=lambda r: (r["timestamp"], r.get("turn_id") or r.get("feedback_id") or ""))
    cut = int(len(records) * observe)
    future = [r for r in records[cut:] if r.get("record_type", "turn") == "turn" and r.get("text")]
    return records[:cut], future


def workload_from_sim(folder: Path, observe: float, behind_nlu: bool = False) -> Workload:
    homes: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("homes-*.jsonl")):
        for line in path.read_bytes().splitlines():
            home = orjson.loads(line)
            home.pop("record_type", None)
            home.pop("schema_version", None)
            homes[home["home_id"]] = {k: v for k, v in home.items() if k not in ("nicknames", "users")}
    records = [
        orjson.loads(line)
        for path in sorted(folder.glob("turns-*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]
    history, future = _split(records, observe)
    return Workload(_requests(future, behind_nlu), homes, history, f"simulation {folder}")


def workload_from_store(path: Path, observe: float, limit: int, behind_nlu: bool = False) -> Workload:
    from selflearn import Store

    with Store(path, read_only=True) as store:
        homes = {
            row["home_id"]: json.loads(row["config"])
            for row in store.query("SELECT home_id, config FROM homes").to_pylist()
        }
        turns = store.query(
            "SELECT turn_id, household_id, user_id, timestamp, "
            "text, rewrite, device, result, asr FROM turns ORDER BY timestamp, turn_id LIMIT ?",
            [limit],
        ).to_pylist()
    for t in turns:
        t["record_type"] = "turn"
    cut = int(len(turns) * observe)
    # stored turns are not re-posted (they would need every field); the split only keeps the
    # requests to later turns, as with a simulation
    return Workload(_requests(turns[cut:], behind_nlu), homes, [], f"store {path}")


def workload_from_texts(path: Path) -> Workload:
    texts = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not texts:
        raise SystemExit(f"{path} holds no texts")
    requests = [
        {"text": t, "household_id": f"bench{i % 50}", "user_id": f"u{i % 50}"} for i, t in enumerate(texts)
    ]
    return Workload(requests, {}, [], f"texts {path}")


def simulated_workload(households: int, observe: float, work: Path, behind_nlu: bool = False) -> Workload:
    from selflearn.assistant.pipeline import AssistantConfig
    from selflearn.simulation.simulator import SimulationConfig, simulate

    folder = work / "sim"
    config = SimulationConfig(
        households=households,
        days=1.0,
        seed=7,
        household_prefix="load",
        assistant=AssistantConfig(asr="noisy"),
    )
    started = time.perf_counter()
    result = simulate(config, folder)
    print(
        f"simulated {result.turns:,} turns of {households} households "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return workload_from_sim(folder, observe, behind_nlu)


# --- server -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes (Linux)."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def start_server(args: argparse.Namespace, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "selflearn", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--timeout-ms", str(args.timeout_ms), "--decision-threads", str(args.decision_threads)]
    cmd += ["--rate-limit", "0"]  # one generator is one client: the per-client limit would shape the load
    # without one, pass-through (not the packaged starter)
    cmd += ["--rewriter", str(args.rewriter)] if args.rewriter is not None else ["--no-starter"]
    log = log_path.open("wb")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def wait_healthy(
    base: str, server: subprocess.Popen[bytes], log_path: Path, timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited with {server.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            res = httpx.get(base + "/healthz", timeout=2)
            if res.status_code == 200:
                health: dict[str, Any] = res.json()
                return health
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server not up after {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")


# --- load generator (runs in its own process) -------------------------------------------------


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used = 0


async def _exchange(conn: _Conn, payload: bytes) -> tuple[int, bytes]:
    conn.writer.write(payload)
    await conn.writer.drain()
    head = await conn.reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length is None:
        raise ConnectionError("response without Content-Length")
    body = await conn.reader.readexactly(length)
    return status, body


async def _generate(
    port: int, bodies: list[bytes], rate: float, total_s: float, connections: int, timeout_s: float
) -> list[tuple[float, float, int, str, int, bool, str]]:
    """Send ``rate * total_s`` requests on schedule; one row per request:
    (due offset s, latency s, HTTP status or 0, outcome, server elapsed_us, rewritten, layer)."""
    loop = asyncio.get_running_loop()
    pool: asyncio.Queue[_Conn | None] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(None)
    n = int(rate * total_s)
    rows: list[tuple[float, float, int, str, int, bool, str]] = [(0.0, 0.0, 0, "", 0, False, "")] * n
    start = loop.time() + 0.2

    async def one(i: int, due: float, payload: bytes) -> None:
        conn = await pool.get()
        status, outcome, elapsed_us, rewritten, layer = 0, "ok", 0, False, ""
        try:
            for attempt in range(2):
                fresh = conn is None
                if conn is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    conn = _Conn(reader, writer)
                try:
                    status, body = await asyncio.wait_for(_exchange(conn, payload), timeout_s)
                    break
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    # a kept-alive connection the server closed: reconnect once
                    conn.writer.close()
                    conn = None
                    if fresh or attempt == 1:
                        raise exc
            assert conn is not None  # the loop above left by `break`, connected
            conn.used += 1
            if status != 200:
                outcome = f"http {status}"
            else:
                data = orjson.loads(body)
                elapsed_us = int(data.get("elapsed_us") or 0)
                rewritten = bool(data.get("rewritten"))
                layer = str(data.get("layer") or "")
                if data.get("fail_open"):
                    outcome = "fail_open: " + str((data.get("reasons") or ["?"])[0]).split(":")[0]
                elif "text" not in data:
                    outcome = "error: response without text"
        except TimeoutError:
            outcome = "error: client timeout"
            if conn is not None:
                conn.writer.close()
            conn = None
        except Exception as exc:
            outcome = f"error: {type(exc).__name__}"
            if conn is not None:
                conn.writer.close()
            conn = None
        finally:
            pool.put_nowait(conn)
        rows[i] = (due - start, loop.time() - due, status, outcome, elapsed_us, rewritten, layer)

    tasks = []
    for i in range(n):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due, bodies[i % len(bodies)])))
    await asyncio.gather(*tasks)
    while not pool.empty():
        conn = pool.get_nowait()
        if conn is not None:
            conn.writer.close()
    return rows


def generator_main(
    port: int,
    bodies: list[bytes],
    rate: float,
    total_s: float,
    connections: int,
    timeout_s: float,
    out: Any,
    nice: int | None = None,
) -> None:
    """Entry point of the generator process: run the load, send back rows and CPU time."""
    if nice is not None:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    rows = asyncio.run(_generate(port, bodies, rate, total_s, connections, timeout_s))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.send((rows, usage.ru_utime + usage.ru_stime))
    out.close()


def _payload(body: dict[str, Any]) -> bytes:
    data = orjson.dumps(body)
    head = (
        f"POST /v1/rewrite HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


# --- main -------------------------------------------------------------------------------------


def _post_batches(base: str, records: list[dict[str, Any]], size: int = 2000) -> tuple[int, int]:
    observed = quarantined = 0
    with httpx.Client(base_url=base, timeout=600) as client:
        for i in range(0, len(records), size):
            res = client.post("/v1/turns", json=records[i : i + size])
            res.raise_for_status()
            observed += res.json()["observed"]
            quarantined += res.json()["quarantined"]
    return observed, quarantined


def _mb(n: int | None) -> float | None:
    return round(n / 2**20, 1) if n else None


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rewriter", type=Path, help="rewriter folder to serve (default: none, pass-through)"
    )
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--texts", type=Path, help="request texts, one per line")
    src.add_argument("--store", type=Path, help="DuckDB store whose turns give the requests")
    src.add_argument("--sim", type=Path, help="a `selflearn simulate` output folder")
    parser.add_argument("--households", type=int, default=40, help="households to simulate by default")
    parser.add_argument(
        "--observe", type=float, default=0.5, help="share of the turns learned before the load"
    )
    parser.add_argument("--limit", type=int, default=50_000, help="most turns read from --store")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (open loop)")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before measuring")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections of the generator")
    parser.add_argument("--timeout-ms", type=float, default=50.0, help="the service's decision timeout")
    parser.add_argument(
        "--decision-threads",
        type=int,
        default=1,
        help="the service's decision threads (0: event loop; 1, the service's default)",
    )
    parser.add_argument(
        "--client-timeout", type=float, default=5.0, help="seconds before a request is an error"
    )
    parser.add_argument(
        "--reload-every", type=float, default=None, help="POST /v1/admin/reload every S seconds"
    )
    parser.add_argument("--startup-timeout", type=float, default=900.0, help="seconds to wait for the server")
    parser.add_argument("--p99-ms", type=float, default=15.0, help="budget for --check")
    parser.add_argument("--check", action="store_true", help="exit 1 on errors or p99 over --p99-ms")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument(
        "--nice",
        type=int,
        default=None,
        help="run server and generator at this nice value (e.g. -5 on a shared machine, as root)",
    )
    parser.add_argument(
        "--behind-nlu",
        action="store_true",
        help="send only the turns the assistant failed on, with failed=true and the ASR's other "
        "hypotheses (how a caller behind its NLU uses the service); default: every turn, no context",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.observe < 0 or args.observe >= 1:
        parser.error("--observe must be in [0, 1)")

    work = Path(tempfile.mkdtemp(prefix="selflearn-http-load-"))
    try:
        if args.texts:
            workload = workload_from_texts(args.texts)
        elif args.store:
            workload = workload_from_store(args.store, args.observe, args.limit, args.behind_nlu)
        elif args.sim:
            workload = workload_from_sim(args.sim, args.observe, args.behind_nlu)
        else:
            workload = simulated_workload(args.households, args.observe, work, args.behind_nlu)
        if not workload.requests:
            raise SystemExit("no requests in the workload")
        random.Random(args.seed).shuffle(workload.requests)
        run(args, workload, work, started)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, workload: Workload, work: Path, begun: float) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = work / "server.log"
    load_before = os.getloadavg()
    started = time.perf_counter()
    server = start_server(args, port, log_path)
    try:
        health = wait_healthy(base, server, log_path, args.startup_timeout)
        if args.nice is not None:
            os.setpriority(os.PRIO_PROCESS, server.pid, args.nice)
        startup_s = time.perf_counter() - started
        mem_loaded = proc_status(server.pid)
        print(
            f"server up in {startup_s:.1f} s ({health['status']}, version {health['version']}), "
            f"RSS {_mb(mem_loaded.get('VmRSS'))} MB"
        )
        if health["status"] != "ok":
            print(f"  degraded: {health['reasons']}")
        with httpx.Client(base_url=base, timeout=60) as client:
            for household, home in workload.homes.items():
                client.put(f"/v1/homes/{household}", json=home).raise_for_status()
        observed, quarantined = _post_batches(base, workload.history) if workload.history else (0, 0)
        mem_learned = proc_status(server.pid)
        print(
            f"registered {len(workload.homes):,} homes, learned from {observed:,} records "
            f"({quarantined:,} rejected); RSS {_mb(mem_learned.get('VmRSS'))} MB"
        )
        bodies = [_payload(b) for b in workload.requests]
        total_s = args.warmup + args.duration
        reloads: list[tuple[int, float]] = []
        stop = threading.Event()

        def reloader() -> None:
            assert args.reload_every is not None
            with httpx.Client(base_url=base, timeout=600) as client:
                while not stop.wait(args.reload_every):
                    t = time.perf_counter()
                    res = client.post("/v1/admin/reload")
                    reloads.append((res.status_code, time.perf_counter() - t))

        cpu_server_before = proc_cpu_s(server.pid)
        ctx = mp.get_context("spawn")
        receiver, sender = ctx.Pipe(duplex=False)
        gen = ctx.Process(
            target=generator_main,
            args=(port, bodies, args.rate, total_s, args.connections, args.client_timeout, sender, args.nice),
        )
        print(
            f"load: {args.rate:g} req/s for {args.warmup:g} s warm-up + {args.duration:g} s measured, "
            f"{len(bodies):,} distinct requests from {workload.source}"
        )
        gen.start()
        sender.close()
        thread = threading.Thread(target=reloader, daemon=True) if args.reload_every else None
        if thread is not None:
            thread.start()
        rows, gen_cpu = receiver.recv()
        gen.join()
        stop.set()
        if thread is not None:
            thread.join()
        cpu_server = proc_cpu_s(server.pid) - cpu_server_before
        mem_after = proc_status(server.pid)
        metrics = httpx.get(base + "/metrics", timeout=10).text
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    report = summarize(args, rows, workload, health, startup_s, mem_loaded, mem_learned, mem_after, reloads)
    report["cpu_s"] = {"server": round(cpu_server, 2), "generator": round(gen_cpu, 2)}
    report["cpu_ms_per_request"] = {"server": round(1000 * cpu_server / max(len(rows), 1), 3)}
    report["machine"] = {
        "cpus": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    report["server_fail_open_metrics"] = [
        line for line in metrics.splitlines() if line.startswith("selflearn_fail_open_total")
    ]
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    from selflearn.evaluate import write_results

    figures = _finite({**report, "behind_nlu": args.behind_nlu})
    write_results(results_name(args), figures, seconds=time.perf_counter() - begun)
    if args.check and (report["errors"] or report["latency_ms"]["p99"] > args.p99_ms):
        sys.exit(1)


def _finite(value: Any) -> Any:
    """``value`` with NaN (a percentile of nothing) as ``None``: the results file is strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def results_name(args: argparse.Namespace) -> str:
    """``http_load`` for a rewriter under load; runs that measure something else get their own file."""
    name = "http_load"
    if args.rewriter is None:
        name += "-no-rewriter"
    if args.reload_every:
        name += "-reload"
    return name


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def summarize(
    args: argparse.Namespace,
    rows: list[tuple[float, float, int, str, int, bool, str]],
    workload: Workload,
    health: dict[str, Any],
    startup_s: float,
    mem_loaded: dict[str, int],
    mem_learned: dict[str, int],
    mem_after: dict[str, int],
    reloads: list[tuple[int, float]],
) -> dict[str, Any]:
    measured = [r for r in rows if r[0] >= args.warmup]
    lat = np.array([r[1] for r in measured]) * 1000
    outcomes = Counter(r[3] for r in measured)
    errors = sum(n for k, n in outcomes.items() if not (k == "ok" or k.startswith("fail_open")))
    fail_open = sum(n for k, n in outcomes.items() if k.startswith("fail_open"))
    finished_at = max(r[0] + r[1] for r in measured) if measured else 0.0
    span = max(finished_at - args.warmup, 1e-9)
    server_us = np.array([r[4] for r in measured if r[3] == "ok"])
    layers = Counter(r[6] for r in measured if r[5])

    def pct(a: np.ndarray, q: float) -> float:
        return round(float(np.percentile(a, q)), 3) if len(a) else float("nan")

    return {
        "command": " ".join(sys.argv),
        "rewriter": str(args.rewriter) if args.rewriter else None,
        "version": health.get("version"),
        "health": health.get("status"),
        "workload": workload.source,
        "distinct_requests": len(workload.requests),
        "homes": len(workload.homes),
        "learned_records": len(workload.history),
        "nice": args.nice,
        "decision_threads": args.decision_threads,
        "rate_target": args.rate,
        "duration_s": args.duration,
        "requests": len(measured),
        "achieved_rate": round(len(measured) / span, 1),
        "errors": errors,
        "fail_open": fail_open,
        "outcomes": dict(outcomes.most_common()),
        "rewritten": sum(1 for r in measured if r[5]),
        "rewritten_by_layer": dict(layers),
        "latency_ms": {
            "p50": pct(lat, 50),
            "p90": pct(lat, 90),
            "p99": pct(lat, 99),
            "p99.9": pct(lat, 99.9),
            "max": round(float(lat.max()), 3) if len(lat) else float("nan"),
            "mean": round(float(lat.mean()), 3) if len(lat) else float("nan"),
        },
        "decision_us": {"p50": pct(server_us, 50), "p99": pct(server_us, 99), "max": pct(server_us, 100)},
        "startup_s": round(startup_s, 1),
        "server_rss_mb": {
            "loaded": _mb(mem_loaded.get("VmRSS")),
            "after_learning": _mb(mem_learned.get("VmRSS")),
            "after_run": _mb(mem_after.get("VmRSS")),
            "peak": _mb(mem_after.get("VmHWM")),
        },
        "reloads": [{"status": s, "seconds": round(t, 2)} for s, t in reloads],
        "timeline": timeline(measured, args.warmup, 5.0),
    }


def timeline(
    rows: list[tuple[float, float, int, str, int, bool, str]], start: float, step: float
) -> list[dict[str, float]]:
    """p50/p99/max latency (ms) of the requests due in each ``step``-second window."""
    windows: dict[int, list[float]] = {}
    for due, latency, *_ in rows:
        windows.setdefault(int((due - start) // step), []).append(latency * 1000)
    return [
        {
            "from_s": k * step,
            "requests": len(v),
            "p50": round(float(np.percentile(v, 50)), 2),
            "p99": round(float(np.percentile(v, 99)), 2),
            "max": round(max(v), 2),
        }
        for k, v in sorted(windows.items())
    ]


def print_report(r: dict[str, Any]) -> None:
    lat = r["latency_ms"]
    print()
    print(f"rewriter          {r['rewriter']} ({r['health']}, {r['version']})")
    print(
        f"requests          {r['requests']:,} measured at {r['achieved_rate']} req/s "
        f"(target {r['rate_target']:g})"
    )
    print(f"errors            {r['errors']}   fail-opens {r['fail_open']}   outcomes {r['outcomes']}")
    print(f"rewritten         {r['rewritten']:,} {r['rewritten_by_layer']}")
    print(
        f"latency ms        p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  p99.9 {lat['p99.9']}  "
        f"max {lat['max']}  (from scheduled send to last byte)"
    )
    d = r["decision_us"]
    print(f"decision us       p50 {d['p50']}  p99 {d['p99']}  max {d['max']}  (inside the rewriter)")
    print(f"server RSS MB     {r['server_rss_mb']}")
    print(f"CPU s             {r['cpu_s']}  server CPU ms/request {r['cpu_ms_per_request']['server']}")
    if r["reloads"]:
        print(f"reloads           {r['reloads']}")
    print("p99 ms per 5 s    " + " ".join(f"{w['p99']:.0f}" for w in r["timeline"]))
    m = r["machine"]
    print(
        f"machine           {m['cpus']} CPUs ({m['cpu']}), Python {m['python']}, "
        f"load average {m['loadavg_before']} before, {m['loadavg_after']} after; nice {r['nice']}"
    )


if __name__ == "__main__":
    main()
