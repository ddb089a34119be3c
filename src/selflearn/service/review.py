"""Reviewing what selflearn learned: ``GET/POST /v1/reviews`` and the live page ``/ui``.

The page is the report of :mod:`selflearn.report` built on the running store, with a form on
every rule: approve, reject, or edit its target, and each failing pattern's best candidate fix
with one button, "Accept as rule" (an active mined rule is approved; anything else is recorded
as an edit of the pattern to the candidate). A verdict is stored (``reviews`` table) and applied
to the serving rewriter before the response, so it holds from the next request on
(:mod:`selflearn.rewrite.review`). An edited or accepted target is checked first as the rewriter
would use it (:func:`selflearn.rewrite.review.check_target`: placeholders fillable from the
pattern's, parses in Home Assistant's templates in a home of the store) and refused with the
reason when it is not (``POST /v1/reviews``: 422 naming ``edited_target``).

Access: like the other admin endpoints, open when the service has no admin token, else the token
is needed -- as ``Authorization: Bearer <token>`` for the JSON API; the page's sign-in form (or
``/ui?token=...`` once) sets an HTTP-only, same-site cookie, and every form carries a token
derived from the admin token, so another site cannot post a verdict.
"""

from __future__ import annotations

import hashlib
import hmac
import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import Body, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from selflearn.core.errors import ConfigError, SelflearnError
from selflearn.core.home import Home
from selflearn.core.schema import Review, ReviewDecision
from selflearn.core.store import Store
from selflearn.rewrite.review import TargetCheck, check_target, review_id
from selflearn.rewrite.table import rule_id as table_rule_id
from selflearn.service.access import StoreClosed, bearer_ok, on_store
from selflearn.service.config import ServiceConfig
from selflearn.service.models import ReviewRequest, ReviewsResponse
from selflearn.service.state import Service

COOKIE = "selflearn_admin"
DECISIONS: dict[str, ReviewDecision] = {
    "approve": "approved",
    "reject": "rejected",
    "edit": "edited",
    "accept": "edited",
}
"""Form button value -> stored verdict (``accept``: a candidate accepted as a rule -- approved
instead when it is an active rule of the serving table, :func:`_accepted`)."""

PAGE_REVIEWER = "admin"
"""Who the page records as the reviewer: whoever holds the admin token."""


