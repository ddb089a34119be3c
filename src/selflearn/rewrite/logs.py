"""The rewriter's view of the logs: one :class:`LogTurn` per stored turn, in arrival order.

Everything the rewriter learns comes from these rows: what was said (before any rewrite), what
the NLU made of it, whether the defect detector thinks it failed, and which earlier turn it
reformulates (``selflearn signals`` writes both). Simulation truth is never read.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from selflearn.core.delex import Delexicalized
from selflearn.core.errors import DataError
from selflearn.core.home import Home, normalize_name
from selflearn.core.schema import Feedback, SlotValue, Turn
from selflearn.core.store import Store

LOG_SQL = """
SELECT t.turn_id, t.session_id, t.user_id, t.household_id, t.timestamp AS ts,
       coalesce(t.rewrite.original_text, t.text) AS said,
       t.rewrite.rewritten_text AS rewritten, t.rewrite.rule_id AS rule_id, t.rewrite.layer AS layer,
       t.nlu.intent AS intent, t.nlu.slots AS slots, t.result.status AS status,
       t.er.unresolved AS unresolved,
       list_transform(t.er.resolved, lambda x: x.name) AS resolved,
       t.device.area AS area, coalesce(t.barge_in.occurred, false) AS barge_in,
       d.p_defect AS p_defect, r.rephrase_of AS rephrase_of
FROM turns t
JOIN defects d ON d.turn_id = t.turn_id
LEFT JOIN rephrases r ON r.turn_id = t.turn_id
WHERE coalesce(t.nlu.matcher, '') NOT IN ('teach', 'taught') {where}
ORDER BY t.household_id, t.timestamp, t.turn_id
"""

FIXED_SLOTS = frozenset({"domain", "device_class", "state"})
"""Slots whose literal values are part of an interpretation (``domain=light``); other values
that do not come from the request's placeholders are abstracted, so no household's words end
up in a signature."""


@dataclass(frozen=True)
class LogTurn:
    """One logged turn as the rewriter learns from it."""

    turn_id: str
    session_id: str
    user_id: str
    household_id: str
    ts: datetime
    said: str
    """What the user said (the recognised text before any rewrite)."""
    rewritten: str | None
    """What the NLU was given instead, if a rewrite was applied."""
    intent: str | None
    slots: dict[str, SlotValue]
    status: str | None
    unresolved: tuple[str, ...]
    resolved: tuple[str, ...]
    """Configured names of the entities the request was resolved to."""
    area: str | None
    """Area of the device that heard it."""
    barge_in: bool
    """Whether the user interrupted the response."""
    defect: bool
    """The defect detector's verdict (P(defect) >= threshold)."""
    rephrase_of: str | None
    rule_id: str | None = None
    """The applied rewrite's rule (:attr:`~selflearn.core.schema.RewriteTrace.rule_id`: a table
    row's id for the ``precomputed`` layer), if a rewrite was applied and named one."""
    layer: str | None = None
    """The layer of the applied rewrite (``precomputed``, ``global``, ``personal``), if any."""

    @classmethod
    def from_turn(cls, turn: Turn, defect: bool, rephrase_of: str | None = None) -> LogTurn:
        """A log turn from a :class:`~selflearn.core.schema.Turn` record and the caller's verdict."""
        return cls(
            turn_id=turn.turn_id,
            session_id=turn.session_id,
            user_id=turn.user_id,
            household_id=turn.household_id,
            ts=turn.timestamp,
            said=turn.rewrite.original_text if turn.rewrite else turn.text,
            rewritten=turn.rewrite.rewritten_text if turn.rewrite else None,
            intent=turn.nlu.intent if turn.nlu else None,
            slots=dict(turn.nlu.slots) if turn.nlu else {},
            status=turn.result.status if turn.result else None,
            unresolved=turn.er.unresolved if turn.er else (),
            resolved=tuple(t.name for t in turn.er.resolved) if turn.er else (),
            area=turn.device.area,
            barge_in=turn.barge_in.occurred,
            defect=defect,
            rephrase_of=rephrase_of,
            rule_id=turn.rewrite.rule_id if turn.rewrite else None,
            layer=turn.rewrite.layer if turn.rewrite else None,
        )


def read_log(
    store: Store, defect_threshold: float = 0.5, households: list[str] | None = None
) -> list[LogTurn]:
    """Every turn with its defect and rephrase signals, ordered by household and time.

    Raises :class:`DataError` when the signals have not been computed (run ``selflearn signals``).
    """
    if store.count("turns") > 0:
        for table in ("defects", "rephrases"):
            if store.value(f"SELECT count(*) FROM {table}") == 0:
                raise DataError(f"the store has no {table} signals yet: run `selflearn signals` first")
    where = ""
    params: list[Any] = []
    if households is not None:
        where = "AND t.household_id IN (SELECT unnest(?))"
        params = [households]
    rows = store.rows(LOG_SQL.format(where=where), params)
    return [_log_turn(row, defect_threshold) for row in rows]


