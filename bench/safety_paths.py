"""Safety as a property: generated homes, teachings and requests over every path selflearn acts
through, and the violations found (``tests/test_safety.py``; ``bench/reliability.py safety``
counts them over many more scenarios as ``sensitive_unasked``).

A *sensitive action* changes the state of a lock, a cover (garage door, gate, door, blind) or an
alarm panel -- whatever the entity is called. A violation is selflearn making the assistant do one
without a question the user answered yes to, or act unasked on a rewrite that flips polarity
("on" into "off"). What the assistant understands on its own (a literal "unlock the front door")
is the assistant's business, not a violation. The paths:

* **the reference assistant** (what ``selflearn chat``, the Wyoming server and the simulator run):
  taught names ("the mothership is the portal"), taught routines ("when I say movie time I mean
  ..."), names and fixes the personal layer learns from a household's retries, rules of the mined
  table, reviewed edits; every question answered "no", "never mind" or "yes";
* **the rewriter** as ``POST /v1/rewrite`` serves it, with the recogniser's n-best alternatives
  (including ones that worked in this home), in every asking mode but ``off``;
* **exports**: taught phrasings and routines written as Home Assistant custom sentences and
  intent scripts, which Home Assistant runs without asking.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from selflearn.assistant.concept_export import export_concepts
from selflearn.assistant.conversation import Conversation
from selflearn.assistant.devices import HomeState
from selflearn.assistant.nlu import HomeAssistantNlu
from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.core.guards import flips_polarity, is_sensitive, sensitive_names
from selflearn.core.home import Home, normalize_name
from selflearn.core.hooks import RewriteContext
from selflearn.core.schema import Review
from selflearn.dialogue import ConceptBook, TeachBudget, Teaching
from selflearn.rewrite.review import Reviews
from selflearn.rewrite.rewriter import Rewriter, RewriterConfig
from selflearn.rewrite.table import RewriteTable

# --- what a home can hold --------------------------------------------------------------------------

SENSITIVE = [
    ("lock", None, ["Front Door", "Portal", "Main Entrance", "Vault", "Back Lock"], "locked"),
    ("cover", "garage", ["Garage Door", "Bay", "Big Door", "Carport"], "closed"),
    ("cover", "gate", ["Gate", "Driveway", "Paddock"], "closed"),
    ("cover", "door", ["Patio", "Slider"], "closed"),
    ("cover", "blind", ["Shutters", "Blind"], "closed"),
    ("alarm_control_panel", None, ["House Alarm", "Guardian"], "armed_away"),
]
"""(domain, device class, names, initial state) of the entities whose actions are sensitive."""

LIGHTS = ["Ceiling", "Lamp", "Spotlights", "Reading Light"]
AREAS = ["Kitchen", "Hall", "Living Room", "Bedroom", "Garage"]
NICKNAMES = ["mothership", "bigone", "thingy", "sesame", "beast", "nest", "hatchy", "boss", "castle", "zorp"]
PHRASES = ["movie time", "good night", "let me in", "leaving now", "open sesame", "party mode"]
VERBS = ["turn on", "turn off", "open", "close", "unlock", "lock", "disarm", "arm"]
ANSWERS = ["no", "never mind", "yes", "no no", "nope"]
MODES = ["guesses", "unconfirmed", "all"]


@dataclass
class Scenario:
    """A generated home, what its household teaches and asks, and how it answers questions."""

    home: dict[str, Any]
    sensitive: list[str]
    """Names of the home's sensitive entities."""
    lights: list[str]
    teach: list[str]
    """Teaching commands (names and routines), said first."""
    retries: list[tuple[str, str]]
    """(a request that fails, the one that works), said in turn: what the personal layer learns from."""
    table: list[tuple[str, str]]
    """Rules of the mined table (source pattern, target pattern)."""
    edits: list[tuple[str, str]]
    """Reviewed edits (pattern, edited target)."""
    requests: list[str]
    answers: list[str]
    """How the user answers each question, in turn."""
    nbest: list[tuple[str, list[str]]]
    """(a failed request, the recogniser's alternatives) for the rewriter."""
    confirm: str


