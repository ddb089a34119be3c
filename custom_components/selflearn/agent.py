"""The selflearn conversation agent: Home Assistant's own agent first; the selflearn service's
dialogue when it failed, or when a question is waiting (docs/home-assistant.md).

Each request goes to the wrapped agent (Home Assistant's default one unless configured
otherwise). When it answers ``no_intent_match`` or ``no_valid_targets``, the agent hands the
utterance to the service's dialogue (``POST /v1/dialogue``) and carries out what it says:

* ``pass`` -- Home Assistant's own answer stands;
* ``run`` -- run the given sentences through the wrapped agent instead (a rewrite, a taught name
  or routine, the proposal a person said yes to); a rewrite that does not work leaves Home
  Assistant's own answer;
* ``say`` -- answer with the given speech (the answer to "the big light is the reading lamp",
  "what have you learned");
* ``ask`` -- answer with the question ("Did you mean *turn off the lights in the kitchen*?", "I
  don't know what *mothership* is. Can you teach me?") and keep the conversation open: on Home
  Assistant 2025.4+ a satellite listens again (``continue_conversation``); typed Assist sends the
  answer with the same conversation id. While a question waits, the next utterance of that
  conversation goes to the dialogue first ("yes", "no", "it's the floor lamp").

A request shaped like a teaching command ("the big light is the reading lamp", "what have you
learned": the shape the service serves on ``/healthz``) goes to the dialogue first, with
``commands_only``: Home Assistant 2026.11 answers "the big light is the reading lamp" itself, as
a question about the reading lamp. Any other request Home Assistant understood costs no call to
the service. Every turn is logged in the background (buffered while the service cannot take it).
Anything wrong with the service -- down, slow, erroring, an unexpected answer, a bug here --
leaves Home Assistant's own answer unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
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
    ISSUE_AUTH,
    ISSUE_UNREACHABLE,
    MAX_OPEN_QUESTIONS,
    MAX_RUN_SENTENCES,
    QUESTION_WAIT_S,
    REWRITE_BEFORE,
    REWRITE_OFF,
)
from .home_sync import area_name_of_device
from .turn_log import TurnLog

_LOGGER = logging.getLogger(__name__)

LOG_FIELDS = ("turn_id", "timestamp", "text", "rewrite", "dialogue", "nlu")
"""Fields of a turn record the service's ``log`` object may set (``result`` is merged)."""


def failed(result: conversation.ConversationResult) -> bool:
    """Whether Home Assistant could not match or resolve the request (worth the dialogue)."""
    response = result.response
    code = response.error_code.value if response.error_code is not None else None
    return response.response_type == intent.IntentResponseType.ERROR and code in FAILED_CODES


def _error(result: conversation.ConversationResult) -> bool:
    return result.response.response_type == intent.IntentResponseType.ERROR


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


def _said(language: str, speech: str) -> intent.IntentResponse:
    response = intent.IntentResponse(language=language)
    response.async_set_speech(speech)
    return response


def _result(
    response: intent.IntentResponse, conversation_id: str | None, listen: bool = False
) -> conversation.ConversationResult:
    """A conversation result; ``listen``: keep the conversation open (Home Assistant 2025.4+)."""
    if listen:
        try:
            return conversation.ConversationResult(
                response=response,
                conversation_id=conversation_id,
                continue_conversation=True,  # type: ignore[call-arg,unused-ignore]
            )
        except TypeError:  # pragma: no cover - cores before 2025.4 cannot keep it open
            pass
    return conversation.ConversationResult(response=response, conversation_id=conversation_id)


@dataclass
class _Done:
    """What one request has done so far (so that a failure halfway never runs anything twice)."""

    result: conversation.ConversationResult | None = None


