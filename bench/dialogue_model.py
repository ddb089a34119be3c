"""A stateful model of conversations (issue 53, what to build 3): random sequences of requests
(that work, fail, name unknown things), yes/no/other answers, teaching, forgetting, approvals,
restarts (reload from the store) and outages, over three surfaces:

* ``reference``: the reference assistant's dialogue as a speaker uses it (:class:`Conversation`,
  spoken, exact recognition, teaching on), logging to a DuckDB store, restarted from it;
* ``service``: ``POST /v1/dialogue`` as Home Assistant's integration and Wyoming's clients use it
  (the FastAPI app in-process, a real DuckDB store, a client that runs Home Assistant's matcher
  locally, carries out what the service says, logs its turns, answers alone and buffers its turns
  while the service is away);
* ``chat``: ``selflearn chat`` (:class:`ChatSession`), typed, on a store.

After every step the rules of docs/dialogue.md are checked as invariants, computed from what the
user did in the sequence (the model's own record), never from the code's state:

* ``justified``: every action is what the user said (the plain assistant, nothing learned, does
  it), or what something the user did and has not forgotten says it means -- a yes to the pending
  proposal, a name or phrasing they taught, a yes earlier, a retry (a request that failed and
  asked nothing, then the next request soon after), a rule a person approved (service) -- so
  nothing acts that the user never confirmed; an action it does not allow is named after its
  cause when the model can tell it:
* ``pending_without_yes``: the pending question's proposal (or the request of a pending "Can you
  teach me?" with the name read as any device) acted without a yes or a definition;
* ``forgotten``: the action is what something the user taught, confirmed or retried *before
  forgetting it* says the words mean;
* ``listed``: a rewrite learned for the household that acts names words the household's list of
  what it learned ("what have you learned", ``:learned``, ``GET /v1/concepts``) shows;
* ``polarity``: no action opposite to what was said (on/off, open/close, lock/unlock,
  pause/unpause);
* ``no_after_no``: a proposal the user said no to never acts for that request;
* ``no_traceback``: no exception, no error logged with a traceback.

``python bench/dialogue_model.py --sequences 200`` writes docs/results/dialogue_model.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import random
import re
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from selflearn.assistant.conversation import Conversation
from selflearn.assistant.devices import HomeState
from selflearn.assistant.nlu import HomeAssistantNlu
from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.cli.chat import ChatSession, load_home, remember
from selflearn.core.store import Store
from selflearn.dialogue import ConceptBook, DialogueConfig, TeachBudget, Teaching
from selflearn.dialogue.concepts import shaped
from selflearn.evaluate import write_results
from selflearn.rewrite.rewriter import Rewriter, RewriterConfig
from selflearn.rewrite.table import RewriteTable

SURFACES = ("reference", "service", "chat")
INVARIANTS = (
    "justified",
    "pending_without_yes",
    "forgotten",
    "listed",
    "polarity",
    "no_after_no",
    "no_traceback",
)
AREA, AREA_ID = "Kitchen", "kitchen"
ANSWER_S = DialogueConfig().timeout_s
"""Seconds after a question within which a reply is its answer (the dialogue's own default; the
steps' gaps are either within it, 3-5 s, or well past it, 30 s and more)."""
RULES = [
    ("kill the lights in the {area}", "turn off the lights in the {area}"),
    ("lock up the {name}", "lock the {name}"),
]
DEVICES = ["kitchen light", "living room ceiling", "floor lamp", "bedside lamp"]
NAMES = ["mothership", "zapper", "gizmo"]
LIGHTS_OUT = ("lights out", "turn off the kitchen light")

# --- the steps --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One thing the user (or the world) does: ``kind`` and its words, after ``gap_s`` seconds."""

    kind: str
    """say (an utterance), restart, outage (the service or rewriter goes away), back, approve."""
    text: str = ""
    gap_s: float = 4.0


def utterances() -> list[str]:
    said = []
    for device in DEVICES:
        said += [f"turn on the {device}", f"turn off the {device}"]
    said += ["open the garage door", "close the garage door", "lock the front door", "unlock the front door"]
    said += ["pause the tv", "unpause the tv", "lock up the front door"]
    for name in NAMES:
        said += [f"turn on the {name}", f"turn off the {name}", f"forget the {name}"]
        said += [f"the {name} is the {device}" for device in DEVICES[:2]]
    said += [
        "kill the lights in the kitchen",
        "kill the lights in the hall",
        "forget kill the lights in the kitchen",
    ]
    said += [f"when I say {LIGHTS_OUT[0]} I mean {LIGHTS_OUT[1]}", LIGHTS_OUT[0], "forget lights out"]
    said += ["what have you learned"]
    return said


UTTERANCES = utterances()
ANSWERS = ["yes", "no", "never mind", *[f"it's the {d}" for d in DEVICES]]
GAPS = [3.0, 4.0, 5.0, 30.0, 70.0, 4000.0]
ASKING = ["kill the lights in the kitchen", "lock up the front door", *[f"turn on the {n}" for n in NAMES]]
"""Requests likely to be answered with a question (drawn twice as often; an answer often follows)."""


def random_steps(rng: random.Random, n: int, surface: str) -> list[Step]:
    """``n`` random steps: mostly utterances (an answer about a third of the time), now and then
    a restart, an outage and its end, an approval (the service)."""
    steps = []
    for _ in range(n):
        roll = rng.random()
        gap = rng.choice(GAPS)
        if roll < 0.04:
            steps.append(Step("restart", gap_s=gap))
        elif roll < 0.07:
            steps.append(Step("outage" if rng.random() < 0.5 else "back", gap_s=gap))
        elif roll < 0.09 and surface == "service":
            steps.append(Step("approve", rng.choice(RULES)[0], gap))
        elif roll < 0.40:
            steps.append(Step("say", rng.choice(ANSWERS), rng.choice([3.0, 4.0, 4.0, 30.0])))
        elif steps and steps[-1].text in ASKING and rng.random() < 0.6:  # answer what was likely asked
            steps.append(Step("say", rng.choice(ANSWERS), rng.choice([3.0, 4.0])))
        else:
            steps.append(Step("say", rng.choice(UTTERANCES + ASKING), gap))
    return steps


# --- what the user did: the model's record ---------------------------------------------------------


@dataclass
class Pending:
    kind: str  # confirm, teach, clarify
    request: str
    proposal: str | None = None
    name: str | None = None
    asked_at: float = 0.0


@dataclass
class Record:
    """What the user did in the sequence, and what they heard (the model's own state)."""

    names: dict[str, set[str]] = field(default_factory=dict)
    """Each name taught and what it was said to be (every meaning taught and not forgotten: a
    lesson the assistant did not hear -- Home Assistant's matcher answered it -- leaves the
    meaning before it acting, which is no rule broken; ``lessons unheard`` counts them)."""
    phrasings: dict[str, str] = field(default_factory=dict)
    yes: dict[str, str] = field(default_factory=dict)
    no: set[tuple[str, str]] = field(default_factory=set)
    retries: list[tuple[str, str]] = field(default_factory=list)
    approved: set[str] = field(default_factory=set)
    pending: Pending | None = None
    asked_at: datetime | None = None
    """When the pending question was asked: past the answer window (:data:`ANSWER_S`) a reply
    is no answer, whatever happened in between (an outage ending, an approval in ``/ui``)."""
    failures: list[tuple[str, float]] = field(default_factory=list)
    """Requests that failed and asked nothing, with when (a retry may follow them)."""
    lost: Record | None = None
    """What the user taught, confirmed or retried and then forgot (names the ``forgotten``
    invariant's violations; never allows anything)."""

    def forget(self, words: str) -> None:
        lost = self.lost = self.lost or Record()
        if words in self.names:
            lost.names.setdefault(words, set()).update(self.names.pop(words))
        if words in self.phrasings:
            lost.phrasings[words] = self.phrasings.pop(words)
        lost.yes.update({r: p for r, p in self.yes.items() if words in r})
        lost.retries += [(a, b) for a, b in self.retries if words in a]
        self.yes = {r: p for r, p in self.yes.items() if words not in r}
        self.retries = [(a, b) for a, b in self.retries if words not in a]

    def recalled(self) -> Record:
        """This record with everything forgotten remembered again."""
        whole = Record(
            names={k: set(v) for k, v in self.names.items()},
            phrasings=dict(self.phrasings),
            yes=dict(self.yes),
            no=self.no,
            retries=list(self.retries),
            approved=self.approved,
        )
        if self.lost is not None:
            for name, devices in self.lost.names.items():
                whole.names.setdefault(name, set()).update(devices)
            whole.phrasings = {**self.lost.phrasings, **whole.phrasings}
            whole.yes = {**self.lost.yes, **whole.yes}
            whole.retries += self.lost.retries
        return whole

    def meanings(self, said: str, answer_to: Pending | None, answer: str | None) -> set[str]:
        """Every sentence something the user did says ``said`` may run as."""
        out = {said}
        if answer_to is not None and answer == "yes" and answer_to.kind == "confirm" and answer_to.proposal:
            out.add(answer_to.proposal)
        if (
            answer_to is not None
            and answer_to.kind == "teach"
            and answer_to.name
            and (device := definition(said, answer_to.name)) is not None
        ):
            out.add(answer_to.request.replace(answer_to.name, device))
        for _round in range(2):  # a retry of a rewrite learns what the rewrite ran as
            for text in list(out):
                for name, devices in self.names.items():
                    if name in text:
                        out.update(text.replace(name, device) for device in devices)
                for phrase, meaning in self.phrasings.items():
                    if phrase in text:
                        out.add(meaning)
                if text in self.yes:
                    out.add(self.yes[text])
                for before, after in self.retries:
                    if text == before:
                        out.add(after)
                    old, new = span(before, after)
                    if old and old in text:
                        out.add(text.replace(old, new))
                if "kill the lights in the {area}" in self.approved and text.startswith(
                    "kill the lights in the "
                ):
                    target = "turn off the lights in the " + text.removeprefix("kill the lights in the ")
                    if (text, target) not in self.no:
                        out.add(target)
        return out


def definition(said: str, name: str) -> str | None:
    """The device ``said`` defines ``name`` as, when it answers "Can you teach me what <name>
    is?" ("it's the floor lamp", "the <name> is the floor lamp")."""
    if said.startswith("it's the "):
        return said.removeprefix("it's the ")
    if said.startswith(f"the {name} is the "):
        return said.removeprefix(f"the {name} is the ")
    return None


def span(before: str, after: str) -> tuple[str, str]:
    """The words of ``before`` that ``after`` replaced (common first and last words taken off)."""
    a, b = before.split(), after.split()
    while a and b and a[0] == b[0]:
        a, b = a[1:], b[1:]
    while a and b and a[-1] == b[-1]:
        a, b = a[:-1], b[:-1]
    return " ".join(a), " ".join(b)


RETRY_S = 40.0
"""A request this soon after a failure may be taken as its retry (a user's own failure followed by
another request, not a teaching command: ``selflearn.rewrite.personal.RETRY_S``, documented
there), even with other requests between them."""

POSITIVE = ("HassTurnOn", "HassMediaUnpause")
NEGATIVE = ("HassTurnOff", "HassMediaPause")


def polarity(text: str) -> int:
    """+1 for on/open/lock/unpause, -1 for off/close/unlock/pause/kill; 0 for neither or both."""
    words = text.split()
    pos = any(w in ("on", "open", "lock", "unpause", "resume") for w in words)
    neg = any(w in ("off", "close", "unlock", "pause", "kill") for w in words)
    return 0 if pos == neg else (1 if pos else -1)


# --- the surfaces ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one utterance did, as the user sees it."""

    effects: list[tuple[str, frozenset[str]]] = field(default_factory=list)
    response: str = ""
    question: Pending | None = None
    answered: str | None = None
    """How the pending question ended, as the assistant logged it (yes, no, barge_in, ...)."""
    rewrites: list[tuple[str, str, str]] = field(default_factory=list)
    """(original, rewritten, layer) of each rewrite that ran."""
    failed: bool = False
    """The request did nothing and asked nothing (a retry may follow)."""


class Shared:
    """What every sequence of a process shares, loaded once: the home, Home Assistant's matchers,
    the saved rewriter (a mined table with a guess and a sensitive rule)."""

    def __init__(self, folder: Path) -> None:
        self.home = load_home()
        self.nlu = HomeAssistantNlu(AssistantConfig().nlu)
        self.oracle = Assistant(AssistantConfig(asr="exact"), nlu=self.nlu)
        table = RewriteTable.from_rules(RULES)
        self.rewriter_dir = Rewriter.from_parts(table=table).save(folder / "rewriter")

    def effects(self, text: str, state: HomeState, now: datetime) -> set[tuple[str, frozenset[str]]]:
        *_, effect = self.oracle.run_text(text, state.copy(), now, AREA_ID, explain_failures=False)
        return {(effect.intent, effect.targets)} if effect is not None else set()

    def rewriter(self) -> Rewriter:
        return Rewriter.load(self.rewriter_dir, RewriterConfig(confirm="guesses"))


class Flaky:
    """The rewriter, which may be away (an outage: every call raises; the dialogue fails open)."""

    def __init__(self, inner: Rewriter) -> None:
        self.inner = inner
        self.down = False

    def __call__(self, text: str, context: Any) -> Any:
        if self.down:
            raise ConnectionError("the rewriter is away")
        return self.inner(text, context)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Local:
    """The reference assistant's dialogue (``spoken``) or ``selflearn chat`` (typed), on a store."""

    def __init__(self, shared: Shared, store: Store, typed: bool) -> None:
        self.shared, self.store, self.typed = shared, store, typed
        self.state = HomeState.initial(shared.home)
        self.down = False
        self._open()

    def _open(self) -> None:
        shared, store = self.shared, self.store
        rewriter = shared.rewriter()
        self.flaky = Flaky(rewriter)
        self.flaky.down = self.down
        config = AssistantConfig(
            asr="exact", ask=True, teach=True, rewrite_when="on_failure", dialogue=DialogueConfig(timeout_s=8)
        )
        budget = TeachBudget(min_repeats=1) if self.typed else TeachBudget()
        assistant = Assistant(
            config,
            nlu=shared.nlu,
            rewriter=self.flaky,
            teaching=Teaching(ConceptBook.from_store(store), budget),
        )
        remember(store, rewriter, budget, shared.home)
        self.conversation = Conversation(
            assistant, self.state, household_id=shared.home.home_id, area=AREA, typed=self.typed
        )
        self.out = io.StringIO()
        console = Console(file=self.out, color_system=None, width=300, soft_wrap=True)
        self.session = ChatSession(self.conversation, console, store=store)

    def restart(self, now: datetime) -> None:
        self.session.close()  # a question still waiting is logged unanswered
        self._open()

    def outage(self, down: bool) -> None:
        self.down = self.flaky.down = down

    def say(self, text: str, now: datetime) -> Outcome:
        exchange = self.conversation.say(text, now)
        self.session._records.extend(exchange.logged)
        self.session._flush()
        out = Outcome(response=exchange.response)
        out.effects = [(e.intent, e.targets) for e in exchange.effects]
        out.rewrites = [(r.original_text, r.rewritten_text, r.layer) for r in exchange.rewrites]
        ended = [a for a in exchange.acts if a.raised_by != "user" and a.answer is not None]
        out.answered = ended[0].answer if ended else None
        question = exchange.question
        if question is not None:
            out.question = _pending(question.kind, question.turn.text, exchange.response, question.proposal)
        out.failed = question is None and not exchange.effects and _request_failed(exchange.handled)
        return out

    def listing(self) -> str:
        if self.typed:
            self.out.seek(0)
            self.out.truncate()
            self.session.handle(":learned")
            return self.out.getvalue().lower()
        dialogue = self.conversation.assistant.dialogue
        items = dialogue.learned(self.conversation.household_id, self.conversation.user_id)
        return " ".join(f"{i.said} -> {'; '.join(i.means)}" for i in items).lower()

    def close(self) -> None:
        self.session.close()


def _request_failed(handled: Sequence[Any]) -> bool:
    for h in handled:
        result = h.turn.result
        if result is not None and result.status == "success":
            return False
        if h.turn.nlu is not None and h.turn.nlu.matcher == "teach":
            return False
    return True


def _pending(kind: str, request: str, speech: str, proposal: str | None) -> Pending:
    if kind == "teach":  # its proposal is the words it asks about
        return Pending(kind, request, None, proposal)
    return Pending(kind, request, proposal)


class Service:
    """``POST /v1/dialogue`` through the in-process app on a store, with a client that does what
    Home Assistant's integration does (agent.py): a question waiting goes to the service first,
    and so does a text shaped like a teaching command (``commands_only``); otherwise Home
    Assistant's matcher runs the text, and a failure goes to the service; ``run``
    runs the sentences locally; turns go to ``POST /v1/turns``, buffered while the service is away."""

    def __init__(self, shared: Shared, store_path: Path) -> None:
        self.shared, self.store_path = shared, store_path
        self.state = HomeState.initial(shared.home)
        self.household = "h1"
        self.down = False
        self.buffer: list[dict[str, Any]] = []
        self.open: set[str] = set()
        self.conversation = "c0"
        self.shape: re.Pattern[str] | None = None
        self.stack = contextlib.ExitStack()
        self._open()

    def _open(self) -> None:
        from fastapi.testclient import TestClient

        from selflearn.service import ServiceConfig, create_app

        config = ServiceConfig(
            rewriter=self.shared.rewriter_dir, store=self.store_path, dialogue_timeout_ms=30_000
        )
        self.client = self.stack.enter_context(TestClient(create_app(config)))
        self.client.put(f"/v1/homes/{self.household}", json=self.shared.home.to_dict())
        assert self.client.app.state.service.talk.wait_ready()  # type: ignore[attr-defined]

    def restart(self, now: datetime) -> None:
        self.stack.close()
        self.stack = contextlib.ExitStack()
        self.open.clear()
        self._open()

    def outage(self, down: bool) -> None:
        if self.down and not down and self.buffer:
            res = self.client.post("/v1/turns", json=self.buffer)
            assert res.status_code == 200, res.text
            self.buffer = []
        self.down = down

    def approve(self, pattern: str) -> None:
        target = dict(RULES)[pattern]
        verdict = {"pattern": pattern, "target": target, "decision": "approved"}
        assert self.client.post("/v1/reviews", json=verdict).status_code == 200

    def _local(self, text: str, now: datetime, out: Outcome) -> bool:
        *_, result, effect = self.shared.oracle.run_text(text, self.state, now, AREA_ID)
        if effect is not None:
            out.effects.append((effect.intent, effect.targets))
        return result.status == "success"

    def _turn(self, turn_id: str, text: str, now: datetime, worked: bool) -> dict[str, Any]:
        return {
            "record_type": "turn",
            "turn_id": turn_id,
            "session_id": self.conversation,
            "user_id": "u1",
            "household_id": self.household,
            "timestamp": now.isoformat(),
            "device": {"device_id": "d1", "area": AREA},
            "text": text,
            "nlu": {"matched": worked, "matcher": "home_assistant"},
            "result": {"status": "success" if worked else "no_match"},
        }

    def _log(self, record: dict[str, Any], answer: dict[str, Any] | None) -> None:
        if answer is not None:
            log = answer.get("log")
            if log is None:
                return
            for key in ("turn_id", "timestamp", "text", "rewrite", "dialogue", "nlu"):
                if log.get(key) is not None:
                    record[key] = log[key]
            record["result"].update(log.get("result") or {})
        if self.down:
            self.buffer.append(record)
            return
        res = self.client.post("/v1/turns", json=[record])
        assert res.status_code == 200, res.text

    def _dialogue(
        self,
        text: str,
        now: datetime,
        turn_id: str,
        failed: bool | None,
        turn: Any,
        commands_only: bool = False,
    ) -> Any:
        if self.down:
            return None
        body = {
            "text": text,
            "household_id": self.household,
            "user_id": "u1",
            "conversation_id": self.conversation,
            "turn_id": turn_id,
            "area": AREA,
            "timestamp": now.isoformat(),
            "failed": failed,
            "typed": True,
        }
        if turn is not None:
            body["turn"] = turn
        if commands_only:
            body["commands_only"] = True
        self.open.discard(self.conversation)
        res = self.client.post("/v1/dialogue", json=body)
        assert res.status_code == 200, res.text
        answer = res.json()
        return None if answer.get("fail_open") else answer

    def _is_command(self, text: str) -> bool:
        """As the integration reads ``GET /healthz``'s command shape (its ``client.is_command``:
        the same reading of the text as ``shaped``)."""
        if self.down:
            return False
        if self.shape is None:
            self.shape = re.compile(self.client.get("/healthz").json()["dialogue"]["commands"])
        return self.shape.match(shaped(text)) is not None

    def say(self, text: str, now: datetime) -> Outcome:
        out = Outcome()
        turn_id = uuid.uuid4().hex[:16]
        if self.conversation in self.open:
            first = self._dialogue(text, now, turn_id, None, None)
            if first is not None:
                out.answered = (first.get("ended") or {}).get("answer")
                if first["action"] != "pass":
                    return self._carry(first, text, now, turn_id, out, None)
        elif self._is_command(text):  # a lesson, heard before Home Assistant's matcher (2026.11 answers some)
            first = self._dialogue(text, now, turn_id, None, None, commands_only=True)
            if first is not None and first["action"] == "say":
                return self._carry(first, text, now, turn_id, out, None)
        worked = self._local(text, now, out)
        record = self._turn(turn_id, text, now, worked)
        if not worked:
            answer = self._dialogue(text, now, turn_id, True, dict(record))
            if answer is not None:
                out.answered = out.answered or (answer.get("ended") or {}).get("answer")
                return self._carry(answer, text, now, turn_id, out, worked)
            out.failed = True
        self._log(record, None)
        return out

    def _carry(
        self, answer: dict[str, Any], text: str, now: datetime, turn_id: str, out: Outcome, own: bool | None
    ) -> Outcome:
        action = answer["action"]
        out.response = answer.get("speech") or ""
        if action == "ask":
            self.open.add(self.conversation)
            q = answer["question"]
            out.question = _pending(q["kind"], text, q["text"], q.get("proposal"))
            return out
        if action == "say":
            if answer.get("log"):
                self._log(self._turn(turn_id, text, now, True), answer)
            return out
        if action == "run":
            ran = [self._local(s, now, out) for s in answer["sentences"]]
            rewrite = (answer.get("log") or {}).get("rewrite") or {}
            if rewrite:
                out.rewrites.append(
                    (rewrite["original_text"], rewrite["rewritten_text"], rewrite.get("layer", ""))
                )
            if ran and (answer.get("ended") is not None or all(ran)):
                self._log(self._turn(turn_id, text, now, all(ran)), answer)
                return out
            answer = {**answer, "log": {"turn_id": turn_id}}
        if own is None:
            own = self._local(text, now, out)
        out.failed = not own and not out.effects
        self._log(self._turn(turn_id, text, now, own), answer)
        return out

    def listing(self) -> str:
        res = self.client.get("/v1/concepts", params={"household_id": self.household})
        if res.status_code != 200:
            return ""
        data = res.json()
        parts = [str(c) for c in data.get("concepts", [])] + [str(i) for i in data.get("learned", [])]
        return " ".join(parts).lower()

    def close(self) -> None:
        self.stack.close()


# --- one sequence ------------------------------------------------------------------------------------


@dataclass
class Verdict:
    steps: int = 0
    seen: dict[str, int] = field(default_factory=dict)
    """How often each kind of thing happened (questions, answers, rewrites, actions, ...)."""
    violations: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.seen.append(f"{record.name}: {record.getMessage()}")


@contextlib.contextmanager
def errors_logged() -> Iterator[_Errors]:
    handler = _Errors()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def run_sequence(shared: Shared, surface: str, steps: Sequence[Step], folder: Path) -> Verdict:
    """Drive ``surface`` through ``steps``; check the invariants after every step."""
    verdict = Verdict()
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    record = Record()
    store_path = folder / f"{surface}-{uuid.uuid4().hex[:8]}.duckdb"
    with errors_logged() as logged, contextlib.ExitStack() as stack:
        sut: Local | Service
        if surface == "service":
            sut = Service(shared, store_path)
        else:
            store = stack.enter_context(Store(store_path))
            store.put_home(shared.home.home_id, shared.home.to_dict(), source="chat")
            sut = Local(shared, store, typed=surface == "chat")
        stack.callback(sut.close)
        for i, step in enumerate(steps):
            now += timedelta(seconds=step.gap_s)
            verdict.steps += 1
            where = f"{surface} step {i} {step.kind} {step.text!r}"
            try:
                if step.kind == "restart":
                    sut.restart(now)
                    record.pending = None
                elif step.kind in ("outage", "back"):
                    sut.outage(step.kind == "outage")
                elif step.kind == "approve":
                    if isinstance(sut, Service):
                        sut.approve(step.text)
                        record.approved.add(step.text)
                else:
                    _say(shared, sut, record, step, now, verdict, where)
            except Exception:
                verdict.tracebacks.append(f"{where}: {traceback.format_exc()}")
                break
            if logged.seen:
                verdict.tracebacks += [f"{where}: {seen}" for seen in logged.seen]
                logged.seen.clear()
    return verdict


def _cause(
    shared: Shared,
    record: Record,
    effect: tuple[str, frozenset[str]],
    text: str,
    pending: Pending | None,
    reply: str | None,
    before: HomeState,
    now: datetime,
) -> str:
    """The invariant an action the record does not allow breaks: the pending proposal acting
    without a yes, something forgotten acting, or (neither) an action nobody confirmed."""
    if pending is not None and reply != "yes":
        unanswered = set()
        if pending.kind == "confirm" and pending.proposal:
            unanswered.add(pending.proposal)
        if pending.kind == "teach" and pending.name:
            unanswered.update(pending.request.replace(pending.name, d) for d in DEVICES)
        if any(effect in shared.effects(sentence, before, now) for sentence in unanswered):
            return "pending_without_yes"
    if record.lost is not None:
        remembered = record.recalled().meanings(text, pending, reply)
        if any(effect in shared.effects(sentence, before, now) for sentence in remembered):
            return "forgotten"
    return "justified"


def _say(
    shared: Shared,
    sut: Local | Service,
    record: Record,
    step: Step,
    now: datetime,
    verdict: Verdict,
    where: str,
) -> None:
    text = step.text
    pending = record.pending
    if pending is not None and (
        record.asked_at is None or (now - record.asked_at).total_seconds() > ANSWER_S
    ):
        pending = None  # past the answer window: no answer any more
    before = sut.state.copy()
    out = sut.say(text, now)
    for kind, n in (
        (f"asked {out.question.kind}" if out.question else "", 1),
        (f"answer {out.answered}" if out.answered else "", 1),
        ("rewrites acted", len(out.rewrites)),
        ("actions", len(out.effects)),
    ):
        if kind and n:
            verdict.seen[kind] = verdict.seen.get(kind, 0) + n
    # what this utterance was, for the user
    reply = text if text in ("yes", "no", "never mind") else None
    allowed: set[tuple[str, frozenset[str]]] = set()
    meanings = record.meanings(text, pending, reply)
    for sentence in meanings:
        allowed |= shared.effects(sentence, before, now)
    defines = (
        pending is not None and pending.kind == "teach" and definition(text, pending.name or "") is not None
    )
    about = pending.request if pending is not None and (reply or defines) else text
    sign = polarity(about)
    for effect in out.effects:
        if effect not in allowed:
            cause = _cause(shared, record, effect, text, pending, reply, before, now)
            verdict.violations.append(
                f"{cause}: {where}: {effect} not what was said or taught ({sorted(meanings)})"
            )
        if (sign > 0 and effect[0] in NEGATIVE) or (sign < 0 and effect[0] in POSITIVE):
            verdict.violations.append(f"polarity: {where}: {effect} for {about!r}")
    for original, rewritten, layer in out.rewrites:
        if (original, rewritten) in record.no:
            verdict.violations.append(f"no_after_no: {where}: {original!r} -> {rewritten!r}")
        answered_now = pending is not None and out.answered in ("yes", "taught")
        if layer in ("personal", "taught") and not answered_now:
            old, _new = span(original, rewritten)
            listing = sut.listing().replace("'", "")  # the list shows words as it reads them
            if old and old.lower().replace("'", "") not in listing:
                verdict.violations.append(
                    f"listed: {where}: {original!r} -> {rewritten!r} acts, list: {listing[:300]!r}"
                )
    # the record: what the user did
    if pending is not None and pending.kind == "confirm" and pending.proposal:
        if reply == "yes":
            record.yes[pending.request] = pending.proposal
        elif reply == "no":
            record.no.add((pending.request, pending.proposal))
    if pending is not None and pending.kind == "teach" and pending.name:
        device = definition(text, pending.name)
        if device is not None:
            record.names.setdefault(pending.name, set()).add(device)
    if text.startswith("the ") and " is the " in text:
        name, device = text.removeprefix("the ").split(" is the ", 1)
        record.names.setdefault(name, set()).add(device)
        if not out.response.startswith("OK"):
            verdict.seen["lessons unheard"] = verdict.seen.get("lessons unheard", 0) + 1
    if text.startswith("when I say "):
        phrase, meaning = text.removeprefix("when I say ").split(" I mean ", 1)
        record.phrasings[phrase] = meaning
    if text.startswith("forget "):
        words = text.removeprefix("forget ")
        record.forget(words.removeprefix("the "))
        record.forget(words)
    teaching = text.startswith(("forget ", "when I say ", "what have you")) or (" is the " in text)
    is_request = reply is None and not defines and not teaching  # "it's the ..." to nothing: a request
    after_clarify = pending is not None and pending.kind == "clarify"
    if is_request:  # a retry of each failure of the last RETRY_S seconds (the personal layer's rule)
        record.failures = [(t, at) for t, at in record.failures if now.timestamp() - at <= RETRY_S]
        record.retries += [(earlier, text) for earlier, _at in record.failures if earlier != text]
        if out.failed:
            record.failures.append((text, now.timestamp()))
    if after_clarify and pending is not None:
        record.retries.append((pending.request, text))
    if teaching:  # a teaching command in between: the user moved on (rule 3)
        record.failures = []
    record.pending, record.asked_at = out.question, now
    if out.question is not None and pending is not None and reply is not None:
        # a follow-up of a yes or no ("What is zapper?", "What did you want?") is about the request
        # asked about; a question after "What did you want?" is about the reply, a request itself
        out.question.request = pending.request
    if reply == "no" and pending is not None and pending.kind == "confirm" and out.question is None:
        record.pending = Pending("clarify", pending.request)


# --- the benchmark ---------------------------------------------------------------------------------


def run_surface(
    surface: str, sequences: int, steps: int, seed: int, folder: Path, every: int = 50, minutes: float = 0.0
) -> dict[str, Any]:
    """``sequences`` random sequences over ``surface`` (fewer if ``minutes`` run out first)."""
    folder = folder / surface
    folder.mkdir(parents=True, exist_ok=True)
    shared = Shared(folder)
    done: dict[str, Any] = {"sequences": 0, "steps": 0, "violations": 0, "tracebacks": 0, "seconds": 0.0}
    seen: dict[str, int] = {}
    examples: list[str] = []
    t0 = time.perf_counter()
    for n in range(sequences):
        rng = random.Random(f"{seed}-{surface}-{n}")
        verdict = run_sequence(shared, surface, random_steps(rng, steps, surface), folder)
        done["sequences"] += 1
        done["steps"] += verdict.steps
        done["violations"] += len(verdict.violations)
        done["tracebacks"] += len(verdict.tracebacks)
        for kind, count in verdict.seen.items():
            seen[kind] = seen.get(kind, 0) + count
        examples += (verdict.violations + verdict.tracebacks)[: max(0, 20 - len(examples))]
        for leftover in folder.glob(f"{surface}-*.duckdb*"):
            leftover.unlink(missing_ok=True)
        out_of_time = minutes > 0 and time.perf_counter() - t0 > minutes * 60
        if (n + 1) % every == 0 or n + 1 == sequences or out_of_time:
            print(
                f"[dialogue_model] {surface}: {n + 1:,}/{sequences:,} sequences, "
                f"{done['steps']:,} steps, "
                f"{done['violations']} violations, {done['tracebacks']} tracebacks, "
                f"{time.perf_counter() - t0:.0f} s",
                file=sys.stderr,
                flush=True,
            )
        if out_of_time:
            break
    done["seconds"] = round(time.perf_counter() - t0, 1)
    done["seen"] = dict(sorted(seen.items()))
    done["examples"] = examples
    return done


def run(
    surfaces: Sequence[str],
    sequences: int,
    steps: int,
    seed: int,
    folder: Path,
    every: int = 50,
    minutes: float = 0.0,
    jobs: int = 1,
) -> dict[str, Any]:
    """Every surface (``jobs`` > 1: one process per surface), summed."""
    started = time.perf_counter()
    args = [(surface, sequences, steps, seed, folder, every, minutes) for surface in surfaces]
    if jobs > 1:
        with ProcessPoolExecutor(min(jobs, len(surfaces))) as pool:
            results = list(pool.map(run_surface, *zip(*args, strict=True)))
    else:
        results = [run_surface(*a) for a in args]
    totals = dict(zip(surfaces, results, strict=True))
    examples = [e for t in results for e in t.pop("examples")][:20]
    return {
        "sequences": sum(t["sequences"] for t in results),
        "steps": sum(t["steps"] for t in results),
        "violations": sum(t["violations"] for t in results),
        "tracebacks": sum(t["tracebacks"] for t in results),
        "surfaces": list(surfaces),
        "invariants": list(INVARIANTS),
        "steps_per_sequence": steps,
        "per_surface": totals,
        "examples": examples,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, default=200, help="sequences per surface")
    parser.add_argument("--steps", type=int, default=24, help="steps per sequence (at least 20)")
    parser.add_argument("--surfaces", default=",".join(SURFACES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=50, help="a progress line every N sequences")
    parser.add_argument("--minutes", type=float, default=0.0, help="stop each surface after this long")
    parser.add_argument("--jobs", type=int, default=1, help="processes (one surface each)")
    parser.add_argument("--no-write", action="store_true", help="print the figures, write no results file")
    args = parser.parse_args(argv)
    surfaces = [s for s in args.surfaces.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="dialogue-model-") as tmp:
        figures = run(
            surfaces, args.sequences, args.steps, args.seed, Path(tmp), args.every, args.minutes, args.jobs
        )
    for line in figures["examples"]:
        print(line, file=sys.stderr)
    if args.no_write:
        print({k: v for k, v in figures.items() if k != "examples"})
    else:
        write_results("dialogue_model", figures, seconds=figures["seconds"])


if __name__ == "__main__":
    main()
