"""The HTTP service: online rewriting, log ingest, health and metrics (``selflearn serve``).

>>> app = create_app(ServiceConfig(rewriter="models/rewriter", store="logs.duckdb"))  # doctest: +SKIP
>>> uvicorn.run(app, host="127.0.0.1", port=8080)                                     # doctest: +SKIP

Endpoints (see ``docs/service.md`` for examples, and ``/docs`` for the OpenAPI page):

===========================  ================================================================
``POST /v1/rewrite``         one request -> the rewriter's decision and the artefact version
``POST /v1/turns``           a JSON array of logged turns and feedback -> stored, then learned
``PUT /v1/homes/{id}``       register a household's home configuration (``GET`` reads it back)
``DELETE /v1/households/{id}``  forget a household (personal memory, home, its stored rows)
``DELETE .../{id}/users/{u}``  forget one user of a household (its rows; the memory rebuilt)
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

from selflearn.service.access import StoreClosed
from selflearn.service.app import create_app
from selflearn.service.config import ID_PATTERN, LATENCY_BUCKETS, MAX_NBEST_ITEMS, ServiceConfig
from selflearn.service.http import ASGIApp
from selflearn.service.models import (
    TURNS_BODY,
    CandidateOut,
    ForgetResponse,
    HealthResponse,
    HomeResponse,
    HouseholdId,
    Hypothesis,
    RejectedRow,
    ReloadRequest,
    ReloadResponse,
    RewriteRequest,
    RewriteResponse,
    TurnsResponse,
)
from selflearn.service.state import Artifact, ReloadBusy, Service

__all__ = [
    "ID_PATTERN",
    "LATENCY_BUCKETS",
    "MAX_NBEST_ITEMS",
    "TURNS_BODY",
    "ASGIApp",
    "Artifact",
    "CandidateOut",
    "ForgetResponse",
    "HealthResponse",
    "HomeResponse",
    "HouseholdId",
    "Hypothesis",
    "RejectedRow",
    "ReloadBusy",
    "ReloadRequest",
    "ReloadResponse",
    "RewriteRequest",
    "RewriteResponse",
    "Service",
    "ServiceConfig",
    "StoreClosed",
    "TurnsResponse",
    "create_app",
]
