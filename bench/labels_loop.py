"""Closing the loop without run-time rewriting: the labels' exported custom sentences, loaded by
the assistant as Home Assistant loads them, against the online rewriter and both together.

    python bench/labels_loop.py                 # seen, held-out, held-out-clean
    python bench/labels_loop.py --real          # also through real ASR (slow)

1. The online benchmark's training logs (``bench/.cache/online/train-360mix.duckdb``: 360
   households, their signals scored) are copied, labelled (``selflearn.labels.label_store``:
   rules and label transfer, from the logs alone) and exported as Home Assistant custom
   sentences (``selflearn.labels.export_labels``, global templates only: at least ``--min-users``
   users, no household's names, confidence at least ``--min-confidence``).
2. New households (the online benchmark's replay populations) are simulated per arm with the
   same seed: ``HA today`` (strict templates, then the gazetteer), ``+ exported sentences`` (the
   same assistant with the custom sentences loaded beside Home Assistant's own: no selflearn at
   run time), ``+ online rewriter`` (the flagship, acting alone behind the NLU, as in
   ``bench/online.py``) and ``both``.
3. Per arm, against simulation truth: the defect rate (all turns, first attempts, goals), the
   defects fixed relative to ``HA today`` (``1 - rate / control rate``) and the share of the
   rewriter's fix the export reaches, and the **wrong actions** each adds: turns the exported
   sentences matched (matcher ``custom_sentences``) on which the assistant did something the user
   did not want, and the rewriter's as ``bench/online.py`` counts them. Target (issue 30): on
   phrasings seen in the logs, the export alone fixes at least half of what the rewriter fixes.
4. The export's ceiling (``export_ceiling``): of the rewriter's rescues, the share whose failed
   words (what the recogniser heard, before the rewrite) -- delexicalised by the speaker's home,
   a shopping item's words as ``{item}``, fillers stripped, a generous match -- the
   training logs hold as transferred labels at all (``pattern_in_logs``) and from at least
   ``--min-users`` users (``pattern_from_k_users``: what a k-anonymous export of the words said
   could at best cover), and the share the rewriter rescued with an alternative of the
   recogniser's n-best list (``nbest_alternative``: Home Assistant only ever sees the best
   hypothesis, so no sentence file can).
5. Whether the export adds wrong actions the rewriter would not (``export_wrong_actions_vs_rewriter``):
   each of the exported sentences' wrong actions is put to the rewriter counterfactually, the
   same words in the same home behind Home Assistant's own NLU, and counted by what Home
   Assistant alone does and, where it fails, what the rewriter then does (:func:`rewriter_would`).

Figures go to ``docs/results/labels_loop.json``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import populations
from selflearn.assistant.nlu import HomeAssistantNlu
from selflearn.core.delex import Delexicalizer
from selflearn.core.home import Home
from selflearn.core.hooks import RewriteContext
from selflearn.core.store import Store
from selflearn.evaluate import ArmStats, Replay, population, write_results
from selflearn.evaluate.ab import pct
from selflearn.evaluate.replay import read_records, score_arm
from selflearn.labels import label_store
from selflearn.labels.export import export_labels
from selflearn.labels.labelled import load_labelled
from selflearn.labels.sentences import MIN_CONFIDENCE
from selflearn.rewrite.rewriter import Rewriter

ONLINE = Path(__file__).resolve().parent / ".cache" / "online"
CACHE = Path(__file__).resolve().parent / ".cache" / "labels"
REWRITER = ONLINE / "rewriter-train-360mix-k5"
TRAIN = ONLINE / "train-360mix.duckdb"


def custom_wrong(folder: Path) -> tuple[int, list[dict[str, Any]]]:
    """(how many turns the exported sentences matched, the logged turns of those on which the
    assistant acted wrongly)."""
    turns, truth = read_records(folder, "turns"), read_records(folder, "truth")
    matched, wrong = 0, []
    for turn_id, t in truth.items():
        row = turns.get(turn_id, {})
        if (row.get("nlu") or {}).get("matcher") != "custom_sentences":
            continue
        matched += 1
        if t["defect"] and (row.get("result") or {}).get("status") == "success":
            wrong.append(row)
    return matched, wrong


def rewriter_would(
    wrong: list[dict[str, Any]], homes: dict[str, dict[str, Any]], rewriter: Rewriter, nlu: HomeAssistantNlu
) -> dict[str, int]:
    """Each wrong action of the exported sentences (``wrong``, from :func:`custom_wrong`; ``homes``:
    the replay's home records), counterfactually: what the online rewriter
    would have done with the same words in the same home behind Home Assistant's own NLU (its
    global layer; the arms' simulations diverge after their first different outcome, so the
    rewriter arm's own turns cannot be compared turn by turn): Home Assistant alone does the same
    (``ha_same``) or otherwise (``ha_other``), or fails and the rewriter then does the same
    (``rewriter_same``), otherwise (``rewriter_other``) or nothing (``rewriter_none``).
    ``beyond_rewriter``: wrong actions neither Home Assistant alone nor with the rewriter takes."""
    out = {
        "wrong_actions": len(wrong),
        "ha_same": 0,
        "ha_other": 0,
        "rewriter_same": 0,
        "rewriter_other": 0,
        "rewriter_none": 0,
    }
    built: dict[str, Home] = {}
    for row in wrong:
        said = row["nlu"]
        household = row["household_id"]
        home = built.setdefault(household, Home.from_dict(homes[household]))
        area = (row.get("device") or {}).get("area")
        area_id = home.area_id_of(area)  # as the assistant reads the device's area
        heard = row["asr"]["text"]
        alone = nlu.recognize(heard, home, area_id).trace
        if alone.matched:  # the rewriter is not asked when Home Assistant understands
            same = alone.intent == said.get("intent") and dict(alone.slots) == said.get("slots")
            out["ha_same" if same else "ha_other"] += 1
            continue
        nbest = tuple(h["text"] for h in row["asr"].get("nbest") or [])[1:]
        context = RewriteContext(household, row["user_id"], home=home, area=area, failed=True, nbest=nbest)
        decision = rewriter.rewrite_one(heard, context)
        trace = nlu.recognize(decision.text, home, area_id).trace if decision.rewritten else None
        if trace is None or not trace.matched:
            out["rewriter_none"] += 1
        elif trace.intent == said.get("intent") and dict(trace.slots) == said.get("slots"):
            out["rewriter_same"] += 1
        else:
            out["rewriter_other"] += 1
    out["beyond_rewriter"] = out["wrong_actions"] - out["ha_same"] - out["rewriter_same"]
    return out


def _with_item(pattern: str, item: Any) -> str:
    """``pattern`` with a shopping or to-do item's words as ``{item}``, as the export writes them
    (Home Assistant's wildcard lists)."""
    words = " ".join(str(item or "").casefold().split())
    return pattern.replace(words, "{item}", 1) if words and words in pattern else pattern


def logged_patterns(store: Store) -> dict[str, set[tuple[str, str]]]:
    """Delexicalised words of the store's transferred labels -> the (household, user) who said them."""
    homes = store.homes()
    delex: dict[str, Delexicalizer] = {}
    users: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for turn in load_labelled(store):
        home = homes.get(turn.household_id)
        if home is None or not turn.transferred:
            continue
        d = delex.setdefault(turn.household_id, Delexicalizer(home))
        item = next((s.value for s in turn.slots if s.slot == "item" and s.said), None)
        users[_with_item(d(turn.text).pattern, item)].add((turn.household_id, turn.user_id))
    return users


def export_ceiling(logged: dict[str, set[tuple[str, str]]], folder: Path, min_users: int) -> dict[str, Any]:
    """Step 4 of the module docstring, on the rewriter arm's replay ``folder``."""
    turns, truth = read_records(folder, "turns"), read_records(folder, "truth")
    homes = {h: Home.from_dict(r) for h, r in read_records(folder, "homes").items()}
    delex = {h: Delexicalizer(home) for h, home in homes.items()}
    rescues = in_logs = from_k = nbest = 0
    for turn_id, t in truth.items():
        row = turns.get(turn_id) or {}
        rewrite = row.get("rewrite")
        if not rewrite or not t.get("defect_without_rewrite") or t["defect"]:
            continue
        rescues += 1
        failed = delex[row["household_id"]](rewrite["original_text"]).pattern  # row["text"]: the rewrite
        users = logged.get(_with_item(failed, t["goal"]["slots"].get("item")), set())
        in_logs += bool(users)
        from_k += len(users) >= min_users
        nbest += rewrite.get("rewritten_text") in {h["text"] for h in (row.get("asr") or {}).get("nbest", [])}
    shares = {"pattern_in_logs": in_logs, "pattern_from_k_users": from_k, "nbest_alternative": nbest}
    return {"rewriter_rescues": rescues} | {
        name: round(n / rescues, 4) if rescues else None for name, n in shares.items()
    }


def figures(st: ArmStats, control: ArmStats, matched: int, wrong: int) -> dict[str, Any]:
    return {
        "turns": st.turns,
        "defect_rate": round(st.defect_rate, 4),
        "first_attempt_defect_rate": round(st.first_attempt_defect_rate, 4),
        "goal_failure_rate": round(st.goals_failed / max(st.goals, 1), 4),
        "defects_fixed_vs_control": round(1 - st.defect_rate / control.defect_rate, 4),
        "custom_sentence_turns": matched,
        "custom_sentence_wrong_actions": wrong,
        "rewriter_wrong_actions": st.acted_wrong,
        "rewriter_rescues": st.wins,
        "wrong_actions": wrong + st.acted_wrong,
    }


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-store", type=Path, default=TRAIN)
    parser.add_argument("--rewriter", type=Path, default=REWRITER)
    parser.add_argument("--populations", default="seen,held-out,held-out-clean")
    parser.add_argument("--real", action="store_true", help="also the real-ASR population")
    parser.add_argument("--min-users", type=int, default=5)
    parser.add_argument("--min-confidence", type=float, default=MIN_CONFIDENCE)
    parser.add_argument(
        "--wildcards", action="store_true", help="export shopping items as {shopping_list_item:item}"
    )
    populations.add_replay_options(parser)
    parser.add_argument(
        "--name", default="labels_loop", help="results file name and export folder (for ablations)"
    )
    args = parser.parse_args()
    if not args.train_store.exists() or not (args.rewriter / "model.json").exists():
        parser.error(
            "needs the online benchmark's training store and rewriter: "
            "run bench/online_stores.sh and bench/online.py"
        )
    CACHE.mkdir(parents=True, exist_ok=True)
    store_path = CACHE / "train-labels.duckdb"
    export = CACHE / ("export" if args.name == "labels_loop" else f"export-{args.name}")
    if not store_path.exists() or store_path.stat().st_mtime < args.train_store.stat().st_mtime:
        shutil.copy(args.train_store, store_path)
    with Store(store_path) as store:
        t0 = time.perf_counter()
        labelled = label_store(store)
        label_seconds = time.perf_counter() - t0
        print(f"[labels] {labelled.summary()}", file=sys.stderr)
        logged = logged_patterns(store)
        shutil.rmtree(export, ignore_errors=True)
        exported = export_labels(
            store,
            export,
            min_users=args.min_users,
            min_confidence=args.min_confidence,
            formats=("ha",),
            wildcards=args.wildcards,
        )
    sentences = exported.files["ha"].parent
    print(f"[labels] {exported.global_sentences} global sentences -> {sentences}", file=sys.stderr)
    result: dict[str, Any] = {
        "train_store": str(args.train_store),
        "rewriter": str(args.rewriter),
        "labels": {"summary": labelled.summary(), "seconds": round(label_seconds, 1)},
        "export": {
            "global_sentences": exported.global_sentences,
            "left_out": len(exported.left_out),
            "min_users": args.min_users,
            "min_confidence": args.min_confidence,
            "wildcards": args.wildcards,
        },
        "populations": {},
    }
    lines = [
        "| population | arm | turns | defect rate | first attempts failed | goals failed "
        "| defects fixed vs HA | wrong actions (sentences + rewriter) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    names = [p for p in args.populations.split(",") if p] + (["real"] if args.real else [])
    rewriter, plain_nlu = Rewriter.load(args.rewriter), HomeAssistantNlu()
    for name in names:
        households, days = populations.replay_size(name, args)
        plain = Replay(population(name), ONLINE, args.workers, households, days)
        loaded = Replay(population(name), CACHE, args.workers, households, days, custom_sentences=sentences)
        arms = {
            "control": (plain, "control", None),
            "export": (loaded, "control", None),
            "rewriter": (plain, "personal", args.rewriter),
            "both": (loaded, "personal", args.rewriter),
        }
        stats: dict[str, tuple[ArmStats, Path]] = {}
        for arm, (replay, kind, learner) in arms.items():
            print(f"[labels_loop] {name}: {arm}", file=sys.stderr)
            folder = replay.arm(kind, learner)
            stats[arm] = (score_arm(folder), folder)
        control = stats["control"][0]
        pop: dict[str, Any] = {
            "households": households,
            "days": days,
            "asr": population(name).asr,
            "arms": {},
        }
        wrong_turns: dict[str, list[dict[str, Any]]] = {}
        for arm, (st, folder) in stats.items():
            matched, wrong_turns[arm] = custom_wrong(folder)
            fig = pop["arms"][arm] = figures(st, control, matched, len(wrong_turns[arm]))
            lines.append(
                f"| {name} | {arm} | {st.turns:,} | {pct(st.defect_rate)} "
                f"| {pct(st.first_attempt_defect_rate)} | {pct(fig['goal_failure_rate'])} "
                f"| {pct(fig['defects_fixed_vs_control'])} "
                f"| {fig['custom_sentence_wrong_actions']:,} + {fig['rewriter_wrong_actions']:,} |"
            )
        fixed_rw = pop["arms"]["rewriter"]["defects_fixed_vs_control"]
        fixed_ex = pop["arms"]["export"]["defects_fixed_vs_control"]
        pop["export_share_of_rewriter_fix"] = round(fixed_ex / fixed_rw, 3) if fixed_rw > 0 else None
        pop["export_ceiling"] = export_ceiling(logged, stats["rewriter"][1], args.min_users)
        export_homes = read_records(stats["export"][1], "homes")
        pop["export_wrong_actions_vs_rewriter"] = rewriter_would(
            wrong_turns["export"], export_homes, rewriter, plain_nlu
        )
        result["populations"][name] = pop
    print("\n".join(lines))
    write_results(args.name, result, seconds=time.perf_counter() - started)


if __name__ == "__main__":
    main()
