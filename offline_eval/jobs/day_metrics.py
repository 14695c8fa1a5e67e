"""One day's metrics from the raw partitions: the business metrics of metrics_daily and the
model-quality metrics, shared by the compute task and by baselines that need a day the
pipeline has not evaluated."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from offline_eval.config import DayConfig
from offline_eval.contract import METRICS_DAILY
from offline_eval.metrics.daily import SEGMENTS, daily_metrics, sessions_with_newness, with_prior_buyers, with_segments
from offline_eval.metrics.funnel import impression_funnel
from offline_eval.metrics.quality import quality_metrics

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from offline_eval.io.tables import Tables


@dataclass
class DayData:
    impressions: DataFrame  # the day's partition, cached
    rows: DataFrame  # impression grain with funnel outcomes and segments, cached
    sessions: DataFrame

    def unpersist(self) -> None:
        self.rows.unpersist()
        self.impressions.unpersist()


def load(tables: Tables, day: DayConfig) -> DayData:
    impressions = tables.read("impressions", day.ds).cache()
    users = tables.read("users", day.ds)
    items = tables.read("items", day.ds)
    prior_orders = tables.read_range("orders", day.ds_offset(-day.repurchase_lookback_days), day.ds_offset(-1))
    funnel = impression_funnel(
        impressions, tables.read("clicks", day.ds), tables.read("add_to_cart", day.ds), tables.read("orders", day.ds)
    )
    rows = (
        funnel.transform(lambda df: with_segments(df, users, items, day.ds, day.new_user_days, day.new_item_days))
        .transform(lambda df: with_prior_buyers(df, prior_orders))
        .cache()
    )
    sessions = sessions_with_newness(tables.read("sessions", day.ds), users, day.ds, day.new_user_days)
    return DayData(impressions, rows, sessions)


def metrics(data: DayData, day: DayConfig) -> tuple[DataFrame, dict[tuple, Any]]:
    """All metrics_daily rows of the day (business and quality) and the score bins of each
    (model, version, variant, segment)."""
    business = daily_metrics(data.rows, data.sessions, day.ds)
    quality, bins = quality_metrics(data.rows, day.ds, SEGMENTS)
    spark = data.rows.sparkSession
    schema = ", ".join(f"`{c}` {t}" for c, t in (*METRICS_DAILY.columns, *METRICS_DAILY.partitions))
    quality_df = spark.createDataFrame([[r[c] for c in METRICS_DAILY.all_columns] for r in quality], schema)
    return business.unionByName(quality_df), bins


def metric_rows(tables: Tables, day: DayConfig) -> list[dict]:
    """The day's metrics as dicts, computed from raw (for days metrics_daily does not hold)."""
    data = load(tables, day)
    try:
        df, _ = metrics(data, day)
        return [r.asDict() for r in df.collect()]
    finally:
        data.unpersist()
