"""What the integration adds to Home Assistant's conversation round trip (a benchmark, not a test).

Run by ``bench/integration_latency.py`` under each Home Assistant core's venv; writes its figures
as JSON to ``$SELFLEARN_BENCH_OUT``. Every request goes through ``conversation.async_converse``
with the selflearn agent; the agent's call to Home Assistant's own agent is timed inside the same
request, so the overhead (the request's time minus Home Assistant's own first answer) is measured
per request, not as a difference of two runs.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from homeassistant.components import conversation
from homeassistant.const import __version__ as HA_VERSION
from homeassistant.core import Context, HomeAssistant

from .conftest import Service
from .test_integration import KILL, WORKS, add_entry, agent_of, setup_home

N = int(os.environ.get("SELFLEARN_BENCH_N", "1000"))
NO_RULE = "flip the lights in the kitchen"
"""Fails in Home Assistant, and the service has no rewrite for it: the cost of asking."""


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(_pct(values, 0.50), 3),
        "p99": round(_pct(values, 0.99), 3),
        "mean": round(statistics.fmean(values), 3),
    }


async def _run(hass: HomeAssistant, agent: Any, agent_id: str, text: str) -> dict[str, Any]:
    """N requests; per request the total and the time of Home Assistant's own first answer."""
    original = agent._converse
    first: list[float | None] = [None]

    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        out = await original(*args, **kwargs)
        if first[0] is None:
            first[0] = (time.perf_counter() - started) * 1000
        return out

    agent._converse = timed
    totals: list[float] = []
    firsts: list[float] = []
    rewritten_before = agent.rewrites
    try:
        for i in range(N + 20):  # 20 warm-up requests
            first[0] = None
            started = time.perf_counter()
            await conversation.async_converse(hass, text, None, Context(), language="en", agent_id=agent_id)
            elapsed = (time.perf_counter() - started) * 1000
            if i >= 20 and first[0] is not None:
                totals.append(elapsed)
                firsts.append(first[0])
    finally:
        agent._converse = original
    overhead = [t - f for t, f in zip(totals, firsts, strict=True)]
    return {
        "round_trip_ms": _summary(totals),
        "home_assistant_ms": _summary(firsts),
        "overhead_ms": _summary(overhead),
        "rewritten": agent.rewrites - rewritten_before,
    }


async def _alone(hass: HomeAssistant, text: str) -> dict[str, float]:
    totals = []
    for i in range(N + 20):
        started = time.perf_counter()
        await conversation.async_converse(hass, text, None, Context(), language="en")
        if i >= 20:
            totals.append((time.perf_counter() - started) * 1000)
    return _summary(totals)


async def test_latency(hass: HomeAssistant, service: Service) -> None:
    await setup_home(hass)
    entry = await add_entry(hass, service.url, log_turns=False)
    agent = agent_of(hass, entry)
    client = hass.data["selflearn"][entry.entry_id]["client"]
    calls = client.calls
    out: dict[str, Any] = {"home_assistant": HA_VERSION, "n": N}
    out["understood"] = await _run(hass, agent, entry.entry_id, WORKS)
    out["understood"]["service_calls"] = client.calls - calls
    out["failed_no_rewrite"] = await _run(hass, agent, entry.entry_id, NO_RULE)
    out["failed_rewritten"] = await _run(hass, agent, entry.entry_id, KILL)
    out["alone"] = {"understood_ms": await _alone(hass, WORKS), "failed_ms": await _alone(hass, NO_RULE)}
    # Logging on: the turn goes out in the background; the answer must not wait for it.
    await hass.config_entries.async_remove(entry.entry_id)
    logged = await add_entry(hass, service.url, log_turns=True)
    out["understood_logging"] = await _run(hass, agent_of(hass, logged), logged.entry_id, WORKS)
    await hass.async_block_till_done()
    assert out["failed_rewritten"]["rewritten"] == N + 20  # warm-up included
    assert out["understood"]["service_calls"] == 0
    Path(os.environ.get("SELFLEARN_BENCH_OUT", "ha-latency.json")).write_text(json.dumps(out, indent=2))
