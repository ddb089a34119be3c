"""The community global layer (docs/community.md): what an install shares, the DP aggregator, signed
releases, installing one.

The installs' keys and contributions come from fixed seeds. The DP noise does not: pipeline-dp
draws it from python-dp's secure generator, which takes no seed (seeded noise would not be
private), so each DP assertion is one whose failure probability is far below 1e-6 or is checked
over repeated releases."""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from selflearn.cli import app as cli_app
from selflearn.community.aggregate import (
    AggregateConfig,
    AggregateReport,
    DuckDbAggregation,
    aggregate,
    evidence_table,
    read_contributions,
)
from selflearn.community.contribution import (
    Contribution,
    ContributionConfig,
    Evidence,
    build_contribution,
    period_of,
    period_range,
    read_contribution,
    refusal,
    weeks_ending,
    write_contribution,
)
from selflearn.community.enrolment import EnrolmentConfig, Register
from selflearn.community.keys import key_id, public_hex
from selflearn.community.ledger import Ledger
from selflearn.community.release import install_release, pack_release, verify_release, write_release
from selflearn.core.errors import ConfigError, DataError
from selflearn.core.home import Home
from selflearn.core.hooks import RewriteContext
from selflearn.core.schema import Review
from selflearn.core.store import Store
from selflearn.mining import DuckDbEngine
from selflearn.report import Decision, Outcomes, collect, render_html
from selflearn.report.views import from_community
from selflearn.rewrite.rewriter import Rewriter
from selflearn.rewrite.table import RewriteTable
from selflearn.service import ServiceConfig, create_app
from tests.conftest import HOME
from tests.test_mining import T0, Log

PERIOD = period_of(T0)
WEEK = timedelta(days=7)
KILL = ("kill the lights in the {area}", "turn off the lights in the {area}")


def _key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(random.Random(seed).randbytes(32))


def _contribute(
    folder: Path, seed: int, pairs: list[tuple[str, str]], helped: bool = True, period: str = PERIOD
) -> Path:
    """A signed contribution of one install (key from ``seed``) sharing ``pairs`` for ``period``."""
    key = _key(seed)
    records = [Evidence(a, b, rescues=1 if helped else 0, failed=0 if helped else 1) for a, b in pairs]
    c = Contribution(key_id(key), public_hex(key), period, {"max_patterns": 10, "max_count": 1}, records)
    suffix = "" if period == PERIOD else f"-{period}"
    return write_contribution(c, key, folder / f"install-{seed:05d}{suffix}.jsonl")


def _release(folder: Path, epsilon: float, delta: float = 1e-6, **config: Any) -> AggregateReport:
    cfg = AggregateConfig(epsilon=epsilon, delta=delta, **config)
    report = AggregateReport()
    return aggregate(read_contributions(folder, cfg, report=report), cfg, report=report)


def _pairs(report: AggregateReport) -> set[tuple[str, str]]:
    return {(r.failing, r.fixing) for r in report.released}


# --- what leaves an install ------------------------------------------------------------------------

PRIVATE_HOME = {
    "record_type": "home",
    "home_id": "home-plugh",
    "areas": [{"id": "nook", "name": "Quimbly Nook"}, {"id": "kitchen", "name": "Kitchen"}],
    "entities": [
        {"id": "light.zorblax_lamp", "name": "Zorblax Lamp", "area": "nook"},
        {"id": "light.kitchen", "name": "Kitchen Light", "area": "kitchen"},
    ],
}


def _private_store(tmp_path: Path) -> Path:
    log = Log()
    log.homes["home-plugh"] = PRIVATE_HOME
    for u in range(3):
        user = f"user-xyzzy-{u}"
        # a fix with the area's name in it: shared, as {area}
        log.session(
            user,
            "home-plugh",
            [("kill the lights in the quimbly nook", True)] * 1
            + [("turn off the lights in the quimbly nook", False)],
        )
        # a word of one of this home's names said alone: kept at home
        log.session(user, "home-plugh", [("turn on zorblax", True), ("switch on zorblax please", False)])
        # a name the assistant could not resolve: {unknown}, kept at home
        log.session(
            user,
            "home-plugh",
            [("turn on fluffernutter", True), ("turn on the kitchen light", False)],
            unresolved=("fluffernutter",),
        )
        # an e-mail address said aloud: scrubbed to {unknown}, kept at home
        log.session(
            user, "home-plugh", [("mail anna dot b at example dot com", True), ("send the mail", False)]
        )
    path = tmp_path / "install.duckdb"
    log.store(path).close()
    return path


