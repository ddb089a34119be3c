"""What an install shares with the community: ``selflearn community contribute``.

Per period (an ISO week, ``2026-W10``), the install computes from its own logs -- with the
miner's engine and delexicalizer (:mod:`selflearn.mining`), never reading simulation truth --
which *failing pattern -> fixing pattern* pairs its users met, as delexicalized patterns with
placeholders (``kill the {area} lights -> turn off the {area} lights``), and for each how many
of its users:

* ``rescues``: said the failing pattern, it failed, and a later reformulation in the same chain
  was the fixing pattern and worked;
* ``failed``: did the same but the fixing pattern failed too;
* ``wins`` / ``losses``: had the failing pattern already rewritten to the fixing one (a deployed
  rule), and it then worked / failed;
* ``approved`` / ``rejected``: a person's verdicts on the rule in the period (the review page,
  ``selflearn review``): approved, or edited to this fixing pattern / rejected, or edited away
  from it;
* ``declined``: answered "no" when the assistant asked "Did you mean <fixing>?" about the failing
  pattern. (A "yes" runs the proposal as the turn, so it is already a win or a loss.)

Each count is of distinct users and clipped to ``max_count`` (default 1), and at most
``max_patterns`` pairs (default 10) are shared per period: the install's contribution to any
count the aggregator releases is bounded. Nothing else leaves the install: no text as said, no
household, user or turn id, no time, no count of turns. A pair is left out when either pattern
holds a name the assistant could not resolve or an e-mail or web address or phone number
(``{unknown}``, :mod:`selflearn.core.scrub`), a word of one of this install's configured names
that is not a generic word ("zorblax" of "Zorblax Lamp" said alone), or when the rewrite is one
the community never releases (:func:`refusal`: a sensitive action, a polarity flip, another
action or kind of thing, other placeholders).

The file is JSON lines a person can read before sending it: a header (format, the install's key
id and public key, the period, the bounds), one line per pair, and the install key's Ed25519
signature over the lines above it. :func:`read_contribution` validates a file and raises a
:class:`~selflearn.core.errors.DataError` naming the record and the field.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from selflearn.community.keys import key_id, public_hex, public_key_from_hex, sign, verify
from selflearn.core.delex import PLACEHOLDER
from selflearn.core.errors import ConfigError, DataError
from selflearn.core.guards import (
    CARRIER_WORDS,
    OBJECT_WORDS,
    POLARITY,
    SENSITIVE_WORDS,
    TIME_WORDS,
    changes_target,
    is_sensitive,
    rejection,
)
from selflearn.core.home import Home, normalize_name
from selflearn.core.schema import Review
from selflearn.core.scrub import private_spans
from selflearn.mining.engines import DIALECT, HOP_SQL, MAX_CHAIN, STEPS, Engine
from selflearn.mining.miner import home_delexicalizers, make_delex

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

FORMAT = "selflearn.community-contribution.v1"
"""The ``format`` of a contribution's header line."""

MAX_WORDS = 16
"""Longest pattern (words and placeholders) a contribution may hold."""

MAX_BYTES = 1 << 20
"""Largest contribution file read (a bounded contribution is a few kilobytes)."""

_TOKEN = re.compile(r"[a-z']+|\{(?:area|floor|name|number)\}")
_COUNTS = ("rescues", "failed", "wins", "losses", "approved", "rejected", "declined")
_OPTIONAL = frozenset({"declined"})
"""Counts a record may leave out (0): added after the first files were written, and written only
when not 0, so a reader that predates them still reads a contribution without any."""

GENERIC_WORDS = frozenset(
    {
        *CARRIER_WORDS,
        *OBJECT_WORDS,
        *(w for sides in POLARITY.values() for side in sides for w in side),
        *SENSITIVE_WORDS,
        *TIME_WORDS,
        *"""room kitchen bedroom bathroom living dining hall hallway office garden garage upstairs
        downstairs basement attic study lounge porch patio front back main ceiling floor kids guest
        master laundry utility den nursery entrance landing toilet shower desk bed table wall corner
        outside outdoor indoor yard driveway balcony terrace side top bottom left right small big
        large little all every everything strip led spot spots spotlight spotlights pendant
        chandelier floor sconce lamp reading night bedside window windows upper lower first second
        third ground house home""".split(),  # noqa: SIM905
    }
)
"""Words a configured name may hold that identify nobody (rooms, devices, actions, carriers): a
pattern may keep them as words. Any other word of this install's names keeps a pair at home."""


