"""What the serving install costs: disk, memory and start time of ``selflearn serve`` with the starter.

    make test-wheel                      # builds build/wheel/*.whl and .venv-wheel (no torch)
    python bench/install.py              # -> docs/results/install.json
    python bench/install.py --learn-venv .venv-learn   # also sizes a serving + learn install
    python bench/install.py --learn-venv .venv-learn --aarch64 --image --ha   # everything (root)
    python bench/install.py --rerun-tests   # again only the test runs install.json counted none of

Figures (``figures`` in docs/results/install.json), each measured here, none assumed:

* ``serve_install_mb``: the serving venv's ``site-packages`` (``pip install selflearn``: the wheel
  and its dependencies, nothing else), MB of files on disk;
* ``learn_install_mb``: the same for a venv with ``selflearn[learn]`` (torch's CPU build), when
  ``--learn-venv`` names one (built by this script when it does not exist);
* ``starter_mb``: the packaged starter rewriter (``selflearn/data/starter``) and, apart,
  ``embedder_mb`` (the packaged static embedder) and ``wheel_mb``;
* ``serve_start_s``: from starting ``selflearn serve --store logs.duckdb`` (no ``--rewriter``:
  the packaged starter) on a fresh store until ``/healthz`` answers ``ok`` with the starter loaded
  and the dialogue ready (its matcher warms up after the rewriter loads; until then a first
  request may be shed or passed through);
  the median of ``--runs`` starts; ``first_question_s``: until the first "Did you mean ...?"
  came back, from the same start;
* ``serve_start_parts_s``: where the start goes: ``python_start`` (the bare interpreter),
  ``imports`` (importing what serve imports, in a fresh interpreter), ``listening`` (until
  ``/healthz`` answers at all: imports and the starter loaded), ``starter_load`` (the service's
  own count of loading the starter); medians;
* ``image_serve_start_s``, ``image_serve_rss_mb`` (with ``--image``): the same starts with
  ``selflearn`` and its Python taken from the serving image (Debian's Python 3.11); ``python``,
  ``image_python``: each interpreter's version and prefix (pyenv's build, Debian's in /usr);
* ``serve_rss_mb``: the process's resident memory (``VmRSS``) after that first question, and
  ``serve_peak_rss_mb`` (``VmHWM``, the high-water mark since it started);
* ``aarch64_wheels_missing`` (with ``--aarch64``): the packages of the serving venv, at the
  versions installed there, that have no wheel for a 64-bit ARM Linux (``pip download --no-deps
  --only-binary=:all: --platform manylinux_2_28_aarch64`` and the older manylinux tags it
  accepts, for the venv's Python): what a Raspberry Pi would have to compile;
* ``image_mb``, ``image_build_s``, ``base_build_s`` (with ``--image``): the container image of
  deploy/Containerfile built with buildah (vfs storage, chroot isolation) on the Debian base that
  deploy/base-image.sh builds with debootstrap (no image registry is reachable here), its size
  and the seconds each build took; ``addon_image_mb``, ``addon_build_s``: the same for the Home
  Assistant OS add-on (deploy/addon, on the same base); ``addon_start_s`` and ``addon_answer``:
  the add-on started as the Supervisor starts it (its run.py, options in /data) until ready, and
  what it answered; ``image_ha_tests``: the integration's tests (``tests_ha/``, 2025.4 core) with
  the service and every selflearn command they run taken from the serving image;
* ``data_fetch_s``: ``selflearn data fetch --from URL`` run from the serving venv into an empty
  data directory, the URL a loopback HTTP server of the shared data (``../shared/data``, the
  pins' source of truth): every pinned file downloaded and its SHA-256 checked; ``data_fetch_mb``
  what it read;
* ``ha_versions`` (with ``--ha``): the Home Assistant cores whose integration tests (``tests_ha/``,
  what ``make test-ha`` runs) passed here, each core's version as it reports it; ``ha_tests``:
  per core, tests passed, skipped and failed and the seconds they took.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from selflearn.evaluate import write_results

ROOT = Path(__file__).resolve().parent.parent

HOME: dict[str, Any] = {
    "home_id": "bench_home",
    "areas": [{"id": "kitchen", "name": "Kitchen"}, {"id": "living_room", "name": "Living Room"}],
    "entities": [
        {"id": "light.kitchen_lights", "name": "Kitchen Lights", "area": "kitchen", "state": "on"},
        {"id": "light.floor_lamp", "name": "Floor Lamp", "area": "living_room", "state": "off"},
        {"id": "media_player.tv", "name": "TV", "area": "living_room", "state": "playing"},
    ],
}
ASKED = "kill the lights in the kitchen"


def mb(path: Path) -> float:
    """MB (10^6 bytes) of the files under ``path`` (or of the file)."""
    if path.is_file():
        return round(path.stat().st_size / 1e6, 1)
    return round(
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6, 1
    )


def site_packages(venv: Path) -> Path:
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    if not found:
        raise SystemExit(f"{venv} is not a venv (no lib/python3*/site-packages)")
    return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a served process: SIGTERM, then SIGKILL if it has not ended within 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def wait_ready(
    proc: subprocess.Popen[bytes], url: str, log: Path, started: float, limit_s: float
) -> tuple[float, float, dict[str, Any]]:
    """Poll ``/healthz`` until the service says ``ok`` with its dialogue ready (the starter
    loaded, the dialogue warm); seconds from ``started`` until then and until HTTP first answered,
    and the last health."""
    listening, health = None, None
    while time.perf_counter() - started < limit_s:
        if proc.poll() is not None:
            raise SystemExit(f"serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            health = httpx.get(f"{url}/healthz", timeout=5).json()
            listening = listening or time.perf_counter() - started
            if health.get("status") == "ok" and health.get("dialogue", {}).get("ready"):
                return time.perf_counter() - started, listening, health
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"serve did not become ready (last /healthz: {health}):\n{log.read_text()}")


def serve_once(selflearn: list[str]) -> dict[str, float]:
    """One start of ``selflearn serve`` (``selflearn``: the command that runs selflearn) on a
    fresh store; its timings and memory."""
    with tempfile.TemporaryDirectory(prefix="install-bench-") as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["HOME"] = tmp
        log = Path(tmp) / "serve.log"
        started = time.perf_counter()
        proc = subprocess.Popen(
            [*selflearn, "serve", "--store", "logs.duckdb", "--port", str(port)],
            cwd=tmp,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        try:
            ready, listening, health = wait_ready(proc, url, log, started, 300)
            httpx.put(f"{url}/v1/homes/h1", json=HOME, timeout=60).raise_for_status()
            body = {
                "text": ASKED,
                "household_id": "h1",
                "user_id": "u1",
                "conversation_id": "c1",
                "turn_id": uuid.uuid4().hex[:12],
                "area": "Kitchen",
                "failed": True,
            }
            answer = httpx.post(f"{url}/v1/dialogue", json=body, timeout=120).json()
            first = time.perf_counter() - started
            if answer.get("action") != "ask" or not str(answer.get("speech", "")).startswith("Did you mean"):
                raise SystemExit(f"the starter did not ask about {ASKED!r}: {answer}")
            return {
                "start_s": ready,
                "listening_s": listening,  # HTTP answers: imports done, the starter loaded
                "starter_load_s": float(health.get("rewriter", {}).get("load_seconds") or 0.0),
                "first_question_s": first,
                "rss_mb": status_kb(proc.pid, "VmRSS") / 1024,
                "peak_rss_mb": status_kb(proc.pid, "VmHWM") / 1024,
            }
        finally:
            stop(proc)


def summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    """Several starts in figures: median start, first question and memory, the peak's maximum,
    and every run rounded."""
    return {
        "start_s": round(statistics.median(r["start_s"] for r in runs), 2),
        "first_question_s": round(statistics.median(r["first_question_s"] for r in runs), 2),
        "rss_mb": round(statistics.median(r["rss_mb"] for r in runs)),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs)),
        "runs": [{k: round(v, 2) for k, v in r.items()} for r in runs],
    }


def python_version(python: list[str]) -> str:
    """The interpreter's version and where it is installed (pyenv's build, or Debian's in /usr)."""
    code = "import sys; print(sys.version.split()[0], sys.base_prefix)"
    return subprocess.run([*python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def import_seconds(venv: Path, runs: int = 3) -> dict[str, float]:
    """What ``serve`` spends before it does anything: the interpreter's own start, and importing
    what ``selflearn serve`` imports (the CLI, the service, the ranker's trees, uvicorn); medians."""

    def wall(code: str) -> float:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([str(venv / "bin" / "python"), "-c", code], check=True)
            times.append(time.perf_counter() - started)
        return round(statistics.median(times), 2)

    return {
        "python_start_s": wall("pass"),
        "imports_s": wall("import selflearn.cli, selflearn.service, selflearn.rewrite.trees, uvicorn"),
    }


def data_fetch(venv: Path, shared: Path) -> dict[str, float]:
    """Seconds and MB of ``selflearn data fetch`` from a loopback mirror of ``shared``."""
    if not (shared / "slurp" / "devel.jsonl").is_file():
        raise SystemExit(f"no shared data at {shared}: give --shared-data")
    handler = functools.partial(_QuietHandler, directory=str(shared))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        with tempfile.TemporaryDirectory(prefix="install-fetch-") as tmp:
            dest = Path(tmp) / "data"
            url = f"http://127.0.0.1:{httpd.server_address[1]}/"
            started = time.perf_counter()
            run = subprocess.run(
                [str(venv / "bin" / "selflearn"), "data", "fetch", "--from", url, "--data-dir", str(dest)],
                capture_output=True,
                text=True,
            )
            seconds = time.perf_counter() - started
            if run.returncode != 0:
                raise SystemExit(f"selflearn data fetch failed:\n{run.stdout}{run.stderr}")
            print(f"[install] {run.stdout.strip().splitlines()[-1]}", file=sys.stderr, flush=True)
            return {"data_fetch_s": round(seconds, 2), "data_fetch_mb": mb(dest)}
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _venv_core(venv: str, *pytest_args: str) -> tuple[list[str], list[str]]:
    """A core installed in ``venv``: the command that prints its version, and its tests."""
    python = str(ROOT / venv / "bin" / "python")
    version = [python, "-c", "from homeassistant.const import __version__ as v; print(v)"]
    return version, [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args]


def core_version(version_cmd: list[str]) -> str:
    """The version a Home Assistant core reports (the last word its command prints)."""
    return subprocess.run(version_cmd, capture_output=True, text=True, check=True).stdout.split()[-1]


HA_CORES = [
    # what `make test-ha` runs: (the command that prints the core's version, the test command)
    _venv_core(".venv-ha2024", "--ignore=test_wyoming_e2e.py"),  # no Wyoming agents in 2024.3
    _venv_core(".venv-ha2025"),
    ([str(ROOT / "tests_ha" / "core2026.sh"), "version"], [str(ROOT / "tests_ha" / "core2026.sh"), "test"]),
]


AARCH64 = ["manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"]


def aarch64_missing(venv: Path) -> list[str]:
    """The serving venv's packages (as installed) that have no aarch64 Linux wheel."""
    python = str(venv / "bin" / "python")
    frozen = subprocess.run(
        [python, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True, text=True, check=True
    ).stdout.split()
    version = subprocess.run(
        [python, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    pins = [line for line in frozen if "==" in line and not line.startswith("selflearn==")]
    platforms = [arg for tag in AARCH64 for arg in ("--platform", tag)]
    missing = []
    with tempfile.TemporaryDirectory(prefix="aarch64-") as folder:
        for n, pin in enumerate(pins, 1):
            got = subprocess.run(
                [
                    python,
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    "--only-binary=:all:",
                    *platforms,
                    "--python-version",
                    version,
                    "-d",
                    folder,
                    pin,
                ],
                capture_output=True,
                text=True,
            )
            if got.returncode != 0:
                missing.append(pin)
            print(
                f"[install] aarch64 wheels: {n}/{len(pins)} checked, {len(missing)} missing",
                file=sys.stderr,
                flush=True,
            )
    return missing


STORAGE = ["--storage-driver", "vfs"]
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
BASE_IMAGE = "localhost/selflearn-base:bookworm"  # what deploy/base-image.sh builds
IMAGE = "localhost/selflearn:dev"
ADDON_IMAGE = "localhost/selflearn-addon:dev"


def _buildah(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(["buildah", *STORAGE, *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"buildah {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout.strip()


def _image_mb(name: str) -> float:
    size = json.loads(_buildah("images", "--json", name))[0]["size"]  # "979 MB"
    number, unit = size.split()
    return round(float(number) * {"kB": 1e-3, "MB": 1.0, "GB": 1e3}[unit], 1)


def image(wheel: Path) -> dict[str, Any]:
    """Build the Debian base, the serving image (deploy/Containerfile) and the Home Assistant OS
    add-on's image (deploy/addon, with ``wheel`` in its wheels/ folder) with buildah; their sizes
    and build times."""
    out: dict[str, Any] = {}
    started = time.perf_counter()
    subprocess.run([str(ROOT / "deploy" / "base-image.sh")], check=True, capture_output=True, text=True)
    out["base_build_s"] = round(time.perf_counter() - started, 1)
    base = f"BASE={BASE_IMAGE}"
    started = time.perf_counter()
    _buildah(
        "bud", "--isolation", "chroot", "--build-arg", base, "-f", "deploy/Containerfile", "-t", IMAGE, "."
    )
    out["image_build_s"] = round(time.perf_counter() - started, 1)
    out["image_mb"] = _image_mb(IMAGE)
    local = ROOT / "deploy" / "addon" / "wheels" / wheel.name
    shutil.copyfile(wheel, local)
    try:
        started = time.perf_counter()
        _buildah(
            "bud", "--isolation", "chroot", "--build-arg", f"BUILD_FROM={BASE_IMAGE}",
            "-t", ADDON_IMAGE, str(ROOT / "deploy" / "addon"),
        )  # fmt: skip
        out["addon_build_s"] = round(time.perf_counter() - started, 1)
    finally:
        local.unlink()
    out["addon_image_mb"] = _image_mb(ADDON_IMAGE)
    return out


class Mounted:
    """An image's root file system, mounted by buildah, with /proc, /dev, /tmp and the repository
    inside (at their own paths), to run its programs with ``chroot``: the process a test starts is
    the image's program itself, so stopping or killing it stops the service (``buildah run``
    does not pass a SIGKILL on to what it runs)."""

    def __init__(self, name: str) -> None:
        self.container = _buildah("from", "-q", name)
        self.root = Path(_buildah("mount", self.container))
        self.mounts: list[Path] = []
        for source, kind in (("/proc", "proc"), ("/dev", "bind"), ("/tmp", "bind"), (str(ROOT), "bind")):
            target = self.root / source.lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            how = ["-t", "proc", "proc"] if kind == "proc" else ["--bind", source]
            subprocess.run(["mount", *how, str(target)], check=True)
            self.mounts.append(target)

    def python(self, folder: Path) -> Path:
        """A script that runs the image's Python in the image, in the caller's folder."""
        script = folder / "image-python"
        script.write_text(
            "#!/bin/sh\n"
            f"exec {CHROOT} {self.root} /usr/bin/env -u PYTHONPATH -u VIRTUAL_ENV "
            '/bin/sh -c \'cd "$0" && exec /opt/selflearn/bin/python "$@"\' "$PWD" "$@"\n'
        )
        script.chmod(0o755)
        return script

    def close(self) -> None:
        for target in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(target)], check=False)
        _buildah("umount", self.container)
        _buildah("rm", self.container)


def _counts(output: str) -> dict[str, int]:
    """pytest's summary line (the last line that counts tests: a core may print after it)."""
    summaries = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|errors?)\b", line)]
    tail = summaries[-1] if summaries else ""
    found = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|skipped|failed|errors?)", tail)}
    return {
        "passed": found.get("passed", 0),
        "skipped": found.get("skipped", 0),
        "failed": found.get("failed", 0) + found.get("error", 0) + found.get("errors", 0),
    }


def image_ha_tests() -> dict[str, Any]:
    """The integration's tests (tests_ha/ on the 2025.4 core, which runs beside the image here)
    with every selflearn process they start -- the service, the rewriter they write -- run from
    the serving image."""
    version_cmd, test_cmd = HA_CORES[1]
    version = core_version(version_cmd)
    mounted = Mounted(IMAGE)
    try:
        with tempfile.TemporaryDirectory(prefix="image-tests-") as tmp:
            env = dict(os.environ, SELFLEARN_PYTHON=str(mounted.python(Path(tmp))))
            print(f"[install] tests_ha on Home Assistant {version}, selflearn in {IMAGE}", file=sys.stderr)
            started = time.perf_counter()
            run = subprocess.run(test_cmd, cwd=ROOT / "tests_ha", env=env, capture_output=True, text=True)
            counts = _counts(run.stdout + run.stderr)
            print(f"[install]   {counts} (exit {run.returncode})", file=sys.stderr, flush=True)
            if run.returncode != 0 or not counts["passed"]:
                print(run.stdout[-3000:], run.stderr[-3000:], file=sys.stderr)
    finally:
        mounted.close()
    return {"image": IMAGE, "core": version, **counts, "seconds": round(time.perf_counter() - started)}


def addon_start() -> dict[str, Any]:
    """The add-on as the Supervisor starts it: its CMD (deploy/addon/run.py) with a /data folder
    holding the options; seconds until /healthz is ready, and its first answer."""
    mounted = Mounted(ADDON_IMAGE)
    proc = None
    try:
        with tempfile.TemporaryDirectory(prefix="addon-data-") as data:
            (Path(data) / "options.json").write_text(json.dumps({"confirm": "guesses"}))
            port = free_port()
            env = {"PATH": "/usr/bin:/bin", "SELFLEARN_ADDON_DATA": data, "SELFLEARN_ADDON_PORT": str(port)}
            log = Path(data) / "addon.log"
            started = time.perf_counter()
            proc = subprocess.Popen(
                [CHROOT, str(mounted.root), "/opt/selflearn/bin/python", "/run.py"],
                env=env,
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
            )
            url = f"http://127.0.0.1:{port}"
            ready, _, _ = wait_ready(proc, url, log, started, 120)
            token = (Path(data) / "admin_token").read_text().strip()
            auth = {"Authorization": f"Bearer {token}"}
            httpx.put(f"{url}/v1/homes/h1", json=HOME, headers=auth, timeout=60).raise_for_status()
            body = {
                "text": ASKED,
                "household_id": "h1",
                "conversation_id": "c1",
                "turn_id": "t1",
                "area": "Kitchen",
                "failed": True,
            }
            answer = httpx.post(f"{url}/v1/dialogue", json=body, headers=auth, timeout=60)
            said = str(answer.json().get("speech", ""))
            print(f"[install] add-on: ready in {ready:.1f} s; {ASKED!r} -> {said!r}", file=sys.stderr)
            if not said.startswith("Did you mean"):
                raise SystemExit(f"the add-on did not ask about {ASKED!r}: {answer.text}")
            return {"addon_start_s": round(ready, 2), "addon_answer": said}
    finally:
        if proc is not None:
            stop(proc)
        mounted.close()


def ha_tests(cores: list[int] | None = None) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The integration's tests on each core (or the ``cores`` of HA_CORES): the versions whose
    tests all passed, and per core what pytest counted."""
    passed_on: list[str] = []
    counts: dict[str, dict[str, Any]] = {}
    for n, (version_cmd, test_cmd) in enumerate(HA_CORES):
        if cores is not None and n not in cores:
            continue
        version = core_version(version_cmd)
        print(f"[install] tests_ha on Home Assistant {version} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        run = subprocess.run(test_cmd, cwd=ROOT / "tests_ha", capture_output=True, text=True)
        counts[version] = _counts(run.stdout + run.stderr) | {"seconds": round(time.perf_counter() - started)}
        print(f"[install]   {counts[version]} (exit {run.returncode})", file=sys.stderr, flush=True)
        if run.returncode == 0 and counts[version]["failed"] == 0 and counts[version]["passed"]:
            passed_on.append(version)
    return passed_on, counts


def build_learn_venv(folder: Path, wheel: Path) -> None:
    """A venv with the wheel and its ``learn`` extra (torch first: the CPU build)."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, f"{wheel}[learn]"], check=True)


def kept_figures(measured: dict[str, Any]) -> dict[str, Any]:
    """The previous install.json's figures that ``measured`` lacks, and under ``kept`` which they
    are and the commit and date of the run that measured them."""
    from selflearn.evaluate.results import results_folder

    path = results_folder() / "install.json"
    if not path.exists():
        return {}
    record = json.loads(path.read_text(encoding="utf-8"))
    previous = record["figures"]
    older = previous.get("kept", {})  # kept once already: their own run's stamp stays
    keys = sorted(k for k in previous if k not in measured and k != "kept")
    stamp = {"commit": older.get("commit", record["commit"]), "date": older.get("date", record["date"])}
    return {k: previous[k] for k in keys} | ({"kept": {"keys": keys, **stamp}} if keys else {})


def rerun_tests() -> None:
    """Run again the test runs of install.json that counted no test (the integration's tests on a
    core, or against the image) and put their counts in, each stamped with this command, commit
    and date."""
    from datetime import UTC, datetime

    from selflearn.evaluate.results import COMMIT_AT_START, results_folder

    path = results_folder() / "install.json"
    record = json.loads(path.read_text(encoding="utf-8"))
    figures = record["figures"]
    stamp = {
        "rerun": "python bench/install.py --rerun-tests",
        "commit": COMMIT_AT_START,
        "date": datetime.now(UTC).date().isoformat(),
    }
    for n, (version_cmd, _) in enumerate(HA_CORES):
        version = core_version(version_cmd)
        if figures.get("ha_tests", {}).get(version, {}).get("passed"):
            continue
        passed_on, counts = ha_tests([n])
        figures.setdefault("ha_tests", {})[version] = counts[version] | stamp
        versions = [v for v in figures.get("ha_versions", []) if v != version] + passed_on
        figures["ha_versions"] = sorted(versions)
    if "image_ha_tests" in figures and not figures["image_ha_tests"].get("passed"):
        figures["image_ha_tests"] = image_ha_tests() | stamp
    path.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"[results] {path}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv-wheel", help="the serving venv")
    parser.add_argument("--wheel-dir", type=Path, default=ROOT / "build" / "wheel")
    parser.add_argument("--learn-venv", type=Path, default=None, help="a serving + learn venv to size")
    parser.add_argument("--runs", type=int, default=3, help="starts of serve (the median is reported)")
    parser.add_argument("--image", action="store_true", help="also build the container image (buildah, root)")
    parser.add_argument("--aarch64", action="store_true", help="also check aarch64 wheels (downloads them)")
    parser.add_argument(
        "--shared-data",
        type=Path,
        default=ROOT.parent / "shared" / "data",
        help="the corpora's source of truth",
    )
    parser.add_argument(
        "--ha", action="store_true", help="also run tests_ha/ on the three cores (about 12 min)"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the figures of docs/results/install.json that this run does not measure (the "
        "image, the Home Assistant tests, the learn venv), listed under 'kept' with the commit and "
        "date they were measured at",
    )
    parser.add_argument(
        "--rerun-tests",
        action="store_true",
        help="only run again the test runs of docs/results/install.json that counted no test "
        "(stamped with this command, commit and date)",
    )
    args = parser.parse_args()
    if args.rerun_tests:
        rerun_tests()
        return
    begun = time.perf_counter()
    shown = subprocess.run(
        [str(args.venv / "bin" / "python"), "-m", "pip", "show", "torch"], capture_output=True, text=True
    )
    if shown.returncode == 0:
        raise SystemExit(f"torch is installed in {args.venv}: not a serving install")
    packages = site_packages(args.venv)
    wheels = sorted(args.wheel_dir.glob("selflearn-*.whl"))
    figures: dict[str, Any] = {
        "serve_install_mb": mb(packages),
        "serve_install_largest_mb": dict(
            sorted(
                ((p.name, mb(p)) for p in packages.iterdir() if not p.name.endswith("-info")),
                key=lambda kv: -kv[1],
            )[:14]
        ),
        "starter_mb": mb(packages / "selflearn" / "data" / "starter"),
        "embedder_mb": mb(packages / "selflearn" / "data" / "embedder"),
    }
    if wheels:
        figures["wheel_mb"] = mb(wheels[-1])
    if args.learn_venv is not None:
        if not (args.learn_venv / "bin" / "python").exists():
            if not wheels:
                raise SystemExit(f"no wheel in {args.wheel_dir}: run make test-wheel first")
            build_learn_venv(args.learn_venv, wheels[-1])
        figures["learn_install_mb"] = mb(site_packages(args.learn_venv))
    figures |= data_fetch(args.venv, args.shared_data)
    if args.aarch64:
        figures["aarch64_wheels_missing"] = aarch64_missing(args.venv)
    if args.image:
        if not wheels:
            raise SystemExit(f"no wheel in {args.wheel_dir}: run make test-wheel first")
        figures |= image(wheels[-1])
        figures |= addon_start()
        figures["image_ha_tests"] = image_ha_tests()
    if args.ha:
        figures["ha_versions"], figures["ha_tests"] = ha_tests()
    # the timed starts last: the other parts (builds, downloads, test runs) load the machine
    runs = [serve_once([str(args.venv / "bin" / "selflearn")]) for _ in range(args.runs)]
    starts = summary(runs)
    figures["serve_start_s"] = starts["start_s"]
    figures["first_question_s"] = starts["first_question_s"]
    figures["serve_rss_mb"] = starts["rss_mb"]
    figures["serve_peak_rss_mb"] = starts["peak_rss_mb"]
    figures["serve_start_parts_s"] = import_seconds(args.venv) | {
        "listening": round(statistics.median(r["listening_s"] for r in runs), 2),
        "starter_load": round(statistics.median(r["starter_load_s"] for r in runs), 2),
    }
    figures["runs"] = starts["runs"]
    figures["python"] = python_version([str(args.venv / "bin" / "python")])
    if args.image:  # the same starts from the image, whose Python is Debian's
        mounted = Mounted(IMAGE)
        try:
            with tempfile.TemporaryDirectory(prefix="image-python-") as tmp:
                python = str(mounted.python(Path(tmp)))
                image_runs = [serve_once([python, "-m", "selflearn"]) for _ in range(args.runs)]
                figures["image_python"] = python_version([python])
        finally:
            mounted.close()
        in_image = summary(image_runs)
        figures["image_serve_start_s"] = in_image["start_s"]
        figures["image_serve_rss_mb"] = in_image["rss_mb"]
        figures["image_runs"] = in_image["runs"]
    figures["serve_command"] = "selflearn serve --store logs.duckdb (fresh store, the packaged starter)"
    if args.keep:
        figures |= kept_figures(figures)
    print(json.dumps(figures, indent=2))
    write_results("install", figures, seconds=time.perf_counter() - begun)


if __name__ == "__main__":
    main()
