"""The pydantic bodies of the service's requests and responses, and the OpenAPI example of
``POST /v1/turns``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path as PathParam
from fastapi import Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from selflearn.core.schema import (
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    Concept,
    DeviceContext,
    Review,
    ReviewDecision,
    RewriteTrace,
)
from selflearn.service.config import ID_PATTERN, MAX_NBEST_ITEMS

Hypothesis = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]

HouseholdId = Annotated[
    str,
    PathParam(
        min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN, description="Pseudonymous household id."
    ),
]


# --- request and response bodies -------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


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
    timestamp: AwareDatetime | None = None
    """When the request was spoken, with a timezone (default: now)."""
    device: DeviceContext | None = None
    """The device context, as in the log schema."""
    home: dict[str, Any] | None = None
    """The home's configuration for this request only (the shape of ``PUT /v1/homes``); default:
    the home registered for the household, if any."""
    failed: bool | None = None
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
    timestamp: AwareDatetime | None = None
    """When it was said, with a timezone (default: now)."""
    device: DeviceContext | None = None
    """The device context, as in the log schema."""
    home: dict[str, Any] | None = None
    """The home's configuration for this request only (default: the household's registered one)."""
    failed: bool | None = None
    """Whether the assistant already ran ``text`` and failed (``true``) or worked (``false``);
    default: not run yet (the service's copy of Home Assistant's matcher decides)."""
    nbest: Annotated[list[Hypothesis], Field(max_length=MAX_NBEST_ITEMS)] = []
    """The recogniser's other hypotheses, best first."""
    typed: bool = False
    """Typed rather than spoken (no misrecognitions: a word it fails on once is worth asking about)."""
    turn: dict[str, Any] | None = None
    """The client's turn record of this utterance as it stands (the log schema): should the
    service ask, it keeps this record and logs it as the asking turn when the question ends."""


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


class ForgetResponse(BaseModel):
    """What ``DELETE /v1/households/{id}`` deleted."""

    household_id: str
    personal_memory: bool
    """Whether this replica had learned anything about the household (now deleted)."""
    home: bool
    """Whether a registered home configuration was deleted."""
    store: dict[str, int] | None
    """Rows deleted per store table (None: no store configured)."""
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
    """``POST /v1/reviews``: a person's verdict on one learned rewrite (docs/report.md)."""

    model_config = ConfigDict(extra="forbid")

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


class ReviewsResponse(BaseModel):
    """The verdicts in force (``GET /v1/reviews``), oldest first."""

    reviews: list[Review]


class ConceptsResponse(BaseModel):
    """What ``GET /v1/concepts`` found: the household's taught concepts, oldest first."""

    household_id: str
    concepts: list[Concept]
    """Names, phrasings, routines and preferences (the store's ``concepts`` table)."""


class ConceptForgetResponse(BaseModel):
    """What ``DELETE /v1/concepts/{concept_id}`` deleted."""

    concept_id: str
    household_id: str
    kind: str
    phrase: str
    forgotten: bool
    """Always true (an unknown id is a 404)."""


class ReloadRequest(_Body):
    folder: str | None = None
    """Rewriter folder to load (default: the configured one)."""
    wait: bool = True
    """Wait for the load to finish (False: answer 202 at once; watch ``/healthz``)."""


class SnapshotRequest(_Body):
    path: Annotated[str, Field(min_length=1, max_length=4096)]
    """New DuckDB file to write (on the service's machine; it must not exist yet)."""


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
    and what the start rebuilt from the store (``rebuilt``: records, concepts, declined, seconds)."""
    uptime_s: float


TURNS_BODY = {
    "requestBody": {
        "required": True,
        "description": "A JSON array of log records (turns and feedback; see docs/log-format.md). "
        "Each record is validated on its own: bad ones are rejected with their index, field and "
        "reason, the others are stored.",
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": {"type": "object"}},
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
