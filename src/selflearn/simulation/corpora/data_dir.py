"""Finding the shared data directory that holds the corpora (``hwu64/``, ``slurp/``, ...).

The data is read at run time from there; nothing is copied into the project.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

__all__ = ["DATA_DIR_ENV", "DEFAULT_DATA_DIR", "find_data_dir"]

DATA_DIR_ENV: Final = "SELFLEARN_DATA_DIR"
"""Environment variable naming the shared data directory (the one holding ``hwu64/`` etc.)."""

DEFAULT_DATA_DIR: Final = Path("..") / "shared" / "data"
"""Default shared data directory when neither an explicit directory nor :data:`DATA_DIR_ENV` is
given: ``../shared/data``, relative to the working directory (the project root sits beside the
workspace's ``shared/`` folder)."""

_FALLBACK_DATA_DIR: Final = Path("/work/shared/data")
"""Absolute location tried after :data:`DEFAULT_DATA_DIR` (the workspace's shared data)."""

_DEFAULT_DATA_DIRS: Final = (DEFAULT_DATA_DIR, _FALLBACK_DATA_DIR)


def find_data_dir(explicit: Path | None = None) -> Path | None:
    """The shared data directory, or ``None`` when there is none.

    ``explicit`` wins when given; otherwise ``$SELFLEARN_DATA_DIR`` when set; otherwise
    ``../shared/data`` relative to the working directory, then ``/work/shared/data``. An
    explicit directory or environment variable that does not exist gives ``None`` rather than
    silently falling back to another directory.
    """
    if explicit is not None:
        return explicit if explicit.is_dir() else None
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        path = Path(env)
        return path if path.is_dir() else None
    for candidate in _DEFAULT_DATA_DIRS:
        path = candidate if candidate.is_absolute() else Path.cwd() / candidate
        if path.is_dir():
            return path.resolve()
    return None
