"""Latency and memory of the rewrite decision with a community release's global table, and with a
10,000,000-rule table.

    nice -n 10 python bench/community_latency.py [--entries 10000000] [--small 200] \\
        [--requests 20000] [--hit-share 0.5]

A community release (:mod:`selflearn.community.release`) ships a ``RewriteTable``
(``selflearn.rewrites.v2``) that the rewriter serves as its precomputed layer. This measures
``Rewriter.rewrite_one`` with such a table as the only layer, at the size of a release
(``--small`` rules) and at ``--entries`` rules.

1. Builds each table once (cached under ``--cache``, default ``bench/.cache/community-latency/``)
   in the release's own rows (:func:`selflearn.community.release.table_of`: noisy install counts
   in ``users``/``households``/``support``, the share of help in ``p_target``, ``p_source`` 0) and
   saved with ``RewriteTable.save``. **Targets** are real sentences: the user utterances of SGD,
   SLURP, CLINC150, SNIPS, HWU64, Banking77 and Taskmaster (``../shared/data``, read as
   ``bench/rewrite_latency.py`` reads them) and the simulator's Home Assistant test sentences,
   HWU64 and SLURP phrasings, delexicalized with the names of 200 simulated homes (so home
   commands carry ``{area}``, ``{name}``, ``{floor}``, ``{number}``). **Sources** are
   systematic misrecognitions of them, the failing patterns a community learns to fix: word
   substitutions and deletions from the project's learned ASR confusion model
   (``ConfusionModel.default()``: each word's observed outcomes, most likely first), then
   insertions of ``uh``, ``um``, ``the``, ``a``, ``and`` between words, then pairs and triples of
   those, taken round-robin over the sentences (the i-th variant of every sentence before any
   (i+1)-th) until ``--entries`` distinct sources that are no clean sentence are reached. A
   variant keeps its sentence's placeholders, so the rule fills. ``--small`` takes the first
   round (one variant each of that many sentences).
2. Loads the table (``RewriteTable.load``: DuckDB reads the Parquet file a column at a time, each
   repeating column coded as it is read, then the source index and the guards' pass; timed) into
   ``Rewriter.from_parts(table=...)`` with 50 simulated homes, and replays ``--requests``
   failed requests (``RewriteContext(failed=True, household_id, home)``) after as many other
   requests to warm up (not measured): a share ``--hit-share`` whose pattern is a rule's source
   (a uniformly drawn rule filled with the home's own names and numbers), the rest clean corpus
   sentences, filled the same way (no rule has them as source: a miss, as most of a real failed
   stream would be). Hits that the table's guards refuse (a substitution that flips ``off`` into
   ``on``) are not applied and count as misses, as they would.
3. Reports wall-clock (``perf_counter_ns``) p50/p90/p99/max per decision, CPU time per decision
   (``thread_time_ns``), over all requests and over hits and misses apart; the resident memory
   (VmRSS) before and after loading and the peak, and the table's size in memory per column; the
   load time; the share of decisions whose wall time exceeds their CPU time by over a
   millisecond (the process was descheduled: on a shared machine under ``nice`` that sets the
   wall p99) and the load average. Each size is
   measured in a fresh process (``--measure``) so one size's memory is not counted in the
   other's; the gc is left as it is.

The figures are written as JSON to ``docs/results/community_latency.json`` (or
``$SELFLEARN_RESULTS``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from rewrite_latency import corpus_sentences
from selflearn.assistant.asr.confusion import ConfusionModel
from selflearn.core.delex import PLACEHOLDER, Delexicalizer, example_values
from selflearn.core.home import Area, Entity, Floor, Home
from selflearn.core.hooks import RewriteContext
from selflearn.core.text import ONES, TENS
from selflearn.evaluate import write_results
from selflearn.rewrite import Rewriter
from selflearn.rewrite.table import RewriteTable, arrow_schema, rule_id
from selflearn.simulation.corpora import find_data_dir, load_corpus
from selflearn.simulation.population import make_household

CACHE = Path(__file__).resolve().parent / ".cache" / "community-latency"
INSERTIONS = ("uh", "um", "the", "a", "and")
"""Words a recogniser inserts (fillers and function words)."""
NUMBER_WORDS = frozenset([*ONES, *TENS, "hundred", "thousand"])
SIMULATOR_SLOTS = {
    "name": "{name}",
    "area": "{area}",
    "floor": "{floor}",
    **{
        k: "{number}"
        for k in ("minutes", "hours", "seconds", "brightness", "volume", "position", "temperature")
    },
}
"""Placeholders of the simulator's phrasings as the delexicalizer writes them (others dropped)."""


