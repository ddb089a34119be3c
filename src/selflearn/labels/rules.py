"""The rule baseline of ``selflearn label``: what the logs say about each turn, goals, goal
success, and the labels of the turns the assistant served itself.

* :func:`read_logged` reads, per turn, what the rules need: the text, what the NLU made of it,
  the result, the rewrite and dialogue traces, and the two signals ``selflearn signals`` wrote
  (``defects``: P(defect); ``rephrases``: which earlier turn it reformulates, with what
  probability). Simulation truth (``sim_truth``) is never read.
* :func:`segment_goals`: a turn that rephrases an earlier one (``p_rephrase >= min_rephrase``)
  joins that turn's goal; any other turn starts a goal of its own, named after it. A goal
  succeeded when its last turn is not a defect (``p_defect < min_defect``, the miner's
  threshold).
* :func:`own_label`: a turn the assistant served (the NLU matched an intent, the result was a
  success, and it is not a defect) is labelled with the NLU's own interpretation
  (``rule:worked``); when selflearn rewrote it first, the interpretation is the rewrite's
  (``transfer:rewrite``) or, when the user said yes to "Did you mean ...?", the confirmed
  proposal's (``transfer:confirmed``, see :mod:`selflearn.labels.transfer`).

``docs/labels.md`` explains the rules, their confidence and their limits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from selflearn.core.errors import DataError
from selflearn.core.home import Home
from selflearn.core.schema import SlotValue
from selflearn.core.store import Store
from selflearn.labels.spans import SlotSpan, placed_share, project_slots

MIN_REPHRASE = 0.5
"""A turn joins the goal of the turn it rephrases when the detector's P(rephrase) is at least
this."""

MIN_DEFECT = 0.5
"""A turn counts as failed when its P(defect) is at least this (the miner's
``MiningConfig.defect_threshold``)."""

SOURCES = ("rule:worked", "transfer:rewrite", "transfer:confirmed", "transfer:rephrase")
"""Where a label can come from, in the order they are tried (a labeller model adds
``model:<name>``)."""


@dataclass(frozen=True)
class LoggedTurn:
    """What the logs and the signals say about one turn (all the labeller reads)."""

    turn_id: str
    session_id: str
    household_id: str
    timestamp: datetime
    text: str
    """The text the NLU was given (after any rewrite)."""
    said: str
    """What the user said: ``rewrite.original_text`` when selflearn rewrote the turn, else
    ``text``. Slot spans index into this."""
    rewritten: bool
    """Whether a rewrite was applied before the NLU."""
    device_area: str | None
    matched: bool
    intent: str | None
    slots: Mapping[str, SlotValue]
    status: str | None
    """The result status (``success``, ``error``, ``no_match``, ``unsupported``, ``question``)."""
    confirmed: str | None
    """The proposal the user said yes to, when this turn asked "Did you mean ...?" and the
    answer was yes (from ``Turn.dialogue`` or the ``dialogue_acts`` table)."""
    p_defect: float | None
    """P(defect) from the ``defects`` table (None: the turn was not scored)."""
    rephrase_of: str | None
    """The earlier turn this one reformulates, by the ``rephrases`` table."""
    p_rephrase: float | None
    """The detector's probability for that link."""


@dataclass(frozen=True)
class Goal:
    """Turns of one goal: the first turn and every turn linked to it by rephrases."""

    goal_id: str
    """The id of the goal's first turn."""
    turn_ids: tuple[str, ...]
    """Its turns, in time order."""
    success: bool | None
    """Whether the last turn is not a defect (None: the last turn was not scored)."""

    @property
    def last(self) -> str:
        """The goal's last turn."""
        return self.turn_ids[-1]


