"""What the report shows, as plain data: :func:`collect` reads a store (and optionally a mined
rewrite table and a trained rewriter) into a :class:`ReportData`; :mod:`selflearn.report.render`
turns that into HTML. Nothing here writes HTML, and nothing here reads simulation truth: every
number comes from what selflearn itself estimated from the logs (the ``defects``, ``rephrases``
and ``fpi`` signal tables), so the report works the same on real logs.

The heavy part runs in DuckDB: one temporary per-turn table (a cursor of its own, dropped at the
end) that every aggregate reads. Only the distinct (home, request) pairs go through the Python
delexicalizer (:mod:`selflearn.core.delex`), the same one the miner uses, so a request's pattern
here is the ``source`` a mined rule would have.

Definitions (``docs/report.md`` has the long version):

* a turn is a **defect** when its P(defect) (``defects`` table, ``selflearn signals``) is at
  least :data:`DEFECT_THRESHOLD` -- the miner's threshold;
* a **first attempt** is a turn that rephrases no earlier turn (``rephrases`` table); the
  **defect rate** is the share of scored first attempts that are defects;
* a **failure point** is the ``fpi`` table's prediction when ``selflearn fpi predict`` ran,
  else the stage the turn's own trace shows failing (:data:`FAILURE_LABELS`);
* a logged rewrite **won** when the rewritten turn is not a defect and **lost** when it is; a
  loss is a **wrong action** when the assistant acted on it (result ``success``) and the user
  still objected (barge-in, a "no", a rephrase).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from selflearn.core.errors import ConfigError
from selflearn.rewrite.review import review_id
from selflearn.rewrite.table import RewriteTable

if TYPE_CHECKING:
    from selflearn.rewrite.rewriter import Rewriter


class RewriterLock(Protocol):
    """A lock held around each decision of a shared rewriter (``threading.Lock``)."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...


DEFECT_THRESHOLD = 0.5
"""A turn is a defect when its P(defect) is at least this (the miner's ``defect_threshold``)."""

MAX_ROWS = 500
"""Most rows shown in the rule and decision tables (the rest are counted)."""

EXAMPLES = 3
"""Example requests shown per failing pattern."""

STAGES = (
    "reading turns",
    "delexicalizing requests",
    "defect rates",
    "unrecognized requests",
    "rules and decisions",
    "before / after",
)
"""The stages :func:`collect` reports to its ``progress`` callback, in order."""

FAILURE_LABELS = {
    "false_wake": "false wake",
    "asr": "ASR (misheard)",
    "nlu": "NLU (not understood)",
    "er": "entity resolution",
    "result": "result (error / unsupported)",
    "correct": "correct (FPI sees no failing stage)",
    "question": "asked a question",
    "acted": "acted, user objected",
    "no_trace": "no stage trace",
}
"""Display names of failure points: the FPI classes (``selflearn.core.schema.FAILURE_POINTS``)
and the extra trace-only outcomes (``question``, ``acted``, ``no_trace``)."""

_RANGE = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})\s*(?:\.\.\s*(\d{4}-\d{2}-\d{2}))?\s*$")


def pseudonym(household_id: str) -> str:
    """A short stable pseudonym of a household id (the raw id never appears in the report)."""
    return "h-" + hashlib.blake2b(f"selflearn-report\x1f{household_id}".encode(), digest_size=4).hexdigest()


def pair_id(source: str, target: str) -> str:
    """The id a rule of the online layers gets in the report: the id of a verdict on it
    (:func:`selflearn.rewrite.review.review_id`), so the review page's verdicts find their rows.
    A mined rule keeps its own id."""
    return review_id(source, target)