def log(message: str) -> None:
    print(f"[community-latency] {message}", file=sys.stderr, flush=True)


def rss_gb() -> float:
    """Resident memory now (VmRSS), GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024**2
    return 0.0


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


# --- the patterns -------------------------------------------------------------------------------


def homes(seed: int, n: int) -> list[Home]:
    return [make_household(seed, i).home for i in range(n)]


def catalogue(seed: int) -> Home:
    """One home with every area, floor and entity name of 200 simulated homes."""
    areas: dict[str, Area] = {}
    entities: dict[str, Entity] = {}
    for home in homes(seed, 200):
        for area in home.areas:
            areas.setdefault(area.name.lower(), Area(f"a{len(areas)}", area.name, None, area.aliases))
        for ent in home.entities:
            key = ent.name.lower()
            if key not in entities:
                entities[key] = Entity(f"{ent.domain}.e{len(entities)}", ent.name, None, ent.aliases)
    floors = (Floor("upstairs", "Upstairs"), Floor("downstairs", "Downstairs"))
    return Home("catalogue", floors, tuple(areas.values()), tuple(entities.values()))


def base_patterns(seed: int) -> list[str]:
    """Delexicalized real sentences (distinct; none with ``{unknown}``), sorted."""
    data = find_data_dir(None)
    if data is None:
        sys.exit("needs ../shared/data (the corpora the table is made of)")
    delex = Delexicalizer(catalogue(seed))
    out: set[str] = set()
    for name in ("ha_tests", "hwu64", "slurp"):
        for phrasing in load_corpus(name, data):
            text = phrasing.pattern
            kinds = _placeholders(text)
            if all(k in SIMULATOR_SLOTS for k in kinds):
                for k in set(kinds):
                    text = text.replace("{" + k + "}", SIMULATOR_SLOTS[k])
                out.add(" ".join(text.split()))
    sentences = corpus_sentences(data)
    log(f"{len(sentences):,} corpus sentences, {len(out):,} simulator phrasings")
    for text in sentences:
        out.add(delex(text).pattern)
    return sorted(p for p in out if p and "{unknown}" not in p)


def _placeholders(text: str) -> list[str]:
    out, start = [], text.find("{")
    while start >= 0:
        end = text.find("}", start)
        if end < 0:
            break
        out.append(text[start + 1 : end])
        start = text.find("{", end)
    return out


def variants(pattern: str, outcomes: dict[str, list[str]]) -> Iterator[str]:
    """Misrecognitions of ``pattern``: single substitutions and deletions (most likely outcome of
    each word first), single insertions, then pairs and triples of those edits."""
    words = pattern.split()
    edits: list[tuple[int, str, str]] = []  # (position, kind, word): "s" replaces, "i" inserts before
    for rank in range(8):
        for pos, word in enumerate(words):
            options = outcomes.get(word, [])
            if rank < len(options):
                edits.append((pos, "s", options[rank]))
    for word in INSERTIONS:
        for pos in range(1, len(words) + 1):
            edits.append((pos, "i", word))
    for size in (1, 2, 3):
        for combo in itertools.combinations(edits, size):
            if len({(p, k) for p, k, _ in combo}) < size:
                continue  # two edits of the same kind at one position
            yield _apply(words, combo)


def _apply(words: list[str], edits: tuple[tuple[int, str, str], ...]) -> str:
    out: list[str] = []
    subs = {p: w for p, k, w in edits if k == "s"}
    ins = {p: w for p, k, w in edits if k == "i"}
    for pos, word in enumerate([*words, ""]):
        if pos in ins:
            out.append(ins[pos])
        if pos < len(words):
            new = subs.get(pos, word)
            if new:
                out.append(new)
    return " ".join(out)


def confusions() -> dict[str, list[str]]:
    """Each word's misrecognitions (``""``: deleted), most likely first; none that would read as
    a number or a placeholder."""
    model = ConfusionModel.default()
    out: dict[str, list[str]] = {}
    for word in model.words:
        subs = sorted(model.substitutions(word).items(), key=lambda kv: (-kv[1], kv[0]))
        keep = [h for h, _ in subs if h != word and "{" not in h and not set(h.split()) & NUMBER_WORDS]
        if keep:
            out[word] = keep
    return out


def build(entries: int, seed: int, folder: Path, bases_file: Path) -> None:
    """Write the table of ``entries`` rules into ``folder`` (``RewriteTable.save``)."""
    started = time.perf_counter()
    if bases_file.exists():
        bases = bases_file.read_text(encoding="utf-8").splitlines()
    else:
        bases = base_patterns(seed)
        bases_file.parent.mkdir(parents=True, exist_ok=True)
        bases_file.write_text("\n".join(bases) + "\n", encoding="utf-8")
    log(f"{len(bases):,} distinct clean patterns ({time.perf_counter() - started:.0f} s)")
    order = list(range(len(bases)))
    random.Random(seed).shuffle(order)
    outcomes = confusions()
    clean = set(bases)
    seen: set[str] = set()
    sources: list[str] = []
    targets: list[int] = []
    live = [(b, variants(bases[b], outcomes)) for b in order]
    rounds = 0
    while len(sources) < entries and live:
        rounds += 1
        still = []
        for b, gen in live:
            for variant in gen:
                if variant and variant not in clean and variant not in seen:
                    seen.add(variant)
                    sources.append(variant)
                    targets.append(b)
                    still.append((b, gen))
                    break
            if len(sources) >= entries:
                break
        live = still
        if rounds % 5 == 0 or len(sources) >= entries:
            log(f"round {rounds}: {len(sources):,} rules ({time.perf_counter() - started:.0f} s)")
    del seen, live
    n = len(sources)
    if n < entries:
        log(f"only {n:,} distinct variants: the table has {n:,} rules")
    rng = np.random.default_rng(seed)
    target_index = np.asarray(targets, dtype=np.int64)
    base_array = pa.array(bases)
    base_examples = pa.array([example_values(p) if "{" in p else p for p in bases])
    installs = np.maximum(1, np.round(rng.gamma(2.0, 40.0, n))).astype(np.int64)
    helped = np.round(rng.uniform(0.5, 1.0, n), 6)
    zero_i, zero_f = pa.array(np.zeros(n, np.int64)), pa.array(np.zeros(n))
    source_array = pa.array(sources, pa.string())
    columns = {
        "rule_id": pa.chunked_array(
            [
                pa.array(
                    [
                        rule_id(s, bases[t])
                        for s, t in zip(
                            sources[at : at + 1_000_000], targets[at : at + 1_000_000], strict=True
                        )
                    ],
                    pa.string(),
                )
                for at in range(0, n, 1_000_000)
            ],
            pa.string(),
        ),
        "source": source_array,
        "target": base_array.take(pa.array(target_index)),
        "source_example": pa.array([example_values(s) if "{" in s else s for s in sources]),
        "target_example": base_examples.take(pa.array(target_index)),
        "p_source": zero_f,
        "p_target": pa.array(helped),
        "absorb_source": zero_f,
        "absorb_target": pa.array(helped),
        "support": pa.array(installs),
        "users": pa.array(installs),
        "households": pa.array(installs),
        "source_turns": zero_i,
        "target_turns": zero_i,
        "source_users": zero_i,
        "sensitive": pa.array(np.zeros(n, bool)),
        "deployed_turns": zero_i,
        "deployed_success": zero_i,
        "p_worse_after": zero_f,
        "status": pa.array(["active"] * n),
    }
    del sources, targets
    table = pa.table(columns, schema=arrow_schema())
    log(f"{n:,} rules as Arrow, {table.nbytes / 1e9:.2f} GB ({time.perf_counter() - started:.0f} s)")
    meta = {"source": "community", "release": f"bench-{n}", "period": "bench", "built_seconds": 0.0}
    rewrites = RewriteTable.from_arrow(table, meta)
    del table
    log(f"indexed ({time.perf_counter() - started:.0f} s); saving")
    rewrites.metadata["built_seconds"] = round(time.perf_counter() - started, 1)
    rewrites.save(folder)
    log(f"saved {folder} ({time.perf_counter() - started:.0f} s)")


# --- the requests -------------------------------------------------------------------------------


def fill_for(pattern: str, home: Home, rng: random.Random) -> str | None:
    """``pattern`` said in ``home``: its placeholders filled with the home's names, or None."""
    if "{" not in pattern:
        return pattern
    names = {
        "area": [a.name for a in home.areas],
        "name": [e.name for e in home.entities],
        "floor": [f.name for f in home.floors],
    }
    missing = False

    def sub(match: Any) -> str:
        nonlocal missing
        kind = match.group(1)
        if kind == "number":
            return str(rng.randint(2, 95))
        options = names.get(kind) or []
        if not options:
            missing = True
            return ""
        return str(rng.choice(options)).lower()

    out = PLACEHOLDER.sub(sub, pattern)
    return None if missing else out


