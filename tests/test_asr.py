"""Tests of the ASR channels and the domain language model builder."""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import math
import random
import re
import shutil
from pathlib import Path

import pytest

from selflearn.assistant.asr import (
    ASR,
    CLEAN,
    ConfusionModel,
    ExactASR,
    NoisyASR,
    RealASR,
    SpeechCondition,
    align_words,
    calibrate,
    channel_fingerprint,
    make_asr,
    normalize_exact,
    sample_condition,
    word_error_rate,
    word_errors,
)
from selflearn.assistant.asr.confusion import FORMAT
from selflearn.assistant.lm import build_arpa, domain_sentences
from selflearn.core.errors import ConfigError
from selflearn.core.schema import AsrTrace
from selflearn.core.text import normalize_spoken, number_to_words

# --------------------------------------------------------------------------------------------
# Exact channel and normalization


def test_exact_asr_normalizes() -> None:
    asr = ExactASR()
    trace = asr.transcribe("Turn ON the Kitchen's lights, please!", random.Random(0))
    assert isinstance(trace, AsrTrace)
    assert trace.text == "turn on the kitchen's lights please"
    assert trace.confidence == 1.0
    assert trace.engine == "exact"
    assert [h.text for h in trace.nbest] == [trace.text]
    assert normalize_exact("Set it to 21.5 degrees at 7:30.") == "set it to 21.5 degrees at 7:30"
    assert normalize_exact("Brightness 50%") == "brightness 50 percent"
    assert isinstance(asr, ASR)


def test_spoken_normalization() -> None:
    assert normalize_spoken("Set brightness to 50%!") == "set brightness to fifty percent"
    assert (
        normalize_spoken("21.5 degrees on the 2nd floor")
        == "twenty one point five degrees on the second floor"
    )
    assert number_to_words(2700) == "two thousand seven hundred"
    assert normalize_spoken("What's up?") == "what's up"


def test_alignment_and_wer() -> None:
    steps = align_words(["turn", "on", "the", "light"], ["turn", "the", "lights", "on"])
    assert sum(1 for r, h in steps if r != h) == 3
    assert align_words(["a", "b"], ["a", "x", "b"]) == [("a", "a"), (None, "x"), ("b", "b")]
    assert word_errors("pause the music", "cause the music") == (1, 3)
    assert word_error_rate([("a b c d", "a b c d"), ("a b c d", "a x c")]) == pytest.approx(2 / 8)


def test_speech_condition() -> None:
    rng = random.Random(3)
    conditions = [sample_condition(rng) for _ in range(300)]
    assert {c.voice for c in conditions} >= {"slt", "kal", "awb", "rms"}
    assert all(0.9 <= c.tempo <= 1.15 and abs(c.pitch_semitones) <= 2 for c in conditions)
    assert all(c.noise_snr_db is None or c.noise_snr_db >= 30 for c in conditions)
    assert any(c.reverb > 0 for c in conditions) and any(c.reverb == 0 for c in conditions)
    assert (
        SpeechCondition("kal", 1.1, -1.0, 20.0, 35.0).key()
        == SpeechCondition("kal", 1.1, -1.0, 20.0, 35.0).key()
    )
    assert CLEAN.key() != SpeechCondition("kal").key()
    with pytest.raises(ConfigError):
        SpeechCondition(noise_snr_db=10.0)


# --------------------------------------------------------------------------------------------
# Confusion model and noisy channel


def _pairs() -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for i in range(40):
        pairs.append(("pause the music", "cause the music" if i % 4 == 0 else "pause the music"))
        pairs.append(("start a timer", "start a diner" if i % 2 == 0 else "start a timer"))
        pairs.append(("turn on the lamp", "turn on the lamp"))
    pairs.append(("set the kitchen lights", "set a kit chen lights"))
    pairs.append(("open the kitchen blinds", "open a kit chen blinds"))
    pairs.append(("the bedroom door", "a bed room door"))  # seen once: counted word by word
    return pairs


