"""The neural rewriter's first stage: the home's language, damaged names found again, the home
check, dense retrieval and the exported sentence encoder."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from selflearn.core.delex import Delexicalizer
from selflearn.core.embed import StaticEmbedder
from selflearn.core.errors import ConfigError
from selflearn.core.home import Home
from selflearn.rewrite.dense import DenseIndex, Entry, home_entries
from selflearn.rewrite.home_candidates import SOURCES, HomeCandidates
from selflearn.rewrite.home_language import HomeLanguage, HomeLanguageConfig, normalize_pattern
from selflearn.rewrite.home_sentences import home_sentences
from selflearn.rewrite.resolves import HomeCheck, Reading
from selflearn.rewrite.spotting import repaired, spot_names
from tests.conftest import HOME, tiny_bert


@pytest.fixture(scope="module")
def language() -> HomeLanguage:
    return HomeLanguage(HomeLanguageConfig(per_group=16, per_template=8)).fit()


def test_the_templates_expand_into_bounded_patterns_with_placeholders(language: HomeLanguage) -> None:
    patterns = {p.pattern for p in language.patterns_}
    lights_off = {p.pattern for p in language.patterns_ if p.meaning == "HassTurnOff|area|domain=light|"}
    assert "turn off {area} light" in lights_off  # every template's plainest wording is kept
    assert len(lights_off) == 16
    assert all("{wildcard}" not in p for p in patterns)  # a wildcard's value cannot be filled
    assert all(p.pattern == normalize_pattern(p.pattern) for p in language.patterns_)
    groups: dict[tuple[str, str, str], int] = {}
    for p in language.patterns_:
        key = (p.intent, p.slots, p.fixed)
        groups[key] = groups.get(key, 0) + 1
    assert max(groups.values()) <= 16
    # the same seed, the same patterns; another seed, others
    again = HomeLanguage(HomeLanguageConfig(per_group=16, per_template=8)).fit()
    assert [p.pattern for p in again.patterns_] == [p.pattern for p in language.patterns_]
    other = HomeLanguage(HomeLanguageConfig(per_group=16, per_template=8, seed=8)).fit()
    assert {p.pattern for p in other.patterns_} != patterns


def test_a_wording_carries_the_list_values_it_chose(language: HomeLanguage) -> None:
    volume = [p for p in language.patterns_ if p.intent == "HassSetVolumeRelative" and p.values]
    assert volume and all(p.values.startswith("volume_step=") for p in volume)
    ups = {p.meaning for p in volume if "=up" in p.values}
    downs = {p.meaning for p in volume if "=down" in p.values}
    assert ups and downs and not ups & downs  # "turn it up" never means what "turn it down" does


def test_home_language_saves_and_loads(language: HomeLanguage, tmp_path: Path) -> None:
    language.save(tmp_path / "hl")
    back = HomeLanguage.load(tmp_path / "hl")
    assert back.patterns_ == language.patterns_
    assert back.by_slots_ == language.by_slots_


def test_patterns_a_home_cannot_serve_are_left_out(language: HomeLanguage) -> None:
    home = Home.from_dict(HOME)  # no fan, no cover
    rows = language.for_home(home)
    have = {e.domain for e in home.entities}
    kept = {language.patterns_[r].intent for r in rows if "fan" in language.patterns_[r].domains}
    assert all(not language.patterns_[r].domains or set(language.patterns_[r].domains) & have for r in rows)
    assert "HassFanSetSpeed" not in kept


def test_the_homes_sentences_say_its_own_names(language: HomeLanguage) -> None:
    from selflearn.rewrite.home_sentences import home_sentences

    home = Home.from_dict(HOME)
    sentences = home_sentences(language, home, per_target=3)
    names = {"kitchen ceiling", "living room lamp", "reading lamp", "tv", "front door", "thermostat"}
    areas = {"kitchen", "living room", "lounge", "bedroom"}
    assert sentences and all(set(s.names) <= names | areas | {"upstairs", "downstairs"} for s in sentences)
    assert any(s.text == "turn on kitchen ceiling" for s in sentences) or any(
        "kitchen ceiling" in s.text and s.meaning.startswith("HassTurnOn|") for s in sentences
    )
    per_target: dict[tuple[str, tuple[str, ...]], int] = {}
    for s in sentences:
        per_target[(s.meaning, s.names)] = per_target.get((s.meaning, s.names), 0) + 1
    assert max(per_target.values()) <= 3
    # an entity only where its domain fits: the lock is never a light's or a fan's target
    assert not any("front door" in s.names and "domain=light" in s.meaning for s in sentences)
    numbered = next(s for s in sentences if s.numbers == 1)
    assert numbered.with_numbers(["40"]) == numbered.text.replace("{number}", "40")
    assert numbered.with_numbers([]) is None and numbered.with_numbers(["1", "2"]) is None
    plain = next(s for s in sentences if s.numbers == 0)
    assert plain.with_numbers(["18"]) == plain.text  # a number the recogniser made up hides nothing


def test_a_damaged_name_is_said_as_the_homes_name() -> None:
    home = Home.from_dict(HOME)
    assert repaired("turn on the kitchen sealing", home) == "turn on the kitchen ceiling"
    assert repaired("turn off the reeding lamp", home) == "turn off the reading lamp"
    # names said right, plurals and common words are left alone
    assert repaired("turn on the kitchen ceiling", home) is None
    assert repaired("turn off the lights in the kitchen", home) is None
    assert repaired("turn on the the living room", home) is None
    assert spot_names("what time is it", home) == []


def test_a_name_left_short_that_several_names_hold_is_not_repaired_into_one() -> None:
    """ "ceiling light" is no damaged name in a home with a Den and a Kitchen Ceiling Light: which
    one was meant is for the area or a question to say (on the development replays the repair
    picked the den's and acted wrongly); held by one name only it is still completed."""
    home = Home.from_dict(
        {
            "home_id": "short",
            "areas": [{"id": "den", "name": "Den"}, {"id": "kitchen", "name": "Kitchen"}],
            "entities": [
                {"id": "light.den_ceiling_light", "name": "Den Ceiling Light", "area": "den"},
                {"id": "light.kitchen_ceiling_light", "name": "Kitchen Ceiling Light", "area": "kitchen"},
                {"id": "light.reading_lamp", "name": "Reading Lamp", "area": "den"},
            ],
        }
    )
    assert repaired("ceiling light off", home) is None
    assert repaired("turn off the reeding lamp", home) == "turn off the reading lamp"


def test_the_home_check_accepts_only_what_runs_here() -> None:
    home = Home.from_dict(HOME)
    check = HomeCheck()
    assert check.resolves("turn on the kitchen ceiling", home)
    assert check.resolves("turn off the lights in the kitchen", home)
    assert not check.resolves("turn off the lights in the garage", home)  # no such area
    assert not check.resolves("open the garage door", home)  # no such cover
    assert not check.resolves("kill the lights in the kitchen", home)  # no template says it


class CountingCheck(HomeCheck):
    """The home check, counting the sentences it reads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def read(self, text: str, home: Home, area_id: str | None = None, keep: bool = True) -> Reading | None:
        self.reads += 1
        return super().read(text, home, area_id, keep)


def test_a_homes_index_keeps_what_runs_there_and_a_request_reads_a_bounded_few(
    language: HomeLanguage, embedder: StaticEmbedder
) -> None:
    home = Home.from_dict(HOME)
    check = CountingCheck()
    source = HomeCandidates(language, embedder, check, reads=2)
    index = source.home_index(home)
    built = check.reads
    assert built == sum(1 for s in home_sentences(language, home) if not s.numbers)  # each read once
    assert index.texts and all(check.resolves(t, home) for t in index.texts if "{number}" not in t)
    assert len(index.readings) < built  # wordings the home's entities cannot serve are gone
    delex = Delexicalizer(home)
    check.reads = 0
    text = "switch off the lights in the kitchen"
    d = delex(text)
    found = source.candidates(text, d.pattern, d.values, home, None)
    assert any(c.reading.intent == "HassTurnOff" and "kitchen" in c.text for c in found)
    assert check.reads == 0  # names only: every wording's reading is known from the index
    text = "dim the kitchen ceiling to 30 percent"  # numbers: its wordings are read one by one
    d = delex(text)
    found = source.candidates(text, d.pattern, d.values, home, None)
    assert any(c.reading.intent == "HassLightSet" for c in found)
    assert 0 < check.reads <= 2 * len(SOURCES)  # at most 2 per search (84 without the bound)
    assert source.home_index(home) is index  # built once per home


def test_a_lock_said_on_or_off_gets_what_home_assistant_would_do_with_it(
    language: HomeLanguage, embedder: StaticEmbedder
) -> None:
    home = Home.from_dict(HOME)
    source = HomeCandidates(language, embedder, HomeCheck())
    delex = Delexicalizer(home)

    def actions(text: str) -> set[tuple[str, tuple[str, ...]]]:
        d = delex(text)
        found = source.candidates(text, d.pattern, d.values, home, None)
        # what a candidate is said to do is what its own words do ("front door light on" once
        # borrowed the reading of "lock front door": both a turn-on, the first for lights only)
        assert all(source.check.read(c.text, home, None) == c.reading for c in found)
        return {(c.reading.intent, c.reading.targets) for c in found}

    # "lock the front door" is Home Assistant's HassTurnOn of the lock; "unlock" its HassTurnOff
    assert ("HassTurnOn", ("lock.front_door",)) in actions("front door on please")
    assert ("HassTurnOn", ("lock.front_door",)) not in actions("turn off the front door")
    assert ("HassTurnOff", ("lock.front_door",)) in actions("turn off the front door")
    assert ("HassTurnOff", ("lock.front_door",)) not in actions("front door on please")
    # a request that says neither on nor off gets no lock or unlock chosen for it
    assert not any(intent in ("HassTurnOn", "HassTurnOff") for intent, _ in actions("the front door"))


def test_dense_search_stays_within_a_slot_signature(embedder: StaticEmbedder) -> None:
    index = DenseIndex(embedder).add(
        [
            Entry("turn off the lights in the {area}", "home", 0, "HassTurnOff"),
            Entry("turn on the lights in the {area}", "home", 1, "HassTurnOn"),
            Entry("turn off the {name}", "home", 2, "HassTurnOff"),
        ]
    )
    vector = embedder.encode_one("switch off the lights in the kitchen")
    found = index.search(vector, "area", 5)
    assert [e.pattern for e, _ in found][:1] == ["turn off the lights in the {area}"]
    assert all("{area}" in e.pattern for e, _ in found)
    assert index.search(vector, "floor", 5) == []
    assert [e.source for e, _ in index.search(vector, "area", 5, frozenset({"global"}))] == []


def test_home_entries_index_every_pattern(language: HomeLanguage, embedder: StaticEmbedder) -> None:
    index = DenseIndex(embedder).add(home_entries(language))
    assert len(index) == len(language)
    sims = [s for _, s in index.search(embedder.encode_one("what is the weather"), "", 3)]
    assert sims == sorted(sims, reverse=True) and np.isfinite(sims).all()


def test_an_exported_encoder_gives_the_networks_vectors(tmp_path: Path) -> None:
    """A tiny BERT exported the way the trained encoder is: ONNX Runtime's vectors are torch's."""
    base = tiny_bert(tmp_path / "tiny", layers=1)
    from selflearn.rewrite.encoder import SentenceEncoder
    from selflearn.rewrite.encoder_fit import EncoderConfig, Pair, fit_encoder

    pairs = [
        Pair("kill the lights in the kitchen", "turn off the lights in the kitchen", None, "off", "logs"),
        Pair("lights on in the kitchen", "turn on the lights in the kitchen", None, "on", "logs"),
    ]
    encoder = fit_encoder(pairs, tmp_path / "enc", EncoderConfig(batch_size=2), base=base, say=lambda _: None)
    assert isinstance(encoder, SentenceEncoder)
    texts = ["kill the lights in the kitchen", "what time is it"]
    vectors = encoder.encode(texts)
    assert vectors.shape == (2, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(encoder.encode_one(texts[1]), vectors[1], atol=1e-5)
    loaded = SentenceEncoder.load(tmp_path / "enc")
    assert loaded.metadata["steps"] == 1 and loaded.metadata["pairs"] == {"logs": 2}
    assert np.allclose(loaded.encode(texts), vectors, atol=1e-6)


def test_the_exported_encoder_averages_the_trained_weights_with_the_shipped_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``EncoderConfig.base_weight`` (WiSE-FT): every trained weight is exported as the average of
    its value after training and as shipped; weights that were not trained stay as shipped."""
    pytest.importorskip("torch")
    from selflearn.rewrite import encoder_fit
    from selflearn.rewrite.encoder_fit import EncoderConfig, Pair, fit_encoder

    base = tiny_bert(tmp_path / "tiny", layers=2)
    pairs = [
        Pair("kill the lights in the kitchen", "turn off the lights in the kitchen", None, "off", "logs"),
        Pair("lights on in the kitchen", "turn on the lights in the kitchen", None, "on", "logs"),
    ]
    exported: dict[str, dict[str, np.ndarray]] = {}
    export = encoder_fit.export_network

    def weights(name: str, pairs: list[Pair], base_weight: float) -> dict[str, np.ndarray]:
        def recording(torch: object, model: object, *args: object) -> Path:
            exported[name] = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}  # type: ignore[attr-defined]
            return export(torch, model, *args)  # type: ignore[arg-type]

        monkeypatch.setattr(encoder_fit, "export_network", recording)
        config = EncoderConfig(batch_size=2, learning_rate=1e-2, train_layers=1, base_weight=base_weight)
        fit_encoder(pairs, tmp_path / name, config, base=base, say=lambda _: None)
        return exported[name]

    shipped = weights("shipped", [], 0.5)
    trained = weights("trained", pairs, 0.0)
    averaged = weights("averaged", pairs, 0.5)
    moved = [name for name in trained if not np.array_equal(trained[name], shipped[name])]
    assert moved and all(".layer.1." in name for name in moved)  # the top layer trained, the rest as shipped
    for name, value in averaged.items():
        assert np.allclose(value, (trained[name] + shipped[name]) / 2, atol=1e-6), name
    with pytest.raises(ConfigError):
        EncoderConfig(base_weight=1.0)


