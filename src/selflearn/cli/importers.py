"""``selflearn import``: logs of real assistants into the store (docs/importers.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from selflearn.cli.apps import app
from selflearn.cli.common import StorePath, _progress, out
from selflearn.core.store import Store
from selflearn.importers import ImportResult, import_file

import_app = typer.Typer(
    no_args_is_help=True,
    help="Import logs of real assistants (Home Assistant, Rasa, a generic JSONL/CSV) into the store: "
    "converted, validated and stored like `selflearn ingest`; rows that cannot be converted or are "
    "invalid go to the quarantine with their line and field (docs/importers.md).",
)
app.add_typer(import_app, name="import")

InputFile = Annotated[
    Path, typer.Argument(help="The file to import.", exists=True, dir_okay=False, readable=True)
]
HouseholdOpt = Annotated[
    str | None,
    typer.Option(
        "--household-id",
        help="Put every turn in this household (default: a pseudonym derived from the input; "
        "see docs/importers.md).",
    ),
]
QuarantineOpt = Annotated[
    Path | None, typer.Option(help="Where to write rejected rows (default: next to the store).")
]
TimezoneOpt = Annotated[
    str,
    typer.Option(
        "--timezone",
        help="Time zone of times written without an offset (IANA name, e.g. Europe/Amsterdam).",
    ),
]


def _run(
    kind: str,
    path: Path,
    store_path: Path,
    household_id: str | None,
    quarantine: Path | None,
    timezone: str = "UTC",
) -> None:
    with Store(store_path) as store, _progress() as bar:
        task = bar.add_task(f"importing {path.name}", total=None)
        result = import_file(
            kind,
            path,
            store,
            household_id=household_id,
            quarantine_path=quarantine,
            timezone=timezone,
            progress=lambda n: bar.update(task, completed=n),
        )
    _print(result)


def _print(result: ImportResult) -> None:
    report = result.report
    out.print(result.summary(), soft_wrap=True)
    for what, n in sorted(result.skipped.items()):
        out.print(f"  skipped, not rows: {n:,} {what}")
    for what, n in sorted(result.notes.items()):
        out.print(f"  note: {n:,} {what}", soft_wrap=True, markup=False)
    for table, n in sorted(report.by_table.items()):
        out.print(f"  new rows in {table}: {n:,}")
    if report.quarantined:
        for reason, n in report.reasons.most_common():
            out.print(f"  quarantined ({reason}): {n:,}", soft_wrap=True, markup=False)
        out.print(f"  quarantine file: {report.quarantine_path}", soft_wrap=True, markup=False)


@import_app.command(
    "ha-debug",
    short_help="Home Assistant assist-pipeline debug runs (JSON).",
    help="Home Assistant assist-pipeline debug runs: what the websocket command "
    "assist_pipeline/pipeline_debug/get returns, one run per file, a JSON list of runs, or JSONL. "
    "One turn per run: the text, speech-to-text, matched or not, the error code, the response, the "
    "device and the conversation. Home Assistant does not put the intent's name in a run.",
)
def ha_debug_cmd(
    path: InputFile,
    store_path: StorePath = Path("selflearn.duckdb"),
    household_id: HouseholdOpt = None,
    quarantine: QuarantineOpt = None,
) -> None:
    """Import Home Assistant assist-pipeline debug runs."""
    _run("ha-debug", path, store_path, household_id, quarantine)


@import_app.command(
    "ha-log",
    short_help="home-assistant.log lines of the conversation component.",
    help="home-assistant.log, written with the conversation component at debug level (logger: logs: "
    "homeassistant.components.conversation: debug; with default: info the log also names the "
    "intents). One turn per request: unmatched sentences, unknown names and areas, intents. Lines of "
    "other components are skipped and counted, not quarantined. Log times carry no offset: give the "
    "Home Assistant machine's --timezone.",
)
def ha_log_cmd(
    path: InputFile,
    store_path: StorePath = Path("selflearn.duckdb"),
    household_id: HouseholdOpt = None,
    quarantine: QuarantineOpt = None,
    timezone: TimezoneOpt = "UTC",
) -> None:
    """Import the conversation lines of a home-assistant.log."""
    _run("ha-log", path, store_path, household_id, quarantine, timezone)


@import_app.command(
    "rasa",
    short_help="Rasa tracker-store conversations (JSON).",
    help="Rasa trackers as GET /conversations/<sender_id>/tracker returns them: one per file, a JSON "
    "list, or JSONL. One turn per user message with its intent, confidence and entities; the bot's "
    "messages are its response; the nlu_fallback intent or a fallback action make it a no-match.",
)
def rasa_cmd(
    path: InputFile,
    store_path: StorePath = Path("selflearn.duckdb"),
    household_id: HouseholdOpt = None,
    quarantine: QuarantineOpt = None,
) -> None:
    """Import Rasa trackers."""
    _run("rasa", path, store_path, household_id, quarantine)


@import_app.command(
    "jsonl",
    short_help="The generic format: one request per JSONL line or CSV row.",
    help="The generic format, JSONL or (by the .csv suffix) CSV: one request a row with 'text' and "
    "optionally timestamp, household_id, user_id, session_id, matched, intent, status, response, "
    "error_code, device_id, area. Unknown columns are errors. Times without an offset are read in "
    "--timezone (docs/importers.md).",
)
def jsonl_cmd(
    path: InputFile,
    store_path: StorePath = Path("selflearn.duckdb"),
    household_id: HouseholdOpt = None,
    quarantine: QuarantineOpt = None,
    timezone: TimezoneOpt = "UTC",
) -> None:
    """Import the generic JSONL or CSV format."""
    _run("jsonl", path, store_path, household_id, quarantine, timezone)
