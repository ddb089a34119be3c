"""What can act in a household, in one list, whoever learned it.

A household's assistant acts on four kinds of things it learned: what users **taught** (names,
phrasings, routines, preferences: the :class:`~selflearn.dialogue.concepts.ConceptBook`), the
**yes** answers to "Did you mean ...?", and the fixes and names the rewriter's personal layer
learned from the household's own **retries**. :class:`Learned` is one of them as a person reads
it; the dialogue lists them all for "what have you learned" and ``:learned``, and "forget X"
removes X from every one of them (:meth:`~selflearn.dialogue.Dialogue.learned`,
:meth:`~selflearn.dialogue.Dialogue.forget`). A rewriter that learns on its own takes part by
being :class:`Remembers`.

>>> Learned("yes", "kill the lights", ("turn off the lights",), "answer").describe()
'kill the lights means turn off the lights (you said yes)'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from selflearn.core.schema import Concept
from selflearn.dialogue.concepts import describe as describe_concept

LearnedKind = Literal["name", "phrasing", "routine", "preference", "yes", "fix"]
"""A taught concept's kind; ``yes``: a proposal the household said yes to; ``fix``: a request
its retries fixed (or, for ``name``, a household word its retries showed)."""

How = Literal["taught", "answer", "retries"]
"""How it was learned: a definition, a yes to "Did you mean ...?", the household's retries."""


@dataclass(frozen=True)
class Learned:
    """One thing that can act in a household."""

    kind: LearnedKind
    said: str
    """What the household says: the taught phrase, the household word, the request."""
    means: tuple[str, ...]
    """What runs (or is substituted) in its place."""
    how: How
    concept: Concept | None = None
    """The concept, for what was taught."""

    def describe(self) -> str:
        """One line a person reads ("mothership means living room ceiling (from your retries)")."""
        if self.concept is not None:
            return describe_concept(self.concept)
        why = {"answer": "you said yes", "retries": "from your retries", "taught": "taught"}[self.how]
        return f"{self.said} means {' and then '.join(self.means)} ({why})"


@runtime_checkable
class Remembers(Protocol):
    """A rewriter that learns on its own (its personal layer) and can say and forget what."""

    def learned(self, household_id: str) -> list[Learned]:
        """What this rewriter learned for ``household_id`` that can act, oldest first."""
        ...

    def forget_words(self, household_id: str, words: str) -> list[Learned]:
        """Forget everything learned about ``words`` in ``household_id`` (a household word, a
        request that says them); returns what could act and no longer does."""
        ...


__all__ = ["How", "Learned", "LearnedKind", "Remembers"]
