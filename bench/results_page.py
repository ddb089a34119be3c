"""Write ``docs/benchmarks.md`` from the figures the benchmarks wrote to ``docs/results/*.json``.

    python bench/results_page.py            # rewrite docs/benchmarks.md
    python bench/results_page.py --check    # exit 1 when the page is not what the results give

Every number on the page comes from a results file, which names the command, machine, date and
commit that produced it; the prose here says what each figure means and never states a number.
A benchmark without a results file is listed as not re-run, with a pointer to the history page.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selflearn.evaluate.results import RESULTS, read_results

PAGE = RESULTS.parent / "benchmarks.md"

Result = dict[str, Any]


def pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f} %"


def num(x: float | None, fmt: str = ",.0f") -> str:
    return "-" if x is None else format(x, fmt)


def ratio(x: float | None) -> str:
    return "no loss" if x is None else f"{x:.1f}"


def provenance(r: Result) -> str:
    m = r["machine"]
    minutes = r.get("seconds", 0) / 60
    took = f", {minutes:.0f} min" if minutes >= 1 else f", {r.get('seconds', 0):.0f} s"
    return (
        f"`{r['command']}` -- {r['date']}, commit `{r['commit']}`, {m['cpu']} ({m['cores']} cores, "
        f"{m['memory_gib']} GiB){took}, simulator `{r['simulation_version']}`."
    )


def table(header: list[str], rows: list[list[str]], align: str = "") -> str:
    marks = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else "---" for a in marks]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --- sections ------------------------------------------------------------------------------------


def baselines(r: Result) -> str:
    f = r["figures"]
    systems = f["systems"]
    rows = [
        [
            name,
            pct(s["in_scope"]["correct"]),
            pct(s["in_scope"]["wrong"]),
            pct(s["in_scope"]["no_match"]),
            num(s["rescued"]),
            num(s["rescued_wrong"]),
        ]
        for name, s in systems.items()
    ]
    return (
        f"{f['requests']:,} requests of HWU64, SLURP devel and Home Assistant's test sentences, "
        f"realised in {f['homes']} generated homes with their configured names, recognised with the "
        f"`{f['asr']}` channel; {f['in_scope']:,} are in scope (the assistant can do them), "
        f"{f['out_of_scope']:,} are not (the right answer is a refusal). Correct = did what was "
        "asked; wrong = did something else; no match = did nothing. In-scope requests:\n\n"
        + table(["system", "correct", "wrong", "no match", "rescued by the fallback", "of them wrong"], rows)
    )


def online(r: Result) -> str:
    f = r["figures"]
    fit = f["fit"]
    cal = fit["calibration"]["known_failed"]
    head = (
        f"Trained on `{Path(f['train_store']).name}` ({fit['turns']:,} turns, {fit['households']} "
        f"households; k = {f['k']} users, calibration target {f['target_ratio']:g} estimated wins per "
        f"loss: threshold {cal['threshold']:.3f} behind the NLU); replayed behind Home Assistant's "
        f"strict -> gazetteer stack (`{f['mode']}`) on new households.\n\n"
    )
    rows = []
    for name, pop in f["populations"].items():
        control = pop["arms"]["control"]
        for arm in ("global", "personal"):
            a = pop["arms"].get(arm)
            if a is None:
                continue
            low, high = a["defect_reduction_interval"]
            rows.append(
                [
                    f"{name} ({pop['households']} x {pop['days']:g} d, {pop['asr']})",
                    arm,
                    f"{pct(a['defect_rate_without'])} -> {pct(a['defect_rate'])}",
                    f"**{pct(a['defect_reduction'])}** ({pct(low)}-{pct(high)})",
                    pct(a["rescue_rate"]),
                    f"{a['wins']:,} / {a['losses']:,}",
                    num(a["wrong_actions"]),
                    ratio(a["wins_per_wrong_action"]),
                    f"{pct(control['fallback_rescue_rate'])} ({ratio(_per(control))})",
                ]
            )
    return head + table(
        [
            "population",
            "arm",
            "defect rate without -> with",
            "reduction (95 % interval)",
            "rescue rate",
            "wins / losses",
            "wrong actions",
            "wins per wrong action",
            "gazetteer: rescue rate (per wrong action)",
        ],
        rows,
        "llrrrrrrr",
    )


def _per(control: Result) -> float | None:
    wrong = control.get("fallback_wrong_actions") or 0
    return control["fallback_rescues"] / wrong if wrong else None


def mining(r: Result) -> str:
    f = r["figures"]
    t = f["table"]
    head = (
        f"Mined from `{Path(f['mining_store']['path']).name}` ({t['turns']:,} turns, {t['users']:,} users, "
        f"{t['households']} homes; signals: {f['mining_store']['signals']}): {t['states']:,} patterns, "
        f"**{t['rules']} active rewrites**, {t['demoted']} demoted. Replayed on new households with the "
        "table in front of the NLU:\n\n"
    )
    rows = []
    for name, rep in f["replays"].items():
        a = rep["arms"]["table"]
        rows.append(
            [
                name,
                f"{a['rewritten']:,}",
                f"{a['wins']:,} / {a['losses']:,}",
                f"{pct(a['defect_rate_without'])} -> {pct(a['defect_rate'])}",
                pct(a["rescue_rate"]),
                pct(a["false_rewrite_rate"]),
            ]
        )
    return head + table(
        [
            "replay",
            "rewritten turns",
            "wins / losses",
            "defect rate without -> with",
            "rescue rate",
            "false-rewrite rate",
        ],
        rows,
    )


def mining_engines(r: Result) -> str:
    f = r["figures"]
    s = f["seconds"]
    return (
        f"The same mining job on {f['turns']:,} turns: DuckDB {s['duckdb']:.1f} s, Spark `{f['master']}` "
        f"{s['spark']:.1f} s; identical tables: **{'yes' if f['identical'] else 'NO'}** "
        f"({f['rules']:,} rules)."
    )


def defects(r: Result) -> str:
    f = r["figures"]
    rows = []
    for name, pop in f["populations"].items():
        for det, d in pop["detectors"].items():
            rows.append(
                [
                    name,
                    det,
                    f"**{d['pr_auc']:.3f}**",
                    f"{d['threshold']:.2f}",
                    f"{d['precision']:.3f}",
                    f"{d['recall']:.3f}",
                    f"**{d['f1']:.3f}**",
                ]
            )
    return (
        "P(defect) per turn against simulation truth, on held-out households and phrasings; the "
        "threshold is the best-F1 one on the training population.\n\n"
        + table(
            ["population", "detector", "PR-AUC", "threshold", "precision", "recall", "F1"], rows, "llrrrrr"
        )
    )


def rephrase(r: Result) -> str:
    f = r["figures"]
    rows = []
    for name, s in f["sets"].items():
        for det, d in s["detectors"].items():
            rows.append(
                [
                    name,
                    det,
                    f"{d['precision']:.3f}",
                    f"{d['recall']:.3f}",
                    f"**{d['f1']:.3f}**",
                    pct(d["false_link_rate_under_20_s"]),
                ]
            )
    return (
        "Which earlier turn of the session a turn rephrases (or none), against simulation truth; the last "
        "column is the share of new requests said within 20 s of the last one that were wrongly linked.\n\n"
        + table(
            ["set", "detector", "precision", "recall", "F1", "false links (new request < 20 s)"],
            rows,
            "llrrrr",
        )
    )


def fpi(r: Result) -> str:
    f = r["figures"]
    classes = ["false_wake", "asr", "nlu", "er", "result", "correct"]
    product = f.get("product_model", "FpiModel mixed")
    rows = []
    subsets = []
    for name, models in f["summary"].items():
        if "," in name:  # a subset of a population (voices): one line below the table
            m = models.get(product)
            if m is not None:
                subsets.append(f"{name.split(', ', 1)[1]} {m['accuracy']:.3f}")
            continue
        for model, m in models.items():
            if model not in ("rule baseline", product):
                continue
            rows.append(
                [
                    name,
                    model,
                    f"{m['turns']:,}",
                    f"**{m['accuracy']:.3f}**",
                    *[num(m["f1"][c], ".3f") for c in classes],
                ]
            )
        p = f.get("populations", {}).get(name)
        if p is not None:
            rows.append(
                [
                    name,
                    "annotator proxy",
                    "",
                    f"{p['proxy_accuracy']:.3f}",
                    *[num(p["proxy_f1"][c], ".3f") for c in classes],
                ]
            )
            rows.append(
                [
                    name,
                    "product / proxy",
                    "",
                    f"**{p['ratio']['accuracy']:.3f}**",
                    *[num(p["ratio"]["f1"].get(c), ".2f") for c in classes],
                ]
            )
    speed = f.get("turns_per_second")
    return (
        "The first pipeline stage that failed, per turn, against simulation truth (accuracy and F1 per "
        "class); the rule baseline reads the stage traces only, the annotator proxy is the same model "
        "told the words said. Target (issue 43): product / proxy >= 0.95 on accuracy, >= 0.90 per class."
        + (f" Scoring, cold, end to end: **{speed:,}** turns/s (target 1,700)." if speed else "")
        + "\n\n"
        + table(
            ["population", "model", "turns", "accuracy", *[f"{c} F1" for c in classes]], rows, "llrrrrrrrr"
        )
        + (f"\n\n{product}'s accuracy on test-real by voice: " + "; ".join(subsets) + "." if subsets else "")
    )


def rewrite_latency(r: Result) -> str:
    f = r["figures"]
    rows = [
        [
            m["mode"],
            "on" if m["pattern_cache"] else "off",
            f"{m['decisions']:,}",
            f"**{m['wall_ms']['p50']:.3f}**",
            f"**{m['wall_ms']['p99']:.3f}**",
            f"{m['cpu_ms']['p50']:.3f}",
        ]
        for m in f["modes"]
    ]
    return (
        f"One decision of the online rewriter, in process, over a global index of "
        f"{f['index']['patterns']:,} patterns; resident memory {f['resident_mb']['peak']:,} MB, "
        f"{f['errors']} errors.\n\n"
        + table(
            ["mode", "pattern cache", "decisions", "wall p50 ms", "wall p99 ms", "CPU p50 ms"], rows, "llrrrr"
        )
    )


def http_load(r: Result) -> str:
    f = r["figures"]
    lat = f["latency_ms"]
    return (
        f"`selflearn serve` on loopback, open-loop load: {f['requests']:,} requests at "
        f"{f['achieved_rate']:g}/s (target {f['rate_target']:g}/s for {f['duration_s']:g} s): p50 "
        f"{lat['p50']:.2f} ms, **p99 {lat['p99']:.2f} ms**, {f['errors']} errors, {f['fail_open']} "
        f"fail-opens; server resident memory {f['server_rss_mb']['peak']} MB."
    )


def reliability(r: Result) -> str:
    f = r["figures"]
    parts = f.get("parts", {})

    def fig(key: str, fmt: str = ",") -> str:
        value = f.get(key)
        return "not measured" if value is None else format(value, fmt)

    rows = [
        ["fuzzing", "schemathesis cases over every operation / 5xx / crashes or hangs",
         f"{fig('fuzz_cases')} / **{fig('fuzz_5xx')}** / **{fig('fuzz_crashes')}**", "fuzz"],
        ["kill -9", "kills / acknowledged rows lost or doubled / stores that did not open",
         f"{fig('kills')} / **{fig('kills_lost_rows')}** / **{fig('kills_unopenable')}**", "kills"],
        ["load", "achieved requests/s at the top rate / rewrite p99 ms",
         f"{fig('load_rps')} / **{fig('load_p99_ms')}**", "load"],
        ["soak", "resident memory slope MB/min / failed requests",
         f"**{fig('soak_rss_slope_mb_per_min')}** / **{fig('soak_failed_requests')}**", "soak"],
        ["safety", "sensitive actions or polarity flips without a question",
         f"**{fig('sensitive_unasked')}**", "safety"],
        ["privacy", "runs leaving a trace of a forgotten household",
         f"**{fig('forget_residue')}**", "forget"],
    ]  # fmt: skip
    table_rows = []
    for what, measure, value, part in rows:
        info = parts.get(part)
        when = f"{info['date']}, commit `{info['commit']}`" if info else "not run"
        table_rows.append([what, measure, value, when])
    text = table(["check", "figure", "value", "measured"], table_rows, "llrl")
    load = parts.get("load")
    if load:
        steps = "; ".join(
            f"{s['rate']:g}/s ({s.get('achieved_rps')}): {s['rewrite']['p99_ms']} ms"
            for s in load.get("steps", [])
        )
        ceiling = f.get("load_ceiling_rps")
        text += (
            f"\n\nLoad steps (mixed traffic, {pct(load.get('ingest_share'), 0)} ingest; offered rate "
            f"(achieved): rewrite p99): {steps}. "
            + (f"Highest rate with rewrite p99 <= 10 ms and nothing failed: **{ceiling:g}/s**." if ceiling
               else "No step kept rewrite p99 <= 10 ms.")
        )  # fmt: skip
    burst = parts.get("burst")
    if burst:
        b = burst["figures"]
        text += (
            f"\n\nBurst at {burst['factor']:g}x {burst['rate']:g}/s: {b['burst_rps']}/s achieved, "
            f"{b['burst_shed']} requests shed (429 or fail-open), {b['burst_timeouts']} client timeouts, "
            f"{b['burst_failed']} failed."
        )
    return text + "\n\nEach check, its command and what it means: [reliability.md](reliability.md)."


def integration(r: Result) -> str:
    f = r["figures"]
    cases = [
        ("understood", "understood by Home Assistant (no call)"),
        ("understood_logging", "understood, turn logging on (in the background)"),
        ("failed_no_rewrite", "failed, selflearn has no rewrite (the cost of asking)"),
        ("failed_rewritten", "failed, rewritten and run again"),
    ]
    rows = []
    for c in f["cores"].values():
        for key, label in cases:
            o, rt = c[key]["overhead_ms"], c[key]["round_trip_ms"]
            rows.append(
                f"| {c['home_assistant']} | {label} | {o['p50']:.2f} | **{o['p99']:.2f}** | "
                f"{rt['p50']:.1f} / {rt['p99']:.1f} |"
            )
    n = next(iter(f["cores"].values()))["n"]
    text = (
        f"Home Assistant cores {', '.join(f['ha_versions_tested'])}; {n:,} requests per case through "
        "`conversation.async_converse` with the selflearn agent and a real "
        "`selflearn serve`. *Overhead*: the request's time minus Home Assistant's own first answer, "
        "in the same request (ms).\n\n"
        "| core | request | overhead p50 | overhead p99 | round trip p50 / p99 |\n|---|---|---:|---:|---:|\n"
        + "\n".join(rows)
    )
    if "wyoming_ms_p50" in f:
        text += (
            f"\n\nWyoming round trip, a connection and a `transcript` per request as Home Assistant makes "
            f"it: p50 {f['wyoming_ms_p50']:.2f} ms, **p99 {f['wyoming_ms_p99']:.2f} ms**."
        )
    return text


def wyoming(r: Result) -> str:
    f = r["figures"]
    ways = f["ways"]
    parts = [
        f"{name.replace('_', ' ')}: p50 {w['latency_ms']['p50']:.2f} ms, "
        f"**p99 {w['latency_ms']['p99']:.2f} ms** ({w['server_cpu_ms_per_request']:.2f} CPU-ms per "
        "request in the server)"
        for name, w in ways.items()
    ]
    return (
        f"`selflearn wyoming` on loopback, {f['requests']:,} requests one at a time "
        f"({f['distinct_texts']:,} distinct texts; rewriter `{f['rewriter']}`): " + "; ".join(parts) + "."
    )


def popularity(r: Result) -> str:
    f = r["figures"]
    rows = []
    for name, law in f["laws"].items():
        label = name if law["exponent"] is None else f"{name} {law['exponent']:g}"
        rows.append(
            f"| {label} | {law['turns']:,} | {law['corpus_phrasings_said']:,} | "
            f"{law['corpus_phrasings_said_by_k_users']:,} | **{law['rules_active']}** | "
            f"{law['rejected'].get('source too rare', 0):,} |"
        )
    first = next(iter(f["laws"].values()))
    return (
        f"{first['households']} households x {first['days']:g} days on held-out real phrasings "
        f"({', '.join(first['corpora'])}), mined at k = {f['k']}:\n\n"
        "| phrasing popularity | turns | corpus phrasings said | said by >= k users | active rules | "
        "sources rejected as too rare |\n|---|---:|---:|---:|---:|---:|\n" + "\n".join(rows)
    )


def out_of_scope(r: Result) -> str:
    f = r["figures"]
    rows = [
        f"| {name} | {src['requests']:,} | {pct(src['strict_acts_share'])} | "
        f"{pct(src['gazetteer_acts_share'])} | **{pct(src['rewriter_acts_share'])}** "
        f"(<= {pct(src['rewriter_acts_upper95'])}) | "
        f"{pct(src['rewriter_answers_share'])} |"
        for name, src in f["sources"].items()
    ]
    return (
        "Real out-of-scope phrasings the simulator never uses, typed into generated homes. *Acts*: "
        "did something (a read-only answer included); the rewriter's share counts requests that "
        "acted only because of its rewrite (95 % upper bound in brackets). "
        "Target (issue 29): <= 0.5 %.\n\n"
        "| source | requests | strict acts | strict -> gazetteer acts | rewriter adds | of which answers |\n"
        "|---|---:|---:|---:|---:|---:|\n" + "\n".join(rows) + _asking_rows(f)
    )


def _asking_rows(f: dict[str, Any]) -> str:
    rows = [
        f"| {name} | {arm} | **{pct(a['acts_share'])}** (<= {pct(a['acts_upper95'])}) | "
        f"**{pct(a['asks_share'])}** (<= {pct(a['asks_upper95'])}) |"
        for name, src in f["sources"].items()
        for arm, a in src.get("asking", {}).items()
        if not _same_as_without_scope(src.get("asking", {}), arm)
    ]
    same = any(
        _same_as_without_scope(src.get("asking", {}), arm)
        for src in f["sources"].values()
        for arm in src.get("asking", {})
    )
    if not rows:
        return ""
    return (
        '\n\nThe rewriter asking "Did you mean ...?" about its guesses instead of acting on them '
        "(targets: acts <= 0.5 %, asks <= 2 %); the scope model is learned from the training logs' "
        "behaviour (`selflearn train scope`).\n\n"
        "| source | arm | acts without asking | asks |\n|---|---|---:|---:|\n"
        + "\n".join(rows)
        + ("\n\nA scope-model row not shown measured the same as without the scope model." if same else "")
    )


def _same_as_without_scope(asking: dict[str, Any], arm: str) -> bool:
    """Whether arm ``... + scope model`` measured exactly what the arm without the scope model did."""
    base = arm.removesuffix(" + scope model")
    keys = ("acts_share", "asks_share")
    return base != arm and base in asking and all(asking[arm][k] == asking[base][k] for k in keys)


def labels(r: Result) -> str:
    f = r["figures"]
    rows, bounds, ablation = [], [], []
    for name, pop in f["populations"].items():
        if "methods" not in pop:
            continue
        label = f"{name} ({pop['asr']})"  # on the population's first row only
        for method, m in pop["methods"].items():
            if method == "contextual, no pretraining":  # the ablation: one sentence below the table
                ablation.append(f"{name} {m['intent_accuracy']:.3f}")
                continue
            rows.append(
                f"| {label} | {method} | {m['goal_segmentation_f1']:.3f} | "
                f"{m['goal_success_accuracy']:.3f} / {m['goal_success_f1']:.3f} | {pct(m['coverage'])} | "
                f"**{m['intent_accuracy']:.3f}** | {num(m.get('intent_accuracy_all'), '.3f')} | "
                f"{num(m.get('slot_f1'), '.3f')} |"
            )
            label = ""
        if "ceilings" in pop:
            c = pop["ceilings"]
            bounds.append(
                f"{name}: success {c['success_with_true_goals']:.3f}, transfer coverage "
                f"{pct(c['transfer_coverage'])}"
            )
    detector = f.get("rephrase_detector", "pairwise lexical")
    ceilings = (
        " *Ceilings*: goal-success accuracy of the defect detector's verdict on the last turn of each "
        "*true* goal, and the share of failed turns whose goal later succeeded -- " + "; ".join(bounds) + "."
        if bounds
        else ""
    )
    return (
        "New households' labels against simulation truth: `rules` are "
        f"`selflearn label` (from the logs alone; rephrases by `{detector}`); `per-turn` a classifier on "
        "each turn's own features; `contextual` the label model over the turn's neighbours, trained on "
        "the rules' labels of other households ([labels.md](labels.md)). *Intent accuracy* on failed "
        "in-scope turns at the coverage shown, and over all of them; *slot F1* of the covered turns' "
        "(slot, value) pairs against the goal's. Targets (issue 30): >= 0.95 segmentation F1, "
        "goal-success accuracy/F1 on noisy speech, and intent accuracy at >= 50 % coverage."
        + ceilings
        + "\n\n"
        "| population | method | goal segmentation F1 | goal success accuracy / F1 | coverage | intent "
        "accuracy | intent accuracy, all failed turns | slot F1 |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|\n"
        + "\n".join(rows)
        + (
            "\n\nThe contextual model without pretraining on the logs, intent accuracy: "
            + "; ".join(ablation)
            + "."
            if ablation
            else ""
        )
    )


def labels_loop(r: Result) -> str:
    f = r["figures"]
    names = {
        "control": "HA today",
        "export": "+ exported sentences",
        "rewriter": "+ online rewriter",
        "both": "both",
    }
    rows, shares = [], []
    for name, pop in f["populations"].items():
        for arm, a in pop["arms"].items():
            if f["export"].get("wildcards") and arm in ("control", "rewriter"):
                continue  # the same as in the section above
            rows.append(
                f"| {name} ({pop['asr']}) | {names.get(arm, arm)} | {pct(a['defect_rate'])} | "
                f"**{pct(a['defects_fixed_vs_control'])}** | {a['custom_sentence_turns']:,} | "
                f"{a['custom_sentence_wrong_actions']:,} + {a['rewriter_wrong_actions']:,} |"
            )
        share = pop.get("export_share_of_rewriter_fix")
        shares.append(f"{name} **{'-' if share is None else pct(share)}**")
    e = f["export"]
    bounds = [
        f"{name} {pct(c['pattern_from_k_users'])} / {pct(c['pattern_in_logs'])} / "
        f"{pct(c['nbest_alternative'])}"
        for name, pop in f["populations"].items()
        if (c := pop.get("export_ceiling")) and c.get("rewriter_rescues")
    ]
    ceiling = (
        "\n\n*The export's ceiling*: of the rewriter's rescues, the share whose failed words "
        f"(delexicalised) the training logs hold as transferred labels from >= {e['min_users']} users / "
        "at all / the share that were n-best alternatives (which Home Assistant never sees): "
        + "; ".join(bounds)
        + "."
        if bounds
        else ""
    )
    versus = [
        f"{name} {v['beyond_rewriter']} of {v['wrong_actions']}"
        for name, pop in f["populations"].items()
        if (v := pop.get("export_wrong_actions_vs_rewriter")) and v["wrong_actions"]
    ]
    wrong = (
        "\n\n*Wrong actions the export adds that the rewriter would not* (same words, same home): "
        + "; ".join(versus)
        + "."
        if versus
        else ""
    )
    share_line = "\n\n*The export's share of the rewriter's fix*: " + ", ".join(shares) + "."
    table_head = (
        "| population | arm | defect rate | defects fixed | turns matched by exported sentences | "
        "wrong actions (sentences + rewriter) |\n"
        "|---|---|---:|---:|---:|---:|\n"
    )
    if e.get("wildcards"):  # the same run as the section above but for the items: say only what differs
        return (
            f"As [above](#labels-exported-as-custom-sentences), with shopping items as Home Assistant's "
            f"wildcard lists (`--wildcards`): {e['global_sentences']} global sentences.\n\n"
            + table_head
            + "\n".join(rows)
            + share_line
            + wrong
        )
    return (
        f"The training logs labelled by `selflearn label` ({f['labels']['summary'].split(';')[0]}) and "
        f"exported as {e['global_sentences']} global Home Assistant custom sentences (k = {e['min_users']} "
        f"users, confidence >= {e['min_confidence']}); new households replayed with the sentences "
        "(no selflearn at run time), with the online rewriter, and both. *Defects fixed*: 1 - defect "
        "rate / HA today's. *Wrong actions*: the sentences' and the rewriter's. Target "
        "(issue 30): the export alone fixes at least half of what the rewriter fixes on phrasings seen "
        "in the logs.\n\n" + table_head + "\n".join(rows) + share_line + ceiling + wrong
    )


def report(r: Result) -> str:
    f = r["figures"]
    parts = [
        f"with the {name} (`--{name}`): median **{f[name]['median_seconds']:.2f} s**, "
        f"slowest {f[name]['max_seconds']:.2f} s ({f[name]['bytes'] / 1024:,.0f} KiB)"
        for name in ("table", "rewriter")
        if name in f
    ]
    return (
        f"`selflearn report` on the demo's store ({f['turns']:,} turns), the whole command in a new "
        f"process, {f['runs']} runs each: " + "; ".join(parts) + f". Target: under {f['target_seconds']} s."
    )


def throughput(r: Result) -> str:
    f = r["figures"]
    s, i, q = f["simulate"], f["ingest"], f["quarantine"]
    return (
        f"Simulating {s['households']} households x {s['days']:g} days ({s['asr']} ASR, {s['workers']} "
        f"workers): {s['turns']:,} turns in {s['seconds']:.1f} s = **{s['turns_per_s']:,.0f} turns/s** "
        f"({s['cpu_s_per_1000_turns']:.2f} CPU-s per 1,000 turns). Ingest: {i['rows']:,} rows at "
        f"{i['rows_per_s']:,.0f} rows/s. Malformed rows: {q['read']} read = {q['stored']} stored + "
        f"{q['quarantined']} quarantined (balanced: {'yes' if q['balanced'] else 'NO'})."
    )


def asr_wer(r: Result) -> str:
    f = r["figures"]
    rows = [
        [
            w["channel"],
            w["condition"],
            f"{w['utterances']:,}",
            f"**{pct(w['wer'])}**",
            pct(w["sentence_error_rate"]),
            num(w["utterances_per_s"], ",.1f"),
        ]
        for w in f["rows"]
        if ", voice " not in w["condition"]  # per voice: in the results file
    ]
    return (
        f"{f['sentences']} held-out domain sentences per channel and condition (per voice: in the "
        "results file).\n\n"
        + table(
            ["channel", "condition", "utterances", "WER", "sentence error rate", "utterances/s"],
            rows,
            "llrrrr",
        )
    )


def per_wrong(arm: dict[str, Any]) -> str:
    """Rescues per wrong action, or why there is no ratio."""
    if arm["rescues_per_wrong_action"] is not None:
        return ratio(arm["rescues_per_wrong_action"])
    return "no wrong action" if arm["rescues"] else "-"


def _short(arm: str) -> str:
    """An arm of bench/teach.py as the table says it."""
    return arm.replace("+ confirmation", "+ asking").replace(
        "guesses, asking from half the acting bar", "from half the bar"
    )


def teach(r: Result) -> str:
    f = r["figures"]
    rows, ceilings, seen = [], [], []
    for name, pop in f["populations"].items():
        label = f"{name} ({pop['asr']})"  # on the population's first row only
        for arm, a in pop["arms"].items():
            asked = sum(v for k, v in a["answers"].items() if k != "None")
            answers = f"{a['answers'].get('yes', 0):,} of {asked:,}" if asked else "-"
            if name == "seen":  # phrasings like the logs': one sentence below the table
                if arm != "control":
                    seen.append(f"{f['arms'][arm]} {pct(a['defect_reduction'])}, {per_wrong(a)}")
                continue
            rows.append(
                f"| {label} | {_short(f['arms'][arm])} | {pct(a['defect_rate'])} | "
                f"{pct(a['defect_reduction'])} | {a['rescues']:,} | {a['wrong_actions']:,} | "
                f"**{per_wrong(a)}** | {a['questions_per_100_turns']:.1f} | {answers} |"
            )
            label = ""
        ceiling = pop.get("teaching_ceiling")
        if ceiling:
            ceilings.append(f"{name} {pct(ceiling['name_defects'] / max(ceiling['defects'], 1))}")
    return (
        "New households replayed with the online rewriter behind the NLU. *Defect reduction*: 1 - "
        "defects / what the same turns would have failed without selflearn (a question not ending in "
        "a yes that worked is a defect). *Wrong actions*: rewritten turns on which the assistant did "
        "something the user did not want. Targets (issue 29): >= 20 rescues per wrong action, <= 5 "
        "questions per 100 turns.\n\n"
        "| population | arm | defect rate | defect reduction | rescues | wrong actions | rescues per "
        "wrong action | questions per 100 turns | questions answered yes |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---|\n"
        + "\n".join(rows)
        + (
            "\n\n`seen` (phrasings like the logs'), defect reduction and rescues per wrong action: "
            + "; ".join(seen)
            + "."
            if seen
            else ""
        )
        + (
            "\n\nTeaching's ceiling, control defects that failed on a name the home lacks: "
            + ", ".join(ceilings)
            + "."
            if ceilings
            else ""
        )
    )


REAL_HOME_ARMS = {
    "control": "Home Assistant alone",
    "acting": "+ selflearn acting on its guesses",
    "asking": "+ asking about them",
    "asking_teaching": "+ asking and asking to be taught",
}


def _real_home_rows(arms: dict[str, Any], latency: bool, label: str = "") -> list[str]:
    rows = []
    for arm, a in arms.items():
        asked = sum(v for k, v in a["answers"].items() if k != "None")
        answers = f"{a['answers'].get('yes', 0):,} of {asked:,}" if asked else "-"
        low, high = a["defect_reduction_interval"]
        ms = f" {num(a['latency_ms_p50'], '.1f')} / {num(a['latency_ms_p99'], '.1f')} |" if latency else ""
        rows.append(
            f"| {REAL_HOME_ARMS.get(arm, arm)}{label} | {a['turns']:,} | {pct(a['defect_rate'])} | "
            f"**{pct(a['defect_reduction'])}** ({pct(low)} - {pct(high)}) | {a['rescues']:,} | "
            f"{a['wrong_actions']:,} | **{per_wrong(a)}** | **{a['questions_per_100_turns']:.1f}** | "
            f"{pct(a['oos_asked_share'])} / {pct(a['oos_acted_share'])} |{ms} {answers} |"
        )
    return rows


def real_home(r: Result, neural: Result | None = None) -> str:
    f = r["figures"]
    head = (
        "| arm | turns | defect rate | defect reduction (95 % over homes) | rescues | wrong actions | "
        "rescues per wrong action | questions per 100 turns | out of scope asked / acted |"
    )
    rows = _real_home_rows(f["arms"], latency=True)
    if neural is not None:  # bench/real_home.py --results real_home_neural: another global layer
        arms = {k: v for k, v in neural["figures"]["arms"].items() if k != "control"}
        rows += _real_home_rows(arms, latency=True, label=" (neural rewriter)")
    text = (
        f"{f['households']} new households x {f['days']:g} days of the `{f['population']}` population "
        f"(noisy speech, new phrasings) talk to a real **Home Assistant {f['ha_version']}** core "
        "through the selflearn integration and a real `selflearn serve` with the starter (built for "
        f"`{f.get('starter_nlu') or '?'}` matching, asking about guesses scored "
        f"{num(f.get('ask_threshold'), '.2f')} or more), one fresh core per household. *Added "
        "latency*: the request's time minus Home Assistant's own first answer. Targets (issue 41): "
        "defect reduction >= 10 %, >= 20 rescues per wrong action, <= 5 questions per 100 turns, "
        "out-of-scope requests asked about <= 2 % and acted on <= 0.5 %.\n\n"
        f"{head} added ms p50 / p99 | questions answered yes |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n" + "\n".join(rows)
    )
    if neural is not None:
        text += f"\n\n*(neural rewriter)*: `{neural['command']}`, {neural['date']}."
    if f.get("reference"):
        ref = [
            f"{REAL_HOME_ARMS.get(arm, arm)} {pct(a['defect_reduction'])} ({per_wrong(a)} : 1, "
            f"{a['questions_per_100_turns']:.1f} questions per 100 turns)"
            for arm, a in f["reference"].items()
            if arm != "control"
        ]
        text += (
            "\n\nThe same households and arms on the reference assistant (selflearn's copy of Home "
            "Assistant's matcher, strict as 2025.4's), defect reduction: " + "; ".join(ref) + "."
        )
    worst = [
        f"{intent} {pct(v['agree'], 0)} of {v['turns']:,}"
        for intent, v in f["agreement_by_intent"].items()
        if intent != "none" and v["turns"] >= 10 and v["agree"] < 0.9
    ][:6]  # the most frequent; the results file has them all
    text += (
        f"\n\n**Agreement.** On the control arm's {f['agreement_turns']:,} turns Home Assistant and the "
        "reference assistant did the same thing (intent, targets and values, or both nothing) on "
        f"**{pct(f['agreement_with_reference'])}**, and on "
        f"{pct(f['agreement_when_either_acted'])} of the turns on which either acted. "
        + (
            "Below 90 % (the most frequent intents with at least 10 such turns): " + "; ".join(worst) + "."
            if worst
            else "No intent with at least 10 such turns agrees on less than 90 %."
        )
    )
    return text


def rebuild(r: Result) -> str:
    f = r["figures"]
    return (
        f"One household of the `held-out` population, {f['days']:g} days with the reference assistant "
        f"asking and teaching: {f['turns']:,} turns and {f['dialogue_acts']:,} dialogue acts in the "
        f"store. `selflearn serve` started on it with the starter (`--rebuild`, the default) replayed "
        f"{num(f['records_replayed'])} records and took {f['concepts']} taught concepts in "
        f"**{f['rebuild_seconds']:.1f} s**; the whole start took {f['start_seconds']:.1f} s "
        f"({f['start_seconds_without_rebuild']:.1f} s without the rebuild)."
    )


def community(r: Result) -> str:
    f = r["figures"]
    ev = f["evaluation"]
    alone = f["no_global_layer"]

    def cell(x: dict[str, Any]) -> str:
        return f"{x['rules']}: {pct(x['defect_reduction'])}, {x['wrong_actions']}"

    epsilons = sorted({run["epsilon"] for run in f["populations"]})
    by: dict[str, dict[float, str]] = {}
    for run in f["populations"]:
        by.setdefault(run["population"], {})[run["epsilon"]] = cell(run)
    rows = [
        f"| {name} | " + " | ".join(cells.get(e, "-") for e in epsilons) + " |" for name, cells in by.items()
    ]
    central = "; ".join(f"{name}: {cell(c)}" for name, c in f["central"].items() if "sampled" not in name)
    sweep = "; ".join(
        f"{run['population']}, {run['max_patterns']} per install: {cell(run)}"
        for run in f.get("max_patterns_sweep", [])
    )
    a = f["attack"]
    seconds = "; ".join(
        f"{engine} " + " / ".join(f"{s:,.1f}" for n, s in by_n.items() if n.isdigit()) + " s"
        for engine, by_n in f["aggregator_seconds"].items()
    )
    seconds += (
        " at "
        + " / ".join(f"{int(n):,}" for n in f["aggregator_seconds"]["duckdb"] if n.isdigit())
        + " installs"
    )
    text = (
        f"{f['simulated_households']:,} simulated homes ({f['days']:g} days, held-out phrasings, noisy "
        f"speech) are the installs, sharing what `community contribute` would "
        f"({f['pairs_shared_per_install']:.2f} pairs on average, at most {f['max_patterns']}); populations "
        "past 1,000 and `1000-sampled` are drawn with replacement "
        "([community.md](community.md#the-benchmark)). Each release (delta "
        f"{f['delta']:g}) is the only global layer of {ev['households']} new homes x {ev['days']:g} days "
        f"(`{ev['population']}`, acting, own layer on; control "
        f"{pct(f['control_defect_rate'])}). Cells: rules, defect reduction, wrong actions. "
        f"Own layer alone: {pct(alone['defect_reduction'])}, {alone['wrong_actions']}. Target (issue 44): "
        ">= 80 % of central pooling's at 10,000 installs, epsilon <= 1.\n\n"
        "| installs | "
        + " | ".join(f"epsilon {e:g}" for e in epsilons)
        + " |\n|---|"
        + "---:|" * len(epsilons)
        + "\n"
        + "\n".join(rows)
        + f"\n\n**Central pooling** of the same installs' raw logs (k = {f['k_central']}): {central}. "
        f"**Fewer pairs per install** (epsilon 1): {sweep}."
    )
    refused = sum(why is not None for why in a["refused_by_guards"].values())
    text += (
        f"\n\n**Attacks** (epsilon 1; {len(a['pairs'])} rewrites, {refused} refused by the guards; 100 "
        f"colluders in 10,000, 100 fakes in 1,000): released {a['released']}, polarity or sensitive "
        f"{a['polarity_or_sensitive_released']}."
    )
    ask = a.get("asking")
    if ask:
        text += (
            f" All attacks, acting (asking, the default): wrong actions {a['acted_in_victim']} "
            f"({ask['acted_in_victim']}), used after failing enough to be withdrawn "
            f"{a['released_not_withdrawn']} ({ask['released_not_withdrawn']}), most hours from a "
            f"failure to a last use {num(a['hours_to_withdraw'], '.0f')} "
            f"({num(ask['hours_to_withdraw'], '.0f')})."
        )
    informed = {k.removeprefix("colluding "): x for k, x in a.get("informed", {}).items() if k != "pairs"}
    if informed:
        text += (
            " **Informed attacker**: "
            + "; ".join(
                f"{name}: {len(x['released'])} released, {x['acted_wrong']} wrong actions"
                + (f" ({x['asking']['acted_wrong']} asking)" if "asking" in x else "")
                for name, x in informed.items()
            )
            + "."
        )
    return text + f" **Aggregator**: {seconds}."


def neural_rewriter(r: Result) -> str:
    f = r["figures"]
    reach = f.get("reach", {})
    turns = reach.get("_turns", {})
    rows = []
    for arm, row in reach.items():
        if arm.startswith("_"):
            continue
        cells = [arm.replace("_", " ")]
        for label in ("noisy", "exact"):
            cells += [pct(row.get(label)), pct(row.get(f"{label}_at_20")), pct(row.get(f"{label}_all"))]
        rows.append(cells)
    k = f.get("k", 8)
    header = ["arm", f"noisy, top {k}", "top 20", "all", f"exact, top {k}", "top 20", "all"]
    times = [
        f"{arm.replace('_', ' ').removesuffix(' home language')} {t['p50']:.0f} / {t['p99']:.0f}"
        for arm, t in f.get("candidate_ms", {}).items()
        if ":" not in arm and "home" in arm
    ]
    builds = [
        f"{arm.split('_')[0]} {t['p50'] / 1000:.0f} s"
        for arm, t in f.get("candidate_ms", {}).items()
        if arm.endswith(":home_index")
    ]
    return (
        f"{num(turns.get('noisy'))} noisy and {num(turns.get('exact'))} exact failed in-scope requests "
        "across the 20 homes of `mining-held-out` (strict, one transcript). Reach: the share with a "
        "candidate doing what the user wanted in the first k (*ranked*: in the home-language ranker's "
        "order; the others unranked). Target: >= 50 % noisy, >= 80 % exact.\n\n"
        + table(header, rows, "l" + "r" * 6)
        + (
            "\n\nWith the home's language, gathering candidates, ms p50 / p99: " + "; ".join(times) + "."
            if times
            else ""
        )
        + (" A home's index, once per home: " + "; ".join(builds) + "." if builds else "")
        + (f"\n\n`{f['reach_command']}`" if f.get("reach_command") not in (None, r.get("command")) else "")
        + neural_budget_part(f, str(r.get("command", "")))
    )


def neural_budget_part(f: dict[str, Any], shown: str = "") -> str:
    """The question-budget half of the neural rewriter's section."""
    budget = f.get("budget", [])
    if not budget:
        return ""
    rows = []
    for arm in dict.fromkeys(b["arm"] for b in budget):
        for speech in ("noisy", "exact"):
            mine = [b for b in budget if b["arm"] == arm and b["speech"] == speech]
            if not mine:
                continue
            acting = [b for b in mine if b["ask"] == b["act"] and b["rescues"]]
            sure = [
                b
                for b in acting
                if b["wrong_actions"] * 20 <= b["rescues"] and b["defect_reduction"] >= 0.005
            ]
            best = max(sure, key=lambda b: b["defect_reduction"], default=None)
            at = next((b for b in acting if b["act"] == 0.1), None)
            asking = [b for b in mine if b["act"] > 1 and b["questions_per_100_turns"] <= 5]
            ask = max(asking, key=lambda b: b["defect_reduction"])
            ms = f.get("decision_ms", {}).get(arm, {})
            rows.append(
                [
                    arm.replace("_", " "),
                    speech,
                    num(f.get("ranker_auc_by_arm", {}).get(arm, {}).get(speech), ".2f"),
                    f"{ms.get(f'{speech}_p50', 0):.1f} / {ms.get(f'{speech}_p99', 0):.0f}",
                    f"{at['rescues']:,} : {at['wrong_actions']:,}" if at else "-",
                    f"{pct(best['defect_reduction'])} (>= {best['act']:g})" if best else "none",
                    f"**{pct(ask['defect_reduction'])}** at {ask['questions_per_100_turns']:.1f} "
                    f"(>= {ask['ask']:g})",
                ]
            )
    commands = dict.fromkeys(f.get("budget_commands", {}).values())
    commands.pop(None, None)
    commands.pop(shown, None)  # the section's footer names it
    return (
        "\n\n**Question budget.** Every failed turn of these replays, the ranked pick (a new home), acted "
        "on above one score bar, asked about above another; reduction over the in-scope defects (73 "
        "per 100 turns noisy, 47 exact). Targets: >= 10 % at <= 5 questions per 100 turns; acting at "
        ">= 20 rescues per wrong for >= 3 points. Best bars, chosen on these turns:\n\n"
        + table(
            [
                "rewriter",
                "speech",
                "AUC",
                "decision ms p50 / p99",
                "acting >= 0.1, rescues : wrong",
                "acting at >= 20 : 1 (>= 0.5 %)",
                "asking only, <= 5 per 100 turns",
            ],
            rows,
            "llrrrll",
        )
        + picks_right(f)
        + "".join(f"\n\n`{c}`" for c in commands)
    )


