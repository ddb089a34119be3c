"""``POST /v1/dialogue``: the service asks, is answered and is taught, for clients that only
carry out what it says (Home Assistant's integration; docs/dialogue.md#the-exchange).

The service keeps one :class:`~selflearn.dialogue.Conversations` (the question waiting per
household and conversation, what households taught) around one
:class:`~selflearn.dialogue.Dialogue` whose rewriter is the one serving. It knows a client's
assistant through a copy of Home Assistant's own matcher (hassil and the intents Home Assistant
ships, strict templates) over the household's registered home: does a request work as said, does
a taught sentence parse, which words of a failed request name nothing in the home.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import FastAPI, HTTPException, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from selflearn.assistant.devices import HomeState
from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.assistant.port import AssistantPort
from selflearn.core.errors import SelflearnError
from selflearn.core.home import Home
from selflearn.core.hooks import Confirm, RewriteContext
from selflearn.core.schema import RewriteTrace, Turn
from selflearn.core.store import error_field
from selflearn.dialogue import (
    ConceptBook,
    Conversations,
    Dialogue,
    DialogueConfig,
    Exchange,
    Heard,
    Learned,
    Step,
    TeachBudget,
    Teaching,
    gap_words,
    read_command,
)
from selflearn.dialogue.concepts import plausible_name
from selflearn.service.access import CurrentStore, on_store
from selflearn.service.models import DialogueRequest, DialogueResponse, HouseholdQuery, SentencesResponse

if TYPE_CHECKING:
    from selflearn.core.store import Store
    from selflearn.service.state import Service

log = logging.getLogger("selflearn.service")

SWEEP_S = 2.0
"""How often questions whose answer window closed are ended (unanswered) and logged."""

GRACE_S = 2.0
"""Wall-clock seconds past a question's window before the sweep ends it (its client's clock may
run a little behind the service's)."""


class _Serving:
    """The rewrite hook of the dialogue: whatever rewriter the service serves now (the caller
    holds the service's lock)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def __call__(self, text: str, context: RewriteContext) -> RewriteTrace | Confirm | None:
        art = self.service.artifact
        if not art.ok and not art.rewriter.personal.memories:
            return None
        return art.rewriter(text, context)

    def learned(self, household_id: str) -> list[Learned]:
        """What the serving rewriter's personal layer learned for the household and acts on."""
        return self.service.artifact.rewriter.learned(household_id)

    def forget_words(self, household_id: str, words: str) -> list[Learned]:
        """Forget ``words`` in the serving rewriter's personal layer."""
        return self.service.artifact.rewriter.forget_words(household_id, words)


