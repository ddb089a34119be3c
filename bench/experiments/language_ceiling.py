"""Could the home's language reach the target at all? The ceiling of its candidates.

    python bench/experiments/language_ceiling.py --rewriter bench/.cache/neural/hl-rewriter --limit 1000

Reach (bench/neural_rewriter.py) counts the failed in-scope turns with a working candidate among
those the searches found; with every candidate of the home's language it stays near 55 % on noisy
speech and 78 % on exact speech, below the exact-speech target of 80 % in the top 8. Is that the
searches or the language? For the same turns (the control replays bench/neural_rewriter.py
simulates, in the same order, the first ``--limit`` judgeable ones) this looks, with simulation
truth (evaluation only: an oracle no rewriter has), for *any* sentence of the home's language that
does what the user wanted: every sentence of this home (the templates filled with its names,
bounded per interpretation and target as served) and every pattern without names, of the wanted
intent, filled with the wanted numbers (the recogniser's numbers when the counts differ), each run
on the home's initial state. Turns with none are counted by intent: what the language cannot say.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from neural_budget import Replay  # noqa: E402
from neural_rewriter import CACHE, Judge  # noqa: E402
from selflearn.assistant.pipeline import Assistant, AssistantConfig  # noqa: E402
from selflearn.core.delex import PLACEHOLDER  # noqa: E402
from selflearn.core.home import Home, normalize_name  # noqa: E402
from selflearn.rewrite.home_language import HomeLanguage  # noqa: E402
from selflearn.rewrite.home_sentences import home_sentences  # noqa: E402

NUMBER = re.compile(r"\d+")
JUDGED = 1500
"""Sentences run per turn at most (those naming a wanted target or its area first)."""


def wordings(language: HomeLanguage, home: Home, intent: str) -> list[str]:
    """Every sentence of ``home``'s language for ``intent`` (numbers still open)."""
    out = [s.text for s in home_sentences(language, home) if s.meaning.split("|", 1)[0] == intent]
    for row in language.for_home(home):
        p = language.patterns_[row]
        if p.intent == intent and not [k for k in PLACEHOLDER.findall(p.pattern) if k != "number"]:
            out.append(p.pattern)
    return list(dict.fromkeys(out))


def target_names(home: Home, targets: frozenset[str]) -> list[str]:
    """The names of the wanted entities and of their areas, as home sentences say them."""
    out = []
    for entity_id in targets:
        entity = home.entity_by_id.get(entity_id)
        if entity is None:
            continue
        out += [normalize_name(n) for n in entity.spoken_names]
        area = home.area_by_id.get(entity.area_id) if entity.area_id else None
        if area is not None:
            out += [normalize_name(n) for n in (area.name, *area.aliases)]
    return [n for n in out if n]


def filled(text: str, numbers: list[list[str]]) -> list[str]:
    """``text`` with its ``{number}`` placeholders filled from each list that has enough."""
    slots = text.count("{number}")
    if not slots:
        return [text]
    out = []
    for values in numbers:
        for chosen in itertools.permutations(values, slots):
            parts = text.split("{number}")
            out.append("".join(p + v for p, v in zip(parts, (*chosen, ""), strict=True)))
    return list(dict.fromkeys(out))


def ceiling(
    folder: Path, language: HomeLanguage, assistant: Assistant, limit: int
) -> tuple[Counter[str], Counter[str]]:
    counts: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    cache: dict[tuple[str, str], list[str]] = {}
    started = time.perf_counter()
    for failed in Replay(folder).judgeable():
        home, expected = failed.home, failed.expected
        assert expected is not None
        counts["judgeable"] += 1
        key = (home.fingerprint, expected.intent)
        if key not in cache:
            cache[key] = wordings(language, home, expected.intent)
        wanted = [v for _, v in expected.params if NUMBER.fullmatch(v)]
        heard = NUMBER.findall(failed.turn["text"])
        right = Judge(assistant, home, failed.area_id, failed.ts, expected)
        tried = 0
        found = False
        names = target_names(home, expected.targets)
        for text in sorted(cache[key], key=lambda w: not any(n in w for n in names)):
            for option in filled(text, [wanted, heard]):
                tried += 1
                if right(option):
                    found = True
                    break
            if found or tried >= JUDGED:
                break
        counts["reachable"] += found
        if not found:
            missed[expected.intent] += 1
        if limit and counts["judgeable"] >= limit:
            break
    print(
        f"[ceiling] {folder.name}: {dict(counts)} in {time.perf_counter() - started:.0f} s", file=sys.stderr
    )
    return counts, missed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rewriter", type=Path, default=CACHE / "hl-rewriter", help="a rewriter with the home's language"
    )
    parser.add_argument("--limit", type=int, default=1000)
    args = parser.parse_args()
    language = HomeLanguage.load(args.rewriter / "home" / "language")
    assistant = Assistant(AssistantConfig(asr="exact", nlu="strict"))
    for speech in ("noisy", "exact"):
        folder = CACHE / f"control-mining-held-out-20x7-{speech}"
        counts, missed = ceiling(folder, language, assistant, args.limit)
        share = counts["reachable"] / max(counts["judgeable"], 1)
        print(
            f"{speech}: {counts['reachable']} of {counts['judgeable']} ({share:.1%}) have a sentence "
            "in the home's language that works"
        )
        print(f"  without one, by wanted intent: {missed.most_common(12)}")


if __name__ == "__main__":
    main()
