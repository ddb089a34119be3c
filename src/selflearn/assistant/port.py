"""The reference assistant as the dialogue sees it: :class:`AssistantPort` implements
:class:`selflearn.dialogue.Port` (does a sentence work in this home, does it parse, which words of a
failed request could the assistant not place) over any assistant that can *understand* a text --
its NLU and entity resolution, without running anything (:class:`Understands`).

The reference assistant (:class:`~selflearn.assistant.pipeline.Assistant`), the service's copy of
Home Assistant's matcher (:mod:`selflearn.service.dialogue`) and the Wyoming service
(:mod:`selflearn.integrations.wyoming`) hand the dialogue this port.
"""

from __future__ import annotations

from typing import Protocol

from selflearn.assistant.devices import HomeState
from selflearn.assistant.nlu import STRICT_MATCHERS, NluResult
from selflearn.assistant.resolve import Resolution
from selflearn.core.home import Home
from selflearn.dialogue import Works
from selflearn.dialogue.concepts import clean


class Understands(Protocol):
    """What the port needs of an assistant: NLU and entity resolution of a text, no side effects
    (:meth:`Assistant.understand <selflearn.assistant.pipeline.Assistant.understand>`)."""

    def understand(
        self, text: str, state: HomeState, context_area: str | None, explain_failures: bool = True
    ) -> tuple[NluResult, Resolution | None]: ...


class AssistantPort:
    """The reference assistant as the dialogue sees it (:class:`~selflearn.dialogue.Port`): its
    NLU and entity resolution over one home state, in one area (an area id)."""

    def __init__(self, assistant: Understands, state: HomeState, area: str | None) -> None:
        self.assistant = assistant
        self.state = state
        self.area = area
        self._works: dict[str, Works] = {}

    @property
    def home(self) -> Home:
        return self.state.home

    def works(self, text: str) -> Works:
        found = self._works.get(text)
        if found is None:
            nlu, resolution = self.assistant.understand(text, self.state, self.area, explain_failures=False)
            if resolution is None or not resolution.trace.ok:
                found = "fails"
            else:
                found = "exact" if nlu.trace.matcher in STRICT_MATCHERS else "loose"
            self._works[text] = found
        return found

    def parses(self, sentence: str, anywhere: bool = False) -> bool:
        area = None if anywhere else self.area
        nlu, resolution = self.assistant.understand(sentence, self.state, area, explain_failures=False)
        return nlu.trace.matcher in STRICT_MATCHERS and resolution is not None and resolution.trace.ok

    def unplaced(self, text: str) -> str | None:
        """The words of ``text`` the assistant could not place (a name or area the home lacks),
        when it fails on it (:func:`unplaced_words`)."""
        nlu, resolution = self.assistant.understand(text, self.state, self.area)
        if resolution is not None and resolution.trace.ok:
            return None
        return unplaced_words(nlu, resolution)


def unplaced_words(nlu: NluResult, resolution: Resolution | None) -> str | None:
    """The words of a failed request the assistant could not place: a name or area the NLU's
    unmatched-entity pass reports and the home does not have (at most four words), or the
    subject entity resolution could not find; ``None``: nothing."""
    found = nlu.unmatched or {}
    for slot in ("name", "area"):
        words = found.get(slot)
        if isinstance(words, str):
            cleaned = clean(words)
            if cleaned and len(cleaned.split()) <= 4:
                return cleaned
    if resolution is not None and resolution.error_code in ("no_entity", "no_area"):
        subject = clean(resolution.error_subject or "")
        if subject and len(subject.split()) <= 4:
            return subject
    return None


__all__ = ["AssistantPort", "Understands", "unplaced_words"]
