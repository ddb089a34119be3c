from __future__ import annotations

import json
import math
import os
import random
import statistics
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from selflearn.assistant.execute import Effect
from selflearn.assistant.pipeline import AssistantConfig
from selflearn.core.errors import ConfigError
from selflearn.core.schema import LOG_RECORD, TRUTH_RECORD, Turn
from selflearn.evaluate.cache import same_population, simulation_fingerprint
from selflearn.simulation import simulator
from selflearn.simulation.goals import Goal, Kind, PhrasingPool, Popularity, popularity_ranks
from selflearn.simulation.phrasing import Phrasing
from selflearn.simulation.population import make_household
from selflearn.simulation.simulator import (
    SimulationConfig,
    load_phrasings,
    simulate,
    unmatched_failure_point,
)

CONFIG = SimulationConfig(households=3, days=1.0, seed=7, assistant=AssistantConfig(asr="noisy"))


def _read(folder: Path, kind: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sorted(folder.glob(f"{kind}-*.jsonl")):
        rows.extend(json.loads(line) for line in path.read_text().splitlines())
    return rows


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(CONFIG, out)
    return out


def test_same_seed_same_output_whatever_the_workers(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One household per shard, so the 3 households really are spread over 2 worker processes.
    monkeypatch.setattr(simulator, "SHARD_SIZE", 1)
    result = simulate(SimulationConfig(**{**CONFIG.__dict__, "workers": 2, "households": 3}), tmp_path)
    assert len(list(tmp_path.glob("turns-*.jsonl"))) == 3 and result.households == 3
    for kind in ("turns", "truth", "homes"):
        assert _read(tmp_path, kind) == _read(run, kind)


def test_different_seed_differs(run: Path, tmp_path: Path) -> None:
    simulate(SimulationConfig(**{**CONFIG.__dict__, "seed": 8}), tmp_path)
    assert _read(tmp_path, "turns") != _read(run, "turns")


def test_every_record_validates_and_truth_is_apart(run: Path) -> None:
    turns = _read(run, "turns")
    truth = _read(run, "truth")
    assert turns and truth
    turn_ids = set()
    for row in turns:
        record = LOG_RECORD.validate_python(row)
        assert "defect" not in row and "goal" not in row and "failure_point" not in row
        if isinstance(record, Turn):
            turn_ids.add(record.turn_id)
            assert record.asr is not None and record.nlu is not None and record.result is not None
    assert {TRUTH_RECORD.validate_python(t).turn_id for t in truth} == turn_ids


def test_rephrases_point_back_within_the_goal(run: Path) -> None:
    truth = {t["turn_id"]: t for t in _read(run, "truth")}
    said_no = {
        r["turn_id"] for r in _read(run, "turns") if r["record_type"] == "feedback" and r["answer"] == "no"
    }
    linked = [t for t in truth.values() if t["rephrase_of"]]
    assert linked, "a day of three households should contain retries"
    for t in linked:
        earlier = truth[t["rephrase_of"]]
        assert earlier["goal"]["goal_id"] == t["goal"]["goal_id"]
        assert earlier["attempt"] == t["attempt"] - 1
        # People retry after a failure, or after saying "no" to "did I get that right?".
        assert earlier["defect"] or earlier["turn_id"] in said_no


def test_failure_points_and_defects_agree(run: Path) -> None:
    for t in _read(run, "truth"):
        assert (t["failure_point"] == "correct") == (not t["defect"])


def test_household_generation_is_deterministic_and_valid() -> None:
    a, b = make_household(3, 5), make_household(3, 5)
    assert a.home == b.home and a.nicknames == b.nicknames
    assert a.home.entities and a.users and a.devices
    for key in a.nicknames:
        assert key in a.home.entity_by_id or key in a.home.area_by_id


def test_bad_simulation_config() -> None:
    with pytest.raises(ConfigError, match="households"):
        SimulationConfig(households=0)
    with pytest.raises(ConfigError, match="phrasing_split"):
        SimulationConfig(phrasing_split="dev")  # type: ignore[arg-type]


def _goal(intent: str, spoken: dict[str, str]) -> Goal:
    return Goal(
        goal_id="g1",
        kind=(intent, (), tuple(spoken)),
        slots=dict(spoken),
        spoken=spoken,
        nickname_used=frozenset(),
        expected=Effect(intent, frozenset({"light.ceiling"})),
    )


def test_an_unmatched_name_is_er_only_with_the_right_intent_and_a_named_target() -> None:
    nickname = _goal("HassTurnOn", {"name": "big light"})
    assert unmatched_failure_point({"name": "Big Light"}, "HassTurnOn", nickname) == "er"
    room = _goal("HassTimerStatus", {"area": "front room"})
    assert unmatched_failure_point({"area": "front room"}, "HassTimerStatus", room) == "er"
    # "we're out of bread" read as turning on a device called "bread": the item is not a target
    # and the reading's intent is wrong, so the sentence was not understood.
    shopping = _goal("HassShoppingListAddItem", {"item": "bread"})
    assert unmatched_failure_point({"name": "bread"}, "HassTurnOn", shopping) == "nlu"
    assert unmatched_failure_point({"item": "bread"}, "HassShoppingListAddItem", shopping) == "nlu"
    # The right intent but the unknown words are not the name the user said (a misparsed chunk),
    # or a value that is not a target at all.
    assert unmatched_failure_point({"name": "big light please now"}, "HassTurnOn", nickname) == "nlu"
    colour = _goal("HassLightSet", {"name": "desk lamp", "color": "warm white"})
    assert unmatched_failure_point({"color": "warm white"}, "HassLightSet", colour) == "nlu"
    assert unmatched_failure_point({"name": "big light"}, "HassTurnOff", nickname) == "nlu"
    assert unmatched_failure_point({}, "HassTurnOn", nickname) == "nlu"


# --- phrasing popularity ------------------------------------------------------------------------

ZIPF = SimulationConfig(**{**CONFIG.__dict__, "phrasing_popularity": "zipf"})


def test_default_output_is_the_explicit_uniform_law(run: Path, tmp_path: Path) -> None:
    assert CONFIG.phrasing_popularity == "uniform"
    simulate(SimulationConfig(**{**CONFIG.__dict__, "phrasing_popularity": "uniform"}), tmp_path)
    for kind in ("turns", "truth", "homes"):
        assert _read(tmp_path, kind) == _read(run, kind)


@pytest.fixture(scope="module")
def zipf_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zipf")
    simulate(ZIPF, out)
    return out


def test_zipf_differs_and_does_not_depend_on_the_workers(
    run: Path, zipf_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _read(zipf_run, "turns") != _read(run, "turns")
    monkeypatch.setattr(simulator, "SHARD_SIZE", 1)
    simulate(SimulationConfig(**{**ZIPF.__dict__, "workers": 2}), tmp_path)
    assert len(list(tmp_path.glob("turns-*.jsonl"))) == 3
    for kind in ("turns", "truth", "homes"):
        assert _read(tmp_path, kind) == _read(zipf_run, kind)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config"]["phrasing_popularity"] == "zipf"


def _largest_bucket(pool: PhrasingPool) -> tuple[Kind, str]:
    return max(
        ((kind, group) for kind, groups in pool.by_kind.items() for group in groups),
        key=lambda b: len(pool.by_kind[b[0]][b[1]]),
    )


def _draw_counts(popularity: Popularity) -> tuple[list[Phrasing], Counter[str]]:
    pool = PhrasingPool.build(load_phrasings(SimulationConfig()), popularity)
    kind, group = _largest_bucket(pool)
    user = make_household(0, 0).users[0]
    user = replace(user, traits=replace(user.traits, source_weights={group: 1.0}))
    rng = random.Random(0)
    drawn = Counter(pool.choose(kind, user, rng).pattern for _ in range(20_000))
    return pool.by_kind[kind][group], drawn


def test_zipf_concentrates_draws_on_the_popular_phrasings() -> None:
    members, drawn = _draw_counts("zipf")
    assert len(members) >= 20
    by_rank = [
        members[i].pattern for i in sorted(range(len(members)), key=popularity_ranks(members).__getitem__)
    ]
    top, median = drawn[by_rank[0]], drawn[by_rank[len(by_rank) // 2]]
    assert top > 5 * max(median, 1)
    members, drawn = _draw_counts("uniform")
    counts = [drawn[p.pattern] for p in members]
    assert max(counts) < 2 * statistics.median(counts)


def test_popularity_ranks_are_the_same_in_another_process() -> None:
    pool = PhrasingPool.build(load_phrasings(SimulationConfig()), "zipf")
    kind, group = _largest_bucket(pool)
    patterns = [p.pattern for p in pool.by_kind[kind][group]]
    code = (
        "import json, sys\n"
        "from selflearn.simulation.goals import popularity_ranks\n"
        "from selflearn.simulation.phrasing import Phrasing\n"
        "patterns = json.load(sys.stdin)\n"
        "print(json.dumps(popularity_ranks([Phrasing(p, 'HassTurnOn') for p in patterns])))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(patterns),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    ranks = popularity_ranks(pool.by_kind[kind][group])
    assert json.loads(found.stdout) == ranks and sorted(ranks) == list(range(1, len(ranks) + 1))


def test_a_zipf_population_never_reuses_a_uniform_cache(run: Path) -> None:
    assert same_population(run, CONFIG) and not same_population(run, ZIPF)
    assert simulation_fingerprint("noisy", CONFIG) == simulation_fingerprint("noisy")
    zipf2 = SimulationConfig(**{**ZIPF.__dict__, "popularity_exponent": 2.0})
    prints = {simulation_fingerprint("noisy", c) for c in (CONFIG, ZIPF, zipf2)}
    assert len(prints) == 3


def test_bad_popularity_settings() -> None:
    with pytest.raises(ConfigError, match="phrasing_popularity"):
        SimulationConfig(phrasing_popularity="pareto")  # type: ignore[arg-type]
    for bad in (0.0, -1.0, math.nan, math.inf, "1"):
        with pytest.raises(ConfigError, match="popularity_exponent"):
            SimulationConfig(phrasing_popularity="zipf", popularity_exponent=bad)  # type: ignore[arg-type]
