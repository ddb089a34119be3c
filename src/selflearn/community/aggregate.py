"""The community aggregator: ``selflearn community aggregate``.

It reads every contribution of one period (:mod:`selflearn.community.contribution`), sets aside
the malformed ones (moved to a quarantine folder with the reason beside them), drops the pairs the
community never releases (:func:`~selflearn.community.contribution.refusal`: a colluding group
writes its own files, so the install's filter is applied again), merges the rest on an engine and
releases, with **central differential privacy** whose unit is the *install*:

* **partition selection** over distinct installs per (failing, fixing) pair -- only pairs that
  enough installs sent can be released, and a pair one install sent is released with
  probability at most ``delta``;
* a **noisy count** of the installs per released pair, and a **noisy sum** of how much the fixing
  pattern helped each install (in [0, 1]: its rescues and wins over all its evidence), whose ratio
  says how often the fix worked.

The mechanisms come from ``pipeline-dp`` (OpenMined; partition selection from Google's
differential-privacy library through ``python-dp``): ``DPEngine.aggregate`` with the
``PRIVACY_ID_COUNT`` and ``SUM`` metrics and Laplace noise over the pairs
``DPEngine.select_partitions`` chose with truncated-geometric partition selection (Desfontaines,
Voss, Gipson, Mandayam: "Differentially private partition selection", PoPETs 2022), each
install's contribution bounded to ``max_patterns`` pairs and one contribution per pair.
Selection spends ``selection_share`` of epsilon (default half) and all of delta; the count and
the sum over the selected pairs split the rest (``NaiveBudgetAccountant``; basic sequential
composition): the release is (epsilon, delta)-DP for each install's contribution of that period,
and an install that contributes in T periods is protected by (T epsilon, T delta) over their
releases.

The engine that merges is a parameter, as for mining (:mod:`selflearn.mining.engines`): the
contributions become one Arrow table, the engine runs :data:`MERGE_SQL` over it and hands the
rows to pipeline-dp's backend for that engine: :class:`DuckDbAggregation` (DuckDB in this process,
``pipeline_dp.LocalBackend``: tests and one machine) or :class:`SparkAggregation` (the same SQL in
Spark SQL, then ``pipeline_dp.SparkRDDBackend`` on the rows' RDD: a large population). Everything
else -- the refusals, the DP step, its parameters -- is the same code on both.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

import duckdb
import pyarrow as pa

from selflearn.community.contribution import Contribution, read_contribution, refusal, weeks_ending
from selflearn.core.errors import ConfigError, DataError, DependencyError

Strategy = Literal["truncated_geometric", "laplace", "gaussian"]

EVIDENCE_SCHEMA = pa.schema(
    [
        ("install", pa.string()),
        ("failing", pa.string()),
        ("fixing", pa.string()),
        ("helped", pa.float64()),
    ]
)
"""One row per (install, pair) of every accepted contribution."""

MERGE_SQL = """
SELECT install, failing, fixing, helped FROM (
  SELECT install, failing, fixing, avg(helped) AS helped,
         row_number() OVER (
           PARTITION BY install
           ORDER BY count(*) DESC, avg(helped) DESC, md5(failing || ' -> ' || fixing)
         ) AS strength
  FROM evidence
  GROUP BY install, failing, fixing
) ranked
WHERE strength <= {max_patterns}
ORDER BY install, failing, fixing
"""
"""One row per install and pair, at most ``max_patterns`` pairs per install: an install that sent
several files (the weeks a release pools, or two files for one week) counts once per pair, and
keeps the pairs it sent in most files, then those that helped it most, ties in an order that
favours no words (an MD5 of the pair: the same in DuckDB and Spark). The bound depends on the
install's own evidence only, so it is the per-install contribution bounding DP needs (pipeline-dp
then finds nothing over its bounds)."""


@dataclass(frozen=True)
class AggregateConfig:
    """How a release is made."""

    epsilon: float
    """The release's privacy budget for each install's contribution of the period."""
    delta: float
    """Probability bound of the partition selection (a pair one install sent is released with
    probability at most this); well below 1 / installs."""
    max_patterns: int = 10
    """Pairs one install may contribute per period (the L0 bound; a file with more is quarantined)."""
    min_installs: int = 1
    """Pre-threshold: a pair also needs at least this many distinct installs (1: DP alone)."""
    min_helped: float = 0.5
    """A released pair becomes a rule when its noisy share of help is at least this."""
    strategy: Strategy = "truncated_geometric"
    """pipeline-dp's partition selection strategy."""
    selection_share: float = 0.5
    """Share of epsilon spent on partition selection; the rest is split evenly between the noisy
    count of installs and the noisy sum of help."""
    period: str | None = None
    """The period to release (default: the one most contributions are of); with ``weeks`` > 1,
    the last week the release pools."""
    weeks: int = 1
    """ISO weeks one release pools: ``period`` and the ``weeks - 1`` before it. An install's pairs
    over all of them are bounded together to ``max_patterns``, so epsilon covers each install's
    contributions of every pooled week (release every ``weeks`` weeks to spend it once per week
    of logs)."""

    def __post_init__(self) -> None:
        if not self.epsilon > 0:
            raise ConfigError(f"epsilon must be positive, got {self.epsilon!r}")
        if not 0 < self.delta < 1:
            raise ConfigError(f"delta must be between 0 and 1 (exclusive), got {self.delta!r}")
        if self.max_patterns < 1 or self.min_installs < 1:
            raise ConfigError("max_patterns and min_installs must be at least 1")
        if not 1 <= self.weeks <= 52:
            raise ConfigError(f"weeks must be between 1 and 52, got {self.weeks!r}")
        if not 0.0 <= self.min_helped <= 1.0:
            raise ConfigError(f"min_helped must be between 0 and 1, got {self.min_helped!r}")
        if not 0.0 < self.selection_share < 1.0:
            raise ConfigError(f"selection_share must be between 0 and 1, got {self.selection_share!r}")
        if self.strategy not in get_args(Strategy):
            raise ConfigError(f"unknown partition selection strategy {self.strategy!r}")


