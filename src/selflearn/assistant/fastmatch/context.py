"""What every part of the compiled matcher shares: the hassil release it ports, and the match
context (hassil's ``MatchContext``) the compiled expressions pass along."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any

from hassil.expression import Sentence
from hassil.models import MatchCapture, MatchEntity, UnmatchedTextEntity
from hassil.util import PUNCTUATION_STR, remove_punctuation

# The internals are imported here only to tell whether they are there (for SUPPORTED); the
# modules that use them import them again, in ``contextlib.suppress(ImportError)``.
try:  # hassil's internals the port reuses (present in the release it ports)
    from hassil.recognize import _get_result_score, _has_required_fragments, _process_match_contexts  # noqa: F401
    from hassil.string_matcher import (  # noqa: F401
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
