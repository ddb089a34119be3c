"""The interaction-log schema: what an assistant writes for every turn.

Three kinds of record travel in a log stream, told apart by ``record_type``:

* :class:`Turn` -- one user request and everything each pipeline stage did with it;
* :class:`Feedback` -- the user's answer to "did I get that right?", an event of its own
  that arrives after the turn it is about;
* :class:`DialogueAct` -- a question the assistant asked (confirm a guess, ask what was meant,
  offer to learn a word) and how it ended: the answer, and what was taught.

Simulation truth (:class:`Truth`) is a third record kind that only the simulator writes. It
lives in its own file and its own table; nothing that learns from logs may read it.

Every model is frozen, rejects unknown fields, and carries a docstring under each field;
``docs/log-format.md`` is generated from these docstrings (``python -m selflearn.docgen``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

SCHEMA_VERSION = "1.2"
"""Version of the log format. Readers accept records whose major version matches; a minor
version only adds optional fields and values (1.1: ``Truth.defect_without_rewrite``; 1.2: the
dialogue -- :class:`DialogueAct` records, ``Turn.dialogue`` and the result status ``question``).
A store written by an older minor version is upgraded when it is
opened for writing."""

MAX_TEXT_CHARS = 1000
"""Longest utterance or response text accepted; longer text is a bad record, not a truncation."""

MAX_ID_CHARS = 128

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS, pattern=r"^[A-Za-z0-9_.:\-]+$")]
MAX_INT = 2**31 - 1
"""Largest whole number a record field holds (the store keeps them as 32-bit integers)."""
Version = Annotated[str, Field(json_schema_extra={"pattern": rf"^{SCHEMA_VERSION.split('.')[0]}(\.|$)"})]
"""A record's ``schema_version``: readable when its major version is this schema's."""
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]

FailurePoint = Literal["false_wake", "asr", "nlu", "er", "result", "correct"]
"""The first pipeline stage that failed in a way the rest of the pipeline did not recover from."""

FAILURE_POINTS: tuple[FailurePoint, ...] = ("false_wake", "asr", "nlu", "er", "result", "correct")


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
"""A number, or a string holding one: pydantic would read it as seconds since 1970."""
_DATETIME: TypeAdapter[datetime] = TypeAdapter(datetime)


class _Versioned(_Record):
    """Records that carry a schema version (and, where they have one, a timestamp)."""

    @field_validator("timestamp", mode="before", check_fields=False)
    @classmethod
    def _not_a_number(cls, value: Any) -> Any:
        # A log's times are ISO 8601 strings: a number (12345, "12345") is refused rather than
        # read as seconds since 1970 -- a counter or milliseconds would be stored as 1970.
        if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.match(value)):
            raise ValueError(
                f"timestamp must be an ISO 8601 date and time with a timezone (e.g. "
                f"2026-01-05T08:00:00Z), not the number {value!r}: numbers are not read as seconds since 1970"
            )
        if isinstance(value, str):
            # Parsed here: after a validator of this kind the field sees a Python value, which
            # strict validation (the service's) would refuse as a string.
            try:
                return _DATETIME.validate_python(value)
            except ValidationError as exc:
                raise ValueError(exc.errors()[0]["msg"]) from None
        return value

    @field_validator("timestamp", check_fields=False)
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamp must include a timezone (e.g. 2026-01-01T08:00:00Z)")
        return value

    @field_validator("schema_version", check_fields=False)
    @classmethod
    def _major(cls, value: str) -> str:
        return _check_version(value)


class DeviceContext(_Record):
    """Where and on what the request was spoken."""

    device_id: Id
    """Pseudonymous id of the device (satellite, speaker, phone app) that heard the request."""
    device_type: Literal["speaker", "display", "phone", "satellite", "chat"] = "speaker"
    """Kind of device; ``chat`` for typed input."""
    area: str | None = None
    """Area (room) the device is assigned to, by its name in the home, if any."""
    has_screen: bool = False
    """Whether the device can show a visual response."""
    locale: str = "en-US"
    """Language and region the assistant ran in (BCP 47)."""


class WakeTrace(_Record):
    """The wake-word stage."""

    score: Probability
    """Wake-word detector score for the trigger that opened this turn."""
    false_wake: bool | None = None
    """True when the device is known to have woken on speech not meant for it (e.g. the user said
    "that wasn't for you"); ``None`` when unknown, which is the usual case in production."""


class AsrHypothesis(_Record):
    """One entry of the recognizer's n-best list."""

    text: Text
    """Hypothesis text, lower-case words."""
    confidence: Probability
    """Recognizer's confidence in this hypothesis."""


