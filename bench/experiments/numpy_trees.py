"""Does the packaged starter decide the same without LightGBM, and what does that cost?

    python bench/experiments/numpy_trees.py --limit 1500

A serving install (``pip install selflearn``) has no LightGBM: the ranker's text models are
evaluated in numpy (:class:`selflearn.rewrite.trees.Trees`). This loads the packaged starter twice
-- its ranker through LightGBM's single-row C path, and through :class:`Trees` -- and runs the
same SLURP devel requests through both as failed requests behind an assistant (seven households
in turn), comparing every decision (the text, rewritten or not, asked or not, the score) and
the candidate lists, and timing each (one thread, alternating, the median of three passes).
Needs LightGBM (the ``train`` extra) for the first arm.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import selflearn.rewrite.ranker as ranker_module
from selflearn.core.hooks import RewriteContext
from selflearn.rewrite.rewriter import Rewriter
from selflearn.rewrite.trees import Trees, load_booster
from selflearn.starter import packaged_starter

ROOT = Path(__file__).resolve().parents[2]


def load(numpy_trees: bool) -> Rewriter:
    setattr(ranker_module, "load_booster", Trees.load if numpy_trees else load_booster)  # noqa: B010
    try:
        folder = packaged_starter()
        assert folder is not None, "no packaged starter in this tree"
        return Rewriter.load(folder)
    finally:
        setattr(ranker_module, "load_booster", load_booster)  # noqa: B010


def decide(rewriter: Rewriter, texts: list[str]) -> tuple[list[tuple[Any, ...]], float]:
    started = time.perf_counter()
    out = []
    for i, text in enumerate(texts):
        d = rewriter.rewrite_one(text, RewriteContext(household_id=f"h{i % 7}", user_id="u", failed=True))
        out.append((d.text, d.rewritten, d.confirm, round(d.score, 9), tuple(c for c, _ in d.candidates)))
    return out, (time.perf_counter() - started) / len(texts) * 1e3


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--limit", type=int, default=1500, help="SLURP devel requests to run")
    slurp = ROOT.parent / "shared" / "data" / "slurp" / "devel.jsonl"
    parser.add_argument("--data", type=Path, default=slurp, help="SLURP's devel.jsonl")
    args = parser.parse_args()
    with args.data.open(encoding="utf-8") as f:
        texts = [json.loads(line)["sentence"] for _, line in zip(range(args.limit), f, strict=False)]
    arms = {"lightgbm": load(False), "numpy": load(True)}
    assert isinstance(arms["numpy"].ranker_.members_[0].meaning_, Trees)  # type: ignore[union-attr]
    decisions: dict[str, list[tuple[Any, ...]]] = {}
    times: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(3):
        for name, rewriter in arms.items():
            decisions[name], ms = decide(rewriter, texts)
            times[name].append(ms)
    a, b = decisions["lightgbm"], decisions["numpy"]
    print(f"{len(texts)} requests")
    print(f"same decision (text, rewritten, asked): {sum(x[:3] == y[:3] for x, y in zip(a, b, strict=True))}")
    print(f"same candidates in the same order: {sum(x[4] == y[4] for x, y in zip(a, b, strict=True))}")
    print(f"largest score difference: {max(abs(x[3] - y[3]) for x, y in zip(a, b, strict=True)):.2g}")
    print(f"rewritten: lightgbm {sum(x[1] for x in a)}, numpy {sum(y[1] for y in b)}")
    for name, passes in times.items():
        print(f"{name}: {statistics.median(passes):.2f} ms a request (median of 3 passes)")


if __name__ == "__main__":
    main()
