"""``selflearn review``: people's verdicts on learned rewrites -- list, add, export the approved ones
as Home Assistant custom sentences (docs/report.md). The live page (``selflearn serve``, ``/ui``)
and ``POST /v1/reviews`` write the same verdicts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape
from rich.table import Table

from selflearn.cli.apps import app
from selflearn.cli.common import open_store, out
from selflearn.cli.concepts import read_home
from selflearn.core.errors import ConfigError
from selflearn.core.schema import Review
from selflearn.rewrite.review import check_target, export_reviewed, review_id

review_app = typer.Typer(
    no_args_is_help=True,
    help="People's verdicts on learned rewrites: list them, approve / reject / edit a rule, export the "
    "approved ones as Home Assistant custom sentences (docs/report.md).",
)
app.add_typer(review_app, name="review")

StoreFile = Annotated[Path, typer.Option("--store", "-s", help="DuckDB store holding the verdicts.")]


@review_app.command("list")
def list_cmd(
    store_path: StoreFile,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per verdict, one a line.")] = False,
) -> None:
    """List the verdicts in force, oldest first.

    Example: selflearn review list --store selflearn.duckdb"""
    with open_store(store_path, read_only=True) as store:
        reviews = store.reviews()
    if as_json:
        for r in reviews:
            out.print(r.model_dump_json(), soft_wrap=True, markup=False, highlight=False)
        return
    if not reviews:
        out.print("no verdicts yet (review rules on `selflearn serve`'s /ui page, or `selflearn review add`)")
        return
    table = Table("verdict", "request pattern", "rewrites to", "rule", "when", "by")
    for r in reviews:
        target = r.edited_target if r.decision == "edited" and r.edited_target else r.target
        table.add_row(
            r.decision,
            escape(r.pattern),
            escape(target),
            escape(r.rule_id or "-"),
            f"{r.timestamp:%Y-%m-%d %H:%M}",
            escape(r.reviewer or "-"),
        )
    out.print(table)


@review_app.command("add")
def add_cmd(
    store_path: StoreFile,
    decision: Annotated[
        Literal["approved", "rejected", "edited"], typer.Argument(help="approved, rejected or edited.")
    ],
    pattern: Annotated[
        str, typer.Argument(help="Request pattern the rule rewrites: 'kill the {area} lights'.")
    ],
    target: Annotated[str, typer.Argument(help="The pattern it rewrites to: 'turn off the {area} lights'.")],
    edited_target: Annotated[
        str | None, typer.Option("--to", help="For edited: the pattern to rewrite to instead.")
    ] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="The rule's id, as the report shows it.")] = None,
    reviewer: Annotated[str | None, typer.Option("--by", help="Who decided.")] = None,
) -> None:
    """Record a verdict (a running service applies verdicts it is told of through POST /v1/reviews
    or its page; one started later reads them from the store). An edit's target is checked as the
    rewriter would use it: its placeholders must be fillable from the pattern's, and the filled
    sentence must parse in Home Assistant's templates in a home of the store.

    Example: selflearn review add -s s.duckdb rejected 'kill the {area} lights' 'turn on the {area} lights'"""
    if decision == "edited" and not edited_target:
        raise ConfigError("an edit needs --to: the pattern to rewrite the request pattern to")
    verdict = Review(
        review_id=review_id(pattern, target, rule),
        rule_id=rule,
        pattern=pattern,
        target=target,
        decision=decision,
        edited_target=edited_target if decision == "edited" else None,
        reviewer=reviewer,
        timestamp=datetime.now(UTC),
    )
    with open_store(store_path, read_only=False) as store:
        if verdict.edited_target is not None:
            checked = check_target(pattern, verdict.edited_target, store.homes())
            if not checked.ok:
                raise ConfigError(f"not saved: the edited target (--to) cannot be used: {checked.reason}")
        before = store.put_review(verdict)
    was = f" (was {before.decision})" if before is not None else ""
    out.print(f"{decision}: {escape(pattern)} -> {escape(edited_target or target)}{was}", soft_wrap=True)


@review_app.command("export")
def export_cmd(
    store_path: StoreFile,
    household: Annotated[
        str, typer.Option("--household", help="The home whose names parse the targets (its areas, devices).")
    ],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the configuration to.")],
) -> None:
    """Export the approved and edited rules as Home Assistant custom sentences
    (custom_sentences/en/selflearn_reviewed.yaml), each request pattern a sentence of the intent
    its target means, {area} kept as Home Assistant's area list.

    Example: selflearn review export --store selflearn.duckdb --household h1 --out ha-config"""
    with open_store(store_path, read_only=True) as store:
        home = read_home(store, household)
        reviews = store.reviews()
    result, left_out = export_reviewed(reviews, home, out_dir)
    out.print(f"exported {result.phrasings} reviewed rules as custom sentences", soft_wrap=True)
    for why in left_out:
        out.print(f"  left out {escape(why)}", soft_wrap=True)
    for phrase in result.skipped:
        out.print(f"  left out {escape(phrase)!r}: Home Assistant already understands it", soft_wrap=True)
    if "sentences" in result.files:
        out.print(f"  {escape(str(result.files['sentences']))}", soft_wrap=True)
