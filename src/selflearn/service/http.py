"""The service's HTTP plumbing: the ASGI middleware (per-client rate limit, load shedding, the
admin token of ``POST /v1/dialogue``, the body size limit, HTTP metrics), the error handlers (every
error is ``{"detail": ...}``), and the OpenAPI description as the service answers."""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import suppress
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from selflearn.core.schema import MAX_TEXT_CHARS
from selflearn.service.access import bearer_ok
from selflearn.service.models import ErrorOut, ValidationErrorOut
from selflearn.service.state import Artifact, Service

# --- HTTP plumbing ---------------------------------------------------------------------------

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class Plumbing:
    """Pure ASGI middleware, in this order: the per-client rate limit (429), the admin token of
    ``POST /v1/dialogue`` (401; the other routes check it themselves), load shedding (a rewrite
    fails open, the rest 429), the body size limit (413) and per-route HTTP metrics."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service
        self.limit = service.config.max_body_bytes
        config = service.config
        self.buckets = _Buckets(config.rate_limit, config.burst) if config.rate_limit else None

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
        service = self.service

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                code[0] = message["status"]
            await send(message)

        try:
            path = str(scope.get("path", ""))
            counted = path not in UNMETERED
            if self.buckets is not None and counted:
                client = scope.get("client")
                wait = self.buckets.take(client[0] if client else "?", time.monotonic())
                if wait > 0:
                    service.metrics.shed.labels("rate_limit").inc()
                    detail = (
                        f"too many requests from this client (limit {service.config.rate_limit:g}/s, "
                        f"bursts of {service.config.burst}): retry after the Retry-After seconds"
                    )
                    await _too_many(detail, wait)(scope, receive, send_wrapper)
                    return
            if path == "/v1/dialogue" and scope.get("method") == "POST":
                request = Request(scope)
                if not bearer_ok(service.config, request):
                    response = JSONResponse(
                        {"detail": UNAUTHORIZED}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
                    )
                    await response(scope, receive, send_wrapper)
                    return
            threshold = service.config.shed_lag_ms
            if threshold is not None and counted and service.lag_ms > threshold:
                await self._shed(scope, receive, send_wrapper, path)
                return
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
            m = service.metrics
            m.http.labels(name, str(code[0])).inc()
            m.http_latency.labels(name).observe(time.perf_counter() - started)

    async def _shed(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
        path: str,
    ) -> None:
        """Answer at once: a rewrite with its original text (fail open), anything else 429."""
        service = self.service
        lag = service.lag_ms
        if path == "/v1/rewrite" and scope.get("method") == "POST":
            body, more = b"", True
            while more and len(body) <= self.limit:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
            text = None
            with suppress(orjson.JSONDecodeError, TypeError, AttributeError):
                data = orjson.loads(body)
                text = data.get("text") if isinstance(data, dict) else None
            if isinstance(text, str) and len(text) <= MAX_TEXT_CHARS:
                service.metrics.shed.labels("fail_open").inc()
                reason = f"overloaded: the service is {lag:.0f} ms behind; passing the request through"
                response = passthrough(service, text, reason, "overloaded", service.artifact)
                await response(scope, receive, send)
                return
        service.metrics.shed.labels("429").inc()
        detail = f"overloaded: the service is {lag:.0f} ms behind; retry after the Retry-After seconds"
        await _too_many(detail, 1.0)(scope, receive, send)


UNMETERED = frozenset({"/healthz", "/metrics"})
"""Paths neither rate-limited nor shed (probes and scrapes)."""

UNAUTHORIZED = "this endpoint needs 'Authorization: Bearer <token>' (the service's admin token)"


def _too_many(detail: str, wait_s: float) -> JSONResponse:
    retry = str(max(1, math.ceil(wait_s)))
    return JSONResponse({"detail": detail}, status_code=429, headers={"Retry-After": retry})


class _Buckets:
    """Token buckets per client address: ``rate`` requests a second on average, ``burst`` at once
    (the least recently seen clients are dropped beyond ``size``). Used on the event loop only."""

    def __init__(self, rate: float, burst: int, size: int = 10_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.size = size
        self.state: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str, now: float) -> float:
        """0 when ``client`` may send now (and count it), else the seconds until it may."""
        tokens, last = self.state.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self.state[client] = (tokens - 1.0 if allowed else tokens, now)
        if len(self.state) > self.size:
            self.state.popitem(last=False)
        return 0.0 if allowed else (1.0 - tokens) / self.rate


async def watch_lag(service: Service, every_s: float = 0.01) -> None:
    """How far behind the event loop runs: sleep ``every_s``, see how much later it woke, smooth
    (``service.lag_ms``; what load shedding reads)."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(every_s)
        late = max(0.0, loop.time() - before - every_s) * 1000
        # rise at once, fall over ~10 samples: a stall is acted on, a recovery is confirmed
        service.lag_ms = late if late > service.lag_ms else 0.8 * service.lag_ms + 0.2 * late


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


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
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


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        # Starlette names the methods of the first route on the path only; the resource's are
        # those of every route on it.
        headers["Allow"] = _allowed_methods(request)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers or None)


