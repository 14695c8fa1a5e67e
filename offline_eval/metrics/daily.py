"""Daily metrics per (model_name, model_version, variant, segment) in long format.

Formulas are in docs/metrics.md. Every (model, version, variant) present on the day gets a
row for every segment and metric, even when the segment is empty: counts are then 0 and
ratios with a zero denominator are null (never NaN, never an error).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

GROUP_KEYS = ("model_name", "model_version", "variant")
SEGMENT_ALL = "all"
SEGMENTS = (SEGMENT_ALL, "new_users", "returning_users", "new_items", "old_items")

# Additive aggregates per group; an empty group has 0 for each of them.
COUNT_COLUMNS = (
    "impressions",
    "clicks",
    "add_to_carts",
    "orders",
    "units",
    "gmv",
    "exposed_users",
    "buyers",
    "repeat_buyers",
    "new_users_exposed",
    "new_item_impressions",
)


@dataclass(frozen=True)
class Ratio:
    name: str
    numerator: str
    denominator: str


COUNT_METRICS = ("impressions", "clicks", "add_to_carts", "orders", "gmv", "exposed_users", "buyers")
RATIO_METRICS = (
    Ratio("ctr", "clicks", "impressions"),
    Ratio("add_to_cart_rate", "add_to_carts", "clicks"),
    Ratio("cvr", "orders", "clicks"),
    Ratio("gmv_per_user", "gmv", "exposed_users"),
    Ratio("repurchase_rate", "repeat_buyers", "buyers"),
    Ratio("new_user_share", "new_users_exposed", "exposed_users"),
    Ratio("new_item_impression_share", "new_item_impressions", "impressions"),
)
# Only meaningful over the whole population of a version, so emitted for segment "all" only.
COVERAGE = Ratio("new_user_coverage", "new_users_covered", "new_users_active")
ENTROPY = "category_entropy"

METRIC_NAMES = (*COUNT_METRICS, *(r.name for r in RATIO_METRICS), ENTROPY, COVERAGE.name)


def with_segments(
    funnel: DataFrame, users: DataFrame, items: DataFrame, ds: str, new_user_days: int, new_item_days: int
) -> DataFrame:
    """Add is_new_user, is_new_item, category and the user/item segment names.

    New user: signed up within ``new_user_days`` days up to and including ds; new item: first
    listed within ``new_item_days`` days. Users or items missing from the snapshot belong to
    no user (item) segment, only to "all".
    """
    from pyspark.sql import functions as F

    day = F.lit(ds).cast("date")
    u = users.select("user_id", "signup_date")
    i = items.select("item_id", "category", "first_listed_date")
    return (
        funnel.join(u, on="user_id", how="left")
        .join(i, on="item_id", how="left")
        .withColumn("is_new_user", _within(day, F.col("signup_date"), new_user_days))
        .withColumn("is_new_item", _within(day, F.col("first_listed_date"), new_item_days))
        .withColumn("user_segment", _segment(F.col("is_new_user"), "new_users", "returning_users"))
        .withColumn("item_segment", _segment(F.col("is_new_item"), "new_items", "old_items"))
        .drop("signup_date", "first_listed_date")
    )


def _within(day: Column, since: Column, days: int) -> Column:
    from pyspark.sql import functions as F

    age = F.datediff(day, since)
    return F.when(since.isNull(), F.lit(None)).otherwise((age >= 0) & (age < days))


def _segment(flag: Column, yes: str, no: str) -> Column:
    from pyspark.sql import functions as F

    return F.when(flag, yes).when(~flag, no)


def with_prior_buyers(funnel: DataFrame, prior_orders: DataFrame) -> DataFrame:
    """Flag rows whose user ordered in the lookback window before ds (repurchase)."""
    from pyspark.sql import functions as F

    prior = prior_orders.select("user_id").distinct().withColumn("has_prior_order", F.lit(True))
    return funnel.join(prior, on="user_id", how="left").fillna(False, subset=["has_prior_order"])


def _explode_segments(cells: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    segs = F.array_compact(F.array(F.lit(SEGMENT_ALL), F.col("user_segment"), F.col("item_segment")))
    return cells.withColumn("segment", F.explode(segs))


def cells_of(rows: DataFrame) -> DataFrame:
    """The one aggregation of the impression rows behind the per-user business metrics: sums
    per (group, experiment, user, is_new_user, is_new_item) cell.

    The per-user sums and the grid of groups are sums of these cells. "all" and the user and
    item segments partition the same rows, so a segment is a sum of whole cells, and only the
    cells, not every impression three times, pass the segment explode. Pass them cached to
    ``daily_metrics`` (and to ``metrics.day.unit_moments``): each consumer prunes other
    columns of the aggregation, so Spark plans a different aggregation per consumer and
    reuses none of them (at 10M impressions a day that ran the aggregation four times).

    The cells are keyed by the newness flags, not by the segment names derived from them (one
    to one), and not by category: the category mix has its own small aggregation
    (``category_mix``). Keyed by category and the segment strings, the cells were 2.8M rows at
    10M impressions and took 12 s; without, 126k rows (see docs/benchmarks.md)."""
    from pyspark.sql import functions as F

    return (
        rows.groupBy(*GROUP_KEYS, "experiment_id", "user_id", "is_new_user", "is_new_item").agg(
            F.count("*").alias("impressions"),
            F.sum("clicked").alias("clicks"),
            F.sum("carts").alias("add_to_carts"),
            F.sum("orders").alias("orders"),
            F.sum("units").alias("units"),
            F.sum("gmv").alias("gmv"),
            F.sum(F.when(F.col("is_new_item"), 1).otherwise(0)).alias("new_item_impressions"),
            F.max(F.col("has_prior_order")).alias("has_prior_order"),
        )
        .withColumn("user_segment", _segment(F.col("is_new_user"), "new_users", "returning_users"))
        .withColumn("item_segment", _segment(F.col("is_new_item"), "new_items", "old_items"))
    )


def category_mix(rows: DataFrame) -> DataFrame:
    """Impressions per (group, user segment, item segment, category): the category mix behind
    ``category_entropy``, a few hundred rows whatever the day's size."""
    from pyspark.sql import functions as F

    return rows.groupBy(*GROUP_KEYS, "user_segment", "item_segment", "category").agg(
        F.count("*").alias("impressions"))


