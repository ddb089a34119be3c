"""The neural rewriter against the static one: can it reach a working sentence, and at what cost?

    python bench/neural_rewriter.py --rewriter bench/.cache/starter/rewriter \\
        --encoder bench/.cache/neural/encoder

Reads *control* replays of a development population (no rewriter; Home Assistant's strict
matching, the rewriter behind it, one transcript per turn: ``mining-held-out``, 20 new homes x 7
days, through the noisy recogniser and heard exactly; simulated into ``--replay-cache`` on the
first run, or given with ``--replays name=DIR,...``) and, for every turn the assistant
failed on that was in scope, asks each arm for its top ``k`` candidates, then judges each
candidate from simulation truth (evaluation only: nothing here feeds a learner): run through the
reference assistant on the home's initial state, does it do what the user wanted?

Arms (the ``static`` one is today's rewriter; the others search with a sentence encoder):

* ``static``: the rewriter's own candidates (static model2vec embeddings over the global layer's
  patterns and fixes of similar failing patterns), global layer only;
* ``static_home_language``: the static embeddings over the global patterns and the home language;
* ``minilm`` / ``minilm_home_language``: all-MiniLM-L6-v2 as shipped (zero-shot);
* ``trained`` / ``trained_home_language``: the encoder fine-tuned on the logs' rephrase pairs and
  the templates (``selflearn train encoder``).

Every encoder arm fills a candidate with the request's own values, applies the rewriter's guards
(no polarity flip, no other kind of thing, ...) and keeps only candidates this home's matcher
resolves (:class:`~selflearn.rewrite.resolves.HomeCheck`).

**Reach**: the share of judgeable failed in-scope turns with a working candidate among the top
``k``. Figures go to ``docs/results/neural_rewriter.json`` under ``figures.reach``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

import neural_budget
import neural_footprint
from selflearn.assistant.devices import HomeState
from selflearn.assistant.execute import Effect
from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.core.delex import fill
from selflearn.core.embed import RelatedWords
from selflearn.core.home import Home
from selflearn.core.hooks import RewriteContext
from selflearn.evaluate import population, write_results
from selflearn.evaluate.results import results_folder
from selflearn.rewrite import Rewriter, RewriterConfig
from selflearn.rewrite.dense import DenseIndex, Encoder, global_entries
from selflearn.rewrite.encoder import SentenceEncoder
from selflearn.rewrite.features import Query, guard_for
from selflearn.rewrite.home_candidates import HomeCandidates, interleaved
from selflearn.rewrite.home_language import HomeLanguage
from selflearn.rewrite.knowledge import embed_text
from selflearn.rewrite.resolves import HomeCheck
from selflearn.simulation.simulator import simulate

CACHE = Path(__file__).resolve().parent / ".cache" / "neural"

SEARCH = 64
"""Entries searched per request before guards and the home check."""


@dataclass
class Arm:
    """One way of finding candidates."""

    name: str
    index: DenseIndex | None = None
    """None: the rewriter's own retrieval (``static``)."""
    home: HomeCandidates | None = None
    """The home-language source, when the arm has it."""
    ranked: Rewriter | None = None
    """A rewriter trained with the home's language: its candidates in its ranker's order."""


def dense_candidates(
    arm: Arm,
    prep: Any,
    ctx: RewriteContext,
    area_id: str | None,
    check: HomeCheck,
    related: RelatedWords | None,
    k: int,
) -> list[str]:
    """Top ``k`` filled, guarded candidates that resolve in the home."""
    assert arm.index is not None
    query = Query(prep.aliased, prep.d, arm.index.encoder.encode_one(embed_text(prep.d.pattern)), ctx.area)
    query.keep = prep.keep
    out: list[str] = []
    home = ctx.home
    assert home is not None
    for entry, _ in arm.index.search(query.vector, query.slots, SEARCH):
        if entry.pattern == query.pattern:
            continue
        text = fill(entry.pattern, query.d.values)
        if text is None or text == query.text or text in out:
            continue
        if guard_for(query, entry.pattern, related) is not None:
            continue
        if not check.resolves(text, home, area_id):
            continue
        out.append(text)
        if len(out) >= k:
            break
    return out