def _log_turn(row: dict[str, Any], threshold: float) -> LogTurn:
    slots_raw = row["slots"]
    try:
        slots = json.loads(slots_raw) if slots_raw else {}
    except ValueError as exc:
        raise DataError(f"turn {row['turn_id']}: field nlu.slots is not a JSON object: {exc}") from exc
    p_defect = row["p_defect"]
    return LogTurn(
        turn_id=row["turn_id"],
        session_id=row["session_id"],
        user_id=row["user_id"],
        household_id=row["household_id"],
        ts=row["ts"],
        said=row["said"] or "",
        rewritten=row["rewritten"],
        intent=row["intent"],
        slots=slots if isinstance(slots, dict) else {},
        status=row["status"],
        unresolved=tuple(row["unresolved"] or ()),
        resolved=tuple(row["resolved"] or ()),
        area=row["area"],
        barge_in=bool(row["barge_in"]),
        defect=p_defect is not None and p_defect >= threshold,
        rephrase_of=row["rephrase_of"],
        rule_id=row["rule_id"],
        layer=row["layer"],
    )


def read_homes(store: Store) -> dict[str, Home]:
    """The stored home configurations by household id (:meth:`Store.homes`)."""
    return store.homes()


def signature(intent: str | None, slots: dict[str, SlotValue], d: Delexicalized) -> str | None:
    """The interpretation of a request that worked, with the request's own values abstracted:
    ``HassTurnOff|area={area}|domain=light``. Two phrasings with the same signature did the same
    thing to the same (placeholder) targets; ``None`` when the NLU matched nothing."""
    if not intent:
        return None
    spoken = {normalize_name(value): kind for kind, value in d.values}
    has_number = "number" in spoken.values()
    words = set(d.pattern.split())
    parts = [intent]
    for key in sorted(slots):
        value = slots[key]
        if isinstance(value, bool) or value is None:
            text = str(value).lower()
        elif isinstance(value, int | float) and has_number:
            text = "{number}"
        else:
            norm = normalize_name(str(value))
            kind = spoken.get(norm)
            if kind is not None:
                text = "{" + kind + "}"
            elif key in FIXED_SLOTS or (norm and set(norm.split()) <= words):
                text = norm
            else:
                text = "{other}"
        parts.append(f"{key}={text}")
    return "|".join(parts)


def chains(turns: list[LogTurn]) -> Iterator[tuple[LogTurn, LogTurn | None]]:
    """For every failed turn, the first later turn of its reformulation chain that worked (or
    None), following ``rephrase_of`` links forward (at most 8 steps)."""
    by_id = {t.turn_id: t for t in turns}
    nxt: dict[str, str] = {}
    for t in turns:
        if t.rephrase_of is not None and t.rephrase_of in by_id and t.rephrase_of not in nxt:
            nxt[t.rephrase_of] = t.turn_id
    for t in turns:
        if not t.defect:
            continue
        cur = t.turn_id
        fixed: LogTurn | None = None
        for _ in range(8):
            step = nxt.get(cur)
            if step is None:
                break
            later = by_id[step]
            if not later.defect:
                fixed = later
                break
            cur = step
        yield t, fixed


def history(
    store: Store, since: datetime | None = None, household_id: str | None = None
) -> Iterator[Turn | Feedback]:
    """The store's turns and explicit feedback in arrival order (``since``: from then on;
    ``household_id``: one home's only): what a rewriter's personal layer observes to rebuild what
    households taught it (their names, fixes and answers to "Did you mean ...?") after a restart."""
    clauses = []
    if since is not None:
        clauses.append(f"timestamp >= TIMESTAMPTZ '{since.isoformat()}'")
    if household_id is not None:
        escaped = household_id.replace("'", "''")
        clauses.append(f"household_id = '{escaped}'")
    where = " AND ".join(clauses) or None
    turns: Iterator[tuple[datetime, int, Turn | Feedback]] = ((t.timestamp, 0, t) for t in store.turns(where))
    sql = (
        "SELECT feedback_id, turn_id, user_id, household_id, timestamp, question, answer, schema_version "
        "FROM feedback"
    )
    if where:
        sql += f" WHERE {where}"
    rows = store.rows(sql + " ORDER BY timestamp, feedback_id")
    feedback = ((r["timestamp"], 1, Feedback.model_validate(r)) for r in rows)
    for _, _, record in heapq.merge(turns, feedback, key=lambda x: (x[0], x[1])):
        yield record
