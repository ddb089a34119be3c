"""The serving install: the packaged static embedder, the packaged starter, the `learn` extra.

``pip install selflearn`` serves without torch: the static embedder ships in the package (read
with numpy and tokenizers only), a starter rewriter ships with its provenance and the corpora's
attributions, and a command that needs a training package says to install ``selflearn[learn]``.
The wheel itself, installed in a venv without torch, is tested by ``make test-wheel``
(``tests_wheel/``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from selflearn.core.embed import PACKAGED_FORMAT, RelatedWords, StaticEmbedder, packaged_embedder_dir
from selflearn.core.errors import DependencyError
from selflearn.core.extras import LEARN_INSTALL, TRAIN_INSTALL, is_learn_module, learn_dependency
from selflearn.starter import (
    CORPUS_SOURCES,
    attribution_markdown,
    default_rewriter,
    packaged_starter,
    packaged_starter_dir,
)

ROOT = Path(__file__).resolve().parent.parent


def _without_learn(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where every training-only package fails to import."""
    block = (
        "import sys\n"
        "from selflearn.core.extras import LEARN_MODULES\n"
        "for name in LEARN_MODULES: sys.modules[name] = None  # import raises ModuleNotFoundError\n"
    )
    return subprocess.run(
        [sys.executable, "-c", block + code], capture_output=True, text=True, timeout=300, cwd=ROOT
    )


def test_the_packaged_embedder_is_described_and_float16() -> None:
    folder = packaged_embedder_dir()
    manifest = json.loads((folder / "embedder.json").read_text())
    assert manifest["format"] == PACKAGED_FORMAT and manifest["dims"] == 256
    vectors = np.load(folder / "embedding.npy", mmap_mode="r")
    assert vectors.dtype == np.float16 and vectors.shape == (manifest["vocabulary"], 256)
    assert (folder / "tokenizer.json").is_file()


def test_the_packaged_embedder_loads_and_embeds_without_training_packages() -> None:
    """No torch, transformers, model2vec or MiniLM weights: numpy and tokenizers only."""
    proc = _without_learn(
        "from selflearn.core.embed import StaticEmbedder\n"
        "e = StaticEmbedder.load()\n"
        "v = e.encode(['turn off the kitchen lights'])\n"
        "assert v.shape == (1, 256) and abs(float((v * v).sum()) - 1) < 1e-5\n"
        "print('ok')\n"
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_the_packaged_embedder_keeps_the_distilled_models_similarities(embedder: StaticEmbedder) -> None:
    """The word similarities :class:`RelatedWords` documents (measured on the distilled model)."""
    related = RelatedWords(embedder)
    documented = {("clock", "time"): 0.38, ("sunny", "weather"): 0.35, ("joke", "time"): -0.01}
    for (a, b), expected in documented.items():
        assert float(related.vector(a) @ related.vector(b)) == pytest.approx(expected, abs=0.005), (a, b)
    batch = embedder.encode(["kill the lights in the kitchen", "", "Ünïcode café 12:30 ?!"])
    for row, text in enumerate(["kill the lights in the kitchen", "", "Ünïcode café 12:30 ?!"]):
        assert np.array_equal(batch[row], embedder.encode_one(text))


def test_a_model2vec_folder_exports_to_the_packaged_format_unchanged(
    embedder: StaticEmbedder, tmp_path: Path
) -> None:
    """The rebuild path: a model2vec model (as distillation writes it) -> the packaged format,
    the same vectors either way."""
    model2vec = pytest.importorskip("model2vec")
    from selflearn.core.embed import export_embedder

    model = model2vec.StaticModel(
        vectors=np.load(packaged_embedder_dir() / "embedding.npy"),
        tokenizer=embedder._tokenizer,
        normalize=True,
    )
    model.save_pretrained(str(tmp_path / "m2v"))
    export_embedder(tmp_path / "m2v", tmp_path / "packaged")
    texts = ["turn off the kitchen lights", "what's the weather like tomorrow", "zzzz"]
    direct = StaticEmbedder.load(tmp_path / "m2v").encode(texts)
    exported = StaticEmbedder.load(tmp_path / "packaged")
    assert np.array_equal(direct, exported.encode(texts))
    assert np.array_equal(exported.encode(texts), embedder.encode(texts))


def test_a_folder_that_is_no_embedder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DependencyError, match="neither a packaged embedder nor a model2vec"):
        StaticEmbedder.load(tmp_path)