class AsrTrace(_Record):
    """The speech-recognition stage (absent for typed input)."""

    text: Text
    """Top hypothesis: what the rest of the pipeline was given."""
    confidence: Probability
    """Confidence of the top hypothesis."""
    nbest: tuple[AsrHypothesis, ...] = ()
    """Alternative hypotheses, best first, including the top one when the engine reports it."""
    engine: str = "unknown"
    """Which recognizer produced the text (``exact``, ``noisy``, ``pocketsphinx``, or the
    integrating assistant's own name)."""


SlotValue = str | int | float | bool | None


class NluTrace(_Record):
    """The intent-recognition stage."""

    matched: bool
    """Whether any matcher produced an interpretation."""
    intent: str | None = None
    """Recognized intent (Home Assistant names, e.g. ``HassTurnOn``); ``None`` if unmatched."""
    slots: dict[str, SlotValue] = Field(default_factory=dict)
    """Slot name -> value as the matcher produced it (area/floor names, entity names, numbers)."""
    confidence: Probability = 0.0
    """Matcher confidence. Strict template matches report 1.0; fuzzy matchers their own score."""
    matcher: str = "none"
    """Which matcher produced the result: ``strict`` (hassil templates), ``gazetteer``,
    ``fuzzy_ngram``, ``template_canon``, an external NLU's name, or ``none``."""

    @field_validator("slots")
    @classmethod
    def _slot_names(cls, slots: dict[str, SlotValue]) -> dict[str, SlotValue]:
        for name, value in slots.items():
            if not name or len(name) > 64:
                raise ValueError(f"slot name {name!r} must be 1-64 characters")
            if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
                raise ValueError(f"slot {name!r} value is longer than {MAX_TEXT_CHARS} characters")
        return slots


class ResolvedTarget(_Record):
    """One entity the request was resolved to."""

    entity_id: str
    """The home's id for the entity (e.g. ``light.kitchen_ceiling``)."""
    name: str
    """The entity's configured name."""
    score: Probability = 1.0
    """Match score between what was said and the entity's name or alias (1.0 for exact)."""


class ErTrace(_Record):
    """The entity-resolution stage: from slot values to the home's entities."""

    resolved: tuple[ResolvedTarget, ...] = ()
    """Entities the request was resolved to (several for "all lights in the kitchen")."""
    unresolved: tuple[str, ...] = ()
    """Names or areas that were said but matched nothing in the home."""
    ok: bool
    """Whether resolution produced a usable target set (True for intents that need none)."""


class ResultTrace(_Record):
    """The result stage: what the assistant did and said."""

    status: Literal["success", "error", "no_match", "unsupported", "question"]
    """``success``: action done or answer given; ``error``: tried and failed; ``no_match``: the
    request was not understood; ``unsupported``: understood but not something it can do;
    ``question``: the assistant asked a question instead of acting and nothing was run
    (``Turn.dialogue`` says which question and how it ended)."""
    response_text: Text = ""
    """What the assistant said or showed."""
    error_code: str | None = None
    """Machine-readable reason for a non-success status (e.g. ``no_valid_targets``)."""
    latency_ms: Annotated[int, Field(ge=0, le=MAX_INT)] = 0
    """Time from end of speech to start of response."""


class BargeIn(_Record):
    """Whether the user interrupted the response."""

    occurred: bool
    """True if the user spoke over (or stopped) the assistant's response."""
    offset_ms: Annotated[int, Field(ge=0, le=MAX_INT)] | None = None
    """Milliseconds into the response when the interruption came."""


