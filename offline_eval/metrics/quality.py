"""Model quality aggregates in Spark: score bins and per-request ranking sums, per group.

Only small aggregates leave the executors: at most ``SCORE_BINS`` rows per group for the
score bins (``offline_eval.stats.quality`` turns them into AUC, log loss, calibration and
concept drift) and one row per group for the ranking metrics. Formulas: docs/quality.md.

Ranking is the model's own: within a request, items are ranked by score (descending; ties by
the served position), and a click is the relevance label. NDCG@k, precision@k and the
reciprocal rank are averaged over the requests with at least one click (a request without a
click says nothing about the ordering).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from offline_eval.stats.quality import LOGLOSS_EPS, SCORE_BINS

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, Row

    from offline_eval.stats.quality import ScoreBins

NDCG_K = 10
PRECISION_K = 5


def score_bin(score: Column) -> Column:
    from pyspark.sql import functions as F

    return F.least(F.floor(score * SCORE_BINS), F.lit(SCORE_BINS - 1)).cast("int")


def score_bins(rows: DataFrame, keys: Sequence[str]) -> DataFrame:
    """keys + (bin, impressions, clicks, score_sum, logloss_sum); ``rows`` has score and clicked."""
    from pyspark.sql import functions as F

    p = F.least(F.greatest(F.col("score"), F.lit(LOGLOSS_EPS)), F.lit(1 - LOGLOSS_EPS))
    y = F.col("clicked").cast("double")
    loss = -(y * F.log(p) + (F.lit(1.0) - y) * F.log(F.lit(1.0) - p))
    return (
        rows.where(F.col("score").isNotNull())
        .groupBy(*keys, score_bin(F.col("score")).alias("bin"))
        .agg(F.count("*").cast("double").alias("impressions"), F.sum(y).alias("clicks"),
             F.sum("score").alias("score_sum"), F.sum(loss).alias("logloss_sum"))
    )


def ranking_sums(rows: DataFrame, keys: Sequence[str], *, few_clicks: bool = False) -> DataFrame:
    """keys + (requests, ndcg_sum, precision_sum, rr_sum) over requests with a click.

    ``rows``: impression grain with request_id, score, position, clicked and the keys; every
    key must be constant within a request (model, version, variant and user segment are).

    Only the rows of requests with a click are ranked (the others count for nothing), so the
    window sorts about a third of the day instead of all of it (at 10M impressions, 3.5M
    rows). ``few_clicks``: the clicked requests are few enough to broadcast
    (``metrics.BROADCAST_ROWS_MAX``); otherwise Spark picks the join, whose shuffle
    by request_id the window then reuses.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    clicked_requests = rows.where(F.col("clicked") > 0).select("request_id").distinct()
    rows = rows.join(F.broadcast(clicked_requests) if few_clicks else clicked_requests, on="request_id",
                     how="left_semi")

    rank = F.row_number().over(Window.partitionBy("request_id").orderBy(F.desc("score"), F.asc("position")))
    clicked = F.col("clicked")
    per_request = (
        rows.withColumn("rank", rank)
        .groupBy(*keys, "request_id")
        .agg(
            F.sum(clicked).alias("relevant"),
            F.sum(F.when(F.col("rank") <= NDCG_K, clicked / F.log2(F.col("rank") + 1)).otherwise(0.0)).alias("dcg"),
            F.sum(F.when(F.col("rank") <= PRECISION_K, clicked).otherwise(0)).alias("hits"),
            F.min(F.when(clicked > 0, F.col("rank"))).alias("first_hit"),
        )
        .where(F.col("relevant") > 0)
        .withColumn("idcg", F.aggregate(F.sequence(F.lit(1), F.least(F.col("relevant"), F.lit(NDCG_K))), F.lit(0.0),
                                        lambda acc, i: acc + F.lit(1.0) / F.log2(i + 1)))
    )
    return per_request.groupBy(*keys).agg(
        F.count("*").cast("double").alias("requests"),
        F.sum(F.col("dcg") / F.col("idcg")).alias("ndcg_sum"),
        F.sum(F.col("hits") / F.lit(float(PRECISION_K))).alias("precision_sum"),
        F.sum(F.lit(1.0) / F.col("first_hit")).alias("rr_sum"),
    )