@dataclass(frozen=True)
class Released:
    """A pair the release publishes, with its noisy statistics."""

    failing: str
    fixing: str
    installs: float
    """Noisy count of distinct installs that sent the pair."""
    helped: float
    """Noisy share of help (noisy sum / noisy count, clipped to [0, 1])."""


@dataclass
class AggregateReport:
    """What the aggregator read and did (exact counts: kept by the aggregator, not released)."""

    period: str = ""
    periods: list[str] = field(default_factory=list)
    """Every ISO week the release pools, oldest first (``period`` is the last)."""
    files: int = 0
    accepted: int = 0
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    """(file, reason) of each contribution set aside."""
    other_periods: int = 0
    records: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    """Records dropped before the DP step, by reason (sensitive, polarity, ...)."""
    released: list[Released] = field(default_factory=list)


class AggregationEngine(Protocol):
    """Where the contributions are merged before the DP step."""

    name: str

    def merged(self, evidence: pa.Table, max_patterns: int) -> Any:
        """The rows of :data:`MERGE_SQL` over ``evidence`` (:data:`EVIDENCE_SCHEMA`), at most
        ``max_patterns`` per install, as a collection ``backend()`` reads: tuples
        ``(install, (failing, fixing), helped)``."""

    def backend(self) -> Any:
        """The pipeline-dp backend that runs the DP aggregation over :meth:`merged`."""


class DuckDbAggregation:
    """Merging in an in-memory DuckDB; the DP step on ``pipeline_dp.LocalBackend`` (one machine)."""

    name = "duckdb"

    def merged(self, evidence: pa.Table, max_patterns: int) -> list[tuple[str, tuple[str, str], float]]:
        con = duckdb.connect()
        try:
            con.register("evidence", evidence)
            rows = con.sql(MERGE_SQL.format(max_patterns=int(max_patterns))).fetchall()
        finally:
            con.close()
        return [(str(i), (str(a), str(b)), float(h)) for i, a, b, h in rows]

    def backend(self) -> Any:
        return _pipeline_dp().LocalBackend()


NEED_SPARK = "the Spark aggregator needs pyspark: pip install 'selflearn[spark,community]'"


class SparkAggregation:
    """Merging in Spark SQL (the same :data:`MERGE_SQL`); the DP step on
    ``pipeline_dp.SparkRDDBackend`` over the merged rows' RDD (a large population).

    ``spark`` is a running ``SparkSession`` (:func:`spark_session` starts one); it is left
    running. The merged rows are materialized once on the executors (``localCheckpoint``: the DP
    step reads them twice), and only the pairs partition selection chose and their noisy
    statistics come back to the driver."""

    name = "spark"

    def __init__(self, spark: Any) -> None:
        self.spark = spark

    def merged(self, evidence: pa.Table, max_patterns: int) -> Any:
        frame = self.spark.createDataFrame(evidence)
        frame.createOrReplaceTempView("evidence")
        try:
            # Spark's adaptive execution coalesces the sorted result into few partitions (one for
            # 50,000 rows in local mode), and the DP step's RDD stages keep that count: spread the
            # rows over every core, still in MERGE_SQL's order.
            order = ["install", "failing", "fixing"]
            cores = int(self.spark.sparkContext.defaultParallelism)
            rows = (
                self.spark.sql(MERGE_SQL.format(max_patterns=int(max_patterns)))
                .repartitionByRange(max(cores, 1), *order)
                .sortWithinPartitions(*order)
                .localCheckpoint()
            )
        finally:
            self.spark.catalog.dropTempView("evidence")
        # A lambda (pickled by value), so that the Python workers need not import selflearn.
        return rows.rdd.map(lambda r: (r[0], (r[1], r[2]), float(r[3])))

    def backend(self) -> Any:
        return _pipeline_dp().SparkRDDBackend(self.spark.sparkContext)


