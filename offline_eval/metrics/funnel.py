"""Attribution: clicks, add-to-carts and orders joined back to the impression that earned them.

Rules (docs/data_contract.md):
- a click belongs to the impression with the same (request_id, item_id); repeated clicks on
  one impression count once; clicks with no impression are not attributed;
- an add-to-cart or an order belongs to the user's last attributed click on the same item
  at or before the event, within the same ds partition; later clicks do not steal it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

IMPRESSION_KEYS = ("request_id", "item_id")
FUNNEL_COLUMNS = (
    "model_name",
    "model_version",
    "experiment_id",
    "variant",
    "request_id",
    "user_id",
    "item_id",
    "position",
    "score",
    "clicked",
    "carts",
    "orders",
    "units",
    "gmv",
)


def attributed_clicks(impressions: DataFrame, clicks: DataFrame, *, broadcast: bool = False) -> DataFrame:
    """Clicks that match an impression: (request_id, item_id, click_ts, user_id), one per distinct click.

    The user comes from the impression: the click log's user_id is not trusted over it.

    The impressions side must never be the broadcast side. Spark sizes it from the compressed
    Parquet files, and after projecting two columns of a pruned range it can look like a few
    MB; adaptive execution then picks it as the build side, and a hash table of millions of
    impressions exhausts the driver (at 300k impressions a day, a 7-day pre-period ran a 1 GB
    driver out of memory). So either the clicks are broadcast (``broadcast``: the caller knows
    they are few, e.g. one day's clicks counted by validation) or the join is a sort-merge
    join by hint, which spills instead.
    """
    from pyspark.sql import functions as F

    shown = impressions.select(*IMPRESSION_KEYS, "user_id")
    distinct = clicks.select(*IMPRESSION_KEYS, "click_ts").where("click_ts IS NOT NULL").distinct()
    if broadcast:
        return shown.join(F.broadcast(distinct), on=list(IMPRESSION_KEYS), how="inner").select(
            *IMPRESSION_KEYS, "click_ts", "user_id")
    return distinct.join(shown.hint("merge"), on=list(IMPRESSION_KEYS), how="inner")


def attributed_outcomes(add_to_cart: DataFrame, orders: DataFrame, clicks: DataFrame, *,
                        broadcast: bool = False) -> DataFrame:
    """Per clicked impression (request_id, item_id): carts, orders, units and GMV of the events
    attributed to it; each add-to-cart and each order goes to the user's last click on the same
    item at or before it (events with no such click are dropped).

    ``clicks`` is the output of ``attributed_clicks``. Both logs are attributed in one pass:
    tagged and stacked, joined to the clicks once and reduced per event once, where attributing
    each log on its own ran the same join and the same two aggregations twice. ``broadcast``:
    the clicks are few (see ``attributed_clicks``): they are the broadcast side, built by one
    scan of the impressions.
    """
    from pyspark.sql import functions as F

    events = (
        add_to_cart.select(F.lit(False).alias("is_order"), F.col("cart_event_id").alias("event_id"), "user_id",
                           "item_id", F.col("event_ts").alias("ts"), F.lit(None).cast("int").alias("quantity"),
                           F.lit(None).cast("double").alias("price"))
        .unionByName(orders.select(F.lit(True).alias("is_order"), F.col("order_id").alias("event_id"), "user_id",
                                   "item_id", F.col("order_ts").alias("ts"), F.col("quantity").cast("int"),
                                   F.col("price").cast("double")))
    ).alias("e")
    c = (F.broadcast(clicks) if broadcast else clicks).alias("c")
    cond = (
        (F.col("e.user_id") == F.col("c.user_id"))
        & (F.col("e.item_id") == F.col("c.item_id"))
        & (F.col("c.click_ts") <= F.col("e.ts"))
    )
    per_event = (
        events.join(c, on=cond, how="inner")
        .groupBy(F.col("e.is_order").alias("is_order"), F.col("e.event_id").alias("event_id"))
        .agg(
            # Ties on click_ts resolve by request_id so reruns attribute identically.
            F.max_by(F.col("c.request_id"), F.struct(F.col("c.click_ts"), F.col("c.request_id"))).alias(
                "request_id"
            ),
            F.first(F.col("e.item_id")).alias("item_id"),
            F.first(F.col("e.quantity")).alias("quantity"),
            F.first(F.col("e.price")).alias("price"),
        )
    )
    order = F.col("is_order")
    return per_event.groupBy(*IMPRESSION_KEYS).agg(
        F.count(F.when(~order, 1)).alias("carts"),
        F.count(F.when(order, 1)).alias("orders"),
        F.sum(F.when(order, F.col("quantity"))).alias("units"),
        F.sum(F.when(order, F.col("quantity") * F.col("price"))).alias("gmv"),
    )


def impression_funnel(
    impressions: DataFrame, clicks: DataFrame, add_to_cart: DataFrame, orders: DataFrame, *, few_clicks: bool = False
) -> DataFrame:
    """Impression grain: clicked (0/1), carts, orders, units and GMV attributed to each impression.

    The outcomes are gathered per clicked impression first (carts and orders are attributed to
    clicks, so their keys are clicked keys) and joined to the impressions once. ``few_clicks``:
    the clicks are few enough to broadcast (``metrics.BROADCAST_ROWS_MAX``), so the impressions
    are read in one pass and never shuffled."""
    from pyspark.sql import functions as F

    keys = list(IMPRESSION_KEYS)
    clicked = attributed_clicks(impressions, clicks, broadcast=few_clicks)
    attributed = attributed_outcomes(add_to_cart, orders, clicked, broadcast=few_clicks)
    # The clicked impressions are the impressions whose keys have a click: the outcomes are keyed
    # by the click log's keys, which the join to the impressions below matches exactly as it
    # would the attributed clicks' (carts and orders are attributed to those, so their keys are
    # among them), without another scan of the impressions.
    outcomes = (
        clicks.where("click_ts IS NOT NULL").select(*keys).distinct().withColumn("clicked", F.lit(1))
        .join(F.broadcast(attributed) if few_clicks else attributed, on=keys, how="left")
    )
    return (
        impressions.select(*FUNNEL_COLUMNS[:9])
        .join(F.broadcast(outcomes) if few_clicks else outcomes, on=keys, how="left")
        .fillna(0, subset=["clicked", "carts", "orders", "units"])
        .fillna(0.0, subset=["gmv"])
        .select(*FUNNEL_COLUMNS)
    )
