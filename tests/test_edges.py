"""Issue 53, finding 7: edges that showed a traceback, leaked or stored nonsense -- each the
finding's own case, against the real service (FastAPI's test client), the real store (DuckDB) and
the real matchers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from selflearn.core.store import Store
from selflearn.service import ServiceConfig, create_app
from tests.conftest import HOME, turn_dict
from tests.test_service import _retry_pair, _save_rewriter

TOKEN = "edges-test-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture()
def guarded(tmp_path: Path) -> Iterator[TestClient]:
    """A service with an admin token and a store."""
    config = ServiceConfig(
        confirm="off",
        rewriter=_save_rewriter(tmp_path / "rw", "turn off"),
        store=tmp_path / "s.duckdb",
        admin_token=TOKEN,
        request_timeout_ms=5000,
    )
    with TestClient(create_app(config)) as c:
        yield c


# --- /v1/rewrite without the token does not tell what a household said ------------------------


def _rewrite(client: TestClient, headers: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
    res = client.post("/v1/rewrite", json={"household_id": "h1", "user_id": "u1", **body}, headers=headers)
    assert res.status_code == 200, res.text
    out: dict[str, Any] = res.json()
    return out


def test_a_rewrite_without_the_token_does_not_reveal_what_the_household_said(guarded: TestClient) -> None:
    """Issue 53 (7): anyone who knew a household id could ask ``/v1/rewrite`` with an n-best and
    read "has worked in this household (1x)": whether the household had said a phrase."""
    assert guarded.put("/v1/homes/h1", json=HOME, headers=ADMIN).status_code == 200
    assert guarded.post("/v1/turns", json=_retry_pair(0), headers=ADMIN).json()["observed"] == 2
    probe = {
        "text": "tern of the kitchen lights",
        "failed": True,
        "nbest": ["tern of the kitten lights", "turn off the kitchen lights"],
    }
    # The household's own assistant, with the token: the personal layer picks its hypothesis.
    own = _rewrite(guarded, ADMIN, **probe)
    assert own["rewritten"] and own["layer"] == "personal", own
    assert any("worked in this household" in r for r in own["reasons"]), own
    # Anyone else: decided as if the household had said nothing -- no rewrite, no evidence.
    for headers in (None, {"Authorization": "Bearer not-the-token"}):
        other = _rewrite(guarded, headers, **probe)
        said = json.dumps(other)
        assert not other["rewritten"] and other["layer"] != "personal", other
        assert "household" not in said and "1x" not in said, other
        # A phrase the household never said gets the very same answer: nothing tells them apart.
        never = _rewrite(
            guarded, headers, **{**probe, "nbest": ["tern of the kitten lights", "turn off the hall"]}
        )
        assert never["rewritten"] == other["rewritten"] and never["reasons"] == other["reasons"]
        # What everyone shares (the mined table, in the household's registered home) still applies.
        shared = _rewrite(guarded, headers, text="kill the lights in the kitchen", failed=True)
        assert shared["rewritten"] and shared["text"] == "turn off the lights in the kitchen", shared
    # A learned personal rewrite (no n-best) is not revealed either.
    assert guarded.post("/v1/turns", json=_retry_pair(1), headers=ADMIN).json()["observed"] == 2
    assert _rewrite(guarded, ADMIN, text="lights out in the kitchen")["layer"] == "personal"
    assert not _rewrite(guarded, None, text="lights out in the kitchen")["rewritten"]


# --- a numeric timestamp is refused, never stored as 1970 -------------------------------------


NUMERIC_TIMES: list[Any] = [12345, 1767600000, 1.7e9, "12345", " 1767600000.5 ", "-5"]


@pytest.mark.parametrize("when", NUMERIC_TIMES)
def test_a_numeric_timestamp_is_refused_naming_the_field(when: Any) -> None:
    from pydantic import ValidationError

    from selflearn.core.schema import LOG_RECORD

    with pytest.raises(ValidationError) as err:
        LOG_RECORD.validate_python(turn_dict(timestamp=when))
    assert err.value.errors()[0]["loc"][-1] == "timestamp"
    assert "not read as seconds since 1970" in str(err.value)
    with pytest.raises(ValidationError):
        LOG_RECORD.validate_json(json.dumps(turn_dict(timestamp=when)))
    assert LOG_RECORD.validate_python(turn_dict(timestamp="2026-01-05T08:00:00Z")).timestamp.year == 2026


def test_ingest_quarantines_a_numeric_timestamp_naming_row_and_field(tmp_path: Path) -> None:
    """Issue 53 (7): ``"timestamp": 12345`` was stored as 1970-01-01T03:25:45Z."""
    log = tmp_path / "log.jsonl"
    rows = [turn_dict("t1", timestamp=12345), turn_dict("t2"), turn_dict("t3", timestamp="1767600000")]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    quarantine = tmp_path / "q.jsonl"
    with Store(tmp_path / "s.duckdb") as store:
        report = store.ingest([log], quarantine_path=quarantine)
        assert (report.read, report.stored, report.quarantined) == (3, 1, 2)
        years = store.query("SELECT DISTINCT year(timestamp) AS y FROM turns").to_pylist()
        assert years == [{"y": 2026}]
    bad = {r["row"]: r for r in map(json.loads, quarantine.read_text().splitlines())}
    assert set(bad) == {1, 3}
    assert all(r["field"] == "timestamp" and "seconds since 1970" in r["reason"] for r in bad.values())
    assert "12345" in bad[1]["reason"] and "1767600000" in bad[3]["reason"]


def test_post_turns_refuses_a_numeric_timestamp_naming_record_and_field(guarded: TestClient) -> None:
    batch = [turn_dict("t1"), turn_dict("t2", timestamp=12345)]
    out = guarded.post("/v1/turns", json=batch, headers=ADMIN).json()
    assert (out["stored"], out["quarantined"]) == (1, 1), out
    (rejected,) = out["rejected"]
    assert rejected["index"] == 1 and rejected["field"] == "timestamp"
    assert "ISO 8601" in rejected["reason"] and "12345" in rejected["reason"]


# --- the review page's forms: a clear error, and the assistant's own matching ----------------


@pytest.fixture()
def review_page(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The live review page of a service with a store holding the test home, signed in; the
    hidden fields of its forms."""
    from selflearn.core.home import Home
    from selflearn.service.review import _form_token

    store = tmp_path / "live.duckdb"
    with Store(store) as s:
        s.put_home("h1", Home.from_dict({**HOME, "home_id": "h1"}).to_dict())
    config = ServiceConfig(
        confirm="off",
        rewriter=_save_rewriter(tmp_path / "rw", "turn off"),
        store=store,
        admin_token=TOKEN,
        request_timeout_ms=5000,
    )
    with TestClient(create_app(config)) as c:
        assert c.post("/ui/login", data={"token": TOKEN}, follow_redirects=False).status_code == 303
        yield c, {"form_token": _form_token(config)}