def spark_session(master: str | None = "local[2]") -> Any:
    """A Spark session for :class:`SparkAggregation`: ``local[N]`` starts one in this process
    (set up as the miner's, :func:`selflearn.mining.engines.local_session`; stop it when done),
    any other master URL connects to that cluster, and ``None`` uses the session already active
    or the one ``spark-submit`` configures."""
    if importlib.util.find_spec("pyspark") is None:
        raise DependencyError(NEED_SPARK)
    if master and master.startswith("local"):
        from selflearn.mining.engines import local_session

        return local_session(master)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("selflearn-aggregate")
    return (builder.master(master) if master else builder).getOrCreate()


def _pipeline_dp() -> Any:
    try:
        import pipeline_dp
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise DependencyError(
            "the community aggregator needs pipeline-dp: pip install 'selflearn[community]'"
        ) from exc
    return pipeline_dp


def read_contributions(
    folder: str | Path,
    config: AggregateConfig,
    quarantine: str | Path | None = None,
    report: AggregateReport | None = None,
) -> list[Contribution]:
    """Every valid contribution (``*.jsonl`` directly in ``folder``) of the release's period;
    each malformed one is moved to ``quarantine`` (default ``folder/quarantine``) with a
    ``<name>.reason.txt`` beside it saying which record and field were wrong."""
    src = Path(folder)
    if not src.is_dir():
        raise DataError(f"no folder of contributions at {src}")
    jail = Path(quarantine) if quarantine is not None else src / "quarantine"
    report = report if report is not None else AggregateReport()
    good: list[Contribution] = []
    for path in sorted(src.glob("*.jsonl")):
        report.files += 1
        try:
            good.append(read_contribution(path, config.max_patterns))
        except DataError as exc:
            jail.mkdir(parents=True, exist_ok=True)
            target = jail / path.name
            shutil.move(str(path), target)
            target.with_name(target.name + ".reason.txt").write_text(str(exc) + "\n", encoding="utf-8")
            report.quarantined.append((path.name, str(exc)))
    chosen = pooled(good, config, report)
    report.other_periods = len(good) - len(chosen)
    report.accepted = len(chosen)
    return chosen


def pooled(
    contributions: list[Contribution], config: AggregateConfig, report: AggregateReport
) -> list[Contribution]:
    """The contributions of the weeks the release pools: ``config.weeks`` ending with
    ``config.period``, or by default the window of that many weeks holding most contributions
    (one week: the week most contributions are of; the earliest on a tie). The weeks go into
    ``report`` (``period``: the last, ``periods``: all)."""
    counts = Counter(c.period for c in contributions)

    def held(end: str) -> int:
        return sum(counts[w] for w in weeks_ending(end, config.weeks))

    period = config.period or (max(sorted(counts), key=held) if counts else "")
    report.period = period
    report.periods = weeks_ending(period, config.weeks) if period else []
    weeks = set(report.periods)
    return [c for c in contributions if c.period in weeks]


def aggregate(
    contributions: list[Contribution],
    config: AggregateConfig,
    engine: AggregationEngine | None = None,
    report: AggregateReport | None = None,
) -> AggregateReport:
    """Release the pairs of ``contributions`` that pass DP partition selection over distinct
    installs, with noisy counts (see the module docstring); returns the report, whose
    ``released`` holds them."""
    engine = engine or DuckDbAggregation()
    report = report if report is not None else AggregateReport()
    merged = engine.merged(evidence_table(contributions, report), config.max_patterns)
    report.released = dp_release(merged, config, engine.backend())
    return report