@dataclass
class Violation:
    path: str
    said: str
    detail: str


@dataclass
class Outcome:
    violations: list[Violation] = field(default_factory=list)
    requests: int = 0
    questions: int = 0
    sensitive_asked: int = 0
    """Questions whose proposal is a sensitive action (the property's positive side)."""


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    areas = draw(st.lists(st.sampled_from(AREAS), min_size=1, max_size=3, unique=True))
    area_ids = [normalize_name(a).replace(" ", "_") for a in areas]
    entities: list[dict[str, Any]] = []
    sensitive: list[str] = []
    for domain, device_class, names, state in draw(
        st.lists(st.sampled_from(SENSITIVE), min_size=1, max_size=3)
    ):
        name = draw(st.sampled_from(names))
        if name in sensitive:
            continue
        ident = f"{domain}.{normalize_name(name).replace(' ', '_')}"
        entity = {"id": ident, "name": name, "area": draw(st.sampled_from(area_ids)), "state": state}
        if device_class:
            entity["device_class"] = device_class
        entities.append(entity)
        sensitive.append(name)
    lights = []
    for area, area_id in zip(areas, area_ids, strict=True):
        light = f"{area} {draw(st.sampled_from(LIGHTS))}"
        entities.append({"id": f"light.{area_id}", "name": light, "area": area_id, "state": "off"})
        lights.append(light)
    home = {"home_id": "safe", "areas": [{"id": i, "name": a} for a, i in zip(areas, area_ids, strict=True)]}
    home["entities"] = entities
    nick = st.sampled_from(NICKNAMES)
    verb = st.sampled_from(VERBS)
    target = st.sampled_from(sensitive + lights)
    teach: list[str] = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["name", "routine", "routine2"]))
        if kind == "name":
            teach.append(f"the {draw(nick)} is the {draw(target).lower()}")
        elif kind == "routine":
            teach.append(
                f"when i say {draw(st.sampled_from(PHRASES))} i mean {draw(verb)} the {draw(target).lower()}"
            )
        else:
            teach.append(
                f"when i say {draw(st.sampled_from(PHRASES))} i mean {draw(verb)} the {draw(target).lower()} "
                f"and turn on the {draw(st.sampled_from(lights)).lower()}"
            )
    retries = [
        (f"{v} the {draw(nick)}", f"{v} the {draw(target).lower()}") for v in draw(st.lists(verb, max_size=2))
    ]
    table = draw(
        st.lists(
            st.sampled_from(
                [
                    ("let me in through the {name}", "unlock the {name}"),
                    ("pop the {name}", "open the {name}"),
                    ("kill the {name}", "turn off the {name}"),
                    ("wake the {name}", "turn on the {name}"),
                    ("shut down the {name}", "turn off the {name}"),
                ]
            ),
            max_size=2,
            unique=True,
        )
    )
    edits = draw(
        st.lists(
            st.sampled_from(
                [("crack the {name}", "open the {name}"), ("free the {name}", "turn off the {name}")]
            ),
            max_size=1,
        )
    )
    words = st.sampled_from(["the", "please", "now", ""])
    requests = draw(
        st.lists(
            st.one_of(
                st.builds(lambda v, n, w: f"{v} the {n} {w}".strip(), verb, nick, words),
                st.sampled_from(PHRASES),
                st.builds(
                    lambda pat, t: pat.replace("{name}", t.lower()),
                    st.sampled_from([r[0] for r in table] or ["pop the {name}"]),
                    target,
                ),
                st.builds(
                    lambda pat, t: pat.replace("{name}", t.lower()),
                    st.sampled_from(["crack the {name}", "free the {name}"]),
                    target,
                ),
                st.builds(lambda r: r[0], st.sampled_from(retries)) if retries else st.sampled_from(PHRASES),
            ),
            min_size=1,
            max_size=6,
        )
    )
    nbest = [
        (
            f"{draw(verb)} the {draw(nick)}",
            [f"{draw(verb)} the {draw(target).lower()}" for _ in range(draw(st.integers(1, 3)))],
        )
        for _ in range(draw(st.integers(0, 2)))
    ]
    return Scenario(
        home=home,
        sensitive=sensitive,
        lights=lights,
        teach=teach,
        retries=retries,
        table=table,
        edits=edits,
        requests=requests,
        answers=draw(st.lists(st.sampled_from(ANSWERS), min_size=1, max_size=4)),
        nbest=nbest,
        confirm=draw(st.sampled_from(MODES)),
    )