class ServiceDialogue:
    """The service's dialogue: its conversations, its copy of the matcher, its sweep."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.dialogue = Dialogue(
            _Serving(service),
            DialogueConfig(),
            ask=True,
            teaching=Teaching(
                ConceptBook(), TeachBudget(typed_min_repeats=1), moments=service.config.teach_moments
            ),
            rewrite_when="on_failure",
        )
        self.conversations = Conversations(self.dialogue)
        self.nlu_lock = threading.Lock()
        """Guards the matcher (its caches are not thread-safe)."""
        self.ready = threading.Event()
        """Set once the matcher is loaded (until then the dialogue fails open)."""
        self.load_error: str | None = None
        self._assistant: Assistant | None = None
        self._states: dict[int, HomeState] = {}
        self._opened: dict[str, float] = {}
        self._loading: threading.Thread | None = None
        self._loading_lock = threading.Lock()

    # --- the matcher -------------------------------------------------------------------------

    def load(self) -> None:
        """Load Home Assistant's matcher and warm it (a few seconds); errors are kept for
        ``/healthz`` and the dialogue keeps failing open."""
        try:
            started = time.perf_counter()
            assistant = Assistant(AssistantConfig(asr="exact", nlu="strict"))
            home = Home.from_dict({"home_id": "selflearn.warmup"})
            assistant.understand("turn on the lights", HomeState.initial(home), None)
            self._assistant = assistant
            self.ready.set()
            log.info("dialogue: Home Assistant's matcher loaded in %.1f s", time.perf_counter() - started)
        except Exception as exc:  # the rewrite path must not depend on it
            self.load_error = f"the dialogue's matcher failed to load: {type(exc).__name__}: {exc}"
            log.error("%s -- POST /v1/dialogue passes requests through", self.load_error)

    def load_in_background(self) -> None:
        """Start loading the matcher in a thread (once)."""
        with self._loading_lock:
            if self._loading is None:
                self._loading = threading.Thread(
                    target=self.load, name="selflearn-dialogue-load", daemon=True
                )
                self._loading.start()

    def wait_ready(self, timeout_s: float = 60.0) -> bool:
        """Load the matcher (if nothing started it) and wait for it; whether it is ready."""
        self.load_in_background()
        return self.ready.wait(timeout_s)

    def port(self, home: Home, area: str | None) -> AssistantPort:
        """The dialogue's port onto ``home``, for a request heard in the area named ``area``."""
        if self._assistant is None:
            raise RuntimeError(self.load_error or "the dialogue's matcher is not loaded")
        state = self._states.get(id(home))
        if state is None or state.home is not home:
            if len(self._states) > 1024:
                self._states.clear()
            state = self._states[id(home)] = HomeState.initial(home)
        return AssistantPort(self._assistant, state, home.area_id_of(area))

    def home_of(self, household_id: str, inline: Home | None) -> Home:
        """The home a request is in: given inline, registered, or an empty one."""
        if inline is not None:
            return inline
        home = self.service.artifact.rewriter.homes.get(household_id)
        return home if home is not None else Home.from_dict({"home_id": household_id})

    # --- deciding ----------------------------------------------------------------------------

    def decide(
        self, body: DialogueRequest, home: Home, turn: Turn | None, deadline: float
    ) -> Exchange | None:
        """The exchange for one utterance, or ``None`` when the deadline passed first."""
        service = self.service
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not service.lock.acquire(timeout=remaining):
            return None
        try:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.nlu_lock.acquire(timeout=remaining):
                return None
            try:
                return self._decide(body, home, turn)
            finally:
                self.nlu_lock.release()
        finally:
            service.lock.release()

    def _decide(self, body: DialogueRequest, home: Home, turn: Turn | None) -> Exchange:
        if body.commands_only and read_command(body.text) is None:
            return Exchange(Step("pass"), log_turn_id=body.turn_id)  # not heard here at all
        if turn is not None and turn.er is None:  # what the personal layer learns names from
            rows = [turn.model_dump(mode="json")]
            if self._enrich(rows, {body.household_id: home}):
                turn = Turn.model_validate(rows[0])
        when = body.timestamp or datetime.now(UTC)
        area = body.area if body.area is not None else (body.device.area if body.device else None)
        heard = Heard(
            body.text,
            body.household_id,
            body.user_id,
            when,
            body.turn_id,
            area=area,
            device=body.device,
            nbest=tuple(body.nbest),
            typed=body.typed,
        )
        port = self.port(home, area)
        exchange = self.conversations.hear(
            heard,
            body.conversation_id,
            port,
            # a command is heard before the assistant runs it; anything else it says is left to
            # the assistant, as for a request it understood: no rewrite, no question
            failed=False if body.commands_only else body.failed,
            turn=turn,
            unplaced=lambda: port.unplaced(body.text),
        )
        if exchange.question is not None:
            self._opened[exchange.question.act_id] = time.monotonic()
        return exchange

    def withdraw(self, exchange: Exchange, household_id: str, conversation: str) -> None:
        """Take back the question of an exchange the client never heard (it came too late)."""
        question = exchange.question
        if question is None:
            return
        with self.conversations.lock:
            key = (household_id, conversation)
            if self.conversations.questions.get(key) is question:
                del self.conversations.questions[key]

    # --- what the dialogue leaves ----------------------------------------------------------

    def sweep(self) -> int:
        """End the questions whose answer window closed (unanswered), and log them."""
        now = time.monotonic()
        with self.conversations.lock:
            due = []
            for key, question in self.conversations.questions.items():
                opened = self._opened.get(question.act_id, now)
                window = (question.expires_at - question.asked_at).total_seconds()
                if now - opened > window + GRACE_S:
                    due.append(key)
            records: list[Any] = []
            for key in due:
                question = self.conversations.questions.pop(key)
                self._opened.pop(question.act_id, None)
                records.extend(self.conversations._ended(question))
        if records:
            self.service.log_records(records)
        return len(due)

    def close(self) -> None:
        """End every waiting question (unanswered) and log it: the service is stopping."""
        records = self.conversations.close()
        if records:
            self.service.log_records(records)

    def restore(self, store: Store) -> dict[str, int]:
        """What households taught and declined, from the store (what they teach from now on is
        written to the store open at the time: a reopen replaces it)."""
        return self.conversations.restore(store, CurrentStore(self.service))

    def forget(self, household_id: str) -> int:
        return self.conversations.forget(household_id)

    # --- enriching what Home Assistant logs ---------------------------------------------------

    def enrich(self, rows: list[Any]) -> int:
        """Give turns Home Assistant matched but could not resolve (``no_valid_targets``: "not
        aware of any device called mothership"), which carry no entity-resolution trace (the
        integration cannot see one), the name the matcher could not place in the household's home
        as ``er.unresolved``: what the personal layer learns a household's names from. Only words
        that look like a name (:func:`~selflearn.dialogue.concepts.plausible_name`). Returns how
        many were enriched; rows it cannot read are left as they are (ingest judges them)."""
        if not self.ready.is_set():
            return 0
        with self.nlu_lock:
            return self._enrich(rows, self.service.artifact.rewriter.homes)

    def _enrich(self, rows: list[Any], homes: dict[str, Home]) -> int:
        """:meth:`enrich` with the matcher's lock held."""
        done = 0
        for row in rows:
            try:
                if not isinstance(row, dict) or row.get("record_type", "turn") != "turn" or row.get("er"):
                    continue
                result = row.get("result") or {}
                home = homes.get(str(row.get("household_id")))
                text = row.get("text")
                if (
                    home is None
                    or not isinstance(text, str)
                    or result.get("error_code") != "no_valid_targets"
                ):
                    continue
                area = (row.get("device") or {}).get("area")
                rewrite = row.get("rewrite") or {}
                said = rewrite.get("original_text") if isinstance(rewrite, dict) else None
                words = self.port(home, area).unplaced(said if isinstance(said, str) else text)
                words = gap_words(words)
                if words and plausible_name(words):
                    row["er"] = {"ok": False, "unresolved": [words]}
                    done += 1
            except Exception:  # a malformed row: ingest quarantines it with the reason
                continue
        return done


