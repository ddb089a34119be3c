"""The label-generation model (issue 30): goal boundaries, goal success and intents for every
logged turn, learned from the ``labels`` table ``selflearn label`` writes.

The rules of :mod:`selflearn.labels.rules` label what the logs say outright: a turn the assistant
served, a failed turn a paraphrase of which worked. :class:`LabelModel` learns from those labels
and predicts for every turn -- including the failed ones no rule could label -- from the
*dialogue context* of the turn (:mod:`selflearn.labels.windows` reads it from the store):

* **a turn** is the embedding of what the user said (frozen; :attr:`LabelModelConfig.encoder`:
  MiniLM's static distillation, :class:`~selflearn.core.embed.StaticEmbedder`, or MiniLM
  itself; :class:`~selflearn.labels.windows.TextEncoder`) next to a feature vector
  (:class:`Layout`): what was said (token count, ASR confidence), what the assistant made of it
  and answered (NLU intent, matcher and confidence, entity resolution, result status, whether a
  rewrite was applied or a question asked and how it ended), how the user reacted (barge-in,
  explicit feedback) and when (seconds since the device's previous turn);
* **a window** is the turn with up to :attr:`LabelModelConfig.context` turns before and after it
  heard by the same device within :attr:`LabelModelConfig.window_s` seconds (each neighbour
  flagged with whether it is the same user and session);
* a small transformer encoder (:class:`torch.nn.TransformerEncoder`, 2 layers, ``d_model`` 128)
  reads the window, and heads on the centre turn's output predict whether it starts a new goal,
  whether its goal ends in success, and the intent the user meant.

Before the supervised heads, the encoder is **pretrained on synthetic contrastive data** (no
labels needed): half the windows are made inconsistent (:func:`contrastive_batch`) -- the
centre turn's response is swapped for another dialogue's (:data:`CORRUPTIONS` ``response``), or
its next turn is swapped in from another dialogue (``next``) -- and the encoder learns to tell
them apart, which teaches it what fits what a user said and what follows a response.

Training targets come from the ``labels`` table only (simulation truth is never read): the
turn starts a goal when it is the first turn of its ``goal_id``; ``goal_success``; ``intent``
weighted by the label's ``confidence`` (turns without an intent train the goal heads only).
A share of the households (:attr:`LabelModelConfig.validation`) is held out from them: their
loss after each epoch picks the weights kept, and training stops when it has not improved for
:attr:`LabelModelConfig.patience` epochs (:class:`FitReport` records it; the pretraining, which
reads no labels, sees every household).

:class:`PerTurnLabeller` is the non-contextual baseline: the same turn encoding and heads with
no transformer over the neighbours (an MLP). Both follow the learner contract of
:mod:`selflearn.core.artefacts`; ``predict(store)`` returns rows of the ``labels`` layout
(:data:`~selflearn.core.store.tables.LABEL_SCHEMA`, source ``model:<version>``) and
``predict_proba(store)`` the probabilities behind them. ``bench/labels.py`` measures both against
the rules on new households.

>>> LabelModelConfig().d_model
128
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from selflearn.core.artefacts import DESCRIPTION, format_name, read_description, reading, write_description
from selflearn.core.errors import ConfigError, DataError
from selflearn.core.store import LABEL_SCHEMA, Store
from selflearn.labels.rules import Interpretation, LoggedTurn
from selflearn.labels.slots import fill_slots
from selflearn.labels.spans import project_slots
from selflearn.labels.windows import (
    CONTEXT_FLAGS,
    CORRUPTIONS,
    ENCODERS,
    ContrastiveBatch,
    DialogueTurns,
    Layout,
    Targets,
    TextEncoder,
    context_flags,
    contrastive_batch,
    gather,
    held_out,
    most_frequent,
    read_targets,
    targets_of,
    text_encoder,
)

__all__ = [
    "CONTEXT_FLAGS",
    "CORRUPTIONS",
    "ENCODERS",
    "FIT_STAGES",
    "FORMAT",
    "PER_TURN_FORMAT",
    "ContextEncoder",
    "ContrastiveBatch",
    "DialogueTurns",
    "FitReport",
    "LabelModel",
    "LabelModelConfig",
    "Layout",
    "PerTurnLabeller",
    "TextEncoder",
    "TurnEncoder",
    "contrastive_batch",
    "gather",
    "held_out",
    "text_encoder",
]

FORMAT = format_name("label-model", 1)
"""Saved-folder format of :class:`LabelModel`."""
PER_TURN_FORMAT = format_name("label-per-turn", 1)
"""Saved-folder format of :class:`PerTurnLabeller`."""

FIT_STAGES = ("reading", "embed", "pretrain", "train")
"""The stages ``fit`` names to its ``progress`` callback, in order (the per-turn baseline skips
``pretrain``)."""


@dataclass(frozen=True)
class LabelModelConfig:
    """Settings of :class:`LabelModel` and :class:`PerTurnLabeller` (the latter ignores
    ``context``, ``window_s``, ``heads``, ``layers`` and ``pretrain_epochs``)."""

    encoder: str = "static"
    """What a turn's words become (:data:`ENCODERS`): ``static``, MiniLM's model2vec
    distillation (256-d, a lookup), or ``minilm``, all-MiniLM-L6-v2 itself (384-d, frozen, on
    CPU: 25-29 s for the 8,216 unique texts of ``bench/labels.py``'s training population on one
    thread). MiniLM labelled no better there (held-out noisy intent accuracy at 50 % coverage
    0.863 against 0.871, clean 0.921 against 0.945; mean of seeds 0 and 1)."""
    nbest: bool = False
    """A turn's text vector is its recogniser hypotheses' embeddings averaged by confidence
    (:meth:`DialogueTurns.nbest_embeddings`) instead of the best hypothesis's alone. Off: no
    better in ``bench/labels.py`` (held-out noisy intent accuracy at 50 % coverage: per-turn
    0.835 against 0.832, contextual 0.827 against 0.845; real ASR per-turn 0.817 against 0.801,
    contextual 0.775 against 0.759; one seed)."""
    context: int = 3
    """Turns before and after the labelled one that the encoder reads."""
    window_s: float = 300.0
    """A neighbour counts only when heard by the same device within this many seconds."""
    d_model: int = 128
    """Width of the encoder (and of the per-turn MLP's hidden layers)."""
    heads: int = 4
    layers: int = 2
    ff: int = 256
    """Width of the encoder layers' feed-forward part."""
    dropout: float = 0.1
    pretrain_epochs: int = 4
    """Epochs of the contrastive pretraining task (0: none, the ablation)."""
    epochs: int = 12
    """Epochs of the supervised multi-task training (at most: see ``patience``)."""
    validation: float = 0.0
    """Share of the training households held out to pick the epoch (0: none, the last epoch's
    weights are kept). Which ones depends on the household ids and ``seed`` only. Off by
    default: at 0.15 the validation loss is lowest at epoch 4-7 of 12 (0.62-0.65 against a
    training loss of 0.18-0.19 at epoch 12), yet the weights it picks labelled new households
    worse in ``bench/labels.py`` (held-out noisy intent accuracy at 50 % coverage 0.854 against
    0.871, goal segmentation F1 0.864 against 0.871; mean of seeds 0 and 1)."""
    patience: int = 3
    """Training stops after this many epochs without a lower validation loss."""
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    max_intents: int = 64
    """Most frequent intents kept (as NLU features and as labels); the rest are ``other``."""
    seed: int = 0
    threads: int = 1
    """torch CPU threads. One: these matrices are small, and on a 2-core machine shared with
    other work two threads spin against each other (measured 37 ms per training step with one
    thread, 236 ms with two, machine load 4.5)."""

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ConfigError(f"unknown turn encoder {self.encoder!r}; known: {', '.join(ENCODERS)}")
        if not 0.0 <= self.validation < 1.0 or self.patience < 1:
            raise ConfigError(
                f"validation must be in [0, 1) and patience at least 1 (got {self.validation}, "
                f"{self.patience})"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelModelConfig:
        """The config from its :func:`dataclasses.asdict` form (unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown label-model settings {unknown}; known: {sorted(known)}")
        return cls(**data)


# --- the networks ---------------------------------------------------------------------------------

_BOUNDARY, _SUCCESS, _CONSISTENT = 0, 1, 2
_FIXED_OUTPUTS = 3
"""Outputs before the intent logits: boundary, success, inconsistency."""


class ContextEncoder(nn.Module):
    """Turn vectors of a window -> the centre turn's head outputs, through a transformer."""

    def __init__(self, width: int, length: int, outputs: int, cfg: LabelModelConfig) -> None:
        super().__init__()
        self.centre = length // 2
        self.proj = nn.Linear(width, cfg.d_model)
        self.pos = nn.Parameter(torch.zeros(length, cfg.d_model))
        self.norm = nn.LayerNorm(cfg.d_model)
        layer = nn.TransformerEncoderLayer(
            cfg.d_model, cfg.heads, cfg.ff, cfg.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.out = nn.Linear(cfg.d_model, outputs)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.proj(x) + self.pos)
        h = self.encoder(h, src_key_padding_mask=pad)
        result: torch.Tensor = self.out(h[:, self.centre])
        return result


class TurnEncoder(nn.Module):
    """The per-turn baseline's network: the turn's vector alone -> head outputs (an MLP)."""

    def __init__(self, width: int, length: int, outputs: int, cfg: LabelModelConfig) -> None:
        super().__init__()
        self.centre = length // 2
        self.net = nn.Sequential(
            nn.Linear(width, cfg.d_model),
            nn.GELU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.d_model, cfg.d_model),
            nn.GELU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.d_model, outputs),
        )

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.net(x[:, self.centre])
        return result


