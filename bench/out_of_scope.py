"""Out-of-scope baseline (issue 29, item 7): how often real out-of-scope requests become actions.

    python bench/out_of_scope.py [--rewriter FOLDER] [--limit N] [--homes 40] [--seed 0]

Most requests to a home assistant are out of scope (jokes, e-mail, music services it lacks); the
target is that selflearn turns at most 0.5 % of them into an action, next to the gazetteer's
share. The requests are real phrasings the simulator never says (``../shared/data``):

* ``clinc150_oos``: CLINC150's out-of-scope utterances (label ``oos``). Only ``oos_val`` and
  ``oos_train`` are stored (``oos_test`` is held out upstream); both are used by default
  (``--clinc-keys`` picks), and neither is seen by selflearn's training.
* ``hwu64``: HWU64 utterances the project's corpus mapping marks out of scope
  (:data:`~selflearn.simulation.corpora.OUT_OF_SCOPE`, as ``bench/baselines.py`` splits them),
  test-split phrasings only (training populations say the train split; ``--hwu64-split all``).
* ``slurp``: SLURP devel utterances mapped out of scope, minus any pattern HWU64's train split
  also has (SLURP is only said by held-out populations).

Each request is typed (exact text) to a device of a generated home (``--homes`` homes seeded as
in ``bench/baselines.py``, configured names only) and handled by the reference assistant
(:class:`~selflearn.assistant.pipeline.Assistant`):

(a) as it ships, strict -> gazetteer: does it *act* (match an intent, resolve it and execute
    something: a state change or a read-only answer) or refuse;
(b) with the online rewriter behind its NLU (``rewrite_when="on_failure"``: only requests the
    NLU refused are offered, with ``failed=True``), global layer, no decision budget (as the
    A/B replays, so figures do not depend on machine load): the requests the rewrite turns into
    an action the original did not cause.

(c) the same rewriter asking first about its guesses (``RewriterConfig(confirm="guesses")``, an
    assistant that asks): the requests it asks "Did you mean ...?" about (a question on an
    out-of-scope request is a cost, target <= 2 %) and those it still acts on;
(c') as (c), the ranked layer also asking about guesses scored from half its calibrated acting
    bar up (``selflearn.evaluate.ab.ASK_SCALE``; the replay arm ``confirm-low``);
(d) as (c) with the scope model (``selflearn train scope``: which requests nobody can help with,
    learned from the training logs' behaviour alone) in ``--scope-rewriter`` (default: the
    flagship's copy with ``scope/``, made by ``selflearn train scope --store
    bench/.cache/online/train-360mix.duckdb --rewriter bench/.cache/online/rewriter-train-360mix-k5-scope``
    after copying the flagship folder there).

The table is printed and written as JSON to ``docs/results/out_of_scope.json`` (or
``$SELFLEARN_RESULTS``).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from selflearn.assistant.devices import HomeState
from selflearn.assistant.execute import Effect
from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.core.errors import ConfigError
from selflearn.core.schema import DeviceContext
from selflearn.evaluate import write_results
from selflearn.evaluate.ab import ASK_SCALE
from selflearn.rewrite.rewriter import Rewriter, RewriterConfig
from selflearn.simulation import corpora
from selflearn.simulation.population import Household, make_household

NOW = datetime(2026, 1, 7, 10, 0, tzinfo=UTC)
FLAGSHIP = Path("bench/.cache/online/rewriter-train-360mix-k5")
SCOPE_FLAGSHIP = Path("bench/.cache/online/rewriter-train-360mix-k5-scope")
SOURCES = ("clinc150_oos", "hwu64", "slurp")
EXAMPLES = 10
READ_ONLY = frozenset(
    {
        "HassGetState",
        "HassGetWeather",
        "HassGetCurrentTime",
        "HassGetCurrentDate",
        "HassClimateGetTemperature",
        "HassTimerStatus",
    }
)
"""Intents whose execution answers rather than changes the home."""


@dataclass
class Request:
    """One out-of-scope request: its text, where it came from and the home it is said in."""

    source: str
    text: str
    label: str  # the corpus's own intent label
    household: Household
    device: tuple[str, str | None, str]


@dataclass
class Tally:
    """What happened to one source's requests."""

    requests: int = 0
    strict_acts: int = 0
    gazetteer_acts: int = 0  # strict+gazetteer acting (strict's included)
    gazetteer_answers: int = 0  # of which read-only
    offered: int = 0  # refused by the NLU, so offered to the rewriter
    rewritten: int = 0
    rewriter_acts: int = 0  # rewrites that became an action the original did not cause
    rewriter_answers: int = 0  # of which read-only
    acted_intents: Counter[str] = field(default_factory=Counter)
    rewriter_intents: Counter[str] = field(default_factory=Counter)
    gazetteer_examples: list[dict[str, str]] = field(default_factory=list)
    rewriter_examples: list[dict[str, str]] = field(default_factory=list)
    rewrite_only_examples: list[dict[str, str]] = field(default_factory=list)
    asking: dict[str, Counter[str]] = field(default_factory=dict)
    """Per asking arm: ``asks`` (questions), ``acts`` (actions without a question)."""
    asked_examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)