def picks_right(f: dict[str, Any]) -> str:
    """Which share of the in-scope picks work, per arm (noisy / exact), and the ceiling of the
    candidates a single encoder re-read."""
    parts, ceiling = [], ""
    for arm, by in f.get("picks_right", {}).items():
        if arm not in {b["arm"] for b in f.get("budget", [])}:
            continue
        right = [pct(by.get(s, {}).get("right")) for s in ("noisy", "exact")]
        parts.append(f"{arm.replace('_', ' ')} {' / '.join(right)}")
        if "reread_reach" in by.get("noisy", {}):
            reach = [pct(by.get(s, {}).get("reread_reach")) for s in ("noisy", "exact")]
            ceiling = f" (a working one among the first {by['noisy']['reread']}: {' / '.join(reach)})"
    if not parts:
        return ""
    rss, size, build = f.get("serve_rss_mb"), f.get("starter_mb"), f.get("build_minutes")
    cost = (
        f" With the single encoder (3 layers) the rewriter is {size:g} MB, trained in {build:g} min, "
        f"and `serve` with one home holds {rss} MB (`{f.get('footprint_command')}`)."
        if rss and size and build
        else ""
    )
    return "\n\nIn-scope picks that work, noisy / exact: " + "; ".join(parts) + ceiling + "." + cost


