"""A Wyoming conversation service: Home Assistant's English NLU with selflearn's rewriter behind it.

Home Assistant talks to external speech and conversation services over the Wyoming protocol
(JSON-lines events over TCP). This service answers as a Wyoming *intent* program (and a *handle*
program): each request text goes to the reference NLU (Home Assistant's real English matcher,
:class:`~selflearn.assistant.nlu.HomeAssistantNlu`, on the configured home); only when it fails
is the online rewriter asked (``RewriteContext.failed=True``) and the NLU run again on its
rewrite -- a request that works is never changed. A rewriter that raises, answers over its
budget or not within ``timeout_ms`` is ignored: the answer is the NLU's on the original text.

Events (see docs/wyoming.md):

* ``describe`` -> ``info``: one intent program (``selflearn``) and one handle program
  (``selflearn-handle``), English, installed;
* ``recognize`` -> ``intent`` (name, entities from the NLU's slots, the response text) or
  ``not-recognized`` (the response text explains, as Home Assistant words it);
* ``transcript`` (what Home Assistant's ``wyoming`` conversation agent sends) -> the same
  ``intent``/``not-recognized`` by default, so that Home Assistant executes the intent on its
  real devices; with ``transcript_answer="handle"`` (or after a ``select-program`` naming the
  handle program) -> ``handled``/``not-handled`` with the response text only;
* every answer's ``context`` echoes the request's ``conversation_id`` and carries the provenance
  under ``selflearn`` (the text the NLU answered, the rewrite, a fail-open reason).

Run it (``--home`` a YAML/JSON file in the shape of ``Home.to_dict``, or ``--store`` with the
household's row in ``homes``)::

    selflearn wyoming --home home.yaml --rewriter models/rewriter --uri tcp://0.0.0.0:10700

In Python, without a socket:

>>> import asyncio
>>> from selflearn.core.home import Home
>>> home = Home.from_dict({"home_id": "h1", "areas": [{"id": "kitchen", "name": "Kitchen"}],
...     "entities": [{"id": "light.kitchen", "name": "Kitchen light", "area": "kitchen"}]})
>>> service = ConversationService(home)
>>> reply = asyncio.run(service.reply("turn off the lights in the kitchen"))
>>> reply.recognized, reply.intent, reply.slots, reply.response
(True, 'HassTurnOff', {'area': 'kitchen', 'domain': 'light'}, 'Turned off the light')
>>> reply.intent_event().type, reply.intent_event().data["entities"][0]
('intent', {'name': 'area', 'value': 'kitchen'})
>>> asyncio.run(service.reply("kill the lights in the kitchen")).intent_event().type
'not-recognized'
>>> service.close()
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.info import Attribution, HandleModel, HandleProgram, Info, IntentModel, IntentProgram
from wyoming.intent import Entity, Intent, NotRecognized
from wyoming.server import AsyncEventHandler, AsyncServer

from selflearn.assistant.devices import HomeState
from selflearn.assistant.execute import NO_MATCH_RESPONSE
from selflearn.assistant.nlu import NLU_CONFIGS, STRICT_MATCHERS, NluConfig
from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.assistant.port import AssistantPort
from selflearn.core.errors import ConfigError
from selflearn.core.home import Home
from selflearn.core.hooks import Confirm, RewriteContext
from selflearn.core.schema import RewriteTrace, SlotValue, Turn
from selflearn.dialogue import (
    ConceptBook,
    Conversations,
    Dialogue,
    Exchange,
    Heard,
    Learned,
    TeachBudget,
    Teaching,
    read_command,
)
from selflearn.integrations.wyoming_events import Malformed, read_event
from selflearn.integrations.wyoming_home import load_home as load_home  # re-exported: the command's
from selflearn.integrations.wyoming_home import load_home_file as load_home_file
from selflearn.integrations.wyoming_home import load_service_home as load_service_home
from selflearn.integrations.wyoming_home import load_store_home as load_store_home
from selflearn.rewrite.rewriter import RewriteDecision, Rewriter

log = logging.getLogger(__name__)

Answer = Literal["intent", "handle"]
"""How a ``transcript`` is answered: ``intent``/``not-recognized`` (Home Assistant then executes
the intent) or ``handled``/``not-handled`` (a response text only)."""

INTENT_PROGRAM = "selflearn"
"""Name of the intent program in ``info`` (Home Assistant names its conversation agent after it)."""
HANDLE_PROGRAM = "selflearn-handle"
"""Name of the handle program in ``info`` (``select-program`` with it: transcripts get ``handled``)."""

_INTENTS_URL = "https://github.com/home-assistant/intents"
_ENGLISH_ONLY = "Sorry, I only understand English"


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:  # pragma: no cover - an uninstalled checkout
        return None


@dataclass(frozen=True)
class WyomingConfig:
    """How the service answers."""

    household_id: str | None = None
    """Household the requests come from (for the rewriter); default: the home's ``home_id``."""
    timeout_ms: float = 50.0
    """A rewriter decision not ready by then is ignored (the NLU's answer on the original text)."""
    language: str = "en"
    """The one language answered (the reference NLU is English)."""
    transcript_answer: Answer = "intent"
    """How ``transcript`` events are answered (see :data:`Answer`)."""
    nlu: NluConfig = "strict+gazetteer"
    """The NLU configuration (Home Assistant today: strict templates, then the gazetteer)."""
    confirm: str = "guesses"
    """When the rewriter asks "Did you mean ...?" instead of acting (``off``, ``guesses``,
    ``unconfirmed``, ``all``; docs/dialogue.md). A question is answered ``handled`` with its text;
    the next transcript of the same conversation answers it."""

    def __post_init__(self) -> None:
        if self.timeout_ms <= 0:
            raise ConfigError(f"timeout_ms must be positive, got {self.timeout_ms!r}")
        if self.language.split("-")[0].lower() != "en":
            raise ConfigError(f"only English (en) is supported so far, not {self.language!r}")
        if self.transcript_answer not in ("intent", "handle"):
            raise ConfigError(f"transcript_answer must be intent or handle, not {self.transcript_answer!r}")
        if self.nlu not in NLU_CONFIGS:
            raise ConfigError(f"unknown NLU configuration {self.nlu!r}; expected one of {NLU_CONFIGS}")
        if self.confirm not in ("off", "guesses", "unconfirmed", "all"):
            raise ConfigError(f"confirm must be off, guesses, unconfirmed or all, not {self.confirm!r}")


