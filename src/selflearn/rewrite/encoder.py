"""A transformer sentence encoder at serving time: ONNX Runtime, no torch.

The dense retriever of the online rewriter embeds a request and the candidates it may be
rewritten to with a fine-tuned all-MiniLM-L6-v2 (trained by :mod:`selflearn.rewrite.encoder_fit`
on the logs' rephrase pairs; ``selflearn train encoder``). Serving runs the exported network with
ONNX Runtime and Hugging Face's ``tokenizers`` (both small, with wheels for x86-64 and aarch64):
mean pooling and L2 normalisation are part of the exported graph, so a vector is one
``InferenceSession.run``.

A saved encoder is a folder (``selflearn.encoder.v1``): ``model.json`` (what it was trained on,
how, and its provenance), ``model.onnx`` and ``tokenizer.json``.

>>> encoder = SentenceEncoder.load("models/starter/encoder")   # doctest: +SKIP
>>> encoder.encode(["kill the lights in the kitchen"]).shape   # doctest: +SKIP
(1, 384)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from selflearn.core.artefacts import format_name, read_description, reading
from selflearn.core.errors import DependencyError
from selflearn.core.extras import NEURAL_INSTALL

FORMAT = format_name("encoder", 1)

MAX_TOKENS = 32
"""Tokens read per text (requests are short; longer ones are cut)."""


def onnx_parts(folder: str | Path, what: str, threads: int, max_tokens: int) -> tuple[Any, Any]:
    """The ONNX Runtime session of ``folder/model.onnx`` (``threads`` intra-op threads, quiet) and
    the tokenizer of ``folder/tokenizer.json`` (cutting at ``max_tokens``) of an exported network;
    a folder that cannot be read is a :class:`ConfigError` naming it and ``what`` it holds."""
    try:
        import onnxruntime as ort
        from tokenizers import Tokenizer
    except ImportError as exc:  # onnxruntime is the `neural` extra (and in `learn`)
        raise DependencyError(
            f"the {what} runs on ONNX Runtime ({exc.name} is not installed): {NEURAL_INSTALL}"
        ) from exc
    with reading(folder, what, extra=(RuntimeError, ValueError, Exception)):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(
            str(Path(folder) / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    tokenizer.enable_truncation(max_tokens)
    return session, tokenizer


class SentenceEncoder:
    """Unit-length sentence vectors from an exported transformer (ONNX Runtime).

    ``threads`` is ONNX Runtime's intra-op thread count (1: a request never competes with the
    service's other requests for cores). ``cache`` keeps the vectors of the last texts encoded
    one at a time (a request pattern repeats).
    """

    def __init__(
        self,
        session: Any,
        tokenizer: Any,
        metadata: dict[str, Any],
        path: Path | None = None,
        cache: int = 4096,
    ) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.metadata = metadata
        self.path = path
        self.dim = int(metadata.get("dim", 384))
        self._inputs = [i.name for i in session.get_inputs()]
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache

    @classmethod
    def load(cls, folder: str | Path, threads: int = 1) -> SentenceEncoder:
        meta = read_description(folder, FORMAT, "sentence encoder", retrain="selflearn train encoder")
        session, tokenizer = onnx_parts(folder, "sentence encoder", threads, MAX_TOKENS)
        return cls(session, tokenizer, meta, Path(folder))

    @property
    def version(self) -> str:
        """The trained weights' content hash (from the description)."""
        return str(self.metadata.get("weights_sha256", "?"))[:12]

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embeddings of ``texts`` as an ``(n, dim)`` float32 array of unit vectors."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start : start + batch_size])
            out[start : start + len(chunk)] = self._run(chunk)
        return out

    def encode_one(self, text: str) -> np.ndarray:
        """Embedding of one text (the request path), cached."""
        hit = self._cache.get(text)
        if hit is not None:
            self._cache.move_to_end(text)
            return hit
        vec: np.ndarray = self._run([text])[0]
        self._cache[text] = vec
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return vec

    def _run(self, texts: list[str]) -> np.ndarray:
        encs = self.tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, enc in enumerate(encs):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        result: np.ndarray = self.session.run(None, {self._inputs[0]: ids, self._inputs[1]: mask})[0]
        return result.astype(np.float32, copy=False)