@pytest.mark.slow
def test_a_neural_rewriter_trains_on_the_home_language_and_decides_the_same_after_loading(
    tmp_path: Path,
) -> None:
    """``FitConfig(home_language=True)``: the replay offers the home's sentences, the ranker reads
    their features, and the saved rewriter carries its home-language source and the single
    encoder trained on the same replayed requests (one layer here, to stay quick)."""
    pytest.importorskip("torch")
    from selflearn import SimulationConfig, Store, simulate
    from selflearn.core.hooks import RewriteContext
    from selflearn.rewrite import FitConfig, KnowledgeConfig, Rewriter, RewriterConfig
    from selflearn.rewrite.cross_encoder_fit import SingleEncoderConfig
    from selflearn.rewrite.features import ALL_FEATURES, FEATURES
    from selflearn.rewrite.logs import read_homes
    from selflearn.signals.defect import score_defects
    from selflearn.signals.rephrase import PairwiseRephraseBaseline, score_rephrases

    config = SimulationConfig(households=8, days=3, seed=9, household_prefix="nr", phrasing_split="train")
    simulate(config, tmp_path / "sim")
    with Store(tmp_path / "logs.duckdb") as store:
        store.ingest([tmp_path / "sim"])
        score_rephrases(store, PairwiseRephraseBaseline("lexical"))
        score_defects(store)
    training = FitConfig(knowledge=KnowledgeConfig(min_users=2), home_language=True, workers=1)
    with Store(tmp_path / "logs.duckdb", read_only=True) as store:
        single = SingleEncoderConfig(layers=1, max_pairs=512, batch_size=16)
        stages: list[str] = []
        rewriter = Rewriter(training=training).fit(
            store, progress=lambda s, *_: stages.append(s), single=single
        )
        homes = read_homes(store)
        failed = store.query(
            "SELECT text, household_id, device.area AS area FROM turns "
            "WHERE result.status <> 'success' ORDER BY turn_id LIMIT 60"
        ).to_pylist()
    assert rewriter.ranker_ is not None and rewriter.ranker_.features == ALL_FEATURES
    assert rewriter.retrieval.home is not None
    rewriter.save(tmp_path / "model")
    loaded = Rewriter.load(tmp_path / "model")
    assert loaded.retrieval.home is not None and loaded.ranker_ is not None
    assert loaded.ranker_.features == ALL_FEATURES
    assert rewriter.single_ is not None and loaded.single_ is not None and stages[-1] == "single"
    assert loaded.single_.metadata["pairs"] > 0 and loaded.single_.version == rewriter.single_.version
    static = Rewriter.load(tmp_path / "model", RewriterConfig(home_language=False))
    found_home = 0
    for rw in (rewriter, loaded, static):
        rw.homes.update(homes)
    # Loaded to serve, the home's sentences are built in the background: a home's first failed
    # request goes on without them; once built, the loaded rewriter decides as the trained one.
    source = loaded.retrieval.home
    assert not source.wait
    used = sorted({row["household_id"] for row in failed})
    assert source.ready(homes[used[0]]) is None
    deadline = time.monotonic() + 300
    while any(source.ready(homes[h]) is None for h in used):
        assert time.monotonic() < deadline, "the home's sentences were never built"
        time.sleep(0.05)
    for row in failed:
        ctx = RewriteContext(
            row["household_id"], home=homes[row["household_id"]], area=row["area"], failed=True
        )
        one, two = rewriter.rewrite_one(row["text"], ctx), loaded.rewrite_one(row["text"], ctx)
        assert (one.text, one.rewritten, round(one.score, 9)) == (
            two.text,
            two.rewritten,
            round(two.score, 9),
        )
        prep = loaded.prepare(row["text"], ctx)
        if prep is None:
            continue
        cands = loaded.retrieve(prep, ctx)[2]
        found_home += any(c.source == "home" for c in cands)
        # on the failure path only, and only when asked for
        assert not any(c.home for c in static.retrieve(prep, ctx)[2])
        unknown = RewriteContext(row["household_id"], home=homes[row["household_id"]], area=row["area"])
        assert not any(c.home for c in loaded.retrieve(prep, unknown)[2])
    assert found_home > 0
    # a static rewriter's ranker reads the static features only, and still loads
    assert FEATURES != ALL_FEATURES and set(FEATURES) < set(ALL_FEATURES)
