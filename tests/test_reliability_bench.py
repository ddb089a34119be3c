"""The reliability benchmark's own arithmetic (``bench/reliability.py``, ``bench/reliability_load.py``):
kills runs merged into the results, the load ceiling and the soak's memory slopes, on made-up figures."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> Iterator[tuple[Any, Any]]:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import reliability
        import reliability_load

        yield reliability, reliability_load
    finally:
        sys.path.remove(str(ROOT / "bench"))


def _by(kills: int, lost: int = 0) -> dict[str, int]:
    counts = dict.fromkeys(
        (
            "while_running",
            "unopenable",
            "duplicated_rows",
            "half_artefacts",
            "rerun_incomplete",
            "acknowledged_checked",
        ),
        0,
    )
    return {**counts, "kills": kills, "lost_rows": lost}


def test_kills_added_to_the_recorded_ones_name_every_run(bench: tuple[Any, Any]) -> None:
    reliability, _ = bench
    previous = {  # as written before runs were recorded: one command for two runs' figures
        "command": "python bench/reliability.py kills --per-command 25 --commands chat",
        "date": "2026-11-27",
        "commit": "abc",
        "by_command": {"ingest": _by(25), "chat": _by(25)},
        "failures": [{"command": "chat"}],
    }
    fresh = {"by_command": {"ingest": _by(25, lost=1), "chat": _by(25)}, "failures": [], "figures": {}}
    run = {"command": "python bench/reliability.py kills --per-command 25 --seed 43 --add", "seed": 43}
    merged = reliability._merge_kills(previous, fresh, run, add=True)
    assert merged["by_command"]["ingest"]["kills"] == 50 and merged["by_command"]["chat"]["kills"] == 50
    assert merged["figures"] == {"kills": 100, "kills_lost_rows": 1, "kills_unopenable": 0}
    assert [r["kills_by_command"] for r in merged["runs"]] == [
        {"ingest": 25},
        {"chat": 25},
        {"ingest": 25, "chat": 25},
    ]
    assert merged["command"].count("python bench/reliability.py kills") == 2
    assert "not recorded" in merged["command"]
    assert merged["failures"] == [{"command": "chat"}]  # added: the earlier failures stay

    replaced = reliability._merge_kills(previous, {**fresh, "by_command": {"chat": _by(25)}}, run)
    assert replaced["by_command"]["chat"]["kills"] == 25 and replaced["figures"]["kills"] == 50
    assert [r["kills_by_command"] for r in replaced["runs"]] == [{"ingest": 25}, {"chat": 25}]
    assert replaced["failures"] == []


def _step(rate: float, p99: float, cpu_ms: float, busy: float, failed: int = 0) -> dict[str, Any]:
    return {
        "rate": rate,
        "achieved_rps": rate,
        "rewrite": {
            "p50_ms": 3.0,
            "p99_ms": p99,
            "requests": 100,
            "failed": failed,
            "outcomes": {"ok": 95, "fail_open: timeout": 5},
        },
        "turns": {"p50_ms": 9.0, "failed": 0, "outcomes": {"ok": 20}},
        "server_cpu_ms_per_request": cpu_ms,
        "server_cores_busy": busy,
        "cores_busy": {"others": 0.2},
    }


def test_the_load_ceiling_is_the_highest_rate_that_held(bench: tuple[Any, Any]) -> None:
    _, load = bench
    steps = [
        _step(100, 6.0, 3.0, 0.3),
        _step(150, 8.0, 3.0, 0.45),
        _step(200, 10.6, 3.1, 0.63),
        _step(300, 9.0, 2.9, 0.9, failed=1),
        _step(400, 54.0, 2.7, 1.07),
    ]
    ceiling = load.load_ceiling(steps)
    assert ceiling["rps"] == 150 and ceiling["rates_held"] == [100, 150]
    assert ceiling["rewrite_fail_open"] == 5 and ceiling["one_core_rps"] == 333
    assert ceiling["next"]["rate"] == 200 and ceiling["max_server_cores_busy"] == 1.07
    assert "150/s" in ceiling["why"] and "10.6 ms" in ceiling["why"]
    assert load.load_ceiling([_step(200, 11.0, 3.0, 0.6)])["rps"] is None


def test_the_soak_slope_after_the_first_swap_leaves_its_step_out(bench: tuple[Any, Any]) -> None:
    _, load = bench
    samples = [(t, 400.0 + (20.0 if t > 60 else 0.0) + t / 60, 300.0) for t in range(5, 605, 5)]
    memory = load._soak_memory(samples, [(60.1, 200, 0.1), (120.1, 200, 0.1)], 1200, 10.0)
    assert memory["step_at_first_swap_mb"] == pytest.approx(20.0, abs=0.2)
    assert memory["slope_after_first_swap_mb_per_min"] == pytest.approx(1.0)
    assert memory["slope_raw_mb_per_min"] > 2  # the step pulls the straight line up
    assert memory["anonymous_slope_after_first_swap_mb_per_min"] == pytest.approx(0.0)
    assert memory["batches_of_turns"] == 1200 and memory["first_swap_s"] == pytest.approx(60.0)
    assert memory["mb_per_1000_batches_of_turns_after_first_swap"] == pytest.approx(8.333, abs=0.01)


def test_kills_a_run_printed_are_read_back_from_its_log(bench: tuple[Any, Any], tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import reliability_kills
    finally:
        sys.path.remove(str(ROOT / "bench"))
    log = tmp_path / "kills.log"
    log.write_text(
        "load average before: (1, 1, 1)\n"
        "  ingest #1: kill at 0.40 s (running True) acked 0 (taught 0) opened True lost 0 dup 0 "
        "half False completed True\n"
        "  mine #1: kill at 2.10 s (running False) acked 0 (taught 0) opened True lost 3 dup 0 "
        "half True completed False  <-- turns: 10 (before 0, after 13)\n"
        "  serve-ingest #1: kill at 2.80 s (running True) acked 2075 (taught 0) opened True lost 0 dup 0 "
        "half False completed True\n"
        "Traceback (most recent call last):\n"
    )
    commands = ("ingest", "mine")
    kills = reliability_kills.kills_from_log(log, commands)
    result = reliability_kills.summarize(kills, commands)
    assert result["figures"] == {"kills": 2, "kills_lost_rows": 3, "kills_unopenable": 0}
    assert result["by_command"]["mine"]["half_artefacts"] == 1
    assert result["by_command"]["mine"]["while_running"] == 0
    assert [f["detail"] for f in result["failures"]] == ["turns: 10 (before 0, after 13)"]
