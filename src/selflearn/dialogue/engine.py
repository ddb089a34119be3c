"""The dialogue's decisions: what an utterance is (a request, a teaching command, the answer to a
waiting question) and what to do about it -- run a text, say something, ask, or nothing.

:class:`Dialogue` never runs anything itself. It knows an assistant only as a :class:`Port` (does
this text work as said, does this sentence parse, what is the home) and answers with a
:class:`Step`; the assistant carries it out and logs it. One implementation serves the reference
assistant (:mod:`selflearn.assistant.pipeline`), ``selflearn chat``, the HTTP service
(``POST /v1/dialogue``, for Home Assistant) and the Wyoming service, so a question, a *yes* or a
lesson means the same everywhere.

For a request, in order (:meth:`Dialogue.consider`):

1. a teaching command ("the big light is the living room ceiling", "when I say ...", "my usual
   temperature is 21", "what have you learned", "forget big light") is answered
   (:meth:`Dialogue.command`);
2. unless the assistant understands the request exactly, a taught concept it uses runs in its
   place (one sentence, or a routine's);
3. the rewriter is asked (before the NLU, or only when the NLU failed): its rewrite runs, or,
   when it wants it confirmed and the assistant can ask, the assistant asks "Did you mean ...?"
   -- only when the proposal works in this home (:meth:`Port.works`). Neither a taught concept
   nor a rewrite ever runs or is asked about when it would do the opposite of what was said
   (:func:`opposite`);
4. otherwise nothing: the assistant answers as it would alone. When that fails on words the home
   lacks, :meth:`Dialogue.after_failure` may ask to be taught (within the :class:`TeachBudget`).

The answer to a waiting question (:meth:`Dialogue.answer`): *yes* runs the proposal; *no* asks
"What did you want?" (and, about a lesson, is never asked again); *never mind* drops it; a
definition of the words asked about teaches a concept and runs the request with it; anything
else -- a teaching command about something else included -- ends the question and is a new
request. What can act in a household is listed, and forgotten, in one place
(:meth:`Dialogue.learned`, :meth:`Dialogue.forget`). The rules, and where each is enforced:
docs/dialogue.md#the-rules-of-the-exchange.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from selflearn.core.guards import OBJECT_WORDS, flips_polarity, is_sensitive, named_on_off_meaning, polarity
from selflearn.core.home import Home
from selflearn.core.hooks import Confirm, RewriteContext, RewriteHook
from selflearn.core.schema import (
    Concept,
    DeviceContext,
    DialogueAct,
    DialogueAnswer,
    DialogueKind,
    RewriteTrace,
    SlotValue,
    Turn,
)
from selflearn.dialogue.concepts import (
    COMMAND_VERBS,
    LEAD,
    PREFERENCE_INTENTS,
    SEPARATORS,
    Applied,
    Command,
    ConceptBook,
    TeachBudget,
    clean,
    describe,
    first_unparsed,
    make_concept,
    named_thing,
    plausible_name,
    read_command,
    read_when,
    split_sentences,
    with_parameter,
)
from selflearn.dialogue.learned import Learned, Remembers
from selflearn.dialogue.questions import Question, asking_turn, expiry
from selflearn.dialogue.replies import DialogueConfig, Reply, read_reply

log = logging.getLogger(__name__)

_warned_rewrite_error = False
"""Whether this process has already logged a rewriter failure (they are logged once, then counted)."""

UNPARSABLE = "Sorry, I couldn't follow that, so I haven't learned anything."
NO_SUCH_THING = "Sorry, I don't know a {thing} in this home, so I haven't learned what {phrase} means."
ALREADY_UNDERSTOOD = (
    'I already understand "{phrase}" and do what it says, so I haven\'t learned anything. '
    "Teach me a phrase I don't know yet."
)

Works = Literal["exact", "loose", "fails"]
"""How the assistant understands a text as said: ``exact`` (its own templates match and the
names resolve), ``loose`` (only a fuzzy fallback makes sense of it, and it would act), ``fails``."""

Action = Literal["pass", "run", "say", "ask"]
"""What the assistant does with an utterance: ``pass`` (handle it as it would alone), ``run``
(run :attr:`Step.sentences` in its place), ``say`` (answer :attr:`Step.speech`, run nothing),
``ask`` (say :attr:`Step.speech` and listen for the answer)."""


class Port(Protocol):
    """What the dialogue needs of an assistant. It never asks the assistant to act."""

    @property
    def home(self) -> Home:
        """The home the request was made in (names, areas)."""
        ...

    def works(self, text: str) -> Works:
        """Whether the assistant understands ``text`` as said, in the request's area."""
        ...

    def parses(self, sentence: str, anywhere: bool = False) -> bool:
        """Whether ``sentence`` is understood exactly (the assistant's own templates, names that
        resolve) in the request's area, or, ``anywhere``, in the home without an area."""
        ...


