"""Security (issue 42): the admin token guards every endpoint that reads or changes a household's
data or runs the service, ``selflearn serve`` refuses to listen beyond loopback without one, each
client is rate-limited, overload is shed instead of queued, no request reaches the file system
outside the configured folders, the review page's forms resist cross-site posts, and the
dependency audit fails on a fixable vulnerability -- and on an audit that could not run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from selflearn.core.errors import ConfigError
from selflearn.rewrite.rewriter import Rewriter
from selflearn.rewrite.table import RewriteTable
from selflearn.service import ServiceConfig, create_app
from selflearn.service.config import check_exposure, is_loopback
from selflearn.service.http import PROTECTED
from tests.conftest import HOME, turn_dict

TOKEN = "security-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def folders(tmp_path: Path) -> dict[str, Path]:
    table = RewriteTable.from_rules([("kill the lights in the {area}", "turn off the lights in the {area}")])
    models = tmp_path / "models"
    rewriter = Rewriter.from_parts(table=table).save(models / "rewriter")
    Rewriter.from_parts(table=table).save(models / "rewriter-2")
    Rewriter.from_parts(table=table).save(tmp_path / "elsewhere" / "rewriter")
    (models / "escape").symlink_to(tmp_path / "elsewhere" / "rewriter")
    return {"root": tmp_path, "rewriter": rewriter, "store": tmp_path / "data" / "live.duckdb"}


@pytest.fixture()
def client(folders: dict[str, Path]) -> Iterator[TestClient]:
    config = ServiceConfig(
        rewriter=folders["rewriter"], store=folders["store"], admin_token=TOKEN, request_timeout_ms=5000
    )
    with TestClient(create_app(config)) as c:
        yield c


# --- the token ---------------------------------------------------------------------------------

BODIES: dict[tuple[str, str], Any] = {
    ("/v1/turns", "post"): [turn_dict("t1")],
    ("/v1/homes/{household_id}", "put"): HOME,
    ("/v1/dialogue", "post"): {"text": "hi", "household_id": "h1", "conversation_id": "c", "turn_id": "t9"},
    ("/v1/reviews", "post"): {"pattern": "a {area}", "target": "b {area}", "decision": "rejected"},
    ("/v1/admin/snapshot", "post"): {"path": "snap.duckdb"},
}


@pytest.mark.parametrize(("path", "method"), PROTECTED)
def test_every_private_endpoint_needs_the_token(client: TestClient, path: str, method: str) -> None:
    url = path.format(household_id="h1", user_id="u1", concept_id="c1")
    if path == "/v1/concepts":
        url += "?household_id=h1"
    body = BODIES.get((path, method))
    kwargs: dict[str, Any] = {"json": body} if body is not None else {}
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": TOKEN}):
        res = client.request(method.upper(), url, headers=headers, **kwargs)
        assert res.status_code == 401, (path, method, headers, res.text)
        assert res.headers.get("www-authenticate") == "Bearer" and "token" in res.json()["detail"]
    res = client.request(method.upper(), url, headers=AUTH, **kwargs)
    assert res.status_code != 401, (path, method, res.text)


def test_reading_a_home_needs_the_token_when_there_is_one(client: TestClient) -> None:
    """It answered anyone who reached the port with the home's names."""
    assert client.put("/v1/homes/h1", json=HOME, headers=AUTH).status_code == 200
    denied = client.get("/v1/homes/h1")
    assert denied.status_code == 401 and "Kitchen" not in denied.text
    assert client.get("/v1/homes/h1", headers=AUTH).json()["home_id"] == HOME["home_id"]
    # the request path stays open: a rewrite answers with the request's own words only
    open_ = client.post("/v1/rewrite", json={"text": "kill the lights in the kitchen", "household_id": "h1"})
    assert open_.status_code == 200


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.20", False), ("selflearn.local", False)],
)  # fmt: skip
def test_serving_beyond_loopback_needs_a_token(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    check_exposure(host, TOKEN)
    if loopback:
        check_exposure(host, None)
    else:
        with pytest.raises(ConfigError, match="refusing to listen"):
            check_exposure(host, None)


def test_the_command_refuses_to_start_open_on_every_interface() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SELFLEARN_ADMIN_TOKEN"}
    cmd = [sys.executable, "-m", "selflearn", "serve", "--host", "0.0.0.0", "--port", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2 and "refusing to listen on 0.0.0.0 without an admin token" in done.stderr
    placeholder = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, env={**env, "SELFLEARN_ADMIN_TOKEN": "change-me"}
    )
    assert placeholder.returncode == 2 and "placeholder" in placeholder.stderr


# --- rate limits and shedding -----------------------------------------------------------------


def test_each_client_is_limited_on_its_own(folders: dict[str, Path]) -> None:
    config = ServiceConfig(rewriter=folders["rewriter"], rate_limit=5, rate_burst=5)
    app = create_app(config)
    body = {"text": "turn on the lights", "household_id": "h1"}
    with (
        TestClient(app, client=("10.0.0.1", 1000)) as noisy,
        TestClient(app, client=("10.0.0.2", 1000)) as calm,
    ):
        codes = [noisy.post("/v1/rewrite", json=body).status_code for _ in range(12)]
        assert codes[:5] == [200] * 5 and codes.count(429) >= 6, codes
        limited = noisy.post("/v1/rewrite", json=body)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert "too many requests" in limited.json()["detail"]
        assert calm.post("/v1/rewrite", json=body).status_code == 200  # another client is not held back
        assert noisy.get("/healthz").status_code == 200  # probes are never limited
        metrics = noisy.get("/metrics").text
    assert 'selflearn_shed_requests_total{reason="rate_limit"}' in metrics


def test_an_overloaded_service_answers_at_once(
    folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def stalled(service: Any, every_s: float = 0.01) -> None:
        service.lag_ms = 500.0  # what the lag watcher measures while the loop is 0.5 s behind

    monkeypatch.setattr("selflearn.service.app.watch_lag", stalled)
    app = create_app(ServiceConfig(rewriter=folders["rewriter"], shed_lag_ms=50))
    with TestClient(app) as c:
        res = c.post("/v1/rewrite", json={"text": "kill the lights in the kitchen", "household_id": "h1"})
        out = res.json()
        assert res.status_code == 200 and out["fail_open"] and out["text"] == "kill the lights in the kitchen"
        assert out["reasons"][0].startswith("overloaded")
        turns = c.post("/v1/turns", json=[turn_dict("t1")])
        assert turns.status_code == 429 and turns.headers["retry-after"] == "1"
        assert c.get("/healthz").status_code == 200


def test_batches_that_would_queue_on_a_busy_store_are_refused_at_once(
    folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event loop keeps up while batches wait for the store in threads, so its lag never told
    a burst of ``POST /v1/turns`` apart: at 5x the load (``bench/reliability.py burst``) 1,565
    batches waited past the client's 5 s. A batch that would wait longer than ``shed_lag_ms``
    behind the ones in the service is answered 429 at once; when they are done, batches are taken."""
    app = create_app(ServiceConfig(rewriter=folders["rewriter"], store=folders["store"], shed_lag_ms=100))
    with TestClient(app) as c:
        service = app.state.service
        real = service.store.ingest_records

        def slow(*args: Any, **kwargs: Any) -> Any:
            time.sleep(0.3)  # a store that takes 0.3 s a batch
            return real(*args, **kwargs)

        monkeypatch.setattr(service.store, "ingest_records", slow)
        assert c.post("/v1/turns", json=[turn_dict("t0")]).status_code == 200

        def post(i: int) -> tuple[int, float, str]:
            started = time.perf_counter()
            res = c.post("/v1/turns", json=[turn_dict(f"t{i + 1}")])
            return res.status_code, time.perf_counter() - started, res.headers.get("retry-after", "")

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(post, range(6)))
        refused = [a for a in answers if a[0] == 429]
        assert refused and all(a[0] in (200, 429) for a in answers), answers
        assert all(took < 0.25 and retry == "1" for _, took, retry in refused), refused
        assert service.ingests == 0
        assert c.post("/v1/turns", json=[turn_dict("t9")]).status_code == 200  # taken again
        stored = 1 + sum(a[0] == 200 for a in answers) + 1
        assert service.store.count("turns") == stored


# --- the file system ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "code"),
    [("/etc", 403), ("..", 403), ("models/../elsewhere/rewriter", 403), ("models/escape", 403),
     ("models/nothing-here", 404), ("models", 404), ("models/rewriter-2", 200)],
)  # fmt: skip
def test_reload_loads_only_from_the_models_folder(
    client: TestClient, folders: dict[str, Path], folder: str, code: int
) -> None:
    target = folder if folder.startswith("/") else str(folders["root"] / folder)
    res = client.post("/v1/admin/reload", json={"folder": target}, headers=AUTH)
    assert res.status_code == code, res.text
    if code == 403:
        assert "outside the folder" in res.json()["detail"]


@pytest.mark.parametrize(
    ("path", "code"),
    [("/tmp/elsewhere.duckdb", 403), ("../out.duckdb", 403), ("data/../../x.duckdb", 403),
     ("data/live.duckdb", 409), ("data/snaps/ok.duckdb", 200)],
)  # fmt: skip
def test_snapshots_are_written_only_into_the_snapshot_folder(
    client: TestClient, folders: dict[str, Path], path: str, code: int
) -> None:
    target = path if path.startswith("/") else str(folders["root"] / path)
    res = client.post("/v1/admin/snapshot", json={"path": target}, headers=AUTH)
    assert res.status_code == code, res.text
    assert not Path("/tmp/elsewhere.duckdb").exists()
    bad = client.post("/v1/admin/snapshot", json={"path": "x'; ATTACH 'y"}, headers=AUTH)
    assert bad.status_code == 422  # only letters, digits, _ . / - reach a path


# --- the review page's forms ------------------------------------------------------------------


def test_the_review_forms_resist_cross_site_posts(folders: dict[str, Path]) -> None:
    from selflearn.core.store import Store
    from selflearn.service.review import COOKIE, _form_token

    with Store(folders["store"]) as store:
        store.put_home("h1", HOME)
    config = ServiceConfig(rewriter=folders["rewriter"], store=folders["store"], admin_token=TOKEN)
    form = {"source": "kill the lights in the {area}", "target": "turn off the lights in the {area}"}
    with TestClient(create_app(config)) as c:
        signed = c.post("/ui/login", data={"token": TOKEN}, follow_redirects=False)
        cookie = signed.headers["set-cookie"]
        assert (
            "HttpOnly" in cookie
            and "SameSite=strict" in cookie.replace("samesite", "SameSite")
            and TOKEN not in cookie
        )
        # another site's page posting with the browser's cookie but without the page's form token
        evil = {"Origin": "https://evil.example", "Referer": "https://evil.example/x"}
        for token in ("", "forged", _form_token(ServiceConfig(admin_token="another-token"))):
            res = c.post(
                "/ui/review",
                data={**form, "decision": "reject", "form_token": token},
                headers=evil,
                follow_redirects=False,
            )
            assert res.status_code == 403, res.text
        # without the cookie, even the right form token does nothing
        c.cookies.delete(COOKIE)
        res = c.post(
            "/ui/review",
            data={**form, "decision": "reject", "form_token": _form_token(config)},
            follow_redirects=False,
        )
        assert res.status_code == 401
        assert c.get("/v1/reviews", headers=AUTH).json()["reviews"] == []


# --- the dependency audit ------------------------------------------------------------------------


def _audit(tmp_path: Path, report: dict[str, Any], **env: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "audit.json"
    path.write_text(json.dumps(report))
    return subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "audit.py"), "--report", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


def test_the_audit_fails_on_a_fixable_vulnerability_and_on_an_audit_that_did_not_run(tmp_path: Path) -> None:
    ok = {"name": "orjson", "version": "3.11.0", "vulns": []}
    fixable = {
        "name": "starlette",
        "version": "0.1.0",
        "vulns": [{"id": "PYSEC-0", "fix_versions": ["0.2.0"]}],
    }
    open_ = {"name": "x", "version": "1", "vulns": [{"id": "GHSA-1", "fix_versions": []}]}
    skipped = {"name": "y", "skip_reason": "Dependency not found on PyPI and could not be audited: y (1)"}
    assert _audit(tmp_path, {"dependencies": [ok, open_] * 5}).returncode == 0
    failed = _audit(tmp_path, {"dependencies": [ok, fixable] * 5})
    assert failed.returncode == 1 and "starlette 0.1.0: PYSEC-0 fixed in 0.2.0" in failed.stdout
    blind = _audit(tmp_path, {"dependencies": [skipped] * 10})
    assert blind.returncode == 2 and "could not look at the packages" in blind.stdout
    offline = _audit(tmp_path, {"dependencies": [skipped] * 10}, SELFLEARN_AUDIT="offline")
    assert offline.returncode == 0 and "NOT AUDITED" in offline.stderr
