"""Round-trip latency of the Wyoming conversation service (``selflearn wyoming``) over loopback TCP.

    python bench/wyoming_latency.py                  # built-in home and requests, table-only rewriter
    python bench/wyoming_latency.py --requests 1000 --no-rewriter
    python bench/wyoming_latency.py --rewriter bench/.cache/online/rewriter-train-360mix-k5 \\
        --sim bench/.cache/online/replay-held-out-control   # a trained rewriter, a household's texts

Run it from the repository root with the project's Python. What it does:

1. **Home and requests**: by default the first household of the simulator's population (seed 0)
   and requests built from its areas and names: ones Home Assistant's NLU understands ("turn off
   the lights in the kitchen"), ones the table rewriter fixes ("kill the lights in the kitchen")
   and ones nothing fixes, shuffled (seeded). ``--sim FOLDER`` (a ``selflearn simulate`` folder)
   takes instead the household with the most turns and sends its recognized texts in order.
2. **Server**: ``python -m selflearn wyoming --home HOME.json [--rewriter FOLDER]`` on a free
   loopback port, in its own process, polled until it accepts connections. Without
   ``--rewriter`` it is given a table-only rewriter with the rule "kill the lights in the
   {area}" -> "turn off the lights in the {area}" (``--no-rewriter``: the NLU alone).
3. **Requests**, one at a time (closed loop), ``--warmup`` of them first and not counted, in two
   ways: as Home Assistant's ``wyoming`` integration calls a conversation service (a new TCP
   connection per request, a ``transcript`` with a ``conversation_id``, read the answer, close),
   and on one connection kept open (``recognize`` events). The latency of a request is from
   before connecting (or writing) to the answer read.
4. **Report**: p50/p90/p99/max per way, and per path (answered by the NLU, rewritten, not
   recognized, failed open); the server's CPU time per request and resident memory. Written as
   JSON to ``docs/results/wyoming.json`` (or ``$SELFLEARN_RESULTS``).

Client and server share the machine; the figures are for the service and the client together.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from wyoming.asr import Transcript
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.intent import Recognize

from selflearn.core.home import Home
from selflearn.evaluate import write_results
from selflearn.rewrite.rewriter import Rewriter
from selflearn.rewrite.table import RewriteTable

KILL_RULE = ("kill the lights in the {area}", "turn off the lights in the {area}")


def table_rewriter(folder: Path) -> Path:
    """A table-only rewriter with :data:`KILL_RULE` (as the tests build one)."""
    table = RewriteTable.from_rules([KILL_RULE])
    return Rewriter.from_parts(table=table).save(folder)


def builtin_workload(n: int, seed: int) -> tuple[Home, list[str]]:
    """The population's first household and ``n`` requests about its areas and names."""
    from selflearn.simulation.population import make_household

    home = make_household(0, 0).home
    rng = random.Random(seed)
    areas = [a.name.lower() for a in home.areas]
    lights = [e.name.lower() for e in home.entities if e.domain == "light"]
    templates = [
        "turn off the lights in the {area}",  # understood
        "turn on the {light}",  # understood
        "what time is it",  # understood
        "set the {area} lights to 40 percent",  # understood
        "kill the lights in the {area}",  # fixed by the table rule
        "kill the lights in the {area} please",  # not fixed (the rule is exact)
        "switch the big light on",  # nothing fixes it
    ]
    # a home's requests repeat: many of these are answered from the NLU's cache
    texts = [rng.choice(templates).format(area=rng.choice(areas), light=rng.choice(lights)) for _ in range(n)]
    return home, texts


