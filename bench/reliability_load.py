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
from reliability_common import _healthy, _home_rows, _records, _start_serve, _until_taken, setup

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
    server_pid: int | None = None,
) -> None:
    os.setpriority(os.PRIO_PROCESS, 0, 0)
    before = _usage(server_pid)
    rows = asyncio.run(_mixed(port, payloads, rate, total_s, connections, timeout_s))
    after = _usage(server_pid)
    out.send((rows, _usage_delta(before, after)))
    out.close()


def _usage(server_pid: int | None) -> dict[str, Any]:
    """CPU seconds so far: this process's, the machine's (all cores busy), the server's and each of
    its threads' -- read by the generator when its load starts and ends (its start-up left out)."""
    return {
        "t": time.monotonic(),
        "generator": time.process_time(),
        "machine": _machine_busy_s(),
        "server": proc_cpu_s(server_pid) if server_pid else 0.0,
        "threads": _threads_cpu_s(server_pid) if server_pid else {},
        "main": server_pid,
    }


def _usage_delta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Cores busy while the load ran: the server (its main thread, the event loop, and its busiest
    other threads), the generator, and everything else on the machine (other processes)."""
    window = max(b["t"] - a["t"], 1e-9)
    server = b["server"] - a["server"]
    gen = b["generator"] - a["generator"]
    machine = b["machine"] - a["machine"]
    threads = sorted(((c - a["threads"].get(t, 0.0), t) for t, c in b["threads"].items()), reverse=True)
    return {
        "window_s": round(window, 1),
        "server": round(server / window, 2),
        "server_main_thread": round(next((c for c, t in threads if t == b["main"]), 0.0) / window, 2),
        "server_busiest_other_threads": [round(c / window, 2) for c, t in threads if t != b["main"]][:3],
        "generator": round(gen / window, 2),
        "others": round(max(0.0, machine - server - gen) / window, 2),
        "machine": round(machine / window, 2),
    }


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
            _until_taken(c, "PUT", f"/v1/homes/{row['home_id']}", row)
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
    usage: dict[str, Any] | None = None,
    server_pid: int | None = None,
) -> list[tuple[float, float, str, int, str]]:
    """Run the generator in a process of its own; ``usage`` gets the cores busy while it sent
    (:func:`_usage_delta`; the server's threads when ``server_pid`` is given)."""
    ctx = mp.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    gen = ctx.Process(
        target=_generator, args=(port, payloads, rate, seconds, connections, timeout_s, sender, server_pid)
    )
    gen.start()
    sender.close()
    rows: list[tuple[float, float, str, int, str]]
    rows, used = receiver.recv()
    gen.join()
    if usage is not None:
        usage.update(used)
    return rows


def _machine_busy_s() -> float:
    """CPU seconds all cores of the machine spent busy (not idle or waiting for I/O) since boot."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def _threads_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds of each live thread of a process, by thread id (Linux)."""
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    return out


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
                usage: dict[str, Any] = {}
                rows = _drive(
                    port, payloads, rate, warmup + duration, connections, usage=usage, server_pid=proc.pid
                )
                cpu = proc_cpu_s(proc.pid) - cpu
                s = {
                    "rate": rate,
                    **_summary(rows, warmup),
                    "rss_mb": round(proc_status(proc.pid).get("VmRSS", 0) / 2**20, 1),
                    "server_cpu_ms_per_request": round(1000 * cpu / max(len(rows), 1), 3),
                    "server_cores_busy": round(cpu / (warmup + duration), 2),
                    # while the load ran: the machine is shared, and what others used the service could not
                    "cores_busy": usage,
                }
                steps.append(s)
                print(
                    f"  {rate:g}/s: achieved {s.get('achieved_rps')}/s, rewrite p50 {s['rewrite']['p50_ms']} "
                    f"p99 {s['rewrite']['p99_ms']} ms, turns p99 {s['turns']['p99_ms']} ms, "
                    f"rewrite {s['rewrite']['outcomes']}, turns {s['turns']['outcomes']}, "
                    f"server CPU {s['server_cpu_ms_per_request']} ms/request; cores busy {s['cores_busy']}"
                )
                time.sleep(3)
        finally:
            proc.terminate()
            proc.wait(30)
    ceiling = load_ceiling(steps)
    top = steps[-1]
    return {
        "figures": {
            "load_rps": top.get("achieved_rps"),
            "load_p99_ms": top["rewrite"]["p99_ms"],
            "load_ceiling_rps": ceiling["rps"],
        },
        "ceiling": ceiling,
        "steps": steps,
        "ingest_share": ingest_share,
        "connections": connections,
    }


CEILING_P99_MS = 10.0


def _holds(step: dict[str, Any]) -> bool:
    """A step the service kept up with: rewrite p99 within the target, nothing failed (5xx,
    connection errors, client timeouts), and at least 95 % of the offered rate achieved."""
    failed = step["rewrite"]["failed"] + step["turns"]["failed"]
    return (
        (step["rewrite"]["p99_ms"] or 1e9) <= CEILING_P99_MS
        and not failed
        and (step.get("achieved_rps") or 0) >= 0.95 * step["rate"]
    )


def _fail_open(step: dict[str, Any]) -> int:
    return sum(n for k, n in step["rewrite"]["outcomes"].items() if k.startswith("fail_open"))


def load_ceiling(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The highest offered rate that held (:func:`_holds`), what the steps measured there and at the
    next rate, and why it is the ceiling -- in words made of those measurements."""
    held = sorted(s["rate"] for s in steps if _holds(s))
    out: dict[str, Any] = {
        "definition": (
            f"the highest offered rate whose rewrite p99 <= {CEILING_P99_MS:g} ms with no failed request "
            "(5xx, connection error, client timeout) and >= 95 % of it achieved; rewrites answered "
            "with their own text (fail-open) and batches of turns refused with 429 are counted, not failed"
        ),
        "rps": held[-1] if held else None,
        "rates_held": held,
        "rates_not_held": sorted(s["rate"] for s in steps if not _holds(s)),
    }
    by_rate = {s["rate"]: s for s in steps}
    max_busy = max(s["server_cores_busy"] for s in steps)
    if not held:
        low = by_rate[min(by_rate)]
        out["why"] = (
            f"no step held: at the lowest rate, {low['rate']:g}/s, the rewrite p99 was "
            f"{low['rewrite']['p99_ms']} ms"
        )
        return out
    at = by_rate[held[-1]]
    above = [s for s in steps if s["rate"] > at["rate"]]
    nxt = min(above, key=lambda s: s["rate"]) if above else None
    cpu_ms = at["server_cpu_ms_per_request"]
    out.update(
        {
            "rewrite_p50_ms": at["rewrite"]["p50_ms"],
            "rewrite_p99_ms": at["rewrite"]["p99_ms"],
            "rewrite_fail_open": _fail_open(at),
            "rewrites": at["rewrite"]["requests"],
            "turns_p50_ms": at["turns"]["p50_ms"],
            "turns_429": at["turns"]["outcomes"].get("http 429", 0),
            "server_cpu_ms_per_request": cpu_ms,
            "server_cores_busy": at["server_cores_busy"],
            "others_cores_busy": at.get("cores_busy", {}).get("others"),
            "max_server_cores_busy": max_busy,
            "one_core_rps": round(1000 / cpu_ms) if cpu_ms else None,
        }
    )
    why = (
        f"At {at['rate']:g}/s the server was {at['server_cores_busy']} cores busy at "
        f"{cpu_ms} ms of CPU a request (one core would be full at about {out['one_core_rps']}/s), "
        f"and at no rate did it use more than {max_busy} cores of the 2: it is one Python process, "
        "whose request handling and rewrite decisions share one interpreter lock, so more threads do "
        "not add a core."
    )
    if nxt is not None:
        out["next"] = {
            "rate": nxt["rate"],
            "achieved_rps": nxt.get("achieved_rps"),
            "rewrite_p50_ms": nxt["rewrite"]["p50_ms"],
            "rewrite_p99_ms": nxt["rewrite"]["p99_ms"],
            "rewrite_fail_open": _fail_open(nxt),
            "turns_429": nxt["turns"]["outcomes"].get("http 429", 0),
            "failed": nxt["rewrite"]["failed"] + nxt["turns"]["failed"],
            "server_cores_busy": nxt["server_cores_busy"],
            "others_cores_busy": nxt.get("cores_busy", {}).get("others"),
        }
        why += (
            f" At {nxt['rate']:g}/s ({nxt['server_cores_busy']} cores busy) the rewrite p99 was "
            f"{nxt['rewrite']['p99_ms']} ms (p50 {nxt['rewrite']['p50_ms']} ms): a rewrite takes about "
            f"{at['rewrite']['p50_ms']} ms, and waits for the lock behind the other requests in flight, "
            f"batches of turns among them (their p50 {at['turns']['p50_ms']} ms at {at['rate']:g}/s)."
        )
    out["why"] = why
    return out


def _anon_mb(pid: int) -> float:
    """Anonymous resident memory of a process (its heaps, not mapped files), MB (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Anonymous:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return float("nan")


def _slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (x, y) points, None under three points."""
    if len(points) < 3:
        return None
    return round(float(np.polyfit([x for x, _ in points], [y for _, y in points], 1)[0]), 3)


def run_soak(
    minutes: float, rate: float, swap_every: float, ingest_share: float, connections: int
) -> dict[str, Any]:
    cache = setup()
    payloads = _payloads(ingest_share, seed=1)
    samples: list[tuple[float, float, float]] = []
    swaps: list[tuple[float, int, float]] = []
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        proc, port = _serve_for_load(Path(tmp))
        stop = threading.Event()
        t0 = time.monotonic()

        def watch() -> None:
            while not stop.wait(5):
                rss = proc_status(proc.pid).get("VmRSS", 0) / 2**20
                samples.append((time.monotonic() - t0, rss, _anon_mb(proc.pid)))

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
    failed = summary["rewrite"]["failed"] + summary["turns"]["failed"]
    memory = _soak_memory(samples, swaps, sum(r[2] == "turns" for r in rows), minutes)
    return {
        "figures": {
            "soak_rss_slope_mb_per_min": memory["slope_after_first_swap_mb_per_min"],
            "soak_rss_slope_raw_mb_per_min": memory["slope_raw_mb_per_min"],
            "soak_failed_requests": failed,
        },
        "summary": summary,
        "memory": memory,
        "rss_mb": [[round(t, 1), round(m, 1), round(a, 1)] for t, m, a in samples],
        "rss_mb_columns": ["seconds", "resident MB", "anonymous MB"],
        "swaps": swaps,
        "minutes": minutes,
        "rate": rate,
    }


def _soak_memory(
    samples: list[tuple[float, float, float]],
    swaps: list[tuple[float, int, float]],
    batches: int,
    minutes: float,
) -> dict[str, Any]:
    """The soak's resident memory: the straight-line fit over every sample (raw), the step at the
    first swap (a swap is recorded when it has answered: (end s, status, seconds)), and the slope
    after it -- over the rest of the soak and over each half of it, and per 1,000 of the ``batches``
    of turns sent at an even rate over ``minutes``."""
    end = swaps[0][0] if swaps else None
    begin = swaps[0][0] - swaps[0][2] if swaps else None
    # a sample is every 5 s: one within 2.5 s of the swap's end may have been read during it
    before = [(t, m) for t, m, _ in samples if begin is None or t < begin - 0.1]
    after = [(t, m, a) for t, m, a in samples if end is not None and t > end + 2.5]
    per_min = [(t / 60, m) for t, m, _ in after]
    half = (after[0][0] + after[-1][0]) / 2 if after else 0.0
    slope = _slope(per_min)
    per_minute = batches / minutes if minutes else 0.0
    return {
        "slope_raw_mb_per_min": _slope([(t / 60, m) for t, m, _ in samples]),
        "first_swap_s": begin,
        "rss_before_first_swap_mb": round(before[-1][1], 1) if before else None,
        "rss_after_first_swap_mb": round(after[0][1], 1) if after else None,
        "step_at_first_swap_mb": round(after[0][1] - before[-1][1], 1) if after and before else None,
        "slope_after_first_swap_mb_per_min": slope,
        "slope_after_first_swap_first_half_mb_per_min": _slope([p for p in per_min if p[0] * 60 <= half]),
        "slope_after_first_swap_second_half_mb_per_min": _slope([p for p in per_min if p[0] * 60 > half]),
        "anonymous_slope_after_first_swap_mb_per_min": _slope([(t / 60, a) for t, _, a in after]),
        "mb_per_1000_batches_of_turns_after_first_swap": (
            round(1000 * slope / per_minute, 3) if slope is not None and per_minute else None
        ),
        "batches_of_turns": batches,
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