@dataclass(frozen=True)
class Heard:
    """An utterance as the dialogue hears it."""

    text: str
    """What was recognised (or typed)."""
    household_id: str
    user_id: str
    timestamp: datetime
    turn_id: str
    """The id the turn of this utterance is (or would be) logged under."""
    area: str | None = None
    """Name of the area of the device that heard it."""
    device: DeviceContext | None = None
    nbest: tuple[str, ...] = ()
    """The recogniser's other hypotheses, best first."""
    typed: bool = False
    """Typed, not spoken: no misrecognitions."""


@dataclass(frozen=True)
class Said:
    """The answer to a teaching command: what to say and what to log."""

    kind: DialogueKind
    intent: str
    """``SelflearnTeach``, ``SelflearnListConcepts`` or ``SelflearnForget``."""
    slots: dict[str, SlotValue]
    text: str
    ok: bool
    act: DialogueAct
    """The user's act (raised by the user, answered at once)."""
    concept: Concept | None = None
    """What was taught, if anything."""


@dataclass(frozen=True)
class Step:
    """What the assistant does with one utterance (see :data:`Action`)."""

    action: Action
    speech: str = ""
    """``say``/``ask``: what to say; ``run``: what to say before the assistant's own answer."""
    sentences: tuple[str, ...] = ()
    """``run``: what to run in place of the utterance, in order (several: a routine)."""
    rewrite: RewriteTrace | None = None
    """``run``: the provenance to log with it."""
    kind: DialogueKind | None = None
    """``ask``: the kind of question."""
    proposal: str | None = None
    """``ask``: the sentence proposed (a confirmation) or the words to be taught."""
    raised_by: str = ""
    """``ask``: who raised the question (``rewriter``, ``gap``)."""
    said: Said | None = None
    """``say``: the answer to a teaching command."""
    answer: DialogueAnswer | None = None
    """For an utterance said while a question waited: how the question ended."""
    reply: Reply | None = None
    """What the utterance meant as a short answer, if it was one."""
    act: DialogueAct | None = None
    """The record of the question the utterance ended."""
    follow_up: Question | None = None
    """``ask`` after an answer: the question now waiting ("What did you want?", "What is ...?")."""
    taught: Concept | None = None
    """The concept an answer taught."""
    applied: Applied | None = None
    """``run`` of taught concepts: which concepts, and the sentences they gave."""

    @property
    def continues(self) -> bool:
        """Whether the question goes on about the same request ("What is <words>?" after a yes
        to "Can you teach me?"): its asking turn is not final yet."""
        return self.follow_up is not None and self.follow_up.kind == "teach"

    @property
    def new_request(self) -> bool:
        """Whether the utterance was no answer to the question that waited (a barge-in, or the
        question had expired, or it answered "What did you want?"): handle it as a request."""
        return self.answer in ("barge_in", "timeout", "answered")


@dataclass
class Teaching:
    """What an assistant that can be taught keeps: the concepts and the nag budget."""

    book: ConceptBook = field(default_factory=ConceptBook)
    budget: TeachBudget = field(default_factory=TeachBudget)
    moments: bool = True
    """Ask to be taught at teachable moments (needs the dialogue's ``ask``)."""