@dataclass(frozen=True)
class ContributionConfig:
    """How much one install shares per period."""

    max_patterns: int = 10
    """Most (failing, fixing) pairs in one period's contribution."""
    max_count: int = 1
    """Each count of a pair (distinct users) is clipped to this."""
    defect_threshold: float = 0.5
    """A turn counts as failed when its P(defect) is at least this (as the miner)."""

    def __post_init__(self) -> None:
        if self.max_patterns < 1 or self.max_count < 1:
            raise ConfigError("max_patterns and max_count must be at least 1")
        if not 0.0 <= self.defect_threshold <= 1.0:
            raise ConfigError(f"defect_threshold must be between 0 and 1, got {self.defect_threshold!r}")


@dataclass(frozen=True)
class Evidence:
    """One shared pair and its clipped counts of distinct users."""

    failing: str
    fixing: str
    rescues: int = 0
    failed: int = 0
    wins: int = 0
    losses: int = 0
    approved: int = 0
    rejected: int = 0
    declined: int = 0

    @property
    def helped(self) -> float:
        """Share of this install's evidence where the fixing pattern worked or was approved, in [0, 1]."""
        good = self.rescues + self.wins + self.approved
        total = good + self.failed + self.losses + self.rejected + self.declined
        return good / total if total else 0.0


@dataclass
class Contribution:
    """A contribution as written or read."""

    install: str
    """The install key's id (:func:`~selflearn.community.keys.key_id`)."""
    public_key: str
    """The install's Ed25519 public key, 64 hex digits."""
    period: str
    """ISO week, ``YYYY-Www``."""
    bounds: dict[str, int]
    """``max_patterns`` and ``max_count`` the install applied."""
    records: list[Evidence]
    created_at: str = ""
    dropped: dict[str, int] = field(default_factory=dict)
    """Pairs kept at home, by reason (never written into the file)."""


# --- periods --------------------------------------------------------------------------------------


def period_of(when: datetime) -> str:
    """The ISO week ``when`` falls in (``2026-W10``)."""
    year, week, _ = when.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


def period_range(period: str) -> tuple[datetime, datetime]:
    """First instant of the ISO week ``period`` and of the week after (UTC)."""
    match = re.fullmatch(r"(\d{4})-W(\d{2})", period)
    if match is None:
        raise ConfigError(f"a period is an ISO week such as 2026-W10, not {period!r}")
    try:
        start = date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError as exc:
        raise ConfigError(f"no such ISO week: {period!r}") from exc
    begin = datetime(start.year, start.month, start.day, tzinfo=UTC)
    return begin, begin + timedelta(days=7)


def weeks_ending(period: str, weeks: int) -> list[str]:
    """The ``weeks`` ISO weeks that end with ``period``, oldest first."""
    start, _ = period_range(period)
    return [period_of(start - timedelta(days=7 * k)) for k in range(weeks - 1, -1, -1)]


# --- what may be shared ---------------------------------------------------------------------------


def pattern_problem(pattern: Any) -> str | None:
    """Why ``pattern`` is not a clean delexicalized pattern a contribution may hold, or None:
    lower-case words and the placeholders ``{area}``, ``{floor}``, ``{name}``, ``{number}`` only
    (no ``{unknown}``, no digits), at most :data:`MAX_WORDS` of them, nothing the scrubber finds."""
    if not isinstance(pattern, str):
        return f"expected a string, got {type(pattern).__name__}"
    tokens = pattern.split(" ")
    if not pattern or any(not _TOKEN.fullmatch(t) for t in tokens):
        shown = next((t for t in tokens if not _TOKEN.fullmatch(t)), "")
        return f"not a delexicalized pattern (lower-case words and placeholders, one space apart): {shown!r}"
    if len(tokens) > MAX_WORDS:
        return f"{len(tokens)} words, more than {MAX_WORDS}"
    if private_spans(pattern):
        return "holds an e-mail or web address or a phone number"
    return None


def refusal(failing: str, fixing: str) -> str | None:
    """Why the community never releases ``failing -> fixing``, or None: a sensitive action
    (locks, covers and garage doors, alarms: :func:`~selflearn.core.guards.is_sensitive`), a
    rewrite the online guards reject (:func:`~selflearn.core.guards.rejection`: a polarity flip,
    another action or kind of thing, a sensitive action chosen, ...) or one that changes the
    placeholders. Applied by the install and again by the aggregator (a colluding group writes
    its own files)."""
    if failing == fixing:
        return "the same pattern"
    if is_sensitive(failing) or is_sensitive(fixing):
        return "sensitive action"
    if changes_target(failing, fixing):
        return "other placeholders"
    why = rejection(failing, fixing)
    return f"guard: {why}" if why is not None else None