def load_requests(
    data_dir: Path,
    homes: int,
    seed: int,
    limit: int | None,
    clinc_keys: tuple[str, ...],
    hwu64_split: str,
) -> dict[str, list[Request]]:
    households = [make_household(seed, i, "bench") for i in range(homes)]
    rng = random.Random(seed)
    texts: dict[str, list[tuple[str, str]]] = {}
    clinc = json.loads((data_dir / "clinc150" / "data_full_train_val.json").read_text())
    texts["clinc150_oos"] = [(u, "oos") for key in clinc_keys for u, label in clinc[key] if label == "oos"]
    hwu = corpora.load_corpus("hwu64", data_dir)
    hwu_train = {p.pattern for p in hwu if p.split == "train"}
    texts["hwu64"] = [
        (p.pattern, p.original_intent or "")
        for p in hwu
        if p.intent == corpora.OUT_OF_SCOPE and (hwu64_split == "all" or p.split == hwu64_split)
    ]
    texts["slurp"] = [
        (p.pattern, p.original_intent or "")
        for p in corpora.load_corpus("slurp", data_dir)
        if p.intent == corpora.OUT_OF_SCOPE and p.pattern not in hwu_train
    ]
    out: dict[str, list[Request]] = {}
    for source in SOURCES:
        rows = texts[source]
        if limit:
            rows = rng.sample(rows, min(limit, len(rows)))
        out[source] = []
        for text, label in rows:
            hh = rng.choice(households)
            out[source].append(Request(source, " ".join(text.split()), label, hh, rng.choice(hh.devices)))
    return out


def _area_name(hh: Household, area_id: str | None) -> str | None:
    return next((a.name for a in hh.home.areas if a.area_id == area_id), None)


def _is_action(effect: Effect | None) -> bool:
    return effect is not None


def measure(
    requests: list[Request], control: Assistant, assistant: Assistant, asking: dict[str, Assistant]
) -> Tally:
    """Arm (a) with ``control`` (no rewriter), arm (b) with ``assistant`` (rewriter behind) and
    the ``asking`` arms (an assistant that asks, by name)."""
    t = Tally(requests=len(requests))
    for i, req in enumerate(requests):
        _asking(t, i, req, asking)
        home = req.household.home
        device_id, area_id, device_type = req.device
        state = HomeState.initial(home)
        nlu, _, _, effect = control.run_text(req.text, state.copy(), NOW, area_id, explain_failures=False)
        if _is_action(effect):
            assert effect is not None
            t.gazetteer_acts += 1
            t.gazetteer_answers += effect.intent in READ_ONLY
            t.acted_intents[effect.intent] += 1
            if nlu.trace.matcher == "strict":
                t.strict_acts += 1
            if len(t.gazetteer_examples) < EXAMPLES:
                t.gazetteer_examples.append(
                    {"text": req.text, "matcher": nlu.trace.matcher or "", "intent": effect.intent}
                )
        _, resolution = control.understand(req.text, state, area_id, explain_failures=False)
        if resolution is None or not resolution.trace.ok:
            t.offered += 1  # what the pipeline offers the rewriter (failed=True)
        handled = assistant.handle(
            spoken=req.text,
            state=state,
            turn_id=f"oos-{req.source}-{i}",
            session_id=f"oos-{req.source}-{i}",
            user_id=f"{home.home_id}-u0",
            household_id=home.home_id,
            device=DeviceContext(
                device_id=device_id,
                device_type="chat" if device_type == "chat" else "speaker",
                area=_area_name(req.household, area_id),
            ),
            timestamp=NOW,
            rng=random.Random(i),
            typed=True,
        )
        if not handled.rewritten:
            continue
        t.rewritten += 1
        rewrite = handled.turn.rewrite
        rewritten_text = rewrite.rewritten_text if rewrite is not None else handled.turn.text
        if _is_action(handled.effect) and handled.effect_without_rewrite is None:
            assert handled.effect is not None
            t.rewriter_acts += 1
            t.rewriter_answers += handled.effect.intent in READ_ONLY
            t.rewriter_intents[handled.effect.intent] += 1
            t.rewriter_examples.append(
                {
                    "text": req.text,
                    "rewrite": rewritten_text,
                    "intent": handled.effect.intent,
                    "label": req.label,
                }
            )
        elif len(t.rewrite_only_examples) < EXAMPLES:
            t.rewrite_only_examples.append({"text": req.text, "rewrite": rewritten_text})
    return t


