"""The train sub-commands: rephrase, defect, rewriter."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from selflearn.cli.apps import train_app
from selflearn.cli.common import (
    StorePath,
    _ingest,
    _progress,
    _run_simulation,
    _staged_counting,
    _stages,
    out,
)
from selflearn.core.artefacts import save_atomically
from selflearn.core.errors import ConfigError
from selflearn.core.store import Store
from selflearn.simulation.simulator import SimulationConfig


def _training_store(store_path: Path | None, households: int, seed: int, workers: int, work: Path) -> Path:
    """The store to train on: the one given, or a freshly simulated training population."""
    if store_path is not None:
        if not store_path.exists():
            raise ConfigError(f"store {store_path} does not exist")
        return store_path
    config = SimulationConfig(
        households=households,
        days=7,
        seed=seed,
        household_prefix="tr",
        phrasing_split="train",
        workers=workers,
    )
    _run_simulation(config, work / "sim")
    path = work / "train.duckdb"
    path.unlink(missing_ok=True)
    with Store(path) as store:
        out.print(_ingest(store, [work / "sim"], None).summary())
    return path


@train_app.command("rephrase")
def train_rephrase_cmd(
    store_path: Annotated[
        Path | None,
        typer.Option(
            "--store",
            "-s",
            help="A SIMULATED store (its sim_truth rephrase links are the labels). "
            "Default: simulate a training population first.",
        ),
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write.")] = Path(
        "models/rephrase"
    ),
    epochs: Annotated[int, typer.Option(help="Passes over the training examples.", min=1)] = 2,
    max_examples: Annotated[
        int, typer.Option(help="Train on at most this many turns that have earlier turns.", min=16)
    ] = 4000,
    households: Annotated[int, typer.Option(help="Households to simulate when no --store.", min=1)] = 40,
    seed: Annotated[int, typer.Option(help="Seed of the training run (and simulation).")] = 11,
    workers: Annotated[int, typer.Option(help="Simulation worker processes.", min=1)] = 2,
) -> None:
    """Fine-tune the contextual rephrase detector (MiniLM + pointer head) on CPU."""
    from selflearn.signals.rephrase import ContextualRephraseDetector, session_examples

    path = _training_store(store_path, households, seed, workers, out_dir.parent / "train-sim")
    with Store(path, read_only=True) as store:
        if store.count("sim_truth") == 0:
            raise ConfigError(f"{path} has no simulation truth to learn rephrase links from")
        examples = list(session_examples(store, with_labels=True))
    with _progress() as bar:
        task = bar.add_task("fine-tuning MiniLM", total=None)
        model = ContextualRephraseDetector(epochs=epochs, max_examples=max_examples, seed=seed).fit(
            examples, progress=lambda step, total: bar.update(task, completed=step, total=total)
        )
    save_atomically(out_dir, model.save)
    report = model.train_report_
    if report is None:  # pragma: no cover - fit always sets it
        raise ConfigError("the rephrase model reported no training")
    out.print(
        f"trained on {report.examples:,} turns ({report.steps} steps, {report.seconds:.0f} s, "
        f"final loss {report.final_loss:.3f}) -> {out_dir}"
    )


@train_app.command("defect")
def train_defect_cmd(
    store_path: StorePath = Path("selflearn.duckdb"),
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write.")] = Path(
        "models/defect"
    ),
) -> None:
    """Train the defect model on weak labels from the store's own logs (explicit feedback and
    unambiguous implicit cases; simulation truth is never read)."""
    from selflearn.signals.defect import FIT_STAGES, DefectModel

    with (
        Store(store_path, read_only=True) as store,
        _stages("training the defect model", FIT_STAGES) as start,
    ):
        model = DefectModel().fit(store, progress=start)
    path = save_atomically(out_dir, model.save)
    stats = ", ".join(
        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v:,}"
        for k, v in model.label_stats_.items()
        if isinstance(v, int | float)
    )
    out.print(f"trained {model.version} ({stats}) -> {path}")


@train_app.command("rewriter")
def train_rewriter_cmd(
    store_path: StorePath = Path("selflearn.duckdb"),
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Rewriter folder to write.")] = Path(
        "models/rewriter"
    ),
    table: Annotated[
        Path | None,
        typer.Option(help="A mined rewrite table (`selflearn mine`) to serve as the precomputed layer."),
    ] = None,
    min_users: Annotated[
        int, typer.Option("--min-users", "-k", help="k: distinct users a pooled pattern needs.", min=1)
    ] = 5,
    target_ratio: Annotated[
        float,
        typer.Option(
            help="Estimated wins per loss the threshold is calibrated for (lower: more rewrites, "
            "more of them wrong; see docs/rewriting.md).",
            min=1.0,
        ),
    ] = 15.0,
    workers: Annotated[
        int,
        typer.Option(
            help="Cores for the replay and calibration folds (the result does not depend on it).", min=1
        ),
    ] = 2,
    decision: Annotated[
        str,
        typer.Option(
            help="Ranker decision rule: 'product' (meaning x fixable) or 'meaning' (meaning alone; "
            "see docs/rewriting.md)."
        ),
    ] = "product",
    home_language: Annotated[
        bool,
        typer.Option(
            "--home-language/--static",
            help="The neural rewriter: also search the home's language (Home Assistant's templates "
            "with the home's names) for candidates, and train the ranker on them; --static: the "
            "static rewriter (docs/rewriting.md).",
        ),
    ] = False,
    encoder: Annotated[
        Path | None,
        typer.Option(
            help="A sentence encoder (`selflearn train encoder`) to search the home's language with."
        ),
    ] = None,
    single_encoder: Annotated[
        bool,
        typer.Option(
            "--single-encoder",
            help="Also train the single-encoder ranker (MiniLM reading the request and a candidate "
            "together) on the same replayed requests; it picks among the ranker's first candidates "
            "of a failed request. Needs torch (selflearn[learn]); adds about 70 MB.",
        ),
    ] = False,
) -> None:
    """Train the online rewriter from the store's logs (needs `selflearn signals` first).

    Builds the global layer (k-anonymous patterns, their meanings and fixes, HNSW indexes over
    static MiniLM embeddings), trains the ranker on out-of-fold replays of the logged households
    and calibrates its threshold (see docs/rewriting.md). Simulation truth is never read."""
    from selflearn.rewrite import FitConfig, KnowledgeConfig, Rewriter
    from selflearn.rewrite.cross_encoder_fit import SingleEncoderConfig
    from selflearn.rewrite.fit import TRAIN_STAGES
    from selflearn.rewrite.ranker import DECISIONS
    from selflearn.rewrite.table import RewriteTable

    if decision not in DECISIONS:
        raise typer.BadParameter(
            f"{decision!r} is not one of {', '.join(DECISIONS)}", param_hint="'--decision'"
        )
    if encoder is not None and not home_language:
        raise typer.BadParameter(
            "an encoder searches the home's language: add --home-language", param_hint="'--encoder'"
        )
    config = FitConfig(
        knowledge=KnowledgeConfig(min_users=min_users),
        target_ratio=target_ratio,
        workers=workers,
        decision=decision,
        home_language=home_language,
        encoder=str(encoder) if encoder is not None else None,
    )
    mined = RewriteTable.load(table) if table is not None else None
    with Store(store_path, read_only=True) as store:
        households = int(store.value("SELECT count(DISTINCT household_id) FROM turns"))
    if households < config.min_households:
        # One home, or a few: too few to learn a pooled layer and a ranker that generalise. What
        # it can use now: the mined table (if any) and the personal layer, which learns each
        # household's own retries and names at run time.
        rewriter = Rewriter.from_parts(table=mined)
        save_atomically(out_dir, rewriter.save)
        layers = "the personal layer"
        if mined:
            layers = f"the mined table ({len(mined)} rules) and {layers}"
        out.print(
            f"note: {households} household(s) logged; the global layer and the ranker need at least "
            f"{config.min_households}. Wrote a rewriter with {layers} only -> {out_dir}"
        )
        return
    stages = dict(
        zip(
            TRAIN_STAGES,
            (
                "reading the logs",
                "building the global layer",
                "replaying logged households",
                "training and calibrating the ranker",
            ),
            strict=True,
        )
    )
    single = SingleEncoderConfig(threads=workers) if single_encoder else None
    if single is not None:
        stages["single"] = "training the single encoder"
    with Store(store_path, read_only=True) as store, _staged_counting(stages) as update:
        rewriter = Rewriter(training=config).fit(store, mined, progress=update, single=single)
    report = rewriter.fit_report_
    if report is None:  # pragma: no cover - fit always sets it
        raise ConfigError("the rewriter reported no training")

    def save(folder: Path) -> None:
        rewriter.save(folder)
        (folder / "fit-report.json").write_text(json.dumps(asdict(report), indent=2, default=str) + "\n")

    save_atomically(out_dir, save)  # a reader (the service's --watch) sees the old folder or the new one
    out.print(
        f"trained on {report.turns:,} turns from {report.households:,} households: "
        f"{len(rewriter.knowledge_ or []):,} pooled patterns, {report.rows:,} candidate rows "
        f"({report.positives:,} positive) -> {out_dir}"
    )
    if rewriter.single_ is not None:
        meta = rewriter.single_.metadata
        out.print(
            f"single encoder: {meta['pairs']:,} candidate pairs ({meta['positives']:,} right) of "
            f"requests the logs fixed, {meta['steps']} steps in {meta['seconds'] / 60:.0f} min"
        )
    if rewriter.ranker_ is not None and rewriter.ranker_.members_:
        out.print(
            f"ranker: {len(rewriter.ranker_.members_)} cross-fitted members; each household is scored by "
            "the one trained without it, so the thresholds below apply to the scores they were "
            "calibrated on"
        )
    # One calibration per mode: behind the NLU (the request is known to have failed) and before it.
    for mode, cal in report.calibration.items():
        out.print(
            f"{mode.replace('_', ' ')}: threshold {cal['threshold']:.3f} ({cal['wins']} est. wins, "
            f"{cal['losses']} losses, {cal['unknown']} unknown on held-out households; "
            f"{cal['resampled_p10']:.3f}-{cal['resampled_p90']:.3f} over household resamples)"
        )


@train_app.command("encoder")
def train_encoder_cmd(
    store_path: Annotated[
        Path | None,
        typer.Option(
            "--store",
            "-s",
            help="Logs with friction signals (`selflearn signals`): their rephrase pairs train the "
            "encoder. Without a store, only the templates do.",
        ),
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Encoder folder to write.")] = Path(
        "models/encoder"
    ),
    min_users: Annotated[
        int,
        typer.Option("--min-users", "-k", help="k: distinct users a pattern needs to be trained on.", min=1),
    ] = 5,
    template_pairs: Annotated[
        int, typer.Option(help="Pairs of two wordings of one meaning drawn from the templates.", min=0)
    ] = 6000,
    epochs: Annotated[int, typer.Option(help="Passes over the pairs.", min=1)] = 1,
    layers: Annotated[
        int, typer.Option(help="MiniLM layers trained, from the top (6: all of them).", min=0, max=6)
    ] = 2,
    base_weight: Annotated[
        float,
        typer.Option(
            help="Share of the shipped MiniLM's weights averaged into the trained ones (WiSE-FT; "
            "0: the weights as trained).",
            min=0.0,
            max=0.99,
        ),
    ] = 0.5,
    zero_shot: Annotated[
        bool, typer.Option("--zero-shot", help="Export the shipped MiniLM as it is (no training).")
    ] = False,
) -> None:
    """Train the neural rewriter's sentence encoder (all-MiniLM-L6-v2 as a bi-encoder).

    Fine-tunes the shipped MiniLM on the store's rephrase pairs (a failed request and the
    reformulation that worked, k-anonymous patterns only) and on pairs of wordings of one meaning
    from Home Assistant's templates, then exports it to ONNX for serving without torch
    (docs/rewriting.md, "The home's language"). Needs `pip install "selflearn\\[learn]"`."""
    from selflearn.rewrite.encoder_fit import EncoderConfig, fit_encoder, log_pairs
    from selflearn.rewrite.encoder_fit import template_pairs as draw_template_pairs
    from selflearn.rewrite.home_language import HomeLanguage
    from selflearn.rewrite.logs import read_homes, read_log

    config = EncoderConfig(
        epochs=epochs,
        min_users=min_users,
        template_pairs=template_pairs,
        train_layers=layers,
        base_weight=base_weight,
    )
    pairs = []
    provenance: dict[str, object] = {}
    if not zero_shot:
        if store_path is not None:
            if not store_path.exists():
                raise ConfigError(f"store {store_path} does not exist")
            with Store(store_path, read_only=True) as store:
                turns, homes = read_log(store), read_homes(store)
            pairs += log_pairs(turns, homes, config.min_users, config.min_households)
            provenance["store"] = str(store_path)
            out.print(f"{len(pairs):,} rephrase pairs from {len(turns):,} logged turns (k={min_users})")
        language = HomeLanguage().fit()
        pairs += draw_template_pairs(language, config.template_pairs, config.seed)
        provenance["home_language"] = language.metadata_
    save_atomically(
        out_dir,
        lambda folder: fit_encoder(pairs, folder, config, say=out.print, provenance=provenance or None),
    )
    out.print(f"encoder -> {out_dir}")


@train_app.command("scope")
def train_scope_cmd(
    store_path: StorePath = Path("selflearn.duckdb"),
    rewriter_dir: Annotated[
        Path,
        typer.Option("--rewriter", "-r", help="Rewriter folder to add the scope model to (as scope/)."),
    ] = Path("models/rewriter"),
    max_blocked: Annotated[
        float,
        typer.Option(
            "--max-blocked",
            help="Share of held-out in-scope requests that failed and were then served which the "
            "threshold may block.",
        ),
    ] = 0.05,
) -> None:
    """Learn which requests nobody can help with (jokes, e-mail, services the home lacks) from the
    store's own logs -- requests that failed, were given up at once and never worked for anyone --
    and add it to a rewriter, which then neither rewrites nor asks about them (docs/rewriting.md)."""
    from selflearn.rewrite.scope import FIT_STAGES, ScopeModel

    if not (rewriter_dir / "model.json").exists():
        raise ConfigError(f"no rewriter at {rewriter_dir}: train one with `selflearn train rewriter`")
    if not 0 < max_blocked < 1:
        raise ConfigError(f"--max-blocked must be between 0 and 1, got {max_blocked}")
    with Store(store_path, read_only=True) as store, _stages("training the scope model", FIT_STAGES) as start:
        model = ScopeModel(max_blocked=max_blocked).fit(store, progress=start)
    path = model.save(rewriter_dir / "scope")
    report = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in model.report_.items())
    out.print(f"trained the scope model ({report}) -> {path}")