def _per_user(cells: DataFrame) -> DataFrame:
    """Per (group, segment, user): the user's sums and flags in that segment."""
    from pyspark.sql import functions as F

    return _explode_segments(cells).groupBy(*GROUP_KEYS, "segment", "user_id").agg(
        *[F.sum(c).alias(c) for c in ("impressions", "clicks", "add_to_carts", "orders", "units", "gmv",
                                      "new_item_impressions")],
        F.max(F.col("has_prior_order")).alias("has_prior_order"),
        F.max(F.col("is_new_user")).alias("is_new_user"),
    )


def _segment_aggregates(per_user: DataFrame) -> DataFrame:
    """Two-phase aggregation: per user first (``_per_user``), then per group. Distinct-user
    counts become plain counts of user rows, which avoids Spark's Expand of one copy per
    countDistinct."""
    from pyspark.sql import functions as F

    bought = F.col("orders") > 0
    return per_user.groupBy(*GROUP_KEYS, "segment").agg(
        *[F.sum(c).alias(c) for c in ("impressions", "clicks", "add_to_carts", "orders", "units", "gmv",
                                      "new_item_impressions")],
        F.count(F.col("user_id")).alias("exposed_users"),
        F.count(F.when(bought & F.col("user_id").isNotNull(), 1)).alias("buyers"),
        F.count(F.when(bought & F.col("has_prior_order") & F.col("user_id").isNotNull(), 1)).alias("repeat_buyers"),
        F.count(F.when(F.col("is_new_user") & F.col("user_id").isNotNull(), 1)).alias("new_users_exposed"),
    )


def _category_entropy(mix: DataFrame) -> DataFrame:
    """Shannon entropy (bits) of the category mix of impressions: log2 N - sum(n log2 n) / N.
    ``mix``: ``category_mix(rows)``."""
    from pyspark.sql import functions as F

    per_cat = _explode_segments(mix).groupBy(*GROUP_KEYS, "segment", "category").agg(
        F.sum("impressions").alias("n"))
    return per_cat.groupBy(*GROUP_KEYS, "segment").agg(
        (F.log2(F.sum("n")) - F.sum(F.col("n") * F.log2("n")) / F.sum("n")).alias(ENTROPY)
    )


def _coverage(per_user: DataFrame, sessions: DataFrame, grid: DataFrame) -> DataFrame:
    """Per version: new users active on ds (any session in its experiment arm), and how many of
    them were shown at least one recommendation by that version (a user row of segment "all")."""
    from pyspark.sql import functions as F

    active = (
        sessions.where(F.col("is_new_user"))
        .join(grid, on=["experiment_id", "variant"], how="inner")
        .select(*GROUP_KEYS, "user_id")
        .distinct()
    )
    shown = (per_user.where(F.col("segment") == SEGMENT_ALL).select(*GROUP_KEYS, "user_id")
             .withColumn("shown", F.lit(1)))
    return (
        active.join(shown, on=[*GROUP_KEYS, "user_id"], how="left")
        .groupBy(*GROUP_KEYS)
        .agg(F.count("*").alias("new_users_active"), F.count("shown").alias("new_users_covered"))
        .withColumn("segment", F.lit(SEGMENT_ALL))
    )


