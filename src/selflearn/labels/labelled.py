"""The labels of the store's ``labels`` table joined with their turns, as the exports read them
(:mod:`selflearn.labels.export`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from selflearn.core.errors import DataError
from selflearn.core.store import Store

__all__ = ["LabelSlot", "LabelledTurn", "load_labelled"]


@dataclass(frozen=True)
class LabelSlot:
    """One labelled slot (a row of ``SLOT_LABEL``)."""

    slot: str
    """Slot name as Home Assistant names it (``area``, ``name``, ``domain``, ``brightness``)."""
    value: str
    """Its value as Home Assistant would get it (an area id, a device name, ``light``, ``50``)."""
    start: int | None = None
    """Start of the span of the turn's text it was said as; ``None``: not said (implied)."""
    end: int | None = None
    """End (exclusive) of that span."""

    @property
    def said(self) -> bool:
        """Whether the slot has a span in the text."""
        return self.start is not None and self.end is not None


@dataclass(frozen=True)
class LabelledTurn:
    """One row of the ``labels`` table joined with its turn."""

    turn_id: str
    """The labelled turn."""
    household_id: str
    """Its household."""
    user_id: str
    """Its speaker."""
    text: str
    """What the user said (the spans index into it): the turn's ``text``, or what it was before
    selflearn rewrote it (``rewrite.original_text``)."""
    timestamp: datetime | None
    """When it was said."""
    device_area: str | None
    """The name of the area of the device that heard it."""
    unresolved: tuple[str, ...]
    """Names the assistant could not resolve in the turn (household nicknames)."""
    intent: str | None
    """The labelled intent; ``None``: the turn has goal labels only."""
    slots: tuple[LabelSlot, ...]
    """The labelled slots."""
    goal_id: str | None
    """The goal the turn serves (turns of one goal share it)."""
    goal_success: bool | None
    """Whether that goal succeeded."""
    confidence: float
    """Confidence of the label."""
    source: str
    """Where the label came from (``rule:worked``, ``transfer:rephrase``, ...)."""
    from_turn_id: str | None
    """The turn a transferred label came from."""

    @property
    def transferred(self) -> bool:
        """A failed turn labelled from another turn (``transfer:*``)."""
        return self.source.startswith("transfer:")


def _tables(store: Store) -> set[str]:
    return {str(row["table_name"]) for row in store.rows("SELECT table_name FROM duckdb_tables()")}


def load_labelled(store: Store, household: str | None = None) -> list[LabelledTurn]:
    """The store's labels joined with their turns, oldest first (only ``household``'s when
    given). A store without labels is a :class:`DataError` that says how to make them."""
    tables = _tables(store)
    empty = "labels" not in tables or store.value("SELECT count(*) FROM labels") == 0
    if empty:
        raise DataError(
            f"the store at {store.path} has no labels: run `selflearn label --store {store.path}` first"
        )
    if "turns" not in tables:
        raise DataError(f"the store at {store.path} has no turns for its labels")
    sql = (
        "SELECT l.turn_id, t.household_id, t.user_id, coalesce(t.rewrite.original_text, t.text) AS text, "
        "t.timestamp, t.device.area AS device_area, t.er.unresolved AS unresolved, l.intent, l.slots, "
        "l.goal_id, l.goal_success, l.confidence, "
        "l.source, l.from_turn_id FROM labels l JOIN turns t ON t.turn_id = l.turn_id"
    )
    params: list[Any] = []
    if household is not None:
        sql += " WHERE t.household_id = ?"
        params.append(household)
    rows = store.rows(sql + " ORDER BY t.timestamp, l.turn_id", params)
    return [
        LabelledTurn(
            turn_id=r["turn_id"],
            household_id=r["household_id"],
            user_id=r["user_id"],
            text=r["text"],
            timestamp=r["timestamp"],
            device_area=r["device_area"],
            unresolved=tuple(r["unresolved"] or ()),
            intent=r["intent"],
            slots=tuple(
                LabelSlot(s["slot"], "" if s["value"] is None else str(s["value"]), s["start"], s["end"])
                for s in r["slots"] or ()
            ),
            goal_id=r["goal_id"],
            goal_success=r["goal_success"],
            confidence=float(r["confidence"] or 0.0),
            source=r["source"] or "",
            from_turn_id=r["from_turn_id"],
        )
        for r in rows
    ]
