"""Markdown for ``docs/corpora.md``: the mapping tables and the measured counts of each corpus.

``python -m selflearn.simulation.corpora [--markdown]`` runs :func:`_main` (see ``__main__.py``).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence

from selflearn.simulation.corpora.common import LoadReport
from selflearn.simulation.corpora.data_dir import DATA_DIR_ENV, DEFAULT_DATA_DIR
from selflearn.simulation.corpora.loaders import CORPORA, load_with_report
from selflearn.simulation.corpora.mapping import ENTITY_TYPE_MAP, INTENT_MAP

__all__ = ["entity_map_markdown", "intent_map_markdown", "report_markdown"]


# --------------------------------------------------------------------------------------------
# Documentation
# --------------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def intent_map_markdown() -> str:
    """The :data:`INTENT_MAP` as a Markdown table (used in ``docs/corpora.md``)."""
    lines = [
        "| corpus intent | Home Assistant intent | fixed slots | may also become | rule / reason |",
        "|---|---|---|---|---|",
    ]
    for label in sorted(INTENT_MAP):
        m = INTENT_MAP[label]
        fixed = ", ".join(f"{k}={v}" for k, v in sorted(m.fixed_slots.items())) or ""
        note = m.rule + (" — " if m.rule and m.reason else "") + m.reason
        lines.append(f"| {label} | {m.intent} | {fixed} | {', '.join(m.alternatives)} | {_cell(note)} |")
    return "\n".join(lines) + "\n"


def entity_map_markdown() -> str:
    """The entity-type rules as a Markdown table."""
    lines = ["| entity type | becomes |", "|---|---|"]
    lines += [f"| {k} | {_cell(v)} |" for k, v in ENTITY_TYPE_MAP.items()]
    return "\n".join(lines) + "\n"


def report_markdown(reports: Sequence[LoadReport]) -> str:
    """Counts of several :class:`LoadReport` as Markdown tables."""
    lines = [
        "| corpus | rows read | phrasings kept | of which OutOfScope | in-scope labels rerouted to "
        "OutOfScope | duplicates | dropped |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        rerouted = sum(r.rerouted_out_of_scope.values())
        lines.append(
            f"| {r.corpus} | {r.rows_read} | {r.kept} | {r.out_of_scope} | {rerouted} | "
            f"{r.duplicates} | {r.dropped_total} |"
        )
    intents = sorted({i for r in reports for i in r.per_intent})
    lines += [
        "",
        "Kept phrasings per Home Assistant intent:",
        "",
        "| intent | " + " | ".join(r.corpus for r in reports) + " |",
        "|---|" + "---|" * len(reports),
    ]
    for intent in intents:
        lines.append(f"| {intent} | " + " | ".join(str(r.per_intent.get(intent, 0)) for r in reports) + " |")
    labelled = [r for r in reports if r.corpus != "ha_tests"]
    if labelled:
        lines += [
            "",
            "Kept phrasings per corpus intent, by Home Assistant intent:",
            "",
            "| corpus intent | " + " | ".join(r.corpus for r in labelled) + " |",
            "|---|" + "---|" * len(labelled),
        ]
        for label in sorted({k for r in labelled for k in r.per_original}):
            cells = []
            for r in labelled:
                counts = r.per_original.get(label, Counter())
                cells.append(", ".join(f"{i} {n}" for i, n in sorted(counts.items(), key=lambda kv: -kv[1])))
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Dropped utterances by reason:", "", "| corpus | reason | count |", "|---|---|---|"]
    for r in reports:
        for reason, count in sorted(r.dropped.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"| {r.corpus} | {reason} | {count} |")
    lines += [
        "",
        "In-scope corpus intents rerouted to OutOfScope, by reason:",
        "",
        "| corpus | intent:reason | count |",
        "|---|---|---|",
    ]
    for r in reports:
        for reason, count in sorted(r.rerouted_out_of_scope.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"| {r.corpus} | {reason} | {count} |")
    return "\n".join(lines) + "\n"


def _main(argv: Sequence[str]) -> int:
    markdown = "--markdown" in argv
    reports = [load_with_report(name)[1] for name in CORPORA]
    if not any(r.available for r in reports):
        print(
            f"no corpora found (set {DATA_DIR_ENV} or run from a directory with "
            f"{DEFAULT_DATA_DIR.as_posix()})",
            file=sys.stderr,
        )
        return 1
    if markdown:
        print(report_markdown(reports))
        return 0
    for r in reports:
        print(
            f"{r.corpus}: available={r.available} rows={r.rows_read} kept={r.kept} "
            f"out_of_scope={r.out_of_scope} duplicates={r.duplicates} dropped={r.dropped_total}"
        )
        for intent, count in sorted(r.per_intent.items()):
            print(f"    {intent:32s} {count}")
        for reason, count in r.dropped.most_common():
            print(f"    dropped {reason:40s} {count}")
    return 0
