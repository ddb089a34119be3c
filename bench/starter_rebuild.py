"""Does `selflearn starter` rebuild the starter the package ships?

    python bench/starter_rebuild.py                  # 30-60 min on 2 cores
    python bench/starter_rebuild.py --households 12  # a smaller recipe: checks the path, not the figures
                                                     # (its results go to --work, not docs/results)

Builds a starter with the recipe recorded in the packaged one's ``starter.json`` (households,
days, corpora, seeds, speech of each part, k, the ask bar) into ``--work`` from the corpora in
``--data-dir`` (default: ``selflearn data``'s folder, else ``../shared/data``), then compares
what the two say about themselves -- turns simulated, households, active rewrites, the rewrite
table's content version, size -- and what they do: both decide on the same failed requests (the
first ``--requests`` failed turns of the first part's simulation, in a new home: no personal
memory), and the share of identical decisions (rewritten or not, the same text, the same
question) is ``decisions_same``.

And how well they do it: where the control replays of bench/neural_rewriter.py are cached
(``python bench/neural_rewriter.py --build-replays``), both starters' question budgets on them
(bench/neural_budget.py: ranker AUC, the share of right picks, the best asking-only policy within
5 questions per 100 turns), per speech, as ``budget``. A rebuild made with newer code than the
shipped starter differs in its ranker (its training replays candidates through the NLU), so
``decisions_same`` below 1 is expected; ``budget`` says whether it does as well.

Figures go to ``docs/results/starter_rebuild.json``: ``same_recipe``, ``turns`` /
``rewrites`` / ``table_version`` / ``mb`` each as ``{shipped, rebuilt}``, ``decisions_same``,
``budget``, ``build_minutes``. ``--compare-only`` compares a starter rebuilt before (in
``--work``) without building it again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import neural_budget
from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.core.home import Home
from selflearn.core.hooks import RewriteContext
from selflearn.evaluate import write_results
from selflearn.evaluate.replay import read_records, turn_setting
from selflearn.rewrite import Rewriter, RewriterConfig
from selflearn.simulation.corpora.data_dir import find_data_dir
from selflearn.starter import StarterConfig, StarterPart, build_starter, packaged_starter

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache" / "starter-rebuild"
CONTROL = ROOT / "bench" / ".cache" / "neural"
"""Where bench/neural_rewriter.py keeps its control replays."""


def recipe_config(recipe: dict[str, Any], data_dir: str | None, households: int | None) -> StarterConfig:
    """The starter configuration a manifest's recipe records (its data folder replaced)."""
    parts = tuple(StarterPart(**p) for p in recipe["parts"])
    fields = {k: v for k, v in recipe.items() if k not in ("parts", "data_dir", "corpora")}
    config = StarterConfig(**fields, corpora=tuple(recipe["corpora"]), parts=parts, data_dir=data_dir)
    return replace(config, households=households) if households else config


def decisions(shipped: Path, rebuilt: Path, sim: Path, requests: int) -> tuple[float, int]:
    """Share of the same decisions by both starters over the first failed turns of ``sim``."""
    config = RewriterConfig(personal=False, confirm="guesses")
    one, two = Rewriter.load(shipped, config), Rewriter.load(rebuilt, config)
    homes = {h: Home.from_dict(row) for h, row in read_records(sim, "homes").items()}
    turns, truth = read_records(sim, "turns"), read_records(sim, "truth")
    same = n = 0
    for turn_id in sorted(turns):
        turn, t = turns[turn_id], truth.get(turn_id)
        if t is None or t["action"] == "background" or (turn.get("result") or {}).get("status") == "success":
            continue
        home, area_name, _, ts, _ = turn_setting(turn, t, homes)
        ctx = RewriteContext(turn["household_id"], turn["user_id"], home, area_name, ts, failed=True)
        a, b = one.rewrite_one(turn["text"], ctx), two.rewrite_one(turn["text"], ctx)
        same += (a.rewritten, a.text, a.confirm) == (b.rewritten, b.text, b.confirm)
        n += 1
        if n >= requests:
            break
    return same / max(n, 1), n


def same_recipe(one: dict[str, Any], two: dict[str, Any]) -> bool:
    """Whether two recipes differ in nothing but where their corpora were read from."""
    return {k: v for k, v in one.items() if k != "data_dir"} == {
        k: v for k, v in two.items() if k != "data_dir"
    }