# --- what was taught, as Home Assistant sentences ---------------------------------------------------


def household_sentences(store: Store, household_id: str, home: Home) -> tuple[str, int]:
    """The household's taught phrasings and the rules people approved or edited, as one Home
    Assistant custom sentences file (``custom_sentences/en/``), and how many sentences it holds.

    Only what maps to Home Assistant's own intents: a routine (or a phrasing that needs a custom
    intent) needs ``intent_script`` entries, which only a person can add to configuration.yaml
    (``selflearn concepts export`` writes them to review)."""
    from selflearn.assistant.concept_export import export_concepts
    from selflearn.rewrite.review import reviewed_concepts

    candidates = [c for c in store.concepts(household_id) if c.kind == "phrasing"]
    candidates += reviewed_concepts(store.reviews(), household_id)[0]
    keep = []
    with tempfile.TemporaryDirectory(prefix="selflearn-sentences-") as tmp:
        for concept in candidates:
            one = export_concepts([concept], household_id, home, Path(tmp) / concept.concept_id)
            text = one.files["sentences"].read_text(encoding="utf-8")
            if one.phrasings and "  Selflearn" not in text:
                keep.append(concept)
        if not keep:
            return "", 0
        done = export_concepts(keep, household_id, home, Path(tmp) / "all")
        return done.files["sentences"].read_text(encoding="utf-8"), done.phrasings