def test_a_contribution_holds_no_household_names(tmp_path: Path) -> None:
    from selflearn.core.store import Store

    key = _key(1)
    with Store(_private_store(tmp_path), read_only=True) as store:
        contribution = build_contribution(DuckDbEngine(store), key, PERIOD)
    path = write_contribution(contribution, key, tmp_path / "c.jsonl")
    text = path.read_text().lower()
    for secret in ("quimbly", "nook", "zorblax", "fluffernutter", "plugh", "xyzzy", "anna", "example"):
        assert secret not in text, secret
    back = read_contribution(path)
    assert [(r.failing, r.fixing) for r in back.records] == [KILL]
    assert back.records[0].rescues == 1  # three users, clipped to max_count 1
    assert back.install == key_id(key) and back.period == PERIOD
    # what was kept at home is said (never written): the name word, the {unknown} name and address
    assert contribution.dropped == {
        "a word of this install's names": 1,
        "not a clean pattern (a name it could not resolve, an address, a number)": 2,
    }
    header = json.loads(text.splitlines()[0])
    assert header["format"] == "selflearn.community-contribution.v1"
    assert header["bounds"] == {"max_patterns": 10, "max_count": 1}
    # a period without turns shares nothing
    with Store(tmp_path / "install.duckdb", read_only=True) as store:
        assert build_contribution(DuckDbEngine(store), key, "2026-W30").records == []


def test_each_install_contribution_is_bounded(tmp_path: Path) -> None:
    log = Log()
    log.home("h1", ["Kitchen"])
    verbs = ["kill", "cut", "douse", "zap", "nix", "drop", "blank", "snuff"]
    for u in range(4):
        for verb in verbs:
            log.session(
                f"u{u}",
                "h1",
                [(f"{verb} the lights in the kitchen", True), ("turn off the lights in the kitchen", False)],
            )
    with log.store(tmp_path / "s.duckdb") as store:
        config = ContributionConfig(max_patterns=3, max_count=2)
        c = build_contribution(DuckDbEngine(store), _key(2), PERIOD, config)
    assert len(c.records) == 3
    assert all(r.rescues == 2 for r in c.records)  # four users each, clipped to 2
    assert c.dropped["over the bound of pairs per period"] == len(verbs) - 3
    path = write_contribution(c, _key(2), tmp_path / "c.jsonl")
    assert len(read_contribution(path).records) == 3
    with pytest.raises(DataError, match=r"field 'records': 3 records, more than the bound of 2"):
        read_contribution(path, max_patterns=2)


def test_wins_losses_and_verdicts_of_rules_are_shared(tmp_path: Path) -> None:
    log = Log()
    log.home("h1", ["Kitchen"])
    said, applied = "kill the lights in the kitchen", "turn off the lights in the kitchen"
    log.session("u1", "h1", [(applied, False)], rewrite=(said, applied))
    log.session("u2", "h1", [(applied, True)], rewrite=(said, applied))
    other = "switch off the lights in the {area}"
    verdicts = [
        Review(review_id="r1", pattern=KILL[0], target=KILL[1], decision="approved", timestamp=T0),
        Review(review_id="r2", pattern=KILL[0], target=other, decision="rejected", timestamp=T0),
        Review(review_id="r3", pattern=KILL[0], target=other, decision="approved", timestamp=T0 - WEEK),
    ]
    with log.store(tmp_path / "s.duckdb") as store:
        records = build_contribution(DuckDbEngine(store), _key(3), PERIOD, reviews=verdicts).records
    assert [(r.failing, r.fixing) for r in records] == [KILL, (KILL[0], other)]
    fix, rejected = records
    assert (fix.wins, fix.losses, fix.approved, fix.helped) == (1, 1, 1, 2 / 3)
    assert (rejected.approved, rejected.rejected, rejected.helped) == (0, 1, 0.0)  # last week's: not in


