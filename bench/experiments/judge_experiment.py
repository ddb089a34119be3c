"""Experiment, measured and not built: a MiniLM cross-encoder as a second look at the ranker's pick.

    python bench/experiments/judge_experiment.py --rewriter bench/.cache/online/rewriter-train-360mix-k5 \\
        --store bench/.cache/online/train-360mix.duckdb \\
        --dev noisy=bench/.cache/online/ceil-dev-slurp.jsonl:bench/.cache/online/dev-slurp-control \\
        --dev exact=bench/.cache/online/ceil-dev-slurp-clean.jsonl:bench/.cache/online/dev-slurp-clean-control

The ranker compares a request with its candidates through features and cannot read the two
sentences together. Would a cross-encoder (the packaged all-MiniLM-L6-v2 cut to ``--layers``
layers, a linear head on ``[CLS]``, fine-tuned on the meaning model's own labels: the candidate
means what the user's successful reformulation meant) make the rewrite decision better?

1. **Train** (logs only): the rewriter's training requests are replayed as ``selflearn train
   rewriter`` replays them; two cross-encoders are trained, each on the fixed requests of one
   half of the households (cached in ``--cache``).
2. **Calibrate** (logs only): every known-failed request of the logs, scored by the cross-fitted
   ranker member trained without it, gets the logit of the cross-encoder trained without it.
   The rule: combined meaning = a logistic combination of logit(ranker meaning) and the clipped
   logit, fitted on requests whose outcome the logs know (an estimated win or loss); decision
   score = combined meaning x fixable; threshold calibrated for ``--target-ratio`` as the
   ranker's is (bagged). ``--weights`` also fixes the logit's weight at other values.
3. **Judge** (evaluation only, simulation truth): on development populations dumped by
   ``bench/experiments/rewrite_ceiling.py --dump`` from the same rewriter, right and wrong ranked
   picks above each rule's threshold, next to the ranker's own; and, as an upper bound no product
   could reach, a logistic regression fitted on the development truth itself (5-fold).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from selflearn import Store
from selflearn.core.embed import source_model_dir
from selflearn.evaluate.replay import read_records
from selflearn.rewrite import FitConfig, KnowledgeConfig, Rewriter
from selflearn.rewrite.fit import Query, cross_fitted_scores, intent_codes, replay_queries
from selflearn.rewrite.knowledge import Knowledge
from selflearn.rewrite.logs import read_homes, read_log
from selflearn.rewrite.ranker import calibrate_bagged, household_fold

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HALF_SEED = 5
FLOOR = 0.02
"""Requests whose ranker score is below this are not judged (nor rewritten by a judged rule)."""


def _tokenizer() -> Any:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(source_model_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(48)
    return tok


def _batch(tok: Any, a: list[str], b: list[str]) -> dict[str, Any]:
    import torch

    enc = [tok.encode(x, y) for x, y in zip(a, b, strict=True)]
    width = max(len(e.ids) for e in enc)
    ids, types, mask = (np.zeros((len(enc), width), dtype=np.int64) for _ in range(3))
    for row, e in enumerate(enc):
        ids[row, : len(e.ids)], types[row, : len(e.ids)], mask[row, : len(e.ids)] = e.ids, e.type_ids, 1
    return {
        "input_ids": torch.from_numpy(ids),
        "token_type_ids": torch.from_numpy(types),
        "attention_mask": torch.from_numpy(mask),
    }


def _model(layers: int, folder: Path | None = None) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(str(folder / "encoder") if folder else str(source_model_dir()))
    encoder.encoder.layer = encoder.encoder.layer[:layers]
    encoder.config.num_hidden_layers = layers
    head = torch.nn.Linear(encoder.config.hidden_size, 1)
    if folder is not None:
        head.load_state_dict(torch.load(folder / "head.pt"))
    return encoder, head


def train_one(texts: list[str], cands: list[str], labels: list[int], layers: int, out: Path) -> None:
    """Fine-tune one cross-encoder (binary cross-entropy per pair, one epoch) and save it."""
    import torch

    torch.manual_seed(0)
    tok = _tokenizer()
    encoder, head = _model(layers)
    lr = 5e-5
    opt = torch.optim.AdamW(
        [{"params": encoder.parameters(), "lr": lr}, {"params": head.parameters(), "lr": lr * 10}],
        weight_decay=0.01,
    )
    order = list(range(len(labels)))
    random.Random(0).shuffle(order)
    y = np.asarray(labels, dtype=np.float32)
    steps = math.ceil(len(order) / 64)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, steps // 20)) * max(0.0, 1 - s / steps)
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    encoder.train()
    started = time.perf_counter()
    for step, start in enumerate(range(0, len(order), 64), 1):
        sel = order[start : start + 64]
        states = encoder(**_batch(tok, [texts[i] for i in sel], [cands[i] for i in sel])).last_hidden_state
        loss = loss_fn(head(states[:, 0]).squeeze(-1), torch.from_numpy(y[sel]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0 or step == steps:
            print(
                f"[judge] {out.name}: step {step}/{steps}, loss {float(loss.detach()):.3f}, "
                f"{time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
    out.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(out / "encoder")
    torch.save(head.state_dict(), out / "head.pt")


def logits_of(folder: Path, layers: int, a: list[str], b: list[str]) -> np.ndarray:
    """The cross-encoder's logit for each (request, candidate) pair (batched, sorted by length)."""
    import torch

    tok = _tokenizer()
    encoder, head = _model(layers, folder)
    encoder.eval()
    out = np.zeros(len(a))
    order = sorted(range(len(a)), key=lambda i: len(a[i]) + len(b[i]))
    with torch.inference_mode():
        for start in range(0, len(order), 256):
            sel = order[start : start + 256]
            states = encoder(**_batch(tok, [a[i] for i in sel], [b[i] for i in sel])).last_hidden_state
            out[sel] = head(states[:, 0]).squeeze(-1).numpy()
    return out


