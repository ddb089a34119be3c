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

Each memory also keeps how the **global rules** it was served fared in this home (rules of the
mined or community table, layer ``precomputed``, by rule id): a use worked, or failed -- the
rewritten request failed or was interrupted, the user answered "no" to "did I get that right?"
or to "Did you mean ...?", or the user's next request, moments later, retried it
(:data:`CORRECTION_S`). A rule that failed at least :data:`WITHDRAW_MIN_FAILED` times (a rule
from a community release: :data:`WITHDRAW_MIN_FAILED_COMMUNITY`) and more often than it worked is
**withdrawn in this home** (:meth:`HouseholdMemory.withdrawn`): the rewriter no longer applies or
proposes it there, while other homes keep it.
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Container
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import fuzz

from selflearn.core.delex import Delexicalized, Delexicalizer, example_values
from selflearn.core.guards import flips_polarity, is_sensitive, polarity
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

WITHDRAW_MIN_FAILED = 2
"""Failures in one home before a global rule may be withdrawn there (it must also have failed
more often than it worked). One failure proves little -- a misheard word, a change of mind, a
next request taken for a correction -- and a rule that works elsewhere deserves a second try; a
rule failing twice, and more than it helped, costs the home more than it gives. Low on purpose:
a home should not have to suffer a bad or poisoned community rule for long, and withdrawing only
stops a guess (the request goes on to the other layers, and other homes keep the rule)."""

WITHDRAW_MIN_FAILED_COMMUNITY = 1
"""The same for a rule of a community release
(:meth:`~selflearn.rewrite.table.RewriteTable.community`): withdrawn at its first
failure in a home where it has not worked more often. Nobody chose or reviewed such a rule for
this home, and a colluding group can get one released; a rare request gets a second try only
days later (measured: a poisoned rule's second failure came up to 81 hours after its first), so
waiting for two failures would leave a bad rule acting for days."""

DEMOTED_LAYERS = frozenset({"precomputed"})
"""Layers whose rules a home can withdraw: the mined or community table (stable rule ids, one per
source and target pattern). Ranked retrieval's ids (``global:<target pattern>``) are stable too,
but name only a target that every request ranked onto it shares -- withdrawing one would stop
unrelated rewrites -- and the ranker already weighs this household's own history."""

CORRECTION_S = 20.0
"""The user's next request within this many seconds of a rewritten request that seemed to work --
the same words again, or the same things in other words -- is taken as its retry: the rewrite did
not do what the user wanted. Shorter than :data:`RETRY_S`: after a response that looked like
success, only a prompt retry says it was wrong (people retry within seconds of hearing the
response); a later one is more likely a new request."""

UNDOING_INTENTS = frozenset(
    {
        ("HassTurnOn", "HassTurnOff"),
        ("HassTurnOff", "HassTurnOn"),
        ("HassMediaPause", "HassMediaUnpause"),
        ("HassMediaUnpause", "HassMediaPause"),
    }
)
"""(What a rewritten request did, what the user's next request did) pairs that undo it: the same
device switched back within :data:`CORRECTION_S` says the rewrite did the wrong thing, even when
the retry's words (a misheard name) share nothing else with the request."""

MAX_HOUSEHOLDS = 100_000
"""Household memories kept in one process (least recently used are dropped first)."""

