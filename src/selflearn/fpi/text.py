"""What kind of request a turn is: a few principal components of its text embedding.

Whether a refused request was out of scope (``correct``) or a phrasing the NLU should have
understood (``nlu``), or whether a garbled one was a recognition error, depends on what the
request is about. :class:`TextProjection` embeds each turn's text with the static (model2vec)
sentence encoder distilled from the packaged MiniLM (:class:`selflearn.core.embed.
StaticEmbedder`, ~5,000 sentences/s) and projects it on the first principal components of the
training texts. The projection is learned in :meth:`TextProjection.fit` and saved with the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from selflearn.core.artefacts import format_name, read_description, reading, write_description
from selflearn.core.errors import ConfigError

FORMAT = format_name("text-projection", 1)

TEXT_DIMS = 32
"""Principal components kept by default."""


def _embedder() -> Any:
    from selflearn.core.embed import StaticEmbedder

    return StaticEmbedder.load()


class TextProjection:
    """PCA of static sentence embeddings: ``fit`` on training texts, ``transform`` any texts."""

    def __init__(self, dims: int = TEXT_DIMS) -> None:
        self.dims = dims
        self.mean_: np.ndarray | None = None
        self.components_: np.ndarray | None = None
        self._encoder: Any = None

    def feature_names(self) -> list[str]:
        """``text_pc0`` ... one per component."""
        return [f"text_pc{i}" for i in range(self.dims)]

    def _encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of the distinct texts and each text's row among them."""
        if self._encoder is None:
            self._encoder = _embedder()
        distinct, index = np.unique(np.asarray([t or "" for t in texts], dtype=object), return_inverse=True)
        return np.asarray(self._encoder.encode([str(t) for t in distinct]), dtype=np.float64), index

    def fit(self, texts: Sequence[str]) -> TextProjection:
        """Learn the mean and the first ``dims`` principal components of the distinct texts."""
        emb, _ = self._encode(texts)
        self.mean_ = emb.mean(axis=0)
        _, _, vt = np.linalg.svd(emb - self.mean_, full_matrices=False)
        components = np.zeros((self.dims, emb.shape[1]))
        k = min(self.dims, vt.shape[0])
        components[:k] = vt[:k]
        self.components_ = components
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dims)`` projections."""
        if self.mean_ is None or self.components_ is None:
            raise ConfigError("TextProjection is not fitted")
        if not len(texts):
            return np.zeros((0, self.dims))
        emb, index = self._encode(texts)
        projected = np.asarray((emb - self.mean_) @ self.components_.T)
        return np.asarray(projected[index])

    def save(self, folder: str | Path) -> Path:
        """Write ``model.json`` and the projection (``projection.npz``) into ``folder``."""
        if self.mean_ is None or self.components_ is None:
            raise ConfigError("TextProjection is not fitted")
        out = write_description(folder, FORMAT, {"dims": self.dims})
        np.savez(out / "projection.npz", mean=self.mean_, components=self.components_)
        return out

    @classmethod
    def load(cls, folder: str | Path) -> TextProjection:
        """Read a projection written by :meth:`save`."""
        read_description(folder, FORMAT, "text projection", retrain="selflearn fpi train")
        with (
            reading(folder, "text projection", retrain="selflearn fpi train"),
            np.load(Path(folder) / "projection.npz") as data,
        ):
            mean, components = np.asarray(data["mean"]), np.asarray(data["components"])
        projection = cls(int(components.shape[0]))
        projection.mean_, projection.components_ = mean, components
        return projection
