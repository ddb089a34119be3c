"""Loader of ``hwu64``: the HWU64 home-assistant command corpus (64 intents, character-span
entities)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from selflearn.simulation.corpora.common import _Collector, _read_jsonl
from selflearn.simulation.corpora.handlers import _convert
from selflearn.simulation.corpora.utterance import _make_utt

_HWU64_FILE: Final = Path("hwu64") / "hwu64_cv_minus_slurp_test.jsonl"


def _load_hwu64(data_dir: Path, collector: _Collector) -> None:
    path = data_dir / _HWU64_FILE
    if not path.is_file():
        return
    collector.report.available = True
    for row in _read_jsonl(path):
        collector.report.rows_read += 1
        text = str(row.get("text") or "")
        spans = [
            (int(e["start"]), int(e["end"]), str(e["entity"]))
            for e in row.get("entities") or []
            if isinstance(e, dict) and {"start", "end", "entity"} <= e.keys()
        ]
        _convert(str(row.get("intent") or ""), _make_utt(text, spans), "hwu64", collector)
