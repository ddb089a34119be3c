"""Rewrite mining on small hand-written logs whose right answer is obvious."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from selflearn.core.delex import Delexicalizer, fill
from selflearn.core.errors import ConfigError, DataError, StoreError
from selflearn.core.guards import changes_target, flips_polarity, is_sensitive
from selflearn.core.home import Home
from selflearn.core.hooks import RewriteContext
from selflearn.core.schema import DeviceContext
from selflearn.core.store import Store
from selflearn.mining import DuckDbEngine, MiningConfig, RewriteMiner
from selflearn.mining.markov import FAILURE, SUCCESS, absorbing_chain
from selflearn.rewrite import RewriteTable

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
LOOSE = MiningConfig(min_users=5, min_households=2, min_source_turns=1, min_target_turns=1)


def _home(home_id: str, areas: list[str], names: list[str]) -> dict[str, Any]:
    return {
        "record_type": "home",
        "home_id": home_id,
        "areas": [{"id": a.lower().replace(" ", "_"), "name": a} for a in areas],
        "entities": [{"id": f"light.{n.lower().replace(' ', '_')}", "name": n, "area": None} for n in names],
    }


class Log:
    """Builds turns, homes and their signals, then ingests them into a store."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.defects: list[dict[str, Any]] = []
        self.rephrases: list[dict[str, Any]] = []
        self.homes: dict[str, dict[str, Any]] = {}
        self.n = 0

    def home(self, home_id: str, areas: list[str], names: list[str] = ()) -> None:  # type: ignore[assignment]
        self.homes[home_id] = _home(home_id, areas, list(names))

    def session(
        self,
        user: str,
        home: str,
        texts: list[tuple[str, bool]],
        unresolved: tuple[str, ...] = (),
        rewrite: tuple[str, str] | None = None,
    ) -> None:
        """One reformulation session: (text, failed) per turn, each rephrasing the one before.
        ``rewrite=(original, rewritten)`` marks the first turn as already rewritten."""
        self.n += 1
        when = T0 + timedelta(hours=self.n)
        previous = None
        for i, (text, failed) in enumerate(texts):
            turn_id = f"{home}-{user}-{self.n}-{i}"
            row: dict[str, Any] = {
                "record_type": "turn",
                "turn_id": turn_id,
                "session_id": f"{home}-{user}-{self.n}",
                "user_id": user,
                "household_id": home,
                "timestamp": (when + timedelta(seconds=8 * i)).isoformat(),
                "device": {"device_id": f"{home}-speaker"},
                "text": text,
                "er": {"ok": not failed, "unresolved": list(unresolved) if failed else []},
            }
            if rewrite is not None and i == 0:
                row["rewrite"] = {
                    "original_text": rewrite[0],
                    "rewritten_text": rewrite[1],
                    "layer": "precomputed",
                }
                row["text"] = rewrite[1]
            self.rows.append(row)
            self.defects.append({"turn_id": turn_id, "p_defect": 0.9 if failed else 0.1})
            self.rephrases.append({"turn_id": turn_id, "rephrase_of": previous})
            previous = turn_id

    def store(self, path: Path) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True)
        jsonl = path.parent / f"{path.stem}.jsonl"
        with jsonl.open("w") as fh:
            for record in [*self.homes.values(), *self.rows]:
                fh.write(json.dumps(record) + "\n")
        store = Store(path)
        report = store.ingest([jsonl])
        assert report.quarantined == 0, report.summary()
        now = datetime.now(UTC)
        store.save_signals(
            "defects",
            [
                {**d, "p_heuristic": d["p_defect"], "reasons": [], "model": "test", "scored_at": now}
                for d in self.defects
            ],
        )
        store.save_signals(
            "rephrases",
            [{**r, "p_rephrase": 0.9, "model": "test", "scored_at": now} for r in self.rephrases],
        )
        return store


def _mine(log: Log, tmp_path: Path, config: MiningConfig = LOOSE) -> RewriteTable:
    with log.store(tmp_path / "logs.duckdb") as store:
        return RewriteMiner(config).fit(DuckDbEngine(store)).mined()


def _users_fix(log: Log, users: int, homes: int, bad: str, good: str, area: str = "Kitchen") -> None:
    for u in range(users):
        home = f"h{u % homes}"
        log.home(home, [area, "Bedroom"])
        log.session(f"{home}u{u}", home, [(bad, True), (good, False)])


def _rules(table: RewriteTable) -> dict[str, str]:
    return {r["source"]: r["target"] for r in table.rows() if r["status"] == "active"}


# --- the Markov chain ---------------------------------------------------------------------------


