"""The question budget of a rewriter, replayed: how many defects its ranked guess fixes, at what
price in questions and wrong actions, and how fast it decides. Part of bench/neural_rewriter.py
(``--budget name=FOLDER,...``).

For every turn of a control replay (no rewriter: Home Assistant's strict matching, one transcript)
that the assistant did not carry out -- in scope or not -- the rewriter is asked as a caller
behind the NLU asks it (``failed=True``, the household's home, no personal memory: a new home)
for its ranked pick: the best candidate by its ranker and the decision score. The pick is judged
from simulation truth (evaluation only): in scope, does it do what the user wanted on the home's
initial state; out of scope, any pick is wrong. A policy is two bars on the score: at or above
``act`` the pick runs unasked (a rescue when right, a wrong action when not); in ``[ask, act)``
the user is asked "Did you mean ...?" (a rescue when right -- the simulated user says yes to what
they meant and no otherwise -- one question either way). Defect reduction is rescues over the
replay's in-scope defects; questions are per 100 turns of the replay.

The rewriter's decision is timed whole (:meth:`~selflearn.rewrite.Rewriter.rewrite_one`, the
home's index built beforehand, as a service builds it when the home syncs): ``latency_ms``. As in
``selflearn serve`` (``ServiceConfig.freeze_gc``), what was loaded before the homes' indexes --
the rewriter, and here the replay -- is moved out of the cyclic garbage collector's scans
(``gc.freeze``); the indexes built after it stay in them, as they do in the service.

An arm ``name=FOLDER:single=DIR`` re-reads the LightGBM ranker's first candidates with a trained
single encoder (:mod:`selflearn.rewrite.cross_encoder`): its pick and score replace the
LightGBM ones, and its time is added to the decision's. It also records whether any candidate
it re-read works (``reread_reach``: the ceiling of re-ranking those candidates).
"""

from __future__ import annotations

import gc
import hashlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from selflearn.assistant.devices import HomeState
from selflearn.assistant.execute import Effect
from selflearn.assistant.pipeline import Assistant
from selflearn.core.home import Home
from selflearn.core.hooks import RewriteContext
from selflearn.evaluate.replay import read_records, turn_setting
from selflearn.rewrite import Rewriter, RewriterConfig
from selflearn.rewrite.cross_encoder import TOP, SingleEncoder, reread
from selflearn.rewrite.features import Candidate, Query, featurize
from selflearn.rewrite.ranker import Ranker

BARS = (0.02, 0.04, 0.06, 0.08, 0.1, 0.11, 0.12, 0.13, 0.14, 0.15, 0.17, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7, 1.01)
"""Score bars swept: every pair ``ask < act`` (and each alone; 1.01: never). Finer between 0.1
and 0.2, where the asking policies cross 5 questions per 100 turns."""


@dataclass(frozen=True)
class Pick:
    """A rewriter's ranked guess for one failed turn."""

    score: float
    right: bool
    in_scope: bool
    reachable: bool = False
    """A single-encoder arm: some candidate it re-read works."""


@dataclass(frozen=True)
class FailedTurn:
    """A turn of a control replay the assistant did not carry out, and where and when it was said."""

    turn_id: str
    turn: dict[str, Any]
    truth: dict[str, Any]
    """Simulation truth: for judging only."""
    home: Home
    area_name: str | None
    area_id: str | None
    ts: datetime
    expected: Effect | None
    """What the user wanted (None out of scope)."""

    def context(self) -> RewriteContext:
        """What a caller behind the NLU tells the rewriter: the request failed here, now."""
        turn = self.turn
        return RewriteContext(
            turn["household_id"], turn["user_id"], self.home, self.area_name, self.ts, failed=True
        )


class Replay:
    """A control replay's homes, turns and truth, read once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.homes = {h: Home.from_dict(row) for h, row in read_records(folder, "homes").items()}
        self.turns, self.truth = read_records(folder, "turns"), read_records(folder, "truth")

    def failed(self, counts: dict[str, int] | None = None, limit: int = 0) -> Iterator[FailedTurn]:
        """Every turn the assistant did not carry out (background turns aside), in an order that
        mixes the homes (a fixed hash of the turn id, so that the first ``limit`` come from every
        home rather than from the first few). ``counts`` gets the turns gone through (``turns``),
        their in-scope defects, out-of-scope turns and failed ones; with ``limit``, it stops once
        that many failed."""
        counts = {} if counts is None else counts
        for key in ("turns", "defects", "failed", "out_of_scope"):
            counts.setdefault(key, 0)
        ordered = sorted(self.truth.items(), key=lambda kv: hashlib.blake2b(kv[0].encode()).digest())
        for turn_id, t in ordered:
            if limit and counts["failed"] >= limit:
                return
            turn = self.turns.get(turn_id)
            if turn is None or t["action"] == "background":
                continue
            counts["turns"] += 1
            counts["defects"] += bool(t["in_scope"] and t["defect"])
            counts["out_of_scope"] += not t["in_scope"]
            if (turn.get("result") or {}).get("status") == "success":
                continue  # carried out (rightly or not): a caller behind the NLU does not ask
            counts["failed"] += 1
            home, area_name, area_id, ts, expected = turn_setting(turn, t, self.homes)
            yield FailedTurn(turn_id, turn, t, home, area_name, area_id, ts, expected)

    def judgeable(self) -> Iterator[FailedTurn]:
        """The failed in-scope defects whose wanted effect truth can judge, in the same order:
        the turns a rewriter's candidates are judged on."""
        for failed in self.failed():
            if failed.truth["in_scope"] and failed.truth["defect"] and failed.expected is not None:
                yield failed