def _asking(t: Tally, i: int, req: Request, asking: dict[str, Assistant]) -> None:
    """What each asking arm does with one request: a question, an action, or nothing."""
    home = req.household.home
    device_id, area_id, _ = req.device
    for name, assistant in asking.items():
        counts = t.asking.setdefault(name, Counter())
        handled = assistant.handle(
            spoken=req.text,
            state=HomeState.initial(home),
            turn_id=f"oos-{req.source}-{i}",
            session_id=f"oos-{req.source}-{i}",
            user_id=f"{home.home_id}-u0",
            household_id=home.home_id,
            device=DeviceContext(device_id=device_id, area=_area_name(req.household, area_id)),
            timestamp=NOW,
            rng=random.Random(i),
            typed=True,
        )
        if handled.question is not None:
            counts["asks"] += 1
            examples = t.asked_examples.setdefault(name, [])
            if len(examples) < EXAMPLES:
                examples.append({"text": req.text, "question": handled.question.text})
        elif handled.rewritten and _is_action(handled.effect) and handled.effect_without_rewrite is None:
            counts["acts"] += 1


def _share(n: int, total: int) -> float | None:
    return round(n / total, 4) if total else None


def _upper95(n: int, total: int) -> float | None:
    """Wilson score upper bound (95 %) of a share ``n / total``."""
    if not total:
        return None
    z = 1.96
    p = n / total
    centre = p + z * z / (2 * total)
    margin = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return round((centre + margin) / (1 + z * z / total), 4)


