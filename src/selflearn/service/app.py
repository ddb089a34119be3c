"""The FastAPI app: :func:`create_app`, its routes (one function per group of routes) and the ASGI
plumbing (body size limit, HTTP metrics, error handlers)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import duckdb
import orjson
from fastapi import Body, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from selflearn.core.errors import SelflearnError
from selflearn.core.home import Home
from selflearn.core.hooks import RewriteContext
from selflearn.core.schema import Concept
from selflearn.core.store import Store
from selflearn.rewrite.rewriter import RewriteDecision, Rewriter
from selflearn.service.access import check_admin, on_store
from selflearn.service.config import ServiceConfig
from selflearn.service.dialogue import dialogue_routes
from selflearn.service.models import (
    TURNS_BODY,
    ConceptForgetResponse,
    ConceptId,
    ConceptsResponse,
    ForgetResponse,
    HealthResponse,
    HomeResponse,
    HouseholdId,
    HouseholdQuery,
    ReloadRequest,
    ReloadResponse,
    RewriteRequest,
    RewriteResponse,
    SnapshotRequest,
    SnapshotResponse,
    TurnsResponse,
)
from selflearn.service.review import review_routes
from selflearn.service.state import Artifact, ReloadBusy, Service, StoreClosed

log = logging.getLogger("selflearn.service")  # the package's logger, as before the split

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
    _rewrite_routes(app, service)
    dialogue_routes(app, service)
    _learn_routes(app, service)
    _privacy_routes(app, service)
    _concept_routes(app, service)
    review_routes(app, service)
    _admin_routes(app, service)
    _operations_routes(app, service)
    return app


# --- rewrite ---------------------------------------------------------------------------------


def _rewrite_routes(app: FastAPI, service: Service) -> None:
    """``POST /v1/rewrite``."""
    config = service.config
    timeout_s = config.request_timeout_ms / 1000

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
        home = _request_home(service, body)
        text = body.text
        try:
            art = service.artifact
            if not art.ok:
                return _passthrough(
                    service, text, f"{art.error} -- passing requests through", "not_loaded", art
                )
            result = await _decide(service, text, _context(body, home), timeout_s)
            if result is None:
                reason = f"timeout: no decision within {config.request_timeout_ms:g} ms"
                return _passthrough(service, text, reason, "timeout", art)
            decision, art = result
            return _answer(service, decision, art)
        except Exception as exc:  # fail open, by design
            log.exception("rewrite failed; passing the request through")
            return _passthrough(service, text, f"error: {type(exc).__name__}: {exc}", "internal", None)
        finally:
            service.metrics.rewrite_latency.observe(time.perf_counter() - started)


def _request_home(service: Service, body: RewriteRequest) -> Home | None:
    """The request's inline home configuration (None: none given); a 422 when it is unusable."""
    try:
        return service.parse_home(body.home) if body.home is not None else None
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


def _context(body: RewriteRequest, home: Home | None) -> RewriteContext:
    return RewriteContext(
        household_id=body.household_id,
        user_id=body.user_id,
        home=home,
        area=body.area if body.area is not None else (body.device.area if body.device else None),
        timestamp=body.timestamp,
        device=body.device,
        failed=body.failed,
        nbest=tuple(body.nbest),
    )


async def _decide(
    service: Service, text: str, ctx: RewriteContext, timeout_s: float
) -> tuple[RewriteDecision, Artifact] | None:
    """The decision and the artefact that made it; None when it was not ready within ``timeout_s``."""
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
    return result


def _answer(service: Service, decision: RewriteDecision, art: Artifact) -> Response:
    """The response for a decision, counted in the metrics."""
    reasons = list(decision.reasons)
    if decision.failed_open is not None:
        service.metrics.fail_open.labels(decision.failed_open).inc()
        outcome, failed = "fail_open", True
    elif decision.confirm:
        outcome, failed = "confirm", False
    else:
        outcome, failed = ("rewritten" if decision.rewritten else "unchanged"), False
    service.metrics.rewrites.labels(outcome, decision.layer or "none").inc()
    trace = decision.trace()
    data = decision.to_json()
    data["reasons"] = reasons
    data["version"] = art.version
    data["fail_open"] = failed
    data["rewrite"] = trace.model_dump() if trace is not None else None
    data["confirm"] = None
    if decision.confirm and trace is not None:
        # A question, not a rewrite: a client that cannot ask passes the original text on.
        data.update(text=decision.original, rewritten=False, rewrite=None)
        data["confirm"] = {
            "proposal": decision.text,
            "question": f"Did you mean {decision.text}?",
            "rewrite": trace.model_dump(),
        }
    return Response(orjson.dumps(data), media_type="application/json")


def _passthrough(service: Service, text: str, reason: str, kind: str, art: Artifact | None) -> Response:
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


# --- learning: turns and homes ---------------------------------------------------------------


def _learn_routes(app: FastAPI, service: Service) -> None:
    """``POST /v1/turns``, ``PUT`` and ``GET /v1/homes/{household_id}``."""
    config = service.config

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
        rows = _batch(await request.body(), config.max_batch_rows)
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


