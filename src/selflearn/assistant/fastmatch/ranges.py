"""Range lists: a number said in digits or in words, as hassil matches a ``RangeSlotList``."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from typing import Any

from hassil.intents import RangeSlotList
from hassil.models import MatchEntity, UnmatchedRangeEntity, UnmatchedTextEntity

from selflearn.assistant.fastmatch.chunks import _chunk_matcher
from selflearn.assistant.fastmatch.context import _close_wildcards, _Ctx

with contextlib.suppress(ImportError):  # hassil's internals (another hassil: SUPPORTED is false)
    from hassil.string_matcher import (
        FLOAT_ANYWHERE,
        FLOAT_START,
        INTEGER_ANYWHERE,
        INTEGER_START,
        _build_range_trie,
        _extend_wildcard,
    )


_TRIES: dict[tuple[Any, ...], Any] = {}
"""Number-word tries by (language, start, stop, step, fraction type, multiplier). hassil 3.12.1
keeps them in ``_RANGE_TRIE_CACHE`` keyed without the multiplier, although the trie holds the
multiplied values: the first list built wins for every list of the same range, so after "turn
the volume down by ten percent" (``volume_step_down``: 0-100, multiplier -1) "set the
brightness to ten percent" reads -10, and the other way round, depending on what was said first
in the process. Here each multiplier gets its own trie (the only deliberate difference from
hassil's matching; tests/test_fastmatch.py)."""


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
            range_settings = (
                words_language,
                range_list.start,
                range_list.stop,
                range_list.step,
                range_list.fraction_type,
                range_list.multiplier,
            )
            range_trie = _TRIES.get(range_settings)
            try:
                if range_trie is None:
                    range_trie = _build_range_trie(words_language, range_list)
                    _TRIES[range_settings] = range_trie
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
