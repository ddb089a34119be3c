"""What the reliability benchmark's parts share (``bench/reliability.py``): the simulated
population, its store and two rewriters (built once, cached in ``bench/.cache/reliability``), and
helpers to run ``selflearn`` commands and services and to inspect stores in a fresh process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = ROOT / "bench" / ".cache" / "reliability"
PY = sys.executable
TOKEN = "reliability-bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def selflearn(*args: str, cwd: Path | None = None, check: bool = True, timeout: float = 1800) -> str:
    done = subprocess.run(
        [PY, "-m", "selflearn", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )
    if check and done.returncode != 0:
        raise SystemExit(
            f"selflearn {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout + done.stderr


# --- setup: one population, its store and rewriters -------------------------------------------------


def setup(households: int = 12, days: float = 2.0, force: bool = False, train: bool = True) -> Path:
    """Simulate a population, ingest it, score it, mine it, train two rewriters (``train``),
    label it; cached in ``$SELFLEARN_RELIABILITY_CACHE`` or ``bench/.cache/reliability``."""
    cache = Path(os.environ.get("SELFLEARN_RELIABILITY_CACHE", DEFAULT_CACHE))
    done = cache / "done.json"
    if done.exists() and not force:
        return cache
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    timings: dict[str, float] = {}

    def step(name: str, *args: str) -> None:
        t = time.perf_counter()
        selflearn(*args, cwd=cache)
        timings[name] = round(time.perf_counter() - t, 2)
        print(f"  {name}: {timings[name]:.1f} s")

    step(
        "simulate",
        "simulate",
        "--households",
        str(households),
        "--days",
        str(days),
        "--seed",
        "3",
        "--out",
        "sim",
    )
    step("ingest", "ingest", "sim", "--store", "ingested.duckdb")
    shutil.copy(cache / "ingested.duckdb", cache / "scored.duckdb")
    step("signals", "signals", "--store", "scored.duckdb")
    step("mine", "mine", "--store", "scored.duckdb", "--out", "table", "-k", "2", "--min-households", "2")
    if train:
        step(
            "train",
            "train",
            "rewriter",
            "--store",
            "scored.duckdb",
            "--table",
            "table",
            "--out",
            "models/rewriter",
            "-k",
            "2",
        )
    shutil.copy(cache / "scored.duckdb", cache / "labelled.duckdb")
    step("label", "label", "--store", "labelled.duckdb")
    if train:
        from selflearn.rewrite.rewriter import Rewriter

        Rewriter.load(cache / "models" / "rewriter").save(cache / "models" / "rewriter-b")  # a 2nd version
    reference = {
        "timings": timings,
        "ingested": _counts(cache / "ingested.duckdb"),
        "scored": _counts(cache / "scored.duckdb"),
        "labelled": _counts(cache / "labelled.duckdb"),
        "rules": _rules(cache / "table"),
    }
    done.write_text(json.dumps(reference, indent=2))
    return cache


def reference() -> dict[str, Any]:
    return dict(json.loads((setup() / "done.json").read_text()))


_INSPECT = r"""
import json, sys
from selflearn.core.store import Store
out = {}
try:
    with Store(sys.argv[1]) as store:
        for table in ("turns", "feedback", "dialogue_acts", "concepts", "defects", "rephrases", "labels"):
            key = {"feedback": "feedback_id", "dialogue_acts": "act_id", "concepts": "concept_id"}
            key = key.get(table, "turn_id")
            sql = f"SELECT count(*), count(DISTINCT {key}) FROM {table}"
            n, distinct = store.con.execute(sql).fetchone()
            out[table] = n
            out[table + "_duplicates"] = n - distinct
        ids = store.con.execute("SELECT turn_id FROM turns").fetchall() if len(sys.argv) > 2 else []
        out["turn_ids"] = [r[0] for r in ids]
        phrases = store.con.execute("SELECT phrase FROM concepts").fetchall()
        out["concept_phrases"] = [r[0] for r in phrases]
    out["opened"] = True
except Exception as exc:
    out = {"opened": False, "error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(out))
"""


def _counts(store: Path, ids: bool = False) -> dict[str, Any]:
    """Open ``store`` in a fresh process (replaying its write-ahead log, as the next command would)
    and count its rows; ``opened: False`` with the error when it does not open."""
    args = [PY, "-c", _INSPECT, str(store), *(["ids"] if ids else [])]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:  # a crash while opening (a native one shows as a signal)
        return {"opened": False, "error": f"exit {done.returncode}: {done.stderr[-500:]}"}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _rules(folder: Path) -> int | None:
    """Active rules of a saved table (None: not a loadable table)."""
    from selflearn.rewrite.table import RewriteTable

    try:
        table = RewriteTable.load(folder)
    except Exception:
        return None
    return table.column("status").count("active")


def _loads(folder: Path) -> bool:
    from selflearn.rewrite.rewriter import Rewriter

    try:
        Rewriter.load(folder)
    except Exception:
        return False
    return True


def _records(limit: int = 4000) -> list[dict[str, Any]]:
    rows = [
        orjson.loads(line)
        for path in sorted((setup() / "sim").glob("turns-*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]
    rows.sort(key=lambda r: (r["timestamp"], r.get("turn_id") or r.get("feedback_id") or ""))
    return rows[:limit]


def _start_serve(work: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [
        PY,
        "-m",
        "selflearn",
        "serve",
        "--port",
        str(port),
        "--store",
        str(work / "s.duckdb"),
        "--rate-limit",
        "0",
        *extra,
    ]
    log = (work / "serve.log").open("ab")
    return subprocess.Popen(cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _healthy(port: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def _home_rows() -> list[dict[str, Any]]:
    homes = []
    for path in sorted((setup() / "sim").glob("homes-*.jsonl")):
        for line in path.read_bytes().splitlines():
            home = orjson.loads(line)
            homes.append(
                {
                    k: v
                    for k, v in home.items()
                    if k not in ("record_type", "schema_version", "nicknames", "users")
                }
            )
    return homes


def _until_taken(
    c: httpx.Client, method: str, url: str, body: Any, patience_s: float = 120
) -> httpx.Response:
    """Send a request the harness needs done (registering homes, re-sending batches after a
    restart) again while the service sheds it (429, after its ``Retry-After``): on a busy machine a
    service just started sheds at once, and the harness must not stop on it. Raises on any other
    error, or when still shed after ``patience_s``."""
    deadline = time.monotonic() + patience_s
    while True:
        res = c.request(method, url, json=body)
        if res.status_code != 429 or time.monotonic() > deadline:
            res.raise_for_status()
            return res
        time.sleep(min(5.0, float(res.headers.get("Retry-After") or 1)))