def sentences_routes(app: FastAPI, service: Service) -> None:
    """``GET /v1/sentences``."""

    @app.get(
        "/v1/sentences",
        response_model=SentencesResponse,
        tags=["concepts"],
        summary="What a household taught, as Home Assistant custom sentences",
        responses={
            404: {"description": "No home registered for the household"},
            409: {"description": "No store"},
        },
    )
    async def sentences(household_id: HouseholdQuery) -> SentencesResponse:
        """The household's taught phrasings and the approved or edited rules, as a Home Assistant
        custom sentences file to install in ``custom_sentences/en/`` (empty when there is nothing
        that maps to Home Assistant's own intents). The integration offers to write it, and writes
        it only when the user says so."""
        home = service.artifact.rewriter.homes.get(household_id)
        if home is None:
            raise HTTPException(404, f"no home registered for household {household_id!r}")
        text, count = await run_in_threadpool(
            on_store, service, lambda store: household_sentences(store, household_id, home), "sentences"
        )
        return SentencesResponse(household_id=household_id, sentences=count, yaml=text)


# --- the route ---------------------------------------------------------------------------------


def dialogue_routes(app: FastAPI, service: Service) -> None:
    """``POST /v1/dialogue``."""
    timeout_s = service.config.dialogue_timeout_ms / 1000

    @app.post(
        "/v1/dialogue",
        response_model=DialogueResponse,
        tags=["dialogue"],
        summary="Hear one utterance: a request, or the answer to the question waiting",
        responses={422: {"description": "Invalid request (the message names the field)"}},
    )
    async def dialogue(body: DialogueRequest) -> Response:
        """What the assistant should do with one utterance of a conversation: ``pass``, ``run``
        sentences, ``say`` something, or ``ask`` and listen. Always 200 for a valid request: on
        any problem the answer is ``pass`` with ``fail_open: true`` and the reason."""
        started = time.perf_counter()
        talk = service.talk
        home = _inline_home(service, body)
        turn = _client_turn(body)
        try:
            if not talk.ready.is_set():
                talk.load_in_background()
                reason = talk.load_error or "the dialogue's matcher is still loading"
                return _passthrough(service, body, reason, started)
            deadline = time.monotonic() + timeout_s
            loop = asyncio.get_running_loop()
            home = talk.home_of(body.household_id, home)
            future = loop.run_in_executor(service.executor, talk.decide, body, home, turn, deadline)
            try:
                exchange = await asyncio.wait_for(asyncio.shield(future), timeout_s)
            except TimeoutError:
                exchange = None

                def late(done: asyncio.Future[Exchange | None]) -> None:
                    if not done.cancelled() and done.exception() is None and done.result() is not None:
                        talk.withdraw(done.result(), body.household_id, body.conversation_id)  # type: ignore[arg-type]

                future.add_done_callback(late)
            if exchange is None:
                reason = f"timeout: no decision within {service.config.dialogue_timeout_ms:g} ms"
                return _passthrough(service, body, reason, started)
            if exchange.records:
                await asyncio.get_running_loop().run_in_executor(
                    None, service.log_records, list(exchange.records)
                )
            return _answer(service, body, exchange, started)
        except Exception as exc:  # fail open, by design
            log.exception("dialogue failed; passing the request through")
            return _passthrough(service, body, f"error: {type(exc).__name__}: {exc}", started)


def _inline_home(service: Service, body: DialogueRequest) -> Home | None:
    try:
        return service.parse_home(body.home) if body.home is not None else None
    except (SelflearnError, ValueError, TypeError, KeyError, AttributeError) as exc:
        message = str(exc) if isinstance(exc, SelflearnError) else f"{type(exc).__name__}: {exc}"
        raise RequestValidationError(
            [{"loc": ("body", "home"), "msg": f"not a usable home configuration: {message}", "type": "home"}]
        ) from exc