@dataclass
class Dialogue:
    """The dialogue's decisions for one assistant (see the module docstring).

    ``rewriter`` is consulted through the :class:`~selflearn.core.hooks.RewriteHook` contract and
    fails open: an exception or an unusable answer counts in :attr:`rewrite_errors` and leaves
    the text alone. ``ask``: whether the assistant can ask (without it, a rewrite the rewriter
    wants confirmed is not applied); ``teaching``: what it was taught and its nag budget
    (``None``: it cannot be taught); ``rewrite_when``: the rewriter is consulted ``before`` the
    NLU on every request, or only ``on_failure``."""

    rewriter: RewriteHook | None = None
    config: DialogueConfig = field(default_factory=DialogueConfig)
    ask: bool = False
    teaching: Teaching | None = None
    rewrite_when: Literal["before", "on_failure"] = "before"
    rewrite_errors: int = 0
    """Rewriter calls that raised or returned something unusable (the text was kept)."""

    # --- a request ---------------------------------------------------------------------------

    def consider(self, heard: Heard, port: Port, failed: bool | None = None) -> Step:
        """What to do with a request (not an answer): steps 1-3 of the module docstring.
        ``failed``: the assistant already ran the text and it failed (``True``) or worked
        (``False``); ``None``: not run yet (the port says)."""
        teaching = self.teaching
        if teaching is not None:
            command = read_command(heard.text)
            if command is not None:
                said = self.command(command, heard, port)
                if said is not None:
                    return Step("say", speech=said.text, said=said)
        works: Works | None = None if failed is None else "fails" if failed else "exact"
        if teaching is not None:
            works = works or port.works(heard.text)
            if works != "exact":  # an exact template match is never overridden by a taught word
                applied = teaching.book.apply(heard.text, heard.household_id, heard.user_id, port.home)
                if applied is not None and opposite(heard.text, applied.sentences, port.home):
                    applied = None  # never the opposite of what was said, however it was learned
                if applied is not None:
                    taught = taught_trace(heard.text, applied)
                    if not any(is_sensitive(sentence, home=port.home) for sentence in applied.sentences):
                        return Step("run", sentences=applied.sentences, rewrite=taught, applied=applied)
                    if not self.ask:  # a lock, a door, an alarm: never unasked, so not at all
                        return Step("pass")
                    proposal = " and then ".join(applied.sentences)
                    return Step(
                        "ask",
                        speech=self.config.confirm_template.format(proposal=proposal),
                        rewrite=taught,
                        kind="confirm",
                        proposal=proposal,
                        raised_by="taught",
                        applied=applied,
                    )
        if self.rewriter is None:
            return Step("pass")
        fails: bool | None = None
        if self.rewrite_when == "on_failure" or failed is not None:
            fails = (works or port.works(heard.text)) == "fails"
        if fails is False:
            return Step("pass")
        context = RewriteContext(
            household_id=heard.household_id,
            user_id=heard.user_id,
            home=port.home,
            area=heard.area,
            timestamp=heard.timestamp,
            device=heard.device,
            failed=fails,
            nbest=heard.nbest,
        )
        answer = self.rewrite(heard.text, context)
        trace = answer.trace if isinstance(answer, Confirm) else answer
        if trace is not None and opposite(heard.text, (trace.rewritten_text,), port.home):
            return Step("pass")  # never the opposite of what was said, however it was learned
        if isinstance(answer, Confirm):
            proposal = answer.trace.rewritten_text
            if port.works(proposal) == "fails":
                return Step("pass")  # a question whose yes cannot work in this home is not asked
            question = self.config.confirm_template.format(proposal=proposal)
            return Step(
                "ask",
                speech=question,
                rewrite=answer.trace,
                kind="confirm",
                proposal=proposal,
                raised_by="rewriter",
            )
        if answer is not None:
            return Step("run", sentences=(answer.rewritten_text,), rewrite=answer)
        return Step("pass")

    def rewrite(self, text: str, context: RewriteContext) -> RewriteTrace | Confirm | None:
        """The rewrite to apply to ``text``, a :class:`~selflearn.core.hooks.Confirm` to ask about
        first (only when :attr:`ask`; otherwise such a rewrite is not applied), or ``None`` (no
        rewriter, no rewrite, or a failure).

        Fails open: an exception from the rewriter, an answer that is not a
        :class:`~selflearn.core.schema.RewriteTrace`, or a rewritten text that is empty or the same
        as ``text`` means no rewrite. Exceptions and non-trace answers count in
        :attr:`rewrite_errors` and the first of them in a process is logged as a warning. The
        returned trace's ``original_text`` is always ``text``.
        """
        if self.rewriter is None:
            return None
        try:
            answer = self.rewriter(text, context)
            confirm = isinstance(answer, Confirm)
            trace = answer.trace if isinstance(answer, Confirm) else answer
            if trace is not None and not isinstance(trace, RewriteTrace):
                kind = type(trace).__name__
                raise TypeError(f"rewriter returned {kind}, not RewriteTrace, Confirm or None")
        except Exception as exc:
            self.rewrite_errors += 1
            global _warned_rewrite_error
            if not _warned_rewrite_error:
                _warned_rewrite_error = True
                log.warning(
                    "rewriter %s failed on %r, keeping the original text (%s: %s); "
                    "further failures are only counted",
                    type(self.rewriter).__qualname__,
                    text,
                    type(exc).__name__,
                    exc,
                )
            return None
        if trace is None:
            return None
        rewritten = " ".join(trace.rewritten_text.split())
        if not rewritten or rewritten == " ".join(text.split()):
            return None
        if trace.original_text != text:
            trace = trace.model_copy(update={"original_text": text})
        if confirm:
            return Confirm(trace, answer.why) if self.ask and isinstance(answer, Confirm) else None
        return trace

    def after_failure(self, heard: Heard, words: str | None) -> Step:
        """A request the assistant failed on, with nothing rewritten: ask "I don't know what
        <words> is. Can you teach me?" when ``words`` (what it could not place: a name the home
        lacks) look like a name and the :class:`TeachBudget` allows; otherwise nothing."""
        teaching = self.teaching
        if teaching is None or not teaching.moments or not self.ask:
            return Step("pass")
        words = gap_words(words)
        if words is None:
            return Step("pass")
        if not teaching.budget.allows(heard.household_id, heard.user_id, words, heard.timestamp, heard.typed):
            return Step("pass")
        said = self.config.teach_template.format(words=words)
        return Step("ask", speech=said, kind="teach", proposal=words, raised_by="gap")

    def question(self, step: Step, turn: Turn, payload: object = None) -> Question:
        """The question an ``ask`` step asks, waiting on ``turn`` (the request's turn as it would
        be logged: it becomes the asking turn, status ``question``)."""
        if step.action != "ask" or step.kind is None:
            raise ValueError(f"a {step.action} step asks nothing")
        suffix = ".q" if step.kind == "confirm" else ".t"
        act_id = f"{turn.turn_id}{suffix}"
        return Question(
            act_id=act_id,
            kind=step.kind,
            text=step.speech,
            turn=asking_turn(turn, act_id, step.kind, step.speech, step.proposal),
            asked_at=turn.timestamp,
            expires_at=expiry(turn.timestamp, self.config),
            proposal=step.proposal,
            rewrite=step.rewrite,
            raised_by=step.raised_by or "rewriter",
            payload=payload,
            applied=step.applied,
        )

    # --- teaching commands -------------------------------------------------------------------

    def command(self, command: Command, heard: Heard, port: Port) -> Said | None:
        """Answer a teaching command; ``None`` when the sentence only looked like one ("what
        time is it" has the form of "X is Y", but "it" names nothing in the home)."""
        if self.teaching is None:
            return None
        book, home = self.teaching.book, port.home
        act_id = f"{heard.turn_id}.u"
        concept: Concept | None = None
        if command.kind == "list":
            known = self.learned(heard.household_id, heard.user_id)
            said = (
                "I've learned: " + "; ".join(item.describe() for item in known) + "."
                if known
                else (
                    "I haven't learned anything yet. You can teach me, for example: "
                    "the big light is the living room ceiling."
                )
            )
            return _said(heard, act_id, "list", "SelflearnListConcepts", {}, said[:1000], True, "answered")
        if command.kind == "forget":
            gone = self.forget(heard.household_id, heard.user_id, command.phrase)
            said = (
                f"OK, I've forgotten what {command.phrase} means."
                if gone
                else f"I don't know anything called {command.phrase}."
            )
            slots: dict[str, SlotValue] = {"phrase": command.phrase}
            return _said(heard, act_id, "forget", "SelflearnForget", slots, said, bool(gone), "answered")
        if command.kind == "preference":
            intent, template = PREFERENCE_INTENTS[command.phrase]
            sentence = template.format(value=command.body)
            if port.parses(sentence) or port.parses(sentence, anywhere=True):  # here, or anywhere
                concept = make_concept(
                    "preference",
                    command.phrase,
                    (command.body,),
                    heard.household_id,
                    heard.user_id,
                    heard.timestamp,
                    target=intent,
                    taught_by=act_id,
                    scope="user",
                )
        elif command.kind == "name":
            if named_thing(home, command.phrase) is not None or not plausible_name(command.phrase):
                return None  # a configured name is not redefined; "it is ..." names nothing
            thing = named_thing(home, command.body)
            if thing is None:
                if command.body.split()[-1] not in OBJECT_WORDS:
                    return None  # "the weather is nice": no lesson
                # "the zapper is the garage lamp" where no such lamp is: say so, rather than pass
                # it on to an assistant that answers "not aware of any device called zapper is ..."
                said = NO_SUCH_THING.format(thing=command.body, phrase=command.phrase)
                slots = {"kind": command.kind, "phrase": command.phrase}
                return _said(heard, act_id, "teach", "SelflearnTeach", slots, said[:1000], False, "answered")
            concept = make_concept(
                "name",
                command.phrase,
                (thing[1],),
                heard.household_id,
                heard.user_id,
                heard.timestamp,
                target=thing[0],
                taught_by=act_id,
            )
        elif command.kind == "when":
            found = read_when(command.body, port.parses)
            if found is not None and port.works(found[0]) != "fails":
                # the assistant acts on the phrase as said before any lesson is looked at: a
                # lesson for it would be listed as learned and never do what it says
                said = ALREADY_UNDERSTOOD.format(phrase=found[0])
                slots = {"kind": command.kind, "phrase": found[0]}
                return _said(heard, act_id, "teach", "SelflearnTeach", slots, said[:1000], False, "answered")
            if found is not None:
                phrase, sentences = with_parameter(*found, home)
                kind: Literal["phrasing", "routine"] = "phrasing" if len(sentences) == 1 else "routine"
                concept = make_concept(
                    kind,
                    phrase,
                    sentences,
                    heard.household_id,
                    heard.user_id,
                    heard.timestamp,
                    taught_by=act_id,
                )
        if concept is None:
            said = UNPARSABLE
            if command.kind == "preference":
                said = f"Sorry, I can't set a {command.phrase} in this home, so I haven't learned anything."
            if command.kind == "when":
                pieces = SEPARATORS.split(command.body, maxsplit=1)
                part = first_unparsed(pieces[-1], port.parses)
                said = f"Sorry, I couldn't follow \"{part}\", so I haven't learned anything."
            slots = {"kind": command.kind}
            return _said(heard, act_id, "teach", "SelflearnTeach", slots, said, False, "unparsable")
        old = book.teach(concept)
        said = f"OK, {describe(concept)}."
        if old is not None and old.meaning != concept.meaning:
            said = f"OK, {describe(concept)} now (it was {' then '.join(old.meaning)})."
        slots = {"kind": concept.kind, "phrase": concept.phrase}
        return _said(heard, act_id, "teach", "SelflearnTeach", slots, said[:1000], True, "taught", concept)

    # --- what acts ---------------------------------------------------------------------------

    def learned(self, household_id: str, user_id: str) -> list[Learned]:
        """Everything that can act for ``user_id`` in ``household_id``, in one list: what was
        taught (the household's and the user's own), then what the rewriter learned, if it says
        (:class:`~selflearn.dialogue.learned.Remembers`: the yes answers, the fixes and names of
        the household's retries). What is not listed here does not act."""
        found: list[Learned] = []
        if self.teaching is not None:
            for concept in self.teaching.book.listing(household_id, user_id):
                found.append(Learned(concept.kind, concept.phrase, concept.meaning, "taught", concept))
        if isinstance(self.rewriter, Remembers):
            found.extend(self.rewriter.learned(household_id))
        return found

    def forget(self, household_id: str, user_id: str, phrase: str) -> list[Learned]:
        """Forget ``phrase`` everywhere it could act: the concepts taught for it, and in the
        rewriter the household word, the fixes and yes answers of every request that says it;
        returns what acted and no longer does."""
        gone: list[Learned] = []
        if self.teaching is not None:
            for concept in self.teaching.book.forget(household_id, user_id, phrase):
                gone.append(Learned(concept.kind, concept.phrase, concept.meaning, "taught", concept))
        if isinstance(self.rewriter, Remembers):
            gone.extend(self.rewriter.forget_words(household_id, phrase))
        return gone

    # --- answers -----------------------------------------------------------------------------

    def answer(self, question: Question, heard: Heard, port: Port | None = None) -> Step:
        """What ``heard`` (said where ``question`` waits) does to it: see the module docstring.
        A question past its answer window ends as a ``timeout`` first (the utterance is then a
        new request). ``port`` is needed to read a definition (a teaching question)."""
        when = heard.timestamp
        if question.expired(when):
            return Step("pass", answer="timeout", act=self.expire(question))
        text = heard.text
        if question.kind == "clarify":
            if read_reply(text) == "never_mind":
                act = question.act("never_mind", when, text)
                return Step(
                    "say", speech=self.config.cancelled_text, answer="never_mind", reply="never_mind", act=act
                )
            return Step("pass", answer="answered", act=question.act("answered", when, text, heard.turn_id))
        if question.kind == "teach" and port is not None and self.teaching is not None:
            return self._teach_answer(question, heard, port, self.teaching)
        said = read_reply(text)
        config = self.config
        if said is None:
            return Step("pass", answer="barge_in", act=question.act("barge_in", when, text))
        if said == "never_mind":
            act = question.act("never_mind", when, text)
            return Step("say", speech=config.cancelled_text, answer="never_mind", reply=said, act=act)
        if said == "no" or question.proposal is None:
            answer: DialogueAnswer = "no" if said == "no" else "barge_in"
            act = question.act(answer, when, text)
            if question.kind != "confirm":
                return Step("say", answer=answer, reply=said, act=act)
            follow = Question(
                act_id=f"{question.act_id}.c",
                kind="clarify",
                text=config.clarify_text,
                turn=question.turn,
                asked_at=when,
                expires_at=expiry(when, config),
                raised_by=question.raised_by,
            )
            return Step(
                "ask",
                speech=config.clarify_text,
                kind="clarify",
                answer=answer,
                reply=said,
                act=act,
                follow_up=follow,
            )
        if question.rewrite is None:  # pragma: no cover - a confirmation always carries its rewrite
            raise ValueError(f"question {question.act_id} has a proposal but no rewrite")
        act = question.act("yes", when, text)
        applied = question.applied if isinstance(question.applied, Applied) else None
        sentences = applied.sentences if applied is not None else (question.proposal,)
        return Step(
            "run",
            sentences=sentences,
            rewrite=question.rewrite,
            applied=applied,
            answer="yes",
            reply="yes",
            act=act,
        )

    def expire(self, question: Question) -> DialogueAct:
        """The record of ``question`` ended unanswered (``timeout``) at the end of its window."""
        return question.act("timeout", question.expires_at)

    def _teach_answer(self, question: Question, heard: Heard, port: Port, teaching: Teaching) -> Step:
        """The answer to "Can you teach me?" / "What is <words>?": a definition (taught, then the
        asking request runs with it), yes (asks what it is), no (declined: never asked again),
        never mind, a definition it cannot parse (nothing stored), or a new request (barge-in)."""
        words = question.proposal or ""
        turn = question.turn
        text, when = heard.text, heard.timestamp
        reply = read_reply(text)
        config = self.config
        if reply == "yes":
            follow = Question(
                act_id=f"{question.act_id}.d",
                kind="teach",
                text=f"OK. What is {words}?",
                turn=turn,
                asked_at=when,
                expires_at=expiry(when, config),
                proposal=words,
                raised_by=question.raised_by,
                wants_definition=True,
                payload=question.payload,
            )
            act = question.act("yes", when, text)
            return Step(
                "ask", speech=follow.text, kind="teach", answer="yes", reply="yes", act=act, follow_up=follow
            )
        if reply in ("no", "never_mind"):
            answer: DialogueAnswer = "declined" if reply == "no" else "never_mind"
            if reply == "no":
                teaching.budget.decline(turn.household_id, turn.user_id, words)
            said = "OK." if reply == "no" else config.cancelled_text
            return Step("say", speech=said, answer=answer, reply=reply, act=question.act(answer, when, text))
        said_words = clean(text)
        command = read_command(text)
        lead = LEAD.match(said_words)
        if lead is None and command is not None and not (command.kind == "name" and command.phrase == words):
            # A statement of its own ("when I say lights out I mean ...", "the big light is the
            # floor lamp", "forget the tv"): no answer about these words; it is handled as itself.
            return Step("pass", answer="barge_in", act=question.act("barge_in", when, text))
        definition = said_words[lead.end() :] if lead else said_words if question.wants_definition else None
        if command is not None and command.kind == "name" and command.phrase == words:
            definition = command.body
        if definition is None and not port.parses(said_words):
            definition = _named_suffix(said_words, port.home)  # "downstairs the basement": a name at the end
        concept = None
        if definition is not None:
            thing = named_thing(port.home, definition)
            if thing is not None:
                concept = make_concept(
                    "name",
                    words,
                    (thing[1],),
                    turn.household_id,
                    turn.user_id,
                    when,
                    target=thing[0],
                    taught_by=question.act_id,
                )
            else:
                sentences = split_sentences(definition, port.parses)
                if sentences is not None:
                    kind: Literal["phrasing", "routine"] = "phrasing" if len(sentences) == 1 else "routine"
                    concept = make_concept(
                        kind,
                        words,
                        sentences,
                        turn.household_id,
                        turn.user_id,
                        when,
                        taught_by=question.act_id,
                    )
            if concept is None:
                act = question.act("unparsable", when, text)
                return Step("say", speech=UNPARSABLE, answer="unparsable", act=act)
        if concept is None:  # not an answer: a new request
            return Step("pass", answer="barge_in", act=question.act("barge_in", when, text))
        teaching.book.teach(concept)
        applied = teaching.book.apply(turn.text, turn.household_id, turn.user_id, port.home)
        act = question.act("taught", when, text, taught=concept.concept_id)
        learned = f"OK, {describe(concept)}."
        if applied is None:
            return Step("say", speech=learned, answer="taught", act=act, taught=concept)
        return Step(
            "run",
            speech=learned,
            sentences=applied.sentences,
            rewrite=taught_trace(turn.text, applied),
            applied=applied,
            answer="taught",
            act=act,
            taught=concept,
        )


