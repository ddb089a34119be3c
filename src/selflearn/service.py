"""The HTTP service: online rewriting, log ingest, health and metrics (``selflearn serve``).

>>> app = create_app(ServiceConfig(rewriter="models/rewriter", store="logs.duckdb"))  # doctest: +SKIP
>>> uvicorn.run(app, host="127.0.0.1", port=8080)                                     # doctest: +SKIP

Endpoints (see ``docs/service.md`` for examples, and ``/docs`` for the OpenAPI page):

===========================  ================================================================
``POST /v1/rewrite``         one request -> the rewriter's decision and the artefact version
``POST /v1/turns``           a JSON array of logged turns and feedback -> stored, then learned
``PUT /v1/homes/{id}``       register a household's home configuration (``GET`` reads it back)
``DELETE /v1/households/{id}``  forget a household (personal memory, home, its stored rows)
``POST /v1/admin/reload``    load a rewriter folder in the background and swap it in
``GET /healthz``             ``ok`` or ``degraded`` with the reasons
``GET /metrics``             Prometheus text
===========================  ================================================================

**Fail open.** On the rewrite path nothing becomes a 5xx: a rewriter that failed to load, an
exception, or a decision slower than ``request_timeout_ms`` returns the original text with
``rewritten: false``, ``fail_open: true`` and the reason. Only a malformed request gets a 4xx.

**Threads.** Decisions run on a small thread pool and wait at most ``request_timeout_ms``; one
lock serializes everything that touches the rewriter (decisions, learning from turns,
registering homes, forgetting), so the personal layer is never read while it changes. Learning
takes the lock once per record, so a large ingest batch interleaves with live requests. A reload
loads the new folder in a background thread without the lock, then swaps it in under the lock,
handing over the personal memories and registered homes: a request is decided entirely by the
old or entirely by the new rewriter, never fails, and nothing learned is lost. DuckDB allows one
writer, so store writes are serialized by a second lock.

All state lives in the object :func:`create_app` builds (``app.state.service``); the module holds
none.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import heapq
import hmac
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import Body, FastAPI, HTTPException, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from selflearn.core.errors import ConfigError, SelflearnError
from selflearn.core.home import Home
from selflearn.core.hooks import RewriteContext
from selflearn.core.schema import (
    LOG_RECORD,
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    DeviceContext,
    Feedback,
    RewriteTrace,
    Turn,
)
from selflearn.core.store import Quarantined, Store, error_field
from selflearn.rewrite.rewriter import RewriteDecision, Rewriter

log = logging.getLogger(__name__)

ID_PATTERN = r"^[A-Za-z0-9_.:\-]+$"
"""Household and user ids, as in the log schema."""

MAX_NBEST_ITEMS = 10
"""Alternative hypotheses a rewrite request may carry."""

Hypothesis = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]

HouseholdId = Annotated[
    str,
    PathParam(
        min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN, description="Pseudonymous household id."
    ),
]

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1.0)


@dataclass(frozen=True)
class ServiceConfig:
    """How the service runs. Paths may be given as strings."""

    rewriter: Path | None = None
    """Rewriter folder (``selflearn train rewriter``); None: pass every request through."""
    store: Path | None = None
    """DuckDB store that ``POST /v1/turns`` writes to; None: turns only feed the personal layer."""
    max_body_bytes: int = 4 * 1024 * 1024
    """Largest request body accepted (413 above)."""
    max_batch_rows: int = 10_000
    """Most records in one ``POST /v1/turns`` (413 above)."""
    request_timeout_ms: float = 50.0
    """A rewrite decision not ready after this long is answered with the original text."""
    decision_threads: int = 1
    """Threads that decide rewrites (one decides at a time). With 1 or more, the answer comes at
    the timeout even while a slow decision still runs, and the parts of a decision that release
    the interpreter lock (LightGBM, faiss, the tokenizer) overlap with the HTTP work of other
    requests. 0: decide on the event loop, which saves a thread hand-off per request (best for a
    table-only rewriter); a decision that ends after the timeout is then answered with the
    original text when it ends."""
    watch_s: float | None = None
    """Poll the rewriter folder every this many seconds and reload when ``rewriter.json``
    changes (None: reload only through ``POST /v1/admin/reload``)."""
    admin_token: str | None = None
    """When set, ``/v1/admin/*`` needs ``Authorization: Bearer <token>``."""
    quarantine: Path | None = None
    """Append rejected ``/v1/turns`` records to this JSON-lines file (they are always returned
    in the response)."""
    replay_days: float | None = None
    """At start, replay the store's last this many days of turns and feedback into the personal
    layer (rebuilds a replica's personal memories; None: start empty)."""
    home_cache: int = 1024
    """Inline home configurations kept parsed (requests repeating one reuse the parsed home)."""
    freeze_gc: bool = False
    """After each load, move every object then alive out of the cyclic garbage collector's reach
    (``gc.freeze``): a large index holds millions of Python objects, and a full collection over
    them stalls every request for a fraction of a second or more. Process-wide, so off by default
    and on in ``selflearn serve``, which owns its process."""

    def __post_init__(self) -> None:
        for name in ("rewriter", "store", "quarantine"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        checks = [
            (self.max_body_bytes >= 1024, f"max_body_bytes must be at least 1024, not {self.max_body_bytes}"),
            (self.max_batch_rows >= 1, f"max_batch_rows must be at least 1, not {self.max_batch_rows}"),
            (
                self.request_timeout_ms > 0,
                f"request_timeout_ms must be positive, not {self.request_timeout_ms}",
            ),
            (self.decision_threads >= 0, f"decision_threads must be 0 or more, not {self.decision_threads}"),
            (self.watch_s is None or self.watch_s > 0, f"watch_s must be positive, not {self.watch_s}"),
            (
                self.replay_days is None or self.replay_days > 0,
                f"replay_days must be positive, not {self.replay_days}",
            ),
            (self.home_cache >= 1, f"home_cache must be at least 1, not {self.home_cache}"),
            (
                self.admin_token is None or len(self.admin_token) >= 8,
                "admin_token must have at least 8 characters",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.watch_s is not None and self.rewriter is None:
            raise ConfigError("watch_s needs a rewriter folder to watch")


# --- request and response bodies -------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class RewriteRequest(_Body):
    """One request to rewrite, before it goes to the assistant's NLU."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "text": "kill the lights in the kitchen",
                    "household_id": "h1",
                    "user_id": "u1",
                    "area": "Kitchen",
                    "timestamp": "2026-01-05T08:00:00Z",
                }
            ]
        }
    )

    text: Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
    """What the user said (the ASR top hypothesis) or typed."""
    household_id: Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)]
    """Pseudonymous id of the home (selects its personal memory and registered home)."""
    user_id: Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)] = "unknown"
    """Pseudonymous id of the speaker."""
    area: Annotated[str, Field(max_length=200)] | None = None
    """Name of the area of the device that heard the request."""
    timestamp: AwareDatetime | None = None
    """When the request was spoken, with a timezone (default: now)."""
    device: DeviceContext | None = None
    """The device context, as in the log schema."""
    home: dict[str, Any] | None = None
    """The home's configuration for this request only (the shape of ``PUT /v1/homes``); default:
    the home registered for the household, if any."""
    failed: bool | None = None
    """Whether the assistant's NLU already failed on ``text`` (``true``: rewrite only if a
    candidate is clearly better; ``false``: it worked, nothing is rewritten); default: unknown
    (the rewriter is asked before the NLU)."""
    nbest: Annotated[list[Hypothesis], Field(max_length=MAX_NBEST_ITEMS)] = []
    """The recogniser's other hypotheses, best first (``text`` is the top one). With
    ``failed: true``, an alternative known to work may replace the top hypothesis."""


class CandidateOut(BaseModel):
    text: str
    score: float


class RewriteResponse(BaseModel):
    """The decision for one request."""

    text: str
    """What the NLU should get: the rewrite, or the original text."""
    original: str
    rewritten: bool
    layer: Literal["precomputed", "global", "personal"] | None
    score: float
    rule_id: str | None
    reasons: list[str]
    """Why, in words; on a fail-open the first reason says what went wrong."""
    candidates: list[CandidateOut]
    elapsed_us: int
    """Time the rewriter spent deciding (the HTTP round trip adds to it)."""
    version: str | None
    """Version of the rewriter artefact that decided (None: no rewriter loaded)."""
    fail_open: bool
    """True when the original text was returned because of an error, a timeout or a missing
    rewriter rather than by decision."""
    rewrite: RewriteTrace | None
    """Provenance to log in the turn's ``rewrite`` field (None when not rewritten)."""


class RejectedRow(BaseModel):
    index: int
    """Position of the record in the request's array (from 0)."""
    field: str
    reason: str


class TurnsResponse(BaseModel):
    """What ``POST /v1/turns`` did with a batch. With a store: ``read = stored + already_present
    + quarantined``; without one nothing is stored and ``read = accepted + quarantined``."""

    batch: str
    """Id of this batch (the ``source`` of its rows in the store)."""
    persisted: bool
    """Whether a store is configured (False: records were validated and learned, not stored)."""
    read: int
    stored: int
    already_present: int
    quarantined: int
    accepted: int
    """Valid records (stored or already present)."""
    balanced: bool
    by_table: dict[str, int]
    observed: int
    """Records fed to the personal layer (new ones only: a retried batch is not learned twice)."""
    rejected: list[RejectedRow]
    seconds: float


class HomeResponse(BaseModel):
    household_id: str
    areas: int
    entities: int
    fingerprint: str


class ForgetResponse(BaseModel):
    """What ``DELETE /v1/households/{id}`` deleted."""

    household_id: str
    personal_memory: bool
    """Whether this replica had learned anything about the household (now deleted)."""
    home: bool
    """Whether a registered home configuration was deleted."""
    store: dict[str, int] | None
    """Rows deleted per store table (None: no store configured)."""
    not_deleted: list[str]
    """What this call cannot delete, for the record."""


class ReloadRequest(_Body):
    folder: str | None = None
    """Rewriter folder to load (default: the configured one)."""
    wait: bool = True
    """Wait for the load to finish (False: answer 202 at once; watch ``/healthz``)."""


class ReloadResponse(BaseModel):
    status: Literal["loaded", "loading"]
    version: str | None
    previous: str | None
    folder: str
    seconds: float


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"]
    reasons: list[str]
    """Why the service is degraded (empty when ok)."""
    warnings: list[str]
    version: str | None
    rewriter: dict[str, Any]
    store: str | None
    households: int
    """Households the personal layer remembers."""
    homes: int
    """Registered home configurations."""
    uptime_s: float


# --- state -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    """The rewriter serving requests, and how it got there."""

    rewriter: Rewriter
    ok: bool
    """False: a placeholder that only learns; requests pass through."""
    version: str | None
    folder: Path | None
    error: str | None
    loaded_at: datetime
    load_seconds: float = 0.0
    parts: dict[str, bool] = field(default_factory=dict)


class ReloadBusy(Exception):
    """A reload is already running."""


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
        self.observed = Counter(
            "selflearn_observed_records", "Records fed to the personal layer.", registry=r
        )
        self.forgotten = Counter("selflearn_forgotten_households", "DELETE /v1/households calls.", registry=r)
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


class Service:
    """Everything one app holds: the serving artefact, the store, locks, executors, metrics."""

    def __init__(self, config: ServiceConfig, rewriter: Rewriter | None = None) -> None:
        self.config = config
        self.started = time.monotonic()
        self.metrics = _Metrics()
        self.lock = threading.Lock()
        """Guards the rewriter: decisions, learning, homes, forgetting, the swap."""
        self.store_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self.executor = (
            ThreadPoolExecutor(config.decision_threads, thread_name_prefix="selflearn-decide")
            if config.decision_threads > 0
            else None
        )
        self.reloader = ThreadPoolExecutor(1, thread_name_prefix="selflearn-reload")
        self.last_reload_error: str | None = None
        self._homes: OrderedDict[bytes, Home] = OrderedDict()
        self._watcher: threading.Thread | None = None
        self.store: Store | None = None
        self.store_error: str | None = None
        if config.store is not None:
            try:
                self.store = Store(config.store)
            except Exception as exc:  # the rewrite path must not depend on the store
                self.store_error = f"store {config.store} failed to open: {exc}"
                log.error("%s -- POST /v1/turns answers 503", self.store_error)
        if rewriter is not None:
            self.artifact = Artifact(rewriter, True, _version_of(rewriter, None), rewriter.path, None, _now())
            self.artifact = replace(self.artifact, parts=_parts(rewriter))
        elif config.rewriter is None:
            self.artifact = Artifact(Rewriter(), False, None, None, "no rewriter folder configured", _now())
        else:
            try:
                self.artifact = self._load(config.rewriter, None)
                self.metrics.reloads.labels("ok").inc()
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, SelflearnError) else str(exc)
                log.error("rewriter failed to load: %s -- passing requests through", message)
                self.metrics.reloads.labels("error").inc()
                self.artifact = Artifact(
                    Rewriter(), False, None, config.rewriter, f"rewriter failed to load: {message}", _now()
                )
        self._publish(self.artifact, None)
        self._freeze()
        if self.store is not None:
            self._load_homes()
            if config.replay_days is not None:
                self._replay(config.replay_days)
        self.metrics.households.set_function(lambda: len(self.artifact.rewriter.personal.memories))

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start timing garbage collections and the folder watcher (when configured)."""
        if self.metrics.on_gc not in gc.callbacks:
            gc.callbacks.append(self.metrics.on_gc)
        if self.config.watch_s is not None and self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="selflearn-watch", daemon=True)
            self._watcher.start()

    def close(self) -> None:
        """Stop the watcher and the executors, close the store."""
        self._stop.set()
        if self.metrics.on_gc in gc.callbacks:
            gc.callbacks.remove(self.metrics.on_gc)
        if self.config.freeze_gc:
            gc.unfreeze()  # let the interpreter finalize what was frozen
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        self.reloader.shutdown(wait=True, cancel_futures=True)
        if self.store is not None:
            with self.store_lock:
                self.store.close()
                self.store = None

    # --- loading ---------------------------------------------------------------------------------

    def _load(self, folder: Path, old: Rewriter | None) -> Artifact:
        """Load and warm up a rewriter folder (no lock held: the old one keeps serving)."""
        started = time.perf_counter()
        try:
            meta_bytes = (folder / "rewriter.json").read_bytes()
            meta = json.loads(meta_bytes)
        except (OSError, ValueError):
            meta_bytes, meta = b"", {}
        embedder = None
        if old is not None and old.embedder is not None and meta.get("embedder") == str(old.embedder.path):
            embedder = old.embedder  # same static model: share it instead of loading it again
        rewriter = Rewriter.load(folder, embedder=embedder)
        rewriter.rewrite_one("turn on the lights", RewriteContext(household_id="selflearn.warmup"))
        rewriter.stats.requests = 0
        version = _version_of(rewriter, meta_bytes)
        return Artifact(
            rewriter, True, version, folder, None, _now(), time.perf_counter() - started, _parts(rewriter)
        )

    def reload(self, folder: Path | None = None) -> tuple[Artifact, Artifact]:
        """Load ``folder`` (default: the configured one) and swap it in; returns (new, previous).
        Raises :class:`ReloadBusy` when a reload is running, or the load error (the previous
        rewriter keeps serving)."""
        target = folder or self.config.rewriter or self.artifact.folder
        if target is None:
            raise ConfigError("no rewriter folder configured: give one to reload")
        if not self._reload_lock.acquire(blocking=False):
            raise ReloadBusy("a reload is already running")
        try:
            try:
                fresh = self._load(target, self.artifact.rewriter)
            except Exception as exc:
                message = str(exc) if isinstance(exc, SelflearnError) else f"{type(exc).__name__}: {exc}"
                self.metrics.reloads.labels("error").inc()
                serving = self.artifact
                still = f"still serving {serving.version}" if serving.ok else "still passing requests through"
                self.last_reload_error = (
                    f"reload of {target} failed ({_now():%Y-%m-%dT%H:%M:%SZ}): {message}; {still}"
                )
                log.error("%s", self.last_reload_error)
                raise
            with self.lock:
                previous = self.artifact
                new = fresh.rewriter
                old = previous.rewriter
                # Hand over what was learned online. The embedding function becomes the new
                # rewriter's (a bound method of the old one would keep the old index alive),
                # and the new rewriter's own empty layer lets go of it, so no reference cycle is
                # left for the cyclic collector (which gc.freeze puts out of reach).
                own = new.personal
                old.personal.embed = own.embed
                own.embed = None
                new.personal = old.personal
                new.homes = old.homes
                self.artifact = fresh
                self.last_reload_error = None
            self.metrics.reloads.labels("ok").inc()
            self._publish(self.artifact, previous)
            self._freeze()
            log.info(
                "rewriter %s loaded from %s in %.2f s", self.artifact.version, target, fresh.load_seconds
            )
            return self.artifact, previous
        finally:
            self._reload_lock.release()

    def _freeze(self) -> None:
        if self.config.freeze_gc:
            gc.collect(1)  # young garbage only (cheap): what is frozen is never collected
            gc.freeze()

    def _publish(self, art: Artifact, previous: Artifact | None) -> None:
        m = self.metrics
        if previous is not None and previous.ok:
            m.info.remove(previous.version or "", str(previous.folder or ""))
        m.loaded.set(1 if art.ok else 0)
        if art.ok:
            m.info.labels(art.version or "", str(art.folder or "")).set(1)
            m.loaded_at.set(art.loaded_at.timestamp())

    def _watch(self) -> None:
        folder = self.config.rewriter
        assert folder is not None and self.config.watch_s is not None
        last = _signature(folder)
        while not self._stop.wait(self.config.watch_s):
            sig = _signature(folder)
            if sig is None or sig == last:
                continue
            last = sig
            try:
                self.reload(folder)
            except ReloadBusy:
                last = None  # try again on the next tick
            except Exception:  # logged and counted by reload(); keep serving
                pass

    def _load_homes(self) -> None:
        """Register the home configurations stored in the store's ``homes`` table."""
        assert self.store is not None
        loaded = 0
        for row in self.store.query("SELECT home_id, config FROM homes").to_pylist():
            try:
                home = Home.from_dict(json.loads(row["config"]))
            except (SelflearnError, ValueError, TypeError, KeyError) as exc:
                log.warning("stored home %s is unusable (%s); skipped", row["home_id"], exc)
                continue
            self.artifact.rewriter.homes[str(row["home_id"])] = home
            loaded += 1
        if loaded:
            log.info("registered %d home configurations from %s", loaded, self.config.store)

    def _replay(self, days: float) -> None:
        """Feed the store's recent turns and feedback, in time order, to the personal layer."""
        assert self.store is not None
        end = self.store.query("SELECT max(timestamp) AS ts FROM turns").column("ts")[0].as_py()
        if end is None:
            return
        since = end - timedelta(days=days)
        turns: Iterator[tuple[datetime, int, Turn | Feedback]] = (
            (t.timestamp, 0, t) for t in self.store.turns(f"timestamp >= TIMESTAMPTZ '{since.isoformat()}'")
        )
        rows = self.store.query(
            "SELECT feedback_id, turn_id, user_id, household_id, timestamp, question, answer, schema_version "
            "FROM feedback WHERE timestamp >= ? ORDER BY timestamp, feedback_id",
            [since],
        ).to_pylist()
        feedback = ((r["timestamp"], 1, Feedback.model_validate(r)) for r in rows)
        n = 0
        for _, _, record in heapq.merge(turns, feedback, key=lambda x: (x[0], x[1])):
            self._observe(record)
            n += 1
        log.info("replayed %d records since %s into the personal layer", n, since.isoformat())

    # --- serving ---------------------------------------------------------------------------------

    def parse_home(self, data: dict[str, Any]) -> Home:
        """A home configuration from JSON data (parsed homes are cached by content)."""
        key = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        home = self._homes.get(key)
        if home is None:
            home = Home.from_dict(data)
            self._homes[key] = home
            if len(self._homes) > self.config.home_cache:
                self._homes.popitem(last=False)
        else:
            self._homes.move_to_end(key)
        return home

    def decide(
        self, text: str, ctx: RewriteContext, deadline: float
    ) -> tuple[RewriteDecision, Artifact] | None:
        """Decide in a worker thread; None when the deadline passed before the rewriter was free."""
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not self.lock.acquire(timeout=remaining):
            return None
        try:
            art = self.artifact
            return art.rewriter.rewrite_one(text, ctx), art
        finally:
            self.lock.release()

    def _observe(self, record: Turn | Feedback) -> None:
        with self.lock:
            rewriter = self.artifact.rewriter
            if isinstance(record, Turn):
                rewriter.observe(record)
            else:
                rewriter.observe_feedback(record)

    def ingest(self, rows: list[Any]) -> TurnsResponse:
        """Validate, store (when a store is configured) and learn one batch of records."""
        started = time.perf_counter()
        batch = f"http:{uuid.uuid4().hex[:12]}"
        rejected: list[Quarantined]
        fresh: list[tuple[int, Turn | Feedback]] = []
        if self.config.store is not None:
            with self.store_lock:
                if self.store is None:
                    raise StoreClosed(
                        self.store_error or "the store is closed (the service is shutting down)"
                    )
                report = self.store.ingest_records(rows, source=batch, quarantine_path=self.config.quarantine)
            for i in report.stored_rows:
                fresh.append((i, LOG_RECORD.validate_python(rows[i])))
            rejected = report.rejected
            stored, present, by_table = report.stored, report.already_present, dict(report.by_table)
        else:
            fresh, rejected = _validate(rows, batch)
            stored, present, by_table = 0, 0, {}
            for _, record in fresh:
                table = "turns" if isinstance(record, Turn) else "feedback"
                by_table[table] = by_table.get(table, 0) + 1
            if rejected and self.config.quarantine is not None:
                with self.store_lock, self.config.quarantine.open("ab") as fh:
                    for q in rejected:
                        fh.write(orjson.dumps(q.__dict__) + b"\n")
        for _, record in fresh:
            self._observe(record)
        accepted = len(rows) - len(rejected)
        m = self.metrics.records
        m.labels("stored").inc(stored)
        m.labels("already_present").inc(present)
        m.labels("quarantined").inc(len(rejected))
        m.labels("accepted").inc(accepted)
        self.metrics.observed.inc(len(fresh))
        balanced = (
            len(rows) == stored + present + len(rejected)
            if self.config.store is not None
            else len(rows) == accepted + len(rejected)
        )
        return TurnsResponse(
            batch=batch,
            persisted=self.config.store is not None,
            read=len(rows),
            stored=stored,
            already_present=present,
            quarantined=len(rejected),
            accepted=accepted,
            balanced=balanced,
            by_table=by_table,
            observed=len(fresh),
            rejected=[RejectedRow(index=q.row, field=q.field, reason=q.reason) for q in rejected],
            seconds=round(time.perf_counter() - started, 6),
        )

    def register_home(self, household_id: str, home: Home) -> None:
        with self.lock:
            self.artifact.rewriter.homes[household_id] = home

    def forget(self, household_id: str) -> ForgetResponse:
        with self.lock:
            rewriter = self.artifact.rewriter
            had_home = household_id in rewriter.homes
            had_memory = rewriter.forget(household_id)
        store_rows = None
        if self.config.store is not None:
            with self.store_lock:
                if self.store is None:
                    raise StoreClosed(
                        self.store_error or "the store is closed (the service is shutting down)"
                    )
                store_rows = self.store.forget_household(household_id)
        self.metrics.forgotten.inc()
        not_deleted = [
            "other replicas: send this DELETE to every replica (personal memory is per process)",
            "rewrite tables and indexes: they hold patterns pooled over at least k users, no household names",
            "the ranker's models: numbers learned from every household's turns, no text or names; "
            "the next training run learns them without this household",
            "quarantine files and copies or exports of the store made earlier",
        ]
        return ForgetResponse(
            household_id=household_id,
            personal_memory=had_memory,
            home=had_home,
            store=store_rows,
            not_deleted=not_deleted,
        )

    def health(self) -> HealthResponse:
        art = self.artifact
        reasons = [] if art.ok else [f"{art.error} -- passing requests through"]
        if self.store_error is not None:
            reasons.append(f"{self.store_error} -- POST /v1/turns answers 503 and nothing is stored")
        warnings = [self.last_reload_error] if self.last_reload_error else []
        if self._reload_lock.locked():
            warnings.append("a reload is running")
        return HealthResponse(
            status="ok" if not reasons else "degraded",
            reasons=reasons,
            warnings=warnings,
            version=art.version,
            rewriter={
                "folder": str(art.folder) if art.folder else None,
                "loaded_at": art.loaded_at.isoformat(),
                "load_seconds": round(art.load_seconds, 3),
                **art.parts,
            },
            store=str(self.config.store) if self.config.store else None,
            households=len(art.rewriter.personal.memories),
            homes=len(art.rewriter.homes),
            uptime_s=round(time.monotonic() - self.started, 3),
        )


class StoreClosed(Exception):
    """The store was closed while a request wanted it."""


def _now() -> datetime:
    return datetime.now(UTC)


def _parts(rewriter: Rewriter) -> dict[str, bool]:
    return {
        "knowledge": rewriter.knowledge is not None,
        "ranker": rewriter.ranker is not None,
        "table": rewriter.table is not None,
        "embedder": rewriter.embedder is not None,
    }


def _version_of(rewriter: Rewriter, meta: bytes | None) -> str:
    """Content version of a rewriter artefact: a hash of its ``rewriter.json`` (which records
    its creation time) and of its table's version."""
    h = hashlib.blake2b(digest_size=6)
    h.update(meta or b"")
    if rewriter.table is not None:
        h.update(rewriter.table.version.encode())
    if not meta:
        h.update(str(id(rewriter)).encode())
    return "rwr-" + h.hexdigest()


def _signature(folder: Path) -> tuple[int, int, int, str] | None:
    """What changes when a new rewriter is written into (or symlinked to) ``folder``."""
    try:
        st = (folder / "rewriter.json").stat()
        return st.st_mtime_ns, st.st_size, st.st_ino, str(folder.resolve())
    except OSError:
        return None


def _validate(rows: list[Any], source: str) -> tuple[list[tuple[int, Turn | Feedback]], list[Quarantined]]:
    """Validate records without a store (same messages; duplicates within the batch rejected)."""
    good: list[tuple[int, Turn | Feedback]] = []
    bad: list[Quarantined] = []
    seen: dict[tuple[str, str], int] = {}
    for i, raw in enumerate(rows):
        snippet = json.dumps(raw, default=str)[:300]
        if not isinstance(raw, dict):
            bad.append(
                Quarantined(
                    source, i, "(record)", "expected a JSON object (a turn or feedback record)", snippet
                )
            )
            continue
        try:
            record = LOG_RECORD.validate_python(raw)
        except ValidationError as exc:
            name, reason = error_field(exc)
            bad.append(Quarantined(source, i, name, reason, snippet))
            continue
        key, ident = (
            ("turn_id", record.turn_id) if isinstance(record, Turn) else ("feedback_id", record.feedback_id)
        )
        first = seen.get((key, ident))
        if first is not None:
            bad.append(
                Quarantined(source, i, key, f"duplicate {key} {ident!r} (first at {source}:{first})", "")
            )
            continue
        seen[(key, ident)] = i
        good.append((i, record))
    return good, bad


# --- HTTP plumbing ---------------------------------------------------------------------------

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class _Plumbing:
    """Pure ASGI middleware: body size limit (413) and per-route HTTP metrics."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service
        self.limit = service.config.max_body_bytes

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = [500]
        limit = self.limit

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                code[0] = message["status"]
            await send(message)

        try:
            length = _content_length(scope)
            if length is not None and length > limit:
                detail = f"request body of {length:,} bytes is larger than the limit of {limit:,} bytes"
                response = JSONResponse({"detail": detail + "; send smaller batches"}, status_code=413)
                await response(scope, receive, send_wrapper)
                return
            received = 0

            async def limited() -> Any:
                # Bodies without a Content-Length (chunked) are counted as they arrive; the
                # exception reaches the app's handler for HTTP errors (FastAPI re-raises it).
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        detail = (
                            f"request body is larger than the limit of {limit:,} bytes; send smaller batches"
                        )
                        raise StarletteHTTPException(413, detail)
                return message

            await self.app(scope, limited, send_wrapper)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or "(unmatched)"
            m = self.service.metrics
            m.http.labels(name, str(code[0])).inc()
            m.http_latency.labels(name).observe(time.perf_counter() - started)


def _content_length(scope: MutableMapping[str, Any]) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "path", "query", "header"):
        kind, parts = parts[0], parts[1:]
        if not parts:
            return "(body)" if kind == "body" else f"({kind})"
    return ".".join(parts)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    for err in errors:
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            where = f" at position {err['loc'][1]}" if len(err.get("loc", ())) > 1 else ""
            reason = ctx.get("error", err.get("msg", "invalid JSON"))
            return JSONResponse(
                {"detail": f"request body is not valid JSON{where}: {reason}"}, status_code=400
            )
    out = []
    for err in errors:
        name = _field_name(err.get("loc", ()))
        message = str(err.get("msg", "invalid"))
        if name == "(body)" and err.get("type") == "missing":
            message = "request body is missing: send a JSON object with Content-Type: application/json"
        elif name == "(body)" and err.get("type") in ("model_attributes_type", "dict_type"):
            kind = request.headers.get("content-type", "none")
            message = f"expected a JSON object (Content-Type: application/json), got Content-Type {kind}"
        out.append({"field": name, "message": message, "type": err.get("type")})
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in out[:5])
    more = f" (and {len(out) - 5} more)" if len(out) > 5 else ""
    return JSONResponse({"detail": f"invalid request: {summary}{more}", "errors": out}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = getattr(exc, "headers", None)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


# --- the app ---------------------------------------------------------------------------------

TURNS_BODY = {
    "requestBody": {
        "required": True,
        "description": "A JSON array of log records (turns and feedback; see docs/log-format.md). "
        "Each record is validated on its own: bad ones are rejected with their index, field and "
        "reason, the others are stored.",
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": {"type": "object"}},
                "example": [
                    {
                        "record_type": "feedback",
                        "feedback_id": "f1",
                        "turn_id": "t1",
                        "user_id": "u1",
                        "household_id": "h1",
                        "timestamp": "2026-01-05T08:00:05Z",
                        "answer": "no",
                    }
                ],
            }
        },
    }
}


def create_app(config: ServiceConfig | None = None, *, rewriter: Rewriter | None = None) -> FastAPI:
    """The service as a FastAPI app. Loads the rewriter folder now (a missing or corrupt one
    leaves the service degraded: it passes requests through, see ``/healthz``); ``rewriter``
    serves an already built rewriter instead of the configured folder."""
    config = config or ServiceConfig()
    service = Service(config, rewriter)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="selflearn",
        summary="Rewrites assistant requests that are likely to fail, learns from logged turns.",
        description="See docs/service.md. Every rewrite answer is a 200: on any problem the original "
        "text comes back with `fail_open: true` and the reason.",
        version="1",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(_Plumbing, service=service)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    timeout_s = config.request_timeout_ms / 1000

    def passthrough(text: str, reason: str, kind: str, art: Artifact | None) -> Response:
        service.metrics.fail_open.labels(kind).inc()
        service.metrics.rewrites.labels("fail_open", "none").inc()
        data = {
            "text": text,
            "original": text,
            "rewritten": False,
            "layer": None,
            "score": 0.0,
            "rule_id": None,
            "reasons": [reason],
            "candidates": [],
            "elapsed_us": 0,
            "version": art.version if art is not None and art.ok else None,
            "fail_open": True,
            "rewrite": None,
        }
        return Response(orjson.dumps(data), media_type="application/json")

    @app.post(
        "/v1/rewrite",
        response_model=RewriteResponse,
        tags=["rewrite"],
        summary="Rewrite one request before the NLU",
        responses={422: {"description": "Invalid request (the message names the field)"}},
    )
    async def rewrite(body: RewriteRequest) -> Response:
        """The rewriter's decision for one request. Always 200 for a valid request: on any
        problem the original text comes back with ``fail_open: true`` and the reason."""
        started = time.perf_counter()
        try:
            home = service.parse_home(body.home) if body.home is not None else None
        except (SelflearnError, ValueError, TypeError, KeyError, AttributeError) as exc:
            message = str(exc) if isinstance(exc, SelflearnError) else f"{type(exc).__name__}: {exc}"
            raise RequestValidationError(
                [
                    {
                        "loc": ("body", "home"),
                        "msg": f"not a usable home configuration: {message}",
                        "type": "home",
                    }
                ]
            ) from exc
        text = body.text
        try:
            art = service.artifact
            if not art.ok:
                return passthrough(text, f"{art.error} -- passing requests through", "not_loaded", art)
            ctx = RewriteContext(
                household_id=body.household_id,
                user_id=body.user_id,
                home=home,
                area=body.area if body.area is not None else (body.device.area if body.device else None),
                timestamp=body.timestamp,
                device=body.device,
                failed=body.failed,
                nbest=tuple(body.nbest),
            )
            deadline = time.monotonic() + timeout_s
            if service.executor is None:
                result = service.decide(text, ctx, deadline)
                if result is not None and time.monotonic() > deadline:
                    result = None
            else:
                loop = asyncio.get_running_loop()
                future = loop.run_in_executor(service.executor, service.decide, text, ctx, deadline)
                try:
                    result = await asyncio.wait_for(asyncio.shield(future), timeout_s)
                except TimeoutError:
                    result = None
            if result is None:
                reason = f"timeout: no decision within {config.request_timeout_ms:g} ms"
                return passthrough(text, reason, "timeout", art)
            decision, art = result
            reasons = list(decision.reasons)
            if not decision.rewritten and reasons and reasons[0].startswith(("error:", "over budget:")):
                kind = "error" if reasons[0].startswith("error:") else "over_budget"
                service.metrics.fail_open.labels(kind).inc()
                outcome, failed = "fail_open", True
            else:
                outcome, failed = ("rewritten" if decision.rewritten else "unchanged"), False
            service.metrics.rewrites.labels(outcome, decision.layer or "none").inc()
            trace = decision.trace()
            data = decision.to_json()
            data["reasons"] = reasons
            data["version"] = art.version
            data["fail_open"] = failed
            data["rewrite"] = trace.model_dump() if trace is not None else None
            return Response(orjson.dumps(data), media_type="application/json")
        except Exception as exc:  # fail open, by design
            log.exception("rewrite failed; passing the request through")
            return passthrough(text, f"error: {type(exc).__name__}: {exc}", "internal", None)
        finally:
            service.metrics.rewrite_latency.observe(time.perf_counter() - started)

    @app.post(
        "/v1/turns",
        response_model=TurnsResponse,
        tags=["learn"],
        summary="Ingest logged turns and feedback",
        openapi_extra=TURNS_BODY,
        responses={
            400: {"description": "The body is not JSON"},
            413: {"description": "Body or batch too large"},
            422: {"description": "The body is not an array"},
            503: {"description": "The store is unavailable (nothing was stored; retry the batch)"},
        },
    )
    async def turns(request: Request) -> TurnsResponse:
        """Validate a batch of log records, store the new ones (accounting as ``selflearn
        ingest``: read = stored + already present + quarantined) and feed them to the personal
        layer in order. Bad records do not fail the batch: each is listed with its index, field
        and reason. Re-sending a batch is safe: records already stored are counted, not learned
        twice."""
        raw = await request.body()
        if not raw.strip():
            raise HTTPException(422, "request body is empty: send a JSON array of turn and feedback records")
        try:
            rows = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise HTTPException(400, f"request body is not valid JSON: {exc}") from exc
        if not isinstance(rows, list):
            kind = "an object" if isinstance(rows, dict) else type(rows).__name__
            raise HTTPException(
                422,
                f"expected a JSON array of turn and feedback records, got {kind} (wrap one record in [ ])",
            )
        if len(rows) > config.max_batch_rows:
            raise HTTPException(
                413,
                f"{len(rows):,} records in one request; the limit is {config.max_batch_rows:,}: split it",
            )
        try:
            return await run_in_threadpool(service.ingest, rows)
        except (SelflearnError, StoreClosed) as exc:
            raise HTTPException(
                503, f"store unavailable, nothing was stored (retry the batch): {exc}"
            ) from exc
        except Exception as exc:
            if type(exc).__module__.startswith("duckdb"):
                raise HTTPException(503, f"store error, nothing was stored (retry the batch): {exc}") from exc
            raise

    @app.put(
        "/v1/homes/{household_id}", response_model=HomeResponse, tags=["learn"], summary="Register a home"
    )
    async def put_home(household_id: HouseholdId, body: Annotated[dict[str, Any], Body()]) -> HomeResponse:
        """Register the household's home configuration (floors, areas, entities with names and
        aliases; the shape of ``Home.to_dict``). Requests and logged turns of the household are
        delexicalized with it. Kept in this replica's memory; replaces any earlier one."""
        try:
            home = Home.from_dict(body)
        except (SelflearnError, ValueError, TypeError, KeyError, AttributeError) as exc:
            message = str(exc) if isinstance(exc, SelflearnError) else f"{type(exc).__name__}: {exc}"
            raise RequestValidationError(
                [{"loc": ("body",), "msg": f"not a usable home configuration: {message}", "type": "home"}]
            ) from exc
        service.register_home(household_id, home)
        return HomeResponse(
            household_id=household_id,
            areas=len(home.areas),
            entities=len(home.entities),
            fingerprint=home.fingerprint,
        )

    @app.get("/v1/homes/{household_id}", tags=["learn"], summary="Read a registered home")
    async def get_home(household_id: HouseholdId) -> dict[str, Any]:
        """The home configuration registered for the household (404 when none)."""
        home = service.artifact.rewriter.homes.get(household_id)
        if home is None:
            raise HTTPException(404, f"no home registered for household {household_id!r}")
        return home.to_dict()

    @app.delete(
        "/v1/households/{household_id}",
        response_model=ForgetResponse,
        tags=["privacy"],
        summary="Forget a household",
    )
    async def forget(household_id: HouseholdId) -> ForgetResponse:
        """Delete what this replica learned about the household (personal memory, registered
        home) and, with a store, every stored row about it: its turns and feedback, its home
        configuration, and the derived rows (defects, rephrases, fpi, simulation truth) of its
        turns. The answer says what was deleted and what this call cannot reach."""
        try:
            return await run_in_threadpool(service.forget, household_id)
        except (SelflearnError, StoreClosed) as exc:
            raise HTTPException(
                503, f"store unavailable; the personal memory was deleted, retry for the store: {exc}"
            ) from exc

    def check_admin(request: Request) -> None:
        token = config.admin_token
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(
                401, "admin endpoints need 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"}
            )

    @app.post(
        "/v1/admin/reload",
        response_model=ReloadResponse,
        tags=["admin"],
        summary="Load a rewriter folder and swap it in",
        responses={
            202: {"description": "Loading started (wait=false)"},
            401: {"description": "Missing or wrong admin token"},
            409: {"description": "A reload is already running"},
            422: {"description": "The folder could not be loaded; the previous rewriter keeps serving"},
        },
    )
    async def reload(request: Request, body: Annotated[ReloadRequest | None, Body()] = None) -> Response:
        """Load the configured (or the given) rewriter folder in a background thread and swap it
        in atomically. Requests keep being served by the previous rewriter meanwhile; what the
        personal layer learned and the registered homes carry over."""
        check_admin(request)
        body = body or ReloadRequest()
        folder = Path(body.folder) if body.folder else None
        target = folder or config.rewriter or service.artifact.folder
        if target is None:
            raise HTTPException(422, 'no rewriter folder configured: give one as {"folder": ...}')
        if service._reload_lock.locked():
            raise HTTPException(409, "a reload is already running; try again when /healthz no longer says so")
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(service.reloader, service.reload, target)
        if not body.wait:
            future.add_done_callback(lambda f: f.exception())  # errors are logged and counted by reload()
            out = ReloadResponse(
                status="loading",
                version=None,
                previous=service.artifact.version,
                folder=str(target),
                seconds=0.0,
            )
            return Response(out.model_dump_json(), status_code=202, media_type="application/json")
        try:
            new, previous = await future
        except ReloadBusy as exc:
            raise HTTPException(409, str(exc)) from exc
        except Exception as exc:
            still = (
                f"still serving {service.artifact.version}"
                if service.artifact.ok
                else "still passing requests through"
            )
            message = str(exc) if isinstance(exc, SelflearnError) else f"{type(exc).__name__}: {exc}"
            raise HTTPException(422, f"could not load {target}: {message}; {still}") from exc
        out = ReloadResponse(
            status="loaded",
            version=new.version,
            previous=previous.version,
            folder=str(target),
            seconds=round(time.perf_counter() - started, 3),
        )
        return Response(out.model_dump_json(), media_type="application/json")

    @app.get("/healthz", response_model=HealthResponse, tags=["operations"], summary="Health")
    async def healthz(response: Response, strict: bool = False) -> HealthResponse:
        """``ok``, or ``degraded`` with the reasons (e.g. the rewriter failed to load and requests
        pass through). Always 200 (a degraded service still answers every request), unless
        ``strict=true``: then degraded is a 503, for readiness probes."""
        health = service.health()
        if strict and health.status != "ok":
            response.status_code = 503
        return health

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        """Counters and histograms in the Prometheus text format."""
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
