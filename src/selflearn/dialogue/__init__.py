"""The dialogue: asking before acting on a guess, being taught, and remembering both.

One implementation for every assistant selflearn serves: the reference assistant and ``selflearn
chat`` (in process), the HTTP service's ``POST /v1/dialogue`` (Home Assistant's integration) and
the Wyoming service. It knows an assistant only as a port (:class:`Port`: does this text work,
does this sentence parse, what is the home) and answers with a :class:`Step` (run this text, say
this, ask this and listen, or nothing); the assistant carries it out.

* :mod:`~selflearn.dialogue.replies` -- what "yes", "no" and "never mind" mean; how it asks;
* :mod:`~selflearn.dialogue.concepts` -- what users teach (names, phrasings, routines,
  preferences), the definition grammar, the nag budget;
* :mod:`~selflearn.dialogue.questions` -- a question waiting for its answer, and its records;
* :mod:`~selflearn.dialogue.learned` -- what can act in a household, whoever learned it
  (:class:`Learned`), and how a rewriter that learns on its own says and forgets it
  (:class:`Remembers`);
* :mod:`~selflearn.dialogue.engine` -- the decisions (:class:`Dialogue`);
* :mod:`~selflearn.dialogue.conversations` -- the questions waiting per household and
  conversation, for a service that talks to many (:class:`Conversations`), rebuilt from a store.
"""

from __future__ import annotations

from selflearn.dialogue.concepts import Applied, Command, ConceptBook, TeachBudget, describe, read_command
from selflearn.dialogue.conversations import Conversations, Exchange, request_turn
from selflearn.dialogue.engine import (
    UNPARSABLE,
    Action,
    Dialogue,
    Heard,
    Port,
    Said,
    Step,
    Teaching,
    Works,
    gap_words,
    taught_trace,
)
from selflearn.dialogue.learned import Learned, Remembers
from selflearn.dialogue.questions import Question, asking_turn, expiry, replace_trace
from selflearn.dialogue.replies import MAX_REPLY_WORDS, REPLY_SENTENCES, DialogueConfig, Reply, read_reply

__all__ = [
    "MAX_REPLY_WORDS",
    "REPLY_SENTENCES",
    "UNPARSABLE",
    "Action",
    "Applied",
    "Command",
    "ConceptBook",
    "Conversations",
    "Dialogue",
    "DialogueConfig",
    "Exchange",
    "Heard",
    "Learned",
    "Port",
    "Question",
    "Remembers",
    "Reply",
    "Said",
    "Step",
    "TeachBudget",
    "Teaching",
    "Works",
    "asking_turn",
    "describe",
    "expiry",
    "gap_words",
    "read_command",
    "read_reply",
    "replace_trace",
    "request_turn",
    "taught_trace",
]
