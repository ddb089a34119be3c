"""A real home: simulated households talk to a real Home Assistant 2025.4 core through the
selflearn integration and a real ``selflearn serve`` -- the loop as a home gets it.

    python bench/real_home.py                       # 20 households x 7 days, four arms (~1 h)
    python bench/real_home.py --households 4 --days 2   # a quick look
    python bench/real_home.py --arms asking --no-reference --rewriter bench/.cache/neural/hl-rewriter \
        --results real_home_neural                  # the neural rewriter as the global layer (~25 min)

The households are the evaluation population ``held-out`` (new homes, phrasings held out of every
training log, noisy speech: :mod:`selflearn.evaluate.populations`), simulated day by day by the
simulator's own users (``selflearn.simulation.household``): they pursue goals, rephrase, give up,
answer "Did you mean ...?" (90 % answer, 3 % the wrong way, through the recogniser), ignore some
questions, and teach a name they use when asked. Only the assistant is swapped: every utterance,
as the noisy recogniser heard it, goes to a fresh, real Home Assistant core per household
(``tests_ha/bench_real_home.py``, run under ``.venv-ha2025``), whose devices are that household's
(``tests_ha/real_home/custom_components/simhome`` stands in for the lamps), at the simulated time,
from the satellite that heard it; a question keeps the conversation open, and the answer comes
back in it, as a satellite does. Arms (each with its own ``selflearn serve`` and store; the global
layer is the starter, ``selflearn starter``, the same in every arm):

* ``control`` -- Home Assistant alone (its own agent, no selflearn);
* ``acting`` -- + selflearn acting on its guesses (``--confirm off --no-ask-to-be-taught``): the
  behaviour before the dialogue reached Home Assistant;
* ``asking`` -- + asking "Did you mean ...?" about the global layer's guesses, acting on the home's
  own names and confirmed fixes (``--confirm guesses --no-ask-to-be-taught``);
* ``asking_teaching`` -- + asking to be taught at teachable moments (the guide's default).

The same households also run on the reference assistant (Home Assistant's matcher inside
selflearn, strict as 2025.4's: ``selflearn.simulate`` with the starter) for the same arms, and in
the control arm every utterance is also put to the reference assistant on the same state, to
measure how often the two agree on what a turn does (if they disagree often, the simulator's
figures do not describe Home Assistant; the per-intent disagreements say where).

Scored against simulation truth (evaluation only; no learner sees it), per arm: defect rate (a
question not ended by a yes that worked is a defect), defect reduction against the same turns
without selflearn (per turn: Home Assistant alone had failed on each turn selflearn changed),
rescues, wrong actions caused by selflearn, questions per 100 turns, the share of out-of-scope
requests asked about and acted on, and the latency selflearn added to the requests it handled
(inside Home Assistant: the request's time minus Home Assistant's own first answer). Figures go to
``docs/results/real_home.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from selflearn.assistant.execute import Effect
from selflearn.assistant.nlu import NluResult
from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.assistant.resolve import TARGETLESS_INTENTS
from selflearn.assistant.turns import Answered, HandledTurn
from selflearn.core.schema import AsrTrace, DeviceContext, NluTrace, Turn
from selflearn.dialogue import Question, asking_turn
from selflearn.evaluate import population, write_results
from selflearn.evaluate.replay import ArmStats, read_records, score_arm
from selflearn.rewrite.rewriter import Rewriter
from selflearn.simulation.goals import PhrasingPool
from selflearn.simulation.household import _HouseholdRun
from selflearn.simulation.population import make_household
from selflearn.simulation.simulator import ShardStats, SimulationConfig, load_phrasings, simulate

ROOT = Path(__file__).resolve().parents[1]
HA_PYTHON = ROOT / ".venv-ha2025" / "bin" / "python"
STARTER = ROOT / "bench" / ".cache" / "starter" / "rewriter"
ARMS = {
    "control": None,
    "acting": ("off", False),
    "asking": ("guesses", False),
    "asking_teaching": ("guesses", True),
}
"""Arm -> (the service's --confirm, whether it asks to be taught); ``None``: no selflearn."""
QUESTION_WINDOW = timedelta(seconds=8)
"""The service's answer window (``DialogueConfig.timeout_s``)."""
NO_TARGETS = TARGETLESS_INTENTS | {"HassGetWeather", "HassGetCurrentTime", "HassGetCurrentDate"}
SHOPPING = {"HassShoppingListAddItem", "HassListAddItem"}
SERVICE_DOMAIN = {"HassLightSet": "light"}
"""Intents whose handler calls one domain's service on every entity it matched: Home Assistant
2025.4's HassLightSet lists the area's thermostat and locks among its targets, and calls
``light.turn_on``, which leaves them alone."""


# --- the two processes beside the simulation ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HomeAssistantSide:
    """The real Home Assistant cores (``tests_ha/bench_real_home.py`` under ``.venv-ha2025``)."""

    def __init__(self, log: Path) -> None:
        if not HA_PYTHON.exists():
            raise SystemExit(
                f"{HA_PYTHON} is missing: run `make test-ha` once to create the Home Assistant venvs"
            )
        self.port = free_port()
        env = {**os.environ, "SELFLEARN_REAL_HOME_PORT": str(self.port), "SELFLEARN_PYTHON": sys.executable}
        self.process = subprocess.Popen(
            [str(HA_PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "bench_real_home.py"],
            cwd=ROOT / "tests_ha",
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"Home Assistant's side exited: {log.read_text()[-3000:]}")
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=600)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("Home Assistant's side never listened") from None
                time.sleep(0.2)
        self.reader = self.sock.makefile("rb")
        self.version: str | None = None

    def call(self, command: dict[str, Any]) -> dict[str, Any]:
        """Send one command and read its answer (raises on the other side's error)."""
        self.sock.sendall(json.dumps(command, default=str).encode() + b"\n")
        line = self.reader.readline()
        if not line:
            raise RuntimeError("Home Assistant's side closed the connection")
        out: dict[str, Any] = json.loads(line)
        if "error" in out:
            raise RuntimeError(f"Home Assistant's side failed on {command.get('op')}: {out['error']}")
        if "ha_version" in out:
            self.version = str(out["ha_version"])
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call({"op": "bye"})
        self.sock.close()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Service:
    """One ``selflearn serve`` for an arm (its households' personal layers live in it)."""

    def __init__(self, folder: Path, confirm: str, teach: bool, rewriter: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "selflearn", "serve", "--rewriter", str(rewriter),
            "--store", str(folder / "service.duckdb"), "--port", str(self.port),
            "--timeout-ms", "1000", "--confirm", confirm,
        ]  # fmt: skip
        if not teach:
            command.append("--no-ask-to-be-taught")
        self.log = folder / "service.log"
        self.process = subprocess.Popen(command, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"selflearn serve exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=5) as res:
                    health = json.loads(res.read())
                if health["dialogue"]["ready"]:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("selflearn serve did not get ready")
            time.sleep(0.5)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


# --- the assistant the simulated users talk to -------------------------------------------------------


_UNITS = {
    w: i
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ]
    )
}
_TENS = {
    w: 10 * i
    for i, w in enumerate(
        ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
    )
    if i > 1
}


