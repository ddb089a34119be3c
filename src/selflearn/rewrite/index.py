"""Nearest-neighbour search over unit vectors: exact (numpy) for small sets, HNSW (faiss) for large ones.

>>> index = VectorIndex.build(vectors)          # doctest: +SKIP
>>> scores, rows = index.search(query, k=10)    # doctest: +SKIP

Scores are inner products, i.e. cosine similarities for unit vectors; ``rows`` index the vectors
in the order they were given (-1 where fewer than ``k`` exist). faiss runs with one thread: the
request path is one query at a time, and threads only add latency there.

The exact search is a matrix product in numpy, so a serving install (``pip install selflearn``,
whose starter's indexes are all exact) needs no faiss; an HNSW index, built for a global layer of
:data:`HNSW_MIN` patterns or more, needs ``faiss-cpu`` (the ``train`` extra) to build and read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from selflearn.core.artefacts import format_name, read_description, reading, write_description
from selflearn.core.errors import ConfigError
from selflearn.core.extras import learn_dependency

HNSW_MIN = 20_000
"""Below this many vectors an exact (flat) search is as fast as HNSW and never misses."""

EF_SEARCH = 48
"""HNSW candidates explored per search. Over a 1,000,000-pattern global index, 48 instead of 64
left 99.9 % of rewrite decisions unchanged and took 0.1-0.15 ms off each (bench/rewrite_latency.py)."""

FORMAT = format_name("vectors", 3)
"""v3: an exact index is ``vectors.npy``; v2 (still read, with faiss) kept it in ``index.faiss``."""
_FORMATS = (FORMAT, format_name("vectors", 2))


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise learn_dependency("an HNSW vector index (faiss)", exc) from exc
    faiss.omp_set_num_threads(1)
    return faiss


class _Exact:
    """Every vector scored against the query: a matrix product and a partial sort, in numpy."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.d = self.data.shape[1]
        self.ntotal = len(self.data)

    def reconstruct(self, row: int) -> np.ndarray:
        return np.asarray(self.data[row])

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = q @ self.data.T
        top = min(k, self.ntotal)
        if top < self.ntotal:
            rows = np.argpartition(-scores, top - 1, axis=1)[:, :top]
        else:
            rows = np.broadcast_to(np.arange(self.ntotal), scores.shape)
        picked = np.take_along_axis(scores, rows, axis=1)
        order = np.lexsort((rows, -picked), axis=1)  # best first; ties by row, as faiss
        rows, picked = np.take_along_axis(rows, order, axis=1), np.take_along_axis(picked, order, axis=1)
        if top < k:
            rows = np.pad(rows, ((0, 0), (0, k - top)), constant_values=-1)
            picked = np.pad(picked, ((0, 0), (0, k - top)), constant_values=-np.finfo(np.float32).max)
        return picked.astype(np.float32), rows.astype(np.int64)


class VectorIndex:
    """An index over unit vectors (exact in numpy, or faiss's HNSW), with the parameters it was built with."""

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
        data = np.ascontiguousarray(vectors, dtype=np.float32)
        if data.ndim != 2 or data.shape[1] == 0:
            raise ConfigError(f"vectors must be a 2-D array with at least one column, got shape {data.shape}")
        if kind == "auto":
            kind = "hnsw" if len(data) >= HNSW_MIN else "flat"
        if kind == "flat":
            return cls(_Exact(data), kind, ef_search)
        if kind != "hnsw":
            raise ConfigError(f"index kind must be flat, hnsw or auto, not {kind!r}")
        faiss = _faiss()
        index = faiss.IndexHNSWFlat(data.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
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
        """Write ``model.json`` (kind, search effort, size) and the vectors (``vectors.npy``) or
        the HNSW index (``index.faiss``) into ``folder``."""
        meta = {"kind": self.kind, "ef_search": self.ef_search, "n": len(self), "dim": self.dim}
        out = write_description(folder, FORMAT, meta)
        for stale in ("vectors.npy", "index.faiss"):
            (out / stale).unlink(missing_ok=True)
        if isinstance(self.index, _Exact):
            np.save(out / "vectors.npy", self.index.data, allow_pickle=False)
        else:
            _faiss().write_index(self.index, str(out / "index.faiss"))
        return out

    @classmethod
    def load(cls, folder: str | Path) -> VectorIndex:
        """Read an index written by :meth:`save`; a missing or corrupt one is a :class:`ConfigError`."""
        src = Path(folder)
        meta = read_description(src, _FORMATS, "vector index", retrain="selflearn train rewriter")
        with reading(src, "vector index", extra=(RuntimeError,), retrain="selflearn train rewriter"):
            index: Any
            if meta["format"] == FORMAT and meta.get("kind") == "flat":
                index = _Exact(np.load(src / "vectors.npy", allow_pickle=False))
            else:
                index = _faiss().read_index(str(src / "index.faiss"))
                if meta.get("kind") == "flat":  # a v2 exact index: its vectors, searched in numpy
                    index = _Exact(index.reconstruct_n(0, index.ntotal))
        if int(index.ntotal) != int(meta.get("n", -1)) or int(index.d) != int(meta.get("dim", -1)):
            raise ConfigError(f"{src}: index holds {index.ntotal} x {index.d}; its description disagrees")
        return cls(index, str(meta["kind"]), int(meta.get("ef_search", 64)))
