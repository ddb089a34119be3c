"""A starter global layer for a new install: ``selflearn starter``.

A single home learns little from its own retries (docs/home-assistant.md). What it can start
with is a global rewriter trained on a simulated population whose users say things the way
people do in the public corpora (HWU64 and Home Assistant's own test sentences, read from
``../shared/data``): the recipe of the project's flagship rewriter (docs/benchmarks.md), built
reproducibly. The package ships one built with the defaults (:func:`packaged_starter_dir`,
``selflearn/data/starter``), which ``selflearn serve`` and ``selflearn wyoming`` load when no
``--rewriter`` is given; the corpora themselves are not in the package, and the rewriter made
from them carries their CC BY attributions (``ATTRIBUTION.md`` and ``starter.json`` in the folder:
:data:`CORPUS_SOURCES`).

The recipe (:class:`StarterConfig`, every number a default that can be changed):

1. simulate three parts of the population on the ``train`` phrasings (the held-out ``test``
   phrasings stay out of it, for evaluation): two of households speaking through the noisy
   recogniser (seeds 21 and 22) and one of households typing or speaking clearly (seed 23);
2. ingest them into one store and score its friction signals (the lexical rephrase baseline and
   the heuristic defect detector, as ``selflearn signals`` does by default);
3. mine the rewrite table (k distinct users, at least two homes);
4. train the rewriter (global layer, ranker, calibrated threshold) with that table as its
   precomputed layer, and write it with a ``starter.json`` that says how it was made.

Simulation truth is never read by steps 2-4. Serve the result with questions on (``selflearn serve
--rewriter models/starter``; ``--confirm guesses`` is the default): the assistant asks "Did you
mean ...?" about the global layer's guesses, and a yes teaches the home's own layer.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selflearn import __version__
from selflearn.core.errors import ConfigError, DependencyError

if TYPE_CHECKING:  # the building imports are lazy: `selflearn serve` reads only where the starter is
    from selflearn.assistant.nlu import NluConfig

Say = Callable[[str], None]
"""Where progress lines go (the command prints them)."""


CORPUS_SOURCES: dict[str, dict[str, str]] = {
    "hwu64": {
        "title": "HWU64 / NLU-Evaluation-Data (cross-validation subset, minus SLURP's test sentences)",
        "authors": "Xingkun Liu, Arash Eshghi, Pawel Swietojanski, Verena Rieser",
        "citation": "Benchmarking Natural Language Understanding Services for building Conversational "
        "Agents, IWSDS 2019",
        "source": "https://github.com/xliuhw/NLU-Evaluation-Data",
        "commit": "f6071b496b17d71e6eb43f543af0707f4ff30557",
        "license": "CC BY 4.0",
        "license_url": "https://creativecommons.org/licenses/by/4.0/",
    },
    "ha_tests": {
        "title": "Home Assistant intents: English test sentences (47 of 67 files) and their test home",
        "authors": "the Home Assistant contributors (home-assistant/intents)",
        "citation": "home-assistant/intents, tests/en",
        "source": "https://github.com/home-assistant/intents",
        "commit": "aa550032a57b67c13995c032220bc4101521ead2",
        "license": "CC BY 4.0",
        "license_url": "https://creativecommons.org/licenses/by/4.0/",
    },
    "slurp": {
        "title": "SLURP: A Spoken Language Understanding Resource Package (devel split, text annotations)",
        "authors": "Emanuele Bastianelli, Andrea Vanzo, Pawel Swietojanski, Verena Rieser",
        "citation": "SLURP: A Spoken Language Understanding Resource Package, EMNLP 2020",
        "source": "https://github.com/pswietojanski/slurp",
        "commit": "8eb16545762be97ace75334109d73824217311f1",
        "license": "CC BY 4.0",
        "license_url": "https://creativecommons.org/licenses/by/4.0/",
    },
}
"""Where each corpus a starter can be built from comes from, and its licence (as the copies in
``../shared/data`` say). A starter is a work adapted from the corpora it was built from (its
simulated users say their phrasings; its table and indexes hold patterns made from them), so it
carries their attributions."""

CHANGES = (
    "The sentences were normalised and turned into patterns with typed placeholders (docs/corpora.md), "
    "said by simulated households, and what those households' assistant failed on and how they "
    "rephrased it was mined and learned into this rewriter (its rewrite table, indexes and ranker "
    "hold patterns made from the sentences). No sentence file is included."
)
"""What was changed, as CC BY 4.0 section 3(a)(1)(B) asks an adapter to say."""


def packaged_starter_dir() -> Path:
    """The starter rewriter shipped in the package (``selflearn/data/starter``)."""
    return Path(__file__).resolve().parent / "data" / "starter"


def packaged_starter() -> Path | None:
    """The packaged starter's folder, or None when this install has none (a source tree where
    it was never built: ``selflearn starter --out src/selflearn/data/starter`` builds it)."""
    folder = packaged_starter_dir()
    return folder if (folder / "starter.json").is_file() else None


def default_rewriter(rewriter: Path | None, starter: bool) -> Path | None:
    """The rewriter folder a service loads: ``rewriter`` when given, else the packaged starter
    when ``starter`` (and this install has one), else None (pass-through)."""
    if rewriter is not None or not starter:
        return rewriter
    return packaged_starter()


def rewriter_label(folder: Path | None, given: Path | None) -> str | None:
    """How a command names the rewriter it loads (``folder``, from :func:`default_rewriter` with
    ``given`` as ``--rewriter``): ``the packaged starter``, the folder given, or None (none)."""
    if folder is None:
        return None
    return "the packaged starter" if given is None else str(folder)


def attribution_markdown(corpora: tuple[str, ...] | list[str]) -> str:
    """``ATTRIBUTION.md`` of a starter built from ``corpora``."""
    lines = [
        "# Attribution",
        "",
        "This starter rewriter was built by `selflearn starter` (selflearn, Apache-2.0) and is adapted",
        "from the public corpora below, licensed under CC BY 4.0; this notice gives the attribution",
        "their licence asks for.",
        "",
    ]
    for name in corpora:
        src = CORPUS_SOURCES.get(name)
        if src is None:
            lines.append(f"- `{name}`: no attribution recorded")
            continue
        at = f" at commit {src['commit']}" if src["commit"] else ""
        lines += [
            f"- **{src['title']}** (`{name}`), by {src['authors']}; {src['citation']}.",
            f"  From {src['source']}{at}. Licence: {src['license']} ({src['license_url']}).",
        ]
    lines += ["", f"Changes: {CHANGES}", ""]
    return "\n".join(lines)


def write_attribution(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Add the corpora's attributions to ``manifest`` and write ``ATTRIBUTION.md`` next to it."""
    corpora = list(manifest.get("recipe", {}).get("corpora", ()))
    manifest = {
        **manifest,
        "corpora": {name: CORPUS_SOURCES.get(name, {}) for name in corpora},
        "changes": CHANGES,
    }
    (folder / "ATTRIBUTION.md").write_text(attribution_markdown(corpora))
    return manifest