KILL_SOURCE, KILL_TARGET = "kill the lights in the {area}", "turn off the lights in the {area}"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"decision": "edit", "edited_target": ""}, "an edit needs a new target"),
        ({"decision": "edit", "edited_target": "   "}, "an edit needs a new target"),
        ({"decision": "edit"}, "an edit needs a new target"),
        (
            {"decision": "edit", "edited_target": "x" * 1001},
            "the new target: it is longer than 1000 characters",
        ),
        ({"decision": "reject", "source": ""}, "the request pattern: it is empty"),
        ({"decision": "explode"}, "use the page's Approve, Reject, Edit or Accept buttons"),
    ],
)
def test_a_bad_review_form_is_a_clear_page_not_pydantic_json(
    review_page: tuple[TestClient, dict[str, str]], fields: dict[str, str], words: str
) -> None:
    """Issue 53 (7): an empty edit on /ui answered raw pydantic JSON with a link to pydantic's site."""
    client, hidden = review_page
    form = {"source": KILL_SOURCE, "target": KILL_TARGET, **hidden, **fields}
    res = client.post("/ui/review", data=form, follow_redirects=False)
    assert res.status_code == 422, res.text
    assert res.headers["content-type"].startswith("text/html")
    assert words in res.text and "Not saved" in res.text
    assert 'href="/ui"' in res.text  # the way back
    for leak in ("pydantic", "errors.pydantic.dev", '"detail"', "Value error", "validation error", "{'"):
        assert leak not in res.text, leak
    assert client.get("/v1/reviews", headers=ADMIN).json()["reviews"] == []  # nothing saved


def test_a_stale_review_form_is_a_clear_page(review_page: tuple[TestClient, dict[str, str]]) -> None:
    client, _ = review_page
    form = {"source": KILL_SOURCE, "target": KILL_TARGET, "decision": "reject", "form_token": "old"}
    res = client.post("/ui/review", data=form, follow_redirects=False)
    assert res.status_code == 403 and res.headers["content-type"].startswith("text/html")
    assert "reload the review page" in res.text


def test_an_edit_the_gazetteer_understands_is_accepted_and_acts(
    review_page: tuple[TestClient, dict[str, str]],
) -> None:
    """Issue 53 (7): "set the {area} lights to {number} percent" -- which the assistant runs,
    through the gazetteer matcher after the strict templates -- was refused on /ui because only
    the strict templates were asked. Checked now with the assistant's own matching."""
    from selflearn.assistant.nlu import HomeAssistantNlu
    from selflearn.core.home import Home

    client, hidden = review_page
    source, edited = "dim the {area} lights to {number}", "set the {area} lights to {number} percent"
    form = {"source": source, "target": "set the {area} brightness to {number}", "decision": "edit"}
    res = client.post("/ui/review", data={**form, "edited_target": edited, **hidden}, follow_redirects=False)
    assert res.status_code == 303, res.text
    saved = client.get(res.headers["location"]).text
    assert f"edited: {source} \u2192 {edited}" in saved
    (verdict,) = client.get("/v1/reviews", headers=ADMIN).json()["reviews"]
    assert (verdict["decision"], verdict["edited_target"]) == ("edited", edited)
    # The very next failing request of the pattern is rewritten to it, and the assistant runs it.
    out = _rewrite(client, ADMIN, text="dim the kitchen lights to 20", failed=True)
    assert out["rewritten"] and out["text"] == "set the kitchen lights to 20 percent", out
    home = Home.from_dict({**HOME, "home_id": "h1"})
    ran = HomeAssistantNlu().recognize(out["text"], home, "kitchen", explain_failures=False).trace
    assert (ran.matched, ran.intent, ran.matcher) == (True, "HassLightSet", "gazetteer")
    # The API checks the same way; what neither matcher understands is still refused.
    api = {"pattern": source, "target": form["target"], "decision": "edited"}
    ok = client.post("/v1/reviews", json={**api, "edited_target": edited}, headers=ADMIN)
    assert ok.status_code == 200, ok.text
    bad = client.post(
        "/v1/reviews", json={**api, "edited_target": "frobnicate the {area} zorp {number}"}, headers=ADMIN
    )
    assert bad.status_code == 422 and "does not parse" in bad.json()["detail"]