def ranked_candidates(rewriter: Rewriter, text: str, ctx: RewriteContext) -> tuple[list[str], float]:
    """The rewriter's candidates for ``text``, best first by its ranker's meaning score, and the
    time (ms) to gather and rank them (the home's index built before)."""
    home = ctx.home
    source = rewriter.retrieval.home
    if source is not None and home is not None:
        source.home_index(home)
    t0 = time.perf_counter()
    found = neural_budget.scored(rewriter, text, ctx)
    if found is None:
        return [], (time.perf_counter() - t0) * 1000
    _, cands, x, member = found
    order = np.argsort(-member.meaning(x), kind="stable")
    return [cands[int(i)].text for i in order], (time.perf_counter() - t0) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rewriter", type=Path, default=None, help="a trained rewriter (the starter)")
    parser.add_argument("--build-replays", action="store_true", help="only simulate the control replays")
    parser.add_argument("--encoder", type=Path, default=None, help="a trained encoder folder")
    parser.add_argument("--minilm", type=Path, default=None, help="zero-shot MiniLM as an encoder")
    parser.add_argument("--replays", default="", help="name=folder,... of control replays (default: built)")
    parser.add_argument("--population", default="mining-held-out", help="the development population")
    parser.add_argument("--households", type=int, default=20)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--replay-cache", type=Path, default=CACHE, help="where built replays are kept")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--limit", type=int, default=0, help="failed turns judged per replay")
    parser.add_argument(
        "--start",
        type=int,
        default=0,
        help="judgeable turns skipped first: a development sample past the benchmark's (--start 1000)",
    )
    parser.add_argument("--arms", default="")
    parser.add_argument(
        "--headline",
        default="static_home_language",
        help="the --budget arm whose noisy-speech figures are the headline latency and LightGBM AUC",
    )
    parser.add_argument(
        "--footprint",
        type=Path,
        default=None,
        help="a trained neural rewriter: its size, training time and serve memory (and nothing else)",
    )
    parser.add_argument(
        "--headline-single",
        default="single_encoder",
        help="the --budget arm (with :single=DIR) whose noisy-speech AUC is the single encoder's",
    )
    parser.add_argument(
        "--ranked",
        type=Path,
        default=None,
        help="a rewriter trained with --home-language: arm ranked_home_language, its candidates "
        "in its ranker's order",
    )
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: docs/results)")
    parser.add_argument(
        "--budget",
        default="",
        help="name=REWRITER,... (FOLDER:static: without the home's language): the question-budget "
        "curve, ranker AUC and decision latency of each (bench/neural_budget.py) instead of reach",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    replays = (
        [tuple(spec.split("=", 1)) for spec in args.replays.split(",")]
        if args.replays
        else [(asr, str(control_replay(args, asr))) for asr in ("noisy", "exact")]
    )
    if args.build_replays:
        return
    if args.footprint is not None:
        write_results(
            "neural_rewriter",
            {
                **earlier_figures(args.out),
                **neural_footprint.footprint(args.footprint),
                "footprint_command": "python " + " ".join(sys.argv),
            },
            folder=args.out,
            command="python " + " ".join(sys.argv),
            seconds=time.perf_counter() - started,
        )
        return
    if args.budget:
        assistant = Assistant(AssistantConfig(asr="exact", nlu="strict"))
        figures = neural_budget.run(args.budget, replays, assistant, args.limit)
        earlier = earlier_figures(args.out)
        earlier.pop("budget_command", None)  # one command per arm now (budget_commands)
        names = {row["arm"] for row in figures["budget"]}
        kept = [row for row in earlier.get("budget", []) if row.get("arm") not in names]
        write_results(
            "neural_rewriter",
            {
                **earlier,
                "budget": neural_budget.frontier(kept + figures["budget"]),
                "ranker_auc_by_arm": {**earlier.get("ranker_auc_by_arm", {}), **figures["ranker_auc_by_arm"]},
                "decision_ms": {**earlier.get("decision_ms", {}), **figures["decision_ms"]},
                "picks_right": {**earlier.get("picks_right", {}), **figures["picks_right"]},
                **headline(figures, args.headline, args.headline_single, earlier),
                "budget_commands": {
                    **earlier.get("budget_commands", {}),
                    **{name: "python " + " ".join(sys.argv) for name in names},
                },
            },
            folder=args.out,
            command="python " + " ".join(sys.argv),
            seconds=time.perf_counter() - started,
        )
        return
    if args.rewriter is None:
        parser.error("--rewriter is required (a trained rewriter: the starter)")
    rewriter = Rewriter.load(args.rewriter, RewriterConfig(personal=False))
    if rewriter.embedder is None or rewriter.knowledge_ is None:
        sys.exit(f"{args.rewriter}: no embedder or global layer")
    language = HomeLanguage().fit()
    related = RelatedWords(rewriter.embedder)
    encoders: dict[str, Encoder] = {"static": rewriter.embedder}
    if args.minilm is not None:
        encoders["minilm"] = SentenceEncoder.load(args.minilm)
    if args.encoder is not None:
        encoders["trained"] = SentenceEncoder.load(args.encoder)
    arms = [Arm("static")]
    glob = global_entries(rewriter.knowledge_)
    assistant = Assistant(AssistantConfig(asr="exact", nlu="strict"))
    check = HomeCheck(assistant.nlu)
    for name, encoder in encoders.items():
        t = time.perf_counter()
        index = DenseIndex(encoder).add(glob)
        if name != "static":
            arms.append(Arm(name, index))
        source = HomeCandidates(language, encoder, check, related)
        arms.append(Arm(f"{name}_home_language", index, source))
        print(f"[neural] indexed {name} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    if args.ranked is not None:
        arms.append(
            Arm("ranked_home_language", ranked=Rewriter.load(args.ranked, RewriterConfig(personal=False)))
        )
    if args.arms:
        wanted = set(args.arms.split(","))
        arms = [a for a in arms if a.name in wanted]
    reach: dict[str, dict[str, Any]] = {}
    times: dict[str, list[float]] = defaultdict(list)
    for label, folder in replays:
        counts = judge_replay(
            Path(folder), rewriter, arms, assistant, check, related, args.k, args.limit, times, args.start
        )
        for arm in arms:
            row = reach.setdefault(arm.name, {})
            row[label] = round(counts[arm.name] / max(counts["judgeable"], 1), 4)
            row[f"{label}_at_20"] = round(counts[f"{arm.name}@20"] / max(counts["judgeable"], 1), 4)
            if arm.home is not None:
                row[f"{label}_all"] = round(counts[f"{arm.name}@all"] / max(counts["judgeable"], 1), 4)
                row[f"{label}_candidates"] = round(
                    counts[f"{arm.name}:candidates"] / max(counts["judgeable"], 1), 1
                )
        reach.setdefault("_turns", {})[label] = counts["judgeable"]
        print(f"[neural] {label}: {dict(counts)}", file=sys.stderr)
    for arm in arms:
        print(f"| {arm.name} | " + " | ".join(f"{k}: {v}" for k, v in reach[arm.name].items()) + " |")
    candidate_ms = {
        arm: {"p50": round(quantile(ms, 0.5), 2), "p99": round(quantile(ms, 0.99), 2), "n": len(ms)}
        for arm, ms in times.items()
        if ms
    }
    print(f"[neural] candidate ms: {candidate_ms}", file=sys.stderr)
    earlier = earlier_figures(args.out)
    write_results(
        "neural_rewriter",
        {
            **earlier,
            "reach": reach,  # a reach run replaces the earlier one whole: one sample, every arm
            "reach_command": "python " + " ".join(sys.argv),
            "candidate_ms": candidate_ms,
            "k": args.k,
        },
        folder=args.out,
        command="python " + " ".join(sys.argv),
        seconds=time.perf_counter() - started,
    )


def headline(figures: dict[str, Any], arm: str, single: str, earlier: dict[str, Any]) -> dict[str, Any]:
    """The issue's headline figures from the budget arms' noisy-speech runs: the decision's
    latency and the AUC of the LightGBM ranker (arm ``arm``) and of the single encoder re-reading
    its candidates (arm ``single``); an arm this run did not replay keeps its earlier figures."""
    aucs = {**earlier.get("ranker_auc", {})}
    out: dict[str, Any] = {}
    ms = figures["decision_ms"].get(arm)
    if ms is not None:
        out |= {"latency_ms_p50": ms["noisy_p50"], "latency_ms_p99": ms["noisy_p99"], "headline_arm": arm}
        aucs["lightgbm"] = figures["ranker_auc_by_arm"][arm]["noisy"]
    if single in figures["ranker_auc_by_arm"]:
        aucs["single_encoder"] = figures["ranker_auc_by_arm"][single]["noisy"]
        out["single_encoder_latency_ms"] = {
            k: v for k, v in figures["decision_ms"][single].items() if k.startswith("noisy_p")
        }
    return {**out, "ranker_auc": aucs} if aucs else out


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def control_replay(args: argparse.Namespace, asr: str) -> Path:
    """The control replay of the development population through recogniser ``asr``: simulated
    once into ``--replay-cache`` (Home Assistant's strict matching, no rewriter, no questions)."""
    folder: Path = args.replay_cache / f"control-{args.population}-{args.households}x{args.days:g}-{asr}"
    if (folder / "done").exists():
        return folder
    config = population(args.population).config(workers=2, households=args.households, days=args.days)
    assistant = replace(
        config.assistant, asr=asr, nlu="strict", rewrite_when="on_failure", ask=False, teach=False
    )
    t = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    simulate(replace(config, assistant=assistant), folder)
    (folder / "done").write_text(f"{time.perf_counter() - t:.0f} s\n")
    print(f"[neural] simulated {folder.name} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return folder


def earlier_figures(folder: Path | None) -> dict[str, Any]:
    """The figures an earlier run wrote (each part of this benchmark replaces only its own)."""
    path = (folder or results_folder()) / "neural_rewriter.json"
    if not path.exists():
        return {}
    figures: dict[str, Any] = json.loads(path.read_text()).get("figures", {})
    return figures


@dataclass
class Judge:
    """Whether a candidate does what the user wanted, run on the home's initial state (cached)."""

    assistant: Assistant
    home: Home
    area_id: str | None
    ts: datetime
    expected: Effect
    judged: dict[str, bool] = field(default_factory=dict)

    def __call__(self, text: str) -> bool:
        if text not in self.judged:
            state = HomeState.initial(self.home)
            *_, effect = self.assistant.run_text(text, state, self.ts, self.area_id, explain_failures=False)
            self.judged[text] = effect is not None and effect == self.expected
        return self.judged[text]


def judge_replay(
    folder: Path,
    rewriter: Rewriter,
    arms: list[Arm],
    assistant: Assistant,
    check: HomeCheck,
    related: RelatedWords | None,
    k: int,
    limit: int,
    times: dict[str, list[float]] | None = None,
    start: int = 0,
) -> Counter[str]:
    """Reach of every arm over the failed in-scope turns of one control replay (the first
    ``start`` skipped); each arm's time to gather its candidates (ms, the judging excluded) is
    appended to ``times[arm]``."""
    counts: Counter[str] = Counter()
    times = defaultdict(list) if times is None else times
    started = time.perf_counter()
    for failed in itertools.islice(neural_budget.Replay(folder).judgeable(), start, None):
        home, area_id, text = failed.home, failed.area_id, failed.turn["text"]
        assert failed.expected is not None  # judgeable
        counts["judgeable"] += 1
        ctx = failed.context()
        prep = rewriter.prepare(text, ctx)
        if prep is None:
            continue
        right = Judge(assistant, home, area_id, failed.ts, failed.expected)
        for arm in arms:
            if arm.home is not None and home.fingerprint not in arm.home._homes:
                t0 = time.perf_counter()  # built once per home (and when it changes), not per request
                arm.home.home_index(home)
                times[f"{arm.name}:home_index"].append((time.perf_counter() - t0) * 1000)
            if arm.ranked is not None:
                texts, ms = ranked_candidates(arm.ranked, text, ctx)
                times[arm.name].append(ms)
                counts[f"{arm.name}@all"] += any(right(text) for text in texts)
                counts[f"{arm.name}:candidates"] += len(texts)
                hits = [right(text) for text in texts[:20]]
                counts[arm.name] += any(hits[:k])
                counts[f"{arm.name}@20"] += any(hits)
                continue
            t0 = time.perf_counter()
            if arm.index is None:
                texts = [c.text for c in rewriter.retrieve(prep, ctx)[2]]
            else:
                texts = dense_candidates(arm, prep, ctx, area_id, check, related, 20)
            if arm.home is not None:
                found = arm.home.candidates(prep.norm, prep.d.pattern, prep.d.values, home, area_id)
                # without a ranker: in turns over the sources, after the global layer's best
                ordered = [c.text for c in interleaved(found)]
                texts = list(dict.fromkeys([*texts[:2], *ordered, *texts[2:]]))
            times[arm.name].append((time.perf_counter() - t0) * 1000)
            if arm.home is not None:
                counts[f"{arm.name}@all"] += any(right(text) for text in texts)
                counts[f"{arm.name}:candidates"] += len(texts)
            hits = [right(text) for text in texts[:20]]
            counts[arm.name] += any(hits[:k])
            counts[f"{arm.name}@20"] += any(hits)
        if counts["judgeable"] % 500 == 0:
            print(
                f"[neural] {folder.name}: {counts['judgeable']:,} turns, "
                f"{time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
        if limit and counts["judgeable"] >= limit:
            break
    return counts


if __name__ == "__main__":
    main()
