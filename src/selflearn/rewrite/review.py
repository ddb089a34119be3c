"""People's verdicts on learned rewrites, applied by the serving rewriter from the next request on.

A verdict (:class:`~selflearn.core.schema.Review`, kept in the store's ``reviews`` table) names a
rule by its request pattern and target pattern (delexicalized: ``kill the {area} lights`` ->
``turn off the {area} lights``) and, for a mined table rule, by its rule id:

* **rejected**: the rule is never applied again -- a rewrite of that source pattern into that
  target pattern (or by that table rule) is dropped, whichever layer proposed it;
* **edited**: requests of the source pattern that failed are rewritten to the edited target,
  filled with the request's own names and values, and acted on (a person wrote it, or accepted
  a candidate fix as a rule: then the edited target is the target itself);
* **approved**: the rule is no guess any more: from the next request it acts unasked where it
  was asked about ("Did you mean ...?" under ``confirm="guesses"``), except for a sensitive
  request (always asked), with ``confirm="all"``, and in a household that said no to it; it is
  also marked for export as a Home Assistant custom sentence (``selflearn review export``).

A target a person writes (an edit, or a candidate accepted as a rule) is checked the way the
rewriter will use it before it is stored (:func:`check_target`): its placeholders must be
fillable from the request pattern's values, and the filled sentence must be understood by the
matching the assistant runs -- Home Assistant's strict templates, then the gazetteer matcher --
in a home of the store.

>>> from datetime import UTC, datetime
>>> from selflearn.core.schema import Review
>>> at = datetime(2026, 1, 1, tzinfo=UTC)
>>> reviews = Reviews.of([
...     Review(review_id="r1", pattern="kill the {area} lights", target="turn on the {area} lights",
...            decision="rejected", timestamp=at),
... ])
>>> reviews.rejects("kill the {area} lights", "turn on the {area} lights", None)
True
>>> reviews.rejects("kill the {area} lights", "turn off the {area} lights", None)
False
"""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from selflearn.core.delex import PLACEHOLDER, fill
from selflearn.core.home import Home
from selflearn.core.schema import MAX_ID_CHARS, Concept, Review
from selflearn.rewrite.table import rule_id as table_rule_id

if TYPE_CHECKING:
    from selflearn.assistant.concept_export import ExportResult
    from selflearn.assistant.nlu import HomeAssistantNlu

__all__ = ["Reviews", "TargetCheck", "check_target", "export_reviewed", "review_id"]


def review_id(source: str, target: str, rule_id: str | None = None) -> str:
    """The id of the verdict on one rule: a mined table rule's own id when ``rule_id`` is that
    rule's (:func:`selflearn.rewrite.table.rule_id` of the two patterns), else a hash of the two
    patterns -- one verdict per rule (a new one replaces the old), whichever layer logged it."""
    if rule_id is not None and rule_id == table_rule_id(source, target):
        return rule_id
    return "p" + hashlib.blake2b(f"{source}\x00{target}".encode(), digest_size=6).hexdigest()


