"""Phrasings: surface patterns of a goal, with typed placeholders the simulator fills per home.

A :class:`Phrasing` is what a user might say for a kind of goal, with the home-specific parts
left as placeholders: ``"kill the lights in the {area}"`` is a phrasing of
``HassTurnOff`` with fixed slot ``domain=light`` and placeholder ``area``. The simulator fills
``{area}`` with the name *this user* uses for the room, so one phrasing serves every home.

Placeholders are the slot names Home Assistant uses: ``{name}`` (an entity), ``{area}``,
``{floor}``, ``{brightness}``, ``{temperature}``, ``{position}``, ``{volume}``,
``{minutes}``, ``{seconds}``, ``{hours}``, ``{item}``, ``{color}``, ``{timer_name}``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Literal

PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")

KNOWN_PLACEHOLDERS = frozenset(
    {
        "name",
        "area",
        "floor",
        "brightness",
        "temperature",
        "position",
        "volume",
        "minutes",
        "seconds",
        "hours",
        "item",
        "color",
        "timer_name",
    }
)

Split = Literal["train", "test"]


@dataclass(frozen=True)
class Phrasing:
    """One way of saying a kind of goal."""

    pattern: str
    """Lower-case text with ``{placeholder}`` markers, e.g. ``"kill the lights in the {area}"``."""
    intent: str
    """Home Assistant intent the phrasing expresses, or ``OutOfScope``."""
    fixed_slots: dict[str, str] = field(default_factory=dict)
    """Slots implied by the words rather than filled in, e.g. ``{"domain": "light"}``."""
    source: str = "templates"
    """Where it came from: ``templates``, ``colloquial``, ``hwu64``, ``slurp``, ``ha_tests``."""
    original_intent: str | None = None
    """The corpus's own intent label, when the phrasing came from a corpus."""

    @property
    def placeholders(self) -> tuple[str, ...]:
        """Placeholder names in order of appearance, without duplicates."""
        seen: list[str] = []
        for name in PLACEHOLDER.findall(self.pattern):
            if name not in seen:
                seen.append(name)
        return tuple(seen)

    @property
    def kind(self) -> tuple[str, tuple[tuple[str, str], ...], tuple[str, ...]]:
        """What goals this phrasing can express: intent, fixed slots, placeholder set."""
        return (self.intent, tuple(sorted(self.fixed_slots.items())), tuple(sorted(self.placeholders)))

    @property
    def split(self) -> Split:
        """Deterministic 80/20 train/test split by the pattern text, so that evaluation uses
        phrasings never seen in training whatever source they come from."""
        digest = hashlib.blake2b(self.pattern.encode(), digest_size=4).digest()
        return "test" if int.from_bytes(digest, "big") % 5 == 0 else "train"

    def fill(self, values: dict[str, str]) -> str:
        """The pattern with each placeholder replaced by ``values[name]``."""

        def sub(match: re.Match[str]) -> str:
            return values[match.group(1)]

        return PLACEHOLDER.sub(sub, self.pattern)
