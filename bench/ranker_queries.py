"""The training requests a rewriter's ranker learns from, replayed from a store and kept on disk,
and the single-encoder ranker trained on them (:mod:`selflearn.rewrite.cross_encoder_fit`), so
it learns from the same logs as the LightGBM ranker without a 40-minute replay each time.

    python bench/ranker_queries.py --store bench/.cache/neural/mn.duckdb --households 40 \\
        --out bench/.cache/neural/queries-40.pkl --single-encoder bench/.cache/neural/single

The single encoder is then judged beside the LightGBM ranker by bench/neural_rewriter.py
(``--budget lightgbm=REWRITER,single_encoder=REWRITER:single=bench/.cache/neural/single``).

As ``selflearn train rewriter --home-language`` replays them (:func:`selflearn.rewrite.fit.
replay_queries`): each fold of households against global knowledge built without it, half with a
personal layer. ``--households`` replays only the first N households (by a hash of their id);
the knowledge is still built from every other household of the store. The labels are what the
logs say (a reformulation that worked), never simulation truth.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
from pathlib import Path

from selflearn.core.embed import StaticEmbedder
from selflearn.core.store import Store
from selflearn.rewrite.cross_encoder_fit import SingleEncoderConfig, fit_single_encoder, training_pairs
from selflearn.rewrite.fit import FitConfig, Query, intent_codes, replay_queries
from selflearn.rewrite.knowledge import Knowledge
from selflearn.rewrite.logs import read_homes, read_log


def replay(store: Path, households: int, seed: int = 0) -> list[Query]:
    config = FitConfig(home_language=True, seed=seed)
    with Store(store, read_only=True) as st:
        turns = read_log(st, config.knowledge.defect_threshold)
        homes = read_homes(st)
    embedder = StaticEmbedder.load()
    every = sorted({t.household_id for t in turns})
    chosen = sorted(every, key=lambda h: hashlib.blake2b(h.encode()).digest())[: households or len(every)]
    intents = intent_codes(Knowledge(config.knowledge).fit(turns, homes, embedder))

    def say(stage: str, done: int, total: int) -> None:
        print(f"[queries] {stage}: {done:,} of {total:,} turns", file=sys.stderr)

    return replay_queries(turns, homes, embedder, intents, config, say, only=set(chosen))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--households", type=int, default=40, help="households replayed (0: all)")
    ap.add_argument("--out", type=Path, required=True, help="the requests (replayed once, then read)")
    ap.add_argument(
        "--single-encoder", type=Path, default=None, help="train the single encoder into this folder"
    )
    ap.add_argument("--layers", type=int, default=SingleEncoderConfig.layers, help="MiniLM layers kept")
    ap.add_argument("--epochs", type=int, default=SingleEncoderConfig.epochs)
    ap.add_argument("--max-pairs", type=int, default=SingleEncoderConfig.max_pairs)
    args = ap.parse_args()
    if args.out.exists():
        with args.out.open("rb") as f:
            queries = pickle.load(f)
    else:
        queries = replay(args.store, args.households)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("wb") as f:
            pickle.dump(queries, f)
    fixed = sum(1 for q in queries if q.defect and q.fix_intent is not None)
    print(f"{len(queries):,} requests ({fixed:,} fixed by a reformulation) in {args.out}")
    if args.single_encoder is not None:
        config = SingleEncoderConfig(layers=args.layers, epochs=args.epochs, max_pairs=args.max_pairs)
        pairs = training_pairs(queries, config)
        print(f"{len(pairs):,} pairs, {sum(p.label for p in pairs):,} right")
        provenance = {
            "store": str(args.store),
            "queries": str(args.out),
            "households": len({q.household for q in queries}),
            "command": "python " + " ".join(sys.argv),
        }
        fit_single_encoder(pairs, args.single_encoder, config, provenance=provenance)


if __name__ == "__main__":
    main()
