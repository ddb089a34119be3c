"""The layouts of the store's tables (column names and DuckDB types) and their keys.

The log tables (``turns``, ``feedback``, ``sim_truth``) are derived from the pydantic records of
:mod:`selflearn.core.schema` (:func:`record_layout`), so a field added to a record is a column of
its table without a second edit here; ``tests/test_store.py`` pins the resulting layouts. The
types are DuckDB's own: the store creates, upgrades, fills and reads its tables with no other
columnar library (rows go in as JSON lines through :mod:`selflearn.core.store.staging`).
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

import duckdb
from pydantic import BaseModel

from selflearn.core.schema import Concept, DialogueAct, Feedback, Review, Truth, Turn

if TYPE_CHECKING:
    import pyarrow as pa

_S = "VARCHAR"
_F = "DOUBLE"
_B = "BOOLEAN"
_I = "INTEGER"
_TS = "TIMESTAMP WITH TIME ZONE"

_SCALARS: dict[Any, str] = {str: _S, float: _F, bool: _B, int: _I, datetime: _TS}
"""DuckDB type of each scalar field type of the log records (integers are 32-bit, times UTC)."""

BOOKKEEPING = ("record_hash", "source")
"""Columns the store adds to every log table: the content hash of the record (idempotent
re-ingest) and the name of the file it came from."""


@dataclass(frozen=True)
class Layout:
    """The columns of one table, in order: each name with its DuckDB type."""

    columns: tuple[tuple[str, str], ...]

    @property
    def names(self) -> list[str]:
        """The column names, in order."""
        return [name for name, _ in self.columns]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.columns)

    def type_of(self, name: str) -> str:
        """The DuckDB type of column ``name`` (a ``KeyError`` for a column it does not have)."""
        for column, kind in self.columns:
            if column == name:
                return kind
        raise KeyError(name)

    def sql(self) -> str:
        """The column list of a ``CREATE TABLE``: ``"name" TYPE, ...``."""
        return ", ".join(f"{_quote(name)} {kind}" for name, kind in self.columns)

    def prepend(self, name: str, kind: str) -> Layout:
        """This layout with one more column in front."""
        return Layout(((name, kind), *self.columns))

    def arrow(self) -> pa.Schema:
        """The Arrow schema DuckDB gives these columns (strings, int32, UTC timestamps, ...), for
        the learners that build tables column-wise; needs pyarrow (``selflearn[train]``)."""
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute(f"CREATE TABLE layout ({self.sql()})")
            schema: pa.Schema = con.sql("SELECT * FROM layout").to_arrow_table().schema
        finally:
            con.close()
        return schema


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _struct(fields: list[tuple[str, str]]) -> str:
    return "STRUCT(" + ", ".join(f"{_quote(name)} {kind}" for name, kind in fields) + ")"


def column_type(annotation: Any) -> str:
    """The DuckDB type of a log-record field's type annotation.

    ``str``/``float``/``bool``/``int``/``datetime`` map to VARCHAR/DOUBLE/BOOLEAN/INTEGER/UTC
    timestamps; a ``Literal`` of strings to VARCHAR; ``X | None`` to the (nullable) type of ``X``;
    ``tuple[X, ...]`` to a list of ``X``; a nested record to a struct of its fields in model
    order; a ``dict`` (slot values) to VARCHAR, the dict stored as a JSON object in text.
    Constraints (``Annotated[...]``) do not change the type. Anything else is a ``TypeError``:
    a field the store cannot hold must be given a mapping here, not dropped.
    """
    origin = get_origin(annotation)
    if origin is Annotated:
        return column_type(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        present = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(present) == 1:
            return column_type(present[0])
    elif origin is Literal:
        if all(isinstance(value, str) for value in get_args(annotation)):
            return _S
    elif origin is tuple:
        args = get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return column_type(args[0]) + "[]"
    elif origin is dict:
        return _S  # a JSON object as text
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _struct(
            [(name, column_type(info.annotation)) for name, info in annotation.model_fields.items()]
        )
    elif annotation in _SCALARS:
        return _SCALARS[annotation]
    raise TypeError(f"no column type for the log-record field type {annotation!r}")


def record_layout(model: type[BaseModel]) -> Layout:
    """The layout of the table of one kind of log record: the record's fields in model order,
    except the ``record_type`` discriminator (the table is the type) and ``schema_version``,
    which comes last, followed by :data:`BOOKKEEPING`."""
    fields = model.model_fields
    own = [
        (name, column_type(info.annotation))
        for name, info in fields.items()
        if name not in ("record_type", "schema_version")
    ]
    version = ("schema_version", column_type(fields["schema_version"].annotation))
    return Layout((*own, version, *((name, _S) for name in BOOKKEEPING)))


TURN_SCHEMA = record_layout(Turn)
"""Layout of the ``turns`` table (``nlu.slots`` is a JSON object as text)."""

FEEDBACK_SCHEMA = record_layout(Feedback)
"""Layout of the ``feedback`` table."""

DIALOGUE_SCHEMA = record_layout(DialogueAct)
"""Layout of the ``dialogue_acts`` table (schema 1.2)."""

CONCEPT_SCHEMA = record_layout(Concept)
"""Layout of the ``concepts`` table: what users taught, one row per current concept."""

REVIEW_SCHEMA = record_layout(Review)
"""Layout of the ``reviews`` table: the latest verdict per reviewed rule."""

STATE_TABLES: dict[str, Layout] = {"concepts": CONCEPT_SCHEMA, "reviews": REVIEW_SCHEMA}
"""Tables of state the assistant keeps (not log streams): changed in place, never ingested."""

TRUTH_SCHEMA = record_layout(Truth)
"""Layout of the ``sim_truth`` table (``goal.slots`` is a JSON object as text)."""

HOME_SCHEMA = Layout((("home_id", _S), ("config", _S), ("record_hash", _S), ("source", _S)))

DEFECT_SCHEMA = Layout(
    (
        ("turn_id", _S),
        ("p_defect", _F),
        ("p_heuristic", _F),
        ("reasons", _S + "[]"),
        ("model", _S),
        ("scored_at", _TS),
    )
)
"""The ``defects`` table: per turn, P(defect) from the learned model (or the heuristic when no
model is given), the heuristic's own score, and the signals that fired."""

