"""Per-arm sufficient statistics for A/B readouts, computed in Spark from one row per unit.

Only one small row per arm reaches the driver: n and, for every metric, the sums of y, y^2,
x, x^2 and x*y (x is a ratio's denominator or a CUPED covariate).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from offline_eval.errors import DataError
from offline_eval.stats.ab import Moments

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

KINDS = ("proportion", "mean", "ratio")
_TRUE = ("true", "t", "yes", "y")
_FALSE = ("false", "f", "no", "n")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str  # proportion | mean | ratio
    column: str  # y, or the ratio's numerator
    denominator: str | None = None  # ratio only
    covariate: str | None = None  # CUPED pre-period column (proportion / mean)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"metric {self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        if (self.kind == "ratio") != (self.denominator is not None):
            raise ValueError(f"metric {self.name}: a ratio needs a denominator, other kinds must not have one")

    @property
    def x_column(self) -> str | None:
        return self.denominator or self.covariate


def numeric(col: str) -> Column:
    """0/1, true/false (any case, also t/f, yes/no) or numbers -> double; null -> 0."""
    from pyspark.sql import functions as F

    text = F.lower(F.trim(F.col(col).cast("string")))
    return (
        F.when(text.isin(*_TRUE), 1.0)
        .when(text.isin(*_FALSE), 0.0)
        .otherwise(text.try_cast("double"))
        .cast("double")
    )


def invalid(col: str) -> Column:
    """1 where the value is present but is neither a number nor a boolean word."""
    from pyspark.sql import functions as F

    return (F.col(col).isNotNull() & numeric(col).isNull()).cast("long")


def arm_moments(units: DataFrame, variant_col: str, metrics: Sequence[MetricSpec]) -> DataFrame:
    """One row per arm: ``n``, ``m<i>__{sum_y,sum_y2,sum_x,sum_x2,sum_xy}`` for the i-th metric,
    and ``invalid__<column>``: values that are neither numbers nor booleans (the caller
    rejects the input if any). Nulls count as 0: a unit with no clicks has no clicks."""
    from pyspark.sql import functions as F

    aggs = [F.count(F.lit(1)).alias("n")]
    columns = sorted({c for m in metrics for c in (m.column, m.x_column) if c})
    aggs += [F.sum(invalid(c)).alias(f"invalid__{c}") for c in columns]
    for i, m in enumerate(metrics):
        y = F.coalesce(numeric(m.column), F.lit(0.0))
        x = F.coalesce(numeric(m.x_column), F.lit(0.0)) if m.x_column else F.lit(0.0)
        aggs += [
            F.sum(y).alias(f"m{i}__sum_y"),
            F.sum(y * y).alias(f"m{i}__sum_y2"),
            F.sum(x).alias(f"m{i}__sum_x"),
            F.sum(x * x).alias(f"m{i}__sum_x2"),
            F.sum(x * y).alias(f"m{i}__sum_xy"),
        ]
    return (
        units.where(F.col(variant_col).isNotNull())
        .groupBy(F.col(variant_col).cast("string").alias("variant"))
        .agg(*aggs)
    )


# The experiment readout of the pipeline: per-unit (user) metrics over the readout window,
# with the same metrics over the pre-period as CUPED covariates.
UNIT_COLUMNS = ("impressions", "clicks", "orders", "gmv", "clicked", "converted")


def experiment_metrics() -> list[MetricSpec]:
    """What the pipeline reads out for every experiment (docs/ab_readout.md)."""
    return [
        MetricSpec("ctr", "ratio", "clicks", denominator="impressions"),
        MetricSpec("cvr", "ratio", "orders", denominator="clicks"),
        MetricSpec("gmv_per_user", "mean", "gmv", covariate="pre_gmv"),
        MetricSpec("orders_per_user", "mean", "orders", covariate="pre_orders"),
        MetricSpec("click_through_users", "proportion", "clicked", covariate="pre_clicked"),
        MetricSpec("conversion", "proportion", "converted", covariate="pre_converted"),
        MetricSpec("impressions_per_user", "mean", "impressions", covariate="pre_impressions"),
    ]


GUARDRAILS = ("impressions_per_user",)


def per_user(funnel: DataFrame) -> DataFrame:
    """Impression-grain funnel rows -> one row per user with UNIT_COLUMNS."""
    from pyspark.sql import functions as F

    return (
        funnel.groupBy("user_id")
        .agg(
            F.count(F.lit(1)).cast("double").alias("impressions"),
            F.sum("clicked").cast("double").alias("clicks"),
            F.sum("orders").cast("double").alias("orders"),
            F.sum("gmv").cast("double").alias("gmv"),
        )
        .withColumn("clicked", (F.col("clicks") > 0).cast("double"))
        .withColumn("converted", (F.col("orders") > 0).cast("double"))
    )


def exposed_units(sessions: DataFrame, experiment_id: str) -> DataFrame:
    """(user_id, variant, arms): one row per user exposed to the experiment; ``arms`` > 1
    marks a user seen in several arms (an assignment leak), which the readout excludes."""
    from pyspark.sql import functions as F

    return (
        sessions.where(F.col("experiment_id") == F.lit(experiment_id))
        .groupBy("user_id")
        .agg(F.min("variant").alias("variant"), F.countDistinct("variant").alias("arms"))
    )


def experiment_units(exposed: DataFrame, window: DataFrame, pre: DataFrame) -> DataFrame:
    """Exposed users with their window metrics and ``pre_*`` covariates; absent -> 0 (a user
    who saw nothing clicked nothing). Leaked users (arms > 1) are dropped here."""
    from pyspark.sql import functions as F

    pre = pre.select("user_id", *[F.col(c).alias(f"pre_{c}") for c in UNIT_COLUMNS])
    return (
        exposed.where(F.col("arms") == 1)
        .drop("arms")
        .join(window, "user_id", "left")
        .join(pre, "user_id", "left")
        .fillna(0.0)
    )


_SUFFIXES = ("sum_y", "sum_y2", "sum_x", "sum_x2", "sum_xy")


def require_columns(df: DataFrame, variant_col: str, specs: Sequence[MetricSpec], source: str) -> None:
    missing = sorted({variant_col, *[c for m in specs for c in (m.column, m.x_column) if c]} - set(df.columns))
    if missing:
        raise DataError(f"{source}: columns {missing} not found (check: required columns; columns are {df.columns})")


def collect_moments(
    df: DataFrame, variant_col: str, specs: Sequence[MetricSpec], source: str = "input"
) -> tuple[dict[str, dict[str, Moments]], dict[str, int]]:
    """Per-arm moments of every metric; only one small row per arm reaches the driver."""
    require_columns(df, variant_col, specs, source)
    arms: dict[str, dict[str, Moments]] = {}
    counts: dict[str, int] = {}
    rows = arm_moments(df, variant_col, specs).collect()
    bad = {
        k.split("__", 1)[1]: sum(int(r[k]) for r in rows)
        for k in (rows[0].asDict() if rows else {})
        if k.startswith("invalid__")
    }
    bad = {c: n for c, n in bad.items() if n}
    if bad:
        raise DataError(f"{source}: columns with values that are neither numbers nor true/false "
                        f"(check: numeric metric values): {bad}")
    for row in rows:
        counts[row["variant"]] = int(row["n"])
        arms[row["variant"]] = {
            m.name: Moments(int(row["n"]), *[float(row[f"m{i}__{s}"]) for s in _SUFFIXES]) for i, m in enumerate(specs)
        }
    return arms, counts


# File inputs are audited in the same aggregation as the moments: rows whose variant is null
# are grouped under _NO_ARM (a string no arm of a CSV or Parquet file is named) instead of
# being dropped unseen, and a _PRESENT column per metric column counts its non-null values.
_NO_ARM = "\x00offline-eval: no arm"
_PRESENT = "__offline_eval_present_{}"
MIN_UNITS = 2  # per arm: a variance needs two units


def collect_file_moments(
    df, variant_col: str, specs: Sequence[MetricSpec], source: str
) -> tuple[dict[str, dict[str, Moments]], dict[str, int], int]:
    """collect_moments of a file, in the same single pass also counting the rows whose variant
    is null (returned apart: they belong to no arm) and the non-null values of every metric
    column (a column without any is a DataError: "nulls count as 0" would read it as all 0)."""
    from pyspark.sql import functions as F

    require_columns(df, variant_col, specs, source)
    columns = sorted({c for m in specs for c in (m.column, m.x_column) if c})
    audited = df.withColumn(variant_col, F.coalesce(F.col(variant_col).cast("string"), F.lit(_NO_ARM)))
    probes = []
    for i, c in enumerate(columns):
        audited = audited.withColumn(_PRESENT.format(i), F.col(c).isNotNull().cast("double"))
        probes.append(MetricSpec(_PRESENT.format(i), "mean", _PRESENT.format(i)))
    arms, counts = collect_moments(audited, variant_col, [*specs, *probes], source)
    unassigned = counts.pop(_NO_ARM, 0)
    arms.pop(_NO_ARM, None)
    for i, c in enumerate(columns):
        values = sum(arm.pop(_PRESENT.format(i)).sum_y for arm in arms.values())
        if counts and values == 0:
            raise DataError(f"{source}: column {c} has no values (empty in all {sum(counts.values()):,} rows "
                            f"with a variant) (check: metric values present)")
    return arms, counts, unassigned


def check_arms(counts: dict[str, int], unassigned: int, variant_col: str, control: str, source: str) -> None:
    """A comparison needs data rows, the control arm, another arm, and two units in every arm."""
    if not counts:
        if unassigned:
            raise DataError(f"{source}: column {variant_col} is empty in all {unassigned:,} rows "
                            "(check: variant assigned)")
        raise DataError(f"{source}: no data rows (check: non-empty input)")
    if control not in counts:
        raise DataError(f"{source}: control arm {control!r} not found in column {variant_col} "
                        f"(arms: {sorted(counts)})")
    if len(counts) == 1:
        raise DataError(f"{source}: column {variant_col} holds only the control arm {control!r}, "
                        "no arm to compare with it (check: at least two arms)")
    small = {arm: n for arm, n in sorted(counts.items()) if n < MIN_UNITS}
    if small:
        raise DataError(f"{source}: arms with fewer than {MIN_UNITS} units in column {variant_col}: {small} "
                        f"(check: at least {MIN_UNITS} units per arm)")


def check_values(df, arms: dict[str, dict[str, Moments]], counts: dict[str, int], specs: Sequence[MetricSpec],
                 source: str) -> None:
    """NaN or an infinity in a metric makes its sums, and every figure of it, meaningless: a
    DataError naming the column. Found from the sums (no extra pass); counted only then."""
    from pyspark.sql import functions as F

    bad: list[str] = []
    for m in specs:
        for mom in (arms[a][m.name] for a in counts):
            if not (math.isfinite(mom.sum_y) and math.isfinite(mom.sum_y2)) and m.column not in bad:
                bad.append(m.column)
            if m.x_column and not (math.isfinite(mom.sum_x) and math.isfinite(mom.sum_x2)) and m.x_column not in bad:
                bad.append(m.x_column)
    if not bad:
        return
    c = bad[0]
    v = numeric(c)
    row = df.agg(F.count(F.lit(1)).alias("rows"), F.sum(F.isnan(v).cast("long")).alias("nan"),
                 F.sum((F.abs(v) == F.lit(math.inf)).cast("long")).alias("inf"),
                 F.max(F.abs(v)).alias("largest")).first()
    nan, inf = int(row["nan"] or 0), int(row["inf"] or 0)
    if nan or inf:
        raise DataError(f"{source}: column {c} has {nan:,} NaN and {inf:,} infinite values in {int(row['rows']):,} "
                        "rows (check: finite metric values; leave a cell empty for no value, which counts as 0)")
    raise DataError(f"{source}: column {c}: its sums overflow (values up to {row['largest']:.3g}) "
                    "(check: metric scale)")


# The pipeline's experiments, read out from the Hive logs (jobs/ab_readout.py reads the tables).

@dataclass(frozen=True)
class EventLogs:
    """The impressions of a window and the events that may be attributed to them."""

    impressions: DataFrame
    clicks: DataFrame
    add_to_cart: DataFrame
    orders: DataFrame

    def per_user(self, experiment_id: str | None = None) -> tuple[DataFrame, DataFrame]:
        """(per-user funnel sums, the impressions), of ``experiment_id``'s impressions only if given.

        The window's clicks are counted first (a scan that reads no column of the files): up to
        ``BROADCAST_ROWS_MAX`` they are broadcast, so the window's impressions are joined where they
        are read instead of being shuffled twice (the same rows attributed the same way)."""
        from pyspark.sql import functions as F

        from offline_eval.metrics import BROADCAST_ROWS_MAX
        from offline_eval.metrics.funnel import impression_funnel

        impressions = self.impressions
        if experiment_id is not None:
            impressions = impressions.where(F.col("experiment_id") == F.lit(experiment_id))
        few_clicks = self.clicks.count() <= BROADCAST_ROWS_MAX
        funnel = impression_funnel(impressions, self.clicks, self.add_to_cart, self.orders, few_clicks=few_clicks)
        return per_user(funnel), impressions


@dataclass(frozen=True)
class ExperimentMoments:
    arms: dict[str, dict[str, Moments]]
    counts: dict[str, int]
    specs: list[MetricSpec]
    has_pre: bool
    leaked: int  # users seen in several arms, excluded
    versions: dict[str, list[str]]  # model versions served to each arm
    models: list[str]  # model names of the experiment's impressions (at most two)


def experiments_in(sessions: DataFrame) -> list[str]:
    """The experiment ids of a day's sessions."""
    from pyspark.sql import functions as F

    rows = sessions.where(F.col("experiment_id").isNotNull()).select("experiment_id").distinct().collect()
    return sorted(r[0] for r in rows)


