"""The community global layer (issue 44; ``docs/community.md``): installs share bounded,
delexicalized fix evidence (:mod:`~selflearn.community.contribution`), an aggregator releases the
pairs that pass differential-privacy partition selection over distinct installs
(:mod:`~selflearn.community.aggregate`) as a signed global rewrite table
(:mod:`~selflearn.community.release`), and installs verify and serve it.

Names are imported on first access (PEP 562): the aggregator's DP library and the rewriter load
only when used."""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from selflearn.core.lazy import lazy_exports as _lazy_exports

if _TYPE_CHECKING:
    from selflearn.community.aggregate import (
        AggregateConfig,
        AggregateReport,
        DuckDbAggregation,
        Released,
        SparkAggregation,
        aggregate,
        read_contributions,
        spark_session,
    )
    from selflearn.community.contribution import (
        Contribution,
        ContributionConfig,
        Evidence,
        build_contribution,
        evidence_by_household,
        read_contribution,
        write_contribution,
    )
    from selflearn.community.enrolment import EnrolmentConfig, Register
    from selflearn.community.ledger import Ledger
    from selflearn.community.release import install_release, load_release, verify_release, write_release

_LAZY = {
    "AggregateConfig": "selflearn.community.aggregate",
    "AggregateReport": "selflearn.community.aggregate",
    "DuckDbAggregation": "selflearn.community.aggregate",
    "Released": "selflearn.community.aggregate",
    "SparkAggregation": "selflearn.community.aggregate",
    "aggregate": "selflearn.community.aggregate",
    "read_contributions": "selflearn.community.aggregate",
    "spark_session": "selflearn.community.aggregate",
    "Contribution": "selflearn.community.contribution",
    "ContributionConfig": "selflearn.community.contribution",
    "Evidence": "selflearn.community.contribution",
    "build_contribution": "selflearn.community.contribution",
    "evidence_by_household": "selflearn.community.contribution",
    "read_contribution": "selflearn.community.contribution",
    "write_contribution": "selflearn.community.contribution",
    "EnrolmentConfig": "selflearn.community.enrolment",
    "Register": "selflearn.community.enrolment",
    "Ledger": "selflearn.community.ledger",
    "install_release": "selflearn.community.release",
    "load_release": "selflearn.community.release",
    "verify_release": "selflearn.community.release",
    "write_release": "selflearn.community.release",
}

__getattr__, __dir__ = _lazy_exports(__name__, _LAZY, globals())

__all__ = [
    "AggregateConfig",
    "AggregateReport",
    "Contribution",
    "ContributionConfig",
    "DuckDbAggregation",
    "EnrolmentConfig",
    "Evidence",
    "Ledger",
    "Register",
    "Released",
    "SparkAggregation",
    "aggregate",
    "build_contribution",
    "evidence_by_household",
    "install_release",
    "load_release",
    "read_contribution",
    "read_contributions",
    "spark_session",
    "verify_release",
    "write_contribution",
    "write_release",
]
