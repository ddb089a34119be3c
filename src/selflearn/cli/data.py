"""The data commands: simulate, ingest, stats, export, forget, and ``data fetch`` (the corpora)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from selflearn.assistant.pipeline import AssistantConfig
from selflearn.cli.apps import app, data_app
from selflearn.cli.common import StorePath, _downloading, _ingest, _print_stats, _run_simulation, out
from selflearn.core.errors import DataError
from selflearn.core.store import Store
from selflearn.simulation.corpora import CORPORA
from selflearn.simulation.corpora.data_dir import fetch_data_dir
from selflearn.simulation.corpora.fetch import fetch_corpora
from selflearn.simulation.simulator import SimulationConfig
from selflearn.stats import compute_stats


@app.command("simulate")
def simulate_cmd(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder for the JSONL shards.")] = Path(
        "out/sim"
    ),
    households: Annotated[int, typer.Option(help="Number of households.", min=1)] = 20,
    days: Annotated[float, typer.Option(help="Simulated days per household.", min=0.01)] = 7.0,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same output).")] = 0,
    asr: Annotated[
        str,
        typer.Option(
            help="ASR channel: exact, noisy (fast, learned from real) or real (flite + pocketsphinx)."
        ),
    ] = "noisy",
    nlu: Annotated[str, typer.Option(help="NLU: strict, or strict+gazetteer (Home Assistant today).")] = (
        "strict+gazetteer"
    ),
    split: Annotated[str, typer.Option(help="Phrasings to use: train, test (held out) or all.")] = "all",
    corpora: Annotated[
        str,
        typer.Option(
            help="Comma-separated real corpora to draw phrasings from when present: ha_tests, hwu64, slurp."
        ),
    ] = "",
    data_dir: Annotated[Path | None, typer.Option(help="Folder holding the corpora.")] = None,
    prefix: Annotated[
        str, typer.Option(help="Household id prefix (use different ones for train/test).")
    ] = "h",
    workers: Annotated[
        int, typer.Option(help="Worker processes (the output is the same for any number).", min=1)
    ] = 2,
    false_wakes: Annotated[float, typer.Option(help="False wakes per household per day.", min=0)] = 0.4,
    phrasing_popularity: Annotated[
        str,
        typer.Option(
            help="How users pick among the phrasings of a request: uniform (every phrasing alike) or "
            "zipf (each phrasing has a fixed popularity rank, the same in every home, and rank r is "
            "said with weight 1/r^exponent: a few phrasings shared by many users, a long tail; "
            "see docs/simulator.md).",
        ),
    ] = "uniform",
    popularity_exponent: Annotated[
        float,
        typer.Option(
            help="Exponent of the zipf law (> 0; larger: fewer phrasings carry more of the traffic). "
            "1.0 is an assumption, not fitted to real logs.",
        ),
    ] = 1.0,
    rewrite_table: Annotated[
        Path | None,
        typer.Option(
            help="Replay the traffic through a mined rewrite table: requests are rewritten before the "
            "NLU, and the truth says which rewritten turns would have failed without it "
            "(see docs/mining.md).",
        ),
    ] = None,
) -> None:
    """Simulate households talking to the reference assistant; write turns, feedback and truth."""
    config = SimulationConfig(
        households=households,
        days=days,
        seed=seed,
        household_prefix=prefix,
        phrasing_split=split,  # type: ignore[arg-type]
        corpora=tuple(c.strip() for c in corpora.split(",") if c.strip()),
        data_dir=str(data_dir) if data_dir else None,
        assistant=AssistantConfig(nlu=nlu, asr=asr),  # type: ignore[arg-type]
        workers=workers,
        false_wakes_per_day=false_wakes,
        phrasing_popularity=phrasing_popularity,  # type: ignore[arg-type]
        popularity_exponent=popularity_exponent,
    )
    table = None
    if rewrite_table is not None:
        from selflearn.rewrite import RewriteTable

        table = RewriteTable.load(rewrite_table)
    result = _run_simulation(config, out_dir, table)
    typer.echo(
        json.dumps(
            {
                "turns": result.turns,
                "feedback": result.feedback,
                "goals": result.goals,
                "first_attempt_defect_rate": round(result.first_attempt_defect_rate, 4),
                "failure_points": result.failure_points,
                **(
                    {"rewrites": result.rewrites, "rewrite_errors": result.rewrite_errors}
                    if rewrite_table
                    else {}
                ),
                "seconds": round(result.seconds, 2),
            }
        )
    )


@app.command("ingest")
def ingest_cmd(
    paths: Annotated[list[Path], typer.Argument(help="JSONL or Parquet files, or folders of them.")],
    store_path: StorePath = Path("selflearn.duckdb"),
    quarantine: Annotated[
        Path | None, typer.Option(help="Where to write rejected rows (default: next to the store).")
    ] = None,
) -> None:
    """Validate log records and store them; bad rows go to a quarantine file with the reason."""
    with Store(store_path) as store:
        report = _ingest(store, paths, quarantine)
    out.print(report.summary())
    for table, n in sorted(report.by_table.items()):
        out.print(f"  new rows in {table}: {n:,}")
    if report.quarantined:
        for reason, n in report.reasons.most_common():
            out.print(f"  quarantined ({reason}): {n:,}")
        out.print(f"  quarantine file: {report.quarantine_path}")
    out.print(f"  {report.read / max(report.seconds, 1e-9):,.0f} rows/s")


@app.command("stats")
def stats_cmd(
    store_path: StorePath = Path("selflearn.duckdb"),
    top: Annotated[int, typer.Option(help="How many failing utterances to list.", min=1)] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Turns, sessions, defect signals, failure points and the top failing utterances."""
    with Store(store_path, read_only=True) as store:
        st = compute_stats(store, top=top)
        empty = store.empty
    if as_json:
        typer.echo(json.dumps(asdict(st)))
    elif empty:
        out.print(
            f"the store {store_path} is empty: no turns yet (`selflearn ingest FILES --store {store_path}`)"
        )
    else:
        _print_stats(st)