_WORD = re.compile(r"[a-z0-9']+")
_PLACEHOLDER = re.compile(r"\{[^}]*\}")


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
    rule: str | None = None
    """The global rule this turn's rewrite applied, counted as having worked (a correction or a
    "no" may still turn that into a failure, once)."""


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
    learned_via: dict[str, set[str]] = field(default_factory=dict)
    """A learned name or fix (a key of ``aliases`` or ``rewrites``) -> the retries, as said, that
    worked only through another rewrite ("turn on the gizmo", run as "turn on the kitchen light"
    because the household taught "gizmo"): forgetting words those retries say forgets it too."""
    rule_worked: Counter[str] = field(default_factory=Counter)
    """Global rule id (:data:`DEMOTED_LAYERS`) -> times its rewrite worked in this home."""
    rule_failed: Counter[str] = field(default_factory=Counter)
    """Global rule id -> times it failed here (see the module docstring)."""

    def withdrawn(self, rule_id: str | None, community: Container[str] = frozenset()) -> str | None:
        """Why the global rule ``rule_id`` is withdrawn in this home ("withdrawn here: failed 2 of
        2 times"), or None when it may act: it failed here at least :data:`WITHDRAW_MIN_FAILED`
        times (:data:`WITHDRAW_MIN_FAILED_COMMUNITY` for a rule in ``community``, the rules of a
        community release) and more often than it worked. Nothing more is learned about a rule
        that no longer acts, so it stays withdrawn until the household is forgotten."""
        if rule_id is None:
            return None
        failed = self.rule_failed.get(rule_id, 0)
        worked = self.rule_worked.get(rule_id, 0)
        least = WITHDRAW_MIN_FAILED_COMMUNITY if rule_id in community else WITHDRAW_MIN_FAILED
        if failed < least or failed <= worked:
            return None
        return f"withdrawn here: failed {failed} of {failed + worked} times"

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

    def acting(self, personal_min: int) -> list[tuple[str, str, str, int]]:
        """What this memory makes the rewriter do unasked (or, for a sensitive request, ask
        about), as (kind, said, means, times): ``name`` (a household word and its configured
        name), ``yes`` (a request and the proposal the household said yes to), ``fix`` (a request
        and what its retries showed, at least ``personal_min`` times; twice that for a sensitive
        one, as the rewriter replays it). Never one that does the opposite of what was said (the
        rewriter's guard drops it)."""
        found: list[tuple[str, str, str, int]] = []
        for word in self.aliases:
            hit = self.alias_for(word)
            if hit is not None and _name_like(word):
                found.append(("name", word, hit[0], hit[1]))
        for said in self.rewrites:
            best = self.rewrite_for(said)
            if best is None or best[0] == said or flips_polarity(said, best[0]):
                continue
            if best[1] < (2 * personal_min if is_sensitive(best[0]) else personal_min):
                continue
            kind = "yes" if self.accepted_before(said, best[0]) else "fix"
            found.append((kind, said, best[0], best[1]))
        return found

    def forget_words(self, words: str) -> int:
        """Forget ``words``: the household word itself, and every request that says them (its
        fixes, its yes answers, its retries still pending); returns the entries removed. A no
        stays: it acts on nothing, and a proposal the user said no to is never asked again
        (forgetting it would bring the refused question back)."""
        key = normalize_name(words)
        keys = {key, re.sub(r"^(?:the|my|our|a) ", "", key)}

        def says(text: str) -> bool:
            return any(f" {k} " in f" {text} " for k in keys if k)

        removed = 0
        for word in [w for w in self.aliases if w in keys]:
            del self.aliases[word]
            removed += 1
        for learned in [k for k, via in self.learned_via.items() if any(says(v) for v in via)]:
            # learned from a retry that worked only through what is being forgotten
            removed += (self.aliases.pop(learned, None) is not None) + (
                self.rewrites.pop(learned, None) is not None
            )
            del self.learned_via[learned]
        for said in [s for s in self.rewrites if says(s)]:
            del self.rewrites[said]
            removed += 1
        for said in [s for s in self.accepted if says(s)]:
            del self.accepted[said]
            removed += 1
        for pending in self.recent:
            if says(pending.text):
                pending.failed = False  # no later request is learned as its retry
        return removed

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

    def moved_on(self, household_id: str, user_id: str) -> None:
        """The user said something else (taught a lesson, asked what was learned): no later
        request of theirs is the retry of a failure before it."""
        mem = self.memories.get(household_id)
        for pending in mem.recent if mem is not None else ():
            if pending.turn.user_id == user_id:
                pending.failed = False

    def forget_words(self, household_id: str, words: str) -> int:
        """:meth:`HouseholdMemory.forget_words` in ``household_id``; returns the entries removed."""
        mem = self.memories.get(household_id)
        return mem.forget_words(words) if mem is not None else 0

    # --- learning -----------------------------------------------------------------------------

    def observe(self, turn: LogTurn, home: Home | None = None, retried: bool = True) -> None:
        """Learn from one logged turn (call in arrival order, after the turn is complete).
        ``retried=False``: the turn failed, but no later request is its retry -- it asked a
        question ("Did you mean ...?", "Can you teach me?") the user did not answer yes or no to,
        and only an answer teaches about it."""
        mem = self.memories.get(turn.household_id) or self._new(turn.household_id)
        self.memories.move_to_end(turn.household_id)
        mem.turns += 1
        text = normalize_name(turn.said)
        failed = turn.status != "success" or turn.barge_in
        pending = _Pending(turn, text, failed and retried)
        retry_of = self._retry_of(mem, turn, text)
        delex = self.delexicalizer(turn.household_id, home)
        d = delex(turn.said, turn.unresolved)
        corrected = self._corrected(mem, turn, text, d, delex)
        if corrected is not None:
            _rule_failed_after_all(mem, corrected)
        mem.recent.append(pending)
        mem.by_turn[turn.turn_id] = pending
        if len(mem.by_turn) > 64:
            for key in list(mem.by_turn)[:-32]:
                del mem.by_turn[key]
        if turn.layer in DEMOTED_LAYERS and turn.rule_id and turn.status != "question":
            # A question ("Did you mean ...?") ran nothing: its answer is counted by rule_rejected.
            if failed:
                mem.rule_failed[turn.rule_id] += 1
            else:
                mem.rule_worked[turn.rule_id] += 1
                pending.rule = turn.rule_id
        if failed:
            mem.failed += 1
            mem.pattern_failed[d.pattern] += 1
            own = turn.layer == "personal" and turn.rule_id in ("alias", "personal")
            if own and turn.status != "question" and not turn.resolved:
                # This household's own rewrite named nothing the home has (not a device that was
                # off line): it stops acting.
                _unlearn(mem, turn)
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
            if flips_polarity(retry_of.text, ran):
                return  # "turn off the lamp" after "turn on the mothership" is another request
            self._learn_retry(mem, retry_of, turn, ran, keeps_values=not named - Counter(ran_d.values))

    def observe_feedback(self, feedback: Feedback) -> None:
        """A "no" to "did I get that right?" turns the remembered success into a failure."""
        if feedback.answer != "no":
            return
        mem = self.memory(feedback.household_id)
        if mem is None:
            return
        pending = mem.by_turn.get(feedback.turn_id)
        if pending is not None and pending.rule is not None:
            _rule_failed_after_all(mem, pending)
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
            if flips_polarity(said, meant):
                return  # never learned to do the opposite of what was said
            mem.rewrites.setdefault(said, Counter())[meant] += weight
            mem.rejected.get(said, set()).discard(meant)
            mem.accepted.setdefault(said, set()).add(meant)
        else:
            mem.rejected.setdefault(said, set()).add(meant)
            mem.accepted.get(said, set()).discard(meant)
            counts = mem.rewrites.get(said)
            if counts is not None:
                counts.pop(meant, None)

    def rule_rejected(self, household_id: str, rule_id: str) -> None:
        """The household said no to "Did you mean ...?" about a global rule's rewrite: one failure
        of the rule in this home."""
        mem = self.memories.get(household_id) or self._new(household_id)
        mem.rule_failed[rule_id] += 1

    def _corrected(
        self, mem: HouseholdMemory, turn: LogTurn, text: str, d: Delexicalized, delex: Delexicalizer
    ) -> _Pending | None:
        """The user's previous request, if it was rewritten by a global rule, seemed to work, and
        ``turn`` retries it: said by the same user within :data:`CORRECTION_S` and linked to it as
        its rephrase, the same words again, the same device switched back (:data:`UNDOING_INTENTS`),
        or the same things named in other words around a word in common (the requests' own values
        and function words aside). A request about other things, or with nothing but function
        words in common, is a new request."""
        for prev in reversed(mem.recent):
            if prev.turn.user_id != turn.user_id:
                continue
            gap = (turn.ts - prev.turn.ts).total_seconds()
            if prev.rule is None or not 0 <= gap <= CORRECTION_S:
                return None
            if turn.rephrase_of is not None and turn.rephrase_of == prev.turn.turn_id:
                return prev
            if prev.text == text or _undoes(prev.turn, turn):
                return prev
            before = delex(prev.turn.said, prev.turn.unresolved)
            named = Counter(value for value in before.values if value[0] != "unknown")
            if named - Counter(d.values):
                return None
            return prev if _content_words(before.pattern) & _content_words(d.pattern) else None
        return None

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
        said = normalize_name(worked.said)
        via = {said} if said != text else set()  # it worked only through another rewrite
        if keeps_values:
            mem.rewrites.setdefault(failed.text, Counter())[text] += 1
            if via:
                mem.learned_via.setdefault(failed.text, set()).update(via)
        if not failed.turn.unresolved or worked.intent is None:
            return
        slots = worked.slots
        target: str | None = None
        old, new = _swapped(failed.text, text)
        if new and any(normalize_name(word) == old for word in failed.turn.unresolved):
            # The retry is the failed request with the unknown name's words swapped ("turn on the
            # mothership", "turn on the kitchen lights"): those words, whatever the slots say
            # (Home Assistant 2026 reads "the kitchen lights" as an area and a domain).
            target = new
        elif len(worked.resolved) == 1 and normalize_name(worked.resolved[0]) in text:
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
            if via:
                mem.learned_via.setdefault(key, set()).update(via)

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


