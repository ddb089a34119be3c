"""The HTTP client of a running ``selflearn serve`` (docs/service.md).

Every call has a deadline and returns ``None`` on any failure -- down, slow, an HTTP error, a body
that is not what the service answers, a resolver that raises (Home Assistant 2025.4's ``aiodns``
raises ``TypeError`` for some host names) or anything else: the caller then keeps Home
Assistant's own answer. The client counts consecutive failures so the integration can raise a
repair issue.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import aiohttp

_LOGGER = logging.getLogger(__name__)

MAX_COMMAND_CHARS = 300
"""Longer texts are no teaching command (and the service's pattern never runs on a long text)."""


class SelflearnClient:
    """Calls to one selflearn service, each failing open."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        admin_token: str | None = None,
    ) -> None:
        self._session = session
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
        self.has_token = bool(admin_token)
        """Whether calls carry an admin token."""
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self.last_status: int | None = None
        """HTTP status of the last answer (``None``: no answer)."""
        self.command_shape: re.Pattern[str] | None = None
        """The shape of a teaching command, as the service last said (``GET /healthz``)."""
        self.calls = 0
        """Requests sent (every endpoint), for tests and diagnostics."""

    async def _request(
        self, method: str, path: str, timeout_s: float, body: Any = None
    ) -> dict[str, Any] | None:
        self.calls += 1
        self.last_status = None
        try:
            async with asyncio.timeout(timeout_s):
                async with self._session.request(
                    method, self.url + path, json=body, headers=self._headers
                ) as res:
                    self.last_status = res.status
                    if res.status >= 400:
                        text = (await res.text())[:200]
                        raise ValueError(f"HTTP {res.status}: {text}")
                    data = await res.json(content_type=None)
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        except asyncio.CancelledError:
            raise
        except Exception as err:
            self.consecutive_failures += 1
            self.last_error = f"{method} {path}: {err.__class__.__name__}: {err}".strip(": ")
            if self.consecutive_failures == 1:
                _LOGGER.warning("selflearn service at %s failed (%s)", self.url, self.last_error)
            return None
        if self.consecutive_failures:
            _LOGGER.info("selflearn service at %s answers again", self.url)
        self.consecutive_failures = 0
        self.last_error = None
        return data

    async def token_status(self, timeout_s: float = 5.0) -> int | None:
        """The HTTP status the service answers this client's admin token with, on an endpoint
        that needs it when the service has one (``GET /v1/homes/<an id no home has>``): 404 (or
        200) when the token is right or not needed, 401/403 when it is missing or wrong; ``None``
        when there is no answer. Not counted as a failure."""
        try:
            async with asyncio.timeout(timeout_s):
                async with self._session.get(
                    self.url + "/v1/homes/ha-token-check", headers=self._headers
                ) as res:
                    return int(res.status)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            _LOGGER.debug("selflearn token check at %s failed: %s", self.url, err)
            return None

    async def health(self, timeout_s: float = 5.0) -> dict[str, Any] | None:
        """``GET /healthz`` (keeps the command shape it serves: :meth:`is_command`)."""
        out = await self._request("GET", "/healthz", timeout_s)
        dialogue = out.get("dialogue") if out is not None else None
        shape = dialogue.get("commands") if isinstance(dialogue, dict) else None
        if isinstance(shape, str):
            try:
                self.command_shape = re.compile(shape)
            except re.error:
                _LOGGER.warning("selflearn service at %s: its command shape is not a regex", self.url)
        return out

    def is_command(self, text: str) -> bool:
        """Whether ``text`` has the shape of a teaching command ("the big light is the reading
        lamp"), which the service's dialogue hears before Home Assistant does; ``False`` until
        the service said what that shape is. The text is read as the service reads it:
        lower-cased, every character but letters, digits, ``_``, ``'`` and spaces a space,
        ``%`` said "percent"."""
        if self.command_shape is None or len(text) > MAX_COMMAND_CHARS:
            return False
        words = re.sub(r"[^\w\s']", " ", text.lower().replace("%", " percent "))
        return self.command_shape.match(" ".join(words.split())) is not None

    async def rewrite(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
        """``POST /v1/rewrite``: the decision, or None (keep the original text)."""
        out = await self._request("POST", "/v1/rewrite", timeout_s, request)
        if out is not None and not isinstance(out.get("text"), str):
            return None
        return out

    async def dialogue(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
        """``POST /v1/dialogue``: what to do with an utterance, or None (as Home Assistant alone)."""
        out = await self._request("POST", "/v1/dialogue", timeout_s, request)
        if out is None or out.get("action") not in ("pass", "run", "say", "ask"):
            return None
        if not isinstance(out.get("speech", ""), str) or not isinstance(out.get("sentences", []), list):
            return None
        return out

    async def log_turns(
        self, records: list[dict[str, Any]], timeout_s: float = 10.0
    ) -> dict[str, Any] | None:
        """``POST /v1/turns``: the ingest accounting, or None."""
        return await self._request("POST", "/v1/turns", timeout_s, records)

    async def put_home(self, household_id: str, home: dict[str, Any], timeout_s: float = 10.0) -> bool:
        """``PUT /v1/homes/{household_id}``: whether the service took the home."""
        return await self._request("PUT", f"/v1/homes/{household_id}", timeout_s, home) is not None

    async def concepts(self, household_id: str, timeout_s: float = 10.0) -> list[dict[str, Any]] | None:
        """``GET /v1/concepts``: what the household taught, or None."""
        out = await self._request("GET", f"/v1/concepts?household_id={household_id}", timeout_s)
        found = out.get("concepts") if out is not None else None
        return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else None

    async def sentences(self, household_id: str, timeout_s: float = 30.0) -> dict[str, Any] | None:
        """``GET /v1/sentences``: what the household taught, as one custom sentences file, or None."""
        out = await self._request("GET", f"/v1/sentences?household_id={household_id}", timeout_s)
        if out is None or not isinstance(out.get("yaml"), str) or not isinstance(out.get("sentences"), int):
            return None
        return out