def test_a_no_to_did_you_mean_is_shared_as_declined(tmp_path: Path) -> None:
    log = Log()
    log.home("h1", ["Kitchen"])
    said, proposal = "kill the lights in the kitchen", "turn off the lights in the kitchen"
    for user in ("u1", "u2", "u1"):  # u1 said no twice: one user
        log.session(user, "h1", [(said, True)])
        log.rows[-1]["result"] = {"status": "question", "response_text": f"Did you mean {proposal}?"}
        log.rows[-1]["dialogue"] = {
            "act_id": f"a{log.n}",
            "role": "question",
            "kind": "confirm",
            "proposal": proposal,
            "answer": "no",
        }
    log.session("u3", "h1", [(said, True), (proposal, False)])  # a rescue by another user
    with log.store(tmp_path / "s.duckdb") as store:
        contribution = build_contribution(
            DuckDbEngine(store), _key(4), PERIOD, ContributionConfig(max_count=5)
        )
    (record,) = contribution.records
    assert (record.failing, record.fixing) == KILL
    assert (record.rescues, record.declined, record.helped) == (1, 2, 1 / 3)
    path = write_contribution(contribution, _key(4), tmp_path / "c.jsonl")
    assert '"declined": 2' in path.read_text() and read_contribution(path).records == [record]
    # A file without the field (as written before it existed, or with nothing declined) reads as 0.
    plain = Contribution(
        contribution.install,
        contribution.public_key,
        PERIOD,
        contribution.bounds,
        [Evidence(*KILL, rescues=1)],
    )
    path = write_contribution(plain, _key(4), tmp_path / "plain.jsonl")
    evidence = json.loads(path.read_text().splitlines()[1])
    assert "declined" not in evidence and read_contribution(path).records[0].declined == 0


def test_a_store_of_many_homes_contributes_per_household(tmp_path: Path) -> None:
    """One pass over a store of several households gives each the contribution it would make as
    an install of its own: its own pairs, filtered with its own names, bounded on its own."""
    from selflearn.community.contribution import evidence_by_household
    from selflearn.core.store import Store

    log = Log()
    log.homes["home-plugh"] = PRIVATE_HOME
    log.home("h2", ["Kitchen"], ["Zorblax Lamp"])
    for u in range(2):
        log.session(
            f"a{u}",
            "home-plugh",
            [
                ("kill the lights in the quimbly nook", True),
                ("turn off the lights in the quimbly nook", False),
            ],
        )
        # "zorblax" is a name in both homes: neither shares it
        log.session(f"a{u}", "home-plugh", [("turn on zorblax", True), ("switch on zorblax please", False)])
        log.session(f"b{u}", "h2", [("turn on zorblax", True), ("switch on zorblax please", False)])
        log.session(f"b{u}", "h2", [("cut the kitchen lights", True), ("turn off the kitchen lights", False)])
    path = tmp_path / "many.duckdb"
    log.store(path).close()
    with Store(path, read_only=True) as store:
        each = evidence_by_household(DuckDbEngine(store), PERIOD)
        alone = build_contribution(DuckDbEngine(store), _key(9), PERIOD).records
    assert sorted(each) == ["h2", "home-plugh"]
    assert [(r.failing, r.fixing, r.rescues) for r in each["home-plugh"][0]] == [(*KILL, 1)]
    assert [(r.failing, r.fixing) for r in each["h2"][0]] == [
        ("cut the {area} lights", "turn off the {area} lights")
    ]
    assert each["h2"][1] == {"a word of this install's names": 1}
    # the store as one install shares the union
    cut = ("cut the {area} lights", "turn off the {area} lights")
    assert {(r.failing, r.fixing) for r in alone} == {KILL, cut}


def test_periods_are_iso_weeks() -> None:
    start, end = period_range("2026-W10")
    assert (start.isoformat(), (end - start).days) == ("2026-03-02T00:00:00+00:00", 7)
    assert period_of(start) == "2026-W10"
    with pytest.raises(ConfigError, match="ISO week"):
        period_range("2026-03")


