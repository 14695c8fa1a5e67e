"""Health of a day's model inputs: per feature column, the share of nulls and the number of
distinct values, in one Spark aggregation over the (cached) partition; per categorical column,
its most frequent values and their shares, in a second one."""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from offline_eval.contract import CATEGORICAL_FEATURE_PREFIX

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# Categories kept per column: the gate compares the day's most frequent one with its share the
# day before.
TOP_VALUES = 5


def feature_health(df: DataFrame, columns: Iterable[str]) -> dict[str, dict[str, float]]:
    """{column: {"null_share": nulls / rows, "distinct": approximate distinct non-null values}}
    (HyperLogLog++ at 5% relative error: exact for the 0, 1 or 2 values that the gate's rules
    look at)."""
    from pyspark.sql import functions as F

    columns = list(columns)
    aggs = [F.count(F.lit(1)).alias("_rows")]
    for i, c in enumerate(columns):
        aggs += [F.sum(F.col(c).isNull().cast("long")).alias(f"n{i}"),
                 F.approx_count_distinct(F.col(c), 0.05).alias(f"d{i}")]
    row = df.agg(*aggs).first()
    assert row is not None  # an aggregation without grouping returns one row
    rows = row["_rows"] or 0
    health = {c: {"null_share": (row[f"n{i}"] or 0) / rows if rows else 0.0, "distinct": int(row[f"d{i}"] or 0)}
              for i, c in enumerate(columns)}
    categorical = [c for c in columns if c.startswith(CATEGORICAL_FEATURE_PREFIX)]
    if rows and categorical:
        for c, values in top_values(df, categorical).items():
            health[c]["top"] = [[v, n / rows] for v, n in values]
    return health


def top_values(df: DataFrame, columns: list[str], k: int = TOP_VALUES) -> dict[str, list[tuple[str, int]]]:
    """{column: [(value, rows)] of its ``k`` most frequent non-null values, most frequent first
    (ties by value)}, for all columns in one aggregation."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    pairs = df.select(F.explode(F.array(*[F.struct(F.lit(c).alias("k"), F.col(c).cast("string").alias("v"))
                                          for c in columns])).alias("p")).select("p.k", "p.v")
    counts = pairs.where(F.col("v").isNotNull()).groupBy("k", "v").count()
    rank = F.row_number().over(Window.partitionBy("k").orderBy(F.col("count").desc(), F.col("v")))
    top = counts.withColumn("r", rank).where(F.col("r") <= k).collect()
    out: dict[str, list[tuple[str, int]]] = {c: [] for c in columns}
    for r in sorted(top, key=lambda r: (r["k"], r["r"])):
        out[r["k"]].append((r["v"], int(r["count"])))
    return out
