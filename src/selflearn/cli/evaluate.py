"""``selflearn evaluate``: replay named simulated populations with and without a learner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from selflearn.cli.apps import evaluate_app
from selflearn.cli.common import _counting, console, out

CacheDir = Annotated[
    Path,
    typer.Option(
        help="Where simulated populations are cached (reused while the simulator and channel are the same)."
    ),
]


@evaluate_app.command("populations")
def populations_cmd() -> None:
    """List the named populations (what every benchmark trains and replays on)."""
    from selflearn.evaluate.populations import POPULATIONS

    out.print(f"{'name':<16} {'homes x days':>12} {'seed':>4} {'ids':<5} {'phrasings':<9} {'ASR':<6} used by")
    for p in POPULATIONS.values():
        size = f"{p.households} x {p.days:g}"
        out.print(
            f"{p.name:<16} {size:>12} {p.seed:>4} {p.prefix + '*':<5} {p.split:<9} {p.asr:<6} {p.used_by}",
            soft_wrap=True,
        )


@evaluate_app.command("ab")
def ab_cmd(
    population: Annotated[str, typer.Argument(help="A named population (`selflearn evaluate populations`).")],
    rewriter: Annotated[
        Path | None, typer.Option(help="Online rewriter folder: adds its global and personal arms.")
    ] = None,
    table: Annotated[Path | None, typer.Option(help="Mined rewrite table folder: adds its arm.")] = None,
    households: Annotated[int | None, typer.Option(help="Another size of the population.", min=1)] = None,
    days: Annotated[float | None, typer.Option(help="Another length of the population.", min=0.01)] = None,
    cache_dir: CacheDir = Path("out/evaluate"),
    workers: Annotated[int, typer.Option(help="Simulation worker processes.", min=1)] = 2,
    rebuild: Annotated[bool, typer.Option(help="Simulate again even when cached.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Replay a population as Home Assistant ships and with your rewriter or table, scored.

    Every arm is scored against simulation truth: defects, wins, losses, wrong actions. Each
    arm is the same households with the same seed; a rewritten arm is also scored against itself
    without its rewrites, turn by turn (the figure to read)."""
    from selflearn.evaluate.ab import ARM_HEADER, REWRITE_HEADER, Replay, arm_row, gazetteer_note, rewrite_row
    from selflearn.evaluate.populations import population as named

    replay = Replay(named(population), cache_dir, workers, households, days, rebuild=rebuild)
    _check(rewriter, table)
    arms: list[tuple[str, Path | None]] = [("control", None)]
    if rewriter is not None:
        arms += [("global", rewriter), ("personal", rewriter)]
    if table is not None:
        arms.append(("table", table))
    if len(arms) == 1:
        console.print("no --rewriter or --table: scoring the control arm alone")
    stats = {}
    for arm, learner in arms:
        console.print(f"replaying {population}/{arm} ...")
        stats[arm] = replay.score([arm], learner)[arm]
    if as_json:
        out.print_json(json.dumps({arm: st.summary() for arm, st in stats.items()}))
        return
    out.print(ARM_HEADER, soft_wrap=True)
    for arm, st in stats.items():
        out.print(arm_row(population, arm, st), soft_wrap=True)
    if len(stats) > 1:
        out.print("\n" + REWRITE_HEADER, soft_wrap=True)
        for arm, st in stats.items():
            if arm != "control":
                out.print(rewrite_row(population, arm, st), soft_wrap=True)
    out.print("\n" + gazetteer_note(population, stats["control"]), soft_wrap=True)


@evaluate_app.command("build")
def build_cmd(
    names: Annotated[list[str], typer.Argument(help="Named populations to simulate and ingest into stores.")],
    cache_dir: CacheDir = Path("out/evaluate"),
    workers: Annotated[int, typer.Option(help="Simulation worker processes.", min=1)] = 2,
    rebuild: Annotated[bool, typer.Option(help="Simulate again even when cached.")] = False,
) -> None:
    """Simulate populations into DuckDB stores, or reuse the cached ones; print their paths.

    The stores hold the logs, the feedback and, for scoring only, the simulation truth."""
    from selflearn.evaluate.cache import population_store
    from selflearn.evaluate.populations import population as named

    for name in names:
        pop = named(name)
        if pop.asr == "real":
            from selflearn.assistant.asr import check_real_asr_available

            check_real_asr_available()
        # Transient: a cached population simulates nothing, and its bar must not stay at 0.
        with _counting(f"simulating {name}", transient=True) as update:
            path = population_store(
                cache_dir / f"{name}.duckdb", pop.config(workers), rebuild, progress=update
            )
        out.print(str(path))


def _check(rewriter: Path | None, table: Path | None) -> None:
    """Fail before minutes of simulation when a learner folder is not what it should be."""
    from selflearn.core.artefacts import read_description
    from selflearn.rewrite.rewriter import FORMAT as REWRITER
    from selflearn.rewrite.table import FORMAT as TABLE

    if rewriter is not None:
        read_description(rewriter, REWRITER, "rewriter", retrain="selflearn train rewriter")
    if table is not None:
        read_description(table, TABLE, "rewrite table", retrain="selflearn mine")