def _derived(token: str, purpose: str) -> str:
    """A value derived from the admin token (the cookie, the form token): never the token itself."""
    return hmac.new(token.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def _signed_in(config: ServiceConfig, request: Request) -> bool:
    """The admin token as a bearer header (:func:`bearer_ok`), or the page's sign-in cookie."""
    if bearer_ok(config, request) or config.admin_token is None:
        return True
    cookie = request.cookies.get(COOKIE, "")
    return hmac.compare_digest(cookie.encode(), _derived(config.admin_token, "cookie").encode())


def _form_token(config: ServiceConfig) -> str:
    return _derived(config.admin_token, "form") if config.admin_token is not None else ""


def review_of(body: ReviewRequest, now: datetime | None = None) -> Review:
    """The stored verdict for a request (422 when an edit has no new target)."""
    if body.decision == "edited" and not (body.edited_target or "").strip():
        raise HTTPException(422, "an edit needs edited_target: the pattern to rewrite the source to")
    source, target = body.pattern.strip(), body.target.strip()
    edited = (body.edited_target or "").strip() or None
    return Review(
        review_id=review_id(source, target, body.rule_id),
        rule_id=body.rule_id,
        pattern=source,
        target=target,
        decision=body.decision,
        edited_target=edited if body.decision == "edited" else None,
        reviewer=body.reviewer,
        timestamp=now or datetime.now(UTC),
    )


def _check(service: Service, review: Review) -> TargetCheck | None:
    """An edit's target checked as the rewriter would use it, in the store's homes (None: not
    an edit)."""
    if review.decision != "edited" or review.edited_target is None:
        return None
    homes: dict[str, Home] = on_store(service, lambda store: store.homes(), "reviews")
    return check_target(review.pattern, review.edited_target, homes)


def _accepted(service: Service, source: str, target: str, rule_id: str | None) -> bool:
    """Whether an accepted candidate is an active rule of the serving table (approve it: the
    rewriter applies it already), rather than a target to edit the pattern to."""
    table = service.artifact.rewriter.table_ if service.artifact.ok else None
    if table is None or rule_id is None or rule_id != table_rule_id(source, target):
        return False
    return table.is_active(rule_id)


def _save(service: Service, review: Review) -> Review | None:
    if service.config.store is None:
        raise HTTPException(409, "the service has no store, so no reviews (start it with --store)")
    try:
        return service.review(review)
    except (SelflearnError, StoreClosed) as exc:
        raise HTTPException(503, f"store unavailable: {exc}") from exc


def review_routes(app: FastAPI, service: Service) -> None:
    """``GET /v1/reviews``, ``POST /v1/reviews`` and the page (``/ui``, ``/ui/review``, ``/ui/login``)."""
    config = service.config
    denied: dict[int | str, dict[str, Any]] = {401: {"description": "Missing or wrong admin token"}}

    def check(request: Request) -> None:
        if not _signed_in(config, request):
            raise HTTPException(
                401, "reviews need 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"}
            )

    @app.get("/v1/reviews", response_model=ReviewsResponse, tags=["review"], responses=denied)
    async def list_reviews(request: Request) -> ReviewsResponse:
        """The verdicts in force, oldest first."""
        check(request)
        reviews = await run_in_threadpool(on_store, service, lambda store: store.reviews(), "reviews")
        return ReviewsResponse(reviews=reviews)

    @app.post("/v1/reviews", response_model=Review, tags=["review"], responses=denied)
    async def post_review(request: Request, body: Annotated[ReviewRequest, Body()]) -> Review | Response:
        """Approve, reject or edit one learned rewrite; applied from the next request on. An
        edited target the rewriter could not use is refused (422 naming ``edited_target``)."""
        check(request)
        review = review_of(body)
        checked = await run_in_threadpool(_check, service, review)
        if checked is not None and not checked.ok:
            problem = {"field": "edited_target", "message": checked.reason, "type": "value_error"}
            detail = f"invalid request: edited_target: {checked.reason}"
            return JSONResponse({"detail": detail, "errors": [problem]}, status_code=422)
        await run_in_threadpool(_save, service, review)
        return review

    @app.get("/ui", response_class=HTMLResponse, include_in_schema=False)
    async def page(
        request: Request,
        token: str | None = None,
        saved: str | None = None,
        before: str | None = None,
        after: str | None = None,
    ) -> Response:
        if token is not None and config.admin_token is not None:
            if not hmac.compare_digest(token.encode(), config.admin_token.encode()):
                return HTMLResponse(_sign_in("That token is not the admin token."), status_code=401)
            return _signed_in_redirect(config)
        if not _signed_in(config, request):
            return HTMLResponse(_sign_in(None), status_code=401)
        body = await run_in_threadpool(_page, service, saved, before, after)
        return HTMLResponse(body)

    @app.get("/ui/export", include_in_schema=False)
    async def export(request: Request, household: str | None = None) -> Response:
        if not _signed_in(config, request):
            return HTMLResponse(_sign_in(None), status_code=401)
        if config.store is None:
            raise HTTPException(409, "the service has no store, so no reviews (start it with --store)")
        body = await run_in_threadpool(_export, service, household)
        disposition = 'attachment; filename="selflearn_reviewed.yaml"'
        return Response(body, media_type="text/yaml", headers={"Content-Disposition": disposition})

    @app.post("/ui/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = _form(await request.body())
        token = form.get("token", "")
        if config.admin_token is None or hmac.compare_digest(token.encode(), config.admin_token.encode()):
            return _signed_in_redirect(config)
        return HTMLResponse(_sign_in("That token is not the admin token."), status_code=401)

    @app.post("/ui/review", include_in_schema=False)
    async def review_form(request: Request) -> Response:
        if not _signed_in(config, request):
            return HTMLResponse(_sign_in("Sign in again to review."), status_code=401)
        form = _form(await request.body())
        if not hmac.compare_digest(form.get("form_token", "").encode(), _form_token(config).encode()):
            problem = "The form is stale or from another site: reload the review page and try again."
            return HTMLResponse(_not_saved(problem), status_code=403)
        button = form.get("decision", "")
        decision = DECISIONS.get(button)
        if decision is None:
            return HTMLResponse(
                _not_saved("Not saved: use the page's Approve, Reject, Edit or Accept buttons."), 422
            )
        source, target, rule = form.get("source", ""), form.get("target", ""), form.get("rule_id") or None
        edited = form.get("edited_target") or None
        if button == "accept":
            if _accepted(service, source.strip(), target.strip(), rule):
                decision, edited = "approved", None
            else:
                edited = target
        if decision == "edited" and not (edited or "").strip():
            what = f" ({source.strip()} \u2192 ?)" if source.strip() else ""
            problem = (
                f"Not saved{what}: an edit needs a new target. Type the pattern to rewrite "
                "the request to in the box of the row (e.g. turn off the lights in the {area}), then "
                "press edit."
            )
            return HTMLResponse(_not_saved(problem), status_code=422)
        try:
            body = ReviewRequest(
                pattern=source,
                target=target,
                decision=decision,
                rule_id=rule,
                edited_target=edited,
                reviewer=PAGE_REVIEWER,
            )
        except ValidationError as exc:
            return HTMLResponse(_not_saved(f"Not saved: {_form_problems(exc)}."), status_code=422)
        review = review_of(body)
        checked = await run_in_threadpool(_check, service, review)
        if checked is not None and not checked.ok:
            return HTMLResponse(_refused(review, checked), status_code=422)
        await run_in_threadpool(_save, service, review)
        return RedirectResponse(f"/ui?saved={quote(review.review_id)}", status_code=303)


def _export(service: Service, household: str | None) -> str:
    """The approved and edited rules as a Home Assistant custom sentences file, their targets
    parsed in ``household``'s home (default: the first registered one)."""
    import tempfile

    from selflearn.rewrite.review import export_reviewed

    reviews, homes = on_store(service, lambda store: (store.reviews(), store.homes()), "reviews")
    home = homes.get(household) if household else homes[min(homes)] if homes else None
    if home is None:
        raise HTTPException(
            409, "no registered home to parse the targets in: PUT /v1/homes/{household_id} one first"
        )
    with tempfile.TemporaryDirectory() as tmp:
        result, _ = export_reviewed(reviews, home, Path(tmp))
        path = result.files.get("sentences")
        return path.read_text(encoding="utf-8") if path is not None else "language: en\nintents: {}\n"


def _refused(review: Review, checked: TargetCheck) -> str:
    """The page answering a form whose target the rewriter could not use: nothing was saved."""
    what = f"{review.pattern} \u2192 {review.edited_target}"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>selflearn: not saved</title></head>"
        f'<body><h1>selflearn review</h1><p class="problem" id="refused">Not saved ({html.escape(what)}): '
        f"{html.escape(checked.reason)}.</p><p>The rewriter fills a target's placeholders "
        "(<code>{area}</code>, <code>{floor}</code>, <code>{name}</code>, <code>{number}</code>) with the "
        "request's own words and hands the sentence to the assistant, so Home Assistant's templates "
        "or its gazetteer matcher must understand it.</p>"
        '<p><a href="/ui">Back to the review page</a></p></body></html>'
    )


