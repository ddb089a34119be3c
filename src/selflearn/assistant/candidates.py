"""Which of Home Assistant's sentence templates can possibly match a text: a sound pre-filter.

``hassil.recognize_all`` tries every template that passes its own required-fragment test, and
most of its time goes to templates that cannot match. :class:`TemplateFilter` hands hassil a
reduced :class:`~hassil.intents.Intents` holding only the templates that *might* match; hassil
then runs unchanged on it. Results are identical to running hassil on all intents because

* only templates that provably yield no match are dropped, and
* the kept intents, intent blocks and templates stay in their original order (hassil's
  ``recognize_best`` breaks ties by iteration order).

Two tests drop a template:

1. **hassil's own required-fragment test** (``Sentence.get_required_clauses`` against the same
   haystack ``recognize_all`` builds), indexed once as bit masks so it costs microseconds.
2. **word coverage** (strict matching only, or templates without slot lists): without
   wildcards or unmatched entities, hassil consumes every character of the text with a literal
   chunk of the template, of a slot value, or of a number word, and chunks are matched whole.
   So every word of an ASCII text made of letters, apostrophes and spaces must be a
   concatenation of whitespace-free pieces of those chunks (compared case-insensitively, as
   hassil's ``re.IGNORECASE`` does for ASCII). A template with a word that is not such a
   concatenation cannot match. Texts with digits, other punctuation or non-ASCII characters,
   and templates with wildcards or pieces outside ASCII, are never dropped by this test.

``bench/experiments/nlu_equivalence.py`` checks the claim on thousands of simulated texts.
"""

from __future__ import annotations

import dataclasses
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hassil import Intents
from hassil.expression import (
    Alternative,
    Expression,
    Group,
    ListReference,
    RuleReference,
    Sentence,
    TextChunk,
)
from hassil.intents import Intent, IntentData, RangeSlotList, SlotList, TextSlotList, WildcardSlotList
from hassil.numbers import get_rbnf_engine

from selflearn.assistant.fastmatch import tracked_forms

_PLAIN_TEXT = re.compile(r"[a-z' ]*")
"""Texts the word-coverage test applies to (after lower-casing an ASCII text)."""

_BREAK_WORDS = str.maketrans("-_", "  ")


class _Unfilterable(Exception):
    """A template whose vocabulary cannot be bounded (wildcards, unknown lists, non-ASCII)."""


@dataclass(frozen=True)
class _Vocabulary:
    """The whitespace-free, lower-cased pieces a template can consume."""

    pieces: frozenset[str]
    """Pieces from the template's own chunks, its rules and its fixed slot lists."""
    dynamic: bool
    """True if it also consumes values of the per-call slot lists (area/floor/name)."""


@dataclass(frozen=True)
class _Scope:
    """What a template's references resolve to, with hassil's precedence."""

    rules: Mapping[str, Sentence]
    """The intents' expansion rules overridden by the block's."""
    local_lists: Mapping[str, SlotList]
    """The block's own slot lists (they override everything)."""
    global_lists: Mapping[str, SlotList]
    """The intents' slot lists (the per-call lists override them)."""
    dynamic_lists: frozenset[str]
    """Names of the per-call slot lists."""
    language: str


@dataclass
class _Template:
    """One sentence template with what the filters need to know about it."""

    ident: int
    """Position: block index << 16 | template index."""
    sentence: Sentence
    clauses: int
    """Bit set of the template's required clauses: it survives if the text meets every one."""
    has_lists: bool
    """True if the template refers to any slot list (unmatched entities can then absorb text)."""
    scope: _Scope
    vocabulary: _Vocabulary | None = None
    """Computed on first use (see ``bounded``)."""
    bounded: bool | None = None
    """Whether the vocabulary is bounded; ``None`` until computed."""
    entity_bounds: _EntityBounds | None = None
    """Computed on first use (see ``TemplateFilter.by_entity_bound``)."""
    literals: Callable[[str], re.Match[str] | None] | None = None
    """Search for any lower-cased text of the template's own chunks; computed on first use."""
    literals_bounded: bool = True
    """False if those texts cannot bound what the template matches (see ``_literals``)."""


@dataclass(frozen=True)
class _EntityBounds:
    """What bounds the number of entities of a template's results."""

    lists: tuple[tuple[str, int], ...]
    """(list name, most references to it on one path through the template)."""
    fixed: int
    """Fixed slots of the block plus slots it copies from the intent context."""