# --- the aggregator ----------------------------------------------------------------------------------

POPULAR = [
    (f"{verb} the lights in the {{area}}", "turn off the lights in the {area}") for verb in ("kill", "cut")
]
RARE = ("douse the {name}", "turn off the {name}")


def test_a_pair_too_few_installs_sent_is_not_released(tmp_path: Path) -> None:
    for seed in range(40):
        _contribute(tmp_path, seed, POPULAR)
    _contribute(tmp_path, 999, [RARE])
    # small epsilon: nothing one install sent can pass; a large pre-threshold refuses it too
    assert RARE not in _pairs(_release(tmp_path, epsilon=0.5))
    assert _pairs(_release(tmp_path, epsilon=50.0, min_installs=41)) == set()
    # statistically: at a high epsilon the popular pairs are released nearly every time, and the
    # rare one never (its probability is at most delta = 1e-6 per release)
    runs = [_pairs(_release(tmp_path, epsilon=20.0, max_patterns=2)) for _ in range(30)]
    assert sum(set(POPULAR) <= r for r in runs) >= 27
    assert not any(RARE in r for r in runs)


def test_noisy_counts_are_near_the_truth(tmp_path: Path) -> None:
    for seed in range(60):
        _contribute(tmp_path, seed, POPULAR[:1], helped=seed % 4 != 0)  # 3 in 4 helped
    report = _release(tmp_path, epsilon=40.0, max_patterns=1)
    (released,) = report.released
    assert abs(released.installs - 60) < 6 and abs(released.helped - 0.75) < 0.15


def test_a_release_pools_several_weeks_and_counts_an_install_once(tmp_path: Path) -> None:
    weeks = weeks_ending(PERIOD, 6)
    assert (len(weeks), weeks[-1], period_range(weeks[0])[0]) == (
        6,
        PERIOD,
        period_range(PERIOD)[0] - 5 * WEEK,
    )
    for w, week in enumerate(weeks):  # 10 new installs a week, and install 0 every week
        for seed in range(1 + 10 * w, 11 + 10 * w):
            _contribute(tmp_path, seed, [KILL], period=week)
        _contribute(tmp_path, 0, [KILL], period=week)
    _contribute(tmp_path, 999, [RARE], period=period_of(T0 + WEEK))  # after the window
    one = AggregateReport()
    assert len(read_contributions(tmp_path, AggregateConfig(1, 1e-6, period=PERIOD), report=one)) == 11
    assert (one.periods, one.other_periods) == ([PERIOD], 56)
    # six weeks: 61 distinct installs, kept with probability 1 to double precision at epsilon 1
    # (python-dp's probability_of_keep; one install's 10 a week would be at most 2.3e-4)
    config = AggregateConfig(epsilon=1, delta=1e-6, max_patterns=1, weeks=6)
    report = AggregateReport()
    pooled = read_contributions(tmp_path, config, report=report)
    assert (len(pooled), report.periods, report.other_periods) == (66, weeks, 1)
    merged = DuckDbAggregation().merged(evidence_table(pooled), config.max_patterns)
    assert len(merged) == 61, "install 0's six weeks count once"
    assert _pairs(aggregate(pooled, config, report=report)) == {KILL}


def test_an_installs_pairs_over_the_pooled_weeks_are_bounded_together() -> None:
    weeks = weeks_ending(PERIOD, 4)
    steady = ("douse the {name}", "turn off the {name}")
    files = [
        Contribution(
            "install-a",
            "",
            week,
            {},
            [Evidence(*steady, rescues=1)]
            + [
                Evidence(f"{verb} the {{name}} {w}", "turn on the {name}", rescues=1)
                for verb in ("fire", "wake")
            ],
        )
        for w, week in enumerate(weeks)
    ]
    rows = DuckDbAggregation().merged(evidence_table(files), 2)
    assert len(rows) == 2, "9 distinct pairs over four weeks, bounded to 2"
    assert ("install-a", steady, 1.0) in rows, "the pair sent every week is kept first"


def test_the_ledger_counts_a_release_once_per_install() -> None:
    book = Ledger()
    book.record(["a", "b", "a", "a"], "community-2026-W10-x", "2026-W10", 1.0, 1e-6)
    assert (book.spent("a"), book.spent("b")) == ((1.0, 1e-6), (1.0, 1e-6))


