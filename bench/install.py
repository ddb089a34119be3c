"""What the serving install costs: disk, memory and start time of ``selflearn serve`` with the starter.

    make test-wheel                      # builds build/wheel/*.whl and .venv-wheel (no torch)
    python bench/install.py              # -> docs/results/install.json
    python bench/install.py --learn-venv .venv-learn   # also sizes a serving + learn install
    python bench/install.py --learn-venv .venv-learn --aarch64 --image --ha   # everything (root)

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
* ``serve_rss_mb``: the process's resident memory (``VmRSS``) after that first question, and
  ``serve_peak_rss_mb`` (``VmHWM``, the high-water mark since it started);
* ``aarch64_wheels_missing`` (with ``--aarch64``): the packages of the serving venv, at the
  versions installed there, that have no wheel for a 64-bit ARM Linux (``pip download --no-deps
  --only-binary=:all: --platform manylinux_2_28_aarch64`` and the older manylinux tags it
  accepts, for the venv's Python): what a Raspberry Pi would have to compile;
* ``image_mb``, ``image_build_s``, ``base_build_s`` (with ``--image``): the container image of
  deploy/Containerfile built with buildah (vfs storage, chroot isolation) on the Debian base that
  deploy/base-image.sh builds with debootstrap (no image registry is reachable here), its size
  and the seconds each build took;
* ``ha_versions`` (with ``--ha``): the Home Assistant cores whose integration tests (``tests_ha/``,
  what ``make test-ha`` runs) passed here, each core's version as it reports it; ``ha_tests``:
  per core, tests passed, skipped and failed and the seconds they took.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
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


def serve_once(venv: Path) -> dict[str, float]:
    """One start of ``selflearn serve`` from ``venv`` on a fresh store; its timings and memory."""
    with tempfile.TemporaryDirectory(prefix="install-bench-") as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["HOME"] = tmp
        log = Path(tmp) / "serve.log"
        started = time.perf_counter()
        proc = subprocess.Popen(
            [str(venv / "bin" / "selflearn"), "serve", "--store", "logs.duckdb", "--port", str(port)],
            cwd=tmp,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        try:
            ready, health = None, None
            while time.perf_counter() - started < 300:
                if proc.poll() is not None:
                    raise SystemExit(f"serve exited with {proc.returncode}:\n{log.read_text()}")
                try:
                    health = httpx.get(f"{url}/healthz", timeout=5).json()
                    if health.get("status") == "ok" and health.get("dialogue", {}).get("ready"):
                        ready = time.perf_counter() - started  # the starter loaded, the dialogue warm
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            if ready is None:
                raise SystemExit(f"serve did not become ready (last /healthz: {health}):\n{log.read_text()}")
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
                "first_question_s": first,
                "rss_mb": status_kb(proc.pid, "VmRSS") / 1024,
                "peak_rss_mb": status_kb(proc.pid, "VmHWM") / 1024,
            }
        finally:
            stop(proc)


def _venv_core(venv: str, *pytest_args: str) -> tuple[list[str], list[str]]:
    """A core installed in ``venv``: the command that prints its version, and its tests."""
    python = str(ROOT / venv / "bin" / "python")
    version = [python, "-c", "from homeassistant.const import __version__ as v; print(v)"]
    return version, [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args]


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


def image() -> dict[str, Any]:
    """Build the Debian base and the serving image with buildah; their sizes and build times."""
    storage = ["--storage-driver", "vfs"]
    out: dict[str, Any] = {}
    started = time.perf_counter()
    subprocess.run([str(ROOT / "deploy" / "base-image.sh")], check=True, capture_output=True, text=True)
    out["base_build_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    subprocess.run(
        [
            "buildah",
            *storage,
            "bud",
            "--isolation",
            "chroot",
            "--build-arg",
            "BASE=localhost/selflearn-base:bookworm",
            "-f",
            "deploy/Containerfile",
            "-t",
            "localhost/selflearn:dev",
            ".",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    out["image_build_s"] = round(time.perf_counter() - started, 1)
    listed = subprocess.run(
        ["buildah", *storage, "images", "--json", "localhost/selflearn:dev"],
        capture_output=True,
        text=True,
        check=True,
    )
    size = json.loads(listed.stdout)[0]["size"]  # "979 MB"
    number, unit = size.split()
    out["image_mb"] = round(float(number) * {"kB": 1e-3, "MB": 1.0, "GB": 1e3}[unit], 1)
    return out


def ha_tests() -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The integration's tests on each core: the versions whose tests all passed, and per core
    what pytest counted."""
    passed_on: list[str] = []
    counts: dict[str, dict[str, Any]] = {}
    for version_cmd, test_cmd in HA_CORES:
        version = subprocess.run(version_cmd, capture_output=True, text=True, check=True).stdout.split()[-1]
        print(f"[install] tests_ha on Home Assistant {version} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        run = subprocess.run(test_cmd, cwd=ROOT / "tests_ha", capture_output=True, text=True)
        tail = (run.stdout + run.stderr).strip().splitlines()[-1] if (run.stdout + run.stderr).strip() else ""
        found = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|skipped|failed|errors?)", tail)}
        counts[version] = {
            "passed": found.get("passed", 0),
            "skipped": found.get("skipped", 0),
            "failed": found.get("failed", 0) + found.get("error", 0) + found.get("errors", 0),
            "seconds": round(time.perf_counter() - started),
        }
        print(f"[install]   {tail}", file=sys.stderr, flush=True)
        if run.returncode == 0 and counts[version]["failed"] == 0:
            passed_on.append(version)
    return passed_on, counts


def build_learn_venv(folder: Path, wheel: Path) -> None:
    """A venv with the wheel and its ``learn`` extra (torch first: the CPU build)."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, f"{wheel}[learn]"], check=True)


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
        "--ha", action="store_true", help="also run tests_ha/ on the three cores (about 12 min)"
    )
    args = parser.parse_args()
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
                ((p.name, mb(p)) for p in packages.iterdir() if p.is_dir() and not p.name.endswith("-info")),
                key=lambda kv: -kv[1],
            )[:8]
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
    if args.aarch64:
        figures["aarch64_wheels_missing"] = aarch64_missing(args.venv)
    if args.image:
        figures |= image()
    if args.ha:
        figures["ha_versions"], figures["ha_tests"] = ha_tests()
    # the timed starts last: the other parts (builds, downloads, test runs) load the machine
    runs = [serve_once(args.venv) for _ in range(args.runs)]
    figures["serve_start_s"] = round(statistics.median(r["start_s"] for r in runs), 2)
    figures["first_question_s"] = round(statistics.median(r["first_question_s"] for r in runs), 2)
    figures["serve_rss_mb"] = round(statistics.median(r["rss_mb"] for r in runs))
    figures["serve_peak_rss_mb"] = round(max(r["peak_rss_mb"] for r in runs))
    figures["runs"] = [{k: round(v, 2) for k, v in r.items()} for r in runs]
    figures["serve_command"] = "selflearn serve --store logs.duckdb (fresh store, the packaged starter)"
    print(json.dumps(figures, indent=2))
    write_results("install", figures, seconds=time.perf_counter() - begun)


if __name__ == "__main__":
    main()
