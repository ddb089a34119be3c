"""Teachable concepts: what users teach the assistant, how a definition is read, and how the next
request uses it.

A person teaches by saying a definition (customer-initiated) or by answering the assistant's
"I don't know what *big light* is. Can you teach me?" (a *teachable moment*, asked within
:class:`TeachBudget`):

* a **name**: "the big light is the living room ceiling" (an alias of a device or area);
* a **phrasing**: "when I say lights out I mean turn off all the lights";
* a **routine**: "when I say movie time, dim the living room to 20 percent and turn off the
  kitchen light" -- every sentence must parse in the assistant's own NLU, and an area said in
  both the phrase and the sentences becomes a parameter ("study mode in the bedroom" works for
  every room);
* a **preference**: "my usual temperature is 21" (then "set the temperature to my usual").

"what have you learned" lists them and "forget big light" forgets one. No language model: the
grammar below finds the parts, the real NLU checks every sentence, and a definition it cannot
parse is refused with nothing stored. Concepts live in a :class:`ConceptBook` per household
(written through to the store when it has one) and apply only to a request the assistant failed
on, so a taught word never changes what already works.

>>> read_command("what have you learned")
Command(kind='list', phrase='', body='')
>>> read_command("forget the big light")
Command(kind='forget', phrase='big light', body='')
>>> read_command("my usual temperature is 21 degrees")
Command(kind='preference', phrase='temperature', body='21')
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Literal, Protocol

from selflearn.core.home import Home, normalize_name
from selflearn.core.schema import Concept, ConceptKind, DialogueAct

if TYPE_CHECKING:
    from selflearn.core.store import Store

Parses = Callable[[str], bool]
"""Whether the assistant's NLU understands a sentence in the home (and could act on it)."""

_LEADING = r"(?:please |hey |ok |okay |so )"
_TRAILING = r"(?: please| thanks| thank you)"
_FILLER = re.compile(rf"^{_LEADING}+|{_TRAILING}+$")
_LIST = re.compile(
    r"^(?:what (?:have you|did you|have i|did i) (?:learned|learnt|learn|taught you|teach you)"
    r"|what do you know|list (?:what you (?:learned|know)|your concepts))$"
)
_FORGET = re.compile(r"^(?:forget|unlearn) (?:about )?(?:what )?(?:the |my )?(?P<phrase>.+?)(?: means| is)?$")
_WHEN = re.compile(r"^(?:when|if|whenever) i say (?P<rest>.+)$")
SEPARATORS = re.compile(r"\s*(?:,|\bi mean\b|\bthat means\b|\bit means\b|\bmeans\b|\bthen\b|\bdo\b)\s*")
_NAME = re.compile(
    r"^(?:the |my |our )?(?P<phrase>.+?) (?:is|means|is called|is the same as|stands for) "
    r"(?:the |my |our )?(?P<name>.+)$"
)
_PREFERENCE = re.compile(
    r"^my (?:usual|favou?rite|preferred|normal|default) (?P<slot>temperature|brightness|volume)"
    r"(?: setting| level)? is (?P<value>\d{1,3})(?: percent| degrees| %)?$"
)
LEAD = re.compile(
    r"^(?:it'?s|it is|that'?s|that is|it means|that means|means|it'?s called|i mean|they are|they're)\s+"
)
_USUAL = re.compile(r"\b(?:my |the )?(?:usual|normal|favou?rite|preferred)(?: one| setting)?\b")
_SPLIT_BODY = re.compile(r"\s*(?:,|\band then\b|\bthen\b|\band\b)\s*")

PREFERENCE_INTENTS = {
    "temperature": ("HassClimateSetTemperature", "set the temperature to {value} degrees"),
    "brightness": ("HassLightSet", "set the brightness to {value} percent"),
    "volume": ("HassSetVolume", "set the volume to {value} percent"),
}
"""Slot a preference can set -> (the intent, the sentence that sets it)."""

# fmt: off
COMMAND_VERBS = frozenset(
    [
        "turn", "switch", "set", "dim", "brighten", "lock", "unlock", "open", "close", "start", "stop",
        "pause", "play", "resume", "mute", "unmute", "raise", "lower", "increase", "decrease", "add",
        "put", "what", "whats", "is", "are", "tell", "activate", "deactivate", "change", "make", "cancel",
        "skip", "next", "previous",
    ]
)
# fmt: on
"""Words a request starts with (used to find where a taught phrase ends)."""

