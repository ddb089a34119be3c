"""The personal layer: what one household's own history says, learned one turn at a time.

A household teaches the assistant things no global table may hold: its own names for things
("the big light" is its "Living Room Ceiling"), its own ways of asking, and its habits (which
kinds of request come from which room, at which time of day). :class:`PersonalLayer` keeps one
:class:`HouseholdMemory` per home and learns from logged turns in arrival order
(:meth:`PersonalLayer.observe`), river-style: nothing is batch-trained, and a memory only ever sees
its own household's turns.

What counts as failed or worked is read from the log as it arrives, without any detector model:
a turn failed when its result was not a success, the user barged in, or answered "no" to "did I
get that right?"; a request from the same user less than :data:`RETRY_S` seconds after a failure,
sharing words or meaning with it, is taken as the retry of it. When a retry works:

* each name the failed turn could not resolve becomes an **alias** of the name the retry resolved
  to ("big light" -> "living room ceiling"), applied to later requests of the household;
* the failed text is remembered with the text that worked (a **personal rewrite**).

Successful requests are kept (the newest :data:`MAX_SUCCESSES`) with their pattern, meaning,
device area and hour, as candidates and evidence for the ranker.
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import fuzz

from selflearn.core.delex import Delexicalized, Delexicalizer, example_values
from selflearn.core.home import Home, normalize_name
from selflearn.core.schema import Feedback
from selflearn.core.text import FUNCTION_WORDS
from selflearn.rewrite.logs import LogTurn, signature

EmbedFn = Callable[[str], np.ndarray]
"""Text -> unit vector (the rewriter's static embedder)."""

RETRY_S = 40.0
"""A request within this many seconds after a failed one, by the same user, may be its retry."""

ALIAS_SIMILARITY = 75.0
"""How alike (rapidfuzz token-set ratio) the failed request with the name swapped and the retry
that worked must be for the swap to count as evidence of a household name."""

MAX_SUCCESSES = 400
"""Successful requests remembered per household (the newest)."""

MAX_HOUSEHOLDS = 100_000
"""Household memories kept in one process (least recently used are dropped first)."""

_WORD = re.compile(r"[a-z0-9']+")


@dataclass
class Success:
    """A request that worked in this household."""

    text: str
    """Normalised text as said."""
    pattern: str
    """Delexicalized with the home's names."""
    signature: str
    intent: str
    area: str | None
    hour: int
    vector: np.ndarray | None = None
    """Embedding of the pattern (when the layer has an embedder)."""


@dataclass
class _Pending:
    turn: LogTurn
    text: str
    failed: bool


@dataclass
class HouseholdMemory:
    """One household's learned names, rewrites and habits."""

    aliases: dict[str, Counter[str]] = field(default_factory=dict)
    """Household word (normalised) -> configured name -> times a retry showed it."""
    rewrites: dict[str, Counter[str]] = field(default_factory=dict)
    """Failed text (normalised) -> text that worked in the retry -> times."""
    successes: deque[Success] = field(default_factory=lambda: deque(maxlen=MAX_SUCCESSES))
    vectors: np.ndarray | None = None
    """Embeddings of ``successes`` (same order), built lazily."""
    pattern_ok: Counter[str] = field(default_factory=Counter)
    pattern_failed: Counter[str] = field(default_factory=Counter)
    intent_area: Counter[tuple[str, str | None]] = field(default_factory=Counter)
    intent_hour: Counter[tuple[str, int]] = field(default_factory=Counter)
    turns: int = 0
    failed: int = 0
    """Of those turns, the ones that failed (how reliably this household's requests arrive and
    work: its recogniser, its ways of asking)."""
    recent: deque[_Pending] = field(default_factory=lambda: deque(maxlen=8))
    by_turn: dict[str, _Pending] = field(default_factory=dict)
    rejected: dict[str, set[str]] = field(default_factory=dict)
    """Request (normalised) -> proposals the household said no to ("Did you mean ...?" -- no)."""
    accepted: dict[str, set[str]] = field(default_factory=dict)
    """Request (normalised) -> proposals the household said yes to."""

    def accepted_before(self, text: str, proposal: str) -> bool:
        """Whether the household said yes to ``proposal`` for ``text`` before."""
        said_yes = self.accepted.get(normalize_name(text))
        return said_yes is not None and normalize_name(proposal) in said_yes

    def rejected_before(self, text: str, proposal: str) -> bool:
        """Whether the household said no to ``proposal`` for ``text`` before."""
        said_no = self.rejected.get(normalize_name(text))
        return said_no is not None and normalize_name(proposal) in said_no

    def alias_for(self, word: str) -> tuple[str, int] | None:
        """The configured name this household means by ``word`` and the evidence, if learned
        unambiguously (one name seen more often than any other)."""
        counts = self.aliases.get(word)
        if not counts:
            return None
        (best, n), *rest = [*counts.most_common(2), ("", 0)]
        return (best, n) if n > rest[0][1] else None

    def apply_aliases(
        self, text: str, vocabulary: frozenset[str] = frozenset()
    ) -> tuple[str, list[tuple[str, str, int]]]:
        """``text`` (normalised) with every learned household word replaced by its configured
        name, longest first; also returns (word, name, evidence) per replacement. A learned word
        made only of ``vocabulary`` (the assistant's own command words: "list", "timer") is not
        replaced: a retry after a misheard request can make one look like a name."""
        if not self.aliases:
            return text, []
        padded = f" {text} "
        used: list[tuple[str, str, int]] = []
        for word in sorted(self.aliases, key=lambda w: (-len(w), w)):
            if f" {word} " not in padded or all(w in vocabulary for w in word.split()):
                continue
            hit = self.alias_for(word)
            if hit is None:
                continue
            padded = padded.replace(f" {word} ", f" {hit[0]} ")
            used.append((word, hit[0], hit[1]))
        return padded.strip(), used

    def rewrite_for(self, text: str) -> tuple[str, int] | None:
        """The text that worked after ``text`` failed here before, with its count."""
        counts = self.rewrites.get(text)
        if not counts:
            return None
        best, n = counts.most_common(1)[0]
        return best, n


class PersonalLayer:
    """Per-household memories, learned online from logged turns (see the module docstring)."""

    def __init__(self, embed: EmbedFn | None = None) -> None:
        self.memories: OrderedDict[str, HouseholdMemory] = OrderedDict()
        self.embed = embed
        """Text -> unit vector, for personal retrieval and for telling retries from new requests."""
        self._delex: dict[str, tuple[Home | None, Delexicalizer]] = {}

    def delexicalizer(self, household_id: str, home: Home | None) -> Delexicalizer:
        """The (cached) delexicalizer of a household's home."""
        hit = self._delex.get(household_id)
        if hit is None or hit[0] is not home:
            if len(self._delex) > 10_000:
                self._delex.clear()
            hit = self._delex[household_id] = (home, Delexicalizer(home))
        return hit[1]

    def memory(self, household_id: str) -> HouseholdMemory | None:
        """What was learned about a household, if anything."""
        return self.memories.get(household_id)

    def _new(self, household_id: str) -> HouseholdMemory:
        mem = self.memories[household_id] = HouseholdMemory()
        if len(self.memories) > MAX_HOUSEHOLDS:
            self.memories.popitem(last=False)
        return mem

    def forget(self, household_id: str) -> bool:
        """Delete everything learned about a household (the right to be forgotten)."""
        return self.memories.pop(household_id, None) is not None

    # --- learning -----------------------------------------------------------------------------

    def observe(self, turn: LogTurn, home: Home | None = None) -> None:
        """Learn from one logged turn (call in arrival order, after the turn is complete)."""
        mem = self.memories.get(turn.household_id) or self._new(turn.household_id)
        self.memories.move_to_end(turn.household_id)
        mem.turns += 1
        text = normalize_name(turn.said)
        failed = turn.status != "success" or turn.barge_in
        pending = _Pending(turn, text, failed)
        retry_of = self._retry_of(mem, turn, text)
        mem.recent.append(pending)
        mem.by_turn[turn.turn_id] = pending
        if len(mem.by_turn) > 64:
            for key in list(mem.by_turn)[:-32]:
                del mem.by_turn[key]
        delex = self.delexicalizer(turn.household_id, home)
        d = delex(turn.said, turn.unresolved)
        if failed:
            mem.failed += 1
            mem.pattern_failed[d.pattern] += 1
            return
        if turn.rewritten is None:
            self._remember_success(mem, turn, text, d)
        if retry_of is not None and retry_of.turn.rewritten is None:
            before = delex(retry_of.turn.said, retry_of.turn.unresolved)
            named = Counter(value for value in before.values if value[0] != "unknown")
            # Learn what actually worked: a retry that worked only through a rewrite worked as
            # the rewritten text ("activate the mothership" ran as "turn on the floor lamp"), not
            # as the user's words, which may fail on their own.
            ran, ran_d = text, d
            if turn.rewritten is not None:
                ran, ran_d = normalize_name(turn.rewritten), delex(turn.rewritten, ())
            self._learn_retry(mem, retry_of, turn, ran, keeps_values=not named - Counter(ran_d.values))

    def observe_feedback(self, feedback: Feedback) -> None:
        """A "no" to "did I get that right?" turns the remembered success into a failure."""
        if feedback.answer != "no":
            return
        mem = self.memory(feedback.household_id)
        if mem is None:
            return
        pending = mem.by_turn.get(feedback.turn_id)
        if pending is None or pending.failed:
            return
        pending.failed = True
        mem.failed += 1
        for i in range(len(mem.successes) - 1, -1, -1):
            if mem.successes[i].text == pending.text:
                gone = mem.successes[i]
                del mem.successes[i]
                mem.vectors = None
                mem.pattern_ok[gone.pattern] -= 1
                mem.pattern_failed[gone.pattern] += 1
                break

    def confirmed(self, household_id: str, text: str, proposal: str, yes: bool, weight: int) -> None:
        """The answer to "Did you mean ``proposal``?" about ``text``: a yes counts as ``weight``
        retries that fixed it (enough for the rewrite to act unasked); a no is remembered."""
        mem = self.memories.get(household_id) or self._new(household_id)
        said, meant = normalize_name(text), normalize_name(proposal)
        if yes:
            mem.rewrites.setdefault(said, Counter())[meant] += weight
            mem.rejected.get(said, set()).discard(meant)
            mem.accepted.setdefault(said, set()).add(meant)
        else:
            mem.rejected.setdefault(said, set()).add(meant)
            mem.accepted.get(said, set()).discard(meant)
            counts = mem.rewrites.get(said)
            if counts is not None:
                counts.pop(meant, None)

    def _retry_of(self, mem: HouseholdMemory, turn: LogTurn, text: str) -> _Pending | None:
        words = set(_WORD.findall(text))
        for prev in reversed(mem.recent):
            gap = (turn.ts - prev.turn.ts).total_seconds()
            if gap > RETRY_S:
                break
            if prev.turn.user_id != turn.user_id or not prev.failed or prev.text == text:
                continue
            before = set(_WORD.findall(prev.text))
            overlap = len(words & before) / max(len(words | before), 1)
            if overlap >= 0.25 or _close(self.embed, prev.text, text):
                return prev
            return None
        return None

    def _remember_success(self, mem: HouseholdMemory, turn: LogTurn, text: str, d: Delexicalized) -> None:
        sig = signature(turn.intent, turn.slots, d)
        if sig is None or turn.intent is None or "{unknown}" in d.pattern:
            return
        hour = turn.ts.hour
        mem.pattern_ok[d.pattern] += 1
        mem.intent_area[(turn.intent, turn.area)] += 1
        mem.intent_hour[(turn.intent, hour)] += 1
        if any(s.pattern == d.pattern for s in mem.successes):
            return
        vector = self.embed(example_values(d.pattern)) if self.embed is not None else None
        mem.successes.append(Success(text, d.pattern, sig, turn.intent, turn.area, hour, vector))
        mem.vectors = None

    @staticmethod
    def _learn_retry(
        mem: HouseholdMemory, failed: _Pending, worked: LogTurn, text: str, keeps_values: bool = True
    ) -> None:
        """Learn from a retry that worked: the failed text's rewrite -- only when the retry names
        every known thing and number the failed request named (``keeps_values``: "turn on garage
        radio" followed by "turn on living room radio" is another request, not a fix) -- and the
        household names it shows."""
        if keeps_values:
            mem.rewrites.setdefault(failed.text, Counter())[text] += 1
        if not failed.turn.unresolved or worked.intent is None:
            return
        slots = worked.slots
        target: str | None = None
        if len(worked.resolved) == 1 and normalize_name(worked.resolved[0]) in text:
            target = normalize_name(worked.resolved[0])
        elif isinstance(slots.get("name"), str) and normalize_name(str(slots["name"])) in text:
            target = normalize_name(str(slots["name"]))
        elif isinstance(slots.get("area"), str) and normalize_name(str(slots["area"])) in text:
            target = normalize_name(str(slots["area"]))
        if target is None:
            return
        for word in failed.turn.unresolved:
            key = normalize_name(word)
            if not _name_like(key) or key == target or key in text or f" {key} " not in f" {failed.text} ":
                continue
            # The retry must be the failed request with the name swapped (give or take word order
            # and a rephrase), not some other request that happened to name a thing.
            swapped = f" {failed.text} ".replace(f" {key} ", f" {target} ").strip()
            if fuzz.token_set_ratio(swapped, text) < ALIAS_SIMILARITY:
                continue
            mem.aliases.setdefault(key, Counter())[target] += 1

    # --- use ----------------------------------------------------------------------------------

    def success_vectors(self, mem: HouseholdMemory) -> np.ndarray:
        """Embeddings of the household's remembered successes (cached until they change)."""
        if mem.vectors is None or len(mem.vectors) != len(mem.successes):
            vectors = [s.vector for s in mem.successes if s.vector is not None]
            if len(vectors) != len(mem.successes) or not vectors:
                mem.vectors = np.zeros((0, 1), dtype=np.float32)
            else:
                mem.vectors = np.stack(vectors)
        return mem.vectors


def _name_like(key: str) -> bool:
    """Whether ``key`` could be a household's name for a thing (not just function words)."""
    words = key.split()
    return len(key) >= 3 and 0 < len(words) <= 4 and any(w not in FUNCTION_WORDS for w in words)


def _close(embed: EmbedFn | None, a: str, b: str) -> bool:
    if embed is None:
        return False
    return float(np.dot(embed(a), embed(b))) >= 0.6
