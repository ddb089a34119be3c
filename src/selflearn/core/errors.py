"""Exceptions raised by selflearn.

::

    SelflearnError
    ├── ConfigError        a configuration, home definition or option is invalid, or a saved
    │                      model or table is missing, unreadable or of another version
    ├── DataError          input data cannot be read or learned from (missing file, unknown
    │                      format, logs without what a learner needs)
    ├── StoreError         the DuckDB store is unusable (wrong schema version, locked, corrupt)
    └── DependencyError    an optional component (real ASR tools, faiss, a corpus) is missing
                           or failed

The command line prints any of them as one line, ``error: ...``, and exits with code 2. Bad
*records* are not exceptions: ingest quarantines them with the row number, field and reason
(see :mod:`selflearn.core.store`). A rewriter that fails does not raise either: it passes the
request through and says so in its decision (``RewriteDecision.failed_open``).
"""

from __future__ import annotations


class SelflearnError(Exception):
    """Base class of every error selflearn raises on purpose."""


class ConfigError(SelflearnError):
    """A configuration, home definition or option is invalid."""


class DataError(SelflearnError):
    """Input data cannot be read at all (missing file, unknown format)."""


class StoreError(SelflearnError):
    """The store is unusable (wrong schema version, locked, corrupt)."""


class DependencyError(SelflearnError):
    """An optional component is not installed; the message says how to install it."""
