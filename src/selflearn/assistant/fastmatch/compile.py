"""Compilation: each of hassil's template expressions (alternatives, sequences, permutations,
rule and list references) turned once into a closure that matches as hassil does."""

from __future__ import annotations

from collections.abc import Iterator
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
from hassil.intents import RangeSlotList, TextSlotList, WildcardSlotList
from hassil.models import MatchCapture, MatchEntity, UnmatchedTextEntity
from hassil.util import check_excluded_context, check_required_context

from selflearn.assistant.fastmatch.chunks import _MAX_CHUNKS, _chunk_matcher
from selflearn.assistant.fastmatch.context import (
    Matcher,
    _close_unmatched,
    _close_wildcards,
    _Ctx,
    _open_wildcard,
)
from selflearn.assistant.fastmatch.ranges import _match_range_list

# --- compilation -------------------------------------------------------------------------------

_COMPILED: dict[int, tuple[Expression, Matcher]] = {}
"""id(expression) -> (expression, matcher); the expression is kept so its id stays unique."""


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
