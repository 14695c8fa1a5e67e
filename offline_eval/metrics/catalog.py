"""Catalogue coverage of a day, per model version and arm (``metrics_daily``, segment ``all``);
formulas in docs/metrics.md.

* ``new_item_coverage``: new items (listed in the last ``new_item_days`` days) shown at least
  once by the version / new items in the day's catalogue;
* the **head** is the ``HEAD_SHARE`` (20%) most shown items of the day over every version (ties
  broken by item id, so reruns agree); the rest of the shown items is the long tail.
  ``long_tail_impression_share`` = the version's impressions of tail items / its impressions;
  ``long_tail_item_share`` = distinct tail items it showed / distinct items it showed.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

VERSION_ARM = ("model_name", "model_version", "variant")
HEAD_SHARE = 0.2


def catalog_coverage(impressions: DataFrame, items: DataFrame, ds: str, new_item_days: int) -> list[dict[str, Any]]:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    age = F.datediff(F.lit(ds).cast("date"), F.col("first_listed_date"))
    new_items = items.where((age >= 0) & (age < new_item_days)).select("item_id").distinct()
    n_new = new_items.count()
    popularity = impressions.groupBy("item_id").agg(F.count("*").alias("shown"))
    n_shown = popularity.count()
    head_size = int(HEAD_SHARE * n_shown)
    # One partition for the ranking: one row per shown item of the day.
    ranked = popularity.withColumn("rank", F.row_number().over(Window.orderBy(F.desc("shown"), "item_id")))
    tail = ranked.where(F.col("rank") > head_size).select("item_id").withColumn("tail", F.lit(1))
    fresh = new_items.withColumn("new", F.lit(1))
    # Impressions per (arm, item) first: the distinct counts below are then plain sums.
    per_arm = (
        impressions.groupBy(*VERSION_ARM, "item_id").agg(F.count("*").alias("shown"))
        .join(F.broadcast(tail), on="item_id", how="left")
        .join(F.broadcast(fresh), on="item_id", how="left")
        .fillna(0, subset=["tail", "new"])
        .groupBy(*VERSION_ARM)
        .agg(F.sum("shown").alias("impressions"), F.sum(F.col("shown") * F.col("tail")).alias("tail_impressions"),
             F.count("*").alias("items"), F.sum("tail").alias("tail_items"), F.sum("new").alias("new_items"))
        .collect()
    )
    out = []
    for r in per_arm:
        key = {k: r[k] for k in VERSION_ARM}
        for metric, num, den in (("new_item_coverage", r["new_items"], n_new),
                                 ("long_tail_impression_share", r["tail_impressions"], r["impressions"]),
                                 ("long_tail_item_share", r["tail_items"], r["items"])):
            out.append({**key, "segment": "all", "metric": metric, "value": num / den if den else None,
                        "numerator": float(num), "denominator": float(den)})
    return out
