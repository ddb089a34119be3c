"""The pydantic bodies of the service's requests and responses, and the OpenAPI example of
``POST /v1/turns``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import Path as PathParam
from fastapi import Query
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, model_validator

from selflearn.core.schema import (
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    Concept,
    DeviceContext,
    Review,
    ReviewDecision,
    RewriteTrace,
    Turn,
)
from selflearn.dialogue.learned import How, LearnedKind
from selflearn.service.config import ID_PATTERN, MAX_NBEST_ITEMS

Hypothesis = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]


def _text_time(value: Any) -> Any:
    """A request's time is an ISO 8601 string (a number is not taken for seconds since 1970)."""
    if isinstance(value, str | datetime):
        return value
    raise ValueError(f"expected an ISO 8601 date and time with a timezone, got {type(value).__name__}")


def _json_turn(value: Any) -> Any:
    """A client's turn record validated as JSON with JSON's own types (a number for a score, not
    the string ``"0.5"``; true or false, not 0 or 1): the request's schema is the log schema's."""
    if not isinstance(value, dict):
        return value
    try:
        raw = orjson.dumps(_whole(value))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise ValueError(f"not a JSON object: {exc}") from exc
    return Turn.model_validate_json(raw, strict=True)


def _whole(value: Any) -> Any:
    """``value`` with numbers like ``2.0`` as ``2``: JSON has one kind of number, and a whole one
    is an integer to a JSON schema (pydantic's strict mode alone would refuse it)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, dict):
        return {k: _whole(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole(v) for v in value]
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_text_time)]
"""When something was said: ISO 8601 with a timezone (``2026-01-05T08:00:00Z``)."""

HouseholdId = Annotated[
    str,
    PathParam(
        min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN, description="Pseudonymous household id."
    ),
]


# --- request and response bodies -------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


Name = Annotated[str, Field(min_length=1, max_length=200)]
"""A configured name or alias."""
ConfigId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
"""The id of a floor or an area, as the assistant has it."""


class FloorConfig(_Body):
    """A floor of the home."""

    id: ConfigId
    name: Name
    aliases: Annotated[list[Name], Field(max_length=50)] = []


class AreaConfig(_Body):
    """An area (room) of the home."""

    id: ConfigId
    name: Name
    floor: ConfigId | None = None
    """Id of the floor it is on: one of the home's ``floors``."""
    aliases: Annotated[list[Name], Field(max_length=50)] = []


class EntityConfig(_Body):
    """A device or helper exposed to the assistant."""

    id: Annotated[
        str, Field(min_length=3, max_length=MAX_ID_CHARS, pattern=r"^[A-Za-z0-9_]+\.[A-Za-z0-9_.:\-]+$")
    ]
    """``domain.object_id`` (``light.kitchen_ceiling``), unique in the home."""
    name: Name
    area: ConfigId | None = None
    """Id of the area it is in: one of the home's ``areas``."""
    aliases: Annotated[list[Name], Field(max_length=50)] = []
    device_class: Annotated[str, Field(max_length=64)] | None = None
    features: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=32)] = []
    state: Annotated[str, Field(max_length=255)] = "off"