QUALITY_METRICS = (
    "auc",
    "logloss",
    "ece",
    "calibration_ratio",
    f"ndcg_at_{NDCG_K}",
    f"precision_at_{PRECISION_K}",
    "mrr",
)
USER_SEGMENTS = ("new_users", "returning_users")
ITEM_SEGMENTS = ("new_items", "old_items")


def _in_segment(segment: str, user_segment: str | None, item_segment: str | None) -> bool:
    return segment == "all" or segment == user_segment or segment == item_segment


@dataclass(frozen=True)
class QualityCells:
    """The two small aggregates behind the quality metrics, collected from the engine: score
    bins per (model, version, variant, user segment, item segment) and ranking sums per
    (model, version, variant, user segment)."""

    bins: list[Row]
    ranks: list[Row]


def quality_cells(rows: DataFrame, *, few_clicks: bool = False) -> QualityCells:
    """Both aggregates are additive, so Spark groups once by (version, variant, user segment,
    item segment) and the segments are sums of those cells (``quality_metrics``)."""
    from offline_eval.metrics.daily import GROUP_KEYS

    return QualityCells(score_bins(rows, [*GROUP_KEYS, "user_segment", "item_segment"]).collect(),
                        ranking_sums(rows, [*GROUP_KEYS, "user_segment"], few_clicks=few_clicks).collect())


def quality_metrics(aggregates: QualityCells, ds: str, segments: Sequence[str],
                    groups: Iterable[tuple]) -> tuple[list[dict], dict[tuple, ScoreBins]]:
    """metrics_daily rows of the quality metrics for every (model, version, variant) in
    ``groups`` x segment, and the score bins of each (model, version, variant, segment) for
    concept drift."""
    from offline_eval.metrics.daily import GROUP_KEYS
    from offline_eval.stats.quality import ScoreBins, pointwise

    bin_cells, rank_cells = aggregates.bins, aggregates.ranks
    groups = sorted(set(groups))
    out: list[dict] = []
    bins_by_key: dict[tuple, ScoreBins] = {}
    for g in groups:
        mine = [r for r in bin_cells if tuple(r[k] for k in GROUP_KEYS) == g]
        ranks = [r for r in rank_cells if tuple(r[k] for k in GROUP_KEYS) == g]
        for seg in segments:
            bins = ScoreBins.from_rows([(r["bin"], r["impressions"], r["clicks"], r["score_sum"], r["logloss_sum"])
                                        for r in mine if _in_segment(seg, r["user_segment"], r["item_segment"])])
            bins_by_key[(*g, seg)] = bins
            p = pointwise(bins)
            n = bins.n or None
            values = [
                ("auc", p["auc"], None, n),
                ("logloss", p["logloss"], float(bins.logloss_sum.sum()) if n else None, n),
                ("ece", p["ece"], None, n),
                ("calibration_ratio", p["calibration_ratio"], float(bins.clicks.sum()) if n else None,
                 float(bins.score_sum.sum()) if n else None),
            ]
            if seg == "all" or seg in USER_SEGMENTS:
                cells = [r for r in ranks if seg == "all" or r["user_segment"] == seg]
                req = sum(r["requests"] for r in cells)
                for name, col in ((f"ndcg_at_{NDCG_K}", "ndcg_sum"), (f"precision_at_{PRECISION_K}", "precision_sum"),
                                  ("mrr", "rr_sum")):
                    total = sum(r[col] for r in cells)
                    values.append((name, total / req if req else None, total, float(req)))
            for name, value, num, den in values:
                out.append({"model_name": g[0], "model_version": g[1], "variant": g[2], "segment": seg, "metric": name,
                            "value": value, "numerator": num, "denominator": den, "ds": ds})
    return out, bins_by_key
