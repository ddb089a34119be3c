"""``selflearn label export``: the labels as files a person reviews and installs (docs/label-export.md)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from selflearn.cli.common import open_store, out
from selflearn.cli.label import label_app
from selflearn.core.errors import ConfigError
from selflearn.labels.sentences import MIN_CONFIDENCE

__all__ = ["label_app"]

SHOWN = 20
"""How many left-out templates the command lists one by one (the rest are counted)."""


@label_app.command("export")
def export_cmd(
    store_path: Annotated[Path, typer.Option("--store", "-s", help="DuckDB store holding the labels.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the exports to.")],
    household: Annotated[
        str | None,
        typer.Option(
            "--household",
            help="Also write this household's own sentences (custom_sentences/en/selflearn_<household>"
            ".yaml); the dataset and Rasa file then hold only its turns.",
        ),
    ] = None,
    min_users: Annotated[
        int, typer.Option("--min-users", "-k", help="k: distinct users a global sentence needs.", min=1)
    ] = 5,
    min_confidence: Annotated[
        float,
        typer.Option(
            "--min-confidence", help="Least label confidence for a sentence or a Rasa example.", min=0, max=1
        ),
    ] = MIN_CONFIDENCE,
    formats: Annotated[
        str,
        typer.Option(
            "--format", help="Comma-separated: ha (custom sentences), jsonl (dataset), rasa (nlu.yml)."
        ),
    ] = "ha,jsonl,rasa",
    keep_ids: Annotated[
        bool,
        typer.Option(
            "--keep-ids", help="Keep raw turn, household and user ids in the dataset (default: hashes)."
        ),
    ] = False,
    wildcards: Annotated[
        bool,
        typer.Option(
            "--wildcards",
            help="Write a shopping or to-do item as Home Assistant's wildcard list "
            "({shopping_list_item:item}) instead of the words said: more phrasings pool, but on noisy speech "
            "the templates add what the recogniser misheard (docs/label-export.md).",
        ),
    ] = False,
) -> None:
    """Export the labels as Home Assistant custom sentences, a JSONL dataset and Rasa NLU data.

    Example: selflearn label export --store selflearn.duckdb --out exports"""
    from selflearn.labels.export import FORMATS, LEFT_OUT, export_labels

    chosen = [f.strip() for f in formats.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise ConfigError(
            f"unknown --format {', '.join(unknown) or repr(formats)}; expected some of {', '.join(FORMATS)}"
        )
    with open_store(store_path, read_only=True) as store:
        result = export_labels(
            store,
            out_dir,
            household=household,
            min_users=min_users,
            min_confidence=min_confidence,
            formats=chosen,
            keep_ids=keep_ids,
            wildcards=wildcards,
        )
    written = {
        "ha": f"{result.global_sentences} global sentence(s) (said by >= {min_users} users, no own names)",
        "ha_household": f"{result.household_sentences} sentence(s) of household {household}",
        "aliases": f"{result.aliases} candidate alias(es) of household {household}'s devices and areas",
        "jsonl": f"{result.dataset_rows} labelled turn(s)",
        "rasa": f"{result.rasa_examples} example(s)",
    }
    for key, path in result.files.items():
        out.print(f"wrote {escape(str(path))}: {escape(written[key])}", soft_wrap=True)
    if result.left_out:
        turns = sum(x.turns for x in result.left_out)
        kinds = Counter(x.kind for x in result.left_out)
        summary = ", ".join(f"{n} {LEFT_OUT[kind]}" for kind, n in kinds.most_common())
        out.print(
            f"left out {len(result.left_out)} sentence(s) ({turns} labelled turn(s)): {escape(summary)}",
            soft_wrap=True,
        )
        for item in result.left_out[:SHOWN]:
            where = f" [household {item.household}]" if item.household is not None else ""
            out.print(f"  {escape(item.what)!r}{escape(where)}: {escape(item.reason)}", soft_wrap=True)
        if len(result.left_out) > SHOWN:
            out.print(f"  ... and {len(result.left_out) - SHOWN} more", soft_wrap=True)
    if "ha" in result.files and household is None and any(x.household for x in result.left_out):
        out.print("  (households' own sentences are written with --household HOUSEHOLD)", soft_wrap=True)