class HomeConfig(_Body):
    """A home's configuration as the assistant has it (the shape of ``Home.to_dict``). Floors,
    areas and entities refer to each other by id: an area's ``floor`` must be one of the
    ``floors``, an entity's ``area`` one of the ``areas``, and entity ids must be unique -- a home
    that breaks one of these is refused with a 422 that names it. Other top-level keys (a
    simulator's ``devices``, ``users``) are ignored."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "home_id": "h1",
                    "areas": [{"id": "kitchen", "name": "Kitchen"}],
                    "entities": [
                        {"id": "light.kitchen_ceiling", "name": "Kitchen Ceiling", "area": "kitchen"}
                    ],
                }
            ]
        },
    )

    home_id: Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)] = "home"
    timezone: Annotated[str, Field(max_length=64)] = "UTC"
    location: Annotated[str, Field(max_length=200)] = "home"
    floors: Annotated[list[FloorConfig], Field(max_length=100)] = []
    areas: Annotated[list[AreaConfig], Field(max_length=1000)] = []
    entities: Annotated[list[EntityConfig], Field(max_length=10_000)] = []


class ErrorOut(BaseModel):
    """Every error answer (4xx, 5xx)."""

    detail: str
    """What was wrong and what to send instead."""


class FieldErrorOut(BaseModel):
    """One field of a request that was not valid."""

    field: str
    """Where: ``text``, ``home.entities.0.area``, ``(body)``."""
    message: str
    type: str


class ValidationErrorOut(BaseModel):
    """A 422: the request did not validate."""

    detail: str
    """The fields and what was wrong with them, in one line."""
    errors: list[FieldErrorOut] = []
    """Each field on its own."""


class RequestDevice(DeviceContext):
    """The device that heard the request, as in the log schema (``has_screen`` a JSON boolean)."""

    model_config = ConfigDict(strict=True, extra="forbid")


class RewriteRequest(_Body):
    """One request to rewrite, before it goes to the assistant's NLU."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "text": "kill the lights in the kitchen",
                    "household_id": "h1",
                    "user_id": "u1",
                    "area": "Kitchen",
                    "timestamp": "2026-01-05T08:00:00Z",
                }
            ]
        }
    )

    text: Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
    """What the user said (the ASR top hypothesis) or typed."""
    household_id: Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)]
    """Pseudonymous id of the home (selects its personal memory and registered home)."""
    user_id: Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)] = "unknown"
    """Pseudonymous id of the speaker."""
    area: Annotated[str, Field(max_length=200)] | None = None
    """Name of the area of the device that heard the request."""
    timestamp: Timestamp | None = None
    """When the request was spoken, with a timezone (default: now)."""
    device: RequestDevice | None = None
    """The device context, as in the log schema."""
    home: HomeConfig | None = None
    """The home's configuration for this request only (the shape of ``PUT /v1/homes``); default:
    the home registered for the household, if any."""
    failed: StrictBool | None = None
    """Whether the assistant's NLU already failed on ``text`` (``true``: rewrite only if a
    candidate is clearly better; ``false``: it worked, nothing is rewritten); default: unknown
    (the rewriter is asked before the NLU)."""
    nbest: Annotated[list[Hypothesis], Field(max_length=MAX_NBEST_ITEMS)] = []
    """The recogniser's other hypotheses, best first (``text`` is the top one). With
    ``failed: true``, an alternative known to work may replace the top hypothesis."""


class CandidateOut(BaseModel):
    text: str
    score: float


class ConfirmOut(BaseModel):
    """A rewrite the rewriter wants confirmed before it is applied."""

    proposal: str
    """The sentence to run on a yes."""
    question: str
    """What to ask ("Did you mean <proposal>?")."""
    rewrite: RewriteTrace
    """Provenance to log once the user said yes."""


class RewriteResponse(BaseModel):
    """The decision for one request."""

    text: str
    """What the NLU should get: the rewrite, or the original text."""
    original: str
    rewritten: bool
    layer: Literal["precomputed", "global", "personal"] | None
    score: float
    rule_id: str | None
    reasons: list[str]
    """Why, in words; on a fail-open the first reason says what went wrong."""
    candidates: list[CandidateOut]
    elapsed_us: int
    """Time the rewriter spent deciding (the HTTP round trip adds to it)."""
    version: str | None
    """Version of the rewriter artefact that decided (None: no rewriter loaded)."""
    fail_open: bool
    """True when the original text was returned because of an error, a timeout or a missing
    rewriter rather than by decision."""
    rewrite: RewriteTrace | None
    """Provenance to log in the turn's ``rewrite`` field (None when not rewritten)."""
    confirm: ConfirmOut | None = None
    """Set when the rewriter asks first (``RewriterConfig.confirm``): ``text`` is then the
    original, and an assistant that can ask says ``confirm.question``, running
    ``confirm.proposal`` on a yes (logging ``confirm.rewrite`` as the turn's rewrite)."""


