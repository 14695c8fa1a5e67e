"""Per-arm sufficient statistics for A/B readouts, computed in Spark from one row per unit.

Only one small row per arm reaches the driver: n and, for every metric, the sums of y, y^2,
x, x^2 and x*y (x is a ratio's denominator or a CUPED covariate).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

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
