"""Finding the shared data directory that holds the corpora (``hwu64/``, ``slurp/``, ...).

The data is read at run time from there; nothing is copied into the project.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

__all__ = ["DATA_DIR_ENV", "DEFAULT_DATA_DIR", "fetch_data_dir", "find_data_dir", "user_data_dir"]

DATA_DIR_ENV: Final = "SELFLEARN_DATA_DIR"
"""Environment variable naming the shared data directory (the one holding ``hwu64/`` etc.)."""

DEFAULT_DATA_DIR: Final = Path("..") / "shared" / "data"
"""Default shared data directory when neither an explicit directory nor :data:`DATA_DIR_ENV` is
given: ``../shared/data``, relative to the working directory (the project root sits beside the
workspace's ``shared/`` folder)."""

_FALLBACK_DATA_DIR: Final = Path("/work/shared/data")
"""Absolute location tried after :data:`DEFAULT_DATA_DIR` (the workspace's shared data)."""


def user_data_dir() -> Path:
    """The user's own data directory, where ``selflearn data fetch`` stores the corpora by
    default: ``$XDG_DATA_HOME/selflearn/data``, else ``~/.local/share/selflearn/data``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "selflearn" / "data"


def fetch_data_dir(explicit: Path | None = None) -> Path:
    """Where ``selflearn data fetch`` stores the corpora: ``explicit`` if given, else
    ``$SELFLEARN_DATA_DIR`` if set, else :func:`user_data_dir` -- each a place
    :func:`find_data_dir` looks in too. The folder need not exist yet."""
    if explicit is not None:
        return explicit
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else user_data_dir()


def find_data_dir(explicit: Path | None = None) -> Path | None:
    """The shared data directory, or ``None`` when there is none.

    ``explicit`` wins when given; otherwise ``$SELFLEARN_DATA_DIR`` when set; otherwise
    ``../shared/data`` relative to the working directory, then :func:`user_data_dir` (where
    ``selflearn data fetch`` stores the corpora), then ``/work/shared/data``. An
    explicit directory or environment variable that does not exist gives ``None`` rather than
    silently falling back to another directory.
    """
    if explicit is not None:
        return explicit if explicit.is_dir() else None
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        path = Path(env)
        return path if path.is_dir() else None
    for candidate in (DEFAULT_DATA_DIR, user_data_dir(), _FALLBACK_DATA_DIR):
        path = candidate if candidate.is_absolute() else Path.cwd() / candidate
        if path.is_dir() and any(path.iterdir()):  # an empty one (a fetch that failed) is no data
            return path.resolve()
    return None
