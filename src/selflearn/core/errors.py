"""Exceptions raised by selflearn.

::

    SelflearnError
    ├── ConfigError        a configuration, home definition or option is invalid
    ├── DataError          input data cannot be read at all (missing file, unknown format)
    ├── StoreError         the DuckDB store is unusable (wrong schema version, locked, corrupt)
    └── DependencyError    an optional component (real ASR, a corpus) is not installed

Bad *records* are not exceptions: ingest quarantines them with the row number, field and reason
(see :mod:`selflearn.core.store`).
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
