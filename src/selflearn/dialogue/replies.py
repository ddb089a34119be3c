"""Short answers to a question: what "yes", "no" and "never mind" mean, and how the assistant asks.

>>> read_reply("yeah please"), read_reply("no that's wrong"), read_reply("never mind")
('yes', 'no', 'never_mind')
>>> read_reply("turn on the kitchen light") is None
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from selflearn.core.errors import ConfigError

Reply = Literal["yes", "no", "never_mind"]
"""What a short answer to a question means."""

# fmt: off
_YES = frozenset({
    "yes", "yeah", "yep", "yup", "yea", "sure", "correct", "right", "ok", "okay", "affirmative",
    "exactly", "absolutely", "definitely", "please", "aye",
})
_NO = frozenset({"no", "nope", "nah", "wrong", "negative", "incorrect"})
_YES_PHRASES = frozenset({"do it", "go ahead", "that's right", "thats right", "that is right", "please do"})
_NO_PHRASES = frozenset({"not that", "that's wrong", "thats wrong", "that is wrong", "don't", "do not"})
_NEVER_MIND = frozenset({
    "never mind", "nevermind", "cancel", "stop", "forget it", "nothing", "skip it", "no never mind",
    "never mind thanks",
})
# fmt: on
REPLY_SENTENCES: tuple[str, ...] = tuple(
    sorted({*_YES, *_NO, *_YES_PHRASES, *_NO_PHRASES, *_NEVER_MIND, "yes please", "no thanks"})
)
"""Every short answer :func:`read_reply` knows, for a recogniser's dialogue-state language model."""
_WORDS = re.compile(r"[a-z']+")
MAX_REPLY_WORDS = 5
"""Longer utterances are requests, not answers ("no turn on the kitchen light" is a new request)."""


def read_reply(text: str) -> Reply | None:
    """What ``text`` answers to a yes/no question, or ``None`` when it is not such an answer.

    A reply is short (at most :data:`MAX_REPLY_WORDS` words) and starts with a yes or no word or
    phrase ("yes please", "no that's wrong"), or is a cancellation ("never mind", "cancel").
    """
    words = _WORDS.findall(text.lower())
    if not words or len(words) > MAX_REPLY_WORDS:
        return None
    said = " ".join(words)
    if said in _NEVER_MIND or said.startswith(("never mind", "nevermind")):
        return "never_mind"
    first, two = words[0], " ".join(words[:2])
    if first in _NO or two in _NO_PHRASES or said in _NO_PHRASES:
        return "no"
    if first in _YES or two in _YES_PHRASES or said in _YES_PHRASES:
        return "yes"
    return None


@dataclass(frozen=True)
class DialogueConfig:
    """How the assistant asks."""

    timeout_s: float = 8.0
    """Seconds a question waits for its answer; after that it ended unanswered (``timeout``)."""
    confirm_template: str = "Did you mean {proposal}?"
    """The confirmation question; ``{proposal}`` is the sentence the assistant would run."""
    clarify_text: str = "OK. What did you want?"
    """Said after a *no* to a confirmation."""
    cancelled_text: str = "OK, never mind."
    """Said after *never mind*."""
    teach_template: str = "I don't know what {words} is. Can you teach me?"
    """The teaching question at a teachable moment; ``{words}`` are the words it could not place."""

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ConfigError(f"DialogueConfig.timeout_s must be positive, got {self.timeout_s!r}")
        if "{proposal}" not in self.confirm_template:
            raise ConfigError("DialogueConfig.confirm_template must contain {proposal}")
        if "{words}" not in self.teach_template:
            raise ConfigError("DialogueConfig.teach_template must contain {words}")


__all__ = ["MAX_REPLY_WORDS", "REPLY_SENTENCES", "DialogueConfig", "Reply", "read_reply"]