@dataclass(frozen=True)
class Reply:
    """The service's answer to one request, before it becomes a Wyoming event."""

    text: str
    """The request text as received."""
    understood: str
    """The text the NLU answered: the rewrite, or the request text."""
    recognized: bool
    """The NLU matched an intent and its names resolved in the home."""
    intent: str | None = None
    """The matched intent (or the NLU's guess when it failed)."""
    slots: dict[str, SlotValue] = field(default_factory=dict)
    """The NLU's slots (``area`` as an area id, ``name`` as an entity name, as Home Assistant)."""
    response: str = NO_MATCH_RESPONSE
    """What to say: the reference assistant's response on a copy of the home's configured state,
    or why the request failed ("Sorry, I am not aware of any area called garage")."""
    executed: bool = False
    """That response is a success (``handled``), not an error (``not-handled``)."""
    matcher: str = "none"
    """``strict``, ``gazetteer`` or ``none``."""
    rewrite: RewriteTrace | None = None
    """The rewrite applied, to log with the turn (``Turn.rewrite``)."""
    fail_open: str | None = None
    """Why the rewriter was ignored: ``timeout``, ``error`` or ``over_budget``."""
    reasons: tuple[str, ...] = ()
    """The rewriter's reasons, when it was asked."""
    version: str | None = None
    """The rewriter's version, when it was asked."""
    said: bool = False
    """The answer is only words -- a question, the answer to a lesson or to "never mind" --
    answered ``handled`` in either mode (Home Assistant says the text and runs nothing)."""
    conversation_id: str | None = None
    """The conversation a question waits in (echoed in the answer's context)."""

    def context(self, incoming: dict[str, Any] | None = None) -> dict[str, Any]:
        """The answer's ``context``: the request's ``conversation_id`` and selflearn's provenance."""
        out: dict[str, Any] = {}
        if incoming and "conversation_id" in incoming:
            out["conversation_id"] = incoming["conversation_id"]
        elif self.conversation_id is not None:
            out["conversation_id"] = self.conversation_id
        out["selflearn"] = {
            "text": self.understood,
            "rewritten": self.rewrite is not None,
            "rewrite": self.rewrite.model_dump(mode="json") if self.rewrite is not None else None,
            "fail_open": self.fail_open,
            "reasons": list(self.reasons),
            "version": self.version,
            "matcher": self.matcher,
        }
        return out

    def entities(self) -> list[Entity]:
        """The slots as Wyoming entities (slots without a value are left out)."""
        return [Entity(name=name, value=value) for name, value in self.slots.items() if value is not None]

    def intent_event(self, incoming: dict[str, Any] | None = None) -> Event:
        """``intent`` (recognized) or ``not-recognized``, as an intent program answers; ``handled``
        for words only (:attr:`said`)."""
        if self.said:
            return Handled(text=self.response, context=self.context(incoming)).event()
        if self.recognized and self.intent:
            return Intent(
                name=self.intent, entities=self.entities(), text=self.response, context=self.context(incoming)
            ).event()
        return NotRecognized(text=self.response, context=self.context(incoming)).event()

    def handle_event(self, incoming: dict[str, Any] | None = None) -> Event:
        """``handled`` (recognized and carried out) or ``not-handled``, as a handle program answers."""
        if self.said or (self.recognized and self.executed):
            return Handled(text=self.response, context=self.context(incoming)).event()
        return NotHandled(text=self.response, context=self.context(incoming)).event()


