"""``selflearn report``: one self-contained HTML page of what selflearn found and learned --
defect rates over time and by intent, failure point, home, area and hour; the requests that fail
most, the fix selflearn learned or proposes for each and the best candidate it has, also one the
rewriter would not apply unasked; the rewrite table; the online
rewriter's logged decisions (wins, losses, wrong actions, demotions); a before/after comparison
(``docs/report.md``).

>>> from selflearn import Store
>>> from selflearn.report import collect, render_html
>>> with Store("selflearn.duckdb", read_only=True) as store:          # doctest: +SKIP
...     data = collect(store, table=Path("models/rewrites"))
>>> Path("report.html").write_text(render_html(data))                 # doctest: +SKIP

:func:`collect` (:mod:`selflearn.report.collect`, into the dataclasses of
:mod:`selflearn.report.views`) is pure data, :func:`render_html`
(:mod:`selflearn.report.render`) the page; the live review page of ``selflearn serve`` renders
the same data with :class:`ReviewForms`.
"""

from selflearn.report.collect import collect
from selflearn.report.render import ReviewForms, render_html
from selflearn.report.views import (
    STAGES,
    Breakdown,
    CandidateFix,
    Comparison,
    DateRange,
    Decision,
    Example,
    Fix,
    Notice,
    Outcomes,
    Pattern,
    Period,
    Rate,
    ReportData,
    Rule,
    Signals,
    pseudonym,
)

__all__ = [
    "STAGES",
    "Breakdown",
    "CandidateFix",
    "Comparison",
    "DateRange",
    "Decision",
    "Example",
    "Fix",
    "Notice",
    "Outcomes",
    "Pattern",
    "Period",
    "Rate",
    "ReportData",
    "ReviewForms",
    "Rule",
    "Signals",
    "collect",
    "pseudonym",
    "render_html",
]
