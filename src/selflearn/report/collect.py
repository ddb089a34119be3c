"""The report's entry point: :func:`collect` reads a store into a
:class:`~selflearn.report.views.ReportData` (the dataclasses of :mod:`selflearn.report.views`,
filled by the SQL of :mod:`selflearn.report.queries`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from selflearn.core.errors import ConfigError, StoreError
from selflearn.core.store import Store
from selflearn.report.queries import Collector
from selflearn.report.views import DateRange, ReportData, RewriterLock, fix_sources

if TYPE_CHECKING:
    from selflearn.rewrite.rewriter import Rewriter


def collect(
    store: Store,
    *,
    table: Path | str | None = None,
    rewriter: Path | str | Rewriter | None = None,
    before: DateRange | str | None = None,
    after: DateRange | str | None = None,
    top: int = 50,
    reviews: Mapping[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
    rewriter_lock: RewriterLock | None = None,
) -> ReportData:
    """Read ``store`` into a :class:`ReportData`.

    ``table``: a mined rewrite-table folder (``selflearn mine``); ``rewriter``: a trained rewriter
    folder (``selflearn train rewriter``) or a loaded :class:`~selflearn.rewrite.Rewriter` (its
    ``rewrite_one`` is called, so a shared one must be locked by the caller), whose table is used when
    ``table`` is not given and which is asked what it would do now with the latest failing request of
    each top pattern; ``before``/``after``: the date ranges to compare (``"2026-01-01..2026-01-07"``;
    default: the first and second half of the store's days; one given alone is compared with the rest
    of the store); ``top``: failing patterns and largest groups shown; ``reviews``: rule id -> review
    status (``approved``/``rejected``/``edited``) shown beside the rules and candidates;
    ``progress(stage)`` is called as each of :data:`~selflearn.report.views.STAGES` starts;
    ``rewriter_lock``: the lock of a loaded ``rewriter`` that serves requests meanwhile (held around
    each of its decisions, waited for at most a second; the rewriter is asked no more once it was busy
    that long).

    Each top pattern gets the best candidate fix selflearn has for it
    (:class:`~selflearn.report.views.CandidateFix`), from the table, from what its own users said next
    and worked, and from the rewriter."""
    if top < 1:
        raise ConfigError(f"top must be at least 1, got {top}")
    ranges = [
        DateRange.parse(r, name) if isinstance(r, str) else r
        for r, name in ((before, "--before"), (after, "--after"))
    ]
    say = progress or (lambda _stage: None)
    rules_table, loaded = fix_sources(table, rewriter)
    cur = store.cursor()
    try:
        return Collector(store, cur, top, dict(reviews or {}), say, rewriter_lock).run(
            rules_table, loaded, ranges[0], ranges[1]
        )
    except duckdb.Error as exc:
        raise StoreError(f"cannot read {store.path} for the report: {exc}") from exc
    finally:
        cur.close()