@dataclass
class _Block:
    """An intent block (``IntentData``) and its templates in hassil's order."""

    intent: str
    data: IntentData
    templates: list[_Template]


class TemplateFilter:
    """Reduce ``intents`` to the templates that can match a given text (see module docstring).

    ``dynamic_lists`` names the slot lists passed per call (Home Assistant's ``area``,
    ``floor`` and ``name``); their values are read from each call's lists.
    """

    def __init__(
        self,
        intents: Intents,
        dynamic_lists: Iterable[str] = ("area", "floor", "name"),
        cache_size: int = 4096,
    ) -> None:
        if intents.settings.ignore_whitespace:
            raise ValueError("TemplateFilter supports whitespace-separated languages only")
        self.intents = intents
        self.dynamic_lists = frozenset(dynamic_lists)
        self._skip_words = list(intents.skip_words)
        fragments: dict[str, int] = {}
        clauses: dict[frozenset[str], int] = {}
        self._blocks: list[_Block] = []
        for intent in intents.intents.values():
            for data in intent.data:
                rules = {**intents.expansion_rules, **data.expansion_rules}
                scope = _Scope(
                    rules, data.slot_lists, intents.slot_lists, self.dynamic_lists, intents.language
                )
                templates: list[_Template] = []
                for sentence in data.sentences:
                    for clause in sentence.get_required_clauses(rules):
                        for fragment in clause:
                            fragments.setdefault(fragment, len(fragments))
                    required = sum(
                        1 << clauses.setdefault(clause, len(clauses))
                        for clause in sentence.get_required_clauses(rules)
                    )
                    ident = len(self._blocks) << 16 | len(templates)
                    has_lists = _has_list_reference(sentence.expression, rules, set())
                    templates.append(_Template(ident, sentence, required, has_lists, scope))
                self._blocks.append(_Block(intent.name, data, templates))
        # hassil's test per template: every clause has a fragment in the text. Bit sets make it
        # one pass over the fragments (each present fragment satisfies its clauses), then the
        # templates whose clauses are all satisfied, read off a bit set over the templates.
        satisfies: dict[str, int] = {}
        for clause, bit in clauses.items():
            for fragment in clause:
                satisfies[fragment] = satisfies.get(fragment, 0) | 1 << bit
        self._fragments = tuple((f, satisfies[f]) for f in fragments)
        self._all_clauses = (1 << len(clauses)) - 1
        self._templates = [t for block in self._blocks for t in block.templates]
        # Per clause, the templates (as bits, in hassil's order) that require it.
        self._requiring = [0] * len(clauses)
        for index, template in enumerate(self._templates):
            required = template.clauses
            while required:
                low = required & -required
                self._requiring[low.bit_length() - 1] |= 1 << index
                required ^= low
        self._all_templates = (1 << len(self._templates)) - 1
        self._positions = {id(t.sentence): t.ident for t in self._templates}
        self._survivors: dict[int, list[_Template]] = {}
        self._reduced: OrderedDict[tuple[int, ...], Intents] = OrderedDict()
        self._cache_size = cache_size
        self._covers: dict[tuple[int, frozenset[str], str], bool] = {}

    def position(self, sentence: Sentence | None) -> int:
        """Where hassil tries ``sentence`` among the intents' templates (smaller: earlier)."""
        if sentence is None or id(sentence) not in self._positions:
            raise ValueError("not one of this filter's templates")
        return self._positions[id(sentence)]

    def match_forms(self, text: str) -> tuple[str, str]:
        """The text as hassil matches it: normalized, with and without skip words."""
        tracked, no_skip = tracked_forms(text, self._skip_words)
        return tracked.text, no_skip.text

    def candidates(
        self,
        text: str,
        slot_lists: Mapping[str, SlotList],
        allow_unmatched_entities: bool = False,
        forms: tuple[str, str] | None = None,
    ) -> Intents:
        """``intents`` reduced to the templates that can match ``text`` with ``slot_lists``.

        ``forms`` is :meth:`match_forms` of ``text`` if the caller has it already.
        """
        return self._intents_for(
            tuple(t.ident for t in self._kept(text, slot_lists, allow_unmatched_entities, forms))
        )

    def by_entity_bound(
        self,
        text: str,
        slot_lists: Mapping[str, SlotList],
        forms: tuple[str, str] | None = None,
    ) -> list[tuple[int, Intents]]:
        """The unmatched-entity pass's candidates grouped by how many entities a result can have.

        Returns (bound, intents) pairs, highest bound first; each ``intents`` holds, in hassil's
        order, the candidate templates (:meth:`candidates` with ``allow_unmatched_entities``)
        none of whose results -- matched or not, with any unmatched entities -- can have more
        than ``bound`` entities. A result's entities are the slot lists it matched (one per
        list reference on the path matched), the block's fixed slots and the slots copied
        from the intent context; a list can only be matched if one of its values can occur
        in the text (:meth:`_weight`), so references to the others count for nothing.

        Only for callers that, like Home Assistant's unmatched-entity pass, ignore results
        that matched no literal text (``text_chunks_matched`` 0): templates none of whose own
        chunks (nor number words) occur in the text are left out, as they can produce no other.
        """
        with_skip, no_skip = forms or self.match_forms(text)
        kept = self._kept(text, slot_lists, True, (with_skip, no_skip))
        weights: dict[str, int] = {}
        haystack = _value_haystack(text, with_skip, no_skip)
        groups: dict[int, list[int]] = {}
        for template in kept:
            if haystack is not None and not self._may_match_literal(template, slot_lists, haystack):
                continue
            bounds = self._bounds(template)
            bound = bounds.fixed
            for name, count in bounds.lists:
                weight = weights.get(name)
                if weight is None or template.scope.local_lists:
                    weight = self._weight(name, template, slot_lists, haystack)
                    if not template.scope.local_lists:
                        weights[name] = weight
                bound += count * weight
            groups.setdefault(bound, []).append(template.ident)
        return [(bound, self._intents_for(tuple(groups[bound]))) for bound in sorted(groups, reverse=True)]

    def _kept(
        self,
        text: str,
        slot_lists: Mapping[str, SlotList],
        allow_unmatched_entities: bool,
        forms: tuple[str, str] | None,
    ) -> list[_Template]:
        with_skip, no_skip = forms or self.match_forms(text)
        haystack = f"{with_skip.casefold()}\n{no_skip.casefold()}"
        satisfied = 0
        for fragment, clause_bits in self._fragments:
            if fragment in haystack:
                satisfied |= clause_bits
        failed = self._all_clauses & ~satisfied
        survivors = self._survivors.get(failed)
        if survivors is None:
            dead = 0
            while failed:
                low = failed & -failed
                dead |= self._requiring[low.bit_length() - 1]
                failed ^= low
            alive = self._all_templates & ~dead
            survivors = []
            while alive:
                low = alive & -alive
                survivors.append(self._templates[low.bit_length() - 1])
                alive ^= low
            if len(self._survivors) > self._cache_size:
                self._survivors.clear()
            self._survivors[self._all_clauses & ~satisfied] = survivors

        word_sets = self._word_sets(text, with_skip, no_skip)
        dynamic = _dynamic_pieces(slot_lists) if word_sets else None
        if dynamic is None or not set(slot_lists) <= self.dynamic_lists:
            word_sets = []
        kept: list[_Template] = []
        for template in survivors:
            if (
                word_sets
                and (not allow_unmatched_entities or not template.has_lists)
                and not self._may_cover(template, word_sets, dynamic or frozenset())
            ):
                continue
            kept.append(template)
        return kept

    # --- entity bounds -----------------------------------------------------------------------

    def _bounds(self, template: _Template) -> _EntityBounds:
        if template.entity_bounds is None:
            block = self._blocks[template.ident >> 16]
            try:
                counts = _list_counts(template.sentence.expression, template.scope.rules, ())
            except ValueError:  # recursive or missing rules: no bound
                counts, extra = {}, _UNBOUNDED
            else:
                extra = 0
            copied = sum(
                1
                for value in (block.data.requires_context or {}).values()
                if isinstance(value, Mapping) and value.get("slot")
            )
            template.entity_bounds = _EntityBounds(
                tuple(sorted(counts.items())), len(block.data.slots or {}) + copied + extra
            )
        return template.entity_bounds

    def _may_match_literal(
        self, template: _Template, slot_lists: Mapping[str, SlotList], haystack: str
    ) -> bool:
        """Whether any result of ``template`` can count matched literal text (ASCII texts).

        hassil counts ``text_chunks_matched`` only for the template's own chunks (matched at
        the start of the rest of the text, or after an unmatched entity at a word further on)
        and for number words of ranges; text a list value matches does not count. A chunk can
        only match where its text occurs (case-insensitively; words broken at "-" and "_" are
        in ``haystack`` too).
        """
        if template.literals is None:
            literals = _literals(template.sentence.expression, template.scope.rules, set())
            # One search for any of them (an empty set: not bounded, a chunk that is not ASCII).
            template.literals = (
                re.compile("|".join(re.escape(literal) for literal in sorted(literals))).search
                if literals
                else None
            )
            template.literals_bounded = bool(literals)
        if not template.literals_bounded or (
            template.literals is not None and template.literals(haystack) is not None
        ):
            return True
        for name, _ in self._bounds(template).lists:
            slot_list = template.scope.local_lists.get(name)
            if slot_list is None:
                slot_list = slot_lists.get(name)
            if slot_list is None:
                slot_list = template.scope.global_lists.get(name)
            if isinstance(slot_list, RangeSlotList):
                if not slot_list.words:
                    continue
                try:
                    pieces = _range_pieces(slot_list, template.scope.language)
                except _Unfilterable:
                    return True
                if _any_in(pieces, haystack):
                    return True
            elif not isinstance(slot_list, (TextSlotList, WildcardSlotList)):
                return True  # missing (an inline range, or an error) or unknown
        return False

    def _weight(
        self, name: str, template: _Template, slot_lists: Mapping[str, SlotList], haystack: str | None
    ) -> int:
        """Entities one reference to list ``name`` (as hassil resolves it here) can add: 0 if
        it cannot match the text, 1 if it can, :data:`_UNBOUNDED` if values hold lists.

        ``haystack``: every form of the text hassil matches, lower-cased (``None`` for texts
        that are not ASCII: then every list can match). A text list value that is a literal
        chunk can only match where its text occurs; template values always count (and
        :data:`_UNBOUNDED` if they may refer to lists); a number range needs a digit or one of
        its number words; wildcards and unknown lists always count.
        """
        slot_list = template.scope.local_lists.get(name)
        if slot_list is None:
            slot_list = slot_lists.get(name)
        if slot_list is None:
            slot_list = template.scope.global_lists.get(name)
        if isinstance(slot_list, TextSlotList):
            weight = 0
            for value in slot_list.values:
                if not isinstance(value.text_in, TextChunk):
                    if _has_list_reference(value.text_in, {}, set()):
                        return _UNBOUNDED
                    weight = 1
                elif weight == 0:
                    value_text = value.text_in.text.strip()
                    if haystack is None or not value_text.isascii() or value_text.lower() in haystack:
                        weight = 1
            return weight
        if haystack is None:
            return 1
        if isinstance(slot_list, RangeSlotList):
            if any(c.isdigit() for c in haystack):
                return 1
            if not slot_list.words:
                return 0
            try:
                pieces = _range_pieces(slot_list, template.scope.language)
            except _Unfilterable:
                return 1
            return int(_any_in(pieces, haystack))
        return 1

    # --- word coverage ---------------------------------------------------------------------

    @staticmethod
    def _word_sets(text: str, with_skip: str, no_skip: str) -> list[tuple[str, ...]]:
        """The words of each text hassil may match, or ``[]`` when the coverage test is off."""
        if not text.isascii():
            return []
        out = []
        for candidate in (no_skip, with_skip):
            lowered = candidate.lower()
            if not _PLAIN_TEXT.fullmatch(lowered):
                return []
            out.append(tuple(lowered.split()))
        return out

    def _may_cover(
        self, template: _Template, word_sets: list[tuple[str, ...]], dynamic: frozenset[str]
    ) -> bool:
        vocabulary = self._vocabulary(template)
        if vocabulary is None:
            return True
        extra = dynamic if vocabulary.dynamic else frozenset()
        key_id = id(vocabulary)
        for words in word_sets:
            ok = True
            for word in words:
                key = (key_id, extra, word)
                covered = self._covers.get(key)
                if covered is None:
                    covered = _segments(word, vocabulary.pieces, extra)
                    if len(self._covers) > 200_000:
                        self._covers.clear()
                    self._covers[key] = covered
                if not covered:
                    ok = False
                    break
            if ok:
                return True
        return False

    @staticmethod
    def _vocabulary(template: _Template) -> _Vocabulary | None:
        if template.bounded is None:
            try:
                pieces: set[str] = set()
                dynamic = _collect(template.sentence.expression, template.scope, pieces, set())
                template.vocabulary = _Vocabulary(frozenset(pieces), dynamic)
                template.bounded = True
            except _Unfilterable:
                template.bounded = False
        return template.vocabulary

    # --- reduced intents -------------------------------------------------------------------

    def _intents_for(self, kept: tuple[int, ...]) -> Intents:
        reduced = self._reduced.get(kept)
        if reduced is not None:
            self._reduced.move_to_end(kept)
            return reduced
        by_block: dict[int, list[Sentence]] = {}
        for ident in kept:
            block = self._blocks[ident >> 16]
            by_block.setdefault(ident >> 16, []).append(block.templates[ident & 0xFFFF].sentence)
        intents: dict[str, Intent] = {}
        for b, sentences in by_block.items():
            block = self._blocks[b]
            data = dataclasses.replace(block.data)
            # ``IntentData.sentences`` is a cached_property: seed its cache with the subset
            # (same Sentence objects, same order), so hassil parses nothing again.
            data.__dict__["sentences"] = sentences
            intents.setdefault(block.intent, Intent(block.intent, [])).data.append(data)
        reduced = dataclasses.replace(self.intents, intents=intents)
        self._reduced[kept] = reduced
        if len(self._reduced) > self._cache_size:
            self._reduced.popitem(last=False)
        return reduced