class RewriteTrace(_Record):
    """Provenance of a rewrite applied before the NLU (written by selflearn's rewriter)."""

    original_text: Text
    """What the user said (the ASR text before rewriting)."""
    rewritten_text: Text
    """What the NLU was given instead."""
    layer: Literal["precomputed", "global", "personal"]
    """Which rewrite layer fired."""
    rule_id: str | None = None
    """Identifier of the rewrite (table row or index entry) for later self-assessment."""
    score: Probability = 0.0
    """Ranker score of the applied rewrite."""


DialogueKind = Literal["confirm", "clarify", "teach", "forget", "list"]
"""Kinds of question: ``confirm`` ("Did you mean *turn on the kitchen light*?"), ``clarify``
("What did you want?" after a no), ``teach`` ("I don't know what *study mode* is. Can you teach
me?"), ``forget`` ("Forget *study mode*?"), ``list`` (what the assistant has learned)."""

DialogueAnswer = Literal[
    "yes", "no", "taught", "declined", "never_mind", "timeout", "barge_in", "unparsable", "answered"
]
"""How a question ended: ``yes`` / ``no`` to a confirmation, ``taught`` (a definition was stored),
``declined`` (the user would not teach), ``never_mind`` (the user cancelled), ``timeout`` (no
answer in time), ``barge_in`` (the user said something else instead: a new request),
``unparsable`` (a definition the NLU could not parse: nothing stored), ``answered`` (the reply to
"what did you want?", handled as a request of its own)."""


class DialogueTrace(_Record):
    """A turn's part in a dialogue: the question it asked or the question it answered.

    A turn that asked a question is logged when the question has ended, so its record tells the
    whole story: after a *yes* to "Did you mean ...?" it carries the confirmed rewrite
    (``Turn.rewrite``) and the traces and result of the proposal; after anything else it keeps
    the status ``question`` and nothing was done. The reply itself ("yes", "no", "never mind")
    is not a turn of its own: it is the :class:`DialogueAct`'s ``answer_text``."""

    act_id: Id
    """The :class:`DialogueAct` this turn belongs to."""
    role: Literal["question", "answer"]
    """``question``: this turn's response asked it; ``answer``: this turn replied to it."""
    kind: DialogueKind
    """Kind of question."""
    proposal: Text | None = None
    """For a confirmation: the sentence proposed (what the assistant would run on a yes)."""
    answer: DialogueAnswer | None = None
    """For a question: how it ended (``yes``: the proposal was run as this turn)."""


class Turn(_Versioned):
    """One user request and the trace of every pipeline stage that handled it."""

    schema_version: Version = SCHEMA_VERSION
    """Log-format version this record was written with."""
    record_type: Literal["turn"] = "turn"
    """Discriminator: always ``turn``."""
    turn_id: Id
    """Unique id of the turn."""
    session_id: Id
    """Session the turn belongs to: turns of one device and user separated by short gaps."""
    user_id: Id
    """Pseudonymous id of the speaker (speaker-id result or account)."""
    household_id: Id
    """Pseudonymous id of the home."""
    timestamp: datetime
    """When the request was spoken, timezone-aware ISO 8601."""
    device: DeviceContext
    """Device context."""
    wake: WakeTrace | None = None
    """Wake-word trace; ``None`` for push-to-talk or typed turns."""
    asr: AsrTrace | None = None
    """Speech-recognition trace; ``None`` for typed turns."""
    text: Text
    """Text given to the NLU: the ASR top hypothesis (after any rewrite) or the typed text."""
    nlu: NluTrace | None = None
    """Intent-recognition trace; ``None`` if the stage did not run."""
    er: ErTrace | None = None
    """Entity-resolution trace; ``None`` if the stage did not run."""
    result: ResultTrace | None = None
    """Result trace; ``None`` if the stage did not run."""
    barge_in: BargeIn = BargeIn(occurred=False)
    """Barge-in during the response."""
    feedback_requested: bool = False
    """Whether the assistant asked "did I get that right?" after this turn (the answer arrives
    as a separate :class:`Feedback` record)."""
    rewrite: RewriteTrace | None = None
    """Rewrite provenance, if selflearn rewrote the request."""
    dialogue: DialogueTrace | None = None
    """The question this turn asked or answered, if it is part of a dialogue (the act's whole
    story is its :class:`DialogueAct` record)."""


