"""The service's Prometheus metrics (its own registry) and the garbage collector's pause timer."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
)

from selflearn.service.config import LATENCY_BUCKETS


class _Metrics:
    """Prometheus metrics in the app's own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.rewrites = Counter(
            "selflearn_rewrite_requests",
            "Rewrite requests answered, by outcome (rewritten, unchanged, fail_open) and layer.",
            ["outcome", "layer"],
            registry=r,
        )
        self.rewrite_latency = Histogram(
            "selflearn_rewrite_seconds",
            "Time from a valid rewrite request to its answer inside the service.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.fail_open = Counter(
            "selflearn_fail_open",
            "Requests passed through because of a problem, by reason.",
            ["reason"],
            registry=r,
        )
        self.http = Counter(
            "selflearn_http_responses",
            "HTTP responses by route and status code.",
            ["route", "code"],
            registry=r,
        )
        self.http_latency = Histogram(
            "selflearn_http_seconds",
            "HTTP request duration by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.reloads = Counter(
            "selflearn_reloads", "Rewriter reloads by result (ok, error).", ["result"], registry=r
        )
        self.loaded = Gauge(
            "selflearn_rewriter_loaded", "1 when a rewriter is loaded, 0 when passing through.", registry=r
        )
        self.info = Gauge(
            "selflearn_rewriter_info",
            "The loaded rewriter artefact (value 1).",
            ["version", "folder"],
            registry=r,
        )
        self.loaded_at = Gauge(
            "selflearn_rewriter_loaded_timestamp_seconds", "When the serving rewriter was loaded.", registry=r
        )
        self.records = Counter(
            "selflearn_ingested_records",
            "Records received on /v1/turns by result (stored, already_present, quarantined, accepted).",
            ["result"],
            registry=r,
        )
        self.dialogue = Counter(
            "selflearn_dialogue_requests",
            "Utterances answered on /v1/dialogue, by action (pass, run, say, ask, fail_open).",
            ["action"],
            registry=r,
        )
        self.observed = Counter(
            "selflearn_observed_records", "Records fed to the personal layer.", registry=r
        )
        self.forgotten = Counter("selflearn_forgotten_households", "DELETE /v1/households calls.", registry=r)
        self.shed = Counter(
            "selflearn_shed_requests",
            "Requests answered at once without the work: rate_limit (429 to one client), "
            "fail_open (a rewrite passed through while overloaded), 429 (others while overloaded).",
            ["reason"],
            registry=r,
        )
        self.households = Gauge(
            "selflearn_personal_households", "Households the personal layer remembers.", registry=r
        )
        self.gc_pause = Histogram(
            "selflearn_gc_pause_seconds",
            "Pauses of Python's cyclic garbage collector, by generation.",
            ["generation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        ProcessCollector(registry=r)
        GCCollector(registry=r)
        self._gc_started = 0.0

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        """``gc.callbacks`` hook: time each collection."""
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started:
            self.gc_pause.labels(str(info.get("generation"))).observe(time.perf_counter() - self._gc_started)
