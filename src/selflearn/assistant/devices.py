"""The simulated devices a home's entities stand for: their states, timers and lists.

The reference assistant acts on a :class:`HomeState` (the result stage), the simulator's users
look at it to judge whether their goal was met, and the failure point model re-runs n-best
alternatives on a copy of it. A real assistant has its own devices; nothing here is needed to
learn from its logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from selflearn.core.home import Home


@dataclass
class HomeState:
    """Mutable run-time state of a home: entity states and attributes, timers, lists."""

    home: Home
    """The home whose state this is."""
    states: dict[str, str] = field(default_factory=dict)
    """Entity id -> state string (``on``/``off``/``open``/``locked``/``playing``...)."""
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Entity id -> attributes (brightness, color, position, volume, temperature)."""
    timers: list[dict[str, Any]] = field(default_factory=list)
    """Running timers: ``{"name", "seconds", "area", "paused"}``."""
    shopping_list: list[str] = field(default_factory=list)
    """Items on the shopping list."""
    unavailable: set[str] = field(default_factory=set)
    """Entities currently offline (commands to them fail)."""

    @classmethod
    def initial(cls, home: Home) -> HomeState:
        """State at the start of a simulation."""
        return cls(
            home=home,
            states={e.entity_id: e.initial_state for e in home.entities},
            attributes={e.entity_id: {} for e in home.entities},
        )

    def copy(self) -> HomeState:
        """An independent copy (for counterfactual execution)."""
        return HomeState(
            home=self.home,
            states=dict(self.states),
            attributes={k: dict(v) for k, v in self.attributes.items()},
            timers=[dict(t) for t in self.timers],
            shopping_list=list(self.shopping_list),
            unavailable=set(self.unavailable),
        )
