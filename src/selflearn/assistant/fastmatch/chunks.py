"""Compiled text chunks: the literal words of a template (and list values and number words said
as text), matched as ``hassil.string_matcher.match_expression`` matches a ``TextChunk``."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any

from hassil.models import MatchEntity, UnmatchedTextEntity

from selflearn.assistant.fastmatch.context import Matcher, _close_unmatched, _close_wildcards, _Ctx

with contextlib.suppress(ImportError):  # hassil's internals (another hassil: SUPPORTED is false)
    from hassil.string_matcher import BREAK_WORDS_TABLE, WORD_END_CHARS


_CHUNKS: dict[str, Matcher] = {}
"""Chunk text -> matcher (list values and number words are chunks made per call)."""
_MAX_CHUNKS = 50_000


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
