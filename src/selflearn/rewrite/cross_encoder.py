"""The single-encoder ranker at serving time: one transformer reads the request and a candidate
together and says how likely the candidate means what the request meant. ONNX Runtime, no torch.

The seed's online ranker "combines fuzzy match through a single-encoder structure with
metadata". A bi-encoder (:mod:`selflearn.rewrite.encoder`) embeds the request and a candidate
apart and compares vectors; a single (cross) encoder attends across both, so it sees that "kill
the lights" and "turn off the lights" agree on the verb's effect while "turn on the lights" does
not. It costs one network pass per (request, candidate) pair, so it only re-reads the few
candidates the LightGBM ranker puts first (``top``), on the failure path only.

Metadata enters as text the network reads: the candidate's source (``home``: a sentence of the
home's own language; ``learned``: a pattern or fix the logs taught) is a first word of the
candidate segment. The LightGBM ranker's *fixable* model (is this request one a rewrite can
fix?) still gives the other factor of the decision score, so the question and acting bars keep
their meaning (:meth:`SingleEncoderRanker.decide`).

A saved single encoder is a folder (``selflearn.single-encoder.v1``): ``model.json`` (what it
was trained on and how), ``model.onnx`` (input ids, attention mask and token types -> one logit
per pair) and ``tokenizer.json``. Trained by :mod:`selflearn.rewrite.cross_encoder_fit`.

>>> scorer = SingleEncoder.load("models/rewriter/single_encoder")   # doctest: +SKIP
>>> said = ["turn off the lights", "turn on the lights"]
>>> scorer.score("kill the lights", said, [True, True])   # doctest: +SKIP
array([0.91, 0.03], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selflearn.core.artefacts import format_name, read_description
from selflearn.rewrite.encoder import onnx_parts

FORMAT = format_name("single-encoder", 1)

MAX_TOKENS = 48
"""Tokens read per (request, candidate) pair; longer pairs are cut."""

TOP = 4
"""Candidates re-read per request: the LightGBM ranker's first ones by meaning."""


def tagged(candidate: str, home: bool) -> str:
    """The candidate as the network reads it: its source, then its text."""
    return f"{'home' if home else 'learned'} : {candidate}"


class SingleEncoder:
    """P(candidate means the request) for (request, candidate) pairs, from an exported
    transformer with a one-logit head (ONNX Runtime, ``threads`` intra-op threads)."""

    def __init__(
        self, session: Any, tokenizer: Any, metadata: dict[str, Any], path: Path | None = None
    ) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.metadata = metadata
        self.path = path
        self._inputs = {i.name for i in session.get_inputs()}

    @classmethod
    def load(cls, folder: str | Path, threads: int = 1) -> SingleEncoder:
        meta = read_description(folder, FORMAT, "single-encoder ranker", retrain="selflearn train rewriter")
        session, tokenizer = onnx_parts(folder, "single-encoder ranker", threads, MAX_TOKENS)
        return cls(session, tokenizer, meta, Path(folder))

    @property
    def version(self) -> str:
        """The trained weights' content hash (from the description)."""
        return str(self.metadata.get("weights_sha256", "?"))[:12]

    def score(self, request: str, candidates: Sequence[str], home: Sequence[bool]) -> np.ndarray:
        """P(each candidate means ``request``), float32, one per candidate (``home``: which
        candidates are sentences of the home's language)."""
        if not candidates:
            return np.zeros(0, dtype=np.float32)
        pairs = [(request, tagged(c, h)) for c, h in zip(candidates, home, strict=True)]
        p: np.ndarray = 1.0 / (1.0 + np.exp(-self.logits(pairs)))
        return p

    def logits(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """The network's logit for each (request, tagged candidate) pair."""
        encs = self.tokenizer.encode_batch(list(pairs))
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for row, enc in enumerate(encs):
            n = len(enc.ids)
            ids[row, :n], mask[row, :n], types[row, :n] = enc.ids, 1, enc.type_ids
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        out: np.ndarray = self.session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
        return out.reshape(-1).astype(np.float32, copy=False)


@dataclass(frozen=True)
class Reread:
    """A request's candidates after the single encoder re-read the first ones."""

    best: int
    """Index (into all the request's candidates) of the pick."""
    meaning: float
    """The single encoder's P(the pick means the request)."""
    score: float
    """The decision score: ``meaning`` x the LightGBM ranker's fixable probability."""
    read: tuple[int, ...] = ()
    """The candidates it re-read (indexes), the LightGBM ranker's first."""


def reread(
    scorer: SingleEncoder,
    request: str,
    candidates: Sequence[str],
    home: Sequence[bool],
    lightgbm_meaning: np.ndarray,
    fixable: float,
    top: int = TOP,
) -> Reread:
    """Re-rank the ``top`` candidates the LightGBM ranker scored highest for meaning with the
    single encoder; the pick is the one it scores highest."""
    first = np.argsort(-np.asarray(lightgbm_meaning), kind="stable")[:top].tolist()
    p = scorer.score(request, [candidates[i] for i in first], [home[i] for i in first])
    j = int(np.argmax(p))
    return Reread(first[j], float(p[j]), float(p[j]) * fixable, tuple(first))


__all__ = ["FORMAT", "MAX_TOKENS", "TOP", "Reread", "SingleEncoder", "reread", "tagged"]