def starter_rebuild(r: Result) -> str:
    f = r["figures"]
    same = [
        f"{what} {f[key]['rebuilt']:{fmt}}"
        + ("" if f[key]["rebuilt"] == f[key]["shipped"] else f" (shipped: {f[key]['shipped']:{fmt}})")
        for what, key, fmt in (
            ("turns", "turns", ","),
            ("households", "households", ","),
            ("active rewrites", "rewrites", ","),
            ("table", "table_version", ""),
            ("MB", "mb", ""),
        )
    ]
    recipe = "the shipped recipe" if f.get("same_recipe") else "**another recipe** (not comparable)"
    return (
        f"`selflearn starter` with {recipe} (the packaged starter's `starter.json`), corpora from "
        f"`{f['data_dir']}`, built in {f['build_minutes']:.0f} min (the shipped one: "
        f"{f['shipped_build_minutes']:.0f} min): " + ", ".join(same) + ". The same decision on "
        f"{pct(f['decisions_same'])} of {f['decisions']:,} failed requests (a ranker trained by newer code)."
        + "".join(
            f" {speech.capitalize()}, shipped / rebuilt: AUC {b['shipped']['auc']:.2f} / "
            f"{b['rebuilt']['auc']:.2f}, asking within 5 per 100 turns "
            f"{pct(b['shipped']['asking_within_5'])} / {pct(b['rebuilt']['asking_within_5'])}."
            for speech, b in f.get("budget", {}).items()
        )
    )


