"""hassil's matcher, compiled: the same results as ``hassil.recognize_all``, in less time.

``hassil.string_matcher.match_expression`` walks a sentence template as a tree of
expressions, re-dispatching on the expression type, re-stripping and re-escaping chunk texts
and building a dataclass per step. Here each expression is compiled once into a closure that
does exactly the same steps in exactly the same order -- the same contexts, yielded in the same
order, sharing and mutating the same entity objects at the same moments (hassil closes open
wildcards and unmatched entities in place, and those objects are shared between contexts, so
the order of evaluation is part of the behaviour) -- with what depends only on the template
computed ahead:

* chunk texts are stripped, escaped and compiled to regular expressions once;
* contexts are plain ``__slots__`` objects with the attributes hassil's ``MatchContext`` has
  (hassil's own ``_process_match_contexts`` turns them into results);
* a number-word range without an open wildcard only looks for number words at the start of
  the text (hassil scans every position and then discards all but the start).

This is a port of hassil |version| (``hassil.string_matcher.match_expression`` and
``hassil.recognize.recognize_all``/``recognize_best``); :data:`SUPPORTED` is false for any
other installed version, and callers then use hassil itself. ``bench/nlu_equivalence.py`` and
``tests/test_nlu_prefilter.py`` compare every result (intent, entities with values, texts and
spans, unmatched entities, literal text matched, in order) with hassil's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from typing import Any

from hassil.errors import MissingListError, MissingRuleError
from hassil.expression import (
    Alternative,
    Expression,
    ListReference,
    Permutation,
    RuleReference,
    Sentence,
    Sequence,
    TextChunk,
)
from hassil.intents import Intents, RangeSlotList, SlotList, TextSlotList, WildcardSlotList
from hassil.models import (
    MatchCapture,
    MatchEntity,
    UnmatchedRangeEntity,
    UnmatchedTextEntity,
)
from hassil.recognize import RecognizeResult
from hassil.util import (
    PUNCTUATION_STR,
    TrackedText,
    check_excluded_context,
    check_required_context,
    normalize_for_matching,
    remove_punctuation,
    remove_skip_words_tracked,
)

try:  # hassil's internals the port reuses (present in the release it ports)
    from hassil.recognize import _get_result_score, _has_required_fragments, _process_match_contexts
    from hassil.string_matcher import (
        _RANGE_TRIE_CACHE,
        BREAK_WORDS_TABLE,
        FLOAT_ANYWHERE,
        FLOAT_START,
        INTEGER_ANYWHERE,
        INTEGER_START,
        WORD_END_CHARS,
        _build_range_trie,
        _extend_wildcard,
    )
except ImportError:  # another hassil: SUPPORTED is false and nothing below is used
    _INTERNALS = False
else:
    _INTERNALS = True

HASSIL_VERSION = "3.12.1"
"""The hassil release this module ports."""

__doc__ = (__doc__ or "").replace("|version|", HASSIL_VERSION)


def _installed_hassil() -> str | None:
    try:
        return metadata.version("hassil")
    except metadata.PackageNotFoundError:
        return None


SUPPORTED = _INTERNALS and _installed_hassil() == HASSIL_VERSION
"""Whether the installed hassil is the one ported here (otherwise use hassil itself)."""

_PUNCTUATION = frozenset(PUNCTUATION_STR)

Matcher = Callable[[Any, "_Ctx"], Iterator["_Ctx"]]
"""A compiled expression: (match settings, context) -> the contexts hassil would yield."""


class _Ctx:
    """hassil's ``MatchContext`` without the dataclass machinery (same attributes)."""

    __slots__ = (
        "captures",
        "entities",
        "intent_context",
        "intent_data",
        "intent_sentence",
        "is_start_of_word",
        "original_text",
        "text",
        "text_chunks_matched",
        "text_index",
        "unmatched_entities",
    )

    def __init__(
        self,
        text: str,
        entities: list[MatchEntity],
        intent_context: dict[str, Any],
        is_start_of_word: bool,
        unmatched_entities: list[Any],
        text_chunks_matched: int,
        intent_sentence: Sentence | None,
        intent_data: Any,
        captures: list[MatchCapture],
        original_text: str,
        text_index: int,
    ) -> None:
        self.text = text
        self.entities = entities
        self.intent_context = intent_context
        self.is_start_of_word = is_start_of_word
        self.unmatched_entities = unmatched_entities
        self.text_chunks_matched = text_chunks_matched
        self.intent_sentence = intent_sentence
        self.intent_data = intent_data
        self.captures = captures
        self.original_text = original_text
        self.text_index = text_index

    @property
    def is_match(self) -> bool:
        """True if no text is left that isn't just whitespace or punctuation."""
        text = self.text
        if text.strip() and (_PUNCTUATION.isdisjoint(text) or remove_punctuation(text).strip()):
            # remove_punctuation only removes punctuation characters: without any, the
            # text stays as it is.
            return False
        for entity in self.entities:
            if entity.is_wildcard and (not entity.text.strip()):
                return False
        for unmatched_entity in self.unmatched_entities:
            if isinstance(unmatched_entity, UnmatchedTextEntity) and (not unmatched_entity.text.strip()):
                return False
        return True

    def get_open_wildcard(self) -> MatchEntity | None:
        """The last entity if it is an open wildcard."""
        if not self.entities:
            return None
        last_entity = self.entities[-1]
        if last_entity.is_wildcard and last_entity.is_wildcard_open:
            return last_entity
        return None

    def get_open_entity(self) -> UnmatchedTextEntity | None:
        """The last unmatched entity if it is an open text entity."""
        if not self.unmatched_entities:
            return None
        last_entity = self.unmatched_entities[-1]
        if isinstance(last_entity, UnmatchedTextEntity) and last_entity.is_open:
            return last_entity
        return None