MAX_PHRASE_WORDS = 6
"""Longest phrase that can be taught ("study mode in the bedroom")."""


def clean(text: str) -> str:
    """Lower-case words: punctuation dropped ("%" said as "percent"), politeness trimmed.

    >>> clean("Please, set it to 50%!")
    'set it to 50 percent'
    """
    return _FILLER.sub("", shaped(text)).strip()


@dataclass(frozen=True)
class Command:
    """What a teaching utterance asks for, before the NLU checked any of it."""

    kind: Literal["list", "forget", "when", "name", "preference"]
    phrase: str = ""
    """The words taught or forgotten (for a preference: the slot)."""
    body: str = ""
    """The definition: the rest of a "when I say" sentence, the name, or the value."""


def read_command(text: str) -> Command | None:
    """The teaching command ``text`` is, by its form alone, or ``None``."""
    said = clean(text)
    if not said:
        return None
    if _LIST.match(said):
        return Command("list")
    found = _PREFERENCE.match(said)
    if found:
        return Command("preference", found["slot"], found["value"])
    found = _WHEN.match(said)
    if found:
        return Command("when", "", found["rest"])
    found = _FORGET.match(said)
    if found:
        return Command("forget", found["phrase"].strip())
    found = _NAME.match(said)
    if found and len(found["phrase"].split()) <= MAX_PHRASE_WORDS:
        return Command("name", found["phrase"].strip(), found["name"].strip())
    return None


@cache
def command_shape() -> str:
    """One regular expression (Python's syntax) matching every text
    :func:`read_command` reads as a teaching command, and some more, once lower-cased with
    every character but letters, digits, ``_``, ``'`` and spaces made a space (``%`` said as
    "percent") and its spaces collapsed: :func:`shaped`. For a client that cannot import
    selflearn -- Home Assistant's integration -- to know which requests the dialogue should hear
    before the assistant does ("the big light is the kitchen lights", which Home Assistant
    2026.11 answers as a question about the kitchen lights). Served by ``GET /healthz``.

    >>> import re
    >>> bool(re.match(command_shape(), shaped("Please, the big light is the kitchen lights!")))
    True
    >>> bool(re.match(command_shape(), shaped("turn on the kitchen lights")))
    False
    """
    forms = (_LIST, _PREFERENCE, _WHEN, _FORGET, _NAME)
    unnamed = (re.sub(r"\(\?P<\w+>", "(?:", form.pattern) for form in forms)  # groups: one name each
    bodies = (body.removeprefix("^").removesuffix("$") for body in unnamed)
    either = "|".join(f"(?:{body})" for body in bodies)
    return rf"^{_LEADING}*(?:{either}){_TRAILING}*$"


def shaped(text: str) -> str:
    """``text`` as :func:`command_shape` reads it: :func:`clean` without taking politeness off."""
    words = re.sub(r"[^\w\s']", " ", text.lower().replace("%", " percent "))
    return " ".join(words.split())


def named_thing(home: Home, words: str) -> tuple[str, str] | None:
    """(id, configured name) of the entity or area ``words`` names in ``home`` (areas as
    ``area:<id>``), or ``None`` when it names nothing or several things."""
    words = clean(words)
    for candidate in (words, re.sub(r"^(?:the|my|our) ", "", words)):
        entities = home.entities_named(candidate)
        if len(entities) == 1:
            return entities[0].entity_id, entities[0].name
        area = home.area_named(candidate)
        if area is not None:
            return f"area:{area.area_id}", area.name
    return None


def split_sentences(body: str, parses: Parses) -> tuple[str, ...] | None:
    """``body`` cut into sentences the NLU understands ("dim the lights and turn off the tv" ->
    two), the fewest cuts first; ``None`` when no cut gives only sentences it understands."""
    body = clean(body)
    if not body:
        return None
    if parses(body):
        return (body,)
    parts = [p for p in _SPLIT_BODY.split(body) if p]
    if len(parts) > 1 and all(parses(p) for p in parts):
        return tuple(parts)
    return None