@dataclass(frozen=True)
class DateRange:
    """Whole days, both ends included (UTC)."""

    start: date
    end: date

    @classmethod
    def parse(cls, text: str, option: str = "date range") -> DateRange:
        """``"2026-01-01..2026-01-07"`` (or one day, ``"2026-01-03"``)."""
        match = _RANGE.match(text)
        if match is None:
            raise ConfigError(
                f"{option} must look like 2026-01-01..2026-01-07 (or one day, 2026-01-03), not {text!r}"
            )
        try:
            start = date.fromisoformat(match.group(1))
            end = date.fromisoformat(match.group(2) or match.group(1))
        except ValueError as exc:
            raise ConfigError(f"{option} {text!r} is not a calendar date range: {exc}") from exc
        if end < start:
            raise ConfigError(f"{option} {text!r} ends before it starts")
        return cls(start, end)

    @property
    def label(self) -> str:
        return self.start.isoformat() if self.start == self.end else f"{self.start}..{self.end}"

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def sql(self, column: str = "day") -> str:
        """A SQL condition on a ``DATE`` column."""
        return f"{column} BETWEEN DATE '{self.start}' AND DATE '{self.end}'"


@dataclass(frozen=True)
class Notice:
    """Something the reader must know before trusting a section (e.g. signals not computed)."""

    level: Literal["warning", "info"]
    text: str
    command: str | None = None
    """The command that fixes it, if any."""


@dataclass(frozen=True)
class Rate:
    """Defects among first attempts in one group (a day, an intent, a home, ...)."""

    label: str
    turns: int
    """Scored first attempts."""
    defects: int

    @property
    def rate(self) -> float:
        return self.defects / self.turns if self.turns else 0.0


@dataclass(frozen=True)
class Breakdown:
    """The defect rate split by one property of the turns."""

    key: str
    """Short name, also the table's id (``by-<key>``)."""
    title: str
    note: str
    """Where the grouping comes from."""
    rows: list[Rate]
    more: int = 0
    """Groups not shown."""


@dataclass(frozen=True)
class Example:
    """One failing request of a pattern, as said (never with its ids)."""

    text: str
    """What the user said (before any rewrite)."""
    times: int
    last_seen: datetime
    home: str
    """Pseudonym of the home that said it last."""
    status: str | None
    """The assistant's result status the last time."""
    failure_point: str | None


FixKind = Literal["table", "logged", "rewriter", "concept"]


@dataclass(frozen=True)
class Fix:
    """A fix selflearn learned or proposes for a failing pattern, with its evidence."""

    kind: FixKind
    """``table``: a mined rule; ``logged``: what the online rewriter did to these requests in the
    logs; ``rewriter``: what the given rewriter decides now; ``concept``: something taught."""
    source: str
    target: str
    evidence: str
    rule_id: str | None = None
    status: str = ""
    review: str | None = None


CandidateOrigin = Literal["table", "users", "rewriter"]


@dataclass(frozen=True)
class CandidateFix:
    """The best candidate fix selflearn has for a failing pattern -- also one the rewriter would
    not apply unasked -- checked as the rewriter would use it: its placeholders fillable from the
    pattern's values, parsing in Home Assistant's strict templates in a home of the store, no
    polarity flip, nothing sensitive (locks, covers, alarms); see
    :mod:`selflearn.report.candidates`.
    Accepting it records a review (:attr:`decision`) that holds from the next request on."""

    source: str
    """The failing pattern."""
    target: str
    """The pattern it would be rewritten to."""
    origins: tuple[CandidateOrigin, ...]
    """Where it comes from: ``table`` a rule of the mined table; ``users`` what the pattern's own
    users said next, right after it failed, and that worked (the ``rephrases`` links);
    ``rewriter`` the rewriter's ranked candidates, or what it does now."""
    evidence: str
    """Where it comes from and its evidence, in plain words."""
    example: str
    """The sentence that parsed: a latest failing request of the pattern rewritten by it, or,
    when none of theirs parses, the target filled with a home's names and numbers (the evidence
    then says so)."""
    parses_as: str | None
    """The intent Home Assistant's strict templates read in :attr:`example`."""
    review_id: str
    """The id of the verdict accepting it records (:func:`pair_id`, or the mined rule's id)."""
    decision: Literal["approved", "edited"]
    """What accepting it records: ``approved`` for an active mined rule (the rewriter applies it
    already), else ``edited`` -- the pattern rewritten to :attr:`target`."""
    users: int = 0
    """Users who said it right after the pattern failed, and it worked."""
    homes: int = 0
    """Their homes."""
    successes: int = 0
    """Times it worked right after the pattern failed."""
    score: float | None = None
    """The rewriter's score for it, when it ranked it."""
    rule_id: str | None = None
    """The mined rule's id, when it is a rule of the table."""
    review: str | None = None
    """The verdict in force on it (``approved``, ``edited``, ``rejected``), if any."""