@app.command("export")
def export_cmd(
    output: Annotated[Path, typer.Argument(help="Parquet file to write.")],
    store_path: StorePath = Path("selflearn.duckdb"),
    table: Annotated[
        str, typer.Option(help="turns, feedback, dialogue_acts, homes, sim_truth or concepts.")
    ] = "turns",
) -> None:
    """Export a table to Parquet (the same layout Spark jobs read)."""
    with Store(store_path, read_only=True) as store:
        n = store.export_parquet(table, output)
    out.print(f"wrote {n:,} rows of {table} to {output}")


@app.command("forget")
def forget_cmd(
    household: Annotated[str, typer.Option("--household", help="The household to forget.")],
    store_path: StorePath = Path("selflearn.duckdb"),
    user: Annotated[
        str | None,
        typer.Option("--user", help="Forget only this user of the household (default: all of it)."),
    ] = None,
    quarantine: Annotated[
        list[Path] | None,
        typer.Option(
            "--quarantine",
            help="Another quarantine file to scrub (the ones ingest wrote beside the store always are).",
        ),
    ] = None,
) -> None:
    """Forget a household (or one of its users) in a store: its turns, feedback, dialogue acts,
    concepts and home, the signals and labels of its turns, and its lines in the quarantine files;
    then rewrite the store file so the deleted bytes are gone too. A running service holds its
    store: use DELETE /v1/households/ID there. Retrain (mine, train rewriter, label export) for
    artefacts without it (docs/reliability.md#privacy)."""
    from selflearn.core.store import scrub_lines

    with Store(store_path) as store:
        deleted = store.forget_user(household, user) if user else store.forget_household(household)
        size = store.compact()
        files = [*store.quarantine_files(), *(quarantine or [])]
    ids = (household, user) if user else (household,)
    lines = sum(scrub_lines(path, *ids) for path in files)
    who = f"user {user} of household {household}" if user else f"household {household}"
    rows = ", ".join(f"{table} {n:,}" for table, n in deleted.items() if n) or "no rows"
    out.print(f"forgot {who}: {rows}; {lines:,} quarantine lines; store rewritten ({size:,} bytes)")


@data_app.command("fetch")
def fetch_cmd(
    corpora: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[CORPUS]...",
            help=f"Corpora to fetch: {', '.join(CORPORA)} (default: all).",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="DIR|URL",
            help="A mirror: a folder with the data directory's layout, or the base URL of a server "
            "that serves one (default: the upstream repositories at the pinned commits; hwu64's "
            "derived file comes only from a mirror).",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where to store them (default: $SELFLEARN_DATA_DIR if set, else "
            "$XDG_DATA_HOME/selflearn/data, i.e. ~/.local/share/selflearn/data; the loaders, "
            "starter and simulate look there too).",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for a server before giving up.", min=1)
    ] = 30.0,
) -> None:
    """Download the public corpora (Home Assistant's test sentences, HWU64, SLURP devel) at pinned
    commits, check every file's SHA-256 and store them where the loaders read them. An interrupted
    run resumes (its .part files); files already in place and verified are skipped."""
    folder = fetch_data_dir(data_dir)
    with _downloading("fetching corpora") as update:
        report = fetch_corpora(folder, corpora or CORPORA, source=source, progress=update, timeout=timeout)
    resumed = f" ({len(report.resumed)} resumed)" if report.resumed else ""
    out.print(
        f"fetched {len(report.fetched)} files{resumed}, {report.bytes_read / 1e6:.1f} MB in "
        f"{report.seconds:.2f} s; {len(report.skipped)} already in place; into {report.folder}",
        soft_wrap=True,
    )
    if report.unavailable:
        raise DataError(
            "not fetched: "
            + "; ".join(report.unavailable)
            + ": give --from DIR|URL, a mirror that holds it (docs/corpora.md#getting-the-corpora)"
        )