def _client_turn(body: DialogueRequest) -> Turn | None:
    if body.turn is None:
        return None
    try:
        turn = Turn.model_validate(body.turn)
    except ValidationError as exc:
        name, reason = error_field(exc)
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "turn", *name.split(".")),
                    "msg": f"not a turn record: {reason}",
                    "type": "turn",
                }
            ]
        ) from exc
    if turn.turn_id != body.turn_id or turn.household_id != body.household_id:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "turn"),
                    "msg": "the turn record must carry the request's turn_id and household_id",
                    "type": "turn",
                }
            ]
        )
    return turn


def _answer(service: Service, body: DialogueRequest, exchange: Exchange, started: float) -> Response:
    step = exchange.step
    question = exchange.question
    log_fields: dict[str, Any] | None = None
    if exchange.log_turn_id is not None:
        log_fields = {"turn_id": exchange.log_turn_id}
        if exchange.asked is not None:  # the asking turn, run now: it keeps its time
            log_fields["timestamp"] = exchange.asked.timestamp.isoformat()
        if step.action == "run" and step.rewrite is not None:
            log_fields["text"] = " then ".join(step.sentences)
            log_fields["rewrite"] = step.rewrite.model_dump(mode="json")
        if exchange.dialogue is not None:
            log_fields["dialogue"] = exchange.dialogue.model_dump(mode="json", exclude_none=True)
        if step.said is not None:
            said = step.said
            log_fields["nlu"] = {
                "matched": True,
                "intent": said.intent,
                "slots": dict(said.slots),
                "confidence": 1.0,
                "matcher": "teach",
            }
            log_fields["result"] = {
                "status": "success" if said.ok else "error",
                "response_text": said.text,
                "error_code": None if said.ok else "not_learned",
            }
    taught = step.taught or (step.said.concept if step.said is not None else None)
    reasons: list[str] = []
    if step.rewrite is not None and step.rewrite.rule_id:
        reasons.append(f"{step.rewrite.layer}: {step.rewrite.rule_id}")
    m = service.metrics
    m.dialogue.labels(step.action).inc()
    data = {
        "action": step.action,
        "speech": step.speech,
        "sentences": list(step.sentences),
        "continue_conversation": step.action == "ask",
        "question": None
        if question is None
        else {
            "act_id": question.act_id,
            "kind": question.kind,
            "text": question.text,
            "proposal": question.proposal,
            "expires_at": question.expires_at.isoformat(),
        },
        "ended": None
        if exchange.ended is None
        else {"act_id": exchange.ended.act_id, "kind": exchange.ended.kind, "answer": exchange.ended.answer},
        "log": log_fields,
        "taught": taught.model_dump(mode="json") if taught is not None else None,
        "fail_open": False,
        "reasons": reasons,
        "version": service.artifact.version,
        "elapsed_us": int((time.perf_counter() - started) * 1e6),
    }
    return Response(orjson.dumps(data), media_type="application/json")


def _passthrough(service: Service, body: DialogueRequest, reason: str, started: float) -> Response:
    service.metrics.dialogue.labels("fail_open").inc()
    data = {
        "action": "pass",
        "speech": "",
        "sentences": [],
        "continue_conversation": False,
        "question": None,
        "ended": None,
        "log": {"turn_id": body.turn_id},
        "taught": None,
        "fail_open": True,
        "reasons": [reason],
        "version": service.artifact.version if service.artifact.ok else None,
        "elapsed_us": int((time.perf_counter() - started) * 1e6),
    }
    return Response(orjson.dumps(data), media_type="application/json")


def new_turn_id() -> str:
    """A fresh turn id (for clients that have none)."""
    return uuid.uuid4().hex


__all__ = ["ServiceDialogue", "dialogue_routes", "new_turn_id"]