def install(r: Result) -> str:
    f = r["figures"]
    parts: dict[str, float] = {}
    for name, mb in f.get("serve_install_largest_mb", {}).items():
        base = name.split(".")[0].lstrip("_")  # "_duckdb.cpython-311-...so": duckdb; "numpy.libs": numpy
        parts[base] = parts.get(base, 0.0) + mb
    largest = ", ".join(f"{name} {mb:.0f}" for name, mb in sorted(parts.items(), key=lambda kv: -kv[1])[:4])
    return (
        "`pip install` of the wheel in a clean venv (no torch), then `selflearn serve --store logs.duckdb` "
        "with the packaged starter on a fresh store. Targets (issue 51): install <= 300 MB, resident "
        "memory <= 300 MB, start <= 3 s.\n\n"
        + table(
            [
                "serving install MB",
                "with training (learn) MB",
                "starter MB",
                "serve RSS MB",
                "start s",
                "first question s",
            ],
            [
                [
                    f"**{f['serve_install_mb']:.0f}**",
                    num(f.get("learn_install_mb")),
                    f"{f['starter_mb']:.1f}",
                    f"**{f['serve_rss_mb']:.0f}**",
                    f"**{f['serve_start_s']:.2f}**",
                    num(f.get("first_question_s"), ".2f"),
                ]
            ],
            "rrrrrr",
        )
        + (f"\n\nLargest parts of the serving install, MB: {largest}." if largest else "")
        + (
            f" Integration tests passed on Home Assistant {', '.join(f['ha_versions'])}."
            if f.get("ha_versions")
            else ""
        )
        + (f" Image (Debian, buildah): {f['image_mb']:.0f} MB." if f.get("image_mb") else "")
        + (_image_tests(f["image_ha_tests"]) if f.get("image_ha_tests") else "")
        + (f" Add-on ready in {f['addon_start_s']:.1f} s." if f.get("addon_start_s") else "")
        + (f" `data fetch` {f['data_fetch_s']:.1f} s." if f.get("data_fetch_s") else "")
        + (_kept(f["kept"]) if f.get("kept") else "")
    )