class _Decided:
    """The dialogue's rewrite hook here: the rewriter's answer, decided beforehand on the worker
    thread under a deadline (the dialogue itself runs on the event loop)."""

    def __init__(self, rewriter: Rewriter | None = None) -> None:
        self.answer: RewriteTrace | Confirm | None = None
        self.rewriter = rewriter

    def __call__(self, text: str, context: RewriteContext) -> RewriteTrace | Confirm | None:
        return self.answer

    def learned(self, household_id: str) -> list[Learned]:
        """What the rewriter's personal layer learned for the household and acts on."""
        return self.rewriter.learned(household_id) if self.rewriter is not None else []

    def forget_words(self, household_id: str, words: str) -> list[Learned]:
        """Forget ``words`` in the rewriter's personal layer."""
        return self.rewriter.forget_words(household_id, words) if self.rewriter is not None else []


class ConversationService:
    """What the Wyoming handler asks: a question waiting in the conversation first, then the NLU
    on the home, then (on failure) the dialogue: teaching commands, taught concepts, the
    rewriter's rewrite or its question, a teachable moment (:mod:`selflearn.dialogue`).

    The NLU runs on the caller's thread (the event loop), the rewriter on one worker thread of
    its own with a hard deadline (``timeout_ms``): a slow decision is abandoned, and decisions
    are serialised (a :class:`~selflearn.rewrite.rewriter.Rewriter` is not thread-safe). Not
    thread-safe itself: call :meth:`reply` from one event loop.
    """

    def __init__(
        self, home: Home, rewriter: Rewriter | None = None, config: WyomingConfig | None = None
    ) -> None:
        self.home = home
        self.config = config or WyomingConfig()
        self.household_id = self.config.household_id or home.home_id
        self.rewriter = rewriter
        if rewriter is not None:
            rewriter.homes[self.household_id] = home
            if self.config.confirm != "off":
                rewriter.config = replace(rewriter.config, confirm=self.config.confirm)  # type: ignore[arg-type]
        self.assistant = Assistant(AssistantConfig(nlu=self.config.nlu, asr="exact"))
        self._state = HomeState.initial(home)
        self._decided = _Decided(rewriter)
        self.conversations = Conversations(
            Dialogue(
                self._decided,
                ask=True,
                teaching=Teaching(ConceptBook(), TeachBudget(typed_min_repeats=1)),
                rewrite_when="on_failure",
            )
        )
        """Questions waiting per conversation and what the household taught (in memory)."""
        self._executor = (
            ThreadPoolExecutor(1, thread_name_prefix="selflearn-wyoming-rewrite")
            if rewriter is not None
            else None
        )
        self._version: str | None = None
        self.stats: Counter[str] = Counter()
        """Requests, recognized, rewritten, fail-opens by reason, handler errors."""

    @property
    def rewriter_version(self) -> str | None:
        """The version of the loaded rewriter (``None`` without one), computed once (it hashes
        the artefacts: tens of milliseconds for a trained rewriter)."""
        if self.rewriter is None:
            return None
        if self._version is None:
            try:
                self._version = self.rewriter.version
            except Exception:  # a broken rewriter must not break the answer
                return None
        return self._version

    def understand(self, text: str, area: str | None = None, explain: bool = True) -> Reply:
        """NLU, entity resolution and the reference assistant's response for ``text`` (no rewriter).

        The response comes from running the intent on a copy of the home's configured state
        (nothing persists between requests): the words the reference assistant would say.
        ``explain=False`` skips the NLU's pass that words a failure ("not aware of any device
        called ..."); whether the request is understood, and how, is the same.
        """
        found = self.home.area_named(area) if area else None
        area_id = found.area_id if found is not None else None
        nlu, resolution, result, _effect = self.assistant.run_text(
            text, self._state.copy(), datetime.now(UTC), area_id, explain_failures=explain
        )
        recognized = nlu.trace.matched and resolution is not None and resolution.trace.ok
        return Reply(
            text=text,
            understood=text,
            recognized=recognized,
            intent=nlu.trace.intent,
            slots=dict(nlu.trace.slots) if recognized else {},
            response=result.response_text or NO_MATCH_RESPONSE,
            executed=result.status == "success",
            matcher=nlu.trace.matcher,
        )

    def decide(self, text: str, context: RewriteContext) -> RewriteDecision:
        """The rewriter's decision for a request the NLU failed on (runs on the worker thread)."""
        assert self.rewriter is not None
        return self.rewriter.rewrite_one(text, context)

    async def reply(self, text: str, context: dict[str, Any] | None = None) -> Reply:
        """Answer one request: the answer to a question waiting in its conversation; else the NLU
        first; on failure the dialogue (a teaching command, a taught concept, the rewriter's
        rewrite or question, a teachable moment), then the NLU on what it says to run.

        ``context`` is the Wyoming event's: ``conversation_id`` (Home Assistant sends it: a
        question waits there), ``area`` (the name of the area of the device that heard the
        request) and ``user_id`` are read when present.
        """
        context = context or {}
        area = context.get("area") if isinstance(context.get("area"), str) else None
        user = context.get("user_id") if isinstance(context.get("user_id"), str) else "unknown"
        given = context.get("conversation_id")
        conv = given if isinstance(given, str) and given else "wyoming"
        self.stats["requests"] += 1
        found = self.home.area_named(area) if area else None
        port = AssistantPort(self.assistant, self._state, found.area_id if found is not None else None)
        heard = Heard(text, self.household_id, str(user), datetime.now(UTC), uuid.uuid4().hex, area=area)
        if self.conversations.waiting(self.household_id, conv) is not None:
            self._decided.answer = None
            exchange = self.conversations.hear(heard, conv, port)
            if exchange.step.action != "pass":
                return self._carry(exchange, text, area, conv)
            self._learn(exchange, None)
        if read_command(text) is not None:  # "the big light is the floor lamp" names a lamp too
            self._decided.answer = None
            exchange = self.conversations.hear(heard, conv, port)
            if exchange.step.action == "say":
                return self._carry(exchange, text, area, conv)
        first = self.understand(text, area, explain=False)
        if first.recognized and first.matcher not in STRICT_MATCHERS and self._taught(text, str(user)):
            # Only a fuzzy match: what the household taught wins over it, as in the dialogue.
            self._decided.answer = None
            exchange = self.conversations.hear(heard, conv, port)
            if exchange.step.action == "run":
                return self._carry(exchange, text, area, conv)
        if first.recognized:
            self.stats["recognized"] += 1
            return first
        if not text.strip():
            return self.understand(text, area)
        decision: RewriteDecision | None = None
        if self.rewriter is not None and self._executor is not None:
            ctx = RewriteContext(
                household_id=self.household_id,
                user_id=str(user),
                home=self.home,
                area=area,
                timestamp=heard.timestamp,
                failed=True,
            )
            loop = asyncio.get_running_loop()
            try:
                decision = await asyncio.wait_for(
                    loop.run_in_executor(self._executor, self.decide, text, ctx),
                    self.config.timeout_ms / 1000,
                )
            except TimeoutError:
                return self._fail_open(
                    text, area, "timeout", f"timeout: no decision within {self.config.timeout_ms} ms"
                )
            except Exception as exc:
                self.stats["rewriter_errors"] += 1
                if self.stats["rewriter_errors"] == 1:
                    log.warning(
                        "rewriter failed on a request (%s: %s); answering from the NLU",
                        type(exc).__name__,
                        exc,
                    )
                return self._fail_open(text, area, "error", f"error: {type(exc).__name__}: {exc}")
            if decision.failed_open is not None:
                return self._fail_open(text, area, decision.failed_open, *decision.reasons)
        trace = decision.trace() if decision is not None else None
        self._decided.answer = (
            Confirm(trace) if trace is not None and decision and decision.confirm else trace
        )
        exchange = self.conversations.hear(
            heard, conv, port, failed=True, unplaced=lambda: port.unplaced(text)
        )
        reasons = decision.reasons if decision is not None else ()
        return replace(
            self._carry(exchange, text, area, conv), reasons=reasons, version=self.rewriter_version
        )

    def _taught(self, text: str, user: str) -> bool:
        """Whether a concept the household taught applies to ``text``."""
        teaching = self.conversations.dialogue.teaching
        if teaching is None:
            return False
        return teaching.book.apply(text, self.household_id, user, self.home) is not None

    def _carry(self, exchange: Exchange, text: str, area: str | None, conv: str) -> Reply:
        """The reply that carries out the dialogue's step."""
        step = exchange.step
        if step.action in ("say", "ask"):
            if step.action == "ask":
                self.stats["questions"] += 1
            self._learn(exchange, None)
            return Reply(
                text=text,
                understood=text,
                recognized=True,
                response=step.speech,
                said=True,
                conversation_id=conv,
            )
        if step.action == "run" and step.sentences:
            if len(step.sentences) > 1:  # a taught routine: one Wyoming intent cannot carry it
                said = [self.understand(sentence, area) for sentence in step.sentences]
                ok = all(r.recognized for r in said)
                self._learn(exchange, ok)
                response = " ".join(r.response.rstrip(".") + "." for r in said)
                return Reply(
                    text=text,
                    understood=" then ".join(step.sentences),
                    recognized=True,
                    response=" ".join(p for p in (step.speech, response) if p),
                    said=True,
                    rewrite=step.rewrite,
                    conversation_id=conv,
                )
            second = self.understand(step.sentences[0], area)
            self._learn(exchange, second.recognized)
            self.stats["rewritten"] += 1
            self.stats["recognized"] += second.recognized
            response = " ".join(p for p in (step.speech, second.response) if p)
            return replace(second, text=text, rewrite=step.rewrite, response=response, conversation_id=conv)
        self._learn(exchange, None)
        return self.understand(text, area)  # the failure worded (the rest is in the NLU's cache)

    def _learn(self, exchange: Exchange, ran_ok: bool | None) -> None:
        """Let the rewriter's personal layer learn how the questions ended: the asking turns the
        dialogue logged (a no, silence), and the asking turn run on a yes."""
        if self.rewriter is None:
            return
        for record in exchange.records:
            if isinstance(record, Turn):
                self.rewriter.observe(record, self.home)
        asked = exchange.asked
        step = exchange.step
        if asked is not None and step.rewrite is not None and asked.result is not None:
            status: Literal["success", "error"] = "success" if ran_ok else "error"
            turn = asked.model_copy(
                update={
                    "text": " then ".join(step.sentences),
                    "rewrite": step.rewrite,
                    "dialogue": exchange.dialogue,
                    "result": asked.result.model_copy(update={"status": status, "error_code": None}),
                }
            )
            self.rewriter.observe(turn, self.home)

    def _fail_open(self, text: str, area: str | None, reason: str, *reasons: str) -> Reply:
        """The NLU's answer on the original text, saying why the rewriter was ignored."""
        self.stats[f"fail_open_{reason}"] += 1
        return replace(
            self.understand(text, area), fail_open=reason, reasons=reasons, version=self.rewriter_version
        )

    def warm_up(self) -> None:
        """Load what the first requests would otherwise wait for (Home Assistant's intents, the
        gazetteer, the rewriter's parts) by answering a working and a failing request."""
        for text in ("turn off the lights", "selflearn warm up request"):
            self.understand(text)
        if self.rewriter is not None:
            self.rewriter.warm_up(self.home)  # never raises: the decision fails open, and logs why

    def info(self) -> Info:
        """The ``info`` answer to ``describe``: the intent and the handle program."""
        intents = _version("home-assistant-intents")
        rewriter = self.rewriter_version
        description = f"Home Assistant's English NLU ({self.config.nlu})" + (
            f" with selflearn's rewriter {rewriter} behind it" if rewriter else ""
        )
        model_attribution = Attribution(name="Home Assistant intents + selflearn", url=_INTENTS_URL)
        program_attribution = Attribution(name="selflearn, on Home Assistant intents", url=_INTENTS_URL)
        model_version = f"{intents}+{rewriter}" if rewriter else intents
        languages = [self.config.language]
        return Info(
            intent=[
                IntentProgram(
                    name=INTENT_PROGRAM,
                    attribution=program_attribution,
                    installed=True,
                    description="selflearn: intent recognition that learns from failed requests",
                    version=_version("selflearn"),
                    models=[
                        IntentModel(
                            name=f"selflearn-{self.config.nlu}",
                            attribution=model_attribution,
                            installed=True,
                            description=description,
                            version=model_version,
                            languages=languages,
                        )
                    ],
                )
            ],
            handle=[
                HandleProgram(
                    name=HANDLE_PROGRAM,
                    attribution=program_attribution,
                    installed=True,
                    description="selflearn: the reference assistant's response text (no device control)",
                    version=_version("selflearn"),
                    models=[
                        HandleModel(
                            name=f"selflearn-{self.config.nlu}",
                            attribution=model_attribution,
                            installed=True,
                            description=description,
                            version=model_version,
                            languages=languages,
                        )
                    ],
                )
            ],
        )

    def close(self) -> None:
        """Stop the rewriter's worker thread (a decision in progress is abandoned)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


class WyomingHandler(AsyncEventHandler):
    """One client connection: answers ``describe``, ``recognize``, ``transcript`` and
    ``select-program``; ignores every other event. An error while answering is logged and answered
    with ``not-recognized``/``not-handled``: it never closes the server. An event that cannot be
    read (:class:`Malformed`) is logged in one line and answered the same way when it was a
    ``recognize`` or ``transcript``, else ignored: the connection stays up."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        service: ConversationService,
        info: Event,
    ) -> None:
        super().__init__(reader, writer)
        self.service = service
        self.info_event = info
        self.transcript_answer: Answer = service.config.transcript_answer

    async def run(self) -> None:
        """Read and answer events until the client leaves (the base class's loop, reading with
        :func:`read_event`)."""
        self._is_running = True
        try:
            while self._is_running:
                event = await read_event(self.reader)
                if event is None:
                    break
                if isinstance(event, Malformed):
                    if not await self.malformed(event):
                        break
                elif not await self.handle_event(event):
                    break
        finally:
            await self.disconnect()
            self.writer.close()

    async def malformed(self, event: Malformed, incoming: dict[str, Any] | None = None) -> bool:
        """One log line; a ``recognize`` or ``transcript`` is answered (not understood, with the
        conversation id of ``incoming``, its context), anything else ignored."""
        self.service.stats["malformed_events"] += 1
        log.warning("a malformed %s event: %s", event.kind or "Wyoming", event.problem)
        if event.kind not in ("recognize", "transcript"):
            return True
        message = "Sorry, I could not read that request"
        context: dict[str, Any] = {"selflearn": {"error": f"malformed {event.kind} event: {event.problem}"}}
        if incoming and "conversation_id" in incoming:
            context["conversation_id"] = incoming["conversation_id"]
        if event.kind == "recognize" or self.transcript_answer == "intent":
            out = NotRecognized(text=message, context=context).event()
        else:
            out = NotHandled(text=message, context=context).event()
        try:
            await self.write_event(out)
        except (ConnectionError, OSError):
            return False
        return True

    async def handle_event(self, event: Event) -> bool:
        kind = event.type
        if not isinstance(event.data, dict | None):  # built by hand: read_event never gives one
            what = f"its data is a {type(event.data).__name__}, not an object"
            return await self.malformed(Malformed(kind, what))
        if kind == "describe":
            await self.write_event(self.info_event)
            return True
        if kind == "select-program":  # recent wyoming clients; Home Assistant does not send it
            name = (event.data or {}).get("name")
            if name == HANDLE_PROGRAM:
                self.transcript_answer = "handle"
            elif name == INTENT_PROGRAM:
                self.transcript_answer = "intent"
            return True
        if kind not in ("recognize", "transcript"):
            log.debug("ignoring a %s event", kind)
            return True
        answer: Answer = "intent" if kind == "recognize" else self.transcript_answer
        data = event.data or {}
        context = data.get("context") if isinstance(data.get("context"), dict) else None
        text = data.get("text")
        if not isinstance(text, str):
            what = f"it needs a text, got {'none' if text is None else type(text).__name__}"
            return await self.malformed(Malformed(kind, what), context)
        try:
            language = data.get("language")
            if isinstance(language, str) and language.split("-")[0].lower() != "en":
                reply = Reply(text=text, understood=text, recognized=False, response=_ENGLISH_ONLY)
            else:
                reply = await self.service.reply(text, context)
            out = reply.intent_event(context) if answer == "intent" else reply.handle_event(context)
        except Exception as exc:  # answer it, keep serving
            self.service.stats["handler_errors"] += 1
            log.exception("failed to answer a %s event; answering not understood", kind)
            message = f"Sorry, something went wrong ({type(exc).__name__})"
            failed_context: dict[str, Any] = {"selflearn": {"error": f"{type(exc).__name__}: {exc}"}}
            if context and "conversation_id" in context:
                failed_context["conversation_id"] = context["conversation_id"]
            if answer == "intent":
                out = NotRecognized(text=message, context=failed_context).event()
            else:
                out = NotHandled(text=message, context=failed_context).event()
        try:
            await self.write_event(out)
        except (ConnectionError, OSError):  # the client left: nothing to answer
            return False
        return True


