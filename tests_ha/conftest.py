"""Fixtures of the Home Assistant tests: a real core (pytest-homeassistant-custom-component), a real
``selflearn serve`` process, and a home with real entities.

Run by ``make test`` in three environments of their own, one per Home Assistant core
(``make test-ha``: 2024.3.3, 2025.4.4, and 2026.11.0 in a chroot, ``core2026.sh``); selflearn
itself runs in its own ``.venv``, as beside a real Home Assistant.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # custom_components/ is found on the path, as in a config folder

SELFLEARN_PYTHON = Path(os.environ.get("SELFLEARN_PYTHON", ROOT / ".venv" / "bin" / "python"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    """A running ``selflearn serve``."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as res:
            body = res.read().decode()
        return json.loads(body) if body.startswith(("{", "[")) else body

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a Prometheus metric's samples with these labels (0 when absent)."""
        total = 0.0
        for line in str(self.get("/metrics")).splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def start_service(
    folder: Path,
    tmp: Path,
    rule: tuple[str, str] | None = None,
    *,
    confirm: str = "guesses",
    port: int | None = None,
    store: Path | None = None,
    make: bool = True,
    admin_token: str | None = None,
) -> Service:
    """Write a rewriter folder with selflearn's own Python (unless ``make`` is off: a restart),
    then serve it on a free port (or ``port``). ``confirm``: when the rewriter asks first (the
    service's default, ``guesses``: about the mined table's and the global layer's guesses);
    ``admin_token``: the service's ``--admin-token``."""
    rewriter = folder / "rewriter"
    if make:
        cmd = [str(SELFLEARN_PYTHON), str(ROOT / "tests_ha" / "make_rewriter.py"), str(rewriter)]
        if rule is not None:
            cmd += ["--rule", *rule]
        subprocess.run(cmd, check=True, capture_output=True)
    port = port or free_port()
    log = tmp / f"serve-{port}.log"
    process = subprocess.Popen(
        [
            str(SELFLEARN_PYTHON),
            "-m",
            "selflearn",
            "serve",
            "--rewriter",
            str(rewriter),
            "--store",
            str(store or tmp / "selflearn.duckdb"),
            "--port",
            str(port),
            "--timeout-ms",
            "1000",
            "--confirm",
            confirm,
            *(["--admin-token", admin_token] if admin_token else []),
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    service = Service(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"selflearn serve exited: {log.read_text()[-2000:]}")
        try:
            health = service.get("/healthz")
            if health["status"] == "ok" and health["dialogue"]["ready"]:
                return service
        except OSError:
            time.sleep(0.1)
    service.stop()
    raise RuntimeError(f"selflearn serve did not start in 60 s: {log.read_text()[-2000:]}")


KILL_RULE = ("kill the lights in the {area}", "turn off the lights in the {area}")


@pytest.fixture
def service(tmp_path: Path, socket_enabled: None) -> Iterator[Service]:
    """A selflearn service with one precomputed rule ("kill the lights in the {area}") that acts
    unasked (``--confirm off``: the rewriting tests)."""
    svc = start_service(tmp_path, tmp_path, KILL_RULE, confirm="off")
    yield svc
    svc.stop()


@pytest.fixture
def asking_service(tmp_path: Path, socket_enabled: None) -> Iterator[Service]:
    """The same rule, served as the guide says (``--confirm guesses``): a guess is a question."""
    svc = start_service(tmp_path, tmp_path, KILL_RULE)
    yield svc
    svc.stop()


@pytest.fixture
def empty_service(tmp_path: Path, socket_enabled: None) -> Iterator[Service]:
    """A selflearn service that knows nothing yet: only what it learns from the logged turns."""
    svc = start_service(tmp_path, tmp_path)
    yield svc
    svc.stop()


def agent_id_of(hass: Any, entry: Any) -> str:
    """What ``conversation.process`` names selflearn by: its entity (Home Assistant 2024.6+) or,
    on older cores, its config entry."""
    from homeassistant.helpers import entity_registry as er

    entity_id = er.async_get(hass).async_get_entity_id("conversation", "selflearn", entry.entry_id)
    return entity_id or str(entry.entry_id)


@pytest.fixture(autouse=True)
def _custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/selflearn."""