def _kept(kept: dict[str, Any]) -> str:
    return (
        f" Not measured again (from the run of {kept['date']}, commit `{kept['commit']}`): "
        + ", ".join(f"`{k}`" for k in kept["keys"])
        + "."
    )


def _image_tests(t: dict[str, Any]) -> str:
    run = t["passed"] + t["failed"]
    return f" Integration tests against it ({t['core']}): {t['passed']}/{run}."


SECTIONS: list[tuple[str, str, str, Callable[[Result], str]]] = [
    # (results file, title, what it answers, renderer)
    (
        "baselines",
        "Home Assistant as it ships, on real phrasings",
        "How often does Home Assistant's own NLU (strict templates, then the gazetteer fallback) fail on "
        "real phrasings, and what do the older fallbacks do?",
        baselines,
    ),
    (
        "online",
        "Online rewriting: the A/B replay",
        "How many of the requests Home Assistant still fails does the online rewriter fix on new "
        "households, and at what cost in wrong actions?",
        online,
    ),
    (
        "neural_rewriter",
        "The neural rewriter: reach and question budget",
        "How many failed requests have a working candidate once the home's language is searched, and "
        "what does the ranked guess fix per question?",
        neural_rewriter,
    ),
    (
        "teach",
        "Asking before guessing",
        'Does asking "Did you mean ...?" (and being taught) keep the rescues and lose the wrong actions?',
        teach,
    ),
    (
        "real_home",
        "A real home",
        "What does a new home get from selflearn behind a real Home Assistant core, with the starter and "
        "its own learning, asking instead of guessing?",
        real_home,
    ),
    (
        "rebuild",
        "Remembering a home after a restart",
        "How long does `selflearn serve` take to rebuild what a home taught it in a year?",
        rebuild,
    ),
    (
        "out_of_scope",
        "Out-of-scope requests",
        "How often do Home Assistant and the rewriter act on a request no intent serves?",
        out_of_scope,
    ),
    (
        "mining",
        "Offline rewrite mining",
        "What does the absorbing-Markov-chain miner learn from reformulations, "
        "and what does its table alone fix?",
        mining,
    ),
    (
        "popularity",
        "Mining and phrasing popularity",
        "Does a head of popular phrasings (Zipf) let the miner find more rewrites than uniform drawing?",
        popularity,
    ),
    (
        "mining_engines",
        "Mining on DuckDB and on Spark",
        "Do both engines mine the same table, and how fast?",
        mining_engines,
    ),
    ("defects", "Defect detection", "Can the logs alone tell which turns failed?", defects),
    ("rephrase", "Rephrase detection", "Can the logs alone tell which turn a user is rephrasing?", rephrase),
    ("fpi", "Failure point isolation", "Which pipeline stage failed first?", fpi),
    ("rewrite_latency", "Decision latency", "How long does one rewrite decision take?", rewrite_latency),
    (
        "http_load",
        "The HTTP service under load",
        "Does the service hold its latency at a steady rate?",
        http_load,
    ),
    (
        "reliability",
        "Reliability, safety, privacy and security",
        "Does hostile input, kill -9, load, a soak, a burst, a forgotten household or a sensitive "
        "request find a failure?",
        reliability,
    ),
    (
        "integration",
        "Home Assistant integration: added latency",
        "What does the integration add to Home Assistant's conversation round trip?",
        integration,
    ),
    ("wyoming", "The Wyoming service", "How long does a Wyoming round trip take?", wyoming),
    ("report", "The report", "How long does `selflearn report` take on the demo's store?", report),
    (
        "labels",
        "Labels from feedback",
        "How right are the goal, success and intent labels selflearn derives from the logs?",
        labels,
    ),
    (
        "labels_loop",
        "Labels exported as custom sentences",
        "What do the labels' exported Home Assistant sentences fix alone, next to the online rewriter?",
        labels_loop,
    ),
    (
        "install",
        "The serving install",
        "What does `pip install selflearn` weigh, and how fast and small is `serve` with the starter?",
        install,
    ),
    (
        "starter_rebuild",
        "The starter, rebuilt",
        "Does `selflearn starter` rebuild the starter the package ships?",
        starter_rebuild,
    ),
    (
        "throughput",
        "Simulator and ingest throughput",
        "How fast are logs simulated and stored, and is every bad row accounted for?",
        throughput,
    ),
    ("asr_wer", "ASR channels", "How often do the recognisers get words wrong?", asr_wer),
    (
        "community",
        "The community global layer",
        "What does a private release from many installs give a new home, next to pooling their logs?",
        community,
    ),
]


