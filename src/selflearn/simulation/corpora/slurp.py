"""Loader of ``slurp``: SLURP's development split (HWU64's intent naming, token-span entities)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from selflearn.simulation.corpora.common import _Collector, _read_jsonl
from selflearn.simulation.corpora.handlers import _convert
from selflearn.simulation.corpora.utterance import _make_utt

_SLURP_FILE: Final = Path("slurp") / "devel.jsonl"


def _slurp_spans(row: Mapping[str, Any]) -> tuple[str, list[tuple[int, int, str]]]:
    """SLURP token spans as character spans into the sentence (or into the joined tokens when a
    token cannot be found in the sentence)."""
    sentence = str(row.get("sentence") or "")
    surfaces = [str(t.get("surface", "")) for t in row.get("tokens") or [] if isinstance(t, dict)]
    offsets: list[tuple[int, int]] = []
    lower, pos = sentence.lower(), 0
    for surface in surfaces:
        found = lower.find(surface.lower(), pos)
        if found < 0:
            break
        offsets.append((found, found + len(surface)))
        pos = found + len(surface)
    if len(offsets) != len(surfaces):
        sentence = " ".join(surfaces)
        offsets, pos = [], 0
        for surface in surfaces:
            offsets.append((pos, pos + len(surface)))
            pos += len(surface) + 1
    spans: list[tuple[int, int, str]] = []
    for ent in row.get("entities") or []:
        token_ids = [i for i in ent.get("span") or [] if isinstance(i, int) and 0 <= i < len(offsets)]
        if token_ids:
            spans.append((offsets[min(token_ids)][0], offsets[max(token_ids)][1], str(ent.get("type", ""))))
    return sentence, spans


def _slurp_label(row: Mapping[str, Any]) -> str:
    """``scenario_action``: SLURP's ``intent`` field is truncated for a few rows (``query``)."""
    scenario, action = row.get("scenario"), row.get("action")
    if scenario and action:
        return f"{scenario}_{action}"
    return str(row.get("intent") or "")


def _load_slurp(data_dir: Path, collector: _Collector) -> None:
    path = data_dir / _SLURP_FILE
    if not path.is_file():
        return
    collector.report.available = True
    for row in _read_jsonl(path):
        collector.report.rows_read += 1
        sentence, spans = _slurp_spans(row)
        _convert(_slurp_label(row), _make_utt(sentence, spans), "slurp", collector)