def name_words(homes: pa.Table) -> frozenset[str]:
    """Words of the configured names of every home ``homes`` holds (``home_id``, ``config``)
    that are not :data:`GENERIC_WORDS`."""
    words: set[str] = set()
    for config in homes.column("config").to_pylist():
        if not config:
            continue
        home = Home.from_dict(json.loads(config))
        names = [n for f in home.floors for n in (f.name, *f.aliases)]
        names += [n for a in home.areas for n in (a.name, *a.aliases)]
        names += [n for e in home.entities for n in e.spoken_names]
        words.update(w for n in names for w in normalize_name(n).split())
    return frozenset(words - GENERIC_WORDS)


# --- computing the evidence -------------------------------------------------------------------------

RESCUES_SQL = """
SELECT {by}h.src AS failing, b.pattern AS fixing,
       count(DISTINCT CASE WHEN NOT b.defect THEN h.user_id END) AS rescues,
       count(DISTINCT CASE WHEN b.defect THEN h.user_id END) AS failed,
       count(*) AS times
FROM ({hops}) h JOIN states b ON b.turn_id = h.cur
WHERE b.organic AND h.src <> b.pattern
GROUP BY {group}h.src, b.pattern
"""
"""Per (failing pattern, later reformulation in the same chain): distinct users it worked for,
and distinct users it failed for (the miner's chain walk, :data:`~selflearn.mining.engines.HOP_SQL`);
``{by}`` and ``{group}`` are empty, or select and group by the household."""

WINS_SQL = """
SELECT {by}pattern AS failing, rewritten_pattern AS fixing,
       count(DISTINCT CASE WHEN NOT defect THEN user_id END) AS wins,
       count(DISTINCT CASE WHEN defect THEN user_id END) AS losses,
       count(*) AS times
FROM states
WHERE NOT organic AND rewritten_pattern IS NOT NULL AND pattern <> rewritten_pattern
GROUP BY {group}pattern, rewritten_pattern
"""
"""Per rewrite already applied (said pattern -> rewritten pattern): distinct users it worked
and failed for."""

DECLINED_SQL = """
SELECT t.household_id AS household, t.user_id, t.timestamp AS ts, t.text AS said,
       t.dialogue.proposal AS proposal, {join_unresolved} AS unresolved
FROM turns t
WHERE t.dialogue.kind = 'confirm' AND t.dialogue.role = 'question' AND t.dialogue.answer = 'no'
  AND t.dialogue.proposal IS NOT NULL
"""
"""The requests a user answered "no" to "Did you mean <proposal>?" about (a "no" ran nothing:
the turn's text is what was said)."""


def local_evidence(
    engine: Engine,
    period: str,
    config: ContributionConfig | None = None,
    reviews: Iterable[Review] = (),
) -> tuple[list[Evidence], Counter[str]]:
    """The pairs this install shares for ``period`` from the logs ``engine`` reads (the miner's
    engines: DuckDB or Spark) and the ``reviews`` of the period (the store's verdicts), bounded
    and filtered (see the module docstring), and how many pairs were kept at home, by reason."""
    config = config or ContributionConfig()
    homes = engine.homes()
    merged = _counted(engine, homes, period, config, per_household=False).get("", {})
    start, end = period_range(period)
    verdicts: dict[tuple[str, str], set[str]] = {}
    for review in reviews:
        if not start <= review.timestamp < end:
            continue
        # an edit says the target was wrong and the edited one right
        marks = [
            ((review.pattern, review.target), "approved" if review.decision == "approved" else "rejected")
        ]
        if review.decision == "edited" and review.edited_target:
            marks.append(((review.pattern, review.edited_target), "approved"))
        for pair, verdict in marks:
            verdicts.setdefault(pair, set()).add(verdict)
    for pair, kinds in verdicts.items():
        row = merged.setdefault(pair, dict.fromkeys(_COUNTS, 0))
        for kind in kinds:
            row[kind] += 1
    return _bounded(merged, name_words(homes), config)