def test_colluding_installs_cannot_release_a_polarity_flip_or_a_sensitive_action(tmp_path: Path) -> None:
    attack = [
        ("turn off the lights in the {area}", "turn on the lights in the {area}"),  # polarity flip
        ("lock the {name}", "unlock the {name}"),  # sensitive and a flip
        ("open the {name}", "open the garage door"),  # sensitive target
        ("the {name}", "unlock the {name}"),  # chooses a sensitive action
        ("turn off the {area} fan", "turn off the {area} light"),  # another kind of thing
    ]
    for seed in range(200):  # a colluding group, far above any threshold
        _contribute(tmp_path, seed, [*attack, POPULAR[0]])
    report = _release(tmp_path, epsilon=50.0)
    assert _pairs(report) == {POPULAR[0]}
    assert sum(report.refused.values()) == 200 * len(attack)
    assert all(refusal(a, b) is not None for a, b in attack)


def test_a_malformed_contribution_is_quarantined_with_the_record_and_field(tmp_path: Path) -> None:
    good = _contribute(tmp_path, 1, POPULAR)
    lines = good.read_text().splitlines()

    def bad(name: str, content: str) -> None:
        (tmp_path / name).write_text(content)

    bad("a-not-json.jsonl", lines[0] + "\n{oops\n" + lines[-1] + "\n")
    record = json.loads(lines[1])
    bad("b-over-bound.jsonl", "\n".join([lines[0], json.dumps({**record, "rescues": 5}), *lines[2:]]) + "\n")
    raw = json.dumps({**record, "failing": "Turn on Quimbly"})
    bad("c-raw-text.jsonl", "\n".join([lines[0], raw, *lines[2:]]) + "\n")
    bad("d-edited.jsonl", good.read_text().replace("kill", "nuke"))  # edited after signing
    bad("e-huge.jsonl", lines[0] + "\n" + " " * (1 << 20) + "\n")
    report = AggregateReport()
    config = AggregateConfig(epsilon=1.0, delta=1e-6)
    accepted = read_contributions(tmp_path, config, report=report)
    assert [c.install for c in accepted] == [key_id(_key(1))]
    reasons = dict(report.quarantined)
    assert "line 2: not JSON" in reasons["a-not-json.jsonl"]
    assert (
        "record 1 (line 2): field 'rescues': expected an integer from 0 to 1" in reasons["b-over-bound.jsonl"]
    )
    assert "record 1 (line 2): field 'failing': not a delexicalized pattern" in reasons["c-raw-text.jsonl"]
    assert "field 'signature': does not verify" in reasons["d-edited.jsonl"]
    assert "more than a contribution may have" in reasons["e-huge.jsonl"]
    jail = tmp_path / "quarantine"
    for name, why in reasons.items():
        assert (jail / name).exists() and not (tmp_path / name).exists()  # moved, not lost
        assert (jail / f"{name}.reason.txt").read_text().strip() == why


# --- releases -------------------------------------------------------------------------------------


@pytest.fixture()
def release(tmp_path: Path) -> Path:
    folder = tmp_path / "contributions"
    folder.mkdir()
    for seed in range(80):
        _contribute(folder, seed, [KILL])
    config = AggregateConfig(epsilon=50.0, delta=1e-6)
    report = AggregateReport()
    aggregate(read_contributions(folder, config, report=report), config, report=report)
    manifest = write_release(report, config, _key(7), tmp_path / "release")
    assert manifest["privacy"]["epsilon"] == 50.0 and manifest["privacy"]["delta"] == 1e-6
    assert manifest["rules"] == 1 and "pipeline-dp 0.3.1" in manifest["privacy"]["library"]
    return tmp_path / "release"


