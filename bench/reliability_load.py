"""The service under load: mixed rewrite and ingest traffic at fixed rates, a soak with a table
swap every minute, a burst (``bench/reliability.py load|soak|burst``). The generator is
``bench/http_load.py``'s open-loop one, in its own process: latency counts from each request's
scheduled send time, so stalls are not hidden.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from http_load import _Conn, _exchange, free_port, proc_cpu_s, proc_status
from reliability_common import _healthy, _home_rows, _records, _start_serve, setup

# --- the HTTP load ----------------------------------------------------------------------------------


def _request(path: str, body: Any, token: str | None = None) -> bytes:
    data = orjson.dumps(body)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{auth}"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def _mixed(
    port: int,
    payloads: list[tuple[str, bytes]],
    rate: float,
    total_s: float,
    connections: int,
    timeout_s: float,
) -> list[tuple[float, float, str, int, str]]:
    """Open-loop load: request i due at t0 + i / rate, whatever happened to the others; one row per
    request: (due offset s, latency s, kind, status or 0, outcome)."""
    loop = asyncio.get_running_loop()
    pool: asyncio.Queue[_Conn | None] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(None)
    n = int(rate * total_s)
    rows: list[tuple[float, float, str, int, str]] = [(0.0, 0.0, "", 0, "")] * n
    start = loop.time() + 0.2

    async def one(i: int, due: float, kind: str, payload: bytes) -> None:
        conn = await pool.get()
        status, outcome = 0, "ok"
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
                    conn.writer.close()
                    conn = None
                    if fresh or attempt == 1:
                        raise exc
            if status == 200 and kind == "rewrite":
                data = orjson.loads(body)
                if data.get("fail_open"):
                    outcome = "fail_open: " + str((data.get("reasons") or ["?"])[0]).split(":")[0]
            elif status != 200:
                outcome = f"http {status}"
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
        rows[i] = (due - start, loop.time() - due, kind, status, outcome)

    tasks = []
    for i in range(n):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        kind, payload = payloads[i % len(payloads)]
        tasks.append(asyncio.create_task(one(i, due, kind, payload)))
    await asyncio.gather(*tasks)
    return rows


def _generator(
    port: int,
    payloads: list[tuple[str, bytes]],
    rate: float,
    total_s: float,
    connections: int,
    timeout_s: float,
    out: Any,
) -> None:
    os.setpriority(os.PRIO_PROCESS, 0, 0)
    rows = asyncio.run(_mixed(port, payloads, rate, total_s, connections, timeout_s))
    out.send(rows)
    out.close()


def _payloads(ingest_share: float, seed: int = 0) -> list[tuple[str, bytes]]:
    """Requests from the simulated population: rewrites of its later turns (with the recogniser's
    alternatives when they failed, as a client behind its NLU sends them) and, for ``ingest_share``
    of them, a batch of its logged turns to ``POST /v1/turns``."""
    records = _records(20_000)
    rng = random.Random(seed)
    turns = [r for r in records if r.get("record_type", "turn") == "turn" and r.get("text")]
    out: list[tuple[str, bytes]] = []
    for i, t in enumerate(turns):
        if rng.random() < ingest_share:
            batch = turns[i : i + rng.randint(1, 5)]
            out.append(("turns", _request("/v1/turns", batch)))
            continue
        failed = (t.get("result") or {}).get("status") != "success"
        body: dict[str, Any] = {
            "text": t["text"],
            "household_id": t["household_id"],
            "user_id": t["user_id"],
            "timestamp": t["timestamp"],
            "failed": failed,
        }
        area = (t.get("device") or {}).get("area")
        if area:
            body["area"] = area
        nbest = [h["text"] for h in ((t.get("asr") or {}).get("nbest") or [])[1:]][:10]
        if failed and nbest:
            body["nbest"] = nbest
        out.append(("rewrite", _request("/v1/rewrite", body)))
    rng.shuffle(out)
    return out


def _serve_for_load(work: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    cache = setup()
    shutil.copy(cache / "scored.duckdb", work / "s.duckdb")
    port = free_port()
    proc = _start_serve(
        work,
        port,
        "--rewriter",
        str(cache / "models" / "rewriter"),
        "--models-dir",
        str(cache / "models"),
        *extra,
    )
    if not _healthy(port, proc, 300):
        raise SystemExit("the service did not start: " + (work / "serve.log").read_text()[-2000:])
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}", timeout=60
    ) as c:  # the homes, as a live service has them
        for row in _home_rows():
            c.put(f"/v1/homes/{row['home_id']}", json=row).raise_for_status()
    return proc, port


def _summary(rows: list[tuple[float, float, str, int, str]], warmup: float) -> dict[str, Any]:
    measured = [r for r in rows if r[0] >= warmup]
    out: dict[str, Any] = {"requests": len(measured)}
    if measured:
        span = max(r[0] + r[1] for r in measured) - warmup
        out["achieved_rps"] = round(len(measured) / max(span, 1e-9), 1)
    for kind in ("rewrite", "turns"):
        lat = np.array([r[1] for r in measured if r[2] == kind]) * 1000
        outcomes = Counter(r[4] for r in measured if r[2] == kind)
        out[kind] = {
            "requests": len(lat),
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
            "max_ms": round(float(lat.max()), 2) if len(lat) else None,
            "outcomes": dict(outcomes.most_common()),
            "failed": sum(n for k, n in outcomes.items() if k.startswith(("error", "http 5"))),
            "shed": sum(
                n for k, n in outcomes.items() if k == "http 429" or k.startswith("fail_open: overloaded")
            ),
        }
    return out


def _drive(
    port: int,
    payloads: list[tuple[str, bytes]],
    rate: float,
    seconds: float,
    connections: int,
    timeout_s: float = 5.0,
) -> list[tuple[float, float, str, int, str]]:
    ctx = mp.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    gen = ctx.Process(target=_generator, args=(port, payloads, rate, seconds, connections, timeout_s, sender))
    gen.start()
    sender.close()
    rows: list[tuple[float, float, str, int, str]] = receiver.recv()
    gen.join()
    return rows


def run_load(
    rates: list[float], duration: float, warmup: float, ingest_share: float, connections: int
) -> dict[str, Any]:
    payloads = _payloads(ingest_share)
    steps = []
    with tempfile.TemporaryDirectory(prefix="load-") as tmp:
        proc, port = _serve_for_load(Path(tmp))
        try:
            for rate in rates:
                cpu = proc_cpu_s(proc.pid)
                rows = _drive(port, payloads, rate, warmup + duration, connections)
                cpu = proc_cpu_s(proc.pid) - cpu
                s = {
                    "rate": rate,
                    **_summary(rows, warmup),
                    "rss_mb": round(proc_status(proc.pid).get("VmRSS", 0) / 2**20, 1),
                    "server_cpu_ms_per_request": round(1000 * cpu / max(len(rows), 1), 3),
                    "server_cores_busy": round(cpu / (warmup + duration), 2),
                }
                steps.append(s)
                print(
                    f"  {rate:g}/s: achieved {s.get('achieved_rps')}/s, rewrite p50 {s['rewrite']['p50_ms']} "
                    f"p99 {s['rewrite']['p99_ms']} ms, turns p99 {s['turns']['p99_ms']} ms, "
                    f"rewrite {s['rewrite']['outcomes']}, turns {s['turns']['outcomes']}, "
                    f"server CPU {s['server_cpu_ms_per_request']} ms/request ({s['server_cores_busy']} cores)"
                )
                time.sleep(3)
        finally:
            proc.terminate()
            proc.wait(30)
    ok = [
        s
        for s in steps
        if (s["rewrite"]["p99_ms"] or 1e9) <= 10 and not s["rewrite"]["failed"] and not s["turns"]["failed"]
    ]
    top = steps[-1]
    return {
        "figures": {
            "load_rps": top.get("achieved_rps"),
            "load_p99_ms": top["rewrite"]["p99_ms"],
            "load_ceiling_rps": max((s["rate"] for s in ok), default=None),
        },
        "steps": steps,
        "ingest_share": ingest_share,
        "connections": connections,
    }


def run_soak(
    minutes: float, rate: float, swap_every: float, ingest_share: float, connections: int
) -> dict[str, Any]:
    cache = setup()
    payloads = _payloads(ingest_share, seed=1)
    samples: list[tuple[float, float]] = []
    swaps: list[tuple[float, int, float]] = []
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        proc, port = _serve_for_load(Path(tmp))
        stop = threading.Event()
        t0 = time.monotonic()

        def watch() -> None:
            while not stop.wait(5):
                samples.append((time.monotonic() - t0, proc_status(proc.pid).get("VmRSS", 0) / 2**20))

        def swap() -> None:
            i = 0
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as c:
                while not stop.wait(swap_every):
                    i += 1
                    folder = cache / "models" / ("rewriter-b" if i % 2 else "rewriter")
                    t = time.perf_counter()
                    res = c.post("/v1/admin/reload", json={"folder": str(folder)})
                    swaps.append(
                        (round(time.monotonic() - t0, 1), res.status_code, round(time.perf_counter() - t, 2))
                    )

        threads = [threading.Thread(target=watch, daemon=True), threading.Thread(target=swap, daemon=True)]
        for t in threads:
            t.start()
        try:
            rows = _drive(port, payloads, rate, minutes * 60, connections)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
            proc.terminate()
            proc.wait(30)
    summary = _summary(rows, 30.0)
    late = [(t, m) for t, m in samples if t >= 60]  # after the first minute: warm caches
    slope = (
        float(np.polyfit([t / 60 for t, _ in late], [m for _, m in late], 1)[0]) if len(late) > 2 else None
    )
    failed = summary["rewrite"]["failed"] + summary["turns"]["failed"]
    return {
        "figures": {
            "soak_rss_slope_mb_per_min": round(slope, 3) if slope is not None else None,
            "soak_failed_requests": failed,
        },
        "summary": summary,
        "rss_mb": [[round(t, 1), round(m, 1)] for t, m in samples],
        "swaps": swaps,
        "minutes": minutes,
        "rate": rate,
    }


def run_burst(rate: float, factor: float, seconds: float, connections: int) -> dict[str, Any]:
    payloads = _payloads(0.1, seed=2)
    with tempfile.TemporaryDirectory(prefix="burst-") as tmp:
        proc, port = _serve_for_load(Path(tmp))
        try:
            base = _summary(_drive(port, payloads, rate, 10 + seconds, connections), 10)
            burst = _summary(
                _drive(port, payloads, rate * factor, 10 + seconds, connections, timeout_s=5), 10
            )
            after = _summary(_drive(port, payloads, rate, 10 + seconds, connections), 10)
        finally:
            proc.terminate()
            proc.wait(30)
    outcomes = [(k, n) for part in ("rewrite", "turns") for k, n in burst[part]["outcomes"].items()]
    return {
        "figures": {
            "burst_rps": burst.get("achieved_rps"),
            # the client gave up waiting (a rewrite the service answered with its original text at
            # its own decision timeout is a fail-open, counted below, not a timeout)
            "burst_timeouts": sum(n for k, n in outcomes if k == "error: client timeout"),
            "burst_shed": sum(n for k, n in outcomes if k == "http 429" or k.startswith("fail_open")),
            "burst_failed": burst["rewrite"]["failed"] + burst["turns"]["failed"],
        },
        "before": base,
        "burst": burst,
        "after": after,
        "factor": factor,
        "rate": rate,
    }