def handler_factory(
    service: ConversationService,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], AsyncEventHandler]:
    """What :class:`wyoming.server.AsyncServer` calls for each connection."""
    info = service.info().event()

    def make(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> AsyncEventHandler:
        return WyomingHandler(reader, writer, service, info)

    return make


def server_for(uri: str) -> AsyncServer:
    """The Wyoming server for ``uri`` (``tcp://HOST:PORT``, ``unix://PATH`` or ``stdio://``)."""
    try:
        return AsyncServer.from_uri(uri)
    except ValueError as exc:
        raise ConfigError(f"unusable --uri {uri!r}: {exc} (e.g. tcp://127.0.0.1:10700)") from exc


async def start(service: ConversationService, uri: str) -> AsyncServer:
    """Start listening on ``uri`` without blocking; stop with ``await server.stop()``."""
    server = server_for(uri)
    try:
        await server.start(handler_factory(service))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {uri}: {exc.strerror or exc}") from exc
    return server


async def serve(service: ConversationService, uri: str) -> None:
    """Listen on ``uri`` until cancelled or sent SIGTERM."""
    server = server_for(uri)
    try:
        await server.run(handler_factory(service))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {uri}: {exc.strerror or exc}") from exc


def load_rewriter(folder: Path | None) -> Rewriter | None:
    """The rewriter in ``folder``, or ``None`` (no folder, or it cannot be loaded: the service then
    answers from the NLU alone, as ``selflearn serve`` passes requests through)."""
    if folder is None:
        return None
    try:
        return Rewriter.load(folder)
    except Exception as exc:  # fail open, as the HTTP service does
        log.warning("rewriter failed to load: %s -- answering from the NLU alone", exc)
        return None
