"""Per-arm sufficient statistics for A/B readouts, computed in Spark from one row per unit.

Only one small row per arm reaches the driver: n and, for every metric, the sums of y, y^2,
x, x^2 and x*y (x is a ratio's denominator or a CUPED covariate).
"""
from __future__ import annotations

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