def load_arm(spec: str) -> tuple[str, Rewriter, SingleEncoder | None, int, bool]:
    """``name=FOLDER`` (``FOLDER:static`` loads it without the home's language;
    ``FOLDER:single=DIR[:top=N][:pick]`` re-reads its ranker's first N candidates, default
    :data:`~selflearn.rewrite.cross_encoder.TOP`, with the single encoder in DIR; with ``:pick``
    the single encoder only picks, and the LightGBM ranker's score of that pick decides)."""
    name, _, rest = spec.partition("=")
    rest, pick_only, _ = rest.partition(":pick")
    rest, _, top = rest.partition(":top=")
    folder, _, single = rest.partition(":single=")
    static = folder.endswith(":static")
    path = Path(folder.removesuffix(":static"))
    rewriter = Rewriter.load(path, RewriterConfig(personal=False, confirm="off"))
    if static:
        rewriter.config = replace(rewriter.config, home_language=False)
    return name, rewriter, SingleEncoder.load(single) if single else None, int(top or TOP), bool(pick_only)


def scored(
    rewriter: Rewriter, text: str, ctx: RewriteContext
) -> tuple[Query, list[Candidate], np.ndarray, Ranker] | None:
    """What the rewriter's ranker sees for ``text``: the request as read, its candidates, their
    features and the ranker member that scores this household (None: no candidate, or no ranker)."""
    ranker = rewriter.ranker_
    prep = rewriter.prepare(text, ctx)
    if prep is None or ranker is None:
        return None
    query, hood, cands = rewriter.retrieve(prep, ctx)
    if not cands:
        return None
    x = featurize(query, cands, rewriter.knowledge_, hood, None, ranker.intents)
    return query, cands, x, ranker.for_household(ctx.household_id)