def read_when(rest: str, parses: Parses) -> tuple[str, tuple[str, ...]] | None:
    """The (phrase, sentences) of "when I say <rest>": an explicit separator ("i mean", ",",
    "that means") first; otherwise the first split point after which the rest parses."""
    pieces = SEPARATORS.split(rest, maxsplit=1)
    if len(pieces) == 2 and pieces[0] and pieces[1]:
        sentences = split_sentences(pieces[1], parses)
        if sentences is not None and len(pieces[0].split()) <= MAX_PHRASE_WORDS:
            return clean(pieces[0]), sentences
    words = rest.split()
    cuts = range(1, min(MAX_PHRASE_WORDS, len(words) - 1) + 1)
    # Without "I mean", the phrase ends where a command starts with its verb ("movie time | set
    # the lamp ..."): "movie time set | the lamp to 20 percent" may parse too, but is not meant.
    for cut in (c for c in cuts if words[c] in COMMAND_VERBS):
        sentences = split_sentences(" ".join(words[cut:]), parses)
        if sentences is not None:
            return clean(" ".join(words[:cut])), sentences
    return None


def first_unparsed(body: str, parses: Parses) -> str:
    """The first part of a definition the NLU does not understand (for the refusal's words)."""
    parts = [p for p in _SPLIT_BODY.split(clean(body)) if p]
    return next((p for p in parts if not parses(p)), clean(body))


def with_parameter(phrase: str, sentences: tuple[str, ...], home: Home) -> tuple[str, tuple[str, ...]]:
    """An area said in the phrase and in every sentence becomes the ``{area}`` parameter."""
    for area in home.areas:
        for name in (area.name, *area.aliases):
            key = normalize_name(name)
            pattern = re.compile(rf"\b{re.escape(key)}\b")
            if pattern.search(phrase) and all(pattern.search(s) for s in sentences):
                return pattern.sub("{area}", phrase), tuple(pattern.sub("{area}", s) for s in sentences)
    return phrase, sentences


def concept_id(household_id: str, user_id: str, scope: str, phrase: str) -> str:
    """The id of the concept for ``phrase`` (one per phrase, scope and home)."""
    owner = user_id if scope == "user" else ""
    digest = hashlib.blake2b(f"{household_id}|{owner}|{phrase}".encode(), digest_size=6).hexdigest()
    return f"{household_id}.c{digest}"


@dataclass(frozen=True)
class Applied:
    """A request after the concepts it uses: the sentences to run in its place."""

    concepts: tuple[Concept, ...]
    sentences: tuple[str, ...]
    """One sentence (a name, phrasing or preference used) or several (a routine)."""

    @property
    def rule_id(self) -> str:
        return "taught:" + "+".join(c.concept_id for c in self.concepts)


class ConceptWrites(Protocol):
    """Where a :class:`ConceptBook` writes what is taught and forgotten: a
    :class:`~selflearn.core.store.Store`, or what stands for one (the service's store as it is open
    at each write: :class:`~selflearn.service.access.CurrentStore`)."""

    def put_concept(self, concept: Concept) -> Concept | None: ...

    def forget_concept(self, concept_id: str) -> bool: ...


@dataclass
class ConceptBook:
    """The concepts of every household, applied to requests; written through to ``store``."""

    store: ConceptWrites | None = None
    by_household: dict[str, dict[str, Concept]] = field(default_factory=dict)

    @classmethod
    def from_store(cls, store: Store, writes: ConceptWrites | None = None) -> ConceptBook:
        """A book holding every concept in ``store``, writing changes to ``writes`` (default:
        back to ``store``)."""
        book = cls(writes or store)
        for concept in store.concepts():
            book.by_household.setdefault(concept.household_id, {})[concept.concept_id] = concept
        return book

    def listing(self, household_id: str, user_id: str | None = None) -> list[Concept]:
        """The concepts in use for ``user_id`` in ``household_id`` (the household's, and the
        user's own), oldest first."""
        found = self.by_household.get(household_id, {}).values()
        usable = [c for c in found if c.scope == "household" or c.user_id == user_id]
        return sorted(usable, key=lambda c: (c.timestamp, c.concept_id))

    def teach(self, concept: Concept) -> Concept | None:
        """Keep ``concept`` (replacing the one for the same phrase); returns the one replaced."""
        if self.store is not None:
            self.store.put_concept(concept)
        book = self.by_household.setdefault(concept.household_id, {})
        old = book.get(concept.concept_id)
        book[concept.concept_id] = concept
        return old

    def forget(self, household_id: str, user_id: str, phrase: str) -> list[Concept]:
        """Forget the concepts of ``phrase`` (said as taught, with or without "the"); returns them."""
        key = clean(phrase)
        keys = {key, re.sub(r"^(?:the|my|our) ", "", key)}
        gone = [c for c in self.listing(household_id, user_id) if c.phrase in keys or _display(c) in keys]
        for concept in gone:
            if self.store is not None:
                self.store.forget_concept(concept.concept_id)
            self.by_household[household_id].pop(concept.concept_id, None)
        return gone

    def forget_household(self, household_id: str) -> int:
        """Forget everything a household taught (the right to be forgotten)."""
        return len(self.by_household.pop(household_id, {}))

    def apply(self, text: str, household_id: str, user_id: str, home: Home) -> Applied | None:
        """The sentences to run instead of ``text`` with this household's concepts, or ``None``."""
        concepts = self.listing(household_id, user_id)
        if not concepts:
            return None
        said = clean(text)
        for concept in reversed(concepts):  # the latest teaching wins
            if concept.kind in ("phrasing", "routine"):
                filled = _match_phrase(concept, said, home)
                if filled is not None:
                    return Applied((concept,), filled)
        used: list[Concept] = []
        out = f" {said} "
        names = [c for c in concepts if c.kind == "name"]
        for concept in sorted(names, key=lambda c: -len(c.phrase)):
            if f" {concept.phrase} " in out:
                out = out.replace(f" {concept.phrase} ", f" {normalize_name(concept.meaning[0])} ")
                used.append(concept)
        for concept in concepts:
            if concept.kind == "preference":
                changed = _use_preference(concept, out.strip())
                if changed is not None:
                    out = f" {changed} "
                    used.append(concept)
        if not used:
            return None
        return Applied(tuple(used), (out.strip(),))


