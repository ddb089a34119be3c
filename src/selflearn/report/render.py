"""The report as one self-contained HTML page: inline CSS, inline SVG plots
(:mod:`selflearn.report.svg`), no script, no font, no image, nothing fetched from anywhere.

The markup is a contract the live review page (``/ui`` of ``selflearn serve``) builds on:

* every plot is ``<svg class="plot" data-points="N">`` with a ``<title>`` and a caption;
* every table has an id (``daily``, ``by-intent``, ``by-failure-point``, ``by-household``,
  ``by-area``, ``by-hour``, ``unrecognized``, ``rules``, ``decisions``, ``comparison``) and a row
  about a rule is ``<tr data-rule-id="...">``;
* with :class:`ReviewForms`, every rule row, decision row and proposed-fix row carries a plain
  HTML form (``POST``, no JavaScript) with the fields ``rule_id``, ``source``, ``target``,
  ``edited_target`` (pre-filled with the target), the extra hidden fields, and three buttons
  named ``decision``: ``approve``, ``reject``, ``edit``;
* each failing pattern's best candidate fix is a cell ``<td class="candidate"
  data-candidate="TARGET" data-decision="approved|edited">`` (``<td class="candidate none">``
  when none is offered); with :class:`ReviewForms` it holds a form with the same fields and one
  button named ``decision`` with the value ``accept`` ("Accept as rule"), or, once accepted, a
  ``<span class="accepted">``;
* every table, and every form in it, fits a window 1280 px wide (long words and names wrap):
  no control of the review page is off to the right (``tests/test_pages.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape

from selflearn.report.svg import Series, bar_chart, line_chart
from selflearn.report.views import (
    FAILURE_LABELS,
    Breakdown,
    CandidateFix,
    Comparison,
    Decision,
    Fix,
    Notice,
    Outcomes,
    Pattern,
    Period,
    ReportData,
    Rule,
)

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;margin:0 auto;
max-width:1400px;padding:0 16px 48px}
h1{font-size:24px;margin:24px 0 4px}h2{font-size:19px;margin:36px 0 8px;border-bottom:1px solid #d0d7de}
h3{font-size:15px;margin:20px 0 6px}p.note,figcaption,.meta{color:#57606a;font-size:13px}
p.note{max-width:1000px}nav a{margin-right:12px}code{background:#f6f8fa;padding:1px 4px;border-radius:4px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #d0d7de;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.notice{border-left:4px solid #9a6700;background:#fff8c5;padding:8px 12px;margin:8px 0}
.notice.info{border-color:#0969da;background:#ddf4ff}
.kpi{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.kpi div{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;min-width:130px}
.kpi b{display:block;font-size:20px}
.pair{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}.pair figure{flex:0 1 720px}
svg.plot{max-width:100%;height:auto;font-size:11px}svg.plot text{fill:#57606a}
svg.plot .grid{stroke:#eaeef2}figure{margin:8px 0 16px}
.status-demoted,.status-would-be-demoted,.status-refused,.status-worse-than-unrewritten{color:#d1242f;
font-weight:600}
.status-active,.status-keep,.status-taught{color:#1a7f37}
form.review{display:flex;flex-direction:column;gap:3px;margin:0}form.review button{padding:1px 4px}
form.review input[type=text]{width:100%;min-width:8em;box-sizing:border-box}
td code,td.evidence,td .small{overflow-wrap:anywhere}td.pattern code{overflow-wrap:break-word}
td.pattern{min-width:6em}td.examples{min-width:10em}.examples{margin:0;padding-left:16px}
.small{font-size:12px;color:#57606a}td.evidence{min-width:6em;max-width:24em}summary{cursor:pointer}
td.candidate{min-width:9em;max-width:22em;background:#f6fff8}td.candidate.none{background:none}
form.accept{margin:4px 0 0}form.accept button{font-weight:600}.accepted{color:#1a7f37;font-weight:600}
"""

ORIGINS = {
    "table": "a rule of the mined table",
    "users": "what its users said next",
    "rewriter": "the rewriter's candidates",
}
"""How each origin of a candidate fix is named on the page."""


BARS = 30
"""Most bars in one breakdown chart (its table lists every group shown)."""


