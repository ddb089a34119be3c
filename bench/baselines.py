"""Baseline table: how the reference assistant handles real phrasings under the fallbacks a user would pick.

Real phrasings (HWU64, SLURP devel, Home Assistant's own test sentences; ``../shared/data``) are
realised as goals in generated homes, with the homes' configured names (no household nicknames,
so the table isolates phrasing), spoken through the chosen ASR channel, and handled by:

(a) ``strict``           hassil templates only
(b) ``strict+gazetteer`` Home Assistant today (gazetteer-matcher fallback)
(c) ``strict+fuzzy``     the older n-gram fuzzy fallback (hassil 3.8.1, pinned venv)
(d) ``strict+canon``     closest-template canonicalisation with rapidfuzz, then strict
(e) ``rewrites+strict+gazetteer`` a mined rewrite table (``--rewrites``) in front of (b)

Each request is scored by executing on a copy of the home: **correct** (did what was asked, or
refused an out-of-scope request), **wrong** (did something else, or acted on an out-of-scope
request), **no-match** (did nothing). Run from the repository root:
``python bench/baselines.py [--asr exact] [--out FILE]``; add ``--rewrites FOLDER --split test``
to score a rewrite table (or an online rewriter) on phrasings it was not mined on. Baseline (c)
needs its pinned environment (``bash bench/fuzzy_ngram/setup.sh``; ``--skip-fuzzy`` leaves it out).

The tables are also written as JSON to ``docs/results/baselines.json`` (or ``$SELFLEARN_RESULTS``);
a run with another ASR channel, split or a rewriter writes ``baselines-<asr>-<split>-<table or
rewriter>.json`` instead (only the parts that differ from the default), so it does not replace it.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz, process

from fuzzy_ngram import client as fuzzy_client  # bench/fuzzy_ngram: run as ``python bench/baselines.py``
from selflearn.assistant.asr import make_asr
from selflearn.assistant.devices import HomeState
from selflearn.assistant.execute import Effect, execute
from selflearn.assistant.nlu import HomeAssistantNlu, NluResult
from selflearn.assistant.resolve import resolve
from selflearn.core.errors import ConfigError
from selflearn.core.home import Home, normalize_name
from selflearn.core.hooks import RewriteContext
from selflearn.core.schema import NluTrace
from selflearn.evaluate import write_results
from selflearn.rewrite.rewriter import Rewriter, RewriterConfig
from selflearn.rewrite.table import RewriteTable
from selflearn.simulation import corpora
from selflearn.simulation.catalogue import template_phrasings
from selflearn.simulation.goals import Goal, realise
from selflearn.simulation.phrasing import Phrasing
from selflearn.simulation.population import Household, User, UserTraits, make_household

NOW = datetime(2026, 1, 7, 10, 0, tzinfo=UTC)
BASELINES = ("strict", "strict+gazetteer", "strict+fuzzy", "strict+canon")
REWRITER = "rewrites+strict+gazetteer"
SPLITS = ("all", "train", "test")
EXAMPLES = 6
PLAIN_USER = User("bench_user", UserTraits({"corpus": 1.0}, 0.0, 1, 1.0, 0.0, 0.0, 0.0, 1.0, "slt", 0.0))


@dataclass
class Case:
    """One request: a phrasing realised in a home."""

    corpus: str
    phrasing: Phrasing
    household: Household
    goal: Goal | None  # None for out-of-scope
    spoken: str
    heard: str
    area: str | None
    asr_changed: bool


@dataclass
class Tally:
    """Outcome counts for one baseline."""

    outcome: Counter[str] = field(default_factory=Counter)
    by_corpus: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    by_intent: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    failure_point: Counter[str] = field(default_factory=Counter)
    rescued: int = 0
    rescued_wrong: int = 0
    seconds: float = 0.0
    results: list[NluResult] = field(default_factory=list)  # per case, in case order
    outcomes: list[str] = field(default_factory=list)  # per case
    acted: list[bool] = field(default_factory=list)  # per case: the fallback (or rewriter) acted
    rewritten: list[str | None] = field(default_factory=list)  # per case, rewriter only


def build_cases(
    data_dir: Path, homes: int, asr_name: str, seed: int, limit: int | None, split: str = "all"
) -> list[Case]:
    households = [make_household(seed, i, "bench") for i in range(homes)]
    asr = make_asr(asr_name)
    exact = make_asr("exact")
    rng = random.Random(seed)
    cases: list[Case] = []
    for name in corpora.CORPORA:
        phrasings = corpora.load_corpus(name, data_dir)
        if split != "all":
            phrasings = [p for p in phrasings if p.split == split]
        if limit:
            phrasings = rng.sample(phrasings, min(limit, len(phrasings)))
        for phr in phrasings:
            hh = rng.choice(households)
            _, area, _ = hh.devices[0]
            if phr.intent == "OutOfScope":
                goal = None
                spoken = phr.pattern
            else:
                goal = None
                for _ in range(6):
                    hh = rng.choice(households)
                    _, area, _ = hh.devices[0]
                    state = HomeState.initial(hh.home)
                    goal = realise(phr.kind, hh, state, PLAIN_USER, area, rng, "g", NOW)
                    if goal is not None:
                        break
                if goal is None:
                    continue  # no generated home can express it (e.g. needs a device we do not model)
                spoken = phr.fill(goal.spoken)
            heard = asr.transcribe(spoken, rng).text
            changed = heard != exact.transcribe(spoken, rng).text
            cases.append(Case(name, phr, hh, goal, spoken, heard, area, changed))
    return cases


class Canonicaliser:
    """Closest-template canonicalisation: delexicalise the home's names, find the nearest template
    phrasing with rapidfuzz, and refill it (as Home Assistant community agents do)."""

    def __init__(self, threshold: float = 75.0) -> None:
        self.threshold = threshold
        self.patterns = sorted({p.pattern for p in template_phrasings()})
        self._keyed = [re.sub(r"\{(\w+)\}", lambda m: f"<{m.group(1)}>", p) for p in self.patterns]

    def __call__(self, text: str, home: Home) -> str | None:
        lowered = " " + " ".join(normalize_name(text).split()) + " "
        values: dict[str, list[str]] = defaultdict(list)
        names = [(normalize_name(n), "name") for e in home.entities for n in e.spoken_names]
        names += [(normalize_name(n), "area") for a in home.areas for n in (a.name, *a.aliases)]
        names += [(normalize_name(n), "floor") for f in home.floors for n in (f.name, *f.aliases)]
        for value, slot in sorted(names, key=lambda x: -len(x[0])):
            if f" {value} " in lowered:
                lowered = lowered.replace(f" {value} ", f" <{slot}> ", 1)
                values[slot].append(value)
        for number in re.findall(r"\d+", lowered):
            values["#"].append(number)
        query = re.sub(r"\d+", "<#>", lowered).strip()
        keyed = [
            re.sub(r"<(brightness|temperature|position|volume|minutes|seconds|hours)>", "<#>", k)
            for k in self._keyed
        ]
        best = process.extractOne(query, keyed, scorer=fuzz.ratio, score_cutoff=self.threshold)
        if best is None:
            return None
        pattern = self.patterns[best[2]]
        used: dict[str, int] = Counter()

        def fill(m: re.Match[str]) -> str:
            slot = m.group(1)
            key = (
                "#"
                if slot in ("brightness", "temperature", "position", "volume", "minutes", "seconds", "hours")
                else slot
            )
            pool = values.get(key, [])
            if used[key] >= len(pool):
                raise KeyError(slot)
            used[key] += 1
            return pool[used[key] - 1]

        try:
            return re.sub(r"\{(\w+)\}", fill, pattern)
        except KeyError:
            return None


def judge(case: Case, nlu: NluResult, home: Home) -> tuple[str, str]:
    """(outcome, failure point) of handling ``case`` with this NLU result."""
    state = HomeState.initial(home)
    area = case.area
    effect: Effect | None = None
    resolution = None
    if nlu.trace.matched:
        resolution = resolve(nlu.trace.intent, dict(nlu.trace.slots), home, area, nlu.target_ids)
        effect = execute(nlu.trace.intent or "", dict(nlu.trace.slots), resolution, state, NOW, area).effect
    if case.goal is None:
        return ("correct", "correct") if effect is None else ("wrong", "nlu")
    if effect == case.goal.expected:
        return "correct", "correct"
    stage = "nlu"
    expected = case.goal.expected
    if case.asr_changed:
        stage = "asr"
    elif (
        nlu.trace.matched
        and expected is not None
        and nlu.trace.intent == expected.intent
        and resolution is not None
        and not resolution.trace.ok
    ):
        stage = "er"
    return ("wrong" if effect is not None else "no_match"), stage


def run(cases: list[Case], baseline: str, canon: Canonicaliser, fuzzy_venv: Path | None) -> Tally:
    tally = Tally()
    started = time.perf_counter()
    strict = HomeAssistantNlu("strict", unmatched_pass=False)
    gaz = HomeAssistantNlu("strict+gazetteer", unmatched_pass=False)
    results: list[NluResult] = []
    strict_hits: list[bool] = []
    for case in cases:
        base = strict.recognize(case.heard, case.household.home, case.area)
        strict_hits.append(base.trace.matched)
        results.append(base)
    if baseline == "strict+gazetteer":
        results = [
            r if hit else gaz.recognize(c.heard, c.household.home, c.area)
            for r, hit, c in zip(results, strict_hits, cases, strict=True)
        ]
    elif baseline == "strict+canon":
        out: list[NluResult] = []
        for r, hit, c in zip(results, strict_hits, cases, strict=True):
            if hit:
                out.append(r)
                continue
            text = canon(c.heard, c.household.home)
            out.append(strict.recognize(text, c.household.home, c.area) if text else r)
        results = out
    elif baseline == "strict+fuzzy":
        todo = [i for i, hit in enumerate(strict_hits) if not hit]
        requests = [_fuzzy_request(i, cases[i]) for i in todo]
        rows = fuzzy_client.fuzzy_match(requests, venv=fuzzy_venv) if requests else []
        for i, row in zip(todo, rows, strict=True):
            if row.get("matched"):
                slots = {k: v for k, v in (row.get("slots") or {}).items() if v is not None}
                results[i] = NluResult(
                    NluTrace(
                        matched=True, intent=row["intent"], slots=slots, confidence=0.5, matcher="fuzzy_ngram"
                    )
                )
    acted = [not hit and res.trace.matched for res, hit in zip(results, strict_hits, strict=True)]
    return _score(tally, cases, results, acted, started)


class OnlineRewriter:
    """An online rewriter folder (``selflearn train rewriter``) consulted behind the NLU: only
    for requests strict+gazetteer did nothing with, told that they failed."""

    def __init__(self, folder: Path, threshold: float | None = None) -> None:
        self.rewriter = Rewriter.load(folder, RewriterConfig(personal=False, threshold=threshold))
        self.version = self.rewriter.version
        self.kind = "online rewriter (global layer, behind the NLU)"

    def __len__(self) -> int:
        return len(self.rewriter.knowledge_ or [])

    def __call__(self, case: Case, failed: bool) -> str | None:
        if not failed:
            return None
        ctx = RewriteContext(
            household_id=case.household.home.home_id, home=case.household.home, area=case.area, failed=True
        )
        decision = self.rewriter.rewrite_one(case.heard, ctx)
        return decision.text if decision.rewritten else None


def load_rewriter(folder: Path, threshold: float | None = None) -> RewriteTable | OnlineRewriter:
    """A mined table folder or an online rewriter folder (``threshold``: override its calibrated one)."""
    from selflearn.rewrite.rewriter import FORMAT as REWRITER

    description = folder / "model.json"
    if description.exists() and json.loads(description.read_text()).get("format") == REWRITER:
        return OnlineRewriter(folder, threshold)
    return RewriteTable.load(folder)


def _did_nothing(case: Case, nlu: NluResult) -> bool:
    """What the assistant itself can see: no match, or nothing resolved/executed."""
    if not nlu.trace.matched:
        return True
    home = case.household.home
    resolution = resolve(nlu.trace.intent, dict(nlu.trace.slots), home, case.area, nlu.target_ids)
    state = HomeState.initial(home)
    return (
        execute(nlu.trace.intent or "", dict(nlu.trace.slots), resolution, state, NOW, case.area).effect
        is None
    )


def run_rewriter(cases: list[Case], rewriter: RewriteTable | OnlineRewriter, today: Tally) -> Tally:
    """(e): strict+gazetteer on the rewritten text where the rewriter rewrites the (heard) request;
    elsewhere the result of ``today`` (strict+gazetteer on the same cases) is reused. A table
    rewrites before the NLU; an online rewriter only requests today's stack did nothing with."""
    started = time.perf_counter()
    gaz = HomeAssistantNlu("strict+gazetteer", unmatched_pass=False)
    if isinstance(rewriter, OnlineRewriter):
        rewritten = [
            rewriter(case, _did_nothing(case, res)) for case, res in zip(cases, today.results, strict=True)
        ]
    else:
        rewritten = [_rewrite(rewriter, case) for case in cases]
    results = [
        before if text is None else gaz.recognize(text, case.household.home, case.area)
        for case, text, before in zip(cases, rewritten, today.results, strict=True)
    ]
    tally = Tally(rewritten=rewritten)
    return _score(tally, cases, results, [text is not None for text in rewritten], started)


