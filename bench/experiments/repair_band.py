"""Is a request with only its damaged name repaired safe enough to act on unasked?

    python bench/experiments/repair_band.py

The neural rewriter's target asks for an acting band (no question) that keeps >= 20 rescues per
wrong action while giving >= 3 points of defect reduction; no score band of any ranker does.
A repair is a different kind of guess: :func:`~selflearn.rewrite.spotting.repaired` says the
request again with a span the recogniser damaged replaced by the home's name it sounds or is
spelt like ("turn on the living room sealing" -> "... ceiling"); the request's own words say
what to do, only the name is changed. This acts on the repair of every failed turn of the
neural benchmark's control replays (``bench/neural_rewriter.py --build-replays``: 20 new homes x
7 days, noisy and exact speech, one transcript, no rewriter) whenever it runs in the home, and
judges it from simulation truth (evaluation only): a rescue when it does what the user wanted, a
wrong action when it does anything else (out of scope: anything).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from neural_budget import Replay, effect_of  # noqa: E402
from neural_rewriter import CACHE  # noqa: E402
from selflearn.assistant.pipeline import Assistant, AssistantConfig  # noqa: E402
from selflearn.rewrite.spotting import repaired  # noqa: E402


def main() -> None:
    assistant = Assistant(AssistantConfig(asr="exact", nlu="strict"))
    for speech in ("noisy", "exact"):
        folder = CACHE / f"control-mining-held-out-20x7-{speech}"
        if not (folder / "done").exists():
            sys.exit(f"{folder}: run `python bench/neural_rewriter.py --build-replays` first")
        counts: dict[str, int] = {}
        seen: Counter[str] = Counter()
        wrong: list[tuple[str, str]] = []
        for failed in Replay(folder).failed(counts):
            text = failed.turn["text"]
            fixed = repaired(text, failed.home)
            if fixed is None or fixed == text:
                continue
            seen["repaired"] += 1
            effect = effect_of(assistant, fixed, failed.home, failed.ts, failed.area_id)
            if effect is None:
                continue
            if failed.truth["in_scope"] and effect == failed.expected:
                seen["rescues"] += 1
            else:
                seen["wrong"] += 1
                wrong.append((text, fixed))
        reduction = seen["rescues"] / max(counts["defects"], 1)
        print(
            f"{speech}: {counts['failed']:,} failed turns, {seen['repaired']:,} repaired, "
            f"{seen['rescues']} rescues : {seen['wrong']} wrong actions, "
            f"{100 * reduction:.2f} % of {counts['defects']:,} defects"
        )
        for text, fixed in wrong[:5]:
            print(f"    wrong: {text!r} -> {fixed!r}")


if __name__ == "__main__":
    main()
