"""``kill -9`` at random points of the learning commands, the service and the chat; what each
kill left, checked (``bench/reliability.py kills``, ``tests/test_crash.py``).

After each kill: the store opens in a fresh process (replaying its write-ahead log), every table
holds what it held before the run or what the run writes -- never a part --, no key twice,
nothing a client was acknowledged for is missing, an artefact folder is the old one or the new
one whole; then the command runs again and must end where a run without a kill ends.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from http_load import free_port
from reliability_common import (
    PY,
    _counts,
    _healthy,
    _home_rows,
    _loads,
    _records,
    _rules,
    _start_serve,
    _until_taken,
    reference,
    selflearn,
    setup,
)

# --- kill -9 ---------------------------------------------------------------------------------------


@dataclass
class Kill:
    command: str
    after_s: float
    running: bool
    """The process was still running when it was killed (not finished already)."""
    opened: bool = True
    lost: int = 0
    """Acknowledged rows missing after the kill (or after the re-run)."""
    duplicated: int = 0
    acknowledged: int = 0
    taught: int = 0
    """Of them, names taught through POST /v1/dialogue (serve-reload)."""
    """What the client was told was done before the kill (records, taught concepts, answered lines)."""
    half_artefact: bool = False
    completed: bool = False
    """Re-running completed the work and the result equals the run without a kill."""
    detail: str = ""


def _kill_at(
    cmd: list[str], after_s: float, cwd: Path, stdin: int | None = None
) -> tuple[bool, subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=stdin,
        start_new_session=True,
    )
    try:
        proc.wait(timeout=after_s)
        return False, proc
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the command and any worker it started
        proc.wait()
        return True, proc


def kill_cli(name: str, work: Path, after_s: float, ref: dict[str, Any]) -> Kill:
    """Kill one run of a learning command at ``after_s``, check what it left, re-run it."""
    cache = setup()
    before = {"ingest": None, "signals": "ingested", "mine": "scored", "train": "scored", "label": "scored"}[
        name
    ]
    store = work / "s.duckdb"
    if before is not None:
        shutil.copy(cache / f"{before}.duckdb", store)
    if name == "mine":
        shutil.copytree(
            cache / "table", work / "table"
        )  # an older table in place: a reader must see it or the new one
    if name == "train":
        shutil.copytree(cache / "table", work / "table")
        shutil.copytree(cache / "models" / "rewriter-b", work / "rewriter")
    args = {
        "ingest": ["ingest", str(cache / "sim"), "--store", str(store)],
        "signals": ["signals", "--store", str(store)],
        "mine": [
            "mine",
            "--store",
            str(store),
            "--out",
            str(work / "table"),
            "-k",
            "2",
            "--min-households",
            "2",
        ],
        "train": [
            "train",
            "rewriter",
            "--store",
            str(store),
            "--table",
            str(work / "table"),
            "--out",
            str(work / "rewriter"),
            "-k",
            "2",
        ],
        "label": ["label", "--store", str(store)],
    }[name]
    running, _ = _kill_at([PY, "-m", "selflearn", *args], after_s, work)
    out = Kill(name, round(after_s, 2), running)
    expected = {
        "ingest": ref["ingested"],
        "signals": ref["scored"],
        "mine": ref["scored"],
        "train": ref["scored"],
        "label": ref["labelled"],
    }[name]
    start = {
        "ingest": {},
        "signals": ref["ingested"],
        "mine": ref["scored"],
        "train": ref["scored"],
        "label": ref["scored"],
    }[name]
    # killed before it created the store: nothing there yet, which is what "before" was
    counts = _counts(store) if store.exists() else {**{k: 0 for k in expected}, "opened": True}
    out.opened = bool(counts.get("opened"))
    if not out.opened:
        out.detail = str(counts.get("error"))
        return out
    # After the kill: every table holds what it held before the run or what the run writes
    # (each write is one transaction), never a part, and no key twice.
    for table in ("turns", "feedback", "defects", "rephrases", "labels"):
        have = counts.get(table, 0)
        if have not in (start.get(table, 0), expected.get(table, 0)):
            out.lost += abs(expected.get(table, 0) - have)
            out.detail += f"{table}: {have} (before {start.get(table, 0)}, after {expected.get(table, 0)}); "
        out.duplicated += counts.get(f"{table}_duplicates", 0)
    if name in ("mine", "train"):
        folder = work / ("table" if name == "mine" else "rewriter")
        readable = _rules(folder) is not None if name == "mine" else _loads(folder)
        out.half_artefact = folder.exists() and not readable
    rerun = selflearn(*args, cwd=work, check=False)
    final = _counts(store)
    out.completed = all(
        final.get(t, 0) == expected.get(t, 0) for t in ("turns", "feedback", "defects", "rephrases", "labels")
    )
    if name == "mine":
        out.completed = out.completed and _rules(work / "table") == ref["rules"]
    if name == "train":
        out.completed = out.completed and _loads(work / "rewriter")
    if not out.completed:
        out.detail += f"re-run: {rerun[-300:]} final {final}"
        out.lost += sum(abs(final.get(t, 0) - expected.get(t, 0)) for t in ("turns", "feedback"))
    return out


def kill_service(name: str, work: Path, after_s: float) -> Kill:
    """Kill ``selflearn serve`` while a client posts turns (``serve-ingest``), or reloads, posts
    turns and teaches (``serve-reload``); check that everything the client got a 200 for is
    in the store, restart it on the same store, and re-send what was not acknowledged."""
    cache = setup()
    records = _records()
    batches = [records[i : i + 40] for i in range(0, len(records), 40)]
    port = free_port()
    extra = (
        ["--rewriter", str(cache / "models" / "rewriter"), "--models-dir", str(cache / "models")]
        if name == "serve-reload"
        else ["--no-starter"]  # pass-through, as before the starter was packaged
    )
    proc = _start_serve(work, port, *extra)
    out = Kill(name, round(after_s, 2), True)
    if not _healthy(port, proc) or not _dialogue_ready(port):
        out.opened, out.detail = False, (work / "serve.log").read_text()[-500:]
        return out
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}", timeout=60
    ) as c:  # the homes, as the clients register them
        for row in _home_rows():
            _until_taken(c, "PUT", f"/v1/homes/{row['home_id']}", row)
    acked: list[str] = []
    taught: list[str] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            i = 0
            while not stop.is_set():
                try:
                    if name == "serve-reload" and i % 6 == 1:
                        folder = cache / "models" / ("rewriter-b" if i % 12 == 1 else "rewriter")
                        c.post("/v1/admin/reload", json={"folder": str(folder), "wait": False})
                    elif name == "serve-reload" and i % 2 == 0:
                        phrase = "zz" + "".join(chr(97 + int(d)) for d in str(i))  # no digits in a name
                        body = {
                            "text": f"the {phrase} is the {TAUGHT_TARGET}",
                            "household_id": "h000000",
                            "conversation_id": f"k{i}",
                            "turn_id": f"teach-{i}",
                            "typed": True,
                        }
                        res = c.post("/v1/dialogue", json=body)
                        if res.status_code == 200 and (res.json().get("taught") or {}).get("phrase"):
                            taught.append(res.json()["taught"]["phrase"])
                    else:
                        batch = batches[i % len(batches)]
                        if c.post("/v1/turns", json=batch).status_code == 200:
                            acked.extend(
                                r["turn_id"] for r in batch if r.get("record_type", "turn") == "turn"
                            )
                except httpx.HTTPError:
                    return
                i += 1

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    time.sleep(after_s)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stop.set()
    thread.join(60)
    counts = _counts(work / "s.duckdb", ids=True)
    out.opened = bool(counts.get("opened"))
    if not out.opened:
        out.detail = str(counts.get("error"))
        return out
    stored = set(counts.get("turn_ids", []))
    out.acknowledged = len(set(acked)) + len(set(taught))
    if name == "serve-reload":
        out.taught = len(set(taught))
    out.lost = len(set(acked) - stored) + len(set(taught) - set(counts.get("concept_phrases", [])))
    out.duplicated = counts.get("turns_duplicates", 0) + counts.get("concepts_duplicates", 0)
    # restart on the same store: it must come up, keep what was taught, and take the rest
    proc = _start_serve(work, port, *extra)
    try:
        if not _healthy(port, proc):
            out.detail = "did not restart: " + (work / "serve.log").read_text()[-500:]
            return out
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
            for batch in batches:
                _until_taken(c, "POST", "/v1/turns", batch)
            concepts = c.get("/v1/concepts", params={"household_id": "h000000"}).json()["concepts"]
            kept = {x["phrase"] for x in concepts}
            out.lost += len(set(taught) - kept)
    finally:
        proc.terminate()
        proc.wait(30)
    final = _counts(work / "s.duckdb")
    want = len({r["turn_id"] for r in records if r.get("record_type", "turn") == "turn"})
    out.completed = final.get("turns") == want and final.get("turns_duplicates") == 0
    if not out.completed:
        out.detail += f" final turns {final.get('turns')} of {want}"
    return out


TAUGHT_TARGET = "living room light"
"""An entity of the simulated household h000000 (Living Room Light) the service's kills teach names for."""


