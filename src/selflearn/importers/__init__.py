"""Importers: logs of real assistants -> selflearn's log records, ingested like ``selflearn ingest``.

>>> from selflearn.core.store import Store
>>> from selflearn.importers import import_file
>>> with Store("logs.duckdb") as store:                                   # doctest: +SKIP
...     result = import_file("ha-debug", "runs.json", store, household_id="home1")
...     print(result.summary())
rows read 8 = stored 8 + already present 0 + quarantined 0

Formats (docs/importers.md): ``ha-debug`` (Home Assistant assist-pipeline debug runs),
``ha-log`` (``home-assistant.log``), ``rasa`` (Rasa tracker-store JSON), ``jsonl`` (the generic
format, JSONL or CSV). Every row either lands in the store or is quarantined with its position
and field, including rows that cannot be converted at all; ``result.summary()`` is the
accounting ``rows read = stored + already present + quarantined``. Turn ids are derived from the
input (a re-import is ``already present``); household, user, device and session ids are
pseudonyms (hashes) of what the input names, unless ``household_id`` is given.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from selflearn.core.errors import ConfigError, DataError
from selflearn.core.store import Store
from selflearn.importers import generic, ha_debug, ha_log, rasa
from selflearn.importers.base import ImportResult, Row, check_household, ingest_rows, zone

KINDS = ("ha-debug", "ha-log", "rasa", "jsonl")
"""The input formats :func:`import_file` reads."""

__all__ = ["KINDS", "ImportResult", "import_file"]


def import_file(
    kind: str,
    path: str | Path,
    store: Store,
    *,
    household_id: str | None = None,
    quarantine_path: str | Path | None = None,
    timezone: str = "UTC",
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Convert ``path`` (format ``kind``) into turns and store them in ``store``.

    ``household_id`` puts every turn in that household (else each format's own pseudonym);
    ``timezone`` is the zone of times written without an offset (``home-assistant.log`` lines,
    generic rows); ``progress(rows so far)`` is called after each stored batch. Raises
    :class:`ConfigError` for an unknown ``kind``, a bad option or a file that is not the format
    at all, and :class:`DataError` for a missing file; bad rows are quarantined, not raised.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown import format {kind!r} (one of {', '.join(KINDS)})")
    source = Path(path)
    if not source.is_file():
        raise DataError(f"no such file: {source}")
    household = check_household(household_id)
    tz = zone(timezone)
    skipped: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    rows: Iterator[Row]
    if kind == "ha-debug":
        rows = ha_debug.convert(source, household)
    elif kind == "ha-log":
        rows = ha_log.convert(source, household, tz, skipped, notes)
    elif kind == "rasa":
        rows = rasa.convert(source, household)
    else:
        rows = generic.convert(source, household, tz)
    report = ingest_rows(
        store, rows, kind=kind, path=source, quarantine_path=quarantine_path, progress=progress
    )
    return ImportResult(kind, source, report, skipped, notes)