def link(name: str) -> str:
    """A link to the section of the results file ``name`` (GitHub's heading anchors)."""
    title = next(t for n, t, _, _ in SECTIONS if n == name)
    anchor = re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")
    return f"[more](#{anchor})"


HEADLINE_POPULATIONS = ("held-out", "real")
"""The populations the headline shows per-population rows for (phrasings no training log has, on
noisy and on real speech); each section has all of them."""


def headline(results: dict[str, Result]) -> str:
    rows: list[list[str]] = []
    if "baselines" in results:
        s = results["baselines"]["figures"]["systems"]
        rows.append(
            [
                "Home Assistant as it ships (strict -> gazetteer), real phrasings",
                "in-scope requests it fails (wrong or no match)",
                f"**{pct(1 - s['strict+gazetteer']['in_scope']['correct'])}**",
                f"strict alone: {pct(1 - s['strict']['in_scope']['correct'])}",
                link("baselines"),
            ]
        )
    if "online" in results:
        for name, pop in results["online"]["figures"]["populations"].items():
            g, p = pop["arms"].get("global"), pop["arms"].get("personal")
            if g is None or p is None or name not in HEADLINE_POPULATIONS:
                continue
            rows.append(
                [
                    f"online rewriter behind strict -> gazetteer, `{name}` population ({pop['asr']} ASR)",
                    "defect reduction, global / + personal layer",
                    f"**{pct(g['defect_reduction'])}** / {pct(p['defect_reduction'])}",
                    f"wins per wrong action {ratio(g['wins_per_wrong_action'])} / "
                    f"{ratio(p['wins_per_wrong_action'])}; gazetteer "
                    f"{ratio(_per(pop['arms']['control']))}",
                    link("online"),
                ]
            )
    if "teach" in results:
        for name, pop in results["teach"]["figures"]["populations"].items():
            alone, asked = pop["arms"].get("personal"), pop["arms"].get("confirm")
            if alone is None or asked is None or name not in HEADLINE_POPULATIONS:
                continue
            rows.append(
                [
                    f'asking "Did you mean ...?" about the rewriter\'s guesses, `{name}` ({pop["asr"]} ASR)',
                    "rescues per wrong action, acting alone -> asking",
                    f"{ratio(alone['rescues_per_wrong_action'])} -> "
                    f"**{ratio(asked['rescues_per_wrong_action'])}**",
                    f"defect reduction {pct(alone['defect_reduction'])} -> {pct(asked['defect_reduction'])}; "
                    f"{asked['questions_per_100_turns']:.1f} questions per 100 turns",
                    link("teach"),
                ]
            )
    if "real_home" in results:
        arms = results["real_home"]["figures"]["arms"]
        if "asking" in arms and "acting" in arms:
            acting, asking = arms["acting"], arms["asking"]
            rows.append(
                [
                    "a new home behind a real Home Assistant core, starter + its own learning",
                    "defect reduction, acting -> asking",
                    f"{pct(acting['defect_reduction'])} -> **{pct(asking['defect_reduction'])}**",
                    f"rescues per wrong action {per_wrong(acting)} -> {per_wrong(asking)}; "
                    f"{asking['questions_per_100_turns']:.1f} questions per 100 turns",
                    link("real_home"),
                ]
            )
    if "mining" in results:
        replays = results["mining"]["figures"]["replays"]
        if "seen" in replays:
            a = replays["seen"]["arms"]["table"]
            rows.append(
                [
                    "mined rewrite table alone, new households saying logged phrasings",
                    "rescue rate (wins / losses)",
                    f"**{pct(a['rescue_rate'])}** ({a['wins']:,} / {a['losses']:,})",
                    f"{results['mining']['figures']['table']['rules']} rules",
                    link("mining"),
                ]
            )
    if "rephrase" in results:
        sets = results["rephrase"]["figures"]["sets"]
        if "test" in sets:
            d = sets["test"]["detectors"]
            ctx = d.get("contextual MiniLM")
            others = {k: v for k, v in d.items() if k != "contextual MiniLM"}
            if ctx is not None and others:
                best = max(others, key=lambda k: others[k]["f1"])
                rows.append(
                    [
                        "rephrase detection, held-out noisy speech",
                        "F1 of links",
                        f"**{ctx['f1']:.3f}** (contextual MiniLM)",
                        f"{best} {others[best]['f1']:.3f}",
                        link("rephrase"),
                    ]
                )
    if "defects" in results:
        pops = results["defects"]["figures"]["populations"]
        if "test" in pops:
            d = pops["test"]["detectors"]
            best = max(d, key=lambda k: d[k]["pr_auc"])
            rows.append(
                [
                    "defect detection, held-out noisy speech",
                    "PR-AUC",
                    f"**{d[best]['pr_auc']:.3f}** ({best})",
                    ", ".join(f"{k} {v['pr_auc']:.3f}" for k, v in d.items() if k != best),
                    link("defects"),
                ]
            )
    if "fpi" in results:
        test = results["fpi"]["figures"]["summary"].get("test", {})
        if test:
            model = max(test, key=lambda k: test[k]["accuracy"])
            rows.append(
                [
                    "failure point isolation, held-out noisy speech",
                    "accuracy",
                    f"**{test[model]['accuracy']:.3f}** ({model})",
                    f"rule baseline {test.get('rule baseline', {}).get('accuracy', 0):.3f}",
                    link("fpi"),
                ]
            )
    if "rewrite_latency" in results:
        modes = results["rewrite_latency"]["figures"]["modes"]
        behind = next(
            (m for m in modes if m["mode"].startswith("behind") and not m["pattern_cache"]), modes[0]
        )
        rows.append(
            [
                "one rewrite decision, 1M-pattern index",
                "p50 / p99",
                f"**{behind['wall_ms']['p50']:.2f} / {behind['wall_ms']['p99']:.2f} ms**",
                "budget 50 ms",
                link("rewrite_latency"),
            ]
        )
    if "integration" in results:
        f = results["integration"]["figures"]
        rows.append(
            [
                f"Home Assistant integration ({', '.join(f['ha_versions_tested'])})",
                "added latency on a failed request, p50 / p99 (worst core)",
                f"**{f['overhead_ms_p50']:.1f} / {f['overhead_ms_p99']:.1f} ms**",
                "target p99 <= 10 ms; no call on an understood request",
                link("integration"),
            ]
        )
    if "http_load" in results:
        f = results["http_load"]["figures"]
        rows.append(
            [
                "the HTTP service",
                "p99 at a steady rate",
                f"**{f['latency_ms']['p99']:.1f} ms** at {f['achieved_rate']:g}/s",
                f"{f['errors']} errors, {f['fail_open']} fail-opens",
                link("http_load"),
            ]
        )
    if not rows:
        return "No results yet: run the benchmarks (each section below names its command)."
    return table(["what", "figure", "measured", "compared with", "section"], rows, "lllll")