_UNBOUNDED = 1 << 20
"""An entity bound that bounds nothing."""


def _list_counts(
    expression: Expression, rules: Mapping[str, Sentence], seen: tuple[str, ...]
) -> dict[str, int]:
    """Per list name, at least the number of references to it on any one path (captures,
    which make no entity, excluded); a path through a sequence or permutation takes every
    item, through an alternative one item."""
    if isinstance(expression, ListReference):
        return {} if expression.is_capture else {expression.list_name: 1}
    if isinstance(expression, Alternative):
        out: dict[str, int] = {}
        for item in expression.items:
            for name, count in _list_counts(item, rules, seen).items():
                out[name] = max(out.get(name, 0), count)
        return out
    if isinstance(expression, Group):  # sequences and permutations
        out = {}
        for item in expression.items:
            for name, count in _list_counts(item, rules, seen).items():
                out[name] = out.get(name, 0) + count
        return out
    if isinstance(expression, RuleReference):
        name = expression.rule_name
        if name in seen:
            raise ValueError(f"recursive expansion rule <{name}>")
        if name not in rules:
            raise ValueError(f"missing expansion rule <{name}>")
        return _list_counts(rules[name].expression, rules, (*seen, name))
    return {}


def _literals(expression: Expression, rules: Mapping[str, Sentence], seen: set[str]) -> frozenset[str]:
    """Stripped, lower-cased texts of every non-blank chunk of ``expression`` (through its
    rules, not into list values); empty if any is not ASCII or a rule is missing."""
    out: set[str] = set()
    stack: list[Expression] = [expression]
    while stack:
        item = stack.pop()
        if isinstance(item, TextChunk):
            text = item.text.strip()
            if text:
                if not text.isascii():
                    return frozenset()
                out.add(text.lower())
        elif isinstance(item, Group):
            stack.extend(item.items)
        elif isinstance(item, RuleReference):
            if item.rule_name not in rules:
                return frozenset()
            if item.rule_name not in seen:
                seen.add(item.rule_name)
                stack.append(rules[item.rule_name].expression)
    return frozenset(out)