def evidence_table(contributions: list[Contribution], report: AggregateReport | None = None) -> pa.Table:
    """The accepted records of ``contributions`` as one :data:`EVIDENCE_SCHEMA` table, the pairs
    the community never releases (:func:`~selflearn.community.contribution.refusal`) left out and
    counted in ``report`` (``records``, ``refused``). The refusal is decided once per distinct
    pair, and the table is built column by column."""
    report = report if report is not None else AggregateReport()
    refused: Counter[str] = Counter()
    verdicts: dict[tuple[str, str], str | None] = {}
    installs: list[str] = []
    failing: list[str] = []
    fixing: list[str] = []
    helped: list[float] = []
    for c in contributions:
        report.records += len(c.records)
        for r in c.records:
            pair = (r.failing, r.fixing)
            if pair in verdicts:
                why = verdicts[pair]
            else:
                why = verdicts[pair] = refusal(r.failing, r.fixing)
            if why is not None:
                refused[why] += 1
                continue
            installs.append(c.install)
            failing.append(r.failing)
            fixing.append(r.fixing)
            helped.append(r.helped)
    for why, n in refused.items():
        report.refused[why] = report.refused.get(why, 0) + n
    report.refused = dict(sorted(report.refused.items()))
    return pa.table([installs, failing, fixing, helped], schema=EVIDENCE_SCHEMA)


def dp_release(merged: Any, config: AggregateConfig, backend: Any) -> list[Released]:
    """The DP step on ``backend`` over ``merged`` rows ``(install, (failing, fixing), helped)``,
    two pipeline-dp computations composed in sequence: ``DPEngine.select_partitions`` with
    ``selection_share`` of epsilon and all of delta, then ``DPEngine.aggregate`` of the installs'
    count and the sum of help over the selected pairs (as public partitions) with the rest of
    epsilon, split evenly between the two."""
    if not merged:  # no evidence left (every record refused); pipeline-dp refuses an empty list
        return []
    dp = _pipeline_dp()
    strategies = {
        "truncated_geometric": dp.PartitionSelectionStrategy.TRUNCATED_GEOMETRIC,
        "laplace": dp.PartitionSelectionStrategy.LAPLACE_THRESHOLDING,
        "gaussian": dp.PartitionSelectionStrategy.GAUSSIAN_THRESHOLDING,
    }
    extractors = dp.DataExtractors(
        privacy_id_extractor=lambda row: row[0],
        partition_extractor=lambda row: row[1],
        value_extractor=lambda row: row[2],
    )
    selecting = dp.NaiveBudgetAccountant(
        total_epsilon=config.epsilon * config.selection_share, total_delta=config.delta
    )
    chosen = dp.DPEngine(selecting, backend).select_partitions(
        merged,
        dp.SelectPartitionsParams(
            max_partitions_contributed=config.max_patterns,
            partition_selection_strategy=strategies[config.strategy],
            pre_threshold=config.min_installs if config.min_installs > 1 else None,
        ),
        extractors,
    )
    selecting.compute_budgets()
    # The selection is drawn once, here, and handed to the second computation as a list (both
    # backends filter by a local set and add the empty public partitions from it): the local
    # backend's collections are lazy iterables and Spark's RDDs recompute -- each pass would
    # draw the selection's noise again.
    selected = _collect(chosen)
    if not selected:
        return []
    counting = dp.NaiveBudgetAccountant(
        total_epsilon=config.epsilon * (1.0 - config.selection_share), total_delta=0.0
    )
    params = dp.AggregateParams(
        metrics=[dp.Metrics.PRIVACY_ID_COUNT, dp.Metrics.SUM],
        noise_kind=dp.NoiseKind.LAPLACE,
        max_partitions_contributed=config.max_patterns,
        max_contributions_per_partition=1,
        min_value=0.0,
        max_value=1.0,
    )
    result = dp.DPEngine(counting, backend).aggregate(merged, params, extractors, public_partitions=selected)
    counting.compute_budgets()
    out = []
    for (failing, fixing), metrics in _collect(result):
        count = float(metrics.privacy_id_count)
        helped = min(1.0, max(0.0, float(metrics.sum) / count)) if count > 0 else 0.0
        out.append(Released(failing, fixing, max(0.0, count), helped))
    out.sort(key=lambda r: (r.failing, -r.installs, r.fixing))
    return out


def _collect(collection: Any) -> list[Any]:
    """A pipeline-dp collection as a list on the driver: an RDD is collected, a local lazy
    iterable is run."""
    collect = getattr(collection, "collect", None)
    return list(collect()) if callable(collect) else list(collection)


def rules(released: list[Released], min_helped: float) -> list[Released]:
    """The pairs that become rules: per failing pattern, the released fixing pattern with the
    most installs among those whose noisy share of help is at least ``min_helped`` (post-processing
    of the released values: no privacy cost)."""
    best: dict[str, Released] = {}
    for r in released:
        if r.helped < min_helped:
            continue
        now = best.get(r.failing)
        if now is None or (r.installs, r.helped) > (now.installs, now.helped):
            best[r.failing] = r
    return [best[k] for k in sorted(best)]