def test_confusion_model_learns_substitutions(tmp_path: Path) -> None:
    model = ConfusionModel().fit(_pairs())
    assert model.substitutions("pause") == {"cause": 1.0}
    assert model.substitutions("timer") == {"diner": 1.0}
    assert model.words["pause"]["n"] == 40 and model.words["pause"]["sub"] == {"cause": 10}
    assert model.words["timer"]["sub"] == {"diner": 20}
    # Smoothed towards the backoff rate, but close to the observed 25 % and 50 %.
    assert 0.2 < model.error_rate("pause") < 0.3
    assert 0.45 < model.error_rate("timer") < 0.55
    assert model.error_rate("lamp") < 0.05
    assert model.error_rate("never-seen") == pytest.approx(model.backoff_rate)
    assert model.phrases["the kitchen"]["out"] == {"a kit chen": 2}
    assert "the bedroom" not in model.phrases and model.words["bedroom"]["sub"]
    assert model.wer > 0

    folder = model.save(tmp_path / "confusion")
    assert folder == tmp_path / "confusion"
    saved = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    assert next(iter(saved)) == "format" and saved["format"] == FORMAT == "selflearn.confusion.v3"
    loaded = ConfusionModel.load(folder)
    assert loaded.to_dict() == model.to_dict()


def test_noisy_asr_reproduces_rates() -> None:
    model = calibrate(ConfusionModel().fit(_pairs()), _pairs())
    asr = NoisyASR(model)
    rng = random.Random(1)
    outputs = [asr.transcribe("pause the music", rng).text for _ in range(4000)]
    share = outputs.count("cause the music") / len(outputs)
    assert 0.8 < model.calibration < 1.25
    assert abs(share - model.error_rate("pause") * model.calibration) < 0.04


def test_noisy_asr_deterministic_and_scale_zero() -> None:
    asr = NoisyASR(ConfusionModel().fit(_pairs()), error_scale=1.5)
    texts = ["pause the music", "start a timer", "set the kitchen lights to fifty percent"] * 20
    first = [asr.transcribe(t, random.Random(i)) for i, t in enumerate(texts)]
    second = [asr.transcribe(t, random.Random(i)) for i, t in enumerate(texts)]
    assert first == second
    assert any(trace.text != normalize_spoken(t) for trace, t in zip(first, texts, strict=True))
    for trace in first:
        assert 1 <= len(trace.nbest) <= 3
        assert len({h.text for h in trace.nbest}) == len(trace.nbest)
        assert trace.nbest[0].text == trace.text
        assert 0.0 <= trace.confidence <= 1.0

    clean = NoisyASR(ConfusionModel().fit(_pairs()), error_scale=0.0)
    rng = random.Random(0)
    for text in texts:
        assert clean.transcribe(text, rng).text == text
    assert clean.transcribe("Set it to 50%", rng).text == "set it to fifty percent"


def test_noisy_confidence_lower_with_errors() -> None:
    asr = NoisyASR.default(error_scale=1.0)
    rng = random.Random(2)
    right: list[float] = []
    wrong: list[float] = []
    for _ in range(3000):
        trace = asr.transcribe("turn off the ceiling fan in the bedroom", rng)
        (right if trace.text == "turn off the ceiling fan in the bedroom" else wrong).append(trace.confidence)
    assert right and wrong
    assert sum(wrong) / len(wrong) < sum(right) / len(right)


def test_words_outside_the_vocabulary_are_never_recognized(tmp_path: Path) -> None:
    """A closed-vocabulary decoder cannot output a word its language model lacks: the noisy
    channel always replaces or drops such a word (whatever the condition), never offers a
    sentence holding one among the alternatives, and errs more on the words around it."""
    vocabulary = {w for ref, hyp in _pairs() for w in (ref + " " + hyp).split()} | {"play", "jazz"}
    pairs = [*_pairs(), *[("play the roomba", "pay the room a")] * 10, *[("play jazz", "play jazz")] * 10]
    model = ConfusionModel().fit(pairs, vocabulary=vocabulary)
    assert model.vocabulary == frozenset(vocabulary)
    assert not model.in_vocabulary("roomba") and model.in_vocabulary("play")
    assert model.error_rate("roomba") == 1.0 and model.error_rate("play") < 0.6
    assert model.oov_context_factor > 1.0  # "play" is misheard next to "roomba", not next to "jazz"
    asr = NoisyASR(model, error_scale=0.3)  # a gentle channel: known words mostly survive
    rng = random.Random(3)
    for text in ("start the vacuum cleaner", "play the roomba"):
        traces = [asr.transcribe(text, rng) for _ in range(300)]
        for trace in traces:
            for hyp in trace.nbest:
                assert "vacuum" not in hyp.text.split() and "cleaner" not in hyp.text.split()
                assert "roomba" not in hyp.text.split()
    # In-vocabulary sentences keep the old behaviour: often right, the reference offered.
    default = NoisyASR(model)  # one channel: building one takes tens of milliseconds
    traces = [default.transcribe("pause the music", rng) for _ in range(2000)]
    assert any(t.text == "pause the music" for t in traces)
    loaded = ConfusionModel.load(model.save(tmp_path / "confusion"))
    assert loaded.vocabulary == model.vocabulary and loaded.to_dict() == model.to_dict()
    assert ConfusionModel.from_dict(model.to_dict() | {"format": "selflearn.confusion/2"}).to_dict() == (
        model.to_dict()
    )
    old = model.to_dict() | {"format": "selflearn.confusion/1"}
    del old["vocabulary"], old["oov_context_factor"]
    legacy = ConfusionModel.from_dict(old)
    assert legacy.vocabulary is None and legacy.in_vocabulary("roomba")


