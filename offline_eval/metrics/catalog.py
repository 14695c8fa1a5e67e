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
    # Impressions per (arm, item), once: the item popularity of the day is their sum, and the
    # distinct counts below are plain sums.
    shown = impressions.groupBy(*VERSION_ARM, "item_id").agg(F.count("*").alias("shown"))
    popularity = shown.groupBy("item_id").agg(F.sum("shown").alias("shown"))
    # One partition for the ranking: one row per shown item of the day. The head's size is
    # int(HEAD_SHARE * items shown), taken in the same window (the double product, truncated).
    everything = Window.partitionBy()
    ranked = (popularity
              .withColumn("rank", F.row_number().over(Window.orderBy(F.desc("shown"), "item_id")))
              .withColumn("head_size", F.floor(F.lit(HEAD_SHARE) * F.count("*").over(everything))))
    tail = ranked.where(F.col("rank") > F.col("head_size")).select("item_id").withColumn("tail", F.lit(1))
    fresh = new_items.withColumn("new", F.lit(1))
    n_new = new_items.agg(F.count("*").alias("n_new"))
    per_arm = (
        shown
        .join(F.broadcast(tail), on="item_id", how="left")
        .join(F.broadcast(fresh), on="item_id", how="left")
        .fillna(0, subset=["tail", "new"])
        .groupBy(*VERSION_ARM)
        .agg(F.sum("shown").alias("impressions"), F.sum(F.col("shown") * F.col("tail")).alias("tail_impressions"),
             F.count("*").alias("items"), F.sum("tail").alias("tail_items"), F.sum("new").alias("new_items"))
        .crossJoin(n_new)
        .collect()
    )
    out = []
    for r in per_arm:
        key = {k: r[k] for k in VERSION_ARM}
        for metric, num, den in (("new_item_coverage", r["new_items"], r["n_new"]),
                                 ("long_tail_impression_share", r["tail_impressions"], r["impressions"]),
                                 ("long_tail_item_share", r["tail_items"], r["items"])):
            out.append({**key, "segment": "all", "metric": metric, "value": num / den if den else None,
                        "numerator": float(num), "denominator": float(den)})
    return out