_ANY_IN: dict[frozenset[str], Callable[[str], re.Match[str] | None]] = {}


def _any_in(pieces: frozenset[str], haystack: str) -> bool:
    """Whether any of ``pieces`` occurs in ``haystack`` (one compiled search per piece set)."""
    search = _ANY_IN.get(pieces)
    if search is None:
        search = _ANY_IN[pieces] = re.compile("|".join(re.escape(p) for p in sorted(pieces)) or "(?!)").search
    return search(haystack) is not None


def _value_haystack(text: str, with_skip: str, no_skip: str) -> str | None:
    """Every form of an ASCII text hassil matches, lower-cased; ``None`` for other texts."""
    if not text.isascii():
        return None
    return "\n".join(
        form for t in (with_skip.lower(), no_skip.lower()) for form in (t, t.translate(_BREAK_WORDS))
    )


def _segments(word: str, pieces: frozenset[str], extra: frozenset[str]) -> bool:
    """True if ``word`` is a concatenation of pieces."""
    if word in pieces or word in extra:
        return True
    reachable = [True] + [False] * len(word)
    for start in range(len(word)):
        if not reachable[start]:
            continue
        for end in range(start + 1, len(word) + 1):
            if not reachable[end]:
                part = word[start:end]
                if part in pieces or part in extra:
                    reachable[end] = True
    return reachable[-1]


