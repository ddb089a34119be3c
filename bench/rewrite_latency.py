"""In-process latency of the online rewriter with a 1,000,000-entry global index.

    python bench/rewrite_latency.py --rewriter bench/.cache/online/rewriter-k5 \\
        --store bench/.cache/online/train-120x14.duckdb [--entries 1000000]

``--rewriter`` is a folder ``Rewriter.load`` reads (``selflearn train rewriter``, or the one
``bench/online.py`` trains); ``--store`` a store of logged turns (e.g. the one it was trained on).

1. Loads a trained rewriter and grows its global knowledge to ``--entries`` patterns with real
   sentences: user utterances of SGD, SLURP, CLINC150, SNIPS, HWU64, Banking77 and Taskmaster
   (``../shared/data``), then noisy-ASR variants of them (the project's noisy channel) until
   the count is reached. Each added pattern copies the statistics and signature of a random
   trained pattern with the same slot signature, so the ranker sees realistic candidates. The
   partitions are re-indexed (HNSW above 20,000 patterns; M=32, efConstruction 80).
   The grown knowledge is cached under ``--cache`` (default ``bench/.cache/latency/``).
2. Replays ``--requests`` requests from the store (what was said, in order) through
   ``rewrite_one``, each mode from empty caches warmed up on as many requests of other
   households (so no measured request was seen before): behind
   the NLU (``failed=True`` for requests whose result was not a success; the others are not asked,
   as the assistant would not ask) and before it (every request, ``failed=None``).
   Each mode runs twice: with a 10,000-entry pattern cache (a request pattern's embedding and
   global neighbourhood, kept for repeats; the hit rate is printed) and without it (embedding
   and index search on every decision). HNSW searches explore ``--ef-search`` candidates.
3. Reports wall-clock p50/p90/p99/max per decision, CPU time per decision, and the process's
   resident memory with the rewriter loaded.
4. ``--dump FILE`` writes every decision of the pattern-cache-off runs as JSON lines: two runs'
   files compare line by line, to show that a speed-up changed no decision.

The figures are also written as JSON to ``docs/results/rewrite_latency.json`` (or
``$SELFLEARN_RESULTS``).
"""

from __future__ import annotations

import argparse
import csv
import gc
import gzip
import json
import random
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from selflearn import Store
from selflearn.assistant.asr import make_asr
from selflearn.core.delex import Delexicalizer
from selflearn.core.hooks import RewriteContext
from selflearn.evaluate import write_results
from selflearn.rewrite import Rewriter
from selflearn.rewrite.index import EF_SEARCH
from selflearn.rewrite.knowledge import Knowledge, Pattern, build_indexes, slots_key
from selflearn.rewrite.logs import read_homes
from selflearn.simulation.corpora import find_data_dir

CACHE = Path(__file__).resolve().parent / ".cache" / "latency"


def corpus_sentences(data: Path) -> list[str]:
    """Distinct user utterances of the shared corpora (lower-cased)."""
    out: set[str] = set()
    for path in sorted((data / "sgd").glob("*/dialogues_*.json.gz")):
        for dialogue in json.loads(gzip.decompress(path.read_bytes())):
            out.update(t["utterance"].lower() for t in dialogue["turns"] if t["speaker"] == "USER")
    for path in sorted((data / "taskmaster4" / "data").glob("*.json.gz")):
        try:
            for dialogue in json.loads(gzip.decompress(path.read_bytes())):
                for t in dialogue.get("utterances", []):
                    if t.get("speaker") == "USER":
                        out.add(str(t.get("text", "")).lower())
        except (ValueError, OSError):
            continue
    slurp = data / "slurp" / "lm_sentences_minus_test.txt"
    if slurp.exists():
        out.update(line.strip().lower() for line in slurp.read_text().splitlines())
    clinc = data / "clinc150" / "data_full_train_val.json"
    if clinc.exists():
        for rows in json.loads(clinc.read_text()).values():
            out.update(str(r[0]).lower() for r in rows)
    for name in ("train.tsv", "valid.tsv"):
        path = data / "snips" / name
        if path.exists():
            with path.open() as fh:
                out.update(row["utterance"].lower() for row in csv.DictReader(fh, delimiter="\t"))
    hwu = data / "hwu64" / "hwu64_cv_minus_slurp_test.jsonl"
    if hwu.exists():
        for line in hwu.read_text().splitlines():
            row = json.loads(line)
            out.add(str(row.get("text") or row.get("utterance") or "").lower())
    bank = data / "banking77" / "train.csv"
    if bank.exists():
        with bank.open() as fh:
            out.update(row["text"].lower() for row in csv.DictReader(fh))
    return sorted(s for s in out if 0 < len(s) <= 200)