REPHRASE_SCHEMA = Layout(
    (
        ("turn_id", _S),
        ("rephrase_of", _S),
        ("p_rephrase", _F),
        ("model", _S),
        ("scored_at", _TS),
    )
)
"""The ``rephrases`` table: per turn, the earlier turn of its session it reformulates (null: none)
and the detector's probability for that answer."""

FPI_SCHEMA = Layout(
    (("turn_id", _S), ("failure_point", _S), ("probability", _F), ("model", _S), ("scored_at", _TS))
)
"""The ``fpi`` table: per turn, the predicted first failing stage (``correct`` if none) and its
probability (see ``docs/fpi.md``)."""

SLOT_LABEL = _struct([("slot", _S), ("value", _S), ("start", _I), ("end", _I)])
"""One labelled slot: its name, its value (as Home Assistant would get it), and the character
span of the turn's text it was said as (``start``/``end``; null when it has no span, e.g. an
area taken from the device)."""

LABEL_SCHEMA = Layout(
    (
        ("turn_id", _S),
        ("goal_id", _S),
        ("goal_success", _B),
        ("intent", _S),
        ("slots", SLOT_LABEL + "[]"),
        ("confidence", _F),
        ("source", _S),
        ("from_turn_id", _S),
        ("model", _S),
        ("scored_at", _TS),
    )
)
"""The ``labels`` table (``selflearn label``): per turn, the goal it serves (turns of one goal
share ``goal_id``), whether that goal succeeded, and the intent and slots the user meant, with a
confidence and where the label came from (``source``: ``rule:worked`` for a turn the
assistant served, ``transfer:rewrite`` for one it served after selflearn rewrote it unasked,
``transfer:confirmed`` for a rewrite the user said yes to, ``transfer:rephrase`` for a failed
turn labelled from its successful paraphrase, ``from_turn_id`` naming that turn; spans point into
what the user said, ``rewrite.original_text`` when the turn was rewritten). ``intent`` is null
when no label could be given (the goal fields still are); docs/labels.md."""

SIGNAL_TABLES: dict[str, Layout] = {
    "defects": DEFECT_SCHEMA,
    "rephrases": REPHRASE_SCHEMA,
    "fpi": FPI_SCHEMA,
    "labels": LABEL_SCHEMA,
}
"""Tables derived from the logs by the signal detectors (rewritten on every scoring run)."""

_TABLES: dict[str, tuple[str, Layout]] = {
    "turn": ("turns", TURN_SCHEMA),
    "feedback": ("feedback", FEEDBACK_SCHEMA),
    "dialogue": ("dialogue_acts", DIALOGUE_SCHEMA),
    "truth": ("sim_truth", TRUTH_SCHEMA),
    "home": ("homes", HOME_SCHEMA),
}
LOG_LAYOUTS: dict[str, Layout] = dict(_TABLES.values())
"""The layout of each table ingest writes, by table name."""

_KEY = {
    "turns": "turn_id",
    "feedback": "feedback_id",
    "dialogue_acts": "act_id",
    "sim_truth": "turn_id",
    "homes": "home_id",
    "concepts": "concept_id",
}
