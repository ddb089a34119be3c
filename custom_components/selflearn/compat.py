"""What differs between the Home Assistant cores the integration supports (2024.3 to 2026.11).

* Forms: since 2026.x the core builds them with ``probatio`` (API-compatible with voluptuous,
  which older cores use and 2026.x still accepts); ``vol`` is whichever the core has.
* A repair flow's steps return ``RepairsFlowResult`` since 2026.x, a ``FlowResult`` before.
"""

from __future__ import annotations

try:
    import probatio as vol  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # before 2026.x
    import voluptuous as vol  # type: ignore[no-redef,unused-ignore]

try:
    from homeassistant.components.repairs import (  # type: ignore[attr-defined,unused-ignore]
        RepairsFlowResult as RepairsResult,
    )
except ImportError:  # before 2026.x
    from homeassistant.data_entry_flow import (  # type: ignore[assignment,misc,unused-ignore]
        FlowResult as RepairsResult,
    )

__all__ = ["RepairsResult", "vol"]