def _close_wildcards(entities: list[MatchEntity]) -> None:
    # MatchContext.__post_init__(close_wildcards=True): in place, on shared objects.
    for entity in entities:
        entity.is_wildcard_open = False


def _close_unmatched(unmatched_entities: list[Any]) -> None:
    # MatchContext.__post_init__(close_unmatched=True): in place, on shared objects.
    for unmatched_entity in unmatched_entities:
        if isinstance(unmatched_entity, UnmatchedTextEntity):
            unmatched_entity.is_open = False


def _open_wildcard(ctx: _Ctx) -> MatchEntity | None:
    entities = ctx.entities
    if entities:
        last = entities[-1]
        if last.is_wildcard and last.is_wildcard_open:
            return last
    return None


# --- compilation -------------------------------------------------------------------------------

_COMPILED: dict[int, tuple[Expression, Matcher]] = {}
"""id(expression) -> (expression, matcher); the expression is kept so its id stays unique."""
_CHUNKS: dict[str, Matcher] = {}
"""Chunk text -> matcher (list values and number words are chunks made per call)."""
_MAX_CHUNKS = 50_000


def compile_expression(expression: Expression) -> Matcher:
    """The compiled matcher of ``expression`` (cached)."""
    if type(expression) is TextChunk:
        return _chunk_matcher(expression.text)
    found = _COMPILED.get(id(expression))
    if found is not None and found[0] is expression:
        return found[1]
    matcher = _compile(expression)
    _COMPILED[id(expression)] = (expression, matcher)
    return matcher


def _compile(expression: Expression) -> Matcher:
    if isinstance(expression, TextChunk):
        return _chunk_matcher(expression.text)
    if isinstance(expression, Alternative):
        return _alternative(expression.items)
    if isinstance(expression, Sequence):
        return _sequence([compile_expression(item) for item in expression.items])
    if isinstance(expression, Permutation):
        return _permutation(list(expression.items))
    if isinstance(expression, ListReference):
        return _list_reference(expression)
    if isinstance(expression, RuleReference):
        return _rule_reference(expression.rule_name)
    return _unexpected(expression)


def _unexpected(expression: Expression) -> Matcher:
    def match(settings: Any, ctx: _Ctx) -> Iterator[_Ctx]:
        raise ValueError(f"Unexpected expression: {expression}")
        yield ctx  # pragma: no cover

    return match