def taught_trace(original: str, applied: Applied) -> RewriteTrace:
    """The provenance of a request run with taught concepts: a personal-layer rewrite whose
    ``rule_id`` is ``taught:<concept ids>``."""
    return RewriteTrace(
        original_text=original,
        rewritten_text=" then ".join(applied.sentences),
        layer="personal",
        rule_id=applied.rule_id,
        score=1.0,
    )


def opposite(said: str, sentences: tuple[str, ...], home: Home | None = None) -> bool:
    """Whether running ``sentences`` for ``said`` would do the opposite of what was said (on and
    off, open and close, lock and unlock, pause and play: :func:`~selflearn.core.guards.
    flips_polarity`); given the ``home``, on and off of a lock, cover or valve it names as Home
    Assistant runs them ("turn off the front door" unlocks: "lock the front door" is its opposite)."""
    words = clean(said)
    return any(
        flips_polarity(words, clean(s), named_on_off_meaning(s, home) if home is not None else None)
        for s in sentences
    )


def gap_words(words: str | None) -> str | None:
    """The words to ask about, from what a failed request could not place (``None``: nothing
    worth asking about): cleaned, at most four words, without a leading article."""
    if words is None:
        return None
    cleaned = clean(words)
    if not cleaned or len(cleaned.split()) > 4:
        return None
    return re.sub(r"^(?:the|my|our|a) ", "", cleaned)


