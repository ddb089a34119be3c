"""Recognition: a sentence matched against the compiled templates of hassil's intents, as
``hassil.recognize_all`` and ``recognize_best`` do."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from hassil.expression import Expression, ListReference, Sentence, Sequence
from hassil.intents import Intents, SlotList, WildcardSlotList
from hassil.recognize import RecognizeResult
from hassil.util import (
    TrackedText,
    check_excluded_context,
    check_required_context,
    normalize_for_matching,
    remove_skip_words_tracked,
)

from selflearn.assistant.fastmatch.compile import compile_expression
from selflearn.assistant.fastmatch.context import _Ctx

with contextlib.suppress(ImportError):  # hassil's internals (another hassil: SUPPORTED is false)
    from hassil.recognize import _get_result_score, _has_required_fragments, _process_match_contexts


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