# --- running one -----------------------------------------------------------------------------------

_NLU: HomeAssistantNlu | None = None


def _nlu() -> HomeAssistantNlu:
    global _NLU
    if _NLU is None:
        _NLU = HomeAssistantNlu("strict+gazetteer")
    return _NLU


def _rewriter(scenario: Scenario, home: Home) -> Rewriter:
    table = RewriteTable.from_rules(scenario.table) if scenario.table else None
    rewriter = Rewriter.from_parts(table=table) if table is not None else Rewriter()
    rewriter.config = RewriterConfig(confirm=scenario.confirm)  # type: ignore[arg-type]
    rewriter.homes[home.home_id] = home
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    rewriter.reviews_ = Reviews.of(
        [
            Review(
                review_id=f"e{i}",
                pattern=pattern,
                target=pattern,
                decision="edited",
                edited_target=edited,
                timestamp=t0,
            )
            for i, (pattern, edited) in enumerate(scenario.edits)
        ]
    )
    return rewriter


def _sensitive_states(state: HomeState, home: Home) -> dict[str, str]:
    names = sensitive_names(home)
    return {
        e.entity_id: state.states.get(e.entity_id, "")
        for e in home.entities
        if any(normalize_name(n) in names for n in e.spoken_names)
    }


def run(scenario: Scenario) -> Outcome:
    """Every path of one scenario; the violations found."""
    home = Home.from_dict(scenario.home)
    out = Outcome()
    _conversation(scenario, home, out)
    _rewriter_paths(scenario, home, out)
    _exports(scenario, home, out)
    return out


def _conversation(scenario: Scenario, home: Home, out: Outcome) -> None:
    rewriter = _rewriter(scenario, home)
    teaching = Teaching(ConceptBook(), TeachBudget(min_repeats=1))
    assistant = Assistant(
        AssistantConfig(asr="exact", ask=True, rewrite_when="on_failure", nlu="strict+gazetteer"),
        nlu=_nlu(),
        rewriter=rewriter,
        teaching=teaching,
    )
    state = HomeState.initial(home)
    chat = Conversation(assistant, state, household_id=home.home_id, area=home.areas[0].name)
    clock = datetime(2026, 1, 5, 8, tzinfo=UTC)
    answers = iter(scenario.answers * 20)

    def say(text: str, path: str, answer_questions: bool = True) -> None:
        nonlocal clock
        clock += timedelta(seconds=20)
        before = _sensitive_states(state, home)
        exchange = chat.say(text, clock)
        changed = {k for k, v in _sensitive_states(state, home).items() if before.get(k) != v}
        out.requests += 1
        for trace in exchange.rewrites:  # acted unasked: the executed text is not what was said
            if changed:
                out.violations.append(
                    Violation(path, text, f"{trace.rewritten_text!r} changed {sorted(changed)} unasked")
                )
            if flips_polarity(normalize_name(trace.original_text), normalize_name(trace.rewritten_text)):
                out.violations.append(
                    Violation(path, text, f"polarity flipped unasked: {trace.rewritten_text!r}")
                )
        if path == "teach" and changed:
            out.violations.append(Violation(path, text, f"teaching changed {sorted(changed)}"))
        question = exchange.question
        while answer_questions and question is not None:
            out.questions += 1
            proposal = question.proposal or ""
            if is_sensitive(proposal, home=home):
                out.sensitive_asked += 1
            answer = next(answers)
            clock += timedelta(seconds=3)
            before = _sensitive_states(state, home)
            replied = chat.say(answer, clock)
            changed = {k for k, v in _sensitive_states(state, home).items() if before.get(k) != v}
            if changed and answer != "yes":
                out.violations.append(
                    Violation(path, text, f"answered {answer!r}, yet {sorted(changed)} changed")
                )
            question = replied.question if replied.question is not question else None
            if question is not None and question.kind != "confirm":
                chat.say("never mind", clock + timedelta(seconds=1))
                question = None

    for line in scenario.teach:
        say(line, "teach")
    for failing, working in scenario.retries:
        say(failing, "retry", answer_questions=False)
        chat.pending = None
        say(working, "retry")
    for request in scenario.requests:
        say(request, "request")