def _dialogue_ready(port: int, timeout: float = 120) -> bool:
    """Wait until the service's dialogue has loaded its matcher (teaching works from then on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
            if health.get("dialogue", {}).get("ready"):
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


CHAT_LINES = [
    "turn on the kitchen light",
    "the big light is the kitchen light",
    "turn off the big light",
    "when i say movie time i mean turn off the floor lamp",
    "movie time",
    "what time is it",
    "turn on the big light",
    "what have you learned",
] * 3


def kill_chat(work: Path, after_s: float, after_first_answer: bool = False) -> Kill:
    """Kill ``selflearn chat --store`` while a person types, ``after_s`` seconds after its start
    (or, ``after_first_answer``, after its first answer: however long loading the NLU and the
    starter takes); check the store and what was answered, then chat again on the same store."""
    store = work / "s.duckdb"
    out = Kill("chat", round(after_s, 2), True)
    proc = subprocess.Popen(
        [PY, "-m", "selflearn", "chat", "--store", str(store), "--no-color"],
        cwd=work,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    answered: list[str] = []
    lines = list(CHAT_LINES)

    def feed() -> None:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            for line in lines:
                proc.stdin.write((line + "\n").encode())
                proc.stdin.flush()
                while True:  # the answer comes after the records are written
                    got = proc.stdout.readline()
                    if not got:
                        return
                    if got.startswith(b"assistant>") or b"assistant>" in got:
                        answered.append(line)
                        break
                time.sleep(0.3)  # a person types: kills land mid-conversation
        except (BrokenPipeError, OSError):
            return

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    waited = time.monotonic() + 120
    while after_first_answer and not answered and proc.poll() is None and time.monotonic() < waited:
        time.sleep(0.05)
    time.sleep(after_s)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        out.running = False
    proc.wait()
    thread.join(10)
    if not store.exists():
        out.completed = _chat_again(work, out)
        return out
    counts = _counts(store)
    out.opened = bool(counts.get("opened"))
    if not out.opened:
        out.detail = str(counts.get("error"))
        return out
    out.acknowledged = len(answered)
    # a question's turn is logged when it ends: the answered lines are the lower bound minus one
    out.lost = max(
        0, len([a for a in answered[:-1] if not a.startswith("what have")]) - counts.get("turns", 0)
    )
    out.duplicated = counts.get("turns_duplicates", 0) + counts.get("concepts_duplicates", 0)
    out.completed = _chat_again(work, out)
    return out


def _chat_again(work: Path, out: Kill) -> bool:
    done = subprocess.run(
        [PY, "-m", "selflearn", "chat", "--store", str(work / "s.duckdb"), "--no-color"],
        input="\n".join([*CHAT_LINES[:5], ":quit"]) + "\n",
        capture_output=True,
        text=True,
        cwd=work,
        timeout=300,
    )
    ok = done.returncode == 0 and "Traceback" not in done.stdout + done.stderr and "bye" in done.stdout
    if not ok:
        out.detail += f" chat again: {(done.stdout + done.stderr)[-400:]}"
    return ok


KILL_COMMANDS = ("ingest", "signals", "mine", "train", "label", "serve-ingest", "serve-reload", "chat")


def run_kills(per_command: int, commands: tuple[str, ...] = KILL_COMMANDS, seed: int = 42) -> dict[str, Any]:
    ref = reference()
    rng = random.Random(seed)
    durations = {**ref["timings"], "serve-ingest": 8.0, "serve-reload": 10.0, "chat": 14.0}
    kills: list[Kill] = []
    for name in commands:
        for i in range(per_command):
            span = durations.get(name, 5.0)
            after = rng.uniform(0.3, 1.1 * span + 1.0)  # start-up included: a kill may land anywhere
            with tempfile.TemporaryDirectory(prefix=f"kill-{name}-") as tmp:
                work = Path(tmp)
                if name.startswith("serve"):
                    kill = kill_service(name, work, after)
                elif name == "chat":
                    kill = kill_chat(work, after)
                else:
                    kill = kill_cli(name, work, after, ref)
            kills.append(kill)
            flag = (
                ""
                if kill.opened
                and not kill.lost
                and not kill.duplicated
                and kill.completed
                and not kill.half_artefact
                else "  <-- " + kill.detail[:200]
            )
            print(
                f"  {name} #{i + 1}: kill at {kill.after_s:.2f} s (running {kill.running}) "
                f"acked {kill.acknowledged} (taught {kill.taught}) opened {kill.opened} lost {kill.lost} "
                f"dup {kill.duplicated} "
                f"half {kill.half_artefact} "
                f"completed {kill.completed}{flag}"
            )
    return summarize(kills, commands)


def summarize(kills: list[Kill], commands: tuple[str, ...]) -> dict[str, Any]:
    """The kills part's figures, per command and in all, with the kills that were not clean."""
    by = {
        name: {
            "kills": sum(k.command == name for k in kills),
            "while_running": sum(k.command == name and k.running for k in kills),
            "unopenable": sum(k.command == name and not k.opened for k in kills),
            "lost_rows": sum(k.lost for k in kills if k.command == name),
            "duplicated_rows": sum(k.duplicated for k in kills if k.command == name),
            "half_artefacts": sum(k.command == name and k.half_artefact for k in kills),
            "rerun_incomplete": sum(k.command == name and not k.completed for k in kills),
            "acknowledged_checked": sum(k.acknowledged for k in kills if k.command == name),
        }
        for name in commands
    }
    return {
        "figures": {
            "kills": len(kills),
            "kills_lost_rows": sum(k.lost + k.duplicated for k in kills),
            "kills_unopenable": sum(not k.opened for k in kills),
        },
        "by_command": by,
        "failures": [
            asdict(k)
            for k in kills
            if not (k.opened and not k.lost and not k.duplicated and k.completed and not k.half_artefact)
        ],
    }


