"""The public loaders: a corpus by name, with or without its :class:`LoadReport`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final, Literal

from selflearn.core.errors import ConfigError
from selflearn.simulation.corpora.common import LoadReport, _Collector
from selflearn.simulation.corpora.data_dir import find_data_dir
from selflearn.simulation.corpora.ha_tests import _load_ha_tests
from selflearn.simulation.corpora.hwu64 import _load_hwu64
from selflearn.simulation.corpora.slurp import _load_slurp
from selflearn.simulation.phrasing import Phrasing

__all__ = [
    "CORPORA",
    "CorpusName",
    "load_corpus",
    "load_ha_tests",
    "load_hwu64",
    "load_slurp",
    "load_with_report",
]

CorpusName = Literal["ha_tests", "hwu64", "slurp"]
CORPORA: Final[tuple[CorpusName, ...]] = ("ha_tests", "hwu64", "slurp")
"""Names accepted by :func:`load_corpus`; each is also the ``source`` of its phrasings."""


# --------------------------------------------------------------------------------------------
# Public loaders
# --------------------------------------------------------------------------------------------

_LOADERS: Final[dict[str, Callable[[Path, _Collector], None]]] = {
    "ha_tests": _load_ha_tests,
    "hwu64": _load_hwu64,
    "slurp": _load_slurp,
}


def load_with_report(name: str, data_dir: Path | None = None) -> tuple[list[Phrasing], LoadReport]:
    """Phrasings of corpus ``name`` (one of :data:`CORPORA`) and what happened on the way.

    ``data_dir`` is the shared data directory (default: :func:`find_data_dir`). A missing
    corpus gives no phrasings and ``report.available == False``; an unknown name raises
    ``ValueError``.
    """
    if name not in _LOADERS:
        raise ConfigError(f"unknown corpus {name!r}; expected one of {', '.join(CORPORA)}")
    report = LoadReport(corpus=name)
    collector = _Collector(report)
    root = find_data_dir(data_dir)
    if root is not None:
        _LOADERS[name](root, collector)
    return collector.phrasings(), report


def load_corpus(name: str, data_dir: Path | None = None) -> list[Phrasing]:
    """Phrasings of corpus ``name`` (one of :data:`CORPORA`); empty when the corpus is absent."""
    return load_with_report(name, data_dir)[0]


def load_ha_tests(data_dir: Path | None = None) -> list[Phrasing]:
    """Home Assistant's English test sentences as phrasings (``source="ha_tests"``)."""
    return load_corpus("ha_tests", data_dir)


def load_hwu64(data_dir: Path | None = None) -> list[Phrasing]:
    """HWU64 utterances as phrasings (``source="hwu64"``)."""
    return load_corpus("hwu64", data_dir)


def load_slurp(data_dir: Path | None = None) -> list[Phrasing]:
    """SLURP devel sentences as phrasings (``source="slurp"``)."""
    return load_corpus("slurp", data_dir)