def experiment_sessions(sessions: DataFrame, experiment_id: str) -> DataFrame:
    from pyspark.sql import functions as F

    return sessions.where(F.col("experiment_id") == F.lit(experiment_id))


def first_day(sessions: DataFrame) -> str | None:
    """The first ds of these sessions (None: there are none)."""
    from pyspark.sql import functions as F

    row = sessions.agg(F.min("ds")).first()
    return row[0] if row is not None else None


def experiment_moments(sessions: DataFrame, window: EventLogs, pre: EventLogs | None, experiment_id: str,
                       start: str, end: str) -> ExperimentMoments:
    """Per-arm moments of the experiment's metrics over ``start``..``end``: users exposed in
    the window (leaked ones excluded), their window sums, and their pre-period sums as CUPED
    covariates when ``pre`` has impressions (otherwise the metrics have no covariate)."""
    from pyspark.sql import functions as F

    exposed = exposed_units(sessions.where(F.col("ds").between(start, end)), experiment_id).cache()
    in_window, impressions = window.per_user(experiment_id)
    has_pre = pre is not None and pre.impressions.limit(1).count() > 0
    specs = experiment_metrics()
    if pre is not None and has_pre:
        before, _ = pre.per_user()
    else:
        specs = [dataclasses.replace(m, covariate=None) for m in specs]
        before = in_window.limit(0)
    units = experiment_units(exposed, in_window, before)
    arms, counts = collect_moments(units, "variant", specs, source=f"experiment {experiment_id} {start}..{end}")
    leaked = exposed.where("arms > 1").count()
    versions = {r["variant"]: sorted(r["versions"]) for r in impressions.groupBy("variant").agg(
        F.collect_set("model_version").alias("versions")).collect()}
    exposed.unpersist()
    models = [r[0] for r in impressions.select("model_name").distinct().limit(2).collect()]
    return ExperimentMoments(arms, counts, specs, has_pre, leaked, versions, models)