def as_digits(text: str) -> str:
    """Numbers said in words written as digits ("set it to twenty two" -> "set it to 22"), as Home
    Assistant's speech-to-text engines write them (the simulator's recogniser writes words, which
    Home Assistant 2025.4's templates pass on as text: "twenty two" then breaks its temperature
    answer)."""
    words, out, i = text.split(), [], 0
    while i < len(words):
        word = words[i]
        if (
            word in _TENS
            or word in _UNITS
            or (word == "a" and i + 1 < len(words) and words[i + 1] == "hundred")
        ):
            value, j = 0, i
            if word == "a" or (word in _UNITS and j + 1 < len(words) and words[j + 1] == "hundred"):
                value, j = (1 if word == "a" else _UNITS[word]) * 100, j + 2
                if j < len(words) and words[j] == "and":
                    j += 1
            if j < len(words) and words[j] in _TENS:
                value, j = value + _TENS[words[j]], j + 1
                if j < len(words) and words[j] in _UNITS and 0 < _UNITS[words[j]] < 10:
                    value, j = value + _UNITS[words[j]], j + 1
            elif j < len(words) and words[j] in _UNITS:
                value, j = value + _UNITS[words[j]], j + 1
            if j > i:
                out.append(str(value))
                i = j
                continue
        out.append(word)
        i += 1
    return " ".join(out)


