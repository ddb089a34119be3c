"""Would candidates built from what the request says -- its likely intents, the home's names it
says or nearly says, its numbers -- reach more than nearest-neighbour searches?

    python bench/experiments/structured_candidates.py --limit 1000

bench/experiments/language_ceiling.py found that the home's language holds a working sentence
for 86 % / 90 % of the failed noisy / exact development turns, where the home-language searches
(nearest patterns, nearest sentences by meaning, sound and spelling, the repaired request) find
one for 55 % / 78 %. The oracle found its sentence by the wanted intent and the wanted targets'
names. This builds candidates that way without truth: the *intents* are those of the request's
nearest home sentences and patterns (votes weighted by similarity, the sentence encoder of the
rewriter), the *names* are the home's names the request says (whole words) or nearly says
(:func:`~selflearn.rewrite.spotting.spot_names`, by sound and spelling), and a candidate is any
home sentence of a voted intent whose names are all among them, filled with the request's
numbers, passing the rewriter's guards and the home check, best voted intent first, then the
most names, then similarity. Reach is judged as bench/neural_rewriter.py judges it: the
structured source alone, and merged into the home-language arm's list (its first 4, then the two
in turns).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from neural_budget import Replay  # noqa: E402
from neural_rewriter import CACHE, Judge  # noqa: E402
from selflearn.assistant.pipeline import Assistant, AssistantConfig  # noqa: E402
from selflearn.core.guards import rejection  # noqa: E402
from selflearn.core.home import Home, normalize_name  # noqa: E402
from selflearn.rewrite import Rewriter, RewriterConfig  # noqa: E402
from selflearn.rewrite.home_candidates import HomeCandidates, interleaved  # noqa: E402
from selflearn.rewrite.spotting import home_names, spot_names  # noqa: E402

VOTERS = 40
"""Nearest home sentences whose intents vote."""
INTENTS = 3
"""Voted intents kept."""


def said_names(norm: str, home: Home, area_id: str | None) -> set[str]:
    """The home's names the request says as whole words, or nearly (spotted), and the name of
    the area it was said in (what "the lights" means there)."""
    padded = f" {norm} "
    found = {name for name in home_names(home) if f" {name} " in padded}
    area = home.area_by_id.get(area_id) if area_id else None
    here = {normalize_name(area.name)} if area is not None else set()
    return found | here | {s.name for s in spot_names(norm, home)}


def structured(
    source: HomeCandidates, norm: str, numbers: list[str], home: Home, area_id: str | None, k: int
) -> list[str]:
    """Candidates built from the request's voted intents, names and numbers (see the docstring)."""
    index = source.home_index(home)
    if not index.sentences:
        return []
    sims = index.vectors @ source.encoder.encode_one(norm)
    votes: dict[str, float] = defaultdict(float)
    for i in np.argsort(-sims)[:VOTERS]:
        votes[index.sentences[int(i)].meaning.split("|", 1)[0]] += max(float(sims[i]), 0.0)
    intents = sorted(votes, key=lambda intent: -votes[intent])[:INTENTS]
    names = said_names(norm, home, area_id)
    if not names:
        return []
    ranked = []
    for i, sentence in enumerate(index.sentences):
        intent = sentence.meaning.split("|", 1)[0]
        if intent not in intents or not sentence.names or not set(sentence.names) <= names:
            continue
        ranked.append((intents.index(intent), -len(sentence.names), -float(sims[i]), i))
    out: list[str] = []
    seen_actions: set[str] = set()
    for *_, i in sorted(ranked):
        text = index.sentences[i].with_numbers(numbers)
        if text is None or text == norm or text in out or rejection(norm, text, source.related) is not None:
            continue
        reading = index.readings.get(text) or source.check.read(text, home, area_id)
        if reading is None or reading.action in seen_actions:
            continue
        seen_actions.add(reading.action)
        out.append(text)
        if len(out) >= k:
            break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rewriter", type=Path, default=CACHE / "hl-rewriter")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--k", type=int, default=8)
    args = parser.parse_args()
    rewriter = Rewriter.load(args.rewriter, RewriterConfig(personal=False))
    source = rewriter.retrieval.home
    assert source is not None, "a rewriter trained with --home-language"
    source.wait = True
    assistant = Assistant(AssistantConfig(asr="exact", nlu="strict"))
    for speech in ("noisy", "exact"):
        folder = CACHE / f"control-mining-held-out-20x7-{speech}"
        counts: Counter[str] = Counter()
        ms: list[float] = []
        started = time.perf_counter()
        by_intent: dict[str, Counter[str]] = defaultdict(Counter)
        for failed in Replay(folder).judgeable():
            home, area_id, expected = failed.home, failed.area_id, failed.expected
            assert expected is not None
            counts["judgeable"] += 1
            prep = rewriter.prepare(failed.turn["text"], failed.context())
            if prep is None:
                continue
            right = Judge(assistant, home, area_id, failed.ts, expected)
            numbers = [v for kind, v in prep.d.values if kind == "number"]
            source.home_index(home)
            t0 = time.perf_counter()
            mine = structured(source, prep.norm, numbers, home, area_id, 20)
            ms.append((time.perf_counter() - t0) * 1000)
            found = source.candidates(prep.norm, prep.d.pattern, prep.d.values, home, area_id)
            theirs = [c.text for c in interleaved(found)]
            turns_of = (x for pair in zip(mine, theirs[4:], strict=False) for x in pair)
            merged = list(dict.fromkeys([*theirs[:4], *turns_of, *mine, *theirs[4:]]))
            hits = {
                name: [right(x) for x in texts[:20]]
                for name, texts in (("structured", mine), ("home", theirs), ("merged", merged))
            }
            for name, h in hits.items():
                counts[name] += any(h[: args.k])
                counts[f"{name}@20"] += any(h)
            counts["home@all"] += any(right(x) for x in theirs)
            counts["merged@all"] += any(right(x) for x in [*theirs, *mine])
            counts["structured:candidates"] += len(mine)
            by_intent[expected.intent]["turns"] += 1
            by_intent[expected.intent]["structured"] += any(hits["structured"][: args.k])
            by_intent[expected.intent]["home"] += any(hits["home"][: args.k])
            if args.limit and counts["judgeable"] >= args.limit:
                break
        n = max(counts["judgeable"], 1)
        print(
            f"\n## {speech}: {counts['judgeable']} failed in-scope turns, "
            f"{time.perf_counter() - started:.0f} s"
        )
        for name in ("structured", "home", "merged"):
            extra = f", all {counts[name + '@all'] / n:.1%}" if name + "@all" in counts else ""
            print(
                f"  {name}: top {args.k} {counts[name] / n:.1%}, top 20 {counts[name + '@20'] / n:.1%}{extra}"
            )
        p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
        per_turn = counts["structured:candidates"] / n
        print(f"  structured: {per_turn:.1f} candidates per turn, ms p50 {p50:.1f} p99 {p99:.1f}")
        for intent, c in sorted(by_intent.items(), key=lambda kv: -kv[1]["turns"])[:8]:
            print(f"    {intent}: {c['turns']} turns, structured {c['structured']}, home {c['home']}")


if __name__ == "__main__":
    main()
