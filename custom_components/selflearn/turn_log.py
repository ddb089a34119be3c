"""The turns Home Assistant logged, kept while the service cannot take them and sent later.

Each turn goes to ``POST /v1/turns`` in the background, after the answer. When the service is
down or slow, the turn waits in a bounded buffer (the newest :data:`~.const.BUFFER_MAX`; older
ones are dropped and counted) that is saved in Home Assistant's storage, so a restart of either
side loses nothing that fits. The buffer is sent again every :data:`~.const.FLUSH_INTERVAL_S` and
whenever a call to the service succeeds. The service stores a turn once whatever the number of
times it is sent (turn ids are unique), so a batch sent twice is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store

from .client import SelflearnClient
from .const import BUFFER_MAX, DOMAIN, SEND_BATCH

_LOGGER = logging.getLogger(__name__)

STORAGE_VERSION = 1


class TurnLog:
    """The turns waiting to reach the service, in order."""

    def __init__(self, hass: HomeAssistant, client: SelflearnClient, entry_id: str) -> None:
        self.hass = hass
        self.client = client
        self.waiting: deque[dict[str, Any]] = deque(maxlen=BUFFER_MAX)
        self.dropped = 0
        """Turns dropped because the buffer was full."""
        self.sent = 0
        """Turns the service took since start."""
        self._store: Store[dict[str, Any]] = Store(hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.turns")
        self._lock = asyncio.Lock()

    async def async_load(self) -> None:
        """Take the turns a previous run could not send."""
        data = await self._store.async_load()
        if isinstance(data, dict):
            for record in data.get("turns", []):
                if isinstance(record, dict):
                    self._keep(record)
            self.dropped += int(data.get("dropped", 0) or 0)
        if self.waiting:
            _LOGGER.info("selflearn: %d turns from before the restart wait to be sent", len(self.waiting))

    def _keep(self, record: dict[str, Any]) -> None:
        if len(self.waiting) == self.waiting.maxlen:
            self.dropped += 1
        self.waiting.append(record)

    def _save_later(self) -> None:
        self._store.async_delay_save(lambda: {"turns": list(self.waiting), "dropped": self.dropped}, 5)

    async def async_add(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """Log ``record``: send it with whatever waits; keep it if the service cannot take it.
        Returns the service's accounting of the batch, or None."""
        self._keep(record)
        return await self.async_flush()

    async def async_flush(self) -> dict[str, Any] | None:
        """Send what waits, oldest first, in batches; stop at the first failure."""
        out: dict[str, Any] | None = None
        async with self._lock:
            while self.waiting:
                batch = list(self.waiting)[:SEND_BATCH]
                out = await self.client.log_turns(batch)
                if out is None:
                    self._save_later()
                    return None
                for _ in batch:
                    self.waiting.popleft()
                self.sent += len(batch)
                if out.get("quarantined"):
                    _LOGGER.warning("selflearn rejected logged turns: %s", out.get("rejected"))
            self._save_later()
        return out

    async def async_save(self) -> None:
        """Save what waits now (Home Assistant is stopping or the entry unloading)."""
        await self._store.async_save({"turns": list(self.waiting), "dropped": self.dropped})