def _rewrite(rewriter: RewriteTable, case: Case) -> str | None:
    hit = rewriter.lookup(case.heard, case.household.home)
    return hit[0] if hit else None


def _score(
    tally: Tally, cases: list[Case], results: list[NluResult], acted: list[bool], started: float
) -> Tally:
    """Judge every result; a rescue is a request the fallback (or rewriter) acted on."""
    for case, res, act in zip(cases, results, acted, strict=True):
        outcome, stage = judge(case, res, case.household.home)
        tally.outcome[outcome] += 1
        tally.by_corpus[case.corpus][outcome] += 1
        tally.by_intent[_intent(case)][outcome] += 1
        if outcome != "correct":
            tally.failure_point[stage] += 1
        if act:
            if outcome == "correct":
                tally.rescued += 1
            else:
                tally.rescued_wrong += 1
        tally.outcomes.append(outcome)
    tally.results = results
    tally.acted = acted
    tally.seconds = time.perf_counter() - started
    return tally


def _intent(case: Case) -> str:
    return case.goal.kind[0] if case.goal else "OutOfScope"


def _fuzzy_request(i: int, case: Case) -> dict[str, Any]:
    home = case.household.home
    return {
        "id": str(i),
        "text": case.heard,
        "context_area": case.area,
        "home": {
            "areas": [
                {"id": a.area_id, "name": a.name, "aliases": list(a.aliases), "floor": a.floor_id}
                for a in home.areas
            ],
            "floors": [{"id": f.floor_id, "name": f.name, "aliases": list(f.aliases)} for f in home.floors],
            "entities": [
                {
                    "id": e.entity_id,
                    "name": e.name,
                    "aliases": list(e.aliases),
                    "domain": e.domain,
                    "area": e.area_id,
                    "device_class": e.device_class,
                }
                for e in home.entities
            ],
        },
    }


