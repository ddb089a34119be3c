"""Fetching the public corpora the loaders read (``selflearn data fetch``, docs/corpora.md).

Every file is pinned (:mod:`selflearn.simulation.corpora.pins`): where it comes from -- a raw file
of an upstream repository at a fixed commit --, its size and its SHA-256. A file is written to
``<file>.part`` beside its place, checked, and only then renamed into place, so the loaders
never see a half-written or unverified file:

* a ``.part`` a run left behind (a lost connection, an interrupted run) is resumed: an HTTP
  ``Range`` request asks for the rest, and a server that sends the whole file instead starts it
  over; a resumed file that fails its check is fetched once more from the start;
* a file already in place with the pinned checksum is skipped (one with another checksum is
  fetched again and replaced);
* a file that fails its check is deleted and the fetch stops with a :class:`DataError` naming
  it; so does a network failure (its ``.part`` is kept, for the next run to resume).

Sources: the upstream repositories (the default), or a *mirror* with the data directory's own
layout (``hwu64/...``, ``home_assistant_intents/tests/en/...``, ``slurp/devel.jsonl``): a folder,
or the base URL of a server that serves one. ``hwu64``'s file is derived (HWU64's 10
cross-validation folds minus SLURP's test sentences) and no step here derives it from upstream
yet, so it comes only from a mirror; without one it is reported in
:attr:`FetchReport.unavailable`.
"""

from __future__ import annotations

import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final
from urllib.parse import quote

from selflearn.core.artefacts import file_sha256
from selflearn.core.errors import ConfigError, DataError
from selflearn.simulation.corpora.loaders import CORPORA, CorpusName
from selflearn.simulation.corpora.pins import (
    HA_INTENTS,
    HA_TESTS_FILES,
    HWU64_FILE,
    NLU_EVALUATION_DATA,
    SLURP,
    SLURP_DEVEL,
)

__all__ = ["MANIFEST", "FetchReport", "PinnedFile", "Progress", "Upstream", "fetch_corpora", "files_of"]

RAW_GITHUB: Final = "https://raw.githubusercontent.com"
"""Where upstream files are downloaded from: ``RAW_GITHUB/<repository>/<commit>/<path>``."""

_CHUNK: Final = 1 << 16

Progress = Callable[[str, int, int], None]
"""``progress(path, done, total)``: the file being fetched and the bytes done of all the
selected files (skipped files count as done)."""


@dataclass(frozen=True)
class Upstream:
    """A file of a public repository at a pinned commit."""

    repo: str
    """``owner/name`` on GitHub."""
    commit: str
    """The full commit hash: the file's bytes never change under it."""
    path: str
    """The file's path in the repository."""

    @property
    def url(self) -> str:
        """The raw file's URL at the pinned commit."""
        return f"{RAW_GITHUB}/{self.repo}/{self.commit}/{quote(self.path)}"


@dataclass(frozen=True)
class PinnedFile:
    """One file the loaders read, and how to get it."""

    corpus: CorpusName
    """The corpus it belongs to."""
    path: str
    """Where it goes, relative to the data directory (``/``-separated); a mirror's layout too."""
    sha256: str
    """The SHA-256 of its bytes, hex."""
    size: int
    """Its length in bytes."""
    upstream: Upstream | None
    """Where it is published; ``None`` for a derived file, which only a mirror provides."""
    note: str = ""
    """For a derived file: what it is derived from."""


def _manifest() -> tuple[PinnedFile, ...]:
    repo, commit = HA_INTENTS
    ha = tuple(
        PinnedFile(
            "ha_tests",
            f"home_assistant_intents/tests/en/{rel}",
            sha,
            size,
            Upstream(repo, commit, f"tests/en/{rel}"),
        )
        for rel, sha, size in HA_TESTS_FILES
    )
    hwu_repo, hwu_commit = NLU_EVALUATION_DATA
    hwu64 = PinnedFile(
        "hwu64",
        "hwu64/hwu64_cv_minus_slurp_test.jsonl",
        *HWU64_FILE,
        upstream=None,
        note=f"derived from the 10 cross-validation folds of {hwu_repo} (commit {hwu_commit[:7]}) "
        "minus the sentences of SLURP's test set, and not derivable here yet",
    )
    slurp_repo, slurp_commit = SLURP
    slurp = PinnedFile(
        "slurp",
        "slurp/devel.jsonl",
        *SLURP_DEVEL,
        Upstream(slurp_repo, slurp_commit, "dataset/slurp/devel.jsonl"),
    )
    return (*ha, hwu64, slurp)