@dataclass(frozen=True)
class StarterPart:
    """One simulated part of the starter population."""

    prefix: str
    """Household id prefix of the part."""
    seed: int
    asr: str
    """``noisy`` (speech through the recogniser learned from the real one) or ``exact``."""


DEFAULT_PARTS = (
    StarterPart("mn", 21, "noisy"),
    StarterPart("mm", 22, "noisy"),
    StarterPart("mx", 23, "exact"),
)
"""The flagship's population: 240 households on noisy speech and 120 typing or heard exactly."""

ASK_THRESHOLD = 0.12
"""The bar a guess of the default starter must clear to be asked about. Chosen on a development
population (``mining-held-out``: 20 new homes x 7 days, strict matching, noisy speech), never the
evaluation one, by ``bench/experiments/question_budget.py``: the highest bar that still cuts
defects by at least 10 %, the real-home target (about 11 questions per 100 turns there, against 22
at the acting bar, which cuts them by 15 %). It is a score of this recipe's ranker: a starter built
with another recipe should be swept again."""


@dataclass(frozen=True)
class StarterConfig:
    """How the starter is built."""

    households: int = 120
    """Households per part (three parts)."""
    days: float = 14.0
    """Simulated days per household."""
    corpora: tuple[str, ...] = ("hwu64", "ha_tests")
    """Public corpora the simulated users' phrasings come from."""
    data_dir: str | None = None
    """Where the corpora are (default: :func:`~selflearn.simulation.corpora.find_data_dir`'s)."""
    min_users: int = 5
    """k: distinct users a pooled pattern or rewrite needs."""
    nlu: NluConfig = "strict"
    """The matcher the simulated households' assistant uses: ``strict`` (Assist's templates alone,
    as Home Assistant matches before 2025.8 and since 2026.5) or ``strict+gazetteer`` (templates,
    then fuzzy matching of names, as 2025.8 to 2026.4 did): the starter learns which requests fail
    and how often from it, and a starter built for the other matcher barely rewrites (measured
    behind Home Assistant 2025.4: docs/benchmarks.md#a-real-home)."""
    ask_threshold: float | None = ASK_THRESHOLD
    """The score a guess needs to be asked about (``RewriterConfig.ask_threshold``, saved with
    the rewriter; ``None``: the calibrated bar acting uses). Questions cost the household a turn
    each, and about half of the guesses near the acting bar get a yes: see :data:`ASK_THRESHOLD`."""
    workers: int = 2
    """Worker processes for the simulation and the rewriter's training folds."""
    parts: tuple[StarterPart, ...] = field(default_factory=lambda: DEFAULT_PARTS)

    def __post_init__(self) -> None:
        if self.households < 3:
            raise ConfigError(f"households must be at least 3 per part, not {self.households}")
        if self.days <= 0:
            raise ConfigError(f"days must be positive, not {self.days}")
        if self.min_users < 1:
            raise ConfigError(f"min_users must be at least 1, not {self.min_users}")
        if self.nlu not in ("strict", "strict+gazetteer"):
            raise ConfigError(f"nlu must be strict or strict+gazetteer, not {self.nlu!r}")
        if self.ask_threshold is not None and not 0.0 < self.ask_threshold < 1.0:
            raise ConfigError(f"ask_threshold must be between 0 and 1, not {self.ask_threshold}")


