"""``selflearn report``: one self-contained HTML page of what selflearn found and learned
(docs/report.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from selflearn.cli.apps import app
from selflearn.cli.common import StorePath, _stages, console, out
from selflearn.core.errors import ConfigError, StoreError
from selflearn.core.store import Store


@app.command("report")
def report_cmd(
    store_path: StorePath = Path("selflearn.duckdb"),
    out_file: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path("report.html"),
    table: Annotated[
        Path | None, typer.Option("--table", help="Mined rewrite-table folder (selflearn mine).")
    ] = None,
    rewriter: Annotated[
        Path | None,
        typer.Option(
            "--rewriter",
            help="Online rewriter folder (selflearn train rewriter): its table is shown when --table is not "
            "given, and it is asked what it would do with each top failing request.",
        ),
    ] = None,
    before: Annotated[
        str | None,
        typer.Option(
            help="First date range to compare, e.g. 2026-01-01..2026-01-07 (UTC days, both included)."
        ),
    ] = None,
    after: Annotated[
        str | None,
        typer.Option(help="Second date range (default: the first and second half of the store's days)."),
    ] = None,
    top: Annotated[
        int, typer.Option(help="Failing request patterns shown (and largest groups per breakdown).", min=1)
    ] = 50,
) -> None:
    """Write one self-contained HTML report: defect rates over time and by intent, failure point,
    home, area and hour; the requests that fail most and the fix selflearn learned or proposes;
    the rewrite table; the online rewriter's logged wins, losses and wrong actions; before/after.

    Example: selflearn report --store out/demo/demo.duckdb --rewriter out/demo/rewriter --out report.html"""
    from selflearn.report import STAGES, DateRange, collect, render_html

    if not store_path.exists():
        raise StoreError(
            f"no store at {store_path}: write one with `selflearn ingest LOGS --store {store_path}` "
            "(or `selflearn demo`)"
        )
    for folder, option in ((table, "--table"), (rewriter, "--rewriter")):
        if folder is not None and not folder.is_dir():
            raise ConfigError(f"{option} {folder} is not a folder")
    ranges = [
        DateRange.parse(r, name) if r else None for r, name in ((before, "--before"), (after, "--after"))
    ]
    started = time.perf_counter()
    with _stages("report", [*STAGES, "writing the page"]) as stage:
        with Store(store_path, read_only=True) as store:
            data = collect(
                store,
                table=table,
                rewriter=rewriter,
                before=ranges[0],
                after=ranges[1],
                top=top,
                progress=stage,
            )
        stage("writing the page")
        page = render_html(data, title=f"selflearn report: {store_path.name}")
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(page, encoding="utf-8")
    for notice in data.notices:
        if notice.level == "warning":
            hint = f" Run: {notice.command}" if notice.command else ""
            console.print(f"[yellow]warning:[/yellow] {escape(notice.text + hint)}", soft_wrap=True)
    rate = f"{data.defect_rate:.1%}" if data.defect_rate is not None else "n/a (no defect signals)"
    out.print(
        escape(
            f"report: {data.turns:,} turns, defect rate {rate}, {len(data.unrecognized)} failing patterns "
            f"({sum(p.candidate is not None for p in data.unrecognized)} with a candidate fix), "
            f"{len(data.rules)} rules, {len(data.decisions)} rewriter decisions -> {out_file} "
            f"({len(page) / 1024:,.0f} KiB, {time.perf_counter() - started:.1f} s)"
        ),
        soft_wrap=True,
    )
