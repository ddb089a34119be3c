"""The rewriter hook: a rewriter in front of the NLU, in the assistant, the simulator and the store."""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from selflearn.assistant.devices import HomeState
from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.assistant.turns import HandledTurn
from selflearn.core.home import Home
from selflearn.core.hooks import RewriteContext
from selflearn.core.schema import (
    LOG_RECORD,
    SCHEMA_VERSION,
    TRUTH_RECORD,
    AsrHypothesis,
    AsrTrace,
    DeviceContext,
    RewriteTrace,
    Turn,
)
from selflearn.core.store import Store
from selflearn.dialogue import engine
from selflearn.simulation import simulator
from selflearn.simulation.simulator import SimulationConfig, simulate

NOW = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def _trace(text: str, rewritten: str) -> RewriteTrace:
    return RewriteTrace(
        original_text=text, rewritten_text=rewritten, layer="precomputed", rule_id="r1", score=0.8
    )


class TableRewriter:
    """Rewrites exact texts from a dict (module level, so picklable)."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.seen: list[RewriteContext] = []

    def __call__(self, text: str, context: RewriteContext) -> RewriteTrace | None:
        self.seen.append(context)
        target = self.table.get(text)
        return None if target is None else _trace(text, target)


class Broken:
    def __call__(self, text: str, context: RewriteContext) -> RewriteTrace | None:
        raise RuntimeError("table corrupted")


class Weird:
    def __call__(self, text: str, context: RewriteContext) -> Any:
        return "turn off the lights"  # not a RewriteTrace


class DropFirstWord:
    """A harmful rewriter: drops the request's first word ("turn on the lights" -> "on the
    lights"), so some rewrites break working turns. (Swapping on and off no longer reaches the
    assistant: the dialogue never runs a rewrite that does the opposite of what was said.)"""

    def __call__(self, text: str, context: RewriteContext) -> RewriteTrace | None:
        words = text.split()
        return None if len(words) < 3 else _trace(text, " ".join(words[1:]))


@pytest.fixture(scope="module")
def exact() -> Assistant:
    return Assistant(AssistantConfig(asr="exact"))


def _handle(assistant: Assistant, state: HomeState, text: str, area: str = "Living Room") -> HandledTurn:
    return assistant.handle(
        spoken=text,
        state=state,
        turn_id="t1",
        session_id="s1",
        user_id="u1",
        household_id=state.home.home_id,
        device=DeviceContext(device_id="d1", area=area),
        timestamp=NOW,
        rng=random.Random(0),
    )


def _with(assistant: Assistant, rewriter: Any) -> Assistant:
    return Assistant(assistant.config, asr=assistant.asr, nlu=assistant.nlu, rewriter=rewriter)


# --- the assistant ---------------------------------------------------------------------------------


def test_rewrite_rescues_a_failing_phrasing(exact: Assistant, home: Home) -> None:
    said = "kill the living room lights"
    plain = _handle(exact, HomeState.initial(home), said)
    assert plain.turn.result is not None and plain.turn.result.status == "no_match"

    rewriter = TableRewriter({said: "turn off the living room lights"})
    state = HomeState.initial(home)
    handled = _handle(_with(exact, rewriter), state, said)
    turn = handled.turn
    assert handled.rewritten and turn.rewrite is not None
    assert turn.rewrite.original_text == said and turn.rewrite.rule_id == "r1"
    assert turn.text == "turn off the living room lights"
    assert turn.asr is not None and turn.asr.text == said  # ASR trace untouched
    assert turn.nlu is not None and turn.nlu.intent == "HassTurnOff"
    assert turn.result is not None and turn.result.status == "success"
    assert state.states["light.living_room_lamp"] == "off"
    assert handled.effect_without_rewrite is None  # the original words do nothing
    context = rewriter.seen[0]
    assert (context.home, context.area_id(), context.user_id) == (home, "living_room", "u1")
    assert context.device is not None and context.device.device_id == "d1" and context.timestamp == NOW
    assert LOG_RECORD.validate_json(turn.model_dump_json()) == turn


class ThreeHypotheses:
    """A recogniser that mishears "turn off" and offers what was said as its second hypothesis."""

    name = "three"

    def transcribe(self, text: str, rng: random.Random, condition: object = None) -> AsrTrace:
        top = text.replace("turn off", "tern of")
        hyps = (top, text, top + " please")
        return AsrTrace(
            text=top,
            confidence=0.6,
            nbest=tuple(AsrHypothesis(text=h, confidence=0.6 / (i + 1)) for i, h in enumerate(hyps)),
            engine=self.name,
        )


def test_the_rewriter_sees_the_recognisers_other_hypotheses(exact: Assistant, home: Home) -> None:
    rewriter = TableRewriter({})
    config = AssistantConfig(asr="exact", rewrite_when="on_failure")
    assistant = Assistant(config, asr=ThreeHypotheses(), nlu=exact.nlu, rewriter=rewriter)
    _handle(assistant, HomeState.initial(home), "turn off the kitchen lights")
    context = rewriter.seen[0]
    assert context.failed is True
    assert context.nbest == ("turn off the kitchen lights", "tern of the kitchen lights please")
    # A recogniser with one hypothesis offers no alternatives.
    alone = TableRewriter({})
    _handle(_with(exact, alone), HomeState.initial(home), "turn off the kitchen lights")
    assert alone.seen[0].nbest == ()


def test_counterfactual_runs_the_original_on_a_copy(exact: Assistant, home: Home) -> None:
    # "turn off the lights" in the living room would turn off its lamp; the rewrite sends it to
    # the kitchen instead. The counterfactual says so, and does not touch the real state.
    state = HomeState.initial(home)
    state.states["light.kitchen_ceiling"] = "on"
    rewriter = TableRewriter({"turn off the lights": "turn off the kitchen lights"})
    handled = _handle(_with(exact, rewriter), state, "turn off the lights")
    assert handled.effect is not None and handled.effect.targets == frozenset({"light.kitchen_ceiling"})
    without = handled.effect_without_rewrite
    assert without is not None and without.targets == frozenset({"light.living_room_lamp"})
    assert state.states["light.living_room_lamp"] == "on"
    assert state.states["light.kitchen_ceiling"] == "off"


@pytest.mark.parametrize("rewriter", [Broken(), Weird()], ids=["raises", "wrong-type"])
def test_failing_rewriter_fails_open(
    exact: Assistant,
    home: Home,
    rewriter: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "_warned_rewrite_error", False)
    plain_state = HomeState.initial(home)
    plain = _handle(exact, plain_state, "turn off the lights")
    assistant = _with(exact, rewriter)
    state = HomeState.initial(home)
    with caplog.at_level(logging.WARNING, logger="selflearn.assistant.pipeline"):
        handled = _handle(assistant, state, "turn off the lights")
        _handle(assistant, HomeState.initial(home), "turn on the kitchen lights")
    assert handled == plain  # turn record, effect, NLU, resolution: exactly as without a rewriter
    assert state == plain_state
    assert not handled.rewritten and handled.turn.rewrite is None
    assert assistant.rewrite_errors == 2
    assert len([r for r in caplog.records if "rewriter" in r.getMessage()]) == 1  # logged once


@pytest.mark.parametrize("target", ["", "   ", "turn off the lights", " turn off  the lights "])
def test_empty_or_identical_rewrite_is_no_rewrite(exact: Assistant, home: Home, target: str) -> None:
    plain = _handle(exact, HomeState.initial(home), "turn off the lights")

    class Same:
        def __call__(self, text: str, context: RewriteContext) -> RewriteTrace:
            return RewriteTrace(original_text=text, rewritten_text=target, layer="global")

    assistant = _with(exact, Same())
    handled = _handle(assistant, HomeState.initial(home), "turn off the lights")
    assert handled == plain and assistant.rewrite_errors == 0


def test_trace_original_text_is_what_the_rewriter_was_given(exact: Assistant, home: Home) -> None:
    class Sloppy:
        def __call__(self, text: str, context: RewriteContext) -> RewriteTrace:
            return _trace("something else", "turn off the kitchen lights")

    handled = _handle(_with(exact, Sloppy()), HomeState.initial(home), "kill the kitchen lights")
    assert handled.turn.rewrite is not None
    assert handled.turn.rewrite.original_text == "kill the kitchen lights"


# --- the simulator ---------------------------------------------------------------------------------

SIM = SimulationConfig(households=2, days=1.0, seed=3, assistant=AssistantConfig(asr="exact"))


def _lines(folder: Path, kind: str) -> list[bytes]:
    return [line for p in sorted(folder.glob(f"{kind}-*.jsonl")) for line in p.read_bytes().splitlines()]


@pytest.fixture(scope="module")
def swapped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("swapped")
    simulate(SIM, out, rewriter=DropFirstWord())
    return out


def test_simulation_truth_says_what_the_rewrite_changed(swapped: Path) -> None:
    turns = [LOG_RECORD.validate_json(line) for line in _lines(swapped, "turns")]
    by_id = {t.turn_id: t for t in turns if isinstance(t, Turn)}
    raw_truth = [json.loads(line) for line in _lines(swapped, "truth")]
    rewritten = 0
    outcomes: set[tuple[bool, bool]] = set()
    for row in raw_truth:
        turn = by_id[row["turn_id"]]
        TRUTH_RECORD.validate_python(row)
        # The field is written exactly on the turns the rewriter changed.
        assert ("defect_without_rewrite" in row) == (turn.rewrite is not None), row["turn_id"]
        if turn.rewrite is not None:
            rewritten += 1
            assert turn.text == turn.rewrite.rewritten_text != turn.rewrite.original_text
            outcomes.add((row["defect"], row["defect_without_rewrite"]))
    assert rewritten > 10
    # The swap breaks requests that would have worked: defect now, not without the rewrite.
    assert (True, False) in outcomes
    manifest = json.loads((swapped / "manifest.json").read_text())
    assert manifest["rewrites"] == rewritten and manifest["rewriter"].endswith("DropFirstWord")


def test_users_react_to_the_rewritten_outcome(swapped: Path, tmp_path: Path) -> None:
    simulate(SIM, tmp_path)  # same seed, no rewriter
    plain = [json.loads(line) for line in _lines(tmp_path, "truth")]
    assert all("defect_without_rewrite" not in row for row in plain)
    with_rewrites = [json.loads(line) for line in _lines(swapped, "truth")]
    # Broken turns make users try again, so the rewritten run has more turns and more defects.
    assert len(with_rewrites) > len(plain)
    assert sum(r["defect"] for r in with_rewrites) > sum(r["defect"] for r in plain)


def test_rewritten_simulation_is_the_same_whatever_the_workers(
    swapped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pickle.dumps(DropFirstWord())  # workers get it by pickling where the platform cannot fork
    monkeypatch.setattr(simulator, "SHARD_SIZE", 1)  # two shards, so two workers really run
    one, two = tmp_path / "one", tmp_path / "two"
    simulate(SIM, one, rewriter=DropFirstWord())
    simulate(SimulationConfig(**{**SIM.__dict__, "workers": 2}), two, rewriter=DropFirstWord())
    assert len(list(two.glob("turns-*.jsonl"))) == 2
    for kind in ("turns", "truth", "homes"):
        assert _lines(one, kind) == _lines(two, kind) == _lines(swapped, kind)


def test_simulate_refuses_a_missing_rewrite_table(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from selflearn.cli import app
    from selflearn.core.errors import ConfigError

    missing = tmp_path / "missing"
    args = ["simulate", "--out", str(tmp_path / "out"), "--rewrite-table", str(missing)]
    res = CliRunner().invoke(app, args)
    assert isinstance(res.exception, ConfigError)
    assert f"{missing} is not a saved rewrite table" in str(res.exception)
    assert not (tmp_path / "out").exists()


# --- the store -------------------------------------------------------------------------------------


def _truth(turn_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "record_type": "truth",
        "schema_version": "1.0",
        "turn_id": turn_id,
        "goal": {"goal_id": "g1", "intent": "HassTurnOn", "slots": {"area": "kitchen"}, "targets": []},
        "intended_text": "turn on the kitchen lights",
        "phrasing_source": "templates",
        "attempt": 1,
        "action": "first",
        "rephrase_of": None,
        "defect": False,
        "failure_point": "correct",
        "in_scope": True,
        **extra,
    }


def _old_store(path: Path) -> dict[str, Any]:
    """A store as schema 1.0 wrote it: no ``defect_without_rewrite`` column, one truth row whose
    hash was computed over the 1.0 record (without the field)."""
    Store(path).close()
    old = _truth("t_old")
    row = {k: v for k, v in old.items() if k != "record_type"}
    digest = hashlib.blake2b(
        orjson.dumps(row, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS), digest_size=12
    ).hexdigest()
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE sim_truth DROP COLUMN defect_without_rewrite")
    con.execute("UPDATE meta SET value = '1.0' WHERE key = 'schema_version'")
    con.execute(
        "INSERT INTO sim_truth VALUES ('t_old', {'goal_id': 'g1', 'intent': 'HassTurnOn', "
        """'slots': '{"area":"kitchen"}', 'targets': []}, 'turn on the kitchen lights', 'templates', 1, """
        "'first', NULL, false, 'correct', true, '1.0', ?, 'old.jsonl')",
        [digest],
    )
    con.close()
    return old


def test_old_store_reads_read_only_and_upgrades_when_writable(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    old = _old_store(path)

    with Store(path, read_only=True) as store:  # not upgraded, still readable
        truth = store.truth()
        assert truth.column("turn_id").to_pylist() == ["t_old"]
        assert truth.column("defect_without_rewrite").to_pylist() == [None]
        assert list(store.turns()) == []

    feed = tmp_path / "truth.jsonl"
    new = _truth(
        "t_new", schema_version=SCHEMA_VERSION, defect=True, failure_point="nlu", defect_without_rewrite=False
    )
    feed.write_text(json.dumps(old) + "\n" + json.dumps(new) + "\n")
    with Store(path) as store:
        report = store.ingest([feed], quarantine_path=tmp_path / "q.jsonl")
        assert (report.stored, report.already_present, report.quarantined) == (1, 1, 0), report.reasons
        rows = {r["turn_id"]: r for r in store.truth().to_pylist()}
        assert rows["t_old"]["defect_without_rewrite"] is None
        assert rows["t_new"]["defect_without_rewrite"] is False and rows["t_new"]["defect"] is True
        with Store(tmp_path / "fresh.duckdb") as fresh:
            assert store.truth().schema == fresh.truth().schema
        version = store.query("SELECT value FROM meta WHERE key = 'schema_version'").column(0).to_pylist()
        assert version == [SCHEMA_VERSION]
    with Store(path, read_only=True) as store:
        assert store.count("sim_truth") == 2