def grow(knowledge: Knowledge, rewriter: Rewriter, entries: int, data: Path, seed: int) -> Knowledge:
    """``knowledge`` plus corpus sentences and their noisy variants, to ``entries`` patterns."""
    assert rewriter.embedder is not None
    rng = random.Random(seed)
    delex = Delexicalizer(None)
    by_slots: dict[str, list[Pattern]] = {}
    for p in knowledge.patterns_:
        by_slots.setdefault(p.slots, []).append(p)
    seen = {p.pattern for p in knowledge.patterns_}
    patterns = list(knowledge.patterns_)
    sentences = corpus_sentences(data)
    print(f"[latency] {len(sentences):,} distinct corpus sentences", file=sys.stderr)
    asr = make_asr("noisy")
    rounds = 0
    while len(patterns) < entries and rounds < 50:
        for text in sentences:
            if rounds:
                text = asr.transcribe(text, rng).text
            pattern = delex(text).pattern
            if pattern in seen:
                continue
            donors = by_slots.get(slots_key(pattern)) or knowledge.patterns_
            donor = rng.choice(donors)
            seen.add(pattern)
            patterns.append(Pattern(**{**donor.__dict__, "pattern": pattern, "slots": slots_key(pattern)}))
            if len(patterns) >= entries:
                break
        rounds += 1
        print(f"[latency] round {rounds}: {len(patterns):,} patterns", file=sys.stderr)
    started = time.perf_counter()
    indexes = build_indexes(patterns, rewriter.embedder)
    print(
        f"[latency] embedded and indexed {len(patterns):,} patterns in {time.perf_counter() - started:.0f} s"
    )
    grown = {**knowledge.metadata_, "grown_to": len(patterns)}
    return Knowledge.from_parts(patterns, indexes, knowledge.config, grown)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rewriter", type=Path, required=True)
    parser.add_argument("--store", type=Path, required=True, help="requests to replay (and the homes)")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--ef-search", type=int, default=EF_SEARCH, help=f"HNSW ef at search time (default {EF_SEARCH})"
    )
    parser.add_argument(
        "--dump",
        type=Path,
        help="write every decision of the pattern-cache-off runs (mode, request, result) as JSON "
        "lines, to check that a speed-up leaves the decisions unchanged",
    )
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="move the loaded rewriter out of the garbage collector's reach (gc.freeze)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=CACHE,
        help="where grown knowledge is kept (default bench/.cache/latency)",
    )
    args = parser.parse_args()
    data = find_data_dir(None)
    if data is None:
        sys.exit("needs ../shared/data (the corpora the index is grown with)")
    rewriter = Rewriter.load(args.rewriter)
    if rewriter.knowledge_ is None:
        sys.exit(f"{args.rewriter} has no global knowledge")
    # Keyed by the trained knowledge alone: a retrained ranker reuses the grown index.
    trained = rewriter.knowledge_.metadata_.get("version", "unversioned")
    folder = args.cache / f"knowledge-{args.entries}-{trained}"
    if (folder / "model.json").exists():
        knowledge = Knowledge.load(folder)
    else:
        knowledge = grow(rewriter.knowledge_, rewriter, args.entries, data, args.seed)
        knowledge.save(folder)
        knowledge = Knowledge.load(folder)
    for index, _ in knowledge.indexes_.values():
        index.set_ef_search(args.ef_search)
    rewriter.knowledge_ = knowledge
    if args.gc_freeze:
        gc.collect()
        gc.freeze()
    parts = sorted(
        ((len(rows), slots, idx.kind) for slots, (idx, rows) in knowledge.indexes_.items()), reverse=True
    )
    print(
        f"knowledge: {len(knowledge):,} patterns; largest partitions: {parts[:4]}; "
        f"HNSW efSearch {args.ef_search}"
    )
    with Store(args.store, read_only=True) as store:
        rewriter.homes.update(read_homes(store))
        rows = store.query(
            "SELECT coalesce(rewrite.original_text, text) AS said, household_id, result.status AS status, "
            "device.area AS area, timestamp FROM turns ORDER BY household_id, timestamp LIMIT ?",
            [2 * args.requests],
        ).to_pylist()
    rows, warmup = rows[: args.requests], rows[args.requests :]
    loaded_mb = rss_mb()
    print(f"resident memory with the rewriter loaded: {loaded_mb:,.0f} MB (peak)")

    def warm_up(behind: bool) -> None:
        # A running service has touched its index pages and filled its per-pattern caches, but
        # not with the requests about to be measured: warm up on other households' requests.
        for row in warmup:
            failed = row["status"] != "success"
            if behind and not failed:
                continue
            ctx = RewriteContext(
                household_id=row["household_id"],
                area=row["area"],
                timestamp=row["timestamp"],
                failed=True if behind else None,
            )
            rewriter.rewrite_one(row["said"], ctx)

    modes = [
        (m, c)
        for m in ("behind the NLU (failed requests)", "before the NLU (every request)")
        for c in (True, False)
    ]
    dump = args.dump.open("w") if args.dump else None
    measured: list[dict[str, Any]] = []
    for mode, cache in modes:
        rewriter.config = replace(rewriter.config, pattern_cache=10_000 if cache else 0)
        rewriter.stats.retrievals = rewriter.stats.pattern_cache_hits = 0
        rewriter.clear_cache()
        warm_up(mode.startswith("behind"))
        wall: list[float] = []
        cpu: list[float] = []
        rewritten = 0
        for row in rows:
            failed = row["status"] != "success"
            if mode.startswith("behind") and not failed:
                continue
            ctx = RewriteContext(
                household_id=row["household_id"],
                area=row["area"],
                timestamp=row["timestamp"],
                failed=True if mode.startswith("behind") else None,
            )
            c0, w0 = time.thread_time(), time.perf_counter()
            decision = rewriter.rewrite_one(row["said"], ctx)
            w1, c1 = time.perf_counter(), time.thread_time()
            wall.append((w1 - w0) * 1e3)
            cpu.append((c1 - c0) * 1e3)
            rewritten += decision.rewritten
            if dump is not None and not cache:
                record = {
                    "mode": mode.split(" (")[0],
                    "household": row["household_id"],
                    "said": row["said"],
                    "text": decision.text,
                    "layer": decision.layer,
                    "score": decision.score,
                    "reasons": decision.reasons,
                }
                dump.write(json.dumps(record) + "\n")
        w, c = np.array(wall), np.array(cpu)
        hits = rewriter.stats.pattern_cache_hits / max(rewriter.stats.retrievals, 1)
        label = f"pattern cache on, {hits:.0%} hits" if cache else "pattern cache off"
        print(
            f"{mode}, {label}: {len(w):,} decisions, {rewritten:,} rewritten; "
            f"wall p50 {np.percentile(w, 50):.3f} ms, "
            f"p90 {np.percentile(w, 90):.3f}, p99 {np.percentile(w, 99):.3f}, max {w.max():.1f}; "
            f"CPU p50 {np.percentile(c, 50):.3f} ms, p99 {np.percentile(c, 99):.3f}"
        )
        measured.append(
            {
                "mode": mode,
                "pattern_cache": cache,
                "pattern_cache_hits": round(hits, 4) if cache else None,
                "decisions": len(w),
                "rewritten": rewritten,
                "wall_ms": {
                    "p50": round(float(np.percentile(w, 50)), 3),
                    "p90": round(float(np.percentile(w, 90)), 3),
                    "p99": round(float(np.percentile(w, 99)), 3),
                    "max": round(float(w.max()), 3),
                },
                "cpu_ms": {
                    "p50": round(float(np.percentile(c, 50)), 3),
                    "p99": round(float(np.percentile(c, 99)), 3),
                },
            }
        )
    if dump is not None:
        dump.close()
    peak_mb = rss_mb()
    print(
        f"peak resident memory: {peak_mb:,.0f} MB; errors {rewriter.stats.errors}, "
        f"over budget {rewriter.stats.over_budget}"
    )
    figures = {
        "rewriter": str(args.rewriter),
        "version": rewriter.version,
        "store": str(args.store),
        "entries": args.entries,
        "index": {
            "patterns": len(knowledge),
            "largest_partitions": [
                {"patterns": n, "slots": slots, "kind": kind} for n, slots, kind in parts[:4]
            ],
            "ef_search": args.ef_search,
        },
        "requests": len(rows),
        "gc_freeze": args.gc_freeze,
        "modes": measured,
        "resident_mb": {"loaded": round(loaded_mb), "peak": round(peak_mb)},
        "errors": rewriter.stats.errors,
        "over_budget": rewriter.stats.over_budget,
    }
    write_results("rewrite_latency", figures, seconds=time.perf_counter() - started)


if __name__ == "__main__":
    main()