# --- the learners ---------------------------------------------------------------------------------


@dataclass
class _Prepared:
    turns: DialogueTurns
    features: np.ndarray
    windows: np.ndarray
    flags: np.ndarray


@dataclass
class FitReport:
    """What a fit saw and how long it took."""

    turns: int = 0
    labelled: int = 0
    with_intent: int = 0
    intents: int = 0
    pretrain_accuracy: float | None = None
    """Share of the last pretraining epoch's windows told right (consistent or not)."""
    losses: list[float] = field(default_factory=list)
    """Mean supervised loss per epoch (on the training households)."""
    validation_households: list[str] = field(default_factory=list)
    """The households held out (:attr:`LabelModelConfig.validation`)."""
    validation_losses: list[float] = field(default_factory=list)
    """Their loss after each epoch (:meth:`LabelModel.loss`)."""
    best_epoch: int | None = None
    """The epoch (from 1) whose weights were kept: the lowest validation loss (None: no
    validation, the last epoch's)."""
    seconds: dict[str, float] = field(default_factory=dict)


class _Labeller:
    """What :class:`LabelModel` and :class:`PerTurnLabeller` share: reading, training, saving,
    predicting. Subclasses name their format, network and window."""

    FORMAT: ClassVar[str] = ""
    WHAT: ClassVar[str] = ""
    PRETRAIN: ClassVar[bool] = False

    def __init__(self, config: LabelModelConfig | None = None, encoder: TextEncoder | None = None) -> None:
        self.config = config or LabelModelConfig()
        if encoder is not None and encoder.name != self.config.encoder:
            raise ConfigError(
                f"the {self.WHAT}'s config names the {self.config.encoder!r} turn encoder, the encoder "
                f"given is {encoder.name!r}"
            )
        self.encoder = encoder
        self.layout_: Layout | None = None
        self.intents_: tuple[str, ...] = ()
        self.net_: nn.Module | None = None
        self.report_ = FitReport()

    # what subclasses decide

    @property
    def context(self) -> int:
        return self.config.context

    def _network(self, width: int, outputs: int) -> nn.Module:
        raise NotImplementedError

    # shared

    def _encoder(self) -> TextEncoder:
        if self.encoder is None:
            self.encoder = text_encoder(self.config.encoder)
        return self.encoder

    def _prepare(self, turns: DialogueTurns) -> _Prepared:
        layout = self._layout()
        torch.set_num_threads(self.config.threads)
        encoder = self._encoder()
        emb = turns.nbest_embeddings(encoder) if self.config.nbest else encoder.encode(turns.said)
        if emb.shape[1] != layout.dim:
            raise ConfigError(
                f"the {self.WHAT} was trained on {layout.dim}-dimensional text embeddings, the "
                f"{self.config.encoder!r} encoder gives {emb.shape[1]}"
            )
        features = layout.features(turns, emb, self.config.window_s)
        windows = turns.windows(self.context, self.config.window_s)
        return _Prepared(turns, features, windows, context_flags(turns, windows))

    def _layout(self) -> Layout:
        if self.layout_ is None:
            raise ConfigError(f"the {self.WHAT} is not trained: call fit(store) or load(folder)")
        return self.layout_

    def _net(self) -> nn.Module:
        if self.net_ is None:
            raise ConfigError(f"the {self.WHAT} is not trained: call fit(store) or load(folder)")
        return self.net_

    def _batch(self, data: _Prepared, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x, pad = gather(data.features, data.windows[rows])
        return self._tensors(x, pad, data.flags[rows])

    @staticmethod
    def _tensors(x: np.ndarray, pad: np.ndarray, flags: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        full = np.concatenate([x, flags], axis=-1)
        return torch.from_numpy(full), torch.from_numpy(pad)

    def fit(
        self, store: Store, progress: Callable[[str], None] | None = None, store_name: str = "STORE"
    ) -> Self:
        """Learn from every turn of ``store`` and its ``labels`` table (``selflearn label``
        writes it; a :class:`DataError` says so when it is missing); returns self."""
        cfg = self.config
        say = progress or (lambda _stage: None)
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        clock = time.perf_counter()
        say("reading")
        turns = DialogueTurns.read(store)
        if not len(turns):
            raise DataError("the store has no turns to learn labels from")
        table = read_targets(store, turns, store_name)
        counts: dict[str, int] = {}
        for intent in table.column("intent").to_pylist():
            if intent is not None:
                counts[intent] = counts.get(intent, 0) + 1
        if not counts:
            raise DataError(
                "no row of the store's labels table has an intent: the label model needs turns the "
                "assistant served (`selflearn label` labels them)"
            )
        self.intents_ = most_frequent(counts, cfg.max_intents)
        targets = targets_of(table, turns, self.intents_)
        say("embed")
        started = time.perf_counter()
        dim = self._encoder().dim
        self.layout_ = Layout.fit(turns, dim, cfg.max_intents)
        outputs = _FIXED_OUTPUTS + len(self.intents_)
        width = self.layout_.width + len(CONTEXT_FLAGS)
        net = self.net_ = self._network(width, outputs)
        data = self._prepare(turns)
        report = FitReport(
            turns=len(turns),
            labelled=int(targets.labelled.sum()),
            with_intent=int((targets.intent >= 0).sum()),
            intents=len(self.intents_),
        )
        report.seconds["embed"] = time.perf_counter() - started
        optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        if self.PRETRAIN and cfg.pretrain_epochs > 0:
            say("pretrain")
            started = time.perf_counter()
            report.pretrain_accuracy = self._pretrain(data, optimizer, rng)
            report.seconds["pretrain"] = time.perf_counter() - started
            optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        say("train")
        started = time.perf_counter()
        self._train(data, targets, optimizer, rng, report)
        report.seconds["train"] = time.perf_counter() - started
        report.seconds["total"] = time.perf_counter() - clock
        net.eval()
        self.report_ = report
        return self

    def _pretrain(self, data: _Prepared, optimizer: torch.optim.Optimizer, rng: np.random.Generator) -> float:
        cfg, net, layout = self.config, self._net(), self._layout()
        net.train()
        right = seen = 0
        n = len(data.turns)
        for _epoch in range(cfg.pretrain_epochs):
            right = seen = 0
            for rows in _batches(n, cfg.batch_size, rng):
                batch = contrastive_batch(data.features, data.windows[rows], data.turns.stream, layout, rng)
                x, pad = self._tensors(batch.x, batch.pad, data.flags[rows])
                logit = net(x, pad)[:, _CONSISTENT]
                y = torch.from_numpy(batch.label)
                loss = nn.functional.binary_cross_entropy_with_logits(logit, y)
                optimizer.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                optimizer.step()
                right += int(((logit.detach() > 0).float() == y).sum())
                seen += len(rows)
        return right / max(seen, 1)

    def _train(
        self,
        data: _Prepared,
        targets: Targets,
        optimizer: torch.optim.Optimizer,
        rng: np.random.Generator,
        report: FitReport,
    ) -> None:
        cfg, net = self.config, self._net()
        labelled = np.flatnonzero(targets.labelled)
        homes = self._households(data.turns, labelled)
        report.validation_households = held_out(sorted(set(homes)), cfg.validation, cfg.seed)
        validating = np.isin(homes, report.validation_households)
        train_rows, val_rows = labelled[~validating], labelled[validating]
        objective = _Objective(targets)
        total = cfg.epochs * -(-len(train_rows) // cfg.batch_size)
        # a tenth of the steps warm up (0.15 of 10: OneCycleLR divides by zero at a 1-step warm-up)
        warm = 0.15 if total == 10 else 0.1
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=max(total, 1), pct_start=warm
        )
        best_loss, best_epoch = np.inf, 0
        best_state: dict[str, torch.Tensor] = {}
        for epoch in range(1, cfg.epochs + 1):
            net.train()
            summed, steps = 0.0, 0
            for picked in _batches(len(train_rows), cfg.batch_size, rng):
                rows = train_rows[picked]
                x, pad = self._batch(data, rows)
                loss = _Objective.total(*objective.parts(net(x, pad), rows))
                optimizer.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                summed += float(loss.detach())
                steps += 1
            report.losses.append(round(summed / max(steps, 1), 4))
            if not len(val_rows):
                continue
            held = self._loss(data, objective, val_rows)
            report.validation_losses.append(round(held, 4))
            if held < best_loss:
                best_loss, best_epoch = held, epoch
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            elif epoch - best_epoch >= cfg.patience:
                break
        if best_state:
            net.load_state_dict(best_state)
            report.best_epoch = best_epoch

    @staticmethod
    def _households(turns: DialogueTurns, rows: np.ndarray) -> np.ndarray:
        return np.array([str(turns.rows[i]["household_id"]) for i in rows], dtype=object)

    def _loss(
        self, data: _Prepared, objective: _Objective, rows: np.ndarray, batch_size: int = 1024
    ) -> float:
        net = self._net()
        net.eval()
        sums, weights = torch.zeros(3), torch.zeros(3)
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                part = rows[start : start + batch_size]
                x, pad = self._batch(data, part)
                s, w = objective.parts(net(x, pad), part)
                sums, weights = sums + s, weights + w
        return float(_Objective.total(sums, weights))

    def loss(self, store: Store, households: Sequence[str] | None = None, store_name: str = "STORE") -> float:
        """The training objective on ``store``'s labelled turns (of ``households`` only, when
        given), over all of them at once: what picks the epoch on the held-out households
        (:attr:`FitReport.validation_losses`)."""
        turns = DialogueTurns.read(store)
        targets = targets_of(read_targets(store, turns, store_name), turns, self.intents_)
        data = self._prepare(turns)
        rows = np.flatnonzero(targets.labelled)
        if households is not None:
            rows = rows[np.isin(self._households(turns, rows), list(households))]
        if not len(rows):
            raise DataError("no labelled turn to measure the loss on")
        return self._loss(data, _Objective(targets), rows)

    # prediction

    @property
    def version(self) -> str:
        """``<format>:<12 hex digits of the weights>``: names the exact model that labelled a turn."""
        net = self._net()
        digest = hashlib.blake2b(digest_size=6)
        for name, tensor in sorted(net.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().numpy().tobytes())
        return f"{self.FORMAT}:{digest.hexdigest()}"

    def _outputs(self, data: _Prepared, batch_size: int = 1024) -> np.ndarray:
        net = self._net()
        torch.set_num_threads(self.config.threads)
        net.eval()
        outs = []
        with torch.inference_mode():
            for start in range(0, len(data.turns), batch_size):
                rows = np.arange(start, min(start + batch_size, len(data.turns)))
                x, pad = self._batch(data, rows)
                outs.append(net(x, pad).numpy())
        width = _FIXED_OUTPUTS + len(self.intents_)
        return np.concatenate(outs) if outs else np.zeros((0, width), dtype=np.float32)

    def predict_proba(self, store: Store) -> pa.Table:
        """Per turn (ordered by household, device, time): ``p_boundary`` (it starts a new
        goal), ``p_success`` (its goal ends in success), the most likely ``intent`` and
        ``p_intent``, and ``p_inconsistent`` (the pretraining head; meaningful only for a
        pretrained :class:`LabelModel`)."""
        turns = DialogueTurns.read(store)
        data = self._prepare(turns)
        out = self._outputs(data)
        p_intent = _softmax(out[:, _FIXED_OUTPUTS:])
        best = p_intent.argmax(axis=1) if len(out) else np.zeros(0, dtype=np.int64)
        return pa.table(
            {
                "turn_id": pa.array(turns.turn_ids, pa.string()),
                "p_boundary": _sigmoid(out[:, _BOUNDARY]).astype(np.float64),
                "p_success": _sigmoid(out[:, _SUCCESS]).astype(np.float64),
                "intent": pa.array([self.intents_[k] for k in best], pa.string()),
                "p_intent": p_intent[np.arange(len(best)), best].astype(np.float64),
                "p_inconsistent": _sigmoid(out[:, _CONSISTENT]).astype(np.float64),
            }
        )

    def predict(self, store: Store, threshold: float = 0.5) -> pa.Table:
        """Labels of every turn of ``store`` in the ``labels`` layout
        (:data:`~selflearn.core.store.tables.LABEL_SCHEMA`): goals rebuilt from the predicted
        boundaries (a turn below ``threshold`` continues the goal of its device's previous turn
        within the window; a goal is named after its first turn), a goal's success is the
        prediction at its last turn, the most likely intent with its probability as
        ``confidence``, slots copied from the NLU (placed in the words) when the NLU served the
        predicted intent, else empty; source ``model:<version>``."""
        turns = DialogueTurns.read(store)
        data = self._prepare(turns)
        out = self._outputs(data)
        p_boundary = _sigmoid(out[:, _BOUNDARY])
        p_success = _sigmoid(out[:, _SUCCESS])
        p_intent = _softmax(out[:, _FIXED_OUTPUTS:])
        previous = turns.windows(1, self.config.window_s)[:, 0]
        goal_of: list[int] = []
        for i in range(len(turns)):
            starts = previous[i] < 0 or p_boundary[i] >= threshold
            goal_of.append(i if starts else goal_of[int(previous[i])])
        last: dict[int, int] = {}
        for i, g in enumerate(goal_of):
            last[g] = i
        homes = store.homes()
        version = self.version
        now = datetime.now(UTC)
        rows = []
        for i, r in enumerate(turns.rows):
            k = int(p_intent[i].argmax())
            intent = self.intents_[k]
            slots: list[dict[str, object]] = []
            served = bool(r["matched"]) and r["status"] == "success" and r["intent"] == intent
            if served and r["slots"]:
                values = json.loads(r["slots"])
                if isinstance(values, dict):
                    home = homes.get(str(r["household_id"]))
                    slots = [s.as_row() for s in project_slots(turns.said[i], values, home, r["area"])]
            goal = goal_of[i]
            rows.append(
                {
                    "turn_id": r["turn_id"],
                    "goal_id": turns.rows[goal]["turn_id"],
                    "goal_success": bool(p_success[last[goal]] >= threshold),
                    "intent": intent,
                    "slots": slots,
                    "confidence": float(p_intent[i, k]),
                    "source": f"model:{version}",
                    "from_turn_id": None,
                    "model": version,
                    "scored_at": now,
                }
            )
        return pa.Table.from_pylist(rows, schema=LABEL_SCHEMA.arrow())

    # persistence

    def save(self, folder: str | Path) -> Path:
        """Write ``weights.pt`` and ``model.json`` into ``folder``; returns it."""
        layout, net, encoder = self._layout(), self._net(), self._encoder()
        meta = {
            "version": self.version,
            "config": asdict(self.config),
            "layout": layout.to_dict(),
            "intents": list(self.intents_),
            "encoder": {"name": encoder.name, "dim": encoder.dim, "source": encoder.source},
            "report": asdict(self.report_),
        }
        out = write_description(folder, self.FORMAT, meta)
        buffer = io.BytesIO()
        torch.save(net.state_dict(), buffer)
        (out / "weights.pt").write_bytes(buffer.getvalue())
        return out

    @classmethod
    def load(cls, folder: str | Path, encoder: TextEncoder | None = None) -> Self:
        """Read a labeller written by :meth:`save` (``encoder``: the turn encoder to use, which
        must be the one it was trained with; default: that one, :func:`text_encoder`)."""
        src = Path(folder)
        retrain = f"{cls.__name__}().fit(store).save(folder)"
        meta = read_description(src, cls.FORMAT, cls.WHAT, retrain=retrain)
        config = LabelModelConfig.from_dict(dict(meta["config"]))
        if encoder is not None and encoder.name != config.encoder:
            raise ConfigError(
                f"the {cls.WHAT} in {src} was trained on the {config.encoder!r} turn encoder, the "
                f"encoder given is {encoder.name!r}: load it with a {config.encoder!r} encoder (or "
                "none), or retrain it"
            )
        with reading(src, cls.WHAT, extra=(RuntimeError,), retrain=retrain):
            model = cls(config, encoder)
            model.layout_ = Layout.from_dict(meta["layout"])
            model.intents_ = tuple(meta["intents"])
            report = dict(meta.get("report", {}))
            model.report_ = FitReport(**report)
            width = model.layout_.width + len(CONTEXT_FLAGS)
            net = model._network(width, _FIXED_OUTPUTS + len(model.intents_))
            state = torch.load(io.BytesIO((src / "weights.pt").read_bytes()), weights_only=True)
            net.load_state_dict(state)
        net.eval()
        model.net_ = net
        return model


class _Objective:
    """The multi-task loss: whether a turn starts a goal (binary cross-entropy, every labelled
    turn), whether its goal succeeds (the turns whose goal's outcome is known) and its intent
    (cross-entropy weighted by the label's confidence; turns with an intent)."""

    FLOORS = torch.tensor([1.0, 1.0, 1e-6])
    """Least weight each term is divided by (a batch may have no success or intent targets)."""

    def __init__(self, targets: Targets) -> None:
        self.boundary = torch.from_numpy(targets.boundary)
        self.success = torch.from_numpy(targets.success)
        self.known = torch.from_numpy(targets.success_known.astype(np.float32))
        self.intent = torch.from_numpy(targets.intent)
        self.weight = torch.from_numpy(targets.weight)

    def parts(self, out: torch.Tensor, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Each term's weighted sum over ``rows`` (whose outputs are ``out``) and its weight."""
        idx = torch.from_numpy(rows)
        bce = nn.functional.binary_cross_entropy_with_logits
        boundary = bce(out[:, _BOUNDARY], self.boundary[idx], reduction="sum")
        known = self.known[idx]
        success = (bce(out[:, _SUCCESS], self.success[idx], reduction="none") * known).sum()
        target = self.intent[idx]
        w = self.weight[idx] * (target >= 0).float()
        ce = nn.functional.cross_entropy(out[:, _FIXED_OUTPUTS:], target.clamp(min=0), reduction="none")
        sums = torch.stack([boundary, success, (ce * w).sum()])
        return sums, torch.stack([torch.tensor(float(len(rows))), known.sum(), w.sum()])

    @classmethod
    def total(cls, sums: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return (sums / torch.maximum(weights, cls.FLOORS)).sum()


def _batches(n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i : i + size] for i in range(0, n, size)]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    return out


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True) if len(z) else z
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True) if len(z) else e
    return out


class LabelModel(_Labeller):
    """The contextual labeller: a transformer over a window of turns, pretrained on synthetic
    inconsistencies, with goal-boundary, goal-success and intent heads (module docstring).

    ``LabelModel().fit(store)`` trains on ``store``'s ``labels`` table; ``predict(store)`` labels
    every turn; ``save``/``load`` write and read a folder (``model.json`` + ``weights.pt``)."""

    FORMAT = FORMAT
    WHAT = "label model"
    PRETRAIN = True

    def _network(self, width: int, outputs: int) -> nn.Module:
        return ContextEncoder(width, 2 * self.context + 1, outputs, self.config)


class PerTurnLabeller(_Labeller):
    """The non-contextual baseline: each turn's own vector (the same text embedding and
    features as :class:`LabelModel`) through an MLP with the same heads; no neighbours, no
    pretraining. The same contract as :class:`LabelModel`."""

    FORMAT = PER_TURN_FORMAT
    WHAT = "per-turn labeller"
    PRETRAIN = False

    @property
    def context(self) -> int:
        return 0

    def _network(self, width: int, outputs: int) -> nn.Module:
        return TurnEncoder(width, 1, outputs, self.config)


def load_labeller(folder: str | Path) -> LabelModel | PerTurnLabeller:
    """Whichever of :class:`LabelModel` and :class:`PerTurnLabeller` ``folder`` holds."""
    src = Path(folder)
    try:
        fmt = json.loads((src / DESCRIPTION).read_text()).get("format")
    except (OSError, ValueError):
        fmt = None
    return PerTurnLabeller.load(src) if fmt == PER_TURN_FORMAT else LabelModel.load(src)


class ModelLabeler:
    """A fitted :class:`LabelModel` (or :class:`PerTurnLabeller`) as the
    :class:`~selflearn.labels.labeler.Labeler` that :func:`~selflearn.labels.label_store` asks
    about the turns its rules left without an intent: the model's intent when its probability is
    at least ``min_confidence``, with the slots :func:`~selflearn.labels.slots.fill_slots` finds
    in the turn's words with its home's names (the model predicts none)."""

    def __init__(self, model: _Labeller, store: Store, min_confidence: float = 0.8) -> None:
        self.model = model
        self.name = model.version
        self.min_confidence = min_confidence
        self.homes = store.homes()
        table = model.predict_proba(store)
        self._best = dict(
            zip(
                table.column("turn_id").to_pylist(),
                zip(table.column("intent").to_pylist(), table.column("p_intent").to_pylist(), strict=True),
                strict=True,
            )
        )

    def label(self, turns: Sequence[LoggedTurn]) -> list[Interpretation | None]:
        out: list[Interpretation | None] = []
        for turn in turns:
            best = self._best.get(turn.turn_id)
            if best is None or float(best[1]) < self.min_confidence:
                out.append(None)
                continue
            home = self.homes.get(turn.household_id)
            slots = fill_slots(str(best[0]), turn.said, home) if home is not None else ()
            out.append(Interpretation(str(best[0]), slots, float(best[1]), f"model:{self.name}"))
        return out
