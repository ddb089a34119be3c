"""Loading, memory and lookups of the rewrite table held in numpy (``selflearn.rewrite.table``:
DuckDB reads the Parquet file, no pyarrow) against the Arrow table it replaced.

    python bench/experiments/table_numpy.py [--rules 1000000] [--lookups 20000] [--ref 12e4f80]

1. Builds a synthetic table of ``--rules`` rules once (cached in ``bench/.cache/table-numpy/``),
   written as the Arrow version wrote it (``pq.write_table`` of ``TABLE_SCHEMA``): targets drawn
   from ``rules / 20`` random sentences of a home-command vocabulary (placeholders, polarity and
   action words, ``é``), each source its target with a filler word inserted (a word substituted in
   5% of rows, a second filler in half), so sources repeat now and then; counts, probabilities,
   ``sensitive`` and the status (90% active) drawn at random.
2. Loads it in a fresh process with each implementation -- the Arrow one is ``--ref``'s
   ``src/selflearn/rewrite/table.py`` (``git show``), the numpy one the working tree's -- and
   reports the load time (``RewriteTable.load``: reading, compacting, the source index and the
   guards' pass), the resident memory (VmRSS) after loading and its peak, and the mean time of
   ``--lookups`` lookups (half a rule's source filled with a home's names, half a target: mostly
   misses), after as many to warm up.
3. Checks that both give the same ``unguarded()`` rules, ``len()`` and lookups (a digest of each).

Needs pyarrow (the Arrow version, and the writer of the synthetic file).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "bench" / ".cache" / "table-numpy"
WORDS = " ".join(
    [
        "turn switch on off the lights light fan lock unlock door open close play pause music set timer",
        "alarm arm disarm up down volume {area} {name} {number} {floor} in please what's kill cut mute",
        "unmute add remove list shopping heat heating é café uh um a and kitchen bedroom blinds cover",
        "garage tv radio start stop dim brighten percent to of at my for",
    ]
).split(" ")
FILLERS = ["uh", "um", "the", "a", "and", "please", "like", "so"]


def build(n: int, folder: Path, seed: int = 1) -> None:
    """Write the synthetic table of ``n`` rules into ``folder`` as the Arrow version did."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from selflearn.core.artefacts import write_description
    from selflearn.rewrite.table import FORMAT, arrow_schema, rule_id

    rng = np.random.default_rng(seed)
    words = np.array(WORDS, dtype=object)

    def sentences(k: int) -> list[str]:
        lengths = rng.integers(3, 10, k)
        picks = rng.integers(0, len(WORDS), (k, 9))
        return [" ".join(words[row[:length]]) for row, length in zip(picks, lengths, strict=True)]

    pool = sentences(max(1, n // 20))
    targets = [pool[i] for i in rng.integers(0, len(pool), n)]
    at, kind = rng.integers(0, 9, n), rng.random(n)
    pick, filler = rng.integers(0, len(WORDS), n), rng.integers(0, len(FILLERS), n)

    def variant(i: int) -> str:
        said = targets[i].split(" ")
        where = int(at[i]) % (len(said) + 1)
        if kind[i] < 0.05:
            said[where % len(said)] = WORDS[pick[i]]
        else:
            said.insert(where, FILLERS[filler[i]])
        if kind[i] > 0.5:
            said.insert(int(pick[i]) % (len(said) + 1), FILLERS[(filler[i] + 3) % len(FILLERS)])
        return " ".join(said)

    sources = [variant(i) for i in range(n)]

    def example(s: str) -> str:
        for slot, value in (("{area}", "kitchen"), ("{name}", "lamp"), ("{number}", "20"), ("{floor}", "up")):
            s = s.replace(slot, value)
        return s

    columns = {
        "rule_id": [rule_id(s, t) for s, t in zip(sources, targets, strict=True)],
        "source": sources,
        "target": targets,
        "source_example": [example(s) for s in sources],
        "target_example": [example(t) for t in targets],
        "p_source": rng.choice([0.0, 0.05, 0.1, 0.2, 0.5], n),
        "p_target": np.round(rng.uniform(0.5, 1.0, n), 3),
        "absorb_source": rng.choice([0.0, 0.1], n),
        "absorb_target": np.round(rng.uniform(0.5, 1, n), 2),
        "support": rng.integers(1, 500, n),
        "users": rng.choice([1, 5, 10, 49, 50, 60, 200], n),
        "households": rng.integers(1, 100, n),
        "source_turns": rng.integers(0, 1000, n),
        "target_turns": rng.integers(0, 1000, n),
        "source_users": rng.integers(0, 300, n),
        "sensitive": rng.random(n) < 0.1,
        "deployed_turns": np.zeros(n, np.int64),
        "deployed_success": np.zeros(n, np.int64),
        "p_worse_after": np.zeros(n),
        "status": np.where(rng.random(n) < 0.9, "active", "demoted").astype(object),
    }
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=arrow_schema()), folder / "rewrites.parquet")
    write_description(folder, FORMAT, {"version": "rw-synthetic", "rules": n, "config": {}})


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(which: str, folder: Path, lookups: int, ref: str) -> dict[str, Any]:
    """Load ``folder`` with implementation ``which`` (``arrow``: ``ref``'s; ``numpy``: this
    tree's) in this process and time lookups."""
    if which == "arrow":
        source = subprocess.run(
            ["git", "show", f"{ref}:src/selflearn/rewrite/table.py"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        ).stdout
        path = CACHE / f"table_{ref}.py"
        path.write_bytes(source)
        spec = importlib.util.spec_from_file_location("table_arrow", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["table_arrow"] = module  # (its dataclass looks itself up)
        spec.loader.exec_module(module)
    else:
        import selflearn.rewrite.table as module
    from selflearn.core.home import Area, Entity, Home

    before = _rss_mb()
    started = time.perf_counter()
    table = module.RewriteTable.load(folder)
    load_s = time.perf_counter() - started
    loaded = _rss_mb()
    home = Home(
        "h1", areas=(Area("kitchen", "Kitchen"),), entities=(Entity("light.lamp", "Lamp", "kitchen"),)
    )
    rng = np.random.default_rng(7)
    rows = rng.integers(0, table_rows(table, which), 2 * lookups)
    texts = []
    for k, i in enumerate(rows.tolist()):
        row = table._row(i)
        pattern = row["source"] if k % 2 == 0 else row["target"]
        texts.append(pattern.replace("{area}", "kitchen").replace("{name}", "lamp").replace("{number}", "20"))
    for text in texts[:lookups]:
        table.lookup(text, home)
    digest = hashlib.blake2b(digest_size=8)
    started = time.perf_counter()
    hits = [table.lookup(text, home) for text in texts[lookups:]]
    lookup_us = (time.perf_counter() - started) / lookups * 1e6
    for hit in hits:
        digest.update(json.dumps(hit, sort_keys=True, default=str).encode())
    unguarded = sorted(r["rule_id"] for r in table.unguarded())
    return {
        "implementation": which,
        "rules": table_rows(table, which),
        "load_s": round(load_s, 2),
        "rss_mb_before": round(before),
        "rss_mb_loaded": round(loaded),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "lookup_us": round(lookup_us, 1),
        "hits": sum(h is not None for h in hits),
        "lookups_digest": digest.hexdigest(),
        "unguarded": len(unguarded),
        "unguarded_digest": hashlib.blake2b("\n".join(unguarded).encode(), digest_size=8).hexdigest(),
        "active_sources": len(table),
    }


def table_rows(table: Any, which: str) -> int:
    return int(table.num_rows if which == "numpy" else table.table.num_rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rules", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=20_000)
    parser.add_argument("--ref", default="12e4f80", help="the commit whose table.py is the Arrow version")
    parser.add_argument("--measure", choices=["arrow", "numpy"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = CACHE / f"rules-{args.rules}"
    if args.measure:
        print(json.dumps(measure(args.measure, folder, args.lookups, args.ref)))
        return
    if not (folder / "model.json").exists():
        started = time.perf_counter()
        build(args.rules, folder)
        print(f"built {folder} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    results = []
    for which in ("arrow", "numpy"):
        out = subprocess.run(
            [sys.executable, __file__, "--rules", str(args.rules), "--lookups", str(args.lookups),
             "--ref", args.ref, "--measure", which],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]))
    same = all(
        results[0][k] == results[1][k] for k in ("lookups_digest", "unguarded_digest", "active_sources")
    )
    print(f"same unguarded rules, active sources and lookups: {same}")


if __name__ == "__main__":
    main()