@dataclass(frozen=True)
class StarterResult:
    """What was built."""

    folder: Path
    manifest: dict[str, Any]


def _check_corpora(config: StarterConfig) -> None:
    from selflearn.simulation.corpora import find_data_dir, load_corpus

    folder = find_data_dir(Path(config.data_dir) if config.data_dir else None)
    missing = [name for name in config.corpora if folder is None or not load_corpus(name, folder)]
    if missing:
        where = config.data_dir or "$SELFLEARN_DATA_DIR, ../shared/data or ~/.local/share/selflearn/data"
        raise DependencyError(
            f"corpus {', '.join(missing)} not found in {where}: the starter's users speak the way the "
            "public corpora do (`selflearn data fetch` gets them: docs/corpora.md); give --data-dir"
        )


def build_starter(config: StarterConfig, out: Path, work: Path, say: Say = print) -> StarterResult:
    """Build the starter rewriter into ``out`` (replaced if it exists), simulating and storing in
    ``work`` (kept, so a later run can reuse the store: delete it to start over)."""
    from selflearn.assistant.pipeline import AssistantConfig
    from selflearn.core.store import Store
    from selflearn.mining import DuckDbEngine, MiningConfig, RewriteMiner
    from selflearn.rewrite import FitConfig, KnowledgeConfig, Rewriter
    from selflearn.signals.defect import score_defects
    from selflearn.signals.rephrase import PairwiseRephraseBaseline, score_rephrases
    from selflearn.simulation.simulator import SimulationConfig, simulate

    _check_corpora(config)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    work.mkdir(parents=True, exist_ok=True)
    store_path = work / "starter.duckdb"
    done_marker = work / "store.json"
    recipe = _recipe(config)
    # As JSON reads it back (tuples as lists); the ask bar is not in the store.
    store_recipe = json.loads(json.dumps({k: v for k, v in recipe.items() if k != "ask_threshold"}))
    if done_marker.exists() and json.loads(done_marker.read_text()) == store_recipe and store_path.exists():
        say(f"reusing the simulated and scored store {store_path}")
    else:
        done_marker.unlink(missing_ok=True)
        store_path.unlink(missing_ok=True)
        folders = []
        clock = time.perf_counter()
        for part in config.parts:
            folder = work / f"sim-{part.prefix}"
            shutil.rmtree(folder, ignore_errors=True)
            sim = SimulationConfig(
                households=config.households,
                days=config.days,
                seed=part.seed,
                household_prefix=part.prefix,
                phrasing_split="train",
                corpora=config.corpora,
                data_dir=config.data_dir,
                assistant=AssistantConfig(asr=part.asr, nlu=config.nlu),
                workers=config.workers,
            )
            what = f"{part.prefix}, {part.asr} speech, seed {part.seed}"
            say(f"simulating {config.households} households ({what})")
            result = simulate(sim, folder)
            say(f"  {result.turns:,} turns in {result.seconds:.0f} s")
            folders.append(folder)
        timings["simulate_s"] = time.perf_counter() - clock
        clock = time.perf_counter()
        with Store(store_path) as store:
            report = store.ingest(folders)
            say(f"stored: {report.summary()}")
            links = score_rephrases(store, PairwiseRephraseBaseline("lexical"))
            defects = score_defects(store)
            say(f"signals: {links:,} turns scored for rephrases; defects: {defects.summary()}")
        timings["store_and_signals_s"] = time.perf_counter() - clock
        done_marker.write_text(json.dumps(store_recipe))
    clock = time.perf_counter()
    with Store(store_path, read_only=True) as store:
        turns = store.count("turns")
        households = int(store.value("SELECT count(DISTINCT household_id) FROM turns"))
        say("mining the rewrite table")
        table = RewriteMiner(MiningConfig(min_users=config.min_users)).fit(DuckDbEngine(store)).mined()
        timings["mine_s"] = time.perf_counter() - clock
        say(f"  {len(table):,} active rewrites; training the rewriter (global layer, ranker, threshold)")
        clock = time.perf_counter()
        fit = FitConfig(knowledge=KnowledgeConfig(min_users=config.min_users), workers=config.workers)
        rewriter = Rewriter(training=fit).fit(store, table)
        rewriter.config = replace(rewriter.config, ask_threshold=config.ask_threshold)
        timings["train_s"] = time.perf_counter() - clock
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    rewriter.save(staging)
    total = time.perf_counter() - started
    size = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
    manifest = {
        "format": "selflearn.starter.v1",
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "recipe": recipe,
        "turns": turns,
        "households": households,
        "rewrites": len(table),
        "table_version": table.version,
        "seconds": {key: round(value, 1) for key, value in {**timings, "total_s": total}.items()},
        "bytes": size,
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "selflearn": __version__,
    }
    manifest = write_attribution(staging, manifest)
    (staging / "starter.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)  # a reader never sees half a folder
    return StarterResult(out, manifest)


def _recipe(config: StarterConfig) -> dict[str, Any]:
    data = asdict(config)
    data.pop("workers")  # the output does not depend on it
    return data


__all__ = [
    "CORPUS_SOURCES",
    "DEFAULT_PARTS",
    "StarterConfig",
    "StarterPart",
    "StarterResult",
    "attribution_markdown",
    "build_starter",
    "default_rewriter",
    "packaged_starter",
    "packaged_starter_dir",
    "rewriter_label",
    "write_attribution",
]