def test_confusion_model_load_names_the_command_that_writes_one(tmp_path: Path) -> None:
    """A folder that does not hold a current saved model -- the single JSON file written before
    the learner contract, that file itself, another format, no folder at all -- is a ConfigError
    naming the folder and the command that writes a new model."""
    model = ConfusionModel().fit(_pairs())
    old_layout = tmp_path / "old"
    old_layout.mkdir()
    legacy = model.to_dict() | {"format": "selflearn.confusion/2"}
    (old_layout / "noisy_asr.json").write_text(json.dumps(legacy, indent=1), encoding="utf-8")
    other = model.save(tmp_path / "other")
    (other / "model.json").write_text(
        json.dumps(legacy | {"format": "selflearn.ranker.v1"}), encoding="utf-8"
    )
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "model.json").write_text(json.dumps(legacy), encoding="utf-8")
    broken = model.save(tmp_path / "broken")
    content = json.loads((broken / "model.json").read_text(encoding="utf-8"))
    del content["words"]
    (broken / "model.json").write_text(json.dumps(content), encoding="utf-8")
    for folder in (
        old_layout,
        old_layout / "noisy_asr.json",
        other,
        stale,
        broken,
        tmp_path / "nowhere",
    ):
        with pytest.raises(ConfigError, match="selflearn asr fit-noisy") as caught:
            ConfusionModel.load(folder)
        assert str(folder) in str(caught.value)
    with pytest.raises(ConfigError, match=re.escape("missing model.json")):
        ConfusionModel.load(old_layout)
    with pytest.raises(
        ConfigError, match=re.escape("'selflearn.confusion/2' is not 'selflearn.confusion.v3'")
    ):
        ConfusionModel.load(stale)


def test_default_model_knows_the_decoder_vocabulary() -> None:
    model = ConfusionModel.default()
    assert model.vocabulary is not None and 100 < len(model.vocabulary) < 5000
    assert {"turn", "on", "the", "timer"} <= model.vocabulary
    asr = NoisyASR.default()
    rng = random.Random(4)
    sentence = "is it going to rain today"
    out_of_domain = [asr.transcribe(sentence, rng) for _ in range(200)]
    unknown = set(sentence.split()) - model.vocabulary
    assert unknown  # a phrasing the domain language model does not cover
    assert all(not unknown & set(t.text.split()) for t in out_of_domain)


def test_channel_fingerprint_follows_the_packaged_model() -> None:
    import hashlib
    import importlib.resources

    data = importlib.resources.files("selflearn").joinpath("data/noisy_asr/model.json").read_bytes()
    assert channel_fingerprint("noisy") == "noisy/" + hashlib.sha256(data).hexdigest()[:12]
    assert channel_fingerprint(" Exact ") == "exact"
    assert channel_fingerprint("pocketsphinx") == channel_fingerprint("real") == "real"
    with pytest.raises(ConfigError, match="unknown ASR channel 'whisper'"):
        channel_fingerprint("whisper")


def test_default_model_loads() -> None:
    model = ConfusionModel.default()
    packaged = importlib.resources.files("selflearn").joinpath("data/noisy_asr")
    assert ConfusionModel.load(str(packaged)).to_dict() == model.to_dict()
    assert not importlib.resources.files("selflearn").joinpath("data/noisy_asr.json").is_file()
    assert model.n_sentences >= 1000
    assert 0.0 < model.wer < 0.5
    assert {"command", "n_sentences", "wer", "created"} <= set(model.metadata)
    asr = NoisyASR.default()
    trace = asr.transcribe("pause the music in the kitchen", random.Random(0))
    assert trace.engine == "noisy"
    assert isinstance(make_asr("noisy"), NoisyASR)
    assert isinstance(make_asr("exact"), ExactASR)
    with pytest.raises(ConfigError):
        make_asr("whisper")


# --------------------------------------------------------------------------------------------
# ARPA builder