def render(results: dict[str, Result]) -> str:
    out = [
        "# Benchmarks",
        "",
        "*Generated by `python bench/results_page.py` from the figures the benchmarks wrote to "
        "[docs/results/](results/); do not edit by hand. Earlier rounds, with their discussion, are in "
        "[benchmarks-history.md](benchmarks-history.md).*",
        "",
        "Every figure comes from a simulation the benchmark ran (named populations: `selflearn evaluate "
        "populations`), scored against simulation truth that no learner reads, on households and (where "
        "stated) phrasings that training never saw. Run the commands from the repository root after "
        "`make test`; the real-corpus ones need `../shared/data`.",
        "",
        "**Units.** A *defect* is a turn whose goal was not met; rates are shares of turns. A *win* is a "
        "rewritten turn that would have failed without the rewrite and worked with it, a *loss* the "
        "reverse; a *wrong action* is a rewritten turn on which the assistant acted and the user's goal "
        "was not met (worse than a refusal). *Defect reduction* compares the same turns with and without "
        "their rewrites; its interval is a 95 % bootstrap over households. The *rescue rate* is wins over "
        "all turns that would have failed.",
        "",
        "## Headline",
        "",
        headline(results),
        "",
    ]
    missing = []
    for name, title, question, render_section in SECTIONS:
        r = results.get(name)
        if r is None:
            missing.append(title)
            continue
        text = real_home(r, results.get("real_home_neural")) if name == "real_home" else render_section(r)
        out += [f"## {title}", "", f"*{question}*", "", text, "", provenance(r), ""]
    if missing:
        out += [
            "## Not re-run since the house pass",
            "",
            "These benchmarks have no results file yet; their last figures, with commands and dates, are "
            "in [benchmarks-history.md](benchmarks-history.md#the-results-page-of-2026-11-25): "
            + "; ".join(missing)
            + ".",
            "",
        ]
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail when the page is not current")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=PAGE)
    args = parser.parse_args()
    text = render(read_results(args.results))
    if args.check:
        if not args.out.exists() or args.out.read_text(encoding="utf-8") != text:
            print(f"{args.out} is not current: run python bench/results_page.py", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"{args.out}: {len(text.encode()):,} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