@dataclass
class Goals:
    """The goal segmentation of a store's turns (:func:`segment_goals`)."""

    of: dict[str, str] = field(default_factory=dict)
    """Turn id -> its goal's id."""
    goals: dict[str, Goal] = field(default_factory=dict)
    """Goal id -> the goal."""
    parent: dict[str, tuple[str, float]] = field(default_factory=dict)
    """Turn id -> (the turn it rephrases, P(rephrase)) for the links that joined two turns."""

    def link_probability(self, a: str, b: str) -> float | None:
        """The product of the P(rephrase) of the links between turns ``a`` and ``b`` of one goal
        (through their nearest common ancestor), or None when they are not of one goal."""
        up_a = self._ancestors(a)
        up_b = self._ancestors(b)
        common = [(pa * up_b[turn], turn) for turn, pa in up_a.items() if turn in up_b]
        return max(common)[0] if common else None

    def _ancestors(self, turn: str) -> dict[str, float]:
        out = {turn: 1.0}
        p = 1.0
        while turn in self.parent:
            turn, link = self.parent[turn]
            if turn in out:  # a cycle in hand-made signals: stop
                break
            p *= link
            out[turn] = p
        return out


def defective(turn: LoggedTurn, min_defect: float = MIN_DEFECT) -> bool | None:
    """Whether the turn failed by its P(defect) (None: not scored)."""
    return None if turn.p_defect is None else turn.p_defect >= min_defect


def served(turn: LoggedTurn, min_defect: float = MIN_DEFECT) -> bool:
    """The assistant understood and did it: the NLU matched an intent, the result was a
    success, and the defect signal does not say it failed."""
    ok = turn.matched and turn.intent is not None and turn.status == "success"
    return ok and defective(turn, min_defect) is False


def segment_goals(
    turns: Sequence[LoggedTurn], min_rephrase: float = MIN_REPHRASE, min_defect: float = MIN_DEFECT
) -> Goals:
    """Group ``turns`` (in time order) into goals: a turn that rephrases an earlier turn of the
    store with P(rephrase) >= ``min_rephrase`` joins that turn's goal, any other starts one
    named after itself; a goal succeeded when its last turn is not a defect."""
    by_id = {t.turn_id: t for t in turns}
    out = Goals()
    members: dict[str, list[str]] = {}
    for turn in turns:
        goal = turn.turn_id
        parent = turn.rephrase_of
        if (
            parent is not None
            and parent != turn.turn_id
            and parent in out.of  # an earlier turn (time order), so links never form a cycle
            and turn.p_rephrase is not None
            and turn.p_rephrase >= min_rephrase
        ):
            goal = out.of[parent]
            out.parent[turn.turn_id] = (parent, float(turn.p_rephrase))
        out.of[turn.turn_id] = goal
        members.setdefault(goal, []).append(turn.turn_id)
    for goal_id, ids in members.items():
        failed = defective(by_id[ids[-1]], min_defect)
        out.goals[goal_id] = Goal(goal_id, tuple(ids), None if failed is None else not failed)
    return out


# --- reading the store ----------------------------------------------------------------------------

_TURNS_SQL = """
SELECT t.turn_id, t.session_id, t.household_id, t.timestamp AS ts, t.text,
       t.rewrite.original_text AS original_text, t.device.area AS device_area,
       t.nlu.matched AS matched, t.nlu.intent AS intent, t.nlu.slots AS slots,
       t.result.status AS status,
       CASE WHEN t.dialogue.kind = 'confirm' AND t.dialogue.role = 'question'
                 AND t.dialogue.answer = 'yes'
            THEN coalesce(t.dialogue.proposal, t.rewrite.rewritten_text, t.text) END AS confirmed,
       d.p_defect, r.rephrase_of, r.p_rephrase
FROM turns t
LEFT JOIN defects d ON d.turn_id = t.turn_id
LEFT JOIN rephrases r ON r.turn_id = t.turn_id
ORDER BY t.timestamp, t.turn_id
"""


