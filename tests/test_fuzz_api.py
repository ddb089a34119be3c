"""The HTTP API fuzzed from its own OpenAPI schema (schemathesis): every operation, valid and
invalid requests, every check schemathesis has -- no 5xx, no crash, every answer as documented.

This is the seeded subset of ``bench/reliability.py fuzz`` (which runs 10,000+ cases against a
real ``selflearn serve``): the app in-process, a store, a rewriter and an admin token.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Ok

from selflearn.core.home import Home
from selflearn.rewrite.rewriter import Rewriter
from selflearn.rewrite.table import RewriteTable
from selflearn.service import ServiceConfig, create_app
from tests.conftest import HOME

TOKEN = "fuzz-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROOT = Path(__file__).resolve().parents[1]

_spec = importlib.util.spec_from_file_location("fuzz_hooks", ROOT / "bench" / "fuzz_hooks.py")
assert _spec is not None and _spec.loader is not None
fuzz_hooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz_hooks)

CONFIG = SchemathesisConfig.from_path(str(ROOT / "bench" / "schemathesis.toml"))


def _app(folder: Path) -> Any:
    """The service, started once: schemathesis' ASGI transport runs the app's lifespan around
    every call, which would close the store after the first one."""
    table = RewriteTable.from_rules([("kill the lights in the {area}", "turn off the lights in the {area}")])
    rewriter = Rewriter.from_parts(table=table).save(folder / "models" / "rewriter")
    config = ServiceConfig(
        rewriter=rewriter,
        store=folder / "data" / "fuzz.duckdb",
        admin_token=TOKEN,
        request_timeout_ms=2000,
        quarantine=folder / "data" / "quarantine.jsonl",
    )
    app = create_app(config)
    app.state.service.start()
    app.state.service.register_home("h1", Home.from_dict(HOME))  # the household the examples use

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await app(scope, receive, send)

    asgi.service = app.state.service  # type: ignore[attr-defined]
    return asgi


_WORK = Path(__import__("tempfile").mkdtemp(prefix="selflearn-fuzz-"))
APP = _app(_WORK)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG)


@pytest.fixture(scope="module", autouse=True)
def _stop_the_service() -> Iterator[None]:
    yield
    APP.service.close()


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case: schemathesis.Case[Any]) -> None:
    case.body = fuzz_hooks.consistent(case.operation.path, case.body)
    excluded = list(EXCLUDED.get(case.operation.label, []))
    if fuzz_hooks.misflagged(case):
        excluded.append(schemathesis.checks.negative_data_rejection)
    response = case.call_and_validate(headers=AUTH, excluded_checks=excluded)
    assert response.status_code < 500, response.text


EXCLUDED: dict[str, list[Any]] = {
    # A verdict is checked the way the rewriter would use it (an edited target must parse in the
    # home, must differ from the request...): a schema-valid verdict may be refused, with why.
    "POST /v1/reviews": [schemathesis.checks.positive_data_acceptance],
}


def test_the_fuzzer_exercises_every_operation() -> None:
    operations = {result.ok().label for result in schema.get_all_operations() if isinstance(result, Ok)}
    assert len(operations) >= 15, operations
    assert {
        "POST /v1/rewrite",
        "POST /v1/turns",
        "POST /v1/dialogue",
        "POST /v1/admin/snapshot",
    } <= operations


def test_homes_that_break_their_own_references_are_refused_naming_the_field(tmp_path: Path) -> None:
    """What the hook keeps out of the fuzzer's valid cases is refused, with the field, not a 5xx."""
    bad = {
        "home_id": "h1",
        "floors": [{"id": "up", "name": "Upstairs"}],
        "areas": [{"id": "kitchen", "name": "Kitchen", "floor": "attic"}],
        "entities": [
            {"id": "light.a", "name": "A", "area": "garage"},
            {"id": "light.a", "name": "B"},
        ],
    }
    with TestClient(create_app(ServiceConfig())) as c:
        res = c.put("/v1/homes/h1", json=bad)
        assert res.status_code == 422
        fields = {e["field"] for e in res.json()["errors"]}
        assert fields == {"areas.0.floor", "entities.0.area", "entities.1.id"}, res.json()
        inline = c.post("/v1/rewrite", json={"text": "x", "household_id": "h1", "home": bad})
        assert inline.status_code == 422 and "home.entities.0.area" in inline.json()["detail"]
        fixed = fuzz_hooks.consistent("/v1/homes/h1", bad)
        assert c.put("/v1/homes/h1", json=fixed).status_code == 200


# --- the review page's forms (HTML, not in the OpenAPI description) ----------------------------

FORM_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["kill the lights in the {area}", "turn off the lights in the {area}", "{device}", "x" * 5000]
    ),
)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    from selflearn.core.store import Store
    from selflearn.service.review import _form_token

    folder = tmp_path_factory.mktemp("forms")
    with Store(folder / "s.duckdb") as store:
        store.put_home("h1", HOME)
    config = ServiceConfig(store=folder / "s.duckdb", admin_token=TOKEN)
    with TestClient(create_app(config)) as c:
        c.post("/ui/login", data={"token": TOKEN}, follow_redirects=False)
        yield c, _form_token(config)


@settings(
    max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
@given(
    fields=st.dictionaries(
        st.sampled_from(["source", "target", "decision", "rule_id", "edited_target", "form_token", "junk"]),
        FORM_TEXT | st.sampled_from(["approve", "reject", "edit"]),
        max_size=7,
    ),
    signed=st.booleans(),
    raw=st.one_of(st.none(), st.binary(max_size=300)),
)
def test_the_review_forms_answer_any_post_without_a_5xx(
    page: tuple[TestClient, str], fields: dict[str, str], signed: bool, raw: bytes | None
) -> None:
    client, form_token = page
    if signed and "form_token" in fields:
        fields["form_token"] = form_token
    kind = {"content-type": "application/x-www-form-urlencoded"}
    for path in ("/ui/review", "/ui/login"):
        res = (
            client.post(path, content=raw, headers=kind, follow_redirects=False)
            if raw is not None
            else client.post(path, data=fields, follow_redirects=False)
        )
        assert res.status_code < 500, (path, fields, res.text[:300])
        if path == "/ui/review" and res.status_code == 303:  # saved: only with the page's own token
            assert fields.get("form_token") == form_token
