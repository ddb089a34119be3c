"""Who may contribute: the aggregator's register of enrolled install keys.

Any install can make a key, so keys alone do not stop one person from posing as a hundred
installs (a Sybil attack). The register makes fake installs slow and visible:

* **enrolled keys only**: ``selflearn community aggregate --enrolment FILE`` counts a contribution
  only when its install key is in the register (``selflearn community enrol`` puts it there, the
  aggregator's operator deciding who may: an account, an invitation, a hardware id);
* **a limit per day**: at most ``max_per_day`` new keys are enrolled per UTC day (default 50), so
  a hundred fakes take days, in plain view of the operator;
* **an age before counting**: a key counts only in periods that start at least ``min_age_days``
  after it was enrolled (default 7), so a group enrolled to push a rule this week cannot.

Leaving an install out depends only on its key's enrolment, never on what it sent, so a release
stays differentially private. The register names install keys: the aggregator keeps it, like
the privacy ledger (:mod:`selflearn.community.ledger`), and never publishes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from selflearn.community.contribution import Contribution, period_range
from selflearn.community.keys import key_id, public_key_from_hex
from selflearn.community.ledger import read_book, write_book
from selflearn.core.errors import ConfigError

__all__ = ["EnrolmentConfig", "Register"]

FORMAT = "selflearn.community-enrolment.v1"


@dataclass(frozen=True)
class EnrolmentConfig:
    """The register's limits."""

    max_per_day: int = 50
    """New install keys enrolled per UTC day, at most."""
    min_age_days: float = 7.0
    """Days between a key's enrolment and the start of the first period it counts in."""

    def __post_init__(self) -> None:
        if self.max_per_day < 1:
            raise ConfigError(f"max_per_day must be at least 1, got {self.max_per_day}")
        if self.min_age_days < 0:
            raise ConfigError(f"min_age_days must be 0 or more, got {self.min_age_days}")


@dataclass(frozen=True)
class Enrolled:
    """One enrolled install key."""

    public_key: str
    """64 hex digits."""
    enrolled_at: datetime
    note: str = ""


@dataclass
class Register:
    """Enrolled install keys by key id (:func:`~selflearn.community.keys.key_id`)."""

    keys: dict[str, Enrolled] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> Register:
        """The register in ``path``, or an empty one when the file does not exist."""
        data = read_book(path, FORMAT, "enrolment register")
        if data is None:
            return cls()
        try:
            return cls(
                {
                    str(k): Enrolled(
                        str(v["public_key"]), datetime.fromisoformat(v["enrolled_at"]), str(v["note"])
                    )
                    for k, v in (data.get("keys") or {}).items()
                }
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"the enrolment register {path} is unreadable: {exc!r}") from exc

    def save(self, path: str | Path) -> Path:
        """Write the register to ``path`` (a new file renamed over the old one)."""
        keys = {
            k: {"public_key": v.public_key, "enrolled_at": v.enrolled_at.isoformat(), "note": v.note}
            for k, v in sorted(self.keys.items())
        }
        return write_book(path, FORMAT, {"keys": keys})

    def enrol(
        self,
        public_hex: str,
        config: EnrolmentConfig = EnrolmentConfig(),
        now: datetime | None = None,
        note: str = "",
    ) -> tuple[str, Enrolled, bool]:
        """Enrol the install key ``public_hex`` (64 hex digits): its key id, its entry, and whether
        it is new (a key enrolled before keeps its first date). Raises :class:`ConfigError` for a
        malformed key, or when ``config.max_per_day`` keys were enrolled on ``now``'s UTC day."""
        when = (now or datetime.now(UTC)).astimezone(UTC)
        install = key_id(public_key_from_hex(public_hex))
        if install in self.keys:
            return install, self.keys[install], False
        today = sum(e.enrolled_at.astimezone(UTC).date() == when.date() for e in self.keys.values())
        if today >= config.max_per_day:
            raise ConfigError(
                f"{today} install keys were enrolled on {when.date()} already (the limit is "
                f"{config.max_per_day} a day): enrol {install} tomorrow"
            )
        entry = self.keys[install] = Enrolled(public_hex.lower(), when, note)
        return install, entry, True

    def refusal(
        self, install: str, public_hex: str, period_start: datetime, config: EnrolmentConfig
    ) -> str | None:
        """Why a contribution of ``install`` (with ``public_hex``) to the period starting at
        ``period_start`` does not count, or None when it does."""
        entry = self.keys.get(install)
        if entry is None or entry.public_key != public_hex.lower():
            return "not enrolled"
        counts_from = entry.enrolled_at + timedelta(days=config.min_age_days)
        if period_start < counts_from:
            return (
                f"enrolled on {entry.enrolled_at.date()}: counts from periods starting {counts_from.date()}"
            )
        return None

    def admitted(
        self, contributions: list[Contribution], config: EnrolmentConfig
    ) -> tuple[list[Contribution], list[tuple[str, str]]]:
        """The contributions that count, and (install, why) for each one left out."""
        keep: list[Contribution] = []
        left: list[tuple[str, str]] = []
        for c in contributions:
            why = self.refusal(c.install, c.public_key, period_range(c.period)[0], config)
            if why is None:
                keep.append(c)
            else:
                left.append((c.install, why))
        return keep, left