MANIFEST: Final[tuple[PinnedFile, ...]] = _manifest()
"""Every file ``selflearn data fetch`` installs, by corpus: ``ha_tests`` (48 files), ``hwu64``
(1, derived), ``slurp`` (1)."""


def files_of(corpora: Iterable[str]) -> tuple[PinnedFile, ...]:
    """The pinned files of ``corpora`` (names of :data:`CORPORA`; another name raises a
    :class:`ConfigError`)."""
    wanted = list(dict.fromkeys(corpora))
    unknown = [name for name in wanted if name not in CORPORA]
    if unknown:
        raise ConfigError(f"unknown corpus {', '.join(unknown)}: expected some of {', '.join(CORPORA)}")
    return tuple(f for f in MANIFEST if f.corpus in wanted)


@dataclass(frozen=True)
class FetchReport:
    """What :func:`fetch_corpora` did (paths relative to :attr:`folder`)."""

    folder: Path
    """The data directory the files are in."""
    fetched: tuple[str, ...]
    """Files downloaded or copied, checked and installed."""
    skipped: tuple[str, ...]
    """Files already in place with the pinned checksum."""
    resumed: tuple[str, ...]
    """The fetched files that continued a ``.part`` left by an earlier run."""
    unavailable: tuple[str, ...]
    """Derived files not fetched because no mirror was given (each with why, after a colon)."""
    bytes_read: int
    """Bytes received from the source."""
    seconds: float
    """Wall time."""


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _open_url(url: str, offset: int, timeout: float) -> tuple[BinaryIO, int]:
    """The response for ``url`` from ``offset`` (a ``Range`` request when it is not 0), and the
    offset the body really starts at: 0 when the server sent the whole file."""
    headers = {"User-Agent": "selflearn-data-fetch"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the .part is not a prefix of this file: start over
            exc.close()
            return _open_url(url, 0, timeout)
        raise
    start = 0
    if response.status == 206:
        content_range = response.headers.get("Content-Range", "")  # "bytes START-END/TOTAL"
        unit, _, span = content_range.partition(" ")
        first = span.partition("-")[0]
        if unit != "bytes" or not first.isdigit() or int(first) != offset:
            response.close()
            return _open_url(url, 0, timeout)
        start = offset
    return response, start


def _open_file(path: Path, offset: int) -> tuple[BinaryIO, int]:
    fh = path.open("rb")
    fh.seek(offset)
    return fh, offset


def _copy_into_part(
    opener: Callable[[int], tuple[BinaryIO, int]],
    file: PinnedFile,
    part: Path,
    advance: Callable[[int], None],
) -> tuple[int, bool]:
    """Fill ``part`` with ``file``'s bytes from ``opener``, resuming what ``part`` holds; the
    bytes read and whether it resumed. Stops reading past the pinned size (the check fails)."""
    have = part.stat().st_size if part.exists() else 0
    if have > file.size:
        part.unlink()
        have = 0
    if have == file.size:
        return 0, True
    stream, start = opener(have)
    read = 0
    advance(start)  # the kept bytes of a resumed .part
    headers = getattr(stream, "headers", None)
    declared = headers.get("Content-Length", "") if headers is not None else ""
    with stream, part.open("ab" if start else "wb") as out:
        while chunk := stream.read(_CHUNK):
            out.write(chunk)
            read += len(chunk)
            advance(len(chunk))
            if start + read > file.size:
                break
    cut = declared.isdigit() and read < int(declared) and start + read <= file.size
    if cut:  # http.client ends a body cut short quietly
        raise ConnectionError(f"the connection closed after {read:,} of {int(declared):,} bytes")
    return read, start > 0


def _fetch_one(
    file: PinnedFile,
    target: Path,
    where: str,
    opener: Callable[[int], tuple[BinaryIO, int]],
    advance: Callable[[int], None],
) -> tuple[int, bool]:
    """Download ``file`` into ``target`` through its ``.part``; the bytes read and whether it
    resumed a ``.part``."""
    part = target.with_name(target.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    total_read = 0
    resumed_any = False
    for _attempt in range(2):
        try:
            read, resumed = _copy_into_part(opener, file, part, advance)
        except FileNotFoundError as exc:
            raise DataError(f"{file.path} is not in the mirror {where} ({exc.filename})") from exc
        except urllib.error.HTTPError as exc:
            raise DataError(
                f"could not fetch {file.path} from {where}: HTTP {exc.code} {exc.reason}"
            ) from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            kept = part.stat().st_size if part.exists() else 0
            if part.exists() and not kept:
                part.unlink()
            resume = f"; {kept:,} bytes kept in {part} for the next run to resume" if kept else ""
            raise DataError(f"could not fetch {file.path} from {where}: {reason}{resume}") from exc
        total_read += read
        resumed_any = resumed_any or resumed
        got = file_sha256(part)
        if got == file.sha256:
            os.replace(part, target)
            return total_read, resumed_any
        size = part.stat().st_size
        part.unlink()
        if not resumed:
            break
        advance(-size)  # a resumed file that fails its check: once more from the start
    raise DataError(
        f"{file.path} from {where} failed its check: SHA-256 {got} ({size:,} bytes), pinned "
        f"{file.sha256} ({file.size:,} bytes); nothing was installed (a damaged or different copy)"
    )


def fetch_corpora(
    folder: Path,
    corpora: Sequence[str] = CORPORA,
    source: str | Path | None = None,
    progress: Progress | None = None,
    timeout: float = 30.0,
) -> FetchReport:
    """Fetch the pinned files of ``corpora`` into the data directory ``folder`` (created if
    needed) from ``source``: ``None`` for the upstream repositories, a folder or ``http(s)://``
    base URL of a mirror with the data directory's layout. Raises a :class:`DataError` naming
    the file on a network failure, a file missing from the mirror or a checksum that differs
    (files installed before it stay); a :class:`ConfigError` for an unknown corpus or a source
    that is neither a folder nor an http(s) URL."""
    files = files_of(corpora)
    mirror_dir: Path | None = None
    base_url: str | None = None
    if source is not None:
        text = str(source)
        if _is_url(text):
            base_url = text.rstrip("/")
        elif text.startswith("file://"):
            mirror_dir = Path(urllib.request.url2pathname(text[len("file://") :]))
        else:
            mirror_dir = Path(source)
        if mirror_dir is not None and not mirror_dir.is_dir():
            raise ConfigError(f"--from {source}: neither a folder nor an http(s):// URL")
    started = time.perf_counter()
    total = sum(f.size for f in files)
    done = 0
    fetched: list[str] = []
    skipped: list[str] = []
    resumed: list[str] = []
    unavailable: list[str] = []
    bytes_read = 0

    def advance(path: str) -> Callable[[int], None]:
        def step(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(path, done, total)

        return step

    for file in files:
        target = folder / file.path
        if target.is_file() and target.stat().st_size == file.size and file_sha256(target) == file.sha256:
            skipped.append(file.path)
            advance(file.path)(file.size)
            continue
        opener: Callable[[int], tuple[BinaryIO, int]]
        url = f"{base_url}/{quote(file.path)}" if base_url is not None else None
        if url is None and mirror_dir is None and file.upstream is not None:
            url = file.upstream.url
        if mirror_dir is not None:
            where = str(mirror_dir)
            local = mirror_dir / file.path

            def opener(offset: int, local: Path = local) -> tuple[BinaryIO, int]:
                return _open_file(local, offset)

        elif url is not None:
            where = url

            def opener(offset: int, url: str = url) -> tuple[BinaryIO, int]:
                return _open_url(url, offset, timeout)

        else:  # a derived file and no mirror
            unavailable.append(f"{file.path}: {file.note}")
            advance(file.path)(file.size)
            continue
        before = done
        read, was_resumed = _fetch_one(file, target, where, opener, advance(file.path))
        advance(file.path)(before + file.size - done)  # exact, however the bytes were counted
        bytes_read += read
        fetched.append(file.path)
        if was_resumed:
            resumed.append(file.path)
    return FetchReport(
        folder=folder,
        fetched=tuple(fetched),
        skipped=tuple(skipped),
        resumed=tuple(resumed),
        unavailable=tuple(unavailable),
        bytes_read=bytes_read,
        seconds=time.perf_counter() - started,
    )