class DialogueRequest(_Body):
    """One utterance for the dialogue (``POST /v1/dialogue``): a request, or the answer to the
    question waiting in its conversation."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "text": "kill the lights in the kitchen",
                    "household_id": "h1",
                    "user_id": "u1",
                    "conversation_id": "c1",
                    "turn_id": "t1",
                    "area": "Kitchen",
                    "failed": True,
                }
            ]
        }
    )

    text: Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
    """What the user said (the recogniser's top hypothesis) or typed."""
    household_id: Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)]
    """Pseudonymous id of the home."""
    conversation_id: Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)]
    """The conversation (or device) a question waits in: the next utterance with the same id
    answers it."""
    turn_id: Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)]
    """The id the client logs this utterance's turn under (``log.turn_id`` says which id to use)."""
    user_id: Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)] = "unknown"
    """Pseudonymous id of the speaker."""
    area: Annotated[str, Field(max_length=200)] | None = None
    """Name of the area of the device that heard it."""
    timestamp: Timestamp | None = None
    """When it was said, with a timezone (default: now)."""
    device: RequestDevice | None = None
    """The device context, as in the log schema."""
    home: HomeConfig | None = None
    """The home's configuration for this request only (default: the household's registered one)."""
    failed: StrictBool | None = None
    """Whether the assistant already ran ``text`` and failed (``true``) or worked (``false``);
    default: not run yet (the service's copy of Home Assistant's matcher decides)."""
    commands_only: StrictBool = False
    """Hear ``text`` only if it is a teaching command ("the big light is the floor lamp", "what
    have you learned"), before the assistant runs it: anything else is answered ``pass``
    untouched (no question asked or answered, no rewrite). A client that cannot tell a command
    itself checks ``GET /healthz``'s ``dialogue.commands`` first."""
    nbest: Annotated[list[Hypothesis], Field(max_length=MAX_NBEST_ITEMS)] = []
    """The recogniser's other hypotheses, best first."""
    typed: StrictBool = False
    """Typed rather than spoken (no misrecognitions: a word it fails on once is worth asking about)."""
    turn: Annotated[Turn | None, BeforeValidator(_json_turn)] = None
    """The client's turn record of this utterance as it stands (the log schema; its ``turn_id``
    and ``household_id`` must be the request's): should the service ask, it keeps this record
    and logs it as the asking turn when the question ends."""


class SentencesResponse(BaseModel):
    """``GET /v1/sentences``: a household's taught phrasings and approved rules as one Home
    Assistant custom sentences file."""

    household_id: str
    sentences: int
    """How many sentences the file holds (0: nothing to install; ``yaml`` is then empty)."""
    yaml: str
    """The file, to write as ``<config>/custom_sentences/en/selflearn.yaml``."""


class QuestionOut(BaseModel):
    """A question now waiting in the conversation."""

    act_id: str
    kind: str
    """``confirm``, ``clarify`` or ``teach``."""
    text: str
    proposal: str | None
    expires_at: datetime
    """When it stops waiting (the request's clock)."""


class EndedOut(BaseModel):
    """The question this utterance ended."""

    act_id: str
    kind: str
    answer: str
    """``yes``, ``no``, ``taught``, ``declined``, ``never_mind``, ``timeout``, ``barge_in``,
    ``unparsable`` or ``answered``."""


class DialogueResponse(BaseModel):
    """What to do with one utterance (docs/dialogue.md#the-exchange)."""

    action: Literal["pass", "run", "say", "ask"]
    """``pass``: answer as the assistant would alone; ``run``: run ``sentences`` in order instead
    of the text and answer with their result (``speech`` first, if any); ``say``: answer ``speech``
    and run nothing; ``ask``: answer ``speech`` and keep listening in this conversation."""
    speech: str
    sentences: list[str]
    continue_conversation: bool
    """Keep listening for an answer (Home Assistant 2025.4+: ``continue_conversation``)."""
    question: QuestionOut | None
    ended: EndedOut | None
    log: dict[str, Any] | None
    """Fields to put on the turn the client logs for this utterance (``turn_id`` always; then any
    of ``timestamp``, ``text``, ``rewrite``, ``dialogue``, ``nlu``, ``result``); ``null``: log no turn
    for it (the service logs what the question leaves)."""
    taught: Concept | None
    """What this utterance taught, if anything."""
    fail_open: bool
    """True when nothing was decided because of an error, a timeout or a service still loading:
    ``action`` is then ``pass``."""
    reasons: list[str]
    version: str | None
    """Version of the rewriter that served the decision."""
    elapsed_us: int