def requests(
    table: RewriteTable, bases: list[str], houses: list[Home], n: int, hit_share: float, rng: random.Random
) -> list[tuple[str, Home, bool]]:
    """``n`` requests (text, home, whether its pattern is a rule's source)."""
    rows = np.flatnonzero(table._index.active)
    out: list[tuple[str, Home, bool]] = []
    while len(out) < n:
        hit = rng.random() < hit_share
        home = rng.choice(houses)
        if hit:
            pattern = str(table._index.source.get(int(rows[rng.randrange(len(rows))])))
        else:
            pattern = rng.choice(bases)
        text = fill_for(pattern, home, rng)
        if text:
            out.append((text, home, hit))
    return out


def measure(folder: Path, bases_file: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Load the table in ``folder`` and time ``--requests`` decisions (in this process)."""
    houses = homes(args.seed, 50)
    bases = bases_file.read_text(encoding="utf-8").splitlines()
    rss_before = rss_gb()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    table = RewriteTable.load(folder)
    rewriter = Rewriter.from_parts(table=table, homes={h.home_id: h for h in houses})
    load_s = time.perf_counter() - started
    rss_loaded = rss_gb()
    log(
        f"{folder.name}: {table.num_rows:,} rules loaded in {load_s:.1f} s; "
        f"resident {rss_loaded:.2f} GB (before {rss_before:.2f}); "
        f"refused by the guards: {int(table._refused.sum()):,}"
    )
    rng = random.Random(args.seed)
    warm = requests(table, bases, houses, args.requests, args.hit_share, rng)
    measured = requests(table, bases, houses, args.requests, args.hit_share, rng)
    for text, home, _ in warm:
        rewriter.rewrite_one(text, RewriteContext(household_id=home.home_id, home=home, failed=True))
    wall = np.zeros(len(measured))
    cpu = np.zeros(len(measured))
    applied = np.zeros(len(measured), bool)
    sourced = np.array([hit for _, _, hit in measured])
    perf, thread = time.perf_counter_ns, time.thread_time_ns
    for i, (text, home, _) in enumerate(measured):
        ctx = RewriteContext(household_id=home.home_id, home=home, failed=True)
        c0, w0 = thread(), perf()
        decision = rewriter.rewrite_one(text, ctx)
        w1, c1 = perf(), thread()
        wall[i], cpu[i] = (w1 - w0) / 1e6, (c1 - c0) / 1e6
        applied[i] = decision.layer == "precomputed"
    rss_after, peak = rss_gb(), peak_gb()

    def pct(values: np.ndarray) -> dict[str, float]:
        if not len(values):
            return {}
        return {
            "p50_ms": round(float(np.percentile(values, 50)), 4),
            "p90_ms": round(float(np.percentile(values, 90)), 4),
            "p99_ms": round(float(np.percentile(values, 99)), 4),
            "max_ms": round(float(values.max()), 3),
        }

    index = table._index
    figures: dict[str, Any] = {
        "entries": table.num_rows,
        "refused_rules": int(table._refused.sum()),
        "load_seconds": round(load_s, 2),
        "requests": len(measured),
        "warmup_requests": len(warm),
        "households": len(houses),
        "hit_share": round(float(applied.mean()), 4),
        "source_share": round(float(sourced.mean()), 4),
        **pct(wall),
        "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 4),
        "cpu_p99_ms": round(float(np.percentile(cpu, 99)), 4),
        "cpu_max_ms": round(float(cpu.max()), 3),
        "waited_over_1ms_share": round(float(np.mean(wall - cpu > 1.0)), 4),
        "hits": pct(wall[applied]),
        "misses": pct(wall[~applied]),
        "rss_gb": round(rss_loaded, 3),
        "rss_before_load_gb": round(rss_before, 3),
        "rss_after_requests_gb": round(rss_after, 3),
        "peak_rss_gb": round(peak, 3),
        "table_gb": round(table.nbytes / 1e9, 3),
        "table_gb_by_column": {name: round(size / 1e9, 3) for name, size in table.column_nbytes().items()},
        "index_gb": round(sum(a.nbytes for a in (index.active, index.order, table._refused)) / 1e9, 3),
        "errors": rewriter.stats.errors,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "table_version": table.version,
        "built_seconds": table.metadata.get("built_seconds"),
    }
    figures["active_rules"] = len(table)  # after the memory readings: counting takes a copy
    log(
        f"{folder.name}: {len(measured):,} decisions, {applied.mean():.1%} rewritten by the table; "
        f"wall p50 {figures['p50_ms']:.3f} ms, p90 {figures['p90_ms']:.3f}, p99 {figures['p99_ms']:.3f}, "
        f"max {figures['max_ms']:.1f}; CPU p50 {figures['cpu_p50_ms']:.3f}, p99 {figures['cpu_p99_ms']:.3f}; "
        f"resident {rss_after:.2f} GB, peak {figures['peak_rss_gb']:.2f}"
    )
    return figures


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=10_000_000, help="rules of the large table")
    parser.add_argument("--small", type=int, default=200, help="rules of the release-sized table")
    parser.add_argument("--requests", type=int, default=20_000, help="measured requests (as many warm up)")
    parser.add_argument(
        "--hit-share", type=float, default=0.5, help="share of requests said as a rule's source"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)  # in a child process
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)  # in a child process
    args = parser.parse_args()
    bases_file = args.cache / f"bases-{args.seed}.txt"

    cache: Path = args.cache

    def folder(n: int) -> Path:
        return cache / f"table-{n}-{args.seed}"

    if args.build is not None:
        build(args.build, args.seed, folder(args.build), bases_file)
        return
    if args.measure is not None:
        print(json.dumps(measure(folder(args.measure), bases_file, args)))
        return
    child = [sys.executable, __file__, "--seed", str(args.seed), "--cache", str(args.cache)]
    child += ["--requests", str(args.requests), "--hit-share", str(args.hit_share)]
    out: dict[str, Any] = {}
    for label, n in (("latency_release", args.small), ("latency_10m", args.entries)):
        if not (folder(n) / "model.json").exists():
            subprocess.run([*child, "--build", str(n)], check=True)
        done = subprocess.run([*child, "--measure", str(n)], check=True, capture_output=True, text=True)
        sys.stderr.write(done.stderr)
        out[label] = json.loads(done.stdout.strip().splitlines()[-1])
    figures = {
        **out,
        "targets": {"p50_ms": 0.3, "p99_ms": 1.0, "rss_gb": 4.0},
        "layer": "precomputed table only (Rewriter.from_parts(table=...)), as `selflearn community "
        "pull` installs a release without --base",
        "requests": "failed requests (RewriteContext(failed=True)) from 50 simulated homes; "
        f"{args.hit_share:.0%} said as a rule's source, the rest clean corpus sentences",
    }
    if args.entries != 10_000_000:
        figures["note"] = f"large table of {args.entries:,} rules, not 10,000,000"
    write_results("community_latency", figures, seconds=time.perf_counter() - started)


if __name__ == "__main__":
    main()