class Feedback(_Versioned):
    """A user's answer to an explicit feedback question about an earlier turn."""

    schema_version: Version = SCHEMA_VERSION
    """Log-format version this record was written with."""
    record_type: Literal["feedback"] = "feedback"
    """Discriminator: always ``feedback``."""
    feedback_id: Id
    """Unique id of this event."""
    turn_id: Id
    """The turn the question was about."""
    user_id: Id
    """Who answered."""
    household_id: Id
    """Home of the user."""
    timestamp: datetime
    """When the answer was given, timezone-aware."""
    question: Text = "Did I get that right?"
    """What the assistant asked."""
    answer: Literal["yes", "no", "no_answer"]
    """The user's answer; ``no_answer`` when the user ignored the question."""


class DialogueAct(_Versioned):
    """A question the assistant asked and how it ended (one record when it ended)."""

    schema_version: Version = SCHEMA_VERSION
    """Log-format version this record was written with."""
    record_type: Literal["dialogue"] = "dialogue"
    """Discriminator: always ``dialogue``."""
    act_id: Id
    """Unique id of the act."""
    turn_id: Id
    """The turn whose response asked the question."""
    user_id: Id
    """Who was asked."""
    household_id: Id
    """Home of the user."""
    timestamp: datetime
    """When the act ended (the answer, the timeout or the cancellation), timezone-aware."""
    kind: DialogueKind
    """Kind of question."""
    question: Text
    """What the assistant asked, as it said it."""
    proposal: Text | None = None
    """For a confirmation: the sentence proposed; for a teaching question: the words it asked
    about."""
    raised_by: str = "rewriter"
    """What raised the question: ``rewriter`` (a guess below the acting bar or a sensitive
    intent), ``gazetteer`` (a low-margin fuzzy match), ``gap`` (words the assistant could not
    place), ``user`` (the user asked to teach, list or forget)."""
    answer: DialogueAnswer
    """How it ended."""
    answer_turn_id: Id | None = None
    """The turn that answered (``None`` for a timeout)."""
    answer_text: Text | None = None
    """What the answer said, as recognised."""
    taught: str | None = None
    """The concept stored by this act (its id), if any."""


LogRecord = Annotated[Turn | Feedback | DialogueAct, Field(discriminator="record_type")]
"""A record of a log stream: a turn, a feedback event or a dialogue act."""

LOG_RECORD: TypeAdapter[Turn | Feedback | DialogueAct] = TypeAdapter(LogRecord)


ConceptKind = Literal["name", "phrasing", "routine", "preference"]
"""What a user can teach: a **name** for a device or area ("the big light is the living room
ceiling"), a **phrasing** ("when I say lights out I mean turn off all the lights"), a **routine**
(a named bundle of requests, "when I say movie time, dim the living room to 20 percent and turn
off the kitchen light"; ``{area}`` marks a parameter) or a **preference** (a default value,
"my usual temperature is 21")."""


class Concept(_Versioned):
    """Something a user taught the assistant. Concepts are state, not log: the store keeps the
    current ones (``concepts`` table); how each was taught is a :class:`DialogueAct`."""

    schema_version: Version = SCHEMA_VERSION
    """Format version this record was written with."""
    record_type: Literal["concept"] = "concept"
    """Discriminator: always ``concept``."""
    concept_id: Id
    """Unique id (derived from the household, the scope and the phrase)."""
    household_id: Id
    """The home it belongs to; it is never used in, or pooled with, another home."""
    user_id: Id
    """Who taught it."""
    scope: Literal["household", "user"] = "household"
    """Used for everyone in the home, or only for the user who taught it."""
    kind: ConceptKind
    """What was taught."""
    phrase: Text
    """What the user says, normalised (``big light``, ``movie time``, ``study mode in {area}``);
    for a preference, the slot (``temperature``)."""
    meaning: tuple[Text, ...]
    """What it means: for a name, the configured name; for a phrasing, the sentence the
    assistant runs instead; for a routine, its sentences in order; for a preference, the value."""
    target: str | None = None
    """For a name: the entity or area id it names (``light.living_room_ceiling``,
    ``area:living_room``); for a preference: the intent it is a default of."""
    timestamp: datetime
    """When it was taught (or last changed), timezone-aware."""
    taught_by: Id | None = None
    """The dialogue act that taught it, if it was taught by voice."""


