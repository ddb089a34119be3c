"""Reading saved models and tables: one way to say what is missing or broken.

Every learned component saves a folder (a JSON description with a ``format`` string, plus binary
parts) and loads it with :func:`reading` around the file reads and :func:`check_format` on the
description::

    with reading(folder, "ranker", extra=(lgb.basic.LightGBMError,)):
        meta = json.loads((folder / "ranker.json").read_text())
        booster = lgb.Booster(model_file=str(folder / "meaning.txt"))
    check_format(folder, meta, FORMAT, "ranker", retrain="selflearn train rewriter")

A missing file becomes "``models/r`` is not a saved ranker (missing ranker.json)", anything else
that fails to read "``models/r``: unreadable ranker: <why>", and a folder from another version
names both formats and the command that makes a new one. The error class is the caller's:
:class:`~selflearn.core.errors.ConfigError` for artefacts a service is configured with (the rewriter
and its parts), :class:`~selflearn.core.errors.DataError` for models a command reads as input.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selflearn.core.errors import ConfigError, SelflearnError


@contextmanager
def reading(
    folder: str | Path,
    what: str,
    error: type[SelflearnError] = ConfigError,
    extra: tuple[type[BaseException], ...] = (),
    retrain: str = "",
) -> Iterator[None]:
    """Turn a failed read inside the block into ``error`` naming ``folder``, ``what`` it should
    hold and the file or reason. ``extra``: further exception types that mean "unreadable"
    (OSError, ValueError -- which covers bad JSON --, KeyError, TypeError and AttributeError --
    content of the wrong shape -- always do); ``retrain``: the command that writes one."""
    hint = f"; make one with `{retrain}`" if retrain else ""
    unreadable: tuple[type[BaseException], ...] = (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        *extra,
    )
    try:
        yield
    except FileNotFoundError as exc:
        name = Path(exc.filename).name if exc.filename else str(exc)
        raise error(f"{folder} is not a saved {what} (missing {name}){hint}") from exc
    except unreadable as exc:
        raise error(f"{folder}: unreadable {what}: {exc}{hint}") from exc


def check_format(
    folder: str | Path,
    meta: Any,
    expected: str,
    what: str,
    retrain: str = "",
    error: type[SelflearnError] = ConfigError,
    key: str = "format",
) -> None:
    """Raise ``error`` unless ``meta[key]`` is ``expected``; ``retrain`` names the command that
    writes a current one."""
    if not isinstance(meta, Mapping):
        raise error(f"{folder}: unreadable {what}: its description is not a JSON object")
    found = meta.get(key)
    if found != expected:
        hint = f": retrain with `{retrain}`" if retrain else ""
        raise error(f"{folder}: {what} format {found!r} is not {expected!r}{hint}")