def test_a_forged_or_modified_release_is_refused(release: Path, tmp_path: Path) -> None:
    trusted = _key(7).public_key()
    assert verify_release(release, trusted)["period"] == PERIOD
    with pytest.raises(ConfigError, match="does not verify with the aggregator key"):
        verify_release(release, _key(8).public_key())  # signed by someone else

    def tampered(change: Any) -> Path:
        copy = tmp_path / f"copy-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(release, copy)
        change(copy)
        return copy

    cases = {
        "was changed after signing": lambda f: (f / "released.jsonl").write_text("{}\n"),
        "rewrites.parquet was changed": lambda f: (f / "table" / "rewrites.parquet").write_bytes(b"x"),
        "not part of the signed release": lambda f: (f / "extra.txt").write_text("hi"),
        "is missing": lambda f: (f / "released.jsonl").unlink(),
        "signature does not verify": lambda f: (f / "manifest.json").write_text(
            (f / "manifest.json").read_text().replace('"epsilon": 50.0', '"epsilon": 0.1')
        ),
    }
    for message, change in cases.items():
        with pytest.raises(ConfigError, match=message):
            verify_release(tampered(change), trusted)
    with pytest.raises(ConfigError, match="does not verify"):
        install_release(release, _key(8).public_key(), tmp_path / "installed")
    assert not (tmp_path / "installed").exists()


def test_a_release_installs_as_a_rewriter_that_fixes_a_request(release: Path, tmp_path: Path) -> None:
    trusted = _key(7).public_key()
    archive = pack_release(release, tmp_path / "release.tar.gz")
    install_release(archive, trusted, tmp_path / "community")
    rewriter = Rewriter.load(tmp_path / "community")
    ctx = RewriteContext(household_id="h1", home=Home.from_dict(HOME), failed=True)
    decision = rewriter.rewrite_one("kill the lights in the kitchen", ctx)
    assert decision.text == "turn off the lights in the kitchen" and decision.layer == "precomputed"
    installed = json.loads((tmp_path / "community" / "community.json").read_text())
    assert installed["version"].startswith(f"community-{PERIOD}-")
    # the service's own reload swaps it in
    first = Rewriter.from_parts(
        table=RewriteTable.from_rules([(KILL[0], "switch off the lights in the {area}")])
    )
    first.save(tmp_path / "first")
    with TestClient(create_app(ServiceConfig(confirm="off", rewriter=tmp_path / "first"))) as client:
        body = {"text": "kill the lights in the kitchen", "household_id": "h1", "home": HOME}
        assert client.post("/v1/rewrite", json=body).json()["text"].startswith("switch off")
        res = client.post("/v1/admin/reload", json={"folder": str(tmp_path / "community")})
        assert res.status_code == 200, res.text
        assert client.post("/v1/rewrite", json=body).json()["text"] == "turn off the lights in the kitchen"


def test_a_release_installs_into_a_copy_of_a_base_rewriter(release: Path, tmp_path: Path) -> None:
    own = ("switch the {area} lights off", "turn off the lights in the {area}")
    clash = (KILL[0], "switch off the lights in the {area}")
    Rewriter.from_parts(table=RewriteTable.from_rules([own, clash])).save(tmp_path / "starter")
    install_release(release, _key(7).public_key(), tmp_path / "community", base=tmp_path / "starter")
    table = Rewriter.load(tmp_path / "community").table_
    assert table is not None
    active = {r["source"]: r["target"] for r in table.rows() if r["status"] == "active"}
    assert active == {own[0]: own[1], clash[0]: clash[1]}  # the base's own rule wins its source
    assert table.metadata["community_rules"] == 0


def test_the_report_says_which_rules_came_from_the_community(release: Path, tmp_path: Path) -> None:
    own = ("switch the {area} lights off", "turn off the lights in the {area}")
    Rewriter.from_parts(table=RewriteTable.from_rules([own])).save(tmp_path / "starter")
    manifest = install_release(
        release, _key(7).public_key(), tmp_path / "community", base=tmp_path / "starter"
    )
    table = Rewriter.load(tmp_path / "community").table_
    assert table is not None
    kill_id = next(r["rule_id"] for r in table.rows() if r["source"] == KILL[0])
    assert table.community() == (manifest["version"], frozenset({kill_id}))
    assert RewriteTable.from_rules([own]).community() == (None, frozenset())
    with Store(tmp_path / "logs.duckdb") as store:
        data = collect(store, table=tmp_path / "community" / "table")
    origin = {rule.source: rule.community for rule in data.rules}
    assert origin == {KILL[0]: manifest["version"], own[0]: None}
    html = render_html(data)
    row = html.split(f'data-rule-id="{kill_id}"')[1].split("</tr>")[0]
    assert f"release {manifest['version']}" in row
    logged = Decision(
        kill_id, kill_id, "precomputed", KILL[0], KILL[1], Outcomes(3, 3, 0, 0), 1.0, 2, None, 0, "", ""
    )
    assert from_community([logged], table)[0].community == manifest["version"]