def check_signals(store: Store, store_name: str = "STORE") -> int:
    """The number of turns, after checking that ``selflearn signals`` has scored them: a
    :class:`DataError` saying what to run when a turn has no defect or rephrase signal."""
    counts = store.rows(
        "SELECT count(*) AS turns, count(d.turn_id) AS defects, count(r.turn_id) AS rephrases "
        "FROM turns t LEFT JOIN defects d ON d.turn_id = t.turn_id "
        "LEFT JOIN rephrases r ON r.turn_id = t.turn_id"
    )[0]
    turns = int(counts["turns"])
    missing = [name for name in ("defects", "rephrases") if int(counts[name]) < turns]
    if missing:
        unscored = turns - min(int(counts["defects"]), int(counts["rephrases"]))
        raise DataError(
            f"the store has {turns:,} turns, {unscored:,} of them without "
            f"{' or '.join(missing)} signals: run `selflearn signals --store {store_name}` "
            "before `selflearn label`"
        )
    return turns


def read_logged(store: Store) -> list[LoggedTurn]:
    """Every stored turn with its signals, in time order (never reads ``sim_truth``)."""
    confirmed = _confirmed_acts(store)
    out = []
    for row in store.rows(_TURNS_SQL):
        slots = json.loads(row["slots"]) if row["slots"] else {}
        out.append(
            LoggedTurn(
                turn_id=row["turn_id"],
                session_id=row["session_id"],
                household_id=row["household_id"],
                timestamp=row["ts"],
                text=row["text"],
                said=row["original_text"] if row["original_text"] is not None else row["text"],
                rewritten=row["original_text"] is not None,
                device_area=row["device_area"],
                matched=bool(row["matched"]),
                intent=row["intent"],
                slots=slots if isinstance(slots, dict) else {},
                status=row["status"],
                confirmed=row["confirmed"] or confirmed.get(row["turn_id"]),
                p_defect=row["p_defect"],
                rephrase_of=row["rephrase_of"],
                p_rephrase=row["p_rephrase"],
            )
        )
    return out


def _confirmed_acts(store: Store) -> dict[str, str]:
    """Asking turn -> the proposal its user said yes to, from the ``dialogue_acts`` table (for
    assistants that log the act but not the turn's dialogue trace)."""
    acts = store.dialogue_acts("kind = 'confirm' AND answer = 'yes' AND proposal IS NOT NULL")
    return {str(act["turn_id"]): act["proposal"] for act in acts}


# --- the labels of served turns -------------------------------------------------------------------


@dataclass(frozen=True)
class Interpretation:
    """An intent with its slots placed in a turn's text: what a label says the user meant."""

    intent: str
    """Home Assistant intent name."""
    slots: tuple[SlotSpan, ...]
    """The slots, with their spans in the labelled turn's ``said`` text."""
    confidence: float
    """How much to trust the label (see ``docs/labels.md``)."""
    source: str
    """Where it came from (:data:`SOURCES`, or ``model:<name>``)."""
    from_turn_id: str | None = None
    """The other turn whose interpretation it is (None: the turn's own log)."""


def span_factor(spans: Sequence[SlotSpan]) -> float:
    """The confidence factor of a label's slot placement: ``(1 + share placed) / 2`` -- a label
    whose slots were all placed keeps its confidence, one with none placed keeps half."""
    return 0.5 + 0.5 * placed_share(spans)


def own_label(
    turn: LoggedTurn, home: Home | None = None, min_defect: float = MIN_DEFECT
) -> Interpretation | None:
    """The label of a turn the assistant served (:func:`served`): the NLU's interpretation with
    its slots placed in what the user said, confidence ``(1 - p_defect) * span_factor``;
    ``rule:worked``, or ``transfer:rewrite`` when a rewrite was applied (the NLU interpreted the
    rewrite, not the user's words). None for any other turn."""
    if not served(turn, min_defect) or turn.intent is None:
        return None
    spans = project_slots(turn.said, turn.slots, home, turn.device_area)
    confidence = (1.0 - (turn.p_defect or 0.0)) * span_factor(spans)
    return Interpretation(
        turn.intent, spans, confidence, "transfer:rewrite" if turn.rewritten else "rule:worked"
    )