class RejectedRow(BaseModel):
    index: int
    """Position of the record in the request's array (from 0)."""
    field: str
    reason: str


class TurnsResponse(BaseModel):
    """What ``POST /v1/turns`` did with a batch. With a store: ``read = stored + already_present
    + quarantined``; without one nothing is stored and ``read = accepted + quarantined``."""

    batch: str
    """Id of this batch (the ``source`` of its rows in the store)."""
    persisted: bool
    """Whether a store is configured (False: records were validated and learned, not stored)."""
    read: int
    stored: int
    already_present: int
    quarantined: int
    accepted: int
    """Valid records (stored or already present)."""
    balanced: bool
    by_table: dict[str, int]
    observed: int
    """Records fed to the personal layer (new ones only: a retried batch is not learned twice)."""
    rejected: list[RejectedRow]
    seconds: float


class HomeResponse(BaseModel):
    household_id: str
    areas: int
    entities: int
    fingerprint: str


UserId = Annotated[
    str,
    PathParam(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN, description="Pseudonymous user id."),
]


class UserForgetResponse(BaseModel):
    """What ``DELETE /v1/households/{household_id}/users/{user_id}`` deleted."""

    household_id: str
    user_id: str
    store: dict[str, int] | None
    """Rows deleted per store table (None: no store configured)."""
    quarantine_lines: int
    """Lines about the user removed from the quarantine files."""
    rebuilt_records: int
    """Records of the household's other users replayed into its personal memory."""
    not_deleted: list[str]
    """What this call cannot delete, for the record."""


class ForgetResponse(BaseModel):
    """What ``DELETE /v1/households/{id}`` deleted."""

    household_id: str
    personal_memory: bool
    """Whether this replica had learned anything about the household (now deleted)."""
    home: bool
    """Whether a registered home configuration was deleted."""
    store: dict[str, int] | None
    """Rows deleted per store table (None: no store configured)."""
    quarantine_lines: int = 0
    """Lines about the household removed from the quarantine files."""
    not_deleted: list[str]
    """What this call cannot delete, for the record."""


ConceptId = Annotated[
    str,
    PathParam(
        min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN, description="Id of a taught concept."
    ),
]


HouseholdQuery = Annotated[
    str,
    Query(
        min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN, description="Pseudonymous household id."
    ),
]


class ReviewRequest(BaseModel):
    """``POST /v1/reviews``: a person's verdict on one learned rewrite (docs/report.md). An
    ``edited`` verdict needs ``edited_target`` (not blank)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"decision": {"const": "edited"}}, "required": ["decision"]},
            "then": {
                "properties": {"edited_target": {"type": "string", "pattern": r"\S"}},
                "required": ["edited_target"],
            },
        },
    )

    pattern: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
    """The request pattern the rule rewrites (``kill the {area} lights``)."""
    target: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
    """The pattern it rewrites to."""
    decision: ReviewDecision
    """``approved``, ``rejected`` or ``edited``."""
    rule_id: Annotated[str | None, Field(max_length=MAX_TEXT_CHARS)] = None
    """The rule's id as the report shows it (a mined table rule's id, or a logged rule id)."""
    edited_target: Annotated[str | None, Field(max_length=MAX_TEXT_CHARS)] = None
    """For ``edited``: the pattern to rewrite ``pattern`` to instead."""
    reviewer: Annotated[str | None, Field(max_length=MAX_ID_CHARS)] = None

    @model_validator(mode="after")
    def _edit_has_a_target(self) -> ReviewRequest:
        if self.decision == "edited" and not (self.edited_target or "").strip():
            raise ValueError("an edit needs edited_target: the pattern to rewrite the source to")
        return self


class ReviewsResponse(BaseModel):
    """The verdicts in force (``GET /v1/reviews``), oldest first."""

    reviews: list[Review]


class LearnedItem(BaseModel):
    """One thing the household's own history makes the assistant do
    (:class:`~selflearn.dialogue.learned.Learned`)."""

    kind: LearnedKind
    said: str
    """What the household says: its word for a thing, or the request."""
    means: list[str]
    """What runs (or is substituted) in its place."""
    how: How
    """A yes to "Did you mean ...?", or the household's retries."""