def daily_metrics(rows: DataFrame, sessions: DataFrame, ds: str, cells: DataFrame | None = None) -> DataFrame:
    """Long-format metrics for one ds.

    ``rows``: impression grain from ``impression_funnel`` + ``with_segments`` + ``with_prior_buyers``.
    ``sessions``: the day's sessions with ``is_new_user`` (see ``sessions_with_newness``).
    ``cells``: ``cells_of(rows)``, cached by the caller (see there); computed here otherwise.
    """
    from pyspark.sql import functions as F

    cells = cells_of(rows) if cells is None else cells
    per_user = _per_user(cells)
    grid_keys = cells.select(*GROUP_KEYS, "experiment_id").distinct()
    grid = grid_keys.select(*GROUP_KEYS).distinct().crossJoin(
        rows.sparkSession.createDataFrame([(s,) for s in SEGMENTS], "segment string")
    )
    wide = (
        # Each side is one row per (group, segment) at most: broadcast, so the grid is never
        # shuffled again for each join.
        grid.join(F.broadcast(_segment_aggregates(per_user)), on=[*GROUP_KEYS, "segment"], how="left")
        .fillna(0, subset=list(COUNT_COLUMNS))
        .join(F.broadcast(_category_entropy(category_mix(rows))), on=[*GROUP_KEYS, "segment"], how="left")
        .join(F.broadcast(_coverage(per_user, sessions, grid_keys)), on=[*GROUP_KEYS, "segment"], how="left")
        .fillna(0, subset=[COVERAGE.numerator, COVERAGE.denominator])
    )
    return _to_long(wide, ds)


def headline_metrics(rows: DataFrame, ds: str, names: tuple[str, ...] = ("ctr", "cvr", "gmv_per_user")) -> DataFrame:
    """The ratio metrics ``names`` of segment "all" per group, as ``daily_metrics`` gives them
    (same rows, values, numerators and denominators), from the counts they need alone: two
    aggregations (per user, then per group) instead of the cells, segments, category mix and
    coverage. For the metrics of a subset of the day's rows, such as the rows without flagged
    traffic (metrics.serving), where the whole ``daily_metrics`` again would cost as much as
    the day's business metrics."""
    from pyspark.sql import functions as F

    ratios = [r for r in RATIO_METRICS if r.name in names]
    unknown = set(names) - {r.name for r in ratios}
    if unknown:
        raise ValueError(f"headline_metrics: not a ratio metric of metrics_daily: {sorted(unknown)}")
    sums = {"impressions": F.count("*"), "clicks": F.sum("clicked"), "add_to_carts": F.sum("carts"),
            "orders": F.sum("orders"), "gmv": F.sum("gmv"), "new_item_impressions":
                F.sum(F.when(F.col("is_new_item"), 1).otherwise(0))}
    needed = {c for r in ratios for c in (r.numerator, r.denominator)}
    missing = needed - {*sums, "exposed_users"}
    if missing:
        raise ValueError(f"headline_metrics: {sorted(r.name for r in ratios)} need per-user counts {sorted(missing)}")
    per_user = rows.groupBy(*GROUP_KEYS, "user_id").agg(*[e.alias(c) for c, e in sums.items() if c in needed])
    wide = per_user.groupBy(*GROUP_KEYS).agg(
        *[F.sum(c).alias(c) for c in sums if c in needed],
        *([F.count(F.col("user_id")).alias("exposed_users")] if "exposed_users" in needed else []),
    )
    return (
        wide.select(*GROUP_KEYS, F.explode(F.array(*[_ratio(r) for r in ratios])).alias("m"))
        .select(F.lit(ds).alias("ds"), *GROUP_KEYS, F.lit(SEGMENT_ALL).alias("segment"), "m.*")
        .select(
            "model_name", "model_version", "variant", "segment", "metric", "value", "numerator", "denominator", "ds"
        )
    )


def sessions_with_newness(sessions: DataFrame, users: DataFrame, ds: str, new_user_days: int) -> DataFrame:
    from pyspark.sql import functions as F

    return (
        sessions.select("user_id", "experiment_id", "variant")
        .join(users.select("user_id", "signup_date"), on="user_id", how="left")
        .withColumn("is_new_user", _within(F.lit(ds).cast("date"), F.col("signup_date"), new_user_days))
    )


def _metric(name: str, value: Column, numerator: Column, denominator: Column) -> Column:
    from pyspark.sql import functions as F

    return F.struct(
        F.lit(name).alias("metric"),
        value.cast("double").alias("value"),
        numerator.cast("double").alias("numerator"),
        denominator.cast("double").alias("denominator"),
    )


def _ratio(r: Ratio) -> Column:
    from pyspark.sql import functions as F

    num, den = F.col(r.numerator), F.col(r.denominator)
    value = F.when(den > 0, num / den)
    return _metric(r.name, value, num, den)


def _to_long(wide: DataFrame, ds: str) -> DataFrame:
    from pyspark.sql import functions as F

    null = F.lit(None).cast("double")
    metrics = [
        *[_metric(c, F.col(c), F.col(c), null) for c in COUNT_METRICS],
        *[_ratio(r) for r in RATIO_METRICS],
        _metric(ENTROPY, F.col(ENTROPY), null, F.col("impressions")),
    ]
    coverage = F.when(F.col("segment") == SEGMENT_ALL, F.array(_ratio(COVERAGE))).otherwise(F.array())
    return (
        wide.select(*GROUP_KEYS, "segment", F.explode(F.concat(F.array(*metrics), coverage)).alias("m"))
        .select(F.lit(ds).alias("ds"), *GROUP_KEYS, "segment", "m.*")
        .select(
            "model_name", "model_version", "variant", "segment", "metric", "value", "numerator", "denominator", "ds"
        )
    )