ReviewDecision = Literal["approved", "rejected", "edited"]


class Review(_Versioned):
    """A person's verdict on one learned rewrite (``selflearn serve``'s review page, ``POST
    /v1/reviews``). State, not log: the store keeps the latest verdict per rule (``reviews``
    table) and the serving rewriter applies it from the next request on."""

    schema_version: Version = SCHEMA_VERSION
    """Format version this record was written with."""
    record_type: Literal["review"] = "review"
    """Discriminator: always ``review``."""
    review_id: Id
    """Unique id (derived from the rule, or from the source and target patterns)."""
    rule_id: str | None = None
    """The reviewed rule as logged (a mined table rule's id, or an online decision's rule id)."""
    pattern: Text
    """The request pattern the rule rewrites (delexicalized: ``kill the {area} lights``)."""
    target: Text
    """The pattern it rewrites to (``turn off the {area} lights``)."""
    decision: ReviewDecision
    """``approved`` (keep it; export it), ``rejected`` (never apply it again) or ``edited``
    (rewrite ``pattern`` to ``edited_target`` instead)."""
    edited_target: Text | None = None
    """For ``edited``: the pattern to rewrite ``source`` to."""
    reviewer: str | None = None
    """Who decided (free text; the page records ``admin``)."""
    timestamp: datetime
    """When, timezone-aware."""


class Goal(_Record):
    """What the user wanted: an intent with its slots, as Home Assistant would execute it."""

    goal_id: Id
    """Id of the goal (shared by all attempts at it)."""
    intent: str
    """Home Assistant intent name, or ``OutOfScope`` for requests the assistant cannot serve."""
    slots: dict[str, SlotValue] = Field(default_factory=dict)
    """Intended slot values, by the home's canonical names."""
    targets: tuple[str, ...] = ()
    """Entity ids the user meant to affect or ask about."""


class Truth(_Versioned):
    """Simulation truth about one turn. Written only by the simulator; never read by learners."""

    schema_version: Version = SCHEMA_VERSION
    """Log-format version this record was written with."""
    record_type: Literal["truth"] = "truth"
    """Discriminator: always ``truth``."""
    turn_id: Id
    """The turn this truth is about."""
    goal: Goal
    """What the user wanted."""
    intended_text: Text
    """What the user actually said (before ASR)."""
    phrasing_source: str
    """Where the phrasing came from (``templates``, ``colloquial``, ``hwu64``, ``slurp``,
    ``ha_tests``, ``background`` for false wakes)."""
    attempt: Annotated[int, Field(ge=1, le=MAX_INT)]
    """1 for the first try at a goal, 2 for the next, ..."""
    action: Literal["first", "repeat", "rephrase", "background"]
    """How this utterance came about."""
    rephrase_of: Id | None = None
    """The earlier turn this one repeats or reformulates."""
    defect: bool
    """Whether the goal was not achieved by this turn (false wakes and wrongly handled requests
    are defects; a correct refusal of an out-of-scope request is not)."""
    failure_point: FailurePoint
    """First stage that failed irrecoverably, or ``correct``."""
    in_scope: bool
    """Whether the assistant could serve this goal at all."""
    defect_without_rewrite: bool | None = None
    """When a rewrite was applied to this turn: whether the turn would have been a defect without
    it, i.e. the original text run on a copy of the home state; ``None`` otherwise."""


TRUTH_RECORD: TypeAdapter[Truth] = TypeAdapter(Truth)


def _check_version(value: str) -> str:
    major = value.split(".", 1)[0]
    if major != SCHEMA_VERSION.split(".", 1)[0]:
        raise ValueError(f"schema_version {value!r} is not readable by schema {SCHEMA_VERSION}")
    return value
