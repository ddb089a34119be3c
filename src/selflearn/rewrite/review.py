"""People's verdicts on learned rewrites, applied by the serving rewriter from the next request on.

A verdict (:class:`~selflearn.core.schema.Review`, kept in the store's ``reviews`` table) names a
rule by its request pattern and target pattern (delexicalized: ``kill the {area} lights`` ->
``turn off the {area} lights``) and, for a mined table rule, by its rule id:

* **rejected**: the rule is never applied again -- a rewrite of that source pattern into that
  target pattern (or by that table rule) is dropped, whichever layer proposed it;
* **edited**: requests of the source pattern that failed are rewritten to the edited target,
  filled with the request's own names and values, and acted on (a person wrote it);
* **approved**: nothing changes at run time; the rule is marked for export as a Home Assistant
  custom sentence (``selflearn review export``).

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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from selflearn.core.delex import PLACEHOLDER
from selflearn.core.home import Home
from selflearn.core.schema import Concept, Review
from selflearn.rewrite.table import rule_id as table_rule_id

if TYPE_CHECKING:
    from selflearn.assistant.concept_export import ExportResult

__all__ = ["Reviews", "export_reviewed", "review_id"]


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
                out.rejected_pairs.add((r.pattern, r.target))
                out.edits[r.pattern] = (r.edited_target, r.review_id)
            elif r.decision == "approved":
                out.approved.append(r)
        return out

    def __bool__(self) -> bool:
        return bool(self.rejected_pairs or self.rejected_rules or self.edits)

    def rejects(self, source: str, target: str, rule_id: str | None) -> bool:
        """Whether a rewrite of ``source`` into ``target`` (by ``rule_id``) was rejected."""
        by_rule = rule_id is not None and rule_id in self.rejected_rules
        return by_rule or (source, target) in self.rejected_pairs

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
                user_id=r.reviewer or "reviewer",
                kind="phrasing",
                phrase=r.pattern,
                meaning=(target,),
                timestamp=r.timestamp,
            )
        )
    return export_concepts(concepts, household_id, home, out), left_out


def _latest(reviews: Iterable[Review]) -> list[Review]:
    latest: dict[str, Review] = {}
    for r in reviews:
        latest[r.review_id] = r
    return list(latest.values())
