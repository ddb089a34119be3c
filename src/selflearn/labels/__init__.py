"""Ground truth from feedback (issue 30): goal, goal-success, intent and slot labels for logged
turns, label transfer from successful paraphrases, and exports a person reviews and installs.

* :mod:`~selflearn.labels.rules` -- what the logs say per turn, goal segmentation and success,
  the labels of the turns the assistant served;
* :mod:`~selflearn.labels.spans` -- where in a turn's words each slot value was said;
* :mod:`~selflearn.labels.transfer` -- label transfer from a successful paraphrase or a confirmed
  proposal, with the miner's guards;
* :mod:`~selflearn.labels.labeler` -- :func:`label_store`, which writes the ``labels`` table
  (``selflearn label``; ``docs/labels.md``).
"""

from selflearn.labels.labeler import (
    LABEL_STAGES,
    RULES_NAME,
    Label,
    Labeler,
    LabelReport,
    label_store,
    label_turns,
)
from selflearn.labels.rules import (
    MIN_DEFECT,
    MIN_REPHRASE,
    SOURCES,
    Goal,
    Goals,
    Interpretation,
    LoggedTurn,
    own_label,
    read_logged,
    segment_goals,
)
from selflearn.labels.slots import fill_slots
from selflearn.labels.spans import SlotSpan, placed_share, project_slots, surface_forms
from selflearn.labels.transfer import CONFIRM_TRUST, blocked, confirmed_label, rephrase_label

__all__ = [
    "CONFIRM_TRUST",
    "LABEL_STAGES",
    "MIN_DEFECT",
    "MIN_REPHRASE",
    "RULES_NAME",
    "SOURCES",
    "Goal",
    "Goals",
    "Interpretation",
    "Label",
    "LabelReport",
    "Labeler",
    "LoggedTurn",
    "SlotSpan",
    "blocked",
    "confirmed_label",
    "fill_slots",
    "label_store",
    "label_turns",
    "own_label",
    "placed_share",
    "project_slots",
    "read_logged",
    "rephrase_label",
    "segment_goals",
    "surface_forms",
]