def _display(concept: Concept) -> str:
    return concept.phrase.replace("{area}", "").strip()


def _match_phrase(concept: Concept, said: str, home: Home) -> tuple[str, ...] | None:
    phrase = concept.phrase
    if "{area}" not in phrase:
        return concept.meaning if said == phrase else None
    pattern = re.escape(phrase).replace(re.escape("{area}"), r"(?P<area>.+)")
    found = re.fullmatch(pattern, said)
    if not found:
        return None
    area = home.area_named(found["area"].removeprefix("the "))
    if area is None:
        return None
    name = normalize_name(area.name)
    return tuple(sentence.replace("{area}", name) for sentence in concept.meaning)


def _use_preference(concept: Concept, said: str) -> str | None:
    slot, value = concept.phrase, concept.meaning[0]
    if slot not in said:
        return None
    if _USUAL.search(said):
        return _USUAL.sub(value, said)
    if not re.search(r"\d", said):
        unit = " degrees" if slot == "temperature" else " percent"
        return f"{said} to {value}{unit}"
    return None


def describe(concept: Concept) -> str:
    """One line a person reads: ``big light means Living Room Ceiling``; a parameter reads
    ``[room]`` (``study mode in the [room] means turn on the [room] lights``)."""
    meaning = " and then ".join(concept.meaning).replace("{area}", "[room]")
    if concept.kind == "preference":
        return f"your usual {concept.phrase} is {meaning}"
    return f"{concept.phrase.replace('{area}', '[room]')} means {meaning}"


# fmt: off
_NOT_A_NAME = frozenset(
    [
        "a", "an", "the", "my", "our", "your", "to", "on", "off", "in", "at", "of", "for", "and", "or",
        "is", "are", "was", "be", "it", "its", "this", "that", "these", "those", "all", "some", "any",
        "set", "turn", "switch", "make", "can", "could", "would", "you", "i", "we", "he", "she",
        "they", "do", "does", "did", "not", "no", "yes", "now", "here", "there", "then", "than", "so",
        "just", "please", "what", "whats", "how", "when", "where", "which", "who", "up", "down",
        "half", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty",
        "ninety", "hundred", "minute", "minutes", "hour", "hours", "second", "seconds", "percent",
        "degrees", "timer", "start", "stop", "play", "pause", "open", "close", "lock", "unlock",
    ]
)
# fmt: on
"""Words a name the assistant should ask about does not start with (and is not made of only)."""


_INSIDE_NOT_A_NAME = frozenset(
    ["the", "a", "an", "my", "our", "your", "to", "in", "on", "at", "of", "please"]
)
"""Words a name does not have after its first word: "kill the lights" is a request read as a name."""


