"""What a neural rewriter costs to keep and to serve. Part of bench/neural_rewriter.py
(``--footprint REWRITER``).

* ``starter_mb``: the rewriter folder on disk (MB, 10^6 bytes), and each part of it apart;
* ``build_minutes``: its training time, from its own records (``fit-report.json``'s stages and
  the single encoder's ``model.json``), on the machine that trained it;
* ``serve_rss_mb``: resident memory (``VmRSS``) of ``selflearn serve --rewriter REWRITER`` once one
  home is synced, its index built and failed requests answered (``serve_peak_rss_mb``: ``VmHWM``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from install import HOME, free_port, mb, status_kb, stop

REQUESTS = ("kill the lights in the kitchen", "turn the kitchen lights of", "switch on the flor lamp")


def build_minutes(folder: Path) -> float | None:
    """Training minutes of the rewriter in ``folder`` (None: no record of it)."""
    report = folder / "fit-report.json"
    if not report.exists():
        return None
    seconds = float(sum(json.loads(report.read_text()).get("seconds", {}).values()))
    single = folder / "single" / "model.json"
    if single.exists():
        seconds += float(json.loads(single.read_text()).get("seconds", 0))
    return round(seconds / 60, 1)


def serve_memory(folder: Path, settle_s: float = 20.0) -> dict[str, float]:
    """RSS of ``selflearn serve --rewriter folder`` after a home and a few failed requests."""
    exe = Path(sys.executable).parent / "selflearn"
    with tempfile.TemporaryDirectory(prefix="neural-footprint-") as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path(tmp) / "serve.log"
        cmd = [str(exe), "serve", "--rewriter", str(folder.resolve()), "--store", "logs.duckdb"]
        proc = subprocess.Popen(
            [*cmd, "--port", str(port)], cwd=tmp, stdout=log.open("w"), stderr=subprocess.STDOUT
        )
        try:
            started = time.perf_counter()
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"serve exited with {proc.returncode}:\n{log.read_text()}")
                try:
                    if httpx.get(f"{url}/healthz", timeout=5).json().get("status") == "ok":
                        break
                except httpx.HTTPError:
                    pass
                if time.perf_counter() - started > 300:
                    raise SystemExit(f"serve did not become ready:\n{log.read_text()}")
                time.sleep(0.1)
            ready = time.perf_counter() - started
            httpx.put(f"{url}/v1/homes/h1", json=HOME, timeout=60).raise_for_status()

            def ask(text: str) -> None:
                body = {
                    "text": text,
                    "household_id": "h1",
                    "user_id": "u1",
                    "area": "Kitchen",
                    "failed": True,
                }
                httpx.post(f"{url}/v1/rewrite", json=body, timeout=120).raise_for_status()

            for text in REQUESTS:
                ask(text)
            time.sleep(settle_s)  # the home's index builds in the background
            for text in REQUESTS:
                ask(text)
            return {
                "serve_rss_mb": round(status_kb(proc.pid, "VmRSS") / 1024),
                "serve_peak_rss_mb": round(status_kb(proc.pid, "VmHWM") / 1024),
                "serve_ready_s": round(ready, 1),
            }
        finally:
            stop(proc)


def footprint(folder: Path) -> dict[str, Any]:
    """The figures of the module docstring for the rewriter in ``folder``."""
    parts = {p.name: mb(p) for p in sorted(folder.iterdir()) if p.is_dir()}
    return {
        "starter_mb": mb(folder),
        "starter_parts_mb": parts,
        "build_minutes": build_minutes(folder),
        **serve_memory(folder),
    }