def test_the_commands_contribute_aggregate_and_pull(tmp_path: Path) -> None:
    runner = CliRunner()
    store = _private_store(tmp_path)
    contributions = tmp_path / "contributions"
    res = runner.invoke(
        cli_app, ["community", "contribute", "--store", str(store), "--out", str(contributions / "me.jsonl")]
    )
    assert res.exit_code == 0, res.output
    assert f"1 pairs for {PERIOD}" in res.output and (tmp_path / "install.duckdb.install-key").exists()
    for seed in range(60):
        _contribute(contributions, seed, [KILL])
    (contributions / "broken.jsonl").write_text("{}\n")
    ledger = tmp_path / "ledger.json"

    def aggregate_to(out: str) -> Any:
        args = ["community", "aggregate", "-c", str(contributions), "--epsilon", "50", "--delta", "1e-6"]
        args += ["--out", str(tmp_path / out), "--key", str(tmp_path / "agg.key")]
        return runner.invoke(cli_app, [*args, "--ledger", str(ledger), "--max-epsilon", "80"])

    res = aggregate_to("release")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert (summary["contributions"], summary["quarantined"], summary["rules"]) == (61, 1, 1)
    spent = json.loads(ledger.read_text())["installs"]
    assert len(spent) == 61 and spent[key_id(_key(0))][0]["epsilon"] == 50.0
    # a second release of 50 would take every install past 80: none is admitted
    res = aggregate_to("again")
    assert isinstance(res.exception, ConfigError) and "61 over the --max-epsilon budget" in str(res.exception)
    res = runner.invoke(
        cli_app,
        [
            *("community", "pull", "--release", str(tmp_path / "release")),
            *("--public-key", str(tmp_path / "agg.key.pub"), "--out", str(tmp_path / "models" / "community")),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "installed community-" in res.output
    assert (
        RewriteTable.load(tmp_path / "models" / "community" / "table").lookup(
            "kill the lights in the kitchen", Home.from_dict(HOME)
        )
        is not None
    )


# --- enrolment --------------------------------------------------------------------------------------


def test_the_register_enrols_a_limited_number_of_keys_a_day(tmp_path: Path) -> None:
    book = Register()
    rules = EnrolmentConfig(max_per_day=2)
    day = datetime(2026, 2, 20, 9, tzinfo=UTC)
    for seed in (1, 2):
        assert book.enrol(public_hex(_key(seed)), rules, now=day)[2]
    install, entry, new = book.enrol(public_hex(_key(1)), rules, now=day + timedelta(hours=1))
    assert (install, new, entry.enrolled_at) == (key_id(_key(1)), False, day)  # keeps its first date
    with pytest.raises(
        ConfigError, match=r"2 install keys were enrolled on 2026-02-20 already \(the limit is 2"
    ):
        book.enrol(public_hex(_key(3)), rules, now=day + timedelta(hours=2))
    assert book.enrol(public_hex(_key(3)), rules, now=day + timedelta(days=1))[2]
    with pytest.raises(ConfigError, match="not an Ed25519 public key"):
        book.enrol("not a key", rules, now=day)
    book.save(tmp_path / "enrolment.json")
    assert Register.load(tmp_path / "enrolment.json") == book
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(ConfigError, match="holds no enrolment register"):
        Register.load(tmp_path / "bad.json")


def test_only_enrolled_keys_old_enough_count(tmp_path: Path) -> None:
    start = period_range(PERIOD)[0]
    book = Register()
    rules = EnrolmentConfig(max_per_day=100, min_age_days=7)
    for seed in range(3):  # a month before the period
        book.enrol(public_hex(_key(seed)), rules, now=start - timedelta(days=30))
    book.enrol(public_hex(_key(3)), rules, now=start - timedelta(days=2))  # enrolled for this period
    folder = tmp_path / "contributions"
    folder.mkdir()
    for seed in range(5):
        _contribute(folder, seed, [KILL])
    cfg = AggregateConfig(epsilon=1.0, delta=1e-6)
    kept, left = book.admitted(read_contributions(folder, cfg), rules)
    assert sorted(c.install for c in kept) == sorted(key_id(_key(s)) for s in range(3))
    why = dict(left)
    assert why[key_id(_key(4))] == "not enrolled"
    assert why[key_id(_key(3))].startswith(f"enrolled on {(start - timedelta(days=2)).date()}: counts from")
    # the same key id with another public key is not the enrolled install
    assert book.refusal(key_id(_key(0)), public_hex(_key(9)), start, rules) == "not enrolled"


def test_the_commands_enrol_and_aggregate_only_enrolled_installs(tmp_path: Path) -> None:
    runner = CliRunner()
    contributions = tmp_path / "contributions"
    contributions.mkdir()
    for seed in range(6):
        _contribute(contributions, seed, [KILL])
    register = tmp_path / "enrolment.json"
    (tmp_path / "install.key.pub").write_text(public_hex(_key(0)) + "\n")

    def enrol(key: str, *more: str) -> Any:
        return runner.invoke(
            cli_app, ["community", "enrol", "--register", str(register), "--public-key", key, *more]
        )

    res = enrol(str(tmp_path / "install.key.pub"))
    assert res.exit_code == 0, res.output
    assert f"enrolled install {key_id(_key(0))}" in res.output
    res = enrol(public_hex(_key(1)), "--max-per-day", "1")
    assert isinstance(res.exception, ConfigError) and "the limit is 1 a day" in str(res.exception)
    args = ["community", "aggregate", "-c", str(contributions), "--epsilon", "50", "--delta", "1e-6"]
    args += [
        "--out",
        str(tmp_path / "release"),
        "--key",
        str(tmp_path / "agg.key"),
        "--enrolment",
        str(register),
    ]
    res = runner.invoke(cli_app, args)  # enrolled today: too new for the period
    assert isinstance(res.exception, ConfigError)
    assert "(6 not enrolled or enrolled too recently)" in str(res.exception)
    res = runner.invoke(cli_app, [*args, "--min-key-age-days", "0"])
    assert isinstance(res.exception, ConfigError)  # only key 0 is enrolled; its period began before it was
    book = Register.load(register)
    book.keys[key_id(_key(0))] = replace(
        book.keys[key_id(_key(0))], enrolled_at=datetime(2020, 1, 1, tzinfo=UTC)
    )
    book.save(register)
    res = runner.invoke(cli_app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert (summary["contributions"], summary["not_enrolled"], summary["counted"]) == (6, 5, 1)


def test_the_aggregate_command_pools_weeks_and_records_each_install_once(tmp_path: Path) -> None:
    folder = tmp_path / "contributions"
    folder.mkdir()
    earlier = period_of(T0 - WEEK)
    for seed in range(3):
        _contribute(folder, seed, [KILL], period=earlier)
        _contribute(folder, seed, [KILL])
    args = ["community", "aggregate", "-c", str(folder), "--epsilon", "1", "--delta", "1e-6"]
    args += ["--key", str(tmp_path / "aggregator.key"), "--ledger", str(tmp_path / "ledger.json")]
    res = CliRunner().invoke(cli_app, [*args, "--weeks", "2", "--out", str(tmp_path / "release")])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert (summary["periods"], summary["contributions"], summary["installs"]) == ([earlier, PERIOD], 6, 3)
    manifest = json.loads((tmp_path / "release" / "manifest.json").read_text())
    assert (manifest["periods"], manifest["privacy"]["weeks"]) == ([earlier, PERIOD], 2)
    ledger = Ledger.load(tmp_path / "ledger.json")
    assert [ledger.spent(key_id(_key(seed)))[0] for seed in range(3)] == [1.0, 1.0, 1.0]