def test_absorption_probabilities_match_the_closed_form() -> None:
    # a: 2 of 10 succeed, 8 move to b; b: 3 of 4 succeed, 1 fails. P(success | a) = 0.2 + 0.8 * 0.75.
    chain = absorbing_chain([("a", SUCCESS, 2), ("a", "b", 8), ("b", SUCCESS, 3), ("b", FAILURE, 1)])
    i = chain.index()
    assert chain.absorb_success[i["a"]] == pytest.approx(0.8)
    assert chain.absorb_success[i["b"]] == pytest.approx(0.75)
    assert chain.direct_success[i["a"]] == pytest.approx(0.2)
    # A loop (a -> b -> a) still solves: from b, 0.5 success now, else back to a.
    loop = absorbing_chain([("a", "b", 1), ("b", "a", 1), ("b", SUCCESS, 1), ("a", FAILURE, 1)])
    j = loop.index()
    # x_a = 0.5 * x_b, x_b = 0.5 + 0.5 * x_a -> x_b = 2/3, x_a = 1/3
    assert loop.absorb_success[j["a"]] == pytest.approx(1 / 3)
    assert loop.absorb_success[j["b"]] == pytest.approx(2 / 3)
    assert loop.components == 1
    # A pattern only ever reached (never left: its turns were all rewritten) is a sink of
    # unknown outcome: no evidence of its own, and no success credited to what leads to it.
    sink = absorbing_chain([("a", "b", 3), ("a", SUCCESS, 1)])
    k = sink.index()
    assert sink.turns[k["b"]] == 0 and sink.absorb_success[k["b"]] == 0.0
    assert sink.absorb_success[k["a"]] == pytest.approx(0.25)


# --- delexicalization and guards -----------------------------------------------------------------


def test_delexicalizer_pools_homes_and_fills_back() -> None:
    home = Home.from_dict(_home("x", ["Kitchen", "Living Room"], ["Living Room Ceiling"]))
    d = Delexicalizer(home)
    out = d("Turn on the Living Room Ceiling at 75 percent!")
    assert out.pattern == "turn on the {name} at {number} percent"
    assert fill("set {name} to {number} percent", out.values) == "set living room ceiling to 75 percent"
    other = Delexicalizer(Home.from_dict(_home("y", ["Bedroom"], [])))
    assert d("lights off in the kitchen please").pattern == other("lights off in the bedroom please").pattern
    assert d("switch on the big light", ["big light"]).pattern == "switch on the {unknown}"
    assert fill("{area} lights off", ()) is None
    assert d("Hey, can you turn off the kitchen light please?").pattern == "turn off the {area} light"
    assert d("please").pattern == "please"


def test_guards_catch_flips_target_changes_and_sensitive_requests() -> None:
    assert flips_polarity("turn off the {area} light", "turn on the {area} light")
    assert flips_polarity("lock the door", "unlock the door")
    assert not flips_polarity("kill the lights in the {area}", "turn off the lights in the {area}")
    assert changes_target("lights off in the {area}", "turn off the lights")
    assert not changes_target("{area} lights off", "turn off the {area} lights")
    assert is_sensitive("open the garage")
    assert is_sensitive("turn on {name}", domains={"lock"})
    assert not is_sensitive("turn on {name}", domains={"light"})


# --- mining end to end --------------------------------------------------------------------------


def test_a_failing_phrasing_is_rewritten_to_what_users_said_next(tmp_path: Path) -> None:
    log = Log()
    _users_fix(log, 6, 3, "lights out in the kitchen", "turn off the lights in the kitchen")
    table = _mine(log, tmp_path)
    assert _rules(table) == {"lights out in the {area}": "turn off the lights in the {area}"}
    row = table.rows()[0]
    assert row["users"] == 6 and row["households"] == 3
    assert row["p_source"] < 0.2 and row["p_target"] > 0.8
    # Applied in another home, with that home's room.
    home = Home.from_dict(_home("new", ["Guest Room"], []))
    context = RewriteContext("new", "u", home, None, T0, DeviceContext(device_id="d"))
    trace = table("Lights out in the guest room", context)
    assert trace is not None and trace.rewritten_text == "turn off the lights in the guest room"
    assert trace.layer == "precomputed" and trace.rule_id == row["rule_id"]
    assert table("turn off the lights in the guest room", context) is None