def evidence_by_household(
    engine: Engine, period: str, config: ContributionConfig | None = None
) -> dict[str, tuple[list[Evidence], Counter[str]]]:
    """What each household of a store holding many would share for ``period`` as an install of
    its own (one pass over the logs; no reviews): household id -> (pairs, kept at home by
    reason), each household's pairs filtered with its own home's names and bounded on its own.
    For a deployment that serves several homes from one store, and for benchmarks."""
    config = config or ContributionConfig()
    homes = engine.homes()
    row = {str(h): i for i, h in enumerate(homes.column("home_id").to_pylist())}
    out: dict[str, tuple[list[Evidence], Counter[str]]] = {}
    for household, merged in sorted(_counted(engine, homes, period, config, per_household=True).items()):
        mine = homes.slice(row[household], 1) if household in row else homes
        out[household] = _bounded(merged, name_words(mine), config)
    return out


def _counted(
    engine: Engine, homes: pa.Table, period: str, config: ContributionConfig, per_household: bool
) -> dict[str, dict[tuple[str, str], dict[str, int]]]:
    """Clipped-later counts of distinct users per (failing, fixing) pair in ``period`` (and times
    seen), keyed by household id (``""`` for the whole store when not ``per_household``);
    ``homes`` is ``engine.homes()``."""
    start, end = period_range(period)
    delex = make_delex(homes, config.defect_threshold)
    ts_type = pa.timestamp("us", tz="UTC")
    lo, hi = pa.scalar(start, ts_type), pa.scalar(end, ts_type)

    def in_period(batch: pa.RecordBatch) -> pa.RecordBatch:
        # the period's turns only, then delexicalized (a row's state depends on that row alone,
        # so an install with months of logs delexicalizes one week)
        ts = pc.cast(batch.column(batch.schema.names.index("ts")), ts_type)
        return delex(batch.filter(pc.and_(pc.greater_equal(ts, lo), pc.less(ts, hi))))

    engine.load_states(in_period)
    for name, sql in STEPS:
        engine.create(name, sql)
    depth = 1
    while depth < MAX_CHAIN and engine.create(f"hops_{depth + 1}", HOP_SQL.format(prev=depth)):
        depth += 1
    hops = " UNION ALL ".join(f"SELECT * FROM hops_{d}" for d in range(1, depth + 1))
    rescues, wins = RESCUES_SQL.format(hops=hops, by="", group=""), WINS_SQL.format(by="", group="")
    if per_household:
        rescues = RESCUES_SQL.format(hops=hops, by="h.household_id AS household, ", group="h.household_id, ")
        wins = WINS_SQL.format(by="household_id AS household, ", group="household_id, ")
    merged: dict[str, dict[tuple[str, str], dict[str, int]]] = {}
    for sql in (rescues, wins):
        for row in engine.fetch(f"SELECT * FROM ({sql}) x ORDER BY failing, fixing").to_pylist():
            pairs = merged.setdefault(str(row.get("household") or ""), {})
            counts = pairs.setdefault((row["failing"], row["fixing"]), dict.fromkeys(_COUNTS, 0))
            for name in (*_COUNTS, "times"):
                if name in row:
                    counts[name] = counts.get(name, 0) + int(row[name] or 0)
    for (household, pair), users in _declined(engine, homes, start, end, per_household).items():
        counts = merged.setdefault(household, {}).setdefault(pair, dict.fromkeys(_COUNTS, 0))
        counts["declined"] += len(users)
    return merged


def _declined(
    engine: Engine, homes: pa.Table, start: datetime, end: datetime, per_household: bool
) -> dict[tuple[str, tuple[str, str]], set[str]]:
    """(household id or ``""``, (failing, proposed) pattern pair) -> the users who said "no" to
    the proposal in ``[start, end)``, each request and proposal delexicalized with its home."""
    sql = DECLINED_SQL.format(**DIALECT.get(engine.name, DIALECT["duckdb"]))
    delexicalizer = home_delexicalizers(homes)
    out: dict[tuple[str, tuple[str, str]], set[str]] = {}
    for row in engine.fetch(sql).to_pylist():
        if not start <= row["ts"] < end:
            continue
        household = str(row["household"])
        delex = delexicalizer(household)
        unknown = row["unresolved"].split("\x1f") if row["unresolved"] else ()
        pair = (delex(row["said"] or "", unknown).pattern, delex(row["proposal"], ()).pattern)
        if pair[0] != pair[1]:
            out.setdefault((household if per_household else "", pair), set()).add(str(row["user_id"]))
    return out


