"""The selflearn conversation agent: Home Assistant's own agent first, a rewrite only when it failed.

Each request goes to the wrapped agent (Home Assistant's default one unless configured otherwise).
When it answers ``no_intent_match`` or ``no_valid_targets``, the agent asks the selflearn service
for a rewrite (``failed: true``, with the area of the device that heard it) and, if there is one,
runs the wrapped agent again on the rewritten text; the rewrite's answer is kept only if it
worked. A request Home Assistant understood costs no call to the service (the turn log is sent in
the background and never delays the answer). Anything wrong with the service -- down, slow,
erroring -- leaves Home Assistant's own answer unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from typing import Any, Literal

from homeassistant.components import conversation
from homeassistant.core import HomeAssistant
from homeassistant.helpers import intent
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util

try:  # where the agent's base class lives moved in 2024.4
    from homeassistant.components.conversation.models import AbstractConversationAgent
except ImportError:  # pragma: no cover - 2024.3
    from homeassistant.components.conversation.agent import (  # type: ignore[no-redef,import-not-found,unused-ignore]
        AbstractConversationAgent,
    )

from .client import SelflearnClient
from .const import (
    DOMAIN,
    FAILED_CODES,
    FAILURES_BEFORE_REPAIR,
    ISSUE_UNREACHABLE,
    REWRITE_BEFORE,
    REWRITE_BEHIND,
)
from .home_sync import area_name_of_device

_LOGGER = logging.getLogger(__name__)


def failed(result: conversation.ConversationResult) -> bool:
    """Whether Home Assistant could not match or resolve the request (worth a rewrite)."""
    response = result.response
    code = response.error_code.value if response.error_code is not None else None
    return response.response_type == intent.IntentResponseType.ERROR and code in FAILED_CODES


def _speech(response: intent.IntentResponse) -> str:
    plain = response.speech.get("plain") or {}
    return str(plain.get("speech", ""))[:2000]


def _slots(response: intent.IntentResponse) -> dict[str, Any]:
    """The matched intent's slots in the log format: one value per slot (Home Assistant's
    one-item lists, as it gives ``domain``, as their item), anything else that is not a number,
    text or flag as text. Label transfer needs them (``selflearn label``)."""
    found = getattr(getattr(response, "intent", None), "slots", None) or {}
    out: dict[str, Any] = {}
    for name, slot in found.items():
        value = slot.get("value") if isinstance(slot, dict) else slot
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        elif value is not None and not isinstance(value, (str, int, float, bool)):
            value = str(value)
        out[str(name)[:64]] = value[:2000] if isinstance(value, str) else value
    return out


class SelflearnAgent(AbstractConversationAgent):
    """Wraps a conversation agent; rewrites what it failed on; logs every turn."""

    def __init__(
        self,
        hass: HomeAssistant,
        client: SelflearnClient,
        household_id: str,
        salt: str,
        *,
        rewrite: str,
        timeout_ms: int,
        log_turns: bool,
        agent_id: str,
    ) -> None:
        self.hass = hass
        self.client = client
        self.household_id = household_id
        self._salt = salt
        self.rewrite_mode = rewrite
        self.timeout_s = timeout_ms / 1000
        self.log_turns = log_turns
        self.wrapped_agent_id = agent_id
        self.rewrites = 0
        """Requests answered from a rewrite since start."""
        self.logged = 0
        """Turns the service took (``POST /v1/turns``) since start."""

    @property
    def supported_languages(self) -> list[str]:
        """selflearn's NLU and rewriter work in English."""
        return ["en"]

    def pseudonym(self, kind: str, value: str | None) -> str:
        """A stable id that does not reveal Home Assistant's own (salted per installation)."""
        if value is None:
            return "unknown"
        digest = hashlib.blake2b(f"{self._salt}:{kind}:{value}".encode(), digest_size=8).hexdigest()
        return f"{kind[0]}{digest}"

    async def _converse(
        self, text: str, user_input: conversation.ConversationInput, conversation_id: str | None
    ) -> conversation.ConversationResult:
        return await conversation.async_converse(
            self.hass,
            text,
            conversation_id,
            user_input.context,
            language=user_input.language,
            agent_id=self.wrapped_agent_id,
            device_id=user_input.device_id,
        )

    async def _ask(
        self, user_input: conversation.ConversationInput, area: str | None, was_failed: bool | None
    ) -> dict[str, Any] | None:
        request = {
            "text": user_input.text,
            "household_id": self.household_id,
            "user_id": self.pseudonym("user", user_input.context.user_id),
            "area": area,
            "failed": was_failed,
        }
        decision = await self.client.rewrite(request, self.timeout_s)
        self._update_repair_issue()
        if decision is None or not decision.get("rewritten") or decision.get("fail_open"):
            return None
        if decision["text"].strip() == user_input.text.strip():
            return None
        return decision

    async def async_process(
        self, user_input: conversation.ConversationInput
    ) -> conversation.ConversationResult:
        """Answer with the wrapped agent; on its failure, with a rewrite that works."""
        started = time.monotonic()
        area = area_name_of_device(self.hass, user_input.device_id)
        decision: dict[str, Any] | None = None
        if self.rewrite_mode == REWRITE_BEFORE:
            decision = await self._ask(user_input, area, None)
            if decision is not None:
                result = await self._converse(decision["text"], user_input, user_input.conversation_id)
                if failed(result):  # the rewrite did not help: answer the request as said
                    decision = None
                    result = await self._converse(user_input.text, user_input, user_input.conversation_id)
            else:
                result = await self._converse(user_input.text, user_input, user_input.conversation_id)
        else:
            result = await self._converse(user_input.text, user_input, user_input.conversation_id)
            if self.rewrite_mode == REWRITE_BEHIND and failed(result):
                decision = await self._ask(user_input, area, True)
                if decision is not None:
                    second = await self._converse(
                        decision["text"], user_input, result.conversation_id or user_input.conversation_id
                    )
                    if failed(second) or second.response.response_type == intent.IntentResponseType.ERROR:
                        decision = None  # no better than Home Assistant's own answer: keep that
                    else:
                        result = second
        if decision is not None:
            self.rewrites += 1
        elapsed_ms = int((time.monotonic() - started) * 1000)
        if self.log_turns:
            record = self.turn_record(user_input, result, decision, area, elapsed_ms)
            self.hass.async_create_background_task(
                self._send_turn(record), name=f"{DOMAIN} log turn {record['turn_id']}"
            )
        return result

    async def _send_turn(self, record: dict[str, Any]) -> None:
        out = await self.client.log_turns([record])
        self._update_repair_issue()
        if out is not None and out.get("quarantined"):
            _LOGGER.warning("selflearn rejected a logged turn: %s", out.get("rejected"))
        elif out is not None:
            self.logged += 1

    def turn_record(
        self,
        user_input: conversation.ConversationInput,
        result: conversation.ConversationResult,
        decision: dict[str, Any] | None,
        area: str | None,
        elapsed_ms: int,
    ) -> dict[str, Any]:
        """The turn in selflearn's log format (docs/log-format.md)."""
        response = result.response
        code = response.error_code.value if response.error_code is not None else None
        status: Literal["success", "error", "no_match"]
        if response.response_type != intent.IntentResponseType.ERROR:
            status = "success"
        elif code == "no_intent_match":
            status = "no_match"
        else:
            status = "error"
        matched_intent = getattr(getattr(response, "intent", None), "intent_type", None)
        turn_id = uuid.uuid4().hex
        conversation_id = result.conversation_id or user_input.conversation_id
        record: dict[str, Any] = {
            "record_type": "turn",
            "turn_id": turn_id,
            "session_id": self.pseudonym("session", conversation_id) if conversation_id else turn_id,
            "user_id": self.pseudonym("user", user_input.context.user_id),
            "household_id": self.household_id,
            "timestamp": dt_util.utcnow().isoformat(),
            "device": {
                "device_id": self.pseudonym("device", user_input.device_id or "text"),
                "device_type": "satellite" if user_input.device_id else "chat",
                "area": area,
                "locale": user_input.language if "-" in user_input.language else f"{user_input.language}-US",
            },
            "text": user_input.text[:2000],
            "nlu": {
                "matched": code != "no_intent_match",
                "intent": matched_intent,
                "slots": _slots(response),
                "matcher": "home_assistant",
            },
            "result": {
                "status": status,
                "response_text": _speech(response),
                "error_code": code,
                "latency_ms": elapsed_ms,
            },
        }
        if decision is not None:
            record["rewrite"] = decision.get("rewrite") or {
                "original_text": user_input.text,
                "rewritten_text": decision["text"],
                "layer": decision.get("layer") or "global",
                "rule_id": decision.get("rule_id"),
                "score": min(1.0, max(0.0, float(decision.get("score") or 0.0))),
            }
        return record

    def _update_repair_issue(self) -> None:
        """Raise a repair issue after repeated failures; withdraw it when the service answers."""
        if self.client.consecutive_failures >= FAILURES_BEFORE_REPAIR:
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                ISSUE_UNREACHABLE,
                is_fixable=False,
                severity=ir.IssueSeverity.WARNING,
                translation_key=ISSUE_UNREACHABLE,
                translation_placeholders={
                    "url": self.client.url,
                    "failures": str(self.client.consecutive_failures),
                    "error": self.client.last_error or "",
                },
            )
        elif self.client.consecutive_failures == 0:
            ir.async_delete_issue(self.hass, DOMAIN, ISSUE_UNREACHABLE)