def _parse_arpa(text: str) -> tuple[dict[int, int], dict[int, list[list[str]]]]:
    lines = text.splitlines()
    assert lines[0] == "\\data\\"
    assert lines[-1] == "\\end\\"
    header: dict[int, int] = {}
    sections: dict[int, list[list[str]]] = {}
    current: int | None = None
    for line in lines[1:-1]:
        match = re.fullmatch(r"ngram (\d+)=(\d+)", line)
        if match:
            header[int(match.group(1))] = int(match.group(2))
            continue
        match = re.fullmatch(r"\\(\d+)-grams:", line)
        if match:
            current = int(match.group(1))
            sections[current] = []
            continue
        if line.strip() and current is not None:
            sections[current].append(line.split("\t"))
    return header, sections


def test_build_arpa_well_formed() -> None:
    sentences = [
        "turn on the kitchen lights",
        "turn off the kitchen lights",
        "turn on the lamp",
        "set the bedroom lights to fifty percent",
        "what is the temperature",
        "pause the music",
        "pause",
    ]
    arpa = build_arpa(sentences, order=3, restrict_to_dictionary=False)
    header, sections = _parse_arpa(arpa)
    assert sorted(header) == [1, 2, 3]
    for order, count in header.items():
        assert len(sections[order]) == count
        for fields in sections[order]:
            assert len(fields[1].split()) == order
            assert float(fields[0]) <= 0.0
            if len(fields) > 2:
                assert order < 3
                assert float(fields[2]) <= 0.0 + 1e-9 or math.isfinite(float(fields[2]))
    unigrams = {f[1]: float(f[0]) for f in sections[1]}
    assert unigrams["<s>"] == -99.0
    total = sum(10**p for w, p in unigrams.items() if w != "<s>")
    assert total == pytest.approx(1.0, abs=1e-3)
    # Every n-gram's history is listed one order below.
    for order in (2, 3):
        lower = {f[1] for f in sections[order - 1]}
        for fields in sections[order]:
            assert " ".join(fields[1].split()[:-1]) in lower


def test_build_arpa_restricts_vocabulary() -> None:
    arpa = build_arpa(
        ["turn on the zqxv lamp", "turn on the lamp"], order=2, vocabulary={"turn", "on", "the", "lamp"}
    )
    _header, sections = _parse_arpa(arpa)
    words = {f[1] for f in sections[1]}
    assert "zqxv" not in words and "lamp" in words
    bigrams = {f[1] for f in sections[2]}
    assert "the lamp" in bigrams


def test_domain_sentences() -> None:
    first = domain_sentences(300, seed=3, extra=["Kill the lights in the Den!"])
    assert first == domain_sentences(300, seed=3, extra=["Kill the lights in the Den!"])
    assert first[-1] == "kill the lights in the den"
    assert all(re.fullmatch(r"[a-z' ]+", s) for s in first)
    assert len(first) >= 300
    assert any("kitchen" in s for s in first) and any("percent" in s for s in first)


# --------------------------------------------------------------------------------------------
# Real channel (needs flite, sox, pocketsphinx)

_INSTALL = "apt-get install -y flite sox; pip install 'selflearn[asr]'"
_MISSING = [t for t in ("flite", "sox") if shutil.which(t) is None]
if importlib.util.find_spec("pocketsphinx") is None:
    _MISSING.append("pocketsphinx")


@pytest.mark.asr
@pytest.mark.skipif(
    bool(_MISSING),
    reason=f"real ASR needs {', '.join(_MISSING)}: {_INSTALL}",
)
def test_real_asr_short_sentences(tmp_path: Path) -> None:
    sentences = ["turn on the kitchen lights", "pause the music", "what is the temperature"]
    asr = RealASR(lm_sentences=sentences * 3 + ["turn off the bedroom lamp"], cache_dir=tmp_path)
    rng = random.Random(0)
    traces = [asr.transcribe(s, rng, CLEAN) for s in sentences]
    assert all(t.engine == "pocketsphinx" for t in traces)
    assert word_error_rate(zip(sentences, (t.text for t in traces), strict=True)) < 0.5
    # Cached: a second pass returns identical traces.
    assert asr.transcribe_many([(s, CLEAN) for s in sentences], workers=1) == traces
    assert asr.last_batch == {"cached": 3, "decoded": 0}
    # Decoding does not depend on what the process decoded before.
    uncached = RealASR(
        lm_sentences=sentences * 3 + ["turn off the bedroom lamp"], cache_dir=tmp_path, use_cache=False
    )
    again = [uncached.transcribe(s, rng, CLEAN) for s in reversed(sentences)]
    assert list(reversed(again)) == traces
    asr.close()