def picks(
    folder: Path,
    rewriter: Rewriter,
    assistant: Assistant,
    label: str,
    limit: int = 0,
    single: SingleEncoder | None = None,
    top: int = TOP,
    pick_only: bool = False,
) -> tuple[list[Pick], dict[str, int], list[float], list[float]]:
    """The ranked pick for every failed turn of one control replay (the first ``limit`` in an
    order that mixes the homes, when given); the counts of the turns gone through (turns,
    in-scope defects); the decision times (ms) and the home index build times (ms)."""
    replay = Replay(folder)
    assert rewriter.ranker_ is not None, "a rewriter without a ranker makes no ranked pick"
    source = rewriter.retrieval.home if rewriter.config.home_language else None
    gc.collect()
    gc.freeze()  # as `selflearn serve` after loading its rewriter: a full collection over it stalls requests
    built: list[float] = []
    if source is not None:
        for home in replay.homes.values():
            t0 = time.perf_counter()
            source.home_index(home)
            built.append((time.perf_counter() - t0) * 1000)
    out: list[Pick] = []
    ms: list[float] = []
    counts: dict[str, int] = {}
    started = time.perf_counter()
    for failed in replay.failed(counts, limit):
        t, text = failed.truth, failed.turn["text"]
        if t["in_scope"] and failed.expected is None:
            continue  # nothing a rewrite could do that truth can judge
        ctx = failed.context()
        t0 = time.perf_counter()
        rewriter.rewrite_one(text, ctx)
        ms.append((time.perf_counter() - t0) * 1000)
        found = scored(rewriter, text, ctx)
        if found is None:
            continue
        query, cands, x, member = found
        verdict = member.decide(x, True)
        best, score = verdict.best, verdict.score
        reread_ones: list[int] = []
        if single is not None:
            t0 = time.perf_counter()
            home_flags = [bool(c.home) for c in cands]
            again = reread(
                single, query.text, [c.text for c in cands], home_flags, verdict.meaning, verdict.fixable
            )
            ms[-1] += (time.perf_counter() - t0) * 1000
            best, score = again.best, again.score
            if pick_only:
                score = member.score_of(float(verdict.meaning[best]), verdict.fixable)
            reread_ones = list(again.read)

        setting = (failed.home, failed.ts, failed.area_id, failed.expected)
        right = works_in(assistant, cands[best].text, *setting)
        reachable = right or any(
            works_in(assistant, cands[i].text, *setting) for i in reread_ones if i != best
        )
        out.append(Pick(score, right, bool(t["in_scope"]), reachable))
        if counts["failed"] % 1000 == 0:
            print(
                f"[budget] {label}: {counts['failed']:,} failed turns, {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
    return out, counts, ms, built


def effect_of(assistant: Assistant, text: str, home: Home, ts: Any, area_id: str | None) -> Effect | None:
    """What ``text`` does on the home's initial state (None: nothing)."""
    *_, effect = assistant.run_text(text, HomeState.initial(home), ts, area_id, explain_failures=False)
    return effect


def works_in(
    assistant: Assistant, text: str, home: Home, ts: Any, area_id: str | None, expected: Any
) -> bool:
    """Does ``text`` do what the user wanted (``expected``, from simulation truth) on the home's
    initial state?"""
    if expected is None:
        return False
    effect = effect_of(assistant, text, home, ts, area_id)
    return effect is not None and effect == expected


def curve(arm: str, label: str, found: list[Pick], counts: dict[str, int]) -> list[dict[str, Any]]:
    """Every (ask, act) policy of the sweep on one replay."""
    rows = []
    for act in BARS:
        for ask in (*[a for a in BARS if a < act], act):
            rescues = wrong = asked = oos_asked = oos_acted = 0
            for p in found:
                if p.score >= act:
                    rescues += p.right
                    wrong += not p.right
                    oos_acted += not p.in_scope
                elif p.score >= ask:
                    asked += 1
                    rescues += p.right
                    oos_asked += not p.in_scope
            rows.append(
                {
                    "arm": arm,
                    "speech": label,
                    "policy": f"ask>={ask:g} act>={act:g}" if ask < act else f"act>={act:g}",
                    "ask": ask,
                    "act": act,
                    "defect_reduction": round(rescues / max(counts["defects"], 1), 4),
                    "rescues": rescues,
                    "wrong_actions": wrong,
                    "questions_per_100_turns": round(100 * asked / max(counts["turns"], 1), 2),
                    "out_of_scope_asked": round(oos_asked / max(counts["out_of_scope"], 1), 4),
                    "out_of_scope_acted": round(oos_acted / max(counts["out_of_scope"], 1), 4),
                }
            )
    return rows


def frontier(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows worth keeping: every acting-only and asking-only policy, and the others no policy
    of the same arm and speech beats on all of defect reduction, questions and wrong actions."""

    def key(b: dict[str, Any]) -> tuple[float, float, int]:
        return b["defect_reduction"], -b["questions_per_100_turns"], -b["wrong_actions"]

    def beaten(b: dict[str, Any]) -> bool:
        mine = key(b)
        return any(
            o is not b
            and (o["arm"], o["speech"]) == (b["arm"], b["speech"])
            and all(x >= y for x, y in zip(key(o), mine, strict=True))
            and key(o) != mine
            for o in rows
        )

    return [b for b in rows if b["ask"] == b["act"] or b["act"] > 1 or not beaten(b)]


def auc(found: list[Pick]) -> float | None:
    """Area under the ROC curve of the decision score, right picks against wrong ones."""
    from sklearn.metrics import roc_auc_score

    good = np.array([p.right for p in found])
    if good.all() or not good.any():
        return None
    return round(float(roc_auc_score(good, [p.score for p in found])), 4)


def run(specs: str, replays: list[tuple[str, str]], assistant: Assistant, limit: int = 0) -> dict[str, Any]:
    """The budget figures of every arm in ``specs`` over ``replays`` (label, folder)."""
    budget: list[dict[str, Any]] = []
    aucs: dict[str, dict[str, float | None]] = {}
    right: dict[str, dict[str, dict[str, float]]] = {}
    latency: dict[str, dict[str, float]] = {}
    for spec in specs.split(","):
        arm, rewriter, single, top, pick_only = load_arm(spec)
        for label, folder in replays:
            found, counts, ms, built = picks(
                Path(folder), rewriter, assistant, f"{arm} {label}", limit, single, top, pick_only
            )
            budget += curve(arm, label, found, counts)
            aucs.setdefault(arm, {})[label] = auc(found)
            inside = [p for p in found if p.in_scope]
            right.setdefault(arm, {})[label] = {
                "in_scope_picks": len(inside),
                "right": round(sum(p.right for p in inside) / max(len(inside), 1), 4),
            }
            if single is not None:
                reach = sum(p.reachable for p in inside) / max(len(inside), 1)
                right[arm][label]["reread"] = top
                right[arm][label]["reread_reach"] = round(reach, 4)
            latency.setdefault(arm, {}).update(
                {
                    f"{label}_p50": round(float(np.percentile(ms, 50)), 2),
                    f"{label}_p99": round(float(np.percentile(ms, 99)), 2),
                    f"{label}_n": len(ms),
                }
            )
            if built:
                latency[arm][f"{label}_home_index_s_p50"] = round(float(np.percentile(built, 50)) / 1000, 1)
            print(
                f"[budget] {arm} {label}: {counts}, picks {len(found)}, auc {aucs[arm][label]}, "
                f"{right[arm][label]}",
                file=sys.stderr,
            )
    return {"budget": budget, "ranker_auc_by_arm": aucs, "picks_right": right, "decision_ms": latency}
