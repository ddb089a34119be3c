"""Crash safety (issue 42): ``kill -9`` during ``selflearn ingest``, ``signals``, ``mine`` and
``label``, during the service's ingest, reloads and teaching, and during a chat with ``--store``.
After each kill the store opens in a fresh process (its write-ahead log replayed), every table
holds what it held before or what the run writes -- never a part, no key twice --, nothing a client
was acknowledged for is missing, an artefact folder is the old one or the new one whole, and
running again ends where a run without a kill ends.

A few kills per command, at seeded random points; ``bench/reliability.py kills`` runs 50 per
command with the same harness (``bench/reliability_kills.py``).
"""

from __future__ import annotations

import importlib.util
import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The kill harness on a small population of its own (no rewriter trained: not needed here)."""
    os.environ["SELFLEARN_RELIABILITY_CACHE"] = str(tmp_path_factory.mktemp("reliability"))
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        for name in ("http_load", "reliability_common", "reliability_kills"):
            _load(name)
        common = sys.modules["reliability_common"]
        common.setup(households=6, days=1.0, train=False)
        yield sys.modules["reliability_kills"]
    finally:
        os.environ.pop("SELFLEARN_RELIABILITY_CACHE", None)
        sys.path.remove(str(ROOT / "bench"))


def _clean(kill: Any) -> None:
    assert kill.opened, kill
    assert kill.lost == 0 and kill.duplicated == 0, kill
    assert not kill.half_artefact, kill
    assert kill.completed, kill


@pytest.mark.parametrize(
    ("command", "at"), [("ingest", 0.2), ("ingest", 1.8), ("signals", 2.2), ("mine", 2.0), ("label", 1.8)]
)
def test_a_killed_command_leaves_a_store_that_opens_and_reruns(
    harness: Any, tmp_path: Path, command: str, at: float
) -> None:
    ref = harness.reference()
    kill = harness.kill_cli(command, tmp_path, at + random.Random(command).uniform(0, 0.3), ref)
    _clean(kill)


def test_a_killed_service_kept_every_acknowledged_batch(harness: Any, tmp_path: Path) -> None:
    kill = harness.kill_service("serve-ingest", tmp_path, 3.0)
    _clean(kill)
    assert kill.acknowledged > 0  # the kill landed after the client had been told something


def test_a_killed_chat_kept_what_it_answered(harness: Any, tmp_path: Path) -> None:
    kill = harness.kill_chat(tmp_path, 1.5, after_first_answer=True)  # mid-conversation
    _clean(kill)
    assert kill.acknowledged > 0
