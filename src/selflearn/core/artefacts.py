"""The learner contract: how every learned component is configured, fitted, saved and loaded.

One shape, after scikit-learn's:

* the constructor only stores parameters (a config object or keyword arguments);
* ``fit(data) -> self`` learns; what it learned sits in attributes ending in ``_``;
* ``save(folder) -> Path`` writes a folder and returns it: a description file
  :data:`DESCRIPTION` (``model.json``, a JSON object with at least ``format``) plus the
  component's binary parts;
* ``load(folder)`` (a classmethod) reads it back, checking the format first.

Formats are named ``selflearn.<component>.v<N>`` (:func:`format_name`); ``N`` goes up whenever
a saved folder of the old version would be read wrongly. Components that hold others save
each into a sub-folder of their own, with its own description.

A component saves with :func:`write_description` and loads with :func:`read_description`,
wrapping its other reads in :func:`reading`::

    def save(self, folder: str | Path) -> Path:
        out = write_description(folder, FORMAT, {"classes": self.classes_})
        self.booster_.save_model(str(out / "booster.txt"))
        return out

    @classmethod
    def load(cls, folder: str | Path) -> Ranker:
        meta = read_description(folder, FORMAT, "ranker", retrain="selflearn train rewriter")
        with reading(folder, "ranker", extra=(lgb.basic.LightGBMError,)):
            booster = lgb.Booster(model_file=str(Path(folder) / "booster.txt"))

Every failure to load is a :class:`~selflearn.core.errors.ConfigError` (the folder a command or
the service was given is not a usable saved component) whose message names the folder, what it
should hold, and the command that writes a new one: "``models/r`` is not a saved ranker
(missing model.json); make one with `selflearn train rewriter`", "``models/r``: unreadable
ranker: <why>", "``models/r``: ranker format 'selflearn.ranker.v1' is not 'selflearn.ranker.v2':
retrain with ...". A folder written before this contract (its description under an older
name) is named as such.

>>> format_name("ranker", 3)
'selflearn.ranker.v3'
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selflearn.core.errors import ConfigError

DESCRIPTION = "model.json"
"""The description file every saved component's folder holds."""

FORMAT_PATTERN = re.compile(r"selflearn\.[a-z][a-z0-9-]*\.v\d+")
"""What every format name looks like."""

LEGACY_DESCRIPTIONS = (
    "rewriter.json",
    "ranker.json",
    "knowledge.json",
    "intents.json",
    "metadata.json",
    "meta.json",
)
"""Description files of folders saved before the one contract: recognised only to say so."""


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def format_name(component: str, version: int) -> str:
    """The format string of ``component`` at ``version``."""
    name = f"selflearn.{component}.v{version}"
    if not FORMAT_PATTERN.fullmatch(name):
        raise ValueError(f"bad component name {component!r}")
    return name


@contextmanager
def reading(
    folder: str | Path,
    what: str,
    extra: tuple[type[BaseException], ...] = (),
    retrain: str = "",
) -> Iterator[None]:
    """Turn a failed read inside the block into a :class:`ConfigError` naming ``folder``,
    ``what`` it should hold and the file or reason. ``extra``: further exception types that mean
    "unreadable" (OSError, ValueError -- which covers bad JSON --, KeyError, TypeError and
    AttributeError -- content of the wrong shape -- always do); ``retrain``: the command that
    writes one."""
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
        raise ConfigError(f"{folder} is not a saved {what} (missing {name}){hint}") from exc
    except unreadable as exc:
        raise ConfigError(f"{folder}: unreadable {what}: {exc}{hint}") from exc


def check_format(
    folder: str | Path, meta: Any, expected: str | tuple[str, ...], what: str, retrain: str = ""
) -> None:
    """Raise :class:`ConfigError` unless ``meta["format"]`` is ``expected`` (or one of them, the
    current first); ``retrain`` names the command that writes a current one."""
    if not isinstance(meta, Mapping):
        raise ConfigError(f"{folder}: unreadable {what}: its description is not a JSON object")
    found = meta.get("format")
    accepted = (expected,) if isinstance(expected, str) else expected
    if found not in accepted:
        hint = f": retrain with `{retrain}`" if retrain else ""
        raise ConfigError(f"{folder}: {what} format {found!r} is not {accepted[0]!r}{hint}")


def write_description(folder: str | Path, fmt: str, meta: Mapping[str, Any] | None = None) -> Path:
    """Create ``folder`` and write its :data:`DESCRIPTION` (``format`` first, then ``meta``);
    returns the folder."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    body = {"format": fmt, **{k: v for k, v in (meta or {}).items() if k != "format"}}
    (out / DESCRIPTION).write_text(json.dumps(body, indent=2, default=str) + "\n", encoding="utf-8")
    return out


def save_atomically(folder: str | Path, save: Callable[[Path], Any]) -> Path:
    """Run ``save(path)`` into a new folder beside ``folder``, then put it in ``folder``'s place,
    so that a reader (the service's ``--watch``, a reload, another command) finds the previous
    folder whole, or the new one whole, never half of either -- also when the process is killed
    while saving. The swap is two renames: for an instant between them ``folder`` is missing (a
    reader sees no folder, not a broken one); leftovers of a killed save (``.NAME.saving-*``,
    ``.NAME.old-*``) are removed by the next save. Returns ``folder``."""
    out = Path(folder)
    parent = out.parent
    parent.mkdir(parents=True, exist_ok=True)
    for leftover in (*parent.glob(f".{out.name}.saving-*"), *parent.glob(f".{out.name}.old-*")):
        shutil.rmtree(leftover, ignore_errors=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{out.name}.saving-", dir=parent))
    try:
        save(fresh)
        _fsync_tree(fresh)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    old = None
    if out.is_symlink() or out.exists():
        old = parent / f".{out.name}.old-{fresh.name.rsplit('-', 1)[-1]}"
        os.rename(out, old)
    os.rename(fresh, out)
    fsync_path(parent)
    if old is not None:
        if old.is_symlink() or old.is_file():
            old.unlink()
        else:
            shutil.rmtree(old, ignore_errors=True)
    return out


def fsync_path(path: Path) -> None:
    """Flush a file or a folder's entries to the disk (best effort where the system refuses)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` to the disk (before it is renamed in)."""
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        fsync_path(path)
    fsync_path(folder)


def read_description(
    folder: str | Path, fmt: str | tuple[str, ...], what: str, retrain: str = ""
) -> dict[str, Any]:
    """The description of the component saved in ``folder``, checked to be of format ``fmt`` (or
    of one of several a reader still understands).

    Raises:
        ConfigError: the folder or its description is missing or unreadable, it holds another
            format, or it was saved before the one contract (named as such).
    """
    src = Path(folder)
    if not (src / DESCRIPTION).exists():
        legacy = [name for name in LEGACY_DESCRIPTIONS if (src / name).exists()]
        if legacy:
            hint = f": retrain with `{retrain}`" if retrain else ""
            raise ConfigError(
                f"{src} holds a {what} saved by an earlier selflearn ({legacy[0]}, no {DESCRIPTION}){hint}"
            )
    with reading(src, what, retrain=retrain):
        meta = json.loads((src / DESCRIPTION).read_text(encoding="utf-8"))
    check_format(src, meta, fmt, what, retrain=retrain)
    return dict(meta)