@dataclass(frozen=True)
class Pattern:
    """A failing request pattern (delexicalized as the miner does)."""

    pattern: str
    failing: int
    """Defective turns saying it (first attempts and retries)."""
    turns: int
    """All scored turns saying it."""
    users: int
    """Distinct users among the failing turns."""
    homes: int
    """Distinct homes among the failing turns."""
    failure_point: str | None
    """The most common failure point of its failing turns."""
    failure_points: dict[str, int]
    examples: list[Example]
    fixes: list[Fix]
    rewriter_note: str | None = None
    """Why the given rewriter leaves it alone, when it does."""
    candidate: CandidateFix | None = None
    """The best candidate fix offered for it (:class:`CandidateFix`)."""
    candidate_note: str | None = None
    """Why none is offered, when none is."""

    @property
    def success_rate(self) -> float:
        return 1.0 - self.failing / self.turns if self.turns else 0.0


@dataclass(frozen=True)
class Outcomes:
    """Logged rewritten turns and how they ended (from the defect signals)."""

    turns: int = 0
    wins: int = 0
    losses: int = 0
    wrong_actions: int = 0
    unscored: int = 0

    @property
    def ratio(self) -> float | None:
        return self.wins / self.losses if self.losses else None


@dataclass(frozen=True)
class Rule:
    """A row of the mined rewrite table, with what happened when it was applied."""

    rule_id: str
    source: str
    target: str
    source_example: str
    target_example: str
    p_source: float
    p_target: float
    users: int
    households: int
    support: int
    sensitive: bool
    status: str
    """``active``, ``demoted`` (by the miner), ``refused`` (today's guards), ``would be demoted``."""
    reason: str
    logged: Outcomes
    review: str | None = None
    community: str | None = None
    """The community release the rule came from (``selflearn community pull``), or None: mined."""


@dataclass(frozen=True)
class Decision:
    """The online rewriter's logged decisions for one (rule, source, target)."""

    rule_id: str
    """The table rule id for the precomputed layer, else :func:`pair_id` of (source, target)."""
    logged_rule: str | None
    """``turn.rewrite.rule_id`` as logged (``nbest:...``, ``global:...``, ``personal``, ...)."""
    layer: str
    source: str
    target: str
    outcomes: Outcomes
    mean_score: float
    homes: int
    worked_unrewritten: float | None
    """Success rate of the same pattern in turns that were not rewritten (None: none scored)."""
    unrewritten_turns: int
    verdict: str
    reason: str
    review: str | None = None
    community: str | None = None
    """The community release of the table rule that made it, or None."""


@dataclass(frozen=True)
class Period:
    """Figures of one date range."""

    range: DateRange
    turns: int
    first_attempts: int
    defects: int
    mean_p_defect: float | None
    homes: int
    rewrites: Outcomes
    by_failure_point: dict[str, int]

    @property
    def rate(self) -> float | None:
        return self.defects / self.first_attempts if self.first_attempts else None


@dataclass(frozen=True)
class Comparison:
    before: Period
    after: Period
    defaulted: bool
    """Whether the ranges are the default halves of the store's time span."""


@dataclass(frozen=True)
class Signals:
    """Which signal tables the numbers come from."""

    scored: int
    """Turns with a P(defect)."""
    unscored: int
    defect_model: str | None
    rephrases: int
    """Turns the rephrase detector looked at."""
    fpi_model: str | None
    fpi_turns: int
    """Turns the FPI scored (``fpi`` table); the failure point of the others is their trace's."""