def _batch(raw: bytes, max_rows: int) -> list[Any]:
    """The records of a ``POST /v1/turns`` body (400, 413 or 422 when it is not a usable array)."""
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
    if len(rows) > max_rows:
        raise HTTPException(
            413,
            f"{len(rows):,} records in one request; the limit is {max_rows:,}: split it",
        )
    return rows


# --- privacy ---------------------------------------------------------------------------------


def _privacy_routes(app: FastAPI, service: Service) -> None:
    """``DELETE /v1/households/{household_id}``."""

    @app.delete(
        "/v1/households/{household_id}",
        response_model=ForgetResponse,
        tags=["privacy"],
        summary="Forget a household",
        responses={401: {"description": "Missing or wrong admin token"}},
    )
    async def forget(request: Request, household_id: HouseholdId) -> ForgetResponse:
        """Delete what this replica learned about the household (personal memory, registered
        home) and, with a store, every stored row about it: its turns and feedback, its home
        configuration, and the derived rows (defects, rephrases, fpi, simulation truth) of its
        turns. The answer says what was deleted and what this call cannot reach. Needs the
        admin token when the service has one."""
        check_admin(service.config, request)
        try:
            return await run_in_threadpool(service.forget, household_id)
        except (SelflearnError, StoreClosed) as exc:
            raise HTTPException(
                503, f"store unavailable; the personal memory was deleted, retry for the store: {exc}"
            ) from exc


# --- taught concepts -------------------------------------------------------------------------


def _concept_routes(app: FastAPI, service: Service) -> None:
    """``GET /v1/concepts`` and ``DELETE /v1/concepts/{concept_id}`` (docs/concepts.md)."""
    config = service.config
    no_store = {"description": "The service has no store"}
    unusable = {"description": "The store is unavailable"}

    @app.get(
        "/v1/concepts",
        response_model=ConceptsResponse,
        tags=["concepts"],
        summary="List what a household taught the assistant",
        responses={409: no_store, 503: unusable},
    )
    async def list_concepts(household_id: HouseholdQuery) -> ConceptsResponse:
        """The household's taught concepts (names, phrasings, routines, preferences), oldest first."""
        concepts = await run_in_threadpool(on_store, service, lambda store: store.concepts(household_id))
        return ConceptsResponse(household_id=household_id, concepts=concepts)

    @app.delete(
        "/v1/concepts/{concept_id}",
        response_model=ConceptForgetResponse,
        tags=["concepts"],
        summary="Forget one taught concept",
        responses={
            401: {"description": "Missing or wrong admin token"},
            404: {"description": "No concept with this id"},
            409: no_store,
            503: unusable,
        },
    )
    async def forget_concept(request: Request, concept_id: ConceptId) -> ConceptForgetResponse:
        """Delete one concept from the store (an assistant holding it in memory forgets it when
        it next loads its concepts from the store)."""
        check_admin(config, request)

        def forget(store: Store) -> Concept | None:
            found = store.concepts(where="concept_id = $id", params={"id": concept_id})
            return found[0] if found and store.forget_concept(concept_id) else None

        concept = await run_in_threadpool(on_store, service, forget)
        if concept is None:
            raise HTTPException(
                404, f"no concept with id {concept_id!r} (GET /v1/concepts?household_id=... lists them)"
            )
        return ConceptForgetResponse(
            concept_id=concept.concept_id,
            household_id=concept.household_id,
            kind=concept.kind,
            phrase=concept.phrase,
            forgotten=True,
        )


# --- admin -----------------------------------------------------------------------------------


def _admin_routes(app: FastAPI, service: Service) -> None:
    """``POST /v1/admin/reload`` and ``POST /v1/admin/snapshot``."""
    config = service.config

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
        check_admin(config, request)
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

    @app.post(
        "/v1/admin/snapshot",
        response_model=SnapshotResponse,
        tags=["admin"],
        summary="Copy the store, consistently, to a new file to learn from",
        responses={
            401: {"description": "Missing or wrong admin token"},
            409: {"description": "The service has no store"},
            422: {"description": "The file exists or cannot be written"},
        },
    )
    async def snapshot(request: Request, body: SnapshotRequest) -> SnapshotResponse:
        """Write a consistent copy of the store to ``path`` (a new file on the service's machine)
        while requests keep being served; batches of ``POST /v1/turns`` wait for the copy. Run
        ``selflearn signals``, ``mine`` and ``train rewriter`` on the copy, then
        ``POST /v1/admin/reload`` the new rewriter."""
        check_admin(config, request)
        if service.store is None:
            raise HTTPException(409, "the service has no store to snapshot (start it with --store)")
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            rows = await loop.run_in_executor(None, service.snapshot, Path(body.path))
        except (SelflearnError, OSError, duckdb.Error) as exc:
            raise HTTPException(422, f"could not snapshot to {body.path}: {exc}") from exc
        return SnapshotResponse(path=body.path, rows=rows, seconds=round(time.perf_counter() - started, 3))


# --- operations ------------------------------------------------------------------------------


def _operations_routes(app: FastAPI, service: Service) -> None:
    """``GET /healthz`` and ``GET /metrics``."""

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