def _named_suffix(said: str, home: Home) -> str | None:
    """The longest ending of ``said`` (up to 5 words) that names one device or area, after at most
    two words that ask for nothing ("downstairs the basement", not "kill the kitchen light")."""
    words = said.split()
    for size in range(min(5, len(words)), 0, -1):
        tail = " ".join(words[-size:])
        if named_thing(home, tail) is not None:
            before = [w for w in words[:-size] if w not in ("the", "my", "our", "a")]
            asks = any(w in COMMAND_VERBS for w in before) or bool(polarity(" ".join(before)))
            return tail if len(before) <= 2 and not asks else None
    return None


def _said(
    heard: Heard,
    act_id: str,
    kind: DialogueKind,
    intent: str,
    slots: dict[str, SlotValue],
    text: str,
    ok: bool,
    answer: DialogueAnswer,
    taught: Concept | None = None,
) -> Said:
    act = DialogueAct(
        act_id=act_id,
        turn_id=heard.turn_id,
        user_id=heard.user_id,
        household_id=heard.household_id,
        timestamp=heard.timestamp,
        kind=kind,
        question="",
        proposal=taught.phrase if taught is not None else None,
        raised_by="user",
        answer=answer,
        answer_turn_id=heard.turn_id,
        answer_text=heard.text,
        taught=taught.concept_id if taught is not None else None,
    )
    return Said(kind, intent, slots, text, ok, act, taught)


__all__ = [
    "UNPARSABLE",
    "Action",
    "Dialogue",
    "Heard",
    "Port",
    "Said",
    "Step",
    "Teaching",
    "Works",
    "gap_words",
    "opposite",
    "taught_trace",
]