def _bounded(
    merged: dict[tuple[str, str], dict[str, int]], private: frozenset[str], config: ContributionConfig
) -> tuple[list[Evidence], Counter[str]]:
    """The pairs of ``merged`` an install may share: clean, free of the words of its names
    (``private``), releasable, counts clipped, at most ``max_patterns``: the most evidence first
    (before clipping: users it helped, then fewer it failed, then times seen), ties in an order
    that does not favour any words (a hash of the pair, not the alphabet, which would share
    "adjust ..." before "turn off ...")."""
    dropped: Counter[str] = Counter()
    kept: list[tuple[tuple[int, int, int, str], Evidence]] = []
    for (failing, fixing), counts in merged.items():
        times = counts.pop("times", 0)
        if not any(counts.values()):
            continue
        why = pattern_problem(failing) or pattern_problem(fixing)
        if why is not None:
            dropped["not a clean pattern (a name it could not resolve, an address, a number)"] += 1
            continue
        if {w for w in (*failing.split(), *fixing.split()) if not PLACEHOLDER.fullmatch(w)} & private:
            dropped["a word of this install's names"] += 1
            continue
        why = refusal(failing, fixing)
        if why is not None:
            dropped[f"never released ({why})"] += 1
            continue
        clipped = {name: min(value, config.max_count) for name, value in counts.items()}
        good = counts["rescues"] + counts["wins"] + counts["approved"]
        bad = counts["failed"] + counts["losses"] + counts["rejected"] + counts["declined"]
        tie = hashlib.blake2b(f"{failing}\x1f{fixing}".encode(), digest_size=8).hexdigest()
        kept.append(((-good, bad, -times, tie), Evidence(failing, fixing, **clipped)))
    kept.sort(key=lambda item: item[0])
    if len(kept) > config.max_patterns:
        dropped["over the bound of pairs per period"] += len(kept) - config.max_patterns
    return [e for _, e in kept[: config.max_patterns]], dropped


def build_contribution(
    engine: Engine,
    key: Ed25519PrivateKey,
    period: str,
    config: ContributionConfig | None = None,
    reviews: Iterable[Review] = (),
) -> Contribution:
    """This install's contribution for ``period`` from the logs ``engine`` reads and the store's
    ``reviews`` (not yet written: :func:`write_contribution`)."""
    config = config or ContributionConfig()
    records, dropped = local_evidence(engine, period, config, reviews)
    return Contribution(
        install=key_id(key),
        public_key=public_hex(key),
        period=period,
        bounds={"max_patterns": config.max_patterns, "max_count": config.max_count},
        records=records,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        dropped=dict(sorted(dropped.items())),
    )


# --- the file -------------------------------------------------------------------------------------


def write_contribution(contribution: Contribution, key: Ed25519PrivateKey, path: str | Path) -> Path:
    """Write ``contribution`` as signed JSON lines to ``path``; returns it."""
    if public_hex(key) != contribution.public_key:
        raise ConfigError("the contribution is signed by the key it names: give that install's key")
    start, end = period_range(contribution.period)
    header = {
        "kind": "header",
        "format": FORMAT,
        "install": contribution.install,
        "public_key": contribution.public_key,
        "period": contribution.period,
        "from": start.date().isoformat(),
        "to": (end - timedelta(days=1)).date().isoformat(),
        "bounds": contribution.bounds,
        "records": len(contribution.records),
        "created_at": contribution.created_at,
        "about": "(failing pattern -> fixing pattern) pairs and how many of this install's users "
        "each helped (rescues, wins) or did not (failed, losses), verdicts of its people "
        "(approved, rejected) and the users who said no when asked about it (declined, written "
        "when not 0), counts clipped to max_count; see docs/community.md",
    }
    lines = [json.dumps(header, ensure_ascii=False)]
    lines += [
        json.dumps({"kind": "evidence", **_written(r)}, ensure_ascii=False) for r in contribution.records
    ]
    body = "".join(line + "\n" for line in lines).encode()
    signature = {"kind": "signature", "algorithm": "ed25519", "signature": sign(key, body)}
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(body + (json.dumps(signature) + "\n").encode())
    return out


def _written(record: Evidence) -> dict[str, Any]:
    """A record's fields as the file holds them: the optional counts only when not 0."""
    return {k: v for k, v in asdict(record).items() if k not in _OPTIONAL or v}


