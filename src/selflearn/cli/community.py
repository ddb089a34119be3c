"""``selflearn community``: share fix evidence, aggregate it with differential privacy, install
a release (docs/community.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from selflearn.cli.apps import app
from selflearn.cli.common import console, open_store, out
from selflearn.core.errors import ConfigError

community_app = typer.Typer(
    no_args_is_help=True,
    help="The community global layer: share what fixes failures (bounded, delexicalized), release it "
    "with differential privacy, install a release (docs/community.md).",
)
app.add_typer(community_app, name="community")


@community_app.command("contribute")
def contribute_cmd(
    store_path: Annotated[Path, typer.Option("--store", "-s", help="This install's DuckDB store (scored).")],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Contribution file to write (JSON lines).")],
    key: Annotated[
        Path | None,
        typer.Option(help="This install's Ed25519 key (created if missing; default: <store>.install-key)."),
    ] = None,
    period: Annotated[
        str | None,
        typer.Option(help="ISO week to share, e.g. 2026-W10 (default: the week of the latest turn)."),
    ] = None,
    max_patterns: Annotated[int, typer.Option(help="Most pairs shared in the period.", min=1)] = 10,
    max_count: Annotated[int, typer.Option(help="Each count of a pair clipped to this.", min=1)] = 1,
) -> None:
    """Write what this install shares for one period: (failing pattern -> fixing pattern) pairs,
    delexicalized, with clipped counts of its users they helped or not, signed with the install
    key. Read it before sending it: nothing else leaves the install.

    Example: selflearn community contribute --store selflearn.duckdb --out contribution.jsonl"""
    from selflearn.community.contribution import (
        ContributionConfig,
        build_contribution,
        period_of,
        write_contribution,
    )
    from selflearn.community.keys import load_or_create_key
    from selflearn.mining import DuckDbEngine

    config = ContributionConfig(max_patterns=max_patterns, max_count=max_count)
    key_path = key if key is not None else store_path.with_name(store_path.name + ".install-key")
    private = load_or_create_key(key_path)
    with open_store(store_path, read_only=True, hint=": give this install's store") as store:
        if period is None:
            last = store.value("SELECT max(timestamp) FROM turns")
            if last is None:
                raise ConfigError(f"{store_path} holds no turns: nothing to contribute")
            period = period_of(last)
        engine = DuckDbEngine(store)
        try:
            contribution = build_contribution(engine, private, period, config, store.reviews())
        finally:
            engine.close()
    write_contribution(contribution, private, out_file)
    kept = ", ".join(f"{n} {why}" for why, n in contribution.dropped.items()) or "none"
    out.print(
        f"{len(contribution.records)} pairs for {period} -> {escape(str(out_file))} "
        f"(install {contribution.install}); kept at home: {escape(kept)}",
        soft_wrap=True,
    )


@community_app.command("aggregate")
def aggregate_cmd(
    contributions: Annotated[
        Path, typer.Option("--contributions", "-c", help="Folder of contribution files (*.jsonl).")
    ],
    epsilon: Annotated[float, typer.Option(help="Privacy budget of the release, per install.", min=0.0)],
    delta: Annotated[float, typer.Option(help="Partition selection's delta (well below 1/installs).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Release folder to write (replaced).")],
    key: Annotated[
        Path, typer.Option(help="The aggregator's Ed25519 key (created if missing, public key in <key>.pub).")
    ] = Path("aggregator.key"),
    period: Annotated[
        str | None, typer.Option(help="ISO week to release (default: the most common).")
    ] = None,
    weeks: Annotated[
        int,
        typer.Option(
            help="ISO weeks one release pools (--period and the weeks before it); an install's pairs "
            "over them are bounded together, so epsilon is spent once for all of them.",
            min=1,
            max=52,
        ),
    ] = 1,
    max_patterns: Annotated[int, typer.Option(help="Pairs one install may contribute.", min=1)] = 10,
    min_installs: Annotated[
        int, typer.Option(help="Pre-threshold: installs a pair needs besides DP (1: DP alone).", min=1)
    ] = 1,
    min_helped: Annotated[
        float, typer.Option(help="Noisy share of help a released pair needs to become a rule.")
    ] = 0.5,
    selection_share: Annotated[
        float,
        typer.Option(help="Share of epsilon spent on partition selection (the rest: the noisy counts)."),
    ] = 0.5,
    quarantine: Annotated[
        Path | None,
        typer.Option(help="Where malformed contributions go (default: <contributions>/quarantine)."),
    ] = None,
    ledger: Annotated[
        Path | None,
        typer.Option(help="The aggregator's privacy ledger (JSON, kept private): epsilon spent per install."),
    ] = None,
    max_epsilon: Annotated[
        float | None,
        typer.Option(help="With --ledger: leave out installs whose total epsilon would pass this.", min=0.0),
    ] = None,
    enrolment: Annotated[
        Path | None,
        typer.Option(
            help="The register of enrolled install keys (selflearn community enrol): count only "
            "contributions of enrolled keys old enough."
        ),
    ] = None,
    min_key_age_days: Annotated[
        float,
        typer.Option(help="With --enrolment: days between a key's enrolment and its first period.", min=0.0),
    ] = 7.0,
    engine: Annotated[
        str, typer.Option(help="Where to merge and run the DP step: duckdb (this process) or spark.")
    ] = "duckdb",
    master: Annotated[
        str,
        typer.Option(
            help="--engine spark: Spark master (local[2] by default; 'none' to use spark-submit's)."
        ),
    ] = "local[2]",
) -> None:
    """Merge the contributions of one period (or of --weeks) and release the pairs that pass
    differential-privacy partition selection over distinct installs, with noisy counts, as a
    signed global rewrite table (pipeline-dp on DuckDB, or on Spark with --engine spark).

    Example: selflearn community aggregate -c contributions --epsilon 1 --delta 1e-6 --out release"""
    from selflearn.community.aggregate import (
        AggregateConfig,
        AggregateReport,
        DuckDbAggregation,
        SparkAggregation,
        aggregate,
        read_contributions,
        spark_session,
    )
    from selflearn.community.keys import key_id, load_or_create_key
    from selflearn.community.ledger import Ledger
    from selflearn.community.release import write_release

    if engine not in ("duckdb", "spark"):
        raise ConfigError(f"--engine must be duckdb or spark, not {engine!r}")
    config = AggregateConfig(
        epsilon=epsilon,
        delta=delta,
        max_patterns=max_patterns,
        min_installs=min_installs,
        min_helped=min_helped,
        selection_share=selection_share,
        period=period,
        weeks=weeks,
    )
    private = load_or_create_key(key)
    report = AggregateReport()
    accepted = read_contributions(contributions, config, quarantine, report)
    for name, why in report.quarantined:
        console.print(f"quarantined {escape(name)}: {escape(why)}", soft_wrap=True)
    not_enrolled = 0
    if enrolment is not None:
        from selflearn.community.enrolment import EnrolmentConfig, Register

        if not enrolment.exists():
            raise ConfigError(f"no enrolment register at {enrolment} (selflearn community enrol makes one)")
        rules = EnrolmentConfig(min_age_days=min_key_age_days)
        accepted, left_out = Register.load(enrolment).admitted(accepted, rules)
        not_enrolled = len(left_out)
        for install, why in left_out[:10]:
            console.print(f"left out install {escape(install)}: {escape(why)}", soft_wrap=True)
        if not_enrolled > 10:
            console.print(f"... and {not_enrolled - 10:,} more not enrolled or enrolled too recently")
    if max_epsilon is not None and ledger is None:
        raise ConfigError("--max-epsilon needs --ledger: the file that says what each install has spent")
    book = Ledger.load(ledger) if ledger is not None else None
    over = 0
    if book is not None:
        admitted = [c for c in accepted if book.admits(c.install, epsilon, max_epsilon)]
        over, accepted = len(accepted) - len(admitted), admitted
    if not accepted:
        why = f" ({over} over the --max-epsilon budget)" if over else ""
        why += f" ({not_enrolled} not enrolled or enrolled too recently)" if not_enrolled else ""
        if report.other_periods:
            window = report.periods[0] + ("" if len(report.periods) == 1 else f" to {report.periods[-1]}")
            why += f" ({report.other_periods} of weeks other than {window})"
        raise ConfigError(f"no valid contribution in {contributions} to release{why}")
    if engine == "spark":
        spark = spark_session(None if master == "none" else master)
        try:
            aggregate(accepted, config, SparkAggregation(spark), report)
        finally:
            if master != "none":
                spark.stop()
    else:
        aggregate(accepted, config, DuckDbAggregation(), report)
    manifest = write_release(report, config, private, out_dir)
    if book is not None and ledger is not None:
        book.record([c.install for c in accepted], manifest["version"], report.period, epsilon, delta)
        book.save(ledger)
    summary = {
        "release": str(out_dir),
        "version": manifest["version"],
        "period": report.period,
        "periods": report.periods,
        "contributions": report.accepted,
        "quarantined": len(report.quarantined),
        "other_periods": report.other_periods,
        "over_budget": over,
        "not_enrolled": not_enrolled,
        "counted": len(accepted),
        "installs": len({c.install for c in accepted}),
        "refused_records": report.refused,
        "released_pairs": manifest["released_pairs"],
        "rules": manifest["rules"],
        "epsilon": epsilon,
        "delta": delta,
        "aggregator_key": key_id(private),
        "engine": engine,
    }
    out.print(json.dumps(summary), soft_wrap=True, markup=False, highlight=False)


@community_app.command("enrol")
def enrol_cmd(
    register: Annotated[
        Path, typer.Option("--register", help="The aggregator's register of install keys (JSON; created).")
    ],
    public_key: Annotated[
        str,
        typer.Option(
            "--public-key",
            help="The install's public key: 64 hex digits (a contribution's header has them) or a "
            "PEM/hex file (the install's <key>.pub).",
        ),
    ],
    note: Annotated[str, typer.Option(help="Who vouched for the install (kept in the register).")] = "",
    max_per_day: Annotated[int, typer.Option(help="New keys the register takes per UTC day.", min=1)] = 50,
) -> None:
    """Enrol an install key, so that selflearn community aggregate --enrolment counts its
    contributions (from periods starting a week later, by default). Refused once --max-per-day
    keys were enrolled today: fake installs take days, in plain view.

    Example: selflearn community enrol --register enrolment.json --public-key install.key.pub"""
    from selflearn.community.enrolment import EnrolmentConfig, Register
    from selflearn.community.keys import load_public_key, public_hex

    text = public_key.strip()
    hex_key = text.lower() if len(text) == 64 else public_hex(load_public_key(Path(text)))
    book = Register.load(register)
    install, entry, new = book.enrol(hex_key, EnrolmentConfig(max_per_day=max_per_day), note=note)
    if new:
        book.save(register)
    state = "enrolled" if new else "already enrolled"
    out.print(f"{state} install {install} on {entry.enrolled_at.date()}", soft_wrap=True)


@community_app.command("pull")
def pull_cmd(
    release: Annotated[Path, typer.Option("--release", "-r", help="Release folder or .tar.gz file.")],
    public_key: Annotated[
        Path, typer.Option("--public-key", help="The aggregator's public key you trust (PEM or hex).")
    ],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Rewriter folder to install into.")] = Path(
        "models/community"
    ),
    base: Annotated[
        Path | None,
        typer.Option(help="A rewriter folder (e.g. models/starter) to install the community rules into."),
    ] = None,
) -> None:
    """Verify a release's signature and files, and install it as a rewriter folder the service
    serves (selflearn serve --rewriter models/community; a running service reloads it with --watch
    or POST /v1/admin/reload).

    Example: selflearn community pull --release release --public-key aggregator.key.pub"""
    from selflearn.community.keys import load_public_key
    from selflearn.community.release import install_release

    manifest = install_release(release, load_public_key(public_key), out_dir, base)
    privacy = manifest["privacy"]
    out.print(
        f"installed {manifest['version']} ({manifest['rules']} rules, period {manifest['period']}, "
        f"epsilon {privacy['epsilon']}, delta {privacy['delta']}) -> {escape(str(out_dir))}",
        soft_wrap=True,
    )
