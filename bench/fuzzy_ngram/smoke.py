"""Smoke check for the fuzzy n-gram baseline (run with the main project's python).

python bench/fuzzy_ngram/smoke.py [--repeat N] [--context-area kitchen]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.fuzzy_ngram.client import available, fuzzy_match

HOME = {
    "areas": [
        {"id": "kitchen", "name": "Kitchen", "aliases": [], "floor": None},
        {"id": "living_room", "name": "Living Room", "aliases": ["Lounge"], "floor": None},
        {"id": "bedroom", "name": "Bedroom", "aliases": [], "floor": None},
    ],
    "floors": [],
    "entities": [
        {
            "id": "light.kitchen_light",
            "name": "Kitchen Light",
            "aliases": [],
            "domain": "light",
            "area": "kitchen",
            "device_class": None,
        },
        {
            "id": "fan.ceiling_fan",
            "name": "Ceiling Fan",
            "aliases": [],
            "domain": "fan",
            "area": "bedroom",
            "device_class": None,
        },
        {
            "id": "lock.front_door",
            "name": "Front Door",
            "aliases": [],
            "domain": "lock",
            "area": None,
            "device_class": None,
        },
    ],
}

TEXTS = [
    "kill the lights in the kitchen",
    "lights off kitchen please",
    "turn off the bedroom fan",
    "make the kitchen bright",
    "what's the weather like",
    "lock front door now",
    "tell me a joke",
]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30, help="copies of the 7 texts for timing")
    parser.add_argument("--context-area", default=None)
    args = parser.parse_args()

    if not available():
        print("fuzzy venv missing: run bash bench/fuzzy_ngram/setup.sh", file=sys.stderr)
        return 1

    reqs: list[dict[str, Any]] = [
        {"id": f"s{i}", "text": t, "home": HOME, "context_area": args.context_area}
        for i, t in enumerate(TEXTS)
    ]
    bad: list[dict[str, Any]] = [
        {"id": "bad1", "text": None, "home": HOME, "context_area": None},
        {"id": "bad2", "text": "turn on the lights", "home": {"areas": "oops"}, "context_area": None},
    ]
    for row in fuzzy_match(reqs + bad):
        keep = {
            k: row.get(k)
            for k in ("id", "matched", "intent", "slots", "ids", "entity_ids", "score", "response", "error")
        }
        text = next((r["text"] for r in reqs + bad if r["id"] == row["id"]), None)
        print(f"{text!r:40} -> {json.dumps(keep)}")

    # Throughput: one process, model load included once; report both views.
    timing = [dict(r, id=f"{r['id']}-{k}") for k in range(args.repeat) for r in reqs]
    t0 = time.monotonic()
    rows = fuzzy_match(timing)
    wall = time.monotonic() - t0
    per_req = sum(r["elapsed_ms"] for r in rows) / 1000.0
    print(
        f"\n{len(rows)} requests: wall {wall:.2f}s incl. startup+model load "
        f"({len(rows) / wall:.1f} req/s); matching only {per_req:.2f}s "
        f"({len(rows) / per_req:.1f} req/s, first request includes per-home matcher build)"
    )
    t0 = time.monotonic()
    fuzzy_match(reqs[:1])
    print(f"startup + load + 1 request: {time.monotonic() - t0:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