def _pct(c: Counter[str], key: str) -> str:
    n = sum(c.values())
    return f"{c[key] / n:.1%}" if n else "-"


def report(
    cases: list[Case],
    tallies: dict[str, Tally],
    args: argparse.Namespace,
    rewriter: RewriteTable | OnlineRewriter | None = None,
) -> str:
    lines = [
        f"Command: `python bench/baselines.py --asr {args.asr} --homes {args.homes} --seed {args.seed}"
        + (f" --limit {args.limit}" if args.limit else "")
        + (f" --split {args.split}" if args.split != "all" else "")
        + (f" --rewrites {args.rewrites}" if args.rewrites else "")
        + (f" --threshold {args.threshold:g}" if args.threshold is not None else "")
        + "`",
        "",
        f"{len(cases):,} requests ({sum(c.goal is not None for c in cases):,} in scope, "
        f"{sum(c.goal is None for c in cases):,} out of scope) from "
        + ", ".join(f"{k} {v:,}" for k, v in Counter(c.corpus for c in cases).items())
        + (f" ({args.split}-split phrasings only)" if args.split != "all" else "")
        + f"; ASR channel `{args.asr}`; {args.homes} generated homes, configured names only.",
        "",
        "| baseline | correct | wrong | no-match | rescued by fallback | wrong rescues "
        "| correct:wrong rescues |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, t in tallies.items():
        ratio = f"{t.rescued / t.rescued_wrong:.1f}" if t.rescued_wrong else ("-" if not t.rescued else "inf")
        lines.append(
            f"| {name} | {_pct(t.outcome, 'correct')} | {_pct(t.outcome, 'wrong')} | "
            f"{_pct(t.outcome, 'no_match')} | {t.rescued:,} | {t.rescued_wrong:,} | {ratio} |"
        )
    lines += [
        "",
        "In-scope requests only (what a user would count as failures):",
        "",
        "| baseline | correct | wrong | no-match |",
        "|---|---|---|---|",
    ]
    for name, t in tallies.items():
        c: Counter[str] = Counter()
        for intent, counts in t.by_intent.items():
            if intent != "OutOfScope":
                c.update(counts)
        lines.append(f"| {name} | {_pct(c, 'correct')} | {_pct(c, 'wrong')} | {_pct(c, 'no_match')} |")
    lines += [
        "",
        "By corpus (correct / wrong / no-match):",
        "",
        "| corpus | " + " | ".join(tallies) + " |",
        "|---|" + "---|" * len(tallies),
    ]
    for corpus in corpora.CORPORA:
        cells = [
            f"{_pct(t.by_corpus[corpus], 'correct')} / {_pct(t.by_corpus[corpus], 'wrong')} / "
            f"{_pct(t.by_corpus[corpus], 'no_match')}"
            for t in tallies.values()
        ]
        lines.append(f"| {corpus} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "By intent, share correct (n):",
        "",
        "| intent | n | " + " | ".join(tallies) + " |",
        "|---|---|" + "---|" * len(tallies),
    ]
    first = next(iter(tallies.values()))
    for intent, counts in sorted(first.by_intent.items(), key=lambda kv: -sum(kv[1].values())):
        n = sum(counts.values())
        lines.append(
            f"| {intent} | {n} | "
            + " | ".join(_pct(t.by_intent[intent], "correct") for t in tallies.values())
            + " |"
        )
    lines += [
        "",
        "Failure point of the requests not handled correctly:",
        "",
        "| baseline | " + " | ".join(("asr", "nlu", "er", "result")) + " |",
        "|---|---|---|---|---|",
    ]
    for name, t in tallies.items():
        lines.append(
            f"| {name} | "
            + " | ".join(str(t.failure_point[s]) for s in ("asr", "nlu", "er", "result"))
            + " |"
        )
    if rewriter is not None and REWRITER in tallies:
        lines += _rewriter_report(cases, tallies, rewriter)
    return "\n".join(lines) + "\n"


def _rewriter_report(
    cases: list[Case], tallies: dict[str, Tally], rewriter: RewriteTable | OnlineRewriter
) -> list[str]:
    """Coverage, wins and losses of the rewriter against Home Assistant today, and of the
    gazetteer against strict for comparison, with example wins and losses."""
    pairs = [("strict+gazetteer", "strict"), (REWRITER, "strict+gazetteer")]
    lines = [
        "",
        (
            f"Online rewriter `{rewriter.version}` ({len(rewriter):,} pooled patterns; consulted only "
            "when strict+gazetteer did nothing). "
            if isinstance(rewriter, OnlineRewriter)
            else f"Rewrite table `{rewriter.version}` ({len(rewriter):,} active rules). "
        )
        + "Each addition against "
        "the configuration it is added to (its base). *Acted on*: for the gazetteer, requests strict "
        "did not match and the gazetteer did; for the rewriter, requests the table rewrote (coverage). "
        "The rescue columns of the first table count exactly these requests, split by final outcome "
        "(correct / not correct), so the rewriter's rescues are relative to strict+gazetteer, not to "
        "strict. A correct rescue need not be a win: the base may have been correct already (an "
        "out-of-scope request the gazetteer matched but that did nothing; a rewrite of a request "
        "Home Assistant already handled). *Win*: the base's outcome was not correct and the "
        "configuration's is; *loss*: the reverse.",
        "",
        "| configuration | base | acted on | % of all | in scope | % of in-scope "
        "| wins | losses | win:loss |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    in_scope = [c.goal is not None for c in cases]
    for name, base in pairs:
        acted, acted_in, wins, losses = _acted(cases, tallies, name, base)
        lines.append(
            f"| {name} | {base} | {acted:,} | {_share(acted, len(cases))} | {acted_in:,} | "
            f"{_share(acted_in, sum(in_scope))} | {len(wins):,} | {len(losses):,} | "
            f"{_ratio(len(wins), len(losses))} |"
        )
    wins, losses = _versus(tallies["strict+gazetteer"], tallies[REWRITER])
    for label, idx in (("wins", wins), ("losses", losses)):
        lines += ["", f"Example rewriter {label} ({len(idx):,} in all):", ""]
        lines += [_example(cases[i], tallies["strict+gazetteer"], tallies[REWRITER], i) for i in _spread(idx)]
        if not idx:
            lines.append("- none")
    return lines


def _acted(
    cases: list[Case], tallies: dict[str, Tally], name: str, base: str
) -> tuple[int, int, list[int], list[int]]:
    """What configuration ``name`` acted on (all, in scope) and its wins and losses against ``base``."""
    t = tallies[name]
    acted_in = sum(a and c.goal is not None for a, c in zip(t.acted, cases, strict=True))
    wins, losses = _versus(tallies[base], t)
    return sum(t.acted), acted_in, wins, losses


def _versus(base: Tally, new: Tally) -> tuple[list[int], list[int]]:
    """Indices of the cases ``new`` got right and ``base`` did not (wins), and the reverse."""
    pairs = list(enumerate(zip(base.outcomes, new.outcomes, strict=True)))
    wins = [i for i, (b, n) in pairs if b != "correct" and n == "correct"]
    losses = [i for i, (b, n) in pairs if b == "correct" and n != "correct"]
    return wins, losses


def _spread(idx: list[int], k: int = EXAMPLES) -> list[int]:
    """Up to ``k`` indices spread evenly over ``idx`` (cases are ordered by corpus)."""
    if len(idx) <= k:
        return idx
    return [idx[j * len(idx) // k] for j in range(k)]


def _example(case: Case, base: Tally, new: Tally, i: int) -> str:
    return (
        f'- "{case.heard}" -> "{new.rewritten[i]}" ({_intent(case)}, {case.corpus}; '
        f"{base.outcomes[i]} -> {new.outcomes[i]})"
    )


def _share(n: int, total: int) -> str:
    return f"{n / total:.1%}" if total else "-"


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.1f}" if b else ("-" if not a else "inf")


def _shares(c: Counter[str]) -> dict[str, Any]:
    """Outcome shares (fractions, 4 places; ``None`` with no requests) and their count."""
    n = sum(c.values())
    return {"n": n} | {k: round(c[k] / n, 4) if n else None for k in ("correct", "wrong", "no_match")}


def figures(
    cases: list[Case],
    tallies: dict[str, Tally],
    args: argparse.Namespace,
    rewriter: RewriteTable | OnlineRewriter | None = None,
) -> dict[str, Any]:
    """The report's tables as JSON: per system (baseline or rewriter) its outcome shares over all
    requests, in-scope requests, per corpus and per intent, its rescues and failure points."""
    systems: dict[str, Any] = {}
    for name, t in tallies.items():
        in_scope: Counter[str] = Counter()
        for intent, counts in t.by_intent.items():
            if intent != "OutOfScope":
                in_scope.update(counts)
        systems[name] = {
            "all": _shares(t.outcome),
            "in_scope": _shares(in_scope),
            "rescued": t.rescued,
            "rescued_wrong": t.rescued_wrong,
            "by_corpus": {corpus: _shares(t.by_corpus[corpus]) for corpus in corpora.CORPORA},
            "by_intent": {intent: _shares(counts) for intent, counts in sorted(t.by_intent.items())},
            "failure_point": {s: t.failure_point[s] for s in ("asr", "nlu", "er", "result")},
            "seconds": round(t.seconds, 2),
        }
    out: dict[str, Any] = {
        "asr": args.asr,
        "homes": args.homes,
        "seed": args.seed,
        "limit": args.limit,
        "split": args.split,
        "requests": len(cases),
        "in_scope": sum(c.goal is not None for c in cases),
        "out_of_scope": sum(c.goal is None for c in cases),
        "requests_by_corpus": dict(Counter(c.corpus for c in cases)),
        "systems": systems,
    }
    if rewriter is not None and REWRITER in tallies:
        versus = []
        for name, base in (("strict+gazetteer", "strict"), (REWRITER, "strict+gazetteer")):
            acted, acted_in, wins, losses = _acted(cases, tallies, name, base)
            versus.append(
                {
                    "configuration": name,
                    "base": base,
                    "acted_on": acted,
                    "acted_on_in_scope": acted_in,
                    "wins": len(wins),
                    "losses": len(losses),
                }
            )
        out["rewriter"] = {
            "folder": str(args.rewrites),
            "kind": "rewriter" if isinstance(rewriter, OnlineRewriter) else "table",
            "version": rewriter.version,
            "size": len(rewriter),
            "threshold": args.threshold,
            "versus": versus,
        }
    return out


def results_name(args: argparse.Namespace, rewriter: RewriteTable | OnlineRewriter | None) -> str:
    """``baselines`` for the default run; other channels, splits and rewriters get their own file."""
    parts = ["baselines"]
    if args.asr != "exact":
        parts.append(args.asr)
    if args.split != "all":
        parts.append(args.split)
    if rewriter is not None:
        parts.append("rewriter" if isinstance(rewriter, OnlineRewriter) else "table")
    return "-".join(parts)


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--asr", default="exact", help="ASR channel: exact, noisy or real (default exact)")
    parser.add_argument("--homes", type=int, default=40, help="generated homes to realise requests in")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="at most this many phrasings per corpus")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--skip-fuzzy", action="store_true", help="leave out baseline (c)")
    parser.add_argument(
        "--rewrites",
        type=Path,
        default=None,
        help="rewrite-table or online-rewriter folder: adds (e) rewrites+strict+gazetteer",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="override an online rewriter's calibrated threshold (the sensitive-intent margin stays on top)",
    )
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="all",
        help="only phrasings of this train/test split (tables are mined on train; default all)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    args = parser.parse_args(argv)
    data_dir = corpora.find_data_dir(args.data_dir)
    if data_dir is None:
        print(
            "no corpora found: `selflearn data fetch` gets them (or pass --data-dir, set SELFLEARN_DATA_DIR)",
            file=sys.stderr,
        )
        return 2
    try:
        rewriter = load_rewriter(args.rewrites, args.threshold) if args.rewrites else None
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    cases = build_cases(data_dir, args.homes, args.asr, args.seed, args.limit, args.split)
    canon = Canonicaliser()
    tallies: dict[str, Tally] = {}
    for name in BASELINES:
        if name == "strict+fuzzy" and (args.skip_fuzzy or not fuzzy_client.available()):
            print("skipping strict+fuzzy: run bash bench/fuzzy_ngram/setup.sh", file=sys.stderr)
            continue
        tallies[name] = run(cases, name, canon, None)
        print(f"{name}: {dict(tallies[name].outcome)} in {tallies[name].seconds:.1f} s", file=sys.stderr)
    if rewriter is not None:
        t = tallies[REWRITER] = run_rewriter(cases, rewriter, tallies["strict+gazetteer"])
        print(
            f"{REWRITER}: {dict(t.outcome)}, {sum(t.acted)} rewritten, in {t.seconds:.1f} s", file=sys.stderr
        )
    text = report(cases, tallies, args, rewriter)
    print(text)
    if args.out:
        args.out.write_text(text)
    write_results(
        results_name(args, rewriter),
        figures(cases, tallies, args, rewriter),
        seconds=time.perf_counter() - started,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