@dataclass
class Reviews:
    """The verdicts in force, indexed for the rewriter's per-request check."""

    rejected_pairs: set[tuple[str, str]] = field(default_factory=set)
    rejected_rules: set[str] = field(default_factory=set)
    edits: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Source pattern -> (edited target pattern, review id)."""
    approved: list[Review] = field(default_factory=list)

    @classmethod
    def of(cls, reviews: Iterable[Review]) -> Reviews:
        """Index ``reviews`` (oldest first; a later verdict on the same rule wins)."""
        out = cls()
        for r in _latest(reviews):
            if r.decision == "rejected":
                out.rejected_pairs.add((r.pattern, r.target))
                if r.rule_id is not None and r.rule_id == r.review_id:  # a mined table rule
                    out.rejected_rules.add(r.rule_id)
            elif r.decision == "edited" and r.edited_target:
                if r.edited_target != r.target:  # edited away from the target (not accepted as it is)
                    out.rejected_pairs.add((r.pattern, r.target))
                out.edits[r.pattern] = (r.edited_target, r.review_id)
            elif r.decision == "approved":
                out.approved.append(r)
        return out

    def __bool__(self) -> bool:
        return bool(self.rejected_pairs or self.rejected_rules or self.edits or self.approved)

    def rejects(self, source: str, target: str, rule_id: str | None) -> bool:
        """Whether a rewrite of ``source`` into ``target`` (by ``rule_id``) was rejected."""
        by_rule = rule_id is not None and rule_id in self.rejected_rules
        return by_rule or (source, target) in self.rejected_pairs

    def approves(self, source: str, target: str, rule_id: str | None) -> bool:
        """Whether a person approved the rewrite of ``source`` into ``target`` (by ``rule_id``)."""
        for review in self.approved:
            if (review.pattern, review.target) == (source, target):
                return True
            if rule_id is not None and review.rule_id == rule_id and review.review_id == rule_id:
                return True
        return False

    def edit_for(self, source: str) -> tuple[str, str] | None:
        """(edited target pattern, review id) for requests of ``source``, if a person wrote one."""
        return self.edits.get(source)


def export_reviewed(
    reviews: Iterable[Review], home: Home, out: Path, household_id: str = "reviewed"
) -> tuple[ExportResult, list[str]]:
    """Write the approved and edited rules as Home Assistant custom sentences (each request
    pattern a sentence of the intent its target parses to in ``home``, ``{area}`` kept as Home
    Assistant's area list) into ``out``, the way taught phrasings export
    (:func:`selflearn.assistant.concept_export.export_concepts`). Returns what was written and
    the rules left out: a pattern with another placeholder (``{name}``, ``{number}``) has no
    equivalent in this export yet."""
    from selflearn.assistant.concept_export import export_concepts

    concepts, left_out = reviewed_concepts(reviews, household_id)
    return export_concepts(concepts, household_id, home, out), left_out


def reviewed_concepts(reviews: Iterable[Review], household_id: str) -> tuple[list[Concept], list[str]]:
    """The approved and edited rules as phrasing concepts of ``household_id`` (what
    :func:`export_reviewed` writes), and the rules left out (a placeholder other than ``{area}``)."""
    concepts: list[Concept] = []
    left_out: list[str] = []
    for r in _latest(reviews):
        if r.decision == "rejected":
            continue
        target = r.edited_target if r.decision == "edited" and r.edited_target else r.target
        other = {p for p in (*PLACEHOLDER.findall(r.pattern), *PLACEHOLDER.findall(target)) if p != "area"}
        if other:
            left_out.append(f"{r.pattern} -> {target}: has {{{sorted(other)[0]}}}")
            continue
        concepts.append(
            Concept(
                concept_id=f"review.{r.review_id}",
                household_id=household_id,
                user_id=reviewer_id(r.reviewer),
                kind="phrasing",
                phrase=r.pattern,
                meaning=(target,),
                timestamp=r.timestamp,
            )
        )
    return concepts, left_out


def reviewer_id(reviewer: str | None) -> str:
    """A reviewer's name as the id the export writes (``Jane Doe`` -> ``Jane_Doe``): a review
    names its reviewer in free text, the exported configuration by an id (letters, digits,
    ``_.:-``). Accents are dropped (``José`` -> ``Jose``); nothing usable left: ``reviewer``.

    >>> reviewer_id("Jane Doe"), reviewer_id("admin (review page)"), reviewer_id(None)
    ('Jane_Doe', 'admin_review_page', 'reviewer')
    """
    ascii_name = unicodedata.normalize("NFKD", reviewer or "").encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9_.:\-]+", "_", ascii_name).strip("_")
    return name[:MAX_ID_CHARS] or "reviewer"


# --- checking a target the way the rewriter will use it ------------------------------------------

SAMPLE_NUMBERS = ("20", "5")
"""Numbers tried for ``{number}`` when no request of the pattern says one (a brightness, a
temperature, a timer's minutes, a volume: 20 and 5 are all of them)."""

MAX_TRIES = 300
"""Most sentences :func:`check_target` puts to Home Assistant's matcher for one target."""

_BRACES = re.compile(r"\{[^{}]*\}|[{}]")

Said = tuple[Sequence[tuple[str, str]], Home, str | None]
"""A request of the source pattern: its values (``(("area", "kitchen"),)``, as
:class:`~selflearn.core.delex.Delexicalizer` takes them out), its home, and the name of the area
of the device that heard it."""


@dataclass(frozen=True)
class TargetCheck:
    """Whether a target pattern can be used for a request pattern, and why (:func:`check_target`)."""

    ok: bool
    reason: str
    """Why it is refused, or, when ``ok``, what it parsed as and where."""
    sentence: str | None = None
    """The filled sentence that parsed (``ok``), or the first one tried."""
    intent: str | None = None
    """The intent Home Assistant's strict templates read in ``sentence`` (``ok``)."""


def placeholder_problem(source: str, target: str) -> str | None:
    """Why ``target``'s placeholders cannot be filled from a request of pattern ``source``, or
    None: a ``{...}`` selflearn does not fill (it would reach the assistant as written), or
    more of a kind than the request pattern has (:func:`selflearn.core.delex.fill` has no value
    for it)."""
    for braces in _BRACES.findall(target):
        if PLACEHOLDER.fullmatch(braces) is None:
            return (
                f"{braces} is not a placeholder selflearn fills (only {{area}}, {{floor}}, {{name}} and "
                "{number}, from the request's own words): it would reach the assistant as written"
            )
    have, need = Counter(PLACEHOLDER.findall(source)), Counter(PLACEHOLDER.findall(target))
    for kind, n in sorted(need.items()):
        if n > have[kind]:
            has = "none" if not have[kind] else f"only {have[kind]}"
            return (
                f"it has {{{kind}}}{f' {n} times' if n > 1 else ''} but the request pattern {source!r} "
                f"has {has}, so a request of it has no value to fill it with"
            )
    return None


def check_target(
    source: str, target: str, homes: Mapping[str, Home], said: Sequence[Said] = ()
) -> TargetCheck:
    """Check ``target`` as the rewriter would use it for requests of pattern ``source``: its
    placeholders are filled from the request's values (:func:`placeholder_problem`), and the
    filled sentence must be understood in the request's home by the matching the assistant runs
    on it: Home Assistant's strict templates (hassil with the home's names), then the gazetteer
    matcher (:class:`~selflearn.assistant.nlu.HomeAssistantNlu`, ``strict+gazetteer``) -- "set the
    {area} lights to {number} percent" is the gazetteer's (issue 53).

    ``said``: requests of the pattern; when given, the target is filled with their values and
    parsed in their homes (with their device's area as context). Otherwise each placeholder of
    the pattern is filled with names of a home of ``homes`` (its areas, floors, devices; 20 or 5
    for a number) until one sentence parses, at most :data:`MAX_TRIES` sentences. A store with
    no home configuration is checked in a home with no names."""
    target = " ".join(target.split())
    if not target:
        return TargetCheck(False, "the target is empty")
    if target == " ".join(source.split()):
        return TargetCheck(False, "the target is the request pattern itself")
    problem = placeholder_problem(source, target)
    if problem is not None:
        return TargetCheck(False, problem)
    tries = itertools.islice(_sentences(source, target, homes, said), MAX_TRIES)
    first: str | None = None
    tried, places = 0, set[str]()
    with _NLU_LOCK:
        nlu = _assistant_nlu()
        for sentence, home, area_id in tries:
            first = first or sentence
            tried += 1
            places.add(home.home_id)
            try:
                result = nlu.recognize(sentence, home, area_id, explain_failures=False)
            except ValueError:  # the gazetteer refuses some homes (an area name it finds ambiguous)
                continue
            if result.trace.matched:
                intent = result.trace.intent
                by = " by the gazetteer matcher" if result.trace.matcher == "gazetteer" else ""
                return TargetCheck(True, f"parses as {intent}{by} ({sentence!r})", sentence, intent)
    where = "the requests' own homes" if said else f"{len(places)} home(s) of the store"
    if not homes and not said:
        where = "a home with no names (the store has no home configuration)"
    more = f" and {tried - 1} more sentence(s)" if tried > 1 else ""
    return TargetCheck(
        False,
        f"{target!r} does not parse in Home Assistant's templates nor its gazetteer matcher: tried "
        f"{first!r}{more} in {where}",
        first,
    )


_NLU_LOCK = threading.Lock()
"""The matcher's result cache is not thread-safe (pages and forms are served from a thread pool)."""


@cache
def _assistant_nlu() -> HomeAssistantNlu:
    """The matching the assistant runs on a rewritten request: strict templates, then the gazetteer."""
    from selflearn.assistant.nlu import HomeAssistantNlu

    return HomeAssistantNlu("strict+gazetteer", cache_size=20_000, unmatched_pass=False)


def _sentences(
    source: str, target: str, homes: Mapping[str, Home], said: Sequence[Said]
) -> Iterable[tuple[str, Home, str | None]]:
    """(sentence, home, context area id) to try: the target filled with each request's values,
    or with each home's names in turn."""
    if said:
        for values, home, area in said:
            sentence = fill(target, values)
            if sentence is not None:
                yield sentence, home, home.area_id_of(area) if area else None
        return
    kinds = PLACEHOLDER.findall(source)
    for home in [homes[h] for h in sorted(homes)] or [Home.from_dict({"home_id": "none"})]:
        options = {
            "area": [a.name for a in home.areas][:3],
            "floor": [f.name for f in home.floors][:2],
            "name": [e.name for e in home.entities][:30],
            "number": list(SAMPLE_NUMBERS),
            "unknown": ["thing"],
        }
        context = home.areas[0].area_id if home.areas else None
        for combo in itertools.islice(itertools.product(*(options[k] for k in kinds)), 60):
            sentence = fill(target, [(k, v.lower()) for k, v in zip(kinds, combo, strict=True)])
            if sentence is not None:
                yield sentence, home, context


def _latest(reviews: Iterable[Review]) -> list[Review]:
    latest: dict[str, Review] = {}
    for r in reviews:
        latest[r.review_id] = r
    return list(latest.values())