class ConceptsResponse(BaseModel):
    """What ``GET /v1/concepts`` found: the household's taught concepts, oldest first."""

    household_id: str
    concepts: list[Concept]
    """Names, phrasings, routines and preferences (the store's ``concepts`` table)."""
    learned: list[LearnedItem] = []
    """What else acts in the household: the proposals it said yes to, the fixes and names its
    retries showed (the serving rewriter's personal layer; forgotten by "forget ...")."""


class ConceptForgetResponse(BaseModel):
    """What ``DELETE /v1/concepts/{concept_id}`` deleted."""

    concept_id: str
    household_id: str
    kind: str
    phrase: str
    forgotten: bool
    """Always true (an unknown id is a 404)."""


SAFE_PATH = r"^[A-Za-z0-9_./\-]+$"
"""Paths the admin endpoints take: letters, digits, ``_ . / -`` (inside their configured folder)."""


class ReloadRequest(_Body):
    folder: Annotated[str, Field(min_length=1, max_length=200, pattern=SAFE_PATH)] | None = None
    """Rewriter folder to load (default: the configured one): inside the service's models folder
    (``--models-dir``, default the configured rewriter's parent folder), else a 403; relative
    paths are relative to the service's working directory."""
    wait: StrictBool = True
    """Wait for the load to finish (False: answer 202 at once; watch ``/healthz``)."""


class SnapshotRequest(_Body):
    path: Annotated[str, Field(min_length=1, max_length=200, pattern=SAFE_PATH)]
    """New DuckDB file to write (on the service's machine; it must not exist yet): inside the
    service's snapshot folder (``--snapshot-dir``, default the store's folder), else a 403;
    relative paths are relative to the service's working directory."""


class SnapshotResponse(BaseModel):
    path: str
    rows: dict[str, int]
    """Rows per table in the snapshot."""
    seconds: float


class ReloadResponse(BaseModel):
    status: Literal["loaded", "loading"]
    version: str | None
    previous: str | None
    folder: str
    seconds: float


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"]
    reasons: list[str]
    """Why the service is degraded (empty when ok)."""
    warnings: list[str]
    version: str | None
    rewriter: dict[str, Any]
    store: str | None
    households: int
    """Households the personal layer remembers."""
    homes: int
    """Registered home configurations."""
    dialogue: dict[str, Any] = {}
    """The dialogue: whether its matcher is loaded (``ready``), questions waiting (``waiting``),
    what the start rebuilt from the store (``rebuilt``: records, concepts, declined, seconds),
    and the shape of a teaching command (``commands``: a regular expression matched against the
    text lower-cased, every character but letters, digits, ``_``, ``'`` and spaces a space,
    ``%`` said "percent", spaces collapsed; such a text goes to ``POST /v1/dialogue`` with
    ``commands_only`` before the assistant runs it)."""
    uptime_s: float


def turns_body(max_rows: int) -> dict[str, Any]:
    """The OpenAPI request body of ``POST /v1/turns``: an array of at most ``max_rows`` records.
    Each item is validated on its own (a bad one -- not an object, not a record -- is listed in
    ``rejected`` with its index, field and reason; the others are stored), so the array's items
    are not constrained here."""
    return {
        "requestBody": {
            "required": True,
            "description": "A JSON array of log records (turns, feedback and dialogue acts; see "
            "docs/log-format.md). Each record is validated on its own: bad ones are rejected with "
            "their index, field and reason, the others are stored.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "maxItems": max_rows,
                        "items": {"description": "A turn, feedback or dialogue-act record"},
                    },
                    "example": [
                        {
                            "record_type": "feedback",
                            "feedback_id": "f1",
                            "turn_id": "t1",
                            "user_id": "u1",
                            "household_id": "h1",
                            "timestamp": "2026-01-05T08:00:05Z",
                            "answer": "no",
                        }
                    ],
                }
            },
        }
    }


TURNS_BODY = turns_body(10_000)
"""The request body of ``POST /v1/turns`` with the default batch limit."""