def budgets(shipped: Path, rebuilt: Path) -> dict[str, Any]:
    """Both starters' question budgets on the cached development replays (none: not cached)."""
    replays = [(speech, CONTROL / f"control-mining-held-out-20x7-{speech}") for speech in ("noisy", "exact")]
    replays = [(speech, folder) for speech, folder in replays if (folder / "done").exists()]
    assistant = Assistant(AssistantConfig(asr="exact", nlu="strict"))
    out: dict[str, Any] = {}
    for name, folder in (("shipped", shipped), ("rebuilt", rebuilt)):
        _, rewriter, *_ = neural_budget.load_arm(f"{name}={folder}")
        for speech, replay in replays:
            found, counts, _, _ = neural_budget.picks(replay, rewriter, assistant, f"{name} {speech}")
            rows = neural_budget.curve(name, speech, found, counts)
            asking = [b for b in rows if b["act"] > 1 and b["questions_per_100_turns"] <= 5]
            best = max(asking, key=lambda b: b["defect_reduction"])
            inside = [p for p in found if p.in_scope]
            out.setdefault(speech, {})[name] = {
                "auc": neural_budget.auc(found),
                "right_picks": round(sum(p.right for p in inside) / max(len(inside), 1), 4),
                "asking_within_5": best["defect_reduction"],
                "asking_questions_per_100_turns": best["questions_per_100_turns"],
                "asking_bar": best["ask"],
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=None, help="the corpora (default: selflearn data's folder)")
    parser.add_argument("--work", type=Path, default=CACHE, help="where the rebuild simulates and stores")
    parser.add_argument(
        "--households", type=int, default=None, help="override the recipe's (a smaller check)"
    )
    parser.add_argument("--requests", type=int, default=2000, help="failed requests both starters decide on")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: docs/results)")
    parser.add_argument(
        "--compare-only", action="store_true", help="compare the starter rebuilt before in --work"
    )
    args = parser.parse_args()
    shipped = packaged_starter()
    if shipped is None:
        sys.exit("no packaged starter in this install (selflearn/data/starter)")
    manifest = json.loads((shipped / "starter.json").read_text())
    found = find_data_dir(Path(args.data_dir) if args.data_dir else None)
    if found is None:
        sys.exit("no corpora: run `selflearn data fetch` or pass --data-dir")
    data_dir = str(found)
    config = recipe_config(manifest["recipe"], data_dir, args.households)
    out = args.work / "starter"
    started = time.perf_counter()
    if args.compare_only:
        if not (out / "starter.json").exists():
            sys.exit(f"no rebuilt starter in {out}: run without --compare-only first")
    else:
        (args.work / "store.json").unlink(missing_ok=True)  # simulate afresh: a rebuild, not a reuse
        build_starter(config, out, args.work, say=lambda line: print(f"[rebuild] {line}", file=sys.stderr))
    rebuilt = json.loads((out / "starter.json").read_text())
    build_minutes = rebuilt["seconds"]["total_s"] / 60
    share, n = decisions(shipped, out, args.work / f"sim-{config.parts[0].prefix}", args.requests)
    figures = {
        "same_recipe": same_recipe(manifest["recipe"], rebuilt["recipe"]),
        "data_dir": data_dir,
        **{
            key: {"shipped": manifest[key], "rebuilt": rebuilt[key]}
            for key in ("turns", "households", "rewrites", "table_version")
        },
        "mb": {"shipped": round(manifest["bytes"] / 1e6, 2), "rebuilt": round(rebuilt["bytes"] / 1e6, 2)},
        "decisions_same": round(share, 4),
        "decisions": n,
        "budget": budgets(shipped, out),
        "build_minutes": round(build_minutes, 1),
        "build_seconds": rebuilt["seconds"],
        "rebuilt_at": rebuilt["built_at"],
        "shipped_build_minutes": round(manifest["seconds"]["total_s"] / 60, 1),
    }
    print(json.dumps(figures, indent=2))
    folder = args.out or (None if figures["same_recipe"] else args.work / "results")
    write_results(
        "starter_rebuild",
        figures,
        folder=folder,
        command="python " + " ".join(sys.argv),
        seconds=time.perf_counter() - started,
    )


if __name__ == "__main__":
    main()