def effect_of(found: dict[str, Any]) -> Effect:
    """What Home Assistant did, in the reference assistant's terms (``Effect``), so that the
    simulator's judge compares like with like: no entity targets for timers, time, date, weather
    and the shopping list; a state query's ``state`` slot is what was asked, not a parameter; a
    light's brightness set on the lights only (:data:`SERVICE_DOMAIN`)."""
    intent = str(found["intent"])
    slots = dict(found.get("slots") or {})
    targets = frozenset(found.get("targets") or ())
    if intent in NO_TARGETS or intent in SHOPPING:
        targets = frozenset()
    if intent in SHOPPING:
        intent, slots = "HassShoppingListAddItem", {"item": slots.get("item")}
    if intent == "HassGetState":
        slots.pop("state", None)
    if intent in ("HassGetWeather", "HassClimateGetTemperature"):
        slots = {}
    if intent in SERVICE_DOMAIN:  # the response lists every entity matched; the service changes its own
        targets = frozenset(t for t in targets if t.split(".", 1)[0] == SERVICE_DOMAIN[intent])
    for name in ("volume_level", "volume"):  # Home Assistant's volume is 0-1, the simulator's 0-100
        value = slots.get(name)
        if isinstance(value, (int, float)) and 0 < float(value) <= 1:
            slots[name] = round(float(value) * 100)
    return Effect.of(intent, targets, slots)


