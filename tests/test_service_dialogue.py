"""``POST /v1/dialogue``: the service asks, is answered, is taught, and remembers across restarts.

A real rewriter (a one-rule mined table: its rewrites are guesses), the real matcher over a small
home, a real DuckDB store. The client here plays Home Assistant's integration: it logs the turn
the answer tells it to log (``log``), and runs nothing itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from selflearn.core.store import Store
from selflearn.rewrite.rewriter import Rewriter
from selflearn.rewrite.table import RewriteTable
from selflearn.service import ServiceConfig, create_app
from tests.conftest import HOME

KILL = "kill the lights in the kitchen"
PROPOSAL = "turn off the lights in the kitchen"


@pytest.fixture(scope="module")
def rewriter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    table = RewriteTable.from_rules([("kill the lights in the {area}", "turn off the lights in the {area}")])
    return Rewriter.from_parts(table=table).save(tmp_path_factory.mktemp("rw") / "rewriter")


class Home:
    """One household talking to the service through a client that only carries its answers."""

    def __init__(self, client: TestClient, household: str = "h1") -> None:
        self.client = client
        self.household = household
        self.logged: list[dict[str, Any]] = []

    def say(
        self, text: str, conversation: str = "c1", failed: bool | None = True, **extra: Any
    ) -> dict[str, Any]:
        turn_id = uuid.uuid4().hex[:12]
        body = {
            "text": text,
            "household_id": self.household,
            "user_id": "u1",
            "conversation_id": conversation,
            "turn_id": turn_id,
            "area": "Kitchen",
            "failed": failed,
            **extra,
        }
        res = self.client.post("/v1/dialogue", json=body)
        assert res.status_code == 200, res.text
        out: dict[str, Any] = res.json()
        if out["log"] is not None:  # what the integration does: log its turn with the given fields
            worked = out["action"] == "run" or (out["action"] == "pass" and failed is False)
            record: dict[str, Any] = {
                "record_type": "turn",
                "turn_id": turn_id,
                "session_id": conversation,
                "user_id": "u1",
                "household_id": self.household,
                "timestamp": extra.get("timestamp", "2026-01-05T08:00:00Z"),
                "device": {"device_id": "d1", "area": "Kitchen"},
                "text": text,
                "nlu": {"matched": worked, "matcher": "home_assistant"},
                "result": {"status": "success" if worked else "no_match"},
            }
            for key in ("turn_id", "timestamp", "text", "rewrite", "dialogue", "nlu"):
                if out["log"].get(key) is not None:
                    record[key] = out["log"][key]
            record["result"].update(out["log"].get("result") or {})
            res = self.client.post("/v1/turns", json=[record])
            assert res.status_code == 200 and res.json()["stored"] == 1, res.text
            self.logged.append(record)
        return out


def _app(rewriter_dir: Path, store: Path, **extra: Any) -> TestClient:
    config = ServiceConfig(rewriter=rewriter_dir, store=store, **{"dialogue_timeout_ms": 30_000, **extra})
    return TestClient(create_app(config))


@pytest.fixture()
def client(rewriter_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    with _app(rewriter_dir, tmp_path / "s.duckdb") as c:
        assert c.put("/v1/homes/h1", json=HOME).status_code == 200
        assert c.app.state.service.talk.wait_ready()  # type: ignore[attr-defined]
        yield c


def test_a_guess_is_a_question_yes_runs_it_and_the_home_learns_it(client: TestClient) -> None:
    home = Home(client)
    asked = home.say(KILL)
    assert asked["action"] == "ask" and asked["continue_conversation"]
    assert asked["speech"] == f"Did you mean {PROPOSAL}?" and asked["log"] is None
    assert asked["question"]["kind"] == "confirm" and asked["question"]["proposal"] == PROPOSAL
    yes = home.say("yes")
    assert yes["action"] == "run" and yes["sentences"] == [PROPOSAL]
    assert yes["ended"] == {"act_id": asked["question"]["act_id"], "kind": "confirm", "answer": "yes"}
    logged = home.logged[-1]
    assert logged["turn_id"] == asked["question"]["act_id"].removesuffix(".q")  # the asking turn
    assert logged["dialogue"]["answer"] == "yes" and logged["rewrite"]["original_text"] == KILL
    # The same words, in another conversation and from another user: acted on, unasked.
    again = home.say(KILL, conversation="c2", user_id="u2")
    assert again["action"] == "run" and again["sentences"] == [PROPOSAL] and again["question"] is None
    # What worked stays untouched.
    assert home.say(PROPOSAL, conversation="c3", failed=False)["action"] == "pass"


def test_no_asks_what_was_meant_and_is_never_proposed_again(client: TestClient, tmp_path: Path) -> None:
    home = Home(client)
    home.say(KILL)
    no = home.say("no")
    assert no["action"] == "ask" and no["speech"] == "OK. What did you want?"
    assert no["ended"]["answer"] == "no" and no["log"] is None
    assert no["question"]["kind"] == "clarify"
    later = home.say(KILL, conversation="c9")
    assert later["action"] == "pass" and later["question"] is None
    service = client.app.state.service  # type: ignore[attr-defined]
    with service.store_lock:
        acts = service.store.dialogue_acts()
        asking = service.store.query("SELECT dialogue.answer AS answer FROM turns WHERE dialogue IS NOT NULL")
    assert [a["answer"] for a in acts] == ["no"]
    assert asking.column("answer").to_pylist() == ["no"]  # the asking turn, logged by the service


def test_never_mind_silence_and_a_new_request(client: TestClient) -> None:
    home = Home(client)
    home.say(KILL)
    cancelled = home.say("never mind")
    assert (
        cancelled["action"] == "say" and cancelled["speech"] == "OK, never mind." and cancelled["log"] is None
    )
    home.say(KILL)
    other = home.say("turn on the kitchen ceiling", failed=None)  # a request instead of an answer
    assert other["action"] == "pass" and other["ended"]["answer"] == "barge_in"
    assert other["log"] == {"turn_id": other["log"]["turn_id"]}  # logged as the request it is
    asked = home.say(KILL)
    assert asked["action"] == "ask"  # nothing was learned from either


def test_questions_wait_per_conversation(client: TestClient) -> None:
    kitchen, hall = Home(client), Home(client)
    assert kitchen.say(KILL, conversation="kitchen")["action"] == "ask"
    stray = hall.say("yes", conversation="hall")  # another satellite: no question waits there
    assert stray["action"] == "pass" and stray["ended"] is None
    assert kitchen.say("yes", conversation="kitchen")["action"] == "run"


def test_an_answer_after_the_window_is_a_new_request(client: TestClient) -> None:
    home = Home(client)
    home.say(KILL, timestamp="2026-01-05T08:00:00Z")
    late = home.say("yes", timestamp="2026-01-05T08:01:00Z")
    assert late["ended"]["answer"] == "timeout" and late["action"] == "pass"


def test_teaching_when_asked_and_by_command(client: TestClient) -> None:
    home = Home(client)
    asked = home.say("turn on the mothership", typed=True)
    assert (
        asked["action"] == "ask" and asked["speech"] == "I don't know what mothership is. Can you teach me?"
    )
    taught = home.say("it's the kitchen ceiling", typed=True)
    assert taught["action"] == "run" and taught["sentences"] == ["turn on the kitchen ceiling"]
    assert taught["speech"] == "OK, mothership means Kitchen Ceiling."
    assert taught["taught"]["kind"] == "name" and taught["taught"]["target"] == "light.kitchen_ceiling"
    off = home.say("turn off the mothership", conversation="c2")
    assert off["action"] == "run" and off["sentences"] == ["turn off the kitchen ceiling"]
    said = home.say("when i say nighty night i mean turn off the kitchen ceiling", conversation="c3")
    assert said["action"] == "say" and said["speech"].startswith("OK, nighty night means")
    assert said["log"]["nlu"]["intent"] == "SelflearnTeach"
    listed = home.say("what have you learned", conversation="c3")
    assert "mothership means Kitchen Ceiling" in listed["speech"]
    concepts = client.get("/v1/concepts", params={"household_id": "h1"}).json()["concepts"]
    assert sorted(c["phrase"] for c in concepts) == ["mothership", "nighty night"]


def test_nothing_is_forgotten_by_a_restart(rewriter_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    with _app(rewriter_dir, store) as c:
        c.put("/v1/homes/h1", json=HOME)
        assert c.app.state.service.talk.wait_ready()  # type: ignore[attr-defined]
        home = Home(c)
        home.say(KILL)
        home.say("yes")
        home.say("turn on the thingy", conversation="c2", typed=True)
        assert home.say("no", conversation="c2")["ended"]["answer"] == "declined"
        home.say("the big light is the kitchen ceiling", conversation="c3")
    with _app(rewriter_dir, store) as c:  # the same store, a new process state
        health = c.get("/healthz").json()["dialogue"]
        assert health["rebuilt"]["concepts"] == 1 and health["rebuilt"]["declined"] == 1
        assert c.app.state.service.talk.wait_ready()  # type: ignore[attr-defined]
        home = Home(c)
        assert home.say(KILL, conversation="c4")["action"] == "run"  # the yes
        assert home.say("turn on the big light", conversation="c5")["action"] == "run"  # the name
        assert home.say("turn on the thingy", conversation="c6", typed=True)["action"] == "pass"  # the no


def test_a_restart_without_rebuild_starts_empty(rewriter_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    with _app(rewriter_dir, store) as c:
        c.put("/v1/homes/h1", json=HOME)
        assert c.app.state.service.talk.wait_ready()  # type: ignore[attr-defined]
        home = Home(c)
        home.say(KILL)
        home.say("yes")
    with _app(rewriter_dir, store, rebuild=False) as c:
        assert c.app.state.service.talk.wait_ready()  # type: ignore[attr-defined]
        assert Home(c).say(KILL, conversation="c4")["action"] == "ask"


def test_a_question_left_unanswered_is_logged_when_the_service_stops(
    rewriter_dir: Path, tmp_path: Path
) -> None:
    store = tmp_path / "s.duckdb"
    with _app(rewriter_dir, store) as c:
        c.put("/v1/homes/h1", json=HOME)
        assert c.app.state.service.talk.wait_ready()  # type: ignore[attr-defined]
        assert Home(c).say(KILL)["action"] == "ask"
    with Store(store, read_only=True) as opened:
        acts = opened.dialogue_acts()
        assert [a["answer"] for a in acts] == ["timeout"]
        assert opened.count("turns") == 1


def test_bad_input_is_a_clear_error_and_trouble_fails_open(
    client: TestClient, rewriter_dir: Path, tmp_path: Path
) -> None:
    bad = client.post(
        "/v1/dialogue",
        json={
            "text": KILL,
            "household_id": "h1",
            "conversation_id": "c1",
            "turn_id": "t1",
            "turn": {"turn_id": "t1", "household_id": "h1", "text": 5},
        },
    )
    assert bad.status_code == 422 and "turn" in bad.text
    missing = client.post("/v1/dialogue", json={"text": KILL, "household_id": "h1"})
    assert missing.status_code == 422 and "conversation_id" in missing.text
    with _app(rewriter_dir, tmp_path / "t.duckdb", dialogue_timeout_ms=0.01) as slow:
        out = Home(slow).say(KILL)
        assert out["action"] == "pass" and out["fail_open"] and out["log"] is not None
        assert out["reasons"][0].startswith(("timeout", "the dialogue's matcher is still loading"))


def test_forgetting_a_household_forgets_its_questions_and_lessons(client: TestClient) -> None:
    home = Home(client)
    home.say("the big light is the kitchen ceiling")
    assert home.say(KILL, conversation="c2")["action"] == "ask"
    assert client.delete("/v1/households/h1").status_code == 200
    client.put("/v1/homes/h1", json=HOME)
    assert home.say("yes", conversation="c2")["ended"] is None  # no question waits any more
    assert home.say("turn on the big light", conversation="c3")["action"] == "pass"


def test_a_command_is_heard_before_the_assistant_and_nothing_else_is(client: TestClient) -> None:
    """Home Assistant 2026.11 answers "the big light is the kitchen lights" itself (its gazetteer
    reads a question about the kitchen lights), so the lesson never reached the dialogue. Its
    integration now checks the command shape ``/healthz`` serves and sends such a text first
    with ``commands_only``: a lesson is taught; anything else is left alone, asking nothing."""
    import re

    from selflearn.dialogue.concepts import shaped

    shape = re.compile(client.get("/healthz").json()["dialogue"]["commands"])
    assert shape.match(shaped("The big light is the kitchen ceiling."))
    assert not shape.match(shaped(KILL))
    home = Home(client)
    left = home.say(KILL, failed=None, commands_only=True)
    assert (left["action"], left["question"], left["fail_open"]) == ("pass", None, False), left
    assert home.say("yes")["ended"] is None  # no question was opened
    lesson = "the big light is the kitchen ceiling"
    taught = home.say(lesson, conversation="c2", failed=None, commands_only=True)
    assert taught["action"] == "say" and taught["speech"].startswith("OK"), taught
    assert home.say("turn on the big light", conversation="c3")["action"] == "run"


def test_a_lesson_written_while_the_store_reopens_waits_for_the_new_store(tmp_path: Path) -> None:
    """The dialogue writes what is taught outside the store's lock; a reopen (every
    ``store_reopen_batches`` batches) can close the connection between the write taking the store
    and writing ("Connection already closed": the lesson was answered with an error). The write
    waits for the store opened in its place and goes there; when none opens, it says why."""
    import threading
    from datetime import UTC, datetime

    from selflearn.core.schema import Concept
    from selflearn.service.access import CurrentStore, StoreClosed

    class Service:  # what CurrentStore knows of the service: its store as it is now
        config = ServiceConfig(store=tmp_path / "s.duckdb")
        store_lock = threading.Lock()
        store_error: str | None = None
        store: Store | None = Store(tmp_path / "s.duckdb")

    def lesson(n: int) -> Concept:
        return Concept(
            concept_id=f"c{n}", household_id="h1", user_id="u1", kind="name", phrase=f"thing {n}",
            meaning=("Kitchen Light",), target="light.kitchen", timestamp=datetime(2026, 1, 5, tzinfo=UTC),
        )  # fmt: skip

    service = Service()
    writes = CurrentStore(service)
    assert service.store is not None
    service.store.close()  # the reopen has closed the store and is opening the new one
    reopened = threading.Timer(0.1, lambda: setattr(service, "store", Store(tmp_path / "s.duckdb")))
    reopened.start()
    assert writes.put_concept(lesson(1)) is None
    reopened.join()
    assert service.store is not None and [c.phrase for c in service.store.concepts()] == ["thing 1"]
    service.store.close()  # and this time the store cannot be opened again

    def reopen_fails() -> None:
        service.store, service.store_error = None, "disk gone"

    failed = threading.Timer(0.05, reopen_fails)
    failed.start()
    with pytest.raises(StoreClosed, match="disk gone"):
        writes.forget_concept("c1")
    failed.join()


def test_what_is_taught_after_the_store_reopens_is_kept_and_survives_a_restart(
    rewriter_dir: Path, tmp_path: Path
) -> None:
    """The service opens its store again every ``store_reopen_batches`` batches: teaching and
    forgetting afterwards write to the store open now (they wrote to the closed one and failed
    open: seen through a real Home Assistant core, the yes lost)."""
    store = tmp_path / "s.duckdb"
    with _app(rewriter_dir, store, store_reopen_batches=1) as c:
        c.put("/v1/homes/h1", json=HOME)
        service = c.app.state.service  # type: ignore[attr-defined]
        assert service.talk.wait_ready()
        home = Home(c)
        first = service.store
        home.say("turn on the kitchen ceiling", failed=False)  # one batch logged: the store reopens
        assert service.store is not first
        taught = home.say("the big light is the kitchen ceiling", conversation="c2")
        assert taught["action"] == "say" and taught["speech"].startswith("OK"), taught
        home.say("when i say nighty night i mean turn off the kitchen ceiling", conversation="c3")
        forgot = home.say("forget nighty night", conversation="c4")
        assert forgot["action"] == "say" and "forgotten" in forgot["speech"], forgot
        concepts = c.get("/v1/concepts", params={"household_id": "h1"}).json()["concepts"]
        assert [concept["phrase"] for concept in concepts] == ["big light"]
    with _app(rewriter_dir, store) as c:  # a new process state: what the store kept
        assert c.get("/healthz").json()["dialogue"]["rebuilt"]["concepts"] == 1
        assert c.app.state.service.talk.wait_ready()  # type: ignore[attr-defined]
        assert Home(c).say("turn on the big light", conversation="c5")["action"] == "run"
