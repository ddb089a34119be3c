"""The HTTP service: validation, fail-open, ingest accounting, forgetting, reload under load, metrics."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from selflearn.cli import app as cli_app
from selflearn.core.errors import ConfigError
from selflearn.core.hooks import RewriteContext
from selflearn.core.store import Store
from selflearn.rewrite.rewriter import RewriteDecision, Rewriter
from selflearn.rewrite.table import RewriteTable
from selflearn.service import ServiceConfig, create_app
from tests.conftest import HOME, turn_dict

KILL = "kill the lights in the kitchen"
JSON = {"content-type": "application/json"}


def _save_rewriter(folder: Path, verb: str) -> Path:
    """A table-only rewriter folder: "kill the lights in the {area}" -> "<verb> the lights in ..."."""
    table = RewriteTable.from_rules([("kill the lights in the {area}", f"{verb} the lights in the {{area}}")])
    return Rewriter.from_parts(table=table).save(folder)


@pytest.fixture()
def folder_a(tmp_path: Path) -> Path:
    return _save_rewriter(tmp_path / "a", "turn off")


@pytest.fixture()
def folder_b(tmp_path: Path) -> Path:
    return _save_rewriter(tmp_path / "b", "switch off")


@pytest.fixture()
def client(folder_a: Path, tmp_path: Path) -> Iterator[TestClient]:
    config = ServiceConfig(
        confirm="off", rewriter=folder_a, store=tmp_path / "s.duckdb", request_timeout_ms=5000
    )
    with TestClient(create_app(config)) as c:
        yield c


def _ask(client: TestClient, text: str = KILL, **extra: Any) -> dict[str, Any]:
    body = {"text": text, "household_id": "h1", "user_id": "u1", **extra}
    res = client.post("/v1/rewrite", json=body)
    assert res.status_code == 200, res.text
    out: dict[str, Any] = res.json()
    return out


# --- rewriting -------------------------------------------------------------------------------


def test_rewrite_with_inline_and_registered_home(client: TestClient) -> None:
    out = _ask(client, home=HOME, area="Kitchen", timestamp="2026-01-05T08:00:00Z")
    assert out["text"] == "turn off the lights in the kitchen"
    assert out["rewritten"] and out["layer"] == "precomputed" and not out["fail_open"]
    assert out["version"].startswith("rwr-")
    assert out["rewrite"]["rewritten_text"] == out["text"] and out["rewrite"]["original_text"] == KILL
    # without a home, "kitchen" is just a word: nothing to fill the pattern with
    assert not _ask(client, user_id="u2")["rewritten"]
    res = client.put("/v1/homes/h1", json=HOME)
    assert res.status_code == 200 and res.json()["entities"] == len(HOME["entities"])
    assert client.get("/v1/homes/h1").json()["home_id"] == HOME["home_id"]
    assert client.get("/v1/homes/nobody").status_code == 404
    assert _ask(client)["text"] == "turn off the lights in the kitchen"
    working = _ask(client, "turn on the kitchen lights")
    assert not working["rewritten"] and working["text"] == "turn on the kitchen lights"


@pytest.mark.parametrize(
    ("kwargs", "code", "words"),
    [
        ({"content": b'{"text": "x", ', "headers": JSON}, 400, ["not valid JSON"]),
        ({"json": {"text": "hi"}}, 422, ["household_id", "Field required"]),
        ({"json": {"text": 5, "household_id": "h1"}}, 422, ["text", "valid string"]),
        ({"json": {"text": "x" * 1001, "household_id": "h1"}}, 422, ["text", "at most 1000 characters"]),
        ({"json": {"text": "x", "household_id": "h 1"}}, 422, ["household_id", "pattern"]),
        ({"json": {"text": "x", "household_id": "h1", "timestamp": "2026-01-05T08:00"}}, 422, ["timezone"]),
        ({"json": {"text": "x", "household_id": "h1", "colour": "red"}}, 422, ["colour", "Extra inputs"]),
        ({"json": {"text": "x", "household_id": "h1", "nbest": ["a"] * 11}}, 422, ["nbest", "at most 10"]),
        ({"json": {"text": "x", "household_id": "h1", "nbest": [3]}}, 422, ["nbest", "valid string"]),
        ({"json": {"text": "x", "household_id": "h1", "failed": "maybe"}}, 422, ["failed", "boolean"]),
        (
            {"json": {"text": "x", "household_id": "h1", "home": {"areas": [{}]}}},
            422,
            ["home.areas.0.id", "required"],
        ),
        ({"data": {"text": "x"}}, 422, ["JSON object", "Content-Type"]),
        ({"content": b""}, 422, ["body is missing"]),
        ({"content": b"{" + b" " * 5000 + b"}", "headers": JSON}, 413, ["limit"]),
    ],
)
def test_malformed_rewrite_requests_get_4xx_with_a_helpful_message(
    folder_a: Path, kwargs: dict[str, Any], code: int, words: list[str]
) -> None:
    with TestClient(create_app(ServiceConfig(confirm="off", rewriter=folder_a, max_body_bytes=4096))) as c:
        res = c.post("/v1/rewrite", **kwargs)
        assert res.status_code == code, res.text
        detail = res.json()["detail"]
        assert all(w in detail for w in words), detail


def test_chunked_body_over_the_limit_is_413(folder_a: Path) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"["
        for _ in range(10):
            yield b" " * 1000

    with TestClient(create_app(ServiceConfig(confirm="off", rewriter=folder_a, max_body_bytes=4096))) as c:
        res = c.post("/v1/turns", content=chunks(), headers=JSON)
        assert res.status_code == 413 and "limit of 4,096 bytes" in res.json()["detail"]


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        (b"[1,", 400, ["not valid JSON"]),
        (b'{"turn_id": "t1"}', 422, ["JSON array", "got an object"]),
        (b"", 422, ["empty"]),
        (b"[" + b",".join([b"{}"] * 6) + b"]", 413, ["6 records", "limit is 5"]),
    ],
)
def test_malformed_turn_batches_get_4xx(folder_a: Path, body: bytes, code: int, words: list[str]) -> None:
    with TestClient(create_app(ServiceConfig(confirm="off", rewriter=folder_a, max_batch_rows=5))) as c:
        res = c.post("/v1/turns", content=body, headers=JSON)
        assert res.status_code == code, res.text
        assert all(w in res.json()["detail"] for w in words), res.json()


def test_bad_path_ids_and_unknown_routes(client: TestClient) -> None:
    res = client.delete("/v1/households/bad%20id")
    assert res.status_code == 422 and "household_id" in res.json()["detail"]
    assert client.put("/v1/homes/h1", json={"areas": "kitchen"}).status_code == 422
    assert client.get("/v1/nothing").status_code == 404


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="max_batch_rows"):
        ServiceConfig(confirm="off", max_batch_rows=0)
    with pytest.raises(ConfigError, match="watch_s needs a rewriter"):
        ServiceConfig(confirm="off", watch_s=1.0)
    assert ServiceConfig(confirm="off", rewriter="x", store="y.duckdb").store == Path("y.duckdb")  # type: ignore[arg-type]


# --- failing open ----------------------------------------------------------------------------


def _corrupt_json(folder: Path) -> None:
    folder.mkdir()
    (folder / "model.json").write_text("{not json")


def _corrupt_table(folder: Path) -> None:
    _save_rewriter(folder, "turn off")
    (folder / "table" / "rewrites.parquet").write_bytes(b"PAR1 garbage")


def _missing_index(folder: Path) -> None:
    _save_rewriter(folder, "turn off")
    meta = (folder / "model.json").read_text().replace('"knowledge": false', '"knowledge": true')
    (folder / "model.json").write_text(meta)


@pytest.mark.parametrize("damage", [None, _corrupt_json, _corrupt_table, _missing_index])
def test_missing_or_corrupt_rewriter_fails_open(tmp_path: Path, damage: Any) -> None:
    folder = tmp_path / "rw"
    if damage is not None:
        damage(folder)
    with TestClient(create_app(ServiceConfig(confirm="off", rewriter=folder))) as c:
        health = c.get("/healthz")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "degraded" and body["version"] is None
        reason = body["reasons"][0]
        assert "rewriter failed to load" in reason and "passing requests through" in reason
        assert c.get("/healthz", params={"strict": True}).status_code == 503
        out = _ask(c, home=HOME)
        assert out["text"] == KILL and not out["rewritten"] and out["fail_open"]
        assert "passing requests through" in out["reasons"][0]
        assert 'selflearn_fail_open_total{reason="not_loaded"} 1.0' in c.get("/metrics").text
        # the folder is fixed: a reload brings the service back
        if folder.exists():
            for p in sorted(folder.rglob("*"), reverse=True):
                p.unlink() if p.is_file() else p.rmdir()
        _save_rewriter(folder, "turn off")
        res = c.post("/v1/admin/reload")
        assert res.status_code == 200, res.text
        assert c.get("/healthz").json()["status"] == "ok"
        assert _ask(c, home=HOME)["rewritten"]


class _Slow(Rewriter):
    def rewrite_one(self, text: str, context: RewriteContext | None = None) -> RewriteDecision:
        time.sleep(0.3)
        return super().rewrite_one(text, context)


class _Broken(Rewriter):
    def _decide(self, text: str, ctx: RewriteContext) -> RewriteDecision:
        raise RuntimeError("index exploded")


def test_timeouts_and_errors_fail_open() -> None:
    # on the event loop, a late decision is answered with the original text when it ends
    with TestClient(
        create_app(ServiceConfig(confirm="off", request_timeout_ms=30, decision_threads=0), rewriter=_Slow())
    ) as c:
        out = _ask(c)
        assert out["fail_open"] and out["text"] == KILL and out["reasons"][0].startswith("timeout")
    # on a decision thread, the answer comes at the timeout while the decision still runs
    with TestClient(
        create_app(ServiceConfig(confirm="off", request_timeout_ms=30, decision_threads=1), rewriter=_Slow())
    ) as c:
        started = time.perf_counter()
        out = _ask(c)
        assert time.perf_counter() - started < 0.25
        assert out["fail_open"] and out["reasons"][0].startswith("timeout")
    with TestClient(create_app(ServiceConfig(confirm="off"), rewriter=_Broken())) as c:
        out = _ask(c)
        assert out["fail_open"] and "index exploded" in out["reasons"][0]
        metrics = c.get("/metrics").text
        assert 'selflearn_fail_open_total{reason="error"} 1.0' in metrics


# --- reloading -------------------------------------------------------------------------------


def test_swap_under_load_loses_no_request(folder_a: Path, folder_b: Path) -> None:
    expected = {"turn off the lights in the kitchen", "switch off the lights in the kitchen"}
    config = ServiceConfig(confirm="off", rewriter=folder_a, request_timeout_ms=10_000)
    results: list[tuple[int, dict[str, Any]]] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    with TestClient(create_app(config)) as c:
        c.put("/v1/homes/h1", json=HOME)
        version_a = _ask(c)["version"]

        def hammer() -> None:
            try:
                while not stop.is_set():
                    res = c.post("/v1/rewrite", json={"text": KILL, "household_id": "h1"})
                    results.append((res.status_code, res.json()))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        versions = set()
        for i in range(6):
            res = c.post("/v1/admin/reload", json={"folder": str(folder_b if i % 2 == 0 else folder_a)})
            assert res.status_code == 200, res.text
            versions.add(res.json()["version"])
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join()
        assert not errors
        assert len(results) > 50
        by_version: dict[str, set[str]] = {}
        for code, body in results:
            assert code == 200 and body["rewritten"] and not body["fail_open"], body
            assert body["text"] in expected
            by_version.setdefault(body["version"], set()).add(body["text"])
        assert len(by_version) == 2 and version_a in by_version  # both versions served
        assert all(len(texts) == 1 for texts in by_version.values())  # one rewriter per request
        # the registered home survived every swap
        assert c.get("/v1/homes/h1").status_code == 200
        assert 'selflearn_reloads_total{result="ok"} 7.0' in c.get("/metrics").text


def test_failed_reload_keeps_the_old_rewriter(client: TestClient, tmp_path: Path) -> None:
    before = _ask(client, home=HOME)
    _corrupt_table(tmp_path / "bad")
    res = client.post("/v1/admin/reload", json={"folder": str(tmp_path / "bad")})
    assert res.status_code == 422
    assert "could not load" in res.json()["detail"] and before["version"] in res.json()["detail"]
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and "failed" in health["warnings"][0]
    after = _ask(client, home=HOME)
    assert after["text"] == before["text"] and after["version"] == before["version"]


def test_watcher_reloads_a_rewritten_folder(folder_a: Path) -> None:
    with TestClient(create_app(ServiceConfig(confirm="off", rewriter=folder_a, watch_s=0.05))) as c:
        first = _ask(c, home=HOME)
        assert first["text"] == "turn off the lights in the kitchen"
        time.sleep(0.02)
        _save_rewriter(folder_a, "switch off")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            out = _ask(c, home=HOME)
            if out["version"] != first["version"]:
                break
            time.sleep(0.05)
        assert out["text"] == "switch off the lights in the kitchen"


def test_admin_token(folder_a: Path) -> None:
    with TestClient(
        create_app(ServiceConfig(confirm="off", rewriter=folder_a, admin_token="s3cret-token"))
    ) as c:
        assert c.post("/v1/admin/reload").status_code == 401
        res = c.post("/v1/admin/reload", headers={"authorization": "Bearer s3cret-token"})
        assert res.status_code == 200


# --- learning from turns, forgetting ---------------------------------------------------------


def _feedback(fid: str, turn_id: str, answer: str = "no") -> dict[str, Any]:
    return {
        "record_type": "feedback",
        "feedback_id": fid,
        "turn_id": turn_id,
        "user_id": "u1",
        "household_id": "h1",
        "timestamp": "2026-01-05T08:00:05+00:00",
        "answer": answer,
    }


def test_turns_accounting_with_a_store(client: TestClient, tmp_path: Path) -> None:
    batch = [
        turn_dict("t1"),
        turn_dict("t2", timestamp="2026-01-05T08:00:00"),  # no timezone
        "not a record",
        turn_dict("t1"),  # duplicate in the batch
        _feedback("f1", "t1"),
        {"record_type": "truth", "turn_id": "t1"},
        turn_dict("t3", text="x" * 1001),
    ]
    res = client.post("/v1/turns", json=batch)
    assert res.status_code == 200, res.text
    out = res.json()
    assert out["persisted"] and out["balanced"]
    assert (out["read"], out["stored"], out["already_present"], out["quarantined"]) == (7, 2, 0, 5)
    assert out["by_table"] == {"turns": 1, "feedback": 1} and out["observed"] == 2
    rejected = {r["index"]: (r["field"], r["reason"]) for r in out["rejected"]}
    assert rejected[1][0] == "timestamp" and "timezone" in rejected[1][1]
    assert rejected[2][0] == "(record)" and "got a string" in rejected[2][1]
    assert rejected[3][0] == "turn_id" and "duplicate" in rejected[3][1]
    assert rejected[5][0] == "record_type"
    assert rejected[6][0] == "text"
    # re-sending is idempotent: counted as already present, not learned twice
    again = client.post("/v1/turns", json=[turn_dict("t1"), _feedback("f1", "t1")]).json()
    assert (again["stored"], again["already_present"], again["observed"]) == (0, 2, 0)
    changed = client.post("/v1/turns", json=[turn_dict("t1", text="something else")]).json()
    assert changed["quarantined"] == 1 and "conflict" in changed["rejected"][0]["reason"]
    assert client.post("/v1/turns", json=[]).json()["read"] == 0
    metrics = client.get("/metrics").text
    assert 'selflearn_ingested_records_total{result="stored"} 2.0' in metrics


def test_turns_without_a_store(folder_a: Path) -> None:
    with TestClient(create_app(ServiceConfig(confirm="off", rewriter=folder_a))) as c:
        out = c.post("/v1/turns", json=[turn_dict("t1"), turn_dict("t1"), {"record_type": "turn"}]).json()
        assert not out["persisted"] and out["balanced"]
        assert (out["read"], out["accepted"], out["stored"], out["quarantined"]) == (3, 1, 0, 2)
        assert out["observed"] == 1 and c.get("/healthz").json()["households"] == 1


def _retry_pair(n: int) -> list[dict[str, Any]]:
    """A failing request fixed by a retry 10 s later (household h1, user u1)."""
    ts = f"2026-01-0{5 + n}T08:00:"
    failed = turn_dict(
        f"f{n}",
        session_id=f"s{n}",
        timestamp=ts + "00+00:00",
        text="lights out in the kitchen",
        asr=None,
        nlu={"matched": False},
        er=None,
        result={"status": "no_match", "response_text": "Sorry, I couldn't understand that"},
    )
    worked = turn_dict(
        f"w{n}",
        session_id=f"s{n}",
        timestamp=ts + "10+00:00",
        text="turn off the kitchen lights",
        asr=None,
        nlu={"matched": True, "intent": "HassTurnOff", "slots": {"area": "Kitchen", "domain": "light"}},
    )
    return [failed, worked]


def test_learned_personal_rewrite_and_forgetting(client: TestClient, tmp_path: Path) -> None:
    client.put("/v1/homes/h1", json=HOME)
    before = _ask(client, "lights out in the kitchen")
    assert not before["rewritten"]
    out = client.post("/v1/turns", json=_retry_pair(0) + _retry_pair(1)).json()
    assert out["stored"] == 4 and out["observed"] == 4
    after = _ask(client, "lights out in the kitchen")
    assert after["rewritten"] and after["layer"] == "personal", after
    assert after["text"] == "turn off the kitchen lights"
    assert _ask(client, "lights out in the kitchen", household_id="h2")["rewritten"] is False
    health = client.get("/healthz").json()
    assert health["households"] == 1 and health["homes"] == 1

    res = client.delete("/v1/households/h1")
    assert res.status_code == 200
    gone = res.json()
    assert gone["personal_memory"] and gone["home"]
    assert gone["store"]["turns"] == 4 and gone["store"]["feedback"] == 0
    assert any("replica" in note for note in gone["not_deleted"])
    assert any(note.startswith("the ranker") for note in gone["not_deleted"])
    assert not _ask(client, "lights out in the kitchen")["rewritten"]
    assert client.get("/v1/homes/h1").status_code == 404
    again = client.delete("/v1/households/h1").json()
    assert not again["personal_memory"] and again["store"]["turns"] == 0


def test_nbest_alternative_that_worked_in_the_household_replaces_a_failed_top(client: TestClient) -> None:
    client.put("/v1/homes/h1", json=HOME)
    assert client.post("/v1/turns", json=_retry_pair(0)).json()["observed"] == 2
    misheard = "tern of the kitchen lights"
    body = {"nbest": ["tern of the kitten lights", "turn off the kitchen lights"]}
    out = _ask(client, misheard, failed=True, **body)
    assert out["rewritten"] and out["layer"] == "personal", out
    assert out["text"] == "turn off the kitchen lights" and out["rule_id"].startswith("nbest:")
    assert any("hypothesis 3" in r and "worked in this household" in r for r in out["reasons"]), out
    # Only when the caller says the top hypothesis failed; and never when it says it worked.
    assert not _ask(client, misheard, **body)["rewritten"]
    told = _ask(client, misheard, failed=False, **body)
    assert not told["rewritten"] and "reports that the original worked" in told["reasons"][0]


def test_store_homes_and_replay_rebuild_a_replica(folder_a: Path, tmp_path: Path) -> None:
    store_path = tmp_path / "s.duckdb"
    home = tmp_path / "home.jsonl"
    home.write_text(json.dumps({"record_type": "home", **HOME, "home_id": "h1"}) + "\n")
    with Store(store_path) as store:
        store.ingest([home])
        store.ingest_records(_retry_pair(0) + _retry_pair(1))
    config = ServiceConfig(confirm="off", rewriter=folder_a, store=store_path, replay_days=30)
    with TestClient(create_app(config)) as c:
        assert c.get("/v1/homes/h1").status_code == 200
        out = _ask(c, "lights out in the kitchen")
        assert out["rewritten"] and out["layer"] == "personal"


def test_a_registered_home_is_stored_for_mining_and_a_restart(folder_a: Path, tmp_path: Path) -> None:
    store_path = tmp_path / "s.duckdb"
    config = ServiceConfig(confirm="off", rewriter=folder_a, store=store_path)
    with TestClient(create_app(config)) as c:
        assert c.put("/v1/homes/h7", json=HOME).status_code == 200
        assert c.put("/v1/homes/h7", json=HOME).status_code == 200  # the same again: one row
        renamed = {**HOME, "areas": [{**HOME["areas"][0], "aliases": ["cookhouse"]}, *HOME["areas"][1:]]}
        assert c.put("/v1/homes/h7", json=renamed).status_code == 200  # replaced, not added
    with Store(store_path, read_only=True) as store:
        rows = store.query("SELECT home_id, config FROM homes").to_pylist()
    assert [r["home_id"] for r in rows] == ["h7"]
    assert "cookhouse" in rows[0]["config"] and json.loads(rows[0]["config"])["home_id"] == "h7"
    with TestClient(create_app(config)) as c:  # registered again at start
        assert c.get("/v1/homes/h7").json()["areas"][0]["aliases"] == ["cookhouse"]


def test_snapshot_copies_the_live_store_for_learning(client: TestClient, tmp_path: Path) -> None:
    client.put("/v1/homes/h1", json=HOME)
    assert client.post("/v1/turns", json=_retry_pair(0)).json()["stored"] == 2
    res = client.post("/v1/admin/snapshot", json={"path": str(tmp_path / "snap.duckdb")})
    assert res.status_code == 200, res.text
    assert res.json()["rows"]["turns"] == 2 and res.json()["rows"]["homes"] == 1
    assert client.post("/v1/turns", json=_retry_pair(1)).json()["stored"] == 2  # still writing live
    with Store(tmp_path / "snap.duckdb", read_only=True) as snap:
        assert snap.count("turns") == 2  # the copy is as it was
    again = client.post("/v1/admin/snapshot", json={"path": str(tmp_path / "snap.duckdb")})
    assert again.status_code == 409 and "already exists" in again.json()["detail"]


def test_snapshot_needs_a_store(folder_a: Path, tmp_path: Path) -> None:
    with TestClient(create_app(ServiceConfig(confirm="off", rewriter=folder_a))) as c:
        res = c.post("/v1/admin/snapshot", json={"path": str(tmp_path / "x.duckdb")})
        assert res.status_code == 409 and "--store" in res.json()["detail"]


# --- operations ------------------------------------------------------------------------------


def test_metrics_and_docs(client: TestClient) -> None:
    _ask(client, home=HOME)
    _ask(client, "what time is it")
    client.post("/v1/rewrite", json={"text": 1})
    res = client.get("/metrics")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/plain")
    text = res.text
    for line in (
        'selflearn_rewrite_requests_total{layer="precomputed",outcome="rewritten"} 1.0',
        'selflearn_rewrite_requests_total{layer="none",outcome="unchanged"} 1.0',
        'selflearn_http_responses_total{code="422",route="/v1/rewrite"} 1.0',
        "selflearn_rewrite_seconds_count 2.0",
        "selflearn_rewriter_loaded 1.0",
        'selflearn_reloads_total{result="ok"} 1.0',
    ):
        assert line in text, line
    assert "selflearn_rewriter_info{folder=" in text
    assert "process_resident_memory_bytes" in text
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/rewrite", "/v1/turns", "/v1/homes/{household_id}", "/v1/households/{household_id}"):
        assert path in paths
    assert "healthz" in "".join(paths)


def test_serve_command_help() -> None:
    res = CliRunner().invoke(cli_app, ["serve", "--help"])
    assert res.exit_code == 0, res.output
    for option in ("--rewriter", "--store", "--host", "--port"):
        assert option in res.stdout


def test_what_was_learned_survives_a_reload(client: TestClient, folder_b: Path) -> None:
    client.put("/v1/homes/h1", json=HOME)
    client.post("/v1/turns", json=_retry_pair(0) + _retry_pair(1))
    assert _ask(client, "lights out in the kitchen")["layer"] == "personal"
    res = client.post("/v1/admin/reload", json={"folder": str(folder_b)})
    assert res.status_code == 200 and res.json()["version"] != res.json()["previous"]
    out = _ask(client, "lights out in the kitchen")
    assert out["layer"] == "personal" and out["version"] == res.json()["version"]
    assert _ask(client)["text"] == "switch off the lights in the kitchen"  # the new table, the old home
    assert client.get("/healthz").json()["households"] == 1


def test_unusable_store_leaves_rewriting_up(folder_a: Path, tmp_path: Path) -> None:
    bad = tmp_path / "not-a-store.duckdb"
    bad.write_bytes(b"this is not a DuckDB file" * 100)
    with TestClient(create_app(ServiceConfig(confirm="off", rewriter=folder_a, store=bad))) as c:
        health = c.get("/healthz").json()
        assert health["status"] == "degraded" and "failed to open" in health["reasons"][0]
        assert _ask(c, home=HOME)["rewritten"]
        res = c.post("/v1/turns", json=[turn_dict("t1")])
        assert res.status_code == 503 and "nothing was stored" in res.json()["detail"]
        assert c.delete("/v1/households/h1").status_code == 503


def test_the_store_is_reopened_every_so_many_batches_and_keeps_every_row(
    folder_a: Path, tmp_path: Path
) -> None:
    """DuckDB's memory grows with the queries one open database runs: the service opens its store
    again every ``store_reopen_batches`` batches (docs/reliability.md#load-soak-and-burst)."""
    config = ServiceConfig(
        confirm="off", rewriter=folder_a, store=tmp_path / "s.duckdb", store_reopen_batches=3
    )
    with TestClient(create_app(config)) as c:
        service = c.app.state.service  # type: ignore[attr-defined]
        first = service.store
        for n in range(7):
            assert c.post("/v1/turns", json=_retry_pair(n % 4)).status_code == 200
        assert service.store is not first and service.store_batches == 1
        assert c.post("/v1/turns", json=_retry_pair(4)).json()["stored"] == 2
    with Store(tmp_path / "s.duckdb", read_only=True) as store:
        assert store.count("turns") == 10