class HomeAssistantBridge:
    """Home Assistant (through the integration, or alone) with the reference assistant's
    interface, so the simulator's households talk to it unchanged.

    The recogniser is the simulator's (the words a satellite would send); the simulated users
    judge a proposed sentence with the reference assistant, as a person hears it; everything the
    assistant does is Home Assistant's. ``agree`` (control arm): a reference assistant every
    utterance is also put to, on the same state."""

    def __init__(
        self, ha: HomeAssistantSide, reference: Assistant, household_id: str, agree: Assistant | None
    ) -> None:
        self.ha = ha
        self.reference = reference
        self.asr = reference.asr
        self.config = reference.config
        self.rewriter = None
        self.rewrite_errors = 0
        self.household_id = household_id
        self.agree = agree
        self.agreement: list[tuple[str, bool]] = []
        """(the intent either side acted with, whether both did the same) per request (control)."""
        self.disagreements: list[dict[str, Any]] = []
        """The requests on which they did not (control), with what each did and said."""
        self.service_answers: Counter[str] = Counter()
        """What the service answered, by action (and why it failed open)."""
        self.added_ms: list[float] = []
        """Time selflearn added to requests it was asked about."""
        self.calls = 0
        self._heard: dict[str, dict[str, Any]] = {}
        """An utterance Home Assistant already answered while a question waited (a new request)."""

    @property
    def reply_asr(self) -> Any:
        return self.reference.reply_asr

    def run_text(self, *args: Any, **kwargs: Any) -> Any:
        return self.reference.run_text(*args, **kwargs)

    def understand(self, *args: Any, **kwargs: Any) -> Any:
        return self.reference.understand(*args, **kwargs)

    def rewrite(self, *args: Any, **kwargs: Any) -> None:
        return None

    # --- talking to Home Assistant --------------------------------------------------------------

    def _say(
        self,
        text: str,
        device: DeviceContext,
        conversation: str | None,
        when: datetime,
        state: Any,
        user: str,
    ) -> dict[str, Any]:
        self.calls += 1
        out = self.ha.call(
            {
                "op": "say",
                "text": text,
                "device": device.device_id,
                "conversation_id": conversation,
                "time": when.isoformat(),
                "unavailable": sorted(state.unavailable),
                "user": user,
            }
        )
        if out["answers"]:
            self.added_ms.append(max(0.0, out["total_ms"] - out["first_ms"]))
        for found in out["answers"]:
            answer = found.get("answer")
            if answer is None:
                self.service_answers["none (the client failed)"] += 1
            elif answer.get("fail_open"):
                self.service_answers["fail_open: " + str((answer.get("reasons") or [""])[0])[:40]] += 1
            else:
                self.service_answers[str(answer["action"])] += 1
        for entity_id, found in out["states"].items():
            state.states[entity_id] = found["state"]
            state.attributes.setdefault(entity_id, {}).update(
                {k: v for k, v in found["attributes"].items() if v is not None}
            )
        state.timers = [
            {"seconds": t["seconds"], "name": t["name"], "paused": t["paused"], "area": None}
            for t in out["timers"]
        ]
        state.shopping_list = list(out["shopping"])
        return out

    def _record(self, out: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
        """The turn as the integration logged it (or, Home Assistant alone, as it would have)."""
        logged = [r for r in out["logged"] if r.get("record_type") == "turn"]
        if logged:
            return cast(dict[str, Any], logged[-1])
        status = (
            "success"
            if out["response_type"] != "error"
            else ("no_match" if out["error_code"] == "no_intent_match" else "error")
        )
        return {
            **base,
            "nlu": {
                "matched": out["error_code"] != "no_intent_match",
                "intent": out["intent"],
                "slots": {k: v for k, v in out["slots"].items() if isinstance(v, (str, int, float, bool))},
                "matcher": "home_assistant",
            },
            "result": {
                "status": status,
                "response_text": out["speech"][:1000],
                "error_code": out["error_code"],
            },
        }

    @staticmethod
    def _nlu(record: dict[str, Any]) -> NluResult:
        nlu = record.get("nlu") or {}
        trace = NluTrace(
            matched=bool(nlu.get("matched")),
            intent=nlu.get("intent"),
            slots={k: v for k, v in (nlu.get("slots") or {}).items() if v is not None},
            matcher=str(nlu.get("matcher") or "home_assistant"),
        )
        return NluResult(trace)

    def _effects(self, out: dict[str, Any]) -> tuple[Effect, ...]:
        return tuple(effect_of(e) for e in out["effects"])

    # --- the reference assistant's interface ------------------------------------------------------

    def handle(
        self,
        *,
        spoken: str,
        state: Any,
        turn_id: str,
        session_id: str,
        user_id: str,
        household_id: str,
        device: DeviceContext,
        timestamp: datetime,
        rng: random.Random,
        wake_score: float | None = 0.95,
        condition: Any = None,
        typed: bool = False,
        asr_trace: AsrTrace | None = None,
        answering: Question | None = None,
    ) -> HandledTurn:
        if asr_trace is None and not typed:
            asr_trace = self.asr.transcribe(spoken, rng, condition)
        text = as_digits(spoken if asr_trace is None else asr_trace.text)
        before = state.copy() if self.agree is not None else None
        area = state.home.area_id_of(device.area)
        conversation = answering.payload["conversation"] if answering is not None else None
        out = self._heard.pop(text, None) or self._say(text, device, conversation, timestamp, state, user_id)
        # The reference assistant's draws, in its order, so both see the same users.
        rng.gauss(450, 80)
        effects = self._effects(out)
        if out["response_type"] != "error":
            rng.random()
        if before is not None and self.agree is not None:
            _nlu, _res, ref_result, ref_effect = self.agree.run_text(
                text, before, timestamp, area, explain_failures=False
            )
            mine = effects[-1] if effects else None
            either = mine or ref_effect
            intent = either.intent if either is not None else "none"
            self.agreement.append((intent, mine == ref_effect))
            if mine != ref_effect:
                self.disagreements.append(
                    {
                        "text": text,
                        "home_assistant": [mine.intent, sorted(mine.targets), list(mine.params)]
                        if mine
                        else None,
                        "ha_said": out["speech"][:200],
                        "ha_error": out["error_code"],
                        "reference": [ref_effect.intent, sorted(ref_effect.targets), list(ref_effect.params)]
                        if ref_effect
                        else None,
                        "reference_said": ref_result.response_text[:200],
                    }
                )
        base = {
            "record_type": "turn",
            "turn_id": uuid.uuid4().hex,
            "session_id": session_id,
            "user_id": user_id,
            "household_id": household_id,
            "timestamp": timestamp.isoformat(),
            "device": device.model_dump(mode="json"),
            "text": text,
        }
        answers = [a for a in out["answers"] if a.get("answer")]
        last = answers[-1]["answer"] if answers else None
        if last is not None and last["action"] == "ask" and last.get("question"):
            asked = answers[-1]["request"].get("turn") or self._record(out, base)
            question = self._question(last, Turn.model_validate(asked), out, timestamp, device, user_id)
            nlu = self._nlu(asked)
            return HandledTurn(question.turn, None, nlu, None, question=question)
        record = self._record(out, base)
        turn = Turn.model_validate(record)
        effect = effects[-1] if effects else None
        return HandledTurn(
            turn, effect, self._nlu(record), None, turn.rewrite is not None, None, effects=effects
        )

    def _question(
        self,
        answer: dict[str, Any],
        asked: Turn,
        out: dict[str, Any],
        when: datetime,
        device: DeviceContext,
        user: str,
        wants_definition: bool = False,
    ) -> Question:
        found = answer["question"]
        act_id = str(found["act_id"])
        kind = found["kind"]
        turn = (
            asked
            if asked.dialogue is not None
            else asking_turn(asked, act_id, kind, found["text"], found["proposal"])
        )
        return Question(
            act_id=act_id,
            kind=kind,
            text=str(found["text"]),
            turn=turn,
            asked_at=when,
            expires_at=when + QUESTION_WINDOW,
            proposal=found.get("proposal"),
            raised_by="gap" if kind == "teach" else "rewriter",
            wants_definition=wants_definition,
            payload={
                "conversation": out["conversation_id"],
                "device": device,
                "user": user,
                "nlu": self._nlu(asked.model_dump(mode="json")),
            },
        )

    def unanswered(self, question: Question, answer: Any) -> HandledTurn | None:
        if question.kind == "clarify":
            return None
        return HandledTurn(question.unanswered_turn(answer), None, question.payload["nlu"], None)

    def expire(self, question: Question) -> Answered:
        act = question.act("timeout", question.expires_at)
        return Answered(None, self.unanswered(question, "timeout"), act, "")

    def reply(
        self,
        question: Question,
        spoken: str,
        state: Any,
        timestamp: datetime,
        rng: random.Random,
        condition: Any = None,
        typed: bool = False,
    ) -> Answered:
        if question.expired(timestamp):
            return self.expire(question)
        heard = None if typed else self.reply_asr.transcribe(spoken, rng, condition)
        text = as_digits(spoken if heard is None else heard.text)
        payload = question.payload
        out = self._say(text, payload["device"], payload["conversation"], timestamp, state, payload["user"])
        first = next((a for a in out["answers"] if a.get("answer")), None)
        ended = first["answer"].get("ended") if first is not None else None
        if ended is None:  # no question waited any more (the service failed open): a new request
            self._heard[text] = out
            return Answered(
                None,
                self.unanswered(question, "barge_in"),
                question.act("barge_in", timestamp, text),
                "",
                heard,
            )
        assert first is not None  # it ended a question
        answer = ended["answer"]
        taught = (first["answer"].get("taught") or {}).get("concept_id")
        act = question.act(answer, timestamp, text, taught=taught)
        action = first["answer"]["action"]
        if answer in ("barge_in", "timeout", "answered"):
            self._heard[text] = out
            return Answered(None, self.unanswered(question, answer), act, "", heard)
        if action == "run":
            record = self._record(out, {})
            effects = self._effects(out)
            turn = Turn.model_validate(record)
            handled = HandledTurn(
                turn, effects[-1] if effects else None, self._nlu(record), None, True, None, effects=effects
            )
            return Answered("yes" if answer == "yes" else None, handled, act, out["speech"], heard)
        if action == "ask":
            follow = first["answer"]
            follow_up = self._question(
                follow,
                question.turn,
                out,
                timestamp,
                payload["device"],
                payload["user"],
                wants_definition=answer == "yes",
            )
            if answer == "yes":  # "OK. What is <words>?": the same question goes on
                return Answered("yes", None, act, out["speech"], heard, follow_up)
            return Answered("no", self.unanswered(question, answer), act, out["speech"], heard, follow_up)
        reply = {"never_mind": "never_mind", "declined": "no"}.get(answer)
        return Answered(reply, self.unanswered(question, answer), act, out["speech"], heard)  # type: ignore[arg-type]


# --- one arm ------------------------------------------------------------------------------------------


def run_arm(
    arm: str, config: SimulationConfig, ha: HomeAssistantSide, folder: Path, rewriter: Path
) -> tuple[ArmStats, dict[str, Any]]:
    """Simulate every household of ``config`` against Home Assistant in ``arm``; write the records
    to ``folder`` and score them."""
    folder.mkdir(parents=True, exist_ok=True)
    settings = ARMS[arm]
    service = Service(folder, *settings, rewriter) if settings is not None else None
    # The simulated users hear and judge with the reference assistant as Home Assistant ships
    # today (strict, then the gazetteer); the agreement check puts each utterance to its strict
    # matcher alone, the matching Home Assistant 2025.4 has.
    reference = Assistant(AssistantConfig(asr=config.assistant.asr, nlu=config.assistant.nlu))
    strict = Assistant(AssistantConfig(asr="exact", nlu="strict"))
    pool = PhrasingPool.build(load_phrasings(config), config.phrasing_popularity, config.popularity_exponent)
    files = {kind: (folder / f"{kind}-00000.jsonl").open("wb") for kind in ("turns", "truth", "homes")}
    stats = ShardStats()
    agreement: list[tuple[str, bool]] = []
    added: list[float] = []
    answers: Counter[str] = Counter()
    started = time.perf_counter()

    def write(kind: str, line: bytes) -> None:
        files[kind].write(line + b"\n")

    try:
        for index in range(config.households):
            household = make_household(config.seed, index, config.household_prefix)
            home = household.home
            ha.call(
                {
                    "op": "home",
                    "household": home.home_id,
                    "home": home.to_dict(),
                    "devices": [list(d) for d in household.devices],
                    "arm": arm,
                    "service": service.url if service is not None else None,
                    "start": config.start.isoformat(),
                }
            )
            bridge = HomeAssistantBridge(ha, reference, home.home_id, strict if arm == "control" else None)
            rng = random.Random(f"{config.seed}:{config.household_prefix}:{index}:sim")
            _HouseholdRun(household, config, bridge, pool, write, stats, rng).run()  # type: ignore[arg-type]
            agreement += bridge.agreement
            added += bridge.added_ms
            answers.update(bridge.service_answers)
            with (folder / "disagreements.jsonl").open("a") as log_file:
                for row in bridge.disagreements:
                    log_file.write(json.dumps(row) + "\n")
            print(
                f"[real-home] {arm}: household {index + 1}/{config.households} ({bridge.calls} requests, "
                f"{time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
    finally:
        for fh in files.values():
            fh.close()
        if service is not None:
            service.stop()
    extra = {
        "agreement": agreement,
        "added_ms": added,
        "service_answers": dict(answers),
        "seconds": time.perf_counter() - started,
    }
    return score_arm(folder), extra


def reference_arm(arm: str, config: SimulationConfig, folder: Path, rewriter_dir: Path) -> ArmStats:
    """The same households and arm on the reference assistant, matching strictly as Home Assistant
    2025.4 does (selflearn's copy of its matcher)."""
    settings = ARMS[arm]
    rewriter = None
    ask = teach = False
    if settings is not None:
        confirm, teach = settings
        rewriter = Rewriter.load(rewriter_dir)
        rewriter.config = replace(rewriter.config, confirm=confirm)  # type: ignore[arg-type]
        ask = confirm != "off"
    assistant = replace(config.assistant, nlu="strict", ask=ask, teach=teach, rewrite_when="on_failure")
    simulate(replace(config, assistant=assistant), folder, rewriter=rewriter)
    return score_arm(folder)


def out_of_scope(folder: Path) -> dict[str, float]:
    """Of the out-of-scope requests (not background speech): the share asked about, acted on."""
    turns, truth = read_records(folder, "turns"), read_records(folder, "truth")
    n = asked = acted = 0
    for turn_id, t in truth.items():
        if t["in_scope"] or t["action"] == "background":
            continue
        row = turns.get(turn_id, {})
        n += 1
        asked += (row.get("dialogue") or {}).get("role") == "question"
        acted += bool(row.get("rewrite")) and (row.get("result") or {}).get("status") == "success"
    return {"oos_turns": n, "oos_asked_share": asked / max(n, 1), "oos_acted_share": acted / max(n, 1)}


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)


def arm_figures(
    stats: ArmStats, control: ArmStats, oos: dict[str, float], added: list[float]
) -> dict[str, Any]:
    return {
        "turns": stats.turns,
        "defect_rate": round(stats.defect_rate, 4),
        "defect_reduction": round(stats.defect_reduction, 4),
        "defect_reduction_interval": [round(x, 4) for x in stats.reduction_interval()],
        "defect_rate_change_vs_control": round(1 - stats.defect_rate / control.defect_rate, 4)
        if control.defect_rate
        else None,
        "rescues": stats.wins,
        "wrong_actions": stats.acted_wrong,
        "rescues_per_wrong_action": round(stats.wins_per_wrong_action, 2) if stats.acted_wrong else None,
        "questions": stats.questions,
        "questions_per_100_turns": round(stats.questions_per_100_turns, 2),
        "answers": dict(stats.answers),
        "oos_asked_share": round(oos["oos_asked_share"], 4),
        "oos_acted_share": round(oos["oos_acted_share"], 4),
        "oos_turns": oos["oos_turns"],
        "latency_ms_p50": pct(added, 0.5),
        "latency_ms_p99": pct(added, 0.99),
        "layers": {k: dict(v) for k, v in stats.layers.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, default=20)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--rewriter", type=Path, default=STARTER, help="the global layer (selflearn starter)")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference-assistant arms")
    parser.add_argument(
        "--results",
        default="real_home",
        help="results file name in docs/results (real_home_neural: another rewriter's run, kept beside "
        "the starter's)",
    )
    args = parser.parse_args()
    if not (args.rewriter / "model.json").exists():
        raise SystemExit(
            f"no rewriter at {args.rewriter}: build it with `selflearn starter --out {args.rewriter}`"
        )
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if "control" not in arms:
        arms.insert(0, "control")
    pop = population("held-out")
    config = pop.config(workers=2, households=args.households, days=args.days)
    work = args.out or Path(tempfile.mkdtemp(prefix="selflearn-real-home-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    ha = HomeAssistantSide(work / "home-assistant.log")
    results: dict[str, tuple[ArmStats, dict[str, Any]]] = {}
    try:
        for arm in arms:
            results[arm] = run_arm(arm, config, ha, work / arm, args.rewriter)
    finally:
        ha.close()
    control = results["control"][0]
    figures_arms = {
        arm: {
            **arm_figures(stats, control, out_of_scope(work / arm), extra["added_ms"]),
            "service_answers": extra["service_answers"],
            "seconds": round(extra["seconds"], 1),
        }
        for arm, (stats, extra) in results.items()
    }
    agreement = results["control"][1]["agreement"]
    by_intent: dict[str, list[int]] = {}
    for intent, same in agreement:
        counts = by_intent.setdefault(intent, [0, 0])
        counts[0] += 1
        counts[1] += same
    reference: dict[str, Any] = {}
    if not args.no_reference:
        for arm in arms:
            ref = reference_arm(arm, config, work / f"reference-{arm}", args.rewriter)
            reference[arm] = arm_figures(ref, control, out_of_scope(work / f"reference-{arm}"), [])
        ref_control = reference_arm("control", config, work / "reference-control", args.rewriter)
        for arm in arms:
            reference[arm]["defect_rate_change_vs_control"] = (
                round(1 - reference[arm]["defect_rate"] / ref_control.defect_rate, 4)
                if ref_control.defect_rate
                else None
            )
    figures = {
        "households": config.households,
        "days": config.days,
        "population": pop.name,
        "ha_version": ha.version,
        "rewriter": str(args.rewriter),
        "ask_threshold": json.loads((args.rewriter / "model.json").read_text())["config"].get(
            "ask_threshold"
        ),
        "starter_nlu": json.loads((args.rewriter / "starter.json").read_text())["recipe"]["nlu"]
        if (args.rewriter / "starter.json").exists()
        else None,
        "arms": figures_arms,
        "agreement_with_reference": round(sum(same for _, same in agreement) / max(len(agreement), 1), 4),
        "agreement_turns": len(agreement),
        "agreement_when_either_acted": round(
            sum(same for intent, same in agreement if intent != "none")
            / max(sum(intent != "none" for intent, _ in agreement), 1),
            4,
        ),
        "agreement_by_intent": {
            k: {"turns": v[0], "agree": round(v[1] / v[0], 3)}
            for k, v in sorted(by_intent.items(), key=lambda kv: -kv[1][0])
        },
        "reference": reference,
        "seconds": round(time.perf_counter() - started, 1),
        "work": str(work),
    }
    command = "python bench/real_home.py " + " ".join(sys.argv[1:])
    seconds = time.perf_counter() - started
    path = write_results(args.results, figures, command=command.strip(), seconds=seconds)
    print(json.dumps(figures, indent=2))
    print(f"[real-home] figures -> {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