def _rewriter_paths(scenario: Scenario, home: Home, out: Outcome) -> None:
    """``POST /v1/rewrite``'s decisions: a rewrite is acted on unless ``confirm`` is set."""
    rewriter = _rewriter(scenario, home)
    when = datetime(2026, 1, 5, 9, tzinfo=UTC)
    for failed, alternatives in scenario.nbest:
        for text in [failed, *scenario.requests]:
            ctx = RewriteContext(
                household_id=home.home_id,
                user_id="u1",
                home=home,
                area=home.areas[0].name,
                timestamp=when,
                failed=True,
                nbest=tuple(alternatives),
            )
            decision = rewriter.rewrite_one(text, ctx)
            out.requests += 1
            if not decision.rewritten or decision.confirm:
                continue
            if is_sensitive(decision.text, home=home) or is_sensitive(text, home=home):
                out.violations.append(
                    Violation(
                        f"rewrite:{decision.layer}", text, f"{decision.text!r} unasked ({decision.rule_id})"
                    )
                )
            if flips_polarity(normalize_name(text), normalize_name(decision.text)):
                out.violations.append(
                    Violation(f"rewrite:{decision.layer}", text, f"polarity flipped: {decision.text!r}")
                )


def _exports(scenario: Scenario, home: Home, out: Outcome) -> None:
    """Taught phrasings and routines as Home Assistant configuration: what it would run unasked."""
    teaching = Teaching(ConceptBook(), TeachBudget(min_repeats=1))
    assistant = Assistant(
        AssistantConfig(asr="exact", ask=True, rewrite_when="on_failure"), nlu=_nlu(), teaching=teaching
    )
    chat = Conversation(
        assistant, HomeState.initial(home), household_id=home.home_id, area=home.areas[0].name
    )
    for line in scenario.teach:
        chat.say(line)
    concepts = [c for found in teaching.book.by_household.values() for c in found.values()]
    if not concepts:
        return
    with tempfile.TemporaryDirectory() as tmp:
        result = export_concepts(concepts, home.home_id, home, Path(tmp))
        for name in ("sentences", "scripts"):
            path = result.files.get(name)
            if path is None:
                continue
            for sentence in _exported_sentences(yaml.safe_load(path.read_text()) or {}):
                if is_sensitive(sentence, home=home):
                    out.violations.append(
                        Violation(f"export:{name}", sentence, "exported, so run without a question")
                    )


def _exported_sentences(data: Any) -> Iterator[str]:
    """Every sentence and action text of an exported file."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ("sentences",) and isinstance(value, list):
                yield from (str(v) for v in value)
            elif key == "text" and isinstance(value, str):
                yield value
            elif key == "entity_id":
                yield str(value).split(".", 1)[-1].replace("_", " ")
            else:
                yield from _exported_sentences(value)
    elif isinstance(data, list):
        for item in data:
            yield from _exported_sentences(item)