def half_of(household: str) -> int:
    return household_fold(household, 2, HALF_SEED)


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    out: np.ndarray = np.log(q / (1 - q))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rewriter", type=Path, required=True)
    parser.add_argument("--store", type=Path, required=True, help="the logs the rewriter was trained on")
    parser.add_argument("--dev", action="append", default=[], metavar="NAME=DUMP:REPLAY")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--k", type=int, default=5, help="the k the rewriter was trained with")
    parser.add_argument("--target-ratio", type=float, default=15.0)
    parser.add_argument(
        "--weights", default="0.5,1.0", help="fixed logit weights to try besides the fitted one"
    )
    parser.add_argument(
        "--cache", type=Path, default=Path(__file__).resolve().parents[1] / ".cache" / "judge"
    )
    parser.add_argument(
        "--all-households",
        action="store_true",
        help="one cross-encoder trained on every household's fixed requests (twice the data, no "
        "out-of-sample logits for the logs' calibration: only the development truth is reported)",
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    rewriter = Rewriter.load(args.rewriter)
    assert rewriter.ranker_ is not None and rewriter.embedder is not None
    cache: Path = args.cache / f"{args.rewriter.name}-l{args.layers}"
    cache.mkdir(parents=True, exist_ok=True)
    calibration = cache / "calibration.npz"

    def logged_queries() -> list[Query]:
        started = time.perf_counter()
        config = FitConfig(knowledge=KnowledgeConfig(min_users=args.k))
        with Store(args.store, read_only=True) as store:
            turns = read_log(store, config.knowledge.defect_threshold)
            homes = read_homes(store)
        assert rewriter.ranker_ is not None and rewriter.embedder is not None
        full = Knowledge(config.knowledge).fit(turns, homes, rewriter.embedder)
        intents = intent_codes(full)
        if intents != rewriter.ranker_.intents:
            sys.exit("these logs give other intents than the rewriter was trained on: wrong --store or --k?")
        queries = replay_queries(turns, homes, rewriter.embedder, intents, config)
        print(
            f"[judge] {len(queries):,} training requests replayed ({time.perf_counter() - started:.0f} s)",
            file=sys.stderr,
        )
        return queries

    def member_of(household: str) -> Path:
        """The cross-encoder that judges ``household``'s requests."""
        return cache / ("member-all" if args.all_households else f"member-{half_of(household)}")

    if args.all_households and not (cache / "member-all" / "head.pt").exists():
        texts, cands, labels = pairs(logged_queries())
        train_one(texts, cands, labels, args.layers, cache / "member-all")
    rules: list[tuple[str, float, float, float, float]] = []  # name, a, c, intercept, threshold
    lo, hi = -8.0, 8.0
    threshold = rewriter.ranker_.threshold
    if not args.all_households and not calibration.exists():
        started = time.perf_counter()
        queries = logged_queries()
        for half in (0, 1):  # member `half` is trained without the households of that half
            if not (cache / f"member-{half}" / "head.pt").exists():
                texts, cands, labels = pairs([q for q in queries if half_of(q.household) != half])
                print(
                    f"[judge] member {half}: {len(labels):,} pairs, {np.mean(labels):.3f} positive",
                    file=sys.stderr,
                )
                train_one(texts, cands, labels, args.layers, cache / f"member-{half}")
        scored = cross_fitted_scores(rewriter.ranker_, queries, known=True)
        by_id = {q.turn_id: q for q in queries}
        judged = np.flatnonzero(scored.meaning * scored.fixable >= FLOOR)
        logits = np.full(len(scored.score), np.nan)
        for half in (0, 1):
            rows = [j for j in judged if half_of(str(scored.household[j])) == half]
            qs = [by_id[scored.turn_id[j]] for j in rows]
            logits[rows] = logits_of(
                cache / f"member-{half}",
                args.layers,
                [q.text for q in qs],
                [q.candidates[int(scored.best[j])] for q, j in zip(qs, rows, strict=True)],
            )
        np.savez(
            calibration,
            logits=logits,
            meaning=scored.meaning,
            fixable=scored.fixable,
            score=scored.score,
            outcome=scored.outcome,
            household=scored.household,
        )
        print(f"[judge] calibration set ready ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    if not args.all_households:
        cal = np.load(calibration, allow_pickle=True)
        m, f, s, o, lg = cal["meaning"], cal["fixable"], cal["score"], cal["outcome"], cal["logits"]
        judged = ~np.isnan(lg)
        known = judged & np.isin(o, (1, -1))
        lo, hi = (float(v) for v in np.quantile(lg[judged], [0.01, 0.99]))
        win = (o[known] == 1).astype(int)
        print(
            f"calibration (logs): {len(s):,} known-failed requests, {judged.sum():,} judged, "
            f"{known.sum():,} with a known outcome"
        )
        print(
            f"AUC of an estimated win against an estimated loss: ranker meaning "
            f"{roc_auc_score(win, m[known]):.3f}, cross-encoder logit {roc_auc_score(win, lg[known]):.3f}"
        )

        ranker_cal = calibrate_bagged(s, o, cal["household"], args.target_ratio).chosen
        threshold = ranker_cal.threshold
        fitted = LogisticRegression(max_iter=1000).fit(
            np.column_stack([_logit(m[known]), np.clip(lg[known], lo, hi)]), win
        )
        a, c = (float(v) for v in fitted.coef_[0])
        candidates = [("fitted on the logs", a, c, float(fitted.intercept_[0]))]
        for weight in (float(w) for w in args.weights.split(",") if w):
            offset = weight * np.clip(lg[known], lo, hi)
            a_w, b_w = _offset_fit(_logit(m[known]), offset, win)  # the logit's weight held fixed
            candidates.append((f"logit weight fixed at {weight:g}", a_w, weight, b_w))
        print()
        print(
            f"| rule (threshold calibrated on the logs for {args.target_ratio:g}) "
            "| weights (meaning, logit) | threshold | est. wins / losses / unknown |"
        )
        print("|---|---|---:|---|")
        print(
            f"| ranker alone (meaning x fixable) | - | {ranker_cal.threshold:.3f} "
            f"| {ranker_cal.wins:,} / {ranker_cal.losses:,} / {ranker_cal.unknown:,} |"
        )
        for name, a_r, c_r, b_r in candidates:
            z = np.where(judged, _rule(m, f, np.nan_to_num(lg), a_r, c_r, b_r, lo, hi), 0)
            chosen = calibrate_bagged(z, o, cal["household"], args.target_ratio).chosen
            rules.append((name, a_r, c_r, b_r, chosen.threshold))
            print(
                f"| {name} | {a_r:.2f}, {c_r:.2f} | {chosen.threshold:.3f} "
                f"| {chosen.wins:,} / {chosen.losses:,} / {chosen.unknown:,} |"
            )

    for spec in args.dev:
        judge_on_dev(spec, member_of, args.layers, rules, threshold, lo, hi)


def judge_on_dev(
    spec: str,
    member_of: Callable[[str], Path],
    layers: int,
    rules: list[tuple[str, float, float, float, float]],
    threshold: float,
    lo: float,
    hi: float,
) -> None:
    """Step 3 on one development population (``NAME=DUMP:REPLAY``): right and wrong picks of the
    ranker and of each rule, from simulation truth, and the upper bound fitted on that truth."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict

    name, paths = spec.split("=", 1)
    dump, replay = (Path(p) for p in paths.split(":", 1))
    rows = [json.loads(line) for line in dump.open()]
    rows = [r for r in rows if r["candidates"] and (r["judgeable"] or r["kind"] == "oos")]
    home = {t: r["household_id"] for t, r in read_records(replay, "turns").items()}
    dm, df, ds = (np.array([r[k] for r in rows]) for k in ("meaning", "fixable", "score"))
    right = np.array([r["pick_right"] for r in rows])
    dl = np.zeros(len(rows))
    groups: dict[Path, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(member_of(home[r["turn_id"]]), []).append(i)
    for folder, sel in groups.items():
        texts, picks = [rows[i]["text"] for i in sel], [rows[i]["pick"] for i in sel]
        dl[sel] = logits_of(folder, layers, texts, picks)
    print()
    print(
        f"{name}: {len(rows):,} ranked picks on failed turns, {right.mean():.1%} right "
        f"(simulation truth); AUC right vs wrong: ranker {roc_auc_score(right, ds):.3f}, "
        f"cross-encoder logit {roc_auc_score(right, dl):.3f}"
    )
    print("| rule | threshold | right | wrong | right per wrong |")
    print("|---|---:|---:|---:|---:|")
    on = ds >= threshold
    wrong_at_ranker = int((on & ~right).sum())
    print(
        f"| ranker alone | {threshold:.3f} | {(on & right).sum():,} | {wrong_at_ranker:,} "
        f"| {(on & right).sum() / max(wrong_at_ranker, 1):.1f} |"
    )
    for rule, a_r, c_r, b_r, t in rules:
        z = np.where(dm * df >= FLOOR, _rule(dm, df, dl, a_r, c_r, b_r, lo, hi), 0)
        on = z >= t
        print(
            f"| {rule} | {t:.3f} | {(on & right).sum():,} | {(on & ~right).sum():,} "
            f"| {(on & right).sum() / max((on & ~right).sum(), 1):.1f} |"
        )
        # the same rule at the threshold that makes as many wrong picks as the ranker
        cut = np.sort(z[~right])[::-1][wrong_at_ranker - 1] if wrong_at_ranker else 1.0
        on = z >= cut
        print(
            f"| {rule}, threshold set on this truth to the ranker's wrong picks | {cut:.3f} "
            f"| {(on & right).sum():,} | {(on & ~right).sum():,} "
            f"| {(on & right).sum() / max((on & ~right).sum(), 1):.1f} |"
        )
    x = np.column_stack([_logit(dm), np.log(np.clip(df, 1e-6, 1)), dl])
    p = cross_val_predict(LogisticRegression(max_iter=1000), x, right, cv=5, method="predict_proba")[:, 1]
    base = cross_val_predict(
        LogisticRegression(max_iter=1000), x[:, :2], right, cv=5, method="predict_proba"
    )[:, 1]
    print(
        f"Upper bound, fitted on this population's truth (5-fold): AUC "
        f"{roc_auc_score(right, base):.3f} without the cross-encoder, "
        f"{roc_auc_score(right, p):.3f} with it"
    )
    for label, values in (("without", base), ("with", p)):
        cut = np.sort(values[~right])[::-1][wrong_at_ranker - 1] if wrong_at_ranker else 1.0
        print(
            f"  {label} the cross-encoder, as many wrong picks as the ranker: "
            f"{((values >= cut) & right).sum():,} right"
        )


def _rule(
    meaning: np.ndarray,
    fixable: np.ndarray,
    logit: np.ndarray,
    a: float,
    c: float,
    b: float,
    lo: float,
    hi: float,
) -> np.ndarray:
    """Combined meaning x fixable: the decision score of a judged rule."""
    out: np.ndarray = fixable / (1 + np.exp(-(b + a * _logit(meaning) + c * np.clip(logit, lo, hi))))
    return out


def _offset_fit(x: np.ndarray, offset: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Logistic regression of ``y`` on ``x`` with a fixed ``offset`` (Newton steps): (slope, intercept)."""
    w = np.zeros(2)
    design = np.column_stack([x, np.ones(len(x))])
    for _step in range(50):
        p = 1 / (1 + np.exp(-(design @ w + offset)))
        grad = design.T @ (y - p)
        hess = design.T @ (design * (p * (1 - p))[:, None])
        step = np.linalg.solve(hess + 1e-9 * np.eye(2), grad)
        w += step
        if np.abs(step).max() < 1e-8:
            break
    return float(w[0]), float(w[1])


def pairs(queries: list[Query]) -> tuple[list[str], list[str], list[int]]:
    """Training pairs: every candidate of every request a user fixed, labelled as the meaning
    model's rows are (the candidate has the signature of the user's successful reformulation)."""
    texts: list[str] = []
    cands: list[str] = []
    labels: list[int] = []
    for q in queries:
        if q.defect and q.fix_intent is not None and q.labels.any():
            texts += [q.text] * len(q.candidates)
            cands += q.candidates
            labels += q.labels.tolist()
    return texts, cands, labels


if __name__ == "__main__":
    main()
