"""The FastAPI app: :func:`create_app` and its routes (one function per group of routes); the
HTTP plumbing (middleware, error handlers, the OpenAPI description) is in :mod:`.http`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Annotated, Any

import duckdb
import orjson
from fastapi import Body, Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from selflearn.core.artefacts import DESCRIPTION
from selflearn.core.errors import SelflearnError
from selflearn.core.home import Home
from selflearn.core.hooks import RewriteContext
from selflearn.core.schema import Concept
from selflearn.core.store import Store
from selflearn.dialogue.learned import Learned
from selflearn.rewrite.rewriter import RewriteDecision, Rewriter
from selflearn.service.access import StoreClosed, anonymous, bearer_ok, on_store, require_token
from selflearn.service.config import ServiceConfig
from selflearn.service.dialogue import dialogue_routes, sentences_routes
from selflearn.service.http import (
    Plumbing,
    http_error,
    openapi_of,
    passthrough,
    validation_error,
    watch_lag,
)
from selflearn.service.models import (
    ConceptForgetResponse,
    ConceptId,
    ConceptsResponse,
    ForgetResponse,
    HealthResponse,
    HomeConfig,
    HomeResponse,
    HouseholdId,
    HouseholdQuery,
    LearnedItem,
    ReloadRequest,
    ReloadResponse,
    RewriteRequest,
    RewriteResponse,
    SnapshotRequest,
    SnapshotResponse,
    TurnsResponse,
    UserForgetResponse,
    UserId,
    turns_body,
)
from selflearn.service.review import review_routes
from selflearn.service.state import Artifact, ReloadBusy, Service

log = logging.getLogger("selflearn.service")  # the package's logger, as before the split

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
        watcher = asyncio.create_task(watch_lag(service)) if config.shed_lag_ms is not None else None
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with suppress(asyncio.CancelledError):
                    await watcher
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
    app.add_middleware(Plumbing, service=service)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    _rewrite_routes(app, service)
    dialogue_routes(app, service)
    sentences_routes(app, service)
    _learn_routes(app, service)
    _privacy_routes(app, service)
    _concept_routes(app, service)
    review_routes(app, service)
    _admin_routes(app, service)
    _operations_routes(app, service)
    app.openapi = lambda: openapi_of(app)  # type: ignore[method-assign]
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
    async def rewrite(body: RewriteRequest, request: Request) -> Response:
        """The rewriter's decision for one request. Always 200 for a valid request: on any
        problem the original text comes back with ``fail_open: true`` and the reason. When the
        service has an admin token, a request without it is decided in the household's home
        but without what the household taught or said before (no personal layer)."""
        started = time.perf_counter()
        home = _request_home(service, body)
        if not bearer_ok(config, request):
            home = home if home is not None else service.artifact.rewriter.homes.get(body.household_id)
            body = body.model_copy(update={"household_id": anonymous(body.household_id)})
        text = body.text
        try:
            art = service.artifact
            if not art.ok:
                return passthrough(
                    service, text, f"{art.error} -- passing requests through", "not_loaded", art
                )
            result = await _decide(service, text, _context(body, home), timeout_s)
            if result is None:
                reason = f"timeout: no decision within {config.request_timeout_ms:g} ms"
                return passthrough(service, text, reason, "timeout", art)
            decision, art = result
            return _answer(service, decision, art)
        except Exception as exc:  # fail open, by design
            log.exception("rewrite failed; passing the request through")
            return passthrough(service, text, f"error: {type(exc).__name__}: {exc}", "internal", None)
        finally:
            service.metrics.rewrite_latency.observe(time.perf_counter() - started)


def _request_home(service: Service, body: RewriteRequest) -> Home | None:
    """The request's inline home configuration (None: none given); a 422 when it is unusable."""
    if body.home is None:
        return None
    _check_home(body.home, ("body", "home"))
    try:
        return service.parse_home(body.home)
    except (SelflearnError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise _unusable_home(exc, ("body", "home")) from exc


def _check_home(config: HomeConfig, loc: tuple[str, ...]) -> None:
    """422 naming the field when the home's floors, areas and entities do not refer to each
    other as they must (what a JSON schema cannot say)."""
    errors: list[dict[str, Any]] = []
    floors = {f.id for f in config.floors}
    areas = {a.id for a in config.areas}
    for i, area in enumerate(config.areas):
        if area.floor is not None and area.floor not in floors:
            msg = f"area {area.id!r} is on floor {area.floor!r}, which is not one of the home's floors"
            errors.append({"loc": (*loc, "areas", i, "floor"), "msg": msg, "type": "home"})
    seen: dict[str, int] = {}
    for i, entity in enumerate(config.entities):
        if entity.id in seen:
            msg = f"entity id {entity.id!r} is already used by entities.{seen[entity.id]}"
            errors.append({"loc": (*loc, "entities", i, "id"), "msg": msg, "type": "home"})
        seen.setdefault(entity.id, i)
        if entity.area is not None and entity.area not in areas:
            msg = f"entity {entity.id!r} is in area {entity.area!r}, which is not one of the home's areas"
            errors.append({"loc": (*loc, "entities", i, "area"), "msg": msg, "type": "home"})
    if errors:
        raise RequestValidationError(errors)


def _unusable_home(exc: Exception, loc: tuple[str, ...]) -> RequestValidationError:
    message = str(exc) if isinstance(exc, SelflearnError) else f"{type(exc).__name__}: {exc}"
    return RequestValidationError(
        [{"loc": loc, "msg": f"not a usable home configuration: {message}", "type": "home"}]
    )


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


# --- learning: turns and homes ---------------------------------------------------------------


def _learn_routes(app: FastAPI, service: Service) -> None:
    """``POST /v1/turns``, ``PUT`` and ``GET /v1/homes/{household_id}``."""
    config = service.config

    @app.post(
        "/v1/turns",
        response_model=TurnsResponse,
        tags=["learn"],
        summary="Ingest logged turns and feedback",
        openapi_extra=turns_body(config.max_batch_rows),
        dependencies=[Depends(require_token)],
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
        ahead_ms = service.ingests * service.ingest_ms
        if config.shed_lag_ms is not None and ahead_ms > config.shed_lag_ms:
            # The batches ahead of this one would hold the store that long: answer at once
            # rather than let batches queue (and hold their connections) without end.
            service.metrics.shed.labels("429").inc()
            detail = (
                f"overloaded: {service.ingests} batches ahead would take about {ahead_ms:.0f} ms; "
                "nothing was stored, retry after the Retry-After seconds"
            )
            raise HTTPException(429, detail, headers={"Retry-After": "1"})
        service.ingests += 1
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
        finally:
            service.ingests -= 1

    @app.put(
        "/v1/homes/{household_id}",
        response_model=HomeResponse,
        tags=["learn"],
        summary="Register a home",
        dependencies=[Depends(require_token)],
    )
    async def put_home(household_id: HouseholdId, body: Annotated[HomeConfig, Body()]) -> HomeResponse:
        """Register the household's home configuration (floors, areas, entities with names and
        aliases; the shape of ``Home.to_dict``). Requests and logged turns of the household are
        delexicalized with it. Kept in this replica's memory (and the store); replaces any
        earlier one."""
        _check_home(body, ("body",))
        try:
            home = Home.from_dict(body.model_dump())
        except (SelflearnError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise _unusable_home(exc, ("body",)) from exc
        await run_in_threadpool(service.register_home, household_id, home)
        return HomeResponse(
            household_id=household_id,
            areas=len(home.areas),
            entities=len(home.entities),
            fingerprint=home.fingerprint,
        )

    @app.get(
        "/v1/homes/{household_id}",
        tags=["learn"],
        summary="Read a registered home",
        dependencies=[Depends(require_token)],
        response_class=JSONResponse,
        responses={
            200: {"model": HomeConfig, "description": "The registered home"},
            404: {"description": "No home registered for the household"},
        },
    )
    async def get_home(household_id: HouseholdId) -> Response:
        """The home configuration registered for the household (404 when none). Its names are
        the household's: with an admin token, only the token reads them."""
        home = service.artifact.rewriter.homes.get(household_id)
        if home is None:
            raise HTTPException(404, f"no home registered for household {household_id!r}")
        return Response(orjson.dumps(home.to_dict()), media_type="application/json")


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
    """``DELETE /v1/households/{household_id}`` and ``.../users/{user_id}``."""
    unusable = {"description": "The store is unavailable (the memory was forgotten; retry for the store)"}

    @app.delete(
        "/v1/households/{household_id}",
        response_model=ForgetResponse,
        tags=["privacy"],
        summary="Forget a household",
        dependencies=[Depends(require_token)],
        responses={401: {"description": "Missing or wrong admin token"}, 503: unusable},
    )
    async def forget(household_id: HouseholdId) -> ForgetResponse:
        """Delete what this replica learned about the household (personal memory, registered
        home, what it taught, questions waiting) and, with a store, every stored row about it:
        its turns, feedback and dialogue acts, its home configuration, its concepts, the derived
        rows (defects, rephrases, fpi, labels, simulation truth) of its turns, and its lines in
        the quarantine files; the store file is then rewritten so that the deleted rows' bytes are
        gone too. The answer says what was deleted and what this call cannot reach. Needs the
        admin token when the service has one."""
        try:
            return await run_in_threadpool(service.forget, household_id)
        except (SelflearnError, StoreClosed) as exc:
            raise HTTPException(
                503, f"store unavailable; the personal memory was deleted, retry for the store: {exc}"
            ) from exc

    @app.delete(
        "/v1/households/{household_id}/users/{user_id}",
        response_model=UserForgetResponse,
        tags=["privacy"],
        summary="Forget one user of a household",
        dependencies=[Depends(require_token)],
        responses={401: {"description": "Missing or wrong admin token"}, 503: unusable},
    )
    async def forget_user(household_id: HouseholdId, user_id: UserId) -> UserForgetResponse:
        """Delete every stored row about one user of a household (turns, feedback, dialogue acts,
        concepts taught, their derived rows and quarantine lines; the store file rewritten) and
        rebuild the household's personal memory from what is left, so that nothing the user
        said is remembered. Without a store the household's whole memory is forgotten (nothing
        to rebuild it from)."""
        try:
            return await run_in_threadpool(service.forget_user, household_id, user_id)
        except (SelflearnError, StoreClosed) as exc:
            raise HTTPException(503, f"store unavailable, retry: {exc}") from exc


# --- taught concepts -------------------------------------------------------------------------


def _concept_routes(app: FastAPI, service: Service) -> None:
    """``GET /v1/concepts`` and ``DELETE /v1/concepts/{concept_id}`` (docs/concepts.md)."""
    no_store = {"description": "The service has no store"}
    unusable = {"description": "The store is unavailable"}

    @app.get(
        "/v1/concepts",
        response_model=ConceptsResponse,
        tags=["concepts"],
        summary="List what a household taught the assistant",
        responses={409: no_store, 503: unusable},
        dependencies=[Depends(require_token)],
    )
    async def list_concepts(household_id: HouseholdQuery) -> ConceptsResponse:
        """The household's taught concepts (names, phrasings, routines, preferences), oldest first."""
        concepts = await run_in_threadpool(on_store, service, lambda store: store.concepts(household_id))

        def learned() -> list[Learned]:
            with service.lock:
                return service.artifact.rewriter.learned(household_id)

        acting = [
            LearnedItem(kind=item.kind, said=item.said, means=list(item.means), how=item.how)
            for item in await run_in_threadpool(learned)
        ]
        return ConceptsResponse(household_id=household_id, concepts=concepts, learned=acting)

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
        dependencies=[Depends(require_token)],
    )
    async def forget_concept(concept_id: ConceptId) -> ConceptForgetResponse:
        """Delete one concept from the store (an assistant holding it in memory forgets it when
        it next loads its concepts from the store)."""

        def forget(store: Store) -> Concept | None:
            found = store.concepts(where="concept_id = $id", params={"id": concept_id})
            if not (found and store.forget_concept(concept_id)):
                return None
            service.talk.restore(store)  # the service's own dialogue forgets it now, not at restart
            return found[0]

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
        dependencies=[Depends(require_token)],
        responses={
            202: {"description": "Loading started (wait=false)"},
            401: {"description": "Missing or wrong admin token"},
            403: {"description": "The folder is outside the service's models folder"},
            404: {"description": "No saved rewriter in that folder"},
            409: {"description": "A reload is already running"},
            422: {"description": "The folder could not be loaded; the previous rewriter keeps serving"},
        },
    )
    async def reload(request: Request, body: Annotated[ReloadRequest | None, Body()] = None) -> Response:
        """Load the configured (or the given) rewriter folder in a background thread and swap it
        in atomically. Requests keep being served by the previous rewriter meanwhile; what the
        personal layer learned and the registered homes carry over. A given folder must be inside
        the service's models folder (``--models-dir``; default: the configured rewriter's
        parent)."""
        if body is None and (await request.body()).strip():  # JSON null: neither nothing nor an object
            raise RequestValidationError(
                [{"loc": ("body",), "msg": "send a JSON object, or no body at all", "type": "model_type"}]
            )
        body = body or ReloadRequest()
        target = (
            _confined(Path(body.folder), config.reload_root, "reload", "--models-dir")
            if body.folder
            else config.rewriter or service.artifact.folder
        )
        if target is None:
            raise HTTPException(422, 'no rewriter folder configured: give one as {"folder": ...}')
        if body.folder and not (target / DESCRIPTION).is_file():
            raise HTTPException(
                404,
                f"no saved rewriter in {body.folder} (no {DESCRIPTION}): "
                "make one with `selflearn train rewriter`",
            )
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
        dependencies=[Depends(require_token)],
        responses={
            401: {"description": "Missing or wrong admin token"},
            403: {"description": "The path is outside the service's snapshot folder"},
            409: {"description": "The service has no store, or the file exists"},
            422: {"description": "The file cannot be written"},
        },
    )
    async def snapshot(body: SnapshotRequest) -> SnapshotResponse:
        """Write a consistent copy of the store to ``path`` (a new file inside the service's
        snapshot folder, ``--snapshot-dir``, default the store's folder) while requests keep being
        served; batches of ``POST /v1/turns`` wait for the copy. Run ``selflearn signals``,
        ``mine`` and ``train rewriter`` on the copy, then ``POST /v1/admin/reload`` the new
        rewriter."""
        if service.store is None and config.store is None:
            raise HTTPException(409, "the service has no store to snapshot (start it with --store)")
        target = _confined(Path(body.path), config.snapshot_root, "snapshot", "--snapshot-dir")
        if target.exists() or any(parent.is_file() for parent in target.parents):
            raise HTTPException(
                409, f"{body.path} already exists (or a folder of it is a file): give a new name"
            )
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            rows = await loop.run_in_executor(None, service.snapshot, target)
        except (SelflearnError, OSError, duckdb.Error) as exc:
            raise HTTPException(422, f"could not snapshot to {body.path}: {exc}") from exc
        return SnapshotResponse(path=body.path, rows=rows, seconds=round(time.perf_counter() - started, 3))


def _confined(path: Path, root: Path | None, what: str, option: str) -> Path:
    """``path`` resolved (symbolic links followed), when it lies inside ``root``; else a 403. No
    request reaches the file system outside the folders the service was configured with."""
    if root is None:
        raise HTTPException(
            403, f"this service has no folder to {what} in: start it with {option} (or give its folder)"
        )
    resolved = path.resolve()
    inside = root.resolve()
    if resolved != inside and inside not in resolved.parents:
        raise HTTPException(403, f"{path} is outside the folder this service may {what} in ({option})")
    return resolved


# --- operations ------------------------------------------------------------------------------


def _operations_routes(app: FastAPI, service: Service) -> None:
    """``GET /healthz`` and ``GET /metrics``."""

    @app.get(
        "/healthz",
        response_model=HealthResponse,
        tags=["operations"],
        summary="Health",
        responses={503: {"model": HealthResponse, "description": "Degraded, with strict=true"}},
    )
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
