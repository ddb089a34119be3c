"""Privacy, proven (issue 42): forgetting a household or a user leaves nothing of it in any file
selflearn wrote -- the store (its bytes, not only its rows), the quarantine, signals, labels,
concepts, confirmations, the mined table, the rewriter, the exports and the report -- once the
learners have run again; a pattern that falls below k users with the removal leaves the table;
k-anonymity and "no household name in a global artefact" hold over generated homes; free text is
scrubbed of e-mail and web addresses and phone numbers before it is pooled.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from selflearn.cli import app as cli_app
from selflearn.core.delex import Delexicalizer
from selflearn.core.home import Home
from selflearn.core.schema import Concept, DialogueAct
from selflearn.core.scrub import private_spans
from selflearn.core.store import Store
from selflearn.mining import DuckDbEngine, MiningConfig, RewriteMiner
from selflearn.rewrite.rewriter import Rewriter
from selflearn.service import ServiceConfig, create_app
from selflearn.simulation.simulator import SimulationConfig, simulate
from tests.conftest import HOME, turn_dict
from tests.test_mining import Log, _rules

VICTIM = os.environ.get("SELFLEARN_PRIVACY_VICTIM", "h000002")
"""The household forgotten (``bench/reliability.py forget`` varies it)."""
SECRET_NAME = "Zanzibar Quokka Lamp"
SECRET_PHRASE = "marsupial beacon"
T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)


def _cli(*args: str) -> str:
    res = CliRunner().invoke(cli_app, list(args))
    assert res.exit_code == 0, (args, res.output, res.exception)
    return res.output


def _files(root: Path) -> Iterator[Path]:
    return (p for p in root.rglob("*") if p.is_file())


def _residue(root: Path, needles: list[str]) -> list[tuple[str, str]]:
    """(file, needle) for every needle found in any file under ``root`` (bytes, any encoding
    selflearn writes: UTF-8 text, JSON, YAML, HTML, DuckDB, Parquet, numpy)."""
    found = []
    for path in _files(root):
        data = path.read_bytes()
        for needle in needles:
            for form in {needle, needle.lower(), needle.replace(" ", "_"), needle.lower().replace(" ", "_")}:
                if form.encode() in data:
                    found.append((str(path.relative_to(root)), needle))
                    break
    return found


def _learn(work: Path, store: Path, homes: tuple[str, ...] = ("h000000", VICTIM)) -> None:
    """Every learner and export, into the same folders each time (the next global artefacts)."""
    _cli("signals", "--store", str(store))
    _cli("label", "--store", str(store))
    _cli("mine", "--store", str(store), "--out", str(work / "table"), "-k", "2", "--min-households", "2")
    _cli(
        "train",
        "rewriter",
        "--store",
        str(store),
        "--table",
        str(work / "table"),
        "--out",
        str(work / "rewriter"),
        "-k",
        "2",
    )
    _cli("label", "export", "--store", str(store), "--out", str(work / "exports"), "-k", "2")
    _cli("report", "--store", str(store), "--table", str(work / "table"), "--out", str(work / "report.html"))
    for home in homes:
        _cli(
            "concepts",
            "export",
            "--store",
            str(store),
            "--household",
            home,
            "--out",
            str(work / f"ha-{home}"),
        )


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """A store of six simulated households -- one of them the victim, with a name of its own, a
    taught concept, a confirmation and a bad row in the quarantine -- and everything learned
    from it. Returns the work folder, the store and what must vanish (the victim's ids and the
    texts only it said)."""
    work = tmp_path_factory.mktemp("privacy")
    simulate(SimulationConfig(households=12, days=2.0, seed=11), work / "sim")
    store_path = work / "logs.duckdb"
    victim_turns = [
        turn_dict(f"{VICTIM}-x{i}", household_id=VICTIM, user_id=f"{VICTIM}u9", session_id=f"{VICTIM}-sx",
                  timestamp=(T0 + timedelta(seconds=10 * i)).isoformat(),
                  text=f"turn on the {SECRET_NAME.lower()}")
        for i in range(3)
    ]  # fmt: skip
    with Store(store_path) as store:
        store.ingest([work / "sim"], quarantine_path=work / "logs.quarantine-first.jsonl")
        home = store.homes()[VICTIM].to_dict()
        home["entities"].append({"id": "light.zanzibar", "name": SECRET_NAME, "area": home["areas"][0]["id"]})
        store.put_home(VICTIM, home)
        report = store.ingest_records(
            [*victim_turns, {**turn_dict(f"{VICTIM}-bad", household_id=VICTIM), "text": 5}],
            quarantine_path=store.path.with_name(f"{store.path.stem}.quarantine-api.jsonl"),
        )
        assert report.quarantined == 1
        store.put_concept(
            Concept(concept_id=f"{VICTIM}-c1", household_id=VICTIM, user_id=f"{VICTIM}u9", kind="name",
                    phrase=SECRET_PHRASE, meaning=(SECRET_NAME,), target="light.zanzibar", timestamp=T0)
        )  # fmt: skip
        store.ingest_records(
            [
                DialogueAct(act_id=f"{VICTIM}-a1", turn_id=f"{VICTIM}-x0", user_id=f"{VICTIM}u9",
                            household_id=VICTIM, timestamp=T0, kind="confirm",
                            question=f"Did you mean turn on the {SECRET_NAME.lower()}?",
                            proposal=f"turn on the {SECRET_NAME.lower()}", answer="yes",
                            ).model_dump(mode="json")
            ]
        )  # fmt: skip
        texts = (
            store.query(
                "SELECT text FROM turns GROUP BY text "
                "HAVING bool_and(household_id = $1) AND length(text) > 12",
                [VICTIM],
            )
            .column("text")
            .to_pylist()
        )
        # every text of the other households, in whatever column (what they said, what the
        # recogniser heard and its alternatives, what the simulation meant them to say): a text of
        # the victim found in one of those is not the victim's alone
        others = store.query(
            "SELECT t.text, t.asr.text AS heard, t.rewrite.original_text AS original, "
            "list_transform(t.asr.nbest, lambda h: h.text) AS nbest, s.intended_text AS meant "
            "FROM turns t LEFT JOIN sim_truth s USING (turn_id) WHERE t.household_id <> $1",
            [VICTIM],
        ).to_pylist()
        shared = " | ".join(str(v) for row in others for v in row.values())
    unique = [t for t in texts if t not in shared][:40]
    _learn(work, store_path)
    needles = [VICTIM, SECRET_NAME, SECRET_PHRASE, *unique]
    return work, store_path, needles


def test_forgetting_a_household_leaves_no_trace_in_any_file(learned: tuple[Path, Path, list[str]]) -> None:
    work, store, needles = learned
    before = _residue(work, needles)
    files = {f for f, _ in before}
    assert {"logs.duckdb", "report.html", f"ha-{VICTIM}/aliases.yaml"} <= files, before  # it was there
    assert any(n == SECRET_PHRASE for _, n in before) and any(n == VICTIM for _, n in before)
    (work / "sim").rename(
        work.parent / f"{work.name}-sim"
    )  # the simulator's own files are not selflearn's store
    forgot = _cli(
        "forget",
        "--store",
        str(store),
        "--household",
        VICTIM,
        "--quarantine",
        str(work / "logs.quarantine-first.jsonl"),
    )
    said = " ".join(forgot.split())  # the console wraps long lines
    assert f"forgot household {VICTIM}" in said and "quarantine lines" in said, said
    _learn(work, store, homes=("h000000",))
    # the victim's own export was written before: as the operator would, it goes with the household
    for path in sorted((work / f"ha-{VICTIM}").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    residue = _residue(work, needles)
    report = os.environ.get("SELFLEARN_PRIVACY_REPORT")
    if report:  # bench/reliability.py forget reads it
        record = {"victim": VICTIM, "needles": len(needles), "found_before": len(before), "residue": residue}
        with open(report, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
    assert residue == []
    with Store(store, read_only=True) as opened:
        assert opened.count("turns") > 0  # the others stay
        for table in ("turns", "feedback", "dialogue_acts", "concepts", "homes"):
            key = "home_id" if table == "homes" else "household_id"
            assert (
                opened.query(f"SELECT count(*) AS n FROM {table} WHERE {key} = $1", [VICTIM])
                .column("n")[0]
                .as_py()
                == 0
            )


def test_a_pattern_below_k_users_after_the_removal_leaves_the_table(tmp_path: Path) -> None:
    log = Log()
    for u in range(3):  # three users of three homes fix "lights out" -- k = 3
        home = f"h{u}"
        log.home(home, ["Kitchen"])
        log.session(
            f"{home}u{u}",
            home,
            [("lights out in the kitchen", True), ("turn off the lights in the kitchen", False)],
        )
    config = MiningConfig(min_users=3, min_households=2, min_source_turns=1, min_target_turns=1)
    with log.store(tmp_path / "logs.duckdb") as store:
        assert _rules(RewriteMiner(config).fit(DuckDbEngine(store)).mined()) == {
            "lights out in the {area}": "turn off the lights in the {area}"
        }
        store.forget_user("h2", "h2u2")
        store.compact()
        assert _rules(RewriteMiner(config).fit(DuckDbEngine(store)).mined()) == {}


def test_forgetting_through_the_service_forgets_memory_and_files(tmp_path: Path) -> None:
    token = "privacy-token"
    auth = {"Authorization": f"Bearer {token}"}
    folder = Rewriter().save(tmp_path / "rewriter")
    config = ServiceConfig(
        rewriter=folder, store=tmp_path / "live.duckdb", admin_token=token, quarantine=tmp_path / "q.jsonl"
    )
    lamp = {
        "ok": True,
        "resolved": [{"entity_id": "light.reading_lamp", "name": "Reading Lamp", "score": 1.0}],
    }
    retry = [
        turn_dict("r1", text="turn on the quokka", er={"ok": False, "unresolved": ["quokka"]},
                  nlu={"matched": True, "intent": "HassTurnOn", "slots": {"name": "quokka"}},
                  result={"status": "error", "response_text": "Sorry", "error_code": "no_valid_targets"}),
        turn_dict("r2", text="turn on the reading lamp", timestamp="2026-01-05T08:00:08+00:00", er=lamp,
                  nlu={"matched": True, "intent": "HassTurnOn", "slots": {"name": "Reading Lamp"}}),
        {**turn_dict("r3"), "text": 7},
    ]  # fmt: skip
    with TestClient(create_app(config)) as c:
        c.put("/v1/homes/h1", json=HOME, headers=auth).raise_for_status()
        assert c.post("/v1/turns", json=retry, headers=auth).json()["quarantined"] == 1
        learned = c.post(  # the household's own assistant: with the token (without it, no personal layer)
            "/v1/rewrite",
            json={"text": "turn on the quokka", "household_id": "h1", "failed": True},
            headers=auth,
        )
        assert learned.json()["rewritten"] or learned.json()["confirm"], (
            learned.json()
        )  # its name was learned
        out = c.delete("/v1/households/h1", headers=auth).json()
        assert out["store"]["turns"] == 2 and out["quarantine_lines"] == 1 and out["personal_memory"]
        after = c.post(
            "/v1/rewrite",
            json={"text": "turn on the quokka", "household_id": "h1", "failed": True},
            headers=auth,
        )
        assert not after.json()["rewritten"] and after.json()["confirm"] is None
        assert c.get("/v1/homes/h1", headers=auth).status_code == 404
    assert _residue(tmp_path, ["quokka", 'h1"']) == []


def test_forgetting_one_user_keeps_the_rest_of_the_household(tmp_path: Path) -> None:
    token = "privacy-token"
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(ServiceConfig(store=tmp_path / "live.duckdb", admin_token=token))) as c:
        turns = [turn_dict("a1", user_id="anna", text="turn on the wombat"), turn_dict("b1", user_id="ben")]
        c.post("/v1/turns", json=turns, headers=auth).raise_for_status()
        out = c.delete("/v1/households/h1/users/anna", headers=auth)
        assert out.status_code == 200, out.text
        assert out.json()["store"]["turns"] == 1 and out.json()["rebuilt_records"] == 1
    with Store(tmp_path / "live.duckdb", read_only=True) as store:
        assert [t.user_id for t in store.turns()] == ["ben"]
    assert _residue(tmp_path, ["anna", "wombat"]) == []


# --- k-anonymity and household names, over generated homes -------------------------------------

WORDS = ["zib", "quor", "flan", "mox", "trel", "vask", "plim", "dorn", "grib", "yelt", "snor", "wump"]


@st.composite
def populations(draw: st.DrawFn) -> tuple[Log, int, set[str]]:
    """Homes with names of their own (nonsense words, one home each), users who fail and fix
    requests, some with a name only their household uses; k. Returns the log, k and the
    household-specific words."""
    log = Log()
    k = draw(st.integers(2, 4))
    private: set[str] = set()
    homes = draw(st.integers(2, 6))
    fixes = [
        ("lights out in the {area}", "turn off the lights in the {area}"),
        ("{name} on", "turn on the {name}"),
        ("kill the {area} lights", "turn off the {area} lights"),
    ]
    for h in range(homes):
        own = f"{WORDS[h]}{draw(st.sampled_from(WORDS))}"
        private |= {own}
        home = f"h{h}"
        log.home(home, ["Kitchen", f"{own} Room"], [f"{own} Lamp"])
        for u in range(draw(st.integers(1, 4))):
            user = f"{home}u{u}"
            for _ in range(draw(st.integers(1, 3))):
                bad, good = draw(st.sampled_from(fixes))
                place = draw(st.sampled_from(["kitchen", f"{own} room"]))
                fill = {"{area}": place, "{name}": f"{own} lamp"}
                b, g = bad, good
                for key, value in fill.items():
                    b, g = b.replace(key, value), g.replace(key, value)
                if draw(st.booleans()):  # the household's own nickname for its lamp
                    nick = f"{own}ie"
                    private.add(nick)
                    b = f"{nick} on"
                    g = f"turn on the {own} lamp"
                log.session(user, home, [(b, True), (g, False)])
    return log, k, {w.lower() for w in private}


@settings(
    max_examples=12, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
@given(population=populations())
def test_the_table_is_k_anonymous_and_holds_no_household_name(
    tmp_path_factory: pytest.TempPathFactory, population: tuple[Log, int, set[str]]
) -> None:
    log, k, private = population
    folder = tmp_path_factory.mktemp("kanon")
    config = MiningConfig(min_users=k, min_households=2, min_source_turns=1, min_target_turns=1)
    with log.store(folder / "logs.duckdb") as store:
        table = RewriteMiner(config).fit(DuckDbEngine(store)).mined()
    table.save(folder / "table")
    for row in table.rows():
        if row["status"] == "active":
            assert row["users"] >= k and row["households"] >= 2, row
    saved = b"".join(p.read_bytes() for p in (folder / "table").rglob("*") if p.is_file()).lower()
    leaked = [word for word in private if word.encode() in saved]
    assert leaked == [], (leaked, _rules(table))


# --- free text scrubbed before pooling -----------------------------------------------------------

NAMES = st.sampled_from(["anna", "ben"])
PARTS = st.sampled_from(["b", "smith"])
DOMAINS = st.sampled_from(["example", "gmail"])
PRIVATE = st.one_of(
    st.builds("{}.{}@{}.com".format, NAMES, PARTS, DOMAINS),
    st.builds("{} dot {} at {} dot com".format, NAMES, PARTS, DOMAINS),
    st.builds(
        "+{} {} {} {}".format,
        st.integers(1, 99),
        st.integers(10, 99),
        st.integers(1000, 9999),
        st.integers(0, 9999),
    ),
    st.builds("{}-{}-{}".format, st.integers(200, 999), st.integers(100, 999), st.integers(1000, 9999)),
    st.builds("https://{}.example/{}".format, st.sampled_from(["shop", "my"]), st.integers(1, 999)),
)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    before=st.sampled_from(["send it to", "call", "message", "open", "remind me to email"]),
    secret=PRIVATE,
    after=st.sampled_from(["", "please", "now", "at 7"]),
)
def test_addresses_and_phone_numbers_never_reach_a_pattern(before: str, secret: str, after: str) -> None:
    text = f"{before} {secret} {after}".strip()
    assert private_spans(text), text
    pattern = Delexicalizer(Home.from_dict(HOME))(text).pattern
    assert "{unknown}" in pattern
    digits = [ch for ch in pattern if ch.isdigit()]
    assert not digits and "@" not in pattern and "gmail" not in pattern and "smith" not in pattern, pattern
    assert "example" not in pattern and "http" not in pattern, pattern


def test_ordinary_requests_are_not_scrubbed() -> None:
    d = Delexicalizer(Home.from_dict(HOME))
    for text, pattern in [
        ("set the kitchen ceiling to 50 percent", "set the {name} to {number} percent"),
        ("set a timer for 10 minutes", "set a timer for {number} minutes"),
        ("turn on the lights at 7", "turn on the lights at {number}"),
        ("what's the weather at the coast", "whats the weather at the coast"),
    ]:
        assert d(text).pattern == pattern, text
        assert private_spans(text) == []


def test_the_quarantine_keeps_what_forget_must_scrub(tmp_path: Path) -> None:
    """The quarantine holds raw rows: forgetting scrubs the household's lines, and only those."""
    rows = [
        {**turn_dict("t1", household_id="hx"), "text": 1},
        {**turn_dict("t2", household_id="hy"), "text": 2},
    ]
    with Store(tmp_path / "s.duckdb") as store:
        store.ingest_records(rows, quarantine_path=tmp_path / "s.quarantine-x.jsonl")
    _cli("forget", "--store", str(tmp_path / "s.duckdb"), "--household", "hx")
    lines = [json.loads(line) for line in (tmp_path / "s.quarantine-x.jsonl").read_text().splitlines()]
    assert [line["row"] for line in lines] == [1] and "hy" in lines[0]["raw"]