def _swapped(before: str, after: str) -> tuple[str, str]:
    """The words of ``before`` that ``after`` put others in place of, and those others (the
    words both start and end with taken off): ("turn on the mothership", "turn on the kitchen
    lights") -> ("mothership", "kitchen lights")."""
    a, b = before.split(), after.split()
    while a and b and a[0] == b[0]:
        a, b = a[1:], b[1:]
    while a and b and a[-1] == b[-1]:
        a, b = a[:-1], b[:-1]
    return " ".join(a), " ".join(b)


def _rule_failed_after_all(mem: HouseholdMemory, pending: _Pending) -> None:
    """A use of a global rule counted as having worked turned out to have failed."""
    rule, pending.rule = pending.rule, None
    if rule is None:
        return
    if mem.rule_worked[rule] > 0:
        mem.rule_worked[rule] -= 1
    mem.rule_failed[rule] += 1


def _unlearn(mem: HouseholdMemory, turn: LogTurn) -> None:
    """A rewrite the household's own memory made (a learned name, a replayed fix) ran and failed:
    the fix is dropped, and so is each learned name it used (a name is learned again from the
    next retry that shows it)."""
    said, ran = normalize_name(turn.said), normalize_name(turn.rewritten or "")
    if turn.rule_id == "personal":
        counts = mem.rewrites.get(said)
        if counts is not None:
            counts.pop(ran, None)
            if not counts:
                del mem.rewrites[said]
        return
    for word in [w for w in mem.aliases if f" {w} " in f" {said} "]:
        hit = mem.alias_for(word)
        if hit is not None and f" {hit[0]} " in f" {ran} ":
            del mem.aliases[word]


