"""Label transfer (MARUPA): a failed turn learns what it meant from the turn that worked.

Two kinds of evidence say what a failed request meant, both from the logs alone:

* **a successful paraphrase** (``transfer:rephrase``): a turn that failed (``p_defect >=
  min_defect``) whose goal later succeeded gets the intent and slots of the goal's last turn,
  the one that worked (``from_turn_id``), when that turn was served with an interpretation of
  its own (:func:`selflearn.labels.rules.own_label`);
* **a confirmed proposal** (``transfer:confirmed``): a turn whose "Did you mean ...?" the user
  answered yes gets the proposal's interpretation. The reference assistant logs such a turn with
  the proposal run in its place (``Turn.rewrite`` holds what the user said, ``Turn.nlu`` the
  proposal's interpretation); for an assistant that logs only the :class:`DialogueAct`, the
  interpretation of a served turn of the same household whose text is the proposal is used.

The slots are placed in the failed turn's own words (:func:`selflearn.labels.spans.project_slots`).

Guards, as the miner has them (:mod:`selflearn.core.guards`, on the two utterances
delexicalized with the home's names): no transfer when the paraphrase takes the opposite side
of an action ("turn on the kitchen light" failed, "turn off the kitchen light" worked: that is
another goal, not a paraphrase), does another action or acts on another kind of thing, or drops
when ("... tomorrow morning" -> "..."). The turn then stays without a label.

Confidence (``docs/labels.md``):

* ``transfer:rephrase``: ``P(link) * (1 - p_defect(worked)) * span_factor``, where ``P(link)``
  is the product of the P(rephrase) of the links between the two turns;
* ``transfer:confirmed``: ``CONFIRM_TRUST * (1 - p_defect(run)) * span_factor``.

``span_factor = (1 + share of the slots placed) / 2`` (:func:`selflearn.labels.rules.span_factor`).
"""

from __future__ import annotations

from collections.abc import Mapping

from selflearn.core.delex import Delexicalizer
from selflearn.core.guards import changes_action, changes_object, drops_time, flips_polarity
from selflearn.core.home import Home, normalize_name
from selflearn.labels.rules import (
    MIN_DEFECT,
    Goals,
    Interpretation,
    LoggedTurn,
    defective,
    served,
    span_factor,
)
from selflearn.labels.spans import project_slots

CONFIRM_TRUST = 0.97
"""How far a yes to "Did you mean ...?" is trusted: people answer truthfully about 97 % of the
time (the weight :mod:`selflearn.signals.defect` gives an explicit answer)."""


def blocked(failed: str, worked: str, delex: Delexicalizer | None = None) -> str | None:
    """Why the interpretation of utterance ``worked`` must not be transferred to ``failed``, or
    None: the first of the guards that fires on the two delexicalized patterns."""
    d = delex or Delexicalizer()
    source, target = d(failed).pattern, d(worked).pattern
    if flips_polarity(source, target):
        return "opposite action"
    if changes_action(source, target):
        return "another action"
    if changes_object(source, target):
        return "another kind of thing"
    if drops_time(source, target):
        return "drops when"
    return None


def confirmed_label(
    turn: LoggedTurn,
    home: Home | None = None,
    served_texts: Mapping[tuple[str, str], LoggedTurn] | None = None,
) -> Interpretation | None:
    """The ``transfer:confirmed`` label of a turn whose user said yes to a proposal
    (:attr:`LoggedTurn.confirmed`): the interpretation the turn logged for the proposal, or that
    of a served turn of the household saying the proposal (``served_texts``: (household,
    normalised text) -> turn). None when the turn was not confirmed or no interpretation is
    known."""
    if turn.confirmed is None:
        return None
    proposal = normalize_name(turn.confirmed)
    source: LoggedTurn | None = None
    if turn.matched and turn.intent is not None and normalize_name(turn.text) == proposal:
        source = turn
    elif served_texts is not None:
        source = served_texts.get((turn.household_id, proposal))
    if source is None or source.intent is None:
        return None
    spans = project_slots(turn.said, source.slots, home, turn.device_area)
    confidence = CONFIRM_TRUST * (1.0 - (source.p_defect or 0.0)) * span_factor(spans)
    from_turn = None if source is turn else source.turn_id
    return Interpretation(source.intent, spans, confidence, "transfer:confirmed", from_turn)


def rephrase_label(
    turn: LoggedTurn,
    goals: Goals,
    turns: Mapping[str, LoggedTurn],
    own: Mapping[str, Interpretation],
    home: Home | None = None,
    delex: Delexicalizer | None = None,
    min_defect: float = MIN_DEFECT,
) -> Interpretation | str | None:
    """The ``transfer:rephrase`` label of a failed ``turn`` whose goal succeeded: the
    interpretation of the goal's last turn (``own``: turn id -> its own label). Returns the
    guard's reason (a string) when a guard blocks the transfer, None when there is nothing to
    transfer (the turn did not fail, its goal did not succeed, or the turn that worked has no
    interpretation)."""
    if defective(turn, min_defect) is not True:
        return None
    goal = goals.goals[goals.of[turn.turn_id]]
    if not goal.success or goal.last == turn.turn_id:
        return None
    worked = turns[goal.last]
    source = own.get(worked.turn_id)
    if source is None or not (served(worked, min_defect) or worked.confirmed is not None):
        return None
    reason = blocked(turn.said, worked.text, delex)
    if reason is not None:
        return reason
    p_link = goals.link_probability(turn.turn_id, worked.turn_id) or 0.0
    spans = project_slots(turn.said, dict(_values(source)), home, turn.device_area)
    confidence = p_link * (1.0 - (worked.p_defect or 0.0)) * span_factor(spans)
    return Interpretation(source.intent, spans, confidence, "transfer:rephrase", worked.turn_id)


def _values(source: Interpretation) -> list[tuple[str, str]]:
    return [(s.slot, s.value) for s in source.slots]
