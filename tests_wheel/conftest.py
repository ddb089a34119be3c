"""The serving install as a user gets it: the wheel, installed in a venv of its own.

``make test-wheel`` builds the wheel, installs it in a fresh venv (``$SELFLEARN_WHEEL_VENV``,
default ``.venv-wheel``) with nothing else, and runs these tests from the development venv: each
starts a real ``selflearn`` process from the wheel's venv and talks to it over HTTP.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def venv() -> Path:
    """The venv the wheel was installed into."""
    folder = Path(os.environ.get("SELFLEARN_WHEEL_VENV", ROOT / ".venv-wheel")).resolve()
    if not (folder / "bin" / "selflearn").exists():
        pytest.fail(f"no selflearn installed in {folder}: run `make test-wheel`")
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A ``selflearn serve`` process of the wheel's venv, and its URL."""

    def __init__(self, venv: Path, cwd: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / "serve.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["HOME"] = str(cwd)  # nothing read from (or cached in) the user's home
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [str(venv / "bin" / "selflearn"), "serve", "--port", str(self.port), *args],
            cwd=cwd,
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.ready_s = self._wait()

    def _wait(self, timeout: float = 180.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:  # ready: the rewriter loaded and the dialogue's matcher warmed up (it loads after)
                health = httpx.get(f"{self.url}/healthz", timeout=2).json()
                if health.get("dialogue", {}).get("ready"):
                    return time.perf_counter() - self.started
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"serve did not answer in {timeout:.0f} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture()
def serve(venv: Path, tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """``serve(*args)`` starts ``selflearn serve ARGS`` from the wheel's venv in ``tmp_path``;
    every process started is stopped after the test."""
    started: list[Served] = []

    def start(*args: str) -> Served:
        started.append(Served(venv, tmp_path, *args))
        return started[-1]

    yield start
    for served in started:
        served.stop()
