"""``selflearn concepts``: what households taught the reference assistant -- list, forget, export
as Home Assistant configuration (docs/concepts.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from selflearn.cli.apps import app
from selflearn.cli.common import open_store, out
from selflearn.core.errors import ConfigError, SelflearnError
from selflearn.core.home import Home
from selflearn.core.schema import Concept
from selflearn.core.store import Store

concepts_app = typer.Typer(
    no_args_is_help=True,
    help="What households taught the assistant (names, phrasings, routines, preferences): list, forget, "
    "export as Home Assistant configuration (docs/concepts.md).",
)
app.add_typer(concepts_app, name="concepts")

StoreFile = Annotated[Path, typer.Option("--store", "-s", help="DuckDB store holding the concepts.")]
Household = Annotated[str, typer.Option("--household", help="Household id.")]


def _taught_by(concept: Concept) -> str:
    return f"{concept.user_id} (only them)" if concept.scope == "user" else concept.user_id


def _meaning(concept: Concept) -> str:
    meaning = " | ".join(concept.meaning)
    return f"{meaning} -> {concept.target}" if concept.kind == "name" and concept.target else meaning


@concepts_app.command("list")
def list_cmd(
    store_path: StoreFile,
    household: Annotated[
        str | None, typer.Option("--household", help="Only this household (default: every one).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per concept, one a line.")] = False,
) -> None:
    """List the taught concepts, oldest first.

    Example: selflearn concepts list --store selflearn.duckdb --household h1"""
    with open_store(store_path, read_only=True) as store:
        concepts = store.concepts(household)
    if as_json:
        for concept in concepts:
            typer.echo(concept.model_dump_json())
        return
    if not concepts:
        where = f"household {household}" if household is not None else str(store_path)
        out.print(f"no concepts taught in {escape(where)}", soft_wrap=True)
        return
    table = Table(title=f"{len(concepts)} taught concept{'s' if len(concepts) != 1 else ''} (ids: --json)")
    for column in ("household", "kind", "phrase", "meaning", "taught by", "when"):
        table.add_column(column, overflow="fold", no_wrap=column in ("household", "kind", "when"))
    for c in concepts:
        row = (c.household_id, c.kind, c.phrase, _meaning(c), _taught_by(c), f"{c.timestamp:%Y-%m-%d %H:%M}")
        table.add_row(*(escape(v) for v in row))
    out.print(table)


@concepts_app.command("forget")
def forget_cmd(
    phrase: Annotated[str, typer.Argument(help='The phrase as taught ("big light") or a concept id.')],
    store_path: StoreFile,
    household: Household,
) -> None:
    """Forget what a phrase means in a household (every user's concept for it), or one concept by id.

    Example: selflearn concepts forget --store selflearn.duckdb --household h1 'big light'"""
    from selflearn.dialogue import ConceptBook

    with open_store(store_path, read_only=False) as store:
        concepts = store.concepts(household)
        gone = [c for c in concepts if c.concept_id == phrase]
        if not gone:
            book = ConceptBook(None, {household: {c.concept_id: c for c in concepts}})
            users = {c.user_id for c in concepts}
            found = {c.concept_id: c for u in users for c in book.forget(household, u, phrase)}
            gone = list(found.values())
        if not gone:
            known = ", ".join(sorted({c.phrase for c in concepts})) or "none"
            raise ConfigError(
                f"household {household} has no concept with phrase or id {phrase!r} (its phrases: {known})"
            )
        for concept in gone:
            store.forget_concept(concept.concept_id)
    for concept in gone:
        out.print(
            f"forgot {escape(concept.phrase)} ({concept.kind}, {escape(concept.concept_id)}) in household "
            f"{escape(household)}",
            soft_wrap=True,
        )


def read_home(store: Store, household: str) -> Home:
    """The home configuration the store's ``homes`` table holds for ``household``."""
    rows = store.rows("SELECT config FROM homes WHERE home_id = ?", [household])
    if not rows:
        raise ConfigError(
            f"the store has no home for household {household}: register it first "
            f"(PUT /v1/homes/{household} on `selflearn serve`, or Store.put_home)"
        )
    try:
        return Home.from_dict(json.loads(str(rows[0]["config"])))
    except (SelflearnError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ConfigError(f"the stored home of household {household} is not usable: {exc}") from exc


@concepts_app.command("export")
def export_cmd(
    store_path: StoreFile,
    household: Household,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the configuration to.")],
) -> None:
    """Export a household's concepts as Home Assistant configuration to review and install:
    aliases.yaml, custom_sentences/en/selflearn_<household>.yaml and intent_script.yaml.

    Example: selflearn concepts export --store selflearn.duckdb --household h1 --out ha-config"""
    from selflearn.assistant.concept_export import export_concepts

    with open_store(store_path, read_only=True) as store:
        home = read_home(store, household)
        concepts = store.concepts(household)
    result = export_concepts(concepts, household, home, out_dir)
    out.print(
        f"exported household {escape(household)}: {result.names} names, {result.phrasings} phrasings, "
        f"{result.routines} routines, {result.preferences} preferences (as comments)",
        soft_wrap=True,
    )
    for phrase in result.skipped:
        out.print(f"  left out {escape(phrase)!r}: Home Assistant already understands it", soft_wrap=True)
    for path in result.files.values():
        out.print(f"  {escape(str(path))}", soft_wrap=True)