def plausible_name(words: str) -> bool:
    """Whether unknown ``words`` look like a name someone could teach (1-3 words of letters,
    not starting with a function, command or number word, no article or preposition inside):
    "big light", not "to", "eighty my" or "kill the lights"."""
    tokens = words.split()
    if tokens and tokens[0] in ("the", "my", "our", "a"):
        tokens = tokens[1:]
    return (
        1 <= len(tokens) <= 3
        and all(t.isalpha() for t in tokens)
        and tokens[0] not in _NOT_A_NAME
        and not all(t in _NOT_A_NAME for t in tokens)
        and not any(t in _INSIDE_NOT_A_NAME for t in tokens[1:])
    )


@dataclass
class TeachBudget:
    """When the assistant may ask to be taught: only about words that look like a name and that
    failed in this home at least :attr:`min_repeats` times (a recogniser's one-off garbage does
    not; a household's own word for a thing does), at most once per person and name per
    :attr:`per_name`, none while the user is retrying fast (the previous failure less than
    :attr:`burst_s` ago), and never again about words the user declined to teach. What was
    asked and declined is rebuilt from the dialogue acts after a restart (:meth:`restore`)."""

    per_name: timedelta = timedelta(hours=1)
    burst_s: float = 6.0
    min_repeats: int = 2
    typed_min_repeats: int | None = None
    """Failures of typed words before asking (``None``: :attr:`min_repeats`). Typed text has no
    misrecognitions, so 1 is a sensible choice for an assistant people type to."""
    gaps: dict[tuple[str, str], int] = field(default_factory=dict)
    asked: dict[tuple[str, str, str], datetime] = field(default_factory=dict)
    """(household, user, words) -> when the user was last asked to teach them."""
    declined: set[tuple[str, str, str]] = field(default_factory=set)
    last_failure: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def allows(self, household_id: str, user_id: str, words: str, now: datetime, typed: bool = False) -> bool:
        """Whether a teaching question about ``words`` may be asked now (and if so, it counts);
        ``typed``: the words were typed, not recognised from speech."""
        user, pattern, key = (household_id, user_id), (household_id, words), (household_id, user_id, words)
        previous = self.last_failure.get(user)
        self.last_failure[user] = now
        if not plausible_name(words):
            return False
        self.gaps[pattern] = seen = self.gaps.get(pattern, 0) + 1
        needed = self.typed_min_repeats if typed and self.typed_min_repeats is not None else self.min_repeats
        if key in self.declined or seen < needed:
            return False
        if previous is not None and (now - previous).total_seconds() < self.burst_s:
            return False
        last = self.asked.get(key)
        if last is not None and timedelta(0) <= now - last < self.per_name:
            return False
        self.asked[key] = now
        return True

    def decline(self, household_id: str, user_id: str, words: str) -> None:
        """The user would not teach ``words``: never ask them about it again."""
        self.declined.add((household_id, user_id, words))

    def restore(self, acts: Iterable[DialogueAct]) -> int:
        """Take earlier dialogue acts (a store's ``dialogue_acts``): the refusals, so a restarted
        assistant never asks again what a user declined to teach, and when each person was asked
        about each name, so the hour between two questions about it outlives a restart; returns
        how many refusals were taken."""
        before = len(self.declined)
        for act in acts:
            if act.kind != "teach" or not act.proposal or act.raised_by == "user":
                continue
            key = (act.household_id, act.user_id, act.proposal)
            if act.answer == "declined":
                self.decline(*key)
            last = self.asked.get(key)
            if last is None or act.timestamp > last:
                self.asked[key] = act.timestamp
        return len(self.declined) - before

    def forget_household(self, household_id: str) -> None:
        """Forget everything about a household (the right to be forgotten)."""
        self.asked = {k: v for k, v in self.asked.items() if k[0] != household_id}
        self.last_failure = {k: v for k, v in self.last_failure.items() if k[0] != household_id}
        self.gaps = {k: v for k, v in self.gaps.items() if k[0] != household_id}
        self.declined = {d for d in self.declined if d[0] != household_id}


def make_concept(
    kind: ConceptKind,
    phrase: str,
    meaning: Iterable[str],
    household_id: str,
    user_id: str,
    when: datetime,
    target: str | None = None,
    taught_by: str | None = None,
    scope: Literal["household", "user"] = "household",
) -> Concept:
    """A concept record for what was just taught."""
    return Concept(
        concept_id=concept_id(household_id, user_id, scope, phrase),
        household_id=household_id,
        user_id=user_id,
        scope=scope,
        kind=kind,
        phrase=phrase,
        meaning=tuple(meaning),
        target=target,
        timestamp=when,
        taught_by=taught_by,
    )