_LINE = re.compile(
    r"^  (?P<command>[a-z-]+) #(?P<n>\d+): kill at (?P<after>[\d.]+) s \(running (?P<running>True|False)\) "
    r"acked (?P<acked>\d+) \(taught (?P<taught>\d+)\) opened (?P<opened>True|False) lost (?P<lost>\d+) "
    r"dup (?P<dup>\d+) half (?P<half>True|False) completed (?P<completed>True|False)"
    r"(?:  <-- (?P<detail>.*))?$"
)


def kills_from_log(path: Path, commands: tuple[str, ...]) -> list[Kill]:
    """The kills of ``commands`` a run printed (one line each, as :func:`run_kills` prints them):
    a run that died before writing its results still did them."""
    kills = []
    for line in path.read_text().splitlines():
        m = _LINE.match(line)
        if m is None or m["command"] not in commands:
            continue
        kills.append(
            Kill(
                m["command"],
                float(m["after"]),
                m["running"] == "True",
                opened=m["opened"] == "True",
                lost=int(m["lost"]),
                duplicated=int(m["dup"]),
                acknowledged=int(m["acked"]),
                taught=int(m["taught"]),
                half_artefact=m["half"] == "True",
                completed=m["completed"] == "True",
                detail=m["detail"] or "",
            )
        )
    return kills