def test_training_packages_are_named_with_the_learn_extra() -> None:
    assert is_learn_module("torch.nn") and is_learn_module("sklearn") and not is_learn_module("numpy")
    exc = ModuleNotFoundError("No module named 'torch'", name="torch")
    message = str(learn_dependency("fine-tuning", exc))
    assert LEARN_INSTALL in message and "torch is not installed" in message
    # Mining and training the rewriter need no torch: the smaller extra is named.
    exc = ModuleNotFoundError("No module named 'scipy.sparse'", name="scipy.sparse")
    message = str(learn_dependency("this command", exc))
    assert TRAIN_INSTALL in message and LEARN_INSTALL not in message and "no torch" in message


def test_the_command_line_names_the_learn_extra_when_a_training_package_is_missing() -> None:
    """A training command in a serving install: one line naming the extra, exit code 2."""
    proc = _without_learn(
        "from selflearn.cli import main, app\n"
        "import typer\n"
        "@app.command('needs-torch')\n"
        "def needs_torch() -> None:\n"
        "    import torch  # noqa: F401\n"
        "sys.argv = ['selflearn', 'needs-torch']\n"
        "main()\n"
    )
    assert proc.returncode == 2, proc.stderr
    assert 'pip install "selflearn[learn]"' in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_serving_loads_no_training_package() -> None:
    """The service's app and the rewriter's run-time modules import no training package."""
    proc = _without_learn(
        "import selflearn.service, selflearn.rewrite.rewriter, selflearn.dialogue, selflearn.cli\n"
        "import selflearn.integrations.wyoming, selflearn.report\n"
        "print('ok')\n"
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


@pytest.mark.skipif(packaged_starter() is None, reason="no starter in this source tree")
def test_the_packaged_starter_ranks_and_searches_without_lightgbm_faiss_or_scipy() -> None:
    """The starter's ranker is read as numpy trees and its indexes as numpy arrays: it proposes a
    rewrite with none of the training packages importable."""
    proc = _without_learn(
        "from selflearn.core.hooks import RewriteContext\n"
        "from selflearn.rewrite.rewriter import Rewriter\n"
        "from selflearn.rewrite.trees import Trees\n"
        "from selflearn.starter import packaged_starter\n"
        "rewriter = Rewriter.load(packaged_starter())\n"
        "assert all(isinstance(m.meaning_, Trees) for m in rewriter.ranker_.members_)\n"
        "d = rewriter.rewrite_one('tell me the date today', RewriteContext(household_id='h1', failed=True))\n"
        "print(d.rewritten, d.text, d.failed_open)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "whats", "the", "date", "today", "None"], proc.stdout + proc.stderr


def test_a_neural_rewriter_without_onnx_runtime_names_the_neural_extra(tmp_path: Path) -> None:
    """ONNX Runtime is the ``neural`` extra: a network to run without it is one clear error."""
    proc = _without_learn(
        "sys.modules['onnxruntime'] = None\n"
        "from selflearn.core.errors import DependencyError\n"
        "from selflearn.rewrite.encoder import onnx_parts\n"
        "try:\n"
        f"    onnx_parts({str(tmp_path)!r}, 'sentence encoder', 1, 32)\n"
        "except DependencyError as exc:\n"
        "    print(exc)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert 'onnxruntime is not installed): pip install "selflearn[neural]"' in proc.stdout, proc.stdout


def test_default_rewriter_is_the_packaged_starter_unless_one_is_given(tmp_path: Path) -> None:
    assert default_rewriter(tmp_path, True) == tmp_path
    assert default_rewriter(None, False) is None
    assert default_rewriter(None, True) == packaged_starter()


def test_the_attribution_names_every_corpus_and_its_licence() -> None:
    text = attribution_markdown(["hwu64", "ha_tests"])
    for name in ("hwu64", "ha_tests"):
        src = CORPUS_SOURCES[name]
        assert src["source"] in text and src["commit"] in text and src["license"] == "CC BY 4.0"
    assert "Changes:" in text


@pytest.mark.skipif(packaged_starter() is None, reason="no starter in this source tree")
def test_the_packaged_starter_carries_its_provenance_and_attributions() -> None:
    folder = packaged_starter_dir()
    manifest = json.loads((folder / "starter.json").read_text())
    assert manifest["format"] == "selflearn.starter.v1"
    assert set(manifest["corpora"]) == set(manifest["recipe"]["corpora"])
    assert all(entry["license"] == "CC BY 4.0" for entry in manifest["corpora"].values())
    attribution = (folder / "ATTRIBUTION.md").read_text()
    assert all(CORPUS_SOURCES[name]["source"] in attribution for name in manifest["corpora"])
    assert (folder / "model.json").is_file()