@dataclass
class ReportData:
    """Everything the report page shows (see :func:`collect`)."""

    store: str
    generated_at: datetime
    first: datetime | None
    last: datetime | None
    turns: int
    households: int
    users: int
    signals: Signals
    notices: list[Notice] = field(default_factory=list)
    first_attempts: int = 0
    defects: int = 0
    mean_p_defect: float | None = None
    days: list[Rate] = field(default_factory=list)
    """Per day (label ``YYYY-MM-DD``), oldest first, days without turns included."""
    days_by_failure_point: dict[str, list[Rate]] = field(default_factory=dict)
    """Failure point -> per day (same days as :attr:`days`): its defects among the day's first attempts."""
    breakdowns: list[Breakdown] = field(default_factory=list)
    unrecognized: list[Pattern] = field(default_factory=list)
    unrecognized_more: int = 0
    rules: list[Rule] = field(default_factory=list)
    rules_source: str | None = None
    rules_more: int = 0
    decisions: list[Decision] = field(default_factory=list)
    decisions_more: int = 0
    rewrites: Outcomes = field(default_factory=Outcomes)
    comparison: Comparison | None = None
    rewriter_source: str | None = None

    @property
    def defect_rate(self) -> float | None:
        return self.defects / self.first_attempts if self.first_attempts else None

    @property
    def has_signals(self) -> bool:
        return self.signals.scored > 0


def fix_sources(
    table: Path | str | None, rewriter: Path | str | Rewriter | None
) -> tuple[RewriteTable | None, Rewriter | None]:
    """The mined table and the rewriter candidate fixes come from: ``table`` a table folder,
    ``rewriter`` a rewriter folder or a loaded one, whose table stands in when ``table`` is not
    given."""
    rules_table = RewriteTable.load(table) if table is not None else None
    loaded: Rewriter | None = None
    if isinstance(rewriter, str | Path):
        from selflearn.rewrite.rewriter import Rewriter

        loaded = Rewriter.load(rewriter)
    elif rewriter is not None:
        loaded = rewriter
    if loaded is not None and rules_table is None:
        rules_table = loaded.table_
    return rules_table, loaded


def sum_outcomes(items: Any) -> Outcomes:
    total = Outcomes()
    for o in items:
        total = Outcomes(
            total.turns + o.turns,
            total.wins + o.wins,
            total.losses + o.losses,
            total.wrong_actions + o.wrong_actions,
            total.unscored + o.unscored,
        )
    return total


def table_source(table: RewriteTable | None) -> str | None:
    if table is None:
        return None
    where = str(table.path) if table.path is not None else "(in memory)"
    return f"{where} ({table.version}, {table.num_rows:,} rules, {len(table):,} active)"


def verdict_of(o: Outcomes, worked_unrewritten: float | None) -> tuple[str, str]:
    """Keep or (would be) demote a logged online rule, and why."""
    if o.unscored == o.turns:
        return "unscored", "no defect signal for these turns yet (selflearn signals)"
    if o.losses > o.wins:
        return "would be demoted", f"more losses than wins ({o.wins} wins, {o.losses} losses)"
    if worked_unrewritten is not None and o.turns and o.wins / o.turns < worked_unrewritten:
        return "worse than unrewritten", (
            f"works {o.wins / o.turns:.0%} rewritten vs {worked_unrewritten:.0%} when the same pattern "
            "was not rewritten"
        )
    return "keep", ""


def first_rules(table: RewriteTable, n: int) -> list[dict[str, Any]]:
    """The first ``n`` rows of a rewrite table in the report's order -- active first, then most
    users, most support, by source -- sorted column-wise (stable, as Python's ``sorted``), so a
    table of millions of rules is not read into Python whole (:meth:`RewriteTable.first`)."""
    return table.first(n)


def from_community(decisions: list[Decision], table: RewriteTable) -> list[Decision]:
    """Mark the logged decisions of the precomputed layer whose rule came from a community release."""
    release, shared = table.community()
    if release is None:
        return decisions
    return [
        replace(d, community=release) if d.layer == "precomputed" and d.rule_id in shared else d
        for d in decisions
    ]
