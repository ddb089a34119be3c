"""The aggregator's privacy ledger: what each install's contributions have spent over time.

Every release is (epsilon, delta)-DP for each install's contribution of its period; over many
periods the guarantees add up (basic composition). The ledger -- a JSON file the aggregator keeps
and never publishes, since it names install keys -- records, per install key id, each release its
contribution went into, and lets the aggregator leave out of a release the installs that would
pass a lifetime cap (``selflearn community aggregate --ledger FILE --max-epsilon E``). Leaving an
install out depends only on that install's own past, so the release stays DP.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selflearn.core.errors import ConfigError

FORMAT = "selflearn.community-ledger.v1"


@dataclass
class Ledger:
    """Spent budget per install key id."""

    installs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Key id -> the releases its contributions went into (release, period, epsilon, delta)."""

    @classmethod
    def load(cls, path: str | Path) -> Ledger:
        """The ledger in ``path``, or an empty one when the file does not exist."""
        data = read_book(path, FORMAT, "privacy ledger")
        if data is None:
            return cls()
        return cls({str(k): list(v) for k, v in (data.get("installs") or {}).items()})

    def save(self, path: str | Path) -> Path:
        """Write the ledger to ``path`` (a new file renamed over the old one)."""
        return write_book(path, FORMAT, {"installs": dict(sorted(self.installs.items()))})

    def spent(self, install: str) -> tuple[float, float]:
        """(epsilon, delta) the install's contributions have spent, summed over releases."""
        entries = self.installs.get(install, [])
        return sum(float(e["epsilon"]) for e in entries), sum(float(e["delta"]) for e in entries)

    def admits(self, install: str, epsilon: float, max_epsilon: float | None) -> bool:
        """Whether one more release at ``epsilon`` keeps the install within ``max_epsilon``."""
        return max_epsilon is None or self.spent(install)[0] + epsilon <= max_epsilon + 1e-12

    def record(self, installs: list[str], release: str, period: str, epsilon: float, delta: float) -> None:
        """Note that ``installs`` contributed to ``release`` (once each, however many of the
        weeks it pools an install sent)."""
        for install in dict.fromkeys(installs):
            self.installs.setdefault(install, []).append(
                {"release": release, "period": period, "epsilon": epsilon, "delta": delta}
            )


def read_book(path: str | Path, fmt: str, what: str) -> dict[str, Any] | None:
    """The JSON object in one of the aggregator's private files (``what`` names it in errors),
    checked to be ``fmt``; None when the file does not exist."""
    src = Path(path)
    if not src.exists():
        return None
    try:
        data = json.loads(src.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the {what} {src} is unreadable: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise ConfigError(f"{src} holds no {what} (expected the format {fmt})")
    return data


def write_book(path: str | Path, fmt: str, body: dict[str, Any]) -> Path:
    """Write ``body`` as a ``fmt`` file to ``path`` (a new file renamed over the old one)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps({"format": fmt, **body}, indent=1) + "\n", encoding="utf-8")
    os.replace(partial, out)
    return out