def test_the_mine_command_lists_the_rules_it_mined(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from selflearn.cli import app

    log = Log()
    _users_fix(log, 6, 3, "lights out in the kitchen", "turn off the lights in the kitchen")
    log.store(tmp_path / "logs.duckdb").close()
    args = ["mine", "--store", str(tmp_path / "logs.duckdb"), "--out", str(tmp_path / "t"), "-k", "3"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    rule = "'lights out in the {area}' -> 'turn off the lights in the {area}' (6 users, 3 homes)"
    assert rule in res.output


def test_fewer_than_k_users_never_make_a_global_rewrite(tmp_path: Path) -> None:
    log = Log()
    _users_fix(log, 4, 4, "lights out in the kitchen", "turn off the lights in the kitchen")
    assert _rules(_mine(log, tmp_path / "a")) == {}
    log2 = Log()
    # Many sessions, but still only 4 distinct users: support is counted in users, not sessions.
    for _ in range(5):
        _users_fix(log2, 4, 4, "lights out in the kitchen", "turn off the lights in the kitchen")
    table = _mine(log2, tmp_path / "b")
    assert _rules(table) == {}
    assert table.metadata["report"]["rejected"].get("target: fewer than k users", 0) == 1


def test_household_names_never_enter_the_table(tmp_path: Path) -> None:
    log = Log()
    # Configured names are placeholders, so they pool: "the reading nook lamp" is a {name}.
    for u in range(6):
        home = f"h{u % 3}"
        log.home(home, ["Kitchen"], ["Reading Nook Lamp"])
        log.session(
            f"{home}u{u}", home, [("reading nook lamp on", True), ("turn on the reading nook lamp", False)]
        )
    # One household's nickname, used by six of its members: never global.
    log.home("hx", ["Kitchen"], ["Kitchen Ceiling"])
    for u in range(6):
        log.session(f"hxu{u}", "hx", [("glow worm off", True), ("turn off the kitchen ceiling", False)])
    # A nickname the assistant reported as unknown, across many homes: stays out too.
    for u in range(6):
        home = f"hn{u}"
        log.home(home, ["Kitchen"], ["Kitchen Ceiling"])
        log.session(
            f"{home}u",
            home,
            [("turn on the telly", True), ("turn on the kitchen ceiling", False)],
            ("telly",),
        )
    table = _mine(log, tmp_path)
    assert _rules(table) == {"{name} on": "turn on the {name}"}
    text = json.dumps(table.rows())
    for name in ("reading nook", "glow worm", "kitchen ceiling", "telly"):
        assert name not in text


def test_polarity_flips_and_sensitive_rewrites_need_more_evidence(tmp_path: Path) -> None:
    log = Log()
    _users_fix(log, 8, 4, "kitchen lights off please", "turn on the lights in the kitchen")
    _users_fix(log, 6, 3, "garage shut", "close the garage door")
    table = _mine(log, tmp_path)
    assert _rules(table) == {}  # a flip (down -> on) and a sensitive rewrite with only 6 users
    log2 = Log()
    _users_fix(log2, 10, 5, "garage shut", "close the garage door")
    assert _rules(_mine(log2, tmp_path / "b")) == {"garage shut": "close the garage door"}


def test_a_rewrite_never_swaps_one_action_for_another(tmp_path: Path) -> None:
    # Eight users in four homes followed "kitchen radio on" with "mute the radio in the kitchen":
    # enough users for a rewrite, but "on" is not "mute" (the mining replay showed "on tv" ->
    # "set tv to mute" for users who wanted the tv on).
    log = Log()
    _users_fix(log, 8, 4, "kitchen radio on", "mute the radio in the kitchen")
    table = _mine(log, tmp_path)
    assert _rules(table) == {}
    assert table.metadata["report"]["rejected"].get("target: polarity, action or target change") == 1
    # The same evidence for the same action passes.
    log2 = Log()
    _users_fix(log2, 8, 4, "kitchen radio on", "turn on the radio in the kitchen")
    assert _rules(_mine(log2, tmp_path / "b")) == {"{area} radio on": "turn on the radio in the {area}"}


def test_loading_a_table_mined_before_the_action_guard_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = Log()
    _users_fix(log, 8, 4, "kitchen radio on", "turn on the radio in the kitchen")
    mined = _mine(log, tmp_path / "a")
    assert mined.unguarded() == []
    folder = mined.save(tmp_path / "ok")
    with caplog.at_level(logging.WARNING, logger="selflearn.rewrite.table"):
        RewriteTable.load(folder)
    assert not caplog.records
    # The same row as an older miner could have written it: "on" rewritten to "mute".
    rows = mined.rows()
    rows[0]["target"] = "mute the radio in the {area}"
    old = RewriteTable.from_rows(rows, dict(mined.metadata)).save(tmp_path / "old")
    with caplog.at_level(logging.WARNING, logger="selflearn.rewrite.table"):
        loaded = RewriteTable.load(old)
    assert [r["target"] for r in loaded.unguarded()] == ["mute the radio in the {area}"]
    (message,) = [r.getMessage() for r in caplog.records]
    assert "'{area} radio on' -> 'mute the radio in the {area}'" in message
    assert "not applied" in message and "selflearn mine" in message
    # ... and it is refused at serve time, where the guarded table rewrites.
    home = Home.from_dict(log.homes["h0"])
    hit = mined.lookup("kitchen radio on", home)
    assert hit is not None and hit[0] == "turn on the radio in the kitchen"
    assert loaded.lookup("kitchen radio on", home) is None

    # The evidence bar is the miner's own (guards.overwhelming): 60 users and a 0.97 success rate
    # let the swap through only with twice the margin (0.6) over the source, twice that again
    # when the rewrite is sensitive.
    def flagged(**changes: object) -> bool:
        row = {**rows[0], "users": 60, "p_target": 0.97, **changes}
        return bool(RewriteTable.from_rows([row], dict(mined.metadata)).unguarded())

    assert flagged(p_source=0.5) and not flagged(p_source=0.3)
    assert flagged(p_source=0.3, users=49) and flagged(p_source=0.3, sensitive=True)


def test_a_deployed_rewrite_that_works_worse_is_demoted(tmp_path: Path) -> None:
    log = Log()
    _users_fix(log, 6, 3, "lights out in the kitchen", "turn off the lights in the kitchen")
    # Before deployment the source worked 3 times in 12 (6 failures above, 3 of 6 here) ...
    for u in range(6):
        log.session(f"h{u % 3}u{u}", f"h{u % 3}", [("lights out in the kitchen", u >= 3)])
    # ... but after deployment the rewrite failed 30 times out of 30.
    for u in range(30):
        log.session(
            f"h{u % 3}u{u}",
            f"h{u % 3}",
            [("turn off the lights in the kitchen", True)],
            rewrite=("lights out in the kitchen", "turn off the lights in the kitchen"),
        )
    table = _mine(log, tmp_path)
    rows = table.rows()
    assert [r["status"] for r in rows] == ["demoted"]
    assert rows[0]["deployed_turns"] == 30 and rows[0]["deployed_success"] == 0
    assert rows[0]["p_worse_after"] >= 0.95
    assert len(table) == 0  # nothing active to apply


def test_table_round_trips_and_mining_is_deterministic(tmp_path: Path) -> None:
    log = Log()
    _users_fix(log, 6, 3, "lights out in the kitchen", "turn off the lights in the kitchen")
    first = _mine(log, tmp_path / "a")
    second = _mine(log, tmp_path / "b")
    assert first.rows() == second.rows()
    folder = first.save(tmp_path / "table")
    loaded = RewriteTable.load(folder)
    assert loaded.rows() == first.rows()
    assert loaded.version == first.version == second.version
    meta = json.loads((folder / "model.json").read_text())
    assert meta["format"] == "selflearn.rewrites.v2" and meta["report"]["turns"] == 12
    assert meta["config"]["min_users"] == 5


def test_noise_changes_counts_not_rules(tmp_path: Path) -> None:
    log = Log()
    _users_fix(log, 6, 3, "lights out in the kitchen", "turn off the lights in the kitchen")
    plain = _mine(log, tmp_path / "a")
    noisy = _mine(log, tmp_path / "b", MiningConfig(**{**LOOSE.__dict__, "noise_epsilon": 0.5}))
    assert _rules(noisy) == _rules(plain)
    counts = ("support", "users", "households", "source_turns", "target_turns")
    assert any(noisy.column(c) != plain.column(c) for c in counts)


def test_bad_inputs_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is not a saved rewrite table \(missing model.json\)"):
        RewriteTable.load(tmp_path)
    with pytest.raises(ConfigError):
        MiningConfig(min_users=0)
    with Store(tmp_path / "empty.duckdb") as store, pytest.raises(DataError, match="no scored turns"):
        RewriteMiner().fit(DuckDbEngine(store)).mined()
    log = Log()
    _users_fix(log, 1, 1, "lights out", "lights off")
    with log.store(tmp_path / "unscored.duckdb") as store:
        store.con.execute("DELETE FROM defects")
        with pytest.raises(StoreError, match="run `selflearn signals`"):
            DuckDbEngine(store)


def test_a_rephrase_that_was_rewritten_still_counts_as_the_source_failing(tmp_path: Path) -> None:
    log = Log()
    _users_fix(log, 6, 3, "lights out in the kitchen", "turn off the lights in the kitchen")
    # The failed turn is followed by a reformulation that the deployed table rewrote: the first
    # turn still failed (it must not vanish from the source's evidence).
    log.session("h0u0", "h0", [("kitchen lights out", True), ("lights out in the kitchen", False)])
    log.rows[-1]["rewrite"] = {
        "original_text": "lights out in the kitchen",
        "rewritten_text": "turn off the lights in the kitchen",
        "layer": "precomputed",
    }
    log.rows[-1]["text"] = "turn off the lights in the kitchen"
    table = _mine(log, tmp_path)
    report = table.metadata["report"]
    assert report["turns"] == 14 and report["organic_turns"] == 13
    assert report["candidate_sources"] >= 1
    assert "considered" not in report["rejected"]