@dataclass(frozen=True)
class ReviewForms:
    """Turns on the review forms (the live review page passes one; the static file has none)."""

    action: str
    """Where each form POSTs."""
    hidden: Mapping[str, str] = field(default_factory=dict)
    """Extra hidden fields of every form (e.g. a CSRF token)."""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _n(value: int) -> str:
    return f"{value:,}"


def _status_class(status: str) -> str:
    return "status-" + status.replace(" ", "-")


def render_html(
    data: ReportData, *, title: str = "selflearn report", review: ReviewForms | None = None
) -> str:
    """The whole page for ``data`` (see the module docstring for the markup contract)."""
    r = _Renderer(data, review)
    body = [
        f"<h1>{_e(title)}</h1>",
        r.header(),
        r.notices(),
        r.defects(),
        r.unrecognized(),
        r.rules(),
        r.decisions(),
        r.comparison(),
        r.method(),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


class _Renderer:
    def __init__(self, data: ReportData, review: ReviewForms | None) -> None:
        self.data, self.review = data, review

    # --- pieces --------------------------------------------------------------------------------

    def form(self, rule_id: str | None, source: str, target: str) -> str:
        if self.review is None or not rule_id:
            return ""
        fields = {"rule_id": rule_id, "source": source, "target": target, **self.review.hidden}
        hidden = "".join(f'<input type="hidden" name="{_e(k)}" value="{_e(v)}">' for k, v in fields.items())
        return (
            f'<form class="review" method="post" action="{_e(self.review.action)}">{hidden}'
            f'<input type="text" name="edited_target" value="{_e(target)}" aria-label="edited target">'
            '<button type="submit" name="decision" value="approve">approve</button>'
            '<button type="submit" name="decision" value="reject">reject</button>'
            '<button type="submit" name="decision" value="edit">edit</button></form>'
        )

    def review_cells(self, rule_id: str | None, source: str, target: str, status: str | None) -> str:
        cells = f"<td>{_e(status or '')}</td>"
        if self.review is not None:
            cells += f"<td>{self.form(rule_id, source, target)}</td>"
        return cells

    def review_heads(self) -> str:
        return "<th>review</th>" + ("<th>decide</th>" if self.review is not None else "")

    @staticmethod
    def table(table_id: str, heads: Sequence[str], rows: Iterable[str], extra_heads: str = "") -> str:
        head = "".join(f"<th>{_e(h)}</th>" for h in heads) + extra_heads
        return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'

    @staticmethod
    def figure(svg: str, caption: str) -> str:
        return f"<figure>{svg}<figcaption>{_e(caption)}</figcaption></figure>"

    # --- sections ------------------------------------------------------------------------------

    def header(self) -> str:
        d = self.data
        span = (
            f"{d.first:%Y-%m-%d %H:%M} to {d.last:%Y-%m-%d %H:%M} UTC" if d.first and d.last else "no turns"
        )
        kpis = [
            ("turns", _n(d.turns)),
            ("homes / users", f"{_n(d.households)} / {_n(d.users)}"),
            ("first attempts scored", _n(d.first_attempts)),
            ("defect rate", _pct(d.defect_rate)),
            ("mean P(defect)", _pct(d.mean_p_defect)),
            ("rewrites logged", _n(d.rewrites.turns)),
            ("wins / losses", f"{_n(d.rewrites.wins)} / {_n(d.rewrites.losses)}"),
            ("wrong actions", _n(d.rewrites.wrong_actions)),
        ]
        boxes = "".join(f"<div><b>{_e(v)}</b>{_e(k)}</div>" for k, v in kpis)
        sources = [f"store <code>{_e(d.store)}</code>", f"logs {span}"]
        if d.signals.defect_model:
            sources.append(f"defect signals: {_e(d.signals.defect_model)}")
        if d.rules_source:
            sources.append(f"rewrite table: <code>{_e(d.rules_source)}</code>")
        if d.rewriter_source:
            sources.append(f"rewriter: <code>{_e(d.rewriter_source)}</code>")
        nav = " ".join(
            f'<a href="#{a}">{t}</a>'
            for a, t in (
                ("defects", "defect rate"),
                ("unrecognized-requests", "unrecognized requests"),
                ("rewrite-table", "rewrite table"),
                ("rewriter-decisions", "rewriter decisions"),
                ("before-after", "before / after"),
                ("method", "where the numbers come from"),
            )
        )
        return (
            f'<p class="meta">{"; ".join(sources)}; generated {d.generated_at:%Y-%m-%d %H:%M} UTC</p>'
            f'<div class="kpi">{boxes}</div><nav>{nav}</nav>'
        )

    def notices(self) -> str:
        return "".join(self.notice(n) for n in self.data.notices)

    @staticmethod
    def notice(n: Notice) -> str:
        command = f" Run <code>{_e(n.command)}</code>." if n.command else ""
        return f'<div class="notice {n.level}">{_e(n.text)}{command}</div>'

    def defects(self) -> str:
        d = self.data
        out = ['<h2 id="defects">Defect rate</h2>']
        if not d.has_signals or not d.days:
            out.append('<p class="note">No defect signals: nothing to show here (see the notice above).</p>')
            return "".join(out)
        out.append(
            '<p class="note">Share of first attempts (turns that rephrase no earlier turn) whose P(defect) '
            "from the store's defect signals is at least 0.5. Days and hours are UTC.</p>"
        )
        labels = [r.label for r in d.days]
        out.append(
            self.figure(
                line_chart(
                    labels,
                    [Series("defect rate", [r.rate if r.turns else None for r in d.days])],
                    title="defect rate per day",
                ),
                "Defect rate per day (first attempts).",
            )
        )
        if d.days_by_failure_point:
            series = [
                Series(FAILURE_LABELS.get(fp, fp), [r.rate if r.turns else None for r in rates])
                for fp, rates in list(d.days_by_failure_point.items())[:8]
            ]
            out.append(
                self.figure(
                    line_chart(labels, series, title="defects per day by failure point"),
                    "Defects per day at each failure point, as a share of the day's first attempts.",
                )
            )
        rows = [
            f"<tr><td>{_e(r.label)}</td><td class=n>{_n(r.turns)}</td><td class=n>{_n(r.defects)}</td>"
            f"<td class=n>{_pct(r.rate if r.turns else None)}</td></tr>"
            for r in d.days
        ]
        out.append(self.table("daily", ["day", "first attempts", "defects", "defect rate"], rows))
        for b in d.breakdowns:
            out.append(self.breakdown(b))
        return "".join(out)

    def breakdown(self, b: Breakdown) -> str:
        out = [f"<h3>Defect rate {_e(b.title)}</h3><p class=note>{_e(b.note)}</p><div class=pair>"]
        if b.rows:
            shown = b.rows[:BARS]
            more = f" (the {len(shown)} largest groups)" if len(b.rows) > len(shown) else ""
            out.append(
                self.figure(
                    bar_chart([(r.label, r.rate) for r in shown], title=f"defect rate {b.title}"),
                    f"Defect rate {b.title}{more}.",
                )
            )
        rows = [
            f"<tr><td>{_e(r.label)}</td><td class=n>{_n(r.turns)}</td><td class=n>{_n(r.defects)}</td>"
            f"<td class=n>{_pct(r.rate)}</td></tr>"
            for r in b.rows
        ]
        out.append(
            self.table(f"by-{b.key}", [b.key.replace("-", " "), "first attempts", "defects", "rate"], rows)
        )
        out.append("</div>")
        if b.more:
            out.append(f"<p class=note>{_n(b.more)} more not shown (--top).</p>")
        return "".join(out)

    def unrecognized(self) -> str:
        d = self.data
        out = ['<h2 id="unrecognized-requests">Unrecognized requests</h2>']
        if not d.has_signals:
            out.append('<p class="note">No defect signals: no failing requests to show.</p>')
            return "".join(out)
        out.append(
            '<p class="note">The requests that fail most, grouped by pattern: what was said (before any '
            "rewrite), normalised, politeness dropped, the home's configured names and the numbers "
            "replaced by <code>{area}</code>, <code>{name}</code>, <code>{floor}</code>, "
            "<code>{number}</code> -- the form in which the rewrite table looks requests up. Failing: "
            "turns (first attempts and retries) whose P(defect) is at least 0.5; works: the share of the "
            "pattern's scored turns that are not. Best candidate: the best fix selflearn has for the "
            "pattern, also one the rewriter would not apply unasked -- a mined rule, what the pattern's "
            "own users said right after it failed and that worked, or the rewriter's candidates -- with "
            "where it comes from and its evidence; it is offered only when it keeps the request's names "
            "and numbers, the latest failing requests rewritten by it parse in Home Assistant's "
            "templates, and it neither flips the action nor touches locks, covers or alarms. Fixes: "
            "<b>table</b> a mined rule; <b>logged</b> what the online rewriter did to these requests; "
            "<b>rewriter</b> what the given rewriter decides now for the latest failing example; "
            "<b>concept</b> something the home taught.</p>"
        )
        offered = sum(p.candidate is not None for p in d.unrecognized)
        out.append(
            f'<p class="note" id="candidates-offered">A candidate fix is offered for <b>{_n(offered)}</b> '
            f"of the {_n(len(d.unrecognized))} failing patterns shown"
            + (
                " (Accept as rule: the next failing request of the pattern is rewritten to it)."
                if self.review
                else "."
            )
            + "</p>"
        )
        heads = [
            "#",
            "pattern",
            "failing",
            "works",
            "users",
            "homes",
            "failure point",
            "examples",
            "best candidate",
            "fix",
            "target",
            "evidence",
            "status",
        ]
        rows = []
        for i, p in enumerate(d.unrecognized, 1):
            rows.extend(self.pattern_rows(i, p))
        out.append(self.table("unrecognized", heads, rows, self.review_heads()))
        if d.unrecognized_more:
            out.append(
                f"<p class=note>{_n(d.unrecognized_more)} more failing patterns not shown (--top).</p>"
            )
        return "".join(out)

    def pattern_rows(self, i: int, p: Pattern) -> list[str]:
        fixes: list[Fix | None] = list(p.fixes) or [None]
        span = f' rowspan="{len(fixes)}"' if len(fixes) > 1 else ""
        examples = "".join(
            f"<li>{_e(x.text)} <span class=small>×{x.times} ({_e(x.home)}, last {x.last_seen:%Y-%m-%d}, "
            f"{_e(x.status or 'no result')})</span></li>"
            for x in p.examples
        )
        points = ", ".join(f"{FAILURE_LABELS.get(k, k)} {v}" for k, v in p.failure_points.items())
        where = FAILURE_LABELS.get(p.failure_point or "", p.failure_point or "")
        head = (
            f"<td{span} class=n>{i}</td><td{span} class=pattern><code>{_e(p.pattern)}</code></td>"
            f"<td{span} class=n>{_n(p.failing)}</td><td{span} class=n>{_pct(p.success_rate)}</td>"
            f"<td{span} class=n>{_n(p.users)}</td><td{span} class=n>{_n(p.homes)}</td>"
            f'<td{span} title="{_e(points)}">{_e(where)}</td>'
            f"<td{span} class=examples><ul class=examples>{examples}</ul></td>" + self.candidate_cell(p, span)
        )
        rows = []
        for k, fix in enumerate(fixes):
            first = head if k == 0 else ""
            if fix is None:
                note = "no fix learned yet"
                if p.rewriter_note:
                    note = (
                        f"<details><summary>the rewriter leaves it</summary>{_e(p.rewriter_note)}</details>"
                    )
                empty = "<td></td>" * (2 if self.review is not None else 1)
                rows.append(
                    f'<tr data-pattern="{_e(p.pattern)}">{first}<td>–</td>'
                    f"<td colspan=3 class=small>{note}</td>{empty}</tr>"
                )
                continue
            attr = f' data-rule-id="{_e(fix.rule_id)}"' if fix.rule_id else ""
            status = f'<span class="{_status_class(fix.status)}">{_e(fix.status)}</span>'
            rule = fix.rule_id if fix.kind != "concept" else None
            rows.append(
                f'<tr{attr} data-pattern="{_e(p.pattern)}">{first}<td>{_e(fix.kind)}</td>'
                f'<td><code>{_e(fix.target)}</code></td><td class="small evidence">{_e(fix.evidence)}</td>'
                f"<td>{status}</td>{self.review_cells(rule, fix.source, fix.target, fix.review)}</tr>"
            )
        return rows

    def candidate_cell(self, p: Pattern, span: str) -> str:
        c = p.candidate
        if c is None:
            note = p.candidate_note or "none offered"
            return (
                f'<td{span} class="candidate none small"><details><summary>none offered</summary>'
                f"{_e(note)}</details></td>"
            )
        origins = " and ".join(ORIGINS[o] for o in c.origins)
        return (
            f'<td{span} class="candidate" data-candidate="{_e(c.target)}" data-decision="{c.decision}">'
            f"<code>{_e(c.target)}</code><div class=small>from {_e(origins)}; e.g. "
            f'<q>{_e(c.example)}</q></div><div class="small evidence">{_e(c.evidence)}</div>'
            f"{self.accept(c)}</td>"
        )

    def accept(self, c: CandidateFix) -> str:
        if c.review in ("approved", "edited"):
            return f'<span class="accepted">accepted as a rule ({_e(c.review)})</span>'
        if self.review is None:
            return ""
        fields = {
            "rule_id": c.rule_id or "",
            "source": c.source,
            "target": c.target,
            "edited_target": c.target,
            **self.review.hidden,
        }
        hidden = "".join(f'<input type="hidden" name="{_e(k)}" value="{_e(v)}">' for k, v in fields.items())
        return (
            f'<form class="accept" method="post" action="{_e(self.review.action)}">{hidden}'
            '<button type="submit" name="decision" value="accept">Accept as rule</button></form>'
        )

    def rules(self) -> str:
        d = self.data
        out = ['<h2 id="rewrite-table">Rewrite table</h2>']
        if d.rules_source is None:
            out.append(
                '<p class="note">No rewrite table given: pass <code>--table models/rewrites</code> '
                "(written by <code>selflearn mine</code>) or <code>--rewriter models/rewriter</code>.</p>"
            )
            return "".join(out)
        out.append(
            f'<p class="note">Mined rules of <code>{_e(d.rules_source)}</code>: source pattern -> target '
            "pattern, how often each works (p), the users, homes and reformulation chains (support) behind "
            "the rule, and what happened when the precomputed layer applied it in these logs (wins: the "
            "rewritten turn was not a defect; losses: it was; wrong actions: losses where the assistant "
            "acted). The miner demotes a deployed rule when it is credibly worse since deployment "
            "(<code>selflearn mine</code> again); a rule with more losses than wins in these logs is marked "
            "<b>would be demoted</b>. <i>From</i>: mined from logs, or a community release "
            "(<code>selflearn community pull</code>; its users, homes and support are the release's noisy "
            "count of installs, and each home withdraws a rule that keeps failing there).</p>"
        )
        heads = [
            "rule",
            "source",
            "target",
            "example",
            "p source -> target",
            "users",
            "homes",
            "support",
            "sensitive",
            "status",
            "why",
            "from",
            "applied",
            "wins",
            "losses",
            "wrong actions",
        ]
        rows = [self.rule_row(rule) for rule in d.rules]
        out.append(self.table("rules", heads, rows, self.review_heads()))
        if d.rules_more:
            out.append(f"<p class=note>{_n(d.rules_more)} more rules not shown.</p>")
        return "".join(out)

    def rule_row(self, r: Rule) -> str:
        o = r.logged
        return (
            f'<tr data-rule-id="{_e(r.rule_id)}"><td><code>{_e(r.rule_id)}</code></td>'
            f"<td><code>{_e(r.source)}</code></td><td><code>{_e(r.target)}</code></td>"
            f"<td class=small>{_e(r.source_example)} -> {_e(r.target_example)}</td>"
            f"<td class=n>{r.p_source:.0%} -> {r.p_target:.0%}</td><td class=n>{_n(r.users)}</td>"
            f"<td class=n>{_n(r.households)}</td><td class=n>{_n(r.support)}</td>"
            f"<td>{'yes' if r.sensitive else ''}</td>"
            f'<td class="{_status_class(r.status)}">{_e(r.status)}</td>'
            f'<td class="small evidence">{_e(r.reason)}</td>'
            f"<td class=small>{_e(_origin(r.community))}</td>"
            f"<td class=n>{_n(o.turns)}</td><td class=n>{_n(o.wins)}</td><td class=n>{_n(o.losses)}</td>"
            f"<td class=n>{_n(o.wrong_actions)}</td>"
            + self.review_cells(r.rule_id, r.source, r.target, r.review)
            + "</tr>"
        )

    def decisions(self) -> str:
        d = self.data
        out = ['<h2 id="rewriter-decisions">Rewriter decisions</h2>']
        if not d.decisions:
            out.append(
                '<p class="note">No logged rewrites: no turn in this store carries a rewrite '
                "(<code>turn.rewrite</code>), so the online rewriter's decisions cannot be judged yet.</p>"
            )
            return "".join(out)
        o = d.rewrites
        out.append(
            '<p class="note">Every turn the online rewriter changed carries the layer, the rule and the '
            "score (<code>turn.rewrite</code>); its outcome is the rewritten turn's defect signal. "
            f"{_n(o.turns)} rewritten turns: {_n(o.wins)} wins (not a defect), {_n(o.losses)} losses (a "
            "defect), of which "
            f"{_n(o.wrong_actions)} wrong actions (the assistant acted and the user objected)"
            + (f", {_n(o.unscored)} not scored" if o.unscored else "")
            + ". Whether a request would have worked without the rewrite is not in the logs; the 'works "
            "unrewritten' column is the same pattern's success rate in turns that were not rewritten. The "
            "online layers (ranked retrieval, n-best, the household's own fixes) have no demotion of their "
            "own -- a household's no to a question only stops that proposal in that home -- so a rule with "
            "more losses than wins is marked <b>would be demoted</b>.</p>"
        )
        heads = [
            "rule",
            "logged as",
            "layer",
            "source",
            "target",
            "applied",
            "wins",
            "losses",
            "wrong actions",
            "wins / loss",
            "works unrewritten",
            "mean score",
            "homes",
            "verdict",
            "why",
        ]
        rows = [self.decision_row(x) for x in d.decisions]
        out.append(self.table("decisions", heads, rows, self.review_heads()))
        if d.decisions_more:
            out.append(f"<p class=note>{_n(d.decisions_more)} more decisions not shown.</p>")
        return "".join(out)

    def decision_row(self, x: Decision) -> str:
        o = x.outcomes
        ratio = "–" if o.ratio is None else f"{o.ratio:.1f}"
        unrewritten = (
            f"{_pct(x.worked_unrewritten)} of {_n(x.unrewritten_turns)}"
            if x.worked_unrewritten is not None
            else "–"
        )
        return (
            f'<tr data-rule-id="{_e(x.rule_id)}"><td><code>{_e(x.rule_id)}</code></td>'
            f"<td class=small>{_e(x.logged_rule or '')}</td>"
            f"<td>{_e(x.layer if x.community is None else f'{x.layer} ({_origin(x.community)})')}</td>"
            f"<td><code>{_e(x.source)}</code></td><td><code>{_e(x.target)}</code></td>"
            f"<td class=n>{_n(o.turns)}</td><td class=n>{_n(o.wins)}</td><td class=n>{_n(o.losses)}</td>"
            f"<td class=n>{_n(o.wrong_actions)}</td><td class=n>{ratio}</td><td class=n>{unrewritten}</td>"
            f"<td class=n>{x.mean_score:.2f}</td><td class=n>{_n(x.homes)}</td>"
            f'<td class="{_status_class(x.verdict)}">{_e(x.verdict)}</td>'
            f'<td class="small evidence">{_e(x.reason)}</td>'
            + self.review_cells(x.rule_id, x.source, x.target, x.review)
            + "</tr>"
        )

    def comparison(self) -> str:
        c = self.data.comparison
        out = ['<h2 id="before-after">Before / after</h2>']
        if c is None:
            out.append('<p class="note">No comparison: no scored turns, or one day only.</p>')
            return "".join(out)
        how = "the first and second half of the store's days" if c.defaulted else "--before and --after"
        out.append(
            f'<p class="note">Two date ranges ({_e(how)}; whole UTC days, both ends included). The defect '
            "rate is over first attempts; the failure-point rows are defects at that point as a share of "
            "the range's first attempts.</p>"
        )
        b, a = c.before, c.after
        bars = [(f"before {b.range.label}", b.rate or 0.0), (f"after {a.range.label}", a.rate or 0.0)]
        out.append(
            self.figure(
                bar_chart(bars, title="defect rate before and after"), "Defect rate before and after."
            )
        )
        out.append(self.comparison_table(c))
        return "".join(out)

    @staticmethod
    def comparison_table(c: Comparison) -> str:
        b, a = c.before, c.after

        def row(name: str, x: str, y: str, delta: str = "") -> str:
            cells = "".join(f"<td class=n>{v}</td>" for v in (x, y, delta))
            return f"<tr><td>{_e(name)}</td>{cells}</tr>"

        def change(x: float | None, y: float | None) -> str:
            return "" if x is None or y is None else f"{(y - x) * 100:+.1f} pts"

        def rw(p: Period) -> Outcomes:
            return p.rewrites

        rows = [
            row("turns", _n(b.turns), _n(a.turns)),
            row("homes", _n(b.homes), _n(a.homes)),
            row("first attempts scored", _n(b.first_attempts), _n(a.first_attempts)),
            row("defects", _n(b.defects), _n(a.defects)),
            row("defect rate", _pct(b.rate), _pct(a.rate), change(b.rate, a.rate)),
            row(
                "mean P(defect)",
                _pct(b.mean_p_defect),
                _pct(a.mean_p_defect),
                change(b.mean_p_defect, a.mean_p_defect),
            ),
            row("rewrites logged", _n(rw(b).turns), _n(rw(a).turns)),
            row("wins", _n(rw(b).wins), _n(rw(a).wins)),
            row("losses", _n(rw(b).losses), _n(rw(a).losses)),
            row("wrong actions", _n(rw(b).wrong_actions), _n(rw(a).wrong_actions)),
        ]
        points = set(b.by_failure_point) | set(a.by_failure_point)
        for fp in sorted(
            points, key=lambda p: (-b.by_failure_point.get(p, 0) - a.by_failure_point.get(p, 0), p)
        ):
            x = b.by_failure_point.get(fp, 0) / b.first_attempts if b.first_attempts else None
            y = a.by_failure_point.get(fp, 0) / a.first_attempts if a.first_attempts else None
            rows.append(row(f"defects at: {FAILURE_LABELS.get(fp, fp)}", _pct(x), _pct(y), change(x, y)))
        heads = "".join(
            f"<th>{_e(h)}</th>" for h in ("", f"before {b.range.label}", f"after {a.range.label}", "change")
        )
        return f'<table id="comparison"><thead><tr>{heads}</tr></thead><tbody>{"".join(rows)}</tbody></table>'

    def method(self) -> str:
        d = self.data
        fp = (
            f"the <code>fpi</code> table ({_e(d.signals.fpi_model)}) for {_n(d.signals.fpi_turns)} "
            "scored turns, else the turn's own trace"
            if d.signals.fpi_model
            else "each turn's own stage trace, first match wins: a known false wake; no trace; recogniser "
            "confidence below 0.5 (ASR); not understood (NLU); a name not resolved (entity resolution); "
            "an error or unsupported result; a question asked; otherwise the assistant acted and the user "
            "objected"
        )
        items = [
            "Nothing here reads simulation truth: every number is what selflearn estimated from the logs, "
            "so the report reads the same on real logs.",
            "<b>Defect</b>: P(defect) of at least 0.5 in the <code>defects</code> table written by "
            "<code>selflearn signals</code> (the heuristic or the learned defect model).",
            "<b>First attempt</b>: a turn the <code>rephrases</code> table links to no earlier turn.",
            f"<b>Failure point</b>: {fp}.",
            "<b>Households</b> appear only as <code>h-</code> plus a short stable hash of the id; turn, "
            "user, session and device ids are never shown.",
            "<b>Patterns</b>: the request delexicalized with its home's configured names "
            "(<code>selflearn.core.delex</code>), as the rewrite table looks it up.",
            "<b>Wins, losses, wrong actions</b>: rewritten turns (<code>turn.rewrite</code>) that are not a "
            "defect, that are, and losses where the result was a success (the assistant acted).",
            "<b>Rule ids</b>: a mined rule's own id; for the online layers, <code>p</code> and a stable "
            "hash of the (source, target) pattern pair, the id a review of it gets; the logged rule is "
            "shown beside it.",
        ]
        return (
            '<h2 id="method">Where the numbers come from</h2><ul>'
            + "".join(f"<li>{i}</li>" for i in items)
            + "</ul>"
        )


def _origin(release: str | None) -> str:
    """Where a table rule came from: a community release, or mined from logs."""
    return "mined" if release is None else f"release {release}"