class _ChunkForm:
    """One form of a chunk's text (as written, or with leading whitespace stripped)."""

    __slots__ = ("_anywhere", "_at_word", "_skip", "at_start", "is_space", "length", "stripped_len", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.length = len(text)
        self.stripped_len = len(text.strip())
        self.is_space = text.isspace()
        # hassil.util.match_start (re.IGNORECASE, as there).
        self.at_start = re.compile(rf"^{re.escape(text)}", re.IGNORECASE).match
        self._anywhere: Callable[[str], re.Match[str] | None] | None = None
        self._at_word: Callable[[str], re.Match[str] | None] | None = None
        self._skip: Callable[[str], re.Match[str] | None] | None = None

    # The searches below are needed far less often (wildcards, unmatched entities): compiled
    # on first use.

    def anywhere(self, text: str) -> re.Match[str] | None:
        """hassil.util.match_first without a word boundary."""
        if self._anywhere is None:
            self._anywhere = re.compile(re.escape(self.text), re.IGNORECASE).search
        return self._anywhere(text)

    def at_word(self, text: str) -> re.Match[str] | None:
        """hassil.util.match_first with ``start_of_word=True``."""
        if self._at_word is None:
            self._at_word = re.compile(rf"\b{re.escape(self.text)}", re.IGNORECASE).search
        return self._at_word(text)

    def skip(self, text: str) -> re.Match[str] | None:
        """The unmatched-entity skip-ahead (case-sensitive, as there)."""
        if self._skip is None:
            self._skip = re.compile(rf"\s{re.escape(self.text.strip())}(\s|$)").search
        return self._skip(text)


def _chunk_matcher(text: str) -> Matcher:
    matcher = _CHUNKS.get(text)
    if matcher is None:
        matcher = _empty_chunk if text == "" else _chunk(text)
        if len(_CHUNKS) >= _MAX_CHUNKS:
            _CHUNKS.clear()
        _CHUNKS[text] = matcher
    return matcher


def _empty_chunk(settings: Any, ctx: _Ctx) -> Iterator[_Ctx]:
    yield ctx


def _chunk(text: str) -> Matcher:
    word_form = _ChunkForm(text.lstrip())
    mid_form = _ChunkForm(text)
    ends_word = text.endswith(WORD_END_CHARS)
    chunk_stripped_len = len(text.strip())

    space = not text.strip()

    def match(settings: Any, ctx: _Ctx) -> Iterator[_Ctx]:
        context_text = ctx.text
        if space and ctx.is_start_of_word:
            # A whitespace chunk at the start of a word is "" once stripped: it matches at
            # once, consuming the text's leading whitespace, and closes nothing -- unless an
            # open wildcard is still empty (handled below, as in hassil).
            entities = ctx.entities
            if not entities or not (
                (last := entities[-1]).is_wildcard and last.is_wildcard_open and not last.text.strip()
            ):
                stripped_context_text = context_text.lstrip()
                yield _Ctx(
                    stripped_context_text,
                    entities,
                    ctx.intent_context,
                    ends_word,
                    ctx.unmatched_entities,
                    ctx.text_chunks_matched,
                    ctx.intent_sentence,
                    ctx.intent_data,
                    ctx.captures,
                    ctx.original_text,
                    ctx.text_index + len(context_text) - len(stripped_context_text),
                )
                return
        if ctx.is_start_of_word:
            form = word_form
            stripped_context_text = context_text.lstrip()
            base_index = ctx.text_index + len(context_text) - len(stripped_context_text)
            context_text = stripped_context_text
        else:
            form = mid_form
            base_index = ctx.text_index
        entities = ctx.entities
        wildcard = None
        if entities:
            last = entities[-1]
            if last.is_wildcard and last.is_wildcard_open:
                wildcard = last

        if (wildcard is not None) and (not wildcard.text.strip()):
            if wildcard.text_span is not None:
                wildcard.text_span = (wildcard.text_span[0], wildcard.text_span[0] + len(wildcard.text))
            if not form.stripped_len:
                # Skip space
                yield _Ctx(
                    context_text,
                    entities,
                    ctx.intent_context,
                    True,
                    ctx.unmatched_entities,
                    ctx.text_chunks_matched,
                    ctx.intent_sentence,
                    ctx.intent_data,
                    ctx.captures,
                    ctx.original_text,
                    base_index + form.length,
                )
                return
            first = form.at_word if wildcard.is_wildcard_end_of_word else form.anywhere
            found = first(context_text)
            if found is None:
                return
            start_idx = found.start()
            if start_idx == 0:
                found = first(context_text[1:])
                if found is None:
                    return
                start_idx = 1 + found.start()
            entities_without_wildcard = entities[:-1]
            while start_idx > 0:
                wildcard_text = context_text[:start_idx]
                yield from match(
                    settings,
                    _Ctx(
                        context_text[start_idx:],
                        [
                            *entities_without_wildcard,
                            MatchEntity(
                                name=wildcard.name,
                                text=wildcard_text,
                                value=wildcard_text,
                                is_wildcard=True,
                                is_wildcard_open=False,
                                text_span=(base_index, base_index + len(wildcard_text)),
                            ),
                        ],
                        ctx.intent_context,
                        True,
                        ctx.unmatched_entities,
                        ctx.text_chunks_matched,
                        ctx.intent_sentence,
                        ctx.intent_data,
                        ctx.captures,
                        ctx.original_text,
                        base_index + len(wildcard_text),
                    ),
                )
                found = form.anywhere(context_text[start_idx + 1 :])
                start_idx = -1 if found is None else start_idx + 1 + found.start()
            return

        found = form.at_start(context_text)
        if found is not None:
            end_pos = found.end()
            non_empty = form.stripped_len > 0
            if non_empty:
                _close_wildcards(entities)
                _close_unmatched(ctx.unmatched_entities)
            yield _Ctx(
                context_text[end_pos:],
                entities,
                ctx.intent_context,
                ends_word,
                ctx.unmatched_entities,
                ctx.text_chunks_matched + form.stripped_len,
                ctx.intent_sentence,
                ctx.intent_data,
                ctx.captures,
                ctx.original_text,
                base_index + end_pos,
            )
        elif form.is_space and not context_text.strip():
            # No text left to match, so extra whitespace is OK to skip
            yield ctx
        else:
            # Try breaking words apart
            found = None
            if ("-" in context_text) or ("_" in context_text):
                context_text = context_text.translate(BREAK_WORDS_TABLE)
                found = form.at_start(context_text)
            if found is not None:
                end_pos = found.end()
                if form.stripped_len:
                    _close_wildcards(entities)
                    _close_unmatched(ctx.unmatched_entities)
                yield _Ctx(
                    context_text[end_pos:],
                    entities,
                    ctx.intent_context,
                    ctx.is_start_of_word,
                    ctx.unmatched_entities,
                    ctx.text_chunks_matched,
                    ctx.intent_sentence,
                    ctx.intent_data,
                    ctx.captures,
                    ctx.original_text,
                    base_index + end_pos,
                )
            elif wildcard is not None:
                # Add to wildcard by skipping ahead to the chunk text
                found = form.anywhere(context_text)
                if found is not None:
                    skip_idx = found.start()
                    wildcard_text = context_text[:skip_idx]
                    if wildcard_text:
                        new_entities = [e for e in entities if e.name != wildcard.name]
                        new_entities.append(
                            MatchEntity(
                                name=wildcard.name,
                                value=wildcard_text,
                                text=wildcard_text,
                                is_wildcard=True,
                                is_wildcard_open=False,
                                text_span=(base_index, base_index + len(wildcard_text)),
                            )
                        )
                        yield _Ctx(
                            context_text[skip_idx + form.length :],
                            new_entities,
                            ctx.intent_context,
                            True,
                            ctx.unmatched_entities,
                            ctx.text_chunks_matched,
                            ctx.intent_sentence,
                            ctx.intent_data,
                            ctx.captures,
                            ctx.original_text,
                            base_index + skip_idx + form.length,
                        )
            elif settings.allow_unmatched_entities and (unmatched_entity := ctx.get_open_entity()):
                # Add to the most recent unmatched entity by skipping ahead to the chunk text
                chunk_match = form.skip(context_text)
                if chunk_match:
                    unmatched_entity_text = unmatched_entity.text + context_text[: chunk_match.start() + 1]
                    if unmatched_entity_text:
                        unmatched_entities = [
                            e for e in ctx.unmatched_entities if e.name != unmatched_entity.name
                        ]
                        unmatched_entities.append(
                            UnmatchedTextEntity(
                                name=unmatched_entity.name, text=unmatched_entity_text, is_open=False
                            )
                        )
                        yield _Ctx(
                            context_text[chunk_match.end() :],
                            entities,
                            ctx.intent_context,
                            True,
                            unmatched_entities,
                            ctx.text_chunks_matched + chunk_stripped_len,
                            ctx.intent_sentence,
                            ctx.intent_data,
                            ctx.captures,
                            ctx.original_text,
                            base_index + chunk_match.start(),
                        )

    return match


def _alternative(expressions: list[Expression]) -> Matcher:
    """Each item in turn; items that provably yield nothing here are not tried.

    With the context at the start of a word, no open wildcard, no open unmatched entity and
    no "-" or "_" in the text (so no word breaking), an item all of whose matches must begin
    with a chunk starting with one of the characters :func:`_first_chars` finds cannot match
    a text starting with another character -- and trying it changes nothing (hassil only
    mutates shared state when something matches). Skipping it leaves the results, their
    order and every side effect as they were. Items keep their order.
    """
    items = [compile_expression(item) for item in expressions]
    tables: dict[int, tuple[Any, dict[str, list[Matcher]], list[Expression], _ByChars]] = {}

    def candidates(rules: dict[str, Sentence], char: str) -> list[Matcher]:
        entry = tables.get(id(rules))
        if entry is None or entry[0] is not rules:
            entry = tables[id(rules)] = (rules, {}, [], {})
            entry[2].extend(expressions)
        by_char = entry[1]
        found = by_char.get(char)
        if found is None:
            found = by_char[char] = [
                item
                for item, expression in zip(items, entry[2], strict=True)
                if (first := _first_chars(expression, rules, ())) is None or char in first
            ]
        return found

    def candidates_any(rules: dict[str, Sentence], chars: frozenset[str]) -> list[Matcher]:
        entry = tables.get(id(rules))
        if entry is None or entry[0] is not rules:
            entry = tables[id(rules)] = (rules, {}, [], {})
            entry[2].extend(expressions)
        by_chars = entry[3]
        found = by_chars.get(chars)
        if found is None:
            if len(by_chars) >= 256:
                by_chars.clear()
            found = by_chars[chars] = [
                item
                for item, expression in zip(items, entry[2], strict=True)
                if (first := _first_chars(expression, rules, ())) is None or not first.isdisjoint(chars)
            ]
        return found

    def match(settings: Any, ctx: _Ctx) -> Iterator[_Ctx]:
        if ctx.is_start_of_word:
            text = ctx.text.lstrip()
            if text and ("-" not in text) and ("_" not in text) and (_open_wildcard(ctx) is None):
                if not settings.allow_unmatched_entities or ctx.get_open_entity() is None:
                    if text[0].isascii():
                        for item in candidates(settings.expansion_rules, text[0].lower()):
                            yield from item(settings, ctx)
                        return
                elif text.isascii():
                    # An open unmatched entity lets a chunk also match after any whitespace
                    # further on (hassil's skip-ahead), so every character that follows
                    # whitespace in the text may start a match too.
                    for item in candidates_any(settings.expansion_rules, _start_chars(text)):
                        yield from item(settings, ctx)
                    return
        for item in items:
            yield from item(settings, ctx)

    return match


_ByChars = dict[frozenset[str], list[Matcher]]
_FIRST: dict[tuple[int, int], tuple[Expression, Any, frozenset[str] | None]] = {}
_START_CHARS: dict[str, frozenset[str]] = {}


def _start_chars(text: str) -> frozenset[str]:
    """Lower-cased first character of an ASCII ``text`` and every character after whitespace."""
    found = _START_CHARS.get(text)
    if found is None:
        chars = {text[0].lower()}
        for i in range(1, len(text)):
            if text[i - 1].isspace():
                chars.add(text[i].lower())
        found = frozenset(chars)
        if len(_START_CHARS) >= _MAX_CHUNKS:
            _START_CHARS.clear()
        _START_CHARS[text] = found
    return found


def _first_chars(
    expression: Expression, rules: dict[str, Sentence], seen: tuple[str, ...]
) -> frozenset[str] | None:
    """Lower-cased first characters of the text any match of ``expression`` starts by
    consuming, at the start of a word; ``None`` when that cannot be bounded (it may match
    without consuming text, or starts with a list, a permutation, a non-ASCII or a space).

    hassil matches chunks with ``re.IGNORECASE``; for ASCII characters on both sides that is
    equality after ``lower()``. The caller only uses this for texts starting with an ASCII
    character.
    """
    key = (id(expression), id(rules))
    cached = _FIRST.get(key)
    if cached is not None and cached[0] is expression and cached[1] is rules:
        return cached[2]
    first: frozenset[str] | None = None
    if type(expression) is TextChunk:
        text = expression.text.lstrip()
        if text and text[0].isascii():
            first = frozenset((text[0].lower(),))
    elif isinstance(expression, Alternative):
        chars: set[str] = set()
        for item in expression.items:
            item_first = _first_chars(item, rules, seen)
            if item_first is None:
                break
            chars |= item_first
        else:
            first = frozenset(chars)
    elif isinstance(expression, Sequence):
        # An empty sequence matches nothing at all (hassil yields nothing for it).
        first = _first_chars(expression.items[0], rules, seen) if expression.items else frozenset()
    elif isinstance(expression, RuleReference):
        name = expression.rule_name
        if name in rules and name not in seen:
            first = _first_chars(rules[name].expression, rules, (*seen, name))
    if not seen:
        if len(_FIRST) >= _MAX_CHUNKS:
            _FIRST.clear()
        _FIRST[key] = (expression, rules, first)
    return first


def _sequence(items: list[Matcher]) -> Matcher:
    if not items:
        return _nothing

    def match(settings: Any, ctx: _Ctx) -> Iterator[_Ctx]:
        group_contexts = [ctx]
        for item in items:
            group_contexts = [
                item_context
                for group_context in group_contexts
                for item_context in item(settings, group_context)
            ]
            if not group_contexts:
                break
        yield from group_contexts

    return match


def _nothing(settings: Any, ctx: _Ctx) -> Iterator[_Ctx]:
    return
    yield ctx  # pragma: no cover


def _permutation(items: list[Expression]) -> Matcher:
    if len(items) == 1:
        return compile_expression(items[0])
    # hassil.expression.Permutation.iterate_permutations: each item first, then the others
    # (in their order) as a permutation.
    firsts = [compile_expression(item) for item in items]
    rests: list[Matcher | None] = [None] * len(items)

    def match(settings: Any, ctx: _Ctx) -> Iterator[_Ctx]:
        for i, first in enumerate(firsts):
            rest = rests[i]
            if rest is None:
                rest = rests[i] = _permutation(items[:i] + items[i + 1 :])
            for item_context in first(settings, ctx):
                yield from rest(settings, item_context)

    return match


def _rule_reference(rule_name: str) -> Matcher:
    def match(settings: Any, ctx: _Ctx) -> Iterator[_Ctx]:
        rules = settings.expansion_rules
        if (not rules) or (rule_name not in rules):
            raise MissingRuleError(f"Missing expansion rule <{rule_name}>")
        yield from compile_expression(rules[rule_name].expression)(settings, ctx)

    return match


def _find_number_words_at_start(trie: Any, text: str) -> Iterator[tuple[int, str, Any]]:
    """``Trie.find(text, ignore_case=True)`` limited to words starting at position 0.

    hassil's range matcher skips every word found elsewhere when no wildcard is open; the
    words at position 0 come first from ``find`` and do not depend on the rest of the text.
    """
    text = text.lower()
    current_children = trie.roots
    current_position = 0
    while current_position < len(text):
        current_char = text[current_position]
        node = current_children.get(current_char)
        if node is None:
            current_char = current_char.upper() if current_char.islower() else current_char.lower()
            node = current_children.get(current_char)
            if node is None:
                break
        match_end = current_position + 1
        if node.text is not None:
            for value in node.values or [None]:
                yield (match_end, node.text, value)
        current_children = node.children or {}
        current_position += 1


def _list_reference(list_ref: ListReference) -> Matcher:
    list_name = list_ref.list_name
    slot_name = list_ref.slot_name
    is_capture = list_ref.is_capture
    is_end_of_word = list_ref.is_end_of_word

    def match(settings: Any, ctx: _Ctx) -> Iterator[_Ctx]:
        slot_lists = settings.slot_lists
        if (not slot_lists) or (list_name not in slot_lists):
            range_parts = list_ref.get_inline_range()
            if (not list_ref.is_inline_range) or (range_parts is None):
                raise MissingListError(f"Missing slot list {{{list_name}}}")
            slot_lists[list_name] = RangeSlotList(
                name=list_name, start=range_parts[0], stop=range_parts[1], step=range_parts[2]
            )

        wildcard = _open_wildcard(ctx)
        slot_list = slot_lists[list_name]
        if isinstance(slot_list, TextSlotList):
            if ctx.text:
                yield from _match_text_list(settings, ctx, slot_list, wildcard, slot_name, is_capture)
        elif isinstance(slot_list, RangeSlotList):
            if ctx.text:
                yield from _match_range_list(settings, ctx, slot_list, wildcard, slot_name)
        elif isinstance(slot_list, WildcardSlotList):
            if ctx.text:
                # Start wildcard entities
                _close_unmatched(ctx.unmatched_entities)
                yield _Ctx(
                    ctx.text,
                    [
                        *ctx.entities,
                        MatchEntity(
                            name=slot_name,
                            value="",
                            text="",
                            is_wildcard=True,
                            is_wildcard_end_of_word=is_end_of_word,
                            text_span=(ctx.text_index, ctx.text_index + 1),
                        ),
                    ],
                    ctx.intent_context,
                    ctx.is_start_of_word,
                    ctx.unmatched_entities,
                    ctx.text_chunks_matched,
                    ctx.intent_sentence,
                    ctx.intent_data,
                    ctx.captures,
                    ctx.original_text,
                    ctx.text_index,
                )
        else:
            raise ValueError(f"Unexpected slot list type: {slot_list}")

    return match


def _match_text_list(
    settings: Any,
    ctx: _Ctx,
    text_list: TextSlotList,
    wildcard: MatchEntity | None,
    slot_name: str,
    is_capture: bool,
) -> Iterator[_Ctx]:
    has_matches = False
    required_context: dict[str, Any] | None = None
    excluded_context: dict[str, Any] | None = None
    if ctx.intent_data is not None:
        required_context = ctx.intent_data.requires_context
        excluded_context = ctx.intent_data.excludes_context

    context_text = ctx.text
    candidate_values = text_list.values
    if (
        (wildcard is None)
        and ctx.is_start_of_word
        and ((not settings.allow_unmatched_entities) or (ctx.get_open_entity() is None))
    ):
        anchored_text = context_text.lstrip()
        if anchored_text:
            candidate_values = text_list.get_candidates(anchored_text)

    for slot_value in candidate_values:
        text_in = slot_value.text_in
        chunk_text = text_in.text if isinstance(text_in, TextChunk) else None
        if chunk_text is not None and (not chunk_text.strip()):
            continue
        if required_context and (
            not check_required_context(required_context, slot_value.context, allow_missing_keys=True)
        ):
            continue
        if excluded_context and (not check_excluded_context(excluded_context, slot_value.context)):
            continue
        if chunk_text is not None and (len(context_text) < len(chunk_text)):
            continue

        value_contexts = compile_expression(text_in)(
            settings,
            _Ctx(
                context_text,
                ctx.entities,
                ctx.intent_context,
                ctx.is_start_of_word,
                ctx.unmatched_entities,
                ctx.text_chunks_matched,
                ctx.intent_sentence,
                ctx.intent_data,
                ctx.captures,
                ctx.original_text,
                ctx.text_index,
            ),
        )
        for value_context in value_contexts:
            has_matches = True
            value_wildcard: MatchEntity | None = None
            if value_context.entities and value_context.entities[-1].is_wildcard:
                value_wildcard = value_context.entities[-1]
            if value_wildcard is not None and context_text.startswith(value_wildcard.text):
                remaining_text = context_text[len(value_wildcard.text) :]
            else:
                remaining_text = context_text
            entity_text = remaining_text[: -len(value_context.text)] if value_context.text else remaining_text
            entity_start_idx = ctx.text_index + len(context_text) - len(remaining_text)
            if is_capture:
                entities = value_context.entities
                captures = [*value_context.captures, MatchCapture(name=slot_name, text=entity_text)]
            else:
                entities = [
                    *value_context.entities,
                    MatchEntity(
                        name=slot_name,
                        value=entity_text if slot_value.value_out is None else slot_value.value_out,
                        text=entity_text,
                        metadata=slot_value.metadata,
                        text_span=(entity_start_idx, entity_start_idx + len(entity_text)),
                    ),
                ]
                captures = value_context.captures
            text_index = ctx.text_index + (len(context_text) - len(value_context.text))
            if slot_value.context:
                # Merge context from matched list value
                yield _Ctx(
                    value_context.text,
                    entities,
                    {**ctx.intent_context, **slot_value.context},
                    ctx.is_start_of_word,
                    ctx.unmatched_entities,
                    ctx.text_chunks_matched,
                    ctx.intent_sentence,
                    ctx.intent_data,
                    captures,
                    ctx.original_text,
                    text_index,
                )
            else:
                yield _Ctx(
                    value_context.text,
                    entities,
                    value_context.intent_context,
                    ctx.is_start_of_word,
                    ctx.unmatched_entities,
                    ctx.text_chunks_matched,
                    ctx.intent_sentence,
                    ctx.intent_data,
                    captures,
                    ctx.original_text,
                    text_index,
                )

    if (not has_matches) and settings.allow_unmatched_entities:
        # Report mismatch
        _close_wildcards(ctx.entities)
        yield _Ctx(
            context_text,
            ctx.entities,
            ctx.intent_context,
            ctx.is_start_of_word,
            [*ctx.unmatched_entities, UnmatchedTextEntity(name=slot_name, text="")],
            ctx.text_chunks_matched,
            ctx.intent_sentence,
            ctx.intent_data,
            ctx.captures,
            ctx.original_text,
            ctx.text_index,
        )


def _match_range_list(
    settings: Any,
    ctx: _Ctx,
    range_list: RangeSlotList,
    wildcard: MatchEntity | None,
    slot_name: str,
) -> Iterator[_Ctx]:
    context_text = ctx.text
    number_matches: list[re.Match[str]] = []
    if wildcard is None:
        # Look for digits at the start of the incoming text
        if range_list.fraction_type is None:
            number_match = INTEGER_START.match(context_text)
        else:
            number_match = FLOAT_START.match(context_text)
        if number_match is not None:
            number_matches.append(number_match)
    else:
        # Look for digit(s) anywhere in the string
        number_pattern = INTEGER_ANYWHERE if range_list.fraction_type is None else FLOAT_ANYWHERE
        number_matches.extend(number_pattern.finditer(context_text))

    digits_match = False
    if range_list.digits and number_matches:
        for number_match in number_matches:
            number_text = number_match[1]
            word_number: int | float = float(number_text.replace(",", "."))
            if (range_list.step == 1) and (range_list.fraction_type is None):
                in_range = range_list.start <= word_number <= range_list.stop
            else:
                in_range = word_number in range_list.get_numbers()

            if in_range:
                digits_match = True
                range_value = word_number
                if range_list.multiplier is not None:
                    range_value *= range_list.multiplier
                entities = [
                    *ctx.entities,
                    MatchEntity(
                        name=slot_name,
                        value=range_value,
                        text=number_match.group(1),
                        text_span=(
                            ctx.text_index + number_match.start(1),
                            ctx.text_index + number_match.end(1),
                        ),
                    ),
                ]
                if wildcard is None:
                    yield _Ctx(
                        context_text[number_match.end() :],
                        entities,
                        ctx.intent_context,
                        ctx.is_start_of_word,
                        ctx.unmatched_entities,
                        ctx.text_chunks_matched,
                        ctx.intent_sentence,
                        ctx.intent_data,
                        ctx.captures,
                        ctx.original_text,
                        ctx.text_index + number_match.end(),
                    )
                else:
                    # Wildcard consumes text before the number (a closed copy, not in place)
                    entities[-2] = _extend_wildcard(wildcard, context_text[: number_match.start(1)])
                    _close_wildcards(entities)
                    yield _Ctx(
                        context_text[number_match.end() :],
                        entities,
                        ctx.intent_context,
                        ctx.is_start_of_word,
                        ctx.unmatched_entities,
                        ctx.text_chunks_matched,
                        ctx.intent_sentence,
                        ctx.intent_data,
                        ctx.captures,
                        ctx.original_text,
                        ctx.text_index + number_match.end(),
                    )
            elif settings.allow_unmatched_entities and (wildcard is None):
                # Report out of range
                yield _Ctx(
                    context_text[len(number_text) :],
                    ctx.entities,
                    ctx.intent_context,
                    ctx.is_start_of_word,
                    [*ctx.unmatched_entities, UnmatchedRangeEntity(name=slot_name, value=word_number)],
                    ctx.text_chunks_matched,
                    ctx.intent_sentence,
                    ctx.intent_data,
                    ctx.captures,
                    ctx.original_text,
                    ctx.text_index + len(number_text),
                )

    words_match = False
    if range_list.words and (not digits_match) and (not number_matches):
        words_language = range_list.words_language or settings.language
        if words_language:
            range_settings = (range_list.start, range_list.stop, range_list.step, range_list.fraction_type)
            range_trie = _RANGE_TRIE_CACHE[words_language].get(range_settings)
            try:
                if range_trie is None:
                    range_trie = _build_range_trie(words_language, range_list)
                    _RANGE_TRIE_CACHE[words_language][range_settings] = range_trie
                found: Iterable[tuple[int, str, Any]] = (
                    _find_number_words_at_start(range_trie, context_text)
                    if wildcard is None
                    else range_trie.find(context_text, ignore_case=True)
                )
                for number_end_pos, number_text, range_value in found:
                    number_start_pos = number_end_pos - len(number_text)
                    if (wildcard is None) and (number_start_pos > 0):
                        continue
                    words_match = True
                    entities = [
                        *ctx.entities,
                        MatchEntity(
                            name=slot_name,
                            value=range_value,
                            text=number_text,
                            text_span=(ctx.text_index + number_start_pos, ctx.text_index + number_end_pos),
                        ),
                    ]
                    chunk = _chunk_matcher(number_text)
                    if wildcard is None:
                        yield from chunk(
                            settings,
                            _Ctx(
                                context_text,
                                entities,
                                ctx.intent_context,
                                ctx.is_start_of_word,
                                ctx.unmatched_entities,
                                ctx.text_chunks_matched,
                                ctx.intent_sentence,
                                ctx.intent_data,
                                ctx.captures,
                                ctx.original_text,
                                ctx.text_index + len(number_text),
                            ),
                        )
                    else:
                        entities[-2] = _extend_wildcard(wildcard, context_text[:number_start_pos])
                        _close_wildcards(entities)
                        yield from chunk(
                            settings,
                            _Ctx(
                                context_text[number_start_pos:],
                                entities,
                                ctx.intent_context,
                                ctx.is_start_of_word,
                                ctx.unmatched_entities,
                                ctx.text_chunks_matched,
                                ctx.intent_sentence,
                                ctx.intent_data,
                                ctx.captures,
                                ctx.original_text,
                                ctx.text_index + number_start_pos,
                            ),
                        )
            except ValueError:
                pass  # hassil logs "Unexpected error converting numbers to words" and goes on

    if (not digits_match) and (not words_match) and settings.allow_unmatched_entities:
        # Report not a number
        _close_wildcards(ctx.entities)
        yield _Ctx(
            context_text,
            ctx.entities,
            ctx.intent_context,
            ctx.is_start_of_word,
            [*ctx.unmatched_entities, UnmatchedTextEntity(name=slot_name, text="")],
            ctx.text_chunks_matched,
            ctx.intent_sentence,
            ctx.intent_data,
            ctx.captures,
            ctx.original_text,
            ctx.text_index,
        )


# --- recognition -------------------------------------------------------------------------------


_TRACKED: dict[tuple[str, tuple[str, ...]], tuple[TrackedText, TrackedText]] = {}


def tracked_forms(text: str, skip_words: Iterable[str]) -> tuple[TrackedText, TrackedText]:
    """``text`` normalized for matching, with and without skip words (as hassil's
    ``recognize_all`` makes them; cached). Callers must not change them (hassil copies them
    before every change)."""
    key = (text, tuple(skip_words))
    found = _TRACKED.get(key)
    if found is None:
        tracked_with_skip_words = normalize_for_matching(text)
        if key[1]:
            tracked_no_skip_words = tracked_with_skip_words.copy()
            remove_skip_words_tracked(tracked_no_skip_words, key[1], False)
        else:
            tracked_no_skip_words = tracked_with_skip_words
        found = (tracked_with_skip_words, tracked_no_skip_words)
        if len(_TRACKED) >= 1024:
            _TRACKED.clear()
        _TRACKED[key] = found
    return found


class _Settings:
    """hassil's ``MatchSettings`` (the attributes the matcher reads)."""

    __slots__ = ("allow_unmatched_entities", "expansion_rules", "language", "slot_lists")

    def __init__(
        self,
        slot_lists: dict[str, SlotList],
        expansion_rules: dict[str, Sentence],
        allow_unmatched_entities: bool,
        language: str,
    ) -> None:
        self.slot_lists = slot_lists
        self.expansion_rules = expansion_rules
        self.allow_unmatched_entities = allow_unmatched_entities
        self.language = language


def recognize_all(
    text: str,
    intents: Intents,
    slot_lists: dict[str, SlotList] | None = None,
    intent_context: dict[str, Any] | None = None,
    default_response: str | None = "default",
    allow_unmatched_entities: bool = False,
    language: str | None = None,
) -> Iterator[RecognizeResult]:
    """``hassil.recognize_all`` (without extra expansion rules or skip words), compiled.

    Whitespace-free languages (``ignore_whitespace``) are not supported.
    """
    return Session(
        text, intents, slot_lists, intent_context, default_response, allow_unmatched_entities, language
    ).recognize_all(intents)


class Session:
    """:func:`recognize_all` for one text and its lists, over several sets of templates.

    What depends only on the text, the lists and the context (normalized text forms, merged
    lists) is prepared once; :meth:`recognize_all` then matches any ``Intents`` sharing
    ``intents``' settings, skip words, lists and rules (reductions of it), exactly as
    ``recognize_all`` would.
    """

    def __init__(
        self,
        text: str,
        intents: Intents,
        slot_lists: dict[str, SlotList] | None = None,
        intent_context: dict[str, Any] | None = None,
        default_response: str | None = "default",
        allow_unmatched_entities: bool = False,
        language: str | None = None,
    ) -> None:
        if intents.settings.ignore_whitespace:
            raise ValueError("fastmatch supports whitespace-separated languages only")
        self.text = text
        self.skip_words = intents.skip_words
        self.tracked_with_skip_words, tracked_no_skip_words = tracked_forms(text, self.skip_words)
        text_with_skip_words = self.tracked_with_skip_words.text
        text_no_skip_words = tracked_no_skip_words.text
        self.had_skip_words_removed = text_no_skip_words != text_with_skip_words
        self.text_keywords = text_no_skip_words.split()
        self.prefilter_haystack = f"{text_with_skip_words.casefold()}\n{text_no_skip_words.casefold()}"
        self.all_slot_lists: dict[str, SlotList] = (
            intents.slot_lists if slot_lists is None else {**intents.slot_lists, **slot_lists}
        )
        self.expansion_rules = intents.expansion_rules
        self.intent_context = {} if intent_context is None else intent_context
        self.default_response = default_response
        self.allow_unmatched_entities = allow_unmatched_entities
        self.language = language or intents.language
        self.tracked_no_skip_words = _matchable(tracked_no_skip_words)
        self.tracked_with_skip_words_matchable = _matchable(self.tracked_with_skip_words)
        self.tracked_at_start: TrackedText | None = None
        self.tracked_at_end: TrackedText | None = None

    def _is_wildcard(self, e: Expression) -> bool:
        return isinstance(e, ListReference) and isinstance(
            self.all_slot_lists.get(e.list_name), WildcardSlotList
        )

    def recognize_all(self, intents: Intents) -> Iterator[RecognizeResult]:
        """hassil's results for the templates of ``intents``, in hassil's order."""
        intent_context = self.intent_context
        available: list[tuple[Any, Any, _Settings]] = []
        for intent in intents.intents.values():
            for intent_data in intent.data:
                if intent_data.required_keywords and intent_data.required_keywords.isdisjoint(
                    self.text_keywords
                ):
                    continue
                if intent_context:
                    if intent_data.requires_context and (
                        not check_required_context(
                            intent_data.requires_context, intent_context, allow_missing_keys=True
                        )
                    ):
                        continue
                    if intent_data.excludes_context and (
                        not check_excluded_context(intent_data.excludes_context, intent_context)
                    ):
                        continue
                settings = _Settings(
                    {**self.all_slot_lists, **intent_data.slot_lists},
                    # hassil merges into a new dict; matching only reads it, and sharing the
                    # intents' own dict lets compiled alternatives cache what they derive from it.
                    {**self.expansion_rules, **intent_data.expansion_rules}
                    if intent_data.expansion_rules
                    else self.expansion_rules,
                    self.allow_unmatched_entities,
                    self.language,
                )
                available.append((intent, intent_data, settings))

        text = self.text
        tracked_no_skip_words = self.tracked_no_skip_words
        for intent, intent_data, settings in available:
            for intent_sentence in intent_data.sentences:
                if not _has_required_fragments(
                    intent_sentence.get_required_clauses(settings.expansion_rules), self.prefilter_haystack
                ):
                    continue
                tracked_match = tracked_no_skip_words
                if isinstance(intent_sentence.expression, Sequence):
                    seq: Sequence = intent_sentence.expression
                    if (len(seq.items) == 1) and self._is_wildcard(seq.items[0]):
                        tracked_match = self.tracked_with_skip_words
                    elif len(seq.items) > 1:
                        if self._is_wildcard(seq.items[0]):
                            if self.tracked_at_end is None:
                                at_end = self.tracked_with_skip_words.copy()
                                remove_skip_words_tracked(at_end, self.skip_words, False, start=False)
                                self.tracked_at_end = _matchable(at_end)
                            tracked_match = self.tracked_at_end
                        elif self._is_wildcard(seq.items[-1]):
                            if self.tracked_at_start is None:
                                at_start = self.tracked_with_skip_words.copy()
                                remove_skip_words_tracked(at_start, self.skip_words, False, end=False)
                                self.tracked_at_start = _matchable(at_start)
                            tracked_match = self.tracked_at_start

                tracked_matches = [tracked_match]
                if self.had_skip_words_removed and (tracked_match.text == tracked_no_skip_words.text):
                    tracked_matches.insert(0, self.tracked_with_skip_words_matchable)

                matcher = compile_expression(intent_sentence.expression)
                for candidate in tracked_matches:
                    match_context = _Ctx(
                        candidate.text,
                        [],
                        intent_context,
                        True,
                        [],
                        0,
                        intent_sentence,
                        intent_data,
                        [],
                        text,
                        0,
                    )
                    yield from _process_match_contexts(
                        matcher(settings, match_context),  # type: ignore[arg-type]
                        intent,
                        intent_data,
                        text_offsets=candidate.offsets,
                        default_response=self.default_response,
                        allow_unmatched_entities=self.allow_unmatched_entities,
                    )


def _matchable(tracked: TrackedText) -> TrackedText:
    matchable = tracked.copy()
    matchable.append(" ")  # artificial word boundary
    return matchable


def recognize_best(
    text: str,
    intents: Intents,
    slot_lists: dict[str, SlotList] | None = None,
    intent_context: dict[str, Any] | None = None,
    language: str | None = None,
    best_slot_name: str | None = None,
) -> RecognizeResult | None:
    """``hassil.recognize_best`` (no metadata key, no unmatched entities) over :func:`recognize_all`."""
    slot_found = False
    best_results: list[RecognizeResult] = []
    best_slot_quality: int | None = None
    for result in recognize_all(
        text, intents, slot_lists=slot_lists, intent_context=intent_context, language=language
    ):
        if best_slot_name:
            entity = result.entities.get(best_slot_name)
            is_slot = (entity is not None) and not entity.is_wildcard
            if slot_found and not is_slot:
                continue
            if (not slot_found) and is_slot:
                slot_found = True
                best_results = []
            if is_slot and (entity is not None) and isinstance(entity.value, str):
                slot_quality = len(entity.text)
                if (best_slot_quality is None) or (slot_quality > best_slot_quality):
                    best_slot_quality = slot_quality
                    best_results = []
                elif slot_quality < best_slot_quality:
                    continue
        best_results.append(result)
    if best_results:
        return sorted(best_results, key=_get_result_score)[0]
    return None