class Selflearn:
    """The agent's logic, shared by the conversation entity (2024.6+) and the config-entry agent
    of older cores: wraps a conversation agent, carries out the dialogue, logs every turn."""

    def __init__(
        self,
        hass: HomeAssistant,
        client: SelflearnClient,
        turns: TurnLog,
        household_id: str,
        salt: str,
        *,
        rewrite: str,
        timeout_ms: int,
        log_turns: bool,
        agent_id: str,
        entry_id: str,
    ) -> None:
        self.hass = hass
        self.client = client
        self.turns = turns
        self.household_id = household_id
        self._salt = salt
        self.rewrite_mode = rewrite
        self.timeout_s = timeout_ms / 1000
        self.log_turns = log_turns
        self.wrapped_agent_id = agent_id
        self.entry_id = entry_id
        self.rewrites = 0
        """Requests answered by running what the service said (a rewrite, a taught concept, a
        confirmed proposal) since start."""
        self.questions = 0
        """Questions asked since start."""
        self.errors = 0
        """Requests on which this integration failed and Home Assistant answered alone."""
        self.open: OrderedDict[str, float] = OrderedDict()
        """Conversation id -> until when (monotonic) a question of the service waits there."""
        self.taught: list[dict[str, Any]] = []
        """Concepts taught through this integration since start (newest last)."""

    @property
    def logged(self) -> int:
        """Turns the service took since start."""
        return self.turns.sent

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

    # --- one request ---------------------------------------------------------------------------

    async def async_process(
        self, user_input: conversation.ConversationInput
    ) -> conversation.ConversationResult:
        """Answer with the wrapped agent, and with what the service's dialogue says when that
        failed or a question waits. Never fails because of selflearn."""
        done = _Done()
        try:
            return await self._process(user_input, done)
        except Exception:
            self.errors += 1
            _LOGGER.exception("selflearn failed on %r; Home Assistant answers alone", user_input.text)
            if done.result is not None:
                return done.result
            return await self._converse(user_input.text, user_input, user_input.conversation_id)

    async def _process(
        self, user_input: conversation.ConversationInput, done: _Done
    ) -> conversation.ConversationResult:
        started = time.monotonic()
        text = user_input.text
        area = area_name_of_device(self.hass, user_input.device_id)
        turn_id = uuid.uuid4().hex
        conv = user_input.conversation_id
        mode = self.rewrite_mode
        first: dict[str, Any] | None = None
        if mode != REWRITE_OFF and conv is not None and self._waiting(conv):
            first = await self._dialogue(user_input, conv, turn_id, area, None, None)
            if first is not None and first["action"] != "pass":
                return await self._carry(first, user_input, conv, turn_id, area, started, None, done)
        if mode != REWRITE_OFF and mode != REWRITE_BEFORE and first is None and self.client.is_command(text):
            # "the big light is the reading lamp": a lesson Home Assistant may answer as something
            # else (2026.11 reads a question about the reading lamp), so the dialogue hears it first
            conv = conv or uuid.uuid4().hex
            first = await self._dialogue(user_input, conv, turn_id, area, None, None, commands_only=True)
            if first is not None and first.get("action") == "say":
                return await self._carry(first, user_input, conv, turn_id, area, started, None, done)
            first = None
        if mode == REWRITE_BEFORE and first is None:
            conv = conv or uuid.uuid4().hex
            first = await self._dialogue(user_input, conv, turn_id, area, None, None)
            if first is not None and first["action"] != "pass":
                return await self._carry(first, user_input, conv, turn_id, area, started, None, done)
        result = await self._converse(text, user_input, conv)
        done.result = result
        conv = result.conversation_id or conv
        if mode != REWRITE_OFF and mode != REWRITE_BEFORE and failed(result):
            conv = conv or uuid.uuid4().hex
            record = self.turn_record(user_input, result, area, started, turn_id, conv)
            answer = await self._dialogue(user_input, conv, turn_id, area, True, record)
            if answer is not None:
                return await self._carry(answer, user_input, conv, turn_id, area, started, result, done)
        self._log(self.turn_record(user_input, result, area, started, turn_id, conv), first)
        return result

    def _waiting(self, conversation_id: str) -> bool:
        until = self.open.get(conversation_id)
        if until is None:
            return False
        if time.monotonic() > until:
            del self.open[conversation_id]
            return False
        return True

    async def _dialogue(
        self,
        user_input: conversation.ConversationInput,
        conv: str,
        turn_id: str,
        area: str | None,
        was_failed: bool | None,
        record: dict[str, Any] | None,
        commands_only: bool = False,
    ) -> dict[str, Any] | None:
        request: dict[str, Any] = {
            "text": user_input.text[:2000],
            "household_id": self.household_id,
            "user_id": self.pseudonym("user", user_input.context.user_id),
            "conversation_id": self.pseudonym("session", conv),
            "turn_id": turn_id,
            "area": area,
            "timestamp": dt_util.utcnow().isoformat(),
            "failed": was_failed,
            "typed": user_input.device_id is None,
        }
        if record is not None:
            request["turn"] = record
        if commands_only:
            request["commands_only"] = True
        self.open.pop(conv, None)  # the service now decides whether a question still waits
        answer = await self.client.dialogue(request, self.timeout_s)
        self.update_repair_issue()
        if answer is not None and answer.get("fail_open"):
            return None
        return answer

    async def _carry(
        self,
        answer: dict[str, Any],
        user_input: conversation.ConversationInput,
        conv: str,
        turn_id: str,
        area: str | None,
        started: float,
        own: conversation.ConversationResult | None,
        done: _Done,
    ) -> conversation.ConversationResult:
        """Carry out the dialogue's ``answer`` (``own``: Home Assistant's answer, if it ran)."""
        action = answer["action"]
        speech = str(answer.get("speech") or "")
        language = user_input.language
        self._offer(answer.get("taught"))
        if action == "ask":
            self.questions += 1
            self.open[conv] = time.monotonic() + QUESTION_WAIT_S
            while len(self.open) > MAX_OPEN_QUESTIONS:
                self.open.popitem(last=False)
            result = _result(_said(language, speech), conv, listen=True)
            done.result = result
            return result  # the service logs the asking turn when the question ends
        if action == "say":
            if (answer.get("log") or {}).get("dialogue", {}).get("kind") == "forget":
                from .repairs import async_offer_taught  # its alias offer, if any, goes too

                self.hass.async_create_background_task(
                    async_offer_taught(self.hass, self.entry_id, self.client, self.household_id),
                    name=f"{DOMAIN} offer taught",
                )
            result = _result(_said(language, speech), conv)
            done.result = result
            if answer.get("log"):
                self._log(self.turn_record(user_input, result, area, started, turn_id, conv), answer)
            return result
        if action == "run":
            sentences = [str(s) for s in answer.get("sentences", []) if isinstance(s, str)][
                :MAX_RUN_SENTENCES
            ]
            ran = [await self._converse(sentence, user_input, conv) for sentence in sentences]
            last = ran[-1] if ran else None
            if last is not None:
                done.result = last
            answered = answer.get("ended") is not None  # a yes, a lesson: its result, whatever it is
            if last is not None and (answered or not any(_error(r) for r in ran)):
                self.rewrites += 1
                said = " ".join(s for s in [speech, *(_speech(r.response) for r in ran)] if s)
                if said != _speech(last.response):
                    last.response.async_set_speech(said)
                result = _result(last.response, last.conversation_id or conv)
                done.result = result
                record = self.turn_record(user_input, result, area, started, turn_id, conv)
                if len(ran) > 1:
                    record["nlu"] = {"matched": True, "intent": "SelflearnRoutine", "matcher": "taught"}
                    ok = not any(_error(r) for r in ran)
                    record["result"]["status"] = "success" if ok else "error"
                self._log(record, answer)
                return result
            answer = {**answer, "log": {"turn_id": turn_id}}  # no better than Home Assistant alone
        # pass, or a rewrite that did not help: Home Assistant's own answer
        result = own if own is not None else await self._converse(user_input.text, user_input, conv)
        done.result = result
        self._log(self.turn_record(user_input, result, area, started, turn_id, conv), answer)
        return result

    # --- logging -------------------------------------------------------------------------------

    def _log(self, record: dict[str, Any], answer: dict[str, Any] | None) -> None:
        """Log ``record`` in the background, with the fields the service said to put on it."""
        if not self.log_turns:
            return
        fields = answer.get("log") if answer is not None else None
        if isinstance(fields, dict):
            for key in LOG_FIELDS:
                if key in fields and fields[key] is not None:
                    record[key] = fields[key]
            if isinstance(fields.get("result"), dict):
                record["result"] = {**record["result"], **fields["result"]}
        self.hass.async_create_background_task(
            self._send(record), name=f"{DOMAIN} log turn {record['turn_id']}"
        )

    async def _send(self, record: dict[str, Any]) -> None:
        await self.turns.async_add(record)
        self.update_repair_issue()

    def turn_record(
        self,
        user_input: conversation.ConversationInput,
        result: conversation.ConversationResult,
        area: str | None,
        started: float,
        turn_id: str,
        conversation_id: str | None,
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
        return {
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
                "latency_ms": int((time.monotonic() - started) * 1000),
            },
        }

    # --- what was taught, offered to Home Assistant --------------------------------------------

    def _offer(self, concept: Any) -> None:
        if not isinstance(concept, dict):
            return
        self.taught.append(concept)
        from .repairs import async_offer_sentences, offer_alias

        offer_alias(self.hass, self.entry_id, concept)
        if concept.get("kind") == "phrasing":
            self.hass.async_create_background_task(
                async_offer_sentences(self.hass, self.entry_id, self.client, self.household_id),
                name=f"{DOMAIN} offer sentences",
            )

    def update_repair_issue(self) -> None:
        """Raise a repair issue after repeated failures -- at once, and one of its own, when the
        service refuses the admin token (401/403): waiting will not mend that --; withdraw them
        when the service answers."""
        refused = self.client.consecutive_failures > 0 and self.client.last_status in (401, 403)
        if refused:
            ir.async_delete_issue(self.hass, DOMAIN, ISSUE_UNREACHABLE)
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                ISSUE_AUTH,
                is_fixable=False,
                severity=ir.IssueSeverity.ERROR,
                translation_key=ISSUE_AUTH,
                translation_placeholders={
                    "url": self.client.url,
                    "status": str(self.client.last_status),
                    "token": "its admin token" if self.client.has_token else "no admin token",
                },
            )
            return
        ir.async_delete_issue(self.hass, DOMAIN, ISSUE_AUTH)
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
            if self.turns.waiting:
                self.hass.async_create_background_task(self.turns.async_flush(), name=f"{DOMAIN} send turns")


class SelflearnAgent(AbstractConversationAgent):
    """The config-entry agent of cores without conversation entities (2024.3)."""

    def __init__(self, logic: Selflearn) -> None:
        self.logic = logic

    @property
    def supported_languages(self) -> list[str]:
        """selflearn's NLU and rewriter work in English."""
        return ["en"]

    async def async_process(
        self, user_input: conversation.ConversationInput
    ) -> conversation.ConversationResult:
        return await self.logic.async_process(user_input)