def sim_workload(folder: Path, n: int) -> tuple[Home, list[str]]:
    """The simulated household with the most turns: its home and its recognized texts, in order."""
    turns: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(folder.glob("turns-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record.get("record_type", "turn") == "turn" and record.get("text"):
                said = (record.get("rewrite") or {}).get("original_text") or record["text"]
                turns.setdefault(record["household_id"], []).append((record["timestamp"], said))
    if not turns:
        raise SystemExit(f"{folder} holds no turns")
    household = max(turns, key=lambda h: len(turns[h]))
    for path in sorted(folder.glob("homes-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            data = json.loads(line)
            if data.get("home_id") == household:
                data = {k: v for k, v in data.items() if k not in ("nicknames", "users", "record_type")}
                texts = [t for _, t in sorted(turns[household])]
                return Home.from_dict(data), (texts * (n // len(texts) + 1))[:n]
    raise SystemExit(f"{folder} has no home for {household}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(home_file: Path, rewriter: Path | None, port: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "selflearn", "wyoming", "--home", str(home_file)]
    command += ["--uri", f"tcp://127.0.0.1:{port}"]
    # without one, the NLU alone (not the packaged starter)
    command += ["--rewriter", str(rewriter)] if rewriter is not None else ["--no-starter"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while True:
        if server.poll() is not None:
            raise SystemExit(f"selflearn wyoming exited: {server.communicate()[1]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise SystemExit("selflearn wyoming did not start listening within 300 s") from None
            time.sleep(0.1)


def _path(answer: Event) -> str:
    """Which way the service answered: ``nlu``, ``rewritten``, ``fail_open`` or ``not_recognized``."""
    provenance = (answer.data.get("context") or {}).get("selflearn") or {}
    if provenance.get("fail_open"):
        return "fail_open"
    if provenance.get("rewritten"):
        return "rewritten" if answer.type == "intent" else "rewritten_not_recognized"
    return "nlu" if answer.type == "intent" else "not_recognized"


async def run_requests(port: int, texts: list[str], per_request: bool) -> list[tuple[float, str]]:
    """Send ``texts`` one at a time; (milliseconds, path) per request."""
    out: list[tuple[float, str]] = []
    shared: AsyncTcpClient | None = None
    if not per_request:
        shared = AsyncTcpClient("127.0.0.1", port, connect_timeout=10, read_timeout=30)
        await shared.connect()
    try:
        for i, text in enumerate(texts):
            started = time.perf_counter()
            if shared is None:
                client = AsyncTcpClient("127.0.0.1", port, connect_timeout=10, read_timeout=30)
                await client.connect()
                try:
                    await client.write_event(
                        Transcript(text, context={"conversation_id": f"bench{i}"}).event()
                    )
                    answer = await client.read_event()
                finally:
                    await client.disconnect()
            else:
                await shared.write_event(Recognize(text).event())
                answer = await shared.read_event()
            elapsed = (time.perf_counter() - started) * 1000
            if answer is None:
                raise SystemExit("the server closed the connection without answering")
            out.append((elapsed, _path(answer)))
    finally:
        if shared is not None:
            await shared.disconnect()
    return out


def _summary(ms: list[float]) -> dict[str, float | int]:
    a = np.array(ms)
    if not len(a):
        return {"n": 0}
    return {
        "n": len(a),
        "p50": round(float(np.percentile(a, 50)), 3),
        "p90": round(float(np.percentile(a, 90)), 3),
        "p99": round(float(np.percentile(a, 99)), 3),
        "max": round(float(a.max()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200, help="measured requests per way")
    parser.add_argument("--warmup", type=int, default=20, help="requests sent first, not counted")
    parser.add_argument("--rewriter", type=Path, help="rewriter folder (default: a table-only one)")
    parser.add_argument("--no-rewriter", action="store_true", help="the NLU alone")
    parser.add_argument("--sim", type=Path, help="a simulation folder: its busiest household's texts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    begun = time.perf_counter()
    n = args.warmup + args.requests
    # each way gets texts of its own: the NLU caches its results, a repeat would be answered from it
    home, texts = sim_workload(args.sim, 2 * n) if args.sim else builtin_workload(2 * n, args.seed)
    with tempfile.TemporaryDirectory(prefix="wyoming-bench-") as tmp:
        home_file = Path(tmp) / "home.json"
        home_file.write_text(json.dumps(home.to_dict()))
        rewriter = None if args.no_rewriter else args.rewriter or table_rewriter(Path(tmp) / "rewriter")
        port = _free_port()
        loading = time.perf_counter()
        server = start_server(home_file, rewriter, port)
        startup_s = time.perf_counter() - loading
        try:
            loaded_mb = _rss_mb(server.pid)
            ways: dict[str, Any] = {}
            for i, (name, per_request) in enumerate(
                (("connection_per_request", True), ("one_connection", False))
            ):
                mine = texts[i * n : (i + 1) * n]
                asyncio.run(run_requests(port, mine[: args.warmup], per_request))
                cpu = _cpu_seconds(server.pid)
                measured = asyncio.run(run_requests(port, mine[args.warmup :], per_request))
                cpu = _cpu_seconds(server.pid) - cpu
                paths = Counter(p for _, p in measured)
                by_path = {p: _summary([ms for ms, q in measured if q == p]) for p in sorted(paths)}
                ways[name] = {
                    "latency_ms": _summary([ms for ms, _ in measured]),
                    "by_path": by_path,
                    "server_cpu_ms_per_request": round(cpu * 1000 / max(len(measured), 1), 3),
                }
                lat = ways[name]["latency_ms"]
                print(
                    f"{name}: {lat['n']} requests, p50 {lat['p50']:.2f} ms, p90 {lat['p90']:.2f}, "
                    f"p99 {lat['p99']:.2f}, max {lat['max']:.1f}; server CPU "
                    f"{ways[name]['server_cpu_ms_per_request']:.2f} ms/request; "
                    + ", ".join(f"{p} {s['n']} (p50 {s['p50']:.2f} ms)" for p, s in by_path.items())
                )
            peak_mb = _rss_mb(server.pid)
        finally:
            server.terminate()
            server.communicate(timeout=30)
    print(
        f"server: started in {startup_s:.1f} s; resident memory {loaded_mb:,.0f} MB loaded, "
        f"{peak_mb:,.0f} MB after"
    )
    figures = {
        "rewriter": "none" if rewriter is None else str(args.rewriter or "table-only (kill the lights rule)"),
        "workload": f"simulation {args.sim}" if args.sim else f"built-in phrasings (seed {args.seed})",
        "home": {"home_id": home.home_id, "areas": len(home.areas), "entities": len(home.entities)},
        "requests": args.requests,
        "distinct_texts": len(set(texts)),
        "warmup": args.warmup,
        "ways": ways,
        "startup_s": round(startup_s, 1),
        "resident_mb": {"loaded": round(loaded_mb), "after": round(peak_mb)},
    }
    write_results("wyoming", figures, seconds=time.perf_counter() - begun)


if __name__ == "__main__":
    main()