_FORM_FIELDS = {"pattern": "the request pattern", "target": "the target", "edited_target": "the new target"}


def _form_problems(exc: ValidationError) -> str:
    """A form's validation errors in words (no pydantic JSON, no links): ``the new target: at
    most 1000 characters``."""
    said = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "string_too_short":
            message = "it is empty"
        elif error["type"] == "string_too_long":
            message = f"it is longer than {error.get('ctx', {}).get('max_length', '')} characters"
        said.append(f"{_FORM_FIELDS.get(field, field or 'the form')}: {message}" if field else message)
    return "; ".join(said)


def _not_saved(problem: str) -> str:
    """The page answering a review form that could not be saved: the problem, in words."""
    said = html.escape(problem, quote=False)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>selflearn: not saved</title></head>"
        f'<body><h1>selflearn review</h1><p class="problem" id="refused">{said}</p>'
        '<p><a href="/ui">Back to the review page</a></p></body></html>'
    )


def _form(raw: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, one value per field."""
    parsed = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[-1] for key, values in parsed.items()}


def _signed_in_redirect(config: ServiceConfig) -> Response:
    response = RedirectResponse("/ui", status_code=303)
    if config.admin_token is not None:
        value = _derived(config.admin_token, "cookie")
        response.set_cookie(COOKIE, value, httponly=True, samesite="strict", path="/")
    return response


def _sign_in(problem: str | None) -> str:
    note = f'<p class="problem">{html.escape(problem)}</p>' if problem else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>selflearn: sign in</title></head>"
        "<body><h1>selflearn review</h1><p>This page needs the service's admin token "
        "(<code>selflearn serve --admin-token ...</code>).</p>"
        f'{note}<form method="post" action="/ui/login"><label>Admin token '
        '<input type="password" name="token" autofocus></label> <button type="submit">Sign in</button>'
        "</form></body></html>"
    )


def _page(service: Service, saved: str | None, before: str | None = None, after: str | None = None) -> str:
    """The report of the running store with review forms (built in a worker thread);
    ``before``/``after``: the date ranges to compare (``2026-01-01..2026-01-07``)."""
    from selflearn.report import ReportData, ReviewForms, collect, render_html

    config = service.config
    # The mined table from the serving rewriter's folder, and the serving rewriter itself, asked
    # what it would do with each top failing pattern under the service's lock, one decision at
    # a time (loading another copy would cost seconds and memory).
    art = service.artifact
    folder: Path | None = art.folder if art.ok else None
    table = folder / "table" if folder is not None and (folder / "table").exists() else None
    rewriter = art.rewriter if art.ok else None

    def read(store: Store) -> tuple[list[Review], ReportData]:
        reviews = store.reviews()
        verdicts = {r.review_id: r.decision for r in reviews}
        try:
            data = collect(
                store,
                table=table,
                rewriter=rewriter,
                rewriter_lock=service.lock,
                reviews=verdicts,
                before=before,
                after=after,
            )
        except ConfigError as exc:  # a bad date range
            raise HTTPException(422, str(exc)) from exc
        return reviews, data

    reviews, data = on_store(service, read, "report to show")
    hidden = {"form_token": _form_token(config)}
    forms = ReviewForms(action="/ui/review", hidden=hidden)
    page = render_html(data, title="selflearn: live review", review=forms)
    kept = sum(r.decision in ("approved", "edited") for r in reviews)
    if kept:
        link = (
            f'<p class="export" id="export"><a href="/ui/export">Export the {kept} approved or edited '
            "rule(s) as Home Assistant custom sentences</a> (a YAML file for "
            "<code>config/custom_sentences/en/</code>)</p>"
        )
        page = page.replace("<body>", "<body>" + link, 1)
    if saved:
        done = next((r for r in reviews if r.review_id == saved), None)
        if done is not None:
            accepted = done.decision == "edited" and done.edited_target == done.target
            what = f"{'accepted as a rule' if accepted else done.decision}: {done.pattern} \u2192 "
            what += done.edited_target or done.target
            saved_note = f"Saved ({html.escape(what)}); it holds from the next request."
            banner = f'<p class="saved" id="saved">{saved_note}</p>'
            page = page.replace("<body>", "<body>" + banner, 1)
    return page