def _spread(rows: list[dict[str, str]], k: int = EXAMPLES) -> list[dict[str, str]]:
    if len(rows) <= k:
        return rows
    return [rows[j * len(rows) // k] for j in range(k)]


def figures_of(t: Tally) -> dict[str, Any]:
    n = t.requests
    return {
        "requests": n,
        "strict_acts_share": _share(t.strict_acts, n),
        "gazetteer_acts_share": _share(t.gazetteer_acts, n),
        "gazetteer_acts_upper95": _upper95(t.gazetteer_acts, n),
        "gazetteer_answers_share": _share(t.gazetteer_answers, n),
        "rewriter_acts_share": _share(t.rewriter_acts, n),
        "rewriter_acts_upper95": _upper95(t.rewriter_acts, n),
        "rewriter_answers_share": _share(t.rewriter_answers, n),
        "with_rewriter_acts_share": _share(t.gazetteer_acts + t.rewriter_acts, n),
        "rewritten_share": _share(t.rewritten, n),
        "counts": {
            "strict_acts": t.strict_acts,
            "gazetteer_acts": t.gazetteer_acts,
            "gazetteer_answers": t.gazetteer_answers,
            "offered_to_rewriter": t.offered,
            "rewritten": t.rewritten,
            "rewriter_acts": t.rewriter_acts,
            "rewriter_answers": t.rewriter_answers,
        },
        "gazetteer_acted_intents": dict(t.acted_intents.most_common()),
        "rewriter_acted_intents": dict(t.rewriter_intents.most_common()),
        "gazetteer_examples": t.gazetteer_examples,
        "rewriter_examples": _spread(t.rewriter_examples),
        "rewritten_without_action_examples": t.rewrite_only_examples,
        "asking": {
            name: {
                "asks_share": _share(c["asks"], n),
                "asks_upper95": _upper95(c["asks"], n),
                "acts_share": _share(c["acts"], n),
                "acts_upper95": _upper95(c["acts"], n),
                "asks": c["asks"],
                "acts": c["acts"],
                "examples": t.asked_examples.get(name, []),
            }
            for name, c in t.asking.items()
        },
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def report(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| source | requests | strict acts | strict+gazetteer acts (95% upper) | rewriter adds (95% upper) "
        "| with rewriter | rewritten | read-only answers: gazetteer / rewriter |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for source, f in results.items():
        lines.append(
            f"| {source} | {f['requests']:,} | {_pct(f['strict_acts_share'])} | "
            f"{_pct(f['gazetteer_acts_share'])} ({_pct(f['gazetteer_acts_upper95'])}) | "
            f"{_pct(f['rewriter_acts_share'])} ({_pct(f['rewriter_acts_upper95'])}) | "
            f"{_pct(f['with_rewriter_acts_share'])} | {_pct(f['rewritten_share'])} | "
            f"{_pct(f['gazetteer_answers_share'])} / {_pct(f['rewriter_answers_share'])} |"
        )
    lines += [
        "",
        '| source | arm | asks "Did you mean ...?" (95% upper) | acts without asking (95% upper) |',
        "|---|---|---|---|",
    ]
    for source, f in results.items():
        for name, a in f["asking"].items():
            lines.append(
                f"| {source} | {name} | {_pct(a['asks_share'])} ({_pct(a['asks_upper95'])}) | "
                f"{_pct(a['acts_share'])} ({_pct(a['acts_upper95'])}) |"
            )
    for source, f in results.items():
        lines += ["", f"{source}: rewriter actions ({f['counts']['rewriter_acts']} in all)"]
        lines += [f'- "{e["text"]}" -> "{e["rewrite"]}" -> {e["intent"]}' for e in f["rewriter_examples"]]
        lines += [f"{source}: gazetteer/strict actions ({f['counts']['gazetteer_acts']} in all)"]
        lines += [f'- "{e["text"]}" ({e["matcher"]}) -> {e["intent"]}' for e in f["gazetteer_examples"][:5]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rewriter", type=Path, default=None, help=f"online rewriter folder (default {FLAGSHIP})"
    )
    parser.add_argument(
        "--scope-rewriter",
        type=Path,
        default=SCOPE_FLAGSHIP,
        help=f"the rewriter with a scope model for arm (d) (default {SCOPE_FLAGSHIP}; skipped if missing)",
    )
    parser.add_argument("--homes", type=int, default=40, help="generated homes to say the requests in")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="at most this many requests per source")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--clinc-keys", default="oos_val,oos_train", help="CLINC150 keys to read")
    parser.add_argument("--hwu64-split", choices=("train", "test", "all"), default="test")
    args = parser.parse_args(argv)
    folder = args.rewriter or FLAGSHIP
    data_dir = corpora.find_data_dir(args.data_dir)
    if data_dir is None:
        print("no corpora found: pass --data-dir or set SELFLEARN_DATA_DIR", file=sys.stderr)
        return 2
    if not (folder / "model.json").exists():
        print(f"no online rewriter at {folder}: pass --rewriter FOLDER", file=sys.stderr)
        return 2
    try:
        rewriter = Rewriter.load(folder, RewriterConfig(personal=False, budget_ms=float("inf")))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    base = AssistantConfig(nlu="strict+gazetteer", asr="exact", rewrite_when="on_failure")
    control = Assistant(base)
    assistant = Assistant(base, nlu=control.nlu, rewriter=rewriter)
    asks = replace(base, ask=True)
    guesses = RewriterConfig(personal=False, budget_ms=float("inf"), confirm="guesses")
    plain = Rewriter.load(folder, guesses)
    asking = {"asking about guesses": Assistant(asks, nlu=control.nlu, rewriter=plain)}
    if plain.ranker_ is not None:  # the replay arm confirm-low: ranked guesses from half the acting bar
        low = Rewriter.load(folder, replace(guesses, ask_threshold=ASK_SCALE * plain.ranker_.threshold))
        asking["asking from half the acting bar"] = Assistant(asks, nlu=control.nlu, rewriter=low)
    if (args.scope_rewriter / "scope" / "model.json").exists():
        scoped = Rewriter.load(args.scope_rewriter, guesses)
        asking["asking about guesses + scope model"] = Assistant(asks, nlu=control.nlu, rewriter=scoped)
    keys = tuple(k.strip() for k in args.clinc_keys.split(",") if k.strip())
    requests = load_requests(data_dir, args.homes, args.seed, args.limit, keys, args.hwu64_split)
    results: dict[str, dict[str, Any]] = {}
    for source, reqs in requests.items():
        t0 = time.perf_counter()
        results[source] = figures_of(measure(reqs, control, assistant, asking))
        results[source]["seconds"] = round(time.perf_counter() - t0, 1)
        print(f"{source}: {len(reqs)} requests in {results[source]['seconds']} s", file=sys.stderr)
    print(report(results))
    seconds = time.perf_counter() - started
    write_results(
        "out_of_scope",
        {
            "rewriter": {
                "folder": str(folder),
                "version": rewriter.version,
                "layer": "global",
                "budget_ms": None,
                "rewrite_when": "on_failure",
            },
            "assistant": "strict+gazetteer (Home Assistant as it ships), typed exact text",
            "homes": args.homes,
            "seed": args.seed,
            "limit": args.limit,
            "clinc_keys": list(keys),
            "hwu64_split": args.hwu64_split,
            "sources": results,
            "run_seconds": round(seconds, 1),
        },
        seconds=seconds,
    )
    print(f"run time {seconds:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