def _pieces(text: str, out: set[str]) -> None:
    for piece in text.split():
        if not piece.isascii():
            raise _Unfilterable(piece)
        out.add(piece.lower())


def _dynamic_pieces(slot_lists: Mapping[str, SlotList]) -> frozenset[str] | None:
    """Pieces of the per-call lists' values, or ``None`` if they cannot be bounded."""
    out: set[str] = set()
    try:
        for slot_list in slot_lists.values():
            if not isinstance(slot_list, TextSlotList):
                return None
            for value in slot_list.values:
                _collect(value.text_in, _EMPTY_SCOPE, out, set())
    except _Unfilterable:
        return None
    return frozenset(out)


def _has_list_reference(expression: Expression, rules: Mapping[str, Sentence], seen: set[str]) -> bool:
    """True if ``expression`` may refer to a slot list (unknown rules and expressions count)."""
    if isinstance(expression, ListReference):
        return True
    if isinstance(expression, Group):
        return any(_has_list_reference(item, rules, seen) for item in expression.items)
    if isinstance(expression, RuleReference):
        name = expression.rule_name
        if name in seen:
            return False  # its answer was given on the first visit
        if name not in rules:
            return True
        seen.add(name)
        return _has_list_reference(rules[name].expression, rules, seen)
    return not isinstance(expression, TextChunk)