def read_contribution(path: str | Path, max_patterns: int | None = None) -> Contribution:
    """Read and validate a contribution file: every line JSON, the header's fields, each record's
    patterns and counts within the bounds, no pair twice, at most ``max_patterns`` records (and
    no more than the header's bound), the install's id matching its key and the signature
    verifying. Raises :class:`DataError` naming the file, the record and the field."""
    src = Path(path)
    try:
        size = src.stat().st_size
        if size > MAX_BYTES:
            raise DataError(f"{src}: {size:,} bytes, more than a contribution may have ({MAX_BYTES:,})")
        raw = src.read_bytes()
    except OSError as exc:
        raise DataError(f"{src}: cannot read: {exc}") from exc
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) < 2:
        raise DataError(f"{src}: a contribution has a header line and a signature line at least")
    parsed: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise DataError(f"{src} line {number}: not JSON ({exc})") from exc
        if not isinstance(value, dict):
            raise DataError(f"{src} line {number}: expected a JSON object, got {type(value).__name__}")
        parsed.append(value)
    header, body, last = parsed[0], parsed[1:-1], parsed[-1]
    where = f"{src} line 1 (header)"
    _expect(header, "kind", "header", where)
    _expect(header, "format", FORMAT, where)
    for name in ("install", "public_key", "period", "created_at"):
        if not isinstance(header.get(name), str):
            raise DataError(f"{where}: field {name!r}: expected a string, got {header.get(name)!r}")
    try:
        period_range(header["period"])
    except ConfigError as exc:
        raise DataError(f"{where}: field 'period': {exc}") from exc
    try:
        public = public_key_from_hex(header["public_key"])
    except ConfigError as exc:
        raise DataError(f"{where}: field 'public_key': {exc}") from exc
    if key_id(header["public_key"]) != header["install"]:
        raise DataError(f"{where}: field 'install': {header['install']!r} is not the id of the public key")
    bounds = header.get("bounds")
    if not isinstance(bounds, dict) or not all(
        isinstance(bounds.get(k), int) and not isinstance(bounds.get(k), bool) and bounds[k] >= 1
        for k in ("max_patterns", "max_count")
    ):
        raise DataError(f"{where}: field 'bounds': expected max_patterns and max_count >= 1, got {bounds!r}")
    limit = bounds["max_patterns"] if max_patterns is None else min(bounds["max_patterns"], max_patterns)
    if header.get("records") != len(body):
        raise DataError(f"{where}: field 'records': says {header.get('records')!r}, the file has {len(body)}")
    if len(body) > limit:
        raise DataError(f"{where}: field 'records': {len(body)} records, more than the bound of {limit}")
    records: list[Evidence] = []
    seen: set[tuple[str, str]] = set()
    for i, record in enumerate(body, 1):
        where = f"{src} record {i} (line {i + 1})"
        _expect(record, "kind", "evidence", where)
        extra = set(record) - {"kind", "failing", "fixing", *_COUNTS}
        if extra:
            raise DataError(f"{where}: field {sorted(extra)[0]!r}: not a field of a record")
        for name in ("failing", "fixing"):
            why = pattern_problem(record.get(name))
            if why is not None:
                raise DataError(f"{where}: field {name!r}: {why}")
        for name in _COUNTS:
            value = record.setdefault(name, 0) if name in _OPTIONAL else record.get(name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= bounds["max_count"]:
                raise DataError(
                    f"{where}: field {name!r}: expected an integer from 0 to {bounds['max_count']} "
                    f"(bounds.max_count), got {value!r}"
                )
        pair = (record["failing"], record["fixing"])
        if pair in seen:
            raise DataError(f"{where}: field 'fixing': the pair {pair[0]!r} -> {pair[1]!r} is there twice")
        seen.add(pair)
        records.append(Evidence(*pair, **{name: record[name] for name in _COUNTS}))
    where = f"{src} line {len(lines)} (signature)"
    _expect(last, "kind", "signature", where)
    _expect(last, "algorithm", "ed25519", where)
    signed = b"".join(line + b"\n" for line in lines[:-1])
    if not isinstance(last.get("signature"), str) or not verify(public, signed, last["signature"]):
        raise DataError(f"{where}: field 'signature': does not verify with the header's public key")
    return Contribution(
        install=header["install"],
        public_key=header["public_key"],
        period=header["period"],
        bounds={k: int(bounds[k]) for k in ("max_patterns", "max_count")},
        records=records,
        created_at=header["created_at"],
    )


def _expect(record: dict[str, Any], name: str, value: str, where: str) -> None:
    if record.get(name) != value:
        raise DataError(f"{where}: field {name!r}: expected {value!r}, got {record.get(name)!r}")
