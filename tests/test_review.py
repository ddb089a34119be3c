"""People reviewing what selflearn learned: a verdict is stored, survives a restart, and changes
what the serving rewriter does from the very next request (rejected: never applied again;
edited: the person's target instead; approved: it acts unasked where it was asked about)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from selflearn.core.errors import ConfigError, DataError
from selflearn.core.home import Home
from selflearn.core.hooks import RewriteContext
from selflearn.core.schema import Review, ReviewDecision
from selflearn.core.store import Store
from selflearn.rewrite.review import Reviews, review_id
from selflearn.rewrite.rewriter import Rewriter
from selflearn.rewrite.table import RewriteTable
from selflearn.service import ServiceConfig, create_app

HOME = Home.from_dict(
    {
        "home_id": "h1",
        "areas": [{"id": "kitchen", "name": "Kitchen"}, {"id": "hall", "name": "Hall"}],
        "entities": [{"id": "light.kitchen", "name": "Kitchen light", "area": "kitchen"}],
    }
)
SOURCE, TARGET = "kill the lights in the {area}", "turn off the lights in the {area}"
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
TOKEN = "s3cret-admin"


def _rewriter() -> Rewriter:
    return Rewriter.from_parts(table=RewriteTable.from_rules([(SOURCE, TARGET)]))


def _verdict(decision: ReviewDecision, edited: str | None = None, rule: str | None = None) -> Review:
    return Review(
        review_id=review_id(SOURCE, TARGET, rule),
        rule_id=rule,
        pattern=SOURCE,
        target=TARGET,
        decision=decision,
        edited_target=edited,
        timestamp=T0,
    )


def _ask(rewriter: Rewriter, text: str = "kill the lights in the kitchen") -> tuple[str, bool, str | None]:
    d = rewriter.rewrite_one(text, RewriteContext("h1", home=HOME, failed=True))
    return d.text, d.rewritten, d.rule_id


def test_a_rejected_rule_is_never_applied_and_an_edit_replaces_its_target() -> None:
    rewriter = _rewriter()
    assert _ask(rewriter)[:2] == ("turn off the lights in the kitchen", True)
    table_rule = _ask(rewriter)[2]
    assert table_rule is not None
    # Rejected by its rule id (a mined rule), or by its two patterns (any layer): dropped.
    for verdict in (_verdict("rejected", rule=table_rule), _verdict("rejected")):
        rewriter.reviews_ = Reviews.of([verdict])
        text, rewritten, _ = _ask(rewriter)
        assert (text, rewritten) == ("kill the lights in the kitchen", False)
        reasons = rewriter.rewrite_one(
            "kill the lights in the hall", RewriteContext("h1", home=HOME, failed=True)
        )
        assert not reasons.rewritten and "rejected by a person" in reasons.reasons[-1]
    # Edited: the person's target, filled with this request's names.
    rewriter.reviews_ = Reviews.of([_verdict("edited", edited="turn off all the lights in the {area}")])
    text, rewritten, rule = _ask(rewriter, "kill the lights in the hall")
    assert (text, rewritten) == ("turn off all the lights in the hall", True)
    assert rule is not None and rule.startswith("review:")
    # An edit only acts on a request that failed (or that the rewriter thought needed fixing).
    fine = rewriter.rewrite_one("kill the lights in the hall", RewriteContext("h1", home=HOME, failed=False))
    assert not fine.rewritten
    # Approved: applied (and no guess any more, test_dialogue.py); a later verdict on the same
    # rule replaces the earlier one.
    rewriter.reviews_ = Reviews.of([_verdict("rejected"), _verdict("approved")])
    assert _ask(rewriter)[:2] == ("turn off the lights in the kitchen", True)
    assert rewriter.reviews_ and len(rewriter.reviews_.approved) == 1 and not rewriter.reviews_.rejected_pairs


def test_reviews_are_stored_replaced_and_read_back(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        assert store.reviews() == []
        assert store.put_review(_verdict("rejected")) is None
        replaced = store.put_review(_verdict("edited", edited="turn off all the lights in the {area}"))
        assert replaced is not None and replaced.decision == "rejected"
        (only,) = store.reviews()
        assert only.decision == "edited" and only.edited_target == "turn off all the lights in the {area}"


def _service(tmp_path: Path, token: str | None = TOKEN) -> tuple[ServiceConfig, Path]:
    folder = _rewriter().save(tmp_path / "rw")
    store = tmp_path / "live.duckdb"
    with Store(store) as s:
        s.put_home("h1", HOME.to_dict())
    config = ServiceConfig(
        confirm="off", rewriter=folder, store=store, admin_token=token, request_timeout_ms=5000
    )
    return config, store


def _rewrite(client: TestClient, text: str = "kill the lights in the kitchen") -> dict[str, Any]:
    res = client.post("/v1/rewrite", json={"text": text, "household_id": "h1", "failed": True})
    assert res.status_code == 200, res.text
    body: dict[str, Any] = res.json()
    return body


def test_the_review_api_changes_the_very_next_request_and_survives_a_restart(tmp_path: Path) -> None:
    config, _ = _service(tmp_path)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    verdict = {"pattern": SOURCE, "target": TARGET, "decision": "rejected"}
    with TestClient(create_app(config)) as client:
        assert _rewrite(client)["rewritten"]
        assert client.post("/v1/reviews", json=verdict).status_code == 401
        assert client.get("/v1/reviews").status_code == 401
        res = client.post("/v1/reviews", json=verdict, headers=auth)
        assert res.status_code == 200, res.text
        assert res.json()["decision"] == "rejected"
        after = _rewrite(client)
        assert (after["text"], after["rewritten"]) == ("kill the lights in the kitchen", False)
        bad = client.post("/v1/reviews", json={**verdict, "decision": "edited"}, headers=auth)
        assert bad.status_code == 422 and "edited_target" in bad.text
    # A new process on the same store applies the verdict from its first request.
    with TestClient(create_app(config)) as client:
        assert not _rewrite(client)["rewritten"]
        listed = client.get("/v1/reviews", headers=auth).json()["reviews"]
        assert [(r["pattern"], r["decision"]) for r in listed] == [(SOURCE, "rejected")]
        edit = {**verdict, "decision": "edited", "edited_target": "turn off all the lights in the {area}"}
        assert client.post("/v1/reviews", json=edit, headers=auth).status_code == 200
        assert (
            _rewrite(client, "kill the lights in the hall")["text"] == "turn off all the lights in the hall"
        )


def test_forgetting_a_household_needs_the_admin_token_when_there_is_one(tmp_path: Path) -> None:
    config, _ = _service(tmp_path)
    with TestClient(create_app(config)) as client:
        assert client.delete("/v1/households/h1").status_code == 401
        ok = client.delete("/v1/households/h1", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200, ok.text


def test_the_review_form_needs_sign_in_and_its_form_token(tmp_path: Path) -> None:
    config, _ = _service(tmp_path)
    with TestClient(create_app(config)) as client:
        page = client.get("/ui")
        assert page.status_code == 401 and 'name="token"' in page.text
        wrong = client.post("/ui/login", data={"token": "guess"})
        assert wrong.status_code == 401 and "not the admin token" in wrong.text
        form = {"source": SOURCE, "target": TARGET, "decision": "reject", "form_token": "forged"}
        assert client.post("/ui/review", data=form, follow_redirects=False).status_code == 401
        signed = client.post("/ui/login", data={"token": TOKEN}, follow_redirects=False)
        assert signed.status_code == 303 and TOKEN not in signed.headers.get("set-cookie", "")
        assert client.post("/ui/review", data=form, follow_redirects=False).status_code == 403
        assert _rewrite(client)["rewritten"]


@pytest.mark.parametrize("token", [TOKEN, None])
def test_a_verdict_posted_through_the_form_holds_from_the_next_request(
    tmp_path: Path, token: str | None
) -> None:
    from selflearn.service.review import _form_token

    config, _ = _service(tmp_path, token)
    with TestClient(create_app(config)) as client:
        if token is not None:
            client.get(f"/ui?token={token}", follow_redirects=False)
        form = {
            "source": SOURCE,
            "target": TARGET,
            "decision": "reject",
            "form_token": _form_token(config),
        }
        res = client.post("/ui/review", data=form, follow_redirects=False)
        assert res.status_code == 303 and res.headers["location"].startswith("/ui?saved=")
        assert not _rewrite(client)["rewritten"]


def test_approved_and_edited_rules_export_as_custom_sentences_that_load_in_hassil(tmp_path: Path) -> None:
    import yaml

    from selflearn.rewrite.review import export_reviewed
    from tests.conftest import HOME as TEST_HOME
    from tests.test_concepts_cli import _readings, _with_custom

    home = Home.from_dict(TEST_HOME)
    cosy = Review(
        review_id="p2",
        pattern="make the {area} dark",
        target="x",
        decision="edited",
        edited_target="turn off the lights in the {area}",
        timestamp=T0,
    )
    named = Review(
        review_id="p3", pattern="kill {name}", target="turn off {name}", decision="approved", timestamp=T0
    )
    rejected = Review(
        review_id="p4",
        pattern="nuke the {area}",
        target="turn off the lights in the {area}",
        decision="rejected",
        timestamp=T0,
    )
    result, left_out = export_reviewed([_verdict("approved"), cosy, named, rejected], home, tmp_path)
    assert result.phrasings == 2 and left_out == ["kill {name} -> turn off {name}: has {name}"]
    custom = yaml.safe_load(result.files["sentences"].read_text())
    before, after = _with_custom({"intents": {}}), _with_custom(custom)
    for said in ("kill the lights in the kitchen", "make the bedroom dark"):
        assert _readings(said, before, home) == set(), said
        (reading,) = _readings(said, after, home)
        assert reading[0] == "HassTurnOff", said
    assert _readings("nuke the kitchen", after, home) == set()  # a rejected rule is not exported


def test_review_commands_add_list_and_export(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from selflearn.cli import app
    from tests.conftest import HOME as TEST_HOME

    store = tmp_path / "s.duckdb"
    with Store(store) as s:
        s.put_home("h1", TEST_HOME)
    run = CliRunner().invoke
    empty = run(app, ["review", "list", "--store", str(store)])
    assert empty.exit_code == 0 and "no verdicts yet" in empty.output
    added = run(app, ["review", "add", "--store", str(store), "approved", SOURCE, TARGET])
    assert added.exit_code == 0, added.output
    no_to = run(app, ["review", "add", "--store", str(store), "edited", SOURCE, TARGET])
    assert isinstance(no_to.exception, ConfigError) and "--to" in str(no_to.exception)
    listed = run(app, ["review", "list", "--store", str(store), "--json"])
    assert [json.loads(line)["decision"] for line in listed.output.splitlines()] == ["approved"]
    exported = run(
        app, ["review", "export", "--store", str(store), "--household", "h1", "--out", str(tmp_path)]
    )
    assert exported.exit_code == 0 and "exported 1 reviewed rules" in exported.output
    assert (tmp_path / "custom_sentences/en/selflearn_reviewed.yaml").exists()
    missing = run(app, ["review", "list", "--store", str(tmp_path / "nope.duckdb")])
    assert isinstance(missing.exception, DataError) and "no store at" in str(missing.exception)


def test_verdicts_become_the_rankers_labels() -> None:
    import numpy as np

    from selflearn.rewrite.fit import Query, apply_reviews

    def query(text: str, candidates: tuple[str, ...], labels: list[int]) -> Query:
        return Query(
            turn_id=text,
            household="h1",
            x=np.zeros((len(candidates), 1)),
            intents=["HassTurnOn", "HassTurnOff", "HassTurnOff"][: len(candidates)],
            labels=np.array(labels, dtype=np.int8),
            failed=True,
            defect=True,
            fix_intent=None,
            own_intent=None,
            text=text,
            candidates=candidates,
        )

    wrong, right, edited = (
        "turn on the lights in the kitchen",
        "turn off the lights in the kitchen",
        "turn off all the lights in the kitchen",
    )
    rejected = Review(
        review_id="p1",
        pattern=SOURCE,
        target="turn on the lights in the {area}",
        decision="rejected",
        timestamp=T0,
    )
    edit = Review(
        review_id="p2",
        pattern="make the {area} dark",
        target="turn on the lights in the {area}",
        decision="edited",
        edited_target="turn off all the lights in the {area}",
        timestamp=T0,
    )
    queries = [
        query("kill the lights in the kitchen", (wrong, right), [1, 0]),
        query("make the kitchen dark", (wrong, edited), [0, 0]),
        query("lights out in the kitchen", (wrong, right), [1, 0]),  # nobody reviewed it
    ]
    assert apply_reviews(queries, [rejected, edit], {"h1": HOME}) == 2
    assert [q.labels.tolist() for q in queries] == [[0, 0], [0, 1], [1, 0]]
    assert [q.reviewed for q in queries] == [True, True, False]
    assert apply_reviews(queries, [], {"h1": HOME}) == 0


def test_the_live_page_compares_the_date_ranges_asked_for(tmp_path: Path) -> None:
    from tests.test_report import build_log

    config, store = _service(tmp_path, token=None)
    store.unlink()
    build_log().write(store)  # four scored days from 2026-01-05
    with TestClient(create_app(config)) as client:
        page = client.get("/ui?before=2026-01-05..2026-01-05&after=2026-01-06..2026-01-08")
        assert page.status_code == 200 and "2026-01-06..2026-01-08" in page.text
        assert 'id="comparison"' in page.text and 'value="reject"' in page.text
        bad = client.get("/ui?before=2026-01-05..2026-01-01")
        assert bad.status_code == 422


def test_the_page_exports_approved_rules_as_custom_sentences(tmp_path: Path) -> None:
    from hassil import Intents

    config, _ = _service(tmp_path)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(config)) as client:
        assert client.get("/ui/export").status_code == 401
        page = client.get("/ui", headers=auth)
        assert page.status_code == 200 and 'id="export"' not in page.text  # nothing approved yet
        approve = {"pattern": SOURCE, "target": TARGET, "decision": "approved"}
        assert client.post("/v1/reviews", json=approve, headers=auth).status_code == 200
        assert 'href="/ui/export"' in client.get("/ui", headers=auth).text
        res = client.get("/ui/export", headers=auth)
    assert res.status_code == 200 and "attachment" in res.headers["content-disposition"]
    custom = yaml.safe_load(res.text)
    Intents.from_dict(custom)  # loads in hassil as it is
    sentences = [s for item in custom["intents"]["HassTurnOff"]["data"] for s in item["sentences"]]
    assert sentences == ["kill the lights in the {area}"]


# --- issue 42: what the review page records, exports and accepts -----------------------------------


def _signed_in(client: TestClient, config: ServiceConfig) -> dict[str, str]:
    """Sign in like the page does; the hidden fields of its forms."""
    from selflearn.service.review import _form_token

    assert client.post("/ui/login", data={"token": TOKEN}, follow_redirects=False).status_code == 303
    return {"form_token": _form_token(config)}


def test_approving_on_the_page_then_exporting_works(tmp_path: Path) -> None:
    from hassil import Intents

    config, _ = _service(tmp_path)
    with TestClient(create_app(config)) as client:
        hidden = _signed_in(client, config)
        form = {"source": SOURCE, "target": TARGET, "decision": "approve", **hidden}
        saved = client.post("/ui/review", data=form, follow_redirects=False)
        assert saved.status_code == 303, saved.text
        (verdict,) = client.get("/v1/reviews").json()["reviews"]
        assert (verdict["decision"], verdict["reviewer"]) == ("approved", "admin")
        page = client.get("/ui")
        assert 'href="/ui/export"' in page.text
        res = client.get("/ui/export")
    assert res.status_code == 200, res.text
    custom = yaml.safe_load(res.text)
    Intents.from_dict(custom)
    assert [s for item in custom["intents"]["HassTurnOff"]["data"] for s in item["sentences"]] == [SOURCE]


def test_a_reviewer_name_with_spaces_exports(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from selflearn.cli import app
    from selflearn.rewrite.review import export_reviewed
    from tests.conftest import HOME as TEST_HOME

    store = tmp_path / "s.duckdb"
    with Store(store) as s:
        s.put_home("h1", TEST_HOME)
    run = CliRunner().invoke
    added = run(app, ["review", "add", "-s", str(store), "approved", SOURCE, TARGET, "--by", "Jane Doe"])
    assert added.exit_code == 0, added.output
    out = tmp_path / "ha"
    exported = run(app, ["review", "export", "--store", str(store), "--household", "h1", "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    text = (out / "custom_sentences/en/selflearn_reviewed.yaml").read_text()
    assert "Jane_Doe" in text and SOURCE in text
    # the page's old reviewer name, still in stores written before the fix, exports too
    old = Review(
        review_id="p9",
        pattern=SOURCE,
        target=TARGET,
        decision="approved",
        reviewer="admin (review page)",
        timestamp=T0,
    )
    result, _ = export_reviewed([old], Home.from_dict(TEST_HOME), tmp_path / "old")
    assert result.phrasings == 1


BAD_EDITS = {
    "frobnicate the zorp in the {area}": "does not parse in Home Assistant's templates",
    "frobnicate the zorp {number}": "it has {number} but the request pattern",
    "how long left on the {device} timer": "{device} is not a placeholder selflearn fills",
    "turn off the {name}": "it has {name} but the request pattern",
}


def test_an_edit_the_rewriter_cannot_use_is_refused_everywhere(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from selflearn.cli import app

    config, store = _service(tmp_path)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(config)) as client:
        for target, why in BAD_EDITS.items():
            edit = {"pattern": SOURCE, "target": TARGET, "decision": "edited", "edited_target": target}
            res = client.post("/v1/reviews", json=edit, headers=auth)
            assert res.status_code == 422, (target, res.text)
            body = res.json()
            assert body["detail"].startswith("invalid request: edited_target: ") and why in body["detail"]
            assert body["errors"] == [
                {"field": "edited_target", "message": body["errors"][0]["message"], "type": "value_error"}
            ]
            assert why in body["errors"][0]["message"]
        hidden = _signed_in(client, config)
        form = {
            "source": SOURCE,
            "target": TARGET,
            "decision": "edit",
            "edited_target": "frobnicate the zorp in the {area}",
            **hidden,
        }
        page = client.post("/ui/review", data=form, follow_redirects=False)
        assert page.status_code == 422 and "Not saved" in page.text and "does not parse" in page.text
        assert client.get("/v1/reviews", headers=auth).json()["reviews"] == []
        # nothing was saved, so the mined rule still applies -- no literal placeholder reaches the NLU
        assert _rewrite(client)["text"] == "turn off the lights in the kitchen"
        good = {**form, "edited_target": "turn off all the lights in the {area}"}
        assert client.post("/ui/review", data=good, follow_redirects=False).status_code == 303
    run = CliRunner().invoke
    for target, why in BAD_EDITS.items():
        cli = run(app, ["review", "add", "-s", str(store), "edited", SOURCE, TARGET, "--to", target])
        assert isinstance(cli.exception, ConfigError) and why in str(cli.exception), cli.output
    ok = run(
        app,
        [
            "review",
            "add",
            "-s",
            str(store),
            "edited",
            SOURCE,
            TARGET,
            "--to",
            "turn off all the lights in the {area}",
        ],
    )
    assert ok.exit_code == 0, ok.output


def test_check_target_fills_and_parses_as_the_rewriter_would() -> None:
    from selflearn.rewrite.review import check_target

    homes = {"h1": HOME}
    ok = check_target(SOURCE, "turn off all the lights in the {area}", homes)
    assert ok.ok and ok.intent == "HassTurnOff" and ok.sentence is not None
    said = [((("area", "hall"),), HOME, "Hall")]
    assert check_target(SOURCE, TARGET, homes, said).sentence == "turn off the lights in the hall"
    assert not check_target(SOURCE, SOURCE, homes).ok  # the pattern itself
    assert "{number}" in check_target(SOURCE, "set the {area} to {number} percent", homes).reason
    no_home = check_target("what time", "frobnicate", {})
    assert not no_home.ok and "no home configuration" in no_home.reason


def test_accepting_a_candidate_on_the_page_records_the_right_verdict(tmp_path: Path) -> None:
    from selflearn.rewrite.table import rule_id

    config, _ = _service(tmp_path)
    with TestClient(create_app(config)) as client:
        hidden = _signed_in(client, config)
        # an active rule of the serving table: approved (the rewriter applies it already)
        rule = {"source": SOURCE, "target": TARGET, "rule_id": rule_id(SOURCE, TARGET), "decision": "accept"}
        assert client.post("/ui/review", data={**rule, **hidden}, follow_redirects=False).status_code == 303
        # anything else: the pattern edited to the candidate, from the next request on
        dark = {"source": "make the {area} dark", "target": TARGET, "rule_id": "", "decision": "accept"}
        res = client.post("/ui/review", data={**dark, **hidden}, follow_redirects=False)
        assert res.status_code == 303
        assert "accepted as a rule" in client.get(res.headers["location"]).text
        verdicts = {r["pattern"]: r for r in client.get("/v1/reviews").json()["reviews"]}
        assert verdicts[SOURCE]["decision"] == "approved"
        assert (
            verdicts["make the {area} dark"]["decision"],
            verdicts["make the {area} dark"]["edited_target"],
        ) == (
            "edited",
            TARGET,
        )
        assert _rewrite(client, "make the hall dark")["text"] == "turn off the lights in the hall"
        bad = {**dark, "source": "make the {area} bright", "target": "frobnicate the {area}"}
        assert client.post("/ui/review", data={**bad, **hidden}, follow_redirects=False).status_code == 422


def test_an_accepted_candidate_teaches_the_ranker_it_is_right() -> None:
    accepted = Review(
        review_id="p1",
        pattern="make the {area} dark",
        target=TARGET,
        decision="edited",
        edited_target=TARGET,
        timestamp=T0,
    )
    index = Reviews.of([accepted])
    assert not index.rejects("make the {area} dark", TARGET, None)
    assert index.edit_for("make the {area} dark") == (TARGET, "p1")
