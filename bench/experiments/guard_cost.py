"""What do the guards cost in reach? The working candidates the home-language searches found and
a guard refused.

    python bench/experiments/guard_cost.py --start 1000 --limit 300

Reach (bench/neural_rewriter.py) counts the failed in-scope turns with a working candidate among
those the searches found after the guards (no opposite action, no other kind of thing, no other
action, not only a carrier phrase in common, no time dropped, no sensitive action chosen). This
runs the home-language source of the starter's rewriter (static embeddings) over control-replay
turns *past* the ones the benchmark judges (``--start``: a development sample of its own), records
every sentence a guard refused, and for turns left without a working candidate judges the
refused ones with simulation truth (evaluation only): how many turns a guard stood between and a
working sentence, by guard. A guard that only refuses what the request's words contradict (the
user said "on", truth wanted "off": the recogniser flipped it) is right to, whatever truth says.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import selflearn.rewrite.home_candidates as home_candidates  # noqa: E402
from neural_budget import Replay  # noqa: E402
from neural_rewriter import CACHE, Judge  # noqa: E402
from selflearn.assistant.pipeline import Assistant, AssistantConfig  # noqa: E402
from selflearn.core.embed import RelatedWords  # noqa: E402
from selflearn.core.guards import rejection  # noqa: E402
from selflearn.rewrite import Rewriter, RewriterConfig  # noqa: E402
from selflearn.rewrite.home_language import HomeLanguage  # noqa: E402
from selflearn.rewrite.resolves import HomeCheck  # noqa: E402

refused: dict[str, str] = {}


def recording(
    source: str, target: str, related: object = None, on_off_means: str | None = None
) -> str | None:
    """The guards as the source calls them, noting each sentence refused (before the reading of
    a lock's or cover's on/off, which the source asks for separately)."""
    why = rejection(source, target, related, on_off_means)  # type: ignore[arg-type]
    if why is not None and on_off_means is None:
        refused.setdefault(target, why)
    return why


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rewriter", type=Path, default=CACHE / "starter")
    parser.add_argument("--start", type=int, default=1000, help="judgeable turns skipped first")
    parser.add_argument("--limit", type=int, default=300)
    args = parser.parse_args()
    rewriter = Rewriter.load(args.rewriter, RewriterConfig(personal=False))
    assert rewriter.embedder is not None
    assistant = Assistant(AssistantConfig(asr="exact", nlu="strict"))
    setattr(home_candidates, "rejection", recording)  # noqa: B010 (the source reads it at call time)
    source = home_candidates.HomeCandidates(
        HomeLanguage().fit(), rewriter.embedder, HomeCheck(assistant.nlu), RelatedWords(rewriter.embedder)
    )
    for speech in ("noisy", "exact"):
        counts: Counter[str] = Counter()
        for i, failed in enumerate(Replay(CACHE / f"control-mining-held-out-20x7-{speech}").judgeable()):
            if i < args.start:
                continue
            prep = rewriter.prepare(failed.turn["text"], failed.context())
            if prep is None:
                continue
            counts["turns"] += 1
            refused.clear()
            found = source.candidates(prep.norm, prep.d.pattern, prep.d.values, failed.home, failed.area_id)
            assert failed.expected is not None
            right = Judge(assistant, failed.home, failed.area_id, failed.ts, failed.expected)
            if any(right(c.text) for c in found):
                counts["a working candidate"] += 1
            else:
                guards = {why for text, why in refused.items() if right(text)}
                counts["a guard refused a working one"] += bool(guards)
                counts.update(f"  {why}" for why in guards)
            if counts["turns"] >= args.limit:
                break
        n = max(counts["turns"], 1)
        print(f"\n## {speech}: {counts['turns']} failed in-scope turns from #{args.start}")
        for key in ("a working candidate", "a guard refused a working one"):
            print(f"  {key}: {counts[key]} ({counts[key] / n:.1%})")
        for key, value in sorted(counts.items(), key=lambda kv: -kv[1]):
            if key.startswith("  "):
                print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