def _collect(
    expression: Expression,
    scope: _Scope,
    out: set[str],
    seen: set[str],
) -> bool:
    """Add the pieces ``expression`` can consume to ``out``; True if it reads a per-call list.

    ``seen`` holds rules and lists already collected: collecting them again adds nothing, and
    whether they read a per-call list was already reported on the first visit.
    """
    if isinstance(expression, TextChunk):
        _pieces(expression.text, out)
        return False
    if isinstance(expression, Group):
        dynamic = False
        for item in expression.items:
            dynamic |= _collect(item, scope, out, seen)
        return dynamic
    if isinstance(expression, RuleReference):
        name = expression.rule_name
        if name in seen:
            return False
        if name not in scope.rules:
            raise _Unfilterable(name)
        seen.add(name)
        return _collect(scope.rules[name].expression, scope, out, seen)
    if isinstance(expression, ListReference):
        name = expression.list_name
        if f"{{{name}}}" in seen:
            return False
        seen.add(f"{{{name}}}")
        # hassil's precedence: the block's own lists, then the call's, then the intents'.
        slot_list = scope.local_lists.get(name)
        if slot_list is None:
            if name in scope.dynamic_lists:
                return True
            slot_list = scope.global_lists.get(name)
        if slot_list is None:
            inline = expression.get_inline_range()
            if inline is None:
                raise _Unfilterable(name)
            slot_list = RangeSlotList(name=name, start=inline[0], stop=inline[1], step=inline[2])
        if isinstance(slot_list, TextSlotList):
            dynamic = False
            for value in slot_list.values:
                dynamic |= _collect(value.text_in, scope, out, seen)
            return dynamic
        if isinstance(slot_list, RangeSlotList):
            out.update(_range_pieces(slot_list, scope.language))
            return False
        raise _Unfilterable(name)  # wildcards and unknown list types
    raise _Unfilterable(type(expression).__name__)


_EMPTY_SCOPE = _Scope({}, {}, {}, frozenset(), "en")

_RANGE_PIECES: dict[tuple[Any, ...], frozenset[str]] = {}


def _range_pieces(range_list: RangeSlotList, default_language: str) -> frozenset[str]:
    """Pieces of every number word hassil's range trie holds for ``range_list``."""
    if not range_list.words:
        return frozenset()
    language = range_list.words_language or default_language
    key = (language, range_list.start, range_list.stop, range_list.step, range_list.fraction_type)
    cached = _RANGE_PIECES.get(key)
    if cached is None:
        engine = get_rbnf_engine(language)
        out: set[str] = set()
        for number in range_list.get_numbers():
            for words in engine.format_number(number).text_by_ruleset.values():
                _pieces(words, out)
                _pieces(words.translate(_BREAK_WORDS), out)
        cached = frozenset(out)
        _RANGE_PIECES[key] = cached
    return cached