def _undoes(before: LogTurn, after: LogTurn) -> bool:
    """Whether ``after`` switched back a device ``before`` acted on (:data:`UNDOING_INTENTS`)."""
    return (before.intent, after.intent) in UNDOING_INTENTS and bool(
        set(before.resolved) & set(after.resolved)
    )


def _content_words(pattern: str) -> set[str]:
    """A delexicalized request's own words: no placeholder, no function word."""
    return {w for w in _WORD.findall(_PLACEHOLDER.sub(" ", pattern)) if w not in FUNCTION_WORDS}


_INSIDE_NO_NAME = frozenset({"the", "a", "an", "my", "our", "your", "to", "in", "on", "at", "of", "please"})
"""Words a name does not have after its first: "kill the lights" is a request, not a name."""


def _name_like(key: str) -> bool:
    """Whether ``key`` could be a household's name for a thing: not just function words, no
    article or preposition inside, no action word ("kill the lights", "lights out" are requests)."""
    words = key.split()
    return (
        len(key) >= 3
        and 0 < len(words) <= 4
        and any(w not in FUNCTION_WORDS for w in words)
        and not any(w in _INSIDE_NO_NAME for w in words[1:])
        and not polarity(key)
    )


def _close(embed: EmbedFn | None, a: str, b: str) -> bool:
    if embed is None:
        return False
    return float(np.dot(embed(a), embed(b))) >= 0.6