def _allowed_methods(request: Request) -> str:
    path = request.scope.get("path", "")
    methods: set[str] = set()
    for route in request.app.router.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def passthrough(service: Service, text: str, reason: str, kind: str, art: Artifact | None) -> Response:
    service.metrics.fail_open.labels(kind).inc()
    service.metrics.rewrites.labels("fail_open", "none").inc()
    data = {
        "text": text,
        "original": text,
        "rewritten": False,
        "confirm": None,
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


# --- the OpenAPI description -----------------------------------------------------------------

PROTECTED = (
    ("/v1/turns", "post"),
    ("/v1/homes/{household_id}", "put"),
    ("/v1/homes/{household_id}", "get"),
    ("/v1/households/{household_id}", "delete"),
    ("/v1/households/{household_id}/users/{user_id}", "delete"),
    ("/v1/concepts", "get"),
    ("/v1/concepts/{concept_id}", "delete"),
    ("/v1/dialogue", "post"),
    ("/v1/reviews", "get"),
    ("/v1/reviews", "post"),
    ("/v1/admin/reload", "post"),
    ("/v1/admin/snapshot", "post"),
)
"""Operations that need the admin token when the service has one."""


def openapi_of(app: FastAPI) -> dict[str, Any]:
    """FastAPI's description with the error answers as the service gives them: every error is
    ``{"detail": ...}`` (:class:`ErrorOut`), a 422 also lists ``errors``
    (:class:`ValidationErrorOut`), and each operation lists the errors it can answer -- 400 and
    413 for a body, 401 where the admin token is needed, 429 (rate limit, load shedding)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorOut, ValidationErrorOut):
        found = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(found.pop("$defs", {}))
        components[model.__name__] = found
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)

    def error(description: str, model: str = "ErrorOut", **extra: Any) -> dict[str, Any]:
        content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}}
        return {"description": description, "content": content, **extra}

    reload_body = schema["paths"]["/v1/admin/reload"]["post"]["requestBody"]
    reload_body["required"] = False  # no body, or an object
    reload_body["content"]["application/json"]["schema"] = {"$ref": "#/components/schemas/ReloadRequest"}
    retry = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code, answer in responses.items():
                content = answer.get("content")
                generic = content is None or "HTTPValidationError" in orjson.dumps(content).decode()
                if code.startswith(("4", "5")) and generic:
                    name = "ValidationErrorOut" if code == "422" else "ErrorOut"
                    answer.update(error(answer.get("description") or "Error", name))
            if "requestBody" in operation:
                responses.setdefault("400", error("The body is not valid JSON"))
                responses.setdefault("413", error("The body is larger than the limit"))
                responses.setdefault(
                    "422",
                    error("The request is not valid (the message names the field)", "ValidationErrorOut"),
                )
            if (path, method) in PROTECTED:
                responses.setdefault("401", error("Missing or wrong admin token (when the service has one)"))
            if path not in UNMETERED:
                responses.setdefault(
                    "429",
                    error(
                        "Too many requests from this client, or the service is overloaded: retry later",
                        headers=retry,
                    ),
                )
    app.openapi_schema = schema
    return schema
