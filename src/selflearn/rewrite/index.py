"""Nearest-neighbour search over unit vectors: exact for small sets, HNSW (faiss) for large ones.

>>> index = VectorIndex.build(vectors)          # doctest: +SKIP
>>> scores, rows = index.search(query, k=10)    # doctest: +SKIP

Scores are inner products, i.e. cosine similarities for unit vectors; ``rows`` index the vectors
in the order they were given (-1 where fewer than ``k`` exist). faiss runs with one thread: the
request path is one query at a time, and threads only add latency there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from selflearn.core.artefacts import format_name, read_description, reading, write_description
from selflearn.core.errors import ConfigError, DependencyError

HNSW_MIN = 20_000
"""Below this many vectors an exact (flat) search is as fast as HNSW and never misses."""

EF_SEARCH = 48
"""HNSW candidates explored per search. Over a 1,000,000-pattern global index, 48 instead of 64
left 99.9 % of rewrite decisions unchanged and took 0.1-0.15 ms off each (bench/rewrite_latency.py)."""

FORMAT = format_name("vectors", 2)


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise DependencyError("vector search needs faiss: pip install faiss-cpu") from exc
    faiss.omp_set_num_threads(1)
    return faiss


class VectorIndex:
    """A faiss index over unit vectors, with the parameters it was built with."""

    def __init__(self, index: Any, kind: str, ef_search: int = EF_SEARCH) -> None:
        self.index = index
        self.kind = kind
        self.set_ef_search(ef_search)

    def set_ef_search(self, ef_search: int) -> None:
        """How many candidates an HNSW search explores (more: slower, fewer misses)."""
        if ef_search < 1:
            raise ConfigError(f"ef_search must be at least 1, not {ef_search}")
        self.ef_search = ef_search
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = ef_search

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        kind: str = "auto",
        m: int = 32,
        ef_construction: int = 80,
        ef_search: int = EF_SEARCH,
    ) -> VectorIndex:
        """Index ``vectors`` (``(n, dim)``, unit length). ``kind``: ``flat``, ``hnsw`` or ``auto``
        (HNSW from :data:`HNSW_MIN` vectors on)."""
        faiss = _faiss()
        data = np.ascontiguousarray(vectors, dtype=np.float32)
        if data.ndim != 2 or data.shape[1] == 0:
            raise ConfigError(f"vectors must be a 2-D array with at least one column, got shape {data.shape}")
        if kind == "auto":
            kind = "hnsw" if len(data) >= HNSW_MIN else "flat"
        if kind == "flat":
            index = faiss.IndexFlatIP(data.shape[1])
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(data.shape[1], m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = ef_construction
        else:
            raise ConfigError(f"index kind must be flat, hnsw or auto, not {kind!r}")
        if len(data):
            # Building uses every core (a million vectors take minutes); searching stays on one.
            faiss.omp_set_num_threads(os.cpu_count() or 1)
            try:
                index.add(data)
            finally:
                faiss.omp_set_num_threads(1)
        return cls(index, kind, ef_search)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (scores, rows) for one query vector (1-D) or a batch (2-D)."""
        q = np.ascontiguousarray(query, dtype=np.float32)
        single = q.ndim == 1
        if single:
            q = q[None, :]
        if q.shape[1] != self.dim:
            raise ConfigError(f"query has {q.shape[1]} dimensions, the index {self.dim}")
        if len(self) == 0:
            scores = np.full((len(q), k), -1.0, dtype=np.float32)
            rows = np.full((len(q), k), -1, dtype=np.int64)
        else:
            scores, rows = self.index.search(q, k)
        return (scores[0], rows[0]) if single else (scores, rows)

    def save(self, folder: str | Path) -> Path:
        """Write ``model.json`` (kind, search effort, size) and ``index.faiss`` into ``folder``."""
        faiss = _faiss()
        meta = {"kind": self.kind, "ef_search": self.ef_search, "n": len(self), "dim": self.dim}
        out = write_description(folder, FORMAT, meta)
        faiss.write_index(self.index, str(out / "index.faiss"))
        return out

    @classmethod
    def load(cls, folder: str | Path) -> VectorIndex:
        """Read an index written by :meth:`save`; a missing or corrupt one is a :class:`ConfigError`."""
        faiss = _faiss()
        src = Path(folder)
        meta = read_description(src, FORMAT, "vector index", retrain="selflearn train rewriter")
        with reading(src, "vector index", extra=(RuntimeError,), retrain="selflearn train rewriter"):
            index = faiss.read_index(str(src / "index.faiss"))
        if int(index.ntotal) != int(meta.get("n", -1)) or int(index.d) != int(meta.get("dim", -1)):
            raise ConfigError(f"{src}: index holds {index.ntotal} x {index.d}; its description disagrees")
        return cls(index, str(meta["kind"]), int(meta.get("ef_search", 64)))
